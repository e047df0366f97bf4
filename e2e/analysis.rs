//! Analysis scenarios: AnalysisRuns measured by the controller against real
//! metric backends (an HTTP server the test runs, a real Prometheus, Jobs on the
//! embedded cluster), on their own and driving canary Rollouts.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::Env;
use crate::prometheus::{Prometheus, Served};
use crate::{require_kubectl, require_prometheus};

const T: Duration = Duration::from_secs(90);

fn run_phase(env: &Env, name: &str) -> (String, String) {
    let ar = env.get_json(&["analysisrun", name]);
    (
        ar["status"]["phase"].as_str().unwrap_or("").to_string(),
        ar["status"]["message"].as_str().unwrap_or("").to_string(),
    )
}

/// Wait until the AnalysisRun `name` reaches a completed phase; returns it.
fn wait_run_done(env: &Env, name: &str) -> Value {
    env.wait_for(&format!("analysisrun {name} completed"), T, |env| {
        let ar = env.get_json(&["analysisrun", name]);
        let phase = ar["status"]["phase"].as_str().unwrap_or("");
        ["Successful", "Failed", "Error", "Inconclusive"]
            .contains(&phase)
            .then_some(ar)
    })
}

fn web_run_yaml(name: &str, url: &str, count: u32, success: &str) -> String {
    format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: AnalysisRun
metadata:
  name: {name}
spec:
  args:
    - name: url
      value: "{url}"
  metrics:
    - name: ok-rate
      interval: 1s
      count: {count}
      successCondition: "{success}"
      provider:
        web:
          url: "{{{{args.url}}}}"
          jsonPath: "{{$.data.rate}}"
"#
    )
}

#[test]
fn standalone_web_run_measures_on_its_interval_and_succeeds() {
    require_kubectl!();
    let env = Env::start("ar-web");
    let server = Served::start();
    server.set_json("/rate", &json!({"data": {"rate": 0.99}}));
    env.apply(&web_run_yaml(
        "web-ok",
        &server.url("/rate"),
        3,
        "result >= 0.95",
    ));
    let ar = wait_run_done(&env, "web-ok");
    assert_eq!(ar["status"]["phase"], "Successful", "{ar:#}");
    let result = &ar["status"]["metricResults"][0];
    assert_eq!(result["name"], "ok-rate");
    assert_eq!(result["count"], 3);
    assert_eq!(result["successful"], 3);
    let ms = result["measurements"].as_array().unwrap();
    assert_eq!(ms.len(), 3);
    assert_eq!(ms[0]["value"], "0.99");
    assert!(ar["status"]["startedAt"].is_string() && ar["status"]["completedAt"].is_string());
    assert_eq!(ar["status"]["runSummary"]["successful"], 1);
    // The printer column shows the phase.
    let table = env.kubectl_ok(&["get", "ar"]);
    let line = table
        .lines()
        .find(|l| l.starts_with("web-ok"))
        .unwrap_or_else(|| panic!("kubectl get ar lists the run:\n{table}"));
    assert!(line.contains("Successful"), "{table}");
}

#[test]
fn standalone_web_run_fails_and_terminate_stops_a_running_one() {
    require_kubectl!();
    let env = Env::start("ar-web-fail");
    let server = Served::start();
    server.set_json("/rate", &json!({"data": {"rate": 0.5}}));
    env.apply(&web_run_yaml(
        "web-bad",
        &server.url("/rate"),
        2,
        "result >= 0.95",
    ));
    let ar = wait_run_done(&env, "web-bad");
    assert_eq!(ar["status"]["phase"], "Failed", "{ar:#}");
    assert_eq!(ar["status"]["metricResults"][0]["failed"], 1);
    assert!(
        run_phase(&env, "web-bad").1.contains("ok-rate"),
        "the message names the metric: {ar:#}"
    );

    // An endless run (interval, no count) stops when the user terminates it.
    server.set_json("/rate", &json!({"data": {"rate": 1}}));
    env.apply(
        &web_run_yaml("web-endless", &server.url("/rate"), 0, "result >= 0.95")
            .replace("      count: 0\n", ""),
    );
    env.wait_for("two measurements of the endless run", T, |env| {
        let ar = env.get_json(&["analysisrun", "web-endless"]);
        (ar["status"]["metricResults"][0]["count"].as_i64() >= Some(2)).then_some(())
    });
    env.kubectl_ok(&[
        "patch",
        "analysisrun",
        "web-endless",
        "--type=merge",
        "-p",
        r#"{"spec":{"terminate":true}}"#,
    ]);
    let ar = wait_run_done(&env, "web-endless");
    assert_eq!(ar["status"]["phase"], "Successful", "{ar:#}");
    assert_eq!(
        ar["spec"]["terminate"], true,
        "the user's terminate survives"
    );
}

