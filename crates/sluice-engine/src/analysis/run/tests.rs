use super::*;
use crate::analysis::expr::Value;
use serde_json::json;
use sluice_api::analysis::RunSummary;

/// The planner with nothing remembered beyond the status (a freshly started controller).
fn plan_run(
    run: &AnalysisRun,
    secrets: &SecretValues,
    taken: &[TakenMeasurement],
    now: DateTime<Utc>,
) -> RunPlan {
    super::plan_run(run, secrets, taken, &FinishTimes::default(), now)
}

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
}

fn run_from(spec: serde_json::Value) -> AnalysisRun {
    serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {"name": "r", "namespace": "ns", "uid": "u-1"},
        "spec": spec
    }))
    .unwrap()
}

fn web_metric(extra: serde_json::Value) -> serde_json::Value {
    let mut m = json!({
        "name": "ok-rate",
        "successCondition": "result >= 0.9",
        "provider": {"web": {"url": "http://svc/{{args.service}}"}}
    });
    m.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    m
}

fn value(v: f64) -> MeasurementOutcome {
    MeasurementOutcome::Value(MeasuredValue {
        value: Value::Float(v),
        display: v.to_string(),
        metadata: BTreeMap::new(),
    })
}

fn taken(metric: &str, t: i64, outcome: MeasurementOutcome) -> TakenMeasurement {
    TakenMeasurement {
        metric: metric.to_string(),
        started_at: at(t),
        finished_at: at(t),
        outcome,
    }
}

/// Applies a plan's status to the run, as the controller's write would.
fn write(run: &mut AnalysisRun, plan: &RunPlan) {
    run.status = Some(plan.status.clone());
}

fn args_service() -> serde_json::Value {
    json!([{"name": "service", "value": "checkout"}])
}

#[test]
fn pending_run_starts_and_asks_for_the_first_measurement_with_args_substituted() {
    let run = run_from(json!({"metrics": [web_metric(json!({}))], "args": args_service()}));
    let plan = plan_run(&run, &SecretValues::new(), &[], at(0));
    assert_eq!(plan.status.started_at, Some(to_time(at(0))));
    assert_eq!(plan.status.phase, AnalysisPhase::Running);
    assert_eq!(plan.due.len(), 1);
    let MetricProvider::Web(web) = &plan.due[0].provider.0 else {
        panic!("web provider expected");
    };
    assert_eq!(web.url, "http://svc/checkout");
    assert_eq!(plan.due[0].attempt, 1);
    assert!(plan.due[0].in_flight.is_none());
}

#[test]
fn single_successful_measurement_completes_the_run() {
    let run = run_from(json!({"metrics": [web_metric(json!({}))], "args": args_service()}));
    let plan = plan_run(
        &run,
        &SecretValues::new(),
        &[taken("ok-rate", 0, value(0.95))],
        at(0),
    );
    assert_eq!(plan.status.phase, AnalysisPhase::Successful);
    assert_eq!(plan.status.completed_at, Some(to_time(at(0))));
    let r = &plan.status.metric_results.as_ref().unwrap()[0];
    assert_eq!(r.phase, AnalysisPhase::Successful);
    assert_eq!(
        (r.count, r.successful, r.consecutive_success),
        (Some(1), Some(1), Some(1))
    );
    let m = &r.measurements.as_ref().unwrap()[0];
    assert_eq!(m.value.as_deref(), Some("0.95"));
    assert_eq!(m.finished_at, Some(to_time(at(0))));
    assert!(plan.due.is_empty());
    assert_eq!(plan.requeue_after, None);
    assert_eq!(
        plan.status.run_summary,
        Some(RunSummary {
            count: Some(1),
            successful: Some(1),
            ..RunSummary::default()
        })
    );
    assert!(
        plan.events
            .iter()
            .any(|e| e.reason == "AnalysisRunSuccessful" && !e.warning)
    );
}

