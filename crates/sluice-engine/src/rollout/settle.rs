//! Planning until the status settles, so one reconcile writes one status.
//!
//! The planner moves one transition per call: when a `setWeight` step's counts are reached
//! it advances `currentStepIndex`; only the next call, seeing that index, starts the
//! `pause` step; only the one after that moves the conditions to follow the pause. Each
//! call's status was written, observed back through the watch and planned on again: three
//! status PATCHes, and two intermediate states ("Progressing at step 1, not paused") that
//! clients could see for no reason. When a plan changes nothing in the cluster but status
//! (and Events), the next reconcile would plan on exactly this world with that status, so
//! the controller does so at once, and writes the last status with the Events of every
//! round. A plan that changes the cluster (scales, creates, deletes) ends the rounds: its
//! effects must be observed before planning on.

use chrono::{DateTime, Utc};

use crate::rollout::{Change, Observed, Plan};

/// Rounds of planning on the planned status, at most (a step completing, the next pause
/// starting and the conditions following it take three).
const MAX_ROUNDS: usize = 4;

fn changes_cluster(plan: &Plan) -> bool {
    plan.changes
        .iter()
        .any(|c| !matches!(c, Change::Event { .. }))
}

/// [`crate::rollout::plan_step`], repeated on its own status while it changes only status and
/// Events; the last plan, carrying the Events of every round in order.
pub fn plan(observed: &Observed, now: DateTime<Utc>) -> Plan {
    let mut plan = crate::rollout::plan_step(observed, now);
    let mut next_world: Option<Observed> = None;
    for _ in 1..MAX_ROUNDS {
        if changes_cluster(&plan) || observed.rollout.status.as_ref() == Some(&plan.status) {
            break;
        }
        let world = next_world.get_or_insert_with(|| observed.clone());
        world.rollout.status = Some(plan.status.clone());
        let next = crate::rollout::plan_step(world, now);
        if changes_cluster(&next) || next.status == plan.status {
            break;
        }
        let mut changes = std::mem::take(&mut plan.changes);
        changes.extend(next.changes);
        plan = Plan { changes, ..next };
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::testing::{RolloutBuilder, Sim, at, events, pause, weight};
    use sluice_api::rollout::RolloutStatus;

    struct Walk {
        /// Every distinct status the walk wrote, in order.
        written: Vec<RolloutStatus>,
        events: Vec<(String, String)>,
        last: RolloutStatus,
    }

    /// A 2-replica canary settled on v1, updated to v2, reconciled until quiet (pods
    /// become available at once), with `planner` deciding each reconcile.
    fn walk(planner: fn(&Observed, DateTime<Utc>) -> Plan) -> Walk {
        let ro = RolloutBuilder::new("v1")
            .spec(|s| s.replicas = Some(2))
            .steps(vec![weight(20), pause(), weight(60)])
            .build();
        let mut sim = Sim::new(ro);
        sim.run_until_quiet(30);
        sim.set_image("v2");
        let mut walk = Walk {
            written: Vec::new(),
            events: Vec::new(),
            last: RolloutStatus::default(),
        };
        for _ in 0..30 {
            let before = sim.obs.rollout.status.clone();
            let p = planner(&sim.obs, at(sim.now));
            sim.apply(&p);
            sim.settle_pods();
            walk.events.extend(events(&p));
            if Some(&p.status) != before.as_ref() {
                walk.written.push(p.status.clone());
            }
            if p.changes.is_empty() && Some(&p.status) == before.as_ref() {
                walk.last = p.status;
                return walk;
            }
            sim.now += 1;
        }
        panic!("no quiet state after 30 reconciles");
    }

    #[test]
    fn a_completed_step_and_the_pause_it_reaches_are_one_status_write() {
        let plain = walk(crate::rollout::plan_step);
        let settled = walk(plan);
        for w in [&plain, &settled] {
            assert_eq!(w.last.current_step_index, Some(1));
            assert_eq!(
                w.last
                    .pause_conditions()
                    .iter()
                    .map(|p| p.reason.as_str())
                    .collect::<Vec<_>>(),
                ["CanaryPauseStep"]
            );
        }
        assert_eq!(
            settled.events, plain.events,
            "the same Events, in the same order"
        );
        assert!(
            settled.written.len() < plain.written.len(),
            "{} status writes settled vs {} plain",
            settled.written.len(),
            plain.written.len()
        );
        assert!(
            settled
                .written
                .iter()
                .all(|s| s.current_step_index != Some(1) || !s.pause_conditions().is_empty()),
            "no status at the pause step that is not paused is ever written"
        );
    }

    #[test]
    fn a_plan_that_changes_the_cluster_is_not_planned_on() {
        let ro = RolloutBuilder::new("v2")
            .spec(|s| s.replicas = Some(2))
            .steps(vec![weight(50), pause()])
            .updating("v1", "v2", 0)
            .build();
        let obs = crate::rollout::testing::observed(
            ro,
            vec![
                crate::rollout::testing::rs("v1", 2, 2, 1),
                crate::rollout::testing::rs("v2", 0, 0, 2),
            ],
        );
        let plain = crate::rollout::plan_step(&obs, at(1_000));
        assert!(changes_cluster(&plain), "the canary must be scaled first");
        assert_eq!(plan(&obs, at(1_000)), plain);
    }
}
