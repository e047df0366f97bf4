//! The Experiment an `experiment` canary step creates (COMPAT §9; upstream
//! `GetExperimentFromTemplate`), and the spec checks of such a step.
//!
//! The Experiment controller runs it; the planner creates it, reads its phase, and terminates
//! or deletes it.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::analysis_runs::{RunContext, owner_reference, resolve_templates, rollout_args};
use super::observed::Observed;
use super::validate::InvalidSpec;
use sluice_api::common::{AnalysisTemplateRef, POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION};
use sluice_api::experiment::{
    Experiment, ExperimentAnalysisTemplateRef, ExperimentSpec, TemplateSpec,
};
use sluice_api::rollout::{
    RolloutExperimentStep, RolloutExperimentTemplate, SPEC_REF_CANARY, SPEC_REF_STABLE,
};

/// Upstream's message for `weight` on a Rollout without traffic routing.
pub const WEIGHT_WITHOUT_TRAFFIC_ROUTING: &str =
    "Experiment template weight cannot be set unless TrafficRouting is enabled";

/// Upstream's Experiment name for step `index`: `<rollout>-<hash>-<revision>-<index>`.
pub fn base_experiment_name(rollout: &str, hash: &str, revision: i64, index: i32) -> String {
    format!("{rollout}-{hash}-{revision}-{index}")
}

/// Whether `name` is the Experiment of step `index` (the base name or a collision variant
/// `<base>-<n>`), so an Experiment left over from another step is never mistaken for it.
pub fn belongs_to_step(name: &str, base: &str) -> bool {
    name == base
        || name
            .strip_prefix(base)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Builds the Experiment for `step`: each template copies the canary's or the stable's pod
/// template, `minReadySeconds` and (unless the step gives one) selector; `metadata.labels` are
/// added to both the pod template and the selector, `metadata.annotations` to the pod template;
/// `service`/`weight` ask for a Service. Analyses keep their template references with the
/// Rollout's arguments resolved. The Experiment carries the Rollout's labels plus the canary
/// hash, the revision annotation and a controller reference to the Rollout.
///
/// The copied template and selector keep `rollouts-pod-template-hash` of the ReplicaSet they
/// come from; the Experiment controller replaces it with the hash of the experiment template,
/// which is what keeps the experiment's pods apart from the Rollout's (as upstream).
pub fn build_experiment(
    ctx: &RunContext,
    step: &RolloutExperimentStep,
    canary: &ReplicaSet,
    stable: &ReplicaSet,
    name: String,
    field: &str,
) -> Result<Experiment, InvalidSpec> {
    let rollout = &ctx.observed.rollout;
    let mut labels = rollout.metadata.labels.clone().unwrap_or_default();
    labels.insert(
        POD_TEMPLATE_HASH_LABEL.to_string(),
        ctx.latest_hash.to_string(),
    );
    let mut templates = Vec::with_capacity(step.templates.len());
    for (j, t) in step.templates.iter().enumerate() {
        let source = match t.spec_ref.as_str() {
            SPEC_REF_CANARY => canary,
            SPEC_REF_STABLE => stable,
            _ => return Err(bad_spec_ref(field, j)),
        };
        templates.push(template_from(t, source));
    }
    let mut analyses = Vec::new();
    for (k, a) in step.analyses.iter().flatten().enumerate() {
        let args = rollout_args(
            ctx,
            a.args.as_deref().unwrap_or_default(),
            &format!("{field}.analyses[{k}]"),
        )?;
        analyses.push(ExperimentAnalysisTemplateRef {
            name: a.name.clone(),
            template_name: a.template_name.clone(),
            cluster_scope: a.cluster_scope,
            args: (!args.is_empty()).then_some(args),
            required_for_completion: a.required_for_completion,
        });
    }
    Ok(Experiment {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: rollout.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                REVISION_ANNOTATION.to_string(),
                ctx.revision.to_string(),
            )])),
            owner_references: Some(vec![owner_reference(rollout)]),
            ..Default::default()
        },
        spec: ExperimentSpec {
            templates,
            duration: step.duration.clone(),
            progress_deadline_seconds: rollout.spec.progress_deadline_seconds,
            terminate: None,
            analyses: (!analyses.is_empty()).then_some(analyses),
            scale_down_delay_seconds: step.scale_down_delay_seconds,
            dry_run: step.dry_run.clone(),
            measurement_retention: None,
            analysis_run_metadata: step.analysis_run_metadata.clone(),
        },
        status: None,
    })
}

