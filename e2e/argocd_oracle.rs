//! What GitOps tools see of a Rollout, as pure functions.
//!
//! Argo CD judges a Rollout with its built-in health script for `argoproj.io/Rollout` and acts
//! on it with built-in resource actions. Neither runs inside Sluice, so these functions restate
//! their observable behaviour (COMPAT §7, §11) for tests: the e2e suite feeds live Rollouts
//! through [`argocd_rollout_health`] at every stage and sends exactly the patches of
//! [`argocd_action_patches`], which keeps Sluice's status honest for a tool we cannot run here.

use serde_json::{Map, Value, json};

/// Message Argo CD shows while the controller has not caught up with the newest spec.
pub const GENERATION_NOT_OBSERVED: &str = "Waiting for rollout spec update to be observed";

/// Annotation upstream sets on a workloadRef Rollout: the referenced workload's generation.
pub const WORKLOAD_GENERATION_ANNOTATION: &str = "rollout.argoproj.io/workload-generation";

/// Argo CD's health statuses that a Rollout can map to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgoHealth {
    /// Done: the current pod template is fully rolled out.
    Healthy,
    /// Work in flight, or the controller has not seen the newest spec yet.
    Progressing,
    /// Waiting for a person (a pause step or `spec.paused`).
    Suspended,
    /// Aborted, invalid or out of time.
    Degraded,
    /// A phase the script does not know (or none at all).
    Unknown,
}

/// One verdict: status and the message Argo CD shows beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgoVerdict {
    /// The health status.
    pub status: ArgoHealth,
    /// The message shown in the UI.
    pub message: String,
}

impl ArgoVerdict {
    fn new(status: ArgoHealth, message: impl Into<String>) -> Self {
        ArgoVerdict {
            status,
            message: message.into(),
        }
    }
}

/// Argo CD's verdict on a Rollout object (as the API returns it).
///
/// Order, as COMPAT §11 describes it: no status → Progressing; `status.observedGeneration`
/// read as a number (it is a decimal string upstream; a JSON number also works) must equal
/// `metadata.generation`, and for a workloadRef Rollout the workload-generation annotation must
/// equal `status.workloadObservedGeneration`, else Progressing
/// [`GENERATION_NOT_OBSERVED`]; then `status.phase` decides, with `Paused` shown as Suspended,
/// and `status.message` as the message.
pub fn argocd_rollout_health(rollout: &Value) -> ArgoVerdict {
    let status = match rollout.get("status") {
        Some(s) if s.is_object() => s,
        _ => return ArgoVerdict::new(ArgoHealth::Progressing, GENERATION_NOT_OBSERVED),
    };
    let generation = rollout.pointer("/metadata/generation").and_then(as_number);
    let observed = status.get("observedGeneration").and_then(as_number);
    if observed.is_none() || observed != generation {
        return ArgoVerdict::new(ArgoHealth::Progressing, GENERATION_NOT_OBSERVED);
    }
    if rollout
        .pointer("/spec/workloadRef")
        .is_some_and(|w| !w.is_null())
    {
        let annotation = rollout
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(WORKLOAD_GENERATION_ANNOTATION))
            .unwrap_or(&Value::Null);
        let workload_observed = status
            .get("workloadObservedGeneration")
            .unwrap_or(&Value::Null);
        if annotation != workload_observed {
            return ArgoVerdict::new(ArgoHealth::Progressing, GENERATION_NOT_OBSERVED);
        }
    }
    let message = status
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let health = match status.get("phase").and_then(Value::as_str) {
        Some("Healthy") => ArgoHealth::Healthy,
        Some("Progressing") => ArgoHealth::Progressing,
        Some("Paused") => ArgoHealth::Suspended,
        Some("Degraded") => ArgoHealth::Degraded,
        other => {
            return ArgoVerdict::new(
                ArgoHealth::Unknown,
                format!("unknown rollout phase {:?}", other.unwrap_or("")),
            );
        }
    };
    ArgoVerdict::new(health, message)
}

/// A number the way Lua's `tonumber` reads it from JSON: numbers as they are, strings parsed
/// after trimming whitespace.
fn as_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
}

/// Argo CD's built-in resource actions for `argoproj.io/Rollout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgoAction {
    /// Clear the pause conditions and `spec.paused`.
    Resume,
    /// Set `status.abort`.
    Abort,
    /// Clear `status.abort` and the analysis run statuses of the aborted attempt.
    Retry,
    /// Set `status.promoteFull`.
    PromoteFull,
    /// Set `spec.restartAt` to now.
    Restart,
    /// Set `spec.paused`.
    Pause,
}

