//! Writes the API server refused: reported on the Rollout instead of retried in silence.
//!
//! When a write a plan needs (creating the canary's ReplicaSet, scaling or updating one,
//! pointing a Service, creating an AnalysisRun or Experiment) is refused by the API server
//! with a 4xx other than a conflict, the controller records the refusal and the next
//! observation carries it ([`Observed::refused`]). The planner then reports it as upstream
//! does: the condition `Progressing=False`, reason `ReplicaSetCreateError` with
//! `Failed to create new replica set "<name>": <the server's message>` for a ReplicaSet
//! create (upstream's `rollout/sync.go`), and for the other writes, which upstream reports
//! with no condition, reason `ReconciliationError` with `Reconciliation failed with error:
//! <the server's message>` (upstream's reason and message for a reconcile that fails), plus
//! a Warning Event of the same reason. That plan does not repeat the refused write: the
//! controller retries it on its backoff. Once a plan needs the write again and it is
//! accepted, or no longer needs it, the condition is replaced by ordinary progress.
//!
//! As upstream, the status otherwise stays as observed (its `patchCondition`): the refusal
//! does not move steps or counts. Unlike upstream, the phase is never Healthy while a write
//! is refused: upstream recomputes the phase from the old status, which reads Healthy when
//! the ReplicaSet of a new template cannot be created; Sluice reports `Progressing` with the
//! condition's reason and message (`ReplicaSetCreateError: Failed to create ...`), which is
//! what Argo CD then shows. A Paused or Degraded phase stays as it is.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sluice_api::rollout::{RolloutConditionType as Cond, RolloutPhase, RolloutStatus};

use super::observed::Observed;
use super::plan::{Change, Plan};
use super::status::{self as st, FALSE, TRUE, condition, set_condition};

/// Upstream's reason for a ReplicaSet the API server would not create.
pub const REPLICA_SET_CREATE_ERROR_REASON: &str = "ReplicaSetCreateError";
/// Upstream's reason for a reconcile that failed with an error.
pub const RECONCILIATION_ERROR_REASON: &str = "ReconciliationError";

/// A write of a plan, by what it writes: the unit a refusal is recorded and matched by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    CreateReplicaSet {
        name: String,
    },
    /// A scale or a metadata update of a ReplicaSet.
    UpdateReplicaSet {
        name: String,
    },
    /// Pointing a Service's selector at a ReplicaSet.
    PatchService {
        name: String,
    },
    CreateAnalysisRun {
        name: String,
    },
    CreateExperiment {
        name: String,
    },
}

impl Write {
    /// The write `change` makes, if it is one whose refusal is reported.
    pub fn of(change: &Change) -> Option<Write> {
        let name = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            m.name.clone().unwrap_or_default()
        };
        Some(match change {
            Change::CreateReplicaSet(rs) => Write::CreateReplicaSet {
                name: name(&rs.metadata),
            },
            Change::ScaleReplicaSet { name, .. } | Change::UpdateReplicaSet { name, .. } => {
                Write::UpdateReplicaSet { name: name.clone() }
            }
            Change::SetServiceSelector { service, .. } => Write::PatchService {
                name: service.clone(),
            },
            Change::CreateAnalysisRun(run) => Write::CreateAnalysisRun {
                name: name(&run.metadata),
            },
            Change::CreateExperiment(exp) => Write::CreateExperiment {
                name: name(&exp.metadata),
            },
            _ => return None,
        })
    }
}

/// A write the API server refused the last time it was tried, with the server's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub write: Write,
    pub message: String,
}

impl Refusal {
    /// The Progressing reason (and Event reason) it is reported with.
    pub fn reason(&self) -> &'static str {
        match self.write {
            Write::CreateReplicaSet { .. } => REPLICA_SET_CREATE_ERROR_REASON,
            _ => RECONCILIATION_ERROR_REASON,
        }
    }

    /// Upstream's message for it.
    pub fn report(&self) -> String {
        match &self.write {
            Write::CreateReplicaSet { name } => {
                format!(
                    "Failed to create new replica set {name:?}: {}",
                    self.message
                )
            }
            _ => format!("Reconciliation failed with error: {}", self.message),
        }
    }
}

fn is_refusal_reason(reason: &str) -> bool {
    reason == REPLICA_SET_CREATE_ERROR_REASON || reason == RECONCILIATION_ERROR_REASON
}

/// Whether `status` reports a refused write (the controller then retries the write on its
/// backoff rather than at once).
pub fn is_reported(status: &RolloutStatus) -> bool {
    condition(status.conditions(), &Cond::Progressing)
        .is_some_and(|c| c.status == FALSE && is_refusal_reason(&c.reason))
}

