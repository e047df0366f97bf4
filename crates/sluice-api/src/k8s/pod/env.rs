//! Environment variables: names, and `valueFrom` / `envFrom` sources with the downward API
//! fields they may name.

use k8s_openapi::api::core::v1::{
    EnvFromSource, EnvVar, ObjectFieldSelector, ResourceFieldSelector,
};

use super::super::field::{ErrorList, FieldError, Path};
use super::super::names;
use super::super::quantity::Quantity;

/// `ValidateEnv`: named variables, each with a well-formed `valueFrom`.
pub(super) fn env(list: &[EnvVar], path: &Path, errs: &mut ErrorList) {
    for (i, var) in list.iter().enumerate() {
        let at = path.index(i);
        if var.name.is_empty() {
            errs.push(FieldError::required(at.child("name"), ""));
        } else {
            for m in names::env_var_name(&var.name) {
                errs.push(FieldError::invalid_str(at.child("name"), &var.name, m));
            }
        }
        let Some(from) = &var.value_from else {
            continue;
        };
        let at = at.child("valueFrom");
        let mut sources = 0;
        if let Some(f) = &from.field_ref {
            sources += 1;
            field_ref(f, &at.child("fieldRef"), errs);
        }
        if let Some(r) = &from.resource_field_ref {
            sources += 1;
            resource_field_ref(r, &at.child("resourceFieldRef"), errs);
        }
        let key_refs = [
            (
                "configMapKeyRef",
                from.config_map_key_ref
                    .as_ref()
                    .map(|s| (s.name.as_str(), s.key.as_str())),
            ),
            (
                "secretKeyRef",
                from.secret_key_ref
                    .as_ref()
                    .map(|s| (s.name.as_str(), s.key.as_str())),
            ),
        ];
        for (field, reference) in key_refs {
            let Some((name, key)) = reference else {
                continue;
            };
            sources += 1;
            let ref_at = at.child(field);
            for m in names::dns1123_subdomain(name) {
                errs.push(FieldError::invalid_str(ref_at.child("name"), name, m));
            }
            if key.is_empty() {
                errs.push(FieldError::required(ref_at.child("key"), ""));
            } else {
                for m in names::config_map_key(key) {
                    errs.push(FieldError::invalid_str(ref_at.child("key"), key, m));
                }
            }
        }
        let has_value = var.value.as_deref().is_some_and(|v| !v.is_empty());
        let problem = if sources == 0 {
            Some(
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            )
        } else if has_value {
            Some("may not be specified when `value` is not empty")
        } else if sources > 1 {
            Some("may not have more than one field specified at a time")
        } else {
            None
        };
        if let Some(m) = problem {
            errs.push(FieldError::invalid_str(at, "", m));
        }
    }
}

/// Fields the downward API can put in an environment variable.
const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// Pod fields the downward API knows at all (`ConvertDownwardAPIFieldLabel`).
const POD_FIELD_LABELS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.serviceAccountName",
    "spec.schedulerName",
    "status.phase",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// `metadata.labels['x']` → (`metadata.labels`, `x`).
fn split_subscript(path: &str) -> Option<(&str, &str)> {
    let inner = path.strip_suffix("']")?;
    let (field, key) = inner.split_once("['")?;
    Some((field, key))
}

/// `validateObjectFieldSelector` for an environment variable.
fn field_ref(f: &ObjectFieldSelector, path: &Path, errs: &mut ErrorList) {
    let api_version = f
        .api_version
        .as_deref()
        .filter(|v| !v.is_empty())
        .unwrap_or("v1");
    if f.field_path.is_empty() {
        errs.push(FieldError::required(path.child("fieldPath"), ""));
        return;
    }
    let conversion = if api_version != "v1" {
        Err(format!("unsupported pod version: {api_version}"))
    } else if let Some((field, _)) = split_subscript(&f.field_path) {
        if matches!(field, "metadata.annotations" | "metadata.labels") {
            Ok(())
        } else {
            Err(format!(
                "field label does not support subscript: {}",
                f.field_path
            ))
        }
    } else if POD_FIELD_LABELS.contains(&f.field_path.as_str()) {
        Ok(())
    } else {
        Err(format!("field label not supported: {}", f.field_path))
    };
    if let Err(e) = conversion {
        errs.push(FieldError::invalid_str(
            path.child("fieldPath"),
            &f.field_path,
            format!("error converting fieldPath: {e}"),
        ));
        return;
    }
    if let Some((field, key)) = split_subscript(&f.field_path) {
        let key = if field == "metadata.annotations" {
            key.to_lowercase()
        } else {
            key.to_string()
        };
        for m in names::qualified_name(&key) {
            errs.push(FieldError::invalid_str(path.clone(), &key, m));
        }
    } else if !ENV_FIELD_PATHS.contains(&f.field_path.as_str()) {
        errs.push(FieldError::not_supported(
            path.child("fieldPath"),
            &f.field_path,
            ENV_FIELD_PATHS,
        ));
    }
}

