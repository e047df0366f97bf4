//! `sluice bench analysis`: how many concurrent AnalysisRuns one controller measures on time.
//!
//! Like [`super::controller`], the bench starts `sluice cluster` and `sluice controller` as
//! child processes (so the controller's RSS and CPU are its own) and, unless `--direct`,
//! routes the controller through the counting [`super::proxy`]. It also serves the metric:
//! an HTTP server on 127.0.0.1 answering `GET /m/<run>` with `{"ok": 1}` and recording the
//! arrival time of every request per run (the run name reaches the URL through the run's
//! `{{args.run}}` argument). Each AnalysisRun has one web metric, `interval: 1s`, `count: C`,
//! `successCondition: result == 1`.
//!
//! **Due time.** A measurement of a 1 s metric is due one interval after the previous one
//! finished. The API stores `finishedAt` in whole seconds, so the bench takes the server's
//! clock instead: measurement k is due at `arrival(k−1) + interval`, and its lateness is
//! `arrival(k) − due(k)`. The controller finishes measurement k−1 when its response arrives,
//! a little after `arrival(k−1)`, so this due time is early by that response path and the
//! lateness it gives is an upper bound, never flattering. A measurement taken before it is
//! due shows as negative lateness; "within 100 ms" means `|lateness| <= 100 ms`. The bench
//! also counts requests that came before the schedule the stored status implies
//! (`finishedAt(k−1)`, whole seconds, `+ interval`), which would be a scheduling bug.
//!
//! For each run count of a sweep (`--runs 250,500,1000`) the bench starts a fresh controller,
//! waits until a probe run completes (controller up and leading), creates the runs (32 in
//! flight, paced evenly over `--spread`, one interval by default, as runs of independent
//! rollouts start at unrelated moments; `--spread 0s` starts them all at once), waits until every run has been measured `count` times (watching its own server,
//! not the API) and completed, then reads the runs once and reports.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail};
use axum::extract::{Path as UrlPath, State};
use futures::StreamExt;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::discovery::ApiResource;
use serde_json::{Value, json};

use super::controller::{
    Sampler, ensure_namespace, install_crds, list_all, mib, start_cluster, start_controller, stop,
};
use super::procfs;
use super::proxy::Proxy;
use super::report::{Report, Target, percentile};
use sluice_api::analysis::AnalysisRun;
use sluice_controller::events::EventLevel;

/// The measurement interval of every benchmark run (the 1 s).
pub const INTERVAL: Duration = Duration::from_secs(1);
/// The lateness a measurement may have and still count as on time (the 100 ms).
pub const ON_TIME: Duration = Duration::from_millis(100);
/// How many requests the bench keeps in flight when creating runs.
const CONCURRENCY: usize = 32;

/// How big a run is.
#[derive(Debug, Clone)]
pub struct Params {
    /// Concurrent AnalysisRuns, one step of the sweep each.
    pub runs: Vec<usize>,
    /// Measurements per run.
    pub count: u32,
    /// Extra time, beyond `count` intervals, a step may take before the bench gives up.
    pub phase_timeout: Duration,
    /// Creates are paced evenly over this long (zero: all at once, 32 in flight).
    pub spread: Duration,
    /// Controller talks straight to the API server (no counting proxy, no request counts).
    pub direct: bool,
    pub kubeconfig: Option<PathBuf>,
}

/// Arrival times of the metric requests, by run name.
#[derive(Default)]
struct Hits(Mutex<HashMap<String, Vec<SystemTime>>>);

impl Hits {
    fn record(&self, run: String, at: SystemTime) {
        self.lock().entry(run).or_default().push(at);
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<SystemTime>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn of(&self, run: &str) -> Vec<SystemTime> {
        self.lock().get(run).cloned().unwrap_or_default()
    }
    /// How many of `names` have at least `n` requests.
    fn reached(&self, names: &[String], n: usize) -> usize {
        let map = self.lock();
        names
            .iter()
            .filter(|r| map.get(*r).is_some_and(|h| h.len() >= n))
            .count()
    }
    fn total(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }
}

/// The metric endpoint: one local HTTP server for every run.
struct MetricServer {
    addr: std::net::SocketAddr,
    hits: Arc<Hits>,
    task: tokio::task::JoinHandle<()>,
}

impl MetricServer {
    async fn start() -> anyhow::Result<Self> {
        async fn measure(
            State(hits): State<Arc<Hits>>,
            UrlPath(run): UrlPath<String>,
        ) -> axum::Json<Value> {
            hits.record(run, SystemTime::now());
            axum::Json(json!({"ok": 1}))
        }
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let hits = Arc::new(Hits::default());
        let app = axum::Router::new()
            .route("/m/{run}", axum::routing::get(measure))
            .with_state(hits.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, hits, task })
    }
}

