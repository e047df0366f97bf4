//! The route objects Rollouts route traffic through (Gateway API routes, SMI TrafficSplits,
//! NGINX stable and canary Ingresses, Istio VirtualServices and DestinationRules,
//! TraefikServices).
//!
//! One watch per route kind keeps the routes ([`RouteObjects`], managedFields dropped) and
//! wakes the Rollouts that name a route when it appears (a Rollout refused for naming a
//! missing route goes on) or its spec changes (someone else's edit is checked against what the
//! Rollout holds; Sluice's own write is verified from it). A reconcile reads its routes from
//! that cache, except a route whose last write by Sluice the cache does not show yet: that one
//! is read from the API server (see [`super::watched`]), so a step is still only complete on
//! what the route holds as observed after the write. A route kind the API server does not
//! serve (its CRD is not installed) is not watched: discovery is asked again every 10 s, so
//! installing the Gateway API later needs no restart, and a cluster without it costs one
//! discovery request per kind every 10 s instead of a failing watch retried with backoff.
//! (Discovery, not a watch of CRDs: a namespaced install cannot be granted cluster-scoped CRD
//! reads.)

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use futures::{Stream, StreamExt, TryStreamExt};
use kube::api::{Api, DynamicObject};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, predicates, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::Value;

use sluice_engine::rollout::traffic::{RouteKind, RouteRef};

use super::cached_rollout::CachedRollout;
use super::packed::{Cached, Packed};
use super::referrers::WatchedReferrers;
use super::watched::{Lookup, WatchedObjects, touched};

/// Every route kind a Rollout can route through.
const KINDS: [RouteKind; 8] = [
    RouteKind::HttpRoute,
    RouteKind::GrpcRoute,
    RouteKind::TcpRoute,
    RouteKind::TrafficSplit,
    RouteKind::Ingress,
    RouteKind::VirtualService,
    RouteKind::DestinationRule,
    RouteKind::TraefikService,
];

/// The watched routes of every kind, as JSON (what the planner reads), by kind and
/// (namespace, name). A kind is answered from its cache once its watch has listed it. Each
/// is kept encoded (see [`super::packed`]): a route as a `serde_json::Value` tree took
/// several times its JSON size, and a routed Rollout keeps at least one.
#[derive(Clone)]
pub struct RouteObjects {
    kinds: Arc<HashMap<RouteKind, WatchedObjects<Key, Cached<Value>>>>,
}

impl Default for RouteObjects {
    fn default() -> Self {
        RouteObjects {
            kinds: Arc::new(
                KINDS
                    .iter()
                    .map(|k| (*k, WatchedObjects::default()))
                    .collect(),
            ),
        }
    }
}

fn route_key(route: &RouteRef) -> Key {
    (route.namespace.as_str().into(), route.name.as_str().into())
}

impl RouteObjects {
    /// The cache of `kind` (`None` for a kind missing from `KINDS`, which is then never
    /// watched and always read from the API server).
    fn of(&self, kind: RouteKind) -> Option<&WatchedObjects<Key, Cached<Value>>> {
        self.kinds.get(&kind)
    }

    /// The route as cached, or [`Lookup::Verify`] (see [`WatchedObjects::get`]).
    pub fn get(&self, route: &RouteRef) -> Lookup<Cached<Value>> {
        self.of(route.kind)
            .map_or(Lookup::Verify, |c| c.get(&route_key(route)))
    }

    /// Our write left `route` at resourceVersion `rv`.
    pub fn wrote(&self, route: &RouteRef, rv: Option<String>) {
        if let Some(c) = self.of(route.kind) {
            c.wrote(route_key(route), rv);
        }
    }

    /// A GET of `route` found it at `rv` (`None`: not found).
    pub fn verified(&self, route: &RouteRef, rv: Option<&str>) {
        if let Some(c) = self.of(route.kind) {
            c.verified(&route_key(route), rv);
        }
    }

    /// Apply one watch event of a route of `kind`. Returns whether it must wake the Rollouts
    /// that route through it ([`spec_or_annotations`] changed, or the route is new or gone).
    fn apply(&self, kind: RouteKind, event: &watcher::Event<DynamicObject>) -> bool {
        let Some(cache) = self.of(kind) else {
            return true;
        };
        cache.apply(
            event,
            |o| crate::namespaced_name(&o.metadata),
            |o| o.resource_version().unwrap_or_default(),
            spec_or_annotations(kind),
            |o| match Packed::pack_from(o) {
                Ok(p) => Cached::Packed(p),
                Err(_) => Cached::Whole(Arc::new(Value::Null)),
            },
        )
    }
}

/// (namespace, name).
type Key = crate::NamespacedName;

/// Which Rollouts name each route, kept from the Rollout watch (as
/// [`super::services::ServiceReferences`] is for Services).
#[derive(Clone, Default)]
pub struct RouteReferences {
    inner: Arc<RwLock<WatchedReferrers<RouteRef, Key>>>,
}

