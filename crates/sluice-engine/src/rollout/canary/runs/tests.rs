//! Analysis steps, background analysis and experiment steps: one reconcile at a time, and
//! walks through the in-memory cluster where the test plays the AnalysisRun controller.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::json;

use crate::rollout::plan::{Change, EventType, Plan};
use crate::rollout::testing::*;
use crate::rollout::{Observed, plan_step};
use sluice_api::analysis::{AnalysisRun, AnalysisRunSpec, ClusterAnalysisTemplate};
use sluice_api::common::{
    AnalysisPhase, CONTROLLER_INSTANCE_ID_LABEL, POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION,
};
use sluice_api::experiment::Experiment;
use sluice_api::rollout::{
    CanaryStatus, CanaryStep, PauseCondition, PauseReason, RolloutAnalysisRunStatus,
    RolloutExperimentStep, RolloutPhase,
};

const FAILED_MESSAGE: &str = "Metric \"web\" assessed Failed due to failed (1) > failureLimit (0)";

fn phase_of(p: &Plan) -> (RolloutPhase, &str) {
    (
        p.status.phase.clone().unwrap(),
        p.status.message.as_deref().unwrap(),
    )
}

fn v2_hash() -> String {
    hash("app:v2")
}

/// The step run's name at step 1 of revision 2.
fn step_run() -> String {
    format!("{NAME}-{}-2-1", v2_hash())
}

fn background_run() -> String {
    format!("{NAME}-{}-2", v2_hash())
}

fn revision_2(mut obs: Observed) -> Observed {
    obs.rollout.metadata.annotations =
        Some([(REVISION_ANNOTATION.to_string(), "2".to_string())].into());
    obs
}

/// Rolling v1 → v2 with `steps`, at `index`, the canary at `canary` replicas and the stable
/// at 10 − canary (all available), with the AnalysisTemplate `web`.
fn rolling(steps: Vec<CanaryStep>, index: i32, canary: i32) -> Observed {
    let ro = RolloutBuilder::new("app:v2")
        .steps(steps)
        .updating("app:v1", "app:v2", index)
        .build();
    let obs = observed(
        ro,
        vec![
            rs("app:v1", 10 - canary, 10 - canary, 1),
            rs("app:v2", canary, canary, 2),
        ],
    );
    with_templates(revision_2(obs), &["web"])
}

fn at_analysis_step() -> Observed {
    rolling(vec![weight(20), analysis_step(&["web"]), weight(50)], 1, 2)
}

/// Edits the steps of a Rollout that is mid-update, keeping `currentStepHash` in step (a
/// changed hash would restart the steps).
fn edit_steps(obs: &mut Observed, f: impl FnOnce(&mut Vec<CanaryStep>)) {
    let canary = obs
        .rollout
        .spec
        .strategy
        .as_mut()
        .unwrap()
        .canary
        .as_mut()
        .unwrap();
    f(canary.steps.as_mut().unwrap());
    let h = crate::rollout::hash::step_hash(canary.steps.as_deref());
    obs.rollout.status.as_mut().unwrap().current_step_hash = Some(h);
}

/// Plans once and applies the plan to the in-memory cluster.
fn step(sim: &mut Sim) -> Plan {
    let p = sim.reconcile();
    sim.now += 1;
    p
}

fn sim(obs: Observed) -> Sim {
    Sim { obs, now: 1_000 }
}

fn step_status(p: &Plan) -> Option<&RolloutAnalysisRunStatus> {
    p.status
        .canary
        .as_ref()
        .and_then(|c| c.current_step_analysis_run_status.as_ref())
}

fn background_status(p: &Plan) -> Option<&RolloutAnalysisRunStatus> {
    p.status
        .canary
        .as_ref()
        .and_then(|c| c.current_background_analysis_run_status.as_ref())
}

fn run_status(name: &str, status: AnalysisPhase) -> RolloutAnalysisRunStatus {
    RolloutAnalysisRunStatus {
        name: name.to_string(),
        status,
        message: None,
    }
}

