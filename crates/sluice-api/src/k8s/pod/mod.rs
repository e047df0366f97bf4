//! Pod specs and pod templates as the apiserver validates them
//! (`k8s.io/kubernetes/pkg/apis/core/validation`: `ValidatePodTemplateSpec`, `ValidatePodSpec`
//! and the container, port, env, volume, probe and resource rules under them), with the
//! apiserver's field paths and messages.
//!
//! The embedded API server runs these on every Pod, pod template and workload it stores; the
//! Rollout planner runs them on a Rollout's template before it writes anything, so a template a
//! real cluster would refuse becomes an `InvalidSpec` naming the field instead of a retry loop.
//!
//! The apiserver validates after defaulting. So that both callers share one rule, a field the
//! apiserver defaults is read with its default when it is absent or empty (`restartPolicy` as
//! `Always`, a port's `protocol` as `TCP`, a probe's `periodSeconds` as 10, ...; see
//! [`super::defaults`]): the embedded server passes defaulted objects, the planner the
//! template as written.
//!
//! Quantities come first: the apiserver cannot even decode an object whose quantity does not
//! parse, and answers 400 before any of these rules run ([`undecodable_quantity`]).
//!
//! Not checked (the apiserver does): security contexts, affinity, tolerations, topology
//! spread, DNS config beyond `dnsPolicy: None`, resize policies, resource claims, hugepage
//! sizes, volume sources beyond their count and the fields listed in `volume_source`.

mod containers;
mod env;
mod probes;
mod resources;
#[cfg(test)]
mod tests;
mod volumes;

use k8s_openapi::api::core::v1::{
    Container, EnvVar, PodSpec, PodTemplateSpec, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as Q;

use super::field::{ErrorList, FieldError, Path};
use super::meta;
use super::names;
use super::quantity::{Quantity, QuantityError};

const NEGATIVE: &str = "must be greater than or equal to 0";

/// A quantity the apiserver cannot decode (its 400 names no field; Sluice does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadQuantity {
    pub field: Path,
    pub value: String,
    pub error: QuantityError,
}

impl BadQuantity {
    /// `<field>: Invalid value: "<value>": <the apiserver's parse error>`.
    pub fn to_field_error(&self) -> FieldError {
        FieldError::invalid_str(self.field.clone(), &self.value, self.error.to_string())
    }
}

/// The first quantity in `spec` that does not parse: container, init and ephemeral container
/// resources, pod `resources` and `overhead`, `emptyDir.sizeLimit`, ephemeral volume claims,
/// and the `divisor` of resource field references.
pub fn undecodable_quantity(spec: &PodSpec, path: &Path) -> Option<BadQuantity> {
    let mut found = None;
    let mut check = |field: Path, q: &Q| {
        if found.is_none()
            && let Err(error) = Quantity::parse(&q.0)
        {
            found = Some(BadQuantity {
                field,
                value: q.0.clone(),
                error,
            });
        }
    };
    let lists = [
        ("containers", container_quantity_views(&spec.containers)),
        (
            "initContainers",
            container_quantity_views(spec.init_containers.as_deref().unwrap_or_default()),
        ),
        (
            "ephemeralContainers",
            spec.ephemeral_containers
                .iter()
                .flatten()
                .map(|c| (c.resources.as_ref(), c.env.as_deref()))
                .collect(),
        ),
    ];
    for (list, views) in lists {
        for (i, (resources, env)) in views.into_iter().enumerate() {
            let at = path.child(list).index(i);
            if let Some(r) = resources {
                requirement_quantities(&at.child("resources"), r, &mut check);
            }
            for (e, var) in env.unwrap_or_default().iter().enumerate() {
                if let Some(d) = var
                    .value_from
                    .as_ref()
                    .and_then(|v| v.resource_field_ref.as_ref())
                    .and_then(|r| r.divisor.as_ref())
                {
                    check(
                        at.child("env")
                            .index(e)
                            .child("valueFrom")
                            .child("resourceFieldRef")
                            .child("divisor"),
                        d,
                    );
                }
            }
        }
    }
    if let Some(r) = &spec.resources {
        requirement_quantities(&path.child("resources"), r, &mut check);
    }
    for (k, q) in spec.overhead.iter().flatten() {
        check(path.child("overhead").key(k), q);
    }
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        let at = path.child("volumes").index(i);
        if let Some(q) = v.empty_dir.as_ref().and_then(|e| e.size_limit.as_ref()) {
            check(at.child("emptyDir").child("sizeLimit"), q);
        }
        if let Some(r) = v
            .ephemeral
            .as_ref()
            .and_then(|e| e.volume_claim_template.as_ref())
            .and_then(|t| t.spec.resources.as_ref())
        {
            let res = at
                .child("ephemeral")
                .child("volumeClaimTemplate")
                .child("spec")
                .child("resources");
            for (part, map) in [("limits", &r.limits), ("requests", &r.requests)] {
                for (k, q) in map.iter().flatten() {
                    check(res.child(part).key(k), q);
                }
            }
        }
        for (j, item) in v
            .downward_api
            .iter()
            .flat_map(|d| d.items.iter().flatten())
            .enumerate()
        {
            if let Some(d) = item
                .resource_field_ref
                .as_ref()
                .and_then(|r| r.divisor.as_ref())
            {
                check(
                    at.child("downwardAPI")
                        .child("items")
                        .index(j)
                        .child("resourceFieldRef")
                        .child("divisor"),
                    d,
                );
            }
        }
    }
    found
}

