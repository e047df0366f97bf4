//! Behaviour of the canary planner, one reconcile at a time and as whole walks.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::*;
use crate::rollout::plan::MetadataPatch;
use crate::rollout::status::{TRUE, condition};
use crate::rollout::testing::*;
use sluice_api::common::DESIRED_REPLICAS_ANNOTATION;
use sluice_api::rollout::{PauseCondition, PauseReason, RolloutCondition, RolloutPhase};

fn phase_of(p: &Plan) -> (RolloutPhase, &str) {
    (
        p.status.phase.clone().unwrap(),
        p.status.message.as_deref().unwrap(),
    )
}

fn v1_v2_steps() -> Vec<CanaryStep> {
    vec![weight(20), pause(), weight(50), pause_for("10s")]
}

/// A Rollout that was settled on v1 and whose template now says v2, with the v2
/// ReplicaSet already created (revision 2) and `canary`/`stable` replicas.
fn mid_update(index: i32, canary: (i32, i32), stable: (i32, i32)) -> Observed {
    let mut ro = RolloutBuilder::new("app:v2")
        .steps(v1_v2_steps())
        .updating("app:v1", "app:v2", index)
        .build();
    ro.metadata.annotations = Some([(REVISION_ANNOTATION.to_string(), "2".to_string())].into());
    observed(
        ro,
        vec![
            rs("app:v1", stable.0, stable.1, 1),
            rs("app:v2", canary.0, canary.1, 2),
        ],
    )
}

#[test]
fn first_revision_creates_its_replica_set_at_zero_replicas() {
    let ro = RolloutBuilder::new("app:v1").steps(v1_v2_steps()).build();
    let p = plan_step(&observed(ro, vec![]), at(50));
    // Upstream's order: the update is announced, then the ReplicaSet created.
    assert_eq!(
        p.changes[0],
        Change::normal(
            "RolloutNotCompleted",
            "Rollout not completed, started update to revision 0 (59579796bf)"
        )
    );
    let Change::CreateReplicaSet(created) = &p.changes[1] else {
        panic!("expected a create next: {:#?}", p.changes);
    };
    let mut expected = rs("app:v1", 0, 0, 1);
    expected.metadata.creation_timestamp = None;
    expected.metadata.generation = None;
    expected.status = None;
    expected.metadata.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "argoproj.io/v1alpha1".into(),
            kind: "Rollout".into(),
            name: NAME.into(),
            uid: "uid-1".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        },
    ]);
    assert_eq!(**created, expected);
    assert_eq!(
        events(&p),
        vec![
            (
                "RolloutNotCompleted".to_string(),
                format!(
                    "Rollout not completed, started update to revision 0 ({})",
                    hash("app:v1")
                )
            ),
            (
                "RolloutUpdated".into(),
                "Rollout updated to revision 1".into()
            ),
            (
                "NewReplicaSetCreated".into(),
                format!("Created ReplicaSet {} (revision 1)", rs_name("app:v1"))
            ),
        ]
    );
    assert!(p.changes.contains(&Change::AnnotateRolloutRevision {
        revision: "1".into()
    }));
    assert_eq!(p.status.current_pod_hash, Some(hash("app:v1")));
    assert_eq!(p.status.current_step_index, Some(0));
    assert_eq!(p.status.observed_generation.as_deref(), Some("1"));
    assert_eq!(
        phase_of(&p),
        (
            RolloutPhase::Progressing,
            "more replicas need to be updated"
        )
    );
    let progressing = condition(p.status.conditions(), &Cond::Progressing).unwrap();
    assert_eq!(progressing.reason, "NewReplicaSetCreated");
    assert_eq!(
        progressing.message,
        format!("Created new replica set \"{}\"", rs_name("app:v1"))
    );
}

#[test]
fn first_revision_goes_straight_to_full_scale_and_becomes_stable() {
    let mut sim = Sim::new(RolloutBuilder::new("app:v1").steps(v1_v2_steps()).build());
    sim.run_until_quiet(20);
    let s = sim.status();
    assert_eq!(s.stable_rs, Some(hash("app:v1")));
    assert_eq!(s.current_step_index, Some(4));
    assert_eq!(sim.specs(), [(rs_name("app:v1"), 10)].into());
    assert_eq!(s.phase, Some(RolloutPhase::Healthy));
    assert_eq!(
        s.message, None,
        "a Healthy rollout has no message, as upstream"
    );
    assert_eq!(s.available_replicas, Some(10));
    assert_eq!(s.hpa_replicas, Some(10));
    assert_eq!(s.selector.as_deref(), Some("app=demo"));
    for (t, reason) in [
        (Cond::Healthy, "RolloutHealthy"),
        (Cond::Available, "AvailableReason"),
        (Cond::Completed, "RolloutCompleted"),
        (Cond::Progressing, "NewReplicaSetAvailable"),
    ] {
        let c = condition(s.conditions(), &t).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            (TRUE, reason),
            "{t:?}"
        );
    }
}

#[test]
fn missing_spec_replicas_is_written_back_as_one() {
    let ro = RolloutBuilder::new("app:v1")
        .spec(|s| s.replicas = None)
        .build();
    let p = plan_step(&observed(ro, vec![]), at(50));
    assert_eq!(
        p.changes[0],
        Change::PatchRolloutSpecReplicas { replicas: 1 }
    );
}

#[test]
fn set_weight_step_scales_within_surge_and_unavailable() {
    // COMPAT §6: R=10, surge 1, unavailable 1, weight 20 → first reconcile canary 1, stable 9…
    // (the approximation target for 20% is 2/8; the surge budget allows 1 new pod now).
    let p = plan_step(&mid_update(0, (0, 0), (10, 10)), at(50));
    assert_eq!(
        scales(&p),
        vec![(rs_name("app:v1"), 9), (rs_name("app:v2"), 1)]
    );
    assert_eq!(
        events(&p)[..2],
        [
            (
                "ScalingReplicaSet".to_string(),
                format!(
                    "Scaled down ReplicaSet {} (revision 1) from 10 to 9",
                    rs_name("app:v1")
                )
            ),
            (
                "ScalingReplicaSet".to_string(),
                format!(
                    "Scaled up ReplicaSet {} (revision 2) from 0 to 1",
                    rs_name("app:v2")
                )
            ),
        ]
    );
    assert_eq!(p.status.current_step_index, Some(0), "not done yet");
    assert_eq!(
        phase_of(&p),
        (
            RolloutPhase::Progressing,
            "more replicas need to be updated"
        )
    );
}

#[test]
fn set_weight_step_completes_when_counts_are_at_target() {
    let p = plan_step(&mid_update(0, (2, 2), (8, 8)), at(50));
    assert!(scales(&p).is_empty(), "{:?}", p.changes);
    assert_eq!(p.status.current_step_index, Some(1));
    assert!(events(&p).contains(&(
        "RolloutStepCompleted".into(),
        "Rollout step 1/4 completed (setWeight: 20)".into()
    )));
}

