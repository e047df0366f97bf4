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
//! Only those two annotations are written, key by key: the rest of the Ingress is the user's.
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
            header_routes: false,
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

/// `managed-alb-annotations` with `key` among this Rollout's keys (other keys and other
/// Rollouts' entries kept), as upstream serialises it (Rollout names sorted). `Err`: the
/// annotation is not that JSON.
fn managed_annotations(current: Option<&str>, rollout: &str, key: &str) -> Result<String, String> {
    let mut map: std::collections::BTreeMap<String, Vec<String>> = match current {
        None | Some("") => Default::default(),
        Some(json) => serde_json::from_str(json).map_err(|e| {
            format!("metadata.annotations[{MANAGED_ANNOTATIONS}]: is not a JSON map of Rollout names to annotation keys ({e}): fix or remove it")
        })?,
    };
    let keys = map.entry(rollout.to_string()).or_default();
    if !keys.iter().any(|k| k == key) {
        keys.push(key.to_string());
    }
    Ok(serde_json::to_string(&map).unwrap_or_default())
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

/// The JSON patch that sets the Ingress's action annotation (and the managed-actions one)
/// for `hold`, or `None` when it holds them. `Err` names the object and the field.
pub fn plan_ingress(
    obj: Option<&Value>,
    route: &RoutedObject,
    cfg: &Config,
    rollout: &str,
    canary: &str,
    stable: &str,
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
    let key = cfg.action_key();
    let action = forward_action(cfg, canary, stable, hold);
    // Compared as JSON: someone re-serialising the same action is not a change.
    let action_held = get(&key).and_then(|v| serde_json::from_str::<Value>(v).ok())
        == serde_json::from_str::<Value>(&action).ok();
    let managed = managed_annotations(get(MANAGED_ANNOTATIONS), rollout, &key)
        .map_err(|e| format!("{what}: {e}"))?;
    let managed_held = get(MANAGED_ANNOTATIONS).and_then(|v| serde_json::from_str::<Value>(v).ok())
        == serde_json::from_str::<Value>(&managed).ok();
    if action_held && managed_held {
        return Ok(None);
    }
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
    if !action_held {
        patch.push(json!({"op": "add", "path": path(&key), "value": action}));
    }
    if !managed_held {
        patch.push(json!({"op": "add", "path": path(MANAGED_ANNOTATIONS), "value": managed}));
    }
    Ok(Some(Change::PatchRoute {
        route: what.clone(),
        patch,
    }))
}

#[cfg(test)]
mod tests;