impl Drop for MetricServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One benchmark AnalysisRun: a web metric on the bench's server, the run's name in the
/// URL through an argument.
fn analysis_run(name: &str, namespace: &str, addr: std::net::SocketAddr, count: u32) -> Value {
    let mut spec = json!({
        "args": [{"name": "run", "value": name}],
        "metrics": [{
            "name": "web",
            "interval": format!("{}s", INTERVAL.as_secs()),
            "count": count,
            "successCondition": "result == 1",
            "provider": {"web": {
                "url": format!("http://{addr}/m/{{{{args.run}}}}"),
                "jsonPath": "{$.ok}"
            }}
        }]
    });
    // Every measurement stays in the status (default retention is 10), so each one's
    // recorded finish can be checked against the request that produced it.
    if count > 10 {
        spec["measurementRetention"] = json!([{"metricName": "web", "limit": count}]);
    }
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec
    })
}

fn analysis_run_resource() -> ApiResource {
    ApiResource::erase::<AnalysisRun>(&())
}

fn phase(run: &DynamicObject) -> &str {
    run.data["status"]["phase"].as_str().unwrap_or("")
}

fn completed(run: &DynamicObject) -> bool {
    matches!(
        phase(run),
        "Successful" | "Failed" | "Error" | "Inconclusive"
    )
}

/// What the bench knows about one run once it completed.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// When the bench's create request returned.
    pub created: SystemTime,
    /// Arrival of every metric request for the run, in order.
    pub hits: Vec<SystemTime>,
    /// `finishedAt` of each measurement in the status (whole seconds since the epoch), oldest
    /// first.
    pub finished: Vec<i64>,
}

/// Timing of all runs, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timing {
    /// First request of each run after its create returned.
    pub first: Vec<f64>,
    /// `arrival(k) − (arrival(k−1) + interval)` for every measurement after a run's first.
    pub lateness: Vec<f64>,
    /// The same, by measurement: entry i holds the (i + 2)-th measurement of every run.
    pub lateness_by_index: Vec<Vec<f64>>,
    /// Requests that arrived before `finishedAt(k−1) + interval` as stored.
    pub before_schedule: usize,
    /// Requests beyond the measurements recorded (a measurement taken again after a
    /// conflicting status write).
    pub retaken: usize,
    /// Recorded measurements no request can account for (should be 0).
    pub unmatched: usize,
}

