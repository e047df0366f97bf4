//! The Gateway API router: HTTPRoute, GRPCRoute and TCPRoute, configured as upstream's
//! `argoproj-labs/gatewayAPI` plugin is (`httpRoute`, `httpRoutes` with `useHeaderRoutes`,
//! `grpcRoute(s)`, `tcpRoute(s)`, `namespace`), run in-process.
//!
//! What a route must hold:
//! - in every rule whose `backendRefs` name both the canary and the stable Service, the
//!   canary's refs carry the canary weight and the stable's the rest (rules naming only one of
//!   them are left alone: setting a lone backend's weight to 0 would cut that rule's traffic);
//! - before those rules, one rule per managed route, in `managedRoutes` order: a header route
//!   sends requests with its headers to the canary Service, a mirror route serves matching
//!   requests from the stable Service and mirrors them (or `percentage` of them) to the canary.
//!   Their `name` is `sluice.<rollout>.<managed route>`, which is how Sluice knows its own
//!   rules again (upstream's plugin keeps their indexes in a ConfigMap instead).
//!
//! A route's parents do not matter: a Gateway parent (north/south) and a Service parent (GAMMA,
//! the mesh routes Linkerd and Istio implement) are written alike.

use serde_json::{Map, Value, json};

use super::{HeaderRoute, MirrorRoute, RouteKind, RouteRef, RoutedObject, TrafficHold};
use crate::rollout::validate::InvalidSpec;
use sluice_api::rollout::{HeaderRoutingMatch, StringMatch};

/// Plugin config keys Sluice reads; `configMap` names the plugin's bookkeeping ConfigMap,
/// which Sluice does not need, and `disableInProgressLabel` turns off a label Sluice never
/// sets.
const ACCEPTED_KEYS: &[&str] = &[
    "httpRoute",
    "httpRoutes",
    "grpcRoute",
    "grpcRoutes",
    "tcpRoute",
    "tcpRoutes",
    "namespace",
    "configMap",
    "disableInProgressLabel",
];

fn plugin_field(key: &str) -> String {
    format!(
        "spec.strategy.canary.trafficRouting.plugins[\"{}\"].{key}",
        super::GATEWAY_API_PLUGIN
    )
}

fn invalid(field: String, message: impl Into<String>) -> InvalidSpec {
    InvalidSpec {
        field,
        message: message.into(),
    }
}

/// The routes a plugin config names, in the Rollout's namespace unless `namespace` says
/// otherwise.
pub fn routes(config: &Value, rollout_namespace: &str) -> Result<Vec<RoutedObject>, InvalidSpec> {
    let Some(map) = config.as_object() else {
        return Err(invalid(
            format!(
                "spec.strategy.canary.trafficRouting.plugins[\"{}\"]",
                super::GATEWAY_API_PLUGIN
            ),
            "must be an object naming the routes (httpRoute, httpRoutes, grpcRoute, ...)",
        ));
    };
    for key in map.keys() {
        if !ACCEPTED_KEYS.contains(&key.as_str()) {
            return Err(invalid(plugin_field(key), "is not supported by Sluice yet"));
        }
    }
    let namespace = match map.get("namespace") {
        None | Some(Value::Null) => rollout_namespace.to_string(),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(_) => {
            return Err(invalid(
                plugin_field("namespace"),
                "must be a namespace name",
            ));
        }
    };
    let mut out = Vec::new();
    let kinds = [
        (RouteKind::HttpRoute, "httpRoute", "httpRoutes"),
        (RouteKind::GrpcRoute, "grpcRoute", "grpcRoutes"),
        (RouteKind::TcpRoute, "tcpRoute", "tcpRoutes"),
    ];
    for (kind, single, list) in kinds {
        if let Some(v) = map.get(single).filter(|v| !v.is_null()) {
            let Some(name) = v.as_str().filter(|s| !s.is_empty()) else {
                return Err(invalid(plugin_field(single), "must be a route name"));
            };
            out.push(RoutedObject {
                route: RouteRef {
                    kind,
                    namespace: namespace.clone(),
                    name: name.to_string(),
                },
                // Upstream adds header routes to the one named route.
                header_routes: kind.has_http_rules(),
                field: plugin_field(single),
                role: super::RouteRole::Route,
            });
        }
        let Some(v) = map.get(list).filter(|v| !v.is_null()) else {
            continue;
        };
        let Some(items) = v.as_array() else {
            return Err(invalid(
                plugin_field(list),
                "must be a list of {name, useHeaderRoutes}",
            ));
        };
        for (i, item) in items.iter().enumerate() {
            let field = format!("{}[{i}]", plugin_field(list));
            let Some(name) = item
                .get("name")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            else {
                return Err(invalid(format!("{field}.name"), "must be a route name"));
            };
            let header_routes = match item.get("useHeaderRoutes") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    return Err(invalid(
                        format!("{field}.useHeaderRoutes"),
                        "must be true or false",
                    ));
                }
            };
            if header_routes && !kind.has_http_rules() {
                return Err(invalid(
                    format!("{field}.useHeaderRoutes"),
                    format!("a {} has no header matches", kind.kind()),
                ));
            }
            out.push(RoutedObject {
                route: RouteRef {
                    kind,
                    namespace: namespace.clone(),
                    name: name.to_string(),
                },
                header_routes,
                field,
                role: super::RouteRole::Route,
            });
        }
    }
    Ok(out)
}

