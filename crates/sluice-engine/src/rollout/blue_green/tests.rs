//! Behaviour of the blue/green planner: whole walks through the in-memory cluster (the test
//! plays the ReplicaSet controller, the kubelet, the AnalysisRun controller and the person
//! who promotes or aborts), and single reconciles where one decision matters.

use std::collections::BTreeMap;
use std::time::Duration;

use sluice_api::common::{AnalysisPhase, SCALE_DOWN_DEADLINE_ANNOTATION};
use sluice_api::rollout::{
    BlueGreenStrategy, PauseReason, PreferredDuringSchedulingIgnoredDuringExecution,
    RolloutAnalysis, RolloutConditionType as Cond, RolloutPhase, RolloutStatus,
};

use crate::rollout::canary::MANAGED_BY_ROLLOUTS_ANNOTATION;
use crate::rollout::plan::{Change, Plan};
use crate::rollout::status::condition;
use crate::rollout::testing::*;
use crate::rollout::{Observed, plan_step};

const V1: &str = "app:v1";
const V2: &str = "app:v2";
const V3: &str = "app:v3";

/// A 3-replica blue/green Rollout of v1 with an active and a preview Service, `f` applied.
fn sim(f: impl FnOnce(&mut BlueGreenStrategy)) -> Sim {
    let ro = RolloutBuilder::new(V1)
        .spec(|s| s.replicas = Some(3))
        .blue_green(|b| {
            b.preview_service = Some(PREVIEW.to_string());
            f(b);
        })
        .build();
    let mut sim = Sim::new(ro);
    sim.add_services(&[ACTIVE, PREVIEW]);
    for t in ["smoke", "check"] {
        with_template(&mut sim, t);
    }
    sim
}

/// `sim(f)` rolled out to Healthy on v1.
fn healthy_v1(f: impl FnOnce(&mut BlueGreenStrategy)) -> Sim {
    let mut sim = sim(f);
    sim.run_until_quiet(30);
    assert_eq!(phase(sim.status()), (RolloutPhase::Healthy, String::new()));
    sim
}

fn phase(s: &RolloutStatus) -> (RolloutPhase, String) {
    (
        s.phase.clone().unwrap(),
        s.message.clone().unwrap_or_default(),
    )
}

fn spec_of(sim: &Sim, image: &str) -> i32 {
    sim.specs().get(&rs_name(image)).copied().unwrap_or(0)
}

fn selectors(sim: &Sim) -> (Option<String>, Option<String>) {
    (sim.selector(ACTIVE), sim.selector(PREVIEW))
}

fn bg_selectors(s: &RolloutStatus) -> (Option<String>, Option<String>) {
    let b = s.blue_green.clone().unwrap_or_default();
    (b.active_selector, b.preview_selector)
}

fn pause_reasons(s: &RolloutStatus) -> Vec<PauseReason> {
    s.pause_conditions()
        .iter()
        .map(|p| p.reason.clone())
        .collect()
}

/// Settle, then reconcile + settle, one simulated second apart, until quiet; the Events of
/// the walk.
fn walk(sim: &mut Sim) -> Vec<(String, String)> {
    sim.settle_pods();
    sim.run_until_quiet(40).iter().flat_map(events).collect()
}

/// Lets `seconds` pass and walks again.
fn after(sim: &mut Sim, seconds: i64) -> Vec<(String, String)> {
    sim.now += seconds;
    walk(sim)
}

fn promote(sim: &mut Sim) {
    sim.obs.rollout.status.as_mut().unwrap().pause_conditions = None;
}

fn with_template(sim: &mut Sim, name: &str) {
    let t = analysis_template(name);
    sim.obs.analysis_templates.insert(name.to_string(), t);
}

fn analysis(names: &[&str]) -> Option<RolloutAnalysis> {
    let RolloutAnalysis {
        templates, args, ..
    } = analysis_step(names).analysis.unwrap();
    Some(RolloutAnalysis {
        templates,
        args,
        ..Default::default()
    })
}

fn run_name(image: &str, revision: i64, infix: &str) -> String {
    format!("{NAME}-{}-{revision}-{infix}", hash(image))
}

#[test]
fn the_first_revision_becomes_stable_at_once_and_both_services_follow_it_when_it_is_up() {
    let mut sim = sim(|_| {});
    let events = walk(&mut sim);
    let s = sim.status();
    let h1 = hash(V1);
    assert_eq!(s.stable_rs.as_deref(), Some(h1.as_str()));
    assert_eq!(selectors(&sim), (Some(h1.clone()), Some(h1.clone())));
    assert_eq!(bg_selectors(s), (Some(h1.clone()), Some(h1.clone())));
    assert_eq!(spec_of(&sim, V1), 3);
    assert_eq!(s.available_replicas, Some(3));
    assert_eq!(s.hpa_replicas, Some(3));
    assert_eq!(
        s.selector.as_deref(),
        Some(format!("app=demo,rollouts-pod-template-hash={h1}").as_str()),
        "the scale selector is the active ReplicaSet's"
    );
    assert_eq!(s.current_step_index, None);
    assert_eq!(s.current_step_hash, None);
    assert_eq!(s.canary, None);
    let completed = events
        .iter()
        .position(|e| e.1.ends_with(": Initial deploy"))
        .expect("RolloutCompleted: Initial deploy");
    let switched = events
        .iter()
        .position(|e| {
            e.1.starts_with(&format!("Switched selector for service '{ACTIVE}'"))
        })
        .expect("the active Service is switched");
    assert!(completed < switched, "{events:?}");
    for (t, reason) in [
        (Cond::Healthy, "RolloutHealthy"),
        (Cond::Available, "AvailableReason"),
        (Cond::Completed, "RolloutCompleted"),
        (Cond::Progressing, "NewReplicaSetAvailable"),
    ] {
        let c = condition(s.conditions(), &t).unwrap();
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", reason));
    }
    let svc = sim.obs.services[ACTIVE].as_ref().unwrap();
    assert_eq!(
        svc.metadata.annotations.as_ref().unwrap()[MANAGED_BY_ROLLOUTS_ANNOTATION],
        NAME
    );
}

