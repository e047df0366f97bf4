//! Pause steps, the pause conditions upstream keeps beside them, and abort: decided during
//! the reconcile as a `PauseIntent`, resolved into the status by `finish`.

use std::time::Duration;

use sluice_api::rollout::{
    PauseCondition, PauseReason, RolloutCondition, RolloutConditionType as Cond, RolloutStatus,
};

use super::Planner;
use super::status::keep_bool;
use crate::rollout::plan::Change;
use crate::rollout::status::{self as st, FALSE, TRUE, UNKNOWN, condition, set_condition};

impl<'a> Planner<'a> {
    pub(super) fn canary_pause(&self) -> Option<&PauseCondition> {
        self.prev
            .pause_conditions()
            .iter()
            .find(|p| p.reason == PauseReason::CanaryPauseStep)
    }

    pub(crate) fn has_pause(&self, reason: &PauseReason) -> bool {
        self.prev
            .pause_conditions()
            .iter()
            .any(|p| &p.reason == reason)
    }

    /// Aborted now: observed abort not being lifted, or an abort added by this plan.
    pub(crate) fn aborting(&self) -> bool {
        self.pause.add_abort.is_some() || (self.prev.is_aborted() && !self.pause.remove_abort)
    }

    /// Aborts with `message` unless something earlier in this reconcile already did: the
    /// first failure found names the abort.
    pub(crate) fn abort_with(&mut self, message: String) {
        if self.pause.add_abort.is_none() {
            self.pause.add_abort = Some(message);
        }
    }

    /// At a pause step: add the CanaryPauseStep condition once (unless the user already
    /// resumed it: controllerPause with no condition), and requeue for a timed pause.
    pub(super) fn reconcile_pause_step(&mut self) {
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

    /// Upstream's `checkPausedConditions`: Progressing Unknown RolloutPaused/RolloutResumed
    /// when the pause state flips, RolloutRetry when an abort was lifted, and the Paused
    /// condition itself.
    pub(super) fn pause_condition_bookkeeping(&self, conditions: &mut Vec<RolloutCondition>) {
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
    pub(super) fn resolve_pause_and_abort(&self, status: &mut RolloutStatus) -> bool {
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
                let removed = |reason: &PauseReason| {
                    (self.pause.remove_canary_pause && *reason == PauseReason::CanaryPauseStep)
                        || (self.pause.remove_blue_green_pause
                            && *reason == PauseReason::BlueGreenPause)
                };
                pauses = self
                    .prev
                    .pause_conditions()
                    .iter()
                    .filter(|p| !removed(&p.reason))
                    .cloned()
                    .collect();
                let added = [
                    (self.pause.add_canary_pause, PauseReason::CanaryPauseStep),
                    (self.pause.add_blue_green_pause, PauseReason::BlueGreenPause),
                ];
                for (add, reason) in added {
                    if add && !self.has_pause(&reason) {
                        pauses.push(PauseCondition {
                            reason,
                            start_time: self.now.clone(),
                        });
                        controller_pause = true;
                    }
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

    /// RolloutPaused when pause conditions appear, RolloutResumed when they go (unless an
    /// abort removed them: the abort has its own event).
    pub(super) fn pause_events(&mut self, status: &RolloutStatus, aborted: bool) {
        let was_paused = !self.prev.pause_conditions().is_empty();
        let now_paused = !status.pause_conditions().is_empty();
        if was_paused == now_paused {
            return;
        }
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
}
