//! The Experiment decision: `plan(&ObservedExperiment, now) -> ExperimentPlan`.
//!
//! Phases follow upstream: `Pending` (first reconcile, and while templates come up) →
//! `Running` once every template's ReplicaSet has all its replicas available (`availableAt`
//! is stamped then and `duration` counts from it) → the verdict. The verdict is, in order:
//! a template that missed `progressDeadlineSeconds` (Failed); an analysis that ended Failed,
//! Error or Inconclusive (that phase, at once); every `requiredForCompletion` analysis
//! Successful (Successful, at once); `duration` passed or `terminate: true` (the analyses'
//! result if they finished or some are required, else Successful). After the verdict the
//! template ReplicaSets stay up for `scaleDownDelaySeconds` (annotation
//! `scale-down-deadline`), then go to zero and their Services are deleted; unfinished
//! AnalysisRuns are terminated. Garbage collection removes everything with the Experiment.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

use super::args::{
    AVAILABLE_AT_VAR, FINISHED_AT_VAR, pod_template_hash_var, replica_set_name_var, substitute,
};
use super::validate::{SpecError, resolve_templates, validate};
use crate::analysis::template::new_run_spec;
use crate::rollout::hash::pod_template_hash;
use crate::rollout::plan::EventType;
use sluice_api::analysis::{AnalysisRun, AnalysisTemplateSpec};
use sluice_api::common::{
    AnalysisPhase, Argument, CONTROLLER_INSTANCE_ID_LABEL, POD_TEMPLATE_HASH_LABEL,
    SCALE_DOWN_DEADLINE_ANNOTATION, parse_duration,
};
use sluice_api::experiment::{
    Experiment, ExperimentAnalysisRunStatus, ExperimentAnalysisTemplateRef, ExperimentCondition,
    ExperimentConditionType, ExperimentStatus, TemplateSpec, TemplateStatus, TemplateStatusCode,
};

/// Annotation on an Experiment's ReplicaSets and Services: the Experiment's name.
pub const EXPERIMENT_NAME_ANNOTATION: &str = "experiment.argoproj.io/name";
/// Annotation on an Experiment's ReplicaSets and Services: the template they belong to.
pub const TEMPLATE_NAME_ANNOTATION: &str = "experiment.argoproj.io/template-name";

/// Message of the Successful phase reached through `requiredForCompletion` analyses.
pub const REQUIRED_ANALYSIS_COMPLETED_MESSAGE: &str = "Required AnalysisRuns completed";

/// Names an AnalysisTemplate (`cluster: false`, in the Experiment's namespace) or a
/// ClusterAnalysisTemplate.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TemplateKey {
    pub cluster: bool,
    pub name: String,
}

/// What the planner sees of one Experiment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObservedExperiment {
    pub experiment: Experiment,
    /// ReplicaSets whose controller ownerReference is this Experiment.
    pub replica_sets: Vec<ReplicaSet>,
    /// AnalysisRuns whose controller ownerReference is this Experiment.
    pub analysis_runs: Vec<AnalysisRun>,
    /// Services whose controller ownerReference is this Experiment.
    pub services: Vec<Service>,
    /// The AnalysisTemplates in the Experiment's namespace that its analyses reference
    /// (directly or nested), by name; absent = not found.
    pub analysis_templates: BTreeMap<String, AnalysisTemplateSpec>,
    /// The ClusterAnalysisTemplates referenced, converted to the namespaced spec.
    pub cluster_analysis_templates: BTreeMap<String, AnalysisTemplateSpec>,
    /// Names of ReplicaSets this Experiment would create that exist but are controlled by
    /// something else (the wiring looks only while a template has no ReplicaSet).
    pub foreign_replica_sets: BTreeSet<String>,
    /// Likewise for the Services of templates with `service`.
    pub foreign_services: BTreeSet<String>,
}

impl ObservedExperiment {
    /// The ReplicaSet of a template: the one annotated with its name, else the one with
    /// its ReplicaSet name.
    pub fn template_replica_set(&self, t: &TemplateSpec) -> Option<&ReplicaSet> {
        let ex_name = self.experiment.metadata.name.as_deref().unwrap_or_default();
        let by_name = replica_set_name(ex_name, &t.name);
        let rss = &self.replica_sets;
        rss.iter()
            .find(|rs| annotation(rs, TEMPLATE_NAME_ANNOTATION) == Some(t.name.as_str()))
            .or_else(|| {
                rss.iter()
                    .find(|rs| rs.metadata.name.as_deref() == Some(by_name.as_str()))
            })
    }

    /// The Service of a template (annotated with its name).
    pub fn template_service(&self, t: &TemplateSpec) -> Option<&Service> {
        self.services.iter().find(|s| {
            s.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(TEMPLATE_NAME_ANNOTATION))
                == Some(&t.name)
        })
    }

    /// The referenced template, if it was found.
    pub fn template(&self, key: &TemplateKey) -> Option<&AnalysisTemplateSpec> {
        if key.cluster {
            self.cluster_analysis_templates.get(&key.name)
        } else {
            self.analysis_templates.get(&key.name)
        }
    }
}