type QuantityView<'a> = (Option<&'a ResourceRequirements>, Option<&'a [EnvVar]>);

fn container_quantity_views(list: &[Container]) -> Vec<QuantityView<'_>> {
    list.iter()
        .map(|c| (c.resources.as_ref(), c.env.as_deref()))
        .collect()
}

fn requirement_quantities(path: &Path, r: &ResourceRequirements, check: &mut impl FnMut(Path, &Q)) {
    for (part, map) in [("limits", &r.limits), ("requests", &r.requests)] {
        for (k, q) in map.iter().flatten() {
            check(path.child(part).key(k), q);
        }
    }
}

/// `ValidatePodTemplateSpec`: the template's labels and annotations (reported as
/// `<path>.labels`, as upstream does), its pod spec, and no ephemeral containers.
pub fn pod_template_spec(template: &PodTemplateSpec, path: &Path) -> ErrorList {
    let meta = template.metadata.as_ref();
    let mut errs = meta::labels(
        meta.and_then(|m| m.labels.as_ref())
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str())),
        &path.child("labels"),
    );
    errs.extend(meta::annotations(
        meta.and_then(|m| m.annotations.as_ref())
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str())),
        &path.child("annotations"),
    ));
    let empty = PodSpec::default();
    let spec = template.spec.as_ref().unwrap_or(&empty);
    errs.extend(pod_spec(spec, &path.child("spec")));
    if spec
        .ephemeral_containers
        .as_ref()
        .is_some_and(|e| !e.is_empty())
    {
        errs.push(FieldError::forbidden(
            path.child("spec").child("ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
    errs
}

/// `ValidatePodSpec`, in the apiserver's order: volumes, containers, init containers,
/// restart and DNS policy, node selector, names, deadlines.
pub fn pod_spec(spec: &PodSpec, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    let grace = spec.termination_grace_period_seconds.unwrap_or(30);
    let volumes = volumes::volumes(
        spec.volumes.as_deref().unwrap_or_default(),
        &path.child("volumes"),
        &mut errs,
    );
    containers::containers(
        &spec.containers,
        &volumes,
        grace,
        &path.child("containers"),
        &mut errs,
    );
    containers::init_containers(
        spec,
        &volumes,
        grace,
        &path.child("initContainers"),
        &mut errs,
    );
    match spec.restart_policy.as_deref().unwrap_or_default() {
        "" | "Always" | "OnFailure" | "Never" => {}
        other => errs.push(FieldError::not_supported(
            path.child("restartPolicy"),
            other,
            &["Always", "OnFailure", "Never"],
        )),
    }
    let dns_policy = spec.dns_policy.as_deref().unwrap_or_default();
    match dns_policy {
        "" | "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None" => {}
        other => errs.push(FieldError::not_supported(
            path.child("dnsPolicy"),
            other,
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        )),
    }
    errs.extend(meta::labels(
        spec.node_selector
            .iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str())),
        &path.child("nodeSelector"),
    ));
    if dns_policy == "None" {
        match &spec.dns_config {
            None => errs.push(FieldError::required(
                path.child("dnsConfig"),
                "must provide `dnsConfig` when `dnsPolicy` is None",
            )),
            Some(c) if c.nameservers.as_ref().is_none_or(|n| n.is_empty()) => {
                errs.push(FieldError::required(
                    path.child("dnsConfig").child("nameservers"),
                    "must provide at least one DNS nameserver when `dnsPolicy` is None",
                ))
            }
            Some(_) => {}
        }
    }
    let subdomain_fields = [
        ("serviceAccountName", &spec.service_account_name),
        ("nodeName", &spec.node_name),
    ];
    for (field, value) in subdomain_fields {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            for m in names::dns1123_subdomain(v) {
                errs.push(FieldError::invalid_str(path.child(field), v, m));
            }
        }
    }
    if let Some(d) = spec.active_deadline_seconds
        && !(1..=i64::from(i32::MAX)).contains(&d)
    {
        errs.push(FieldError::invalid_int(
            path.child("activeDeadlineSeconds"),
            d,
            names::inclusive_range_error(1, i64::from(i32::MAX)),
        ));
    }
    for (field, value) in [("hostname", &spec.hostname), ("subdomain", &spec.subdomain)] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            for m in names::dns1123_label(v) {
                errs.push(FieldError::invalid_str(path.child(field), v, m));
            }
        }
    }
    if let Some(v) = spec
        .priority_class_name
        .as_deref()
        .filter(|v| !v.is_empty())
    {
        for m in names::dns1123_subdomain(v) {
            errs.push(FieldError::invalid_str(
                path.child("priorityClassName"),
                v,
                m,
            ));
        }
    }
    errs
}
