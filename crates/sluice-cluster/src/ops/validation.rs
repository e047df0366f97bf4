//! The checks that reject a write before anything is stored: the body must match the URL it
//! was sent to, decode into its Kubernetes type, names and metadata must be well-formed, the
//! namespace must accept new content, and the built-in kinds' specs (pod templates, selectors,
//! ports, ...) and immutable fields hold. The rules themselves are `sluice_api::k8s`'s, shared
//! with the Rollout planner; this module applies them to stored JSON and answers as the
//! apiserver does (400 for what does not decode, 422 with field causes for what is invalid).
//! Error texts copy the apiserver's, because kubectl prints them verbatim.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, PodSpec, PodTemplate, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{Value, json};
use sluice_api::k8s::field::{self, BadValue, ErrorList, FieldError, Path};
use sluice_api::k8s::meta::{self, OwnerRef};
use sluice_api::k8s::names::NameRule;
use sluice_api::k8s::{pod, workloads};

use super::NS_GR;
use crate::error::{self, ApiError, Cause};
use crate::store::State;
use crate::types::ResourceType;

/// A 422 Invalid answer about the object `name` of type `t`.
pub(super) fn invalid(t: &ResourceType, name: &str, causes: Vec<Cause>) -> ApiError {
    ApiError::invalid(&t.qualified_kind(), &t.group, &t.kind, name, causes)
}

/// Field errors as the causes of a 422, each reported once.
pub fn causes(errs: ErrorList) -> Vec<Cause> {
    field::dedup(errs)
        .into_iter()
        .map(|e| Cause {
            reason: e.type_.reason(),
            field: e.field.to_string(),
            message: e.body(),
        })
        .collect()
}

/// `Ok` when `errs` is empty, else the 422 naming each of them.
fn answer(t: &ResourceType, obj: &Value, errs: ErrorList) -> Result<(), ApiError> {
    if errs.is_empty() {
        return Ok(());
    }
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    Err(invalid(t, name, causes(errs)))
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
    let at = Path::new("metadata").child("name");
    causes(
        NameRule::for_resource(&t.group, &t.plural)
            .check(name)
            .into_iter()
            .map(|m| FieldError::invalid_str(at.clone(), name, m))
            .collect(),
    )
}

fn string_pairs(map: &Value) -> impl Iterator<Item = (&str, &str)> {
    map.as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default()))
}

/// Labels, annotations and owner references must be well-formed (`ValidateObjectMeta`).
pub(super) fn check_metadata(t: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    let m = &obj["metadata"];
    let at = Path::new("metadata");
    let mut errs = meta::labels(string_pairs(&m["labels"]), &at.child("labels"));
    errs.extend(meta::annotations(
        string_pairs(&m["annotations"]),
        &at.child("annotations"),
    ));
    let refs: Vec<OwnerRef<'_>> = m["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| OwnerRef {
            api_version: r["apiVersion"].as_str().unwrap_or_default(),
            kind: r["kind"].as_str().unwrap_or_default(),
            name: r["name"].as_str().unwrap_or_default(),
            uid: r["uid"].as_str().unwrap_or_default(),
            controller: r["controller"] == true,
        })
        .collect();
    errs.extend(meta::owner_references(&refs, &at.child("ownerReferences")));
    answer(t, obj, errs)
}

/// A built-in object whose spec the apiserver validates field by field, decoded.
enum Typed {
    Pod(Box<Pod>),
    PodTemplate(Box<PodTemplate>),
    ReplicaSet(Box<ReplicaSet>),
    Deployment(Box<Deployment>),
    Job(Box<Job>),
    Service(Box<Service>),
}

/// Decodes `obj` into its Kubernetes type, as the apiserver must before anything else; `None`
/// for kinds whose spec is not validated here. The error text names where decoding stopped.
fn decode(t: &ResourceType, obj: &Value) -> Option<Result<Typed, String>> {
    fn typed<T: serde::de::DeserializeOwned>(
        obj: &Value,
        wrap: fn(Box<T>) -> Typed,
    ) -> Result<Typed, String> {
        serde_path_to_error::deserialize::<_, T>(obj)
            .map(|v| wrap(Box::new(v)))
            .map_err(|e| format!("json: {}: {}", e.path(), e.inner()))
    }
    Some(match (t.group.as_str(), t.plural.as_str()) {
        ("", "pods") => typed(obj, Typed::Pod),
        ("", "podtemplates") => typed(obj, Typed::PodTemplate),
        ("", "services") => typed(obj, Typed::Service),
        ("apps", "replicasets") => typed(obj, Typed::ReplicaSet),
        ("apps", "deployments") => typed(obj, Typed::Deployment),
        ("batch", "jobs") => typed(obj, Typed::Job),
        _ => return None,
    })
}

impl Typed {
    /// The pod spec the object holds, and where.
    fn pod_spec(&self) -> Option<(&PodSpec, Path)> {
        fn template<'a>(
            t: Option<&'a k8s_openapi::api::core::v1::PodTemplateSpec>,
            root: &'static str,
        ) -> Option<(&'a PodSpec, Path)> {
            t.and_then(|t| t.spec.as_ref())
                .map(|s| (s, Path::new(root).child("spec")))
        }
        match self {
            Typed::Pod(p) => p.spec.as_ref().map(|s| (s, Path::new("spec"))),
            Typed::PodTemplate(p) => template(p.template.as_ref(), "template"),
            Typed::ReplicaSet(r) => template(
                r.spec.as_ref().and_then(|s| s.template.as_ref()),
                "spec.template",
            ),
            Typed::Deployment(d) => template(d.spec.as_ref().map(|s| &s.template), "spec.template"),
            Typed::Job(j) => template(j.spec.as_ref().map(|s| &s.template), "spec.template"),
            Typed::Service(_) => None,
        }
    }
}

