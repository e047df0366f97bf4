//! The Rollout controller: observe → plan → act.
//!
//! `reconcile` reads a snapshot (the Rollout from the watch cache, its
//! ReplicaSets from a label-selected reflector, the Services it names), calls
//! the pure planner and hands the plan to the actuator. It holds no decision
//! logic of its own beyond "is this cached copy one we already superseded".

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, PodTemplate, Service};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{PredicateConfig, WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use super::actuator;
use super::announce::Announcer;
use super::backoff::Backoff;
use super::cached_rollout::CachedRollout;
use super::coalesce::CountWrites;
use super::events::{EventLevel, Publisher};
use super::first_pass::{FIRST_PASS_DONE, Finished, FirstPass};
use super::freshness::Freshness;
use super::object_key;
use super::owned::OwnedStore;
use super::refusals::Refusals;
use super::replica_sets::OwnedReplicaSets;
use super::routes::{RouteObjects, RouteReferences};
use super::services::{ManagedServices, ServiceReferences, managed_by};
use super::undecoded::Undecoded;
use super::watched::Lookup;
use crate::error::{ApiCallError, DecodeError, MetricLabel, ReconcileError, RunError};
use crate::health::HealthState;
use crate::metrics::{AbortCause, CacheGauges, Metrics, Outcome as RolloutOutcome};
use crate::own_task::stream_on_own_task;
use sluice_api::analysis::{AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate};
use sluice_api::experiment::Experiment;
use sluice_api::rollout::Rollout;
use sluice_engine::rollout::observed::Observed;
use sluice_engine::rollout::refusal;
use sluice_engine::rollout::traffic::{self, ObservedRoutes, RouteKind};
use sluice_engine::rollout::workload::{DeploymentScale, Workload};

/// Label every ReplicaSet the controller owns carries; the ReplicaSet watch is
/// selected on it so the controller never caches unrelated ReplicaSets.
pub const HASH_LABEL: &str = "rollouts-pod-template-hash";
/// Label that assigns an object to one controller instance.
pub const INSTANCE_ID_LABEL: &str = "argo-rollouts.argoproj.io/controller-instance-id";

/// Owner kind of the objects a Rollout controls.
const ROLLOUT_KIND: &str = "Rollout";
/// Reconciles in flight at once. Unbounded, a mass update of 10,000 Rollouts held 10,000
/// snapshots, plans and API connections at once for no gain on a few cores; upstream runs
/// 10 workers by default.
const CONCURRENCY: u16 = 32;
/// Objects the Rollout and ReplicaSet watches may get ahead of the controller by: about two
/// list pages.
const WATCH_BUFFER: usize = 1024;

/// Settings of the Rollout controller.
#[derive(Clone, Default)]
pub struct Config {
    /// Watch only this namespace (namespaced mode).
    pub namespace: Option<String>,
    /// Take only objects labelled with this instance id (without it: only unlabelled ones).
    pub instance_id: Option<String>,
    /// Where reconcile durations, errors, events and outcomes are counted.
    pub metrics: Option<Arc<Metrics>>,
    /// Liveness/readiness state served on /healthz and /readyz.
    pub health: Option<HealthState>,
    /// Which Events are written as Event objects (all are counted in the metrics).
    pub events: EventLevel,
}

impl Config {
    /// The label selector that picks this instance's objects.
    pub fn instance_selector(&self) -> String {
        match &self.instance_id {
            Some(id) => format!("{INSTANCE_ID_LABEL}={id}"),
            None => format!("!{INSTANCE_ID_LABEL}"),
        }
    }
}

/// Shared state of the reconcilers.
pub struct Context {
    pub client: Client,
    /// ReplicaSets controlled by Rollouts (label-selected on the hash label), by owner.
    pub replica_sets: OwnedStore<ReplicaSet>,
    /// AnalysisRuns created for Rollouts (label-selected on the hash label), by owner.
    pub analysis_runs: OwnedStore<AnalysisRun>,
    /// Experiments created for Rollouts (label-selected on the hash label), by owner.
    pub experiments: OwnedStore<Experiment>,
    /// Which Services each Rollout's `managed-by-rollouts` annotation claims, and the
    /// watched Services.
    pub services: ManagedServices,
    /// The watched route objects.
    pub route_objects: RouteObjects,
    pub events: Publisher,
    pub metrics: Option<Arc<Metrics>>,
    /// The version `split.smi-spec.io` is served in, once discovered.
    pub smi_version: std::sync::RwLock<Option<String>>,
    /// What is remembered per Rollout between its reconciles.
    pub memory: Arc<PerRollout>,
    /// Whether every Rollout listed at start has been reconciled once.
    pub first_pass: Arc<FirstPass>,
}

/// What the controller remembers of each Rollout between reconciles, keyed by
/// `namespace/name` (and UID for the announcement). All of it is forgotten when the Rollout
/// goes: on the watch's delete event, or on the reconcile that finds it being deleted.
#[derive(Debug)]
pub struct PerRollout {
    pub backoff: Backoff,
    pub freshness: Freshness,
    /// Writes the API server refused, for the next plan of their Rollout to report.
    pub refusals: Refusals,
    /// Progress-only status changes held back to be written with the next change.
    pub count_writes: CountWrites,
    /// UIDs of the Rollouts this controller has announced (`RolloutAddedToInformer`).
    pub informed: std::sync::Mutex<BTreeSet<String>>,
    /// The announcements not written yet.
    pub announcer: Announcer,
}

impl Default for PerRollout {
    fn default() -> Self {
        PerRollout {
            backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(60)),
            freshness: Freshness::default(),
            refusals: Refusals::default(),
            count_writes: CountWrites::default(),
            informed: Default::default(),
            announcer: Announcer::default(),
        }
    }
}

