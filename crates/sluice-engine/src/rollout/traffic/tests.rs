use serde_json::{Value, json};

use super::gateway::{Backends, plan_route};
use super::*;
use crate::rollout::plan::Change;
use crate::rollout::testing::{
    NAME, RolloutBuilder, Sim, apply_json_patch, pause, rs_name, weight,
};
use sluice_api::rollout::{CanaryStep, SetHeaderRoute, SetMirrorRoute, StringMatch};

const CANARY: &str = "demo-canary";

fn set_image_steps() -> Vec<CanaryStep> {
    vec![weight(10), pause(), weight(50), pause()]
}
const STABLE: &str = "demo-stable";

fn backends() -> Backends<'static> {
    Backends {
        rollout: NAME,
        namespace: "default",
        canary: CANARY,
        stable: STABLE,
    }
}

fn http_route() -> RouteRef {
    RouteRef {
        kind: RouteKind::HttpRoute,
        namespace: "default".into(),
        name: "web".into(),
    }
}

fn routed(header_routes: bool) -> RoutedObject {
    RoutedObject {
        route: http_route(),
        header_routes,
        field: "f".into(),
        role: RouteRole::Route,
    }
}

/// An HTTPRoute as the API server returns it (defaults filled in): one rule splitting the
/// two Services, one rule sending `/admin` to the stable alone.
fn route_obj() -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"}],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [{"name": "x-by", "value": "user"}]}}],
                    "backendRefs": [
                        {"group": "", "kind": "Service", "name": STABLE, "port": 80, "weight": 1},
                        {"group": "", "kind": "Service", "name": CANARY, "port": 80, "weight": 1}
                    ]
                },
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}],
                    "backendRefs": [{"group": "", "kind": "Service", "name": STABLE, "port": 80, "weight": 1}]
                }
            ]
        }
    })
}

fn hold(canary_weight: i32) -> TrafficHold {
    TrafficHold {
        canary_weight,
        max_weight: 100,
        ..Default::default()
    }
}

fn weights(obj: &Value, rule: usize) -> Vec<(String, i64)> {
    obj["spec"]["rules"][rule]["backendRefs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["weight"].as_i64().unwrap_or(1),
            )
        })
        .collect()
}

fn applied(obj: &Value, route: &RoutedObject, h: &TrafficHold) -> Value {
    let mut out = obj.clone();
    if let Some(patch) = plan_route(obj, route, &backends(), h).unwrap() {
        apply_json_patch(&mut out, &patch);
    }
    out
}

#[test]
fn weights_go_on_the_rule_that_splits_the_two_services_and_nowhere_else() {
    let obj = applied(&route_obj(), &routed(false), &hold(10));
    assert_eq!(
        weights(&obj, 0),
        [(STABLE.to_string(), 90), (CANARY.to_string(), 10)]
    );
    // The stable-only rule keeps its weight: 0 there would cut /admin off at 100 % canary.
    assert_eq!(weights(&obj, 1), [(STABLE.to_string(), 1)]);
    // Everything else in the rule is the user's and stays.
    assert_eq!(
        obj["spec"]["rules"][0]["filters"],
        route_obj()["spec"]["rules"][0]["filters"]
    );
    // Read back, the route holds the weight: nothing more to write.
    assert_eq!(
        plan_route(&obj, &routed(false), &backends(), &hold(10)),
        Ok(None)
    );
}

#[test]
fn a_route_patch_tests_the_rules_it_rewrites_first() {
    let patch = plan_route(&route_obj(), &routed(false), &backends(), &hold(50))
        .unwrap()
        .unwrap();
    assert_eq!(patch[0]["op"], "test");
    assert_eq!(patch[0]["path"], "/spec/rules");
    assert_eq!(patch[0]["value"], route_obj()["spec"]["rules"]);
    assert_eq!(patch[1]["op"], "replace");
}

#[test]
fn a_route_without_a_rule_naming_both_services_is_refused_naming_it() {
    let mut obj = route_obj();
    obj["spec"]["rules"][0]["backendRefs"]
        .as_array_mut()
        .unwrap()
        .pop();
    let err = plan_route(&obj, &routed(false), &backends(), &hold(0)).unwrap_err();
    assert_eq!(
        err,
        "HTTPRoute default/web: spec.rules: no rule has backendRefs naming both the canary Service \"demo-canary\" and the stable Service \"demo-stable\""
    );
}

