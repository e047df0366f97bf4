//! Canary scenarios driven by the real kubectl (issue: core canary engine).

use std::time::Duration;

use serde_json::Value;

use crate::harness::Env;
use crate::require_kubectl;

const T: Duration = Duration::from_secs(60);

fn rollout_yaml(image: &str, steps: &str) -> String {
    format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: web
spec:
  replicas: 4
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
        - name: web
          image: {image}
  strategy:
    canary:
      maxSurge: 1
      maxUnavailable: 0
      steps:
{steps}
"#
    )
}

const STEPS: &str = "        - setWeight: 25\n        - pause: {}\n        - setWeight: 50\n        - pause: {duration: 1s}\n";

fn rollout(env: &Env) -> Value {
    env.get_json(&["rollout", "web"])
}

fn phase(ro: &Value) -> (String, String) {
    let s = &ro["status"];
    (
        s["phase"].as_str().unwrap_or("").to_string(),
        s["message"].as_str().unwrap_or("").to_string(),
    )
}

fn generation_observed(ro: &Value) -> bool {
    ro["status"]["observedGeneration"].as_str() == Some(&ro["metadata"]["generation"].to_string())
}

/// Wait until the Rollout reports `phase` for the current generation.
fn wait_phase(env: &Env, want: &str) -> Value {
    env.wait_for(&format!("rollout phase {want}"), T, |env| {
        let ro = rollout(env);
        (generation_observed(&ro) && phase(&ro).0 == want).then_some(ro)
    })
}

/// ReplicaSets of the Rollout keyed by pod-template hash: (spec, available).
fn replica_sets(env: &Env) -> Vec<(String, i64, i64)> {
    let list = env.get_json(&["replicasets", "-l", "rollouts-pod-template-hash"]);
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rs| {
            (
                rs["metadata"]["labels"]["rollouts-pod-template-hash"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                rs["spec"]["replicas"].as_i64().unwrap_or(0),
                rs["status"]["availableReplicas"].as_i64().unwrap_or(0),
            )
        })
        .collect()
}

fn rs_of(env: &Env, hash: &str) -> (i64, i64) {
    replica_sets(env)
        .into_iter()
        .find(|(h, _, _)| h == hash)
        .map(|(_, s, a)| (s, a))
        .unwrap_or((0, 0))
}

fn status_patch(env: &Env, patch: &str) {
    env.patch_rollout_status("web", patch);
}

fn set_image(env: &Env, image: &str) {
    let patch = format!(
        r#"{{"spec":{{"template":{{"spec":{{"containers":[{{"name":"web","image":"{image}"}}]}}}}}}}}"#
    );
    env.kubectl_ok(&["patch", "rollout", "web", "--type=merge", "-p", &patch]);
}

/// Create a Rollout and wait until it is Healthy; returns the stable hash.
fn healthy_v1(env: &Env) -> String {
    env.apply(&rollout_yaml("nginx:1.25", STEPS));
    let ro = wait_phase(env, "Healthy");
    let stable = ro["status"]["stableRS"]
        .as_str()
        .expect("stableRS set")
        .to_string();
    assert_eq!(ro["status"]["availableReplicas"], 4);
    assert_eq!(rs_of(env, &stable), (4, 4));
    stable
}

