//! The `sluice` command line: one binary, one subcommand per job.

pub mod dashboard;
pub mod demo;
pub mod get;
pub mod lint;
pub mod list;
pub mod migrate;
pub mod serve;
pub mod status;
pub mod steer;
pub mod terminal;
pub mod tree;
pub mod version;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use sluice_api::k8s::duration::parse_seconds_or_duration;
use sluice_client::actions::Action;
use sluice_controller::telemetry::LogFormat;

/// Sluice: progressive delivery for Kubernetes, compatible with the Argo Rollouts API.
#[derive(Debug, Parser)]
#[command(name = "sluice", version = version::CLAP_VERSION, about, propagate_version = true)]
pub struct Cli {
    /// Log output format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "SLUICE_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Log level or filter directive (for example `info` or `sluice_controller=debug,kube=info`).
    #[arg(long, global = true, default_value = "info", env = "SLUICE_LOG_LEVEL")]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

/// Connection flags shared by the commands that talk to a cluster.
#[derive(Debug, Args, Clone)]
pub struct KubeArgs {
    /// Path to a kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use.
    #[arg(long)]
    pub context: Option<String>,
}

/// Which cluster and namespace a user command works in.
#[derive(Debug, Args, Clone)]
pub struct Scope {
    /// Namespace (default: the kubeconfig context's namespace).
    #[arg(short, long)]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub kube: KubeArgs,
}

impl Scope {
    /// A client for the cluster and the namespace to work in.
    pub async fn connect(&self) -> anyhow::Result<(kube::Client, String)> {
        let (client, default_ns) = sluice_controller::client::connect(
            self.kube.kubeconfig.as_deref(),
            self.kube.context.as_deref(),
        )
        .await?;
        Ok((client, self.namespace.clone().unwrap_or(default_ns)))
    }
}

/// Flags of the user commands that address one Rollout.
#[derive(Debug, Args, Clone)]
pub struct RolloutArgs {
    /// Name of the Rollout.
    pub name: String,
    #[command(flatten)]
    pub scope: Scope,
}

/// Flags of `sluice controller`.
#[derive(Debug, Args, Clone)]
pub struct ControllerArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Watch and reconcile only this namespace (namespaced mode).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Reconcile only objects labelled `argo-rollouts.argoproj.io/controller-instance-id=<ID>`;
    /// without it, only objects that lack the label.
    #[arg(long)]
    pub instance_id: Option<String>,
    /// Take part in leader election through a Lease; only the leader reconciles.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub leader_elect: bool,
    /// Namespace of the leader-election Lease (default: $POD_NAMESPACE, else `default`).
    #[arg(long, env = "POD_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// Lease duration in seconds (at least 2): how long a standby waits before taking over a
    /// leader that stopped renewing.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(2..))]
    pub lease_duration: u64,
    /// Address serving /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8090")]
    pub metrics_addr: std::net::SocketAddr,
    /// How long SIGTERM waits for in-flight reconciles before exiting.
    #[arg(long, default_value = "20s", value_parser = parse_seconds_or_duration)]
    pub shutdown_grace: std::time::Duration,
    /// Which Events to write as Event objects: `all` (as Argo Rollouts does), `warnings`
    /// (aborts, failed analysis, invalid specs: about half the API writes of a canary step
    /// fewer), or `none`. Every Event is still counted in `rollout_events_total`.
    #[arg(long, value_enum, default_value_t = sluice_controller::events::EventLevel::All)]
    pub events: sluice_controller::events::EventLevel,
    /// Steady ceiling on requests per second to the API server (0: none; the reconciles in
    /// flight already bound the load and follow the server's speed).
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub qps: f64,
    /// Requests allowed at once above `--qps` (default: twice `--qps`).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub burst: Option<u32>,
}

