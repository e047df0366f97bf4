//! The argoproj.io/v1alpha1 API types (Rollout, AnalysisTemplate, ClusterAnalysisTemplate,
//! AnalysisRun, Experiment) and the CustomResourceDefinitions generated from them.
//!
//! These are wire types only: every field mirrors upstream Argo Rollouts' JSON so objects
//! round-trip without loss. Defaults live in accessor methods, not in the schema.

pub mod analysis;
pub mod common;
pub mod crds;
pub mod experiment;
pub mod rollout;

#[cfg(test)]
mod fixtures;
