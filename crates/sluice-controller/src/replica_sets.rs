//! One watch of the ReplicaSets Rollouts and Experiments own, listed and decoded once for both
//! controllers.
//!
//! Both kinds of ReplicaSet carry the pod-template-hash label, and a label selector cannot
//! tell them apart. With a watch each, every ReplicaSet was listed, trimmed and packed twice
//! at a restart, and the Experiment controller's copy (300,000 ReplicaSets behind 100,000
//! Rollouts, none of them an Experiment's) was decoded on the task that also drives the
//! Rollout controller's queue (docs/performance.md). Here one watch, on a task of its own,
//! applies each event to both owner indexes (each keeps only what its kind controls) and
//! hands each touched ReplicaSet to the controller whose kind owns it: the one whose
//! `owns_stream` would have mapped it to an owner; the other would have dropped it. The
//! Rollout controller is not handed the first list's (see [`touched`]).

use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use tokio::sync::mpsc;

use crate::own_task::AbortOnDrop;
use crate::owned::OwnedStore;
use crate::undecoded::Undecoded;

/// What a controller reads of the shared watch: its cache, and the ReplicaSets its kind owns
/// as they change (its trigger stream; the Rollout side also carries the watch's errors).
pub struct OwnedReplicaSets {
    pub store: OwnedStore<ReplicaSet>,
    pub changes: ChangeStream,
}

/// The ReplicaSets one owner kind is handed, in watch order.
pub type ChangeStream = futures::stream::BoxStream<'static, Item>;

/// The two sides of the shared watch.
pub struct SharedReplicaSets {
    pub rollouts: OwnedReplicaSets,
    pub experiments: OwnedReplicaSets,
}

/// The API group and version of both owner kinds.
const OWNER_API_VERSION: &str = "argoproj.io/v1alpha1";

/// How many ReplicaSets wait for a controller before the watch waits for it.
const BUFFER: usize = 1024;

impl SharedReplicaSets {
    /// Watch the ReplicaSets carrying `label` (in `namespace`, or in all). Their
    /// managedFields are dropped as each is read ([`Undecoded`]).
    pub fn watch(client: &Client, namespace: Option<&str>, label: &str) -> Self {
        let api: Api<Undecoded<ReplicaSet>> = crate::scoped_api(client, namespace);
        Self::over(watcher(api, watcher::Config::default().labels(label)).default_backoff())
    }

    /// Share `events` (a watch of ReplicaSets) between the two controllers. The stream is
    /// driven by a task of its own, which ends when it does or when both sides are dropped.
    pub fn over<S>(events: S) -> Self
    where
        S: Stream<Item = Result<watcher::Event<Undecoded<ReplicaSet>>, watcher::Error>>
            + Send
            + 'static,
    {
        let (rollout_store, events) = OwnedStore::reflect_as("Rollout", events);
        let (experiment_store, events) = OwnedStore::reflect_as("Experiment", events);
        let (to_rollouts, rollout_rx) = mpsc::channel(BUFFER);
        let (to_experiments, experiment_rx) = mpsc::channel(BUFFER);
        let task = Arc::new(AbortOnDrop(tokio::spawn(async move {
            let mut touched = std::pin::pin!(touched(events));
            let (mut rollouts, mut experiments) = (Some(to_rollouts), Some(to_experiments));
            while let Some((item, first_list)) = touched.next().await {
                match item {
                    Ok(rs) => {
                        let to_rollout = owned_by(&rs, "Rollout") && !first_list;
                        match (to_rollout, owned_by(&rs, "Experiment")) {
                            (true, true) => {
                                send(&mut experiments, Ok(rs.clone())).await;
                                send(&mut rollouts, Ok(rs)).await;
                            }
                            (true, false) => send(&mut rollouts, Ok(rs)).await,
                            (false, true) => send(&mut experiments, Ok(rs)).await,
                            (false, false) => {}
                        }
                    }
                    // The Rollout controller logs them (the watch retries by itself).
                    Err(e) => send(&mut rollouts, Err(e)).await,
                }
                if rollouts.is_none() && experiments.is_none() {
                    break;
                }
            }
        })));
        Self {
            rollouts: OwnedReplicaSets {
                store: rollout_store,
                changes: receive(rollout_rx, task.clone()),
            },
            experiments: OwnedReplicaSets {
                store: experiment_store,
                changes: receive(experiment_rx, task),
            },
        }
    }
}

