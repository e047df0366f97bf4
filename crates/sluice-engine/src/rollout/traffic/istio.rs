//! The Istio router (`trafficRouting.istio`: `virtualService` or `virtualServices` with
//! `routes`, `tlsRoutes`, `tcpRoutes`; `destinationRule` with `canarySubsetName` and
//! `stableSubsetName`).
//!
//! - Host-level splitting (no `destinationRule`): in each named route of the VirtualService,
//!   the destination whose host is the canary Service gets the canary weight, the one whose
//!   host is the stable Service the rest. A named route must have exactly those two.
//! - Subset-level splitting (`destinationRule`): the same with the destinations whose
//!   `subset` is the canary or the stable subset; the DestinationRule's two subsets select
//!   the pods by their `rollouts-pod-template-hash` label, which Sluice sets — the stable
//!   subset first, and before the VirtualService in the same plan, so that the end of an
//!   update moves the stable subset to the new pods before the canary's weight goes back.
//! - Managed routes (`setHeaderRoute`, `setMirrorRoute`) are HTTP routes named after the
//!   managed route, placed before the other routes in `managedRoutes` order (as upstream
//!   does): a header route sends matching requests to the canary; a mirror route serves
//!   matching requests as the first named route does and mirrors them to the canary.
//!
//! Without `routes`, `tlsRoutes` and `tcpRoutes`, the VirtualService must have exactly one
//! HTTP route, which is the one split. Patches test the list they replace (`spec.http`,
//! `spec.tls`, `spec.tcp`) and set one label per DestinationRule subset: everything else in
//! either object is someone else's and stays.

use serde_json::{Map, Value, json};

use super::{RouteKind, RouteRef, RouteRole, RoutedObject, TrafficHold};
use crate::rollout::plan::Change;
use crate::rollout::validate::InvalidSpec;
use sluice_api::common::POD_TEMPLATE_HASH_LABEL;
use sluice_api::rollout::{
    IstioDestinationRule, IstioTrafficRouting, IstioVirtualService, StringMatch,
};

const F: &str = "spec.strategy.canary.trafficRouting.istio";

fn invalid(field: String, message: impl Into<String>) -> InvalidSpec {
    InvalidSpec {
        field,
        message: message.into(),
    }
}

/// The Istio settings the objects are written from.
#[derive(Debug, Clone, PartialEq)]
pub struct Config<'a> {
    pub virtual_services: Vec<&'a IstioVirtualService>,
    pub destination_rule: Option<&'a IstioDestinationRule>,
}

/// A `name` or `name.namespace` reference (upstream's form for another namespace).
fn object_ref(kind: RouteKind, name: &str, namespace: &str) -> RouteRef {
    let (name, namespace) = match name.split_once('.') {
        Some((n, ns)) if !ns.is_empty() => (n, ns),
        _ => (name, namespace),
    };
    RouteRef {
        kind,
        namespace: namespace.to_string(),
        name: name.to_string(),
    }
}

