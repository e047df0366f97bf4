//! Spec validation: what makes a Rollout `InvalidSpec`.
//!
//! An invalid Rollout gets only a status change (InvalidSpec condition, phase Degraded) and
//! no ReplicaSet change. Every message starts with the field path, so the user knows what to
//! edit. Fields the CRD accepts but Sluice does not run yet are invalid too (never silently
//! ignored); they are listed in one place, [`UNSUPPORTED_FEATURES`] and
//! [`UNSUPPORTED_STEP_KINDS`], so enabling a feature is a one-line change.

use std::collections::BTreeMap;

use thiserror::Error;

use super::observed::Observed;
use super::replicas::Limits;
use sluice_api::k8s::selector::{is_empty as selects_everything, matches as selector_matches};
use sluice_api::rollout::{
    AntiAffinity, BlueGreenStrategy, CanaryStep, CanaryStrategy, RolloutSpec,
};

/// Why a Rollout cannot be reconciled.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {message}")]
pub struct InvalidSpec {
    /// JSON path of the offending field, e.g. `spec.strategy.canary.steps[3]`.
    pub field: String,
    pub message: String,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> InvalidSpec {
    InvalidSpec {
        field: field.into(),
        message: message.into(),
    }
}

/// A field Sluice accepts but does not implement yet.
pub struct Unsupported {
    pub field: &'static str,
    pub present: fn(&RolloutSpec) -> bool,
}

/// Spec features that make a Rollout InvalidSpec until Sluice implements them (traffic
/// routers Sluice does not run are refused by [`super::traffic::routing`], naming the router).
pub const UNSUPPORTED_FEATURES: &[Unsupported] = &[Unsupported {
    field: "spec.strategy.canary.pingPong",
    present: |s| s.canary().is_some_and(|c| c.ping_pong.is_some()),
}];

/// Canary step kinds Sluice does not run yet.
pub const UNSUPPORTED_STEP_KINDS: &[&str] = &["plugin"];

/// Canary step kinds that only mean something with traffic routing (upstream refuses them
/// without it too).
const TRAFFIC_ROUTING_STEP_KINDS: &[&str] = &["setCanaryScale", "setHeaderRoute", "setMirrorRoute"];

/// Canary fields that only mean something with traffic routing (upstream rejects them too).
const TRAFFIC_ROUTING_ONLY: &[Unsupported] = &[
    Unsupported {
        field: "spec.strategy.canary.scaleDownDelaySeconds",
        present: |s| {
            s.canary()
                .is_some_and(|c| c.scale_down_delay_seconds.is_some())
        },
    },
    Unsupported {
        field: "spec.strategy.canary.scaleDownDelayRevisionLimit",
        present: |s| {
            s.canary()
                .is_some_and(|c| c.scale_down_delay_revision_limit.is_some())
        },
    },
    Unsupported {
        field: "spec.strategy.canary.abortScaleDownDelaySeconds",
        present: |s| {
            s.canary()
                .is_some_and(|c| c.abort_scale_down_delay_seconds.is_some())
        },
    },
    Unsupported {
        field: "spec.strategy.canary.dynamicStableScale",
        present: |s| {
            s.canary()
                .is_some_and(|c| c.dynamic_stable_scale == Some(true))
        },
    },
    Unsupported {
        field: "spec.strategy.canary.minPodsPerReplicaSet",
        present: |s| {
            s.canary()
                .is_some_and(|c| c.min_pods_per_replica_set.is_some())
        },
    },
];

/// Checks the Rollout in `observed`, including that referenced Services and analysis
/// templates exist and that its analyses can be turned into runs.
pub fn validate(observed: &Observed) -> Result<(), InvalidSpec> {
    validate_spec(&observed.rollout.spec)?;
    super::traffic::validate_routes(observed)?;
    validate_services(observed)?;
    super::analysis_runs::validate_analyses(observed)
}

/// Checks a Rollout spec on its own.
pub fn validate_spec(spec: &RolloutSpec) -> Result<(), InvalidSpec> {
    validate_strategy(spec)?;
    validate_selector(spec)?;
    if let Some(bg) = spec.blue_green() {
        return validate_blue_green(spec, bg);
    }
    let Some(canary) = spec.canary() else {
        return Ok(());
    };
    validate_canary(spec, canary)?;
    for (i, step) in spec.steps().iter().enumerate() {
        validate_step(i, step, canary.traffic_routing.is_some())?;
    }
    Ok(())
}

/// One strategy, a non-negative replica count, a template or a workloadRef (not both), and
/// nothing Sluice does not run yet.
fn validate_strategy(spec: &RolloutSpec) -> Result<(), InvalidSpec> {
    let strategy = spec.strategy.as_ref();
    if strategy.is_none_or(|s| s.canary.is_none() && s.blue_green.is_none()) {
        return Err(invalid(
            "spec.strategy",
            "Rollout has missing field '.spec.strategy.canary or .spec.strategy.blueGreen'",
        ));
    }
    if spec.canary().is_some() && spec.blue_green().is_some() {
        return Err(invalid(
            "spec.strategy",
            "Multiple Strategies can not be listed",
        ));
    }
    if spec.replicas.is_some_and(|r| r < 0) {
        return Err(invalid(
            "spec.replicas",
            "must be greater than or equal to 0",
        ));
    }
    for (field, value) in [
        ("spec.minReadySeconds", spec.min_ready_seconds),
        ("spec.revisionHistoryLimit", spec.revision_history_limit),
        (
            "spec.progressDeadlineSeconds",
            spec.progress_deadline_seconds,
        ),
    ] {
        if let Some(v) = value.filter(|v| *v < 0) {
            return Err(invalid(
                field,
                format!("must be greater than or equal to 0, got {v}"),
            ));
        }
    }
    if spec.progress_deadline_seconds() <= spec.min_ready_seconds() {
        return Err(invalid(
            "spec.progressDeadlineSeconds",
            format!(
                "must be greater than minReadySeconds ({} <= {})",
                spec.progress_deadline_seconds(),
                spec.min_ready_seconds()
            ),
        ));
    }
    if spec.template.is_some() && spec.workload_ref.is_some() {
        return Err(invalid(
            "spec.template",
            "template must be empty for workload reference rollout",
        ));
    }
    for feature in UNSUPPORTED_FEATURES {
        if (feature.present)(spec) {
            return Err(invalid(feature.field, "is not supported by Sluice yet"));
        }
    }
    Ok(())
}

/// A template the API server would accept in a ReplicaSet, and a non-empty selector that
/// matches its labels.
fn validate_selector(spec: &RolloutSpec) -> Result<(), InvalidSpec> {
    let Some(template) = spec.template.as_ref() else {
        return Err(invalid(
            "spec.template",
            "Rollout has missing field '.spec.template'",
        ));
    };
    let Some(selector) = spec.selector.as_ref() else {
        return Err(invalid(
            "spec.selector",
            "Rollout has missing field '.spec.selector'",
        ));
    };
    if selects_everything(selector) {
        return Err(invalid(
            "spec.selector",
            "This rollout is selecting all pods. A non-empty selector is required.",
        ));
    }
    let empty = BTreeMap::new();
    let labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref())
        .unwrap_or(&empty);
    match selector_matches(Some(selector), labels) {
        Ok(true) => {}
        Ok(false) => {
            return Err(invalid(
                "spec.selector",
                "`selector` does not match template `labels` (spec.template.metadata.labels)",
            ));
        }
        Err(e) => return Err(invalid("spec.selector.matchExpressions", e.to_string())),
    }
    // The template as the API server will judge it in the Rollout's ReplicaSets.
    super::template::validate(template)
}

