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
//!
//! This file holds the phase machine; `templates` (ReplicaSets, Services, template statuses)
//! and `analyses` (AnalysisRuns) are the `impl Planner` blocks it calls per template and per
//! analysis.

mod analyses;
mod templates;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;

use super::validate::{SpecError, validate};
use crate::rollout::plan::EventType;
use sluice_api::analysis::{AnalysisRun, AnalysisTemplateSpec};
use sluice_api::common::AnalysisPhase;
use sluice_api::experiment::{
    Experiment, ExperimentCondition, ExperimentConditionType, ExperimentStatus, TemplateSpec,
    TemplateStatusCode,
};
use sluice_api::k8s::conditions;
use templates::replica_counts;

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
            .and_then(|d| super::validate::duration_of(d).ok())
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
            new.iter()
                .find(|n| n.name == o.name)
                .is_some_and(|n| replica_counts(o) != replica_counts(n))
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
    conditions::find(status.conditions.as_deref().unwrap_or_default(), type_)
}

fn remove_condition(status: &mut ExperimentStatus, type_: &ExperimentConditionType) {
    if let Some(list) = status.conditions.as_mut() {
        conditions::remove(list, type_);
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

/// Upstream `SetExperimentCondition`, which is Kubernetes' condition rule
/// (`sluice_api::k8s::conditions`).
fn set_condition(status: &mut ExperimentStatus, c: ExperimentCondition) {
    conditions::set(status.conditions.get_or_insert_with(Vec::new), c);
}
