//! The HTTP face of the embedded cluster: path routing for core and group APIs, content
//! negotiation (JSON and Tables), and the handlers for every verb.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State as AxState};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use chrono::Utc;
use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use super::discovery;
use super::error::ApiError;
use super::events;
use super::hpa;
use super::openapi;
use super::ops::{self, DeleteOpts, Deleted, Part, Propagation, WriteOpts};
use super::patch::{self, PatchContext as PatchTarget, PatchType as PatchKind};
use super::protobuf;
use super::selector::{Selector, field_value};
use super::store::{EventType, State, Stored, WatchEvent};
use super::table::{self, Include};
use super::types::ResourceType;

/// One recorded API call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Kubernetes verb: get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

/// The audit log keeps this many most recent calls, so a long-running cluster stays bounded.
pub const AUDIT_CAP: usize = 200_000;

/// State shared by every handler and background task.
pub struct Shared {
    pub state: Mutex<State>,
    pub gc_notify: Notify,
    pub audit: Mutex<std::collections::VecDeque<AuditEntry>>,
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    /// How often watches that asked for bookmarks get one.
    pub bookmark_interval: Duration,
}

impl Shared {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

fn json_response(code: StatusCode, v: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(v).unwrap_or_default(),
    )
        .into_response()
}

fn ok(v: &Value) -> Response {
    json_response(StatusCode::OK, v)
}

/// A request for objects: `/api/v1/...` or `/apis/{group}/{version}/...`.
#[derive(Debug, Clone, PartialEq)]
struct ResPath {
    group: String,
    version: String,
    namespace: Option<String>,
    resource: String,
    name: Option<String>,
    sub: Option<String>,
    watch: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Route {
    Health,
    Version,
    CoreVersions,
    Groups,
    Group(String),
    ResourceList(String, String),
    OpenApiV3Index,
    OpenApiV3(String),
    Res(ResPath),
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
        ["openapi", "v3"] => Route::OpenApiV3Index,
        ["openapi", "v3", rest @ ..] => Route::OpenApiV3(rest.join("/")),
        _ => Route::NotFound,
    }
}

/// Parsed query string (last value wins).
struct Query(HashMap<String, String>);

impl Query {
    fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }
    fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1"))
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

fn wants_table(accept: &str) -> bool {
    accept.contains("as=Table")
}

fn decode_body(body: &[u8], content_type: &str) -> Result<Value, ApiError> {
    if content_type.starts_with("application/vnd.kubernetes.protobuf") {
        protobuf::decode(body).map_err(|e| {
            ApiError::unsupported_media_msg(format!(
                "the body of the request could not be decoded: {e}"
            ))
        })
    } else if content_type.contains("yaml") {
        serde_yaml::from_slice::<Value>(body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; yaml parse error: {e}"))
        })
    } else {
        serde_json::from_slice::<Value>(body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        })
    }
}

fn now_string() -> String {
    Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The object as served at `version`, borrowed when the stored copy already is exactly that
/// (the common case), so responses encode it without a deep copy.
fn presented<'a>(t: &ResourceType, version: &str, obj: &'a Value) -> Cow<'a, Value> {
    let reshaped = t.group == "events.k8s.io" || (t.group == "autoscaling" && version == "v1");
    if !reshaped
        && obj["kind"].as_str() == Some(t.kind.as_str())
        && obj["apiVersion"]
            .as_str()
            .is_some_and(|av| t.is_api_version(av, version))
    {
        Cow::Borrowed(obj)
    } else {
        Cow::Owned(present(t, version, obj))
    }
}

/// The object as served at `version`, encoded: the stored object's shared encoding when it is
/// served as stored.
fn presented_json(t: &ResourceType, version: &str, obj: &Stored) -> Bytes {
    match presented(t, version, obj) {
        Cow::Borrowed(_) => obj.json(),
        Cow::Owned(o) => Bytes::from(serde_json::to_vec(&o).unwrap_or_default()),
    }
}

/// A list response assembled from the items' encodings (keys in the order serde_json's
/// sorted maps give a whole list object).
fn list_json(api_version: &str, kind: &str, meta: &Value, items: &[Bytes]) -> Vec<u8> {
    let mut out = Vec::with_capacity(items.iter().map(|i| i.len() + 1).sum::<usize>() + 256);
    out.extend_from_slice(b"{\"apiVersion\":");
    let _ = serde_json::to_writer(&mut out, api_version);
    out.extend_from_slice(b",\"items\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item);
    }
    out.extend_from_slice(b"],\"kind\":");
    let _ = serde_json::to_writer(&mut out, kind);
    out.extend_from_slice(b",\"metadata\":");
    let _ = serde_json::to_writer(&mut out, meta);
    out.push(b'}');
    out
}

