//! The embedded API server refuses what kube-apiserver refuses, with the same code, reason and
//! message: one row per rule, each a ReplicaSet (or other kind) that breaks it, sent over HTTP.

use serde_json::{Value, json};
use sluice_cluster::{ClusterConfig, EmbeddedCluster};

async fn start() -> EmbeddedCluster {
    EmbeddedCluster::start(ClusterConfig::default())
        .await
        .expect("cluster starts")
}

async fn send(
    c: &EmbeddedCluster,
    method: reqwest::Method,
    path: &str,
    ct: &str,
    body: &Value,
) -> (u16, Value) {
    let r = reqwest::Client::new()
        .request(method, format!("http://{}{path}", c.addr()))
        .header("content-type", ct)
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    let code = r.status().as_u16();
    (code, r.json().await.expect("a Status body"))
}

async fn post(c: &EmbeddedCluster, path: &str, body: &Value) -> (u16, Value) {
    send(c, reqwest::Method::POST, path, "application/json", body).await
}

const RS: &str = "/apis/apps/v1/namespaces/default/replicasets";

/// A ReplicaSet the apiserver accepts.
fn replica_set() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{
                        "name": "web", "image": "nginx:1.25",
                        "ports": [{"name": "http", "containerPort": 80}],
                        "resources": {"requests": {"memory": "64Mi"}, "limits": {"memory": "128Mi"}},
                        "readinessProbe": {"httpGet": {"port": "http"}},
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}]
                    }],
                    "volumes": [{"name": "data", "emptyDir": {}}]
                }
            }
        }
    })
}

fn container(rs: &mut Value) -> &mut Value {
    &mut rs["spec"]["template"]["spec"]["containers"][0]
}

type Mutation = fn(&mut Value);