impl RouteReferences {
    /// The Rollouts (namespace, name) that route through `route`.
    pub fn rollouts_naming(&self, route: &RouteRef) -> Vec<Key> {
        let refs = self.inner.read().unwrap_or_else(|p| p.into_inner());
        refs.live().referrers(route).to_vec()
    }

    /// Apply one event of the Rollout watch.
    pub fn apply(&self, event: &watcher::Event<CachedRollout>) {
        self.inner.write().unwrap_or_else(|p| p.into_inner()).apply(
            event,
            |ro| crate::namespaced_name(ro.meta()),
            |ro| ro.routes().to_vec(),
        );
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
    /// spec changes or it appears (status writes of a Gateway controller wake nothing). The
    /// routes are kept in `objects` on the way.
    pub fn watch(
        &self,
        client: &Client,
        namespace: Option<&str>,
        objects: &RouteObjects,
    ) -> impl Stream<Item = ObjectRef<CachedRollout>> + Send + 'static {
        let namespace = namespace.map(str::to_string);
        let streams = KINDS.map(|kind| {
            let refs = self.clone();
            let objects = objects.clone();
            let client = client.clone();
            let namespace = namespace.clone();
            futures::stream::once(wait_until_served(client.clone(), kind))
                .flat_map(move |version| {
                    let ar = super::rollout::route_resource(kind, &version);
                    let api: Api<DynamicObject> = match &namespace {
                        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
                        None => Api::all_with(client.clone(), &ar),
                    };
                    let types = kube::api::TypeMeta {
                        api_version: ar.api_version.clone(),
                        kind: ar.kind.clone(),
                    };
                    watcher(api, watcher::Config::default()).modify(move |o: &mut DynamicObject| {
                        o.metadata.managed_fields = None;
                        // List items may come without their kind; the planner reads the object
                        // as a GET returns it.
                        o.types.get_or_insert_with(|| types.clone());
                    })
                })
                .default_backoff()
                .try_filter_map({
                    let objects = objects.clone();
                    move |event| {
                        let wake = objects.apply(kind, &event);
                        futures::future::ready(Ok(wake.then(|| touched(event)).flatten()))
                    }
                })
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

/// What a change of a route object of `kind` that matters shows in: its generation (the spec),
/// and for an Ingress also its annotations (an NGINX canary Ingress holds its weight in one,
/// and a stable Ingress's class annotation is copied to the canary one).
fn spec_or_annotations(kind: RouteKind) -> impl Fn(&DynamicObject) -> Option<u64> + Send + 'static {
    move |obj| {
        let generation = predicates::generation(obj);
        if kind != RouteKind::Ingress {
            return generation;
        }
        let annotations = predicates::annotations(obj);
        let mut h = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&(generation, annotations), &mut h);
        Some(std::hash::Hasher::finish(&h))
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn http_route(rv: &str, canary_weight: u32) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "web", "namespace": "shop", "resourceVersion": rv},
            "spec": {
                "parentRefs": [{"name": "edge"}],
                "rules": [{"backendRefs": [
                    {"name": "web-stable", "port": 80, "weight": 100 - canary_weight},
                    {"name": "web-canary", "port": 80, "weight": canary_weight}
                ]}]
            }
        }))
        .expect("a valid route")
    }

    fn route_ref() -> RouteRef {
        RouteRef {
            kind: RouteKind::HttpRoute,
            namespace: "shop".into(),
            name: "web".into(),
        }
    }

    fn cached(objects: &RouteObjects) -> Option<Value> {
        match objects.get(&route_ref()) {
            Lookup::Cached(route) => route.map(|r| {
                assert!(matches!(*r, Cached::Packed(_)), "kept as its encoding");
                r.get().expect("decodes")
            }),
            Lookup::Verify => panic!("expected a cached answer, got Verify"),
        }
    }

    #[test]
    fn a_watched_route_is_kept_encoded_and_read_back_as_the_json_a_get_returns() {
        let objects = RouteObjects::default();
        let kind = RouteKind::HttpRoute;
        objects.apply(kind, &watcher::Event::Init);
        objects.apply(kind, &watcher::Event::InitApply(http_route("1", 0)));
        objects.apply(kind, &watcher::Event::InitDone);
        assert_eq!(
            cached(&objects),
            Some(serde_json::to_value(http_route("1", 0)).expect("encodes"))
        );
        // Our write to 10 % is read from the API server until the watch shows it.
        objects.wrote(&route_ref(), Some("2".into()));
        assert!(matches!(objects.get(&route_ref()), Lookup::Verify));
        objects.apply(kind, &watcher::Event::Apply(http_route("2", 10)));
        let route = cached(&objects).expect("still there");
        assert_eq!(route["spec"]["rules"][0]["backendRefs"][1]["weight"], 10);
        objects.apply(kind, &watcher::Event::Delete(http_route("2", 10)));
        assert_eq!(cached(&objects), None);
    }
}
