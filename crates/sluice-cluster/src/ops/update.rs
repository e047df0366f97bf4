//! PUT (and the tail of every PATCH): the new content of one part of an object, checked
//! against the stored object (resourceVersion, immutable fields), admitted like a create, and
//! stored only when it changes something. `metadata.generation` counts spec changes.

use std::sync::Arc;

use serde_json::{Value, json};

use super::crd::{check_identity_kept, prepare_crd, process_custom, register};
use super::defaults::{default_builtin, keep_cluster_ips};
use super::delete::remove_final;
use super::validation::{check_immutable, check_metadata, check_type_meta, validate_builtin};
use super::{CRD_GR, NS_GR, Part, WriteOpts, is_gr, meta, rv_of, strip_system_fields};
use crate::error::{self, ApiError, Cause};
use crate::store::State;
use crate::types::{GroupResource, ResourceType};

/// PUT (and the tail of PATCH): replaces the object's `part`.
#[allow(clippy::too_many_arguments)]
pub fn update(
    st: &mut State,
    t: &ResourceType,
    version: &str,
    ns: &str,
    name: &str,
    mut obj: Value,
    part: Part,
    o: &WriteOpts,
) -> Result<Value, ApiError> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    check_type_meta(t, version, &mut obj)?;
    check_addressed(t, ns, name, &obj)?;
    let gr = t.gr();
    let Some(current) = st.get(&gr, ns, name) else {
        return Err(ApiError::not_found(&t.group, &t.plural, name));
    };
    check_resource_version(t, name, &obj, &current)?;
    let status_sub = t.version(version).is_some_and(|v| v.status);
    let mut new = match part {
        Part::Status => with_status_of(&current, &obj),
        Part::Main => main_part(t, ns, name, obj, &current, status_sub),
    };
    new["apiVersion"] = current["apiVersion"].clone();
    check_metadata(t, &new)?;
    admit(st, t, version, part, &current, &mut new)?;
    let is_crd = is_gr(&gr, CRD_GR);
    let new_type = if is_crd {
        Some(prepare_crd(st, &mut new, &o.now)?)
    } else {
        None
    };
    if is_crd {
        check_identity_kept(t, name, &current, &new)?;
    }
    if !same_spec(&new, &current, status_sub) {
        let g = current["metadata"]["generation"].as_i64().unwrap_or(1);
        new["metadata"]["generation"] = json!(g + 1);
    }
    if is_no_op(&current, &new) {
        // A no-op write neither bumps the resourceVersion nor wakes watchers.
        return Ok((*current).clone());
    }
    if o.dry_run {
        // A dry run answers with the object as it would be, still at the stored version.
        new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
        return Ok(new);
    }
    Ok(store(st, &gr, ns, name, new, new_type))
}

/// The body must name the object of the URL (or nothing).
fn check_addressed(t: &ResourceType, ns: &str, name: &str, obj: &Value) -> Result<(), ApiError> {
    let body_name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    if t.namespaced
        && let Some(bns) = obj["metadata"]["namespace"].as_str()
        && !bns.is_empty()
        && bns != ns
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}

/// Optimistic concurrency: a body's resourceVersion must be the stored one.
fn check_resource_version(
    t: &ResourceType,
    name: &str,
    obj: &Value,
    current: &Value,
) -> Result<(), ApiError> {
    let want_rv = rv_of(obj);
    if want_rv.is_empty() && t.crd {
        // Custom resources allow no unconditional updates.
        return Err(ApiError::invalid(
            &error::group_resource(&t.group, &t.plural),
            &t.group,
            &t.plural,
            name,
            vec![Cause {
                reason: "FieldValueInvalid",
                field: "metadata.resourceVersion".into(),
                message: "Invalid value: 0x0: must be specified for an update".into(),
            }],
        ));
    }
    if !want_rv.is_empty() && want_rv != rv_of(current) {
        return Err(ApiError::conflict(&t.group, &t.plural, name));
    }
    Ok(())
}

/// A `/status` write: the stored object with the body's status.
fn with_status_of(current: &Value, obj: &Value) -> Value {
    let mut n = current.clone();
    match obj.get("status") {
        Some(s) => n["status"] = s.clone(),
        None => {
            n.as_object_mut().map(|m| m.remove("status"));
        }
    }
    n
}

