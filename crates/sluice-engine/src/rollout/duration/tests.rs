//! `status.duration` on every path, driven through the canary planner with the in-memory
//! cluster: each test walks a Rollout and checks the duration status at each stage.

use sluice_api::k8s::time::from_time;
use sluice_api::rollout::{RolloutDurationStatus, RolloutPhase};

use super::*;
use crate::rollout::testing::{RolloutBuilder, Sim, pause, pause_for, weight};

fn sim(steps: Vec<sluice_api::rollout::CanaryStep>) -> Sim {
    let mut sim = Sim::new(
        RolloutBuilder::new("app:v1")
            .spec(|s| s.replicas = Some(2))
            .steps(steps)
            .build(),
    );
    sim.run_until_quiet(30);
    sim
}

fn duration(sim: &Sim) -> RolloutDurationStatus {
    sim.status().duration.clone().expect("status.duration")
}

fn secs(t: &Option<Time>) -> Option<i64> {
    t.as_ref().map(|t| from_time(t).timestamp() - 1_000)
}

/// (startedAt, manualPauseStartedAt, totalManualPauseSeconds, finishedAt, completionStatus),
/// times in seconds since the simulation began.
type Seen = (
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

fn seen(sim: &Sim) -> Seen {
    let d = duration(sim);
    (
        secs(&d.rollout_started_at),
        secs(&d.manual_pause_started_at),
        d.total_manual_pause_duration_seconds,
        secs(&d.finished_at),
        d.completion_status,
    )
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

/// The consistency rules, on every status a walk writes.
fn consistent(d: &RolloutDurationStatus) {
    if d.finished_at.is_some() {
        assert!(
            d.completion_status.is_some(),
            "finished without a status: {d:?}"
        );
        assert!(
            d.manual_pause_started_at.is_none(),
            "finished while paused: {d:?}"
        );
        let (start, end) = (d.rollout_started_at.as_ref(), d.finished_at.as_ref());
        assert!(
            start
                .zip(end)
                .is_some_and(|(a, b)| from_time(a) <= from_time(b)),
            "finished before it started: {d:?}"
        );
    }
}

fn run(sim: &mut Sim) {
    for p in sim.run_until_quiet(40) {
        if let Some(d) = &p.status.duration {
            consistent(d);
        }
    }
}

#[test]
fn the_initial_rollout_is_an_attempt_promoted_once_available() {
    let mut sim = Sim::new(
        RolloutBuilder::new("app:v1")
            .spec(|s| s.replicas = Some(2))
            .steps(vec![weight(50), pause()])
            .build(),
    );
    let first = sim.reconcile();
    let d = first.status.duration.clone().unwrap();
    assert_eq!(secs(&d.rollout_started_at), Some(0));
    assert_eq!(d.finished_at, None);
    run(&mut sim);
    let (started, pause, total, finished, status) = seen(&sim);
    assert_eq!(
        (started, pause, total, status),
        (Some(0), None, None, s("Promoted"))
    );
    assert!(finished.is_some());
}

#[test]
fn a_timed_pause_is_not_manual_and_an_indefinite_one_is() {
    let mut sim = sim(vec![weight(50), pause_for("10s"), pause(), weight(100)]);
    sim.set_image("app:v2");
    let start = sim.now;
    run(&mut sim);
    // At the timed pause: started, no manual pause.
    assert_eq!(sim.status().phase, Some(RolloutPhase::Paused));
    let (started, manual, ..) = seen(&sim);
    assert_eq!((started, manual), (Some(start - 1_000), None));
    sim.now += 10;
    run(&mut sim);
    // At the indefinite pause: a manual pause is open, since it began.
    let at = sim.now - 1_000;
    let (_, manual, total, finished, _) = seen(&sim);
    assert!(manual.is_some_and(|m| m <= at && m > at - 5), "{manual:?}");
    assert_eq!((total, finished), (None, None));
    // The user resumes 30 s later: the pause's seconds are added up.
    sim.now += 30;
    sim.obs.rollout.status.as_mut().unwrap().pause_conditions = None;
    run(&mut sim);
    let (_, manual, total, finished, status) = seen(&sim);
    assert_eq!(manual, None);
    assert!(total.is_some_and(|t| (30..35).contains(&t)), "{total:?}");
    assert!(finished.is_some());
    assert_eq!(status, s("Promoted"));
}

#[test]
fn spec_paused_is_a_manual_pause() {
    let mut sim = sim(vec![weight(50), pause_for("1h")]);
    sim.set_image("app:v2");
    sim.obs.rollout.spec.paused = Some(true);
    run(&mut sim);
    let (_, manual, ..) = seen(&sim);
    assert!(manual.is_some());
    sim.now += 20;
    sim.obs.rollout.spec.paused = Some(false);
    run(&mut sim);
    let (_, manual, total, finished, _) = seen(&sim);
    assert_eq!((manual, finished), (None, None));
    assert!(total.is_some_and(|t| (20..25).contains(&t)), "{total:?}");
}

#[test]
fn promote_full_finishes_as_fast_promoted() {
    let mut sim = sim(vec![weight(50), pause()]);
    sim.set_image("app:v2");
    run(&mut sim);
    sim.now += 5;
    sim.obs.rollout.status.as_mut().unwrap().promote_full = Some(true);
    run(&mut sim);
    let (_, manual, total, finished, status) = seen(&sim);
    assert_eq!(status, s("FastPromoted"));
    assert!(finished.is_some());
    assert_eq!(manual, None);
    // The open manual pause (the indefinite step) was closed into the total.
    assert!(total.is_some_and(|t| t >= 5), "{total:?}");
}

#[test]
fn abort_finishes_the_attempt_and_retry_starts_a_new_one() {
    let mut sim = sim(vec![weight(50), pause()]);
    sim.set_image("app:v2");
    run(&mut sim);
    let (first_start, ..) = seen(&sim);
    sim.now += 7;
    sim.obs.rollout.status.as_mut().unwrap().abort = Some(true);
    run(&mut sim);
    let (started, manual, _, finished, status) = seen(&sim);
    assert_eq!((started, manual, status), (first_start, None, s("Aborted")));
    let aborted_at = finished.unwrap();
    sim.now += 3;
    sim.obs.rollout.status.as_mut().unwrap().abort = Some(false);
    let retry_at = sim.now - 1_000;
    run(&mut sim);
    let (started, _, _, finished, status) = seen(&sim);
    assert_eq!(started, Some(retry_at));
    assert!(started.unwrap() > aborted_at);
    assert_eq!((finished, status), (None, None));
}

#[test]
fn a_new_revision_mid_update_supersedes_the_attempt() {
    let mut sim = sim(vec![weight(50), pause()]);
    sim.set_image("app:v2");
    run(&mut sim);
    let (first, ..) = seen(&sim);
    sim.now += 4;
    sim.set_image("app:v3");
    let p = sim.reconcile();
    let d = p.status.duration.unwrap();
    // Superseded shows only in metrics and logs upstream: the status holds the new attempt.
    assert_eq!(secs(&d.rollout_started_at), Some(sim.now - 1_000));
    assert!(secs(&d.rollout_started_at) > first);
    assert_eq!((d.finished_at, d.completion_status), (None, None));
}

#[test]
fn going_back_to_the_stable_revision_is_a_fast_rollback() {
    let mut sim = sim(vec![weight(50), pause()]);
    let (v1_start, ..) = seen(&sim);
    sim.set_image("app:v2");
    run(&mut sim);
    let (attempt, ..) = seen(&sim);
    assert!(attempt > v1_start);
    sim.set_image("app:v1");
    run(&mut sim);
    let (started, _, _, finished, status) = seen(&sim);
    assert_eq!(started, attempt, "the rollback continues the attempt");
    assert!(finished.is_some());
    assert_eq!(status, s("FastRolledBack"));
}

/// Four revisions: v1 (oldest), v2, v3 (stable), v4 (in flight); then back to v1, older than
/// the stable revision with one revision (v2) between them: outside a window of 1 it is a
/// plain rollback, inside a window of 2 a fast one (upstream counts the revisions between).
fn roll_back_to_v1(window: Option<i32>) -> Seen {
    let mut sim = sim(vec![weight(50), pause()]);
    sim.obs.rollout.spec.rollback_window =
        window.map(|revisions| sluice_api::rollout::RollbackWindowSpec {
            revisions: Some(revisions),
        });
    for image in ["app:v2", "app:v3"] {
        sim.now += 2;
        sim.set_image(image);
        run(&mut sim);
        sim.obs.rollout.status.as_mut().unwrap().promote_full = Some(true);
        run(&mut sim);
    }
    sim.now += 2;
    sim.set_image("app:v4");
    run(&mut sim);
    sim.now += 2;
    sim.set_image("app:v1");
    sim.reconcile();
    sim.settle_pods();
    seen(&sim)
}

#[test]
fn a_rollback_outside_the_window_is_rolled_back_and_inside_it_fast() {
    let (_, _, _, _, outside) = roll_back_to_v1(Some(1));
    assert_eq!(outside, s("RolledBack"));
    let (_, _, _, _, inside) = roll_back_to_v1(Some(2));
    assert_eq!(inside, s("FastRolledBack"));
    let (_, _, _, _, none) = roll_back_to_v1(None);
    assert_eq!(none, s("RolledBack"));
}

#[test]
fn scaling_a_settled_rollout_starts_no_attempt() {
    let mut sim = sim(vec![weight(50), pause()]);
    let before = seen(&sim);
    sim.obs.rollout.spec.replicas = Some(5);
    sim.now += 30;
    run(&mut sim);
    assert_eq!(seen(&sim), before);
    assert_eq!(sim.status().phase, Some(RolloutPhase::Healthy));
}

#[test]
fn an_invalid_spec_leaves_the_duration_alone() {
    let mut sim = sim(vec![weight(50), pause()]);
    let before = seen(&sim);
    sim.obs.rollout.spec.selector = None;
    sim.set_image("app:v2");
    run(&mut sim);
    assert_eq!(seen(&sim), before);
}

#[test]
fn finishing_closes_an_open_pause_and_never_precedes_the_start() {
    let start = Time(k8s_openapi::jiff::Timestamp::from_second(2_000).unwrap());
    let mut d = RolloutDurationStatus {
        rollout_started_at: Some(start.clone()),
        manual_pause_started_at: Some(start.clone()),
        total_manual_pause_duration_seconds: Some(4),
        ..Default::default()
    };
    let earlier = Time(k8s_openapi::jiff::Timestamp::from_second(1_990).unwrap());
    finish(&mut d, &earlier, ABORTED);
    consistent(&d);
    assert_eq!(d.finished_at, Some(start));
    assert_eq!(d.total_manual_pause_duration_seconds, Some(4));
    assert_eq!(d.completion_status, s("Aborted"));
}
