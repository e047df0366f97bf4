//! Rollout status vocabulary: condition reasons and messages (upstream's exact strings, which
//! dashboards and Argo CD show), condition bookkeeping, and the phase/message decision.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use sluice_api::k8s::conditions as k8s_conditions;
use sluice_api::rollout::{
    RolloutCondition, RolloutConditionType, RolloutPhase, RolloutSpec, RolloutStatus,
};

pub const INVALID_SPEC_REASON: &str = "InvalidSpec";
pub const AVAILABLE_REASON: &str = "AvailableReason";
pub const AVAILABLE_MESSAGE: &str = "Rollout has minimum availability";
pub const NOT_AVAILABLE_MESSAGE: &str = "Rollout does not have minimum availability";
pub const REPLICA_SET_UPDATED_REASON: &str = "ReplicaSetUpdated";
pub const NEW_REPLICA_SET_REASON: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_RS_REASON: &str = "FoundNewReplicaSet";
pub const NEW_RS_AVAILABLE_REASON: &str = "NewReplicaSetAvailable";
pub const REPLICA_SET_NOT_AVAILABLE_REASON: &str = "ReplicaSetNotAvailable";
pub const ROLLOUT_UPDATED_REASON: &str = "RolloutUpdated";
pub const ROLLOUT_COMPLETED_REASON: &str = "RolloutCompleted";
pub const ROLLOUT_NOT_COMPLETED_REASON: &str = "RolloutNotCompleted";
pub const ROLLOUT_HEALTHY_REASON: &str = "RolloutHealthy";
pub const ROLLOUT_HEALTHY_MESSAGE: &str = "Rollout is healthy";
pub const ROLLOUT_NOT_HEALTHY_MESSAGE: &str = "Rollout is not healthy";
pub const ROLLOUT_ABORTED_REASON: &str = "RolloutAborted";
pub const ROLLOUT_RETRY_REASON: &str = "RolloutRetry";
pub const ROLLOUT_RETRY_MESSAGE: &str = "Retrying Rollout after abort";
pub const ROLLOUT_PAUSED_REASON: &str = "RolloutPaused";
pub const ROLLOUT_PAUSED_MESSAGE: &str = "Rollout is paused";
pub const ROLLOUT_RESUMED_REASON: &str = "RolloutResumed";
pub const ROLLOUT_RESUMED_MESSAGE: &str = "Rollout is resumed";
pub const ROLLOUT_STEP_COMPLETED_REASON: &str = "RolloutStepCompleted";
pub const TIMED_OUT_REASON: &str = "ProgressDeadlineExceeded";
pub const SCALING_REPLICA_SET_REASON: &str = "ScalingReplicaSet";
pub const SWITCH_SERVICE_REASON: &str = "SwitchService";
pub const SKIP_STEPS_REASON: &str = "SkipSteps";

pub fn new_rs_message(name: &str) -> String {
    format!("Created new replica set {name:?}")
}
pub fn found_new_rs_message(name: &str) -> String {
    format!("Found new replica set {name:?}")
}
pub fn rs_progressing_message(name: &str) -> String {
    format!("ReplicaSet {name:?} is progressing.")
}
pub fn rs_completed_message(name: &str) -> String {
    format!("ReplicaSet {name:?} has successfully progressed.")
}
pub fn rs_timed_out_message(name: &str) -> String {
    format!("ReplicaSet {name:?} has timed out progressing.")
}
pub fn aborted_message(revision: i64) -> String {
    format!("Rollout aborted update to revision {revision}")
}

/// Condition `status` strings.
pub const TRUE: &str = "True";
pub const FALSE: &str = "False";
pub const UNKNOWN: &str = "Unknown";

/// Finds a condition by type.
pub fn condition<'a>(
    conditions: &'a [RolloutCondition],
    type_: &RolloutConditionType,
) -> Option<&'a RolloutCondition> {
    k8s_conditions::find(conditions, type_)
}