/// A main write: the body, keeping the stored status (when status is a subresource) and the
/// metadata only the server sets.
fn main_part(
    t: &ResourceType,
    ns: &str,
    name: &str,
    mut n: Value,
    current: &Value,
    status_sub: bool,
) -> Value {
    if status_sub {
        match current.get("status") {
            Some(s) => n["status"] = s.clone(),
            None => {
                n.as_object_mut().map(|m| m.remove("status"));
            }
        }
    }
    let m = meta(&mut n);
    strip_system_fields(m);
    let cm = current["metadata"].as_object().cloned().unwrap_or_default();
    for k in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        if let Some(v) = cm.get(k) {
            m.insert(k.into(), v.clone());
        }
    }
    m.insert("name".into(), json!(name));
    if t.namespaced {
        m.insert("namespace".into(), json!(ns));
    } else {
        m.remove("namespace");
    }
    m.remove("generateName");
    if let Some(g) = cm.get("generateName") {
        m.insert("generateName".into(), g.clone());
    }
    n
}

/// Defaults and validation of the new content, as on create, plus the immutable fields.
fn admit(
    st: &mut State,
    t: &ResourceType,
    version: &str,
    part: Part,
    current: &Value,
    new: &mut Value,
) -> Result<(), ApiError> {
    if t.crd {
        if part == Part::Main {
            process_custom(t, version, new)?;
        }
        return Ok(());
    }
    if (t.group.as_str(), t.plural.as_str()) == ("", "services") {
        keep_cluster_ips(current, new);
    }
    default_builtin(st, t, new, false);
    if part == Part::Main {
        validate_builtin(t, new, false)?;
    }
    check_immutable(t, current, new)
}

/// Whether two versions agree in every part whose change bumps `metadata.generation`:
/// everything but `metadata` (and `status`, when it is a subresource).
fn same_spec(a: &Value, b: &Value, status_sub: bool) -> bool {
    let skipped = |k: &str| k == "metadata" || (status_sub && k == "status");
    equal_but(a, b, skipped)
}

/// True when `new` differs from `current` in nothing but (at most) the resourceVersion.
fn is_no_op(current: &Value, new: &Value) -> bool {
    equal_but(current, new, |k| k == "metadata")
        && equal_but(&current["metadata"], &new["metadata"], |k| {
            k == "resourceVersion"
        })
}

/// Whether two values are equal, leaving out the members `skipped` names when both are
/// objects (a member missing on one side counts as different, unless skipped).
fn equal_but(a: &Value, b: &Value, skipped: impl Fn(&str) -> bool) -> bool {
    let (Value::Object(a), Value::Object(b)) = (a, b) else {
        return a == b;
    };
    let kept = |m: &'_ serde_json::Map<String, Value>| m.keys().filter(|k| !skipped(k)).count();
    kept(a) == kept(b)
        && a.iter()
            .filter(|(k, _)| !skipped(k))
            .all(|(k, v)| b.get(k) == Some(v))
}

