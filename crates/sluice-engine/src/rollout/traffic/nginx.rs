//! The NGINX Ingress router (`trafficRouting.nginx`: `stableIngress` or `stableIngresses`,
//! `annotationPrefix`, `additionalIngressAnnotations`, `canaryIngressAnnotations`).
//!
//! ingress-nginx splits traffic with a second Ingress marked as the canary of the first. For
//! each stable Ingress the Rollout creates and owns (controller ownerReference) a canary
//! Ingress `<rollout>-<stable ingress>-canary`:
//! - its spec is the stable Ingress's rules that send a path to the stable Service, with
//!   those backends pointed at the canary Service (rules for other Services are left out),
//!   plus the stable's `tls` and `ingressClassName`; it follows later edits of the stable one;
//! - its annotations are the stable's `kubernetes.io/ingress.class`, `canaryIngressAnnotations`
//!   as written, `additionalIngressAnnotations` under the prefix, and the ones the plan
//!   holds: `canary: "true"`, `canary-weight`, `canary-weight-total` (with
//!   `maxTrafficWeight`) and, for a `setHeaderRoute` step, `canary-by-header` with
//!   `canary-by-header-value` (exact) or `canary-by-header-pattern` (prefix, regex).
//!
//! The stable Ingress is only read, never written. On the canary Ingress, every annotation
//! under the prefix is the Rollout's (one it no longer wants is removed); other annotations
//! and labels someone adds are left alone.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::{RouteKind, RouteRef, RouteRole, RoutedObject, TrafficHold};
use crate::rollout::plan::Change;
use crate::rollout::validate::InvalidSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use sluice_api::rollout::NginxTrafficRouting;

/// Default `nginx.annotationPrefix`.
pub const DEFAULT_ANNOTATION_PREFIX: &str = "nginx.ingress.kubernetes.io";

/// The Ingress class annotation a canary Ingress must share with its stable Ingress.
const INGRESS_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// Object names are at most 253 characters.
const MAX_NAME: usize = 253;

const F: &str = "spec.strategy.canary.trafficRouting.nginx";

/// The canary Ingress of a stable Ingress: `<rollout>-<stable>-canary`, the part before
/// `-canary` cut so that the name fits in 253 characters (as upstream names it).
pub fn canary_ingress_name(rollout: &str, stable: &str) -> String {
    let suffix = "-canary";
    let mut prefix = format!("{rollout}-{stable}");
    if prefix.len() + suffix.len() > MAX_NAME {
        prefix.truncate(MAX_NAME - suffix.len());
    }
    format!("{prefix}{suffix}")
}

/// The NGINX settings the canary Ingresses are written from.
#[derive(Debug, Clone, PartialEq)]
pub struct Config<'a> {
    pub prefix: &'a str,
    pub additional: Option<&'a BTreeMap<String, String>>,
    pub canary_annotations: Option<&'a BTreeMap<String, String>>,
    /// `maxTrafficWeight` when the spec sets it (then `canary-weight-total` is written).
    pub weight_total: Option<i32>,
}

impl<'a> Config<'a> {
    pub fn new(nginx: &'a NginxTrafficRouting, max_traffic_weight: Option<i32>) -> Self {
        Config {
            prefix: nginx
                .annotation_prefix
                .as_deref()
                .filter(|p| !p.is_empty())
                .unwrap_or(DEFAULT_ANNOTATION_PREFIX),
            additional: nginx.additional_ingress_annotations.as_ref(),
            canary_annotations: nginx.canary_ingress_annotations.as_ref(),
            weight_total: max_traffic_weight,
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}/{name}", self.prefix)
    }
}

