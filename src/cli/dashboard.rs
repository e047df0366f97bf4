//! `dashboard`: the web UI (`sluice-dashboard`) against the kubeconfig's cluster.

use clap::Args;

use super::KubeArgs;

/// Flags of `dashboard`.
#[derive(Debug, Args, Clone)]
pub struct DashboardArgs {
    /// Port on 127.0.0.1 (0 picks a free one, printed at start).
    #[arg(long, short, default_value_t = 3100)]
    pub port: u16,
    /// Show only this namespace (default: every namespace).
    #[arg(short, long)]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// Run the dashboard until interrupted.
pub async fn run(args: &DashboardArgs) -> anyhow::Result<()> {
    let (client, _) = sluice_controller::client::connect(
        args.kube.kubeconfig.as_deref(),
        args.kube.context.as_deref(),
    )
    .await?;
    let shutdown = super::serve::shutdown_on_signals();
    let server = sluice_dashboard::Dashboard::bind(
        client,
        sluice_dashboard::Options {
            port: args.port,
            namespace: args.namespace.clone(),
        },
    )
    .await?;
    println!("Sluice dashboard: http://{}/", server.addr());
    server.serve(shutdown.cancelled_owned()).await?;
    Ok(())
}