/// The name of the rule a managed route becomes on a route of Rollout `rollout`.
pub fn managed_rule_name(rollout: &str, managed: &str) -> String {
    format!("sluice.{rollout}.{managed}")
}

/// Whether `rule` is one this Rollout added for a managed route.
fn is_managed_rule(rule: &Value, rollout: &str) -> bool {
    let prefix = format!("sluice.{rollout}.");
    rule.get("name")
        .and_then(Value::as_str)
        .and_then(|n| n.strip_prefix(prefix.as_str()))
        .is_some_and(|rest| !rest.is_empty() && !rest.contains('.'))
}

/// Who the route is for: the Rollout and its two Services.
#[derive(Debug, Clone, Copy)]
pub struct Backends<'a> {
    pub rollout: &'a str,
    pub namespace: &'a str,
    pub canary: &'a str,
    pub stable: &'a str,
}

/// Whether a backendRef points at Service `name` in the Rollout's namespace.
fn names_service(r: &Value, name: &str, route_ns: &str, b: &Backends) -> bool {
    let s = |k: &str| r.get(k).and_then(Value::as_str);
    s("name") == Some(name)
        && s("group").unwrap_or("").is_empty()
        && s("kind").unwrap_or("Service") == "Service"
        && s("namespace").unwrap_or(route_ns) == b.namespace
}

/// The JSON patch that makes the route `obj` hold `hold`, or `None` when it already does.
/// `Err` says what is wrong with the route, naming the object and the field.
pub fn plan_route(
    obj: &Value,
    route: &RoutedObject,
    b: &Backends,
    hold: &TrafficHold,
) -> Result<Option<Vec<Value>>, String> {
    let what = &route.route;
    let Some(rules) = obj.pointer("/spec/rules").and_then(Value::as_array) else {
        return Err(format!("{what}: spec.rules: the route has no rules"));
    };
    let route_ns = what.namespace.as_str();
    let mut base: Vec<Value> = Vec::new();
    let mut observed_managed: Vec<&Value> = Vec::new();
    let mut managed_in_front = true;
    for rule in rules {
        if is_managed_rule(rule, b.rollout) {
            managed_in_front &= base.is_empty();
            observed_managed.push(rule);
        } else {
            base.push(rule.clone());
        }
    }
    let mut weights_held = true;
    let mut split_rule: Option<usize> = None;
    for (i, rule) in base.iter_mut().enumerate() {
        let Some(refs) = rule.get_mut("backendRefs").and_then(Value::as_array_mut) else {
            continue;
        };
        let has = |n: &str| refs.iter().any(|r| names_service(r, n, route_ns, b));
        if !(has(b.canary) && has(b.stable)) {
            continue;
        }
        split_rule.get_or_insert(i);
        for r in refs.iter_mut() {
            let weight = if names_service(r, b.canary, route_ns, b) {
                hold.canary_weight
            } else if names_service(r, b.stable, route_ns, b) {
                hold.stable_weight()
            } else {
                continue;
            };
            // An absent weight is 1 (the API's default).
            if r.get("weight").and_then(Value::as_i64).unwrap_or(1) != i64::from(weight) {
                weights_held = false;
                r["weight"] = json!(weight);
            }
        }
    }
    let Some(split) = split_rule else {
        return Err(format!(
            "{what}: spec.rules: no rule has backendRefs naming both the canary Service {:?} and the stable Service {:?}",
            b.canary, b.stable
        ));
    };
    let desired_managed = if route.header_routes {
        managed_rules(what.kind, &base[split], route_ns, b, hold)
    } else {
        Vec::new()
    };
    let managed_held = managed_in_front
        && observed_managed.len() == desired_managed.len()
        && desired_managed
            .iter()
            .zip(&observed_managed)
            .all(|(d, o)| is_subset(d, o));
    if weights_held && managed_held {
        return Ok(None);
    }
    let mut new_rules = desired_managed;
    new_rules.extend(base);
    Ok(Some(vec![
        json!({"op": "test", "path": "/spec/rules", "value": rules}),
        json!({"op": "replace", "path": "/spec/rules", "value": new_rules}),
    ]))
}

