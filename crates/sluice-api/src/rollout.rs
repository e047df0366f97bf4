//! The `Rollout` kind: a Deployment replacement whose updates progress through a canary or
//! blue-green strategy.
//!
//! Field names and shapes follow upstream Argo Rollouts exactly so existing manifests, status
//! patches from `kubectl argo rollouts` and Argo CD's health check work unchanged. Defaults are
//! not in the schema (upstream's CRD carries none); read them through the accessor methods.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::common::{
    AnalysisPhase, AnalysisRunArgument, AnalysisRunMetadata, AnalysisTemplateRef, DryRun,
    MeasurementRetention, ObjectRef, PodTemplateMetadata, TemplateService, preserve_unknown_object,
    string_enum,
};

/// Default `spec.replicas`.
pub const DEFAULT_REPLICAS: i32 = 1;
/// Default `spec.revisionHistoryLimit`.
pub const DEFAULT_REVISION_HISTORY_LIMIT: i32 = 10;
/// Default `spec.progressDeadlineSeconds`.
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: i32 = 600;
/// Default for both `spec.analysis` run history limits.
pub const DEFAULT_ANALYSIS_RUN_HISTORY_LIMIT: i32 = 5;
/// Default `maxSurge`/`maxUnavailable`: a string without `%` is still a percentage.
pub const DEFAULT_MAX_SURGE_OR_UNAVAILABLE: &str = "25";
/// Default scale-down delay for blue-green and for canary with traffic routing.
pub const DEFAULT_SCALE_DOWN_DELAY_SECONDS: i32 = 30;
/// Default abort scale-down delay for blue-green and for canary with traffic routing.
pub const DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS: i32 = 30;

/// Desired state of a Rollout.
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "argoproj.io",
    version = "v1alpha1",
    kind = "Rollout",
    namespaced,
    shortname = "ro",
    status = "RolloutStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "Rollout is a Deployment replacement that updates its pods progressively with a canary or blue-green strategy",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.HPAReplicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn = r#"{"name":"Desired","type":"integer","description":"Number of desired pods","jsonPath":".spec.replicas"}"#,
    printcolumn = r#"{"name":"Current","type":"integer","description":"Total number of non-terminated pods targeted by this rollout","jsonPath":".status.replicas"}"#,
    printcolumn = r#"{"name":"Up-to-date","type":"integer","description":"Total number of non-terminated pods targeted by this rollout that have the desired template spec","jsonPath":".status.updatedReplicas"}"#,
    printcolumn = r#"{"name":"Available","type":"integer","description":"Total number of available pods (ready for at least minReadySeconds) targeted by this rollout","jsonPath":".status.availableReplicas"}"#,
    printcolumn = r#"{"name":"Age","type":"date","description":"Time since resource was created","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    /// Number of desired pods (default 1). Also the target of the scale subresource.
    pub replicas: Option<i32>,
    /// Label selector for the pods; must match the template's labels. Required unless
    /// `workloadRef` is set. Immutable.
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": ".spec.selector is immutable"}]))]
    pub selector: Option<LabelSelector>,
    /// Pod template the Rollout's ReplicaSets are created from. Must be empty when
    /// `workloadRef` is set.
    pub template: Option<PodTemplateSpec>,
    /// Takes the pod template (and selector, if absent) from an existing Deployment,
    /// ReplicaSet or PodTemplate instead of `template`.
    pub workload_ref: Option<ObjectRef>,
    /// Seconds a new pod must be ready without crashing to count as available (default 0).
    pub min_ready_seconds: Option<i32>,
    /// Window within which going back to a recent revision skips the steps.
    pub rollback_window: Option<RollbackWindowSpec>,
    /// How updates are rolled out: `canary` or `blueGreen`.
    pub strategy: Option<RolloutStrategy>,
    /// Number of old ReplicaSets kept for rollback (default 10).
    pub revision_history_limit: Option<i32>,
    /// User pause: when true, scaling and step progression stop until it is cleared.
    pub paused: Option<bool>,
    /// Seconds an update may make no progress before it is reported as
    /// ProgressDeadlineExceeded (default 600).
    pub progress_deadline_seconds: Option<i32>,
    /// Abort the update when the progress deadline is exceeded.
    pub progress_deadline_abort: Option<bool>,
    /// Restart every pod created before this instant, a few at a time.
    pub restart_at: Option<Time>,
    /// How many finished AnalysisRuns of this Rollout to keep.
    pub analysis: Option<AnalysisRunStrategy>,
}

impl RolloutSpec {
    /// `spec.replicas`, defaulting to 1.
    pub fn replicas(&self) -> i32 {
        self.replicas.unwrap_or(DEFAULT_REPLICAS)
    }

    /// `spec.revisionHistoryLimit`, defaulting to 10.
    pub fn revision_history_limit(&self) -> i32 {
        self.revision_history_limit
            .unwrap_or(DEFAULT_REVISION_HISTORY_LIMIT)
    }

    /// `spec.progressDeadlineSeconds`, defaulting to 600.
    pub fn progress_deadline_seconds(&self) -> i32 {
        self.progress_deadline_seconds
            .unwrap_or(DEFAULT_PROGRESS_DEADLINE_SECONDS)
    }

    /// `spec.minReadySeconds`, defaulting to 0.
    pub fn min_ready_seconds(&self) -> i32 {
        self.min_ready_seconds.unwrap_or(0)
    }

