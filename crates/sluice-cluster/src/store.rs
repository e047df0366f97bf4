//! The object store: every object kept encoded, one global monotonic resourceVersion, a
//! bounded event history for watch resumption, the uid/owner indexes garbage collection needs,
//! and a label index so a LIST with an equality selector reads only the objects it returns.
//! All of it sits behind one mutex that is never held across an await, so everything done
//! under it is kept proportional to the objects a request touches, not to the objects stored.
//!
//! Each stored version is its JSON encoding (what GET, LIST and watches serve without
//! re-encoding) plus the few facts read under the lock: its key, labels, uid, owner uids, kind
//! and apiVersion. A `serde_json::Value` tree costs about ten times its JSON (every map is a
//! B-tree node), so trees are decoded only where an operation needs one (updates, patches,
//! the collector, field selectors, Tables). Namespaces, kinds, apiVersions and label keys and
//! values are shared `Arc<str>`s: one copy however many objects and index entries carry them.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};

use super::selector::{Selector, field_value};
use super::types::{GroupResource, Registry};

/// `(namespace, name)`; the namespace is empty for cluster-scoped objects.
pub type ObjKey = (Arc<str>, Arc<str>);

/// The key of `ns`/`name`, for lookups.
pub fn key(ns: &str, name: &str) -> ObjKey {
    (Arc::from(ns), Arc::from(name))
}

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
    pub gr: Arc<GroupResource>,
    pub type_: EventType,
    /// The object, encoded once and shared by every watcher (and, for ADDED and MODIFIED, by
    /// every LIST and GET of this version).
    pub obj: Stored,
    /// The object before the change (selector transitions turn MODIFIED into ADDED/DELETED).
    pub prev: Option<Stored>,
}

/// One stored version of an object: its encoding and the facts the store reads under its
/// lock. Cloning shares it.
#[derive(Debug, Clone)]
pub struct Stored(Arc<Entry>);

#[derive(Debug)]
struct Entry {
    key: ObjKey,
    json: Bytes,
    labels: Box<[(Arc<str>, Arc<str>)]>,
    uid: Option<Arc<str>>,
    owners: Box<[Arc<str>]>,
    api_version: Arc<str>,
    kind: Arc<str>,
    /// `metadata.deletionTimestamp` is set.
    deleting: bool,
}

impl Stored {
    /// The object exactly as stored, encoded (cheap: shares the bytes).
    pub fn json(&self) -> Bytes {
        self.0.json.clone()
    }

    /// The object decoded into a tree (a fresh copy; costs a parse).
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.0.json).unwrap_or(Value::Null)
    }

    pub fn key(&self) -> &ObjKey {
        &self.0.key
    }

    pub fn namespace(&self) -> &str {
        &self.0.key.0
    }

    pub fn name(&self) -> &str {
        &self.0.key.1
    }

    pub fn uid(&self) -> Option<&str> {
        self.0.uid.as_deref()
    }

    pub fn api_version(&self) -> &str {
        &self.0.api_version
    }

    pub fn kind(&self) -> &str {
        &self.0.kind
    }

    /// Whether the object is being deleted (`metadata.deletionTimestamp` is set).
    pub fn deleting(&self) -> bool {
        self.0.deleting
    }

    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.0
            .labels
            .iter()
            .find(|(k, _)| &**k == key)
            .map(|(_, v)| &**v)
    }

    fn labels(&self) -> impl Iterator<Item = &(Arc<str>, Arc<str>)> {
        self.0.labels.iter()
    }

    pub fn matches_labels(&self, sel: &Selector) -> bool {
        sel.is_empty() || sel.matches(|k| self.label(k).map(str::to_string))
    }

    /// Whether the field selector `sel` admits this object, with fields as `plural` defines
    /// them; the object is decoded only when a field besides its name or namespace is asked.
    pub fn matches_fields(&self, plural: &str, sel: &Selector) -> bool {
        if sel.is_empty() {
            return true;
        }
        let tree = std::cell::OnceCell::new();
        sel.matches(|f| match f {
            "metadata.name" => Some(self.name().to_string()),
            "metadata.namespace" => Some(self.namespace().to_string()),
            _ => field_value(plural, tree.get_or_init(|| self.value()), f)
                .ok()
                .flatten(),
        })
    }

    /// `obj` as a stored version of `gr` on its own, sharing nothing (for tests).
    #[cfg(test)]
    pub fn alone(gr: &GroupResource, obj: &Value) -> Stored {
        State::new(1).encode(gr, obj)
    }

    /// True when both are the very same stored version.
    pub fn ptr_eq(&self, other: &Stored) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Shared copies of the few strings many objects repeat (namespaces, kinds, apiVersions).
#[derive(Default)]
struct Interner(HashSet<Arc<str>>);

impl Interner {
    fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.0.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.0.insert(a.clone());
        a
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
    pub obj: Option<Stored>,
}

