use serde_json::{Value, json};

use super::*;
use crate::rollout::testing::{RolloutBuilder, Sim, pause, weight};
use crate::rollout::traffic::{RouteKind, RouteRef, routing};

const CANARY: &str = "demo-canary";
const STABLE: &str = "demo-stable";

fn ts_ref() -> RouteRef {
    RouteRef {
        kind: RouteKind::TraefikService,
        namespace: "default".into(),
        name: "web".into(),
    }
}

fn traefik_service() -> Value {
    json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"weighted": {
            "sticky": {"cookie": {"name": "lb"}},
            "services": [
                {"name": STABLE, "port": 80, "weight": 100},
                {"name": CANARY, "port": 80, "weight": 0},
                {"name": "legacy", "port": 80, "weight": 5}
            ]
        }}
    })
}

fn sim(ts: Option<Value>) -> Sim {
    let ro = RolloutBuilder::new("app:v1")
        .steps(vec![weight(20), pause(), weight(60), pause()])
        .canary(|c| {
            c.canary_service = Some(CANARY.into());
            c.stable_service = Some(STABLE.into());
            c.traffic_routing = Some(
                serde_json::from_value(json!({"traefik": {"weightedTraefikServiceName": "web"}}))
                    .unwrap(),
            );
        })
        .build();
    let mut sim = Sim::new(ro);
    sim.add_services(&[CANARY, STABLE]);
    sim.obs.routes.insert(ts_ref(), ts);
    sim
}

fn weights(sim: &Sim) -> Vec<i64> {
    sim.obs.routes[&ts_ref()].as_ref().unwrap()["spec"]["weighted"]["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["weight"].as_i64().unwrap())
        .collect()
}

#[test]
fn weights_walk_the_steps_on_the_two_services_and_leave_the_rest() {
    let mut sim = sim(Some(traefik_service()));
    sim.run_until_quiet(20);
    assert_eq!(weights(&sim), [100, 0, 5]);
    sim.set_image("app:v2");
    sim.run_until_quiet(20);
    assert_eq!(weights(&sim), [80, 20, 5]);
    sim.obs.rollout.status.as_mut().unwrap().pause_conditions = None;
    sim.run_until_quiet(20);
    assert_eq!(weights(&sim), [40, 60, 5]);
    let ts = sim.obs.routes[&ts_ref()].as_ref().unwrap();
    assert_eq!(
        ts["spec"]["weighted"]["sticky"],
        traefik_service()["spec"]["weighted"]["sticky"]
    );
    sim.obs.rollout.status.as_mut().unwrap().abort = Some(true);
    sim.run_until_quiet(20);
    assert_eq!(weights(&sim), [100, 0, 5]);
}

#[test]
fn bad_traefik_services_are_refused_naming_the_object_and_field() {
    let mut no_canary = traefik_service();
    no_canary["spec"]["weighted"]["services"][1]["name"] = json!("other");
    let f = "spec.strategy.canary.trafficRouting.traefik.weightedTraefikServiceName";
    let cases = [
        (None, format!("{f}: TraefikService default/web not found")),
        (
            Some(json!({"metadata": {"name": "web"}, "spec": {"mirroring": {"name": STABLE}}})),
            format!(
                "{f}: TraefikService default/web: spec.weighted.services: the TraefikService is not weighted (it must list the canary Service \"demo-canary\" and the stable Service \"demo-stable\")"
            ),
        ),
        (
            Some(no_canary),
            format!(
                "{f}: TraefikService default/web: spec.weighted.services: no entry for the Service \"demo-canary\""
            ),
        ),
    ];
    for (ts, want) in cases {
        let mut sim = sim(ts);
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
        assert_eq!(cond, want);
    }
}

#[test]
fn an_empty_traefik_service_name_is_invalid() {
    let ro = RolloutBuilder::new("app:v1")
        .steps(vec![weight(20)])
        .canary(|c| {
            c.canary_service = Some(CANARY.into());
            c.stable_service = Some(STABLE.into());
            c.traffic_routing = Some(
                serde_json::from_value(json!({"traefik": {"weightedTraefikServiceName": ""}}))
                    .unwrap(),
            );
        })
        .build();
    assert_eq!(
        routing(&ro).unwrap_err().field,
        "spec.strategy.canary.trafficRouting.traefik.weightedTraefikServiceName"
    );
}

#[test]
fn a_traefik_service_deleted_mid_update_stops_everything_and_keeps_the_stable() {
    let mut sim = sim(Some(traefik_service()));
    sim.run_until_quiet(20);
    sim.set_image("app:v2");
    sim.run_until_quiet(20);
    let stable_before = sim.specs()[&crate::rollout::testing::rs_name("app:v1")];
    sim.obs.routes.insert(ts_ref(), None);
    sim.obs.rollout.status.as_mut().unwrap().pause_conditions = None;
    let p = sim.reconcile();
    assert!(
        p.changes.iter().all(|c| matches!(c, Change::Event { .. })),
        "{:?}",
        p.changes
    );
    assert_eq!(
        sim.specs()[&crate::rollout::testing::rs_name("app:v1")],
        stable_before
    );
}
