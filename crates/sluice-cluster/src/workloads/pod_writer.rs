//! Creating and deleting the Pods a controller owns, and remembering what it asked for.
//!
//! The watch cache lags the controller's own writes. Without bookkeeping, a ReplicaSet that
//! just created two Pods would see none of them on its next reconcile and create two more.
//! [`Expectations`] records the names created and deleted, and a controller only decides
//! Pod counts again once the cache shows all of them (the real controller-manager does the
//! same, with the same escape hatch: expectations expire).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Api;
use kube::api::{DeleteParams, PostParams};

use super::informer::{Cache, ObjectKey};
use super::pod_state::is_terminating;
use super::{WorkloadsError, is_not_found};

/// A change to the set of Pods a controller owns.
#[derive(Clone, Debug, PartialEq)]
pub enum PodChange {
    /// Create this Pod; its name is `metadata.generateName` plus five random characters,
    /// chosen when it is created.
    Create(Box<Pod>),
    /// Delete the Pod with this name.
    Delete(String),
    /// Make the controller the owner of this orphan Pod by writing these owner references.
    Adopt {
        name: String,
        owner_references: Vec<OwnerReference>,
    },
}

/// How many Pods one reconcile may create; the rest wait for the next pass, as upstream.
pub const BURST: usize = 500;

/// The Pod a controller creates from its template.
pub fn pod_from_template(
    template: &PodTemplateSpec,
    namespace: &str,
    generate_name: &str,
    owner: OwnerReference,
    extra_labels: &[(&str, &str)],
) -> Pod {
    let meta = template.metadata.clone().unwrap_or_default();
    let mut labels = meta.labels.unwrap_or_default();
    for (k, v) in extra_labels {
        labels.insert((*k).to_string(), (*v).to_string());
    }
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: (!labels.is_empty()).then_some(labels),
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// Five random characters for a Pod name, as the API server draws them for `generateName`.
pub fn random_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    crate::names::random_suffix(h.finish())
}

/// What applying a list of Pod changes achieved.
#[derive(Debug, Default)]
pub struct Applied {
    pub created: Vec<String>,
    pub deleted: Vec<String>,
    /// The first failure, which stopped further creations.
    pub error: Option<WorkloadsError>,
}

/// Applies `changes` in `namespace`. Creations go in doubling batches (1, 2, 4, ...) and stop
/// at the first failure, so a quota or admission error costs one request, not hundreds.
pub async fn apply(client: &kube::Client, namespace: &str, changes: Vec<PodChange>) -> Applied {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut applied = Applied::default();
    let mut creates = Vec::new();
    let mut deletes = Vec::new();
    let mut adoptions = Vec::new();
    for c in changes {
        match c {
            PodChange::Create(p) => creates.push(*p),
            PodChange::Delete(n) => deletes.push(n),
            PodChange::Adopt {
                name,
                owner_references,
            } => adoptions.push((name, owner_references)),
        }
    }
    for (name, refs) in adoptions {
        let body = serde_json::json!({"metadata": {"ownerReferences": refs}});
        match api
            .patch(
                &name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&body),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                applied.error.get_or_insert(WorkloadsError::Kube(e));
            }
        }
    }
    let results = futures::future::join_all(deletes.into_iter().map(|name| {
        let api = api.clone();
        async move {
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => Ok(name),
                Err(e) if is_not_found(&e) => Ok(name),
                Err(e) => Err(e),
            }
        }
    }))
    .await;
    for r in results {
        match r {
            Ok(name) => applied.deleted.push(name),
            Err(e) => {
                applied.error.get_or_insert(WorkloadsError::Kube(e));
            }
        }
    }
    let mut batch = 1;
    let mut pending = creates.into_iter().peekable();
    while pending.peek().is_some() && applied.error.is_none() {
        let chunk: Vec<Pod> = pending.by_ref().take(batch).collect();
        let results =
            futures::future::join_all(chunk.into_iter().map(|p| create_named(&api, p))).await;
        for r in results {
            match r {
                Ok(name) => applied.created.push(name),
                Err(e) => {
                    applied.error.get_or_insert(WorkloadsError::Kube(e));
                }
            }
        }
        batch *= 2;
    }
    applied
}

