//! `sluice bench planner`: the cost of one call to the pure planner, `sluice_engine::rollout::plan_step`.
//!
//! Each shape is built by walking a Rollout through real revisions with the planner itself
//! (the planner tests' in-memory cluster, `sluice_engine::rollout::testing::Sim`, applies
//! each plan: status written back, ReplicaSets created, scaled, deleted, pods instantly
//! available), so the measured `Observed` is one the controller would really hand the
//! planner, not a hand-made approximation.

use std::hint::black_box;
use std::time::Instant;

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use super::report::{Report, Target, summary};
use sluice_api::rollout::{CanaryStep, Rollout};
use sluice_engine::rollout::testing::{RolloutBuilder, Sim, at, pause, weight};
use sluice_engine::rollout::{Change, Observed, plan_step as plan};

/// The issue's target for one reconcile's planning of a 10-step, 10-ReplicaSet Rollout.
const TARGET_NS: f64 = 20_000.0;

fn steps(n: usize) -> Vec<CanaryStep> {
    (0..n)
        .map(|i| {
            if i % 2 == 0 {
                weight(((i / 2 + 1) * 100 / n.div_ceil(2) + 1).min(100) as i32)
            } else {
                pause()
            }
        })
        .collect()
}

fn rollout(replicas: i32, step_count: usize, history: i32) -> Rollout {
    RolloutBuilder::new("app:0")
        .steps(steps(step_count))
        .canary(|c| c.max_unavailable = Some(IntOrString::Int(0)))
        .spec(|s| {
            s.replicas = Some(replicas);
            s.revision_history_limit = Some(history);
        })
        .build()
}

/// Reconciles with every pod instantly available until a plan changes nothing (bounded),
/// promoting every indefinite pause when `promote` holds.
fn settle(sim: &mut Sim, promote: bool) {
    for _ in 0..200 {
        let before = sim.obs.rollout.status.clone();
        let p = sim.reconcile();
        sim.settle_pods();
        sim.now += 1;
        let paused = p
            .status
            .pause_conditions
            .as_ref()
            .is_some_and(|c| !c.is_empty());
        if paused && promote {
            if let Some(s) = sim.obs.rollout.status.as_mut() {
                s.pause_conditions = None;
            }
            continue;
        }
        let quiet = p.changes.iter().all(|c| matches!(c, Change::Event { .. }))
            && Some(&p.status) == before.as_ref();
        if quiet {
            return;
        }
    }
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
        settle(&mut sim, true);
        for i in 1..revisions {
            sim.set_image(&format!("app:{i}"));
            settle(&mut sim, true);
        }
        sim
    };
    // 9 old ReplicaSets kept + the stable one.
    let sim = walk(9, 10);
    shapes.push(Shape {
        name: describe("healthy", &sim),
        obs: sim.obs.clone(),
        now: at(sim.now),
    });
    // 8 old ReplicaSets kept + stable + canary.
    let mut sim = walk(8, 10);
    sim.set_image("app:10");
    settle(&mut sim, false);
    shapes.push(Shape {
        name: describe("paused mid-canary", &sim),
        obs: sim.obs.clone(),
        now: at(sim.now),
    });
    // The reconcile right after a new image: the planner builds a new ReplicaSet.
    sim.set_image("app:11");
    shapes.push(Shape {
        name: describe("new revision (creates a ReplicaSet)", &sim),
        obs: sim.obs.clone(),
        now: at(sim.now),
    });

    // The controller benchmark's shape: 5 steps, 2 ReplicaSets, paused at the first pause.
    let mut small = Sim::new(rollout(2, 5, 10));
    settle(&mut small, true);
    small.set_image("app:1");
    settle(&mut small, false);
    shapes.push(Shape {
        name: describe("paused mid-canary", &small),
        obs: small.obs.clone(),
        now: at(small.now),
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
