//! Sluice's pure planners. Every decision the controller makes is a function here from what it
//! observed (and `now`) to a value: the status to write and the typed changes to make. This
//! crate cannot depend on an async runtime, a Kubernetes client or an HTTP client; its
//! Cargo.toml is the proof.
//!
//! - [`rollout`]: the Rollout step machine (`rollout::plan`).
//! - [`analysis`]: one reconcile of an AnalysisRun (`analysis::run::plan_run`), its
//!   conditions, measurements and arguments; the pure part of the Job provider.
//! - [`experiment`]: one reconcile of an Experiment (`experiment::plan`).
pub mod analysis;
pub mod experiment;
pub mod rollout;

#[cfg(test)]
mod fuzz;
