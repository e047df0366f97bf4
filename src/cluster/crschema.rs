//! Structural-schema processing of custom resources (pruning, defaulting, validation) against a
//! CRD's `openAPIV3Schema`. A small local engine until the shared one in `schema.rs` lands.

use serde_json::{Map, Value};

/// One validation failure: the field path (`spec.replicas`) and the message after it.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

fn preserves(schema: &Value) -> bool {
    schema["x-kubernetes-preserve-unknown-fields"].as_bool() == Some(true)
}

fn prune_value(v: &mut Value, schema: &Value) {
    if schema["x-kubernetes-int-or-string"].as_bool() == Some(true)
        || schema
            .get("x-kubernetes-embedded-resource")
            .is_some_and(|e| e == true)
            && preserves(schema)
    {
        return;
    }
    match v {
        Value::Object(m) => prune_map(m, schema, false),
        Value::Array(a) => {
            if let Some(items) = schema.get("items") {
                for x in a {
                    prune_value(x, items);
                }
            }
        }
        _ => {}
    }
}

fn prune_map(m: &mut Map<String, Value>, schema: &Value, root: bool) {
    let props = schema["properties"].as_object();
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    if let Some(props) = props {
        m.retain(|k, _| {
            props.contains_key(k)
                || additional.is_some()
                || preserves(schema)
                || (root && matches!(k.as_str(), "apiVersion" | "kind" | "metadata"))
        });
        for (k, v) in m.iter_mut() {
            if let Some(ps) = props.get(k) {
                prune_value(v, ps);
            } else if let Some(a) = additional {
                prune_value(v, a);
            }
        }
    } else if let Some(a) = additional {
        for v in m.values_mut() {
            prune_value(v, a);
        }
    } else if !preserves(schema) && !root {
        m.clear();
    } else if !preserves(schema) {
        m.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "metadata"));
    }
}

/// Drops fields the schema does not declare (keeping apiVersion, kind and metadata at the root).
pub fn prune(obj: &mut Value, schema: &Value) {
    if let Value::Object(m) = obj {
        prune_map(m, schema, true);
    }
}

/// Fills absent fields that declare a `default`, recursively.
pub fn apply_defaults(obj: &mut Value, schema: &Value) {
    match obj {
        Value::Object(m) => {
            if let Some(props) = schema["properties"].as_object() {
                for (k, ps) in props {
                    if !m.contains_key(k)
                        && let Some(d) = ps.get("default")
                    {
                        m.insert(k.clone(), d.clone());
                    }
                    if let Some(v) = m.get_mut(k) {
                        apply_defaults(v, ps);
                    }
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = schema.get("items") {
                for x in a {
                    apply_defaults(x, items);
                }
            }
        }
        _ => {}
    }
}

fn type_ok(v: &Value, ty: &str) -> bool {
    match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        _ => true,
    }
}

fn validate_at(v: &Value, schema: &Value, path: &str, out: &mut Vec<FieldError>) {
    if v.is_null() && schema["nullable"].as_bool() == Some(true) {
        return;
    }
    if schema["x-kubernetes-int-or-string"].as_bool() == Some(true) {
        if !(v.is_string() || v.is_i64() || v.is_u64()) {
            out.push(FieldError {
                path: path.into(),
                message: format!(
                    "Invalid value: {v}: {path} in body must be of type integer,string: {:?}",
                    type_name(v)
                ),
            });
        }
        return;
    }
    if let Some(ty) = schema["type"].as_str()
        && !type_ok(v, ty)
    {
        out.push(FieldError {
            path: path.into(),
            message: format!(
                "Invalid value: {:?}: {path} in body must be of type {ty}: {:?}",
                type_name(v),
                type_name(v)
            ),
        });
        return;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
        out.push(FieldError {
            path: path.into(),
            message: format!(
                "Unsupported value: {v}: supported values: {}",
                list.join(", ")
            ),
        });
    }
    if let Some(n) = v.as_f64() {
        if let Some(min) = schema["minimum"].as_f64()
            && n < min
        {
            out.push(FieldError {
                path: path.into(),
                message: format!(
                    "Invalid value: {v}: {path} in body should be greater than or equal to {min}"
                ),
            });
        }
        if let Some(max) = schema["maximum"].as_f64()
            && n > max
        {
            out.push(FieldError {
                path: path.into(),
                message: format!(
                    "Invalid value: {v}: {path} in body should be less than or equal to {max}"
                ),
            });
        }
    }
    match v {
        Value::Object(m) => {
            for r in schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !m.contains_key(r) {
                    out.push(FieldError {
                        path: join(path, r),
                        message: "Required value".into(),
                    });
                }
            }
            let props = schema["properties"].as_object();
            for (k, x) in m {
                if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                if let Some(ps) = props.and_then(|p| p.get(k)) {
                    validate_at(x, ps, &join(path, k), out);
                } else if let Some(a) = schema.get("additionalProperties").filter(|a| a.is_object())
                {
                    validate_at(x, a, &join(path, k), out);
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = schema.get("items") {
                for (i, x) in a.iter().enumerate() {
                    validate_at(x, items, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

fn join(path: &str, k: &str) -> String {
    if path.is_empty() {
        k.to_string()
    } else {
        format!("{path}.{k}")
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Type, required, enum and range checks; empty when the object conforms.
pub fn validate(obj: &Value, schema: &Value) -> Vec<FieldError> {
    let mut out = Vec::new();
    validate_at(obj, schema, "", &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["replicas"], "properties": {
                "replicas": {"type": "integer", "default": 1, "minimum": 0},
                "mode": {"type": "string", "enum": ["a", "b"]},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "list": {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "string"}}}},
            }},
            "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
        }})
    }

    #[test]
    fn prune_drops_unknown_fields_but_keeps_metadata_and_preserved_subtrees() {
        let mut o = json!({"apiVersion": "g/v1", "kind": "X", "metadata": {"name": "a", "labels": {"x": "y"}},
            "junk": 1, "spec": {"replicas": 2, "extra": true, "free": {"any": {"thing": 1}}, "list": [{"n": "a", "drop": 1}]}});
        prune(&mut o, &schema());
        assert_eq!(
            o,
            json!({"apiVersion": "g/v1", "kind": "X", "metadata": {"name": "a", "labels": {"x": "y"}},
            "spec": {"replicas": 2, "free": {"any": {"thing": 1}}, "list": [{"n": "a"}]}})
        );
    }

    #[test]
    fn defaults_fill_absent_fields() {
        let mut o = json!({"spec": {}});
        apply_defaults(&mut o, &schema());
        assert_eq!(o["spec"]["replicas"], 1);
    }

    #[test]
    fn validation_reports_type_enum_required_and_range() {
        let errs = validate(&json!({"spec": {"replicas": "x", "mode": "c"}}), &schema());
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, vec!["spec.mode", "spec.replicas"]);
        assert!(errs[1].message.contains("must be of type integer"));
        let errs = validate(&json!({"spec": {"replicas": -1}}), &schema());
        assert_eq!(errs.len(), 1);
        let errs = validate(&json!({"spec": {}}), &schema());
        assert_eq!(errs[0].message, "Required value");
    }
}