#[test]
fn set_weight_step_waits_for_canary_availability() {
    let p = plan_step(&mid_update(0, (2, 1), (8, 8)), at(50));
    assert!(scales(&p).is_empty());
    assert_eq!(p.status.current_step_index, Some(0));
}

#[test]
fn indefinite_pause_adds_a_pause_condition_once() {
    let p = plan_step(&mid_update(1, (2, 2), (8, 8)), at(50));
    assert_eq!(
        p.status.pause_conditions,
        Some(vec![PauseCondition {
            reason: PauseReason::CanaryPauseStep,
            start_time: time(50),
        }])
    );
    assert_eq!(p.status.controller_pause, Some(true));
    assert_eq!(p.status.current_step_index, Some(1));
    assert_eq!(phase_of(&p), (RolloutPhase::Paused, "CanaryPauseStep"));
    assert!(events(&p).contains(&(
        "RolloutPaused".into(),
        "Rollout is paused (CanaryPauseStep)".into()
    )));
    assert_eq!(p.requeue_after, None);

    // Next reconcile: still paused, the condition (and its start time) untouched.
    let mut obs = mid_update(1, (2, 2), (8, 8));
    obs.rollout.status = Some(p.status.clone());
    let again = plan_step(&obs, at(500));
    assert_eq!(again.status.pause_conditions, p.status.pause_conditions);
    assert_eq!(again.status.current_step_index, Some(1));
    assert!(again.changes.is_empty(), "{:?}", again.changes);
}

#[test]
fn promote_clears_the_pause_and_moves_to_the_next_step() {
    let mut obs = mid_update(1, (2, 2), (8, 8));
    // What `kubectl argo rollouts promote` leaves: controllerPause true, no conditions.
    obs.rollout.status.as_mut().unwrap().controller_pause = Some(true);
    let p = plan_step(&obs, at(60));
    assert_eq!(p.status.current_step_index, Some(2));
    assert_eq!(p.status.pause_conditions, None);
    assert_eq!(p.status.controller_pause, None);
    assert!(events(&p).contains(&(
        "RolloutStepCompleted".into(),
        "Rollout step 2/4 completed (pause)".into()
    )));
}

#[test]
fn timed_pause_requeues_until_its_duration_has_passed() {
    let started = |obs: &mut Observed| {
        let s = obs.rollout.status.as_mut().unwrap();
        s.pause_conditions = Some(vec![PauseCondition {
            reason: PauseReason::CanaryPauseStep,
            start_time: time(100),
        }]);
        s.controller_pause = Some(true);
    };
    let mut obs = mid_update(3, (5, 5), (5, 5));
    started(&mut obs);
    let p = plan_step(&obs, at(104));
    assert_eq!(p.status.current_step_index, Some(3));
    assert_eq!(p.requeue_after, Some(Duration::from_secs(6)));

    let p = plan_step(&obs, at(111));
    assert_eq!(p.status.current_step_index, Some(4));
    assert!(events(&p).contains(&(
        "RolloutStepCompleted".into(),
        "Rollout step 4/4 completed (pause: 10s)".into()
    )));
}

#[test]
fn user_pause_halts_scaling_and_steps() {
    let mut obs = mid_update(0, (0, 0), (10, 10));
    obs.rollout.spec.paused = Some(true);
    let p = plan_step(&obs, at(50));
    assert!(scales(&p).is_empty());
    assert_eq!(p.status.current_step_index, Some(0));
    assert_eq!(phase_of(&p), (RolloutPhase::Paused, "manually paused"));
}

#[test]
fn abort_scales_the_canary_down_within_limits_and_degrades() {
    let mut obs = mid_update(2, (5, 5), (5, 5));
    obs.rollout.status.as_mut().unwrap().abort = Some(true);
    let p = plan_step(&obs, at(70));
    // Stable grows by the surge; the canary gives up one pod, all maxUnavailable allows.
    assert_eq!(
        scales(&p),
        vec![(rs_name("app:v2"), 4), (rs_name("app:v1"), 6)]
    );
    assert_eq!(p.status.abort, Some(true));
    assert_eq!(p.status.aborted_at, Some(time(70)));
    assert_eq!(p.status.current_step_index, Some(0));
    assert_eq!(
        phase_of(&p),
        (
            RolloutPhase::Degraded,
            "RolloutAborted: Rollout aborted update to revision 2"
        )
    );
    assert!(events(&p).contains(&(
        "RolloutAborted".into(),
        "Rollout aborted update to revision 2".into()
    )));
}

#[test]
fn abort_converges_to_stable_at_full_scale_and_canary_at_zero() {
    let mut sim = Sim {
        obs: mid_update(2, (5, 5), (5, 5)),
        now: 100,
    };
    sim.obs.rollout.status.as_mut().unwrap().abort = Some(true);
    sim.run_until_quiet(40);
    assert_eq!(
        sim.specs(),
        [(rs_name("app:v1"), 10), (rs_name("app:v2"), 0)].into()
    );
    assert_eq!(
        sim.status().aborted_at,
        Some(time(100)),
        "kept, not re-stamped"
    );
    assert_eq!(sim.status().phase, Some(RolloutPhase::Degraded));
}

#[test]
fn retry_clears_the_abort_and_resumes_from_the_first_step() {
    let mut sim = Sim {
        obs: mid_update(2, (5, 5), (5, 5)),
        now: 100,
    };
    sim.obs.rollout.status.as_mut().unwrap().abort = Some(true);
    sim.run_until_quiet(40);
    // `kubectl argo rollouts retry`
    sim.obs.rollout.status.as_mut().unwrap().abort = Some(false);
    let p = sim.reconcile();
    assert_eq!(p.status.abort, Some(false), "the user's value is kept");
    assert_eq!(p.status.aborted_at, None);
    let prog = condition(p.status.conditions(), &Cond::Progressing).unwrap();
    assert_ne!(prog.reason, "RolloutAborted");
    assert_eq!(p.status.phase, Some(RolloutPhase::Progressing));
    assert_eq!(p.status.current_step_index, Some(0));
}

#[test]
fn promote_full_skips_the_remaining_steps() {
    let mut obs = mid_update(1, (2, 2), (8, 8));
    obs.rollout.status.as_mut().unwrap().promote_full = Some(true);
    let p = plan_step(&obs, at(50));
    assert_eq!(p.status.current_step_index, Some(4));
    // weight 100 within surge 1 / unavailable 1: stable down to 7, canary up to 3.
    assert_eq!(
        scales(&p),
        vec![(rs_name("app:v1"), 7), (rs_name("app:v2"), 3)]
    );
    let mut sim = Sim { obs, now: 50 };
    sim.run_until_quiet(40);
    assert_eq!(sim.status().stable_rs, Some(hash("app:v2")));
    assert_eq!(sim.status().promote_full, None);
    assert_eq!(
        sim.specs(),
        [(rs_name("app:v1"), 0), (rs_name("app:v2"), 10)].into()
    );
}

