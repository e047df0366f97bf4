//! What the planner sees: one Rollout and the objects it owns or references, read from the
//! controller's caches. Building it is the only I/O; everything after is pure.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;

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
}
