//! Replica counts toward the current step's weight: canary and stable first, within
//! maxSurge/maxUnavailable (and the room pods outside the Rollout leave), then the other
//! ReplicaSets drained. The weight → count math itself is in `rollout::replicas`.

use sluice_api::common::{DESIRED_REPLICAS_ANNOTATION, SCALE_DOWN_DEADLINE_ANNOTATION};

use super::{Planner, RsView, annotation};
use crate::rollout::plan::{Change, MetadataPatch};
use crate::rollout::replicas::{
    CanaryScaleInput, RsState, Targets, basic_canary_targets, desired_weight, scale_down_others,
};
use crate::rollout::status as st;

impl<'a> Planner<'a> {
    /// COMPAT §6 desired weight, from the status as observed — and an abort this reconcile
    /// decided (a failed analysis or experiment) holds already: the plan that aborts never
    /// scales the canary up (upstream computes it from the old status and does, once).
    fn desired_weight(&self) -> i32 {
        if self.pause.add_abort.is_some() && !self.prev.is_aborted() {
            let mut aborted = self.prev.clone();
            aborted.abort = Some(true);
            return desired_weight(self.steps, &aborted);
        }
        desired_weight(self.steps, &self.prev)
    }

    pub(crate) fn distinct_stable(&self, new: usize) -> Option<usize> {
        self.stable.filter(|&s| s != new)
    }

    fn others(&self, new: usize) -> Vec<usize> {
        (0..self.rs.len())
            .filter(|&i| i != new && Some(i) != self.stable)
            .collect()
    }

    fn targets(&self, new: usize) -> Targets {
        let others_spec = self.others(new).iter().map(|&i| self.rs[i].spec).sum();
        basic_canary_targets(&CanaryScaleInput {
            replicas: self.replicas,
            weight: self.desired_weight(),
            limits: self.limits,
            canary: Some(self.rs[new].state()),
            stable: self.distinct_stable(new).map(|s| self.rs[s].state()),
            others_spec,
        })
    }

    /// Scales canary and stable toward the current weight; once neither needs to change,
    /// drains the other ReplicaSets. Returns whether any replica count changed.
    pub(super) fn reconcile_replica_sets(&mut self, new: usize) -> bool {
        let targets = self.targets(new);
        let mut moves: Vec<(usize, i32)> = vec![(new, targets.canary)];
        if let Some(stable) = self.distinct_stable(new) {
            moves.push((stable, targets.stable));
        }
        // Shrink before growing so the surge ceiling also holds between the two writes.
        moves.sort_by_key(|&(i, target)| target > self.rs[i].spec);
        let mut room = self.outside_room();
        let mut scaled = false;
        for (i, target) in moves {
            let target = self.fit_room(&mut room, i, target);
            scaled |= self.scale(i, target, true);
        }
        if scaled {
            return true;
        }
        let mut others = self.others(new);
        others.sort_by(|&a, &b| self.rs[b].revision.cmp(&self.rs[a].revision));
        let states: Vec<RsState> = others.iter().map(|&i| self.rs[i].state()).collect();
        let total_available = self.rs.iter().map(|v| v.available).sum();
        let specs = scale_down_others(
            &states,
            total_available,
            self.replicas,
            self.limits.max_unavailable,
        );
        for (&i, spec) in others.iter().zip(specs) {
            scaled |= self.scale(i, spec, false);
        }
        scaled
    }

    /// Room left under the surge ceiling (`replicas + maxSurge` pods) when pods outside the
    /// Rollout count against it (a Deployment being scaled down progressively); `None`
    /// when there are none and the replica math alone decides.
    fn outside_room(&self) -> Option<i32> {
        if self.obs.outside_pods <= 0 {
            return None;
        }
        let mine: i32 = self.rs.iter().filter(|v| !v.deleting).map(|v| v.spec).sum();
        Some((self.replicas + self.limits.max_surge - self.obs.outside_pods - mine).max(0))
    }

    /// Cuts a scale-up of ReplicaSet `i` to the `room` left; a scale-down adds to it.
    fn fit_room(&self, room: &mut Option<i32>, i: usize, target: i32) -> i32 {
        let Some(room) = room.as_mut() else {
            return target;
        };
        let from = self.rs[i].spec;
        if target <= from {
            *room += from - target;
            return target;
        }
        let grow = (target - from).min(*room);
        *room -= grow;
        from + grow
    }

    /// Emits a scale of ReplicaSet `i` to `target` if its spec (or, for canary/stable,
    /// its desired-replicas annotation) is stale. Returns whether the spec changes.
    fn scale(&mut self, i: usize, target: i32, sync_annotation: bool) -> bool {
        let view = &self.rs[i];
        let desired_text = self.replicas.to_string();
        let annotation_stale =
            annotation(view.rs, DESIRED_REPLICAS_ANNOTATION) != Some(desired_text.as_str());
        let size_changes = view.spec != target;
        let needed = size_changes || (sync_annotation && annotation_stale);
        if !needed {
            return false;
        }
        let mut annotations = MetadataPatch::default();
        if annotation_stale {
            annotations
                .set
                .insert(DESIRED_REPLICAS_ANNOTATION.to_string(), desired_text);
        }
        if target == 0 && annotation(view.rs, SCALE_DOWN_DEADLINE_ANNOTATION).is_some() {
            annotations
                .remove
                .insert(SCALE_DOWN_DEADLINE_ANNOTATION.to_string());
        }
        let (name, from, revision) = (view.name.to_string(), view.spec, view.revision);
        self.changes.push(Change::ScaleReplicaSet {
            name: name.clone(),
            from,
            replicas: target,
            annotations,
        });
        if size_changes {
            let direction = if target > from { "up" } else { "down" };
            self.changes.push(Change::normal(
                st::SCALING_REPLICA_SET_REASON,
                format!("Scaled {direction} ReplicaSet {name} (revision {revision}) from {from} to {target}"),
            ));
        }
        size_changes
    }

    /// setWeight is done when the canary has exactly its target available, the stable
    /// exactly its target created, and nothing else serves; with traffic routing, when the
    /// counts are at target and the routers read back the step's weight.
    pub(super) fn at_desired_counts(&self, new: usize) -> bool {
        if self.routing.is_some() {
            return self.routed.is_some_and(|r| r.step_done());
        }
        let Some(stable) = self.distinct_stable(new) else {
            return false;
        };
        let t = self.targets(new);
        let (c, s) = (&self.rs[new], &self.rs[stable]);
        self.progress_threshold_met(c, t.canary)
            && s.spec == t.stable
            && s.replicas == t.stable
            && self.others(new).iter().all(|&i| self.rs[i].available == 0)
    }

    /// Whether the canary has enough available pods for `desired`: all of them, or what
    /// `replicaProgressThreshold` accepts (`Percent` of desired, or a number of `Pods`).
    pub(crate) fn progress_threshold_met(&self, canary: &RsView, desired: i32) -> bool {
        let threshold = self
            .spec
            .canary()
            .and_then(|c| c.replica_progress_threshold.as_ref())
            .filter(|t| t.value >= 0);
        match threshold {
            None => canary.spec == desired && canary.available == desired,
            Some(t) if t.type_ == "Percent" => {
                desired == 0
                    || i64::from(canary.available) * 100 >= i64::from(t.value) * i64::from(desired)
            }
            Some(t) => canary.available >= t.value,
        }
    }
}
