//! The SMI router (`trafficRouting.smi`: `rootService`, `trafficSplitName`): a TrafficSplit
//! the Rollout creates and owns (controller ownerReference), named `trafficSplitName` or
//! after the Rollout, splitting `rootService` (default: the stable Service) between the
//! canary and the stable Service — for Linkerd's SMI extension and the meshes that read SMI.
//!
//! A TrafficSplit of that name the Rollout does not own is never written (upstream refuses it
//! the same way). SMI has no header or mirror routes.

use serde_json::{Value, json};

use super::{RoutedObject, TrafficHold};
use crate::rollout::plan::Change;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

/// The `spec` a TrafficSplit holds: canary first, then the stable (upstream's order).
fn desired_spec(root: &str, canary: &str, stable: &str, hold: &TrafficHold) -> Value {
    json!({
        "service": root,
        "backends": [
            {"service": canary, "weight": hold.canary_weight},
            {"service": stable, "weight": hold.stable_weight()},
        ],
    })
}

/// Who the split is for.
pub struct Split<'a> {
    pub root: &'a str,
    pub canary: &'a str,
    pub stable: &'a str,
    pub owner: &'a OwnerReference,
}

/// Whether `obj` is controlled by the owner.
pub(super) fn owned(obj: &Value, owner: &OwnerReference) -> bool {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r["uid"] == owner.uid.as_str() && r["controller"] == true)
        })
}

/// The change that makes the TrafficSplit hold `hold`: create it (`obj` is `None`), patch its
/// `spec.service` and `spec.backends`, or nothing when it holds them (verified). `Err` when a
/// TrafficSplit of that name belongs to someone else.
pub fn plan_split(
    obj: Option<&Value>,
    route: &RoutedObject,
    split: &Split,
    hold: &TrafficHold,
) -> Result<Option<Change>, String> {
    let spec = desired_spec(split.root, split.canary, split.stable, hold);
    let Some(obj) = obj else {
        let object = json!({
            "metadata": {
                "name": route.route.name,
                "namespace": route.route.namespace,
                "ownerReferences": [split.owner],
            },
            "spec": spec,
        });
        return Ok(Some(Change::CreateRoute {
            route: route.route.clone(),
            object,
        }));
    };
    if !owned(obj, split.owner) {
        return Err(format!(
            "{}: metadata.ownerReferences: the TrafficSplit is not owned by this Rollout (Sluice only writes a TrafficSplit it created: delete it, or name another in trafficSplitName)",
            route.route
        ));
    }
    // A weight read back as 10.0 is 10 (the schema types it as a number).
    let same = |a: Option<&Value>, b: &Value| match (a, b) {
        (Some(Value::Number(x)), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Some(x), y) => x == y,
        (None, _) => false,
    };
    let backends_held = obj
        .pointer("/spec/backends")
        .and_then(Value::as_array)
        .is_some_and(|have| {
            let want = spec["backends"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            have.len() == want.len()
                && have.iter().zip(want).all(|(h, w)| {
                    same(h.get("service"), &w["service"]) && same(h.get("weight"), &w["weight"])
                })
        });
    let service_held = same(obj.pointer("/spec/service"), &spec["service"]);
    if backends_held && service_held {
        return Ok(None);
    }
    let current = obj.get("spec").cloned().unwrap_or(Value::Null);
    let mut new_spec = current.clone();
    new_spec["service"] = spec["service"].clone();
    new_spec["backends"] = spec["backends"].clone();
    Ok(Some(Change::PatchRoute {
        route: route.route.clone(),
        patch: vec![
            json!({"op": "test", "path": "/spec", "value": current}),
            json!({"op": "replace", "path": "/spec", "value": new_spec}),
        ],
    }))
}
