//! Guarding against acting on a cache that lags our own writes.
//!
//! After the controller writes a Rollout's status, its watch cache may still
//! hold the version it read before the write. Reconciling from that copy would
//! repeat old decisions (the root of upstream's lost-promote bugs). We remember,
//! per object, the resourceVersion our write superseded; a reconcile that sees
//! exactly that version is stale and waits for the next watch event. No ordering
//! of resourceVersions is assumed: they are opaque strings.

use std::collections::HashMap;
use std::sync::Mutex;

/// Per-object memory of superseded resourceVersions.
#[derive(Debug, Default)]
pub struct Freshness {
    superseded: Mutex<HashMap<String, String>>,
}

impl Freshness {
    /// Record that our write replaced version `old_rv` of `key`.
    pub fn wrote(&self, key: &str, old_rv: &str) {
        let mut map = self.superseded.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(key.to_string(), old_rv.to_string());
    }

    /// Whether a cached copy at `rv` is one we already superseded.
    pub fn is_stale(&self, key: &str, rv: &str) -> bool {
        let mut map = self.superseded.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(key) {
            Some(old) if old == rv => true,
            Some(_) => {
                // The cache moved past our write: forget it.
                map.remove(key);
                false
            }
            None => false,
        }
    }

    /// Forget an object (deleted).
    pub fn forget(&self, key: &str) {
        let mut map = self.superseded.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_superseded_version_is_stale_until_a_newer_one_is_seen() {
        let f = Freshness::default();
        assert!(!f.is_stale("ns/a", "10"));
        f.wrote("ns/a", "10");
        assert!(f.is_stale("ns/a", "10"));
        assert!(!f.is_stale("ns/a", "11"));
        assert!(
            !f.is_stale("ns/a", "10"),
            "once the cache caught up the memory is dropped"
        );
    }
}
