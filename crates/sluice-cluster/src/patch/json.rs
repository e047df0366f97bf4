//! RFC 6902 JSON patch (`application/json-patch+json`) with the apiserver's semantics.
//!
//! The real apiserver runs `gopkg.in/evanphx/json-patch.v4`, whose behaviour differs from
//! the RFC in ways clients can observe, so this engine follows it rather than the
//! `json-patch` crate:
//! - `replace` of a missing key in an existing object adds the key instead of failing;
//! - a `test` whose target is missing passes when its value is `null` or absent;
//! - negative array indices count from the end;
//! - an operation without `value` uses `null`; `copy` from a missing key copies `null`;
//! - `replace` of the whole document with a scalar is a silent no-op;
//! - decode failures are 400 BadRequest, apply failures 422 with the library's message
//!   (e.g. `testing value /spec/replicas failed: test failed`).
//!
//! Operations apply in order to a private copy, so a failing patch changes nothing.

use super::{PatchError, go_type_name};
use serde_json::{Map, Value};

/// The apiserver refuses longer patches (with 413; reported here as 400).
const MAX_OPERATIONS: usize = 10_000;

pub(super) fn apply(current: &Value, body: &[u8]) -> Result<Value, PatchError> {
    let decoded: Value = serde_json::from_slice(body)
        .map_err(|e| PatchError::Malformed(format!("error decoding patch: {e}")))?;
    let ops = match decoded {
        Value::Array(ops) => ops,
        other => {
            return Err(PatchError::Malformed(format!(
                "error decoding patch: json: cannot unmarshal {} into Go value of type []handlers.jsonPatchOp",
                go_type_name(&other)
            )));
        }
    };
    let mut parsed = Vec::with_capacity(ops.len());
    for op in ops {
        match op {
            Value::Object(m) => {
                // The apiserver first decodes into a struct of string fields.
                for field in ["op", "path", "from"] {
                    if let Some(v) = m.get(field).filter(|v| !v.is_string() && !v.is_null()) {
                        return Err(PatchError::Malformed(format!(
                            "error decoding patch: json: cannot unmarshal {} into Go struct field jsonPatchOp.{field} of type string",
                            go_type_name(v)
                        )));
                    }
                }
                parsed.push(m)
            }
            other => {
                return Err(PatchError::Malformed(format!(
                    "error decoding patch: json: cannot unmarshal {} into Go value of type handlers.jsonPatchOp",
                    go_type_name(&other)
                )));
            }
        }
    }
    if parsed.len() > MAX_OPERATIONS {
        return Err(PatchError::Malformed(format!(
            "The allowed maximum operations in a JSON patch is {MAX_OPERATIONS}, got {}",
            parsed.len()
        )));
    }
    let mut doc = current.clone();
    for op in &parsed {
        apply_op(&mut doc, op).map_err(PatchError::Invalid)?;
    }
    Ok(doc)
}

fn str_field<'a>(op: &'a Map<String, Value>, name: &str, missing: &str) -> Result<&'a str, String> {
    match op.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(Value::Null) | None => Err(missing.to_string()),
        Some(other) => Err(format!(
            "json: cannot unmarshal {} into Go value of type string",
            go_type_name(other)
        )),
    }
}

