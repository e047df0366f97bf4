//! What makes an Experiment unrunnable. Upstream records most of these as an `InvalidSpec`
//! condition and leaves the phase empty, and reports a missing analysis template only once
//! the templates are up; Sluice checks everything before creating anything and ends the
//! Experiment `Error` with a message naming the field, so a bad manifest never starts pods.

use std::collections::{BTreeMap, BTreeSet};

use thiserror::Error;

use super::plan::{ObservedExperiment, TemplateKey};
use crate::analysis::template::flatten_templates;
use sluice_api::analysis::AnalysisTemplateSpec;
use sluice_api::experiment::{ExperimentAnalysisTemplateRef, ExperimentSpec};
use sluice_api::k8s::duration::parse_duration;
use sluice_api::k8s::selector;

/// Bound on nested `templates` references, so a reference cycle cannot loop.
const MAX_TEMPLATE_DEPTH: usize = 10;

/// Why an Experiment cannot run: the field (`spec.templates[1].selector`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    pub field: String,
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError {
        field: field.into(),
        message: message.into(),
    }
}

/// Checks the spec and that every analysis template it names (directly or nested) exists.
pub fn validate(obs: &ObservedExperiment) -> Result<(), SpecError> {
    let spec = &obs.experiment.spec;
    validate_spec(spec)?;
    let mut names = BTreeSet::new();
    for (i, a) in spec.analyses.iter().flatten().enumerate() {
        let field = format!("spec.analyses[{i}]");
        if a.name.is_empty() {
            return Err(err(format!("{field}.name"), "must not be empty"));
        }
        if !names.insert(a.name.as_str()) {
            return Err(err(
                format!("{field}.name"),
                format!("duplicate analysis name {:?}", a.name),
            ));
        }
        if a.template_name.is_empty() {
            return Err(err(format!("{field}.templateName"), "must not be empty"));
        }
        let templates =
            resolve_templates(obs, a).map_err(|m| err(format!("{field}.templateName"), m))?;
        flatten_templates(&templates).map_err(|e| err(field.clone(), e.to_string()))?;
    }
    Ok(())
}

/// An Experiment's `duration` (also a Rollout experiment step's): upstream's
/// `DurationString`, Go's syntax, so `"30"` without a unit is an error; negative durations
/// are refused as well.
pub fn duration_of(d: &str) -> Result<std::time::Duration, String> {
    let parsed = parse_duration(d).map_err(|e| e.to_string())?;
    parsed
        .to_std()
        .map_err(|_| format!("invalid duration {d:?}: a duration cannot be negative"))
}

/// The checks that need nothing but the spec.
pub fn validate_spec(spec: &ExperimentSpec) -> Result<(), SpecError> {
    if spec.templates.is_empty() {
        return Err(err("spec.templates", "at least one template is required"));
    }
    if let Some(d) = &spec.duration {
        duration_of(d).map_err(|e| err("spec.duration", e))?;
    }
    let deadline = spec.progress_deadline_seconds();
    if deadline <= 0 {
        return Err(err("spec.progressDeadlineSeconds", "must be positive"));
    }
    if spec.scale_down_delay_seconds() < 0 {
        return Err(err("spec.scaleDownDelaySeconds", "must not be negative"));
    }
    for i in 0..spec.templates.len() {
        validate_template(spec, i)?;
    }
    Ok(())
}

