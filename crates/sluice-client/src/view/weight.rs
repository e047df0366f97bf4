//! Desired vs actual canary weight.
//!
//! Without traffic routing the share of requests the canary gets is the share of available
//! pods it runs, so the *actual* weight is computed from the ReplicaSets' available counts
//! (argo-rollouts#2281: upstream shows only the desired weight, which is not what users get
//! while pods start). With a traffic router the router's verified weight is shown instead.

use k8s_openapi::api::apps::v1::ReplicaSet;

use sluice_api::common::POD_TEMPLATE_HASH_LABEL;
use sluice_api::rollout::{Rollout, RolloutStatus};

/// The weight the current step asks for (COMPAT §6, the planner's rule).
pub fn desired(rollout: &Rollout) -> Option<i32> {
    rollout.spec.canary()?;
    let empty = RolloutStatus::default();
    let status = rollout.status.as_ref().unwrap_or(&empty);
    Some(sluice_engine::rollout::replicas::desired_weight(
        rollout.spec.steps(),
        status,
    ))
}

fn hash_of(rs: &ReplicaSet) -> Option<&str> {
    rs.metadata
        .labels
        .as_ref()?
        .get(POD_TEMPLATE_HASH_LABEL)
        .map(String::as_str)
}

fn available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

/// The share (0–100, rounded down) of the Rollout's available pods that run the canary
/// template, from its own ReplicaSets (not an experiment's). `None` for blue-green.
pub fn actual(rollout: &Rollout, replica_sets: &[ReplicaSet]) -> Option<i32> {
    let canary = rollout.spec.canary()?;
    let status = rollout.status.as_ref()?;
    if canary.traffic_routing.is_some()
        && let Some(w) = status.canary.as_ref().and_then(|c| c.weights.as_ref())
    {
        return Some(w.canary.weight);
    }
    let current = status.current_pod_hash.as_deref()?;
    let stable = status.stable_rs.as_deref().unwrap_or_default();
    if stable.is_empty() || current == stable {
        return Some(100);
    }
    let owned = replica_sets.iter().filter(|rs| {
        rs.metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.kind == "Rollout" && o.controller == Some(true))
    });
    let (mut on_canary, mut total) = (0i64, 0i64);
    for rs in owned {
        let n = i64::from(available(rs));
        total += n;
        if hash_of(rs) == Some(current) {
            on_canary += n;
        }
    }
    Some(if total == 0 {
        0
    } else {
        (on_canary * 100 / total) as i32
    })
}
