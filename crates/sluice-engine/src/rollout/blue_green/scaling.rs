//! Blue/green replica counts (upstream `reconcileBlueGreenReplicaSets`): the stable at
//! `replicas`, the new ReplicaSet at `replicas` (or `previewReplicaCount` before the
//! promotion), every other ReplicaSet scaled down once its `scale-down-deadline` passed; the
//! new one after an abort once `abortScaleDownDelaySeconds` passed.

use sluice_api::common::{DESIRED_REPLICAS_ANNOTATION, SCALE_DOWN_DEADLINE_ANNOTATION};
use sluice_api::rollout::PauseReason;

use crate::rollout::canary::{Planner, annotation};
use crate::rollout::plan::MetadataPatch;

impl<'a> Planner<'a> {
    /// Upstream's `NewRSNewReplicas` for blue/green: `previewReplicaCount` while the new
    /// ReplicaSet waits behind the preview Service, `replicas` once it is (about to be)
    /// active, fully promoted, or past its preview scale-up checkpoint.
    pub(super) fn new_rs_target(&self, new: usize) -> i32 {
        let Some(preview) = self.blue_green().preview_replica_count else {
            return self.replicas;
        };
        let b = self.prev.blue_green.as_ref();
        let active = b
            .and_then(|b| b.active_selector.as_deref())
            .and_then(|h| self.rs.iter().position(|v| v.hash == h));
        if active.is_none_or(|a| a == new) || self.prev.promote_full.unwrap_or(false) {
            return self.replicas;
        }
        if self.prev.current_pod_hash.as_deref() != Some(self.rs[new].hash) {
            // A new update: it starts at the preview size.
            return preview;
        }
        let paused = self.spec.is_paused() || !self.prev.pause_conditions().is_empty();
        let past_checkpoint = b.and_then(|b| b.scale_up_preview_check_point) == Some(true);
        if !paused && past_checkpoint {
            return self.replicas;
        }
        preview
    }

    /// Upstream's `ReadyForPause`: the new ReplicaSet has exactly its target, all available.
    pub(super) fn ready_for_pause(&self, new: usize) -> bool {
        let target = self.new_rs_target(new);
        let v = &self.rs[new];
        v.spec == target && v.available == target
    }

    /// Upstream's `IsSaturated`: `replicas` pods, all available, and the desired-replicas
    /// annotation saying `replicas` (so a scale of the Rollout is not mistaken for done).
    pub(super) fn saturated(&self, i: usize) -> bool {
        let v = &self.rs[i];
        let desired = self.replicas.to_string();
        v.spec == self.replicas
            && v.available == self.replicas
            && annotation(v.rs, DESIRED_REPLICAS_ANNOTATION) == Some(desired.as_str())
    }

    /// Upstream's `shouldDelayScaleDownOnAbort`: aborted with a stable to fall back on and an
    /// `abortScaleDownDelaySeconds` that is not 0 (0 leaves the new ReplicaSet up).
    pub(super) fn delays_scale_down_on_abort(&self) -> bool {
        self.aborting()
            && self.stable.is_some()
            && self.spec.abort_scale_down_delay_seconds().is_some()
    }

    /// The stable at `replicas`, the new ReplicaSet at its target (or held, then scaled to 0,
    /// after an abort), and the other ReplicaSets scaled down after their delay.
    pub(super) fn reconcile_blue_green_replica_sets(&mut self, new: usize) {
        let delay_abort = self.delays_scale_down_on_abort();
        if let Some(stable) = self.stable.filter(|&s| s != new) {
            // A rollback may bring a ReplicaSet back from its scale-down delay.
            self.resize(stable, self.replicas, without_deadline(), true);
        }
        if delay_abort {
            self.hold_new_after_abort(new);
        } else {
            let target = self.new_rs_target(new);
            self.resize(new, target, without_deadline(), true);
        }
        self.scale_down_others(new);
    }

    /// After an abort the new ReplicaSet stays up `abortScaleDownDelaySeconds`, counted once
    /// the stable can take all the traffic, then goes to zero.
    fn hold_new_after_abort(&mut self, new: usize) {
        let ready = self
            .stable
            .is_some_and(|s| self.rs[s].available >= self.replicas);
        let delay = self.spec.abort_scale_down_delay_seconds().unwrap_or(0);
        self.hold_then_scale_down(new, ready, delay);
    }

    /// Upstream's `scaleDownOldReplicaSetsForBlueGreen`: every ReplicaSet that is neither new
    /// nor stable nor selected by a Service, newest first, gets a `scale-down-deadline`
    /// `scaleDownDelaySeconds` ahead and is scaled to zero once it passed; beyond
    /// `scaleDownDelayRevisionLimit` such ReplicaSets, at once. Nothing is scaled down while an
    /// Inconclusive analysis waits, nor while a post-promotion analysis without an explicit
    /// delay has not succeeded.
    fn scale_down_others(&mut self, new: usize) {
        if self.has_pause(&PauseReason::InconclusiveAnalysisRun) {
            return;
        }
        let bg = self.blue_green();
        if bg.post_promotion_analysis.is_some() && bg.scale_down_delay_seconds.is_none() {
            let current = self.current_promotion_run(true);
            let passed = current.is_some_and(|r| {
                crate::rollout::analysis_runs::phase_of(r)
                    == sluice_api::common::AnalysisPhase::Successful
            });
            if !self.skip_promotion_run(true, new, current) && !passed {
                return;
            }
        }
        let limit = bg.scale_down_delay_revision_limit.unwrap_or(i32::MAX);
        let delay = bg.scale_down_delay_seconds();
        let mut others: Vec<usize> = (0..self.rs.len())
            .filter(|&i| i != new && Some(i) != self.stable && !self.rs[i].deleting)
            .collect();
        others.retain(|&i| !self.referenced(i));
        self.scale_down_after_delay(&others, delay, limit);
    }

    /// Upstream's `isReplicaSetReferenced`: the status or a Service still names this
    /// ReplicaSet, so it must not be scaled down.
    fn referenced(&self, i: usize) -> bool {
        let hash = self.rs[i].hash;
        if hash.is_empty() {
            return false;
        }
        let b = self.prev.blue_green.as_ref();
        let in_status = [
            self.prev.stable_rs.as_deref(),
            self.prev.current_pod_hash.as_deref(),
            b.and_then(|b| b.active_selector.as_deref()),
            b.and_then(|b| b.preview_selector.as_deref()),
        ]
        .contains(&Some(hash));
        let bg = self.blue_green();
        let services = [Some(bg.active_service.as_str()), self.preview_service()];
        in_status
            || services
                .into_iter()
                .flatten()
                .any(|s| self.observed_selector(s) == Some(hash))
    }
}

/// An annotation patch dropping a `scale-down-deadline` (when present).
fn without_deadline() -> MetadataPatch {
    let mut patch = MetadataPatch::default();
    patch
        .remove
        .insert(SCALE_DOWN_DEADLINE_ANNOTATION.to_string());
    patch
}