/// Decision of one reconcile.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentPlan {
    /// The complete desired status, written as a merge patch of what differs.
    pub status: ExperimentStatus,
    /// Mutations, in order; the actuator stops at the first failure.
    pub changes: Vec<ExperimentChange>,
    /// Reconcile again after this long (duration end, progress deadlines, scale-down delay).
    pub requeue_after: Option<Duration>,
}

/// One mutation on behalf of an Experiment.
#[derive(Debug, Clone, PartialEq)]
pub enum ExperimentChange {
    /// Create a template's ReplicaSet (complete object, owned by the Experiment).
    CreateReplicaSet(Box<ReplicaSet>),
    /// Set a template ReplicaSet's `spec.replicas`.
    ScaleReplicaSet {
        name: String,
        from: i32,
        replicas: i32,
    },
    /// Set (`Some`) or remove (`None`) a template ReplicaSet's `scale-down-deadline`
    /// annotation (RFC 3339).
    SetScaleDownDeadline {
        name: String,
        deadline: Option<String>,
    },
    /// Create a template's Service (complete object, owned by the Experiment).
    CreateService(Box<Service>),
    /// Delete a template's Service.
    DeleteService { name: String },
    /// Create an AnalysisRun (complete object, owned by the Experiment).
    CreateAnalysisRun(Box<AnalysisRun>),
    /// Stop a running AnalysisRun (`spec.terminate: true`).
    TerminateAnalysisRun { name: String },
    /// Record a Kubernetes Event on the Experiment.
    Event {
        type_: EventType,
        reason: String,
        message: String,
    },
}

fn event(
    type_: EventType,
    reason: impl Into<String>,
    message: impl Into<String>,
) -> ExperimentChange {
    ExperimentChange::Event {
        type_,
        reason: reason.into(),
        message: message.into(),
    }
}

use sluice_api::k8s::time::to_time;

fn secs(t: &Time) -> i64 {
    t.0.as_second()
}

fn plus_secs(t: &Time, s: i64) -> Time {
    Time(Timestamp::from_second(secs(t).saturating_add(s)).unwrap_or(t.0))
}

fn duration_until(from: &Time, to: &Time) -> Option<Duration> {
    let d = secs(to) - secs(from);
    (d > 0).then(|| Duration::from_secs(d.unsigned_abs()))
}

/// Severity order of analysis phases (upstream `IsWorse`).
fn analysis_rank(p: &AnalysisPhase) -> u8 {
    match p {
        AnalysisPhase::Successful => 0,
        AnalysisPhase::Running => 1,
        AnalysisPhase::Pending => 2,
        AnalysisPhase::Inconclusive => 3,
        AnalysisPhase::Error => 4,
        AnalysisPhase::Failed => 5,
        _ => 2,
    }
}

/// Severity order of template statuses (upstream `TemplateIsWorse`).
fn template_rank(s: &TemplateStatusCode) -> u8 {
    match s {
        TemplateStatusCode::Successful => 0,
        TemplateStatusCode::Running => 1,
        TemplateStatusCode::Progressing => 2,
        TemplateStatusCode::Error => 3,
        TemplateStatusCode::Failed => 4,
        _ => 2,
    }
}

fn template_completed(s: Option<&TemplateStatusCode>) -> bool {
    matches!(
        s,
        Some(
            TemplateStatusCode::Successful | TemplateStatusCode::Failed | TemplateStatusCode::Error
        )
    )
}

fn phase_name(p: Option<&AnalysisPhase>) -> &str {
    p.map(|p| p.as_str()).unwrap_or("")
}

fn annotation<'a>(rs: &'a ReplicaSet, key: &str) -> Option<&'a str> {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// The ReplicaSet name of a template.
pub fn replica_set_name(experiment: &str, template: &str) -> String {
    format!("{experiment}-{template}")
}

/// The name of a template's Service: `service.name`, else the ReplicaSet's name.
pub fn service_name(experiment: &str, template: &TemplateSpec) -> String {
    template
        .service
        .as_ref()
        .and_then(|s| s.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| replica_set_name(experiment, &template.name))
}

/// The AnalysisRun name of an analysis.
pub fn analysis_run_name(experiment: &str, analysis: &str) -> String {
    format!("{experiment}-{analysis}")
}

/// Decide what to do with one Experiment at `now`.
pub fn plan(obs: &ObservedExperiment, now: DateTime<Utc>) -> ExperimentPlan {
    Planner::new(obs, to_time(now)).run()
}

struct Planner<'a> {
    obs: &'a ObservedExperiment,
    ex: &'a Experiment,
    name: String,
    now: Time,
    prev: ExperimentStatus,
    status: ExperimentStatus,
    changes: Vec<ExperimentChange>,
    requeue: Option<Duration>,
}

impl<'a> Planner<'a> {
    fn new(obs: &'a ObservedExperiment, now: Time) -> Self {
        let prev = obs.experiment.status.clone().unwrap_or_default();
        Planner {
            obs,
            ex: &obs.experiment,
            name: obs.experiment.metadata.name.clone().unwrap_or_default(),
            now,
            status: prev.clone(),
            prev,
            changes: Vec::new(),
            requeue: None,
        }
    }

