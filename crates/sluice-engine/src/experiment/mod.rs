//! Experiments: ReplicaSets run side by side for a while, optionally judged by analyses.
//!
//! Everything here is pure. [`plan()`] takes an [`ObservedExperiment`] (the Experiment, what
//! it owns, the analysis templates it names) and `now`, and returns an [`ExperimentPlan`]:
//! the status to write and the typed [`ExperimentChange`]s to make. The kube wiring lives in
//! `controller::experiment`.
//!
//! - [`validate`](mod@validate): what makes an Experiment go `Error` before anything is created.
//! - [`args`]: `{{templates.<name>.podTemplateHash}}`-style placeholders in analysis args.
//! - [`plan`](mod@plan): the phase machine, template ReplicaSets/Services and AnalysisRuns.

pub mod args;
pub mod plan;
pub mod validate;

pub use plan::{
    EXPERIMENT_NAME_ANNOTATION, ExperimentChange, ExperimentPlan, ObservedExperiment,
    TEMPLATE_NAME_ANNOTATION, TemplateKey, analysis_run_name, plan, replica_set_name, service_name,
};
pub use validate::{SpecError, validate};
