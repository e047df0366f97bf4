//! The cluster a bench runs against: the `sluice cluster` it started, or any cluster a
//! `--kubeconfig` reaches (HTTPS, client certificates, tokens: whatever kube's kubeconfig
//! loader understands).
//!
//! A cluster the bench did not start is checked before anything is created in it, so that a
//! wrong kubeconfig stops the bench within seconds with one line naming the cause: it must
//! answer `/version` within [`REACH_TIMEOUT`], and it must already serve Sluice's CRDs (the
//! bench never installs CustomResourceDefinitions into a cluster it does not own). What the
//! bench creates there (its namespace, and with it every Rollout, ReplicaSet and Service of
//! the run) is deleted when the run ends, whether it succeeded or not.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams};

/// How long a cluster the bench did not start has to answer its first request.
pub const REACH_TIMEOUT: Duration = Duration::from_secs(10);

/// The kinds the benchmarked controller lists and watches in `argoproj.io/v1alpha1`.
const KINDS: [&str; 5] = [
    "rollouts",
    "analysisruns",
    "analysistemplates",
    "clusteranalysistemplates",
    "experiments",
];

/// A client for the cluster `kubeconfig` names, and the server's URL (for messages).
pub async fn connect(kubeconfig: &Path) -> anyhow::Result<(kube::Client, String)> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading kubeconfig {}", kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .with_context(|| format!("loading kubeconfig {}", kubeconfig.display()))?;
    let url = config.cluster_url.to_string();
    let client = kube::Client::try_from(config)
        .with_context(|| format!("building a client from kubeconfig {}", kubeconfig.display()))?;
    Ok((client, url))
}

/// Checks a cluster the bench did not start: reachable, and serving Sluice's CRDs.
pub async fn check_foreign(client: &kube::Client, url: &str) -> anyhow::Result<()> {
    match tokio::time::timeout(REACH_TIMEOUT, client.apiserver_version()).await {
        Err(_) => bail!(
            "cannot reach the cluster at {url}: no answer within {} s",
            REACH_TIMEOUT.as_secs()
        ),
        Ok(Err(kube::Error::Api(s))) if s.code == 401 => bail!(
            "the cluster at {url} does not accept the kubeconfig's credentials (401 {})",
            s.message
        ),
        Ok(Err(kube::Error::Api(s))) => bail!(
            "the cluster at {url} refused /version ({} {}: {})",
            s.code,
            s.reason,
            s.message
        ),
        Ok(Err(e)) => bail!("cannot reach the cluster at {url}: {}", root_cause(&e)),
        Ok(Ok(_)) => {}
    }
    let served = match client
        .list_api_group_resources("argoproj.io/v1alpha1")
        .await
    {
        Ok(list) => list.resources.into_iter().map(|r| r.name).collect(),
        Err(kube::Error::Api(s)) if s.code == 404 => Vec::new(),
        Err(e) => bail!(
            "reading the argoproj.io API of the cluster at {url}: {}",
            root_cause(&e)
        ),
    };
    let missing = missing_kinds(&served);
    if !missing.is_empty() {
        bail!(
            "the cluster at {url} does not serve {} (argoproj.io/v1alpha1): install Sluice's CRDs first (sluice crds | kubectl apply --server-side -f -)",
            missing.join(", ")
        );
    }
    Ok(())
}

/// The innermost cause of a client error ("tcp connect error: Connection refused", "invalid
/// peer certificate: UnknownIssuer"): kube's own wording repeats each layer.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// The kinds the controller needs that `served` lacks.
fn missing_kinds(served: &[String]) -> Vec<&'static str> {
    KINDS
        .into_iter()
        .filter(|k| !served.iter().any(|s| s == k))
        .collect()
}

/// Deletes the namespace `name` the bench created (and with it everything the run made).
/// Does not wait for the namespace to finish terminating.
pub async fn delete_namespace(client: &kube::Client, name: &str) {
    eprintln!("bench: deleting namespace {name}, which the bench created");
    let ns: Api<Namespace> = Api::all(client.clone());
    match tokio::time::timeout(REACH_TIMEOUT, ns.delete(name, &DeleteParams::background())).await {
        Ok(Ok(_)) => {}
        Ok(Err(kube::Error::Api(s))) if s.code == 404 => {}
        Ok(Err(e)) => eprintln!("bench: could not delete namespace {name}: {e}"),
        Err(_) => eprintln!("bench: could not delete namespace {name}: no answer"),
    }
}

/// The last line of a child's log, as the cause of a failure it reported there (`None` when
/// the log is empty or unreadable).
pub fn last_log_line(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?.trim();
    // One line, but not a wall: the log file holds the rest.
    Some(match line.char_indices().nth(400) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_without_any_of_the_five_kinds_is_named_by_what_it_lacks() {
        let all: Vec<String> = KINDS.iter().map(|k| k.to_string()).collect();
        assert!(missing_kinds(&all).is_empty());
        assert_eq!(missing_kinds(&[]), KINDS.to_vec());
        let some = vec!["rollouts".to_string(), "rollouts/status".to_string()];
        assert_eq!(
            missing_kinds(&some),
            vec![
                "analysisruns",
                "analysistemplates",
                "clusteranalysistemplates",
                "experiments"
            ]
        );
    }

    #[test]
    fn the_root_cause_is_the_innermost_error() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let outer = anyhow::Error::new(io)
            .context("tcp connect")
            .context("client error");
        assert_eq!(root_cause(outer.as_ref()), "refused");
    }

    #[test]
    fn the_cause_is_the_last_line_of_the_log_cut_to_one_readable_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        assert_eq!(last_log_line(&path), None);
        std::fs::write(&path, "first\nWARN cannot list rollouts (Forbidden)\n\n").unwrap();
        assert_eq!(
            last_log_line(&path).as_deref(),
            Some("WARN cannot list rollouts (Forbidden)")
        );
        std::fs::write(&path, "é".repeat(1000)).unwrap();
        let line = last_log_line(&path).unwrap();
        assert_eq!(line.chars().count(), 401);
        assert!(line.ends_with('…'));
    }
}
