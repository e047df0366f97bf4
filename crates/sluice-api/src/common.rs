//! Pieces shared by several argoproj.io/v1alpha1 kinds: int-or-string helpers (pause
//! durations), references to analysis templates, analysis arguments and the small metadata
//! structs that Rollouts, Experiments and AnalysisRuns all carry.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;
use thiserror::Error;

use crate::k8s::duration::{DurationError, parse_seconds_or_duration};

/// The API group every Sluice/Argo Rollouts kind lives in.
pub const GROUP: &str = "argoproj.io";
/// The only served version of the API group.
pub const VERSION: &str = "v1alpha1";

/// Label added to every ReplicaSet and pod a Rollout or Experiment owns, holding the
/// pod-template hash. Its value is also what `status.stableRS`/`currentPodHash` carry.
pub const POD_TEMPLATE_HASH_LABEL: &str = "rollouts-pod-template-hash";
/// Annotation on an old ReplicaSet holding the RFC 3339 instant after which it may be scaled down.
pub const SCALE_DOWN_DEADLINE_ANNOTATION: &str = "scale-down-deadline";
/// Label naming the controller instance (`--instance-id`) an object belongs to.
pub const CONTROLLER_INSTANCE_ID_LABEL: &str = "argo-rollouts.argoproj.io/controller-instance-id";
/// Annotation on ReplicaSets: the revision number of the Rollout template they were created from.
pub const REVISION_ANNOTATION: &str = "rollout.argoproj.io/revision";
/// Annotation on ReplicaSets: the Rollout's desired replica count when the ReplicaSet was scaled.
pub const DESIRED_REPLICAS_ANNOTATION: &str = "rollout.argoproj.io/desired-replicas";
/// Annotation on a Rollout with `workloadRef`: generation of the referenced workload last seen.
pub const WORKLOAD_GENERATION_ANNOTATION: &str = "rollout.argoproj.io/workload-generation";
/// Label on AnalysisRuns/Experiments created by a Rollout: which part of the strategy made them.
pub const ROLLOUT_TYPE_LABEL: &str = "rollout-type";
/// `rollout-type` value for runs created by a canary `analysis`/`experiment` step.
pub const ROLLOUT_TYPE_STEP: &str = "Step";
/// `rollout-type` value for the canary background analysis run.
pub const ROLLOUT_TYPE_BACKGROUND: &str = "Background";
/// `rollout-type` value for blue-green pre-promotion analysis runs.
pub const ROLLOUT_TYPE_PRE_PROMOTION: &str = "PrePromotion";
/// `rollout-type` value for blue-green post-promotion analysis runs.
pub const ROLLOUT_TYPE_POST_PROMOTION: &str = "PostPromotion";
/// Label on step-created AnalysisRuns/Experiments: the index of the canary step.
pub const STEP_INDEX_LABEL: &str = "step-index";

/// Declares a string-valued enum whose known values are variants and whose unknown values are
/// kept verbatim in `Other`, so objects written by other tools (or newer Argo versions)
/// always deserialize and serialize back byte-identically. Its schema is a plain string.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this version of Sluice does not know, preserved as written.
            Other(String),
        }

        impl $name {
            /// The wire form of this value.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $value, )+
                    Self::Other(s) => s.as_str(),
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $( $value => Self::$variant, )+
                    other => Self::Other(other.to_string()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Ok(Self::from(s.as_str()))
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn inline_schema() -> bool {
                true
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({ "type": "string" })
            }
        }
    };
}
pub(crate) use string_enum;

/// Schema for opaque, provider-defined JSON objects (plugin configuration and the like):
/// upstream keeps these untyped, so the apiserver must not prune anything inside them.
pub(crate) fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Error for an int-or-string field whose string form is not an integer.
#[derive(Debug, Error, PartialEq, Eq, Clone)]
#[error("{field}: invalid value {value:?}: must be an integer")]
pub struct IntOrStringError {
    /// Name of the field, for the user-facing message.
    pub field: String,
    /// The rejected value, verbatim.
    pub value: String,
}

/// Reads an int-or-string that must hold an integer (metric `count`, `failureLimit`, ...).
/// Upstream allows the string form so the value can come from an `{{args.x}}` placeholder;
/// callers substitute arguments first and then call this.
pub fn int_or_string_to_i32(field: &str, value: &IntOrString) -> Result<i32, IntOrStringError> {
    match value {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => s.trim().parse::<i32>().map_err(|_| IntOrStringError {
            field: field.to_string(),
            value: s.clone(),
        }),
    }
}

