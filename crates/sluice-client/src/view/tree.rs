//! The objects under a Rollout as shown: ReplicaSets with their roles and pods,
//! AnalysisRuns with each metric's recent measurements, Experiments, Events.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use sluice_api::analysis::AnalysisRun;
use sluice_api::common::{
    POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION, ROLLOUT_TYPE_LABEL,
    SCALE_DOWN_DEADLINE_ANNOTATION,
};
use sluice_api::experiment::Experiment;

/// A ReplicaSet's part in the Rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    Stable,
    Canary,
    Active,
    Preview,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Stable => "stable",
            Role::Canary => "canary",
            Role::Active => "active",
            Role::Preview => "preview",
        }
    }
}

/// Whether a ReplicaSet or pod is where it should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Health {
    Healthy,
    Progressing,
    ScaledDown,
    Degraded,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "Healthy",
            Health::Progressing => "Progressing",
            Health::ScaledDown => "ScaledDown",
            Health::Degraded => "Degraded",
        }
    }
}

/// One pod.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodView {
    pub name: String,
    /// Running, Pending, ContainerCreating, CrashLoopBackOff, Terminating, ...
    pub status: String,
    pub health: Health,
    /// Ready containers out of all (`1/1`).
    pub ready: String,
    pub restarts: i32,
    pub created: Option<String>,
}

/// One ReplicaSet.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSetView {
    pub name: String,
    pub revision: Option<i64>,
    pub hash: String,
    pub images: Vec<String>,
    pub roles: Vec<Role>,
    pub desired: i32,
    pub current: i32,
    pub ready: i32,
    pub available: i32,
    pub health: Health,
    /// When a delayed scale-down happens (RFC 3339).
    pub scale_down_deadline: Option<String>,
    pub created: Option<String>,
    pub pods: Vec<PodView>,
}

/// One measurement.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MeasurementView {
    pub phase: String,
    pub value: Option<String>,
    /// The value as a number when it is one (or a one-element list of one), for charts.
    pub number: Option<f64>,
    pub finished_at: Option<String>,
    pub message: Option<String>,
}

/// One metric of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricView {
    pub name: String,
    pub phase: String,
    pub successful: i32,
    pub failed: i32,
    pub inconclusive: i32,
    pub error: i32,
    pub dry_run: bool,
    pub message: Option<String>,
    /// Oldest first (as the run keeps them).
    pub measurements: Vec<MeasurementView>,
}

/// One AnalysisRun.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunView {
    pub name: String,
    /// Step, Background, PrePromotion, PostPromotion, or empty for an experiment's.
    pub kind: String,
    pub hash: Option<String>,
    pub phase: String,
    pub message: Option<String>,
    pub created: Option<String>,
    pub successful: i32,
    pub failed: i32,
    pub inconclusive: i32,
    pub error: i32,
    pub metrics: Vec<MetricView>,
}

/// One template of an Experiment.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateView {
    pub name: String,
    pub status: String,
    pub replicas: i32,
    pub available: i32,
}

/// One Experiment.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentView {
    pub namespace: String,
    pub name: String,
    pub hash: Option<String>,
    pub phase: String,
    pub message: Option<String>,
    pub duration: Option<String>,
    pub created: Option<String>,
    pub templates: Vec<TemplateView>,
    pub replica_sets: Vec<ReplicaSetView>,
    pub analysis_runs: Vec<AnalysisRunView>,
}

/// One Event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    /// Normal or Warning.
    pub type_: String,
    pub reason: String,
    pub message: String,
    pub count: i32,
    pub last: Option<String>,
}

pub(crate) fn created(meta: &ObjectMeta) -> Option<String> {
    meta.creation_timestamp.as_ref().map(|t| t.0.to_string())
}

pub(crate) fn label<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.labels.as_ref()?.get(key).map(String::as_str)
}

pub(crate) fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

