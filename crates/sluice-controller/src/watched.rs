//! Watched copies of objects a Rollout reads but does not own (its Services, its routes), with
//! a guard against reading one of them before our own write to it is seen.
//!
//! A reconcile reads these objects on every pass; GETting them each time cost a routed canary
//! three requests per reconcile. The watches that wake Rollouts on their changes keep the
//! copies instead. What a cache cannot tell by itself is whether it already shows the write a
//! previous reconcile made: the actuator records the resourceVersion each write returned
//! ([`WatchedObjects::wrote`]), and until the cache holds that version (or the object is read
//! back from the API server at it) a read of that object is answered [`Lookup::Verify`]: GET
//! it. resourceVersions are compared for equality only (they are opaque strings), so a write
//! by someone else after ours makes the next GET's version the one to wait for
//! ([`WatchedObjects::verified`]).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, RwLock};

use kube::runtime::watcher;

/// A cached copy, the resourceVersion it was stored at and what of it matters to the
/// objects that refer to it (see [`WatchedObjects::apply`]).
struct Entry<V> {
    rv: String,
    relevance: Option<u64>,
    value: Arc<V>,
}

/// What a read of a key found.
#[derive(Debug)]
pub enum Lookup<V> {
    /// The cache is complete and shows every write of ours: the object as cached (`None`: it
    /// does not exist).
    Cached(Option<Arc<V>>),
    /// The cache is not listed yet, or lags a write of ours to this object: read it from the
    /// API server, then report the result with [`WatchedObjects::verified`].
    Verify,
}

/// What the cache must show before a key is read from it again.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    /// The object at this resourceVersion.
    Version(String),
    /// The object gone.
    Absent,
}

struct Inner<K, V> {
    live: HashMap<K, Entry<V>>,
    /// Filled between a relist's `Init` and `InitDone`, then swapped in whole.
    relist: Option<HashMap<K, Entry<V>>>,
    /// Whether one list has completed (until then every read is [`Lookup::Verify`]).
    listed: bool,
    /// Our writes the cache did not show yet.
    expect: HashMap<K, Expect>,
}

/// Objects of one kind as the watch last reported them, keyed by `K` (see the module docs).
pub struct WatchedObjects<K, V> {
    inner: Arc<RwLock<Inner<K, V>>>,
}

impl<K, V> Clone for WatchedObjects<K, V> {
    fn clone(&self) -> Self {
        WatchedObjects {
            inner: self.inner.clone(),
        }
    }
}

impl<K, V> Default for WatchedObjects<K, V> {
    fn default() -> Self {
        WatchedObjects {
            inner: Arc::new(RwLock::new(Inner {
                live: HashMap::new(),
                relist: None,
                listed: false,
                expect: HashMap::new(),
            })),
        }
    }
}

impl<K: Hash + Eq + Clone, V> WatchedObjects<K, V> {
    /// Read `key`: the cached copy when the cache can be trusted for it, else [`Lookup::Verify`].
    pub fn get(&self, key: &K) -> Lookup<V> {
        {
            let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
            if !inner.listed {
                return Lookup::Verify;
            }
            if !inner.expect.contains_key(key) {
                return Lookup::Cached(inner.live.get(key).map(|e| e.value.clone()));
            }
        }
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        let met = inner
            .expect
            .get(key)
            .is_none_or(|want| shows(want, inner.live.get(key).map(|e| e.rv.as_str())));
        if !met {
            return Lookup::Verify;
        }
        inner.expect.remove(key);
        Lookup::Cached(inner.live.get(key).map(|e| e.value.clone()))
    }

    /// Record that our write left `key` at resourceVersion `rv` (`None`: deleted it).
    pub fn wrote(&self, key: K, rv: Option<String>) {
        let expect = rv.map_or(Expect::Absent, Expect::Version);
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if shows(&expect, inner.live.get(&key).map(|e| e.rv.as_str())) {
            // The watch was faster than the write's response.
            inner.expect.remove(&key);
        } else {
            inner.expect.insert(key, expect);
        }
    }

    /// Record what a GET of `key` that [`Lookup::Verify`] asked for returned (its
    /// resourceVersion; `None`: not found). A version other than the one we wrote is a later
    /// write (an object's resourceVersion changes with every write): wait for that one.
    pub fn verified(&self, key: &K, rv: Option<&str>) {
        let expect = rv.map_or(Expect::Absent, |v| Expect::Version(v.to_string()));
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if !inner.expect.contains_key(key) {
            return;
        }
        if shows(&expect, inner.live.get(key).map(|e| e.rv.as_str())) {
            inner.expect.remove(key);
        } else {
            inner.expect.insert(key.clone(), expect);
        }
    }

