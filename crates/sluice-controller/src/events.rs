//! Kubernetes Events (events.k8s.io/v1) on the controllers' objects.
//!
//! kube-runtime's `Recorder` keeps every Event it published, whole, for six minutes and
//! scans that whole cache on every publish, under one lock shared by all reconciles. A
//! mass update of 10,000 Rollouts publishes ~60,000 Events: tens of MiB held, and each
//! publish O(all recent Events). This publisher writes the same Events (same name scheme,
//! reporting controller/instance, action, reason, note) and keeps, per recent distinct
//! Event, only what a repeat needs: the Event's name and count. A repeat within
//! [`REPEAT_WINDOW`] updates that Event's `series` (one PATCH) instead of creating another,
//! as the Recorder does, but "the same" no longer includes the regarded object's
//! resourceVersion, so a repeat planned from a newer copy of the object is still one Event.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::runtime::events::{Event, EventType, Reporter};
use serde_json::json;

use crate::error::DecodeError;
use crate::undecoded::Undecoded;

/// Which Events the controllers write to the API server (`sluice controller --events`).
///
/// Every Event is counted in `rollout_events_total` whatever the level; the level decides
/// only which are also written as Event objects. A canary step writes up to six Normal Events
/// (the ones upstream writes), about half of the controller's API writes at scale, while the
/// same facts are in the Rollout's status and conditions; `warnings` keeps the Events a
/// person must act on (aborts, failed or inconclusive analysis, invalid specs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum EventLevel {
    /// Every Event, as Argo Rollouts writes them.
    #[default]
    All,
    /// Warning Events only.
    Warnings,
    /// No Event objects (metrics and logs only).
    None,
}

impl EventLevel {
    /// Whether an Event of this type is written at this level.
    pub fn writes(self, type_: &EventType) -> bool {
        match self {
            EventLevel::All => true,
            EventLevel::Warnings => matches!(type_, EventType::Warning),
            EventLevel::None => false,
        }
    }

    /// The flag's spelling of this level.
    pub fn as_str(self) -> &'static str {
        match self {
            EventLevel::All => "all",
            EventLevel::Warnings => "warnings",
            EventLevel::None => "none",
        }
    }
}

/// How long an Event is remembered for aggregating repeats (the Recorder's six minutes).
pub const REPEAT_WINDOW: SignedDuration = SignedDuration::from_secs(6 * 60);

/// A recent Event: when it was created (which, with the object it regards, gives its name, see
/// [`event_name`]), how often it happened and when last. Every Event published in the last six
/// minutes has one (about 900,000 in a mass update of 100,000 Rollouts), so it holds no string:
/// the object a repeat regards is the one the first occurrence regarded (it is part of the key),
/// so the name is rebuilt when the repeat is patched.
/// Nanoseconds since the Unix epoch: 8 bytes where a `Timestamp` takes 16.
type Nanos = i64;

fn nanos(t: Timestamp) -> Nanos {
    // i64 nanoseconds reach the year 2262.
    Nanos::try_from(t.as_nanosecond()).unwrap_or(Nanos::MAX)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    created: Nanos,
    count: i32,
    last: Nanos,
}

/// The name of the Event about `regarding` first published at `created`: the object's name
/// (the reporting controller's for an object without one) and the time in nanoseconds, in hex,
/// as client-go's recorder names them.
fn event_name(regarding: &ObjectReference, controller: &str, created: Nanos) -> String {
    format!(
        "{}.{:x}",
        regarding.name.as_deref().unwrap_or(controller),
        created
    )
}

/// The namespace an Event about `regarding` is written to (`default` for cluster objects).
fn event_namespace(regarding: &ObjectReference) -> &str {
    regarding.namespace.as_deref().unwrap_or("default")
}

/// Recent distinct Events by key, with their publish times in order for pruning.
#[derive(Debug, Default)]
struct Recent {
    by_key: HashMap<u64, Seen>,
    order: VecDeque<(Nanos, u64)>,
}

