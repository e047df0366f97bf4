//! `sluice bench planner`: the cost of one call to the pure planner, `sluice_engine::rollout::plan_step`.
//!
//! Each shape is built by walking a Rollout through real revisions with the planner itself
//! (a tiny in-memory loop applies each plan: status written back, ReplicaSets created,
//! scaled, deleted, pods instantly available), so the measured `Observed` is one the
//! controller would really hand the planner, not a hand-made approximation.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::ReplicaSetStatus;
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use super::report::{Report, Target, summary};
use sluice_api::rollout::{
    CanaryStep, CanaryStrategy, Rollout, RolloutPause, RolloutSpec, RolloutStrategy,
};
use sluice_engine::rollout::{Change, MetadataPatch, Observed, plan};

/// The issue's target for one reconcile's planning of a 10-step, 10-ReplicaSet Rollout.
const TARGET_NS: f64 = 20_000.0;

fn template(image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(BTreeMap::from([("app".into(), "bench".into())])),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some(image.into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

fn steps(n: usize) -> Vec<CanaryStep> {
    (0..n)
        .map(|i| {
            if i % 2 == 0 {
                CanaryStep {
                    set_weight: Some(((i / 2 + 1) * 100 / n.div_ceil(2) + 1).min(100) as i32),
                    ..Default::default()
                }
            } else {
                CanaryStep {
                    pause: Some(RolloutPause::default()),
                    ..Default::default()
                }
            }
        })
        .collect()
}

fn rollout(replicas: i32, step_count: usize, history: i32) -> Rollout {
    let spec = RolloutSpec {
        replicas: Some(replicas),
        selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([("app".into(), "bench".into())])),
            match_expressions: None,
        }),
        template: Some(template("app:0")),
        revision_history_limit: Some(history),
        strategy: Some(RolloutStrategy {
            canary: Some(CanaryStrategy {
                max_surge: Some(IntOrString::Int(1)),
                max_unavailable: Some(IntOrString::Int(0)),
                steps: Some(steps(step_count)),
                ..Default::default()
            }),
            blue_green: None,
        }),
        ..Default::default()
    };
    let mut ro = Rollout::new("bench", spec);
    ro.metadata.namespace = Some("default".into());
    ro.metadata.uid = Some("uid-bench".into());
    ro.metadata.generation = Some(1);
    ro
}

/// Plays the API server, the ReplicaSet controller and the kubelet for the planner: every
/// change is applied at once and every pod is instantly available.
struct Sim {
    obs: Observed,
    now: DateTime<Utc>,
}

impl Sim {
    fn new(ro: Rollout) -> Self {
        Self {
            obs: Observed {
                rollout: ro,
                ..Default::default()
            },
            now: DateTime::from_timestamp(1_700_000_000, 0).expect("a valid timestamp"),
        }
    }

