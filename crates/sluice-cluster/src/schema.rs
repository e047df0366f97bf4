//! Structural-schema handling of custom resources, as the apiextensions apiserver does it
//! on every write: [`prune`] unknown fields, [`apply_defaults`], then [`validate`].
//!
//! All three walk the object and look up the schema by reference (`openAPIV3Schema` of the
//! served version, as JSON); the schema is never copied, so a ~500 KB Rollout schema costs
//! only the nodes the object actually reaches.
//!
//! Supported: `type`, `properties`, `additionalProperties`, `items`, `required`, `enum`,
//! `nullable`, `default`, `minimum`/`maximum` (with OpenAPI v3.0 boolean `exclusive*`),
//! `multipleOf`, `minLength`/`maxLength` (in characters), `pattern`, `minItems`/`maxItems`,
//! `x-kubernetes-preserve-unknown-fields`, `x-kubernetes-embedded-resource`,
//! `x-kubernetes-int-or-string`. Not checked: `format`, `uniqueItems`, list-type
//! uniqueness, `min/maxProperties`, `allOf`/`anyOf`/`oneOf`/`not`, and CEL
//! `x-kubernetes-validations`. An int-or-string mismatch is reported as one type error
//! (`must be of type integer,string`) instead of upstream's anyOf breakdown.
//!
//! Messages follow kube-openapi as converted by the apiextensions apiserver, e.g.
//! `spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"`.

use regex::Regex;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

/// The kind of a validation failure; each maps to a Kubernetes `StatusCause` type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorReason {
    /// `FieldValueInvalid`: the value breaks a constraint (pattern, minimum, ...).
    Invalid,
    /// `FieldValueRequired`: a `required` property is missing.
    Required,
    /// `FieldValueNotSupported`: the value is not in the `enum`.
    Unsupported,
    /// `FieldValueTypeInvalid`: the value has the wrong JSON type (or is a forbidden null).
    TypeInvalid,
    /// `FieldValueTooLong`: a string over `maxLength`.
    TooLong,
    /// `FieldValueTooMany`: a list over `maxItems`.
    TooMany,
}

impl FieldErrorReason {
    /// The `reason` of the matching `StatusCause` in a 422 response.
    pub fn cause_type(self) -> &'static str {
        match self {
            FieldErrorReason::Invalid => "FieldValueInvalid",
            FieldErrorReason::Required => "FieldValueRequired",
            FieldErrorReason::Unsupported => "FieldValueNotSupported",
            FieldErrorReason::TypeInvalid => "FieldValueTypeInvalid",
            FieldErrorReason::TooLong => "FieldValueTooLong",
            FieldErrorReason::TooMany => "FieldValueTooMany",
        }
    }
}

/// One schema violation. `message` is what the apiserver puts in the `StatusCause`
/// (`Invalid value: ...: ...`); `Display` prefixes the path, as in the Status message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path with list indices, e.g. `spec.strategy.canary.steps[0].setWeight`.
    pub path: String,
    pub message: String,
    pub reason: FieldErrorReason,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

fn is_true(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool) == Some(true)
}

fn props(schema: &Value) -> Option<&Map<String, Value>> {
    schema.get("properties").and_then(Value::as_object)
}

/// The schema of a map's values, when `additionalProperties` is a schema.
fn additional(schema: &Value) -> Option<&Value> {
    schema.get("additionalProperties").filter(|v| v.is_object())
}

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Drops every field the schema does not declare, in place.
///
/// The root keeps `apiVersion`, `kind` and `metadata` (metadata is not governed by the
/// schema); objects marked `x-kubernetes-embedded-resource` keep theirs too.
/// `x-kubernetes-preserve-unknown-fields: true` keeps undeclared fields (declared ones
/// are still pruned inside); `additionalProperties` schemas govern map values.
pub fn prune(obj: &mut Value, schema: &Value) {
    prune_node(obj, schema, true);
}

fn prune_node(v: &mut Value, schema: &Value, keep_type_meta: bool) {
    match v {
        Value::Object(m) => {
            let preserve = is_true(schema, "x-kubernetes-preserve-unknown-fields");
            let keep_meta = keep_type_meta || is_true(schema, "x-kubernetes-embedded-resource");
            let properties = props(schema);
            let addl = additional(schema);
            let allow_all =
                schema.get("additionalProperties").and_then(Value::as_bool) == Some(true);
            m.retain(|k, child| {
                if keep_meta && (k == "apiVersion" || k == "kind" || k == "metadata") {
                    return true;
                }
                if let Some(s) = properties.and_then(|p| p.get(k)) {
                    prune_node(child, s, false);
                    true
                } else if let Some(s) = addl {
                    prune_node(child, s, false);
                    true
                } else {
                    preserve || allow_all
                }
            });
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for item in items {
                    prune_node(item, s, false);
                }
            }
        }
        _ => {}
    }
}