/// A pod as shown.
pub fn pod(p: &Pod) -> PodView {
    let status = p.status.as_ref();
    let containers = status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default();
    let total = p.spec.as_ref().map_or(containers.len(), |s| {
        s.containers.len().max(containers.len())
    });
    let ready = containers.iter().filter(|c| c.ready).count();
    let restarts = containers.iter().map(|c| c.restart_count).sum();
    let waiting = containers
        .iter()
        .find_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone());
    let phase = status
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Pending".into());
    let (text, health) = if p.metadata.deletion_timestamp.is_some() {
        ("Terminating".to_string(), Health::Progressing)
    } else if let Some(reason) = waiting {
        let bad =
            reason.contains("BackOff") || reason.contains("Err") || reason.contains("Invalid");
        (
            reason,
            if bad {
                Health::Degraded
            } else {
                Health::Progressing
            },
        )
    } else if phase == "Running" && total > 0 && ready == total {
        (phase, Health::Healthy)
    } else if phase == "Failed" {
        (phase, Health::Degraded)
    } else if phase == "Succeeded" {
        (phase, Health::Healthy)
    } else {
        (phase, Health::Progressing)
    };
    PodView {
        name: p.metadata.name.clone().unwrap_or_default(),
        status: text,
        health,
        ready: format!("{ready}/{total}"),
        restarts,
        created: created(&p.metadata),
    }
}

/// A ReplicaSet as shown, with its roles and pods.
pub fn replica_set(rs: &ReplicaSet, roles: Vec<Role>, pods: &[Pod]) -> ReplicaSetView {
    let name = rs.metadata.name.clone().unwrap_or_default();
    let desired = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = rs.status.as_ref();
    let current = status.map_or(0, |s| s.replicas);
    let ready = status.and_then(|s| s.ready_replicas).unwrap_or(0);
    let available = status.and_then(|s| s.available_replicas).unwrap_or(0);
    let health = if desired == 0 && current == 0 {
        Health::ScaledDown
    } else if available < desired || current != desired {
        Health::Progressing
    } else {
        Health::Healthy
    };
    let images = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.spec.as_ref())
        .map(|s| {
            s.containers
                .iter()
                .filter_map(|c| c.image.clone())
                .collect()
        })
        .unwrap_or_default();
    let mut own_pods: Vec<PodView> = pods
        .iter()
        .filter(|p| {
            p.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.controller == Some(true) && o.kind == "ReplicaSet" && o.name == name)
        })
        .map(pod)
        .collect();
    own_pods.sort_by(|a, b| a.name.cmp(&b.name));
    ReplicaSetView {
        revision: annotation(&rs.metadata, REVISION_ANNOTATION).and_then(|r| r.parse().ok()),
        hash: label(&rs.metadata, POD_TEMPLATE_HASH_LABEL)
            .unwrap_or_default()
            .to_string(),
        images,
        roles,
        desired,
        current,
        ready,
        available,
        health,
        scale_down_deadline: annotation(&rs.metadata, SCALE_DOWN_DEADLINE_ANNOTATION)
            .map(str::to_string),
        created: created(&rs.metadata),
        pods: own_pods,
        name,
    }
}

