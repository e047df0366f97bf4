//! Counting the controller's own Kubernetes API requests (`controller_clientset_k8s_request_total`)
//! with a tower layer placed in the kube client's service stack.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::{Method, Request, Response};
use tower::{Layer, Service};

use super::Metrics;

/// What a request addresses, parsed from its method and path the way upstream labels it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestInfo {
    /// Resource (plural), such as `rollouts`; `Unknown` for non-resource paths.
    pub kind: String,
    /// Namespace, empty for cluster-scoped or all-namespace requests.
    pub namespace: String,
    /// Object name, empty for collection requests.
    pub name: String,
    /// Get, List, Watch, Create, Update, Patch, Delete, DeleteCollection or Unknown.
    pub verb: &'static str,
}

impl RequestInfo {
    /// Parses `/api/v1/...` and `/apis/<group>/<version>/...` paths; anything else (discovery,
    /// `/version`, OpenAPI) is `Unknown`.
    pub fn parse(method: &Method, path: &str, query: Option<&str>) -> RequestInfo {
        let unknown = RequestInfo {
            kind: "Unknown".into(),
            namespace: String::new(),
            name: String::new(),
            verb: "Unknown",
        };
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let rest = match segments.as_slice() {
            ["api", _version, rest @ ..] => rest,
            ["apis", _group, _version, rest @ ..] => rest,
            _ => return unknown,
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, tail @ ..] if !tail.is_empty() => (ns.to_string(), tail),
            _ => (String::new(), rest),
        };
        let (kind, name) = match rest {
            [kind] => (kind.to_string(), String::new()),
            [kind, name, ..] => (kind.to_string(), name.to_string()),
            _ => return unknown,
        };
        let watch =
            query.is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
        let verb = match *method {
            Method::GET if watch => "Watch",
            Method::GET if name.is_empty() => "List",
            Method::GET => "Get",
            Method::POST => "Create",
            Method::PUT => "Update",
            Method::PATCH => "Patch",
            Method::DELETE if name.is_empty() => "DeleteCollection",
            Method::DELETE => "Delete",
            _ => return unknown,
        };
        RequestInfo {
            kind,
            namespace,
            name,
            verb,
        }
    }
}

/// Tower layer counting requests into [`Metrics`]. Put it outermost in the kube client's stack
/// (`ClientBuilder::try_from(config)?.with_layer(&layer)`), where paths are still relative to
/// the API server's base URL.
#[derive(Clone, Debug)]
pub struct K8sRequestLayer {
    metrics: Arc<Metrics>,
}

impl K8sRequestLayer {
    /// A layer recording into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        K8sRequestLayer { metrics }
    }
}

impl<S> Layer<S> for K8sRequestLayer {
    type Service = K8sRequestService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        K8sRequestService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`K8sRequestLayer`] wraps around the client stack. A transport error (no HTTP
/// status) is counted with status code 0.
#[derive(Clone, Debug)]
pub struct K8sRequestService<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for K8sRequestService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    ResBody: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let info = RequestInfo::parse(req.method(), req.uri().path(), req.uri().query());
        let metrics = self.metrics.clone();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let result = fut.await;
            let code = match &result {
                Ok(res) => res.status().as_u16(),
                Err(_) => 0,
            };
            metrics.k8s_request(&info.kind, &info.namespace, &info.name, info.verb, code);
            result
        })
    }
}
