//! `sluice cluster --tls` (issue 22): the real kubectl, the controller and the bench over
//! HTTPS with the cluster's CA and its client-certificate user.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

use crate::harness::{Env, EnvOptions, free_port, sluice_bin};
use crate::require_kubectl;

const T: Duration = Duration::from_secs(60);
const TLS: EnvOptions = EnvOptions { tls: true };

const ROLLOUT: &str = r#"apiVersion: argoproj.io/v1alpha1
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
    spec:
      containers:
        - name: web
          image: IMAGE
  strategy:
    canary:
      steps:
        - setWeight: 50
        - pause: {}
"#;

/// The base64 `field` of the kubeconfig, decoded.
fn kubeconfig_pem(kubeconfig: &str, field: &str) -> String {
    let line = kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{field}: ")))
        .unwrap_or_else(|| panic!("the kubeconfig has no {field}"));
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(line)
            .unwrap(),
    )
    .unwrap()
}

fn server(kubeconfig: &str) -> String {
    kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .expect("the kubeconfig names its server")
        .to_string()
}

#[test]
fn kubectl_works_over_tls_with_the_client_certificate_and_a_client_without_one_gets_401() {
    require_kubectl!();
    let mut env = Env::cluster_only_with("tls-kubectl", TLS);
    let kc = std::fs::read_to_string(&env.kubeconfig).unwrap();
    let url = server(&kc);
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let ca = kubeconfig_pem(&kc, "certificate-authority-data");
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(kubeconfig_pem(&kc, "client-certificate-data").contains("BEGIN CERTIFICATE"));
    assert!(kubeconfig_pem(&kc, "client-key-data").contains("PRIVATE KEY"));

    let ns = env.kubectl_ok(&["get", "ns", "-o", "name"]);
    assert!(ns.contains("namespace/kube-system"), "{ns}");
    env.install_crds();
    env.apply(&ROLLOUT.replace("IMAGE", "nginx:1.25"));
    let ro = env.get_json(&["rollout", "web"]);
    assert_eq!(ro["spec"]["replicas"], 2);

    // A client that trusts the CA but presents no certificate: 401 and the Status
    // kube-apiserver sends when anonymous authentication is off.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (code, body) = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
            .build()
            .unwrap();
        let resp = client
            .get(format!("{url}/api/v1/namespaces"))
            .send()
            .await
            .expect("the TLS handshake succeeds without a client certificate");
        let code = resp.status().as_u16();
        (code, resp.json::<Value>().await.unwrap())
    });
    assert_eq!(code, 401);
    assert_eq!(body["reason"], "Unauthorized");
    assert_eq!(body["code"], 401);

    // A client that does not trust the cluster's CA is refused at the handshake.
    let plain = runtime.block_on(async {
        reqwest::Client::new()
            .get(format!("{url}/version"))
            .send()
            .await
    });
    assert!(plain.is_err(), "an unknown CA must fail verification");
}

