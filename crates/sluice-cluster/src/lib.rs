//! The embedded cluster: an in-process Kubernetes API server over HTTP on 127.0.0.1, faithful
//! enough for the real `kubectl` and kube-rs clients. `make demo` and the e2e tests run Sluice
//! against it.
//!
//! What it serves: discovery (legacy and aggregated v2), OpenAPI v3 (built-ins from k8s-openapi,
//! custom resources from their CRD) and v2 (the same schemas, protobuf or JSON),
//! CRUD/LIST/WATCH/PATCH on the built-in kinds and on any CustomResourceDefinition, `/status`
//! and `/scale`, `pods/eviction` honouring PodDisruptionBudgets, Tables for `kubectl get`,
//! owner-reference garbage collection, namespace termination, optional persistence
//! (`data_dir`), and an audit log.
//!
//! Deliberate simplifications (each differs from a real apiserver only where Sluice and kubectl
//! do not look): one global lock instead of MVCC (paged lists continue over the current state);
//! Pods are deleted at once instead of gracefully; multi-version custom resources use the `None`
//! conversion; autoscaling/v1 sees only the CPU metric of an HPA; protobuf is read for the kinds
//! `kubectl create` sends and never written; no authorization or admission webhooks; no
//! logs/exec/port-forward. Authentication exists only with [`ClusterConfig::tls`] (client
//! certificates, [`tls`]); over plain HTTP every request is served.

mod discovery;
pub mod error;
mod events;
pub mod faults;
mod gc;
mod hpa;
mod names;
mod openapi;
mod openapi_v2;
mod ops;
pub mod patch;
mod persist;
mod protobuf;
pub mod schema;
mod selector;
mod server;
mod store;
mod table;
pub mod tls;
mod types;
pub mod workloads;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use server::AuditEntry;

/// The documented default port of `sluice cluster`.
pub const DEFAULT_PORT: u16 = 6480;

/// Events kept for watch resumption; older resourceVersions get 410 Gone.
const HISTORY: usize = 50_000;

/// How to start the embedded cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterConfig {
    /// Port on 127.0.0.1; 0 picks an ephemeral one.
    pub port: u16,
    /// Persist objects here and reload them on start; in memory only when `None`.
    pub data_dir: Option<PathBuf>,
    /// Where to write a kubeconfig for the cluster once it is listening.
    pub kubeconfig: Option<PathBuf>,
    /// Run the simulated workload controllers (ReplicaSet, Deployment, Job, kubelet);
    /// `None` serves the API only.
    pub workloads: Option<workloads::Config>,
    /// Serve HTTPS with a CA made at start and require a client certificate (the kubeconfig
    /// carries the CA and the client pair); plain HTTP when `false`.
    pub tls: bool,
    /// Faults to inject from the start (none by default; also settable at run time on
    /// `/_sluice/faults`).
    pub faults: faults::Faults,
}

/// Why the embedded cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("binding 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error("loading persisted objects from {dir}: {source}")]
    Load {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("writing the kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("building the kube client: {0}")]
    Client(String),
    #[error("setting up TLS: {0}")]
    Tls(#[from] tls::TlsError),
}

/// A running embedded cluster. Dropping it without [`EmbeddedCluster::shutdown`] leaves the
/// server task running until the runtime ends.
pub struct EmbeddedCluster {
    shared: Arc<server::Shared>,
    client: kube::Client,
    tasks: Vec<JoinHandle<()>>,
    /// The CA and certificates when serving TLS.
    pki: Option<Arc<tls::Pki>>,
}

impl EmbeddedCluster {
    /// Binds 127.0.0.1:`cfg.port`, loads persisted objects, and serves until shutdown.
    pub async fn start(cfg: ClusterConfig) -> Result<Self, ClusterError> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", cfg.port))
            .await
            .map_err(|source| ClusterError::Bind {
                port: cfg.port,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ClusterError::Bind {
            port: cfg.port,
            source,
        })?;
        let mut st = store::State::new(HISTORY);
        let mut tasks = Vec::new();
        if let Some(dir) = &cfg.data_dir {
            tasks.push(open_persisted(&mut st, dir)?);
        }
        create_initial_namespaces(&mut st);
        let shutdown = CancellationToken::new();
        let shared = Arc::new(server::Shared {
            state: Mutex::new(st),
            gc_notify: Notify::new(),
            audit: Mutex::new(std::collections::VecDeque::new()),
            addr,
            shutdown: shutdown.clone(),
            bookmark_interval: Duration::from_secs(1),
            faults: faults::Injector::new(cfg.faults.clone()),
            requests: faults::RequestLog::default(),
        });
        let pki = match cfg.tls {
            true => Some(Arc::new(tls::Pki::generate()?)),
            false => None,
        };
        match &pki {
            Some(pki) => {
                let listener = tls::TlsListener::new(listener, pki, shutdown.clone())?;
                tasks.push(serve_tls(listener, shared.clone()));
            }
            None => tasks.push(serve(listener, shared.clone())),
        }
        tasks.push(tokio::spawn(gc_loop(shared.clone())));
        let client = client_for(&kubeconfig_yaml(addr, pki.as_deref())).await?;
        let mut cluster = EmbeddedCluster {
            shared,
            client,
            tasks,
            pki,
        };
        if let Some(workloads_cfg) = cfg.workloads.clone() {
            let client = cluster.client();
            let token = shutdown.child_token();
            cluster.tasks.push(tokio::spawn(async move {
                if let Err(e) = workloads::run(client, workloads_cfg, token).await {
                    tracing::error!(error = %e, "simulated workload controllers stopped");
                }
            }));
        }
        if let Some(path) = &cfg.kubeconfig
            && let Err(source) = std::fs::write(path, cluster.kubeconfig_yaml())
        {
            cluster.shutdown().await;
            return Err(ClusterError::Kubeconfig {
                path: path.clone(),
                source,
            });
        }
        Ok(cluster)
    }

    /// The bound address (the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// A kubeconfig whose cluster, user and context are all named `sluice`; with TLS it
    /// carries the CA and the client-certificate user.
    pub fn kubeconfig_yaml(&self) -> String {
        kubeconfig_yaml(self.addr(), self.pki.as_deref())
    }

    /// The CA and certificates when the cluster serves TLS.
    pub fn pki(&self) -> Option<&tls::Pki> {
        self.pki.as_deref()
    }

    /// A kube client pointed at this cluster (default namespace `default`).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The API calls served so far, oldest first (the most recent 200,000), used to check RBAC
    /// coverage.
    pub fn audit(&self) -> Vec<AuditEntry> {
        self.shared
            .audit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Replaces the injected faults (what `PUT /_sluice/faults` does).
    pub fn set_faults(&self, faults: faults::Faults) {
        self.shared.faults.set(faults);
    }

    /// What was injected so far (what `GET /_sluice/faults` reports).
    pub fn fault_stats(&self) -> faults::FaultStats {
        self.shared.faults.stats()
    }

    /// Stops serving, ends open watches, and flushes persistence.
    pub async fn shutdown(self) {
        self.shared.shutdown.cancel();
        self.shared.lock().persist = None;
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

/// Serves the API on `listener` until shutdown.
fn serve(listener: tokio::net::TcpListener, shared: Arc<server::Shared>) -> JoinHandle<()> {
    let app = server::router(shared.clone());
    let token = shared.shutdown.clone();
    // As kube-apiserver does: small watch-event writes must not wait for a delayed ACK.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(token.cancelled_owned());
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "embedded cluster server stopped");
        }
    })
}

/// Serves the API over TLS, every request authenticated by its client certificate.
fn serve_tls(listener: tls::TlsListener, shared: Arc<server::Shared>) -> JoinHandle<()> {
    let app = server::router(shared.clone())
        .layer(axum::middleware::from_fn(tls::authenticate))
        .into_make_service_with_connect_info::<tls::Peer>();
    let token = shared.shutdown.clone();
    tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(token.cancelled_owned());
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "embedded cluster server stopped");
        }
    })
}