/// The ReplicaSets `events` adds, changes or deletes, each with whether it came with the
/// watch's first list.
///
/// The Rollout controller lists its Rollouts when it starts and reconciles every one, and
/// each reconcile waits for this cache's first list to finish: a trigger for each ReplicaSet
/// of that list only asks again for reconciles already queued (300,000 of them at a restart
/// with 100,000 Rollouts, docs/performance.md), so that side is not handed them. The
/// Experiment controller reads missing ReplicaSets from the API server instead of waiting,
/// so it is handed every one. A later relist (after the watch expired) is not the first:
/// it may carry changes the broken watch never delivered.
fn touched<S>(events: S) -> impl Stream<Item = (Item, bool)> + Send
where
    S: Stream<Item = Result<watcher::Event<Undecoded<ReplicaSet>>, watcher::Error>> + Send,
{
    let mut first_list = true;
    events.filter_map(move |event| {
        let item = match event {
            Ok(watcher::Event::Init) => None,
            Ok(watcher::Event::InitDone) => {
                first_list = false;
                None
            }
            Ok(watcher::Event::InitApply(rs)) => Some((Ok(rs), first_list)),
            Ok(watcher::Event::Apply(rs) | watcher::Event::Delete(rs)) => Some((Ok(rs), false)),
            Err(e) => Some((Err(e), false)),
        };
        futures::future::ready(item)
    })
}

/// Whether an ownerReference of `rs` names an object of `kind`: what kube-runtime's
/// `owns_stream` maps a changed child to its owners by (any reference, not only the
/// controller's).
fn owned_by(rs: &Undecoded<ReplicaSet>, kind: &str) -> bool {
    rs.meta()
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == kind && o.api_version == OWNER_API_VERSION)
}

type Item = Result<Undecoded<ReplicaSet>, watcher::Error>;

/// Send `item` to a side still listening; a side that stopped is forgotten.
async fn send(side: &mut Option<mpsc::Sender<Item>>, item: Item) {
    if let Some(tx) = side
        && tx.send(item).await.is_err()
    {
        *side = None;
    }
}

