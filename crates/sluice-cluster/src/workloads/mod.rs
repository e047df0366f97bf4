//! Simulated workload controllers and kubelet for the embedded cluster.
//!
//! An API server alone stores objects; nothing makes a ReplicaSet's Pods exist or a Pod
//! become Ready. In a real cluster kube-controller-manager and the kubelets do that. Here the
//! same job is done by ordinary kube-rs clients that talk to the API server over HTTP exactly
//! as those components would, so they work against the embedded server and a real one alike.
//!
//! Every controller has the same shape: observe (a shared, indexed watch cache per kind,
//! see [`informer`]) → decide (a pure `plan` function taking `now`, unit-tested with golden
//! tables) → act (the only code that writes). Timed re-checks (Pod readiness,
//! `minReadySeconds`, deadlines) go through a per-controller delay queue ([`queue`]); nothing
//! polls.
//!
//! The kubelet's lifecycle and failure conventions (`sluice.dev/simulate: never-ready` /
//! `crash-loop`, image tags `:never-ready` / `:crash-loop`, interpreted `exit N` / `sleep N`
//! commands) are documented in [`kubelet`] and in `docs/embedded-cluster.md`.

pub mod deployment;
pub mod disruption;
pub mod informer;
pub mod job;
pub mod kubelet;
pub mod pod_state;
pub mod pod_writer;
pub mod probes;
pub mod queue;
pub mod reflects;
pub mod replicaset;
pub mod script;
pub mod simulate;
pub mod status;

use std::time::Duration;

use thiserror::Error;

/// Tuning of the simulated cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Time from Running to Ready (and the run time of a Job container without `sleep`).
    pub pod_ready_delay: Duration,
    /// Time from first sight of a Pod to Running.
    pub pod_start_delay: Duration,
    /// Only objects in this namespace; `None` watches all namespaces.
    pub namespace: Option<String>,
    /// Failures chosen by image or command (`sluice cluster --simulate FILE`).
    pub failures: Vec<simulate::Rule>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            pod_ready_delay: Duration::from_millis(500),
            pod_start_delay: Duration::from_millis(200),
            namespace: None,
            failures: Vec::new(),
        }
    }
}

/// Why the workload controllers stopped or a reconcile failed.
#[derive(Debug, Error)]
pub enum WorkloadsError {
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("{object}: {message}")]
    Invalid { object: String, message: String },
    #[error("a reconcile task panicked: {0}")]
    Panicked(String),
}

pub(crate) fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

fn api_for<K>(client: &kube::Client, namespace: Option<&str>) -> kube::Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => kube::Api::namespaced(client.clone(), ns),
        None => kube::Api::all(client.clone()),
    }
}

/// Enqueues the controlling owner of `obj` on `queue` when the owner is of `kind`.
fn owner_handler<K: kube::Resource>(
    kind: &'static str,
    queue: queue::Queue,
) -> informer::Handler<K> {
    Box::new(move |obj: &K| {
        if let Some(owner) = pod_state::controller_of(obj.meta())
            && owner.kind == kind
        {
            let ns = obj.meta().namespace.clone().unwrap_or_default();
            queue.add(informer::ObjectKey::new(ns, owner.name.clone()));
        }
    })
}

/// Any change to a Pod or a ReplicaSet wakes the PodDisruptionBudgets of its namespace (they
/// are few; the disruption controller decides which Pods each one selects).
fn budgets_handler<K: kube::Resource>(
    budgets: std::sync::Arc<informer::Cache<k8s_openapi::api::policy::v1::PodDisruptionBudget>>,
    queue: queue::Queue,
) -> informer::Handler<K> {
    Box::new(move |obj: &K| {
        let ns = obj.meta().namespace.clone().unwrap_or_default();
        for pdb in budgets.in_namespace(&ns) {
            queue.add(informer::ObjectKey::of(pdb.as_ref()));
        }
    })
}

/// An orphan Pod wakes the ReplicaSets of its namespace whose selector matches it, so they
/// can adopt it. Orphans are rare, so scanning the namespace's ReplicaSets is fine.
fn orphan_handler(
    replicasets: std::sync::Arc<informer::Cache<k8s_openapi::api::apps::v1::ReplicaSet>>,
    queue: queue::Queue,
) -> informer::Handler<k8s_openapi::api::core::v1::Pod> {
    Box::new(move |pod| {
        if pod_state::controller_of(&pod.metadata).is_some() || !pod_state::is_active(pod) {
            return;
        }
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        for rs in replicasets.in_namespace(&ns) {
            if rs
                .spec
                .as_ref()
                .is_some_and(|s| replicaset::adopts(&s.selector, &labels))
            {
                queue.add(informer::ObjectKey::of(rs.as_ref()));
            }
        }
    })
}

