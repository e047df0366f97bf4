//! The analysis kinds: `AnalysisTemplate`, `ClusterAnalysisTemplate` and `AnalysisRun`.
//!
//! Templates and runs share the metric and provider types. A run's status is written by the
//! controller with a merge patch on the main object (there is no status subresource, as
//! upstream), so the run's CRD is generated without one — see [`super::crds`].

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::JobSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::common::{
    AnalysisPhase, AnalysisTemplateRef, Argument, DryRun, IntOrStringError, MeasurementRetention,
    int_or_string_to_i32, preserve_unknown_object,
};

/// Default `consecutiveErrorLimit` of a metric.
pub const DEFAULT_CONSECUTIVE_ERROR_LIMIT: i32 = 4;
/// Measurements kept per metric in status unless `measurementRetention` says otherwise.
pub const DEFAULT_MEASUREMENT_RETENTION: i32 = 10;

/// The metrics, arguments and options shared by AnalysisTemplates and ClusterAnalysisTemplates.
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "argoproj.io",
    version = "v1alpha1",
    kind = "AnalysisTemplate",
    namespaced,
    shortname = "at",
    derive = "PartialEq",
    derive = "Default",
    doc = "AnalysisTemplate holds the metrics and arguments from which AnalysisRuns are created",
    printcolumn = r#"{"name":"Age","type":"date","description":"Time since resource was created","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisTemplateSpec {
    /// Metrics to measure.
    pub metrics: Option<Vec<Metric>>,
    /// Arguments the metrics reference as `{{args.<name>}}`, with optional default values.
    pub args: Option<Vec<Argument>>,
    /// Metrics that run in dry-run mode (measured, never decisive).
    pub dry_run: Option<Vec<DryRun>>,
    /// How many measurements to keep per metric.
    pub measurement_retention: Option<Vec<MeasurementRetention>>,
    /// Other templates whose metrics and arguments are merged into this one.
    pub templates: Option<Vec<AnalysisTemplateRef>>,
}

/// Cluster-scoped variant of [`AnalysisTemplate`], usable from every namespace.
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "argoproj.io",
    version = "v1alpha1",
    kind = "ClusterAnalysisTemplate",
    shortname = "cat",
    derive = "PartialEq",
    derive = "Default",
    doc = "ClusterAnalysisTemplate is a cluster-scoped AnalysisTemplate, usable from any namespace",
    printcolumn = r#"{"name":"Age","type":"date","description":"Time since resource was created","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterAnalysisTemplateSpec {
    /// Metrics to measure.
    pub metrics: Option<Vec<Metric>>,
    /// Arguments the metrics reference as `{{args.<name>}}`, with optional default values.
    pub args: Option<Vec<Argument>>,
    /// Metrics that run in dry-run mode (measured, never decisive).
    pub dry_run: Option<Vec<DryRun>>,
    /// How many measurements to keep per metric.
    pub measurement_retention: Option<Vec<MeasurementRetention>>,
    /// Other templates whose metrics and arguments are merged into this one.
    pub templates: Option<Vec<AnalysisTemplateRef>>,
}

impl From<ClusterAnalysisTemplateSpec> for AnalysisTemplateSpec {
    fn from(s: ClusterAnalysisTemplateSpec) -> Self {
        AnalysisTemplateSpec {
            metrics: s.metrics,
            args: s.args,
            dry_run: s.dry_run,
            measurement_retention: s.measurement_retention,
            templates: s.templates,
        }
    }
}

/// Desired state of an AnalysisRun: the resolved metrics of its templates.
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "argoproj.io",
    version = "v1alpha1",
    kind = "AnalysisRun",
    namespaced,
    shortname = "ar",
    status = "AnalysisRunStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "AnalysisRun measures metrics repeatedly and decides whether a release is good",
    printcolumn = r#"{"name":"Status","type":"string","description":"AnalysisRun status","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Age","type":"date","description":"Time since resource was created","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunSpec {
    /// Metrics to measure.
    pub metrics: Vec<Metric>,
    /// Argument values substituted into `{{args.<name>}}` placeholders.
    pub args: Option<Vec<Argument>>,
    /// Set to true to stop the run; it then ends Successful unless already decided.
    pub terminate: Option<bool>,
    /// Metrics that run in dry-run mode (measured, never decisive).
    pub dry_run: Option<Vec<DryRun>>,
    /// How many measurements to keep per metric.
    pub measurement_retention: Option<Vec<MeasurementRetention>>,
    /// When to delete the run after it finishes.
    pub ttl_strategy: Option<TtlStrategy>,
}

