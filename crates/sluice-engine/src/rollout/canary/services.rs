//! The canary and stable Services: their selectors follow the ReplicaSets once those can
//! take traffic.

use sluice_api::common::POD_TEMPLATE_HASH_LABEL;

use super::Planner;
use crate::rollout::observed::Observed;
use crate::rollout::plan::Change;
use crate::rollout::status as st;

/// Annotation on a Service whose selector the Rollout manages.
pub const MANAGED_BY_ROLLOUTS_ANNOTATION: &str = "argo-rollouts.argoproj.io/managed-by-rollouts";

impl<'a> Planner<'a> {
    pub(super) fn reconcile_services(&mut self) {
        let Some(canary) = self.spec.canary() else {
            return;
        };
        if let (Some(svc), Some(stable)) = (canary.stable_service.as_deref(), self.stable) {
            self.point_service(svc, stable);
        }
        let canary_target = if self.prev.is_aborted() {
            self.stable
        } else {
            self.new
        };
        if let (Some(svc), Some(target)) = (canary.canary_service.as_deref(), canary_target) {
            self.point_service(svc, target);
        }
    }

    /// Gives back every Service this Rollout switched (its `managed-by-rollouts`
    /// annotation names it) that the spec no longer names: after a change of strategy or of
    /// a Service name, the old Service selects every pod of the app again.
    pub(crate) fn release_services(&mut self) {
        let referenced = Observed::referenced_services(&self.obs.rollout);
        let name = self.name().to_string();
        for (service, svc) in &self.obs.services {
            let Some(svc) = svc else {
                continue;
            };
            let managed_by = svc
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(MANAGED_BY_ROLLOUTS_ANNOTATION));
            if referenced.contains(service) || managed_by != Some(&name) {
                continue;
            }
            self.changes.push(Change::ReleaseService {
                service: service.clone(),
            });
        }
    }

    /// Switches a Service's selector to a ReplicaSet once it can take traffic: at least one
    /// available pod, and all of them when adopting a Service Sluice did not manage yet.
    fn point_service(&mut self, service: &str, target: usize) {
        let Some(Some(svc)) = self.obs.services.get(service) else {
            return;
        };
        let view = &self.rs[target];
        let current = svc
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .and_then(|s| s.get(POD_TEMPLATE_HASH_LABEL))
            .map_or("", String::as_str);
        if current == view.hash {
            return;
        }
        let managed = svc
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(MANAGED_BY_ROLLOUTS_ANNOTATION));
        let fully_available = view.spec != 0 && view.available != 0 && view.spec <= view.available;
        if (!managed && !fully_available) || view.available == 0 {
            return;
        }
        self.changes.push(Change::SetServiceSelector {
            service: service.to_string(),
            pod_template_hash: view.hash.to_string(),
            add_managed_by: !managed,
        });
        self.changes.push(Change::normal(
            st::SWITCH_SERVICE_REASON,
            format!(
                "Switched selector for service '{service}' from '{current}' to '{}'",
                view.hash
            ),
        ));
    }
}
