//! The canary planner's AnalysisRuns and Experiments: `analysis` and `experiment` steps and
//! the background analysis (upstream `rollout/analysis.go`, `rollout/experiment.go`).
//!
//! Each reconcile decides which run/Experiment is current (by the name the status recorded),
//! creates one when needed, turns its phase into a step completion, a pause (Inconclusive) or
//! an abort (Failed/Error), terminates whatever is no longer current, and deletes finished
//! ones beyond the history limits.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sluice_api::common::AnalysisPhase;
use sluice_api::rollout::{PauseReason, RolloutStatus};

use super::Planner;
use crate::rollout::analysis_runs::{
    HistoryItem, ROLLOUT_TYPE_BACKGROUND, ROLLOUT_TYPE_STEP, RunContext, RunKind, STEP_INDEX_LABEL,
    base_run_name, beyond_history, build_run, free_name, is_running, newest_name, phase_of,
    run_status,
};
use crate::rollout::experiment_step::{base_experiment_name, belongs_to_step, build_experiment};
use crate::rollout::plan::Change;
use sluice_api::analysis::AnalysisRun;
use sluice_api::experiment::Experiment;
use sluice_api::rollout::{CanaryStatus, RolloutAnalysis, RolloutAnalysisRunStatus};

/// Upstream's abort messages, followed by `: <the run's message>` when it has one.
const STEP_ANALYSIS_FAILED: &str = "Step-based analysis phase error/failed";
const BACKGROUND_ANALYSIS_FAILED: &str = "Background analysis phase error/failed";
const EXPERIMENT_FAILED: &str = "Experiment analysis phase is error/failed";

pub(crate) fn with_detail(prefix: &str, message: Option<&str>) -> String {
    match message.filter(|m| !m.is_empty()) {
        Some(m) => format!("{prefix}: {m}"),
        None => prefix.to_string(),
    }
}

fn experiment_phase(e: &Experiment) -> AnalysisPhase {
    e.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

fn experiment_running(e: &Experiment) -> bool {
    !experiment_phase(e).is_completed() && !e.spec.is_terminated()
}

fn label<'b>(meta: &'b ObjectMeta, key: &str) -> Option<&'b str> {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
}

/// Changes `status.canary` without turning an absent `canary` into an empty object (a
/// merge-patch diff would otherwise write `canary: {}` on every Rollout).
fn edit_canary(status: &mut RolloutStatus, f: impl FnOnce(&mut CanaryStatus)) {
    let mut c = status.canary.clone().unwrap_or_default();
    f(&mut c);
    if status.canary.is_none() && c == CanaryStatus::default() {
        return;
    }
    status.canary = Some(c);
}

