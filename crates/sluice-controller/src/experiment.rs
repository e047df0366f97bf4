//! The Experiment controller: observe → `experiment::plan` → apply.
//!
//! `reconcile` builds an [`ObservedExperiment`] (the Experiment from the watch cache, its
//! ReplicaSets from a label-selected cache indexed by owner, its AnalysisRuns and Services
//! read fresh from the API when the spec uses them, the analysis templates it names), calls
//! the pure planner and applies the plan here, as the one writer for Experiments. Status goes
//! to the main resource (Experiments have no status subresource) as a merge patch of the
//! changed fields, guarded by the resourceVersion that was planned from.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType as KubeEventType};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use super::backoff::Backoff;
use super::events::{self, Publisher};
use super::freshness::Freshness;
use super::owned::OwnedStore;
use super::rollout::Config;
use super::status_patch::merge_diff;
use super::{api_code, object_key};
use crate::error::{ApiCallError, DecodeError, MetricLabel, ReconcileError, RunError};
use crate::metrics::{CacheGauges, Metrics};
use crate::replica_sets::OwnedReplicaSets;
use crate::undecoded::Undecoded;
use sluice_api::analysis::{AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate};
use sluice_api::common::SCALE_DOWN_DEADLINE_ANNOTATION;
use sluice_api::experiment::Experiment;
use sluice_engine::experiment::validate::missing_templates;
use sluice_engine::experiment::{
    ExperimentChange, ExperimentPlan, ObservedExperiment, plan, replica_set_name, service_name,
};
use sluice_engine::rollout::plan::EventType;

/// Bound on rounds of reading nested analysis templates.
const MAX_TEMPLATE_ROUNDS: usize = 10;

/// Shared state of the Experiment reconcilers.
pub struct Context {
    pub client: Client,
    /// ReplicaSets controlled by Experiments, by owner.
    pub replica_sets: OwnedStore<ReplicaSet>,
    pub backoff: Backoff,
    pub freshness: Freshness,
    pub events: Publisher,
    /// Where failed reconciles are counted.
    pub metrics: Option<Arc<Metrics>>,
}

/// The `controller` label of this controller's failures in `sluice_reconcile_errors_total`.
pub const CONTROLLER: &str = "experiment";

/// Errors of one reconcile: the controllers' one taxonomy.
pub type Error = ReconcileError;

fn controlled_by<K: Resource>(obj: &K, uid: &str) -> bool {
    obj.meta()
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == uid && o.controller == Some(true))
}

/// Build the snapshot the planner decides on.
async fn observe(ex: &Experiment, ctx: &Context) -> Result<ObservedExperiment, Error> {
    let ns = ex.namespace().unwrap_or_default();
    let uid = ex.uid().unwrap_or_default();
    let replica_sets = ctx
        .replica_sets
        .owned_by(&ns, &uid)
        .map_err(DecodeError::of(format!(
            "the cached replicasets of experiment {ns}/{}",
            ex.name_any()
        )))?;
    let mut obs = ObservedExperiment {
        experiment: ex.clone(),
        replica_sets,
        ..Default::default()
    };
    let uses_services = ex.spec.templates.iter().any(|t| t.service.is_some())
        || ex.status.as_ref().is_some_and(|s| {
            s.template_statuses
                .iter()
                .flatten()
                .any(|t| t.service_name.is_some())
        });
    if uses_services {
        read_services(ctx, ex, &mut obs).await?;
    }
    let finished = ex
        .status
        .as_ref()
        .and_then(|s| s.phase.as_ref())
        .is_some_and(|p| p.is_completed());
    if !finished {
        read_missing_replica_sets(ctx, ex, &mut obs).await?;
    }
    if ex.spec.analyses.as_ref().is_some_and(|a| !a.is_empty()) {
        // Fresh too, so a run created by the previous reconcile is never mistaken for a
        // missing one.
        obs.analysis_runs = read_analysis_runs(ctx, ex).await?;
        read_templates(ctx, &ns, &mut obs).await?;
    }
    Ok(obs)
}

/// LIST the Services of the namespace: those the Experiment controls, and the names it
/// wants that someone else holds. Read fresh, not cached: only Experiments with services pay
/// for this, and caching every Service in the cluster is what upstream is criticised for.
async fn read_services(
    ctx: &Context,
    ex: &Experiment,
    obs: &mut ObservedExperiment,
) -> Result<(), Error> {
    let ns = ex.namespace().unwrap_or_default();
    let uid = ex.uid().unwrap_or_default();
    let api: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);
    let all = api
        .list(&ListParams::default())
        .await
        .map_err(ApiCallError::on("list", format!("services in {ns}")))?
        .items;
    let wanted: BTreeSet<String> = ex
        .spec
        .templates
        .iter()
        .filter(|t| t.service.is_some())
        .map(|t| service_name(&ex.name_any(), t))
        .collect();
    for svc in all {
        if controlled_by(&svc, &uid) {
            obs.services.push(svc);
        } else if wanted.contains(&svc.name_any()) {
            obs.foreign_services.insert(svc.name_any());
        }
    }
    Ok(())
}

