//! The Rollout side of analysis (COMPAT §5, §8): which templates an analysis uses, the
//! AnalysisRun a step or the background analysis creates (name, labels, spec), spec checks
//! that make a Rollout InvalidSpec, and which finished runs the history limits drop.
//!
//! The run itself is measured by the AnalysisRun controller; the planner only creates,
//! terminates and deletes runs and reads their phase.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::validate::InvalidSpec;
use crate::analysis::args::resolve_rollout_args;
use crate::analysis::template::new_run_spec;
use sluice_api::analysis::{AnalysisRun, AnalysisTemplateSpec};
use sluice_api::common::{
    AnalysisPhase, AnalysisRunArgument, AnalysisTemplateRef, CONTROLLER_INSTANCE_ID_LABEL,
    POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION,
};
use sluice_api::rollout::{Rollout, RolloutAnalysis, RolloutAnalysisRunStatus};

use super::observed::Observed;

/// Label telling what created an AnalysisRun (`Step`, `Background`, ...).
pub const ROLLOUT_TYPE_LABEL: &str = "rollout-type";
/// `rollout-type` of a run created by an `analysis` step.
pub const ROLLOUT_TYPE_STEP: &str = "Step";
/// `rollout-type` of the background run.
pub const ROLLOUT_TYPE_BACKGROUND: &str = "Background";
/// Label with the index of the step that created a run.
pub const STEP_INDEX_LABEL: &str = "step-index";

/// A template found for a reference: its spec, and whether it is cluster-scoped.
struct Found {
    name: String,
    cluster: bool,
    spec: AnalysisTemplateSpec,
}

/// Reads the templates `refs` name, and the templates they name in turn, from `observed`.
/// Returns them in upstream's order (namespaced ones first, then cluster ones, each once).
/// `field` is the JSON path of `refs`, used in the InvalidSpec of a missing template.
pub fn resolve_templates(
    observed: &Observed,
    refs: &[AnalysisTemplateRef],
    field: &str,
) -> Result<Vec<AnalysisTemplateSpec>, InvalidSpec> {
    let mut found = Vec::new();
    let mut visiting = BTreeSet::new();
    collect(observed, refs, field, &mut found, &mut visiting)?;
    let mut seen = BTreeSet::new();
    let (cluster, namespaced): (Vec<Found>, Vec<Found>) = found
        .into_iter()
        .filter(|f| seen.insert((f.cluster, f.name.clone())))
        .partition(|f| f.cluster);
    Ok(namespaced
        .into_iter()
        .chain(cluster)
        .map(|f| f.spec)
        .collect())
}

fn collect(
    observed: &Observed,
    refs: &[AnalysisTemplateRef],
    field: &str,
    found: &mut Vec<Found>,
    visiting: &mut BTreeSet<(bool, String)>,
) -> Result<(), InvalidSpec> {
    for (i, r) in refs.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let name = r.template_name.clone().unwrap_or_default();
        let cluster = r.is_cluster_scope();
        let spec: Option<AnalysisTemplateSpec> = if cluster {
            observed
                .cluster_analysis_templates
                .get(&name)
                .map(|t| t.spec.clone().into())
        } else {
            observed
                .analysis_templates
                .get(&name)
                .map(|t| t.spec.clone())
        };
        let kind = if cluster {
            "ClusterAnalysisTemplate"
        } else {
            "AnalysisTemplate"
        };
        let Some(spec) = spec else {
            return Err(InvalidSpec {
                field: at,
                message: format!("{kind} '{name}' not found"),
            });
        };
        // A template naming itself (directly or through others) would never finish
        // flattening; upstream recurses forever, Sluice reports it.
        if !visiting.insert((cluster, name.clone())) {
            return Err(InvalidSpec {
                field: at,
                message: format!("{kind} '{name}' references itself through spec.templates"),
            });
        }
        let nested = spec.templates.clone().unwrap_or_default();
        found.push(Found {
            name: name.clone(),
            cluster,
            spec,
        });
        if !nested.is_empty() {
            collect(
                observed,
                &nested,
                &format!("{at} ({kind} '{name}').spec.templates"),
                found,
                visiting,
            )?;
        }
        visiting.remove(&(cluster, name));
    }
    Ok(())
}

