//! The long-running subcommands: `controller`, `cluster`, and `crds`.

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::{ClusterArgs, ControllerArgs, CrdsArgs, client};

/// A token cancelled on SIGINT or SIGTERM.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        info!("shutdown requested");
        trigger.cancel();
    });
    token
}

/// `sluice controller`.
pub async fn controller(args: &ControllerArgs) -> anyhow::Result<()> {
    let (client, _) = client::connect(
        args.kube.kubeconfig.as_deref(),
        args.kube.context.as_deref(),
    )
    .await?;
    let cfg = crate::controller::rollout::Config {
        namespace: args.namespace.clone(),
        instance_id: args.instance_id.clone(),
    };
    crate::controller::run(client, cfg, shutdown_on_signals()).await
}

/// `sluice cluster`.
pub async fn cluster(args: &ClusterArgs) -> anyhow::Result<()> {
    let cfg = crate::cluster::ClusterConfig {
        port: args.port,
        data_dir: args.data_dir.clone(),
        kubeconfig: args.kubeconfig.clone(),
        workloads: Some(crate::cluster::workloads::Config {
            pod_ready_delay: args.pod_ready_delay,
            ..Default::default()
        }),
    };
    let cluster = crate::cluster::EmbeddedCluster::start(cfg)
        .await
        .context("starting the embedded cluster")?;
    let addr = cluster.addr();
    match &args.kubeconfig {
        Some(path) => eprintln!(
            "sluice cluster serving on http://{addr}; kubeconfig written to {}",
            path.display()
        ),
        None => eprintln!(
            "sluice cluster serving on http://{addr} (pass --kubeconfig PATH to write a kubeconfig)"
        ),
    }
    shutdown_on_signals().cancelled().await;
    cluster.shutdown().await;
    Ok(())
}

/// `sluice crds`.
pub fn crds(args: &CrdsArgs) -> anyhow::Result<()> {
    let crds = crate::api::crds::all();
    match &args.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            for crd in &crds {
                let path = dir.join(format!("{}.yaml", crd.spec.names.plural));
                std::fs::write(&path, crate::api::crds::render_yaml(crd))
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
        None => {
            let docs: Vec<String> = crds.iter().map(crate::api::crds::render_yaml).collect();
            print!("{}", docs.join("---\n"));
        }
    }
    Ok(())
}