impl AnalysisRunSpec {
    /// Whether the run was asked to stop (`spec.terminate`).
    pub fn is_terminated(&self) -> bool {
        self.terminate.unwrap_or(false)
    }
}

/// One metric: what to measure, how often, and what counts as success.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Metric {
    /// Name of the metric, unique within the run.
    pub name: String,
    /// Time between measurements (duration string); absent = measure once.
    pub interval: Option<String>,
    /// Wait before the first measurement (duration string).
    pub initial_delay: Option<String>,
    /// Number of measurements to take (default 1 without `interval`, unlimited with it).
    pub count: Option<IntOrString>,
    /// Expression that must be true for a measurement to succeed, e.g. `result[0] >= 0.95`.
    pub success_condition: Option<String>,
    /// Expression that marks a measurement failed when true.
    pub failure_condition: Option<String>,
    /// Failed measurements tolerated before the metric fails (default 0; -1 disables).
    pub failure_limit: Option<IntOrString>,
    /// Inconclusive measurements tolerated before the metric is inconclusive (default 0).
    pub inconclusive_limit: Option<IntOrString>,
    /// Consecutive provider errors tolerated before the metric errors (default 4).
    pub consecutive_error_limit: Option<IntOrString>,
    /// Where the measurement comes from.
    pub provider: MetricProvider,
    /// Consecutive successful measurements after which the metric succeeds (default 0 = off).
    pub consecutive_success_limit: Option<IntOrString>,
}

impl Metric {
    /// Effective measurement count: `Ok(Some(n))` for a bounded metric, `Ok(None)` for one
    /// that runs until terminated. A missing or zero count means 1 without `interval` and
    /// unlimited with one.
    pub fn count(&self) -> Result<Option<i32>, IntOrStringError> {
        let explicit = self
            .count
            .as_ref()
            .map(|c| int_or_string_to_i32("count", c))
            .transpose()?
            .filter(|c| *c != 0);
        Ok(match (explicit, self.has_interval()) {
            (Some(c), _) => Some(c),
            (None, false) => Some(1),
            (None, true) => None,
        })
    }

    fn has_interval(&self) -> bool {
        self.interval.as_deref().is_some_and(|i| !i.is_empty())
    }

    /// `failureLimit`, defaulting to 0 (-1 disables the limit).
    pub fn failure_limit(&self) -> Result<i32, IntOrStringError> {
        limit_or("failureLimit", self.failure_limit.as_ref(), 0)
    }

    /// `inconclusiveLimit`, defaulting to 0.
    pub fn inconclusive_limit(&self) -> Result<i32, IntOrStringError> {
        limit_or("inconclusiveLimit", self.inconclusive_limit.as_ref(), 0)
    }

    /// `consecutiveErrorLimit`, defaulting to 4.
    pub fn consecutive_error_limit(&self) -> Result<i32, IntOrStringError> {
        limit_or(
            "consecutiveErrorLimit",
            self.consecutive_error_limit.as_ref(),
            DEFAULT_CONSECUTIVE_ERROR_LIMIT,
        )
    }

    /// `consecutiveSuccessLimit`, defaulting to 0 (disabled).
    pub fn consecutive_success_limit(&self) -> Result<i32, IntOrStringError> {
        limit_or(
            "consecutiveSuccessLimit",
            self.consecutive_success_limit.as_ref(),
            0,
        )
    }
}

fn limit_or(field: &str, v: Option<&IntOrString>, default: i32) -> Result<i32, IntOrStringError> {
    v.map(|v| int_or_string_to_i32(field, v))
        .transpose()
        .map(|v| v.unwrap_or(default))
}

