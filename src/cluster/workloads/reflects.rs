//! "Would this merge patch change anything?" — the check that keeps the controllers from
//! re-triggering themselves.
//!
//! Every status write bumps `resourceVersion` and comes back through the watch, so a write
//! that changes nothing would loop forever. The desired status is therefore compared with
//! what the server holds before it is sent. The comparison is lenient in exactly the ways a
//! real API server differs from what was written: fields the server added are ignored, and
//! a field the server omitted because it is the zero value (`omitempty`) equals a desired
//! `0`, `false`, `""`, `[]`, `{}` or `null`.

use serde_json::Value;

/// True when applying `desired` as a JSON merge patch onto `current` changes nothing
/// meaningful.
pub fn reflects(current: &Value, desired: &Value) -> bool {
    match (current, desired) {
        (Value::Object(cur), Value::Object(want)) => want.iter().all(|(k, v)| match cur.get(k) {
            Some(c) => reflects(c, v),
            None => is_zero(v),
        }),
        (Value::Array(cur), Value::Array(want)) => {
            cur.len() == want.len() && cur.iter().zip(want).all(|(c, w)| reflects(c, w))
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (c, w) if is_zero(c) && is_zero(w) => true,
        (c, w) => c == w,
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_zero),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_values_are_reflected() {
        assert!(reflects(
            &json!({"a": 1, "b": [1, 2]}),
            &json!({"a": 1, "b": [1, 2]})
        ));
    }

    #[test]
    fn fields_the_server_added_are_ignored() {
        assert!(reflects(
            &json!({"phase": "Running", "qosClass": "BestEffort"}),
            &json!({"phase": "Running"})
        ));
    }

    #[test]
    fn omitted_zero_values_equal_explicit_zeros() {
        assert!(reflects(
            &json!({"replicas": 3}),
            &json!({"replicas": 3, "readyReplicas": 0, "conditions": null})
        ));
    }

    #[test]
    fn any_real_difference_is_detected() {
        assert!(!reflects(&json!({"replicas": 3}), &json!({"replicas": 2})));
        assert!(!reflects(
            &json!({"replicas": 3}),
            &json!({"readyReplicas": 1})
        ));
        assert!(!reflects(&json!({"c": [1, 2]}), &json!({"c": [1]})));
        assert!(!reflects(&json!({"c": [{"a": 1}]}), &json!({"c": null})));
    }
}