#[test]
fn template_back_to_stable_fast_tracks_the_rollback() {
    // Mid-update to v2, the user reverts the template to v1.
    let mut obs = mid_update(2, (5, 5), (5, 5));
    obs.rollout.spec.template = Some(template("app:v1"));
    let p = plan_step(&obs, at(50));
    assert!(
        !p.changes
            .iter()
            .any(|c| matches!(c, Change::CreateReplicaSet(_)))
    );
    assert_eq!(p.status.current_pod_hash, Some(hash("app:v1")));
    assert_eq!(p.status.current_step_index, Some(4));
    assert!(events(&p).contains(&("SkipSteps".into(), "Rollback to stable ReplicaSets".into())));
    let mut sim = Sim { obs, now: 50 };
    sim.run_until_quiet(40);
    assert_eq!(
        sim.specs(),
        [(rs_name("app:v1"), 10), (rs_name("app:v2"), 0)].into()
    );
    assert_eq!(sim.status().phase, Some(RolloutPhase::Healthy));
}

#[test]
fn changed_steps_restart_from_the_first_step() {
    let mut obs = mid_update(3, (5, 5), (5, 5));
    obs.rollout
        .spec
        .strategy
        .as_mut()
        .unwrap()
        .canary
        .as_mut()
        .unwrap()
        .steps = Some(vec![weight(10), pause()]);
    let p = plan_step(&obs, at(50));
    assert_eq!(p.status.current_step_index, Some(0));
    assert!(
        scales(&p).is_empty(),
        "only the status resets this reconcile"
    );
}

#[test]
fn a_user_set_step_index_is_honoured() {
    // `promote` while not paused writes currentStepIndex N+1 itself.
    let p = plan_step(&mid_update(2, (2, 2), (8, 8)), at(50));
    assert_eq!(
        scales(&p),
        vec![(rs_name("app:v1"), 7), (rs_name("app:v2"), 3)],
        "step 2 is setWeight 50"
    );
}

#[test]
fn progress_deadline_exceeded_degrades_the_rollout() {
    let mut obs = mid_update(0, (2, 0), (8, 8));
    let s = obs.rollout.status.as_mut().unwrap();
    s.replicas = Some(10);
    s.updated_replicas = Some(2);
    s.available_replicas = Some(8);
    s.ready_replicas = Some(8);
    s.conditions = Some(vec![RolloutCondition {
        type_: Cond::Progressing,
        status: TRUE.into(),
        last_update_time: time(0),
        last_transition_time: time(0),
        reason: "ReplicaSetUpdated".into(),
        message: "m".into(),
        observed_generation: None,
    }]);
    let p = plan_step(&obs, at(599));
    assert_eq!(p.status.phase, Some(RolloutPhase::Progressing));
    assert_eq!(p.requeue_after, Some(Duration::from_secs(2)));

    let p = plan_step(&obs, at(601));
    assert_eq!(
        phase_of(&p),
        (
            RolloutPhase::Degraded,
            format!(
                "ProgressDeadlineExceeded: ReplicaSet \"{}\" has timed out progressing.",
                rs_name("app:v2")
            )
            .as_str()
        )
    );
    assert_eq!(
        p.status.abort, None,
        "no abort without progressDeadlineAbort"
    );

    obs.rollout.spec.progress_deadline_abort = Some(true);
    let p = plan_step(&obs, at(601));
    assert_eq!(p.status.abort, Some(true));
    assert_eq!(p.status.phase, Some(RolloutPhase::Degraded));
    assert!(
        p.status
            .message
            .unwrap()
            .starts_with("RolloutAborted: Rollout aborted update to revision 2: ReplicaSet")
    );
}

#[test]
fn history_cleanup_deletes_oldest_scaled_down_replica_sets_beyond_the_limit() {
    let ro = RolloutBuilder::new("app:v9")
        .spec(|s| s.revision_history_limit = Some(2))
        .settled_on("app:v9")
        .build();
    let mut sets: Vec<_> = (1..=5).map(|i| rs(&format!("app:v{i}"), 0, 0, i)).collect();
    sets.push(rs("app:v9", 10, 10, 9));
    let p = plan_step(&observed(ro, sets), at(5000));
    let deleted: Vec<_> = p
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::DeleteReplicaSet { name } => Some(name.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        deleted,
        vec![rs_name("app:v1"), rs_name("app:v2"), rs_name("app:v3")]
    );
}

#[test]
fn history_cleanup_keeps_replica_sets_that_still_have_pods() {
    let ro = RolloutBuilder::new("app:v9")
        .spec(|s| s.revision_history_limit = Some(0))
        .settled_on("app:v9")
        .build();
    let sets = vec![
        rs("app:v1", 0, 0, 1),
        rs("app:v2", 1, 1, 2),
        rs("app:v9", 10, 10, 9),
    ];
    let p = plan_step(&observed(ro, sets), at(5000));
    assert!(p.changes.contains(&Change::DeleteReplicaSet {
        name: rs_name("app:v1")
    }));
    assert!(!p.changes.contains(&Change::DeleteReplicaSet {
        name: rs_name("app:v2")
    }));
}

#[test]
fn services_follow_canary_and_stable_once_they_have_pods() {
    let mut obs = mid_update(0, (2, 2), (8, 8));
    obs.rollout = RolloutBuilder::new("app:v2")
        .steps(v1_v2_steps())
        .canary(|c| {
            c.canary_service = Some("demo-canary".into());
            c.stable_service = Some("demo-stable".into());
        })
        .updating("app:v1", "app:v2", 0)
        .build();
    obs.services.insert(
        "demo-canary".into(),
        Some(service("demo-canary", Some(&hash("app:v1")), true)),
    );
    obs.services.insert(
        "demo-stable".into(),
        Some(service("demo-stable", None, false)),
    );
    let p = plan_step(&obs, at(50));
    let switches: Vec<_> = p
        .changes
        .iter()
        .filter(|c| matches!(c, Change::SetServiceSelector { .. }))
        .cloned()
        .collect();
    assert_eq!(
        switches,
        vec![
            Change::SetServiceSelector {
                service: "demo-stable".into(),
                pod_template_hash: hash("app:v1"),
                add_managed_by: true,
            },
            Change::SetServiceSelector {
                service: "demo-canary".into(),
                pod_template_hash: hash("app:v2"),
                add_managed_by: false,
            },
        ]
    );
}