/// When a finished AnalysisRun is deleted.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TtlStrategy {
    /// Seconds after the run completed, whatever its result.
    pub seconds_after_completion: Option<i32>,
    /// Seconds after the run failed.
    pub seconds_after_failure: Option<i32>,
    /// Seconds after the run succeeded.
    pub seconds_after_success: Option<i32>,
}

/// Where a metric's measurements come from; exactly one provider should be set.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricProvider {
    /// Prometheus query.
    pub prometheus: Option<PrometheusMetric>,
    /// Kayenta canary analysis.
    pub kayenta: Option<KayentaMetric>,
    /// HTTP request to any JSON endpoint.
    pub web: Option<WebMetric>,
    /// Datadog query.
    pub datadog: Option<DatadogMetric>,
    /// Wavefront query.
    pub wavefront: Option<WavefrontMetric>,
    /// New Relic NRQL query.
    pub new_relic: Option<NewRelicMetric>,
    /// Kubernetes Job: success when the Job succeeds.
    pub job: Option<JobMetric>,
    /// AWS CloudWatch metric data queries.
    pub cloud_watch: Option<CloudWatchMetric>,
    /// Graphite query.
    pub graphite: Option<GraphiteMetric>,
    /// InfluxDB Flux query.
    pub influxdb: Option<InfluxdbMetric>,
    /// Apache SkyWalking GraphQL query.
    #[serde(rename = "skywalking")]
    pub sky_walking: Option<SkyWalkingMetric>,
    /// Metric plugin configurations, by plugin name.
    #[serde(default)]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub plugin: Option<BTreeMap<String, serde_json::Value>>,
}

impl MetricProvider {
    /// Names of the providers set, in declaration order (for "exactly one provider" checks).
    pub fn kinds(&self) -> Vec<&'static str> {
        let mut kinds = Vec::new();
        let mut push = |set: bool, name: &'static str| {
            if set {
                kinds.push(name);
            }
        };
        push(self.prometheus.is_some(), "prometheus");
        push(self.kayenta.is_some(), "kayenta");
        push(self.web.is_some(), "web");
        push(self.datadog.is_some(), "datadog");
        push(self.wavefront.is_some(), "wavefront");
        push(self.new_relic.is_some(), "newRelic");
        push(self.job.is_some(), "job");
        push(self.cloud_watch.is_some(), "cloudWatch");
        push(self.graphite.is_some(), "graphite");
        push(self.influxdb.is_some(), "influxdb");
        push(self.sky_walking.is_some(), "skywalking");
        push(self.plugin.is_some(), "plugin");
        kinds
    }
}

/// A Prometheus instant or range query.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusMetric {
    /// Base URL of the Prometheus server.
    pub address: Option<String>,
    /// PromQL query; may contain `{{args.x}}` placeholders.
    pub query: Option<String>,
    /// How to authenticate to the server.
    pub authentication: Option<Authentication>,
    /// Query timeout in seconds.
    pub timeout: Option<i64>,
    /// Skip TLS certificate verification.
    pub insecure: Option<bool>,
    /// Extra HTTP headers.
    pub headers: Option<Vec<WebMetricHeader>>,
    /// Run a range query instead of an instant query.
    pub range_query: Option<PrometheusRangeQueryArgs>,
}

/// Range of a Prometheus range query.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusRangeQueryArgs {
    /// Start of the range (expression such as `now() - duration("5m")`).
    pub start: Option<String>,
    /// End of the range (expression such as `now()`).
    pub end: Option<String>,
    /// Resolution step (duration string).
    pub step: Option<String>,
}

/// Authentication options for HTTP-based providers.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Authentication {
    /// AWS SigV4 request signing.
    pub sigv4: Option<Sigv4Config>,
    /// OAuth2 client-credentials flow.
    pub oauth2: Option<OAuth2Config>,
    /// HTTP basic authentication.
    pub basic_auth: Option<BasicAuthConfig>,
}

