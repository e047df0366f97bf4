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
use kube::runtime::events::{Event, EventType as KubeEventType, Reporter};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use super::backoff::Backoff;
use super::events::Publisher;
use super::freshness::Freshness;
use super::owned::OwnedStore;
use super::rollout::{Config, HASH_LABEL};
use super::status_patch::merge_diff;
use super::{api_code, object_key};
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
    pub recorder: Publisher,
}

/// Errors of one Experiment reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{verb} {target}: {source}")]
    Api {
        verb: &'static str,
        target: String,
        #[source]
        source: kube::Error,
    },
    #[error("{kind} {namespace}/{name} already exists and is not owned by experiment {experiment}")]
    NotOwned {
        kind: &'static str,
        namespace: String,
        name: String,
        experiment: String,
    },
    /// A cached object did not decode; planning without it could recreate or delete
    /// what exists, so the reconcile fails and is retried.
    #[error("decoding the cached {what}: {source}")]
    Cache {
        what: String,
        #[source]
        source: serde_json::Error,
    },
}

fn api_err(verb: &'static str, target: String) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Api {
        verb,
        target,
        source,
    }
}

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
        .map_err(|source| Error::Cache {
            what: format!("replicasets of experiment {ns}/{}", ex.name_any()),
            source,
        })?;
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
        // Read fresh, not cached: only Experiments with services pay for this, and caching
        // every Service in the cluster is what upstream is criticised for.
        let api: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);
        let all = api
            .list(&ListParams::default())
            .await
            .map_err(api_err("list", format!("services in {ns}")))?
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
    }
    let finished = ex
        .status
        .as_ref()
        .and_then(|s| s.phase.as_ref())
        .is_some_and(|p| p.is_completed());
    if !finished {
        // A template without a ReplicaSet in the cache: either our create is not in the
        // cache yet, or someone else holds the name. Ask the API server which.
        let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
        for t in &ex.spec.templates {
            if obs.template_replica_set(t).is_some() {
                continue;
            }
            let name = replica_set_name(&ex.name_any(), &t.name);
            let found = rs_api
                .get_opt(&name)
                .await
                .map_err(api_err("get", format!("replicaset {ns}/{name}")))?;
            match found {
                Some(rs) if controlled_by(&rs, &uid) => obs.replica_sets.push(rs),
                Some(_) => {
                    obs.foreign_replica_sets.insert(name);
                }
                None => {}
            }
        }
    }
    if ex.spec.analyses.as_ref().is_some_and(|a| !a.is_empty()) {
        // Fresh too, so a run created by the previous reconcile is never mistaken for a
        // missing one.
        let api: Api<AnalysisRun> = Api::namespaced(ctx.client.clone(), &ns);
        obs.analysis_runs = api
            .list(&ListParams::default())
            .await
            .map_err(api_err("list", format!("analysisruns in {ns}")))?
            .items
            .into_iter()
            .filter(|r| controlled_by(r, &uid))
            .collect();
        let at_api: Api<AnalysisTemplate> = Api::namespaced(ctx.client.clone(), &ns);
        let cat_api: Api<ClusterAnalysisTemplate> = Api::all(ctx.client.clone());
        let mut tried = BTreeSet::new();
        for _ in 0..MAX_TEMPLATE_ROUNDS {
            let todo: Vec<_> = missing_templates(&obs)
                .into_iter()
                .filter(|k| !tried.contains(k))
                .collect();
            if todo.is_empty() {
                break;
            }
            for k in todo {
                if k.cluster {
                    let got = cat_api.get_opt(&k.name).await.map_err(api_err(
                        "get",
                        format!("clusteranalysistemplate {}", k.name),
                    ))?;
                    if let Some(t) = got {
                        obs.cluster_analysis_templates
                            .insert(k.name.clone(), t.spec.into());
                    }
                } else {
                    let got = at_api
                        .get_opt(&k.name)
                        .await
                        .map_err(api_err("get", format!("analysistemplate {ns}/{}", k.name)))?;
                    if let Some(t) = got {
                        obs.analysis_templates.insert(k.name.clone(), t.spec);
                    }
                }
                tried.insert(k);
            }
        }
    }
    Ok(obs)
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
                .map_err(api_err("get", format!("{kind} {ns}/{name}")))?;
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
        Err(e) => Err(api_err("create", format!("{kind} {ns}/{name}"))(e)),
    }
}

