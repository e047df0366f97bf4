use serde_json::{Value, json};

use super::*;
use crate::rollout::testing::{RolloutBuilder, Sim, pause, weight};
use crate::rollout::traffic::routing;
use sluice_api::rollout::{CanaryStep, HeaderRoutingMatch, SetHeaderRoute, StringMatch};

const CANARY: &str = "demo-canary";
const STABLE: &str = "demo-stable";
const ACTION: &str = "alb.ingress.kubernetes.io/actions.demo-stable";

fn ingress_ref() -> RouteRef {
    RouteRef {
        kind: RouteKind::Ingress,
        namespace: "default".into(),
        name: "web".into(),
    }
}

/// An Ingress whose `/` goes to the stable Service's action (`use-annotation`).
fn ingress() -> Value {
    json!({
        "metadata": {"name": "web", "namespace": "default", "annotations": {
            "alb.ingress.kubernetes.io/scheme": "internet-facing"
        }},
        "spec": {"ingressClassName": "alb", "rules": [{"http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": STABLE, "port": {"name": "use-annotation"}}}}
        ]}}]}
    })
}

fn alb_rollout(steps: Vec<CanaryStep>, alb: Value) -> RolloutBuilder {
    RolloutBuilder::new("app:v1").steps(steps).canary(|c| {
        c.canary_service = Some(CANARY.into());
        c.stable_service = Some(STABLE.into());
        c.traffic_routing = Some(
            serde_json::from_value(json!({"alb": alb, "managedRoutes": [{"name": "beta"}]}))
                .unwrap(),
        );
    })
}

fn sim(ing: Option<Value>, alb: Value) -> Sim {
    let mut sim =
        Sim::new(alb_rollout(vec![weight(20), pause(), weight(60), pause()], alb).build());
    sim.add_services(&[CANARY, STABLE]);
    sim.obs.routes.insert(ingress_ref(), ing);
    sim
}

