//! The phase a reader should trust: the controller's `status.phase`, unless the status is
//! older than the spec (upstream's `GetRolloutPhase`, which Argo CD's health check also
//! applies). Right after `set image` the old status still says Healthy; `status --watch`
//! and the dashboard must not believe it.

use sluice_api::common::WORKLOAD_GENERATION_ANNOTATION;
use sluice_api::rollout::Rollout;

/// What a stale status is reported as (upstream's words).
pub const WAITING_FOR_SPEC: &str = "waiting for rollout spec update to be observed";

/// Healthy, Progressing, Paused or Degraded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Phase {
    Healthy,
    Progressing,
    Paused,
    Degraded,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Healthy => "Healthy",
            Phase::Progressing => "Progressing",
            Phase::Paused => "Paused",
            Phase::Degraded => "Degraded",
        }
    }

    /// Whether `status --watch` stops here.
    pub fn is_final(self) -> bool {
        matches!(self, Phase::Healthy | Phase::Degraded)
    }
}

/// The phase and message of `rollout` as a reader should take them.
pub fn observed_phase(rollout: &Rollout) -> (Phase, String) {
    let Some(status) = rollout.status.as_ref() else {
        return (Phase::Progressing, WAITING_FOR_SPEC.to_string());
    };
    let generation = rollout.metadata.generation.unwrap_or(0);
    let observed = status
        .observed_generation
        .as_deref()
        .and_then(|g| g.parse::<i64>().ok());
    if observed != Some(generation) {
        return (Phase::Progressing, WAITING_FOR_SPEC.to_string());
    }
    if rollout.spec.workload_ref.is_some() {
        let wanted = rollout
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(WORKLOAD_GENERATION_ANNOTATION));
        if wanted.is_some() && wanted != status.workload_observed_generation.as_ref() {
            return (Phase::Progressing, WAITING_FOR_SPEC.to_string());
        }
    }
    let message = status.message.clone().unwrap_or_default();
    let phase = match status.phase.as_ref().map(|p| p.as_str()) {
        Some("Healthy") => Phase::Healthy,
        Some("Paused") => Phase::Paused,
        Some("Degraded") => Phase::Degraded,
        _ => Phase::Progressing,
    };
    (phase, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ro(generation: i64, status: serde_json::Value) -> Rollout {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web", "generation": generation},
            "spec": {}, "status": status
        }))
        .unwrap()
    }

    #[test]
    fn a_status_older_than_the_spec_is_not_believed() {
        let stale = ro(3, json!({"observedGeneration": "2", "phase": "Healthy"}));
        assert_eq!(
            observed_phase(&stale),
            (Phase::Progressing, WAITING_FOR_SPEC.to_string())
        );
        let fresh = ro(3, json!({"observedGeneration": "3", "phase": "Healthy"}));
        assert_eq!(observed_phase(&fresh), (Phase::Healthy, String::new()));
        let aborted = ro(
            3,
            json!({"observedGeneration": "3", "phase": "Degraded", "message": "RolloutAborted: x"}),
        );
        assert_eq!(
            observed_phase(&aborted),
            (Phase::Degraded, "RolloutAborted: x".to_string())
        );
    }

    #[test]
    fn a_rollout_without_status_is_progressing() {
        let mut r = ro(1, json!({}));
        r.status = None;
        assert_eq!(observed_phase(&r).0, Phase::Progressing);
    }
}
