//! Fuzzing the Rollout planner: random observed worlds (ReplicaSets at any size and
//! availability, any status a controller or a person could have written, any step list,
//! AnalysisRuns in any phase) must never panic `plan`, and every plan must keep the
//! invariants a person trusts a rollout controller with:
//!
//! - the stable ReplicaSet is never deleted, nor is any ReplicaSet that still has replicas;
//! - a plan never takes the Rollout's available pods below `replicas − maxUnavailable` (or
//!   below what was available, when that was already less);
//! - after an abort or a failed analysis, the canary is never scaled up and the stable
//!   ReplicaSet never loses an available pod (it may shed pods that are not available to
//!   get back under maxSurge, as upstream does, or come down to `spec.replicas` from above);
//! - an invalid spec changes nothing but Events;
//! - an AnalysisRun or Experiment is never created twice (the second plan, made after the
//!   first one's creations were observed, creates none of the same names).
//!
//! `SLUICE_FUZZ_CASES` sets the number of cases (`crate::fuzz::config`); `make fuzz` runs millions
//! in release mode. A failing case proptest finds is kept as a regression test below.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use proptest::prelude::*;

use super::plan::{Change, Plan};
use super::replicas::Limits;
use super::testing::*;
use super::{Observed, plan, validate};
use crate::fuzz::config;
use sluice_api::common::AnalysisPhase;
use sluice_api::rollout::{CanaryStep, PauseCondition, PauseReason, RolloutPause};

const STABLE: &str = "app:v1";
const CANARY: &str = "app:v2";

#[derive(Debug, Clone)]
enum StepKind {
    Weight(i32),
    Pause,
    PauseFor(i32),
    PauseText(String),
    Analysis,
    Empty,
}

fn step_kind() -> impl Strategy<Value = StepKind> {
    // Mostly valid steps (an invalid one makes the whole plan a no-op), some invalid ones.
    prop_oneof![
        40 => (0..=100i32).prop_map(StepKind::Weight),
        1 => prop::sample::select(vec![-5, -1, 101, 1000, i32::MIN, i32::MAX])
            .prop_map(StepKind::Weight),
        10 => Just(StepKind::Pause),
        10 => (0..30i32).prop_map(StepKind::PauseFor),
        1 => Just(StepKind::PauseFor(-1)),
        5 => prop::sample::select(vec!["10s", "1m", "0", "1h30m", "250ms"])
            .prop_map(|s| StepKind::PauseText(s.to_string())),
        1 => prop::sample::select(vec!["-1s", "5x", "", "1e9h"])
            .prop_map(|s| StepKind::PauseText(s.to_string())),
        15 => Just(StepKind::Analysis),
        1 => Just(StepKind::Empty),
    ]
}

fn step(kind: &StepKind) -> CanaryStep {
    match kind {
        StepKind::Weight(w) => weight(*w),
        StepKind::Pause => pause(),
        StepKind::PauseFor(s) => CanaryStep {
            pause: Some(RolloutPause {
                duration: Some(IntOrString::Int(*s)),
            }),
            ..Default::default()
        },
        StepKind::PauseText(s) => pause_for(s),
        StepKind::Analysis => analysis_step(&["t"]),
        StepKind::Empty => CanaryStep::default(),
    }
}

fn int_or_percent() -> impl Strategy<Value = Option<IntOrString>> {
    prop_oneof![
        10 => Just(None),
        30 => (0..4i32).prop_map(|i| Some(IntOrString::Int(i))),
        20 => (0..=100i32).prop_map(|p| Some(IntOrString::String(format!("{p}%")))),
        1 => Just(Some(IntOrString::String("junk".to_string()))),
        1 => Just(Some(IntOrString::Int(-1))),
    ]
}

/// (spec, available) of one ReplicaSet, available never above spec.
fn sizes() -> impl Strategy<Value = (i32, i32)> {
    (0..12i32).prop_flat_map(|spec| (Just(spec), 0..=spec))
}

fn phase() -> impl Strategy<Value = AnalysisPhase> {
    prop::sample::select(vec![
        AnalysisPhase::Pending,
        AnalysisPhase::Running,
        AnalysisPhase::Successful,
        AnalysisPhase::Failed,
        AnalysisPhase::Error,
        AnalysisPhase::Inconclusive,
    ])
}

