//! The kube-runtime wiring of the controllers: observe the cluster, call the pure
//! planners in `core`, apply their plans.

pub mod actuator;
pub mod analysis_run;
pub mod backoff;
pub mod experiment;
pub mod freshness;
pub mod leader;
pub mod rollout;
pub mod status_patch;

use kube::Client;
use tokio_util::sync::CancellationToken;

/// Run every controller of the `sluice controller` process until `shutdown`.
pub async fn run(
    client: Client,
    cfg: rollout::Config,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    tokio::try_join!(
        rollout::run(client.clone(), cfg.clone(), shutdown.clone()),
        analysis_run::run(client.clone(), cfg.clone(), shutdown.clone()),
        experiment::run(client, cfg, shutdown)
    )
    .map(|_| ())
}
