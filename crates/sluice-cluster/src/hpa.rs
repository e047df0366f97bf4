//! autoscaling/v1 and autoscaling/v2 HorizontalPodAutoscalers are one stored object (in the v2
//! shape), as on a real apiserver; these convert the v1 view. v2-only metrics are not carried
//! through v1 (the apiserver keeps them in annotations; clients of v1 rarely need them).

use serde_json::{Map, Value, json};

fn cpu_utilization(metrics: &Value, which: &str) -> Option<Value> {
    metrics.as_array()?.iter().find_map(|m| {
        let r = &m["resource"];
        (m["type"] == "Resource" && r["name"] == "cpu")
            .then(|| r[which]["averageUtilization"].clone())
            .filter(|v| !v.is_null())
    })
}

fn copy(from: &Value, to: &mut Map<String, Value>, keys: &[&str]) {
    for k in keys {
        if let Some(v) = from.get(*k).filter(|v| !v.is_null()) {
            to.insert((*k).to_string(), v.clone());
        }
    }
}

/// Stored (v2) → the autoscaling/v1 view.
pub fn to_v1(obj: &Value) -> Value {
    let mut out = Map::new();
    copy(obj, &mut out, &["metadata"]);
    let mut spec = Map::new();
    copy(
        &obj["spec"],
        &mut spec,
        &["scaleTargetRef", "minReplicas", "maxReplicas"],
    );
    if let Some(u) = cpu_utilization(&obj["spec"]["metrics"], "target") {
        spec.insert("targetCPUUtilizationPercentage".into(), u);
    }
    out.insert("spec".into(), Value::Object(spec));
    let mut status = Map::new();
    copy(
        &obj["status"],
        &mut status,
        &[
            "observedGeneration",
            "lastScaleTime",
            "currentReplicas",
            "desiredReplicas",
        ],
    );
    if let Some(u) = cpu_utilization(&obj["status"]["currentMetrics"], "current") {
        status.insert("currentCPUUtilizationPercentage".into(), u);
    }
    if obj.get("status").is_some() {
        out.insert("status".into(), Value::Object(status));
    }
    out.insert("apiVersion".into(), json!("autoscaling/v1"));
    out.insert("kind".into(), json!("HorizontalPodAutoscaler"));
    Value::Object(out)
}

/// An autoscaling/v1 body → the stored (v2) shape.
pub fn to_v2(obj: &Value) -> Value {
    let mut out = Map::new();
    copy(obj, &mut out, &["metadata"]);
    let mut spec = Map::new();
    copy(
        &obj["spec"],
        &mut spec,
        &["scaleTargetRef", "minReplicas", "maxReplicas"],
    );
    if let Some(u) = obj["spec"]["targetCPUUtilizationPercentage"].as_i64() {
        spec.insert(
            "metrics".into(),
            json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": u}}}]),
        );
    }
    out.insert("spec".into(), Value::Object(spec));
    if let Some(st) = obj.get("status").filter(|s| s.is_object()) {
        let mut status = Map::new();
        copy(
            st,
            &mut status,
            &[
                "observedGeneration",
                "lastScaleTime",
                "currentReplicas",
                "desiredReplicas",
            ],
        );
        if let Some(u) = st["currentCPUUtilizationPercentage"].as_i64() {
            status.insert(
                "currentMetrics".into(),
                json!([{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": u}}}]),
            );
        }
        out.insert("status".into(), Value::Object(status));
    }
    out.insert("apiVersion".into(), json!("autoscaling/v2"));
    out.insert("kind".into(), json!("HorizontalPodAutoscaler"));
    Value::Object(out)
}

/// The apiserver's v2 defaults: one replica minimum, and 80% CPU when no metric is given.
pub fn default_v2(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    spec.entry("minReplicas").or_insert(json!(1));
    let empty = spec
        .get("metrics")
        .is_none_or(|m| m.as_array().is_none_or(Vec::is_empty));
    if empty {
        spec.insert(
            "metrics".into(),
            json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_cpu_target_round_trips_through_v2_metrics() {
        let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
            "spec": {"scaleTargetRef": {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "web"}, "minReplicas": 2, "maxReplicas": 5, "targetCPUUtilizationPercentage": 50},
            "status": {"currentReplicas": 2, "desiredReplicas": 3, "currentCPUUtilizationPercentage": 70}});
        let v2 = to_v2(&v1);
        assert_eq!(
            v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            50
        );
        assert_eq!(
            v2["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"],
            70
        );
        assert_eq!(to_v1(&v2), v1);
    }

    #[test]
    fn v2_defaults_fill_min_replicas_and_cpu() {
        let mut h = json!({"spec": {"maxReplicas": 3}});
        default_v2(&mut h);
        assert_eq!(h["spec"]["minReplicas"], 1);
        assert_eq!(
            h["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            80
        );
    }
}
