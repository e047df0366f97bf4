//! The API server's defaulting of a PodSpec (`k8s.io/kubernetes/pkg/apis/core/v1/defaults.go`,
//! as it shows in a stored Pod or pod template): the embedded API server applies it, and the
//! Rollout planner applies it to both sides before comparing a ReplicaSet's template with the
//! Rollout's, so a template the server filled in still equals the one that was written.
//!
//! Applied to JSON, so it works on any object holding a pod spec. A value already present is
//! never changed.

use serde_json::{Map, Value, json};

/// Fill in the PodSpec defaults: restart and DNS policy, grace period, scheduler, security
/// context; each container's pull policy, termination message, resources, port protocol,
/// probe timings and `fieldRef` API version; volumes' file modes. `spec` that is not an
/// object is left alone.
pub fn default_pod_spec(spec: &mut Value) {
    let Some(spec) = spec.as_object_mut() else {
        return;
    };
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    for key in ["containers", "initContainers", "ephemeralContainers"] {
        for c in objects_in(spec.get_mut(key)) {
            default_container(c);
        }
    }
    for volume in objects_in(spec.get_mut("volumes")) {
        for source in ["configMap", "secret", "downwardAPI", "projected"] {
            if let Some(s) = volume.get_mut(source).and_then(Value::as_object_mut) {
                set_default(s, "defaultMode", json!(420));
            }
        }
    }
}

/// Kubernetes pulls `Always` when the image has no tag or the tag `latest`, and no digest.
pub fn image_uses_latest(image: &str) -> bool {
    if image.contains('@') {
        return false;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        None => true,
        Some((_, tag)) => tag == "latest",
    }
}

fn default_container(c: &mut Map<String, Value>) {
    let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
    let policy = if image_uses_latest(image) {
        "Always"
    } else {
        "IfNotPresent"
    };
    set_default(c, "imagePullPolicy", json!(policy));
    set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(c, "terminationMessagePolicy", json!("File"));
    set_default(c, "resources", json!({}));
    for port in objects_in(c.get_mut("ports")) {
        set_default(port, "protocol", json!("TCP"));
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).and_then(Value::as_object_mut) {
            // Probe timings are plain integers upstream: zero means unset.
            set_default_nonzero(p, "timeoutSeconds", 1);
            set_default_nonzero(p, "periodSeconds", 10);
            set_default_nonzero(p, "successThreshold", 1);
            set_default_nonzero(p, "failureThreshold", 3);
            default_http_get(p);
        }
    }
    if let Some(lifecycle) = c.get_mut("lifecycle").and_then(Value::as_object_mut) {
        for hook in ["postStart", "preStop"] {
            if let Some(h) = lifecycle.get_mut(hook).and_then(Value::as_object_mut) {
                default_http_get(h);
            }
        }
    }
    for env in objects_in(c.get_mut("env")) {
        if let Some(field_ref) = env
            .get_mut("valueFrom")
            .and_then(|v| v.get_mut("fieldRef"))
            .and_then(Value::as_object_mut)
        {
            set_default(field_ref, "apiVersion", json!("v1"));
        }
    }
}

/// An `httpGet` action's path and scheme.
fn default_http_get(handler: &mut Map<String, Value>) {
    if let Some(http) = handler.get_mut("httpGet").and_then(Value::as_object_mut) {
        set_default(http, "path", json!("/"));
        set_default(http, "scheme", json!("HTTP"));
    }
}

/// Sets `key` when it is absent, null or an empty string (Go's defaulting tests a string
/// field against `""`).
fn set_default(obj: &mut Map<String, Value>, key: &str, value: Value) {
    let unset = match obj.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(_) => false,
    };
    if unset {
        obj.insert(key.to_string(), value);
    }
}

/// Sets an integer `key` when it is absent, null or zero.
fn set_default_nonzero(obj: &mut Map<String, Value>, key: &str, value: i64) {
    if obj
        .get(key)
        .is_none_or(|v| v.is_null() || v.as_i64() == Some(0))
    {
        obj.insert(key.to_string(), json!(value));
    }
}

/// The objects of a JSON array field, if it is one.
fn objects_in(list: Option<&mut Value>) -> impl Iterator<Item = &mut Map<String, Value>> {
    list.and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_spec_gets_what_the_api_server_fills_in() {
        let mut spec = json!({
            "containers": [{
                "name": "app", "image": "nginx:1.25",
                "ports": [{"containerPort": 80}],
                "readinessProbe": {"httpGet": {"path": "/", "port": 80}},
                "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
            }],
            "volumes": [{"name": "cfg", "configMap": {"name": "c"}}]
        });
        default_pod_spec(&mut spec);
        assert_eq!(
            spec,
            json!({
                "containers": [{
                    "name": "app", "image": "nginx:1.25",
                    "imagePullPolicy": "IfNotPresent",
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                    "resources": {},
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "readinessProbe": {
                        "httpGet": {"path": "/", "port": 80, "scheme": "HTTP"},
                        "timeoutSeconds": 1, "periodSeconds": 10,
                        "successThreshold": 1, "failureThreshold": 3
                    },
                    "env": [{"name": "POD", "valueFrom": {"fieldRef": {
                        "fieldPath": "metadata.name", "apiVersion": "v1"}}}]
                }],
                "volumes": [{"name": "cfg", "configMap": {"name": "c", "defaultMode": 420}}],
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 30,
                "dnsPolicy": "ClusterFirst",
                "securityContext": {},
                "schedulerName": "default-scheduler"
            })
        );
    }

    #[test]
    fn values_already_set_are_kept() {
        let mut spec = json!({
            "restartPolicy": "Never", "dnsPolicy": "Default",
            "containers": [{"name": "a", "image": "x", "imagePullPolicy": "Never",
                            "ports": [{"containerPort": 53, "protocol": "UDP"}]}]
        });
        default_pod_spec(&mut spec);
        assert_eq!(spec["restartPolicy"], "Never");
        assert_eq!(spec["dnsPolicy"], "Default");
        assert_eq!(spec["containers"][0]["imagePullPolicy"], "Never");
        assert_eq!(spec["containers"][0]["ports"][0]["protocol"], "UDP");
    }

    #[test]
    fn latest_or_untagged_images_default_to_always_pull() {
        assert!(image_uses_latest("nginx"));
        assert!(image_uses_latest("nginx:latest"));
        assert!(image_uses_latest("registry:5000/team/nginx"));
        assert!(!image_uses_latest("registry:5000/team/nginx:1.2"));
        assert!(!image_uses_latest("nginx@sha256:abc"));
    }
}
