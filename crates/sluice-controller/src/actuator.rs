//! The one writer: applies a `Plan` in order, stopping at the first failure,
//! then writes the status as a merge patch of the fields that changed.
//!
//! Every write to the Rollout itself carries the resourceVersion it was planned
//! from, so a promote or abort that lands while we plan makes our write fail
//! with 409 instead of clobbering it; the watch event of that change starts a
//! fresh reconcile.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, DeleteParams, EvictParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType as KubeEventType};
use kube::{Resource, ResourceExt};
use serde_json::{Map, Value, json};
use tracing::{debug, warn};

use super::coalesce::counts_only;
use super::rollout::{Context, HASH_LABEL};
use super::status_patch::merge_diff;
use sluice_api::analysis::AnalysisRun;
use sluice_api::common::REVISION_ANNOTATION;
use sluice_api::experiment::Experiment;
use sluice_api::rollout::Rollout;
use sluice_engine::rollout::plan::{Change, EventType, MetadataPatch, Plan};

/// Annotation marking a Service whose selector Sluice manages.
pub const MANAGED_BY_ANNOTATION: &str = "argo-rollouts.argoproj.io/managed-by-rollouts";

/// What happened when a plan was applied.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The status subresource was written.
    pub status_written: bool,
    /// A write was refused because the object changed since it was read; the
    /// rest of the plan was skipped.
    pub conflict: bool,
    /// resourceVersions of the Rollout that our writes replaced: a cached copy at one of
    /// them is stale.
    pub superseded: Vec<String>,
    /// A change of replica counts only was held back; it is due this much later.
    pub counts_held: Option<std::time::Duration>,
}

/// A failed API call while applying a plan.
#[derive(Debug, thiserror::Error)]
#[error("{verb} {target}: {source}")]
pub struct ActError {
    pub verb: &'static str,
    pub target: String,
    #[source]
    pub source: kube::Error,
}

fn is_conflict(err: &kube::Error) -> bool {
    super::api_code(err) == Some(409)
}

fn is_too_many_requests(err: &kube::Error) -> bool {
    super::api_code(err) == Some(429)
}

fn is_not_found(err: &kube::Error) -> bool {
    super::api_code(err) == Some(404)
}

/// A merge-patch map for labels/annotations: set keys, null removed keys.
fn metadata_map(patch: &MetadataPatch) -> Value {
    let mut map = Map::new();
    for (k, v) in &patch.set {
        map.insert(k.clone(), Value::String(v.clone()));
    }
    for k in &patch.remove {
        map.insert(k.clone(), Value::Null);
    }
    Value::Object(map)
}

/// Creates an object the plan built; AlreadyExists means an earlier create whose watch
/// event has not arrived yet, and the object's own controller takes it from there.
async fn create_owned<K>(
    api: &Api<K>,
    obj: &K,
    kind: &'static str,
    ns: &str,
) -> Result<(), ActError>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let obj_name = obj.meta().name.clone().unwrap_or_default();
    debug!(kind, name = %obj_name, "creating");
    match api.create(&PostParams::default(), obj).await {
        Ok(_) => Ok(()),
        Err(e) if is_conflict(&e) => Ok(()),
        Err(source) => Err(ActError {
            verb: "create",
            target: format!("{kind} {ns}/{obj_name}"),
            source,
        }),
    }
}

/// `{"spec":{"terminate":true}}`, what `kubectl argo rollouts terminate` sends; a run or
/// experiment that is already gone needs no stopping.
async fn terminate<K>(
    api: &Api<K>,
    obj_name: &str,
    kind: &'static str,
    ns: &str,
) -> Result<(), ActError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let body = json!({"spec": {"terminate": true}});
    match api
        .patch(obj_name, &PatchParams::default(), &Patch::Merge(&body))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(source) => Err(ActError {
            verb: "terminate",
            target: format!("{kind} {ns}/{obj_name}"),
            source,
        }),
    }
}

async fn delete<K>(
    api: &Api<K>,
    obj_name: &str,
    kind: &'static str,
    ns: &str,
) -> Result<(), ActError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(obj_name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(source) => Err(ActError {
            verb: "delete",
            target: format!("{kind} {ns}/{obj_name}"),
            source,
        }),
    }
}

