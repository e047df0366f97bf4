//! Watch caches of owned objects, indexed by the UID of their controlling owner.
//!
//! A reconcile needs "the ReplicaSets (AnalysisRuns, Experiments) this Rollout controls".
//! kube-runtime's reflector `Store` can only answer that by scanning every cached object,
//! which makes each reconcile O(all objects) and a mass update of N Rollouts O(N²). This
//! cache is fed from the same watch stream (in place of `.reflect(writer)`) and keeps the
//! objects grouped by the UID of their controller ownerReference, so the question costs
//! O(objects of that owner). Objects without a controller of the configured kind are not
//! kept at all: nobody looks them up, and the ReplicaSet watch is shared by label with
//! Experiments' ReplicaSets. Objects are kept JSON-encoded ([`super::packed`]) and decoded
//! for the reconcile that asks for them; fed from a watch of [`Undecoded`] objects, one that
//! does not decode is kept too, and fails only the reconcile of its owner.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use futures::{Stream, TryStreamExt};
use kube::Resource;
use kube::runtime::{WatchStreamExt, watcher};
use serde::Serialize;
use serde::de::DeserializeOwned;
use smallvec::SmallVec;
use tokio::sync::watch;

use super::packed::Cached;
use super::undecoded::Undecoded;

/// What a watch event carries into the index: a whole object, or an [`Undecoded`] one.
pub trait IntoCached<K>: Resource {
    /// The cache entry of this object (the event that carries it goes on down the stream,
    /// so it is read, not taken: no copy of a whole object is made to cache it).
    fn to_cached(&self) -> Cached<K>;
}

impl<K: Resource + Serialize + DeserializeOwned + Clone> IntoCached<K> for K {
    fn to_cached(&self) -> Cached<K> {
        Cached::of(self)
    }
}

impl<K> IntoCached<K> for Undecoded<K>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned,
{
    fn to_cached(&self) -> Cached<K> {
        Cached::Packed(self.packed().clone())
    }
}

/// `namespace/name` of a cached object (a namespace has no `/`): one allocation, shared by
/// both maps of [`Objects`].
type Key = Arc<str>;

/// The UID of an owner: one allocation per owner, shared by its objects' entries.
type OwnerUid = Arc<str>;

/// An owner's objects, sorted by key. Most owners have one or two (a Rollout's stable and
/// canary ReplicaSets), held inline: a `BTreeMap` allocated a node with room for eleven.
type Owned<K> = SmallVec<[(Key, Cached<K>); 2]>;

/// One generation of cached objects (the live one, or the one a relist is filling).
struct Objects<K> {
    by_owner: HashMap<OwnerUid, Owned<K>>,
    owner_of: HashMap<Key, OwnerUid>,
}

impl<K> Default for Objects<K> {
    fn default() -> Self {
        Self {
            by_owner: HashMap::new(),
            owner_of: HashMap::new(),
        }
    }
}

impl<K: Serialize + DeserializeOwned + Clone> Objects<K> {
    fn remove(&mut self, key: &str) {
        if let Some(owner) = self.owner_of.remove(key)
            && let Some(owned) = self.by_owner.get_mut(&owner)
        {
            owned.retain(|(k, _)| &**k != key);
            if owned.is_empty() {
                self.by_owner.remove(&owner);
            }
        }
    }

    /// Keep `obj()` under `owner`; an object with no owner of the kind is not kept (nor
    /// made: `obj` is not called).
    fn put(&mut self, key: String, owner: Option<&str>, obj: impl FnOnce() -> Cached<K>) {
        // An object whose controller changed (adoption, orphaning) moves or leaves.
        if self.owner_of.get(key.as_str()).map(|o| &**o) != owner {
            self.remove(&key);
        }
        let Some(owner) = owner else {
            return;
        };
        let obj = obj();
        let (key, owner) = match self.owner_of.get_key_value(key.as_str()) {
            Some((key, owner)) => (key.clone(), owner.clone()),
            None => {
                let owner: OwnerUid = match self.by_owner.get_key_value(owner) {
                    Some((shared, _)) => shared.clone(),
                    None => Arc::from(owner),
                };
                let key: Key = Arc::from(key);
                self.owner_of.insert(key.clone(), owner.clone());
                (key, owner)
            }
        };
        let owned = self.by_owner.entry(owner).or_default();
        match owned.binary_search_by(|(k, _)| (**k).cmp(&*key)) {
            Ok(i) => owned[i].1 = obj,
            Err(i) => owned.insert(i, (key, obj)),
        }
    }
}

