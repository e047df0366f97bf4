//! Running Sluice in production: metrics, health, leader election, shutdown.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Env, free_port};
use crate::prometheus::Served;
use crate::require_kubectl;

const T: Duration = Duration::from_secs(60);

const ROLLOUT: &str = r#"apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: web
spec:
  replicas: 4
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: nginx:1.25
  strategy:
    canary:
      maxSurge: 1
      maxUnavailable: 0
      steps:
        - setWeight: 25
        - pause: {}
"#;

fn phase(env: &Env) -> String {
    let ro: Value = env.get_json(&["rollout", "web"]);
    let observed = ro["status"]["observedGeneration"].as_str()
        == Some(&ro["metadata"]["generation"].to_string());
    if !observed {
        return String::new();
    }
    ro["status"]["phase"].as_str().unwrap_or("").to_string()
}

fn wait_phase(env: &Env, want: &str) {
    env.wait_for(&format!("phase {want}"), T, |env| {
        (phase(env) == want).then_some(())
    });
}

fn set_image(env: &Env, image: &str) {
    let patch = format!(
        r#"{{"spec":{{"template":{{"spec":{{"containers":[{{"name":"web","image":"{image}"}}]}}}}}}}}"#
    );
    env.kubectl_ok(&["patch", "rollout", "web", "--type=merge", "-p", &patch]);
}

fn promote(env: &Env) {
    env.patch_rollout_status("web", r#"{"status":{"pauseConditions":null}}"#);
}

fn abort(env: &Env) {
    env.patch_rollout_status("web", r#"{"status":{"abort":true}}"#);
}

/// `rollout_events_total` of the Rollout `web` for `reason` (0 when absent).
fn events_counted(body: &str, reason: &str) -> f64 {
    sample(
        body,
        "rollout_events_total",
        &[("name", "web"), ("reason", reason)],
    )
    .unwrap_or(0.0)
}

/// The value of the first sample of `metric` whose label set contains every `labels` pair.
fn sample(body: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (name_labels, value) = line.rsplit_once(' ')?;
            let (name, rest) = name_labels.split_once('{').unwrap_or((name_labels, ""));
            if name != metric {
                return None;
            }
            labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
                .then(|| value.parse().ok())
                .flatten()
        })
}

#[test]
fn metrics_and_health_endpoints_report_a_canary() {
    require_kubectl!();
    let env = Env::start("ops-metrics");
    let port = env.metrics_port;
    env.wait_for("/readyz to answer 200", T, |env| {
        env.http_get(port, "/readyz")
            .filter(|(code, _)| *code == 200)
            .map(|_| ())
    });
    let (code, _) = env.http_get(port, "/healthz").expect("healthz answers");
    assert_eq!(code, 200);

    env.apply(ROLLOUT);
    wait_phase(&env, "Healthy");
    set_image(&env, "nginx:1.26");
    wait_phase(&env, "Paused");
    let ns = env.namespace.clone();
    let body = env.wait_for("rollout metrics during the canary", T, |env| {
        let (_, body) = env.http_get(port, "/metrics")?;
        let desired = sample(
            &body,
            "rollout_info_replicas_desired",
            &[("namespace", &ns), ("name", "web")],
        )?;
        (desired == 4.0).then_some(body)
    });
    assert_eq!(
        sample(
            &body,
            "rollout_info",
            &[("name", "web"), ("strategy", "canary"), ("phase", "Paused")]
        ),
        Some(1.0)
    );
    assert!(
        sample(&body, "rollout_reconcile_count", &[("name", "web")]).unwrap_or(0.0) > 0.0,
        "{body}"
    );
    assert!(
        sample(
            &body,
            "controller_clientset_k8s_request_total",
            &[("kind", "replicasets")]
        )
        .unwrap_or(0.0)
            > 0.0
    );
    assert!(events_counted(&body, "RolloutPaused") >= 1.0, "{body}");

    promote(&env);
    wait_phase(&env, "Healthy");
    env.wait_for("a completed outcome counted", T, |env| {
        let (_, body) = env.http_get(port, "/metrics")?;
        let completed = sample(
            &body,
            "sluice_rollout_outcomes_total",
            &[("name", "web"), ("outcome", "completed")],
        )?;
        (completed == 1.0).then_some(())
    });

    // An abort is counted with its cause.
    set_image(&env, "nginx:1.27");
    wait_phase(&env, "Paused");
    abort(&env);
    wait_phase(&env, "Degraded");
    env.wait_for("a manual abort counted", T, |env| {
        let (_, body) = env.http_get(port, "/metrics")?;
        let aborted = sample(
            &body,
            "sluice_rollout_outcomes_total",
            &[("name", "web"), ("outcome", "aborted"), ("cause", "manual")],
        )?;
        (aborted == 1.0).then_some(())
    });
}

