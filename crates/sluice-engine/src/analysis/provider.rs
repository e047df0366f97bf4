//! Metric providers: turning a metric's (argument-substituted) `provider` JSON into a measured
//! value. Dispatch is a plain enum: the set of providers is closed, and an enum keeps the async
//! code free of boxed futures.
//!
//! `prometheus` and `web` are measured here over HTTP. `job` needs the cluster: its pure part
//! (building the Job, reading its status) is in [`super::job`] and the controller
//! does the I/O. Every other upstream provider (datadog, newRelic, wavefront, kayenta,
//! cloudWatch, graphite, influxdb, skywalking, plugin) is rejected with an error naming it, so a
//! run using one ends in Error with a clear message instead of silently passing.

use std::collections::BTreeMap;

use thiserror::Error;

use super::expr::Value;
use sluice_api::analysis::{JobMetric, PrometheusMetric, WebMetric};

/// Provider keys Sluice does not implement (upstream names).
pub const UNSUPPORTED_PROVIDERS: &[&str] = &[
    "datadog",
    "newRelic",
    "wavefront",
    "kayenta",
    "cloudWatch",
    "graphite",
    "influxdb",
    "skywalking",
];

/// What a provider measured.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasuredValue {
    /// The value conditions see as `result`.
    pub value: Value,
    /// The measurement's `value` string in the AnalysisRun status (upstream's formatting).
    pub display: String,
    /// The measurement's `metadata` (e.g. Prometheus warnings).
    pub metadata: BTreeMap<String, String>,
}

/// Why a measurement could not be taken; the metric is named in `Display`, while
/// [`ProviderError::kind`]'s text is what goes into the measurement's `message`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("metric \"{metric}\": {kind}")]
pub struct ProviderError {
    pub metric: String,
    pub kind: ProviderErrorKind,
}

/// The cause of a [`ProviderError`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProviderErrorKind {
    #[error("no provider specified")]
    Missing,
    #[error("multiple providers specified ({0}); exactly one is allowed")]
    Multiple(String),
    #[error(
        "provider {0} is not supported by Sluice (supported: prometheus, web, job); use one of those or remove the metric"
    )]
    Unsupported(String),
    /// The provider spec is malformed or uses a field Sluice does not implement.
    #[error("{provider}.{field}: {message}")]
    InvalidSpec {
        provider: &'static str,
        field: String,
        message: String,
    },
    /// The request failed or its answer was unusable (upstream's measurement error message).
    #[error("{0}")]
    Measurement(String),
}

impl ProviderErrorKind {
    pub fn invalid(provider: &'static str, field: &str, message: impl Into<String>) -> Self {
        ProviderErrorKind::InvalidSpec {
            provider,
            field: field.to_string(),
            message: message.into(),
        }
    }
}

/// A metric's provider, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricProvider {
    Web(WebMetric),
    Prometheus(PrometheusMetric),
    Job(Box<JobMetric>),
}

impl MetricProvider {
    /// Parses `metric.provider` (after argument substitution). Exactly one provider key must be
    /// present; unsupported ones are named in the error.
    pub fn from_json(metric: &str, provider: &serde_json::Value) -> Result<Self, ProviderError> {
        let err = |kind| ProviderError {
            metric: metric.to_string(),
            kind,
        };
        let Some(map) = provider.as_object() else {
            return Err(err(ProviderErrorKind::Missing));
        };
        let mut keys: Vec<String> = Vec::new();
        for (k, v) in map {
            if v.is_null() {
                continue;
            }
            if k == "plugin" {
                let names: Vec<String> = v
                    .as_object()
                    .map(|m| m.keys().map(|n| format!("plugin {n:?}")).collect())
                    .unwrap_or_default();
                if names.is_empty() {
                    continue;
                }
                keys.extend(names);
            } else {
                keys.push(k.clone());
            }
        }
        match keys.as_slice() {
            [] => Err(err(ProviderErrorKind::Missing)),
            [one] => {
                let Some(spec) = map.get(one.as_str()) else {
                    // A plugin, named by its key.
                    return Err(err(ProviderErrorKind::Unsupported(one.clone())));
                };
                let parse_err = |provider: &'static str| {
                    move |e: serde_json::Error| {
                        err(ProviderErrorKind::invalid(provider, "", e.to_string()))
                    }
                };
                match one.as_str() {
                    "web" => serde_json::from_value(spec.clone())
                        .map(MetricProvider::Web)
                        .map_err(parse_err("web")),
                    "prometheus" => serde_json::from_value(spec.clone())
                        .map(MetricProvider::Prometheus)
                        .map_err(parse_err("prometheus")),
                    "job" => serde_json::from_value(spec.clone())
                        .map(MetricProvider::Job)
                        .map_err(parse_err("job")),
                    other => Err(err(ProviderErrorKind::Unsupported(other.to_string()))),
                }
            }
            many => Err(err(ProviderErrorKind::Multiple(many.join(", ")))),
        }
    }

    /// The provider's upstream type name (`Web`, `Prometheus`, `Job`).
    pub fn type_name(&self) -> &'static str {
        match self {
            MetricProvider::Web(_) => "Web",
            MetricProvider::Prometheus(_) => "Prometheus",
            MetricProvider::Job(_) => "Job",
        }
    }

    /// Metadata recorded on the metric result when it first runs (upstream `GetMetadata`).
    pub fn metric_metadata(&self) -> BTreeMap<String, String> {
        match self {
            MetricProvider::Prometheus(p) => match p.query.as_deref() {
                Some(q) if !q.is_empty() => {
                    BTreeMap::from([("ResolvedPrometheusQuery".to_string(), q.to_string())])
                }
                _ => BTreeMap::new(),
            },
            _ => BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exactly_one_supported_provider_is_accepted() {
        let web = MetricProvider::from_json("m", &json!({"web": {"url": "http://x"}})).unwrap();
        assert_eq!(web.type_name(), "Web");
        let prom = MetricProvider::from_json(
            "m",
            &json!({"prometheus": {"address": "http://p:9090", "query": "up"}}),
        )
        .unwrap();
        assert_eq!(
            prom.metric_metadata(),
            BTreeMap::from([("ResolvedPrometheusQuery".to_string(), "up".to_string())])
        );
        let job = MetricProvider::from_json(
            "m",
            &json!({"job": {"spec": {"template": {"spec": {"containers": []}}}}}),
        )
        .unwrap();
        assert_eq!(job.type_name(), "Job");
    }

    #[test]
    fn unsupported_missing_and_multiple_providers_are_named() {
        let cases = [
            (
                json!({"datadog": {"query": "x"}}),
                "metric \"m\": provider datadog is not supported by Sluice",
            ),
            (
                json!({"plugin": {"argoproj-labs/sample": {}}}),
                "metric \"m\": provider plugin \"argoproj-labs/sample\" is not supported",
            ),
            (json!({}), "metric \"m\": no provider specified"),
            (
                json!({"web": {"url": "u"}, "prometheus": {"query": "q"}}),
                "metric \"m\": multiple providers specified (prometheus, web)",
            ),
            (
                json!({"web": {"timeoutSeconds": 1}}),
                "metric \"m\": web.: missing field `url`",
            ),
        ];
        for (spec, want) in cases {
            let err = MetricProvider::from_json("m", &spec)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(want), "{spec}: {err}");
        }
        for name in UNSUPPORTED_PROVIDERS {
            let err = MetricProvider::from_json("m", &json!({ *name: {} })).unwrap_err();
            assert_eq!(err.kind, ProviderErrorKind::Unsupported(name.to_string()));
        }
    }
}
