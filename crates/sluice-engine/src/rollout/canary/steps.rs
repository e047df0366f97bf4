//! The step machine proper: which step is current, when it is complete, and the one
//! transition of the step index (or promotion to stable) a reconcile makes.

use std::time::Duration;

use sluice_api::common::AnalysisPhase;
use sluice_api::rollout::{CanaryStep, RolloutConditionType as Cond, RolloutStatus};

use super::Planner;
use super::status::keep_bool;
use crate::rollout::plan::Change;
use crate::rollout::status::{self as st, TRUE, condition, set_condition};

impl<'a> Planner<'a> {
    pub(crate) fn current_index(&self) -> i32 {
        self.prev.current_step_index.unwrap_or(0).max(0)
    }

    pub(super) fn current_step(&self) -> Option<&'a CanaryStep> {
        usize::try_from(self.current_index())
            .ok()
            .and_then(|i| self.steps.get(i))
    }

    /// `status.currentStepHash` for this strategy: the canary steps' hash; none for
    /// blue/green (upstream writes no step hash there).
    pub(super) fn status_step_hash(&self) -> Option<String> {
        self.spec
            .blue_green()
            .is_none()
            .then(|| self.step_hash.clone())
    }

    /// The template or the steps changed since the status was written: a new update.
    pub(super) fn update_started(&self, new: usize) -> bool {
        self.prev.current_pod_hash.as_deref() != Some(self.rs[new].hash)
            || self.prev.current_step_hash.as_deref() != Some(self.step_hash.as_str())
    }

    /// An update to an existing ReplicaSet begins: the status starts over (see
    /// `reset_for_update`) and, when there is no Progressing condition yet, one says which
    /// ReplicaSet was found.
    pub(crate) fn start_update(&mut self, status: &mut RolloutStatus, new: usize) {
        self.reset_for_update(status);
        if condition(self.prev.conditions(), &Cond::Progressing).is_some() {
            return;
        }
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

    /// The desired template changed (or the steps did): a new update starts. Pauses, abort
    /// and promoteFull are cleared and the steps start over — unless the template went back
    /// to the stable ReplicaSet's, which skips every step (rollback fast-track).
    pub(super) fn reset_for_update(&mut self, status: &mut RolloutStatus) {
        self.pause.clear = true;
        self.pause.remove_abort = true;
        status.promote_full = keep_bool(status.promote_full, false);
        if let Some(c) = status.canary.as_mut() {
            c.current_step_analysis_run_status = None;
            c.current_background_analysis_run_status = None;
            c.current_experiment = None;
        }
        if let Some(b) = status.blue_green.as_mut() {
            b.pre_promotion_analysis_run_status = None;
            b.post_promotion_analysis_run_status = None;
            b.scale_up_preview_check_point = None;
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
    pub(crate) fn rollback_within_window(&self) -> bool {
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
        if step.set_weight.is_some()
            || step.set_canary_scale.is_some()
            || step.set_header_route.is_some()
            || step.set_mirror_route.is_some()
        {
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
        // A routed canary becomes the stable only once the routers read back all of the
        // traffic on it.
        let routed_ready = self.routed.is_none_or(|r| r.verified && r.at_weight);
        if self.prev.promote_full.unwrap_or(false) {
            return routed_ready.then(|| "Full promotion requested".to_string());
        }
        if self.rollback_within_window() {
            return Some("Rollback within window".to_string());
        }
        if stable == new {
            return Some("Fast rollback".to_string());
        }
        let count = self.step_count();
        if count == 0 || self.prev.current_step_index == Some(count) {
            return routed_ready.then(|| format!("Completed all {count} canary steps"));
        }
        None
    }

    /// The step-machine transition of this reconcile.
    pub(super) fn advance(&mut self, status: &mut RolloutStatus, new: usize, revision: i64) {
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

    /// Waiting on something that takes as long as it takes: a pause, analysis or experiment
    /// step, a pause condition, or (blue/green) a promotion analysis still measuring. Such a
    /// wait is no lack of progress.
    pub(crate) fn indefinite_step(&self) -> bool {
        let at_pause = self
            .current_step()
            .is_some_and(|s| s.pause.is_some() || s.analysis.is_some() || s.experiment.is_some());
        let paused_cond =
            condition(self.prev.conditions(), &Cond::Paused).is_some_and(|c| c.status == TRUE);
        at_pause || paused_cond || self.promotion_analysis_running()
    }
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
