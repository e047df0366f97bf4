//! Status conditions, with the rule Kubernetes' workload controllers use for them
//! (`deploymentutil.SetDeploymentCondition`, `replicaset.SetCondition`) and Argo Rollouts
//! copies for Rollouts and Experiments:
//!
//! - setting a condition whose type is already present with the same `status` and `reason`
//!   changes nothing (not even the message or `lastUpdateTime`);
//! - otherwise the old one is removed and the new one appended, keeping the old
//!   `lastTransitionTime` while the `status` does not change.
//!
//! [`refresh`] is the Deployment controller's progress case (it removes the condition and
//! sets it again, so `lastUpdateTime` moves while `lastTransitionTime` stays), and
//! [`transition_time`] is the part of the rule a kubelet applies when it rebuilds a Pod's
//! conditions.

use k8s_openapi::api::apps::v1::{DeploymentCondition, ReplicaSetCondition};
use k8s_openapi::api::batch::v1::JobCondition;
use k8s_openapi::api::core::v1::PodCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition as MetaCondition, Time};

use crate::experiment::{ExperimentCondition, ExperimentConditionType};
use crate::rollout::{RolloutCondition, RolloutConditionType};

/// What the rule reads and writes of a condition type.
pub trait Condition {
    /// The `type` field's type (a string, or an enum of known types).
    type Kind: PartialEq;
    fn kind(&self) -> &Self::Kind;
    fn status(&self) -> &str;
    fn reason(&self) -> Option<&str>;
    fn last_transition_time(&self) -> Option<&Time>;
    fn set_last_transition_time(&mut self, t: Time);
}

/// The condition of `kind`, if present.
pub fn find<'a, C: Condition>(conditions: &'a [C], kind: &C::Kind) -> Option<&'a C> {
    conditions.iter().find(|c| c.kind() == kind)
}

/// Removes the condition of `kind`; whether there was one.
pub fn remove<C: Condition>(conditions: &mut Vec<C>, kind: &C::Kind) -> bool {
    let before = conditions.len();
    conditions.retain(|c| c.kind() != kind);
    conditions.len() != before
}

/// Sets `condition` by the rule above; whether anything changed.
pub fn set<C: Condition>(conditions: &mut Vec<C>, condition: C) -> bool {
    let existing = find(conditions, condition.kind());
    if existing
        .is_some_and(|c| c.status() == condition.status() && c.reason() == condition.reason())
    {
        return false;
    }
    refresh(conditions, condition);
    true
}

/// Writes `condition` even when one with the same status and reason is present (so its
/// update time and message move), keeping `lastTransitionTime` while the status holds.
pub fn refresh<C: Condition>(conditions: &mut Vec<C>, mut condition: C) {
    let kept = find(conditions, condition.kind())
        .filter(|c| c.status() == condition.status())
        .and_then(|c| c.last_transition_time().cloned());
    if let Some(t) = kept {
        condition.set_last_transition_time(t);
    }
    remove(conditions, condition.kind());
    conditions.push(condition);
}

/// The `lastTransitionTime` a condition of `kind` with `status` gets: the previous one's
/// while the status is unchanged, else `now`.
pub fn transition_time<C: Condition>(
    previous: &[C],
    kind: &C::Kind,
    status: &str,
    now: Time,
) -> Time {
    find(previous, kind)
        .filter(|c| c.status() == status)
        .and_then(|c| c.last_transition_time().cloned())
        .unwrap_or(now)
}

macro_rules! condition_with_required_fields {
    ($ty:ty, $kind:ty) => {
        impl Condition for $ty {
            type Kind = $kind;
            fn kind(&self) -> &$kind {
                &self.type_
            }
            fn status(&self) -> &str {
                &self.status
            }
            fn reason(&self) -> Option<&str> {
                Some(&self.reason)
            }
            fn last_transition_time(&self) -> Option<&Time> {
                Some(&self.last_transition_time)
            }
            fn set_last_transition_time(&mut self, t: Time) {
                self.last_transition_time = t;
            }
        }
    };
}

