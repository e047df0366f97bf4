use serde_json::{Value, json};

use super::*;
use crate::rollout::testing::{
    NAME, RolloutBuilder, Sim, apply_json_patch, pause, rs_name, weight,
};
use crate::rollout::traffic::routing;
use sluice_api::rollout::{CanaryStep, SetHeaderRoute, StringMatch};

const CANARY: &str = "demo-canary";
const STABLE: &str = "demo-stable";

fn ingress(name: &str) -> RouteRef {
    RouteRef {
        kind: RouteKind::Ingress,
        namespace: "default".into(),
        name: name.into(),
    }
}

fn canary_ref() -> RouteRef {
    ingress("demo-web-canary")
}

/// A stable Ingress: `/` and `/api` to the stable Service on one host, `/docs` to another
/// Service, a second host for another Service alone.
fn stable_ingress() -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "annotations": {
                "kubernetes.io/ingress.class": "nginx",
                "nginx.ingress.kubernetes.io/rewrite-target": "/"
            }
        },
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": ["web.example.com"], "secretName": "web-tls"}],
            "rules": [
                {"host": "web.example.com", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": STABLE, "port": {"number": 80}}}},
                    {"path": "/docs", "pathType": "Prefix", "backend": {"service": {"name": "docs", "port": {"number": 80}}}}
                ]}},
                {"host": "other.example.com", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "other", "port": {"number": 80}}}}
                ]}}
            ]
        }
    })
}

fn nginx_rollout(steps: Vec<CanaryStep>, extra: Value) -> RolloutBuilder {
    let mut nginx = json!({"stableIngress": "web"});
    if let (Some(n), Some(e)) = (nginx.as_object_mut(), extra.as_object()) {
        n.extend(e.clone());
    }
    RolloutBuilder::new("app:v1").steps(steps).canary(|c| {
        c.canary_service = Some(CANARY.into());
        c.stable_service = Some(STABLE.into());
        c.traffic_routing = Some(
            serde_json::from_value(json!({"nginx": nginx, "managedRoutes": [{"name": "beta"}]}))
                .unwrap(),
        );
    })
}

fn nginx_sim(steps: Vec<CanaryStep>, extra: Value) -> Sim {
    let mut sim = Sim::new(nginx_rollout(steps, extra).build());
    sim.add_services(&[CANARY, STABLE]);
    sim.add_route(ingress("web"), stable_ingress());
    sim.obs.routes.insert(canary_ref(), None);
    sim.run_until_quiet(20);
    sim
}

fn canary(sim: &Sim) -> &Value {
    sim.obs.routes[&canary_ref()]
        .as_ref()
        .expect("the canary Ingress exists")
}

fn annotation(sim: &Sim, key: &str) -> Option<String> {
    canary(sim)["metadata"]["annotations"]
        .get(format!("nginx.ingress.kubernetes.io/{key}"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

#[test]
fn the_canary_ingress_is_named_after_the_rollout_and_the_stable_ingress_and_fits_253() {
    assert_eq!(canary_ingress_name("demo", "web"), "demo-web-canary");
    let long = "a".repeat(200);
    let name = canary_ingress_name(&long, &long);
    assert_eq!(name.len(), 253);
    assert!(name.ends_with("-canary"));
}

#[test]
fn the_canary_ingress_copies_the_stable_paths_to_the_canary_service_and_is_owned() {
    let sim = nginx_sim(vec![weight(20), pause()], json!({}));
    let c = canary(&sim);
    assert_eq!(c["metadata"]["name"], "demo-web-canary");
    assert_eq!(c["metadata"]["ownerReferences"][0]["kind"], "Rollout");
    assert_eq!(c["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(
        c["spec"],
        json!({
            "ingressClassName": "nginx",
            "tls": [{"hosts": ["web.example.com"], "secretName": "web-tls"}],
            "rules": [{"host": "web.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": CANARY, "port": {"number": 80}}}},
                {"path": "/docs", "pathType": "Prefix", "backend": {"service": {"name": "docs", "port": {"number": 80}}}}
            ]}}]
        })
    );
    // Only the class annotation of the stable is copied; the canary ones are the Rollout's.
    assert_eq!(
        c["metadata"]["annotations"],
        json!({
            "kubernetes.io/ingress.class": "nginx",
            "nginx.ingress.kubernetes.io/canary": "true",
            "nginx.ingress.kubernetes.io/canary-weight": "0"
        })
    );
    // The stable Ingress is never written.
    assert_eq!(
        sim.obs.routes[&ingress("web")].as_ref().unwrap(),
        &stable_ingress()
    );
}

