//! What to measure now and when to look again: each metric's next measurement from its
//! policy and last measurement, timed from the exact finish the controller remembers where
//! that still describes the stored measurement.

use chrono::{DateTime, Utc};
use sluice_api::analysis::MetricResult;

use super::prepare::PreparedMetric;
use super::{
    DueMeasurement, FinishTime, FinishTimes, ResolvedProvider, counts_of, from_time, last_of,
};
use crate::analysis::evaluate::{LastMeasurement, MetricCounts, Phase, next_due};
use crate::analysis::job::job_attempt;

#[derive(Default)]
pub(super) struct Schedule {
    /// Measurements due now, in metric order.
    pub(super) due: Vec<DueMeasurement>,
    /// The earliest measurement due later.
    pub(super) next: Option<DateTime<Utc>>,
    /// The finish times worth remembering: those of unfinished metrics that still describe
    /// their last measurement.
    pub(super) finish_times: FinishTimes,
}

pub(super) fn schedule(
    metrics: &[PreparedMetric],
    results: &[MetricResult],
    finishes: &FinishTimes,
    started_at: DateTime<Utc>,
    terminating: bool,
    now: DateTime<Utc>,
) -> Schedule {
    let mut schedule = Schedule::default();
    for pm in metrics {
        let result = results.iter().find(|r| r.name == pm.name);
        let completed = result.is_some_and(|r| Phase::from_api(&r.phase).is_completed());
        let counts = result.map(counts_of).unwrap_or_default();
        if !completed && let Some(f) = remembered(finishes, &pm.name, result, &counts) {
            schedule.finish_times.0.insert(pm.name.clone(), f);
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
            schedule
                .due
                .push(due_measurement(pm, result, &counts, terminating));
        } else {
            schedule.next = Some(schedule.next.map_or(at, |n| n.min(at)));
        }
    }
    schedule
}

/// The remembered finish of the metric's last measurement, if it still describes it.
fn remembered(
    finishes: &FinishTimes,
    metric: &str,
    result: Option<&MetricResult>,
    counts: &MetricCounts,
) -> Option<FinishTime> {
    let f = finishes.0.get(metric)?;
    let stored = result
        .and_then(last_of)
        .and_then(|m| m.finished_at.as_ref())
        .map(from_time)?;
    finishes.describes(f, counts, stored).then_some(*f)
}

/// A measurement of `pm` due now: a new one, or the unfinished one to resume (or to stop,
/// when the run is terminating).
fn due_measurement(
    pm: &PreparedMetric,
    result: Option<&MetricResult>,
    counts: &MetricCounts,
    terminating: bool,
) -> DueMeasurement {
    let in_flight = result
        .and_then(last_of)
        .filter(|m| m.finished_at.is_none())
        .cloned();
    DueMeasurement {
        metric: pm.name.clone(),
        provider: ResolvedProvider(pm.provider.clone()),
        terminate: in_flight.is_some() && terminating,
        in_flight,
        attempt: job_attempt(Some(counts)),
        metric_metadata: pm.provider.metric_metadata(),
    }
}
