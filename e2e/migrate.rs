//! `sluice migrate` against a live cluster (issue 6, part 2): read a Deployment from the
//! cluster or stdin, apply the Rollout it prints, and watch it take over.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::argocd_oracle::{ArgoHealth, argocd_rollout_health};
use serde_json::Value;

use crate::harness::{Env, sluice_bin};
use crate::require_kubectl;
use crate::scale::{T, rs_of, wait_phase};

const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
  annotations:
    team.example.com/owner: shop
spec:
  replicas: 4
  selector:
    matchLabels: {app: web}
  strategy:
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: nginx:1.25
"#;

/// Run `sluice migrate ARGS` with `stdin` fed in.
fn migrate(env: &Env, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(sluice_bin())
        .arg("migrate")
        .args(args)
        .arg("--kubeconfig")
        .arg(&env.kubeconfig)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sluice migrate");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().expect("sluice migrate output")
}

fn stdout_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "sluice migrate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn deployment_ready(env: &Env, replicas: i64) {
    env.wait_for(&format!("deployment web {replicas} ready"), T, |env| {
        let d = env.get_json(&["deployment", "web"]);
        (d["status"]["readyReplicas"] == replicas).then_some(())
    });
}

#[test]
fn migrate_from_cluster_in_template_mode_yields_a_rollout_that_becomes_healthy() {
    require_kubectl!();
    let env = Env::start("migrate-template");
    env.apply(DEPLOYMENT);
    deployment_ready(&env, 4);

    let target = format!("{}/web", env.namespace);
    let yaml = stdout_ok(&migrate(
        &env,
        &["--from-cluster", &target, "--steps", "25,pause,100"],
        "",
    ));
    // What a live object carries that the Rollout must not.
    for dropped in [
        "#   status",
        "#   metadata.uid",
        "#   metadata.resourceVersion",
    ] {
        assert!(yaml.contains(dropped), "{dropped} listed:\n{yaml}");
    }
    assert!(
        !yaml.contains("deployment.kubernetes.io/revision:"),
        "{yaml}"
    );

    env.apply(&yaml);
    let ro = wait_phase(&env, "web", "Healthy");
    assert_eq!(ro["status"]["availableReplicas"], 4);
    assert_eq!(
        ro["metadata"]["annotations"]["team.example.com/owner"],
        "shop"
    );
    assert_eq!(ro["spec"]["strategy"]["canary"]["maxSurge"], 1);
    assert_eq!(ro["spec"]["strategy"]["canary"]["maxUnavailable"], 0);
    let stable = ro["status"]["stableRS"].as_str().unwrap().to_string();
    assert_eq!(rs_of(&env, &stable), (4, 4));

    // The Rollout works like any other: an update stops at the migrated first step.
    let patch =
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.26"}]}}}}"#;
    env.kubectl_ok(&["patch", "rollout", "web", "--type=merge", "-p", patch]);
    let ro = wait_phase(&env, "web", "Paused");
    assert_eq!(ro["status"]["currentStepIndex"], 1);
    // Template mode leaves the Deployment alone; deleting it is the user's last step.
    let d = env.get_json(&["deployment", "web"]);
    assert_eq!(d["spec"]["replicas"], 4);
}

#[test]
fn migrate_reads_stdin_and_its_workload_ref_output_is_accepted_by_the_api_server() {
    require_kubectl!();
    let env = Env::start("migrate-ref");
    env.apply(DEPLOYMENT);
    let yaml = stdout_ok(&migrate(
        &env,
        &["-f", "-", "--mode", "workload-ref", "--scale-down", "never"],
        DEPLOYMENT,
    ));
    assert!(yaml.contains("scaleDown: never"), "{yaml}");
    let file = env.dir.path().join("ref.yaml");
    std::fs::write(&file, &yaml).unwrap();
    // The CRD schema accepts what migrate prints (the scenarios below apply it for real).
    let out = env.kubectl_ok(&["apply", "--dry-run=server", "-f", file.to_str().unwrap()]);
    assert!(out.contains("rollout.argoproj.io/web"), "{out}");
    assert!(
        env.kubectl(&["get", "rollout", "web"]).status.code() != Some(0),
        "a server-side dry run stores nothing"
    );
}