/// (rule, how a ReplicaSet breaks it, the apiserver's 422 message).
const RULES: &[(&str, Mutation, &str)] = &[
    (
        "container names are DNS-1123 labels",
        |rs| container(rs)["name"] = json!("Web"),
        "ReplicaSet.apps \"web\" is invalid: spec.template.spec.containers[0].name: Invalid value: \"Web\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
    ),
    (
        "container names are unique",
        |rs| {
            let c = container(rs).clone();
            rs["spec"]["template"]["spec"]["containers"]
                .as_array_mut()
                .unwrap()
                .push(c);
        },
        "ReplicaSet.apps \"web\" is invalid: spec.template.spec.containers[1].name: Duplicate value: \"web\"",
    ),
    (
        "a container needs an image",
        |rs| container(rs)["image"] = json!(""),
        "ReplicaSet.apps \"web\" is invalid: spec.template.spec.containers[0].image: Required value",
    ),
    (
        "a pod template needs a container",
        |rs| rs["spec"]["template"]["spec"]["containers"] = json!([]),
        "ReplicaSet.apps \"web\" is invalid: spec.template.spec.containers: Required value",
    ),
    (
        "container ports are in range",
        |rs| container(rs)["ports"][0]["containerPort"] = json!(70000),
        "ReplicaSet.apps \"web\" is invalid: spec.template.spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
    ),
    (
        "port names are unique in a container",
        |rs| {
            container(rs)["ports"] = json!([{"name": "http", "containerPort": 80}, {"name": "http", "containerPort": 8080}])
        },
        "ReplicaSet.apps \"web\" is invalid: spec.template.spec.containers[0].ports[1].name: Duplicate value: \"http\"",
    ),
    (
        "a port's protocol is TCP, UDP or SCTP",
        |rs| container(rs)["ports"][0]["protocol"] = json!("HTTP"),
        "ReplicaSet.apps \"web\" is invalid: spec.template.spec.containers[0].ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
    ),
    (
        "quantities are not negative",
        |rs| container(rs)["resources"]["requests"]["memory"] = json!("-64Mi"),
        "ReplicaSet.apps \"web\" is invalid: spec.template.spec.containers[0].resources.requests[memory]: Invalid value: \"-64Mi\": must be greater than or equal to 0",
    ),
    (
        "a request is at most its limit",
        |rs| container(rs)["resources"]["requests"]["memory"] = json!("1Gi"),
        "ReplicaSet.apps \"web\" is invalid: spec.template.spec.containers[0].resources.requests: Invalid value: \"1Gi\": must be less than or equal to memory limit of 128Mi",
    ),
    (
        "resource names are standard for containers",
        |rs| container(rs)["resources"]["limits"]["pods"] = json!("1"),
        "ReplicaSet.apps \"web\" is invalid: spec.template.spec.containers[0].resources.limits[pods]: Invalid value: pods: must be a standard resource for containers",
    ),
    (
        "a probe has an action",
        |rs| container(rs)["readinessProbe"] = json!({"initialDelaySeconds": 1}),
        "ReplicaSet.apps \"web\" is invalid: spec.template.spec.containers[0].readinessProbe: Required value: must specify a handler type",
    ),
    (
        "a probe has one action",
        |rs| container(rs)["readinessProbe"]["exec"] = json!({"command": ["true"]}),
        "ReplicaSet.apps \"web\" is invalid: spec.template.spec.containers[0].readinessProbe.httpGet: Forbidden: may not specify more than 1 handler type",
    ),
    (
        "a named probe port is an IANA service name",
        |rs| container(rs)["readinessProbe"]["httpGet"]["port"] = json!("Http_1"),
        "ReplicaSet.apps \"web\" is invalid: spec.template.spec.containers[0].readinessProbe.httpGet.port: Invalid value: \"Http_1\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
    ),
    (
        "a liveness probe succeeds once",
        |rs| {
            container(rs)["livenessProbe"] =
                json!({"tcpSocket": {"port": 80}, "successThreshold": 3})
        },
        "ReplicaSet.apps \"web\" is invalid: spec.template.spec.containers[0].livenessProbe.successThreshold: Invalid value: 3: must be 1",
    ),
    (
        "a volume mount names a volume",
        |rs| rs["spec"]["template"]["spec"]["volumes"] = json!([]),
        "ReplicaSet.apps \"web\" is invalid: spec.template.spec.containers[0].volumeMounts[0].name: Not found: \"data\"",
    ),
    (
        "a volume has exactly one source",
        |rs| rs["spec"]["template"]["spec"]["volumes"][0]["configMap"] = json!({"name": "cfg"}),
        "ReplicaSet.apps \"web\" is invalid: spec.template.spec.volumes[0].configMap: Forbidden: may not specify more than 1 volume type",
    ),
    (
        "environment variable names have no '='",
        |rs| container(rs)["env"] = json!([{"name": "A=B", "value": "1"}]),
        "ReplicaSet.apps \"web\" is invalid: spec.template.spec.containers[0].env[0].name: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='",
    ),
    (
        "a ReplicaSet's pods restart Always",
        |rs| rs["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure"),
        "ReplicaSet.apps \"web\" is invalid: spec.template.spec.restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\"",
    ),
    (
        "the selector matches the template's labels",
        |rs| rs["spec"]["selector"]["matchLabels"]["app"] = json!("api"),
        "ReplicaSet.apps \"web\" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
    ),
    (
        "replicas are not negative",
        |rs| rs["spec"]["replicas"] = json!(-1),
        "ReplicaSet.apps \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0",
    ),
    (
        "template labels are valid labels",
        |rs| {
            rs["spec"]["template"]["metadata"]["labels"]["tier"] = json!("front end");
        },
        "ReplicaSet.apps \"web\" is invalid: spec.template.labels: Invalid value: \"front end\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
    ),
];

#[tokio::test]
async fn every_pod_template_rule_answers_422_with_the_apiservers_message() {
    let c = start().await;
    let (code, _) = post(&c, RS, &replica_set()).await;
    assert_eq!(code, 201, "the base ReplicaSet is valid");
    for (rule, break_it, want) in RULES {
        let mut rs = replica_set();
        rs["metadata"]["name"] = json!("web");
        break_it(&mut rs);
        // A name not yet taken, so the answer is about the spec; the message names "web".
        let (code, status) =
            post(&c, "/apis/apps/v1/namespaces/kube-system/replicasets", &rs).await;
        assert_eq!(code, 422, "{rule}: {status}");
        assert_eq!(status["reason"], "Invalid", "{rule}");
        let message = status["message"].as_str().unwrap();
        // Alone, or the first of several (then the apiserver brackets the list).
        let (object, first) = want.split_once(" is invalid: ").unwrap();
        assert!(
            message == *want || message.starts_with(&format!("{object} is invalid: [{first}, ")),
            "{rule}:\n  want {want}\n  got  {message}"
        );
        let cause = &status["details"]["causes"][0];
        assert!(
            want.contains(cause["field"].as_str().unwrap()),
            "{rule}: the first cause names the field: {cause}"
        );
    }
    assert!(RULES.len() >= 15);
}

