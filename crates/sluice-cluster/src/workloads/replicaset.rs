//! The ReplicaSet controller (apps/v1): keeps `spec.replicas` Pods from the template alive
//! and reports how many are ready and available.
//!
//! Behaviour follows kube-controller-manager: Pods are named `<rs>-<5 random chars>` and
//! carry the template's labels and a controller owner reference to the ReplicaSet; surplus
//! Pods are deleted cheapest-first (pending, then not ready, then most recently ready,
//! newest); finished Pods and Pods being deleted do not count. A Pod is *available* once it
//! has been Ready for `spec.minReadySeconds`; the controller re-checks at exactly that
//! moment. `ReplicaFailure` (reason `FailedCreate`) is set while Pod creation fails.
//! Active orphan Pods (no controller) whose labels match the selector are adopted first:
//! the ReplicaSet becomes their controller, and counts are adjusted once that is visible.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::{
    ReplicaSet, ReplicaSetCondition, ReplicaSetSpec, ReplicaSetStatus,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use super::WorkloadsError;
use super::informer::{Cache, ObjectKey};
use super::pod_state::{available_at, controller_ref, deletion_order, is_active, is_ready};
use super::pod_writer::{self, BURST, Expectations, PodChange, pod_from_template};
use super::reflects::WriteMemo;
use super::status::{StatusBody, StatusWrite, changed_status, write_status};
use sluice_api::k8s::conditions as k8s_conditions;
use sluice_api::k8s::selector;
use sluice_api::k8s::time::to_time;

/// The ReplicaSet controller's decision.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub changes: Vec<PodChange>,
    /// The status to write, when it differs from the stored one.
    pub status: Option<ReplicaSetStatus>,
    /// When a ready Pod next becomes available, so the status is updated then.
    pub requeue_at: Option<DateTime<Utc>>,
}

/// Decides Pod creations/deletions/adoptions and the status of `rs` given the Pods it
/// controls and the orphan Pods of its namespace.
///
/// `manage` is false while earlier writes are not yet visible in the cache (then only the
/// status is computed); `create_failure` is the message of the last failed Pod creation.
pub fn plan(
    rs: &ReplicaSet,
    pods: &[Arc<Pod>],
    orphans: &[Arc<Pod>],
    now: DateTime<Utc>,
    manage: bool,
    create_failure: Option<&str>,
) -> Plan {
    if rs.metadata.deletion_timestamp.is_some() {
        return Plan {
            changes: Vec::new(),
            status: None,
            requeue_at: None,
        };
    }
    let spec = rs.spec.clone().unwrap_or_default();
    let active: Vec<&Pod> = pods
        .iter()
        .map(|p| p.as_ref())
        .filter(|p| is_active(p))
        .collect();
    let changes = if manage {
        pod_changes(rs, &spec, &active, orphans)
    } else {
        Vec::new()
    };
    let current = rs.status.clone().unwrap_or_default();
    let (status, requeue_at) = status_of(rs, &spec, &active, &current, now, create_failure);
    Plan {
        changes,
        status: changed_status(&current, status),
        requeue_at,
    }
}

/// Adoptions of matching orphans, else the creations or deletions that bring the active
/// Pods to `spec.replicas`.
fn pod_changes(
    rs: &ReplicaSet,
    spec: &ReplicaSetSpec,
    active: &[&Pod],
    orphans: &[Arc<Pod>],
) -> Vec<PodChange> {
    let mut changes = Vec::new();
    let desired = spec.replicas.unwrap_or(1).max(0) as usize;
    let adoptable: Vec<&Pod> = orphans
        .iter()
        .map(|p| p.as_ref())
        .filter(|p| is_active(p) && adopts(&spec.selector, p.labels()))
        .collect();
    if !adoptable.is_empty() {
        // Adopt first; sizing waits until the adopted Pods show up as owned.
        let owner = controller_ref("apps/v1", "ReplicaSet", &rs.metadata);
        for p in adoptable {
            let mut refs = p.metadata.owner_references.clone().unwrap_or_default();
            refs.push(owner.clone());
            changes.push(PodChange::Adopt {
                name: p.name_any(),
                owner_references: refs,
            });
        }
    } else if active.len() < desired {
        let owner = controller_ref("apps/v1", "ReplicaSet", &rs.metadata);
        let ns = rs.namespace().unwrap_or_default();
        let prefix = format!("{}-", rs.name_any());
        let template = spec.template.clone().unwrap_or_default();
        for _ in 0..(desired - active.len()).min(BURST) {
            changes.push(PodChange::Create(Box::new(pod_from_template(
                &template,
                &ns,
                &prefix,
                owner.clone(),
                &[],
            ))));
        }
    } else if active.len() > desired {
        let mut doomed = active.to_vec();
        doomed.sort_by(|a, b| deletion_order(a, b));
        for p in doomed.iter().take(active.len() - desired) {
            changes.push(PodChange::Delete(p.name_any()));
        }
    }
    changes
}

