//! The pause before the switch (upstream `reconcileBlueGreenPause`, `CompletedBlueGreenPause`):
//! with `autoPromotionEnabled: false` the Rollout waits in `BlueGreenPause` until a person
//! promotes it; with `autoPromotionSeconds` it waits that long; otherwise it switches as soon
//! as the new ReplicaSet is ready (and the pre-promotion analysis passed).

use std::time::Duration;

use sluice_api::common::AnalysisPhase;
use sluice_api::rollout::PauseReason;

use crate::rollout::analysis_runs::phase_of;
use crate::rollout::canary::Planner;
use crate::rollout::scale_down::Deadline;

impl<'a> Planner<'a> {
    /// Upstream's `haltProgress`: the user paused the Rollout, or an Inconclusive analysis
    /// waits for a person. Nothing is switched meanwhile.
    pub(super) fn halted(&self) -> bool {
        self.spec.is_paused() || self.has_pause(&PauseReason::InconclusiveAnalysisRun)
    }

    /// Upstream's `isFastRollback`: the template went back to the stable ReplicaSet, or to an
    /// older one that is still within its scale-down delay or the rollback window. Such an
    /// update skips the pause and the analyses.
    pub(super) fn fast_rollback(&self, new: usize) -> bool {
        let Some(stable) = self.stable else {
            return false;
        };
        if stable == new {
            return true;
        }
        let older = match (self.rs[new].created(), self.rs[stable].created()) {
            (Some(n), Some(s)) => n < s,
            _ => false,
        };
        older && (self.rollback_within_window() || self.within_scale_down_delay(new))
    }

    /// The ReplicaSet had a scale-down deadline still ahead when this reconcile began.
    fn within_scale_down_delay(&self, i: usize) -> bool {
        matches!(self.deadline(i), Deadline::Ahead(_))
    }

    /// Upstream's `isBlueGreenFastTracked`: no pause before the switch for a fast rollback,
    /// a full promotion, a first deploy (the active Service selects no ReplicaSet yet), or
    /// when the active Service already selects the new ReplicaSet.
    pub(super) fn fast_tracked(&self, new: usize) -> bool {
        let active = self.observed_selector(&self.blue_green().active_service);
        self.fast_rollback(new)
            || self.prev.promote_full.unwrap_or(false)
            || active.is_none_or(|h| h == self.rs[new].hash)
    }

    /// Whether the controller pauses before the switch at all.
    fn needs_controller_pause(&self) -> bool {
        let bg = self.blue_green();
        !bg.auto_promotion_enabled() || bg.auto_promotion_seconds.unwrap_or(0) > 0
    }

    /// The pre-promotion analysis (if any) of this update has succeeded.
    pub(super) fn completed_pre_promotion_analysis(&self) -> bool {
        self.blue_green().pre_promotion_analysis.is_none()
            || self
                .current_promotion_run(false)
                .is_some_and(|r| phase_of(r) == AnalysisPhase::Successful)
    }

    /// Upstream's `CompletedBlueGreenPause`: the pause before the switch is over (a person
    /// promoted, `autoPromotionSeconds` passed, or there is none to take), and was not begun
    /// in this very reconcile.
    pub(super) fn completed_blue_green_pause(&self) -> bool {
        if self.pause.add_blue_green_pause || !self.pause.add_reasons.is_empty() {
            return false;
        }
        let checkpoint = self
            .prev
            .blue_green
            .as_ref()
            .and_then(|b| b.scale_up_preview_check_point);
        if checkpoint == Some(true) {
            return true;
        }
        let bg = self.blue_green();
        let cond = self
            .prev
            .pause_conditions()
            .iter()
            .find(|p| p.reason == PauseReason::BlueGreenPause);
        if bg.auto_promotion_enabled() {
            let seconds = bg.auto_promotion_seconds.unwrap_or(0);
            return match cond {
                _ if seconds <= 0 => true,
                // `now` has second precision: the deadline's second itself counts as passed.
                Some(c) => {
                    self.now.0.as_second() >= c.start_time.0.as_second() + i64::from(seconds)
                }
                None => false,
            };
        }
        // Manual promotion: a person removed the pause condition the controller set.
        self.prev.controller_pause.unwrap_or(false) && cond.is_none()
    }

    /// Adds, keeps or ends `BlueGreenPause` once the new ReplicaSet is ready to be switched.
    pub(super) fn reconcile_blue_green_pause(&mut self, new: usize) {
        if self.aborting() || !self.ready_for_pause(new) || self.halted() {
            return;
        }
        let checkpoint = self
            .prev
            .blue_green
            .as_ref()
            .and_then(|b| b.scale_up_preview_check_point)
            == Some(true);
        if self.fast_tracked(new) || checkpoint || !self.needs_controller_pause() {
            self.pause.remove_blue_green_pause = true;
            return;
        }
        if !self.completed_pre_promotion_analysis() {
            return;
        }
        let started = self
            .prev
            .pause_conditions()
            .iter()
            .find(|p| p.reason == PauseReason::BlueGreenPause)
            .map(|p| p.start_time.0.as_second());
        match started {
            Some(start) => {
                if self.completed_blue_green_pause() {
                    self.pause.remove_blue_green_pause = true;
                    return;
                }
                let seconds = self.blue_green().auto_promotion_seconds.unwrap_or(0);
                if self.blue_green().auto_promotion_enabled() && seconds > 0 {
                    let left = start + i64::from(seconds) - self.now.0.as_second();
                    self.requeue_in(Duration::from_secs(u64::try_from(left).unwrap_or(0)));
                }
            }
            // No pause condition while controllerPause is set: a person already promoted.
            None if !self.prev.controller_pause.unwrap_or(false) => {
                self.pause.add_blue_green_pause = true;
                if let Some(seconds) = self
                    .blue_green()
                    .auto_promotion_seconds
                    .filter(|s| *s > 0 && self.blue_green().auto_promotion_enabled())
                {
                    self.requeue_in(Duration::from_secs(u64::try_from(seconds).unwrap_or(0)));
                }
            }
            None => {}
        }
    }
}