/// The objects an Istio config names: the DestinationRule first (its subsets move first),
/// then each VirtualService.
pub fn routes<'a>(
    istio: &'a IstioTrafficRouting,
    namespace: &str,
) -> Result<(Config<'a>, Vec<RoutedObject>), InvalidSpec> {
    let named: Vec<(String, &IstioVirtualService)> =
        match (&istio.virtual_service, &istio.virtual_services) {
            (Some(_), Some(l)) if !l.is_empty() => {
                return Err(invalid(
                    format!("{F}.virtualServices"),
                    "set either virtualService or virtualServices, not both",
                ));
            }
            (Some(vs), _) => vec![(format!("{F}.virtualService"), vs)],
            (None, Some(l)) if !l.is_empty() => l
                .iter()
                .enumerate()
                .map(|(i, vs)| (format!("{F}.virtualServices[{i}]"), vs))
                .collect(),
            _ => {
                return Err(invalid(
                    format!("{F}.virtualService"),
                    "is required: name the VirtualService that routes to the canary and the stable",
                ));
            }
        };
    let mut out = Vec::new();
    if let Some(dr) = &istio.destination_rule {
        let f = format!("{F}.destinationRule");
        for (value, key) in [
            (&dr.name, "name"),
            (&dr.canary_subset_name, "canarySubsetName"),
            (&dr.stable_subset_name, "stableSubsetName"),
        ] {
            if value.is_empty() {
                return Err(invalid(format!("{f}.{key}"), "must not be empty"));
            }
        }
        if dr.canary_subset_name == dr.stable_subset_name {
            return Err(invalid(
                format!("{f}.stableSubsetName"),
                "the canary and the stable subset must be two different subsets",
            ));
        }
        out.push(RoutedObject {
            route: object_ref(RouteKind::DestinationRule, &dr.name, namespace),
            header_routes: false,
            field: f,
            role: RouteRole::IstioDestinationRule,
        });
    }
    for (index, (field, vs)) in named.iter().enumerate() {
        if vs.name.is_empty() {
            return Err(invalid(format!("{field}.name"), "must not be empty"));
        }
        for (i, r) in vs.routes.iter().flatten().enumerate() {
            if r.is_empty() {
                return Err(invalid(
                    format!("{field}.routes[{i}]"),
                    "must be a route name",
                ));
            }
        }
        for (i, t) in vs.tcp_routes.iter().flatten().enumerate() {
            if t.port.is_none() {
                return Err(invalid(
                    format!("{field}.tcpRoutes[{i}].port"),
                    "is required: it selects the TCP route",
                ));
            }
        }
        let route = object_ref(RouteKind::VirtualService, &vs.name, namespace);
        if out.iter().any(|o: &RoutedObject| o.route == route) {
            return Err(invalid(
                format!("{field}.name"),
                format!("{:?} is listed twice", vs.name),
            ));
        }
        out.push(RoutedObject {
            route,
            header_routes: true,
            field: field.clone(),
            role: RouteRole::IstioVirtualService { index },
        });
    }
    Ok((
        Config {
            virtual_services: named.into_iter().map(|(_, vs)| vs).collect(),
            destination_rule: istio.destination_rule.as_ref(),
        },
        out,
    ))
}

/// The change that makes the DestinationRule's subsets select the stable and the canary pods
/// (stable first), or nothing when they do. `Err` names a missing object or subset.
pub fn plan_destination_rule(
    obj: Option<&Value>,
    route: &RoutedObject,
    dr: &IstioDestinationRule,
    hold: &TrafficHold,
) -> Result<Option<Change>, String> {
    let what = &route.route;
    let Some(obj) = obj else {
        return Err(format!("{what} not found"));
    };
    let subsets = obj
        .pointer("/spec/subsets")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let index = |name: &str, key: &str| {
        subsets
            .iter()
            .position(|s| s.get("name").and_then(Value::as_str) == Some(name))
            .ok_or_else(|| format!("{what}: spec.subsets: no subset named {name:?} ({key})"))
    };
    let stable = index(&dr.stable_subset_name, "stableSubsetName")?;
    let canary = index(&dr.canary_subset_name, "canarySubsetName")?;
    let mut patch = Vec::new();
    for (i, hash) in [(stable, &hold.stable_hash), (canary, &hold.canary_hash)] {
        if hash.is_empty() {
            continue;
        }
        let subset = &subsets[i];
        let labels = subset.get("labels").and_then(Value::as_object);
        if labels.and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL)) == Some(&json!(hash)) {
            continue;
        }
        patch.push(json!({"op": "test", "path": format!("/spec/subsets/{i}/name"), "value": subset["name"]}));
        if labels.is_none() {
            patch.push(
                json!({"op": "add", "path": format!("/spec/subsets/{i}/labels"), "value": {}}),
            );
        }
        patch.push(json!({
            "op": "add",
            "path": format!("/spec/subsets/{i}/labels/{POD_TEMPLATE_HASH_LABEL}"),
            "value": hash,
        }));
    }
    if patch.is_empty() {
        return Ok(None);
    }
    Ok(Some(Change::PatchRoute {
        route: what.clone(),
        patch,
    }))
}

