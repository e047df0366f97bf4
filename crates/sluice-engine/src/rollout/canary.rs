//! The canary step machine (without traffic routing): `plan(&Observed, now) -> Plan`.
//!
//! One call looks at the Rollout and its ReplicaSets and decides, in upstream's order:
//! which ReplicaSet is the canary (creating it if needed), whether the template or steps
//! changed (then only the status is reset), ephemeral metadata, revision-history cleanup,
//! Service selectors, replica counts toward the current `setWeight`, pause steps, and finally
//! the status: step index, promotion to stable, abort, conditions, phase and message.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm, PodTemplateSpec, WeightedPodAffinityTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta, OwnerReference, Time,
};
use sluice_api::k8s::time::to_time;

use super::hash::{TemplateMatcher, pod_template_hash, step_hash};
use super::observed::{Observed, restart_due};
use super::plan::{Change, MetadataPatch, Plan};
use super::replicas::{
    CanaryScaleInput, Limits, RsState, Targets, basic_canary_targets, scale_down_others,
};
use super::status::{self as st, FALSE, TRUE, UNKNOWN, condition, remove_condition, set_condition};
use super::validate::{InvalidSpec, validate};
use super::workload;
use sluice_api::common::{
    AnalysisPhase, DESIRED_REPLICAS_ANNOTATION, POD_TEMPLATE_HASH_LABEL, PodTemplateMetadata,
    REVISION_ANNOTATION, SCALE_DOWN_DEADLINE_ANNOTATION,
};
use sluice_api::rollout::{
    CanaryStep, PauseCondition, PauseReason, Rollout, RolloutCondition,
    RolloutConditionType as Cond, RolloutSpec, RolloutStatus,
};

/// Annotation on a ReplicaSet recording the ephemeral pod metadata injected into its template,
/// so it can be removed again without touching labels other controllers added.
pub const EPHEMERAL_METADATA_ANNOTATION: &str = "rollout.argoproj.io/ephemeral-metadata";
/// Annotation on a Service whose selector the Rollout manages.
pub const MANAGED_BY_ROLLOUTS_ANNOTATION: &str = "argo-rollouts.argoproj.io/managed-by-rollouts";

/// Decides what one reconcile of a canary Rollout should do. `now` is the reconcile time; it
/// is truncated to whole seconds, the precision status timestamps are stored with.
pub fn plan_step(observed: &Observed, now: DateTime<Utc>) -> Plan {
    let now = to_time(now);
    let rollout = &observed.rollout;
    let prev = rollout.status.clone().unwrap_or_default();
    if rollout.spec.workload_ref.is_some() {
        // The step machine plans the Rollout with the referenced template filled in; the
        // reference's own bookkeeping (generation, Deployment scale-down) is added after.
        let (mut plan, resolved) = match workload::resolve(observed) {
            Err(err) => (invalid_spec_plan(rollout, prev, &err, &now), None),
            Ok(resolved) => (plan_resolved(&resolved, prev, now.clone()), Some(resolved)),
        };
        let valid = !plan
            .status
            .conditions()
            .iter()
            .any(|c| c.type_ == Cond::InvalidSpec);
        workload::finish(observed, resolved.as_ref().filter(|_| valid), &mut plan);
        st::set_summary_conditions(&mut plan.status, generation(rollout), &now);
        return plan;
    }
    let mut plan = plan_resolved(observed, prev, now.clone());
    st::set_summary_conditions(&mut plan.status, generation(rollout), &now);
    plan
}

fn plan_resolved(observed: &Observed, prev: RolloutStatus, now: Time) -> Plan {
    if let Err(err) = validate(observed) {
        return invalid_spec_plan(&observed.rollout, prev, &err, &now);
    }
    Planner::new(observed, prev, now).run()
}

fn invalid_spec_plan(
    rollout: &Rollout,
    prev: RolloutStatus,
    err: &InvalidSpec,
    now: &Time,
) -> Plan {
    let mut status = prev;
    let mut conditions = status.conditions.take().unwrap_or_default();
    let message = err.to_string();
    let mut changes = Vec::new();
    let existing = condition(&conditions, &Cond::InvalidSpec).map(|c| c.message.clone());
    if existing.as_deref() != Some(message.as_str()) {
        // A changed message must be shown even though status and reason stay the same.
        remove_condition(&mut conditions, &Cond::InvalidSpec);
        set_condition(
            &mut conditions,
            Cond::InvalidSpec,
            TRUE,
            st::INVALID_SPEC_REASON,
            message.clone(),
            now,
        );
        changes.push(Change::warning(st::INVALID_SPEC_REASON, message));
    }
    status.conditions = Some(conditions);
    status.observed_generation = Some(generation(rollout).to_string());
    let (phase, message) = st::phase(&rollout.spec, &status);
    status.phase = Some(phase);
    // Upstream omits an empty message (Healthy); so do we.
    status.message = (!message.is_empty()).then_some(message);
    Plan {
        status,
        changes,
        requeue_after: None,
    }
}

fn generation(rollout: &Rollout) -> i64 {
    rollout.metadata.generation.unwrap_or(0)
}

/// A ReplicaSet and the numbers read from it once.
struct RsView<'a> {
    rs: &'a ReplicaSet,
    name: &'a str,
    hash: &'a str,
    spec: i32,
    available: i32,
    ready: i32,
    replicas: i32,
    revision: i64,
    deleting: bool,
}

impl<'a> RsView<'a> {
    fn new(rs: &'a ReplicaSet) -> Self {
        let status = rs.status.as_ref();
        let labels = rs.metadata.labels.as_ref();
        Self {
            rs,
            name: rs.metadata.name.as_deref().unwrap_or_default(),
            hash: labels
                .and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL))
                .map_or("", String::as_str),
            spec: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            available: status.and_then(|s| s.available_replicas).unwrap_or(0),
            ready: status.and_then(|s| s.ready_replicas).unwrap_or(0),
            replicas: status.map_or(0, |s| s.replicas),
            revision: annotation(rs, REVISION_ANNOTATION)
                .and_then(|r| r.parse().ok())
                .unwrap_or(0),
            deleting: rs.metadata.deletion_timestamp.is_some(),
        }
    }

    fn state(&self) -> RsState {
        RsState::new(self.spec, self.available)
    }

    fn created(&self) -> Option<&Time> {
        self.rs.metadata.creation_timestamp.as_ref()
    }
}

fn annotation<'a>(rs: &'a ReplicaSet, key: &str) -> Option<&'a str> {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

fn ephemeral_of(rs: &ReplicaSet) -> Option<PodTemplateMetadata> {
    annotation(rs, EPHEMERAL_METADATA_ANNOTATION).and_then(|s| serde_json::from_str(s).ok())
}

/// Pending decisions about pause conditions and abort, resolved into the status at the end
/// (upstream's "pause context").
#[derive(Default)]
struct PauseIntent {
    add_canary_pause: bool,
    remove_canary_pause: bool,
    clear: bool,
    add_abort: Option<String>,
    remove_abort: bool,
    /// Controller pauses for an Inconclusive AnalysisRun or Experiment.
    add_reasons: Vec<PauseReason>,
}

struct Planner<'a> {
    obs: &'a Observed,
    spec: &'a RolloutSpec,
    prev: RolloutStatus,
    now: Time,
    replicas: i32,
    limits: Limits,
    steps: &'a [CanaryStep],
    step_hash: String,
    rs: Vec<RsView<'a>>,
    new: Option<usize>,
    stable: Option<usize>,
    changes: Vec<Change>,
    requeue: Option<Duration>,
    pause: PauseIntent,
    /// This plan creates the canary: its Progressing condition says so (upstream writes it
    /// in a status update of its own before anything else can count as progress).
    creating: bool,
    /// Phase of the current step's AnalysisRun / Experiment as read this reconcile (the
    /// step completes when it is Successful).
    step_run_phase: Option<AnalysisPhase>,
    experiment_phase: Option<AnalysisPhase>,
    /// Runs and Experiments this plan already terminates or deletes (each is ended once).
    terminated_runs: BTreeSet<String>,
    terminated_experiments: BTreeSet<String>,
}

