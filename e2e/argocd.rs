//! Argo CD's view of a live Rollout (issue 6, part 4): its built-in health check, restated in
//! `argocd_oracle`, judged at every observation while a Rollout goes through each stage, and
//! its built-in resource actions sent as the patches Argo CD sends.

use std::time::Duration;

use crate::argocd_oracle::{
    ArgoAction, ArgoHealth, GENERATION_NOT_OBSERVED, PatchTarget, argocd_action_patches,
    argocd_rollout_health,
};
use serde_json::Value;

use crate::harness::Env;
use crate::require_kubectl;
use crate::scale::{STEPS, T, generation_observed, rollout, rollout_yaml, rs_of, set_image};

/// Send an Argo CD action the way Argo CD does: the status part to `/status`, the rest to the
/// main resource, both as JSON merge patches.
fn run_action(env: &Env, action: ArgoAction) {
    let ro = rollout(env, "web");
    let patches = argocd_action_patches(action, &ro, chrono::Utc::now());
    assert!(!patches.is_empty(), "{action:?} has something to do");
    for (target, patch) in patches {
        let patch = patch.to_string();
        let mut args = vec!["patch", "rollout", "web", "--type=merge", "-p", &patch];
        if target == PatchTarget::Status {
            args.push("--subresource=status");
        }
        env.kubectl_ok(&args);
    }
}