#[test]
fn create_then_update_walks_steps_pauses_and_completes_after_promote() {
    require_kubectl!();
    let env = Env::start("canary-walk");
    let stable = healthy_v1(&env);

    set_image(&env, "nginx:1.26");
    let ro = wait_phase(&env, "Paused");
    assert_eq!(phase(&ro).1, "CanaryPauseStep");
    assert_eq!(ro["status"]["currentStepIndex"], 1);
    let canary = ro["status"]["currentPodHash"].as_str().unwrap().to_string();
    assert_ne!(canary, stable);
    env.wait_for("canary 1/1 and stable 3 available", T, |env| {
        (rs_of(env, &canary) == (1, 1) && rs_of(env, &stable).1 >= 3).then_some(())
    });
    // Argo CD's health check reads the same fields: Paused maps to Suspended.
    assert_eq!(
        ro["status"]["pauseConditions"][0]["reason"],
        "CanaryPauseStep"
    );

    // Promote exactly as `kubectl argo rollouts promote` does.
    status_patch(&env, r#"{"status":{"pauseConditions":null}}"#);
    let ro = wait_phase(&env, "Healthy");
    assert_eq!(ro["status"]["stableRS"], canary.as_str());
    assert_eq!(ro["status"]["currentStepIndex"], 4);
    env.wait_for("old ReplicaSet scaled to zero", T, |env| {
        (rs_of(env, &stable).0 == 0).then_some(())
    });
    assert_eq!(rs_of(&env, &canary), (4, 4));
}

#[test]
fn abort_mid_canary_restores_stable_and_retry_resumes() {
    require_kubectl!();
    let env = Env::start("canary-abort");
    let stable = healthy_v1(&env);
    set_image(&env, "nginx:1.26");
    let ro = wait_phase(&env, "Paused");
    let canary = ro["status"]["currentPodHash"].as_str().unwrap().to_string();

    status_patch(&env, r#"{"status":{"abort":true}}"#);
    let ro = wait_phase(&env, "Degraded");
    let message = phase(&ro).1;
    assert!(
        message.starts_with("RolloutAborted: Rollout aborted update to revision 2"),
        "message: {message}"
    );
    env.wait_for("canary at 0 and stable at full size", T, |env| {
        (rs_of(env, &canary).0 == 0 && rs_of(env, &stable) == (4, 4)).then_some(())
    });
    assert!(ro["status"]["abortedAt"].is_string());

    // Retry: the canary starts again from the first step.
    status_patch(&env, r#"{"status":{"abort":false}}"#);
    let ro = wait_phase(&env, "Paused");
    assert_eq!(ro["status"]["currentStepIndex"], 1);
    env.wait_for("canary back to 1", T, |env| {
        (rs_of(env, &canary) == (1, 1)).then_some(())
    });
}

#[test]
fn promote_full_skips_remaining_steps() {
    require_kubectl!();
    let env = Env::start("canary-full");
    let stable = healthy_v1(&env);
    set_image(&env, "nginx:1.26");
    let ro = wait_phase(&env, "Paused");
    let canary = ro["status"]["currentPodHash"].as_str().unwrap().to_string();
    // The sluice CLI sends the same patch as upstream's `promote --full`.
    let out = env.sluice(&["promote", "web", "--full"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ro = wait_phase(&env, "Healthy");
    assert_eq!(ro["status"]["stableRS"], canary.as_str());
    env.wait_for("old stable drained", T, |env| {
        (rs_of(env, &stable).0 == 0).then_some(())
    });
}

#[test]
fn invalid_spec_is_reported_and_nothing_is_touched() {
    require_kubectl!();
    let env = Env::start("canary-invalid");
    let stable = healthy_v1(&env);
    // A step with two keys: the controller must refuse it and leave the stable alone.
    let bad = "        - setWeight: 25\n          pause: {}\n";
    env.apply(&rollout_yaml("nginx:1.26", bad));
    let ro = wait_phase(&env, "Degraded");
    let message = phase(&ro).1;
    assert!(message.starts_with("InvalidSpec: "), "{message}");
    assert!(
        message.contains("steps[0]"),
        "the message names the field: {message}"
    );
    assert_eq!(
        replica_sets(&env).len(),
        1,
        "no canary ReplicaSet was created"
    );
    assert_eq!(rs_of(&env, &stable), (4, 4));

    // Fixing the spec resumes normal work.
    env.apply(&rollout_yaml("nginx:1.26", STEPS));
    let ro = wait_phase(&env, "Paused");
    assert_eq!(phase(&ro).1, "CanaryPauseStep");
}

#[test]
fn sluice_cli_errors_are_one_line_and_non_zero() {
    require_kubectl!();
    let env = Env::start("cli-errors");
    let out = env.sluice(&["promote", "missing"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("rollout \"missing\" not found"), "{stderr}");
}

const SERVICES: &str = r#"apiVersion: v1
kind: Service
metadata:
  name: web-stable
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata:
  name: web-canary
spec:
  selector: {app: web}
  ports: [{port: 80}]
"#;

fn with_services(yaml: &str) -> String {
    yaml.replace(
        "      maxSurge: 1\n",
        "      maxSurge: 1\n      canaryService: web-canary\n      stableService: web-stable\n",
    )
}

fn selector_hash(env: &Env, service: &str) -> String {
    let svc = env.get_json(&["service", service]);
    svc["spec"]["selector"]["rollouts-pod-template-hash"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[test]
fn canary_and_stable_services_follow_their_replica_sets() {
    require_kubectl!();
    let env = Env::start("canary-services");
    env.apply(SERVICES);
    env.apply(&with_services(&rollout_yaml("nginx:1.25", STEPS)));
    let ro = wait_phase(&env, "Healthy");
    let stable = ro["status"]["stableRS"].as_str().unwrap().to_string();
    env.wait_for("both services select the stable", T, |env| {
        (selector_hash(env, "web-stable") == stable && selector_hash(env, "web-canary") == stable)
            .then_some(())
    });
    let svc = env.get_json(&["service", "web-stable"]);
    assert_eq!(
        svc["metadata"]["annotations"]["argo-rollouts.argoproj.io/managed-by-rollouts"],
        "web"
    );

    set_image(&env, "nginx:1.26");
    let ro = wait_phase(&env, "Paused");
    let canary = ro["status"]["currentPodHash"].as_str().unwrap().to_string();
    env.wait_for("canary service points at the canary", T, |env| {
        (selector_hash(env, "web-canary") == canary && selector_hash(env, "web-stable") == stable)
            .then_some(())
    });

    // Abort sends canary traffic back to the stable.
    status_patch(&env, r#"{"status":{"abort":true}}"#);
    wait_phase(&env, "Degraded");
    env.wait_for("canary service back on the stable", T, |env| {
        (selector_hash(env, "web-canary") == stable).then_some(())
    });
}

#[test]
fn a_missing_service_is_reported_and_the_stable_keeps_serving() {
    require_kubectl!();
    let env = Env::start("canary-missing-svc");
    let stable = healthy_v1(&env);
    env.apply(&with_services(&rollout_yaml("nginx:1.26", STEPS)));
    let ro = wait_phase(&env, "Degraded");
    let message = phase(&ro).1;
    assert!(
        message.contains("web-"),
        "the message names the missing service: {message}"
    );
    assert_eq!(rs_of(&env, &stable), (4, 4));
    assert_eq!(
        replica_sets(&env).len(),
        1,
        "no canary was created while the spec is invalid"
    );
}

#[test]
fn rollouts_of_another_controller_instance_are_left_alone() {
    require_kubectl!();
    let env = Env::start("instance-id");
    let labelled = rollout_yaml("nginx:1.25", STEPS).replacen(
        "  name: web\n",
        "  name: web\n  labels:\n    argo-rollouts.argoproj.io/controller-instance-id: other\n",
        1,
    );
    env.apply(&labelled);
    // A second, unlabelled Rollout proves the controller is running meanwhile.
    env.apply(
        &rollout_yaml("nginx:1.25", STEPS)
            .replacen("  name: web\n", "  name: web2\n", 1)
            .replace("app: web", "app: web2"),
    );
    env.wait_for("the unlabelled rollout to become Healthy", T, |env| {
        let ro = env.get_json(&["rollout", "web2"]);
        (phase(&ro).0 == "Healthy").then_some(())
    });
    let ro = rollout(&env);
    assert!(
        ro["status"].is_null(),
        "a rollout of instance 'other' must not be touched: {}",
        ro["status"]
    );
    let list = env.get_json(&["replicasets", "-l", "app=web"]);
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
}