const RESOURCE_FIELD_PATHS: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

/// `validateContainerResourceFieldSelector` for an environment variable, with its divisor.
fn resource_field_ref(r: &ResourceFieldSelector, path: &Path, errs: &mut ErrorList) {
    let resource = r.resource.as_str();
    let hugepages =
        resource.starts_with("requests.hugepages-") || resource.starts_with("limits.hugepages-");
    if resource.is_empty() {
        errs.push(FieldError::required(path.child("resource"), ""));
    } else if !RESOURCE_FIELD_PATHS.contains(&resource) && !hugepages {
        errs.push(FieldError::not_supported(
            path.child("resource"),
            resource,
            RESOURCE_FIELD_PATHS,
        ));
    }
    let Some(divisor) = r.divisor.as_ref().and_then(|d| Quantity::parse(&d.0).ok()) else {
        return;
    };
    if divisor.canonical() == "0" {
        return;
    }
    const BYTES: &[&str] = &[
        "1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei",
    ];
    const BYTES_TEXT: &str = "1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei";
    let shown = divisor.canonical();
    let problem = match resource {
        "limits.cpu" | "requests.cpu" if !["1m", "1"].contains(&shown.as_str()) => {
            Some("only divisor's values 1m and 1 are supported with the cpu resource".to_string())
        }
        "limits.memory" | "requests.memory" if !BYTES.contains(&shown.as_str()) => Some(format!(
            "only divisor's values {BYTES_TEXT} are supported with the memory resource"
        )),
        "limits.ephemeral-storage" | "requests.ephemeral-storage"
            if !BYTES.contains(&shown.as_str()) =>
        {
            Some(format!(
                "only divisor's values {BYTES_TEXT} are supported with the local ephemeral storage resource"
            ))
        }
        _ if hugepages && !BYTES.contains(&shown.as_str()) => Some(format!(
            "only divisor's values {BYTES_TEXT} are supported with the hugepages resource"
        )),
        _ => None,
    };
    if let Some(m) = problem {
        errs.push(FieldError::invalid_str(path.child("divisor"), resource, m));
    }
}

/// `ValidateEnvFrom`: a valid prefix and exactly one of `configMapRef` and `secretRef`.
pub(super) fn env_from(list: &[EnvFromSource], path: &Path, errs: &mut ErrorList) {
    for (i, source) in list.iter().enumerate() {
        let at = path.index(i);
        if let Some(prefix) = source.prefix.as_deref().filter(|p| !p.is_empty()) {
            for m in names::env_var_name(prefix) {
                errs.push(FieldError::invalid_str(at.child("prefix"), prefix, m));
            }
        }
        let refs = [
            (
                "configMapRef",
                source.config_map_ref.as_ref().map(|r| r.name.as_str()),
            ),
            (
                "secretRef",
                source.secret_ref.as_ref().map(|r| r.name.as_str()),
            ),
        ];
        let mut sources = 0;
        for (field, name) in refs {
            let Some(name) = name else {
                continue;
            };
            sources += 1;
            let name_at = at.child(field).child("name");
            if name.is_empty() {
                errs.push(FieldError::required(name_at, ""));
            } else {
                // A prefix of a generated name: a trailing dash is allowed.
                let masked = match name.strip_suffix('-') {
                    Some(rest) => format!("{rest}a"),
                    None => name.to_string(),
                };
                for m in names::dns1123_subdomain(&masked) {
                    errs.push(FieldError::invalid_str(name_at.clone(), name, m));
                }
            }
        }
        if sources == 0 {
            errs.push(FieldError::invalid_str(
                path.clone(),
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        } else if sources > 1 {
            errs.push(FieldError::invalid_str(
                path.clone(),
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
}
