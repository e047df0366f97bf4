//! The `experiment` canary step: baseline (stable template) and canary side by
//! side, judged by two web analyses against a server the test controls.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::Env;
use crate::prometheus::Served;
use crate::require_kubectl;

const T: Duration = Duration::from_secs(120);

fn template(name: &str) -> String {
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
      count: 2
      interval: 1s
      successCondition: "result == 1"
      provider:
        web:
          url: "{{{{args.url}}}}"
          jsonPath: "{{$.value}}"
"#
    )
}

fn rollout(image: &str, url_a: &str, url_b: &str) -> String {
    format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: web
spec:
  replicas: 5
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
        - name: app
          image: {image}
  strategy:
    canary:
      maxSurge: 1
      maxUnavailable: 0
      steps:
        - setWeight: 20
        - experiment:
            duration: 5s
            templates:
              - name: baseline
                specRef: stable
              - name: canary
                specRef: canary
            analyses:
              - name: a
                templateName: exp-a
                args: [{{name: url, value: "{url_a}"}}]
              - name: b
                templateName: exp-b
                args: [{{name: url, value: "{url_b}"}}]
        - setWeight: 60
        - pause: {{}}
"#
    )
}

fn status(env: &Env) -> Value {
    env.get_json(&["rollout", "web"])
}

fn wait_phase(env: &Env, want: &str) -> Value {
    env.wait_for(&format!("rollout phase {want}"), T, |env| {
        let ro = status(env);
        let observed = ro["status"]["observedGeneration"].as_str()
            == Some(&ro["metadata"]["generation"].to_string());
        (observed && ro["status"]["phase"] == want).then_some(ro)
    })
}

fn set_image(env: &Env, image: &str) {
    let patch = format!(
        r#"{{"spec":{{"template":{{"spec":{{"containers":[{{"name":"app","image":"{image}"}}]}}}}}}}}"#
    );
    env.kubectl_ok(&["patch", "rollout", "web", "--type=merge", "-p", &patch]);
}

/// (spec replicas) of every ReplicaSet owned by the Experiment `exp`.
fn experiment_replica_sets(env: &Env, exp: &str) -> Vec<(String, i64)> {
    let list = env.get_json(&["replicasets"]);
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|rs| {
            rs["metadata"]["ownerReferences"][0]["kind"] == "Experiment"
                && rs["metadata"]["ownerReferences"][0]["name"] == exp
        })
        .map(|rs| {
            (
                rs["metadata"]["name"].as_str().unwrap().to_string(),
                rs["spec"]["replicas"].as_i64().unwrap_or(0),
            )
        })
        .collect()
}

fn setup(env: &Env, server: &Served) -> (String, String) {
    env.apply(&template("exp-a"));
    env.apply(&template("exp-b"));
    env.apply(&rollout("nginx:1.25", &server.url("/a"), &server.url("/b")));
    let ro = wait_phase(env, "Healthy");
    let stable = ro["status"]["stableRS"].as_str().unwrap().to_string();
    set_image(env, "nginx:1.26");
    let canary = env.wait_for("the canary hash", T, |env| {
        status(env)["status"]["currentPodHash"]
            .as_str()
            .filter(|h| *h != stable)
            .map(str::to_string)
    });
    (stable, canary)
}

#[test]
fn experiment_step_with_passing_analyses_lets_the_canary_continue() {
    require_kubectl!();
    let env = Env::start("ro-exp-pass");
    let server = Served::start();
    server.set_json("/a", &json!({"value": 1}));
    server.set_json("/b", &json!({"value": 1}));
    let (_stable, canary) = setup(&env, &server);
    let exp_name = format!("web-{canary}-2-1");

    // The experiment runs baseline and canary ReplicaSets beside the rollout's own.
    env.wait_for("two experiment ReplicaSets", T, |env| {
        (experiment_replica_sets(env, &exp_name).len() == 2).then_some(())
    });
    let names: Vec<String> = experiment_replica_sets(&env, &exp_name)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(
        names.contains(&format!("{exp_name}-baseline"))
            && names.contains(&format!("{exp_name}-canary")),
        "{names:?}"
    );

    // Both analyses pass: the step completes and the canary goes on to 60% and pauses.
    let ro = wait_phase(&env, "Paused");
    assert_eq!(ro["status"]["currentStepIndex"], 3, "{ro:#}");
    let exp = env.get_json(&["experiment", &exp_name]);
    assert_eq!(exp["status"]["phase"], "Successful", "{exp:#}");
    let table = env.kubectl_ok(&["get", "exp"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&exp_name) && l.contains("Successful")),
        "{table}"
    );

    // After the experiment's scale-down delay its ReplicaSets go to zero...
    env.wait_for("experiment ReplicaSets scaled to zero", T, |env| {
        experiment_replica_sets(env, &exp_name)
            .iter()
            .all(|(_, replicas)| *replicas == 0)
            .then_some(())
    });
    // ...and they are garbage-collected with the Experiment.
    env.kubectl_ok(&["delete", "experiment", &exp_name]);
    env.wait_for("experiment ReplicaSets collected", T, |env| {
        experiment_replica_sets(env, &exp_name)
            .is_empty()
            .then_some(())
    });

    env.patch_rollout_status("web", r#"{"status":{"pauseConditions":null}}"#);
    let ro = wait_phase(&env, "Healthy");
    assert_eq!(ro["status"]["stableRS"], canary.as_str());
}

#[test]
fn experiment_step_with_a_failing_analysis_aborts_the_rollout() {
    require_kubectl!();
    let env = Env::start("ro-exp-fail");
    let server = Served::start();
    server.set_json("/a", &json!({"value": 1}));
    server.set_json("/b", &json!({"value": 0}));
    let (stable, canary) = setup(&env, &server);
    let ro = wait_phase(&env, "Degraded");
    let message = ro["status"]["message"].as_str().unwrap_or("").to_string();
    assert!(message.starts_with("RolloutAborted:"), "{message}");
    let exp = env.get_json(&["experiment", &format!("web-{canary}-2-1")]);
    assert_eq!(exp["status"]["phase"], "Failed", "{exp:#}");
    env.wait_for("stable back at full size", T, |env| {
        let list = env.get_json(&[
            "replicasets",
            "-l",
            &format!("rollouts-pod-template-hash={stable}"),
        ]);
        let rs = &list["items"][0];
        (rs["spec"]["replicas"] == 5 && rs["status"]["availableReplicas"] == 5).then_some(())
    });
}
