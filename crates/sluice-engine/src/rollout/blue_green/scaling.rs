//! Blue/green replica counts (upstream `reconcileBlueGreenReplicaSets`): the stable at
//! `replicas`, the new ReplicaSet at `replicas` (or `previewReplicaCount` before the
//! promotion), every other ReplicaSet scaled down once its `scale-down-deadline` passed; the
//! new one after an abort once `abortScaleDownDelaySeconds` passed.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use sluice_api::common::{DESIRED_REPLICAS_ANNOTATION, SCALE_DOWN_DEADLINE_ANNOTATION};
use sluice_api::rollout::PauseReason;

use crate::rollout::canary::{Planner, annotation};
use crate::rollout::plan::{Change, MetadataPatch};
use crate::rollout::status as st;

/// A ReplicaSet's `scale-down-deadline` annotation, read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Deadline {
    /// No annotation.
    None,
    /// Not passed yet: this much is left.
    Ahead(Duration),
    /// Passed (or exactly now).
    Passed,
    /// Present but not an RFC 3339 time.
    Unreadable,
}

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

    /// ReplicaSet `i`'s scale-down deadline as of `now`.
    pub(super) fn deadline(&self, i: usize) -> Deadline {
        let Some(text) =
            annotation(self.rs[i].rs, SCALE_DOWN_DEADLINE_ANNOTATION).filter(|t| !t.is_empty())
        else {
            return Deadline::None;
        };
        let Ok(at) = text.parse::<Timestamp>() else {
            return Deadline::Unreadable;
        };
        let left = at.as_millisecond() - self.now.0.as_millisecond();
        match u64::try_from(left) {
            Ok(ms) if ms > 0 => Deadline::Ahead(Duration::from_millis(ms)),
            _ => Deadline::Passed,
        }
    }

    /// The deadline `seconds` from now, as the annotation holds it.
    fn deadline_in(&self, seconds: i32) -> String {
        let at = self.now.0.as_second() + i64::from(seconds);
        Time(Timestamp::from_second(at).unwrap_or(self.now.0))
            .0
            .to_string()
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

    /// After an abort the new ReplicaSet stays up `abortScaleDownDelaySeconds` (counted once
    /// the stable can take all the traffic), then goes to zero.
    fn hold_new_after_abort(&mut self, new: usize) {
        let spec = self.rs[new].spec;
        match self.deadline(new) {
            Deadline::Ahead(left) => {
                self.requeue_in(left);
                self.resize(new, spec, MetadataPatch::default(), true);
            }
            Deadline::Passed => self.resize(new, 0, MetadataPatch::default(), true),
            Deadline::None | Deadline::Unreadable => {
                let ready = self
                    .stable
                    .is_some_and(|s| self.rs[s].available >= self.replicas);
                let delay = self.spec.abort_scale_down_delay_seconds().unwrap_or(0);
                let mut annotations = MetadataPatch::default();
                if ready {
                    annotations.set.insert(
                        SCALE_DOWN_DEADLINE_ANNOTATION.to_string(),
                        self.deadline_in(delay),
                    );
                    self.requeue_in(Duration::from_secs(u64::try_from(delay).unwrap_or(0)));
                }
                self.resize(new, spec, annotations, true);
            }
        }
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
        others.sort_by(|&a, &b| {
            (self.rs[b].revision, self.rs[b].created())
                .cmp(&(self.rs[a].revision, self.rs[a].created()))
        });
        let mut delayed = 0;
        for i in others {
            if self.referenced(i) || self.rs[i].spec == 0 {
                continue;
            }
            let spec = self.rs[i].spec;
            let mut annotations = MetadataPatch::default();
            let target = match self.deadline(i) {
                Deadline::None if delayed < limit && delay > 0 => {
                    delayed += 1;
                    annotations.set.insert(
                        SCALE_DOWN_DEADLINE_ANNOTATION.to_string(),
                        self.deadline_in(delay),
                    );
                    self.requeue_in(Duration::from_secs(u64::try_from(delay).unwrap_or(0)));
                    spec
                }
                // Upstream keeps such a ReplicaSet up forever with a delay of 0; 0 means now.
                Deadline::None => 0,
                Deadline::Ahead(left) => {
                    delayed += 1;
                    if delayed > limit {
                        0
                    } else {
                        self.requeue_in(left);
                        // It follows a scale-down of the Rollout, never up (upstream would
                        // grow a superseded preview to full size meanwhile).
                        spec.min(self.replicas)
                    }
                }
                Deadline::Passed | Deadline::Unreadable => {
                    delayed += 1;
                    0
                }
            };
            if target == 0 {
                annotations
                    .remove
                    .insert(SCALE_DOWN_DEADLINE_ANNOTATION.to_string());
            }
            let sync = target != spec;
            self.resize(i, target, annotations, sync);
        }
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

    /// Scales ReplicaSet `i` to `target` with `annotations`, plus the desired-replicas
    /// annotation when `sync_desired`, in one write, and only when something changes.
    fn resize(
        &mut self,
        i: usize,
        target: i32,
        mut annotations: MetadataPatch,
        sync_desired: bool,
    ) {
        let view = &self.rs[i];
        if sync_desired {
            annotations.set.insert(
                DESIRED_REPLICAS_ANNOTATION.to_string(),
                self.replicas.to_string(),
            );
        }
        annotations
            .set
            .retain(|k, v| annotation(view.rs, k) != Some(v.as_str()));
        annotations
            .remove
            .retain(|k| annotation(view.rs, k).is_some());
        if view.spec == target && annotations.is_empty() {
            return;
        }
        let (name, from, revision) = (view.name.to_string(), view.spec, view.revision);
        self.changes.push(Change::ScaleReplicaSet {
            name: name.clone(),
            from,
            replicas: target,
            annotations,
        });
        if target != from {
            let direction = if target > from { "up" } else { "down" };
            self.changes.push(Change::normal(
                st::SCALING_REPLICA_SET_REASON,
                format!("Scaled {direction} ReplicaSet {name} (revision {revision}) from {from} to {target}"),
            ));
        }
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