/// One side's stream: the channel's items, holding the task until both sides are gone.
fn receive(rx: mpsc::Receiver<Item>, task: Arc<AbortOnDrop<()>>) -> ChangeStream {
    futures::stream::unfold((rx, task), |(mut rx, task)| async move {
        let item = rx.recv().await?;
        Some((item, (rx, task)))
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use watcher::Event;

    /// A ReplicaSet whose first owner is its controller.
    fn rs(name: &str, owners: &[(&str, &str)]) -> Undecoded<ReplicaSet> {
        let refs: Vec<_> = owners
            .iter()
            .enumerate()
            .map(|(i, (kind, uid))| {
                json!({"apiVersion": OWNER_API_VERSION, "kind": kind, "name": format!("o-{uid}"),
                       "uid": uid, "controller": i == 0})
            })
            .collect();
        Undecoded::from_json(json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": "ns", "ownerReferences": refs},
            "spec": {"selector": {}}
        }))
        .expect("valid metadata")
    }

    fn names(items: &[Result<Undecoded<ReplicaSet>, watcher::Error>]) -> Vec<String> {
        items
            .iter()
            .map(|i| match i {
                Ok(rs) => rs.meta().name.clone().unwrap_or_default(),
                Err(_) => "error".to_string(),
            })
            .collect()
    }

    #[tokio::test]
    async fn one_list_fills_both_caches_and_each_controller_is_handed_what_its_kind_owns() {
        let events = futures::stream::iter([
            Ok(Event::Init),
            Ok(Event::InitApply(rs("canary", &[("Rollout", "r1")]))),
            Ok(Event::InitApply(rs("exp", &[("Experiment", "e1")]))),
            Ok(Event::InitApply(rs("loose", &[]))),
            Ok(Event::InitDone),
            Ok(Event::Apply(rs(
                "both",
                &[("Rollout", "r2"), ("Experiment", "e2")],
            ))),
            Err(watcher::Error::NoResourceVersion),
            Ok(Event::Delete(rs("canary", &[("Rollout", "r1")]))),
        ]);
        let shared = SharedReplicaSets::over(events);
        let SharedReplicaSets {
            rollouts,
            experiments,
        } = shared;
        let to_rollouts: Vec<_> = rollouts.changes.collect().await;
        let to_experiments: Vec<_> = experiments.changes.collect().await;
        // The first list's ReplicaSets are not handed to the Rollout controller, which
        // reconciles every Rollout it lists once that list is in.
        assert_eq!(names(&to_rollouts), ["both", "error", "canary"]);
        assert_eq!(names(&to_experiments), ["exp", "both"]);
        rollouts.store.wait_ready().await.expect("listed");
        experiments.store.wait_ready().await.expect("listed");
        let rollout_cache = rollouts.store.owned_by("ns", "r2").expect("decodes");
        assert_eq!(rollout_cache.len(), 1);
        assert!(
            rollouts.store.owned_by("ns", "r1").unwrap().is_empty(),
            "deleted"
        );
        assert_eq!(experiments.store.owned_by("ns", "e1").unwrap().len(), 1);
        // Each cache keeps what its kind controls; both controllers were told of "both".
        assert!(experiments.store.owned_by("ns", "e2").unwrap().is_empty());
        assert_eq!((rollouts.store.len(), experiments.store.len()), (1, 1));
    }

    #[tokio::test]
    async fn a_relist_after_the_first_hands_on_every_replica_set_it_reads() {
        let events = futures::stream::iter([
            Ok(Event::Init),
            Ok(Event::InitApply(rs(
                "listed-at-start",
                &[("Rollout", "r1")],
            ))),
            Err(watcher::Error::NoResourceVersion),
            // The first list started over before it was whole: still the first.
            Ok(Event::Init),
            Ok(Event::InitApply(rs(
                "listed-at-start",
                &[("Rollout", "r1")],
            ))),
            Ok(Event::InitApply(rs(
                "exp-at-start",
                &[("Experiment", "e1")],
            ))),
            Ok(Event::InitDone),
            Ok(Event::Init),
            Ok(Event::InitApply(rs("changed-unseen", &[("Rollout", "r1")]))),
            Ok(Event::InitApply(rs("exp-changed", &[("Experiment", "e1")]))),
            Ok(Event::InitDone),
        ]);
        let SharedReplicaSets {
            rollouts,
            experiments,
        } = SharedReplicaSets::over(events);
        let to_rollouts: Vec<_> = rollouts.changes.collect().await;
        let to_experiments: Vec<_> = experiments.changes.collect().await;
        assert_eq!(names(&to_rollouts), ["error", "changed-unseen"]);
        assert_eq!(names(&to_experiments), ["exp-at-start", "exp-changed"]);
    }

    #[tokio::test]
    async fn the_watch_goes_on_for_one_side_after_the_other_is_dropped() {
        let events = futures::stream::iter(
            (0..3 * BUFFER).map(|i| Ok(Event::Apply(rs(&format!("x{i}"), &[("Experiment", "e")])))),
        );
        let SharedReplicaSets {
            rollouts,
            experiments,
        } = SharedReplicaSets::over(events);
        drop(rollouts);
        let handed: Vec<_> = experiments.changes.collect().await;
        assert_eq!(handed.len(), 3 * BUFFER);
    }
}