#[test]
fn failing_measurements_fail_the_metric_and_name_it_in_the_message() {
    let metric = web_metric(json!({"interval": "1m", "count": 3, "failureLimit": 1}));
    let mut run = run_from(json!({"metrics": [metric], "args": args_service()}));
    let secrets = SecretValues::new();
    let p = plan_run(&run, &secrets, &[taken("ok-rate", 0, value(0.5))], at(0));
    assert_eq!(p.status.phase, AnalysisPhase::Running);
    assert_eq!(p.requeue_after, Some(std::time::Duration::from_secs(60)));
    write(&mut run, &p);
    let early = plan_run(&run, &secrets, &[], at(30));
    assert!(early.due.is_empty());
    assert_eq!(
        early.requeue_after,
        Some(std::time::Duration::from_secs(30))
    );
    let due = plan_run(&run, &secrets, &[], at(60));
    assert_eq!(due.due.len(), 1);
    let p = plan_run(&run, &secrets, &[taken("ok-rate", 60, value(0.1))], at(60));
    assert_eq!(p.status.phase, AnalysisPhase::Failed);
    assert_eq!(
        p.status.message.as_deref(),
        Some("Metric \"ok-rate\" assessed Failed due to failed (2) > failureLimit (1)")
    );
    assert!(
        p.events
            .iter()
            .any(|e| e.reason == "MetricFailed" && e.warning)
    );
}

#[test]
fn provider_errors_retry_every_ten_seconds_until_the_limit() {
    let metric = web_metric(json!({"interval": "5m", "consecutiveErrorLimit": 1}));
    let mut run = run_from(json!({"metrics": [metric], "args": args_service()}));
    let s = SecretValues::new();
    let err = || MeasurementOutcome::Error("received non 2xx response code: 500".into());
    let p = plan_run(&run, &s, &[taken("ok-rate", 0, err())], at(0));
    assert_eq!(p.status.phase, AnalysisPhase::Running);
    assert_eq!(p.requeue_after, Some(std::time::Duration::from_secs(10)));
    write(&mut run, &p);
    let p = plan_run(&run, &s, &[taken("ok-rate", 10, err())], at(10));
    assert_eq!(p.status.phase, AnalysisPhase::Error);
    assert_eq!(
        p.status.message.as_deref(),
        Some(
            "Metric \"ok-rate\" assessed Error due to consecutiveErrors (2) > consecutiveErrorLimit (1): \"Error Message: received non 2xx response code: 500\""
        )
    );
}

#[test]
fn terminate_ends_the_run_successful_with_run_terminated() {
    let metric = web_metric(json!({"interval": "1m"}));
    let mut run = run_from(json!({"metrics": [metric], "args": args_service()}));
    let s = SecretValues::new();
    let p = plan_run(&run, &s, &[taken("ok-rate", 0, value(1.0))], at(0));
    assert_eq!(p.status.phase, AnalysisPhase::Running);
    write(&mut run, &p);
    run.spec.terminate = Some(true);
    let p = plan_run(&run, &s, &[], at(5));
    assert_eq!(p.status.phase, AnalysisPhase::Successful);
    assert_eq!(p.status.message.as_deref(), Some("Run Terminated"));
    assert!(p.due.is_empty());
}

#[test]
fn first_failed_metric_stops_an_indefinite_one_in_the_same_pass() {
    let forever = web_metric(json!({"name": "forever", "interval": "1m"}));
    let once = web_metric(json!({"name": "once"}));
    let run = run_from(json!({"metrics": [forever, once], "args": args_service()}));
    let p = plan_run(
        &run,
        &SecretValues::new(),
        &[
            taken("forever", 0, value(1.0)),
            taken("once", 0, value(0.0)),
        ],
        at(0),
    );
    assert_eq!(p.status.phase, AnalysisPhase::Failed);
    let phases: Vec<_> = p
        .status
        .metric_results
        .unwrap()
        .iter()
        .map(|r| (r.name.clone(), r.phase.clone()))
        .collect();
    assert_eq!(
        phases,
        vec![
            ("forever".to_string(), AnalysisPhase::Successful),
            ("once".to_string(), AnalysisPhase::Failed)
        ]
    );
}

#[test]
fn dry_run_metric_failure_does_not_fail_the_run() {
    let real = web_metric(json!({"name": "real"}));
    let dry = web_metric(json!({"name": "dry"}));
    let run = run_from(json!({
        "metrics": [real, dry], "args": args_service(),
        "dryRun": [{"metricName": "dr.*"}]
    }));
    let p = plan_run(
        &run,
        &SecretValues::new(),
        &[taken("real", 0, value(1.0)), taken("dry", 0, value(0.0))],
        at(0),
    );
    assert_eq!(p.status.phase, AnalysisPhase::Successful);
    assert_eq!(
        p.status.dry_run_summary,
        Some(RunSummary {
            count: Some(1),
            failed: Some(1),
            ..RunSummary::default()
        })
    );
    let dry = &p.status.metric_results.unwrap()[1];
    assert_eq!(dry.dry_run, Some(true));
    assert_eq!(
        dry.message.as_deref(),
        Some("Metric assessed Failed due to failed (1) > failureLimit (0)")
    );
}