fn owner() -> OwnerReference {
    OwnerReference {
        api_version: "argoproj.io/v1alpha1".into(),
        kind: "Rollout".into(),
        name: NAME.into(),
        uid: "uid-1".into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

#[test]
fn an_analysis_step_creates_its_run_named_labelled_and_owned_like_upstream() {
    let p = plan_step(&at_analysis_step(), at(50));
    let spec: AnalysisRunSpec = serde_json::from_value(json!({
        "metrics": [{"name": "web", "provider": {"web": {"url": "http://metrics/{{args.hash}}"}}}],
        "args": [{"name": "hash", "value": v2_hash()}]
    }))
    .unwrap();
    let expected = AnalysisRun {
        metadata: ObjectMeta {
            name: Some(step_run()),
            namespace: Some("default".into()),
            labels: Some(BTreeMap::from([
                (POD_TEMPLATE_HASH_LABEL.to_string(), v2_hash()),
                ("rollout-type".to_string(), "Step".to_string()),
                ("step-index".to_string(), "1".to_string()),
                ("app".to_string(), NAME.to_string()),
            ])),
            annotations: Some(BTreeMap::from([(
                REVISION_ANNOTATION.to_string(),
                "2".to_string(),
            )])),
            owner_references: Some(vec![owner()]),
            ..Default::default()
        },
        spec,
        status: None,
    };
    assert_eq!(
        p.changes,
        vec![
            Change::CreateAnalysisRun(Box::new(expected)),
            // The fixture's status has no Completed condition yet.
            Change::normal(
                "RolloutNotCompleted",
                format!(
                    "Rollout not completed, started update to revision 2 ({})",
                    v2_hash()
                )
            ),
        ]
    );
    assert_eq!(
        step_status(&p),
        Some(&run_status(&step_run(), AnalysisPhase::Pending))
    );
    assert_eq!(p.status.current_step_index, Some(1));
}

#[test]
fn a_running_step_run_holds_the_step_without_changes() {
    let mut s = sim(at_analysis_step());
    step(&mut s);
    set_run_phase(&mut s.obs, &step_run(), AnalysisPhase::Running, None);
    let p = step(&mut s);
    assert_eq!(
        p.changes,
        vec![Change::normal(
            "AnalysisRunRunning",
            format!(
                "Step Analysis Run '{}' Status New: 'Running' Previous: 'Pending'",
                step_run()
            )
        )]
    );
    assert_eq!(p.status.current_step_index, Some(1));
    assert!(step(&mut s).changes.is_empty());
    // Waiting on a run is not "no progress": no progress-deadline requeue.
    assert_eq!(s.status().phase, Some(RolloutPhase::Progressing));
}

#[test]
fn a_successful_step_run_completes_the_step() {
    let mut s = sim(at_analysis_step());
    step(&mut s);
    set_run_phase(&mut s.obs, &step_run(), AnalysisPhase::Successful, None);
    let p = step(&mut s);
    assert_eq!(p.status.current_step_index, Some(2));
    assert_eq!(step_status(&p), None);
    let ev = events(&p);
    assert!(
        ev.contains(&(
            "RolloutStepCompleted".into(),
            "Rollout step 2/3 completed (analysis)".into()
        )),
        "{ev:?}"
    );
    assert!(ev.contains(&(
        "AnalysisRunSuccessful".into(),
        format!(
            "Step Analysis Run '{}' Status New: 'Successful' Previous: 'Pending'",
            step_run()
        )
    )));
    // The next setWeight scales; the finished run is left alone (history keeps it).
    let p = step(&mut s);
    assert_eq!(run_changes(&p), (vec![], vec![], vec![]));
    assert!(!scales(&p).is_empty());
}

#[test]
fn a_failed_step_run_aborts_with_upstreams_message() {
    let mut s = sim(at_analysis_step());
    step(&mut s);
    set_run_phase(
        &mut s.obs,
        &step_run(),
        AnalysisPhase::Failed,
        Some(FAILED_MESSAGE),
    );
    let p = step(&mut s);
    let detail = format!("Step-based analysis phase error/failed: {FAILED_MESSAGE}");
    let message = format!("Rollout aborted update to revision 2: {detail}");
    assert_eq!(p.status.abort, Some(true));
    assert_eq!(p.status.current_step_index, Some(0));
    assert_eq!(
        phase_of(&p),
        (
            RolloutPhase::Degraded,
            format!("RolloutAborted: {message}").as_str()
        )
    );
    assert!(p.changes.contains(&Change::Event {
        type_: EventType::Warning,
        reason: "RolloutAborted".into(),
        message,
    }));
    assert_eq!(
        step_status(&p),
        Some(&RolloutAnalysisRunStatus {
            name: step_run(),
            status: AnalysisPhase::Failed,
            message: Some(FAILED_MESSAGE.into()),
        })
    );
    // Then the canary drains and the stable comes back to full size.
    s.run_until_quiet(30);
    assert_eq!(
        s.specs(),
        [(rs_name("app:v1"), 10), (rs_name("app:v2"), 0)].into()
    );
    assert_eq!(s.status().phase, Some(RolloutPhase::Degraded));
}

#[test]
fn an_errored_step_run_aborts_too() {
    let mut s = sim(at_analysis_step());
    step(&mut s);
    set_run_phase(&mut s.obs, &step_run(), AnalysisPhase::Error, None);
    let p = step(&mut s);
    assert_eq!(p.status.abort, Some(true));
    assert!(
        p.status.message.as_deref().unwrap().ends_with(
            "Rollout aborted update to revision 2: Step-based analysis phase error/failed"
        )
    );
}

#[test]
fn an_inconclusive_step_run_pauses_and_halts_scaling() {
    // Canary short of its 20% (1 of 2): an inconclusive result still stops all scaling.
    let mut s = sim(rolling(
        vec![weight(20), analysis_step(&["web"]), weight(50)],
        1,
        1,
    ));
    s.obs.replica_sets[0].spec.as_mut().unwrap().replicas = Some(9);
    let p = step(&mut s);
    assert_eq!(run_changes(&p).0, vec![step_run()]);
    set_run_phase(&mut s.obs, &step_run(), AnalysisPhase::Inconclusive, None);
    let p = step(&mut s);
    assert_eq!(scales(&p), vec![]);
    assert_eq!(
        p.status.pause_conditions,
        Some(vec![PauseCondition {
            reason: PauseReason::InconclusiveAnalysisRun,
            start_time: time(1_001),
        }])
    );
    assert_eq!(p.status.controller_pause, Some(true));
    assert_eq!(
        phase_of(&p),
        (RolloutPhase::Paused, "InconclusiveAnalysisRun")
    );
    // Paused: nothing scales, nothing is re-run.
    let p = step(&mut s);
    assert_eq!(scales(&p), vec![]);
    assert_eq!(run_changes(&p), (vec![], vec![], vec![]));
}

#[test]
fn resuming_an_inconclusive_step_reruns_the_analysis_under_a_new_name() {
    let mut s = sim(at_analysis_step());
    step(&mut s);
    set_run_phase(&mut s.obs, &step_run(), AnalysisPhase::Inconclusive, None);
    step(&mut s);
    // A plain resume clears the pause conditions and leaves controllerPause.
    s.obs.rollout.status.as_mut().unwrap().pause_conditions = None;
    let p = step(&mut s);
    let rerun = format!("{}.1", step_run());
    assert_eq!(run_changes(&p), (vec![rerun.clone()], vec![], vec![]));
    assert_eq!(
        step_status(&p),
        Some(&run_status(&rerun, AnalysisPhase::Pending))
    );
    assert!(!p.status.controller_pause.unwrap_or(false));
    assert_eq!(p.status.current_step_index, Some(1));
    set_run_phase(&mut s.obs, &rerun, AnalysisPhase::Successful, None);
    assert_eq!(step(&mut s).status.current_step_index, Some(2));
}

#[test]
fn promoting_an_inconclusive_step_skips_the_analysis() {
    let mut s = sim(at_analysis_step());
    step(&mut s);
    set_run_phase(&mut s.obs, &step_run(), AnalysisPhase::Inconclusive, None);
    step(&mut s);
    // What `kubectl argo rollouts promote` sends after an inconclusive step analysis.
    let st = s.obs.rollout.status.as_mut().unwrap();
    st.pause_conditions = None;
    st.controller_pause = Some(false);
    st.current_step_index = Some(2);
    let p = step(&mut s);
    assert_eq!(run_changes(&p), (vec![], vec![], vec![]));
    assert_eq!(step_status(&p), None);
    assert_eq!(p.status.current_step_index, Some(2));
    assert!(!scales(&p).is_empty(), "setWeight 50 proceeds");
}

#[test]
fn promoting_past_a_running_analysis_terminates_its_run() {
    let mut s = sim(at_analysis_step());
    step(&mut s);
    set_run_phase(&mut s.obs, &step_run(), AnalysisPhase::Running, None);
    step(&mut s);
    s.obs.rollout.status.as_mut().unwrap().current_step_index = Some(2);
    let p = step(&mut s);
    assert_eq!(run_changes(&p), (vec![], vec![step_run()], vec![]));
    assert_eq!(step_status(&p), None);
}

fn with_background(mut obs: Observed, starting_step: Option<i32>) -> Observed {
    obs.rollout
        .spec
        .strategy
        .as_mut()
        .unwrap()
        .canary
        .as_mut()
        .unwrap()
        .analysis = Some(background(&["web"], starting_step));
    obs
}

#[test]
fn background_analysis_starts_at_its_starting_step() {
    let steps = vec![weight(20), pause(), weight(50)];
    let before = with_background(rolling(steps.clone(), 0, 2), Some(1));
    assert_eq!(
        run_changes(&plan_step(&before, at(50))).0,
        Vec::<String>::new()
    );

    let p = plan_step(&with_background(rolling(steps, 1, 2), Some(1)), at(50));
    let created: Vec<&AnalysisRun> = p
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::CreateAnalysisRun(r) => Some(&**r),
            _ => None,
        })
        .collect();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].metadata.name, Some(background_run()));
    assert_eq!(
        created[0].metadata.labels,
        Some(BTreeMap::from([
            (POD_TEMPLATE_HASH_LABEL.to_string(), v2_hash()),
            ("rollout-type".to_string(), "Background".to_string()),
            ("app".to_string(), NAME.to_string()),
        ]))
    );
    assert_eq!(
        background_status(&p),
        Some(&run_status(&background_run(), AnalysisPhase::Pending))
    );
}