#[tokio::test]
async fn a_malformed_quantity_is_400_on_create_and_422_on_patch() {
    let c = start().await;
    let mut rs = replica_set();
    container(&mut rs)["resources"]["requests"]["memory"] = json!("invalid");
    let (code, status) = post(&c, RS, &rs).await;
    assert_eq!(code, 400, "{status}");
    assert_eq!(status["reason"], "BadRequest");
    assert_eq!(
        status["message"],
        "ReplicaSet in version \"v1\" cannot be handled as a ReplicaSet: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    );

    let (code, _) = post(&c, RS, &replica_set()).await;
    assert_eq!(code, 201);
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.25",
        "resources": {"limits": {"cpu": "2 cores"}}}]}}}});
    let (code, status) = send(
        &c,
        reqwest::Method::PATCH,
        &format!("{RS}/web"),
        "application/merge-patch+json",
        &patch,
    )
    .await;
    assert_eq!(code, 422, "{status}");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.starts_with(" \"\" is invalid: patch: Invalid value: \"{"),
        "{message}"
    );
    assert!(
        message.ends_with("\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
        "{message}"
    );
    assert_eq!(status["details"]["causes"][0]["field"], "patch");
}

#[tokio::test]
async fn a_replica_sets_selector_is_immutable() {
    let c = start().await;
    let (code, created) = post(&c, RS, &replica_set()).await;
    assert_eq!(code, 201);
    let mut changed = created.clone();
    changed["spec"]["selector"]["matchLabels"]["tier"] = json!("front");
    changed["spec"]["template"]["metadata"]["labels"]["tier"] = json!("front");
    let (code, status) = send(
        &c,
        reqwest::Method::PUT,
        &format!("{RS}/web"),
        "application/json",
        &changed,
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        status["message"],
        "ReplicaSet.apps \"web\" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\", \"tier\":\"front\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
    );
}

#[tokio::test]
async fn other_kinds_holding_pods_are_validated_too() {
    let c = start().await;
    let template = replica_set()["spec"]["template"].clone();
    let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
        "spec": {"template": {"spec": template["spec"].clone()}}});
    let (code, status) = post(&c, "/apis/batch/v1/namespaces/default/jobs", &job).await;
    assert_eq!(code, 422);
    assert_eq!(
        status["message"],
        "Job.batch \"j\" is invalid: spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""
    );

    let mut pod_spec = template["spec"].clone();
    pod_spec["containers"][0]["ports"][0]["containerPort"] = json!(0);
    let pod =
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": pod_spec});
    let (code, status) = post(&c, "/api/v1/namespaces/default/pods", &pod).await;
    assert_eq!(code, 422);
    assert_eq!(
        status["message"],
        "Pod \"p\" is invalid: spec.containers[0].ports[0].containerPort: Required value"
    );

    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template,
                 "minReadySeconds": 30, "progressDeadlineSeconds": 30}});
    let (code, status) = post(&c, "/apis/apps/v1/namespaces/default/deployments", &deploy).await;
    assert_eq!(code, 422);
    assert_eq!(
        status["message"],
        "Deployment.apps \"d\" is invalid: spec.progressDeadlineSeconds: Invalid value: 30: must be greater than minReadySeconds"
    );

    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}, {"port": 81}]}});
    let (code, status) = post(&c, "/api/v1/namespaces/default/services", &svc).await;
    assert_eq!(code, 422);
    assert_eq!(
        status["message"],
        "Service \"s\" is invalid: [spec.ports[0].name: Required value, spec.ports[1].name: Required value]"
    );
}
