//! The Job controller (batch/v1): runs a Job's Pods to completion or failure, with the
//! Kubernetes 1.33 condition sequence.
//!
//! - Pods are named `<job>-<5 random chars>`, carry the template labels plus
//!   `batch.kubernetes.io/controller-uid`, `batch.kubernetes.io/job-name`, `controller-uid`
//!   and `job-name`, and a controller owner reference to the Job.
//! - Up to `parallelism` (default 1) Pods run at once until `completions` Pods succeeded
//!   (both unset: 1 and 1; only `parallelism` set: a work queue, done when a Pod succeeded
//!   and none is still running). Failed Pods are replaced at once (no back-off delay).
//! - Failure: more failed Pods than `backoffLimit` (default 6) — counting container restarts
//!   under `restartPolicy: OnFailure`, as upstream — or `activeDeadlineSeconds` exceeded.
//! - As in 1.31+: the Job first gets the interim condition (`SuccessCriteriaMet`, reason
//!   `CompletionsReached`, or `FailureTarget`, reason `BackoffLimitExceeded` /
//!   `DeadlineExceeded`), remaining Pods are deleted, and only once no Pod is running or
//!   terminating does it get `Complete` (with `completionTime`) or `Failed`.
//! - `spec.suspend` deletes running Pods and sets `Suspended`; resuming clears it.
//! - `status`: active, ready, succeeded, failed, terminating, startTime. Indexed completion
//!   mode, pod failure/success policies and pod finalizer tracking are not implemented.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobSpec, JobStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use super::WorkloadsError;
use super::informer::{Cache, ObjectKey};
use super::pod_state::{
    controller_ref, deletion_order, is_active, is_ready, is_terminal, is_terminating, phase,
    restart_count,
};
use super::pod_writer::{self, BURST, Expectations, PodChange, pod_from_template};
use super::reflects::WriteMemo;
use super::status::{StatusBody, StatusWrite, changed_status, write_status};
use sluice_api::k8s::conditions;
use sluice_api::k8s::time::{from_time, to_time};

/// The Job controller's decision.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub changes: Vec<PodChange>,
    /// The status to write, when it differs from the stored one.
    pub status: Option<JobStatus>,
    /// When `activeDeadlineSeconds` expires.
    pub requeue_at: Option<DateTime<Utc>>,
}

fn has_condition(conds: &[JobCondition], type_: &str) -> bool {
    conds.iter().any(|c| c.type_ == type_ && c.status == "True")
}

fn job_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: DateTime<Utc>,
) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(to_time(now)),
        last_transition_time: Some(to_time(now)),
    }
}

/// Decides Pod creations/deletions and the status of `job` given the Pods it controls.
/// `manage` is false while earlier Pod writes are not yet visible in the cache.
pub fn plan(job: &Job, pods: &[Arc<Pod>], now: DateTime<Utc>, manage: bool) -> Plan {
    let current = job.status.clone().unwrap_or_default();
    let mut conds = current.conditions.clone().unwrap_or_default();
    let idle = Plan {
        changes: Vec::new(),
        status: None,
        requeue_at: None,
    };
    if job.metadata.deletion_timestamp.is_some()
        || has_condition(&conds, "Complete")
        || has_condition(&conds, "Failed")
    {
        return idle;
    }
    let spec = job.spec.clone().unwrap_or_default();
    let shape = Shape::of(&spec);
    let active: Vec<&Pod> = pods
        .iter()
        .map(|p| p.as_ref())
        .filter(|p| is_active(p))
        .collect();
    let counts = Counts::of(pods, &active, &current, shape.on_failure);
    let start_time = current
        .start_time
        .clone()
        .or_else(|| (!shape.suspended).then(|| to_time(now)));
    let mut completion_time = current.completion_time.clone();
    let finishing = finishing(
        &mut conds,
        &shape,
        &counts,
        &active,
        start_time.as_ref(),
        now,
    );
    let mut changes = if let Some(interim) = finishing {
        let (deletes, completed) = finish(&mut conds, &interim, &active, counts.terminating, now);
        completion_time = completed.or(completion_time);
        deletes
    } else if shape.suspended {
        suspend(&mut conds, &active, now)
    } else {
        resume(&mut conds, now);
        run(job, &spec, &shape, &counts, &active, manage)
    };
    if !manage {
        changes.clear();
    }
    let requeue_at = deadline(&conds, &shape, start_time.as_ref());
    let status = JobStatus {
        start_time,
        completion_time,
        conditions: (!conds.is_empty()).then_some(conds),
        ..pod_counts(&active, &changes, &counts)
    };
    Plan {
        changes,
        status: changed_status(&current, status),
        requeue_at,
    }
}

