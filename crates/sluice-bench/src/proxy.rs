//! A counting pass-through proxy between the benchmarked controller and the API server.
//!
//! The controller is given a kubeconfig that points at this proxy (plain HTTP on
//! 127.0.0.1); every request is counted by verb and resource and forwarded with the bench's
//! own kube client, which carries the real server's address, TLS and credentials. This
//! counts exactly the controller's requests — the embedded cluster's audit log also holds
//! the simulated kubelet's and workload controllers' calls, and a real cluster has none we
//! can read — at the price of one extra loopback hop on each of its requests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;

/// Requests seen so far, keyed `"<VERB> <resource>[/<subresource>]"` (for example
/// `"PATCH rollouts/status"`, `"WATCH replicasets"`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts(pub BTreeMap<String, u64>);

impl Counts {
    /// Requests that change state (create, update, patch, delete).
    pub fn writes(&self) -> u64 {
        self.0
            .iter()
            .filter(|(k, _)| {
                ["POST ", "PUT ", "PATCH ", "DELETE "]
                    .iter()
                    .any(|v| k.starts_with(v))
            })
            .map(|(_, n)| n)
            .sum()
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &Counts) -> Counts {
        Counts(
            self.0
                .iter()
                .map(|(k, n)| (k.clone(), n - earlier.0.get(k).copied().unwrap_or(0)))
                .filter(|(_, n)| *n > 0)
                .collect(),
        )
    }

