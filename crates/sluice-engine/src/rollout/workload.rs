//! `spec.workloadRef`: a Rollout that takes its pod template from an existing Deployment,
//! ReplicaSet or PodTemplate (the migration path from Deployments).
//!
//! The planner never sees the reference itself. [`resolve`] turns the observed Rollout into
//! an ordinary one — the template (and, when the Rollout has none, the selector) copied from
//! the referenced object — and the canary step machine plans that. [`finish`] then adds what
//! belongs to the reference alone: the `rollout.argoproj.io/workload-generation` annotation
//! and `status.workloadObservedGeneration` (Argo CD's health check compares them), and the
//! scale-down of a referenced Deployment.
//!
//! Scale-down is stricter than upstream's:
//! - the Deployment is held at its target whenever something scales it back up (a GitOps
//!   sync, a person), not only while revision 1 rolls out;
//! - `progressively` counts the Deployment's pods against `maxSurge`: the Rollout's
//!   ReplicaSets grow only into the room the Deployment leaves (`replicas + maxSurge` pods in
//!   all: [`Observed::outside_pods`] feeds the step machine's surge ceiling), and the
//!   Deployment shrinks only by as many pods as the Rollout has available, so
//!   available pods across both never drop below `spec.replicas` (with `maxSurge: 0`, below
//!   `replicas - maxUnavailable`: there is no room to add a pod first);
//! - the Deployment is never scaled up, and never touched while the Rollout is InvalidSpec.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::observed::Observed;
use super::plan::{Change, Plan};
use super::replicas::Limits;
use super::validate::InvalidSpec;
use sluice_api::common::{
    ObjectRef, SCALE_DOWN_NEVER, SCALE_DOWN_ON_SUCCESS, SCALE_DOWN_PROGRESSIVELY,
    WORKLOAD_GENERATION_ANNOTATION,
};
use sluice_api::k8s::selector;

/// Kinds a `workloadRef` may name, with the apiVersion each must carry.
pub const SUPPORTED_KINDS: &[(&str, &str)] = &[
    ("Deployment", "apps/v1"),
    ("ReplicaSet", "apps/v1"),
    ("PodTemplate", "v1"),
];

/// The referenced object, as much of it as the planner needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Workload {
    /// `metadata.generation` (a PodTemplate has none: 0).
    pub generation: i64,
    pub template: Option<PodTemplateSpec>,
    /// The workload's own selector (Deployments and ReplicaSets).
    pub selector: Option<LabelSelector>,
    /// Deployments only: what to scale down.
    pub scale: Option<DeploymentScale>,
}

/// Replica counts of a referenced Deployment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeploymentScale {
    /// `spec.replicas` (default 1): what scale-down lowers.
    pub spec: i32,
    /// `status.replicas`: pods the Deployment still counts. Until its controller has
    /// removed the pods of a scale-down this exceeds `spec`, and they still use up surge
    /// room.
    pub pods: i32,
}

fn invalid(field: &str, message: impl Into<String>) -> InvalidSpec {
    InvalidSpec {
        field: field.to_string(),
        message: message.into(),
    }
}

/// Checks the reference and returns the Rollout as the planner should see it: template (and
/// selector, if the Rollout has none) taken from the workload, `workloadRef` cleared.
pub fn resolve(observed: &Observed) -> Result<Observed, InvalidSpec> {
    let spec = &observed.rollout.spec;
    let Some(reference) = spec.workload_ref.as_ref() else {
        return Ok(observed.clone());
    };
    if spec.template.is_some() {
        return Err(invalid(
            "spec.template",
            "template must be empty for workload reference rollout",
        ));
    }
    let (kind, name) = check_reference(reference)?;
    let Some(workload) = observed.workload.as_ref() else {
        return Err(invalid(
            "spec.workloadRef",
            format!(
                "{kind} {name:?} not found in namespace {:?}",
                namespace(observed)
            ),
        ));
    };
    let Some(template) = workload.template.clone() else {
        return Err(invalid(
            "spec.workloadRef",
            format!("{kind} {name:?} has no pod template"),
        ));
    };
    // The referenced template becomes the Rollout's ReplicaSets' template: the API server
    // must accept it there (a PodTemplate's may, say, restart `Never`).
    let at = if kind == "PodTemplate" {
        "template"
    } else {
        "spec.template"
    };
    if let Err(e) = super::template::check(&template, &sluice_api::k8s::field::Path::new(at)) {
        return Err(invalid(
            "spec.workloadRef",
            format!("{kind} {name:?}: {}: {}", e.field.json_path(), e.body()),
        ));
    }
    if let Some(selector) = &workload.selector {
        let labels = template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        if !selector::matches(Some(selector), &labels).unwrap_or(false) {
            return Err(invalid(
                "spec.workloadRef",
                format!("{kind} {name:?}: its selector does not match its template's labels"),
            ));
        }
    }
    let mut resolved = observed.clone();
    let spec = &mut resolved.rollout.spec;
    spec.workload_ref = None;
    spec.template = Some(template);
    if spec.selector.is_none() {
        spec.selector = workload.selector.clone();
    }
    if reference.scale_down.as_deref() == Some(SCALE_DOWN_PROGRESSIVELY)
        && let Some(scale) = workload.scale
    {
        // The Deployment's pods use up surge room until its controller has removed them.
        resolved.outside_pods = scale.spec.max(scale.pods).max(0);
    }
    Ok(resolved)
}

