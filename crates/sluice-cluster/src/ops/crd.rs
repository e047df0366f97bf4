//! What CustomResourceDefinitions mean to writes: a CRD write is validated and given the
//! status of an established CRD, its type is served from the moment it is stored and gone
//! with it, and the objects of a custom resource are pruned, defaulted and validated by the
//! schema of their version.

use std::sync::Arc;

use serde_json::{Value, json};

use super::validation::invalid;
use super::{CRD_GR, is_gr};
use crate::error::{ApiError, Cause};
use crate::schema;
use crate::store::State;
use crate::types::{self, GroupResource, ResourceType};

/// Schema-driven processing of a custom resource: prune, default, validate.
pub(super) fn process_custom(
    t: &ResourceType,
    version: &str,
    obj: &mut Value,
) -> Result<(), ApiError> {
    let Some(schema) = t.version(version).and_then(|v| v.schema.as_ref()) else {
        return Ok(());
    };
    schema::prune(obj, schema);
    schema::apply_defaults(obj, schema);
    let errs = schema::validate(obj, schema);
    if errs.is_empty() {
        return Ok(());
    }
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    Err(invalid(
        t,
        &name,
        errs.into_iter()
            .map(|e| Cause {
                reason: e.reason.cause_type(),
                field: e.path,
                message: e.message,
            })
            .collect(),
    ))
}

/// Validates a CRD and fills in the status an established CRD has.
pub(super) fn prepare_crd(
    st: &State,
    obj: &mut Value,
    now: &str,
) -> Result<Arc<ResourceType>, ApiError> {
    let t = served_type(st, obj)?;
    let names = &obj["spec"]["names"];
    let since = obj["status"]["conditions"]
        .as_array()
        .and_then(|c| c.first())
        .and_then(|c| c["lastTransitionTime"].as_str())
        .unwrap_or(now)
        .to_string();
    let stored: Vec<String> = obj["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .filter_map(|v| v["name"].as_str().map(str::to_string))
        .collect();
    obj["status"] = json!({
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": since},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": since},
        ],
        "acceptedNames": {
            "plural": t.plural, "singular": t.singular, "kind": t.kind, "listKind": t.list_kind,
            "shortNames": names["shortNames"].clone(), "categories": names["categories"].clone(),
        },
        "storedVersions": stored,
    });
    if let Some(an) = obj["status"]["acceptedNames"].as_object_mut() {
        an.retain(|_, v| !v.is_null());
    }
    Ok(Arc::new(t))
}

/// The type a CRD defines, refused when the CRD is malformed, misnamed, or would shadow a
/// built-in group.
fn served_type(st: &State, obj: &Value) -> Result<ResourceType, ApiError> {
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let crd_t = st
        .registry
        .types
        .get(&(CRD_GR.0.to_string(), CRD_GR.1.to_string()))
        .cloned()
        .expect("CRDs are built in");
    let t = types::from_crd(obj).map_err(|m| {
        invalid(
            &crd_t,
            &name,
            vec![Cause {
                reason: "FieldValueRequired",
                field: "spec".into(),
                message: m,
            }],
        )
    })?;
    let want = format!("{}.{}", t.plural, t.group);
    if name != want {
        return Err(invalid(
            &crd_t,
            &name,
            vec![Cause {
                reason: "FieldValueInvalid",
                field: "metadata.name".into(),
                message: format!(
                    "Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"
                ),
            }],
        ));
    }
    if let Some(existing) = st.registry.types.get(&t.gr())
        && !existing.crd
    {
        return Err(invalid(
            &crd_t,
            &name,
            vec![Cause {
                reason: "FieldValueInvalid",
                field: "spec.group".into(),
                message: format!("Invalid value: {:?}: is a built-in API group", t.group),
            }],
        ));
    }
    Ok(t)
}

/// The stored objects of a custom resource are keyed by its group and plural, so a CRD
/// update may not change them.
pub(super) fn check_identity_kept(
    t: &ResourceType,
    name: &str,
    current: &Value,
    new: &Value,
) -> Result<(), ApiError> {
    if current["spec"]["names"]["plural"] != new["spec"]["names"]["plural"]
        || current["spec"]["group"] != new["spec"]["group"]
    {
        return Err(invalid(
            t,
            name,
            vec![Cause {
                reason: "FieldValueInvalid",
                field: "spec.names.plural".into(),
                message: "Invalid value: the group and plural of a CustomResourceDefinition are immutable".into(),
            }],
        ));
    }
    Ok(())
}

/// Serves the type of a stored CRD.
pub(super) fn register(st: &mut State, t: Arc<ResourceType>) {
    st.registry.types.insert(t.gr(), t);
}

/// After the CRD `gone` was removed: its type is no longer served and its objects go too.
pub(super) fn unregister(st: &mut State, gr: &GroupResource, gone: &Value) {
    if is_gr(gr, CRD_GR)
        && let Ok(t) = types::from_crd(gone)
    {
        let cgr = t.gr();
        if st.registry.types.get(&cgr).is_some_and(|x| x.crd) {
            st.registry.types.remove(&cgr);
            st.drop_resource(&cgr);
        }
    }
}
