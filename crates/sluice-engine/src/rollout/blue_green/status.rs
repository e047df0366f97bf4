//! Blue/green's share of the status (upstream `syncRolloutStatusBlueGreen`): promotion to
//! stable once the active Service selects the new ReplicaSet (and the post-promotion analysis
//! passed), the preview scale-up checkpoint, and the counts read from the ReplicaSet the active
//! Service selects. `finish` (shared with the canary) calls the `pub(crate)` ones.

use sluice_api::common::AnalysisPhase;
use sluice_api::rollout::{BlueGreenStatus, RolloutStatus};

use crate::rollout::analysis_runs::phase_of;
use crate::rollout::canary::{Planner, keep_bool};
use crate::rollout::plan::Change;
use crate::rollout::status as st;

impl<'a> Planner<'a> {
    /// Marks the new ReplicaSet stable when the promotion is complete (upstream
    /// `shouldFullPromote` + `promoteStable`), else keeps the preview scale-up checkpoint.
    /// `update_started`: this reconcile only reset the status for a new update.
    pub(super) fn promote(
        &mut self,
        status: &mut RolloutStatus,
        new: usize,
        revision: i64,
        update_started: bool,
    ) {
        let hash = self.rs[new].hash.to_string();
        if self.prev.promote_full.unwrap_or(false) || self.rollback_within_window() {
            self.pause.clear = true;
            self.pause.remove_abort = true;
        }
        let promote_full =
            status.stable_rs.as_deref() != Some(hash.as_str()) && status.promote_full == Some(true);
        status.promote_full = keep_bool(self.prev.promote_full, promote_full);
        let active = status
            .blue_green
            .as_ref()
            .and_then(|b| b.active_selector.clone());
        let checkpoint = match self.promotion_reason(new, active.as_deref()) {
            Some(reason) => {
                self.pause.clear = true;
                self.pause.remove_abort = true;
                status.promote_full = keep_bool(self.prev.promote_full, false);
                if self.prev.stable_rs.as_deref() != Some(hash.as_str()) {
                    self.changes.push(Change::normal(
                        st::ROLLOUT_COMPLETED_REASON,
                        format!(
                            "Rollout completed update to revision {revision} ({hash}): {reason}"
                        ),
                    ));
                    status.stable_rs = Some(hash);
                }
                false
            }
            None => !update_started && self.scale_up_preview_check_point(new),
        };
        let b = status
            .blue_green
            .get_or_insert_with(BlueGreenStatus::default);
        b.scale_up_preview_check_point = keep_bool(
            self.prev
                .blue_green
                .as_ref()
                .and_then(|b| b.scale_up_preview_check_point),
            checkpoint,
        );
    }

    /// Upstream's `shouldFullPromote` for blue/green: why the new ReplicaSet becomes the
    /// stable one now, given the hash the active Service selects after this plan.
    fn promotion_reason(&self, new: usize, active: Option<&str>) -> Option<String> {
        let reason = |r: &str| Some(r.to_string());
        let Some(active) = active.filter(|a| !a.is_empty()) else {
            // No stable yet, or an active Service that selects nothing: the new ReplicaSet
            // becomes the stable one first, and then the active Service follows it.
            return reason("Initial deploy");
        };
        if self.stable.is_none() {
            return reason("Initial deploy");
        }
        if active != self.rs[new].hash {
            return None;
        }
        if self.prev.promote_full.unwrap_or(false) {
            return reason("Full promotion requested");
        }
        if self.fast_rollback(new) {
            return if self.rollback_within_window() {
                reason("Rollback within window")
            } else {
                reason("Fast rollback")
            };
        }
        if self.aborting() {
            return None;
        }
        if self.blue_green().post_promotion_analysis.is_some() {
            let passed = self
                .current_promotion_run(true)
                .is_some_and(|r| phase_of(r) == AnalysisPhase::Successful);
            if !passed {
                return None;
            }
        }
        reason("Completed blue-green update")
    }

    /// Upstream's `calculateScaleUpPreviewCheckPoint`: with `previewReplicaCount`, a one-way
    /// switch set once the preview is at its count, the pre-promotion analysis passed and the
    /// pause is over; from then on the new ReplicaSet grows to `replicas` before the switch.
    fn scale_up_preview_check_point(&self, new: usize) -> bool {
        let Some(count) = self.blue_green().preview_replica_count else {
            return false;
        };
        let before = self
            .prev
            .blue_green
            .as_ref()
            .and_then(|b| b.scale_up_preview_check_point);
        if before == Some(true) {
            return true;
        }
        self.completed_pre_promotion_analysis()
            && self.completed_blue_green_pause()
            && self.rs[new].available == count
    }

    /// The ReplicaSet the active Service selects once this plan is applied.
    fn active_replica_set(&self, status: &RolloutStatus) -> Option<usize> {
        let hash = status
            .blue_green
            .as_ref()
            .and_then(|b| b.active_selector.as_deref())?;
        self.rs.iter().position(|v| v.hash == hash)
    }

    /// Counts upstream takes from the active ReplicaSet: `availableReplicas`, `readyReplicas`,
    /// `HPAReplicas` and the scale selector (with its hash, so an HPA scales on the pods that
    /// take the traffic). Without an active ReplicaSet, the sums and the Rollout's selector
    /// stay.
    pub(crate) fn count_active_replica_set(&self, status: &mut RolloutStatus) {
        let Some(active) = self.active_replica_set(status) else {
            return;
        };
        let v = &self.rs[active];
        status.available_replicas = Some(v.available);
        status.ready_replicas = Some(v.ready);
        status.hpa_replicas = Some(v.replicas);
        status.selector = v.rs.spec.as_ref().map(|s| st::format_selector(&s.selector));
    }

    /// The Available condition of a blue/green Rollout: the active ReplicaSet is saturated.
    pub(crate) fn active_saturated(&self, status: &RolloutStatus) -> bool {
        self.active_replica_set(status)
            .is_some_and(|i| self.saturated(i))
    }

    /// Both Services select the current ReplicaSet (the preview only when configured).
    pub(crate) fn services_on_current(&self, status: &RolloutStatus) -> bool {
        let b = status.blue_green.as_ref();
        let current = status.current_pod_hash.as_deref();
        let active = b.and_then(|b| b.active_selector.as_deref()) == current;
        let preview = self.preview_service().is_none()
            || b.and_then(|b| b.preview_selector.as_deref()) == current;
        current.is_some() && active && preview
    }
}