    /// Apply one watch event; `key_of` names an object, `rv_of` gives its resourceVersion,
    /// `relevance` hashes what of it matters to the objects that refer to it (`None`: treat
    /// every change as mattering) and `keep` turns it into what is cached.
    ///
    /// Returns whether the event must wake those objects: an object seen for the first time,
    /// deleted, or whose relevance changed since it was last cached. This is kube-runtime's
    /// `predicate_filter` kept in the cache's own entries, so the watch holds no second map
    /// of every object (and a deletion always wakes).
    pub fn apply<O>(
        &self,
        event: &watcher::Event<O>,
        key_of: impl Fn(&O) -> K,
        rv_of: impl Fn(&O) -> String,
        relevance: impl Fn(&O) -> Option<u64>,
        keep: impl Fn(&O) -> V,
    ) -> bool {
        let entry = |o: &O| Entry {
            rv: rv_of(o),
            relevance: relevance(o),
            value: Arc::new(keep(o)),
        };
        let changed = |before: Option<&Entry<V>>, now: &Entry<V>| !matches!((before.map(|e| e.relevance), now.relevance), (Some(Some(b)), Some(n)) if b == n);
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        match event {
            // An expectation the event meets is dropped here too, so one for an object that
            // is never read again (its Rollout deleted) does not stay behind.
            watcher::Event::Apply(o) => {
                let (key, entry) = (key_of(o), entry(o));
                if inner.expect.get(&key) == Some(&Expect::Version(entry.rv.clone())) {
                    inner.expect.remove(&key);
                }
                let wake = changed(inner.live.get(&key), &entry);
                inner.live.insert(key, entry);
                wake
            }
            watcher::Event::Delete(o) => {
                let key = key_of(o);
                if inner.expect.get(&key) == Some(&Expect::Absent) {
                    inner.expect.remove(&key);
                }
                inner.live.remove(&key);
                true
            }
            watcher::Event::Init => {
                inner.relist = Some(HashMap::new());
                false
            }
            watcher::Event::InitApply(o) => {
                let (key, entry) = (key_of(o), entry(o));
                // Compared with the copy of the list before (still live until this one is
                // complete).
                let wake = changed(inner.live.get(&key), &entry);
                inner
                    .relist
                    .get_or_insert_with(HashMap::new)
                    .insert(key, entry);
                wake
            }
            watcher::Event::InitDone => {
                let fresh = inner.relist.take().unwrap_or_default();
                inner.live = fresh;
                inner.listed = true;
                false
            }
        }
    }