#[test]
fn migrate_errors_are_one_line_and_non_zero() {
    require_kubectl!();
    let env = Env::cluster_only("migrate-errors");
    let service = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n";
    let input = format!("{DEPLOYMENT}---\n{service}");
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (
            vec!["-f", "-"],
            input.as_str(),
            "document 1 is a Service (v1)",
        ),
        (
            vec!["-f", "-", "--steps", "20,150"],
            DEPLOYMENT,
            "--steps: bad step \"150\"",
        ),
        (
            vec!["-f", "-", "--scale-down", "never"],
            DEPLOYMENT,
            "--scale-down only applies to --mode workload-ref",
        ),
        (
            vec!["--from-cluster", "nowhere/web"],
            "",
            "deployment \"web\" not found in namespace nowhere",
        ),
        (
            vec!["--from-cluster", "web"],
            "",
            "--from-cluster takes NAMESPACE/NAME",
        ),
    ];
    for (args, stdin, want) in cases {
        let out = migrate(&env, &args, stdin);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "nothing half-written on stdout");
    }
}

/// Ready pods labelled `app=web` (the Deployment's and the Rollout's alike), not being
/// deleted, as `kubectl get pods` lists them.
fn ready_web_pods(env: &Env) -> i64 {
    let pods = env.get_json(&["pods", "-l", "app=web"]);
    let ready = |p: &&Value| {
        p["metadata"]["deletionTimestamp"].is_null()
            && p["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
    };
    pods["items"]
        .as_array()
        .map_or(0, |items| items.iter().filter(ready).count() as i64)
}

fn deployment_scale(env: &Env) -> (i64, i64) {
    let d = env.get_json(&["deployment", "web"]);
    (
        d["spec"]["replicas"].as_i64().unwrap_or(-1),
        d["status"]["replicas"].as_i64().unwrap_or(0),
    )
}

#[test]
fn workload_ref_progressive_migration_keeps_four_ready_pods_and_holds_the_deployment_at_zero() {
    require_kubectl!();
    let env = Env::start("migrate-progressive");
    env.apply(DEPLOYMENT);
    deployment_ready(&env, 4);

    let target = format!("{}/web", env.namespace);
    let yaml = stdout_ok(&migrate(
        &env,
        &[
            "--from-cluster",
            &target,
            "--mode",
            "workload-ref",
            "--scale-down",
            "progressively",
            "--steps",
            "25,pause,100",
        ],
        "",
    ));
    assert!(yaml.contains("scaleDown: progressively"), "{yaml}");

    // Watch the ready pods across both while the Rollout takes over, with the real
    // kubectl, from before the Rollout exists until the Deployment has no pods left.
    let done = AtomicBool::new(false);
    let (observations, lowest) = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let mut seen = Vec::new();
            let deadline = Instant::now() + T * 2;
            while !done.load(Ordering::SeqCst) && Instant::now() < deadline {
                seen.push(ready_web_pods(&env));
            }
            seen
        });
        env.apply(&yaml);
        wait_phase(&env, "web", "Healthy");
        env.wait_for("the Deployment at zero with no pods", T, |env| {
            (deployment_scale(env) == (0, 0)).then_some(())
        });
        done.store(true, Ordering::SeqCst);
        let seen = watcher.join().expect("observer thread");
        let lowest = seen.iter().copied().min().unwrap_or(0);
        (seen, lowest)
    });
    assert!(observations.len() >= 3, "observed {observations:?}");
    assert!(
        lowest >= 4,
        "ready pods dropped to {lowest} during the migration: {observations:?}"
    );
    let ro = wait_phase(&env, "web", "Healthy");
    assert_eq!(ro["status"]["availableReplicas"], 4);
    let generation = env.get_json(&["deployment", "web"])["metadata"]["generation"].to_string();
    assert_eq!(
        ro["metadata"]["annotations"]["rollout.argoproj.io/workload-generation"],
        generation.as_str()
    );
    assert_eq!(
        ro["status"]["workloadObservedGeneration"],
        generation.as_str()
    );
    assert!(
        ro["spec"]["template"].is_null(),
        "the template stays in the Deployment"
    );
    assert_eq!(argocd_rollout_health(&ro).status, ArgoHealth::Healthy);

    // Something scales the Deployment back up: it is held at zero again.
    env.kubectl_ok(&["scale", "deployment", "web", "--replicas=3"]);
    env.wait_for("the Deployment back at zero", T, |env| {
        let d = env.get_json(&["deployment", "web"]);
        let generation = d["metadata"]["generation"].as_i64().unwrap_or(0);
        let observed = d["status"]["observedGeneration"].as_i64().unwrap_or(0);
        (deployment_scale(env) == (0, 0) && observed == generation && generation > 2).then_some(())
    });
    assert_eq!(
        wait_phase(&env, "web", "Healthy")["status"]["availableReplicas"],
        4
    );

    // Editing the Deployment's pod template starts a canary on the Rollout.
    let stable = ro["status"]["stableRS"].as_str().unwrap().to_string();
    env.kubectl_ok(&["set", "image", "deployment/web", "web=nginx:1.26"]);
    let ro = wait_phase(&env, "web", "Paused");
    assert_eq!(ro["status"]["currentStepIndex"], 1);
    assert_eq!(ro["status"]["stableRS"], stable.as_str());
    let canary = ro["status"]["currentPodHash"].as_str().unwrap().to_string();
    assert_ne!(canary, stable);
    assert_eq!(rs_of(&env, &canary).0, 1, "25% of 4");
    assert_eq!(deployment_scale(&env).0, 0);
    let generation = env.get_json(&["deployment", "web"])["metadata"]["generation"].to_string();
    assert_eq!(
        ro["status"]["workloadObservedGeneration"],
        generation.as_str()
    );
    // Argo CD's health check compares the workload-generation annotation with it too.
    assert_eq!(argocd_rollout_health(&ro).status, ArgoHealth::Suspended);

    // Promote: the new template becomes stable; the Deployment stays at zero.
    env.patch_rollout_status("web", r#"{"status":{"pauseConditions":null}}"#);
    let ro = env.wait_for("the canary promoted", T, |env| {
        let ro = env.get_json(&["rollout", "web"]);
        (ro["status"]["phase"] == "Healthy" && ro["status"]["stableRS"] == canary.as_str())
            .then_some(ro)
    });
    assert_eq!(ro["status"]["availableReplicas"], 4);
    assert_eq!(deployment_scale(&env).0, 0);

    // Deleting the Rollout never deletes the Deployment.
    env.kubectl_ok(&["delete", "rollout", "web", "--wait=true"]);
    let d = env.get_json(&["deployment", "web"]);
    assert!(d["metadata"]["deletionTimestamp"].is_null(), "{d}");
}