#[test]
fn a_failed_background_run_aborts_and_an_inconclusive_one_pauses() {
    let base = || {
        let mut s = sim(with_background(
            rolling(vec![weight(20), pause(), weight(50)], 0, 2),
            None,
        ));
        step(&mut s);
        s
    };
    let mut s = base();
    set_run_phase(
        &mut s.obs,
        &background_run(),
        AnalysisPhase::Failed,
        Some(FAILED_MESSAGE),
    );
    let p = step(&mut s);
    assert_eq!(p.status.abort, Some(true));
    assert!(p.status.message.as_deref().unwrap().ends_with(&format!(
        "revision 2: Background analysis phase error/failed: {FAILED_MESSAGE}"
    )));

    let mut s = base();
    set_run_phase(
        &mut s.obs,
        &background_run(),
        AnalysisPhase::Inconclusive,
        None,
    );
    let p = step(&mut s);
    assert_eq!(
        phase_of(&p),
        (RolloutPhase::Paused, "InconclusiveAnalysisRun")
    );
}

#[test]
fn a_failing_step_run_also_terminates_the_running_background_run() {
    let mut s = sim(with_background(at_analysis_step(), None));
    let p = step(&mut s);
    assert_eq!(run_changes(&p).0, vec![step_run(), background_run()]);
    set_run_phase(&mut s.obs, &background_run(), AnalysisPhase::Running, None);
    set_run_phase(&mut s.obs, &step_run(), AnalysisPhase::Failed, None);
    let p = step(&mut s);
    assert_eq!(p.status.abort, Some(true));
    assert_eq!(run_changes(&p), (vec![], vec![background_run()], vec![]));
}