/// Merge-patch the Rollout itself with `rv` as a precondition and advance `rv` to
/// the version the write produced. `Ok(false)` means someone else changed the
/// Rollout since it was read: the caller stops and lets the watch retrigger.
async fn patch_rollout_guarded(
    api: &Api<Rollout>,
    name: &str,
    rv: &mut String,
    superseded: &mut Vec<String>,
    mut body: Value,
) -> Result<bool, kube::Error> {
    body["metadata"]["resourceVersion"] = Value::String(rv.clone());
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&body))
        .await
    {
        Ok(updated) => {
            superseded.push(std::mem::replace(
                rv,
                updated.resource_version().unwrap_or_default(),
            ));
            Ok(true)
        }
        Err(e) if is_conflict(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// Apply `plan` to the cluster on behalf of `ro`.
pub async fn apply(ctx: &Context, ro: &Rollout, plan: &Plan) -> Result<Outcome, ActError> {
    let ns = ro.namespace().unwrap_or_default();
    let name = ro.name_any();
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let ro_api: Api<Rollout> = Api::namespaced(ctx.client.clone(), &ns);
    let pp = PatchParams::default();
    // The resourceVersion our next write to the Rollout must match, and those our
    // writes replaced.
    let mut rollout_rv = ro.resource_version().unwrap_or_default();
    let mut superseded = Vec::new();
    let act = |verb: &'static str, target: String| {
        move |source: kube::Error| ActError {
            verb,
            target,
            source,
        }
    };

    let events = tagged_events(plan);
    for change in &plan.changes {
        match change {
            Change::CreateReplicaSet(rs) => {
                let rs_name = rs.name_any();
                debug!(replicaset = %rs_name, "creating ReplicaSet");
                match rs_api.create(&PostParams::default(), rs).await {
                    Ok(_) => {}
                    Err(e) if is_conflict(&e) => {
                        // Either our cache has not seen our own ReplicaSet yet (the watch
                        // will bring it), or another object holds the name: a hash
                        // collision, resolved by bumping collisionCount for a new hash.
                        let uid = ro.uid().unwrap_or_default();
                        let existing = rs_api.get_opt(&rs_name).await.ok().flatten();
                        let ours = existing.as_ref().is_some_and(|rs| {
                            rs.owner_references()
                                .iter()
                                .any(|o| o.uid == uid && o.controller == Some(true))
                        });
                        if existing.is_some() && !ours {
                            let count = ro
                                .status
                                .as_ref()
                                .and_then(|s| s.collision_count)
                                .unwrap_or(0)
                                + 1;
                            warn!(replicaset = %rs_name, collision_count = count, "pod-template hash collision");
                            let body = json!({"metadata": {"resourceVersion": rollout_rv}, "status": {"collisionCount": count}});
                            match ro_api.patch_status(&name, &pp, &Patch::Merge(&body)).await {
                                Ok(_) => {
                                    superseded.push(rollout_rv);
                                    return Ok(Outcome {
                                        status_written: true,
                                        conflict: true,
                                        superseded,
                                        counts_held: None,
                                    });
                                }
                                Err(e) if is_conflict(&e) => {}
                                Err(e) => {
                                    return Err(act(
                                        "patch status of",
                                        format!("rollout {ns}/{name}"),
                                    )(e));
                                }
                            }
                        }
                        return Ok(Outcome {
                            conflict: true,
                            superseded,
                            ..Default::default()
                        });
                    }
                    Err(e) => return Err(act("create", format!("replicaset {ns}/{rs_name}"))(e)),
                }
            }
            Change::ScaleReplicaSet {
                name: rs_name,
                replicas,
                annotations,
                ..
            } => {
                let mut body = json!({"spec": {"replicas": replicas}});
                if !annotations.is_empty() {
                    body["metadata"] = json!({"annotations": metadata_map(annotations)});
                }
                rs_api
                    .patch(rs_name, &pp, &Patch::Merge(&body))
                    .await
                    .map_err(act("scale", format!("replicaset {ns}/{rs_name}")))?;
            }
            Change::UpdateReplicaSet {
                name: rs_name,
                annotations,
                template_labels,
                template_annotations,
                min_ready_seconds,
            } => {
                let mut body = json!({});
                if !annotations.is_empty() {
                    body["metadata"] = json!({"annotations": metadata_map(annotations)});
                }
                let mut template_meta = Map::new();
                if !template_labels.is_empty() {
                    template_meta.insert("labels".into(), metadata_map(template_labels));
                }
                if !template_annotations.is_empty() {
                    template_meta.insert("annotations".into(), metadata_map(template_annotations));
                }
                if !template_meta.is_empty() {
                    body["spec"] = json!({"template": {"metadata": Value::Object(template_meta)}});
                }
                if let Some(mrs) = min_ready_seconds {
                    if body.get("spec").is_none() {
                        body["spec"] = json!({});
                    }
                    body["spec"]["minReadySeconds"] = json!(mrs);
                }
                rs_api
                    .patch(rs_name, &pp, &Patch::Merge(&body))
                    .await
                    .map_err(act("update", format!("replicaset {ns}/{rs_name}")))?;
            }
            Change::DeleteReplicaSet { name: rs_name } => {
                match rs_api.delete(rs_name, &DeleteParams::background()).await {
                    Ok(_) => {}
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(act("delete", format!("replicaset {ns}/{rs_name}"))(e)),
                }
            }
            Change::CreateAnalysisRun(run) => {
                let api: Api<AnalysisRun> = Api::namespaced(ctx.client.clone(), &ns);
                create_owned(&api, run, "analysisrun", &ns).await?;
            }
            Change::TerminateAnalysisRun { name: run } => {
                let api: Api<AnalysisRun> = Api::namespaced(ctx.client.clone(), &ns);
                terminate(&api, run, "analysisrun", &ns).await?;
            }
            Change::DeleteAnalysisRun { name: run } => {
                let api: Api<AnalysisRun> = Api::namespaced(ctx.client.clone(), &ns);
                delete(&api, run, "analysisrun", &ns).await?;
            }
            Change::CreateExperiment(exp) => {
                let api: Api<Experiment> = Api::namespaced(ctx.client.clone(), &ns);
                create_owned(&api, exp, "experiment", &ns).await?;
            }
            Change::TerminateExperiment { name: exp } => {
                let api: Api<Experiment> = Api::namespaced(ctx.client.clone(), &ns);
                terminate(&api, exp, "experiment", &ns).await?;
            }
            Change::DeleteExperiment { name: exp } => {
                let api: Api<Experiment> = Api::namespaced(ctx.client.clone(), &ns);
                delete(&api, exp, "experiment", &ns).await?;
            }
            Change::SetServiceSelector {
                service,
                pod_template_hash,
                add_managed_by,
            } => {
                let svc_api: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);
                let mut body = json!({"spec": {"selector": {HASH_LABEL: pod_template_hash}}});
                if *add_managed_by {
                    body["metadata"] = json!({"annotations": {MANAGED_BY_ANNOTATION: name}});
                }
                svc_api
                    .patch(service, &pp, &Patch::Merge(&body))
                    .await
                    .map_err(act("patch", format!("service {ns}/{service}")))?;
            }
            Change::PatchPods {
                pod_template_hash,
                labels,
                annotations,
            } => {
                let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
                let pods = pod_api
                    .list(
                        &ListParams::default().labels(&format!("{HASH_LABEL}={pod_template_hash}")),
                    )
                    .await
                    .map_err(act(
                        "list",
                        format!("pods {ns} {HASH_LABEL}={pod_template_hash}"),
                    ))?;
                for pod in pods.items {
                    if pod.metadata.deletion_timestamp.is_some() {
                        continue;
                    }
                    let needs = labels.changes(pod.metadata.labels.as_ref())
                        || annotations.changes(pod.metadata.annotations.as_ref());
                    if !needs {
                        continue;
                    }
                    let mut meta = Map::new();
                    if !labels.is_empty() {
                        meta.insert("labels".into(), metadata_map(labels));
                    }
                    if !annotations.is_empty() {
                        meta.insert("annotations".into(), metadata_map(annotations));
                    }
                    let pod_name = pod.name_any();
                    match pod_api
                        .patch(
                            &pod_name,
                            &pp,
                            &Patch::Merge(&json!({"metadata": Value::Object(meta)})),
                        )
                        .await
                    {
                        Ok(_) => {}
                        Err(e) if is_not_found(&e) => {}
                        Err(e) => return Err(act("patch", format!("pod {ns}/{pod_name}"))(e)),
                    }
                }
            }
            Change::EvictPod { name: pod_name } => {
                let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
                // The eviction API honours PodDisruptionBudgets. A 404/405 means either
                // the server does not serve eviction or the pod is gone: a plain delete
                // covers both (its own 404 is ignored).
                match pod_api.evict(pod_name, &EvictParams::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 || s.code == 405 => {
                        match pod_api.delete(pod_name, &DeleteParams::default()).await {
                            Ok(_) => {}
                            Err(e) if is_not_found(&e) => {}
                            Err(e) => return Err(act("delete", format!("pod {ns}/{pod_name}"))(e)),
                        }
                    }
                    Err(e) if is_too_many_requests(&e) => {
                        // A PodDisruptionBudget refused: try again on the next reconcile.
                        return Ok(Outcome {
                            conflict: true,
                            superseded,
                            ..Default::default()
                        });
                    }
                    Err(e) => return Err(act("evict", format!("pod {ns}/{pod_name}"))(e)),
                }
            }
            Change::PatchRolloutSpecReplicas { .. }
            | Change::AnnotateRolloutRevision { .. }
            | Change::AnnotateRollout { .. } => {
                let body = match change {
                    Change::PatchRolloutSpecReplicas { replicas } => {
                        json!({"spec": {"replicas": replicas}})
                    }
                    Change::AnnotateRolloutRevision { revision } => {
                        json!({"metadata": {"annotations": {REVISION_ANNOTATION: revision}}})
                    }
                    Change::AnnotateRollout { key, value } => {
                        json!({"metadata": {"annotations": {key: value}}})
                    }
                    _ => unreachable!("matched by the arm"),
                };
                if !patch_rollout_guarded(&ro_api, &name, &mut rollout_rv, &mut superseded, body)
                    .await
                    .map_err(act("patch", format!("rollout {ns}/{name}")))?
                {
                    return Ok(Outcome {
                        conflict: true,
                        superseded,
                        ..Default::default()
                    });
                }
            }
            Change::ScaleDeployment {
                name: deployment,
                replicas,
                ..
            } => {
                // A merge patch of the replica count alone (RBAC: deployments patch).
                let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
                let body = json!({"spec": {"replicas": replicas}});
                api.patch(deployment, &pp, &Patch::Merge(&body))
                    .await
                    .map_err(act("scale", format!("deployment {ns}/{deployment}")))?;
            }
            Change::Event { .. } => {}
        }
    }

    // The status goes before the Events of status transitions: such a transition happened
    // only once its status is written; a write refused as a conflict is planned again from
    // fresh data, which plans its Events again. Events of cluster changes are published
    // either way: those changes went through and will not be planned again.
    let old = serde_json::to_value(ro.status.clone().unwrap_or_default()).unwrap_or(Value::Null);
    let new = serde_json::to_value(&plan.status).unwrap_or(Value::Null);
    let key = format!("{ns}/{name}");
    let mut outcome = Outcome {
        superseded,
        ..Default::default()
    };
    match merge_diff(&old, &new) {
        None => ctx.count_writes.written(&key),
        Some(diff) => {
            let held = counts_only(&diff)
                .then(|| ctx.count_writes.hold(&key, std::time::Instant::now()))
                .flatten();
            if held.is_some() {
                outcome.counts_held = held;
            } else {
                debug!(status = %diff, "writing status");
                let body = json!({"metadata": {"resourceVersion": rollout_rv}, "status": diff});
                match ro_api.patch_status(&name, &pp, &Patch::Merge(&body)).await {
                    Ok(_) => {
                        ctx.count_writes.written(&key);
                        outcome.superseded.push(rollout_rv);
                        outcome.status_written = true;
                    }
                    Err(e) if is_conflict(&e) => {
                        outcome.conflict = true;
                        let of_changes = events.iter().filter(|e| e.of_change);
                        publish_events(ctx, ro, of_changes).await;
                        return Ok(outcome);
                    }
                    Err(e) => {
                        return Err(act("patch status of", format!("rollout {ns}/{name}"))(e));
                    }
                }
            }
        }
    }

    publish_events(ctx, ro, events.iter()).await;
    Ok(outcome)
}

