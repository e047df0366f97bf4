//! `sluice bench dashboard`: what `sluice dashboard` costs with N Rollouts.
//!
//! Starts `sluice cluster` and `sluice controller` as child processes, then `sluice
//! dashboard` (all namespaces), and samples the dashboard's resident memory: idle (watches
//! open, no Rollouts), with N Healthy Rollouts and their ReplicaSets and pods, and at the
//! peak of a mass update (every Rollout to its first pause, every change streamed into the
//! index). Also times the overview's answer (`GET /api/rollouts`, every summary built).
//! Bounded: each phase gives up after `--phase-timeout`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::{Child, Command};

use sluice_api::rollout::rollout_resource;

use crate::controller::{
    CONCURRENCY, NAMESPACE, SECOND_IMAGE, Sampler, Strategy, at_first_pause, ensure_namespace,
    healthy, install_crds, mib, rollout, sluice_exe, start_cluster, start_controller, stop,
    wait_all,
};
use crate::report::{Report, Target};

/// How big a run is.
#[derive(Debug, Clone)]
pub struct Params {
    pub rollouts: usize,
    pub replicas: i32,
    pub pod_ready_delay: Duration,
    pub phase_timeout: Duration,
}

/// GET `path` from 127.0.0.1:`port`: (status, body).
async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut response))
        .await
        .ok()?
        .ok()?;
    let response = String::from_utf8_lossy(&response);
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_string();
    Some((code, body))
}

/// The overview as the dashboard serves it.
async fn overview(port: u16) -> Option<Value> {
    let (code, body) = get(port, "/api/rollouts").await?;
    (code == 200).then(|| serde_json::from_str(&body).ok())?
}

fn synced(overview: &Value) -> bool {
    overview["watches"]
        .as_object()
        .is_some_and(|w| !w.is_empty() && w.values().all(|s| s["synced"] == true))
}

fn count_phase(overview: &Value, phase: &str) -> usize {
    overview["rollouts"]
        .as_array()
        .map_or(0, |r| r.iter().filter(|r| r["phase"] == phase).count())
}

