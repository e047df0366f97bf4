//! `sluice`: the controller, the embedded cluster, the demo, the benchmarks, the dashboard
//! and the user commands, in one binary. Installed as `kubectl-sluice` it is also a kubectl
//! plugin (`kubectl sluice get rollout web`).
mod cli;

/// mimalloc, not the system allocator: at 10,000 Rollouts glibc's malloc and free were about a
/// fifth of the controller's and the embedded cluster's CPU (docs/performance.md). Built
/// without transparent huge pages (`no_thp`), which would round every thread's first heap up
/// to 2 MiB pages: +11 MiB for an idle controller.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{CommandFactory, FromArgMatches};
use cli::{Cli, Command, Exit};

/// Parse the command line; as `kubectl-sluice`, usage and errors say `kubectl sluice`.
/// A user command logs nothing unless `--log-level` (or its variable) asks: its output is
/// its one line or its tree.
fn parse() -> Cli {
    let invoked_as = std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    let mut command = Cli::command();
    if invoked_as == "kubectl-sluice" {
        command = command.bin_name("kubectl sluice");
    }
    let matches = command.get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let level_given =
        matches.value_source("log_level") != Some(clap::parser::ValueSource::DefaultValue);
    if cli.command.is_user_command() && !level_given {
        cli.log_level = "off".into();
    }
    cli
}

#[tokio::main]
async fn main() {
    let cli = parse();
    sluice_controller::telemetry::init(cli.log_format, &cli.log_level);
    let result = match &cli.command {
        Command::Controller(args) => cli::serve::controller(args).await,
        Command::Cluster(args) => cli::serve::cluster(args).await,
        Command::Crds(args) => cli::serve::crds(args),
        Command::Demo(args) => cli::demo::run(args).await,
        Command::Migrate(args) => cli::migrate::run(args).await,
        Command::Bench(args) => sluice_bench::run(args).await,
        Command::Version { short } => {
            cli::version::print(*short);
            Ok(())
        }
        other => cli::run_user_command(other).await,
    };
    if let Err(err) = result {
        // One line, non-zero exit: the contract for every user-facing failure.
        let code = err.downcast_ref::<Exit>().map_or(1, |e| e.code);
        eprintln!("error: {err:#}");
        std::process::exit(code);
    }
}
