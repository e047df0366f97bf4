use clap::Parser;
use sluice::cli::{Cli, Command, run_rollout_command};

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    sluice::telemetry::init(cli.log_format, &cli.log_level);
    let result = match &cli.command {
        Command::Controller(args) => sluice::cli::serve::controller(args).await,
        Command::Cluster(args) => sluice::cli::serve::cluster(args).await,
        Command::Crds(args) => sluice::cli::serve::crds(args),
        Command::Demo(args) => sluice::cli::demo::run(args).await,
        Command::Migrate(args) => sluice::cli::migrate::run(args).await,
        Command::Bench(args) => sluice::bench::run(args).await,
        other => run_rollout_command(other).await,
    };
    if let Err(err) = result {
        // One line, non-zero exit: the contract for every user-facing failure.
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
