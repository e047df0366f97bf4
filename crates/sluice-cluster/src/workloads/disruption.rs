//! The disruption controller: computes every PodDisruptionBudget's status, as
//! kube-controller-manager's does, so the `pods/eviction` subresource can honour it.
//!
//! - `expectedPods`: with an integer `minAvailable`, the number of Pods the selector matches;
//!   otherwise (`maxUnavailable`, or a percentage) the replicas their controllers ask for (a
//!   ReplicaSet's, or its Deployment's when a Deployment owns it), each controller counted
//!   once.
//! - `desiredHealthy`: `minAvailable` (a percentage of `expectedPods`, rounded up), or
//!   `expectedPods − maxUnavailable` (a percentage rounded up), never below 0.
//! - `currentHealthy`: matching Pods that are Ready, not being deleted and not in
//!   `disruptedPods` (evictions the API server admitted whose deletion has not been seen yet;
//!   an entry is dropped once its Pod is being deleted, or after 2 minutes).
//! - `disruptionsAllowed`: `currentHealthy − desiredHealthy`, at least 0, and condition
//!   `DisruptionAllowed` True `SufficientPods` or False `InsufficientPods` (`SyncFailed` when
//!   a Pod's controller cannot be found for a scaled budget).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use sluice_api::k8s::time::{from_time, to_time};
use sluice_api::k8s::{conditions, intstr, selector};

use super::WorkloadsError;
use super::informer::{Cache, ObjectKey};
use super::pod_state::{controller_of, is_ready};
use super::reflects::WriteMemo;
use super::status::{StatusBody, changed_status};

/// How long an admitted eviction keeps its Pod out of `currentHealthy` without the Pod's
/// deletion being seen (the controller's `DeletionTimeout`).
pub const DELETION_TIMEOUT: Duration = Duration::from_secs(120);

/// The replicas a Pod's controller asks for, and that controller's UID.
pub trait Scales {
    fn scale_of(&self, pod: &Pod) -> Option<(String, i32)>;
}

/// The controller's decision for one budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub status: Option<PodDisruptionBudgetStatus>,
    /// When an entry of `disruptedPods` expires.
    pub wake_at: Option<DateTime<Utc>>,
}

fn matching<'a>(pdb: &PodDisruptionBudget, pods: &'a [Arc<Pod>]) -> Vec<&'a Pod> {
    let sel = pdb.spec.as_ref().and_then(|s| s.selector.as_ref());
    pods.iter()
        .map(Arc::as_ref)
        .filter(|p| {
            let labels = p.metadata.labels.clone().unwrap_or_default();
            selector::matches(sel, &labels).unwrap_or(false)
        })
        .collect()
}

/// (expectedPods, desiredHealthy), or why they cannot be known.
fn expectations(
    pdb: &PodDisruptionBudget,
    pods: &[&Pod],
    scales: &dyn Scales,
) -> Result<(i32, i32), String> {
    let spec = pdb.spec.clone().unwrap_or_default();
    let scaled = || -> Result<i32, String> {
        let mut seen = HashSet::new();
        let mut total = 0;
        for p in pods {
            let (uid, replicas) = scales.scale_of(p).ok_or_else(|| {
                format!(
                    "found no controllers for pod \"{}\"",
                    p.metadata.name.as_deref().unwrap_or_default()
                )
            })?;
            if seen.insert(uid) {
                total += replicas;
            }
        }
        Ok(total)
    };
    let count = |v: &IntOrString, total: i32| {
        intstr::resolve("spec", v, total, true).map_err(|e| e.to_string())
    };
    if let Some(max) = &spec.max_unavailable {
        let expected = scaled()?;
        let unavailable = count(max, expected)?;
        return Ok((expected, (expected - unavailable).max(0)));
    }
    match &spec.min_available {
        Some(IntOrString::Int(n)) => Ok((pods.len() as i32, *n)),
        Some(min @ IntOrString::String(_)) => {
            let expected = scaled()?;
            Ok((expected, count(min, expected)?))
        }
        None => Ok((0, 0)),
    }
}

fn condition(
    pdb: &PodDisruptionBudget,
    status: bool,
    reason: &str,
    message: String,
    now: DateTime<Utc>,
) -> Condition {
    let previous = pdb
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let status = if status { "True" } else { "False" };
    let kind = "DisruptionAllowed".to_string();
    Condition {
        last_transition_time: conditions::transition_time(&previous, &kind, status, to_time(now)),
        message,
        observed_generation: pdb.metadata.generation,
        reason: reason.into(),
        status: status.into(),
        type_: kind,
    }
}