/// The Ingresses an NGINX config names: each stable Ingress (read) and its canary Ingress
/// (created, owned and written).
pub fn routes(
    nginx: &NginxTrafficRouting,
    rollout: &str,
    namespace: &str,
) -> Result<Vec<RoutedObject>, InvalidSpec> {
    let single = nginx.stable_ingress.as_deref().filter(|s| !s.is_empty());
    let list = nginx.stable_ingresses.as_ref().filter(|l| !l.is_empty());
    let named: Vec<(String, &str)> = match (single, list) {
        (Some(_), Some(_)) => {
            return Err(InvalidSpec {
                field: format!("{F}.stableIngresses"),
                message: "set either stableIngress or stableIngresses, not both".into(),
            });
        }
        (Some(s), None) => vec![(format!("{F}.stableIngress"), s)],
        (None, Some(l)) => {
            let mut out = Vec::new();
            for (i, s) in l.iter().enumerate() {
                let field = format!("{F}.stableIngresses[{i}]");
                if s.is_empty() {
                    return Err(InvalidSpec {
                        field,
                        message: "must be an Ingress name".into(),
                    });
                }
                if out.iter().any(|(_, o)| o == s) {
                    return Err(InvalidSpec {
                        field,
                        message: format!("{s:?} is listed twice"),
                    });
                }
                out.push((field, s.as_str()));
            }
            out
        }
        (None, None) => {
            return Err(InvalidSpec {
                field: format!("{F}.stableIngress"),
                message: "is required: name the Ingress that routes to the stable Service".into(),
            });
        }
    };
    let ingress = |name: &str| RouteRef {
        kind: RouteKind::Ingress,
        namespace: namespace.to_string(),
        name: name.to_string(),
    };
    let mut out = Vec::new();
    for (field, stable) in named {
        out.push(RoutedObject {
            route: ingress(stable),
            header_routes: false,
            field: field.clone(),
            role: RouteRole::NginxStable,
        });
        out.push(RoutedObject {
            route: ingress(&canary_ingress_name(rollout, stable)),
            header_routes: true,
            field,
            role: RouteRole::NginxCanary {
                stable: ingress(stable),
            },
        });
    }
    Ok(out)
}

/// The annotations the canary Ingress holds for `hold`.
fn desired_annotations(stable: &Value, cfg: &Config, hold: &TrafficHold) -> Map<String, Value> {
    let mut a = Map::new();
    if let Some(class) = stable
        .pointer("/metadata/annotations")
        .and_then(|m| m.get(INGRESS_CLASS_ANNOTATION))
    {
        a.insert(INGRESS_CLASS_ANNOTATION.into(), class.clone());
    }
    for (k, v) in cfg.canary_annotations.into_iter().flatten() {
        a.insert(k.clone(), json!(v));
    }
    for (k, v) in cfg.additional.into_iter().flatten() {
        let key = if k.starts_with(cfg.prefix) {
            k.clone()
        } else {
            cfg.key(k)
        };
        a.insert(key, json!(v));
    }
    a.insert(cfg.key("canary"), json!("true"));
    a.insert(
        cfg.key("canary-weight"),
        json!(hold.canary_weight.to_string()),
    );
    if let Some(total) = cfg.weight_total {
        a.insert(cfg.key("canary-weight-total"), json!(total.to_string()));
    }
    // ingress-nginx takes one header per canary Ingress: validation allows one managed route.
    if let Some(m) = hold.header_routes.first().and_then(|h| h.matches.first()) {
        a.insert(cfg.key("canary-by-header"), json!(m.header_name));
        let v = &m.header_value;
        if let Some(exact) = &v.exact {
            a.insert(cfg.key("canary-by-header-value"), json!(exact));
        } else if let Some(prefix) = &v.prefix {
            a.insert(
                cfg.key("canary-by-header-pattern"),
                json!(format!("^{}.*", regex::escape(prefix))),
            );
        } else if let Some(re) = &v.regex {
            a.insert(cfg.key("canary-by-header-pattern"), json!(re));
        }
    }
    a
}

