//! Blue/green scenarios driven by the real kubectl (issue 15): an active and a preview
//! Service, auto and manual promotion, pre- and post-promotion analysis against an HTTP
//! server the test runs, scale-down delays, aborts, the progress deadline, switching to canary
//! and back, and bad input. Argo CD's health verdict is checked at every observation.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::argocd_oracle::{ArgoHealth, GENERATION_NOT_OBSERVED, argocd_rollout_health};
use crate::harness::{Env, watched_objects};
use crate::prometheus::Served;
use crate::require_kubectl;

const T: Duration = Duration::from_secs(90);

/// The active and preview Services of the Rollout `web` (they select its pods by `app`).
const SERVICES: &str = r#"apiVersion: v1
kind: Service
metadata:
  name: web-active
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 80}]
---
apiVersion: v1
kind: Service
metadata:
  name: web-preview
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 80}]
"#;

/// The Rollout `web`: `replicas` of `image`, blue/green with both Services and `extra` (lines
/// indented under `blueGreen:`).
fn rollout_yaml(replicas: i32, image: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: web
spec:
  replicas: {replicas}
  revisionHistoryLimit: 5
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
    blueGreen:
      activeService: web-active
      previewService: web-preview
{extra}"#
    )
}

/// An AnalysisTemplate `name` with one web metric: `count` measurements a second apart, each
/// successful when the server's `/ok` answers `{"ok": 1}`.
fn template_yaml(name: &str, server: &Served, count: u32) -> String {
    format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: {name}
spec:
  metrics:
    - name: ok
      interval: 1s
      count: {count}
      successCondition: "result == 1"
      provider:
        web:
          url: "{}"
          jsonPath: "{{$.ok}}"
"#,
        server.url("/ok")
    )
}

fn rollout(env: &Env) -> Value {
    env.get_json(&["rollout", "web"])
}

fn generation_observed(ro: &Value) -> bool {
    ro["status"]["observedGeneration"].as_str() == Some(&ro["metadata"]["generation"].to_string())
}

/// The hash a Service selects ("" when none, or when there is no such Service).
fn selector(env: &Env, service: &str) -> String {
    let out = env.kubectl(&["get", "service", service, "-o", "json"]);
    let svc: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    svc["spec"]["selector"]["rollouts-pod-template-hash"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// The Rollout's ReplicaSets by hash: (spec.replicas, available, scale-down-deadline).
fn replica_sets(env: &Env) -> Vec<(String, i64, i64, Option<String>)> {
    let list = env.get_json(&["replicasets", "-l", "rollouts-pod-template-hash,app=web"]);
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
                rs["metadata"]["annotations"]["scale-down-deadline"]
                    .as_str()
                    .map(str::to_string),
            )
        })
        .collect()
}

fn rs_of(env: &Env, hash: &str) -> (i64, i64, Option<String>) {
    replica_sets(env)
        .into_iter()
        .find(|(h, ..)| h == hash)
        .map(|(_, s, a, d)| (s, a, d))
        .unwrap_or((0, 0, None))
}

fn set_image(env: &Env, image: &str) {
    let patch = format!(
        r#"{{"spec":{{"template":{{"spec":{{"containers":[{{"name":"web","image":"{image}"}}]}}}}}}}}"#
    );
    env.kubectl_ok(&["patch", "rollout", "web", "--type=merge", "-p", &patch]);
}

