//! The active and preview Services (upstream `reconcilePreviewService`,
//! `reconcileActiveService`): their `rollouts-pod-template-hash` selector is the whole
//! traffic switch.

use sluice_api::common::POD_TEMPLATE_HASH_LABEL;
use sluice_api::rollout::{BlueGreenStatus, RolloutStatus};

use crate::rollout::canary::{MANAGED_BY_ROLLOUTS_ANNOTATION, Planner};
use crate::rollout::plan::Change;
use crate::rollout::status as st;

impl<'a> Planner<'a> {
    /// The hash a Service selects as observed (`None`: no such Service, or no hash in its
    /// selector).
    pub(super) fn observed_selector(&self, service: &str) -> Option<&'a str> {
        self.obs
            .services
            .get(service)?
            .as_ref()?
            .spec
            .as_ref()?
            .selector
            .as_ref()?
            .get(POD_TEMPLATE_HASH_LABEL)
            .map(String::as_str)
            .filter(|h| !h.is_empty())
    }

    /// The hash a Service selects once this plan is applied: its last switch in the plan, or
    /// what was observed.
    pub(super) fn planned_selector(&self, service: &str) -> Option<String> {
        let switched = self.changes.iter().rev().find_map(|c| match c {
            Change::SetServiceSelector {
                service: s,
                pod_template_hash,
                ..
            } if s == service => Some(pod_template_hash.clone()),
            _ => None,
        });
        switched.or_else(|| self.observed_selector(service).map(str::to_string))
    }

    /// The preview Service follows the newest ReplicaSet at once, whatever its availability
    /// (it takes no production traffic), unless progress is halted.
    pub(super) fn reconcile_preview_service(&mut self, new: usize) {
        let Some(preview) = self.preview_service() else {
            return;
        };
        if self.halted() {
            return;
        }
        let hash = self.rs[new].hash;
        self.switch_service(preview, hash);
    }

    /// The active Service: to the new ReplicaSet once it is fully available and the
    /// promotion is due (its pause done, pre-promotion analysis passed, or fast-tracked); to
    /// the stable one on abort.
    ///
    /// Upstream only switches back on abort while the new ReplicaSet is saturated; here the
    /// abort always sends production traffic back to the stable, also when a new pod failed
    /// meanwhile (that is when it matters most).
    pub(super) fn reconcile_active_service(&mut self, new: usize) {
        if self.halted() {
            return;
        }
        let active = self.blue_green().active_service.as_str();
        let target = if self.aborting() {
            self.stable.map(|s| self.rs[s].hash)
        } else {
            if !self.ready_for_pause(new) || !self.saturated(new) {
                return;
            }
            let promote = self.fast_tracked(new)
                || (self.completed_blue_green_pause() && self.completed_pre_promotion_analysis());
            if promote {
                Some(self.rs[new].hash)
            } else {
                self.observed_selector(active)
            }
        };
        if let Some(hash) = target {
            self.switch_service(active, hash);
        }
    }

    /// Points a Service's selector at `hash` (and marks it managed by this Rollout) unless it
    /// already is. A missing Service is left alone: validation reports it.
    fn switch_service(&mut self, service: &str, hash: &str) {
        let Some(Some(svc)) = self.obs.services.get(service) else {
            return;
        };
        let current = self.observed_selector(service).unwrap_or_default();
        let managed = svc
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(MANAGED_BY_ROLLOUTS_ANNOTATION));
        if current == hash && managed {
            return;
        }
        self.changes.push(Change::SetServiceSelector {
            service: service.to_string(),
            pod_template_hash: hash.to_string(),
            add_managed_by: !managed,
        });
        self.changes.push(Change::normal(
            st::SWITCH_SERVICE_REASON,
            format!("Switched selector for service '{service}' from '{current}' to '{hash}'"),
        ));
    }

    /// `status.blueGreen.activeSelector` / `previewSelector`: what the Services select once
    /// this plan is applied.
    pub(super) fn record_selectors(&self, status: &mut RolloutStatus) {
        let b = status
            .blue_green
            .get_or_insert_with(BlueGreenStatus::default);
        b.active_selector = self.planned_selector(&self.blue_green().active_service);
        b.preview_selector = self
            .preview_service()
            .and_then(|p| self.planned_selector(p));
    }
}