macro_rules! condition_with_optional_fields {
    ($ty:ty) => {
        impl Condition for $ty {
            type Kind = String;
            fn kind(&self) -> &String {
                &self.type_
            }
            fn status(&self) -> &str {
                &self.status
            }
            fn reason(&self) -> Option<&str> {
                self.reason.as_deref()
            }
            fn last_transition_time(&self) -> Option<&Time> {
                self.last_transition_time.as_ref()
            }
            fn set_last_transition_time(&mut self, t: Time) {
                self.last_transition_time = Some(t);
            }
        }
    };
}

condition_with_required_fields!(RolloutCondition, RolloutConditionType);
condition_with_required_fields!(ExperimentCondition, ExperimentConditionType);
condition_with_required_fields!(MetaCondition, String);
condition_with_optional_fields!(DeploymentCondition);
condition_with_optional_fields!(ReplicaSetCondition);
condition_with_optional_fields!(JobCondition);
condition_with_optional_fields!(PodCondition);

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(s: i64) -> Time {
        Time(Timestamp::from_second(1_800_000_000 + s).unwrap())
    }

    fn cond(kind: &str, status: &str, reason: &str, message: &str, t: i64) -> DeploymentCondition {
        DeploymentCondition {
            type_: kind.into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_update_time: Some(at(t)),
            last_transition_time: Some(at(t)),
        }
    }

    #[test]
    fn the_same_status_and_reason_change_nothing_not_even_the_message() {
        let mut list = vec![cond(
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "a",
            0,
        )];
        let before = list.clone();
        assert!(!set(
            &mut list,
            cond("Available", "True", "MinimumReplicasAvailable", "b", 5)
        ));
        assert_eq!(list, before);
    }

    #[test]
    fn a_new_reason_replaces_the_condition_and_moves_it_last_keeping_the_transition_time() {
        let mut list = vec![
            cond("Progressing", "True", "NewReplicaSetCreated", "m", 0),
            cond("Available", "True", "MinimumReplicasAvailable", "m", 0),
        ];
        assert!(set(
            &mut list,
            cond("Progressing", "True", "ReplicaSetUpdated", "n", 7)
        ));
        assert_eq!(list[0].type_, "Available");
        let p = &list[1];
        assert_eq!(p.reason.as_deref(), Some("ReplicaSetUpdated"));
        assert_eq!(p.last_update_time, Some(at(7)));
        assert_eq!(
            p.last_transition_time,
            Some(at(0)),
            "status held: no transition"
        );
    }

    #[test]
    fn a_status_flip_is_a_transition() {
        let mut list = vec![cond(
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "m",
            0,
        )];
        assert!(set(
            &mut list,
            cond("Available", "False", "MinimumReplicasUnavailable", "m", 9)
        ));
        assert_eq!(list[0].last_transition_time, Some(at(9)));
    }

    #[test]
    fn refresh_rewrites_an_unchanged_condition_but_keeps_its_transition_time() {
        let mut list = vec![cond("Progressing", "True", "ReplicaSetUpdated", "m", 0)];
        refresh(
            &mut list,
            cond("Progressing", "True", "ReplicaSetUpdated", "m2", 30),
        );
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].message.as_deref(), Some("m2"));
        assert_eq!(list[0].last_update_time, Some(at(30)));
        assert_eq!(list[0].last_transition_time, Some(at(0)));
    }

    #[test]
    fn a_rebuilt_condition_keeps_its_transition_time_while_the_status_holds() {
        let pod = vec![PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            last_transition_time: Some(at(3)),
            ..Default::default()
        }];
        let ready = "Ready".to_string();
        assert_eq!(transition_time(&pod, &ready, "True", at(10)), at(3));
        assert_eq!(transition_time(&pod, &ready, "False", at(10)), at(10));
        let absent = "ContainersReady".to_string();
        assert_eq!(transition_time(&pod, &absent, "True", at(10)), at(10));
    }

    #[test]
    fn find_and_remove_go_by_type() {
        let mut list = vec![
            cond("Progressing", "True", "R", "m", 0),
            cond("Available", "True", "R", "m", 0),
        ];
        assert_eq!(
            find(&list, &"Available".to_string()).map(|c| c.status.as_str()),
            Some("True")
        );
        assert!(remove(&mut list, &"Progressing".to_string()));
        assert!(!remove(&mut list, &"Progressing".to_string()));
        assert_eq!(list.len(), 1);
    }
}