/// The objects carrying one label, in key order. Most label values are carried by one or a
/// few objects (a Rollout's `app`, a ReplicaSet's pod-template-hash), so small sets are a
/// sorted vector (a B-tree node holds room for eleven entries however few it has).
enum LabelSet {
    Few(Vec<(ObjKey, Stored)>),
    Many(BTreeMap<ObjKey, Stored>),
}

/// Entries a `LabelSet::Few` holds before it becomes a B-tree.
const FEW: usize = 16;

impl LabelSet {
    fn insert(&mut self, key: ObjKey, obj: Stored) {
        match self {
            LabelSet::Few(v) => match v.binary_search_by(|(k, _)| k.cmp(&key)) {
                Ok(i) => v[i].1 = obj,
                Err(_) if v.len() >= FEW => {
                    let mut m: BTreeMap<ObjKey, Stored> = std::mem::take(v).into_iter().collect();
                    m.insert(key, obj);
                    *self = LabelSet::Many(m);
                }
                Err(i) => v.insert(i, (key, obj)),
            },
            LabelSet::Many(m) => {
                m.insert(key, obj);
            }
        }
    }

    fn remove(&mut self, key: &ObjKey) {
        match self {
            LabelSet::Few(v) => {
                if let Ok(i) = v.binary_search_by(|(k, _)| k.cmp(key)) {
                    v.remove(i);
                }
            }
            LabelSet::Many(m) => {
                m.remove(key);
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            LabelSet::Few(v) => v.len(),
            LabelSet::Many(m) => m.len(),
        }
    }

    fn range(&self, lower: Bound<ObjKey>) -> Page<'_> {
        match self {
            LabelSet::Few(v) => {
                let start = match &lower {
                    Bound::Included(b) => v.partition_point(|(k, _)| k < b),
                    Bound::Excluded(b) => v.partition_point(|(k, _)| k <= b),
                    Bound::Unbounded => 0,
                };
                Box::new(v[start..].iter().map(|(k, o)| (k, o)))
            }
            LabelSet::Many(m) => Box::new(m.range((lower, Bound::Unbounded))),
        }
    }
}

/// One resource's objects. Keys are kept sorted because continue tokens resume after the last
/// key served, and a namespace is a contiguous key range; the label index holds, per label key
/// and value, the objects carrying it in the same order, so an indexed LIST reads only what it
/// returns. The index's keys are the one shared copy of each label key and value.
#[derive(Default)]
struct Objects {
    by_key: BTreeMap<ObjKey, Stored>,
    by_label: HashMap<Arc<str>, HashMap<Arc<str>, LabelSet>>,
}

type Page<'a> = Box<dyn Iterator<Item = (&'a ObjKey, &'a Stored)> + 'a>;

impl Objects {
    /// The shared copies of a label's key and value (new ones when no object carries it yet).
    fn label_strings(&self, k: &str, v: &str) -> (Arc<str>, Arc<str>) {
        match self.by_label.get_key_value(k) {
            Some((ka, values)) => (
                ka.clone(),
                values
                    .get_key_value(v)
                    .map_or_else(|| Arc::from(v), |(va, _)| va.clone()),
            ),
            None => (Arc::from(k), Arc::from(v)),
        }
    }

    /// Stores `obj` under its key, returning what it replaced, and keeps every label's entry
    /// current: dropped labels lose the key, carried ones point at the new version.
    fn insert(&mut self, obj: Stored) -> Option<Stored> {
        let key = obj.key().clone();
        let prev = self.by_key.insert(key.clone(), obj.clone());
        if let Some(p) = &prev {
            for (k, v) in p.labels() {
                if obj.label(k) != Some(&**v) {
                    self.unlabel(k, v, &key);
                }
            }
        }
        for (k, v) in obj.labels() {
            self.by_label
                .entry(k.clone())
                .or_default()
                .entry(v.clone())
                // Most label values are one object's: room for one (a vector's first growth
                // makes room for four).
                .or_insert_with(|| LabelSet::Few(Vec::with_capacity(1)))
                .insert(key.clone(), obj.clone());
        }
        prev
    }

    fn remove(&mut self, key: &ObjKey) -> Option<Stored> {
        let old = self.by_key.remove(key)?;
        for (k, v) in old.labels() {
            self.unlabel(k, v, key);
        }
        Some(old)
    }

    fn unlabel(&mut self, k: &str, v: &str, key: &ObjKey) {
        if let Some(values) = self.by_label.get_mut(k) {
            if let Some(set) = values.get_mut(v) {
                set.remove(key);
                if set.len() == 0 {
                    values.remove(v);
                }
            }
            if values.is_empty() {
                self.by_label.remove(k);
            }
        }
    }

    fn set(&self, key: &str, value: &str) -> Option<&LabelSet> {
        self.by_label.get(key)?.get(value)
    }