/// Stores `new`, serves the type of a CRD it defines, and completes a deletion that no
/// finalizer holds any more.
fn store(
    st: &mut State,
    gr: &GroupResource,
    ns: &str,
    name: &str,
    new: Value,
    new_type: Option<Arc<ResourceType>>,
) -> Value {
    let deleting = !new["metadata"]["deletionTimestamp"].is_null();
    let no_finalizers = new["metadata"]["finalizers"]
        .as_array()
        .is_none_or(|f| f.is_empty());
    let stored = st.put(gr, new);
    if let Some(nt) = new_type {
        register(st, nt);
    }
    if deleting
        && no_finalizers
        && !is_gr(gr, NS_GR)
        && let Some(gone) = remove_final(st, gr, ns, name)
    {
        return (*gone).clone();
    }
    (*stored).clone()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::fixtures::{deployment, opts, state, ty};
    use super::super::{Part, create};
    use super::update;

    #[test]
    fn stale_resource_version_conflicts_and_changes_nothing() {
        let mut st = state();
        let cm = ty(&st, "", "v1", "configmaps");
        let c = create(
            &mut st,
            &cm,
            "v1",
            "default",
            json!({"metadata": {"name": "a"}, "data": {"k": "1"}}),
            &opts(),
        )
        .unwrap();
        let mut upd = c.clone();
        upd["data"]["k"] = json!("2");
        update(
            &mut st,
            &cm,
            "v1",
            "default",
            "a",
            upd.clone(),
            Part::Main,
            &opts(),
        )
        .unwrap();
        let before = st.rv;
        let err = update(&mut st, &cm, "v1", "default", "a", upd, Part::Main, &opts()).unwrap_err();
        assert_eq!((err.code, err.reason), (409, "Conflict"));
        assert_eq!(st.rv, before);
    }

    #[test]
    fn only_the_resource_version_may_differ_in_a_no_op_and_only_spec_parts_bump_generation() {
        let a = json!({"kind": "X", "metadata": {"name": "a", "resourceVersion": "5"},
                       "spec": {"r": 1}, "status": {"s": 1}});
        let cases = [
            (
                json!({"kind": "X", "metadata": {"name": "a", "resourceVersion": "6"}, "spec": {"r": 1}, "status": {"s": 1}}),
                true,
            ),
            (
                json!({"kind": "X", "metadata": {"name": "a"}, "spec": {"r": 1}, "status": {"s": 1}}),
                true,
            ),
            (
                json!({"kind": "X", "metadata": {"name": "a", "resourceVersion": "5", "labels": {}}, "spec": {"r": 1}, "status": {"s": 1}}),
                false,
            ),
            (
                json!({"kind": "X", "metadata": {"name": "a", "resourceVersion": "5"}, "spec": {"r": 1}}),
                false,
            ),
            (
                json!({"kind": "X", "metadata": {"name": "a", "resourceVersion": "5"}, "spec": {"r": 1}, "status": {"s": 1}, "extra": 1}),
                false,
            ),
        ];
        for (b, no_op) in cases {
            assert_eq!(super::is_no_op(&a, &b), no_op, "{b}");
        }
        let spec = [
            (
                json!({"kind": "X", "metadata": {"name": "b"}, "spec": {"r": 1}, "status": {"s": 2}}),
                true,
                false,
            ),
            (
                json!({"kind": "X", "metadata": {"name": "a"}, "spec": {"r": 2}, "status": {"s": 1}}),
                false,
                false,
            ),
            (
                json!({"kind": "X", "metadata": {"name": "a"}, "spec": {"r": 1}}),
                true,
                false,
            ),
            (
                json!({"kind": "Y", "metadata": {"name": "a"}, "spec": {"r": 1}, "status": {"s": 1}}),
                false,
                false,
            ),
        ];
        for (b, same_with_status_sub, same_without) in spec {
            assert_eq!(super::same_spec(&a, &b, true), same_with_status_sub, "{b}");
            assert_eq!(super::same_spec(&a, &b, false), same_without, "{b}");
        }
    }

    #[test]
    fn generation_bumps_on_spec_but_not_status_or_metadata() {
        let mut st = state();
        let d = ty(&st, "apps", "v1", "deployments");
        let c = create(&mut st, &d, "v1", "default", deployment("d", 1), &opts()).unwrap();
        assert_eq!(c["metadata"]["generation"], 1);
        let mut s = c.clone();
        s["status"] = json!({"replicas": 1});
        let s = update(&mut st, &d, "v1", "default", "d", s, Part::Status, &opts()).unwrap();
        assert_eq!(s["metadata"]["generation"], 1);
        assert_eq!(s["status"]["replicas"], 1);
        let mut l = s.clone();
        l["metadata"]["labels"] = json!({"a": "b"});
        let l = update(&mut st, &d, "v1", "default", "d", l, Part::Main, &opts()).unwrap();
        assert_eq!(l["metadata"]["generation"], 1);
        let mut sp = l.clone();
        sp["spec"]["replicas"] = json!(3);
        sp["status"] = json!({"replicas": 99});
        let sp = update(&mut st, &d, "v1", "default", "d", sp, Part::Main, &opts()).unwrap();
        assert_eq!(sp["metadata"]["generation"], 2);
        assert_eq!(sp["status"]["replicas"], 1, "main writes ignore status");
    }

    #[test]
    fn kinds_without_status_subresource_bump_generation_on_any_content_change() {
        let mut st = state();
        let cm = ty(&st, "", "v1", "configmaps");
        let c = create(
            &mut st,
            &cm,
            "v1",
            "default",
            json!({"metadata": {"name": "a"}, "data": {"k": "1"}}),
            &opts(),
        )
        .unwrap();
        let mut u = c;
        u["data"]["k"] = json!("2");
        let u = update(&mut st, &cm, "v1", "default", "a", u, Part::Main, &opts()).unwrap();
        assert_eq!(u["metadata"]["generation"], 2);
    }

    #[test]
    fn no_op_update_keeps_the_resource_version() {
        let mut st = state();
        let cm = ty(&st, "", "v1", "configmaps");
        let c = create(
            &mut st,
            &cm,
            "v1",
            "default",
            json!({"metadata": {"name": "a"}}),
            &opts(),
        )
        .unwrap();
        let u = update(
            &mut st,
            &cm,
            "v1",
            "default",
            "a",
            c.clone(),
            Part::Main,
            &opts(),
        )
        .unwrap();
        assert_eq!(
            u["metadata"]["resourceVersion"],
            c["metadata"]["resourceVersion"]
        );
    }
}
