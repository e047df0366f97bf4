//! The route objects Rollouts route traffic through (Gateway API routes, SMI TrafficSplits).
//!
//! One metadata-only watch per route kind wakes the Rollouts that name a route when it appears
//! (a Rollout refused for naming a missing route goes on), when its spec changes (someone
//! else's edit is checked against what the Rollout holds; Sluice's own write is verified
//! from it), and caches nothing: the reconcile GETs the routes it routes through, so a step is
//! verified on what the object says now. A route kind the API server does not serve (its CRD
//! is not installed) is not watched: discovery is asked again every 10 s, so installing the
//! Gateway API later needs no restart, and a cluster without it costs one discovery request
//! per kind every 10 s instead of a failing watch retried with backoff. (Discovery, not a
//! watch of CRDs: a namespaced install cannot be granted cluster-scoped CRD reads.)

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use futures::{Stream, StreamExt};
use kube::api::{Api, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, predicates, watcher};
use kube::{Client, Resource};

use sluice_engine::rollout::traffic::{RouteKind, RouteRef};

use super::cached_rollout::CachedRollout;

/// (namespace, Rollout).
type Key = (String, String);

/// Which Rollouts name each route, kept from the Rollout watch (as
/// [`super::services::ServiceReferences`] is for Services).
#[derive(Clone, Default)]
pub struct RouteReferences {
    inner: Arc<RwLock<References>>,
}

#[derive(Default)]
struct References {
    rollouts: HashMap<RouteRef, BTreeSet<Key>>,
    named: HashMap<Key, Vec<RouteRef>>,
    relist: Option<Box<References>>,
}

impl References {
    fn forget(&mut self, rollout: &Key) {
        for route in self.named.remove(rollout).into_iter().flatten() {
            if let Some(set) = self.rollouts.get_mut(&route) {
                set.remove(rollout);
                if set.is_empty() {
                    self.rollouts.remove(&route);
                }
            }
        }
    }

    fn put(&mut self, ro: &CachedRollout) {
        let m = ro.meta();
        let key = (
            m.namespace.clone().unwrap_or_default(),
            m.name.clone().unwrap_or_default(),
        );
        self.forget(&key);
        if ro.routes().is_empty() {
            return;
        }
        for route in ro.routes() {
            self.rollouts
                .entry(route.clone())
                .or_default()
                .insert(key.clone());
        }
        self.named.insert(key, ro.routes().to_vec());
    }
}

impl RouteReferences {
    /// The Rollouts (namespace, name) that route through `route`.
    pub fn rollouts_naming(&self, route: &RouteRef) -> Vec<Key> {
        let refs = self.inner.read().unwrap_or_else(|p| p.into_inner());
        refs.rollouts
            .get(route)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Apply one event of the Rollout watch.
    pub fn apply(&self, event: &watcher::Event<CachedRollout>) {
        let mut refs = self.inner.write().unwrap_or_else(|p| p.into_inner());
        match event {
            watcher::Event::Apply(ro) => refs.put(ro),
            watcher::Event::Delete(ro) => {
                let m = ro.meta();
                refs.forget(&(
                    m.namespace.clone().unwrap_or_default(),
                    m.name.clone().unwrap_or_default(),
                ));
            }
            watcher::Event::Init => refs.relist = Some(Box::default()),
            watcher::Event::InitApply(ro) => refs.relist.get_or_insert_with(Box::default).put(ro),
            watcher::Event::InitDone => {
                let fresh = refs.relist.take().unwrap_or_default();
                *refs = *fresh;
            }
        }
    }

    /// The Rollouts to wake for a changed route of `kind`.
    fn wake(&self, kind: RouteKind, obj: &impl Resource) -> Vec<ObjectRef<CachedRollout>> {
        let m = obj.meta();
        let route = RouteRef {
            kind,
            namespace: m.namespace.clone().unwrap_or_default(),
            name: m.name.clone().unwrap_or_default(),
        };
        self.rollouts_naming(&route)
            .into_iter()
            .map(|(ns, name)| ObjectRef::new(&name).within(&ns))
            .collect()
    }

    /// One trigger stream over every route kind: the Rollouts to reconcile when a route's
    /// spec changes or it appears (status writes of a Gateway controller wake nothing).
    pub fn watch(
        &self,
        client: &Client,
        namespace: Option<&str>,
    ) -> impl Stream<Item = ObjectRef<CachedRollout>> + Send + 'static {
        let kinds = [
            RouteKind::HttpRoute,
            RouteKind::GrpcRoute,
            RouteKind::TcpRoute,
            RouteKind::TrafficSplit,
        ];
        let namespace = namespace.map(str::to_string);
        let streams = kinds.map(|kind| {
            let refs = self.clone();
            let client = client.clone();
            let namespace = namespace.clone();
            futures::stream::once(wait_until_served(client.clone(), kind))
                .flat_map(move |version| {
                    let ar = super::rollout::route_resource(kind, &version);
                    let api: Api<PartialObjectMeta<DynamicObject>> = match &namespace {
                        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
                        None => Api::all_with(client.clone(), &ar),
                    };
                    watcher(api, watcher::Config::default())
                })
                .default_backoff()
                .touched_objects()
                .predicate_filter(predicates::generation, Default::default())
                .flat_map(move |r| {
                    let wake = match r {
                        Ok(obj) => refs.wake(kind, &obj),
                        Err(e) => {
                            tracing::debug!(kind = kind.kind(), error = %e, "route watch");
                            Vec::new()
                        }
                    };
                    futures::stream::iter(wake)
                })
                .boxed()
        });
        futures::stream::select_all(streams)
    }
}

/// How often discovery is asked again whether a route kind is served.
const DISCOVERY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// The version `kind` is served in, once the API server serves it: its fixed version when
/// that group/version lists the resource, or (a TrafficSplit) the group's preferred version.
async fn wait_until_served(client: Client, kind: RouteKind) -> String {
    loop {
        match served_version(&client, kind).await {
            Ok(Some(version)) => return version,
            Ok(None) => {}
            Err(e) => tracing::debug!(kind = kind.kind(), error = %e, "route kind not served"),
        }
        tokio::time::sleep(DISCOVERY_INTERVAL).await;
    }
}

async fn served_version(client: &Client, kind: RouteKind) -> Result<Option<String>, kube::Error> {
    let version = match kind.version() {
        Some(v) => v.to_string(),
        None => {
            let groups = client.list_api_groups().await?;
            let preferred = groups
                .groups
                .into_iter()
                .find(|g| g.name == kind.group())
                .and_then(|g| g.preferred_version.map(|v| v.version));
            match preferred {
                Some(v) => v,
                None => return Ok(None),
            }
        }
    };
    let list = client
        .list_api_group_resources(&format!("{}/{version}", kind.group()))
        .await?;
    Ok(list
        .resources
        .iter()
        .any(|r| r.name == kind.plural())
        .then_some(version))
}
