//! Pure assessment rules of an AnalysisRun (COMPAT §8), following upstream's
//! `analysis/analysis.go` (`assessMetricStatus`, `assessRunStatus`, `generateMetricTasks`,
//! `calculateNextReconcileTime`) and `utils/evaluate` (`EvaluateResult`) case by case:
//! one measurement → phase, counters → metric phase, metric phases → run phase and summaries,
//! and when the next measurement of a metric is due. Time is always an input.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::expr::{Condition, Value};

/// How long to wait before retrying a measurement that ended in Error (upstream
/// `DefaultErrorRetryInterval`), whatever the metric's interval.
pub const ERROR_RETRY_INTERVAL_SECONDS: i64 = 10;
/// Measurements kept per metric unless `measurementRetention` says otherwise.
pub const DEFAULT_MEASUREMENT_RETENTION: usize = 10;
/// Default `consecutiveErrorLimit`.
pub const DEFAULT_CONSECUTIVE_ERROR_LIMIT: i32 = 4;
/// Message of a run stopped by `spec.terminate` (upstream wording).
pub const RUN_TERMINATED_MESSAGE: &str = "Run Terminated";
/// Message given to an in-flight measurement that termination ended (upstream wording).
pub const METRIC_TERMINATED_MESSAGE: &str = "Metric Terminated";

/// Phase of a measurement, a metric, or a run, as the decision code sees it: a `Copy` twin of
/// [`sluice_api::common::AnalysisPhase`] without its `Other` (unknown string) case; convert at
/// the API edge with `From`/[`Phase::from_api`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Phase {
    Pending,
    Running,
    Successful,
    Failed,
    Error,
    Inconclusive,
}

impl Phase {
    /// Whether the phase is final.
    pub fn is_completed(self) -> bool {
        matches!(
            self,
            Phase::Successful | Phase::Failed | Phase::Error | Phase::Inconclusive
        )
    }

    /// Rank in upstream's order Successful < Running < Pending < Inconclusive < Error < Failed;
    /// the run takes the worst phase of its metrics.
    pub fn severity(self) -> u8 {
        match self {
            Phase::Successful => 0,
            Phase::Running => 1,
            Phase::Pending => 2,
            Phase::Inconclusive => 3,
            Phase::Error => 4,
            Phase::Failed => 5,
        }
    }

    /// Upstream's string for the phase.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Successful => "Successful",
            Phase::Failed => "Failed",
            Phase::Error => "Error",
            Phase::Inconclusive => "Inconclusive",
        }
    }

    /// Parses upstream's string; anything else (including empty) is `None`.
    pub fn parse(s: &str) -> Option<Phase> {
        Some(match s {
            "Pending" => Phase::Pending,
            "Running" => Phase::Running,
            "Successful" => Phase::Successful,
            "Failed" => Phase::Failed,
            "Error" => Phase::Error,
            "Inconclusive" => Phase::Inconclusive,
            _ => return None,
        })
    }
}

impl From<Phase> for sluice_api::common::AnalysisPhase {
    fn from(p: Phase) -> Self {
        sluice_api::common::AnalysisPhase::from(p.as_str())
    }
}

