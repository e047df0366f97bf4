//! The five CustomResourceDefinitions, generated from the API types.
//!
//! `crds/<plural>.yaml` in the repository must equal [`render_yaml`] of each definition; a test
//! fails when they drift. Regenerate with `make crds` (`SLUICE_UPDATE_CRDS=1 cargo test --lib
//! api::crds`).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceSubresources,
};
use kube_core::CustomResourceExt;
use std::path::{Path, PathBuf};

use super::analysis::{AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate};
use super::experiment::Experiment;
use super::rollout::Rollout;

/// All five CRDs, in install order: Rollout, AnalysisTemplate, ClusterAnalysisTemplate,
/// AnalysisRun, Experiment.
///
/// AnalysisRun and Experiment have a `status` field but, as upstream, no status subresource:
/// the controller (and `kubectl argo rollouts terminate`) write them with plain patches, so
/// the subresource kube-derive adds for them is removed here.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        Rollout::crd(),
        AnalysisTemplate::crd(),
        ClusterAnalysisTemplate::crd(),
        without_subresources(AnalysisRun::crd()),
        without_subresources(Experiment::crd()),
    ]
    .into_iter()
    .map(quantities_as_the_apiserver_takes_them)
    .collect()
}

/// The schema of every resource quantity (`resources.requests.cpu`, `emptyDir.sizeLimit`,
/// ...): a non-negative quantity string, or a JSON number.
///
/// A Deployment takes `cpu: 0.001` (a YAML number): the apiserver decodes a Quantity from a
/// number. A custom resource is checked against its schema instead, and the Quantity schema
/// k8s-openapi renders (`x-kubernetes-int-or-string: true`) refuses a non-integer number
/// ("must be of type integer,string"). Upstream's CRD drops the schema of `requests` and
/// `limits` altogether (`x-kubernetes-preserve-unknown-fields`), which also lets `cpu: abc`
/// through to the ReplicaSet. Here a quantity is left untyped, so a number passes, while a
/// string must match the Quantity pattern of kube's OpenAPI (without a minus sign) and a
/// number must not be negative, so `cpu: abc` and `cpu: -1` fail at apply time, naming the
/// field.
pub const QUANTITY_PATTERN: &str = r"^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

fn quantities_as_the_apiserver_takes_them(
    mut crd: CustomResourceDefinition,
) -> CustomResourceDefinition {
    fn walk(node: &mut serde_json::Value) {
        let Some(obj) = node.as_object_mut() else {
            return;
        };
        let is_quantity = obj.get("x-kubernetes-int-or-string") == Some(&true.into())
            && obj
                .get("description")
                .and_then(serde_json::Value::as_str)
                .is_some_and(|d| d.starts_with("Quantity is a fixed-point representation"));
        if is_quantity {
            obj.remove("x-kubernetes-int-or-string");
            obj.insert("x-kubernetes-preserve-unknown-fields".into(), true.into());
            obj.insert("pattern".into(), QUANTITY_PATTERN.into());
            obj.insert("minimum".into(), 0.into());
            return;
        }
        for v in obj.values_mut() {
            walk(v);
        }
    }
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            let mut value = serde_json::to_value(&*schema).unwrap_or_default();
            walk(&mut value);
            if let Ok(updated) = serde_json::from_value(value) {
                *schema = updated;
            }
        }
    }
    crd
}

fn without_subresources(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    for version in &mut crd.spec.versions {
        version.subresources = Some(CustomResourceSubresources::default());
    }
    crd
}

/// The YAML document for one CRD (no leading `---`), as stored in `crds/`.
pub fn render_yaml(crd: &CustomResourceDefinition) -> String {
    // Serializing a CustomResourceDefinition to YAML cannot fail: it holds only maps,
    // strings, numbers and booleans.
    serde_yaml::to_string(crd).expect("a CustomResourceDefinition always serializes to YAML")
}

/// All CRDs as one multi-document YAML stream, each document introduced by `---`.
pub fn render_all_yaml() -> String {
    all()
        .iter()
        .map(|crd| format!("---\n{}", render_yaml(crd)))
        .collect()
}

