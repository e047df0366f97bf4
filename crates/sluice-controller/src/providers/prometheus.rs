//! The `prometheus` provider (upstream `metricproviders/prometheus`): an instant query
//! (`/api/v1/query` at `now`) or, with `rangeQuery`, a range query (`/api/v1/query_range`).
//!
//! Results as upstream: a scalar is a float; a vector is a list of its sample values; a matrix is
//! the list of all its sample values, series after series. The measurement's value string is
//! `0.99` for a scalar and `[0.99,1]` for a vector/matrix (Go float formatting, `NaN`, `+Inf`).
//! Warnings go to the measurement's `metadata.warnings`.
//!
//! Fields: `address` (or the controller's default address), `query`, `timeout` (seconds, default
//! 30, negative rejected), `insecure`, `headers`, `authentication.basicAuth`,
//! `rangeQuery.{start,end,step}` where start/end are expr-lang time expressions such as
//! `now() - duration("5m")` (supported here: `now()`, `duration("…")`, `date("RFC3339")` joined
//! by `+`/`-`), `authentication.basicAuth` and `authentication.oauth2` (client credentials).
//! `authentication.sigv4` is not implemented and is rejected by name. Requests are POSTed as
//! forms, as Prometheus' Go client does.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Providers;
use super::web::{authenticate, describe_reqwest_error, header_map};
use sluice_api::analysis::PrometheusMetric;
use sluice_api::k8s::duration::parse_duration;
use sluice_engine::analysis::expr::{Value, format_float};
use sluice_engine::analysis::provider::{MeasuredValue, ProviderErrorKind};

/// Default query timeout.
pub const DEFAULT_TIMEOUT_SECONDS: i64 = 30;

/// Takes one Prometheus measurement at `now`.
pub(crate) async fn measure(
    prom: &PrometheusMetric,
    providers: &Providers,
    now: DateTime<Utc>,
) -> Result<MeasuredValue, ProviderErrorKind> {
    let address = prom
        .address
        .as_deref()
        .filter(|a| !a.is_empty())
        .or(providers.default_prometheus_address.as_deref())
        .ok_or_else(|| {
            ProviderErrorKind::invalid(
                "prometheus",
                "address",
                "prometheus address is not configured",
            )
        })?;
    let base = reqwest::Url::parse(address)
        .ok()
        .filter(|u| u.has_host())
        .ok_or_else(|| {
            ProviderErrorKind::invalid(
                "prometheus",
                "address",
                format!("{address:?} is not a URL with a scheme and host"),
            )
        })?;
    let timeout = match prom.timeout {
        None => DEFAULT_TIMEOUT_SECONDS,
        Some(t) if t < 0 => {
            return Err(ProviderErrorKind::invalid(
                "prometheus",
                "timeout",
                "prometheus timeout should not be negative",
            ));
        }
        Some(t) => t,
    };
    let query = prom.query.clone().unwrap_or_default();
    let (endpoint, params) = match &prom.range_query {
        None => (
            "api/v1/query",
            vec![("query", query.clone()), ("time", unix_seconds(now))],
        ),
        Some(range) => {
            let start =
                eval_time(range.start.as_deref().unwrap_or_default(), now).map_err(|e| {
                    ProviderErrorKind::Measurement(format!(
                        "failed to parse rangeQuery.start as time: {e}"
                    ))
                })?;
            let end = eval_time(range.end.as_deref().unwrap_or_default(), now).map_err(|e| {
                ProviderErrorKind::Measurement(format!(
                    "failed to parse rangeQuery.end as time: {e}"
                ))
            })?;
            let step = parse_duration(range.step.as_deref().unwrap_or_default()).map_err(|e| {
                ProviderErrorKind::Measurement(format!(
                    "failed to parse rangeQuery.step as duration: {e}"
                ))
            })?;
            let step_secs = step.num_milliseconds() as f64 / 1000.0;
            (
                "api/v1/query_range",
                vec![
                    ("query", query.clone()),
                    ("start", unix_seconds(start)),
                    ("end", unix_seconds(end)),
                    ("step", format_float(step_secs)),
                ],
            )
        }
    };
    let mut url = base;
    if !url.path().ends_with('/') {
        let p = format!("{}/", url.path());
        url.set_path(&p);
    }
    let url = url
        .join(endpoint)
        .map_err(|e| ProviderErrorKind::invalid("prometheus", "address", e.to_string()))?;
    let timeout = Duration::from_secs(timeout as u64);
    let client = providers.client(prom.insecure.unwrap_or(false));
    let mut request = client.post(url).timeout(timeout).form(&params);
    request = request.headers(header_map(
        "prometheus",
        prom.headers.as_deref().unwrap_or_default(),
    )?);
    request = authenticate(
        "prometheus",
        prom.authentication.as_ref(),
        client,
        timeout,
        request,
    )
    .await?;
    let response = request
        .send()
        .await
        .map_err(|e| ProviderErrorKind::Measurement(describe_reqwest_error(&e)))?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| ProviderErrorKind::Measurement(describe_reqwest_error(&e)))?;
    parse_response(status.as_u16(), &bytes).map_err(ProviderErrorKind::Measurement)
}