/// The last step of every plan: report the observed refusal if the plan needs the refused
/// write again, else clear a refusal the status still reports.
pub(crate) fn apply(observed: &Observed, plan: Plan, now: &Time) -> Plan {
    let invalid = condition(plan.status.conditions(), &Cond::InvalidSpec).is_some();
    if invalid {
        // Nothing is written while the spec is invalid; the report waits for a valid one.
        return plan;
    }
    let needed = observed.refused.as_ref().and_then(|r| {
        plan.changes
            .iter()
            .position(|c| Write::of(c).as_ref() == Some(&r.write))
            .map(|at| (r, at))
    });
    match needed {
        Some((refusal, at)) => report(observed, plan, refusal, at, now),
        None => clear(observed, plan, now),
    }
}

/// The observed status with the refusal in Progressing; the plan's cluster changes before
/// the refused write (already applied once, repeated harmlessly), and a Warning Event.
fn report(observed: &Observed, plan: Plan, refusal: &Refusal, at: usize, now: &Time) -> Plan {
    let rollout = &observed.rollout;
    let mut status = rollout.status.clone().unwrap_or_default();
    let mut conditions = status.conditions.take().unwrap_or_default();
    let message = refusal.report();
    let reason = refusal.reason();
    let current = condition(&conditions, &Cond::Progressing).cloned();
    match current {
        Some(c) if c.status == FALSE && c.reason == reason => {
            // Upstream's SetRolloutCondition: a new message is an update, the same one none.
            if let Some(c) = conditions
                .iter_mut()
                .find(|c| c.type_ == Cond::Progressing && c.message != message)
            {
                c.message = message.clone();
                c.last_update_time = now.clone();
            }
        }
        _ => {
            set_condition(
                &mut conditions,
                Cond::Progressing,
                FALSE,
                reason,
                message.clone(),
                now,
            );
        }
    }
    status.conditions = Some(conditions);
    status.observed_generation = Some(rollout.metadata.generation.unwrap_or(0).to_string());
    let (phase, phase_message) = match st::phase(&rollout.spec, &status) {
        // Not Healthy while the update cannot even be written, and say why.
        (RolloutPhase::Healthy | RolloutPhase::Progressing, _) => {
            (RolloutPhase::Progressing, format!("{reason}: {message}"))
        }
        other => other,
    };
    status.phase = Some(phase);
    status.message = (!phase_message.is_empty()).then_some(phase_message);
    let mut changes: Vec<Change> = plan
        .changes
        .into_iter()
        .take(at)
        .filter(|c| !matches!(c, Change::Event { .. }))
        .collect();
    changes.push(Change::warning(reason, message));
    Plan {
        status,
        changes,
        requeue_after: None,
    }
}

