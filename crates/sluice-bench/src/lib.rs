//! `sluice bench`: how fast and how small Sluice is, measured (never asserted in tests).
//!
//! - [`planner`]: time per call of the pure planner.
//! - [`cluster`]: the embedded API server's throughput and memory.
//! - [`controller`]: the `sluice controller` process under 1,000+ Rollouts (memory, CPU,
//!   reaction latency, throughput, start-up), through a counting [`proxy`].
//! - [`analysis`]: how many concurrent AnalysisRuns one controller measures on time.
//! - [`dashboard`]: the `sluice dashboard` process's memory with N Rollouts and their pods.
//!
//! Every run is bounded in count and time and talks only to 127.0.0.1 unless given a
//! kubeconfig. Results print as a table and, with `--json`, are written as JSON.

pub mod analysis;
pub mod cluster;
pub mod controller;
pub mod dashboard;
pub mod planner;
pub mod procfs;
pub mod proxy;
pub mod report;
pub mod target;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use sluice_api::k8s::duration::parse_seconds_or_duration;

/// Flags of `sluice bench`.
#[derive(Debug, Args, Clone)]
pub struct BenchArgs {
    /// Also write the results as JSON to PATH.
    #[arg(long, global = true)]
    pub json: Option<PathBuf>,
    #[command(subcommand)]
    pub kind: BenchKind,
}

/// Which benchmark `sluice bench` runs.
#[derive(Debug, Subcommand, Clone)]
pub enum BenchKind {
    /// Time per call of the pure planner (10-step Rollout with 10 ReplicaSets, and others).
    Planner {
        /// Timed calls per shape.
        #[arg(long, default_value_t = 20_000)]
        iterations: usize,
    },
    /// Throughput of the embedded API server (mixed reads/writes, open watches) and its memory.
    Cluster {
        /// ConfigMaps stored before the mixed workload starts.
        #[arg(long, default_value_t = 10_000)]
        objects: usize,
        /// ReplicaSets (shaped like the ones the Rollout controller makes, ~2 KB of JSON
        /// each) stored after the ConfigMaps, to measure the bytes per Rollout-sized object;
        /// the same number as `--objects` unless given.
        #[arg(long)]
        replica_sets: Option<usize>,
        /// Concurrent clients.
        #[arg(long, default_value_t = 8)]
        clients: usize,
        /// Open watches on the ConfigMaps during the mixed workload.
        #[arg(long, default_value_t = 100)]
        watches: usize,
        /// Length of the mixed workload.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// The `sluice controller` process under N Rollouts: memory, CPU, latency, throughput, start-up.
    Controller {
        /// Rollouts to create (each a 5-step canary, or blue/green with `--strategy`).
        #[arg(long, default_value_t = 1000)]
        rollouts: usize,
        /// Replicas per Rollout (0 keeps the simulated kubelet out of the way; 2 or more is
        /// needed for the promote latency).
        #[arg(long, default_value_t = 2)]
        replicas: i32,
        /// Promote/abort latency samples (alternating).
        #[arg(long, default_value_t = 200)]
        samples: usize,
        /// Pod ready delay of the embedded cluster the bench starts.
        #[arg(long, default_value = "50ms", value_parser = parse_seconds_or_duration)]
        pod_ready_delay: std::time::Duration,
        /// Give up on a phase (all reconciled, all healthy, all paused) after this long.
        #[arg(long, default_value = "180s", value_parser = parse_seconds_or_duration)]
        phase_timeout: std::time::Duration,
        /// Length of the steady-state window.
        #[arg(long, default_value_t = 10)]
        steady_seconds: u64,
        /// Benchmark against this cluster instead of starting `sluice cluster`.
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// The `--events` level the benchmarked controller runs with.
        #[arg(long, value_enum, default_value_t = sluice_controller::events::EventLevel::All)]
        events: sluice_controller::events::EventLevel,
        /// The Rollouts' strategy: the 5-step canary, or blue/green (two Services each,
        /// promoted by hand).
        #[arg(long, value_enum, default_value_t = controller::Strategy::Canary)]
        strategy: controller::Strategy,
        /// The Gateway API HTTPRoute CRD `--strategy canary-routed` installs when the
        /// cluster does not serve HTTPRoutes (the standard channel's `httproutes.yaml`).
        #[arg(
            long,
            default_value = "../shared/crds/gateway-api-v1.6.1/httproutes.yaml"
        )]
        gateway_api_crd: PathBuf,
    },
    /// How many concurrent AnalysisRuns (one web metric every 1 s against a local server) one
    /// controller measures within 100 ms of their due time.
    Analysis {
        /// Concurrent AnalysisRuns; a comma-separated list runs a sweep (`250,500,1000`), each
        /// step with a fresh controller.
        #[arg(long, value_delimiter = ',', default_value = "1000")]
        runs: Vec<usize>,
        /// Measurements per run (one per second).
        #[arg(long, default_value_t = 10)]
        count: u32,
        /// Give up on a step this long after its runs should have finished.
        #[arg(long, default_value = "60s", value_parser = parse_seconds_or_duration)]
        phase_timeout: std::time::Duration,
        /// Pace the creates evenly over this long (`0s`: all at once, the worst case of
        /// every run measured in the same instant each second).
        #[arg(long, default_value = "1s", value_parser = parse_seconds_or_duration)]
        spread: std::time::Duration,
        /// Let the controller talk to the API server directly instead of through the
        /// counting proxy (no request counts, one loopback hop less).
        #[arg(long)]
        direct: bool,
        /// Benchmark against this cluster instead of starting `sluice cluster` (the
        /// controller runs here, so it reaches the bench's metric server on 127.0.0.1).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
    },
    /// The `sluice dashboard` process with N Rollouts (and their ReplicaSets and pods): memory
    /// idle, with all of them, and at the peak of a mass update; time to answer the overview.
    Dashboard {
        /// Rollouts to create (each a 5-step canary).
        #[arg(long, default_value_t = 1000)]
        rollouts: usize,
        /// Replicas (pods) per Rollout.
        #[arg(long, default_value_t = 2)]
        replicas: i32,
        /// Pod ready delay of the embedded cluster the bench starts.
        #[arg(long, default_value = "50ms", value_parser = parse_seconds_or_duration)]
        pod_ready_delay: std::time::Duration,
        /// Give up on a phase after this long.
        #[arg(long, default_value = "300s", value_parser = parse_seconds_or_duration)]
        phase_timeout: std::time::Duration,
    },
}

/// `sluice bench <kind>`.
pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let report = match &args.kind {
        BenchKind::Planner { iterations } => planner::run(*iterations),
        BenchKind::Cluster {
            objects,
            replica_sets,
            clients,
            watches,
            seconds,
        } => {
            cluster::run(cluster::Params {
                objects: (*objects).min(200_000),
                replica_sets: replica_sets.unwrap_or(*objects).min(200_000),
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
            strategy,
            gateway_api_crd,
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
                strategy: *strategy,
                gateway_api_crd: gateway_api_crd.clone(),
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
        BenchKind::Dashboard {
            rollouts,
            replicas,
            pod_ready_delay,
            phase_timeout,
        } => {
            dashboard::run(dashboard::Params {
                rollouts: (*rollouts).clamp(1, 20_000),
                replicas: (*replicas).clamp(0, 10),
                pod_ready_delay: *pod_ready_delay,
                phase_timeout: *phase_timeout,
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
