//! `status.duration` (upstream's `RolloutDurationStatus`): when the current update attempt
//! started, how long it spent in manual pauses, when and how it finished.
//!
//! One rule for every strategy, applied to the status a strategy's planner produced: it reads
//! only what every strategy writes (`currentPodHash`, `currentStepHash`, `stableRS`, `abort`,
//! pause conditions, the Progressing condition) and the observed ReplicaSets, as upstream's
//! `calculateStatusDuration` does after either strategy's reconcile.
//!
//! - An attempt **starts** (`rolloutStartedAt`) when a new revision appears (the first one
//!   included) and the Rollout is not already at it, or on a retry after an abort.
//! - A **manual pause** is `spec.paused` or a pause that needs a person: an indefinite
//!   `pause: {}` step, an inconclusive analysis or experiment, a blue-green pause without
//!   auto-promotion. Its start is `manualPauseStartedAt`; when it ends its seconds are added
//!   to `totalManualPauseDurationSeconds`. Timed pauses are not manual.
//! - The attempt **finishes** (`finishedAt` and `completionStatus`) when the new revision is
//!   stable and fully available (`Promoted`, or `FastPromoted` after `promoteFull`), when it
//!   is aborted (`Aborted`), or when another revision replaces it mid-way (`Superseded`; the
//!   next attempt's tracking replaces it in the same status, as upstream). Going back to an
//!   older revision mid-way is a rollback: the attempt continues and finishes as `RolledBack`,
//!   or `FastRolledBack` when it returns to the stable revision or stays inside
//!   `rollbackWindow`.
//! - Consistency: a finished attempt has a completion status and no open manual pause (the
//!   open pause is closed into the total), and never finishes before it started. An invalid
//!   spec changes nothing.

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sluice_api::common::POD_TEMPLATE_HASH_LABEL;
use sluice_api::k8s::time::{from_time, to_time};
use sluice_api::rollout::{
    PauseReason, Rollout, RolloutConditionType as Cond, RolloutDurationStatus, RolloutStatus,
};

use super::observed::Observed;
use super::status::{ROLLOUT_ABORTED_REASON, condition};

/// Upstream's completion statuses.
pub const PROMOTED: &str = "Promoted";
pub const FAST_PROMOTED: &str = "FastPromoted";
pub const ABORTED: &str = "Aborted";
pub const SUPERSEDED: &str = "Superseded";
pub const ROLLED_BACK: &str = "RolledBack";
pub const FAST_ROLLED_BACK: &str = "FastRolledBack";

fn hash_of(rs: &ReplicaSet) -> Option<&str> {
    rs.metadata
        .labels
        .as_ref()?
        .get(POD_TEMPLATE_HASH_LABEL)
        .map(String::as_str)
}

fn rs_with_hash<'a>(observed: &'a Observed, hash: Option<&str>) -> Option<&'a ReplicaSet> {
    let hash = hash?;
    observed
        .replica_sets
        .iter()
        .find(|rs| hash_of(rs) == Some(hash))
}

fn created(rs: &ReplicaSet) -> Option<DateTime<Utc>> {
    rs.metadata.creation_timestamp.as_ref().map(from_time)
}

/// Whether `a` was created before `b` (both known).
fn older(a: &ReplicaSet, b: &ReplicaSet) -> bool {
    matches!((created(a), created(b)), (Some(x), Some(y)) if x < y)
}

/// Upstream's rollback classification, on the revision the plan is moving to (`new`) and the
/// stable one it started from: back to the stable revision, or to one older than it; fast
/// when back to the stable, or no more than `rollbackWindow.revisions` revisions back.
fn rollback(observed: &Observed, new: &RolloutStatus) -> Option<&'static str> {
    let prev = observed.rollout.status.clone().unwrap_or_default();
    let new_rs = rs_with_hash(observed, new.current_pod_hash.as_deref())?;
    let stable_rs = rs_with_hash(observed, prev.stable_rs.as_deref())?;
    let to_stable = prev.stable_rs.as_deref() == hash_of(new_rs);
    if !to_stable && !older(new_rs, stable_rs) {
        return None;
    }
    let window = observed
        .rollout
        .spec
        .rollback_window
        .as_ref()
        .and_then(|w| w.revisions)
        .unwrap_or(0);
    let between = observed
        .replica_sets
        .iter()
        .filter(|rs| older(rs, stable_rs) && older(new_rs, rs))
        .count();
    let within = older(new_rs, stable_rs) && window > 0 && (between as i64) < i64::from(window);
    Some(if to_stable || within {
        FAST_ROLLED_BACK
    } else {
        ROLLED_BACK
    })
}

/// A pause a person has to end (upstream's `requiresManualAction`), or `spec.paused`.
fn manual_pause(rollout: &Rollout, status: &RolloutStatus) -> bool {
    if rollout.spec.paused == Some(true) {
        return true;
    }
    status
        .pause_conditions
        .iter()
        .flatten()
        .any(|p| match p.reason {
            PauseReason::InconclusiveAnalysisRun | PauseReason::InconclusiveExperiment => true,
            PauseReason::CanaryPauseStep => {
                let index = status.current_step_index.unwrap_or(0).max(0) as usize;
                rollout
                    .spec
                    .steps()
                    .get(index)
                    .and_then(|s| s.pause.as_ref())
                    .is_some_and(|pause| pause.duration.is_none())
            }
            PauseReason::BlueGreenPause => rollout
                .spec
                .blue_green()
                .is_some_and(|bg| !bg.auto_promotion_enabled()),
            _ => false,
        })
}