impl Phase {
    /// The decision phase of an API phase; an unknown string counts as Pending (not started),
    /// so the controller re-assesses rather than trusting a value it does not understand.
    pub fn from_api(p: &sluice_api::common::AnalysisPhase) -> Phase {
        Phase::parse(p.as_str()).unwrap_or(Phase::Pending)
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The phase of one measurement and, for Error, why.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasurementAssessment {
    pub phase: Phase,
    pub message: Option<String>,
}

/// Decides one measurement from its conditions and measured value (upstream `EvaluateResult`):
/// no conditions → Successful; only success → Failed when false; only failure → Successful when
/// false; failure true → Failed (even when success is also true); neither true → Inconclusive.
/// A condition that cannot be evaluated makes the measurement Error, naming the condition.
pub fn assess_measurement(
    success: Option<&Condition>,
    failure: Option<&Condition>,
    value: &Value,
) -> MeasurementAssessment {
    let evaluate = |kind: &str, cond: &Condition| {
        cond.eval_value(value).map_err(|e| {
            let empty = match value {
                Value::Nil => true,
                Value::List(items) => items.is_empty(),
                _ => false,
            };
            if empty {
                format!(
                    "could not evaluate {kind} \"{}\": metric result is nil or empty: no data returned from the metric provider",
                    cond.source()
                )
            } else {
                format!("could not evaluate {kind} \"{}\": {e}", cond.source())
            }
        })
    };
    let error = |message: String| MeasurementAssessment {
        phase: Phase::Error,
        message: Some(message),
    };
    let succeeded = match success.map(|c| evaluate("successCondition", c)).transpose() {
        Ok(v) => v,
        Err(m) => return error(m),
    };
    let failed = match failure.map(|c| evaluate("failureCondition", c)).transpose() {
        Ok(v) => v,
        Err(m) => return error(m),
    };
    let phase = match (succeeded, failed) {
        (None, None) => Phase::Successful,
        (Some(s), None) => {
            if s {
                Phase::Successful
            } else {
                Phase::Failed
            }
        }
        (None, Some(f)) => {
            if f {
                Phase::Failed
            } else {
                Phase::Successful
            }
        }
        (Some(_), Some(true)) => Phase::Failed,
        (Some(true), Some(false)) => Phase::Successful,
        (Some(false), Some(false)) => Phase::Inconclusive,
    };
    MeasurementAssessment {
        phase,
        message: None,
    }
}

/// The limits of one metric, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricPolicy {
    /// `failureLimit` (default 0); −1 disables it.
    pub failure_limit: i32,
    /// `inconclusiveLimit` (default 0).
    pub inconclusive_limit: i32,
    /// `consecutiveErrorLimit` (default 4).
    pub consecutive_error_limit: i32,
    /// `consecutiveSuccessLimit` (0 = off).
    pub consecutive_success_limit: i32,
    /// Measurements to take: `count`, or 1 with neither count nor interval, `None` = unlimited.
    pub effective_count: Option<i32>,
    /// Time between measurements (`interval`).
    pub interval: Option<Duration>,
    /// Wait after the run starts before the first measurement (`initialDelay`).
    pub initial_delay: Option<Duration>,
}

impl Default for MetricPolicy {
    fn default() -> Self {
        MetricPolicy {
            failure_limit: 0,
            inconclusive_limit: 0,
            consecutive_error_limit: DEFAULT_CONSECUTIVE_ERROR_LIMIT,
            consecutive_success_limit: 0,
            effective_count: Some(1),
            interval: None,
            initial_delay: None,
        }
    }
}

/// Upstream `EffectiveCount`: `count` when positive; otherwise 1 without an interval and
/// unlimited with one.
pub fn effective_count(count: Option<i32>, has_interval: bool) -> Option<i32> {
    match count {
        Some(c) if c != 0 => Some(c),
        _ if has_interval => None,
        _ => Some(1),
    }
}

/// Upstream `ValidateMetric`: limits that contradict each other make the run Error before any
/// measurement. Returns the message upstream uses.
pub fn validate_policy(policy: &MetricPolicy, count: i32) -> Result<(), String> {
    let p = policy;
    if count < 0 {
        return Err(format!("count must be >= 0, got {count}"));
    }
    if p.consecutive_success_limit < 0 {
        return Err("consecutiveSuccessLimit must be >= 0".to_string());
    }
    if p.failure_limit < -1 {
        return Err("failureLimit must be >= 0, or -1 to be disabled".to_string());
    }
    if p.consecutive_success_limit == 0 && p.failure_limit == -1 {
        return Err("failureLimit and consecutiveSuccessLimit cannot both be disabled".to_string());
    }
    if p.inconclusive_limit < 0 {
        return Err("inconclusiveLimit must be >= 0".to_string());
    }
    if p.consecutive_error_limit < 0 {
        return Err("consecutiveErrorLimit must be >= 0".to_string());
    }
    if count > 0 {
        if p.failure_limit >= 0 {
            if count < p.failure_limit + p.consecutive_success_limit {
                return Err(format!(
                    "count ({count}) must be >= failureLimit + consecutiveSuccessLimit ({} + {}) if both >= 0",
                    p.failure_limit, p.consecutive_success_limit
                ));
            }
        } else if count < p.consecutive_success_limit {
            return Err("count must be >= consecutiveSuccessLimit".to_string());
        }
        if count < p.inconclusive_limit {
            return Err("count must be >= inconclusiveLimit".to_string());
        }
    }
    if count > 1 && p.interval.is_none() {
        return Err("interval must be specified when count > 1".to_string());
    }
    Ok(())
}

/// The counters of a metric result (`count`, `successful`, ... in `status.metricResults[]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricCounts {
    pub count: i32,
    pub successful: i32,
    pub failed: i32,
    pub inconclusive: i32,
    pub error: i32,
    pub consecutive_error: i32,
    pub consecutive_success: i32,
}