/// Reads an int-or-string duration (canary `pause.duration`): a bare number is seconds, a
/// string is either digits (seconds) or an Argo duration string.
pub fn int_or_string_to_duration(value: &IntOrString) -> Result<Duration, DurationError> {
    match value {
        IntOrString::Int(i) => {
            u64::try_from(*i)
                .map(Duration::from_secs)
                .map_err(|_| DurationError {
                    value: i.to_string(),
                    reason: "a duration cannot be negative",
                })
        }
        IntOrString::String(s) => parse_seconds_or_duration(s),
    }
}

/// Converts an int-or-string to the `serde_json::Value` form that
/// [`crate::k8s::intstr::resolve`] takes.
pub fn int_or_string_to_json(value: &IntOrString) -> serde_json::Value {
    match value {
        IntOrString::Int(i) => serde_json::Value::from(*i),
        IntOrString::String(s) => serde_json::Value::from(s.as_str()),
    }
}

/// Reference to the workload a Rollout takes its pod template from (`spec.workloadRef`).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// API version of the referenced workload, e.g. `apps/v1`.
    pub api_version: Option<String>,
    /// Kind of the referenced workload: `Deployment`, `ReplicaSet` or `PodTemplate`.
    pub kind: Option<String>,
    /// Name of the referenced workload in the Rollout's namespace.
    pub name: Option<String>,
    /// What to do with the referenced Deployment's pods: `never` (default), `onsuccess` (scale it
    /// to zero once the Rollout is healthy) or `progressively` (scale it down as the Rollout scales up).
    pub scale_down: Option<String>,
}

/// `workloadRef.scaleDown` value: leave the referenced Deployment alone.
pub const SCALE_DOWN_NEVER: &str = "never";
/// `workloadRef.scaleDown` value: scale the Deployment to zero once the Rollout is healthy.
pub const SCALE_DOWN_ON_SUCCESS: &str = "onsuccess";
/// `workloadRef.scaleDown` value: scale the Deployment down as the Rollout becomes available.
pub const SCALE_DOWN_PROGRESSIVELY: &str = "progressively";

/// Labels and annotations added to a subset of pods (canary/stable/preview/active) without
/// changing the pod-template hash.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateMetadata {
    /// Labels added to the pods.
    pub labels: Option<BTreeMap<String, String>>,
    /// Annotations added to the pods.
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Labels and annotations copied onto AnalysisRuns created for a Rollout or Experiment.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunMetadata {
    /// Labels added to the AnalysisRun.
    pub labels: Option<BTreeMap<String, String>>,
    /// Annotations added to the AnalysisRun.
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Marks a metric as dry-run: it is measured and reported but never changes the run's phase.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DryRun {
    /// Name of the metric (or a regular expression matching metric names, `.*` for all).
    pub metric_name: String,
}

/// Overrides how many measurements are kept in status for matching metrics (default 10).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeasurementRetention {
    /// Name of the metric (or a regular expression matching metric names).
    pub metric_name: String,
    /// Number of most recent measurements to keep.
    pub limit: i32,
}

/// Reference to an AnalysisTemplate or ClusterAnalysisTemplate by name.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisTemplateRef {
    /// Name of the template.
    pub template_name: Option<String>,
    /// When true, the name refers to a cluster-scoped ClusterAnalysisTemplate.
    pub cluster_scope: Option<bool>,
}

impl AnalysisTemplateRef {
    /// Whether the reference names a ClusterAnalysisTemplate.
    pub fn is_cluster_scope(&self) -> bool {
        self.cluster_scope.unwrap_or(false)
    }
}

/// Reads a value from a field of the owning object (e.g. `metadata.labels['app']`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldRef {
    /// Path of the field, in the Kubernetes downward-API style.
    pub field_path: String,
}

/// Reads a value from a key of a Secret in the run's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    pub name: String,
    /// Key within the Secret's data.
    pub key: String,
}

string_enum! {
    /// Which ReplicaSet's pod-template hash an analysis argument takes.
    pub enum PodTemplateHashValue {
        /// The stable ReplicaSet's hash.
        Stable = "Stable",
        /// The newest (canary/preview) ReplicaSet's hash.
        Latest = "Latest",
    }
}

