//! The one writer: applies a `Plan` in order, stopping at the first failure,
//! then writes the status as a merge patch of the fields that changed.
//!
//! Every write to the Rollout itself carries the resourceVersion it was planned
//! from, so a promote or abort that lands while we plan makes our write fail
//! with 409 instead of clobbering it; the watch event of that change starts a
//! fresh reconcile.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{
    Api, DeleteParams, DynamicObject, EvictParams, ListParams, Patch, PatchParams, PostParams,
};
use kube::runtime::events::{Event, EventType as KubeEventType};
use kube::{Resource, ResourceExt};
use serde_json::{Map, Value, json};
use tracing::{debug, warn};

use std::ops::ControlFlow;

use super::coalesce::progress_only;
use super::rollout::{Context, HASH_LABEL};
use super::status_patch::merge_diff;
use crate::error::ApiCallError;
use sluice_api::analysis::AnalysisRun;
use sluice_api::common::REVISION_ANNOTATION;
use sluice_api::experiment::Experiment;
use sluice_api::rollout::Rollout;
use sluice_engine::rollout::plan::{Change, EventType, MetadataPatch, Plan};
use sluice_engine::rollout::refusal::Write;
use sluice_engine::rollout::status::NEW_REPLICA_SET_REASON;
use sluice_engine::rollout::traffic::RouteRef;

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
/// event has not arrived yet, and the object's own controller takes it from there. The
/// object as created (`None`: it already existed).
async fn create_owned<K>(
    api: &Api<K>,
    obj: &K,
    kind: &str,
    ns: &str,
) -> Result<Option<K>, ApiCallError>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let obj_name = obj.meta().name.clone().unwrap_or_default();
    debug!(kind, name = %obj_name, "creating");
    match api.create(&PostParams::default(), obj).await {
        Ok(created) => Ok(Some(created)),
        Err(e) if is_conflict(&e) => Ok(None),
        Err(e) => Err(ApiCallError::on(
            "create",
            format!("{kind} {ns}/{obj_name}"),
        )(e)),
    }
}

/// `{"spec":{"terminate":true}}`, what `kubectl argo rollouts terminate` sends; a run or
/// experiment that is already gone needs no stopping.
async fn terminate<K>(
    api: &Api<K>,
    obj_name: &str,
    kind: &str,
    ns: &str,
) -> Result<(), ApiCallError>
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
        Err(e) => Err(ApiCallError::on(
            "terminate",
            format!("{kind} {ns}/{obj_name}"),
        )(e)),
    }
}

async fn delete<K>(api: &Api<K>, obj_name: &str, kind: &str, ns: &str) -> Result<(), ApiCallError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(obj_name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(ApiCallError::on(
            "delete",
            format!("{kind} {ns}/{obj_name}"),
        )(e)),
    }
}

/// The patch of a `ScaleReplicaSet`: the replica count, and annotations such as
/// `desired-replicas` that go with it.
fn scale_body(replicas: i32, annotations: &MetadataPatch) -> Value {
    let mut body = json!({"spec": {"replicas": replicas}});
    if !annotations.is_empty() {
        body["metadata"] = json!({"annotations": metadata_map(annotations)});
    }
    body
}