async fn create_named(api: &Api<Pod>, mut pod: Pod) -> Result<String, kube::Error> {
    let prefix = pod.metadata.generate_name.take().unwrap_or_default();
    let mut attempt = 0;
    loop {
        let name = format!("{prefix}{}", random_suffix());
        pod.metadata.name = Some(name.clone());
        match api.create(&PostParams::default(), &pod).await {
            Ok(_) => return Ok(name),
            // A name clash: draw again (bounded).
            Err(kube::Error::Api(s)) if s.code == 409 && attempt < 3 => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

struct Pending {
    creates: HashSet<String>,
    deletes: HashSet<String>,
    expires: Instant,
}

/// Pod creations and deletions a controller has made but not yet seen in its cache.
pub struct Expectations {
    pending: Mutex<HashMap<ObjectKey, Pending>>,
    ttl: Duration,
}

impl Default for Expectations {
    fn default() -> Self {
        Self::new(Duration::from_secs(60))
    }
}

impl Expectations {
    /// Expectations that are given up after `ttl` (a write whose echo never arrives).
    pub fn new(ttl: Duration) -> Self {
        Self {
            pending: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    /// Records what a reconcile of `owner` just did.
    pub fn expect(&self, owner: &ObjectKey, created: &[String], deleted: &[String]) {
        if created.is_empty() && deleted.is_empty() {
            return;
        }
        let mut map = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.entry(owner.clone()).or_insert_with(|| Pending {
            creates: HashSet::new(),
            deletes: HashSet::new(),
            expires: Instant::now(),
        });
        entry.creates.extend(created.iter().cloned());
        entry.deletes.extend(deleted.iter().cloned());
        entry.expires = Instant::now() + self.ttl;
    }

    /// True when the cache reflects everything recorded for `owner` (or the record expired).
    pub fn satisfied(&self, owner: &ObjectKey, pods: &Cache<Pod>) -> bool {
        let mut map = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let Some(p) = map.get_mut(owner) else {
            return true;
        };
        let ns = &owner.namespace;
        p.creates
            .retain(|n| pods.get(&ObjectKey::new(ns.clone(), n.clone())).is_none());
        p.deletes.retain(|n| {
            pods.get(&ObjectKey::new(ns.clone(), n.clone()))
                .is_some_and(|pod| !is_terminating(&pod))
        });
        let done = (p.creates.is_empty() && p.deletes.is_empty()) || Instant::now() >= p.expires;
        if done {
            map.remove(owner);
        }
        done
    }

    /// Drops the record of a deleted owner.
    pub fn forget(&self, owner: &ObjectKey) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(owner);
    }
}

#[cfg(test)]
mod tests {
    use super::super::pod_state::fixtures::{deleting, pod};
    use super::*;

    #[test]
    fn suffixes_use_the_safe_alphabet_and_differ() {
        let a = random_suffix();
        let b = random_suffix();
        assert_eq!(a.len(), 5);
        assert!(
            a.bytes()
                .all(|c| sluice_api::k8s::hash::SAFE_ALPHABET.contains(&c))
        );
        assert_ne!(a, b);
    }

    #[test]
    fn expectations_hold_until_the_cache_shows_every_write() {
        let cache = Cache::<Pod>::new();
        let exp = Expectations::default();
        let owner = ObjectKey::new("ns", "rs");
        cache.insert(pod("old", "rs-uid", 0));
        exp.expect(&owner, &["new".into()], &["old".into()]);
        assert!(!exp.satisfied(&owner, &cache));

        cache.insert(pod("new", "rs-uid", 1));
        assert!(!exp.satisfied(&owner, &cache), "deletion not yet seen");

        cache.insert(deleting(pod("old", "rs-uid", 0)));
        assert!(exp.satisfied(&owner, &cache));
    }

    #[test]
    fn expectations_expire() {
        let cache = Cache::<Pod>::new();
        let exp = Expectations::new(Duration::ZERO);
        let owner = ObjectKey::new("ns", "rs");
        exp.expect(&owner, &["never-seen".into()], &[]);
        assert!(exp.satisfied(&owner, &cache));
    }
}