#[test]
fn a_missing_service_is_an_invalid_spec_naming_it() {
    let mut obs = mid_update(0, (0, 0), (10, 10));
    obs.rollout
        .spec
        .strategy
        .as_mut()
        .unwrap()
        .canary
        .as_mut()
        .unwrap()
        .canary_service = Some("nope".into());
    obs.services.insert("nope".into(), None);
    let p = plan_step(&obs, at(50));
    assert_eq!(
        phase_of(&p),
        (
            RolloutPhase::Degraded,
            "InvalidSpec: spec.strategy.canary.canaryService: service \"nope\" not found"
        )
    );
    assert!(scales(&p).is_empty());
}

#[test]
fn invalid_specs_touch_nothing_but_the_status() {
    let base = || RolloutBuilder::new("app:v2").steps(v1_v2_steps());
    let cases: Vec<(Rollout, &str)> = vec![
        (
            base().spec(|s| s.strategy = None).build(),
            "spec.strategy: Rollout has missing field '.spec.strategy.canary or .spec.strategy.blueGreen'",
        ),
        (
            base()
                .spec(|s| s.strategy.as_mut().unwrap().blue_green = Some(Default::default()))
                .build(),
            "spec.strategy: Multiple Strategies can not be listed",
        ),
        (
            base().spec(|s| s.selector = None).build(),
            "spec.selector: Rollout has missing field '.spec.selector'",
        ),
        (
            base()
                .spec(|s| {
                    s.selector.as_mut().unwrap().match_labels =
                        Some([("app".into(), "other".into())].into())
                })
                .build(),
            "spec.selector: `selector` does not match template `labels` (spec.template.metadata.labels)",
        ),
        (
            base()
                .spec(|s| {
                    s.workload_ref = Some(Default::default());
                })
                .build(),
            "spec.template: template must be empty for workload reference rollout",
        ),
        (
            base()
                .canary(|c| c.max_surge = Some(IntOrString::String("x".into())))
                .build(),
            "spec.strategy.canary.maxSurge: invalid value \"x\": must be a non-negative integer or a percentage such as \"25%\"",
        ),
        (
            base()
                .canary(|c| {
                    c.max_surge = Some(IntOrString::Int(0));
                    c.max_unavailable = Some(IntOrString::String("0%".into()));
                })
                .build(),
            "spec.strategy.canary.maxUnavailable: MaxSurge and MaxUnavailable both can not be zero",
        ),
        (
            base()
                .steps(vec![weight(10), pause(), weight(20), CanaryStep::default()])
                .build(),
            "spec.strategy.canary.steps[3]: Step must have one of the following set: experiment, setWeight, setCanaryScale, plugin or pause",
        ),
        (
            base()
                .steps(vec![CanaryStep {
                    set_weight: Some(10),
                    pause: Some(Default::default()),
                    ..Default::default()
                }])
                .build(),
            "spec.strategy.canary.steps[0]: Step must have one of the following set: experiment, setWeight, setCanaryScale, plugin or pause (found setWeight and pause)",
        ),
        (
            base().steps(vec![weight(101)]).build(),
            "spec.strategy.canary.steps[0].setWeight: SetWeight needs to be between 0 and 100 (got 101)",
        ),
        (
            base().steps(vec![pause_for("-5s")]).build(),
            "spec.strategy.canary.steps[0].pause.duration: invalid duration \"-5s\": use a non-negative number of seconds or a duration such as \"30s\" or \"1h\"",
        ),
        (
            base()
                .canary(|c| {
                    c.traffic_routing = Some(sluice_api::rollout::RolloutTrafficRouting {
                        ambassador: Some(Default::default()),
                        ..Default::default()
                    })
                })
                .build(),
            "spec.strategy.canary.trafficRouting.ambassador: the ambassador traffic router is not supported by Sluice yet (supported: plugins[\"argoproj-labs/gatewayAPI\"], smi, nginx, istio, traefik, alb)",
        ),
        (
            base()
                .steps(vec![CanaryStep {
                    analysis: Some(Default::default()),
                    ..Default::default()
                }])
                .build(),
            "spec.strategy.canary.steps[0].analysis.templates: an analysis step needs at least one template",
        ),
        (
            base()
                .steps(vec![CanaryStep {
                    set_canary_scale: Some(Default::default()),
                    ..Default::default()
                }])
                .build(),
            "spec.strategy.canary.steps[0].setCanaryScale: can only be used with trafficRouting",
        ),
        (
            base()
                .steps(vec![weight(10), analysis_step(&["missing"])])
                .build(),
            "spec.strategy.canary.steps[1].analysis.templates[0]: AnalysisTemplate 'missing' not found",
        ),
        (
            base()
                .canary(|c| c.analysis = Some(background(&["gone"], None)))
                .build(),
            "spec.strategy.canary.analysis.templates[0]: AnalysisTemplate 'gone' not found",
        ),
        (
            base()
                .canary(|c| c.scale_down_delay_seconds = Some(30))
                .build(),
            "spec.strategy.canary.scaleDownDelaySeconds: Canary scaleDownDelaySeconds can only be used with traffic routing",
        ),
        (
            base()
                .canary(|c| {
                    c.replica_progress_threshold =
                        Some(sluice_api::rollout::ReplicaProgressThreshold {
                            type_: "Percentage".into(),
                            value: 50,
                        })
                })
                .build(),
            "spec.strategy.canary.replicaProgressThreshold.type: must be \"Percent\" or \"Pods\", got \"Percentage\"",
        ),
    ];
    for (ro, message) in cases {
        let mut obs = mid_update(0, (0, 0), (10, 10));
        let status = obs.rollout.status.clone();
        obs.rollout = ro;
        obs.rollout.status = status;
        let p = plan_step(&obs, at(50));
        assert_eq!(
            p.changes,
            vec![Change::warning("InvalidSpec", message)],
            "{message}"
        );
        assert_eq!(
            phase_of(&p),
            (
                RolloutPhase::Degraded,
                format!("InvalidSpec: {message}").as_str()
            )
        );
        let c = condition(p.status.conditions(), &Cond::InvalidSpec).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            (TRUE, "InvalidSpec")
        );
        // A second reconcile does not repeat the event.
        obs.rollout.status = Some(p.status.clone());
        assert!(plan_step(&obs, at(60)).changes.is_empty());
    }
}