#[test]
fn user_abort_and_promote_full_terminate_running_runs() {
    for (abort, promote_full) in [(true, false), (false, true)] {
        let mut s = sim(with_background(at_analysis_step(), None));
        step(&mut s);
        set_run_phase(&mut s.obs, &step_run(), AnalysisPhase::Running, None);
        set_run_phase(&mut s.obs, &background_run(), AnalysisPhase::Running, None);
        let st = s.obs.rollout.status.as_mut().unwrap();
        st.abort = abort.then_some(true);
        st.promote_full = promote_full.then_some(true);
        let p = step(&mut s);
        assert_eq!(
            run_changes(&p),
            (vec![], vec![step_run(), background_run()], vec![]),
            "abort {abort}, promoteFull {promote_full}"
        );
        // Already terminated: not asked again.
        assert_eq!(run_changes(&step(&mut s)).1, Vec::<String>::new());
    }
}

#[test]
fn the_background_run_is_terminated_once_the_rollout_completes() {
    let mut s = sim(with_background(
        rolling(vec![weight(20), pause(), weight(50)], 0, 2),
        None,
    ));
    step(&mut s);
    set_run_phase(&mut s.obs, &background_run(), AnalysisPhase::Running, None);
    s.obs.rollout.status.as_mut().unwrap().promote_full = None;
    s.obs.rollout.status.as_mut().unwrap().current_step_index = Some(3);
    let mut terminated = Vec::new();
    for _ in 0..30 {
        let p = step(&mut s);
        s.settle_pods();
        terminated.extend(run_changes(&p).1);
        if s.status().phase == Some(RolloutPhase::Healthy) && !terminated.is_empty() {
            break;
        }
    }
    assert_eq!(terminated, vec![background_run()]);
    assert_eq!(s.status().stable_rs, Some(v2_hash()));
    assert_eq!(background_status(&plan_step(&s.obs, at(s.now))), None);
}

#[test]
fn a_new_template_terminates_the_runs_of_the_old_revision() {
    let mut s = sim(at_analysis_step());
    step(&mut s);
    set_run_phase(&mut s.obs, &step_run(), AnalysisPhase::Running, None);
    s.set_image("app:v3");
    let p = step(&mut s);
    assert!(
        p.changes
            .iter()
            .any(|c| matches!(c, Change::CreateReplicaSet(_)))
    );
    assert_eq!(run_changes(&p), (vec![], vec![step_run()], vec![]));
    assert_eq!(p.status.canary, Some(CanaryStatus::default()));
}

#[test]
fn finished_runs_beyond_the_history_limits_are_deleted_oldest_first() {
    let mut obs = rolling(vec![weight(20), pause(), weight(50)], 1, 2);
    obs.rollout.spec.analysis = Some(sluice_api::rollout::AnalysisRunStrategy {
        successful_run_history_limit: Some(2),
        unsuccessful_run_history_limit: Some(1),
    });
    let run = |name: &str, created: i64, hash: &str, phase: AnalysisPhase| {
        let mut r = AnalysisRun::new(name, AnalysisRunSpec::default());
        r.metadata.labels = Some([(POD_TEMPLATE_HASH_LABEL.to_string(), hash.to_string())].into());
        r.metadata.creation_timestamp = Some(time(created));
        r.status = Some(sluice_api::analysis::AnalysisRunStatus {
            phase,
            ..Default::default()
        });
        r
    };
    let (h1, h2) = (hash("app:v1"), v2_hash());
    obs.analysis_runs = vec![
        run("ok-1", 1, &h1, AnalysisPhase::Successful),
        run("ok-2", 2, &h1, AnalysisPhase::Successful),
        run("ok-3", 3, &h2, AnalysisPhase::Successful),
        run("bad-1", 4, &h1, AnalysisPhase::Failed),
        run("bad-2", 5, &h2, AnalysisPhase::Inconclusive),
        run("orphan", 6, "gone", AnalysisPhase::Successful),
    ];
    let p = plan_step(&obs, at(50));
    let mut deleted = run_changes(&p).2;
    deleted.sort();
    assert_eq!(deleted, vec!["bad-1", "ok-1", "orphan"]);
}