/// Prometheus API timestamps: Unix seconds with fractional milliseconds.
fn unix_seconds(t: DateTime<Utc>) -> String {
    format_float(t.timestamp_millis() as f64 / 1000.0)
}

/// Parses a Prometheus HTTP API answer into the measured value, or the error message upstream's
/// client would give (`bad_data: parse error ...`, `server returned HTTP status 500 ...`).
pub fn parse_response(status: u16, body: &[u8]) -> Result<MeasuredValue, String> {
    let parsed: Result<serde_json::Value, _> = serde_json::from_slice(body);
    let json = match parsed {
        Ok(j) if j.get("status").is_some() => j,
        _ => {
            return Err(if (200..300).contains(&status) {
                "invalid Prometheus response: body is not a Prometheus API JSON document"
                    .to_string()
            } else {
                format!("server returned HTTP status {status}")
            });
        }
    };
    if json["status"] != "success" {
        let kind = json["errorType"].as_str().unwrap_or("error");
        let msg = json["error"].as_str().unwrap_or("unknown error");
        return Err(format!("{kind}: {msg}"));
    }
    let data = &json["data"];
    let sample = |pair: &serde_json::Value| -> Result<f64, String> {
        let text = pair
            .get(1)
            .and_then(|v| v.as_str())
            .ok_or_else(|| format!("invalid sample {pair}"))?;
        parse_sample(text).ok_or_else(|| format!("invalid sample value {text:?}"))
    };
    let empty = Vec::new();
    let series = data["result"].as_array().unwrap_or(&empty);
    let (value, display) = match data["resultType"].as_str() {
        Some("scalar") => {
            let v = sample(&data["result"])?;
            (Value::Float(v), format_float(v))
        }
        Some("vector") => {
            let values = series
                .iter()
                .map(|s| sample(&s["value"]))
                .collect::<Result<Vec<_>, _>>()?;
            list_of(values)
        }
        Some("matrix") => {
            let mut values = Vec::new();
            for s in series {
                for pair in s["values"].as_array().unwrap_or(&empty) {
                    values.push(sample(pair)?);
                }
            }
            list_of(values)
        }
        _ => return Err("Prometheus metric type not supported".to_string()),
    };
    let mut metadata = BTreeMap::new();
    if let Some(warnings) = json["warnings"].as_array().filter(|w| !w.is_empty()) {
        let joined: Vec<String> = warnings
            .iter()
            .map(|w| format!("\"{}\"", w.as_str().unwrap_or_default()))
            .collect();
        metadata.insert("warnings".to_string(), joined.join(", "));
    }
    Ok(MeasuredValue {
        value,
        display,
        metadata,
    })
}

fn list_of(values: Vec<f64>) -> (Value, String) {
    let display = format!(
        "[{}]",
        values
            .iter()
            .map(|v| format_float(*v))
            .collect::<Vec<_>>()
            .join(",")
    );
    (
        Value::List(values.into_iter().map(Value::Float).collect()),
        display,
    )
}

/// Prometheus encodes sample values as strings, including `NaN`, `+Inf`, `-Inf`.
fn parse_sample(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => text.parse().ok(),
    }
}