/// Flags of `sluice cluster`.
#[derive(Debug, Args, Clone)]
pub struct ClusterArgs {
    /// Port on 127.0.0.1 to serve the Kubernetes API on (0 picks a free port).
    #[arg(long, default_value_t = sluice_cluster::DEFAULT_PORT)]
    pub port: u16,
    /// Write a kubeconfig for this cluster to PATH (for kubectl and the controller).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Persist objects in DIR and reload them on start (default: in memory only).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// How long a simulated pod takes from Running to Ready (for example `500ms`, `2s`).
    #[arg(long, default_value = "500ms", value_parser = parse_seconds_or_duration)]
    pub pod_ready_delay: std::time::Duration,
    /// Serve HTTPS with a CA made at start, and require a client certificate: the kubeconfig
    /// (--kubeconfig, required) carries the CA and a client-certificate user.
    #[arg(long)]
    pub tls: bool,
    /// Simulated failures chosen by image or command, from a YAML file (see
    /// docs/embedded-cluster.md, "Failures from the cluster's configuration").
    #[arg(long, value_name = "FILE")]
    pub simulate: Option<PathBuf>,
    /// Inject API faults (errors, latency, cut watches, expired resourceVersions) from a YAML
    /// file; also settable at run time on `/_sluice/faults` (see docs/reliability.md).
    #[arg(long, value_name = "FILE")]
    pub faults: Option<PathBuf>,
}

/// Flags of `sluice demo`.
#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    /// Run the whole tour unattended (promote, abort, retry, promote --full) and exit.
    #[arg(long)]
    pub auto: bool,
    /// Port for the embedded cluster (falls back to a free port when taken).
    #[arg(long, default_value_t = sluice_cluster::DEFAULT_PORT)]
    pub port: u16,
    /// Where to write the demo cluster's kubeconfig (default: $TMPDIR/sluice-demo.kubeconfig).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// How long a simulated pod takes to become Ready.
    #[arg(long, default_value = "1s", value_parser = parse_seconds_or_duration)]
    pub pod_ready_delay: std::time::Duration,
}

/// Flags of `sluice crds`.
#[derive(Debug, Args, Clone)]
pub struct CrdsArgs {
    /// Write one file per CRD into DIR instead of printing them.
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
}

/// A request rate: a finite number of requests per second, 0 or more.
pub fn parse_rate(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 0.0 => Ok(r),
        _ => Err(format!(
            "`{value}` is not a rate: give requests per second, 0 or more"
        )),
    }
}

/// Every subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller against the current kubeconfig or in-cluster configuration.
    Controller(ControllerArgs),
    /// Run only the embedded Kubernetes API server (with simulated workloads) on 127.0.0.1.
    Cluster(ClusterArgs),
    /// Run the canary tour on the embedded cluster, live in the terminal.
    Demo(DemoArgs),
    /// Print the CustomResourceDefinitions (install with `kubectl apply --server-side`).
    Crds(CrdsArgs),
    /// Measure Sluice: planner, embedded server, controller at scale (see docs/performance.md).
    Bench(sluice_bench::BenchArgs),
    /// List Rollouts, Experiments or AnalysisRuns (`-A` for every namespace).
    #[command(subcommand)]
    List(list::ListCommand),
    /// Show a Rollout or an Experiment as a tree; `--watch` follows it live.
    #[command(subcommand)]
    Get(get::GetCommand),
    /// Wait for a Rollout to finish: exit 0 Healthy, 1 Degraded or aborted, 2 timed out.
    Status(status::StatusArgs),
    /// Promote a paused Rollout to its next step (`--full` skips all remaining steps).
    Promote {
        #[command(flatten)]
        target: RolloutArgs,
        /// Skip every remaining step, analysis and pause.
        #[arg(long)]
        full: bool,
    },
    /// Abort the update in flight: scale the canary down and the stable back up.
    Abort {
        #[command(flatten)]
        target: RolloutArgs,
    },
    /// Retry an aborted Rollout, or a finished Experiment.
    #[command(subcommand)]
    Retry(steer::RetryCommand),
    /// Pause a Rollout (sets `spec.paused`).
    Pause {
        #[command(flatten)]
        target: RolloutArgs,
    },
    /// Resume a paused Rollout: clear every pause (Argo CD's resume action).
    Resume {
        #[command(flatten)]
        target: RolloutArgs,
    },
    /// Restart the pods of a Rollout (sets `spec.restartAt`).
    Restart {
        #[command(flatten)]
        target: RolloutArgs,
        /// Restart after this long instead of now (for example `30s`, `5m`).
        #[arg(long, short = 'i', value_parser = parse_seconds_or_duration)]
        r#in: Option<std::time::Duration>,
    },
    /// Roll back to an older revision's pod template.
    Undo {
        #[command(flatten)]
        target: RolloutArgs,
        /// The revision to go back to (default: the previous one).
        #[arg(long)]
        to_revision: Option<i64>,
    },
    /// Change a Rollout: `set image NAME CONTAINER=IMAGE`.
    #[command(subcommand)]
    Set(steer::SetCommand),
    /// Stop an Experiment or an AnalysisRun.
    #[command(subcommand)]
    Terminate(steer::TerminateCommand),
    /// Check Rollout manifests offline with the controller's own validation.
    Lint(lint::LintArgs),
    /// Serve the web dashboard on 127.0.0.1.
    Dashboard(dashboard::DashboardArgs),
    /// Convert Deployments (a file, stdin or the cluster) into Rollouts, printed as YAML.
    Migrate(migrate::MigrateArgs),
    /// Print the version, git commit and build date.
    Version {
        /// Print only `vX.Y.Z+commit`.
        #[arg(long)]
        short: bool,
    },
}

