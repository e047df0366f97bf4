//! The routed canary's stage of the plan (instead of `canary/scaling.rs`): which weight and
//! managed routes the routers hold, the replica counts beside them, and in which order the
//! two move.
//!
//! - Toward the canary, replicas go first: the canary is scaled to its target at once, and the
//!   routers are given the new weight only once the canary has the pods to serve it
//!   (upstream holds the previous weight the same way).
//! - Away from the canary (abort, the end of an update), traffic goes first: the routers are
//!   given the stable's weight, and only once every route object *reads back* holding it does
//!   a ReplicaSet that loses traffic get its `scale-down-deadline` (`abortScaleDownDelaySeconds`
//!   for the aborted canary, `scaleDownDelaySeconds` for the superseded stable); it is scaled
//!   down when that passes.
//! - At the end of an update the new ReplicaSet is the stable one: the routers go back to 0 %
//!   on the canary Service only once the stable Service selects the new pods, so the stable's
//!   traffic never returns to the old version.
//!
//! A step (setWeight, setCanaryScale, setHeaderRoute, setMirrorRoute) completes only when the
//! replica counts are at target *and* the route objects read back what the plan wrote.

use sluice_api::common::POD_TEMPLATE_HASH_LABEL;
use sluice_api::rollout::{RolloutStatus, TrafficWeights, WeightDestination};

use super::gateway::Backends;
use super::{TrafficHold, managed_routes_at};
use crate::rollout::canary::Planner;
use crate::rollout::plan::{Change, MetadataPatch};

/// What the routed stage found, for the step machine that runs after it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RoutedState {
    /// Every route object reads back the weight and managed routes this plan wants.
    pub(crate) verified: bool,
    /// The weight held is the one the current step asks for (not one held back while the
    /// canary scales up).
    pub(crate) at_weight: bool,
    /// Canary and stable are at their target counts.
    pub(crate) at_counts: bool,
}

impl RoutedState {
    pub(crate) fn step_done(self) -> bool {
        self.verified && self.at_weight && self.at_counts
    }
}

/// `ceil(replicas * weight / max)`: the pods that serve `weight` of the traffic.
pub(crate) fn replicas_for_weight(replicas: i32, weight: i32, max: i32) -> i32 {
    let (r, w, m) = (
        i64::from(replicas),
        i64::from(weight),
        i64::from(max.max(1)),
    );
    i32::try_from((r * w + m - 1) / m).unwrap_or(i32::MAX)
}

impl<'a> Planner<'a> {
    /// The canary weight the current state of the update asks for (upstream's desired weight
    /// with traffic routing): none once the update is the stable one (or there is no stable
    /// yet) or after an abort, all of it with `promoteFull` or past the last step, else the
    /// last `setWeight` at or before the current step.
    fn weight_target(&self, new: usize, max: i32) -> i32 {
        if self.stable.is_none_or(|s| s == new) || self.aborting() {
            return 0;
        }
        if self.prev.promote_full.unwrap_or(false) {
            return max;
        }
        let Ok(index) = usize::try_from(self.current_index()) else {
            return max;
        };
        if index >= self.steps.len() {
            return max;
        }
        self.steps[..=index]
            .iter()
            .rev()
            .find_map(|s| s.set_weight)
            .unwrap_or(0)
    }

    /// The canary weight the routers were last given for this update's ReplicaSet (0 when
    /// the status names another one: a new update starts from the stable).
    fn weight_held(&self, new: usize) -> i32 {
        self.prev
            .canary
            .as_ref()
            .and_then(|c| c.weights.as_ref())
            .filter(|w| w.canary.pod_template_hash.as_deref() == Some(self.rs[new].hash))
            .map_or(0, |w| w.canary.weight)
    }

    /// `minPodsPerReplicaSet`: a ReplicaSet that runs at all runs at least that many pods.
    fn at_least_min_pods(&self, count: i32) -> i32 {
        let min = self
            .spec
            .canary()
            .and_then(|c| c.min_pods_per_replica_set)
            .unwrap_or(0);
        if count > 0 { count.max(min) } else { count }
    }

    /// The canary's target count for weight `weight`: the weight's share of `replicas`, or
    /// what a `setCanaryScale` step in force says instead (`promoteFull` scales it fully).
    fn routed_canary_target(&self, weight: i32, max: i32) -> i32 {
        if self.prev.promote_full.unwrap_or(false) {
            return self.replicas;
        }
        let scale = usize::try_from(self.current_index())
            .ok()
            .filter(|&i| i < self.steps.len())
            .and_then(|i| {
                self.steps[..=i]
                    .iter()
                    .rev()
                    .find_map(|s| s.set_canary_scale.as_ref())
            })
            .filter(|s| s.match_traffic_weight != Some(true));
        let count = match scale {
            Some(s) if s.replicas.is_some() => s.replicas.unwrap_or(0),
            Some(s) => replicas_for_weight(self.replicas, s.weight.unwrap_or(0), 100),
            None => replicas_for_weight(self.replicas, weight, max),
        };
        self.at_least_min_pods(count)
    }

