//! Pre- and post-promotion analysis (upstream `reconcilePrePromotionAnalysisRun`,
//! `reconcilePostPromotionAnalysisRun`), through the same AnalysisRun machinery as canary
//! steps: runs `<rollout>-<hash>-<revision>-pre` / `-post` labelled `rollout-type:
//! PrePromotion` / `PostPromotion`. The pre-promotion run starts once the preview is fully up
//! and must succeed before the switch; the post-promotion run starts once the active Service
//! selects the new ReplicaSet and must succeed before it becomes stable. A failed or errored
//! run aborts; an Inconclusive one pauses (`InconclusiveAnalysisRun`) until a person decides.

use sluice_api::analysis::AnalysisRun;
use sluice_api::common::AnalysisPhase;
use sluice_api::rollout::{
    BlueGreenStatus, PauseReason, RolloutAnalysis, RolloutAnalysisRunStatus, RolloutStatus,
};

use crate::rollout::analysis_runs::{
    ROLLOUT_TYPE_POST_PROMOTION, ROLLOUT_TYPE_PRE_PROMOTION, RunKind, phase_of, run_status,
};
use crate::rollout::canary::{Planner, run_message, with_detail};

/// Upstream's abort messages, followed by `: <the run's message>` when it has one.
const PRE_PROMOTION_FAILED: &str = "Blue/green pre-promotion analysis phase error/failed";
const POST_PROMOTION_FAILED: &str = "Blue/green post-promotion analysis phase error/failed";

