//! A request for objects, resolved to the type it addresses and the store that holds them,
//! and dispatched to the handler of its verb.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::Method;
use axum::response::Response;

use super::options::Query;
use super::routing::ResPath;
use super::{Shared, audit, delete, eviction, reads, watch, writes};
use crate::error::ApiError;
use crate::types::ResourceType;

/// What a request carries besides its path and query.
pub(super) struct Payload {
    pub accept: String,
    pub content_type: String,
    pub user_agent: String,
    pub body: Bytes,
    /// Injected watch faults (a cut, an expired resourceVersion) for this request.
    pub watch_faults: crate::faults::Decision,
}

/// The Kubernetes verb of a resource request, as audit logs and RBAC name it.
pub(super) fn verb(method: &Method, rp: &ResPath, q: &Query) -> &'static str {
    match (method, rp.name.is_some()) {
        (&Method::GET, false) if rp.watch || q.flag("watch") => "watch",
        (&Method::GET, false) => "list",
        (&Method::GET, true) if rp.watch => "watch",
        (&Method::GET, true) => "get",
        (&Method::POST, _) => "create",
        (&Method::PUT, true) => "update",
        (&Method::PATCH, true) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => "unknown",
    }
}

/// A resource request resolved against the registry.
pub(super) struct Target {
    /// The type as served at the URL's version.
    pub t: Arc<ResourceType>,
    pub version: String,
    /// The type whose store holds the objects: events.k8s.io/v1 Events live in core/v1's,
    /// autoscaling HorizontalPodAutoscalers at v2 whatever version was asked for.
    pub st_t: Arc<ResourceType>,
    pub st_version: String,
    pub path: ResPath,
    /// The namespace of the URL, empty for cluster-scoped and all-namespace requests.
    pub ns: String,
    /// The client asked for a Table (`kubectl get`).
    pub table: bool,
}

/// Resolves `rp` and serves it by verb; every call is audited first.
pub(super) fn serve(
    sh: &Shared,
    method: Method,
    rp: ResPath,
    q: Query,
    p: Payload,
) -> Result<Response, ApiError> {
    let tg = resolve(sh, rp, &p.accept)?;
    let (t, rp) = (&tg.t, &tg.path);
    match (&method, rp.name.as_deref()) {
        (&Method::GET, None) => {
            let watch = rp.watch || q.flag("watch");
            audit::record(sh, if watch { "watch" } else { "list" }, t, rp);
            if watch {
                watch::watch(sh, &tg, None, &q, &p.watch_faults)
            } else {
                reads::list(sh, &tg, &q)
            }
        }
        (&Method::GET, Some(name)) if rp.watch => {
            audit::record(sh, "watch", t, rp);
            watch::watch(sh, &tg, Some(name.to_string()), &q, &p.watch_faults)
        }
        (&Method::GET, Some(name)) => {
            audit::record(sh, "get", t, rp);
            reads::get(sh, &tg, name, &q)
        }
        (&Method::POST, Some(name)) if rp.sub.as_deref() == Some("eviction") => {
            audit::record(sh, "create", t, rp);
            eviction::evict(sh, &tg, name, &q, &p)
        }
        (&Method::POST, None) => {
            audit::record(sh, "create", t, rp);
            writes::create(sh, &tg, &q, &p)
        }
        (&Method::PUT, Some(name)) => {
            audit::record(sh, "update", t, rp);
            writes::update(sh, &tg, name, &q, &p)
        }
        (&Method::PATCH, Some(name)) => {
            audit::record(sh, "patch", t, rp);
            writes::patch(sh, &tg, name, &q, &p)
        }
        (&Method::DELETE, Some(name)) => {
            audit::record(sh, "delete", t, rp);
            delete::delete(sh, &tg, name, &q, &p.body)
        }
        (&Method::DELETE, None) => {
            audit::record(sh, "deletecollection", t, rp);
            delete::delete_collection(sh, &tg, &q, &p.body)
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// The served and stored type of `rp`; a resource, scope or subresource the type does not
/// have is NotFound.
fn resolve(sh: &Shared, rp: ResPath, accept: &str) -> Result<Target, ApiError> {
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
        Some("eviction") if t.group.is_empty() && t.plural == "pods" => {}
        Some(_) => return Err(ApiError::no_resource()),
    }
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
    Ok(Target {
        t,
        version,
        st_t,
        st_version,
        ns: rp.namespace.clone().unwrap_or_default(),
        path: rp,
        table: accept.contains("as=Table"),
    })
}
