use serde_json::{Value, json};

use super::*;
use crate::rollout::testing::{RolloutBuilder, Sim, hash, pause, weight};
use crate::rollout::traffic::routing;
use sluice_api::rollout::{CanaryStep, HeaderRoutingMatch, SetHeaderRoute, SetMirrorRoute};

const CANARY: &str = "demo-canary";
const STABLE: &str = "demo-stable";

fn vs_ref() -> RouteRef {
    RouteRef {
        kind: RouteKind::VirtualService,
        namespace: "default".into(),
        name: "web".into(),
    }
}

fn dr_ref() -> RouteRef {
    RouteRef {
        kind: RouteKind::DestinationRule,
        namespace: "default".into(),
        name: "web".into(),
    }
}

/// A VirtualService: `primary` splitting the two hosts, `other` the user's own, a TLS route on
/// 443 and a TCP route on 5432 splitting them too.
fn host_vs() -> Value {
    json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "hosts": ["web.example.com"],
            "http": [
                {"name": "other", "match": [{"uri": {"prefix": "/admin"}}], "route": [{"destination": {"host": STABLE}}]},
                {"name": "primary", "route": [
                    {"destination": {"host": STABLE, "port": {"number": 80}}, "weight": 100},
                    {"destination": {"host": format!("{CANARY}.default.svc.cluster.local"), "port": {"number": 80}}, "weight": 0}
                ]}
            ],
            "tls": [{"match": [{"port": 443, "sniHosts": ["web.example.com"]}], "route": [
                {"destination": {"host": STABLE}, "weight": 100},
                {"destination": {"host": CANARY}, "weight": 0}
            ]}],
            "tcp": [{"match": [{"port": 5432}], "route": [
                {"destination": {"host": STABLE}, "weight": 100},
                {"destination": {"host": CANARY}, "weight": 0}
            ]}]
        }
    })
}

fn subset_vs() -> Value {
    json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"hosts": ["web"], "http": [{"name": "primary", "route": [
            {"destination": {"host": "web", "subset": "stable"}, "weight": 100},
            {"destination": {"host": "web", "subset": "canary"}, "weight": 0}
        ]}]}
    })
}

fn dr() -> Value {
    json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"host": "web", "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}, "subsets": [
            {"name": "canary", "labels": {"app": "web"}},
            {"name": "stable"}
        ]}
    })
}

fn istio_rollout(steps: Vec<CanaryStep>, istio: Value) -> RolloutBuilder {
    RolloutBuilder::new("app:v1").steps(steps).canary(|c| {
        c.canary_service = Some(CANARY.into());
        c.stable_service = Some(STABLE.into());
        c.traffic_routing = Some(
            serde_json::from_value(
                json!({"istio": istio, "managedRoutes": [{"name": "beta"}, {"name": "shadow"}]}),
            )
            .unwrap(),
        );
    })
}

fn host_istio() -> Value {
    json!({"virtualService": {"name": "web", "routes": ["primary"],
        "tlsRoutes": [{"port": 443, "sniHosts": ["web.example.com"]}],
        "tcpRoutes": [{"port": 5432}]}})
}

fn subset_istio() -> Value {
    json!({"virtualService": {"name": "web", "routes": ["primary"]},
        "destinationRule": {"name": "web", "canarySubsetName": "canary", "stableSubsetName": "stable"}})
}

fn sim_with(steps: Vec<CanaryStep>, istio: Value, objects: Vec<(RouteRef, Value)>) -> Sim {
    let mut sim = Sim::new(istio_rollout(steps, istio).build());
    sim.add_services(&[CANARY, STABLE]);
    for (r, o) in objects {
        sim.add_route(r, o);
    }
    sim.run_until_quiet(20);
    sim
}

fn vs(sim: &Sim) -> &Value {
    sim.obs.routes[&vs_ref()].as_ref().unwrap()
}

/// (canary, stable) weights of a route's destinations, by side.
fn weights_of(route: &Value) -> (i64, i64) {
    let dests = route["route"].as_array().unwrap();
    let w = |canary: bool| {
        dests
            .iter()
            .find(|d| {
                let dest = &d["destination"];
                let c = dest["subset"] == "canary"
                    || dest["host"].as_str().is_some_and(|h| h.starts_with(CANARY));
                c == canary
            })
            .and_then(|d| d["weight"].as_i64())
            .unwrap()
    };
    (w(true), w(false))
}