impl<'a> Planner<'a> {
    fn new(obs: &'a Observed, prev: RolloutStatus, now: Time) -> Self {
        let spec = &obs.rollout.spec;
        let replicas = spec.replicas();
        let canary = spec.canary();
        let limits = Limits::of_validated(spec);
        let steps = spec.steps();
        Self {
            obs,
            spec,
            prev,
            now,
            replicas,
            limits,
            steps,
            step_hash: step_hash(canary.and_then(|c| c.steps.as_deref())),
            rs: obs.replica_sets.iter().map(RsView::new).collect(),
            new: None,
            stable: None,
            changes: Vec::new(),
            requeue: None,
            pause: PauseIntent::default(),
            creating: false,
            step_run_phase: None,
            experiment_phase: None,
            terminated_runs: BTreeSet::new(),
            terminated_experiments: BTreeSet::new(),
        }
    }

    fn name(&self) -> &str {
        self.obs
            .rollout
            .metadata
            .name
            .as_deref()
            .unwrap_or_default()
    }

    fn step_count(&self) -> i32 {
        i32::try_from(self.steps.len()).unwrap_or(i32::MAX)
    }

    fn template(&self) -> &'a PodTemplateSpec {
        static EMPTY: PodTemplateSpec = PodTemplateSpec {
            metadata: None,
            spec: None,
        };
        self.spec.template.as_ref().unwrap_or(&EMPTY)
    }

    fn run(mut self) -> Plan {
        if self.spec.replicas.is_none() {
            self.changes
                .push(Change::PatchRolloutSpecReplicas { replicas: 1 });
        }
        let desired_hash = pod_template_hash(self.template(), self.prev.collision_count);
        self.new = self.find_new(&desired_hash);
        let stable_hash = self.prev.stable_rs.clone().unwrap_or_default();
        if !stable_hash.is_empty() {
            self.stable = self.rs.iter().position(|v| v.hash == stable_hash);
        }
        let Some(new) = self.new else {
            return self.create_new_replica_set(desired_hash);
        };

        let mut status = self.prev.clone();
        status.current_pod_hash = Some(self.rs[new].hash.to_string());
        status.current_step_hash = Some(self.step_hash.clone());
        let revision = self.sync_revision(new);

        let changed = self.prev.current_pod_hash.as_deref() != Some(self.rs[new].hash)
            || self.prev.current_step_hash.as_deref() != Some(self.step_hash.as_str());
        if changed {
            self.reset_for_update(&mut status);
            if condition(self.prev.conditions(), &Cond::Progressing).is_none() {
                let mut conditions = status.conditions.take().unwrap_or_default();
                set_condition(
                    &mut conditions,
                    Cond::Progressing,
                    TRUE,
                    st::FOUND_NEW_RS_REASON,
                    st::found_new_rs_message(self.rs[new].name),
                    &self.now,
                );
                status.conditions = Some(conditions);
            }
            return self.finish(status, revision);
        }

        if self.reconcile_restart(&mut status) {
            return self.finish(status, revision);
        }
        self.reconcile_ephemeral_metadata(new);
        self.cleanup_history();
        self.reconcile_services();
        self.reconcile_experiment(&mut status, new, revision);
        self.reconcile_analysis_runs(&mut status, new, revision);
        // An Inconclusive result pauses before anything scales (upstream returns early), and
        // while that pause stands the ReplicaSets stay as they are.
        let halted = self.spec.is_paused()
            || !self.pause.add_reasons.is_empty()
            || self.has_pause(&PauseReason::InconclusiveAnalysisRun);
        let scaled = if halted {
            false
        } else {
            self.reconcile_replica_sets(new)
        };
        if !scaled && self.pause.add_reasons.is_empty() {
            self.reconcile_pause_step();
        }
        self.advance(&mut status, new, revision);
        self.finish(status, revision)
    }

    /// The ReplicaSet of the current template: by hash label, else (a ReplicaSet another
    /// controller made, or a template copied back from an old ReplicaSet) by semantic
    /// template equality, oldest first.
    fn find_new(&self, desired_hash: &str) -> Option<usize> {
        if let Some(i) = self
            .rs
            .iter()
            .position(|v| !v.deleting && v.hash == desired_hash)
        {
            return Some(i);
        }
        let matcher = TemplateMatcher::new(self.template());
        let mut candidates: Vec<usize> = (0..self.rs.len())
            .filter(|&i| !self.rs[i].deleting)
            .collect();
        // The ReplicaSet adopted last time is the likely match: try it first so an adopted
        // Rollout normally costs one comparison per reconcile.
        let previous = self.prev.current_pod_hash.as_deref().unwrap_or_default();
        candidates.sort_by(|&a, &b| {
            let key = |i: usize| (self.rs[i].hash != previous, self.rs[i].created());
            key(a).cmp(&key(b))
        });
        candidates.into_iter().find(|&i| {
            let rs = self.rs[i].rs;
            let live = rs.spec.as_ref().and_then(|s| s.template.as_ref());
            live.is_some_and(|live| matcher.matches(live, ephemeral_of(rs).as_ref()))
        })
    }

    fn max_revision_except(&self, except: Option<usize>) -> i64 {
        self.rs
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != except)
            .map(|(_, v)| v.revision)
            .max()
            .unwrap_or(0)
    }

    fn rollout_revision(&self) -> Option<&str> {
        self.obs
            .rollout
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION_ANNOTATION))
            .map(String::as_str)
    }

    fn annotate_rollout_revision(&mut self, revision: i64) {
        let text = revision.to_string();
        if self.rollout_revision() != Some(text.as_str()) {
            self.changes.push(Change::AnnotateRolloutRevision {
                revision: text.clone(),
            });
            self.changes.push(Change::normal(
                st::ROLLOUT_UPDATED_REASON,
                format!("Rollout updated to revision {text}"),
            ));
        }
    }

    /// Keeps the canary's revision above every older ReplicaSet's (a rollback to an old
    /// template gets a new revision, like a Deployment), its minReadySeconds in step with the
    /// Rollout, and the Rollout's revision annotation equal to it.
    fn sync_revision(&mut self, new: usize) -> i64 {
        let want = self.max_revision_except(Some(new)) + 1;
        let view = &self.rs[new];
        let mut revision = view.revision;
        let mut annotations = MetadataPatch::default();
        if revision < want || annotation(view.rs, REVISION_ANNOTATION).is_none() {
            revision = revision.max(want);
            annotations
                .set
                .insert(REVISION_ANNOTATION.to_string(), revision.to_string());
        }
        let current_min_ready = view
            .rs
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0);
        let min_ready_seconds = (current_min_ready != self.spec.min_ready_seconds())
            .then(|| self.spec.min_ready_seconds());
        if !annotations.is_empty() || min_ready_seconds.is_some() {
            self.changes.push(Change::UpdateReplicaSet {
                name: view.name.to_string(),
                annotations,
                template_labels: MetadataPatch::default(),
                template_annotations: MetadataPatch::default(),
                min_ready_seconds,
            });
        }
        self.annotate_rollout_revision(revision);
        revision
    }

    /// The desired template changed (or the steps did): a new update starts. Pauses, abort
    /// and promoteFull are cleared and the steps start over — unless the template went back
    /// to the stable ReplicaSet's, which skips every step (rollback fast-track).
    fn reset_for_update(&mut self, status: &mut RolloutStatus) {
        self.pause.clear = true;
        self.pause.remove_abort = true;
        status.promote_full = keep_bool(status.promote_full, false);
        if let Some(c) = status.canary.as_mut() {
            c.current_step_analysis_run_status = None;
            c.current_background_analysis_run_status = None;
            c.current_experiment = None;
        }
        if self.spec.restart_at.is_some() {
            // Every pod of the new template is newer than any restart request.
            status.restarted_at = self.spec.restart_at.clone();
        }
        let count = self.step_count();
        status.current_step_index = (count > 0).then_some(0);
        if count > 0 && self.new.is_some() && self.new == self.stable {
            status.current_step_index = Some(count);
            self.changes.push(Change::normal(
                st::SKIP_STEPS_REASON,
                "Rollback to stable ReplicaSets",
            ));
        } else if count > 0
            && self.rollback_within_window()
            && self.new.is_some_and(|n| self.rs[n].spec > 0)
        {
            status.current_step_index = Some(count);
            self.changes.push(Change::normal(
                st::SKIP_STEPS_REASON,
                "Rollback to active ReplicaSets within RollbackWindow",
            ));
        }
    }

    /// `rollbackWindow.revisions`: the template went back to a ReplicaSet older than the
    /// stable one, with fewer than `revisions` ReplicaSets created between the two. Such a
    /// rollback skips the steps like a rollback to the stable does.
    fn rollback_within_window(&self) -> bool {
        let window = self
            .spec
            .rollback_window
            .as_ref()
            .and_then(|w| w.revisions)
            .unwrap_or(0);
        let (Some(new), Some(stable)) = (self.new, self.stable) else {
            return false;
        };
        let (Some(new_at), Some(stable_at)) = (self.rs[new].created(), self.rs[stable].created())
        else {
            return false;
        };
        if window <= 0 || new_at >= stable_at {
            return false;
        }
        let between = self
            .rs
            .iter()
            .filter(|v| v.created().is_some_and(|c| c > new_at && c < stable_at))
            .count();
        i32::try_from(between).unwrap_or(i32::MAX) < window
    }

    fn create_new_replica_set(mut self, hash: String) -> Plan {
        let name = format!("{}-{}", self.name(), hash);
        let mut status = self.prev.clone();
        if self.rs.iter().any(|v| v.name == name) {
            // Same name, different template: a hash collision. Bumping the count changes
            // the hash on the next reconcile.
            status.collision_count = Some(self.prev.collision_count.unwrap_or(0) + 1);
            return self.finish(status, 0);
        }
        let revision = self.max_revision_except(None) + 1;
        let stable_distinct = self.stable.is_some();
        let canary = self.spec.canary();
        let ephemeral = if stable_distinct {
            canary.and_then(|c| c.canary_metadata.as_ref())
        } else {
            canary.and_then(|c| c.stable_metadata.as_ref())
        };
        let rs = self.build_replica_set(&name, &hash, revision, ephemeral);
        self.changes.push(Change::CreateReplicaSet(Box::new(rs)));
        self.changes.push(Change::normal(
            st::NEW_REPLICA_SET_REASON,
            format!("Created ReplicaSet {name} (revision {revision})"),
        ));
        self.annotate_rollout_revision(revision);
        self.creating = true;

        status.current_pod_hash = Some(hash);
        status.current_step_hash = Some(self.step_hash.clone());
        self.reset_for_update(&mut status);
        let mut conditions = status.conditions.take().unwrap_or_default();
        set_condition(
            &mut conditions,
            Cond::Progressing,
            TRUE,
            st::NEW_REPLICA_SET_REASON,
            st::new_rs_message(&name),
            &self.now,
        );
        status.conditions = Some(conditions);
        self.finish(status, revision)
    }

    fn build_replica_set(
        &self,
        name: &str,
        hash: &str,
        revision: i64,
        ephemeral: Option<&PodTemplateMetadata>,
    ) -> ReplicaSet {
        let ro = &self.obs.rollout;
        let mut template = self.template().clone();
        let meta = template.metadata.get_or_insert_with(Default::default);
        let labels = meta.labels.get_or_insert_with(Default::default);
        if let Some(e) = ephemeral {
            labels.extend(e.labels.clone().unwrap_or_default());
            if let Some(a) = e.annotations.as_ref().filter(|a| !a.is_empty()) {
                meta.annotations
                    .get_or_insert_with(Default::default)
                    .extend(a.clone());
            }
        }
        let labels = meta.labels.get_or_insert_with(Default::default);
        labels.insert(POD_TEMPLATE_HASH_LABEL.to_string(), hash.to_string());
        let rs_labels = labels.clone();
        self.inject_anti_affinity(&mut template);

        let mut selector = self.spec.selector.clone().unwrap_or_default();
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH_LABEL.to_string(), hash.to_string());

        let mut annotations = BTreeMap::from([
            (REVISION_ANNOTATION.to_string(), revision.to_string()),
            (
                DESIRED_REPLICAS_ANNOTATION.to_string(),
                self.replicas.to_string(),
            ),
        ]);
        if let Some(e) = ephemeral.filter(|e| !is_empty_metadata(e)) {
            annotations.insert(
                EPHEMERAL_METADATA_ANNOTATION.to_string(),
                serde_json::to_string(e).unwrap_or_default(),
            );
        }
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: ro.metadata.namespace.clone(),
                labels: Some(rs_labels),
                annotations: Some(annotations),
                owner_references: Some(vec![OwnerReference {
                    api_version: "argoproj.io/v1alpha1".to_string(),
                    kind: "Rollout".to_string(),
                    name: self.name().to_string(),
                    uid: ro.metadata.uid.clone().unwrap_or_default(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: self.spec.min_ready_seconds.filter(|s| *s != 0),
                selector,
                template: Some(template),
            }),
            status: None,
        }
    }

    /// `spec.restartAt`: evicts pods created before it, as many at once as availability
    /// allows (at least one, at most maxUnavailable), the stable's first; records
    /// `status.restartedAt` once no old pod is left. Returns whether pods were evicted, in
    /// which case availability counts are stale and nothing else is scaled this time.
    fn reconcile_restart(&mut self, status: &mut RolloutStatus) -> bool {
        let Some(restart_at) = self.spec.restart_at.clone() else {
            return false;
        };
        if !restart_due(&self.obs.rollout, &self.now) {
            let left = restart_at.0.as_second() - self.now.0.as_second();
            if left > 0 && status.restarted_at.as_ref() != Some(&restart_at) {
                self.requeue_in(Duration::from_secs(left.unsigned_abs()));
            }
            return false;
        }
        let stable_hash = self.stable.map(|i| self.rs[i].hash);
        let new_hash = self.new.map(|i| self.rs[i].hash);
        let rank = |pod: &Pod| {
            let h = pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL))
                .map(String::as_str);
            if h.is_some() && h == stable_hash {
                0
            } else if h.is_some() && h == new_hash {
                1
            } else {
                2
            }
        };
        let mut pods: Vec<&Pod> = self.obs.pods.iter().collect();
        pods.sort_by(|a, b| {
            (rank(a), &a.metadata.creation_timestamp, &a.metadata.name).cmp(&(
                rank(b),
                &b.metadata.creation_timestamp,
                &b.metadata.name,
            ))
        });
        let min_ready = i64::from(self.spec.min_ready_seconds());
        let now = self.now.0.as_second();
        let available = pods
            .iter()
            .filter(|p| pod_available(p, min_ready, now))
            .count();
        let available = i32::try_from(available).unwrap_or(i32::MAX);
        let total_spec: i32 = self.rs.iter().map(|v| v.spec).sum();
        let at_once = self.limits.max_unavailable.max(1);
        let mut budget = available - (self.replicas.max(total_spec) - at_once);
        let (mut old, mut evicted) = (0, 0);
        for pod in pods {
            if pod
                .metadata
                .creation_timestamp
                .as_ref()
                .is_none_or(|c| *c >= restart_at)
            {
                continue;
            }
            old += 1;
            if budget <= 0 || pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            self.changes.push(Change::EvictPod {
                name: pod.metadata.name.clone().unwrap_or_default(),
            });
            budget -= 1;
            evicted += 1;
        }
        if old == evicted {
            status.restarted_at = Some(restart_at);
        } else {
            self.requeue_in(Duration::from_secs(30));
        }
        evicted > 0
    }

    /// `antiAffinity`: while a distinct stable exists, keep the new canary's pods off the
    /// nodes running stable pods (preferred with the given weight, or required), with
    /// upstream's term: `rollouts-pod-template-hash In [<stable>]`, per hostname.
    fn inject_anti_affinity(&self, template: &mut PodTemplateSpec) {
        let Some(strategy) = self.spec.canary().and_then(|c| c.anti_affinity.as_ref()) else {
            return;
        };
        let Some(stable) = self.stable.map(|i| self.rs[i].hash) else {
            return;
        };
        let term = PodAffinityTerm {
            label_selector: Some(LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: POD_TEMPLATE_HASH_LABEL.to_string(),
                    operator: "In".to_string(),
                    values: Some(vec![stable.to_string()]),
                }]),
                match_labels: None,
            }),
            topology_key: "kubernetes.io/hostname".to_string(),
            ..Default::default()
        };
        let pod = template.spec.get_or_insert_with(Default::default);
        let anti = pod
            .affinity
            .get_or_insert_with(Default::default)
            .pod_anti_affinity
            .get_or_insert_with(Default::default);
        match &strategy.preferred_during_scheduling_ignored_during_execution {
            Some(preferred) => anti
                .preferred_during_scheduling_ignored_during_execution
                .get_or_insert_with(Vec::new)
                .push(WeightedPodAffinityTerm {
                    weight: preferred.weight,
                    pod_affinity_term: term,
                }),
            None => anti
                .required_during_scheduling_ignored_during_execution
                .get_or_insert_with(Vec::new)
                .push(term),
        }
    }

    /// canaryMetadata on the canary's pods while a distinct stable exists, stableMetadata on
    /// the stable's (and on the canary once it is the stable).
    fn reconcile_ephemeral_metadata(&mut self, new: usize) {
        let canary = self.spec.canary();
        let stable_meta = canary.and_then(|c| c.stable_metadata.as_ref());
        let canary_meta = canary.and_then(|c| c.canary_metadata.as_ref());
        match self.stable {
            Some(stable) if stable != new => {
                self.sync_ephemeral(new, canary_meta);
                self.sync_ephemeral(stable, stable_meta);
            }
            _ => self.sync_ephemeral(new, stable_meta),
        }
    }

    fn sync_ephemeral(&mut self, idx: usize, desired: Option<&PodTemplateMetadata>) {
        let view = &self.rs[idx];
        let existing = ephemeral_of(view.rs);
        let template_meta = view
            .rs
            .spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .and_then(|t| t.metadata.as_ref());
        let labels = diff_metadata(
            template_meta.and_then(|m| m.labels.as_ref()),
            existing.as_ref().and_then(|e| e.labels.as_ref()),
            desired.and_then(|d| d.labels.as_ref()),
        );
        let annotations = diff_metadata(
            template_meta.and_then(|m| m.annotations.as_ref()),
            existing.as_ref().and_then(|e| e.annotations.as_ref()),
            desired.and_then(|d| d.annotations.as_ref()),
        );
        if labels.is_empty() && annotations.is_empty() {
            return;
        }
        let mut rs_annotations = MetadataPatch::default();
        match desired.filter(|d| !is_empty_metadata(d)) {
            Some(d) => {
                rs_annotations.set.insert(
                    EPHEMERAL_METADATA_ANNOTATION.to_string(),
                    serde_json::to_string(d).unwrap_or_default(),
                );
            }
            None => {
                rs_annotations
                    .remove
                    .insert(EPHEMERAL_METADATA_ANNOTATION.to_string());
            }
        }
        let (name, hash) = (view.name.to_string(), view.hash.to_string());
        self.changes.push(Change::UpdateReplicaSet {
            name,
            annotations: rs_annotations,
            template_labels: labels.clone(),
            template_annotations: annotations.clone(),
            min_ready_seconds: None,
        });
        self.changes.push(Change::PatchPods {
            pod_template_hash: hash,
            labels,
            annotations,
        });
    }

    /// Deletes the oldest scaled-down ReplicaSets beyond `revisionHistoryLimit`; never the
    /// canary or the stable.
    fn cleanup_history(&mut self) {
        let limit = usize::try_from(self.spec.revision_history_limit().max(0)).unwrap_or(0);
        let mut old: Vec<usize> = (0..self.rs.len())
            .filter(|&i| Some(i) != self.new && Some(i) != self.stable && !self.rs[i].deleting)
            .collect();
        if old.len() <= limit {
            return;
        }
        let excess = old.len() - limit;
        old.sort_by(|&a, &b| {
            (self.rs[a].created(), self.rs[a].name).cmp(&(self.rs[b].created(), self.rs[b].name))
        });
        for &i in &old[..excess] {
            let v = &self.rs[i];
            let observed_generation =
                v.rs.status
                    .as_ref()
                    .and_then(|s| s.observed_generation)
                    .unwrap_or(0);
            let settled = v.rs.metadata.generation.unwrap_or(0) <= observed_generation;
            if v.spec == 0 && v.replicas == 0 && settled {
                self.changes.push(Change::DeleteReplicaSet {
                    name: v.name.to_string(),
                });
            }
        }
    }

    fn reconcile_services(&mut self) {
        let Some(canary) = self.spec.canary() else {
            return;
        };
        if let (Some(svc), Some(stable)) = (canary.stable_service.as_deref(), self.stable) {
            self.point_service(svc, stable);
        }
        let canary_target = if self.prev.is_aborted() {
            self.stable
        } else {
            self.new
        };
        if let (Some(svc), Some(target)) = (canary.canary_service.as_deref(), canary_target) {
            self.point_service(svc, target);
        }
    }

    /// Switches a Service's selector to a ReplicaSet once it can take traffic: at least one
    /// available pod, and all of them when adopting a Service Sluice did not manage yet.
    fn point_service(&mut self, service: &str, target: usize) {
        let Some(Some(svc)) = self.obs.services.get(service) else {
            return;
        };
        let view = &self.rs[target];
        let current = svc
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .and_then(|s| s.get(POD_TEMPLATE_HASH_LABEL))
            .map_or("", String::as_str);
        if current == view.hash {
            return;
        }
        let managed = svc
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(MANAGED_BY_ROLLOUTS_ANNOTATION));
        let fully_available = view.spec != 0 && view.available != 0 && view.spec <= view.available;
        if (!managed && !fully_available) || view.available == 0 {
            return;
        }
        self.changes.push(Change::SetServiceSelector {
            service: service.to_string(),
            pod_template_hash: view.hash.to_string(),
            add_managed_by: !managed,
        });
        self.changes.push(Change::normal(
            st::SWITCH_SERVICE_REASON,
            format!(
                "Switched selector for service '{service}' from '{current}' to '{}'",
                view.hash
            ),
        ));
    }

    fn current_index(&self) -> i32 {
        self.prev.current_step_index.unwrap_or(0).max(0)
    }

    fn current_step(&self) -> Option<&'a CanaryStep> {
        usize::try_from(self.current_index())
            .ok()
            .and_then(|i| self.steps.get(i))
    }

    /// COMPAT §6 desired weight, from the status as observed.
    fn desired_weight(&self) -> i32 {
        let promoted = self.prev.promote_full.unwrap_or(false)
            || self
                .prev
                .stable_rs
                .as_deref()
                .unwrap_or_default()
                .is_empty()
            || self.prev.current_pod_hash == self.prev.stable_rs;
        if promoted {
            return 100;
        }
        if self.prev.is_aborted() {
            return 0;
        }
        let Ok(index) = usize::try_from(self.current_index()) else {
            return 100;
        };
        if index >= self.steps.len() {
            return 100;
        }
        self.steps[..=index]
            .iter()
            .rev()
            .find_map(|s| s.set_weight)
            .unwrap_or(0)
    }

    fn distinct_stable(&self, new: usize) -> Option<usize> {
        self.stable.filter(|&s| s != new)
    }

    fn others(&self, new: usize) -> Vec<usize> {
        (0..self.rs.len())
            .filter(|&i| i != new && Some(i) != self.stable)
            .collect()
    }

    fn targets(&self, new: usize) -> Targets {
        let others_spec = self.others(new).iter().map(|&i| self.rs[i].spec).sum();
        basic_canary_targets(&CanaryScaleInput {
            replicas: self.replicas,
            weight: self.desired_weight(),
            limits: self.limits,
            canary: Some(self.rs[new].state()),
            stable: self.distinct_stable(new).map(|s| self.rs[s].state()),
            others_spec,
        })
    }

    /// Scales canary and stable toward the current weight; once neither needs to change,
    /// drains the other ReplicaSets. Returns whether any replica count changed.
    fn reconcile_replica_sets(&mut self, new: usize) -> bool {
        let targets = self.targets(new);
        let mut moves: Vec<(usize, i32)> = vec![(new, targets.canary)];
        if let Some(stable) = self.distinct_stable(new) {
            moves.push((stable, targets.stable));
        }
        // Shrink before growing so the surge ceiling also holds between the two writes.
        moves.sort_by_key(|&(i, target)| target > self.rs[i].spec);
        let mut room = self.outside_room();
        let mut scaled = false;
        for (i, target) in moves {
            let target = self.fit_room(&mut room, i, target);
            scaled |= self.scale(i, target, true);
        }
        if scaled {
            return true;
        }
        let mut others = self.others(new);
        others.sort_by(|&a, &b| self.rs[b].revision.cmp(&self.rs[a].revision));
        let states: Vec<RsState> = others.iter().map(|&i| self.rs[i].state()).collect();
        let total_available = self.rs.iter().map(|v| v.available).sum();
        let specs = scale_down_others(
            &states,
            total_available,
            self.replicas,
            self.limits.max_unavailable,
        );
        for (&i, spec) in others.iter().zip(specs) {
            scaled |= self.scale(i, spec, false);
        }
        scaled
    }

    /// Room left under the surge ceiling (`replicas + maxSurge` pods) when pods outside the
    /// Rollout count against it (a Deployment being scaled down progressively); `None`
    /// when there are none and the replica math alone decides.
    fn outside_room(&self) -> Option<i32> {
        if self.obs.outside_pods <= 0 {
            return None;
        }
        let mine: i32 = self.rs.iter().filter(|v| !v.deleting).map(|v| v.spec).sum();
        Some((self.replicas + self.limits.max_surge - self.obs.outside_pods - mine).max(0))
    }

    /// Cuts a scale-up of ReplicaSet `i` to the `room` left; a scale-down adds to it.
    fn fit_room(&self, room: &mut Option<i32>, i: usize, target: i32) -> i32 {
        let Some(room) = room.as_mut() else {
            return target;
        };
        let from = self.rs[i].spec;
        if target <= from {
            *room += from - target;
            return target;
        }
        let grow = (target - from).min(*room);
        *room -= grow;
        from + grow
    }

    /// Emits a scale of ReplicaSet `i` to `target` if its spec (or, for canary/stable,
    /// its desired-replicas annotation) is stale. Returns whether the spec changes.
    fn scale(&mut self, i: usize, target: i32, sync_annotation: bool) -> bool {
        let view = &self.rs[i];
        let desired_text = self.replicas.to_string();
        let annotation_stale =
            annotation(view.rs, DESIRED_REPLICAS_ANNOTATION) != Some(desired_text.as_str());
        let size_changes = view.spec != target;
        let needed = size_changes || (sync_annotation && annotation_stale);
        if !needed {
            return false;
        }
        let mut annotations = MetadataPatch::default();
        if annotation_stale {
            annotations
                .set
                .insert(DESIRED_REPLICAS_ANNOTATION.to_string(), desired_text);
        }
        if target == 0 && annotation(view.rs, SCALE_DOWN_DEADLINE_ANNOTATION).is_some() {
            annotations
                .remove
                .insert(SCALE_DOWN_DEADLINE_ANNOTATION.to_string());
        }
        let (name, from, revision) = (view.name.to_string(), view.spec, view.revision);
        self.changes.push(Change::ScaleReplicaSet {
            name: name.clone(),
            from,
            replicas: target,
            annotations,
        });
        if size_changes {
            let direction = if target > from { "up" } else { "down" };
            self.changes.push(Change::normal(
                st::SCALING_REPLICA_SET_REASON,
                format!("Scaled {direction} ReplicaSet {name} (revision {revision}) from {from} to {target}"),
            ));
        }
        size_changes
    }

    fn canary_pause(&self) -> Option<&PauseCondition> {
        self.prev
            .pause_conditions()
            .iter()
            .find(|p| p.reason == PauseReason::CanaryPauseStep)
    }

    /// At a pause step: add the CanaryPauseStep condition once (unless the user already
    /// resumed it: controllerPause with no condition), and requeue for a timed pause.
    fn reconcile_pause_step(&mut self) {
        if self.spec.is_paused() || self.prev.promote_full.unwrap_or(false) {
            return;
        }
        let Some(pause) = self.current_step().and_then(|s| s.pause.as_ref()) else {
            return;
        };
        let Ok(duration) = pause.duration() else {
            return;
        };
        let start = match self.canary_pause() {
            Some(c) => c.start_time.0,
            None => {
                if !self.prev.controller_pause.unwrap_or(false) {
                    self.pause.add_canary_pause = true;
                    if let Some(d) = duration {
                        self.requeue_in(d);
                    }
                }
                return;
            }
        };
        if let Some(d) = duration {
            let end = start.as_millisecond() + i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
            let left = end - self.now.0.as_millisecond();
            if left > 0 {
                self.requeue_in(Duration::from_millis(u64::try_from(left).unwrap_or(0)));
            }
        }
    }

    fn requeue_in(&mut self, d: Duration) {
        self.requeue = Some(self.requeue.map_or(d, |r| r.min(d)));
    }

    fn completed_current_step(&self, new: usize) -> bool {
        if self.spec.is_paused() {
            return false;
        }
        let Some(step) = self.current_step() else {
            return false;
        };
        if let Some(pause) = &step.pause {
            let cond = self.canary_pause();
            if self.prev.controller_pause.unwrap_or(false) && cond.is_none() {
                return true;
            }
            return match (pause.duration(), cond) {
                (Ok(Some(d)), Some(c)) => {
                    let end = c.start_time.0.as_millisecond()
                        + i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
                    // `now` has second precision (status times do), so the expiry
                    // second itself counts as expired; otherwise a requeue at the
                    // expiry finds "0 ms left" and never fires again.
                    self.now.0.as_millisecond() >= end
                }
                _ => false,
            };
        }
        if step.set_weight.is_some() {
            return self.at_desired_counts(new);
        }
        if step.analysis.is_some() {
            return self.step_run_phase == Some(AnalysisPhase::Successful);
        }
        if step.experiment.is_some() {
            return self.experiment_phase == Some(AnalysisPhase::Successful);
        }
        false
    }

    /// setWeight is done when the canary has exactly its target available, the stable
    /// exactly its target created, and nothing else serves.
    fn at_desired_counts(&self, new: usize) -> bool {
        let Some(stable) = self.distinct_stable(new) else {
            return false;
        };
        let t = self.targets(new);
        let (c, s) = (&self.rs[new], &self.rs[stable]);
        self.progress_threshold_met(c, t.canary)
            && s.spec == t.stable
            && s.replicas == t.stable
            && self.others(new).iter().all(|&i| self.rs[i].available == 0)
    }

    /// Whether the canary has enough available pods for `desired`: all of them, or what
    /// `replicaProgressThreshold` accepts (`Percent` of desired, or a number of `Pods`).
    fn progress_threshold_met(&self, canary: &RsView, desired: i32) -> bool {
        let threshold = self
            .spec
            .canary()
            .and_then(|c| c.replica_progress_threshold.as_ref())
            .filter(|t| t.value >= 0);
        match threshold {
            None => canary.spec == desired && canary.available == desired,
            Some(t) if t.type_ == "Percent" => {
                desired == 0
                    || i64::from(canary.available) * 100 >= i64::from(t.value) * i64::from(desired)
            }
            Some(t) => canary.available >= t.value,
        }
    }

    /// Upstream's `shouldFullPromote`: why the canary should become the stable now.
    fn full_promotion_reason(&self, new: usize) -> Option<String> {
        let Some(stable) = self.stable else {
            return Some("Initial deploy".to_string());
        };
        if self.aborting() {
            return None;
        }
        let canary = &self.rs[new];
        if canary.available < self.replicas && !self.progress_threshold_met(canary, self.replicas) {
            return None;
        }
        if self.prev.promote_full.unwrap_or(false) {
            return Some("Full promotion requested".to_string());
        }
        if self.rollback_within_window() {
            return Some("Rollback within window".to_string());
        }
        if stable == new {
            return Some("Fast rollback".to_string());
        }
        let count = self.step_count();
        if count == 0 || self.prev.current_step_index == Some(count) {
            return Some(format!("Completed all {count} canary steps"));
        }
        None
    }

    /// The step-machine transition of this reconcile.
    fn advance(&mut self, status: &mut RolloutStatus, new: usize, revision: i64) {
        let count = self.step_count();
        let current_is_stable = self.stable == Some(new);
        if current_is_stable {
            status.promote_full = keep_bool(status.promote_full, false);
        }
        let within_window = self.rollback_within_window();
        if (self.prev.promote_full.unwrap_or(false) || within_window) && !current_is_stable {
            self.pause.clear = true;
            self.pause.remove_abort = true;
            if count > 0 {
                status.current_step_index = Some(count);
            }
        }
        if let Some(reason) = self.full_promotion_reason(new) {
            self.pause.clear = true;
            self.pause.remove_abort = true;
            status.promote_full = keep_bool(status.promote_full, false);
            status.current_step_index = (count > 0).then_some(count);
            let hash = self.rs[new].hash.to_string();
            if self.prev.stable_rs.as_deref() != Some(hash.as_str()) {
                self.changes.push(Change::normal(
                    st::ROLLOUT_COMPLETED_REASON,
                    format!("Rollout completed update to revision {revision} ({hash}): {reason}"),
                ));
                status.stable_rs = Some(hash);
            }
            return;
        }
        if self.aborting() {
            if count > 0 {
                status.current_step_index = Some(if current_is_stable { count } else { 0 });
            }
            return;
        }
        if self.completed_current_step(new) {
            let index = self.current_index();
            let step = self.current_step().map(step_string).unwrap_or_default();
            status.current_step_index = Some(index + 1);
            self.pause.remove_canary_pause = true;
            if let Some(c) = status.canary.as_mut() {
                c.current_step_analysis_run_status = None;
                c.current_experiment = None;
            }
            self.changes.push(Change::normal(
                st::ROLLOUT_STEP_COMPLETED_REASON,
                format!("Rollout step {}/{count} completed ({step})", index + 1),
            ));
        }
    }

    fn indefinite_step(&self) -> bool {
        let at_pause = self
            .current_step()
            .is_some_and(|s| s.pause.is_some() || s.analysis.is_some() || s.experiment.is_some());
        let paused_cond =
            condition(self.prev.conditions(), &Cond::Paused).is_some_and(|c| c.status == TRUE);
        at_pause || paused_cond
    }

    /// Common status fields, pause/abort resolution, conditions, phase, events, requeue.
    fn finish(mut self, mut status: RolloutStatus, revision: i64) -> Plan {
        self.end_stale_runs(&status);
        let ro = &self.obs.rollout;
        let generation = generation(ro).to_string();
        let spec_observed = self.prev.observed_generation.as_deref() == Some(generation.as_str());
        status.observed_generation = Some(generation);
        status.workload_observed_generation = None;
        status.replicas = Some(self.rs.iter().map(|v| v.replicas).sum());
        status.updated_replicas = Some(self.new.map_or(0, |n| self.rs[n].replicas));
        status.ready_replicas = Some(self.rs.iter().map(|v| v.ready).sum());
        status.available_replicas = Some(self.rs.iter().map(|v| v.available).sum());
        status.hpa_replicas = status.replicas;
        status.selector = self.spec.selector.as_ref().map(st::format_selector);

        // Conditions as upstream's separate pause-condition patch would have left them.
        // The working conditions: observed ones plus any this plan already set (new
        // ReplicaSet created/found), like upstream's intermediate status update.
        let mut baseline = status.conditions.take().unwrap_or_default();
        remove_condition(&mut baseline, &Cond::InvalidSpec);
        if spec_observed {
            self.pause_condition_bookkeeping(&mut baseline);
        }
        let mut conditions = baseline.clone();

        let counts_progressed = progressed(&self.prev, &status);
        let rs_name = self.new.map(|n| self.rs[n].name.to_string());
        let completed_update =
            status.stable_rs.is_some() && status.stable_rs == status.current_pod_hash;
        let currently_aborted = self.prev.is_aborted() && !self.pause.remove_abort;
        if self.spec.progress_deadline_abort()
            && self.pause.add_abort.is_none()
            && !currently_aborted
            && !completed_update
            && !counts_progressed
            && !self.indefinite_step()
            && self.timed_out(&baseline)
        {
            let msg = rs_name.as_deref().map_or_else(
                || format!("Rollout {:?} has timed out progressing.", self.name()),
                st::rs_timed_out_message,
            );
            self.changes
                .push(Change::warning(st::ROLLOUT_ABORTED_REASON, msg.clone()));
            self.pause.add_abort = Some(msg);
        }

        let aborted = self.resolve_pause_and_abort(&mut status);
        let is_paused = !status.pause_conditions().is_empty() || self.spec.is_paused();
        let healthy = self.rollout_healthy(&status, spec_observed);

        let mut became_unhealthy = false;
        if !is_paused && healthy {
            set_condition(
                &mut conditions,
                Cond::Healthy,
                TRUE,
                st::ROLLOUT_HEALTHY_REASON,
                st::ROLLOUT_HEALTHY_MESSAGE.into(),
                &self.now,
            );
        } else if condition(&baseline, &Cond::Healthy).is_some() {
            became_unhealthy = set_condition(
                &mut conditions,
                Cond::Healthy,
                FALSE,
                st::ROLLOUT_HEALTHY_REASON,
                st::ROLLOUT_NOT_HEALTHY_MESSAGE.into(),
                &self.now,
            );
        }
        if aborted {
            let mut message = st::aborted_message(revision);
            if let Some(detail) = &self.pause.add_abort {
                message = format!("{message}: {detail}");
            }
            if set_condition(
                &mut conditions,
                Cond::Progressing,
                FALSE,
                st::ROLLOUT_ABORTED_REASON,
                message.clone(),
                &self.now,
            ) {
                self.changes
                    .push(Change::warning(st::ROLLOUT_ABORTED_REASON, message));
            }
        } else if healthy {
            let msg = st::rs_completed_message(rs_name.as_deref().unwrap_or_default());
            set_condition(
                &mut conditions,
                Cond::Progressing,
                TRUE,
                st::NEW_RS_AVAILABLE_REASON,
                msg,
                &self.now,
            );
        } else if (counts_progressed || became_unhealthy) && !self.creating {
            let (reason, msg) = if completed_update && became_unhealthy {
                (
                    st::REPLICA_SET_NOT_AVAILABLE_REASON,
                    st::NOT_AVAILABLE_MESSAGE.to_string(),
                )
            } else {
                let msg = rs_name.as_deref().map_or_else(
                    || format!("Rollout {:?} is progressing.", self.name()),
                    st::rs_progressing_message,
                );
                (st::REPLICA_SET_UPDATED_REASON, msg)
            };
            // Progress always refreshes lastUpdateTime (the progress deadline counts from
            // it); lastTransitionTime stays while the condition stays True.
            let kept_transition = condition(&baseline, &Cond::Progressing)
                .filter(|c| c.status == TRUE)
                .map(|c| c.last_transition_time.clone());
            remove_condition(&mut conditions, &Cond::Progressing);
            set_condition(
                &mut conditions,
                Cond::Progressing,
                TRUE,
                reason,
                msg,
                &self.now,
            );
            if let (Some(t), Some(c)) = (kept_transition, conditions.last_mut()) {
                c.last_transition_time = t;
            }
        } else if !self.indefinite_step() && self.timed_out(&conditions) {
            let msg = rs_name.as_deref().map_or_else(
                || format!("Rollout {:?} has timed out progressing.", self.name()),
                st::rs_timed_out_message,
            );
            set_condition(
                &mut conditions,
                Cond::Progressing,
                FALSE,
                st::TIMED_OUT_REASON,
                msg,
                &self.now,
            );
        }

        let available = status.available_replicas.unwrap_or(0) >= self.replicas;
        if available {
            set_condition(
                &mut conditions,
                Cond::Available,
                TRUE,
                st::AVAILABLE_REASON,
                st::AVAILABLE_MESSAGE.into(),
                &self.now,
            );
        } else {
            set_condition(
                &mut conditions,
                Cond::Available,
                FALSE,
                st::AVAILABLE_REASON,
                st::NOT_AVAILABLE_MESSAGE.into(),
                &self.now,
            );
        }
        self.replica_failure(&mut conditions);
        if completed_update {
            set_condition(
                &mut conditions,
                Cond::Completed,
                TRUE,
                st::ROLLOUT_COMPLETED_REASON,
                st::ROLLOUT_COMPLETED_REASON.into(),
                &self.now,
            );
        } else if set_condition(
            &mut conditions,
            Cond::Completed,
            FALSE,
            st::ROLLOUT_COMPLETED_REASON,
            st::ROLLOUT_COMPLETED_REASON.into(),
            &self.now,
        ) {
            let hash = status.current_pod_hash.clone().unwrap_or_default();
            self.changes.push(Change::normal(
                st::ROLLOUT_NOT_COMPLETED_REASON,
                format!("Rollout not completed, started update to revision {revision} ({hash})"),
            ));
        }
        status.conditions = Some(conditions);

        let was_paused = !self.prev.pause_conditions().is_empty();
        let now_paused = !status.pause_conditions().is_empty();
        if was_paused != now_paused {
            if let Some(p) = status.pause_conditions().first() {
                let msg = format!("{} ({})", st::ROLLOUT_PAUSED_MESSAGE, p.reason);
                self.changes
                    .push(Change::normal(st::ROLLOUT_PAUSED_REASON, msg));
            } else if !aborted {
                self.changes.push(Change::normal(
                    st::ROLLOUT_RESUMED_REASON,
                    st::ROLLOUT_RESUMED_MESSAGE,
                ));
            }
        }

        let (phase, message) = st::phase(self.spec, &status);
        status.phase = Some(phase);
        // Upstream omits an empty message (Healthy); so do we.
        status.message = (!message.is_empty()).then_some(message);
        self.requeue_for_progress_deadline(&status, healthy, aborted);
        Plan {
            status,
            changes: self.changes,
            requeue_after: self.requeue,
        }
    }

    /// Upstream's `checkPausedConditions`: Progressing Unknown RolloutPaused/RolloutResumed
    /// when the pause state flips, RolloutRetry when an abort was lifted, and the Paused
    /// condition itself.
    fn pause_condition_bookkeeping(&self, conditions: &mut Vec<RolloutCondition>) {
        let prog = condition(conditions, &Cond::Progressing).cloned();
        let prog_paused = prog
            .as_ref()
            .is_some_and(|c| c.reason == st::ROLLOUT_PAUSED_REASON);
        let is_paused = !self.prev.pause_conditions().is_empty() || self.spec.is_paused();
        let abort_cond = prog
            .as_ref()
            .is_some_and(|c| c.reason == st::ROLLOUT_ABORTED_REASON);
        let completed =
            self.prev.stable_rs.is_some() && self.prev.stable_rs == self.prev.current_pod_hash;
        if is_paused != prog_paused && !abort_cond && !completed {
            let (reason, msg) = if is_paused {
                (st::ROLLOUT_PAUSED_REASON, st::ROLLOUT_PAUSED_MESSAGE)
            } else {
                (st::ROLLOUT_RESUMED_REASON, st::ROLLOUT_RESUMED_MESSAGE)
            };
            set_condition(
                conditions,
                Cond::Progressing,
                UNKNOWN,
                reason,
                msg.into(),
                &self.now,
            );
        }
        if !self.prev.is_aborted() && abort_cond {
            set_condition(
                conditions,
                Cond::Progressing,
                UNKNOWN,
                st::ROLLOUT_RETRY_REASON,
                st::ROLLOUT_RETRY_MESSAGE.into(),
                &self.now,
            );
        }
        let paused_true = condition(conditions, &Cond::Paused).is_some_and(|c| c.status == TRUE);
        if is_paused != paused_true && !abort_cond {
            let s = if is_paused { TRUE } else { FALSE };
            set_condition(
                conditions,
                Cond::Paused,
                s,
                st::ROLLOUT_PAUSED_REASON,
                st::ROLLOUT_PAUSED_MESSAGE.into(),
                &self.now,
            );
        }
    }

    /// Resolves the pause intent into `abort`, `abortedAt`, `pauseConditions` and
    /// `controllerPause`, keeping the observed values (including absent vs false) whenever
    /// nothing changes. Returns whether the Rollout is aborted.
    fn resolve_pause_and_abort(&self, status: &mut RolloutStatus) -> bool {
        let aborted =
            self.pause.add_abort.is_some() || (!self.pause.remove_abort && self.prev.is_aborted());
        status.abort = keep_bool(self.prev.abort, aborted);
        let mut pauses: Vec<PauseCondition> = Vec::new();
        let mut controller_pause = false;
        if aborted {
            status.aborted_at = Some(
                self.prev
                    .aborted_at
                    .clone()
                    .unwrap_or_else(|| self.now.clone()),
            );
        } else {
            status.aborted_at = None;
            if !self.pause.clear {
                controller_pause = self.prev.controller_pause.unwrap_or(false);
                pauses = self
                    .prev
                    .pause_conditions()
                    .iter()
                    .filter(|p| {
                        !(self.pause.remove_canary_pause
                            && p.reason == PauseReason::CanaryPauseStep)
                    })
                    .cloned()
                    .collect();
                let exists = self
                    .prev
                    .pause_conditions()
                    .iter()
                    .any(|p| p.reason == PauseReason::CanaryPauseStep);
                if self.pause.add_canary_pause && !exists {
                    pauses.push(PauseCondition {
                        reason: PauseReason::CanaryPauseStep,
                        start_time: self.now.clone(),
                    });
                    controller_pause = true;
                }
                for reason in &self.pause.add_reasons {
                    if !pauses.iter().any(|p| &p.reason == reason) {
                        pauses.push(PauseCondition {
                            reason: reason.clone(),
                            start_time: self.now.clone(),
                        });
                        controller_pause = true;
                    }
                }
                if pauses.is_empty() {
                    controller_pause = false;
                }
            }
        }
        if pauses.as_slice() != self.prev.pause_conditions() {
            status.pause_conditions = (!pauses.is_empty()).then_some(pauses);
        }
        status.controller_pause = keep_bool(self.prev.controller_pause, controller_pause);
        aborted
    }

    /// Upstream's `RolloutHealthy`: all replicas updated and available, steps done, canary is
    /// the stable, no old pods, and the spec generation already observed.
    fn rollout_healthy(&self, status: &RolloutStatus, spec_observed: bool) -> bool {
        let r = self.replicas;
        let count = self.step_count();
        let all_steps = count == 0 || status.current_step_index.is_none_or(|i| i == count);
        let stable_is_current = status.stable_rs.as_deref().is_some_and(|s| !s.is_empty())
            && status.stable_rs == status.current_pod_hash;
        status.updated_replicas == Some(r)
            && status.available_replicas == Some(r)
            && spec_observed
            && all_steps
            && stable_is_current
            && status.replicas == Some(r)
    }

    fn timed_out(&self, conditions: &[RolloutCondition]) -> bool {
        let Some(c) = condition(conditions, &Cond::Progressing) else {
            return false;
        };
        if c.reason == st::ROLLOUT_ABORTED_REASON || c.reason == st::ROLLOUT_PAUSED_REASON {
            return false;
        }
        if c.reason == st::TIMED_OUT_REASON {
            return true;
        }
        let deadline =
            c.last_update_time.0.as_second() + i64::from(self.spec.progress_deadline_seconds());
        deadline < self.now.0.as_second()
    }

    fn requeue_for_progress_deadline(
        &mut self,
        status: &RolloutStatus,
        healthy: bool,
        aborted: bool,
    ) {
        let Some(c) = condition(status.conditions(), &Cond::Progressing) else {
            return;
        };
        let paused = !status.pause_conditions().is_empty() || self.spec.is_paused();
        if healthy
            || c.reason == st::TIMED_OUT_REASON
            || paused
            || aborted
            || self.indefinite_step()
        {
            return;
        }
        let deadline =
            c.last_update_time.0.as_second() + i64::from(self.spec.progress_deadline_seconds());
        let left = deadline - self.now.0.as_second();
        self.requeue_in(Duration::from_secs(u64::try_from(left).unwrap_or(0) + 1));
    }

    fn replica_failure(&self, conditions: &mut Vec<RolloutCondition>) {
        let failure_of = |v: &RsView| {
            v.rs.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == "ReplicaFailure"))
                .cloned()
        };
        let found = self
            .new
            .and_then(|n| failure_of(&self.rs[n]))
            .or_else(|| self.rs.iter().find_map(failure_of));
        match found {
            Some(f) => {
                let t = f
                    .last_transition_time
                    .clone()
                    .unwrap_or_else(|| self.now.clone());
                remove_condition(conditions, &Cond::ReplicaFailure);
                conditions.push(RolloutCondition {
                    type_: Cond::ReplicaFailure,
                    status: f.status,
                    last_update_time: t.clone(),
                    last_transition_time: t,
                    reason: f.reason.unwrap_or_default(),
                    message: f.message.unwrap_or_default(),
                    observed_generation: None,
                });
            }
            None => remove_condition(conditions, &Cond::ReplicaFailure),
        }
    }
}

