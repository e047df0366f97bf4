//! The `Experiment` kind: runs one or more ReplicaSets side by side for a while, optionally
//! with analyses, and reports a single result. Like AnalysisRun it has no status subresource;
//! the controller writes status with a merge patch on the main object.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::common::{
    AnalysisPhase, AnalysisRunMetadata, Argument, DryRun, MeasurementRetention, TemplateService,
    string_enum,
};

/// Default replicas of an experiment template.
pub const DEFAULT_TEMPLATE_REPLICAS: i32 = 1;
/// Default seconds an Experiment's ReplicaSets stay up after it finishes.
pub const DEFAULT_EXPERIMENT_SCALE_DOWN_DELAY_SECONDS: i32 = 30;
/// Default `progressDeadlineSeconds` of an Experiment.
pub const DEFAULT_EXPERIMENT_PROGRESS_DEADLINE_SECONDS: i32 = 600;

/// Desired state of an Experiment.
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "argoproj.io",
    version = "v1alpha1",
    kind = "Experiment",
    namespaced,
    shortname = "exp",
    status = "ExperimentStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "Experiment runs ReplicaSets side by side for a limited time, with optional analyses",
    printcolumn = r#"{"name":"Status","type":"string","description":"Experiment status","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Age","type":"date","description":"Time since resource was created","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentSpec {
    /// ReplicaSets to run.
    pub templates: Vec<TemplateSpec>,
    /// How long the experiment runs once its templates are available (duration string);
    /// absent = until terminated or until its required analyses finish.
    pub duration: Option<String>,
    /// Seconds the templates may take to become available before the experiment fails
    /// (default 600).
    pub progress_deadline_seconds: Option<i32>,
    /// Set to true to stop the experiment early.
    pub terminate: Option<bool>,
    /// Analyses run while the experiment runs.
    pub analyses: Option<Vec<ExperimentAnalysisTemplateRef>>,
    /// Seconds the ReplicaSets stay up after the experiment finishes (default 30).
    pub scale_down_delay_seconds: Option<i32>,
    /// Metrics that run in dry-run mode.
    pub dry_run: Option<Vec<DryRun>>,
    /// How many measurements to keep per metric.
    pub measurement_retention: Option<Vec<MeasurementRetention>>,
    /// Labels/annotations added to the experiment's AnalysisRuns.
    pub analysis_run_metadata: Option<AnalysisRunMetadata>,
}

impl ExperimentSpec {
    /// Whether the experiment was asked to stop (`spec.terminate`).
    pub fn is_terminated(&self) -> bool {
        self.terminate.unwrap_or(false)
    }

    /// `scaleDownDelaySeconds`, defaulting to 30.
    pub fn scale_down_delay_seconds(&self) -> i32 {
        self.scale_down_delay_seconds
            .unwrap_or(DEFAULT_EXPERIMENT_SCALE_DOWN_DELAY_SECONDS)
    }

    /// `progressDeadlineSeconds`, defaulting to 600.
    pub fn progress_deadline_seconds(&self) -> i32 {
        self.progress_deadline_seconds
            .unwrap_or(DEFAULT_EXPERIMENT_PROGRESS_DEADLINE_SECONDS)
    }
}

/// One ReplicaSet of an Experiment.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateSpec {
    /// Name of the template; the ReplicaSet is named `<experiment>-<name>`.
    pub name: String,
    /// Replicas to run (default 1).
    pub replicas: Option<i32>,
    /// Seconds a pod must be ready to count as available.
    pub min_ready_seconds: Option<i32>,
    /// Selector for the template's pods.
    pub selector: LabelSelector,
    /// Pod template.
    pub template: PodTemplateSpec,
    /// Create a Service for the template's pods.
    pub service: Option<TemplateService>,
}

impl TemplateSpec {
    /// `replicas`, defaulting to 1.
    pub fn replicas(&self) -> i32 {
        self.replicas.unwrap_or(DEFAULT_TEMPLATE_REPLICAS)
    }
}

