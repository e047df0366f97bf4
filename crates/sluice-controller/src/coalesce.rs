//! Coalescing status writes that only move replica counts.
//!
//! While a canary step scales, every pod the ReplicaSet controller counts as created, ready
//! and available changes the Rollout's summed counts by one, and each change would be one
//! status PATCH (about three per Rollout per step) that nothing decides on: phase, message,
//! conditions, step index and observedGeneration are derived from the ReplicaSets, not from
//! these sums, and a change of any of them is written at once with the current counts. So
//! a status change that touches only the counts waits up to [`WINDOW`] for company; if
//! none comes, it is written when the window ends. A reconcile that writes to the cluster
//! for the Rollout (scales a ReplicaSet, sets a route's weights) starts the window again
//! ([`CountWrites::renew`]): the status write that completes the step follows it and takes
//! the held counts along.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Status fields that are sums of ReplicaSet counts and nothing else.
pub const COUNT_FIELDS: [&str; 5] = [
    "replicas",
    "updatedReplicas",
    "readyReplicas",
    "availableReplicas",
    "HPAReplicas",
];

/// How long a counts-only status change may wait to be written with the next one.
pub const WINDOW: Duration = Duration::from_secs(1);

/// Whether a status merge patch changes nothing but replica counts.
pub fn counts_only(diff: &Value) -> bool {
    diff.as_object()
        .is_some_and(|m| !m.is_empty() && m.keys().all(|k| COUNT_FIELDS.contains(&k.as_str())))
}

/// Per-object time since which a counts-only status change has been held back.
#[derive(Debug, Default)]
pub struct CountWrites {
    held_since: Mutex<HashMap<String, Instant>>,
}

impl CountWrites {
    /// For a counts-only change of `key` at `now`: `None` to write it now, or how much
    /// longer it may wait (the caller requeues for then).
    pub fn hold(&self, key: &str, now: Instant) -> Option<Duration> {
        let mut map = self.held_since.lock().unwrap_or_else(|p| p.into_inner());
        let since = *map.entry(key.to_string()).or_insert(now);
        let waited = now.saturating_duration_since(since);
        if waited >= WINDOW {
            map.remove(key);
            None
        } else {
            Some(WINDOW - waited)
        }
    }

    /// A reconcile of `key` wrote to the cluster at `now`: a change held back waits for the
    /// status write that follows, up to one window from now.
    pub fn renew(&self, key: &str, now: Instant) {
        let mut map = self.held_since.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(since) = map.get_mut(key) {
            *since = now;
        }
    }

    /// The status of `key` was written (or the object is gone): nothing is held.
    pub fn written(&self, key: &str) {
        let mut map = self.held_since.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_a_patch_of_nothing_but_counts_is_counts_only() {
        let cases = [
            (json!({"availableReplicas": 2}), true),
            (
                json!({"replicas": 3, "readyReplicas": 2, "HPAReplicas": 3}),
                true,
            ),
            (json!({"availableReplicas": 2, "phase": "Paused"}), false),
            (json!({"availableReplicas": 2, "message": "x"}), false),
            (json!({"observedGeneration": "2"}), false),
            (json!({"canary": {"weights": null}}), false),
            (json!({"conditions": []}), false),
            (json!({}), false),
            (json!(null), false),
        ];
        for (diff, want) in cases {
            assert_eq!(counts_only(&diff), want, "{diff}");
        }
    }

    #[test]
    fn a_held_change_waits_at_most_one_window_from_when_it_was_first_held() {
        let w = CountWrites::default();
        let t0 = Instant::now();
        assert_eq!(w.hold("ns/a", t0), Some(WINDOW));
        let later = t0 + WINDOW / 4;
        assert_eq!(w.hold("ns/a", later), Some(WINDOW - WINDOW / 4));
        assert_eq!(w.hold("ns/b", later), Some(WINDOW), "per object");
        assert_eq!(w.hold("ns/a", t0 + WINDOW), None, "due: write it");
        assert_eq!(
            w.hold("ns/a", t0 + WINDOW),
            Some(WINDOW),
            "the next change starts a new window"
        );
    }

    #[test]
    fn a_cluster_write_restarts_the_window_of_a_held_change() {
        let w = CountWrites::default();
        let t0 = Instant::now();
        w.renew("ns/a", t0);
        assert_eq!(
            w.hold("ns/a", t0 + WINDOW / 2),
            Some(WINDOW),
            "nothing held: no-op"
        );
        let t1 = t0 + WINDOW;
        w.renew("ns/a", t1);
        assert_eq!(w.hold("ns/a", t1 + WINDOW / 2), Some(WINDOW / 2));
        assert_eq!(w.hold("ns/a", t1 + WINDOW), None);
    }

    #[test]
    fn a_written_status_releases_what_was_held() {
        let w = CountWrites::default();
        let t0 = Instant::now();
        w.hold("ns/a", t0);
        w.written("ns/a");
        assert_eq!(w.hold("ns/a", t0 + WINDOW / 2), Some(WINDOW));
    }
}
