//! Pieces shared by several argoproj.io/v1alpha1 kinds: Argo duration strings, int-or-string
//! helpers, references to analysis templates, analysis arguments and the small metadata
//! structs that Rollouts, Experiments and AnalysisRuns all carry.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;
use thiserror::Error;

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

/// Error for an Argo duration string that cannot be parsed.
#[derive(Debug, Error, PartialEq, Eq, Clone)]
#[error(
    "invalid duration {value:?}: expected a number of seconds or a duration such as \"30s\", \"5m\", \"1h30m\" or \"500ms\""
)]
pub struct DurationError {
    /// The rejected input, verbatim.
    pub value: String,
}

/// Parses an Argo duration string.
///
/// Accepts what Go's `time.ParseDuration` accepts for non-negative values (a sequence of
/// decimal numbers each followed by a unit `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`, e.g. `"1h30m"`,
/// `"1.5s"`, `"0"`) plus a bare integer meaning seconds (`"30"`), which pause durations allow.
pub fn parse_duration(value: &str) -> Result<Duration, DurationError> {
    let err = || DurationError {
        value: value.to_string(),
    };
    let s = value.trim();
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.is_empty() {
        return Err(err());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<u64>().map(Duration::from_secs).map_err(|_| err());
    }
    let mut total_nanos: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        if num_len == 0 {
            return Err(err());
        }
        let (number, tail) = rest.split_at(num_len);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            _ => return Err(err()),
        };
        total_nanos = total_nanos
            .checked_add(scaled_nanos(number, unit_nanos).ok_or_else(err)?)
            .ok_or_else(err)?;
        rest = tail;
    }
    let secs = u64::try_from(total_nanos / 1_000_000_000).map_err(|_| err())?;
    // The remainder is below one second, so it always fits in u32.
    let nanos = (total_nanos % 1_000_000_000) as u32;
    Ok(Duration::new(secs, nanos))
}

/// `number` (decimal, optional fraction) times `unit_nanos`, truncated to whole nanoseconds.
fn scaled_nanos(number: &str, unit_nanos: u128) -> Option<u128> {
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if frac_part.contains('.') {
        return None;
    }
    let int_value: u128 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().ok()?
    };
    let mut nanos = int_value.checked_mul(unit_nanos)?;
    // Only the first 18 fractional digits can matter at nanosecond resolution of an hour.
    let frac_digits = &frac_part[..frac_part.len().min(18)];
    if !frac_digits.is_empty() {
        let frac_value: u128 = frac_digits.parse().ok()?;
        let scale = 10u128.pow(frac_digits.len() as u32);
        nanos = nanos.checked_add(frac_value * unit_nanos / scale)?;
    }
    Some(nanos)
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
                })
        }
        IntOrString::String(s) => parse_duration(s),
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
    fn duration_strings_parse_like_go_durations_plus_bare_seconds() {
        let cases: &[(&str, Duration)] = &[
            ("30s", secs(30)),
            ("5m", secs(300)),
            ("1h", secs(3600)),
            ("1h30m", secs(5400)),
            ("1h30m15s", secs(5415)),
            ("500ms", Duration::from_millis(500)),
            ("1.5s", Duration::from_millis(1500)),
            ("2us", Duration::from_micros(2)),
            ("7ns", Duration::from_nanos(7)),
            ("30", secs(30)),
            ("0", secs(0)),
            ("+10s", secs(10)),
            (".5m", secs(30)),
        ];
        for (input, want) in cases {
            assert_eq!(parse_duration(input), Ok(*want), "input {input:?}");
        }
    }

    #[test]
    fn bad_duration_strings_are_rejected_naming_the_value() {
        for input in ["", "s", "10x", "1h-5m", "-5s", "1..5s", "abc", "5 m"] {
            let err = parse_duration(input).expect_err(input);
            assert_eq!(err.value, input);
            assert!(err.to_string().contains(&format!("{input:?}")));
        }
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

    proptest::proptest! {
        #[test]
        fn any_combination_of_units_parses_to_its_sum(
            h in 0u64..100, m in 0u64..600, s in 0u64..600, ms in 0u64..5000,
            use_h: bool, use_m: bool, use_s: bool, use_ms: bool,
        ) {
            let mut text = String::new();
            let mut want = Duration::ZERO;
            if use_h { text += &format!("{h}h"); want += secs(h * 3600); }
            if use_m { text += &format!("{m}m"); want += secs(m * 60); }
            if use_s { text += &format!("{s}s"); want += secs(s); }
            if use_ms { text += &format!("{ms}ms"); want += Duration::from_millis(ms); }
            proptest::prop_assume!(!text.is_empty());
            proptest::prop_assert_eq!(parse_duration(&text), Ok(want));
        }

        #[test]
        fn bare_integers_are_seconds(n in 0u64..10_000_000) {
            proptest::prop_assert_eq!(parse_duration(&n.to_string()), Ok(secs(n)));
        }
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
