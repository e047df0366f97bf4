use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::*;
use crate::rollout::canary::plan_step;
use crate::rollout::testing::{NAME, RolloutBuilder, Sim, at, hash, pause, template, weight};
use sluice_api::common::ObjectRef;
use sluice_api::k8s::hash::pod_template_hash;
use sluice_api::rollout::{Rollout, RolloutConditionType, RolloutPhase};

fn selector() -> LabelSelector {
    LabelSelector {
        match_labels: Some([("app".to_string(), NAME.to_string())].into()),
        match_expressions: None,
    }
}

/// A Rollout of 4 replicas (maxSurge 25% → 1, maxUnavailable 0) referencing Deployment
/// `web` with `scale_down`, with neither template nor selector of its own.
fn referencing(scale_down: Option<&str>) -> Rollout {
    RolloutBuilder::new("unused")
        .steps(vec![weight(50), pause()])
        .canary(|c| {
            c.max_surge = Some(IntOrString::String("25%".into()));
            c.max_unavailable = Some(IntOrString::Int(0));
        })
        .spec(|s| {
            s.replicas = Some(4);
            s.template = None;
            s.selector = None;
            s.workload_ref = Some(ObjectRef {
                api_version: Some("apps/v1".into()),
                kind: Some("Deployment".into()),
                name: Some("web".into()),
                scale_down: scale_down.map(str::to_string),
            });
        })
        .build()
}

fn deployment(image: &str, replicas: i32, generation: i64) -> Workload {
    Workload {
        generation,
        template: Some(template(image)),
        selector: Some(selector()),
        scale: Some(DeploymentScale {
            spec: replicas,
            pods: replicas,
        }),
    }
}

fn sim(rollout: Rollout, workload: Option<Workload>) -> Sim {
    let mut sim = Sim::new(rollout);
    sim.obs.workload = workload;
    sim
}

fn invalid_message(p: &Plan) -> Option<String> {
    p.status
        .conditions()
        .iter()
        .find(|c| c.type_ == RolloutConditionType::InvalidSpec)
        .map(|c| c.message.clone())
}

fn writes_anything_but_status(p: &Plan) -> bool {
    p.changes.iter().any(|c| {
        matches!(
            c,
            Change::CreateReplicaSet(_)
                | Change::ScaleReplicaSet { .. }
                | Change::ScaleDeployment { .. }
                | Change::DeleteReplicaSet { .. }
        )
    })
}

#[test]
fn bad_references_are_invalid_spec_naming_the_field_and_scale_nothing() {
    let with = |f: &dyn Fn(&mut ObjectRef)| {
        let mut ro = referencing(Some("progressively"));
        f(ro.spec.workload_ref.as_mut().unwrap());
        ro
    };
    let mut both = referencing(None);
    both.spec.template = Some(template("nginx:1"));
    let mut mismatched = deployment("nginx:1", 4, 1);
    mismatched.selector = Some(LabelSelector {
        match_labels: Some([("app".to_string(), "other".to_string())].into()),
        match_expressions: None,
    });
    let cases: Vec<(&str, Rollout, Option<Workload>, &str)> = vec![
        (
            "missing object",
            referencing(None),
            None,
            "spec.workloadRef: Deployment \"web\" not found",
        ),
        (
            "unsupported kind",
            with(&|r| r.kind = Some("StatefulSet".into())),
            Some(deployment("nginx:1", 4, 1)),
            "spec.workloadRef.kind: \"StatefulSet\" is not supported",
        ),
        (
            "wrong apiVersion",
            with(&|r| r.api_version = Some("extensions/v1beta1".into())),
            Some(deployment("nginx:1", 4, 1)),
            "spec.workloadRef.apiVersion: \"extensions/v1beta1\" does not serve Deployment",
        ),
        (
            "template and workloadRef",
            both,
            Some(deployment("nginx:1", 4, 1)),
            "spec.template: template must be empty for workload reference rollout",
        ),
        (
            "selector not matching the template",
            referencing(Some("progressively")),
            Some(mismatched),
            "spec.workloadRef: Deployment \"web\": its selector does not match",
        ),
        (
            "scaleDown of a PodTemplate",
            with(&|r| {
                r.kind = Some("PodTemplate".into());
                r.api_version = Some("v1".into());
            }),
            Some(deployment("nginx:1", 4, 1)),
            "spec.workloadRef.scaleDown: only a Deployment can be scaled down",
        ),
        (
            "unknown scaleDown",
            with(&|r| r.scale_down = Some("sometimes".into())),
            Some(deployment("nginx:1", 4, 1)),
            "spec.workloadRef.scaleDown: \"sometimes\" is not one of",
        ),
        (
            "no name",
            with(&|r| r.name = None),
            Some(deployment("nginx:1", 4, 1)),
            "spec.workloadRef.name: must be set",
        ),
    ];
    for (what, rollout, workload, expected) in cases {
        let mut s = sim(rollout, workload);
        let p = s.reconcile();
        let message = invalid_message(&p).unwrap_or_else(|| panic!("{what}: not InvalidSpec"));
        assert!(
            message.starts_with(expected),
            "{what}: {message:?} does not start with {expected:?}"
        );
        assert!(!writes_anything_but_status(&p), "{what}: {:?}", p.changes);
        assert_eq!(p.status.phase, Some(RolloutPhase::Degraded), "{what}");
    }
}