#[derive(Debug, Clone)]
struct World {
    replicas: i32,
    surge: Option<IntOrString>,
    unavailable: Option<IntOrString>,
    steps: Vec<StepKind>,
    background: bool,
    /// The template runs the canary image (an update is under way) or the stable one.
    updating: bool,
    has_stable_status: bool,
    stable: (i32, i32),
    canary: Option<(i32, i32)>,
    old: Vec<(i32, i32)>,
    step_index: Option<i32>,
    abort: bool,
    promote_full: bool,
    paused: bool,
    spec_paused: bool,
    controller_pause: bool,
    run_phase: AnalysisPhase,
    second_phase: AnalysisPhase,
    now: i64,
}

fn world() -> impl Strategy<Value = World> {
    let shape = (
        0..12i32,
        int_or_percent(),
        int_or_percent(),
        prop::collection::vec(step_kind(), 0..8),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    );
    let cluster = (
        sizes(),
        prop::option::of(sizes()),
        prop::collection::vec(sizes(), 0..3),
        prop::option::of(-1..10i32),
    );
    let status = (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        phase(),
        phase(),
        1_000..100_000i64,
    );
    (shape, cluster, status).prop_map(
        |(
            (replicas, surge, unavailable, steps, background, updating, has_stable_status),
            (stable, canary, old, step_index),
            (
                abort,
                promote_full,
                paused,
                spec_paused,
                controller_pause,
                run_phase,
                second_phase,
                now,
            ),
        )| World {
            replicas,
            surge,
            unavailable,
            steps,
            background,
            updating,
            has_stable_status,
            stable,
            canary,
            old,
            step_index,
            abort,
            promote_full,
            paused,
            spec_paused,
            controller_pause,
            run_phase,
            second_phase,
            now,
        },
    )
}

impl World {
    fn observed(&self) -> Observed {
        let steps: Vec<CanaryStep> = self.steps.iter().map(step).collect();
        let image = if self.updating { CANARY } else { STABLE };
        let background = self.background;
        let ro = RolloutBuilder::new(image)
            .spec(|s| {
                s.replicas = Some(self.replicas);
                s.paused = self.spec_paused.then_some(true);
            })
            .canary(|c| {
                c.max_surge = self.surge.clone();
                c.max_unavailable = self.unavailable.clone();
                c.steps = Some(steps.clone());
                if background {
                    c.analysis = Some(super::testing::background(&["t"], None));
                }
            })
            .updating(STABLE, image, self.step_index.unwrap_or(0))
            .status(|s| {
                if !self.has_stable_status {
                    s.stable_rs = None;
                }
                s.current_step_index = self.step_index;
                s.abort = self.abort.then_some(true);
                s.promote_full = self.promote_full.then_some(true);
                s.controller_pause = self.controller_pause.then_some(true);
                if self.paused {
                    s.pause_conditions = Some(vec![PauseCondition {
                        reason: PauseReason::CanaryPauseStep,
                        start_time: time(self.now - 5),
                    }]);
                }
            })
            .build();
        let mut sets = vec![rs(STABLE, self.stable.0, self.stable.1, 2)];
        if let Some((spec, available)) = self.canary {
            sets.push(rs(CANARY, spec, available, 3));
        }
        for (i, (spec, available)) in self.old.iter().enumerate() {
            sets.push(rs(&format!("app:old{i}"), *spec, *available, 1 - i as i64));
        }
        with_templates(observed(ro, sets), &["t"])
    }
}