/// One Event of a plan, and whether it tells of the cluster change just before it.
struct PlannedEvent<'a> {
    type_: EventType,
    reason: &'a str,
    message: &'a str,
    of_change: bool,
}

/// The plan's Events in order. The planner records the Event of a cluster change
/// (`NewReplicaSetCreated`, `ScalingReplicaSet`, `RolloutUpdated`, ...) right after that
/// change; any other Event tells of a status transition.
fn tagged_events(plan: &Plan) -> Vec<PlannedEvent<'_>> {
    let mut events = Vec::new();
    let mut after_change = false;
    for change in &plan.changes {
        match change {
            Change::Event {
                type_,
                reason,
                message,
            } => {
                events.push(PlannedEvent {
                    type_: *type_,
                    reason,
                    message,
                    of_change: after_change,
                });
                after_change = false;
            }
            _ => after_change = true,
        }
    }
    events
}

async fn publish_events<'a>(
    ctx: &Context,
    ro: &Rollout,
    events: impl Iterator<Item = &'a PlannedEvent<'a>>,
) {
    let ns = ro.namespace().unwrap_or_default();
    let name = ro.name_any();
    for planned in events {
        let event = Event {
            type_: match planned.type_ {
                EventType::Normal => KubeEventType::Normal,
                EventType::Warning => KubeEventType::Warning,
            },
            reason: planned.reason.to_string(),
            note: Some(planned.message.to_string()),
            // Repeats of one (type, reason, action) merge into one series; the message
            // as action keeps distinct events distinct ("revision 1" vs "revision 2").
            action: truncate(planned.message, 128),
            secondary: None,
        };
        if let Some(metrics) = &ctx.metrics {
            metrics.event(&ns, &name, planned.type_.as_str(), planned.reason);
        }
        // Events are best effort: a failure to record one never blocks a rollout.
        if let Err(e) = ctx.events.publish(&event, &ro.object_ref(&())).await {
            warn!(reason = %planned.reason, error = %e, "recording event failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_right_after_a_cluster_change_tells_of_that_change() {
        let plan = Plan {
            status: Default::default(),
            changes: vec![
                Change::normal("RolloutStepCompleted", "step 1/2 completed"),
                Change::ScaleReplicaSet {
                    name: "web-1".into(),
                    from: 0,
                    replicas: 1,
                    annotations: MetadataPatch::default(),
                },
                Change::normal("ScalingReplicaSet", "Scaled up"),
                Change::normal("RolloutPaused", "paused"),
                Change::AnnotateRolloutRevision {
                    revision: "2".into(),
                },
                Change::normal("RolloutUpdated", "revision 2"),
            ],
            requeue_after: None,
        };
        let tags: Vec<(&str, bool)> = tagged_events(&plan)
            .iter()
            .map(|e| (e.reason, e.of_change))
            .collect();
        assert_eq!(
            tags,
            [
                ("RolloutStepCompleted", false),
                ("ScalingReplicaSet", true),
                ("RolloutPaused", false),
                ("RolloutUpdated", true),
            ]
        );
    }

    #[test]
    fn event_actions_are_cut_at_a_character_boundary() {
        assert_eq!(truncate("short", 128), "short");
        let long = "é".repeat(100); // 200 bytes
        let cut = truncate(&long, 128);
        assert_eq!(cut.len(), 128);
        assert!(long.starts_with(&cut));
        assert_eq!(truncate("aé", 2), "a");
    }
}
