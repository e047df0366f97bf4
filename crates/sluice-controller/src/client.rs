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

/// Like [`connect`], without kube-rs's retries, sending `user_agent`, counting every request in `metrics`
/// (`controller_clientset_k8s_request_total`) and holding requests to `budget` (`--qps`,
/// `--burst`). The budget applies before the count, so a request is counted when it is sent.
pub async fn connect_with(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
    user_agent: Option<&str>,
    metrics: Option<&std::sync::Arc<crate::metrics::Metrics>>,
    budget: Option<std::sync::Arc<crate::throttle::Budget>>,
) -> anyhow::Result<(kube::Client, String)> {
    let mut config = with_user_agent(load_config(kubeconfig, context).await?, user_agent)?;
    // No hidden retries: kube-rs would retry a 429, 503 or 504 up to 15 times with growing
    // delays, so a write issued while this replica led could land long after its Lease expired
    // and another replica took over (found by the chaos suite). A failed request fails the
    // reconcile, which the controller's own per-object backoff retries on the current state.
    config.default_retry = false;
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

/// The client the leader Lease is renewed with: the same cluster, User-Agent and request count
/// as [`connect_with`], without kube-rs's retries ([`crate::leader::lease_config`]) and without
/// the `--qps` budget (a renewal never waits behind reconciles).
pub async fn connect_lease(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
    user_agent: Option<&str>,
    metrics: Option<&std::sync::Arc<crate::metrics::Metrics>>,
) -> anyhow::Result<kube::Client> {
    let config = with_user_agent(load_config(kubeconfig, context).await?, user_agent)?;
    let builder = kube::client::ClientBuilder::try_from(crate::leader::lease_config(config))
        .context("building the Lease's Kubernetes client")?;
    let layers = tower::ServiceBuilder::new()
        .option_layer(metrics.map(|m| m.k8s_request_layer()))
        .into_inner();
    Ok(builder.with_layer(&layers).build())
}

fn with_user_agent(
    mut config: kube::Config,
    user_agent: Option<&str>,
) -> anyhow::Result<kube::Config> {
    if let Some(ua) = user_agent {
        config.headers.push((
            http::header::USER_AGENT,
            http::HeaderValue::from_str(ua).context("the user agent is not a header value")?,
        ));
    }
    Ok(config)
}

/// The configuration of `kubeconfig` (and `context`), or the default chain.
async fn load_config(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> anyhow::Result<kube::Config> {
    let options = kube::config::KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .with_context(|| format!("loading kubeconfig {}", path.display()))
        }
        None => kube::Config::infer()
            .await
            .context("no usable kubeconfig or in-cluster configuration"),
    }
}