/// Who the VirtualService splits between.
pub struct Split<'a> {
    pub namespace: &'a str,
    pub canary_service: &'a str,
    pub stable_service: &'a str,
    pub destination_rule: Option<&'a IstioDestinationRule>,
    /// `managedRoutes` names: HTTP routes of these names are Sluice's.
    pub managed: &'a [&'a str],
}

impl Split<'_> {
    /// Whether `host` names Service `service` of the Rollout's namespace (short or qualified).
    fn host_is(&self, host: &str, service: &str) -> bool {
        let ns = self.namespace;
        host == service
            || host == format!("{service}.{ns}")
            || host == format!("{service}.{ns}.svc")
            || host == format!("{service}.{ns}.svc.cluster.local")
    }

    /// Which side a destination is: `Some(true)` the canary, `Some(false)` the stable.
    fn side(&self, d: &Value) -> Option<bool> {
        let dest = d.get("destination")?;
        match self.destination_rule {
            Some(dr) => {
                let subset = dest.get("subset").and_then(Value::as_str)?;
                (subset == dr.canary_subset_name)
                    .then_some(true)
                    .or((subset == dr.stable_subset_name).then_some(false))
            }
            None => {
                let host = dest.get("host").and_then(Value::as_str)?;
                self.host_is(host, self.canary_service)
                    .then_some(true)
                    .or(self.host_is(host, self.stable_service).then_some(false))
            }
        }
    }

    fn expected(&self) -> String {
        match self.destination_rule {
            Some(dr) => format!(
                "the subsets {:?} and {:?}",
                dr.canary_subset_name, dr.stable_subset_name
            ),
            None => format!(
                "the hosts {:?} and {:?}",
                self.canary_service, self.stable_service
            ),
        }
    }

    /// Set the weights on a route's destinations (`route[]`): exactly one canary and one
    /// stable destination. Returns whether they were already held.
    fn set_weights(&self, dests: &mut Value, hold: &TrafficHold, at: &str) -> Result<bool, String> {
        let Some(list) = dests.as_array_mut() else {
            return Err(format!(
                "{at}: has no destinations; it must have {}",
                self.expected()
            ));
        };
        let sides: Vec<Option<bool>> = list.iter().map(|d| self.side(d)).collect();
        if list.len() != 2 || !sides.contains(&Some(true)) || !sides.contains(&Some(false)) {
            return Err(format!(
                "{at}: must have exactly two destinations, {}",
                self.expected()
            ));
        }
        let mut held = true;
        for (d, side) in list.iter_mut().zip(sides) {
            let w = if side == Some(true) {
                hold.canary_weight
            } else {
                hold.stable_weight()
            };
            if d.get("weight").and_then(Value::as_i64) != Some(i64::from(w)) {
                held = false;
                d["weight"] = json!(w);
            }
        }
        Ok(held)
    }
}

/// An Istio string match.
fn string_match(m: &StringMatch) -> Value {
    match (&m.exact, &m.prefix, &m.regex) {
        (Some(e), _, _) => json!({"exact": e}),
        (_, Some(p), _) => json!({"prefix": p}),
        (_, _, Some(r)) => json!({"regex": r}),
        _ => json!({}),
    }
}