/// The canary's own fields: nothing that needs traffic routing, usable surge/unavailable
/// limits, ephemeral metadata that is valid pod metadata, a known replicaProgressThreshold
/// type.
fn validate_canary(spec: &RolloutSpec, canary: &CanaryStrategy) -> Result<(), InvalidSpec> {
    if canary.traffic_routing.is_none() {
        for feature in TRAFFIC_ROUTING_ONLY {
            if (feature.present)(spec) {
                return Err(invalid(
                    feature.field,
                    traffic_routing_only_message(feature.field),
                ));
            }
        }
    }
    if canary.traffic_routing.is_some()
        && canary.scale_down_delay_seconds.is_some()
        && canary.dynamic_stable_scale == Some(true)
    {
        return Err(invalid(
            "spec.strategy.canary.dynamicStableScale",
            "Canary dynamicStableScale cannot be used with scaleDownDelaySeconds",
        ));
    }
    let zero = |v: &Option<_>| {
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        matches!(v, Some(IntOrString::Int(0)))
            || matches!(v, Some(IntOrString::String(s)) if s.trim_end_matches('%') == "0")
    };
    if zero(&canary.max_surge) && zero(&canary.max_unavailable) {
        return Err(invalid(
            "spec.strategy.canary.maxUnavailable",
            "MaxSurge and MaxUnavailable both can not be zero",
        ));
    }
    Limits::resolve(
        canary.max_surge.as_ref(),
        canary.max_unavailable.as_ref(),
        spec.replicas(),
    )
    .map_err(|e| {
        invalid(
            e.field.clone(),
            e.to_string().replacen(&format!("{}: ", e.field), "", 1),
        )
    })?;

    for (field, metadata) in [
        (
            "spec.strategy.canary.canaryMetadata",
            &canary.canary_metadata,
        ),
        (
            "spec.strategy.canary.stableMetadata",
            &canary.stable_metadata,
        ),
    ] {
        if let Some(m) = metadata {
            super::template::validate_ephemeral(m, field)?;
        }
    }
    validate_anti_affinity(
        "spec.strategy.canary.antiAffinity",
        canary.anti_affinity.as_ref(),
    )?;
    if let Some(t) = &canary.replica_progress_threshold
        && t.type_ != "Percent"
        && t.type_ != "Pods"
    {
        return Err(invalid(
            "spec.strategy.canary.replicaProgressThreshold.type",
            format!("must be \"Percent\" or \"Pods\", got {:?}", t.type_),
        ));
    }
    Ok(())
}