fn sluice_ok(env: &Env, args: &[&str]) -> String {
    let out = env.sluice(args);
    assert!(
        out.status.success(),
        "sluice {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Observe the Rollout until Argo CD's verdict is `want` with a message `msg` accepts,
/// checking at every observation what Argo CD and a user rely on:
/// - no verdict but Progressing while the controller has not observed the generation;
/// - Healthy only when the current ReplicaSet is stable, every desired replica is available
///   and the live active Service selects it;
/// - Suspended only with a pause a person can clear; Degraded only with an explained message;
/// - the live active Service never selects a ReplicaSet scaled to zero.
fn watch(env: &Env, want: ArgoHealth, msg: impl Fn(&str) -> bool) -> Value {
    let deadline = Instant::now() + T;
    let mut last = Value::Null;
    loop {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for Argo CD health {want:?}; last verdict {:?} on status {}\n{}",
            argocd_rollout_health(&last),
            last["status"],
            env.logs()
        );
        let ro = rollout(env);
        // The active Service the spec names now (none once switched to canary).
        let active = ro["spec"]["strategy"]["blueGreen"]["activeService"]
            .as_str()
            .map(|name| selector(env, name))
            .unwrap_or_default();
        let sets = replica_sets(env);
        last = ro.clone();
        let verdict = argocd_rollout_health(&ro);
        let s = &ro["status"];
        if !generation_observed(&ro) {
            assert_eq!(
                (verdict.status, verdict.message.as_str()),
                (ArgoHealth::Progressing, GENERATION_NOT_OBSERVED)
            );
        } else {
            match verdict.status {
                ArgoHealth::Healthy => {
                    assert_eq!(
                        s["stableRS"], s["currentPodHash"],
                        "Healthy mid-update: {s}"
                    );
                    assert_eq!(
                        s["availableReplicas"], ro["spec"]["replicas"],
                        "Healthy while pods are missing: {s}"
                    );
                    if ro["spec"]["strategy"]["blueGreen"].is_object() {
                        assert_eq!(
                            s["blueGreen"]["activeSelector"], s["currentPodHash"],
                            "Healthy before the switch: {s}"
                        );
                        assert_eq!(Some(active.as_str()), s["currentPodHash"].as_str());
                    }
                }
                ArgoHealth::Suspended => {
                    let paused = ro["spec"]["paused"] == true
                        || s["pauseConditions"]
                            .as_array()
                            .is_some_and(|p| !p.is_empty());
                    assert!(paused, "Suspended without a pause to resume: {s}");
                }
                ArgoHealth::Degraded => {
                    let m = verdict.message.as_str();
                    assert!(
                        [
                            "InvalidSpec: ",
                            "RolloutAborted: ",
                            "ProgressDeadlineExceeded: "
                        ]
                        .iter()
                        .any(|p| m.starts_with(p)),
                        "Degraded with an unexplained message: {m}"
                    );
                }
                _ => {}
            }
        }
        if !active.is_empty()
            && let Some((_, spec, ..)) = sets.iter().find(|(h, ..)| *h == active)
        {
            assert!(
                *spec > 0,
                "the active Service selects {active}, scaled to zero: {sets:?}"
            );
        }
        if verdict.status == want && msg(&verdict.message) {
            return ro;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn any(_: &str) -> bool {
    true
}

fn current(ro: &Value) -> String {
    ro["status"]["currentPodHash"].as_str().unwrap().to_string()
}

/// Services, then the Rollout with `extra`; waits until it is Healthy on nginx:1.25 and
/// returns the stable hash.
fn healthy_v1(env: &Env, replicas: i32, extra: &str) -> String {
    env.apply(SERVICES);
    env.apply(&rollout_yaml(replicas, "nginx:1.25", extra));
    let ro = watch(env, ArgoHealth::Healthy, any);
    let stable = current(&ro);
    assert_eq!(selector(env, "web-active"), stable);
    assert_eq!(selector(env, "web-preview"), stable);
    assert_eq!(rs_of(env, &stable).0, i64::from(replicas));
    let svc = env.get_json(&["service", "web-active"]);
    assert_eq!(
        svc["metadata"]["annotations"]["argo-rollouts.argoproj.io/managed-by-rollouts"],
        "web"
    );
    stable
}

#[test]
fn an_update_comes_up_behind_the_preview_and_is_switched_once_its_pre_promotion_analysis_passed() {
    require_kubectl!();
    let env = Env::start("bg-auto");
    let server = Served::start();
    server.set_json("/ok", &json!({"ok": 1}));
    env.apply(&template_yaml("smoke", &server, 3));
    let extra = "      scaleDownDelaySeconds: 4\n      prePromotionAnalysis:\n        templates: [{templateName: smoke}]\n";
    let v1 = healthy_v1(&env, 3, extra);
    // The old ReplicaSet's 4 s with its deadline can pass between two polls of a loaded
    // machine, so its states are recorded by a watch (kubectl's, listening before the update).
    let rs_watch = env.watch_json(
        "rs-watch",
        &["replicasets", "-l", "rollouts-pod-template-hash,app=web"],
    );
    env.wait_for("kubectl's ReplicaSet watch listing v1", T, |_| {
        (!watched_states(&rs_watch.log_text(), &v1).is_empty()).then_some(())
    });

    set_image(&env, "nginx:1.26");
    // The new revision is up behind the preview, the pre-promotion run measures, and
    // production traffic stays on v1 meanwhile.
    let ro = watch(&env, ArgoHealth::Progressing, |m| {
        m == "active service cutover pending"
    });
    let v2 = current(&ro);
    let run = env.wait_for("the pre-promotion run while v2 is up", T, |env| {
        let ro = rollout(env);
        let run = ro["status"]["blueGreen"]["prePromotionAnalysisRunStatus"]["name"]
            .as_str()?
            .to_string();
        let up = rs_of(env, &v2).1 == 3;
        (up && selector(env, "web-preview") == v2).then_some(run)
    });
    assert_eq!(run, format!("web-{v2}-2-pre"));
    // No switch before the run passed. The Service is read before the run, so a switch seen
    // there must be matched by a run that had already passed (the run takes about 2 s, and a
    // loaded machine can spend that between two reads).
    let active = selector(&env, "web-active");
    if active != v1 {
        assert_eq!(active, v2);
        assert_eq!(
            env.get_json(&["analysisrun", &run])["status"]["phase"],
            "Successful",
            "the active Service switched to {v2} before the run passed"
        );
    }
    let ar = env.get_json(&["analysisrun", &run]);
    assert_eq!(ar["metadata"]["labels"]["rollout-type"], "PrePromotion");

    let ro = watch(&env, ArgoHealth::Healthy, any);
    assert_eq!(current(&ro), v2);
    assert_eq!(
        env.get_json(&["analysisrun", &run])["status"]["phase"],
        "Successful"
    );
    assert_eq!(ro["status"]["blueGreen"]["activeSelector"], v2.as_str());
    assert_eq!(ro["status"]["blueGreen"]["previewSelector"], v2.as_str());
    // The old ReplicaSet stays up with its deadline, then goes.
    env.wait_for("the old ReplicaSet scaled down after its delay", T, |env| {
        let (spec, _, deadline) = rs_of(env, &v1);
        (spec == 0 && deadline.is_none()).then_some(())
    });
    watch(&env, ArgoHealth::Healthy, any);
    let states = env.wait_for("kubectl's watch seeing v1 scaled down", T, |_| {
        let states = watched_states(&rs_watch.log_text(), &v1);
        (states.last().map(|s| (s.0, s.1.is_none())) == Some((0, true))).then_some(states)
    });
    let annotated_up = states
        .iter()
        .position(|(spec, deadline)| *spec == 3 && deadline.is_some())
        .unwrap_or_else(|| panic!("v1 never stayed up with a deadline: {states:?}"));
    let deadline = states[annotated_up].1.clone().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(&deadline).is_ok(),
        "{deadline}"
    );
    assert!(
        states[annotated_up..].iter().any(|s| s.0 == 0),
        "v1 scaled down only before its deadline was set: {states:?}"
    );
}

/// What kubectl's `--watch --output-watch-events -o json` reported of the ReplicaSet with the
/// pod-template hash `hash`, in order: (spec.replicas, scale-down-deadline).
fn watched_states(log: &str, hash: &str) -> Vec<(i64, Option<String>)> {
    watched_objects(log)
        .into_iter()
        .filter(|rs| rs["metadata"]["labels"]["rollouts-pod-template-hash"] == hash)
        .map(|rs| {
            (
                rs["spec"]["replicas"].as_i64().unwrap_or(0),
                rs["metadata"]["annotations"]["scale-down-deadline"]
                    .as_str()
                    .map(str::to_string),
            )
        })
        .collect()
}

#[test]
fn manual_promotion_waits_in_blue_green_pause_with_the_preview_replica_count() {
    require_kubectl!();
    let env = Env::start("bg-manual");
    let extra = "      autoPromotionEnabled: false\n      previewReplicaCount: 1\n      scaleDownDelaySeconds: 2\n";
    let v1 = healthy_v1(&env, 3, extra);

    set_image(&env, "nginx:1.26");
    let ro = watch(&env, ArgoHealth::Suspended, |m| m == "BlueGreenPause");
    let v2 = current(&ro);
    assert_eq!(ro["status"]["phase"], "Paused");
    assert_eq!(
        ro["status"]["pauseConditions"][0]["reason"],
        "BlueGreenPause"
    );
    assert_eq!(ro["status"]["controllerPause"], true);
    assert_eq!((rs_of(&env, &v1).0, rs_of(&env, &v2).0), (3, 1));
    assert_eq!(selector(&env, "web-active"), v1);
    assert_eq!(selector(&env, "web-preview"), v2);
    // desired, current, updated, ready, available
    assert_eq!(
        [
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas"
        ]
        .map(|k| ro["status"][k].as_i64().unwrap_or(0)),
        [4, 1, 3, 3]
    );

    // The user pause holds it too; promote lifts both (as `kubectl argo rollouts promote`).
    sluice_ok(&env, &["pause", "web"]);
    watch(&env, ArgoHealth::Suspended, |m| m == "manually paused");
    let out = sluice_ok(&env, &["promote", "web"]);
    assert!(out.contains("promoted"), "{out}");
    let ro = watch(&env, ArgoHealth::Healthy, any);
    assert_eq!(current(&ro), v2);
    assert_eq!(rs_of(&env, &v2).0, 3);
    assert_eq!(selector(&env, "web-active"), v2);
    assert!(ro["status"]["pauseConditions"].is_null());
    env.wait_for("v1 scaled down after its delay", T, |env| {
        (rs_of(env, &v1).0 == 0).then_some(())
    });

    // restart: every pod replaced, a few at a time, and restartedAt recorded.
    // restartAt has second precision: wait until it is later than every pod's creation.
    env.wait_for("a second boundary after the newest pod", T, |env| {
        let pods = env.get_json(&["pods", "-l", "app=web"]);
        let newest = pods["items"]
            .as_array()?
            .iter()
            .filter_map(|p| p["metadata"]["creationTimestamp"].as_str())
            .filter_map(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .max()?;
        (chrono::Utc::now().timestamp() > newest.timestamp()).then_some(())
    });
    sluice_ok(&env, &["restart", "web"]);
    env.wait_for("restartedAt recorded", T, |env| {
        let ro = rollout(env);
        (ro["status"]["restartedAt"].is_string()
            && ro["status"]["restartedAt"] == ro["spec"]["restartAt"])
            .then_some(())
    });
    watch(&env, ArgoHealth::Healthy, any);
}

#[test]
fn a_failing_post_promotion_analysis_switches_back_aborts_and_retry_tries_again() {
    require_kubectl!();
    let env = Env::start("bg-post");
    let server = Served::start();
    server.set_json("/ok", &json!({"ok": 0}));
    env.apply(&template_yaml("after-switch", &server, 2));
    let extra = "      abortScaleDownDelaySeconds: 2\n      postPromotionAnalysis:\n        templates: [{templateName: after-switch}]\n";
    let v1 = healthy_v1(&env, 2, extra);

    set_image(&env, "nginx:1.26");
    let ro = watch(&env, ArgoHealth::Degraded, |m| {
        m.starts_with("RolloutAborted: ")
    });
    let v2 = current(&ro);
    assert_eq!(
        ro["status"]["message"],
        "RolloutAborted: Rollout aborted update to revision 2: Blue/green post-promotion analysis phase error/failed: Metric \"ok\" assessed Failed due to failed (1) > failureLimit (0)"
    );
    let post = ro["status"]["blueGreen"]["postPromotionAnalysisRunStatus"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(post, format!("web-{v2}-2-post"));
    env.wait_for("the active Service back on v1", T, |env| {
        (selector(env, "web-active") == v1).then_some(())
    });
    assert_eq!(ro["status"]["stableRS"], v1.as_str());
    env.wait_for(
        "v2 scaled down after abortScaleDownDelaySeconds",
        T,
        |env| (rs_of(env, &v2).0 == 0 && rs_of(env, &v1).0 == 2).then_some(()),
    );

    // Retry with a healthy metric: switched again, and stable this time.
    server.set_json("/ok", &json!({"ok": 1}));
    sluice_ok(&env, &["retry", "rollout", "web"]);
    let ro = watch(&env, ArgoHealth::Healthy, any);
    assert_eq!(current(&ro), v2);
    assert_ne!(
        ro["status"]["blueGreen"]["postPromotionAnalysisRunStatus"]["name"],
        post.as_str(),
        "a new run after the retry"
    );
}

#[test]
fn abort_during_the_preview_and_after_the_switch_keeps_production_on_the_stable() {
    require_kubectl!();
    let env = Env::start("bg-abort");
    let server = Served::start();
    server.set_json("/ok", &json!({"ok": 1}));
    // A post-promotion run that keeps measuring: the window between switch and stable.
    env.apply(&template_yaml("long", &server, 600));
    let extra = "      autoPromotionEnabled: false\n      abortScaleDownDelaySeconds: 2\n      postPromotionAnalysis:\n        templates: [{templateName: long}]\n";
    let v1 = healthy_v1(&env, 2, extra);

    // 1. During the preview.
    set_image(&env, "nginx:1.26");
    let ro = watch(&env, ArgoHealth::Suspended, |m| m == "BlueGreenPause");
    let v2 = current(&ro);
    let out = sluice_ok(&env, &["abort", "web"]);
    assert!(out.contains("aborted"), "{out}");
    let ro = watch(&env, ArgoHealth::Degraded, |m| {
        m == "RolloutAborted: Rollout aborted update to revision 2"
    });
    assert!(ro["status"]["abortedAt"].is_string());
    assert_eq!(selector(&env, "web-active"), v1);
    env.wait_for("the preview scaled down after the abort delay", T, |env| {
        (rs_of(env, &v2).0 == 0 && rs_of(env, &v1).0 == 2).then_some(())
    });

    // 2. After the switch, while the post-promotion run measures.
    sluice_ok(&env, &["retry", "rollout", "web"]);
    watch(&env, ArgoHealth::Suspended, |m| m == "BlueGreenPause");
    sluice_ok(&env, &["promote", "web"]);
    let ro = watch(&env, ArgoHealth::Progressing, |m| {
        m == "waiting for analysis to complete"
    });
    assert_eq!(selector(&env, "web-active"), v2);
    assert_eq!(ro["status"]["stableRS"], v1.as_str());
    sluice_ok(&env, &["abort", "web"]);
    watch(&env, ArgoHealth::Degraded, |m| {
        m.starts_with("RolloutAborted: ")
    });
    env.wait_for("the active Service back on v1", T, |env| {
        (selector(env, "web-active") == v1).then_some(())
    });
    let run = ro["status"]["blueGreen"]["postPromotionAnalysisRunStatus"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    env.wait_for("the post-promotion run terminated", T, |env| {
        let ar = env.get_json(&["analysisrun", &run]);
        (ar["spec"]["terminate"] == true).then_some(())
    });

    // promote --full after an abort: v2 becomes stable without the analysis.
    let out = sluice_ok(&env, &["promote", "web", "--full"]);
    assert!(out.contains("fully promoted"), "{out}");
    let ro = watch(&env, ArgoHealth::Healthy, any);
    assert_eq!(current(&ro), v2);
    assert_eq!(selector(&env, "web-active"), v2);
}

#[test]
fn a_missed_progress_deadline_degrades_and_with_progress_deadline_abort_aborts() {
    require_kubectl!();
    let env = Env::start("bg-deadline");
    let v1 = healthy_v1(&env, 2, "");
    let patch = r#"{"spec":{"progressDeadlineSeconds":3,"template":{"spec":{"containers":[{"name":"web","image":"nginx:never-ready"}]}}}}"#;
    env.kubectl_ok(&["patch", "rollout", "web", "--type=merge", "-p", patch]);
    let ro = watch(&env, ArgoHealth::Degraded, |m| {
        m.starts_with("ProgressDeadlineExceeded: ReplicaSet \"web-")
    });
    assert!(ro["status"]["abort"].is_null());
    assert_eq!(selector(&env, "web-active"), v1);
    assert_eq!(rs_of(&env, &v1).0, 2);

    // With progressDeadlineAbort the next update that misses its deadline is aborted.
    let patch = r#"{"spec":{"progressDeadlineAbort":true,"template":{"spec":{"containers":[{"name":"web","image":"busybox:never-ready"}]}}}}"#;
    env.kubectl_ok(&["patch", "rollout", "web", "--type=merge", "-p", patch]);
    let ro = watch(&env, ArgoHealth::Degraded, |m| {
        m.starts_with("RolloutAborted: Rollout aborted update to revision 3: ReplicaSet \"web-")
            && m.ends_with("has timed out progressing.")
    });
    assert_eq!(ro["status"]["abort"], true);
    assert_eq!(selector(&env, "web-active"), v1);

    // A good image after all: a new update that completes.
    set_image(&env, "nginx:1.27");
    let ro = watch(&env, ArgoHealth::Healthy, any);
    assert_ne!(current(&ro), v1);
}

#[test]
fn switching_to_canary_gives_the_service_back_and_switching_back_uses_it_again() {
    require_kubectl!();
    let env = Env::start("bg-to-canary");
    // As upstream's TestBlueGreenToCanary.
    env.apply(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web-active\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n",
    );
    let bg = |image: &str| {
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
  strategy:
    blueGreen:
      activeService: web-active
      scaleDownDelaySeconds: 5
"#
        )
    };
    env.apply(&bg("nginx:1.25"));
    let ro = watch(&env, ArgoHealth::Healthy, any);
    assert_eq!(selector(&env, "web-active"), current(&ro));

    let canary = r#"apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
      annotations: {foo: bar}
    spec:
      containers:
        - name: web
          image: nginx:1.25
  strategy:
    canary:
      steps:
        - setWeight: 50
        - pause: {}
"#;
    env.apply(canary);
    watch(&env, ArgoHealth::Suspended, |m| m == "CanaryPauseStep");
    let ro = env.wait_for("2 available", T, |env| {
        let ro = rollout(env);
        (ro["status"]["availableReplicas"] == 2).then_some(ro)
    });
    // desired, current, updated, ready, available: (2, 2, 1, 2, 2).
    assert_eq!(
        [
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas"
        ]
        .map(|k| ro["status"][k].as_i64().unwrap_or(0)),
        [2, 1, 2, 2]
    );
    assert!(ro["status"]["blueGreen"].is_null(), "{}", ro["status"]);
    env.wait_for("the Service given back", T, |env| {
        let svc = env.get_json(&["service", "web-active"]);
        let plain = svc["spec"]["selector"] == json!({"app": "web"});
        let unmanaged =
            svc["metadata"]["annotations"]["argo-rollouts.argoproj.io/managed-by-rollouts"]
                .is_null();
        (plain && unmanaged).then_some(())
    });

    // And back to blue/green with a new template: the Service is used again.
    env.apply(&bg("nginx:1.26"));
    let ro = watch(&env, ArgoHealth::Healthy, any);
    assert_eq!(selector(&env, "web-active"), current(&ro));
    assert!(ro["status"]["currentStepIndex"].is_null());
}

/// Every bad input of the issue is reported naming the field, while production traffic and
/// the stable ReplicaSet stay exactly as they were.
#[test]
fn bad_input_is_reported_naming_the_field_and_touches_nothing() {
    require_kubectl!();
    let env = Env::start("bg-bad");
    let v1 = healthy_v1(&env, 2, "");
    let sets = || {
        let mut s: Vec<(String, i64)> = replica_sets(&env)
            .into_iter()
            .map(|(h, spec, ..)| (h, spec))
            .collect();
        s.sort();
        s
    };
    let before = sets();
    let bad = |name: &str, yaml: &str, want: &str| {
        env.apply(yaml);
        watch(&env, ArgoHealth::Degraded, |m| {
            m.starts_with(&format!("InvalidSpec: {want}"))
        });
        assert_eq!(selector(&env, "web-active"), v1, "{name}");
        assert_eq!(selector(&env, "web-preview"), v1, "{name}");
        assert_eq!(sets(), before, "{name}: no ReplicaSet created or scaled");
    };
    let v2 = |extra: &str| rollout_yaml(2, "nginx:1.26", extra);
    bad(
        "same Service twice",
        &v2("").replace("previewService: web-preview", "previewService: web-active"),
        "spec.strategy.blueGreen.previewService: This rollout uses the same service",
    );
    bad(
        "a Service that does not exist",
        &v2("").replace("activeService: web-active", "activeService: web-live"),
        "spec.strategy.blueGreen.activeService: service \"web-live\" not found",
    );
    bad(
        "previewReplicaCount above replicas",
        &v2("      previewReplicaCount: 3\n"),
        "spec.strategy.blueGreen.previewReplicaCount: 3 is more than spec.replicas (2)",
    );
    bad(
        "a negative delay",
        &v2("      scaleDownDelaySeconds: -5\n"),
        "spec.strategy.blueGreen.scaleDownDelaySeconds: must be greater than or equal to 0",
    );
    bad(
        "a negative abort delay",
        &v2("      abortScaleDownDelaySeconds: -1\n"),
        "spec.strategy.blueGreen.abortScaleDownDelaySeconds: must be greater than or equal to 0",
    );
    env.apply(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web-other\nspec:\n  selector: {app: web, tier: api}\n  ports: [{port: 80}]\n",
    );
    bad(
        "a Service that cannot select the pods",
        &v2("").replace("previewService: web-preview", "previewService: web-other"),
        "spec.strategy.blueGreen.previewService: Service \"web-other\" has unmatch label \"tier\"",
    );
    // No activeService at all: the API server refuses the object (the CRD requires it).
    let path = env.dir.path().join("no-active.yaml");
    std::fs::write(
        &path,
        v2("").replace("      activeService: web-active\n", ""),
    )
    .unwrap();
    let out = env.kubectl(&["apply", "-f", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("activeService"), "{stderr}");

    // The missing Service created late: the Rollout resumes the update by itself.
    env.apply(&v2("").replace("activeService: web-active", "activeService: web-live"));
    watch(&env, ArgoHealth::Degraded, |m| m.contains("web-live"));
    env.apply(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web-live\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n",
    );
    let ro = watch(&env, ArgoHealth::Healthy, any);
    assert_eq!(selector(&env, "web-live"), current(&ro));
    // web-active is no longer named: given back.
    env.wait_for("web-active given back", T, |env| {
        selector(env, "web-active").is_empty().then_some(())
    });
}

/// Splits one shell command line into words: blanks separate, single quotes keep everything,
/// double quotes keep all but `\"` and `\\`; quoted parts join the word around them.
pub(crate) fn shell_words(line: &str) -> Vec<String> {
    let (mut words, mut word, mut in_word) = (Vec::new(), String::new(), false);
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                word.extend(chars.by_ref().take_while(|&c| c != '\''));
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => word.extend(chars.next()),
                        c => word.push(c),
                    }
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

#[test]
fn shell_words_split_like_a_shell() {
    assert_eq!(
        shell_words(
            r#"kubectl wait ro/demo --for=jsonpath='{.status.phase}'=Healthy -p '{"a":1}' "x y""#
        ),
        [
            "kubectl",
            "wait",
            "ro/demo",
            "--for=jsonpath={.status.phase}=Healthy",
            "-p",
            r#"{"a":1}"#,
            "x y"
        ]
    );
}

/// The fenced blocks of `text` after the heading `section`: (language, body).
pub(crate) fn code_blocks(text: &str, section: &str) -> Vec<(String, String)> {
    let start = text
        .find(section)
        .unwrap_or_else(|| panic!("no {section:?}"));
    let mut blocks = Vec::new();
    let mut lines = text[start..].lines();
    while let Some(line) = lines.next() {
        if let Some(lang) = line.strip_prefix("```") {
            let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
            blocks.push((lang.to_string(), body.join("\n") + "\n"));
        }
    }
    blocks
}

/// docs/blue-green.md's worked example, command by command as a reader would run it, with
/// what the text says checked after each block.
#[test]
fn the_worked_example_of_the_docs_applies_as_is() {
    require_kubectl!();
    let env = Env::start("bg-docs");
    let root = crate::harness::repo_root();
    let doc = std::fs::read_to_string(root.join("docs/blue-green.md")).unwrap();
    let blocks = code_blocks(&doc, "## A worked example");
    let manifest =
        std::fs::read_to_string(root.join("manifests/examples/blue-green-demo.yaml")).unwrap();
    assert_eq!(
        blocks[0],
        ("yaml".to_string(), manifest),
        "the doc shows the file"
    );
    let scripts: Vec<&String> = blocks
        .iter()
        .filter(|(lang, _)| lang == "sh")
        .map(|(_, body)| body)
        .collect();
    assert_eq!(scripts.len(), 3, "{scripts:#?}");
    let run = |script: &str| {
        for line in script.lines().filter(|l| !l.trim().is_empty()) {
            let words = shell_words(line);
            assert_eq!(words[0], "kubectl", "{line}");
            let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
            let out = env.kubectl(&args);
            assert!(
                out.status.success(),
                "`{line}` failed: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                env.logs()
            );
        }
    };
    let demo = |env: &Env| env.get_json(&["rollout", "demo"]);

    run(scripts[0]);
    let ro = demo(&env);
    let v1 = current(&ro);
    assert_eq!(selector(&env, "demo-active"), v1);
    assert_eq!(selector(&env, "demo-preview"), v1);
    assert_eq!(argocd_rollout_health(&ro).status, ArgoHealth::Healthy);

    run(scripts[1]);
    let ro = demo(&env);
    let v2 = current(&ro);
    assert_ne!(v1, v2);
    assert_eq!(argocd_rollout_health(&ro).status, ArgoHealth::Suspended);
    assert_eq!(selector(&env, "demo-active"), v1);
    assert_eq!(selector(&env, "demo-preview"), v2);
    let pre = format!("demo-{v2}-2-pre");
    assert_eq!(
        ro["status"]["blueGreen"]["prePromotionAnalysisRunStatus"]["name"],
        pre.as_str()
    );
    assert_eq!(
        env.get_json(&["analysisrun", &pre])["status"]["phase"],
        "Successful"
    );

    run(scripts[2]);
    let ro = demo(&env);
    assert_eq!(argocd_rollout_health(&ro).status, ArgoHealth::Healthy);
    assert_eq!(current(&ro), v2);
    assert_eq!(selector(&env, "demo-active"), v2);
    let old_set = |env: &Env| {
        let rs = env.get_json(&["replicaset", &format!("demo-{v1}")]);
        (
            rs["spec"]["replicas"].as_i64().unwrap_or(0),
            rs["metadata"]["annotations"]["scale-down-deadline"].is_string(),
        )
    };
    env.wait_for("revision 1 kept with its deadline", T, |env| {
        (old_set(env) == (3, true)).then_some(())
    });
    env.wait_for("revision 1 scaled down after ten seconds", T, |env| {
        (old_set(env) == (0, false)).then_some(())
    });
}

/// `sluice migrate --strategy blue-green` turns a live Deployment into a blue/green Rollout
/// that rolls out through the named Services.
#[test]
fn a_deployment_migrated_with_strategy_blue_green_rolls_out_through_its_services() {
    require_kubectl!();
    let env = Env::start("bg-migrate");
    env.apply(SERVICES);
    env.apply(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: nginx:1.25
"#,
    );
    let target = format!("{}/web", env.namespace);
    let migrate = |args: &[&str]| {
        std::process::Command::new(crate::harness::sluice_bin())
            .args([
                "migrate",
                "--from-cluster",
                &target,
                "--strategy",
                "blue-green",
            ])
            .args(args)
            .arg("--kubeconfig")
            .arg(&env.kubeconfig)
            .output()
            .expect("running sluice migrate")
    };
    let missing = migrate(&[]);
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("--active-service"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    let out = migrate(&[
        "--active-service",
        "web-active",
        "--preview-service",
        "web-preview",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.apply(&String::from_utf8_lossy(&out.stdout));
    let ro = watch(&env, ArgoHealth::Healthy, any);
    let stable = current(&ro);
    assert_eq!(selector(&env, "web-active"), stable);
    assert_eq!(selector(&env, "web-preview"), stable);
    set_image(&env, "nginx:1.26");
    let ro = env.wait_for("the update observed and done", T, |env| {
        let ro = rollout(env);
        (generation_observed(&ro) && ro["status"]["phase"] == "Healthy").then_some(ro)
    });
    assert_ne!(current(&ro), stable);
    assert_eq!(selector(&env, "web-active"), current(&ro));
}