/// Fills in `default`s where the parent object exists, recursing into defaulted values,
/// and drops `null`s the schema does not allow (a null with a default becomes the default).
pub fn apply_defaults(obj: &mut Value, schema: &Value) {
    default_node(obj, schema);
}

fn default_node(v: &mut Value, schema: &Value) {
    match v {
        Value::Object(m) => {
            if let Some(properties) = props(schema) {
                for (k, s) in properties {
                    let default = s.get("default");
                    match m.get(k) {
                        None => {
                            if let Some(d) = default {
                                m.insert(k.clone(), d.clone());
                            }
                        }
                        Some(Value::Null) if !is_true(s, "nullable") => match default {
                            Some(d) => {
                                m.insert(k.clone(), d.clone());
                            }
                            None => {
                                m.remove(k);
                            }
                        },
                        Some(_) => {}
                    }
                }
            }
            let properties = props(schema);
            let addl = additional(schema);
            for (k, child) in m.iter_mut() {
                if let Some(s) = properties.and_then(|p| p.get(k)).or(addl) {
                    default_node(child, s);
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for item in items {
                    default_node(item, s);
                }
            }
        }
        _ => {}
    }
}

/// Checks the object against the schema; empty means valid. The root's `apiVersion`,
/// `kind` and `metadata` are not checked here (the apiserver validates ObjectMeta itself).
pub fn validate(obj: &Value, schema: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    validate_node(obj, schema, "", true, &mut errs);
    errs
}

/// The type kube-openapi reports for a value.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() == 0.0 && f.is_finite() {
                "integer"
            } else {
                "number"
            }
        }
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(want: &str, v: &Value) -> bool {
    match want {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "number" => v.is_number(),
        "integer" => type_name(v) == "integer",
        _ => true,
    }
}

/// How `field.Error` prints a bad value: strings quoted, scalars bare, the rest as JSON.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

struct Ctx<'a> {
    path: &'a str,
    errs: &'a mut Vec<FieldError>,
}

impl Ctx<'_> {
    fn push(&mut self, reason: FieldErrorReason, message: String) {
        self.errs.push(FieldError {
            path: self.path.to_string(),
            message,
            reason,
        });
    }

    fn invalid(&mut self, v: &Value, detail: String) {
        self.push(
            FieldErrorReason::Invalid,
            format!("Invalid value: {}: {detail}", show(v)),
        );
    }
}

fn validate_node(v: &Value, schema: &Value, path: &str, root: bool, errs: &mut Vec<FieldError>) {
    let mut cx = Ctx { path, errs };
    let int_or_string = is_true(schema, "x-kubernetes-int-or-string");
    let declared = schema.get("type").and_then(Value::as_str);

    if v.is_null() {
        if !is_true(schema, "nullable") {
            let want = if int_or_string {
                Some("integer,string")
            } else {
                declared
            };
            if let Some(want) = want {
                cx.push(
                    FieldErrorReason::TypeInvalid,
                    format!(
                        "Invalid value: \"null\": {path} in body must be of type {want}: \"null\""
                    ),
                );
            }
        }
        return;
    }
    let type_ok = if int_or_string {
        v.is_string() || type_name(v) == "integer"
    } else {
        declared.is_none_or(|t| type_matches(t, v))
    };
    if !type_ok {
        let want = if int_or_string {
            "integer,string"
        } else {
            declared.unwrap_or_default()
        };
        let got = type_name(v);
        cx.push(
            FieldErrorReason::TypeInvalid,
            format!("Invalid value: \"{got}\": {path} in body must be of type {want}: \"{got}\""),
        );
        return;
    }

    if let Some(Value::Array(allowed)) = schema.get("enum")
        && !allowed.iter().any(|a| json_equal(a, v))
    {
        // Upstream JSON-encodes non-string enum values, then quotes every value.
        let values: Vec<String> = allowed
            .iter()
            .map(|a| match a {
                Value::String(s) => format!("{s:?}"),
                other => format!("{:?}", other.to_string()),
            })
            .collect();
        cx.push(
            FieldErrorReason::Unsupported,
            format!(
                "Unsupported value: {}: supported values: {}",
                show(v),
                values.join(", ")
            ),
        );
    }

    match v {
        Value::String(s) => check_string(&mut cx, v, s, schema),
        Value::Number(_) => check_number(&mut cx, v, schema),
        Value::Array(items) => {
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && items.len() as u64 > max
            {
                cx.push(
                    FieldErrorReason::TooMany,
                    format!("Too many: {}: must have at most {max} items", items.len()),
                );
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                let detail = format!("{path} in body should have at least {min} items");
                cx.invalid(v, detail);
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate_node(item, item_schema, &format!("{path}[{i}]"), false, errs);
                }
            }
        }
        Value::Object(m) => {
            let embedded = root || is_true(schema, "x-kubernetes-embedded-resource");
            if let Some(Value::Array(required)) = schema.get("required") {
                for r in required.iter().filter_map(Value::as_str) {
                    if root && (r == "apiVersion" || r == "kind" || r == "metadata") {
                        continue;
                    }
                    if !m.contains_key(r) {
                        errs.push(FieldError {
                            path: child_path(path, r),
                            message: "Required value".into(),
                            reason: FieldErrorReason::Required,
                        });
                    }
                }
            }
            let properties = props(schema);
            let addl = additional(schema);
            for (k, child) in m {
                if embedded && k == "metadata" {
                    continue;
                }
                if root && (k == "apiVersion" || k == "kind") {
                    continue;
                }
                if let Some(s) = properties.and_then(|p| p.get(k)).or(addl) {
                    validate_node(child, s, &child_path(path, k), false, errs);
                }
            }
        }
        _ => {}
    }
}