/// Upstream's message for a canary field that needs traffic routing, where it has one.
fn traffic_routing_only_message(field: &str) -> String {
    let name = field.rsplit('.').next().unwrap_or(field);
    match name {
        "scaleDownDelaySeconds" | "dynamicStableScale" => {
            format!("Canary {name} can only be used with traffic routing")
        }
        _ => "can only be used with trafficRouting".to_string(),
    }
}

/// Upstream's message for a preview Service that is the active one.
const SAME_ACTIVE_AND_PREVIEW: &str = "This rollout uses the same service for the active and preview services, but two different services are required.";

/// The blue/green strategy's own fields: an active Service distinct from the preview one,
/// non-negative counts and delays, a preview no larger than the Rollout, a revision limit
/// within the history kept, a usable `maxUnavailable` and anti-affinity, and analyses that
/// name templates.
fn validate_blue_green(spec: &RolloutSpec, bg: &BlueGreenStrategy) -> Result<(), InvalidSpec> {
    const F: &str = "spec.strategy.blueGreen";
    if bg.active_service.is_empty() {
        return Err(invalid(
            format!("{F}.activeService"),
            "must name the Service that receives production traffic",
        ));
    }
    if bg.preview_service.as_deref() == Some(bg.active_service.as_str()) {
        return Err(invalid(
            format!("{F}.previewService"),
            SAME_ACTIVE_AND_PREVIEW,
        ));
    }
    let non_negative = [
        ("previewReplicaCount", bg.preview_replica_count),
        ("autoPromotionSeconds", bg.auto_promotion_seconds),
        ("scaleDownDelaySeconds", bg.scale_down_delay_seconds),
        (
            "scaleDownDelayRevisionLimit",
            bg.scale_down_delay_revision_limit,
        ),
        (
            "abortScaleDownDelaySeconds",
            bg.abort_scale_down_delay_seconds,
        ),
    ];
    for (name, value) in non_negative {
        if let Some(v) = value.filter(|v| *v < 0) {
            return Err(invalid(
                format!("{F}.{name}"),
                format!("must be greater than or equal to 0, got {v}"),
            ));
        }
    }
    if let Some(count) = bg.preview_replica_count.filter(|c| *c > spec.replicas()) {
        return Err(invalid(
            format!("{F}.previewReplicaCount"),
            format!(
                "{count} is more than spec.replicas ({}): the preview runs at most the whole new version",
                spec.replicas()
            ),
        ));
    }
    if let Some(limit) = bg.scale_down_delay_revision_limit
        && limit > spec.revision_history_limit()
    {
        return Err(invalid(
            format!("{F}.scaleDownDelayRevisionLimit"),
            format!(
                "This rollout's revision history limit can not be smaller than the rollout's scale down limit ({limit} > revisionHistoryLimit {})",
                spec.revision_history_limit()
            ),
        ));
    }
    Limits::blue_green(bg.max_unavailable.as_ref(), spec.replicas()).map_err(|e| {
        invalid(
            e.field.clone(),
            e.to_string().replacen(&format!("{}: ", e.field), "", 1),
        )
    })?;
    validate_anti_affinity(&format!("{F}.antiAffinity"), bg.anti_affinity.as_ref())?;
    for (field, metadata) in [
        (
            "spec.strategy.blueGreen.activeMetadata",
            &bg.active_metadata,
        ),
        (
            "spec.strategy.blueGreen.previewMetadata",
            &bg.preview_metadata,
        ),
    ] {
        if let Some(m) = metadata {
            super::template::validate_ephemeral(m, field)?;
        }
    }
    let analyses = [
        ("prePromotionAnalysis", &bg.pre_promotion_analysis),
        ("postPromotionAnalysis", &bg.post_promotion_analysis),
    ];
    for (name, analysis) in analyses {
        if analysis
            .as_ref()
            .is_some_and(|a| a.templates.as_ref().is_none_or(Vec::is_empty))
        {
            return Err(invalid(
                format!("{F}.{name}.templates"),
                "an analysis needs at least one template",
            ));
        }
    }
    Ok(())
}