/// Sets a condition by Kubernetes' rule (`sluice_api::k8s::conditions`, which upstream
/// follows for Rollouts): nothing changes when one of the same type already has the same
/// status and reason; `lastTransitionTime` is kept while the status does not flip; the
/// condition moves to the end of the list. Returns whether anything changed.
pub fn set_condition(
    conditions: &mut Vec<RolloutCondition>,
    type_: RolloutConditionType,
    status: &str,
    reason: &str,
    message: String,
    now: &Time,
) -> bool {
    k8s_conditions::set(
        conditions,
        RolloutCondition {
            type_,
            status: status.to_string(),
            last_update_time: now.clone(),
            last_transition_time: now.clone(),
            reason: reason.to_string(),
            message,
            observed_generation: None,
        },
    )
}

/// Reason of the kstatus-style conditions while the Rollout is Healthy.
pub const READY_REASON: &str = "Healthy";

/// Sets the kstatus-style summary conditions from the phase and message just decided, each
/// stamped with `generation` (see [`RolloutCondition::observed_generation`]):
/// `Ready` (True when Healthy), `Reconciling` (True while Progressing or Paused) and
/// `Stalled` (True when Degraded). Unlike upstream's conditions they follow message changes,
/// so `Ready=False` always says what the Rollout waits for, and they are updated in place, as
/// `metav1.Condition`s are (`meta.SetStatusCondition`). Upstream's conditions are left
/// exactly as they are.
pub fn set_summary_conditions(status: &mut RolloutStatus, generation: i64, now: &Time) {
    let Some(phase) = status.phase.clone() else {
        return;
    };
    let message = status.message.clone().unwrap_or_default();
    let (ready, reconciling, stalled) = match phase {
        RolloutPhase::Healthy => (TRUE, FALSE, FALSE),
        RolloutPhase::Degraded => (FALSE, FALSE, TRUE),
        _ => (FALSE, TRUE, FALSE),
    };
    let (reason, text) = match phase {
        RolloutPhase::Healthy => (
            READY_REASON.to_string(),
            ROLLOUT_HEALTHY_MESSAGE.to_string(),
        ),
        // The reason is the phase, never one of upstream's condition reasons: readers
        // (ours included) look those up in the condition list. The message holds the cause.
        _ if message.is_empty() => (phase.as_str().to_string(), phase.as_str().to_string()),
        _ => (phase.as_str().to_string(), message),
    };
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    for (type_, value) in [
        (RolloutConditionType::Ready, ready),
        (RolloutConditionType::Reconciling, reconciling),
        (RolloutConditionType::Stalled, stalled),
    ] {
        let existing = condition(conditions, &type_);
        let unchanged = existing.is_some_and(|c| {
            c.status == value
                && c.reason == reason
                && c.message == text
                && c.observed_generation == Some(generation)
        });
        if unchanged {
            continue;
        }
        let last_transition_time =
            k8s_conditions::transition_time(conditions, &type_, value, now.clone());
        let at = conditions.iter().position(|c| c.type_ == type_);
        let updated = RolloutCondition {
            type_: type_.clone(),
            status: value.to_string(),
            last_update_time: now.clone(),
            last_transition_time,
            reason: reason.clone(),
            message: text.clone(),
            observed_generation: Some(generation),
        };
        // In place, so the list's order stays stable across reconciles.
        match at {
            Some(i) => conditions[i] = updated,
            None => conditions.push(updated),
        }
    }
}

/// Removes every condition of `type_`.
pub fn remove_condition(conditions: &mut Vec<RolloutCondition>, type_: &RolloutConditionType) {
    k8s_conditions::remove(conditions, type_);
}

