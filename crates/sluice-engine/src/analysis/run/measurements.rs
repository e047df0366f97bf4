//! The measurements the controller just took, written into the metric results: a new
//! measurement or the in-flight one resumed (a Job), judged by the metric's conditions and
//! counted once finished; and the retention that trims them afterwards.

use std::collections::BTreeMap;

use sluice_api::analysis::{Measurement, MetricResult};
use sluice_api::common::AnalysisPhase;

use super::prepare::{Prepared, PreparedMetric};
use super::{
    FinishTime, FinishTimes, MeasurementOutcome, TakenMeasurement, counts_of, nz, to_time,
};
use crate::analysis::args::ResolvedArgs;
use crate::analysis::evaluate::{
    METRIC_TERMINATED_MESSAGE, MetricCounts, Phase, assess_measurement, retain_measurements,
};

/// Records `taken` on its metric's result, unless the metric already completed. A finished
/// measurement is counted and its exact finish remembered in `finishes`. `terminating`: the
/// run was ending before this reconcile, so a Job stopped for it reports that.
pub(super) fn record_taken(
    prepared: &Prepared,
    results: &mut Vec<MetricResult>,
    finishes: &mut FinishTimes,
    taken: &TakenMeasurement,
    terminating: bool,
) {
    let Some(pm) = prepared.metrics.iter().find(|m| m.name == taken.metric) else {
        return;
    };
    let result = result_of(results, pm, &prepared.args);
    if Phase::from_api(&result.phase).is_completed() {
        return;
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
            started_at: Some(to_time(taken.started_at)),
            ..Measurement::default()
        }
    };
    let (phase, message) = apply_outcome(&mut m, &taken.outcome, pm, terminating);
    m.phase = phase.into();
    // Nothing a provider echoes back (its error, the value, the resolved query) may show a
    // secret argument in the status.
    m.message = message.map(|msg| prepared.args.redact(&msg));
    m.value = m.value.take().map(|v| prepared.args.redact(&v));
    redact_values(m.metadata.as_mut(), &prepared.args);
    if phase.is_completed() {
        m.resume_at = None;
        counts.record(phase);
        if m.finished_at.is_none() {
            m.finished_at = Some(to_time(taken.finished_at));
            finishes.0.insert(
                pm.name.clone(),
                FinishTime {
                    completed: counts.count + counts.error,
                    at: taken.finished_at,
                },
            );
        }
    }
    measurements.push(m);
    set_counts(result, &counts);
}

/// The metric's result, added (Running) on its first measurement.
fn result_of<'r>(
    results: &'r mut Vec<MetricResult>,
    pm: &PreparedMetric,
    args: &ResolvedArgs,
) -> &'r mut MetricResult {
    let idx = match results.iter().position(|r| r.name == pm.name) {
        Some(i) => i,
        None => {
            let mut metadata = pm.provider.metric_metadata();
            redact_values(Some(&mut metadata), args);
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
    &mut results[idx]
}

/// Secret argument values replaced in every value of `metadata`.
fn redact_values(metadata: Option<&mut BTreeMap<String, String>>, args: &ResolvedArgs) {
    for value in metadata.into_iter().flat_map(|m| m.values_mut()) {
        *value = args.redact(value);
    }
}

/// Writes the value, metadata or resume time `outcome` carries into `m`; returns the
/// measurement's phase and (unredacted) message.
fn apply_outcome(
    m: &mut Measurement,
    outcome: &MeasurementOutcome,
    pm: &PreparedMetric,
    terminating: bool,
) -> (Phase, Option<String>) {
    match outcome {
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
            let message = if terminating && matches!(phase, Phase::Successful | Phase::Inconclusive)
            {
                Some(METRIC_TERMINATED_MESSAGE.to_string())
            } else {
                message.clone()
            };
            (*phase, message)
        }
    }
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

/// `measurementRetention`: each metric keeps its newest measurements only.
pub(super) fn apply_retention(metrics: &[PreparedMetric], results: &mut [MetricResult]) {
    for pm in metrics {
        if let Some(r) = results.iter_mut().find(|r| r.name == pm.name)
            && let Some(ms) = r.measurements.as_mut()
        {
            retain_measurements(ms, pm.retention);
        }
    }
}