#[test]
fn canary_weight_walks_the_steps_and_goes_back_to_zero_at_the_end() {
    let mut sim = nginx_sim(vec![weight(20), pause(), weight(60), pause()], json!({}));
    sim.set_image("app:v2");
    sim.run_until_quiet(20);
    assert_eq!(annotation(&sim, "canary-weight").as_deref(), Some("20"));
    assert_eq!(sim.status().current_step_index, Some(1));
    sim.obs.rollout.status.as_mut().unwrap().pause_conditions = None;
    sim.run_until_quiet(20);
    assert_eq!(annotation(&sim, "canary-weight").as_deref(), Some("60"));
    sim.obs.rollout.status.as_mut().unwrap().pause_conditions = None;
    sim.run_until_quiet(30);
    assert_eq!(annotation(&sim, "canary-weight").as_deref(), Some("0"));
    assert_eq!(
        sim.status().stable_rs.as_deref(),
        Some(crate::rollout::testing::hash("app:v2").as_str())
    );
    assert_eq!(sim.specs()[&rs_name("app:v2")], 10);
}

#[test]
fn abort_puts_the_canary_weight_back_to_zero() {
    let mut sim = nginx_sim(vec![weight(20), pause(), weight(60), pause()], json!({}));
    sim.set_image("app:v2");
    sim.run_until_quiet(20);
    sim.obs.rollout.status.as_mut().unwrap().abort = Some(true);
    sim.run_until_quiet(20);
    assert_eq!(annotation(&sim, "canary-weight").as_deref(), Some("0"));
    assert_eq!(sim.specs()[&rs_name("app:v1")], 10);
}

#[test]
fn weight_total_additional_and_canary_annotations_are_written() {
    let mut sim = Sim::new(
        nginx_rollout(
            vec![weight(20), pause()],
            json!({
                "additionalIngressAnnotations": {"canary-by-cookie": "beta"},
                "canaryIngressAnnotations": {"example.com/team": "web"}
            }),
        )
        .canary(|c| c.traffic_routing.as_mut().unwrap().max_traffic_weight = Some(1000))
        .build(),
    );
    sim.add_services(&[CANARY, STABLE]);
    sim.add_route(ingress("web"), stable_ingress());
    sim.obs.routes.insert(canary_ref(), None);
    sim.run_until_quiet(20);
    assert_eq!(
        annotation(&sim, "canary-weight-total").as_deref(),
        Some("1000")
    );
    assert_eq!(
        annotation(&sim, "canary-by-cookie").as_deref(),
        Some("beta")
    );
    assert_eq!(
        canary(&sim)["metadata"]["annotations"]["example.com/team"],
        "web"
    );
}

#[test]
fn annotation_prefix_replaces_the_nginx_one() {
    let sim = nginx_sim(
        vec![weight(20)],
        json!({"annotationPrefix": "custom.nginx.org"}),
    );
    assert_eq!(
        canary(&sim)["metadata"]["annotations"]["custom.nginx.org/canary-weight"],
        "0"
    );
    assert!(annotation(&sim, "canary-weight").is_none());
}

fn header_step(m: Option<StringMatch>) -> CanaryStep {
    CanaryStep {
        set_header_route: Some(SetHeaderRoute {
            name: Some("beta".into()),
            match_: m.map(|v| {
                vec![sluice_api::rollout::HeaderRoutingMatch {
                    header_name: "x-beta".into(),
                    header_value: v,
                }]
            }),
        }),
        ..Default::default()
    }
}