/// OAuth2 client-credentials settings.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuth2Config {
    /// Token endpoint URL.
    pub token_url: Option<String>,
    /// Client id.
    pub client_id: Option<String>,
    /// Client secret.
    pub client_secret: Option<String>,
    /// Scopes to request.
    pub scopes: Option<Vec<String>>,
}

/// AWS SigV4 signing settings.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Sigv4Config {
    /// AWS region.
    pub region: Option<String>,
    /// AWS credentials profile.
    pub profile: Option<String>,
    /// Role to assume.
    pub role_arn: Option<String>,
}

/// HTTP basic authentication credentials.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuthConfig {
    /// User name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<String>,
}

/// A Wavefront query.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WavefrontMetric {
    /// Wavefront server address.
    pub address: Option<String>,
    /// Query.
    pub query: Option<String>,
}

/// A New Relic NRQL query.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewRelicMetric {
    /// Secret holding the New Relic account credentials.
    pub profile: Option<String>,
    /// NRQL query.
    pub query: String,
    /// Query timeout in seconds.
    pub timeout: Option<i64>,
}

/// A Kubernetes Job whose success or failure is the measurement.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobMetric {
    /// Labels/annotations of the Job.
    pub metadata: Option<ObjectMeta>,
    /// Spec of the Job.
    pub spec: JobSpec,
}

/// A Graphite query.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GraphiteMetric {
    /// Graphite server address.
    pub address: Option<String>,
    /// Query.
    pub query: Option<String>,
}

/// An InfluxDB Flux query.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InfluxdbMetric {
    /// Secret holding the InfluxDB connection settings.
    pub profile: Option<String>,
    /// Flux query.
    pub query: Option<String>,
}

/// AWS CloudWatch metric data queries.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudWatchMetric {
    /// Look-back window of the query (duration string, default 5m).
    pub interval: Option<String>,
    /// The queries, as in the CloudWatch GetMetricData API.
    pub metric_data_queries: Vec<CloudWatchMetricDataQuery>,
}

/// One CloudWatch metric data query.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudWatchMetricDataQuery {
    /// Identifier of the query.
    pub id: Option<String>,
    /// Math expression over other queries.
    pub expression: Option<String>,
    /// Label of the result.
    pub label: Option<String>,
    /// The metric and statistic to retrieve.
    pub metric_stat: Option<CloudWatchMetricStat>,
    /// Granularity in seconds.
    pub period: Option<IntOrString>,
    /// Whether the result is returned.
    pub return_data: Option<bool>,
}

/// A CloudWatch metric and statistic.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudWatchMetricStat {
    /// The metric.
    pub metric: Option<CloudWatchMetricStatMetric>,
    /// Granularity in seconds.
    pub period: Option<IntOrString>,
    /// Statistic, e.g. `Average`, `p99`.
    pub stat: Option<String>,
    /// Unit of the statistic.
    pub unit: Option<String>,
}

/// A CloudWatch metric identity.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudWatchMetricStatMetric {
    /// Dimensions of the metric.
    pub dimensions: Option<Vec<CloudWatchMetricStatMetricDimension>>,
    /// Name of the metric.
    pub metric_name: Option<String>,
    /// Namespace of the metric.
    pub namespace: Option<String>,
}

/// A CloudWatch metric dimension.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudWatchMetricStatMetricDimension {
    /// Dimension name.
    pub name: Option<String>,
    /// Dimension value.
    pub value: Option<String>,
}

/// An Apache SkyWalking query.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SkyWalkingMetric {
    /// SkyWalking OAP address.
    pub address: Option<String>,
    /// GraphQL query.
    pub query: Option<String>,
    /// Look-back window (duration string).
    pub interval: Option<String>,
}

/// A Kayenta canary analysis.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KayentaMetric {
    /// Kayenta server address.
    pub address: String,
    /// Application name.
    pub application: String,
    /// Name of the canary configuration.
    pub canary_config_name: String,
    /// Metrics account.
    pub metrics_account_name: String,
    /// Configuration account.
    pub configuration_account_name: String,
    /// Storage account.
    pub storage_account_name: String,
    /// Score thresholds.
    pub threshold: KayentaThreshold,
    /// Scopes compared.
    pub scopes: Vec<KayentaScope>,
    /// Whether to look back over the whole scope instead of the latest interval.
    pub lookback: Option<bool>,
}

