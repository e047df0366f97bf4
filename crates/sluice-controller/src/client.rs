//! Building a Kubernetes client from the user's flags.

use std::path::Path;

use anyhow::Context as _;

/// A client for `kubeconfig` (or the default chain: `$KUBECONFIG`, `~/.kube/config`,
/// in-cluster) plus the namespace to use when none is given on the command line.
pub async fn connect(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> anyhow::Result<(kube::Client, String)> {
    connect_with(kubeconfig, context, None, None, None).await
}

/// The controller's User-Agent: `sluice-controller/<version> (<identity>)`, the identity being
/// the one it holds the leader Lease with, so an API server's audit log tells replicas apart.
pub fn user_agent(identity: &str) -> String {
    format!(
        "sluice-controller/{} ({identity})",
        env!("CARGO_PKG_VERSION")
    )
}

/// Like [`connect`], sending `user_agent`, counting every request in `metrics`
/// (`controller_clientset_k8s_request_total`) and holding requests to `budget` (`--qps`,
/// `--burst`). The budget applies before the count, so a request is counted when it is sent.
pub async fn connect_with(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
    user_agent: Option<&str>,
    metrics: Option<&std::sync::Arc<crate::metrics::Metrics>>,
    budget: Option<std::sync::Arc<crate::throttle::Budget>>,
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
    let mut config = config;
    if let Some(ua) = user_agent {
        config.headers.push((
            http::header::USER_AGENT,
            http::HeaderValue::from_str(ua).context("the user agent is not a header value")?,
        ));
    }
    let namespace = config.default_namespace.clone();
    let builder =
        kube::client::ClientBuilder::try_from(config).context("building the Kubernetes client")?;
    let layers = tower::ServiceBuilder::new()
        .option_layer(budget.map(crate::throttle::BudgetLayer::new))
        .option_layer(metrics.map(|m| m.k8s_request_layer()))
        .into_inner();
    let client = builder.with_layer(&layers).build();
    Ok((client, namespace))
}