    /// How many objects are cached (for tests and gauges).
    pub fn len(&self) -> usize {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        inner.live.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes of ours the cache does not show yet (for tests).
    pub fn pending(&self) -> usize {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        inner.expect.len()
    }
}

/// Whether a cached copy at `cached` (`None`: absent) shows what `want` waits for.
fn shows(want: &Expect, cached: Option<&str>) -> bool {
    match (want, cached) {
        (Expect::Version(rv), Some(have)) => rv == have,
        (Expect::Absent, None) => true,
        _ => false,
    }
}

/// The object a watch event is about (none for the markers of a list).
pub fn touched<O>(event: watcher::Event<O>) -> Option<O> {
    match event {
        watcher::Event::Apply(o) | watcher::Event::InitApply(o) | watcher::Event::Delete(o) => {
            Some(o)
        }
        watcher::Event::Init | watcher::Event::InitDone => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Obj = (&'static str, &'static str, u32);
    type Cache = WatchedObjects<String, u32>;

    fn apply(c: &Cache, e: watcher::Event<Obj>) -> bool {
        c.apply(
            &e,
            |o| o.0.to_string(),
            |o| o.1.to_string(),
            |o| Some(u64::from(o.2)),
            |o| o.2,
        )
    }

    fn listed(objs: &[Obj]) -> Cache {
        let c = Cache::default();
        apply(&c, watcher::Event::Init);
        for o in objs {
            apply(&c, watcher::Event::InitApply(*o));
        }
        apply(&c, watcher::Event::InitDone);
        c
    }

    fn cached(l: Lookup<u32>) -> Option<u32> {
        match l {
            Lookup::Cached(v) => v.map(|v| *v),
            Lookup::Verify => panic!("expected a cached answer, got Verify"),
        }
    }

    #[test]
    fn nothing_is_answered_from_the_cache_before_its_first_list_completes() {
        let c = Cache::default();
        assert!(matches!(c.get(&"a".into()), Lookup::Verify));
        apply(&c, watcher::Event::Init);
        apply(&c, watcher::Event::InitApply(("a", "1", 7)));
        assert!(matches!(c.get(&"a".into()), Lookup::Verify));
        apply(&c, watcher::Event::InitDone);
        assert_eq!(cached(c.get(&"a".into())), Some(7));
        assert_eq!(
            cached(c.get(&"b".into())),
            None,
            "listed: absent means gone"
        );
    }

    #[test]
    fn a_key_we_wrote_is_verified_until_the_cache_shows_our_version() {
        let c = listed(&[("a", "1", 1)]);
        c.wrote("a".into(), Some("2".into()));
        assert!(matches!(c.get(&"a".into()), Lookup::Verify));
        assert!(
            matches!(c.get(&"a".into()), Lookup::Verify),
            "still lagging"
        );
        // The GET sees our write; the cache still lags.
        c.verified(&"a".into(), Some("2"));
        assert!(matches!(c.get(&"a".into()), Lookup::Verify));
        apply(&c, watcher::Event::Apply(("a", "2", 2)));
        assert_eq!(cached(c.get(&"a".into())), Some(2));
        assert_eq!(c.pending(), 0);
        // Another key was never in doubt.
        c.wrote("b".into(), Some("9".into()));
        assert!(matches!(c.get(&"b".into()), Lookup::Verify));
        assert_eq!(cached(c.get(&"a".into())), Some(2));
    }

    #[test]
    fn a_later_write_by_someone_else_becomes_the_version_to_wait_for() {
        let c = listed(&[("a", "1", 1)]);
        c.wrote("a".into(), Some("2".into()));
        // The cache skipped straight to someone else's later version: never equal to ours.
        apply(&c, watcher::Event::Apply(("a", "3", 3)));
        assert!(matches!(c.get(&"a".into()), Lookup::Verify));
        c.verified(&"a".into(), Some("3"));
        assert_eq!(cached(c.get(&"a".into())), Some(3));
        assert_eq!(c.pending(), 0, "the GET matched the cache: nothing pending");
    }

    #[test]
    fn the_watch_event_of_our_write_clears_its_expectation_without_a_read() {
        let c = listed(&[("a", "1", 1)]);
        c.wrote("a".into(), Some("2".into()));
        apply(&c, watcher::Event::Apply(("a", "2", 2)));
        assert_eq!(c.pending(), 0);
        c.wrote("a".into(), None);
        apply(&c, watcher::Event::Delete(("a", "2", 2)));
        assert_eq!(c.pending(), 0);
    }

    #[test]
    fn a_watch_faster_than_the_write_response_leaves_nothing_pending() {
        let c = listed(&[("a", "1", 1)]);
        apply(&c, watcher::Event::Apply(("a", "2", 2)));
        c.wrote("a".into(), Some("2".into()));
        assert_eq!(c.pending(), 0);
        assert_eq!(cached(c.get(&"a".into())), Some(2));
    }

    #[test]
    fn a_deletion_of_ours_is_trusted_once_the_cache_drops_the_object() {
        let c = listed(&[("a", "1", 1)]);
        c.wrote("a".into(), None);
        assert!(matches!(c.get(&"a".into()), Lookup::Verify));
        apply(&c, watcher::Event::Delete(("a", "1", 1)));
        assert_eq!(cached(c.get(&"a".into())), None);
        assert_eq!(c.pending(), 0);
    }

    #[test]
    fn a_relist_replaces_the_copies_only_when_complete() {
        let c = listed(&[("gone", "1", 1)]);
        apply(&c, watcher::Event::Init);
        apply(&c, watcher::Event::InitApply(("kept", "5", 5)));
        assert_eq!(
            cached(c.get(&"gone".into())),
            Some(1),
            "half a relist is not shown"
        );
        apply(&c, watcher::Event::InitDone);
        assert_eq!(cached(c.get(&"gone".into())), None);
        assert_eq!(cached(c.get(&"kept".into())), Some(5));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn an_event_wakes_referrers_when_the_object_is_new_gone_or_its_relevance_changed() {
        let c = Cache::default();
        assert!(!apply(&c, watcher::Event::Init));
        assert!(
            apply(&c, watcher::Event::InitApply(("a", "1", 1))),
            "first seen"
        );
        assert!(!apply(&c, watcher::Event::InitDone));
        assert!(
            !apply(&c, watcher::Event::Apply(("a", "2", 1))),
            "same relevance"
        );
        assert!(
            apply(&c, watcher::Event::Apply(("a", "3", 2))),
            "relevance changed"
        );
        // A relist compares with what was listed before it.
        apply(&c, watcher::Event::Init);
        assert!(!apply(&c, watcher::Event::InitApply(("a", "3", 2))));
        assert!(apply(&c, watcher::Event::InitApply(("b", "4", 2))), "new");
        apply(&c, watcher::Event::InitDone);
        assert!(apply(&c, watcher::Event::Delete(("a", "3", 2))), "deleted");
        let none = Cache::default();
        let always = |e: watcher::Event<Obj>| {
            none.apply(
                &e,
                |o| o.0.to_string(),
                |o| o.1.to_string(),
                |_| None,
                |o| o.2,
            )
        };
        assert!(always(watcher::Event::Apply(("a", "1", 1))));
        assert!(
            always(watcher::Event::Apply(("a", "2", 1))),
            "no relevance: every change wakes"
        );
    }

    #[test]
    fn touched_gives_the_object_of_an_object_event_only() {
        assert_eq!(touched(watcher::Event::Apply(1)), Some(1));
        assert_eq!(touched(watcher::Event::InitApply(2)), Some(2));
        assert_eq!(touched(watcher::Event::Delete(3)), Some(3));
        assert_eq!(touched::<u8>(watcher::Event::Init), None);
        assert_eq!(touched::<u8>(watcher::Event::InitDone), None);
    }
}