impl<'a> Planner<'a> {
    /// The pre- (`post: false`) or post-promotion run the observed status names, if it exists.
    pub(super) fn current_promotion_run(&self, post: bool) -> Option<&'a AnalysisRun> {
        let b = self.prev.blue_green.as_ref()?;
        let status = if post {
            b.post_promotion_analysis_run_status.as_ref()
        } else {
            b.pre_promotion_analysis_run_status.as_ref()
        };
        self.run_named(&status?.name)
    }

    /// A pre- or post-promotion run of this update is still measuring (as the observed status
    /// says): the Rollout waits on it, which is no lack of progress.
    pub(crate) fn promotion_analysis_running(&self) -> bool {
        let Some(b) = self.prev.blue_green.as_ref() else {
            return false;
        };
        [
            &b.pre_promotion_analysis_run_status,
            &b.post_promotion_analysis_run_status,
        ]
        .into_iter()
        .flatten()
        .any(|r| !r.status.is_completed())
    }

    /// The pre- and post-promotion runs of this reconcile, recorded in `status.blueGreen`;
    /// runs of earlier updates are ended by `finish` and dropped by the history limits.
    pub(super) fn reconcile_promotion_analysis(
        &mut self,
        status: &mut RolloutStatus,
        new: usize,
        revision: i64,
    ) {
        let mut pre = self.current_promotion_run(false);
        let mut post = self.current_promotion_run(true);
        if self.prev.aborted_at.is_some() && !self.aborting() {
            // A retry: the runs that decided the aborted attempt decide nothing any more
            // (upstream re-aborts on the failed run, argo-rollouts#2824); this attempt runs
            // its analyses afresh.
            for run in [pre.take(), post.take()].into_iter().flatten() {
                self.terminate_run(run);
            }
        }
        let skip = self.fully_promoted()
            || self.aborting()
            || self.prev.promote_full.unwrap_or(false)
            || self.fast_rollback(new)
            || self.prev.stable_rs.as_deref().is_none_or(str::is_empty);
        let (pre_status, post_status) = if skip {
            // Nothing runs; the last runs stay in the status so the user sees what decided.
            for run in [pre, post].into_iter().flatten() {
                self.terminate_run(run);
            }
            (pre.map(run_status), post.map(run_status))
        } else {
            (
                self.reconcile_promotion_run(false, pre, new, revision),
                self.reconcile_promotion_run(true, post, new, revision),
            )
        };
        let b = status
            .blue_green
            .get_or_insert_with(BlueGreenStatus::default);
        b.pre_promotion_analysis_run_status = pre_status;
        b.post_promotion_analysis_run_status = post_status;
        self.analysis_run_history(status);
    }

    /// One promotion run: ended when not (or no longer) wanted, created when due, and its
    /// phase turned into a pause or an abort.
    fn reconcile_promotion_run(
        &mut self,
        post: bool,
        current: Option<&'a AnalysisRun>,
        new: usize,
        revision: i64,
    ) -> Option<RolloutAnalysisRunStatus> {
        let bg = self.blue_green();
        let analysis = if post {
            bg.post_promotion_analysis.as_ref()
        } else {
            bg.pre_promotion_analysis.as_ref()
        };
        let Some(analysis) =
            analysis.filter(|a| a.templates.as_ref().is_some_and(|t| !t.is_empty()))
        else {
            if let Some(run) = current {
                self.terminate_run(run);
            }
            return None;
        };
        if self.skip_promotion_run(post, new, current) {
            // Not this run's time (or no longer): it is shown, but decides nothing.
            if let Some(run) = current {
                self.terminate_run(run);
            }
            return current.map(run_status);
        }
        let result = if self.has_pause(&PauseReason::InconclusiveAnalysisRun) {
            current.map(run_status)
        } else if self.needs_new(current.map(phase_of)) {
            return self.create_promotion_run(post, analysis, new, revision, current.is_none());
        } else {
            current.map(run_status)
        };
        if let Some(run) = current.filter(|_| result.is_some()) {
            self.pause_or_abort_for(run, post);
            let prev = self.prev.blue_green.as_ref().and_then(|b| {
                if post {
                    b.post_promotion_analysis_run_status.clone()
                } else {
                    b.pre_promotion_analysis_run_status.clone()
                }
            });
            let type_ = if post {
                ROLLOUT_TYPE_POST_PROMOTION
            } else {
                ROLLOUT_TYPE_PRE_PROMOTION
            };
            self.run_phase_event(prev.as_ref(), run, type_);
        }
        result
    }

    fn create_promotion_run(
        &mut self,
        post: bool,
        analysis: &RolloutAnalysis,
        new: usize,
        revision: i64,
        untracked: bool,
    ) -> Option<RolloutAnalysisRunStatus> {
        let (rollout_type, field) = if post {
            (
                ROLLOUT_TYPE_POST_PROMOTION,
                "spec.strategy.blueGreen.postPromotionAnalysis",
            )
        } else {
            (
                ROLLOUT_TYPE_PRE_PROMOTION,
                "spec.strategy.blueGreen.prePromotionAnalysis",
            )
        };
        let kind = RunKind {
            rollout_type,
            step_index: None,
            field,
        };
        self.create_run(analysis, &kind, new, revision, untracked)
    }

    /// Upstream's `skipPrePromotionAnalysisRun` / `skipPostPromotionAnalysisRun`: no
    /// promotion run for a ReplicaSet that is already stable, on a first deploy (pre), before
    /// the switch (post) or after it (pre); and none is started before the new ReplicaSet is
    /// fully up (at `previewReplicaCount` for the pre-promotion run). A run already started
    /// goes on even if a pod is lost meanwhile.
    pub(super) fn skip_promotion_run(
        &self,
        post: bool,
        new: usize,
        current: Option<&AnalysisRun>,
    ) -> bool {
        let hash = self.rs[new].hash;
        let active = self
            .prev
            .blue_green
            .as_ref()
            .and_then(|b| b.active_selector.as_deref())
            .unwrap_or_default();
        let stable = self.prev.stable_rs.as_deref() == Some(hash);
        let wrong_side = if post {
            active != hash
        } else {
            active.is_empty() || active == hash
        };
        if stable || wrong_side || hash.is_empty() {
            return true;
        }
        if current.is_some() {
            return false;
        }
        match self.blue_green().preview_replica_count.filter(|_| !post) {
            Some(count) => self.rs[new].spec != count || self.rs[new].available != count,
            None => !self.saturated(new),
        }
    }

    /// Upstream's `setPauseOrAbortForBlueGreen`.
    fn pause_or_abort_for(&mut self, run: &AnalysisRun, post: bool) {
        match phase_of(run) {
            AnalysisPhase::Inconclusive => self
                .pause
                .add_reasons
                .push(PauseReason::InconclusiveAnalysisRun),
            AnalysisPhase::Failed | AnalysisPhase::Error => {
                let prefix = if post {
                    POST_PROMOTION_FAILED
                } else {
                    PRE_PROMOTION_FAILED
                };
                self.abort_with(with_detail(prefix, run_message(run)));
            }
            _ => {}
        }
    }
}