    /// Whether the user paused the Rollout (`spec.paused`).
    pub fn is_paused(&self) -> bool {
        self.paused.unwrap_or(false)
    }

    /// Whether an exceeded progress deadline aborts the update.
    pub fn progress_deadline_abort(&self) -> bool {
        self.progress_deadline_abort.unwrap_or(false)
    }

    /// Successful AnalysisRuns to keep (default 5).
    pub fn successful_run_history_limit(&self) -> i32 {
        self.analysis
            .as_ref()
            .and_then(|a| a.successful_run_history_limit)
            .unwrap_or(DEFAULT_ANALYSIS_RUN_HISTORY_LIMIT)
    }

    /// Unsuccessful AnalysisRuns to keep (default 5).
    pub fn unsuccessful_run_history_limit(&self) -> i32 {
        self.analysis
            .as_ref()
            .and_then(|a| a.unsuccessful_run_history_limit)
            .unwrap_or(DEFAULT_ANALYSIS_RUN_HISTORY_LIMIT)
    }

    /// The canary strategy, if that is the strategy in use.
    pub fn canary(&self) -> Option<&CanaryStrategy> {
        self.strategy.as_ref().and_then(|s| s.canary.as_ref())
    }

    /// The blue-green strategy, if that is the strategy in use.
    pub fn blue_green(&self) -> Option<&BlueGreenStrategy> {
        self.strategy.as_ref().and_then(|s| s.blue_green.as_ref())
    }

    /// The canary steps (empty when there are none or the strategy is not canary).
    pub fn steps(&self) -> &[CanaryStep] {
        self.canary()
            .and_then(|c| c.steps.as_deref())
            .unwrap_or(&[])
    }

    /// Effective `maxUnavailable`: blue-green's if set, else canary's, else `"25"` (percent).
    pub fn max_unavailable(&self) -> IntOrString {
        if let Some(v) = self.blue_green().and_then(|b| b.max_unavailable.clone()) {
            return v;
        }
        match self.canary() {
            Some(c) => c.max_unavailable(),
            None => IntOrString::String(DEFAULT_MAX_SURGE_OR_UNAVAILABLE.to_string()),
        }
    }

    /// Effective `maxSurge`: canary's if set, else `"25"` (percent).
    pub fn max_surge(&self) -> IntOrString {
        match self.canary() {
            Some(c) => c.max_surge(),
            None => IntOrString::String(DEFAULT_MAX_SURGE_OR_UNAVAILABLE.to_string()),
        }
    }

    /// Seconds old ReplicaSets stay up after a switch: blue-green default 30; canary default
    /// 30 with traffic routing and 0 without (basic canary scales old ReplicaSets down at once).
    pub fn scale_down_delay_seconds(&self) -> i32 {
        if let Some(bg) = self.blue_green() {
            return bg.scale_down_delay_seconds();
        }
        if let Some(c) = self.canary() {
            return c.scale_down_delay_seconds();
        }
        0
    }

    /// Seconds the canary/preview ReplicaSet stays up after an abort before it is scaled
    /// down; `None` when the abort does not scale it down on a deadline: an explicit 0 leaves
    /// it up indefinitely (upstream's meaning), and a basic canary without traffic routing
    /// shrinks it through its weight instead.
    pub fn abort_scale_down_delay_seconds(&self) -> Option<i32> {
        let delay = if let Some(bg) = self.blue_green() {
            bg.abort_scale_down_delay_seconds
                .unwrap_or(DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS)
        } else if let Some(c) = self.canary().filter(|c| c.traffic_routing.is_some()) {
            c.abort_scale_down_delay_seconds
                .unwrap_or(DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS)
        } else {
            0
        };
        (delay > 0).then_some(delay)
    }
}

/// Keeps a recent revision fast-trackable: rolling back to one of the last `revisions`
/// revisions skips the canary steps.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollbackWindowSpec {
    /// Number of recent revisions within the window.
    pub revisions: Option<i32>,
}

/// History limits for the AnalysisRuns a Rollout creates.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunStrategy {
    /// Successful AnalysisRuns to keep (default 5).
    pub successful_run_history_limit: Option<i32>,
    /// Failed, errored or inconclusive AnalysisRuns to keep (default 5).
    pub unsuccessful_run_history_limit: Option<i32>,
}

/// The update strategy; exactly one of `canary` and `blueGreen` must be set.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStrategy {
    /// Run old and new versions side by side behind an active and a preview Service, then switch.
    pub blue_green: Option<BlueGreenStrategy>,
    /// Shift replicas (or traffic) to the new version step by step.
    pub canary: Option<CanaryStrategy>,
}