/// What the Job's spec asks for, with upstream's defaults.
struct Shape {
    parallelism: i32,
    /// `None` for a work queue (only `parallelism` set).
    completions: Option<i32>,
    backoff_limit: i32,
    active_deadline_seconds: Option<i64>,
    on_failure: bool,
    suspended: bool,
}

impl Shape {
    fn of(spec: &JobSpec) -> Shape {
        Shape {
            parallelism: spec.parallelism.unwrap_or(1).max(0),
            completions: match (spec.completions, spec.parallelism) {
                (Some(c), _) => Some(c.max(0)),
                (None, None) => Some(1),
                (None, Some(_)) => None,
            },
            backoff_limit: spec.backoff_limit.unwrap_or(6).max(0),
            active_deadline_seconds: spec.active_deadline_seconds,
            on_failure: spec
                .template
                .spec
                .as_ref()
                .and_then(|s| s.restart_policy.as_deref())
                == Some("OnFailure"),
            suspended: spec.suspend == Some(true),
        }
    }
}

/// What the Job's Pods add up to.
struct Counts {
    terminating: i32,
    succeeded: i32,
    failed: i32,
    /// Container restarts of the active Pods; counted only under `OnFailure`.
    restarts: i32,
}

impl Counts {
    fn of(pods: &[Arc<Pod>], active: &[&Pod], current: &JobStatus, on_failure: bool) -> Counts {
        let count = |ph: &str| pods.iter().filter(|p| phase(p) == ph).count() as i32;
        Counts {
            terminating: pods
                .iter()
                .filter(|p| is_terminating(p) && !is_terminal(p))
                .count() as i32,
            // Pods may be deleted after they finished; the recorded counts never go down.
            succeeded: count("Succeeded").max(current.succeeded.unwrap_or(0)),
            failed: count("Failed").max(current.failed.unwrap_or(0)),
            restarts: if on_failure {
                active.iter().map(|p| restart_count(p)).sum()
            } else {
                0
            },
        }
    }
}

/// The interim condition the Job is finishing under: the one already recorded, or the one
/// reached now (backoff limit, deadline, completions), which is recorded in `conds`.
fn finishing(
    conds: &mut Vec<JobCondition>,
    shape: &Shape,
    counts: &Counts,
    active: &[&Pod],
    start_time: Option<&Time>,
    now: DateTime<Utc>,
) -> Option<JobCondition> {
    let recorded = conds
        .iter()
        .find(|c| {
            (c.type_ == "FailureTarget" || c.type_ == "SuccessCriteriaMet") && c.status == "True"
        })
        .cloned();
    if recorded.is_some() {
        return recorded;
    }
    let past_deadline = shape
        .active_deadline_seconds
        .zip(start_time)
        .is_some_and(|(secs, start)| from_time(start) + chrono::Duration::seconds(secs) <= now);
    // Under OnFailure, restarts of running Pods count against the limit (as upstream).
    let restarts_exceed = shape.on_failure
        && if shape.backoff_limit == 0 {
            counts.restarts > 0
        } else {
            counts.restarts >= shape.backoff_limit
        };
    let cond = if counts.failed > shape.backoff_limit || restarts_exceed {
        job_condition(
            "FailureTarget",
            "True",
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
            now,
        )
    } else if past_deadline {
        job_condition(
            "FailureTarget",
            "True",
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
            now,
        )
    } else if match shape.completions {
        Some(c) => counts.succeeded >= c,
        None => counts.succeeded > 0 && active.is_empty(),
    } {
        job_condition(
            "SuccessCriteriaMet",
            "True",
            "CompletionsReached",
            "Reached expected number of succeeded pods",
            now,
        )
    } else {
        return None;
    };
    conditions::set(conds, cond.clone());
    Some(cond)
}