#[test]
fn an_update_comes_up_behind_the_preview_switches_when_available_and_the_old_set_waits_its_delay() {
    let mut sim = healthy_v1(|_| {});
    let (h1, h2) = (hash(V1), hash(V2));
    sim.set_image(V2);
    sim.reconcile(); // creates the v2 ReplicaSet
    let p = sim.reconcile(); // scales it, points the preview at it
    assert_eq!(selectors(&sim), (Some(h1.clone()), Some(h2.clone())));
    assert_eq!(scales(&p), vec![(rs_name(V2), 3)]);
    assert_eq!(
        phase(&p.status),
        (
            RolloutPhase::Progressing,
            "more replicas need to be updated".into()
        )
    );
    // Pods become Ready but before the reconcile that sees them the active stays on v1.
    sim.settle_pods();
    assert_eq!(sim.selector(ACTIVE), Some(h1.clone()));
    let p = sim.reconcile();
    assert_eq!(sim.selector(ACTIVE), Some(h2.clone()), "{:?}", p.changes);
    assert_eq!(p.status.stable_rs.as_deref(), Some(h2.as_str()));
    assert!(events(&p).contains(&(
        "RolloutCompleted".into(),
        format!("Rollout completed update to revision 2 ({h2}): Completed blue-green update")
    )));
    assert_eq!(phase(&p.status), (RolloutPhase::Healthy, String::new()));

    // The old ReplicaSet stays up with a scale-down deadline 30 s ahead...
    sim.now += 1;
    let p = sim.reconcile();
    let deadline = sim
        .rs_annotation(V1, SCALE_DOWN_DEADLINE_ANNOTATION)
        .expect("a scale-down deadline on the old ReplicaSet");
    assert_eq!(deadline, time(sim.now + 30).0.to_string());
    assert_eq!(spec_of(&sim, V1), 3);
    assert_eq!(p.requeue_after, Some(Duration::from_secs(30)));
    assert_eq!(phase(&p.status), (RolloutPhase::Healthy, String::new()));
    assert_eq!(p.status.replicas, Some(6));
    // ...and nothing happens before it passed...
    sim.now += 29;
    let p = sim.reconcile();
    assert!(scales(&p).is_empty(), "{:?}", p.changes);
    assert_eq!(p.requeue_after, Some(Duration::from_secs(1)));
    // ...then it goes to zero and loses the annotation.
    sim.now += 1;
    let p = sim.reconcile();
    assert_eq!(scales(&p), vec![(rs_name(V1), 0)]);
    assert_eq!(sim.rs_annotation(V1, SCALE_DOWN_DEADLINE_ANNOTATION), None);
}

#[test]
fn a_scale_down_delay_of_zero_scales_the_old_set_down_at_once() {
    let mut sim = healthy_v1(|b| b.scale_down_delay_seconds = Some(0));
    sim.set_image(V2);
    walk(&mut sim);
    assert_eq!(spec_of(&sim, V1), 0);
    assert_eq!(sim.rs_annotation(V1, SCALE_DOWN_DEADLINE_ANNOTATION), None);
}

#[test]
fn manual_promotion_waits_in_blue_green_pause_until_a_person_promotes() {
    let mut sim = healthy_v1(|b| b.auto_promotion_enabled = Some(false));
    let (h1, h2) = (hash(V1), hash(V2));
    sim.set_image(V2);
    let events = walk(&mut sim);
    let s = sim.status().clone();
    assert_eq!(phase(&s), (RolloutPhase::Paused, "BlueGreenPause".into()));
    assert_eq!(pause_reasons(&s), vec![PauseReason::BlueGreenPause]);
    assert_eq!(s.controller_pause, Some(true));
    assert_eq!(selectors(&sim), (Some(h1.clone()), Some(h2.clone())));
    assert_eq!((spec_of(&sim, V1), spec_of(&sim, V2)), (3, 3));
    assert!(events.contains(&(
        "RolloutPaused".into(),
        "Rollout is paused (BlueGreenPause)".into()
    )));
    let paused = condition(s.conditions(), &Cond::Paused).unwrap();
    assert_eq!(paused.status, "True");

    // Time alone changes nothing.
    let events = after(&mut sim, 3600);
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(sim.selector(ACTIVE), Some(h1.clone()));

    promote(&mut sim);
    let events = walk(&mut sim);
    let s = sim.status();
    assert_eq!(sim.selector(ACTIVE), Some(h2.clone()));
    assert_eq!(s.stable_rs.as_deref(), Some(h2.as_str()));
    assert_eq!(s.controller_pause, None, "the promote signal is consumed");
    assert_eq!(phase(s), (RolloutPhase::Healthy, String::new()));
    assert!(
        events
            .iter()
            .any(|e| e.0 == "RolloutResumed" || e.0 == "SwitchService"),
        "{events:?}"
    );
}

#[test]
fn auto_promotion_seconds_pause_and_then_switch_without_a_person() {
    let mut sim = healthy_v1(|b| b.auto_promotion_seconds = Some(20));
    sim.set_image(V2);
    walk(&mut sim);
    let s = sim.status().clone();
    assert_eq!(pause_reasons(&s), vec![PauseReason::BlueGreenPause]);
    let started = s.pause_conditions()[0].start_time.0.as_second();
    // The reconcile is requeued for when the pause ends.
    let p = plan_step(&sim.obs, at(started + 5));
    assert_eq!(p.requeue_after, Some(Duration::from_secs(15)));
    assert_eq!(sim.selector(ACTIVE), Some(hash(V1)));
    sim.now = started + 20;
    walk(&mut sim);
    assert_eq!(sim.selector(ACTIVE), Some(hash(V2)));
    assert_eq!(sim.status().stable_rs, Some(hash(V2)));
    assert!(sim.status().pause_conditions().is_empty());
}