#[test]
fn header_routes_become_canary_by_header_annotations_and_go_again() {
    let exact = StringMatch {
        exact: Some("yes".into()),
        ..Default::default()
    };
    let prefix = StringMatch {
        prefix: Some("a.b".into()),
        ..Default::default()
    };
    let steps = vec![
        weight(20),
        header_step(Some(exact)),
        pause(),
        header_step(Some(prefix)),
        pause(),
        header_step(None),
        pause(),
    ];
    let mut sim = nginx_sim(steps, json!({}));
    sim.set_image("app:v2");
    sim.run_until_quiet(20);
    assert_eq!(
        annotation(&sim, "canary-by-header").as_deref(),
        Some("x-beta")
    );
    assert_eq!(
        annotation(&sim, "canary-by-header-value").as_deref(),
        Some("yes")
    );
    sim.obs.rollout.status.as_mut().unwrap().pause_conditions = None;
    sim.run_until_quiet(20);
    assert_eq!(annotation(&sim, "canary-by-header-value"), None);
    assert_eq!(
        annotation(&sim, "canary-by-header-pattern").as_deref(),
        Some("^a\\.b.*")
    );
    sim.obs.rollout.status.as_mut().unwrap().pause_conditions = None;
    sim.run_until_quiet(20);
    assert_eq!(annotation(&sim, "canary-by-header"), None);
    assert_eq!(annotation(&sim, "canary-by-header-pattern"), None);
}

#[test]
fn the_canary_ingress_follows_the_stable_one_and_keeps_what_others_added() {
    let mut sim = nginx_sim(vec![weight(20), pause()], json!({}));
    // Someone labels and annotates the canary Ingress outside the prefix.
    let c = sim
        .obs
        .routes
        .get_mut(&canary_ref())
        .unwrap()
        .as_mut()
        .unwrap();
    c["metadata"]["labels"] = json!({"team": "web"});
    c["metadata"]["annotations"]["example.com/owner"] = json!("ops");
    // The stable Ingress gets a new path to the stable Service.
    let s = sim
        .obs
        .routes
        .get_mut(&ingress("web"))
        .unwrap()
        .as_mut()
        .unwrap();
    s["spec"]["rules"][0]["http"]["paths"]
        .as_array_mut()
        .unwrap()
        .push(json!({"path": "/v2", "pathType": "Prefix", "backend": {"service": {"name": STABLE, "port": {"number": 80}}}}));
    sim.run_until_quiet(10);
    let c = canary(&sim);
    assert_eq!(
        c["spec"]["rules"][0]["http"]["paths"][2]["backend"]["service"]["name"],
        CANARY
    );
    assert_eq!(c["metadata"]["labels"]["team"], "web");
    assert_eq!(c["metadata"]["annotations"]["example.com/owner"], "ops");
}

#[test]
fn a_patch_tests_the_spec_it_rewrites_and_only_sets_annotations_by_key() {
    let ro = nginx_rollout(vec![weight(20)], json!({})).build();
    let r = routing(&ro).unwrap().unwrap();
    let route = r.routes.iter().find(|o| o.route == canary_ref()).unwrap();
    let owner = crate::rollout::analysis_runs::owner_reference(&ro);
    let stable = stable_ingress();
    let c = Canary {
        stable: Some(&stable),
        stable_ref: &ingress("web"),
        stable_service: STABLE,
        canary_service: CANARY,
        owner: &owner,
    };
    let cfg = r.nginx.clone().unwrap();
    let hold = |w| TrafficHold {
        canary_weight: w,
        max_weight: 100,
        ..Default::default()
    };
    let Some(Change::CreateRoute { object, .. }) =
        plan_canary(None, route, &c, &cfg, &hold(0)).unwrap()
    else {
        panic!("a missing canary Ingress is created");
    };
    assert_eq!(
        plan_canary(Some(&object), route, &c, &cfg, &hold(0)).unwrap(),
        None
    );
    let Some(Change::PatchRoute { patch, .. }) =
        plan_canary(Some(&object), route, &c, &cfg, &hold(20)).unwrap()
    else {
        panic!("a new weight is a patch");
    };
    assert_eq!(
        patch,
        vec![
            json!({"op": "add", "path": "/metadata/annotations/nginx.ingress.kubernetes.io~1canary-weight", "value": "20"})
        ]
    );
    let mut after = object.clone();
    apply_json_patch(&mut after, &patch);
    assert_eq!(
        plan_canary(Some(&after), route, &c, &cfg, &hold(20)).unwrap(),
        None
    );
}

fn invalid_message(sim: &mut Sim) -> String {
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
        .expect("an InvalidSpec condition")
        .message
        .clone()
}