/// A pod counts as available once Ready for `min_ready` seconds and not being deleted.
fn pod_available(pod: &Pod, min_ready: i64, now: i64) -> bool {
    if pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| {
            c.status == "True"
                && (min_ready == 0
                    || c.last_transition_time
                        .as_ref()
                        .is_some_and(|t| t.0.as_second() + min_ready <= now))
        })
}

/// `Some(true)`/absent for a boolean status field, keeping the observed spelling (absent or
/// `false`) when the value does not change, so no merge patch rewrites it.
fn keep_bool(prev: Option<bool>, value: bool) -> Option<bool> {
    if prev.unwrap_or(false) == value {
        prev
    } else {
        value.then_some(true)
    }
}

/// Upstream's `RolloutProgressing` for canary: any replica progress or step/stable movement.
fn progressed(old: &RolloutStatus, new: &RolloutStatus) -> bool {
    let n = |v: Option<i32>| v.unwrap_or(0);
    let old_old = n(old.replicas) - n(old.updated_replicas);
    let new_old = n(new.replicas) - n(new.updated_replicas);
    let step_moved =
        matches!((old.current_step_index, new.current_step_index), (Some(a), Some(b)) if a != b);
    new.updated_replicas.unwrap_or(0) != n(old.updated_replicas)
        || new_old < old_old
        || n(new.ready_replicas) > n(old.ready_replicas)
        || n(new.available_replicas) > n(old.available_replicas)
        || new.stable_rs != old.stable_rs
        || step_moved
        || new.current_step_hash != old.current_step_hash
}