    fn apply(&mut self, changes: &[Change]) {
        for change in changes {
            match change {
                Change::CreateReplicaSet(rs) => {
                    let mut rs = (**rs).clone();
                    rs.metadata.uid = Some(format!("rs-uid-{}", self.obs.replica_sets.len()));
                    rs.metadata.creation_timestamp = Some(sluice_api::k8s::time::to_time(self.now));
                    self.obs.replica_sets.push(rs);
                }
                Change::ScaleReplicaSet {
                    name,
                    replicas,
                    annotations,
                    ..
                } => {
                    if let Some(rs) = self.find(name) {
                        patch_map(&mut rs.metadata.annotations, annotations);
                        if let Some(spec) = rs.spec.as_mut() {
                            spec.replicas = Some(*replicas);
                        }
                    }
                }
                Change::UpdateReplicaSet {
                    name,
                    annotations,
                    template_labels,
                    template_annotations,
                    min_ready_seconds,
                } => {
                    if let Some(rs) = self.find(name) {
                        patch_map(&mut rs.metadata.annotations, annotations);
                        if let Some(spec) = rs.spec.as_mut() {
                            if min_ready_seconds.is_some() {
                                spec.min_ready_seconds = *min_ready_seconds;
                            }
                            if let Some(meta) =
                                spec.template.as_mut().and_then(|t| t.metadata.as_mut())
                            {
                                patch_map(&mut meta.labels, template_labels);
                                patch_map(&mut meta.annotations, template_annotations);
                            }
                        }
                    }
                }
                Change::DeleteReplicaSet { name } => self
                    .obs
                    .replica_sets
                    .retain(|rs| rs.metadata.name.as_deref() != Some(name)),
                Change::AnnotateRolloutRevision { revision } => {
                    self.obs
                        .rollout
                        .metadata
                        .annotations
                        .get_or_insert_with(Default::default)
                        .insert(
                            sluice_api::common::REVISION_ANNOTATION.into(),
                            revision.clone(),
                        );
                }
                Change::PatchRolloutSpecReplicas { replicas } => {
                    self.obs.rollout.spec.replicas = Some(*replicas);
                }
                _ => {}
            }
        }
        for rs in &mut self.obs.replica_sets {
            let n = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
            rs.status = Some(ReplicaSetStatus {
                replicas: n,
                ready_replicas: Some(n),
                available_replicas: Some(n),
                fully_labeled_replicas: Some(n),
                observed_generation: rs.metadata.generation,
                ..Default::default()
            });
        }
    }

    fn find(&mut self, name: &str) -> Option<&mut k8s_openapi::api::apps::v1::ReplicaSet> {
        self.obs
            .replica_sets
            .iter_mut()
            .find(|rs| rs.metadata.name.as_deref() == Some(name))
    }

    /// Reconcile until a plan changes nothing (bounded), promoting every indefinite pause
    /// when `promote` holds.
    fn settle(&mut self, promote: bool) {
        for _ in 0..200 {
            let p = plan(&self.obs, self.now);
            self.apply(&p.changes);
            let quiet = p.changes.iter().all(|c| matches!(c, Change::Event { .. }))
                && Some(&p.status) == self.obs.rollout.status.as_ref();
            let paused = p
                .status
                .pause_conditions
                .as_ref()
                .is_some_and(|c| !c.is_empty());
            self.obs.rollout.status = Some(p.status);
            self.now += chrono::Duration::seconds(1);
            if paused && promote {
                if let Some(s) = self.obs.rollout.status.as_mut() {
                    s.pause_conditions = None;
                }
                continue;
            }
            if quiet {
                return;
            }
        }
    }

    fn set_image(&mut self, image: &str) {
        self.obs.rollout.spec.template = Some(template(image));
        let g = self.obs.rollout.metadata.generation.unwrap_or(1);
        self.obs.rollout.metadata.generation = Some(g + 1);
    }
}

fn patch_map(map: &mut Option<BTreeMap<String, String>>, patch: &MetadataPatch) {
    if patch.is_empty() {
        return;
    }
    let m = map.get_or_insert_with(Default::default);
    m.extend(patch.set.iter().map(|(k, v)| (k.clone(), v.clone())));
    m.retain(|k, _| !patch.remove.contains(k));
}

/// One planner input to time, with a description of what it is.
struct Shape {
    name: String,
    obs: Observed,
    now: DateTime<Utc>,
}