/// The object as served at `version` (multi-version types share one stored copy).
fn present(t: &ResourceType, version: &str, obj: &Value) -> Value {
    let mut o = if t.group == "events.k8s.io" {
        events::to_events_v1(obj)
    } else if t.group == "autoscaling" && version == "v1" {
        hpa::to_v1(obj)
    } else {
        obj.clone()
    };
    o["apiVersion"] = json!(t.api_version(version));
    o["kind"] = json!(t.kind);
    o
}

async fn handle(AxState(sh): AxState<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query = Query(
        serde_urlencoded::from_str::<Vec<(String, String)>>(parts.uri.query().unwrap_or_default())
            .unwrap_or_default()
            .into_iter()
            .collect(),
    );
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
    let method = parts.method.clone();
    let r = route(&path);
    let result = match r.clone() {
        Route::Health => {
            Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], "ok").into_response())
        }
        Route::Version => Ok(ok(&discovery::version())),
        Route::CoreVersions | Route::Groups if wants_aggregated(&accept) => {
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
        Route::OpenApiV3Index => Ok(ok(&openapi::index(&sh.lock().registry))),
        Route::OpenApiV3(gv) => {
            let reg = sh.lock().registry.clone();
            openapi::group_version_doc(&reg, &gv)
                .map(|v| ok(&v))
                .ok_or_else(ApiError::no_resource)
        }
        Route::NotFound => Err(ApiError::no_resource()),
        Route::Res(rp) => {
            if accept.contains("protobuf") && !accept.contains("json") && !accept.contains("*/*") {
                Err(ApiError::not_acceptable(
                    "only the following media types are accepted: application/json, application/yaml, application/json;as=Table;v=v1;g=meta.k8s.io",
                ))
            } else {
                resource_request(
                    &sh,
                    method,
                    rp,
                    query,
                    &accept,
                    &content_type,
                    &user_agent,
                    body,
                )
            }
        }
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

fn record(sh: &Shared, verb: &str, t: &ResourceType, rp: &ResPath) {
    let e = AuditEntry {
        verb: verb.into(),
        group: t.group.clone(),
        resource: t.plural.clone(),
        subresource: rp.sub.clone(),
        namespace: rp.namespace.clone(),
        name: rp.name.clone(),
    };
    let mut log = sh.audit.lock().unwrap_or_else(|p| p.into_inner());
    if log.len() >= AUDIT_CAP {
        log.pop_front();
    }
    log.push_back(e);
}

fn write_opts(q: &Query) -> WriteOpts {
    WriteOpts {
        dry_run: q.get("dryRun") == Some("All"),
        now: now_string(),
    }
}

#[allow(clippy::too_many_arguments)]
fn resource_request(
    sh: &Arc<Shared>,
    method: Method,
    rp: ResPath,
    q: Query,
    accept: &str,
    content_type: &str,
    user_agent: &str,
    body: Bytes,
) -> Result<Response, ApiError> {
    let t = sh
        .lock()
        .registry
        .lookup(&rp.group, &rp.version, &rp.resource)
        .ok_or_else(ApiError::no_resource)?;
    if rp.namespace.is_some() && !t.namespaced {
        return Err(ApiError::no_resource());
    }
    let version = rp.version.clone();
    let vi = t.version(&version).expect("looked up by version");
    match rp.sub.as_deref() {
        None => {}
        Some("status") if vi.status => {}
        Some("scale") if vi.scale.is_some() => {}
        Some("finalize") if t.plural == "namespaces" => {}
        Some(_) => return Err(ApiError::no_resource()),
    }
    let ns = rp.namespace.clone().unwrap_or_default();
    let table = wants_table(accept);
    // The type whose store holds the objects: events.k8s.io/v1 Events live in core/v1's.
    let (st_t, st_version) = if t.group == "events.k8s.io" {
        let core = sh
            .lock()
            .registry
            .lookup("", "v1", "events")
            .ok_or_else(ApiError::no_resource)?;
        (core, "v1".to_string())
    } else if t.group == "autoscaling" {
        (t.clone(), "v2".to_string())
    } else {
        (t.clone(), version.clone())
    };
    match (&method, rp.name.as_deref()) {
        (&Method::GET, None) => {
            let watch = rp.watch || q.flag("watch");
            record(sh, if watch { "watch" } else { "list" }, &t, &rp);
            if watch {
                watch_response(
                    sh,
                    &t,
                    &st_t,
                    &version,
                    rp.namespace.clone(),
                    None,
                    &q,
                    table,
                )
            } else {
                list(sh, &t, &st_t, &version, rp.namespace.as_deref(), &q, table)
            }
        }
        (&Method::GET, Some(name)) => {
            if rp.watch {
                record(sh, "watch", &t, &rp);
                return watch_response(
                    sh,
                    &t,
                    &st_t,
                    &version,
                    rp.namespace.clone(),
                    Some(name.to_string()),
                    &q,
                    table,
                );
            }
            record(sh, "get", &t, &rp);
            if t.namespaced && rp.namespace.is_none() {
                return Err(ApiError::no_resource());
            }
            let obj = sh
                .lock()
                .get_stored(&st_t.gr(), &ns, name)
                .cloned()
                .ok_or_else(|| ApiError::not_found(&t.group, &t.plural, name))?;
            if rp.sub.as_deref() == Some("scale") {
                return Ok(ok(&ops::scale_of(&st_t, &st_version, &obj)?));
            }
            if table {
                let obj = present(&t, &version, &obj);
                let meta = json!({"resourceVersion": obj["metadata"]["resourceVersion"]});
                return Ok(ok(&table::render(
                    &t,
                    &version,
                    &[obj],
                    meta,
                    include(&q),
                    Utc::now(),
                )));
            }
            Ok((
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                presented_json(&t, &version, &obj),
            )
                .into_response())
        }
        (&Method::POST, None) => {
            record(sh, "create", &t, &rp);
            if t.namespaced && rp.namespace.is_none() {
                return Err(ApiError::no_resource());
            }
            let mut obj = decode_body(&body, content_type)?;
            let warnings = field_check(&t, &version, &obj, q.get("fieldValidation"))?;
            let o = write_opts(&q);
            let api_version = t.api_version(&version);
            let fm = manager(&q, user_agent);
            let ctx = write_ctx(&t, &api_version, &fm, None);
            patch::record_update(None, &mut obj, &ctx, &o.now);
            let created = {
                let mut st = sh.lock();
                ops::create(
                    &mut st,
                    &st_t,
                    &st_version,
                    &ns,
                    to_storage(&t, &version, obj),
                    &o,
                )
            }?;
            sh.gc_notify.notify_one();
            Ok(with_warnings(
                json_response(StatusCode::CREATED, &presented(&t, &version, &created)),
                &warnings,
            ))
        }
        (&Method::PUT, Some(name)) => {
            record(sh, "update", &t, &rp);
            let mut obj = decode_body(&body, content_type)?;
            let warnings = if rp.sub.is_none() {
                field_check(&t, &version, &obj, q.get("fieldValidation"))?
            } else {
                Vec::new()
            };
            let o = write_opts(&q);
            let api_version = t.api_version(&version);
            let fm = manager(&q, user_agent);
            let ctx = write_ctx(&t, &api_version, &fm, rp.sub.as_deref());
            let res = {
                let mut st = sh.lock();
                if rp.sub.is_none() && obj.is_object() {
                    let current = st.get(&st_t.gr(), &ns, name).cloned();
                    patch::record_update(current.as_deref(), &mut obj, &ctx, &o.now);
                }
                match rp.sub.as_deref() {
                    Some("scale") => {
                        ops::update_scale(&mut st, &st_t, &st_version, &ns, name, &obj, &o)
                    }
                    Some("status") => ops::update(
                        &mut st,
                        &st_t,
                        &st_version,
                        &ns,
                        name,
                        to_storage(&t, &version, obj),
                        Part::Status,
                        &o,
                    ),
                    _ => ops::update(
                        &mut st,
                        &st_t,
                        &st_version,
                        &ns,
                        name,
                        to_storage(&t, &version, obj),
                        Part::Main,
                        &o,
                    ),
                }
            }?;
            sh.gc_notify.notify_one();
            if rp.sub.as_deref() == Some("scale") {
                return Ok(ok(&res));
            }
            Ok(with_warnings(ok(&presented(&t, &version, &res)), &warnings))
        }
        (&Method::PATCH, Some(name)) => {
            record(sh, "patch", &t, &rp);
            let kind = PatchKind::from_content_type(content_type)
                .ok_or_else(|| ApiError::unsupported_media_type(content_type))?;
            let o = write_opts(&q);
            let field_manager = manager(&q, user_agent);
            let api_version = t.api_version(&version);
            let target = PatchTarget {
                kind: &t.kind,
                api_version: &api_version,
                builtin: !t.crd,
                field_manager: &field_manager,
                force: q.flag("force"),
                subresource: rp.sub.as_deref(),
            };
            let mode = q.get("fieldValidation");
            let (res, created, warnings) = {
                let mut st = sh.lock();
                patch(
                    &mut st,
                    (&t, &version),
                    (&st_t, &st_version),
                    &ns,
                    name,
                    rp.sub.as_deref(),
                    kind,
                    &body,
                    &target,
                    &o,
                    mode,
                )
            }?;
            sh.gc_notify.notify_one();
            let code = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            if rp.sub.as_deref() == Some("scale") {
                return Ok(json_response(code, &res));
            }
            Ok(with_warnings(
                json_response(code, &presented(&t, &version, &res)),
                &warnings,
            ))
        }
        (&Method::DELETE, Some(name)) => {
            record(sh, "delete", &t, &rp);
            if rp.sub.is_some() {
                return Err(ApiError::method_not_allowed());
            }
            let opts = delete_opts(&q, &body)?;
            let o = WriteOpts {
                dry_run: o_dry(&q, &body),
                now: now_string(),
            };
            let res = {
                let mut st = sh.lock();
                ops::delete(&mut st, &st_t, &ns, name, &opts, &o)
            }?;
            sh.gc_notify.notify_one();
            Ok(match res {
                Deleted::Gone(obj) => ok(&json!({
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "details": {"name": name, "group": t.group, "kind": t.plural, "uid": obj["metadata"]["uid"]},
                })),
                Deleted::Pending(obj) => ok(&presented(&t, &version, &obj)),
            })
        }
        (&Method::DELETE, None) => {
            record(sh, "deletecollection", &t, &rp);
            let opts = delete_opts(&q, &body)?;
            let o = WriteOpts {
                dry_run: o_dry(&q, &body),
                now: now_string(),
            };
            let (label, field) = selectors(&t, &q)?;
            let mut items = Vec::new();
            {
                let mut st = sh.lock();
                let names: Vec<(String, String)> = st
                    .select(&st_t.gr(), rp.namespace.as_deref(), None, &label)
                    .filter(|(_, o)| {
                        label.matches_labels(o)
                            && field.matches(|k| field_value(&t.plural, o, k).ok().flatten())
                    })
                    .map(|(k, _)| k.clone())
                    .collect();
                for (ons, oname) in names {
                    match ops::delete(&mut st, &st_t, &ons, &oname, &opts, &o)? {
                        Deleted::Gone(x) | Deleted::Pending(x) => {
                            items.push(present(&t, &version, &x))
                        }
                    }
                }
            }
            sh.gc_notify.notify_one();
            Ok(ok(
                &json!({"kind": t.list_kind, "apiVersion": t.api_version(&version), "metadata": {}, "items": items}),
            ))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// A request body in the stored shape (events.k8s.io/v1 Events are stored as core/v1,
/// autoscaling/v1 HorizontalPodAutoscalers as autoscaling/v2).
fn to_storage(t: &ResourceType, version: &str, obj: Value) -> Value {
    if !obj.is_object() {
        obj
    } else if t.group == "events.k8s.io" {
        events::to_core(&obj)
    } else if t.group == "autoscaling" && version == "v1" {
        hpa::to_v2(&obj)
    } else {
        obj
    }
}

/// `fieldValidation`: Strict rejects unknown fields, Warn (the default) reports them in
/// `Warning` headers, Ignore drops them silently.
fn field_check(
    t: &ResourceType,
    version: &str,
    obj: &Value,
    mode: Option<&str>,
) -> Result<Vec<String>, ApiError> {
    if mode == Some("Ignore") {
        return Ok(Vec::new());
    }
    let unknown: Vec<String> = openapi::unknown_fields(t, version, obj)
        .into_iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    if unknown.is_empty() {
        return Ok(unknown);
    }
    if mode == Some("Strict") {
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
            unknown.join(", "),
            kind = t.kind
        )));
    }
    Ok(unknown)
}

fn with_warnings(mut r: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let v = format!("299 - {}", serde_json::to_string(w).unwrap_or_default());
        if let Ok(h) = header::HeaderValue::from_str(&v) {
            r.headers_mut().append(header::WARNING, h);
        }
    }
    r
}

