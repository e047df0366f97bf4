//! The kube-runtime wiring of the controllers: observe the cluster, call the pure planners
//! of `sluice_engine`, apply their plans. Beside them: the HTTP metric providers, Prometheus
//! metrics, the health endpoint, leader election, the client-side throttle and the RBAC the
//! controller needs.

pub mod actuator;
pub mod analysis_run;
pub mod backoff;
pub mod cached_rollout;
pub mod client;
pub mod coalesce;
pub mod crds;
pub mod events;
pub mod experiment;
pub mod freshness;
pub mod health;
pub mod leader;
pub mod metrics;
pub mod owned;
pub mod packed;
pub mod providers;
pub mod rbac;
pub mod rollout;
pub mod status_patch;
pub mod telemetry;
pub mod throttle;

use kube::api::{Api, ListParams};
use kube::{Client, Resource};
use tokio_util::sync::CancellationToken;

/// Run every controller of the `sluice controller` process until `shutdown`.
pub async fn run(
    client: Client,
    cfg: rollout::Config,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    tokio::try_join!(
        rollout::run(client.clone(), cfg.clone(), shutdown.clone()),
        analysis_run::run(client.clone(), cfg.clone(), shutdown.clone()),
        experiment::run(client, cfg, shutdown)
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
pub async fn require_crd<K>(api: &Api<K>, resource: &str) -> anyhow::Result<()>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    if let Err(e) = api.list(&ListParams::default().limit(1)).await {
        anyhow::bail!(
            "cannot list {resource} ({e}); are the CRDs installed? run: kubectl apply --server-side -f crds/"
        );
    }
    Ok(())
}

/// The HTTP status code of an API error (`None` for transport and decoding errors).
pub(crate) fn api_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
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