fn check_string(cx: &mut Ctx, v: &Value, s: &str, schema: &Value) {
    let path = cx.path.to_string();
    let chars = s.chars().count() as u64;
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && chars > max
    {
        let unit = if max == 1 { "byte" } else { "bytes" };
        cx.push(
            FieldErrorReason::TooLong,
            format!("Too long: may not be more than {max} {unit}"),
        );
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && chars < min
    {
        cx.invalid(
            v,
            format!("{path} in body should be at least {min} chars long"),
        );
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
        && let Some(re) = cached_regex(pattern)
        && !re.is_match(s)
    {
        cx.invalid(v, format!("{path} in body should match '{pattern}'"));
    }
}

fn check_number(cx: &mut Ctx, v: &Value, schema: &Value) {
    let path = cx.path.to_string();
    let Some(x) = v.as_f64() else { return };
    if let Some(min_v) = schema.get("minimum")
        && let Some(min) = min_v.as_f64()
    {
        let exclusive = is_true(schema, "exclusiveMinimum");
        if exclusive && x <= min {
            cx.invalid(
                v,
                format!("{path} in body should be greater than {}", min_v),
            );
        } else if !exclusive && x < min {
            cx.invalid(
                v,
                format!(
                    "{path} in body should be greater than or equal to {}",
                    min_v
                ),
            );
        }
    }
    if let Some(max_v) = schema.get("maximum")
        && let Some(max) = max_v.as_f64()
    {
        let exclusive = is_true(schema, "exclusiveMaximum");
        if exclusive && x >= max {
            cx.invalid(v, format!("{path} in body should be less than {}", max_v));
        } else if !exclusive && x > max {
            cx.invalid(
                v,
                format!("{path} in body should be less than or equal to {}", max_v),
            );
        }
    }
    if let Some(m_v) = schema.get("multipleOf")
        && let Some(m) = m_v.as_f64()
        && m > 0.0
        && (x / m).fract() != 0.0
    {
        cx.invalid(v, format!("{path} in body should be a multiple of {}", m_v));
    }
}

fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Compiled `pattern`s, shared across calls so each is compiled once per process.
/// An invalid pattern is skipped (the apiserver rejects such a CRD at creation).
fn cached_regex(pattern: &str) -> Option<Arc<Regex>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<Arc<Regex>>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut guard = cache.lock().unwrap_or_else(|e| e.into_inner());
    guard
        .entry(pattern.to_string())
        .or_insert_with(|| Regex::new(pattern).ok().map(Arc::new))
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rollout_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object"},
                "spec": {
                    "type": "object",
                    "required": ["selector"],
                    "properties": {
                        "replicas": {"type": "integer", "format": "int32", "default": 1, "minimum": 0},
                        "revisionHistoryLimit": {"type": "integer", "default": 10},
                        "paused": {"type": "boolean"},
                        "selector": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                                     "properties": {"matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}}},
                        "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                                     "properties": {"spec": {"type": "object", "properties": {"image": {"type": "string"}}}}},
                        "strategy": {"type": "object", "properties": {
                            "canary": {"type": "object", "properties": {
                                "maxSurge": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                                "scaleDownDelaySeconds": {"type": "integer", "default": 30},
                                "analysis": {"type": "object", "properties": {
                                    "startingStep": {"type": "integer", "default": 0, "maximum": 100}
                                }},
                                "steps": {"type": "array", "maxItems": 3, "items": {"type": "object", "properties": {
                                    "setWeight": {"type": "integer", "minimum": 0, "maximum": 100},
                                    "pause": {"type": "object", "properties": {"duration": {"x-kubernetes-int-or-string": true}}}
                                }}}
                            }}
                        }},
                        "workloadRef": {"type": "object", "nullable": true, "properties": {
                            "scaleDown": {"type": "string", "enum": ["never", "onsuccess", "progressively"]},
                            "name": {"type": "string", "maxLength": 5, "minLength": 1, "pattern": "^[a-z]+$"}
                        }},
                        "plugin": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "ratio": {"type": "number", "minimum": 0, "exclusiveMinimum": true, "multipleOf": 0.5},
                        "level": {"type": "integer", "enum": [1, 2]}
                    }
                },
                "status": {"type": "object", "properties": {"observedGeneration": {"type": "string"}}}
            }
        })
    }

    #[test]
    fn pruning_drops_undeclared_fields_and_keeps_what_the_schema_allows() {
        let schema = rollout_schema();
        let mut obj = json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "r", "labels": {"a": "b"}, "whatever": 1},
            "unknownTop": true,
            "spec": {
                "replicas": 2, "bogus": "x",
                "selector": {"matchLabels": {"app": "r"}, "matchExpressions": []},
                "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"labels": {"x": "y"}},
                             "spec": {"image": "nginx", "dropme": 1}},
                "strategy": {"canary": {"steps": [{"setWeight": 10, "nope": 1}], "old": 1}},
                "plugin": {"anything": {"goes": [1, 2]}}
            },
            "status": {"observedGeneration": "1", "stale": true}
        });
        prune(&mut obj, &schema);
        assert_eq!(
            obj,
            json!({
                "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                "metadata": {"name": "r", "labels": {"a": "b"}, "whatever": 1},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"app": "r"}, "matchExpressions": []},
                    "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"labels": {"x": "y"}},
                                 "spec": {"image": "nginx"}},
                    "strategy": {"canary": {"steps": [{"setWeight": 10}]}},
                    "plugin": {"anything": {"goes": [1, 2]}}
                },
                "status": {"observedGeneration": "1"}
            })
        );
    }

    #[test]
    fn an_object_without_properties_is_pruned_empty() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object"}}});
        let mut obj = json!({"spec": {"a": 1}});
        prune(&mut obj, &schema);
        assert_eq!(obj, json!({"spec": {}}));
    }

    #[test]
    fn defaults_apply_where_the_parent_exists_and_nest_into_defaulted_values() {
        let schema = rollout_schema();
        let cases = [
            (json!({}), json!({})),
            (
                json!({"spec": {}}),
                json!({"spec": {"replicas": 1, "revisionHistoryLimit": 10}}),
            ),
            (
                json!({"spec": {"replicas": 3, "strategy": {"canary": {"analysis": {}}}}}),
                json!({"spec": {"replicas": 3, "revisionHistoryLimit": 10,
                                "strategy": {"canary": {"scaleDownDelaySeconds": 30, "analysis": {"startingStep": 0}}}}}),
            ),
            (
                json!({"spec": {"replicas": null, "paused": null, "workloadRef": null}}),
                json!({"spec": {"replicas": 1, "revisionHistoryLimit": 10, "workloadRef": null}}),
            ),
        ];
        for (input, want) in cases {
            let mut obj = input.clone();
            apply_defaults(&mut obj, &schema);
            assert_eq!(obj, want, "{input}");
        }
        let nested = json!({"type": "object", "properties": {"a": {"type": "object", "default": {},
            "properties": {"b": {"type": "integer", "default": 5}}}}});
        let mut obj = json!({});
        apply_defaults(&mut obj, &nested);
        assert_eq!(obj, json!({"a": {"b": 5}}));
    }

    fn errors_of(spec: Value) -> Vec<String> {
        let obj = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "r"}, "spec": spec});
        validate(&obj, &rollout_schema())
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn validation_reports_the_apiservers_field_errors() {
        let sel = json!({"matchLabels": {"app": "r"}});
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (json!({"selector": sel}), vec![]),
            (
                json!({"selector": sel, "replicas": "string"}),
                vec![
                    r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#,
                ],
            ),
            (
                json!({"selector": sel, "replicas": 1.5}),
                vec![
                    r#"spec.replicas: Invalid value: "number": spec.replicas in body must be of type integer: "number""#,
                ],
            ),
            (json!({"selector": sel, "replicas": 2.0}), vec![]),
            (json!({}), vec!["spec.selector: Required value"]),
            (
                json!({"selector": sel, "replicas": -1}),
                vec![
                    "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0",
                ],
            ),
            (
                json!({"selector": sel, "strategy": {"canary": {"steps": [{"setWeight": 101}]}}}),
                vec![
                    "spec.strategy.canary.steps[0].setWeight: Invalid value: 101: spec.strategy.canary.steps[0].setWeight in body should be less than or equal to 100",
                ],
            ),
            (
                json!({"selector": sel, "strategy": {"canary": {"steps": [{}, {}, {}, {}]}}}),
                vec!["spec.strategy.canary.steps: Too many: 4: must have at most 3 items"],
            ),
            (
                json!({"selector": sel, "strategy": {"canary": {"maxSurge": "25%", "steps": [{"pause": {"duration": 30}}]}}}),
                vec![],
            ),
            (
                json!({"selector": sel, "strategy": {"canary": {"maxSurge": true}}}),
                vec![
                    r#"spec.strategy.canary.maxSurge: Invalid value: "boolean": spec.strategy.canary.maxSurge in body must be of type integer,string: "boolean""#,
                ],
            ),
            (
                json!({"selector": sel, "workloadRef": {"scaleDown": "sometimes"}}),
                vec![
                    r#"spec.workloadRef.scaleDown: Unsupported value: "sometimes": supported values: "never", "onsuccess", "progressively""#,
                ],
            ),
            (
                json!({"selector": sel, "level": 3}),
                vec![r#"spec.level: Unsupported value: 3: supported values: "1", "2""#],
            ),
            (
                json!({"selector": sel, "workloadRef": {"name": "toolongname"}}),
                vec!["spec.workloadRef.name: Too long: may not be more than 5 bytes"],
            ),
            (
                json!({"selector": sel, "workloadRef": {"name": "AB"}}),
                vec![
                    r#"spec.workloadRef.name: Invalid value: "AB": spec.workloadRef.name in body should match '^[a-z]+$'"#,
                ],
            ),
            (
                json!({"selector": sel, "workloadRef": {"name": ""}}),
                vec![
                    r#"spec.workloadRef.name: Invalid value: "": spec.workloadRef.name in body should be at least 1 chars long"#,
                    r#"spec.workloadRef.name: Invalid value: "": spec.workloadRef.name in body should match '^[a-z]+$'"#,
                ],
            ),
            (json!({"selector": sel, "workloadRef": null}), vec![]),
            (
                json!({"selector": sel, "paused": null}),
                vec![
                    r#"spec.paused: Invalid value: "null": spec.paused in body must be of type boolean: "null""#,
                ],
            ),
            (
                json!({"selector": sel, "ratio": 0}),
                vec!["spec.ratio: Invalid value: 0: spec.ratio in body should be greater than 0"],
            ),
            (
                json!({"selector": sel, "ratio": 0.75}),
                vec![
                    "spec.ratio: Invalid value: 0.75: spec.ratio in body should be a multiple of 0.5",
                ],
            ),
            (
                json!({"selector": {"matchLabels": {"app": 1}}}),
                vec![
                    r#"spec.selector.matchLabels.app: Invalid value: "integer": spec.selector.matchLabels.app in body must be of type string: "integer""#,
                ],
            ),
            (
                json!({"selector": sel, "template": {"metadata": {"labels": 5}, "spec": {"image": 5}}}),
                vec![
                    r#"spec.template.spec.image: Invalid value: "integer": spec.template.spec.image in body must be of type string: "integer""#,
                ],
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(errors_of(spec.clone()), want, "{spec}");
        }
    }

    #[test]
    fn field_errors_carry_status_cause_reasons() {
        let errs = validate(&json!({"spec": {"replicas": "x"}}), &rollout_schema());
        let reasons: Vec<(&str, &str)> = errs
            .iter()
            .map(|e| (e.path.as_str(), e.reason.cause_type()))
            .collect();
        assert_eq!(
            reasons,
            vec![
                ("spec.selector", "FieldValueRequired"),
                ("spec.replicas", "FieldValueTypeInvalid")
            ]
        );
        assert_eq!(errs[0].message, "Required value");
    }

    #[test]
    fn a_top_level_field_of_the_wrong_type_is_reported_at_its_name() {
        let errs = validate(&json!({"spec": []}), &rollout_schema());
        assert_eq!(errs[0].path, "spec");
        assert_eq!(errs[0].reason, FieldErrorReason::TypeInvalid);
    }
}
