//! Facts about Pods and owner references that every workload controller reads the same way.
//!
//! Kept in one place so the ReplicaSet, Deployment and Job controllers agree on what
//! "active", "ready" and "available" mean (they follow kube-controller-manager's
//! definitions).

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use sluice_api::k8s::time::from_time;

/// The controlling owner reference of an object, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|r| r.controller == Some(true))
}

/// An owner reference that makes `owner` the controller of a dependent, the way
/// kube-controller-manager writes it (controller and blockOwnerDeletion both true).
pub fn controller_ref(api_version: &str, kind: &str, owner: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        name: owner.name.clone().unwrap_or_default(),
        uid: owner.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The Pod's phase, `Pending` when the kubelet has not reported one yet.
pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// True while the Pod is being deleted.
pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// True for a Pod that has run to completion (it never runs again).
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// A Pod that counts toward a controller's replicas: not finished and not being deleted.
pub fn is_active(pod: &Pod) -> bool {
    !is_terminal(pod) && !is_terminating(pod)
}

/// The time the Pod's `Ready` condition became True, when it is True.
pub fn ready_since(pod: &Pod) -> Option<DateTime<Utc>> {
    let cond = pod
        .status
        .as_ref()?
        .conditions
        .as_deref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    if cond.status != "True" {
        return None;
    }
    Some(
        cond.last_transition_time
            .as_ref()
            .map(from_time)
            .unwrap_or(DateTime::<Utc>::MIN_UTC),
    )
}

/// True when the Pod's `Ready` condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// The time at which a ready Pod counts as available (`Ready` for `min_ready_seconds`).
pub fn available_at(pod: &Pod, min_ready_seconds: i32) -> Option<DateTime<Utc>> {
    ready_since(pod).map(|t| t + chrono::Duration::seconds(i64::from(min_ready_seconds.max(0))))
}

/// Sum of the restart counts of the Pod's containers (init containers included).
pub fn restart_count(pod: &Pod) -> i32 {
    let Some(status) = pod.status.as_ref() else {
        return 0;
    };
    status
        .container_statuses
        .iter()
        .chain(status.init_container_statuses.iter())
        .flatten()
        .map(|c| c.restart_count)
        .sum()
}

/// The creation time of an object, the Unix epoch when the server did not set one.
pub fn created(meta: &ObjectMeta) -> DateTime<Utc> {
    meta.creation_timestamp
        .as_ref()
        .map(from_time)
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// The order in which surplus Pods are deleted: the ones whose loss hurts least first.
/// Mirrors the real controller's ranking: not-yet-running before running, not-ready before
/// ready, recently ready before long ready, more restarts before fewer, newer before older.
pub fn deletion_order(a: &Pod, b: &Pod) -> std::cmp::Ordering {
    fn phase_rank(p: &Pod) -> u8 {
        match phase(p) {
            "Pending" => 0,
            "Unknown" => 1,
            _ => 2,
        }
    }
    phase_rank(a)
        .cmp(&phase_rank(b))
        .then_with(|| is_ready(a).cmp(&is_ready(b)))
        // Both ready: the one ready for less time goes first.
        .then_with(|| ready_since(b).cmp(&ready_since(a)))
        .then_with(|| restart_count(b).cmp(&restart_count(a)))
        .then_with(|| created(&b.metadata).cmp(&created(&a.metadata)))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Builders that keep the planners' golden tables short.
    use super::*;
    use chrono::TimeZone;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use sluice_api::k8s::time::to_time;

    pub fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
    }

    /// A Pod named `name` owned by the controller `owner_uid`, created at `t(created_at)`.
    pub fn pod(name: &str, owner_uid: &str, created_at: i64) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                uid: Some(format!("uid-{name}")),
                creation_timestamp: Some(to_time(t(created_at))),
                owner_references: Some(vec![OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "ReplicaSet".into(),
                    name: "owner".into(),
                    uid: owner_uid.into(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                ..Default::default()
            },
            spec: None,
            status: None,
        }
    }

    pub fn with_phase(mut p: Pod, phase: &str) -> Pod {
        p.status.get_or_insert_with(PodStatus::default).phase = Some(phase.into());
        p
    }

    /// Running and Ready since `t(since)`.
    pub fn ready(p: Pod, since: i64) -> Pod {
        let mut p = with_phase(p, "Running");
        p.status.as_mut().unwrap().conditions = Some(vec![PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            last_transition_time: Some(to_time(t(since))),
            ..Default::default()
        }]);
        p
    }

    pub fn deleting(mut p: Pod) -> Pod {
        p.metadata.deletion_timestamp = Some(to_time(t(0)));
        p
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn finished_and_deleting_pods_are_not_active() {
        assert!(is_active(&pod("a", "o", 0)));
        assert!(!is_active(&with_phase(pod("a", "o", 0), "Succeeded")));
        assert!(!is_active(&with_phase(pod("a", "o", 0), "Failed")));
        assert!(!is_active(&deleting(pod("a", "o", 0))));
    }

    #[test]
    fn availability_waits_for_min_ready_seconds_after_ready() {
        let p = ready(pod("a", "o", 0), 10);
        assert_eq!(available_at(&p, 0), Some(t(10)));
        assert_eq!(available_at(&p, 5), Some(t(15)));
        assert_eq!(available_at(&pod("b", "o", 0), 5), None);
    }

    #[test]
    fn deletion_prefers_pending_then_unready_then_newest() {
        let mut pods = [
            ready(pod("old-ready", "o", 0), 1),
            ready(pod("new-ready", "o", 5), 6),
            with_phase(pod("running-unready", "o", 0), "Running"),
            pod("pending", "o", 0),
        ];
        pods.sort_by(deletion_order);
        let names: Vec<_> = pods
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(
            names,
            ["pending", "running-unready", "new-ready", "old-ready"]
        );
    }
}