#[test]
fn runs_take_hash_and_field_args_dry_run_retention_and_metadata_from_the_step() {
    let mut obs = rolling(vec![weight(20), analysis_step(&["web"])], 1, 2);
    let analysis = serde_json::from_value(json!({
        "templates": [{"templateName": "multi"}],
        "args": [
            {"name": "hash", "valueFrom": {"podTemplateHashValue": "Stable"}},
            {"name": "ro", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
        ],
        "dryRun": [{"metricName": "web"}],
        "measurementRetention": [{"metricName": "web", "limit": 3}],
        "analysisRunMetadata": {"labels": {"team": "a"}, "annotations": {"note": "n"}}
    }))
    .unwrap();
    edit_steps(&mut obs, |steps| steps[1].analysis = Some(analysis));
    obs.rollout.metadata.labels =
        Some([(CONTROLLER_INSTANCE_ID_LABEL.to_string(), "blue".to_string())].into());
    let template = serde_json::from_value(json!({
        "metrics": [{"name": "web", "provider": {"web": {"url": "http://{{args.ro}}/{{args.hash}}"}}}],
        "args": [{"name": "hash"}, {"name": "ro"}]
    }))
    .unwrap();
    obs.analysis_templates.insert(
        "multi".into(),
        sluice_api::analysis::AnalysisTemplate::new("multi", template),
    );
    let p = plan_step(&obs, at(50));
    let Some(Change::CreateAnalysisRun(run)) = p.changes.first() else {
        panic!("{:?} {:?}", p.changes, p.status)
    };
    assert_eq!(
        serde_json::to_value(&run.spec).unwrap(),
        json!({
            "metrics": [{"name": "web", "provider": {"web": {"url": "http://{{args.ro}}/{{args.hash}}"}}}],
            "args": [{"name": "hash", "value": hash("app:v1")}, {"name": "ro", "value": NAME}],
            "dryRun": [{"metricName": "web"}],
            "measurementRetention": [{"metricName": "web", "limit": 3}]
        })
    );
    let labels = run.metadata.labels.as_ref().unwrap();
    assert_eq!(labels.get("team").map(String::as_str), Some("a"));
    assert_eq!(
        labels.get(CONTROLLER_INSTANCE_ID_LABEL).map(String::as_str),
        Some("blue")
    );
    assert_eq!(
        run.metadata
            .annotations
            .as_ref()
            .unwrap()
            .get("note")
            .map(String::as_str),
        Some("n")
    );
}

#[test]
fn cluster_templates_are_found_by_cluster_scope_and_a_missing_one_is_invalid() {
    let mut obs = at_analysis_step();
    edit_steps(&mut obs, |steps| {
        steps[1]
            .analysis
            .as_mut()
            .unwrap()
            .templates
            .as_mut()
            .unwrap()[0]
            .cluster_scope = Some(true)
    });
    let p = plan_step(&obs, at(50));
    let message = "spec.strategy.canary.steps[1].analysis.templates[0]: ClusterAnalysisTemplate 'web' not found";
    assert_eq!(p.changes, vec![Change::warning("InvalidSpec", message)]);
    assert_eq!(
        phase_of(&p),
        (
            RolloutPhase::Degraded,
            format!("InvalidSpec: {message}").as_str()
        )
    );

    let web = obs.analysis_templates["web"].spec.clone();
    obs.cluster_analysis_templates.insert(
        "web".into(),
        ClusterAnalysisTemplate::new(
            "web",
            serde_json::from_value(serde_json::to_value(web).unwrap()).unwrap(),
        ),
    );
    obs.analysis_templates.clear();
    assert_eq!(run_changes(&plan_step(&obs, at(50))).0, vec![step_run()]);
}

#[test]
fn template_args_the_step_does_not_supply_make_the_rollout_invalid() {
    let mut obs = at_analysis_step();
    edit_steps(&mut obs, |steps| {
        steps[1].analysis.as_mut().unwrap().args = None
    });
    let p = plan_step(&obs, at(50));
    assert_eq!(
        p.changes,
        vec![Change::warning(
            "InvalidSpec",
            "spec.strategy.canary.steps[1].analysis: args.hash was not resolved"
        )]
    );
}

/// The walk of COMPAT §3 with an analysis step; the test plays the AnalysisRun controller.
fn analysis_walk(verdict: AnalysisPhase) -> Sim {
    let ro = RolloutBuilder::new("app:v1")
        .steps(vec![weight(20), analysis_step(&["web"]), weight(60)])
        .build();
    let mut s = Sim::new(ro);
    s.obs = with_templates(s.obs.clone(), &["web"]);
    s.run_until_quiet(20);
    assert_eq!(s.status().phase, Some(RolloutPhase::Healthy));
    assert!(
        s.obs.analysis_runs.is_empty(),
        "no analysis on first deploy"
    );

    s.set_image("app:v2");
    s.run_until_quiet(30);
    // Waiting at the analysis step with its run created, canary at 20%.
    assert_eq!(s.status().current_step_index, Some(1));
    assert_eq!(s.obs.analysis_runs.len(), 1);
    assert_eq!(
        s.specs(),
        [(rs_name("app:v1"), 8), (rs_name("app:v2"), 2)].into()
    );
    let name = s.obs.analysis_runs[0].metadata.name.clone().unwrap();
    set_run_phase(&mut s.obs, &name, verdict, Some("verdict"));
    s.run_until_quiet(40);
    s
}

#[test]
fn walk_with_a_successful_analysis_completes_the_rollout() {
    let s = analysis_walk(AnalysisPhase::Successful);
    let st = s.status();
    assert_eq!(st.phase, Some(RolloutPhase::Healthy));
    assert_eq!(st.stable_rs, Some(v2_hash()));
    assert_eq!(
        s.specs(),
        [(rs_name("app:v1"), 0), (rs_name("app:v2"), 10)].into()
    );
}

#[test]
fn walk_with_a_failed_analysis_aborts_back_to_the_stable() {
    let s = analysis_walk(AnalysisPhase::Failed);
    let st = s.status();
    assert_eq!(st.phase, Some(RolloutPhase::Degraded));
    assert_eq!(
        st.message.as_deref(),
        Some(
            "RolloutAborted: Rollout aborted update to revision 2: Step-based analysis phase error/failed: verdict"
        )
    );
    assert_eq!(st.stable_rs, Some(hash("app:v1")));
    assert_eq!(
        s.specs(),
        [(rs_name("app:v1"), 10), (rs_name("app:v2"), 0)].into()
    );
}

#[test]
fn walk_with_an_inconclusive_analysis_pauses_until_resumed() {
    let mut s = analysis_walk(AnalysisPhase::Inconclusive);
    assert_eq!(s.status().phase, Some(RolloutPhase::Paused));
    assert_eq!(
        s.status().message.as_deref(),
        Some("InconclusiveAnalysisRun")
    );
    // Resume: a second run, which passes.
    s.obs.rollout.status.as_mut().unwrap().pause_conditions = None;
    s.run_until_quiet(10);
    assert_eq!(s.obs.analysis_runs.len(), 2);
    let second = s.obs.analysis_runs[1].metadata.name.clone().unwrap();
    assert!(second.ends_with(".1"), "{second}");
    set_run_phase(&mut s.obs, &second, AnalysisPhase::Successful, None);
    s.run_until_quiet(40);
    assert_eq!(s.status().phase, Some(RolloutPhase::Healthy));
    assert_eq!(s.status().stable_rs, Some(v2_hash()));
}

// ---- experiment steps ----

fn experiment_step() -> CanaryStep {
    let step: RolloutExperimentStep = serde_json::from_value(json!({
        "duration": "30s",
        "templates": [
            {"name": "baseline", "specRef": "stable", "metadata": {"labels": {"role": "baseline"}}},
            {"name": "canary", "specRef": "canary", "replicas": 2, "service": {"name": "exp-canary"}}
        ],
        "analyses": [{
            "name": "compare",
            "templateName": "web",
            "args": [{"name": "hash", "valueFrom": {"podTemplateHashValue": "Latest"}}],
            "requiredForCompletion": true
        }]
    }))
    .unwrap();
    CanaryStep {
        experiment: Some(step),
        ..Default::default()
    }
}

fn at_experiment_step() -> Observed {
    rolling(vec![weight(20), experiment_step(), weight(60)], 1, 2)
}

fn experiment_name() -> String {
    format!("{NAME}-{}-2-1", v2_hash())
}

fn created_experiments(p: &Plan) -> Vec<&Experiment> {
    p.changes
        .iter()
        .filter_map(|c| match c {
            Change::CreateExperiment(e) => Some(&**e),
            _ => None,
        })
        .collect()
}

#[test]
fn an_experiment_step_creates_its_experiment_from_canary_and_stable_templates() {
    let p = plan_step(&at_experiment_step(), at(50));
    let created = created_experiments(&p);
    assert_eq!(created.len(), 1);
    let exp = created[0];
    assert_eq!(exp.metadata.name, Some(experiment_name()));
    assert_eq!(exp.metadata.owner_references, Some(vec![owner()]));
    assert_eq!(
        exp.metadata.labels,
        Some([(POD_TEMPLATE_HASH_LABEL.to_string(), v2_hash())].into())
    );
    assert_eq!(
        exp.metadata.annotations,
        Some([(REVISION_ANNOTATION.to_string(), "2".to_string())].into())
    );
    let spec = serde_json::to_value(&exp.spec).unwrap();
    assert_eq!(spec["duration"], json!("30s"));
    let baseline = &spec["templates"][0];
    assert_eq!(baseline["name"], json!("baseline"));
    assert_eq!(
        baseline["template"]["spec"]["containers"][0]["image"],
        json!("app:v1")
    );
    assert_eq!(
        baseline["template"]["metadata"]["labels"],
        json!({"app": NAME, POD_TEMPLATE_HASH_LABEL: hash("app:v1"), "role": "baseline"})
    );
    assert_eq!(
        baseline["selector"]["matchLabels"],
        json!({"app": NAME, POD_TEMPLATE_HASH_LABEL: hash("app:v1"), "role": "baseline"})
    );
    assert!(baseline.get("service").is_none());
    let canary = &spec["templates"][1];
    assert_eq!(
        canary["template"]["spec"]["containers"][0]["image"],
        json!("app:v2")
    );
    assert_eq!(canary["replicas"], json!(2));
    assert_eq!(canary["service"], json!({"name": "exp-canary"}));
    assert_eq!(
        spec["analyses"],
        json!([{
            "name": "compare",
            "templateName": "web",
            "args": [{"name": "hash", "value": v2_hash()}],
            "requiredForCompletion": true
        }])
    );
    assert!(events(&p).contains(&(
        "ExperimentCreated".into(),
        format!("Created Experiment '{}'", experiment_name())
    )));
    assert_eq!(
        p.status.canary.as_ref().unwrap().current_experiment,
        Some(experiment_name())
    );
}

#[test]
fn no_experiment_is_created_without_a_stable_replica_set() {
    let mut obs = at_experiment_step();
    obs.replica_sets.remove(0);
    // Without a stable ReplicaSet there is nothing to compare: no experiment (the
    // Rollout treats the canary as an initial deploy and promotes it).
    let p = plan_step(&obs, at(50));
    assert!(created_experiments(&p).is_empty());
}

#[test]
fn experiment_phases_complete_pause_or_abort_the_step() {
    let start = || {
        let mut s = sim(at_experiment_step());
        step(&mut s);
        s
    };
    let mut s = start();
    set_experiment_phase(&mut s.obs, &experiment_name(), AnalysisPhase::Running, None);
    let p = step(&mut s);
    assert!(p.changes.is_empty(), "{:?}", p.changes);
    set_experiment_phase(
        &mut s.obs,
        &experiment_name(),
        AnalysisPhase::Successful,
        None,
    );
    let p = step(&mut s);
    assert_eq!(p.status.current_step_index, Some(2));
    assert_eq!(p.status.canary.as_ref().unwrap().current_experiment, None);

    let mut s = start();
    set_experiment_phase(
        &mut s.obs,
        &experiment_name(),
        AnalysisPhase::Inconclusive,
        None,
    );
    let p = step(&mut s);
    assert_eq!(
        phase_of(&p),
        (RolloutPhase::Paused, "InconclusiveExperiment")
    );
    assert!(
        created_experiments(&step(&mut s)).is_empty(),
        "no new experiment while paused"
    );
    s.obs.rollout.status.as_mut().unwrap().pause_conditions = None;
    let p = step(&mut s);
    assert_eq!(
        created_experiments(&p)[0].metadata.name,
        Some(format!("{}-1", experiment_name()))
    );

    let mut s = start();
    set_experiment_phase(
        &mut s.obs,
        &experiment_name(),
        AnalysisPhase::Failed,
        Some("analysis compare failed"),
    );
    let p = step(&mut s);
    assert_eq!(p.status.abort, Some(true));
    assert!(p.status.message.as_deref().unwrap().ends_with(
        "revision 2: Experiment analysis phase is error/failed: analysis compare failed"
    ));
}

#[test]
fn abort_and_promote_full_terminate_a_running_experiment() {
    for (abort, promote_full) in [(true, false), (false, true)] {
        let mut s = sim(at_experiment_step());
        step(&mut s);
        set_experiment_phase(&mut s.obs, &experiment_name(), AnalysisPhase::Running, None);
        let st = s.obs.rollout.status.as_mut().unwrap();
        st.abort = abort.then_some(true);
        st.promote_full = promote_full.then_some(true);
        let p = step(&mut s);
        assert!(
            p.changes.contains(&Change::TerminateExperiment {
                name: experiment_name()
            }),
            "abort {abort}: {:?}",
            p.changes
        );
        assert!(
            !step(&mut s)
                .changes
                .iter()
                .any(|c| matches!(c, Change::TerminateExperiment { .. }))
        );
    }
}

#[test]
fn experiment_step_weight_is_invalid_without_traffic_routing() {
    let mut obs = at_experiment_step();
    edit_steps(&mut obs, |steps| {
        steps[1].experiment.as_mut().unwrap().templates[0].weight = Some(10)
    });
    assert_eq!(
        plan_step(&obs, at(50)).changes,
        vec![Change::warning(
            "InvalidSpec",
            "spec.strategy.canary.steps[1].experiment.templates[0].weight: Experiment template weight cannot be set unless TrafficRouting is enabled"
        )]
    );
    let mut obs = at_experiment_step();
    obs.analysis_templates.clear();
    assert_eq!(
        plan_step(&obs, at(50)).changes,
        vec![Change::warning(
            "InvalidSpec",
            "spec.strategy.canary.steps[1].experiment.analyses[0].templateName: AnalysisTemplate 'web' not found"
        )]
    );
}

#[test]
fn rollouts_without_analysis_or_experiments_never_get_a_canary_status_object() {
    let mut s = Sim::new(
        RolloutBuilder::new("app:v1")
            .steps(vec![weight(20), pause_for("5s")])
            .build(),
    );
    s.run_until_quiet(20);
    s.set_image("app:v2");
    let mut plans = s.run_until_quiet(30);
    s.now += 10;
    plans.extend(s.run_until_quiet(30));
    assert_eq!(s.status().stable_rs, Some(v2_hash()));
    assert!(plans.iter().all(|p| p.status.canary.is_none()));
}

#[test]
fn walk_with_a_successful_experiment_completes_the_rollout() {
    let ro = RolloutBuilder::new("app:v1")
        .steps(vec![weight(20), experiment_step(), weight(60)])
        .build();
    let mut s = Sim::new(ro);
    s.obs = with_templates(s.obs.clone(), &["web"]);
    s.run_until_quiet(20);
    assert!(
        s.obs.experiments.is_empty(),
        "no experiment on first deploy"
    );
    s.set_image("app:v2");
    s.run_until_quiet(30);
    assert_eq!(s.status().current_step_index, Some(1));
    assert_eq!(s.obs.experiments.len(), 1);
    let name = s.obs.experiments[0].metadata.name.clone().unwrap();
    assert_eq!(
        s.status().canary.as_ref().unwrap().current_experiment,
        Some(name.clone())
    );
    set_experiment_phase(&mut s.obs, &name, AnalysisPhase::Successful, None);
    s.run_until_quiet(40);
    assert_eq!(s.status().phase, Some(RolloutPhase::Healthy));
    assert_eq!(s.status().stable_rs, Some(v2_hash()));
    assert_eq!(s.obs.experiments.len(), 1, "kept within the history limit");
}

#[test]
fn experiments_of_deleted_replica_sets_are_deleted_without_terminating_first() {
    let mut obs = at_experiment_step();
    let mut old = Experiment::new("old", Default::default());
    old.metadata.labels = Some([(POD_TEMPLATE_HASH_LABEL.to_string(), "gone".to_string())].into());
    obs.experiments.push(old);
    let p = plan_step(&obs, at(50));
    assert!(
        p.changes
            .contains(&Change::DeleteExperiment { name: "old".into() })
    );
    assert!(
        !p.changes
            .contains(&Change::TerminateExperiment { name: "old".into() })
    );
}

#[test]
fn experiment_analysis_args_that_cannot_be_resolved_make_the_rollout_invalid() {
    let mut obs = at_experiment_step();
    edit_steps(&mut obs, |steps| {
        let analyses = steps[1]
            .experiment
            .as_mut()
            .unwrap()
            .analyses
            .as_mut()
            .unwrap();
        analyses[0].args = Some(
            serde_json::from_value(json!([
                {"name": "hash", "valueFrom": {"fieldRef": {"fieldPath": "spec.nope"}}}
            ]))
            .unwrap(),
        );
    });
    assert_eq!(
        plan_step(&obs, at(50)).changes,
        vec![Change::warning(
            "InvalidSpec",
            "spec.strategy.canary.steps[1].experiment.analyses[0].args: argument \"hash\": fieldRef \"spec.nope\": invalid path spec.nope in rollout"
        )]
    );
}

/// Forgets the runs the status names, as when the status write that recorded them was lost
/// (the controller crashed, or the server refused or timed out on it, after the create).
fn lose_run_status(sim: &mut Sim) {
    let status = sim.obs.rollout.status.as_mut().unwrap();
    if let Some(c) = status.canary.as_mut() {
        c.current_step_analysis_run_status = None;
        c.current_background_analysis_run_status = None;
    }
}

/// Regression (found by the chaos suite): a run whose name the status lost, and which had
/// finished by the next reconcile, was not adopted: a second run (`<name>.1`) measured the
/// same step again.
#[test]
fn a_finished_step_run_the_status_lost_is_adopted_not_duplicated() {
    let mut s = sim(at_analysis_step());
    step(&mut s);
    lose_run_status(&mut s);
    set_run_phase(&mut s.obs, &step_run(), AnalysisPhase::Successful, None);
    let p = step(&mut s);
    assert_eq!(run_changes(&p).0, Vec::<String>::new(), "no second run");
    assert_eq!(
        step_status(&p),
        Some(&run_status(&step_run(), AnalysisPhase::Successful))
    );
    let p = step(&mut s);
    assert_eq!(run_changes(&p).0, Vec::<String>::new());
    assert_eq!(s.status().current_step_index, Some(2), "{p:?}");
}

#[test]
fn a_failed_background_run_the_status_lost_is_adopted_and_aborts() {
    let mut s = sim(with_background(
        rolling(vec![weight(20), pause(), weight(50)], 0, 2),
        None,
    ));
    step(&mut s);
    lose_run_status(&mut s);
    set_run_phase(
        &mut s.obs,
        &background_run(),
        AnalysisPhase::Failed,
        Some(FAILED_MESSAGE),
    );
    for _ in 0..3 {
        assert_eq!(
            run_changes(&step(&mut s)).0,
            Vec::<String>::new(),
            "no second run"
        );
    }
    assert_eq!(s.status().abort, Some(true));
}
