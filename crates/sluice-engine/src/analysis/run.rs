//! Reconciling one AnalysisRun, as a pure function from (run, measurements just taken, secrets,
//! `now`) to a [`RunPlan`]: the new status, the measurements due now, when to look again, and
//! whether the TTL says to delete the run (upstream `analysis/analysis.go` `reconcileAnalysisRun`).
//!
//! The controller's loop around it:
//! 1. read the Secrets named by [`required_secrets`] (the run's namespace) into [`SecretValues`];
//! 2. `plan_run(run, &secrets, &[], now)`; for each [`DueMeasurement`] take the measurement
//!    (HTTP providers via [`crate::analysis::provider::Providers::measure`], jobs via
//!    [`crate::analysis::job`]) and record it as a [`TakenMeasurement`];
//! 3. `plan_run(run, &secrets, &taken, now)` again (same `now`) and write `plan.status` with a
//!    merge patch if it differs; emit `plan.events`; requeue after `plan.requeue_after`; delete
//!    the run when `plan.delete`.
//!
//! Differences from upstream, on purpose: conditions and providers are checked when the run
//! starts, so a malformed condition or an unsupported provider ends the run in Error at once
//! with a message naming the metric (upstream errors every measurement until
//! `consecutiveErrorLimit` is exceeded, reaching the same phase later); when a metric ends the
//! run early, the remaining metrics are settled in the same pass instead of the next one; and a
//! run that ends on a spec error gets `completedAt`, so its TTL applies.
//!
//! [`plan_run`] reads as its stages, one file each: `prepare` (arguments substituted, the
//! spec checked), `measurements` (what was just taken, recorded), `assess` (metric phases,
//! then the run's), `schedule` (what is due now, when to look again).

mod assess;
mod measurements;
mod prepare;
pub use prepare::check_spec;
mod schedule;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use sluice_api::analysis::{AnalysisRun, AnalysisRunStatus, Measurement, MetricResult};
use sluice_api::common::AnalysisPhase;

use super::args::SecretString;
use super::evaluate::{MetricCounts, Phase, is_terminating};
use super::job::JobProgress;
use super::provider::{MeasuredValue, MetricProvider, ProviderError};
use assess::{assess_metrics, decide_run_phase, phases_of};
use measurements::{apply_retention, record_taken};
use prepare::{SpecError, prepare};
use schedule::schedule;

/// Secret values read for `valueFrom.secretKeyRef` arguments, by (secret name, key). An `Err`
/// holds why it could not be read (e.g. `key 'k' does not exist in secret 's'`).
pub type SecretValues = BTreeMap<(String, String), Result<SecretString, String>>;

/// The (secret name, key) pairs the run's arguments read.
pub fn required_secrets(run: &AnalysisRun) -> Vec<(String, String)> {
    run.spec
        .args
        .iter()
        .flatten()
        .filter_map(|a| a.value_from.as_ref()?.secret_key_ref.as_ref())
        .map(|r| (r.name.clone(), r.key.clone()))
        .collect()
}

/// What a measurement produced.
#[derive(Debug, Clone, PartialEq)]
pub enum MeasurementOutcome {
    /// A value, to be judged by the metric's conditions.
    Value(MeasuredValue),
    /// The provider failed; the text becomes the measurement's message (secrets are redacted).
    Error(String),
    /// An asynchronous measurement (a Job) is under way; look again at `resume_at`.
    InFlight {
        metadata: BTreeMap<String, String>,
        resume_at: DateTime<Utc>,
    },
    /// An asynchronous measurement finished with this phase.
    Finished {
        phase: Phase,
        message: Option<String>,
    },
}

impl From<Result<MeasuredValue, ProviderError>> for MeasurementOutcome {
    /// An HTTP provider's answer; an error keeps only its cause as the message, since the run's
    /// message already names the metric.
    fn from(r: Result<MeasuredValue, ProviderError>) -> Self {
        match r {
            Ok(v) => MeasurementOutcome::Value(v),
            Err(e) => MeasurementOutcome::Error(e.kind.to_string()),
        }
    }
}