#[test]
fn missing_secret_is_an_error_naming_it_and_secret_args_are_used() {
    require_kubectl!();
    let env = Env::start("ar-secret");
    let server = Served::start();
    server.set_json("/rate", &json!({"data": {"rate": 1}}));
    let run = |name: &str| {
        format!(
            r#"apiVersion: argoproj.io/v1alpha1
kind: AnalysisRun
metadata:
  name: {name}
spec:
  args:
    - name: path
      valueFrom:
        secretKeyRef: {{name: creds, key: path}}
  metrics:
    - name: m
      successCondition: "result == 1"
      provider:
        web:
          url: "http://{}{{{{args.path}}}}"
          jsonPath: "{{$.data.rate}}"
"#,
            server.addr
        )
    };
    env.apply(&run("no-secret"));
    let ar = wait_run_done(&env, "no-secret");
    assert_eq!(ar["status"]["phase"], "Error", "{ar:#}");
    let message = ar["status"]["message"].as_str().unwrap_or("");
    assert!(message.contains("creds"), "{message}");

    env.apply(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\nstringData:\n  path: /rate\n",
    );
    env.apply(&run("with-secret"));
    let ar = wait_run_done(&env, "with-secret");
    assert_eq!(ar["status"]["phase"], "Successful", "{ar:#}");
}

fn job_run_yaml(name: &str, script: &str) -> String {
    format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: AnalysisRun
metadata:
  name: {name}
spec:
  metrics:
    - name: smoke
      provider:
        job:
          spec:
            backoffLimit: 0
            template:
              spec:
                restartPolicy: Never
                containers:
                  - name: check
                    image: busybox
                    command: [sh, -c, "{script}"]
"#
    )
}

#[test]
fn job_metric_passes_on_exit_0_and_fails_on_exit_1() {
    require_kubectl!();
    let env = Env::start("ar-job");
    env.apply(&job_run_yaml("job-pass", "exit 0"));
    env.apply(&job_run_yaml("job-fail", "exit 1"));
    let pass = wait_run_done(&env, "job-pass");
    assert_eq!(pass["status"]["phase"], "Successful", "{pass:#}");
    let fail = wait_run_done(&env, "job-fail");
    assert_eq!(fail["status"]["phase"], "Failed", "{fail:#}");
    // The measurement names the Job it ran, which the run owns.
    let job_name = pass["status"]["metricResults"][0]["measurements"][0]["metadata"]["job-name"]
        .as_str()
        .expect("job-name recorded")
        .to_string();
    let job = env.get_json(&["job", &job_name]);
    assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "AnalysisRun");
    assert_eq!(job["metadata"]["ownerReferences"][0]["name"], "job-pass");
}

#[test]
fn ttl_strategy_deletes_a_finished_run() {
    require_kubectl!();
    let env = Env::start("ar-ttl");
    let server = Served::start();
    server.set_json("/rate", &json!({"data": {"rate": 1}}));
    let yaml = web_run_yaml("short-lived", &server.url("/rate"), 1, "result == 1").replace(
        "spec:\n  args:",
        "spec:\n  ttlStrategy:\n    secondsAfterCompletion: 1\n  args:",
    );
    env.apply(&yaml);
    env.wait_for("the run deleted after its TTL", T, |env| {
        let out = env.kubectl(&["get", "analysisrun", "short-lived"]);
        (!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("NotFound"))
            .then_some(())
    });
}

#[test]
fn prometheus_metric_is_real_promql_over_scraped_samples() {
    require_kubectl!();
    require_prometheus!();
    let exporter = Served::start();
    exporter.set_gauge("/metrics", "sluice_e2e_error_rate", 0.02);
    let prom = Prometheus::start(exporter.addr, "sluice_e2e_error_rate");
    let env = Env::start("ar-prom");
    env.apply(&format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: AnalysisRun
metadata:
  name: prom
spec:
  metrics:
    - name: error-rate
      successCondition: "result[0] < 0.05"
      provider:
        prometheus:
          address: "{}"
          query: "max(sluice_e2e_error_rate)"
"#,
        prom.url
    ));
    let ar = wait_run_done(&env, "prom");
    assert_eq!(ar["status"]["phase"], "Successful", "{ar:#}");
    assert_eq!(
        ar["status"]["metricResults"][0]["measurements"][0]["value"],
        "[0.02]"
    );
}

