//! The Services Rollouts switch.
//!
//! One watch of Services does three things:
//! - it keeps the Services a reconcile reads ([`ManagedServices::objects`]; the actuator
//!   records each selector write so a read waits until the cache shows it, see
//!   [`super::watched`]);
//! - it wakes the Rollouts a Service matters to when it appears, changes or goes: those that
//!   name it (a Service created after its Rollout clears the InvalidSpec; a selector someone
//!   else rewrote is switched back), found in [`ServiceReferences`] (kept by the Rollout
//!   watch), and the one its `managed-by-rollouts` annotation names;
//! - it keeps [`ManagedServices`], per Rollout, the names of the Services whose annotation
//!   names it. A Rollout that stops naming such a Service (a change of strategy or of Service
//!   names) gives it back: the observer reads it and the planner releases it (upstream's
//!   Service controller does the same).

use std::sync::{Arc, RwLock};

use futures::{Stream, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};

use sluice_engine::rollout::canary::MANAGED_BY_ROLLOUTS_ANNOTATION;

use super::cached_rollout::CachedRollout;
use super::packed::Cached;
use super::referrers::WatchedReferrers;
use super::watched::{WatchedObjects, touched};

/// (namespace, name).
type Key = crate::NamespacedName;

fn key_of(svc: &Service) -> Key {
    crate::namespaced_name(svc.meta())
}

/// The Rollout a Service's `managed-by-rollouts` annotation names.
pub fn managed_by(svc: &Service) -> Option<&str> {
    svc.meta()
        .annotations
        .as_ref()?
        .get(MANAGED_BY_ROLLOUTS_ANNOTATION)
        .map(String::as_str)
        .filter(|n| !n.is_empty())
}

/// The watched Services, by (namespace, name), kept encoded (see [`super::packed`]): a
/// `Service` struct is about 2 KiB of heap, its JSON a few hundred bytes, and a routed
/// Rollout names two.
pub type ServiceObjects = WatchedObjects<Key, Cached<Service>>;

/// Which Services each Rollout manages, and the Services themselves, kept by the Service
/// watch (see the module docs).
#[derive(Clone, Default)]
pub struct ManagedServices {
    /// (namespace, Service) → the (namespace, Rollout) its annotation names.
    managed: Arc<RwLock<WatchedReferrers<Key, Key>>>,
    objects: ServiceObjects,
}

impl ManagedServices {
    /// The Services as watched (managedFields dropped).
    pub fn objects(&self) -> &ServiceObjects {
        &self.objects
    }

    /// The Services in `namespace` whose annotation names the Rollout `rollout`.
    pub fn managed_by(&self, namespace: &str, rollout: &str) -> Vec<String> {
        let managed = self.managed.read().unwrap_or_else(|p| p.into_inner());
        managed
            .live()
            .referrers(&(namespace.into(), rollout.into()))
            .iter()
            .map(|(_, svc)| svc.to_string())
            .collect()
    }

    /// Apply one watch event. Returns whether it must wake the Rollouts the Service matters
    /// to (see [`WatchedObjects::apply`] and [`relevant_hash`]).
    pub fn apply(&self, event: &watcher::Event<Service>) -> bool {
        let wake = self.objects.apply(
            event,
            key_of,
            |s| s.resource_version().unwrap_or_default(),
            relevant_hash,
            Cached::of,
        );
        self.managed
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .apply(event, key_of, |svc| {
                managed_by(svc).map(|rollout| (key_of(svc).0, rollout.into()))
            });
        wake
    }

    /// The Services of `api` whose change a Rollout reacts to, for a controller trigger,
    /// keeping this index on the way: the selector, the managed-by annotation and existence
    /// (status and other fields do not wake anything).
    pub fn watch(
        &self,
        api: kube::Api<Service>,
    ) -> impl Stream<Item = Result<Service, watcher::Error>> + Send + 'static {
        let index = self.clone();
        watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(|s: &mut Service| s.meta_mut().managed_fields = None)
            .try_filter_map(move |event| {
                let wake = index.apply(&event);
                futures::future::ready(Ok(wake.then(|| touched(event)).flatten()))
            })
    }
}

/// Which Rollouts name each Service (by namespace and name), kept from the Rollout watch so a
/// Service event finds its Rollouts without scanning every cached Rollout (at 10,000 Rollouts
/// and 20,000 Services a scan per event would be 2·10⁸ comparisons per relist).
#[derive(Clone, Default)]
pub struct ServiceReferences {
    /// (namespace, Service) → the (namespace, Rollout)s naming it.
    inner: Arc<RwLock<WatchedReferrers<Key, Key>>>,
}

impl ServiceReferences {
    /// The Rollouts in `namespace` whose strategy names the Service `service`.
    pub fn rollouts_naming(&self, namespace: &str, service: &str) -> Vec<String> {
        let refs = self.inner.read().unwrap_or_else(|p| p.into_inner());
        refs.live()
            .referrers(&(namespace.into(), service.into()))
            .iter()
            .map(|(_, rollout)| rollout.to_string())
            .collect()
    }

