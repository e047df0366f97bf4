//! The canary step machine (without traffic routing): `plan(&Observed, now) -> Plan`.
//!
//! One call looks at the Rollout and its ReplicaSets and decides, in upstream's order:
//! which ReplicaSet is the canary (creating it if needed), whether the template or steps
//! changed (then only the status is reset), ephemeral metadata, revision-history cleanup,
//! Service selectors, replica counts toward the current `setWeight`, pause steps, and finally
//! the status: step index, promotion to stable, abort, conditions, phase and message.
//!
//! This file holds the entry points, the `Planner` every stage works on and `Planner::run`,
//! which calls the stages in that order. The blue/green strategy (`super::blue_green`) plans
//! on the same `Planner` with its own stages and reuses these shared ones (ReplicaSets,
//! revisions and history, restart, ephemeral metadata, pauses and abort, AnalysisRuns, and
//! the status, conditions and phase of `finish`). Each stage is an `impl Planner` block of its
//! own:
//! - `replica_sets`: finding or creating the canary's ReplicaSet, revisions, history cleanup.
//! - `restart`: `spec.restartAt`, evicting pods older than it.
//! - `metadata`: canaryMetadata/stableMetadata on pods, anti-affinity for new canaries.
//! - `services`: the canary and stable Services' selectors.
//! - `runs`: the AnalysisRuns and Experiments of analysis/experiment steps and background
//!   analysis.
//! - `scaling`: replica counts toward the current weight (the math is in [`super::replicas`]).
//! - `pause`: pause steps, pause conditions and the abort they resolve into.
//! - `steps`: the current step, when it is complete, the step index, promotion to stable.
//! - `status`: the status written at the end: counts, conditions, phase, progress deadline.

mod metadata;
mod pause;
mod replica_sets;
mod restart;
mod runs;
mod scaling;
mod services;
mod status;
mod steps;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sluice_api::common::{AnalysisPhase, POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION};
use sluice_api::k8s::time::{from_time, to_time};
use sluice_api::rollout::{
    CanaryStep, PauseReason, Rollout, RolloutConditionType as Cond, RolloutSpec, RolloutStatus,
};

use super::hash::step_hash;
use super::observed::Observed;
use super::plan::{Change, Plan};
use super::refusal;
use super::replicas::{Limits, RsState};
use super::status::{self as st, TRUE, condition, remove_condition, set_condition};
use super::validate::{InvalidSpec, validate};
use super::workload;
use sluice_api::k8s::hash::pod_template_hash;

pub use metadata::EPHEMERAL_METADATA_ANNOTATION;
pub(crate) use runs::{run_message, with_detail};
pub use services::MANAGED_BY_ROLLOUTS_ANNOTATION;
pub(crate) use status::keep_bool;

/// Decides what one reconcile of a Rollout should do (canary or blue/green). `now` is the reconcile time; it
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
        let mut plan = refusal::apply(observed, plan, &now);
        super::duration::track(observed, &mut plan.status, from_time(&now));
        st::set_summary_conditions(&mut plan.status, generation(rollout), &now);
        return plan;
    }
    let plan = plan_resolved(observed, prev, now.clone());
    let mut plan = refusal::apply(observed, plan, &now);
    super::duration::track(observed, &mut plan.status, from_time(&now));
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

pub(crate) fn generation(rollout: &Rollout) -> i64 {
    rollout.metadata.generation.unwrap_or(0)
}

/// A ReplicaSet and the numbers read from it once.
pub(crate) struct RsView<'a> {
    pub(crate) rs: &'a ReplicaSet,
    pub(crate) name: &'a str,
    pub(crate) hash: &'a str,
    pub(crate) spec: i32,
    pub(crate) available: i32,
    pub(crate) ready: i32,
    pub(crate) replicas: i32,
    pub(crate) revision: i64,
    pub(crate) deleting: bool,
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

    pub(crate) fn created(&self) -> Option<&Time> {
        self.rs.metadata.creation_timestamp.as_ref()
    }
}

pub(crate) fn annotation<'a>(rs: &'a ReplicaSet, key: &str) -> Option<&'a str> {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// Pending decisions about pause conditions and abort, resolved into the status at the end
/// (upstream's "pause context").
#[derive(Default)]
pub(crate) struct PauseIntent {
    pub(crate) add_canary_pause: bool,
    pub(crate) remove_canary_pause: bool,
    /// Blue/green: pause before the switch (`BlueGreenPause`), or end that pause.
    pub(crate) add_blue_green_pause: bool,
    pub(crate) remove_blue_green_pause: bool,
    pub(crate) clear: bool,
    pub(crate) add_abort: Option<String>,
    pub(crate) remove_abort: bool,
    /// Controller pauses for an Inconclusive AnalysisRun or Experiment.
    pub(crate) add_reasons: Vec<PauseReason>,
}

