//! `sluice bench`: how fast and how small Sluice is, measured (never asserted in tests).
//!
//! - [`planner`]: time per call of the pure planner.
//! - [`cluster`]: the embedded API server's throughput and memory.
//! - [`controller`]: the `sluice controller` process under 1,000+ Rollouts (memory, CPU,
//!   reaction latency, throughput, start-up), through a counting [`proxy`].
//! - [`analysis`]: how many concurrent AnalysisRuns one controller measures on time.
//!
//! Every run is bounded in count and time and talks only to 127.0.0.1 unless given a
//! kubeconfig. Results print as a table and, with `--json`, are written as JSON.

pub mod analysis;
pub mod cluster;
pub mod controller;
pub mod planner;
pub mod procfs;
pub mod proxy;
pub mod report;

use std::time::Duration;

use crate::cli::{BenchArgs, BenchKind};

/// `sluice bench <kind>`.
pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let report = match &args.kind {
        BenchKind::Planner { iterations } => planner::run(*iterations),
        BenchKind::Cluster {
            objects,
            clients,
            watches,
            seconds,
        } => {
            cluster::run(cluster::Params {
                objects: (*objects).min(200_000),
                clients: (*clients).clamp(1, 256),
                watches: (*watches).min(1000),
                duration: Duration::from_secs((*seconds).clamp(1, 300)),
            })
            .await?
        }
        BenchKind::Controller {
            rollouts,
            replicas,
            samples,
            pod_ready_delay,
            phase_timeout,
            steady_seconds,
            kubeconfig,
            events,
        } => {
            controller::run(controller::Params {
                rollouts: (*rollouts).clamp(1, 100_000),
                replicas: (*replicas).clamp(0, 10),
                samples: *samples,
                pod_ready_delay: *pod_ready_delay,
                phase_timeout: *phase_timeout,
                steady: Duration::from_secs((*steady_seconds).clamp(1, 600)),
                kubeconfig: kubeconfig.clone(),
                events: *events,
            })
            .await?
        }
        BenchKind::Analysis {
            runs,
            count,
            phase_timeout,
            spread,
            direct,
            kubeconfig,
        } => {
            analysis::run(analysis::Params {
                runs: runs.iter().map(|n| (*n).clamp(1, 20_000)).collect(),
                count: (*count).clamp(2, 120),
                phase_timeout: *phase_timeout,
                spread: (*spread).min(Duration::from_secs(60)),
                direct: *direct,
                kubeconfig: kubeconfig.clone(),
            })
            .await?
        }
    };
    println!("{}", report.table());
    if let Some(path) = &args.json {
        report.write_json(path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