/// The field manager of a write: `fieldManager`, else the client's user-agent name, as the
/// apiserver defaults it.
fn manager(q: &Query, user_agent: &str) -> String {
    q.get("fieldManager")
        .map(str::to_string)
        .or_else(|| {
            user_agent
                .split('/')
                .next()
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "unknown".into())
}

fn write_ctx<'a>(
    t: &'a ResourceType,
    api_version: &'a str,
    fm: &'a str,
    sub: Option<&'a str>,
) -> PatchTarget<'a> {
    PatchTarget {
        kind: &t.kind,
        api_version,
        builtin: !t.crd,
        field_manager: fm,
        force: false,
        subresource: sub,
    }
}

fn o_dry(q: &Query, body: &[u8]) -> bool {
    q.get("dryRun") == Some("All")
        || serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|b| b["dryRun"].as_array().cloned())
            .is_some_and(|d| d.iter().any(|x| x == "All"))
}

fn delete_opts(q: &Query, body: &[u8]) -> Result<DeleteOpts, ApiError> {
    let b: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?
    };
    let policy = b["propagationPolicy"]
        .as_str()
        .map(str::to_string)
        .or_else(|| q.get("propagationPolicy").map(str::to_string))
        .or_else(|| {
            match b["orphanDependents"]
                .as_bool()
                .or(q.get("orphanDependents").map(|v| v == "true"))
            {
                Some(true) => Some("Orphan".into()),
                _ => None,
            }
        });
    let propagation = match policy.as_deref() {
        None | Some("Background") => Propagation::Background,
        Some("Foreground") => Propagation::Foreground,
        Some("Orphan") => Propagation::Orphan,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
    };
    Ok(DeleteOpts {
        propagation,
        precondition_uid: b["preconditions"]["uid"].as_str().map(str::to_string),
        precondition_rv: b["preconditions"]["resourceVersion"]
            .as_str()
            .map(str::to_string),
    })
}

