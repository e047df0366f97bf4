//! Delayed scale-down, shared by blue/green and the routed canary: a ReplicaSet that no longer
//! takes traffic stays up until its `scale-down-deadline` annotation (RFC 3339, no prefix, as
//! upstream writes it) has passed, so a rollback is instant; then it goes to zero.
//!
//! - [`Planner::scale_down_after_delay`]: superseded ReplicaSets, newest first, each given a
//!   deadline `scaleDownDelaySeconds` ahead; beyond `scaleDownDelayRevisionLimit` of them, at
//!   once.
//! - [`Planner::hold_then_scale_down`]: the update's own ReplicaSet after an abort
//!   (`abortScaleDownDelaySeconds`), its deadline set only once the traffic is back on the
//!   stable.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use sluice_api::common::{DESIRED_REPLICAS_ANNOTATION, SCALE_DOWN_DEADLINE_ANNOTATION};

use super::canary::{Planner, annotation};
use super::plan::{Change, MetadataPatch};
use super::status as st;

/// A ReplicaSet's `scale-down-deadline` annotation, read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deadline {
    /// No annotation.
    None,
    /// Not passed yet: this much is left.
    Ahead(Duration),
    /// Passed (or exactly now).
    Passed,
    /// Present but not an RFC 3339 time.
    Unreadable,
}

impl<'a> Planner<'a> {
    /// ReplicaSet `i`'s scale-down deadline as of `now`.
    pub(crate) fn deadline(&self, i: usize) -> Deadline {
        let Some(text) =
            annotation(self.rs[i].rs, SCALE_DOWN_DEADLINE_ANNOTATION).filter(|t| !t.is_empty())
        else {
            return Deadline::None;
        };
        let Ok(at) = text.parse::<Timestamp>() else {
            return Deadline::Unreadable;
        };
        let left = at.as_millisecond() - self.now.0.as_millisecond();
        match u64::try_from(left) {
            Ok(ms) if ms > 0 => Deadline::Ahead(Duration::from_millis(ms)),
            _ => Deadline::Passed,
        }
    }

    /// The deadline `seconds` from now, as the annotation holds it.
    pub(crate) fn deadline_in(&self, seconds: i32) -> String {
        let at = self.now.0.as_second() + i64::from(seconds);
        Time(Timestamp::from_second(at).unwrap_or(self.now.0))
            .0
            .to_string()
    }

    /// Keeps ReplicaSet `i` (the update's own, after an abort) at its size until
    /// `delay` seconds after `ready` (the traffic is back on the stable) first held, then
    /// scales it to zero.
    pub(crate) fn hold_then_scale_down(&mut self, i: usize, ready: bool, delay: i32) {
        let spec = self.rs[i].spec;
        match self.deadline(i) {
            Deadline::Ahead(left) => {
                self.requeue_in(left);
                self.resize(i, spec, MetadataPatch::default(), true);
            }
            Deadline::Passed => self.resize(i, 0, MetadataPatch::default(), true),
            Deadline::None | Deadline::Unreadable => {
                let mut annotations = MetadataPatch::default();
                if ready {
                    annotations.set.insert(
                        SCALE_DOWN_DEADLINE_ANNOTATION.to_string(),
                        self.deadline_in(delay),
                    );
                    self.requeue_in(Duration::from_secs(u64::try_from(delay).unwrap_or(0)));
                }
                self.resize(i, spec, annotations, true);
            }
        }
    }

    /// Scales the `candidates` (ReplicaSets that take no traffic any more) down once their
    /// `scale-down-deadline` passed: newest first, each without one gets a deadline `delay`
    /// seconds ahead; beyond `limit` delayed ReplicaSets, or with a delay of 0, at once
    /// (upstream keeps one up forever with a delay of 0; 0 means now).
    pub(crate) fn scale_down_after_delay(&mut self, candidates: &[usize], delay: i32, limit: i32) {
        let mut others: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&i| !self.rs[i].deleting && self.rs[i].spec != 0)
            .collect();
        others.sort_by(|&a, &b| {
            (self.rs[b].revision, self.rs[b].created())
                .cmp(&(self.rs[a].revision, self.rs[a].created()))
        });
        let mut delayed = 0;
        for i in others {
            let spec = self.rs[i].spec;
            let mut annotations = MetadataPatch::default();
            let target = match self.deadline(i) {
                Deadline::None if delayed < limit && delay > 0 => {
                    delayed += 1;
                    annotations.set.insert(
                        SCALE_DOWN_DEADLINE_ANNOTATION.to_string(),
                        self.deadline_in(delay),
                    );
                    self.requeue_in(Duration::from_secs(u64::try_from(delay).unwrap_or(0)));
                    spec
                }
                Deadline::None => 0,
                Deadline::Ahead(left) => {
                    delayed += 1;
                    if delayed > limit {
                        0
                    } else {
                        self.requeue_in(left);
                        // It follows a scale-down of the Rollout, never up (upstream would
                        // grow a superseded ReplicaSet to full size meanwhile).
                        spec.min(self.replicas)
                    }
                }
                Deadline::Passed | Deadline::Unreadable => {
                    delayed += 1;
                    0
                }
            };
            if target == 0 {
                annotations
                    .remove
                    .insert(SCALE_DOWN_DEADLINE_ANNOTATION.to_string());
            }
            let sync = target != spec;
            self.resize(i, target, annotations, sync);
        }
    }

    /// Scales ReplicaSet `i` to `target` with `annotations`, plus the desired-replicas
    /// annotation when `sync_desired`, in one write, and only when something changes.
    pub(crate) fn resize(
        &mut self,
        i: usize,
        target: i32,
        mut annotations: MetadataPatch,
        sync_desired: bool,
    ) {
        let view = &self.rs[i];
        if sync_desired {
            annotations.set.insert(
                DESIRED_REPLICAS_ANNOTATION.to_string(),
                self.replicas.to_string(),
            );
        }
        annotations
            .set
            .retain(|k, v| annotation(view.rs, k) != Some(v.as_str()));
        annotations
            .remove
            .retain(|k| annotation(view.rs, k).is_some());
        if view.spec == target && annotations.is_empty() {
            return;
        }
        let (name, from, revision) = (view.name.to_string(), view.spec, view.revision);
        self.changes.push(Change::ScaleReplicaSet {
            name: name.clone(),
            from,
            replicas: target,
            annotations,
        });
        if target != from {
            let direction = if target > from { "up" } else { "down" };
            self.changes.push(Change::normal(
                st::SCALING_REPLICA_SET_REASON,
                format!("Scaled {direction} ReplicaSet {name} (revision {revision}) from {from} to {target}"),
            ));
        }
    }
}
