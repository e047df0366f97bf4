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

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};

use super::args::{ResolvedArgs, SecretString, resolve_run_args, substitute};
use super::evaluate::{
    AssessedMetric, LastMeasurement, METRIC_TERMINATED_MESSAGE, MetricCounts, MetricPolicy,
    MetricState, Phase, assess_measurement, assess_metric, assess_run, is_terminating, next_due,
    retain_measurements, validate_policy,
};
use super::expr::Condition;
use super::job::JobProgress;
use super::provider::{MeasuredValue, MetricProvider, ProviderError};
use sluice_api::analysis::{
    AnalysisRun, AnalysisRunStatus, Measurement, Metric, MetricResult, RunSummary,
};
use sluice_api::common::AnalysisPhase;
use sluice_api::k8s::duration::parse_duration;

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

/// One metric after argument substitution and validation.
struct PreparedMetric {
    name: String,
    policy: MetricPolicy,
    success: Option<Condition>,
    failure: Option<Condition>,
    provider: MetricProvider,
    dry_run: bool,
    retention: Option<i32>,
}

struct Prepared {
    metrics: Vec<PreparedMetric>,
    args: ResolvedArgs,
}

/// A run-level error: the run ends in Error with this message.
struct SpecError(String);

fn prepare(run: &AnalysisRun, secrets: &SecretValues) -> Result<Prepared, SpecError> {
    let arg_specs = run.spec.args.as_deref().unwrap_or_default();
    let args = resolve_run_args(arg_specs, |name, key| {
        secrets
            .get(&(name.to_string(), key.to_string()))
            .cloned()
            .unwrap_or_else(|| Err(format!("secret '{name}' was not read")))
    })
    .map_err(|e| SpecError(format!("Unable to resolve metric arguments: {e}")))?;

    let invalid = |m: String| SpecError(format!("Analysis spec invalid: {m}"));
    if run.spec.metrics.is_empty() {
        return Err(invalid("no metrics specified".to_string()));
    }
    let mut metrics: Vec<PreparedMetric> = Vec::with_capacity(run.spec.metrics.len());
    for (i, raw) in run.spec.metrics.iter().enumerate() {
        let at = |m: String| invalid(format!("metrics[{i}] ({}): {m}", raw.name));
        let json = serde_json::to_value(raw).map_err(|e| at(e.to_string()))?;
        let substituted = substitute(&json, &args)
            .map_err(|e| SpecError(format!("Unable to resolve metric arguments: {e}")))?;
        let metric: Metric =
            serde_json::from_value(substituted.clone()).map_err(|e| at(e.to_string()))?;
        if metrics.iter().any(|m| m.name == metric.name) {
            return Err(invalid(format!(
                "metrics[{i}]: duplicate name '{}'",
                metric.name
            )));
        }
        let interval = non_empty(&metric.interval)
            .map(|s| parse_duration(s).map_err(|e| at(format!("invalid interval string: {e}"))))
            .transpose()?;
        let initial_delay = non_empty(&metric.initial_delay)
            .map(|s| parse_duration(s).map_err(|e| at(format!("invalid startDelay string: {e}"))))
            .transpose()?;
        let policy = MetricPolicy {
            failure_limit: metric.failure_limit().map_err(|e| at(e.to_string()))?,
            inconclusive_limit: metric.inconclusive_limit().map_err(|e| at(e.to_string()))?,
            consecutive_error_limit: metric
                .consecutive_error_limit()
                .map_err(|e| at(e.to_string()))?,
            consecutive_success_limit: metric
                .consecutive_success_limit()
                .map_err(|e| at(e.to_string()))?,
            effective_count: metric.count().map_err(|e| at(e.to_string()))?,
            interval,
            initial_delay,
        };
        let raw_count = match &metric.count {
            Some(c) => sluice_api::common::int_or_string_to_i32("count", c)
                .map_err(|e| at(e.to_string()))?,
            None => 0,
        };
        validate_policy(&policy, raw_count).map_err(at)?;
        let parse = |kind: &str, text: &Option<String>| {
            non_empty(text)
                .map(|t| Condition::parse(t).map_err(|e| at(format!("{kind}: {e}"))))
                .transpose()
        };
        let success = parse("successCondition", &metric.success_condition)?;
        let failure = parse("failureCondition", &metric.failure_condition)?;
        let provider = MetricProvider::from_json(&metric.name, &substituted["provider"])
            .map_err(|e| invalid(format!("metrics[{i}]: {e}")))?;
        metrics.push(PreparedMetric {
            name: metric.name,
            policy,
            success,
            failure,
            provider,
            dry_run: false,
            retention: None,
        });
    }
    for (i, rule) in run.spec.dry_run.iter().flatten().enumerate() {
        let matched = matching(&rule.metric_name, &metrics);
        if matched.is_empty() {
            return Err(invalid(format!(
                "dryRun[{i}]: Rule didn't match any metric name(s)"
            )));
        }
        for j in matched {
            metrics[j].dry_run = true;
        }
    }
    for (i, rule) in run.spec.measurement_retention.iter().flatten().enumerate() {
        let matched = matching(&rule.metric_name, &metrics);
        if matched.is_empty() {
            return Err(invalid(format!(
                "measurementRetention[{i}]: Rule didn't match any metric name(s)"
            )));
        }
        for j in matched {
            metrics[j].retention = Some(rule.limit);
        }
    }
    Ok(Prepared { metrics, args })
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// Indexes of the metrics whose name the rule's regular expression matches (unanchored, as
/// Go's `regexp.MatchString`).
fn matching(pattern: &str, metrics: &[PreparedMetric]) -> Vec<usize> {
    let Ok(re) = regex::Regex::new(pattern) else {
        return Vec::new();
    };
    metrics
        .iter()
        .enumerate()
        .filter(|(_, m)| re.is_match(&m.name))
        .map(|(i, _)| i)
        .collect()
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

fn set_counts(r: &mut MetricResult, c: &MetricCounts) {
    r.count = nz(c.count);
    r.successful = nz(c.successful);
    r.failed = nz(c.failed);
    r.inconclusive = nz(c.inconclusive);
    r.error = nz(c.error);
    r.consecutive_error = nz(c.consecutive_error);
    r.consecutive_success = nz(c.consecutive_success);
}

fn summary(s: &super::evaluate::RunSummary) -> RunSummary {
    RunSummary {
        count: nz(s.count),
        successful: nz(s.successful),
        failed: nz(s.failed),
        inconclusive: nz(s.inconclusive),
        error: nz(s.error),
    }
}

fn last_of(r: &MetricResult) -> Option<&Measurement> {
    r.measurements.as_ref().and_then(|m| m.last())
}

fn metric_state(r: &MetricResult) -> MetricState {
    let measurements = r.measurements.as_ref().map_or(0, Vec::len);
    MetricState {
        phase: Phase::from_api(&r.phase),
        counts: counts_of(r),
        measurements,
        last_completed: last_of(r).is_some_and(|m| Phase::from_api(&m.phase).is_completed()),
    }
}

fn phase_event(reason_prefix: &str, phase: Phase, message: String) -> RunEvent {
    RunEvent {
        reason: format!("{reason_prefix}{phase}"),
        message,
        warning: matches!(phase, Phase::Error | Phase::Failed),
    }
}

/// When a completed run's TTL expires (upstream `isAnalysisRunTtlExceeded`): after
/// `secondsAfterSuccess` for a Successful run, `secondsAfterFailure` for a Failed one, else
/// `secondsAfterCompletion`.
pub fn ttl_deadline(run: &AnalysisRun) -> Option<DateTime<Utc>> {
    let status = run.status.as_ref()?;
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
    let mut events = Vec::new();
    let current = Phase::from_api(&status.phase);
    if current.is_completed() {
        let deadline = ttl_deadline(run);
        let delete = deadline.is_some_and(|d| now > d);
        return RunPlan {
            status,
            due: Vec::new(),
            requeue_after: if delete {
                None
            } else {
                // Upstream deletes once the deadline has strictly passed.
                requeue(now, deadline.map(|d| d + chrono::Duration::seconds(1)))
            },
            delete,
            events,
            finish_times: FinishTimes::default(),
        };
    }

    let prepared = match prepare(run, secrets) {
        Ok(p) => p,
        Err(SpecError(message)) => {
            status.phase = AnalysisPhase::Error;
            status.message = Some(message);
            status.completed_at.get_or_insert_with(|| to_time(now));
            events.push(phase_event(
                "AnalysisRun",
                Phase::Error,
                "Analysis Completed. Result: Error".to_string(),
            ));
            let mut plan = RunPlan {
                status,
                due: Vec::new(),
                requeue_after: None,
                delete: false,
                events,
                finish_times: FinishTimes::default(),
            };
            let finished = AnalysisRun {
                status: Some(plan.status.clone()),
                ..run.clone()
            };
            plan.requeue_after = requeue(
                now,
                ttl_deadline(&finished).map(|d| d + chrono::Duration::seconds(1)),
            );
            return plan;
        }
    };

    let started_at = from_time(status.started_at.get_or_insert_with(|| to_time(now)));
    let terminate = run.spec.is_terminated();
    let mut results: Vec<MetricResult> = status.metric_results.take().unwrap_or_default();
    let phases_of = |results: &[MetricResult]| -> Vec<(Phase, bool)> {
        results
            .iter()
            .map(|r| (Phase::from_api(&r.phase), r.dry_run.unwrap_or(false)))
            .collect()
    };
    let terminating_before = is_terminating(terminate, &phases_of(&results));

    // Record the measurements just taken.
    let mut finishes = finish_times.clone();
    for t in taken {
        let Some(pm) = prepared.metrics.iter().find(|m| m.name == t.metric) else {
            continue;
        };
        let idx = match results.iter().position(|r| r.name == pm.name) {
            Some(i) => i,
            None => {
                let metadata = pm.provider.metric_metadata();
                results.push(MetricResult {
                    name: pm.name.clone(),
                    phase: AnalysisPhase::Running,
                    dry_run: pm.dry_run.then_some(true),
                    metadata: (!metadata.is_empty()).then_some(metadata),
                    ..MetricResult::default()
                });
                results.len() - 1
            }
        };
        let result = &mut results[idx];
        if Phase::from_api(&result.phase).is_completed() {
            continue;
        }
        let mut counts = counts_of(result);
        let measurements = result.measurements.get_or_insert_with(Vec::new);
        let resumes = measurements
            .last()
            .is_some_and(|m| !Phase::from_api(&m.phase).is_completed());
        let mut m = if resumes {
            measurements.pop().unwrap_or_default()
        } else {
            Measurement {
                started_at: Some(to_time(t.started_at)),
                ..Measurement::default()
            }
        };
        let (phase, message) = match &t.outcome {
            MeasurementOutcome::Value(v) => {
                let a = assess_measurement(pm.success.as_ref(), pm.failure.as_ref(), &v.value);
                m.value = Some(v.display.clone());
                if !v.metadata.is_empty() {
                    m.metadata = Some(v.metadata.clone());
                }
                (a.phase, a.message)
            }
            MeasurementOutcome::Error(e) => (Phase::Error, Some(e.clone())),
            MeasurementOutcome::InFlight {
                metadata,
                resume_at,
            } => {
                m.metadata
                    .get_or_insert_with(BTreeMap::new)
                    .extend(metadata.clone());
                m.resume_at = Some(to_time(*resume_at));
                (Phase::Running, None)
            }
            MeasurementOutcome::Finished { phase, message } => {
                let message = if terminating_before
                    && matches!(phase, Phase::Successful | Phase::Inconclusive)
                {
                    Some(METRIC_TERMINATED_MESSAGE.to_string())
                } else {
                    message.clone()
                };
                (*phase, message)
            }
        };
        m.phase = phase.into();
        m.message = message.map(|msg| prepared.args.redact(&msg));
        if phase.is_completed() {
            m.resume_at = None;
            counts.record(phase);
            if m.finished_at.is_none() {
                m.finished_at = Some(to_time(t.finished_at));
                finishes.0.insert(
                    pm.name.clone(),
                    FinishTime {
                        completed: counts.count + counts.error,
                        at: t.finished_at,
                    },
                );
            }
        }
        measurements.push(m);
        set_counts(result, &counts);
    }

    // Assess every metric; a metric that ends the run early settles the others in the same pass.
    let mut terminating = terminating_before;
    let mut metric_events = Vec::new();
    for _pass in 0..2 {
        for pm in &prepared.metrics {
            let Some(result) = results.iter_mut().find(|r| r.name == pm.name) else {
                continue;
            };
            let old = Phase::from_api(&result.phase);
            let new = assess_metric(&pm.policy, &metric_state(result), terminating);
            if new != old {
                if new.is_completed() {
                    metric_events.push(phase_event(
                        "Metric",
                        new,
                        format!("Metric '{}' Completed. Result: {new}", pm.name),
                    ));
                }
                result.message = last_of(result).and_then(|m| m.message.clone());
                result.phase = new.into();
            }
        }
        let now_terminating = is_terminating(terminate, &phases_of(&results));
        if now_terminating == terminating {
            break;
        }
        terminating = now_terminating;
    }
    events.extend(metric_events);

    let assessed: Vec<AssessedMetric<'_>> = prepared
        .metrics
        .iter()
        .map(|pm| {
            let result = results.iter().find(|r| r.name == pm.name);
            AssessedMetric {
                name: &pm.name,
                dry_run: pm.dry_run,
                policy: &pm.policy,
                phase: result.map(|r| Phase::from_api(&r.phase)),
                counts: result.map(counts_of).unwrap_or_default(),
                message: result.and_then(|r| r.message.as_deref()),
            }
        })
        .collect();
    let outcome = assess_run(&assessed, terminate, terminating);
    for (name, message) in &outcome.dry_run_messages {
        if let Some(r) = results.iter_mut().find(|r| &r.name == name) {
            r.message = Some(message.clone());
        }
    }
    if Phase::from_api(&status.phase) != outcome.phase {
        status.phase = outcome.phase.into();
        status.message = (!outcome.message.is_empty()).then(|| outcome.message.clone());
        if outcome.phase.is_completed() {
            events.push(phase_event(
                "AnalysisRun",
                outcome.phase,
                format!("Analysis Completed. Result: {}", outcome.phase),
            ));
            status.completed_at.get_or_insert_with(|| to_time(now));
        }
    }
    status.run_summary = Some(summary(&outcome.run_summary));
    status.dry_run_summary = Some(summary(&outcome.dry_run_summary));

    for pm in &prepared.metrics {
        if let Some(r) = results.iter_mut().find(|r| r.name == pm.name)
            && let Some(ms) = r.measurements.as_mut()
        {
            retain_measurements(ms, pm.retention);
        }
    }

    // What is due now, and when to look again.
    let mut due = Vec::new();
    let mut next: Option<DateTime<Utc>> = None;
    // Only what still describes a measurement that schedules another is worth remembering.
    let mut kept = FinishTimes::default();
    for pm in &prepared.metrics {
        let result = results.iter().find(|r| r.name == pm.name);
        let completed = result.is_some_and(|r| Phase::from_api(&r.phase).is_completed());
        let counts = result.map(counts_of).unwrap_or_default();
        if let (false, Some(f), Some(stored)) = (
            completed,
            finishes.0.get(&pm.name),
            result
                .and_then(last_of)
                .and_then(|m| m.finished_at.as_ref())
                .map(from_time),
        ) && finishes.describes(f, &counts, stored)
        {
            kept.0.insert(pm.name.clone(), *f);
        }
        let last = result.and_then(last_of).map(|m| LastMeasurement {
            phase: Phase::from_api(&m.phase),
            finished_at: m
                .finished_at
                .as_ref()
                .map(|f| finishes.refine(&pm.name, &counts, from_time(f))),
            resume_at: m.resume_at.as_ref().map(from_time),
        });
        let Some(at) = next_due(
            &pm.policy,
            completed,
            &counts,
            last.as_ref(),
            Some(started_at),
            terminating,
            now,
        ) else {
            continue;
        };
        if at <= now {
            let in_flight = result
                .and_then(last_of)
                .filter(|m| m.finished_at.is_none())
                .cloned();
            due.push(DueMeasurement {
                metric: pm.name.clone(),
                provider: ResolvedProvider(pm.provider.clone()),
                terminate: in_flight.is_some() && terminating,
                in_flight,
                attempt: super::job::job_attempt(Some(&counts)),
                metric_metadata: pm.provider.metric_metadata(),
            });
        } else {
            next = Some(next.map_or(at, |n| n.min(at)));
        }
    }
    status.metric_results = Some(results);

    let mut requeue_at = next;
    if Phase::from_api(&status.phase).is_completed() {
        let finished = AnalysisRun {
            status: Some(status.clone()),
            ..run.clone()
        };
        requeue_at = ttl_deadline(&finished).map(|d| d + chrono::Duration::seconds(1));
        kept = FinishTimes::default();
    }
    RunPlan {
        status,
        due,
        requeue_after: requeue(now, requeue_at),
        delete: false,
        events,
        finish_times: kept,
    }
}

#[cfg(test)]
mod tests;