#[allow(clippy::too_many_arguments)]
fn patch(
    st: &mut State,
    (t, version): (&ResourceType, &str),
    (st_t, st_version): (&ResourceType, &str),
    ns: &str,
    name: &str,
    sub: Option<&str>,
    kind: PatchKind,
    body: &[u8],
    target: &PatchTarget<'_>,
    o: &WriteOpts,
    mode: Option<&str>,
) -> Result<(Value, bool, Vec<String>), ApiError> {
    let current = st.get(&st_t.gr(), ns, name).cloned();
    let Some(current) = current else {
        if kind == PatchKind::Apply && sub.is_none() {
            let mut obj = patch::request::apply(kind, None, body, target)?;
            if obj["metadata"]["name"].as_str().unwrap_or(name) != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    obj["metadata"]["name"].as_str().unwrap_or_default()
                )));
            }
            obj["metadata"]["name"] = json!(name);
            let warnings = field_check(t, version, &obj, mode)?;
            return Ok((
                ops::create(st, st_t, st_version, ns, to_storage(t, version, obj), o)?,
                true,
                warnings,
            ));
        }
        return Err(ApiError::not_found(&t.group, &t.plural, name));
    };
    if sub == Some("scale") {
        let scale = ops::scale_of(st_t, st_version, &current)?;
        let patched = patch::request::apply(kind, Some(&scale), body, target)?;
        return Ok((
            ops::update_scale(st, st_t, st_version, ns, name, &patched, o)?,
            false,
            Vec::new(),
        ));
    }
    let cur = present(t, version, &current);
    let mut patched = patch::request::apply(kind, Some(&cur), body, target)?;
    // A patch is conditional only when it names a resourceVersion itself.
    if patched["metadata"]["resourceVersion"]
        .as_str()
        .is_none_or(str::is_empty)
        && patched.is_object()
    {
        patched["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
    }
    let part = if sub == Some("status") {
        Part::Status
    } else {
        Part::Main
    };
    let warnings = if part == Part::Main {
        field_check(t, version, &patched, mode)?
    } else {
        Vec::new()
    };
    Ok((
        ops::update(
            st,
            st_t,
            st_version,
            ns,
            name,
            to_storage(t, version, patched),
            part,
            o,
        )?,
        false,
        warnings,
    ))
}