impl From<JobProgress> for MeasurementOutcome {
    /// A job measurement checked again (the Job's own metadata was recorded when it was
    /// created, with [`MeasurementOutcome::InFlight`] and `job::measurement_metadata`).
    fn from(p: JobProgress) -> Self {
        match p {
            JobProgress::Finished { phase, message } => {
                MeasurementOutcome::Finished { phase, message }
            }
            JobProgress::Running { resume_at } => MeasurementOutcome::InFlight {
                metadata: BTreeMap::new(),
                resume_at,
            },
        }
    }
}

/// A measurement the controller took for a [`DueMeasurement`].
#[derive(Debug, Clone, PartialEq)]
pub struct TakenMeasurement {
    pub metric: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub outcome: MeasurementOutcome,
}

/// A metric provider with arguments (possibly secrets) substituted. Its `Debug` shows only the
/// provider type, so a due measurement can be logged without leaking secrets.
#[derive(Clone, PartialEq)]
pub struct ResolvedProvider(pub MetricProvider);

impl fmt::Debug for ResolvedProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResolvedProvider({})", self.0.type_name())
    }
}

/// A measurement to take now.
#[derive(Debug, Clone, PartialEq)]
pub struct DueMeasurement {
    pub metric: String,
    pub provider: ResolvedProvider,
    /// The unfinished measurement to resume (or stop), for asynchronous providers.
    pub in_flight: Option<Measurement>,
    /// Stop the in-flight measurement instead of resuming it (run terminating).
    pub terminate: bool,
    /// Which attempt this is for the metric (the job provider's name suffix).
    pub attempt: i32,
    /// Metadata to record on the metric result the first time (e.g. the resolved query).
    pub metric_metadata: BTreeMap<String, String>,
}

/// A Kubernetes Event to record on the run (upstream reasons and messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEvent {
    pub reason: String,
    pub message: String,
    pub warning: bool,
}

/// When each metric's latest measurement finished, exactly, as the controller that took it
/// remembers it.
///
/// The API stores `finishedAt` in whole seconds. Scheduling the next measurement from the
/// stored second takes it up to one interval's fraction early (a 1 s metric measured at 10.7 s
/// is measured again at 11.0 s), and lines every run up on the same second boundary, so a
/// thousand runs all come due at once. The controller keeps the exact instant in memory and
/// the planner prefers it while it still describes the stored measurement (same metric, same
/// number of completed measurements, same second); after a restart the stored second is all
/// there is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FinishTimes(BTreeMap<String, FinishTime>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FinishTime {
    /// Completed measurements of the metric (`count + error`) once this one was recorded.
    completed: i32,
    at: DateTime<Utc>,
}

impl FinishTimes {
    /// Nothing remembered.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The exact finish of the metric's last measurement when the memory describes it, else
    /// the stored (whole-second) one.
    fn refine(&self, metric: &str, counts: &MetricCounts, stored: DateTime<Utc>) -> DateTime<Utc> {
        match self.0.get(metric) {
            Some(f) if self.describes(f, counts, stored) => f.at,
            _ => stored,
        }
    }

    fn describes(&self, f: &FinishTime, counts: &MetricCounts, stored: DateTime<Utc>) -> bool {
        f.completed == counts.count + counts.error && f.at.timestamp() == stored.timestamp()
    }
}

/// What to do with an AnalysisRun.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPlan {
    /// The status to write (unchanged when nothing happened).
    pub status: AnalysisRunStatus,
    /// Measurements due now, in metric order.
    pub due: Vec<DueMeasurement>,
    /// When to reconcile again at the latest (next measurement, resume or TTL expiry).
    pub requeue_after: Option<std::time::Duration>,
    /// The run finished and its `ttlStrategy` expired: delete it.
    pub delete: bool,
    pub events: Vec<RunEvent>,
    /// The exact finish times to remember for the next plan (see [`FinishTimes`]), once
    /// `status` is written.
    pub finish_times: FinishTimes,
}

