//! Building an AnalysisRun's spec from AnalysisTemplates/ClusterAnalysisTemplates and the
//! arguments a Rollout (or Experiment) passes (upstream `NewAnalysisRunFromTemplates`,
//! `FlattenTemplates`, `MergeArgs`).
//!
//! The caller reads the templates, including those named in a template's own `templates`
//! list (cluster ones converted with `From<ClusterAnalysisTemplateSpec>`), namespaced templates
//! first, and resolves Rollout arguments with [`super::args::resolve_rollout_args`].

use thiserror::Error;

use sluice_api::analysis::{AnalysisRunSpec, AnalysisTemplateSpec, Metric};
use sluice_api::common::{Argument, DryRun, MeasurementRetention};

/// Why the templates cannot be combined into a run (upstream wording).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TemplateError {
    #[error("two metrics have the same name '{0}'")]
    DuplicateMetric(String),
    #[error(
        "Argument `{name}` specified multiple times with different values: '{first}', '{second}'"
    )]
    ConflictingArgument {
        name: String,
        first: String,
        second: String,
    },
    #[error("args.{0} was not resolved")]
    Unresolved(String),
    #[error("two Dry-Run metric rules have the same name '{0}'")]
    DuplicateDryRun(String),
    #[error("two Measurement Retention metric rules have the same name '{0}'")]
    DuplicateRetention(String),
}

/// Combines several templates: metrics concatenated (names must be unique), arguments merged
/// by name (two different values for one name is an error; a value wins over none), dry-run
/// and retention rules concatenated (rule names must be unique).
pub fn flatten_templates(
    templates: &[AnalysisTemplateSpec],
) -> Result<AnalysisTemplateSpec, TemplateError> {
    let mut metrics: Vec<Metric> = Vec::new();
    let mut args: Vec<Argument> = Vec::new();
    let mut dry_run: Vec<DryRun> = Vec::new();
    let mut retention: Vec<MeasurementRetention> = Vec::new();
    for t in templates {
        for m in t.metrics.iter().flatten() {
            if metrics.iter().any(|x| x.name == m.name) {
                return Err(TemplateError::DuplicateMetric(m.name.clone()));
            }
            metrics.push(m.clone());
        }
        for a in t.args.iter().flatten() {
            match args.iter_mut().find(|x| x.name == a.name) {
                Some(prev) => {
                    if let (Some(p), Some(n)) = (&prev.value, &a.value)
                        && p != n
                    {
                        return Err(TemplateError::ConflictingArgument {
                            name: a.name.clone(),
                            first: p.clone(),
                            second: n.clone(),
                        });
                    }
                    if prev.value.is_none() {
                        *prev = a.clone();
                    }
                }
                None => args.push(a.clone()),
            }
        }
        dry_run.extend(t.dry_run.iter().flatten().cloned());
        retention.extend(t.measurement_retention.iter().flatten().cloned());
    }
    check_unique_dry_run(&dry_run)?;
    check_unique_retention(&retention)?;
    Ok(AnalysisTemplateSpec {
        metrics: Some(metrics),
        args: (!args.is_empty()).then_some(args),
        dry_run: (!dry_run.is_empty()).then_some(dry_run),
        measurement_retention: (!retention.is_empty()).then_some(retention),
        templates: None,
    })
}

fn check_unique_dry_run(rules: &[DryRun]) -> Result<(), TemplateError> {
    for (i, r) in rules.iter().enumerate() {
        if rules[..i].iter().any(|p| p.metric_name == r.metric_name) {
            return Err(TemplateError::DuplicateDryRun(r.metric_name.clone()));
        }
    }
    Ok(())
}

fn check_unique_retention(rules: &[MeasurementRetention]) -> Result<(), TemplateError> {
    for (i, r) in rules.iter().enumerate() {
        if rules[..i].iter().any(|p| p.metric_name == r.metric_name) {
            return Err(TemplateError::DuplicateRetention(r.metric_name.clone()));
        }
    }
    Ok(())
}

/// Overrides template arguments with the incoming ones of the same name (a value, else a
/// `valueFrom`); incoming arguments the templates do not declare are ignored. Every argument
/// must end with a value or a `valueFrom`.
pub fn merge_args(
    incoming: &[Argument],
    template_args: &[Argument],
) -> Result<Vec<Argument>, TemplateError> {
    let mut merged = template_args.to_vec();
    for arg in incoming {
        if let Some(t) = merged.iter_mut().find(|t| t.name == arg.name) {
            if arg.value.is_some() {
                t.value = arg.value.clone();
            } else if arg.value_from.is_some() {
                t.value_from = arg.value_from.clone();
            }
        }
    }
    if let Some(missing) = merged
        .iter()
        .find(|a| a.value.is_none() && a.value_from.is_none())
    {
        return Err(TemplateError::Unresolved(missing.name.clone()));
    }
    Ok(merged)
}

