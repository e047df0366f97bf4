//! Writes the API server refused, remembered until the next observation of their Rollout.
//!
//! The actuator stops a plan at its first failed change. When that change is a write the
//! plan needs (a ReplicaSet create or update, a Service selector, an AnalysisRun or
//! Experiment create) and the server refused it with a 4xx other than a conflict, the
//! reconcile records the refusal here; the next reconcile takes it into `Observed::refused`,
//! and the planner reports it on the Rollout (`sluice_engine::rollout::refusal`). The status
//! is never edited outside a plan.

use std::collections::HashMap;
use std::sync::Mutex;

use sluice_engine::rollout::refusal::{Refusal, Write};

use crate::error::ApiCallError;

/// Per-Rollout memory of the last refused write.
#[derive(Debug, Default)]
pub struct Refusals {
    last: Mutex<HashMap<String, Refusal>>,
}

impl Refusals {
    /// The keys anything is remembered for.
    pub fn keys(&self) -> Vec<String> {
        self.last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// Remember that the server refused `write` for the Rollout `key`, if `error` is a
    /// refusal: a 4xx that is not a conflict (409), a missing object (404), a throttle (429),
    /// a timeout (408) or an authentication failure (401). Returns whether it was one.
    pub fn record(&self, key: &str, write: Option<Write>, error: &ApiCallError) -> bool {
        let Some(write) = write else {
            return false;
        };
        let kube::Error::Api(status) = &error.source else {
            return false;
        };
        let refused = (400..500).contains(&status.code)
            && !matches!(status.code, 401 | 404 | 408 | 409 | 429);
        if refused {
            let mut map = self.last.lock().unwrap_or_else(|e| e.into_inner());
            map.insert(
                key.to_string(),
                Refusal {
                    write,
                    message: status.message.clone(),
                },
            );
        }
        refused
    }

    /// The refusal recorded for `key` since its last observation, handed to the planner once.
    pub fn take(&self, key: &str) -> Option<Refusal> {
        let mut map = self.last.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: u16) -> ApiCallError {
        ApiCallError::on("create", "replicaset ns/web-1")(kube::Error::Api(Box::new(
            kube::core::Status::failure("replicasets.apps \"web-1\" is forbidden: no", "Forbidden")
                .with_code(code),
        )))
    }

    fn write() -> Option<Write> {
        Some(Write::CreateReplicaSet {
            name: "web-1".into(),
        })
    }

    #[test]
    fn only_refusals_of_needed_writes_are_remembered_and_handed_over_once() {
        let r = Refusals::default();
        for code in [401, 404, 408, 409, 429, 500, 503] {
            assert!(!r.record("ns/web", write(), &failure(code)), "{code}");
        }
        assert!(
            !r.record("ns/web", None, &failure(422)),
            "not a needed write"
        );
        assert_eq!(r.take("ns/web"), None);
        for code in [400, 403, 422] {
            assert!(r.record("ns/web", write(), &failure(code)), "{code}");
        }
        assert_eq!(
            r.take("ns/web"),
            Some(Refusal {
                write: write().unwrap(),
                message: "replicasets.apps \"web-1\" is forbidden: no".into()
            })
        );
        assert_eq!(r.take("ns/web"), None, "handed to one plan only");
    }
}
