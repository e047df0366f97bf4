//! The experiment's analyses: each AnalysisRun is created once every template is available
//! (its arguments may name the templates' ReplicaSets and times), followed until it
//! completes, and terminated when the experiment ends first.

use std::collections::BTreeMap;

use sluice_api::analysis::AnalysisRun;
use sluice_api::common::{
    AnalysisPhase, Argument, CONTROLLER_INSTANCE_ID_LABEL, POD_TEMPLATE_HASH_LABEL,
};
use sluice_api::experiment::{ExperimentAnalysisRunStatus, ExperimentAnalysisTemplateRef};

use super::{ExperimentChange, Planner, analysis_run_name, event};
use crate::analysis::template::new_run_spec;
use crate::experiment::args::{
    AVAILABLE_AT_VAR, FINISHED_AT_VAR, pod_template_hash_var, replica_set_name_var, substitute,
};
use crate::experiment::validate::resolve_templates;
use crate::rollout::plan::EventType;

impl<'a> Planner<'a> {
    /// One analysis: its run started (or adopted), else followed until it completes, with
    /// an event when its phase changes.
    pub(super) fn reconcile_analysis(
        &mut self,
        a: &ExperimentAnalysisTemplateRef,
        terminating: bool,
    ) {
        let prev = self
            .prev
            .analysis_runs
            .iter()
            .flatten()
            .find(|r| r.name == a.name)
            .cloned();
        // Runs start once every template is available (in the status this reconcile read,
        // so the placeholders see the ReplicaSets).
        if self.prev.available_at.is_none() && prev.is_none() {
            return;
        }
        let mut rs = prev.clone().unwrap_or_else(|| ExperimentAnalysisRunStatus {
            name: a.name.clone(),
            ..Default::default()
        });
        if rs.analysis_run.is_empty() {
            let run_name = analysis_run_name(&self.name, &a.name);
            if let Some(run) = self.observed_run(&run_name) {
                // Created by an earlier reconcile whose status write was lost.
                let st = run.status.clone().unwrap_or_default();
                rs.analysis_run = run_name;
                rs.phase = st.phase;
                rs.message = st.message;
            } else if terminating {
                return;
            } else {
                self.create_analysis_run(a, &mut rs, run_name);
            }
        } else if !rs.phase.is_completed() {
            self.follow_analysis_run(a, &mut rs, terminating);
        }
        self.analysis_transition_event(a, prev.map(|p| p.phase), &rs);
        let list = self.status.analysis_runs.get_or_insert_with(Vec::new);
        match list.iter_mut().find(|r| r.name == rs.name) {
            Some(r) => *r = rs,
            None => list.push(rs),
        }
    }

