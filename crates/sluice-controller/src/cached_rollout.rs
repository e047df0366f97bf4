//! The Rollout controller's cache entry: the Rollout as JSON ([`Undecoded`], itself
//! [`super::packed`]), beside the few fields the controller reads across every cached Rollout.
//!
//! kube-runtime's `Controller` keys its store and its queue by this type, and the watch
//! decodes into it; the reconcile decodes the whole Rollout it works on. So a Rollout that
//! does not decode (a field the types read stricter than the CRD schema, such as an int32
//! beyond its range) is still listed and watched: only its own reconcile fails, with a
//! Warning Event naming the field, while every other Rollout goes on. At 10,000 Rollouts the
//! whole-struct cache was ~14 KiB a Rollout (heaptrack, 139 MB); packed it is the JSON size,
//! ~2 KiB.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::error::DecodeError;
use crate::trimmed::trim_from;
use crate::undecoded::Undecoded;
use sluice_api::common::ObjectRef;
use sluice_api::rollout::{Rollout, RolloutSpec, RolloutStrategy};
use sluice_engine::rollout::observed::Observed;
use sluice_engine::rollout::traffic::{self, RouteRef};

/// kubectl's copy of the whole applied object: no decision reads it, and it is often the
/// largest part of a Rollout.
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A cached Rollout.
#[derive(Clone, Debug)]
pub struct CachedRollout {
    /// The Rollout as the API server sent it, minus managedFields and the last-applied
    /// annotation; its metadata (what kube-runtime keys on) decoded.
    body: Undecoded<Rollout>,
    /// Whether the Rollout names an AnalysisTemplate or ClusterAnalysisTemplate.
    uses_templates: bool,
    /// `spec.workloadRef` as (kind, name).
    workload_ref: Option<(String, String)>,
    /// The Services the strategy names (canary/stable or active/preview).
    services: Vec<String>,
    /// The route objects its traffic routing names.
    routes: Vec<RouteRef>,
}

impl CachedRollout {
    /// Cache `ro`.
    pub fn new(ro: Rollout) -> Self {
        let obj = serde_json::to_value(&ro).expect("a decoded Rollout encodes");
        Self::from_json(obj).expect("a decoded Rollout has valid metadata")
    }

    /// Cache a Rollout that is still JSON. Only invalid metadata is an error (the API server
    /// never serves that); a body that does not decode is kept and fails its reconcile.
    pub fn from_json(obj: Value) -> Result<Self, serde_json::Error> {
        Self::from_text(&obj.to_string())
    }

    /// [`CachedRollout::from_json`] from the Rollout's text as the API server sent it. The
    /// references are read from `spec.strategy` and `spec.workloadRef` alone (the pod
    /// template, most of a Rollout, is skipped over, not decoded).
    pub fn from_text(text: &str) -> Result<Self, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(text);
        let cached = Self::read(&mut de)?;
        de.end()?;
        Ok(cached)
    }

    /// [`CachedRollout::from_text`] reading the Rollout from `d` (a list item or a watch
    /// event's object): its text is scanned once, by trimming.
    fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // The references are decoded from `spec` as trimming passes it, not from a second
        // scan of the whole text.
        let mut referencing = None;
        let trimmed = trim_from(d, &[LAST_APPLIED_ANNOTATION], |key, value| {
            if key == "spec" {
                referencing = Some(serde_json::from_str::<ReferencingSpec>(value.get()));
            }
        })?;
        let body = Undecoded::from_trimmed(trimmed);
        let (uses_templates, workload_ref, services, routes) =
            match referencing.unwrap_or_else(|| Err(serde::de::Error::missing_field("spec"))) {
                Ok(spec) => {
                    // The rules read the strategy, the workload reference and the Rollout's
                    // name and namespace.
                    let ro = Rollout {
                        metadata: ObjectMeta {
                            name: body.meta().name.clone(),
                            namespace: body.meta().namespace.clone(),
                            ..ObjectMeta::default()
                        },
                        spec: RolloutSpec {
                            strategy: spec.strategy,
                            workload_ref: spec.workload_ref,
                            ..RolloutSpec::default()
                        },
                        status: None,
                    };
                    let (namespaced, cluster) = Observed::referenced_templates(&ro);
                    let workload_ref = ro.spec.workload_ref.as_ref().map(|r| {
                        (
                            r.kind.clone().unwrap_or_default(),
                            r.name.clone().unwrap_or_default(),
                        )
                    });
                    let services = Observed::referenced_services(&ro).into_iter().collect();
                    (
                        !namespaced.is_empty() || !cluster.is_empty(),
                        workload_ref,
                        services,
                        traffic::route_refs(&ro),
                    )
                }
                // The reconcile reports it; nothing routes to a Rollout whose strategy does
                // not decode. (One whose template alone does not decode is still woken by the
                // Services and routes it names.)
                Err(_) => (false, None, Vec::new(), Vec::new()),
            };
        Ok(Self {
            body,
            uses_templates,
            workload_ref,
            services,
            routes,
        })
    }

    /// A fresh copy of the whole Rollout; a failure names the field.
    pub fn rollout(&self) -> Result<Rollout, DecodeError> {
        self.body.decode()
    }

    /// The Rollout still encoded, for reporting a decode failure on it.
    pub fn undecoded(&self) -> &Undecoded<Rollout> {
        &self.body
    }

    /// Whether the Rollout names any analysis template (a template change wakes it).
    pub fn uses_templates(&self) -> bool {
        self.uses_templates
    }

    /// Whether the strategy names the Service `name` (in the Rollout's namespace).
    pub fn names_service(&self, name: &str) -> bool {
        self.services.iter().any(|s| s == name)
    }

    /// The Services the strategy names.
    pub fn services(&self) -> &[String] {
        &self.services
    }

    /// The route objects its traffic routing names.
    pub fn routes(&self) -> &[RouteRef] {
        &self.routes
    }

    /// Whether `spec.workloadRef` names the object of `kind` called `name`.
    pub fn references(&self, kind: &str, name: &str) -> bool {
        self.workload_ref
            .as_ref()
            .is_some_and(|(k, n)| k == kind && n == name)
    }
}

