//! The status a reconcile ends with: replica counts, the pause/abort resolution, the
//! Progressing, Healthy, Available, Completed and ReplicaFailure conditions, phase and
//! message, and the requeue for the progress deadline.

use std::time::Duration;

use sluice_api::k8s::conditions::transition_time;
use sluice_api::rollout::{RolloutCondition, RolloutConditionType as Cond, RolloutStatus};

use super::{Planner, RsView, annotation, generation};
use crate::rollout::plan::{Change, Plan};
use crate::rollout::status::{self as st, FALSE, TRUE, condition, remove_condition, set_condition};
use sluice_api::common::SCALE_DOWN_DEADLINE_ANNOTATION;

/// What the condition updates of `finish` read about this reconcile.
struct Outcome {
    /// Replica counts, the step or the stable moved since the observed status.
    progressed: bool,
    /// The canary is the stable.
    completed: bool,
    aborted: bool,
    healthy: bool,
    /// Healthy turned False in this reconcile.
    became_unhealthy: bool,
}

impl<'a> Planner<'a> {
    /// Resolves what the stages decided into the status to write, in upstream's order:
    /// counts, the pause-condition bookkeeping, a progress-deadline abort, pause and abort,
    /// the conditions, pause events, phase and message; then the requeue.
    pub(crate) fn finish(mut self, mut status: RolloutStatus, revision: i64) -> Plan {
        self.end_stale_runs(&status);
        let spec_observed = self.record_counts(&mut status);
        // The working conditions: observed ones plus any this plan already set (new
        // ReplicaSet created/found), like upstream's intermediate status update, as
        // upstream's separate pause-condition patch would have left them.
        let mut baseline = status.conditions.take().unwrap_or_default();
        remove_condition(&mut baseline, &Cond::InvalidSpec);
        if spec_observed {
            self.pause_condition_bookkeeping(&mut baseline);
        }
        let progressed = progressed(&self.prev, &status, self.spec.blue_green().is_some());
        let completed = status.stable_rs.is_some() && status.stable_rs == status.current_pod_hash;
        let healthy = self.rollout_healthy(&status, spec_observed);
        // A healthy blue/green Rollout waiting for its post-promotion verdict is not stuck.
        self.abort_past_progress_deadline(&baseline, progressed || completed || healthy);
        let aborted = self.resolve_pause_and_abort(&mut status);
        let paused = !status.pause_conditions().is_empty() || self.spec.is_paused();

        let mut conditions = baseline.clone();
        let became_unhealthy = self.set_healthy(&mut conditions, &baseline, healthy && !paused);
        let outcome = Outcome {
            progressed,
            completed,
            aborted,
            healthy,
            became_unhealthy,
        };
        self.set_progressing(&mut conditions, &baseline, &outcome, revision);
        self.set_available(&mut conditions, &status);
        self.replica_failure(&mut conditions);
        self.set_completed(&mut conditions, &status, completed);
        status.conditions = Some(conditions);
        self.pause_events(&status, aborted);

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

    /// The generation and replica counts as observed now. Returns whether the observed
    /// status had already seen this generation of the spec.
    fn record_counts(&self, status: &mut RolloutStatus) -> bool {
        let generation = generation(&self.obs.rollout).to_string();
        let spec_observed = self.prev.observed_generation.as_deref() == Some(generation.as_str());
        status.observed_generation = Some(generation);
        status.workload_observed_generation = None;
        status.replicas = Some(self.rs.iter().map(|v| v.replicas).sum());
        status.updated_replicas = Some(self.new.map_or(0, |n| self.rs[n].replicas));
        status.ready_replicas = Some(self.rs.iter().map(|v| v.ready).sum());
        status.available_replicas = Some(self.rs.iter().map(|v| v.available).sum());
        status.hpa_replicas = status.replicas;
        status.selector = self.spec.selector.as_ref().map(st::format_selector);
        if self.spec.blue_green().is_some() {
            self.count_active_replica_set(status);
        }
        spec_observed
    }

    /// `progressDeadlineAbort`: an update that has not moved (`moved`: counts, step or stable
    /// changed, or it is complete) within the deadline is aborted, unless it waits at a
    /// pause, analysis or experiment step.
    fn abort_past_progress_deadline(&mut self, conditions: &[RolloutCondition], moved: bool) {
        if !self.spec.progress_deadline_abort()
            || self.aborting()
            || moved
            || self.indefinite_step()
            || self.waiting_for_scale_down()
            || !self.timed_out(conditions)
        {
            return;
        }
        let message = self.timed_out_message();
        self.changes
            .push(Change::warning(st::ROLLOUT_ABORTED_REASON, message.clone()));
        self.pause.add_abort = Some(message);
    }

    /// Healthy is True while `healthy`; otherwise False, once it exists. Returns whether it
    /// turned False now.
    fn set_healthy(
        &self,
        conditions: &mut Vec<RolloutCondition>,
        baseline: &[RolloutCondition],
        healthy: bool,
    ) -> bool {
        if healthy {
            set_condition(
                conditions,
                Cond::Healthy,
                TRUE,
                st::ROLLOUT_HEALTHY_REASON,
                st::ROLLOUT_HEALTHY_MESSAGE.into(),
                &self.now,
            );
            return false;
        }
        condition(baseline, &Cond::Healthy).is_some()
            && set_condition(
                conditions,
                Cond::Healthy,
                FALSE,
                st::ROLLOUT_HEALTHY_REASON,
                st::ROLLOUT_NOT_HEALTHY_MESSAGE.into(),
                &self.now,
            )
    }

    /// Progressing, from the first that holds: aborted (False, with an event the first
    /// time), the new ReplicaSet available (True), progress (True, see `record_progress`),
    /// or past the deadline (False, TimedOut). Otherwise it stays as it is.
    fn set_progressing(
        &mut self,
        conditions: &mut Vec<RolloutCondition>,
        baseline: &[RolloutCondition],
        outcome: &Outcome,
        revision: i64,
    ) {
        if outcome.aborted {
            let mut message = st::aborted_message(revision);
            if let Some(detail) = &self.pause.add_abort {
                message = format!("{message}: {detail}");
            }
            if set_condition(
                conditions,
                Cond::Progressing,
                FALSE,
                st::ROLLOUT_ABORTED_REASON,
                message.clone(),
                &self.now,
            ) {
                self.changes
                    .push(Change::warning(st::ROLLOUT_ABORTED_REASON, message));
            }
        } else if outcome.healthy {
            set_condition(
                conditions,
                Cond::Progressing,
                TRUE,
                st::NEW_RS_AVAILABLE_REASON,
                st::rs_completed_message(self.new_name().unwrap_or_default()),
                &self.now,
            );
        } else if (outcome.progressed || outcome.became_unhealthy) && !self.creating {
            let lost_availability = outcome.completed && outcome.became_unhealthy;
            self.record_progress(conditions, baseline, lost_availability);
        } else if !self.indefinite_step()
            && !self.waiting_for_scale_down()
            && self.timed_out(conditions)
        {
            set_condition(
                conditions,
                Cond::Progressing,
                FALSE,
                st::TIMED_OUT_REASON,
                self.timed_out_message(),
                &self.now,
            );
        }
    }

    /// Progressing True, ReplicaSetUpdated (or ReplicaSetNotAvailable for a completed update
    /// that lost availability). Progress always refreshes lastUpdateTime (the progress
    /// deadline counts from it); lastTransitionTime stays while the condition stays True.
    fn record_progress(
        &self,
        conditions: &mut Vec<RolloutCondition>,
        baseline: &[RolloutCondition],
        lost_availability: bool,
    ) {
        let (reason, message) = if lost_availability {
            (
                st::REPLICA_SET_NOT_AVAILABLE_REASON,
                st::NOT_AVAILABLE_MESSAGE.to_string(),
            )
        } else {
            let message = self.new_name().map_or_else(
                || format!("Rollout {:?} is progressing.", self.name()),
                st::rs_progressing_message,
            );
            (st::REPLICA_SET_UPDATED_REASON, message)
        };
        // The transition time is judged against the conditions this reconcile started from.
        let since = transition_time(baseline, &Cond::Progressing, TRUE, self.now.clone());
        remove_condition(conditions, &Cond::Progressing);
        set_condition(
            conditions,
            Cond::Progressing,
            TRUE,
            reason,
            message,
            &self.now,
        );
        if let Some(c) = conditions.last_mut() {
            c.last_transition_time = since;
        }
    }

    /// Available: canary, at least `replicas` pods available over all ReplicaSets; blue/green,
    /// the ReplicaSet the active Service selects is saturated.
    fn set_available(&self, conditions: &mut Vec<RolloutCondition>, status: &RolloutStatus) {
        let minimum = match self.spec.blue_green() {
            Some(_) => self.active_saturated(status),
            None => status.available_replicas.unwrap_or(0) >= self.replicas,
        };
        let (available, message) = if minimum {
            (TRUE, st::AVAILABLE_MESSAGE)
        } else {
            (FALSE, st::NOT_AVAILABLE_MESSAGE)
        };
        set_condition(
            conditions,
            Cond::Available,
            available,
            st::AVAILABLE_REASON,
            message.into(),
            &self.now,
        );
    }

    /// Completed is True once the canary is the stable; its turning False (an update
    /// started) is announced with upstream's RolloutNotCompleted event.
    fn set_completed(
        &mut self,
        conditions: &mut Vec<RolloutCondition>,
        status: &RolloutStatus,
        completed: bool,
    ) {
        let value = if completed { TRUE } else { FALSE };
        let changed = set_condition(
            conditions,
            Cond::Completed,
            value,
            st::ROLLOUT_COMPLETED_REASON,
            st::ROLLOUT_COMPLETED_REASON.into(),
            &self.now,
        );
        if changed && !completed {
            // Upstream notices the new template one reconcile before it creates the new
            // ReplicaSet: the message names the revision the Rollout had then, and the Event
            // comes before the creation's.
            let previous: i64 = self
                .rollout_revision()
                .and_then(|r| r.parse().ok())
                .unwrap_or(0);
            let hash = status.current_pod_hash.as_deref().unwrap_or_default();
            let event = Change::normal(
                st::ROLLOUT_NOT_COMPLETED_REASON,
                format!("Rollout not completed, started update to revision {previous} ({hash})"),
            );
            let at = self
                .changes
                .iter()
                .position(|c| matches!(c, Change::CreateReplicaSet(_)))
                .unwrap_or(self.changes.len());
            self.changes.insert(at, event);
        }
    }

    fn new_name(&self) -> Option<&'a str> {
        self.new.map(|n| self.rs[n].name)
    }

