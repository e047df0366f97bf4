//! `sluice dashboard`: a web UI for every Rollout the kubeconfig's cluster has.
//!
//! The server keeps one watch-fed index of the trees (`sluice_client::live`), serves a
//! hand-written page embedded in the binary (no CDN, no network at run time), and pushes
//! changes to the browser as server-sent events: the overview gets the rows that changed,
//! a Rollout's page gets its whole view again when anything under it changed. Buttons send
//! exactly the requests of `kubectl sluice` (`sluice_client::actions`, one copy), after a
//! confirmation in the page; a refused action shows the CLI's one-line reason inline and
//! sends nothing.
//!
//! It listens on 127.0.0.1 only, answers only requests addressed to that host (no DNS
//! rebinding), and takes actions only from the page's own script (a custom header a
//! cross-site form cannot send).

mod assets;
mod guard;
mod routes;
mod stream;

use std::net::SocketAddr;
use std::sync::Arc;

use sluice_client::live::Live;

/// How the dashboard is started.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Port on 127.0.0.1 (0: a free one).
    pub port: u16,
    /// Only this namespace (default: every namespace).
    pub namespace: Option<String>,
}

/// What the handlers share.
pub(crate) struct State {
    pub live: Live,
    pub client: kube::Client,
    pub namespace: Option<String>,
    pub port: u16,
}

/// A dashboard bound to its port, not serving yet.
pub struct Dashboard {
    listener: tokio::net::TcpListener,
    state: Arc<State>,
}

/// Why the dashboard could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error("serving the dashboard: {0}")]
    Serve(std::io::Error),
}

impl Dashboard {
    /// Bind 127.0.0.1:`port` and start watching.
    pub async fn bind(client: kube::Client, options: Options) -> Result<Dashboard, Error> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port))
            .await
            .map_err(|source| Error::Bind {
                port: options.port,
                source,
            })?;
        let port = listener.local_addr().map_err(Error::Serve)?.port();
        let live = Live::start(client.clone(), options.namespace.clone());
        Ok(Dashboard {
            listener,
            state: Arc::new(State {
                live,
                client,
                namespace: options.namespace,
                port,
            }),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], self.state.port)))
    }

    /// Serve until `shutdown` completes.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let live = self.state.live.clone();
        let app = routes::router(self.state);
        let result = axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(Error::Serve);
        live.stop();
        result
    }
}