impl Command {
    /// The commands a person runs against a cluster (not the long-running servers).
    pub fn is_user_command(&self) -> bool {
        !matches!(
            self,
            Command::Controller(_)
                | Command::Cluster(_)
                | Command::Crds(_)
                | Command::Demo(_)
                | Command::Migrate(_)
                | Command::Bench(_)
                | Command::Dashboard(_)
                | Command::Version { .. }
        )
    }
}

/// A failure with its own exit code (`status`: 1 Degraded, 2 timed out).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    pub code: i32,
    pub message: String,
}

/// Run a user command and print its result.
pub async fn run_user_command(command: &Command) -> anyhow::Result<()> {
    match command {
        Command::List(c) => list::run(c).await,
        Command::Get(c) => get::run(c).await,
        Command::Status(args) => status::run(args).await,
        Command::Promote { target, full } => {
            let action = if *full {
                Action::PromoteFull
            } else {
                Action::Promote
            };
            steer::rollout_action(target, action, Default::default()).await
        }
        Command::Abort { target } => {
            steer::rollout_action(target, Action::Abort, Default::default()).await
        }
        Command::Retry(c) => steer::retry(c).await,
        Command::Pause { target } => {
            steer::rollout_action(target, Action::Pause, Default::default()).await
        }
        Command::Resume { target } => {
            steer::rollout_action(target, Action::Resume, Default::default()).await
        }
        Command::Restart { target, r#in } => {
            let options = sluice_client::actions::Options {
                restart_in: r#in.unwrap_or_default(),
            };
            steer::rollout_action(target, Action::Restart, options).await
        }
        Command::Undo {
            target,
            to_revision,
        } => steer::undo(target, *to_revision).await,
        Command::Set(c) => steer::set(c).await,
        Command::Terminate(c) => steer::terminate(c).await,
        Command::Lint(args) => lint::run(args),
        Command::Dashboard(args) => dashboard::run(args).await,
        Command::Controller(_)
        | Command::Cluster(_)
        | Command::Crds(_)
        | Command::Demo(_)
        | Command::Migrate(_)
        | Command::Bench(_)
        | Command::Version { .. } => anyhow::bail!("not a user command"),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    fn controller(args: &[&str]) -> Result<ControllerArgs, clap::Error> {
        let argv = ["sluice", "controller"].iter().chain(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Controller(a) => Ok(a),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn the_request_budget_is_off_unless_asked_for() {
        let a = controller(&[]).unwrap();
        assert_eq!((a.qps, a.burst), (0.0, None));
        let a = controller(&["--qps", "50", "--burst", "200"]).unwrap();
        assert_eq!((a.qps, a.burst), (50.0, Some(200)));
    }

    #[test]
    fn a_bad_rate_or_burst_is_refused_with_the_flag_named() {
        for bad in [
            &["--qps=-1"][..],
            &["--qps", "fast"],
            &["--qps", "inf"],
            &["--burst", "0"],
        ] {
            let err = controller(bad).expect_err("refused").to_string();
            let flag = bad[0].split('=').next().unwrap();
            assert!(err.contains(flag), "{bad:?}: {err}");
        }
    }

    #[test]
    fn events_take_one_of_three_levels() {
        use sluice_controller::events::EventLevel;
        assert_eq!(controller(&[]).unwrap().events, EventLevel::All);
        assert_eq!(
            controller(&["--events", "warnings"]).unwrap().events,
            EventLevel::Warnings
        );
        assert!(controller(&["--events", "some"]).is_err());
    }
}
