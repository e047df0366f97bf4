//! One Rollout's world, and the index that assembles it.
//!
//! [`Index`] holds the objects a person looks at — Rollouts, Experiments, AnalysisRuns,
//! ReplicaSets, pods and the Rollouts' Events — and knows who owns what (each object's
//! controller ownerReference). [`Index::world`] gathers a Rollout with everything under it;
//! both the one-shot reads ([`fetch_index`]) and the watch-fed [`crate::live::Live`] go
//! through it, so `get`, `get --watch` and the dashboard agree on what belongs to a Rollout.
//!
//! Objects are slimmed on the way in ([`slim`]): the pod specs, managed fields and
//! last-applied annotations are dropped, so the dashboard holds thousands of Rollouts with
//! their ReplicaSets and pods in a few MiB per thousand.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateWaiting, ContainerStatus, Event, Pod, PodSpec,
    PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DynamicObject, ListParams};
use serde::Serialize;
use serde::de::DeserializeOwned;

use sluice_api::analysis::AnalysisRun;
use sluice_api::common::POD_TEMPLATE_HASH_LABEL;
use sluice_api::experiment::Experiment;
use sluice_api::rollout::Rollout;

use crate::error::{Error, kind};

/// How many of a Rollout's Events are kept (the newest).
pub const EVENTS_KEPT: usize = 10;

/// A namespaced name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Key {
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Key {
        Key {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    fn of(meta: &ObjectMeta) -> Key {
        Key::new(
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default(),
        )
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What a change concerns: the Rollout or standalone Experiment whose view it alters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    Rollout(Key),
    Experiment(Key),
}

/// The kinds that can own the objects of a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum OwnerKind {
    Rollout,
    Experiment,
    ReplicaSet,
    Other,
}

/// An object's controller, by kind and namespaced name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Owner {
    kind: OwnerKind,
    key: Key,
}

fn controller_of(meta: &ObjectMeta) -> Option<Owner> {
    let owner = meta
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))?;
    let kind = match owner.kind.as_str() {
        "Rollout" => OwnerKind::Rollout,
        "Experiment" => OwnerKind::Experiment,
        "ReplicaSet" => OwnerKind::ReplicaSet,
        _ => OwnerKind::Other,
    };
    Some(Owner {
        kind,
        key: Key::new(
            meta.namespace.clone().unwrap_or_default(),
            owner.name.clone(),
        ),
    })
}

/// A Rollout as stored: decoded, or the reason it does not decode (naming the field), so a
/// malformed Rollout is still listed.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored<T> {
    Decoded(Box<T>),
    Undecodable { message: String },
}

/// One Rollout and everything under it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct World {
    pub rollout: Rollout,
    pub replica_sets: Vec<ReplicaSet>,
    pub pods: Vec<Pod>,
    /// The Rollout's AnalysisRuns and those of its Experiments.
    pub analysis_runs: Vec<AnalysisRun>,
    pub experiments: Vec<Experiment>,
    /// Oldest first, at most [`EVENTS_KEPT`].
    pub events: Vec<Event>,
}

/// One Experiment and everything under it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExperimentWorld {
    pub experiment: Experiment,
    pub replica_sets: Vec<ReplicaSet>,
    pub pods: Vec<Pod>,
    pub analysis_runs: Vec<AnalysisRun>,
}

/// The objects of the trees, indexed by owner.
#[derive(Debug, Default)]
pub struct Index {
    rollouts: BTreeMap<Key, Stored<Rollout>>,
    experiments: BTreeMap<Key, Experiment>,
    analysis_runs: BTreeMap<Key, AnalysisRun>,
    replica_sets: BTreeMap<Key, ReplicaSet>,
    pods: BTreeMap<Key, Pod>,
    events: BTreeMap<Key, VecDeque<Event>>,
    /// Children names by owner, per child kind.
    experiments_of: BTreeMap<Owner, BTreeSet<String>>,
    runs_of: BTreeMap<Owner, BTreeSet<String>>,
    replica_sets_of: BTreeMap<Owner, BTreeSet<String>>,
    pods_of: BTreeMap<Owner, BTreeSet<String>>,
}

/// An object the index holds.
pub enum Object {
    Rollout(Key, Stored<Rollout>),
    Experiment(Experiment),
    AnalysisRun(AnalysisRun),
    ReplicaSet(ReplicaSet),
    Pod(Pod),
    Event(Event),
}