/// `antiAffinity`: exactly one of preferred and required, a preferred weight of 1–100.
fn validate_anti_affinity(field: &str, anti: Option<&AntiAffinity>) -> Result<(), InvalidSpec> {
    let Some(anti) = anti else {
        return Ok(());
    };
    let preferred = anti
        .preferred_during_scheduling_ignored_during_execution
        .as_ref();
    let required = anti
        .required_during_scheduling_ignored_during_execution
        .is_some();
    if preferred.is_some() == required {
        return Err(invalid(
            field,
            "AntiAffinity must have exactly one strategy listed: preferredDuringSchedulingIgnoredDuringExecution or requiredDuringSchedulingIgnoredDuringExecution",
        ));
    }
    if let Some(w) = preferred
        .map(|p| p.weight)
        .filter(|w| !(1..=100).contains(w))
    {
        return Err(invalid(
            format!("{field}.preferredDuringSchedulingIgnoredDuringExecution.weight"),
            format!("AntiAffinity weight must be between 1-100, got {w}"),
        ));
    }
    Ok(())
}

/// `steps[i]`: exactly one supported kind, with a valid weight or pause duration.
fn validate_step(i: usize, step: &CanaryStep, routed: bool) -> Result<(), InvalidSpec> {
    let field = format!("spec.strategy.canary.steps[{i}]");
    let keys = step.keys();
    match keys.as_slice() {
        [] => {
            return Err(invalid(
                field,
                "Step must have one of the following set: experiment, setWeight, setCanaryScale, plugin or pause",
            ));
        }
        [key] => {
            if UNSUPPORTED_STEP_KINDS.contains(key) {
                return Err(invalid(
                    format!("{field}.{key}"),
                    "is not supported by Sluice yet",
                ));
            }
            if !routed && TRAFFIC_ROUTING_STEP_KINDS.contains(key) {
                return Err(invalid(
                    format!("{field}.{key}"),
                    "can only be used with trafficRouting",
                ));
            }
        }
        _ => {
            // Upstream's message for a step with several kinds; the kinds found follow it.
            return Err(invalid(
                field,
                format!(
                    "Step must have one of the following set: experiment, setWeight, setCanaryScale, plugin or pause (found {})",
                    keys.join(" and ")
                ),
            ));
        }
    }
    if let Some(w) = step.set_weight
        && !(0..=100).contains(&w)
    {
        return Err(invalid(
            format!("{field}.setWeight"),
            format!("SetWeight needs to be between 0 and 100 (got {w})"),
        ));
    }
    if let Some(pause) = &step.pause
        && let Err(e) = pause.duration()
    {
        return Err(invalid(
            format!("{field}.pause.duration"),
            format!(
                "invalid duration {:?}: use a non-negative number of seconds or a duration such as \"30s\" or \"1h\"",
                e.value
            ),
        ));
    }
    Ok(())
}