fn self_handler<K: kube::Resource>(queue: queue::Queue) -> informer::Handler<K> {
    Box::new(move |obj: &K| queue.add(informer::ObjectKey::of(obj)))
}

/// Runs the ReplicaSet, Deployment and Job controllers and the simulated kubelet against
/// `client` until `shutdown` is cancelled.
///
/// Each kind is watched once and shared; controllers start acting only after the watches
/// they depend on have listed everything, so a restart never double-creates Pods.
pub async fn run(
    client: kube::Client,
    cfg: Config,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<(), WorkloadsError> {
    use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
    use k8s_openapi::api::batch::v1::Job;
    use k8s_openapi::api::core::v1::{ConfigMap, Pod};
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use kube::runtime::watcher;
    use std::sync::Arc;

    let ns = cfg.namespace.as_deref();
    let pods = Arc::new(informer::Cache::<Pod>::new());
    let replicasets = Arc::new(informer::Cache::<ReplicaSet>::new());
    let deployments = Arc::new(informer::Cache::<Deployment>::new());
    let jobs = Arc::new(informer::Cache::<Job>::new());
    let budgets = Arc::new(informer::Cache::<PodDisruptionBudget>::new());
    let (pdb_q, pdb_rx) = queue::Queue::new();
    let (kubelet_q, kubelet_rx) = queue::Queue::new();
    let (rs_q, rs_rx) = queue::Queue::new();
    let (deploy_q, deploy_rx) = queue::Queue::new();
    let (job_q, job_rx) = queue::Queue::new();

    let mut tasks = tokio::task::JoinSet::new();
    let stop = shutdown.child_token();
    tasks.spawn(informer::run(
        api_for::<Pod>(&client, ns),
        watcher::Config::default(),
        pods.clone(),
        vec![
            self_handler(kubelet_q.clone()),
            owner_handler("ReplicaSet", rs_q.clone()),
            owner_handler("Job", job_q.clone()),
            orphan_handler(replicasets.clone(), rs_q.clone()),
            budgets_handler(budgets.clone(), pdb_q.clone()),
        ],
        stop.clone(),
    ));
    tasks.spawn(informer::run(
        api_for::<ReplicaSet>(&client, ns),
        watcher::Config::default(),
        replicasets.clone(),
        vec![
            self_handler(rs_q),
            owner_handler("Deployment", deploy_q.clone()),
            budgets_handler(budgets.clone(), pdb_q.clone()),
        ],
        stop.clone(),
    ));
    tasks.spawn(informer::run(
        api_for::<Deployment>(&client, ns),
        watcher::Config::default(),
        deployments.clone(),
        vec![
            self_handler(deploy_q),
            budgets_handler(budgets.clone(), pdb_q.clone()),
        ],
        stop.clone(),
    ));
    tasks.spawn(informer::run(
        api_for::<PodDisruptionBudget>(&client, ns),
        watcher::Config::default(),
        budgets.clone(),
        vec![self_handler(pdb_q)],
        stop.clone(),
    ));
    tasks.spawn(informer::run(
        api_for::<Job>(&client, ns),
        watcher::Config::default(),
        jobs.clone(),
        vec![self_handler(job_q)],
        stop.clone(),
    ));

    let node = Arc::new(kubelet::NodeConfig {
        node: kubelet::Node {
            timing: kubelet::Timing {
                start_delay: cfg.pod_start_delay,
                ready_delay: cfg.pod_ready_delay,
            },
            failures: cfg.failures.clone(),
        },
        from_config_map: Default::default(),
    });
    // The simulation ConfigMap: its rules replace the previous ones, and every Pod is
    // looked at again.
    let simulation = Arc::new(informer::Cache::<ConfigMap>::new());
    {
        let (node, pods, cms, queue) = (
            node.clone(),
            pods.clone(),
            simulation.clone(),
            kubelet_q.clone(),
        );
        let handler: informer::Handler<ConfigMap> = Box::new(move |cm: &ConfigMap| {
            let current = cms.get(&informer::ObjectKey::of(cm));
            let rules = match current.as_deref().map(simulate::rules_of_config_map) {
                None => Vec::new(),
                Some(Ok(rules)) => rules,
                Some(Err(e)) => {
                    tracing::warn!(
                        configmap = %format!("{}/{}", simulate::CONFIG_MAP_NAMESPACE, simulate::CONFIG_MAP_NAME),
                        error = %e,
                        "simulated failures not applied"
                    );
                    Vec::new()
                }
            };
            *node
                .from_config_map
                .write()
                .unwrap_or_else(|e| e.into_inner()) = rules;
            for key in pods.keys() {
                queue.add(key);
            }
        });
        tasks.spawn(informer::run(
            kube::Api::namespaced(client.clone(), simulate::CONFIG_MAP_NAMESPACE),
            watcher::Config::default()
                .fields(&format!("metadata.name={}", simulate::CONFIG_MAP_NAME)),
            simulation.clone(),
            vec![handler],
            stop.clone(),
        ));
    }
    {
        let (client, pods, stop) = (client.clone(), pods.clone(), stop.clone());
        let memory = Arc::new(kubelet::Memory::default());
        let simulation = simulation.clone();
        tasks.spawn(async move {
            // The failure rules are known before any Pod is started.
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = async { pods.wait_synced().await; simulation.wait_synced().await } => {}
            }
            queue::run_worker("kubelet", kubelet_rx, 32, stop, move |key| {
                kubelet::reconcile(
                    key,
                    client.clone(),
                    pods.clone(),
                    memory.clone(),
                    node.clone(),
                )
            })
            .await;
        });
    }
    {
        let ctx = Arc::new(replicaset::Context {
            client: client.clone(),
            replicasets: replicasets.clone(),
            pods: pods.clone(),
            expectations: pod_writer::Expectations::default(),
            failures: Default::default(),
            writes: Default::default(),
        });
        let stop = stop.clone();
        tasks.spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = async { ctx.pods.wait_synced().await; ctx.replicasets.wait_synced().await } => {}
            }
            queue::run_worker("replicaset", rs_rx, 16, stop, move |key| {
                replicaset::reconcile(key, ctx.clone())
            })
            .await;
        });
    }
    {
        let ctx = Arc::new(deployment::Context {
            client: client.clone(),
            deployments: deployments.clone(),
            replicasets: replicasets.clone(),
            writes: Default::default(),
        });
        let stop = stop.clone();
        tasks.spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = async { ctx.deployments.wait_synced().await; ctx.replicasets.wait_synced().await } => {}
            }
            queue::run_worker("deployment", deploy_rx, 8, stop, move |key| {
                deployment::reconcile(key, ctx.clone())
            })
            .await;
        });
    }
    {
        let ctx = Arc::new(job::Context {
            client: client.clone(),
            jobs: jobs.clone(),
            pods: pods.clone(),
            expectations: pod_writer::Expectations::default(),
            writes: Default::default(),
        });
        let stop = stop.clone();
        tasks.spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = async { ctx.pods.wait_synced().await; ctx.jobs.wait_synced().await } => {}
            }
            queue::run_worker("job", job_rx, 8, stop, move |key| {
                job::reconcile(key, ctx.clone())
            })
            .await;
        });
    }

    {
        let ctx = Arc::new(disruption::Context {
            client: client.clone(),
            budgets: budgets.clone(),
            pods: pods.clone(),
            replicasets: replicasets.clone(),
            deployments: deployments.clone(),
            writes: Default::default(),
        });
        let stop = stop.clone();
        tasks.spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = async {
                    ctx.budgets.wait_synced().await;
                    ctx.pods.wait_synced().await;
                    ctx.replicasets.wait_synced().await;
                    ctx.deployments.wait_synced().await;
                } => {}
            }
            queue::run_worker("disruption", pdb_rx, 4, stop, move |key| {
                disruption::reconcile(key, ctx.clone())
            })
            .await;
        });
    }

    shutdown.cancelled().await;
    stop.cancel();
    while let Some(res) = tasks.join_next().await {
        if let Err(e) = res
            && e.is_panic()
        {
            return Err(WorkloadsError::Panicked(e.to_string()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod integration_tests;