#[test]
fn preview_replica_count_keeps_the_preview_small_until_the_promotion_then_scales_up_before_the_switch()
 {
    let mut sim = healthy_v1(|b| {
        b.preview_replica_count = Some(1);
        b.auto_promotion_enabled = Some(false);
    });
    sim.set_image(V2);
    walk(&mut sim);
    let s = sim.status().clone();
    assert_eq!(phase(&s), (RolloutPhase::Paused, "BlueGreenPause".into()));
    assert_eq!((spec_of(&sim, V1), spec_of(&sim, V2)), (3, 1));
    // desired, current, updated, ready, available: upstream's (2, 3, 1, 2, 2) at 3 replicas.
    assert_eq!(
        (
            s.replicas,
            s.updated_replicas,
            s.ready_replicas,
            s.available_replicas
        ),
        (Some(4), Some(1), Some(3), Some(3))
    );
    promote(&mut sim);
    let p = sim.reconcile();
    assert_eq!(
        p.status
            .blue_green
            .as_ref()
            .unwrap()
            .scale_up_preview_check_point,
        Some(true),
        "the checkpoint is passed once promoted"
    );
    assert_eq!(sim.selector(ACTIVE), Some(hash(V1)), "not switched at 1/3");
    sim.settle_pods();
    sim.now += 1;
    let p = sim.reconcile();
    assert_eq!(scales(&p), vec![(rs_name(V2), 3)]);
    assert_eq!(
        sim.selector(ACTIVE),
        Some(hash(V1)),
        "not switched before 3/3"
    );
    walk(&mut sim);
    assert_eq!(sim.selector(ACTIVE), Some(hash(V2)));
    let s = sim.status();
    assert_eq!(s.stable_rs, Some(hash(V2)));
    assert_eq!(
        s.blue_green.as_ref().unwrap().scale_up_preview_check_point,
        None,
        "reset once promoted"
    );
}

#[test]
fn pre_promotion_analysis_must_pass_before_the_switch() {
    let mut sim = healthy_v1(|b| b.pre_promotion_analysis = analysis(&["smoke"]));
    sim.set_image(V2);
    walk(&mut sim);
    let pre = run_name(V2, 2, "pre");
    let s = sim.status().clone();
    assert_eq!(
        s.blue_green
            .as_ref()
            .unwrap()
            .pre_promotion_analysis_run_status
            .as_ref()
            .map(|r| r.name.as_str()),
        Some(pre.as_str())
    );
    let run = &sim.obs.analysis_runs[0];
    let labels = run.metadata.labels.as_ref().unwrap();
    assert_eq!(labels["rollout-type"], "PrePromotion");
    assert_eq!(labels["rollouts-pod-template-hash"], hash(V2));
    assert_eq!(sim.selector(ACTIVE), Some(hash(V1)), "waits for the run");
    assert_eq!(
        phase(&s),
        (
            RolloutPhase::Progressing,
            "active service cutover pending".into()
        )
    );

    set_run_phase(&mut sim.obs, &pre, AnalysisPhase::Successful, None);
    let events = walk(&mut sim);
    assert_eq!(sim.selector(ACTIVE), Some(hash(V2)));
    assert_eq!(sim.status().stable_rs, Some(hash(V2)));
    assert!(events.contains(&(
        "AnalysisRunSuccessful".into(),
        format!("PrePromotion Analysis Run '{pre}' Status New: 'Successful' Previous: 'Pending'")
    )));
}

#[test]
fn a_failed_pre_promotion_analysis_aborts_and_the_preview_is_scaled_down_after_the_abort_delay() {
    let mut sim = healthy_v1(|b| b.pre_promotion_analysis = analysis(&["smoke"]));
    sim.set_image(V2);
    walk(&mut sim);
    let pre = run_name(V2, 2, "pre");
    set_run_phase(
        &mut sim.obs,
        &pre,
        AnalysisPhase::Failed,
        Some("error rate 9%"),
    );
    walk(&mut sim);
    let s = sim.status().clone();
    assert_eq!(
        phase(&s),
        (
            RolloutPhase::Degraded,
            "RolloutAborted: Rollout aborted update to revision 2: Blue/green pre-promotion analysis phase error/failed: error rate 9%".into()
        )
    );
    assert_eq!(s.abort, Some(true));
    assert_eq!(sim.selector(ACTIVE), Some(hash(V1)));
    assert_eq!(spec_of(&sim, V1), 3, "the stable keeps serving");
    // The preview waits abortScaleDownDelaySeconds (30 by default), annotated meanwhile.
    assert_eq!(spec_of(&sim, V2), 3);
    assert!(
        sim.rs_annotation(V2, SCALE_DOWN_DEADLINE_ANNOTATION)
            .is_some()
    );
    after(&mut sim, 30);
    assert_eq!(spec_of(&sim, V2), 0);
    assert_eq!(spec_of(&sim, V1), 3);
    assert_eq!(
        sim.selector(PREVIEW),
        Some(hash(V2)),
        "upstream leaves the preview on the aborted ReplicaSet"
    );
}

#[test]
fn a_failed_post_promotion_analysis_switches_the_active_service_back_and_aborts() {
    let mut sim = healthy_v1(|b| b.post_promotion_analysis = analysis(&["check"]));
    sim.set_image(V2);
    walk(&mut sim);
    let post = run_name(V2, 2, "post");
    let s = sim.status().clone();
    assert_eq!(sim.selector(ACTIVE), Some(hash(V2)), "switched first");
    assert_eq!(
        s.stable_rs,
        Some(hash(V1)),
        "stable only after the analysis"
    );
    assert_eq!(
        phase(&s),
        (
            RolloutPhase::Progressing,
            "waiting for analysis to complete".into()
        )
    );
    assert_eq!(sim.obs.analysis_runs.len(), 1);
    assert_eq!(
        sim.obs.analysis_runs[0].metadata.name.as_deref(),
        Some(post.as_str())
    );
    // Without an explicit scaleDownDelaySeconds the old ReplicaSet waits for the analysis.
    assert_eq!(spec_of(&sim, V1), 3);

    set_run_phase(&mut sim.obs, &post, AnalysisPhase::Failed, None);
    let events = walk(&mut sim);
    let s = sim.status().clone();
    assert_eq!(
        sim.selector(ACTIVE),
        Some(hash(V1)),
        "switched back: {events:?}"
    );
    assert_eq!(s.stable_rs, Some(hash(V1)));
    assert_eq!(
        phase(&s),
        (
            RolloutPhase::Degraded,
            "RolloutAborted: Rollout aborted update to revision 2: Blue/green post-promotion analysis phase error/failed".into()
        )
    );
    assert_eq!(spec_of(&sim, V1), 3);
    after(&mut sim, 30);
    assert_eq!(spec_of(&sim, V2), 0);
}