fn include(q: &Query) -> Include {
    match q.get("includeObject") {
        Some("None") => Include::None,
        Some("Object") => Include::Object,
        _ => Include::Metadata,
    }
}

fn selectors(t: &ResourceType, q: &Query) -> Result<(Selector, Selector), ApiError> {
    let label = Selector::parse_labels(q.get("labelSelector").unwrap_or_default())
        .map_err(ApiError::bad_request)?;
    let field = Selector::parse_fields(q.get("fieldSelector").unwrap_or_default())
        .map_err(ApiError::bad_request)?;
    let probe = json!({});
    for k in field.keys() {
        field_value(&t.plural, &probe, k).map_err(ApiError::bad_request)?;
    }
    Ok((label, field))
}

/// A continue token: the list's resourceVersion (every page reports the first page's, as the
/// apiserver does, so a watch started from it misses nothing) and the last key served.
fn encode_continue(rv: u64, key: &(String, String)) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("{rv}\u{0}{}\u{0}{}", key.0, key.1))
}

fn decode_continue(tok: &str) -> Result<(u64, (String, String)), ApiError> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(tok)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| ApiError::bad_request("continue key is not valid: illegal base64 data"))?;
    let mut parts = raw.splitn(3, '\u{0}');
    match (
        parts.next().and_then(|r| r.parse().ok()),
        parts.next(),
        parts.next(),
    ) {
        (Some(rv), Some(a), Some(b)) => Ok((rv, (a.into(), b.into()))),
        _ => Err(ApiError::bad_request("continue key is not valid")),
    }
}

