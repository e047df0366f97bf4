//! What a real API server refuses (issue: fidelity, part 2): a pod template it would not
//! accept is an InvalidSpec naming the field before anything is written, and a write it
//! refuses anyway (here a ResourceQuota's object count) is a visible condition and Event
//! instead of a silent retry loop. Every stage is also judged by Argo CD's health check.

use std::time::Duration;

use serde_json::Value;

use crate::argocd_oracle::{ArgoHealth, argocd_rollout_health};
use crate::harness::Env;
use crate::require_kubectl;

const T: Duration = Duration::from_secs(60);

fn rollout_yaml(image: &str, memory: &str) -> String {
    format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
        - name: web
          image: {image}
          resources:
            requests: {{memory: {memory}}}
  strategy:
    canary:
      maxSurge: 1
      maxUnavailable: 0
      steps:
        - setWeight: 50
        - pause: {{}}
"#
    )
}

fn rollout(env: &Env) -> Value {
    env.get_json(&["rollout", "web"])
}

fn generation_observed(ro: &Value) -> bool {
    ro["status"]["observedGeneration"].as_str() == Some(&ro["metadata"]["generation"].to_string())
}

/// The Rollout once its status reports `phase` for the current generation.
fn wait_phase(env: &Env, want: &str) -> Value {
    env.wait_for(&format!("rollout phase {want}"), T, |env| {
        let ro = rollout(env);
        (generation_observed(&ro) && ro["status"]["phase"] == want).then_some(ro)
    })
}

fn replica_sets(env: &Env) -> Vec<Value> {
    env.get_json(&["replicasets", "-l", "rollouts-pod-template-hash"])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn condition<'a>(ro: &'a Value, type_: &str) -> Option<&'a Value> {
    ro["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

#[test]
fn a_malformed_quantity_is_refused_at_apply_and_a_refusable_template_is_degraded_until_fixed() {
    require_kubectl!();
    let env = Env::start("fidelity-quantity");
    // The CRD checks a quantity's form (issue 14), so a malformed one never gets stored: the
    // apply fails naming the field, as for a Deployment.
    let malformed = env.dir.path().join("malformed.yaml");
    std::fs::write(&malformed, rollout_yaml("nginx:1.25", "invalid")).unwrap();
    let out = env.kubectl(&["apply", "-f", malformed.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "spec.template.spec.containers[0].resources.requests.memory: Invalid value: \"invalid\""
        ),
        "{err}"
    );
    // A template the schema cannot judge (a request above its limit) is stored; a
    // ReplicaSet with it would be refused, so the Rollout is InvalidSpec naming the field.
    let over_limit = rollout_yaml("nginx:1.25", "128Mi").replace(
        "requests: {memory: 128Mi}",
        "requests: {memory: 128Mi}\n            limits: {memory: 64Mi}",
    );
    assert!(over_limit.contains("limits"), "{over_limit}");
    env.apply(&over_limit);
    let ro = wait_phase(&env, "Degraded");
    let message = ro["status"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("InvalidSpec: spec.template.spec.containers[0].resources.requests")
            && message.contains("must be less than or equal to memory limit of 64Mi"),
        "{message}"
    );
    let verdict = argocd_rollout_health(&ro);
    assert_eq!(verdict.status, ArgoHealth::Degraded);
    assert_eq!(verdict.message, message);
    assert!(replica_sets(&env).is_empty(), "no ReplicaSet was created");

    env.apply(&rollout_yaml("nginx:1.25", "64Mi"));
    let ro = wait_phase(&env, "Healthy");
    assert_eq!(argocd_rollout_health(&ro).status, ArgoHealth::Healthy);
    assert!(condition(&ro, "InvalidSpec").is_none());
    assert_eq!(ro["status"]["availableReplicas"], 2);
    assert_eq!(replica_sets(&env).len(), 1);
}

fn quota_yaml(limit: u32) -> String {
    format!(
        "apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: rs-quota\nspec:\n  hard:\n    count/replicasets.apps: \"{limit}\"\n"
    )
}

/// The Warning Events about the Rollout with this reason.
fn warnings(env: &Env, reason: &str) -> Vec<Value> {
    let events = env.get_json(&["events.v1.events.k8s.io"]);
    events["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| {
            e["reason"] == reason && e["type"] == "Warning" && e["regarding"]["name"] == "web"
        })
        .collect()
}