fn link(map: &mut BTreeMap<Owner, BTreeSet<String>>, owner: Option<Owner>, name: &str) {
    if let Some(owner) = owner {
        map.entry(owner).or_default().insert(name.to_string());
    }
}

fn unlink(map: &mut BTreeMap<Owner, BTreeSet<String>>, owner: Option<Owner>, name: &str) {
    if let Some(owner) = owner
        && let Some(set) = map.get_mut(&owner)
    {
        set.remove(name);
        if set.is_empty() {
            map.remove(&owner);
        }
    }
}

impl Index {
    /// Store (or replace) an object; returns the views it changes.
    pub fn apply(&mut self, object: Object) -> Vec<Topic> {
        match object {
            Object::Rollout(key, stored) => {
                self.rollouts.insert(key.clone(), stored);
                vec![Topic::Rollout(key)]
            }
            Object::Experiment(mut e) => {
                slim_meta(&mut e.metadata);
                slim_experiment(&mut e);
                let key = Key::of(&e.metadata);
                let old = self
                    .experiments
                    .insert(key.clone(), e.clone())
                    .and_then(|o| controller_of(&o.metadata));
                unlink(&mut self.experiments_of, old, &key.name);
                link(
                    &mut self.experiments_of,
                    controller_of(&e.metadata),
                    &key.name,
                );
                self.topics_of(&e.metadata)
                    .into_iter()
                    .chain([Topic::Experiment(key)])
                    .collect()
            }
            Object::AnalysisRun(mut r) => {
                slim_meta(&mut r.metadata);
                r.spec = Default::default();
                let key = Key::of(&r.metadata);
                let old = self
                    .analysis_runs
                    .insert(key.clone(), r.clone())
                    .and_then(|o| controller_of(&o.metadata));
                unlink(&mut self.runs_of, old, &key.name);
                link(&mut self.runs_of, controller_of(&r.metadata), &key.name);
                self.topics_of(&r.metadata)
            }
            Object::ReplicaSet(mut rs) => {
                slim_meta(&mut rs.metadata);
                slim_replica_set(&mut rs);
                let key = Key::of(&rs.metadata);
                let old = self
                    .replica_sets
                    .insert(key.clone(), rs.clone())
                    .and_then(|o| controller_of(&o.metadata));
                unlink(&mut self.replica_sets_of, old, &key.name);
                link(
                    &mut self.replica_sets_of,
                    controller_of(&rs.metadata),
                    &key.name,
                );
                self.topics_of(&rs.metadata)
            }
            Object::Pod(mut pod) => {
                slim_meta(&mut pod.metadata);
                slim_pod(&mut pod);
                let key = Key::of(&pod.metadata);
                let old = self
                    .pods
                    .insert(key.clone(), pod.clone())
                    .and_then(|o| controller_of(&o.metadata));
                unlink(&mut self.pods_of, old, &key.name);
                link(&mut self.pods_of, controller_of(&pod.metadata), &key.name);
                self.topics_of(&pod.metadata)
            }
            Object::Event(event) => self.apply_event(event),
        }
    }

    /// Forget an object; returns the views it changes.
    pub fn delete(&mut self, object: Object) -> Vec<Topic> {
        match object {
            Object::Rollout(key, _) => {
                self.rollouts.remove(&key);
                self.events.remove(&key);
                vec![Topic::Rollout(key)]
            }
            Object::Experiment(e) => {
                let key = Key::of(&e.metadata);
                let topics = self.topics_of(&e.metadata);
                if let Some(old) = self.experiments.remove(&key) {
                    unlink(
                        &mut self.experiments_of,
                        controller_of(&old.metadata),
                        &key.name,
                    );
                }
                topics.into_iter().chain([Topic::Experiment(key)]).collect()
            }
            Object::AnalysisRun(r) => {
                let key = Key::of(&r.metadata);
                let topics = self.topics_of(&r.metadata);
                if let Some(old) = self.analysis_runs.remove(&key) {
                    unlink(&mut self.runs_of, controller_of(&old.metadata), &key.name);
                }
                topics
            }
            Object::ReplicaSet(rs) => {
                let key = Key::of(&rs.metadata);
                let topics = self.topics_of(&rs.metadata);
                if let Some(old) = self.replica_sets.remove(&key) {
                    unlink(
                        &mut self.replica_sets_of,
                        controller_of(&old.metadata),
                        &key.name,
                    );
                }
                topics
            }
            Object::Pod(pod) => {
                let key = Key::of(&pod.metadata);
                let topics = self.topics_of(&pod.metadata);
                if let Some(old) = self.pods.remove(&key) {
                    unlink(&mut self.pods_of, controller_of(&old.metadata), &key.name);
                }
                topics
            }
            Object::Event(event) => {
                let Some(key) = regarded_rollout(&event) else {
                    return Vec::new();
                };
                let uid = event.metadata.uid.clone();
                if let Some(list) = self.events.get_mut(&key) {
                    list.retain(|e| e.metadata.uid != uid);
                }
                vec![Topic::Rollout(key)]
            }
        }
    }

