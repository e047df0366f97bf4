//! The scale subresource, `kubectl scale` and HPA objects on Rollouts (issue 6, part 3).
//!
//! The rule under test (docs/migration.md, "HPA"): `spec.replicas` is written only by people
//! and autoscalers (the controller writes it once, to default a missing value to 1), and
//! `status.HPAReplicas` counts the pods the HPA measures, i.e. the non-terminated pods of the
//! Rollout's ReplicaSets, which are exactly the pods `status.selector` selects.

use std::time::Duration;

use serde_json::Value;

use crate::harness::Env;
use crate::require_kubectl;

pub(crate) const T: Duration = Duration::from_secs(60);

pub(crate) fn rollout_yaml(name: &str, replicas: Option<u32>, image: &str, steps: &str) -> String {
    let replicas = replicas
        .map(|r| format!("  replicas: {r}\n"))
        .unwrap_or_default();
    format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: {name}
spec:
{replicas}  progressDeadlineSeconds: 600
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
      steps:
{steps}
"#
    )
}

pub(crate) const STEPS: &str = "        - setWeight: 25\n        - pause: {}\n        - setWeight: 50\n        - pause: {duration: 1s}\n";

pub(crate) fn rollout(env: &Env, name: &str) -> Value {
    env.get_json(&["rollout", name])
}

pub(crate) fn phase(ro: &Value) -> (String, String) {
    let s = &ro["status"];
    (
        s["phase"].as_str().unwrap_or("").to_string(),
        s["message"].as_str().unwrap_or("").to_string(),
    )
}

pub(crate) fn generation_observed(ro: &Value) -> bool {
    ro["status"]["observedGeneration"].as_str() == Some(&ro["metadata"]["generation"].to_string())
}

pub(crate) fn wait_phase(env: &Env, name: &str, want: &str) -> Value {
    env.wait_for(&format!("rollout {name} phase {want}"), T, |env| {
        let ro = rollout(env, name);
        (generation_observed(&ro) && phase(&ro).0 == want).then_some(ro)
    })
}

