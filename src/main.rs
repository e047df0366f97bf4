//! `sluice`: the controller, the embedded cluster, the demo, the benchmarks and the user
//! commands, in one binary.
mod cli;

use clap::Parser;
use cli::{Cli, Command, run_rollout_command};

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
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
        other => run_rollout_command(other).await,
    };
    if let Err(err) = result {
        // One line, non-zero exit: the contract for every user-facing failure.
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