    fn observed_run(&self, name: &str) -> Option<&'a AnalysisRun> {
        self.obs
            .analysis_runs
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(name))
    }

    fn create_analysis_run(
        &mut self,
        a: &ExperimentAnalysisTemplateRef,
        rs: &mut ExperimentAnalysisRunStatus,
        run_name: String,
    ) {
        match self.new_analysis_run(a) {
            Ok(run) => {
                rs.analysis_run = run_name;
                rs.phase = AnalysisPhase::Pending;
                rs.message = None;
                self.changes
                    .push(ExperimentChange::CreateAnalysisRun(Box::new(run)));
            }
            Err(e) => {
                rs.phase = AnalysisPhase::Error;
                rs.message = Some(format!(
                    "Failed to create AnalysisRun for analysis '{}': {e}",
                    a.name
                ));
            }
        }
    }

    /// Copies the run's phase and message; once the experiment is ending, an unfinished run
    /// is terminated instead (and keeps its last phase until it stops).
    fn follow_analysis_run(
        &mut self,
        a: &ExperimentAnalysisTemplateRef,
        rs: &mut ExperimentAnalysisRunStatus,
        terminating: bool,
    ) {
        let Some(run) = self.observed_run(&rs.analysis_run) else {
            // Not in this observation: the cache has not caught up with the create yet (a
            // watch cut or re-listing), or someone deleted the run. Creating it again is safe
            // either way — an existing run we own is AlreadyExists, adopted — where failing the
            // experiment turned a lagging cache into an aborted Rollout (found by the chaos
            // suite).
            if !terminating {
                let name = rs.analysis_run.clone();
                self.create_analysis_run(a, rs, name);
            }
            return;
        };
        let st = run.status.clone().unwrap_or_default();
        if terminating && !st.phase.is_completed() {
            if !run.spec.is_terminated() {
                self.changes.push(ExperimentChange::TerminateAnalysisRun {
                    name: rs.analysis_run.clone(),
                });
                self.changes.push(event(
                    EventType::Normal,
                    "AnalysisRunTerminating",
                    format!("Terminating {} ({})", a.name, rs.analysis_run),
                ));
            }
        } else {
            rs.phase = st.phase;
            rs.message = st.message;
        }
    }

    fn analysis_transition_event(
        &mut self,
        a: &ExperimentAnalysisTemplateRef,
        prev_phase: Option<AnalysisPhase>,
        rs: &ExperimentAnalysisRunStatus,
    ) {
        if prev_phase.as_ref() == Some(&rs.phase) {
            return;
        }
        let mut msg = format!(
            "AnalysisRun '{}' transitioned from {} -> {}",
            a.name,
            prev_phase.as_ref().map(|p| p.as_str()).unwrap_or(""),
            rs.phase.as_str()
        );
        if let Some(m) = rs.message.as_deref().filter(|m| !m.is_empty()) {
            msg = format!("{msg}: {m}");
        }
        let type_ = match rs.phase {
            AnalysisPhase::Failed | AnalysisPhase::Error | AnalysisPhase::Inconclusive => {
                EventType::Warning
            }
            _ => EventType::Normal,
        };
        self.changes.push(event(
            type_,
            format!("AnalysisRun{}", rs.phase.as_str()),
            msg,
        ));
    }

    /// Values for the experiment placeholders in analysis args.
    fn arg_vars(&self) -> BTreeMap<String, String> {
        let mut vars = BTreeMap::new();
        if let Some(at) = &self.status.available_at {
            vars.insert(AVAILABLE_AT_VAR.to_string(), at.0.to_string());
            if let Some(end) = self.ends_at(&self.status) {
                vars.insert(FINISHED_AT_VAR.to_string(), end.0.to_string());
            }
        }
        for t in &self.ex.spec.templates {
            if let Some(rs) = self.template_rs(t) {
                if let Some(h) = rs
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL))
                {
                    vars.insert(pod_template_hash_var(&t.name), h.clone());
                }
                vars.insert(
                    replica_set_name_var(&t.name),
                    rs.metadata.name.clone().unwrap_or_default(),
                );
            }
        }
        vars
    }

    fn new_analysis_run(&self, a: &ExperimentAnalysisTemplateRef) -> Result<AnalysisRun, String> {
        let vars = self.arg_vars();
        let mut args = Vec::new();
        for arg in a.args.iter().flatten() {
            let value = match &arg.value {
                Some(v) => Some(substitute(v, &vars).map_err(|e| e.to_string())?),
                None => None,
            };
            args.push(Argument {
                name: arg.name.clone(),
                value,
                value_from: arg.value_from.clone(),
            });
        }
        let templates = resolve_templates(self.obs, a)?;
        let spec = new_run_spec(
            &templates,
            &args,
            self.ex.spec.dry_run.as_deref().unwrap_or_default(),
            self.ex
                .spec
                .measurement_retention
                .as_deref()
                .unwrap_or_default(),
        )
        .map_err(|e| e.to_string())?;
        let mut labels = BTreeMap::new();
        if let Some(id) = self
            .ex
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(CONTROLLER_INSTANCE_ID_LABEL))
        {
            labels.insert(CONTROLLER_INSTANCE_ID_LABEL.to_string(), id.clone());
        }
        let mut annotations = BTreeMap::new();
        if let Some(md) = &self.ex.spec.analysis_run_metadata {
            labels.extend(md.labels.clone().unwrap_or_default());
            annotations.extend(md.annotations.clone().unwrap_or_default());
        }
        let mut run = AnalysisRun::new(&analysis_run_name(&self.name, &a.name), spec);
        run.metadata.namespace = self.ex.metadata.namespace.clone();
        run.metadata.labels = (!labels.is_empty()).then_some(labels);
        run.metadata.annotations = (!annotations.is_empty()).then_some(annotations);
        run.metadata.owner_references = Some(vec![self.owner_ref()]);
        Ok(run)
    }
}
