//! "Would this merge patch change anything?" — the check that keeps the controllers from
//! re-triggering themselves.
//!
//! Every status write bumps `resourceVersion` and comes back through the watch, so a write
//! that changes nothing would loop forever. The desired status is therefore compared with
//! what the server holds before it is sent. The comparison is lenient in exactly the ways a
//! real API server differs from what was written: fields the server added are ignored, and
//! a field the server omitted because it is the zero value (`omitempty`) equals a desired
//! `0`, `false`, `""`, `[]`, `{}` or `null`.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::informer::ObjectKey;

/// True when applying `desired` as a JSON merge patch onto `current` changes nothing
/// meaningful.
pub fn reflects(current: &Value, desired: &Value) -> bool {
    match (current, desired) {
        (Value::Object(cur), Value::Object(want)) => want.iter().all(|(k, v)| match cur.get(k) {
            Some(c) => reflects(c, v),
            None => is_zero(v),
        }),
        (Value::Array(cur), Value::Array(want)) => {
            cur.len() == want.len() && cur.iter().zip(want).all(|(c, w)| reflects(c, w))
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (c, w) if is_zero(c) && is_zero(w) => true,
        (c, w) => c == w,
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_zero),
    }
}

/// How long a write is assumed to be on its way through the watch.
const IN_FLIGHT: Duration = Duration::from_secs(10);

struct Memo {
    digest: u64,
    resource_version: Option<String>,
    at: Instant,
}

/// The status bodies a controller wrote and the `resourceVersion` each write produced.
///
/// The watch cache lags the controller's own writes: a reconcile that runs before its last
/// write comes back through the watch compares against the old copy and would send the same
/// body again. Remembering the write lets it skip that duplicate until the cache shows the
/// written `resourceVersion` (or, should the echo get lost, for at most ten seconds).
#[derive(Default)]
pub struct WriteMemo {
    memos: Mutex<HashMap<ObjectKey, Memo>>,
}

fn digest(body: &Value) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.to_string().hash(&mut h);
    h.finish()
}

impl WriteMemo {
    /// True when `body` is exactly what was last written for `key` and the cached copy
    /// (at `cached_rv`) is not yet the result of that write.
    pub fn in_flight(&self, key: &ObjectKey, body: &Value, cached_rv: Option<&str>) -> bool {
        let mut memos = self.memos.lock().unwrap_or_else(|e| e.into_inner());
        let Some(m) = memos.get(key) else {
            return false;
        };
        if m.resource_version.as_deref() == cached_rv || m.at.elapsed() > IN_FLIGHT {
            memos.remove(key);
            return false;
        }
        m.digest == digest(body)
    }

    /// Records that `body` was written for `key`, producing `resource_version`.
    pub fn record(&self, key: &ObjectKey, body: &Value, resource_version: Option<String>) {
        self.memos.lock().unwrap_or_else(|e| e.into_inner()).insert(
            key.clone(),
            Memo {
                digest: digest(body),
                resource_version,
                at: Instant::now(),
            },
        );
    }

    /// Notes the cached copy's version: once it is the one a write produced, that write is
    /// no longer in flight and its record is dropped.
    pub fn seen(&self, key: &ObjectKey, cached_rv: Option<&str>) {
        let mut memos = self.memos.lock().unwrap_or_else(|e| e.into_inner());
        if memos
            .get(key)
            .is_some_and(|m| m.resource_version.as_deref() == cached_rv)
        {
            memos.remove(key);
        }
    }

    /// Drops what is known about a deleted object.
    pub fn forget(&self, key: &ObjectKey) {
        self.memos
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_values_are_reflected() {
        assert!(reflects(
            &json!({"a": 1, "b": [1, 2]}),
            &json!({"a": 1, "b": [1, 2]})
        ));
    }

    #[test]
    fn fields_the_server_added_are_ignored() {
        assert!(reflects(
            &json!({"phase": "Running", "qosClass": "BestEffort"}),
            &json!({"phase": "Running"})
        ));
    }

    #[test]
    fn omitted_zero_values_equal_explicit_zeros() {
        assert!(reflects(
            &json!({"replicas": 3}),
            &json!({"replicas": 3, "readyReplicas": 0, "conditions": null})
        ));
    }

    #[test]
    fn any_real_difference_is_detected() {
        assert!(!reflects(&json!({"replicas": 3}), &json!({"replicas": 2})));
        assert!(!reflects(
            &json!({"replicas": 3}),
            &json!({"readyReplicas": 1})
        ));
        assert!(!reflects(&json!({"c": [1, 2]}), &json!({"c": [1]})));
        assert!(!reflects(&json!({"c": [{"a": 1}]}), &json!({"c": null})));
    }

    #[test]
    fn a_write_is_in_flight_until_the_cache_shows_its_version() {
        let memo = WriteMemo::default();
        let key = ObjectKey::new("ns", "p");
        let body = json!({"status": {"phase": "Running"}});
        assert!(!memo.in_flight(&key, &body, Some("1")));
        memo.record(&key, &body, Some("2".into()));
        assert!(memo.in_flight(&key, &body, Some("1")), "stale cache: skip");
        assert!(
            !memo.in_flight(&key, &json!({"status": {"phase": "Failed"}}), Some("1")),
            "a different body is written"
        );
        assert!(!memo.in_flight(&key, &body, Some("2")), "cache caught up");
        assert!(
            !memo.in_flight(&key, &body, Some("1")),
            "memo dropped once caught up"
        );
    }
}