/// Many runs in flight at once, each measuring every second: every run is measured
/// exactly `count` times and never before a measurement is due (one interval after
/// the previous one finished, at the second precision the API stores).
#[test]
fn a_hundred_concurrent_runs_are_each_measured_count_times_never_early() {
    require_kubectl!();
    const RUNS: usize = 100;
    const COUNT: usize = 5;
    let env = Env::start("ar-load");
    let server = Served::start();
    let mut yaml = String::new();
    for i in 0..RUNS {
        let path = format!("/rate/{i}");
        server.set_json(&path, &json!({"data": {"rate": 1}}));
        yaml += &web_run_yaml(
            &format!("load-{i}"),
            &server.url(&path),
            COUNT as u32,
            "result == 1",
        );
        yaml += "---\n";
    }
    env.apply(&yaml);
    // Watch the server, not the API: polling kubectl would compete for the CPU
    // this scenario measures.
    crate::harness::wait_until(
        "every run measured {COUNT} times",
        Duration::from_secs(120),
        || {
            (0..RUNS)
                .all(|i| server.hits(&format!("/rate/{i}")).len() >= COUNT)
                .then_some(())
        },
    );
    env.wait_for("every run Successful", T, |env| {
        let list = env.get_json(&["analysisruns"]);
        let items = list["items"].as_array()?;
        let done = items
            .iter()
            .filter(|r| r["status"]["phase"] == "Successful")
            .count();
        (done == RUNS).then_some(())
    });
    let secs = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    let runs = env.get_json(&["analysisruns"]);
    let mut lateness = Vec::new();
    for run in runs["items"].as_array().unwrap() {
        let name = run["metadata"]["name"].as_str().unwrap();
        let i = name.trim_start_matches("load-");
        let hits = server.hits(&format!("/rate/{i}"));
        assert_eq!(hits.len(), COUNT, "{name} measured exactly {COUNT} times");
        let measurements = run["status"]["metricResults"][0]["measurements"]
            .as_array()
            .unwrap();
        assert_eq!(measurements.len(), COUNT);
        // Measurement k+1 is due one interval after measurement k finished, as
        // recorded (whole seconds): exactly what the controller schedules on.
        for (k, hit) in hits.iter().enumerate().skip(1) {
            let finished = measurements[k - 1]["finishedAt"].as_str().unwrap();
            let finished = chrono::DateTime::parse_from_rfc3339(finished)
                .unwrap()
                .timestamp() as f64;
            lateness.push(secs(*hit) - (finished + 1.0));
        }
    }
    lateness.sort_by(f64::total_cmp);
    let p = |q: f64| lateness[((lateness.len() - 1) as f64 * q) as usize];
    eprintln!(
        "{RUNS} runs: measurement lateness p50 {:.3}s p95 {:.3}s max {:.3}s ({} samples)",
        p(0.5),
        p(0.95),
        p(1.0),
        lateness.len()
    );
    // Taking a measurement before it is due is a scheduling bug. How late they are
    // is a speed figure: reported above, measured by benchmarks, never asserted here.
    assert!(p(0.0) > -0.05, "no measurement is taken early");
}

// ---------------------------------------------------------------------------
// Rollouts driven by analysis.

fn canary_rollout(name: &str, image: &str, steps: &str, background: &str) -> String {
    format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: {name}
spec:
  replicas: 4
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
        - name: app
          image: {image}
  strategy:
    canary:
      maxSurge: 1
      maxUnavailable: 0
{background}      steps:
{steps}"#
    )
}

/// An AnalysisTemplate with one web metric reading `{$.value}` from the `url` arg.
fn web_template(name: &str, metric: &str) -> String {
    format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: {name}
spec:
  args:
    - name: url
  metrics:
    - name: value
{metric}      provider:
        web:
          url: "{{{{args.url}}}}"
          jsonPath: "{{$.value}}"
"#
    )
}

fn ro_status(env: &Env, name: &str) -> Value {
    env.get_json(&["rollout", name])
}

fn ro_phase(ro: &Value) -> (String, String) {
    (
        ro["status"]["phase"].as_str().unwrap_or("").to_string(),
        ro["status"]["message"].as_str().unwrap_or("").to_string(),
    )
}

