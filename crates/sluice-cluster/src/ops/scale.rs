//! The `/scale` subresource: an autoscaling/v1 Scale view of any object whose type declares
//! where its replica counts and selector live (built-in workloads, CRDs with a scale
//! subresource), and replica writes through that view.

use serde_json::{Value, json};

use super::{Part, WriteOpts, rv_of, update};
use crate::error::{ApiError, Cause};
use crate::selector::label_selector_string;
use crate::store::State;
use crate::types::ResourceType;

/// Reads a dotted JSON path such as `.spec.replicas`.
fn get_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = obj;
    for seg in path
        .trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
    {
        cur = cur.get(seg)?;
    }
    Some(cur)
}

fn set_path(obj: &mut Value, path: &str, v: Value) {
    let segs: Vec<&str> = path
        .trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
        .collect();
    let mut cur = obj;
    for (i, seg) in segs.iter().enumerate() {
        if i == segs.len() - 1 {
            cur[*seg] = v;
            return;
        }
        if !cur[*seg].is_object() {
            cur[*seg] = json!({});
        }
        cur = &mut cur[*seg];
    }
}

/// The autoscaling/v1 Scale view of an object.
pub fn scale_of(t: &ResourceType, version: &str, obj: &Value) -> Result<Value, ApiError> {
    let Some(spec) = t.version(version).and_then(|v| v.scale.clone()) else {
        return Err(ApiError::no_resource());
    };
    let selector = spec
        .label_selector_path
        .as_deref()
        .and_then(|p| get_path(obj, p))
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other if other.is_object() => label_selector_string(other),
            _ => String::new(),
        })
        .unwrap_or_default();
    let m = &obj["metadata"];
    let mut status = json!({
        "replicas": get_path(obj, &spec.status_replicas_path).and_then(Value::as_i64).unwrap_or(0),
    });
    if !selector.is_empty() {
        status["selector"] = json!(selector);
    }
    let mut meta = json!({
        "name": m["name"], "uid": m["uid"], "resourceVersion": m["resourceVersion"],
        "creationTimestamp": m["creationTimestamp"],
    });
    if t.namespaced {
        meta["namespace"] = m["namespace"].clone();
    }
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": meta,
        "spec": {"replicas": get_path(obj, &spec.spec_replicas_path).and_then(Value::as_i64).unwrap_or(0)},
        "status": status,
    }))
}

/// PUT/PATCH of `/scale`: writes the replica count through to the object.
pub fn update_scale(
    st: &mut State,
    t: &ResourceType,
    version: &str,
    ns: &str,
    name: &str,
    scale: &Value,
    o: &WriteOpts,
) -> Result<Value, ApiError> {
    let Some(spec) = t.version(version).and_then(|v| v.scale.clone()) else {
        return Err(ApiError::no_resource());
    };
    let Some(current) = st.get(&t.gr(), ns, name) else {
        return Err(ApiError::not_found(&t.group, &t.plural, name));
    };
    let rv = rv_of(scale);
    if !rv.is_empty() && rv != rv_of(&current) {
        return Err(ApiError::conflict(&t.group, &t.plural, name));
    }
    let replicas = scale["spec"]["replicas"].as_i64();
    let Some(replicas) = replicas.filter(|r| *r >= 0) else {
        let shown = scale["spec"]["replicas"].to_string();
        return Err(ApiError::invalid(
            "Scale.autoscaling",
            "autoscaling",
            "Scale",
            name,
            vec![Cause {
                reason: "FieldValueInvalid",
                field: "spec.replicas".into(),
                message: format!("Invalid value: {shown}: must be greater than or equal to 0"),
            }],
        ));
    };
    let mut new = (*current).clone();
    set_path(&mut new, &spec.spec_replicas_path, json!(replicas));
    let updated = update(st, t, version, ns, name, new, Part::Main, o)?;
    scale_of(t, version, &updated)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::create;
    use super::super::fixtures::{deployment, opts, state, ty};
    use super::update_scale;

    #[test]
    fn scale_reads_and_writes_replicas_through_the_paths() {
        let mut st = state();
        let d = ty(&st, "apps", "v1", "deployments");
        create(&mut st, &d, "v1", "default", deployment("d", 2), &opts()).unwrap();
        let s = update_scale(
            &mut st,
            &d,
            "v1",
            "default",
            "d",
            &json!({"spec": {"replicas": 5}}),
            &opts(),
        )
        .unwrap();
        assert_eq!(s["spec"]["replicas"], 5);
        assert_eq!(s["status"]["selector"], "app=x");
        let e = update_scale(
            &mut st,
            &d,
            "v1",
            "default",
            "d",
            &json!({"spec": {"replicas": -1}}),
            &opts(),
        )
        .unwrap_err();
        assert_eq!(e.code, 422);
    }
}