/// The index itself, without locking or readiness: what the watch events do to it.
pub struct OwnerIndex<K> {
    owner_kind: &'static str,
    live: Objects<K>,
    /// Filled between a relist's `Init` and `InitDone`, then swapped in whole, so readers
    /// never see a half-listed cache.
    relist: Option<Objects<K>>,
}

impl<K: Resource + Serialize + DeserializeOwned + Clone> OwnerIndex<K> {
    /// An empty index that keeps objects whose controller ownerReference has `owner_kind`.
    pub fn new(owner_kind: &'static str) -> Self {
        Self {
            owner_kind,
            live: Objects::default(),
            relist: None,
        }
    }

    fn key_and_owner<E: Resource>(&self, obj: &E) -> (String, Option<String>) {
        let meta = obj.meta();
        let key = format!(
            "{}/{}",
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default()
        );
        let owner = meta
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .filter(|o| o.kind == self.owner_kind)
            .map(|o| o.uid.clone());
        (key, owner)
    }

    /// Apply one watch event. Returns true when a relist completed (the cache is whole).
    pub fn apply(&mut self, event: watcher::Event<K>) -> bool {
        self.apply_as(&event)
    }

    /// [`OwnerIndex::apply`] for a watch of whole or [`Undecoded`] objects.
    pub fn apply_as<E: IntoCached<K>>(&mut self, event: &watcher::Event<E>) -> bool {
        match event {
            watcher::Event::Apply(obj) => {
                let (key, owner) = self.key_and_owner(obj);
                self.live.put(key, owner.as_deref(), || obj.to_cached());
            }
            watcher::Event::Delete(obj) => {
                let (key, _) = self.key_and_owner(obj);
                self.live.remove(&key);
            }
            watcher::Event::Init => self.relist = Some(Objects::default()),
            watcher::Event::InitApply(obj) => {
                let (key, owner) = self.key_and_owner(obj);
                self.relist
                    .get_or_insert_with(Objects::default)
                    .put(key, owner.as_deref(), || obj.to_cached());
            }
            watcher::Event::InitDone => {
                self.live = self.relist.take().unwrap_or_default();
                return true;
            }
        }
        false
    }

    /// Copies of the objects in `namespace` controlled by the owner with `owner_uid`, by
    /// name. Fails only if a cached encoding does not decode (then the caller must not plan
    /// on a partial view).
    pub fn owned_by(&self, namespace: &str, owner_uid: &str) -> Result<Vec<K>, serde_json::Error> {
        self.cached_by(namespace, owner_uid)
            .iter()
            .map(Cached::get)
            .collect()
    }

    /// The cache entries behind [`OwnerIndex::owned_by`] (cheap clones, not decoded).
    fn cached_by(&self, namespace: &str, owner_uid: &str) -> Vec<Cached<K>> {
        self.live
            .by_owner
            .get(owner_uid)
            .into_iter()
            .flatten()
            .filter(|(key, _)| {
                key.strip_prefix(namespace)
                    .is_some_and(|name| name.starts_with('/'))
            })
            .map(|(_, obj)| obj.clone())
            .collect()
    }

    /// How many objects are cached.
    pub fn len(&self) -> usize {
        self.live.owner_of.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.live.owner_of.is_empty()
    }
}

/// The cache was dropped with its watch before the first list completed.
#[derive(Debug, thiserror::Error)]
#[error("the watch feeding this cache stopped before its first list completed")]
pub struct NeverReady;

/// A read handle on an [`OwnerIndex`] fed by a watch (see [`OwnedStore::reflect`]).
pub struct OwnedStore<K> {
    index: Arc<RwLock<OwnerIndex<K>>>,
    ready: watch::Receiver<bool>,
}

impl<K> Clone for OwnedStore<K> {
    fn clone(&self) -> Self {
        Self {
            index: self.index.clone(),
            ready: self.ready.clone(),
        }
    }
}