/// (spec, available) of the ReplicaSet with this pod-template hash.
pub(crate) fn rs_of(env: &Env, hash: &str) -> (i64, i64) {
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

pub(crate) fn set_image(env: &Env, name: &str, image: &str) {
    let patch = format!(
        r#"{{"spec":{{"template":{{"spec":{{"containers":[{{"name":"app","image":"{image}"}}]}}}}}}}}"#
    );
    env.kubectl_ok(&["patch", "rollout", name, "--type=merge", "-p", &patch]);
}

/// Non-terminated pods with `app=<name>`.
fn live_pods(env: &Env, name: &str) -> i64 {
    let pods = env.get_json(&["pods", "-l", &format!("app={name}")]);
    pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter(|p| !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")))
        .count() as i64
}

fn scale_raw(env: &Env, name: &str) -> Value {
    let path = format!(
        "/apis/argoproj.io/v1alpha1/namespaces/{}/rollouts/{name}/scale",
        env.namespace
    );
    serde_json::from_str(&env.kubectl_ok(&["get", "--raw", &path])).expect("Scale JSON")
}

/// HPAReplicas must equal status.replicas at every observation where the controller has
/// written status for the current generation.
fn assert_hpa_replicas_consistent(ro: &Value) {
    let s = &ro["status"];
    assert_eq!(
        s["HPAReplicas"], s["replicas"],
        "HPAReplicas reports the same pods as status.replicas: {s}"
    );
}

#[test]
fn kubectl_scale_resizes_a_healthy_rollout_and_the_scale_subresource_reports_hpa_replicas() {
    require_kubectl!();
    let env = Env::start("scale-healthy");
    env.apply(&rollout_yaml("web", Some(4), "nginx:1.25", STEPS));
    let ro = wait_phase(&env, "web", "Healthy");
    let stable = ro["status"]["stableRS"].as_str().unwrap().to_string();
    assert_hpa_replicas_consistent(&ro);

    env.kubectl_ok(&["scale", "ro/web", "--replicas=6"]);
    let ro = env.wait_for("6 available", T, |env| {
        let ro = rollout(env, "web");
        (generation_observed(&ro)
            && phase(&ro).0 == "Healthy"
            && ro["status"]["availableReplicas"] == 6)
            .then_some(ro)
    });
    assert_eq!(ro["spec"]["replicas"], 6);
    assert_eq!(rs_of(&env, &stable), (6, 6));
    assert_eq!(
        ro["status"]["stableRS"], stable,
        "scaling is not an update: no new ReplicaSet"
    );
    assert_hpa_replicas_consistent(&ro);

    let scale = scale_raw(&env, "web");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 6);
    assert_eq!(scale["status"]["replicas"], ro["status"]["HPAReplicas"]);
    assert_eq!(scale["status"]["replicas"], 6);
    assert_eq!(scale["status"]["selector"], "app=web");
    assert_eq!(scale["status"]["selector"], ro["status"]["selector"]);
    assert_eq!(
        live_pods(&env, "web"),
        6,
        "HPAReplicas = non-terminated pods"
    );

    // An HPA writes /scale with PUT, carrying the resourceVersion it read.
    let mut scale = scale_raw(&env, "web");
    scale["spec"]["replicas"] = Value::from(3);
    let file = env.dir.path().join("scale.json");
    std::fs::write(&file, scale.to_string()).unwrap();
    let path = format!(
        "/apis/argoproj.io/v1alpha1/namespaces/{}/rollouts/web/scale",
        env.namespace
    );
    env.kubectl_ok(&["replace", "--raw", &path, "-f", file.to_str().unwrap()]);
    env.wait_for("scaled down to 3", T, |env| {
        (rs_of(env, &stable) == (3, 3) && live_pods(env, "web") == 3).then_some(())
    });
    let ro = wait_phase(&env, "web", "Healthy");
    assert_eq!(ro["spec"]["replicas"], 3);
    assert_eq!(ro["status"]["HPAReplicas"], 3);
}

#[test]
fn scaling_during_a_canary_keeps_the_current_weight() {
    require_kubectl!();
    let env = Env::start("scale-canary");
    env.apply(&rollout_yaml("web", Some(4), "nginx:1.25", STEPS));
    let ro = wait_phase(&env, "web", "Healthy");
    let stable = ro["status"]["stableRS"].as_str().unwrap().to_string();

    set_image(&env, "web", "nginx:1.26");
    let ro = wait_phase(&env, "web", "Paused");
    let canary = ro["status"]["currentPodHash"].as_str().unwrap().to_string();
    env.wait_for("setWeight 25 of 4: canary 1, stable 3", T, |env| {
        (rs_of(env, &canary) == (1, 1) && rs_of(env, &stable) == (3, 3)).then_some(())
    });

    env.kubectl_ok(&["scale", "ro/web", "--replicas=8"]);
    env.wait_for("setWeight 25 of 8: canary 2, stable 6", T, |env| {
        let ro = rollout(env, "web");
        assert_ne!(
            phase(&ro).0,
            "Healthy",
            "scaling must not finish the update"
        );
        (rs_of(env, &canary) == (2, 2) && rs_of(env, &stable) == (6, 6)).then_some(())
    });
    let ro = wait_phase(&env, "web", "Paused");
    assert_eq!(
        ro["status"]["currentStepIndex"], 1,
        "still at the pause step"
    );
    assert_eq!(phase(&ro).1, "CanaryPauseStep");
    assert_eq!(ro["spec"]["replicas"], 8);
    env.wait_for("status counts all 8 pods", T, |env| {
        let ro = rollout(env, "web");
        (ro["status"]["replicas"] == 8 && live_pods(env, "web") == 8).then_some(())
    });
    let ro = rollout(&env, "web");
    assert_hpa_replicas_consistent(&ro);
    assert_eq!(scale_raw(&env, "web")["status"]["replicas"], 8);

    // Scaling down mid-canary keeps the weight too.
    env.kubectl_ok(&["scale", "ro/web", "--replicas=4"]);
    env.wait_for("back to canary 1, stable 3", T, |env| {
        (rs_of(env, &canary) == (1, 1) && rs_of(env, &stable) == (3, 3)).then_some(())
    });
    let ro = wait_phase(&env, "web", "Paused");
    assert_eq!(ro["status"]["currentStepIndex"], 1);
}

#[test]
fn the_controller_defaults_missing_replicas_to_one_and_otherwise_never_writes_spec_replicas() {
    require_kubectl!();
    let env = Env::start("scale-default");
    env.apply(&rollout_yaml("dflt", None, "nginx:1.25", STEPS));
    let ro = wait_phase(&env, "dflt", "Healthy");
    assert_eq!(ro["spec"]["replicas"], 1, "nil defaulted to 1 for the HPA");
    assert_eq!(ro["status"]["HPAReplicas"], 1);

    // With replicas set, a whole update (steps, promote, completion) leaves spec.replicas as
    // the user wrote it: no generation bump other than the user's own edits.
    env.apply(&rollout_yaml("set", Some(3), "nginx:1.25", STEPS));
    let ro = wait_phase(&env, "set", "Healthy");
    let generation = ro["metadata"]["generation"].as_i64().unwrap();
    set_image(&env, "set", "nginx:1.26");
    wait_phase(&env, "set", "Paused");
    env.patch_rollout_status("set", r#"{"status":{"pauseConditions":null}}"#);
    let ro = wait_phase(&env, "set", "Healthy");
    assert_eq!(ro["spec"]["replicas"], 3);
    assert_eq!(
        ro["metadata"]["generation"].as_i64().unwrap(),
        generation + 1,
        "only the image edit changed the spec"
    );
}

#[test]
fn an_autoscaling_v2_hpa_targeting_a_rollout_is_stored_and_read_back() {
    require_kubectl!();
    let env = Env::start("scale-hpa");
    env.apply(&rollout_yaml("web", Some(2), "nginx:1.25", STEPS));
    wait_phase(&env, "web", "Healthy");
    env.apply(
        r#"apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: web
spec:
  scaleTargetRef:
    apiVersion: argoproj.io/v1alpha1
    kind: Rollout
    name: web
  minReplicas: 2
  maxReplicas: 10
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: 60
"#,
    );
    let hpa = env.get_json(&["hpa", "web"]);
    assert_eq!(hpa["apiVersion"], "autoscaling/v2");
    assert_eq!(
        hpa["spec"]["scaleTargetRef"],
        serde_json::json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "web"})
    );
    assert_eq!(
        hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        60
    );
    let table = env.kubectl_ok(&["get", "hpa", "web"]);
    assert!(table.contains("Rollout/web"), "{table}");
    // The target the HPA resolves through discovery: the Rollout's scale subresource.
    let scale = scale_raw(&env, "web");
    assert_eq!(scale["status"]["selector"], "app=web");
    assert_eq!(scale["status"]["replicas"], 2);
}