    /// `"PATCH replicasets 1000, POST events 2000, ..."`, largest first.
    pub fn describe(&self) -> String {
        let mut v: Vec<_> = self.0.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        v.iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The verb and resource of an API request path, as the counting key.
pub fn classify(method: &Method, path: &str, query: Option<&str>) -> String {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest: &[&str] = match segs.as_slice() {
        ["api", _v, rest @ ..] => rest,
        ["apis", _g, _v, rest @ ..] => rest,
        _ => &[],
    };
    let rest = match rest {
        ["namespaces", _ns, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    let resource = match rest {
        [] => "discovery".to_string(),
        [r] | [r, _] => r.to_string(),
        [r, _, sub, ..] => format!("{r}/{sub}"),
    };
    let watch = query.is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    let verb = if watch { "WATCH" } else { method.as_str() };
    format!("{verb} {resource}")
}

/// Requests (watches excepted) forwarded at once. Each in-flight request holds one pooled
/// upstream connection; without a bound, a burst of 10,000 concurrent requests opened
/// 10,000 connections, and closing them exhausted the loopback's ephemeral ports
/// (TIME_WAIT) so that later connects failed.
const MAX_IN_FLIGHT: usize = 64;

struct ProxyState {
    client: kube::Client,
    counts: Mutex<Counts>,
    in_flight: tokio::sync::Semaphore,
}

/// A running proxy.
pub struct Proxy {
    pub addr: SocketAddr,
    state: Arc<ProxyState>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Serve on 127.0.0.1 (a free port), forwarding through `client`.
    pub async fn start(client: kube::Client) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(ProxyState {
            client,
            counts: Mutex::new(Counts::default()),
            in_flight: tokio::sync::Semaphore::new(MAX_IN_FLIGHT),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(state.clone());
        // Small watch-event writes must not wait for the peer's delayed ACK (Nagle).
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, state, task })
    }

    pub fn counts(&self) -> Counts {
        self.state
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A kubeconfig that sends a client through this proxy.
    pub fn kubeconfig_yaml(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: bench\n  cluster:\n    server: http://{}\nusers:\n- name: bench\n  user: {{}}\ncontexts:\n- name: bench\n  context:\n    cluster: bench\n    user: bench\n    namespace: default\ncurrent-context: bench\n",
            self.addr
        )
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(State(state): State<Arc<ProxyState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let key = classify(&parts.method, parts.uri.path(), parts.uri.query());
    let watch = key.starts_with("WATCH ");
    *state
        .counts
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .0
        .entry(key)
        .or_default() += 1;
    let bytes = match axum::body::to_bytes(body, 64 << 20).await {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_string();
    let mut out = axum::http::Request::builder()
        .method(parts.method)
        .uri(path);
    for (name, value) in &parts.headers {
        if name != axum::http::header::HOST
            && name != axum::http::header::CONTENT_LENGTH
            && !hop_by_hop(&parts.headers, name)
        {
            out = out.header(name, value);
        }
    }
    let out = match out.body(kube::client::Body::from(bytes.to_vec())) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    if watch {
        // A watch holds its connection for minutes: streamed, and outside the bound.
        return match state.client.send(out).await {
            Ok(resp) => {
                let (mut parts, body) = resp.into_parts();
                end_to_end_only(&mut parts.headers);
                Response::from_parts(parts, Body::new(body))
            }
            Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
        };
    }
    // The permit is held until the whole response is read, which is when the upstream
    // connection goes back to the pool for the next request.
    let Ok(_permit) = state.in_flight.acquire().await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "proxy closed").into_response();
    };
    match state.client.send(out).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            // Read whole: the length is this body's, set by the server from it.
            end_to_end_only(&mut parts.headers);
            parts.headers.remove(axum::http::header::CONTENT_LENGTH);
            match axum::body::to_bytes(Body::new(body), usize::MAX).await {
                Ok(bytes) => Response::from_parts(parts, Body::from(bytes)),
                Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
            }
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

/// Whether `name` belongs to one connection only (RFC 9110 §7.6.1): a proxy never forwards
/// these, nor any header the `Connection` header lists. Forwarding them let one hop's framing
/// (`Transfer-Encoding`) or lifetime (`Connection: close`) leak into the other.
fn hop_by_hop(headers: &axum::http::HeaderMap, name: &axum::http::HeaderName) -> bool {
    const HOP: [&str; 8] = [
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ];
    HOP.contains(&name.as_str())
        || headers
            .get_all(axum::http::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|listed| listed.trim().eq_ignore_ascii_case(name.as_str()))
}

/// Removes the hop-by-hop headers of an upstream response.
fn end_to_end_only(headers: &mut axum::http::HeaderMap) {
    let hop: Vec<_> = headers
        .keys()
        .filter(|n| hop_by_hop(headers, n))
        .cloned()
        .collect();
    for name in hop {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_verb_and_resource() {
        let cases = [
            (
                Method::GET,
                "/apis/argoproj.io/v1alpha1/rollouts",
                Some("watch=true&rv=1"),
                "WATCH rollouts",
            ),
            (
                Method::GET,
                "/apis/argoproj.io/v1alpha1/rollouts",
                Some("limit=1"),
                "GET rollouts",
            ),
            (
                Method::PATCH,
                "/apis/argoproj.io/v1alpha1/namespaces/a/rollouts/r/status",
                None,
                "PATCH rollouts/status",
            ),
            (
                Method::POST,
                "/apis/apps/v1/namespaces/a/replicasets",
                None,
                "POST replicasets",
            ),
            (
                Method::PATCH,
                "/apis/apps/v1/namespaces/a/replicasets/x",
                None,
                "PATCH replicasets",
            ),
            (
                Method::GET,
                "/api/v1/namespaces/a/services/s",
                None,
                "GET services",
            ),
            (Method::GET, "/api/v1/namespaces/a", None, "GET namespaces"),
            (Method::GET, "/api/v1/namespaces", None, "GET namespaces"),
            (Method::GET, "/version", None, "GET discovery"),
        ];
        for (m, p, q, want) in cases {
            assert_eq!(classify(&m, p, q), want, "{m} {p}");
        }
    }

    #[test]
    fn connection_headers_stay_on_their_hop() {
        use axum::http::{HeaderMap, HeaderValue};
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "close, x-hop"),
            ("x-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("keep-alive", "timeout=5"),
            ("content-type", "application/json"),
            ("audit-id", "abc"),
        ] {
            h.insert(
                axum::http::HeaderName::from_static(k),
                HeaderValue::from_static(v),
            );
        }
        end_to_end_only(&mut h);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, ["audit-id", "content-type"]);
    }

    #[test]
    fn writes_and_differences_are_derived_from_counts() {
        let a = Counts(BTreeMap::from([
            ("GET services".into(), 2),
            ("PATCH replicasets".into(), 1),
        ]));
        let b = Counts(BTreeMap::from([
            ("GET services".into(), 5),
            ("PATCH replicasets".into(), 1),
            ("POST events".into(), 4),
        ]));
        let d = b.since(&a);
        assert_eq!(d.writes(), 4);
        assert_eq!(d.total(), 7);
        assert_eq!(d.describe(), "POST events 4, GET services 3");
    }
}