impl<K> OwnedStore<K>
where
    K: Resource + Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// [`OwnedStore::reflect`] over a watch of the objects of `api` carrying `label` (a
    /// label selector), without their managedFields, which no decision reads. Watch
    /// `Api<Undecoded<K>>` for kinds whose objects may not decode.
    pub fn watch_labelled<E>(
        owner_kind: &'static str,
        api: kube::Api<E>,
        label: &str,
    ) -> (
        Self,
        impl Stream<Item = Result<watcher::Event<E>, watcher::Error>> + Send + 'static,
    )
    where
        E: IntoCached<K> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
        E::DynamicType: Default,
    {
        Self::reflect_as(
            owner_kind,
            watcher(api, watcher::Config::default().labels(label))
                .default_backoff()
                .modify(|o: &mut E| o.meta_mut().managed_fields = None),
        )
    }

    /// A cache of the objects controlled by objects of `owner_kind`, and the watch stream
    /// that fills it: poll the returned stream (it yields the events unchanged, after
    /// applying them) and the cache follows.
    pub fn reflect<S>(
        owner_kind: &'static str,
        stream: S,
    ) -> (
        Self,
        impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    )
    where
        S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    {
        Self::reflect_as(owner_kind, stream)
    }

    /// [`OwnedStore::reflect`] for a watch of whole or [`Undecoded`] objects.
    pub fn reflect_as<S, E>(
        owner_kind: &'static str,
        stream: S,
    ) -> (
        Self,
        impl Stream<Item = Result<watcher::Event<E>, watcher::Error>> + Send + 'static,
    )
    where
        S: Stream<Item = Result<watcher::Event<E>, watcher::Error>> + Send + 'static,
        E: IntoCached<K> + Clone,
    {
        let index = Arc::new(RwLock::new(OwnerIndex::new(owner_kind)));
        let (ready_tx, ready) = watch::channel(false);
        let writer = index.clone();
        let stream = stream.inspect_ok(move |event| {
            let mut index = writer.write().unwrap_or_else(|p| p.into_inner());
            if index.apply_as(event) {
                ready_tx.send_replace(true);
            }
        });
        (Self { index, ready }, stream)
    }

    /// Copies of the objects in `namespace` controlled by the owner with `owner_uid`.
    pub fn owned_by(&self, namespace: &str, owner_uid: &str) -> Result<Vec<K>, serde_json::Error> {
        // Decoded after the lock is released: the watch must not wait on decoding.
        let cached = self.read().cached_by(namespace, owner_uid);
        cached.iter().map(Cached::get).collect()
    }

    /// How many objects are cached.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Wait until the first list has been applied.
    pub async fn wait_ready(&self) -> Result<(), NeverReady> {
        let mut ready = self.ready.clone();
        ready
            .wait_for(|r| *r)
            .await
            .map(|_| ())
            .map_err(|_| NeverReady)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, OwnerIndex<K>> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use watcher::Event;

    fn rs(ns: &str, name: &str, owner: Option<(&str, &str)>, controller: bool) -> ReplicaSet {
        let mut rs = ReplicaSet::default();
        rs.metadata.namespace = Some(ns.into());
        rs.metadata.name = Some(name.into());
        rs.metadata.owner_references = owner.map(|(kind, uid)| {
            vec![OwnerReference {
                api_version: "argoproj.io/v1alpha1".into(),
                kind: kind.into(),
                name: format!("owner-{uid}"),
                uid: uid.into(),
                controller: Some(controller),
                block_owner_deletion: None,
            }]
        });
        rs
    }

    fn names(objs: &Result<Vec<ReplicaSet>, serde_json::Error>) -> Vec<String> {
        objs.as_ref()
            .expect("decodes")
            .iter()
            .map(|o| o.metadata.name.clone().unwrap_or_default())
            .collect()
    }

    fn listed(objs: Vec<ReplicaSet>) -> OwnerIndex<ReplicaSet> {
        let mut idx = OwnerIndex::new("Rollout");
        idx.apply(Event::Init);
        for o in objs {
            idx.apply(Event::InitApply(o));
        }
        assert!(idx.apply(Event::InitDone));
        idx
    }

    #[test]
    fn lookups_return_only_the_objects_the_owner_controls_in_its_namespace() {
        let idx = listed(vec![
            rs("a", "web-2", Some(("Rollout", "u1")), true),
            rs("a", "web-1", Some(("Rollout", "u1")), true),
            rs("a", "api-1", Some(("Rollout", "u2")), true),
            rs("b", "web-1", Some(("Rollout", "u1")), true),
        ]);
        assert_eq!(names(&idx.owned_by("a", "u1")), ["web-1", "web-2"]);
        assert_eq!(names(&idx.owned_by("a", "u2")), ["api-1"]);
        assert_eq!(names(&idx.owned_by("b", "u1")), ["web-1"]);
        assert!(names(&idx.owned_by("a", "u3")).is_empty());
    }

    #[test]
    fn objects_without_a_controller_of_the_owner_kind_are_not_kept() {
        let idx = listed(vec![
            rs("a", "exp-1", Some(("Experiment", "u1")), true),
            rs("a", "loose", Some(("Rollout", "u1")), false),
            rs("a", "orphan", None, false),
            rs("a", "mine", Some(("Rollout", "u1")), true),
        ]);
        assert_eq!(names(&idx.owned_by("a", "u1")), ["mine"]);
        assert_eq!(idx.len(), 1);
    }

    #[test]
    fn updates_replace_deletes_remove_and_an_owner_change_moves_the_object() {
        let mut idx = listed(vec![]);
        idx.apply(Event::Apply(rs("a", "x", Some(("Rollout", "u1")), true)));
        let mut scaled = rs("a", "x", Some(("Rollout", "u1")), true);
        scaled.metadata.generation = Some(2);
        idx.apply(Event::Apply(scaled));
        let got = idx.owned_by("a", "u1").expect("decodes");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].metadata.generation, Some(2));

        idx.apply(Event::Apply(rs("a", "x", Some(("Rollout", "u2")), true)));
        assert!(names(&idx.owned_by("a", "u1")).is_empty());
        assert_eq!(names(&idx.owned_by("a", "u2")), ["x"]);

        idx.apply(Event::Apply(rs("a", "x", None, false)));
        assert!(names(&idx.owned_by("a", "u2")).is_empty());
        assert!(idx.is_empty());

        idx.apply(Event::Apply(rs("a", "y", Some(("Rollout", "u1")), true)));
        idx.apply(Event::Delete(rs("a", "y", Some(("Rollout", "u1")), true)));
        assert!(names(&idx.owned_by("a", "u1")).is_empty());
        assert!(
            idx.live.by_owner.is_empty(),
            "empty owner entries are dropped"
        );
    }

    #[test]
    fn a_relist_replaces_the_cache_only_when_it_completes() {
        let mut idx = listed(vec![
            rs("a", "old", Some(("Rollout", "u1")), true),
            rs("a", "kept", Some(("Rollout", "u1")), true),
        ]);
        assert!(!idx.apply(Event::Init));
        idx.apply(Event::InitApply(rs(
            "a",
            "kept",
            Some(("Rollout", "u1")),
            true,
        )));
        idx.apply(Event::InitApply(rs(
            "a",
            "new",
            Some(("Rollout", "u2")),
            true,
        )));
        // Mid-relist, readers still see the previous complete list.
        assert_eq!(names(&idx.owned_by("a", "u1")), ["kept", "old"]);
        assert!(names(&idx.owned_by("a", "u2")).is_empty());
        assert!(idx.apply(Event::InitDone));
        assert_eq!(names(&idx.owned_by("a", "u1")), ["kept"]);
        assert_eq!(names(&idx.owned_by("a", "u2")), ["new"]);
    }

    #[tokio::test]
    async fn the_store_follows_its_stream_and_is_ready_after_the_first_list() {
        let events = vec![
            Ok(Event::Init),
            Ok(Event::InitApply(rs(
                "a",
                "x",
                Some(("Rollout", "u1")),
                true,
            ))),
            Ok(Event::InitDone),
            Ok(Event::Apply(rs("a", "y", Some(("Rollout", "u1")), true))),
        ];
        let (store, stream) = OwnedStore::reflect("Rollout", futures::stream::iter(events));
        let mut stream = Box::pin(stream);
        assert!(store.is_empty());
        assert!(matches!(
            futures::StreamExt::next(&mut stream).await,
            Some(Ok(Event::Init))
        ));
        futures::StreamExt::next(&mut stream).await;
        assert!(store.is_empty(), "not visible before InitDone");
        futures::StreamExt::next(&mut stream).await;
        store.wait_ready().await.expect("ready after InitDone");
        assert_eq!(store.len(), 1);
        futures::StreamExt::next(&mut stream).await;
        assert_eq!(names(&store.owned_by("a", "u1")), ["x", "y"]);
    }

    #[test]
    fn an_object_that_does_not_decode_fails_only_its_owners_lookup() {
        use sluice_api::analysis::AnalysisRun;
        let run = |name: &str, owner: &str, ttl: i64| -> Undecoded<AnalysisRun> {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
                "metadata": {"name": name, "namespace": "a", "ownerReferences": [{
                    "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": owner,
                    "uid": owner, "controller": true}]},
                "spec": {"metrics": [], "ttlStrategy": {"secondsAfterCompletion": ttl}}
            }))
            .expect("kept undecoded")
        };
        let mut idx = OwnerIndex::<AnalysisRun>::new("Rollout");
        idx.apply_as(&Event::<Undecoded<AnalysisRun>>::Init);
        idx.apply_as(&Event::InitApply(run("bad", "u1", 3_000_000_000)));
        idx.apply_as(&Event::InitApply(run("good", "u2", 60)));
        assert!(idx.apply_as(&Event::<Undecoded<AnalysisRun>>::InitDone));
        assert_eq!(idx.len(), 2, "both are cached");
        assert!(idx.owned_by("a", "u1").is_err());
        let good = idx.owned_by("a", "u2").expect("the other owner decodes");
        assert_eq!(good[0].metadata.name.as_deref(), Some("good"));
    }

    #[tokio::test]
    async fn waiting_on_a_store_whose_stream_ended_unlisted_fails() {
        let (store, stream) = OwnedStore::<ReplicaSet>::reflect(
            "Rollout",
            futures::stream::iter(vec![Ok(Event::Init)]),
        );
        let _: Vec<_> = futures::StreamExt::collect(stream).await;
        assert!(store.wait_ready().await.is_err());
    }

    proptest::proptest! {
        /// Any sequence of applies (with owner changes) and deletes leaves every lookup equal to
        /// a scan of the live objects: those in the namespace whose controller is that owner,
        /// by name. Namespaces `a` and `a-b` share a prefix; owners are shared by objects.
        #[test]
        fn lookups_answer_as_a_scan_of_the_live_objects_would(
            ops in proptest::collection::vec((0usize..2, 0usize..4, proptest::option::of(0usize..4)), 0..80)
        ) {
            const NAMESPACES: [&str; 2] = ["a", "a-b"];
            const OWNERS: [Option<(&str, &str)>; 4] = [
                Some(("Rollout", "u1")),
                Some(("Rollout", "u2")),
                Some(("Experiment", "u1")),
                None,
            ];
            let mut idx = listed(vec![]);
            let mut model: std::collections::BTreeMap<(usize, usize), usize> = Default::default();
            for (ns, name, owner) in ops {
                let name_s = format!("rs-{name}");
                match owner {
                    Some(owner) => {
                        idx.apply(Event::Apply(rs(NAMESPACES[ns], &name_s, OWNERS[owner], true)));
                        model.insert((ns, name), owner);
                    }
                    None => {
                        idx.apply(Event::Delete(rs(NAMESPACES[ns], &name_s, None, true)));
                        model.remove(&(ns, name));
                    }
                }
            }
            for (ns, namespace) in NAMESPACES.iter().enumerate() {
                for uid in ["u1", "u2", "u3"] {
                    let want: Vec<String> = model
                        .iter()
                        .filter(|((n, _), owner)| {
                            *n == ns && OWNERS[**owner] == Some(("Rollout", uid))
                        })
                        .map(|((_, name), _)| format!("rs-{name}"))
                        .collect();
                    proptest::prop_assert_eq!(names(&idx.owned_by(namespace, uid)), want);
                }
            }
            let kept = model.values().filter(|o| matches!(OWNERS[**o], Some(("Rollout", _)))).count();
            proptest::prop_assert_eq!(idx.len(), kept);
            proptest::prop_assert_eq!(
                idx.live.by_owner.values().map(|o| o.len()).sum::<usize>(),
                kept,
                "no entry left behind"
            );
        }
    }
}
