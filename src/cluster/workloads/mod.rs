//! Simulated workload controllers and kubelet for the embedded cluster.
//!
//! An API server alone stores objects; nothing makes a ReplicaSet's Pods exist or a Pod
//! become Ready. In a real cluster kube-controller-manager and the kubelets do that. Here the
//! same job is done by ordinary kube-rs clients that talk to the API server over HTTP exactly
//! as those components would, so they work against the embedded server and a real one alike.
//!
//! Every controller has the same shape: observe (a shared, indexed watch cache per kind,
//! see [`informer`]) → decide (a pure `plan` function taking `now`, unit-tested with golden
//! tables) → act (the only code that writes). Timed re-checks (Pod readiness,
//! `minReadySeconds`, deadlines) go through a per-controller delay queue ([`queue`]); nothing
//! polls.
//!
//! The kubelet's lifecycle and failure conventions (`sluice.dev/simulate: never-ready` /
//! `crash-loop`, image tags `:never-ready` / `:crash-loop`, interpreted `exit N` / `sleep N`
//! commands) are documented in [`kubelet`] and in `docs/embedded-cluster.md`.

pub mod informer;
pub mod kubelet;
pub mod pod_state;
pub mod queue;
pub mod reflects;
pub mod script;

use std::time::Duration;

use thiserror::Error;

/// Tuning of the simulated cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Time from Running to Ready (and the run time of a Job container without `sleep`).
    pub pod_ready_delay: Duration,
    /// Time from first sight of a Pod to Running.
    pub pod_start_delay: Duration,
    /// Only objects in this namespace; `None` watches all namespaces.
    pub namespace: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            pod_ready_delay: Duration::from_millis(500),
            pod_start_delay: Duration::from_millis(200),
            namespace: None,
        }
    }
}

/// Why the workload controllers stopped or a reconcile failed.
#[derive(Debug, Error)]
pub enum WorkloadsError {
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("{object}: {message}")]
    Invalid { object: String, message: String },
    #[error("a reconcile task panicked: {0}")]
    Panicked(String),
}

pub(crate) fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}