    /// The stable's target count: `replicas`, or with `dynamicStableScale` the share of the
    /// traffic it gets — never less than the share it still gets now.
    fn routed_stable_target(&self, weight: i32, held: i32, max: i32) -> i32 {
        let dynamic = self.spec.canary().is_some_and(|c| c.dynamic_stable_scale());
        if !dynamic {
            return self.replicas;
        }
        let wanted = replicas_for_weight(self.replicas, max - weight, max);
        let serving = replicas_for_weight(self.replicas, max - held, max);
        self.at_least_min_pods(wanted.max(serving))
    }

    /// Whether the stable Service selects the stable ReplicaSet, as observed or as this plan
    /// switches it.
    fn stable_service_on(&self, hash: &str, service: &str) -> bool {
        let switched = self.changes.iter().any(|c| {
            matches!(c, Change::SetServiceSelector { service: s, pod_template_hash: h, .. } if s == service && h == hash)
        });
        let observed = self
            .obs
            .services
            .get(service)
            .and_then(Option::as_ref)
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.selector.as_ref())
            .and_then(|s| s.get(POD_TEMPLATE_HASH_LABEL))
            .is_some_and(|h| h == hash);
        switched || observed
    }

    /// The routed canary's traffic and replica counts. Returns whether a replica count
    /// changes (the pause step then waits for the next reconcile, as without routing).
    pub(crate) fn reconcile_routed(
        &mut self,
        status: &mut RolloutStatus,
        new: usize,
        halted: bool,
    ) -> bool {
        let Some(routing) = self.routing.clone() else {
            return false;
        };
        let max = routing.max_weight;
        let target = self.weight_target(new, max);
        let held = self.weight_held(new);
        let canary_target = self.routed_canary_target(target, max);
        let stable_target = self.routed_stable_target(target, held, max);
        let stable = self.distinct_stable(new);
        let promoted = stable.is_none();

        // The weight the routers get now: toward the canary only as far as its pods serve.
        let canary = &self.rs[new];
        let canary_ready =
            canary.available > 0 && self.progress_threshold_met(canary, canary_target);
        let mut weight = if target <= held || canary_ready {
            target
        } else {
            held
        };
        // With dynamicStableScale the stable may have fewer pods than the traffic coming back
        // to it after an abort: that traffic moves only as fast as its pods become available.
        let dynamic = self.spec.canary().is_some_and(|c| c.dynamic_stable_scale());
        if let Some(s) = stable.filter(|_| dynamic && self.aborting()) {
            let served =
                i64::from(self.rs[s].available) * i64::from(max) / i64::from(self.replicas.max(1));
            let served = i32::try_from(served.min(i64::from(max))).unwrap_or(max);
            weight = weight.max((max - served).min(held));
        }
        let stable_hash = stable.map_or(self.rs[new].hash, |s| self.rs[s].hash);
        // At the end of the update, the canary Service's share goes back to the stable
        // Service only once that selects the new pods.
        let hold_routes = promoted
            && target < held
            && !self.stable_service_on(stable_hash, routing.stable_service);

        let (header_routes, mirror_routes) = if promoted || self.aborting() {
            (Vec::new(), Vec::new())
        } else {
            let index = usize::try_from(self.current_index()).unwrap_or(0);
            if index < self.steps.len() {
                managed_routes_at(&routing, self.steps, index)
            } else {
                (Vec::new(), Vec::new())
            }
        };
        let hold = TrafficHold {
            canary_weight: if hold_routes { held } else { weight },
            max_weight: max,
            header_routes,
            mirror_routes,
            canary_hash: self.rs[new].hash.to_string(),
            stable_hash: stable_hash.to_string(),
        };
        let namespace = self
            .obs
            .rollout
            .metadata
            .namespace
            .as_deref()
            .unwrap_or_default();
        let backends = Backends {
            rollout: self.name(),
            namespace,
            canary: routing.canary_service,
            stable: routing.stable_service,
        };
        let mut verified = !hold_routes;
        let mut patches = Vec::new();
        let owner = crate::rollout::analysis_runs::owner_reference(&self.obs.rollout);
        for route in &routing.routes {
            match routing.plan_object(&self.obs.routes, route, &backends, &hold, &owner) {
                Ok(None) => {}
                Ok(Some(change)) => {
                    verified = false;
                    patches.push(change);
                }
                // Validation refuses such an object; nothing is written to it.
                Err(_) => verified = false,
            }
        }
        if !hold_routes {
            self.changes.extend(patches);
        }
        // The status reports the weights the routers were read back holding: a write is
        // recorded by the reconcile that verifies it (which the route's watch event brings),
        // so a step costs one status write, not one for the write and one for the check.
        if verified {
            self.record_weights(status, &routing, hold.canary_weight, new, stable_hash);
        }

        let scaled = if halted {
            false
        } else {
            self.scale_routed(new, stable, canary_target, stable_target, weight, verified)
        };
        let at_counts = {
            let c = &self.rs[new];
            let stable_ok = stable.is_none_or(|s| {
                let v = &self.rs[s];
                v.spec == stable_target
                    && v.replicas == stable_target
                    && v.available >= stable_target
            });
            self.progress_threshold_met(c, canary_target) && stable_ok
        };
        self.routed = Some(RoutedState {
            verified,
            at_weight: weight == target,
            at_counts,
        });
        scaled
    }

    /// `status.canary.weights` as upstream reports it: the weights the routers hold, with the
    /// Services and the pod-template hashes behind them. Unchanged weights are left as they
    /// are (a new update's canary at 0 % keeps the previous hashes until it gets traffic),
    /// so that no status write is made for them.
    fn record_weights(
        &self,
        status: &mut RolloutStatus,
        routing: &super::Routing,
        canary_weight: i32,
        new: usize,
        stable_hash: &str,
    ) {
        let prev = status.canary.as_ref().and_then(|c| c.weights.as_ref());
        if prev.is_some_and(|w| {
            w.canary.weight == canary_weight
                && w.stable.weight == routing.max_weight - canary_weight
                && w.canary.service_name.as_deref() == Some(routing.canary_service)
                && w.stable.service_name.as_deref() == Some(routing.stable_service)
        }) {
            return;
        }
        let weights = TrafficWeights {
            canary: WeightDestination {
                weight: canary_weight,
                service_name: Some(routing.canary_service.to_string()),
                pod_template_hash: Some(self.rs[new].hash.to_string()),
            },
            stable: WeightDestination {
                weight: routing.max_weight - canary_weight,
                service_name: Some(routing.stable_service.to_string()),
                pod_template_hash: Some(stable_hash.to_string()),
            },
            additional: None,
            verified: None,
        };
        status.canary.get_or_insert_with(Default::default).weights = Some(weights);
    }

    /// Replica counts beside the routers: up at once, down only once the routers read back a
    /// weight the smaller count serves. Returns whether a count changes.
    fn scale_routed(
        &mut self,
        new: usize,
        stable: Option<usize>,
        canary_target: i32,
        stable_target: i32,
        weight: i32,
        verified: bool,
    ) -> bool {
        let before = self.scale_count();
        let max = self.routing.as_ref().map_or(100, |r| r.max_weight);
        match stable {
            None => {
                // The update is the stable one: it runs every replica.
                self.resize(new, self.replicas, MetadataPatch::default(), true);
            }
            Some(s) if self.aborting() => {
                self.resize(s, self.replicas, MetadataPatch::default(), true);
                match self.spec.abort_scale_down_delay_seconds() {
                    Some(delay) => {
                        let stable_ready = self.rs[s].available >= self.replicas;
                        self.hold_then_scale_down(new, verified && stable_ready, delay);
                    }
                    // `abortScaleDownDelaySeconds: 0` leaves the canary up (upstream's meaning).
                    None => {
                        let spec = self.rs[new].spec;
                        self.resize(new, spec, MetadataPatch::default(), true);
                    }
                }
            }
            Some(s) => {
                let serving_canary = replicas_for_weight(self.replicas, weight, max);
                let canary_to = if canary_target >= self.rs[new].spec
                    || (verified && serving_canary <= canary_target)
                {
                    canary_target
                } else {
                    self.rs[new].spec
                };
                self.resize(new, canary_to, without_deadline(), true);
                let serving_stable = replicas_for_weight(self.replicas, max - weight, max);
                let stable_to = if stable_target >= self.rs[s].spec
                    || (verified && serving_stable <= stable_target)
                {
                    stable_target
                } else {
                    self.rs[s].spec
                };
                self.resize(s, stable_to, without_deadline(), true);
            }
        }
        // ReplicaSets that are neither the update's nor the stable take no traffic once the
        // routers read back the plan; a Service that still selects one keeps it up.
        if verified {
            let others: Vec<usize> = (0..self.rs.len())
                .filter(|&i| i != new && Some(i) != stable && !self.selected_by_a_service(i))
                .collect();
            let canary = self.spec.canary();
            let delay = canary.map_or(0, |c| c.scale_down_delay_seconds());
            let limit = canary
                .and_then(|c| c.scale_down_delay_revision_limit)
                .unwrap_or(i32::MAX);
            self.scale_down_after_delay(&others, delay, limit);
        }
        self.scale_count() != before
    }

    /// How many replica-count changes the plan holds so far.
    fn scale_count(&self) -> usize {
        self.changes
            .iter()
            .filter(
                |c| matches!(c, Change::ScaleReplicaSet { from, replicas, .. } if from != replicas),
            )
            .count()
    }

    /// Whether the canary or stable Service selects ReplicaSet `i` (as observed).
    fn selected_by_a_service(&self, i: usize) -> bool {
        let hash = self.rs[i].hash;
        self.obs.services.values().flatten().any(|svc| {
            svc.spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .and_then(|s| s.get(POD_TEMPLATE_HASH_LABEL))
                .is_some_and(|h| h == hash)
        })
    }
}

/// An annotation patch dropping a `scale-down-deadline` (when present): a ReplicaSet that
/// takes traffic again is no longer on its way down.
fn without_deadline() -> MetadataPatch {
    let mut patch = MetadataPatch::default();
    patch
        .remove
        .insert(sluice_api::common::SCALE_DOWN_DEADLINE_ANNOTATION.to_string());
    patch
}