/// For a due `job` measurement with nothing in flight: the Job to create (upstream naming,
/// labels and owner) and the measurement to record once it exists (in flight, checked again
/// right away, as upstream). `None` for other providers or when a Job is already running.
/// Resuming uses [`crate::analysis::job::job_reference`] on the in-flight
/// measurement's metadata and [`crate::analysis::job::assess_job`]; terminating deletes
/// the Job (foreground propagation) and records `Finished { phase: Inconclusive }`.
pub fn job_to_create(
    run: &AnalysisRun,
    due: &DueMeasurement,
    job_namespace: Option<&str>,
    now: DateTime<Utc>,
) -> Option<(k8s_openapi::api::batch::v1::Job, TakenMeasurement)> {
    let MetricProvider::Job(spec) = &due.provider.0 else {
        return None;
    };
    if due.in_flight.is_some() {
        return None;
    }
    let run_ref = super::job::RunRef {
        name: run.metadata.name.as_deref().unwrap_or_default(),
        namespace: run.metadata.namespace.as_deref().unwrap_or_default(),
        uid: run.metadata.uid.as_deref().unwrap_or_default(),
    };
    let job = super::job::build_job(run_ref, &due.metric, spec, due.attempt, job_namespace);
    let taken = TakenMeasurement {
        metric: due.metric.clone(),
        started_at: now,
        finished_at: now,
        outcome: MeasurementOutcome::InFlight {
            metadata: super::job::measurement_metadata(&job),
            resume_at: now,
        },
    };
    Some((job, taken))
}

pub use sluice_api::k8s::time::{from_time, to_time};

/// When a completed run's TTL expires (upstream `isAnalysisRunTtlExceeded`): after
/// `secondsAfterSuccess` for a Successful run, `secondsAfterFailure` for a Failed one, else
/// `secondsAfterCompletion`.
pub fn ttl_deadline(run: &AnalysisRun) -> Option<DateTime<Utc>> {
    ttl_deadline_of(run, run.status.as_ref()?)
}

/// [`ttl_deadline`] of `run` as it will be once `status` is written.
fn ttl_deadline_of(run: &AnalysisRun, status: &AnalysisRunStatus) -> Option<DateTime<Utc>> {
    let ttl = run.spec.ttl_strategy.as_ref()?;
    let phase = Phase::from_api(&status.phase);
    if !phase.is_completed() {
        return None;
    }
    let completed = from_time(status.completed_at.as_ref()?);
    let seconds = match phase {
        Phase::Successful if ttl.seconds_after_success.is_some() => ttl.seconds_after_success,
        Phase::Failed if ttl.seconds_after_failure.is_some() => ttl.seconds_after_failure,
        _ => ttl.seconds_after_completion,
    }?;
    Some(completed + chrono::Duration::seconds(i64::from(seconds)))
}

/// When to look at a finished run again: the second after its TTL expires, since upstream
/// deletes only once the deadline has strictly passed.
fn after_ttl(deadline: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    deadline.map(|d| d + chrono::Duration::seconds(1))
}

fn requeue(now: DateTime<Utc>, at: Option<DateTime<Utc>>) -> Option<std::time::Duration> {
    at.map(|t| (t - now).to_std().unwrap_or_default())
}