fn shapes() -> Vec<Shape> {
    let mut shapes = Vec::new();
    let describe = |label: &str, sim: &Sim| {
        let ro = &sim.obs.rollout;
        format!(
            "{label}: {} steps, {} ReplicaSets",
            ro.spec.steps().len(),
            sim.obs.replica_sets.len()
        )
    };

    // The issue's shape: a 10-step Rollout that went through 9 revisions (10 ReplicaSets
    // kept by revisionHistoryLimit 10), now paused in the middle of the 10th update.
    let walk = |history: i32, revisions: usize| {
        let mut sim = Sim::new(rollout(10, 10, history));
        sim.settle(true);
        for i in 1..revisions {
            sim.set_image(&format!("app:{i}"));
            sim.settle(true);
        }
        sim
    };
    // 9 old ReplicaSets kept + the stable one.
    let sim = walk(9, 10);
    shapes.push(Shape {
        name: describe("healthy", &sim),
        obs: sim.obs.clone(),
        now: sim.now,
    });
    // 8 old ReplicaSets kept + stable + canary.
    let mut sim = walk(8, 10);
    sim.set_image("app:10");
    sim.settle(false);
    shapes.push(Shape {
        name: describe("paused mid-canary", &sim),
        obs: sim.obs.clone(),
        now: sim.now,
    });
    // The reconcile right after a new image: the planner builds a new ReplicaSet.
    sim.set_image("app:11");
    shapes.push(Shape {
        name: describe("new revision (creates a ReplicaSet)", &sim),
        obs: sim.obs.clone(),
        now: sim.now,
    });

    // The controller benchmark's shape: 5 steps, 2 ReplicaSets, paused at the first pause.
    let mut small = Sim::new(rollout(2, 5, 10));
    small.settle(true);
    small.set_image("app:1");
    small.settle(false);
    shapes.push(Shape {
        name: describe("paused mid-canary", &small),
        obs: small.obs.clone(),
        now: small.now,
    });
    shapes
}

/// Time `iterations` planner calls on each shape and report mean/p50/p99 in nanoseconds.
pub fn run(iterations: usize) -> Report {
    let iterations = iterations.clamp(100, 1_000_000);
    let mut report = Report::new("planner", json!({ "iterations": iterations }));
    for shape in shapes() {
        let sample_plan = plan(&shape.obs, shape.now);
        let changes = sample_plan
            .changes
            .iter()
            .filter(|c| !matches!(c, Change::Event { .. }))
            .count();
        // Warm caches and the allocator before timing.
        for _ in 0..(iterations / 10).max(100) {
            black_box(plan(black_box(&shape.obs), shape.now));
        }
        let mut ns = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let t = Instant::now();
            black_box(plan(black_box(&shape.obs), shape.now));
            ns.push(t.elapsed().as_nanos() as f64);
        }
        let (mean, p50, p99) = summary(&mut ns).expect("at least 100 iterations");
        let note = format!("plan makes {changes} non-event change(s)");
        let target = if shape.name.contains("10 steps") {
            Target::AtMost(TARGET_NS)
        } else {
            Target::None
        };
        eprintln!("{}", shape.name);
        report.add(&format!("{} — mean", shape.name), mean, "ns", target, &note);
        report.add(&format!("{} — p50", shape.name), p50, "ns", target, "");
        report.add(&format!("{} — p99", shape.name), p99, "ns", target, "");
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_have_the_issue_sizes() {
        let shapes = shapes();
        let names: Vec<&str> = shapes.iter().map(|s| s.name.as_str()).collect();
        assert!(
            names
                .iter()
                .any(|n| n.starts_with("paused mid-canary: 10 steps, 1")
                    && n.ends_with("ReplicaSets")),
            "{names:?}"
        );
        assert!(
            names[0].starts_with("healthy: 10 steps, 10 ReplicaSets"),
            "{names:?}"
        );
        assert!(
            names[1].starts_with("paused mid-canary: 10 steps, 10 ReplicaSets"),
            "{names:?}"
        );
        let big = &shapes[1];
        // A settled shape: the planner has nothing left to do but wait for a promote.
        let p = plan(&big.obs, big.now);
        let work: Vec<_> = p
            .changes
            .iter()
            .filter(|c| !matches!(c, Change::Event { .. }))
            .collect();
        assert!(work.is_empty(), "{work:?}");
        let status = big.obs.rollout.status.as_ref().unwrap();
        assert!(
            status
                .pause_conditions
                .as_ref()
                .is_some_and(|c| !c.is_empty())
        );
    }
}