/// The managed HTTP routes, in `managedRoutes` order, from the first split route's
/// destinations (`split_route`, already at the held weights).
fn managed_routes(split: &Split, split_route: &Value, hold: &TrafficHold) -> Vec<Value> {
    let dests = split_route
        .get("route")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let canary_dest = dests
        .iter()
        .find(|d| split.side(d) == Some(true))
        .and_then(|d| d.get("destination"))
        .cloned()
        .unwrap_or(Value::Null);
    let mut out = Vec::new();
    for name in split.managed {
        if let Some(h) = hold.header_routes.iter().find(|h| h.name == *name) {
            let headers: Map<String, Value> = h
                .matches
                .iter()
                .map(|m| (m.header_name.clone(), string_match(&m.header_value)))
                .collect();
            out.push(json!({
                "name": name,
                "match": [{"headers": headers}],
                "route": [{"destination": canary_dest, "weight": 100}],
            }));
        }
        if let Some(m) = hold.mirror_routes.iter().find(|m| m.name == *name) {
            let matches: Vec<Value> = m
                .step
                .match_
                .iter()
                .flatten()
                .map(|rm| {
                    let mut one = Map::new();
                    if let Some(method) = &rm.method {
                        one.insert("method".into(), string_match(method));
                    }
                    if let Some(path) = &rm.path {
                        one.insert("uri".into(), string_match(path));
                    }
                    if let Some(headers) = &rm.headers {
                        let h: Map<String, Value> = headers
                            .iter()
                            .map(|(k, v)| (k.clone(), string_match(v)))
                            .collect();
                        one.insert("headers".into(), Value::Object(h));
                    }
                    Value::Object(one)
                })
                .collect();
            let percent = f64::from(m.step.percentage.unwrap_or(100));
            out.push(json!({
                "name": name,
                "match": matches,
                "route": dests,
                "mirror": canary_dest,
                "mirrorPercentage": {"value": percent},
            }));
        }
    }
    out
}

/// Whether every field of `want` is in `have` with the same value (numbers compared as
/// numbers: the API server may hand back `100.0` for `100`).
fn is_subset(want: &Value, have: &Value) -> bool {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => w
            .iter()
            .all(|(k, v)| h.get(k).is_some_and(|hv| is_subset(v, hv))),
        (Value::Array(w), Value::Array(h)) => {
            w.len() == h.len() && w.iter().zip(h).all(|(a, b)| is_subset(a, b))
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => want == have,
    }
}

/// Whether a TLS route `t` of the VirtualService is the one `sel` selects: one of its matches
/// has the port (when given) and the SNI hosts (when given).
fn tls_selected(t: &Value, sel: &sluice_api::rollout::TlsRoute) -> bool {
    t.get("match").and_then(Value::as_array).is_some_and(|ms| {
        ms.iter().any(|m| {
            let port_ok = sel
                .port
                .is_none_or(|p| m.get("port").and_then(Value::as_i64) == Some(p));
            let sni_ok = sel.sni_hosts.as_ref().is_none_or(|want| {
                let mut have: Vec<&str> = m
                    .get("sniHosts")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let mut want: Vec<&str> = want.iter().map(String::as_str).collect();
                have.sort_unstable();
                want.sort_unstable();
                have == want
            });
            port_ok && sni_ok
        })
    })
}

fn tcp_selected(t: &Value, port: i64) -> bool {
    t.get("match").and_then(Value::as_array).is_some_and(|ms| {
        ms.iter()
            .any(|m| m.get("port").and_then(Value::as_i64) == Some(port))
    })
}

