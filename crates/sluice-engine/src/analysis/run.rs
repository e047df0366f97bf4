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
mod tests {
    use super::*;
    use crate::analysis::expr::Value;
    use serde_json::json;

    /// The planner with nothing remembered beyond the status (a freshly started controller).
    fn plan_run(
        run: &AnalysisRun,
        secrets: &SecretValues,
        taken: &[TakenMeasurement],
        now: DateTime<Utc>,
    ) -> RunPlan {
        super::plan_run(run, secrets, taken, &FinishTimes::default(), now)
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn run_from(spec: serde_json::Value) -> AnalysisRun {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "AnalysisRun",
            "metadata": {"name": "r", "namespace": "ns", "uid": "u-1"},
            "spec": spec
        }))
        .unwrap()
    }

    fn web_metric(extra: serde_json::Value) -> serde_json::Value {
        let mut m = json!({
            "name": "ok-rate",
            "successCondition": "result >= 0.9",
            "provider": {"web": {"url": "http://svc/{{args.service}}"}}
        });
        m.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        m
    }

    fn value(v: f64) -> MeasurementOutcome {
        MeasurementOutcome::Value(MeasuredValue {
            value: Value::Float(v),
            display: v.to_string(),
            metadata: BTreeMap::new(),
        })
    }

    fn taken(metric: &str, t: i64, outcome: MeasurementOutcome) -> TakenMeasurement {
        TakenMeasurement {
            metric: metric.to_string(),
            started_at: at(t),
            finished_at: at(t),
            outcome,
        }
    }

    /// Applies a plan's status to the run, as the controller's write would.
    fn write(run: &mut AnalysisRun, plan: &RunPlan) {
        run.status = Some(plan.status.clone());
    }

    fn args_service() -> serde_json::Value {
        json!([{"name": "service", "value": "checkout"}])
    }

    #[test]
    fn pending_run_starts_and_asks_for_the_first_measurement_with_args_substituted() {
        let run = run_from(json!({"metrics": [web_metric(json!({}))], "args": args_service()}));
        let plan = plan_run(&run, &SecretValues::new(), &[], at(0));
        assert_eq!(plan.status.started_at, Some(to_time(at(0))));
        assert_eq!(plan.status.phase, AnalysisPhase::Running);
        assert_eq!(plan.due.len(), 1);
        let MetricProvider::Web(web) = &plan.due[0].provider.0 else {
            panic!("web provider expected");
        };
        assert_eq!(web.url, "http://svc/checkout");
        assert_eq!(plan.due[0].attempt, 1);
        assert!(plan.due[0].in_flight.is_none());
    }

    #[test]
    fn single_successful_measurement_completes_the_run() {
        let run = run_from(json!({"metrics": [web_metric(json!({}))], "args": args_service()}));
        let plan = plan_run(
            &run,
            &SecretValues::new(),
            &[taken("ok-rate", 0, value(0.95))],
            at(0),
        );
        assert_eq!(plan.status.phase, AnalysisPhase::Successful);
        assert_eq!(plan.status.completed_at, Some(to_time(at(0))));
        let r = &plan.status.metric_results.as_ref().unwrap()[0];
        assert_eq!(r.phase, AnalysisPhase::Successful);
        assert_eq!(
            (r.count, r.successful, r.consecutive_success),
            (Some(1), Some(1), Some(1))
        );
        let m = &r.measurements.as_ref().unwrap()[0];
        assert_eq!(m.value.as_deref(), Some("0.95"));
        assert_eq!(m.finished_at, Some(to_time(at(0))));
        assert!(plan.due.is_empty());
        assert_eq!(plan.requeue_after, None);
        assert_eq!(
            plan.status.run_summary,
            Some(RunSummary {
                count: Some(1),
                successful: Some(1),
                ..RunSummary::default()
            })
        );
        assert!(
            plan.events
                .iter()
                .any(|e| e.reason == "AnalysisRunSuccessful" && !e.warning)
        );
    }

    #[test]
    fn failing_measurements_fail_the_metric_and_name_it_in_the_message() {
        let metric = web_metric(json!({"interval": "1m", "count": 3, "failureLimit": 1}));
        let mut run = run_from(json!({"metrics": [metric], "args": args_service()}));
        let secrets = SecretValues::new();
        let p = plan_run(&run, &secrets, &[taken("ok-rate", 0, value(0.5))], at(0));
        assert_eq!(p.status.phase, AnalysisPhase::Running);
        assert_eq!(p.requeue_after, Some(std::time::Duration::from_secs(60)));
        write(&mut run, &p);
        let early = plan_run(&run, &secrets, &[], at(30));
        assert!(early.due.is_empty());
        assert_eq!(
            early.requeue_after,
            Some(std::time::Duration::from_secs(30))
        );
        let due = plan_run(&run, &secrets, &[], at(60));
        assert_eq!(due.due.len(), 1);
        let p = plan_run(&run, &secrets, &[taken("ok-rate", 60, value(0.1))], at(60));
        assert_eq!(p.status.phase, AnalysisPhase::Failed);
        assert_eq!(
            p.status.message.as_deref(),
            Some("Metric \"ok-rate\" assessed Failed due to failed (2) > failureLimit (1)")
        );
        assert!(
            p.events
                .iter()
                .any(|e| e.reason == "MetricFailed" && e.warning)
        );
    }

    #[test]
    fn provider_errors_retry_every_ten_seconds_until_the_limit() {
        let metric = web_metric(json!({"interval": "5m", "consecutiveErrorLimit": 1}));
        let mut run = run_from(json!({"metrics": [metric], "args": args_service()}));
        let s = SecretValues::new();
        let err = || MeasurementOutcome::Error("received non 2xx response code: 500".into());
        let p = plan_run(&run, &s, &[taken("ok-rate", 0, err())], at(0));
        assert_eq!(p.status.phase, AnalysisPhase::Running);
        assert_eq!(p.requeue_after, Some(std::time::Duration::from_secs(10)));
        write(&mut run, &p);
        let p = plan_run(&run, &s, &[taken("ok-rate", 10, err())], at(10));
        assert_eq!(p.status.phase, AnalysisPhase::Error);
        assert_eq!(
            p.status.message.as_deref(),
            Some(
                "Metric \"ok-rate\" assessed Error due to consecutiveErrors (2) > consecutiveErrorLimit (1): \"Error Message: received non 2xx response code: 500\""
            )
        );
    }

    #[test]
    fn terminate_ends_the_run_successful_with_run_terminated() {
        let metric = web_metric(json!({"interval": "1m"}));
        let mut run = run_from(json!({"metrics": [metric], "args": args_service()}));
        let s = SecretValues::new();
        let p = plan_run(&run, &s, &[taken("ok-rate", 0, value(1.0))], at(0));
        assert_eq!(p.status.phase, AnalysisPhase::Running);
        write(&mut run, &p);
        run.spec.terminate = Some(true);
        let p = plan_run(&run, &s, &[], at(5));
        assert_eq!(p.status.phase, AnalysisPhase::Successful);
        assert_eq!(p.status.message.as_deref(), Some("Run Terminated"));
        assert!(p.due.is_empty());
    }

    #[test]
    fn first_failed_metric_stops_an_indefinite_one_in_the_same_pass() {
        let forever = web_metric(json!({"name": "forever", "interval": "1m"}));
        let once = web_metric(json!({"name": "once"}));
        let run = run_from(json!({"metrics": [forever, once], "args": args_service()}));
        let p = plan_run(
            &run,
            &SecretValues::new(),
            &[
                taken("forever", 0, value(1.0)),
                taken("once", 0, value(0.0)),
            ],
            at(0),
        );
        assert_eq!(p.status.phase, AnalysisPhase::Failed);
        let phases: Vec<_> = p
            .status
            .metric_results
            .unwrap()
            .iter()
            .map(|r| (r.name.clone(), r.phase.clone()))
            .collect();
        assert_eq!(
            phases,
            vec![
                ("forever".to_string(), AnalysisPhase::Successful),
                ("once".to_string(), AnalysisPhase::Failed)
            ]
        );
    }

    #[test]
    fn dry_run_metric_failure_does_not_fail_the_run() {
        let real = web_metric(json!({"name": "real"}));
        let dry = web_metric(json!({"name": "dry"}));
        let run = run_from(json!({
            "metrics": [real, dry], "args": args_service(),
            "dryRun": [{"metricName": "dr.*"}]
        }));
        let p = plan_run(
            &run,
            &SecretValues::new(),
            &[taken("real", 0, value(1.0)), taken("dry", 0, value(0.0))],
            at(0),
        );
        assert_eq!(p.status.phase, AnalysisPhase::Successful);
        assert_eq!(
            p.status.dry_run_summary,
            Some(RunSummary {
                count: Some(1),
                failed: Some(1),
                ..RunSummary::default()
            })
        );
        let dry = &p.status.metric_results.unwrap()[1];
        assert_eq!(dry.dry_run, Some(true));
        assert_eq!(
            dry.message.as_deref(),
            Some("Metric assessed Failed due to failed (1) > failureLimit (0)")
        );
    }

    #[test]
    fn spec_errors_end_the_run_in_error_naming_metric_and_cause() {
        let cases = [
            (
                json!({"metrics": [web_metric(json!({"successCondition": "result >"}))], "args": args_service()}),
                "Analysis spec invalid: metrics[0] (ok-rate): successCondition: invalid expression \"result >\"",
            ),
            (
                json!({"metrics": [web_metric(json!({}))]}),
                "Unable to resolve metric arguments: failed to resolve {{args.service}}",
            ),
            (
                json!({"metrics": [web_metric(json!({}))], "args": [{"name": "service"}]}),
                "Unable to resolve metric arguments: argument \"service\" was not supplied",
            ),
            (
                json!({"metrics": [{"name": "d", "provider": {"datadog": {"query": "q"}}}]}),
                "Analysis spec invalid: metrics[0]: metric \"d\": provider datadog is not supported",
            ),
            (
                json!({"metrics": [web_metric(json!({"count": 3}))], "args": args_service()}),
                "Analysis spec invalid: metrics[0] (ok-rate): interval must be specified when count > 1",
            ),
            (
                json!({"metrics": [web_metric(json!({"interval": "5"}))], "args": args_service()}),
                "Analysis spec invalid: metrics[0] (ok-rate): invalid interval string",
            ),
            (
                json!({"metrics": [web_metric(json!({}))], "args": args_service(), "dryRun": [{"metricName": "nope"}]}),
                "Analysis spec invalid: dryRun[0]: Rule didn't match any metric name(s)",
            ),
            (
                json!({"metrics": [web_metric(json!({})), web_metric(json!({}))], "args": args_service()}),
                "Analysis spec invalid: metrics[1]: duplicate name 'ok-rate'",
            ),
            (
                json!({"metrics": []}),
                "Analysis spec invalid: no metrics specified",
            ),
        ];
        for (spec, want) in cases {
            let plan = plan_run(&run_from(spec.clone()), &SecretValues::new(), &[], at(0));
            assert_eq!(plan.status.phase, AnalysisPhase::Error, "{spec}");
            let msg = plan.status.message.unwrap_or_default();
            assert!(msg.starts_with(want), "{spec}: {msg}");
            assert!(plan.due.is_empty());
        }
    }

    #[test]
    fn secret_args_are_substituted_but_redacted_from_messages() {
        let metric = json!({
            "name": "api",
            "provider": {"web": {"url": "http://svc/", "headers": [{"key": "Authorization", "value": "Bearer {{args.token}}"}]}}
        });
        let run = run_from(json!({
            "metrics": [metric],
            "args": [{"name": "token", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "t"}}}]
        }));
        assert_eq!(
            required_secrets(&run),
            vec![("creds".to_string(), "t".to_string())]
        );
        let mut secrets = SecretValues::new();
        secrets.insert(
            ("creds".into(), "t".into()),
            Ok(SecretString::new("hunter2")),
        );
        let plan = plan_run(&run, &secrets, &[], at(0));
        let MetricProvider::Web(web) = &plan.due[0].provider.0 else {
            panic!()
        };
        assert_eq!(web.headers.as_ref().unwrap()[0].value, "Bearer hunter2");
        assert!(!format!("{:?}", plan.due).contains("hunter2"));
        let plan = plan_run(
            &run,
            &secrets,
            &[taken(
                "api",
                0,
                MeasurementOutcome::Error("401 for token hunter2".into()),
            )],
            at(0),
        );
        let m = &plan.status.metric_results.unwrap()[0]
            .measurements
            .clone()
            .unwrap()[0];
        assert_eq!(m.message.as_deref(), Some("401 for token *****"));

        let missing = plan_run(&run, &SecretValues::new(), &[], at(0));
        assert_eq!(missing.status.phase, AnalysisPhase::Error);
        assert!(missing.status.message.unwrap().contains("secret \"creds\""));
    }

    #[test]
    fn initial_delay_postpones_the_first_measurement() {
        let run = run_from(
            json!({"metrics": [web_metric(json!({"initialDelay": "30s"}))], "args": args_service()}),
        );
        let p = plan_run(&run, &SecretValues::new(), &[], at(0));
        assert!(p.due.is_empty());
        assert_eq!(p.requeue_after, Some(std::time::Duration::from_secs(30)));
        assert_eq!(p.status.phase, AnalysisPhase::Running);
    }

    #[test]
    fn job_measurement_is_resumed_in_place_then_finished() {
        let metric = json!({
            "name": "smoke",
            "provider": {"job": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}}
        });
        let mut run = run_from(json!({"metrics": [metric]}));
        let s = SecretValues::new();
        let started = MeasurementOutcome::InFlight {
            metadata: BTreeMap::from([("job-name".to_string(), "u-1.smoke.1".to_string())]),
            resume_at: at(5),
        };
        let p = plan_run(&run, &s, &[taken("smoke", 0, started)], at(0));
        assert_eq!(p.status.phase, AnalysisPhase::Running);
        assert_eq!(p.requeue_after, Some(std::time::Duration::from_secs(5)));
        write(&mut run, &p);
        let p = plan_run(&run, &s, &[], at(5));
        assert_eq!(p.due.len(), 1);
        assert!(p.due[0].in_flight.is_some() && !p.due[0].terminate);
        let done = MeasurementOutcome::Finished {
            phase: Phase::Successful,
            message: None,
        };
        let p = plan_run(&run, &s, &[taken("smoke", 9, done)], at(9));
        assert_eq!(p.status.phase, AnalysisPhase::Successful);
        let ms = p.status.metric_results.unwrap()[0]
            .measurements
            .clone()
            .unwrap();
        assert_eq!(ms.len(), 1);
        assert_eq!(ms[0].started_at, Some(to_time(at(0))));
        assert_eq!(ms[0].finished_at, Some(to_time(at(9))));
        assert_eq!(ms[0].metadata.as_ref().unwrap()["job-name"], "u-1.smoke.1");
        assert!(ms[0].resume_at.is_none());
    }

    #[test]
    fn due_job_measurement_yields_the_job_to_create_and_its_in_flight_record() {
        let metric = json!({
            "name": "smoke",
            "provider": {"job": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}}
        });
        let run = run_from(json!({"metrics": [metric]}));
        let s = SecretValues::new();
        let plan = plan_run(&run, &s, &[], at(0));
        let (job, taken) = job_to_create(&run, &plan.due[0], None, at(0)).unwrap();
        assert_eq!(job.metadata.name.as_deref(), Some("u-1.smoke.1"));
        assert_eq!(job.metadata.namespace.as_deref(), Some("ns"));
        let p = plan_run(&run, &s, &[taken], at(0));
        let m = &p.status.metric_results.unwrap()[0]
            .measurements
            .clone()
            .unwrap()[0];
        assert_eq!(m.phase, AnalysisPhase::Running);
        assert_eq!(m.metadata.as_ref().unwrap()["job-name"], "u-1.smoke.1");
        assert_eq!(p.due.len(), 1, "checked again right away");
        assert!(p.due[0].in_flight.is_some());
        assert!(job_to_create(&run, &p.due[0], None, at(0)).is_none());
    }

    #[test]
    fn terminating_run_stops_an_in_flight_job() {
        let metric = json!({
            "name": "smoke",
            "provider": {"job": {"spec": {"template": {"spec": {"containers": []}}}}}
        });
        let mut run = run_from(json!({"metrics": [metric]}));
        let s = SecretValues::new();
        let started = MeasurementOutcome::InFlight {
            metadata: BTreeMap::new(),
            resume_at: at(50),
        };
        let p = plan_run(&run, &s, &[taken("smoke", 0, started)], at(0));
        write(&mut run, &p);
        run.spec.terminate = Some(true);
        // The first pass asks to stop the job; the controller takes that measurement and plans
        // again with the same run, so only the second pass's status is written (as upstream,
        // which terminates and assesses in one reconcile).
        let p = plan_run(&run, &s, &[], at(1));
        assert_eq!(p.due.len(), 1);
        assert!(p.due[0].terminate);
        let stopped = MeasurementOutcome::Finished {
            phase: Phase::Inconclusive,
            message: None,
        };
        let p = plan_run(&run, &s, &[taken("smoke", 1, stopped)], at(1));
        let r = &p.status.metric_results.as_ref().unwrap()[0];
        assert_eq!(
            r.measurements.as_ref().unwrap()[0].message.as_deref(),
            Some("Metric Terminated")
        );
        assert_eq!(p.status.phase, AnalysisPhase::Inconclusive);
    }

    #[test]
    fn measurement_retention_keeps_the_newest() {
        let metric = web_metric(json!({"interval": "1s"}));
        let mut run = run_from(json!({
            "metrics": [metric], "args": args_service(),
            "measurementRetention": [{"metricName": "ok-rate", "limit": 2}]
        }));
        for i in 0..4 {
            let p = plan_run(
                &run,
                &SecretValues::new(),
                &[taken("ok-rate", i, value(1.0))],
                at(i),
            );
            write(&mut run, &p);
        }
        let r = &run
            .status
            .as_ref()
            .unwrap()
            .metric_results
            .as_ref()
            .unwrap()[0];
        assert_eq!(r.count, Some(4));
        let kept: Vec<_> = r
            .measurements
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| m.started_at.clone())
            .collect();
        assert_eq!(kept, vec![Some(to_time(at(2))), Some(to_time(at(3)))]);
    }

    #[test]
    fn ttl_strategy_deletes_completed_runs_after_the_right_delay() {
        let mut run = run_from(json!({
            "metrics": [web_metric(json!({}))], "args": args_service(),
            "ttlStrategy": {"secondsAfterCompletion": 100, "secondsAfterSuccess": 10}
        }));
        let p = plan_run(
            &run,
            &SecretValues::new(),
            &[taken("ok-rate", 0, value(1.0))],
            at(0),
        );
        assert_eq!(p.status.phase, AnalysisPhase::Successful);
        assert_eq!(p.requeue_after, Some(std::time::Duration::from_secs(11)));
        write(&mut run, &p);
        assert!(!plan_run(&run, &SecretValues::new(), &[], at(10)).delete);
        assert!(plan_run(&run, &SecretValues::new(), &[], at(11)).delete);
        run.status.as_mut().unwrap().phase = AnalysisPhase::Failed;
        assert!(!plan_run(&run, &SecretValues::new(), &[], at(11)).delete);
        assert!(plan_run(&run, &SecretValues::new(), &[], at(101)).delete);
    }

    #[test]
    fn arg_valued_limits_and_conditions_are_substituted() {
        let metric = json!({
            "name": "m",
            "count": "{{args.count}}",
            "interval": "{{args.every}}",
            "successCondition": "result >= {{args.threshold}}",
            "provider": {"web": {"url": "http://x"}}
        });
        let run = run_from(json!({"metrics": [metric], "args": [
            {"name": "count", "value": "2"}, {"name": "every", "value": "10s"}, {"name": "threshold", "value": "0.9"}
        ]}));
        let p = plan_run(
            &run,
            &SecretValues::new(),
            &[taken("m", 0, value(0.95))],
            at(0),
        );
        assert_eq!(p.status.phase, AnalysisPhase::Running);
        assert_eq!(p.requeue_after, Some(std::time::Duration::from_secs(10)));
        let p2 = plan_run(
            &run,
            &SecretValues::new(),
            &[taken("m", 0, value(0.5))],
            at(0),
        );
        assert_eq!(p2.status.phase, AnalysisPhase::Failed);
    }

    #[test]
    fn provider_errors_become_measurement_messages_without_the_metric_prefix() {
        let err = ProviderError {
            metric: "m".into(),
            kind: crate::analysis::provider::ProviderErrorKind::Measurement("boom".into()),
        };
        assert_eq!(
            MeasurementOutcome::from(Err(err)),
            MeasurementOutcome::Error("boom".into())
        );
        assert_eq!(
            MeasurementOutcome::from(JobProgress::Running { resume_at: at(3) }),
            MeasurementOutcome::InFlight {
                metadata: BTreeMap::new(),
                resume_at: at(3)
            }
        );
    }

    fn ms(secs: i64, millis: i64) -> DateTime<Utc> {
        at(secs) + chrono::Duration::milliseconds(millis)
    }

    fn taken_at(metric: &str, finished: DateTime<Utc>) -> TakenMeasurement {
        TakenMeasurement {
            metric: metric.to_string(),
            started_at: finished,
            finished_at: finished,
            outcome: value(1.0),
        }
    }

    /// The plan of `run`'s first measurement, taken at 0.7 s.
    fn measured_once(run: &AnalysisRun) -> RunPlan {
        super::plan_run(
            run,
            &SecretValues::new(),
            &[taken_at("ok-rate", ms(0, 700))],
            &FinishTimes::default(),
            ms(0, 700),
        )
    }

    fn every_second(count: i32) -> AnalysisRun {
        run_from(json!({
            "metrics": [web_metric(json!({"interval": "1s", "count": count}))],
            "args": args_service()
        }))
    }

    #[test]
    fn the_next_measurement_is_due_one_interval_after_the_exact_finish() {
        let mut run = every_second(3);
        // Measured at 0.7 s: the status can only say second 0.
        let first = measured_once(&run);
        let stored = &first.status.metric_results.as_ref().unwrap()[0]
            .measurements
            .as_ref()
            .unwrap()[0];
        assert_eq!(stored.finished_at, Some(to_time(at(0))));
        assert_eq!(
            first.requeue_after,
            Some(std::time::Duration::from_secs(1)),
            "due at 1.7 s"
        );
        write(&mut run, &first);
        let remembered = &first.finish_times;
        assert!(!remembered.is_empty());

        // At 1.0 s (the stored second + 1 s) nothing is due yet; at 1.7 s it is.
        let early = super::plan_run(&run, &SecretValues::new(), &[], remembered, at(1));
        assert!(
            early.due.is_empty(),
            "not due 300 ms after the last measurement"
        );
        assert_eq!(
            early.requeue_after,
            Some(std::time::Duration::from_millis(700))
        );
        assert_eq!(&early.finish_times, remembered, "still describes it");
        let due = super::plan_run(&run, &SecretValues::new(), &[], remembered, ms(1, 700));
        assert_eq!(due.due.len(), 1);
    }

    #[test]
    fn without_a_remembered_finish_the_stored_second_schedules() {
        let mut run = every_second(3);
        let first = measured_once(&run);
        write(&mut run, &first);
        // A restarted controller knows only the stored second 0.
        let p = plan_run(&run, &SecretValues::new(), &[], at(1));
        assert_eq!(p.due.len(), 1);
    }

    #[test]
    fn a_remembered_finish_of_an_older_measurement_is_ignored_and_dropped() {
        let mut run = every_second(3);
        let first = measured_once(&run);
        write(&mut run, &first);
        let old = first.finish_times.clone();
        // Another controller (or this one before a conflict) took the second measurement at
        // 1.2 s; the memory of the first no longer describes the last measurement.
        let second = plan_run(
            &run,
            &SecretValues::new(),
            &[taken_at("ok-rate", ms(1, 200))],
            ms(1, 200),
        );
        write(&mut run, &second);
        let p = super::plan_run(&run, &SecretValues::new(), &[], &old, at(2));
        assert_eq!(p.due.len(), 1, "due at the stored second 1 + 1 s");
        assert!(p.finish_times.is_empty());
    }

    #[test]
    fn a_completed_run_remembers_no_finish_times() {
        let run = every_second(1);
        let p = measured_once(&run);
        assert_eq!(p.status.phase, AnalysisPhase::Successful);
        assert!(p.finish_times.is_empty());
    }
}
