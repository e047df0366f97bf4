//! Judging the run: each metric's phase from its counts and limits, then the run's phase,
//! message and summaries from its metrics.

use chrono::{DateTime, Utc};
use sluice_api::analysis::{AnalysisRunStatus, MetricResult, RunSummary};

use super::prepare::PreparedMetric;
use super::{RunEvent, counts_of, last_of, nz, phase_event, to_time};
use crate::analysis::evaluate::{
    self, AssessedMetric, MetricState, Phase, assess_metric, assess_run, is_terminating,
};

/// Each metric's phase and whether dry-run, as `is_terminating` reads them.
pub(super) fn phases_of(results: &[MetricResult]) -> Vec<(Phase, bool)> {
    results
        .iter()
        .map(|r| (Phase::from_api(&r.phase), r.dry_run.unwrap_or(false)))
        .collect()
}

/// Assesses every metric. A metric that ends the run early makes it terminating, and the
/// others are settled for that in a second pass of the same reconcile. Returns whether the
/// run is terminating, and an event per metric that completed.
pub(super) fn assess_metrics(
    metrics: &[PreparedMetric],
    results: &mut [MetricResult],
    terminate: bool,
    terminating_before: bool,
) -> (bool, Vec<RunEvent>) {
    let mut terminating = terminating_before;
    let mut events = Vec::new();
    for _pass in 0..2 {
        for pm in metrics {
            let Some(result) = results.iter_mut().find(|r| r.name == pm.name) else {
                continue;
            };
            let old = Phase::from_api(&result.phase);
            let new = assess_metric(&pm.policy, &metric_state(result), terminating);
            if new != old {
                if new.is_completed() {
                    events.push(phase_event(
                        "Metric",
                        new,
                        format!("Metric '{}' Completed. Result: {new}", pm.name),
                    ));
                }
                result.message = last_of(result).and_then(|m| m.message.clone());
                result.phase = new.into();
            }
        }
        let now_terminating = is_terminating(terminate, &phases_of(results));
        if now_terminating == terminating {
            break;
        }
        terminating = now_terminating;
    }
    (terminating, events)
}

/// The run's phase and message from its metrics (dry-run ones only summarized, their
/// messages on their results), and its summaries. Returns the completion event when the
/// run ends now.
pub(super) fn decide_run_phase(
    metrics: &[PreparedMetric],
    status: &mut AnalysisRunStatus,
    results: &mut [MetricResult],
    terminate: bool,
    terminating: bool,
    now: DateTime<Utc>,
) -> Option<RunEvent> {
    let assessed: Vec<AssessedMetric<'_>> = metrics
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
    let mut event = None;
    if Phase::from_api(&status.phase) != outcome.phase {
        status.phase = outcome.phase.into();
        status.message = (!outcome.message.is_empty()).then(|| outcome.message.clone());
        if outcome.phase.is_completed() {
            event = Some(phase_event(
                "AnalysisRun",
                outcome.phase,
                format!("Analysis Completed. Result: {}", outcome.phase),
            ));
            status.completed_at.get_or_insert_with(|| to_time(now));
        }
    }
    status.run_summary = Some(summary(&outcome.run_summary));
    status.dry_run_summary = Some(summary(&outcome.dry_run_summary));
    event
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

fn summary(s: &evaluate::RunSummary) -> RunSummary {
    RunSummary {
        count: nz(s.count),
        successful: nz(s.successful),
        failed: nz(s.failed),
        inconclusive: nz(s.inconclusive),
        error: nz(s.error),
    }
}