/// The file name a CRD is stored under in `crds/`: `<plural>.yaml`.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.spec.names.plural)
}

/// Writes every CRD to `dir/<plural>.yaml` (creating `dir`), returning the paths written.
pub fn write_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    all()
        .iter()
        .map(|crd| {
            let path = dir.join(file_name(crd));
            std::fs::write(&path, render_yaml(crd))?;
            Ok(path)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn crd_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../crds")
    }

    /// Generating the schemas is slow in debug builds; share one copy between the tests.
    fn cached() -> &'static [CustomResourceDefinition] {
        static ALL: std::sync::LazyLock<Vec<CustomResourceDefinition>> =
            std::sync::LazyLock::new(all);
        &ALL
    }

    fn by_kind(kind: &str) -> CustomResourceDefinition {
        cached()
            .iter()
            .find(|c| c.spec.names.kind == kind)
            .cloned()
            .unwrap_or_else(|| panic!("no CRD for {kind}"))
    }

    fn schema_of(crd: &CustomResourceDefinition) -> Value {
        let version = &crd.spec.versions[0];
        let schema = version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("every CRD has a schema");
        serde_json::to_value(schema).unwrap()
    }

    /// Fails when `crds/` differs from the generated CRDs; with `SLUICE_UPDATE_CRDS=1` it
    /// rewrites the files instead.
    #[test]
    fn crd_files_match_the_generated_definitions() {
        let update = std::env::var("SLUICE_UPDATE_CRDS").is_ok_and(|v| v == "1");
        let dir = crd_dir();
        if update {
            std::fs::create_dir_all(&dir).unwrap();
        }
        let mut drifted = Vec::new();
        for crd in cached() {
            let path = dir.join(file_name(crd));
            let rendered = render_yaml(crd);
            if update {
                std::fs::write(&path, &rendered).unwrap();
                continue;
            }
            let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
            if on_disk != rendered {
                drifted.push(path.display().to_string());
            }
        }
        assert!(
            drifted.is_empty(),
            "CRD files out of date: {drifted:?}; run `make crds`"
        );
    }

    #[test]
    fn five_crds_with_upstream_names_scopes_and_short_names() {
        let got: Vec<_> = cached()
            .iter()
            .map(|c| {
                (
                    c.metadata.name.clone().unwrap(),
                    c.spec.names.kind.clone(),
                    c.spec.scope.clone(),
                    c.spec.names.short_names.clone().unwrap_or_default(),
                )
            })
            .collect();
        let want = [
            ("rollouts.argoproj.io", "Rollout", "Namespaced", "ro"),
            (
                "analysistemplates.argoproj.io",
                "AnalysisTemplate",
                "Namespaced",
                "at",
            ),
            (
                "clusteranalysistemplates.argoproj.io",
                "ClusterAnalysisTemplate",
                "Cluster",
                "cat",
            ),
            (
                "analysisruns.argoproj.io",
                "AnalysisRun",
                "Namespaced",
                "ar",
            ),
            ("experiments.argoproj.io", "Experiment", "Namespaced", "exp"),
        ];
        assert_eq!(got.len(), want.len());
        for ((name, kind, scope, short), w) in got.iter().zip(want) {
            assert_eq!(
                (name.as_str(), kind.as_str(), scope.as_str()),
                (w.0, w.1, w.2)
            );
            assert_eq!(short, &vec![w.3.to_string()]);
        }
    }

    #[test]
    fn only_rollout_has_status_and_scale_subresources() {
        let ro = by_kind("Rollout");
        let sub = ro.spec.versions[0].subresources.clone().unwrap();
        assert!(sub.status.is_some());
        let scale = sub.scale.unwrap();
        assert_eq!(scale.spec_replicas_path, ".spec.replicas");
        assert_eq!(scale.status_replicas_path, ".status.HPAReplicas");
        assert_eq!(
            scale.label_selector_path.as_deref(),
            Some(".status.selector")
        );
        for kind in [
            "AnalysisTemplate",
            "ClusterAnalysisTemplate",
            "AnalysisRun",
            "Experiment",
        ] {
            let sub = by_kind(kind).spec.versions[0].subresources.clone();
            let sub = sub.unwrap_or_default();
            assert!(
                sub.status.is_none() && sub.scale.is_none(),
                "{kind} must have no subresources"
            );
        }
    }

    #[test]
    fn printer_columns_match_upstream() {
        let cols = |kind: &str| -> Vec<(String, String)> {
            by_kind(kind).spec.versions[0]
                .additional_printer_columns
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|c| (c.name, c.json_path))
                .collect()
        };
        let s = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(
            cols("Rollout"),
            s(&[
                ("Desired", ".spec.replicas"),
                ("Current", ".status.replicas"),
                ("Up-to-date", ".status.updatedReplicas"),
                ("Available", ".status.availableReplicas"),
                ("Age", ".metadata.creationTimestamp"),
            ])
        );
        assert_eq!(
            cols("AnalysisRun"),
            s(&[
                ("Status", ".status.phase"),
                ("Age", ".metadata.creationTimestamp")
            ])
        );
        assert_eq!(
            cols("Experiment"),
            s(&[
                ("Status", ".status.phase"),
                ("Age", ".metadata.creationTimestamp")
            ])
        );
        assert_eq!(
            cols("AnalysisTemplate"),
            s(&[("Age", ".metadata.creationTimestamp")])
        );
    }

    /// Object nodes that legitimately declare no fields: upstream's empty
    /// `requiredDuringSchedulingIgnoredDuringExecution` marker, and k8s-openapi's
    /// `managedFields[].fieldsV1` inside embedded ObjectMeta (never set in templates).
    fn empty_object_allowed(path: &str) -> bool {
        path.ends_with(".requiredDuringSchedulingIgnoredDuringExecution")
            || path.ends_with(".fieldsV1")
    }

    /// Collects every violation of the apiserver's structural-schema rules (plus "an object
    /// must say what it keeps") below `node`.
    fn structural_violations(node: &Value, path: &str, out: &mut Vec<String>) {
        let Some(obj) = node.as_object() else {
            out.push(format!("{path}: schema node is not an object"));
            return;
        };
        for banned in [
            "$ref",
            "anyOf",
            "oneOf",
            "allOf",
            "not",
            "definitions",
            "$defs",
        ] {
            if obj.contains_key(banned) {
                out.push(format!("{path}: has {banned}"));
            }
        }
        let int_or_string = obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
        let preserve = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
        match obj.get("type") {
            Some(Value::String(t)) => {
                if !["object", "array", "string", "integer", "number", "boolean"]
                    .contains(&t.as_str())
                {
                    out.push(format!("{path}: unknown type {t}"));
                }
                if t == "array" && !obj.contains_key("items") {
                    out.push(format!("{path}: array without items"));
                }
                if t == "object"
                    && !preserve
                    && !obj.contains_key("properties")
                    && !obj.contains_key("additionalProperties")
                    && !empty_object_allowed(path)
                {
                    out.push(format!("{path}: object that would prune all its fields"));
                }
            }
            Some(other) => out.push(format!("{path}: type must be a single string: {other}")),
            None if int_or_string || preserve => {}
            None => out.push(format!("{path}: no type")),
        }
        if obj.contains_key("properties") && obj.contains_key("additionalProperties") {
            out.push(format!("{path}: both properties and additionalProperties"));
        }
        if let Some(props) = obj.get("properties").and_then(Value::as_object) {
            for (k, v) in props {
                structural_violations(v, &format!("{path}.{k}"), out);
            }
        }
        if let Some(items) = obj.get("items") {
            structural_violations(items, &format!("{path}[]"), out);
        }
        match obj.get("additionalProperties") {
            Some(Value::Object(_)) => {
                structural_violations(&obj["additionalProperties"], &format!("{path}{{}}"), out)
            }
            Some(Value::Bool(false)) | None => {}
            Some(other) => out.push(format!("{path}: additionalProperties {other}")),
        }
    }

    #[test]
    fn every_crd_schema_is_structural() {
        for crd in cached() {
            let schema = schema_of(crd);
            let mut violations = Vec::new();
            structural_violations(&schema, &crd.spec.names.kind, &mut violations);
            assert!(
                violations.is_empty(),
                "{} schema is not structural:\n{}",
                crd.spec.names.kind,
                violations.join("\n")
            );
            // At the root, metadata may only be typed; the apiserver owns its schema.
            let metadata = &schema["properties"]["metadata"];
            assert!(
                metadata.is_null() || metadata == &serde_json::json!({"type": "object"}),
                "{}: root metadata schema {metadata}",
                crd.spec.names.kind
            );
        }
    }

    #[test]
    fn int_or_string_fields_are_marked_for_the_apiserver() {
        let ro = schema_of(&by_kind("Rollout"));
        let canary = &ro["properties"]["spec"]["properties"]["strategy"]["properties"]["canary"];
        for field in ["maxSurge", "maxUnavailable"] {
            assert_eq!(
                canary["properties"][field]["x-kubernetes-int-or-string"],
                Value::Bool(true),
                "{field}"
            );
        }
        let pause = &canary["properties"]["steps"]["items"]["properties"]["pause"];
        assert_eq!(
            pause["properties"]["duration"]["x-kubernetes-int-or-string"],
            Value::Bool(true)
        );
        let at = schema_of(&by_kind("AnalysisTemplate"));
        let metric = &at["properties"]["spec"]["properties"]["metrics"]["items"]["properties"];
        for field in [
            "count",
            "failureLimit",
            "inconclusiveLimit",
            "consecutiveErrorLimit",
            "consecutiveSuccessLimit",
        ] {
            assert_eq!(
                metric[field]["x-kubernetes-int-or-string"],
                Value::Bool(true),
                "{field}"
            );
        }
    }

    #[test]
    fn rollout_status_uses_upstream_field_names_and_string_generation() {
        let ro = schema_of(&by_kind("Rollout"));
        let status = &ro["properties"]["status"]["properties"];
        assert_eq!(status["observedGeneration"]["type"], "string");
        assert_eq!(status["workloadObservedGeneration"]["type"], "string");
        assert_eq!(status["HPAReplicas"]["type"], "integer");
        assert_eq!(status["stableRS"]["type"], "string");
        assert_eq!(status["currentStepIndex"]["type"], "integer");
    }

    #[test]
    fn plugin_configs_and_web_json_bodies_preserve_unknown_fields() {
        let ro = schema_of(&by_kind("Rollout"));
        let canary = &ro["properties"]["spec"]["properties"]["strategy"]["properties"]["canary"];
        let tr = &canary["properties"]["trafficRouting"]["properties"]["plugins"];
        assert_eq!(
            tr["x-kubernetes-preserve-unknown-fields"],
            Value::Bool(true)
        );
        let step_plugin =
            &canary["properties"]["steps"]["items"]["properties"]["plugin"]["properties"]["config"];
        assert_eq!(
            step_plugin["x-kubernetes-preserve-unknown-fields"],
            Value::Bool(true)
        );
        let ar = schema_of(&by_kind("AnalysisRun"));
        let provider =
            &ar["properties"]["spec"]["properties"]["metrics"]["items"]["properties"]["provider"];
        assert_eq!(
            provider["properties"]["plugin"]["x-kubernetes-preserve-unknown-fields"],
            Value::Bool(true)
        );
        assert_eq!(
            provider["properties"]["web"]["properties"]["jsonBody"]["x-kubernetes-preserve-unknown-fields"],
            Value::Bool(true)
        );
    }

    #[test]
    fn write_files_writes_one_file_per_crd_named_by_plural() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_files(dir.path()).unwrap();
        let mut names: Vec<_> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "analysisruns.yaml",
                "analysistemplates.yaml",
                "clusteranalysistemplates.yaml",
                "experiments.yaml",
                "rollouts.yaml"
            ]
        );
        let rollouts = std::fs::read_to_string(dir.path().join("rollouts.yaml")).unwrap();
        assert_eq!(rollouts, render_yaml(&by_kind("Rollout")));
    }

    #[test]
    fn render_all_yaml_is_five_documents() {
        let all_yaml = render_all_yaml();
        let separators = all_yaml.lines().filter(|l| *l == "---").count();
        assert_eq!(separators, 5);
        for doc in serde_yaml::Deserializer::from_str(&all_yaml) {
            let crd: CustomResourceDefinition = serde::Deserialize::deserialize(doc).unwrap();
            assert_eq!(crd.spec.group, "argoproj.io");
        }
    }

    /// What an apiserver would do to `value` under `schema`, as messages: fields it would
    /// prune (not described), required fields that are missing, and values of the wrong type.
    /// A small subset of OpenAPI validation, enough to catch schema mistakes in the fixtures.
    fn schema_problems(value: &Value, schema: &Value, path: &str, out: &mut Vec<String>) {
        if value.is_null() {
            if schema["nullable"] != Value::Bool(true) {
                out.push(format!("{path}: null but not nullable"));
            }
            return;
        }
        let int_or_string = schema["x-kubernetes-int-or-string"] == Value::Bool(true);
        let type_ok = match (schema["type"].as_str(), value) {
            (None, _) => true,
            (Some("object"), Value::Object(_))
            | (Some("array"), Value::Array(_))
            | (Some("string"), Value::String(_))
            | (Some("boolean"), Value::Bool(_)) => true,
            (Some("integer"), Value::Number(n)) => n.is_i64() || n.is_u64(),
            (Some("number"), Value::Number(_)) => true,
            _ => false,
        };
        let int_or_string_ok = !int_or_string || value.is_string() || value.as_i64().is_some();
        if !type_ok || !int_or_string_ok {
            out.push(format!(
                "{path}: {value} does not match type {}",
                schema["type"]
            ));
            return;
        }
        if let Some(allowed) = schema["enum"].as_array()
            && !allowed.contains(value)
        {
            out.push(format!("{path}: {value} not in enum"));
        }
        if schema["x-kubernetes-preserve-unknown-fields"] == Value::Bool(true) {
            return;
        }
        match value {
            Value::Object(map) => {
                for required in schema["required"].as_array().into_iter().flatten() {
                    let key = required.as_str().unwrap_or_default();
                    if !map.contains_key(key) {
                        out.push(format!("{path}: missing required {key}"));
                    }
                }
                let props = schema.get("properties").and_then(Value::as_object);
                let additional = schema.get("additionalProperties").filter(|a| a.is_object());
                for (k, v) in map {
                    if path.is_empty() && ["apiVersion", "kind", "metadata"].contains(&k.as_str()) {
                        continue;
                    }
                    let child = format!("{path}.{k}");
                    match (props.and_then(|p| p.get(k)), additional) {
                        (Some(s), _) | (None, Some(s)) => schema_problems(v, s, &child, out),
                        (None, None) => out.push(format!("{child}: would be pruned")),
                    }
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    schema_problems(item, &schema["items"], &format!("{path}[{i}]"), out);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn schema_problems_reports_pruned_missing_and_mistyped_fields() {
        let schema = serde_json::json!({
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string"},
                "count": {"x-kubernetes-int-or-string": true},
                "n": {"type": "integer"},
            },
        });
        let mut out = Vec::new();
        schema_problems(
            &serde_json::json!({"count": true, "n": "1", "extra": 1}),
            &schema,
            "",
            &mut out,
        );
        out.sort();
        assert_eq!(
            out,
            vec![
                ".count: true does not match type null",
                ".extra: would be pruned",
                ".n: \"1\" does not match type \"integer\"",
                ": missing required name",
            ]
        );
    }

    #[test]
    fn fixtures_validate_against_the_schemas_without_pruning() {
        for (name, text) in super::super::fixtures::ALL {
            for doc in serde_yaml::Deserializer::from_str(text) {
                let value: Value = serde::Deserialize::deserialize(doc).unwrap();
                let kind = value["kind"].as_str().unwrap();
                let schema = schema_of(&by_kind(kind));
                let mut problems = Vec::new();
                schema_problems(&value, &schema, "", &mut problems);
                assert!(
                    problems.is_empty(),
                    "{name}: {kind} does not validate:\n{}",
                    problems.join("\n")
                );
            }
        }
    }
}
