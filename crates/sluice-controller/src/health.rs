//! The controller's HTTP endpoints for the kubelet and Prometheus: `/healthz`, `/readyz` and
//! `/metrics`, served on one port (8090 by default, upstream's metrics port).
//!
//! Liveness and readiness answer different questions:
//! - `/healthz` (liveness): is the process making progress? Every critical task registers a
//!   [`TaskHandle`]; a task that reports a failure, or whose handle is dropped without
//!   [`TaskHandle::finish`] (it returned or panicked), makes the process unhealthy so the
//!   kubelet restarts it.
//! - `/readyz` (readiness): can this replica do its job? Without leader election: once the
//!   caches have synced. With leader election, a healthy standby is ready too, as long as its
//!   lease task is running: the leader must have synced caches, a standby need not (it does not
//!   watch until it leads). A standby that reported not-ready would stall every rolling update
//!   of the controller's own Deployment (the new pod never becomes ready while the old one
//!   holds the lease), and the Service only carries metrics, so there is no traffic to protect.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// The content type of the OpenMetrics text exposition.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Name under which the leader-election task registers.
pub const LEASE_TASK: &str = "leader-election";

/// Why the health server could not run.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// The address could not be bound (in use, or no permission).
    #[error("binding the metrics/health address {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The server stopped with an I/O error.
    #[error("serving metrics/health: {0}")]
    Serve(std::io::Error),
}

/// State of one registered task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskState {
    /// Running normally.
    Running,
    /// Reported a failure it cannot recover from.
    Failed(String),
    /// Ended without calling [`TaskHandle::finish`] (returned early or panicked).
    Stopped,
}

#[derive(Debug, Default)]
struct Inner {
    tasks: BTreeMap<String, TaskState>,
    caches_synced: bool,
    leader_election: bool,
    leader: bool,
}

/// Shared health state; cheap to clone, every clone sees the same state.
#[derive(Clone, Debug, Default)]
pub struct HealthState {
    inner: Arc<Mutex<Inner>>,
}

/// The answer of a probe: `ok` decides the HTTP status; `detail` lists what was checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// Whether the probe passes.
    pub ok: bool,
    /// One line per check, `name: state`, for the response body.
    pub detail: Vec<String>,
}

/// A registered task's way to report. Dropping it without [`TaskHandle::finish`] marks the task
/// stopped, so a task that dies (including by panic) fails liveness.
#[derive(Debug)]
pub struct TaskHandle {
    name: String,
    state: HealthState,
    finished: bool,
}

impl TaskHandle {
    /// Marks the task healthy again (after a transient problem it recovered from).
    pub fn running(&self) {
        self.state.set_task(&self.name, TaskState::Running);
    }

    /// Marks the task failed; liveness fails until it reports running again.
    pub fn failed(&self, why: impl Into<String>) {
        self.state
            .set_task(&self.name, TaskState::Failed(why.into()));
    }

    /// Unregisters the task: it ended on purpose (for example at shutdown).
    pub fn finish(mut self) {
        self.finished = true;
        self.state.lock().tasks.remove(&self.name);
    }
}

impl Drop for TaskHandle {
    fn drop(&mut self) {
        if !self.finished {
            self.state.set_task(&self.name, TaskState::Stopped);
        }
    }
}

