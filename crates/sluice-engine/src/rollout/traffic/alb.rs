//! The AWS Load Balancer Controller router (`trafficRouting.alb`: `ingress` or `ingresses`,
//! `servicePort`, `rootService`, `annotationPrefix`, `stickinessConfig`).
//!
//! The AWS Load Balancer Controller reads a weighted forward action from the Ingress
//! annotation `<prefix>/actions.<service>`, where `<service>` is `rootService` (default: the
//! stable Service) and a rule's backend names that Service with port `use-annotation`. Sluice
//! writes that annotation as upstream does — the same JSON, keys in the same order: the
//! canary target group first, then the stable one, each with `ServicePort` as a string,
//! and `TargetGroupStickinessConfig` when stickiness is enabled — and records which
//! annotations it manages in `rollouts.argoproj.io/managed-alb-annotations` (upstream's JSON
//! map of Rollout name to annotation keys, beside other Rollouts' entries).
//!
//! A `setHeaderRoute` step adds, as upstream does, the annotations `<prefix>/actions.<route>`
//! (everything to the canary) and `<prefix>/conditions.<route>` (one `http-header` condition
//! per match, exact values) and a path `/*` to the action `<route>` in front of every rule's
//! paths; the end of the update and an abort remove them. Only these annotations and those
//! paths are written: the rest of the Ingress is the user's.
//! AWS's target groups cannot be read from here, so Sluice verifies the weight on the
//! annotation it reads back, never against AWS (upstream's optional ALB weight verification
//! is not performed).

use serde::Serialize;
use serde_json::{Value, json};

use super::{RouteKind, RouteRef, RouteRole, RoutedObject, TrafficHold};
use crate::rollout::plan::Change;
use crate::rollout::validate::InvalidSpec;
use sluice_api::rollout::AlbTrafficRouting;

/// Default `alb.annotationPrefix`.
pub const DEFAULT_ANNOTATION_PREFIX: &str = "alb.ingress.kubernetes.io";

/// Which ALB annotations each Rollout manages on an Ingress (upstream's annotation, a JSON
/// map of Rollout name to annotation keys; it replaced the deprecated `managed-alb-actions`).
pub const MANAGED_ANNOTATIONS: &str = "rollouts.argoproj.io/managed-alb-annotations";

/// AWS's bounds of a target group's stickiness duration (1 s to 7 days).
const STICKINESS_SECONDS: std::ops::RangeInclusive<i64> = 1..=604_800;

const F: &str = "spec.strategy.canary.trafficRouting.alb";

/// The ALB settings the action annotation is written from.
#[derive(Debug, Clone, PartialEq)]
pub struct Config<'a> {
    pub prefix: &'a str,
    pub port: i32,
    /// The Service whose Ingress backend the action replaces.
    pub action_service: &'a str,
    /// Stickiness duration, when enabled.
    pub stickiness: Option<i64>,
}

impl Config<'_> {
    /// `<prefix>/actions.<service>`.
    pub fn action_key(&self) -> String {
        format!("{}/actions.{}", self.prefix, self.action_service)
    }
}

/// The Ingresses an ALB config names, and its settings.
pub fn routes<'a>(
    alb: &'a AlbTrafficRouting,
    stable_service: &'a str,
    namespace: &str,
) -> Result<(Config<'a>, Vec<RoutedObject>), InvalidSpec> {
    let invalid = |field: String, message: &str| InvalidSpec {
        field,
        message: message.to_string(),
    };
    let single = alb.ingress.as_deref().filter(|s| !s.is_empty());
    let list = alb.ingresses.as_ref().filter(|l| !l.is_empty());
    let named: Vec<(String, &str)> = match (single, list) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                format!("{F}.ingresses"),
                "set either ingress or ingresses, not both",
            ));
        }
        (Some(s), None) => vec![(format!("{F}.ingress"), s)],
        (None, Some(l)) => l
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("{F}.ingresses[{i}]"), s.as_str()))
            .collect(),
        (None, None) => {
            return Err(invalid(
                format!("{F}.ingress"),
                "is required: name the Ingress the AWS Load Balancer Controller serves",
            ));
        }
    };
    if alb.service_port <= 0 {
        return Err(invalid(
            format!("{F}.servicePort"),
            "is required: the port of the canary and the stable Service the target groups forward to",
        ));
    }
    let stickiness = match &alb.stickiness_config {
        Some(s) if s.enabled => {
            if !STICKINESS_SECONDS.contains(&s.duration_seconds) {
                return Err(invalid(
                    format!("{F}.stickinessConfig.durationSeconds"),
                    "must be between 1 and 604800 seconds (7 days)",
                ));
            }
            Some(s.duration_seconds)
        }
        _ => None,
    };
    let config = Config {
        prefix: alb
            .annotation_prefix
            .as_deref()
            .filter(|p| !p.is_empty())
            .unwrap_or(DEFAULT_ANNOTATION_PREFIX),
        port: alb.service_port,
        action_service: alb
            .root_service
            .as_deref()
            .filter(|r| !r.is_empty())
            .unwrap_or(stable_service),
        stickiness,
    };
    let mut out: Vec<RoutedObject> = Vec::new();
    for (field, name) in named {
        let route = RouteRef {
            kind: RouteKind::Ingress,
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        if out.iter().any(|o| o.route == route) {
            return Err(invalid(field, "is listed twice"));
        }
        out.push(RoutedObject {
            route,
            header_routes: true,
            field,
            role: RouteRole::AlbIngress,
        });
    }
    Ok((config, out))
}