#[test]
fn spec_errors_end_the_run_in_error_naming_metric_and_cause() {
    let cases = [
        (
            json!({"metrics": [web_metric(json!({"successCondition": "result >"}))], "args": args_service()}),
            "Analysis spec invalid: metrics[0] (ok-rate): successCondition: invalid expression \"result >\"",
        ),
        (
            json!({"metrics": [web_metric(json!({}))]}),
            "Unable to resolve metric arguments: failed to resolve {{args.service}}",
        ),
        (
            json!({"metrics": [web_metric(json!({}))], "args": [{"name": "service"}]}),
            "Unable to resolve metric arguments: argument \"service\" was not supplied",
        ),
        (
            json!({"metrics": [{"name": "d", "provider": {"datadog": {"query": "q"}}}]}),
            "Analysis spec invalid: metrics[0]: metric \"d\": provider datadog is not supported",
        ),
        (
            json!({"metrics": [web_metric(json!({"count": 3}))], "args": args_service()}),
            "Analysis spec invalid: metrics[0] (ok-rate): interval must be specified when count > 1",
        ),
        (
            json!({"metrics": [web_metric(json!({"interval": "5"}))], "args": args_service()}),
            "Analysis spec invalid: metrics[0] (ok-rate): invalid interval string",
        ),
        (
            json!({"metrics": [web_metric(json!({}))], "args": args_service(), "dryRun": [{"metricName": "nope"}]}),
            "Analysis spec invalid: dryRun[0]: Rule didn't match any metric name(s)",
        ),
        (
            json!({"metrics": [web_metric(json!({})), web_metric(json!({}))], "args": args_service()}),
            "Analysis spec invalid: metrics[1]: duplicate name 'ok-rate'",
        ),
        (
            json!({"metrics": []}),
            "Analysis spec invalid: no metrics specified",
        ),
    ];
    for (spec, want) in cases {
        let plan = plan_run(&run_from(spec.clone()), &SecretValues::new(), &[], at(0));
        assert_eq!(plan.status.phase, AnalysisPhase::Error, "{spec}");
        let msg = plan.status.message.unwrap_or_default();
        assert!(msg.starts_with(want), "{spec}: {msg}");
        assert!(plan.due.is_empty());
    }
}

#[test]
fn secret_args_are_substituted_but_redacted_from_messages() {
    let metric = json!({
        "name": "api",
        "provider": {"web": {"url": "http://svc/", "headers": [{"key": "Authorization", "value": "Bearer {{args.token}}"}]}}
    });
    let run = run_from(json!({
        "metrics": [metric],
        "args": [{"name": "token", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "t"}}}]
    }));
    assert_eq!(
        required_secrets(&run),
        vec![("creds".to_string(), "t".to_string())]
    );
    let mut secrets = SecretValues::new();
    secrets.insert(
        ("creds".into(), "t".into()),
        Ok(SecretString::new("hunter2")),
    );
    let plan = plan_run(&run, &secrets, &[], at(0));
    let MetricProvider::Web(web) = &plan.due[0].provider.0 else {
        panic!()
    };
    assert_eq!(web.headers.as_ref().unwrap()[0].value, "Bearer hunter2");
    assert!(!format!("{:?}", plan.due).contains("hunter2"));
    let plan = plan_run(
        &run,
        &secrets,
        &[taken(
            "api",
            0,
            MeasurementOutcome::Error("401 for token hunter2".into()),
        )],
        at(0),
    );
    let m = &plan.status.metric_results.unwrap()[0]
        .measurements
        .clone()
        .unwrap()[0];
    assert_eq!(m.message.as_deref(), Some("401 for token *****"));

    let missing = plan_run(&run, &SecretValues::new(), &[], at(0));
    assert_eq!(missing.status.phase, AnalysisPhase::Error);
    assert!(missing.status.message.unwrap().contains("secret \"creds\""));
}