/// An analysis run during an Experiment.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentAnalysisTemplateRef {
    /// Name of the analysis within the experiment.
    pub name: String,
    /// Name of the AnalysisTemplate (or ClusterAnalysisTemplate with `clusterScope`).
    pub template_name: String,
    /// When true, `templateName` names a ClusterAnalysisTemplate.
    pub cluster_scope: Option<bool>,
    /// Arguments for the template.
    pub args: Option<Vec<Argument>>,
    /// The experiment does not finish before this analysis does.
    pub required_for_completion: Option<bool>,
}

impl ExperimentAnalysisTemplateRef {
    /// Whether `templateName` names a ClusterAnalysisTemplate.
    pub fn is_cluster_scope(&self) -> bool {
        self.cluster_scope.unwrap_or(false)
    }

    /// Whether the experiment waits for this analysis.
    pub fn is_required_for_completion(&self) -> bool {
        self.required_for_completion.unwrap_or(false)
    }
}

string_enum! {
    /// State of one experiment template.
    pub enum TemplateStatusCode {
        /// Its ReplicaSet is becoming available.
        Progressing = "Progressing",
        /// Its ReplicaSet is available.
        Running = "Running",
        /// It finished successfully.
        Successful = "Successful",
        /// It failed (e.g. missed the progress deadline).
        Failed = "Failed",
        /// It could not be run.
        Error = "Error",
    }
}

string_enum! {
    /// Type of an Experiment condition.
    pub enum ExperimentConditionType {
        /// The spec is invalid.
        InvalidSpec = "InvalidSpec",
        /// The experiment has completed.
        Completed = "Completed",
        /// The experiment is progressing.
        Progressing = "Progressing",
        /// The experiment is running.
        Running = "Running",
        /// A ReplicaSet failed to create pods.
        ReplicaFailure = "ReplicaFailure",
    }
}

/// Observed state of an Experiment.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentStatus {
    /// Pending, Running, Successful, Failed, Error or Inconclusive.
    pub phase: Option<AnalysisPhase>,
    /// Why the experiment is in its phase.
    pub message: Option<String>,
    /// State of each template.
    pub template_statuses: Option<Vec<TemplateStatus>>,
    /// When every template first became available; `duration` counts from here.
    pub available_at: Option<Time>,
    /// Conditions of the experiment.
    pub conditions: Option<Vec<ExperimentCondition>>,
    /// State of each analysis.
    pub analysis_runs: Option<Vec<ExperimentAnalysisRunStatus>>,
}

/// State of one experiment template.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateStatus {
    /// Name of the template.
    pub name: String,
    /// Pods of the template's ReplicaSet.
    pub replicas: i32,
    /// Pods with the current template.
    pub updated_replicas: i32,
    /// Ready pods.
    pub ready_replicas: i32,
    /// Available pods.
    pub available_replicas: i32,
    /// Bumped on pod-template hash collisions.
    pub collision_count: Option<i32>,
    /// Progressing, Running, Successful, Failed or Error.
    pub status: Option<TemplateStatusCode>,
    /// Why the template is in its state.
    pub message: Option<String>,
    /// When `status` last changed.
    pub last_transition_time: Option<Time>,
    /// Name of the template's Service, if one was created.
    pub service_name: Option<String>,
    /// Pod-template hash of the template's ReplicaSet.
    pub pod_template_hash: Option<String>,
}

/// An Experiment condition.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentCondition {
    /// Type of the condition.
    #[serde(rename = "type")]
    pub type_: ExperimentConditionType,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Last time the condition was updated.
    pub last_update_time: Time,
    /// Last time the condition's status changed.
    pub last_transition_time: Time,
    /// Machine-readable reason (PascalCase).
    pub reason: String,
    /// Human-readable explanation.
    pub message: String,
}

/// State of one experiment analysis.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentAnalysisRunStatus {
    /// Name of the analysis within the experiment.
    pub name: String,
    /// Name of the AnalysisRun.
    pub analysis_run: String,
    /// Phase of the AnalysisRun.
    pub phase: AnalysisPhase,
    /// Message of the AnalysisRun.
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn experiment_defaults_match_upstream() {
        let spec = ExperimentSpec::default();
        assert_eq!(spec.scale_down_delay_seconds(), 30);
        assert_eq!(spec.progress_deadline_seconds(), 600);
        assert!(!spec.is_terminated());
        assert_eq!(TemplateSpec::default().replicas(), 1);
    }
}