/// Apply `plan` on behalf of `ex`, in order, stopping at the first failure; then write the
/// status fields that changed.
async fn apply(ctx: &Context, ex: &Experiment, plan: &ExperimentPlan) -> Result<Outcome, Error> {
    let ns = ex.namespace().unwrap_or_default();
    let name = ex.name_any();
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let svc_api: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);
    let ar_api: Api<AnalysisRun> = Api::namespaced(ctx.client.clone(), &ns);
    let ex_api: Api<Experiment> = Api::namespaced(ctx.client.clone(), &ns);
    let pp = PatchParams::default();
    for change in &plan.changes {
        match change {
            ExperimentChange::CreateReplicaSet(rs) => {
                debug!(replicaset = %rs.name_any(), "creating ReplicaSet");
                create_owned(&rs_api, rs, "replicaset", ex).await?;
            }
            ExperimentChange::ScaleReplicaSet {
                name: rs, replicas, ..
            } => {
                rs_api
                    .patch(
                        rs,
                        &pp,
                        &Patch::Merge(&json!({"spec": {"replicas": replicas}})),
                    )
                    .await
                    .map_err(api_err("scale", format!("replicaset {ns}/{rs}")))?;
            }
            ExperimentChange::SetScaleDownDeadline { name: rs, deadline } => {
                let body = json!({"metadata": {"annotations": {SCALE_DOWN_DEADLINE_ANNOTATION: deadline}}});
                rs_api
                    .patch(rs, &pp, &Patch::Merge(&body))
                    .await
                    .map_err(api_err("annotate", format!("replicaset {ns}/{rs}")))?;
            }
            ExperimentChange::CreateService(svc) => {
                create_owned(&svc_api, svc, "service", ex).await?;
            }
            ExperimentChange::DeleteService { name: svc } => {
                match svc_api.delete(svc, &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(e) if api_code(&e) == Some(404) => {}
                    Err(e) => return Err(api_err("delete", format!("service {ns}/{svc}"))(e)),
                }
            }
            ExperimentChange::CreateAnalysisRun(run) => {
                create_owned(&ar_api, run, "analysisrun", ex).await?;
            }
            ExperimentChange::TerminateAnalysisRun { name: run } => {
                let body = json!({"spec": {"terminate": true}});
                match ar_api.patch(run, &pp, &Patch::Merge(&body)).await {
                    Ok(_) => {}
                    Err(e) if api_code(&e) == Some(404) => {}
                    Err(e) => {
                        return Err(api_err("terminate", format!("analysisrun {ns}/{run}"))(e));
                    }
                }
            }
            ExperimentChange::Event {
                type_,
                reason,
                message,
            } => {
                let event = Event {
                    type_: match type_ {
                        EventType::Normal => KubeEventType::Normal,
                        EventType::Warning => KubeEventType::Warning,
                    },
                    reason: reason.clone(),
                    note: Some(message.clone()),
                    action: reason.clone(),
                    secondary: None,
                };
                // Best effort: a lost event never blocks an experiment.
                if let Err(e) = ctx.recorder.publish(&event, &ex.object_ref(&())).await {
                    warn!(reason = %reason, error = %e, "recording event failed");
                }
            }
        }
    }
    let old = serde_json::to_value(ex.status.clone().unwrap_or_default()).unwrap_or(Value::Null);
    let new = serde_json::to_value(&plan.status).unwrap_or(Value::Null);
    let Some(diff) = merge_diff(&old, &new) else {
        return Ok(Outcome::default());
    };
    let rv = ex.resource_version().unwrap_or_default();
    let body = json!({"metadata": {"resourceVersion": rv}, "status": diff});
    match ex_api.patch(&name, &pp, &Patch::Merge(&body)).await {
        Ok(_) => Ok(Outcome {
            status_written: true,
            conflict: false,
        }),
        Err(e) if api_code(&e) == Some(409) => Ok(Outcome {
            status_written: false,
            conflict: true,
        }),
        Err(e) => Err(api_err(
            "patch status of",
            format!("experiment {ns}/{name}"),
        )(e)),
    }
}

async fn reconcile(ex: Arc<Experiment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let key = object_key(&*ex);
    if ex.metadata.deletion_timestamp.is_some() {
        ctx.freshness.forget(&key);
        return Ok(Action::await_change());
    }
    let rv = ex.resource_version().unwrap_or_default();
    if ctx.freshness.is_stale(&key, &rv) {
        return Ok(Action::await_change());
    }
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
        return Ok(Action::await_change());
    }
    Ok(match plan.requeue_after {
        Some(after) => Action::requeue(after.max(Duration::from_millis(100))),
        None => Action::await_change(),
    })
}

fn error_policy(ex: Arc<Experiment>, err: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoff.failure(&object_key(&*ex));
    warn!(experiment = %ex.name_any(), namespace = %ex.namespace().unwrap_or_default(), error = %err, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Run the Experiment controller until `shutdown` fires.
pub async fn run(client: Client, cfg: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let experiments: Api<Experiment> = super::scoped_api(&client, cfg.namespace.as_deref());
    super::require_crd(&experiments, "experiments.argoproj.io").await?;
    let rs_api: Api<ReplicaSet> = super::scoped_api(&client, cfg.namespace.as_deref());
    let ar_api: Api<AnalysisRun> = super::scoped_api(&client, cfg.namespace.as_deref());
    // Experiment ReplicaSets carry the pod-template-hash label like Rollout ones; each
    // controller keeps only those whose controller ownerReference is one of its objects.
    let (rs_store, rs_stream) = OwnedStore::watch_labelled("Experiment", rs_api, HASH_LABEL);
    let rs_stream = rs_stream.touched_objects();
    let reporter = Reporter {
        controller: "sluice".into(),
        instance: std::env::var("HOSTNAME").ok(),
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        replica_sets: rs_store,
        backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(60)),
        freshness: Freshness::default(),
        recorder: Publisher::new(client.clone(), reporter, cfg.events),
    });
    let selector = cfg.instance_selector();
    info!(namespace = ?cfg.namespace, selector = %selector, "experiment controller starting");
    Controller::new(experiments, watcher::Config::default().labels(&selector))
        .owns_stream(rs_stream)
        .owns(ar_api, watcher::Config::default())
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(
            |ex, ctx| {
                let span = info_span!("reconcile", experiment = %ex.name_any(), namespace = %ex.namespace().unwrap_or_default());
                reconcile(ex, ctx).instrument(span)
            },
            error_policy,
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
    info!("experiment controller stopped");
    Ok(())
}
