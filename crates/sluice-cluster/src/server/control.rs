//! The control endpoints under `/_sluice/`, outside the Kubernetes API paths and served on the
//! cluster's 127.0.0.1 port only: fault injection and the request log (see [`crate::faults`]).
//!
//! - `GET /_sluice/faults`: `{"faults": <configuration>, "stats": <counts>}`.
//! - `PUT /_sluice/faults` with a configuration (JSON or YAML): replaces it; `{}` switches
//!   every fault off.
//! - `GET /_sluice/requests?since=N&limit=M`: logged requests numbered N or later.
//! - `PUT /_sluice/requests` with `{"enabled": true, "lease": "namespace/name"}`.

use axum::body::Bytes;
use axum::http::Method;
use axum::response::Response;
use serde_json::json;

use super::options::Query;
use super::{Shared, ok};
use crate::error::ApiError;
use crate::faults::{Faults, RequestLogConfig};

/// A control endpoint.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Control {
    Faults,
    Requests,
}

pub(super) fn serve(
    sh: &Shared,
    method: &Method,
    c: Control,
    q: &Query,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let text =
        std::str::from_utf8(body).map_err(|_| ApiError::bad_request("the body is not UTF-8"))?;
    match (c, method) {
        (Control::Faults, &Method::GET) => Ok(ok(&json!({
            "faults": sh.faults.faults(),
            "stats": sh.faults.stats(),
        }))),
        (Control::Faults, &Method::PUT) => {
            let f = Faults::parse(text).map_err(|e| ApiError::bad_request(e.to_string()))?;
            tracing::info!(faults = ?f, "fault injection configured");
            sh.faults.set(f);
            Ok(ok(&json!({"faults": sh.faults.faults()})))
        }
        (Control::Requests, &Method::GET) => {
            let num = |k: &str, default: u64| {
                q.get(k).map_or(Ok(default), |v| {
                    v.parse::<u64>()
                        .map_err(|_| ApiError::bad_request(format!("{k}: not a number: {v}")))
                })
            };
            let since = num("since", 0)?;
            let limit = num("limit", 10_000)?;
            let items = sh.requests.since(since, limit as usize);
            Ok(ok(&json!({"config": sh.requests.config(), "items": items})))
        }
        (Control::Requests, &Method::PUT) => {
            let c: RequestLogConfig = serde_yaml::from_str(text)
                .map_err(|e| ApiError::bad_request(format!("request log: {e}")))?;
            if let Some(l) = &c.lease
                && l.split_once('/')
                    .is_none_or(|(a, b)| a.is_empty() || b.is_empty())
            {
                return Err(ApiError::bad_request(format!(
                    "lease: `{l}` is not namespace/name"
                )));
            }
            sh.requests.configure(c);
            Ok(ok(&json!({"config": sh.requests.config()})))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}