/// The JSON patch that makes the VirtualService hold `hold`, or `None` when it does. `Err`
/// names the object and the field: a missing VirtualService, a named route it does not have,
/// a route whose destinations are not exactly the canary and the stable.
pub fn plan_virtual_service(
    obj: Option<&Value>,
    route: &RoutedObject,
    vs: &IstioVirtualService,
    split: &Split,
    hold: &TrafficHold,
) -> Result<Option<Change>, String> {
    let what = &route.route;
    let Some(obj) = obj else {
        return Err(format!("{what} not found"));
    };
    let mut patch = Vec::new();

    // HTTP: the named routes (or the only one), with the managed routes before them.
    let http_now: Vec<Value> = obj
        .pointer("/spec/http")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut base = Vec::new();
    let mut observed_managed = Vec::new();
    let mut managed_in_front = true;
    for r in &http_now {
        let name = r.get("name").and_then(Value::as_str).unwrap_or_default();
        if split.managed.contains(&name) {
            managed_in_front &= base.is_empty();
            observed_managed.push(r.clone());
        } else {
            base.push(r.clone());
        }
    }
    let names: Vec<&str> = vs.routes.iter().flatten().map(String::as_str).collect();
    let selects_none = names.is_empty()
        && vs.tls_routes.as_ref().is_none_or(Vec::is_empty)
        && vs.tcp_routes.as_ref().is_none_or(Vec::is_empty);
    let mut targets = Vec::new();
    if selects_none {
        if base.len() != 1 {
            return Err(format!(
                "{what}: spec.http: has {} HTTP routes: name the ones to split in {}.routes",
                base.len(),
                route.field
            ));
        }
        targets.push(0);
    }
    for name in &names {
        let Some(i) = base
            .iter()
            .position(|r| r.get("name").and_then(Value::as_str) == Some(name))
        else {
            return Err(format!(
                "{what}: spec.http: no HTTP route named {name:?} (named in {}.routes)",
                route.field
            ));
        };
        targets.push(i);
    }
    let mut held = true;
    for &i in &targets {
        let at = format!("{what}: spec.http[{}].route", i + observed_managed.len());
        let dests = base[i].get_mut("route").ok_or_else(|| {
            format!(
                "{at}: has no destinations; it must have {}",
                split.expected()
            )
        })?;
        held &= split.set_weights(dests, hold, &at)?;
    }
    let desired_managed = targets
        .first()
        .map(|&i| managed_routes(split, &base[i], hold))
        .unwrap_or_default();
    let managed_held = managed_in_front
        && observed_managed.len() == desired_managed.len()
        && desired_managed
            .iter()
            .zip(&observed_managed)
            .all(|(d, o)| is_subset(d, o));
    if !(held && managed_held) {
        let mut http = desired_managed;
        http.extend(base);
        patch.push(json!({"op": "test", "path": "/spec/http", "value": http_now}));
        patch.push(json!({"op": "replace", "path": "/spec/http", "value": http}));
    }

    // TLS and TCP routes, selected by port (and SNI hosts).
    for (key, count) in [
        ("tls", vs.tls_routes.as_ref().map_or(0, Vec::len)),
        ("tcp", vs.tcp_routes.as_ref().map_or(0, Vec::len)),
    ] {
        if count == 0 {
            continue;
        }
        let now: Vec<Value> = obj
            .pointer(&format!("/spec/{key}"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut new = now.clone();
        let mut held = true;
        for j in 0..count {
            let found = if key == "tls" {
                let sel = &vs.tls_routes.as_ref().unwrap_or(&Vec::new())[j].clone();
                new.iter().position(|t| tls_selected(t, sel))
            } else {
                let port = vs.tcp_routes.as_ref().and_then(|t| t[j].port).unwrap_or(0);
                new.iter().position(|t| tcp_selected(t, port))
            };
            let field = if key == "tls" {
                "tlsRoutes"
            } else {
                "tcpRoutes"
            };
            let Some(i) = found else {
                return Err(format!(
                    "{what}: spec.{key}: no {} route matches {}.{field}[{j}]",
                    key.to_uppercase(),
                    route.field
                ));
            };
            let at = format!("{what}: spec.{key}[{i}].route");
            let dests = new[i].get_mut("route").ok_or_else(|| {
                format!(
                    "{at}: has no destinations; it must have {}",
                    split.expected()
                )
            })?;
            held &= split.set_weights(dests, hold, &at)?;
        }
        if !held {
            let path = format!("/spec/{key}");
            patch.push(json!({"op": "test", "path": path, "value": now}));
            patch.push(json!({"op": "replace", "path": path, "value": new}));
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