fn spec_of(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn available_of(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

/// Every invariant of the module's documentation that one plan can break.
fn check_plan(obs: &Observed, p: &Plan) -> Result<(), TestCaseError> {
    let stable_hash = obs
        .rollout
        .status
        .as_ref()
        .and_then(|s| s.stable_rs.clone());
    let stable_name = stable_hash.as_ref().map(|h| format!("{NAME}-{h}"));
    let by_name: BTreeMap<String, &ReplicaSet> = obs
        .replica_sets
        .iter()
        .map(|r| (r.metadata.name.clone().unwrap_or_default(), r))
        .collect();

    // Invalid input: nothing but Events.
    if validate(obs).is_err() {
        for c in &p.changes {
            prop_assert!(
                matches!(c, Change::Event { .. }),
                "an invalid spec changed {c:?}"
            );
        }
        return Ok(());
    }

    // Deletions: never the stable ReplicaSet, never one with replicas.
    for c in &p.changes {
        if let Change::DeleteReplicaSet { name } = c {
            prop_assert_ne!(
                Some(name),
                stable_name.as_ref(),
                "deleted the stable ReplicaSet"
            );
            let victim = by_name.get(name);
            prop_assert!(
                victim.is_some_and(|r| spec_of(r) == 0),
                "deleted {name}, which has replicas"
            );
        }
    }

    // Availability: what the scale-downs leave available.
    let mut new_spec: BTreeMap<String, i32> = by_name
        .iter()
        .map(|(n, r)| (n.clone(), spec_of(r)))
        .collect();
    for c in &p.changes {
        if let Change::ScaleReplicaSet { name, replicas, .. } = c {
            new_spec.insert(name.clone(), *replicas);
        }
    }
    let before: i32 = by_name.values().map(|r| available_of(r)).sum();
    let after: i32 = by_name
        .iter()
        .map(|(n, r)| available_of(r).min(new_spec[n]))
        .sum();
    let spec = &obs.rollout.spec;
    let limits = Limits::of_validated(spec);
    let floor = (spec.replicas() - limits.max_unavailable).max(0);
    prop_assert!(
        after >= before.min(floor),
        "the plan leaves {after} available (was {before}, floor {floor}): {:?}",
        p.changes
    );

    // Aborted (by a person, or by this plan on a failed analysis): no canary growth, no
    // stable shrink. (A run of a step already passed may fail without aborting anything.)
    let status = obs.rollout.status.as_ref();
    let aborted = status.and_then(|s| s.abort) == Some(true) || p.status.abort == Some(true);
    let promoting = status.and_then(|s| s.promote_full) == Some(true);
    // (Only against a stable ReplicaSet: a first deploy has nothing to fall back to.)
    let has_stable = stable_name
        .as_ref()
        .is_some_and(|n| by_name.contains_key(n));
    if aborted && !promoting && has_stable {
        for c in &p.changes {
            if let Change::ScaleReplicaSet {
                name,
                from,
                replicas,
                ..
            } = c
            {
                if Some(name) == stable_name.as_ref() {
                    // It may shed pods that serve nothing to get back under maxSurge
                    // (upstream's adjustReplicaWithinLimits does the same), or come down
                    // to spec.replicas from above; never an available pod below that.
                    let available = by_name.get(name).map_or(0, |r| available_of(r));
                    prop_assert!(
                        replicas >= from
                            || *replicas >= available.min(*from)
                            || *replicas >= spec.replicas(),
                        "aborted, yet the stable lost available pods: {c:?}"
                    );
                } else {
                    prop_assert!(replicas <= from, "aborted, yet {name} grew: {c:?}");
                }
            }
        }
    }

    // One plan never creates the same run or experiment twice.
    let mut created = BTreeSet::new();
    for c in &p.changes {
        let name = match c {
            Change::CreateAnalysisRun(r) => r.metadata.name.clone(),
            Change::CreateExperiment(e) => e.metadata.name.clone(),
            _ => continue,
        };
        prop_assert!(created.insert(name.clone()), "created {name:?} twice");
    }
    Ok(())
}

/// The world after the plan's creations landed (with `phase`), for the second plan.
fn with_created_runs(mut obs: Observed, p: &Plan, phase: AnalysisPhase) -> Observed {
    for c in &p.changes {
        match c {
            Change::CreateAnalysisRun(run) => {
                let mut run = (**run).clone();
                run.status = Some(sluice_api::analysis::AnalysisRunStatus {
                    phase: phase.clone(),
                    ..Default::default()
                });
                obs.analysis_runs.push(run);
            }
            Change::CreateExperiment(e) => obs.experiments.push((**e).clone()),
            _ => {}
        }
    }
    obs
}

fn check_world(w: &World) -> Result<(), TestCaseError> {
    let obs = w.observed();
    let now = at(w.now);
    let first = plan(&obs, now);
    check_plan(&obs, &first)?;

    // The same world with the first plan's runs created and in some phase: the second plan
    // must not create any of them again.
    let mut next = with_created_runs(obs, &first, w.run_phase.clone());
    next.rollout.status = Some(first.status.clone());
    let second = plan(&next, at(w.now + 1));
    check_plan(&next, &second)?;
    let existing: BTreeSet<String> = next
        .analysis_runs
        .iter()
        .filter_map(|r| r.metadata.name.clone())
        .chain(
            next.experiments
                .iter()
                .filter_map(|e| e.metadata.name.clone()),
        )
        .collect();
    for c in &second.changes {
        if let Change::CreateAnalysisRun(r) = c {
            let name = r.metadata.name.clone().unwrap_or_default();
            prop_assert!(!existing.contains(&name), "created {name} again");
        }
    }

    // A third plan after the runs changed phase again.
    let mut third_world = next;
    for run in &mut third_world.analysis_runs {
        if let Some(s) = run.status.as_mut() {
            s.phase = w.second_phase.clone();
        }
    }
    third_world.rollout.status = Some(second.status.clone());
    let third = plan(&third_world, at(w.now + 2));
    check_plan(&third_world, &third)
}

proptest! {
    #![proptest_config(config(15_000))]

    /// No observed world panics the planner or makes it break an invariant.
    #[test]
    fn fuzz_planner_keeps_its_invariants(w in world()) {
        check_world(&w)?;
    }
}

/// The generator is worth its cases: most worlds are valid, and their plans scale
/// ReplicaSets and create AnalysisRuns (a fuzzer whose every plan was a no-op would prove
/// nothing).
#[test]
fn the_fuzzed_worlds_reach_real_decisions() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = world();
    let (mut valid, mut scaled, mut created, mut aborted) = (0, 0, 0, 0);
    let total = 500;
    for _ in 0..total {
        let w = strategy.new_tree(&mut runner).unwrap().current();
        let obs = w.observed();
        if validate(&obs).is_err() {
            continue;
        }
        valid += 1;
        let p = plan(&obs, at(w.now));
        if p.changes
            .iter()
            .any(|c| matches!(c, Change::ScaleReplicaSet { .. }))
        {
            scaled += 1;
        }
        if p.changes
            .iter()
            .any(|c| matches!(c, Change::CreateAnalysisRun(_)))
        {
            created += 1;
        }
        if p.status.abort == Some(true) {
            aborted += 1;
        }
    }
    assert!(valid * 2 > total, "{valid} of {total} worlds are valid");
    assert!(scaled * 5 > valid, "{scaled} of {valid} plans scale");
    assert!(
        created * 100 > valid,
        "{created} of {valid} plans create runs"
    );
    assert!(aborted > 0, "no aborted world");
}

// Regressions the fuzzer found (each failed before its fix).

/// Found by `make fuzz` after 444,288 cases: a false alarm of the checker, which took any
/// Failed run for an abort. Here the step's run succeeded, the step passed, and the run's
/// phase then read Failed: the Rollout is not aborted, and a 1-replica canary with
/// maxSurge 0 rightly scales the stable down before the canary up.
#[test]
fn a_run_of_a_passed_step_failing_later_is_not_an_abort() {
    let w = World {
        replicas: 1,
        surge: Some(IntOrString::Int(0)),
        unavailable: None,
        steps: vec![StepKind::Analysis],
        background: false,
        updating: true,
        has_stable_status: true,
        stable: (1, 1),
        canary: Some((0, 0)),
        old: vec![],
        step_index: None,
        abort: false,
        promote_full: false,
        paused: false,
        spec_paused: false,
        controller_pause: false,
        run_phase: AnalysisPhase::Successful,
        second_phase: AnalysisPhase::Failed,
        now: 1000,
    };
    check_world(&w).unwrap();
}

/// Found by `fuzz_planner_keeps_its_invariants`: the reconcile that saw the background run
/// fail aborted the Rollout and, in the same plan, scaled the canary up to the full weight
/// (the weight was read from the status before the abort).
#[test]
fn the_plan_that_aborts_on_a_failed_run_never_scales_the_canary_up() {
    let w = World {
        replicas: 4,
        surge: Some(IntOrString::Int(2)),
        unavailable: None,
        steps: vec![],
        background: true,
        updating: true,
        has_stable_status: true,
        stable: (0, 0),
        canary: Some((0, 0)),
        old: vec![],
        step_index: None,
        abort: false,
        promote_full: false,
        paused: false,
        spec_paused: false,
        controller_pause: false,
        run_phase: AnalysisPhase::Failed,
        second_phase: AnalysisPhase::Pending,
        now: 1000,
    };
    let obs = w.observed();
    let first = plan(&obs, at(1000));
    let mut next = with_created_runs(obs, &first, AnalysisPhase::Failed);
    next.rollout.status = Some(first.status.clone());
    let second = plan(&next, at(1001));
    assert_eq!(second.status.abort, Some(true));
    let canary = rs_name(CANARY);
    assert!(
        !scales(&second)
            .iter()
            .any(|(name, replicas)| *name == canary && *replicas > 0),
        "{:?}",
        scales(&second)
    );
    assert!(check_world(&w).is_ok());
}