    /// The objects carrying label `key` with one of `values`, in key order, from `lower` on.
    fn labelled<'a>(&'a self, key: &str, values: &[&str], lower: Bound<ObjKey>) -> Page<'a> {
        let sets: Vec<&'a LabelSet> = values.iter().filter_map(|v| self.set(key, v)).collect();
        match sets.as_slice() {
            [] => Box::new(std::iter::empty()),
            [one] => one.range(lower),
            many => {
                // An object has one value per label key, so the sets are disjoint.
                let mut all: Vec<(&'a ObjKey, &'a Stored)> =
                    many.iter().flat_map(|s| s.range(lower.clone())).collect();
                all.sort_unstable_by(|a, b| a.0.cmp(b.0));
                all.dedup_by(|a, b| a.0 == b.0);
                Box::new(all.into_iter())
            }
        }
    }

    /// How many objects the label requirement admits (to pick the narrowest index).
    fn label_count(&self, key: &str, values: &[&str]) -> usize {
        values
            .iter()
            .filter_map(|v| self.set(key, v))
            .map(LabelSet::len)
            .sum()
    }
}

/// How much of the encoded objects the watch history may hold (besides its event count): old
/// versions are kept only for watches resuming from them, and a burst of large writes must
/// not hold a multiple of the store.
const HISTORY_BYTES: usize = 64 << 20;

/// Everything behind the store lock.
pub struct State {
    pub rv: u64,
    pub registry: Registry,
    objects: HashMap<GroupResource, Objects>,
    history: VecDeque<Arc<WatchEvent>>,
    history_cap: usize,
    /// The encoded size of the objects of the events in `history`.
    history_bytes: usize,
    history_bytes_cap: usize,
    /// The newest resourceVersion no longer in `history`; watches from older versions get 410.
    pub compacted_rv: u64,
    pub tx: broadcast::Sender<Arc<WatchEvent>>,
    uids: HashMap<Arc<str>, (Arc<GroupResource>, ObjKey)>,
    /// Owner uid → its dependents (an owner has few, so a vector).
    dependents: HashMap<Arc<str>, Vec<(Arc<GroupResource>, ObjKey)>>,
    /// One shared copy of each group-resource the indexes name.
    grs: HashMap<GroupResource, Arc<GroupResource>>,
    strings: Interner,
    /// The version [`State::get`] decoded last, with its tree.
    last_decoded: std::cell::RefCell<Option<(Stored, Arc<Value>)>>,
    pub gc_queue: VecDeque<GcWork>,
    pub persist: Option<mpsc::UnboundedSender<PersistRecord>>,
    seq: u64,
    seed: u64,
    pub service_ips: u32,
}

fn owner_uids(obj: &Value) -> impl Iterator<Item = &str> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["uid"].as_str())
}

