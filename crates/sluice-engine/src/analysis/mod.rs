//! AnalysisRun engine (COMPAT §8): conditions, measurement assessment, argument substitution,
//! metric providers, and the pure reconcile of a run.
//!
//! Everything here is pure: time comes in as `now`, and the results are
//! values the controller applies.
//! - [`expr`]: `successCondition`/`failureCondition` in expr-lang syntax (parse once, eval often).
//! - [`evaluate`]: measurement, metric and run phases, summaries, when a measurement is due.
//! - [`args`]: argument values (secrets redacted) and `{{args.x}}` substitution.
//! - [`template`]: a run's spec from templates and the Rollout's arguments.
//! - [`provider`]: a metric's provider spec, parsed; what a measurement returns. The HTTP
//!   providers themselves run in the controller.
//! - [`job`]: the Job provider's pure part (the Job to create, reading its outcome).
//! - [`run`]: `plan_run`, one reconcile of an AnalysisRun as a value.
pub mod args;
pub mod evaluate;
pub mod expr;
pub mod job;
pub mod provider;
pub mod run;
pub mod template;