fn header_hold() -> TrafficHold {
    TrafficHold {
        canary_weight: 10,
        max_weight: 100,
        header_routes: vec![HeaderRoute {
            name: "beta".into(),
            matches: vec![sluice_api::rollout::HeaderRoutingMatch {
                header_name: "x-beta".into(),
                header_value: StringMatch {
                    exact: Some("yes".into()),
                    ..Default::default()
                },
            }],
        }],
        mirror_routes: vec![MirrorRoute {
            name: "shadow".into(),
            step: SetMirrorRoute {
                name: "shadow".into(),
                match_: Some(vec![sluice_api::rollout::RouteMatch {
                    method: Some(StringMatch {
                        exact: Some("GET".into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                percentage: Some(35),
            },
        }],
        ..Default::default()
    }
}

#[test]
fn managed_header_and_mirror_rules_come_first_and_go_again() {
    let obj = applied(&route_obj(), &routed(true), &header_hold());
    let rules = obj["spec"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 4);
    assert_eq!(rules[0]["name"], "sluice.demo.beta");
    assert_eq!(
        rules[0]["matches"],
        json!([{"path": {"type": "PathPrefix", "value": "/"}, "headers": [{"name": "x-beta", "type": "Exact", "value": "yes"}]}])
    );
    assert_eq!(rules[0]["backendRefs"][0]["name"], CANARY);
    assert_eq!(rules[0]["backendRefs"][0]["port"], 80);
    assert_eq!(rules[1]["name"], "sluice.demo.shadow");
    assert_eq!(rules[1]["matches"][0]["method"], "GET");
    let mirror = rules[1]["filters"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        mirror,
        json!({"type": "RequestMirror", "requestMirror": {"backendRef": {"group": "", "kind": "Service", "name": CANARY, "port": 80}, "percent": 35}})
    );
    assert_eq!(rules[1]["backendRefs"][0]["name"], STABLE);
    // Held: nothing to write, even after the API server fills in defaults of its own.
    let mut defaulted = obj.clone();
    defaulted["spec"]["rules"][0]["backendRefs"][0]["namespace"] = json!("default");
    assert_eq!(
        plan_route(&defaulted, &routed(true), &backends(), &header_hold()),
        Ok(None)
    );
    // A route that does not use header routes gets none.
    let plain = applied(&route_obj(), &routed(false), &header_hold());
    assert_eq!(plain["spec"]["rules"].as_array().unwrap().len(), 2);
    // The end of the update takes them away and leaves the user's rules as they were.
    let back = applied(&obj, &routed(true), &hold(0));
    assert_eq!(back["spec"]["rules"].as_array().unwrap().len(), 2);
    assert_eq!(back["spec"]["rules"][1], route_obj()["spec"]["rules"][1]);
}

#[test]
fn another_rollouts_managed_rules_are_not_ours() {
    let mut obj = route_obj();
    obj["spec"]["rules"]
        .as_array_mut()
        .unwrap()
        .insert(0, json!({"name": "sluice.demo.x.beta", "backendRefs": []}));
    let out = applied(&obj, &routed(true), &hold(0));
    assert_eq!(out["spec"]["rules"][0]["name"], "sluice.demo.x.beta");
}

fn header_step(name: &str, value: Option<&str>) -> CanaryStep {
    CanaryStep {
        set_header_route: Some(SetHeaderRoute {
            name: Some(name.into()),
            match_: value.map(|v| {
                vec![sluice_api::rollout::HeaderRoutingMatch {
                    header_name: "x-beta".into(),
                    header_value: StringMatch {
                        exact: Some(v.into()),
                        ..Default::default()
                    },
                }]
            }),
        }),
        ..Default::default()
    }
}

/// A Rollout of `image` routed through the HTTPRoute `web`, with `steps`.
fn routed_rollout(image: &str, steps: Vec<CanaryStep>) -> RolloutBuilder {
    RolloutBuilder::new(image).steps(steps).canary(|c| {
        c.canary_service = Some(CANARY.into());
        c.stable_service = Some(STABLE.into());
        c.traffic_routing = Some(
            serde_json::from_value(json!({
                "plugins": {GATEWAY_API_PLUGIN: {"httpRoute": "web"}},
                "managedRoutes": [{"name": "beta"}]
            }))
            .unwrap(),
        );
    })
}

fn routed_sim(steps: Vec<CanaryStep>) -> Sim {
    let mut sim = Sim::new(routed_rollout("app:v1", steps).build());
    sim.add_services(&[CANARY, STABLE]);
    sim.add_route(http_route(), route_obj());
    sim.run_until_quiet(20);
    sim
}

fn route_weights(sim: &Sim) -> Vec<(String, i64)> {
    weights(
        sim.obs.routes[&http_route()].as_ref().unwrap(),
        route_rules(sim) - 2,
    )
}

fn route_rules(sim: &Sim) -> usize {
    sim.obs.routes[&http_route()].as_ref().unwrap()["spec"]["rules"]
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn a_first_deploy_routes_everything_to_the_stable() {
    let sim = routed_sim(vec![weight(10), pause()]);
    assert_eq!(
        route_weights(&sim),
        [(STABLE.to_string(), 100), (CANARY.to_string(), 0)]
    );
    let w = sim
        .status()
        .canary
        .as_ref()
        .unwrap()
        .weights
        .as_ref()
        .unwrap();
    assert_eq!((w.canary.weight, w.stable.weight), (0, 100));
}

#[test]
fn a_step_shifts_traffic_once_the_canary_can_serve_it_and_completes_on_the_read_back() {
    let mut sim = routed_sim(set_image_steps());
    sim.set_image("app:v2");
    // The canary is scaled first; the route still sends everything to the stable.
    let p = sim.reconcile();
    let p2 = sim.reconcile();
    assert!(
        !p.changes
            .iter()
            .chain(&p2.changes)
            .any(|c| matches!(c, Change::PatchRoute { .. })),
        "no traffic before the canary has pods: {:?}",
        p2.changes
    );
    sim.settle_pods();
    sim.run_until_quiet(20);
    assert_eq!(sim.specs()[&rs_name("app:v2")], 1);
    assert_eq!(sim.specs()[&rs_name("app:v1")], 10);
    assert_eq!(
        route_weights(&sim),
        [(STABLE.to_string(), 90), (CANARY.to_string(), 10)]
    );
    assert_eq!(sim.status().current_step_index, Some(1));
}

#[test]
fn abort_moves_traffic_to_the_stable_before_the_canary_gets_its_deadline() {
    let mut sim = routed_sim(set_image_steps());
    sim.set_image("app:v2");
    sim.run_until_quiet(20);
    sim.obs.rollout.status.as_mut().unwrap().abort = Some(true);
    let p = sim.reconcile();
    let patched = p
        .changes
        .iter()
        .any(|c| matches!(c, Change::PatchRoute { .. }));
    assert!(patched, "{:?}", p.changes);
    // In the plan that moves the traffic, the canary keeps its pods and gets no deadline.
    assert!(
        sim.rs_annotation("app:v2", "scale-down-deadline").is_none(),
        "{:?}",
        p.changes
    );
    assert_eq!(sim.specs()[&rs_name("app:v2")], 1);
    // Read back at 100 % stable: now the deadline (30 s by default).
    sim.now += 1;
    sim.reconcile();
    assert!(sim.rs_annotation("app:v2", "scale-down-deadline").is_some());
    assert_eq!(sim.specs()[&rs_name("app:v2")], 1);
    sim.now += 31;
    sim.reconcile();
    assert_eq!(sim.specs()[&rs_name("app:v2")], 0);
    assert_eq!(
        route_weights(&sim),
        [(STABLE.to_string(), 100), (CANARY.to_string(), 0)]
    );
}

#[test]
fn header_routes_hold_while_the_steps_say_and_go_at_the_end() {
    let steps = vec![
        weight(10),
        header_step("beta", Some("yes")),
        pause(),
        weight(50),
    ];
    let mut sim = routed_sim(steps);
    sim.set_image("app:v2");
    sim.run_until_quiet(20);
    assert_eq!(sim.status().current_step_index, Some(2));
    assert_eq!(route_rules(&sim), 3, "the header rule is in");
    // Promote past the pause: 50 %, then the end of the update.
    sim.obs.rollout.status.as_mut().unwrap().pause_conditions = None;
    sim.run_until_quiet(40);
    assert_eq!(
        sim.status().stable_rs.as_deref(),
        Some(crate::rollout::testing::hash("app:v2").as_str())
    );
    assert_eq!(route_rules(&sim), 2, "no managed rule is left");
    assert_eq!(
        route_weights(&sim),
        [(STABLE.to_string(), 100), (CANARY.to_string(), 0)]
    );
    // The old version waits out scaleDownDelaySeconds.
    assert_eq!(sim.specs()[&rs_name("app:v1")], 10);
    sim.now += 31;
    sim.run_until_quiet(5);
    assert_eq!(sim.specs()[&rs_name("app:v1")], 0);
}

#[test]
fn routers_sluice_does_not_run_are_refused_naming_them() {
    let ro = routed_rollout("app:v1", vec![weight(10)])
        .canary(|c| {
            c.traffic_routing.as_mut().unwrap().ambassador = Some(Default::default());
        })
        .build();
    let err = routing(&ro).unwrap_err();
    assert_eq!(err.field, "spec.strategy.canary.trafficRouting.ambassador");
    let ro = routed_rollout("app:v1", vec![weight(10)])
        .canary(|c| {
            c.traffic_routing.as_mut().unwrap().plugins =
                Some([("acme/router".to_string(), json!({}))].into());
        })
        .build();
    assert_eq!(
        routing(&ro).unwrap_err().field,
        "spec.strategy.canary.trafficRouting.plugins[\"acme/router\"]"
    );
}

#[test]
fn bad_traffic_input_is_invalid_spec_naming_the_field() {
    let cases: Vec<(RolloutBuilder, &str)> = vec![
        (
            routed_rollout("app:v1", vec![weight(10)]).canary(|c| c.canary_service = None),
            "spec.strategy.canary.canaryService",
        ),
        (
            routed_rollout("app:v1", vec![weight(10)])
                .canary(|c| c.canary_service = Some(STABLE.into())),
            "spec.strategy.canary.stableService",
        ),
        (
            routed_rollout("app:v1", vec![weight(60)])
                .canary(|c| c.traffic_routing.as_mut().unwrap().max_traffic_weight = Some(50)),
            "spec.strategy.canary.steps[0].setWeight",
        ),
        (
            routed_rollout("app:v1", vec![header_step("other", Some("x"))]),
            "spec.strategy.canary.steps[0].setHeaderRoute.name",
        ),
    ];
    for (builder, field) in cases {
        assert_eq!(routing(&builder.build()).unwrap_err().field, field);
    }
}

#[test]
fn a_missing_route_stops_everything_and_names_it() {
    let mut sim = routed_sim(set_image_steps());
    sim.obs.routes.insert(http_route(), None);
    sim.set_image("app:v2");
    let p = sim.reconcile();
    assert!(
        p.changes.iter().all(|c| matches!(c, Change::Event { .. })),
        "{:?}",
        p.changes
    );
    let cond = p
        .status
        .conditions()
        .iter()
        .find(|c| c.type_ == sluice_api::rollout::RolloutConditionType::InvalidSpec)
        .unwrap()
        .message
        .clone();
    assert_eq!(
        cond,
        "spec.strategy.canary.trafficRouting.plugins[\"argoproj-labs/gatewayAPI\"].httpRoute: HTTPRoute default/web not found"
    );
}

fn canary_scale(replicas: Option<i32>, weight: Option<i32>, match_traffic: bool) -> CanaryStep {
    CanaryStep {
        set_canary_scale: Some(sluice_api::rollout::SetCanaryScale {
            weight,
            replicas,
            match_traffic_weight: match_traffic.then_some(true),
        }),
        ..Default::default()
    }
}

fn promote(sim: &mut Sim) {
    sim.obs.rollout.status.as_mut().unwrap().pause_conditions = None;
}

#[test]
fn set_canary_scale_decouples_the_canary_count_from_its_weight() {
    let steps = vec![
        canary_scale(Some(3), None, false),
        weight(10),
        pause(),
        canary_scale(None, Some(50), false),
        pause(),
        canary_scale(None, None, true),
        pause(),
    ];
    let mut sim = routed_sim(steps);
    sim.set_image("app:v2");
    sim.run_until_quiet(20);
    assert_eq!(sim.status().current_step_index, Some(2));
    assert_eq!(
        sim.specs()[&rs_name("app:v2")],
        3,
        "setCanaryScale replicas: 3"
    );
    assert_eq!(
        route_weights(&sim),
        [(STABLE.to_string(), 90), (CANARY.to_string(), 10)]
    );
    promote(&mut sim);
    sim.run_until_quiet(20);
    assert_eq!(sim.status().current_step_index, Some(4));
    assert_eq!(
        sim.specs()[&rs_name("app:v2")],
        5,
        "setCanaryScale weight: 50 of 10"
    );
    assert_eq!(route_weights(&sim)[1].1, 10, "the traffic weight stays");
    promote(&mut sim);
    sim.run_until_quiet(20);
    assert_eq!(sim.status().current_step_index, Some(6));
    assert_eq!(
        sim.specs()[&rs_name("app:v2")],
        1,
        "matchTrafficWeight: back to 10 % of 10, once the route no longer needs more"
    );
    assert_eq!(sim.specs()[&rs_name("app:v1")], 10);
}

#[test]
fn dynamic_stable_scale_shrinks_the_stable_after_the_traffic_left_and_grows_it_before_it_returns() {
    let mut sim = Sim::new(
        routed_rollout("app:v1", vec![weight(30), pause()])
            .canary(|c| c.dynamic_stable_scale = Some(true))
            .build(),
    );
    sim.add_services(&[CANARY, STABLE]);
    sim.add_route(http_route(), route_obj());
    sim.run_until_quiet(20);
    sim.set_image("app:v2");
    // Until the route reads back 70/30, the stable keeps all ten.
    let mut max_seen_with_stable_short = 0;
    for _ in 0..20 {
        sim.reconcile();
        sim.settle_pods();
        sim.now += 1;
        let w = route_weights(&sim)[0].1;
        if sim.specs()[&rs_name("app:v1")] < 10 {
            max_seen_with_stable_short = max_seen_with_stable_short.max(w);
            assert!(
                w <= 70,
                "the stable shrank while it still had {w} % of the traffic"
            );
        }
    }
    assert_eq!(sim.specs()[&rs_name("app:v2")], 3);
    assert_eq!(sim.specs()[&rs_name("app:v1")], 7);
    assert_eq!(max_seen_with_stable_short, 70);
    // Abort: the stable grows first; the traffic follows its available pods; the canary goes
    // last.
    sim.obs.rollout.status.as_mut().unwrap().abort = Some(true);
    let p = sim.reconcile();
    assert!(
        p.changes
            .iter()
            .any(|c| matches!(c, Change::ScaleReplicaSet { name, replicas: 10, .. } if *name == rs_name("app:v1"))),
        "{:?}",
        p.changes
    );
    assert_eq!(
        route_weights(&sim)[1].1,
        30,
        "no traffic back before the stable has the pods"
    );
    sim.settle_pods();
    sim.now += 1;
    sim.reconcile();
    assert_eq!(route_weights(&sim)[1].1, 0);
    assert_eq!(sim.specs()[&rs_name("app:v2")], 3);
    sim.now += 1;
    sim.reconcile();
    sim.now += 31;
    sim.reconcile();
    assert_eq!(sim.specs()[&rs_name("app:v2")], 0);
}

#[test]
fn min_pods_per_replica_set_keeps_a_small_canary_at_least_that_big() {
    let mut sim = Sim::new(
        routed_rollout("app:v1", vec![weight(5), pause()])
            .canary(|c| c.min_pods_per_replica_set = Some(2))
            .build(),
    );
    sim.add_services(&[CANARY, STABLE]);
    sim.add_route(http_route(), route_obj());
    sim.run_until_quiet(20);
    sim.set_image("app:v2");
    sim.run_until_quiet(20);
    assert_eq!(sim.specs()[&rs_name("app:v2")], 2);
}

#[test]
fn scale_down_delay_revision_limit_scales_older_sets_down_at_once() {
    let mut sim = Sim::new(
        routed_rollout("app:v1", vec![])
            .canary(|c| c.scale_down_delay_revision_limit = Some(1))
            .build(),
    );
    sim.add_services(&[CANARY, STABLE]);
    sim.add_route(http_route(), route_obj());
    sim.run_until_quiet(20);
    sim.set_image("app:v2");
    sim.run_until_quiet(30);
    assert_eq!(sim.specs()[&rs_name("app:v1")], 10, "waits out its delay");
    sim.set_image("app:v3");
    sim.run_until_quiet(30);
    // v2 is the newest superseded set and waits; v1 is beyond the limit of one.
    assert_eq!(sim.specs()[&rs_name("app:v2")], 10);
    assert_eq!(sim.specs()[&rs_name("app:v1")], 0);
}

#[test]
fn header_and_mirror_steps_need_a_route_that_takes_them() {
    let ro = routed_rollout("app:v1", vec![header_step("beta", Some("x"))])
        .canary(|c| {
            c.traffic_routing.as_mut().unwrap().plugins = Some(
                [(
                    GATEWAY_API_PLUGIN.to_string(),
                    json!({"httpRoutes": [{"name": "web"}]}),
                )]
                .into(),
            );
        })
        .build();
    assert_eq!(
        routing(&ro).unwrap_err().field,
        "spec.strategy.canary.steps[0].setHeaderRoute"
    );
}

#[test]
fn grpc_and_tcp_routes_split_the_same_way() {
    let grpc = json!({
        "spec": {"rules": [{
            "matches": [{"method": {"type": "Exact", "service": "shop.Cart"}}],
            "backendRefs": [
                {"name": STABLE, "port": 9000},
                {"name": CANARY, "port": 9000}
            ]
        }]}
    });
    let route = RoutedObject {
        route: RouteRef {
            kind: RouteKind::GrpcRoute,
            namespace: "default".into(),
            name: "web".into(),
        },
        header_routes: true,
        field: "f".into(),
        role: RouteRole::Route,
    };
    let mut h = header_hold();
    h.mirror_routes[0].step.match_ = Some(vec![sluice_api::rollout::RouteMatch {
        headers: Some(
            [(
                "x-shadow".to_string(),
                StringMatch {
                    prefix: Some("a.b".into()),
                    ..Default::default()
                },
            )]
            .into(),
        ),
        ..Default::default()
    }]);
    let mut out = grpc.clone();
    apply_json_patch(
        &mut out,
        &plan_route(&grpc, &route, &backends(), &h).unwrap().unwrap(),
    );
    let rules = out["spec"]["rules"].as_array().unwrap();
    assert_eq!(
        rules[0]["matches"],
        json!([{"method": {"type": "Exact", "service": "shop.Cart"}, "headers": [{"name": "x-beta", "type": "Exact", "value": "yes"}]}])
    );
    assert_eq!(
        rules[1]["matches"][0]["headers"],
        json!([{"name": "x-shadow", "type": "RegularExpression", "value": "a\\.b.*"}])
    );
    assert_eq!(
        rules[1]["filters"][0]["requestMirror"]["backendRef"]["port"],
        9000
    );
    assert_eq!(
        weights(&out, 2),
        [(STABLE.to_string(), 90), (CANARY.to_string(), 10)]
    );

    let tcp = json!({"spec": {"rules": [{"backendRefs": [
        {"name": STABLE, "port": 5432}, {"name": CANARY, "port": 5432}
    ]}]}});
    let route = RoutedObject {
        route: RouteRef {
            kind: RouteKind::TcpRoute,
            namespace: "default".into(),
            name: "db".into(),
        },
        header_routes: false,
        field: "f".into(),
        role: RouteRole::Route,
    };
    let mut out = tcp.clone();
    apply_json_patch(
        &mut out,
        &plan_route(&tcp, &route, &backends(), &h).unwrap().unwrap(),
    );
    assert_eq!(
        out["spec"]["rules"].as_array().unwrap().len(),
        1,
        "no managed rules on TCP"
    );
    assert_eq!(
        weights(&out, 0),
        [(STABLE.to_string(), 90), (CANARY.to_string(), 10)]
    );
}

#[test]
fn the_plugin_config_forms_name_their_routes() {
    let routes = gateway::routes(
        &json!({
            "namespace": "edge",
            "httpRoutes": [{"name": "a", "useHeaderRoutes": true}, {"name": "b"}],
            "grpcRoute": "g",
            "tcpRoutes": [{"name": "t"}],
            "configMap": "argo-gatewayapi-configmap"
        }),
        "default",
    )
    .unwrap();
    let got: Vec<(RouteKind, &str, &str, bool)> = routes
        .iter()
        .map(|r| {
            (
                r.route.kind,
                r.route.namespace.as_str(),
                r.route.name.as_str(),
                r.header_routes,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (RouteKind::HttpRoute, "edge", "a", true),
            (RouteKind::HttpRoute, "edge", "b", false),
            (RouteKind::GrpcRoute, "edge", "g", true),
            (RouteKind::TcpRoute, "edge", "t", false),
        ]
    );
    let err = gateway::routes(&json!({"tlsRoute": "x"}), "default").unwrap_err();
    assert_eq!(
        err.to_string(),
        "spec.strategy.canary.trafficRouting.plugins[\"argoproj-labs/gatewayAPI\"].tlsRoute: is not supported by Sluice yet"
    );
}

fn split_ref() -> RouteRef {
    RouteRef {
        kind: RouteKind::TrafficSplit,
        namespace: "default".into(),
        name: "demo-split".into(),
    }
}

fn smi_rollout(image: &str, steps: Vec<CanaryStep>) -> RolloutBuilder {
    RolloutBuilder::new(image).steps(steps).canary(|c| {
        c.canary_service = Some(CANARY.into());
        c.stable_service = Some(STABLE.into());
        c.traffic_routing = Some(
            serde_json::from_value(json!({
                "smi": {"rootService": "demo", "trafficSplitName": "demo-split"}
            }))
            .unwrap(),
        );
    })
}

fn split_weights(sim: &Sim) -> Value {
    sim.obs.routes[&split_ref()].as_ref().unwrap()["spec"].clone()
}

#[test]
fn smi_creates_and_owns_its_traffic_split_and_walks_it() {
    let mut sim = Sim::new(smi_rollout("app:v1", set_image_steps()).build());
    sim.add_services(&[CANARY, STABLE]);
    sim.obs.routes.insert(split_ref(), None);
    let plans = sim.run_until_quiet(20);
    let created = plans
        .iter()
        .flat_map(|p| &p.changes)
        .find_map(|c| match c {
            Change::CreateRoute { route, object } => Some((route.clone(), object.clone())),
            _ => None,
        })
        .expect("the TrafficSplit is created");
    assert_eq!(created.0, split_ref());
    assert_eq!(
        created.1["metadata"]["ownerReferences"][0]["kind"],
        "Rollout"
    );
    assert_eq!(
        created.1["metadata"]["ownerReferences"][0]["controller"],
        true
    );
    assert_eq!(
        split_weights(&sim),
        json!({"service": "demo", "backends": [
            {"service": CANARY, "weight": 0}, {"service": STABLE, "weight": 100}
        ]})
    );
    sim.set_image("app:v2");
    sim.run_until_quiet(20);
    assert_eq!(split_weights(&sim)["backends"][0]["weight"], 10);
    assert_eq!(split_weights(&sim)["backends"][1]["weight"], 90);
}

#[test]
fn a_traffic_split_someone_else_owns_is_never_written() {
    let mut sim = Sim::new(smi_rollout("app:v1", set_image_steps()).build());
    sim.add_services(&[CANARY, STABLE]);
    sim.add_route(
        split_ref(),
        json!({"metadata": {"name": "demo-split"}, "spec": {"service": "demo", "backends": []}}),
    );
    let p = sim.reconcile();
    assert!(
        p.changes.iter().all(|c| matches!(c, Change::Event { .. })),
        "{:?}",
        p.changes
    );
    let message = p.status.message.clone().unwrap_or_default();
    assert!(
        message.starts_with("InvalidSpec: spec.strategy.canary.trafficRouting.smi: TrafficSplit default/demo-split: metadata.ownerReferences:"),
        "{message}"
    );
}
