//! The checks that reject a write before anything is stored: the body must match the URL it
//! was sent to, names and metadata must be well-formed, the namespace must accept new content,
//! and the built-in kinds' selector rules and immutable fields hold. Error texts copy the
//! apiserver's, because kubectl prints them verbatim.

use serde_json::{Value, json};

use super::NS_GR;
use crate::error::{self, ApiError, Cause};
use crate::names::{self, NameRule};
use crate::selector::{Selector, label_selector_string};
use crate::store::State;
use crate::types::ResourceType;

/// A 422 Invalid answer about the object `name` of type `t`.
pub(super) fn invalid(t: &ResourceType, name: &str, causes: Vec<Cause>) -> ApiError {
    ApiError::invalid(&t.qualified_kind(), &t.group, &t.kind, name, causes)
}

/// Rejects a body whose apiVersion/kind disagree with the URL, then fills them in.
pub(super) fn check_type_meta(
    t: &ResourceType,
    version: &str,
    obj: &mut Value,
) -> Result<(), ApiError> {
    let want_av = t.api_version(version);
    if let Some(av) = obj.get("apiVersion").and_then(Value::as_str)
        && !av.is_empty()
        && av != want_av
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({want_av})"
        )));
    }
    if let Some(k) = obj.get("kind").and_then(Value::as_str)
        && !k.is_empty()
        && k != t.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            t.kind
        )));
    }
    obj["apiVersion"] = json!(want_av);
    obj["kind"] = json!(t.kind);
    Ok(())
}

/// Why `name` is not a valid name for an object of `t` (empty when it is).
pub(super) fn name_causes(t: &ResourceType, name: &str) -> Vec<Cause> {
    names::validate(name, NameRule::for_resource(&t.group, &t.plural))
        .into_iter()
        .map(|m| Cause {
            reason: "FieldValueInvalid",
            field: "metadata.name".into(),
            message: m,
        })
        .collect()
}

/// Labels, annotations and the other metadata fields must be well-formed.
pub(super) fn check_metadata(t: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    let errs = names::validate_metadata(&obj["metadata"]);
    if errs.is_empty() {
        return Ok(());
    }
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    Err(invalid(
        t,
        name,
        errs.into_iter()
            .map(|(field, message)| Cause {
                reason: if message.starts_with("Too long") {
                    "FieldValueTooLong"
                } else {
                    "FieldValueInvalid"
                },
                field,
                message,
            })
            .collect(),
    ))
}

/// A namespaced object needs its namespace to exist and not be terminating.
pub(super) fn ensure_namespace(
    st: &State,
    t: &ResourceType,
    ns: &str,
    name: &str,
) -> Result<(), ApiError> {
    if !t.namespaced {
        return Ok(());
    }
    let ns_gr = (NS_GR.0.to_string(), NS_GR.1.to_string());
    match st.get(&ns_gr, "", ns) {
        None => Err(ApiError::not_found("", "namespaces", ns)),
        Some(n) if !n["metadata"]["deletionTimestamp"].is_null() => Err(ApiError {
            code: 403,
            reason: "Forbidden",
            message: format!(
                "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                error::group_resource(&t.group, &t.plural),
            ),
            details: Some(json!({"name": name, "kind": t.plural})),
        }),
        Some(_) => Ok(()),
    }
}

/// apps/v1 requires a selector that matches the template's labels.
pub(super) fn validate_selector(t: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let sel = &obj["spec"]["selector"];
    if sel.is_null() || sel.as_object().is_some_and(|m| m.is_empty()) {
        return Err(invalid(
            t,
            name,
            vec![Cause {
                reason: "FieldValueRequired",
                field: "spec.selector".into(),
                message: "Required value".into(),
            }],
        ));
    }
    let labels = &obj["spec"]["template"]["metadata"]["labels"];
    let parsed = Selector::parse_labels(&label_selector_string(sel));
    let matches = parsed.is_ok_and(|s| s.matches_labels(&obj["spec"]["template"]));
    if !matches {
        let shown: Vec<String> = labels
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k:?}:{:?}", v.as_str().unwrap_or_default()))
            .collect();
        return Err(invalid(
            t,
            name,
            vec![Cause {
                reason: "FieldValueInvalid",
                field: "spec.template.metadata.labels".into(),
                message: format!(
                    "Invalid value: map[string]string{{{}}}: `selector` does not match template `labels`",
                    shown.join(", ")
                ),
            }],
        ));
    }
    Ok(())
}

/// Go's `%#v` rendering of a LabelSelector, as immutability errors print it.
fn go_selector(sel: &Value) -> String {
    let labels: Vec<String> = sel["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k:?}:{:?}", v.as_str().unwrap_or_default()))
        .collect();
    let labels = if labels.is_empty() {
        "map[string]string(nil)".to_string()
    } else {
        format!("map[string]string{{{}}}", labels.join(", "))
    };
    format!(
        "v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}}"
    )
}

/// Fields the apiserver refuses to change after creation.
pub(super) fn check_immutable(t: &ResourceType, old: &Value, new: &Value) -> Result<(), ApiError> {
    let name = new["metadata"]["name"].as_str().unwrap_or_default();
    let immutable = |field: &str, shown: String| {
        invalid(
            t,
            name,
            vec![Cause {
                reason: "FieldValueInvalid",
                field: field.into(),
                message: format!("Invalid value: {shown}: field is immutable"),
            }],
        )
    };
    match (t.group.as_str(), t.plural.as_str()) {
        ("apps", "deployments" | "replicasets") | ("batch", "jobs")
            if old["spec"]["selector"] != new["spec"]["selector"] =>
        {
            Err(immutable(
                "spec.selector",
                go_selector(&new["spec"]["selector"]),
            ))
        }
        ("", "services") if old["spec"]["clusterIP"] != new["spec"]["clusterIP"] => Err(immutable(
            "spec.clusterIP",
            format!(
                "{:?}",
                new["spec"]["clusterIP"].as_str().unwrap_or_default()
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::fixtures::{deployment, opts, state, ty};
    use super::super::{Part, create, update};

    #[test]
    fn selectors_are_immutable() {
        let mut st = state();
        let d = ty(&st, "apps", "v1", "deployments");
        let c = create(&mut st, &d, "v1", "default", deployment("d", 1), &opts()).unwrap();
        let mut u = c.clone();
        u["spec"]["selector"] = json!({"matchLabels": {"app": "y"}});
        u["spec"]["template"]["metadata"]["labels"] = json!({"app": "y"});
        let e = update(&mut st, &d, "v1", "default", "d", u, Part::Main, &opts()).unwrap_err();
        assert_eq!(
            e.message,
            "Deployment.apps \"d\" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"y\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
        );
    }

    #[test]
    fn deployment_selector_must_match_template_labels() {
        let mut st = state();
        let d = ty(&st, "apps", "v1", "deployments");
        let e = create(
            &mut st,
            &d,
            "v1",
            "default",
            json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"app": "y"}},
            "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": []}}}}),
            &opts(),
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "Deployment.apps \"d\" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"x\"}: `selector` does not match template `labels`"
        );
        let e = create(
            &mut st,
            &d,
            "v1",
            "default",
            json!({"metadata": {"name": "d"}, "spec": {}}),
            &opts(),
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "Deployment.apps \"d\" is invalid: spec.selector: Required value"
        );
    }
}
