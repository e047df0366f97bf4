//! RFC 7386 JSON merge patch (`application/merge-patch+json`).
//!
//! Lists are replaced wholesale and `null` deletes a key. The apiserver first decodes the
//! body into a Go `map[string]interface{}`, so anything but an object (or `null`, which is
//! a no-op) is a 400 with the Go decoder's wording.

use super::{PatchError, go_type_name};
use serde_json::Value;

pub(super) fn apply(current: &Value, body: &[u8]) -> Result<Value, PatchError> {
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| PatchError::Malformed(format!("error decoding patch: {e}")))?;
    match &patch {
        Value::Object(_) | Value::Null => {}
        other => {
            return Err(PatchError::Malformed(format!(
                "error decoding patch: json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                go_type_name(other)
            )));
        }
    }
    let mut doc = current.clone();
    if patch.is_object() {
        json_patch::merge(&mut doc, &patch);
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn merged(target: Value, patch: Value) -> Value {
        apply(&target, patch.to_string().as_bytes()).unwrap()
    }

    /// RFC 7386 appendix A, restricted to object patches (the apiserver rejects the rest).
    #[test]
    fn rfc7386_examples_merge_as_specified() {
        let cases = [
            (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
            (json!({"a":"b"}), json!({"a":null}), json!({})),
            (
                json!({"a":"b","b":"c"}),
                json!({"a":null}),
                json!({"b":"c"}),
            ),
            (json!({"a":["b"]}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"c"}), json!({"a":["b"]}), json!({"a":["b"]})),
            (
                json!({"a":{"b":"c"}}),
                json!({"a":{"b":"d","c":null}}),
                json!({"a":{"b":"d"}}),
            ),
            (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
            (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
            (
                json!({}),
                json!({"a":{"bb":{"ccc":null}}}),
                json!({"a":{"bb":{}}}),
            ),
        ];
        for (target, patch, want) in cases {
            assert_eq!(
                merged(target.clone(), patch.clone()),
                want,
                "{target} + {patch}"
            );
        }
    }

    #[test]
    fn null_body_is_a_no_op() {
        assert_eq!(merged(json!({"a":1}), Value::Null), json!({"a":1}));
    }

    #[test]
    fn non_object_bodies_are_rejected_with_go_decoder_wording() {
        let cases = [
            ("[1]", "array"),
            ("\"x\"", "string"),
            ("3", "number"),
            ("true", "bool"),
        ];
        for (body, ty) in cases {
            let err = apply(&json!({}), body.as_bytes()).unwrap_err();
            assert_eq!(
                err,
                PatchError::Malformed(format!(
                    "error decoding patch: json: cannot unmarshal {ty} into Go value of type map[string]interface {{}}"
                ))
            );
        }
        assert!(matches!(
            apply(&json!({}), b"{nope"),
            Err(PatchError::Malformed(_))
        ));
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-50i64..50).prop_map(|n| json!(n)),
            "[a-c]{0,2}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::btree_map("[a-d]", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Merge patches cannot express "set to null", so b must be null-free for the
    /// round trip to hold; nulls inside lists survive because lists are replaced whole.
    fn strip_object_nulls(v: Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.into_iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k, strip_object_nulls(v)))
                    .collect(),
            ),
            other => other,
        }
    }

    /// The smallest merge patch turning `a` into `b` (both objects).
    fn diff(a: &Value, b: &Value) -> Value {
        match (a, b) {
            (Value::Object(am), Value::Object(bm)) => {
                let mut out = serde_json::Map::new();
                for k in am.keys() {
                    if !bm.contains_key(k) {
                        out.insert(k.clone(), Value::Null);
                    }
                }
                for (k, bv) in bm {
                    match am.get(k) {
                        Some(av) if av == bv => {}
                        Some(av @ Value::Object(_)) if bv.is_object() => {
                            out.insert(k.clone(), diff(av, bv));
                        }
                        _ => {
                            out.insert(k.clone(), bv.clone());
                        }
                    }
                }
                Value::Object(out)
            }
            _ => b.clone(),
        }
    }

    proptest! {
        #[test]
        fn merging_the_diff_of_a_and_b_into_a_yields_b(
            a in prop::collection::btree_map("[a-d]", arb_json(), 0..4),
            b in prop::collection::btree_map("[a-d]", arb_json(), 0..4),
        ) {
            let a = Value::Object(a.into_iter().collect());
            let b = strip_object_nulls(Value::Object(b.into_iter().collect()));
            let patch = diff(&a, &b);
            prop_assert_eq!(merged(a, patch), b);
        }
    }
}