/// Where a patch goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchTarget {
    /// The `/status` subresource.
    Status,
    /// The main resource.
    Main,
}

/// The JSON merge patches an Argo CD action sends for `rollout`, in order: Argo CD runs the
/// action's script on a copy of the object, diffs the result against the original as a merge
/// patch (removed keys become `null`), and sends the `status` part to `/status` and the rest to
/// the main resource. Actions that change nothing yield no patch. `now` is the instant
/// `restart` writes.
pub fn argocd_action_patches(
    action: ArgoAction,
    rollout: &Value,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<(PatchTarget, Value)> {
    let status = rollout.get("status").unwrap_or(&Value::Null);
    let mut status_patch = Map::new();
    let mut spec_patch = Map::new();
    match action {
        ArgoAction::Resume => {
            if status
                .get("pauseConditions")
                .and_then(Value::as_array)
                .is_some_and(|p| !p.is_empty())
            {
                status_patch.insert("pauseConditions".into(), Value::Null);
            }
            if rollout.pointer("/spec/paused") == Some(&Value::Bool(true)) {
                spec_patch.insert("paused".into(), Value::Bool(false));
            }
        }
        ArgoAction::Abort => {
            if status.get("abort") != Some(&Value::Bool(true)) {
                status_patch.insert("abort".into(), Value::Bool(true));
            }
        }
        ArgoAction::Retry => {
            // Only an aborted Rollout is retried; the statuses of the failed attempt's
            // analysis runs go with the abort flag.
            if status.get("abort") == Some(&Value::Bool(true)) {
                status_patch.insert("abort".into(), Value::Null);
                for (section, fields) in [
                    (
                        "canary",
                        [
                            "currentStepAnalysisRunStatus",
                            "currentBackgroundAnalysisRunStatus",
                        ],
                    ),
                    (
                        "blueGreen",
                        [
                            "prePromotionAnalysisRunStatus",
                            "postPromotionAnalysisRunStatus",
                        ],
                    ),
                ] {
                    let mut cleared = Map::new();
                    for field in fields {
                        if status
                            .get(section)
                            .and_then(|s| s.get(field))
                            .is_some_and(|v| !v.is_null())
                        {
                            cleared.insert(field.into(), Value::Null);
                        }
                    }
                    if !cleared.is_empty() {
                        status_patch.insert(section.into(), Value::Object(cleared));
                    }
                }
            }
        }
        ArgoAction::PromoteFull => {
            if !status.is_null() && status.get("promoteFull") != Some(&Value::Bool(true)) {
                status_patch.insert("promoteFull".into(), Value::Bool(true));
            }
        }
        ArgoAction::Restart => {
            spec_patch.insert(
                "restartAt".into(),
                Value::String(now.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
            );
        }
        ArgoAction::Pause => {
            if rollout.pointer("/spec/paused") != Some(&Value::Bool(true)) {
                spec_patch.insert("paused".into(), Value::Bool(true));
            }
        }
    }
    let mut patches = Vec::new();
    if !status_patch.is_empty() {
        patches.push((PatchTarget::Status, json!({ "status": status_patch })));
    }
    if !spec_patch.is_empty() {
        patches.push((PatchTarget::Main, json!({ "spec": spec_patch })));
    }
    patches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ro(generation: i64, status: Value) -> Value {
        json!({"metadata": {"generation": generation}, "spec": {}, "status": status})
    }

    fn verdict(status: ArgoHealth, message: &str) -> ArgoVerdict {
        ArgoVerdict::new(status, message)
    }

    #[test]
    fn health_follows_the_generation_contract_then_the_phase() {
        use ArgoHealth::*;
        let p = GENERATION_NOT_OBSERVED;
        let cases: Vec<(&str, Value, ArgoVerdict)> = vec![
            (
                "no status yet",
                json!({"metadata": {"generation": 1}, "spec": {}}),
                verdict(Progressing, p),
            ),
            ("null status", ro(1, Value::Null), verdict(Progressing, p)),
            (
                "status without observedGeneration",
                ro(1, json!({"phase": "Healthy"})),
                verdict(Progressing, p),
            ),
            (
                "an older generation observed",
                ro(3, json!({"observedGeneration": "2", "phase": "Healthy"})),
                verdict(Progressing, p),
            ),
            (
                "a non-numeric observedGeneration (upstream before v0.10 stored a hash)",
                ro(
                    3,
                    json!({"observedGeneration": "6c98b8764", "phase": "Healthy"}),
                ),
                verdict(Progressing, p),
            ),
            (
                "healthy, string generation",
                ro(3, json!({"observedGeneration": "3", "phase": "Healthy"})),
                verdict(Healthy, ""),
            ),
            (
                "a numeric observedGeneration is read too",
                ro(3, json!({"observedGeneration": 3, "phase": "Healthy"})),
                verdict(Healthy, ""),
            ),
            (
                "paused is suspended",
                ro(
                    2,
                    json!({"observedGeneration": "2", "phase": "Paused", "message": "CanaryPauseStep"}),
                ),
                verdict(Suspended, "CanaryPauseStep"),
            ),
            (
                "degraded with its message",
                ro(
                    2,
                    json!({"observedGeneration": "2", "phase": "Degraded", "message": "RolloutAborted: Rollout aborted update to revision 2"}),
                ),
                verdict(
                    Degraded,
                    "RolloutAborted: Rollout aborted update to revision 2",
                ),
            ),
            (
                "progressing",
                ro(
                    2,
                    json!({"observedGeneration": "2", "phase": "Progressing", "message": "more replicas need to be updated"}),
                ),
                verdict(Progressing, "more replicas need to be updated"),
            ),
            (
                "no phase",
                ro(2, json!({"observedGeneration": "2"})),
                verdict(Unknown, "unknown rollout phase \"\""),
            ),
        ];
        for (what, obj, want) in cases {
            assert_eq!(argocd_rollout_health(&obj), want, "{what}");
        }
    }

    #[test]
    fn workload_ref_rollouts_also_wait_for_the_workload_generation() {
        let obj = |annotation: Option<&str>, observed: Option<&str>| {
            let mut o = json!({
                "metadata": {"generation": 1, "annotations": {}},
                "spec": {"workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}},
                "status": {"observedGeneration": "1", "phase": "Healthy"}
            });
            if let Some(a) = annotation {
                o["metadata"]["annotations"][WORKLOAD_GENERATION_ANNOTATION] = json!(a);
            }
            if let Some(w) = observed {
                o["status"]["workloadObservedGeneration"] = json!(w);
            }
            o
        };
        let health = |a, w| argocd_rollout_health(&obj(a, w)).status;
        assert_eq!(health(Some("4"), Some("4")), ArgoHealth::Healthy);
        assert_eq!(health(Some("5"), Some("4")), ArgoHealth::Progressing);
        assert_eq!(health(Some("5"), None), ArgoHealth::Progressing);
        assert_eq!(health(None, None), ArgoHealth::Healthy);
        // Without workloadRef the annotation is not consulted.
        let mut plain = obj(Some("5"), Some("4"));
        plain["spec"] = json!({});
        assert_eq!(argocd_rollout_health(&plain).status, ArgoHealth::Healthy);
    }

    #[test]
    fn actions_send_the_documented_patches() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-29T08:30:05.123Z")
            .unwrap()
            .to_utc();
        let paused = json!({
            "spec": {"paused": true, "strategy": {"canary": {"steps": [{"pause": {}}]}}},
            "status": {"pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "x"}]}
        });
        let aborted = json!({
            "spec": {},
            "status": {"abort": true, "canary": {"currentStepAnalysisRunStatus": {"name": "a", "status": "Failed"}}}
        });
        let healthy = json!({"spec": {}, "status": {"phase": "Healthy"}});
        use ArgoAction::*;
        use PatchTarget::*;
        type Case<'a> = (ArgoAction, &'a Value, Vec<(PatchTarget, Value)>);
        let cases: Vec<Case> = vec![
            (
                Resume,
                &paused,
                vec![
                    (Status, json!({"status": {"pauseConditions": null}})),
                    (Main, json!({"spec": {"paused": false}})),
                ],
            ),
            (Resume, &healthy, vec![]),
            (
                Abort,
                &healthy,
                vec![(Status, json!({"status": {"abort": true}}))],
            ),
            (Abort, &aborted, vec![]),
            (
                Retry,
                &aborted,
                vec![(
                    Status,
                    json!({"status": {"abort": null, "canary": {"currentStepAnalysisRunStatus": null}}}),
                )],
            ),
            (Retry, &healthy, vec![]),
            (
                PromoteFull,
                &healthy,
                vec![(Status, json!({"status": {"promoteFull": true}}))],
            ),
            (
                Restart,
                &healthy,
                vec![(Main, json!({"spec": {"restartAt": "2026-11-29T08:30:05Z"}}))],
            ),
            (
                Pause,
                &healthy,
                vec![(Main, json!({"spec": {"paused": true}}))],
            ),
            (Pause, &paused, vec![]),
        ];
        for (action, obj, want) in cases {
            assert_eq!(argocd_action_patches(action, obj, now), want, "{action:?}");
        }
    }
}
