//! Path routing: which endpoint a URL names (health, version, discovery, OpenAPI, or
//! objects of a resource), and the entry point that serves each of them.

use std::sync::Arc;

use axum::extract::{Request, State as AxState};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::control::{self, Control};
use super::options::Query;
use super::resource::{self, Payload};
use super::{Shared, ok};
use crate::discovery;
use crate::error::ApiError;
use crate::faults::{self, Decision};
use crate::{openapi, openapi_v2};

/// A request for objects: `/api/v1/...` or `/apis/{group}/{version}/...`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ResPath {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub resource: String,
    pub name: Option<String>,
    pub sub: Option<String>,
    pub watch: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Route {
    Health,
    Version,
    CoreVersions,
    Groups,
    Group(String),
    ResourceList(String, String),
    OpenApiV2,
    OpenApiV3Index,
    OpenApiV3(String),
    Res(ResPath),
    Control(Control),
    NotFound,
}

fn parse_res(group: &str, version: &str, segs: &[&str]) -> Route {
    let mut segs = segs;
    let mut watch = false;
    if segs.first() == Some(&"watch") {
        watch = true;
        segs = &segs[1..];
    }
    let res = |namespace: Option<&str>, rest: &[&str]| {
        if rest.is_empty() || rest.len() > 3 || rest.iter().any(|s| s.is_empty()) {
            return Route::NotFound;
        }
        Route::Res(ResPath {
            group: group.into(),
            version: version.into(),
            namespace: namespace.map(str::to_string),
            resource: rest[0].into(),
            name: rest.get(1).map(|s| s.to_string()),
            sub: rest.get(2).map(|s| s.to_string()),
            watch,
        })
    };
    if segs.first() == Some(&"namespaces") && segs.len() >= 3 {
        let namespace_sub =
            group.is_empty() && segs.len() == 3 && matches!(segs[2], "status" | "finalize");
        if !namespace_sub {
            return res(Some(segs[1]), &segs[2..]);
        }
    }
    res(None, segs)
}

fn route(path: &str) -> Route {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["healthz" | "readyz" | "livez", ..] => Route::Health,
        ["version"] => Route::Version,
        ["api"] => Route::CoreVersions,
        ["api", "v1"] => Route::ResourceList(String::new(), "v1".into()),
        ["api", "v1", rest @ ..] => parse_res("", "v1", rest),
        ["apis"] => Route::Groups,
        ["apis", g] => Route::Group(g.to_string()),
        ["apis", g, v] => Route::ResourceList(g.to_string(), v.to_string()),
        ["apis", g, v, rest @ ..] => parse_res(g, v, rest),
        ["_sluice", "faults"] => Route::Control(Control::Faults),
        ["_sluice", "requests"] => Route::Control(Control::Requests),
        ["openapi", "v2"] => Route::OpenApiV2,
        ["openapi", "v3"] => Route::OpenApiV3Index,
        ["openapi", "v3", rest @ ..] => Route::OpenApiV3(rest.join("/")),
        _ => Route::NotFound,
    }
}

/// Whether the client accepts aggregated discovery v2 (kubectl and kube-rs ask for it first).
fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let params: Vec<&str> = range.split(';').map(str::trim).collect();
        params.contains(&"as=APIGroupDiscoveryList")
            && params.contains(&"v=v2")
            && params.contains(&"g=apidiscovery.k8s.io")
    })
}

