//! `RolloutAddedToInformer`, written beside the reconciles instead of inside them.
//!
//! Upstream records this Event for every Rollout its informer lists, so each controller start
//! announces every existing Rollout again: 100,000 Event writes at 100,000 Rollouts. Upstream's
//! recorder writes Events in the background. A Sluice reconcile awaited the write before
//! planning, so a warm start lasted as long as one Event write per Rollout (most of the 55 s
//! of a 100,000-Rollout restart, against no write at all for the plans themselves).
//!
//! Announcements are now queued, and [`Announcer::run`] writes them a few at a time while the
//! reconciles go on. The Event order upstream shows is kept: before a reconcile publishes
//! Events of its own ([`Announcer::before_events`]), it writes its Rollout's announcement
//! itself if that is still queued, or waits for it if it is being written.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use futures::future::join_all;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType};
use tokio::sync::Notify;

use crate::events::Publisher;

/// Upstream's reason for the announcement.
pub const ADDED_TO_INFORMER_REASON: &str = "RolloutAddedToInformer";

/// How many announcements [`Announcer::run`] writes at once.
const IN_FLIGHT: usize = 8;

/// Where an announcement is: queued (with the Rollout it is about), or being written.
#[derive(Debug)]
enum Pending {
    Queued(ObjectReference),
    Writing,
}

#[derive(Debug, Default)]
struct State {
    /// UIDs in the order they were announced; an entry whose announcement a reconcile took
    /// is skipped.
    order: VecDeque<String>,
    pending: HashMap<String, Pending>,
}

/// The queue of announcements (see the module docs).
#[derive(Debug, Default)]
pub struct Announcer {
    state: Mutex<State>,
    /// Signalled when an announcement is queued.
    queued: Notify,
    /// Signalled when a batch of announcements has been written.
    written: Notify,
}

/// The announcement Event about `regarding`.
fn announcement(regarding: &ObjectReference) -> Event {
    Event {
        type_: EventType::Normal,
        reason: ADDED_TO_INFORMER_REASON.into(),
        action: ADDED_TO_INFORMER_REASON.into(),
        note: Some(format!(
            "Rollout resource added to informer: {}/{}",
            regarding.namespace.as_deref().unwrap_or_default(),
            regarding.name.as_deref().unwrap_or_default()
        )),
        secondary: None,
    }
}

async fn write(publisher: &Publisher, regarding: &ObjectReference) {
    // Best effort, like every Event.
    if let Err(e) = publisher.publish(&announcement(regarding), regarding).await {
        tracing::warn!(reason = ADDED_TO_INFORMER_REASON, error = %e, "recording event failed");
    }
}

