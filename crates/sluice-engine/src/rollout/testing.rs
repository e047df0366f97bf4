//! Test fixtures for the planner: short builders for Rollouts, ReplicaSets and Services, and
//! a tiny in-memory "cluster" that applies plans so multi-reconcile walks can be simulated.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{
    Container, Pod, PodCondition, PodSpec, PodStatus, PodTemplateSpec, Service, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

use super::canary::{MANAGED_BY_ROLLOUTS_ANNOTATION, plan_step};
use super::observed::Observed;
use super::plan::{Change, MetadataPatch, Plan};
use sluice_api::analysis::{AnalysisRunStatus, AnalysisTemplate, AnalysisTemplateSpec};
use sluice_api::common::{
    AnalysisPhase, AnalysisRunArgument, AnalysisTemplateRef, DESIRED_REPLICAS_ANNOTATION,
    POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION,
};
use sluice_api::experiment::ExperimentStatus;
use sluice_api::k8s::hash::pod_template_hash;
use sluice_api::rollout::{
    BlueGreenStrategy, CanaryStep, CanaryStrategy, Rollout, RolloutAnalysis,
    RolloutAnalysisBackground, RolloutPause, RolloutSpec, RolloutStatus, RolloutStrategy,
};

pub const NAME: &str = "demo";
/// The active and preview Services of blue/green fixtures.
pub const ACTIVE: &str = "demo-active";
pub const PREVIEW: &str = "demo-preview";

pub fn at(second: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(second, 0).unwrap()
}

pub fn time(second: i64) -> Time {
    Time(Timestamp::from_second(second).unwrap())
}

pub fn weight(w: i32) -> CanaryStep {
    CanaryStep {
        set_weight: Some(w),
        ..Default::default()
    }
}

pub fn pause() -> CanaryStep {
    CanaryStep {
        pause: Some(RolloutPause::default()),
        ..Default::default()
    }
}

pub fn pause_for(duration: &str) -> CanaryStep {
    CanaryStep {
        pause: Some(RolloutPause {
            duration: Some(IntOrString::String(duration.to_string())),
        }),
        ..Default::default()
    }
}

pub fn template(image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(BTreeMap::from([("app".to_string(), NAME.to_string())])),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".to_string(),
                image: Some(image.to_string()),
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

/// The pod-template hash Sluice gives the template running `image`.
pub fn hash(image: &str) -> String {
    pod_template_hash(&template(image), None)
}

pub fn rs_name(image: &str) -> String {
    format!("{NAME}-{}", hash(image))
}

pub struct RolloutBuilder(Rollout);

impl RolloutBuilder {
    /// 10 replicas of `image`, canary with maxSurge 1 / maxUnavailable 1 and no steps,
    /// generation 1, no status.
    pub fn new(image: &str) -> Self {
        let spec = RolloutSpec {
            replicas: Some(10),
            selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([("app".to_string(), NAME.to_string())])),
                match_expressions: None,
            }),
            template: Some(template(image)),
            strategy: Some(RolloutStrategy {
                canary: Some(CanaryStrategy {
                    max_surge: Some(IntOrString::Int(1)),
                    max_unavailable: Some(IntOrString::Int(1)),
                    ..Default::default()
                }),
                blue_green: None,
            }),
            ..Default::default()
        };
        let mut ro = Rollout::new(NAME, spec);
        ro.metadata.namespace = Some("default".to_string());
        ro.metadata.uid = Some("uid-1".to_string());
        ro.metadata.generation = Some(1);
        Self(ro)
    }

    pub fn steps(self, steps: Vec<CanaryStep>) -> Self {
        self.canary(|c| c.steps = Some(steps))
    }

    /// Switches the strategy to blue/green with `activeService: ACTIVE`, then lets `f` edit it.
    pub fn blue_green(mut self, f: impl FnOnce(&mut BlueGreenStrategy)) -> Self {
        let strategy = self.0.spec.strategy.get_or_insert_with(Default::default);
        strategy.canary = None;
        let bg = strategy
            .blue_green
            .get_or_insert_with(|| BlueGreenStrategy {
                active_service: ACTIVE.to_string(),
                ..Default::default()
            });
        f(bg);
        self
    }

    pub fn canary(mut self, f: impl FnOnce(&mut CanaryStrategy)) -> Self {
        f(self
            .0
            .spec
            .strategy
            .as_mut()
            .unwrap()
            .canary
            .as_mut()
            .unwrap());
        self
    }

    pub fn spec(mut self, f: impl FnOnce(&mut RolloutSpec)) -> Self {
        f(&mut self.0.spec);
        self
    }

    pub fn status(mut self, f: impl FnOnce(&mut RolloutStatus)) -> Self {
        f(self.0.status.get_or_insert_with(Default::default));
        self
    }

    /// Status of a Rollout that fully rolled out `image` (a previous reconcile's view).
    pub fn settled_on(self, image: &str) -> Self {
        let steps = self.0.spec.steps().len() as i32;
        let step_hash =
            super::hash::step_hash(self.0.spec.canary().and_then(|c| c.steps.as_deref()));
        self.status(|s| {
            s.stable_rs = Some(hash(image));
            s.current_pod_hash = Some(hash(image));
            s.current_step_hash = Some(step_hash);
            s.current_step_index = (steps > 0).then_some(steps);
            s.observed_generation = Some("1".to_string());
        })
    }

    /// Status of a Rollout in the middle of moving from `stable` to `canary` at `index`.
    pub fn updating(self, stable: &str, canary: &str, index: i32) -> Self {
        self.settled_on(stable).status(|s| {
            s.current_pod_hash = Some(hash(canary));
            s.current_step_index = Some(index);
        })
    }

    pub fn build(self) -> Rollout {
        self.0
    }
}