/// Phase and message, decided in COMPAT §4's order (upstream's `CalculateRolloutPhase`),
/// for a canary Rollout without traffic routing or a blue/green one.
pub fn phase(spec: &RolloutSpec, status: &RolloutStatus) -> (RolloutPhase, String) {
    // An invalid spec is reported before anything else, whatever the order of the
    // conditions (upstream takes the first matching condition in list order, which can
    // hide an InvalidSpec behind an older abort).
    if let Some(c) = status
        .conditions()
        .iter()
        .find(|c| c.type_ == RolloutConditionType::InvalidSpec)
    {
        return (
            RolloutPhase::Degraded,
            format!("{INVALID_SPEC_REASON}: {}", c.message),
        );
    }
    for c in status.conditions() {
        if c.reason == ROLLOUT_ABORTED_REASON || c.reason == TIMED_OUT_REASON {
            return (
                RolloutPhase::Degraded,
                format!("{}: {}", c.reason, c.message),
            );
        }
    }
    if spec.is_paused() {
        return (RolloutPhase::Paused, "manually paused".to_string());
    }
    if let Some(p) = status.pause_conditions().first() {
        return (RolloutPhase::Paused, p.reason.to_string());
    }
    if spec.restart_at.is_some() && spec.restart_at != status.restarted_at {
        return (
            RolloutPhase::Progressing,
            "rollout is restarting".to_string(),
        );
    }
    let updated = status.updated_replicas.unwrap_or(0);
    if updated < spec.replicas() {
        return (
            RolloutPhase::Progressing,
            "more replicas need to be updated".to_string(),
        );
    }
    if status.available_replicas.unwrap_or(0) < updated {
        return (
            RolloutPhase::Progressing,
            "updated replicas are still becoming available".to_string(),
        );
    }
    if let Some(bg) = spec.blue_green() {
        let b = status.blue_green.as_ref();
        let active = b.and_then(|b| b.active_selector.as_deref());
        if active.is_none_or(|a| Some(a) != status.current_pod_hash.as_deref()) {
            return (
                RolloutPhase::Progressing,
                "active service cutover pending".to_string(),
            );
        }
        let stable = status.stable_rs.as_deref().unwrap_or_default();
        if stable.is_empty() || Some(stable) != status.current_pod_hash.as_deref() {
            // Switched, not yet stable: the post-promotion analysis has the last word.
            let post = b.and_then(|b| b.post_promotion_analysis_run_status.as_ref());
            let analysing = bg.post_promotion_analysis.is_some()
                && post.is_none_or(|r| !r.status.is_completed());
            let message = if analysing {
                "waiting for analysis to complete"
            } else {
                "waiting for post-promotion verification to complete"
            };
            return (RolloutPhase::Progressing, message.to_string());
        }
    } else if let Some(canary) = spec.canary() {
        if canary.traffic_routing.is_none() && status.replicas.unwrap_or(0) > updated {
            return (
                RolloutPhase::Progressing,
                "old replicas are pending termination".to_string(),
            );
        }
        let stable = status.stable_rs.as_deref().unwrap_or_default();
        if stable.is_empty() || Some(stable) != status.current_pod_hash.as_deref() {
            return (
                RolloutPhase::Progressing,
                "waiting for all steps to complete".to_string(),
            );
        }
    }
    (RolloutPhase::Healthy, String::new())
}