/// The one handler of the router: every request enters here.
pub(super) async fn handle(AxState(sh): AxState<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query = Query::parse(parts.uri.query().unwrap_or_default());
    let header_str = |h: header::HeaderName| {
        parts
            .headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let accept = header_str(header::ACCEPT);
    let user_agent = header_str(header::USER_AGENT);
    let content_type = header_str(header::CONTENT_TYPE);
    let body = match axum::body::to_bytes(body, 256 * 1024 * 1024).await {
        Ok(b) => b,
        Err(e) => {
            return ApiError::bad_request(format!("reading the request body: {e}")).into_response();
        }
    };
    let mut payload = Payload {
        accept,
        content_type,
        user_agent,
        body,
        watch_faults: Decision::default(),
    };
    let r = route(&path);
    let Route::Res(rp) = &r else {
        return serve(&sh, parts.method.clone(), r, query, payload)
            .unwrap_or_else(IntoResponse::into_response);
    };
    let verb = resource::verb(&parts.method, rp, &query);
    let at_ms = chrono::Utc::now().timestamp_millis();
    let decision = sh.faults.decide(&faults::Request {
        verb,
        group: &rp.group,
        resource: &rp.resource,
        subresource: rp.sub.as_deref(),
        user_agent: &payload.user_agent,
    });
    // Built only while the request log is on: otherwise a request costs two atomic loads.
    let logged = sh.requests.enabled().then(|| faults::LoggedRequest {
        seq: 0,
        at_ms,
        user_agent: payload.user_agent.clone(),
        verb: verb.to_string(),
        group: rp.group.clone(),
        resource: rp.resource.clone(),
        subresource: rp.sub.clone(),
        namespace: rp.namespace.clone(),
        name: rp.name.clone(),
        code: 0,
        injected: false,
        lease_holder: if faults::is_write(verb) {
            lease_holder(&sh)
        } else {
            None
        },
    });
    let rp = rp.clone();
    if let Some(latency) = decision.latency {
        tokio::time::sleep(latency).await;
    }
    let (response, injected) = match &decision.error {
        None => {
            payload.watch_faults = decision.clone();
            let res = serve(&sh, parts.method.clone(), r, query, payload)
                .unwrap_or_else(IntoResponse::into_response);
            (res, false)
        }
        Some(fault) => {
            if fault.applied {
                let _ = serve(&sh, parts.method.clone(), r, query, payload);
            }
            tokio::time::sleep(fault.delay).await;
            let err = faults::error_for(
                fault,
                &rp.group,
                &rp.resource,
                rp.name.as_deref().unwrap_or_default(),
            );
            let mut res = err.into_response();
            if fault.code == 429
                && let Ok(v) = header::HeaderValue::from_str(&fault.retry_after_seconds.to_string())
            {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            (res, true)
        }
    };
    if let Some(logged) = logged {
        sh.requests.push(faults::LoggedRequest {
            code: response.status().as_u16(),
            injected,
            ..logged
        });
    }
    response
}

/// The `holderIdentity` of the Lease the request log tracks, now.
fn lease_holder(sh: &Shared) -> Option<String> {
    let (ns, name) = sh.requests.tracked_lease()?;
    let gr = ("coordination.k8s.io".to_string(), "leases".to_string());
    let st = sh.lock();
    let lease = st.get(&gr, &ns, &name)?;
    lease["spec"]["holderIdentity"]
        .as_str()
        .filter(|h| !h.is_empty())
        .map(str::to_string)
}

fn serve(
    sh: &Shared,
    method: Method,
    r: Route,
    query: Query,
    payload: Payload,
) -> Result<Response, ApiError> {
    let accept = payload.accept.as_str();
    match r.clone() {
        Route::Health => {
            Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], "ok").into_response())
        }
        Route::Version => Ok(ok(&discovery::version())),
        Route::CoreVersions | Route::Groups if wants_aggregated(accept) => {
            let doc = discovery::aggregated(&sh.lock().registry, r == Route::CoreVersions);
            Ok((
                StatusCode::OK,
                [(header::CONTENT_TYPE, discovery::AGGREGATED_V2)],
                serde_json::to_vec(&doc).unwrap_or_default(),
            )
                .into_response())
        }
        Route::CoreVersions => Ok(ok(&discovery::core_versions(&sh.addr.to_string()))),
        Route::Groups => Ok(ok(&discovery::group_list(&sh.lock().registry))),
        Route::Group(g) => discovery::group(&sh.lock().registry, &g)
            .map(|v| ok(&v))
            .ok_or_else(ApiError::no_resource),
        Route::ResourceList(g, v) => discovery::resource_list(&sh.lock().registry, &g, &v)
            .map(|v| ok(&v))
            .ok_or_else(ApiError::no_resource),
        Route::OpenApiV2 => {
            let format = openapi_v2::negotiate(accept).ok_or_else(|| {
                ApiError::not_acceptable(format!(
                    "only the following media types are accepted: application/json, {}",
                    openapi_v2::PROTOBUF
                ))
            })?;
            let reg = sh.lock().registry.clone();
            let doc = openapi_v2::rendered(&reg);
            Ok(match format {
                openapi_v2::Format::Json => (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    doc.json.clone(),
                )
                    .into_response(),
                openapi_v2::Format::Protobuf => (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, openapi_v2::PROTOBUF_CONTENT_TYPE)],
                    doc.protobuf.clone(),
                )
                    .into_response(),
            })
        }
        Route::OpenApiV3Index => Ok(ok(&openapi::index(&sh.lock().registry))),
        Route::OpenApiV3(gv) => {
            let reg = sh.lock().registry.clone();
            openapi::group_version_doc(&reg, &gv)
                .map(|v| ok(&v))
                .ok_or_else(ApiError::no_resource)
        }
        Route::NotFound => Err(ApiError::no_resource()),
        Route::Control(c) => control::serve(sh, &method, c, &query, &payload.body),
        Route::Res(rp) => {
            if accept.contains("protobuf") && !accept.contains("json") && !accept.contains("*/*") {
                Err(ApiError::not_acceptable(
                    "only the following media types are accepted: application/json, application/yaml, application/json;as=Table;v=v1;g=meta.k8s.io",
                ))
            } else {
                resource::serve(sh, method, rp, query, payload)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_golden_table() {
        let r = |p: &str| route(p);
        assert_eq!(r("/version"), Route::Version);
        assert_eq!(
            r("/apis/apps/v1"),
            Route::ResourceList("apps".into(), "v1".into())
        );
        let Route::Res(p) = r("/api/v1/namespaces/default/pods/x/status") else {
            panic!()
        };
        assert_eq!(
            (
                p.namespace.as_deref(),
                p.resource.as_str(),
                p.name.as_deref(),
                p.sub.as_deref()
            ),
            (Some("default"), "pods", Some("x"), Some("status"))
        );
        let Route::Res(p) = r("/api/v1/namespaces/team/status") else {
            panic!()
        };
        assert_eq!(
            (
                p.namespace,
                p.resource.as_str(),
                p.name.as_deref(),
                p.sub.as_deref()
            ),
            (None, "namespaces", Some("team"), Some("status"))
        );
        let Route::Res(p) = r("/api/v1/namespaces/team") else {
            panic!()
        };
        assert_eq!(
            (p.resource.as_str(), p.name.as_deref()),
            ("namespaces", Some("team"))
        );
        let Route::Res(p) = r("/apis/argoproj.io/v1alpha1/watch/namespaces/d/rollouts") else {
            panic!()
        };
        assert!(p.watch);
        assert_eq!(p.resource, "rollouts");
        let Route::Res(p) = r("/apis/argoproj.io/v1alpha1/rollouts") else {
            panic!()
        };
        assert_eq!((p.namespace, p.name), (None, None));
        assert_eq!(r("/openapi/v2"), Route::OpenApiV2);
        assert_eq!(r("/nope"), Route::NotFound);
    }
}
