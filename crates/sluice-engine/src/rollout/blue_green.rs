//! The blue/green strategy (`spec.strategy.blueGreen`, upstream's `rollout/bluegreen.go` and
//! `rollout/service.go`).
//!
//! The new version runs as a whole second ReplicaSet (or `previewReplicaCount` pods of it)
//! behind the preview Service while the active Service keeps selecting the stable one; the
//! switch of the active Service's `rollouts-pod-template-hash` selector moves all production
//! traffic at once, and the old ReplicaSet stays up for `scaleDownDelaySeconds` so a rollback
//! is instant.
//!
//! It plans on the canary's [`Planner`] and reuses its strategy-neutral stages: finding or
//! creating the ReplicaSet, revisions and history, restart, ephemeral metadata, pause and
//! abort bookkeeping, AnalysisRun creation and history, and `finish` (counts, conditions,
//! phase, progress deadline). Its own stages, in upstream's order:
//! - `services`: the preview Service follows the new ReplicaSet at once, the active Service
//!   is switched when the promotion is due (or back to the stable on abort);
//! - `scaling`: the stable at `replicas`, the new ReplicaSet at `replicas` or
//!   `previewReplicaCount`, old ReplicaSets down after their `scale-down-deadline`
//!   (`scaleDownDelaySeconds`, `scaleDownDelayRevisionLimit`), the new one after an abort
//!   (`abortScaleDownDelaySeconds`);
//! - `pause`: `BlueGreenPause` before the switch (`autoPromotionEnabled: false` or
//!   `autoPromotionSeconds`), fast-tracking (rollback, `promoteFull`, first deploy);
//! - `analysis`: the pre-promotion run (must pass before the switch) and the post-promotion
//!   run (must pass before the new ReplicaSet becomes stable; failure aborts, which switches
//!   the active Service back);
//! - `status`: the selectors, promotion to stable, the preview scale-up checkpoint, and the
//!   counts upstream reads from the active ReplicaSet.

mod analysis;
mod pause;
mod scaling;
mod services;
mod status;
#[cfg(test)]
mod tests;

use sluice_api::rollout::BlueGreenStrategy;

use super::canary::Planner;
use super::plan::Plan;

impl<'a> Planner<'a> {
    /// One reconcile of a blue/green Rollout whose current ReplicaSet (`new`) exists.
    pub(crate) fn run_blue_green(mut self, new: usize) -> Plan {
        let mut status = self.prev.clone();
        status.current_pod_hash = Some(self.rs[new].hash.to_string());
        // Nothing of the canary's status belongs to a blue/green Rollout (one switched from
        // canary keeps none of it, as upstream's fresh status does).
        status.current_step_hash = None;
        status.current_step_index = None;
        status.canary = None;
        let revision = self.sync_revision(new);
        if self.fully_promoted() && self.prev.is_aborted() {
            // The update the abort was about is the stable one now: nothing is left to abort.
            self.pause.remove_abort = true;
        }
        self.release_services();
        self.reconcile_preview_service(new);
        if self.prev.current_pod_hash.as_deref() != Some(self.rs[new].hash) {
            self.start_update(&mut status, new);
            self.record_selectors(&mut status);
            self.promote(&mut status, new, revision, true);
            return self.finish(status, revision);
        }
        if self.reconcile_restart(&mut status) {
            self.record_selectors(&mut status);
            return self.finish(status, revision);
        }
        self.reconcile_blue_green_replica_sets(new);
        self.reconcile_blue_green_pause(new);
        self.reconcile_active_service(new);
        self.reconcile_promotion_analysis(&mut status, new, revision);
        self.reconcile_ephemeral_metadata(new);
        self.cleanup_history();
        self.record_selectors(&mut status);
        self.promote(&mut status, new, revision, false);
        self.finish(status, revision)
    }

    /// The blue/green strategy of the Rollout being planned.
    fn blue_green(&self) -> &'a BlueGreenStrategy {
        static NONE: BlueGreenStrategy = BlueGreenStrategy {
            active_service: String::new(),
            preview_service: None,
            preview_replica_count: None,
            auto_promotion_enabled: None,
            auto_promotion_seconds: None,
            max_unavailable: None,
            scale_down_delay_seconds: None,
            scale_down_delay_revision_limit: None,
            pre_promotion_analysis: None,
            anti_affinity: None,
            post_promotion_analysis: None,
            preview_metadata: None,
            active_metadata: None,
            abort_scale_down_delay_seconds: None,
        };
        self.spec.blue_green().unwrap_or(&NONE)
    }

    /// The observed status says the current ReplicaSet is the stable one (also when neither
    /// is set yet, as upstream's `IsFullyPromoted`).
    fn fully_promoted(&self) -> bool {
        self.prev.stable_rs == self.prev.current_pod_hash
    }

    /// The preview Service's name, if one is configured.
    fn preview_service(&self) -> Option<&'a str> {
        self.blue_green()
            .preview_service
            .as_deref()
            .filter(|s| !s.is_empty())
    }
}