    fn requeue_in(&mut self, d: Duration) {
        self.requeue = Some(self.requeue.map_or(d, |r| r.min(d)));
    }

    fn finished(&self) -> bool {
        self.prev.phase.as_ref().is_some_and(|p| p.is_completed())
    }

    fn run(mut self) -> ExperimentPlan {
        let finished = self.finished();
        // An Experiment that ended invalid stays that way (and keeps planning nothing).
        let was_invalid =
            find_condition(&self.prev, &ExperimentConditionType::InvalidSpec).is_some();
        if (!finished || was_invalid)
            && let Err(e) = validate(self.obs)
        {
            return self.invalid(e);
        }
        if !finished {
            remove_condition(&mut self.status, &ExperimentConditionType::InvalidSpec);
        }
        let terminating = finished || self.terminating();
        let passed = self.passed_duration();
        for t in &self.ex.spec.templates {
            self.reconcile_template(t, finished, terminating, passed);
        }
        for a in self.ex.spec.analyses.iter().flatten() {
            self.reconcile_analysis(a, terminating);
        }
        if !finished {
            self.calculate_phase(terminating);
        }
        self.set_conditions();
        if self.status.phase != self.prev.phase {
            let to = phase_name(self.status.phase.as_ref()).to_string();
            let type_ = match self.status.phase {
                Some(
                    AnalysisPhase::Failed | AnalysisPhase::Error | AnalysisPhase::Inconclusive,
                ) => EventType::Warning,
                _ => EventType::Normal,
            };
            let msg = format!(
                "Experiment transitioned from {} -> {to}",
                phase_name(self.prev.phase.as_ref())
            );
            self.changes
                .push(event(type_, format!("Experiment{to}"), msg));
        }
        self.requeue_for_deadlines(terminating);
        ExperimentPlan {
            status: self.status,
            changes: self.changes,
            requeue_after: self.requeue,
        }
    }

    /// The spec cannot run: phase Error, an InvalidSpec condition naming the field, and
    /// nothing created. ReplicaSets left from before the spec went bad are scaled down.
    fn invalid(mut self, e: SpecError) -> ExperimentPlan {
        let message = e.to_string();
        let prev_cond = find_condition(&self.prev, &ExperimentConditionType::InvalidSpec).cloned();
        if prev_cond.as_ref().map(|c| c.message.as_str()) != Some(message.as_str()) {
            remove_condition(&mut self.status, &ExperimentConditionType::InvalidSpec);
            set_condition(
                &mut self.status,
                new_condition(
                    ExperimentConditionType::InvalidSpec,
                    "True",
                    "InvalidSpec",
                    &message,
                    &self.now,
                ),
            );
        }
        for rs in &self.obs.replica_sets {
            let replicas = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            if replicas != 0 {
                self.changes.push(ExperimentChange::ScaleReplicaSet {
                    name: rs.metadata.name.clone().unwrap_or_default(),
                    from: replicas,
                    replicas: 0,
                });
            }
        }
        if self.status.phase != Some(AnalysisPhase::Error)
            || self.status.message.as_deref() != Some(&message)
        {
            self.changes
                .push(event(EventType::Warning, "InvalidSpec", message.clone()));
        }
        self.status.phase = Some(AnalysisPhase::Error);
        self.status.message = Some(message);
        ExperimentPlan {
            status: self.status,
            changes: self.changes,
            requeue_after: None,
        }
    }

    /// Upstream `IsTerminating` on the observed status: asked to stop, a template failed,
    /// an analysis ended badly, or every required analysis succeeded.
    fn terminating(&self) -> bool {
        if self.ex.spec.is_terminated() {
            return true;
        }
        let bad_template = self.prev.template_statuses.iter().flatten().any(|t| {
            matches!(
                t.status,
                Some(TemplateStatusCode::Failed | TemplateStatusCode::Error)
            )
        });
        let bad_run = self.prev.analysis_runs.iter().flatten().any(|r| {
            matches!(
                r.phase,
                AnalysisPhase::Failed | AnalysisPhase::Error | AnalysisPhase::Inconclusive
            )
        });
        bad_template || bad_run || self.required_successful(&self.prev)
    }

    fn duration(&self) -> Option<Duration> {
        self.ex
            .spec
            .duration
            .as_deref()
            .and_then(|d| parse_duration(d).ok())
    }

    /// When the duration ends (whole seconds, rounded up), if the experiment is available.
    fn ends_at(&self, status: &ExperimentStatus) -> Option<Time> {
        let d = self.duration()?;
        let at = status.available_at.as_ref()?;
        let s = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        let s = if d.subsec_nanos() > 0 {
            s.saturating_add(1)
        } else {
            s
        };
        Some(plus_secs(at, s))
    }

    fn passed_duration(&self) -> bool {
        self.ends_at(&self.prev)
            .is_some_and(|end| secs(&self.now) >= secs(&end))
    }

