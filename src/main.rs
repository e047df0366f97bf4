use clap::Parser;
use sluice::cli::{Cli, run_rollout_command};

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    sluice::telemetry::init(cli.log_format, &cli.log_level);
    let result = run_rollout_command(&cli.command).await;
    if let Err(err) = result {
        // One line, non-zero exit: the contract for every user-facing failure.
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