#[test]
fn a_canary_walks_its_steps_over_tls() {
    require_kubectl!();
    let env = Env::start_with("tls-canary", TLS);
    env.apply(&ROLLOUT.replace("IMAGE", "nginx:1.25"));
    let phase = |env: &Env| {
        let ro = env.get_json(&["rollout", "web"]);
        let observed = ro["status"]["observedGeneration"].as_str()
            == Some(&ro["metadata"]["generation"].to_string());
        observed.then(|| ro["status"]["phase"].as_str().unwrap_or("").to_string())
    };
    env.wait_for("Healthy", T, |env| {
        (phase(env).as_deref() == Some("Healthy")).then_some(())
    });
    env.kubectl_ok(&[
        "patch",
        "rollout",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.26"}]}}}}"#,
    ]);
    env.wait_for("Paused at the pause step", T, |env| {
        (phase(env).as_deref() == Some("Paused")).then_some(())
    });
    let ro = env.get_json(&["rollout", "web"]);
    assert_eq!(ro["status"]["currentStepIndex"], 1);
    env.patch_rollout_status("web", r#"{"status":{"pauseConditions":null}}"#);
    let ro = env.wait_for("Healthy on the new image", T, |env| {
        let ro = env.get_json(&["rollout", "web"]);
        (ro["status"]["phase"] == "Healthy"
            && ro["status"]["stableRS"] == ro["status"]["currentPodHash"]
            && ro["status"]["currentStepIndex"] == 2)
            .then_some(ro)
    });
    assert_eq!(ro["status"]["availableReplicas"], 2);
}

/// `sluice bench controller` with `args`, its stderr kept.
fn bench(args: &[&str], dir: &std::path::Path) -> Output {
    Command::new(sluice_bin())
        .args(["bench", "controller"])
        .args(args)
        .env("TMPDIR", dir)
        .stdin(Stdio::null())
        .output()
        .expect("running sluice bench")
}

fn namespace_exists(env: &Env, name: &str) -> bool {
    let out = env.kubectl(&["get", "namespace", name, "-o", "name"]);
    out.status.success()
}

#[test]
fn the_bench_runs_its_proxy_path_over_a_tls_cluster_and_leaves_nothing_behind() {
    require_kubectl!();
    let mut env = Env::cluster_only_with("tls-bench", TLS);
    env.install_crds();
    let kc = env.kubeconfig.to_str().unwrap().to_string();
    let json = env.dir.path().join("bench.json");
    let out = bench(
        &[
            "--kubeconfig",
            &kc,
            "--rollouts",
            "20",
            "--samples",
            "4",
            "--steady-seconds",
            "1",
            "--json",
            json.to_str().unwrap(),
        ],
        env.dir.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the bench failed: {stderr}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["params"]["cluster"], "kubeconfig");
    let rows = report["rows"].as_array().expect("rows");
    let row = |prefix: &str| {
        rows.iter()
            .find(|r| r["metric"].as_str().is_some_and(|n| n.starts_with(prefix)))
            .unwrap_or_else(|| panic!("no row {prefix}: {report}"))
    };
    // Every Rollout went through the whole update, through the proxy.
    assert!(
        row("whole update: all 20 Rollouts completed")["note"]
            .as_str()
            .unwrap()
            .contains("20/20 completed"),
        "{report}"
    );
    let writes = row("whole update: controller API writes per Rollout per setWeight step");
    assert!(
        writes["note"]
            .as_str()
            .unwrap()
            .contains("PATCH rollouts/status"),
        "the proxy counted the controller's requests: {writes}"
    );
    // The restarted controller's first pass covered the 20 Rollouts (its info line).
    let warm = row("warm start: all 20 Rollouts reconciled once after restart");
    assert!(
        warm["note"]
            .as_str()
            .unwrap()
            .contains("reconciled once\" (20 Rollouts,"),
        "{warm}"
    );
    // The namespace the bench created is gone (or going) with everything in it.
    env.wait_for("the bench's namespace deleted", T, |env| {
        let out = env.kubectl(&["get", "namespace", "sluice-bench", "-o", "json"]);
        let gone = !out.status.success()
            || serde_json::from_slice::<Value>(&out.stdout)
                .is_ok_and(|ns| ns["metadata"]["deletionTimestamp"].is_string());
        gone.then_some(())
    });
}

#[test]
fn the_bench_stops_at_once_on_an_unreachable_cluster_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("unreachable.kubeconfig");
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n",
            free_port()
        ),
    )
    .unwrap();
    let out = bench(&["--kubeconfig", kc.to_str().unwrap()], dir.path());
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("cannot reach the cluster at https://127.0.0.1:"),
        "{stderr}"
    );
}

#[test]
fn the_bench_stops_at_once_when_the_cluster_refuses_a_user_without_a_certificate() {
    require_kubectl!();
    let mut env = Env::cluster_only_with("tls-bench-anon", TLS);
    env.install_crds();
    // The same cluster and CA, but a user without the client certificate.
    let kc = std::fs::read_to_string(&env.kubeconfig).unwrap();
    let anonymous: String = kc
        .lines()
        .filter(|l| !l.contains("client-certificate-data") && !l.contains("client-key-data"))
        .map(|l| {
            if l == "  user:" {
                "  user: {}\n".to_string()
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let path = env.dir.path().join("anonymous.kubeconfig");
    std::fs::write(&path, anonymous).unwrap();
    let out = bench(&["--kubeconfig", path.to_str().unwrap()], env.dir.path());
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("does not accept the kubeconfig's credentials (401 Unauthorized)"),
        "{stderr}"
    );
    assert!(!namespace_exists(&env, "sluice-bench"));
}

#[test]
fn the_bench_refuses_a_cluster_without_the_crds_and_creates_nothing() {
    require_kubectl!();
    let env = Env::cluster_only_with("tls-bench-nocrds", TLS);
    let kc = env.kubeconfig.to_str().unwrap().to_string();
    let out = bench(&["--kubeconfig", &kc], env.dir.path());
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("does not serve rollouts, analysisruns")
            && errors[0].contains("install Sluice's CRDs first"),
        "{stderr}"
    );
    assert!(!namespace_exists(&env, "sluice-bench"));
    let crds = env.kubectl_ok(&["get", "crd", "-o", "name"]);
    assert!(
        !crds.contains("argoproj.io"),
        "the bench installed CRDs: {crds}"
    );
}