/// Found by the secrets e2e (e2e/secrets.rs): a Prometheus query with a secret argument
/// showed it in the metric's `ResolvedPrometheusQuery` metadata; a value or measurement
/// metadata echoing it would too.
#[test]
fn secret_args_are_redacted_from_metadata_and_values() {
    let metric = json!({
        "name": "prom",
        "provider": {"prometheus": {"address": "http://prom", "query": "up{token='{{args.token}}'}"}}
    });
    let run = run_from(json!({
        "metrics": [metric],
        "args": [{"name": "token", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "t"}}}]
    }));
    let mut secrets = SecretValues::new();
    secrets.insert(
        ("creds".into(), "t".into()),
        Ok(SecretString::new("hunter2")),
    );
    let echoed = MeasurementOutcome::Value(MeasuredValue {
        value: Value::String("hunter2".into()),
        display: "[hunter2]".into(),
        metadata: BTreeMap::from([("echo".to_string(), "token=hunter2".to_string())]),
    });
    let plan = plan_run(&run, &secrets, &[taken("prom", 0, echoed)], at(0));
    let status = serde_json::to_string(&plan.status).unwrap();
    assert!(!status.contains("hunter2"), "{status}");
    let result = &plan.status.metric_results.unwrap()[0];
    assert_eq!(
        result.metadata.as_ref().unwrap()["ResolvedPrometheusQuery"],
        "up{token='*****'}"
    );
    let m = &result.measurements.as_ref().unwrap()[0];
    assert_eq!(m.value.as_deref(), Some("[*****]"));
    assert_eq!(m.metadata.as_ref().unwrap()["echo"], "token=*****");
}

#[test]
fn initial_delay_postpones_the_first_measurement() {
    let run = run_from(
        json!({"metrics": [web_metric(json!({"initialDelay": "30s"}))], "args": args_service()}),
    );
    let p = plan_run(&run, &SecretValues::new(), &[], at(0));
    assert!(p.due.is_empty());
    assert_eq!(p.requeue_after, Some(std::time::Duration::from_secs(30)));
    assert_eq!(p.status.phase, AnalysisPhase::Running);
}

#[test]
fn job_measurement_is_resumed_in_place_then_finished() {
    let metric = json!({
        "name": "smoke",
        "provider": {"job": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}}
    });
    let mut run = run_from(json!({"metrics": [metric]}));
    let s = SecretValues::new();
    let started = MeasurementOutcome::InFlight {
        metadata: BTreeMap::from([("job-name".to_string(), "u-1.smoke.1".to_string())]),
        resume_at: at(5),
    };
    let p = plan_run(&run, &s, &[taken("smoke", 0, started)], at(0));
    assert_eq!(p.status.phase, AnalysisPhase::Running);
    assert_eq!(p.requeue_after, Some(std::time::Duration::from_secs(5)));
    write(&mut run, &p);
    let p = plan_run(&run, &s, &[], at(5));
    assert_eq!(p.due.len(), 1);
    assert!(p.due[0].in_flight.is_some() && !p.due[0].terminate);
    let done = MeasurementOutcome::Finished {
        phase: Phase::Successful,
        message: None,
    };
    let p = plan_run(&run, &s, &[taken("smoke", 9, done)], at(9));
    assert_eq!(p.status.phase, AnalysisPhase::Successful);
    let ms = p.status.metric_results.unwrap()[0]
        .measurements
        .clone()
        .unwrap();
    assert_eq!(ms.len(), 1);
    assert_eq!(ms[0].started_at, Some(to_time(at(0))));
    assert_eq!(ms[0].finished_at, Some(to_time(at(9))));
    assert_eq!(ms[0].metadata.as_ref().unwrap()["job-name"], "u-1.smoke.1");
    assert!(ms[0].resume_at.is_none());
}

#[test]
fn due_job_measurement_yields_the_job_to_create_and_its_in_flight_record() {
    let metric = json!({
        "name": "smoke",
        "provider": {"job": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}}
    });
    let run = run_from(json!({"metrics": [metric]}));
    let s = SecretValues::new();
    let plan = plan_run(&run, &s, &[], at(0));
    let (job, taken) = job_to_create(&run, &plan.due[0], None, at(0)).unwrap();
    assert_eq!(job.metadata.name.as_deref(), Some("u-1.smoke.1"));
    assert_eq!(job.metadata.namespace.as_deref(), Some("ns"));
    let p = plan_run(&run, &s, &[taken], at(0));
    let m = &p.status.metric_results.unwrap()[0]
        .measurements
        .clone()
        .unwrap()[0];
    assert_eq!(m.phase, AnalysisPhase::Running);
    assert_eq!(m.metadata.as_ref().unwrap()["job-name"], "u-1.smoke.1");
    assert_eq!(p.due.len(), 1, "checked again right away");
    assert!(p.due[0].in_flight.is_some());
    assert!(job_to_create(&run, &p.due[0], None, at(0)).is_none());
}