/// The spec of a new AnalysisRun: the templates flattened, arguments merged, and the caller's
/// dry-run and retention rules put before the templates' own.
pub fn new_run_spec(
    templates: &[AnalysisTemplateSpec],
    args: &[Argument],
    dry_run: &[DryRun],
    measurement_retention: &[MeasurementRetention],
) -> Result<AnalysisRunSpec, TemplateError> {
    let flat = flatten_templates(templates)?;
    let args = merge_args(args, flat.args.as_deref().unwrap_or_default())?;
    let mut dry: Vec<DryRun> = dry_run.to_vec();
    dry.extend(flat.dry_run.unwrap_or_default());
    check_unique_dry_run(&dry)?;
    let mut keep: Vec<MeasurementRetention> = measurement_retention.to_vec();
    keep.extend(flat.measurement_retention.unwrap_or_default());
    check_unique_retention(&keep)?;
    Ok(AnalysisRunSpec {
        metrics: flat.metrics.unwrap_or_default(),
        args: (!args.is_empty()).then_some(args),
        terminate: None,
        dry_run: (!dry.is_empty()).then_some(dry),
        measurement_retention: (!keep.is_empty()).then_some(keep),
        ttl_strategy: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(v: serde_json::Value) -> AnalysisTemplateSpec {
        serde_json::from_value(v).unwrap()
    }

    fn metric(name: &str) -> serde_json::Value {
        json!({"name": name, "provider": {"web": {"url": "http://x/{{args.svc}}"}}})
    }

    #[test]
    fn templates_flatten_and_rollout_args_fill_template_args() {
        let a = template(json!({
            "metrics": [metric("a")],
            "args": [{"name": "svc"}, {"name": "ns", "value": "default"}],
            "dryRun": [{"metricName": "a"}]
        }));
        let b = template(json!({"metrics": [metric("b")], "args": [{"name": "svc"}]}));
        let incoming: Vec<Argument> = serde_json::from_value(json!([
            {"name": "svc", "value": "checkout"},
            {"name": "unused", "value": "x"}
        ]))
        .unwrap();
        let spec = new_run_spec(
            &[a, b],
            &incoming,
            &[DryRun {
                metric_name: "b".into(),
            }],
            &[],
        )
        .unwrap();
        let names: Vec<_> = spec.metrics.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, vec!["a", "b"]);
        assert_eq!(
            serde_json::to_value(&spec.args).unwrap(),
            json!([{"name": "svc", "value": "checkout"}, {"name": "ns", "value": "default"}])
        );
        let dry: Vec<_> = spec
            .dry_run
            .unwrap()
            .into_iter()
            .map(|d| d.metric_name)
            .collect();
        assert_eq!(dry, vec!["b", "a"]);
    }

    #[test]
    fn conflicts_and_missing_values_are_reported_like_upstream() {
        let a =
            template(json!({"metrics": [metric("a")], "args": [{"name": "svc", "value": "x"}]}));
        let b = template(json!({"metrics": [metric("a")]}));
        assert_eq!(
            flatten_templates(&[a.clone(), b]).unwrap_err().to_string(),
            "two metrics have the same name 'a'"
        );
        let c =
            template(json!({"metrics": [metric("c")], "args": [{"name": "svc", "value": "y"}]}));
        assert_eq!(
            flatten_templates(&[a, c]).unwrap_err().to_string(),
            "Argument `svc` specified multiple times with different values: 'x', 'y'"
        );
        let needs = template(json!({"metrics": [metric("a")], "args": [{"name": "svc"}]}));
        assert_eq!(
            new_run_spec(&[needs], &[], &[], &[])
                .unwrap_err()
                .to_string(),
            "args.svc was not resolved"
        );
        let dup = template(json!({"metrics": [metric("a")], "dryRun": [{"metricName": "a"}]}));
        assert_eq!(
            new_run_spec(
                &[dup],
                &[],
                &[DryRun {
                    metric_name: "a".into()
                }],
                &[]
            )
            .unwrap_err()
            .to_string(),
            "two Dry-Run metric rules have the same name 'a'"
        );
    }

    #[test]
    fn secret_args_stay_value_from_for_the_run_to_resolve() {
        let t = template(json!({
            "metrics": [metric("a")],
            "args": [{"name": "svc", "value": "s"}, {"name": "token", "valueFrom": {"secretKeyRef": {"name": "c", "key": "k"}}}]
        }));
        let spec = new_run_spec(&[t], &[], &[], &[]).unwrap();
        assert_eq!(
            serde_json::to_value(&spec.args).unwrap()[1],
            json!({"name": "token", "valueFrom": {"secretKeyRef": {"name": "c", "key": "k"}}})
        );
    }
}