/// The API server's pod-template rules, checked before any write: each case is a template
/// a real cluster would refuse in the canary's ReplicaSet.
#[test]
fn a_template_the_api_server_would_refuse_is_invalid_spec_naming_the_field() {
    let container = |f: fn(&mut k8s_openapi::api::core::v1::Container)| {
        RolloutBuilder::new("app:v2")
            .steps(v1_v2_steps())
            .spec(move |s| {
                let c = &mut s
                    .template
                    .as_mut()
                    .unwrap()
                    .spec
                    .as_mut()
                    .unwrap()
                    .containers[0];
                f(c);
            })
            .build()
    };
    fn quantity(v: &str) -> k8s_openapi::api::core::v1::ResourceRequirements {
        use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
        k8s_openapi::api::core::v1::ResourceRequirements {
            requests: Some([("memory".to_string(), Quantity(v.to_string()))].into()),
            ..Default::default()
        }
    }
    let cases: Vec<(Rollout, String)> = vec![
        (
            container(|c| c.resources = Some(quantity("invalid"))),
            "spec.template.spec.containers[0].resources.requests.memory: Invalid value: \"invalid\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'".to_string(),
        ),
        (
            container(|c| c.resources = Some(quantity("-1Gi"))),
            "spec.template.spec.containers[0].resources.requests.memory: Invalid value: \"-1Gi\": must be greater than or equal to 0".to_string(),
        ),
        (
            container(|c| c.name = "App".into()),
            "spec.template.spec.containers[0].name: Invalid value: \"App\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".to_string(),
        ),
        (
            RolloutBuilder::new("app:v2")
                .steps(v1_v2_steps())
                .canary(|c| {
                    c.canary_metadata = Some(sluice_api::common::PodTemplateMetadata {
                        labels: Some([("role".to_string(), "canary!".to_string())].into()),
                        annotations: None,
                    })
                })
                .build(),
            "spec.strategy.canary.canaryMetadata.labels: Invalid value: \"canary!\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".to_string(),
        ),
    ];
    for (ro, message) in cases {
        let mut obs = mid_update(0, (0, 0), (10, 10));
        let status = obs.rollout.status.clone();
        obs.rollout = ro;
        obs.rollout.status = status;
        let p = plan_step(&obs, at(50));
        assert_eq!(
            p.changes,
            vec![Change::warning("InvalidSpec", message.clone())],
            "{message}"
        );
        assert_eq!(
            p.status.message.as_deref(),
            Some(format!("InvalidSpec: {message}").as_str())
        );
    }
    // A new Rollout with such a template gets no ReplicaSet at all.
    let mut fresh = observed(
        container(|c| c.resources = Some(quantity("invalid"))),
        vec![],
    );
    fresh.rollout.status = None;
    let p = plan_step(&fresh, at(0));
    assert!(
        p.changes
            .iter()
            .all(|c| !matches!(c, Change::CreateReplicaSet(_))),
        "{:?}",
        p.changes
    );
    assert_eq!(p.status.phase, Some(RolloutPhase::Degraded));
}

#[test]
fn fixing_an_invalid_spec_removes_the_condition() {
    let mut obs = mid_update(0, (2, 2), (8, 8));
    obs.rollout.spec.selector = None;
    let invalid = plan_step(&obs, at(50));
    let mut fixed = mid_update(0, (2, 2), (8, 8));
    fixed.rollout.status = Some(invalid.status);
    let p = plan_step(&fixed, at(60));
    assert!(condition(p.status.conditions(), &Cond::InvalidSpec).is_none());
    assert_ne!(p.status.phase, Some(RolloutPhase::Degraded));
}

#[test]
fn status_keeps_user_owned_fields_it_does_not_transition() {
    let mut obs = mid_update(0, (1, 1), (9, 9));
    let s = obs.rollout.status.as_mut().unwrap();
    s.abort = Some(false);
    s.promote_full = Some(false);
    s.controller_pause = Some(false);
    s.pause_conditions = Some(vec![]);
    let p = plan_step(&obs, at(50));
    assert_eq!(p.status.abort, Some(false));
    assert_eq!(p.status.promote_full, Some(false));
    assert_eq!(p.status.controller_pause, Some(false));
    assert_eq!(p.status.pause_conditions, Some(vec![]));
    assert_eq!(p.status.current_step_index, Some(0));
}

#[test]
fn a_replica_set_made_by_another_controller_is_adopted_by_template() {
    // Same template, a hash label Sluice would not compute (e.g. upstream's), and the
    // API server's defaults filled in.
    let mut other = rs("app:v1", 10, 10, 3);
    other.metadata.name = Some("demo-6b9f7c".into());
    other
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert(POD_TEMPLATE_HASH_LABEL.into(), "6b9f7c".into());
    let t = other.spec.as_mut().unwrap().template.as_mut().unwrap();
    let c = &mut t.spec.as_mut().unwrap().containers[0];
    c.image_pull_policy = Some("IfNotPresent".into());
    c.termination_message_path = Some("/dev/termination-log".into());
    t.spec.as_mut().unwrap().dns_policy = Some("ClusterFirst".into());
    let ro = RolloutBuilder::new("app:v1")
        .status(|s| {
            s.stable_rs = Some("6b9f7c".into());
            s.current_pod_hash = Some("6b9f7c".into());
            s.current_step_hash = Some(crate::rollout::hash::step_hash(None));
        })
        .build();
    let p = plan_step(&observed(ro, vec![other]), at(50));
    assert!(
        !p.changes
            .iter()
            .any(|c| matches!(c, Change::CreateReplicaSet(_))),
        "{:?}",
        p.changes
    );
    assert_eq!(p.status.current_pod_hash.as_deref(), Some("6b9f7c"));
    assert_eq!(p.status.phase, Some(RolloutPhase::Healthy));
}

