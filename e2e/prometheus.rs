//! Real metric backends for the analysis scenarios: a small HTTP server the test
//! controls (JSON for the web provider, text exposition for Prometheus to scrape)
//! and a real Prometheus (`/usr/bin/prometheus`) scraping it every second.

// Not every scenario uses every helper.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::harness::wait_until;

/// Where the Debian package installs Prometheus (`.ci/run` installs it).
pub const PROMETHEUS_BIN: &str = "/usr/bin/prometheus";

type Routes = Arc<Mutex<HashMap<String, (String, String)>>>;
type Hits = Arc<Mutex<Vec<(String, SystemTime)>>>;

/// An HTTP server on 127.0.0.1 answering each path with a body the test sets
/// (404 for unknown paths). Stops when dropped.
pub struct Served {
    pub addr: SocketAddr,
    routes: Routes,
    hits: Hits,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Served {
    /// Bind 127.0.0.1:0 and serve in a background thread.
    pub fn start() -> Served {
        let routes: Routes = Arc::default();
        let hits: Hits = Arc::default();
        let hit_log = hits.clone();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = routes.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                let app = axum::Router::new().fallback(move |uri: Uri| {
                    let routes = shared.clone();
                    hit_log
                        .lock()
                        .unwrap()
                        .push((uri.path().to_string(), SystemTime::now()));
                    async move { respond(&routes, &uri) }
                });
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        Served {
            addr,
            routes,
            hits,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answer `path` with `body` as JSON.
    pub fn set_json(&self, path: &str, body: &Value) {
        self.set(path, "application/json", &body.to_string());
    }

    /// Answer `path` with a Prometheus text exposition of one gauge.
    pub fn set_gauge(&self, path: &str, name: &str, value: f64) {
        let text =
            format!("# HELP {name} Set by the e2e test.\n# TYPE {name} gauge\n{name} {value}\n");
        self.set(path, "text/plain; version=0.0.4", &text);
    }

    /// When each request for `path` arrived, in order.
    pub fn hits(&self, path: &str) -> Vec<SystemTime> {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, t)| *t)
            .collect()
    }

    fn set(&self, path: &str, content_type: &str, body: &str) {
        self.routes.lock().unwrap().insert(
            path.to_string(),
            (content_type.to_string(), body.to_string()),
        );
    }
}

fn respond(routes: &Routes, uri: &Uri) -> Response {
    match routes.lock().unwrap().get(uri.path()) {
        Some((content_type, body)) => {
            ([(header::CONTENT_TYPE, content_type.clone())], body.clone()).into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such path").into_response(),
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One GET, for polling a local server from the (synchronous) tests.
pub fn http_get(url: &str) -> Option<(u16, String)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .ok()?;
        let resp = client.get(url).send().await.ok()?;
        let status = resp.status().as_u16();
        Some((status, resp.text().await.ok()?))
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// A real Prometheus on 127.0.0.1 scraping one target every second, with its
/// TSDB in a temporary directory. Killed when dropped.
pub struct Prometheus {
    child: Child,
    /// `http://127.0.0.1:<port>`, the address an AnalysisTemplate uses.
    pub url: String,
    pub log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Whether the binary is installed; tests fail without it.
    pub fn available() -> bool {
        Path::new(PROMETHEUS_BIN).exists()
    }

    /// Start Prometheus scraping `target` (`host:port`, path `/metrics`) and wait until
    /// the target is up and `wait_metric` has a sample.
    pub fn start(target: SocketAddr, wait_metric: &str) -> Prometheus {
        let dir = tempfile::Builder::new()
            .prefix("sluice-e2e-prometheus-")
            .tempdir()
            .expect("tempdir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: sluice-e2e\n    metrics_path: /metrics\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("write prometheus.yml");
        let port = free_port();
        let log = dir.path().join("prometheus.log");
        let file = std::fs::File::create(&log).expect("create prometheus log");
        let child = Command::new(PROMETHEUS_BIN)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone log handle"))
            .stderr(file)
            .spawn()
            .expect("spawning prometheus");
        let prom = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        };
        let targets = format!("{}/api/v1/targets", prom.url);
        wait_until(
            &format!("prometheus target {target} up ({})", prom.log.display()),
            Duration::from_secs(60),
            || {
                let (_, body) = http_get(&targets)?;
                let v: Value = serde_json::from_str(&body).ok()?;
                let up = v["data"]["activeTargets"]
                    .as_array()?
                    .iter()
                    .any(|t| t["health"] == "up");
                up.then_some(())
            },
        );
        wait_until(
            &format!("a sample of {wait_metric} in prometheus"),
            Duration::from_secs(30),
            || prom.query(wait_metric).filter(|r| !r.is_empty()),
        );
        prom
    }

    /// The instant vector of `query`, as the API's `data.result` list.
    pub fn query(&self, query: &str) -> Option<Vec<Value>> {
        let url = format!(
            "{}/api/v1/query?{}",
            self.url,
            serde_urlencoded::to_string([("query", query)]).ok()?
        );
        let (status, body) = http_get(&url)?;
        if status != 200 {
            return None;
        }
        let v: Value = serde_json::from_str(&body).ok()?;
        v["data"]["result"].as_array().cloned()
    }

    /// The log so far, for failure messages.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fail (never pass) when the Prometheus binary is missing: `make test` installs it first.
#[macro_export]
macro_rules! require_prometheus {
    () => {
        assert!(
            $crate::prometheus::Prometheus::available(),
            "{} is not installed: run `make test`, which installs it (apt-get install prometheus)",
            $crate::prometheus::PROMETHEUS_BIN
        );
    };
}