#[test]
fn the_template_and_selector_come_from_the_deployment() {
    let mut s = sim(referencing(None), Some(deployment("nginx:1", 4, 7)));
    let p = s.reconcile();
    let Some(Change::CreateReplicaSet(rs)) = p
        .changes
        .iter()
        .find(|c| matches!(c, Change::CreateReplicaSet(_)))
    else {
        panic!("no ReplicaSet created: {:?}", p.changes);
    };
    let spec = rs.spec.as_ref().unwrap();
    let containers = &spec
        .template
        .as_ref()
        .unwrap()
        .spec
        .as_ref()
        .unwrap()
        .containers;
    assert_eq!(containers[0].image.as_deref(), Some("nginx:1"));
    let labels = spec.selector.match_labels.as_ref().unwrap();
    assert_eq!(labels.get("app").map(String::as_str), Some(NAME));
    assert_eq!(
        rs.metadata.name.as_deref(),
        Some(format!("{NAME}-{}", pod_template_hash(&template("nginx:1"), None)).as_str())
    );
    // The Rollout itself is never given the template: nothing writes its spec.
    assert!(
        !p.changes
            .iter()
            .any(|c| matches!(c, Change::PatchRolloutSpecReplicas { .. }))
    );
}

#[test]
fn a_rollout_selector_wins_over_the_workloads() {
    let mut ro = referencing(None);
    let mut own = selector();
    own.match_labels
        .as_mut()
        .unwrap()
        .insert("app".into(), NAME.into());
    ro.spec.selector = Some(own.clone());
    let mut obs = sim(ro, Some(deployment("nginx:1", 4, 1))).obs;
    obs.workload.as_mut().unwrap().selector = None;
    let resolved = resolve(&obs).unwrap();
    assert_eq!(resolved.rollout.spec.selector, Some(own));
    assert!(resolved.rollout.spec.workload_ref.is_none());
}

#[test]
fn the_generation_annotation_and_status_follow_the_workload() {
    let mut s = sim(referencing(None), Some(deployment("nginx:1", 4, 3)));
    let p = s.reconcile();
    assert!(p.changes.contains(&Change::AnnotateRollout {
        key: WORKLOAD_GENERATION_ANNOTATION.into(),
        value: "3".into()
    }));
    assert_eq!(p.status.workload_observed_generation.as_deref(), Some("3"));
    // Once annotated, it is not written again.
    let p = s.reconcile();
    assert!(
        !p.changes
            .iter()
            .any(|c| matches!(c, Change::AnnotateRollout { .. }))
    );
    assert_eq!(p.status.workload_observed_generation.as_deref(), Some("3"));
    // An InvalidSpec Rollout still records which generation it judged.
    s.obs.workload.as_mut().unwrap().generation = 4;
    s.obs.workload.as_mut().unwrap().selector = Some(LabelSelector {
        match_labels: Some([("app".to_string(), "x".to_string())].into()),
        match_expressions: None,
    });
    let p = s.reconcile();
    assert!(invalid_message(&p).is_some());
    assert_eq!(p.status.workload_observed_generation.as_deref(), Some("4"));
}