/// A finishing Job deletes its remaining Pods; once none is running or terminating it gets
/// the final condition (`Complete` with its completion time, or `Failed`).
fn finish(
    conds: &mut Vec<JobCondition>,
    interim: &JobCondition,
    active: &[&Pod],
    terminating: i32,
    now: DateTime<Utc>,
) -> (Vec<PodChange>, Option<Time>) {
    let deletes = active
        .iter()
        .map(|p| PodChange::Delete(p.name_any()))
        .collect();
    let mut completion_time = None;
    if active.is_empty() && terminating == 0 {
        let final_type = if interim.type_ == "SuccessCriteriaMet" {
            completion_time = Some(to_time(now));
            "Complete"
        } else {
            "Failed"
        };
        conditions::set(
            conds,
            job_condition(
                final_type,
                "True",
                interim.reason.as_deref().unwrap_or_default(),
                interim.message.as_deref().unwrap_or_default(),
                now,
            ),
        );
    }
    (deletes, completion_time)
}

/// A suspended Job deletes its Pods.
fn suspend(conds: &mut Vec<JobCondition>, active: &[&Pod], now: DateTime<Utc>) -> Vec<PodChange> {
    conditions::set(
        conds,
        job_condition("Suspended", "True", "JobSuspended", "Job suspended", now),
    );
    active
        .iter()
        .map(|p| PodChange::Delete(p.name_any()))
        .collect()
}

/// A Job that was suspended records that it runs again.
fn resume(conds: &mut Vec<JobCondition>, now: DateTime<Utc>) {
    if has_condition(conds, "Suspended") {
        conditions::set(
            conds,
            job_condition("Suspended", "False", "JobResumed", "Job resumed", now),
        );
    }
}

/// When `activeDeadlineSeconds` expires for a Job not yet done.
fn deadline(
    conds: &[JobCondition],
    shape: &Shape,
    start_time: Option<&Time>,
) -> Option<DateTime<Utc>> {
    let done = has_condition(conds, "Complete") || has_condition(conds, "Failed");
    if done {
        return None;
    }
    shape
        .active_deadline_seconds
        .zip(start_time)
        .map(|(secs, start)| from_time(start) + chrono::Duration::seconds(secs))
}

/// A running Job creates or deletes Pods until `parallelism` (bounded by the completions
/// still missing) run at once.
fn run(
    job: &Job,
    spec: &JobSpec,
    shape: &Shape,
    counts: &Counts,
    active: &[&Pod],
    manage: bool,
) -> Vec<PodChange> {
    let mut changes = Vec::new();
    let wanted = match shape.completions {
        Some(c) => shape.parallelism.min(c - counts.succeeded).max(0),
        // A work queue after its first success: leave running Pods running.
        None if counts.succeeded > 0 => active.len() as i32,
        None => shape.parallelism,
    } as usize;
    if manage && active.len() < wanted {
        let owner = controller_ref("batch/v1", "Job", &job.metadata);
        let uid = job.metadata.uid.clone().unwrap_or_default();
        let name = job.name_any();
        let labels = [
            ("batch.kubernetes.io/controller-uid", uid.as_str()),
            ("batch.kubernetes.io/job-name", name.as_str()),
            ("controller-uid", uid.as_str()),
            ("job-name", name.as_str()),
        ];
        let ns = job.namespace().unwrap_or_default();
        for _ in 0..(wanted - active.len()).min(BURST) {
            changes.push(PodChange::Create(Box::new(pod_from_template(
                &spec.template,
                &ns,
                &format!("{name}-"),
                owner.clone(),
                &labels,
            ))));
        }
    } else if manage && active.len() > wanted {
        let mut doomed = active.to_vec();
        doomed.sort_by(|a, b| deletion_order(a, b));
        for p in doomed.iter().take(active.len() - wanted) {
            changes.push(PodChange::Delete(p.name_any()));
        }
    }
    changes
}