/// Blue-green update strategy.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlueGreenStrategy {
    /// Service that receives production traffic; switched to the new version on promotion.
    pub active_service: String,
    /// Service pointed at the new version before promotion.
    pub preview_service: Option<String>,
    /// Replicas of the new version before promotion (default: `spec.replicas`).
    pub preview_replica_count: Option<i32>,
    /// Promote automatically once the new version is ready (default true).
    pub auto_promotion_enabled: Option<bool>,
    /// Promote automatically this many seconds after the Rollout paused.
    pub auto_promotion_seconds: Option<i32>,
    /// Maximum number or percentage of pods unavailable during the update.
    pub max_unavailable: Option<IntOrString>,
    /// Seconds the old version stays up after the switch (default 30).
    pub scale_down_delay_seconds: Option<i32>,
    /// Maximum number of old ReplicaSets kept up while waiting for their scale-down delay.
    pub scale_down_delay_revision_limit: Option<i32>,
    /// Analysis that must succeed before the active Service is switched.
    pub pre_promotion_analysis: Option<RolloutAnalysis>,
    /// Spread new pods away from the previous version's nodes.
    pub anti_affinity: Option<AntiAffinity>,
    /// Analysis run after the active Service is switched; failure switches back.
    pub post_promotion_analysis: Option<RolloutAnalysis>,
    /// Labels/annotations added to preview pods only.
    pub preview_metadata: Option<PodTemplateMetadata>,
    /// Labels/annotations added to active pods only.
    pub active_metadata: Option<PodTemplateMetadata>,
    /// Seconds the preview ReplicaSet stays up after an abort (default 30; 0 = at once).
    pub abort_scale_down_delay_seconds: Option<i32>,
}

impl BlueGreenStrategy {
    /// `autoPromotionEnabled`, defaulting to true.
    pub fn auto_promotion_enabled(&self) -> bool {
        self.auto_promotion_enabled.unwrap_or(true)
    }

    /// `scaleDownDelaySeconds`, defaulting to 30.
    pub fn scale_down_delay_seconds(&self) -> i32 {
        self.scale_down_delay_seconds
            .unwrap_or(DEFAULT_SCALE_DOWN_DELAY_SECONDS)
    }
}

/// Spreads new pods away from nodes running the previous version.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AntiAffinity {
    /// Prefer other nodes, with the given weight.
    pub preferred_during_scheduling_ignored_during_execution:
        Option<PreferredDuringSchedulingIgnoredDuringExecution>,
    /// Require other nodes.
    pub required_during_scheduling_ignored_during_execution:
        Option<RequiredDuringSchedulingIgnoredDuringExecution>,
}

/// Soft anti-affinity.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreferredDuringSchedulingIgnoredDuringExecution {
    /// Weight of the preference, 1-100.
    pub weight: i32,
}

/// Hard anti-affinity; carries no settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequiredDuringSchedulingIgnoredDuringExecution {}

/// Canary update strategy.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStrategy {
    /// Service whose selector is pointed at the canary pods.
    pub canary_service: Option<String>,
    /// Service whose selector is pointed at the stable pods.
    pub stable_service: Option<String>,
    /// The steps of an update; without steps an update goes straight to 100%.
    pub steps: Option<Vec<CanaryStep>>,
    /// Shift traffic with a mesh or ingress instead of only with replica counts.
    pub traffic_routing: Option<RolloutTrafficRouting>,
    /// Maximum number or percentage of pods unavailable during the update (default 25%).
    pub max_unavailable: Option<IntOrString>,
    /// Maximum number or percentage of pods above `replicas` during the update (default 25%).
    pub max_surge: Option<IntOrString>,
    /// Background analysis that runs for the whole update.
    pub analysis: Option<RolloutAnalysisBackground>,
    /// Spread canary pods away from the stable version's nodes.
    pub anti_affinity: Option<AntiAffinity>,
    /// Labels/annotations added to canary pods only.
    pub canary_metadata: Option<PodTemplateMetadata>,
    /// Labels/annotations added to stable pods only.
    pub stable_metadata: Option<PodTemplateMetadata>,
    /// Seconds an old ReplicaSet stays up after traffic left it (default 30, traffic routing only).
    pub scale_down_delay_seconds: Option<i32>,
    /// Maximum number of old ReplicaSets kept up while waiting for their scale-down delay.
    pub scale_down_delay_revision_limit: Option<i32>,
    /// Seconds the canary stays up after an abort (default 30 with traffic routing; 0 = at once).
    pub abort_scale_down_delay_seconds: Option<i32>,
    /// Scale the stable ReplicaSet down as traffic shifts away from it (traffic routing only).
    pub dynamic_stable_scale: Option<bool>,
    /// Alternate between two Services instead of a canary/stable pair (ALB only).
    pub ping_pong: Option<PingPongSpec>,
    /// Minimum pods per ReplicaSet while traffic routing is in use.
    pub min_pods_per_replica_set: Option<i32>,
    /// How many canary pods must be available for a step to be considered complete.
    pub replica_progress_threshold: Option<ReplicaProgressThreshold>,
}

impl CanaryStrategy {
    /// `maxSurge`, defaulting to `"25"` (a percentage).
    pub fn max_surge(&self) -> IntOrString {
        self.max_surge
            .clone()
            .unwrap_or_else(|| IntOrString::String(DEFAULT_MAX_SURGE_OR_UNAVAILABLE.to_string()))
    }

    /// `maxUnavailable`, defaulting to `"25"` (a percentage).
    pub fn max_unavailable(&self) -> IntOrString {
        self.max_unavailable
            .clone()
            .unwrap_or_else(|| IntOrString::String(DEFAULT_MAX_SURGE_OR_UNAVAILABLE.to_string()))
    }

    /// `scaleDownDelaySeconds`: default 30 with traffic routing, 0 without.
    pub fn scale_down_delay_seconds(&self) -> i32 {
        if self.traffic_routing.is_none() {
            return 0;
        }
        self.scale_down_delay_seconds
            .unwrap_or(DEFAULT_SCALE_DOWN_DELAY_SECONDS)
    }

    /// `dynamicStableScale`, defaulting to false.
    pub fn dynamic_stable_scale(&self) -> bool {
        self.dynamic_stable_scale.unwrap_or(false)
    }
}