/// The status the active Pods give, and when a ready Pod next becomes available.
fn status_of(
    rs: &ReplicaSet,
    spec: &ReplicaSetSpec,
    active: &[&Pod],
    current: &ReplicaSetStatus,
    now: DateTime<Utc>,
    create_failure: Option<&str>,
) -> (ReplicaSetStatus, Option<DateTime<Utc>>) {
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let template_labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let fully_labeled = active
        .iter()
        .filter(|p| {
            let labels = p.labels();
            template_labels
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
        })
        .count();
    let ready = active.iter().filter(|p| is_ready(p)).count();
    let avail_times: Vec<DateTime<Utc>> = active
        .iter()
        .filter_map(|p| available_at(p, min_ready))
        .collect();
    let available = avail_times.iter().filter(|t| **t <= now).count();
    let requeue_at = avail_times.iter().filter(|t| **t > now).min().copied();
    let conditions = conditions(current, create_failure, now);
    let status = ReplicaSetStatus {
        replicas: active.len() as i32,
        fully_labeled_replicas: Some(fully_labeled as i32),
        ready_replicas: Some(ready as i32),
        available_replicas: Some(available as i32),
        observed_generation: rs.metadata.generation,
        conditions: (!conditions.is_empty()).then_some(conditions),
        terminating_replicas: None,
    };
    (status, requeue_at)
}

/// The stored conditions with `ReplicaFailure` present exactly while Pod creation fails
/// (keeping its transition time while it keeps failing).
fn conditions(
    current: &ReplicaSetStatus,
    create_failure: Option<&str>,
    now: DateTime<Utc>,
) -> Vec<ReplicaSetCondition> {
    let mut conditions: Vec<ReplicaSetCondition> = current.conditions.clone().unwrap_or_default();
    match create_failure {
        Some(msg) => {
            k8s_conditions::set(
                &mut conditions,
                ReplicaSetCondition {
                    type_: "ReplicaFailure".into(),
                    status: "True".into(),
                    reason: Some("FailedCreate".into()),
                    message: Some(msg.to_string()),
                    last_transition_time: Some(to_time(now)),
                },
            );
        }
        None => {
            k8s_conditions::remove(&mut conditions, &"ReplicaFailure".to_string());
        }
    }
    conditions
}

/// Every field explicit, so zeros and removed conditions are written rather than skipped.
impl StatusBody for ReplicaSetStatus {
    fn patch_body(&self) -> Value {
        json!({
            "replicas": self.replicas,
            "fullyLabeledReplicas": self.fully_labeled_replicas.unwrap_or(0),
            "readyReplicas": self.ready_replicas.unwrap_or(0),
            "availableReplicas": self.available_replicas.unwrap_or(0),
            "observedGeneration": self.observed_generation,
            "conditions": self.conditions,
        })
    }
}

/// Shared state of the ReplicaSet controller.
pub struct Context {
    pub client: kube::Client,
    pub replicasets: Arc<Cache<ReplicaSet>>,
    pub pods: Arc<Cache<Pod>>,
    pub expectations: Expectations,
    /// Last Pod-creation failure per ReplicaSet, shown as `ReplicaFailure`.
    pub failures: Mutex<HashMap<ObjectKey, String>>,
    /// Status writes not yet seen in the cache.
    pub writes: WriteMemo,
}

/// Observes, plans and applies one ReplicaSet.
pub async fn reconcile(
    key: ObjectKey,
    ctx: Arc<Context>,
) -> Result<Option<Duration>, WorkloadsError> {
    let Some(rs) = ctx.replicasets.get(&key) else {
        ctx.expectations.forget(&key);
        ctx.writes.forget(&key);
        ctx.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        return Ok(None);
    };
    let pods = ctx
        .pods
        .owned_by(rs.metadata.uid.as_deref().unwrap_or_default());
    ctx.writes
        .seen(&key, rs.metadata.resource_version.as_deref());
    let orphans = ctx.pods.orphans_in(&key.namespace);
    let manage = ctx.expectations.satisfied(&key, &ctx.pods);
    let failure = ctx
        .failures
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        .cloned();
    let now = Utc::now();
    let mut decision = plan(&rs, &pods, &orphans, now, manage, failure.as_deref());
    let mut error = None;
    if !decision.changes.is_empty() {
        let changes = std::mem::take(&mut decision.changes);
        let (applied_error, new_failure) = apply_changes(&ctx, &key, changes).await;
        // The status reports the creation failure of this very pass, not the previous one.
        if new_failure != failure {
            decision = plan(&rs, &pods, &orphans, now, false, new_failure.as_deref());
        }
        error = applied_error;
    }
    if let Some(status) = &decision.status {
        let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &key.namespace);
        let written = write_status(&api, &ctx.writes, &key, &rs, status.patch_body()).await?;
        if written == StatusWrite::Gone {
            return Ok(None);
        }
    }
    if let Some(e) = error {
        return Err(e);
    }
    Ok(decision
        .requeue_at
        .map(|at| (at - now).to_std().unwrap_or(Duration::ZERO)))
}