/// Kayenta score thresholds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KayentaThreshold {
    /// Score at or above which the canary passes.
    pub pass: i64,
    /// Score at or above which the canary is marginal.
    pub marginal: i64,
}

/// A Kayenta control/experiment scope pair.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KayentaScope {
    /// Name of the scope.
    pub name: String,
    /// The control (baseline) scope.
    pub control_scope: ScopeDetail,
    /// The experiment (canary) scope.
    pub experiment_scope: ScopeDetail,
}

/// One Kayenta scope.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScopeDetail {
    /// Scope selector.
    pub scope: String,
    /// Region.
    pub region: String,
    /// Step in seconds.
    pub step: i64,
    /// Start time.
    pub start: Option<String>,
    /// End time.
    pub end: Option<String>,
}

/// An HTTP request to any endpoint returning JSON (or text).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebMetric {
    /// HTTP method: GET (default), POST or PUT.
    pub method: Option<String>,
    /// URL; may contain `{{args.x}}` placeholders.
    pub url: String,
    /// HTTP headers.
    pub headers: Option<Vec<WebMetricHeader>>,
    /// Request body as a string (POST/PUT).
    pub body: Option<String>,
    /// Request timeout in seconds (default 10).
    pub timeout_seconds: Option<i64>,
    /// JSONPath selecting the `result` from the response, e.g. `{$.data.ok}`.
    pub json_path: Option<String>,
    /// Skip TLS certificate verification.
    pub insecure: Option<bool>,
    /// Request body as JSON (POST/PUT).
    #[serde(default)]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub json_body: Option<serde_json::Value>,
    /// How to authenticate.
    pub authentication: Option<Authentication>,
}

/// An HTTP header.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebMetricHeader {
    /// Header name.
    pub key: String,
    /// Header value.
    pub value: String,
}

/// A Datadog query (v1) or queries with a formula (v2).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatadogMetric {
    /// Look-back window (duration string, default 5m).
    #[schemars(extend("default" = "5m"))]
    pub interval: Option<String>,
    /// Query (v1).
    pub query: Option<String>,
    /// Named queries combined by `formula` (v2).
    pub queries: Option<BTreeMap<String, String>>,
    /// Formula over `queries` (v2).
    pub formula: Option<String>,
    /// Datadog API version: `v1` (default) or `v2`.
    #[schemars(extend("default" = "v1", "enum" = ["v1", "v2"]))]
    pub api_version: Option<String>,
    /// How points are aggregated (v2): avg, min, max, sum, last, percentile, mean, l2norm, area.
    #[schemars(extend("enum" = ["avg", "min", "max", "sum", "last", "percentile", "mean", "l2norm", "area"]))]
    pub aggregator: Option<String>,
    /// Secret holding the API and application keys.
    pub secret_ref: Option<SecretRef>,
    /// Request timeout (duration string, default 10s).
    #[schemars(extend("default" = "10s"))]
    pub request_timeout: Option<String>,
}

/// Reference to a Secret holding provider credentials.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Name of the Secret.
    pub name: Option<String>,
    /// Whether the Secret is in the run's namespace (else the controller's).
    pub namespaced: Option<bool>,
}

/// Observed state of an AnalysisRun.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunStatus {
    /// Pending, Running, Successful, Failed, Error or Inconclusive.
    pub phase: AnalysisPhase,
    /// Why the run is in its phase.
    pub message: Option<String>,
    /// Per-metric results and recent measurements.
    pub metric_results: Option<Vec<MetricResult>>,
    /// When the run started.
    pub started_at: Option<Time>,
    /// Counts of metrics by outcome (decisive metrics only).
    pub run_summary: Option<RunSummary>,
    /// Counts of dry-run metrics by outcome.
    pub dry_run_summary: Option<RunSummary>,
    /// When the run finished.
    pub completed_at: Option<Time>,
}