/// The two Services a ping-pong canary alternates between.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PingPongSpec {
    /// The "ping" Service.
    pub ping_service: String,
    /// The "pong" Service.
    pub pong_service: String,
}

/// Threshold of available canary pods at which a step counts as complete.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaProgressThreshold {
    /// `Percent` or `Pods`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The threshold value, in the unit given by `type`.
    pub value: i32,
}

/// One canary step. Exactly one key must be set; every key is optional in the type so that
/// validation can report steps with zero or several keys instead of failing to parse.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStep {
    /// Set the canary weight (percent of replicas, or of traffic with traffic routing).
    pub set_weight: Option<i32>,
    /// Pause, for a duration or until promoted.
    pub pause: Option<RolloutPause>,
    /// Run an Experiment and wait for its result.
    pub experiment: Option<RolloutExperimentStep>,
    /// Run an AnalysisRun and wait for its result.
    pub analysis: Option<RolloutAnalysis>,
    /// Scale the canary independently of its traffic weight (traffic routing only).
    pub set_canary_scale: Option<SetCanaryScale>,
    /// Add or remove a header-based route to the canary (traffic routing only).
    pub set_header_route: Option<SetHeaderRoute>,
    /// Add or remove a mirror route to the canary (traffic routing only).
    pub set_mirror_route: Option<SetMirrorRoute>,
    /// Run a step plugin.
    pub plugin: Option<PluginStep>,
}

impl CanaryStep {
    /// Names of the keys set on this step, in declaration order (for "exactly one key" checks).
    pub fn keys(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if self.set_weight.is_some() {
            keys.push("setWeight");
        }
        if self.pause.is_some() {
            keys.push("pause");
        }
        if self.experiment.is_some() {
            keys.push("experiment");
        }
        if self.analysis.is_some() {
            keys.push("analysis");
        }
        if self.set_canary_scale.is_some() {
            keys.push("setCanaryScale");
        }
        if self.set_header_route.is_some() {
            keys.push("setHeaderRoute");
        }
        if self.set_mirror_route.is_some() {
            keys.push("setMirrorRoute");
        }
        if self.plugin.is_some() {
            keys.push("plugin");
        }
        keys
    }
}

/// A pause step.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutPause {
    /// How long to pause: a number of seconds or a duration string (`30s`, `1m`, `1h`).
    /// Absent means pause until promoted.
    pub duration: Option<IntOrString>,
}

impl RolloutPause {
    /// The pause length; `Ok(None)` for an indefinite pause, `Err` for an unparsable duration.
    pub fn duration(
        &self,
    ) -> Result<Option<std::time::Duration>, crate::k8s::duration::DurationError> {
        self.duration
            .as_ref()
            .map(super::common::int_or_string_to_duration)
            .transpose()
    }
}

/// A step-plugin step.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginStep {
    /// Name of the step plugin.
    pub name: String,
    /// Plugin-defined configuration.
    #[serde(default)]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub config: Option<serde_json::Value>,
}

/// Mirror a share of matching traffic to the canary.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetMirrorRoute {
    /// Name of the managed route (must be listed in `trafficRouting.managedRoutes`).
    pub name: String,
    /// Request matches; absent removes the route.
    #[serde(rename = "match")]
    pub match_: Option<Vec<RouteMatch>>,
    /// Percentage of matching traffic to mirror.
    pub percentage: Option<i32>,
}

/// Conditions a request must meet to be mirrored.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteMatch {
    /// HTTP method to match.
    pub method: Option<StringMatch>,
    /// URL path to match.
    pub path: Option<StringMatch>,
    /// Header values to match, by header name.
    pub headers: Option<BTreeMap<String, StringMatch>>,
}

/// A string matcher; exactly one of the fields should be set.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StringMatch {
    /// Exact value.
    pub exact: Option<String>,
    /// Prefix.
    pub prefix: Option<String>,
    /// Regular expression.
    pub regex: Option<String>,
}

/// Route requests with matching headers to the canary.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetHeaderRoute {
    /// Name of the managed route (must be listed in `trafficRouting.managedRoutes`).
    pub name: Option<String>,
    /// Header matches; absent removes the route.
    #[serde(rename = "match")]
    pub match_: Option<Vec<HeaderRoutingMatch>>,
}

/// A header a request must carry to be routed to the canary.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderRoutingMatch {
    /// Header name.
    pub header_name: String,
    /// Header value matcher.
    pub header_value: StringMatch,
}

/// Scale the canary independently of its traffic weight.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetCanaryScale {
    /// Canary replicas as a percentage of `spec.replicas`.
    pub weight: Option<i32>,
    /// Canary replicas as an absolute count.
    pub replicas: Option<i32>,
    /// Go back to scaling the canary with its traffic weight.
    pub match_traffic_weight: Option<bool>,
}

/// An analysis (step, pre/post-promotion) a Rollout runs.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutAnalysis {
    /// Templates whose metrics are merged into one AnalysisRun.
    pub templates: Option<Vec<AnalysisTemplateRef>>,
    /// Arguments for the templates.
    pub args: Option<Vec<AnalysisRunArgument>>,
    /// Metrics that run in dry-run mode.
    pub dry_run: Option<Vec<DryRun>>,
    /// Measurement retention overrides.
    pub measurement_retention: Option<Vec<MeasurementRetention>>,
    /// Labels/annotations added to the AnalysisRun.
    pub analysis_run_metadata: Option<AnalysisRunMetadata>,
}