impl MetricCounts {
    /// Accounts for one completed measurement. Errors do not count towards `count`, so an
    /// erroring metric keeps retrying until `consecutiveErrorLimit` is exceeded.
    pub fn record(&mut self, phase: Phase) {
        match phase {
            Phase::Successful => {
                self.successful += 1;
                self.count += 1;
                self.consecutive_error = 0;
                self.consecutive_success += 1;
            }
            Phase::Failed => {
                self.failed += 1;
                self.count += 1;
                self.consecutive_error = 0;
                self.consecutive_success = 0;
            }
            Phase::Inconclusive => {
                self.inconclusive += 1;
                self.count += 1;
                self.consecutive_error = 0;
                self.consecutive_success = 0;
            }
            Phase::Error => {
                self.error += 1;
                self.consecutive_error += 1;
                self.consecutive_success = 0;
            }
            Phase::Pending | Phase::Running => {}
        }
    }
}

/// Which limit a metric exceeded, with upstream's wording (e.g. `failed (2) > failureLimit (1)`).
/// Later checks win, as upstream: Error over Inconclusive over Failed.
pub fn limit_breach(policy: &MetricPolicy, counts: &MetricCounts) -> Option<(Phase, String)> {
    let mut breach = None;
    if policy.failure_limit >= 0 && counts.failed > policy.failure_limit {
        breach = Some((
            Phase::Failed,
            format!(
                "failed ({}) > failureLimit ({})",
                counts.failed, policy.failure_limit
            ),
        ));
    }
    if counts.inconclusive > policy.inconclusive_limit {
        breach = Some((
            Phase::Inconclusive,
            format!(
                "inconclusive ({}) > inconclusiveLimit ({})",
                counts.inconclusive, policy.inconclusive_limit
            ),
        ));
    }
    if counts.consecutive_error > policy.consecutive_error_limit {
        breach = Some((
            Phase::Error,
            format!(
                "consecutiveErrors ({}) > consecutiveErrorLimit ({})",
                counts.consecutive_error, policy.consecutive_error_limit
            ),
        ));
    }
    breach
}

/// What is known of a metric's result when assessing it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricState {
    /// The phase recorded so far; a completed phase is final.
    pub phase: Phase,
    pub counts: MetricCounts,
    /// Number of measurements recorded.
    pub measurements: usize,
    /// Whether the last measurement has finished (a job measurement may still be running).
    pub last_completed: bool,
}

/// The phase of one metric (upstream `assessMetricStatus`). `terminating` is true when the run
/// was terminated or another (non-dry-run) metric already ended unsuccessfully: metrics that
/// have not measured, or measure indefinitely, then end Successful.
pub fn assess_metric(policy: &MetricPolicy, state: &MetricState, terminating: bool) -> Phase {
    if state.phase.is_completed() {
        return state.phase;
    }
    if state.measurements == 0 {
        return if terminating {
            Phase::Successful
        } else {
            Phase::Pending
        };
    }
    if !state.last_completed {
        return Phase::Running;
    }
    if let Some((phase, _)) = limit_breach(policy, &state.counts) {
        return phase;
    }
    let success_limit_on = policy.consecutive_success_limit > 0;
    if success_limit_on && state.counts.consecutive_success >= policy.consecutive_success_limit {
        return Phase::Successful;
    }
    if let Some(count) = policy.effective_count
        && state.counts.count >= count
    {
        let failure_limit_on = policy.failure_limit >= 0;
        return match (failure_limit_on, success_limit_on) {
            // Neither limit decided within `count` measurements.
            (true, true) => Phase::Inconclusive,
            (false, true) => Phase::Failed,
            _ => Phase::Successful,
        };
    }
    if terminating {
        Phase::Successful
    } else {
        Phase::Running
    }
}

