//! Whether an action makes sense for a Rollout as read, and the exact requests it is
//! (COMPAT §7). Pure: the Rollout and the time are inputs.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use sluice_api::rollout::{PauseReason, Rollout, RolloutStatus};

use super::{Action, Request};

/// A canary (or blue-green) update is in flight: the current pod template is not the stable
/// one. The first revision of a Rollout goes straight to 100% and is never "in flight".
pub fn update_in_flight(status: &RolloutStatus) -> bool {
    match (
        status.current_pod_hash.as_deref(),
        status.stable_rs.as_deref(),
    ) {
        (Some(current), Some(stable)) => {
            !current.is_empty() && !stable.is_empty() && current != stable
        }
        _ => false,
    }
}

/// Paused by the user (`spec.paused`) or by the controller (pause conditions).
pub fn is_paused(rollout: &Rollout) -> bool {
    rollout.spec.is_paused()
        || rollout
            .status
            .as_ref()
            .is_some_and(|s| !s.pause_conditions().is_empty())
}

/// `Ok` when `action` makes sense now; otherwise the rest of a sentence that starts with the
/// Rollout's kind and name (`rollout "web" <reason>`).
pub fn check(action: Action, rollout: &Rollout) -> Result<(), String> {
    let empty = RolloutStatus::default();
    let status = rollout.status.as_ref().unwrap_or(&empty);
    let in_flight = update_in_flight(status);
    let steps = rollout.spec.steps();
    match action {
        Action::Promote => {
            if status.is_aborted() {
                return Err(
                    "is aborted: retry it to start the update again, or promote --full to make it stable"
                        .into(),
                );
            }
            if is_paused(rollout) {
                return Ok(());
            }
            if !in_flight {
                return Err("has no update in progress: nothing to promote".into());
            }
            let index = status.current_step_index.unwrap_or(0);
            if rollout.spec.canary().is_some() && (index.max(0) as usize) < steps.len() {
                // Mid-step (an analysis or experiment running): promote skips the step.
                return Ok(());
            }
            Err("is not paused: nothing to promote".into())
        }
        Action::PromoteFull => {
            if rollout.spec.is_paused() || in_flight {
                Ok(())
            } else {
                Err("has no update in progress: nothing to promote".into())
            }
        }
        Action::Abort => {
            if status.is_aborted() {
                Err("is already aborted".into())
            } else if !in_flight {
                Err("has no update in progress: nothing to abort".into())
            } else {
                Ok(())
            }
        }
        Action::Retry => {
            if status.is_aborted() {
                Ok(())
            } else {
                Err("is not aborted: nothing to retry".into())
            }
        }
        Action::Pause | Action::Restart => Ok(()),
        Action::Resume => {
            if is_paused(rollout) {
                Ok(())
            } else {
                Err("is not paused: nothing to resume".into())
            }
        }
    }
}

/// The requests of `action`, in the order they are sent. `at` is when a restart happens.
pub fn requests(action: Action, rollout: &Rollout, at: DateTime<Utc>) -> Vec<Request> {
    let empty = RolloutStatus::default();
    let status = rollout.status.as_ref().unwrap_or(&empty);
    let user_paused = rollout.spec.is_paused();
    let unpause = || Request::Spec(json!({"spec": {"paused": false}}));
    match action {
        // The user's pause is lifted first (COMPAT §7's order): were the pause conditions
        // cleared while `spec.paused` still held, a reconcile in between would pause the
        // step again and the unpause would leave the Rollout where it was.
        Action::Promote => {
            let mut out = Vec::new();
            if user_paused {
                out.push(unpause());
            }
            if let Some(patch) = promote_status_patch(rollout, status) {
                out.push(Request::Status(patch));
            }
            out
        }
        Action::PromoteFull => {
            let mut out = Vec::new();
            if user_paused {
                out.push(unpause());
            }
            if update_in_flight(status) {
                out.push(Request::Status(json!({"status": {"promoteFull": true}})));
            }
            out
        }
        Action::Abort => vec![Request::Status(json!({"status": {"abort": true}}))],
        Action::Retry => vec![Request::Status(json!({"status": {"abort": false}}))],
        Action::Pause => vec![Request::Spec(json!({"spec": {"paused": true}}))],
        Action::Resume => {
            let mut out = Vec::new();
            if user_paused {
                out.push(unpause());
            }
            if !status.pause_conditions().is_empty() {
                out.push(Request::Status(
                    json!({"status": {"pauseConditions": null}}),
                ));
            }
            out
        }
        Action::Restart => vec![Request::Spec(json!({"spec": {
            "restartAt": at.to_rfc3339_opts(SecondsFormat::Secs, true)
        }}))],
    }
}

