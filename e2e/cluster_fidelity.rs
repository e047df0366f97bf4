//! Scenarios where the embedded cluster must behave like a real one for a Rollout to be judged
//! honestly: images that do not exist, probes that delay readiness, disruption budgets.

use std::time::Duration;

use serde_json::Value;

use crate::argocd_oracle::{ArgoHealth, argocd_rollout_health};
use crate::harness::Env;
use crate::require_kubectl;

const T: Duration = Duration::from_secs(90);

fn rollout(env: &Env, name: &str) -> Value {
    env.get_json(&["rollout", name])
}

fn generation_observed(ro: &Value) -> bool {
    ro["status"]["observedGeneration"].as_str() == Some(&ro["metadata"]["generation"].to_string())
}

fn wait_phase(env: &Env, name: &str, want: &str) -> Value {
    env.wait_for(&format!("rollout {name} phase {want}"), T, |env| {
        let ro = rollout(env, name);
        (generation_observed(&ro) && ro["status"]["phase"] == want).then_some(ro)
    })
}

fn pods(env: &Env, selector: &str) -> Vec<Value> {
    env.get_json(&["pods", "-l", selector])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn time(v: &Value) -> chrono::DateTime<chrono::Utc> {
    v.as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.to_utc())
        .unwrap_or_else(|| panic!("not a timestamp: {v}"))
}

#[test]
fn a_canary_whose_image_does_not_exist_stays_unavailable_and_goes_degraded() {
    require_kubectl!();
    // The failure comes from the cluster's configuration: the manifest is what a user writes.
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("simulate.yaml");
    std::fs::write(
        &rules,
        "failures:\n- {image: '*:does-not-exist', simulate: image-pull-error}\n",
    )
    .unwrap();
    let env =
        Env::start_with_cluster_flags("missing-image", &["--simulate", rules.to_str().unwrap()]);
    let manifest = |image: &str| {
        format!(
            r#"apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: shop}}
spec:
  replicas: 3
  progressDeadlineSeconds: 4
  selector: {{matchLabels: {{app: shop}}}}
  template:
    metadata: {{labels: {{app: shop}}}}
    spec:
      containers:
      - {{name: shop, image: "{image}"}}
  strategy:
    canary:
      maxSurge: 1
      maxUnavailable: 0
      steps: [{{setWeight: 34}}, {{pause: {{}}}}]
"#
        )
    };
    env.apply(&manifest("nginx:1.27"));
    let ro = wait_phase(&env, "shop", "Healthy");
    let stable = ro["status"]["stableRS"].as_str().unwrap().to_string();
    env.apply(&manifest("nginx:does-not-exist"));

    // The canary's pod is Pending with the runtime's reasons, never Ready.
    let reason = env.wait_for("the canary pod fails to pull its image", T, |env| {
        pods(env, "app=shop")
            .into_iter()
            .filter(|p| p["metadata"]["labels"]["rollouts-pod-template-hash"] != stable.as_str())
            .find_map(|p| {
                let waiting = &p["status"]["containerStatuses"][0]["state"]["waiting"];
                let reason = waiting["reason"].as_str()?.to_string();
                matches!(reason.as_str(), "ErrImagePull" | "ImagePullBackOff").then(|| {
                    assert_eq!(p["status"]["phase"], "Pending");
                    reason
                })
            })
    });
    assert!(!reason.is_empty());

    let ro = env.wait_for("Degraded ProgressDeadlineExceeded", T, |env| {
        let ro = rollout(env, "shop");
        (generation_observed(&ro) && ro["status"]["phase"] == "Degraded").then_some(ro)
    });
    let message = ro["status"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("ProgressDeadlineExceeded: "),
        "{message}"
    );
    let progressing = ro["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Progressing")
        .unwrap()
        .clone();
    assert_eq!(
        (
            progressing["status"].as_str(),
            progressing["reason"].as_str()
        ),
        (Some("False"), Some("ProgressDeadlineExceeded"))
    );
    assert_eq!(argocd_rollout_health(&ro).status, ArgoHealth::Degraded);
    // The stable ReplicaSet kept every replica available all along.
    assert_eq!(ro["status"]["stableRS"], stable.as_str());
    assert_eq!(ro["status"]["availableReplicas"], 3);
    assert_eq!(ro["status"]["updatedReplicas"], 1);
}

#[test]
fn a_readiness_probe_initial_delay_holds_ready_back_ten_seconds() {
    require_kubectl!();
    let env = Env::start("readiness-delay");
    env.apply(
        r#"apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: probed}
spec:
  replicas: 1
  selector: {matchLabels: {app: probed}}
  template:
    metadata: {labels: {app: probed}}
    spec:
      containers:
      - name: app
        image: nginx:1.27
        readinessProbe:
          httpGet: {path: /, port: 80}
          initialDelaySeconds: 10
          periodSeconds: 5
  strategy:
    canary:
      steps: [{setWeight: 50}]
"#,
    );
    let ro = env.wait_for("the Rollout is Healthy", Duration::from_secs(60), |env| {
        let ro = rollout(env, "probed");
        (generation_observed(&ro) && ro["status"]["phase"] == "Healthy").then_some(ro)
    });
    assert_eq!(ro["status"]["availableReplicas"], 1);
    let pod = pods(&env, "app=probed").pop().expect("one pod");
    let status = &pod["status"];
    let started = time(&status["containerStatuses"][0]["state"]["running"]["startedAt"]);
    let ready = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready" && c["status"] == "True")
        .map(|c| time(&c["lastTransitionTime"]))
        .expect("Ready");
    // What the pod reports, not how long the test took: the kubelet's first probe that counts
    // is at initialDelaySeconds after the container started.
    assert!(
        ready - started >= chrono::Duration::seconds(10),
        "started {started}, ready {ready}"
    );
    assert_eq!(status["containerStatuses"][0]["started"], true);
}