    fn apply_event(&mut self, mut event: Event) -> Vec<Topic> {
        let Some(key) = regarded_rollout(&event) else {
            return Vec::new();
        };
        slim_event(&mut event);
        let list = self.events.entry(key.clone()).or_default();
        list.retain(|e| e.metadata.uid != event.metadata.uid);
        list.push_back(event);
        list.make_contiguous()
            .sort_by_key(|e| event_time(e).unwrap_or_default());
        while list.len() > EVENTS_KEPT {
            list.pop_front();
        }
        vec![Topic::Rollout(key)]
    }

    /// Drop every object of one kind (a watch restarting from a fresh list).
    pub fn clear(&mut self, which: Kind) {
        match which {
            Kind::Rollout => self.rollouts.clear(),
            Kind::Experiment => {
                self.experiments.clear();
                self.experiments_of.clear();
            }
            Kind::AnalysisRun => {
                self.analysis_runs.clear();
                self.runs_of.clear();
            }
            Kind::ReplicaSet => {
                self.replica_sets.clear();
                self.replica_sets_of.clear();
            }
            Kind::Pod => {
                self.pods.clear();
                self.pods_of.clear();
            }
            Kind::Event => self.events.clear(),
        }
    }

    /// The views that the objects of one kind are part of (before a re-list replaces them).
    pub fn clear_topics(&self, which: Kind) -> Vec<Topic> {
        match which {
            Kind::Rollout => self.rollouts.keys().cloned().map(Topic::Rollout).collect(),
            Kind::Experiment => self
                .experiments
                .values()
                .flat_map(|e| {
                    let mut t = self.topics_of(&e.metadata);
                    t.push(Topic::Experiment(Key::of(&e.metadata)));
                    t
                })
                .collect(),
            Kind::AnalysisRun => self
                .analysis_runs
                .values()
                .flat_map(|o| self.topics_of(&o.metadata))
                .collect(),
            Kind::ReplicaSet => self
                .replica_sets
                .values()
                .flat_map(|o| self.topics_of(&o.metadata))
                .collect(),
            Kind::Pod => self
                .pods
                .values()
                .flat_map(|o| self.topics_of(&o.metadata))
                .collect(),
            Kind::Event => self.events.keys().cloned().map(Topic::Rollout).collect(),
        }
    }

    /// The Rollout and standalone-Experiment views that an object with this metadata is part
    /// of: its owner, the owner's owner (a pod's ReplicaSet's Rollout, an Experiment's
    /// Rollout), up to the top.
    fn topics_of(&self, meta: &ObjectMeta) -> Vec<Topic> {
        let mut topics = Vec::new();
        let mut owner = controller_of(meta);
        // Pod → ReplicaSet → Experiment → Rollout at most.
        for _ in 0..4 {
            let Some(o) = owner else { break };
            owner = match o.kind {
                OwnerKind::Rollout => {
                    topics.push(Topic::Rollout(o.key));
                    None
                }
                OwnerKind::Experiment => {
                    let up = self
                        .experiments
                        .get(&o.key)
                        .and_then(|e| controller_of(&e.metadata));
                    topics.push(Topic::Experiment(o.key));
                    up
                }
                OwnerKind::ReplicaSet => self
                    .replica_sets
                    .get(&o.key)
                    .and_then(|rs| controller_of(&rs.metadata)),
                OwnerKind::Other => None,
            };
        }
        topics
    }

    /// Every Rollout, by namespaced name.
    pub fn rollouts(&self) -> impl Iterator<Item = (&Key, &Stored<Rollout>)> {
        self.rollouts.iter()
    }