/// What differs between a step run, the background run and blue/green's promotion runs.
pub struct RunKind<'a> {
    /// `Step`, `Background`, `PrePromotion` or `PostPromotion`.
    pub rollout_type: &'static str,
    /// The step index for a step run (also the name suffix), `None` otherwise.
    pub step_index: Option<i32>,
    /// JSON path of the analysis in the Rollout, for error messages.
    pub field: &'a str,
}

pub use sluice_api::common::{ROLLOUT_TYPE_POST_PROMOTION, ROLLOUT_TYPE_PRE_PROMOTION};

impl RunKind<'_> {
    /// The last part of the run's name: the step index, `pre` or `post` (upstream's infixes),
    /// nothing for the background run.
    pub fn name_suffix(&self) -> Option<String> {
        match (self.step_index, self.rollout_type) {
            (Some(i), _) => Some(i.to_string()),
            (None, ROLLOUT_TYPE_PRE_PROMOTION) => Some("pre".to_string()),
            (None, ROLLOUT_TYPE_POST_PROMOTION) => Some("post".to_string()),
            _ => None,
        }
    }
}

/// Everything needed to build a run besides the analysis itself.
pub struct RunContext<'a> {
    pub observed: &'a Observed,
    /// Pod-template hash of the canary (`Latest`).
    pub latest_hash: &'a str,
    /// Pod-template hash of the stable ReplicaSet, if one exists (`Stable`).
    pub stable_hash: Option<&'a str>,
    /// The Rollout's revision (the canary ReplicaSet's).
    pub revision: i64,
}

/// Upstream's run name: `<rollout>-<hash>-<revision>[-<stepIndex>|-pre|-post]`.
pub fn base_run_name(rollout: &str, hash: &str, revision: i64, suffix: Option<&str>) -> String {
    match suffix {
        Some(s) => format!("{rollout}-{hash}-{revision}-{s}"),
        None => format!("{rollout}-{hash}-{revision}"),
    }
}

/// Builds the AnalysisRun (named `name`) for `analysis`: templates flattened, the Rollout's
/// arguments resolved (`podTemplateHashValue`, `fieldRef`), labels (type, step index, hash,
/// `analysisRunMetadata`, the Rollout's selector labels), the revision annotation plus
/// `analysisRunMetadata` annotations, and a controller reference to the Rollout.
pub fn build_run(
    ctx: &RunContext,
    analysis: &RolloutAnalysis,
    kind: &RunKind,
    name: String,
) -> Result<AnalysisRun, InvalidSpec> {
    let rollout = &ctx.observed.rollout;
    let spec = run_spec(ctx, analysis, kind.field)?;
    let mut labels = BTreeMap::from([
        (
            POD_TEMPLATE_HASH_LABEL.to_string(),
            ctx.latest_hash.to_string(),
        ),
        (
            ROLLOUT_TYPE_LABEL.to_string(),
            kind.rollout_type.to_string(),
        ),
    ]);
    if let Some(i) = kind.step_index {
        labels.insert(STEP_INDEX_LABEL.to_string(), i.to_string());
    }
    // A Rollout of a `--instance-id` controller hands its runs to the same instance.
    if let Some(id) = rollout
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(CONTROLLER_INSTANCE_ID_LABEL))
    {
        labels.insert(CONTROLLER_INSTANCE_ID_LABEL.to_string(), id.clone());
    }
    let metadata = analysis.analysis_run_metadata.as_ref();
    labels.extend(metadata.and_then(|m| m.labels.clone()).unwrap_or_default());
    if let Some(selector) = rollout
        .spec
        .selector
        .as_ref()
        .and_then(|s| s.match_labels.as_ref())
    {
        labels.extend(selector.clone());
    }
    let mut annotations =
        BTreeMap::from([(REVISION_ANNOTATION.to_string(), ctx.revision.to_string())]);
    annotations.extend(
        metadata
            .and_then(|m| m.annotations.clone())
            .unwrap_or_default(),
    );
    Ok(AnalysisRun {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: rollout.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![owner_reference(rollout)]),
            ..Default::default()
        },
        spec,
        status: None,
    })
}