fn list(
    sh: &Shared,
    t: &ResourceType,
    st_t: &ResourceType,
    version: &str,
    ns: Option<&str>,
    q: &Query,
    table: bool,
) -> Result<Response, ApiError> {
    let (label, field) = selectors(t, q)?;
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let cont = q.get("continue").map(decode_continue).transpose()?;
    let (items, rv, next, remaining) = {
        let st = sh.lock();
        // Every page reports the first page's resourceVersion (it travels in the token).
        let rv = cont.as_ref().map_or(st.rv, |(rv, _)| *rv);
        let mut matching = st
            .select(&st_t.gr(), ns, cont.as_ref().map(|(_, k)| k), &label)
            .filter(|(_, o)| field.matches(|f| field_value(&t.plural, o, f).ok().flatten()))
            .map(|(_, o)| o);
        // Cheap Arc clones under the lock; the copies and the encoding are made after it.
        let items: Vec<Stored> = match limit {
            Some(l) => matching.by_ref().take(l).cloned().collect(),
            None => matching.by_ref().cloned().collect(),
        };
        let (mut next, mut remaining) = (None, None);
        // A continue token only when another object matches; the apiserver counts the rest
        // only for a list without selectors (with one, its count would include non-matches).
        if limit.is_some() && matching.next().is_some() {
            next = Some(encode_continue(rv, &items_last_key(&items)));
            if label.is_empty() && field.is_empty() {
                remaining = Some(1 + matching.count());
            }
        }
        (items, rv, next, remaining)
    };
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(n) = next {
        meta["continue"] = json!(n);
    }
    if let Some(r) = remaining {
        meta["remainingItemCount"] = json!(r);
    }
    if table {
        let items: Vec<Value> = items.iter().map(|o| present(t, version, o)).collect();
        return Ok(ok(&table::render(
            t,
            version,
            &items,
            meta,
            include(q),
            Utc::now(),
        )));
    }
    let encoded: Vec<Bytes> = items
        .iter()
        .map(|o| presented_json(t, version, o))
        .collect();
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        list_json(&t.api_version(version), &t.list_kind, &meta, &encoded),
    )
        .into_response())
}

fn items_last_key<V: std::ops::Deref<Target = Value>>(items: &[V]) -> (String, String) {
    let last = items.last().map(|o| &(**o)["metadata"]);
    (
        last.and_then(|m| m["namespace"].as_str())
            .unwrap_or_default()
            .to_string(),
        last.and_then(|m| m["name"].as_str())
            .unwrap_or_default()
            .to_string(),
    )
}

/// Per-watch filter: which events a watcher sees and how they are rendered.
struct WatchFilter {
    gr: (String, String),
    ns: Option<String>,
    name: Option<String>,
    label: Selector,
    field: Selector,
    plural: String,
}

impl WatchFilter {
    fn matches(&self, o: &Value) -> bool {
        let m = &o["metadata"];
        if let Some(ns) = &self.ns
            && m["namespace"].as_str() != Some(ns)
        {
            return false;
        }
        if let Some(n) = &self.name
            && m["name"].as_str() != Some(n)
        {
            return false;
        }
        self.label.matches_labels(o)
            && self
                .field
                .matches(|f| field_value(&self.plural, o, f).ok().flatten())
    }

    /// The event type this watcher sees, accounting for objects moving in and out of the filter.
    fn classify(&self, ev: &WatchEvent) -> Option<EventType> {
        if ev.gr != self.gr {
            return None;
        }
        let now = self.matches(&ev.obj);
        match ev.type_ {
            EventType::Added => now.then_some(EventType::Added),
            EventType::Deleted => ev
                .prev
                .as_deref()
                .is_some_and(|p| self.matches(p))
                .then_some(EventType::Deleted),
            EventType::Modified => {
                let before = ev.prev.as_deref().is_some_and(|p| self.matches(p));
                match (before, now) {
                    (true, true) => Some(EventType::Modified),
                    (false, true) => Some(EventType::Added),
                    (true, false) => Some(EventType::Deleted),
                    (false, false) => None,
                }
            }
        }
    }
}