/// The kubeconfig of the cluster at `addr`: plain HTTP and no credentials, or with `pki` the
/// HTTPS server, its CA and the client-certificate user.
fn kubeconfig_yaml(addr: SocketAddr, pki: Option<&tls::Pki>) -> String {
    let (scheme, ca, user) = match pki {
        None => ("http", String::new(), " {}".to_string()),
        Some(p) => (
            "https",
            format!(
                "\n    certificate-authority-data: {}",
                tls::kubeconfig_data(&p.ca_pem)
            ),
            format!(
                "\n    client-certificate-data: {}\n    client-key-data: {}",
                tls::kubeconfig_data(&p.client_pem),
                tls::kubeconfig_data(&p.client_key_pem)
            ),
        ),
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: sluice\n  cluster:\n    server: {scheme}://{addr}{ca}\nusers:\n- name: sluice\n  user:{user}\ncontexts:\n- name: sluice\n  context:\n    cluster: sluice\n    user: sluice\n    namespace: default\ncurrent-context: sluice\npreferences: {{}}\n"
    )
}

/// A kube client for the cluster `kubeconfig` describes, in the namespace `default`.
async fn client_for(kubeconfig: &str) -> Result<kube::Client, ClusterError> {
    let kc = kube::config::Kubeconfig::from_yaml(kubeconfig)
        .map_err(|e| ClusterError::Client(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| ClusterError::Client(e.to_string()))?;
    kube::Client::try_from(config).map_err(|e| ClusterError::Client(e.to_string()))
}

/// Loads the objects persisted in `dir` into `st` and starts the task that persists every
/// write from now on.
fn open_persisted(st: &mut store::State, dir: &Path) -> Result<JoinHandle<()>, ClusterError> {
    persist::load(st, dir).map_err(|source| ClusterError::Load {
        dir: dir.to_path_buf(),
        source,
    })?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    st.persist = Some(tx);
    let (known, rv, dir) = (persist::known(st), st.rv, dir.to_path_buf());
    Ok(tokio::task::spawn_blocking(move || {
        persist::writer(dir, known, rv, rx)
    }))
}

/// The namespaces every cluster has, created unless persisted ones were loaded.
fn create_initial_namespaces(st: &mut store::State) {
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let o = ops::WriteOpts {
        dry_run: false,
        now,
    };
    let ns_t = st
        .registry
        .lookup("", "v1", "namespaces")
        .expect("namespaces are built in");
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        if !st.contains(&ns_t.gr(), "", ns) {
            ops::create(st, &ns_t, "v1", "", json!({"metadata": {"name": ns}}), &o)
                .expect("the initial namespaces are valid");
        }
    }
}

/// Runs the garbage collector whenever a write may have left work, with a periodic sweep.
async fn gc_loop(shared: Arc<server::Shared>) {
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = shared.gc_notify.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        // Bounded batches so writers are never starved of the lock.
        for _ in 0..1000 {
            let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
            let more = gc::run(&mut shared.lock(), &now, 256);
            if !more {
                break;
            }
            tokio::task::yield_now().await;
        }
    }
}