fn apply_op(doc: &mut Value, op: &Map<String, Value>) -> Result<(), String> {
    let kind = match op.get("op") {
        Some(Value::String(s)) => s.as_str(),
        _ => "unknown",
    };
    let path_missing = "operation missing path field: missing value";
    let from_missing = "operation, missing from field: missing value";
    let value = op.get("value");
    match kind {
        "add" => {
            let path = str_field(op, "path", path_missing)
                .map_err(|_| "add operation failed to decode path: missing value".to_string())?;
            let (con, key) = find_container(doc, path).ok_or_else(|| {
                format!(
                    "add operation does not apply: doc is missing path: \"{path}\": missing value"
                )
            })?;
            add(con, &key, value.cloned().unwrap_or(Value::Null))
                .map_err(|e| format!("error in add for path: '{path}': {e}"))
        }
        "remove" => {
            let path = str_field(op, "path", path_missing)
                .map_err(|_| "remove operation failed to decode path: missing value".to_string())?;
            let (con, key) = find_container(doc, path).ok_or_else(|| {
                format!("remove operation does not apply: doc is missing path: \"{path}\": missing value")
            })?;
            remove(con, &key)
                .map(drop)
                .map_err(|e| format!("error in remove for path: '{path}': {e}"))
        }
        "replace" => {
            let path = str_field(op, "path", path_missing)
                .map_err(|e| format!("replace operation failed to decode path: {e}"))?;
            let new = value.cloned().unwrap_or(Value::Null);
            if path.is_empty() {
                // Upstream wraps a nil error here, so a scalar root replace is a silent no-op.
                if new.is_object() || new.is_array() {
                    *doc = new;
                }
                return Ok(());
            }
            let (con, key) = find_container(doc, path).ok_or_else(|| {
                format!(
                    "replace operation does not apply: doc is missing path: {path}: missing value"
                )
            })?;
            match con {
                Value::Object(m) => {
                    m.insert(key, new);
                    Ok(())
                }
                Value::Array(a) => {
                    let idx = existing_index(a.len(), &key).map_err(|_| {
                        format!("replace operation does not apply: doc is missing key: {path}: missing value")
                    })?;
                    a[idx] = new;
                    Ok(())
                }
                _ => Err(format!(
                    "replace operation does not apply: doc is missing path: {path}: missing value"
                )),
            }
        }
        "move" => {
            let from = str_field(op, "from", from_missing)
                .map_err(|e| format!("move operation failed to decode from: {e}"))?;
            let (con, key) = find_container(doc, from).ok_or_else(|| {
                format!(
                    "move operation does not apply: doc is missing from path: {from}: missing value"
                )
            })?;
            let moved =
                remove(con, &key).map_err(|e| format!("error in move for path: '{key}': {e}"))?;
            let path = str_field(op, "path", path_missing)
                .map_err(|e| format!("move operation failed to decode path: {e}"))?;
            let (con, key) = find_container(doc, path).ok_or_else(|| {
                format!("move operation does not apply: doc is missing destination path: {path}: missing value")
            })?;
            add(con, &key, moved).map_err(|e| format!("error in move for path: '{path}': {e}"))
        }
        "copy" => {
            let from = str_field(op, "from", from_missing)
                .map_err(|e| format!("copy operation failed to decode from: {e}"))?;
            let (con, key) = find_container(doc, from).ok_or_else(|| {
                format!(
                    "copy operation does not apply: doc is missing from path: {from}: missing value"
                )
            })?;
            let copied = get(con, &key)
                .map_err(|e| format!("error in copy for from: '{from}': {e}"))?
                .cloned()
                .unwrap_or(Value::Null);
            let path = str_field(op, "path", path_missing)
                .map_err(|_| "copy operation failed to decode path: missing value".to_string())?;
            let (con, key) = find_container(doc, path).ok_or_else(|| {
                format!("copy operation does not apply: doc is missing destination path: {path}: missing value")
            })?;
            add(con, &key, copied).map_err(|e| format!("error while adding value during copy: {e}"))
        }
        "test" => {
            let path = str_field(op, "path", path_missing)
                .map_err(|e| format!("test operation failed to decode path: {e}"))?;
            let failed = || format!("testing value {path} failed: test failed");
            if path.is_empty() {
                return match value {
                    Some(v) if json_equal(doc, v) => Ok(()),
                    _ => Err(failed()),
                };
            }
            let (con, key) = find_container(doc, path).ok_or_else(|| {
                format!("test operation does not apply: is missing path: {path}: missing value")
            })?;
            match get(con, &key).map_err(|e| format!("error in test for path: '{path}': {e}"))? {
                None => match value {
                    None | Some(Value::Null) => Ok(()),
                    Some(_) => Err(failed()),
                },
                Some(actual) => match value {
                    Some(v) if json_equal(actual, v) => Ok(()),
                    _ => Err(failed()),
                },
            }
        }
        other => Err(format!("Unexpected kind: {other}")),
    }
}