#[test]
fn terminating_run_stops_an_in_flight_job() {
    let metric = json!({
        "name": "smoke",
        "provider": {"job": {"spec": {"template": {"spec": {"containers": []}}}}}
    });
    let mut run = run_from(json!({"metrics": [metric]}));
    let s = SecretValues::new();
    let started = MeasurementOutcome::InFlight {
        metadata: BTreeMap::new(),
        resume_at: at(50),
    };
    let p = plan_run(&run, &s, &[taken("smoke", 0, started)], at(0));
    write(&mut run, &p);
    run.spec.terminate = Some(true);
    // The first pass asks to stop the job; the controller takes that measurement and plans
    // again with the same run, so only the second pass's status is written (as upstream,
    // which terminates and assesses in one reconcile).
    let p = plan_run(&run, &s, &[], at(1));
    assert_eq!(p.due.len(), 1);
    assert!(p.due[0].terminate);
    let stopped = MeasurementOutcome::Finished {
        phase: Phase::Inconclusive,
        message: None,
    };
    let p = plan_run(&run, &s, &[taken("smoke", 1, stopped)], at(1));
    let r = &p.status.metric_results.as_ref().unwrap()[0];
    assert_eq!(
        r.measurements.as_ref().unwrap()[0].message.as_deref(),
        Some("Metric Terminated")
    );
    assert_eq!(p.status.phase, AnalysisPhase::Inconclusive);
}

#[test]
fn measurement_retention_keeps_the_newest() {
    let metric = web_metric(json!({"interval": "1s"}));
    let mut run = run_from(json!({
        "metrics": [metric], "args": args_service(),
        "measurementRetention": [{"metricName": "ok-rate", "limit": 2}]
    }));
    for i in 0..4 {
        let p = plan_run(
            &run,
            &SecretValues::new(),
            &[taken("ok-rate", i, value(1.0))],
            at(i),
        );
        write(&mut run, &p);
    }
    let r = &run
        .status
        .as_ref()
        .unwrap()
        .metric_results
        .as_ref()
        .unwrap()[0];
    assert_eq!(r.count, Some(4));
    let kept: Vec<_> = r
        .measurements
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| m.started_at.clone())
        .collect();
    assert_eq!(kept, vec![Some(to_time(at(2))), Some(to_time(at(3)))]);
}

#[test]
fn ttl_strategy_deletes_completed_runs_after_the_right_delay() {
    let mut run = run_from(json!({
        "metrics": [web_metric(json!({}))], "args": args_service(),
        "ttlStrategy": {"secondsAfterCompletion": 100, "secondsAfterSuccess": 10}
    }));
    let p = plan_run(
        &run,
        &SecretValues::new(),
        &[taken("ok-rate", 0, value(1.0))],
        at(0),
    );
    assert_eq!(p.status.phase, AnalysisPhase::Successful);
    assert_eq!(p.requeue_after, Some(std::time::Duration::from_secs(11)));
    write(&mut run, &p);
    assert!(!plan_run(&run, &SecretValues::new(), &[], at(10)).delete);
    assert!(plan_run(&run, &SecretValues::new(), &[], at(11)).delete);
    run.status.as_mut().unwrap().phase = AnalysisPhase::Failed;
    assert!(!plan_run(&run, &SecretValues::new(), &[], at(11)).delete);
    assert!(plan_run(&run, &SecretValues::new(), &[], at(101)).delete);
}

#[test]
fn arg_valued_limits_and_conditions_are_substituted() {
    let metric = json!({
        "name": "m",
        "count": "{{args.count}}",
        "interval": "{{args.every}}",
        "successCondition": "result >= {{args.threshold}}",
        "provider": {"web": {"url": "http://x"}}
    });
    let run = run_from(json!({"metrics": [metric], "args": [
        {"name": "count", "value": "2"}, {"name": "every", "value": "10s"}, {"name": "threshold", "value": "0.9"}
    ]}));
    let p = plan_run(
        &run,
        &SecretValues::new(),
        &[taken("m", 0, value(0.95))],
        at(0),
    );
    assert_eq!(p.status.phase, AnalysisPhase::Running);
    assert_eq!(p.requeue_after, Some(std::time::Duration::from_secs(10)));
    let p2 = plan_run(
        &run,
        &SecretValues::new(),
        &[taken("m", 0, value(0.5))],
        at(0),
    );
    assert_eq!(p2.status.phase, AnalysisPhase::Failed);
}