/// Upstream's promote: clear the pause conditions; after an inconclusive step analysis also
/// hand control back and skip the analysis step; mid-step (no pause) skip the step.
fn promote_status_patch(rollout: &Rollout, status: &RolloutStatus) -> Option<serde_json::Value> {
    let steps = rollout.spec.steps().len() as i32;
    let index = status.current_step_index.unwrap_or(0);
    let next = if index < steps { index + 1 } else { index };
    let pauses = status.pause_conditions();
    let inconclusive = pauses
        .iter()
        .any(|p| p.reason == PauseReason::InconclusiveAnalysisRun);
    if inconclusive && steps > 0 {
        return Some(json!({"status": {
            "pauseConditions": null, "controllerPause": false, "currentStepIndex": next
        }}));
    }
    if !pauses.is_empty() {
        return Some(json!({"status": {"pauseConditions": null}}));
    }
    if rollout.spec.canary().is_some() && steps > 0 {
        return Some(json!({"status": {"pauseConditions": null, "currentStepIndex": next}}));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn ro(spec: Value, status: Value) -> Rollout {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web"}, "spec": spec, "status": status
        }))
        .unwrap()
    }

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-06T10:00:00Z")
            .unwrap()
            .to_utc()
    }

    fn canary(steps: Value) -> Value {
        json!({"strategy": {"canary": {"steps": steps}}})
    }

    const IN_FLIGHT: (&str, &str) = ("b", "a");

    fn paused_at(index: i32, reason: &str) -> Value {
        json!({"currentStepIndex": index, "currentPodHash": IN_FLIGHT.0, "stableRS": IN_FLIGHT.1,
               "pauseConditions": [{"reason": reason, "startTime": "2026-12-06T09:00:00Z"}],
               "controllerPause": true})
    }

    #[test]
    fn promote_clears_pause_conditions_when_paused_at_a_step() {
        let r = ro(
            canary(json!([{"setWeight": 20}, {"pause": {}}])),
            paused_at(1, "CanaryPauseStep"),
        );
        assert_eq!(check(Action::Promote, &r), Ok(()));
        assert_eq!(
            requests(Action::Promote, &r, at()),
            [Request::Status(
                json!({"status": {"pauseConditions": null}})
            )]
        );
    }

    #[test]
    fn promote_after_an_inconclusive_analysis_skips_the_analysis_step() {
        let r = ro(
            canary(
                json!([{"setWeight": 20}, {"analysis": {"templates": [{"templateName": "t"}]}}, {"pause": {}}]),
            ),
            paused_at(1, "InconclusiveAnalysisRun"),
        );
        assert_eq!(
            requests(Action::Promote, &r, at()),
            [Request::Status(
                json!({"status": {"pauseConditions": null, "controllerPause": false, "currentStepIndex": 2}})
            )]
        );
    }

    #[test]
    fn promote_mid_step_skips_to_the_next_step() {
        let r = ro(
            canary(json!([{"analysis": {"templates": [{"templateName": "t"}]}}, {"pause": {}}])),
            json!({"currentStepIndex": 0, "currentPodHash": "b", "stableRS": "a"}),
        );
        assert_eq!(check(Action::Promote, &r), Ok(()));
        assert_eq!(
            requests(Action::Promote, &r, at()),
            [Request::Status(
                json!({"status": {"pauseConditions": null, "currentStepIndex": 1}})
            )]
        );
    }

    #[test]
    fn promote_unpauses_a_user_paused_rollout_on_the_main_resource_first() {
        let r = ro(
            json!({"paused": true, "strategy": {"canary": {"steps": [{"pause": {}}]}}}),
            paused_at(0, "CanaryPauseStep"),
        );
        assert_eq!(
            requests(Action::Promote, &r, at()),
            [
                Request::Spec(json!({"spec": {"paused": false}})),
                Request::Status(json!({"status": {"pauseConditions": null}})),
            ]
        );
        let only_user = ro(
            json!({"paused": true, "strategy": {"canary": {}}}),
            json!({"currentPodHash": "a", "stableRS": "a"}),
        );
        assert_eq!(
            requests(Action::Promote, &only_user, at()),
            [Request::Spec(json!({"spec": {"paused": false}}))]
        );
    }

    #[test]
    fn promote_full_is_a_status_patch_only_while_an_update_is_in_flight() {
        let inflight = ro(
            canary(json!([])),
            json!({"currentPodHash": "b", "stableRS": "a"}),
        );
        assert_eq!(
            requests(Action::PromoteFull, &inflight, at()),
            [Request::Status(json!({"status": {"promoteFull": true}}))]
        );
        let done = ro(
            canary(json!([])),
            json!({"currentPodHash": "a", "stableRS": "a"}),
        );
        assert!(check(Action::PromoteFull, &done).is_err());
    }

    #[test]
    fn the_simple_actions_are_one_patch_each() {
        let r = ro(
            canary(json!([{"pause": {}}])),
            paused_at(0, "CanaryPauseStep"),
        );
        assert_eq!(
            requests(Action::Abort, &r, at()),
            [Request::Status(json!({"status": {"abort": true}}))]
        );
        assert_eq!(
            requests(Action::Retry, &r, at()),
            [Request::Status(json!({"status": {"abort": false}}))]
        );
        assert_eq!(
            requests(Action::Pause, &r, at()),
            [Request::Spec(json!({"spec": {"paused": true}}))]
        );
        assert_eq!(
            requests(Action::Restart, &r, at()),
            [Request::Spec(
                json!({"spec": {"restartAt": "2026-12-06T10:00:00Z"}})
            )]
        );
    }

    #[test]
    fn resume_is_argo_cds_action_clearing_every_pause() {
        let r = ro(
            json!({"paused": true, "strategy": {"canary": {"steps": [{"pause": {}}]}}}),
            paused_at(0, "CanaryPauseStep"),
        );
        assert_eq!(
            requests(Action::Resume, &r, at()),
            [
                Request::Spec(json!({"spec": {"paused": false}})),
                Request::Status(json!({"status": {"pauseConditions": null}})),
            ]
        );
    }

    /// (action, status, refused?) for a canary with steps [setWeight 20, pause].
    #[test]
    fn actions_that_would_do_nothing_are_refused_naming_why() {
        let steps = canary(json!([{"setWeight": 20}, {"pause": {}}]));
        let healthy = json!({"currentPodHash": "a", "stableRS": "a", "currentStepIndex": 2});
        let paused = paused_at(1, "CanaryPauseStep");
        let aborted =
            json!({"currentPodHash": "b", "stableRS": "a", "currentStepIndex": 0, "abort": true});
        let waiting = json!({"currentPodHash": "b", "stableRS": "a", "currentStepIndex": 2});
        let cases: [(Action, &Value, Option<&str>); 14] = [
            (
                Action::Promote,
                &healthy,
                Some("has no update in progress: nothing to promote"),
            ),
            (Action::Promote, &paused, None),
            (
                Action::Promote,
                &aborted,
                Some(
                    "is aborted: retry it to start the update again, or promote --full to make it stable",
                ),
            ),
            (
                Action::Promote,
                &waiting,
                Some("is not paused: nothing to promote"),
            ),
            (
                Action::PromoteFull,
                &healthy,
                Some("has no update in progress: nothing to promote"),
            ),
            (Action::PromoteFull, &aborted, None),
            (
                Action::Abort,
                &healthy,
                Some("has no update in progress: nothing to abort"),
            ),
            (Action::Abort, &paused, None),
            (Action::Abort, &aborted, Some("is already aborted")),
            (
                Action::Retry,
                &paused,
                Some("is not aborted: nothing to retry"),
            ),
            (Action::Retry, &aborted, None),
            (
                Action::Resume,
                &healthy,
                Some("is not paused: nothing to resume"),
            ),
            (Action::Resume, &paused, None),
            (Action::Restart, &healthy, None),
        ];
        for (action, status, want) in cases {
            let r = ro(steps.clone(), status.clone());
            assert_eq!(
                check(action, &r).err().as_deref(),
                want,
                "{action:?} on {status}"
            );
        }
    }
}