#[test]
fn a_successful_post_promotion_analysis_makes_the_new_set_stable() {
    let mut sim = healthy_v1(|b| b.post_promotion_analysis = analysis(&["check"]));
    sim.set_image(V2);
    walk(&mut sim);
    let post = run_name(V2, 2, "post");
    set_run_phase(&mut sim.obs, &post, AnalysisPhase::Successful, None);
    let events = walk(&mut sim);
    assert_eq!(sim.status().stable_rs, Some(hash(V2)));
    assert!(events.contains(&(
        "RolloutCompleted".into(),
        format!(
            "Rollout completed update to revision 2 ({}): Completed blue-green update",
            hash(V2)
        )
    )));
    assert!(
        sim.rs_annotation(V1, SCALE_DOWN_DEADLINE_ANNOTATION)
            .is_some()
    );
}

#[test]
fn abort_during_the_preview_keeps_the_stable_active_and_retry_starts_again() {
    let mut sim = healthy_v1(|b| b.auto_promotion_enabled = Some(false));
    sim.set_image(V2);
    walk(&mut sim);
    sim.obs.rollout.status.as_mut().unwrap().abort = Some(true);
    walk(&mut sim);
    let s = sim.status().clone();
    assert_eq!(
        phase(&s),
        (
            RolloutPhase::Degraded,
            "RolloutAborted: Rollout aborted update to revision 2".into()
        )
    );
    assert!(s.pause_conditions().is_empty());
    assert!(s.aborted_at.is_some());
    assert_eq!(sim.selector(ACTIVE), Some(hash(V1)));
    after(&mut sim, 30);
    assert_eq!((spec_of(&sim, V1), spec_of(&sim, V2)), (3, 0));

    // Retry: the preview comes back up and waits for the promotion again.
    sim.obs.rollout.status.as_mut().unwrap().abort = Some(false);
    walk(&mut sim);
    let s = sim.status();
    assert_eq!(phase(s), (RolloutPhase::Paused, "BlueGreenPause".into()));
    assert_eq!(spec_of(&sim, V2), 3);
    assert_eq!(sim.rs_annotation(V2, SCALE_DOWN_DEADLINE_ANNOTATION), None);
}

#[test]
fn abort_after_the_switch_sends_production_traffic_back_to_the_stable() {
    let mut sim = healthy_v1(|b| b.post_promotion_analysis = analysis(&["check"]));
    sim.set_image(V2);
    walk(&mut sim);
    assert_eq!(sim.selector(ACTIVE), Some(hash(V2)));
    sim.obs.rollout.status.as_mut().unwrap().abort = Some(true);
    let p = sim.reconcile();
    assert_eq!(sim.selector(ACTIVE), Some(hash(V1)), "{:?}", p.changes);
    assert!(
        run_changes(&p).1.contains(&run_name(V2, 2, "post")),
        "the running post-promotion run is terminated"
    );
    assert_eq!(p.status.phase, Some(RolloutPhase::Degraded));
}

#[test]
fn an_abort_scale_down_delay_of_zero_leaves_the_preview_up() {
    let mut sim = healthy_v1(|b| {
        b.auto_promotion_enabled = Some(false);
        b.abort_scale_down_delay_seconds = Some(0);
    });
    sim.set_image(V2);
    walk(&mut sim);
    sim.obs.rollout.status.as_mut().unwrap().abort = Some(true);
    walk(&mut sim);
    after(&mut sim, 3600);
    assert_eq!((spec_of(&sim, V1), spec_of(&sim, V2)), (3, 3));
    assert_eq!(sim.rs_annotation(V2, SCALE_DOWN_DEADLINE_ANNOTATION), None);
}

#[test]
fn promote_full_skips_the_pause_and_the_analyses() {
    let mut sim = healthy_v1(|b| {
        b.auto_promotion_enabled = Some(false);
        b.pre_promotion_analysis = analysis(&["smoke"]);
        b.preview_replica_count = Some(1);
    });
    sim.set_image(V2);
    walk(&mut sim);
    assert_eq!(spec_of(&sim, V2), 1);
    sim.obs.rollout.status.as_mut().unwrap().promote_full = Some(true);
    walk(&mut sim);
    let s = sim.status();
    assert_eq!(sim.selector(ACTIVE), Some(hash(V2)));
    assert_eq!(s.stable_rs, Some(hash(V2)));
    assert_eq!(s.promote_full, None);
    assert_eq!(spec_of(&sim, V2), 3);
    assert!(sim.obs.analysis_runs.iter().all(
        |r| r.spec.is_terminated() || r.status.as_ref().is_some_and(|s| s.phase.is_completed())
    ));
}

#[test]
fn spec_paused_holds_both_services() {
    let mut sim = healthy_v1(|_| {});
    sim.obs.rollout.spec.paused = Some(true);
    sim.set_image(V2);
    walk(&mut sim);
    assert_eq!(selectors(&sim), (Some(hash(V1)), Some(hash(V1))));
    assert_eq!(
        phase(sim.status()),
        (RolloutPhase::Paused, "manually paused".into())
    );
    sim.obs.rollout.spec.paused = Some(false);
    walk(&mut sim);
    assert_eq!(selectors(&sim), (Some(hash(V2)), Some(hash(V2))));
}

#[test]
fn rolling_back_to_a_set_within_its_scale_down_delay_is_instant() {
    let mut sim = healthy_v1(|b| b.auto_promotion_enabled = Some(false));
    sim.set_image(V2);
    walk(&mut sim);
    promote(&mut sim);
    walk(&mut sim);
    assert!(
        sim.rs_annotation(V1, SCALE_DOWN_DEADLINE_ANNOTATION)
            .is_some()
    );
    // Back to v1 within the delay: no pause, the active Service goes back at once.
    sim.set_image(V1);
    let events = walk(&mut sim);
    let s = sim.status();
    assert_eq!(sim.selector(ACTIVE), Some(hash(V1)), "{events:?}");
    assert_eq!(s.stable_rs, Some(hash(V1)));
    assert!(s.pause_conditions().is_empty());
    assert!(
        events.iter().any(|e| e.1.ends_with(": Fast rollback")),
        "{events:?}"
    );
    assert_eq!(sim.rs_annotation(V1, SCALE_DOWN_DEADLINE_ANNOTATION), None);
}

#[test]
fn scale_down_delay_revision_limit_scales_the_oldest_waiting_sets_down_at_once() {
    let mut sim = healthy_v1(|b| {
        b.scale_down_delay_seconds = Some(600);
        b.scale_down_delay_revision_limit = Some(1);
    });
    sim.set_image(V2);
    walk(&mut sim);
    sim.set_image(V3);
    walk(&mut sim);
    assert_eq!(
        (spec_of(&sim, V1), spec_of(&sim, V2), spec_of(&sim, V3)),
        (0, 3, 3),
        "only the newest old ReplicaSet waits out its delay"
    );
    assert!(
        sim.rs_annotation(V2, SCALE_DOWN_DEADLINE_ANNOTATION)
            .is_some()
    );
}