/// The controller reference every object a Rollout creates carries.
pub fn owner_reference(rollout: &Rollout) -> OwnerReference {
    OwnerReference {
        api_version: "argoproj.io/v1alpha1".to_string(),
        kind: "Rollout".to_string(),
        name: rollout.metadata.name.clone().unwrap_or_default(),
        uid: rollout.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn run_spec(
    ctx: &RunContext,
    analysis: &RolloutAnalysis,
    field: &str,
) -> Result<sluice_api::analysis::AnalysisRunSpec, InvalidSpec> {
    let templates = resolve_templates(
        ctx.observed,
        analysis.templates.as_deref().unwrap_or_default(),
        &format!("{field}.templates"),
    )?;
    let args = rollout_args(ctx, analysis.args.as_deref().unwrap_or_default(), field)?;
    new_run_spec(
        &templates,
        &args,
        analysis.dry_run.as_deref().unwrap_or_default(),
        analysis
            .measurement_retention
            .as_deref()
            .unwrap_or_default(),
    )
    .map_err(|e| InvalidSpec {
        field: field.to_string(),
        message: e.to_string(),
    })
    .and_then(|spec| {
        // The metrics as the run would judge them: a bad condition, provider, interval or
        // count is the Rollout's InvalidSpec, not a run that can only end in Error.
        crate::analysis::run::check_spec(&spec).map_err(|message| InvalidSpec {
            field: field.to_string(),
            message,
        })?;
        Ok(spec)
    })
}

/// The Rollout's arguments with `valueFrom` resolved against the Rollout and its hashes.
pub fn rollout_args(
    ctx: &RunContext,
    args: &[AnalysisRunArgument],
    field: &str,
) -> Result<Vec<sluice_api::common::Argument>, InvalidSpec> {
    let json = serde_json::to_value(&ctx.observed.rollout).unwrap_or_default();
    resolve_rollout_args(args, &json, ctx.latest_hash, ctx.stable_hash).map_err(|e| InvalidSpec {
        field: format!("{field}.args"),
        message: e.to_string(),
    })
}

/// Checks every analysis the Rollout runs: the templates exist (nested ones too), and a run
/// can be built from them with the Rollout's arguments (no duplicate metric, every template
/// argument supplied, `fieldRef` paths that exist). Experiment-step analyses are checked for
/// their templates; the Experiment resolves their arguments itself.
pub fn validate_analyses(observed: &Observed) -> Result<(), InvalidSpec> {
    let spec = &observed.rollout.spec;
    // Placeholders: the real hashes are only known when the run is created; any value lets
    // the templates and arguments be checked.
    let ctx = RunContext {
        observed,
        latest_hash: "latest",
        stable_hash: Some("stable"),
        revision: 0,
    };
    if let Some(bg) = spec.blue_green() {
        let analyses = [
            (
                "spec.strategy.blueGreen.prePromotionAnalysis",
                &bg.pre_promotion_analysis,
            ),
            (
                "spec.strategy.blueGreen.postPromotionAnalysis",
                &bg.post_promotion_analysis,
            ),
        ];
        for (field, analysis) in analyses {
            if let Some(a) = analysis {
                run_spec(&ctx, a, field)?;
            }
        }
        return Ok(());
    }
    let Some(canary) = spec.canary() else {
        return Ok(());
    };
    for (i, step) in spec.steps().iter().enumerate() {
        let field = format!("spec.strategy.canary.steps[{i}]");
        if let Some(a) = &step.analysis {
            if a.templates.as_ref().is_none_or(Vec::is_empty) {
                return Err(InvalidSpec {
                    field: format!("{field}.analysis.templates"),
                    message: "an analysis step needs at least one template".to_string(),
                });
            }
            run_spec(&ctx, a, &format!("{field}.analysis"))?;
        }
        if let Some(e) = &step.experiment {
            let field = format!("{field}.experiment");
            super::experiment_step::validate_step(observed, e, &field)?;
            for (k, a) in e.analyses.iter().flatten().enumerate() {
                let args = a.args.as_deref().unwrap_or_default();
                rollout_args(&ctx, args, &format!("{field}.analyses[{k}]"))?;
            }
        }
    }
    if let Some(bg) = &canary.analysis {
        run_spec(&ctx, &bg.analysis(), "spec.strategy.canary.analysis")?;
    }
    Ok(())
}

/// The `{name, status, message}` the Rollout shows for a run.
pub fn run_status(run: &AnalysisRun) -> RolloutAnalysisRunStatus {
    RolloutAnalysisRunStatus {
        name: run.metadata.name.clone().unwrap_or_default(),
        status: phase_of(run),
        message: run
            .status
            .as_ref()
            .and_then(|s| s.message.clone())
            .filter(|m| !m.is_empty()),
    }
}

/// A run's phase; a run nobody has reconciled yet is Pending.
pub fn phase_of(run: &AnalysisRun) -> AnalysisPhase {
    run.status
        .as_ref()
        .map(|s| s.phase.clone())
        .unwrap_or_default()
}

/// A run still measuring (not finished, not asked to stop).
pub fn is_running(run: &AnalysisRun) -> bool {
    !phase_of(run).is_completed() && !run.spec.is_terminated()
}

/// Which of `others` (runs that are neither the current step nor background run) to delete:
/// runs of ReplicaSets that are gone or being deleted (or without a hash label), and finished
/// runs beyond the newest `successful` Successful and `unsuccessful` Failed/Error/Inconclusive
/// ones. Running runs are kept. Upstream's `FilterAnalysisRunsToDelete`; also used for
/// Experiments with the same limits.
pub fn beyond_history<'a>(
    others: Vec<HistoryItem<'a>>,
    replica_set_hashes: &BTreeMap<String, bool>,
    successful: i32,
    unsuccessful: i32,
) -> Vec<&'a str> {
    let mut others = others;
    // Newest first; the name breaks ties so the order is stable.
    others.sort_by(|a, b| (b.created, b.name).cmp(&(a.created, a.name)));
    let (mut kept_ok, mut kept_bad) = (0, 0);
    let mut delete = Vec::new();
    for item in others {
        if item.deleting {
            continue;
        }
        let rs_gone = item
            .hash
            .is_none_or(|h| replica_set_hashes.get(h).is_none_or(|deleting| *deleting));
        if rs_gone {
            delete.push(item.name);
            continue;
        }
        match item.phase {
            AnalysisPhase::Successful => {
                if kept_ok < successful {
                    kept_ok += 1;
                } else {
                    delete.push(item.name);
                }
            }
            AnalysisPhase::Failed | AnalysisPhase::Error | AnalysisPhase::Inconclusive => {
                if kept_bad < unsuccessful {
                    kept_bad += 1;
                } else {
                    delete.push(item.name);
                }
            }
            _ => {}
        }
    }
    delete
}

