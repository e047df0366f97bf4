//! A run's metrics made ready to judge: arguments substituted, limits, intervals, conditions
//! and provider parsed, dryRun and measurementRetention rules applied. Anything malformed is
//! a [`SpecError`] that ends the run in Error before a measurement is taken.

use sluice_api::analysis::{AnalysisRun, AnalysisRunSpec, Metric};
use sluice_api::k8s::duration::parse_duration;

use super::SecretValues;
use crate::analysis::args::{ResolvedArgs, resolve_run_args, substitute};
use crate::analysis::evaluate::{MetricPolicy, validate_policy};
use crate::analysis::expr::Condition;
use crate::analysis::provider::MetricProvider;

/// One metric after argument substitution and validation.
pub(super) struct PreparedMetric {
    pub(super) name: String,
    pub(super) policy: MetricPolicy,
    pub(super) success: Option<Condition>,
    pub(super) failure: Option<Condition>,
    pub(super) provider: MetricProvider,
    pub(super) dry_run: bool,
    pub(super) retention: Option<i32>,
}

pub(super) struct Prepared {
    pub(super) metrics: Vec<PreparedMetric>,
    /// Kept to redact secret values from measurement messages.
    pub(super) args: ResolvedArgs,
}

/// A run-level error: the run ends in Error with this message.
pub(super) struct SpecError(pub(super) String);

fn invalid(message: String) -> SpecError {
    SpecError(format!("Analysis spec invalid: {message}"))
}

fn unresolved(message: impl std::fmt::Display) -> SpecError {
    SpecError(format!("Unable to resolve metric arguments: {message}"))
}

pub(super) fn prepare(run: &AnalysisRun, secrets: &SecretValues) -> Result<Prepared, SpecError> {
    let arg_specs = run.spec.args.as_deref().unwrap_or_default();
    let args = resolve_run_args(arg_specs, |name, key| {
        secrets
            .get(&(name.to_string(), key.to_string()))
            .cloned()
            .unwrap_or_else(|| Err(format!("secret '{name}' was not read")))
    })
    .map_err(unresolved)?;
    prepare_resolved(&run.spec, args)
}

/// Checks a run spec as [`prepare`] would, before any Secret is read: what a Rollout checks
/// of the runs it would create (an invalid one makes the Rollout InvalidSpec instead of
/// starting a run that can only end in Error). Arguments without a literal value (from a
/// Secret or the Rollout) get a placeholder; a missing one was refused earlier.
pub fn check_spec(spec: &AnalysisRunSpec) -> Result<(), String> {
    let mut args = ResolvedArgs::new();
    for arg in spec.args.iter().flatten() {
        args.insert_plain(
            arg.name.clone(),
            arg.value.clone().unwrap_or_else(|| "0".into()),
        );
    }
    prepare_resolved(spec, args).map(|_| ()).map_err(|e| e.0)
}

fn prepare_resolved(spec: &AnalysisRunSpec, args: ResolvedArgs) -> Result<Prepared, SpecError> {
    if spec.metrics.is_empty() {
        return Err(invalid("no metrics specified".to_string()));
    }
    let mut metrics: Vec<PreparedMetric> = Vec::with_capacity(spec.metrics.len());
    for (i, raw) in spec.metrics.iter().enumerate() {
        let metric = prepare_metric(i, raw, &args, &metrics)?;
        metrics.push(metric);
    }
    for (i, rule) in spec.dry_run.iter().flatten().enumerate() {
        for j in rule_matches("dryRun", i, &rule.metric_name, &metrics)? {
            metrics[j].dry_run = true;
        }
    }
    for (i, rule) in spec.measurement_retention.iter().flatten().enumerate() {
        for j in rule_matches("measurementRetention", i, &rule.metric_name, &metrics)? {
            metrics[j].retention = Some(rule.limit);
        }
    }
    Ok(Prepared { metrics, args })
}

/// `metrics[i]` with the run's arguments substituted, every field checked (its name against
/// the metrics `before` it first).
fn prepare_metric(
    i: usize,
    raw: &Metric,
    args: &ResolvedArgs,
    before: &[PreparedMetric],
) -> Result<PreparedMetric, SpecError> {
    let at = |m: String| invalid(format!("metrics[{i}] ({}): {m}", raw.name));
    let json = serde_json::to_value(raw).map_err(|e| at(e.to_string()))?;
    let substituted = substitute(&json, args).map_err(unresolved)?;
    let metric: Metric =
        serde_json::from_value(substituted.clone()).map_err(|e| at(e.to_string()))?;
    if before.iter().any(|m| m.name == metric.name) {
        return Err(invalid(format!(
            "metrics[{i}]: duplicate name '{}'",
            metric.name
        )));
    }
    let policy = policy(&metric).map_err(at)?;
    let parse = |kind: &str, text: &Option<String>| {
        non_empty(text)
            .map(|t| Condition::parse(t).map_err(|e| at(format!("{kind}: {e}"))))
            .transpose()
    };
    let success = parse("successCondition", &metric.success_condition)?;
    let failure = parse("failureCondition", &metric.failure_condition)?;
    let provider = MetricProvider::from_json(&metric.name, &substituted["provider"])
        .map_err(|e| invalid(format!("metrics[{i}]: {e}")))?;
    Ok(PreparedMetric {
        name: metric.name,
        policy,
        success,
        failure,
        provider,
        dry_run: false,
        retention: None,
    })
}

/// The metric's limits, count, interval and initial delay, validated together as upstream
/// does.
fn policy(metric: &Metric) -> Result<MetricPolicy, String> {
    let interval = non_empty(&metric.interval)
        .map(|s| parse_duration(s).map_err(|e| format!("invalid interval string: {e}")))
        .transpose()?;
    let initial_delay = non_empty(&metric.initial_delay)
        .map(|s| parse_duration(s).map_err(|e| format!("invalid startDelay string: {e}")))
        .transpose()?;
    let policy = MetricPolicy {
        failure_limit: metric.failure_limit().map_err(|e| e.to_string())?,
        inconclusive_limit: metric.inconclusive_limit().map_err(|e| e.to_string())?,
        consecutive_error_limit: metric
            .consecutive_error_limit()
            .map_err(|e| e.to_string())?,
        consecutive_success_limit: metric
            .consecutive_success_limit()
            .map_err(|e| e.to_string())?,
        effective_count: metric.count().map_err(|e| e.to_string())?,
        interval,
        initial_delay,
    };
    let raw_count = match &metric.count {
        Some(c) => {
            sluice_api::common::int_or_string_to_i32("count", c).map_err(|e| e.to_string())?
        }
        None => 0,
    };
    validate_policy(&policy, raw_count)?;
    Ok(policy)
}

/// The metrics a dryRun/measurementRetention rule names; a rule naming none is an error.
fn rule_matches(
    field: &str,
    i: usize,
    pattern: &str,
    metrics: &[PreparedMetric],
) -> Result<Vec<usize>, SpecError> {
    let matched = matching(pattern, metrics);
    if matched.is_empty() {
        return Err(invalid(format!(
            "{field}[{i}]: Rule didn't match any metric name(s)"
        )));
    }
    Ok(matched)
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// Indexes of the metrics whose name the rule's regular expression matches (unanchored, as
/// Go's `regexp.MatchString`).
fn matching(pattern: &str, metrics: &[PreparedMetric]) -> Vec<usize> {
    let Ok(re) = regex::Regex::new(pattern) else {
        return Vec::new();
    };
    metrics
        .iter()
        .enumerate()
        .filter(|(_, m)| re.is_match(&m.name))
        .map(|(i, _)| i)
        .collect()
}