#[test]
fn a_restart_under_a_pod_disruption_budget_evicts_one_pod_at_a_time() {
    require_kubectl!();
    let env = Env::start("restart-pdb");
    // The Rollout alone would take two pods down at once (maxUnavailable 2); the budget allows
    // one, and only the eviction subresource enforces it.
    env.apply(
        r#"apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  replicas: 4
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: "nginx:1.27"}
  strategy:
    canary:
      maxSurge: 0
      maxUnavailable: 2
      steps: [{setWeight: 50}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec:
  maxUnavailable: 1
  selector: {matchLabels: {app: web}}
"#,
    );
    wait_phase(&env, "web", "Healthy");
    env.wait_for("the budget allows one disruption", T, |env| {
        let pdb = env.get_json(&["pdb", "web"]);
        (pdb["status"]["disruptionsAllowed"] == 1 && pdb["status"]["expectedPods"] == 4)
            .then_some(())
    });
    let before: Vec<String> = pods(&env, "app=web")
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(before.len(), 4);
    // `restartAt` and creation timestamps are whole seconds, and a pod created in the
    // restart's own second is not older than it (upstream's rule): the pods above would count
    // as restarted already. Restart once the clock has left their newest creation second.
    let newest = pods(&env, "app=web")
        .iter()
        .filter_map(|p| p["metadata"]["creationTimestamp"].as_str())
        .filter_map(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp())
        .max()
        .expect("creation timestamps");
    env.wait_for("a second later than the newest pod's creation", T, |_| {
        (chrono::Utc::now().timestamp() > newest).then_some(())
    });
    let out = env.sluice(&["restart", "web"]);
    assert!(out.status.success(), "{out:?}");

    // Watch the pods until every old one is replaced: never fewer than 3 Ready.
    let mut fewest_ready = 4;
    env.wait_for("every pod replaced and the restart recorded", T, |env| {
        let now = pods(env, "app=web");
        let ready = now
            .iter()
            .filter(|p| {
                p["metadata"]["deletionTimestamp"].is_null()
                    && p["status"]["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
            .count();
        fewest_ready = fewest_ready.min(ready);
        let replaced = now
            .iter()
            .all(|p| !before.contains(&p["metadata"]["name"].as_str().unwrap().to_string()));
        let ro = rollout(env, "web");
        (replaced && ready == 4 && !ro["status"]["restartedAt"].is_null()).then_some(())
    });
    assert_eq!(
        fewest_ready, 3,
        "the budget allows one pod down at a time, and the restart took one at a time"
    );
    let ro = wait_phase(&env, "web", "Healthy");
    assert_eq!(argocd_rollout_health(&ro).status, ArgoHealth::Healthy);
}

#[test]
fn a_rollout_with_numeric_cpu_requests_completes_a_canary() {
    require_kubectl!();
    let env = Env::start("numeric-cpu");
    // As many real manifests have it: YAML numbers, which a Deployment takes.
    let manifest = |image: &str| {
        format!(
            r#"apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: formats}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: formats}}}}
  template:
    metadata: {{labels: {{app: formats}}}}
    spec:
      containers:
      - name: app
        image: {image}
        resources:
          requests: {{cpu: 0.001, memory: 16Mi}}
          limits: {{cpu: 1}}
  strategy:
    canary:
      steps: [{{setWeight: 50}}, {{pause: {{duration: 1}}}}]
"#
        )
    };
    env.apply(&manifest("nginx:1.27"));
    wait_phase(&env, "formats", "Healthy");
    env.apply(&manifest("nginx:1.28"));
    let ro = env.wait_for("the canary completes", T, |env| {
        let ro = rollout(env, "formats");
        (generation_observed(&ro)
            && ro["status"]["phase"] == "Healthy"
            && ro["status"]["stableRS"] == ro["status"]["currentPodHash"]
            && ro["metadata"]["annotations"]["rollout.argoproj.io/revision"] == "2")
            .then_some(ro)
    });
    assert_eq!(argocd_rollout_health(&ro).status, ArgoHealth::Healthy);
    // The value reached the ReplicaSet (which the API server accepted) and its pods.
    let hash = ro["status"]["currentPodHash"].as_str().unwrap();
    let rs = env.get_json(&["rs", &format!("formats-{hash}")]);
    let requests = &rs["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"];
    let cpu = requests["cpu"].as_str().unwrap_or_default();
    assert!(matches!(cpu, "0.001" | "1m"), "cpu {requests}");
    for pod in pods(&env, &format!("rollouts-pod-template-hash={hash}")) {
        let cpu = &pod["spec"]["containers"][0]["resources"]["requests"]["cpu"];
        assert!(
            matches!(cpu.as_str(), Some("0.001" | "1m")),
            "pod cpu {cpu}"
        );
    }
}