impl Recent {
    /// Forget Events last seen more than [`REPEAT_WINDOW`] before `now`. Amortised O(1):
    /// each publish adds one entry to `order` and each is popped once.
    fn prune(&mut self, now: Nanos) {
        let window = REPEAT_WINDOW.as_nanos() as Nanos;
        while let Some(&(at, key)) = self.order.front() {
            if at.saturating_add(window) > now {
                break;
            }
            self.order.pop_front();
            // A key seen again since has a later entry; only its last one removes it.
            if self.by_key.get(&key).is_some_and(|s| s.last == at) {
                self.by_key.remove(&key);
            }
        }
    }

    fn record(&mut self, key: u64, seen: Seen) {
        self.order.push_back((seen.last, key));
        self.by_key.insert(key, seen);
    }

    /// The Event to patch for a repeat of `key` at `now`, and its new count.
    fn repeat_of(&mut self, key: u64, now: Nanos) -> Option<Seen> {
        self.prune(now);
        self.by_key.get(&key).map(|s| Seen {
            count: s.count + 1,
            last: now,
            ..*s
        })
    }
}

/// What makes two Events "the same" (aggregated into one series).
fn event_key(ev: &Event, regarding: &ObjectReference) -> u64 {
    let mut h = DefaultHasher::new();
    regarding.uid.hash(&mut h);
    regarding.kind.hash(&mut h);
    regarding.namespace.hash(&mut h);
    regarding.name.hash(&mut h);
    matches!(ev.type_, EventType::Warning).hash(&mut h);
    ev.reason.hash(&mut h);
    ev.action.hash(&mut h);
    ev.note.hash(&mut h);
    h.finish()
}

/// The reporting controller of every Sluice Event: `sluice`, on the instance named by
/// `HOSTNAME` (the pod name).
pub fn reporter() -> Reporter {
    Reporter {
        controller: "sluice".into(),
        instance: std::env::var("HOSTNAME").ok(),
    }
}

/// Publishes Events as one reporting controller (shared by its reconciles).
pub struct Publisher {
    client: Client,
    reporter: Reporter,
    level: EventLevel,
    recent: Mutex<Recent>,
}

