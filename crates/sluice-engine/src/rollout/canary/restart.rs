//! `spec.restartAt`: pods created before it are evicted, a few at a time.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use sluice_api::common::POD_TEMPLATE_HASH_LABEL;
use sluice_api::rollout::RolloutStatus;

use super::Planner;
use crate::rollout::observed::restart_due;
use crate::rollout::plan::Change;

impl<'a> Planner<'a> {
    /// `spec.restartAt`: evicts pods created before it, as many at once as availability
    /// allows (at least one, at most maxUnavailable), the stable's first; records
    /// `status.restartedAt` once no old pod is left. Returns whether pods were evicted, in
    /// which case availability counts are stale and nothing else is scaled this time.
    pub(crate) fn reconcile_restart(&mut self, status: &mut RolloutStatus) -> bool {
        let Some(restart_at) = self.spec.restart_at.clone() else {
            return false;
        };
        if !restart_due(&self.obs.rollout, &self.now) {
            let left = restart_at.0.as_second() - self.now.0.as_second();
            if left > 0 && status.restarted_at.as_ref() != Some(&restart_at) {
                self.requeue_in(Duration::from_secs(left.unsigned_abs()));
            }
            return false;
        }
        let pods = self.eviction_order();
        let mut budget = self.eviction_budget(&pods);
        let (mut old, mut evicted) = (0, 0);
        for pod in pods {
            if pod
                .metadata
                .creation_timestamp
                .as_ref()
                .is_none_or(|c| *c >= restart_at)
            {
                continue;
            }
            old += 1;
            if budget <= 0 || pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            self.changes.push(Change::EvictPod {
                name: pod.metadata.name.clone().unwrap_or_default(),
            });
            budget -= 1;
            evicted += 1;
        }
        if old == evicted {
            status.restarted_at = Some(restart_at);
        } else {
            self.requeue_in(Duration::from_secs(30));
        }
        evicted > 0
    }

    /// The Rollout's pods: the stable's first, then the canary's, then any other; oldest
    /// first within each.
    fn eviction_order(&self) -> Vec<&'a Pod> {
        let stable_hash = self.stable.map(|i| self.rs[i].hash);
        let new_hash = self.new.map(|i| self.rs[i].hash);
        let rank = |pod: &Pod| {
            let h = pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL))
                .map(String::as_str);
            if h.is_some() && h == stable_hash {
                0
            } else if h.is_some() && h == new_hash {
                1
            } else {
                2
            }
        };
        let mut pods: Vec<&Pod> = self.obs.pods.iter().collect();
        pods.sort_by(|a, b| {
            (rank(a), &a.metadata.creation_timestamp, &a.metadata.name).cmp(&(
                rank(b),
                &b.metadata.creation_timestamp,
                &b.metadata.name,
            ))
        });
        pods
    }

    /// How many pods may be evicted now: the available ones beyond `replicas` (or the
    /// ReplicaSets' total, if larger) less maxUnavailable, with at least one unavailable
    /// allowed.
    fn eviction_budget(&self, pods: &[&Pod]) -> i32 {
        let min_ready = i64::from(self.spec.min_ready_seconds());
        let now = self.now.0.as_second();
        let available = pods
            .iter()
            .filter(|p| pod_available(p, min_ready, now))
            .count();
        let available = i32::try_from(available).unwrap_or(i32::MAX);
        let total_spec: i32 = self.rs.iter().map(|v| v.spec).sum();
        let at_once = self.limits.max_unavailable.max(1);
        available - (self.replicas.max(total_spec) - at_once)
    }
}

/// A pod counts as available once Ready for `min_ready` seconds and not being deleted.
fn pod_available(pod: &Pod, min_ready: i64, now: i64) -> bool {
    if pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| {
            c.status == "True"
                && (min_ready == 0
                    || c.last_transition_time
                        .as_ref()
                        .is_some_and(|t| t.0.as_second() + min_ready <= now))
        })
}