impl PerRollout {
    /// Forget everything about the Rollout `key` (UID `uid`).
    pub fn forget(&self, key: &str, uid: Option<&str>) {
        self.backoff.success(key);
        self.freshness.forget(key);
        self.refusals.take(key);
        self.count_writes.written(key);
        if let Some(uid) = uid {
            self.informed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(uid);
            self.announcer.forget(uid);
        }
    }

    /// How many Rollouts something is remembered of (for tests).
    pub fn remembered(&self) -> usize {
        let mut keys = BTreeSet::new();
        keys.extend(self.backoff.keys());
        keys.extend(self.freshness.keys());
        keys.extend(self.refusals.keys());
        keys.extend(self.count_writes.keys());
        keys.len()
            + self
                .informed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .len()
    }
}

pub use crate::announce::ADDED_TO_INFORMER_REASON;

/// Announces a Rollout the first time this controller reconciles it, before anything it plans,
/// as upstream's informer does when it first lists or sees the Rollout (on creation, and for
/// every existing Rollout each time a controller starts). The Event is queued and written
/// beside the reconciles (see [`crate::announce`]).
fn announce_added(ctx: &Context, ro: &Rollout) {
    let uid = ro.uid().unwrap_or_default();
    let first = ctx
        .memory
        .informed
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(uid);
    if !first {
        return;
    }
    if let Some(metrics) = &ctx.metrics {
        metrics.event(
            &ro.namespace().unwrap_or_default(),
            &ro.name_any(),
            "Normal",
            ADDED_TO_INFORMER_REASON,
        );
    }
    ctx.memory.announcer.announce(ro.object_ref(&()));
}

/// The `controller` label of this controller's failures in `sluice_reconcile_errors_total`.
pub const CONTROLLER: &str = "rollout";

/// Errors of one reconcile: the controllers' one taxonomy.
pub type Error = ReconcileError;

