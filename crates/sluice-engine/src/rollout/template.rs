//! The pod template as the API server will judge it: a Rollout's template becomes the
//! template of its ReplicaSets, and a ReplicaSet the server refuses would leave the Rollout
//! retrying forever. What the server checks offline (quantities, names, ports, duplicate
//! containers, probes, resources, restart policy, ...) is checked here first, with the
//! server's own rules (`sluice_api::k8s::pod`, `workloads`), and reported as InvalidSpec naming
//! the field as the user writes it (`spec.template.spec.containers[0].resources.requests.memory`).
//!
//! A malformed quantity is what the server cannot even decode (it answers 400 without naming
//! the field); it is checked first, like there.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use sluice_api::k8s::field::{FieldError, Path};
use sluice_api::k8s::{meta, pod, workloads};

use super::validate::InvalidSpec;
use sluice_api::common::PodTemplateMetadata;

/// The first problem the API server would find in `template` as a ReplicaSet's template at
/// `path` (`spec.template` for a Rollout).
pub fn check(template: &PodTemplateSpec, path: &Path) -> Result<(), FieldError> {
    if let Some(spec) = &template.spec
        && let Some(bad) = pod::undecodable_quantity(spec, &path.child("spec"))
    {
        return Err(bad.to_field_error());
    }
    match workloads::replica_set_pod_template(template, path)
        .into_iter()
        .next()
    {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// [`check`] for the Rollout's own template, as an InvalidSpec.
pub fn validate(template: &PodTemplateSpec) -> Result<(), InvalidSpec> {
    check(template, &Path::new("spec.template")).map_err(|e| invalid_spec(&e))
}

/// Labels and annotations that ephemeral metadata (`canaryMetadata`, `stableMetadata`) puts
/// on pod templates must be valid labels and annotations there too.
pub fn validate_ephemeral(metadata: &PodTemplateMetadata, path: &str) -> Result<(), InvalidSpec> {
    let path = Path::new(path.to_string());
    let mut errs = meta::labels(
        metadata
            .labels
            .iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str())),
        &path.child("labels"),
    );
    errs.extend(meta::annotations(
        metadata
            .annotations
            .iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str())),
        &path.child("annotations"),
    ));
    match errs.first() {
        Some(e) => Err(invalid_spec(e)),
        None => Ok(()),
    }
}

/// A field error as an InvalidSpec: the field as written in YAML, the server's wording.
pub fn invalid_spec(e: &FieldError) -> InvalidSpec {
    InvalidSpec {
        field: e.field.json_path(),
        message: e.body(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(resources: serde_json::Value) -> PodTemplateSpec {
        serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx", "resources": resources}]}
        }))
        .unwrap()
    }

    #[test]
    fn a_malformed_quantity_names_the_field_as_written() {
        let err = validate(&template(json!({"requests": {"memory": "invalid"}}))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.template.spec.containers[0].resources.requests.memory: Invalid value: \"invalid\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        );
    }

    #[test]
    fn the_servers_rules_apply_after_quantities_parse() {
        let err = validate(&template(
            json!({"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}),
        ))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.template.spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1"
        );
        assert_eq!(validate(&template(json!({"limits": {"cpu": 1}}))), Ok(()));
    }

    #[test]
    fn ephemeral_labels_must_be_labels() {
        let meta: PodTemplateMetadata =
            serde_json::from_value(json!({"labels": {"role": "canary!"}})).unwrap();
        let err = validate_ephemeral(&meta, "spec.strategy.canary.canaryMetadata").unwrap_err();
        assert_eq!(err.field, "spec.strategy.canary.canaryMetadata.labels");
        assert!(
            err.message
                .starts_with("Invalid value: \"canary!\": a valid label")
        );
    }
}