#[test]
fn provider_errors_become_measurement_messages_without_the_metric_prefix() {
    let err = ProviderError {
        metric: "m".into(),
        kind: crate::analysis::provider::ProviderErrorKind::Measurement("boom".into()),
    };
    assert_eq!(
        MeasurementOutcome::from(Err(err)),
        MeasurementOutcome::Error("boom".into())
    );
    assert_eq!(
        MeasurementOutcome::from(JobProgress::Running { resume_at: at(3) }),
        MeasurementOutcome::InFlight {
            metadata: BTreeMap::new(),
            resume_at: at(3)
        }
    );
}

fn ms(secs: i64, millis: i64) -> DateTime<Utc> {
    at(secs) + chrono::Duration::milliseconds(millis)
}

fn taken_at(metric: &str, finished: DateTime<Utc>) -> TakenMeasurement {
    TakenMeasurement {
        metric: metric.to_string(),
        started_at: finished,
        finished_at: finished,
        outcome: value(1.0),
    }
}

/// The plan of `run`'s first measurement, taken at 0.7 s.
fn measured_once(run: &AnalysisRun) -> RunPlan {
    super::plan_run(
        run,
        &SecretValues::new(),
        &[taken_at("ok-rate", ms(0, 700))],
        &FinishTimes::default(),
        ms(0, 700),
    )
}

fn every_second(count: i32) -> AnalysisRun {
    run_from(json!({
        "metrics": [web_metric(json!({"interval": "1s", "count": count}))],
        "args": args_service()
    }))
}

#[test]
fn the_next_measurement_is_due_one_interval_after_the_exact_finish() {
    let mut run = every_second(3);
    // Measured at 0.7 s: the status can only say second 0.
    let first = measured_once(&run);
    let stored = &first.status.metric_results.as_ref().unwrap()[0]
        .measurements
        .as_ref()
        .unwrap()[0];
    assert_eq!(stored.finished_at, Some(to_time(at(0))));
    assert_eq!(
        first.requeue_after,
        Some(std::time::Duration::from_secs(1)),
        "due at 1.7 s"
    );
    write(&mut run, &first);
    let remembered = &first.finish_times;
    assert!(!remembered.is_empty());

    // At 1.0 s (the stored second + 1 s) nothing is due yet; at 1.7 s it is.
    let early = super::plan_run(&run, &SecretValues::new(), &[], remembered, at(1));
    assert!(
        early.due.is_empty(),
        "not due 300 ms after the last measurement"
    );
    assert_eq!(
        early.requeue_after,
        Some(std::time::Duration::from_millis(700))
    );
    assert_eq!(&early.finish_times, remembered, "still describes it");
    let due = super::plan_run(&run, &SecretValues::new(), &[], remembered, ms(1, 700));
    assert_eq!(due.due.len(), 1);
}

#[test]
fn without_a_remembered_finish_the_stored_second_schedules() {
    let mut run = every_second(3);
    let first = measured_once(&run);
    write(&mut run, &first);
    // A restarted controller knows only the stored second 0.
    let p = plan_run(&run, &SecretValues::new(), &[], at(1));
    assert_eq!(p.due.len(), 1);
}

#[test]
fn a_remembered_finish_of_an_older_measurement_is_ignored_and_dropped() {
    let mut run = every_second(3);
    let first = measured_once(&run);
    write(&mut run, &first);
    let old = first.finish_times.clone();
    // Another controller (or this one before a conflict) took the second measurement at
    // 1.2 s; the memory of the first no longer describes the last measurement.
    let second = plan_run(
        &run,
        &SecretValues::new(),
        &[taken_at("ok-rate", ms(1, 200))],
        ms(1, 200),
    );
    write(&mut run, &second);
    let p = super::plan_run(&run, &SecretValues::new(), &[], &old, at(2));
    assert_eq!(p.due.len(), 1, "due at the stored second 1 + 1 s");
    assert!(p.finish_times.is_empty());
}

#[test]
fn a_completed_run_remembers_no_finish_times() {
    let run = every_second(1);
    let p = measured_once(&run);
    assert_eq!(p.status.phase, AnalysisPhase::Successful);
    assert!(p.finish_times.is_empty());
}
