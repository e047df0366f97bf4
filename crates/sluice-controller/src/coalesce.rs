//! Coalescing status writes that only report progress within a step.
//!
//! While a canary step scales, every pod the ReplicaSet controller counts as created, ready
//! and available changes the Rollout's summed counts by one, and the progress messages that
//! follow them ("more replicas need to be updated", "old replicas are pending termination",
//! the Progressing condition's `NewReplicaSetCreated` becoming `ReplicaSetUpdated`) change
//! with them. Each change would be one status PATCH that nothing decides on: phase, step
//! index, observedGeneration, weights and every condition's status are written at once, with
//! the current counts and messages. So a status change that touches only the counts and
//! those messages ([`progress_only`]) waits up to [`WINDOW`] for company; if none comes, it
//! is written when the window ends. A reconcile that writes to the cluster for the Rollout
//! (scales a ReplicaSet, sets a route's weights) starts the window again
//! ([`CountWrites::renew`]): the status write that completes the step follows it, and takes
//! the held change along (a routed step otherwise paid one more status write whenever the
//! route's verification came more than a window after the canary's first pod).

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

/// Upstream's Rollout messages while replicas are being created, made available or removed
/// (the engine's `phase`): they follow the counts.
const REPLICA_PROGRESS_MESSAGES: [&str; 3] = [
    "more replicas need to be updated",
    "updated replicas are still becoming available",
    "old replicas are pending termination",
];

/// Upstream's Progressing reasons of a new ReplicaSet: just created, then scaling.
const NEW_REPLICA_SET_CREATED: &str = "NewReplicaSetCreated";
const REPLICA_SET_UPDATED: &str = "ReplicaSetUpdated";

/// Whether the status change from `old` to `new` (whose merge patch is `diff`) only reports
/// progress: replica counts, the top-level message, the routers' weights as last read back,
/// and conditions whose messages changed
/// while their types and statuses did not, and whose reasons did not either, except the
/// Progressing condition's `NewReplicaSetCreated` → `ReplicaSetUpdated`.
pub fn progress_only(old: &Value, new: &Value, diff: &Value) -> bool {
    let Some(fields) = diff.as_object().filter(|m| !m.is_empty()) else {
        return false;
    };
    let holdable = |k: &str| COUNT_FIELDS.contains(&k) || k == "message" || k == "conditions";
    // `status.canary.weights` is what the routers were last read back holding: a step
    // completes, pauses or promotes on the routes themselves and writes the weights with
    // that decision, so a change of the record alone is progress too.
    let weights_only = |v: &Value| {
        v.as_object()
            .is_some_and(|m| !m.is_empty() && m.keys().all(|k| k == "weights"))
    };
    if !fields
        .iter()
        .all(|(k, v)| holdable(k) || (k == "canary" && weights_only(v)))
    {
        return false;
    }
    // Messages are held only while they tell of replicas moving; a state a tool or a person
    // waits to see ("active service cutover pending", "waiting for analysis to complete",
    // "rollout is restarting") is written at once, however briefly it lasts.
    if (fields.contains_key("message") || fields.contains_key("conditions"))
        && !new
            .get("message")
            .and_then(Value::as_str)
            .is_some_and(|m| REPLICA_PROGRESS_MESSAGES.contains(&m))
    {
        return false;
    }
    if !fields.contains_key("conditions") {
        return true;
    }
    let (before, after) = (conditions(old), conditions(new));
    before.len() == after.len()
        && before.iter().all(|(&type_, &(status, reason))| {
            after.get(type_).is_some_and(|&(s, r)| {
                s == status
                    && (r == reason
                        || (type_ == "Progressing"
                            && reason == NEW_REPLICA_SET_CREATED
                            && r == REPLICA_SET_UPDATED))
            })
        })
}

/// A status's conditions: type → (status, reason).
fn conditions(status: &Value) -> HashMap<&str, (&str, &str)> {
    fn s<'a>(c: &'a Value, k: &str) -> &'a str {
        c.get(k).and_then(Value::as_str).unwrap_or_default()
    }
    status
        .get("conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| (s(c, "type"), (s(c, "status"), s(c, "reason"))))
        .collect()
}

/// The longest a progress-only change waits however many cluster writes renew its window:
/// a Rollout whose reconciles keep writing (evictions refused by a disruption budget, a
/// write retried after an error) still reports its counts this often.
pub const MAX_HOLD: Duration = Duration::from_secs(3);

/// Per object: since when a progress-only status change has been held back, and since when
/// its current window runs.
#[derive(Debug, Default)]
pub struct CountWrites {
    held: Mutex<HashMap<String, (Instant, Instant)>>,
}

