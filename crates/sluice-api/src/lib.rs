//! The argoproj.io/v1alpha1 API types (Rollout, AnalysisTemplate, ClusterAnalysisTemplate,
//! AnalysisRun, Experiment) and the CustomResourceDefinitions generated from them.
//!
//! These are wire types only: every field mirrors upstream Argo Rollouts' JSON so objects
//! round-trip without loss (optional fields are `Option` and skipped when `None`, so a
//! serialized status contains exactly what was set). Defaults are not in the schema, as
//! upstream; read them through accessor methods such as [`rollout::RolloutSpec::replicas`],
//! [`rollout::CanaryStrategy::max_surge`] or [`analysis::Metric::consecutive_error_limit`].
//!
//! Phases, pause reasons and condition types are enums with an `Other(String)` variant, so
//! values written by other tools or newer Argo versions still deserialize and round-trip.
//!
//! - [`rollout`]: `Rollout` and its strategies, steps, traffic routing and status.
//! - [`analysis`]: `AnalysisTemplate`, `ClusterAnalysisTemplate`, `AnalysisRun`, metrics and
//!   providers.
//! - [`experiment`]: the `Experiment` kind.
//! - [`common`]: shared pieces (arguments, template references, duration parsing,
//!   int-or-string helpers, well-known labels and annotations).
//! - [`crds`]: the five CRDs and their YAML rendering.

pub mod analysis;
pub mod common;
pub mod crds;
pub mod experiment;
pub mod k8s;
pub mod rollout;

#[cfg(test)]
mod fixtures;
