//! The Rollout planner: no Kubernetes client, no async runtime, no clock.
//!
//! `plan(&Observed, now) -> Plan` is the whole Rollout decision. The controller builds an
//! [`Observed`] from its caches, calls [`plan()`] (which repeats the one-transition
//! [`plan_step`] while only the status moves, see [`settle`]), and hands the [`Plan`] to the actuator,
//! which applies `changes` in order (stopping at the first failure) and then writes
//! `status` to /status as a merge patch of the fields that differ from the observed status.
//!
//! - [`replicas`]: maxSurge/maxUnavailable and the weight → replica-count math.
//! - [`hash`]: pod-template and step hashes, semantic template equality.
//! - [`validate`](mod@validate): what makes a Rollout InvalidSpec (including not-yet-supported fields).
//! - [`template`]: the pod template checked with the API server's own rules before any write.
//! - [`canary`]: the step machine, one file per stage under `canary/` (replica sets,
//!   scaling, pause, steps, status, ...), and the `Planner` both strategies work on.
//! - [`blue_green`]: the blue/green strategy's own stages under `blue_green/` (Services,
//!   scaling and scale-down delays, the promotion pause, pre/post-promotion analysis,
//!   promotion to stable).
//! - [`analysis_runs`], [`experiment_step`]: the Rollout's side of the AnalysisRuns and
//!   Experiments that analysis/experiment steps and background analysis create.
//! - [`status`]: condition strings, phase and message.
//! - [`duration`]: `status.duration`, one rule for every strategy.
//! - [`refusal`]: writes the API server refused, reported as upstream's conditions.
//! - [`workload`]: `spec.workloadRef` (template from a Deployment, its scale-down).
//! - [`traffic`]: traffic routing — what each router (Gateway API routes, ...) must hold.
//! - `scale_down`: delayed scale-down (`scale-down-deadline`) shared by blue/green and the
//!   routed canary.
pub mod analysis_runs;
pub mod blue_green;
pub mod canary;
pub mod duration;
pub mod experiment_step;
pub mod hash;
pub mod observed;
pub mod plan;
pub mod refusal;
pub mod replicas;
mod scale_down;
pub mod settle;
pub mod status;
pub mod template;
pub mod traffic;
pub mod validate;
pub mod workload;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

#[cfg(test)]
mod fuzz;

pub use canary::plan_step;
pub use observed::Observed;
pub use plan::{Change, EventType, MetadataPatch, Plan};
pub use settle::plan;
pub use validate::{InvalidSpec, validate};
