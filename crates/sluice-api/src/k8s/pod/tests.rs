//! The pod-template rules, each stated by the template that breaks it and the apiserver's
//! message for it (as a ReplicaSet's template: the paths start at `spec.template`).

use proptest::prelude::*;
use serde_json::{Value, json};

use super::super::field::Path;
use super::super::workloads::replica_set_pod_template;
use super::undecodable_quantity;
use k8s_openapi::api::core::v1::PodTemplateSpec;

/// A template every rule accepts.
fn valid() -> Value {
    json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": {
            "containers": [{
                "name": "web",
                "image": "nginx:1.25",
                "ports": [{"name": "http", "containerPort": 80}],
                "env": [{"name": "MODE", "value": "canary"}],
                "resources": {
                    "requests": {"cpu": "100m", "memory": "64Mi"},
                    "limits": {"memory": "128Mi"}
                },
                "readinessProbe": {"httpGet": {"path": "/", "port": "http"}},
                "livenessProbe": {"tcpSocket": {"port": 80}},
                "volumeMounts": [{"name": "data", "mountPath": "/data"}]
            }],
            "volumes": [{"name": "data", "emptyDir": {}}]
        }
    })
}

fn errors_of(template: &Value) -> Vec<String> {
    let t: PodTemplateSpec = serde_json::from_value(template.clone()).expect("decodes");
    replica_set_pod_template(&t, &Path::new("spec.template"))
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn container(t: &mut Value) -> &mut Value {
    &mut t["spec"]["containers"][0]
}

#[test]
fn the_valid_template_is_valid_as_written_and_as_defaulted() {
    assert_eq!(errors_of(&valid()), Vec::<String>::new());
    let mut defaulted = valid();
    super::super::defaults::default_pod_spec(&mut defaulted["spec"]);
    assert_eq!(errors_of(&defaulted), Vec::<String>::new());
}

type Mutation = fn(&mut Value);

/// (the rule, how a template breaks it, the first error the apiserver reports).
const RULES: &[(&str, Mutation, &str)] = &[
    (
        "a container needs a name",
        |t| container(t)["name"] = json!(""),
        "spec.template.spec.containers[0].name: Required value",
    ),
    (
        "container names are DNS-1123 labels",
        |t| container(t)["name"] = json!("Web_1"),
        "spec.template.spec.containers[0].name: Invalid value: \"Web_1\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
    ),
    (
        "container names are unique",
        |t| {
            let c = container(t).clone();
            t["spec"]["containers"].as_array_mut().unwrap().push(c);
        },
        "spec.template.spec.containers[1].name: Duplicate value: \"web\"",
    ),
    (
        "a container needs an image",
        |t| {
            container(t).as_object_mut().unwrap().remove("image");
        },
        "spec.template.spec.containers[0].image: Required value",
    ),
    (
        "a pod needs a container",
        |t| t["spec"]["containers"] = json!([]),
        "spec.template.spec.containers: Required value",
    ),
    (
        "container ports are between 1 and 65535",
        |t| container(t)["ports"][0]["containerPort"] = json!(70000),
        "spec.template.spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
    ),
    (
        "a container port is required",
        |t| container(t)["ports"][0]["containerPort"] = json!(0),
        "spec.template.spec.containers[0].ports[0].containerPort: Required value",
    ),
    (
        "port names are IANA service names",
        |t| container(t)["ports"][0]["name"] = json!("HTTP"),
        "spec.template.spec.containers[0].ports[0].name: Invalid value: \"HTTP\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
    ),
    (
        "port names are unique in a container",
        |t| {
            container(t)["ports"] = json!([{"name": "http", "containerPort": 80}, {"name": "http", "containerPort": 81}])
        },
        "spec.template.spec.containers[0].ports[1].name: Duplicate value: \"http\"",
    ),
    (
        "a port's protocol is TCP, UDP or SCTP",
        |t| container(t)["ports"][0]["protocol"] = json!("HTTP"),
        "spec.template.spec.containers[0].ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
    ),
    (
        "a host port is used once per pod",
        |t| {
            container(t)["ports"] = json!([{"containerPort": 80, "hostPort": 8080}]);
            let mut other = container(t).clone();
            other["name"] = json!("sidecar");
            t["spec"]["containers"].as_array_mut().unwrap().push(other);
        },
        "spec.template.spec.containers[1].ports[0].hostPort: Duplicate value: \"TCP//8080\"",
    ),
    (
        "resource quantities are not negative",
        |t| container(t)["resources"]["requests"]["cpu"] = json!("-1"),
        "spec.template.spec.containers[0].resources.requests[cpu]: Invalid value: \"-1\": must be greater than or equal to 0",
    ),
    (
        "a request is at most its limit",
        |t| container(t)["resources"]["requests"]["memory"] = json!("0.25Gi"),
        "spec.template.spec.containers[0].resources.requests: Invalid value: \"256Mi\": must be less than or equal to memory limit of 128Mi",
    ),
    (
        "resource names are standard or domain-qualified",
        |t| container(t)["resources"]["limits"]["foo"] = json!("1"),
        "spec.template.spec.containers[0].resources.limits[foo]: Invalid value: foo: must be a standard resource type or fully qualified",
    ),
    (
        "extended resources need equal requests and limits",
        |t| container(t)["resources"]["requests"]["example.com/gpu"] = json!("1"),
        "spec.template.spec.containers[0].resources.limits: Required value: Limit must be set for non overcommitable resources",
    ),
    (
        "a probe has an action",
        |t| container(t)["readinessProbe"] = json!({"periodSeconds": 5}),
        "spec.template.spec.containers[0].readinessProbe: Required value: must specify a handler type",
    ),
    (
        "a probe has only one action",
        |t| container(t)["readinessProbe"]["tcpSocket"] = json!({"port": 80}),
        "spec.template.spec.containers[0].readinessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type",
    ),
    (
        "a liveness probe succeeds once",
        |t| container(t)["livenessProbe"]["successThreshold"] = json!(2),
        "spec.template.spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
    ),
    (
        "probe timings are not negative",
        |t| container(t)["readinessProbe"]["periodSeconds"] = json!(-5),
        "spec.template.spec.containers[0].readinessProbe.periodSeconds: Invalid value: -5: must be greater than or equal to 0",
    ),
    (
        "a probe's port is a port",
        |t| container(t)["livenessProbe"]["tcpSocket"]["port"] = json!(0),
        "spec.template.spec.containers[0].livenessProbe.tcpSocket.port: Invalid value: 0: must be between 1 and 65535, inclusive",
    ),
    (
        "a volume mount names a volume of the pod",
        |t| container(t)["volumeMounts"][0]["name"] = json!("cache"),
        "spec.template.spec.containers[0].volumeMounts[0].name: Not found: \"cache\"",
    ),
    (
        "mount paths are unique",
        |t| {
            container(t)["volumeMounts"] = json!([{"name": "data", "mountPath": "/data"}, {"name": "data", "mountPath": "/data"}])
        },
        "spec.template.spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/data\": must be unique",
    ),
    (
        "volume names are unique",
        |t| {
            t["spec"]["volumes"] =
                json!([{"name": "data", "emptyDir": {}}, {"name": "data", "emptyDir": {}}])
        },
        "spec.template.spec.volumes[1].name: Duplicate value: \"data\"",
    ),
    (
        "a volume has a source",
        |t| t["spec"]["volumes"][0] = json!({"name": "data"}),
        "spec.template.spec.volumes[0]: Required value: must specify a volume type",
    ),
    (
        "environment variable names are printable and without '='",
        |t| container(t)["env"][0]["name"] = json!("A=B"),
        "spec.template.spec.containers[0].env[0].name: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='",
    ),
    (
        "valueFrom names a source",
        |t| container(t)["env"] = json!([{"name": "X", "valueFrom": {}}]),
        "spec.template.spec.containers[0].env[0].valueFrom: Invalid value: \"\": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
    ),
    (
        "the pull policy is Always, IfNotPresent or Never",
        |t| container(t)["imagePullPolicy"] = json!("Sometimes"),
        "spec.template.spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\"",
    ),
    (
        "a ReplicaSet's pods restart Always",
        |t| t["spec"]["restartPolicy"] = json!("Never"),
        "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
    ),
    (
        "a restart policy is one Kubernetes knows",
        |t| t["spec"]["restartPolicy"] = json!("Sometimes"),
        "spec.template.spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
    ),
    (
        "a ReplicaSet's pods have no deadline",
        |t| t["spec"]["activeDeadlineSeconds"] = json!(60),
        "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in ReplicaSet is not Supported",
    ),
    (
        "the DNS policy is one Kubernetes knows",
        |t| t["spec"]["dnsPolicy"] = json!("Google"),
        "spec.template.spec.dnsPolicy: Unsupported value: \"Google\": supported values: \"ClusterFirstWithHostNet\", \"ClusterFirst\", \"Default\", \"None\"",
    ),
    (
        "template labels are valid labels",
        |t| t["metadata"]["labels"]["app"] = json!("web!"),
        "spec.template.labels: Invalid value: \"web!\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
    ),
    (
        "init containers without restartPolicy Always take no probes",
        |t| {
            let mut init = container(t).clone();
            init["name"] = json!("init");
            t["spec"]["initContainers"] = json!([init]);
        },
        "spec.template.spec.initContainers[0].livenessProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
    ),
    (
        "regular containers take no restartPolicy",
        |t| container(t)["restartPolicy"] = json!("Always"),
        "spec.template.spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers",
    ),
];

#[test]
fn each_rule_reports_the_apiservers_message() {
    assert!(RULES.len() >= 15);
    for (rule, break_it, want) in RULES {
        let mut t = valid();
        break_it(&mut t);
        let errs = errors_of(&t);
        assert_eq!(
            errs.first().map(String::as_str),
            Some(*want),
            "{rule}: all errors {errs:#?}"
        );
        // The defaulted template (what the apiserver validates) breaks the rule the same way.
        let mut defaulted = t.clone();
        super::super::defaults::default_pod_spec(&mut defaulted["spec"]);
        assert_eq!(errors_of(&defaulted), errs, "{rule}: defaulted");
    }
}

#[test]
fn an_unparsable_quantity_is_named_by_its_field() {
    let mut t = valid();
    container(&mut t)["resources"]["requests"]["memory"] = json!("invalid");
    let spec: PodTemplateSpec = serde_json::from_value(t).unwrap();
    let bad = undecodable_quantity(&spec.spec.unwrap(), &Path::new("spec.template.spec")).unwrap();
    assert_eq!(
        bad.field.json_path(),
        "spec.template.spec.containers[0].resources.requests.memory"
    );
    assert_eq!(
        bad.to_field_error().to_string(),
        "spec.template.spec.containers[0].resources.requests[memory]: Invalid value: \"invalid\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    );
    let mut ok = valid();
    container(&mut ok)["resources"]["limits"]["cpu"] = json!(1);
    let spec: PodTemplateSpec = serde_json::from_value(ok).unwrap();
    assert_eq!(
        undecodable_quantity(&spec.spec.unwrap(), &Path::new("spec")),
        None,
        "a JSON number is a quantity"
    );
}

proptest! {
    /// The planner validates templates as written, the embedded API server after defaulting:
    /// both must reach the same verdict on any template.
    #[test]
    fn defaulting_never_changes_the_verdict(
        policy in prop::sample::select(vec!["", "Always", "IfNotPresent", "Sometimes"]),
        protocol in prop::sample::select(vec!["", "TCP", "UDP", "HTTP"]),
        restart in prop::sample::select(vec!["", "Always", "Never"]),
        period in -2i32..3,
        success in -1i32..3,
        scheme in prop::sample::select(vec!["", "HTTP", "HTTPS", "FTP"]),
        path in prop::sample::select(vec!["", "/", "/healthz"]),
    ) {
        let mut t = valid();
        let c = container(&mut t);
        c["imagePullPolicy"] = json!(policy);
        c["ports"][0]["protocol"] = json!(protocol);
        c["readinessProbe"]["periodSeconds"] = json!(period);
        c["livenessProbe"]["successThreshold"] = json!(success);
        c["readinessProbe"]["httpGet"]["scheme"] = json!(scheme);
        c["readinessProbe"]["httpGet"]["path"] = json!(path);
        t["spec"]["restartPolicy"] = json!(restart);
        let mut defaulted = t.clone();
        super::super::defaults::default_pod_spec(&mut defaulted["spec"]);
        prop_assert_eq!(errors_of(&t), errors_of(&defaulted));
    }
}
