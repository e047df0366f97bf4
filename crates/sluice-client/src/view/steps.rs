//! The step list, each step in a few words, with where the Rollout is.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use sluice_api::rollout::{CanaryStep, Rollout};

use crate::actions::rules::update_in_flight;

/// Where a step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum StepState {
    Done,
    Current,
    Pending,
}

/// One step.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepView {
    pub index: usize,
    /// `setWeight`, `pause`, `analysis`, ...
    pub kind: &'static str,
    /// The step in a few words: `setWeight: 20`, `pause: 30s`, `analysis: success-rate`.
    pub text: String,
    pub state: StepState,
}

/// A step in a few words.
pub fn describe(step: &CanaryStep) -> (&'static str, String) {
    if let Some(w) = step.set_weight {
        return ("setWeight", format!("setWeight: {w}"));
    }
    if let Some(p) = &step.pause {
        return match &p.duration {
            None => ("pause", "pause".to_string()),
            Some(IntOrString::Int(s)) => ("pause", format!("pause: {s}s")),
            Some(IntOrString::String(s)) => ("pause", format!("pause: {s}")),
        };
    }
    if let Some(a) = &step.analysis {
        let names: Vec<&str> = a
            .templates
            .iter()
            .flatten()
            .filter_map(|t| t.template_name.as_deref())
            .collect();
        return ("analysis", format!("analysis: {}", names.join(", ")));
    }
    if let Some(e) = &step.experiment {
        let names: Vec<&str> = e.templates.iter().map(|t| t.name.as_str()).collect();
        let mut text = format!("experiment: {}", names.join(", "));
        if let Some(d) = &e.duration {
            text += &format!(" for {d}");
        }
        return ("experiment", text);
    }
    if let Some(s) = &step.set_canary_scale {
        let what = match (s.weight, s.replicas, s.match_traffic_weight) {
            (Some(w), _, _) => format!("weight {w}"),
            (_, Some(r), _) => format!("replicas {r}"),
            _ => "matchTrafficWeight".to_string(),
        };
        return ("setCanaryScale", format!("setCanaryScale: {what}"));
    }
    if step.set_header_route.is_some() {
        return ("setHeaderRoute", "setHeaderRoute".to_string());
    }
    if step.set_mirror_route.is_some() {
        return ("setMirrorRoute", "setMirrorRoute".to_string());
    }
    if let Some(p) = &step.plugin {
        return ("plugin", format!("plugin: {}", p.name));
    }
    ("unknown", "(empty step)".to_string())
}

/// The steps with their state: before the current index done, at it current (while an
/// update is in flight), after it pending; all done when no update is in flight.
pub fn steps(rollout: &Rollout) -> Vec<StepView> {
    let steps = rollout.spec.steps();
    let status = rollout.status.as_ref();
    let in_flight = status.is_some_and(update_in_flight);
    let current = status
        .and_then(|s| s.current_step_index)
        .map(|i| i.max(0) as usize)
        .unwrap_or(if in_flight { 0 } else { steps.len() });
    steps
        .iter()
        .enumerate()
        .map(|(index, step)| {
            let (kind, text) = describe(step);
            let state = if !in_flight || index < current {
                StepState::Done
            } else if index == current {
                StepState::Current
            } else {
                StepState::Pending
            };
            StepView {
                index,
                kind,
                text,
                state,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn steps_read_in_a_few_words() {
        let steps: Vec<CanaryStep> = serde_json::from_value(json!([
            {"setWeight": 20}, {"pause": {}}, {"pause": {"duration": 30}}, {"pause": {"duration": "1m"}},
            {"analysis": {"templates": [{"templateName": "success-rate"}, {"templateName": "latency"}]}},
            {"experiment": {"templates": [{"name": "a", "specRef": "canary"}], "duration": "5m"}},
            {"setCanaryScale": {"replicas": 2}}
        ]))
        .unwrap();
        let text: Vec<String> = steps.iter().map(|s| describe(s).1).collect();
        assert_eq!(
            text,
            [
                "setWeight: 20",
                "pause",
                "pause: 30s",
                "pause: 1m",
                "analysis: success-rate, latency",
                "experiment: a for 5m",
                "setCanaryScale: replicas 2"
            ]
        );
    }

    #[test]
    fn the_current_step_is_marked_only_while_an_update_is_in_flight() {
        let ro = |status| -> Rollout {
            serde_json::from_value(json!({
                "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
                "spec": {"strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 50}]}}},
                "status": status
            }))
            .unwrap()
        };
        let states = |r: &Rollout| steps(r).iter().map(|s| s.state).collect::<Vec<_>>();
        use StepState::*;
        assert_eq!(
            states(&ro(
                json!({"currentStepIndex": 1, "currentPodHash": "b", "stableRS": "a"})
            )),
            [Done, Current, Pending]
        );
        assert_eq!(
            states(&ro(
                json!({"currentStepIndex": 3, "currentPodHash": "a", "stableRS": "a"})
            )),
            [Done, Done, Done]
        );
    }
}
