//! JSON merge patch (`application/merge-patch+json`) as the apiserver applies it.
//!
//! RFC 7386 semantics — maps merge, everything else is replaced, `null` deletes a key —
//! with the quirks of `gopkg.in/evanphx/json-patch.v4` that Kubernetes runs: a value
//! that replaces a non-object (or fills a missing key) has its `null` map fields pruned,
//! also inside lists, while a list replacing an object is taken verbatim. The body is
//! first decoded into a Go `map[string]interface{}`, so anything but an object is a 400
//! with the Go decoder's wording, and a `null` body is 400 `Invalid JSON Patch`.

use super::{PatchError, go_type_name};
use serde_json::{Map, Value};

pub(super) fn apply(current: &Value, body: &[u8]) -> Result<Value, PatchError> {
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| PatchError::Malformed(format!("error decoding patch: {e}")))?;
    let patch = match patch {
        Value::Object(m) => m,
        Value::Null => return Err(PatchError::Malformed("Invalid JSON Patch".into())),
        other => {
            return Err(PatchError::Malformed(format!(
                "error decoding patch: json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                go_type_name(&other)
            )));
        }
    };
    let mut doc = match current {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    merge_docs(&mut doc, patch);
    Ok(Value::Object(doc))
}

fn merge_docs(doc: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (k, v) in patch {
        if v.is_null() {
            doc.remove(&k);
            continue;
        }
        let merged = match doc.remove(&k) {
            None | Some(Value::Null) => pruned(v),
            Some(Value::Object(mut cur)) => match v {
                Value::Object(p) => {
                    merge_docs(&mut cur, p);
                    Value::Object(cur)
                }
                other => other,
            },
            Some(_) => pruned(v),
        };
        doc.insert(k, merged);
    }
}

/// Drops `null` map fields at any depth (list elements that are `null` stay).
fn pruned(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, pruned(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(pruned).collect()),
        other => other,
    }
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
    fn null_body_is_rejected_like_evanphx() {
        assert_eq!(
            apply(&json!({"a":1}), b"null"),
            Err(PatchError::Malformed("Invalid JSON Patch".into()))
        );
    }

    /// Checked against `kubectl patch --local --type merge`, which runs the same library.
    #[test]
    fn nulls_inside_new_values_are_pruned_but_lists_replacing_objects_are_verbatim() {
        let cases = [
            (
                json!({}),
                json!({"x":[{"a":null,"b":1},null]}),
                json!({"x":[{"b":1},null]}),
            ),
            (
                json!({"k":[{"z":1}]}),
                json!({"k":[{"z":null,"w":2}]}),
                json!({"k":[{"w":2}]}),
            ),
            (
                json!({"y":{"r":1}}),
                json!({"y":{"q":null,"r":{"s":null}}}),
                json!({"y":{"r":{}}}),
            ),
            (
                json!({"o":{"b":1}}),
                json!({"o":[{"x":null}]}),
                json!({"o":[{"x":null}]}),
            ),
            (
                json!({"o":null}),
                json!({"o":{"x":null,"y":1}}),
                json!({"o":{"y":1}}),
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

    /// Merge patches cannot express "set to null" (and upstream prunes null fields of new
    /// values, even inside lists), so b's maps must be null-free for the round trip.
    fn strip_object_nulls(v: Value) -> Value {
        pruned(v)
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