    /// Apply one event of the Rollout watch.
    pub fn apply(&self, event: &watcher::Event<CachedRollout>) {
        self.inner.write().unwrap_or_else(|p| p.into_inner()).apply(
            event,
            |ro| crate::namespaced_name(ro.meta()),
            |ro| {
                let ns: std::sync::Arc<str> =
                    ro.meta().namespace.as_deref().unwrap_or_default().into();
                ro.services()
                    .iter()
                    .map(move |svc| (ns.clone(), svc.as_str().into()))
                    .collect::<Vec<_>>()
            },
        );
    }
}

/// What of a Service a Rollout reacts to.
fn relevant_hash(svc: &Service) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    svc.spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .hash(&mut h);
    managed_by(svc).hash(&mut h);
    svc.meta().deletion_timestamp.is_some().hash(&mut h);
    Some(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watched::Lookup;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn svc(ns: &str, name: &str, owner: Option<&str>) -> Service {
        Service {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                annotations: owner
                    .map(|o| [(MANAGED_BY_ROLLOUTS_ANNOTATION.to_string(), o.to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn services_are_indexed_by_the_rollout_their_annotation_names() {
        let m = ManagedServices::default();
        m.apply(&watcher::Event::Apply(svc(
            "shop",
            "web-active",
            Some("web"),
        )));
        m.apply(&watcher::Event::Apply(svc(
            "shop",
            "web-preview",
            Some("web"),
        )));
        m.apply(&watcher::Event::Apply(svc("shop", "other", None)));
        m.apply(&watcher::Event::Apply(svc(
            "blog",
            "web-active",
            Some("web"),
        )));
        assert_eq!(m.managed_by("shop", "web"), ["web-active", "web-preview"]);
        // Released (annotation removed), then deleted.
        m.apply(&watcher::Event::Apply(svc("shop", "web-preview", None)));
        assert_eq!(m.managed_by("shop", "web"), ["web-active"]);
        m.apply(&watcher::Event::Delete(svc(
            "shop",
            "web-active",
            Some("web"),
        )));
        assert!(m.managed_by("shop", "web").is_empty());
        assert_eq!(m.managed_by("blog", "web"), ["web-active"]);
    }

    #[test]
    fn a_watched_service_is_kept_encoded_and_read_back_equal() {
        let m = ManagedServices::default();
        let mut web = svc("shop", "web-canary", Some("web"));
        web.metadata.resource_version = Some("7".into());
        web.spec = Some(k8s_openapi::api::core::v1::ServiceSpec {
            selector: Some([("app".to_string(), "web".to_string())].into()),
            ..Default::default()
        });
        m.apply(&watcher::Event::Init);
        m.apply(&watcher::Event::InitApply(web.clone()));
        m.apply(&watcher::Event::InitDone);
        let key: Key = ("shop".into(), "web-canary".into());
        let Lookup::Cached(Some(kept)) = m.objects().get(&key) else {
            panic!("a listed Service is answered from the cache");
        };
        assert!(matches!(*kept, Cached::Packed(_)), "kept as its encoding");
        assert_eq!(kept.get().expect("decodes"), web);
    }

    #[test]
    fn rollouts_are_found_by_the_services_they_name_across_edits_and_relists() {
        use sluice_engine::rollout::testing::RolloutBuilder;
        let cached = |name: &str, active: &str| {
            let mut ro = RolloutBuilder::new("v1")
                .blue_green(|b| b.active_service = active.into())
                .build();
            ro.metadata.name = Some(name.into());
            CachedRollout::new(ro)
        };
        let refs = ServiceReferences::default();
        refs.apply(&watcher::Event::Apply(cached("a", "shared")));
        refs.apply(&watcher::Event::Apply(cached("b", "shared")));
        assert_eq!(refs.rollouts_naming("default", "shared"), ["a", "b"]);
        // `a` renames its Service; `b` is deleted.
        refs.apply(&watcher::Event::Apply(cached("a", "own")));
        refs.apply(&watcher::Event::Delete(cached("b", "shared")));
        assert!(refs.rollouts_naming("default", "shared").is_empty());
        assert_eq!(refs.rollouts_naming("default", "own"), ["a"]);
        assert!(refs.rollouts_naming("other", "own").is_empty());
        refs.apply(&watcher::Event::Init);
        refs.apply(&watcher::Event::InitApply(cached("c", "third")));
        assert_eq!(refs.rollouts_naming("default", "own"), ["a"]);
        refs.apply(&watcher::Event::InitDone);
        assert!(refs.rollouts_naming("default", "own").is_empty());
        assert_eq!(refs.rollouts_naming("default", "third"), ["c"]);
    }

    #[test]
    fn a_relist_replaces_the_index_only_when_complete() {
        let m = ManagedServices::default();
        m.apply(&watcher::Event::Apply(svc("shop", "gone", Some("web"))));
        m.apply(&watcher::Event::Init);
        m.apply(&watcher::Event::InitApply(svc("shop", "kept", Some("web"))));
        assert_eq!(
            m.managed_by("shop", "web"),
            ["gone"],
            "half a relist is not shown"
        );
        m.apply(&watcher::Event::InitDone);
        assert_eq!(m.managed_by("shop", "web"), ["kept"]);
    }
}