#[test]
fn a_missing_stable_ingress_is_refused_naming_it_and_nothing_moves() {
    let mut sim = nginx_sim(vec![weight(20), pause()], json!({}));
    sim.obs.routes.insert(ingress("web"), None);
    sim.set_image("app:v2");
    assert_eq!(
        invalid_message(&mut sim),
        "spec.strategy.canary.trafficRouting.nginx.stableIngress: Ingress default/web not found"
    );
    assert_eq!(sim.specs()[&rs_name("app:v1")], 10);
    assert_eq!(annotation(&sim, "canary-weight").as_deref(), Some("0"));
}

#[test]
fn a_stable_ingress_without_a_path_to_the_stable_service_is_refused_naming_the_field() {
    let mut sim = nginx_sim(vec![weight(20), pause()], json!({}));
    let s = sim
        .obs
        .routes
        .get_mut(&ingress("web"))
        .unwrap()
        .as_mut()
        .unwrap();
    s["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] = json!("elsewhere");
    sim.set_image("app:v2");
    let m = invalid_message(&mut sim);
    assert!(
        m.starts_with("spec.strategy.canary.trafficRouting.nginx.stableIngress: Ingress default/web: spec.rules: no path has the stable Service \"demo-stable\" as its backend"),
        "{m}"
    );
    assert_eq!(sim.specs()[&rs_name("app:v1")], 10);
}

#[test]
fn a_canary_ingress_someone_else_owns_is_never_written() {
    let mut sim = Sim::new(nginx_rollout(vec![weight(20)], json!({})).build());
    sim.add_services(&[CANARY, STABLE]);
    sim.add_route(ingress("web"), stable_ingress());
    sim.add_route(
        canary_ref(),
        json!({"metadata": {"name": "demo-web-canary"}, "spec": {"rules": []}}),
    );
    let m = invalid_message(&mut sim);
    assert!(
        m.starts_with("spec.strategy.canary.trafficRouting.nginx.stableIngress: Ingress default/demo-web-canary: metadata.ownerReferences:"),
        "{m}"
    );
}

#[test]
fn nginx_settings_the_router_cannot_hold_are_invalid_naming_the_field() {
    let two_matches = CanaryStep {
        set_header_route: Some(SetHeaderRoute {
            name: Some("beta".into()),
            match_: Some(vec![Default::default(), Default::default()]),
        }),
        ..Default::default()
    };
    let mirror = CanaryStep {
        set_mirror_route: Some(sluice_api::rollout::SetMirrorRoute {
            name: "beta".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let cases = [
        (
            nginx_rollout(vec![weight(20)], json!({"stableIngress": null})),
            "spec.strategy.canary.trafficRouting.nginx.stableIngress",
        ),
        (
            nginx_rollout(vec![weight(20)], json!({"stableIngresses": ["a"]})),
            "spec.strategy.canary.trafficRouting.nginx.stableIngresses",
        ),
        (
            nginx_rollout(
                vec![weight(20)],
                json!({"stableIngress": null, "stableIngresses": ["a", "a"]}),
            ),
            "spec.strategy.canary.trafficRouting.nginx.stableIngresses[1]",
        ),
        (
            nginx_rollout(vec![two_matches], json!({})),
            "spec.strategy.canary.steps[0].setHeaderRoute.match",
        ),
        (
            nginx_rollout(vec![mirror], json!({})),
            "spec.strategy.canary.steps[0].setMirrorRoute",
        ),
        (
            nginx_rollout(vec![weight(20)], json!({})).canary(|c| {
                c.traffic_routing.as_mut().unwrap().managed_routes =
                    Some(serde_json::from_value(json!([{"name": "a"}, {"name": "b"}])).unwrap());
            }),
            "spec.strategy.canary.trafficRouting.managedRoutes",
        ),
    ];
    for (builder, field) in cases {
        let ro = builder.build();
        assert_eq!(routing(&ro).unwrap_err().field, field);
    }
}

#[test]
fn several_stable_ingresses_get_a_canary_ingress_each() {
    let ro = nginx_rollout(
        vec![weight(20)],
        json!({"stableIngress": null, "stableIngresses": ["web", "api"]}),
    )
    .build();
    let names: Vec<(String, bool)> = routing(&ro)
        .unwrap()
        .unwrap()
        .routes
        .iter()
        .map(|r| (r.route.name.clone(), r.role == RouteRole::NginxStable))
        .collect();
    assert_eq!(
        names,
        [
            ("web".to_string(), true),
            (format!("{NAME}-web-canary"), false),
            ("api".to_string(), true),
            (format!("{NAME}-api-canary"), false),
        ]
    );
}