/// The Pod counters of the status once `changes` are applied: Pods this pass deletes count
/// as terminating, as upstream reports them, and Pods it creates as active.
fn pod_counts(active: &[&Pod], changes: &[PodChange], counts: &Counts) -> JobStatus {
    let deleted: Vec<&str> = changes
        .iter()
        .filter_map(|c| match c {
            PodChange::Delete(n) => Some(n.as_str()),
            PodChange::Create(_) | PodChange::Adopt { .. } => None,
        })
        .collect();
    let created = changes
        .iter()
        .filter(|c| matches!(c, PodChange::Create(_)))
        .count();
    let remaining: Vec<&&Pod> = active
        .iter()
        .filter(|p| !deleted.contains(&p.name_any().as_str()))
        .collect();
    JobStatus {
        active: Some((remaining.len() + created) as i32),
        ready: Some(remaining.iter().filter(|p| is_ready(p)).count() as i32),
        succeeded: Some(counts.succeeded),
        failed: Some(counts.failed),
        terminating: Some(counts.terminating + deleted.len() as i32),
        ..Default::default()
    }
}

/// The counters explicit, so zeros and removed conditions are written rather than skipped;
/// the fields this controller does not implement are left alone.
impl StatusBody for JobStatus {
    fn patch_body(&self) -> Value {
        json!({
            "active": self.active.unwrap_or(0),
            "ready": self.ready.unwrap_or(0),
            "succeeded": self.succeeded.unwrap_or(0),
            "failed": self.failed.unwrap_or(0),
            "terminating": self.terminating.unwrap_or(0),
            "startTime": self.start_time,
            "completionTime": self.completion_time,
            "conditions": self.conditions,
        })
    }
}

/// Shared state of the Job controller.
pub struct Context {
    pub client: kube::Client,
    pub jobs: Arc<Cache<Job>>,
    pub pods: Arc<Cache<Pod>>,
    pub expectations: Expectations,
    /// Status writes not yet seen in the cache.
    pub writes: WriteMemo,
}

