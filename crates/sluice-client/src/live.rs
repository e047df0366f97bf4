//! The trees kept current from watches: `get --watch`, `status` and the dashboard.
//!
//! [`Live::start`] runs one watch per kind (Rollouts, Experiments, AnalysisRuns, ReplicaSets
//! and pods that carry the pod-template-hash label, Events about Rollouts) into one
//! [`Index`], and announces each change as the [`Topic`]s it alters on a broadcast channel.
//! A subscriber that falls behind is told so (`Lagged`) and re-reads everything.
//!
//! A watch that fails is retried with backoff; its last error is kept per kind, so the CLI
//! can fail with it and the dashboard can show it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::DynamicObject;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event as WatchEvent};
use tokio::sync::{broadcast, watch};

use sluice_api::analysis::AnalysisRun;
use sluice_api::experiment::Experiment;
use sluice_api::rollout::rollout_resource;

use crate::error::Error;
use crate::world::{Index, Kind, Object, Topic, decode, decode_rollout, dynamic, typed};

/// How many changes a slow subscriber may fall behind before it is told to re-read.
const CHANGES_BUFFERED: usize = 4096;

/// The state of one kind's watch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchState {
    /// The first full list arrived.
    pub synced: bool,
    /// The last failure, cleared when the watch recovers.
    pub error: Option<String>,
}

/// Shared, watch-fed index of the trees in one namespace or all.
#[derive(Clone)]
pub struct Live {
    index: Arc<RwLock<Index>>,
    changes: broadcast::Sender<Topic>,
    states: Arc<Mutex<BTreeMap<Kind, WatchState>>>,
    state_changed: watch::Sender<u64>,
    tasks: Arc<Vec<tokio::task::JoinHandle<()>>>,
}

impl Live {
    /// Start watching `namespace` (or every namespace).
    pub fn start(client: kube::Client, namespace: Option<String>) -> Live {
        let (changes, _) = broadcast::channel(CHANGES_BUFFERED);
        let (state_changed, _) = watch::channel(0);
        let mut live = Live {
            index: Arc::default(),
            changes,
            states: Arc::new(Mutex::new(
                Kind::ALL
                    .iter()
                    .map(|k| (*k, WatchState::default()))
                    .collect(),
            )),
            state_changed,
            tasks: Arc::default(),
        };
        let tasks = Kind::ALL
            .iter()
            .map(|&which| {
                let live = live.clone();
                let client = client.clone();
                let namespace = namespace.clone();
                tokio::spawn(
                    async move { live.run_watch(client, namespace.as_deref(), which).await },
                )
            })
            .collect();
        live.tasks = Arc::new(tasks);
        live
    }

    /// Stop the watches.
    pub fn stop(&self) {
        for t in self.tasks.iter() {
            t.abort();
        }
    }

    /// Read the index.
    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Topic> {
        self.changes.subscribe()
    }

