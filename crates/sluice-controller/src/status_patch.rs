//! Minimal merge patches for status writes.
//!
//! The controller writes only the status fields that changed, so a field a user
//! just patched (`abort`, `pauseConditions`, `promoteFull`, `currentStepIndex`) is
//! never rewritten with a stale copy unless the planner means to change it.

use serde_json::{Map, Value};

/// The JSON merge patch (RFC 7386) that turns `old` into `new`, or `None` when
/// they are equal. Objects recurse; anything else is replaced whole; keys missing
/// from `new` become `null`.
pub fn merge_diff(old: &Value, new: &Value) -> Option<Value> {
    if old == new {
        return None;
    }
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut patch = Map::new();
            for (key, old_value) in o {
                match n.get(key) {
                    None => {
                        if !old_value.is_null() {
                            patch.insert(key.clone(), Value::Null);
                        }
                    }
                    Some(new_value) => {
                        if let Some(p) = merge_diff(old_value, new_value) {
                            patch.insert(key.clone(), p);
                        }
                    }
                }
            }
            for (key, new_value) in n {
                if !o.contains_key(key) && !new_value.is_null() {
                    patch.insert(key.clone(), new_value.clone());
                }
            }
            (!patch.is_empty()).then_some(Value::Object(patch))
        }
        _ => Some(new.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_values_need_no_patch() {
        assert_eq!(merge_diff(&json!({"a": 1}), &json!({"a": 1})), None);
    }

    #[test]
    fn only_changed_and_removed_fields_are_sent() {
        let old = json!({"phase": "Paused", "abort": true, "pauseConditions": [{"reason": "CanaryPauseStep"}], "canary": {"x": 1, "y": 2}});
        let new = json!({"phase": "Progressing", "abort": true, "canary": {"x": 1, "y": 3}});
        assert_eq!(
            merge_diff(&old, &new),
            Some(json!({"phase": "Progressing", "pauseConditions": null, "canary": {"y": 3}}))
        );
    }

    #[test]
    fn applying_the_diff_as_a_merge_patch_yields_the_new_value() {
        let old = json!({"a": {"b": [1, 2], "c": "x"}, "d": 4});
        let new = json!({"a": {"b": [2], "e": {"f": null}}, "g": true});
        let patch = merge_diff(&old, &new).unwrap();
        let mut applied = old.clone();
        json_patch::merge(&mut applied, &patch);
        // Merge patches cannot express an explicit null, so nulls in `new` drop out.
        assert_eq!(applied, json!({"a": {"b": [2], "e": {}}, "g": true}));
    }
}