    /// Every Experiment.
    pub fn experiments(&self) -> impl Iterator<Item = &Experiment> {
        self.experiments.values()
    }

    /// Every AnalysisRun.
    pub fn analysis_runs(&self) -> impl Iterator<Item = &AnalysisRun> {
        self.analysis_runs.values()
    }

    /// A Rollout with everything under it; `None` when it is unknown, `Err` when it does not
    /// decode.
    pub fn world(&self, key: &Key) -> Option<Result<World, String>> {
        let rollout = match self.rollouts.get(key)? {
            Stored::Decoded(r) => (**r).clone(),
            Stored::Undecodable { message } => return Some(Err(message.clone())),
        };
        let owner = Owner {
            kind: OwnerKind::Rollout,
            key: key.clone(),
        };
        let experiments = self.children(&self.experiments_of, &self.experiments, &owner);
        let mut replica_sets = self.children(&self.replica_sets_of, &self.replica_sets, &owner);
        let mut analysis_runs = self.children(&self.runs_of, &self.analysis_runs, &owner);
        for e in &experiments {
            let owner = Owner {
                kind: OwnerKind::Experiment,
                key: Key::of(&e.metadata),
            };
            replica_sets.extend(self.children(&self.replica_sets_of, &self.replica_sets, &owner));
            analysis_runs.extend(self.children(&self.runs_of, &self.analysis_runs, &owner));
        }
        let pods = self.pods_under(&replica_sets);
        let events = self
            .events
            .get(key)
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default();
        Some(Ok(World {
            rollout,
            replica_sets,
            pods,
            analysis_runs,
            experiments,
            events,
        }))
    }

    /// An Experiment with everything under it.
    pub fn experiment_world(&self, key: &Key) -> Option<ExperimentWorld> {
        let experiment = self.experiments.get(key)?.clone();
        let owner = Owner {
            kind: OwnerKind::Experiment,
            key: key.clone(),
        };
        let replica_sets = self.children(&self.replica_sets_of, &self.replica_sets, &owner);
        let analysis_runs = self.children(&self.runs_of, &self.analysis_runs, &owner);
        let pods = self.pods_under(&replica_sets);
        Some(ExperimentWorld {
            experiment,
            replica_sets,
            pods,
            analysis_runs,
        })
    }

    fn children<T: Clone>(
        &self,
        links: &BTreeMap<Owner, BTreeSet<String>>,
        objects: &BTreeMap<Key, T>,
        owner: &Owner,
    ) -> Vec<T> {
        links
            .get(owner)
            .into_iter()
            .flatten()
            .filter_map(|name| objects.get(&Key::new(owner.key.namespace.clone(), name.clone())))
            .cloned()
            .collect()
    }

    fn pods_under(&self, replica_sets: &[ReplicaSet]) -> Vec<Pod> {
        replica_sets
            .iter()
            .flat_map(|rs| {
                let owner = Owner {
                    kind: OwnerKind::ReplicaSet,
                    key: Key::of(&rs.metadata),
                };
                self.children(&self.pods_of, &self.pods, &owner)
            })
            .collect()
    }
}

/// The kinds the index watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Rollout,
    Experiment,
    AnalysisRun,
    ReplicaSet,
    Pod,
    Event,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Rollout,
        Kind::Experiment,
        Kind::AnalysisRun,
        Kind::ReplicaSet,
        Kind::Pod,
        Kind::Event,
    ];

    /// The plural resource name, for messages.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Rollout => "rollouts",
            Kind::Experiment => "experiments",
            Kind::AnalysisRun => "analysisruns",
            Kind::ReplicaSet => "replicasets",
            Kind::Pod => "pods",
            Kind::Event => "events",
        }
    }

    /// The label selector the index lists this kind with: only the ReplicaSets and pods a
    /// Rollout or Experiment made carry the pod-template-hash label.
    pub fn label_selector(self) -> Option<&'static str> {
        matches!(self, Kind::ReplicaSet | Kind::Pod).then_some(POD_TEMPLATE_HASH_LABEL)
    }

    /// The field selector: only Events about Rollouts.
    pub fn field_selector(self) -> Option<&'static str> {
        (self == Kind::Event).then_some("involvedObject.kind=Rollout")
    }
}

