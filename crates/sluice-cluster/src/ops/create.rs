//! POST: a new object gets its namespace and name settled (`generateName` included), the
//! system metadata only the server sets, its defaults or schema processing, and is stored.

use serde_json::{Map, Value, json};

use super::crd::{prepare_crd, process_custom, register};
use super::defaults::default_builtin;
use super::quota;
use super::validation::{
    check_metadata, check_type_meta, ensure_namespace, invalid, name_causes, validate_builtin,
};
use super::{CRD_GR, WriteOpts, is_gr, meta, strip_system_fields};
use crate::error::{ApiError, Cause};
use crate::names;
use crate::store::State;
use crate::types::ResourceType;

/// POST: creates a new object.
pub fn create(
    st: &mut State,
    t: &ResourceType,
    version: &str,
    ns: &str,
    mut obj: Value,
    o: &WriteOpts,
) -> Result<Value, ApiError> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    check_type_meta(t, version, &mut obj)?;
    let m = meta(&mut obj);
    strip_system_fields(m);
    place_in_namespace(t, ns, m)?;
    let name = choose_name(st, t, ns, m)?;
    obj["metadata"]["name"] = json!(name);
    check_metadata(t, &obj)?;
    ensure_namespace(st, t, ns, &name)?;
    if st.contains(&t.gr(), ns, &name) {
        return Err(ApiError::already_exists(&t.group, &t.plural, &name));
    }
    let uid = st.new_uid();
    let m = meta(&mut obj);
    m.insert("name".into(), json!(name));
    m.insert("uid".into(), json!(uid));
    m.insert("creationTimestamp".into(), json!(o.now));
    m.insert("generation".into(), json!(1));
    let is_crd = is_gr(&t.gr(), CRD_GR);
    admit(st, t, version, &mut obj, is_crd)?;
    quota::admit(st, t, ns, &name)?;
    let new_type = if is_crd {
        Some(prepare_crd(st, &mut obj, &o.now)?)
    } else {
        None
    };
    if o.dry_run {
        return Ok(obj);
    }
    let stored = st.put(&t.gr(), obj);
    if let Some(nt) = new_type {
        register(st, nt);
    }
    quota::refresh(st, &t.gr(), ns);
    Ok((*stored).clone())
}

/// A namespaced object lives in the namespace of the URL (a body naming another is refused);
/// a cluster-scoped one has none.
fn place_in_namespace(
    t: &ResourceType,
    ns: &str,
    m: &mut Map<String, Value>,
) -> Result<(), ApiError> {
    if t.namespaced {
        match m.get("namespace").and_then(Value::as_str) {
            Some(b) if !b.is_empty() && b != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {
                m.insert("namespace".into(), json!(ns));
            }
        }
    } else {
        m.remove("namespace");
    }
    Ok(())
}

/// `metadata.name`, or a free name made from `generateName`; refused when invalid.
fn choose_name(
    st: &mut State,
    t: &ResourceType,
    ns: &str,
    m: &Map<String, Value>,
) -> Result<String, ApiError> {
    let mut name = m
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let generate = m
        .get("generateName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if name.is_empty() {
        if generate.is_empty() {
            return Err(invalid(
                t,
                "",
                vec![Cause {
                    reason: "FieldValueRequired",
                    field: "metadata.name".into(),
                    message: "Required value: name or generateName is required".into(),
                }],
            ));
        }
        let base: String = generate.chars().take(58).collect();
        for _ in 0..8 {
            let r = st.random();
            name = format!("{base}{}", names::random_suffix(r));
            if !st.contains(&t.gr(), ns, &name) {
                break;
            }
        }
    }
    let causes = name_causes(t, &name);
    if !causes.is_empty() {
        return Err(invalid(t, &name, causes));
    }
    Ok(name)
}

/// What a new object goes through before it is stored: a status it may not set yet is
/// dropped, then built-in defaults and validation, or the CRD schema.
fn admit(
    st: &mut State,
    t: &ResourceType,
    version: &str,
    obj: &mut Value,
    is_crd: bool,
) -> Result<(), ApiError> {
    let status_sub = t.version(version).is_some_and(|v| v.status);
    if status_sub && !is_crd && t.plural != "namespaces" {
        obj.as_object_mut().map(|m| m.remove("status"));
    }
    if t.crd {
        process_custom(t, version, obj)?;
    } else {
        default_builtin(st, t, obj, true);
        validate_builtin(t, obj, true)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::fixtures::{opts, state, ty};
    use super::create;

    #[test]
    fn create_in_missing_namespace_is_not_found() {
        let mut st = state();
        let cm = ty(&st, "", "v1", "configmaps");
        let e = create(
            &mut st,
            &cm,
            "v1",
            "nope",
            json!({"metadata": {"name": "a"}}),
            &opts(),
        )
        .unwrap_err();
        assert_eq!(e.message, "namespaces \"nope\" not found");
    }
}