#[test]
fn a_refused_replica_set_is_a_visible_create_error_with_an_event_and_clears_once_accepted() {
    require_kubectl!();
    let env = Env::start("fidelity-refused");
    // A quota of one ReplicaSet: the first revision fits, the update's canary does not.
    env.apply(&quota_yaml(1));
    env.apply(&rollout_yaml("nginx:1.25", "64Mi"));
    let ro = wait_phase(&env, "Healthy");
    let stable = ro["status"]["stableRS"].as_str().unwrap().to_string();

    env.apply(&rollout_yaml("nginx:1.26", "64Mi"));
    let ro = env.wait_for("the refused create on the Rollout", T, |env| {
        let ro = rollout(env);
        let refused =
            condition(&ro, "Progressing").is_some_and(|c| c["reason"] == "ReplicaSetCreateError");
        (generation_observed(&ro) && refused).then_some(ro)
    });
    let progressing = condition(&ro, "Progressing").unwrap();
    assert_eq!(progressing["status"], "False");
    let message = progressing["message"].as_str().unwrap();
    let name = message
        .strip_prefix("Failed to create new replica set \"")
        .and_then(|rest| rest.split_once('"'))
        .map(|(name, _)| name.to_string())
        .unwrap_or_else(|| panic!("upstream's message: {message}"));
    assert_eq!(
        message,
        format!(
            "Failed to create new replica set \"{name}\": replicasets.apps \"{name}\" is forbidden: exceeded quota: rs-quota, requested: count/replicasets.apps=1, used: count/replicasets.apps=1, limited: count/replicasets.apps=1"
        ),
        "the server's message, verbatim"
    );
    // Argo CD does not call it Healthy: the update cannot start, and it says why.
    assert_eq!(ro["status"]["phase"], "Progressing");
    let verdict = argocd_rollout_health(&ro);
    assert_eq!(verdict.status, ArgoHealth::Progressing);
    assert_eq!(verdict.message, format!("ReplicaSetCreateError: {message}"));
    let events = env.wait_for("the ReplicaSetCreateError Warning Event", T, |env| {
        let events = warnings(env, "ReplicaSetCreateError");
        (!events.is_empty()).then_some(events)
    });
    assert_eq!(events[0]["note"], message);
    // The stable is untouched meanwhile.
    let rs = replica_sets(&env);
    assert_eq!(rs.len(), 1, "only the stable exists");
    assert_eq!(
        rs[0]["metadata"]["labels"]["rollouts-pod-template-hash"],
        stable
    );
    assert_eq!(rs[0]["status"]["availableReplicas"], 2);

    // Room for the canary: the retry (on the controller's backoff) is accepted and the
    // update proceeds to its pause step; the refusal is gone from the status.
    env.apply(&quota_yaml(2));
    let ro = wait_phase(&env, "Paused");
    assert_eq!(argocd_rollout_health(&ro).status, ArgoHealth::Suspended);
    let progressing = condition(&ro, "Progressing").unwrap();
    assert_ne!(progressing["reason"], "ReplicaSetCreateError");
    assert_eq!(replica_sets(&env).len(), 2);
    assert!(
        replica_sets(&env)
            .iter()
            .any(|rs| rs["metadata"]["name"] == name.as_str()),
        "the refused ReplicaSet now exists"
    );
}

/// A Rollout whose update runs an analysis step against `url` (a web metric that passes).
fn analysed_rollout(image: &str, url: &str) -> String {
    format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: passes
spec:
  args:
    - name: url
  metrics:
    - name: value
      successCondition: "result == 1"
      provider:
        web:
          url: "{{{{args.url}}}}"
          jsonPath: "{{$.value}}"
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: web
spec:
  replicas: 2
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
        - setWeight: 50
        - analysis:
            templates: [{{templateName: passes}}]
            args: [{{name: url, value: "{url}"}}]
"#
    )
}

#[test]
fn a_refused_analysis_run_is_a_visible_reconciliation_error_and_clears_once_accepted() {
    require_kubectl!();
    let env = Env::start("fidelity-refused-run");
    let server = crate::prometheus::Served::start();
    server.set_json("/health", &serde_json::json!({"value": 1}));
    let url = server.url("/health");
    env.apply(
        "apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: ar-quota\nspec:\n  hard:\n    count/analysisruns.argoproj.io: \"0\"\n",
    );
    env.apply(&analysed_rollout("nginx:1.25", &url));
    wait_phase(&env, "Healthy");
    env.apply(&analysed_rollout("nginx:1.26", &url));
    let ro = env.wait_for("the refused AnalysisRun on the Rollout", T, |env| {
        let ro = rollout(env);
        let refused =
            condition(&ro, "Progressing").is_some_and(|c| c["reason"] == "ReconciliationError");
        (generation_observed(&ro) && refused).then_some(ro)
    });
    let message = condition(&ro, "Progressing").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    let hash = ro["status"]["currentPodHash"].as_str().unwrap();
    assert_eq!(
        message,
        format!(
            "Reconciliation failed with error: analysisruns.argoproj.io \"web-{hash}-2-1\" is forbidden: exceeded quota: ar-quota, requested: count/analysisruns.argoproj.io=1, used: count/analysisruns.argoproj.io=0, limited: count/analysisruns.argoproj.io=0"
        )
    );
    let verdict = argocd_rollout_health(&ro);
    assert_eq!(verdict.status, ArgoHealth::Progressing);
    assert_eq!(verdict.message, format!("ReconciliationError: {message}"));
    env.wait_for("the ReconciliationError Warning Event", T, |env| {
        (!warnings(env, "ReconciliationError").is_empty()).then_some(())
    });

    env.apply(
        "apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: ar-quota\nspec:\n  hard:\n    count/analysisruns.argoproj.io: \"5\"\n",
    );
    let ro = wait_phase(&env, "Healthy");
    assert_eq!(argocd_rollout_health(&ro).status, ArgoHealth::Healthy);
    assert_eq!(ro["status"]["stableRS"], hash, "the update completed");
    assert_ne!(
        condition(&ro, "Progressing").unwrap()["reason"],
        "ReconciliationError"
    );
}