/// Pods become available one per tick (per ReplicaSet); a scaled-down Deployment loses its
/// pods at once. The Deployment's pods were all available from the start and it is never
/// scaled up, so its available pods are its pods.
fn tick(s: &mut Sim) {
    for rs in &mut s.obs.replica_sets {
        let spec = rs.spec.as_ref().unwrap().replicas.unwrap_or(1);
        let status = rs.status.get_or_insert_with(Default::default);
        let available = status.available_replicas.unwrap_or(0);
        let next = if available < spec {
            available + 1
        } else {
            spec
        };
        status.replicas = spec;
        status.available_replicas = Some(next);
        status.ready_replicas = Some(next);
    }
    if let Some(scale) = s.obs.workload.as_mut().and_then(|w| w.scale.as_mut()) {
        scale.pods = scale.spec;
    }
    s.now += 1;
}

fn rollout_pods(s: &Sim) -> (i32, i32) {
    s.obs.replica_sets.iter().fold((0, 0), |(spec, avail), rs| {
        (
            spec + rs.spec.as_ref().unwrap().replicas.unwrap_or(1),
            avail
                + rs.status
                    .as_ref()
                    .and_then(|st| st.available_replicas)
                    .unwrap_or(0),
        )
    })
}

/// Walks a migration to the end, checking after every write that (a) the pods of both
/// stay within `replicas + surge` and (b) available pods across both never fall below
/// `floor`. Returns the number of reconciles it took.
fn migrate(s: &mut Sim, surge: i32, floor: i32) -> usize {
    for n in 0..200 {
        let p = s.reconcile();
        let (mine, mine_available) = rollout_pods(s);
        let dep = s.obs.workload.as_ref().unwrap().scale.unwrap();
        assert!(
            mine + dep.spec.max(dep.pods) <= 4 + surge,
            "reconcile {n}: {mine} + {dep:?} pods exceed the surge ceiling; {:?}",
            p.changes
        );
        tick(s);
        let dep = s.obs.workload.as_ref().unwrap().scale.unwrap();
        let (_, after) = rollout_pods(s);
        assert!(
            dep.pods + mine_available.min(after) >= floor,
            "reconcile {n}: {} + {} available < {floor}",
            dep.pods,
            mine_available
        );
        if dep.spec == 0 && after == 4 && p.changes.is_empty() {
            return n;
        }
    }
    panic!("migration did not finish: {:?}", s.obs.workload);
}

#[test]
fn progressively_trades_pods_one_for_one_within_the_surge() {
    let mut s = sim(
        referencing(Some("progressively")),
        Some(deployment("nginx:1", 4, 1)),
    );
    let reconciles = migrate(&mut s, 1, 4);
    assert!(reconciles > 4, "one pod at a time, took {reconciles}");
    assert_eq!(s.status().phase, Some(RolloutPhase::Healthy));
}

#[test]
fn progressively_with_no_surge_gives_up_at_most_max_unavailable() {
    let mut ro = referencing(Some("progressively"));
    let canary = ro
        .spec
        .strategy
        .as_mut()
        .and_then(|s| s.canary.as_mut())
        .expect("a canary Rollout");
    canary.max_surge = Some(IntOrString::Int(0));
    canary.max_unavailable = Some(IntOrString::Int(1));
    let mut s = sim(ro, Some(deployment("nginx:1", 4, 1)));
    migrate(&mut s, 0, 3);
}