/// The Services the strategy names: each must exist, select pods of this Rollout's template
/// (apart from the hash label Sluice sets), and not be managed by another Rollout.
fn validate_services(observed: &Observed) -> Result<(), InvalidSpec> {
    let spec = &observed.rollout.spec;
    let refs: Vec<(&str, Option<&String>)> = if let Some(bg) = spec.blue_green() {
        vec![
            (
                "spec.strategy.blueGreen.activeService",
                Some(&bg.active_service),
            ),
            (
                "spec.strategy.blueGreen.previewService",
                bg.preview_service.as_ref(),
            ),
        ]
    } else if let Some(canary) = spec.canary() {
        if let (Some(c), Some(s)) = (&canary.canary_service, &canary.stable_service)
            && c == s
        {
            return Err(invalid(
                "spec.strategy.canary.stableService",
                "This rollout uses the same service for the stable and canary services, but two different services are required.",
            ));
        }
        vec![
            (
                "spec.strategy.canary.canaryService",
                canary.canary_service.as_ref(),
            ),
            (
                "spec.strategy.canary.stableService",
                canary.stable_service.as_ref(),
            ),
        ]
    } else {
        Vec::new()
    };
    for (field, name) in refs {
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            continue;
        };
        let Some(Some(svc)) = observed.services.get(name.as_str()) else {
            return Err(invalid(field, format!("service {name:?} not found")));
        };
        validate_service(observed, field, name, svc)?;
    }
    Ok(())
}