/// The canary background analysis: a [`RolloutAnalysis`] plus the step it starts at.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutAnalysisBackground {
    /// Templates whose metrics are merged into one AnalysisRun.
    pub templates: Option<Vec<AnalysisTemplateRef>>,
    /// Arguments for the templates.
    pub args: Option<Vec<AnalysisRunArgument>>,
    /// Metrics that run in dry-run mode.
    pub dry_run: Option<Vec<DryRun>>,
    /// Measurement retention overrides.
    pub measurement_retention: Option<Vec<MeasurementRetention>>,
    /// Labels/annotations added to the AnalysisRun.
    pub analysis_run_metadata: Option<AnalysisRunMetadata>,
    /// Index of the step at which the background analysis starts (default 0).
    pub starting_step: Option<i32>,
}

impl RolloutAnalysisBackground {
    /// The analysis part without `startingStep`, so it can be handled like any other analysis.
    pub fn analysis(&self) -> RolloutAnalysis {
        RolloutAnalysis {
            templates: self.templates.clone(),
            args: self.args.clone(),
            dry_run: self.dry_run.clone(),
            measurement_retention: self.measurement_retention.clone(),
            analysis_run_metadata: self.analysis_run_metadata.clone(),
        }
    }
}

/// An experiment step: run extra ReplicaSets (and analyses) for a while.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutExperimentStep {
    /// ReplicaSets to run, each copying the canary or stable pod template.
    pub templates: Vec<RolloutExperimentTemplate>,
    /// How long the experiment runs (duration string); absent = until its analyses finish.
    pub duration: Option<String>,
    /// Analyses run against the experiment's pods.
    pub analyses: Option<Vec<RolloutExperimentStepAnalysisTemplateRef>>,
    /// Metrics that run in dry-run mode.
    pub dry_run: Option<Vec<DryRun>>,
    /// Labels/annotations added to the experiment's AnalysisRuns.
    pub analysis_run_metadata: Option<AnalysisRunMetadata>,
    /// Seconds the experiment's ReplicaSets stay up after it finishes.
    pub scale_down_delay_seconds: Option<i32>,
}

/// An analysis within an experiment step.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutExperimentStepAnalysisTemplateRef {
    /// Name of the analysis within the experiment.
    pub name: String,
    /// Name of the AnalysisTemplate (or ClusterAnalysisTemplate with `clusterScope`).
    pub template_name: String,
    /// When true, `templateName` names a ClusterAnalysisTemplate.
    pub cluster_scope: Option<bool>,
    /// Arguments for the template.
    pub args: Option<Vec<AnalysisRunArgument>>,
    /// The experiment does not finish before this analysis does.
    pub required_for_completion: Option<bool>,
}

/// A ReplicaSet an experiment step runs.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutExperimentTemplate {
    /// Name of the template, unique within the step.
    pub name: String,
    /// Which pod template to copy: `canary` or `stable`.
    pub spec_ref: String,
    /// Replicas to run (default 1).
    pub replicas: Option<i32>,
    /// Labels/annotations added to the template's pods.
    pub metadata: Option<PodTemplateMetadata>,
    /// Selector for the template's pods.
    pub selector: Option<LabelSelector>,
    /// Traffic weight sent to this template (traffic routing only).
    pub weight: Option<i32>,
    /// Create a Service for the template's pods.
    pub service: Option<TemplateService>,
}

/// `specRef` value copying the canary pod template.
pub const SPEC_REF_CANARY: &str = "canary";
/// `specRef` value copying the stable pod template.
pub const SPEC_REF_STABLE: &str = "stable";

/// Traffic routing configuration; one provider (or plugins) is normally set.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutTrafficRouting {
    /// Istio VirtualService/DestinationRule routing.
    pub istio: Option<IstioTrafficRouting>,
    /// NGINX ingress canary routing.
    pub nginx: Option<NginxTrafficRouting>,
    /// AWS ALB ingress routing.
    pub alb: Option<AlbTrafficRouting>,
    /// SMI TrafficSplit routing.
    pub smi: Option<SmiTrafficRouting>,
    /// Ambassador Mapping routing.
    pub ambassador: Option<AmbassadorTrafficRouting>,
    /// AWS App Mesh routing.
    pub app_mesh: Option<AppMeshTrafficRouting>,
    /// Traefik TraefikService routing.
    pub traefik: Option<TraefikTrafficRouting>,
    /// Routes managed by `setHeaderRoute`/`setMirrorRoute` steps, in precedence order.
    pub managed_routes: Option<Vec<ManagedRoute>>,
    /// Apache APISIX routing.
    pub apisix: Option<ApisixTrafficRouting>,
    /// Traffic router plugin configurations, by plugin name.
    #[serde(default)]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub plugins: Option<BTreeMap<String, serde_json::Value>>,
    /// The total weight traffic is split over (default 100).
    pub max_traffic_weight: Option<i32>,
}

/// A route managed by header/mirror steps.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedRoute {
    /// Name of the route.
    pub name: String,
}

/// Traefik routing.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TraefikTrafficRouting {
    /// Name of the weighted TraefikService to update.
    pub weighted_traefik_service_name: String,
}

/// APISIX routing.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApisixTrafficRouting {
    /// The ApisixRoute to update.
    pub route: Option<ApisixRoute>,
}

