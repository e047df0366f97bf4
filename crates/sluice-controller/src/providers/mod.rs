//! The metric providers measured over HTTP: `web` and `prometheus`. What a provider spec
//! means and what a measurement returns are pure and live in
//! `sluice_engine::analysis::provider`; this module does the requests. The Job provider's I/O
//! is in the AnalysisRun controller.
pub mod prometheus;
pub mod web;

#[cfg(test)]
mod fuzz;

use chrono::{DateTime, Utc};
use sluice_engine::analysis::provider::{
    MeasuredValue, MetricProvider, ProviderError, ProviderErrorKind,
};

/// Shared HTTP clients and defaults for the HTTP providers. Create once and reuse: reqwest
/// clients pool connections.
#[derive(Debug, Clone)]
pub struct Providers {
    secure: reqwest::Client,
    insecure: reqwest::Client,
    /// Used when a Prometheus metric has no `address` (upstream reads
    /// `ARGO_ROLLOUTS_PROMETHEUS_ADDRESS`; the binary passes it in).
    pub default_prometheus_address: Option<String>,
}

impl Providers {
    pub fn new(default_prometheus_address: Option<String>) -> Result<Self, reqwest::Error> {
        Ok(Providers {
            secure: reqwest::Client::builder().build()?,
            insecure: reqwest::Client::builder()
                .danger_accept_invalid_certs(true)
                .build()?,
            default_prometheus_address,
        })
    }

    pub(crate) fn client(&self, insecure: bool) -> &reqwest::Client {
        if insecure {
            &self.insecure
        } else {
            &self.secure
        }
    }

    /// Takes one measurement. `now` is the query time for Prometheus (`now()` in range
    /// queries). Job metrics are not measured here (see module docs).
    pub async fn measure(
        &self,
        metric: &str,
        provider: &MetricProvider,
        now: DateTime<Utc>,
    ) -> Result<MeasuredValue, ProviderError> {
        let result = match provider {
            MetricProvider::Web(w) => web::measure(w, self, metric).await,
            MetricProvider::Prometheus(p) => prometheus::measure(p, self, now).await,
            MetricProvider::Job(_) => Err(ProviderErrorKind::invalid(
                "job",
                "",
                "job metrics are run by the controller, not over HTTP",
            )),
        };
        result.map_err(|kind| ProviderError {
            metric: metric.to_string(),
            kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sluice_api::analysis::AnalysisRun;
    use sluice_api::common::AnalysisPhase;
    use sluice_engine::analysis::run::{FinishTimes, SecretValues, TakenMeasurement, plan_run};

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn run_from(spec: serde_json::Value) -> AnalysisRun {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "AnalysisRun",
            "metadata": {"name": "r", "namespace": "ns", "uid": "u-1"},
            "spec": spec
        }))
        .unwrap()
    }

    fn args_service() -> serde_json::Value {
        json!([{"name": "service", "value": "checkout"}])
    }

    #[tokio::test]
    async fn plan_measure_plan_against_a_real_http_endpoint() {
        use axum::{Router, routing::get};
        let app = Router::new().route(
            "/checkout",
            get(|| async { axum::Json(json!({"data": {"ratio": 0.97}})) }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let metric = json!({
            "name": "ok-rate",
            "successCondition": "result >= 0.95",
            "provider": {"web": {"url": format!("http://{addr}/{{{{args.service}}}}"), "jsonPath": "{$.data.ratio}"}}
        });
        let run = run_from(json!({"metrics": [metric], "args": args_service()}));
        let secrets = SecretValues::new();
        let now = at(0);
        let first = plan_run(&run, &secrets, &[], &FinishTimes::default(), now);
        let providers = Providers::new(None).unwrap();
        let mut taken_now = Vec::new();
        for due in &first.due {
            let result = providers.measure(&due.metric, &due.provider.0, now).await;
            taken_now.push(TakenMeasurement {
                metric: due.metric.clone(),
                started_at: now,
                finished_at: now,
                outcome: result.into(),
            });
        }
        let second = plan_run(&run, &secrets, &taken_now, &FinishTimes::default(), now);
        assert_eq!(second.status.phase, AnalysisPhase::Successful);
        let m = &second.status.metric_results.unwrap()[0]
            .measurements
            .clone()
            .unwrap()[0];
        assert_eq!(m.value.as_deref(), Some("0.97"));
    }
}