impl CountWrites {
    /// The keys anything is remembered for.
    pub fn keys(&self) -> Vec<String> {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// For a progress-only change of `key` at `now`: `None` to write it now, or how much
    /// longer it may wait (the caller requeues for then).
    pub fn hold(&self, key: &str, now: Instant) -> Option<Duration> {
        let mut map = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let (first, window) = *map.entry(key.to_string()).or_insert((now, now));
        let due = (window + WINDOW).min(first + MAX_HOLD);
        if now >= due {
            map.remove(key);
            None
        } else {
            Some(due - now)
        }
    }

    /// A reconcile of `key` wrote to the cluster at `now`: a change held back waits for the
    /// status write that follows, up to one window from now (and [`MAX_HOLD`] in all).
    pub fn renew(&self, key: &str, now: Instant) {
        let mut map = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, window)) = map.get_mut(key) {
            *window = now;
        }
    }

    /// The status of `key` was written (or the object is gone): nothing is held.
    pub fn written(&self, key: &str) {
        let mut map = self.held.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_and_the_message_are_progress_but_any_other_field_is_not() {
        let cases = [
            (json!({"availableReplicas": 2}), true),
            (
                json!({"replicas": 3, "readyReplicas": 2, "HPAReplicas": 3}),
                true,
            ),
            (json!({"availableReplicas": 2, "phase": "Paused"}), false),
            (
                json!({"availableReplicas": 2, "message": "old replicas are pending termination"}),
                true,
            ),
            (
                json!({"availableReplicas": 2, "message": "active service cutover pending"}),
                false,
            ),
            (json!({"observedGeneration": "2"}), false),
            (json!({"canary": {"weights": null}}), true),
            (
                json!({"canary": {"weights": {"canary": {"weight": 0}}, "currentBackgroundAnalysisRunStatus": null}}),
                false,
            ),
            (json!({}), false),
            (json!(null), false),
        ];
        for (diff, want) in cases {
            assert_eq!(progress_only(&json!({}), &diff, &diff), want, "{diff}");
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

    fn status(message: &str, progressing: (&str, &str), ready: &str) -> Value {
        json!({
            "message": message,
            "replicas": 3,
            "conditions": [
                {"type": "Progressing", "status": progressing.0, "reason": progressing.1, "message": message},
                {"type": "Ready", "status": ready, "reason": "Progressing", "message": message},
            ]
        })
    }

    #[test]
    fn progress_messages_and_counts_are_held_but_a_status_or_reason_change_is_not() {
        let created = status(
            "more replicas need to be updated",
            ("True", NEW_REPLICA_SET_CREATED),
            "False",
        );
        let scaling = status(
            "old replicas are pending termination",
            ("True", REPLICA_SET_UPDATED),
            "False",
        );
        let diff = |a: &Value, b: &Value| crate::status_patch::merge_diff(a, b).unwrap();
        let cases = [
            ("created → scaling", &created, &scaling, true),
            (
                "a Ready status change",
                &scaling,
                &status(
                    "old replicas are pending termination",
                    ("True", REPLICA_SET_UPDATED),
                    "True",
                ),
                false,
            ),
            (
                "paused: Progressing Unknown",
                &scaling,
                &status("CanaryPauseStep", ("Unknown", "RolloutPaused"), "False"),
                false,
            ),
            (
                "a reason change other than created → updated",
                &scaling,
                &status("x", ("True", "NewReplicaSetAvailable"), "False"),
                false,
            ),
            (
                "scaling → created is not progress",
                &scaling,
                &created,
                false,
            ),
        ];
        for (what, old, new, want) in cases {
            assert_eq!(progress_only(old, new, &diff(old, new)), want, "{what}");
        }
        let mut more = scaling.clone();
        more["phase"] = json!("Paused");
        assert!(
            !progress_only(&scaling, &more, &diff(&scaling, &more)),
            "phase"
        );
        let mut counted = scaling.clone();
        counted["availableReplicas"] = json!(2);
        assert!(
            progress_only(&scaling, &counted, &diff(&scaling, &counted)),
            "counts"
        );
        let mut extra = scaling.clone();
        extra["conditions"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "InvalidSpec", "status": "True", "reason": "InvalidSpec"}));
        assert!(
            !progress_only(&scaling, &extra, &diff(&scaling, &extra)),
            "a new condition"
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
    fn renewals_never_hold_a_change_longer_than_max_hold() {
        let w = CountWrites::default();
        let t0 = Instant::now();
        assert_eq!(w.hold("ns/a", t0), Some(WINDOW));
        let mut t = t0;
        while t + WINDOW / 2 < t0 + MAX_HOLD {
            t += WINDOW / 2;
            w.renew("ns/a", t);
            let left = w.hold("ns/a", t).expect("still within MAX_HOLD");
            assert_eq!(left, WINDOW.min(t0 + MAX_HOLD - t));
        }
        assert_eq!(w.hold("ns/a", t0 + MAX_HOLD), None, "written at MAX_HOLD");
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