/// One reconcile in progress: what was observed (read once) and what the stages decided so
/// far. `new` and `stable` index `rs`; `finish` consumes it into the [`Plan`].
pub(crate) struct Planner<'a> {
    pub(crate) obs: &'a Observed,
    pub(crate) spec: &'a RolloutSpec,
    pub(crate) prev: RolloutStatus,
    pub(crate) now: Time,
    pub(crate) replicas: i32,
    pub(crate) limits: Limits,
    pub(crate) steps: &'a [CanaryStep],
    pub(crate) step_hash: String,
    pub(crate) rs: Vec<RsView<'a>>,
    pub(crate) new: Option<usize>,
    pub(crate) stable: Option<usize>,
    pub(crate) changes: Vec<Change>,
    pub(crate) requeue: Option<Duration>,
    pub(crate) pause: PauseIntent,
    /// This plan creates the canary: its Progressing condition says so (upstream writes it
    /// in a status update of its own before anything else can count as progress).
    pub(crate) creating: bool,
    /// Phase of the current step's AnalysisRun / Experiment as read this reconcile (the
    /// step completes when it is Successful).
    pub(crate) step_run_phase: Option<AnalysisPhase>,
    pub(crate) experiment_phase: Option<AnalysisPhase>,
    /// Runs and Experiments this plan already terminates or deletes (each is ended once).
    pub(crate) terminated_runs: BTreeSet<String>,
    pub(crate) terminated_experiments: BTreeSet<String>,
    /// The Rollout's traffic routing (validated), when it has one.
    pub(crate) routing: Option<super::traffic::Routing<'a>>,
    /// What the routed stage found this reconcile (routed canaries only).
    pub(crate) routed: Option<super::traffic::RoutedState>,
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
            routing: super::traffic::routing(&obs.rollout).ok().flatten(),
            routed: None,
        }
    }

    pub(crate) fn name(&self) -> &str {
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

    pub(crate) fn template(&self) -> &'a PodTemplateSpec {
        static EMPTY: PodTemplateSpec = PodTemplateSpec {
            metadata: None,
            spec: None,
        };
        self.spec.template.as_ref().unwrap_or(&EMPTY)
    }

    /// One reconcile: each stage adds changes and pause/abort intent, `finish` resolves them
    /// into the status. A blue/green Rollout goes on in `run_blue_green` once its ReplicaSet
    /// exists. A new update or a restart's evictions end the reconcile early: the
    /// counts they would act on are stale until the next one.
    fn run(mut self) -> Plan {
        if self.spec.replicas.is_none() {
            self.changes
                .push(Change::PatchRolloutSpecReplicas { replicas: 1 });
        }
        let desired_hash = pod_template_hash(self.template(), self.prev.collision_count);
        self.new = self.find_new(&desired_hash);
        self.stable = self.find_stable();
        let Some(new) = self.new else {
            return self.create_new_replica_set(desired_hash);
        };
        if self.spec.blue_green().is_some() {
            return self.run_blue_green(new);
        }

        let mut status = self.prev.clone();
        status.current_pod_hash = Some(self.rs[new].hash.to_string());
        status.current_step_hash = Some(self.step_hash.clone());
        // A Rollout switched from blue/green keeps nothing of that strategy's status
        // (upstream starts every reconcile's status afresh).
        status.blue_green = None;
        let revision = self.sync_revision(new);
        if self.update_started(new) {
            self.start_update(&mut status, new);
            return self.finish(status, revision);
        }
        if self.reconcile_restart(&mut status) {
            return self.finish(status, revision);
        }

        self.reconcile_ephemeral_metadata(new);
        self.cleanup_history();
        self.release_services();
        self.reconcile_services();
        self.reconcile_experiment(&mut status, new, revision);
        self.reconcile_analysis_runs(&mut status, new, revision);
        // An Inconclusive result pauses before anything scales (upstream returns early), and
        // while that pause stands the ReplicaSets stay as they are.
        let halted = self.spec.is_paused()
            || !self.pause.add_reasons.is_empty()
            || self.has_pause(&PauseReason::InconclusiveAnalysisRun);
        let scaled = if self.routing.is_some() {
            self.reconcile_routed(&mut status, new, halted)
        } else {
            !halted && self.reconcile_replica_sets(new)
        };
        if !scaled && self.pause.add_reasons.is_empty() {
            self.reconcile_pause_step();
        }
        self.advance(&mut status, new, revision);
        self.finish(status, revision)
    }

    pub(crate) fn requeue_in(&mut self, d: Duration) {
        self.requeue = Some(self.requeue.map_or(d, |r| r.min(d)));
    }
}