/// What the history limits look at in a run or an Experiment.
pub struct HistoryItem<'a> {
    pub name: &'a str,
    pub hash: Option<&'a str>,
    pub created: Option<i64>,
    pub phase: AnalysisPhase,
    pub deleting: bool,
}

impl<'a> HistoryItem<'a> {
    pub fn of_meta(meta: &'a ObjectMeta, phase: AnalysisPhase) -> Self {
        Self {
            name: meta.name.as_deref().unwrap_or_default(),
            hash: meta
                .labels
                .as_ref()
                .and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL))
                .map(String::as_str),
            created: meta.creation_timestamp.as_ref().map(|t| t.0.as_second()),
            phase,
            deleting: meta.deletion_timestamp.is_some(),
        }
    }
}

/// The first of `base`, `base<sep>1`, `base<sep>2`, ... that `taken` does not hold (upstream
/// retries a create with a collision counter when the name exists).
pub fn free_name(base: &str, sep: char, taken: impl Fn(&str) -> bool) -> String {
    if !taken(base) {
        return base.to_string();
    }
    (1..)
        .map(|n| format!("{base}{sep}{n}"))
        .find(|n| !taken(n))
        .unwrap_or_default()
}

/// The last of `base`, `base<sep>1`, `base<sep>2`, ... in the unbroken run of names `exists`
/// holds — the newest object created under these names — or `None` when `base` is free.
pub fn newest_name(base: &str, sep: char, exists: impl Fn(&str) -> bool) -> Option<String> {
    if !exists(base) {
        return None;
    }
    let mut newest = base.to_string();
    for n in 1.. {
        let next = format!("{base}{sep}{n}");
        if !exists(&next) {
            break;
        }
        newest = next;
    }
    Some(newest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sluice_api::analysis::AnalysisTemplate;

    fn template(name: &str, spec: serde_json::Value) -> AnalysisTemplate {
        AnalysisTemplate::new(name, serde_json::from_value(spec).unwrap())
    }

    fn refs(v: serde_json::Value) -> Vec<AnalysisTemplateRef> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn nested_templates_are_resolved_namespaced_first_each_once() {
        let mut obs = Observed::default();
        obs.analysis_templates.insert(
            "outer".into(),
            template(
                "outer",
                json!({"metrics": [{"name": "a", "provider": {"web": {"url": "u"}}}],
                       "templates": [{"templateName": "inner"}, {"templateName": "shared", "clusterScope": true}]}),
            ),
        );
        obs.analysis_templates.insert(
            "inner".into(),
            template(
                "inner",
                json!({"metrics": [{"name": "b", "provider": {"web": {"url": "u"}}}]}),
            ),
        );
        obs.cluster_analysis_templates.insert(
            "shared".into(),
            sluice_api::analysis::ClusterAnalysisTemplate::new(
                "shared",
                serde_json::from_value(
                    json!({"metrics": [{"name": "c", "provider": {"web": {"url": "u"}}}]}),
                )
                .unwrap(),
            ),
        );
        let got = resolve_templates(
            &obs,
            &refs(
                json!([{"templateName": "shared", "clusterScope": true}, {"templateName": "outer"}]),
            ),
            "f",
        )
        .unwrap();
        let metrics: Vec<String> = got
            .iter()
            .map(|t| t.metrics.as_ref().unwrap()[0].name.clone())
            .collect();
        assert_eq!(metrics, vec!["a", "b", "c"]);
    }

    #[test]
    fn a_missing_template_is_named_with_its_field() {
        let mut obs = Observed::default();
        obs.analysis_templates.insert(
            "outer".into(),
            template("outer", json!({"templates": [{"templateName": "gone"}]})),
        );
        let err = resolve_templates(
            &obs,
            &refs(json!([{"templateName": "x", "clusterScope": true}])),
            "spec.a.templates",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.a.templates[0]: ClusterAnalysisTemplate 'x' not found"
        );
        let err =
            resolve_templates(&obs, &refs(json!([{"templateName": "outer"}])), "t").unwrap_err();
        assert_eq!(
            err.to_string(),
            "t[0] (AnalysisTemplate 'outer').spec.templates[0]: AnalysisTemplate 'gone' not found"
        );
    }

    #[test]
    fn a_template_cycle_is_reported_instead_of_recursing() {
        let mut obs = Observed::default();
        obs.analysis_templates.insert(
            "a".into(),
            template("a", json!({"templates": [{"templateName": "b"}]})),
        );
        obs.analysis_templates.insert(
            "b".into(),
            template("b", json!({"templates": [{"templateName": "a"}]})),
        );
        let err = resolve_templates(&obs, &refs(json!([{"templateName": "a"}])), "t").unwrap_err();
        assert!(err.message.contains("references itself"), "{err}");
    }

    #[test]
    fn the_newest_name_is_the_end_of_the_unbroken_sequence() {
        let taken = ["r", "r.1", "r.2", "r.4"];
        assert_eq!(
            newest_name("r", '.', |n| taken.contains(&n)).as_deref(),
            Some("r.2")
        );
        assert_eq!(newest_name("s", '.', |n| taken.contains(&n)), None);
    }

    #[test]
    fn free_names_count_up_from_the_base() {
        let taken = ["r", "r.1"];
        assert_eq!(free_name("r", '.', |n| taken.contains(&n)), "r.2");
        assert_eq!(free_name("s", '.', |n| taken.contains(&n)), "s");
        assert_eq!(free_name("r", '-', |n| taken.contains(&n)), "r-1");
    }

    #[test]
    fn history_keeps_the_newest_finished_runs_and_drops_runs_of_gone_replica_sets() {
        let hashes = BTreeMap::from([("h1".to_string(), false), ("h2".to_string(), true)]);
        let item = |name: &'static str, hash: Option<&'static str>, created, phase| HistoryItem {
            name,
            hash,
            created: Some(created),
            phase,
            deleting: false,
        };
        let items = vec![
            item("ok-old", Some("h1"), 1, AnalysisPhase::Successful),
            item("ok-new", Some("h1"), 3, AnalysisPhase::Successful),
            item("bad-old", Some("h1"), 2, AnalysisPhase::Failed),
            item("bad-new", Some("h1"), 4, AnalysisPhase::Inconclusive),
            item("running", Some("h1"), 0, AnalysisPhase::Running),
            item("rs-deleting", Some("h2"), 9, AnalysisPhase::Successful),
            item("rs-gone", Some("h3"), 9, AnalysisPhase::Running),
            item("no-hash", None, 9, AnalysisPhase::Successful),
        ];
        let mut got = beyond_history(items, &hashes, 1, 1);
        got.sort();
        assert_eq!(
            got,
            vec!["bad-old", "no-hash", "ok-old", "rs-deleting", "rs-gone"]
        );
    }
}