#[test]
fn canary_metadata_labels_canary_pods_and_stable_metadata_stable_pods() {
    let mut obs = mid_update(0, (2, 2), (8, 8));
    let labels = |v: &str| sluice_api::common::PodTemplateMetadata {
        labels: Some([("role".to_string(), v.to_string())].into()),
        annotations: None,
    };
    obs.rollout = RolloutBuilder::new("app:v2")
        .steps(v1_v2_steps())
        .canary(|c| {
            c.canary_metadata = Some(labels("canary"));
            c.stable_metadata = Some(labels("stable"));
        })
        .updating("app:v1", "app:v2", 0)
        .build();
    let p = plan_step(&obs, at(50));
    let patches: Vec<_> = p
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::PatchPods {
                pod_template_hash,
                labels,
                ..
            } => Some((pod_template_hash.clone(), labels.set.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        patches,
        vec![
            (hash("app:v2"), [("role".into(), "canary".into())].into()),
            (hash("app:v1"), [("role".into(), "stable".into())].into()),
        ]
    );
    assert!(
        p.changes.contains(&Change::UpdateReplicaSet {
            name: rs_name("app:v2"),
            annotations: MetadataPatch {
                set: [(
                    EPHEMERAL_METADATA_ANNOTATION.into(),
                    r#"{"labels":{"role":"canary"}}"#.into()
                )]
                .into(),
                remove: Default::default(),
            },
            template_labels: MetadataPatch {
                set: [("role".into(), "canary".into())].into(),
                remove: Default::default(),
            },
            template_annotations: MetadataPatch::default(),
            min_ready_seconds: None,
        })
    );
}

/// The whole walk from v1 to v2 through `setWeight 20 → pause {} → setWeight 50 →
/// pause 10s → 100%`, reconciling and letting pods come up in between, with a promote.
#[test]
fn full_canary_walk_from_v1_to_v2() {
    let mut sim = Sim::new(RolloutBuilder::new("app:v1").steps(v1_v2_steps()).build());
    sim.run_until_quiet(20);
    assert_eq!(sim.status().phase, Some(RolloutPhase::Healthy));

    sim.set_image("app:v2");
    let plans = sim.run_until_quiet(30);
    // Paused at the indefinite pause after reaching 20%.
    assert_eq!(sim.status().current_step_index, Some(1));
    assert_eq!(sim.status().phase, Some(RolloutPhase::Paused));
    assert_eq!(sim.status().message.as_deref(), Some("CanaryPauseStep"));
    assert_eq!(
        sim.specs(),
        [(rs_name("app:v1"), 8), (rs_name("app:v2"), 2)].into()
    );
    // Every plan respected the surge ceiling: at most R + 1 pods requested.
    assert!(plans.iter().all(|p| p.status.replicas.unwrap_or(0) <= 11));

    // promote
    sim.obs.rollout.status.as_mut().unwrap().pause_conditions = None;
    sim.run_until_quiet(30);
    assert_eq!(sim.status().current_step_index, Some(3));
    assert_eq!(
        sim.specs(),
        [(rs_name("app:v1"), 5), (rs_name("app:v2"), 5)].into()
    );
    let p = sim.reconcile();
    assert!(
        p.requeue_after
            .is_some_and(|d| d <= Duration::from_secs(10))
    );
    assert_eq!(sim.status().phase, Some(RolloutPhase::Paused));

    sim.now += 11;
    sim.run_until_quiet(40);
    let s = sim.status();
    assert_eq!(s.current_step_index, Some(4));
    assert_eq!(s.stable_rs, Some(hash("app:v2")));
    assert_eq!(
        sim.specs(),
        [(rs_name("app:v1"), 0), (rs_name("app:v2"), 10)].into()
    );
    assert_eq!(s.phase, Some(RolloutPhase::Healthy));
    assert_eq!(s.updated_replicas, Some(10));
    assert_eq!(
        sim.obs
            .rollout
            .metadata
            .annotations
            .as_ref()
            .unwrap()
            .get(REVISION_ANNOTATION)
            .map(String::as_str),
        Some("2")
    );
}

fn restarting(restart_at: i64, pods_created: &[i64]) -> Observed {
    let ro = RolloutBuilder::new("app:v1")
        .steps(v1_v2_steps())
        .settled_on("app:v1")
        .spec(|s| s.restart_at = Some(time(restart_at)))
        .build();
    let mut obs = observed(ro, vec![rs("app:v1", 10, 10, 1)]);
    obs.rollout.metadata.annotations =
        Some([(REVISION_ANNOTATION.to_string(), "1".to_string())].into());
    obs.pods = pods_created
        .iter()
        .enumerate()
        .map(|(i, &c)| pod("app:v1", i, c))
        .collect();
    obs
}

fn evictions(p: &Plan) -> Vec<String> {
    p.changes
        .iter()
        .filter_map(|c| match c {
            Change::EvictPod { name } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn restart_evicts_old_pods_one_unavailable_slot_at_a_time() {
    let obs = restarting(100, &[10; 10]);
    assert!(Observed::needs_pods(&obs.rollout, at(200)));
    let p = plan_step(&obs, at(200));
    assert_eq!(evictions(&p), vec![format!("{}-0", rs_name("app:v1"))]);
    assert_eq!(p.status.restarted_at, None);
    assert_eq!(p.requeue_after, Some(Duration::from_secs(30)));
    assert_eq!(
        phase_of(&p),
        (RolloutPhase::Progressing, "rollout is restarting")
    );
}

#[test]
fn restart_waits_while_availability_is_at_the_floor() {
    let mut obs = restarting(100, &[10; 10]);
    obs.pods[3].status = None; // one pod not ready: nothing more may go
    let p = plan_step(&obs, at(200));
    assert!(evictions(&p).is_empty());
    assert_eq!(p.requeue_after, Some(Duration::from_secs(30)));
}

#[test]
fn restart_completes_when_every_pod_is_newer() {
    let obs = restarting(100, &[150; 10]);
    let p = plan_step(&obs, at(200));
    assert!(evictions(&p).is_empty());
    assert_eq!(p.status.restarted_at, Some(time(100)));
    assert_eq!(p.status.phase, Some(RolloutPhase::Healthy));
    let mut done = obs.rollout.clone();
    done.status = Some(p.status.clone());
    assert!(!Observed::needs_pods(&done, at(200)));
}

#[test]
fn a_future_restart_is_requeued_for_its_time() {
    let obs = restarting(300, &[10; 10]);
    assert!(!Observed::needs_pods(&obs.rollout, at(200)));
    let p = plan_step(&obs, at(200));
    assert!(evictions(&p).is_empty());
    assert_eq!(p.requeue_after, Some(Duration::from_secs(100)));
}

#[test]
fn a_new_template_mid_update_drains_the_abandoned_canary() {
    let mut sim = Sim {
        obs: mid_update(2, (5, 5), (5, 5)),
        now: 100,
    };
    sim.set_image("app:v3");
    let plans = sim.run_until_quiet(40);
    assert!(
        plans.iter().all(|p| p.status.replicas.unwrap_or(0) <= 11),
        "surge ceiling"
    );
    let s = sim.status();
    assert_eq!(s.current_pod_hash, Some(hash("app:v3")));
    assert_eq!(s.stable_rs, Some(hash("app:v1")));
    assert_eq!(s.current_step_index, Some(1));
    assert_eq!(s.message.as_deref(), Some("CanaryPauseStep"));
    assert_eq!(
        sim.specs(),
        [
            (rs_name("app:v1"), 8),
            (rs_name("app:v2"), 0),
            (rs_name("app:v3"), 2)
        ]
        .into()
    );
    // The abandoned canary got a revision below the new one.
    let revision = |image: &str| {
        sim.obs
            .replica_sets
            .iter()
            .find(|rs| rs.metadata.name.as_deref() == Some(rs_name(image).as_str()))
            .and_then(|rs| {
                rs.metadata
                    .annotations
                    .as_ref()?
                    .get(REVISION_ANNOTATION)
                    .cloned()
            })
    };
    assert_eq!(revision("app:v3").as_deref(), Some("3"));
}

proptest::proptest! {
    /// History cleanup never deletes the stable or the canary ReplicaSet, nor one that still
    /// has replicas, whatever the limit and however many old revisions exist.
    #[test]
    fn cleanup_never_deletes_stable_canary_or_scaled_replica_sets(
        limit in 0..4i32,
        old in proptest::collection::vec(0..3i32, 0..8),
        stable_spec in 0..3i32,
    ) {
        let ro = RolloutBuilder::new("app:new")
            .spec(|s| s.revision_history_limit = Some(limit))
            .updating("app:stable", "app:new", 0)
            .build();
        let mut sets: Vec<_> = old
            .iter()
            .enumerate()
            .map(|(i, &spec)| rs(&format!("app:old{i}"), spec, spec, i as i64 + 1))
            .collect();
        sets.push(rs("app:stable", stable_spec, stable_spec, 20));
        sets.push(rs("app:new", 0, 0, 21));
        let p = plan_step(&observed(ro, sets.clone()), at(5000));
        for c in &p.changes {
            if let Change::DeleteReplicaSet { name } = c {
                proptest::prop_assert_ne!(name, &rs_name("app:stable"));
                proptest::prop_assert_ne!(name, &rs_name("app:new"));
                let victim = sets.iter().find(|r| r.metadata.name.as_deref() == Some(name.as_str())).unwrap();
                proptest::prop_assert_eq!(victim.spec.as_ref().unwrap().replicas, Some(0));
            }
        }
    }
}

#[test]
fn a_hash_collision_bumps_the_collision_count_instead_of_creating() {
    // Something else already holds the name the v2 template hashes to.
    let mut squatter = rs("app:other", 0, 0, 1);
    squatter.metadata.name = Some(rs_name("app:v2"));
    let ro = RolloutBuilder::new("app:v2").build();
    let p = plan_step(&observed(ro.clone(), vec![squatter.clone()]), at(50));
    assert!(
        !p.changes
            .iter()
            .any(|c| matches!(c, Change::CreateReplicaSet(_)))
    );
    assert_eq!(p.status.collision_count, Some(1));

    let mut bumped = ro;
    bumped.status = Some(p.status);
    let p = plan_step(&observed(bumped, vec![squatter]), at(51));
    let Some(Change::CreateReplicaSet(created)) = p.changes.first() else {
        panic!("{:?}", p.changes);
    };
    let expected = format!(
        "{NAME}-{}",
        sluice_api::k8s::hash::pod_template_hash(&template("app:v2"), Some(1))
    );
    assert_eq!(created.metadata.name.as_deref(), Some(expected.as_str()));
}

#[test]
fn replica_progress_threshold_lets_a_step_complete_before_every_canary_pod_is_up() {
    use sluice_api::rollout::ReplicaProgressThreshold;
    let with = |type_: &str, value: i32| {
        let mut obs = mid_update(2, (5, 3), (5, 5));
        obs.rollout
            .spec
            .strategy
            .as_mut()
            .unwrap()
            .canary
            .as_mut()
            .unwrap()
            .replica_progress_threshold = Some(ReplicaProgressThreshold {
            type_: type_.into(),
            value,
        });
        plan_step(&obs, at(50)).status.current_step_index
    };
    assert_eq!(
        plan_step(&mid_update(2, (5, 3), (5, 5)), at(50))
            .status
            .current_step_index,
        Some(2)
    );
    assert_eq!(with("Percent", 60), Some(3), "3 of 5 is 60%");
    assert_eq!(with("Percent", 61), Some(2));
    assert_eq!(with("Pods", 3), Some(3));
    assert_eq!(with("Pods", 4), Some(2));
}

#[test]
fn rollback_within_the_window_skips_the_steps() {
    // v1 (rev 1) → v2 (rev 2, stable) → the user goes back to v1, with a window of 1:
    // no ReplicaSet between v1 and v2, so it is within the window.
    let build = |revisions: i32| {
        let ro = RolloutBuilder::new("app:v1")
            .steps(v1_v2_steps())
            .spec(|s| {
                s.rollback_window = Some(sluice_api::rollout::RollbackWindowSpec {
                    revisions: Some(revisions),
                })
            })
            .settled_on("app:v2")
            .build();
        observed(ro, vec![rs("app:v1", 1, 1, 1), rs("app:v2", 10, 10, 2)])
    };
    let p = plan_step(&build(1), at(500));
    assert_eq!(p.status.current_step_index, Some(4));
    assert!(events(&p).contains(&(
        "SkipSteps".into(),
        "Rollback to active ReplicaSets within RollbackWindow".into()
    )));
    let mut sim = Sim {
        obs: build(1),
        now: 500,
    };
    sim.run_until_quiet(40);
    assert_eq!(sim.status().stable_rs, Some(hash("app:v1")));
    assert_eq!(
        sim.specs(),
        [(rs_name("app:v1"), 10), (rs_name("app:v2"), 0)].into()
    );

    // Without a window the steps start over.
    let p = plan_step(&build(0), at(500));
    assert_eq!(p.status.current_step_index, Some(0));
}

#[test]
fn anti_affinity_keeps_new_canary_pods_off_stable_nodes() {
    use sluice_api::rollout::{AntiAffinity, PreferredDuringSchedulingIgnoredDuringExecution};
    let ro = RolloutBuilder::new("app:v2")
        .canary(|c| {
            c.anti_affinity = Some(AntiAffinity {
                preferred_during_scheduling_ignored_during_execution: Some(
                    PreferredDuringSchedulingIgnoredDuringExecution { weight: 40 },
                ),
                required_during_scheduling_ignored_during_execution: None,
            })
        })
        .settled_on("app:v1")
        .build();
    let p = plan_step(&observed(ro.clone(), vec![rs("app:v1", 10, 10, 1)]), at(50));
    let Some(created) = p.changes.iter().find_map(|c| match c {
        Change::CreateReplicaSet(rs) => Some(rs),
        _ => None,
    }) else {
        panic!("{:?}", p.changes);
    };
    let template = created.spec.as_ref().unwrap().template.as_ref().unwrap();
    let affinity = template.spec.as_ref().unwrap().affinity.as_ref().unwrap();
    let preferred = affinity
        .pod_anti_affinity
        .as_ref()
        .unwrap()
        .preferred_during_scheduling_ignored_during_execution
        .as_ref()
        .unwrap();
    assert_eq!(preferred.len(), 1);
    assert_eq!(preferred[0].weight, 40);
    let term = &preferred[0].pod_affinity_term;
    assert_eq!(term.topology_key, "kubernetes.io/hostname");
    let expr = &term
        .label_selector
        .as_ref()
        .unwrap()
        .match_expressions
        .as_ref()
        .unwrap()[0];
    assert_eq!(
        (
            expr.key.as_str(),
            expr.operator.as_str(),
            expr.values.clone()
        ),
        (POD_TEMPLATE_HASH_LABEL, "In", Some(vec![hash("app:v1")]))
    );

    // The created ReplicaSet is recognised as the template's even with the injected rule
    // and a foreign hash label (adoption compares templates without it).
    let mut adopted = (**created).clone();
    adopted
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert(POD_TEMPLATE_HASH_LABEL.into(), "zzz".into());
    adopted.metadata.creation_timestamp = Some(time(40));
    let again = plan_step(
        &observed(ro, vec![rs("app:v1", 10, 10, 1), adopted]),
        at(50),
    );
    assert!(
        !again
            .changes
            .iter()
            .any(|c| matches!(c, Change::CreateReplicaSet(_)))
    );
    assert_eq!(again.status.current_pod_hash.as_deref(), Some("zzz"));
}

#[test]
fn scaling_a_settled_rollout_resizes_the_stable_and_its_desired_replicas_annotation() {
    let mut sim = Sim::new(RolloutBuilder::new("app:v1").steps(v1_v2_steps()).build());
    sim.run_until_quiet(20);
    // `kubectl scale rollout demo --replicas 4` (through the scale subresource)
    sim.obs.rollout.spec.replicas = Some(4);
    let p = sim.reconcile();
    assert_eq!(
        p.changes[0],
        Change::ScaleReplicaSet {
            name: rs_name("app:v1"),
            from: 10,
            replicas: 4,
            annotations: MetadataPatch {
                set: [(DESIRED_REPLICAS_ANNOTATION.into(), "4".into())].into(),
                remove: Default::default(),
            },
        }
    );
    sim.settle_pods();
    sim.run_until_quiet(10);
    assert_eq!(sim.status().hpa_replicas, Some(4));
    assert_eq!(sim.status().phase, Some(RolloutPhase::Healthy));

    sim.obs.rollout.spec.replicas = Some(0);
    sim.run_until_quiet(10);
    assert_eq!(sim.specs(), [(rs_name("app:v1"), 0)].into());
    assert_eq!(sim.status().phase, Some(RolloutPhase::Healthy));
}

#[test]
fn promote_while_user_paused_waits_for_unpause() {
    let mut obs = mid_update(1, (2, 2), (8, 8));
    obs.rollout.spec.paused = Some(true);
    obs.rollout.status.as_mut().unwrap().controller_pause = Some(true);
    let p = plan_step(&obs, at(50));
    assert_eq!(
        p.status.current_step_index,
        Some(1),
        "spec.paused holds the steps"
    );
    assert_eq!(phase_of(&p), (RolloutPhase::Paused, "manually paused"));
    obs.rollout.spec.paused = Some(false);
    let p = plan_step(&obs, at(51));
    assert_eq!(p.status.current_step_index, Some(2));
}

#[test]
fn a_restart_requested_in_the_current_second_is_due_now() {
    // Clients write restartAt at second precision (Argo CD's restart action, `sluice restart`)
    // and `now` is truncated to seconds: the reconcile in that same second must act, or the
    // Rollout sits in "rollout is restarting" with nothing requeued.
    let obs = restarting(200, &[10; 10]);
    assert!(Observed::needs_pods(&obs.rollout, at(200)));
    let p = plan_step(&obs, at(200));
    assert_eq!(evictions(&p), vec![format!("{}-0", rs_name("app:v1"))]);
}

/// Upstream's own e2e walk (`TestRolloutAbortRetryPromote`): create, update, the first
/// step, the pause, abort, retry, the timed pause ending, completion. The planner's Events,
/// in order, are upstream's (less `RolloutAddedToInformer`, which the controller records
/// before the first plan).
#[test]
fn a_canary_walk_plans_upstreams_events_in_upstreams_order() {
    let mut sim = Sim::new(
        RolloutBuilder::new("app:v1")
            .spec(|s| s.replicas = Some(1))
            .steps(vec![weight(50), pause_for("3s")])
            .build(),
    );
    let mut seen: Vec<(String, String)> = Vec::new();
    let run = |sim: &mut Sim, seen: &mut Vec<(String, String)>| {
        for p in sim.run_until_quiet(30) {
            seen.extend(events(&p));
        }
    };
    run(&mut sim, &mut seen);
    sim.set_image("app:v2");
    run(&mut sim, &mut seen);
    assert_eq!(sim.status().phase, Some(RolloutPhase::Paused));
    sim.obs.rollout.status.as_mut().unwrap().abort = Some(true);
    run(&mut sim, &mut seen);
    assert_eq!(sim.status().phase, Some(RolloutPhase::Degraded));
    sim.obs.rollout.status.as_mut().unwrap().abort = Some(false);
    run(&mut sim, &mut seen);
    assert_eq!(sim.status().phase, Some(RolloutPhase::Paused));
    sim.now += 3;
    run(&mut sim, &mut seen);
    assert_eq!(sim.status().phase, Some(RolloutPhase::Healthy));
    let (v1, v2) = (rs_name("app:v1"), rs_name("app:v2"));
    let (h1, h2) = (hash("app:v1"), hash("app:v2"));
    let want: Vec<(&str, String)> = vec![
        (
            "RolloutNotCompleted",
            format!("Rollout not completed, started update to revision 0 ({h1})"),
        ),
        ("RolloutUpdated", "Rollout updated to revision 1".into()),
        (
            "NewReplicaSetCreated",
            format!("Created ReplicaSet {v1} (revision 1)"),
        ),
        (
            "ScalingReplicaSet",
            format!("Scaled up ReplicaSet {v1} (revision 1) from 0 to 1"),
        ),
        (
            "RolloutCompleted",
            format!("Rollout completed update to revision 1 ({h1}): Initial deploy"),
        ),
        (
            "RolloutNotCompleted",
            format!("Rollout not completed, started update to revision 1 ({h2})"),
        ),
        ("RolloutUpdated", "Rollout updated to revision 2".into()),
        (
            "NewReplicaSetCreated",
            format!("Created ReplicaSet {v2} (revision 2)"),
        ),
        (
            "ScalingReplicaSet",
            format!("Scaled up ReplicaSet {v2} (revision 2) from 0 to 1"),
        ),
        (
            "RolloutStepCompleted",
            "Rollout step 1/2 completed (setWeight: 50)".into(),
        ),
        (
            "RolloutPaused",
            "Rollout is paused (CanaryPauseStep)".into(),
        ),
        (
            "ScalingReplicaSet",
            format!("Scaled down ReplicaSet {v2} (revision 2) from 1 to 0"),
        ),
        (
            "RolloutAborted",
            "Rollout aborted update to revision 2".into(),
        ),
        (
            "ScalingReplicaSet",
            format!("Scaled up ReplicaSet {v2} (revision 2) from 0 to 1"),
        ),
        (
            "RolloutStepCompleted",
            "Rollout step 1/2 completed (setWeight: 50)".into(),
        ),
        (
            "RolloutPaused",
            "Rollout is paused (CanaryPauseStep)".into(),
        ),
        (
            "RolloutStepCompleted",
            "Rollout step 2/2 completed (pause: 3s)".into(),
        ),
        ("RolloutResumed", "Rollout is resumed".into()),
        (
            "ScalingReplicaSet",
            format!("Scaled down ReplicaSet {v1} (revision 1) from 1 to 0"),
        ),
        (
            "RolloutCompleted",
            format!("Rollout completed update to revision 2 ({h2}): Completed all 2 canary steps"),
        ),
    ];
    let got: Vec<(&str, String)> = seen.iter().map(|(r, m)| (r.as_str(), m.clone())).collect();
    assert_eq!(got, want);
}