/// `spec.templates[i]`: a unique name, sane counts, a selector that selects its own pods and
/// no other template's, and a pod template the API server accepts in a ReplicaSet.
fn validate_template(spec: &ExperimentSpec, i: usize) -> Result<(), SpecError> {
    let t = &spec.templates[i];
    let deadline = spec.progress_deadline_seconds();
    let field = format!("spec.templates[{i}]");
    if t.name.is_empty() {
        return Err(err(format!("{field}.name"), "must not be empty"));
    }
    if let Some(j) = spec.templates[..i].iter().position(|o| o.name == t.name) {
        return Err(err(
            format!("{field}.name"),
            format!(
                "duplicate template name {:?} (also spec.templates[{j}])",
                t.name
            ),
        ));
    }
    if t.replicas() < 0 {
        return Err(err(format!("{field}.replicas"), "must not be negative"));
    }
    if t.min_ready_seconds.unwrap_or(0) > deadline {
        return Err(err(
            format!("{field}.minReadySeconds"),
            format!("must not be longer than progressDeadlineSeconds ({deadline})"),
        ));
    }
    let sel = &t.selector;
    if selector::is_empty(sel) {
        return Err(err(
            format!("{field}.selector"),
            "must not be empty: an empty selector selects every pod in the namespace",
        ));
    }
    let labels = template_labels(spec, i);
    match selector::matches(Some(sel), &labels) {
        Ok(true) => {}
        Ok(false) => {
            return Err(err(
                format!("{field}.selector"),
                format!("does not match the labels of {field}.template.metadata.labels"),
            ));
        }
        Err(e) => return Err(err(format!("{field}.selector"), e.to_string())),
    }
    // The template becomes a ReplicaSet's: the API server must accept it there.
    let at = sluice_api::k8s::field::Path::new(format!("{field}.template"));
    if let Err(e) = crate::rollout::template::check(&t.template, &at) {
        return Err(err(e.field.json_path(), e.body()));
    }
    for (j, other) in spec.templates[..i].iter().enumerate() {
        let mine_selects_theirs =
            selector::matches(Some(sel), &template_labels(spec, j)).unwrap_or(false);
        let theirs_selects_mine =
            selector::matches(Some(&other.selector), &labels).unwrap_or(false);
        if mine_selects_theirs || theirs_selects_mine {
            return Err(err(
                format!("{field}.selector"),
                format!(
                    "overlaps with the selector of template {:?} (spec.templates[{j}]); each template's selector must select only its own pods",
                    other.name
                ),
            ));
        }
    }
    Ok(())
}

fn template_labels(spec: &ExperimentSpec, i: usize) -> BTreeMap<String, String> {
    spec.templates[i]
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default()
}

fn kind(key: &TemplateKey) -> &'static str {
    if key.cluster {
        "ClusterAnalysisTemplate"
    } else {
        "AnalysisTemplate"
    }
}

/// The templates an analysis runs: the one it names, then those nested in `templates`
/// (depth first, each once). Errors name the missing template.
pub fn resolve_templates(
    obs: &ObservedExperiment,
    analysis: &ExperimentAnalysisTemplateRef,
) -> Result<Vec<AnalysisTemplateSpec>, String> {
    let root = TemplateKey {
        cluster: analysis.is_cluster_scope(),
        name: analysis.template_name.clone(),
    };
    let mut out = Vec::new();
    let mut visited = BTreeSet::new();
    visit(obs, &root, None, 0, &mut visited, &mut out)?;
    Ok(out)
}

fn visit(
    obs: &ObservedExperiment,
    key: &TemplateKey,
    parent: Option<&TemplateKey>,
    depth: usize,
    visited: &mut BTreeSet<TemplateKey>,
    out: &mut Vec<AnalysisTemplateSpec>,
) -> Result<(), String> {
    if !visited.insert(key.clone()) {
        return Ok(());
    }
    if depth > MAX_TEMPLATE_DEPTH {
        return Err(format!(
            "{} {:?} nests templates more than {MAX_TEMPLATE_DEPTH} levels deep",
            kind(key),
            key.name
        ));
    }
    let Some(t) = obs.template(key) else {
        return Err(match parent {
            None => format!("{} {:?} not found", kind(key), key.name),
            Some(p) => format!(
                "{} {:?} (referenced by {} {:?}) not found",
                kind(key),
                key.name,
                kind(p),
                p.name
            ),
        });
    };
    out.push(t.clone());
    for r in t.templates.iter().flatten() {
        let child = TemplateKey {
            cluster: r.is_cluster_scope(),
            name: r.template_name.clone().unwrap_or_default(),
        };
        visit(obs, &child, Some(key), depth + 1, visited, out)?;
    }
    Ok(())
}

/// Every template reachable from the analyses that `obs` does not hold, for the wiring
/// to read (it calls this again after each round of reads; a template it could not find
/// stays missing and [`validate`] reports it).
pub fn missing_templates(obs: &ObservedExperiment) -> BTreeSet<TemplateKey> {
    let mut missing = BTreeSet::new();
    let mut stack: Vec<TemplateKey> = obs
        .experiment
        .spec
        .analyses
        .iter()
        .flatten()
        .map(|a| TemplateKey {
            cluster: a.is_cluster_scope(),
            name: a.template_name.clone(),
        })
        .collect();
    let mut seen = BTreeSet::new();
    while let Some(key) = stack.pop() {
        if key.name.is_empty() || !seen.insert(key.clone()) {
            continue;
        }
        match obs.template(&key) {
            None => {
                missing.insert(key);
            }
            Some(t) => stack.extend(t.templates.iter().flatten().map(|r| TemplateKey {
                cluster: r.is_cluster_scope(),
                name: r.template_name.clone().unwrap_or_default(),
            })),
        }
    }
    missing
}