fn number_of(value: &str) -> Option<f64> {
    let v = value.trim();
    let v = v
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(v)
        .trim();
    if v.contains(',') {
        return None;
    }
    v.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// An AnalysisRun as shown.
pub fn analysis_run(run: &AnalysisRun) -> AnalysisRunView {
    let status = run.status.as_ref();
    let metrics: Vec<MetricView> = status
        .and_then(|s| s.metric_results.as_deref())
        .unwrap_or_default()
        .iter()
        .map(|m| MetricView {
            name: m.name.clone(),
            phase: m.phase.as_str().to_string(),
            successful: m.successful.unwrap_or(0),
            failed: m.failed.unwrap_or(0),
            inconclusive: m.inconclusive.unwrap_or(0),
            error: m.error.unwrap_or(0),
            dry_run: m.dry_run.unwrap_or(false),
            message: m.message.clone(),
            measurements: m
                .measurements
                .iter()
                .flatten()
                .map(|x| MeasurementView {
                    phase: x.phase.as_str().to_string(),
                    number: x.value.as_deref().and_then(number_of),
                    value: x.value.clone(),
                    finished_at: x.finished_at.as_ref().map(|t| t.0.to_string()),
                    message: x.message.clone(),
                })
                .collect(),
        })
        .collect();
    let sum = |f: fn(&MetricView) -> i32| metrics.iter().map(f).sum();
    AnalysisRunView {
        name: run.metadata.name.clone().unwrap_or_default(),
        kind: label(&run.metadata, ROLLOUT_TYPE_LABEL)
            .unwrap_or_default()
            .to_string(),
        hash: label(&run.metadata, POD_TEMPLATE_HASH_LABEL).map(str::to_string),
        phase: status
            .map(|s| s.phase.as_str().to_string())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "Pending".into()),
        message: status.and_then(|s| s.message.clone()),
        created: created(&run.metadata),
        successful: sum(|m| m.successful),
        failed: sum(|m| m.failed),
        inconclusive: sum(|m| m.inconclusive),
        error: sum(|m| m.error),
        metrics,
    }
}

/// An Experiment as shown, with the ReplicaSets and runs under it.
pub fn experiment(
    e: &Experiment,
    replica_sets: &[ReplicaSet],
    pods: &[Pod],
    runs: &[AnalysisRun],
) -> ExperimentView {
    let name = e.metadata.name.clone().unwrap_or_default();
    let owned_by_me = |meta: &ObjectMeta| {
        meta.owner_references
            .iter()
            .flatten()
            .any(|o| o.controller == Some(true) && o.kind == "Experiment" && o.name == name)
    };
    let status = e.status.as_ref();
    let templates = status
        .and_then(|s| s.template_statuses.as_deref())
        .unwrap_or_default()
        .iter()
        .map(|t| TemplateView {
            name: t.name.clone(),
            status: t
                .status
                .as_ref()
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|| "Progressing".into()),
            replicas: t.replicas,
            available: t.available_replicas,
        })
        .collect();
    let mut sets: Vec<ReplicaSetView> = replica_sets
        .iter()
        .filter(|rs| owned_by_me(&rs.metadata))
        .map(|rs| replica_set(rs, Vec::new(), pods))
        .collect();
    sets.sort_by(|a, b| a.name.cmp(&b.name));
    let mut analysis_runs: Vec<AnalysisRunView> = runs
        .iter()
        .filter(|r| owned_by_me(&r.metadata))
        .map(analysis_run)
        .collect();
    analysis_runs.sort_by(|a, b| a.name.cmp(&b.name));
    ExperimentView {
        namespace: e.metadata.namespace.clone().unwrap_or_default(),
        hash: label(&e.metadata, POD_TEMPLATE_HASH_LABEL).map(str::to_string),
        phase: status
            .and_then(|s| s.phase.as_ref())
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "Pending".into()),
        message: status.and_then(|s| s.message.clone()),
        duration: e.spec.duration.clone(),
        created: created(&e.metadata),
        templates,
        replica_sets: sets,
        analysis_runs,
        name,
    }
}

/// An Event as shown.
pub fn event(e: &Event) -> EventView {
    EventView {
        type_: e.type_.clone().unwrap_or_else(|| "Normal".into()),
        reason: e.reason.clone().unwrap_or_default(),
        message: e.message.clone().unwrap_or_default(),
        count: e.count.unwrap_or(1).max(1),
        last: crate::world::event_time(e).map(|t| t.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measurement_values_chart_when_they_are_one_number() {
        assert_eq!(number_of("0.97"), Some(0.97));
        assert_eq!(number_of("[0.5]"), Some(0.5));
        assert_eq!(number_of(" [ 12 ] "), Some(12.0));
        assert_eq!(number_of("[1,2]"), None);
        assert_eq!(number_of("ok"), None);
        assert_eq!(number_of("NaN"), None);
    }
}