/// The status `pdb` should have, given the namespace's Pods, at `now`.
pub fn plan(
    pdb: &PodDisruptionBudget,
    namespace_pods: &[Arc<Pod>],
    scales: &dyn Scales,
    now: DateTime<Utc>,
) -> Decision {
    let current = pdb.status.clone().unwrap_or_default();
    let pods = matching(pdb, namespace_pods);
    let mut status = PodDisruptionBudgetStatus {
        observed_generation: pdb.metadata.generation,
        ..current.clone()
    };
    let (expected, desired) = match expectations(pdb, &pods, scales) {
        Ok(e) => e,
        Err(message) => {
            status.disruptions_allowed = 0;
            status.conditions = Some(vec![condition(pdb, false, "SyncFailed", message, now)]);
            return Decision {
                status: changed_status(&current, status),
                wake_at: None,
            };
        }
    };
    // Admitted evictions whose Pod is not being deleted yet, for at most DELETION_TIMEOUT.
    let timeout = chrono::Duration::from_std(DELETION_TIMEOUT).unwrap_or_default();
    let mut disrupted = BTreeMap::new();
    let mut wake_at: Option<DateTime<Utc>> = None;
    for (name, at) in current.disrupted_pods.clone().unwrap_or_default() {
        let Some(pod) = pods
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(name.as_str()))
        else {
            continue;
        };
        let expires = from_time(&at) + timeout;
        if pod.metadata.deletion_timestamp.is_some() || expires <= now {
            continue;
        }
        wake_at = Some(wake_at.map_or(expires, |w| w.min(expires)));
        disrupted.insert(name, at);
    }
    let healthy = pods
        .iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && is_ready(p)
                && !disrupted.contains_key(p.metadata.name.as_deref().unwrap_or_default())
        })
        .count() as i32;
    let allowed = (healthy - desired).max(0);
    status.expected_pods = expected;
    status.desired_healthy = desired;
    status.current_healthy = healthy;
    status.disruptions_allowed = allowed;
    status.disrupted_pods = (!disrupted.is_empty()).then_some(disrupted);
    let (ok, reason) = if allowed > 0 {
        (true, "SufficientPods")
    } else {
        (false, "InsufficientPods")
    };
    status.conditions = Some(vec![condition(pdb, ok, reason, String::new(), now)]);
    Decision {
        status: changed_status(&current, status),
        wake_at,
    }
}

impl StatusBody for PodDisruptionBudgetStatus {
    fn patch_body(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        // The whole map is the controller's: a merge patch must be able to remove entries.
        v["disruptedPods"] = match &self.disrupted_pods {
            Some(m) => serde_json::to_value(m).unwrap_or_default(),
            None => Value::Null,
        };
        v
    }
}

/// The caches the controller reads.
pub struct Context {
    pub client: kube::Client,
    pub budgets: Arc<Cache<PodDisruptionBudget>>,
    pub pods: Arc<Cache<Pod>>,
    pub replicasets: Arc<Cache<ReplicaSet>>,
    pub deployments: Arc<Cache<Deployment>>,
    pub writes: WriteMemo,
}

impl Scales for Context {
    fn scale_of(&self, pod: &Pod) -> Option<(String, i32)> {
        let owner = controller_of(&pod.metadata)?;
        if owner.kind != "ReplicaSet" {
            return None;
        }
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let rs = self
            .replicasets
            .get(&ObjectKey::new(ns.clone(), owner.name.clone()))
            .filter(|rs| rs.metadata.uid.as_deref() == Some(owner.uid.as_str()))?;
        if let Some(d) = controller_of(&rs.metadata).filter(|d| d.kind == "Deployment") {
            let deploy = self.deployments.get(&ObjectKey::new(ns, d.name.clone()))?;
            let replicas = deploy.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            return Some((d.uid.clone(), replicas));
        }
        let replicas = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        Some((owner.uid.clone(), replicas))
    }
}

/// Reconciles one budget: compute, write when changed, wake when a disruption expires.
pub async fn reconcile(
    key: ObjectKey,
    ctx: Arc<Context>,
) -> Result<Option<Duration>, WorkloadsError> {
    let Some(pdb) = ctx.budgets.get(&key) else {
        ctx.writes.forget(&key);
        return Ok(None);
    };
    ctx.writes
        .seen(&key, pdb.metadata.resource_version.as_deref());
    let now = Utc::now();
    let pods = ctx.pods.in_namespace(&key.namespace);
    let decision = plan(&pdb, &pods, ctx.as_ref(), now);
    if let Some(status) = decision.status {
        // Guarded by the resourceVersion the status was computed from, as the real controller
        // updates it: the eviction subresource writes this status too, and a budget it has
        // just spent must not be overwritten from a stale copy (the 409 brings the new one).
        let body = json!({
            "metadata": {"resourceVersion": pdb.metadata.resource_version},
            "status": status.patch_body(),
        });
        let api: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), &key.namespace);
        match api
            .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&body))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(decision
        .wake_at
        .map(|at| (at - now).to_std().unwrap_or(Duration::ZERO)))
}

/// Time helper for tests and the eviction subresource: `now` as the budget stores it.
pub fn stamp(now: DateTime<Utc>) -> Time {
    to_time(now)
}

#[cfg(test)]
mod tests {
    use super::super::pod_state::fixtures::{deleting, pod, ready, t};
    use super::*;
    use k8s_openapi::api::policy::v1::PodDisruptionBudgetSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

    struct Fixed(i32);
    impl Scales for Fixed {
        fn scale_of(&self, pod: &Pod) -> Option<(String, i32)> {
            controller_of(&pod.metadata).map(|o| (o.uid.clone(), self.0))
        }
    }