#[test]
fn a_deployment_scaled_up_again_is_held_at_zero_in_every_mode() {
    for mode in ["progressively", "onsuccess"] {
        let mut s = sim(referencing(Some(mode)), Some(deployment("nginx:1", 4, 1)));
        for _ in 0..40 {
            s.reconcile();
            tick(&mut s);
        }
        let dep = s.obs.workload.as_ref().unwrap().scale.unwrap();
        assert_eq!(dep.spec, 0, "{mode}: migration ends at zero");
        // Someone (a GitOps sync, a person) scales it to 3.
        s.obs.workload.as_mut().unwrap().scale = Some(DeploymentScale { spec: 3, pods: 3 });
        let p = s.reconcile();
        assert!(
            p.changes.contains(&Change::ScaleDeployment {
                name: "web".into(),
                from: 3,
                replicas: 0
            }),
            "{mode}: {:?}",
            p.changes
        );
    }
}

#[test]
fn onsuccess_waits_for_a_fully_available_rollout_and_never_leaves_both_short() {
    let mut s = sim(
        referencing(Some("onsuccess")),
        Some(deployment("nginx:1", 4, 1)),
    );
    for _ in 0..40 {
        let p = s.reconcile();
        let (_, available) = rollout_pods(&s);
        if let Some(Change::ScaleDeployment { replicas, .. }) = p
            .changes
            .iter()
            .find(|c| matches!(c, Change::ScaleDeployment { .. }))
        {
            assert_eq!(*replicas, 0);
            assert_eq!(available, 4, "scaled down before the Rollout was available");
        }
        tick(&mut s);
    }
    assert_eq!(s.obs.workload.as_ref().unwrap().scale.unwrap().spec, 0);
}

#[test]
fn never_leaves_the_deployment_alone_and_the_rollout_is_not_capped() {
    let mut s = sim(
        referencing(Some("never")),
        Some(deployment("nginx:1", 4, 1)),
    );
    for _ in 0..40 {
        let p = s.reconcile();
        assert!(
            !p.changes
                .iter()
                .any(|c| matches!(c, Change::ScaleDeployment { .. }))
        );
        tick(&mut s);
    }
    assert_eq!(rollout_pods(&s), (4, 4));
    assert_eq!(s.obs.workload.as_ref().unwrap().scale.unwrap().spec, 4);
}

#[test]
fn the_deployment_is_never_scaled_up() {
    // Half-way: the Deployment has 2, the Rollout 1 available of 4 desired. The floor
    // would want 3 from the Deployment, but it only ever shrinks.
    let dep = DeploymentScale { spec: 2, pods: 2 };
    let limits = Limits {
        max_surge: 1,
        max_unavailable: 0,
    };
    assert_eq!(progressive_target(dep, 1, 4, limits), 2);
    assert_eq!(progressive_target(dep, 3, 4, limits), 1);
    assert_eq!(progressive_target(dep, 5, 4, limits), 0);
}

#[test]
fn editing_the_deployment_template_starts_a_canary() {
    let mut s = sim(
        referencing(Some("progressively")),
        Some(deployment("nginx:1", 4, 1)),
    );
    migrate(&mut s, 1, 4);
    let w = s.obs.workload.as_mut().unwrap();
    w.template = Some(template("nginx:2"));
    w.generation = 2;
    for _ in 0..10 {
        s.reconcile();
        tick(&mut s);
    }
    let status = s.status();
    assert_eq!(
        status.current_pod_hash.as_deref(),
        Some(hash("nginx:2").as_str())
    );
    assert_eq!(status.stable_rs.as_deref(), Some(hash("nginx:1").as_str()));
    assert_eq!(status.phase, Some(RolloutPhase::Paused));
    assert_eq!(status.current_step_index, Some(1));
    assert_eq!(status.workload_observed_generation.as_deref(), Some("2"));
    assert_eq!(
        s.obs
            .rollout
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(WORKLOAD_GENERATION_ANNOTATION))
            .map(String::as_str),
        Some("2")
    );
    let _ = plan_step(&s.obs, at(s.now));
}
