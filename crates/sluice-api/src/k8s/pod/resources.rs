//! Container resources: standard or extended names, non-negative values, requests within
//! limits.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as Q;

use super::super::field::{BadValue, ErrorList, FieldError, Path};
use super::super::names;
use super::super::quantity::Quantity;
use super::NEGATIVE;

/// Resource names a container may request without a domain.
const CONTAINER_RESOURCES: &[&str] = &["cpu", "memory", "ephemeral-storage"];

/// Resource names valid anywhere without a domain (`IsStandardResourceName`).
const STANDARD_RESOURCES: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "storage",
    "requests.storage",
    "services.nodeports",
    "services.loadbalancers",
];

fn is_hugepages(name: &str) -> bool {
    name.starts_with("hugepages-")
}

/// No domain, or a `kubernetes.io/` one.
fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// `IsExtendedResourceName`: a domain-qualified name outside `kubernetes.io`.
fn is_extended(name: &str) -> bool {
    if is_native(name) || name.starts_with("requests.") {
        return false;
    }
    names::qualified_name(&format!("requests.{name}")).is_empty()
}

/// `IsOvercommitAllowed`: requests may be below limits.
fn overcommit_allowed(name: &str) -> bool {
    is_native(name) && !is_hugepages(name)
}

/// `validateContainerResourceName`.
fn container_resource_name(name: &str, path: &Path, errs: &mut ErrorList) {
    let raw = || BadValue::Raw(name.to_string());
    let msgs = names::qualified_name(name);
    if !msgs.is_empty() {
        for m in msgs {
            errs.push(FieldError::invalid(path.clone(), raw(), m));
        }
        return;
    }
    if !name.contains('/') {
        let standard = STANDARD_RESOURCES.contains(&name)
            || is_hugepages(name)
            || name.starts_with("requests.hugepages-");
        if !standard {
            errs.push(FieldError::invalid(
                path.clone(),
                raw(),
                "must be a standard resource type or fully qualified",
            ));
        }
        if !CONTAINER_RESOURCES.contains(&name) && !is_hugepages(name) {
            errs.push(FieldError::invalid(
                path.clone(),
                raw(),
                "must be a standard resource for containers",
            ));
        }
    } else if !is_native(name) && !is_extended(name) {
        errs.push(FieldError::invalid(
            path.clone(),
            raw(),
            "doesn't follow extended resource name standard",
        ));
    }
}

/// `ValidateResourceQuantityValue`: not negative, and whole for extended resources.
fn quantity_value(name: &str, q: &Quantity, path: &Path, errs: &mut ErrorList) {
    if q.is_negative() {
        errs.push(FieldError::invalid_str(
            path.clone(),
            &q.canonical(),
            NEGATIVE,
        ));
    }
    if is_extended(name) && !q.is_integer() {
        errs.push(FieldError::invalid(
            path.clone(),
            BadValue::Raw(q.canonical()),
            "must be an integer",
        ));
    }
}

/// `ValidateContainerResourceRequirements`: names and values of limits and requests; a
/// request at most its limit (equal for resources that cannot be overcommitted, which also
/// need a limit).
pub(super) fn resources(r: &ResourceRequirements, path: &Path, errs: &mut ErrorList) {
    let parsed = |map: &Option<BTreeMap<String, Q>>| -> BTreeMap<String, Option<Quantity>> {
        map.iter()
            .flatten()
            .map(|(k, v)| (k.clone(), Quantity::parse(&v.0).ok()))
            .collect()
    };
    let limits = parsed(&r.limits);
    let requests = parsed(&r.requests);
    let lim_path = path.child("limits");
    let req_path = path.child("requests");
    let mut compute = false;
    let mut hugepages = false;
    for (name, q) in &limits {
        let at = lim_path.key(name);
        container_resource_name(name, &at, errs);
        if let Some(q) = q {
            quantity_value(name, q, &at, errs);
        }
        hugepages |= is_hugepages(name);
        compute |= name == "cpu" || name == "memory";
    }
    for (name, q) in &requests {
        let at = req_path.key(name);
        container_resource_name(name, &at, errs);
        let Some(q) = q else {
            continue;
        };
        quantity_value(name, q, &at, errs);
        match limits.get(name) {
            Some(Some(limit)) => {
                if !overcommit_allowed(name) && q != limit {
                    errs.push(FieldError::invalid_str(
                        req_path.clone(),
                        &q.canonical(),
                        format!("must be equal to {name} limit of {}", limit.canonical()),
                    ));
                } else if q > limit {
                    errs.push(FieldError::invalid_str(
                        req_path.clone(),
                        &q.canonical(),
                        format!(
                            "must be less than or equal to {name} limit of {}",
                            limit.canonical()
                        ),
                    ));
                }
            }
            Some(None) => {}
            None if !overcommit_allowed(name) => errs.push(FieldError::required(
                lim_path.clone(),
                "Limit must be set for non overcommitable resources",
            )),
            None => {}
        }
        hugepages |= is_hugepages(name);
        compute |= name == "cpu" || name == "memory";
    }
    if hugepages && !compute {
        errs.push(FieldError::forbidden(
            path.clone(),
            "HugePages require cpu or memory",
        ));
    }
}