/// Whether the run stops taking new measurements: `spec.terminate`, or a non-dry-run metric
/// already Failed, Error or Inconclusive (upstream `IsTerminating`).
pub fn is_terminating(terminate: bool, metric_phases: &[(Phase, bool)]) -> bool {
    terminate
        || metric_phases.iter().any(|(phase, dry_run)| {
            !dry_run && matches!(phase, Phase::Failed | Phase::Error | Phase::Inconclusive)
        })
}

/// `status.runSummary` / `status.dryRunSummary`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    pub count: i32,
    pub successful: i32,
    pub failed: i32,
    pub inconclusive: i32,
    pub error: i32,
}

/// One metric as the run assessment sees it, after [`assess_metric`].
#[derive(Debug, Clone, PartialEq)]
pub struct AssessedMetric<'a> {
    pub name: &'a str,
    pub dry_run: bool,
    pub policy: &'a MetricPolicy,
    /// `None` while the metric has no result yet (e.g. waiting for `initialDelay`).
    pub phase: Option<Phase>,
    pub counts: MetricCounts,
    /// The metric result's message (its last measurement's message).
    pub message: Option<&'a str>,
}

/// The outcome of assessing the whole run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunAssessment {
    pub phase: Phase,
    pub message: String,
    pub run_summary: RunSummary,
    pub dry_run_summary: RunSummary,
    /// New messages for dry-run metrics that ended on a limit (`Metric assessed Failed due to ...`).
    pub dry_run_messages: Vec<(String, String)>,
}

/// The run's phase and message from its metrics (upstream `assessRunStatus`): Running until every
/// metric completed, then the worst non-dry-run metric phase; when terminating, the worst phase so
/// far (Successful if none). The message names the worst metric and the limit it broke, plus the
/// metric's last error message.
pub fn assess_run(
    metrics: &[AssessedMetric<'_>],
    terminate: bool,
    terminating: bool,
) -> RunAssessment {
    let mut worst: Option<Phase> = None;
    let mut message = if terminate {
        RUN_TERMINATED_MESSAGE.to_string()
    } else {
        String::new()
    };
    let mut everything_completed = true;
    let mut run_summary = RunSummary::default();
    let mut dry_run_summary = RunSummary::default();
    let mut dry_run_messages = Vec::new();

    for m in metrics {
        let summary = if m.dry_run {
            &mut dry_run_summary
        } else {
            &mut run_summary
        };
        summary.count += 1;
        let Some(phase) = m.phase else {
            everything_completed = false;
            continue;
        };
        if !phase.is_completed() {
            everything_completed = false;
            continue;
        }
        let breach = limit_breach(m.policy, &m.counts);
        if m.dry_run {
            worst.get_or_insert(Phase::Successful);
            if let Some((_, why)) = &breach {
                dry_run_messages.push((
                    m.name.to_string(),
                    format!("Metric assessed {phase} due to {why}"),
                ));
            }
        } else if worst.is_none_or(|w| phase.severity() > w.severity()) {
            worst = Some(phase);
            if let Some((_, why)) = &breach {
                message = format!("Metric \"{}\" assessed {phase} due to {why}", m.name);
                if let Some(last) = m.message.filter(|s| !s.is_empty()) {
                    message.push_str(&format!(": \"Error Message: {last}\""));
                }
            }
        }
        // The summary counts the limit that decided the metric; anything else is a success.
        match breach.map(|(p, _)| p) {
            Some(Phase::Error) => summary.error += 1,
            Some(Phase::Failed) => summary.failed += 1,
            Some(Phase::Inconclusive) => summary.inconclusive += 1,
            _ => summary.successful += 1,
        }
    }
    let message = message.trim().to_string();
    let (phase, message) = if terminating {
        (worst.unwrap_or(Phase::Successful), message)
    } else if !everything_completed || worst.is_none() {
        (Phase::Running, String::new())
    } else {
        (worst.unwrap_or(Phase::Successful), message)
    };
    RunAssessment {
        phase,
        message,
        run_summary,
        dry_run_summary,
        dry_run_messages,
    }
}

/// The last measurement of a metric, as scheduling needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LastMeasurement {
    pub phase: Phase,
    pub finished_at: Option<DateTime<Utc>>,
    /// When an in-flight measurement (a job) should be checked again.
    pub resume_at: Option<DateTime<Utc>>,
}