/// The Rollout an Event is about.
fn regarded_rollout(event: &Event) -> Option<Key> {
    let o = &event.involved_object;
    (o.kind.as_deref() == Some("Rollout")).then(|| {
        Key::new(
            o.namespace
                .clone()
                .or_else(|| event.metadata.namespace.clone())
                .unwrap_or_default(),
            o.name.clone().unwrap_or_default(),
        )
    })
}

/// When an Event last happened.
pub fn event_time(e: &Event) -> Option<k8s_openapi::jiff::Timestamp> {
    e.last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.first_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// Decode a Rollout, or say which field does not decode.
pub fn decode_rollout(obj: DynamicObject) -> (Key, Stored<Rollout>) {
    let key = Key::of(&obj.metadata);
    let stored = match decode::<Rollout>(obj) {
        Ok(mut r) => {
            slim_meta(&mut r.metadata);
            slim_rollout(&mut r);
            Stored::Decoded(Box::new(r))
        }
        Err(message) => Stored::Undecodable { message },
    };
    (key, stored)
}

/// Decode a dynamic object into `T`, naming the field on failure.
pub fn decode<T: DeserializeOwned>(obj: DynamicObject) -> Result<T, String> {
    let value = serde_json::to_value(obj).map_err(|e| e.to_string())?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        format!("{path}: {}", e.into_inner())
    })
}