/// Wait until the Rollout `name` reports `want` for its current generation.
fn wait_ro(env: &Env, name: &str, want: &str) -> Value {
    env.wait_for(&format!("rollout {name} phase {want}"), T, |env| {
        let ro = ro_status(env, name);
        let observed = ro["status"]["observedGeneration"].as_str()
            == Some(&ro["metadata"]["generation"].to_string());
        (observed && ro_phase(&ro).0 == want).then_some(ro)
    })
}

/// (spec replicas, available) of the Rollout's ReplicaSet with pod-template hash `hash`.
fn rs_of(env: &Env, hash: &str) -> (i64, i64) {
    let list = env.get_json(&[
        "replicasets",
        "-l",
        &format!("rollouts-pod-template-hash={hash}"),
    ]);
    list["items"]
        .as_array()
        .and_then(|items| items.first())
        .map(|rs| {
            (
                rs["spec"]["replicas"].as_i64().unwrap_or(0),
                rs["status"]["availableReplicas"].as_i64().unwrap_or(0),
            )
        })
        .unwrap_or((0, 0))
}

fn set_image(env: &Env, name: &str, image: &str) {
    let patch = format!(
        r#"{{"spec":{{"template":{{"spec":{{"containers":[{{"name":"app","image":"{image}"}}]}}}}}}}}"#
    );
    env.kubectl_ok(&["patch", "rollout", name, "--type=merge", "-p", &patch]);
}

/// Create the Rollout, wait until Healthy, start an update; returns (stable, canary) hashes
/// once the canary exists.
fn start_update(env: &Env, yaml: &str, name: &str) -> (String, String) {
    env.apply(yaml);
    let ro = wait_ro(env, name, "Healthy");
    let stable = ro["status"]["stableRS"].as_str().unwrap().to_string();
    set_image(env, name, "nginx:1.26");
    let canary = env.wait_for("a canary ReplicaSet", T, |env| {
        let ro = ro_status(env, name);
        ro["status"]["currentPodHash"]
            .as_str()
            .filter(|h| *h != stable)
            .map(str::to_string)
    });
    (stable, canary)
}

fn analysis_runs_of(env: &Env, name: &str) -> Vec<Value> {
    let list = env.get_json(&["analysisruns"]);
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["metadata"]["ownerReferences"][0]["name"] == name)
        .cloned()
        .collect()
}

#[test]
fn canary_with_a_passing_web_analysis_step_completes() {
    require_kubectl!();
    let env = Env::start("ro-web-pass");
    let server = Served::start();
    server.set_json("/health", &json!({"value": 1}));
    env.apply(&web_template(
        "web-ok",
        "      count: 2\n      interval: 1s\n      successCondition: \"result == 1\"\n",
    ));
    let steps = format!(
        "        - setWeight: 50\n        - analysis:\n            templates: [{{templateName: web-ok}}]\n            args: [{{name: url, value: \"{}\"}}]\n",
        server.url("/health")
    );
    let (stable, canary) = start_update(
        &env,
        &canary_rollout("web", "nginx:1.25", &steps, ""),
        "web",
    );
    let ro = wait_ro(&env, "web", "Healthy");
    assert_eq!(ro["status"]["stableRS"], canary.as_str(), "{ro:#}");
    assert_eq!(ro["status"]["currentStepIndex"], 2);
    let runs = analysis_runs_of(&env, "web");
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let ar = &runs[0];
    let run_name = ar["metadata"]["name"].as_str().unwrap().to_string();
    assert_eq!(run_name, format!("web-{canary}-2-1"), "upstream's run name");
    assert_eq!(ar["status"]["phase"], "Successful");
    assert_eq!(ar["metadata"]["labels"]["rollout-type"], "Step");
    assert_eq!(ar["metadata"]["labels"]["step-index"], "1");
    assert_eq!(ar["metadata"]["ownerReferences"][0]["kind"], "Rollout");
    assert_eq!(server.hits("/health").len(), 2, "count: 2 measurements");
    let table = env.kubectl_ok(&["get", "ar"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&run_name) && l.contains("Successful")),
        "{table}"
    );
    env.wait_for("old stable drained", T, |env| {
        (rs_of(env, &stable).0 == 0).then_some(())
    });
}

