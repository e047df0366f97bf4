//! The object store: every object as JSON, one global monotonic resourceVersion, a bounded event
//! history for watch resumption, and the uid/owner indexes garbage collection needs. All of it
//! sits behind one mutex that is never held across an await.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};

use super::types::{GroupResource, Registry};

/// `(namespace, name)`; the namespace is empty for cluster-scoped objects.
pub type ObjKey = (String, String);

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as watches replay it.
#[derive(Debug)]
pub struct WatchEvent {
    pub rv: u64,
    pub gr: GroupResource,
    pub type_: EventType,
    pub obj: Arc<Value>,
    /// The object before the change (selector transitions turn MODIFIED into ADDED/DELETED).
    pub prev: Option<Arc<Value>>,
    json: OnceLock<Bytes>,
}

impl WatchEvent {
    /// The object serialized once, shared by every watcher.
    pub fn obj_json(&self) -> Bytes {
        self.json
            .get_or_init(|| Bytes::from(serde_json::to_vec(&*self.obj).unwrap_or_default()))
            .clone()
    }
}

/// Work the garbage collector picks up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GcWork {
    /// Re-examine the dependents of this owner uid (owner gone, or in foreground deletion).
    Owner(String),
    /// Empty this terminating namespace, then remove it.
    Namespace(String),
}

/// A change the persistence writer appends to its log.
#[derive(Debug)]
pub struct PersistRecord {
    pub rv: u64,
    pub gr: GroupResource,
    pub key: ObjKey,
    pub obj: Option<Arc<Value>>,
}

/// Everything behind the store lock.
pub struct State {
    pub rv: u64,
    pub registry: Registry,
    objects: HashMap<GroupResource, BTreeMap<ObjKey, Arc<Value>>>,
    history: VecDeque<Arc<WatchEvent>>,
    history_cap: usize,
    /// The newest resourceVersion no longer in `history`; watches from older versions get 410.
    pub compacted_rv: u64,
    pub tx: broadcast::Sender<Arc<WatchEvent>>,
    uids: HashMap<String, (GroupResource, ObjKey)>,
    dependents: HashMap<String, BTreeSet<(GroupResource, ObjKey)>>,
    pub gc_queue: VecDeque<GcWork>,
    pub persist: Option<mpsc::UnboundedSender<PersistRecord>>,
    seq: u64,
    seed: u64,
    pub service_ips: u32,
}

fn obj_uid(obj: &Value) -> Option<&str> {
    obj["metadata"]["uid"].as_str()
}

fn owner_uids(obj: &Value) -> Vec<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["uid"].as_str().map(str::to_string))
        .collect()
}

impl State {
    pub fn new(history_cap: usize) -> Self {
        let (tx, _) = broadcast::channel(65_536);
        let seed = {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(std::process::id() as u64);
            h.finish()
        };
        State {
            rv: 1,
            registry: Registry::with_builtins(),
            objects: HashMap::new(),
            history: VecDeque::new(),
            history_cap,
            compacted_rv: 1,
            tx,
            uids: HashMap::new(),
            dependents: HashMap::new(),
            gc_queue: VecDeque::new(),
            persist: None,
            seq: 0,
            seed,
            service_ips: 0,
        }
    }

    /// A pseudo-random number, distinct per call (uids, generateName suffixes).
    pub fn random(&mut self) -> u64 {
        self.seq += 1;
        let mut z = self
            .seed
            .wrapping_add(self.seq.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn new_uid(&mut self) -> String {
        let a = self.random();
        let b = self.random();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            ((b >> 48) & 0x3fff) | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }

    pub fn get(&self, gr: &GroupResource, ns: &str, name: &str) -> Option<&Arc<Value>> {
        self.objects
            .get(gr)?
            .get(&(ns.to_string(), name.to_string()))
    }

    /// Objects of `gr` in key order, restricted to namespace `ns` when given.
    pub fn list<'a>(
        &'a self,
        gr: &GroupResource,
        ns: Option<&'a str>,
    ) -> Box<dyn Iterator<Item = (&'a ObjKey, &'a Arc<Value>)> + 'a> {
        let Some(m) = self.objects.get(gr) else {
            return Box::new(std::iter::empty());
        };
        match ns {
            Some(ns) => Box::new(
                m.range((ns.to_string(), String::new())..)
                    .take_while(move |(k, _)| k.0 == ns),
            ),
            None => Box::new(m.iter()),
        }
    }