/// Upstream's `ValidateService`: every selector label but the hash must be one the pod
/// template carries, and no other Rollout may have claimed the Service.
fn validate_service(
    observed: &Observed,
    field: &str,
    name: &str,
    svc: &k8s_openapi::api::core::v1::Service,
) -> Result<(), InvalidSpec> {
    let rollout = &observed.rollout;
    let empty = BTreeMap::new();
    let labels = rollout
        .spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.as_ref())
        .unwrap_or(&empty);
    let selector = svc.spec.as_ref().and_then(|s| s.selector.as_ref());
    for (key, value) in selector.into_iter().flatten() {
        if key == sluice_api::common::POD_TEMPLATE_HASH_LABEL {
            continue;
        }
        if labels.get(key) != Some(value) {
            return Err(invalid(
                field,
                format!(
                    "Service {name:?} has unmatch label {key:?} in rollout: it selects {key}={value}, which spec.template.metadata.labels does not carry, so it could never select this Rollout's pods"
                ),
            ));
        }
    }
    let owner = svc
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(super::canary::MANAGED_BY_ROLLOUTS_ANNOTATION));
    if let Some(owner) = owner.filter(|o| Some(o.as_str()) != rollout.metadata.name.as_deref()) {
        return Err(invalid(
            field,
            format!("Service {name:?} is managed by another Rollout ({owner:?})"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::testing::RolloutBuilder;

    /// Upstream's ValidateNonnegativeField and deadline rule, found missing by the bad-input
    /// catalogue (e2e/catalogue/rollout-numbers.yaml).
    #[test]
    fn negative_timings_and_a_deadline_within_min_ready_are_invalid() {
        type Edit = fn(&mut RolloutSpec);
        let cases: Vec<(Edit, &str, &str)> = vec![
            (
                |s| s.min_ready_seconds = Some(-5),
                "spec.minReadySeconds",
                "got -5",
            ),
            (
                |s| s.revision_history_limit = Some(-1),
                "spec.revisionHistoryLimit",
                "got -1",
            ),
            (
                |s| s.progress_deadline_seconds = Some(-10),
                "spec.progressDeadlineSeconds",
                "got -10",
            ),
            (
                |s| {
                    s.min_ready_seconds = Some(600);
                    s.progress_deadline_seconds = Some(600);
                },
                "spec.progressDeadlineSeconds",
                "must be greater than minReadySeconds (600 <= 600)",
            ),
            (
                |s| s.min_ready_seconds = Some(601),
                "spec.progressDeadlineSeconds",
                "must be greater than minReadySeconds (600 <= 601)",
            ),
        ];
        for (edit, field, message) in cases {
            let ro = RolloutBuilder::new("app:v1").spec(edit).build();
            let err = validate_spec(&ro.spec).unwrap_err();
            assert_eq!(err.field, field);
            assert!(err.message.contains(message), "{err}");
        }
        let fine = RolloutBuilder::new("app:v1")
            .spec(|s| {
                s.min_ready_seconds = Some(30);
                s.progress_deadline_seconds = Some(31);
                s.revision_history_limit = Some(0);
            })
            .build();
        assert_eq!(validate_spec(&fine.spec), Ok(()));
    }

    /// Upstream parity: a `maxUnavailable` percentage above 100 % is accepted (upstream's
    /// Rollout validation has no such rule, unlike a Deployment's), and means the whole
    /// Rollout; a string that is not a percentage is still refused naming the field.
    #[test]
    fn max_unavailable_above_100_percent_is_accepted_as_upstream_does() {
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        let with = |v: &str| {
            let ro = RolloutBuilder::new("app:v1")
                .canary(|c| c.max_unavailable = Some(IntOrString::String(v.into())))
                .build();
            validate_spec(&ro.spec)
        };
        assert_eq!(with("150%"), Ok(()));
        assert_eq!(with("100%"), Ok(()));
        assert_eq!(
            with("lots").unwrap_err().field,
            "spec.strategy.canary.maxUnavailable"
        );
    }

    /// Found by the bad-input catalogue: a template whose metric can never run (a condition
    /// that does not parse, an unknown provider, a bad interval or count) let the Rollout
    /// scale its canary and start a run that could only end in Error.
    #[test]
    fn a_template_metric_that_cannot_run_is_the_rollouts_invalid_spec() {
        use crate::rollout::testing::{analysis_step, observed, rs, with_templates};
        let cases: Vec<(serde_json::Value, &str)> = vec![
            (
                serde_json::json!({"successCondition": "result >= "}),
                "successCondition",
            ),
            (
                serde_json::json!({"provider": {"graphite": {"query": "x"}}}),
                "metrics[0]",
            ),
            (
                serde_json::json!({"interval": "every minute"}),
                "invalid interval",
            ),
            (
                serde_json::json!({"count": 5}),
                "interval must be specified when count > 1",
            ),
            (
                serde_json::json!({"count": -3, "interval": "10s"}),
                "count must be >= 0",
            ),
        ];
        for (patch, want) in cases {
            let ro = RolloutBuilder::new("app:v2")
                .steps(vec![analysis_step(&["t"])])
                .updating("app:v1", "app:v2", 0)
                .build();
            let mut obs = with_templates(observed(ro, vec![rs("app:v1", 10, 10, 1)]), &["t"]);
            let template = obs.analysis_templates.get_mut("t").unwrap();
            let metrics = template.spec.metrics.as_mut().unwrap();
            let mut metric = serde_json::to_value(&metrics[0]).unwrap();
            for (k, v) in patch.as_object().unwrap() {
                metric[k] = v.clone();
            }
            metrics[0] = serde_json::from_value(metric).unwrap();
            let err = validate(&obs).unwrap_err();
            assert_eq!(err.field, "spec.strategy.canary.steps[0].analysis", "{err}");
            assert!(err.message.contains(want), "{want}: {err}");
        }
    }

    #[test]
    fn the_unsupported_lists_name_real_fields() {
        for f in UNSUPPORTED_FEATURES.iter().chain(TRAFFIC_ROUTING_ONLY) {
            assert!(f.field.starts_with("spec."), "{}", f.field);
            assert!(
                !(f.present)(&RolloutSpec::default()),
                "{} on an empty spec",
                f.field
            );
        }
    }
}