fn secs(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Pair each recorded measurement with the request that produced it and time them.
///
/// The request of measurement j arrived before the controller read its response, so before
/// `finishedAt(j)` and hence before `finishedAt(j)` truncated plus one second, and before the
/// request of measurement j+1; when a measurement was taken again (a conflicting write), the
/// last such request is the one recorded.
pub fn timing(records: &[RunRecord], interval: Duration) -> Timing {
    let mut t = Timing::default();
    let interval = interval.as_secs_f64();
    for r in records {
        let hits: Vec<f64> = r.hits.iter().copied().map(secs).collect();
        if let Some(first) = hits.first() {
            t.first.push((first - secs(r.created)) * 1000.0);
        }
        // From the newest back: each measurement's request is the last one before both its
        // own bound and the next measurement's request.
        let mut chosen: Vec<Option<usize>> = vec![None; r.finished.len()];
        let mut end = hits.len();
        for (j, &f) in r.finished.iter().enumerate().rev() {
            let bound = f as f64 + 1.0;
            if let Some(i) = hits[..end].iter().rposition(|&h| h < bound) {
                chosen[j] = Some(i);
                end = i;
            }
        }
        t.unmatched += chosen.iter().filter(|c| c.is_none()).count();
        let chosen: Vec<(usize, usize)> = chosen
            .iter()
            .enumerate()
            .filter_map(|(j, c)| Some((j, (*c)?)))
            .collect();
        t.retaken += hits.len().saturating_sub(chosen.len());
        for w in chosen.windows(2) {
            let ((jp, prev), (j, cur)) = (w[0], w[1]);
            if j != jp + 1 {
                continue;
            }
            let (prev, cur) = (hits[prev], hits[cur]);
            let late = (cur - (prev + interval)) * 1000.0;
            t.lateness.push(late);
            if t.lateness_by_index.len() < j {
                t.lateness_by_index.resize(j, Vec::new());
            }
            t.lateness_by_index[j - 1].push(late);
            if cur < r.finished[jp] as f64 + interval {
                t.before_schedule += 1;
            }
        }
    }
    t
}

/// Run the benchmark: one step per run count.
pub async fn run(p: Params) -> anyhow::Result<Report> {
    let mut report = Report::new(
        "analysis",
        json!({
            "runs": p.runs, "count": p.count, "interval_s": INTERVAL.as_secs(),
            "on_time_ms": ON_TIME.as_millis() as u64,
            "phase_timeout_s": p.phase_timeout.as_secs(),
            "spread_ms": p.spread.as_millis() as u64,
            "controller_via": if p.direct { "direct" } else { "counting proxy" },
            "cluster": if p.kubeconfig.is_some() { "kubeconfig" } else { "sluice cluster (separate process)" },
        }),
    );
    let dir = std::env::temp_dir().join(format!("sluice-bench-analysis-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    eprintln!("bench: logs and kubeconfigs in {}", dir.display());
    let mut cluster = None;
    let cluster_kubeconfig = match &p.kubeconfig {
        Some(path) => path.clone(),
        None => {
            let (child, path) = start_cluster(&dir, Duration::from_millis(50)).await?;
            cluster = Some(child);
            path
        }
    };
    let (client, url) = super::target::connect(&cluster_kubeconfig).await?;
    if cluster.is_some() {
        install_crds(&client).await?;
    } else {
        super::target::check_foreign(&client, &url).await?;
    }
    let server = MetricServer::start().await?;
    let proxy = Proxy::start(client.clone()).await?;
    let controller_kubeconfig = if p.direct {
        cluster_kubeconfig.clone()
    } else {
        let path = dir.join("controller.kubeconfig");
        std::fs::write(&path, proxy.kubeconfig_yaml())?;
        path
    };
    let cluster_pid = cluster
        .as_ref()
        .and_then(|c| c.id())
        .map(|id| id.to_string());
    let mut sustained = 0;
    for (index, &n) in p.runs.iter().enumerate() {
        let ok = step(
            &mut report,
            Env {
                client: &client,
                server: &server,
                proxy: (!p.direct).then_some(&proxy),
                dir: &dir,
                controller_kubeconfig: &controller_kubeconfig,
                cluster_pid: cluster_pid.as_deref(),
                index,
            },
            n,
            &p,
        )
        .await?;
        if ok {
            sustained = sustained.max(n);
        }
    }
    if p.runs.len() > 1 {
        report.add(
            "largest run count measured on time",
            sustained as f64,
            "runs",
            Target::AtLeast(1000.0),
            &format!(
                "≥ 99% of measurements within {} ms and every run Successful",
                ON_TIME.as_millis()
            ),
        );
    }
    if let Some(mut c) = cluster {
        stop(&mut c).await;
    }
    Ok(report)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// What every step of a sweep shares.
struct Env<'a> {
    client: &'a kube::Client,
    server: &'a MetricServer,
    proxy: Option<&'a Proxy>,
    dir: &'a Path,
    controller_kubeconfig: &'a Path,
    /// The `sluice cluster` child, when the bench started one.
    cluster_pid: Option<&'a str>,
    /// Which step of the sweep this is (its namespace, so a count may repeat).
    index: usize,
}

/// One step of the sweep: `n` runs against a fresh controller. Whether it was on time.
async fn step(report: &mut Report, env: Env<'_>, n: usize, p: &Params) -> anyhow::Result<bool> {
    let Env {
        client,
        server,
        proxy,
        dir,
        controller_kubeconfig,
        cluster_pid,
        index,
    } = env;
    let ns = format!("sluice-bench-ar-{index}-{n}");
    ensure_namespace(client, &ns).await?;
    let runs: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &analysis_run_resource());
    if !list_all(&runs).await?.is_empty() {
        bail!("namespace {ns} already holds AnalysisRuns; delete them or use a fresh cluster");
    }
    eprintln!("bench: {n} runs: starting the controller");
    let mut ctl = start_controller(
        dir,
        controller_kubeconfig,
        &format!("controller-{n}.log"),
        false,
        EventLevel::All,
    )?;
    // A probe run completing shows the controller is up, leading and measuring.
    let probe = format!("probe-{index}-{n}");
    let obj: DynamicObject = serde_json::from_value(analysis_run(&probe, &ns, server.addr, 1))?;
    runs.create(&PostParams::default(), &obj).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if runs.get(&probe).await.is_ok_and(|r| completed(&r)) {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "the controller did not complete a probe run within 60 s (see {})",
                dir.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let names: Vec<String> = (0..n).map(|i| format!("ar-{index}-{n}-{i}")).collect();
    let sampler = Sampler::new(&ctl)?;
    let cluster_cpu0 = cluster_pid.and_then(procfs::cpu_seconds);
    let bench_cpu0 = procfs::cpu_seconds("self");
    let before = proxy.map(Proxy::counts).unwrap_or_default();
    let hits_before = server.hits.total();
    eprintln!(
        "bench: creating {n} AnalysisRuns ({} measurements each)",
        p.count
    );
    let start = Instant::now();
    let created: Vec<(String, Result<SystemTime, kube::Error>)> =
        futures::stream::iter(names.iter().cloned().enumerate())
            .map(|(i, name)| {
                let api = runs.clone();
                let obj: DynamicObject =
                    serde_json::from_value(analysis_run(&name, &ns, server.addr, p.count))
                        .expect("a valid AnalysisRun");
                // Paced: run i starts i/n of the way through the spread.
                let at =
                    tokio::time::Instant::from_std(start) + p.spread.mul_f64(i as f64 / n as f64);
                async move {
                    tokio::time::sleep_until(at).await;
                    let r = api.create(&PostParams::default(), &obj).await;
                    (name, r.map(|_| SystemTime::now()))
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
    let create_took = start.elapsed();
    let mut created_at = HashMap::new();
    for (name, r) in created {
        created_at.insert(name, r.with_context(|| "creating an AnalysisRun")?);
    }
    eprintln!(
        "bench: created in {:.1} s; waiting for {} measurements",
        create_took.as_secs_f64(),
        n * p.count as usize
    );
    let count = p.count as usize;
    let deadline = start + p.spread + INTERVAL * p.count + p.phase_timeout;
    let mut measured = 0;
    while Instant::now() < deadline {
        measured = server.hits.reached(&names, count);
        if measured >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let load_window = loadavg();
    let mut items = Vec::new();
    while Instant::now() < deadline + Duration::from_secs(30) {
        items = list_all(&runs).await?;
        // The n runs and the probe.
        if items.iter().filter(|r| completed(r)).count() > n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let window = start.elapsed();
    let cpu = sampler.cpu();
    let cluster_cpu = cluster_pid
        .and_then(procfs::cpu_seconds)
        .zip(cluster_cpu0)
        .map(|(b, a)| b - a);
    let bench_cpu = procfs::cpu_seconds("self")
        .zip(bench_cpu0)
        .map(|(b, a)| b - a);
    let mem = sampler.mem();
    let counts = proxy.map(|p| p.counts().since(&before));
    stop(&mut ctl).await;

    let by_name: HashMap<&str, &DynamicObject> = items
        .iter()
        .filter_map(|r| Some((r.metadata.name.as_deref()?, r)))
        .collect();
    let successful = names
        .iter()
        .filter(|name| {
            by_name
                .get(name.as_str())
                .is_some_and(|r| phase(r) == "Successful")
        })
        .count();
    let records: Vec<RunRecord> = names
        .iter()
        .map(|name| RunRecord {
            created: created_at[name],
            hits: server.hits.of(name),
            finished: by_name
                .get(name.as_str())
                .map(|r| finished_seconds(r))
                .unwrap_or_default(),
        })
        .collect();
    // The raw arrivals, for a closer look (`python3 -m json.tool`).
    let raw: Vec<Value> = names
        .iter()
        .zip(&records)
        .map(|(name, r)| {
            json!({
                "run": name,
                "created": secs(r.created),
                "requests": r.hits.iter().copied().map(secs).collect::<Vec<_>>(),
                "finished": r.finished,
            })
        })
        .collect();
    let _ = std::fs::write(
        dir.join(format!("arrivals-{n}.json")),
        Value::from(raw).to_string(),
    );
    let requests = server.hits.total() - hits_before;
    let t = timing(&records, INTERVAL);

    let prefix = format!("{n} runs");
    let mut lateness = t.lateness.clone();
    lateness.sort_by(f64::total_cmp);
    let on_time_ms = ON_TIME.as_secs_f64() * 1000.0;
    let within = lateness.iter().filter(|l| l.abs() <= on_time_ms).count();
    let fraction = if lateness.is_empty() {
        0.0
    } else {
        within as f64 / lateness.len() as f64
    };
    report.add(
        &format!("{prefix}: measurements within {} ms of due", ON_TIME.as_millis()),
        fraction * 100.0,
        "%",
        Target::AtLeast(99.0),
        &format!(
            "{within} of {} (measurements 2..{count} of each run; due = previous request's arrival + 1 s)",
            lateness.len()
        ),
    );
    if !lateness.is_empty() {
        let mut abs: Vec<f64> = lateness.iter().map(|l| l.abs()).collect();
        abs.sort_by(f64::total_cmp);
        report.add(
            &format!("{prefix}: |lateness| p99"),
            percentile(&abs, 99.0),
            "ms",
            Target::AtMost(on_time_ms),
            "early or late",
        );
        report.add(
            &format!("{prefix}: lateness p50"),
            percentile(&lateness, 50.0),
            "ms",
            Target::None,
            &format!(
                "p1 {:.1} ms, p99 {:.1} ms, min {:.1} ms (negative = early)",
                percentile(&lateness, 1.0),
                percentile(&lateness, 99.0),
                lateness[0]
            ),
        );
        report.add(
            &format!("{prefix}: lateness max"),
            lateness[lateness.len() - 1],
            "ms",
            Target::None,
            "",
        );
    }
    let by_index: Vec<String> = t
        .lateness_by_index
        .iter()
        .enumerate()
        .filter(|(_, v)| !v.is_empty())
        .map(|(i, v)| {
            let mut v = v.clone();
            v.sort_by(f64::total_cmp);
            format!("#{}: {:.0}", i + 2, percentile(&v, 99.0))
        })
        .collect();
    if !by_index.is_empty() {
        report.add(
            &format!("{prefix}: lateness p99 of the 2nd measurement"),
            t.lateness_by_index
                .first()
                .map(|v| {
                    let mut v = v.clone();
                    v.sort_by(f64::total_cmp);
                    percentile(&v, 99.0)
                })
                .unwrap_or(f64::NAN),
            "ms",
            Target::None,
            &format!("p99 by measurement, ms: {}", by_index.join(", ")),
        );
    }
    let mut first = t.first.clone();
    first.sort_by(f64::total_cmp);
    if !first.is_empty() {
        report.add(
            &format!("{prefix}: first measurement after create, p50"),
            percentile(&first, 50.0),
            "ms",
            Target::None,
            &format!(
                "p99 {:.0} ms; the {n} creates took {:.1} s (paced over {:.1} s)",
                percentile(&first, 99.0),
                create_took.as_secs_f64(),
                p.spread.as_secs_f64()
            ),
        );
    }
    let arrivals = records
        .iter()
        .flat_map(|r| r.hits.iter().copied().map(secs));
    let (first_hit, last_hit) =
        arrivals.fold((f64::MAX, f64::MIN), |(lo, hi), h| (lo.min(h), hi.max(h)));
    let span = (last_hit - first_hit).max(f64::EPSILON);
    report.add(
        &format!("{prefix}: measurements/s"),
        requests as f64 / span,
        "req/s",
        Target::None,
        &format!(
            "{requests} requests between the first and the last ({span:.1} s); {measured} runs measured {count} times"
        ),
    );
    report.add(
        &format!("{prefix}: runs Successful"),
        successful as f64,
        "runs",
        Target::AtLeast(n as f64),
        &format!(
            "{} retaken, {} before the stored schedule, {} unmatched",
            t.retaken, t.before_schedule, t.unmatched
        ),
    );
    report.add(
        &format!("{prefix}: controller CPU"),
        cpu / window.as_secs_f64(),
        "cores",
        Target::None,
        &format!("{cpu:.1} CPU s over {:.1} s", window.as_secs_f64()),
    );
    let others = [
        cluster_cpu.map(|c| format!("sluice cluster {c:.1}")),
        bench_cpu.map(|c| format!("bench process (metric server, proxy) {c:.1}")),
    ];
    report.add(
        &format!("{prefix}: CPU of the other processes"),
        cluster_cpu.unwrap_or(0.0) + bench_cpu.unwrap_or(0.0),
        "CPU s",
        Target::None,
        &others.into_iter().flatten().collect::<Vec<_>>().join(", "),
    );
    report.add(
        &format!("{prefix}: controller peak RSS (VmHWM)"),
        mib(mem.hwm_kib),
        "MiB",
        Target::None,
        &format!("RSS at the end {:.1} MiB", mib(mem.rss_kib)),
    );
    if let Some(c) = &counts {
        report.add(
            &format!("{prefix}: controller API writes per measurement"),
            c.writes() as f64 / requests.max(1) as f64,
            "writes",
            Target::None,
            &c.describe(),
        );
    }
    report.add(
        &format!("{prefix}: load average at the end of measuring"),
        load_window
            .split_whitespace()
            .next()
            .and_then(|l| l.parse().ok())
            .unwrap_or(f64::NAN),
        "",
        Target::None,
        &format!("1/5/15 min: {load_window}"),
    );

    // Leave the cluster as it was for the next step.
    let _ = runs
        .delete_collection(&DeleteParams::background(), &ListParams::default())
        .await;
    let within_target = fraction >= 0.99 && successful == n;
    Ok(within_target)
}

/// `finishedAt` of the run's measurements, whole seconds since the epoch, oldest first.
fn finished_seconds(run: &DynamicObject) -> Vec<i64> {
    run.data["status"]["metricResults"][0]["measurements"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["finishedAt"].as_str())
        .filter_map(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.timestamp())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A time `ms` milliseconds after the epoch second 1,000.
    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(1_000_000 + ms)
    }

    fn record(created: u64, hits: &[u64], finished: &[i64]) -> RunRecord {
        RunRecord {
            created: at(created),
            hits: hits.iter().map(|&h| at(h)).collect(),
            finished: finished.iter().map(|f| 1_000 + f).collect(),
        }
    }

    #[test]
    fn lateness_is_measured_from_the_previous_request_plus_the_interval() {
        // Requests at 0.2 s, 1.25 s, 2.2 s; finished in seconds 0, 1, 2.
        let t = timing(&[record(0, &[200, 1250, 2200], &[0, 1, 2])], INTERVAL);
        assert_eq!(t.first.len(), 1);
        assert!((t.first[0] - 200.0).abs() < 1e-6);
        let l: Vec<i64> = t.lateness.iter().map(|l| l.round() as i64).collect();
        assert_eq!(l, [50, -50], "the third came 50 ms before its due time");
        let by_index: Vec<Vec<i64>> = t
            .lateness_by_index
            .iter()
            .map(|v| v.iter().map(|l| l.round() as i64).collect())
            .collect();
        assert_eq!(by_index, [vec![50], vec![-50]]);
        assert_eq!((t.retaken, t.unmatched, t.before_schedule), (0, 0, 0));
    }

    #[test]
    fn a_retaken_measurement_is_timed_by_its_last_request() {
        // The second measurement was taken at 1.1 s, its write conflicted, and it was taken
        // again at 1.3 s; the status records it as finished in second 1.
        let t = timing(&[record(0, &[100, 1100, 1300, 2300], &[0, 1, 2])], INTERVAL);
        let l: Vec<i64> = t.lateness.iter().map(|l| l.round() as i64).collect();
        assert_eq!(l, [200, 0]);
        assert_eq!(t.retaken, 1);
    }

    #[test]
    fn a_request_before_the_stored_schedule_is_counted() {
        // Finished in second 0 (stored), so the next is due no earlier than second 1; a
        // request at 0.9 s is early by the controller's own record.
        let t = timing(&[record(0, &[100, 900], &[0, 0])], INTERVAL);
        assert_eq!(t.before_schedule, 1);
        assert_eq!(t.lateness.len(), 1);
    }

    #[test]
    fn a_recorded_measurement_without_a_request_is_unmatched() {
        let t = timing(&[record(0, &[2100], &[0, 2])], INTERVAL);
        assert_eq!(t.unmatched, 1);
        assert!(t.lateness.is_empty());
    }

    #[test]
    fn the_run_name_reaches_the_url_through_an_argument() {
        let addr: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let run = analysis_run("ar-1", "ns", addr, 12);
        let metric = &run["spec"]["metrics"][0];
        assert_eq!(
            metric["provider"]["web"]["url"],
            "http://127.0.0.1:8080/m/{{args.run}}"
        );
        assert_eq!(run["spec"]["args"][0]["value"], "ar-1");
        assert_eq!(metric["interval"], "1s");
        assert_eq!(run["spec"]["measurementRetention"][0]["limit"], 12);
        let short = analysis_run("ar-1", "ns", addr, 10);
        assert!(short["spec"].get("measurementRetention").is_none());
        // It is a valid AnalysisRun.
        let _: AnalysisRun = serde_json::from_value(run).unwrap();
    }
}