/// Counts of metrics by outcome.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    /// Number of metrics.
    pub count: Option<i32>,
    /// Successful metrics.
    pub successful: Option<i32>,
    /// Failed metrics.
    pub failed: Option<i32>,
    /// Inconclusive metrics.
    pub inconclusive: Option<i32>,
    /// Errored metrics.
    pub error: Option<i32>,
}

/// Result of one metric.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricResult {
    /// Name of the metric.
    pub name: String,
    /// Phase of the metric.
    pub phase: AnalysisPhase,
    /// Most recent measurements, oldest first.
    pub measurements: Option<Vec<Measurement>>,
    /// Why the metric is in its phase.
    pub message: Option<String>,
    /// Measurements taken.
    pub count: Option<i32>,
    /// Successful measurements.
    pub successful: Option<i32>,
    /// Failed measurements.
    pub failed: Option<i32>,
    /// Inconclusive measurements.
    pub inconclusive: Option<i32>,
    /// Errored measurements.
    pub error: Option<i32>,
    /// Errors in a row, reset by a successful measurement.
    pub consecutive_error: Option<i32>,
    /// Whether the metric runs in dry-run mode.
    pub dry_run: Option<bool>,
    /// Provider-specific information about the metric.
    pub metadata: Option<BTreeMap<String, String>>,
    /// Successes in a row.
    pub consecutive_success: Option<i32>,
}

/// One measurement of a metric.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Measurement {
    /// Outcome of the measurement.
    pub phase: AnalysisPhase,
    /// Error or explanation.
    pub message: Option<String>,
    /// When the measurement started.
    pub started_at: Option<Time>,
    /// When the measurement finished.
    pub finished_at: Option<Time>,
    /// The measured value, as text.
    pub value: Option<String>,
    /// Provider-specific information (e.g. the Job name).
    pub metadata: Option<BTreeMap<String, String>>,
    /// When to check an asynchronous measurement (e.g. a Job) again.
    pub resume_at: Option<Time>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(count: Option<IntOrString>, interval: Option<&str>) -> Metric {
        Metric {
            name: "m".into(),
            count,
            interval: interval.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn metric_count_defaults_to_one_without_interval_and_unbounded_with_one() {
        assert_eq!(metric(None, None).count(), Ok(Some(1)));
        assert_eq!(metric(None, Some("30s")).count(), Ok(None));
        assert_eq!(
            metric(Some(IntOrString::Int(0)), Some("30s")).count(),
            Ok(None)
        );
        assert_eq!(metric(Some(IntOrString::Int(0)), None).count(), Ok(Some(1)));
        assert_eq!(
            metric(Some(IntOrString::String("5".into())), Some("1m")).count(),
            Ok(Some(5))
        );
        assert!(
            metric(Some(IntOrString::String("five".into())), None)
                .count()
                .is_err()
        );
    }

    #[test]
    fn metric_limits_have_upstream_defaults() {
        let m = metric(None, None);
        assert_eq!(m.failure_limit(), Ok(0));
        assert_eq!(m.inconclusive_limit(), Ok(0));
        assert_eq!(m.consecutive_error_limit(), Ok(4));
        assert_eq!(m.consecutive_success_limit(), Ok(0));
        let m = Metric {
            failure_limit: Some(IntOrString::Int(-1)),
            consecutive_error_limit: Some(IntOrString::String("2".into())),
            ..m
        };
        assert_eq!(m.failure_limit(), Ok(-1));
        assert_eq!(m.consecutive_error_limit(), Ok(2));
    }

    #[test]
    fn provider_kinds_lists_every_key_set() {
        let p = MetricProvider {
            web: Some(WebMetric {
                url: "http://x".into(),
                ..Default::default()
            }),
            prometheus: Some(PrometheusMetric::default()),
            ..Default::default()
        };
        assert_eq!(p.kinds(), vec!["prometheus", "web"]);
        assert!(MetricProvider::default().kinds().is_empty());
    }

    #[test]
    fn analysis_phase_completion() {
        assert!(AnalysisPhase::Inconclusive.is_completed());
        assert!(!AnalysisPhase::Running.is_completed());
        assert!(!AnalysisPhase::Other("Weird".into()).is_completed());
    }
}