impl Publisher {
    pub fn new(client: Client, reporter: Reporter, level: EventLevel) -> Self {
        Self {
            client,
            reporter,
            level,
            recent: Mutex::new(Recent::default()),
        }
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The Event object a first occurrence creates.
    fn build(&self, ev: &Event, regarding: &ObjectReference, now: Timestamp) -> K8sEvent {
        let controller = self.reporter.controller.clone();
        K8sEvent {
            action: Some(ev.action.clone()),
            reason: Some(ev.reason.clone()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            note: ev.note.clone(),
            metadata: ObjectMeta {
                namespace: regarding.namespace.clone(),
                name: Some(event_name(regarding, &controller, nanos(now))),
                ..Default::default()
            },
            reporting_controller: Some(controller.clone()),
            reporting_instance: Some(self.reporter.instance.clone().unwrap_or(controller)),
            type_: Some(
                match ev.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .into(),
            ),
            related: ev.secondary.clone(),
            ..Default::default()
        }
    }

    /// Publish `ev` about `regarding` (in its namespace, `default` for cluster objects), unless
    /// the level leaves Events of its type out.
    pub async fn publish(
        &self,
        ev: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        if !self.level.writes(&ev.type_) {
            return Ok(());
        }
        let now = Timestamp::now();
        let key = event_key(ev, regarding);
        let repeat = self.recent().repeat_of(key, nanos(now));
        if let Some(seen) = repeat {
            let ns = event_namespace(regarding);
            let name = event_name(regarding, &self.reporter.controller, seen.created);
            let body = json!({"series": {"count": seen.count, "lastObservedTime": MicroTime(now)}});
            // The Event the server answers with is not read (nor decoded).
            match crate::unread::merge_patch::<K8sEvent>(&self.client, Some(ns), &name, None, &body)
                .await
            {
                Ok(_) => {
                    self.recent().record(key, seen);
                    return Ok(());
                }
                // Deleted (TTL, or by hand) since: a new Event takes its place.
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let event = self.build(ev, regarding, now);
        crate::unread::create(&self.client, Some(event_namespace(regarding)), &event).await?;
        self.recent().record(
            key,
            Seen {
                created: nanos(now),
                count: 1,
                last: nanos(now),
            },
        );
        Ok(())
    }
}

/// Reason of the Warning Event on an object that does not decode.
pub const DECODE_FAILED: &str = "DecodeFailed";

/// Decode the object of a reconcile. One that does not decode fails its own reconcile only;
/// a Warning Event on it names the object and the field, so `kubectl describe` shows the
/// person who wrote it why nothing happens (the error is also logged and counted by the
/// caller's error policy).
pub async fn decode_or_warn<K>(publisher: &Publisher, obj: &Undecoded<K>) -> Result<K, DecodeError>
where
    K: kube::Resource<DynamicType = ()> + serde::Serialize + serde::de::DeserializeOwned,
{
    let err = match obj.decode() {
        Ok(decoded) => return Ok(decoded),
        Err(err) => err,
    };
    let event = Event {
        type_: EventType::Warning,
        reason: DECODE_FAILED.into(),
        note: Some(err.to_string()),
        action: "Decode".into(),
        secondary: None,
    };
    // Best effort, as every Event: the reconcile fails either way.
    if let Err(e) = publisher
        .publish(&event, &kube::Resource::object_ref(obj, &()))
        .await
    {
        tracing::warn!(reason = DECODE_FAILED, error = %e, "recording event failed");
    }
    Err(err)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use kube::api::{Api, PostParams};

    fn at(secs: i64) -> Nanos {
        nanos(Timestamp::from_second(1_800_000_000 + secs).unwrap())
    }

    fn seen(created: Nanos, count: i32, last: Nanos) -> Seen {
        Seen {
            created,
            count,
            last,
        }
    }

    #[test]
    fn an_event_is_named_after_its_object_and_creation_time_in_hex_nanoseconds() {
        let created = nanos(Timestamp::from_nanosecond(1_800_000_000_123_456_789).unwrap());
        let name = event_name(&obj("u1", "1"), "sluice", created);
        assert_eq!(name, format!("web.{:x}", 1_800_000_000_123_456_789_i128));
        assert_eq!(name, "web.18fae2769b0fcd15");
        let cluster_scoped = ObjectReference {
            kind: Some("ClusterAnalysisTemplate".into()),
            ..Default::default()
        };
        assert_eq!(
            event_name(&cluster_scoped, "sluice", created),
            "sluice.18fae2769b0fcd15"
        );
        assert_eq!(event_namespace(&cluster_scoped), "default");
        assert_eq!(event_namespace(&obj("u1", "1")), "ns");
    }

    fn ev(reason: &str, note: &str) -> Event {
        Event {
            type_: EventType::Normal,
            reason: reason.into(),
            note: Some(note.into()),
            action: note.into(),
            secondary: None,
        }
    }

    fn obj(uid: &str, rv: &str) -> ObjectReference {
        ObjectReference {
            kind: Some("Rollout".into()),
            namespace: Some("ns".into()),
            name: Some("web".into()),
            uid: Some(uid.into()),
            resource_version: Some(rv.into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_repeat_is_the_same_event_whatever_the_objects_resource_version() {
        let a = event_key(&ev("RolloutPaused", "paused"), &obj("u1", "10"));
        assert_eq!(
            a,
            event_key(&ev("RolloutPaused", "paused"), &obj("u1", "11"))
        );
        assert_ne!(
            a,
            event_key(&ev("RolloutPaused", "other"), &obj("u1", "10"))
        );
        assert_ne!(
            a,
            event_key(&ev("RolloutResumed", "paused"), &obj("u1", "10"))
        );
        assert_ne!(
            a,
            event_key(&ev("RolloutPaused", "paused"), &obj("u2", "10"))
        );
    }

    #[test]
    fn repeats_within_the_window_count_up_the_first_event() {
        let mut r = Recent::default();
        assert_eq!(r.repeat_of(1, at(0)), None);
        r.record(1, seen(at(0), 1, at(0)));
        let again = r.repeat_of(1, at(10)).unwrap();
        assert_eq!(again, seen(at(0), 2, at(10)));
        r.record(1, again);
        assert_eq!(r.repeat_of(1, at(20)), Some(seen(at(0), 3, at(20))));
        assert_eq!(r.repeat_of(2, at(20)), None);
    }

    #[test]
    fn events_are_forgotten_a_window_after_they_were_last_seen() {
        let mut r = Recent::default();
        r.record(1, seen(at(0), 1, at(0)));
        r.record(2, seen(at(100), 1, at(100)));
        // Seen again at 300: remembered until 300 + 360.
        r.record(1, seen(at(0), 2, at(300)));
        assert!(r.repeat_of(2, at(459)).is_some());
        assert_eq!(r.repeat_of(2, at(460)), None, "b expired at 100 + 360");
        assert!(r.repeat_of(1, at(659)).is_some());
        assert_eq!(r.repeat_of(1, at(660)), None);
        assert!(r.by_key.is_empty());
        assert!(r.order.is_empty(), "every entry is popped once");
    }

    fn typed(type_: EventType, reason: &str) -> Event {
        Event {
            type_,
            ..ev(reason, reason)
        }
    }

    #[test]
    fn each_level_writes_the_event_types_it_names() {
        let normal = EventType::Normal;
        let warning = EventType::Warning;
        let table = [
            (EventLevel::All, true, true),
            (EventLevel::Warnings, false, true),
            (EventLevel::None, false, false),
        ];
        for (level, n, w) in table {
            assert_eq!(level.writes(&normal), n, "{level:?} normal");
            assert_eq!(level.writes(&warning), w, "{level:?} warning");
        }
    }

    /// An embedded cluster with the namespace `ns`, and a client of it (shared with the
    /// announcer's tests).
    pub(crate) async fn cluster() -> (sluice_cluster::EmbeddedCluster, Client) {
        let cluster = sluice_cluster::EmbeddedCluster::start(sluice_cluster::ClusterConfig {
            port: 0,
            ..Default::default()
        })
        .await
        .expect("embedded cluster starts");
        let client = cluster.client();
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "ns"}})).unwrap(),
            )
            .await
            .expect("namespace created");
        (cluster, client)
    }

    /// The Events a publisher at `level` leaves on the API server for one Normal and one
    /// Warning Event.
    async fn written_at(level: EventLevel) -> Vec<String> {
        let (cluster, client) = cluster().await;
        let publisher = Publisher::new(client.clone(), Reporter::from("sluice"), level);
        for e in [
            typed(EventType::Normal, "RolloutPaused"),
            typed(EventType::Warning, "RolloutAborted"),
        ] {
            publisher
                .publish(&e, &obj("u1", "1"))
                .await
                .expect("published");
        }
        let events: Api<K8sEvent> = Api::namespaced(client, "ns");
        let mut reasons: Vec<String> = events
            .list(&Default::default())
            .await
            .expect("events listed")
            .items
            .into_iter()
            .filter_map(|e| e.reason)
            .collect();
        reasons.sort();
        cluster.shutdown().await;
        reasons
    }

    #[tokio::test]
    async fn the_level_decides_which_events_reach_the_api_server() {
        assert_eq!(
            written_at(EventLevel::All).await,
            ["RolloutAborted", "RolloutPaused"]
        );
        assert_eq!(written_at(EventLevel::Warnings).await, ["RolloutAborted"]);
        assert!(written_at(EventLevel::None).await.is_empty());
    }

    #[tokio::test]
    async fn a_repeat_counts_up_the_series_of_the_event_its_first_occurrence_created() {
        let (cluster, client) = cluster().await;
        let publisher = Publisher::new(client.clone(), Reporter::from("sluice"), EventLevel::All);
        let paused = typed(EventType::Normal, "RolloutPaused");
        for rv in ["1", "2", "3"] {
            publisher
                .publish(&paused, &obj("u1", rv))
                .await
                .expect("published");
        }
        let events: Api<K8sEvent> = Api::namespaced(client, "ns");
        let listed = events
            .list(&Default::default())
            .await
            .expect("events listed");
        cluster.shutdown().await;
        assert_eq!(listed.items.len(), 1, "{:?}", listed.items);
        let event = &listed.items[0];
        assert!(
            event
                .metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("web.")),
            "{:?}",
            event.metadata.name
        );
        assert_eq!(event.series.as_ref().map(|s| s.count), Some(3));
    }
}