/// `status.selector`: the label-selector string form (`a=b,c in (d,e)`), which `kubectl
/// scale` and the HPA use through the scale subresource.
pub use sluice_api::k8s::selector::to_string as format_selector;

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn t(s: i64) -> Time {
        Time(Timestamp::from_second(s).unwrap())
    }

    #[test]
    fn set_condition_keeps_transition_time_while_status_holds() {
        let mut c = Vec::new();
        assert!(set_condition(
            &mut c,
            RolloutConditionType::Progressing,
            TRUE,
            "A",
            "m".into(),
            &t(1)
        ));
        assert!(!set_condition(
            &mut c,
            RolloutConditionType::Progressing,
            TRUE,
            "A",
            "other".into(),
            &t(2)
        ));
        assert!(set_condition(
            &mut c,
            RolloutConditionType::Progressing,
            TRUE,
            "B",
            "m".into(),
            &t(3)
        ));
        assert_eq!(c[0].last_transition_time, t(1));
        assert_eq!(c[0].last_update_time, t(3));
        assert!(set_condition(
            &mut c,
            RolloutConditionType::Progressing,
            FALSE,
            "B",
            "m".into(),
            &t(4)
        ));
        assert_eq!(c[0].last_transition_time, t(4));
        assert_eq!(c.len(), 1);
    }

    fn cond(type_: RolloutConditionType, reason: &str, message: &str) -> RolloutCondition {
        RolloutCondition {
            type_,
            status: TRUE.into(),
            last_update_time: t(0),
            last_transition_time: t(0),
            reason: reason.into(),
            message: message.into(),
            observed_generation: None,
        }
    }

    /// One row per COMPAT §4 state, in its order of precedence.
    #[test]
    fn phase_and_message_follow_compat_order() {
        use sluice_api::rollout::{CanaryStrategy, PauseCondition, PauseReason, RolloutStrategy};
        let canary_spec = || RolloutSpec {
            replicas: Some(3),
            strategy: Some(RolloutStrategy {
                canary: Some(CanaryStrategy::default()),
                blue_green: None,
            }),
            ..Default::default()
        };
        // Healthy baseline: 3 updated, 3 available, stable = current.
        let healthy = || RolloutStatus {
            replicas: Some(3),
            updated_replicas: Some(3),
            available_replicas: Some(3),
            stable_rs: Some("abc".into()),
            current_pod_hash: Some("abc".into()),
            ..Default::default()
        };
        type Row = (
            &'static str,
            fn(&mut RolloutSpec, &mut RolloutStatus),
            RolloutPhase,
            &'static str,
        );
        let rows: Vec<Row> = vec![
            ("healthy", |_, _| {}, RolloutPhase::Healthy, ""),
            (
                "invalid spec beats everything",
                |sp, s| {
                    sp.paused = Some(true);
                    s.conditions = Some(vec![
                        cond(
                            RolloutConditionType::Progressing,
                            ROLLOUT_ABORTED_REASON,
                            "x",
                        ),
                        cond(
                            RolloutConditionType::InvalidSpec,
                            INVALID_SPEC_REASON,
                            "spec.selector: bad",
                        ),
                    ]);
                },
                RolloutPhase::Degraded,
                "InvalidSpec: spec.selector: bad",
            ),
            (
                "invalid spec",
                |_, s| {
                    s.conditions = Some(vec![cond(
                        RolloutConditionType::InvalidSpec,
                        INVALID_SPEC_REASON,
                        "spec.selector: bad",
                    )])
                },
                RolloutPhase::Degraded,
                "InvalidSpec: spec.selector: bad",
            ),
            (
                "aborted",
                |sp, s| {
                    sp.paused = Some(true);
                    s.conditions = Some(vec![cond(
                        RolloutConditionType::Progressing,
                        ROLLOUT_ABORTED_REASON,
                        "Rollout aborted update to revision 2",
                    )])
                },
                RolloutPhase::Degraded,
                "RolloutAborted: Rollout aborted update to revision 2",
            ),
            (
                "deadline exceeded",
                |_, s| {
                    s.conditions = Some(vec![cond(
                        RolloutConditionType::Progressing,
                        TIMED_OUT_REASON,
                        "ReplicaSet \"x\" has timed out progressing.",
                    )])
                },
                RolloutPhase::Degraded,
                "ProgressDeadlineExceeded: ReplicaSet \"x\" has timed out progressing.",
            ),
            (
                "user paused beats pause conditions",
                |sp, s| {
                    sp.paused = Some(true);
                    s.pause_conditions = Some(vec![PauseCondition {
                        reason: PauseReason::CanaryPauseStep,
                        start_time: t(0),
                    }]);
                },
                RolloutPhase::Paused,
                "manually paused",
            ),
            (
                "pause condition",
                |_, s| {
                    s.pause_conditions = Some(vec![PauseCondition {
                        reason: PauseReason::CanaryPauseStep,
                        start_time: t(0),
                    }])
                },
                RolloutPhase::Paused,
                "CanaryPauseStep",
            ),
            (
                "restart pending",
                |sp, s| {
                    sp.restart_at = Some(t(10));
                    s.updated_replicas = Some(0);
                },
                RolloutPhase::Progressing,
                "rollout is restarting",
            ),
            (
                "restart done",
                |sp, s| {
                    sp.restart_at = Some(t(10));
                    s.restarted_at = Some(t(10));
                },
                RolloutPhase::Healthy,
                "",
            ),
            (
                "updated < replicas",
                |_, s| s.updated_replicas = Some(2),
                RolloutPhase::Progressing,
                "more replicas need to be updated",
            ),
            (
                "available < updated",
                |_, s| s.available_replicas = Some(2),
                RolloutPhase::Progressing,
                "updated replicas are still becoming available",
            ),
            (
                "old replicas left",
                |_, s| s.replicas = Some(4),
                RolloutPhase::Progressing,
                "old replicas are pending termination",
            ),
            (
                "stable is not current",
                |_, s| s.stable_rs = Some("old".into()),
                RolloutPhase::Progressing,
                "waiting for all steps to complete",
            ),
            (
                "no stable yet",
                |_, s| s.stable_rs = None,
                RolloutPhase::Progressing,
                "waiting for all steps to complete",
            ),
        ];
        for (name, edit, phase_, message) in rows {
            let (mut sp, mut s) = (canary_spec(), healthy());
            edit(&mut sp, &mut s);
            assert_eq!(phase(&sp, &s), (phase_, message.to_string()), "{name}");
        }
    }

    /// The blue/green rows of COMPAT §4 after the replica checks: the cut-over, then the
    /// post-promotion wait, then Healthy.
    #[test]
    fn blue_green_phase_waits_for_the_cutover_and_then_the_post_promotion_analysis() {
        use sluice_api::common::AnalysisPhase;
        use sluice_api::rollout::{
            BlueGreenStatus, BlueGreenStrategy, RolloutAnalysis, RolloutAnalysisRunStatus,
            RolloutStrategy,
        };
        let spec = |post: bool| RolloutSpec {
            replicas: Some(3),
            strategy: Some(RolloutStrategy {
                canary: None,
                blue_green: Some(BlueGreenStrategy {
                    active_service: "active".into(),
                    post_promotion_analysis: post.then(RolloutAnalysis::default),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        };
        let status =
            |active: Option<&str>, stable: &str, post: Option<AnalysisPhase>| RolloutStatus {
                replicas: Some(6),
                updated_replicas: Some(3),
                available_replicas: Some(3),
                current_pod_hash: Some("new".into()),
                stable_rs: Some(stable.into()),
                blue_green: Some(BlueGreenStatus {
                    active_selector: active.map(str::to_string),
                    post_promotion_analysis_run_status: post.map(|status| {
                        RolloutAnalysisRunStatus {
                            name: "run".into(),
                            status,
                            message: None,
                        }
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            };
        let rows = [
            (
                false,
                status(None, "old", None),
                "active service cutover pending",
            ),
            (
                false,
                status(Some("old"), "old", None),
                "active service cutover pending",
            ),
            (
                true,
                status(Some("new"), "old", Some(AnalysisPhase::Running)),
                "waiting for analysis to complete",
            ),
            (
                true,
                status(Some("new"), "old", None),
                "waiting for analysis to complete",
            ),
            (
                true,
                status(Some("new"), "old", Some(AnalysisPhase::Successful)),
                "waiting for post-promotion verification to complete",
            ),
            (
                false,
                status(Some("new"), "old", None),
                "waiting for post-promotion verification to complete",
            ),
        ];
        for (post, s, message) in rows {
            assert_eq!(
                phase(&spec(post), &s),
                (RolloutPhase::Progressing, message.to_string()),
                "{s:?}"
            );
        }
        // Old replicas left over (scale-down delay) do not hold a switched, stable Rollout.
        let done = status(Some("new"), "new", Some(AnalysisPhase::Successful));
        assert_eq!(
            phase(&spec(true), &done),
            (RolloutPhase::Healthy, String::new())
        );
    }

    fn summary(status: &RolloutStatus, type_: RolloutConditionType) -> (String, String, String) {
        let c = condition(status.conditions(), &type_).expect("summary condition set");
        (c.status.clone(), c.reason.clone(), c.message.clone())
    }

    #[test]
    fn summary_conditions_follow_the_phase_and_carry_the_generation() {
        use crate::rollout::testing::{RolloutBuilder, Sim, pause, weight};
        let ro = RolloutBuilder::new("app:v1")
            .steps(vec![weight(20), pause()])
            .build();
        let mut sim = Sim::new(ro);
        sim.run_until_quiet(40);
        let st = sim.status().clone();
        assert_eq!(
            summary(&st, RolloutConditionType::Ready),
            (
                TRUE.into(),
                "Healthy".into(),
                ROLLOUT_HEALTHY_MESSAGE.into()
            )
        );
        assert_eq!(summary(&st, RolloutConditionType::Reconciling).0, FALSE);
        assert_eq!(summary(&st, RolloutConditionType::Stalled).0, FALSE);
        for c in st.conditions() {
            let summary_type = matches!(
                c.type_,
                RolloutConditionType::Ready
                    | RolloutConditionType::Reconciling
                    | RolloutConditionType::Stalled
            );
            // Upstream's conditions stay exactly upstream's: no extra field.
            assert_eq!(c.observed_generation.is_some(), summary_type, "{c:?}");
        }
        assert_eq!(
            condition(st.conditions(), &RolloutConditionType::Ready)
                .unwrap()
                .observed_generation,
            Some(1)
        );

        // A new template: the generation moves on, Ready goes False while it progresses
        // and says why it waits once paused.
        sim.set_image("app:v2");
        sim.run_until_quiet(40);
        let st = sim.status().clone();
        assert_eq!(st.phase, Some(RolloutPhase::Paused));
        let (ready, reason, message) = summary(&st, RolloutConditionType::Ready);
        assert_eq!((ready.as_str(), reason.as_str()), (FALSE, "Paused"));
        assert_eq!(Some(message), st.message);
        assert_eq!(
            summary(&st, RolloutConditionType::Reconciling),
            (TRUE.into(), "Paused".into(), st.message.clone().unwrap())
        );
        assert_eq!(
            condition(st.conditions(), &RolloutConditionType::Ready)
                .unwrap()
                .observed_generation,
            Some(2)
        );

        // Abort: Stalled with the abort message; the phase still reads Degraded.
        sim.obs.rollout.status.as_mut().unwrap().abort = Some(true);
        sim.run_until_quiet(40);
        let st = sim.status().clone();
        assert_eq!(st.phase, Some(RolloutPhase::Degraded));
        let (stalled, reason, message) = summary(&st, RolloutConditionType::Stalled);
        assert_eq!((stalled.as_str(), reason.as_str()), (TRUE, "Degraded"));
        assert!(message.starts_with("RolloutAborted: "), "{message}");
        assert_eq!(summary(&st, RolloutConditionType::Ready).0, FALSE);
        assert_eq!(summary(&st, RolloutConditionType::Reconciling).0, FALSE);
        // Retry: back to Reconciling, no longer Stalled.
        sim.obs.rollout.status.as_mut().unwrap().abort = Some(false);
        sim.reconcile();
        let st = sim.status().clone();
        assert_eq!(st.phase, Some(RolloutPhase::Progressing));
        assert_eq!(summary(&st, RolloutConditionType::Stalled).0, FALSE);
        assert_eq!(summary(&st, RolloutConditionType::Reconciling).0, TRUE);
    }

    #[test]
    fn summary_conditions_keep_their_transition_time_while_the_status_holds() {
        let mut status = RolloutStatus {
            phase: Some(RolloutPhase::Progressing),
            message: Some("more replicas need to be updated".into()),
            ..Default::default()
        };
        set_summary_conditions(&mut status, 3, &t(1));
        status.message = Some("updated replicas are still becoming available".into());
        set_summary_conditions(&mut status, 3, &t(5));
        let c = condition(status.conditions(), &RolloutConditionType::Reconciling).unwrap();
        assert_eq!(
            (c.last_transition_time.clone(), c.last_update_time.clone()),
            (t(1), t(5))
        );
        assert_eq!(c.message, "updated replicas are still becoming available");
        // Nothing changed: nothing is rewritten (no status write from a no-op reconcile).
        let before = status.clone();
        set_summary_conditions(&mut status, 3, &t(9));
        assert_eq!(status, before);
    }
}