/// Plans one reconcile of `run` (see the module docs for the loop around it). `finish_times`
/// is what the previous plan returned as [`RunPlan::finish_times`] (empty when unknown).
pub fn plan_run(
    run: &AnalysisRun,
    secrets: &SecretValues,
    taken: &[TakenMeasurement],
    finish_times: &FinishTimes,
    now: DateTime<Utc>,
) -> RunPlan {
    let mut status = run.status.clone().unwrap_or_default();
    if Phase::from_api(&status.phase).is_completed() {
        return plan_completed(run, status, now);
    }
    let prepared = match prepare(run, secrets) {
        Ok(p) => p,
        Err(SpecError(message)) => return plan_spec_error(run, status, message, now),
    };
    let started_at = from_time(status.started_at.get_or_insert_with(|| to_time(now)));
    let terminate = run.spec.is_terminated();
    let mut results: Vec<MetricResult> = status.metric_results.take().unwrap_or_default();
    let terminating_before = is_terminating(terminate, &phases_of(&results));
    let mut finishes = finish_times.clone();
    for t in taken {
        record_taken(
            &prepared,
            &mut results,
            &mut finishes,
            t,
            terminating_before,
        );
    }

    let metrics = &prepared.metrics;
    let (terminating, mut events) =
        assess_metrics(metrics, &mut results, terminate, terminating_before);
    let run_event = decide_run_phase(
        metrics,
        &mut status,
        &mut results,
        terminate,
        terminating,
        now,
    );
    events.extend(run_event);
    apply_retention(metrics, &mut results);
    let schedule = schedule(metrics, &results, &finishes, started_at, terminating, now);
    status.metric_results = Some(results);

    // A run that ended now waits only for its TTL; nothing it measured is worth remembering.
    let (requeue_at, finish_times) = if Phase::from_api(&status.phase).is_completed() {
        (
            after_ttl(ttl_deadline_of(run, &status)),
            FinishTimes::default(),
        )
    } else {
        (schedule.next, schedule.finish_times)
    };
    RunPlan {
        status,
        due: schedule.due,
        requeue_after: requeue(now, requeue_at),
        delete: false,
        events,
        finish_times,
    }
}

/// A run that already ended: delete it once its TTL has passed, else look again then.
fn plan_completed(run: &AnalysisRun, status: AnalysisRunStatus, now: DateTime<Utc>) -> RunPlan {
    let deadline = ttl_deadline(run);
    let delete = deadline.is_some_and(|d| now > d);
    RunPlan {
        status,
        due: Vec::new(),
        requeue_after: if delete {
            None
        } else {
            requeue(now, after_ttl(deadline))
        },
        delete,
        events: Vec::new(),
        finish_times: FinishTimes::default(),
    }
}

/// A run whose spec cannot be measured ends in Error at once, with `completedAt` so its TTL
/// applies.
fn plan_spec_error(
    run: &AnalysisRun,
    mut status: AnalysisRunStatus,
    message: String,
    now: DateTime<Utc>,
) -> RunPlan {
    status.phase = AnalysisPhase::Error;
    status.message = Some(message);
    status.completed_at.get_or_insert_with(|| to_time(now));
    let requeue_after = requeue(now, after_ttl(ttl_deadline_of(run, &status)));
    RunPlan {
        status,
        due: Vec::new(),
        requeue_after,
        delete: false,
        events: vec![phase_event(
            "AnalysisRun",
            Phase::Error,
            "Analysis Completed. Result: Error".to_string(),
        )],
        finish_times: FinishTimes::default(),
    }
}

fn counts_of(r: &MetricResult) -> MetricCounts {
    MetricCounts {
        count: r.count.unwrap_or(0),
        successful: r.successful.unwrap_or(0),
        failed: r.failed.unwrap_or(0),
        inconclusive: r.inconclusive.unwrap_or(0),
        error: r.error.unwrap_or(0),
        consecutive_error: r.consecutive_error.unwrap_or(0),
        consecutive_success: r.consecutive_success.unwrap_or(0),
    }
}

/// Upstream serializes these counters with `omitempty`.
fn nz(n: i32) -> Option<i32> {
    (n != 0).then_some(n)
}

fn last_of(r: &MetricResult) -> Option<&Measurement> {
    r.measurements.as_ref().and_then(|m| m.last())
}

fn phase_event(reason_prefix: &str, phase: Phase, message: String) -> RunEvent {
    RunEvent {
        reason: format!("{reason_prefix}{phase}"),
        message,
        warning: matches!(phase, Phase::Error | Phase::Failed),
    }
}