/// Whether every field of `want` is in `have` with the same value (arrays element by
/// element): `have` may carry defaults the API server filled in.
fn is_subset(want: &Value, have: &Value) -> bool {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => w
            .iter()
            .all(|(k, v)| h.get(k).is_some_and(|hv| is_subset(v, hv))),
        (Value::Array(w), Value::Array(h)) => {
            w.len() == h.len() && w.iter().zip(h).all(|(a, b)| is_subset(a, b))
        }
        _ => want == have,
    }
}

/// The backendRef of Service `service` in `rule` (to copy its port), without its weight.
fn backend_like(rule: &Value, service: &str, route_ns: &str, b: &Backends) -> Value {
    let found = rule
        .get("backendRefs")
        .and_then(Value::as_array)
        .and_then(|refs| refs.iter().find(|r| names_service(r, service, route_ns, b)));
    let mut r = Map::new();
    r.insert("group".into(), json!(""));
    r.insert("kind".into(), json!("Service"));
    r.insert("name".into(), json!(service));
    if let Some(found) = found {
        for key in ["namespace", "port"] {
            if let Some(v) = found.get(key) {
                r.insert(key.into(), v.clone());
            }
        }
    }
    Value::Object(r)
}

/// The managed rules a route holds, in `managedRoutes` order: `split` is the rule that
/// splits the two Services, whose matches and filters the managed rules start from.
fn managed_rules(
    kind: RouteKind,
    split: &Value,
    route_ns: &str,
    b: &Backends,
    hold: &TrafficHold,
) -> Vec<Value> {
    let mut out = Vec::new();
    for h in &hold.header_routes {
        out.push(header_rule(split, route_ns, b, h));
    }
    for m in &hold.mirror_routes {
        out.push(match kind {
            RouteKind::HttpRoute => mirror_rule(split, route_ns, b, m),
            _ => grpc_mirror_rule(split, route_ns, b, m),
        });
    }
    out
}

/// A header match as the Gateway API writes it: exact stays exact, a prefix becomes the
/// regular expression of that prefix (upstream's plugin does the same), a regex stays one.
fn header_match(name: &str, value: &StringMatch) -> Value {
    let (type_, v) = string_match(value, "Exact");
    json!({"name": name, "type": type_, "value": v})
}

/// `(type, value)` of a string match, `exact_type` naming the exact match type.
fn string_match(m: &StringMatch, exact_type: &str) -> (String, String) {
    if let Some(e) = &m.exact {
        return (exact_type.to_string(), e.clone());
    }
    if let Some(p) = &m.prefix {
        return (
            "RegularExpression".into(),
            format!("{}.*", regex::escape(p)),
        );
    }
    (
        "RegularExpression".into(),
        m.regex.clone().unwrap_or_default(),
    )
}

fn header_matches(matches: &[HeaderRoutingMatch]) -> Vec<Value> {
    matches
        .iter()
        .map(|m| header_match(&m.header_name, &m.header_value))
        .collect()
}