/// When the next measurement of a metric is due, or `None` when no further one will be taken
/// (metric completed, count reached, or run terminating with nothing in flight). A time at or
/// before `now` means "due now". An in-flight measurement is due at its `resumeAt` (immediately
/// when terminating, so it can be stopped). After an Error the retry comes 10 s after it
/// finished, whatever the interval.
pub fn next_due(
    policy: &MetricPolicy,
    metric_completed: bool,
    counts: &MetricCounts,
    last: Option<&LastMeasurement>,
    run_started_at: Option<DateTime<Utc>>,
    terminating: bool,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if metric_completed {
        return None;
    }
    let Some(last) = last else {
        if terminating {
            return None;
        }
        return Some(match policy.initial_delay {
            Some(delay) => run_started_at.unwrap_or(now) + delay,
            None => now,
        });
    };
    let Some(finished_at) = last.finished_at else {
        if terminating {
            return Some(now);
        }
        return Some(last.resume_at.unwrap_or(now));
    };
    if terminating {
        return None;
    }
    if let Some(count) = policy.effective_count
        && counts.count >= count
    {
        return None;
    }
    let interval = if last.phase == Phase::Error {
        Duration::seconds(ERROR_RETRY_INTERVAL_SECONDS)
    } else {
        policy.interval?
    };
    Some(finished_at + interval)
}