/// Evaluates a range-query time expression: `now()`, `duration("5m")`, `date("2024-01-02T03:04:05Z")`
/// joined by `+` and `-`, with exactly one time term (e.g. `now() - duration("1h")`).
pub fn eval_time(expr: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let mut rest = expr.trim();
    if rest.is_empty() {
        return Err("empty time expression".to_string());
    }
    let mut time: Option<DateTime<Utc>> = None;
    let mut offset = chrono::Duration::zero();
    let mut sign = 1;
    let mut first = true;
    loop {
        if !first {
            rest = rest.trim_start();
            if rest.is_empty() {
                break;
            }
            sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return Err(format!("unexpected {rest:?} in {expr:?}")),
            };
            rest = rest[1..].trim_start();
        }
        first = false;
        let (term, after) = take_call(rest)
            .ok_or_else(|| format!("expected now(), duration(\"…\") or date(\"…\") in {expr:?}"))?;
        rest = after;
        match term {
            ("now", None) => {
                if time.is_some() || sign < 0 {
                    return Err(format!("{expr:?} must contain exactly one added time"));
                }
                time = Some(now);
            }
            ("date", Some(arg)) => {
                if time.is_some() || sign < 0 {
                    return Err(format!("{expr:?} must contain exactly one added time"));
                }
                time = Some(
                    DateTime::parse_from_rfc3339(arg)
                        .map_err(|e| format!("date({arg:?}): {e}"))?
                        .with_timezone(&Utc),
                );
            }
            ("duration", Some(arg)) => {
                let d = parse_duration(arg).map_err(|e| e.to_string())?;
                offset = if sign > 0 { offset + d } else { offset - d };
            }
            (name, _) => return Err(format!("unsupported function {name}() in {expr:?}")),
        }
    }
    let t = time.ok_or_else(|| format!("expected time.Time, but {expr:?} is a duration"))?;
    Ok(t + offset)
}

