//! `sluice migrate` against a live cluster (issue 6, part 2): read a Deployment from the
//! cluster or stdin, apply the Rollout it prints, and watch it take over.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

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
    // Schema validation only: workloadRef itself is not reconciled by this controller yet.
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
