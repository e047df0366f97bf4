//! One line per Rollout: `list rollouts` and the dashboard's overview.

use serde::Serialize;

use crate::phase::Phase;
use crate::view::RolloutView;

/// The overview of one Rollout.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSummary {
    pub namespace: String,
    pub name: String,
    pub strategy: &'static str,
    pub phase: Phase,
    pub message: String,
    /// `1/4`, or `-` without steps.
    pub step: String,
    pub set_weight: Option<i32>,
    pub actual_weight: Option<i32>,
    pub desired: i32,
    pub current: i32,
    pub updated: i32,
    pub ready: i32,
    pub available: i32,
    pub images: Vec<String>,
    pub created: Option<String>,
}

/// The summary of a Rollout's view.
pub fn summary(view: &RolloutView) -> RolloutSummary {
    RolloutSummary {
        namespace: view.namespace.clone(),
        name: view.name.clone(),
        strategy: view.strategy,
        phase: view.phase,
        message: view.message.clone(),
        step: match view.step_index {
            Some(i) if !view.steps.is_empty() => format!("{i}/{}", view.steps.len()),
            _ => "-".to_string(),
        },
        set_weight: view.set_weight,
        actual_weight: view.actual_weight,
        desired: view.replicas.desired,
        current: view.replicas.current,
        updated: view.replicas.updated,
        ready: view.replicas.ready,
        available: view.replicas.available,
        images: view.images.iter().map(|i| i.image.clone()).collect(),
        created: view.created.clone(),
    }
}

/// The summary of a Rollout that does not decode: listed, Degraded, naming the field.
pub fn undecodable(namespace: &str, name: &str, message: &str) -> RolloutSummary {
    RolloutSummary {
        namespace: namespace.to_string(),
        name: name.to_string(),
        strategy: "-",
        phase: Phase::Degraded,
        message: format!("cannot be read: {message}"),
        step: "-".into(),
        set_weight: None,
        actual_weight: None,
        desired: 0,
        current: 0,
        updated: 0,
        ready: 0,
        available: 0,
        images: Vec::new(),
        created: None,
    }
}