impl<'a> Planner<'a> {
    pub(crate) fn run_named(&self, name: &str) -> Option<&'a AnalysisRun> {
        self.obs
            .analysis_runs
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(name))
    }

    fn experiment_named(&self, name: &str) -> Option<&'a Experiment> {
        self.obs
            .experiments
            .iter()
            .find(|e| e.metadata.name.as_deref() == Some(name))
    }

    pub(crate) fn terminate_run(&mut self, run: &AnalysisRun) {
        let name = run.metadata.name.clone().unwrap_or_default();
        if is_running(run) && self.terminated_runs.insert(name.clone()) {
            self.changes.push(Change::TerminateAnalysisRun { name });
        }
    }

    fn terminate_experiment(&mut self, exp: &Experiment) {
        let name = exp.metadata.name.clone().unwrap_or_default();
        if experiment_running(exp) && self.terminated_experiments.insert(name.clone()) {
            self.changes.push(Change::TerminateExperiment { name });
        }
    }

    /// Upstream's `needsNewAnalysisRun`, also used for Experiments: none yet; or, after the
    /// user resumed a controller pause, the previous one was Inconclusive (a plain resume
    /// re-runs it); or the previous one belongs to an aborted attempt (retry).
    /// No abort has ever been written (`status.abort` absent, not `false`): a run or Experiment
    /// under this step's names can only be this attempt's. After an abort and a retry the old
    /// attempt's runs keep their names, so a lost one is not told apart from them and a fresh
    /// run is started, as upstream does.
    fn never_aborted(&self) -> bool {
        self.prev.abort.is_none() && self.prev.aborted_at.is_none()
    }

    pub(crate) fn needs_new(&self, current: Option<AnalysisPhase>) -> bool {
        let Some(phase) = current else {
            return true;
        };
        if self.prev.controller_pause.unwrap_or(false)
            && !self.has_pause(&PauseReason::CanaryPauseStep)
            && !self.has_pause(&PauseReason::BlueGreenPause)
        {
            return phase == AnalysisPhase::Inconclusive;
        }
        self.prev.aborted_at.is_some()
    }

    fn run_context(&self, new: usize, revision: i64) -> RunContext<'_> {
        let stable_hash = self.prev.stable_rs.as_deref().filter(|s| !s.is_empty());
        RunContext {
            observed: self.obs,
            latest_hash: self.rs[new].hash,
            stable_hash,
            revision,
        }
    }

    /// AnalysisRuns of this reconcile: the step run and the background run, then stale-run
    /// termination and history cleanup.
    pub(super) fn reconcile_analysis_runs(
        &mut self,
        status: &mut RolloutStatus,
        new: usize,
        revision: i64,
    ) {
        let prev = self.prev.canary.clone().unwrap_or_default();
        let step_current = prev
            .current_step_analysis_run_status
            .as_ref()
            .and_then(|s| self.run_named(&s.name));
        let bg_current = prev
            .current_background_analysis_run_status
            .as_ref()
            .and_then(|s| self.run_named(&s.name));

        let skip = self.aborting()
            || self.prev.promote_full.unwrap_or(false)
            || self.prev.stable_rs.as_deref().is_none_or(str::is_empty)
            || self.rollback_within_window();
        let (step_status, bg_status) = if skip {
            // Nothing runs while aborted, fully promoting or on the first deploy; the runs
            // stay in the status so the user sees which one decided.
            for run in [step_current, bg_current].into_iter().flatten() {
                self.terminate_run(run);
            }
            (step_current.map(run_status), bg_current.map(run_status))
        } else {
            let step = self.reconcile_step_run(step_current, new, revision);
            let bg = self.reconcile_background_run(bg_current, new, revision);
            if self.pause.add_abort.is_some() {
                for s in [&step, &bg].into_iter().flatten() {
                    if let Some(run) = self.run_named(&s.name) {
                        self.terminate_run(run);
                    }
                }
            }
            (step, bg)
        };
        edit_canary(status, |c| {
            c.current_step_analysis_run_status = step_status;
            c.current_background_analysis_run_status = bg_status;
        });
        self.analysis_run_history(status);
    }

    fn reconcile_step_run(
        &mut self,
        current: Option<&'a AnalysisRun>,
        new: usize,
        revision: i64,
    ) -> Option<RolloutAnalysisRunStatus> {
        if !self.prev.pause_conditions().is_empty() {
            return current.map(run_status);
        }
        let index = self.current_index();
        let analysis = self
            .current_step()
            .and_then(|s| s.analysis.as_ref())
            .filter(|a| a.templates.as_ref().is_some_and(|t| !t.is_empty()));
        let index_text = index.to_string();
        // After a promote the status still names the previous step's run.
        let from_other_step = current
            .is_some_and(|r| label(&r.metadata, STEP_INDEX_LABEL) != Some(index_text.as_str()));
        let Some(analysis) = analysis.filter(|_| !from_other_step) else {
            if let Some(run) = current {
                self.terminate_run(run);
            }
            return None;
        };
        if self.needs_new(current.map(phase_of)) {
            let field = format!("spec.strategy.canary.steps[{index}].analysis");
            let kind = RunKind {
                rollout_type: ROLLOUT_TYPE_STEP,
                step_index: Some(index),
                field: &field,
            };
            return self.create_run(analysis, &kind, new, revision, current.is_none());
        }
        let run = current?;
        let phase = phase_of(run);
        match phase {
            AnalysisPhase::Inconclusive => self
                .pause
                .add_reasons
                .push(PauseReason::InconclusiveAnalysisRun),
            AnalysisPhase::Failed | AnalysisPhase::Error => {
                self.abort_with(with_detail(STEP_ANALYSIS_FAILED, run_message(run)));
            }
            _ => {}
        }
        self.step_run_phase = Some(phase);
        let prev = self
            .prev
            .canary
            .as_ref()
            .and_then(|c| c.current_step_analysis_run_status.clone());
        self.run_phase_event(prev.as_ref(), run, ROLLOUT_TYPE_STEP);
        Some(run_status(run))
    }

    fn reconcile_background_run(
        &mut self,
        current: Option<&'a AnalysisRun>,
        new: usize,
        revision: i64,
    ) -> Option<RolloutAnalysisRunStatus> {
        let background = self
            .spec
            .canary()
            .and_then(|c| c.analysis.as_ref())
            .filter(|a| a.templates.as_ref().is_some_and(|t| !t.is_empty()));
        let Some(background) = background else {
            if let Some(run) = current {
                self.terminate_run(run);
            }
            return None;
        };
        let fully_promoted = self.prev.stable_rs == self.prev.current_pod_hash;
        let before_start = background
            .starting_step
            .is_some_and(|s| self.current_index() < s);
        if fully_promoted || before_start {
            // No longer current: terminated with the other stale runs.
            return None;
        }
        if self.has_pause(&PauseReason::InconclusiveAnalysisRun) {
            return current.map(run_status);
        }
        if self.needs_new(current.map(phase_of)) {
            let kind = RunKind {
                rollout_type: ROLLOUT_TYPE_BACKGROUND,
                step_index: None,
                field: "spec.strategy.canary.analysis",
            };
            return self.create_run(
                &background.analysis(),
                &kind,
                new,
                revision,
                current.is_none(),
            );
        }
        let run = current?;
        match phase_of(run) {
            AnalysisPhase::Inconclusive => self
                .pause
                .add_reasons
                .push(PauseReason::InconclusiveAnalysisRun),
            AnalysisPhase::Failed | AnalysisPhase::Error => {
                self.abort_with(with_detail(BACKGROUND_ANALYSIS_FAILED, run_message(run)));
            }
            _ => {}
        }
        let prev = self
            .prev
            .canary
            .as_ref()
            .and_then(|c| c.current_background_analysis_run_status.clone());
        self.run_phase_event(prev.as_ref(), run, ROLLOUT_TYPE_BACKGROUND);
        Some(run_status(run))
    }

    /// Creates the run for `analysis` under the first free name (`<base>`, `<base>.1`, ...).
    /// A running run already holding that name is ours from an earlier reconcile whose status
    /// write was lost: it is adopted instead.
    ///
    /// `untracked`: the status names no run here. On a Rollout never aborted, a run under these
    /// names then exists only because the status write that
    /// recorded it was lost — the controller crashed, or the server refused or timed out on the
    /// write after the create — and it may have finished meanwhile: the newest is adopted,
    /// whatever its phase, instead of starting a second run for the same step (found by the
    /// chaos suite).
    pub(crate) fn create_run(
        &mut self,
        analysis: &RolloutAnalysis,
        kind: &RunKind,
        new: usize,
        revision: i64,
        untracked: bool,
    ) -> Option<RolloutAnalysisRunStatus> {
        let suffix = kind.name_suffix();
        let base = base_run_name(self.name(), self.rs[new].hash, revision, suffix.as_deref());
        if untracked
            && self.never_aborted()
            && let Some(lost) = newest_name(&base, '.', |n| self.run_named(n).is_some())
        {
            return self.run_named(&lost).map(run_status);
        }
        let name = free_name(&base, '.', |n| {
            self.run_named(n).is_some_and(|r| !is_running(r))
        });
        if let Some(existing) = self.run_named(&name) {
            return Some(run_status(existing));
        }
        let ctx = self.run_context(new, revision);
        match build_run(&ctx, analysis, kind, name.clone()) {
            Ok(run) => {
                self.changes.push(Change::CreateAnalysisRun(Box::new(run)));
                Some(RolloutAnalysisRunStatus {
                    name,
                    status: AnalysisPhase::Pending,
                    message: None,
                })
            }
            Err(e) => {
                // Validation builds every run up front, so this only happens when a value
                // the check could not know (the stable hash) is missing.
                self.changes
                    .push(Change::warning("AnalysisRunError", e.to_string()));
                None
            }
        }
    }

    /// Upstream's `AnalysisRun<Phase>` event when a run's phase changes.
    pub(crate) fn run_phase_event(
        &mut self,
        prev: Option<&RolloutAnalysisRunStatus>,
        run: &AnalysisRun,
        type_: &str,
    ) {
        let Some(phase) = run.status.as_ref().map(|s| s.phase.clone()) else {
            return;
        };
        let name = run.metadata.name.as_deref().unwrap_or_default();
        let changed = match prev {
            None => true,
            Some(p) => p.name == name && p.status != phase,
        };
        if !changed {
            return;
        }
        let before = prev.map_or("NoPreviousStatus".to_string(), |p| p.status.to_string());
        let message =
            format!("{type_} Analysis Run '{name}' Status New: '{phase}' Previous: '{before}'");
        let reason = format!("AnalysisRun{phase}");
        if matches!(phase, AnalysisPhase::Failed | AnalysisPhase::Error) {
            self.changes.push(Change::warning(&reason, message));
        } else {
            self.changes.push(Change::normal(&reason, message));
        }
    }

    /// Hashes of the Rollout's ReplicaSets, and whether each is being deleted.
    fn replica_set_hashes(&self) -> BTreeMap<String, bool> {
        self.rs
            .iter()
            .filter(|v| !v.hash.is_empty())
            .map(|v| (v.hash.to_string(), v.deleting))
            .collect()
    }

    pub(crate) fn analysis_run_history(&mut self, status: &RolloutStatus) {
        let current = current_run_names(status);
        let others: Vec<HistoryItem> = self
            .obs
            .analysis_runs
            .iter()
            .filter(|r| !current.contains(&r.metadata.name.as_deref().unwrap_or_default()))
            .map(|r| HistoryItem::of_meta(&r.metadata, phase_of(r)))
            .collect();
        let delete = beyond_history(
            others,
            &self.replica_set_hashes(),
            self.spec.successful_run_history_limit(),
            self.spec.unsuccessful_run_history_limit(),
        );
        for name in delete {
            // Deleted: no need to stop it first.
            self.terminated_runs.insert(name.to_string());
            self.changes.push(Change::DeleteAnalysisRun {
                name: name.to_string(),
            });
        }
    }

    /// The Experiment of an `experiment` step (upstream `reconcileExperiments`).
    pub(super) fn reconcile_experiment(
        &mut self,
        status: &mut RolloutStatus,
        new: usize,
        revision: i64,
    ) {
        let current = self
            .prev
            .canary
            .as_ref()
            .and_then(|c| c.current_experiment.as_deref())
            .and_then(|n| self.experiment_named(n));
        let current_name = if self.aborting() || self.prev.promote_full.unwrap_or(false) {
            for e in &self.obs.experiments {
                self.terminate_experiment(e);
            }
            None
        } else if self.has_pause(&PauseReason::InconclusiveAnalysisRun) {
            current.and_then(|e| e.metadata.name.clone())
        } else {
            self.reconcile_experiment_step(current, new, revision)
        };
        edit_canary(status, |c| c.current_experiment = current_name);
        self.experiment_history(status);
    }

    fn reconcile_experiment_step(
        &mut self,
        current: Option<&'a Experiment>,
        new: usize,
        revision: i64,
    ) -> Option<String> {
        let index = self.current_index();
        let step = self.current_step().and_then(|s| s.experiment.as_ref())?;
        let base = base_experiment_name(self.name(), self.rs[new].hash, revision, index);
        let current = current
            .filter(|e| belongs_to_step(e.metadata.name.as_deref().unwrap_or_default(), &base));
        if !self.prev.pause_conditions().is_empty() {
            // Paused (an Inconclusive experiment waits for the user): keep it, create nothing.
            return current.and_then(|e| e.metadata.name.clone());
        }
        if !self.needs_new(current.map(experiment_phase)) {
            let exp = current?;
            let phase = experiment_phase(exp);
            match phase {
                AnalysisPhase::Inconclusive => self
                    .pause
                    .add_reasons
                    .push(PauseReason::InconclusiveExperiment),
                AnalysisPhase::Failed | AnalysisPhase::Error => {
                    let message = exp.status.as_ref().and_then(|s| s.message.as_deref());
                    self.abort_with(with_detail(EXPERIMENT_FAILED, message));
                }
                _ => {}
            }
            self.experiment_phase = Some(phase);
            return exp.metadata.name.clone();
        }
        // As for runs (`create_run`): an Experiment of this step that the status lost is
        // adopted, not duplicated.
        if current.is_none()
            && self.never_aborted()
            && let Some(lost) = newest_name(&base, '-', |n| self.experiment_named(n).is_some())
        {
            return Some(lost);
        }
        // The baseline is the stable ReplicaSet: nothing to compare against before one exists.
        let stable = self.distinct_stable(new)?;
        let name = free_name(&base, '-', |n| {
            self.experiment_named(n)
                .is_some_and(|e| !experiment_running(e))
        });
        if self.experiment_named(&name).is_some() {
            return Some(name);
        }
        let ctx = self.run_context(new, revision);
        let field = format!("spec.strategy.canary.steps[{index}].experiment");
        match build_experiment(
            &ctx,
            step,
            self.rs[new].rs,
            self.rs[stable].rs,
            name.clone(),
            &field,
        ) {
            Ok(exp) => {
                self.changes.push(Change::CreateExperiment(Box::new(exp)));
                self.changes.push(Change::normal(
                    "ExperimentCreated",
                    format!("Created Experiment '{name}'"),
                ));
                Some(name)
            }
            Err(e) => {
                self.changes
                    .push(Change::warning("ExperimentError", e.to_string()));
                None
            }
        }
    }

    fn experiment_history(&mut self, status: &RolloutStatus) {
        let current = status
            .canary
            .as_ref()
            .and_then(|c| c.current_experiment.as_deref());
        let others: Vec<HistoryItem> = self
            .obs
            .experiments
            .iter()
            .filter(|e| e.metadata.name.as_deref() != current)
            .map(|e| HistoryItem::of_meta(&e.metadata, experiment_phase(e)))
            .collect();
        let delete = beyond_history(
            others,
            &self.replica_set_hashes(),
            self.spec.successful_run_history_limit(),
            self.spec.unsuccessful_run_history_limit(),
        );
        for name in delete {
            self.terminated_experiments.insert(name.to_string());
            self.changes.push(Change::DeleteExperiment {
                name: name.to_string(),
            });
        }
    }

    /// Terminates every running AnalysisRun and Experiment the final status does not name:
    /// those of an old revision or steps, a background run after the rollout completed.
    pub(super) fn end_stale_runs(&mut self, status: &RolloutStatus) {
        let keep_runs = current_run_names(status);
        let keep_experiment = status
            .canary
            .as_ref()
            .and_then(|c| c.current_experiment.as_deref());
        for run in &self.obs.analysis_runs {
            if !keep_runs.contains(&run.metadata.name.as_deref().unwrap_or_default()) {
                self.terminate_run(run);
            }
        }
        for exp in &self.obs.experiments {
            if exp.metadata.name.as_deref() != keep_experiment {
                self.terminate_experiment(exp);
            }
        }
    }
}

/// The runs the status names as current: the canary's step and background runs and
/// blue/green's pre- and post-promotion runs.
fn current_run_names(status: &RolloutStatus) -> Vec<&str> {
    let canary = status.canary.iter().flat_map(|c| {
        [
            c.current_step_analysis_run_status.as_ref(),
            c.current_background_analysis_run_status.as_ref(),
        ]
    });
    let blue_green = status.blue_green.iter().flat_map(|b| {
        [
            b.pre_promotion_analysis_run_status.as_ref(),
            b.post_promotion_analysis_run_status.as_ref(),
        ]
    });
    canary
        .chain(blue_green)
        .flatten()
        .map(|s| s.name.as_str())
        .collect()
}

pub(crate) fn run_message(run: &AnalysisRun) -> Option<&str> {
    run.status.as_ref().and_then(|s| s.message.as_deref())
}

#[cfg(test)]
mod tests;