/// The canary Ingress's spec: the stable's rules that reach the stable Service, pointed at the
/// canary Service, with the stable's `tls` and `ingressClassName`. `Err` names the field
/// when no rule reaches the stable Service.
fn desired_spec(
    stable: &Value,
    stable_ref: &RouteRef,
    stable_service: &str,
    canary_service: &str,
) -> Result<Map<String, Value>, String> {
    let mut rules = Vec::new();
    for rule in stable
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let mut rule = rule.clone();
        let mut reaches = false;
        if let Some(paths) = rule
            .pointer_mut("/http/paths")
            .and_then(Value::as_array_mut)
        {
            for path in paths {
                if let Some(name) = path.pointer_mut("/backend/service/name")
                    && name.as_str() == Some(stable_service)
                {
                    *name = json!(canary_service);
                    reaches = true;
                }
            }
        }
        if reaches {
            rules.push(rule);
        }
    }
    if rules.is_empty() {
        return Err(format!(
            "{stable_ref}: spec.rules: no path has the stable Service {stable_service:?} as its backend (the canary Ingress copies those paths)"
        ));
    }
    let mut spec = Map::new();
    if let Some(class) = stable.pointer("/spec/ingressClassName") {
        spec.insert("ingressClassName".into(), class.clone());
    }
    spec.insert("rules".into(), Value::Array(rules));
    if let Some(tls) = stable.pointer("/spec/tls") {
        spec.insert("tls".into(), tls.clone());
    }
    Ok(spec)
}

/// Who the canary Ingress is for.
pub struct Canary<'a> {
    pub stable: Option<&'a Value>,
    pub stable_ref: &'a RouteRef,
    pub stable_service: &'a str,
    pub canary_service: &'a str,
    pub owner: &'a OwnerReference,
}

/// The change that makes the canary Ingress `obj` hold `hold`: create it (`obj` is `None`),
/// patch what differs, or nothing when it holds it (verified). `Err` names the object and
/// field: a missing stable Ingress, one without a path to the stable Service, a canary
/// Ingress of that name the Rollout does not own.
pub fn plan_canary(
    obj: Option<&Value>,
    route: &RoutedObject,
    c: &Canary,
    cfg: &Config,
    hold: &TrafficHold,
) -> Result<Option<Change>, String> {
    let Some(stable) = c.stable else {
        return Err(format!("{} not found", c.stable_ref));
    };
    let spec = desired_spec(stable, c.stable_ref, c.stable_service, c.canary_service)?;
    let annotations = desired_annotations(stable, cfg, hold);
    let Some(obj) = obj else {
        let object = json!({
            "metadata": {
                "name": route.route.name,
                "namespace": route.route.namespace,
                "annotations": annotations,
                "ownerReferences": [c.owner],
            },
            "spec": spec,
        });
        return Ok(Some(Change::CreateRoute {
            route: route.route.clone(),
            object,
        }));
    };
    if !super::smi::owned(obj, c.owner) {
        return Err(format!(
            "{}: metadata.ownerReferences: the Ingress is not owned by this Rollout (Sluice only writes a canary Ingress it created: delete it or rename the stable Ingress)",
            route.route
        ));
    }
    let mut patch = Vec::new();
    let have = obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object);
    if have.is_none() {
        patch.push(json!({"op": "add", "path": "/metadata/annotations", "value": {}}));
    }
    let empty = Map::new();
    let have = have.unwrap_or(&empty);
    for (k, v) in &annotations {
        if have.get(k) != Some(v) {
            let path = format!("/metadata/annotations/{}", escape(k));
            patch.push(json!({"op": "add", "path": path, "value": v}));
        }
    }
    let ours = format!("{}/", cfg.prefix);
    for k in have.keys() {
        if k.starts_with(&ours) && !annotations.contains_key(k) {
            let path = format!("/metadata/annotations/{}", escape(k));
            patch.push(json!({"op": "test", "path": path, "value": have[k]}));
            patch.push(json!({"op": "remove", "path": path}));
        }
    }
    let current = obj.get("spec").cloned().unwrap_or_else(|| json!({}));
    let spec_held = ["ingressClassName", "rules", "tls"]
        .iter()
        .all(|f| current.get(*f) == spec.get(*f));
    if !spec_held {
        let mut new_spec = current.as_object().cloned().unwrap_or_default();
        for f in ["ingressClassName", "rules", "tls"] {
            match spec.get(f) {
                Some(v) => new_spec.insert(f.into(), v.clone()),
                None => new_spec.remove(f),
            };
        }
        patch.push(json!({"op": "test", "path": "/spec", "value": current}));
        patch.push(json!({"op": "replace", "path": "/spec", "value": new_spec}));
    }
    if patch.is_empty() {
        return Ok(None);
    }
    Ok(Some(Change::PatchRoute {
        route: route.route.clone(),
        patch,
    }))
}

/// A JSON pointer token (RFC 6901).
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests;