/// Drop what no view reads from an object's metadata.
fn slim_meta(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// Containers reduced to their name and image.
fn slim_containers(spec: &mut Option<PodSpec>) {
    if let Some(s) = spec.as_mut() {
        *s = PodSpec {
            containers: s
                .containers
                .iter()
                .map(|c| Container {
                    name: c.name.clone(),
                    image: c.image.clone(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
    }
}

fn slim_rollout(r: &mut Rollout) {
    if let Some(t) = r.spec.template.as_mut() {
        slim_containers(&mut t.spec);
    }
    // The phase and message say what the conditions say.
    if let Some(s) = r.status.as_mut() {
        s.conditions = None;
    }
}

fn slim_replica_set(rs: &mut ReplicaSet) {
    if let Some(t) = rs.spec.as_mut().and_then(|s| s.template.as_mut()) {
        slim_containers(&mut t.spec);
        t.metadata = None;
    }
    if let Some(s) = rs.status.as_mut() {
        s.conditions = None;
    }
}

fn slim_pod(pod: &mut Pod) {
    slim_containers(&mut pod.spec);
    if let Some(s) = pod.status.take() {
        // What a pod's line shows: phase, and per container readiness, restarts and why it
        // waits.
        pod.status = Some(PodStatus {
            phase: s.phase,
            container_statuses: s.container_statuses.map(|list| {
                list.into_iter()
                    .map(|c| ContainerStatus {
                        name: c.name,
                        ready: c.ready,
                        restart_count: c.restart_count,
                        state: c.state.and_then(|st| {
                            st.waiting.map(|w| ContainerState {
                                waiting: Some(ContainerStateWaiting {
                                    reason: w.reason,
                                    message: None,
                                }),
                                ..Default::default()
                            })
                        }),
                        ..Default::default()
                    })
                    .collect()
            }),
            ..Default::default()
        });
    }
}

/// An Event reduced to what the Events list shows and what keys and orders it.
fn slim_event(e: &mut Event) {
    e.metadata = ObjectMeta {
        uid: e.metadata.uid.take(),
        creation_timestamp: e.metadata.creation_timestamp.take(),
        ..Default::default()
    };
    e.source = None;
    e.series = None;
    e.related = None;
    e.reporting_component = None;
    e.reporting_instance = None;
    e.action = None;
    let o = &mut e.involved_object;
    *o = k8s_openapi::api::core::v1::ObjectReference {
        kind: o.kind.take(),
        name: o.name.take(),
        namespace: o.namespace.take(),
        ..Default::default()
    };
}

fn slim_experiment(e: &mut Experiment) {
    for t in &mut e.spec.templates {
        slim_containers(&mut t.template.spec);
    }
}

/// Fill an index with one namespace's objects (or every namespace's) by listing them once.
pub async fn fetch_index(client: &kube::Client, namespace: Option<&str>) -> Result<Index, Error> {
    let mut index = Index::default();
    for which in Kind::ALL {
        for object in list_kind(client, namespace, which).await? {
            index.apply(object);
        }
    }
    Ok(index)
}

/// List one kind as index objects.
pub async fn list_kind(
    client: &kube::Client,
    namespace: Option<&str>,
    which: Kind,
) -> Result<Vec<Object>, Error> {
    let mut params = ListParams::default();
    if let Some(l) = which.label_selector() {
        params = params.labels(l);
    }
    if let Some(f) = which.field_selector() {
        params = params.fields(f);
    }
    let ns = namespace.unwrap_or("");
    let failed = |e| Error::from_kube(e, "list", which.plural(), ns, "");
    Ok(match which {
        Kind::Rollout => dynamic(client, namespace, &sluice_api::rollout::rollout_resource())
            .list(&params)
            .await
            .map_err(failed)?
            .items
            .into_iter()
            .map(|o| {
                let (key, stored) = decode_rollout(o);
                Object::Rollout(key, stored)
            })
            .collect(),
        Kind::Experiment => typed_list::<Experiment>(client, namespace, &params)
            .await
            .map_err(failed)?
            .into_iter()
            .map(Object::Experiment)
            .collect(),
        Kind::AnalysisRun => typed_list::<AnalysisRun>(client, namespace, &params)
            .await
            .map_err(failed)?
            .into_iter()
            .map(Object::AnalysisRun)
            .collect(),
        Kind::ReplicaSet => typed_list::<ReplicaSet>(client, namespace, &params)
            .await
            .map_err(failed)?
            .into_iter()
            .map(Object::ReplicaSet)
            .collect(),
        Kind::Pod => typed_list::<Pod>(client, namespace, &params)
            .await
            .map_err(failed)?
            .into_iter()
            .map(Object::Pod)
            .collect(),
        Kind::Event => typed_list::<Event>(client, namespace, &params)
            .await
            .map_err(failed)?
            .into_iter()
            .map(Object::Event)
            .collect(),
    })
}

/// A dynamic Api over one namespace or all.
pub fn dynamic(
    client: &kube::Client,
    namespace: Option<&str>,
    resource: &kube::api::ApiResource,
) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    }
}

/// A typed Api over one namespace or all.
pub fn typed<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as kube::Resource>::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

async fn typed_list<K>(
    client: &kube::Client,
    namespace: Option<&str>,
    params: &ListParams,
) -> Result<Vec<K>, kube::Error>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
    <K as kube::Resource>::DynamicType: Default,
{
    Ok(typed::<K>(client, namespace).list(params).await?.items)
}

/// One Rollout's world, read once (`kubectl sluice get rollout`).
pub async fn fetch_world(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<World, Error> {
    // The Rollout first: a missing Rollout is one clear error, before any list.
    let api = dynamic(
        client,
        Some(namespace),
        &sluice_api::rollout::rollout_resource(),
    );
    api.get(name)
        .await
        .map_err(|e| Error::from_kube(e, "get", kind::ROLLOUT, namespace, name))?;
    let index = fetch_index(client, Some(namespace)).await?;
    match index.world(&Key::new(namespace, name)) {
        Some(Ok(world)) => Ok(world),
        Some(Err(message)) => Err(Error::Decode {
            kind: kind::ROLLOUT,
            name: name.to_string(),
            message,
        }),
        None => Err(Error::NotFound {
            kind: kind::ROLLOUT,
            namespace: namespace.to_string(),
            name: name.to_string(),
        }),
    }
}

/// One Experiment's world, read once (`kubectl sluice get experiment`).
pub async fn fetch_experiment_world(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<ExperimentWorld, Error> {
    let index = fetch_index(client, Some(namespace)).await?;
    index
        .experiment_world(&Key::new(namespace, name))
        .ok_or_else(|| Error::NotFound {
            kind: kind::EXPERIMENT,
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn owned(kind: &str, owner: &str) -> serde_json::Value {
        json!([{"apiVersion": "v1", "kind": kind, "name": owner, "uid": "u", "controller": true}])
    }

    fn rollout(name: &str) -> Object {
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": name, "namespace": "shop", "managedFields": [{"manager": "kubectl"}]},
            "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx", "args": ["a"]}]}}}
        }))
        .unwrap();
        let (key, stored) = decode_rollout(obj);
        Object::Rollout(key, stored)
    }

    fn replica_set(name: &str, owner_kind: &str, owner: &str) -> Object {
        Object::ReplicaSet(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "shop", "ownerReferences": owned(owner_kind, owner)},
                "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "web", "image": "nginx", "command": ["x"]}]}}}
            }))
            .unwrap(),
        )
    }

    fn pod(name: &str, rs: &str) -> Object {
        Object::Pod(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "shop", "ownerReferences": owned("ReplicaSet", rs)}
            }))
            .unwrap(),
        )
    }

    fn experiment(name: &str, owner: Option<&str>) -> Object {
        let mut meta = json!({"name": name, "namespace": "shop"});
        if let Some(o) = owner {
            meta["ownerReferences"] = owned("Rollout", o);
        }
        Object::Experiment(
            serde_json::from_value(json!({
                "apiVersion": "argoproj.io/v1alpha1", "kind": "Experiment",
                "metadata": meta, "spec": {"templates": []}
            }))
            .unwrap(),
        )
    }

    fn web() -> Topic {
        Topic::Rollout(Key::new("shop", "web"))
    }

    #[test]
    fn a_change_reaches_the_rollout_through_every_owner() {
        let mut index = Index::default();
        assert_eq!(index.apply(rollout("web")), [web()]);
        assert_eq!(index.apply(replica_set("web-a", "Rollout", "web")), [web()]);
        assert_eq!(index.apply(pod("web-a-1", "web-a")), [web()]);
        let exp = Topic::Experiment(Key::new("shop", "web-exp"));
        assert_eq!(
            index.apply(experiment("web-exp", Some("web"))),
            [web(), exp.clone()]
        );
        assert_eq!(
            index.apply(replica_set("web-exp-a", "Experiment", "web-exp")),
            [exp.clone(), web()]
        );
        assert_eq!(index.apply(pod("web-exp-a-1", "web-exp-a")), [exp, web()]);
        assert_eq!(index.apply(pod("stray", "someone-else")), []);
    }

    #[test]
    fn a_world_holds_what_the_rollout_owns_and_nothing_else() {
        let mut index = Index::default();
        for o in [
            rollout("web"),
            rollout("api"),
            replica_set("web-a", "Rollout", "web"),
            replica_set("api-a", "Rollout", "api"),
            pod("web-a-1", "web-a"),
            pod("api-a-1", "api-a"),
            experiment("web-exp", Some("web")),
            replica_set("web-exp-a", "Experiment", "web-exp"),
            experiment("alone", None),
        ] {
            index.apply(o);
        }
        let world = index.world(&Key::new("shop", "web")).unwrap().unwrap();
        let names = |v: Vec<Option<String>>| v.into_iter().flatten().collect::<Vec<_>>();
        assert_eq!(
            names(
                world
                    .replica_sets
                    .iter()
                    .map(|r| r.metadata.name.clone())
                    .collect()
            ),
            ["web-a", "web-exp-a"]
        );
        assert_eq!(
            names(world.pods.iter().map(|p| p.metadata.name.clone()).collect()),
            ["web-a-1"]
        );
        assert_eq!(world.experiments.len(), 1);
        // Slimmed on the way in: no managed fields, containers reduced to name and image.
        assert_eq!(world.rollout.metadata.managed_fields, None);
        let c = &world.replica_sets[0]
            .spec
            .as_ref()
            .unwrap()
            .template
            .as_ref()
            .unwrap()
            .spec
            .as_ref()
            .unwrap()
            .containers[0];
        assert_eq!(
            (c.name.as_str(), c.image.as_deref(), c.command.as_ref()),
            ("web", Some("nginx"), None)
        );

        index.delete(replica_set("web-a", "Rollout", "web"));
        let world = index.world(&Key::new("shop", "web")).unwrap().unwrap();
        assert_eq!(world.replica_sets.len(), 1, "only the experiment's is left");
        assert!(index.world(&Key::new("shop", "nope")).is_none());
    }

    #[test]
    fn a_rollout_that_does_not_decode_is_kept_with_the_field_named() {
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "bad", "namespace": "shop"},
            "spec": {"replicas": "many"}
        }))
        .unwrap();
        let (key, stored) = decode_rollout(obj);
        let mut index = Index::default();
        index.apply(Object::Rollout(key.clone(), stored));
        let err = index.world(&key).unwrap().unwrap_err();
        assert!(err.starts_with("spec.replicas"), "{err}");
    }
}