    fn labelled(p: Pod) -> Arc<Pod> {
        let mut p = p;
        p.metadata.labels = Some([("app".to_string(), "web".to_string())].into());
        Arc::new(p)
    }

    fn pdb(min: Option<IntOrString>, max: Option<IntOrString>) -> PodDisruptionBudget {
        PodDisruptionBudget {
            metadata: ObjectMeta {
                name: Some("web".into()),
                generation: Some(2),
                ..Default::default()
            },
            spec: Some(PodDisruptionBudgetSpec {
                min_available: min,
                max_unavailable: max,
                selector: Some(LabelSelector {
                    match_labels: Some([("app".to_string(), "web".to_string())].into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn numbers(d: &Decision) -> (i32, i32, i32, i32, String) {
        let s = d.status.clone().expect("a status");
        let c = &s.conditions.unwrap()[0];
        (
            s.expected_pods,
            s.desired_healthy,
            s.current_healthy,
            s.disruptions_allowed,
            format!("{} {}", c.status, c.reason),
        )
    }

    #[test]
    fn golden_budgets() {
        // Four pods of one ReplicaSet asking for 4; three Ready, one still starting.
        let pods: Vec<Arc<Pod>> = vec![
            labelled(ready(pod("a", "rs", 0), 1)),
            labelled(ready(pod("b", "rs", 0), 1)),
            labelled(ready(pod("c", "rs", 0), 1)),
            labelled(pod("d", "rs", 0)),
        ];
        let s = |v: &str| IntOrString::String(v.into());
        let cases = [
            (
                "minAvailable 2",
                pdb(Some(IntOrString::Int(2)), None),
                (4, 2, 3, 1, "True SufficientPods"),
            ),
            (
                "minAvailable 3",
                pdb(Some(IntOrString::Int(3)), None),
                (4, 3, 3, 0, "False InsufficientPods"),
            ),
            (
                "minAvailable 50%",
                pdb(Some(s("50%")), None),
                (4, 2, 3, 1, "True SufficientPods"),
            ),
            (
                "minAvailable 60% rounds up",
                pdb(Some(s("60%")), None),
                (4, 3, 3, 0, "False InsufficientPods"),
            ),
            (
                "maxUnavailable 1",
                pdb(None, Some(IntOrString::Int(1))),
                (4, 3, 3, 0, "False InsufficientPods"),
            ),
            (
                "maxUnavailable 30% rounds up",
                pdb(None, Some(s("30%"))),
                (4, 2, 3, 1, "True SufficientPods"),
            ),
            (
                "nothing set",
                pdb(None, None),
                (0, 0, 3, 3, "True SufficientPods"),
            ),
        ];
        for (name, budget, want) in cases {
            let got = numbers(&plan(&budget, &pods, &Fixed(4), t(10)));
            assert_eq!(
                got,
                (want.0, want.1, want.2, want.3, want.4.to_string()),
                "{name}"
            );
        }
    }

    #[test]
    fn admitted_evictions_count_until_their_pod_is_deleted_or_two_minutes_pass() {
        let pods = vec![
            labelled(ready(pod("a", "rs", 0), 1)),
            labelled(ready(pod("b", "rs", 0), 1)),
            labelled(deleting(ready(pod("c", "rs", 0), 1))),
        ];
        let mut budget = pdb(Some(IntOrString::Int(1)), None);
        budget.status = Some(PodDisruptionBudgetStatus {
            disrupted_pods: Some(
                [
                    ("a".to_string(), stamp(t(100))),
                    ("c".to_string(), stamp(t(100))),
                ]
                .into(),
            ),
            ..Default::default()
        });
        let d = plan(&budget, &pods, &Fixed(3), t(110));
        // a is disrupted (not healthy), c is being deleted: only b is healthy.
        assert_eq!(numbers(&d).2, 1);
        let s = d.status.unwrap();
        assert_eq!(s.disrupted_pods.unwrap().keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(d.wake_at, Some(t(220)));
        let later = plan(&budget, &pods, &Fixed(3), t(221));
        assert_eq!(numbers(&later).2, 2);
        assert_eq!(later.status.unwrap().disrupted_pods, None);
    }

    #[test]
    fn a_scaled_budget_without_a_controller_fails_to_sync() {
        let mut orphan = pod("a", "rs", 0);
        orphan.metadata.owner_references = None;
        let pods = vec![labelled(orphan)];
        let d = plan(
            &pdb(None, Some(IntOrString::Int(1))),
            &pods,
            &Fixed(1),
            t(0),
        );
        let c = d.status.unwrap().conditions.unwrap()[0].clone();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "SyncFailed")
        );
        assert_eq!(c.message, "found no controllers for pod \"a\"");
    }

    #[test]
    fn an_unchanged_status_is_not_written_again() {
        let pods = vec![labelled(ready(pod("a", "rs", 0), 1))];
        let mut budget = pdb(Some(IntOrString::Int(0)), None);
        let first = plan(&budget, &pods, &Fixed(1), t(5)).status.unwrap();
        budget.status = Some(first);
        assert_eq!(plan(&budget, &pods, &Fixed(1), t(50)).status, None);
    }
}
