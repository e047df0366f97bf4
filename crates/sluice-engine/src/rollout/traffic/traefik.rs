//! The Traefik router (`trafficRouting.traefik.weightedTraefikServiceName`): a weighted
//! TraefikService (`traefik.io/v1alpha1`) whose `spec.weighted.services` name the canary and
//! the stable Service; Sluice sets those two entries' `weight` and leaves every other entry
//! and field (ports, sticky sessions, mirrors elsewhere) as it is.

use serde_json::{Value, json};

use super::{RoutedObject, TrafficHold};
use crate::rollout::plan::Change;

/// The JSON patch that makes the TraefikService hold `hold`, or `None` when it does. `Err`
/// names the object and the field: a missing TraefikService, one without weighted services
/// for both the canary and the stable Service.
pub fn plan_service(
    obj: Option<&Value>,
    route: &RoutedObject,
    canary: &str,
    stable: &str,
    hold: &TrafficHold,
) -> Result<Option<Change>, String> {
    let what = &route.route;
    let Some(obj) = obj else {
        return Err(format!("{what} not found"));
    };
    let Some(now) = obj
        .pointer("/spec/weighted/services")
        .and_then(Value::as_array)
    else {
        return Err(format!(
            "{what}: spec.weighted.services: the TraefikService is not weighted (it must list the canary Service {canary:?} and the stable Service {stable:?})"
        ));
    };
    let mut services = now.clone();
    let mut held = true;
    for (service, weight) in [(canary, hold.canary_weight), (stable, hold.stable_weight())] {
        let Some(entry) = services
            .iter_mut()
            .find(|s| s.get("name").and_then(Value::as_str) == Some(service))
        else {
            return Err(format!(
                "{what}: spec.weighted.services: no entry for the Service {service:?}"
            ));
        };
        if entry.get("weight").and_then(Value::as_i64) != Some(i64::from(weight)) {
            held = false;
            entry["weight"] = json!(weight);
        }
    }
    if held {
        return Ok(None);
    }
    Ok(Some(Change::PatchRoute {
        route: what.clone(),
        patch: vec![
            json!({"op": "test", "path": "/spec/weighted/services", "value": now}),
            json!({"op": "replace", "path": "/spec/weighted/services", "value": services}),
        ],
    }))
}

#[cfg(test)]
mod tests;