const MEASURED_RUN: &str = r#"apiVersion: argoproj.io/v1alpha1
kind: AnalysisRun
metadata:
  name: measured
spec:
  args:
    - name: url
  metrics:
    - name: ok-rate
      interval: 1s
      count: 2
      successCondition: "result >= 0.95"
      provider:
        web:
          url: "{{args.url}}"
          jsonPath: "{$.data.rate}"
"#;

const SIDE_BY_SIDE: &str = r#"apiVersion: argoproj.io/v1alpha1
kind: Experiment
metadata:
  name: side-by-side
spec:
  templates:
    - name: baseline
      selector:
        matchLabels: {app: base}
      template:
        metadata:
          labels: {app: base}
        spec:
          containers:
            - name: web
              image: nginx:1.27
"#;

#[test]
fn metrics_expose_analysis_runs_and_experiments_and_drop_deleted_ones() {
    require_kubectl!();
    let env = Env::start("ops-run-metrics");
    let port = env.metrics_port;
    let server = Served::start();
    server.set_json("/rate", &json!({"data": {"rate": 0.99}}));
    let url = server.url("/rate");
    env.apply(&MEASURED_RUN.replace(
        "    - name: url\n",
        &format!("    - name: url\n      value: \"{url}\"\n"),
    ));
    env.apply(SIDE_BY_SIDE);
    let ns = env.namespace.clone();
    let run = [("namespace", ns.as_str()), ("name", "measured")];
    let exp = [("namespace", ns.as_str()), ("name", "side-by-side")];
    let body = env.wait_for(
        "the finished run and the running experiment in /metrics",
        T,
        |env| {
            let (_, body) = env.http_get(port, "/metrics")?;
            let run_done = sample(
                &body,
                "analysis_run_info",
                &[run[0], run[1], ("phase", "Successful")],
            );
            let exp_running = sample(
                &body,
                "experiment_info",
                &[exp[0], exp[1], ("phase", "Running")],
            );
            (run_done == Some(1.0) && exp_running == Some(1.0)).then_some(body)
        },
    );
    assert_eq!(
        sample(
            &body,
            "analysis_run_metric_type",
            &[run[0], run[1], ("metric", "ok-rate"), ("type", "Web")]
        ),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        sample(
            &body,
            "analysis_run_metric_phase",
            &[
                run[0],
                run[1],
                ("metric", "ok-rate"),
                ("phase", "Successful")
            ]
        ),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        sample(
            &body,
            "analysis_run_metric_phase",
            &[run[0], run[1], ("metric", "ok-rate"), ("phase", "Failed")]
        ),
        Some(0.0),
        "{body}"
    );

    env.kubectl_ok(&["delete", "analysisrun", "measured"]);
    env.kubectl_ok(&["delete", "experiment", "side-by-side"]);
    env.wait_for("the deleted objects' series to disappear", T, |env| {
        let (_, body) = env.http_get(port, "/metrics")?;
        let gone = |metric: &str, labels: &[(&str, &str)]| sample(&body, metric, labels).is_none();
        (gone("analysis_run_info", &run)
            && gone("analysis_run_metric_type", &run)
            && gone("analysis_run_metric_phase", &run)
            && gone("experiment_info", &exp))
        .then_some(())
    });
}

