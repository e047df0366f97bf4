//! The planner's output: the status the Rollout should have and the changes to make.
//!
//! A `Plan` is a value so the whole decision can be asserted on in tests. The actuator
//! applies `changes` in order, stopping at the first failure, and then writes `status` to
//! the /status subresource as a merge patch of the fields that differ from what it observed
//! (skipping the write when nothing differs).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;

use sluice_api::analysis::AnalysisRun;
use sluice_api::experiment::Experiment;
use sluice_api::rollout::RolloutStatus;

/// Decision of one reconcile.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The complete desired status. Fields the planner does not mean to change are copied
    /// verbatim from the observed status, so a merge-patch diff never rewrites what a user
    /// just wrote (`abort`, `pauseConditions`, `promoteFull`, `currentStepIndex`).
    pub status: RolloutStatus,
    /// Mutations to apply, in order.
    pub changes: Vec<Change>,
    /// Reconcile again after this long even if nothing changes (pause durations, progress
    /// deadlines).
    pub requeue_after: Option<Duration>,
}

/// Keys to set and keys to delete on a string map (labels or annotations).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetadataPatch {
    pub set: BTreeMap<String, String>,
    pub remove: BTreeSet<String>,
}

impl MetadataPatch {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }

    /// Whether applying this patch to `current` would change it.
    pub fn changes(&self, current: Option<&BTreeMap<String, String>>) -> bool {
        self.set
            .iter()
            .any(|(k, v)| current.and_then(|m| m.get(k)) != Some(v))
            || self
                .remove
                .iter()
                .any(|k| current.is_some_and(|m| m.contains_key(k)))
    }
}

/// Kubernetes Event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// One mutation. ReplicaSets are named, never addressed by index, so a plan stays valid if
/// the actuator re-reads objects between changes.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Create this ReplicaSet (complete object: name, labels, selector, owner reference,
    /// annotations, template, `replicas: 0`).
    CreateReplicaSet(Box<ReplicaSet>),
    /// Set `spec.replicas` (and patch annotations such as `desired-replicas` or
    /// `scale-down-deadline` in the same write).
    ScaleReplicaSet {
        name: String,
        /// `spec.replicas` the plan was computed from (for events and optimistic checks).
        from: i32,
        replicas: i32,
        annotations: MetadataPatch,
    },
    /// Update a ReplicaSet's metadata, its pod template's ephemeral labels/annotations, or
    /// `spec.minReadySeconds` — everything that does not change the pod-template hash.
    UpdateReplicaSet {
        name: String,
        annotations: MetadataPatch,
        template_labels: MetadataPatch,
        template_annotations: MetadataPatch,
        min_ready_seconds: Option<i32>,
    },
    /// Delete an old, scaled-down ReplicaSet (revision history cleanup).
    DeleteReplicaSet { name: String },
    /// Point `spec.selector[rollouts-pod-template-hash]` of a Service at a ReplicaSet, and
    /// add the `argo-rollouts.argoproj.io/managed-by-rollouts: <rollout>` annotation when
    /// `add_managed_by` is set.
    SetServiceSelector {
        service: String,
        pod_template_hash: String,
        add_managed_by: bool,
    },
    /// Give back a Service the Rollout no longer names (its strategy or Service names
    /// changed): remove `spec.selector[rollouts-pod-template-hash]` and the
    /// `argo-rollouts.argoproj.io/managed-by-rollouts` annotation, so it selects every pod of
    /// the app again (upstream's Service controller does the same).
    ReleaseService { service: String },
    /// Patch the running pods of the ReplicaSet with this hash (ephemeral metadata), so they
    /// carry the labels the ReplicaSet's template now has without being restarted.
    PatchPods {
        pod_template_hash: String,
        labels: MetadataPatch,
        annotations: MetadataPatch,
    },
    /// Evict this pod (the eviction API, so PodDisruptionBudgets apply) for `restartAt`;
    /// its ReplicaSet replaces it.
    EvictPod { name: String },
    /// Write `spec.replicas` on the Rollout (the default 1, for HPA and `kubectl scale`).
    PatchRolloutSpecReplicas { replicas: i32 },
    /// Set the Rollout's `rollout.argoproj.io/revision` annotation.
    AnnotateRolloutRevision { revision: String },
    /// Set another annotation on the Rollout (`rollout.argoproj.io/workload-generation`).
    AnnotateRollout { key: String, value: String },
    /// Set `spec.replicas` of the Deployment `spec.workloadRef` names (only ever lower).
    ScaleDeployment {
        name: String,
        from: i32,
        replicas: i32,
    },
    /// Create this AnalysisRun (complete object: name, namespace, labels, annotations, a
    /// controller ownerReference to the Rollout, spec with resolved args). An AlreadyExists
    /// answer means an earlier, unobserved create succeeded.
    CreateAnalysisRun(Box<AnalysisRun>),
    /// Stop a running AnalysisRun: merge patch `{"spec":{"terminate":true}}`.
    TerminateAnalysisRun { name: String },
    /// Delete a finished AnalysisRun beyond the run history limits.
    DeleteAnalysisRun { name: String },
    /// Create this Experiment (complete object, controller ownerReference to the Rollout).
    CreateExperiment(Box<Experiment>),
    /// Stop a running Experiment: merge patch `{"spec":{"terminate":true}}`.
    TerminateExperiment { name: String },
    /// Delete a finished Experiment of an old revision.
    DeleteExperiment { name: String },
    /// Apply this JSON patch (RFC 6902) to a route object of the traffic routing. It begins
    /// with a `test` of what it rewrites, so an edit made since the object was read fails
    /// the write instead of being lost.
    PatchRoute {
        route: crate::rollout::traffic::RouteRef,
        patch: Vec<serde_json::Value>,
    },
    /// Create a route object the Rollout owns (an SMI TrafficSplit): metadata and spec; the
    /// actuator adds `apiVersion` and `kind` for the version the API server serves.
    /// AlreadyExists means an earlier, unobserved create succeeded.
    CreateRoute {
        route: crate::rollout::traffic::RouteRef,
        object: serde_json::Value,
    },
    /// Record a Kubernetes Event on the Rollout.
    Event {
        type_: EventType,
        reason: String,
        message: String,
    },
}

impl Change {
    pub fn normal(reason: &str, message: impl Into<String>) -> Self {
        Change::Event {
            type_: EventType::Normal,
            reason: reason.to_string(),
            message: message.into(),
        }
    }

    pub fn warning(reason: &str, message: impl Into<String>) -> Self {
        Change::Event {
            type_: EventType::Warning,
            reason: reason.to_string(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_patch_detects_whether_it_changes_a_map() {
        let current: BTreeMap<String, String> = [("a".into(), "1".into())].into();
        let mut p = MetadataPatch::default();
        assert!(!p.changes(Some(&current)));
        p.set.insert("a".into(), "1".into());
        assert!(!p.changes(Some(&current)));
        p.remove.insert("b".into());
        assert!(!p.changes(Some(&current)));
        p.set.insert("a".into(), "2".into());
        assert!(p.changes(Some(&current)));
        assert!(p.changes(None));
    }
}