/// The patch of an `UpdateReplicaSet`: annotations, pod-template metadata and
/// `minReadySeconds`, each only when the plan changes it.
fn update_body(
    annotations: &MetadataPatch,
    template_labels: &MetadataPatch,
    template_annotations: &MetadataPatch,
    min_ready_seconds: Option<i32>,
) -> Value {
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
    body
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// After one change: go on with the next, or stop the plan here with this outcome (a
/// conflict: the rest was planned from data that is no longer current).
type Next = ControlFlow<Outcome>;

/// A plan that stopped at a failed API call: the call, and the write of the plan it was (for
/// the refusals the next plan reports; `None` for the status write and other calls).
#[derive(Debug)]
pub struct Failed {
    pub write: Option<Write>,
    pub error: ApiCallError,
}

/// Apply `plan` to the cluster on behalf of `ro`: its changes in order, stopping at the first
/// failure or conflict, then the status and the Events.
pub async fn apply(ctx: &Context, ro: &Rollout, plan: &Plan) -> Result<Outcome, Failed> {
    let mut actuator = Actuator::new(ctx, ro);
    if plan
        .changes
        .iter()
        .any(|c| !matches!(c, Change::Event { .. }))
    {
        ctx.memory.count_writes.renew(
            &format!("{}/{}", actuator.ns, actuator.name),
            std::time::Instant::now(),
        );
    }
    for change in &plan.changes {
        match actuator.change(change).await {
            Ok(ControlFlow::Break(outcome)) => return Ok(outcome),
            Ok(ControlFlow::Continue(())) => {}
            Err(error) => {
                return Err(Failed {
                    write: Write::of(change),
                    error,
                });
            }
        }
    }
    actuator
        .write_status(plan)
        .await
        .map_err(|error| Failed { write: None, error })
}

/// One plan being applied: where it writes, and what its writes to the Rollout did so far.
struct Actuator<'a> {
    ctx: &'a Context,
    ro: &'a Rollout,
    ns: String,
    name: String,
    /// The resourceVersion our next write to the Rollout must match.
    rollout_rv: String,
    /// The resourceVersions our writes replaced.
    superseded: Vec<String>,
}

