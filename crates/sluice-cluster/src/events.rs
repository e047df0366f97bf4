//! core/v1 Events and events.k8s.io/v1 Events are one resource stored once, as on a real
//! apiserver: kube-rs's recorder writes events.k8s.io/v1 while `kubectl get events` and
//! `kubectl describe` read core/v1. These convert between the two shapes.

use serde_json::{Map, Value, json};

/// (core/v1 field, events.k8s.io/v1 field) pairs that carry the same data.
const FIELDS: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("related", "related"),
    ("message", "note"),
    ("reason", "reason"),
    ("type", "type"),
    ("action", "action"),
    ("eventTime", "eventTime"),
    ("series", "series"),
    ("reportingComponent", "reportingController"),
    ("reportingInstance", "reportingInstance"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

fn convert(obj: &Value, to_new: bool) -> Value {
    let mut out = Map::new();
    if let Some(m) = obj.get("metadata") {
        out.insert("metadata".into(), m.clone());
    }
    for (core, new) in FIELDS {
        let (from, to) = if to_new { (core, new) } else { (new, core) };
        if let Some(v) = obj.get(*from).filter(|v| !v.is_null()) {
            out.insert((*to).to_string(), v.clone());
        }
    }
    if to_new {
        out.insert("apiVersion".into(), json!("events.k8s.io/v1"));
    } else {
        out.insert("apiVersion".into(), json!("v1"));
        // core/v1 readers expect these filled from the newer fields.
        if !out.contains_key("source")
            && let Some(c) = obj.get("reportingController").filter(|v| v.is_string())
        {
            let mut src = json!({"component": c});
            if let Some(h) = obj.get("reportingInstance").filter(|v| v.is_string()) {
                src["host"] = h.clone();
            }
            out.insert("source".into(), src);
        }
    }
    out.insert("kind".into(), json!("Event"));
    Value::Object(out)
}

/// events.k8s.io/v1 → the stored core/v1 shape.
pub fn to_core(obj: &Value) -> Value {
    convert(obj, false)
}

/// Stored core/v1 → events.k8s.io/v1.
pub fn to_events_v1(obj: &Value) -> Value {
    convert(obj, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_v1_round_trips_through_the_core_shape() {
        let new = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e", "namespace": "d"},
            "regarding": {"kind": "Rollout", "name": "web"}, "note": "Scaled up", "reason": "ScalingReplicaSet",
            "type": "Normal", "action": "Scale", "eventTime": "2026-01-01T00:00:00.000000Z",
            "reportingController": "sluice", "reportingInstance": "sluice-0", "series": {"count": 2, "lastObservedTime": "2026-01-01T00:00:01.000000Z"}});
        let core = to_core(&new);
        assert_eq!(core["involvedObject"]["name"], "web");
        assert_eq!(core["message"], "Scaled up");
        assert_eq!(
            core["source"],
            json!({"component": "sluice", "host": "sluice-0"})
        );
        let back = to_events_v1(&core);
        for k in [
            "regarding",
            "note",
            "reason",
            "type",
            "action",
            "eventTime",
            "reportingController",
            "reportingInstance",
            "series",
        ] {
            assert_eq!(back[k], new[k], "{k}");
        }
        assert_eq!(back["deprecatedSource"]["component"], "sluice");
    }
}
