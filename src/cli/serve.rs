//! The long-running subcommands: `controller`, `cluster`, and `crds`.

use std::sync::Arc;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::{ClusterArgs, ControllerArgs, CrdsArgs};
use sluice_controller::client;

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

/// `sluice controller`: the controllers, leader election, and the
/// /metrics, /healthz, /readyz endpoint.
pub async fn controller(args: &ControllerArgs) -> anyhow::Result<()> {
    let metrics = Arc::new(sluice_controller::metrics::Metrics::new());
    let identity = sluice_controller::leader::default_identity();
    let (client, _) = client::connect_with(
        args.kube.kubeconfig.as_deref(),
        args.kube.context.as_deref(),
        Some(&client::user_agent(&identity)),
        Some(&metrics),
        sluice_controller::throttle::Budget::new(
            args.qps,
            args.burst
                .unwrap_or_else(|| (args.qps * 2.0).clamp(1.0, f64::from(u32::MAX)) as u32),
        ),
    )
    .await?;
    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .with_context(|| format!("binding --metrics-addr {}", args.metrics_addr))?;
    let lease_client = if args.leader_elect {
        Some(
            client::connect_lease(
                args.kube.kubeconfig.as_deref(),
                args.kube.context.as_deref(),
                Some(&client::user_agent(&identity)),
                Some(&metrics),
            )
            .await?,
        )
    } else {
        None
    };
    let leader_election = args
        .leader_elect
        .then(|| sluice_controller::LeaderElection {
            client: lease_client,
            namespace: args
                .leader_election_namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
            lease_name: sluice_controller::leader::DEFAULT_LEASE_NAME.into(),
            identity: identity.clone(),
            lease_duration: std::time::Duration::from_secs(args.lease_duration),
        });
    let options = sluice_controller::Options {
        controllers: sluice_controller::rollout::Config {
            namespace: args.namespace.clone(),
            instance_id: args.instance_id.clone(),
            metrics: Some(metrics),
            health: Some(sluice_controller::health::HealthState::new()),
            events: args.events,
        },
        leader_election,
        endpoints: Some(listener),
        // SIGTERM stops new work at once; in-flight reconciles get `shutdown_grace`.
        shutdown_grace: Some(args.shutdown_grace),
    };
    sluice_controller::run(client, options, shutdown_on_signals()).await?;
    Ok(())
}

/// `sluice cluster`.
pub async fn cluster(args: &ClusterArgs) -> anyhow::Result<()> {
    if args.tls && args.kubeconfig.is_none() {
        anyhow::bail!(
            "--tls needs --kubeconfig PATH: the client certificate that reaches the cluster is written only there"
        );
    }
    let failures = match &args.simulate {
        None => Vec::new(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading --simulate {}", path.display()))?;
            sluice_cluster::workloads::simulate::parse_rules(&text)
                .map_err(|e| anyhow::anyhow!("--simulate {}: {e}", path.display()))?
        }
    };
    let faults = match &args.faults {
        None => sluice_cluster::faults::Faults::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading --faults {}", path.display()))?;
            sluice_cluster::faults::Faults::parse(&text)
                .map_err(|e| anyhow::anyhow!("--faults {}: {e}", path.display()))?
        }
    };
    let cfg = sluice_cluster::ClusterConfig {
        faults,
        port: args.port,
        data_dir: args.data_dir.clone(),
        kubeconfig: args.kubeconfig.clone(),
        workloads: Some(sluice_cluster::workloads::Config {
            pod_ready_delay: args.pod_ready_delay,
            failures,
            ..Default::default()
        }),
        tls: args.tls,
    };
    let cluster = sluice_cluster::EmbeddedCluster::start(cfg)
        .await
        .context("starting the embedded cluster")?;
    let addr = cluster.addr();
    let scheme = if args.tls { "https" } else { "http" };
    match &args.kubeconfig {
        Some(path) => eprintln!(
            "sluice cluster serving on {scheme}://{addr}; kubeconfig written to {}",
            path.display()
        ),
        None => eprintln!(
            "sluice cluster serving on {scheme}://{addr} (pass --kubeconfig PATH to write a kubeconfig)"
        ),
    }
    shutdown_on_signals().cancelled().await;
    cluster.shutdown().await;
    Ok(())
}

/// `sluice crds`.
pub fn crds(args: &CrdsArgs) -> anyhow::Result<()> {
    let crds = sluice_api::crds::all();
    match &args.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            for crd in &crds {
                let path = dir.join(format!("{}.yaml", crd.spec.names.plural));
                std::fs::write(&path, sluice_api::crds::render_yaml(crd))
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
        None => {
            let docs: Vec<String> = crds.iter().map(sluice_api::crds::render_yaml).collect();
            print!("{}", docs.join("---\n"));
        }
    }
    Ok(())
}