#[test]
fn progress_deadline_exceeded_degrades_and_progress_deadline_abort_aborts() {
    for abort in [false, true] {
        let mut sim = healthy_v1(|_| {});
        sim.obs.rollout.spec.progress_deadline_seconds = Some(10);
        sim.obs.rollout.spec.progress_deadline_abort = Some(abort);
        sim.set_image(V2);
        sim.reconcile();
        sim.now += 1;
        sim.reconcile(); // v2 scaled to 3; its pods never become ready
        sim.now += 11;
        let p = sim.reconcile();
        let (phase_, message) = phase(&p.status);
        assert_eq!(phase_, RolloutPhase::Degraded, "abort: {abort}");
        let want = if abort {
            "RolloutAborted: Rollout aborted update to revision 2: ReplicaSet"
        } else {
            "ProgressDeadlineExceeded: ReplicaSet"
        };
        assert!(message.starts_with(want), "{message}");
        assert_eq!(sim.selector(ACTIVE), Some(hash(V1)));
        assert_eq!(spec_of(&sim, V1), 3);
    }
}

#[test]
fn an_old_set_waiting_out_its_delay_is_no_lack_of_progress() {
    let mut sim = healthy_v1(|b| b.scale_down_delay_seconds = Some(3600));
    sim.obs.rollout.spec.progress_deadline_seconds = Some(10);
    sim.obs.rollout.spec.progress_deadline_abort = Some(true);
    sim.set_image(V2);
    walk(&mut sim);
    after(&mut sim, 120);
    let s = sim.status();
    assert_eq!(phase(s), (RolloutPhase::Healthy, String::new()));
    assert_eq!(spec_of(&sim, V1), 3);
}

#[test]
fn preview_and_active_metadata_follow_the_sets_roles() {
    let meta = |k: &str, v: &str| sluice_api::common::PodTemplateMetadata {
        labels: Some(BTreeMap::from([(k.to_string(), v.to_string())])),
        annotations: None,
    };
    let mut sim = healthy_v1(|b| {
        b.auto_promotion_enabled = Some(false);
        b.active_metadata = Some(meta("role", "active"));
        b.preview_metadata = Some(meta("role", "preview"));
    });
    let role = |sim: &Sim, image: &str| {
        let name = rs_name(image);
        sim.obs
            .replica_sets
            .iter()
            .find(|rs| rs.metadata.name.as_deref() == Some(name.as_str()))
            .and_then(|rs| {
                rs.spec
                    .as_ref()?
                    .template
                    .as_ref()?
                    .metadata
                    .as_ref()?
                    .labels
                    .clone()
            })
            .and_then(|l| l.get("role").cloned())
    };
    assert_eq!(role(&sim, V1).as_deref(), Some("active"));
    sim.set_image(V2);
    walk(&mut sim);
    assert_eq!(role(&sim, V2).as_deref(), Some("preview"));
    promote(&mut sim);
    walk(&mut sim);
    assert_eq!(role(&sim, V2).as_deref(), Some("active"));
}

#[test]
fn anti_affinity_keeps_the_new_set_off_the_stables_nodes() {
    let mut sim = healthy_v1(|b| {
        b.anti_affinity = Some(sluice_api::rollout::AntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(
                PreferredDuringSchedulingIgnoredDuringExecution { weight: 50 },
            ),
            required_during_scheduling_ignored_during_execution: None,
        })
    });
    sim.set_image(V2);
    let p = sim.reconcile();
    // The update is announced first (RolloutNotCompleted), then the ReplicaSet created.
    let Some(rs) = p.changes.iter().find_map(|c| match c {
        Change::CreateReplicaSet(rs) => Some(rs),
        _ => None,
    }) else {
        panic!("{:?}", p.changes);
    };
    let terms = rs
        .spec
        .as_ref()
        .unwrap()
        .template
        .as_ref()
        .unwrap()
        .spec
        .as_ref()
        .unwrap()
        .affinity
        .as_ref()
        .unwrap()
        .pod_anti_affinity
        .as_ref()
        .unwrap()
        .preferred_during_scheduling_ignored_during_execution
        .clone()
        .unwrap();
    assert_eq!(terms.len(), 1);
    assert_eq!(terms[0].weight, 50);
    let expr = &terms[0]
        .pod_affinity_term
        .label_selector
        .as_ref()
        .unwrap()
        .match_expressions
        .as_ref()
        .unwrap()[0];
    assert_eq!(expr.values, Some(vec![hash(V1)]));
}

#[test]
fn switching_to_canary_gives_the_services_back_and_keeps_no_blue_green_status() {
    let mut sim = healthy_v1(|b| b.scale_down_delay_seconds = Some(5));
    // As upstream's TestBlueGreenToCanary: 2 replicas, a new template and a canary with
    // setWeight 50 and a pause.
    sim.obs.rollout.spec.replicas = Some(2);
    walk(&mut sim);
    {
        let strategy = sim.obs.rollout.spec.strategy.as_mut().unwrap();
        strategy.blue_green = None;
        strategy.canary = Some(sluice_api::rollout::CanaryStrategy {
            steps: Some(vec![weight(50), pause()]),
            ..Default::default()
        });
    }
    sim.set_image(V2);
    walk(&mut sim);
    let s = sim.status();
    assert_eq!(phase(s), (RolloutPhase::Paused, "CanaryPauseStep".into()));
    assert_eq!(s.blue_green, None);
    // desired, current, updated, ready, available: upstream's (2, 2, 1, 2, 2).
    assert_eq!(
        (
            s.replicas,
            s.updated_replicas,
            s.ready_replicas,
            s.available_replicas
        ),
        (Some(2), Some(1), Some(2), Some(2))
    );
    for svc in [ACTIVE, PREVIEW] {
        let svc = sim.obs.services[svc].as_ref().unwrap();
        assert_eq!(
            svc.spec.as_ref().unwrap().selector,
            Some(BTreeMap::from([("app".to_string(), NAME.to_string())])),
            "the hash selector is gone"
        );
        assert!(
            svc.metadata
                .annotations
                .as_ref()
                .is_none_or(|a| !a.contains_key(MANAGED_BY_ROLLOUTS_ANNOTATION))
        );
    }
}

