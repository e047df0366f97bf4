//! Guarding against acting on a cache that lags our own writes.
//!
//! After the controller writes a Rollout's status, its watch cache may still
//! hold the version it read before the write. Reconciling from that copy would
//! repeat old decisions (the root of upstream's lost-promote bugs). We remember,
//! per object, the resourceVersions our writes superseded (one reconcile may write
//! the Rollout twice: its revision annotation, then its status); a reconcile that
//! sees one of them is stale and waits for the next watch event. No ordering of
//! resourceVersions is assumed: they are opaque strings.

use std::collections::HashMap;
use std::sync::Mutex;

/// Per-object memory of superseded resourceVersions.
#[derive(Debug, Default)]
pub struct Freshness {
    superseded: Mutex<HashMap<String, Vec<String>>>,
}

impl Freshness {
    /// The keys anything is remembered for.
    pub fn keys(&self) -> Vec<String> {
        self.superseded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// Record that our write replaced version `old_rv` of `key`.
    pub fn wrote(&self, key: &str, old_rv: &str) {
        self.wrote_all(key, [old_rv]);
    }

    /// Record that our writes of one reconcile replaced these versions of `key`.
    pub fn wrote_all<'a>(&self, key: &str, old_rvs: impl IntoIterator<Item = &'a str>) {
        let old: Vec<String> = old_rvs.into_iter().map(str::to_string).collect();
        if old.is_empty() {
            return;
        }
        let mut map = self.superseded.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(key.to_string(), old);
    }

    /// Whether a cached copy at `rv` is one we already superseded.
    pub fn is_stale(&self, key: &str, rv: &str) -> bool {
        let mut map = self.superseded.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(key) {
            Some(old) if old.iter().any(|o| o == rv) => true,
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

    #[test]
    fn every_version_one_reconcile_superseded_is_stale() {
        let f = Freshness::default();
        // Read at 10, annotated (→ 11), status written (→ 12).
        f.wrote_all("ns/a", ["10", "11"]);
        assert!(f.is_stale("ns/a", "10"));
        assert!(
            f.is_stale("ns/a", "11"),
            "the annotated copy lacks our status"
        );
        assert!(!f.is_stale("ns/a", "12"));
        assert!(
            !f.is_stale("ns/a", "11"),
            "forgotten once the cache caught up"
        );
        f.wrote_all("ns/a", []);
        assert!(!f.is_stale("ns/a", "10"), "an empty write records nothing");
    }
}