/// An ApisixRoute and the rules within it to update.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApisixRoute {
    /// Name of the ApisixRoute.
    pub name: String,
    /// Names of the HTTP rules to update.
    pub rules: Option<Vec<String>>,
}

/// Ambassador routing.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AmbassadorTrafficRouting {
    /// Names of the Mappings to create canary copies of.
    pub mappings: Vec<String>,
}

/// SMI routing.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SmiTrafficRouting {
    /// Service clients address; the TrafficSplit's root.
    pub root_service: Option<String>,
    /// Name of the TrafficSplit to manage (default: the Rollout's name).
    pub traffic_split_name: Option<String>,
}

/// NGINX ingress routing.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NginxTrafficRouting {
    /// Annotation prefix of the ingress controller (default `nginx.ingress.kubernetes.io`).
    pub annotation_prefix: Option<String>,
    /// The stable Ingress a canary copy is made of.
    pub stable_ingress: Option<String>,
    /// Extra canary annotations (e.g. header-based canary) without the prefix.
    pub additional_ingress_annotations: Option<BTreeMap<String, String>>,
    /// Several stable Ingresses, instead of `stableIngress`.
    pub stable_ingresses: Option<Vec<String>>,
    /// Annotations added to the canary Ingress only.
    pub canary_ingress_annotations: Option<BTreeMap<String, String>>,
}

/// Istio routing.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IstioTrafficRouting {
    /// The VirtualService to update.
    pub virtual_service: Option<IstioVirtualService>,
    /// DestinationRule whose subsets select canary and stable pods.
    pub destination_rule: Option<IstioDestinationRule>,
    /// Several VirtualServices, instead of `virtualService`.
    pub virtual_services: Option<Vec<IstioVirtualService>>,
}

/// An Istio VirtualService and the routes within it to update.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IstioVirtualService {
    /// Name of the VirtualService.
    pub name: String,
    /// Names of the HTTP routes to update.
    pub routes: Option<Vec<String>>,
    /// TLS routes to update.
    pub tls_routes: Option<Vec<TlsRoute>>,
    /// TCP routes to update.
    pub tcp_routes: Option<Vec<TcpRoute>>,
}

/// Selects a TLS route of a VirtualService.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsRoute {
    /// Port of the route.
    pub port: Option<i64>,
    /// SNI hosts of the route.
    pub sni_hosts: Option<Vec<String>>,
}

/// Selects a TCP route of a VirtualService.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TcpRoute {
    /// Port of the route.
    pub port: Option<i64>,
}

/// An Istio DestinationRule with canary and stable subsets.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IstioDestinationRule {
    /// Name of the DestinationRule.
    pub name: String,
    /// Subset selecting canary pods.
    pub canary_subset_name: String,
    /// Subset selecting stable pods.
    pub stable_subset_name: String,
    /// Further subsets to keep untouched.
    pub additional_subset_names: Option<Vec<String>>,
}

/// AWS App Mesh routing.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppMeshTrafficRouting {
    /// The virtual service whose routes are updated.
    pub virtual_service: Option<AppMeshVirtualService>,
    /// The canary and stable virtual nodes.
    pub virtual_node_group: Option<AppMeshVirtualNodeGroup>,
}

/// An App Mesh virtual service.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppMeshVirtualService {
    /// Name of the virtual service.
    pub name: String,
    /// Names of the routes to update.
    pub routes: Option<Vec<String>>,
}

/// The App Mesh virtual nodes of the canary and stable versions.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppMeshVirtualNodeGroup {
    /// Virtual node of the canary.
    pub canary_virtual_node_ref: AppMeshVirtualNodeReference,
    /// Virtual node of the stable version.
    pub stable_virtual_node_ref: AppMeshVirtualNodeReference,
}

/// Reference to an App Mesh virtual node.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppMeshVirtualNodeReference {
    /// Name of the virtual node.
    pub name: String,
}

/// AWS ALB ingress routing.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlbTrafficRouting {
    /// The Ingress to update.
    pub ingress: Option<String>,
    /// Port of the Service the Ingress points at.
    pub service_port: i32,
    /// Service whose ingress rule is rewritten into a weighted action (default: the stable Service).
    pub root_service: Option<String>,
    /// Annotation prefix of the ALB controller (default `alb.ingress.kubernetes.io`).
    pub annotation_prefix: Option<String>,
    /// Target-group stickiness.
    pub stickiness_config: Option<StickinessConfig>,
    /// Several Ingresses, instead of `ingress`.
    pub ingresses: Option<Vec<String>>,
}

/// ALB target-group stickiness.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StickinessConfig {
    /// Whether stickiness is enabled.
    pub enabled: bool,
    /// Stickiness duration in seconds.
    pub duration_seconds: i64,
}

string_enum! {
    /// Phase of a Rollout, as reported in `status.phase` and read by Argo CD.
    pub enum RolloutPhase {
        /// Fully rolled out and available.
        Healthy = "Healthy",
        /// An update is in progress.
        Progressing = "Progressing",
        /// Paused by the user or by a pause step.
        Paused = "Paused",
        /// Aborted, invalid, or past its progress deadline.
        Degraded = "Degraded",
    }
}