impl Announcer {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue the announcement of the Rollout `regarding` (once: a Rollout already queued or
    /// being announced is not queued again).
    pub fn announce(&self, regarding: ObjectReference) {
        let uid = regarding.uid.clone().unwrap_or_default();
        {
            let mut state = self.state();
            if state.pending.contains_key(&uid) {
                return;
            }
            state.order.push_back(uid.clone());
            state.pending.insert(uid, Pending::Queued(regarding));
        }
        self.queued.notify_one();
    }

    /// Drop the queued announcement of the Rollout with `uid` (it was deleted).
    pub fn forget(&self, uid: &str) {
        let mut state = self.state();
        if matches!(state.pending.get(uid), Some(Pending::Queued(_))) {
            state.pending.remove(uid);
        }
    }

    /// How many announcements are queued or being written.
    pub fn pending(&self) -> usize {
        self.state().pending.len()
    }

    /// Make sure the announcement of the Rollout with `uid` is written before the caller
    /// publishes other Events about it: write it now if it is queued, wait if it is being
    /// written.
    pub async fn before_events(&self, uid: &str, publisher: &Publisher) {
        loop {
            let written = self.written.notified();
            tokio::pin!(written);
            // Registered before the state is read, so a batch finishing in between is seen.
            written.as_mut().enable();
            let queued = {
                let mut state = self.state();
                match state.pending.get(uid) {
                    None => return,
                    Some(Pending::Writing) => None,
                    Some(Pending::Queued(_)) => match state.pending.remove(uid) {
                        Some(Pending::Queued(regarding)) => Some(regarding),
                        _ => None,
                    },
                }
            };
            match queued {
                Some(regarding) => {
                    write(publisher, &regarding).await;
                    return;
                }
                None => written.await,
            }
        }
    }

    /// The next announcements to write (at most [`IN_FLIGHT`]), marked as being written.
    fn take_batch(&self) -> Vec<(String, ObjectReference)> {
        let mut state = self.state();
        let mut batch = Vec::new();
        while batch.len() < IN_FLIGHT {
            let Some(uid) = state.order.pop_front() else {
                break;
            };
            if let Some(Pending::Queued(_)) = state.pending.get(&uid)
                && let Some(Pending::Queued(regarding)) =
                    state.pending.insert(uid.clone(), Pending::Writing)
            {
                batch.push((uid, regarding));
            }
        }
        batch
    }

    /// Write queued announcements until the returned future is dropped (with the controller
    /// it runs beside).
    pub async fn run(&self, publisher: &Publisher) {
        loop {
            let batch = self.take_batch();
            if batch.is_empty() {
                self.queued.notified().await;
                continue;
            }
            join_all(
                batch
                    .iter()
                    .map(|(_, regarding)| write(publisher, regarding)),
            )
            .await;
            {
                let mut state = self.state();
                for (uid, _) in &batch {
                    state.pending.remove(uid);
                }
            }
            self.written.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::events::v1::Event as K8sEvent;
    use kube::Client;
    use kube::api::Api;
    use kube::runtime::events::Reporter;

    use crate::events::EventLevel;
    use crate::events::tests::cluster;

    fn rollout(name: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("argoproj.io/v1alpha1".into()),
            kind: Some("Rollout".into()),
            namespace: Some("ns".into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            ..Default::default()
        }
    }

    #[test]
    fn a_rollout_is_queued_once_and_batches_follow_the_order_of_announcement() {
        let a = Announcer::default();
        for name in ["a", "b", "a", "c"] {
            a.announce(rollout(name));
        }
        assert_eq!(a.pending(), 3);
        a.forget("uid-b");
        let batch: Vec<String> = a.take_batch().into_iter().map(|(uid, _)| uid).collect();
        assert_eq!(batch, ["uid-a", "uid-c"], "b was forgotten");
        assert_eq!(a.pending(), 2, "being written until the batch is done");
        assert!(a.take_batch().is_empty());
    }

    async fn reasons(client: Client) -> Vec<(String, String)> {
        let events: Api<K8sEvent> = Api::namespaced(client, "ns");
        let mut listed: Vec<K8sEvent> = events
            .list(&Default::default())
            .await
            .expect("events listed")
            .items;
        listed.sort_by_key(|e| e.event_time.clone().map(|t| t.0));
        listed
            .into_iter()
            .map(|e| {
                (
                    e.regarding.and_then(|r| r.name).unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn a_queued_announcement_is_written_before_the_rollouts_own_events() {
        let (cluster, client) = cluster().await;
        let publisher = Publisher::new(client.clone(), Reporter::from("sluice"), EventLevel::All);
        let a = Announcer::default();
        a.announce(rollout("web"));
        // No background writer runs: the reconcile's own Events must not go first anyway.
        a.before_events("uid-web", &publisher).await;
        let paused = Event {
            type_: EventType::Normal,
            reason: "RolloutPaused".into(),
            action: "paused".into(),
            note: Some("paused".into()),
            secondary: None,
        };
        publisher
            .publish(&paused, &rollout("web"))
            .await
            .expect("published");
        assert_eq!(a.pending(), 0);
        let got = reasons(client).await;
        cluster.shutdown().await;
        assert_eq!(
            got,
            [
                ("web".to_string(), ADDED_TO_INFORMER_REASON.to_string()),
                ("web".to_string(), "RolloutPaused".to_string()),
            ]
        );
    }

    #[tokio::test]
    async fn the_background_writer_announces_every_queued_rollout() {
        let (cluster, client) = cluster().await;
        let publisher = Publisher::new(client.clone(), Reporter::from("sluice"), EventLevel::All);
        let a = Announcer::default();
        let names: Vec<String> = (0..20).map(|i| format!("ro-{i}")).collect();
        for name in &names {
            a.announce(rollout(name));
        }
        let writer = a.run(&publisher);
        let drained = async {
            for _ in 0..500 {
                if a.pending() == 0 {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        };
        tokio::select! {
            _ = writer => unreachable!("the writer runs until dropped"),
            _ = drained => {}
        }
        // A Rollout whose announcement was written does not wait.
        a.before_events("uid-ro-3", &publisher).await;
        let mut got: Vec<String> = reasons(client)
            .await
            .into_iter()
            .filter(|(_, reason)| reason == ADDED_TO_INFORMER_REASON)
            .map(|(name, _)| name)
            .collect();
        cluster.shutdown().await;
        got.sort();
        let mut want = names.clone();
        want.sort();
        assert_eq!(got, want);
    }
}