/// Reads `name()` or `name("arg")` at the start of `s`.
fn take_call(s: &str) -> Option<((&str, Option<&str>), &str)> {
    let open = s.find('(')?;
    let name = s[..open].trim();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    let inside = s[open + 1..].trim_start();
    if let Some(after) = inside.strip_prefix(')') {
        return Some(((name, None), after));
    }
    let quote = inside.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let body = &inside[1..];
    let close = body.find(quote)?;
    let arg = &body[..close];
    let after = body[close + 1..].trim_start().strip_prefix(')')?;
    Some(((name, Some(arg)), after))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{Router, extract::Form, http::HeaderMap, routing::post};
    use serde_json::json;
    use sluice_engine::analysis::provider::MetricProvider;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn vector_becomes_a_list_of_floats() {
        let body = json!({
            "status": "success",
            "data": {"resultType": "vector", "result": [
                {"metric": {"job": "a"}, "value": [1435781451.781, "0.99"]},
                {"metric": {"job": "b"}, "value": [1435781451.781, "1"]}
            ]}
        });
        let got = parse_response(200, body.to_string().as_bytes()).unwrap();
        assert_eq!(
            got.value,
            Value::List(vec![Value::Float(0.99), Value::Float(1.0)])
        );
        assert_eq!(got.display, "[0.99,1]");
        let cond = sluice_engine::analysis::expr::Condition::parse("result[0] >= 0.95").unwrap();
        assert_eq!(cond.eval_value(&got.value), Ok(true));
    }

    #[test]
    fn scalar_matrix_nan_empty_and_warnings() {
        let scalar = json!({"status": "success", "data": {"resultType": "scalar", "result": [1435781451.781, "0.5"]}});
        let got = parse_response(200, scalar.to_string().as_bytes()).unwrap();
        assert_eq!(
            (got.value, got.display.as_str()),
            (Value::Float(0.5), "0.5")
        );

        let matrix = json!({"status": "success", "warnings": ["w1", "w2"], "data": {"resultType": "matrix", "result": [
            {"metric": {}, "values": [[1, "1"], [2, "NaN"]]},
            {"metric": {}, "values": [[1, "+Inf"]]}
        ]}});
        let got = parse_response(200, matrix.to_string().as_bytes()).unwrap();
        assert_eq!(got.display, "[1,NaN,+Inf]");
        assert_eq!(got.metadata["warnings"], "\"w1\", \"w2\"");
        let nan = sluice_engine::analysis::expr::Condition::parse("isNaN(result[1])").unwrap();
        assert_eq!(nan.eval_value(&got.value), Ok(true));

        let empty = json!({"status": "success", "data": {"resultType": "vector", "result": []}});
        let got = parse_response(200, empty.to_string().as_bytes()).unwrap();
        assert_eq!(
            (got.value, got.display.as_str()),
            (Value::List(vec![]), "[]")
        );

        let string =
            json!({"status": "success", "data": {"resultType": "string", "result": [1, "x"]}});
        assert_eq!(
            parse_response(200, string.to_string().as_bytes()).unwrap_err(),
            "Prometheus metric type not supported"
        );
    }

    #[test]
    fn api_errors_and_non_api_answers_are_reported() {
        let bad =
            json!({"status": "error", "errorType": "bad_data", "error": "parse error at char 4"});
        assert_eq!(
            parse_response(400, bad.to_string().as_bytes()).unwrap_err(),
            "bad_data: parse error at char 4"
        );
        assert_eq!(
            parse_response(502, b"<html>bad gateway</html>").unwrap_err(),
            "server returned HTTP status 502"
        );
    }

    #[test]
    fn range_query_time_expressions() {
        let now = at("2024-05-01T12:00:00Z");
        assert_eq!(eval_time("now()", now), Ok(now));
        assert_eq!(
            eval_time("now() - duration(\"5m\")", now),
            Ok(at("2024-05-01T11:55:00Z"))
        );
        assert_eq!(
            eval_time("now()+duration('1h')", now),
            Ok(at("2024-05-01T13:00:00Z"))
        );
        assert_eq!(
            eval_time("date(\"2024-01-01T00:00:00Z\") + duration(\"30s\")", now),
            Ok(at("2024-01-01T00:00:30Z"))
        );
        for bad in [
            "",
            "duration(\"5m\")",
            "now() now()",
            "now() - now()",
            "yesterday()",
            "now() - duration(\"5\")",
        ] {
            assert!(eval_time(bad, now).is_err(), "{bad}");
        }
    }

    type Seen = Arc<Mutex<Vec<(HeaderMap, HashMap<String, String>, String)>>>;

    async fn fake_prometheus(seen: Seen) -> String {
        let handler = |path: &'static str| {
            let seen = seen.clone();
            move |headers: HeaderMap, Form(form): Form<HashMap<String, String>>| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push((headers, form, path.to_string()));
                    axum::Json(json!({
                        "status": "success",
                        "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "0.97"]}]}
                    }))
                }
            }
        };
        let app = Router::new()
            .route("/prom/api/v1/query", post(handler("query")))
            .route("/prom/api/v1/query_range", post(handler("query_range")));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/prom")
    }

    #[tokio::test]
    async fn instant_and_range_queries_reach_the_api_with_auth_and_headers() {
        let seen = Seen::default();
        let address = fake_prometheus(seen.clone()).await;
        let providers = Providers::new(None).unwrap();
        let now = at("2024-05-01T12:00:00Z");
        let instant = MetricProvider::from_json(
            "success-rate",
            &json!({"prometheus": {
                "address": address,
                "query": "sum(rate(x[5m]))",
                "headers": [{"key": "X-Scope-OrgID", "value": "team-a"}],
                "authentication": {"basicAuth": {"username": "u", "password": "p"}}
            }}),
        )
        .unwrap();
        let got = providers
            .measure("success-rate", &instant, now)
            .await
            .unwrap();
        assert_eq!(got.display, "[0.97]");
        let (headers, form, path) = seen.lock().unwrap().pop().unwrap();
        assert_eq!(path, "query");
        assert_eq!(form["query"], "sum(rate(x[5m]))");
        assert_eq!(form["time"], "1714564800");
        assert_eq!(headers["x-scope-orgid"], "team-a");
        assert_eq!(headers["authorization"], "Basic dTpw");

        let range = MetricProvider::from_json(
            "success-rate",
            &json!({"prometheus": {
                "query": "up",
                "rangeQuery": {"start": "now() - duration(\"10m\")", "end": "now()", "step": "1m"}
            }}),
        )
        .unwrap();
        let with_default = Providers::new(Some(address.clone())).unwrap();
        with_default
            .measure("success-rate", &range, now)
            .await
            .unwrap();
        let (_, form, path) = seen.lock().unwrap().pop().unwrap();
        assert_eq!(path, "query_range");
        assert_eq!(form["start"], "1714564200");
        assert_eq!(form["end"], "1714564800");
        assert_eq!(form["step"], "60");

        let err = providers
            .measure("success-rate", &range, now)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "metric \"success-rate\": prometheus.address: prometheus address is not configured"
        );
    }

    #[tokio::test]
    async fn unsupported_auth_and_bad_settings_are_named() {
        let providers = Providers::new(None).unwrap();
        let now = Utc::now();
        let cases = [
            (
                json!({"address": "http://127.0.0.1:9", "query": "up", "authentication": {"sigv4": {"region": "eu"}}}),
                "prometheus.authentication.sigv4: is not supported",
            ),
            (
                json!({"address": "http://127.0.0.1:9", "query": "up", "timeout": -1}),
                "prometheus.timeout: prometheus timeout should not be negative",
            ),
            (
                json!({"address": "not a url", "query": "up"}),
                "prometheus.address:",
            ),
            (
                json!({"address": "http://127.0.0.1:9", "query": "up", "authentication": {"basicAuth": {"username": "u"}}}),
                "password",
            ),
        ];
        for (spec, want) in cases {
            let p = MetricProvider::from_json("m", &json!({"prometheus": spec})).unwrap();
            let err = providers
                .measure("m", &p, now)
                .await
                .unwrap_err()
                .kind
                .to_string();
            assert!(err.contains(want), "{spec}: {err}");
        }
    }
}