fn named<'a>(vs: &'a Value, name: &str) -> &'a Value {
    vs["spec"]["http"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap()
}

fn promote(sim: &mut Sim) {
    sim.obs.rollout.status.as_mut().unwrap().pause_conditions = None;
}

#[test]
fn host_level_weights_walk_http_tls_and_tcp_routes_and_leave_the_others() {
    let mut sim = sim_with(
        vec![weight(20), pause(), weight(60), pause()],
        host_istio(),
        vec![(vs_ref(), host_vs())],
    );
    sim.set_image("app:v2");
    sim.run_until_quiet(20);
    let v = vs(&sim);
    assert_eq!(weights_of(named(v, "primary")), (20, 80));
    assert_eq!(weights_of(&v["spec"]["tls"][0]), (20, 80));
    assert_eq!(weights_of(&v["spec"]["tcp"][0]), (20, 80));
    assert_eq!(
        named(v, "other"),
        &host_vs()["spec"]["http"][0],
        "the user's route is untouched"
    );
    promote(&mut sim);
    sim.run_until_quiet(20);
    assert_eq!(weights_of(named(vs(&sim), "primary")), (60, 40));
    promote(&mut sim);
    sim.run_until_quiet(30);
    assert_eq!(weights_of(named(vs(&sim), "primary")), (0, 100));
    assert_eq!(weights_of(&vs(&sim)["spec"]["tcp"][0]), (0, 100));
    assert_eq!(
        sim.status().stable_rs.as_deref(),
        Some(hash("app:v2").as_str())
    );
}

#[test]
fn subset_level_moves_the_subset_labels_stable_first_and_the_weights() {
    let mut sim = sim_with(
        vec![weight(20), pause()],
        subset_istio(),
        vec![(vs_ref(), subset_vs()), (dr_ref(), dr())],
    );
    let labels = |sim: &Sim, i: usize| {
        sim.obs.routes[&dr_ref()].as_ref().unwrap()["spec"]["subsets"][i]["labels"].clone()
    };
    let v1 = hash("app:v1");
    assert_eq!(
        labels(&sim, 0),
        json!({"app": "web", POD_TEMPLATE_HASH_LABEL: v1})
    );
    assert_eq!(labels(&sim, 1), json!({POD_TEMPLATE_HASH_LABEL: v1}));
    // The DestinationRule's other fields are someone else's.
    assert_eq!(
        sim.obs.routes[&dr_ref()].as_ref().unwrap()["spec"]["trafficPolicy"],
        dr()["spec"]["trafficPolicy"]
    );
    sim.set_image("app:v2");
    let v2 = hash("app:v2");
    sim.run_until_quiet(20);
    assert_eq!(labels(&sim, 0)[POD_TEMPLATE_HASH_LABEL], v2);
    assert_eq!(labels(&sim, 1)[POD_TEMPLATE_HASH_LABEL], v1);
    assert_eq!(weights_of(named(vs(&sim), "primary")), (20, 80));
    // The end: the canary's weight goes back only once the stable subset selects v2 (already,
    // or by a DestinationRule patch earlier in the same plan).
    promote(&mut sim);
    let mut done = false;
    for _ in 0..30 {
        let stable_on_v2 = labels(&sim, 1)[POD_TEMPLATE_HASH_LABEL] == v2;
        let p = sim.reconcile();
        sim.settle_pods();
        if weights_of(named(vs(&sim), "primary")) == (0, 100) {
            let kinds: Vec<RouteKind> = p
                .changes
                .iter()
                .filter_map(|c| match c {
                    Change::PatchRoute { route, .. } => Some(route.kind),
                    _ => None,
                })
                .collect();
            assert!(
                stable_on_v2 || kinds.first() == Some(&RouteKind::DestinationRule),
                "the weight went back before the stable subset moved: {kinds:?}"
            );
            done = true;
            break;
        }
        sim.now += 1;
    }
    assert!(done, "the weight goes back at the end");
    assert_eq!(labels(&sim, 1)[POD_TEMPLATE_HASH_LABEL], v2);
    assert_eq!(weights_of(named(vs(&sim), "primary")), (0, 100));
}