/// Renders watch lines for one watcher.
struct Renderer {
    t: Arc<ResourceType>,
    version: String,
    api_version: String,
    table: bool,
    include: Include,
}

impl Renderer {
    fn line(&self, type_: &str, obj: &Value, cached: Option<Bytes>) -> Bytes {
        let mut out = Vec::new();
        self.write_line(&mut out, type_, obj, cached);
        Bytes::from(out)
    }

    /// Appends one event line to `out`; `cached` is the event's object encoded once for every
    /// watcher, used when this watcher sees the object as stored.
    fn write_line(&self, out: &mut Vec<u8>, type_: &str, obj: &Value, cached: Option<Bytes>) {
        let encoded;
        let body: &[u8] = if self.table {
            let o = present(&self.t, &self.version, obj);
            let tab = table::render(
                &self.t,
                &self.version,
                &[o],
                json!({"resourceVersion": obj["metadata"]["resourceVersion"]}),
                self.include,
                Utc::now(),
            );
            encoded = serde_json::to_vec(&tab).unwrap_or_default();
            &encoded
        } else if let Some(c) = cached.as_ref().filter(|_| {
            obj["apiVersion"].as_str() == Some(self.api_version.as_str())
                && obj["kind"].as_str() == Some(self.t.kind.as_str())
        }) {
            c
        } else {
            encoded =
                serde_json::to_vec(&presented(&self.t, &self.version, obj)).unwrap_or_default();
            &encoded
        };
        out.reserve(body.len() + 32);
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(type_.as_bytes());
        out.extend_from_slice(b"\",\"object\":");
        out.extend_from_slice(body);
        out.extend_from_slice(b"}\n");
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let o = json!({"kind": self.t.kind, "apiVersion": self.api_version, "metadata": meta});
        let mut v =
            serde_json::to_vec(&json!({"type": "BOOKMARK", "object": o})).unwrap_or_default();
        v.push(b'\n');
        Bytes::from(v)
    }
}

/// The shortest time between two chunks of one watch stream. Delivery order and content are
/// the API server's; only a burst's timing changes, by at most this much.
const FLUSH_GAP: Duration = Duration::from_millis(2);