#[test]
fn workload_ref_to_a_missing_deployment_is_invalid_until_it_appears() {
    require_kubectl!();
    let env = Env::start("migrate-missing");
    let rollout = r#"apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: web
spec:
  replicas: 2
  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: web, scaleDown: onsuccess}
  strategy:
    canary:
      steps: [{setWeight: 50}, {pause: {}}]
"#;
    env.apply(rollout);
    let ro = wait_phase(&env, "web", "Degraded");
    let message = ro["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("spec.workloadRef: Deployment \"web\" not found"),
        "{message}"
    );
    assert!(
        env.get_json(&["replicasets"])["items"]
            .as_array()
            .is_some_and(Vec::is_empty),
        "nothing created while invalid"
    );

    // A Deployment whose selector does not match its template cannot be applied to a
    // real API server, so the other bad case is a scaleDown the kind cannot have.
    let pod_template = r#"apiVersion: v1
kind: PodTemplate
metadata:
  name: web-template
template:
  metadata:
    labels: {app: web}
  spec:
    containers: [{name: web, image: nginx:1.25}]
"#;
    env.apply(pod_template);
    env.kubectl_ok(&[
        "patch",
        "rollout",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"workloadRef":{"apiVersion":"v1","kind":"PodTemplate","name":"web-template"}}}"#,
    ]);
    let ro = wait_phase(&env, "web", "Degraded");
    let message = ro["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("spec.workloadRef.scaleDown: only a Deployment can be scaled down"),
        "{message}"
    );

    // The Deployment appears: the watch on Deployments wakes the Rollout, which takes
    // over once it has a valid reference, then scales the Deployment down on success.
    env.kubectl_ok(&[
        "patch",
        "rollout",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"workloadRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"web"}}}"#,
    ]);
    let ro = wait_phase(&env, "web", "Degraded");
    assert!(
        ro["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not found")
    );
    env.apply(DEPLOYMENT);
    let ro = env.wait_for("the Rollout healthy from the Deployment", T, |env| {
        let ro = env.get_json(&["rollout", "web"]);
        (ro["status"]["phase"] == "Healthy" && ro["status"]["availableReplicas"] == 2).then_some(ro)
    });
    assert!(
        ro["status"]["selector"]
            .as_str()
            .unwrap_or_default()
            .contains("app=web")
    );
    // The merge patches kept `scaleDown: onsuccess`: with the Rollout healthy, the
    // Deployment goes to zero (and the Rollout keeps its two pods).
    env.wait_for("the Deployment scaled down on success", T, |env| {
        (deployment_scale(env) == (0, 0)).then_some(())
    });
    assert_eq!(
        wait_phase(&env, "web", "Healthy")["status"]["availableReplicas"],
        2
    );
}