fn is_empty_metadata(m: &PodTemplateMetadata) -> bool {
    m.labels.as_ref().is_none_or(BTreeMap::is_empty)
        && m.annotations.as_ref().is_none_or(BTreeMap::is_empty)
}

/// Keys to set (desired values that differ) and to remove (previously injected, no longer
/// desired, still present).
fn diff_metadata(
    current: Option<&BTreeMap<String, String>>,
    injected: Option<&BTreeMap<String, String>>,
    desired: Option<&BTreeMap<String, String>>,
) -> MetadataPatch {
    let mut patch = MetadataPatch::default();
    for (k, v) in desired.into_iter().flatten() {
        if current.and_then(|c| c.get(k)) != Some(v) {
            patch.set.insert(k.clone(), v.clone());
        }
    }
    for k in injected.into_iter().flatten().map(|(k, _)| k) {
        let still_desired = desired.is_some_and(|d| d.contains_key(k));
        if !still_desired && current.is_some_and(|c| c.contains_key(k)) {
            patch.remove.insert(k.clone());
        }
    }
    patch
}

/// Upstream's `CanaryStepString`, used in RolloutStepCompleted events.
fn step_string(step: &CanaryStep) -> String {
    if let Some(w) = step.set_weight {
        return format!("setWeight: {w}");
    }
    if let Some(p) = &step.pause {
        return match &p.duration {
            Some(d) => match p.duration() {
                Ok(Some(dur)) => format!("pause: {}", go_duration(dur)),
                _ => format!("pause: {d:?}"),
            },
            None => "pause".to_string(),
        };
    }
    step.keys()
        .first()
        .copied()
        .unwrap_or("invalid")
        .to_string()
}

/// Go's `time.Duration.String()` for whole-second-or-coarser durations (`10s`, `1m30s`,
/// `1h0m0s`), which is what upstream prints for pause steps.
fn go_duration(d: Duration) -> String {
    let total = d.as_secs();
    let millis = d.subsec_millis();
    if total == 0 && millis == 0 {
        return "0s".to_string();
    }
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
    let secs = if millis > 0 {
        format!("{s}.{millis:03}").trim_end_matches('0').to_string() + "s"
    } else {
        format!("{s}s")
    };
    if h > 0 {
        format!("{h}h{m}m{secs}")
    } else if m > 0 {
        format!("{m}m{secs}")
    } else {
        secs
    }
}

mod runs;

#[cfg(test)]
mod tests;