#[test]
fn failing_prometheus_analysis_aborts_the_rollout_and_restores_stable() {
    require_kubectl!();
    require_prometheus!();
    let exporter = Served::start();
    exporter.set_gauge("/metrics", "sluice_e2e_error_rate", 0.5);
    let prom = Prometheus::start(exporter.addr, "sluice_e2e_error_rate");
    let env = Env::start("ro-prom-fail");
    env.apply(
        r#"apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: error-rate
spec:
  args:
    - name: address
  metrics:
    - name: error-rate
      interval: 1s
      count: 3
      successCondition: "result[0] < 0.05"
      provider:
        prometheus:
          address: "{{args.address}}"
          query: "max(sluice_e2e_error_rate)"
"#,
    );
    let steps = format!(
        "        - setWeight: 25\n        - analysis:\n            templates: [{{templateName: error-rate}}]\n            args: [{{name: address, value: \"{}\"}}]\n        - setWeight: 75\n",
        prom.url
    );
    let (stable, canary) = start_update(
        &env,
        &canary_rollout("web", "nginx:1.25", &steps, ""),
        "web",
    );
    let ro = wait_ro(&env, "web", "Degraded");
    let (_, message) = ro_phase(&ro);
    assert!(message.starts_with("RolloutAborted:"), "{message}");
    assert!(message.contains("analysis"), "{message}");
    assert_eq!(ro["status"]["abort"], true);
    env.wait_for("canary at 0 and stable at full size", T, |env| {
        (rs_of(env, &canary).0 == 0 && rs_of(env, &stable) == (4, 4)).then_some(())
    });
    let runs = analysis_runs_of(&env, "web");
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0]["status"]["phase"], "Failed");
    assert_eq!(
        runs[0]["status"]["metricResults"][0]["measurements"][0]["value"], "[0.5]",
        "a real PromQL answer over scraped samples"
    );
}

#[test]
fn inconclusive_analysis_pauses_and_promote_skips_it() {
    require_kubectl!();
    let env = Env::start("ro-inconclusive");
    let server = Served::start();
    server.set_json("/health", &json!({"value": 0.5}));
    env.apply(&web_template(
        "web-maybe",
        "      successCondition: \"result == 1\"\n      failureCondition: \"result == 0\"\n",
    ));
    let steps = format!(
        "        - setWeight: 25\n        - analysis:\n            templates: [{{templateName: web-maybe}}]\n            args: [{{name: url, value: \"{}\"}}]\n",
        server.url("/health")
    );
    let (_stable, canary) = start_update(
        &env,
        &canary_rollout("web", "nginx:1.25", &steps, ""),
        "web",
    );
    let ro = wait_ro(&env, "web", "Paused");
    assert_eq!(ro_phase(&ro).1, "InconclusiveAnalysisRun", "{ro:#}");
    assert_eq!(
        ro["status"]["canary"]["currentStepAnalysisRunStatus"]["status"],
        "Inconclusive"
    );
    // A plain resume (Argo CD's `resume` action) runs the analysis again…
    env.patch_rollout_status("web", r#"{"status":{"pauseConditions":null}}"#);
    env.wait_for("a second, again inconclusive, step run", T, |env| {
        let runs = analysis_runs_of(env, "web");
        let ro = ro_status(env, "web");
        (runs.len() == 2 && ro_phase(&ro) == ("Paused".into(), "InconclusiveAnalysisRun".into()))
            .then_some(())
    });
    // …while what `kubectl argo rollouts promote` sends after an inconclusive step analysis
    // (COMPAT §7): skip the step rather than re-run it.
    env.patch_rollout_status(
        "web",
        r#"{"status":{"pauseConditions":null,"controllerPause":false,"currentStepIndex":2}}"#,
    );
    let ro = wait_ro(&env, "web", "Healthy");
    assert_eq!(ro["status"]["stableRS"], canary.as_str(), "{ro:#}");
}

#[test]
fn failing_background_analysis_aborts_mid_rollout() {
    require_kubectl!();
    let env = Env::start("ro-background");
    let server = Served::start();
    server.set_json("/health", &json!({"value": 1}));
    env.apply(&web_template(
        "web-bg",
        "      interval: 1s\n      successCondition: \"result == 1\"\n",
    ));
    let background = format!(
        "      analysis:\n        templates: [{{templateName: web-bg}}]\n        args: [{{name: url, value: \"{}\"}}]\n",
        server.url("/health")
    );
    let steps = "        - setWeight: 25\n        - pause: {}\n";
    let (stable, canary) = start_update(
        &env,
        &canary_rollout("web", "nginx:1.25", steps, &background),
        "web",
    );
    let ro = wait_ro(&env, "web", "Paused");
    assert_eq!(ro_phase(&ro).1, "CanaryPauseStep");
    // The background run measures while the rollout waits at its pause.
    let run_name = env.wait_for("a background run with measurements", T, |env| {
        analysis_runs_of(env, "web").into_iter().find_map(|r| {
            let background = r["metadata"]["labels"]["rollout-type"] == "Background";
            let measured = r["status"]["metricResults"][0]["successful"].as_i64() >= Some(1);
            (background && measured).then(|| r["metadata"]["name"].as_str().unwrap().to_string())
        })
    });
    assert_eq!(run_name, format!("web-{canary}-2"), "upstream's run name");
    server.set_json("/health", &json!({"value": 0}));
    let ro = wait_ro(&env, "web", "Degraded");
    let (_, message) = ro_phase(&ro);
    assert!(message.starts_with("RolloutAborted:"), "{message}");
    assert!(message.contains("Background analysis"), "{message}");
    env.wait_for("canary at 0 and stable at full size", T, |env| {
        (rs_of(env, &canary).0 == 0 && rs_of(env, &stable) == (4, 4)).then_some(())
    });
    let ar = env.get_json(&["analysisrun", &run_name]);
    assert_eq!(ar["status"]["phase"], "Failed", "{ar:#}");
}

fn job_template(name: &str, script: &str) -> String {
    format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: {name}
spec:
  metrics:
    - name: smoke
      provider:
        job:
          spec:
            backoffLimit: 0
            template:
              spec:
                restartPolicy: Never
                containers:
                  - name: check
                    image: busybox
                    command: [sh, -c, "{script}"]
"#
    )
}

