//! What the planner sees: one Rollout and the objects it owns or references, read from the
//! controller's caches. Building it is the only I/O; everything after is pure.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use sluice_api::analysis::{
    AnalysisRun, AnalysisTemplate, AnalysisTemplateSpec, ClusterAnalysisTemplate,
};
use sluice_api::common::AnalysisTemplateRef;
use sluice_api::experiment::Experiment;
use sluice_api::rollout::Rollout;

/// A consistent snapshot of one Rollout's world.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub rollout: Rollout,
    /// Only the ReplicaSets controlled by this Rollout (ownerReference controller = it).
    pub replica_sets: Vec<ReplicaSet>,
    /// The Services the Rollout names ([`Observed::referenced_services`]: `canaryService` /
    /// `stableService`, or `activeService` / `previewService`), and those whose
    /// `managed-by-rollouts` annotation names this Rollout, keyed by name; `None` means the
    /// Service does not exist.
    pub services: BTreeMap<String, Option<Service>>,
    /// Pods controlled by this Rollout's ReplicaSets. Only read while a restart is due
    /// (see [`Observed::needs_pods`]); may be left empty otherwise to spare a pod listing.
    pub pods: Vec<Pod>,
    /// AnalysisRuns controlled by this Rollout (ownerReference controller = it), of every
    /// revision: the planner terminates stale ones and applies the run history limits.
    pub analysis_runs: Vec<AnalysisRun>,
    /// Experiments controlled by this Rollout (ownerReference controller = it).
    pub experiments: Vec<Experiment>,
    /// AnalysisTemplates in the Rollout's namespace named by [`Observed::referenced_templates`]
    /// (and, transitively, by those templates' own `templates`), keyed by name. A name that is
    /// absent was not found: the Rollout becomes InvalidSpec naming the reference.
    pub analysis_templates: BTreeMap<String, AnalysisTemplate>,
    /// ClusterAnalysisTemplates named by `clusterScope: true` references, keyed by name; absent
    /// means not found, as for `analysis_templates`.
    pub cluster_analysis_templates: BTreeMap<String, ClusterAnalysisTemplate>,
    /// The object `spec.workloadRef` names, read when the reference has a supported kind;
    /// `None` means it does not exist (the Rollout becomes InvalidSpec naming it).
    pub workload: Option<super::workload::Workload>,
    /// Pods outside the Rollout that count against its `maxSurge`: those of a Deployment
    /// being scaled down `progressively`. Set by [`super::workload::resolve`], never by the
    /// observer.
    pub outside_pods: i32,
    /// The route objects the traffic routing names ([`super::traffic::route_refs`]), as
    /// JSON; `None` means the object does not exist.
    pub routes: super::traffic::ObservedRoutes,
    /// The write the API server refused the last time the controller tried it (a 4xx other
    /// than a conflict), if it has not been tried again since: the plan reports it on the
    /// Rollout instead of repeating it at once (see [`super::refusal`]).
    pub refused: Option<super::refusal::Refusal>,
}

/// Template names to read: (AnalysisTemplates in the Rollout's namespace,
/// ClusterAnalysisTemplates).
pub type TemplateNames = (BTreeSet<String>, BTreeSet<String>);

impl Observed {
    /// Whether `pods` must be filled for a correct plan at `now`: `spec.restartAt` has
    /// passed and `status.restartedAt` does not record it yet.
    pub fn needs_pods(rollout: &Rollout, now: DateTime<Utc>) -> bool {
        restart_due(rollout, &sluice_api::k8s::time::to_time(now))
    }

    /// The templates the Rollout names directly: in `analysis` steps, in the analyses of
    /// `experiment` steps, and in the background analysis (`spec.strategy.canary.analysis`);
    /// for blue/green, in the pre- and post-promotion analyses.
    /// Templates may name further templates (`spec.templates`); the observer reads those in
    /// further rounds with [`Observed::nested_template_refs`] until no new name appears.
    pub fn referenced_templates(rollout: &Rollout) -> TemplateNames {
        let mut names = TemplateNames::default();
        if let Some(bg) = rollout.spec.blue_green() {
            for a in [&bg.pre_promotion_analysis, &bg.post_promotion_analysis]
                .into_iter()
                .flatten()
            {
                add_refs(&mut names, a.templates.iter().flatten());
            }
            return names;
        }
        let Some(canary) = rollout.spec.canary() else {
            return names;
        };
        if let Some(bg) = &canary.analysis {
            add_refs(&mut names, bg.templates.iter().flatten());
        }
        for step in rollout.spec.steps() {
            if let Some(a) = &step.analysis {
                add_refs(&mut names, a.templates.iter().flatten());
            }
            if let Some(e) = &step.experiment {
                for a in e.analyses.iter().flatten() {
                    let set = if a.cluster_scope.unwrap_or(false) {
                        &mut names.1
                    } else {
                        &mut names.0
                    };
                    set.insert(a.template_name.clone());
                }
            }
        }
        names
    }