#[test]
fn switching_a_healthy_canary_to_blue_green_points_the_new_services_without_a_new_set() {
    let mut sim = Sim::new(
        RolloutBuilder::new(V1)
            .spec(|s| s.replicas = Some(3))
            .steps(vec![weight(50), pause()])
            .build(),
    );
    sim.run_until_quiet(30);
    sim.add_services(&[ACTIVE, PREVIEW]);
    {
        let strategy = sim.obs.rollout.spec.strategy.as_mut().unwrap();
        strategy.canary = None;
        strategy.blue_green = Some(BlueGreenStrategy {
            active_service: ACTIVE.into(),
            preview_service: Some(PREVIEW.into()),
            ..Default::default()
        });
    }
    sim.obs.rollout.metadata.generation = Some(2);
    walk(&mut sim);
    let s = sim.status();
    assert_eq!(sim.obs.replica_sets.len(), 1);
    assert_eq!(selectors(&sim), (Some(hash(V1)), Some(hash(V1))));
    assert_eq!(phase(s), (RolloutPhase::Healthy, String::new()));
    assert_eq!(s.current_step_index, None);
    assert_eq!(s.current_step_hash, None);
}

#[test]
fn a_restart_evicts_old_pods_within_max_unavailable() {
    let mut sim = healthy_v1(|b| {
        b.max_unavailable = Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    });
    sim.obs.rollout.spec.restart_at = Some(time(sim.now));
    sim.obs.pods = (0..3).map(|n| pod(V1, n, 10)).collect();
    let p = plan_step(&sim.obs, at(sim.now + 1));
    let evicted: Vec<&Change> = p
        .changes
        .iter()
        .filter(|c| matches!(c, Change::EvictPod { .. }))
        .collect();
    assert_eq!(evicted.len(), 1, "{:?}", p.changes);
    assert_eq!(
        phase(&p.status),
        (RolloutPhase::Progressing, "rollout is restarting".into())
    );
}

/// Every bad input of the issue: an InvalidSpec naming the field, no Service selector
/// changed, no ReplicaSet scaled, created or deleted.
#[test]
fn bad_input_is_invalid_spec_naming_the_field_and_touches_nothing() {
    type Edit = fn(&mut Observed);
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "empty activeService",
            |o| bg(o).active_service = String::new(),
            "spec.strategy.blueGreen.activeService: must name",
        ),
        (
            "active and preview the same",
            |o| bg(o).preview_service = Some(ACTIVE.into()),
            "spec.strategy.blueGreen.previewService: This rollout uses the same service",
        ),
        (
            "active Service missing",
            |o| {
                o.services.remove(ACTIVE);
            },
            "spec.strategy.blueGreen.activeService: service \"demo-active\" not found",
        ),
        (
            "preview Service missing",
            |o| {
                o.services.insert(PREVIEW.into(), None);
            },
            "spec.strategy.blueGreen.previewService: service \"demo-preview\" not found",
        ),
        (
            "selector cannot select the pods",
            |o| {
                let svc = o.services.get_mut(ACTIVE).unwrap().as_mut().unwrap();
                svc.spec
                    .as_mut()
                    .unwrap()
                    .selector
                    .as_mut()
                    .unwrap()
                    .insert("tier".into(), "web".into());
            },
            "spec.strategy.blueGreen.activeService: Service \"demo-active\" has unmatch label \"tier\"",
        ),
        (
            "Service of another Rollout",
            |o| {
                let svc = o.services.get_mut(PREVIEW).unwrap().as_mut().unwrap();
                svc.metadata.annotations = Some(BTreeMap::from([(
                    MANAGED_BY_ROLLOUTS_ANNOTATION.to_string(),
                    "other".to_string(),
                )]));
            },
            "spec.strategy.blueGreen.previewService: Service \"demo-preview\" is managed by another Rollout",
        ),
        (
            "previewReplicaCount above replicas",
            |o| bg(o).preview_replica_count = Some(4),
            "spec.strategy.blueGreen.previewReplicaCount: 4 is more than spec.replicas (3)",
        ),
        (
            "negative scaleDownDelaySeconds",
            |o| bg(o).scale_down_delay_seconds = Some(-1),
            "spec.strategy.blueGreen.scaleDownDelaySeconds: must be greater than or equal to 0, got -1",
        ),
        (
            "negative abortScaleDownDelaySeconds",
            |o| bg(o).abort_scale_down_delay_seconds = Some(-30),
            "spec.strategy.blueGreen.abortScaleDownDelaySeconds: must be greater than or equal to 0",
        ),
        (
            "negative autoPromotionSeconds",
            |o| bg(o).auto_promotion_seconds = Some(-5),
            "spec.strategy.blueGreen.autoPromotionSeconds: must be greater",
        ),
        (
            "negative previewReplicaCount",
            |o| bg(o).preview_replica_count = Some(-1),
            "spec.strategy.blueGreen.previewReplicaCount: must be greater",
        ),
        (
            "revision limit above the history",
            |o| bg(o).scale_down_delay_revision_limit = Some(11),
            "spec.strategy.blueGreen.scaleDownDelayRevisionLimit: This rollout's revision history limit",
        ),
        (
            "bad maxUnavailable",
            |o| {
                bg(o).max_unavailable = Some(
                    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(
                        "half".into(),
                    ),
                )
            },
            "spec.strategy.blueGreen.maxUnavailable: invalid value \"half\"",
        ),
        (
            "antiAffinity with both kinds",
            |o| {
                bg(o).anti_affinity = Some(sluice_api::rollout::AntiAffinity {
                    preferred_during_scheduling_ignored_during_execution: Some(
                        PreferredDuringSchedulingIgnoredDuringExecution { weight: 1 },
                    ),
                    required_during_scheduling_ignored_during_execution: Some(Default::default()),
                })
            },
            "spec.strategy.blueGreen.antiAffinity: AntiAffinity must have exactly one strategy",
        ),
        (
            "a missing pre-promotion template",
            |o| bg(o).pre_promotion_analysis = analysis(&["nowhere"]),
            "spec.strategy.blueGreen.prePromotionAnalysis.templates[0]: AnalysisTemplate 'nowhere' not found",
        ),
        (
            "an activeMetadata label the API server would refuse",
            |o| {
                bg(o).active_metadata = Some(sluice_api::common::PodTemplateMetadata {
                    labels: Some([("role".to_string(), "active!".to_string())].into()),
                    annotations: None,
                })
            },
            "spec.strategy.blueGreen.activeMetadata.labels: Invalid value: \"active!\"",
        ),
        (
            "a previewMetadata label key the API server would refuse",
            |o| {
                bg(o).preview_metadata = Some(sluice_api::common::PodTemplateMetadata {
                    labels: Some([("-role".to_string(), "preview".to_string())].into()),
                    annotations: None,
                })
            },
            "spec.strategy.blueGreen.previewMetadata.labels: Invalid value: \"-role\"",
        ),
        (
            "a post-promotion analysis without templates",
            |o| {
                bg(o).post_promotion_analysis = Some(RolloutAnalysis::default());
            },
            "spec.strategy.blueGreen.postPromotionAnalysis.templates: an analysis needs at least one template",
        ),
    ];
    for (name, edit, want) in cases {
        // Mid-update: v1 stable and active, v2 behind the preview, not yet switched.
        let mut sim = healthy_v1(|b| b.auto_promotion_enabled = Some(false));
        sim.set_image(V2);
        walk(&mut sim);
        edit(&mut sim.obs);
        let before = (selectors(&sim), sim.specs());
        sim.obs.rollout.metadata.generation = Some(3);
        let p = plan_step(&sim.obs, at(sim.now + 1));
        let (phase_, message) = phase(&p.status);
        assert_eq!(phase_, RolloutPhase::Degraded, "{name}");
        assert!(
            message.starts_with(&format!("InvalidSpec: {want}")),
            "{name}: {message}"
        );
        let touching: Vec<&Change> = p
            .changes
            .iter()
            .filter(|c| !matches!(c, Change::Event { .. }))
            .collect();
        assert!(touching.is_empty(), "{name}: {touching:?}");
        sim.apply(&p);
        assert_eq!(before, (selectors(&sim), sim.specs()), "{name}");
    }
}