/// A ReplicaSet of the demo Rollout running `image`, as Sluice would have created it, with
/// `spec` replicas of which `available` are available (and ready), at `revision`.
pub fn rs(image: &str, spec: i32, available: i32, revision: i64) -> ReplicaSet {
    let h = hash(image);
    let mut t = template(image);
    t.metadata
        .as_mut()
        .unwrap()
        .labels
        .as_mut()
        .unwrap()
        .insert(POD_TEMPLATE_HASH_LABEL.into(), h.clone());
    let labels = t.metadata.as_ref().unwrap().labels.clone();
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{NAME}-{h}")),
            namespace: Some("default".to_string()),
            labels,
            annotations: Some(BTreeMap::from([
                (REVISION_ANNOTATION.to_string(), revision.to_string()),
                (DESIRED_REPLICAS_ANNOTATION.to_string(), "10".to_string()),
            ])),
            creation_timestamp: Some(time(revision * 100)),
            generation: Some(1),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(spec),
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([
                    ("app".to_string(), NAME.to_string()),
                    (POD_TEMPLATE_HASH_LABEL.to_string(), h),
                ])),
                match_expressions: None,
            },
            template: Some(t),
            min_ready_seconds: None,
        }),
        status: Some(ReplicaSetStatus {
            replicas: spec,
            available_replicas: Some(available),
            ready_replicas: Some(available),
            observed_generation: Some(1),
            ..Default::default()
        }),
    }
}

pub fn service(name: &str, selector_hash: Option<&str>, managed: bool) -> Service {
    let mut selector = BTreeMap::from([("app".to_string(), NAME.to_string())]);
    if let Some(h) = selector_hash {
        selector.insert(POD_TEMPLATE_HASH_LABEL.to_string(), h.to_string());
    }
    Service {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            annotations: managed.then(|| {
                BTreeMap::from([(MANAGED_BY_ROLLOUTS_ANNOTATION.to_string(), NAME.to_string())])
            }),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ..Default::default()
        }),
        status: None,
    }
}