    fn timed_out_message(&self) -> String {
        self.new_name().map_or_else(
            || format!("Rollout {:?} has timed out progressing.", self.name()),
            st::rs_timed_out_message,
        )
    }

    /// Upstream's `RolloutHealthy`: all replicas updated and available, steps done, canary is
    /// the stable, no old pods, and the spec generation already observed (blue/green: both
    /// Services select the current ReplicaSet instead of the step conditions).
    fn rollout_healthy(&self, status: &RolloutStatus, spec_observed: bool) -> bool {
        let r = self.replicas;
        if self.spec.blue_green().is_some() {
            return status.updated_replicas == Some(r)
                && status.available_replicas == Some(r)
                && spec_observed
                && self.services_on_current(status);
        }
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

    /// Upstream's `isWaitingForReplicaSetScaleDown`: an old ReplicaSet still waits out its
    /// `scale-down-deadline`; that wait is no lack of progress.
    fn waiting_for_scale_down(&self) -> bool {
        self.rs.iter().enumerate().any(|(i, v)| {
            Some(i) != self.new
                && Some(i) != self.stable
                && annotation(v.rs, SCALE_DOWN_DEADLINE_ANNOTATION).is_some_and(|t| !t.is_empty())
        })
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

/// `Some(true)`/absent for a boolean status field, keeping the observed spelling (absent or
/// `false`) when the value does not change, so no merge patch rewrites it.
pub(crate) fn keep_bool(prev: Option<bool>, value: bool) -> Option<bool> {
    if prev.unwrap_or(false) == value {
        prev
    } else {
        value.then_some(true)
    }
}

/// Upstream's `RolloutProgressing`: any replica progress, or the strategy's own movement (a
/// canary's step or stable; a blue/green Service selector).
fn progressed(old: &RolloutStatus, new: &RolloutStatus, blue_green: bool) -> bool {
    let n = |v: Option<i32>| v.unwrap_or(0);
    let old_old = n(old.replicas) - n(old.updated_replicas);
    let new_old = n(new.replicas) - n(new.updated_replicas);
    let replicas_moved = new.updated_replicas.unwrap_or(0) != n(old.updated_replicas)
        || new_old < old_old
        || n(new.ready_replicas) > n(old.ready_replicas)
        || n(new.available_replicas) > n(old.available_replicas);
    if blue_green {
        let selectors = |s: &RolloutStatus| {
            let b = s.blue_green.clone().unwrap_or_default();
            (b.active_selector, b.preview_selector)
        };
        return replicas_moved || selectors(old) != selectors(new);
    }
    let step_moved =
        matches!((old.current_step_index, new.current_step_index), (Some(a), Some(b)) if a != b);
    replicas_moved
        || new.stable_rs != old.stable_rs
        || step_moved
        || new.current_step_hash != old.current_step_hash
}
