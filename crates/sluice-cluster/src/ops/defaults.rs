//! The apiserver's built-in defaulting. Clients compare what they wrote with what they read
//! back (controllers hash pod templates, kubectl diffs), so every default a real cluster fills
//! in must be filled in here too.

use serde_json::{Value, json};

use crate::hpa;
use crate::store::State;
use crate::types::ResourceType;
use sluice_api::k8s::defaults::default_pod_spec;

fn set_default(obj: &mut Value, key: &str, v: Value) {
    if obj.get(key).is_none_or(Value::is_null)
        && let Some(m) = obj.as_object_mut()
    {
        m.insert(key.to_string(), v);
    }
}

/// Built-in defaulting the apiserver performs that clients rely on.
pub(super) fn default_builtin(st: &mut State, t: &ResourceType, obj: &mut Value, creating: bool) {
    default_pod_specs(t, obj);
    if (t.group.as_str(), t.plural.as_str()) == ("batch", "jobs")
        && creating
        && obj["spec"]["selector"].is_null()
        && obj["spec"]["manualSelector"] != true
    {
        generate_job_selector(obj);
    }
    match (t.group.as_str(), t.plural.as_str()) {
        ("", "namespaces") if obj["status"]["phase"].is_null() => {
            obj["status"] = json!({"phase": "Active"});
        }
        ("", "pods") if creating && obj["status"]["phase"].is_null() => {
            obj["status"] = json!({"phase": "Pending"});
        }
        ("", "services") => default_service_spec(st, &mut obj["spec"]),
        ("", "secrets") => default_secret(obj),
        ("apps", "deployments") => default_deployment_spec(&mut obj["spec"]),
        ("", "resourcequotas") => super::quota::fill_status(st, obj),
        ("autoscaling", "horizontalpodautoscalers") => hpa::default_v2(obj),
        ("apps", "replicasets") if obj["spec"]["replicas"].is_null() => {
            obj["spec"]["replicas"] = json!(1);
        }
        ("batch", "jobs") => {
            let spec = &mut obj["spec"];
            for (k, v) in [("backoffLimit", 6), ("completions", 1), ("parallelism", 1)] {
                if spec[k].is_null() {
                    spec[k] = json!(v);
                }
            }
        }
        _ => {}
    }
}

/// The PodSpec of a Pod, or the pod template of a workload.
fn default_pod_specs(t: &ResourceType, obj: &mut Value) {
    match (t.group.as_str(), t.plural.as_str()) {
        ("", "pods") => {
            if let Some(spec) = obj.get_mut("spec") {
                default_pod_spec(spec);
            }
        }
        ("apps", _) | ("batch", "jobs") => {
            let spec = obj
                .get_mut("spec")
                .and_then(|s| s.get_mut("template"))
                .and_then(|tpl| tpl.get_mut("spec"));
            if let Some(spec) = spec {
                default_pod_spec(spec);
            }
        }
        _ => {}
    }
}

/// A Job created without a selector gets one on its own UID, and its template the labels
/// that selector matches, so its Pods can never be claimed by another Job.
fn generate_job_selector(obj: &mut Value) {
    let uid = obj["metadata"]["uid"].clone();
    let name = obj["metadata"]["name"].clone();
    obj["spec"]["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
    if !obj["spec"]["template"]["metadata"]["labels"].is_object() {
        obj["spec"]["template"]["metadata"]["labels"] = json!({});
    }
    let l = &mut obj["spec"]["template"]["metadata"]["labels"];
    l["batch.kubernetes.io/controller-uid"] = uid.clone();
    l["batch.kubernetes.io/job-name"] = name.clone();
    l["controller-uid"] = uid;
    l["job-name"] = name;
    set_default(&mut obj["spec"], "completionMode", json!("NonIndexed"));
    set_default(&mut obj["spec"], "suspend", json!(false));
}

/// Allocates a cluster IP the first time a non-ExternalName Service is written without one.
fn default_service_spec(st: &mut State, spec: &mut Value) {
    if spec["type"].is_null() {
        spec["type"] = json!("ClusterIP");
    }
    if spec["sessionAffinity"].is_null() {
        spec["sessionAffinity"] = json!("None");
    }
    if spec["clusterIP"].is_null() && spec["type"] != "ExternalName" {
        st.service_ips += 1;
        let n = st.service_ips;
        let ip = format!("10.96.{}.{}", (n / 250) % 250, n % 250 + 1);
        spec["clusterIP"] = json!(ip);
        spec["clusterIPs"] = json!([ip]);
    }
    if let Some(ports) = spec["ports"].as_array_mut() {
        for p in ports {
            if p["protocol"].is_null() {
                p["protocol"] = json!("TCP");
            }
            if p["targetPort"].is_null() {
                p["targetPort"] = p["port"].clone();
            }
        }
    }
}

/// Allocated IPs survive an update that omits them.
pub(super) fn keep_cluster_ips(current: &Value, new: &mut Value) {
    for k in ["clusterIP", "clusterIPs"] {
        if new["spec"].get(k).is_none_or(Value::is_null)
            && let Some(v) = current["spec"].get(k)
            && new["spec"].is_object()
        {
            new["spec"][k] = v.clone();
        }
    }
}

/// `stringData` is write-only: it is folded into `data`, base64-encoded.
fn default_secret(obj: &mut Value) {
    if obj["type"].is_null() {
        obj["type"] = json!("Opaque");
    }
    if let Some(sd) = obj.get("stringData").and_then(Value::as_object).cloned() {
        use base64::Engine as _;
        for (k, v) in sd {
            let raw = v.as_str().unwrap_or_default();
            obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(raw));
        }
        obj.as_object_mut().map(|m| m.remove("stringData"));
    }
}

fn default_deployment_spec(spec: &mut Value) {
    if spec["replicas"].is_null() {
        spec["replicas"] = json!(1);
    }
    if spec["revisionHistoryLimit"].is_null() {
        spec["revisionHistoryLimit"] = json!(10);
    }
    if spec["progressDeadlineSeconds"].is_null() {
        spec["progressDeadlineSeconds"] = json!(600);
    }
    if spec["strategy"].is_null() {
        spec["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}});
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::fixtures::{opts, state, ty};
    use super::super::{Part, create, update};

    #[test]
    fn pod_templates_get_the_apiserver_defaults() {
        let mut st = state();
        let d = ty(&st, "apps", "v1", "deployments");
        let c = create(&mut st, &d, "v1", "default", json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"app": "x"}},
            "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}]}]}}}}), &opts()).unwrap();
        let spec = &c["spec"]["template"]["spec"];
        assert_eq!(spec["restartPolicy"], "Always");
        assert_eq!(spec["dnsPolicy"], "ClusterFirst");
        assert_eq!(spec["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(spec["containers"][0]["ports"][0]["protocol"], "TCP");
        assert!(
            spec.get("initContainers").is_none(),
            "no nulls are invented"
        );
    }

    #[test]
    fn service_updates_keep_the_allocated_cluster_ip() {
        let mut st = state();
        let svc = ty(&st, "", "v1", "services");
        let c = create(
            &mut st,
            &svc,
            "v1",
            "default",
            json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}),
            &opts(),
        )
        .unwrap();
        let u = update(
            &mut st,
            &svc,
            "v1",
            "default",
            "s",
            json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 81}]}}),
            Part::Main,
            &opts(),
        )
        .unwrap();
        assert_eq!(u["spec"]["clusterIP"], c["spec"]["clusterIP"]);
    }
}
