//! AnalysisRun engine (COMPAT §8): conditions, measurement assessment, argument substitution,
//! metric providers, and the pure reconcile of a run.
//!
//! Everything here except the provider I/O is pure: time comes in as `now`, and the results are
//! values the controller applies.
//! - [`expr`]: `successCondition`/`failureCondition` in expr-lang syntax (parse once, eval often).
//! - [`evaluate`]: measurement, metric and run phases, summaries, when a measurement is due.
//! - [`args`]: argument values (secrets redacted) and `{{args.x}}` substitution.
//! - [`template`]: a run's spec from templates and the Rollout's arguments.
//! - [`provider`] + [`providers`]: web and prometheus over HTTP, the pure part of job.
//! - [`run`]: `plan_run`, one reconcile of an AnalysisRun as a value.
//! - [`duration`]: Go duration strings (`interval`, `initialDelay`, `step`).
pub mod args;
pub mod duration;
pub mod evaluate;
pub mod expr;
pub mod provider;
pub mod providers;
pub mod run;
pub mod template;