/// Why the apiserver could not decode this body of a built-in kind: a value of the wrong
/// type, or a resource quantity that does not parse (`quantities must match the regular
/// expression ...`). `None` when it decodes.
pub fn undecodable(t: &ResourceType, obj: &Value) -> Option<String> {
    match decode(t, obj)? {
        Err(e) => Some(e),
        Ok(typed) => {
            let (spec, at) = typed.pod_spec()?;
            pod::undecodable_quantity(spec, &at).map(|bad| bad.error.to_string())
        }
    }
}

/// The 400 of a POST or PUT body that does not decode: `ReplicaSet in version "v1" cannot be
/// handled as a ReplicaSet: <why>`.
pub fn cannot_be_handled(t: &ResourceType, obj: &Value, why: &str) -> ApiError {
    let kind = obj["kind"].as_str().filter(|k| !k.is_empty());
    match kind {
        Some(kind) => {
            let api_version = obj["apiVersion"].as_str().unwrap_or_default();
            let version = api_version.rsplit('/').next().unwrap_or_default();
            ApiError::bad_request(format!(
                "{kind} in version {} cannot be handled as a {}: {why}",
                field::go_quote(version),
                t.kind
            ))
        }
        None => {
            let body = serde_json::to_string(obj).unwrap_or_default();
            let summary = if body.len() > 30 {
                let mut end = 30;
                while !body.is_char_boundary(end) {
                    end -= 1;
                }
                format!("{} ...", &body[..end])
            } else {
                body
            };
            ApiError::bad_request(format!(
                "the object provided is unrecognized (must be of type {}): {why} ({summary})",
                t.kind
            ))
        }
    }
}

/// The 422 of a PATCH whose result does not decode: the patched object is the bad value of
/// the field `patch`, under no kind and no name, as the apiserver reports it.
pub fn patch_cannot_be_decoded(patched: &Value, why: &str) -> ApiError {
    let shown = serde_json::to_string(patched).unwrap_or_default();
    ApiError::invalid(
        "",
        "",
        "",
        "",
        causes(vec![FieldError::invalid(
            Path::new("patch"),
            BadValue::Str(shown),
            why,
        )]),
    )
}

/// The spec rules of the built-in kinds that hold pods (and of Services): containers, ports,
/// probes, resources, selectors matching template labels, restart policies. Runs on the
/// defaulted object; `creating` for the rules of a create only.
pub(super) fn validate_builtin(
    t: &ResourceType,
    obj: &Value,
    creating: bool,
) -> Result<(), ApiError> {
    let Some(typed) = decode(t, obj) else {
        return Ok(());
    };
    let typed = typed.map_err(|why| cannot_be_handled(t, obj, &why))?;
    if let Some((spec, at)) = typed.pod_spec()
        && let Some(bad) = pod::undecodable_quantity(spec, &at)
    {
        return Err(cannot_be_handled(t, obj, &bad.error.to_string()));
    }
    let selector_missing = obj["spec"]["selector"].is_null();
    let errs = match &typed {
        Typed::Pod(p) => workloads::pod(p, creating),
        Typed::PodTemplate(p) => workloads::pod_template(p),
        Typed::ReplicaSet(r) => workloads::replica_set(r, selector_missing),
        Typed::Deployment(d) => workloads::deployment(d, selector_missing),
        Typed::Job(j) => workloads::job(j),
        Typed::Service(s) => workloads::service(s),
    };
    answer(t, obj, errs)
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
    match st.get_stored(&ns_gr, "", ns) {
        None => Err(ApiError::not_found("", "namespaces", ns)),
        Some(n) if n.deleting() => Err(ApiError {
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

/// Fields the apiserver refuses to change after creation (`ValidateImmutableField`).
pub(super) fn check_immutable(t: &ResourceType, old: &Value, new: &Value) -> Result<(), ApiError> {
    const IMMUTABLE: &str = "field is immutable";
    let spec = Path::new("spec");
    let errs = match (t.group.as_str(), t.plural.as_str()) {
        ("apps", "deployments" | "replicasets") | ("batch", "jobs")
            if old["spec"]["selector"] != new["spec"]["selector"] =>
        {
            let selector: LabelSelector =
                serde_json::from_value(new["spec"]["selector"].clone()).unwrap_or_default();
            vec![FieldError::invalid(
                spec.child("selector"),
                BadValue::Raw(meta::go_label_selector(&selector)),
                IMMUTABLE,
            )]
        }
        ("", "services") if old["spec"]["clusterIP"] != new["spec"]["clusterIP"] => {
            vec![FieldError::invalid_str(
                spec.child("clusterIP"),
                new["spec"]["clusterIP"].as_str().unwrap_or_default(),
                IMMUTABLE,
            )]
        }
        _ => Vec::new(),
    };
    answer(t, new, errs)
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
            "template": {"metadata": {"labels": {"app": "x"}},
                "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}}),
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
            "Deployment.apps \"d\" is invalid: [spec.selector: Required value, spec.template.metadata.labels: Invalid value: map[string]string(nil): `selector` does not match template `labels`, spec.template.spec.containers: Required value]"
        );
    }
}
