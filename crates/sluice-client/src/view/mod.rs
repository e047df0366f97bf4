//! What is shown of a Rollout (pure): built from a [`World`], serialized as JSON for the
//! dashboard, rendered as a tree by the CLI.

pub mod steps;
pub mod summary;
pub mod tree;
pub mod weight;

use std::collections::BTreeMap;

use serde::Serialize;

use sluice_api::rollout::Rollout;

use crate::actions::{Action, check};
use crate::phase::{Phase, observed_phase};
use crate::world::{ExperimentWorld, World};

pub use steps::{StepState, StepView};
pub use summary::{RolloutSummary, summary};
pub use tree::{
    AnalysisRunView, EventView, ExperimentView, Health, MeasurementView, MetricView, PodView,
    ReplicaSetView, Role, TemplateView,
};

/// Replica counts of the Rollout.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Replicas {
    pub desired: i32,
    pub current: i32,
    pub updated: i32,
    pub ready: i32,
    pub available: i32,
}

/// An image and the roles of the ReplicaSets running it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageView {
    pub image: String,
    pub roles: Vec<Role>,
}

/// Everything under one revision.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionView {
    pub revision: i64,
    pub replica_sets: Vec<ReplicaSetView>,
    pub analysis_runs: Vec<AnalysisRunView>,
    pub experiments: Vec<ExperimentView>,
}

/// Whether an action can be taken now, and why not.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionView {
    pub action: Action,
    pub enabled: bool,
    /// Why it is disabled (the CLI's refusal, word for word).
    pub reason: Option<String>,
}

/// One Rollout as a person sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutView {
    pub namespace: String,
    pub name: String,
    pub created: Option<String>,
    pub phase: Phase,
    pub message: String,
    /// `Canary`, `BlueGreen`, or `-` when the spec has neither.
    pub strategy: &'static str,
    pub steps: Vec<StepView>,
    /// `currentStepIndex` (absent without steps).
    pub step_index: Option<i32>,
    /// The weight the current step asks for.
    pub set_weight: Option<i32>,
    /// The weight the canary really has (share of available pods).
    pub actual_weight: Option<i32>,
    pub paused: bool,
    pub aborted: bool,
    pub images: Vec<ImageView>,
    pub replicas: Replicas,
    /// Newest first.
    pub revisions: Vec<RevisionView>,
    /// Oldest first.
    pub events: Vec<EventView>,
    pub actions: Vec<ActionView>,
}

/// The roles of the ReplicaSet with pod-template hash `hash`.
pub fn roles_of(rollout: &Rollout, hash: &str) -> Vec<Role> {
    let Some(status) = rollout.status.as_ref() else {
        return Vec::new();
    };
    let mut roles = Vec::new();
    let stable = status.stable_rs.as_deref();
    let current = status.current_pod_hash.as_deref();
    if stable == Some(hash) {
        roles.push(Role::Stable);
    }
    if rollout.spec.canary().is_some() {
        if current == Some(hash) && stable != Some(hash) {
            roles.push(Role::Canary);
        }
    } else if let Some(bg) = status.blue_green.as_ref() {
        if bg.active_selector.as_deref() == Some(hash) {
            roles.push(Role::Active);
        } else if bg.preview_selector.as_deref() == Some(hash) {
            roles.push(Role::Preview);
        }
    }
    roles
}

