//! The pure decision core: no Kubernetes client, no async runtime, no clock.
//!
//! `plan(&Observed, now) -> Plan` is the whole Rollout decision. The controller builds an
//! [`Observed`] from its caches, calls [`plan()`], and hands the [`Plan`] to the actuator,
//! which applies `changes` in order (stopping at the first failure) and then writes
//! `status` to /status as a merge patch of the fields that differ from the observed status.
//!
//! - [`replicas`]: maxSurge/maxUnavailable and the weight → replica-count math.
//! - [`hash`]: pod-template and step hashes, semantic template equality.
//! - [`validate`](mod@validate): what makes a Rollout InvalidSpec (including not-yet-supported fields).
//! - [`canary`]: the step machine.
//! - [`analysis`](mod@analysis), [`experiment`](mod@experiment): the AnalysisRuns and
//!   Experiments that analysis/experiment steps and background analysis create.
//! - [`status`]: condition strings, phase and message.
//! - [`workload`]: `spec.workloadRef` (template from a Deployment, its scale-down).
pub mod analysis;
pub mod canary;
pub mod experiment;
pub mod hash;
pub mod intstr;
pub mod observed;
pub mod plan;
pub mod replicas;
pub mod status;
pub mod validate;
pub mod workload;

#[cfg(test)]
pub(crate) mod testing;

pub use canary::plan;
pub use observed::Observed;
pub use plan::{Change, EventType, MetadataPatch, Plan};
pub use validate::{InvalidSpec, validate};
