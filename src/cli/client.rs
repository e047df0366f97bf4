//! Building a Kubernetes client from the user's flags.

use std::path::Path;

use anyhow::Context as _;

/// A client for `kubeconfig` (or the default chain: `$KUBECONFIG`, `~/.kube/config`,
/// in-cluster) plus the namespace to use when none is given on the command line.
pub async fn connect(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> anyhow::Result<(kube::Client, String)> {
    connect_with(kubeconfig, context, None).await
}

/// Like [`connect`], counting every request in `metrics`
/// (`controller_clientset_k8s_request_total`).
pub async fn connect_with(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
    metrics: Option<&std::sync::Arc<crate::metrics::Metrics>>,
) -> anyhow::Result<(kube::Client, String)> {
    let options = kube::config::KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .with_context(|| format!("loading kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("no usable kubeconfig or in-cluster configuration")?,
    };
    let namespace = config.default_namespace.clone();
    let client = match metrics {
        Some(metrics) => kube::client::ClientBuilder::try_from(config)
            .context("building the Kubernetes client")?
            .with_layer(&metrics.k8s_request_layer())
            .build(),
        None => kube::Client::try_from(config).context("building the Kubernetes client")?,
    };
    Ok((client, namespace))
}