impl Resource for CachedRollout {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        Rollout::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        Rollout::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        Rollout::version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        Rollout::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        self.body.meta()
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        self.body.meta_mut()
    }
}

/// What the watch decodes: any Rollout with valid metadata.
impl<'de> Deserialize<'de> for CachedRollout {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::read(d)
    }
}

/// The part of a Rollout's spec its references are read from.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReferencingSpec {
    strategy: Option<RolloutStrategy>,
    workload_ref: Option<ObjectRef>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{CacheGauges, Metrics};
    use sluice_engine::rollout::testing::{RolloutBuilder, pause, weight};

    fn rollout(name: &str, rv: &str) -> Rollout {
        let mut ro = RolloutBuilder::new("v1")
            .spec(|s| s.replicas = Some(3))
            .steps(vec![weight(20), pause()])
            .build();
        ro.metadata.name = Some(name.into());
        ro.metadata.namespace = Some("shop".into());
        ro.metadata.resource_version = Some(rv.into());
        ro.metadata.uid = Some(format!("uid-{name}"));
        ro
    }

    #[test]
    fn the_cached_rollout_decodes_to_the_rollout_it_was_made_from() {
        let ro = rollout("web", "7");
        let cached = CachedRollout::new(ro.clone());
        assert_eq!(cached.rollout().expect("decodes"), ro);
        assert_eq!(cached.meta().name.as_deref(), Some("web"));
        assert_eq!(cached.meta().resource_version.as_deref(), Some("7"));
        assert_eq!(cached.meta().uid.as_deref(), Some("uid-web"));
        assert!(!cached.uses_templates());
        assert!(!cached.references("Deployment", "web"));
        assert!(!cached.names_service("web"));
    }

    #[test]
    fn a_watch_line_and_a_list_decode_to_the_rollout_minus_what_the_cache_drops() {
        let mut ro = rollout("web", "7");
        ro.metadata.annotations = Some(
            [
                (LAST_APPLIED_ANNOTATION.to_string(), "{}".to_string()),
                ("team".to_string(), "checkout".to_string()),
            ]
            .into(),
        );
        ro.metadata.managed_fields = Some(vec![Default::default()]);
        let object = serde_json::to_string(&ro).unwrap();
        let mut want = ro.clone();
        want.metadata.managed_fields = None;
        want.metadata.annotations = Some([("team".to_string(), "checkout".to_string())].into());
        // As an API server writes a watch event: `type` first.
        let line = format!(r#"{{"type":"MODIFIED","object":{object}}}"#);
        let event: kube::core::WatchEvent<CachedRollout> =
            serde_json::from_str(&line).expect("decodes");
        let kube::core::WatchEvent::Modified(cached) = event else {
            panic!("a MODIFIED event");
        };
        assert_eq!(cached.rollout().expect("decodes"), want);
        assert_eq!(cached.meta().resource_version.as_deref(), Some("7"));
        let list =
            format!(r#"{{"apiVersion":"v1","kind":"List","metadata":{{}},"items":[{object}]}}"#);
        let listed: kube::core::ObjectList<CachedRollout> =
            serde_json::from_str(&list).expect("lists");
        assert_eq!(listed.items[0].rollout().expect("decodes"), want);
    }

    #[test]
    fn the_services_a_strategy_names_are_answered_without_decoding() {
        let ro = RolloutBuilder::new("v1")
            .blue_green(|b| b.preview_service = Some("web-preview".into()))
            .build();
        let cached = CachedRollout::new(ro);
        assert!(cached.names_service(sluice_engine::rollout::testing::ACTIVE));
        assert!(cached.names_service("web-preview"));
        assert!(!cached.names_service("other"));
    }

    #[test]
    fn a_workload_reference_is_answered_without_decoding() {
        let mut ro = rollout("web", "7");
        ro.spec.workload_ref = Some(sluice_api::common::ObjectRef {
            api_version: Some("apps/v1".into()),
            kind: Some("Deployment".into()),
            name: Some("web-deploy".into()),
            scale_down: None,
        });
        let cached = CachedRollout::new(ro);
        assert!(cached.references("Deployment", "web-deploy"));
        assert!(!cached.references("PodTemplate", "web-deploy"));
        assert!(!cached.references("Deployment", "other"));
    }

    #[test]
    fn references_are_read_from_a_strategy_that_decodes_even_when_the_rest_does_not() {
        let ro = RolloutBuilder::new("v1")
            .blue_green(|b| b.preview_service = Some("web-preview".into()))
            .build();
        let mut obj = serde_json::to_value(ro).unwrap();
        obj["spec"]["replicas"] = serde_json::json!(3_000_000_000_i64);
        let cached = CachedRollout::from_json(obj.clone()).expect("cached");
        assert!(cached.names_service("web-preview"));
        assert!(cached.rollout().is_err());

        // A strategy that does not decode, or no spec at all: the Rollout names nothing.
        obj["spec"]["strategy"]["blueGreen"]["previewService"] = serde_json::json!(7);
        let cached = CachedRollout::from_json(obj.clone()).expect("cached");
        assert!(!cached.names_service("web-preview"));
        obj.as_object_mut().unwrap().remove("spec");
        let cached = CachedRollout::from_json(obj).expect("cached");
        assert!(!cached.names_service(sluice_engine::rollout::testing::ACTIVE));
    }

    #[test]
    fn a_rollout_that_does_not_decode_is_cached_and_fails_only_when_decoded() {
        let mut obj = serde_json::to_value(rollout("web", "7")).unwrap();
        obj["spec"]["replicas"] = serde_json::json!(3_000_000_000_i64);
        obj["metadata"]["annotations"] = serde_json::json!({LAST_APPLIED_ANNOTATION: "{}"});
        let cached: CachedRollout = serde_json::from_value(obj).expect("cached anyway");
        assert_eq!(cached.meta().name.as_deref(), Some("web"));
        assert_eq!(cached.meta().resource_version.as_deref(), Some("7"));
        let err = cached.rollout().expect_err("int32 out of range");
        assert_eq!(err.what, "rollout shop/web");
        assert_eq!(err.path.as_deref(), Some("spec.replicas"));
    }

    #[test]
    fn the_last_applied_copy_and_managed_fields_are_not_cached() {
        let mut obj = serde_json::to_value(rollout("web", "7")).unwrap();
        obj["metadata"]["annotations"] =
            serde_json::json!({LAST_APPLIED_ANNOTATION: "{}", "team": "shop"});
        obj["metadata"]["managedFields"] = serde_json::json!([{"manager": "kubectl"}]);
        let cached: CachedRollout = serde_json::from_value(obj).unwrap();
        let ro = cached.rollout().unwrap();
        assert_eq!(
            ro.metadata.annotations,
            Some([("team".to_string(), "shop".to_string())].into())
        );
        assert!(ro.metadata.managed_fields.is_none());
    }

    fn desired(m: &Metrics, name: &str) -> Option<String> {
        let text = m.encode();
        text.lines()
            .find(|l| {
                l.starts_with("rollout_info_replicas_desired{")
                    && l.contains(&format!("name=\"{name}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_string)
    }

    #[test]
    fn info_gauges_are_refreshed_when_the_resource_version_changes() {
        let m = Metrics::new();
        let gauges = CacheGauges::rollouts();
        gauges.sync(&m, [&CachedRollout::new(rollout("a", "1"))]);
        assert_eq!(desired(&m, "a").as_deref(), Some("3"));
        let mut scaled = rollout("a", "2");
        scaled.spec.replicas = Some(5);
        gauges.sync(&m, [&CachedRollout::new(scaled)]);
        assert_eq!(desired(&m, "a").as_deref(), Some("5"));
    }

    #[test]
    fn info_gauges_follow_the_cache_and_drop_deleted_rollouts() {
        let m = Metrics::new();
        let gauges = CacheGauges::rollouts();
        let a = CachedRollout::new(rollout("a", "1"));
        let b = CachedRollout::new(rollout("b", "1"));
        gauges.sync(&m, [&a, &b]);
        let text = m.encode();
        assert!(text.contains("name=\"a\""), "{text}");
        assert!(text.contains("name=\"b\""), "{text}");
        gauges.sync(&m, [&b]);
        let text = m.encode();
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("rollout_info{") && l.contains("name=\"a\"")),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with("rollout_info{") && l.contains("name=\"b\"")),
            "{text}"
        );
    }
}