    pub fn exists_uid(&self, uid: &str) -> bool {
        self.uids.contains_key(uid)
    }

    pub fn by_uid(&self, uid: &str) -> Option<(GroupResource, ObjKey)> {
        self.uids.get(uid).cloned()
    }

    /// Objects whose ownerReferences name `uid`.
    pub fn dependents_of(&self, uid: &str) -> Vec<(GroupResource, ObjKey)> {
        self.dependents
            .get(uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Every group-resource that holds objects (namespace cleanup walks them).
    pub fn resources(&self) -> Vec<GroupResource> {
        self.objects.keys().cloned().collect()
    }

    fn unindex(&mut self, gr: &GroupResource, key: &ObjKey, obj: &Value) {
        if let Some(uid) = obj_uid(obj) {
            self.uids.remove(uid);
        }
        for o in owner_uids(obj) {
            if let Some(set) = self.dependents.get_mut(&o) {
                set.remove(&(gr.clone(), key.clone()));
                if set.is_empty() {
                    self.dependents.remove(&o);
                }
            }
        }
    }

    fn index(&mut self, gr: &GroupResource, key: &ObjKey, obj: &Value) {
        if let Some(uid) = obj_uid(obj) {
            self.uids.insert(uid.to_string(), (gr.clone(), key.clone()));
        }
        for o in owner_uids(obj) {
            if !self.uids.contains_key(&o) {
                // A dependent of an owner that does not exist: let the collector look at it.
                self.gc_queue.push_back(GcWork::Owner(o.clone()));
            }
            self.dependents
                .entry(o)
                .or_default()
                .insert((gr.clone(), key.clone()));
        }
    }

    fn emit(&mut self, ev: WatchEvent) {
        let ev = Arc::new(ev);
        if self.history.len() >= self.history_cap
            && let Some(old) = self.history.pop_front()
        {
            self.compacted_rv = old.rv;
        }
        self.history.push_back(ev.clone());
        let _ = self.tx.send(ev);
    }

    fn persist(&self, gr: &GroupResource, key: &ObjKey, obj: Option<Arc<Value>>) {
        if let Some(p) = &self.persist {
            let _ = p.send(PersistRecord {
                rv: self.rv,
                gr: gr.clone(),
                key: key.clone(),
                obj,
            });
        }
    }

    /// Stores `obj` under a fresh resourceVersion and emits ADDED or MODIFIED.
    pub fn put(&mut self, gr: &GroupResource, mut obj: Value) -> Arc<Value> {
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = Value::String(self.rv.to_string());
        let key = (
            obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            obj["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
        let obj = Arc::new(obj);
        let prev = self
            .objects
            .entry(gr.clone())
            .or_default()
            .insert(key.clone(), obj.clone());
        if let Some(p) = &prev {
            self.unindex(gr, &key, p);
        }
        self.index(gr, &key, &obj);
        self.persist(gr, &key, Some(obj.clone()));
        self.emit(WatchEvent {
            rv: self.rv,
            gr: gr.clone(),
            type_: if prev.is_some() {
                EventType::Modified
            } else {
                EventType::Added
            },
            obj: obj.clone(),
            prev,
            json: OnceLock::new(),
        });
        obj
    }

    /// Removes an object for good and emits DELETED (carrying the deletion's resourceVersion).
    pub fn remove(&mut self, gr: &GroupResource, ns: &str, name: &str) -> Option<Arc<Value>> {
        let key = (ns.to_string(), name.to_string());
        let old = self.objects.get_mut(gr)?.remove(&key)?;
        self.unindex(gr, &key, &old);
        self.rv += 1;
        let mut gone = (*old).clone();
        gone["metadata"]["resourceVersion"] = Value::String(self.rv.to_string());
        let gone = Arc::new(gone);
        if let Some(uid) = obj_uid(&gone)
            && self.dependents.contains_key(uid)
        {
            self.gc_queue.push_back(GcWork::Owner(uid.to_string()));
        }
        // An owner in foreground deletion waits for this dependent; let the collector re-check.
        for o in owner_uids(&gone) {
            self.gc_queue.push_back(GcWork::Owner(o));
        }
        if !ns.is_empty() {
            self.gc_queue.push_back(GcWork::Namespace(ns.to_string()));
        }
        self.persist(gr, &key, None);
        self.emit(WatchEvent {
            rv: self.rv,
            gr: gr.clone(),
            type_: EventType::Deleted,
            obj: gone.clone(),
            prev: Some(old),
            json: OnceLock::new(),
        });
        Some(gone)
    }

    /// Drops every object of `gr` (a deleted CRD), emitting DELETED for each.
    pub fn drop_resource(&mut self, gr: &GroupResource) {
        let keys: Vec<ObjKey> = self.list(gr, None).map(|(k, _)| k.clone()).collect();
        for (ns, name) in keys {
            self.remove(gr, &ns, &name);
        }
        self.objects.remove(gr);
    }

    /// Events of `gr` newer than `rv`, or `Err(oldest)` when `rv` predates the retained history.
    pub fn events_since(&self, rv: u64) -> Result<Vec<Arc<WatchEvent>>, u64> {
        if rv < self.compacted_rv {
            return Err(self.compacted_rv + 1);
        }
        let start = self.history.partition_point(|e| e.rv <= rv);
        Ok(self.history.range(start..).cloned().collect())
    }

    /// Loads an object from persistence without emitting events.
    pub fn load(&mut self, gr: GroupResource, obj: Value) {
        let key = (
            obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            obj["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
        let obj = Arc::new(obj);
        if let Some(p) = self
            .objects
            .entry(gr.clone())
            .or_default()
            .insert(key.clone(), obj.clone())
        {
            self.unindex(&gr, &key, &p);
        }
        self.index(&gr, &key, &obj);
    }

    /// Removes a loaded object without emitting events (replaying a persisted delete).
    pub fn unload(&mut self, gr: &GroupResource, key: &ObjKey) {
        if let Some(old) = self.objects.get_mut(gr).and_then(|m| m.remove(key)) {
            self.unindex(gr, key, &old);
        }
    }

    /// Every stored object, for snapshots.
    pub fn all(&self) -> Vec<(GroupResource, Arc<Value>)> {
        self.objects
            .iter()
            .flat_map(|(gr, m)| m.values().map(move |o| (gr.clone(), o.clone())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn gr() -> GroupResource {
        ("".into(), "configmaps".into())
    }

    fn cm(name: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")}})
    }

    #[test]
    fn every_write_gets_a_larger_resource_version() {
        let mut st = State::new(10);
        let a = st.put(&gr(), cm("a"));
        let b = st.put(&gr(), cm("b"));
        let ra: u64 = a["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let rb: u64 = b["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(rb > ra);
        let gone = st.remove(&gr(), "default", "a").unwrap();
        let rg: u64 = gone["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(rg > rb);
    }

    #[test]
    fn history_is_bounded_and_older_versions_are_expired() {
        let mut st = State::new(3);
        let start = st.rv;
        for i in 0..5 {
            st.put(&gr(), cm(&format!("o{i}")));
        }
        assert!(st.events_since(start).is_err());
        let evs = st.events_since(st.rv - 2).unwrap();
        assert_eq!(evs.len(), 2);
        assert!(st.events_since(st.rv).unwrap().is_empty());
    }

    #[test]
    fn list_by_namespace_uses_the_key_range() {
        let mut st = State::new(10);
        st.put(&gr(), cm("a"));
        let mut other = cm("b");
        other["metadata"]["namespace"] = json!("kube-system");
        st.put(&gr(), other);
        assert_eq!(st.list(&gr(), Some("default")).count(), 1);
        assert_eq!(st.list(&gr(), None).count(), 2);
    }

    #[test]
    fn removing_an_owner_queues_its_dependents_for_collection() {
        let mut st = State::new(10);
        st.put(&gr(), cm("owner"));
        let mut dep = cm("dep");
        dep["metadata"]["ownerReferences"] = json!([{"uid": "uid-owner"}]);
        st.put(&gr(), dep);
        assert_eq!(st.dependents_of("uid-owner").len(), 1);
        st.gc_queue.clear();
        st.remove(&gr(), "default", "owner");
        assert!(st.gc_queue.contains(&GcWork::Owner("uid-owner".into())));
    }
}