fn lease_holder(env: &Env) -> String {
    let lease = env.get_json(&["lease", "sluice-controller", "-n", "default"]);
    lease["spec"]["holderIdentity"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[test]
fn only_the_leader_reconciles_and_a_standby_takes_over() {
    require_kubectl!();
    let mut env = Env::cluster_only("ops-leader");
    env.install_crds();
    let (port_a, port_b) = (free_port(), free_port());
    let a = env.spawn_controller("controller-a", port_a, &["--lease-duration", "3"]);
    env.wait_for("controller a to hold the lease", T, |env| {
        (!lease_holder(env).is_empty()).then_some(())
    });
    let b = env.spawn_controller("controller-b", port_b, &["--lease-duration", "3"]);
    env.wait_for("the standby to be ready", T, |env| {
        env.http_get(port_b, "/readyz")
            .filter(|(code, _)| *code == 200)
            .map(|_| ())
    });
    let leader = lease_holder(&env);
    env.apply(ROLLOUT);
    wait_phase(&env, "Healthy");
    set_image(&env, "nginx:1.26");
    wait_phase(&env, "Paused");
    // Only the leader planned anything.
    let mut procs = [a, b];
    let leader_idx = procs
        .iter()
        .position(|p| p.log_text().contains("planned"))
        .unwrap_or_else(|| panic!("no controller reconciled\n{}", env.logs()));
    assert!(
        !procs[1 - leader_idx].log_text().contains("planned"),
        "the standby must not reconcile"
    );
    assert!(leader.contains('_'), "identity is host_pid: {leader}");

    // Kill the leader hard (no lease release): the standby takes over within the lease
    // duration and finishes the in-flight canary.
    procs[leader_idx].kill();
    env.wait_for("a new lease holder", T, |env| {
        let holder = lease_holder(env);
        (!holder.is_empty() && holder != leader).then_some(())
    });
    promote(&env);
    wait_phase(&env, "Healthy");
}

#[test]
fn sigterm_mid_canary_exits_cleanly_and_a_restart_finishes_the_rollout() {
    require_kubectl!();
    let mut env = Env::start("ops-sigterm");
    env.apply(ROLLOUT);
    wait_phase(&env, "Healthy");
    set_image(&env, "nginx:1.26");
    wait_phase(&env, "Paused");
    let status = env
        .controller
        .as_mut()
        .unwrap()
        .terminate(Duration::from_secs(30));
    let status = status.expect("the controller exits within its grace period");
    assert!(status.success(), "SIGTERM exits 0, got {status:?}");
    env.start_controller(&[]);
    promote(&env);
    wait_phase(&env, "Healthy");
}

#[test]
fn events_warnings_writes_only_warning_events_with_the_controller_under_a_qps_budget() {
    require_kubectl!();
    let mut env = Env::cluster_only("ops-events");
    env.install_crds();
    // Under a client-side request budget too: requests wait for it, none fails.
    env.start_controller(&["--events", "warnings", "--qps", "20", "--burst", "5"]);
    env.apply(ROLLOUT);
    wait_phase(&env, "Healthy");
    set_image(&env, "nginx:1.26");
    wait_phase(&env, "Paused");
    abort(&env);
    wait_phase(&env, "Degraded");
    let reasons = env.wait_for("the abort's Warning Event", T, |env| {
        let events: Value = env.get_json(&["events.v1.events.k8s.io"]);
        let items = events["items"].as_array()?.clone();
        items
            .iter()
            .any(|e| e["reason"] == "RolloutAborted")
            .then_some(items)
    });
    for e in &reasons {
        assert_eq!(e["type"], "Warning", "only Warning Events are written: {e}");
    }
    // The Normal ones happened and are counted, just not written.
    let port = env.metrics_port;
    let (_, body) = env.http_get(port, "/metrics").expect("metrics answer");
    assert!(events_counted(&body, "RolloutPaused") >= 1.0, "{body}");
}

#[test]
fn missing_crds_are_a_one_line_error_and_a_non_zero_exit() {
    require_kubectl!();
    if std::env::var("SLUICE_E2E_KUBECONFIG").is_ok() {
        // Not a missing tool: an external cluster has the CRDs installed, so this scenario
        // (a controller started before them) only exists on the embedded cluster.
        eprintln!("not applicable with SLUICE_E2E_KUBECONFIG: needs a cluster without the CRDs");
        return;
    }
    let env = Env::cluster_only("ops-no-crds");
    let mut controller = env.spawn_controller("controller", free_port(), &["--leader-elect=false"]);
    let status = env.wait_for("the controller to exit", T, |_| controller.try_wait());
    assert!(!status.success(), "exit status {status:?}");
    let log = controller.log_text();
    let error_lines: Vec<&str> = log.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(error_lines.len(), 1, "{log}");
    assert!(
        error_lines[0].contains("kubectl apply --server-side -f crds/"),
        "{log}"
    );
}