/// Keeps the newest measurements: `measurementRetention` limit when positive, else 10.
pub fn retain_measurements<T>(measurements: &mut Vec<T>, retention_limit: Option<i32>) {
    let limit = match retention_limit {
        Some(n) if n > 0 => n as usize,
        _ => DEFAULT_MEASUREMENT_RETENTION,
    };
    if measurements.len() > limit {
        measurements.drain(..measurements.len() - limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Phase::*;

    fn cond(s: &str) -> Condition {
        Condition::parse(s).unwrap()
    }

    #[test]
    fn golden_measurement_phase_from_conditions() {
        // (success, failure, expected)
        let cases: &[(Option<&str>, Option<&str>, Phase)] = &[
            (None, None, Successful),
            (Some("true"), None, Successful),
            (Some("false"), None, Failed),
            (None, Some("false"), Successful),
            (None, Some("true"), Failed),
            (Some("true"), Some("false"), Successful),
            (Some("false"), Some("true"), Failed),
            (Some("true"), Some("true"), Failed),
            (Some("false"), Some("false"), Inconclusive),
            (Some("result.x > 1"), None, Error),
            (Some("true"), Some("result.x > 1"), Error),
        ];
        for (s, f, want) in cases {
            let (s, f) = (s.map(cond), f.map(cond));
            let got = assess_measurement(s.as_ref(), f.as_ref(), &Value::Bool(true));
            assert_eq!(got.phase, *want, "success={s:?} failure={f:?}");
            assert_eq!(got.message.is_some(), *want == Error);
        }
    }

    #[test]
    fn evaluation_error_names_condition_and_explains_empty_results() {
        let c = cond("result[0] > 1");
        let got = assess_measurement(Some(&c), None, &Value::List(vec![]));
        assert_eq!(
            got.message.as_deref(),
            Some(
                "could not evaluate successCondition \"result[0] > 1\": metric result is nil or empty: no data returned from the metric provider"
            )
        );
        let got = assess_measurement(None, Some(&c), &Value::String("x".into()));
        assert_eq!(
            got.message.as_deref(),
            Some(
                "could not evaluate failureCondition \"result[0] > 1\": invalid operation: > (mismatched types string and int)"
            )
        );
    }

    fn counts(
        count: i32,
        failed: i32,
        inconclusive: i32,
        consecutive_error: i32,
        consecutive_success: i32,
    ) -> MetricCounts {
        MetricCounts {
            count,
            successful: count - failed - inconclusive,
            failed,
            inconclusive,
            error: consecutive_error,
            consecutive_error,
            consecutive_success,
        }
    }

    fn state(c: MetricCounts) -> MetricState {
        MetricState {
            phase: Running,
            counts: c,
            measurements: (c.count + c.error) as usize,
            last_completed: true,
        }
    }

    #[test]
    fn golden_metric_phase_from_counts_and_limits() {
        let p =
            |failure_limit, inconclusive_limit, consecutive_success_limit, count| MetricPolicy {
                failure_limit,
                inconclusive_limit,
                consecutive_success_limit,
                effective_count: count,
                interval: Some(Duration::seconds(10)),
                ..MetricPolicy::default()
            };
        // (policy, counts, terminating, expected)
        let cases: Vec<(MetricPolicy, MetricCounts, bool, Phase)> = vec![
            (p(0, 0, 0, Some(3)), counts(1, 0, 0, 0, 1), false, Running),
            (
                p(0, 0, 0, Some(3)),
                counts(3, 0, 0, 0, 3),
                false,
                Successful,
            ),
            (p(0, 0, 0, Some(3)), counts(1, 1, 0, 0, 0), false, Failed),
            (p(2, 0, 0, Some(5)), counts(3, 2, 0, 0, 0), false, Running),
            (p(2, 0, 0, Some(5)), counts(4, 3, 0, 0, 0), false, Failed),
            (
                p(2, 0, 0, Some(3)),
                counts(3, 2, 0, 0, 0),
                false,
                Successful,
            ),
            (p(-1, 0, 2, Some(5)), counts(4, 4, 0, 0, 0), false, Running),
            (p(-1, 0, 2, Some(5)), counts(5, 4, 0, 0, 0), false, Failed),
            (
                p(-1, 0, 2, Some(5)),
                counts(3, 1, 0, 0, 2),
                false,
                Successful,
            ),
            (
                p(1, 0, 2, Some(4)),
                counts(4, 1, 0, 0, 1),
                false,
                Inconclusive,
            ),
            (
                p(0, 0, 0, Some(3)),
                counts(1, 0, 1, 0, 0),
                false,
                Inconclusive,
            ),
            (p(0, 1, 0, Some(3)), counts(1, 0, 1, 0, 0), false, Running),
            (p(0, 0, 0, Some(3)), counts(0, 0, 0, 4, 0), false, Running),
            (p(0, 0, 0, Some(3)), counts(0, 0, 0, 5, 0), false, Error),
            (p(0, 0, 0, None), counts(100, 0, 0, 0, 100), false, Running),
            (
                p(0, 0, 0, None),
                counts(100, 0, 0, 0, 100),
                true,
                Successful,
            ),
            // Error outranks Inconclusive outranks Failed when several limits break at once.
            (p(0, 0, 0, Some(9)), counts(2, 1, 1, 5, 0), false, Error),
            (
                p(0, 0, 0, Some(9)),
                counts(2, 1, 1, 0, 0),
                false,
                Inconclusive,
            ),
        ];
        for (policy, c, terminating, want) in cases {
            assert_eq!(
                assess_metric(&policy, &state(c), terminating),
                want,
                "{policy:?} {c:?} terminating={terminating}"
            );
        }
    }

    #[test]
    fn metric_without_measurements_is_pending_or_successful_when_terminating() {
        let s = MetricState {
            phase: Pending,
            counts: MetricCounts::default(),
            measurements: 0,
            last_completed: false,
        };
        assert_eq!(assess_metric(&MetricPolicy::default(), &s, false), Pending);
        assert_eq!(
            assess_metric(&MetricPolicy::default(), &s, true),
            Successful
        );
        let inflight = MetricState {
            measurements: 1,
            ..s
        };
        assert_eq!(
            assess_metric(&MetricPolicy::default(), &inflight, false),
            Running
        );
        let done = MetricState { phase: Failed, ..s };
        assert_eq!(
            assess_metric(&MetricPolicy::default(), &done, false),
            Failed
        );
    }

    #[test]
    fn counters_follow_upstream_bookkeeping() {
        let mut c = MetricCounts::default();
        for phase in [
            Successful,
            Successful,
            Error,
            Error,
            Failed,
            Inconclusive,
            Successful,
        ] {
            c.record(phase);
        }
        assert_eq!(
            c,
            MetricCounts {
                count: 5,
                successful: 3,
                failed: 1,
                inconclusive: 1,
                error: 2,
                consecutive_error: 0,
                consecutive_success: 1,
            }
        );
    }

    #[test]
    fn worst_metric_decides_the_run_and_names_the_cause() {
        let policy = MetricPolicy::default();
        let ok = AssessedMetric {
            name: "latency",
            dry_run: false,
            policy: &policy,
            phase: Some(Successful),
            counts: counts(1, 0, 0, 0, 1),
            message: None,
        };
        let bad = AssessedMetric {
            name: "errors",
            phase: Some(Error),
            counts: counts(0, 0, 0, 5, 0),
            message: Some("connection refused"),
            ..ok.clone()
        };
        let got = assess_run(&[ok.clone(), bad], false, true);
        assert_eq!(got.phase, Error);
        assert_eq!(
            got.message,
            "Metric \"errors\" assessed Error due to consecutiveErrors (5) > consecutiveErrorLimit (4): \"Error Message: connection refused\""
        );
        assert_eq!(
            got.run_summary,
            RunSummary {
                count: 2,
                successful: 1,
                failed: 0,
                inconclusive: 0,
                error: 1
            }
        );
        let all_ok = assess_run(&[ok.clone(), ok.clone()], false, false);
        assert_eq!((all_ok.phase, all_ok.message.as_str()), (Successful, ""));
        let running = AssessedMetric {
            phase: Some(Running),
            ..ok.clone()
        };
        assert_eq!(
            assess_run(&[ok.clone(), running], false, false).phase,
            Running
        );
        let not_started = AssessedMetric { phase: None, ..ok };
        assert_eq!(assess_run(&[not_started], false, false).phase, Running);
    }

    #[test]
    fn phase_order_is_successful_running_pending_inconclusive_error_failed() {
        let order = [Successful, Running, Pending, Inconclusive, Error, Failed];
        for pair in order.windows(2) {
            assert!(pair[0].severity() < pair[1].severity());
        }
        let policy = MetricPolicy::default();
        let m = |name, phase, c| AssessedMetric {
            name,
            dry_run: false,
            policy: &policy,
            phase: Some(phase),
            counts: c,
            message: None,
        };
        let got = assess_run(
            &[
                m("a", Failed, counts(1, 1, 0, 0, 0)),
                m("b", Inconclusive, counts(1, 0, 1, 0, 0)),
            ],
            false,
            true,
        );
        assert_eq!(got.phase, Failed);
        assert_eq!(
            got.message,
            "Metric \"a\" assessed Failed due to failed (1) > failureLimit (0)"
        );
    }

    #[test]
    fn dry_run_metrics_never_change_the_run_phase_but_are_summarized() {
        let policy = MetricPolicy::default();
        let dry_failed = AssessedMetric {
            name: "experimental",
            dry_run: true,
            policy: &policy,
            phase: Some(Failed),
            counts: counts(1, 1, 0, 0, 0),
            message: None,
        };
        let real_ok = AssessedMetric {
            name: "real",
            dry_run: false,
            phase: Some(Successful),
            counts: counts(1, 0, 0, 0, 1),
            ..dry_failed.clone()
        };
        let got = assess_run(&[dry_failed.clone(), real_ok], false, false);
        assert_eq!(got.phase, Successful);
        assert_eq!(got.message, "");
        assert_eq!(
            got.dry_run_summary,
            RunSummary {
                count: 1,
                failed: 1,
                ..RunSummary::default()
            }
        );
        assert_eq!(got.run_summary.count, 1);
        assert_eq!(
            got.dry_run_messages,
            vec![(
                "experimental".to_string(),
                "Metric assessed Failed due to failed (1) > failureLimit (0)".to_string()
            )]
        );
        assert!(!is_terminating(false, &[(Failed, true)]));
        assert!(is_terminating(false, &[(Failed, false)]));
        assert!(is_terminating(true, &[]));
        assert!(!is_terminating(
            false,
            &[(Successful, false), (Running, false)]
        ));
    }

    #[test]
    fn terminated_run_without_results_is_successful_with_run_terminated() {
        let policy = MetricPolicy::default();
        let pending = AssessedMetric {
            name: "m",
            dry_run: false,
            policy: &policy,
            phase: None,
            counts: MetricCounts::default(),
            message: None,
        };
        let got = assess_run(&[pending], true, true);
        assert_eq!(
            (got.phase, got.message.as_str()),
            (Successful, "Run Terminated")
        );
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn golden_next_due_scheduling() {
        let every_minute = MetricPolicy {
            interval: Some(Duration::seconds(60)),
            effective_count: Some(3),
            ..MetricPolicy::default()
        };
        let delayed = MetricPolicy {
            initial_delay: Some(Duration::seconds(30)),
            ..every_minute.clone()
        };
        let done = |phase, finished| LastMeasurement {
            phase,
            finished_at: Some(at(finished)),
            resume_at: None,
        };
        let once = MetricPolicy::default();
        let one = counts(1, 0, 0, 0, 1);
        let now = at(100);
        // (policy, completed, counts, last, terminating, expected)
        type Case<'a> = (
            &'a MetricPolicy,
            bool,
            MetricCounts,
            Option<LastMeasurement>,
            bool,
            Option<DateTime<Utc>>,
        );
        let cases: Vec<Case<'_>> = vec![
            (
                &every_minute,
                false,
                MetricCounts::default(),
                None,
                false,
                Some(now),
            ),
            (
                &delayed,
                false,
                MetricCounts::default(),
                None,
                false,
                Some(at(30)),
            ),
            (
                &every_minute,
                false,
                one,
                Some(done(Successful, 90)),
                false,
                Some(at(150)),
            ),
            (
                &every_minute,
                false,
                one,
                Some(done(Error, 90)),
                false,
                Some(at(100)),
            ),
            (
                &every_minute,
                false,
                counts(3, 0, 0, 0, 3),
                Some(done(Successful, 90)),
                false,
                None,
            ),
            (
                &every_minute,
                true,
                one,
                Some(done(Successful, 90)),
                false,
                None,
            ),
            (
                &every_minute,
                false,
                one,
                Some(done(Successful, 90)),
                true,
                None,
            ),
            (
                &every_minute,
                false,
                MetricCounts::default(),
                None,
                true,
                None,
            ),
            (&once, false, one, Some(done(Successful, 90)), false, None),
            (
                &once,
                false,
                MetricCounts::default(),
                Some(done(Error, 90)),
                false,
                Some(at(100)),
            ),
            (
                &every_minute,
                false,
                one,
                Some(LastMeasurement {
                    phase: Running,
                    finished_at: None,
                    resume_at: Some(at(120)),
                }),
                false,
                Some(at(120)),
            ),
            (
                &every_minute,
                false,
                one,
                Some(LastMeasurement {
                    phase: Running,
                    finished_at: None,
                    resume_at: Some(at(120)),
                }),
                true,
                Some(now),
            ),
        ];
        for (policy, completed, c, last, terminating, want) in cases {
            assert_eq!(
                next_due(
                    policy,
                    completed,
                    &c,
                    last.as_ref(),
                    Some(at(0)),
                    terminating,
                    now
                ),
                want,
                "{policy:?} completed={completed} {c:?} {last:?} terminating={terminating}"
            );
        }
    }

    #[test]
    fn effective_count_defaults() {
        assert_eq!(effective_count(None, false), Some(1));
        assert_eq!(effective_count(Some(0), false), Some(1));
        assert_eq!(effective_count(None, true), None);
        assert_eq!(effective_count(Some(5), true), Some(5));
    }

    #[test]
    fn policy_validation_matches_upstream_messages() {
        let base = MetricPolicy::default();
        assert_eq!(validate_policy(&base, 1), Ok(()));
        let both_off = MetricPolicy {
            failure_limit: -1,
            ..base.clone()
        };
        assert_eq!(
            validate_policy(&both_off, 1).unwrap_err(),
            "failureLimit and consecutiveSuccessLimit cannot both be disabled"
        );
        assert_eq!(
            validate_policy(&base, 3).unwrap_err(),
            "interval must be specified when count > 1"
        );
        let limits = MetricPolicy {
            failure_limit: 3,
            interval: Some(Duration::seconds(1)),
            ..base
        };
        assert!(
            validate_policy(&limits, 2)
                .unwrap_err()
                .starts_with("count (2) must be >=")
        );
    }

    #[test]
    fn retention_keeps_the_newest_measurements() {
        let mut m: Vec<i32> = (0..15).collect();
        retain_measurements(&mut m, None);
        assert_eq!(m, (5..15).collect::<Vec<_>>());
        retain_measurements(&mut m, Some(3));
        assert_eq!(m, vec![12, 13, 14]);
        retain_measurements(&mut m, Some(0));
        assert_eq!(m.len(), 3);
    }
}