/// A template without a ReplicaSet in the cache: either our create is not in the cache yet,
/// or someone else holds the name. Ask the API server which.
async fn read_missing_replica_sets(
    ctx: &Context,
    ex: &Experiment,
    obs: &mut ObservedExperiment,
) -> Result<(), Error> {
    let ns = ex.namespace().unwrap_or_default();
    let uid = ex.uid().unwrap_or_default();
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    for t in &ex.spec.templates {
        if obs.template_replica_set(t).is_some() {
            continue;
        }
        let name = replica_set_name(&ex.name_any(), &t.name);
        let found = rs_api
            .get_opt(&name)
            .await
            .map_err(ApiCallError::on("get", format!("replicaset {ns}/{name}")))?;
        match found {
            Some(rs) if controlled_by(&rs, &uid) => obs.replica_sets.push(rs),
            Some(_) => {
                obs.foreign_replica_sets.insert(name);
            }
            None => {}
        }
    }
    Ok(())
}

/// LIST the AnalysisRuns of the namespace and decode those the Experiment controls. The
/// others are not decoded, so a malformed run elsewhere in the namespace fails no
/// Experiment; a malformed run of this one fails this reconcile (planning without it could
/// create it again).
async fn read_analysis_runs(ctx: &Context, ex: &Experiment) -> Result<Vec<AnalysisRun>, Error> {
    let ns = ex.namespace().unwrap_or_default();
    let uid = ex.uid().unwrap_or_default();
    let api: Api<Undecoded<AnalysisRun>> = Api::namespaced(ctx.client.clone(), &ns);
    let runs = api
        .list(&ListParams::default())
        .await
        .map_err(ApiCallError::on("list", format!("analysisruns in {ns}")))?
        .items
        .into_iter()
        .filter(|r| controlled_by(r, &uid))
        .map(|r| r.decode())
        .collect::<Result<_, _>>()?;
    Ok(runs)
}

/// GET the analysis templates the Experiment's analyses name, then those they name, for at
/// most [`MAX_TEMPLATE_ROUNDS`] rounds. A template that does not exist is left out (the
/// planner reports it).
async fn read_templates(
    ctx: &Context,
    ns: &str,
    obs: &mut ObservedExperiment,
) -> Result<(), Error> {
    let at_api: Api<AnalysisTemplate> = Api::namespaced(ctx.client.clone(), ns);
    let cat_api: Api<ClusterAnalysisTemplate> = Api::all(ctx.client.clone());
    let mut tried = BTreeSet::new();
    for _ in 0..MAX_TEMPLATE_ROUNDS {
        let todo: Vec<_> = missing_templates(obs)
            .into_iter()
            .filter(|k| !tried.contains(k))
            .collect();
        if todo.is_empty() {
            break;
        }
        for k in todo {
            if k.cluster {
                let got = cat_api.get_opt(&k.name).await.map_err(ApiCallError::on(
                    "get",
                    format!("clusteranalysistemplate {}", k.name),
                ))?;
                if let Some(t) = got {
                    obs.cluster_analysis_templates
                        .insert(k.name.clone(), t.spec.into());
                }
            } else {
                let got = at_api.get_opt(&k.name).await.map_err(ApiCallError::on(
                    "get",
                    format!("analysistemplate {ns}/{}", k.name),
                ))?;
                if let Some(t) = got {
                    obs.analysis_templates.insert(k.name.clone(), t.spec);
                }
            }
            tried.insert(k);
        }
    }
    Ok(())
}

/// What applying a plan ended with.
#[derive(Debug, Default, PartialEq, Eq)]
struct Outcome {
    status_written: bool,
    conflict: bool,
}

/// Create `obj`; an existing object of that name is fine when this Experiment controls it
/// (our cache had not seen our own earlier create), an error otherwise.
async fn create_owned<K>(
    api: &Api<K>,
    obj: &K,
    kind: &'static str,
    ex: &Experiment,
) -> Result<(), Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    let ns = ex.namespace().unwrap_or_default();
    match api.create(&PostParams::default(), obj).await {
        Ok(_) => Ok(()),
        Err(e) if api_code(&e) == Some(409) => {
            let existing = api
                .get_opt(&name)
                .await
                .map_err(ApiCallError::on("get", format!("{kind} {ns}/{name}")))?;
            match existing {
                Some(o) if controlled_by(&o, &ex.uid().unwrap_or_default()) => Ok(()),
                // Deleted in between: the next reconcile creates it again.
                None => Ok(()),
                Some(_) => Err(Error::NotOwned {
                    kind,
                    namespace: ns,
                    name,
                    experiment: ex.name_any(),
                }),
            }
        }
        Err(e) => Err(ApiCallError::on("create", format!("{kind} {ns}/{name}"))(e).into()),
    }
}

