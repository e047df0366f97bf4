//! The kube-runtime wiring of the controllers: observe the cluster, call the pure planners
//! of `sluice_engine`, apply their plans. Beside them: the HTTP metric providers, Prometheus
//! metrics, the health endpoint, leader election, the client-side throttle and the RBAC the
//! controller needs.

pub mod actuator;
pub mod analysis_run;
pub mod announce;
pub mod backoff;
pub mod cached_rollout;
pub mod client;
pub mod coalesce;
pub mod crds;
pub mod error;
pub mod events;
pub mod experiment;
pub mod first_pass;
pub mod freshness;
pub mod health;
pub mod leader;
pub mod metrics;
pub mod own_task;
pub mod owned;
pub mod packed;
pub mod providers;
pub mod rbac;
pub mod referrers;
pub mod refusals;
pub mod replica_sets;
pub mod rollout;
pub mod routes;
pub mod services;
pub mod status_patch;
pub mod telemetry;
pub mod throttle;
pub mod trimmed;
pub mod undecoded;
pub mod unread;
pub mod watched;

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, ListParams};

use crate::replica_sets::SharedReplicaSets;
use kube::{Client, Resource};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use error::RunError;
use health::HealthState;
use metrics::Metrics;

/// How to run the controllers of one process: `sluice controller`, the demo, and the tests
/// that run them in-process all start them through [`run`], so they start and stop alike.
#[derive(Default)]
pub struct Options {
    /// What the three controllers watch and where they report: namespace, instance id,
    /// Events level, metrics, health.
    pub controllers: rollout::Config,
    /// Reconcile only while holding this Lease; `None`: from the start.
    pub leader_election: Option<LeaderElection>,
    /// Serve `/metrics`, `/healthz` and `/readyz` here until the controllers stop, from
    /// `controllers.metrics` and `controllers.health` (fresh ones when those are `None`).
    pub endpoints: Option<tokio::net::TcpListener>,
    /// Once `shutdown` fires, how long in-flight reconciles may take before [`run`] returns
    /// anyway; `None`: as long as they need.
    pub shutdown_grace: Option<Duration>,
}

/// The Lease a replica campaigns for (see [`leader`]).
#[derive(Clone)]
pub struct LeaderElection {
    pub namespace: String,
    pub lease_name: String,
    pub identity: String,
    pub lease_duration: Duration,
    /// The client the Lease is renewed with, configured by [`leader::lease_config`] (no retry of
    /// refused renewals); `None`: the controllers' client.
    pub client: Option<Client>,
}

impl std::fmt::Debug for LeaderElection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElection")
            .field("namespace", &self.namespace)
            .field("lease_name", &self.lease_name)
            .field("identity", &self.identity)
            .field("lease_duration", &self.lease_duration)
            .field("own_client", &self.client.is_some())
            .finish()
    }
}

/// Run the Rollout, AnalysisRun and Experiment controllers (under leader election, and with
/// the health and metrics endpoints, when `options` ask for them) until `shutdown` fires or
/// one of them fails.
pub async fn run(
    client: Client,
    options: Options,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let Options {
        mut controllers,
        leader_election,
        endpoints,
        shutdown_grace,
    } = options;
    let server = endpoints.map(|listener| {
        let health = controllers.health.get_or_insert_with(HealthState::new);
        let metrics = controllers
            .metrics
            .get_or_insert_with(|| Arc::new(Metrics::new()));
        serve_endpoints(listener, health.clone(), metrics.clone())
    });
    let work = run_elected(client, controllers, leader_election, shutdown.clone());
    let result = match shutdown_grace {
        None => work.await,
        Some(grace) => tokio::select! {
            r = work => r,
            _ = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
                warn!(grace = ?grace, "in-flight work did not finish within the shutdown grace period");
                Ok(())
            }
        },
    };
    if let Some((stop, task)) = server {
        stop.cancel();
        let _ = task.await;
    }
    result
}

/// Serve the health and metrics endpoints on `listener` until the returned token is
/// cancelled.
fn serve_endpoints(
    listener: tokio::net::TcpListener,
    health: HealthState,
    metrics: Arc<Metrics>,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    if let Ok(addr) = listener.local_addr() {
        info!(addr = %addr, "serving /metrics, /healthz and /readyz");
    }
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let task = tokio::spawn(async move {
        let serving = health::serve_listener(listener, health, metrics, async move {
            stopped.cancelled().await
        });
        if let Err(e) = serving.await {
            warn!(error = %e, "the metrics/health endpoint stopped");
        }
    });
    (stop, task)
}

/// The three controllers, at once or once this replica leads.
async fn run_elected(
    client: Client,
    cfg: rollout::Config,
    election: Option<LeaderElection>,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let Some(election) = election else {
        return run_controllers(client, cfg, shutdown).await;
    };
    let mut elector = leader::LeaderElector::new(
        election.client.clone().unwrap_or_else(|| client.clone()),
        &election.namespace,
        &election.lease_name,
        &election.identity,
        election.lease_duration,
    )
    .await?;
    if let Some(health) = &cfg.health {
        elector = elector.with_health(health.clone());
    }
    leader::run_as_leader(elector, shutdown, |token| {
        run_controllers(client.clone(), cfg.clone(), token)
    })
    .await
    .map_err(|e| RunError::Lead(Box::new(e)))
}

/// Run every controller until `shutdown`.
async fn run_controllers(
    client: Client,
    cfg: rollout::Config,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    // Listed once for both controllers that own ReplicaSets (see `replica_sets`).
    let replica_sets =
        SharedReplicaSets::watch(&client, cfg.namespace.as_deref(), rollout::HASH_LABEL);
    tokio::try_join!(
        rollout::run(
            client.clone(),
            cfg.clone(),
            replica_sets.rollouts,
            shutdown.clone()
        ),
        analysis_run::run(client.clone(), cfg.clone(), shutdown.clone()),
        experiment::run(client, cfg, replica_sets.experiments, shutdown)
    )
    .map(|_| ())
}

/// An `Api` over one namespace (namespaced mode) or all of them.
pub fn scoped_api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Fail at start-up, in one line, when the CRD behind `api` is not installed.
pub async fn require_crd<K>(api: &Api<K>, resource: &'static str) -> Result<(), RunError>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.list(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(()),
        Err(error) => Err(RunError::MissingCrd { resource, error }),
    }
}

/// The HTTP status code of an API error (`None` for transport and decoding errors).
pub(crate) fn api_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// (namespace, name) of an object: the key of the watch caches and reverse indexes. The
/// strings are shared: an index keeps a key in several places, and a clone only counts a
/// reference.
pub(crate) type NamespacedName = (std::sync::Arc<str>, std::sync::Arc<str>);

/// The [`NamespacedName`] of the object `meta` describes.
pub(crate) fn namespaced_name(meta: &kube::api::ObjectMeta) -> NamespacedName {
    (
        meta.namespace.as_deref().unwrap_or_default().into(),
        meta.name.as_deref().unwrap_or_default().into(),
    )
}

/// `namespace/name`: the key of an object in the controllers' per-object maps (backoff,
/// freshness, written copies).
pub(crate) fn object_key<K: kube::Resource>(obj: &K) -> String {
    let meta = obj.meta();
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}