/// The reference on its own: a supported kind with its apiVersion, a name, and a scaleDown
/// mode the kind allows. Returns the kind and name.
fn check_reference(reference: &ObjectRef) -> Result<(&str, &str), InvalidSpec> {
    let kind = reference.kind.as_deref().unwrap_or_default();
    let name = reference.name.as_deref().unwrap_or_default();
    let Some(&(_, api_version)) = SUPPORTED_KINDS.iter().find(|(k, _)| *k == kind) else {
        return Err(invalid(
            "spec.workloadRef.kind",
            format!("{kind:?} is not supported: must be Deployment, ReplicaSet or PodTemplate"),
        ));
    };
    if let Some(v) = reference.api_version.as_deref()
        && v != api_version
    {
        return Err(invalid(
            "spec.workloadRef.apiVersion",
            format!("{v:?} does not serve {kind}: use {api_version:?}"),
        ));
    }
    if name.is_empty() {
        return Err(invalid("spec.workloadRef.name", "must be set"));
    }
    match reference.scale_down.as_deref() {
        None | Some(SCALE_DOWN_NEVER) => {}
        Some(SCALE_DOWN_ON_SUCCESS | SCALE_DOWN_PROGRESSIVELY) if kind == "Deployment" => {}
        Some(SCALE_DOWN_ON_SUCCESS | SCALE_DOWN_PROGRESSIVELY) => {
            return Err(invalid(
                "spec.workloadRef.scaleDown",
                format!("only a Deployment can be scaled down, not a {kind}: use \"never\""),
            ));
        }
        Some(other) => {
            return Err(invalid(
                "spec.workloadRef.scaleDown",
                format!("{other:?} is not one of \"never\", \"onsuccess\", \"progressively\""),
            ));
        }
    }
    Ok((kind, name))
}

fn namespace(observed: &Observed) -> &str {
    observed
        .rollout
        .metadata
        .namespace
        .as_deref()
        .unwrap_or_default()
}

/// Adds the reference's own share to a plan made for the resolved Rollout (or to an
/// InvalidSpec plan, which gets only the generation bookkeeping).
pub fn finish(observed: &Observed, resolved: Option<&Observed>, plan: &mut Plan) {
    let Some(reference) = observed.rollout.spec.workload_ref.as_ref() else {
        return;
    };
    let Some(workload) = observed.workload.as_ref() else {
        return;
    };
    sync_generation(observed, workload, plan);
    let Some(resolved) = resolved else {
        return;
    };
    let Some(scale) = workload.scale else {
        return;
    };
    let mode = reference.scale_down.as_deref().unwrap_or(SCALE_DOWN_NEVER);
    if mode == SCALE_DOWN_NEVER {
        return;
    }
    let spec = &resolved.rollout.spec;
    let desired = spec.replicas();
    let limits = Limits::of_validated(spec);
    let available = rollout_available(resolved);
    let target = match mode {
        SCALE_DOWN_PROGRESSIVELY => progressive_target(scale, available, desired, limits),
        _ => onsuccess_target(scale, available, desired, plan),
    };
    if target < scale.spec {
        let name = reference.name.clone().unwrap_or_default();
        // Scale the Deployment before the Rollout's own writes are made: its pods are the
        // ones leaving, and the room they leave is what the Rollout grows into next.
        plan.changes.insert(
            0,
            Change::ScaleDeployment {
                name: name.clone(),
                from: scale.spec,
                replicas: target,
            },
        );
        // Its Event right after it: the actuator publishes the Events of cluster changes
        // that went through even when the status write that follows conflicts.
        plan.changes.insert(
            1,
            Change::normal(
            "ScalingDeployment",
            format!(
                "Scaled down Deployment {name} from {} to {target} (workloadRef scaleDown: {mode})",
                scale.spec
            ),
            ),
        );
    }
}

/// Keeps the annotation Argo CD's health check reads and `status.workloadObservedGeneration`
/// equal to the generation of the workload this plan was made from.
fn sync_generation(observed: &Observed, workload: &Workload, plan: &mut Plan) {
    let generation = workload.generation.to_string();
    let annotated = observed
        .rollout
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(WORKLOAD_GENERATION_ANNOTATION));
    if annotated != Some(&generation) {
        plan.changes.insert(
            0,
            Change::AnnotateRollout {
                key: WORKLOAD_GENERATION_ANNOTATION.to_string(),
                value: generation.clone(),
            },
        );
    }
    plan.status.workload_observed_generation = Some(generation);
}

/// Available pods over the Rollout's own ReplicaSets.
fn rollout_available(observed: &Observed) -> i32 {
    observed
        .replica_sets
        .iter()
        .filter(|rs| rs.metadata.deletion_timestamp.is_none())
        .map(|rs| {
            rs.status
                .as_ref()
                .and_then(|s| s.available_replicas)
                .unwrap_or(0)
        })
        .sum()
}

/// `progressively`: the Deployment keeps as many pods as the Rollout still lacks to reach
/// the availability floor, never more than it has.
fn progressive_target(
    scale: DeploymentScale,
    rollout_available: i32,
    desired: i32,
    limits: Limits,
) -> i32 {
    let floor = if limits.max_surge > 0 {
        desired
    } else {
        desired - limits.max_unavailable
    };
    (floor - rollout_available).max(0).min(scale.spec)
}

/// `onsuccess`: zero once the Rollout has rolled out a stable revision with all its replicas
/// available — and again whenever the Deployment is scaled up after that.
fn onsuccess_target(
    scale: DeploymentScale,
    rollout_available: i32,
    desired: i32,
    plan: &Plan,
) -> i32 {
    let rolled_out = plan.status.stable_rs.is_some() && rollout_available >= desired;
    if rolled_out { 0 } else { scale.spec }
}

#[cfg(test)]
mod tests;