string_enum! {
    /// Why the controller paused a Rollout (`status.pauseConditions[].reason`).
    pub enum PauseReason {
        /// A canary `pause` step.
        CanaryPauseStep = "CanaryPauseStep",
        /// Blue-green waiting for promotion.
        BlueGreenPause = "BlueGreenPause",
        /// An AnalysisRun ended Inconclusive.
        InconclusiveAnalysisRun = "InconclusiveAnalysisRun",
        /// An Experiment ended Inconclusive.
        InconclusiveExperiment = "InconclusiveExperiment",
    }
}

string_enum! {
    /// Type of a Rollout condition.
    pub enum RolloutConditionType {
        /// The spec is invalid; the message says why.
        InvalidSpec = "InvalidSpec",
        /// At least the minimum number of pods is available.
        Available = "Available",
        /// The update is progressing (or not, with the reason).
        Progressing = "Progressing",
        /// A ReplicaSet failed to create pods.
        ReplicaFailure = "ReplicaFailure",
        /// The Rollout is paused.
        Paused = "Paused",
        /// The update has completed.
        Completed = "Completed",
        /// The Rollout is healthy.
        Healthy = "Healthy",
        /// Sluice extension (kstatus convention): True when the phase is Healthy.
        Ready = "Ready",
        /// Sluice extension (kstatus convention): True while an update progresses or waits
        /// at a pause.
        Reconciling = "Reconciling",
        /// Sluice extension (kstatus convention): True when the Rollout is Degraded
        /// (aborted, invalid spec, progress deadline exceeded).
        Stalled = "Stalled",
    }
}

/// Observed state of a Rollout. Several fields (`abort`, `pauseConditions`, `promoteFull`,
/// `controllerPause`, `currentStepIndex`) are also written by users through the status
/// subresource to promote, abort or retry.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// Set by the user (or the controller) to abort the update; cleared to retry.
    pub abort: Option<bool>,
    /// Why the Rollout is paused; cleared by the user to resume.
    pub pause_conditions: Option<Vec<PauseCondition>>,
    /// True when the controller paused the Rollout; with no pause conditions left it means
    /// the user resumed.
    pub controller_pause: Option<bool>,
    /// When the update was aborted.
    pub aborted_at: Option<Time>,
    /// Pod-template hash of the current (newest) template.
    pub current_pod_hash: Option<String>,
    /// Hash of the canary steps; when it changes, the step index restarts at 0.
    pub current_step_hash: Option<String>,
    /// Total non-terminated pods of all the Rollout's ReplicaSets.
    pub replicas: Option<i32>,
    /// Pods of the current ReplicaSet.
    pub updated_replicas: Option<i32>,
    /// Ready pods of all the Rollout's ReplicaSets.
    pub ready_replicas: Option<i32>,
    /// Available pods of all the Rollout's ReplicaSets.
    pub available_replicas: Option<i32>,
    /// Index of the current canary step; absent when there are no steps.
    pub current_step_index: Option<i32>,
    /// Bumped on pod-template hash collisions so a new hash is computed.
    pub collision_count: Option<i32>,
    /// `metadata.generation` last acted on, as a decimal string.
    pub observed_generation: Option<String>,
    /// Conditions: Available, Progressing, Paused, Completed, Healthy, InvalidSpec, ReplicaFailure.
    pub conditions: Option<Vec<RolloutCondition>>,
    /// Canary-specific status.
    pub canary: Option<CanaryStatus>,
    /// Blue-green-specific status.
    pub blue_green: Option<BlueGreenStatus>,
    /// Replica count reported to the scale subresource (and so to HorizontalPodAutoscalers).
    #[serde(rename = "HPAReplicas")]
    pub hpa_replicas: Option<i32>,
    /// The pod selector in string form, for the scale subresource.
    pub selector: Option<String>,
    /// Pod-template hash of the stable ReplicaSet (a hash, not a name).
    #[serde(rename = "stableRS")]
    pub stable_rs: Option<String>,
    /// The `spec.restartAt` value that has been fully applied.
    pub restarted_at: Option<Time>,
    /// Set by the user to skip the remaining steps and analyses.
    pub promote_full: Option<bool>,
    /// Healthy, Progressing, Paused or Degraded.
    pub phase: Option<RolloutPhase>,
    /// Why the Rollout is in its phase.
    pub message: Option<String>,
    /// Generation of the referenced workload last acted on (workloadRef), as a decimal string.
    pub workload_observed_generation: Option<String>,
    /// State of the AWS ALB (single ingress).
    pub alb: Option<AlbStatus>,
    /// State of the AWS ALBs (several ingresses).
    pub albs: Option<Vec<AlbStatus>>,
    /// Timing of the current or last update.
    pub duration: Option<RolloutDurationStatus>,
}

impl RolloutStatus {
    /// Whether the Rollout is aborted (`status.abort`).
    pub fn is_aborted(&self) -> bool {
        self.abort.unwrap_or(false)
    }

    /// The pause conditions (empty when none).
    pub fn pause_conditions(&self) -> &[PauseCondition] {
        self.pause_conditions.as_deref().unwrap_or(&[])
    }

    /// The conditions (empty when none).
    pub fn conditions(&self) -> &[RolloutCondition] {
        self.conditions.as_deref().unwrap_or(&[])
    }

    /// The condition of the given type, if present.
    pub fn condition(&self, type_: &RolloutConditionType) -> Option<&RolloutCondition> {
        self.conditions().iter().find(|c| &c.type_ == type_)
    }
}