/// The split rule's matches, each narrowed to `headers` (one match with only the headers when
/// the split rule matches everything).
fn narrowed_matches(split: &Value, headers: &[Value]) -> Vec<Value> {
    let base: Vec<Value> = split
        .get("matches")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if base.is_empty() {
        return vec![json!({"headers": headers})];
    }
    base.into_iter()
        .map(|mut m| {
            let mut all = m
                .get("headers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            all.extend(headers.iter().cloned());
            m["headers"] = Value::Array(all);
            m
        })
        .collect()
}

fn header_rule(split: &Value, route_ns: &str, b: &Backends, h: &HeaderRoute) -> Value {
    let mut backend = backend_like(split, b.canary, route_ns, b);
    backend["weight"] = json!(1);
    let mut rule = Map::new();
    rule.insert("name".into(), json!(managed_rule_name(b.rollout, &h.name)));
    rule.insert(
        "matches".into(),
        Value::Array(narrowed_matches(split, &header_matches(&h.matches))),
    );
    if let Some(filters) = split.get("filters") {
        rule.insert("filters".into(), filters.clone());
    }
    rule.insert("backendRefs".into(), json!([backend]));
    Value::Object(rule)
}

fn mirror_rule(split: &Value, route_ns: &str, b: &Backends, m: &MirrorRoute) -> Value {
    let mut matches = Vec::new();
    for rm in m.step.match_.iter().flatten() {
        let mut one = Map::new();
        if let Some(method) = rm.method.as_ref().and_then(|x| x.exact.as_ref()) {
            one.insert("method".into(), json!(method));
        }
        if let Some(path) = &rm.path {
            let (type_, value) = string_match(path, "Exact");
            let type_ = if path.prefix.is_some() {
                "PathPrefix".to_string()
            } else {
                type_
            };
            let value = path.prefix.clone().unwrap_or(value);
            one.insert("path".into(), json!({"type": type_, "value": value}));
        } else {
            one.insert("path".into(), json!({"type": "PathPrefix", "value": "/"}));
        }
        let headers: Vec<Value> = rm
            .headers
            .iter()
            .flatten()
            .map(|(name, v)| header_match(name, v))
            .collect();
        if !headers.is_empty() {
            one.insert("headers".into(), Value::Array(headers));
        }
        matches.push(Value::Object(one));
    }
    if matches.is_empty() {
        matches = split
            .get("matches")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
    }
    mirroring_rule(split, route_ns, b, m, matches)
}

/// A GRPCRoute's mirror rule: its matches are the split rule's (gRPC methods), narrowed to
/// the step's headers (validation refuses HTTP methods and paths for a GRPCRoute).
fn grpc_mirror_rule(split: &Value, route_ns: &str, b: &Backends, m: &MirrorRoute) -> Value {
    let headers: Vec<Value> = m
        .step
        .match_
        .iter()
        .flatten()
        .flat_map(|rm| rm.headers.iter().flatten())
        .map(|(name, v)| header_match(name, v))
        .collect();
    let matches = if headers.is_empty() {
        split
            .get("matches")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    } else {
        narrowed_matches(split, &headers)
    };
    mirroring_rule(split, route_ns, b, m, matches)
}

/// The managed rule of a mirror step (HTTP or gRPC): the given matches, the split rule's own
/// filters plus a RequestMirror to the canary (with the step's percentage unless it is 100),
/// and all of the mirrored requests answered by the stable.
fn mirroring_rule(
    split: &Value,
    route_ns: &str,
    b: &Backends,
    m: &MirrorRoute,
    matches: Vec<Value>,
) -> Value {
    let mut mirror = Map::new();
    mirror.insert(
        "backendRef".into(),
        backend_like(split, b.canary, route_ns, b),
    );
    if let Some(p) = m.step.percentage.filter(|p| *p != 100) {
        mirror.insert("percent".into(), json!(p));
    }
    let mut filters: Vec<Value> = split
        .get("filters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    filters.push(json!({"type": "RequestMirror", "requestMirror": Value::Object(mirror)}));
    let mut stable = backend_like(split, b.stable, route_ns, b);
    stable["weight"] = json!(1);
    json!({
        "name": managed_rule_name(b.rollout, &m.name),
        "matches": matches,
        "filters": filters,
        "backendRefs": [stable],
    })
}

/// The canary weight a route holds, read back from it: the canary ref's weight in the first
/// rule that splits the two Services (as a share of `max_weight` of the two refs).
pub fn observed_canary_weight(obj: &Value, route: &RoutedObject, b: &Backends) -> Option<i32> {
    let rules = obj.pointer("/spec/rules")?.as_array()?;
    let ns = route.route.namespace.as_str();
    rules
        .iter()
        .filter(|r| !is_managed_rule(r, b.rollout))
        .filter_map(|r| r.get("backendRefs")?.as_array())
        .find(|refs| {
            refs.iter().any(|r| names_service(r, b.canary, ns, b))
                && refs.iter().any(|r| names_service(r, b.stable, ns, b))
        })
        .and_then(|refs| refs.iter().find(|r| names_service(r, b.canary, ns, b)))
        .map(|r| {
            r.get("weight")
                .and_then(Value::as_i64)
                .and_then(|w| i32::try_from(w).ok())
                .unwrap_or(1)
        })
}