    /// The Services the Rollout names: `canaryService` and `stableService`, or blue/green's
    /// `activeService` and `previewService` (empty names left out).
    pub fn referenced_services(rollout: &Rollout) -> BTreeSet<String> {
        let spec = &rollout.spec;
        let names: [Option<&String>; 2] = match (spec.canary(), spec.blue_green()) {
            (_, Some(bg)) => [Some(&bg.active_service), bg.preview_service.as_ref()],
            (Some(c), None) => [c.canary_service.as_ref(), c.stable_service.as_ref()],
            (None, None) => [None, None],
        };
        names
            .into_iter()
            .flatten()
            .filter(|n| !n.is_empty())
            .cloned()
            .collect()
    }

    /// The templates a template itself names in `spec.templates` (upstream merges their
    /// metrics and args into the run, recursively).
    pub fn nested_template_refs(template: &AnalysisTemplateSpec) -> TemplateNames {
        let mut names = TemplateNames::default();
        add_refs(&mut names, template.templates.iter().flatten());
        names
    }
}

fn add_refs<'a>(names: &mut TemplateNames, refs: impl Iterator<Item = &'a AnalysisTemplateRef>) {
    for r in refs {
        let Some(name) = r.template_name.as_ref() else {
            continue;
        };
        if r.is_cluster_scope() {
            names.1.insert(name.clone());
        } else {
            names.0.insert(name.clone());
        }
    }
}

/// Upstream's `NeedsRestart`. `now` has second precision here (upstream's has nanoseconds), so
/// a restart requested during the current second is already due: with a strict `>` it would
/// wait for a reconcile that nothing schedules.
pub(crate) fn restart_due(rollout: &Rollout, now: &Time) -> bool {
    let Some(at) = rollout.spec.restart_at.as_ref() else {
        return false;
    };
    let done = rollout
        .status
        .as_ref()
        .and_then(|s| s.restarted_at.as_ref());
    done != Some(at) && now >= at
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sluice_api::rollout::{RolloutSpec, RolloutStrategy};

    #[test]
    fn referenced_templates_cover_steps_experiments_and_background_by_scope() {
        let canary = serde_json::from_value(json!({
            "analysis": {"templates": [{"templateName": "bg"}, {"templateName": "cbg", "clusterScope": true}]},
            "steps": [
                {"setWeight": 10},
                {"analysis": {"templates": [{"templateName": "step"}, {"templateName": "bg"}]}},
                {"experiment": {
                    "templates": [{"name": "a", "specRef": "canary"}],
                    "analyses": [
                        {"name": "x", "templateName": "exp"},
                        {"name": "y", "templateName": "cexp", "clusterScope": true}
                    ]
                }}
            ]
        }))
        .unwrap();
        let ro = Rollout::new(
            "r",
            RolloutSpec {
                strategy: Some(RolloutStrategy {
                    canary: Some(canary),
                    blue_green: None,
                }),
                ..Default::default()
            },
        );
        let (namespaced, cluster) = Observed::referenced_templates(&ro);
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(namespaced, names(&["bg", "exp", "step"]));
        assert_eq!(cluster, names(&["cbg", "cexp"]));

        let nested: AnalysisTemplateSpec = serde_json::from_value(json!({
            "templates": [{"templateName": "inner"}, {"templateName": "shared", "clusterScope": true}]
        }))
        .unwrap();
        assert_eq!(
            Observed::nested_template_refs(&nested),
            (names(&["inner"]), names(&["shared"]))
        );
        assert_eq!(
            Observed::referenced_templates(&Rollout::new("r", RolloutSpec::default())),
            TemplateNames::default()
        );
    }
}