/// Observe the Rollout until Argo CD's verdict is `want` (with a message satisfying `msg`),
/// checking the health contract at every observation on the way:
/// - never Healthy unless the controller observed the current generation, the stable
///   ReplicaSet is the current one and every desired replica is available;
/// - Suspended exactly when the phase is Paused; Degraded exactly when Degraded.
fn watch_until(env: &Env, want: ArgoHealth, msg: impl Fn(&str) -> bool) -> Value {
    let mut last = Value::Null;
    let deadline = std::time::Instant::now() + T;
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for Argo CD health {want:?}; last verdict {:?} on status {}\n{}",
            argocd_rollout_health(&last),
            last["status"],
            env.logs()
        );
        let ro = rollout(env, "web");
        last = ro.clone();
        let verdict = argocd_rollout_health(&ro);
        let s = &ro["status"];
        if verdict.status == ArgoHealth::Healthy {
            assert!(generation_observed(&ro), "Healthy on a stale status: {ro}");
            assert_eq!(
                s["stableRS"], s["currentPodHash"],
                "Healthy mid-update: {s}"
            );
            assert_eq!(
                s["availableReplicas"], ro["spec"]["replicas"],
                "Healthy while pods are missing: {s}"
            );
        }
        if generation_observed(&ro) {
            if verdict.status == ArgoHealth::Suspended {
                // Something a person (or Argo CD's resume) can clear.
                let paused = ro["spec"]["paused"] == true
                    || s["pauseConditions"]
                        .as_array()
                        .is_some_and(|p| !p.is_empty());
                assert!(paused, "Suspended without a pause to resume: {s}");
            }
            if verdict.status == ArgoHealth::Degraded {
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
        } else {
            assert_eq!(verdict.status, ArgoHealth::Progressing);
            assert_eq!(verdict.message, GENERATION_NOT_OBSERVED);
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

#[test]
fn argocd_health_at_every_stage_new_generation_paused_aborted_retried_healthy() {
    require_kubectl!();
    let mut env = Env::start("argocd-health");

    // A new generation the controller has not seen: Progressing, whatever the old phase says.
    env.controller.take().expect("controller running").kill();
    env.apply(&rollout_yaml("web", Some(4), "nginx:1.25", STEPS));
    let ro = rollout(&env, "web");
    let verdict = argocd_rollout_health(&ro);
    assert_eq!(
        (verdict.status, verdict.message.as_str()),
        (ArgoHealth::Progressing, GENERATION_NOT_OBSERVED),
        "no status yet"
    );
    env.start_controller(&[]);
    let ro = watch_until(&env, ArgoHealth::Healthy, any);
    let stable = ro["status"]["stableRS"].as_str().unwrap().to_string();

    // Stop the controller again so the unobserved generation is observable for sure.
    env.controller.take().unwrap().kill();
    set_image(&env, "web", "nginx:1.26");
    let ro = rollout(&env, "web");
    assert_eq!(
        ro["status"]["phase"], "Healthy",
        "the stale phase is still there"
    );
    let verdict = argocd_rollout_health(&ro);
    assert_eq!(verdict.status, ArgoHealth::Progressing);
    assert_eq!(verdict.message, GENERATION_NOT_OBSERVED);
    env.start_controller(&[]);

    // Paused at the first pause step: Suspended with the pause reason.
    let ro = watch_until(&env, ArgoHealth::Suspended, |m| m == "CanaryPauseStep");
    let canary = ro["status"]["currentPodHash"].as_str().unwrap().to_string();

    // Argo CD's abort action: Degraded with the abort message; the stable is restored.
    run_action(&env, ArgoAction::Abort);
    watch_until(&env, ArgoHealth::Degraded, |m| {
        m.starts_with("RolloutAborted: Rollout aborted update to revision 2")
    });
    env.wait_for("canary drained, stable full", T, |env| {
        (rs_of(env, &canary).0 == 0 && rs_of(env, &stable) == (4, 4)).then_some(())
    });

    // retry: back to the first pause.
    run_action(&env, ArgoAction::Retry);
    let ro = watch_until(&env, ArgoHealth::Suspended, |m| m == "CanaryPauseStep");
    assert!(
        ro["status"]["abort"].is_null(),
        "retry removed the abort flag"
    );

    // resume: past the pause, through the timed pause, to Healthy.
    run_action(&env, ArgoAction::Resume);
    let ro = watch_until(&env, ArgoHealth::Healthy, any);
    assert_eq!(ro["status"]["stableRS"], canary.as_str());
    assert_eq!(ro["status"]["currentStepIndex"], 4);
}

#[test]
fn argocd_actions_pause_resume_promote_full_and_restart_have_their_documented_effect() {
    require_kubectl!();
    let env = Env::start("argocd-actions");
    env.apply(&rollout_yaml("web", Some(3), "nginx:1.25", STEPS));
    let ro = watch_until(&env, ArgoHealth::Healthy, any);
    let stable = ro["status"]["stableRS"].as_str().unwrap().to_string();

    // pause: spec.paused → Suspended "manually paused".
    run_action(&env, ArgoAction::Pause);
    let ro = watch_until(&env, ArgoHealth::Suspended, |m| m == "manually paused");
    assert_eq!(ro["spec"]["paused"], true);
    // An update while paused does not start scaling.
    set_image(&env, "web", "nginx:1.26");
    let ro = watch_until(&env, ArgoHealth::Suspended, |m| m == "manually paused");
    let canary = ro["status"]["currentPodHash"].as_str().unwrap().to_string();
    assert_ne!(canary, stable);
    assert_eq!(rs_of(&env, &stable), (3, 3));

    // resume clears spec.paused (and any pause condition): the canary reaches its first pause.
    run_action(&env, ArgoAction::Resume);
    let ro = watch_until(&env, ArgoHealth::Suspended, |m| m == "CanaryPauseStep");
    assert_eq!(ro["spec"]["paused"], false);

    // promote-full: every remaining step skipped.
    run_action(&env, ArgoAction::PromoteFull);
    let ro = watch_until(&env, ArgoHealth::Healthy, any);
    assert_eq!(ro["status"]["stableRS"], canary.as_str());
    env.wait_for("old stable drained", T, |env| {
        (rs_of(env, &stable).0 == 0).then_some(())
    });

    // restart: spec.restartAt; the controller restarts the pods and records restartedAt.
    // restartAt has second precision: wait until it is later than every pod's creation.
    env.wait_for("a second boundary after the newest pod", T, |env| {
        let pods = env.get_json(&["pods", "-l", "app=web"]);
        let newest = pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["metadata"]["creationTimestamp"].as_str())
            .filter_map(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .max()?;
        (chrono::Utc::now().timestamp() > newest.timestamp()).then_some(())
    });
    let before: Vec<String> = pod_names(&env);
    run_action(&env, ArgoAction::Restart);
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let ro = loop {
        let ro = rollout(&env, "web");
        let restarted = ro["status"]["restartedAt"].is_string()
            && ro["status"]["restartedAt"] == ro["spec"]["restartAt"];
        let now = pod_names(&env);
        if restarted && now.len() == 3 && now.iter().all(|p| !before.contains(p)) {
            break ro;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "restart not done: spec.restartAt {} status {} pods before {before:?} now {now:?}\n{}",
            ro["spec"]["restartAt"],
            ro["status"],
            env.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(ro["spec"]["restartAt"].is_string());
    watch_until(&env, ArgoHealth::Healthy, any);
}

#[test]
fn argocd_sees_degraded_for_invalid_spec_and_for_a_missed_progress_deadline() {
    require_kubectl!();
    let env = Env::start("argocd-degraded");
    env.apply(&rollout_yaml("web", Some(2), "nginx:1.25", STEPS));
    watch_until(&env, ArgoHealth::Healthy, any);

    // A step with two keys is InvalidSpec: Degraded, naming the field.
    let bad = "        - setWeight: 25\n          pause: {}\n";
    env.apply(&rollout_yaml("web", Some(2), "nginx:1.25", bad));
    watch_until(&env, ArgoHealth::Degraded, |m| {
        m.starts_with("InvalidSpec: ") && m.contains("steps[0]")
    });

    // Fixed, then an update whose pods never become ready, with a short progress deadline.
    env.apply(&rollout_yaml("web", Some(2), "nginx:1.25", STEPS));
    watch_until(&env, ArgoHealth::Healthy, any);
    let patch = r#"{"spec":{"progressDeadlineSeconds":3,"template":{"spec":{"containers":[{"name":"app","image":"nginx:never-ready"}]}}}}"#;
    env.kubectl_ok(&["patch", "rollout", "web", "--type=merge", "-p", patch]);
    watch_until(&env, ArgoHealth::Degraded, |m| {
        m.starts_with("ProgressDeadlineExceeded: ")
    });
}

fn pod_names(env: &Env) -> Vec<String> {
    let pods = env.get_json(&["pods", "-l", "app=web"]);
    pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

/// Facts docs/flux.md relies on: `kubectl wait` reads `status.observedGeneration` as an
/// integer, so upstream's string form makes it skip the generation check and accept a stale
/// condition; waiting on the observed generation first (jsonpath, string compare) closes the gap.
#[test]
fn kubectl_wait_on_ready_or_the_generation_is_reliable_but_on_upstream_conditions_it_is_not() {
    require_kubectl!();
    let mut env = Env::start("kubectl-wait");
    env.apply(&rollout_yaml("web", Some(2), "nginx:1.25", STEPS));
    watch_until(&env, ArgoHealth::Healthy, any);
    env.kubectl_ok(&[
        "wait",
        "--for=condition=Available",
        "--timeout=10s",
        "rollout/web",
    ]);

    env.controller.take().unwrap().kill();
    set_image(&env, "web", "nginx:1.26");
    let ro = rollout(&env, "web");
    assert!(!generation_observed(&ro));
    // Stale, yet accepted: the condition is from the previous generation.
    for condition in ["--for=condition=Available", "--for=condition=Healthy"] {
        env.kubectl_ok(&["wait", condition, "--timeout=5s", "rollout/web"]);
    }
    env.kubectl_ok(&[
        "wait",
        "--for=jsonpath={.status.phase}=Healthy",
        "--timeout=5s",
        "rollout/web",
    ]);
    // Sluice's Ready condition carries the generation it describes (an integer), so
    // `kubectl wait --for=condition=Ready` is not fooled by the stale one.
    let ready = ro["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .expect("a Ready condition");
    assert_eq!(ready["status"], "True");
    assert_eq!(
        ready["observedGeneration"],
        ro["metadata"]["generation"].as_i64().unwrap() - 1
    );
    let out = env.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "--timeout=2s",
        "rollout/web",
    ]);
    assert!(
        !out.status.success(),
        "a Ready condition of the previous generation satisfied the wait"
    );
    // Waiting for the generation itself does block while the controller is away...
    let generation = ro["metadata"]["generation"].to_string();
    let for_generation = format!("--for=jsonpath={{.status.observedGeneration}}={generation}");
    let out = env.kubectl(&["wait", &for_generation, "--timeout=2s", "rollout/web"]);
    assert!(
        !out.status.success(),
        "the new generation is not observed yet"
    );
    // ...and returns once it is observed, after which the phase is about this generation.
    env.start_controller(&[]);
    env.kubectl_ok(&["wait", &for_generation, "--timeout=30s", "rollout/web"]);
    env.kubectl_ok(&[
        "wait",
        "--for=jsonpath={.status.phase}=Paused",
        "--timeout=30s",
        "rollout/web",
    ]);
    // Paused at a step: Reconciling, not Ready; a promote finishes it and Ready holds.
    env.kubectl_ok(&[
        "wait",
        "--for=condition=Reconciling",
        "--timeout=10s",
        "rollout/web",
    ]);
    env.kubectl_ok(&[
        "wait",
        "--for=condition=Ready=False",
        "--timeout=10s",
        "rollout/web",
    ]);
    env.patch_rollout_status("web", r#"{"status":{"promoteFull":true}}"#);
    env.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "--timeout=60s",
        "rollout/web",
    ]);
    let ro = rollout(&env, "web");
    assert_eq!(ro["status"]["phase"], "Healthy");
    assert!(generation_observed(&ro));
}