/// Build the view of a world.
pub fn rollout(world: &World) -> RolloutView {
    let ro = &world.rollout;
    let (phase, message) = observed_phase(ro);
    let status = ro.status.clone().unwrap_or_default();
    let spec = &ro.spec;
    let strategy = if spec.canary().is_some() {
        "Canary"
    } else if spec.blue_green().is_some() {
        "BlueGreen"
    } else {
        "-"
    };
    let mut revisions: BTreeMap<i64, RevisionView> = BTreeMap::new();
    let mut revision_of_hash: BTreeMap<String, i64> = BTreeMap::new();
    let mut images: Vec<ImageView> = Vec::new();
    let own = world.replica_sets.iter().filter(|rs| {
        rs.metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.controller == Some(true) && o.kind == "Rollout")
    });
    for rs in own {
        let hash = tree::label(&rs.metadata, sluice_api::common::POD_TEMPLATE_HASH_LABEL)
            .unwrap_or_default()
            .to_string();
        let view = tree::replica_set(rs, roles_of(ro, &hash), &world.pods);
        let revision = view.revision.unwrap_or(0);
        revision_of_hash.insert(hash, revision);
        if !view.roles.is_empty() {
            for image in &view.images {
                match images.iter_mut().find(|i| &i.image == image) {
                    Some(i) => i.roles.extend(view.roles.iter().copied()),
                    None => images.push(ImageView {
                        image: image.clone(),
                        roles: view.roles.clone(),
                    }),
                }
            }
        }
        revision_entry(&mut revisions, revision)
            .replica_sets
            .push(view);
    }
    let revision_for = |hash: Option<&str>| {
        hash.and_then(|h| revision_of_hash.get(h).copied())
            .unwrap_or(0)
    };
    for e in &world.experiments {
        let view = tree::experiment(e, &world.replica_sets, &world.pods, &world.analysis_runs);
        revision_entry(&mut revisions, revision_for(view.hash.as_deref()))
            .experiments
            .push(view);
    }
    let own_runs = world.analysis_runs.iter().filter(|r| {
        r.metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.controller == Some(true) && o.kind == "Rollout")
    });
    for run in own_runs {
        let view = tree::analysis_run(run);
        revision_entry(&mut revisions, revision_for(view.hash.as_deref()))
            .analysis_runs
            .push(view);
    }
    let mut revisions: Vec<RevisionView> = revisions.into_values().rev().collect();
    for r in &mut revisions {
        r.replica_sets.sort_by(|a, b| a.name.cmp(&b.name));
        r.analysis_runs
            .sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
        r.experiments.sort_by(|a, b| a.name.cmp(&b.name));
    }
    for i in &mut images {
        i.roles.sort();
        i.roles.dedup();
    }
    images.sort_by_key(|i| std::cmp::Reverse(i.roles.contains(&Role::Stable)));
    RolloutView {
        namespace: ro.metadata.namespace.clone().unwrap_or_default(),
        name: ro.metadata.name.clone().unwrap_or_default(),
        created: tree::created(&ro.metadata),
        phase,
        message,
        strategy,
        steps: steps::steps(ro),
        step_index: (!spec.steps().is_empty())
            .then_some(status.current_step_index)
            .flatten(),
        set_weight: weight::desired(ro),
        actual_weight: weight::actual(ro, &world.replica_sets),
        paused: crate::actions::rules::is_paused(ro),
        aborted: status.is_aborted(),
        images,
        replicas: Replicas {
            desired: spec.replicas(),
            current: status.replicas.unwrap_or(0),
            updated: status.updated_replicas.unwrap_or(0),
            ready: status.ready_replicas.unwrap_or(0),
            available: status.available_replicas.unwrap_or(0),
        },
        revisions,
        events: world.events.iter().map(tree::event).collect(),
        actions: Action::ALL
            .into_iter()
            .map(|action| {
                let verdict = check(action, ro);
                ActionView {
                    action,
                    enabled: verdict.is_ok(),
                    reason: verdict.err(),
                }
            })
            .collect(),
    }
}

fn revision_entry(map: &mut BTreeMap<i64, RevisionView>, revision: i64) -> &mut RevisionView {
    map.entry(revision).or_insert_with(|| RevisionView {
        revision,
        replica_sets: Vec::new(),
        analysis_runs: Vec::new(),
        experiments: Vec::new(),
    })
}

/// Build the view of a standalone Experiment.
pub fn experiment(world: &ExperimentWorld) -> ExperimentView {
    tree::experiment(
        &world.experiment,
        &world.replica_sets,
        &world.pods,
        &world.analysis_runs,
    )
}