/// Apply `plan` on behalf of `ex`, in order, stopping at the first failure; then write the
/// status fields that changed.
async fn apply(ctx: &Context, ex: &Experiment, plan: &ExperimentPlan) -> Result<Outcome, Error> {
    for change in &plan.changes {
        apply_change(ctx, ex, change).await?;
    }
    write_status(ctx, ex, plan).await
}

/// Apply one change of an Experiment's plan.
async fn apply_change(
    ctx: &Context,
    ex: &Experiment,
    change: &ExperimentChange,
) -> Result<(), Error> {
    let ns = ex.namespace().unwrap_or_default();
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let pp = PatchParams::default();
    match change {
        ExperimentChange::CreateReplicaSet(rs) => {
            debug!(replicaset = %rs.name_any(), "creating ReplicaSet");
            create_owned(&rs_api, rs, "replicaset", ex).await
        }
        ExperimentChange::ScaleReplicaSet {
            name: rs, replicas, ..
        } => {
            let body = json!({"spec": {"replicas": replicas}});
            rs_api
                .patch(rs, &pp, &Patch::Merge(&body))
                .await
                .map_err(ApiCallError::on("scale", format!("replicaset {ns}/{rs}")))?;
            Ok(())
        }
        ExperimentChange::SetScaleDownDeadline { name: rs, deadline } => {
            let body =
                json!({"metadata": {"annotations": {SCALE_DOWN_DEADLINE_ANNOTATION: deadline}}});
            rs_api
                .patch(rs, &pp, &Patch::Merge(&body))
                .await
                .map_err(ApiCallError::on(
                    "annotate",
                    format!("replicaset {ns}/{rs}"),
                ))?;
            Ok(())
        }
        ExperimentChange::CreateService(svc) => {
            let svc_api: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);
            create_owned(&svc_api, svc, "service", ex).await
        }
        ExperimentChange::DeleteService { name: svc } => delete_service(ctx, &ns, svc).await,
        ExperimentChange::CreateAnalysisRun(run) => {
            let ar_api: Api<AnalysisRun> = Api::namespaced(ctx.client.clone(), &ns);
            create_owned(&ar_api, run, "analysisrun", ex).await
        }
        ExperimentChange::TerminateAnalysisRun { name: run } => {
            terminate_analysis_run(ctx, &ns, run).await
        }
        ExperimentChange::Event {
            type_,
            reason,
            message,
        } => {
            publish_event(ctx, ex, type_, reason, message).await;
            Ok(())
        }
    }
}

/// DELETE a Service of the Experiment (already gone is fine).
async fn delete_service(ctx: &Context, ns: &str, svc: &str) -> Result<(), Error> {
    let svc_api: Api<Service> = Api::namespaced(ctx.client.clone(), ns);
    match svc_api.delete(svc, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(e) if api_code(&e) == Some(404) => Ok(()),
        Err(e) => Err(ApiCallError::on("delete", format!("service {ns}/{svc}"))(e).into()),
    }
}

/// `{"spec":{"terminate":true}}` on one of the Experiment's runs (already gone is fine).
async fn terminate_analysis_run(ctx: &Context, ns: &str, run: &str) -> Result<(), Error> {
    let ar_api: Api<AnalysisRun> = Api::namespaced(ctx.client.clone(), ns);
    let body = json!({"spec": {"terminate": true}});
    match ar_api
        .patch(run, &PatchParams::default(), &Patch::Merge(&body))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if api_code(&e) == Some(404) => Ok(()),
        Err(e) => Err(ApiCallError::on("terminate", format!("analysisrun {ns}/{run}"))(e).into()),
    }
}

/// Publish one planned Event; best effort: a lost event never blocks an experiment.
async fn publish_event(
    ctx: &Context,
    ex: &Experiment,
    type_: &EventType,
    reason: &str,
    message: &str,
) {
    let event = Event {
        type_: match type_ {
            EventType::Normal => KubeEventType::Normal,
            EventType::Warning => KubeEventType::Warning,
        },
        reason: reason.to_string(),
        note: Some(message.to_string()),
        action: reason.to_string(),
        secondary: None,
    };
    if let Err(e) = ctx.events.publish(&event, &ex.object_ref(&())).await {
        warn!(reason = %reason, error = %e, "recording event failed");
    }
}