fn template_from(t: &RolloutExperimentTemplate, source: &ReplicaSet) -> TemplateSpec {
    let rs_spec = source.spec.clone().unwrap_or_default();
    let mut template = rs_spec.template.unwrap_or_default();
    let mut selector = t.selector.clone().unwrap_or(rs_spec.selector);
    if let Some(meta) = &t.metadata {
        let pod_meta = template.metadata.get_or_insert_with(Default::default);
        if let Some(extra) = meta.labels.as_ref().filter(|l| !l.is_empty()) {
            pod_meta
                .labels
                .get_or_insert_with(Default::default)
                .extend(extra.clone());
            selector
                .match_labels
                .get_or_insert_with(Default::default)
                .extend(extra.clone());
        }
        if let Some(extra) = meta.annotations.as_ref().filter(|a| !a.is_empty()) {
            pod_meta
                .annotations
                .get_or_insert_with(Default::default)
                .extend(extra.clone());
        }
    }
    let service =
        (t.weight.is_some() || t.service.is_some()).then(|| sluice_api::common::TemplateService {
            name: t
                .service
                .as_ref()
                .and_then(|s| s.name.clone())
                .filter(|n| !n.is_empty()),
        });
    TemplateSpec {
        name: t.name.clone(),
        replicas: t.replicas,
        min_ready_seconds: rs_spec.min_ready_seconds,
        selector,
        template,
        service,
    }
}

fn bad_spec_ref(field: &str, j: usize) -> InvalidSpec {
    InvalidSpec {
        field: format!("{field}.templates[{j}].specRef"),
        message: "Invalid template step SpecRef: must be canary or stable".to_string(),
    }
}

/// Spec checks of an experiment step: at least one template, unique template names, a valid
/// `specRef`, no `weight` (traffic routing only), and analysis templates that exist.
pub fn validate_step(
    observed: &Observed,
    step: &RolloutExperimentStep,
    field: &str,
) -> Result<(), InvalidSpec> {
    if step.templates.is_empty() {
        return Err(InvalidSpec {
            field: format!("{field}.templates"),
            message: "an experiment step needs at least one template".to_string(),
        });
    }
    for (j, t) in step.templates.iter().enumerate() {
        if step.templates[..j].iter().any(|p| p.name == t.name) {
            return Err(InvalidSpec {
                field: format!("{field}.templates[{j}].name"),
                message: format!("template name '{}' is not unique", t.name),
            });
        }
        if t.spec_ref != SPEC_REF_CANARY && t.spec_ref != SPEC_REF_STABLE {
            return Err(bad_spec_ref(field, j));
        }
        if t.weight.is_some() {
            let routed = observed
                .rollout
                .spec
                .canary()
                .is_some_and(|c| c.traffic_routing.is_some());
            // Routing a share of the traffic to an experiment's templates (upstream's
            // additional weight destinations) is not built yet: refused, never ignored.
            let message = if routed {
                "traffic to experiment templates is not supported by Sluice yet: remove weight (the templates then run without traffic)"
            } else {
                WEIGHT_WITHOUT_TRAFFIC_ROUTING
            };
            return Err(InvalidSpec {
                field: format!("{field}.templates[{j}].weight"),
                message: message.to_string(),
            });
        }
    }
    if let Some(d) = &step.duration
        && let Err(e) = crate::experiment::validate::duration_of(d)
    {
        return Err(InvalidSpec {
            field: format!("{field}.duration"),
            message: e,
        });
    }
    for (k, a) in step.analyses.iter().flatten().enumerate() {
        let r = AnalysisTemplateRef {
            template_name: Some(a.template_name.clone()),
            cluster_scope: a.cluster_scope,
        };
        let at = format!("{field}.analyses[{k}]");
        resolve_templates(observed, std::slice::from_ref(&r), &at).map_err(|mut e| {
            // One reference, not a list: drop the `[0]` resolve_templates adds.
            e.field = e
                .field
                .replacen(&format!("{at}[0]"), &format!("{at}.templateName"), 1);
            e
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_membership_accepts_only_the_base_name_and_its_collision_variants() {
        assert!(belongs_to_step("ro-h-2-1", "ro-h-2-1"));
        assert!(belongs_to_step("ro-h-2-1-3", "ro-h-2-1"));
        assert!(!belongs_to_step("ro-h-2-12", "ro-h-2-1"));
        assert!(!belongs_to_step("ro-h-2-1-", "ro-h-2-1"));
        assert!(!belongs_to_step("ro-h-2-1-x", "ro-h-2-1"));
    }
}