/// Unescapes one RFC 6901 reference token.
fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// Walks to the parent of the last token; `None` when the parent does not exist, is not a
/// container, or the path has no token at all (the library treats `""` that way).
fn find_container<'a>(doc: &'a mut Value, path: &str) -> Option<(&'a mut Value, String)> {
    let mut tokens: Vec<&str> = path.split('/').collect();
    if tokens.len() < 2 {
        return None;
    }
    let last = unescape(tokens.pop()?);
    let mut cur = doc;
    for token in &tokens[1..] {
        let key = unescape(token);
        cur = match cur {
            Value::Object(m) => m.get_mut(&key)?,
            Value::Array(a) => {
                let idx = existing_index(a.len(), &key).ok()?;
                &mut a[idx]
            }
            _ => return None,
        };
        if !cur.is_object() && !cur.is_array() {
            return None;
        }
    }
    if !cur.is_object() && !cur.is_array() {
        return None;
    }
    Some((cur, last))
}

fn invalid_index(idx: i64) -> String {
    format!("Unable to access invalid index: {idx}: invalid index referenced")
}

/// Parses an index that must name an existing element (negatives count from the end).
fn existing_index(len: usize, key: &str) -> Result<usize, String> {
    let idx: i64 = key
        .parse()
        .map_err(|_| format!("strconv.Atoi: parsing \"{key}\": invalid syntax"))?;
    let len = len as i64;
    let resolved = if idx < 0 { idx + len } else { idx };
    if resolved < 0 || resolved >= len {
        return Err(invalid_index(idx));
    }
    Ok(resolved as usize)
}

fn get<'a>(con: &'a Value, key: &str) -> Result<Option<&'a Value>, String> {
    match con {
        Value::Object(m) => Ok(m.get(key)),
        Value::Array(a) => existing_index(a.len(), key).map(|i| Some(&a[i])),
        _ => Ok(None),
    }
}

fn add(con: &mut Value, key: &str, value: Value) -> Result<(), String> {
    match con {
        Value::Object(m) => {
            m.insert(key.to_string(), value);
            Ok(())
        }
        Value::Array(a) => {
            if key == "-" {
                a.push(value);
                return Ok(());
            }
            let idx: i64 = key.parse().map_err(|_| {
                format!("value was not a proper array index: '{key}': strconv.Atoi: parsing \"{key}\": invalid syntax")
            })?;
            let new_len = a.len() as i64 + 1;
            if idx >= new_len || idx < -new_len {
                return Err(invalid_index(idx));
            }
            let at = if idx < 0 { idx + new_len } else { idx } as usize;
            a.insert(at, value);
            Ok(())
        }
        _ => Err("unknown object type".to_string()),
    }
}

fn remove(con: &mut Value, key: &str) -> Result<Value, String> {
    match con {
        Value::Object(m) => m
            .remove(key)
            .ok_or_else(|| format!("Unable to remove nonexistent key: {key}: missing value")),
        Value::Array(a) => {
            let idx = existing_index(a.len(), key)?;
            Ok(a.remove(idx))
        }
        _ => Err("unknown object type".to_string()),
    }
}