impl<'a> Actuator<'a> {
    fn new(ctx: &'a Context, ro: &'a Rollout) -> Self {
        Actuator {
            ctx,
            ro,
            ns: ro.namespace().unwrap_or_default(),
            name: ro.name_any(),
            rollout_rv: ro.resource_version().unwrap_or_default(),
            superseded: Vec::new(),
        }
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.ctx.client.clone(), &self.ns)
    }

    /// [`create_owned`] in the Rollout's namespace.
    async fn create<K>(&self, obj: &K) -> Result<(), ApiCallError>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::Serialize
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        create_owned(
            &self.api::<K>(),
            obj,
            &K::kind(&()).to_lowercase(),
            &self.ns,
        )
        .await
        .map(drop)
    }

    /// [`terminate`] in the Rollout's namespace.
    async fn terminate<K>(&self, name: &str) -> Result<(), ApiCallError>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        terminate(
            &self.api::<K>(),
            name,
            &K::kind(&()).to_lowercase(),
            &self.ns,
        )
        .await
    }

    /// [`delete`] in the Rollout's namespace.
    async fn delete<K>(&self, name: &str) -> Result<(), ApiCallError>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        delete(
            &self.api::<K>(),
            name,
            &K::kind(&()).to_lowercase(),
            &self.ns,
        )
        .await
    }

    /// `kind ns/name` of an object in the Rollout's namespace, for errors.
    fn target(&self, kind: &str, name: &str) -> String {
        format!("{kind} {}/{name}", self.ns)
    }

    /// Stop the plan: the outcome of a conflict, keeping the versions replaced so far.
    fn conflict(&mut self) -> Next {
        ControlFlow::Break(Outcome {
            conflict: true,
            superseded: std::mem::take(&mut self.superseded),
            ..Default::default()
        })
    }

    /// Apply one change.
    async fn change(&mut self, change: &Change) -> Result<Next, ApiCallError> {
        let go_on = |r: Result<(), ApiCallError>| r.map(|()| ControlFlow::Continue(()));
        match change {
            Change::CreateReplicaSet(rs) => self.create_replica_set(rs).await,
            Change::ScaleReplicaSet {
                name,
                replicas,
                annotations,
                ..
            } => {
                let body = scale_body(*replicas, annotations);
                go_on(self.patch_replica_set("scale", name, body).await)
            }
            Change::UpdateReplicaSet {
                name,
                annotations,
                template_labels,
                template_annotations,
                min_ready_seconds,
            } => {
                let body = update_body(
                    annotations,
                    template_labels,
                    template_annotations,
                    *min_ready_seconds,
                );
                go_on(self.patch_replica_set("update", name, body).await)
            }
            Change::DeleteReplicaSet { name } => go_on(self.delete::<ReplicaSet>(name).await),
            Change::CreateAnalysisRun(run) => go_on(self.create::<AnalysisRun>(run).await),
            Change::TerminateAnalysisRun { name } => {
                go_on(self.terminate::<AnalysisRun>(name).await)
            }
            Change::DeleteAnalysisRun { name } => go_on(self.delete::<AnalysisRun>(name).await),
            Change::CreateExperiment(exp) => go_on(self.create::<Experiment>(exp).await),
            Change::TerminateExperiment { name } => go_on(self.terminate::<Experiment>(name).await),
            Change::DeleteExperiment { name } => go_on(self.delete::<Experiment>(name).await),
            Change::SetServiceSelector {
                service,
                pod_template_hash,
                add_managed_by,
            } => go_on(
                self.set_service_selector(service, pod_template_hash, *add_managed_by)
                    .await,
            ),
            Change::ReleaseService { service } => go_on(self.release_service(service).await),
            Change::PatchPods {
                pod_template_hash,
                labels,
                annotations,
            } => go_on(
                self.patch_pods(pod_template_hash, labels, annotations)
                    .await,
            ),
            Change::EvictPod { name } => self.evict_pod(name).await,
            Change::PatchRolloutSpecReplicas { replicas } => {
                self.patch_rollout(json!({"spec": {"replicas": replicas}}))
                    .await
            }
            Change::AnnotateRolloutRevision { revision } => {
                self.patch_rollout(
                    json!({"metadata": {"annotations": {REVISION_ANNOTATION: revision}}}),
                )
                .await
            }
            Change::AnnotateRollout { key, value } => {
                self.patch_rollout(json!({"metadata": {"annotations": {key: value}}}))
                    .await
            }
            Change::ScaleDeployment { name, replicas, .. } => {
                go_on(self.scale_deployment(name, *replicas).await)
            }
            Change::PatchRoute { route, patch } => go_on(self.patch_route(route, patch).await),
            Change::CreateRoute { route, object } => go_on(self.create_route(route, object).await),
            // Published with the status, see `write_status`.
            Change::Event { .. } => Ok(ControlFlow::Continue(())),
        }
    }

    /// Create the new ReplicaSet. AlreadyExists is either our own create that the cache has
    /// not seen yet (the watch will bring it), or another object holding the name: a hash
    /// collision, resolved by bumping `status.collisionCount` for a new hash. Either way the
    /// plan stops here.
    async fn create_replica_set(&mut self, rs: &ReplicaSet) -> Result<Next, ApiCallError> {
        let rs_api = self.api::<ReplicaSet>();
        let rs_name = rs.name_any();
        debug!(replicaset = %rs_name, "creating ReplicaSet");
        match rs_api.create(&PostParams::default(), rs).await {
            Ok(_) => return Ok(ControlFlow::Continue(())),
            Err(e) if is_conflict(&e) => {}
            Err(e) => {
                return Err(ApiCallError::on(
                    "create",
                    self.target("replicaset", &rs_name),
                )(e));
            }
        }
        let uid = self.ro.uid().unwrap_or_default();
        let existing = rs_api.get_opt(&rs_name).await.ok().flatten();
        let ours = existing.as_ref().is_some_and(|rs| {
            rs.owner_references()
                .iter()
                .any(|o| o.uid == uid && o.controller == Some(true))
        });
        if existing.is_none() || ours {
            return Ok(self.conflict());
        }
        let count = self
            .ro
            .status
            .as_ref()
            .and_then(|s| s.collision_count)
            .unwrap_or(0)
            + 1;
        warn!(replicaset = %rs_name, collision_count = count, "pod-template hash collision");
        let body = json!({"metadata": {"resourceVersion": self.rollout_rv}, "status": {"collisionCount": count}});
        match self
            .api::<Rollout>()
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&body))
            .await
        {
            Ok(_) => {
                let mut superseded = std::mem::take(&mut self.superseded);
                superseded.push(std::mem::take(&mut self.rollout_rv));
                Ok(ControlFlow::Break(Outcome {
                    status_written: true,
                    conflict: true,
                    superseded,
                    counts_held: None,
                }))
            }
            Err(e) if is_conflict(&e) => Ok(self.conflict()),
            Err(e) => Err(ApiCallError::on(
                "patch status of",
                self.target("rollout", &self.name),
            )(e)),
        }
    }

    /// A merge patch of one ReplicaSet (`verb` names the change in errors).
    async fn patch_replica_set(
        &self,
        verb: &'static str,
        rs_name: &str,
        body: Value,
    ) -> Result<(), ApiCallError> {
        crate::unread::merge_patch::<ReplicaSet>(
            &self.ctx.client,
            Some(&self.ns),
            rs_name,
            None,
            &body,
        )
        .await
        .map_err(ApiCallError::on(verb, self.target("replicaset", rs_name)))?;
        Ok(())
    }

    async fn set_service_selector(
        &self,
        service: &str,
        pod_template_hash: &str,
        add_managed_by: bool,
    ) -> Result<(), ApiCallError> {
        let mut body = json!({"spec": {"selector": {HASH_LABEL: pod_template_hash}}});
        if add_managed_by {
            body["metadata"] = json!({"annotations": {MANAGED_BY_ANNOTATION: self.name}});
        }
        let patched = self
            .api::<Service>()
            .patch(service, &PatchParams::default(), &Patch::Merge(&body))
            .await
            .map_err(ApiCallError::on("patch", self.target("service", service)))?;
        self.wrote_service(service, Some(&patched));
        Ok(())
    }

    /// Tell the Service cache what our write left (`None`: nothing, the Service is gone), so
    /// the next read does not take a copy from before it.
    fn wrote_service(&self, service: &str, now: Option<&Service>) {
        self.ctx.services.objects().wrote(
            (self.ns.as_str().into(), service.into()),
            now.map(|s| s.resource_version().unwrap_or_default()),
        );
    }

    /// Drop the hash from a Service's selector and the managed-by annotation (merge-patch
    /// nulls). A Service deleted meanwhile needs no releasing.
    async fn release_service(&self, service: &str) -> Result<(), ApiCallError> {
        let body = json!({
            "metadata": {"annotations": {MANAGED_BY_ANNOTATION: null}},
            "spec": {"selector": {HASH_LABEL: null}},
        });
        match self
            .api::<Service>()
            .patch(service, &PatchParams::default(), &Patch::Merge(&body))
            .await
        {
            Ok(released) => {
                self.wrote_service(service, Some(&released));
                Ok(())
            }
            Err(e) if is_not_found(&e) => {
                self.wrote_service(service, None);
                Ok(())
            }
            Err(e) => Err(ApiCallError::on("patch", self.target("service", service))(
                e,
            )),
        }
    }

    /// Bring the labels and annotations of the live pods of one pod-template hash in line
    /// (pods that already match, or are terminating, are left alone).
    async fn patch_pods(
        &self,
        pod_template_hash: &str,
        labels: &MetadataPatch,
        annotations: &MetadataPatch,
    ) -> Result<(), ApiCallError> {
        let pod_api = self.api::<Pod>();
        let selector = format!("{HASH_LABEL}={pod_template_hash}");
        let pods = pod_api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(ApiCallError::on(
                "list",
                format!("pods {} {selector}", self.ns),
            ))?;
        let mut meta = Map::new();
        if !labels.is_empty() {
            meta.insert("labels".into(), metadata_map(labels));
        }
        if !annotations.is_empty() {
            meta.insert("annotations".into(), metadata_map(annotations));
        }
        let body = json!({"metadata": Value::Object(meta)});
        for pod in pods.items {
            let needs = labels.changes(pod.metadata.labels.as_ref())
                || annotations.changes(pod.metadata.annotations.as_ref());
            if pod.metadata.deletion_timestamp.is_some() || !needs {
                continue;
            }
            let pod_name = pod.name_any();
            match pod_api
                .patch(&pod_name, &PatchParams::default(), &Patch::Merge(&body))
                .await
            {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(ApiCallError::on("patch", self.target("pod", &pod_name))(e)),
            }
        }
        Ok(())
    }

    /// Evict a pod through the eviction API, which honours PodDisruptionBudgets. A 404/405
    /// means either the server does not serve eviction or the pod is gone: a plain delete
    /// covers both (its own 404 is ignored). A budget's refusal (429) stops the plan, to be
    /// tried again on the next reconcile.
    async fn evict_pod(&mut self, pod_name: &str) -> Result<Next, ApiCallError> {
        let pod_api = self.api::<Pod>();
        match pod_api.evict(pod_name, &EvictParams::default()).await {
            Ok(_) => Ok(ControlFlow::Continue(())),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 405 => {
                match pod_api.delete(pod_name, &DeleteParams::default()).await {
                    Ok(_) => Ok(ControlFlow::Continue(())),
                    Err(e) if is_not_found(&e) => Ok(ControlFlow::Continue(())),
                    Err(e) => Err(ApiCallError::on("delete", self.target("pod", pod_name))(e)),
                }
            }
            Err(e) if is_too_many_requests(&e) => Ok(self.conflict()),
            Err(e) => Err(ApiCallError::on("evict", self.target("pod", pod_name))(e)),
        }
    }

    /// Merge-patch the Rollout itself with the resourceVersion it was planned from as a
    /// precondition, and advance that version to the one the write produced. A conflict
    /// means someone else changed the Rollout since it was read: the plan stops and the
    /// watch retriggers.
    async fn patch_rollout(&mut self, mut body: Value) -> Result<Next, ApiCallError> {
        body["metadata"]["resourceVersion"] = Value::String(self.rollout_rv.clone());
        match crate::unread::merge_patch::<Rollout>(
            &self.ctx.client,
            Some(&self.ns),
            &self.name,
            None,
            &body,
        )
        .await
        {
            Ok(updated) => {
                let rv = updated.resource_version;
                self.superseded
                    .push(std::mem::replace(&mut self.rollout_rv, rv));
                Ok(ControlFlow::Continue(()))
            }
            Err(e) if is_conflict(&e) => Ok(self.conflict()),
            Err(e) => Err(ApiCallError::on(
                "patch",
                self.target("rollout", &self.name),
            )(e)),
        }
    }

    /// A JSON patch of a route object (its `test` guards against an edit made since it was
    /// read: the API server then refuses the whole patch, and the next reconcile plans from
    /// the object as it is).
    async fn patch_route(&self, route: &RouteRef, patch: &[Value]) -> Result<(), ApiCallError> {
        let target = route.to_string();
        let ops: json_patch::Patch = serde_json::from_value(Value::Array(patch.to_vec()))
            .map_err(|e| ApiCallError::on("patch", target.clone())(kube::Error::SerdeError(e)))?;
        let api = self.route_api(route);
        let patched = api
            .patch(
                &route.name,
                &PatchParams::default(),
                &Patch::Json::<()>(ops),
            )
            .await
            .map_err(ApiCallError::on("patch", target))?;
        self.ctx
            .route_objects
            .wrote(route, patched.resource_version());
        Ok(())
    }

    /// Create a route object the Rollout owns, in the version the API server serves.
    async fn create_route(&self, route: &RouteRef, object: &Value) -> Result<(), ApiCallError> {
        let target = route.to_string();
        let mut obj: DynamicObject = serde_json::from_value(object.clone())
            .map_err(|e| ApiCallError::on("create", target.clone())(kube::Error::SerdeError(e)))?;
        obj.types = Some(kube::api::TypeMeta {
            api_version: format!("{}/{}", route.kind.group(), self.route_version(route)),
            kind: route.kind.kind().to_string(),
        });
        let api = self.route_api(route);
        let created = create_owned(
            &api,
            &obj,
            &route.kind.kind().to_lowercase(),
            &route.namespace,
        )
        .await?;
        if let Some(created) = created {
            self.ctx
                .route_objects
                .wrote(route, created.resource_version());
        }
        Ok(())
    }

    /// The version a route's kind is written in: its fixed one, or the one the observer
    /// discovered for a TrafficSplit.
    fn route_version(&self, route: &RouteRef) -> String {
        match route.kind.version() {
            Some(v) => v.to_string(),
            None => self
                .ctx
                .smi_version
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .unwrap_or_else(|| "v1alpha2".to_string()),
        }
    }

    /// The API of a route's kind in its namespace.
    fn route_api(&self, route: &RouteRef) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.ctx.client.clone(),
            &route.namespace,
            &super::rollout::route_resource(route.kind, &self.route_version(route)),
        )
    }

    /// A merge patch of the replica count alone (RBAC: deployments patch).
    async fn scale_deployment(&self, deployment: &str, replicas: i32) -> Result<(), ApiCallError> {
        let body = json!({"spec": {"replicas": replicas}});
        self.api::<Deployment>()
            .patch(deployment, &PatchParams::default(), &Patch::Merge(&body))
            .await
            .map_err(ApiCallError::on(
                "scale",
                self.target("deployment", deployment),
            ))?;
        Ok(())
    }

    /// Write the status fields that changed, then publish the plan's Events.
    ///
    /// The status goes before the Events of status transitions: such a transition happened
    /// only once its status is written; a write refused as a conflict is planned again from
    /// fresh data, which plans its Events again. Events of cluster changes are published
    /// either way: those changes went through and will not be planned again.
    async fn write_status(self, plan: &Plan) -> Result<Outcome, ApiCallError> {
        let Actuator {
            ctx,
            ro,
            ns,
            name,
            rollout_rv,
            superseded,
        } = self;
        let events = tagged_events(plan);
        let key = format!("{ns}/{name}");
        let mut outcome = Outcome {
            superseded,
            ..Default::default()
        };
        // Most reconciles (every one of a warm start) plan the status the Rollout has: equal
        // structs encode equally, so the JSON diff below is skipped.
        let unchanged = match &ro.status {
            Some(status) => *status == plan.status,
            None => plan.status == Default::default(),
        };
        let diff = if unchanged {
            None
        } else {
            let old =
                serde_json::to_value(ro.status.clone().unwrap_or_default()).unwrap_or(Value::Null);
            let new = serde_json::to_value(&plan.status).unwrap_or(Value::Null);
            merge_diff(&old, &new).map(|diff| (old, new, diff))
        };
        let Some((old, new, diff)) = diff else {
            ctx.memory.count_writes.written(&key);
            publish_events(ctx, ro, events.iter()).await;
            return Ok(outcome);
        };
        let held = progress_only(&old, &new, &diff)
            .then(|| {
                ctx.memory
                    .count_writes
                    .hold(&key, std::time::Instant::now())
            })
            .flatten();
        // Both statuses as JSON trees are many small allocations; a reconcile must not hold
        // them across the writes below (32 reconciles may be waiting on theirs at once).
        drop((old, new));
        if held.is_some() {
            outcome.counts_held = held;
            publish_events(ctx, ro, events.iter()).await;
            return Ok(outcome);
        }
        debug!(status = %diff, "writing status");
        let body = json!({"metadata": {"resourceVersion": rollout_rv}, "status": diff});
        // The Rollout the server returns is not read (nor decoded).
        let written = crate::unread::merge_patch::<Rollout>(
            &ctx.client,
            Some(&ns),
            &name,
            Some("status"),
            &body,
        )
        .await;
        drop(body);
        match written {
            Ok(_) => {
                ctx.memory.count_writes.written(&key);
                outcome.superseded.push(rollout_rv);
                outcome.status_written = true;
                publish_events(ctx, ro, events.iter()).await;
            }
            Err(e) if is_conflict(&e) => {
                outcome.conflict = true;
                publish_events(ctx, ro, events.iter().filter(|e| e.of_change)).await;
            }
            Err(e) => {
                return Err(ApiCallError::on(
                    "patch status of",
                    format!("rollout {key}"),
                )(e));
            }
        }
        Ok(outcome)
    }
}

/// One Event of a plan, and whether it tells of the cluster change just before it.
struct PlannedEvent<'a> {
    type_: EventType,
    reason: &'a str,
    message: &'a str,
    of_change: bool,
}

/// The plan's Events in order. The planner records the Event of a cluster change
/// (`ScalingReplicaSet`, `RolloutUpdated`, ...) right after that change; any other Event
/// tells of a status transition. `NewReplicaSetCreated` always tells of the ReplicaSet's
/// creation, although it comes after the revision's `RolloutUpdated` (upstream's order).
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
                    of_change: after_change || reason == NEW_REPLICA_SET_REASON,
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
    let events: Vec<&PlannedEvent<'_>> = events.collect();
    if !events.is_empty() {
        // Upstream's order: the Rollout's announcement comes before its other Events.
        ctx.memory
            .announcer
            .before_events(&ro.uid().unwrap_or_default(), &ctx.events)
            .await;
    }
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