impl HealthState {
    /// A state with no tasks, caches not synced, leader election off.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_task(&self, name: &str, state: TaskState) {
        self.lock().tasks.insert(name.to_string(), state);
    }

    /// Registers a critical task (running from now on) and returns its reporting handle.
    pub fn register(&self, name: impl Into<String>) -> TaskHandle {
        let name = name.into();
        self.set_task(&name, TaskState::Running);
        TaskHandle {
            name,
            state: self.clone(),
            finished: false,
        }
    }

    /// Records whether the controller's caches (reflectors) have completed their first list.
    pub fn set_caches_synced(&self, synced: bool) {
        self.lock().caches_synced = synced;
    }

    /// Turns on the leader-election rules of readiness (see the module docs).
    pub fn set_leader_election(&self, enabled: bool) {
        self.lock().leader_election = enabled;
    }

    /// Records whether this replica currently holds the lease.
    pub fn set_leader(&self, leader: bool) {
        self.lock().leader = leader;
    }

    /// The state of a registered task, if any.
    pub fn task(&self, name: &str) -> Option<TaskState> {
        self.lock().tasks.get(name).cloned()
    }

    /// Liveness: every registered task is running.
    pub fn liveness(&self) -> Check {
        let inner = self.lock();
        let mut detail = Vec::new();
        let mut ok = true;
        for (name, state) in &inner.tasks {
            match state {
                TaskState::Running => detail.push(format!("{name}: running")),
                TaskState::Failed(why) => {
                    ok = false;
                    detail.push(format!("{name}: failed: {why}"));
                }
                TaskState::Stopped => {
                    ok = false;
                    detail.push(format!("{name}: stopped"));
                }
            }
        }
        Check { ok, detail }
    }

    /// Readiness: live, and either caches synced (no leader election, or the leader) or a
    /// standby whose lease task is running.
    pub fn readiness(&self) -> Check {
        let live = self.liveness();
        let inner = self.lock();
        let mut detail = live.detail;
        let mut ok = live.ok;
        if inner.leader_election {
            let lease_ok = inner.tasks.get(LEASE_TASK) == Some(&TaskState::Running);
            detail.push(format!(
                "lease: {}",
                if lease_ok { "healthy" } else { "not running" }
            ));
            ok &= lease_ok;
            detail.push(format!(
                "role: {}",
                if inner.leader { "leader" } else { "standby" }
            ));
            if inner.leader {
                ok &= inner.caches_synced;
                detail.push(format!("caches: {}", synced(inner.caches_synced)));
            }
        } else {
            ok &= inner.caches_synced;
            detail.push(format!("caches: {}", synced(inner.caches_synced)));
        }
        Check { ok, detail }
    }
}

fn synced(yes: bool) -> &'static str {
    if yes { "synced" } else { "not synced" }
}

#[derive(Clone)]
struct ServerState {
    health: HealthState,
    metrics: Arc<Metrics>,
}

fn probe(check: Check) -> Response {
    let status = if check.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = if check.ok { "ok\n" } else { "not ok\n" }.to_string();
    for line in check.detail {
        body.push_str(&line);
        body.push('\n');
    }
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn healthz(State(s): State<ServerState>) -> Response {
    probe(s.health.liveness())
}

async fn readyz(State(s): State<ServerState>) -> Response {
    probe(s.health.readiness())
}

async fn metrics(State(s): State<ServerState>) -> Response {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        s.metrics.encode(),
    )
        .into_response()
}

/// The router serving `/healthz`, `/readyz` and `/metrics`.
pub fn router(health: HealthState, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(self::metrics))
        .with_state(ServerState { health, metrics })
}

/// Binds `addr` and serves until `shutdown` completes. Bind errors come back at once, so a
/// taken port fails start-up instead of leaving the pod without probes.
pub async fn serve(
    addr: SocketAddr,
    health: HealthState,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), HealthError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| HealthError::Bind { addr, source })?;
    serve_listener(listener, health, metrics, shutdown).await
}