/// A Ready pod of the ReplicaSet running `image`, created at `created`.
pub fn pod(image: &str, n: usize, created: i64) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(format!("{}-{n}", rs_name(image))),
            labels: Some(BTreeMap::from([(
                POD_TEMPLATE_HASH_LABEL.to_string(),
                hash(image),
            )])),
            creation_timestamp: Some(time(created)),
            ..Default::default()
        },
        spec: None,
        status: Some(PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: Some(time(created)),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

pub fn observed(rollout: Rollout, replica_sets: Vec<ReplicaSet>) -> Observed {
    Observed {
        rollout,
        replica_sets,
        ..Default::default()
    }
}

/// Only the changes of a given shape, to keep assertions short.
pub fn scales(plan: &Plan) -> Vec<(String, i32)> {
    plan.changes
        .iter()
        .filter_map(|c| match c {
            Change::ScaleReplicaSet { name, replicas, .. } => Some((name.clone(), *replicas)),
            _ => None,
        })
        .collect()
}

pub fn events(plan: &Plan) -> Vec<(String, String)> {
    plan.changes
        .iter()
        .filter_map(|c| match c {
            Change::Event {
                reason, message, ..
            } => Some((reason.clone(), message.clone())),
            _ => None,
        })
        .collect()
}

/// An in-memory cluster: applies plans like the actuator would and lets pods become
/// available like the ReplicaSet controller and kubelet would.
pub struct Sim {
    pub obs: Observed,
    pub now: i64,
}

impl Sim {
    pub fn new(rollout: Rollout) -> Self {
        Self {
            obs: observed(rollout, Vec::new()),
            now: 1_000,
        }
    }

    /// Plans once at the current time and applies the plan.
    pub fn reconcile(&mut self) -> Plan {
        let p = plan_step(&self.obs, at(self.now));
        self.apply(&p);
        p
    }

    pub fn apply(&mut self, p: &Plan) {
        for change in &p.changes {
            match change {
                Change::CreateReplicaSet(rs) => {
                    let mut rs = (**rs).clone();
                    rs.metadata.creation_timestamp = Some(time(self.now));
                    rs.metadata.generation = Some(1);
                    rs.status = Some(ReplicaSetStatus {
                        observed_generation: Some(1),
                        ..Default::default()
                    });
                    self.obs.replica_sets.push(rs);
                }
                Change::ScaleReplicaSet {
                    name,
                    replicas,
                    annotations,
                    ..
                } => {
                    let rs = self.rs_mut(name);
                    rs.spec.as_mut().unwrap().replicas = Some(*replicas);
                    patch_map(&mut rs.metadata.annotations, annotations);
                }
                Change::UpdateReplicaSet {
                    name,
                    annotations,
                    template_labels,
                    template_annotations,
                    min_ready_seconds,
                } => {
                    let rs = self.rs_mut(name);
                    patch_map(&mut rs.metadata.annotations, annotations);
                    let spec = rs.spec.as_mut().unwrap();
                    if min_ready_seconds.is_some() {
                        spec.min_ready_seconds = *min_ready_seconds;
                    }
                    let meta = spec
                        .template
                        .as_mut()
                        .unwrap()
                        .metadata
                        .get_or_insert_with(Default::default);
                    patch_map(&mut meta.labels, template_labels);
                    patch_map(&mut meta.annotations, template_annotations);
                }
                Change::DeleteReplicaSet { name } => {
                    self.obs
                        .replica_sets
                        .retain(|rs| rs.metadata.name.as_deref() != Some(name));
                }
                Change::AnnotateRolloutRevision { revision } => {
                    self.obs
                        .rollout
                        .metadata
                        .annotations
                        .get_or_insert_with(Default::default)
                        .insert(REVISION_ANNOTATION.to_string(), revision.clone());
                }
                Change::AnnotateRollout { key, value } => {
                    self.obs
                        .rollout
                        .metadata
                        .annotations
                        .get_or_insert_with(Default::default)
                        .insert(key.clone(), value.clone());
                }
                Change::ScaleDeployment { replicas, .. } => {
                    if let Some(scale) = self.obs.workload.as_mut().and_then(|w| w.scale.as_mut()) {
                        scale.spec = *replicas;
                    }
                }
                Change::PatchRolloutSpecReplicas { replicas } => {
                    self.obs.rollout.spec.replicas = Some(*replicas);
                }
                Change::SetServiceSelector {
                    service,
                    pod_template_hash,
                    add_managed_by,
                } => {
                    if let Some(Some(svc)) = self.obs.services.get_mut(service) {
                        svc.spec
                            .as_mut()
                            .unwrap()
                            .selector
                            .get_or_insert_with(Default::default)
                            .insert(
                                POD_TEMPLATE_HASH_LABEL.to_string(),
                                pod_template_hash.clone(),
                            );
                        if *add_managed_by {
                            svc.metadata
                                .annotations
                                .get_or_insert_with(Default::default)
                                .insert(
                                    MANAGED_BY_ROLLOUTS_ANNOTATION.to_string(),
                                    NAME.to_string(),
                                );
                        }
                    }
                }
                Change::CreateAnalysisRun(run) => {
                    let mut run = (**run).clone();
                    run.metadata.creation_timestamp = Some(time(self.now));
                    self.obs.analysis_runs.push(run);
                }
                Change::TerminateAnalysisRun { name } => {
                    if let Some(r) = self
                        .obs
                        .analysis_runs
                        .iter_mut()
                        .find(|r| r.metadata.name.as_deref() == Some(name))
                    {
                        r.spec.terminate = Some(true);
                    }
                }
                Change::DeleteAnalysisRun { name } => {
                    self.obs
                        .analysis_runs
                        .retain(|r| r.metadata.name.as_deref() != Some(name));
                }
                Change::CreateExperiment(exp) => {
                    let mut exp = (**exp).clone();
                    exp.metadata.creation_timestamp = Some(time(self.now));
                    self.obs.experiments.push(exp);
                }
                Change::TerminateExperiment { name } => {
                    if let Some(e) = self
                        .obs
                        .experiments
                        .iter_mut()
                        .find(|e| e.metadata.name.as_deref() == Some(name))
                    {
                        e.spec.terminate = Some(true);
                    }
                }
                Change::DeleteExperiment { name } => {
                    self.obs
                        .experiments
                        .retain(|e| e.metadata.name.as_deref() != Some(name));
                }
                Change::ReleaseService { service } => {
                    if let Some(Some(svc)) = self.obs.services.get_mut(service) {
                        if let Some(selector) = svc.spec.as_mut().and_then(|s| s.selector.as_mut())
                        {
                            selector.remove(POD_TEMPLATE_HASH_LABEL);
                        }
                        if let Some(a) = svc.metadata.annotations.as_mut() {
                            a.remove(MANAGED_BY_ROLLOUTS_ANNOTATION);
                        }
                    }
                }
                Change::PatchRoute { route, patch } => {
                    let obj = self
                        .obs
                        .routes
                        .get_mut(route)
                        .and_then(Option::as_mut)
                        .unwrap_or_else(|| panic!("no route {route}"));
                    apply_json_patch(obj, patch);
                }
                Change::CreateRoute { route, object } => {
                    self.obs.routes.insert(route.clone(), Some(object.clone()));
                }
                Change::PatchPods { .. } | Change::Event { .. } | Change::EvictPod { .. } => {}
            }
        }
        self.obs.rollout.status = Some(p.status.clone());
    }

    /// Add a route object the traffic routing names.
    pub fn add_route(&mut self, route: crate::rollout::traffic::RouteRef, obj: serde_json::Value) {
        self.obs.routes.insert(route, Some(obj));
    }

    fn rs_mut(&mut self, name: &str) -> &mut ReplicaSet {
        self.obs
            .replica_sets
            .iter_mut()
            .find(|rs| rs.metadata.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no ReplicaSet {name}"))
    }

    /// The ReplicaSet controller and kubelet catch up: every ReplicaSet runs exactly its
    /// spec, all available.
    pub fn settle_pods(&mut self) {
        for rs in &mut self.obs.replica_sets {
            let spec = rs.spec.as_ref().unwrap().replicas.unwrap_or(1);
            let status = rs.status.get_or_insert_with(Default::default);
            status.replicas = spec;
            status.available_replicas = Some(spec);
            status.ready_replicas = Some(spec);
        }
    }

    /// Reconcile + settle until the plan has no changes and the status stops changing
    /// (bounded). Returns the plans made.
    pub fn run_until_quiet(&mut self, max: usize) -> Vec<Plan> {
        let mut plans = Vec::new();
        for _ in 0..max {
            let before = self.obs.rollout.status.clone();
            let p = self.reconcile();
            self.settle_pods();
            let quiet = p.changes.is_empty() && Some(&p.status) == before.as_ref();
            plans.push(p);
            if quiet {
                return plans;
            }
            self.now += 1;
        }
        panic!(
            "no quiet state after {max} reconciles: {:#?}",
            plans
                .last()
                .map(|p| (&p.changes, &p.status.phase, &p.status.message))
        );
    }

    pub fn status(&self) -> &RolloutStatus {
        self.obs.rollout.status.as_ref().unwrap()
    }

    pub fn specs(&self) -> BTreeMap<String, i32> {
        self.obs
            .replica_sets
            .iter()
            .map(|rs| {
                (
                    rs.metadata.name.clone().unwrap(),
                    rs.spec.as_ref().unwrap().replicas.unwrap(),
                )
            })
            .collect()
    }

    /// Adds Services that select the app's pods (no hash, not yet managed by the Rollout).
    pub fn add_services(&mut self, names: &[&str]) {
        for n in names {
            self.obs
                .services
                .insert(n.to_string(), Some(service(n, None, false)));
        }
    }

    /// The pod-template hash a Service selects, if any.
    pub fn selector(&self, name: &str) -> Option<String> {
        self.obs
            .services
            .get(name)?
            .as_ref()?
            .spec
            .as_ref()?
            .selector
            .as_ref()?
            .get(POD_TEMPLATE_HASH_LABEL)
            .cloned()
    }

    /// An annotation of the ReplicaSet running `image`.
    pub fn rs_annotation(&self, image: &str, key: &str) -> Option<String> {
        let name = rs_name(image);
        self.obs
            .replica_sets
            .iter()
            .find(|rs| rs.metadata.name.as_deref() == Some(name.as_str()))?
            .metadata
            .annotations
            .as_ref()?
            .get(key)
            .cloned()
    }

    pub fn set_image(&mut self, image: &str) {
        self.obs.rollout.spec.template = Some(template(image));
        let g = self.obs.rollout.metadata.generation.unwrap_or(1) + 1;
        self.obs.rollout.metadata.generation = Some(g);
    }
}

/// Applies a metadata patch the way the actuator's merge patch does.
fn patch_map(map: &mut Option<BTreeMap<String, String>>, patch: &MetadataPatch) {
    if patch.is_empty() {
        return;
    }
    let m = map.get_or_insert_with(Default::default);
    m.extend(patch.set.clone());
    m.retain(|k, _| !patch.remove.contains(k));
}

/// An `analysis` step running the AnalysisTemplates `names`.
pub fn analysis_step(names: &[&str]) -> CanaryStep {
    CanaryStep {
        analysis: Some(RolloutAnalysis {
            templates: Some(template_refs(names)),
            args: Some(vec![latest_hash_arg()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Background analysis running the AnalysisTemplates `names` from `starting_step`.
pub fn background(names: &[&str], starting_step: Option<i32>) -> RolloutAnalysisBackground {
    RolloutAnalysisBackground {
        templates: Some(template_refs(names)),
        args: Some(vec![latest_hash_arg()]),
        starting_step,
        ..Default::default()
    }
}

fn template_refs(names: &[&str]) -> Vec<AnalysisTemplateRef> {
    names
        .iter()
        .map(|n| AnalysisTemplateRef {
            template_name: Some(n.to_string()),
            cluster_scope: None,
        })
        .collect()
}

/// An AnalysisTemplate with one web metric named after it.
pub fn analysis_template(name: &str) -> AnalysisTemplate {
    let spec: AnalysisTemplateSpec = serde_json::from_value(serde_json::json!({
        "metrics": [{"name": name, "provider": {"web": {"url": "http://metrics/{{args.hash}}"}}}],
        "args": [{"name": "hash"}]
    }))
    .unwrap();
    let mut t = AnalysisTemplate::new(name, spec);
    t.metadata.namespace = Some("default".to_string());
    t
}

/// Adds AnalysisTemplates (see [`analysis_template`]) to the observed world.
pub fn with_templates(mut obs: Observed, names: &[&str]) -> Observed {
    for n in names {
        obs.analysis_templates
            .insert(n.to_string(), analysis_template(n));
    }
    obs
}

/// The Rollout argument the test templates need: the canary's hash.
pub fn latest_hash_arg() -> AnalysisRunArgument {
    serde_json::from_value(serde_json::json!(
        {"name": "hash", "valueFrom": {"podTemplateHashValue": "Latest"}}
    ))
    .unwrap()
}

/// Sets the phase (and message) the AnalysisRun controller would have written.
pub fn set_run_phase(obs: &mut Observed, name: &str, phase: AnalysisPhase, message: Option<&str>) {
    let run = obs
        .analysis_runs
        .iter_mut()
        .find(|r| r.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no AnalysisRun {name}"));
    run.status = Some(AnalysisRunStatus {
        phase,
        message: message.map(str::to_string),
        ..Default::default()
    });
}

/// Sets the phase (and message) the Experiment controller would have written.
pub fn set_experiment_phase(
    obs: &mut Observed,
    name: &str,
    phase: AnalysisPhase,
    message: Option<&str>,
) {
    let exp = obs
        .experiments
        .iter_mut()
        .find(|e| e.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no Experiment {name}"));
    exp.status = Some(ExperimentStatus {
        phase: Some(phase),
        message: message.map(str::to_string),
        ..Default::default()
    });
}

/// Names of the AnalysisRuns a plan creates, terminates and deletes.
pub fn run_changes(plan: &Plan) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut created, mut terminated, mut deleted) = (Vec::new(), Vec::new(), Vec::new());
    for c in &plan.changes {
        match c {
            Change::CreateAnalysisRun(r) => created.push(r.metadata.name.clone().unwrap()),
            Change::TerminateAnalysisRun { name } => terminated.push(name.clone()),
            Change::DeleteAnalysisRun { name } => deleted.push(name.clone()),
            _ => {}
        }
    }
    (created, terminated, deleted)
}

/// The `test`, `replace`, `add` and `remove` operations of RFC 6902 (`add` and `remove` of
/// an object member), as the route patches use them; a failed `test` panics (the API server
/// would refuse the whole patch), as does removing a member that is not there.
pub fn apply_json_patch(obj: &mut serde_json::Value, patch: &[serde_json::Value]) {
    for op in patch {
        let path = op["path"].as_str().expect("patch path");
        let value = op["value"].clone();
        let (parent, key) = path.rsplit_once('/').expect("a JSON pointer");
        let key = key.replace("~1", "/").replace("~0", "~");
        match op["op"].as_str() {
            Some("test") => assert_eq!(obj.pointer(path), Some(&value), "test of {path} failed"),
            Some("replace") => *obj.pointer_mut(path).expect("replaced path exists") = value,
            Some("add") => {
                let parent = obj.pointer_mut(parent).expect("added path's parent exists");
                parent
                    .as_object_mut()
                    .expect("added to an object")
                    .insert(key, value);
            }
            Some("remove") => {
                let parent = obj
                    .pointer_mut(parent)
                    .expect("removed path's parent exists");
                parent
                    .as_object_mut()
                    .expect("removed from an object")
                    .remove(&key)
                    .unwrap_or_else(|| panic!("{path} is not there to remove"));
            }
            other => panic!("unexpected patch op {other:?}"),
        }
    }
}