#[test]
fn job_analysis_step_passes_on_success_and_aborts_on_failure() {
    require_kubectl!();
    let env = Env::start("ro-job");
    env.apply(&job_template("job-pass", "exit 0"));
    env.apply(&job_template("job-fail", "exit 1"));
    let steps = |template: &str| {
        format!(
            "        - setWeight: 25\n        - analysis:\n            templates: [{{templateName: {template}}}]\n"
        )
    };
    let (_, good_canary) = start_update(
        &env,
        &canary_rollout("good", "nginx:1.25", &steps("job-pass"), ""),
        "good",
    );
    let (bad_stable, bad_canary) = start_update(
        &env,
        &canary_rollout("bad", "nginx:1.25", &steps("job-fail"), ""),
        "bad",
    );
    let good = wait_ro(&env, "good", "Healthy");
    assert_eq!(good["status"]["stableRS"], good_canary.as_str(), "{good:#}");
    let bad = wait_ro(&env, "bad", "Degraded");
    assert!(ro_phase(&bad).1.starts_with("RolloutAborted:"), "{bad:#}");
    env.wait_for("bad canary at 0 and its stable at full size", T, |env| {
        (rs_of(env, &bad_canary).0 == 0 && rs_of(env, &bad_stable) == (4, 4)).then_some(())
    });
    let runs = analysis_runs_of(&env, "bad");
    assert_eq!(runs[0]["status"]["phase"], "Failed", "{runs:#?}");
}

#[test]
fn a_missing_template_degrades_the_rollout_naming_it_and_keeps_stable() {
    require_kubectl!();
    let env = Env::start("ro-missing-template");
    env.apply(&canary_rollout(
        "web",
        "nginx:1.25",
        "        - setWeight: 25\n",
        "",
    ));
    let ro = wait_ro(&env, "web", "Healthy");
    let stable = ro["status"]["stableRS"].as_str().unwrap().to_string();
    let steps = "        - setWeight: 25\n        - analysis:\n            templates: [{templateName: not-there}]\n";
    env.apply(&canary_rollout("web", "nginx:1.26", steps, ""));
    let ro = wait_ro(&env, "web", "Degraded");
    let (_, message) = ro_phase(&ro);
    assert!(message.starts_with("InvalidSpec: "), "{message}");
    assert!(message.contains("not-there"), "{message}");
    assert_eq!(rs_of(&env, &stable), (4, 4));

    // Creating the template wakes the rollout, which proceeds through the analysis.
    env.apply(&job_template("not-there", "exit 0"));
    let ro = wait_ro(&env, "web", "Healthy");
    assert_ne!(ro["status"]["stableRS"], stable.as_str(), "{ro:#}");
}