fn bg(o: &mut Observed) -> &mut BlueGreenStrategy {
    o.rollout
        .spec
        .strategy
        .as_mut()
        .unwrap()
        .blue_green
        .as_mut()
        .unwrap()
}

#[test]
fn an_inconclusive_pre_promotion_run_pauses_and_a_plain_promote_runs_it_again() {
    let mut sim = healthy_v1(|b| b.pre_promotion_analysis = analysis(&["smoke"]));
    sim.set_image(V2);
    walk(&mut sim);
    let pre = run_name(V2, 2, "pre");
    set_run_phase(&mut sim.obs, &pre, AnalysisPhase::Inconclusive, None);
    walk(&mut sim);
    let s = sim.status().clone();
    assert_eq!(
        pause_reasons(&s),
        vec![PauseReason::InconclusiveAnalysisRun]
    );
    assert_eq!(
        phase(&s),
        (RolloutPhase::Paused, "InconclusiveAnalysisRun".into())
    );
    promote(&mut sim);
    let p = sim.reconcile();
    assert_eq!(run_changes(&p).0, vec![format!("{pre}.1")]);
}

/// The status written at each moment of a manual update reads, phase by phase, as Argo CD and
/// the CLI expect (COMPAT §4), and no status is ever Healthy while the active Service selects
/// an old ReplicaSet.
#[test]
fn every_status_of_a_walk_has_a_consistent_phase() {
    let mut sim = healthy_v1(|b| {
        b.auto_promotion_enabled = Some(false);
        b.post_promotion_analysis = analysis(&["check"]);
    });
    sim.set_image(V2);
    let mut seen = Vec::new();
    let mut record = |p: &Plan| {
        let m = phase(&p.status);
        if seen.last() != Some(&m) {
            seen.push(m.clone());
        }
        if m.0 == RolloutPhase::Healthy {
            let b = p.status.blue_green.as_ref().unwrap();
            assert_eq!(b.active_selector, p.status.current_pod_hash);
            assert_eq!(p.status.stable_rs, p.status.current_pod_hash);
        }
    };
    for p in sim.run_until_quiet(40) {
        record(&p);
    }
    promote(&mut sim);
    for p in sim.run_until_quiet(40) {
        record(&p);
    }
    set_run_phase(
        &mut sim.obs,
        &run_name(V2, 2, "post"),
        AnalysisPhase::Successful,
        None,
    );
    for p in sim.run_until_quiet(40) {
        record(&p);
    }
    let messages: Vec<String> = seen.iter().map(|(p, m)| format!("{p:?} {m}")).collect();
    assert_eq!(
        messages,
        vec![
            "Progressing more replicas need to be updated",
            "Paused BlueGreenPause",
            "Progressing waiting for analysis to complete",
            "Healthy ",
        ],
        "{messages:#?}"
    );
}

/// What can happen to a blue/green Rollout between two reconciles.
#[derive(Debug, Clone, Copy)]
enum Happening {
    Tick(i64),
    PodsReady,
    Image(usize),
    Promote,
    PromoteFull,
    Abort,
    Retry,
    TogglePaused,
}