/// Upstream's forward action, field for field (the declaration order is the JSON's).
#[derive(Serialize)]
struct Action<'a> {
    #[serde(rename = "Type")]
    type_: &'a str,
    #[serde(rename = "ForwardConfig")]
    forward_config: ForwardConfig<'a>,
}

#[derive(Serialize)]
struct ForwardConfig<'a> {
    #[serde(rename = "TargetGroups")]
    target_groups: Vec<TargetGroup<'a>>,
    #[serde(
        rename = "TargetGroupStickinessConfig",
        skip_serializing_if = "Option::is_none"
    )]
    stickiness: Option<Stickiness>,
}

#[derive(Serialize)]
struct TargetGroup<'a> {
    #[serde(rename = "ServiceName")]
    service_name: &'a str,
    #[serde(rename = "ServicePort")]
    service_port: String,
    #[serde(rename = "Weight")]
    weight: i64,
}

#[derive(Serialize)]
struct Stickiness {
    #[serde(rename = "Enabled")]
    enabled: bool,
    #[serde(rename = "DurationSeconds")]
    duration_seconds: i64,
}

/// The `actions.<service>` annotation's value for `hold`.
pub fn forward_action(cfg: &Config, canary: &str, stable: &str, hold: &TrafficHold) -> String {
    let group = |service_name, weight: i32| TargetGroup {
        service_name,
        service_port: cfg.port.to_string(),
        weight: i64::from(weight),
    };
    let action = Action {
        type_: "forward",
        forward_config: ForwardConfig {
            target_groups: vec![
                group(canary, hold.canary_weight),
                group(stable, hold.stable_weight()),
            ],
            stickiness: cfg.stickiness.map(|duration_seconds| Stickiness {
                enabled: true,
                duration_seconds,
            }),
        },
    };
    serde_json::to_string(&action).unwrap_or_default()
}

/// The canary weight an action annotation holds, read back (`None`: not a forward action
/// with the canary's target group).
pub fn observed_canary_weight(value: &str, canary: &str) -> Option<i64> {
    let v: Value = serde_json::from_str(value).ok()?;
    v.pointer("/ForwardConfig/TargetGroups")?
        .as_array()?
        .iter()
        .find(|g| g["ServiceName"] == canary)?
        .get("Weight")?
        .as_i64()
}

/// Whether a rule of the Ingress sends a path to Service `service`.
fn has_backend(obj: &Value, service: &str) -> bool {
    obj.pointer("/spec/rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.pointer("/http/paths").and_then(Value::as_array))
        .flatten()
        .any(|p| p.pointer("/backend/service/name").and_then(Value::as_str) == Some(service))
}

/// `<prefix>/<kind>.<name>` (`kind`: `actions` or `conditions`).
fn key_of(cfg: &Config, kind: &str, name: &str) -> String {
    format!("{}/{kind}.{name}", cfg.prefix)
}

/// A header route's forward action: everything to the canary (upstream's weight 100).
fn canary_action(cfg: &Config, canary: &str) -> String {
    let action = Action {
        type_: "forward",
        forward_config: ForwardConfig {
            target_groups: vec![TargetGroup {
                service_name: canary,
                service_port: cfg.port.to_string(),
                weight: 100,
            }],
            stickiness: cfg.stickiness.map(|duration_seconds| Stickiness {
                enabled: true,
                duration_seconds,
            }),
        },
    };
    serde_json::to_string(&action).unwrap_or_default()
}

/// A header route's conditions: one `http-header` condition per match (exact values;
/// validation refuses the others), upstream's field names.
fn header_conditions(h: &super::HeaderRoute) -> String {
    let conditions: Vec<Value> = h
        .matches
        .iter()
        .map(|m| {
            json!({
                "field": "http-header",
                "httpHeaderConfig": {
                    "httpHeaderName": m.header_name,
                    "values": [m.header_value.exact.clone().unwrap_or_default()],
                },
            })
        })
        .collect();
    serde_json::to_string(&conditions).unwrap_or_default()
}

/// The path a header route adds in front of every rule's paths (upstream's shape): its
/// backend is the action of the route's name.
fn header_path(name: &str) -> Value {
    json!({
        "path": "/*",
        "pathType": "ImplementationSpecific",
        "backend": {"service": {"name": name, "port": {"name": "use-annotation"}}},
    })
}

/// Who and what the Ingress is written for.
pub struct Target<'a> {
    pub rollout: &'a str,
    pub canary: &'a str,
    pub stable: &'a str,
    /// `managedRoutes` names, in order: paths to a Service of such a name are Sluice's.
    pub managed: &'a [&'a str],
}