/// Write the status fields the plan changed, as a merge patch of the main resource guarded
/// by the resourceVersion that was planned from.
async fn write_status(
    ctx: &Context,
    ex: &Experiment,
    plan: &ExperimentPlan,
) -> Result<Outcome, Error> {
    let old = serde_json::to_value(ex.status.clone().unwrap_or_default()).unwrap_or(Value::Null);
    let new = serde_json::to_value(&plan.status).unwrap_or(Value::Null);
    let Some(diff) = merge_diff(&old, &new) else {
        return Ok(Outcome::default());
    };
    let ns = ex.namespace().unwrap_or_default();
    let name = ex.name_any();
    let ex_api: Api<Experiment> = Api::namespaced(ctx.client.clone(), &ns);
    let rv = ex.resource_version().unwrap_or_default();
    let body = json!({"metadata": {"resourceVersion": rv}, "status": diff});
    match ex_api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&body))
        .await
    {
        Ok(_) => Ok(Outcome {
            status_written: true,
            conflict: false,
        }),
        Err(e) if api_code(&e) == Some(409) => Ok(Outcome {
            status_written: false,
            conflict: true,
        }),
        Err(e) => {
            Err(ApiCallError::on("patch status of", format!("experiment {ns}/{name}"))(e).into())
        }
    }
}

async fn reconcile(cached: Arc<Undecoded<Experiment>>, ctx: Arc<Context>) -> Result<Action, Error> {
    let key = object_key(&*cached);
    if cached.meta().deletion_timestamp.is_some() {
        ctx.freshness.forget(&key);
        return Ok(Action::await_change());
    }
    let rv = cached.resource_version().unwrap_or_default();
    if ctx.freshness.is_stale(&key, &rv) {
        return Ok(Action::await_change());
    }
    let ex = events::decode_or_warn(&ctx.events, &cached).await?;
    let observed = observe(&ex, &ctx).await?;
    let plan = plan(&observed, chrono::Utc::now());
    debug!(
        changes = plan.changes.len(),
        requeue_after = ?plan.requeue_after,
        phase = ?plan.status.phase,
        "planned"
    );
    let outcome = apply(&ctx, &ex, &plan).await?;
    if outcome.status_written {
        ctx.freshness.wrote(&key, &rv);
    }
    ctx.backoff.success(&key);
    if outcome.conflict {
        // As for Rollouts: the watch normally brings the newer version first.
        return Ok(Action::requeue(crate::rollout::CONFLICT_RECHECK));
    }
    Ok(match plan.requeue_after {
        Some(after) => Action::requeue(after.max(Duration::from_millis(100))),
        None => Action::await_change(),
    })
}

fn error_policy(ex: Arc<Undecoded<Experiment>>, err: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoff.failure(&object_key(&*ex));
    if let Some(metrics) = &ctx.metrics {
        metrics.reconcile_failed(CONTROLLER, err.metric_label());
    }
    warn!(experiment = %ex.name_any(), namespace = %ex.namespace().unwrap_or_default(), reason = err.metric_label(), error = %err, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Run the Experiment controller until `shutdown` fires.
pub async fn run(
    client: Client,
    cfg: Config,
    replica_sets: OwnedReplicaSets,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    // Decoded by each reconcile, so one malformed Experiment (or AnalysisRun, in the owned
    // watch) fails only its own reconcile.
    let experiments: Api<Undecoded<Experiment>> =
        super::scoped_api(&client, cfg.namespace.as_deref());
    super::require_crd(&experiments, "experiments.argoproj.io").await?;
    let ar_api: Api<Undecoded<AnalysisRun>> = super::scoped_api(&client, cfg.namespace.as_deref());
    // Experiment ReplicaSets carry the pod-template-hash label like Rollout ones: they come
    // from the watch shared with the Rollout controller (`replica_sets`), which keeps here
    // only those an Experiment controls and hands over only the changes of those.
    let ctx = Arc::new(Context {
        client: client.clone(),
        replica_sets: replica_sets.store,
        backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(60)),
        freshness: Freshness::default(),
        events: Publisher::new(client.clone(), events::reporter(), cfg.events),
        metrics: cfg.metrics.clone(),
    });
    let selector = cfg.instance_selector();
    info!(namespace = ?cfg.namespace, selector = %selector, "experiment controller starting");
    let controller = Controller::new(experiments, watcher::Config::default().labels(&selector));
    if let Some(metrics) = &cfg.metrics {
        let store = controller.store();
        let gauges = CacheGauges::experiments();
        metrics.on_scrape("experiments", move |m| {
            gauges.sync(m, store.state().iter().map(|o| o.as_ref()))
        });
    }
    controller
        .owns_stream(replica_sets.changes)
        .owns(ar_api, watcher::Config::default())
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(
            |ex, ctx| {
                let span = info_span!("reconcile", experiment = %ex.name_any(), namespace = %ex.namespace().unwrap_or_default());
                crate::own_task::on_own_task(reconcile(ex, ctx).instrument(span))
            },
            error_policy,
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
    info!("experiment controller stopped");
    Ok(())
}