/// Structural equality where numbers compare by value (`1 == 1.0`), as Go's decoder sees them.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(doc: Value, patch: Value) -> Result<Value, PatchError> {
        apply(&doc, patch.to_string().as_bytes())
    }

    /// RFC 6902 appendix A examples that succeed.
    #[test]
    fn rfc6902_examples_apply_as_specified() {
        let cases = [
            (
                json!({"foo":"bar"}),
                json!([{"op":"add","path":"/baz","value":"qux"}]),
                json!({"baz":"qux","foo":"bar"}),
            ),
            (
                json!({"foo":["bar","baz"]}),
                json!([{"op":"add","path":"/foo/1","value":"qux"}]),
                json!({"foo":["bar","qux","baz"]}),
            ),
            (
                json!({"baz":"qux","foo":"bar"}),
                json!([{"op":"remove","path":"/baz"}]),
                json!({"foo":"bar"}),
            ),
            (
                json!({"foo":["bar","qux","baz"]}),
                json!([{"op":"remove","path":"/foo/1"}]),
                json!({"foo":["bar","baz"]}),
            ),
            (
                json!({"baz":"qux","foo":"bar"}),
                json!([{"op":"replace","path":"/baz","value":"boo"}]),
                json!({"baz":"boo","foo":"bar"}),
            ),
            (
                json!({"foo":{"bar":"baz","waldo":"fred"},"qux":{"corge":"grault"}}),
                json!([{"op":"move","from":"/foo/waldo","path":"/qux/thud"}]),
                json!({"foo":{"bar":"baz"},"qux":{"corge":"grault","thud":"fred"}}),
            ),
            (
                json!({"foo":["all","grass","cows","eat"]}),
                json!([{"op":"move","from":"/foo/1","path":"/foo/3"}]),
                json!({"foo":["all","cows","eat","grass"]}),
            ),
            (
                json!({"baz":"qux","foo":["a",2,"c"]}),
                json!([{"op":"test","path":"/baz","value":"qux"},{"op":"test","path":"/foo/1","value":2}]),
                json!({"baz":"qux","foo":["a",2,"c"]}),
            ),
            (
                json!({"foo":"bar"}),
                json!([{"op":"add","path":"/child","value":{"grandchild":{}}}]),
                json!({"foo":"bar","child":{"grandchild":{}}}),
            ),
            (
                json!({"foo":"bar"}),
                json!([{"op":"add","path":"/baz","value":"qux","xyz":123}]),
                json!({"foo":"bar","baz":"qux"}),
            ),
            (
                json!({"foo":["bar"]}),
                json!([{"op":"add","path":"/foo/-","value":["abc","def"]}]),
                json!({"foo":["bar",["abc","def"]]}),
            ),
            (
                json!({"/":9,"~1":10}),
                json!([{"op":"test","path":"/~01","value":10}]),
                json!({"/":9,"~1":10}),
            ),
            (
                json!({"a":{"b":1}}),
                json!([{"op":"copy","from":"/a","path":"/c"}]),
                json!({"a":{"b":1},"c":{"b":1}}),
            ),
            // evanphx quirks the apiserver exposes.
            (
                json!({"a":1}),
                json!([{"op":"replace","path":"/b","value":2}]),
                json!({"a":1,"b":2}),
            ),
            (
                json!({"a":1}),
                json!([{"op":"test","path":"/b","value":null}]),
                json!({"a":1}),
            ),
            (
                json!({"a":[1,2,3]}),
                json!([{"op":"remove","path":"/a/-1"}]),
                json!({"a":[1,2]}),
            ),
            (
                json!({"a":1.0}),
                json!([{"op":"test","path":"/a","value":1}]),
                json!({"a":1.0}),
            ),
            (
                json!({"a":1}),
                json!([{"op":"copy","from":"/nope","path":"/b"}]),
                json!({"a":1,"b":null}),
            ),
            (
                json!({"a":1}),
                json!([{"op":"replace","path":"","value":5}]),
                json!({"a":1}),
            ),
            (
                json!({"a":1}),
                json!([{"op":"replace","path":"","value":{"b":2}}]),
                json!({"b":2}),
            ),
            // What `kubectl argo rollouts undo` sends.
            (
                json!({"spec":{"template":{"x":1}}}),
                json!([{"op":"replace","path":"/spec/template","value":{"x":2}}]),
                json!({"spec":{"template":{"x":2}}}),
            ),
        ];
        for (doc, patch, want) in cases {
            assert_eq!(run(doc.clone(), patch.clone()), Ok(want), "{doc} + {patch}");
        }
    }

    #[test]
    /// Messages of evanphx/json-patch v4.12 as vendored by Kubernetes 1.32 (checked against
    /// `kubectl patch --local --type json`, which runs the same library).
    fn failing_operations_are_422_with_the_apiservers_messages() {
        let cases = [
            (
                json!({"baz":"qux"}),
                json!([{"op":"test","path":"/baz","value":"bar"}]),
                "testing value /baz failed: test failed",
            ),
            (
                json!({"foo":"bar"}),
                json!([{"op":"add","path":"/baz/bat","value":"qux"}]),
                "add operation does not apply: doc is missing path: \"/baz/bat\": missing value",
            ),
            (
                json!({"foo":"bar"}),
                json!([{"op":"remove","path":"/baz"}]),
                "error in remove for path: '/baz': Unable to remove nonexistent key: baz: missing value",
            ),
            (
                json!({"foo":"bar"}),
                json!([{"op":"remove","path":"/x/y"}]),
                "remove operation does not apply: doc is missing path: \"/x/y\": missing value",
            ),
            (
                json!({"foo":"bar"}),
                json!([{"op":"replace","path":"/x/y","value":1}]),
                "replace operation does not apply: doc is missing path: /x/y: missing value",
            ),
            (
                json!({"a":[1]}),
                json!([{"op":"replace","path":"/a/5","value":1}]),
                "replace operation does not apply: doc is missing key: /a/5: missing value",
            ),
            (
                json!({"a":[1]}),
                json!([{"op":"add","path":"/a/5","value":1}]),
                "error in add for path: '/a/5': Unable to access invalid index: 5: invalid index referenced",
            ),
            (
                json!({"a":1}),
                json!([{"op":"move","from":"/x/y","path":"/b"}]),
                "move operation does not apply: doc is missing from path: /x/y: missing value",
            ),
            (
                json!({"a":1}),
                json!([{"op":"test","path":"/x/y","value":1}]),
                "test operation does not apply: is missing path: /x/y: missing value",
            ),
            (
                json!({"a":1}),
                json!([{"op":"frob","path":"/a"}]),
                "Unexpected kind: frob",
            ),
            (
                json!({"a":1}),
                json!([{"path":"/a"}]),
                "Unexpected kind: unknown",
            ),
        ];
        for (doc, patch, want) in cases {
            assert_eq!(
                run(doc.clone(), patch.clone()),
                Err(PatchError::Invalid(want.into())),
                "{doc} + {patch}"
            );
        }
    }

    #[test]
    fn a_failing_patch_leaves_no_partial_changes() {
        let doc = json!({"a":1});
        let patch = json!([{"op":"add","path":"/b","value":2},{"op":"test","path":"/a","value":9}]);
        assert!(run(doc.clone(), patch).is_err());
        assert_eq!(doc, json!({"a":1}));
    }

    #[test]
    fn non_array_bodies_are_400_with_go_decoder_wording() {
        let err = apply(&json!({}), br#"{"op":"add"}"#).unwrap_err();
        assert_eq!(
            err,
            PatchError::Malformed(
                "error decoding patch: json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp".into()
            )
        );
        assert!(matches!(
            apply(&json!({}), b"[\"x\"]"),
            Err(PatchError::Malformed(_))
        ));
        assert!(matches!(
            apply(&json!({}), b"not json"),
            Err(PatchError::Malformed(_))
        ));
        assert_eq!(
            apply(&json!({}), br#"[{"op":"add","path":5}]"#).unwrap_err(),
            PatchError::Malformed(
                "error decoding patch: json: cannot unmarshal number into Go struct field jsonPatchOp.path of type string"
                    .into()
            )
        );
    }
}