/// Build the snapshot the planner decides on.
async fn observe(
    ro: &Rollout,
    ctx: &Context,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Observed, Error> {
    let ns = ro.namespace().unwrap_or_default();
    let uid = ro.uid().unwrap_or_default();
    let cached = |what: &str| {
        DecodeError::of(format!(
            "the cached {what} of rollout {ns}/{}",
            ro.name_any()
        ))
    };
    let replica_sets: Vec<ReplicaSet> = ctx
        .replica_sets
        .owned_by(&ns, &uid)
        .map_err(cached("replicasets"))?;
    let managed = ctx.services.managed_by(&ns, &ro.name_any());
    let services = read_services(ro, ctx, &ns, managed).await?;
    // Pods are read only while a restart (`spec.restartAt`) is due.
    let pods = if Observed::needs_pods(ro, now) {
        read_pods(&replica_sets, &ctx.client, &ns).await?
    } else {
        Vec::new()
    };
    let analysis_runs: Vec<AnalysisRun> = ctx
        .analysis_runs
        .owned_by(&ns, &uid)
        .map_err(cached("analysisruns"))?;
    let experiments: Vec<Experiment> = ctx
        .experiments
        .owned_by(&ns, &uid)
        .map_err(cached("experiments"))?;
    let (analysis_templates, cluster_analysis_templates) =
        read_templates(ro, &ctx.client, &ns).await?;
    let workload = read_workload(ro, &ctx.client, &ns).await?;
    let routes = read_routes(ro, ctx).await?;
    Ok(Observed {
        rollout: ro.clone(),
        replica_sets,
        services,
        pods,
        analysis_runs,
        experiments,
        analysis_templates,
        cluster_analysis_templates,
        workload,
        outside_pods: 0,
        routes,
        refused: None,
    })
}

/// The API resource of a route kind the traffic routing writes, in `version`.
pub(crate) fn route_resource(kind: RouteKind, version: &str) -> ApiResource {
    ApiResource {
        group: kind.group().to_string(),
        version: version.to_string(),
        api_version: format!("{}/{version}", kind.group()),
        kind: kind.kind().to_string(),
        plural: kind.plural().to_string(),
    }
}

/// The version a route kind is read and written in: its fixed one, or for a TrafficSplit the
/// one the API server prefers for `split.smi-spec.io` (remembered once found; `None` while
/// the group is not served).
pub(crate) async fn route_version(ctx: &Context, kind: RouteKind) -> Result<Option<String>, Error> {
    if let Some(v) = kind.version() {
        return Ok(Some(v.to_string()));
    }
    if let Some(v) = ctx
        .smi_version
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
    {
        return Ok(Some(v));
    }
    let groups = ctx
        .client
        .list_api_groups()
        .await
        .map_err(ApiCallError::on("discover", "api groups"))?;
    let found = groups
        .groups
        .into_iter()
        .find(|g| g.name == kind.group())
        .and_then(|g| g.preferred_version.map(|v| v.version));
    if let Some(v) = &found {
        *ctx.smi_version.write().unwrap_or_else(|p| p.into_inner()) = Some(v.clone());
    }
    Ok(found)
}

/// The route objects the traffic routing names (`None`: it does not exist, or its kind is not
/// served): from the watch cache, or a GET where the cache does not show our last write to
/// the route yet (or has not listed its kind), so a step is verified on the route as it is
/// after the write.
async fn read_routes(ro: &Rollout, ctx: &Context) -> Result<ObservedRoutes, Error> {
    let mut routes = ObservedRoutes::new();
    for r in traffic::route_refs(ro) {
        // A TrafficSplit's version is discovered even when the cache answers: the actuator
        // writes in it (creating the split), and a guessed one is not served by every CRD.
        if r.kind.version().is_none() {
            route_version(ctx, r.kind).await?;
        }
        if let Lookup::Cached(obj) = ctx.route_objects.get(&r) {
            let value = obj
                .map(|o| o.get())
                .transpose()
                .map_err(DecodeError::of(r.to_string()))?;
            routes.insert(r, value);
            continue;
        }
        let Some(version) = route_version(ctx, r.kind).await? else {
            routes.insert(r, None);
            continue;
        };
        let api: Api<DynamicObject> = Api::namespaced_with(
            ctx.client.clone(),
            &r.namespace,
            &route_resource(r.kind, &version),
        );
        let obj = api
            .get_opt(&r.name)
            .await
            .map_err(ApiCallError::on("read", r.to_string()))?;
        ctx.route_objects.verified(
            &r,
            obj.as_ref()
                .and_then(|o| o.metadata.resource_version.as_deref()),
        );
        let value = obj
            .map(|o| serde_json::to_value(&o))
            .transpose()
            .map_err(DecodeError::of(r.to_string()))?;
        routes.insert(r, value);
    }
    Ok(routes)
}

/// The Services the strategy names (canary/stable or active/preview; `None`: it does not
/// exist) and those the index says this Rollout manages (`managed`), so one it no longer
/// names can be given back: from the Service watch's cache, or a GET where the cache does
/// not show our last write to that Service yet (or has not listed), so a selector is switched
/// on what it is after our write. The GETs are concurrent (a blue/green Rollout names two
/// Services).
async fn read_services(
    ro: &Rollout,
    ctx: &Context,
    ns: &str,
    managed: Vec<String>,
) -> Result<BTreeMap<String, Option<Service>>, Error> {
    let svc_api: Api<Service> = Api::namespaced(ctx.client.clone(), ns);
    let names: BTreeSet<String> = Observed::referenced_services(ro)
        .into_iter()
        .chain(managed)
        .collect();
    let cache = ctx.services.objects();
    let mut services = BTreeMap::new();
    let mut verify = Vec::new();
    for name in names {
        match cache.get(&(ns.into(), name.as_str().into())) {
            Lookup::Cached(svc) => {
                let svc = svc
                    .map(|s| s.get())
                    .transpose()
                    .map_err(DecodeError::of(format!("service {ns}/{name}")))?;
                services.insert(name, svc);
            }
            Lookup::Verify => verify.push(name),
        }
    }
    let reads = verify.into_iter().map(|name| {
        let svc_api = &svc_api;
        async move {
            let svc = svc_api
                .get_opt(&name)
                .await
                .map_err(ApiCallError::on("read", format!("service {ns}/{name}")))?;
            cache.verified(
                &(ns.into(), name.as_str().into()),
                svc.as_ref()
                    .and_then(|s| s.metadata.resource_version.as_deref()),
            );
            Ok::<_, Error>((name, svc))
        }
    });
    services.extend(futures::future::try_join_all(reads).await?);
    Ok(services)
}

/// LIST the pods of the Rollout's ReplicaSets (by the hash label, then by owner).
async fn read_pods(
    replica_sets: &[ReplicaSet],
    client: &Client,
    ns: &str,
) -> Result<Vec<Pod>, Error> {
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let rs_uids: std::collections::HashSet<&str> = replica_sets
        .iter()
        .filter_map(|rs| rs.metadata.uid.as_deref())
        .collect();
    let pods = pod_api
        .list(&ListParams::default().labels(HASH_LABEL))
        .await
        .map_err(ApiCallError::on("read", format!("pods in {ns}")))?
        .items
        .into_iter()
        .filter(|p| {
            p.owner_references()
                .iter()
                .any(|o| rs_uids.contains(o.uid.as_str()))
        })
        .collect();
    Ok(pods)
}

/// GET the object `spec.workloadRef` names (a Deployment, ReplicaSet or PodTemplate in the
/// Rollout's namespace). `None` when there is no reference, its kind is not one of those
/// (the planner names the field), or the object does not exist.
async fn read_workload(ro: &Rollout, client: &Client, ns: &str) -> Result<Option<Workload>, Error> {
    let Some(reference) = ro.spec.workload_ref.as_ref() else {
        return Ok(None);
    };
    let name = reference.name.as_deref().unwrap_or_default();
    if name.is_empty() {
        return Ok(None);
    }
    let read = |kind: &str| ApiCallError::on("read", format!("{kind} {ns}/{name}"));
    Ok(match reference.kind.as_deref() {
        Some("Deployment") => Api::<Deployment>::namespaced(client.clone(), ns)
            .get_opt(name)
            .await
            .map_err(read("deployment"))?
            .map(|d| {
                let spec = d.spec.unwrap_or_default();
                let status = d.status.unwrap_or_default();
                Workload {
                    generation: d.metadata.generation.unwrap_or(0),
                    template: Some(spec.template),
                    selector: Some(spec.selector),
                    scale: Some(DeploymentScale {
                        spec: spec.replicas.unwrap_or(1),
                        pods: status.replicas.unwrap_or(0),
                    }),
                }
            }),
        Some("ReplicaSet") => Api::<ReplicaSet>::namespaced(client.clone(), ns)
            .get_opt(name)
            .await
            .map_err(read("replicaset"))?
            .map(|rs| {
                let spec = rs.spec.unwrap_or_default();
                Workload {
                    generation: rs.metadata.generation.unwrap_or(0),
                    template: spec.template,
                    selector: Some(spec.selector),
                    scale: None,
                }
            }),
        Some("PodTemplate") => Api::<PodTemplate>::namespaced(client.clone(), ns)
            .get_opt(name)
            .await
            .map_err(read("podtemplate"))?
            .map(|t| Workload {
                generation: t.metadata.generation.unwrap_or(0),
                template: t.template,
                selector: None,
                scale: None,
            }),
        _ => None,
    })
}

/// How deep `spec.templates` references are followed; a chain longer than this is
/// reported by the planner as a missing template rather than read forever.
const MAX_TEMPLATE_DEPTH: usize = 10;

type Templates = (
    BTreeMap<String, AnalysisTemplate>,
    BTreeMap<String, ClusterAnalysisTemplate>,
);

/// GET every template the Rollout names, then the templates those name, until no
/// new name appears. A template that does not exist is left out (the planner
/// names it in an InvalidSpec condition).
async fn read_templates(ro: &Rollout, client: &Client, ns: &str) -> Result<Templates, Error> {
    let at_api: Api<AnalysisTemplate> = Api::namespaced(client.clone(), ns);
    let cat_api: Api<ClusterAnalysisTemplate> = Api::all(client.clone());
    let mut templates = BTreeMap::new();
    let mut cluster_templates = BTreeMap::new();
    let mut seen: (BTreeSet<String>, BTreeSet<String>) = Default::default();
    let mut wanted = Observed::referenced_templates(ro);
    for _ in 0..MAX_TEMPLATE_DEPTH {
        let mut next: (BTreeSet<String>, BTreeSet<String>) = Default::default();
        for name in wanted.0.iter().filter(|n| !seen.0.contains(*n)) {
            let found = at_api.get_opt(name).await.map_err(ApiCallError::on(
                "read",
                format!("analysistemplate {ns}/{name}"),
            ))?;
            if let Some(t) = found {
                let nested = Observed::nested_template_refs(&t.spec);
                next.0.extend(nested.0);
                next.1.extend(nested.1);
                templates.insert(name.clone(), t);
            }
        }
        for name in wanted.1.iter().filter(|n| !seen.1.contains(*n)) {
            let found = cat_api.get_opt(name).await.map_err(ApiCallError::on(
                "read",
                format!("clusteranalysistemplate {name}"),
            ))?;
            if let Some(t) = found {
                let nested = Observed::nested_template_refs(&t.spec.clone().into());
                next.0.extend(nested.0);
                next.1.extend(nested.1);
                cluster_templates.insert(name.clone(), t);
            }
        }
        seen.0.extend(std::mem::take(&mut wanted.0));
        seen.1.extend(std::mem::take(&mut wanted.1));
        next.0.retain(|n| !seen.0.contains(n));
        next.1.retain(|n| !seen.1.contains(n));
        if next.0.is_empty() && next.1.is_empty() {
            break;
        }
        wanted = next;
    }
    Ok((templates, cluster_templates))
}

/// The Rollouts (of namespace `ns`, or all) that reference any analysis template.
fn rollouts_using_templates(
    store: &Store<CachedRollout>,
    ns: Option<&str>,
) -> Vec<reflector::ObjectRef<CachedRollout>> {
    store
        .state()
        .iter()
        .filter(|ro| ns.is_none() || ro.meta().namespace.as_deref() == ns)
        .filter(|ro| ro.uses_templates())
        .map(|ro| reflector::ObjectRef::from_obj(&**ro))
        .collect()
}

/// The Rollouts whose `spec.workloadRef` names this object (same kind, name and
/// namespace): a change to it (a new template, a scale-up) must be acted on.
fn rollouts_referencing<K: kube::Resource>(
    store: &Store<CachedRollout>,
    kind: &str,
    obj: &K,
) -> Vec<reflector::ObjectRef<CachedRollout>> {
    let meta = obj.meta();
    let (ns, Some(name)) = (meta.namespace.as_deref(), meta.name.as_deref()) else {
        return Vec::new();
    };
    store
        .state()
        .iter()
        .filter(|ro| ro.meta().namespace.as_deref() == ns)
        .filter(|ro| ro.references(kind, name))
        .map(|ro| reflector::ObjectRef::from_obj(&**ro))
        .collect()
}

/// The Rollouts a change to `svc` matters to: those of its namespace whose strategy names it,
/// and the one its `managed-by-rollouts` annotation names (which may have to give it back).
/// A name without a cached Rollout is dropped by the controller.
fn rollouts_of_service(
    refs: &ServiceReferences,
    svc: &Service,
) -> Vec<reflector::ObjectRef<CachedRollout>> {
    let meta = svc.meta();
    let (Some(ns), Some(name)) = (meta.namespace.as_deref(), meta.name.as_deref()) else {
        return Vec::new();
    };
    let mut names = refs.rollouts_naming(ns, name);
    if let Some(owner) = managed_by(svc)
        && !names.iter().any(|n| n == owner)
    {
        names.push(owner.to_string());
    }
    names
        .into_iter()
        .map(|n| reflector::ObjectRef::new(&n).within(ns))
        .collect()
}

/// A workloadRef to a ReplicaSet is re-read this often: the ReplicaSet watch is selected
/// on the Rollouts' own hash label, so edits to another ReplicaSet raise no event.
const REPLICA_SET_REF_RESYNC: Duration = Duration::from_secs(30);

/// The part of an AnalysisRun or Experiment [`outcome_hash`] reads, decoded without the rest.
#[derive(serde::Deserialize)]
struct OutcomeOnly {
    status: Option<OutcomeStatus>,
}

#[derive(serde::Deserialize)]
struct OutcomeStatus {
    phase: Option<Value>,
    message: Option<Value>,
}

/// What of an AnalysisRun or Experiment the owning Rollout reacts to: its phase and
/// message (what `status.canary.current*` shows), spec and deletion. Measurements
/// recorded every interval change none of it, so they do not wake the Rollout. An object
/// whose status does not even decode that far always wakes it (its reconcile reports it).
fn outcome_hash<K>(obj: &Undecoded<K>) -> Option<u64>
where
    K: kube::Resource<DynamicType = ()> + serde::Serialize + serde::de::DeserializeOwned,
{
    use std::hash::{Hash, Hasher};
    let status = obj.peek::<OutcomeOnly>().ok()?.status;
    let field = |f: fn(&OutcomeStatus) -> &Option<Value>| {
        status
            .as_ref()
            .and_then(|s| f(s).as_ref())
            .and_then(Value::as_str)
    };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let meta = obj.meta();
    meta.generation.hash(&mut h);
    meta.deletion_timestamp.is_some().hash(&mut h);
    field(|s| &s.phase).hash(&mut h);
    field(|s| &s.message).hash(&mut h);
    Some(h.finish())
}

async fn reconcile(cached: Arc<CachedRollout>, ctx: Arc<Context>) -> Result<Action, Error> {
    let key = object_key(&*cached);
    if cached.meta().deletion_timestamp.is_some() {
        ctx.memory.forget(&key, cached.meta().uid.as_deref());
        return Ok(Action::await_change());
    }
    let rv = cached.resource_version().unwrap_or_default();
    if ctx.memory.freshness.is_stale(&key, &rv) {
        // Our own write superseded this copy; the watch will bring the new one.
        return Ok(Action::await_change());
    }
    // Reconciles start as soon as Rollouts are listed; planning while the owned objects'
    // caches are still being listed would miss them (and try to create them again).
    let synced = ctx.replica_sets.wait_ready().await.is_ok()
        && ctx.analysis_runs.wait_ready().await.is_ok()
        && ctx.experiments.wait_ready().await.is_ok();
    if !synced {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let ro = super::events::decode_or_warn(&ctx.events, cached.undecoded()).await?;
    announce_added(&ctx, &ro);
    let now = chrono::Utc::now();
    let mut observed = observe(&ro, &ctx, now).await?;
    observed.refused = ctx.memory.refusals.take(&key);
    let plan = sluice_engine::rollout::plan(&observed, now);
    tracing::debug!(
        changes = plan.changes.len(),
        requeue_after = ?plan.requeue_after,
        phase = ?plan.status.phase,
        step = ?plan.status.current_step_index,
        "planned"
    );
    let outcome = match actuator::apply(&ctx, &ro, &plan).await {
        Ok(outcome) => outcome,
        Err(failed) => {
            // A refused write is reported by the next plan (the observation carries it); the
            // failure still goes through the error policy: counted, logged, backed off.
            ctx.memory
                .refusals
                .record(&key, failed.write, &failed.error);
            return Err(failed.error.into());
        }
    };
    tracing::debug!(
        status_written = outcome.status_written,
        conflict = outcome.conflict,
        "applied"
    );
    ctx.memory
        .freshness
        .wrote_all(&key, outcome.superseded.iter().map(String::as_str));
    if outcome.status_written
        && let Some(metrics) = &ctx.metrics
    {
        record_outcome(metrics, &ro, &observed, &plan.status, now);
    }
    if outcome.conflict {
        // Someone (usually a user promote/abort) changed the Rollout since we
        // read it: the watch event for that change triggers a fresh reconcile. The requeue
        // covers a conflict with no newer version to deliver (a refusal the server made up,
        // or a watch that was cut): without it the Rollout stalled until something else
        // changed (found by the chaos suite: Rollouts left Progressing at full scale).
        ctx.memory.backoff.success(&key);
        return Ok(Action::requeue(CONFLICT_RECHECK));
    }
    if observed.refused.is_some() && refusal::is_reported(&plan.status) {
        // This plan reported a refused write instead of repeating it: the write is tried
        // again after the backoff its failure earned, not at once.
        return Ok(Action::requeue(ctx.memory.backoff.current(&key)));
    }
    ctx.memory.backoff.success(&key);
    Ok(next_look(&ro, plan.requeue_after, outcome.counts_held))
}

/// How long after a status write refused with 409 the Rollout is looked at again, if no
/// watch event brought the newer version first.
pub(crate) const CONFLICT_RECHECK: Duration = Duration::from_secs(5);

/// When to reconcile again: at the earliest of the plan's next step, the count-only status
/// change held back, and the re-read of a ReplicaSet workloadRef.
fn next_look(ro: &Rollout, planned: Option<Duration>, counts_held: Option<Duration>) -> Action {
    let mut requeue = match (planned, counts_held) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if ro
        .spec
        .workload_ref
        .as_ref()
        .is_some_and(|r| r.kind.as_deref() == Some("ReplicaSet"))
    {
        requeue = Some(requeue.map_or(REPLICA_SET_REF_RESYNC, |r| r.min(REPLICA_SET_REF_RESYNC)));
    }
    match requeue {
        Some(after) => Action::requeue(after.max(Duration::from_millis(100))),
        None => Action::await_change(),
    }
}

/// Count a completed or aborted update the moment its status is written.
fn record_outcome(
    metrics: &Metrics,
    ro: &Rollout,
    observed: &Observed,
    new: &sluice_api::rollout::RolloutStatus,
    now: chrono::DateTime<chrono::Utc>,
) {
    let old = ro.status.clone().unwrap_or_default();
    let ns = ro.namespace().unwrap_or_default();
    let name = ro.name_any();
    // The update started when its ReplicaSet was created.
    let update_seconds = new.current_pod_hash.as_deref().and_then(|hash| {
        observed
            .replica_sets
            .iter()
            .find(|rs| rs.labels().get(HASH_LABEL).map(String::as_str) == Some(hash))
            .and_then(|rs| rs.metadata.creation_timestamp.as_ref())
            .map(|t| (now.timestamp_millis() - t.0.as_millisecond()) as f64 / 1000.0)
    });
    let completed_update =
        old.stable_rs.is_some() && new.stable_rs.is_some() && old.stable_rs != new.stable_rs;
    if completed_update {
        metrics.outcome(
            &ns,
            &name,
            RolloutOutcome::Completed,
            AbortCause::None,
            update_seconds,
        );
    }
    if old.aborted_at.is_none() && new.aborted_at.is_some() {
        let progressing = new
            .conditions()
            .iter()
            .find(|c| c.type_.as_str() == "Progressing");
        let cause = progressing
            .map(|c| AbortCause::classify(&c.reason, &c.message))
            .unwrap_or(AbortCause::Manual);
        metrics.outcome(&ns, &name, RolloutOutcome::Aborted, cause, update_seconds);
    }
}

fn error_policy(ro: Arc<CachedRollout>, err: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.memory.backoff.failure(&object_key(&*ro));
    if let Some(metrics) = &ctx.metrics {
        metrics.reconcile_failed(CONTROLLER, err.metric_label());
    }
    warn!(rollout = %ro.name_any(), namespace = %ro.namespace().unwrap_or_default(), reason = err.metric_label(), error = %err, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Wait until a reflector store has seen its initial list. The wait is re-armed
/// every 250 ms: a waiter created before the store's first list completed was
/// seen to miss its wake-up, and a readiness probe must not hang on that.
pub async fn wait_ready<K>(
    store: &Store<K>,
) -> Result<(), kube::runtime::reflector::store::WriterDropped>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        match tokio::time::timeout(Duration::from_millis(250), store.wait_until_ready()).await {
            Ok(result) => return result,
            Err(_) => continue,
        }
    }
}

/// Run the Rollout controller until `shutdown` fires.
pub async fn run(
    client: Client,
    cfg: Config,
    replica_sets: OwnedReplicaSets,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let rollouts: Api<CachedRollout> = super::scoped_api(&client, cfg.namespace.as_deref());
    super::require_crd(&rollouts, "rollouts.argoproj.io").await?;
    let ns = cfg.namespace.as_deref();
    let refs = ServiceReferences::default();
    let routes = RouteReferences::default();
    let route_objects = RouteObjects::default();
    let memory = Arc::new(PerRollout::default());
    let first_pass = Arc::new(FirstPass::new());
    let (controller, owned) = watch_owned(
        watch_rollouts(rollouts, &cfg, &refs, &routes, &memory, &first_pass),
        replica_sets,
        &client,
        ns,
    );
    let services = ManagedServices::default();
    let controller = watch_referenced(controller, &client, ns, &services, refs)
        .reconcile_on(routes.watch(&client, ns, &route_objects))
        .graceful_shutdown_on(async move { shutdown.cancelled().await });
    let ctx = Arc::new(Context {
        client: client.clone(),
        replica_sets: owned.replica_sets,
        analysis_runs: owned.analysis_runs,
        experiments: owned.experiments,
        services,
        route_objects,
        events: Publisher::new(client.clone(), super::events::reporter(), cfg.events),
        metrics: cfg.metrics.clone(),
        smi_version: Default::default(),
        memory: memory.clone(),
        first_pass: first_pass.clone(),
    });
    let task = cfg
        .health
        .as_ref()
        .map(|h| h.register("rollout-controller"));
    report_caches_and_gauges(&cfg, &controller, &ctx);
    watch_first_pass(&controller, &first_pass);
    let announcements = ctx.clone();
    let reconciles = controller
        .run(reconcile_measured, error_policy, ctx)
        .for_each(|_| futures::future::ready(()));
    // The announcer runs as long as the controller; what it has not written by then is
    // dropped with it.
    tokio::select! {
        () = reconciles => {}
        () = announcements.memory.announcer.run(&announcements.events) => {}
    }
    if let Some(task) = task {
        task.finish();
    }
    info!("rollout controller stopped");
    Ok(())
}

/// The controller over this instance's Rollouts. The cached Rollouts drop what no decision
/// reads and would otherwise be most of their size: managedFields and kubectl's
/// last-applied copy of the whole object; the rest is kept packed (see `cached_rollout`).
fn watch_rollouts(
    rollouts: Api<CachedRollout>,
    cfg: &Config,
    refs: &ServiceReferences,
    routes: &RouteReferences,
    memory: &Arc<PerRollout>,
    first_pass: &Arc<FirstPass>,
) -> Controller<CachedRollout> {
    let selector = cfg.instance_selector();
    info!(namespace = ?cfg.namespace, selector = %selector, "rollout controller starting");
    let (ro_store, ro_writer) = reflector::store();
    let refs = refs.clone();
    let routes = routes.clone();
    let memory = memory.clone();
    let first_pass = first_pass.clone();
    let ro_stream = watcher(rollouts, watcher::Config::default().labels(&selector))
        .default_backoff()
        .map_ok(move |event| {
            refs.apply(&event);
            routes.apply(&event);
            // A Rollout deleted outright (no finalizer) is never reconciled again.
            if let watcher::Event::Delete(ro) = &event {
                let key = object_key(ro);
                memory.forget(&key, ro.meta().uid.as_deref());
                first_pass_step(first_pass.gone(&key));
            }
            event
        })
        .reflect(ro_writer)
        .applied_objects();
    // Listed and decoded beside the ReplicaSets (see `own_task`).
    let ro_stream = stream_on_own_task(ro_stream, WATCH_BUFFER);
    Controller::for_stream(ro_stream, ro_store)
        .with_config(controller::Config::default().concurrency(CONCURRENCY))
}

/// The caches of what Rollouts own.
struct Owned {
    replica_sets: OwnedStore<ReplicaSet>,
    analysis_runs: OwnedStore<AnalysisRun>,
    experiments: OwnedStore<Experiment>,
}

/// Watch the ReplicaSets, AnalysisRuns and Experiments Rollouts create (all carry the hash
/// label) into owner-indexed caches; a change wakes the owning Rollout. For runs and
/// Experiments only a change of outcome does ([`outcome_hash`]). All three are watched
/// [`Undecoded`]: one that does not decode fails the reconcile of its Rollout only, and a
/// list is cached without decoding each object first.
fn watch_owned(
    controller: Controller<CachedRollout>,
    replica_sets: OwnedReplicaSets,
    client: &Client,
    ns: Option<&str>,
) -> (Controller<CachedRollout>, Owned) {
    // The ReplicaSets come from the watch shared with the Experiment controller
    // (`replica_sets`, on a task of its own): Undecoded, so a list is trimmed and packed
    // without decoding each ReplicaSet into a typed object first (see `trimmed`); the
    // reconcile decodes the ones it reads.
    let ar_api: Api<Undecoded<AnalysisRun>> = super::scoped_api(client, ns);
    let (ar_store, ar_stream) = OwnedStore::watch_labelled(ROLLOUT_KIND, ar_api, HASH_LABEL);
    let ar_stream = ar_stream
        .touched_objects()
        .predicate_filter(outcome_hash, PredicateConfig::default());
    let exp_api: Api<Undecoded<Experiment>> = super::scoped_api(client, ns);
    let (exp_store, exp_stream) = OwnedStore::watch_labelled(ROLLOUT_KIND, exp_api, HASH_LABEL);
    let exp_stream = exp_stream
        .touched_objects()
        .predicate_filter(outcome_hash, PredicateConfig::default());
    let controller = controller
        .owns_stream(replica_sets.changes)
        .owns_stream(ar_stream)
        .owns_stream(exp_stream);
    let owned = Owned {
        replica_sets: replica_sets.store,
        analysis_runs: ar_store,
        experiments: exp_store,
    };
    (controller, owned)
}

/// Wake Rollouts on changes to objects they reference but do not own (nothing is cached):
/// - a template created or fixed after a Rollout named it (InvalidSpec until then); templates
///   change rarely, so every Rollout of the namespace that uses analysis is reconciled
///   (nested references included);
/// - referenced Deployments and PodTemplates (workloadRef): a new template starts a canary, a
///   scale-up of a Deployment held at zero is undone;
/// - Services, through [`ManagedServices::watch`] (which also keeps `services`): one created
///   after the Rollout that names it, a selector changed behind the Rollout's back, a Service
///   the Rollout must give back.
fn watch_referenced(
    controller: Controller<CachedRollout>,
    client: &Client,
    ns: Option<&str>,
    services: &ManagedServices,
    refs: ServiceReferences,
) -> Controller<CachedRollout> {
    let ro_store = controller.store();
    let at_stream = watcher(
        super::scoped_api::<AnalysisTemplate>(client, ns),
        watcher::Config::default(),
    )
    .default_backoff()
    .touched_objects();
    let cat_stream = watcher(
        Api::<ClusterAnalysisTemplate>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .touched_objects();
    let deploy_stream = watcher(
        super::scoped_api::<Deployment>(client, ns),
        watcher::Config::default(),
    )
    .default_backoff()
    .touched_objects();
    let pt_stream = watcher(
        super::scoped_api::<PodTemplate>(client, ns),
        watcher::Config::default(),
    )
    .default_backoff()
    .touched_objects();
    let svc_stream = services.watch(super::scoped_api::<Service>(client, ns));
    let (at_store, deploy_store, pt_store) = (ro_store.clone(), ro_store.clone(), ro_store.clone());
    controller
        .watches_stream(at_stream, move |t: AnalysisTemplate| {
            rollouts_using_templates(&at_store, t.namespace().as_deref())
        })
        .watches_stream(cat_stream, move |_: ClusterAnalysisTemplate| {
            rollouts_using_templates(&ro_store, None)
        })
        .watches_stream(deploy_stream, move |d: Deployment| {
            rollouts_referencing(&deploy_store, "Deployment", &d)
        })
        .watches_stream(pt_stream, move |t: PodTemplate| {
            rollouts_referencing(&pt_store, "PodTemplate", &t)
        })
        .watches_stream(svc_stream, move |svc: Service| {
            rollouts_of_service(&refs, &svc)
        })
}

/// Mark the caches synced on the health state once the Rollouts and their ReplicaSets are
/// listed, and keep the info gauges following the cache at scrape time (so deleted Rollouts
/// drop out).
fn report_caches_and_gauges(cfg: &Config, controller: &Controller<CachedRollout>, ctx: &Context) {
    if let Some(health) = cfg.health.clone() {
        let rollout_store = controller.store();
        let rs_store = ctx.replica_sets.clone();
        tokio::spawn(async move {
            let rs_ready = rs_store.wait_ready().await;
            let rollouts_ready = wait_ready(&rollout_store).await;
            tracing::debug!(
                rollouts = rollouts_ready.is_ok(),
                replica_sets = rs_ready.is_ok(),
                "caches synced"
            );
            if rollouts_ready.is_ok() && rs_ready.is_ok() {
                health.set_caches_synced(true);
            }
        });
    }
    if let Some(metrics) = &cfg.metrics {
        let store = controller.store();
        let gauges = CacheGauges::rollouts();
        metrics.on_scrape("rollouts", move |m| {
            gauges.sync(m, store.state().iter().map(|r| r.as_ref()))
        });
    }
}

/// Once the Rollouts are listed, hand their keys to the first pass (see [`FirstPass`]).
fn watch_first_pass(controller: &Controller<CachedRollout>, first_pass: &Arc<FirstPass>) {
    let store = controller.store();
    let first_pass = first_pass.clone();
    tokio::spawn(async move {
        if wait_ready(&store).await.is_ok() {
            let keys = store
                .state()
                .iter()
                .map(|ro| object_key(ro.as_ref()))
                .collect::<Vec<_>>();
            first_pass_step(first_pass.listed(keys));
        }
    });
}

/// Log the end of the first pass, if `finished` is it.
fn first_pass_step(finished: Option<Finished>) {
    if let Some(f) = finished {
        info!(
            rollouts = f.rollouts,
            failed = f.failed,
            seconds = f.elapsed.as_secs_f64(),
            "{FIRST_PASS_DONE}"
        );
    }
}

/// [`reconcile`] in a span naming the Rollout, timed and counted in upstream's
/// `rollout_reconcile` and `rollout_reconcile_error`.
fn reconcile_measured(
    ro: Arc<CachedRollout>,
    ctx: Arc<Context>,
) -> impl std::future::Future<Output = Result<Action, Error>> {
    let ns = ro.namespace().unwrap_or_default();
    let name = ro.name_any();
    let span = info_span!("reconcile", rollout = %name, namespace = %ns);
    let metrics = ctx.metrics.clone();
    crate::own_task::on_own_task(
        async move {
            let started = std::time::Instant::now();
            let first_pass = ctx.first_pass.clone();
            let result = reconcile(ro.clone(), ctx).await;
            // The key is built only while the pass lasts: afterwards this is one atomic load.
            if !first_pass.is_over() {
                first_pass_step(first_pass.reconciled(&object_key(&*ro), result.is_ok()));
            }
            if let Some(m) = &metrics {
                m.reconcile_duration(&ns, &name, started.elapsed().as_secs_f64());
                if result.is_err() {
                    m.reconcile_error(&ns, &name);
                }
            }
            result
        }
        .instrument(span),
    )
}

#[cfg(test)]
mod memory_tests {
    use super::*;
    use sluice_engine::rollout::refusal::Write;

    #[test]
    fn forgetting_a_rollout_drops_everything_remembered_of_it_and_nothing_else() {
        let m = PerRollout::default();
        for key in ["ns/gone", "ns/kept"] {
            m.backoff.failure(key);
            m.freshness.wrote(key, "7");
            m.count_writes.hold(key, std::time::Instant::now());
            let refused = ApiCallError::on("create", "replicaset ns/web-1")(kube::Error::Api(
                Box::new(kube::core::Status::failure("forbidden", "Forbidden").with_code(403)),
            ));
            m.refusals.record(
                key,
                Some(Write::CreateReplicaSet {
                    name: "web-1".into(),
                }),
                &refused,
            );
        }
        m.informed
            .lock()
            .unwrap()
            .extend(["uid-gone".to_string(), "uid-kept".to_string()]);
        assert_eq!(m.remembered(), 2 + 2);
        m.forget("ns/gone", Some("uid-gone"));
        assert_eq!(m.backoff.keys(), vec!["ns/kept".to_string()]);
        assert_eq!(m.freshness.keys(), vec!["ns/kept".to_string()]);
        assert_eq!(m.refusals.keys(), vec!["ns/kept".to_string()]);
        assert_eq!(m.count_writes.keys(), vec!["ns/kept".to_string()]);
        assert_eq!(m.remembered(), 1 + 1);
        m.forget("ns/kept", Some("uid-kept"));
        assert_eq!(m.remembered(), 0);
    }
}