    fn required_successful(&self, status: &ExperimentStatus) -> bool {
        let mut any = false;
        for a in self.ex.spec.analyses.iter().flatten() {
            if !a.is_required_for_completion() {
                continue;
            }
            any = true;
            let ok = status
                .analysis_runs
                .iter()
                .flatten()
                .any(|r| r.name == a.name && r.phase == AnalysisPhase::Successful);
            if !ok {
                return false;
            }
        }
        any
    }

    fn has_required(&self) -> bool {
        self.ex
            .spec
            .analyses
            .iter()
            .flatten()
            .any(|a| a.is_required_for_completion())
    }

    fn template_rs(&self, t: &TemplateSpec) -> Option<&'a ReplicaSet> {
        self.obs.template_replica_set(t)
    }

    fn template_service(&self, t: &TemplateSpec) -> Option<&'a Service> {
        self.obs.template_service(t)
    }

    fn owner_ref(&self) -> OwnerReference {
        OwnerReference {
            api_version: "argoproj.io/v1alpha1".to_string(),
            kind: "Experiment".to_string(),
            name: self.name.clone(),
            uid: self.ex.metadata.uid.clone().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    fn owned_annotations(&self, template: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (EXPERIMENT_NAME_ANNOTATION.to_string(), self.name.clone()),
            (TEMPLATE_NAME_ANNOTATION.to_string(), template.to_string()),
        ])
    }

    fn new_replica_set(
        &self,
        t: &TemplateSpec,
        collision_count: Option<i32>,
        replicas: i32,
    ) -> ReplicaSet {
        let hash = pod_template_hash(&t.template, collision_count);
        let mut template = t.template.clone();
        let labels = template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(Default::default);
        labels.insert(POD_TEMPLATE_HASH_LABEL.to_string(), hash.clone());
        let rs_labels = labels.clone();
        let mut selector = t.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH_LABEL.to_string(), hash);
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(replica_set_name(&self.name, &t.name)),
                namespace: self.ex.metadata.namespace.clone(),
                labels: Some(rs_labels),
                annotations: Some(self.owned_annotations(&t.name)),
                owner_references: Some(vec![self.owner_ref()]),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                min_ready_seconds: t.min_ready_seconds.filter(|s| *s != 0),
                selector,
                template: Some(template),
            }),
            status: None,
        }
    }

    /// A Service selecting the template ReplicaSet's pods, one port per container port.
    /// `None` when the pods expose no port (a Service needs at least one).
    fn new_service(&self, t: &TemplateSpec, rs: &ReplicaSet) -> Option<Service> {
        let pod_spec = rs.spec.as_ref()?.template.as_ref()?.spec.as_ref()?;
        let ports: Vec<ServicePort> = pod_spec
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .map(|p| ServicePort {
                name: p.name.clone().filter(|n| !n.is_empty()),
                protocol: p.protocol.clone(),
                port: p.container_port,
                target_port: Some(IntOrString::Int(p.container_port)),
                ..Default::default()
            })
            .collect();
        if ports.is_empty() {
            return None;
        }
        let name = service_name(&self.name, t);
        Some(Service {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: self.ex.metadata.namespace.clone(),
                annotations: Some(self.owned_annotations(&t.name)),
                owner_references: Some(vec![self.owner_ref()]),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                selector: rs.metadata.labels.clone(),
                ports: Some(ports),
                ..Default::default()
            }),
            status: None,
        })
    }

    fn reconcile_template(
        &mut self,
        t: &TemplateSpec,
        finished: bool,
        terminating: bool,
        passed: bool,
    ) {
        let prev = self
            .prev
            .template_statuses
            .iter()
            .flatten()
            .find(|s| s.name == t.name)
            .cloned();
        let mut ts = prev.clone().unwrap_or_else(|| TemplateStatus {
            name: t.name.clone(),
            ..Default::default()
        });
        let desired = if finished { 0 } else { t.replicas() };
        let rs = self.template_rs(t);
        let svc = self.template_service(t);
        let wanted_rs = replica_set_name(&self.name, &t.name);
        match rs {
            None if self.obs.foreign_replica_sets.contains(&wanted_rs) => {
                if !template_completed(ts.status.as_ref()) {
                    ts.status = Some(TemplateStatusCode::Error);
                    ts.message = Some(format!(
                        "Failed to create ReplicaSet for template '{}': replicaset {wanted_rs:?} already exists and is not controlled by this experiment",
                        t.name
                    ));
                }
            }
            None => {
                if !terminating {
                    let new = self.new_replica_set(t, ts.collision_count, desired);
                    ts.pod_template_hash = new
                        .metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL))
                        .cloned();
                    ts.last_transition_time = Some(self.now.clone());
                    let rs_name = new.metadata.name.clone().unwrap_or_default();
                    self.changes
                        .push(ExperimentChange::CreateReplicaSet(Box::new(new)));
                    if desired > 0 {
                        self.changes.push(event(
                            EventType::Normal,
                            "NewReplicaSetCreated",
                            format!("Created new replica set {rs_name:?} with size {desired}"),
                        ));
                    }
                }
            }
            Some(rs) => {
                let rs_name = rs.metadata.name.clone().unwrap_or_default();
                ts.pod_template_hash = rs
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL))
                    .cloned();
                let current = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                let target = if desired == 0 && current != 0 {
                    self.scale_down_target(rs, &rs_name, current)
                } else {
                    desired
                };
                if target != current {
                    let op = if target > current { "up" } else { "down" };
                    self.changes.push(ExperimentChange::ScaleReplicaSet {
                        name: rs_name.clone(),
                        from: current,
                        replicas: target,
                    });
                    self.changes.push(event(
                        EventType::Normal,
                        "ScalingReplicaSet",
                        format!("Scaled {op} ReplicaSet {rs_name} from {current} to {target}"),
                    ));
                    ts.last_transition_time = Some(self.now.clone());
                }
                match (&t.service, svc) {
                    (Some(_), None) if desired != 0 => {
                        if let Some(new) = self.new_service(t, rs) {
                            let svc_name = new.metadata.name.clone().unwrap_or_default();
                            if self.obs.foreign_services.contains(&svc_name) {
                                if !template_completed(ts.status.as_ref()) {
                                    ts.status = Some(TemplateStatusCode::Error);
                                    ts.message = Some(format!(
                                        "Failed to create Service {svc_name} for template '{}': service already exists and is not owned by this experiment",
                                        t.name
                                    ));
                                }
                            } else {
                                ts.service_name = Some(svc_name);
                                self.changes
                                    .push(ExperimentChange::CreateService(Box::new(new)));
                            }
                        }
                    }
                    (Some(_), Some(s)) if target != 0 => {
                        ts.service_name = s.metadata.name.clone();
                    }
                    (_, Some(s)) => {
                        self.changes.push(ExperimentChange::DeleteService {
                            name: s.metadata.name.clone().unwrap_or_default(),
                        });
                        ts.service_name = None;
                    }
                    (_, None) => ts.service_name = None,
                }
            }
        }
        let counts = rs.and_then(|r| r.status.as_ref());
        ts.replicas = counts.map_or(0, |s| s.replicas);
        ts.updated_replicas = ts.replicas;
        ts.ready_replicas = counts.and_then(|s| s.ready_replicas).unwrap_or(0);
        ts.available_replicas = counts.and_then(|s| s.available_replicas).unwrap_or(0);
        let progressed = prev.as_ref().is_none_or(|p| {
            (
                p.replicas,
                p.updated_replicas,
                p.ready_replicas,
                p.available_replicas,
            ) != (
                ts.replicas,
                ts.updated_replicas,
                ts.ready_replicas,
                ts.available_replicas,
            )
        });
        if progressed && prev.is_some() {
            ts.last_transition_time = Some(self.now.clone());
        }

        if !template_completed(ts.status.as_ref()) {
            let deadline_secs = self.ex.spec.progress_deadline_seconds();
            if desired == ts.available_replicas {
                ts.status = Some(if passed || terminating {
                    TemplateStatusCode::Successful
                } else {
                    TemplateStatusCode::Running
                });
            } else {
                let from = ts
                    .last_transition_time
                    .clone()
                    .unwrap_or_else(|| self.now.clone());
                let deadline = plus_secs(&from, i64::from(deadline_secs));
                if secs(&self.now) > secs(&deadline) {
                    ts.status = Some(TemplateStatusCode::Failed);
                    ts.message = Some(format!(
                        "Template '{}' exceeded its progressDeadlineSeconds ({deadline_secs})",
                        t.name
                    ));
                } else if terminating {
                    ts.status = Some(TemplateStatusCode::Successful);
                } else {
                    ts.status = Some(TemplateStatusCode::Progressing);
                }
            }
        }
        let prev_code = prev.as_ref().and_then(|p| p.status.clone());
        if prev_code != ts.status {
            let to = ts.status.as_ref().map(|s| s.as_str()).unwrap_or("");
            let mut msg = format!(
                "Template '{}' transitioned from {} -> {to}",
                t.name,
                prev_code.as_ref().map(|s| s.as_str()).unwrap_or("")
            );
            if let Some(m) = ts.message.as_deref().filter(|m| !m.is_empty()) {
                msg = format!("{msg}: {m}");
            }
            let type_ = match ts.status {
                Some(TemplateStatusCode::Failed | TemplateStatusCode::Error) => EventType::Warning,
                _ => EventType::Normal,
            };
            self.changes
                .push(event(type_, format!("Template{to}"), msg));
        }
        let list = self.status.template_statuses.get_or_insert_with(Vec::new);
        match list.iter_mut().find(|s| s.name == ts.name) {
            Some(s) => *s = ts,
            None => list.push(ts),
        }
    }

    /// The replicas a finished experiment's ReplicaSet should have now: zero once its
    /// `scale-down-deadline` passed (or with no delay), else unchanged (stamping the
    /// deadline first if missing).
    fn scale_down_target(&mut self, rs: &ReplicaSet, rs_name: &str, current: i32) -> i32 {
        let delay = i64::from(self.ex.spec.scale_down_delay_seconds());
        let existing = annotation(rs, SCALE_DOWN_DEADLINE_ANNOTATION);
        if delay <= 0 {
            if existing.is_some() {
                self.changes.push(ExperimentChange::SetScaleDownDeadline {
                    name: rs_name.to_string(),
                    deadline: None,
                });
            }
            return 0;
        }
        match existing {
            None => {
                let deadline = plus_secs(&self.now, delay);
                self.changes.push(ExperimentChange::SetScaleDownDeadline {
                    name: rs_name.to_string(),
                    deadline: Some(deadline.0.to_string()),
                });
                self.requeue_in(Duration::from_secs(delay.unsigned_abs()));
                current
            }
            Some(text) => match text.parse::<Timestamp>() {
                Ok(at) => match duration_until(&self.now, &Time(at)) {
                    Some(left) => {
                        self.requeue_in(left);
                        current
                    }
                    None => 0,
                },
                // An unreadable deadline must not keep pods up forever.
                Err(_) => 0,
            },
        }
    }

    /// Values for the experiment placeholders in analysis args.
    fn arg_vars(&self) -> BTreeMap<String, String> {
        let mut vars = BTreeMap::new();
        if let Some(at) = &self.status.available_at {
            vars.insert(AVAILABLE_AT_VAR.to_string(), at.0.to_string());
            if let Some(end) = self.ends_at(&self.status) {
                vars.insert(FINISHED_AT_VAR.to_string(), end.0.to_string());
            }
        }
        for t in &self.ex.spec.templates {
            if let Some(rs) = self.template_rs(t) {
                if let Some(h) = rs
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL))
                {
                    vars.insert(pod_template_hash_var(&t.name), h.clone());
                }
                vars.insert(
                    replica_set_name_var(&t.name),
                    rs.metadata.name.clone().unwrap_or_default(),
                );
            }
        }
        vars
    }

    fn new_analysis_run(&self, a: &ExperimentAnalysisTemplateRef) -> Result<AnalysisRun, String> {
        let vars = self.arg_vars();
        let mut args = Vec::new();
        for arg in a.args.iter().flatten() {
            let value = match &arg.value {
                Some(v) => Some(substitute(v, &vars).map_err(|e| e.to_string())?),
                None => None,
            };
            args.push(Argument {
                name: arg.name.clone(),
                value,
                value_from: arg.value_from.clone(),
            });
        }
        let templates = resolve_templates(self.obs, a)?;
        let spec = new_run_spec(
            &templates,
            &args,
            self.ex.spec.dry_run.as_deref().unwrap_or_default(),
            self.ex
                .spec
                .measurement_retention
                .as_deref()
                .unwrap_or_default(),
        )
        .map_err(|e| e.to_string())?;
        let mut labels = BTreeMap::new();
        if let Some(id) = self
            .ex
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(CONTROLLER_INSTANCE_ID_LABEL))
        {
            labels.insert(CONTROLLER_INSTANCE_ID_LABEL.to_string(), id.clone());
        }
        let mut annotations = BTreeMap::new();
        if let Some(md) = &self.ex.spec.analysis_run_metadata {
            labels.extend(md.labels.clone().unwrap_or_default());
            annotations.extend(md.annotations.clone().unwrap_or_default());
        }
        let mut run = AnalysisRun::new(&analysis_run_name(&self.name, &a.name), spec);
        run.metadata.namespace = self.ex.metadata.namespace.clone();
        run.metadata.labels = (!labels.is_empty()).then_some(labels);
        run.metadata.annotations = (!annotations.is_empty()).then_some(annotations);
        run.metadata.owner_references = Some(vec![self.owner_ref()]);
        Ok(run)
    }

    fn reconcile_analysis(&mut self, a: &ExperimentAnalysisTemplateRef, terminating: bool) {
        let prev = self
            .prev
            .analysis_runs
            .iter()
            .flatten()
            .find(|r| r.name == a.name)
            .cloned();
        // Runs start once every template is available (in the status this reconcile read,
        // so the placeholders see the ReplicaSets).
        if self.prev.available_at.is_none() && prev.is_none() {
            return;
        }
        let mut rs = prev.clone().unwrap_or_else(|| ExperimentAnalysisRunStatus {
            name: a.name.clone(),
            ..Default::default()
        });
        let run_name = analysis_run_name(&self.name, &a.name);
        if rs.analysis_run.is_empty() {
            let existing = self
                .obs
                .analysis_runs
                .iter()
                .find(|r| r.metadata.name.as_deref() == Some(run_name.as_str()));
            if let Some(run) = existing {
                // Created by an earlier reconcile whose status write was lost.
                rs.analysis_run = run_name;
                let st = run.status.clone().unwrap_or_default();
                rs.phase = st.phase;
                rs.message = st.message;
            } else if terminating {
                return;
            } else {
                match self.new_analysis_run(a) {
                    Ok(run) => {
                        rs.analysis_run = run_name;
                        rs.phase = AnalysisPhase::Pending;
                        rs.message = None;
                        self.changes
                            .push(ExperimentChange::CreateAnalysisRun(Box::new(run)));
                    }
                    Err(e) => {
                        rs.phase = AnalysisPhase::Error;
                        rs.message = Some(format!(
                            "Failed to create AnalysisRun for analysis '{}': {e}",
                            a.name
                        ));
                    }
                }
            }
        } else if !rs.phase.is_completed() {
            match self
                .obs
                .analysis_runs
                .iter()
                .find(|r| r.metadata.name.as_deref() == Some(rs.analysis_run.as_str()))
            {
                None => {
                    rs.phase = AnalysisPhase::Error;
                    rs.message = Some(format!("AnalysisRun {:?} not found", rs.analysis_run));
                }
                Some(run) => {
                    let st = run.status.clone().unwrap_or_default();
                    if terminating && !st.phase.is_completed() {
                        if !run.spec.is_terminated() {
                            self.changes.push(ExperimentChange::TerminateAnalysisRun {
                                name: rs.analysis_run.clone(),
                            });
                            self.changes.push(event(
                                EventType::Normal,
                                "AnalysisRunTerminating",
                                format!("Terminating {} ({})", a.name, rs.analysis_run),
                            ));
                        }
                    } else {
                        rs.phase = st.phase;
                        rs.message = st.message;
                    }
                }
            }
        }
        let prev_phase = prev.as_ref().map(|p| p.phase.clone());
        if prev_phase.as_ref() != Some(&rs.phase) {
            let mut msg = format!(
                "AnalysisRun '{}' transitioned from {} -> {}",
                a.name,
                prev_phase.as_ref().map(|p| p.as_str()).unwrap_or(""),
                rs.phase.as_str()
            );
            if let Some(m) = rs.message.as_deref().filter(|m| !m.is_empty()) {
                msg = format!("{msg}: {m}");
            }
            let type_ = match rs.phase {
                AnalysisPhase::Failed | AnalysisPhase::Error | AnalysisPhase::Inconclusive => {
                    EventType::Warning
                }
                _ => EventType::Normal,
            };
            self.changes.push(event(
                type_,
                format!("AnalysisRun{}", rs.phase.as_str()),
                msg,
            ));
        }
        let list = self.status.analysis_runs.get_or_insert_with(Vec::new);
        match list.iter_mut().find(|r| r.name == rs.name) {
            Some(r) => *r = rs,
            None => list.push(rs),
        }
    }

    /// Worst template status as an experiment phase (upstream `assessTemplates`).
    fn assess_templates(&self) -> (AnalysisPhase, Option<String>) {
        let mut worst = TemplateStatusCode::Successful;
        let mut message = None;
        for t in &self.ex.spec.templates {
            let ts = self
                .status
                .template_statuses
                .iter()
                .flatten()
                .find(|s| s.name == t.name);
            let code = ts
                .and_then(|s| s.status.clone())
                .unwrap_or(TemplateStatusCode::Progressing);
            if template_rank(&code) > template_rank(&worst) {
                worst = code;
                message = ts.and_then(|s| s.message.clone());
            }
        }
        let phase = match worst {
            TemplateStatusCode::Progressing => AnalysisPhase::Pending,
            TemplateStatusCode::Failed => AnalysisPhase::Failed,
            TemplateStatusCode::Error => AnalysisPhase::Error,
            TemplateStatusCode::Successful => AnalysisPhase::Successful,
            _ => AnalysisPhase::Running,
        };
        (phase, message)
    }

    /// Worst analysis phase (runs not started count as Pending, reported as Running; once
    /// terminating, a run that never started never will, so it does not hold the verdict).
    fn assess_analyses(&self, terminating: bool) -> (AnalysisPhase, Option<String>) {
        let mut worst = AnalysisPhase::Successful;
        let mut message = None;
        for a in self.ex.spec.analyses.iter().flatten() {
            let r = self
                .status
                .analysis_runs
                .iter()
                .flatten()
                .find(|r| r.name == a.name);
            let phase = match r {
                Some(r) => r.phase.clone(),
                None if terminating => AnalysisPhase::Successful,
                None => AnalysisPhase::Pending,
            };
            if analysis_rank(&phase) > analysis_rank(&worst) {
                worst = phase;
                message = r.and_then(|r| r.message.clone());
            }
        }
        if worst == AnalysisPhase::Pending {
            worst = AnalysisPhase::Running;
        }
        (worst, message)
    }

    fn calculate_phase(&mut self, terminating: bool) {
        if self.prev.phase.is_none() {
            self.status.phase = Some(AnalysisPhase::Pending);
            return;
        }
        let (template_phase, template_msg) = self.assess_templates();
        let (analyses_phase, analyses_msg) = self.assess_analyses(terminating);
        if template_phase == AnalysisPhase::Running && self.status.available_at.is_none() {
            self.status.available_at = Some(self.now.clone());
        }
        let analyses_bad =
            analyses_phase.is_completed() && analyses_phase != AnalysisPhase::Successful;
        let (phase, message) = if analyses_bad {
            (analyses_phase, analyses_msg)
        } else if template_phase.is_completed() {
            if template_phase == AnalysisPhase::Successful
                && (analyses_phase.is_completed() || self.has_required())
            {
                if self.required_successful(&self.status) {
                    (
                        AnalysisPhase::Successful,
                        Some(REQUIRED_ANALYSIS_COMPLETED_MESSAGE.to_string()),
                    )
                } else {
                    (analyses_phase, analyses_msg)
                }
            } else {
                (template_phase, template_msg)
            }
        } else if self.required_successful(&self.status) {
            (
                AnalysisPhase::Successful,
                Some(REQUIRED_ANALYSIS_COMPLETED_MESSAGE.to_string()),
            )
        } else {
            (template_phase, template_msg)
        };
        self.status.phase = Some(phase);
        self.status.message = message.filter(|m| !m.is_empty());
    }

    /// The Progressing condition (upstream `calculateExperimentConditions`).
    fn set_conditions(&mut self) {
        let name = &self.name;
        if self.status.phase == Some(AnalysisPhase::Successful) {
            let c = new_condition(
                ExperimentConditionType::Progressing,
                "False",
                "ExperimentCompleted",
                &format!("Experiment {name:?} has successfully ran and completed."),
                &self.now,
            );
            set_condition(&mut self.status, c);
        } else if self.progressed() {
            let mut c = new_condition(
                ExperimentConditionType::Progressing,
                "True",
                "ReplicaSetUpdated",
                &format!("Experiment {name:?} is progressing."),
                &self.now,
            );
            if let Some(cur) = find_condition(&self.prev, &ExperimentConditionType::Progressing)
                && cur.status == "True"
            {
                c.last_transition_time = cur.last_transition_time.clone();
            }
            remove_condition(&mut self.status, &ExperimentConditionType::Progressing);
            set_condition(&mut self.status, c);
        } else if self.prev.available_at.is_some() && !self.passed_duration() {
            let c = new_condition(
                ExperimentConditionType::Progressing,
                "True",
                "NewReplicaSetAvailable",
                &format!("Experiment {name:?} is running."),
                &self.now,
            );
            set_condition(&mut self.status, c);
        }
    }

    /// Whether any template's replica counts changed (upstream `ExperimentProgressing`).
    fn progressed(&self) -> bool {
        let old = self.prev.template_statuses.as_deref().unwrap_or_default();
        let new = self.status.template_statuses.as_deref().unwrap_or_default();
        if old.len() < new.len() {
            return true;
        }
        old.iter().any(|o| {
            new.iter().find(|n| n.name == o.name).is_some_and(|n| {
                (
                    o.replicas,
                    o.updated_replicas,
                    o.ready_replicas,
                    o.available_replicas,
                ) != (
                    n.replicas,
                    n.updated_replicas,
                    n.ready_replicas,
                    n.available_replicas,
                )
            })
        })
    }

    /// Wake up when the duration ends or a template's progress deadline passes.
    fn requeue_for_deadlines(&mut self, terminating: bool) {
        if terminating || self.status.phase.as_ref().is_some_and(|p| p.is_completed()) {
            return;
        }
        if let Some(end) = self.ends_at(&self.status)
            && let Some(left) = duration_until(&self.now, &end)
        {
            self.requeue_in(left);
        }
        let deadline = i64::from(self.ex.spec.progress_deadline_seconds());
        let mut waits = Vec::new();
        for t in &self.ex.spec.templates {
            let Some(ts) = self
                .status
                .template_statuses
                .iter()
                .flatten()
                .find(|s| s.name == t.name)
            else {
                continue;
            };
            let live = matches!(
                ts.status,
                Some(TemplateStatusCode::Progressing | TemplateStatusCode::Running)
            );
            if live
                && ts.available_replicas != t.replicas()
                && let Some(ltt) = &ts.last_transition_time
            {
                // One second past the deadline, since it is exceeded strictly after.
                let at = plus_secs(ltt, deadline + 1);
                waits.push(duration_until(&self.now, &at).unwrap_or(Duration::from_secs(1)));
            }
        }
        for w in waits {
            self.requeue_in(w);
        }
    }
}

