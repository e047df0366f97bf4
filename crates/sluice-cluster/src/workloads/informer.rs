//! One watch per kind, shared by every controller that needs that kind.
//!
//! A kube-runtime `Controller` per workload kind would open a Pod watch for each of the
//! ReplicaSet controller, the Job controller and the kubelet, and its store has no index, so
//! "the Pods of this ReplicaSet" would be a scan of every Pod. At the benchmark's scale
//! (10,000 ReplicaSets with their Pods) that is the difference between microseconds and
//! seconds per reconcile. So each kind is watched once, kept in a [`Cache`] indexed by the
//! controlling owner's UID, and every change is fanned out to the work queues that care.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource, ResourceExt};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::pod_state::controller_of;

/// Namespace and name of an object: the unit of work of every queue.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    /// The key of `name` in `namespace`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key of an object (its namespace is empty for cluster-scoped kinds).
    pub fn of<K: Resource>(obj: &K) -> Self {
        Self::new(obj.namespace().unwrap_or_default(), obj.name_any())
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

struct Inner<K> {
    objects: HashMap<ObjectKey, Arc<K>>,
    by_owner: HashMap<String, BTreeSet<ObjectKey>>,
}

/// The latest observed copy of every object of one kind, indexed by controlling owner.
pub struct Cache<K> {
    inner: RwLock<Inner<K>>,
    synced: watch::Sender<bool>,
}

fn owner_uid<K: Resource>(obj: &K) -> Option<String> {
    controller_of(obj.meta()).map(|r| r.uid.clone())
}

/// The index slot of objects without a controller in `namespace` (a NUL prefix cannot
/// collide with a UID).
fn orphan_slot(namespace: &str) -> String {
    format!("\u{0}orphans/{namespace}")
}

fn index_key<K: Resource>(obj: &K) -> String {
    owner_uid(obj)
        .unwrap_or_else(|| orphan_slot(obj.meta().namespace.as_deref().unwrap_or_default()))
}

impl<K: Resource> Cache<K> {
    /// An empty cache that reports itself unsynced until its first list completes.
    pub fn new() -> Self {
        Self {
            inner: RwLock::new(Inner {
                objects: HashMap::new(),
                by_owner: HashMap::new(),
            }),
            synced: watch::channel(false).0,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner<K>> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner<K>> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached copy of one object.
    pub fn get(&self, key: &ObjectKey) -> Option<Arc<K>> {
        self.read().objects.get(key).cloned()
    }

    /// The objects whose controlling owner has UID `uid`.
    pub fn owned_by(&self, uid: &str) -> Vec<Arc<K>> {
        let inner = self.read();
        inner
            .by_owner
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|k| inner.objects.get(k).cloned())
            .collect()
    }

    /// The objects in `namespace` that no controller owns (candidates for adoption).
    pub fn orphans_in(&self, namespace: &str) -> Vec<Arc<K>> {
        self.owned_by(&orphan_slot(namespace))
    }

    /// Every object in `namespace`: a scan, for rare events only.
    pub fn in_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        self.read()
            .objects
            .iter()
            .filter(|(k, _)| k.namespace == namespace)
            .map(|(_, o)| o.clone())
            .collect()
    }

    /// Number of cached objects.
    pub fn len(&self) -> usize {
        self.read().objects.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.read().objects.is_empty()
    }

    /// Stores `obj`, returning the copy it replaced.
    pub fn insert(&self, obj: K) -> Option<Arc<K>> {
        self.insert_shared(Arc::new(obj))
    }

    /// Stores an already shared copy, returning the copy it replaced.
    pub fn insert_shared(&self, obj: Arc<K>) -> Option<Arc<K>> {
        let key = ObjectKey::of(obj.as_ref());
        let slot = index_key(obj.as_ref());
        let mut inner = self.write();
        let old = inner.objects.insert(key.clone(), obj);
        if let Some(prev) = old.as_deref().map(index_key)
            && prev != slot
        {
            unindex(&mut inner.by_owner, &prev, &key);
        }
        inner.by_owner.entry(slot).or_default().insert(key);
        old
    }

    /// Forgets an object, returning the last copy.
    pub fn remove(&self, key: &ObjectKey) -> Option<Arc<K>> {
        let mut inner = self.write();
        let old = inner.objects.remove(key)?;
        unindex(&mut inner.by_owner, &index_key(old.as_ref()), key);
        Some(old)
    }

    /// The keys of every cached object.
    pub fn keys(&self) -> Vec<ObjectKey> {
        self.read().objects.keys().cloned().collect()
    }

    /// Resolves once the first complete list has been loaded; controllers must not act on a
    /// partial view (a ReplicaSet would see no Pods and create more).
    pub async fn wait_synced(&self) {
        let mut rx = self.synced.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    fn mark_synced(&self) {
        self.synced.send_replace(true);
    }
}

impl<K: Resource> Default for Cache<K> {
    fn default() -> Self {
        Self::new()
    }
}

fn unindex(by_owner: &mut HashMap<String, BTreeSet<ObjectKey>>, uid: &str, key: &ObjectKey) {
    if let Some(set) = by_owner.get_mut(uid) {
        set.remove(key);
        if set.is_empty() {
            by_owner.remove(uid);
        }
    }
}

/// Called with every object that was added, changed or deleted (for a change, with the new
/// copy and then, if different, the old one, so a moved owner hears about it too).
pub type Handler<K> = Box<dyn Fn(&K) + Send + Sync>;

/// Keeps `cache` in step with the API server until `shutdown`, calling `handlers` on every
/// change. Watch errors are retried with kube-runtime's default backoff.
pub async fn run<K>(
    api: Api<K>,
    config: watcher::Config,
    cache: Arc<Cache<K>>,
    handlers: Vec<Handler<K>>,
    shutdown: CancellationToken,
) where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default,
{
    let notify = |obj: &K| handlers.iter().for_each(|h| h(obj));
    let stream = watcher::watcher(api, config).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut relist: Option<HashSet<ObjectKey>> = None;
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            ev = stream.next() => ev,
        };
        let Some(event) = event else { return };
        match event {
            Err(e) => {
                tracing::warn!(kind = %K::kind(&Default::default()), error = %e, "watch failed; retrying")
            }
            Ok(Event::Init) => relist = Some(HashSet::new()),
            Ok(Event::InitApply(mut obj)) | Ok(Event::Apply(mut obj)) => {
                // No controller reads managedFields; at benchmark scale they are a large
                // share of every cached object.
                obj.meta_mut().managed_fields = None;
                if let Some(seen) = relist.as_mut() {
                    seen.insert(ObjectKey::of(&obj));
                }
                let obj = Arc::new(obj);
                let old = cache.insert_shared(obj.clone());
                notify(&obj);
                if let Some(old) = old
                    && owner_uid(old.as_ref()) != owner_uid(obj.as_ref())
                {
                    notify(&old);
                }
            }
            Ok(Event::Delete(obj)) => {
                cache.remove(&ObjectKey::of(&obj));
                notify(&obj);
            }
            Ok(Event::InitDone) => {
                // Objects that vanished while the watch was down are only noticed here.
                if let Some(seen) = relist.take() {
                    for key in cache.keys() {
                        if !seen.contains(&key)
                            && let Some(old) = cache.remove(&key)
                        {
                            notify(&old);
                        }
                    }
                }
                cache.mark_synced();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::pod_state::fixtures::pod;
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    #[test]
    fn the_owner_index_follows_inserts_moves_and_removals() {
        let cache = Cache::<Pod>::new();
        cache.insert(pod("a", "rs1", 0));
        cache.insert(pod("b", "rs1", 0));
        assert_eq!(cache.owned_by("rs1").len(), 2);

        cache.insert(pod("b", "rs2", 0));
        assert_eq!(cache.owned_by("rs1").len(), 1);
        assert_eq!(cache.owned_by("rs2").len(), 1);

        cache.remove(&ObjectKey::new("ns", "a"));
        assert!(cache.owned_by("rs1").is_empty());
        assert_eq!(cache.len(), 1);

        let mut orphan = pod("c", "rs2", 0);
        orphan.metadata.owner_references = None;
        cache.insert(orphan);
        assert_eq!(cache.orphans_in("ns").len(), 1);
        assert!(cache.orphans_in("other").is_empty());
        cache.insert(pod("c", "rs2", 0));
        assert!(cache.orphans_in("ns").is_empty(), "adopted");
        assert_eq!(cache.owned_by("rs2").len(), 2);
    }
}