#[allow(clippy::too_many_arguments)]
fn watch_response(
    sh: &Arc<Shared>,
    t: &Arc<ResourceType>,
    st_t: &ResourceType,
    version: &str,
    ns: Option<String>,
    name: Option<String>,
    q: &Query,
    table: bool,
) -> Result<Response, ApiError> {
    let (label, field) = selectors(t, q)?;
    let filter = WatchFilter {
        gr: st_t.gr(),
        ns: ns.clone(),
        name,
        label,
        field,
        plural: t.plural.clone(),
    };
    let renderer = Renderer {
        t: t.clone(),
        version: version.to_string(),
        api_version: t.api_version(version),
        table,
        include: include(q),
    };
    let bookmarks = q.flag("allowWatchBookmarks");
    let send_initial = q.flag("sendInitialEvents");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let rv_param = q.get("resourceVersion").map(str::to_string);
    // What the watch starts with, gathered under the lock as shared pointers and rendered
    // after it: the matching objects, or the retained events since the given version.
    let mut initial_objs: Vec<Stored> = Vec::new();
    let mut initial_events: Vec<(EventType, Arc<WatchEvent>)> = Vec::new();
    let mut initial_end = None;
    let (rx, start_rv) = {
        let st = sh.lock();
        let rx = st.tx.subscribe();
        let from_state = send_initial || matches!(rv_param.as_deref(), None | Some("0"));
        if from_state {
            initial_objs = st
                .select(&st_t.gr(), ns.as_deref(), None, &filter.label)
                .filter(|(_, o)| filter.matches(o))
                .map(|(_, o)| o.clone())
                .collect();
            if send_initial && bookmarks {
                initial_end = Some(st.rv);
            }
        } else {
            let rv: u64 = rv_param
                .as_deref()
                .unwrap_or_default()
                .parse()
                .map_err(|_| {
                    ApiError::bad_request(format!(
                        "invalid resource version: {}",
                        rv_param.as_deref().unwrap_or_default()
                    ))
                })?;
            match st.events_since(rv) {
                Ok(evs) => {
                    initial_events = evs
                        .into_iter()
                        .filter_map(|ev| filter.classify(&ev).map(|ty| (ty, ev)))
                        .collect();
                }
                Err(oldest) => {
                    let err =
                        ApiError::expired(format!("too old resource version: {rv} ({oldest})"));
                    let mut line =
                        serde_json::to_vec(&json!({"type": "ERROR", "object": err.status()}))
                            .unwrap_or_default();
                    line.push(b'\n');
                    return Ok(stream_response(futures::stream::iter(vec![Ok::<
                        _,
                        std::io::Error,
                    >(
                        Bytes::from(line),
                    )])));
                }
            }
        }
        (rx, st.rv)
    };
    let mut initial: Vec<Bytes> = initial_objs
        .iter()
        .map(|o| renderer.line("ADDED", o, Some(o.json())))
        .chain(
            initial_events
                .iter()
                .map(|(ty, ev)| renderer.line(ty.as_str(), &ev.obj, Some(ev.obj_json()))),
        )
        .collect();
    initial.extend(initial_end.map(|rv| renderer.bookmark(rv, true)));
    let shutdown = sh.shutdown.clone();
    let interval = sh.bookmark_interval;
    let stream = async_stream::stream! {
        for l in initial {
            yield Ok::<_, std::io::Error>(l);
        }
        let mut rx = rx;
        let mut last_rv = start_rv;
        let mut last_flush = tokio::time::Instant::now() - FLUSH_GAP;
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        loop {
            tokio::select! {
                ev = rx.recv() => match ev {
                    Ok(ev) => {
                        // Under load, send every event already queued as one chunk, and at most
                        // one chunk per FLUSH_GAP: an event after a quiet spell goes out at
                        // once, while a stream of writes reaches each watcher as one socket
                        // write per gap instead of one per event (and one wake-up of its task).
                        let due = last_flush + FLUSH_GAP;
                        if tokio::time::Instant::now() < due {
                            tokio::time::sleep_until(due).await;
                        } else {
                            tokio::task::yield_now().await;
                        }
                        let mut chunk: Vec<u8> = Vec::new();
                        let mut lagged = false;
                        let mut ev = ev;
                        for i in 0..512 {
                            if ev.rv > last_rv {
                                last_rv = ev.rv;
                                if let Some(ty) = filter.classify(&ev) {
                                    renderer.write_line(&mut chunk, ty.as_str(), &ev.obj, Some(ev.obj_json()));
                                }
                            }
                            if i == 511 {
                                break;
                            }
                            match rx.try_recv() {
                                Ok(e) => ev = e,
                                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                                    lagged = true;
                                    break;
                                }
                                Err(_) => break,
                            }
                        }
                        if !chunk.is_empty() {
                            last_flush = tokio::time::Instant::now();
                            yield Ok(Bytes::from(chunk));
                        }
                        if lagged {
                            break;
                        }
                    }
                    // A watcher too slow for the broadcast buffer is closed; the client resumes from
                    // its last resourceVersion, which the history still holds.
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = tick.tick(), if bookmarks && !renderer.table => {
                    yield Ok(renderer.bookmark(last_rv, false));
                }
                _ = &mut deadline => break,
                _ = shutdown.cancelled() => break,
            }
        }
    };
    Ok(stream_response(stream))
}

fn stream_response<S>(s: S) -> Response
where
    S: futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
{
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::TRANSFER_ENCODING, "chunked")
        .body(Body::from_stream(s))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assembled_list_is_the_list_object_with_its_items() {
        let items = [
            json!({"metadata": {"name": "a"}, "data": {"k": "\"q\""}}),
            json!({}),
        ];
        let encoded: Vec<Bytes> = items
            .iter()
            .map(|i| Bytes::from(serde_json::to_vec(i).unwrap()))
            .collect();
        let meta = json!({"resourceVersion": "7", "continue": "x"});
        for n in [0, 1, 2] {
            let got: Value =
                serde_json::from_slice(&list_json("v1", "ConfigMapList", &meta, &encoded[..n]))
                    .unwrap();
            let want = json!({"apiVersion": "v1", "kind": "ConfigMapList", "metadata": meta, "items": items[..n]});
            assert_eq!(got, want, "{n} items");
        }
    }

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
        assert_eq!(r("/nope"), Route::NotFound);
    }

    #[test]
    fn continue_tokens_round_trip() {
        let k = ("ns".to_string(), "name".to_string());
        assert_eq!(decode_continue(&encode_continue(7, &k)).unwrap(), (7, k));
        assert!(decode_continue("!!").is_err());
    }
}
