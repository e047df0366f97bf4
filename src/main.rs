use clap::Parser;

/// Sluice: progressive delivery for Kubernetes (Argo Rollouts API).
#[derive(Parser)]
#[command(name = "sluice", version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