/// Wait until the dashboard's overview satisfies `done`, sampling the dashboard's memory;
/// the peak RSS seen (KiB).
async fn wait_dashboard(
    port: u16,
    sampler: &Sampler,
    timeout: Duration,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> anyhow::Result<u64> {
    let deadline = Instant::now() + timeout;
    let mut peak = 0;
    loop {
        peak = peak.max(sampler.mem().rss_kib);
        if let Some(o) = overview(port).await
            && done(&o)
        {
            return Ok(peak);
        }
        if Instant::now() > deadline {
            bail!("the dashboard never showed {what} within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn start_dashboard(
    dir: &std::path::Path,
    kubeconfig: &PathBuf,
    port: u16,
) -> anyhow::Result<Child> {
    let log = std::fs::File::create(dir.join("dashboard.log"))?;
    Command::new(sluice_exe()?)
        .args([
            "--log-level",
            "warn",
            "dashboard",
            "--port",
            &port.to_string(),
        ])
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("starting `sluice dashboard`")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Run the benchmark.
pub async fn run(p: Params) -> anyhow::Result<Report> {
    let n = p.rollouts;
    let mut report = Report::new(
        "dashboard",
        json!({"rollouts": n, "replicas": p.replicas, "pod_ready_delay_ms": p.pod_ready_delay.as_millis() as u64}),
    );
    let dir = std::env::temp_dir().join(format!("sluice-bench-dashboard-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    eprintln!("bench: logs and kubeconfigs in {}", dir.display());
    let (mut cluster, kubeconfig) = start_cluster(&dir, p.pod_ready_delay).await?;
    let (client, _) = sluice_controller::client::connect(Some(&kubeconfig), None).await?;
    install_crds(&client).await?;
    ensure_namespace(&client, NAMESPACE).await?;
    let rollouts: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), NAMESPACE, &rollout_resource());
    let mut controller = start_controller(
        &dir,
        &kubeconfig,
        "controller.log",
        false,
        sluice_controller::events::EventLevel::All,
    )?;

    let port = free_port()?;
    let mut dashboard = start_dashboard(&dir, &kubeconfig, port)?;
    let sampler = Sampler::new(&dashboard)?;
    eprintln!("bench: idle dashboard");
    wait_dashboard(
        port,
        &sampler,
        p.phase_timeout,
        "its watches synced",
        synced,
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = sampler.mem().rss_kib;
    report.add(
        "idle: RSS",
        mib(idle),
        "MiB",
        Target::None,
        "no Rollouts; six watches open",
    );

    eprintln!("bench: creating {n} Rollouts");
    let failed = futures::stream::iter(0..n)
        .map(|i| {
            let api = rollouts.clone();
            let obj: DynamicObject =
                serde_json::from_value(rollout(i, p.replicas, Strategy::Canary))
                    .expect("a valid Rollout");
            async move { api.create(&PostParams::default(), &obj).await.err() }
        })
        .buffer_unordered(CONCURRENCY)
        .filter_map(futures::future::ready)
        .collect::<Vec<_>>()
        .await;
    if let Some(e) = failed.first() {
        bail!("{} Rollout creates failed; first: {e}", failed.len());
    }
    let (_, count) = wait_all(&rollouts, n, Instant::now(), p.phase_timeout, |ro| {
        healthy(ro, p.replicas)
    })
    .await?;
    if count < n {
        bail!("only {count}/{n} Rollouts became Healthy");
    }
    let peak_create = wait_dashboard(
        port,
        &sampler,
        p.phase_timeout,
        "every Rollout Healthy",
        |o| count_phase(o, "Healthy") == n,
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let loaded = sampler.mem().rss_kib;
    let per_1000 = |kib: u64| mib(kib.saturating_sub(idle)) * 1000.0 / n as f64;
    let objects = format!(
        "{n} Rollouts, {n} ReplicaSets, {} pods, their Events",
        n * p.replicas as usize
    );
    report.add(
        &format!("{n} Healthy Rollouts: RSS"),
        mib(loaded),
        "MiB",
        Target::None,
        &objects,
    );
    report.add(
        "steady: RSS per 1,000 Rollouts",
        per_1000(loaded),
        "MiB",
        Target::None,
        "(RSS with N − idle RSS) × 1000 / N",
    );
    report.add(
        "while creating: peak RSS",
        mib(peak_create),
        "MiB",
        Target::None,
        "sampled every 200 ms",
    );
    let t = Instant::now();
    let o = overview(port).await.context("the overview")?;
    report.add(
        "GET /api/rollouts",
        t.elapsed().as_secs_f64() * 1000.0,
        "ms",
        Target::None,
        &format!(
            "every summary built and serialized, {} bytes",
            o.to_string().len()
        ),
    );

    eprintln!("bench: mass update to the first pause");
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": SECOND_IMAGE}]}}}});
    let failed = futures::stream::iter(0..n)
        .map(|i| {
            let api = rollouts.clone();
            let patch = patch.clone();
            async move {
                api.patch(
                    &format!("ro-{i}"),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
                .err()
            }
        })
        .buffer_unordered(CONCURRENCY)
        .filter_map(futures::future::ready)
        .collect::<Vec<_>>()
        .await;
    if let Some(e) = failed.first() {
        bail!("{} Rollout updates failed; first: {e}", failed.len());
    }
    let peak_update = wait_dashboard(
        port,
        &sampler,
        p.phase_timeout,
        "every Rollout Paused",
        |o| count_phase(o, "Paused") == n,
    )
    .await?;
    let (_, paused) = wait_all(
        &rollouts,
        n,
        Instant::now(),
        p.phase_timeout,
        at_first_pause,
    )
    .await?;
    report.add(
        "mass update: peak RSS",
        mib(peak_update),
        "MiB",
        Target::None,
        &format!("{paused}/{n} at their first pause; two ReplicaSets each"),
    );
    report.add(
        "mass update: peak RSS per 1,000 Rollouts",
        per_1000(peak_update),
        "MiB",
        Target::None,
        "(peak − idle) × 1000 / N",
    );
    stop(&mut dashboard).await;
    stop(&mut controller).await;
    stop(&mut cluster).await;
    Ok(report)
}