/// A refusal the status still reports, though no write is refused now: the write went
/// through, or is no longer needed. Progressing says the update progresses again.
fn clear(observed: &Observed, mut plan: Plan, now: &Time) -> Plan {
    if !is_reported(&plan.status) {
        return plan;
    }
    let name = observed
        .rollout
        .metadata
        .name
        .as_deref()
        .unwrap_or_default();
    let message = match plan.status.current_pod_hash.as_deref() {
        Some(hash) => st::rs_progressing_message(&format!("{name}-{hash}")),
        None => format!("Rollout {name:?} is progressing."),
    };
    let conditions = plan.status.conditions.get_or_insert_with(Vec::new);
    set_condition(
        conditions,
        Cond::Progressing,
        TRUE,
        st::REPLICA_SET_UPDATED_REASON,
        message,
        now,
    );
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::testing::{RolloutBuilder, at, observed, pause, rs, weight};
    use crate::rollout::{plan_step, settle};

    fn refused_create(obs: &Observed) -> Refusal {
        let p = plan_step(obs, at(0));
        let name = p
            .changes
            .iter()
            .find_map(|c| match c {
                Change::CreateReplicaSet(rs) => rs.metadata.name.clone(),
                _ => None,
            })
            .expect("the plan creates a ReplicaSet");
        Refusal {
            write: Write::CreateReplicaSet { name },
            message: "replicasets.apps \"web-x\" is forbidden: exceeded quota: q, requested: count/replicasets.apps=1, used: count/replicasets.apps=1, limited: count/replicasets.apps=1".into(),
        }
    }

    #[test]
    fn a_refused_replica_set_create_is_reported_as_upstream_and_not_repeated() {
        let ro = RolloutBuilder::new("v1")
            .steps(vec![weight(20), pause()])
            .build();
        let mut obs = observed(ro, vec![]);
        let refusal = refused_create(&obs);
        obs.refused = Some(refusal.clone());
        let p = settle::plan(&obs, at(10));
        let want = format!(
            "Failed to create new replica set {:?}: {}",
            match &refusal.write {
                Write::CreateReplicaSet { name } => name.as_str(),
                _ => unreachable!(),
            },
            refusal.message
        );
        assert_eq!(
            p.changes,
            vec![Change::warning("ReplicaSetCreateError", want.clone())],
            "no create, one Warning"
        );
        let c = condition(p.status.conditions(), &Cond::Progressing).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str(), c.message.as_str()),
            ("False", "ReplicaSetCreateError", want.as_str())
        );
        assert!(is_reported(&p.status));
        assert_eq!(p.status.phase, Some(RolloutPhase::Progressing));
        assert_eq!(
            p.status.message,
            Some(format!("ReplicaSetCreateError: {want}"))
        );
        let generation = obs.rollout.metadata.generation.unwrap_or(0).to_string();
        assert_eq!(p.status.observed_generation, Some(generation));
    }

    #[test]
    fn a_healthy_rollout_whose_update_is_refused_is_not_healthy() {
        let mut sim = crate::rollout::testing::Sim::new(
            RolloutBuilder::new("v1")
                .steps(vec![weight(50), pause()])
                .build(),
        );
        sim.run_until_quiet(20);
        assert_eq!(
            sim.obs.rollout.status.as_ref().unwrap().phase,
            Some(RolloutPhase::Healthy)
        );
        sim.set_image("v2");
        let refusal = refused_create(&sim.obs);
        sim.obs.refused = Some(refusal);
        let p = plan_step(&sim.obs, at(sim.now));
        assert_eq!(p.status.phase, Some(RolloutPhase::Progressing));
        assert!(
            p.status.message.as_deref().is_some_and(
                |m| m.starts_with("ReplicaSetCreateError: Failed to create new replica set")
            ),
            "{:?}",
            p.status.message
        );
    }

    #[test]
    fn once_the_write_is_planned_without_a_refusal_the_condition_clears() {
        let ro = RolloutBuilder::new("v1").build();
        let mut obs = observed(ro, vec![]);
        obs.refused = Some(refused_create(&obs));
        let reported = plan_step(&obs, at(10));
        obs.refused = None;
        obs.rollout.status = Some(reported.status);
        let retry = plan_step(&obs, at(20));
        assert!(
            retry
                .changes
                .iter()
                .any(|c| matches!(c, Change::CreateReplicaSet(_))),
            "the write is planned again"
        );
        let c = condition(retry.status.conditions(), &Cond::Progressing).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", "NewReplicaSetCreated")
        );
        assert!(!is_reported(&retry.status));
    }

    #[test]
    fn a_refused_scale_is_a_reconciliation_error_and_clears_when_no_longer_refused() {
        let ro = RolloutBuilder::new("v2")
            .spec(|s| s.replicas = Some(2))
            .steps(vec![weight(50), pause()])
            .updating("v1", "v2", 0)
            .build();
        let mut obs = observed(ro, vec![rs("v1", 2, 2, 1), rs("v2", 0, 0, 2)]);
        let plain = plan_step(&obs, at(100));
        let (name, write) = plain
            .changes
            .iter()
            .find_map(|c| match (c, Write::of(c)) {
                (Change::ScaleReplicaSet { name, .. }, Some(w)) => Some((name.clone(), w)),
                _ => None,
            })
            .expect("the plan scales");
        obs.refused = Some(Refusal {
            write,
            message: format!("replicasets.apps {name:?} is forbidden: a webhook said no"),
        });
        let p = plan_step(&obs, at(100));
        // The revision annotation the plan writes before the scale stays; the scale and
        // everything after it wait for the retry.
        assert_eq!(
            p.changes,
            vec![
                Change::AnnotateRolloutRevision {
                    revision: "2".into()
                },
                Change::warning(
                    "ReconciliationError",
                    format!(
                        "Reconciliation failed with error: replicasets.apps {name:?} is forbidden: a webhook said no"
                    )
                )
            ]
        );
        obs.rollout.status = Some(p.status);
        obs.refused = None;
        let retried = plan_step(&obs, at(110));
        assert!(!is_reported(&retried.status));
        assert_eq!(scales(&retried), scales(&plain));
    }

    fn scales(p: &Plan) -> Vec<(String, i32)> {
        crate::rollout::testing::scales(p)
    }

    #[test]
    fn writes_are_matched_by_kind_and_name() {
        let scale = Change::ScaleReplicaSet {
            name: "a".into(),
            from: 0,
            replicas: 1,
            annotations: Default::default(),
        };
        assert_eq!(
            Write::of(&scale),
            Some(Write::UpdateReplicaSet { name: "a".into() })
        );
        assert_eq!(
            Write::of(&Change::DeleteReplicaSet { name: "a".into() }),
            None
        );
        assert_eq!(Write::of(&Change::normal("X", "y")), None);
    }
}