    /// Each kind's watch state.
    pub fn states(&self) -> BTreeMap<Kind, WatchState> {
        self.states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A receiver that wakes when a watch syncs, fails or recovers.
    pub fn state_changes(&self) -> watch::Receiver<u64> {
        self.state_changed.subscribe()
    }

    /// Wait until every watch has listed once; fail with the first watch error instead
    /// (for the CLI: an unreachable cluster or a missing CRD is one clear line, not a hang).
    pub async fn synced(&self) -> Result<(), Error> {
        let mut changed = self.state_changes();
        loop {
            let states = self.states();
            if let Some((which, state)) =
                states.iter().find(|(_, s)| s.error.is_some() && !s.synced)
            {
                return Err(Error::Unreachable(format!(
                    "watching {}: {}",
                    which.plural(),
                    state.error.clone().unwrap_or_default()
                )));
            }
            if states.values().all(|s| s.synced) {
                return Ok(());
            }
            if changed.changed().await.is_err() {
                return Err(Error::Unreachable("the watches stopped".into()));
            }
        }
    }

    fn set_state(&self, which: Kind, update: impl FnOnce(&mut WatchState)) {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let state = states.entry(which).or_default();
        let before = state.clone();
        update(state);
        if *state != before {
            drop(states);
            self.state_changed.send_modify(|n| *n += 1);
        }
    }

    fn publish(&self, topics: Vec<Topic>) {
        for t in topics {
            // No subscriber is fine: nobody is looking.
            let _ = self.changes.send(t);
        }
    }

    async fn run_watch(&self, client: kube::Client, namespace: Option<&str>, which: Kind) {
        let mut config = watcher::Config::default();
        if let Some(l) = which.label_selector() {
            config = config.labels(l);
        }
        if let Some(f) = which.field_selector() {
            config = config.fields(f);
        }
        match which {
            Kind::Rollout => {
                let api = dynamic(&client, namespace, &rollout_resource());
                self.drive(which, watcher::watcher(api, config), |o| {
                    let (key, stored) = decode_rollout(o);
                    Some(Object::Rollout(key, stored))
                })
                .await
            }
            Kind::Experiment => {
                let api = dynamic(
                    &client,
                    namespace,
                    &kube::api::ApiResource::erase::<Experiment>(&()),
                );
                self.drive(which, watcher::watcher(api, config), |o: DynamicObject| {
                    decode::<Experiment>(o).ok().map(Object::Experiment)
                })
                .await
            }
            Kind::AnalysisRun => {
                let api = dynamic(
                    &client,
                    namespace,
                    &kube::api::ApiResource::erase::<AnalysisRun>(&()),
                );
                self.drive(which, watcher::watcher(api, config), |o: DynamicObject| {
                    decode::<AnalysisRun>(o).ok().map(Object::AnalysisRun)
                })
                .await
            }
            Kind::ReplicaSet => {
                let api = typed::<ReplicaSet>(&client, namespace);
                self.drive(which, watcher::watcher(api, config), |o| {
                    Some(Object::ReplicaSet(o))
                })
                .await
            }
            Kind::Pod => {
                let api = typed::<Pod>(&client, namespace);
                self.drive(which, watcher::watcher(api, config), |o| {
                    Some(Object::Pod(o))
                })
                .await
            }
            Kind::Event => {
                let api = typed::<Event>(&client, namespace);
                self.drive(which, watcher::watcher(api, config), |o| {
                    Some(Object::Event(o))
                })
                .await
            }
        }
    }

    async fn drive<K, S>(&self, which: Kind, stream: S, to_object: impl Fn(K) -> Option<Object>)
    where
        S: Stream<Item = Result<WatchEvent<K>, watcher::Error>> + Send,
        K: Clone,
    {
        let stream = stream.default_backoff();
        futures::pin_mut!(stream);
        // Objects of a re-list are collected and swapped in at InitDone, so a view never sees
        // a half-listed kind.
        let mut relisting: Option<Vec<Object>> = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(WatchEvent::Init) => relisting = Some(Vec::new()),
                Ok(WatchEvent::InitApply(o)) => {
                    if let (Some(list), Some(obj)) = (relisting.as_mut(), to_object(o)) {
                        list.push(obj);
                    }
                }
                Ok(WatchEvent::InitDone) => {
                    let objects = relisting.take().unwrap_or_default();
                    let mut topics = Vec::new();
                    {
                        let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
                        topics.extend(index.clear_topics(which));
                        index.clear(which);
                        for o in objects {
                            topics.extend(index.apply(o));
                        }
                    }
                    self.publish(topics);
                    self.set_state(which, |s| {
                        s.synced = true;
                        s.error = None;
                    });
                }
                Ok(WatchEvent::Apply(o)) => {
                    if let Some(obj) = to_object(o) {
                        let topics = self
                            .index
                            .write()
                            .unwrap_or_else(|e| e.into_inner())
                            .apply(obj);
                        self.publish(topics);
                    }
                    self.set_state(which, |s| s.error = None);
                }
                Ok(WatchEvent::Delete(o)) => {
                    if let Some(obj) = to_object(o) {
                        let topics = self
                            .index
                            .write()
                            .unwrap_or_else(|e| e.into_inner())
                            .delete(obj);
                        self.publish(topics);
                    }
                }
                Err(e) => {
                    let message = crate::error::chain(&e);
                    tracing::debug!(kind = which.plural(), error = %message, "watch failed");
                    self.set_state(which, |s| s.error = Some(message));
                }
            }
        }
    }
}