fn seconds_between(from: &Time, to: &Time) -> i64 {
    (from_time(to) - from_time(from)).num_seconds().max(0)
}

/// Closes an open manual pause into the total.
fn end_manual_pause(d: &mut RolloutDurationStatus, now: &Time) {
    if let Some(start) = d.manual_pause_started_at.take() {
        let total =
            d.total_manual_pause_duration_seconds.unwrap_or(0) + seconds_between(&start, now);
        d.total_manual_pause_duration_seconds = Some(total);
    }
}

/// Finishes the attempt (upstream's `CompleteRollout`): the open pause is closed, the finish
/// is never before the start, and the status kept if one was already known.
fn finish(d: &mut RolloutDurationStatus, now: &Time, status: &str) {
    end_manual_pause(d, now);
    let finished = match &d.rollout_started_at {
        Some(start) if from_time(start) > from_time(now) => start.clone(),
        _ => now.clone(),
    };
    d.finished_at = Some(finished);
    d.completion_status = Some(d.completion_status.clone().unwrap_or(status.to_string()));
}

fn is_finished(d: &RolloutDurationStatus) -> bool {
    d.rollout_started_at.is_some() && d.finished_at.is_some()
}

fn new_attempt(now: &Time) -> RolloutDurationStatus {
    RolloutDurationStatus {
        rollout_started_at: Some(now.clone()),
        ..Default::default()
    }
}

/// Sets `status.duration` from the observed Rollout, the status its strategy planned and the
/// time of the plan.
pub fn track(observed: &Observed, status: &mut RolloutStatus, now: DateTime<Utc>) {
    if condition(status.conditions(), &Cond::InvalidSpec).is_some() {
        return;
    }
    let rollout = &observed.rollout;
    let prev = rollout.status.clone().unwrap_or_default();
    let now = to_time(now);
    let mut duration = status.duration.clone();

    // Promotion to stable records how (upstream does it where it switches the stable).
    let promoted_now = status.stable_rs.is_some()
        && status.stable_rs != prev.stable_rs
        && status.stable_rs == status.current_pod_hash;
    if promoted_now
        && let Some(d) = duration.as_mut()
        && d.completion_status.is_none()
        && d.rollout_started_at.is_some()
        && !is_finished(d)
    {
        let how = if prev.promote_full == Some(true) {
            FAST_PROMOTED
        } else {
            PROMOTED
        };
        d.completion_status = Some(how.into());
    }

    let new_revision = prev.current_pod_hash.is_none()
        || status.current_pod_hash != prev.current_pod_hash
        || (rollout.spec.canary().is_some() && status.current_step_hash != prev.current_step_hash);
    let is_promoted =
        status.current_pod_hash.is_some() && status.stable_rs == status.current_pod_hash;
    let fully_available = rs_with_hash(observed, status.current_pod_hash.as_deref())
        .and_then(|rs| rs.status.as_ref())
        .is_some_and(|s| s.available_replicas.unwrap_or(0) >= rollout.spec.replicas());
    let completed = is_promoted && fully_available;
    let aborted = status.abort == Some(true);
    let was_aborted = condition(prev.conditions(), &Cond::Progressing)
        .is_some_and(|c| c.reason == ROLLOUT_ABORTED_REASON);
    let retry = !aborted && was_aborted;
    let was_paused = prev
        .duration
        .as_ref()
        .is_some_and(|d| d.manual_pause_started_at.is_some());
    let in_progress = prev
        .duration
        .as_ref()
        .is_some_and(|d| d.rollout_started_at.is_some() && !is_finished(d));

    if in_progress && let Some(d) = duration.as_mut() {
        if new_revision {
            match rollback(observed, status) {
                // Back to an earlier revision: the same attempt, finishing as a rollback.
                Some(how) => d.completion_status = Some(how.into()),
                None => finish(d, &now, SUPERSEDED),
            }
        }
        if completed && !is_finished(d) {
            finish(d, &now, PROMOTED);
            status.duration = duration;
            return;
        } else if aborted && !is_finished(d) {
            finish(d, &now, ABORTED);
        }
    }

    let mut paused_before = was_paused;
    if duration
        .as_ref()
        .is_none_or(|d| is_finished(d) && !completed)
    {
        paused_before = false;
        if (new_revision && !completed) || retry {
            duration = Some(new_attempt(&now));
        }
    }
    let Some(d) = duration.as_mut() else {
        status.duration = None;
        return;
    };
    if !is_finished(d) {
        let paused = manual_pause(rollout, status);
        if paused_before && !paused {
            end_manual_pause(d, &now);
        } else if !paused_before && paused && d.manual_pause_started_at.is_none() {
            d.manual_pause_started_at = Some(now.clone());
        }
    }
    status.duration = duration;
}

#[cfg(test)]
mod tests;