fn happening() -> impl proptest::strategy::Strategy<Value = Happening> {
    use proptest::prelude::*;
    prop_oneof![
        (1..45i64).prop_map(Happening::Tick),
        Just(Happening::PodsReady),
        (0..3usize).prop_map(Happening::Image),
        Just(Happening::Promote),
        Just(Happening::PromoteFull),
        Just(Happening::Abort),
        Just(Happening::Retry),
        Just(Happening::TogglePaused),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]
    /// Whatever happens in whatever order (updates, time, promotes, aborts, pauses), the
    /// stable ReplicaSet is never scaled below `replicas`, the active Service never selects a
    /// ReplicaSet scaled to zero, and Healthy always means the active Service selects the
    /// current, stable ReplicaSet.
    #[test]
    fn traffic_never_goes_to_a_scaled_down_set_and_the_stable_keeps_its_size(
        manual in proptest::bool::ANY,
        preview_count in proptest::option::of(1..3i32),
        happenings in proptest::collection::vec(happening(), 0..40),
    ) {
        let mut sim = healthy_v1(|b| {
            b.auto_promotion_enabled = Some(!manual);
            b.preview_replica_count = preview_count;
        });
        for h in happenings {
            let status = sim.obs.rollout.status.as_mut().unwrap();
            match h {
                Happening::Tick(s) => sim.now += s,
                Happening::PodsReady => sim.settle_pods(),
                Happening::Image(i) => sim.set_image([V1, V2, V3][i]),
                Happening::Promote => status.pause_conditions = None,
                Happening::PromoteFull => status.promote_full = Some(true),
                Happening::Abort => status.abort = Some(true),
                Happening::Retry => status.abort = Some(false),
                Happening::TogglePaused => {
                    let spec = &mut sim.obs.rollout.spec;
                    spec.paused = Some(!spec.is_paused());
                }
            }
            let p = sim.reconcile();
            sim.now += 1;
            let specs: BTreeMap<String, i32> = sim
                .obs
                .replica_sets
                .iter()
                .map(|rs| {
                    (
                        rs.metadata.labels.as_ref().unwrap()[sluice_api::common::POD_TEMPLATE_HASH_LABEL].clone(),
                        rs.spec.as_ref().unwrap().replicas.unwrap_or(0),
                    )
                })
                .collect();
            let s = &p.status;
            if let Some(stable) = &s.stable_rs {
                proptest::prop_assert_eq!(specs.get(stable).copied(), Some(3), "stable {} in {:?}", stable, specs);
            }
            // The preview follows the newest ReplicaSet at once, even one at zero (upstream);
            // production traffic never does.
            if let Some(selected) = sim.selector(ACTIVE) {
                proptest::prop_assert!(
                    specs.get(&selected).copied().unwrap_or(0) > 0,
                    "the active Service selects {} scaled to 0: {:?}", selected, specs
                );
            }
            if s.phase == Some(RolloutPhase::Healthy) {
                proptest::prop_assert_eq!(sim.selector(ACTIVE), s.current_pod_hash.clone());
                proptest::prop_assert_eq!(&s.stable_rs, &s.current_pod_hash);
            }
        }
    }
}

#[test]
fn a_retry_after_a_failed_post_promotion_run_runs_the_analysis_again_instead_of_aborting() {
    let mut sim = healthy_v1(|b| b.post_promotion_analysis = analysis(&["check"]));
    sim.set_image(V2);
    walk(&mut sim);
    let post = run_name(V2, 2, "post");
    set_run_phase(&mut sim.obs, &post, AnalysisPhase::Failed, None);
    after(&mut sim, 60);
    assert_eq!(sim.status().phase, Some(RolloutPhase::Degraded));
    sim.obs.rollout.status.as_mut().unwrap().abort = Some(false);
    walk(&mut sim);
    let s = sim.status();
    assert!(!s.is_aborted(), "not aborted again by the old run");
    assert_eq!(sim.selector(ACTIVE), Some(hash(V2)), "switched again");
    let again = format!("{post}.1");
    assert_eq!(
        s.blue_green
            .as_ref()
            .unwrap()
            .post_promotion_analysis_run_status
            .as_ref()
            .map(|r| r.name.as_str()),
        Some(again.as_str())
    );
    set_run_phase(&mut sim.obs, &again, AnalysisPhase::Successful, None);
    walk(&mut sim);
    assert_eq!(sim.status().stable_rs, Some(hash(V2)));
    assert_eq!(sim.status().phase, Some(RolloutPhase::Healthy));
}

#[test]
fn a_long_promotion_analysis_is_no_lack_of_progress() {
    for post in [false, true] {
        let mut sim = healthy_v1(|b| {
            if post {
                b.post_promotion_analysis = analysis(&["check"]);
            } else {
                b.pre_promotion_analysis = analysis(&["smoke"]);
            }
        });
        sim.obs.rollout.spec.progress_deadline_seconds = Some(10);
        sim.obs.rollout.spec.progress_deadline_abort = Some(true);
        sim.set_image(V2);
        walk(&mut sim);
        let run = sim.obs.analysis_runs[0].metadata.name.clone().unwrap();
        set_run_phase(&mut sim.obs, &run, AnalysisPhase::Running, None);
        after(&mut sim, 600);
        let s = sim.status();
        assert!(!s.is_aborted(), "post: {post}: {:?}", s.message);
        assert_eq!(s.phase, Some(RolloutPhase::Progressing), "post: {post}");
    }
}

/// `status.duration` is the one rule of `rollout::duration`, fed by the blue/green planner's
/// status: a pause without auto-promotion is a manual pause, promotion finishes the attempt.
#[test]
fn the_duration_of_a_blue_green_update_counts_its_manual_pause_and_ends_promoted() {
    let mut sim = healthy_v1(|b| b.auto_promotion_enabled = Some(false));
    sim.set_image(V2);
    let start = sim.now;
    walk(&mut sim);
    let d = sim.status().duration.clone().unwrap();
    let started = d.rollout_started_at.clone().unwrap();
    assert_eq!(started.0.as_second(), start);
    assert!(d.manual_pause_started_at.is_some(), "{d:?}");
    assert_eq!(d.finished_at, None);
    after(&mut sim, 600);
    promote(&mut sim);
    walk(&mut sim);
    let d = sim.status().duration.clone().unwrap();
    assert_eq!(d.rollout_started_at, Some(started));
    assert_eq!(d.manual_pause_started_at, None);
    assert!(
        d.total_manual_pause_duration_seconds
            .is_some_and(|t| (600..620).contains(&t)),
        "{d:?}"
    );
    assert_eq!(d.completion_status.as_deref(), Some("Promoted"));
    assert!(d.finished_at.is_some());
}

#[test]
fn an_auto_promoted_blue_green_update_has_no_manual_pause_and_an_abort_finishes_it() {
    let mut sim = healthy_v1(|_| {});
    sim.set_image(V2);
    walk(&mut sim);
    let d = sim.status().duration.clone().unwrap();
    assert_eq!(d.total_manual_pause_duration_seconds, None);
    assert_eq!(d.completion_status.as_deref(), Some("Promoted"));

    let mut sim = healthy_v1(|b| b.auto_promotion_enabled = Some(false));
    sim.set_image(V2);
    walk(&mut sim);
    sim.obs.rollout.status.as_mut().unwrap().abort = Some(true);
    walk(&mut sim);
    let d = sim.status().duration.clone().unwrap();
    assert_eq!(d.completion_status.as_deref(), Some("Aborted"));
    assert_eq!(d.manual_pause_started_at, None);
    assert!(d.finished_at.is_some());
}