/// Applies the Pod changes and keeps the record of failed creations up to date; returns the
/// write error and the creation failure now on record.
async fn apply_changes(
    ctx: &Context,
    key: &ObjectKey,
    changes: Vec<PodChange>,
) -> (Option<WorkloadsError>, Option<String>) {
    let had_creates = changes.iter().any(|c| matches!(c, PodChange::Create(_)));
    let applied = pod_writer::apply(&ctx.client, &key.namespace, changes).await;
    ctx.expectations
        .expect(key, &applied.created, &applied.deleted);
    let mut failures = ctx.failures.lock().unwrap_or_else(|e| e.into_inner());
    match &applied.error {
        Some(e) if had_creates => {
            failures.insert(key.clone(), e.to_string());
        }
        None if had_creates => {
            failures.remove(key);
        }
        _ => {}
    }
    let new_failure = failures.get(key).cloned();
    drop(failures);
    (applied.error, new_failure)
}

/// Whether a ReplicaSet with `selector` may adopt an orphan Pod with `labels`: the selector
/// must match, and an empty or invalid one adopts nothing. The API server never stores such a
/// selector on a ReplicaSet; refusing here too means a controller can never take every Pod of
/// a namespace by accident.
pub fn adopts(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    !selector::is_empty(selector) && selector::matches(Some(selector), labels).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::super::pod_state::fixtures::*;
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSetSpec;
    use k8s_openapi::api::core::v1::PodTemplateSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

    fn rs(replicas: i32, min_ready: i32) -> ReplicaSet {
        let labels: std::collections::BTreeMap<String, String> =
            [("app".to_string(), "web".to_string())].into();
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some("web-abc".into()),
                namespace: Some("ns".into()),
                uid: Some("rs-uid".into()),
                generation: Some(4),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                min_ready_seconds: Some(min_ready),
                selector: LabelSelector {
                    match_labels: Some(labels.clone()),
                    ..Default::default()
                },
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels),
                        ..Default::default()
                    }),
                    spec: None,
                }),
            }),
            status: None,
        }
    }

    fn labeled(mut p: Pod) -> Pod {
        p.metadata.labels = Some([("app".to_string(), "web".to_string())].into());
        p
    }

    fn creates(p: &Plan) -> usize {
        p.changes
            .iter()
            .filter(|c| matches!(c, PodChange::Create(_)))
            .count()
    }

    fn deletes(p: &Plan) -> Vec<String> {
        p.changes
            .iter()
            .filter_map(|c| match c {
                PodChange::Delete(n) => Some(n.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn golden_creates_and_deletes() {
        let p = |name: &str, created: i64| Arc::new(pod(name, "rs-uid", created));
        let r = |name: &str, created: i64, since: i64| {
            Arc::new(ready(pod(name, "rs-uid", created), since))
        };
        // (case, spec.replicas, owned pods, creations, deletions in order)
        type Case<'a> = (&'a str, i32, Vec<Arc<Pod>>, usize, Vec<&'a str>);
        let cases: Vec<Case> = vec![
            ("empty rs creates all", 3, vec![], 3, vec![]),
            ("partial rs creates the rest", 3, vec![p("a", 0)], 2, vec![]),
            (
                "exact count does nothing",
                2,
                vec![p("a", 0), p("b", 0)],
                0,
                vec![],
            ),
            (
                "zero replicas deletes all",
                0,
                vec![r("a", 0, 1), p("b", 0)],
                0,
                vec!["b", "a"],
            ),
            (
                "surplus deletes pending before ready",
                1,
                vec![r("a", 0, 1), p("b", 5)],
                0,
                vec!["b"],
            ),
            (
                "surplus deletes the newest ready",
                1,
                vec![r("a", 0, 1), r("b", 5, 6)],
                0,
                vec!["b"],
            ),
            (
                "terminating pods are replaced",
                2,
                vec![r("a", 0, 1), Arc::new(deleting(pod("b", "rs-uid", 0)))],
                1,
                vec![],
            ),
            (
                "failed and succeeded pods are replaced",
                2,
                vec![
                    Arc::new(with_phase(pod("a", "rs-uid", 0), "Failed")),
                    Arc::new(with_phase(pod("b", "rs-uid", 0), "Succeeded")),
                ],
                2,
                vec![],
            ),
            ("creation is capped per pass", 2000, vec![], BURST, vec![]),
        ];
        for (name, replicas, pods, want_creates, want_deletes) in cases {
            let plan = plan(&rs(replicas, 0), &pods, &[], t(10), true, None);
            assert_eq!(creates(&plan), want_creates, "{name}");
            assert_eq!(deletes(&plan), want_deletes, "{name}");
        }
    }

    #[test]
    fn created_pods_carry_template_labels_owner_and_name_prefix() {
        let plan = plan(&rs(1, 0), &[], &[], t(0), true, None);
        let PodChange::Create(pod) = &plan.changes[0] else {
            panic!("expected a create");
        };
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("web-abc-"));
        assert_eq!(pod.labels().get("app").map(String::as_str), Some("web"));
        let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (
                owner.kind.as_str(),
                owner.uid.as_str(),
                owner.controller,
                owner.block_owner_deletion
            ),
            ("ReplicaSet", "rs-uid", Some(true), Some(true))
        );
    }

    #[test]
    fn unmet_expectations_freeze_pod_counts() {
        let plan = plan(&rs(3, 0), &[], &[], t(0), false, None);
        assert!(plan.changes.is_empty());
    }

    #[test]
    fn status_counts_ready_available_and_fully_labeled() {
        let pods = vec![
            Arc::new(labeled(ready(pod("a", "rs-uid", 0), 0))),
            Arc::new(labeled(ready(pod("b", "rs-uid", 0), 8))),
            Arc::new(with_phase(pod("c", "rs-uid", 0), "Running")),
            Arc::new(deleting(labeled(ready(pod("d", "rs-uid", 0), 0)))),
        ];
        let plan = plan(&rs(3, 5), &pods, &[], t(10), true, None);
        let s = plan.status.expect("status changes");
        assert_eq!(
            (
                s.replicas,
                s.fully_labeled_replicas,
                s.ready_replicas,
                s.available_replicas,
                s.observed_generation
            ),
            (3, Some(2), Some(2), Some(1), Some(4))
        );
        // "b" has been ready since 8: available at 8 + 5 = 13.
        assert_eq!(plan.requeue_at, Some(t(13)));
    }

    #[test]
    fn unchanged_status_is_not_rewritten() {
        let pods = vec![Arc::new(ready(pod("a", "rs-uid", 0), 0))];
        let mut set = rs(1, 0);
        set.status = plan(&set, &pods, &[], t(10), true, None).status;
        assert_eq!(plan(&set, &pods, &[], t(10), true, None).status, None);
    }

    #[test]
    fn replica_failure_is_reported_and_cleared() {
        let mut set = rs(1, 0);
        let failing = plan(
            &set,
            &[],
            &[],
            t(0),
            true,
            Some("pods \"web\" is forbidden: quota"),
        );
        let status = failing.status.expect("status changes");
        let cond = &status.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (cond.type_.as_str(), cond.reason.as_deref()),
            ("ReplicaFailure", Some("FailedCreate"))
        );
        set.status = Some(status);
        let healed = plan(&set, &[], &[], t(1), true, None)
            .status
            .expect("status changes");
        assert_eq!(healed.conditions, None);
    }

    #[test]
    fn matching_orphans_are_adopted_before_anything_is_created() {
        let mut orphan = labeled(pod("stray", "", 0));
        orphan.metadata.owner_references = None;
        let mut other = pod("other", "", 0);
        other.metadata.owner_references = None;
        other.metadata.labels = Some([("app".to_string(), "api".to_string())].into());
        let orphans = [Arc::new(orphan), Arc::new(other)];
        let plan = plan(&rs(2, 0), &[], &orphans, t(0), true, None);
        assert_eq!(plan.changes.len(), 1, "{:?}", plan.changes);
        let PodChange::Adopt {
            name,
            owner_references,
        } = &plan.changes[0]
        else {
            panic!("expected an adoption");
        };
        assert_eq!(name, "stray");
        assert_eq!(owner_references[0].uid, "rs-uid");
        assert_eq!(owner_references[0].controller, Some(true));
    }

    #[test]
    fn deleting_replicaset_is_left_alone() {
        let mut set = rs(3, 0);
        set.metadata.deletion_timestamp = Some(to_time(t(0)));
        assert_eq!(
            plan(&set, &[], &[], t(1), true, None),
            Plan {
                changes: vec![],
                status: None,
                requeue_at: None
            }
        );
    }

    #[test]
    fn an_empty_or_invalid_selector_adopts_nothing() {
        let web: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        let app = LabelSelector {
            match_labels: Some(web.clone()),
            ..Default::default()
        };
        assert!(adopts(&app, &web));
        assert!(!adopts(&LabelSelector::default(), &web));
        let invalid = LabelSelector {
            match_labels: Some(web.clone()),
            match_expressions: Some(vec![
                k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "Near".into(),
                    values: None,
                },
            ]),
        };
        assert!(!adopts(&invalid, &web));
    }
}