/// Observes, plans and applies one Job.
pub async fn reconcile(
    key: ObjectKey,
    ctx: Arc<Context>,
) -> Result<Option<Duration>, WorkloadsError> {
    let Some(job) = ctx.jobs.get(&key) else {
        ctx.expectations.forget(&key);
        ctx.writes.forget(&key);
        return Ok(None);
    };
    let pods = ctx
        .pods
        .owned_by(job.metadata.uid.as_deref().unwrap_or_default());
    ctx.writes
        .seen(&key, job.metadata.resource_version.as_deref());
    let manage = ctx.expectations.satisfied(&key, &ctx.pods);
    let now = Utc::now();
    let decision = plan(&job, &pods, now, manage);
    let mut error = None;
    if !decision.changes.is_empty() {
        let applied = pod_writer::apply(&ctx.client, &key.namespace, decision.changes).await;
        ctx.expectations
            .expect(&key, &applied.created, &applied.deleted);
        error = applied.error;
    }
    if let Some(status) = &decision.status {
        let api: Api<Job> = Api::namespaced(ctx.client.clone(), &key.namespace);
        let written = write_status(&api, &ctx.writes, &key, &job, status.patch_body()).await?;
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

#[cfg(test)]
mod tests {
    use super::super::pod_state::fixtures::*;
    use super::*;
    use k8s_openapi::api::batch::v1::JobSpec;
    use k8s_openapi::api::core::v1::{ContainerStatus, PodSpec, PodStatus, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn job(completions: Option<i32>, parallelism: Option<i32>, backoff: i32) -> Job {
        Job {
            metadata: ObjectMeta {
                name: Some("pi".into()),
                namespace: Some("ns".into()),
                uid: Some("job-uid".into()),
                ..Default::default()
            },
            spec: Some(JobSpec {
                completions,
                parallelism,
                backoff_limit: Some(backoff),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some([("app".to_string(), "pi".to_string())].into()),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        restart_policy: Some("Never".into()),
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            status: None,
        }
    }

    fn on_failure(mut j: Job) -> Job {
        j.spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
            .restart_policy = Some("OnFailure".into());
        j
    }

    fn running(name: &str) -> Arc<Pod> {
        Arc::new(with_phase(pod(name, "job-uid", 0), "Running"))
    }
    fn succeeded(name: &str) -> Arc<Pod> {
        Arc::new(with_phase(pod(name, "job-uid", 0), "Succeeded"))
    }
    fn failed(name: &str) -> Arc<Pod> {
        Arc::new(with_phase(pod(name, "job-uid", 0), "Failed"))
    }
    fn restarted(name: &str, restarts: i32) -> Arc<Pod> {
        let mut p = with_phase(pod(name, "job-uid", 0), "Running");
        p.status
            .get_or_insert_with(PodStatus::default)
            .container_statuses = Some(vec![ContainerStatus {
            name: "main".into(),
            restart_count: restarts,
            ..Default::default()
        }]);
        Arc::new(p)
    }

    /// (creates, deletes, conditions that are True, in order)
    type Outcome = (usize, usize, Vec<String>);

    fn outcome(p: &Plan) -> Outcome {
        let creates = p
            .changes
            .iter()
            .filter(|c| matches!(c, PodChange::Create(_)))
            .count();
        let conds = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c.status == "True")
            .map(|c| c.type_)
            .collect();
        (creates, p.changes.len() - creates, conds)
    }

    fn conds(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn golden_job_outcomes() {
        let cases: Vec<(&str, Job, Vec<Arc<Pod>>, Outcome)> = vec![
            (
                "a new job starts one pod",
                job(None, None, 6),
                vec![],
                (1, 0, conds(&[])),
            ),
            (
                "parallelism caps running pods",
                job(Some(5), Some(2), 6),
                vec![],
                (2, 0, conds(&[])),
            ),
            (
                "remaining completions cap running pods",
                job(Some(3), Some(2), 6),
                vec![succeeded("a"), succeeded("b"), running("c")],
                (0, 0, conds(&[])),
            ),
            (
                "a failed pod is replaced within the backoff limit",
                job(Some(1), None, 1),
                vec![failed("a")],
                (1, 0, conds(&[])),
            ),
            (
                "success completes at once when nothing runs",
                job(Some(2), None, 6),
                vec![succeeded("a"), succeeded("b")],
                (0, 0, conds(&["SuccessCriteriaMet", "Complete"])),
            ),
            (
                "success first deletes lingering pods",
                job(Some(1), Some(2), 6),
                vec![succeeded("a"), running("b")],
                (0, 1, conds(&["SuccessCriteriaMet"])),
            ),
            (
                "too many failures fail the job",
                job(Some(1), None, 1),
                vec![failed("a"), failed("b")],
                (0, 0, conds(&["FailureTarget", "Failed"])),
            ),
            (
                "backoff limit 0 fails on the first failure",
                job(Some(1), None, 0),
                vec![failed("a")],
                (0, 0, conds(&["FailureTarget", "Failed"])),
            ),
            (
                "OnFailure restarts count toward the limit",
                on_failure(job(Some(1), None, 2)),
                vec![restarted("a", 2)],
                (0, 1, conds(&["FailureTarget"])),
            ),
            (
                "OnFailure restarts below the limit keep running",
                on_failure(job(Some(1), None, 2)),
                vec![restarted("a", 1)],
                (0, 0, conds(&[])),
            ),
            (
                "work queue waits for running pods after a success",
                job(None, Some(2), 6),
                vec![succeeded("a"), running("b")],
                (0, 0, conds(&[])),
            ),
            (
                "work queue completes when all stopped",
                job(None, Some(2), 6),
                vec![succeeded("a"), failed("b")],
                (0, 0, conds(&["SuccessCriteriaMet", "Complete"])),
            ),
        ];
        for (name, j, pods, want) in cases {
            assert_eq!(outcome(&plan(&j, &pods, t(0), true)), want, "{name}");
        }
    }

    #[test]
    fn job_pods_carry_job_labels_and_owner() {
        let p = plan(&job(None, None, 6), &[], t(0), true);
        let PodChange::Create(pod) = &p.changes[0] else {
            panic!("expected a create");
        };
        let labels = pod.labels();
        assert_eq!(labels.get("job-name").map(String::as_str), Some("pi"));
        assert_eq!(
            labels
                .get("batch.kubernetes.io/controller-uid")
                .map(String::as_str),
            Some("job-uid")
        );
        assert_eq!(labels.get("app").map(String::as_str), Some("pi"));
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("pi-"));
        let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.controller), ("Job", Some(true)));
        let status = p.status.unwrap();
        assert_eq!(
            (status.active, status.start_time),
            (Some(1), Some(to_time(t(0))))
        );
    }

    #[test]
    fn completion_waits_for_terminating_pods_then_sets_completion_time() {
        let mut j = job(Some(1), Some(2), 6);
        let first = plan(&j, &[succeeded("a"), running("b")], t(0), true);
        j.status = first.status;
        let terminating = Arc::new(deleting(with_phase(pod("b", "job-uid", 0), "Running")));
        let second = plan(&j, &[succeeded("a"), terminating], t(1), true);
        if let Some(s) = second.status {
            j.status = Some(s);
        }
        let has = |j: &Job, type_: &str| {
            has_condition(
                j.status.as_ref().unwrap().conditions.as_ref().unwrap(),
                type_,
            )
        };
        assert!(has(&j, "SuccessCriteriaMet") && !has(&j, "Complete"));
        let done = plan(&j, &[succeeded("a")], t(2), true);
        let status = done.status.unwrap();
        assert_eq!(status.completion_time, Some(to_time(t(2))));
        let complete = status
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Complete")
            .unwrap();
        assert_eq!(complete.reason.as_deref(), Some("CompletionsReached"));
    }

    #[test]
    fn active_deadline_fails_the_job_at_the_right_time() {
        let mut j = job(Some(1), None, 6);
        j.spec.as_mut().unwrap().active_deadline_seconds = Some(10);
        let start = plan(&j, &[], t(0), true);
        assert_eq!(start.requeue_at, Some(t(10)));
        j.status = start.status;
        let early = plan(&j, &[running("a")], t(9), true);
        assert_eq!(outcome(&early).2, conds(&[]));
        let late = plan(&j, &[running("a")], t(10), true);
        assert_eq!(outcome(&late), (0, 1, conds(&["FailureTarget"])));
        let reason = late.status.unwrap().conditions.unwrap()[0].reason.clone();
        assert_eq!(reason.as_deref(), Some("DeadlineExceeded"));
    }

    #[test]
    fn failed_condition_carries_the_backoff_reason() {
        let p = plan(&job(Some(1), None, 0), &[failed("a")], t(0), true);
        let conds = p.status.unwrap().conditions.unwrap();
        let failed = conds.iter().find(|c| c.type_ == "Failed").unwrap();
        assert_eq!(
            (failed.reason.as_deref(), failed.message.as_deref()),
            (
                Some("BackoffLimitExceeded"),
                Some("Job has reached the specified backoff limit")
            )
        );
    }

    #[test]
    fn suspended_jobs_stop_their_pods() {
        let mut j = job(Some(1), None, 6);
        j.spec.as_mut().unwrap().suspend = Some(true);
        let p = plan(&j, &[running("a")], t(0), true);
        assert_eq!(outcome(&p), (0, 1, conds(&["Suspended"])));
        assert_eq!(p.status.unwrap().start_time, None);
    }

    #[test]
    fn finished_jobs_are_left_alone_and_unchanged_status_is_not_rewritten() {
        let mut j = job(Some(1), None, 6);
        j.status = plan(&j, &[succeeded("a")], t(0), true).status;
        let later = plan(&j, &[succeeded("a")], t(5), true);
        assert_eq!((later.changes, later.status), (vec![], None));

        let mut j = job(Some(1), None, 6);
        j.status = plan(&j, &[running("a")], t(0), true).status;
        assert_eq!(plan(&j, &[running("a")], t(3), true).status, None);
    }

    #[test]
    fn unmet_expectations_freeze_pod_counts() {
        let p = plan(&job(Some(3), Some(3), 6), &[], t(0), false);
        assert!(p.changes.is_empty());
    }
}