/// Serves on an already bound listener (tests bind 127.0.0.1:0 and read the port).
pub async fn serve_listener(
    listener: TcpListener,
    health: HealthState,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), HealthError> {
    axum::serve(listener, router(health, metrics))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(HealthError::Serve)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;

    use super::*;

    struct Server {
        base: String,
        stop: CancellationToken,
        task: tokio::task::JoinHandle<Result<(), HealthError>>,
    }

    async fn start(health: HealthState, metrics: Arc<Metrics>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(serve_listener(listener, health, metrics, async move {
            token.cancelled().await
        }));
        Server { base, stop, task }
    }

    async fn status(base: &str, path: &str) -> (u16, String) {
        let res = reqwest::get(format!("{base}{path}"))
            .await
            .expect("request");
        let code = res.status().as_u16();
        (code, res.text().await.expect("body"))
    }

    #[tokio::test]
    async fn healthz_fails_when_a_critical_task_fails_or_dies_and_recovers() {
        let health = HealthState::new();
        let server = start(health.clone(), Arc::new(Metrics::new())).await;
        let reconciler = health.register("rollout-controller");
        assert_eq!(status(&server.base, "/healthz").await.0, 200);
        reconciler.failed("watch stream ended");
        let (code, body) = status(&server.base, "/healthz").await;
        assert_eq!(code, 503);
        assert!(
            body.contains("rollout-controller: failed: watch stream ended"),
            "{body}"
        );
        reconciler.running();
        assert_eq!(status(&server.base, "/healthz").await.0, 200);
        // A task that panics drops its handle while unwinding.
        let handle = health.register("analysis-scheduler");
        let died = tokio::spawn(async move {
            let _h = handle;
            panic!("boom");
        });
        assert!(died.await.is_err());
        let (code, body) = status(&server.base, "/healthz").await;
        assert_eq!(code, 503);
        assert!(body.contains("analysis-scheduler: stopped"), "{body}");
        server.stop.cancel();
        server.task.await.expect("join").expect("clean stop");
    }

    #[tokio::test]
    async fn a_finished_task_no_longer_counts() {
        let health = HealthState::new();
        let handle = health.register("reflector");
        handle.finish();
        assert!(health.liveness().ok);
        assert_eq!(health.task("reflector"), None);
    }

    #[tokio::test]
    async fn readyz_without_leader_election_waits_for_caches() {
        let health = HealthState::new();
        let server = start(health.clone(), Arc::new(Metrics::new())).await;
        assert_eq!(status(&server.base, "/readyz").await.0, 503);
        health.set_caches_synced(true);
        assert_eq!(status(&server.base, "/readyz").await.0, 200);
        server.stop.cancel();
        server.task.await.expect("join").expect("clean stop");
    }

    #[tokio::test]
    async fn readyz_with_leader_election_accepts_a_healthy_standby_but_not_an_unsynced_leader() {
        let health = HealthState::new();
        health.set_leader_election(true);
        let server = start(health.clone(), Arc::new(Metrics::new())).await;
        // No lease task yet.
        assert_eq!(status(&server.base, "/readyz").await.0, 503);
        let lease = health.register(LEASE_TASK);
        let (code, body) = status(&server.base, "/readyz").await;
        assert_eq!(code, 200, "{body}");
        assert!(body.contains("role: standby"), "{body}");
        health.set_leader(true);
        assert_eq!(status(&server.base, "/readyz").await.0, 503);
        health.set_caches_synced(true);
        assert_eq!(status(&server.base, "/readyz").await.0, 200);
        lease.failed("lease API unreachable");
        assert_eq!(status(&server.base, "/readyz").await.0, 503);
        server.stop.cancel();
        server.task.await.expect("join").expect("clean stop");
    }

    #[tokio::test]
    async fn metrics_endpoint_serves_the_registry_as_openmetrics() {
        let metrics = Arc::new(Metrics::new());
        metrics.reconcile_error("shop", "web");
        let server = start(HealthState::new(), metrics).await;
        let res = reqwest::get(format!("{}/metrics", server.base))
            .await
            .expect("request");
        assert_eq!(res.status().as_u16(), 200);
        assert_eq!(
            res.headers()[reqwest::header::CONTENT_TYPE],
            METRICS_CONTENT_TYPE
        );
        let body = res.text().await.expect("body");
        assert!(
            body.contains(r#"rollout_reconcile_error{namespace="shop",name="web"} 1"#),
            "{body}"
        );
        assert!(body.ends_with("# EOF\n"), "{body}");
        server.stop.cancel();
        server.task.await.expect("join").expect("clean stop");
    }

    #[tokio::test]
    async fn serve_reports_a_taken_port_instead_of_hanging() {
        let taken = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = taken.local_addr().expect("addr");
        let result = tokio::time::timeout(
            Duration::from_secs(5),
            serve(addr, HealthState::new(), Arc::new(Metrics::new()), async {}),
        )
        .await
        .expect("returns promptly");
        assert!(
            matches!(result, Err(HealthError::Bind { .. })),
            "{result:?}"
        );
    }
}