fn text<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj["metadata"][field].as_str().unwrap_or_default()
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
            history_bytes: 0,
            history_bytes_cap: HISTORY_BYTES,
            compacted_rv: 1,
            tx,
            uids: HashMap::new(),
            dependents: HashMap::new(),
            grs: HashMap::new(),
            strings: Interner::default(),
            last_decoded: std::cell::RefCell::new(None),
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

    /// The stored version of `obj` under `gr`: encoded, with its facts, sharing strings with
    /// what is stored already.
    fn encode(&mut self, gr: &GroupResource, obj: &Value) -> Stored {
        let json = serde_json::to_vec(obj).unwrap_or_default();
        let (ns, name) = (text(obj, "namespace"), text(obj, "name"));
        let objects = self.objects.get(gr);
        let labels = obj["metadata"]["labels"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| v.as_str().map(|v| (k.as_str(), v)))
            .map(|(k, v)| match objects {
                Some(m) => m.label_strings(k, v),
                None => (Arc::from(k), Arc::from(v)),
            })
            .collect();
        let key = (
            self.strings.get(ns),
            // The current version's name, when there is one, is shared.
            objects
                .and_then(|m| {
                    m.by_key
                        .get_key_value(&(self.strings.get(ns), Arc::from(name)))
                })
                .map_or_else(|| Arc::from(name), |(k, _)| k.1.clone()),
        );
        let uid = obj["metadata"]["uid"].as_str().map(|u| {
            self.uids
                .get_key_value(u)
                .map_or_else(|| Arc::from(u), |(a, _)| a.clone())
        });
        let owners = owner_uids(obj)
            .map(|o| {
                self.dependents
                    .get_key_value(o)
                    .map_or_else(|| Arc::from(o), |(a, _)| a.clone())
            })
            .collect();
        Stored(Arc::new(Entry {
            key,
            json: Bytes::from(json.into_boxed_slice()),
            labels,
            uid,
            owners,
            api_version: self
                .strings
                .get(obj["apiVersion"].as_str().unwrap_or_default()),
            kind: self.strings.get(obj["kind"].as_str().unwrap_or_default()),
            deleting: !obj["metadata"]["deletionTimestamp"].is_null(),
        }))
    }

    /// The object `ns`/`name` of `gr`, decoded. The last version decoded is kept, so a write
    /// that reads the current object more than once (field ownership, then the update
    /// itself) decodes it once.
    pub fn get(&self, gr: &GroupResource, ns: &str, name: &str) -> Option<Arc<Value>> {
        let s = self.get_stored(gr, ns, name)?;
        let mut last = self.last_decoded.borrow_mut();
        if let Some((stored, tree)) = last.as_ref()
            && stored.ptr_eq(s)
        {
            return Some(tree.clone());
        }
        let tree = Arc::new(s.value());
        *last = Some((s.clone(), tree.clone()));
        Some(tree)
    }

    /// Whether `ns`/`name` of `gr` exists.
    pub fn contains(&self, gr: &GroupResource, ns: &str, name: &str) -> bool {
        self.get_stored(gr, ns, name).is_some()
    }

    /// The stored object with its shared encoding.
    pub fn get_stored(&self, gr: &GroupResource, ns: &str, name: &str) -> Option<&Stored> {
        self.objects.get(gr)?.by_key.get(&key(ns, name))
    }

    /// Objects of `gr` in key order, restricted to namespace `ns` when given.
    pub fn list<'a>(&'a self, gr: &GroupResource, ns: Option<&'a str>) -> Page<'a> {
        self.select(gr, ns, None, &Selector::default())
    }

    /// The objects of `gr` matching the label selector `labels`, in key order: within namespace
    /// `ns` when given and after key `after` when given (a continue token). When `labels`
    /// requires a label to equal one of a few values, only the objects carrying one of them
    /// are read (from the label index, taking the requirement that admits the fewest); the
    /// rest of the selector is then checked on those alone.
    pub fn select<'a>(
        &'a self,
        gr: &GroupResource,
        ns: Option<&'a str>,
        after: Option<&ObjKey>,
        labels: &Selector,
    ) -> Page<'a> {
        let Some(m) = self.objects.get(gr) else {
            return Box::new(std::iter::empty());
        };
        // The lower bound is the later of the namespace's first key and the continue key.
        let ns_start = ns.map(|n| key(n, ""));
        let lower = match (after, &ns_start) {
            (Some(a), Some(s)) if a.0 < s.0 => Bound::Included(s.clone()),
            (Some(a), Some(s)) if a.0 != s.0 => return Box::new(std::iter::empty()),
            (Some(a), _) => Bound::Excluded(a.clone()),
            (None, Some(s)) => Bound::Included(s.clone()),
            (None, None) => Bound::Unbounded,
        };
        let in_ns = move |(k, _): &(&ObjKey, &Stored)| ns.is_none_or(|n| &*k.0 == n);
        let narrowest = labels
            .indexable()
            .into_iter()
            .min_by_key(|(k, vs)| m.label_count(k, vs));
        // An index read answers a one-requirement selector exactly; anything more is checked.
        let exact = narrowest.is_some() && labels.len() == 1;
        let candidates: Page<'a> = match narrowest {
            Some((key, values)) => Box::new(m.labelled(key, &values, lower).take_while(in_ns)),
            None => Box::new(
                m.by_key
                    .range::<ObjKey, _>((lower, Bound::Unbounded))
                    .take_while(in_ns),
            ),
        };
        if exact || labels.is_empty() {
            candidates
        } else {
            let labels = labels.clone();
            Box::new(candidates.filter(move |(_, o)| o.matches_labels(&labels)))
        }
    }

    pub fn exists_uid(&self, uid: &str) -> bool {
        self.uids.contains_key(uid)
    }

    pub fn by_uid(&self, uid: &str) -> Option<(GroupResource, ObjKey)> {
        self.uids
            .get(uid)
            .map(|(gr, k)| ((**gr).clone(), k.clone()))
    }

    /// Objects whose ownerReferences name `uid`.
    pub fn dependents_of(&self, uid: &str) -> Vec<(GroupResource, ObjKey)> {
        self.dependents
            .get(uid)
            .map(|s| {
                let mut v: Vec<(GroupResource, ObjKey)> = s
                    .iter()
                    .map(|(gr, k)| ((**gr).clone(), k.clone()))
                    .collect();
                v.sort();
                v
            })
            .unwrap_or_default()
    }

    /// Every group-resource that holds objects (namespace cleanup walks them).
    pub fn resources(&self) -> Vec<GroupResource> {
        self.objects.keys().cloned().collect()
    }

    fn shared_gr(&mut self, gr: &GroupResource) -> Arc<GroupResource> {
        self.grs
            .entry(gr.clone())
            .or_insert_with(|| Arc::new(gr.clone()))
            .clone()
    }

    fn unindex(&mut self, gr: &GroupResource, obj: &Stored) {
        if let Some(uid) = obj.uid() {
            self.uids.remove(uid);
        }
        for o in obj.0.owners.iter() {
            if let Some(set) = self.dependents.get_mut(o) {
                set.retain(|(g, k)| !(**g == *gr && k == obj.key()));
                if set.is_empty() {
                    self.dependents.remove(o);
                }
            }
        }
    }

    fn index(&mut self, gr: &GroupResource, obj: &Stored) {
        let shared = self.shared_gr(gr);
        if let Some(uid) = &obj.0.uid {
            self.uids
                .insert(uid.clone(), (shared.clone(), obj.key().clone()));
        }
        for o in obj.0.owners.iter() {
            if !self.uids.contains_key(o) {
                // A dependent of an owner that does not exist: let the collector look at it.
                self.gc_queue.push_back(GcWork::Owner(o.to_string()));
            }
            // Most owners have one dependent (a Rollout's ReplicaSet, a Job's Pod).
            let deps = self
                .dependents
                .entry(o.clone())
                .or_insert_with(|| Vec::with_capacity(1));
            if !deps.iter().any(|(g, k)| **g == *gr && k == obj.key()) {
                deps.push((shared.clone(), obj.key().clone()));
            }
        }
    }

    fn emit(&mut self, ev: WatchEvent) {
        let ev = Arc::new(ev);
        self.history_bytes += ev.obj.0.json.len();
        self.history.push_back(ev.clone());
        while self.history.len() > self.history_cap
            || (self.history_bytes > self.history_bytes_cap && self.history.len() > 1)
        {
            let Some(old) = self.history.pop_front() else {
                break;
            };
            self.history_bytes -= old.obj.0.json.len();
            self.compacted_rv = old.rv;
        }
        let _ = self.tx.send(ev);
    }

    fn persist(&self, gr: &GroupResource, key: &ObjKey, obj: Option<Stored>) {
        if let Some(p) = &self.persist {
            let _ = p.send(PersistRecord {
                rv: self.rv,
                gr: gr.clone(),
                key: key.clone(),
                obj,
            });
        }
    }

    /// Stores `obj` under a fresh resourceVersion and emits ADDED or MODIFIED; returns the
    /// object as stored.
    pub fn put(&mut self, gr: &GroupResource, mut obj: Value) -> Arc<Value> {
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = Value::String(self.rv.to_string());
        let stored = self.encode(gr, &obj);
        let key = stored.key().clone();
        let prev = self
            .objects
            .entry(gr.clone())
            .or_default()
            .insert(stored.clone());
        if let Some(p) = &prev {
            self.unindex(gr, p);
        }
        self.index(gr, &stored);
        self.persist(gr, &key, Some(stored.clone()));
        let shared = self.shared_gr(gr);
        self.emit(WatchEvent {
            rv: self.rv,
            gr: shared,
            type_: if prev.is_some() {
                EventType::Modified
            } else {
                EventType::Added
            },
            obj: stored,
            prev,
        });
        Arc::new(obj)
    }

    /// Removes an object for good and emits DELETED (carrying the deletion's resourceVersion).
    pub fn remove(&mut self, gr: &GroupResource, ns: &str, name: &str) -> Option<Arc<Value>> {
        let key = key(ns, name);
        let old = self.objects.get_mut(gr)?.remove(&key)?;
        self.unindex(gr, &old);
        self.rv += 1;
        let mut gone = old.value();
        gone["metadata"]["resourceVersion"] = Value::String(self.rv.to_string());
        if let Some(uid) = old.uid()
            && self.dependents.contains_key(uid)
        {
            self.gc_queue.push_back(GcWork::Owner(uid.to_string()));
        }
        // An owner in foreground deletion waits for this dependent; let the collector re-check.
        for o in old.0.owners.iter() {
            self.gc_queue.push_back(GcWork::Owner(o.to_string()));
        }
        if !ns.is_empty() {
            self.gc_queue.push_back(GcWork::Namespace(ns.to_string()));
        }
        self.persist(gr, &key, None);
        let gone_stored = self.encode(gr, &gone);
        let shared = self.shared_gr(gr);
        self.emit(WatchEvent {
            rv: self.rv,
            gr: shared,
            type_: EventType::Deleted,
            obj: gone_stored,
            prev: Some(old),
        });
        Some(Arc::new(gone))
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
        let stored = self.encode(&gr, &obj);
        if let Some(p) = self
            .objects
            .entry(gr.clone())
            .or_default()
            .insert(stored.clone())
        {
            self.unindex(&gr, &p);
        }
        self.index(&gr, &stored);
    }

    /// Removes a loaded object without emitting events (replaying a persisted delete).
    pub fn unload(&mut self, gr: &GroupResource, key: &ObjKey) {
        if let Some(old) = self.objects.get_mut(gr).and_then(|m| m.remove(key)) {
            self.unindex(gr, &old);
        }
    }

    /// Every stored object, for snapshots.
    pub fn all(&self) -> Vec<(GroupResource, Stored)> {
        self.objects
            .iter()
            .flat_map(|(gr, m)| m.by_key.values().map(move |s| (gr.clone(), s.clone())))
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

    fn labelled(ns: &str, name: &str, labels: Value) -> Value {
        json!({"metadata": {"name": name, "namespace": ns, "uid": format!("uid-{ns}-{name}"), "labels": labels}})
    }

    /// The keys a LIST with this label selector returns.
    fn listed(st: &State, ns: Option<&str>, after: Option<&ObjKey>, sel: &str) -> Vec<String> {
        let sel = Selector::parse_labels(sel).unwrap();
        st.select(&gr(), ns, after, &sel)
            .map(|(k, _)| format!("{}/{}", k.0, k.1))
            .collect()
    }

    #[test]
    fn label_index_follows_label_changes_and_deletes() {
        let mut st = State::new(100);
        st.put(
            &gr(),
            labelled("a", "x", json!({"app": "web", "tier": "front"})),
        );
        st.put(&gr(), labelled("a", "y", json!({"app": "web"})));
        st.put(&gr(), labelled("b", "z", json!({"app": "web"})));
        assert_eq!(listed(&st, None, None, "app=web"), ["a/x", "a/y", "b/z"]);
        // Relabel x away from web, keep tier; delete z; y gains a label.
        st.put(
            &gr(),
            labelled("a", "x", json!({"app": "api", "tier": "front"})),
        );
        st.put(
            &gr(),
            labelled("a", "y", json!({"app": "web", "tier": "back"})),
        );
        st.remove(&gr(), "b", "z");
        let cases: &[(Option<&str>, &str, &[&str])] = &[
            (None, "app=web", &["a/y"]),
            (None, "app==api", &["a/x"]),
            (None, "app in (api,web)", &["a/x", "a/y"]),
            (None, "tier=front", &["a/x"]),
            (None, "tier=back,app=web", &["a/y"]),
            (None, "tier=back,app=api", &[]),
            (None, "app=missing", &[]),
            (None, "app!=web", &["a/x"]),
            (None, "tier", &["a/x", "a/y"]),
            (None, "", &["a/x", "a/y"]),
            (Some("a"), "app=web", &["a/y"]),
            (Some("b"), "app=web", &[]),
            (Some("b"), "", &[]),
        ];
        for (ns, sel, want) in cases {
            assert_eq!(
                listed(&st, *ns, None, sel),
                *want,
                "ns {ns:?} selector {sel:?}"
            );
        }
        // Exactly the labels still carried are indexed: emptied sets are dropped.
        let mut indexed: Vec<(&str, &str, usize)> = st.objects[&gr()]
            .by_label
            .iter()
            .flat_map(|(k, values)| values.iter().map(move |(v, set)| (&**k, &**v, set.len())))
            .collect();
        indexed.sort();
        assert_eq!(
            indexed,
            [
                ("app", "api", 1),
                ("app", "web", 1),
                ("tier", "back", 1),
                ("tier", "front", 1)
            ]
        );
    }

    #[test]
    fn an_indexed_list_serves_the_latest_version_and_its_encoding() {
        let mut st = State::new(10);
        st.put(&gr(), labelled("a", "x", json!({"app": "web"})));
        let mut v2 = labelled("a", "x", json!({"app": "web"}));
        v2["data"] = json!({"k": "2"});
        let stored = st.put(&gr(), v2);
        let sel = Selector::parse_labels("app=web").unwrap();
        let (_, got) = st.select(&gr(), Some("a"), None, &sel).next().unwrap();
        let encoded: Value = serde_json::from_slice(&got.json()).unwrap();
        assert_eq!(encoded, *stored);
        // The watch event of that write and the key's entry share the one stored version.
        let ev = st.events_since(st.rv - 1).unwrap().pop().unwrap();
        assert!(ev.obj.ptr_eq(got));
        assert!(st.get_stored(&gr(), "a", "x").unwrap().ptr_eq(got));
    }

    #[test]
    fn loading_and_unloading_keep_the_label_index() {
        let mut st = State::new(10);
        st.load(gr(), labelled("a", "x", json!({"app": "web"})));
        st.load(gr(), labelled("a", "x", json!({"app": "api"})));
        st.load(gr(), labelled("a", "y", json!({"app": "web"})));
        assert_eq!(listed(&st, None, None, "app=web"), ["a/y"]);
        assert_eq!(listed(&st, None, None, "app=api"), ["a/x"]);
        st.unload(&gr(), &("a".into(), "y".into()));
        assert!(listed(&st, None, None, "app=web").is_empty());
        st.drop_resource(&gr());
        assert!(listed(&st, None, None, "app=api").is_empty());
    }

    #[test]
    fn pages_resume_after_the_last_key_across_namespaces_and_inserts() {
        let mut st = State::new(1000);
        for ns in ["a", "b"] {
            for i in 0..5 {
                st.put(&gr(), labelled(ns, &format!("o{i}"), json!({"app": "web"})));
            }
        }
        for sel in ["", "app=web"] {
            // First page of three, then objects appear before and after the page's end.
            let first: Vec<ObjKey> = st
                .select(&gr(), None, None, &Selector::parse_labels(sel).unwrap())
                .take(3)
                .map(|(k, _)| k.clone())
                .collect();
            let last = first.last().unwrap().clone();
            assert_eq!(last, ("a".into(), "o2".into()));
            st.put(&gr(), labelled("a", "o0a", json!({"app": "web"})));
            st.put(&gr(), labelled("a", "o2a", json!({"app": "web"})));
            let rest = listed(&st, None, Some(&last), sel);
            assert_eq!(rest[..3], ["a/o2a", "a/o3", "a/o4"], "selector {sel:?}");
            assert_eq!(rest.len(), 8, "selector {sel:?}");
            // Within a namespace: a key from an earlier namespace starts at the first key,
            // one from a later namespace yields nothing.
            assert_eq!(listed(&st, Some("b"), Some(&last), sel).len(), 5);
            assert!(listed(&st, Some("a"), Some(&("b".into(), "o0".into())), sel).is_empty());
            assert_eq!(
                listed(&st, Some("a"), Some(&last), sel),
                ["a/o2a", "a/o3", "a/o4"]
            );
            st.remove(&gr(), "a", "o0a");
            st.remove(&gr(), "a", "o2a");
        }
    }

    proptest::proptest! {
        /// After any sequence of writes, an indexed LIST returns exactly what a scan of every
        /// object with the whole selector returns, in key order (with enough objects for
        /// label sets to grow past `FEW` into trees and shrink again).
        #[test]
        fn indexed_lists_equal_a_full_scan(
            ops in proptest::collection::vec((0u8..3, 0u8..2, 0u8..40, 0u8..3, 0u8..3), 1..200),
            sel_app in 0u8..4,
            sel_tier in 0u8..4,
            ns in 0u8..3,
            after in proptest::option::of((0u8..2, 0u8..40)),
        ) {
            let mut st = State::new(1000);
            let name = |ns: u8, n: u8| key(&format!("ns{ns}"), &format!("o{n}"));
            for (op, ns, n, app, tier) in ops {
                let (ns, n) = name(ns, n);
                if op == 0 {
                    st.remove(&gr(), &ns, &n);
                } else {
                    let mut labels = serde_json::Map::new();
                    if app > 0 {
                        labels.insert("app".into(), json!(format!("a{app}")));
                    }
                    if tier > 0 {
                        labels.insert("tier".into(), json!(format!("t{tier}")));
                    }
                    st.put(&gr(), labelled(&ns, &n, Value::Object(labels)));
                }
            }
            let mut parts = Vec::new();
            match sel_app {
                1 => parts.push("app=a1".to_string()),
                2 => parts.push("app in (a1,a2)".to_string()),
                3 => parts.push("app!=a2".to_string()),
                _ => {}
            }
            if sel_tier > 0 {
                parts.push(format!("tier=t{sel_tier}"));
            }
            let sel_text = parts.join(",");
            let sel = Selector::parse_labels(&sel_text).unwrap();
            let ns = (ns < 2).then(|| format!("ns{ns}"));
            let after = after.map(|(a, n)| name(a, n));
            let want: Vec<ObjKey> = st
                .objects
                .get(&gr())
                .map(|m| m.by_key.iter().collect::<Vec<_>>())
                .unwrap_or_default()
                .into_iter()
                .filter(|(k, o)| {
                    ns.as_ref().is_none_or(|n| *k.0 == **n)
                        && after.as_ref().is_none_or(|a| *k > a)
                        && sel.matches_labels(&o.value())
                })
                .map(|(k, _)| k.clone())
                .collect();
            let got: Vec<ObjKey> = st
                .select(&gr(), ns.as_deref(), after.as_ref(), &sel)
                .map(|(k, _)| k.clone())
                .collect();
            proptest::prop_assert_eq!(got, want, "selector {:?}", sel_text);
        }
    }

    #[test]
    fn a_stored_version_is_served_byte_for_byte_as_written_with_its_facts() {
        let mut st = State::new(10);
        let mut o = labelled("a", "x", json!({"app": "web", "tier": "front"}));
        o["apiVersion"] = json!("v1");
        o["kind"] = json!("ConfigMap");
        o["metadata"]["ownerReferences"] = json!([{"uid": "owner-1"}, {"uid": "owner-2"}]);
        o["data"] = json!({"k": "v \"quoted\" \u{e9}"});
        let written = st.put(&gr(), o);
        let got = st.get_stored(&gr(), "a", "x").unwrap().clone();
        assert_eq!(got.json(), serde_json::to_vec(&*written).unwrap());
        assert_eq!(got.value(), *written);
        assert_eq!(*st.get(&gr(), "a", "x").unwrap(), *written);
        // A second read of the same version reuses the tree; a new version is decoded anew.
        assert!(Arc::ptr_eq(
            &st.get(&gr(), "a", "x").unwrap(),
            &st.get(&gr(), "a", "x").unwrap()
        ));
        let mut v2 = (*written).clone();
        v2["data"] = json!({"k": "2"});
        st.put(&gr(), v2);
        assert_eq!(st.get(&gr(), "a", "x").unwrap()["data"]["k"], "2");
        assert_eq!((got.namespace(), got.name()), ("a", "x"));
        assert_eq!((got.api_version(), got.kind()), ("v1", "ConfigMap"));
        assert_eq!(got.uid(), Some("uid-a-x"));
        assert_eq!((got.label("app"), got.label("nope")), (Some("web"), None));
        assert!(!got.deleting());
        assert_eq!(st.dependents_of("owner-2").len(), 1);
        assert_eq!(st.by_uid("uid-a-x").unwrap().1, key("a", "x"));
    }

    #[test]
    fn labels_keys_and_namespaces_are_shared_between_objects() {
        let mut st = State::new(10);
        st.put(&gr(), labelled("a", "x", json!({"app": "web"})));
        st.put(&gr(), labelled("a", "y", json!({"app": "web"})));
        let x = st.get_stored(&gr(), "a", "x").unwrap().clone();
        let y = st.get_stored(&gr(), "a", "y").unwrap().clone();
        assert!(Arc::ptr_eq(&x.0.key.0, &y.0.key.0), "one namespace string");
        assert!(
            Arc::ptr_eq(&x.0.labels[0].0, &y.0.labels[0].0),
            "one label key"
        );
        assert!(
            Arc::ptr_eq(&x.0.labels[0].1, &y.0.labels[0].1),
            "one label value"
        );
        // A new version of x shares its name with the version it replaces.
        st.put(&gr(), labelled("a", "x", json!({"app": "web", "v": "2"})));
        let x2 = st.get_stored(&gr(), "a", "x").unwrap();
        assert!(Arc::ptr_eq(&x.0.key.1, &x2.0.key.1));
    }

    #[test]
    fn field_selectors_read_the_name_without_decoding_and_other_fields_from_the_object() {
        let mut st = State::new(10);
        let mut o = labelled("a", "x", json!({}));
        o["type"] = json!("Opaque");
        st.put(&("".into(), "secrets".into()), o);
        let s = st
            .get_stored(&("".into(), "secrets".into()), "a", "x")
            .unwrap();
        let cases = [
            ("metadata.name=x", true),
            ("metadata.name!=x", false),
            ("metadata.namespace=a,type=Opaque", true),
            ("type=kubernetes.io/tls", false),
        ];
        for (sel, want) in cases {
            let sel = Selector::parse_fields(sel).unwrap();
            assert_eq!(s.matches_fields("secrets", &sel), want, "{sel:?}");
        }
    }

    #[test]
    fn a_label_set_grows_into_a_tree_and_keeps_its_order() {
        let mut st = State::new(1000);
        for i in (0..(FEW * 3)).rev() {
            st.put(
                &gr(),
                labelled("a", &format!("o{i:03}"), json!({"app": "web"})),
            );
        }
        let all = listed(&st, None, None, "app=web");
        let mut sorted = all.clone();
        sorted.sort();
        assert_eq!(all.len(), FEW * 3);
        assert_eq!(all, sorted);
        for i in 0..(FEW * 3) {
            st.remove(&gr(), "a", &format!("o{i:03}"));
        }
        assert!(st.objects[&gr()].by_label.is_empty());
    }

    #[test]
    fn history_is_bounded_by_the_bytes_of_its_objects_too() {
        let mut st = State::new(1000);
        st.history_bytes_cap = 4096;
        let start = st.rv;
        for i in 0..50 {
            let mut o = cm(&format!("o{i}"));
            o["data"] = json!({"blob": "x".repeat(500)});
            st.put(&gr(), o);
        }
        let held: usize = st.history.iter().map(|e| e.obj.json().len()).sum();
        assert_eq!(held, st.history_bytes);
        assert!(held <= 4096, "{held} bytes held");
        assert!(st.history.len() < 50 && !st.history.is_empty());
        // Versions before the oldest retained event are expired, the rest resume.
        assert!(st.events_since(start).is_err());
        assert_eq!(
            st.events_since(st.rv - 2).unwrap().len(),
            2,
            "the newest events are kept"
        );
    }

    #[test]
    fn a_deleted_event_carries_the_deletion_version_and_the_last_state() {
        let mut st = State::new(10);
        st.put(&gr(), labelled("a", "x", json!({"app": "web"})));
        let gone = st.remove(&gr(), "a", "x").unwrap();
        let ev = st.events_since(st.rv - 1).unwrap().pop().unwrap();
        assert_eq!(ev.type_, EventType::Deleted);
        assert_eq!(ev.obj.value(), *gone);
        assert_eq!(
            gone["metadata"]["resourceVersion"],
            json!(st.rv.to_string())
        );
        assert_eq!(ev.prev.as_ref().unwrap().label("app"), Some("web"));
        assert!(st.get_stored(&gr(), "a", "x").is_none());
        assert!(!st.exists_uid("uid-a-x"));
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