/// Why and since when the controller paused the Rollout.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PauseCondition {
    /// CanaryPauseStep, BlueGreenPause, InconclusiveAnalysisRun or InconclusiveExperiment.
    pub reason: PauseReason,
    /// When the pause began.
    pub start_time: Time,
}

/// A Rollout condition.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutCondition {
    /// Type of the condition.
    #[serde(rename = "type")]
    pub type_: RolloutConditionType,
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
    /// Sluice extension, on its `Ready`, `Reconciling` and `Stalled` conditions only:
    /// the `metadata.generation` the condition describes, an integer as in
    /// `metav1.Condition`, so `kubectl wait --for=condition=Ready` ignores a condition
    /// left from an older generation. Upstream clients ignore the field.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub observed_generation: Option<i64>,
}

/// Timing of an update.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutDurationStatus {
    /// When the update started.
    pub rollout_started_at: Option<Time>,
    /// When the current manual pause started.
    pub manual_pause_started_at: Option<Time>,
    /// Seconds spent in manual pauses so far.
    pub total_manual_pause_duration_seconds: Option<i64>,
    /// When the update finished.
    pub finished_at: Option<Time>,
    /// How the update finished: Promoted, FastPromoted, Aborted, Superseded, RolledBack or FastRolledBack.
    pub completion_status: Option<String>,
}

/// Blue-green-specific status.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlueGreenStatus {
    /// Pod-template hash the preview Service selects.
    pub preview_selector: Option<String>,
    /// Pod-template hash the active Service selects.
    pub active_selector: Option<String>,
    /// Whether the preview ReplicaSet was scaled up to full size ahead of promotion.
    pub scale_up_preview_check_point: Option<bool>,
    /// The pre-promotion AnalysisRun.
    pub pre_promotion_analysis_run_status: Option<RolloutAnalysisRunStatus>,
    /// The post-promotion AnalysisRun.
    pub post_promotion_analysis_run_status: Option<RolloutAnalysisRunStatus>,
}

/// Canary-specific status.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    /// The AnalysisRun of the current step.
    pub current_step_analysis_run_status: Option<RolloutAnalysisRunStatus>,
    /// The background AnalysisRun.
    pub current_background_analysis_run_status: Option<RolloutAnalysisRunStatus>,
    /// Name of the Experiment of the current step.
    pub current_experiment: Option<String>,
    /// Traffic weights last set (traffic routing only).
    pub weights: Option<TrafficWeights>,
    /// Which ping-pong Service is stable: `ping` or `pong`.
    pub stable_ping_pong: Option<String>,
    /// State of step plugins.
    pub step_plugin_statuses: Option<Vec<StepPluginStatus>>,
}

/// Traffic weights last set by the controller.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrafficWeights {
    /// Weight of the canary.
    pub canary: WeightDestination,
    /// Weight of the stable version.
    pub stable: WeightDestination,
    /// Weights of experiment templates.
    pub additional: Option<Vec<WeightDestination>>,
    /// Whether the weights were verified at the load balancer.
    pub verified: Option<bool>,
}

/// A traffic weight and where it goes.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WeightDestination {
    /// Weight, out of `maxTrafficWeight`.
    pub weight: i32,
    /// Service receiving the traffic.
    pub service_name: Option<String>,
    /// Pod-template hash receiving the traffic.
    pub pod_template_hash: Option<String>,
}

/// Name and phase of an AnalysisRun a Rollout is waiting on.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutAnalysisRunStatus {
    /// Name of the AnalysisRun.
    pub name: String,
    /// Its phase (Pending, Running, Successful, Failed, Error, Inconclusive).
    pub status: AnalysisPhase,
    /// Its message.
    pub message: Option<String>,
}

/// State of one step plugin operation.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepPluginStatus {
    /// Index of the step.
    pub index: i32,
    /// Name of the plugin.
    pub name: String,
    /// Run, Terminate or Abort.
    pub operation: String,
    /// Running, Successful, Failed or Error.
    pub phase: Option<String>,
    /// Message from the plugin.
    pub message: Option<String>,
    /// When the operation started.
    pub started_at: Option<Time>,
    /// When the status was last updated.
    pub updated_at: Option<Time>,
    /// When the operation finished.
    pub finished_at: Option<Time>,
    /// Delay before the plugin is called again (duration string).
    pub backoff: Option<String>,
    /// Number of times the plugin was called.
    pub executions: Option<i32>,
    /// Whether the plugin is disabled.
    pub disabled: Option<bool>,
    /// Plugin-defined status.
    #[serde(default)]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub status: Option<serde_json::Value>,
}

/// State of an AWS load balancer managed through ALB routing.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlbStatus {
    /// The load balancer.
    pub load_balancer: Option<AwsResourceRef>,
    /// The canary target group.
    pub canary_target_group: Option<AwsResourceRef>,
    /// The stable target group.
    pub stable_target_group: Option<AwsResourceRef>,
    /// The Ingress.
    pub ingress: Option<String>,
}

/// Reference to an AWS resource.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsResourceRef {
    /// Name of the resource.
    pub name: String,
    /// ARN of the resource.
    pub arn: String,
    /// Full name of the resource.
    pub full_name: Option<String>,
}

/// The Rollout resource, addressed dynamically (`Api<DynamicObject>`), so clients work against
/// any server that serves the Argo Rollouts CRDs, whatever Rust types it knows.
pub fn rollout_resource() -> kube_core::ApiResource {
    kube_core::ApiResource::erase::<Rollout>(&())
}