#[test]
fn header_and_mirror_routes_come_first_and_go_at_the_end() {
    let header = CanaryStep {
        set_header_route: Some(SetHeaderRoute {
            name: Some("beta".into()),
            match_: Some(vec![HeaderRoutingMatch {
                header_name: "x-beta".into(),
                header_value: StringMatch {
                    exact: Some("yes".into()),
                    ..Default::default()
                },
            }]),
        }),
        ..Default::default()
    };
    let mirror = CanaryStep {
        set_mirror_route: Some(SetMirrorRoute {
            name: "shadow".into(),
            match_: Some(vec![sluice_api::rollout::RouteMatch {
                method: Some(StringMatch {
                    exact: Some("GET".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            percentage: Some(25),
        }),
        ..Default::default()
    };
    let mut sim = sim_with(
        vec![weight(20), header, mirror, pause()],
        host_istio(),
        vec![(vs_ref(), host_vs())],
    );
    sim.set_image("app:v2");
    sim.run_until_quiet(20);
    let http = vs(&sim)["spec"]["http"].as_array().unwrap().clone();
    let names: Vec<&str> = http.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["beta", "shadow", "other", "primary"]);
    assert_eq!(
        http[0]["match"][0]["headers"]["x-beta"],
        json!({"exact": "yes"})
    );
    assert_eq!(
        http[0]["route"][0]["destination"]["host"],
        format!("{CANARY}.default.svc.cluster.local")
    );
    assert_eq!(http[1]["match"][0]["method"], json!({"exact": "GET"}));
    assert_eq!(http[1]["mirrorPercentage"]["value"], 25.0);
    assert_eq!(weights_of(&http[1]), (20, 80));
    promote(&mut sim);
    sim.run_until_quiet(30);
    let names: Vec<String> = vs(&sim)["spec"]["http"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["other", "primary"]);
}

fn refused(objects: Vec<(RouteRef, Value)>, istio: Value) -> String {
    let mut sim = Sim::new(istio_rollout(vec![weight(20), pause()], istio).build());
    sim.add_services(&[CANARY, STABLE]);
    for (r, o) in objects {
        sim.obs.routes.insert(r, Some(o));
    }
    sim.obs.routes.entry(vs_ref()).or_insert(None);
    sim.obs.routes.entry(dr_ref()).or_insert(None);
    let p = sim.reconcile();
    assert!(
        p.changes.iter().all(|c| matches!(c, Change::Event { .. })),
        "nothing is written: {:?}",
        p.changes
    );
    p.status
        .conditions()
        .iter()
        .find(|c| c.type_ == sluice_api::rollout::RolloutConditionType::InvalidSpec)
        .expect("InvalidSpec")
        .message
        .clone()
}

#[test]
fn bad_virtual_services_and_destination_rules_are_refused_naming_the_object_and_field() {
    let f = "spec.strategy.canary.trafficRouting.istio";
    let mut three = host_vs();
    three["spec"]["http"][1]["route"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": {"host": "third"}, "weight": 0}));
    let mut wrong_host = host_vs();
    wrong_host["spec"]["http"][1]["route"][1]["destination"]["host"] = json!("elsewhere");
    let mut no_subset = dr();
    no_subset["spec"]["subsets"][1]["name"] = json!("old");
    let cases = [
        (
            vec![],
            host_istio(),
            format!("{f}.virtualService: VirtualService default/web not found"),
        ),
        (
            vec![(vs_ref(), subset_vs())],
            subset_istio(),
            format!("{f}.destinationRule: DestinationRule default/web not found"),
        ),
        (
            vec![(vs_ref(), host_vs())],
            json!({"virtualService": {"name": "web", "routes": ["missing"]}}),
            format!(
                "{f}.virtualService: VirtualService default/web: spec.http: no HTTP route named \"missing\" (named in {f}.virtualService.routes)"
            ),
        ),
        (
            vec![(vs_ref(), three)],
            json!({"virtualService": {"name": "web", "routes": ["primary"]}}),
            format!(
                "{f}.virtualService: VirtualService default/web: spec.http[1].route: must have exactly two destinations, the hosts \"demo-canary\" and \"demo-stable\""
            ),
        ),
        (
            vec![(vs_ref(), wrong_host)],
            json!({"virtualService": {"name": "web", "routes": ["primary"]}}),
            format!(
                "{f}.virtualService: VirtualService default/web: spec.http[1].route: must have exactly two destinations, the hosts \"demo-canary\" and \"demo-stable\""
            ),
        ),
        (
            vec![(vs_ref(), host_vs())],
            json!({"virtualService": {"name": "web"}}),
            format!(
                "{f}.virtualService: VirtualService default/web: spec.http: has 2 HTTP routes: name the ones to split in {f}.virtualService.routes"
            ),
        ),
        (
            vec![(vs_ref(), host_vs())],
            json!({"virtualService": {"name": "web", "routes": ["primary"], "tcpRoutes": [{"port": 1}]}}),
            format!(
                "{f}.virtualService: VirtualService default/web: spec.tcp: no TCP route matches {f}.virtualService.tcpRoutes[0]"
            ),
        ),
        (
            vec![(vs_ref(), subset_vs()), (dr_ref(), no_subset)],
            subset_istio(),
            format!(
                "{f}.destinationRule: DestinationRule default/web: spec.subsets: no subset named \"stable\" (stableSubsetName)"
            ),
        ),
    ];
    for (objects, istio, want) in cases {
        assert_eq!(refused(objects, istio), want);
    }
}

#[test]
fn istio_settings_are_checked_naming_the_field() {
    let f = "spec.strategy.canary.trafficRouting.istio";
    let cases = [
        (json!({}), format!("{f}.virtualService")),
        (
            json!({"virtualService": {"name": "a"}, "virtualServices": [{"name": "b"}]}),
            format!("{f}.virtualServices"),
        ),
        (
            json!({"virtualServices": [{"name": "a"}, {"name": "a"}]}),
            format!("{f}.virtualServices[1].name"),
        ),
        (
            json!({"virtualService": {"name": "a"}, "destinationRule": {"name": "d", "canarySubsetName": "x", "stableSubsetName": "x"}}),
            format!("{f}.destinationRule.stableSubsetName"),
        ),
        (
            json!({"virtualService": {"name": "a", "tcpRoutes": [{}]}}),
            format!("{f}.virtualService.tcpRoutes[0].port"),
        ),
    ];
    for (istio, field) in cases {
        let ro = istio_rollout(vec![weight(20)], istio).build();
        assert_eq!(routing(&ro).unwrap_err().field, field);
    }
}

#[test]
fn a_name_with_a_namespace_points_into_that_namespace() {
    let ro = istio_rollout(
        vec![weight(20)],
        json!({"virtualService": {"name": "web.mesh", "routes": ["primary"]}}),
    )
    .build();
    let r = routing(&ro).unwrap().unwrap();
    assert_eq!(
        r.routes[0].route,
        RouteRef {
            kind: RouteKind::VirtualService,
            namespace: "mesh".into(),
            name: "web".into()
        }
    );
}

#[test]
fn a_virtual_service_broken_mid_update_stops_everything_and_keeps_the_stable() {
    let mut sim = sim_with(
        vec![weight(20), pause(), weight(60), pause()],
        host_istio(),
        vec![(vs_ref(), host_vs())],
    );
    sim.set_image("app:v2");
    sim.run_until_quiet(20);
    assert_eq!(weights_of(named(vs(&sim), "primary")), (20, 80));
    let stable_before = sim.specs()[&crate::rollout::testing::rs_name("app:v1")];
    // Someone renames the split route: the Rollout is refused naming it, nothing is written.
    let v = sim.obs.routes.get_mut(&vs_ref()).unwrap().as_mut().unwrap();
    v["spec"]["http"][1]["name"] = json!("renamed");
    promote(&mut sim);
    let p = sim.reconcile();
    assert!(
        p.changes.iter().all(|c| matches!(c, Change::Event { .. })),
        "{:?}",
        p.changes
    );
    assert!(
        p.status
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("spec.http: no HTTP route named \"primary\""),
        "{:?}",
        p.status.message
    );
    assert_eq!(
        sim.specs()[&crate::rollout::testing::rs_name("app:v1")],
        stable_before
    );
    assert_eq!(
        weights_of(&vs(&sim)["spec"]["http"][1]),
        (20, 80),
        "the stable keeps its 80 %"
    );
}