fn annotation(sim: &Sim, key: &str) -> String {
    sim.obs.routes[&ingress_ref()].as_ref().unwrap()["metadata"]["annotations"][key]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn the_forward_action_is_upstreams_json_byte_for_byte() {
    let cfg = Config {
        prefix: DEFAULT_ANNOTATION_PREFIX,
        port: 80,
        action_service: STABLE,
        stickiness: None,
    };
    let hold = |w| TrafficHold {
        canary_weight: w,
        max_weight: 100,
        ..Default::default()
    };
    assert_eq!(
        forward_action(&cfg, CANARY, STABLE, &hold(20)),
        r#"{"Type":"forward","ForwardConfig":{"TargetGroups":[{"ServiceName":"demo-canary","ServicePort":"80","Weight":20},{"ServiceName":"demo-stable","ServicePort":"80","Weight":80}]}}"#
    );
    let sticky = Config {
        stickiness: Some(3600),
        ..cfg
    };
    assert_eq!(
        forward_action(&sticky, CANARY, STABLE, &hold(0)),
        r#"{"Type":"forward","ForwardConfig":{"TargetGroups":[{"ServiceName":"demo-canary","ServicePort":"80","Weight":0},{"ServiceName":"demo-stable","ServicePort":"80","Weight":100}],"TargetGroupStickinessConfig":{"Enabled":true,"DurationSeconds":3600}}}"#
    );
}

#[test]
fn the_action_walks_the_steps_and_the_rest_of_the_ingress_stays() {
    let mut sim = sim(
        Some(ingress()),
        json!({"ingress": "web", "servicePort": 80}),
    );
    sim.run_until_quiet(20);
    let w = |sim: &Sim| observed_canary_weight(&annotation(sim, ACTION), CANARY);
    assert_eq!(w(&sim), Some(0));
    assert_eq!(
        annotation(&sim, MANAGED_ANNOTATIONS),
        format!(r#"{{"demo":["{ACTION}"]}}"#)
    );
    sim.set_image("app:v2");
    sim.run_until_quiet(20);
    assert_eq!(w(&sim), Some(20));
    sim.obs.rollout.status.as_mut().unwrap().pause_conditions = None;
    sim.run_until_quiet(20);
    assert_eq!(w(&sim), Some(60));
    sim.obs.rollout.status.as_mut().unwrap().abort = Some(true);
    sim.run_until_quiet(20);
    assert_eq!(w(&sim), Some(0));
    let ing = sim.obs.routes[&ingress_ref()].as_ref().unwrap();
    assert_eq!(ing["spec"], ingress()["spec"], "the spec is never written");
    assert_eq!(
        ing["metadata"]["annotations"]["alb.ingress.kubernetes.io/scheme"],
        "internet-facing"
    );
}

#[test]
fn root_service_prefix_and_other_rollouts_entries() {
    let mut ing = ingress();
    ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] = json!("root");
    ing["metadata"]["annotations"][MANAGED_ANNOTATIONS] =
        json!(r#"{"zeta":["custom.io/actions.x"],"demo":["custom.io/actions.old"]}"#);
    let mut sim = sim(
        Some(ing),
        json!({"ingress": "web", "servicePort": 8080, "rootService": "root", "annotationPrefix": "custom.io"}),
    );
    sim.run_until_quiet(20);
    let action = annotation(&sim, "custom.io/actions.root");
    assert!(action.contains(r#""ServicePort":"8080""#), "{action}");
    assert_eq!(
        annotation(&sim, MANAGED_ANNOTATIONS),
        r#"{"demo":["custom.io/actions.old","custom.io/actions.root"],"zeta":["custom.io/actions.x"]}"#
    );
}

#[test]
fn bad_ingresses_and_settings_are_refused_naming_the_object_and_field() {
    let f = "spec.strategy.canary.trafficRouting.alb";
    let mut elsewhere = ingress();
    elsewhere["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] =
        json!("other");
    for (ing, want) in [
        (None, format!("{f}.ingress: Ingress default/web not found")),
        (
            Some(elsewhere),
            format!(
                "{f}.ingress: Ingress default/web: spec.rules: no path has the Service \"demo-stable\" as its backend"
            ),
        ),
    ] {
        let mut sim = sim(ing, json!({"ingress": "web", "servicePort": 80}));
        let p = sim.reconcile();
        assert!(
            p.changes.iter().all(|c| matches!(c, Change::Event { .. })),
            "{:?}",
            p.changes
        );
        let m = p
            .status
            .conditions()
            .iter()
            .find(|c| c.type_ == sluice_api::rollout::RolloutConditionType::InvalidSpec)
            .unwrap()
            .message
            .clone();
        assert!(m.starts_with(&want), "{m}");
    }
    let header = header_step(Some(StringMatch {
        prefix: Some("v1".into()),
        ..Default::default()
    }));
    for (steps, alb, field) in [
        (
            vec![weight(1)],
            json!({"servicePort": 80}),
            format!("{f}.ingress"),
        ),
        (
            vec![weight(1)],
            json!({"ingress": "web", "servicePort": 0}),
            format!("{f}.servicePort"),
        ),
        (
            vec![weight(1)],
            json!({"ingress": "web", "ingresses": ["a"], "servicePort": 80}),
            format!("{f}.ingresses"),
        ),
        (
            vec![weight(1)],
            json!({"ingress": "web", "servicePort": 80, "stickinessConfig": {"enabled": true, "durationSeconds": 0}}),
            format!("{f}.stickinessConfig.durationSeconds"),
        ),
        (
            vec![header],
            json!({"ingress": "web", "servicePort": 80}),
            "spec.strategy.canary.steps[0].setHeaderRoute.match[0].headerValue".to_string(),
        ),
    ] {
        let ro = alb_rollout(steps, alb).build();
        assert_eq!(routing(&ro).unwrap_err().field, field);
    }
}

fn header_step(value: Option<StringMatch>) -> CanaryStep {
    CanaryStep {
        set_header_route: Some(SetHeaderRoute {
            name: Some("beta".into()),
            match_: value.map(|v| {
                vec![HeaderRoutingMatch {
                    header_name: "x-beta".into(),
                    header_value: v,
                }]
            }),
        }),
        ..Default::default()
    }
}

#[test]
fn header_routes_add_an_action_a_condition_and_a_path_first_and_go_at_the_end() {
    let exact = StringMatch {
        exact: Some("yes".into()),
        ..Default::default()
    };
    let steps = vec![
        weight(20),
        header_step(Some(exact)),
        pause(),
        weight(40),
        pause(),
    ];
    let mut sim =
        Sim::new(alb_rollout(steps, json!({"ingress": "web", "servicePort": 80})).build());
    sim.add_services(&[CANARY, STABLE]);
    sim.obs.routes.insert(ingress_ref(), Some(ingress()));
    sim.run_until_quiet(20);
    sim.set_image("app:v2");
    sim.run_until_quiet(20);
    assert_eq!(
        annotation(&sim, "alb.ingress.kubernetes.io/actions.beta"),
        r#"{"Type":"forward","ForwardConfig":{"TargetGroups":[{"ServiceName":"demo-canary","ServicePort":"80","Weight":100}]}}"#
    );
    assert_eq!(
        annotation(&sim, "alb.ingress.kubernetes.io/conditions.beta"),
        r#"[{"field":"http-header","httpHeaderConfig":{"httpHeaderName":"x-beta","values":["yes"]}}]"#
    );
    let paths = |sim: &Sim| {
        sim.obs.routes[&ingress_ref()].as_ref().unwrap()["spec"]["rules"][0]["http"]["paths"]
            .clone()
    };
    assert_eq!(
        paths(&sim)[0],
        json!({"path": "/*", "pathType": "ImplementationSpecific", "backend": {"service": {"name": "beta", "port": {"name": "use-annotation"}}}})
    );
    assert_eq!(
        paths(&sim)[1],
        ingress()["spec"]["rules"][0]["http"]["paths"][0]
    );
    assert_eq!(
        annotation(&sim, MANAGED_ANNOTATIONS),
        r#"{"demo":["alb.ingress.kubernetes.io/actions.demo-stable","alb.ingress.kubernetes.io/actions.beta","alb.ingress.kubernetes.io/conditions.beta"]}"#
    );
    // The end: the header route's annotations and path are gone, the user's Ingress as it was.
    sim.obs.rollout.status.as_mut().unwrap().pause_conditions = None;
    sim.run_until_quiet(20);
    sim.obs.rollout.status.as_mut().unwrap().pause_conditions = None;
    sim.run_until_quiet(40);
    let ing = sim.obs.routes[&ingress_ref()].as_ref().unwrap();
    assert_eq!(ing["spec"], ingress()["spec"]);
    assert!(
        ing["metadata"]["annotations"]
            .get("alb.ingress.kubernetes.io/actions.beta")
            .is_none()
    );
    assert!(
        ing["metadata"]["annotations"]
            .get("alb.ingress.kubernetes.io/conditions.beta")
            .is_none()
    );
    assert_eq!(
        annotation(&sim, MANAGED_ANNOTATIONS),
        r#"{"demo":["alb.ingress.kubernetes.io/actions.demo-stable"]}"#
    );
}
