//! What the planner sees: one Rollout and the objects it owns or references, read from the
//! controller's caches. Building it is the only I/O; everything after is pure.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::analysis::AnalysisRun;
use crate::api::experiment::Experiment;
use crate::api::rollout::Rollout;

/// A consistent snapshot of one Rollout's world.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub rollout: Rollout,
    /// Only the ReplicaSets controlled by this Rollout (ownerReference controller = it).
    pub replica_sets: Vec<ReplicaSet>,
    /// The Services named by `canaryService` / `stableService`, keyed by name; `None` means
    /// the Service does not exist.
    pub services: BTreeMap<String, Option<Service>>,
    /// Pods controlled by this Rollout's ReplicaSets. Only read while a restart is due
    /// (see [`Observed::needs_pods`]); may be left empty otherwise to spare a pod listing.
    pub pods: Vec<Pod>,
    /// AnalysisRuns controlled by this Rollout. Not read yet: analysis steps and background
    /// analysis are still InvalidSpec (`validate::UNSUPPORTED_FEATURES`), so no run exists.
    pub analysis_runs: Vec<AnalysisRun>,
    /// Experiments controlled by this Rollout. Not read yet, like `analysis_runs`.
    pub experiments: Vec<Experiment>,
}

impl Observed {
    /// Whether `pods` must be filled for a correct plan at `now`: `spec.restartAt` has
    /// passed and `status.restartedAt` does not record it yet.
    pub fn needs_pods(rollout: &Rollout, now: DateTime<Utc>) -> bool {
        restart_due(rollout, &super::canary::to_time(now))
    }
}

/// Upstream's `NeedsRestart`. `now` has second precision here (upstream's has nanoseconds), so
/// a restart requested during the current second is already due: with a strict `>` it would
/// wait for a reconcile that nothing schedules.
pub(crate) fn restart_due(rollout: &Rollout, now: &Time) -> bool {
    let Some(at) = rollout.spec.restart_at.as_ref() else {
        return false;
    };
    let done = rollout
        .status
        .as_ref()
        .and_then(|s| s.restarted_at.as_ref());
    done != Some(at) && now >= at
}