fn find_condition<'s>(
    status: &'s ExperimentStatus,
    type_: &ExperimentConditionType,
) -> Option<&'s ExperimentCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| &c.type_ == type_)
}

fn remove_condition(status: &mut ExperimentStatus, type_: &ExperimentConditionType) {
    if let Some(list) = status.conditions.as_mut() {
        list.retain(|c| &c.type_ != type_);
        if list.is_empty() {
            status.conditions = None;
        }
    }
}

fn new_condition(
    type_: ExperimentConditionType,
    status: &str,
    reason: &str,
    message: &str,
    now: &Time,
) -> ExperimentCondition {
    ExperimentCondition {
        type_,
        status: status.to_string(),
        last_update_time: now.clone(),
        last_transition_time: now.clone(),
        reason: reason.to_string(),
        message: message.to_string(),
    }
}

/// Upstream `SetExperimentCondition`: unchanged status and reason → keep the existing one;
/// unchanged status → keep its lastTransitionTime.
fn set_condition(status: &mut ExperimentStatus, mut c: ExperimentCondition) {
    if let Some(cur) = find_condition(status, &c.type_) {
        if cur.status == c.status && cur.reason == c.reason {
            return;
        }
        if cur.status == c.status {
            c.last_transition_time = cur.last_transition_time.clone();
        }
    }
    let list = status.conditions.get_or_insert_with(Vec::new);
    list.retain(|x| x.type_ != c.type_);
    list.push(c);
}

#[cfg(test)]
mod tests;