/// The JSON patch that makes the Ingress hold `hold`: the weighted action annotation, the
/// actions, conditions and paths of the header routes, and the managed-annotations record;
/// `None` when it holds them. `Err` names the object and the field.
pub fn plan_ingress(
    obj: Option<&Value>,
    route: &RoutedObject,
    cfg: &Config,
    t: &Target,
    hold: &TrafficHold,
) -> Result<Option<Change>, String> {
    let what = &route.route;
    let Some(obj) = obj else {
        return Err(format!("{what} not found"));
    };
    if !has_backend(obj, cfg.action_service) {
        return Err(format!(
            "{what}: spec.rules: no path has the Service {:?} as its backend (the ALB action {:?} replaces that backend: point it at the Service with port name use-annotation)",
            cfg.action_service,
            cfg.action_key()
        ));
    }
    let annotations = obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object);
    let get = |k: &str| annotations.and_then(|a| a.get(k)).and_then(Value::as_str);
    // What the annotations must hold, and which of ours must go.
    let mut desired: Vec<(String, String)> = vec![(
        cfg.action_key(),
        forward_action(cfg, t.canary, t.stable, hold),
    )];
    let mut gone = Vec::new();
    for name in t.managed {
        let keys = [
            key_of(cfg, "actions", name),
            key_of(cfg, "conditions", name),
        ];
        match hold.header_routes.iter().find(|h| h.name == *name) {
            Some(h) => {
                let [action, condition] = keys;
                desired.push((action, canary_action(cfg, t.canary)));
                desired.push((condition, header_conditions(h)));
            }
            None => gone.extend(keys),
        }
    }
    // Compared as JSON: someone re-serialising the same value is not a change.
    let same = |have: Option<&str>, want: &str| {
        have.and_then(|v| serde_json::from_str::<Value>(v).ok())
            == serde_json::from_str::<Value>(want).ok()
    };
    let mut record: std::collections::BTreeMap<String, Vec<String>> =
        match get(MANAGED_ANNOTATIONS) {
            None | Some("") => Default::default(),
            Some(json) => serde_json::from_str(json).map_err(|e| {
                format!("{what}: metadata.annotations[{MANAGED_ANNOTATIONS}]: is not a JSON map of Rollout names to annotation keys ({e}): fix or remove it")
            })?,
        };
    let mine = record.entry(t.rollout.to_string()).or_default();
    mine.retain(|k| !gone.contains(k));
    for (k, _) in &desired {
        if !mine.contains(k) {
            mine.push(k.clone());
        }
    }
    let record = serde_json::to_string(&record).unwrap_or_default();

    let mut patch = Vec::new();
    if annotations.is_none() {
        patch.push(json!({"op": "add", "path": "/metadata/annotations", "value": {}}));
    }
    let path = |k: &str| {
        format!(
            "/metadata/annotations/{}",
            k.replace('~', "~0").replace('/', "~1")
        )
    };
    for (k, v) in &desired {
        if !same(get(k), v) {
            patch.push(json!({"op": "add", "path": path(k), "value": v}));
        }
    }
    for k in &gone {
        if let Some(v) = get(k) {
            patch.push(json!({"op": "test", "path": path(k), "value": v}));
            patch.push(json!({"op": "remove", "path": path(k)}));
        }
    }
    if !same(get(MANAGED_ANNOTATIONS), &record) {
        patch.push(json!({"op": "add", "path": path(MANAGED_ANNOTATIONS), "value": record}));
    }

    // The header routes' paths, in front of every rule's paths in managedRoutes order.
    if !t.managed.is_empty() {
        let rules_now = obj.pointer("/spec/rules").cloned().unwrap_or(json!([]));
        let mut rules = rules_now.clone();
        for rule in rules.as_array_mut().into_iter().flatten() {
            let Some(paths) = rule
                .pointer_mut("/http/paths")
                .and_then(Value::as_array_mut)
            else {
                continue;
            };
            paths.retain(|p| {
                p.pointer("/backend/service/name")
                    .and_then(Value::as_str)
                    .is_none_or(|n| !t.managed.contains(&n))
            });
            let ours: Vec<Value> = t
                .managed
                .iter()
                .filter(|n| hold.header_routes.iter().any(|h| h.name == **n))
                .map(|n| header_path(n))
                .collect();
            paths.splice(0..0, ours);
        }
        if rules != rules_now {
            patch.push(json!({"op": "test", "path": "/spec/rules", "value": rules_now}));
            patch.push(json!({"op": "replace", "path": "/spec/rules", "value": rules}));
        }
    }
    if patch.is_empty() {
        return Ok(None);
    }
    Ok(Some(Change::PatchRoute {
        route: what.clone(),
        patch,
    }))
}

#[cfg(test)]
mod tests;
