//! AnalysisRun engine: conditions, measurement assessment, argument substitution, providers.
//!
//! Everything here except the provider I/O is pure: time comes in as `now`, and the results are
//! values the controller applies.
pub mod args;
pub mod duration;
pub mod evaluate;
pub mod expr;
pub mod provider;
pub mod providers;
pub mod run;
pub mod template;