string_enum! {
    /// Phase of an AnalysisRun, a metric, a measurement or an Experiment.
    pub enum AnalysisPhase {
        /// Not started yet.
        Pending = "Pending",
        /// In progress.
        Running = "Running",
        /// Finished successfully.
        Successful = "Successful",
        /// Finished: a condition failed too often.
        Failed = "Failed",
        /// Finished: the provider errored too often.
        Error = "Error",
        /// Finished without a clear result; needs a human.
        Inconclusive = "Inconclusive",
    }
}

impl AnalysisPhase {
    /// Whether the phase is terminal (Successful, Failed, Error or Inconclusive).
    pub fn is_completed(&self) -> bool {
        matches!(
            self,
            Self::Successful | Self::Failed | Self::Error | Self::Inconclusive
        )
    }
}

// A macro-declared enum cannot carry `#[default]` on one variant, hence the manual impl.
#[allow(clippy::derivable_impls)]
impl Default for AnalysisPhase {
    fn default() -> Self {
        Self::Pending
    }
}

/// Where a Rollout-supplied analysis argument gets its value at run-creation time.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArgumentValueFrom {
    /// Use the pod-template hash of the `Stable` or `Latest` ReplicaSet.
    pub pod_template_hash_value: Option<PodTemplateHashValue>,
    /// Use the value of a field of the Rollout.
    pub field_ref: Option<FieldRef>,
}

/// An argument a Rollout (or Rollout experiment step) passes to the AnalysisRuns it creates.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunArgument {
    /// Name of the argument, matching an `args[].name` of the template.
    pub name: String,
    /// Literal value.
    pub value: Option<String>,
    /// Value computed from the Rollout when the run is created.
    pub value_from: Option<ArgumentValueFrom>,
}

/// Where an AnalysisTemplate/AnalysisRun/Experiment argument gets its value.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValueFrom {
    /// Read the value from a Secret key in the run's namespace (never logged).
    pub secret_key_ref: Option<SecretKeyRef>,
    /// Read the value from a field of the owning object.
    pub field_ref: Option<FieldRef>,
}

/// A named argument of an AnalysisTemplate, AnalysisRun or Experiment analysis, substituted
/// into `{{args.<name>}}` placeholders.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Argument {
    /// Name of the argument.
    pub name: String,
    /// Value (or default value, in a template); absent means the argument must be supplied.
    pub value: Option<String>,
    /// Value read from a Secret or a field instead of a literal.
    pub value_from: Option<ValueFrom>,
}

/// Names the Service an Experiment creates for a template's pods.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateService {
    /// Name of the Service; defaults to the template ReplicaSet's name.
    pub name: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn pause_durations_accept_numbers_and_strings() {
        assert_eq!(
            int_or_string_to_duration(&IntOrString::Int(45)),
            Ok(secs(45))
        );
        assert_eq!(
            int_or_string_to_duration(&IntOrString::String("45".into())),
            Ok(secs(45))
        );
        assert_eq!(
            int_or_string_to_duration(&IntOrString::String("2m".into())),
            Ok(secs(120))
        );
        assert!(int_or_string_to_duration(&IntOrString::Int(-1)).is_err());
    }

    #[test]
    fn int_or_string_counts_read_digit_strings_and_reject_others() {
        assert_eq!(int_or_string_to_i32("count", &IntOrString::Int(3)), Ok(3));
        assert_eq!(
            int_or_string_to_i32("count", &IntOrString::String("7".into())),
            Ok(7)
        );
        let err =
            int_or_string_to_i32("count", &IntOrString::String("{{args.n}}".into())).unwrap_err();
        assert_eq!(err.field, "count");
        assert!(err.to_string().contains("{{args.n}}"));
    }

    #[test]
    fn string_enums_keep_unknown_values_verbatim() {
        let known: PodTemplateHashValue = serde_json::from_str("\"Stable\"").unwrap();
        assert_eq!(known, PodTemplateHashValue::Stable);
        let unknown: PodTemplateHashValue = serde_json::from_str("\"Canary\"").unwrap();
        assert_eq!(unknown, PodTemplateHashValue::Other("Canary".into()));
        assert_eq!(serde_json::to_string(&unknown).unwrap(), "\"Canary\"");
    }
}
