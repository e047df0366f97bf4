//! `sluice bench controller`: the `sluice controller` process under N Rollouts.
//!
//! By default the bench starts `sluice cluster` as a separate process (so neither the
//! server nor the bench is counted in the controller's memory) and the controller as
//! another child process, talking to the server through the counting proxy
//! ([`super::proxy`]). With `--kubeconfig` it uses that cluster instead. Memory and CPU are
//! the kernel's figures for the controller's pid (`VmRSS`/`VmHWM`, `utime + stime`).
//!
//! Phases, in order: idle controller; N Rollouts created, controller started (cold start:
//! until every Rollout has been reconciled once, then until all are Healthy); steady state;
//! mass image update (until every Rollout reaches its first pause); promote/abort reaction
//! latency; every Rollout through a whole update, promoted at each pause (writes per setWeight
//! step, averaged); restart with N Rollouts present (warm start).
//!
//! `--strategy blue-green` runs the same phases on blue/green Rollouts (each with its own
//! active and preview Service, created by the bench): the mass update waits for every Rollout
//! to pause in `BlueGreenPause` behind its preview; the latency is promote → the active
//! Service's switch and abort → the preview ReplicaSet's `scale-down-deadline`; the whole
//! update is new image → pause → promote → switched, stable, and the old ReplicaSet scaled
//! down after its delay, counted per Rollout per update.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::ResourceExt as _;
use kube::api::{
    Api, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::{WatchStreamExt as _, watcher};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use super::procfs;
use super::proxy::Proxy;
use super::report::{Report, Target, summary};
use super::target;
use sluice_api::rollout::rollout_resource;
use sluice_controller::events::EventLevel;
use sluice_controller::first_pass::FIRST_PASS_DONE;

pub(super) const NAMESPACE: &str = "sluice-bench";
const FIRST_IMAGE: &str = "registry.local/bench:1";
pub(super) const SECOND_IMAGE: &str = "registry.local/bench:2";
const THIRD_IMAGE: &str = "registry.local/bench:3";
/// The bench Rollout's steps: setWeight 20, pause, setWeight 60, pause, setWeight 80.
const STEPS: i64 = 5;
const SET_WEIGHT_STEPS: u64 = 3;
/// How many requests the bench itself keeps in flight when creating or patching Rollouts.
pub(super) const CONCURRENCY: usize = 32;

/// Which strategy the benchmark Rollouts use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Strategy {
    /// The 5-step canary.
    #[default]
    Canary,
    /// Blue/green with an active and a preview Service each, promoted by hand.
    BlueGreen,
    /// The 5-step canary routed through an HTTPRoute of its own (Gateway API), with a canary
    /// and a stable Service each.
    CanaryRouted,
}

impl Strategy {
    fn as_str(self) -> &'static str {
        match self {
            Strategy::Canary => "canary",
            Strategy::BlueGreen => "blue-green",
            Strategy::CanaryRouted => "canary-routed",
        }
    }
}

/// Seconds the old ReplicaSet of a blue/green bench Rollout stays up after the switch.
const BLUE_GREEN_SCALE_DOWN_DELAY: i64 = 2;

/// How big a run is.
#[derive(Debug, Clone)]
pub struct Params {
    pub rollouts: usize,
    pub replicas: i32,
    pub samples: usize,
    pub pod_ready_delay: Duration,
    pub phase_timeout: Duration,
    pub steady: Duration,
    pub kubeconfig: Option<PathBuf>,
    /// The controller's `--events` level.
    pub events: EventLevel,
    /// Canary or blue/green Rollouts.
    pub strategy: Strategy,
    /// The Gateway API HTTPRoute CRD to install for `--strategy canary-routed` when the
    /// cluster does not serve HTTPRoutes yet.
    pub gateway_api_crd: PathBuf,
}

/// Seconds a routed bench Rollout's old ReplicaSets (and an aborted canary) stay up.
const ROUTED_SCALE_DOWN_DELAY: i64 = 2;

/// The Rollout every benchmark object is: a 5-step canary, or blue/green with its two
/// Services and a manual promotion.
pub(super) fn rollout(i: usize, replicas: i32, strategy: Strategy) -> Value {
    let name = format!("ro-{i}");
    if strategy == Strategy::BlueGreen {
        return json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {
                "replicas": replicas,
                "revisionHistoryLimit": 2,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "app", "image": FIRST_IMAGE}]}
                },
                "strategy": {"blueGreen": {
                    "activeService": format!("{name}-active"),
                    "previewService": format!("{name}-preview"),
                    "autoPromotionEnabled": false,
                    "scaleDownDelaySeconds": BLUE_GREEN_SCALE_DOWN_DELAY
                }}
            }
        });
    }
    let mut ro = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": FIRST_IMAGE}]}
            },
            "strategy": {"canary": {
                "maxSurge": 1,
                "maxUnavailable": 0,
                "steps": [
                    {"setWeight": 20},
                    {"pause": {}},
                    {"setWeight": 60},
                    {"pause": {}},
                    {"setWeight": 80}
                ]
            }}
        }
    });
    if strategy == Strategy::CanaryRouted {
        let canary = &mut ro["spec"]["strategy"]["canary"];
        canary["canaryService"] = json!(format!("{name}-canary"));
        canary["stableService"] = json!(format!("{name}-stable"));
        canary["scaleDownDelaySeconds"] = json!(ROUTED_SCALE_DOWN_DELAY);
        canary["abortScaleDownDelaySeconds"] = json!(ROUTED_SCALE_DOWN_DELAY);
        canary["trafficRouting"] =
            json!({"plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": name}}});
    }
    ro
}

/// The HTTPRoute of routed bench Rollout `i`: one rule splitting its two Services.
fn http_route(i: usize) -> Value {
    let name = format!("ro-{i}");
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "parentRefs": [{"name": "bench"}],
            "rules": [{"backendRefs": [
                {"name": format!("{name}-stable"), "port": 80},
                {"name": format!("{name}-canary"), "port": 80}
            ]}]
        }
    })
}

/// The API of HTTPRoutes in the bench namespace.
fn http_routes(client: &kube::Client) -> Api<DynamicObject> {
    let ar = kube::api::ApiResource {
        group: "gateway.networking.k8s.io".into(),
        version: "v1".into(),
        api_version: "gateway.networking.k8s.io/v1".into(),
        kind: "HTTPRoute".into(),
        plural: "httproutes".into(),
    };
    Api::namespaced_with(client.clone(), NAMESPACE, &ar)
}

/// Install the HTTPRoute CRD from `path` unless the cluster serves HTTPRoutes already, and
/// wait until it does.
async fn install_gateway_api(client: &kube::Client, path: &Path) -> anyhow::Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let routes = http_routes(client);
    if routes.list(&ListParams::default().limit(1)).await.is_ok() {
        return Ok(());
    }
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading the HTTPRoute CRD {} (pass --gateway-api-crd PATH: the Gateway API's standard httproutes.yaml)",
            path.display()
        )
    })?;
    let crd: CustomResourceDefinition = serde_yaml::from_str(&text)
        .with_context(|| format!("{} is not a CustomResourceDefinition", path.display()))?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    match crds.create(&PostParams::default(), &crd).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while routes.list(&ListParams::default().limit(1)).await.is_err() {
        if Instant::now() > deadline {
            bail!("HTTPRoutes are not served 30 s after installing their CRD");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// The HTTPRoute of each of the `n` routed Rollouts (`CONCURRENCY` at a time).
async fn create_routes(client: &kube::Client, n: usize) -> anyhow::Result<()> {
    eprintln!("bench: creating {n} HTTPRoutes");
    let api = http_routes(client);
    let failed = futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let obj: DynamicObject =
                    serde_json::from_value(http_route(i)).expect("a valid HTTPRoute");
                api.create(&PostParams::default(), &obj).await.err()
            }
        })
        .buffer_unordered(CONCURRENCY)
        .filter_map(futures::future::ready)
        .collect::<Vec<_>>()
        .await;
    if let Some(e) = failed.first() {
        bail!("{} HTTPRoute creates failed; first: {e}", failed.len());
    }
    Ok(())
}

pub(super) fn sluice_exe() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("locating the sluice binary")
}

/// Start `sluice cluster --port 0` as a child process; its kubeconfig path once written.
pub(super) async fn start_cluster(
    dir: &Path,
    pod_ready_delay: Duration,
) -> anyhow::Result<(Child, PathBuf)> {
    let kubeconfig = dir.join("cluster.kubeconfig");
    let _ = std::fs::remove_file(&kubeconfig);
    let log = std::fs::File::create(dir.join("cluster.log"))?;
    let child = Command::new(sluice_exe()?)
        .args([
            "--log-level",
            "warn",
            "cluster",
            "--port",
            "0",
            "--kubeconfig",
        ])
        .arg(&kubeconfig)
        .arg("--pod-ready-delay")
        .arg(format!("{}ms", pod_ready_delay.as_millis()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("starting `sluice cluster`")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !kubeconfig.exists() {
        if Instant::now() > deadline {
            bail!("`sluice cluster` wrote no kubeconfig within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((child, kubeconfig))
}

/// Start `sluice controller` as a child process logging to `dir/log_name` (JSON with
/// rollout debug lines when `debug`). Its metrics port is a free one, so two benches (or a
/// controller already on :8090) do not collide.
pub(super) fn start_controller(
    dir: &Path,
    kubeconfig: &Path,
    log_name: &str,
    info_json: bool,
    events: EventLevel,
) -> anyhow::Result<Child> {
    let log = std::fs::File::create(dir.join(log_name))?;
    let mut cmd = Command::new(sluice_exe()?);
    if info_json {
        // The level a production controller logs at: no line per reconcile.
        cmd.args(["--log-format", "json", "--log-level", "info"]);
    } else {
        cmd.args(["--log-level", "warn"]);
    }
    // One controller at a time, killed between phases: with leader election each start
    // would first wait out the killed one's Lease (15 s), which is not the controller's work.
    cmd.arg("controller")
        .arg("--leader-elect=false")
        .args(["--metrics-addr", "127.0.0.1:0"])
        .args(["--events", events.as_str()])
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("starting `sluice controller`")
}

pub(super) async fn stop(child: &mut Child) {
    let _ = child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
}

pub(super) fn pid(child: &Child) -> anyhow::Result<String> {
    child
        .id()
        .map(|p| p.to_string())
        .context("the child process has exited")
}

/// Install every Sluice CRD and wait until all are Established (as the demo does).
pub(super) use sluice_controller::crds::install as install_crds;

/// Create the namespace unless it exists; whether it was created.
pub(super) async fn ensure_namespace(client: &kube::Client, name: &str) -> anyhow::Result<bool> {
    let ns: Api<Namespace> = Api::all(client.clone());
    if ns
        .get_opt(name)
        .await
        .with_context(|| format!("reading namespace {name}"))?
        .is_some()
    {
        return Ok(false);
    }
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": name}}))?,
    )
    .await
    .with_context(|| format!("creating namespace {name}"))?;
    Ok(true)
}

/// Every object `api` lists (paged, so 10,000 stay cheap to read).
pub(super) async fn list_all(api: &Api<DynamicObject>) -> anyhow::Result<Vec<DynamicObject>> {
    let mut out = Vec::new();
    let mut lp = ListParams::default().limit(1000);
    loop {
        let page = api.list(&lp).await?;
        out.extend(page.items);
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => return Ok(out),
        }
    }
}

fn status(ro: &DynamicObject) -> &Value {
    &ro.data["status"]
}

fn reconciled(ro: &DynamicObject) -> bool {
    status(ro)["observedGeneration"].as_str()
        == ro.metadata.generation.map(|g| g.to_string()).as_deref()
}

pub(super) fn healthy(ro: &DynamicObject, replicas: i32) -> bool {
    reconciled(ro)
        && status(ro)["phase"] == "Healthy"
        && status(ro)["availableReplicas"].as_i64().unwrap_or(0) >= i64::from(replicas)
}

pub(super) fn at_first_pause(ro: &DynamicObject) -> bool {
    paused_at(ro, 1) || at_blue_green_pause(ro)
}

/// Blue/green: waiting for the promotion, the new version up behind the preview.
fn at_blue_green_pause(ro: &DynamicObject) -> bool {
    reconciled(ro)
        && status(ro)["phase"] == "Paused"
        && status(ro)["message"] == "BlueGreenPause"
        && status(ro)["blueGreen"]["previewSelector"] == status(ro)["currentPodHash"]
}

/// Blue/green: switched, stable, Healthy, and the previous ReplicaSet scaled down (the
/// Rollout counts only the current ReplicaSet's pods again).
fn switched_and_scaled_down(ro: &DynamicObject, replicas: i32) -> bool {
    healthy(ro, replicas)
        && status(ro)["stableRS"].is_string()
        && status(ro)["stableRS"] == status(ro)["currentPodHash"]
        && status(ro)["blueGreen"]["activeSelector"] == status(ro)["currentPodHash"]
        && status(ro)["replicas"].as_i64().unwrap_or(0) == i64::from(replicas)
}

fn paused_at(ro: &DynamicObject, step: i64) -> bool {
    reconciled(ro) && status(ro)["phase"] == "Paused" && status(ro)["currentStepIndex"] == step
}

/// Every step done and the update's ReplicaSet is the stable one.
fn completed(ro: &DynamicObject, replicas: i32) -> bool {
    healthy(ro, replicas)
        && status(ro)["currentStepIndex"] == STEPS
        && status(ro)["stableRS"].is_string()
        && status(ro)["stableRS"] == status(ro)["currentPodHash"]
}

/// Apply `patch` to all `n` Rollouts (`status`: to the status subresource, as kubectl
/// `--subresource=status` does), `CONCURRENCY` at a time.
async fn patch_all(
    api: &Api<DynamicObject>,
    n: usize,
    patch: &Value,
    status: bool,
) -> anyhow::Result<()> {
    let failed = futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let name = format!("ro-{i}");
                let pp = PatchParams::default();
                let r = if status {
                    api.patch_status(&name, &pp, &Patch::Merge(patch)).await
                } else {
                    api.patch(&name, &pp, &Patch::Merge(patch)).await
                };
                r.err()
            }
        })
        .buffer_unordered(CONCURRENCY)
        .filter_map(futures::future::ready)
        .collect::<Vec<_>>()
        .await;
    if let Some(e) = failed.first() {
        bail!("{} of {n} patches failed; first: {e}", failed.len());
    }
    Ok(())
}

/// Poll until `done` holds for all `n` Rollouts or the deadline passes; the elapsed time
/// since `since` and how many satisfied `done` at the end.
pub(super) async fn wait_all(
    api: &Api<DynamicObject>,
    n: usize,
    since: Instant,
    timeout: Duration,
    done: impl Fn(&DynamicObject) -> bool,
) -> anyhow::Result<(Duration, usize)> {
    let deadline = tokio::time::Instant::now() + timeout;
    let events =
        watcher::watcher(api.clone(), watcher::Config::default().page_size(1000)).default_backoff();
    let mut events = std::pin::pin!(events);
    let mut tally = Tally::default();
    loop {
        let event = match tokio::time::timeout_at(deadline, events.next()).await {
            Err(_) => return Ok((since.elapsed(), tally.done)),
            Ok(None) => bail!("the bench's watch of {} ended", api.resource_url()),
            Ok(Some(Err(e))) => {
                // The backoff retries the watch; say why it had to.
                eprintln!("bench: watching {}: {e}", api.resource_url());
                continue;
            }
            Ok(Some(Ok(event))) => event,
        };
        if tally.see(event, &done) >= n {
            return Ok((since.elapsed(), tally.done));
        }
    }
}

/// How many watched objects meet a condition, kept current event by event. While a (re)list
/// is read the count stays the previous list's (0 before the first), so a half-read list
/// never ends a wait early.
#[derive(Default)]
struct Tally {
    /// Name → whether the object's latest state meets the condition.
    state: HashMap<String, bool>,
    done: usize,
    /// A (re)list in progress: what it has read so far.
    relist: Option<HashMap<String, bool>>,
}

impl Tally {
    /// Take one watch event; returns the count the wait compares with its target.
    fn see(
        &mut self,
        event: watcher::Event<DynamicObject>,
        done: impl Fn(&DynamicObject) -> bool,
    ) -> usize {
        match event {
            watcher::Event::Init => self.relist = Some(HashMap::new()),
            watcher::Event::InitApply(o) => {
                if let Some(relist) = &mut self.relist {
                    relist.insert(o.name_any(), done(&o));
                }
            }
            watcher::Event::InitDone => {
                if let Some(relist) = self.relist.take() {
                    self.done = relist.values().filter(|d| **d).count();
                    self.state = relist;
                }
            }
            watcher::Event::Apply(o) => {
                let now = done(&o);
                if self.state.insert(o.name_any(), now) == Some(true) {
                    self.done -= 1;
                }
                self.done += usize::from(now);
            }
            watcher::Event::Delete(o) => {
                if self.state.remove(&o.name_any()) == Some(true) {
                    self.done -= 1;
                }
            }
        }
        self.done
    }
}

/// CPU and memory of a child process, CPU counted from when the sampler was made.
pub(super) struct Sampler {
    pid: String,
    cpu0: f64,
}

impl Sampler {
    pub(super) fn new(child: &Child) -> anyhow::Result<Self> {
        let pid = pid(child)?;
        let cpu0 = procfs::cpu_seconds(&pid).unwrap_or(0.0);
        Ok(Self { pid, cpu0 })
    }
    pub(super) fn cpu(&self) -> f64 {
        procfs::cpu_seconds(&self.pid).unwrap_or(0.0) - self.cpu0
    }
    pub(super) fn mem(&self) -> procfs::Memory {
        procfs::memory(&self.pid).unwrap_or_default()
    }
}

pub(super) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Run the benchmark.
pub async fn run(p: Params) -> anyhow::Result<Report> {
    let n = p.rollouts;
    let report = Report::new(
        "controller",
        json!({
            "rollouts": n, "replicas": p.replicas, "steps": 5, "samples": p.samples,
            "pod_ready_delay_ms": p.pod_ready_delay.as_millis() as u64,
            "phase_timeout_s": p.phase_timeout.as_secs(),
            "cluster": if p.kubeconfig.is_some() { "kubeconfig" } else { "sluice cluster (separate process)" },
            "events": p.events.as_str(),
            "strategy": p.strategy.as_str(),
        }),
    );
    let dir = std::env::temp_dir().join(format!("sluice-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    eprintln!("bench: logs and kubeconfigs in {}", dir.display());

    let mut cluster = None;
    let cluster_kubeconfig = match &p.kubeconfig {
        Some(path) => path.clone(),
        None => {
            let (child, path) = start_cluster(&dir, p.pod_ready_delay).await?;
            cluster = Some(child);
            path
        }
    };
    let (client, url) = target::connect(&cluster_kubeconfig).await?;
    if cluster.is_some() {
        install_crds(&client).await?;
    } else {
        target::check_foreign(&client, &url).await?;
    }
    let created = ensure_namespace(&client, NAMESPACE).await?;
    let result = measure(p, report, dir.clone(), client.clone()).await;
    // A cluster the bench did not start keeps nothing of the run.
    if created && cluster.is_none() {
        target::delete_namespace(&client, NAMESPACE).await;
    }
    let mut report = result?;
    if let Some(mut c) = cluster {
        if let Some(m) = c.id().and_then(|id| procfs::memory(&id.to_string())) {
            report.add(
                "embedded cluster process: peak RSS",
                mib(m.hwm_kib),
                "MiB",
                Target::None,
                "for reference; all objects and pods",
            );
        }
        stop(&mut c).await;
    }
    Ok(report)
}

/// The phases of the run, in the namespace `NAMESPACE` of the cluster `client` reaches.
async fn measure(
    p: Params,
    mut report: Report,
    dir: PathBuf,
    client: kube::Client,
) -> anyhow::Result<Report> {
    let n = p.rollouts;
    let proxy = Proxy::start(client.clone()).await?;
    let controller_kubeconfig = dir.join("controller.kubeconfig");
    std::fs::write(&controller_kubeconfig, proxy.kubeconfig_yaml())?;
    let rollouts: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), NAMESPACE, &rollout_resource());
    if !list_all(&rollouts).await?.is_empty() {
        bail!("namespace {NAMESPACE} already holds Rollouts; delete them or use a fresh cluster");
    }

    // Idle: no Rollouts.
    eprintln!("bench: idle controller");
    let mut ctl = start_controller(
        &dir,
        &controller_kubeconfig,
        "controller-idle.log",
        false,
        p.events,
    )?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while proxy
        .counts()
        .0
        .keys()
        .filter(|k| k.starts_with("WATCH "))
        .count()
        < 2
    {
        if Instant::now() > deadline {
            let log = dir.join("controller-idle.log");
            match target::last_log_line(&log) {
                Some(cause) => bail!(
                    "the controller opened no watches within 30 s; its last log line: {cause} (see {})",
                    log.display()
                ),
                None => bail!(
                    "the controller opened no watches within 30 s (see {})",
                    log.display()
                ),
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = Sampler::new(&ctl)?.mem();
    report.add(
        "idle: RSS",
        mib(idle.rss_kib),
        "MiB",
        Target::AtMost(20.0),
        "no Rollouts, watches open",
    );
    stop(&mut ctl).await;

    // Cold start with N Rollouts present and never reconciled.
    match p.strategy {
        Strategy::BlueGreen => create_services(&client, n, ["active", "preview"]).await?,
        Strategy::CanaryRouted => {
            install_gateway_api(&client, &p.gateway_api_crd).await?;
            create_services(&client, n, ["canary", "stable"]).await?;
            create_routes(&client, n).await?;
        }
        Strategy::Canary => {}
    }
    eprintln!("bench: creating {n} Rollouts");
    let t = Instant::now();
    let failed = futures::stream::iter(0..n)
        .map(|i| {
            let api = rollouts.clone();
            let obj: DynamicObject = serde_json::from_value(rollout(i, p.replicas, p.strategy))
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
    eprintln!(
        "bench: created in {:.1} s; starting the controller",
        t.elapsed().as_secs_f64()
    );
    let before = proxy.counts();
    let start = Instant::now();
    let mut ctl = start_controller(
        &dir,
        &controller_kubeconfig,
        "controller.log",
        false,
        p.events,
    )?;
    let s = Sampler::new(&ctl)?;
    let (took, count) = wait_all(&rollouts, n, start, p.phase_timeout, reconciled).await?;
    report.add(
        &format!("cold start: all {n} Rollouts reconciled once"),
        took.as_secs_f64(),
        "s",
        Target::None,
        &format!("{count}/{n} reached; from process spawn; each first reconcile creates a ReplicaSet and writes status"),
    );
    let (took, count) = wait_all(&rollouts, n, start, p.phase_timeout, |ro| {
        healthy(ro, p.replicas)
    })
    .await?;
    report.add(
        &format!("cold start: all {n} Rollouts Healthy"),
        took.as_secs_f64(),
        "s",
        Target::None,
        &format!(
            "{count}/{n} reached; bounded by the simulated kubelet ({} pods)",
            n * p.replicas as usize
        ),
    );
    let cold = proxy.counts().since(&before);
    report.add(
        "cold start: controller API writes per Rollout",
        cold.writes() as f64 / n as f64,
        "writes",
        Target::None,
        &cold.describe(),
    );
    report.add(
        "cold start: CPU",
        s.cpu(),
        "CPU s",
        Target::None,
        "utime+stime of the controller",
    );
    let m = s.mem();
    report.add(
        "cold start: peak RSS (VmHWM)",
        mib(m.hwm_kib),
        "MiB",
        Target::None,
        "",
    );

    // Steady state.
    eprintln!("bench: steady state for {:?}", p.steady);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = Sampler::new(&ctl)?;
    let before = proxy.counts();
    tokio::time::sleep(p.steady).await;
    let steady = proxy.counts().since(&before);
    let m = s.mem();
    let limit = if n >= 10_000 { 256.0 } else { 64.0 };
    report.add(
        &format!("steady: RSS with {n} Rollouts"),
        mib(m.rss_kib),
        "MiB",
        Target::AtMost(limit),
        &format!("{} ReplicaSets cached", n),
    );
    report.add(
        "steady: CPU",
        s.cpu() / p.steady.as_secs_f64(),
        "cores",
        Target::None,
        &format!("over {:.0} s", p.steady.as_secs_f64()),
    );
    report.add(
        "steady: controller API requests/s",
        steady.total() as f64 / p.steady.as_secs_f64(),
        "req/s",
        Target::None,
        &steady.describe(),
    );

    // Mass image update: all N at once, until every Rollout is at its first pause.
    eprintln!("bench: mass image update");
    let s = Sampler::new(&ctl)?;
    let before = proxy.counts();
    let start = Instant::now();
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": SECOND_IMAGE}]}}}});
    patch_all(&rollouts, n, &patch, false).await?;
    let patched = start.elapsed();
    let (took, count) = wait_all(&rollouts, n, start, p.phase_timeout, at_first_pause).await?;
    let first_step = match p.strategy {
        Strategy::Canary => "create RS + setWeight 20 + pause",
        Strategy::CanaryRouted => "create RS + scale canary + route 80/20 + pause",
        Strategy::BlueGreen => "create RS + preview switch + scale up + BlueGreenPause",
    };
    let mass_target = match p.strategy {
        Strategy::Canary | Strategy::CanaryRouted => Target::AtMost(6.0),
        Strategy::BlueGreen => Target::None,
    };
    report.add(
        &format!("mass update: all {n} Rollouts at their first pause"),
        took.as_secs_f64(),
        "s",
        Target::None,
        &format!(
            "{count}/{n} reached; the bench's {n} image patches took {:.1} s; includes new pods becoming Ready",
            patched.as_secs_f64()
        ),
    );
    let update = proxy.counts().since(&before);
    report.add(
        &format!("mass update: controller API writes per Rollout ({first_step})"),
        update.writes() as f64 / n as f64,
        "writes",
        mass_target,
        &format!("--events {}: {}", p.events.as_str(), update.describe()),
    );
    let events = super::proxy::Counts(
        update
            .0
            .iter()
            .filter(|(k, _)| k.ends_with(" events"))
            .map(|(k, n)| (k.clone(), *n))
            .collect(),
    )
    .writes();
    report.add(
        "mass update: of which Events per Rollout",
        events as f64 / n as f64,
        "writes",
        Target::None,
        "one per transition the planner reports (created, updated, scaled, step completed, paused, ...) \
         that the controller's --events level writes",
    );
    report.add(
        "mass update: controller API requests per Rollout (all verbs)",
        update.total() as f64 / n as f64,
        "requests",
        Target::None,
        "",
    );
    report.add(
        "mass update: CPU",
        s.cpu(),
        "CPU s",
        Target::None,
        "utime+stime during the phase",
    );
    let m = s.mem();
    report.add(
        "mass update: RSS at first pause",
        mib(m.rss_kib),
        "MiB",
        Target::None,
        "",
    );
    report.add(
        "peak RSS so far (VmHWM)",
        mib(m.hwm_kib),
        "MiB",
        Target::AtMost(limit),
        "since process start",
    );

    // Reaction latency to promote and abort, and a whole update of every Rollout.
    match p.strategy {
        Strategy::Canary | Strategy::CanaryRouted => {
            latency(&mut report, &client, &rollouts, &p).await?;
            full_walk(&mut report, &rollouts, &proxy, &p).await?;
        }
        Strategy::BlueGreen => {
            blue_green_latency(&mut report, &client, &rollouts, &p).await?;
            blue_green_walk(&mut report, &rollouts, &proxy, &p).await?;
        }
    }

    // Warm start: restart the controller with N Rollouts present.
    eprintln!("bench: warm restart");
    stop(&mut ctl).await;
    let start = Instant::now();
    let mut ctl = start_controller(
        &dir,
        &controller_kubeconfig,
        "controller-restart.log",
        true,
        p.events,
    )?;
    let log = dir.join("controller-restart.log");
    let deadline = Instant::now() + p.phase_timeout;
    let mut reader = FirstPassLog::new(&log);
    let pass = loop {
        if let Some(pass) = reader.read_new() {
            break pass;
        }
        if Instant::now() >= deadline {
            bail!(
                "warm start: the restarted controller did not log \"{FIRST_PASS_DONE}\" within {:?} (its log: {})",
                p.phase_timeout,
                log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let took = start.elapsed().as_secs_f64();
    if pass.rollouts < n {
        bail!(
            "warm start: the restarted controller's first pass covered {} Rollouts, fewer than the {n} created",
            pass.rollouts
        );
    }
    report.add(
        &format!("warm start: all {n} Rollouts reconciled once after restart"),
        took,
        "s",
        Target::AtMost(5.0),
        &format!(
            "from process spawn to the controller's info line \"{FIRST_PASS_DONE}\" ({} Rollouts, {} first reconciles failed)",
            pass.rollouts, pass.failed
        ),
    );
    let m = procfs::memory(&pid(&ctl)?).unwrap_or_default();
    report.add(
        "warm start: peak RSS (VmHWM)",
        mib(m.hwm_kib),
        "MiB",
        Target::None,
        "",
    );
    stop(&mut ctl).await;
    Ok(report)
}

/// The active and preview Service of each of the `n` blue/green Rollouts (`CONCURRENCY` at a
/// time); they select the Rollout's pods by `app`.
async fn create_services(
    client: &kube::Client,
    n: usize,
    roles: [&'static str; 2],
) -> anyhow::Result<()> {
    eprintln!("bench: creating {} Services", 2 * n);
    let api: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    let failed = futures::stream::iter(
        (0..n).flat_map(|i| roles.map(move |role| (format!("ro-{i}-{role}"), format!("ro-{i}")))),
    )
    .map(|(name, app)| {
        let api = api.clone();
        async move {
            let svc: Service = serde_json::from_value(json!({
                "metadata": {"name": name},
                "spec": {"selector": {"app": app}, "ports": [{"port": 80}]}
            }))
            .expect("a valid Service");
            api.create(&PostParams::default(), &svc).await.err()
        }
    })
    .buffer_unordered(CONCURRENCY)
    .filter_map(futures::future::ready)
    .collect::<Vec<_>>()
    .await;
    if let Some(e) = failed.first() {
        bail!("{} Service creates failed; first: {e}", failed.len());
    }
    Ok(())
}

/// Blue/green: every Rollout walks a whole update: new image → `BlueGreenPause` → promote →
/// switched and stable → the old ReplicaSet scaled down after its delay. The controller's
/// writes over the walk per Rollout are the figure for one blue/green update.
async fn blue_green_walk(
    report: &mut Report,
    rollouts: &Api<DynamicObject>,
    proxy: &Proxy,
    p: &Params,
) -> anyhow::Result<()> {
    let n = p.rollouts;
    eprintln!("bench: every blue/green Rollout through a whole update");
    let before = proxy.counts();
    let start = Instant::now();
    let image = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": THIRD_IMAGE}]}}}});
    let promote = json!({"status": {"pauseConditions": null}});
    patch_all(rollouts, n, &image, false).await?;
    let (_, paused) = wait_all(rollouts, n, start, p.phase_timeout, at_blue_green_pause).await?;
    patch_all(rollouts, n, &promote, true).await?;
    let replicas = p.replicas;
    let (took, done) = wait_all(rollouts, n, start, p.phase_timeout, |ro| {
        switched_and_scaled_down(ro, replicas)
    })
    .await?;
    let walk = proxy.counts().since(&before);
    report.add(
        &format!("whole update: all {n} blue/green Rollouts switched and scaled down"),
        took.as_secs_f64(),
        "s",
        Target::None,
        &format!(
            "{paused}/{n} paused before the switch, {done}/{n} done; includes the bench's \
             promotes and the {BLUE_GREEN_SCALE_DOWN_DELAY} s scale-down delay"
        ),
    );
    report.add(
        "whole update: controller API writes per Rollout per blue/green update",
        walk.writes() as f64 / n as f64,
        "writes",
        Target::None,
        &format!("--events {}: {}", p.events.as_str(), walk.describe()),
    );
    Ok(())
}

/// Blue/green reaction latency, on Rollouts waiting in `BlueGreenPause`: a promote until the
/// controller switches that Rollout's active Service (seen on the bench's own watch of
/// Services), and an abort until it stamps the preview ReplicaSet's `scale-down-deadline` (its
/// first write after an abort; seen on a watch of ReplicaSets).
async fn blue_green_latency(
    report: &mut Report,
    client: &kube::Client,
    rollouts: &Api<DynamicObject>,
    p: &Params,
) -> anyhow::Result<()> {
    let paused: Vec<String> = list_all(rollouts)
        .await?
        .iter()
        .filter(|ro| at_blue_green_pause(ro))
        .filter_map(|ro| ro.metadata.name.clone())
        .collect();
    let samples = p.samples.min(paused.len());
    eprintln!("bench: promote/abort reaction latency over {samples} samples");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    // Promote: the active Service's selector changes. Its name is `<rollout>-active`.
    let svc_api: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    let svc_rv = svc_api
        .list(&ListParams::default().limit(1))
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let svc_stream = svc_api
        .watch(&WatchParams::default().timeout(290), &svc_rv)
        .await?;
    let svc_tx = tx.clone();
    let svc_watcher = tokio::spawn(async move {
        let mut stream = svc_stream.boxed();
        while let Some(Ok(ev)) = stream.next().await {
            let at = Instant::now();
            if let WatchEvent::Modified(svc) = ev
                && let Some(rollout) = svc
                    .metadata
                    .name
                    .as_deref()
                    .and_then(|n| n.strip_suffix("-active"))
                && svc_tx.send((rollout.to_string(), at)).is_err()
            {
                return;
            }
        }
    });
    // Abort: a ReplicaSet gets a scale-down-deadline it did not have.
    let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), NAMESPACE);
    let list = rs_api.list(&ListParams::default()).await?;
    let mut deadlines: HashMap<String, bool> = list
        .items
        .iter()
        .filter_map(|rs| Some((rs.metadata.name.clone()?, has_deadline(rs))))
        .collect();
    let rv = list.metadata.resource_version.unwrap_or_default();
    let rs_stream = rs_api
        .watch(&WatchParams::default().timeout(290), &rv)
        .await?;
    let rs_watcher = tokio::spawn(async move {
        let mut stream = rs_stream.boxed();
        while let Some(Ok(ev)) = stream.next().await {
            let at = Instant::now();
            let rs = match ev {
                WatchEvent::Added(rs) | WatchEvent::Modified(rs) => rs,
                _ => continue,
            };
            let name = rs.metadata.name.clone().unwrap_or_default();
            let now = has_deadline(&rs);
            if deadlines.insert(name, now) == Some(true) || !now {
                continue;
            }
            let owner = rs
                .metadata
                .owner_references
                .unwrap_or_default()
                .into_iter()
                .find(|o| o.controller == Some(true))
                .map(|o| o.name)
                .unwrap_or_default();
            if tx.send((owner, at)).is_err() {
                return;
            }
        }
    });
    let (results, timeouts) = sample_reactions(
        rollouts,
        &paused[..samples],
        &mut rx,
        (
            "promote → active Service switch",
            "abort → preview ReplicaSet scale-down deadline",
        ),
    )
    .await?;
    svc_watcher.abort();
    rs_watcher.abort();
    for (key, mut v) in results {
        if let Some((mean, p50, p99)) = summary(&mut v) {
            let note = format!(
                "{} samples ({timeouts} timed out at 10 s in all), mean {mean:.1} ms, {} Rollouts present",
                v.len(),
                p.rollouts
            );
            report.add(&format!("{key}: p50"), p50, "ms", Target::None, &note);
            report.add(&format!("{key}: p99"), p99, "ms", Target::AtMost(100.0), "");
        }
    }
    // Settle every Rollout before the whole-update phase counts writes: retry the aborted
    // ones, promote all, and wait until each is switched with its old ReplicaSet gone.
    let retry = json!({"status": {"abort": false}});
    for (i, name) in paused.iter().take(samples).enumerate() {
        if i % 2 == 1 {
            rollouts
                .patch_status(name, &PatchParams::default(), &Patch::Merge(&retry))
                .await
                .with_context(|| format!("retrying {name}"))?;
        }
    }
    let n = p.rollouts;
    let start = Instant::now();
    wait_all(rollouts, n, start, p.phase_timeout, |ro| {
        at_blue_green_pause(ro) || switched_and_scaled_down(ro, p.replicas)
    })
    .await?;
    let promote = json!({"status": {"pauseConditions": null}});
    patch_all(rollouts, n, &promote, true).await?;
    let (took, done) = wait_all(rollouts, n, start, p.phase_timeout, |ro| {
        switched_and_scaled_down(ro, p.replicas)
    })
    .await?;
    eprintln!(
        "bench: {done}/{n} settled before the whole update in {:.1} s",
        took.as_secs_f64()
    );
    Ok(())
}

/// Promote the even-numbered and abort the odd-numbered of `rollouts_at_pause`, one at a
/// time, and time each from the patch's acceptance (its response; a reaction seen earlier
/// counts from the send) to the first reaction `rx` reports for that Rollout (its name and
/// when it was seen), waiting at most 10 s. Returns the milliseconds under `labels`
/// (promote, abort) and how many timed out.
async fn sample_reactions(
    rollouts: &Api<DynamicObject>,
    rollouts_at_pause: &[String],
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, Instant)>,
    labels: (&'static str, &'static str),
) -> anyhow::Result<(BTreeMap<&'static str, Vec<f64>>, usize)> {
    let mut results: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    let mut timeouts = 0;
    for (i, name) in rollouts_at_pause.iter().enumerate() {
        let (key, body) = if i % 2 == 0 {
            (labels.0, json!({"status": {"pauseConditions": null}}))
        } else {
            (labels.1, json!({"status": {"abort": true}}))
        };
        while rx.try_recv().is_ok() {}
        let sent = Instant::now();
        rollouts
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&body))
            .await
            .with_context(|| format!("patching {name}"))?;
        let accepted = Instant::now();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let seen = loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((owner, at))) if &owner == name => break Some(at),
                Ok(Some(_)) => continue,
                _ => break None,
            }
        };
        match seen {
            Some(at) => {
                let from = if at < accepted { sent } else { accepted };
                results
                    .entry(key)
                    .or_default()
                    .push(at.duration_since(from).as_secs_f64() * 1000.0);
            }
            None => timeouts += 1,
        }
    }
    Ok((results, timeouts))
}

fn has_deadline(rs: &ReplicaSet) -> bool {
    rs.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("scale-down-deadline"))
}

/// Every Rollout walks a whole update, promoted at each pause: new image → first pause →
/// promote → second pause → promote → completed. The controller's writes over the walk,
/// per Rollout and per setWeight step, are the average the issue's "writes per setWeight
/// step" target is about (the mass update's figure is the first step alone, which also
/// creates the ReplicaSet and announces the new revision).
async fn full_walk(
    report: &mut Report,
    rollouts: &Api<DynamicObject>,
    proxy: &Proxy,
    p: &Params,
) -> anyhow::Result<()> {
    let n = p.rollouts;
    eprintln!("bench: every Rollout through a whole update");
    let before = proxy.counts();
    let start = Instant::now();
    let image = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": THIRD_IMAGE}]}}}});
    let promote = json!({"status": {"pauseConditions": null}});
    patch_all(rollouts, n, &image, false).await?;
    let (_, first) = wait_all(rollouts, n, start, p.phase_timeout, |ro| paused_at(ro, 1)).await?;
    patch_all(rollouts, n, &promote, true).await?;
    let (_, second) = wait_all(rollouts, n, start, p.phase_timeout, |ro| paused_at(ro, 3)).await?;
    patch_all(rollouts, n, &promote, true).await?;
    let replicas = p.replicas;
    let (took, done) = wait_all(rollouts, n, start, p.phase_timeout, |ro| {
        completed(ro, replicas)
    })
    .await?;
    let walk = proxy.counts().since(&before);
    report.add(
        &format!("whole update: all {n} Rollouts completed"),
        took.as_secs_f64(),
        "s",
        Target::None,
        &format!(
            "{first}/{n} at the first pause, {second}/{n} at the second, {done}/{n} completed; \
             includes the bench's promotes"
        ),
    );
    let per_step = walk.writes() as f64 / (n as f64 * SET_WEIGHT_STEPS as f64);
    report.add(
        "whole update: controller API writes per Rollout per setWeight step",
        per_step,
        "writes",
        Target::AtMost(6.0),
        &format!(
            "--events {}: {} over {n} Rollouts x {SET_WEIGHT_STEPS} setWeight steps",
            p.events.as_str(),
            walk.describe()
        ),
    );
    Ok(())
}

/// The end of the controller's first pass, as its info line reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FirstPassLine {
    rollouts: usize,
    failed: usize,
}

/// A JSON log followed as it grows, until the first-pass line appears in it.
struct FirstPassLog {
    path: PathBuf,
    offset: u64,
    /// The end of the file read so far that is not a whole line yet.
    partial: Vec<u8>,
}

impl FirstPassLog {
    fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            offset: 0,
            partial: Vec::new(),
        }
    }

    /// Read what was appended since the last call; the first-pass line, once it is there.
    fn read_new(&mut self) -> Option<FirstPassLine> {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = std::fs::File::open(&self.path).ok()?;
        let mut fresh = Vec::new();
        file.seek(SeekFrom::Start(self.offset)).ok()?;
        file.read_to_end(&mut fresh).ok()?;
        self.offset += fresh.len() as u64;
        self.partial.extend_from_slice(&fresh);
        let end = self.partial.iter().rposition(|b| *b == b'\n')?;
        let whole: Vec<u8> = self.partial.drain(..=end).collect();
        first_pass_line(&String::from_utf8_lossy(&whole))
    }
}

/// The first-pass line among `text`'s JSON log lines.
fn first_pass_line(text: &str) -> Option<FirstPassLine> {
    text.lines()
        .filter(|l| l.contains(FIRST_PASS_DONE))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["message"] == FIRST_PASS_DONE)
        .map(|v| FirstPassLine {
            rollouts: v["rollouts"].as_u64().unwrap_or(0) as usize,
            failed: v["failed"].as_u64().unwrap_or(0) as usize,
        })
}

/// Time from a promote/abort status patch to the controller's next ReplicaSet spec write
/// for that Rollout, seen on a watch the bench holds directly on the API server.
async fn latency(
    report: &mut Report,
    client: &kube::Client,
    rollouts: &Api<DynamicObject>,
    p: &Params,
) -> anyhow::Result<()> {
    if p.replicas < 2 {
        report.add(
            "reaction latency",
            f64::NAN,
            "ms",
            Target::None,
            "skipped: needs --replicas >= 2 so a promote scales a ReplicaSet",
        );
        return Ok(());
    }
    let paused: Vec<String> = list_all(rollouts)
        .await?
        .iter()
        .filter(|ro| at_first_pause(ro))
        .filter_map(|ro| ro.metadata.name.clone())
        .collect();
    let samples = p.samples.min(paused.len());
    eprintln!("bench: reaction latency over {samples} samples");
    let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), NAMESPACE);
    let list = rs_api.list(&ListParams::default()).await?;
    let mut generations: HashMap<String, i64> = list
        .items
        .iter()
        .filter_map(|rs| {
            Some((
                rs.metadata.name.clone()?,
                rs.metadata.generation.unwrap_or(0),
            ))
        })
        .collect();
    let rv = list.metadata.resource_version.unwrap_or_default();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let route_tx = tx.clone();
    let stream = rs_api
        .watch(&WatchParams::default().timeout(290), &rv)
        .await?;
    let watcher = tokio::spawn(async move {
        let mut stream = stream.boxed();
        while let Some(Ok(ev)) = stream.next().await {
            let at = Instant::now();
            let rs = match ev {
                WatchEvent::Added(rs) | WatchEvent::Modified(rs) => rs,
                _ => continue,
            };
            let name = rs.metadata.name.clone().unwrap_or_default();
            let generation = rs.metadata.generation.unwrap_or(0);
            // Status updates from the ReplicaSet controller do not bump the generation;
            // only a spec write (the Rollout controller's scale) or a create does.
            let prev = generations.insert(name, generation);
            if prev.is_some_and(|g| g >= generation) {
                continue;
            }
            let owner = rs
                .metadata
                .owner_references
                .unwrap_or_default()
                .into_iter()
                .find(|o| o.controller == Some(true))
                .map(|o| o.name)
                .unwrap_or_default();
            if tx.send((owner, at)).is_err() {
                return;
            }
        }
    });
    // A routed Rollout reacts to an abort on its route first (the canary keeps its pods
    // until the route reads back the stable): route spec writes count as reactions too.
    let route_watcher = if p.strategy == Strategy::CanaryRouted {
        let routes = http_routes(client);
        let list = routes.list(&ListParams::default()).await?;
        let mut generations: HashMap<String, i64> = list
            .items
            .iter()
            .filter_map(|r| Some((r.metadata.name.clone()?, r.metadata.generation.unwrap_or(0))))
            .collect();
        let rv = list.metadata.resource_version.unwrap_or_default();
        let stream = routes
            .watch(&WatchParams::default().timeout(290), &rv)
            .await?;
        let tx = route_tx;
        Some(tokio::spawn(async move {
            let mut stream = stream.boxed();
            while let Some(Ok(ev)) = stream.next().await {
                let at = Instant::now();
                let route = match ev {
                    WatchEvent::Added(r) | WatchEvent::Modified(r) => r,
                    _ => continue,
                };
                let name = route.metadata.name.clone().unwrap_or_default();
                let generation = route.metadata.generation.unwrap_or(0);
                let prev = generations.insert(name.clone(), generation);
                if prev.is_some_and(|g| g >= generation) {
                    continue;
                }
                // Each bench HTTPRoute is named after its Rollout.
                if tx.send((name, at)).is_err() {
                    return;
                }
            }
        }))
    } else {
        None
    };
    let (results, timeouts) =
        sample_reactions(rollouts, &paused[..samples], &mut rx, ("promote", "abort")).await?;
    watcher.abort();
    if let Some(w) = route_watcher {
        w.abort();
    }
    let mut all: Vec<f64> = results.values().flatten().copied().collect();
    for (key, mut v) in results {
        if let Some((mean, p50, p99)) = summary(&mut v) {
            let note = format!("{} samples, mean {mean:.1} ms", v.len());
            report.add(
                &format!("{key} → ReplicaSet write: p50"),
                p50,
                "ms",
                Target::None,
                &note,
            );
            report.add(
                &format!("{key} → ReplicaSet write: p99"),
                p99,
                "ms",
                Target::AtMost(100.0),
                "",
            );
        }
    }
    if let Some((mean, p50, p99)) = summary(&mut all) {
        let note = format!(
            "{} samples ({timeouts} timed out at 10 s), mean {mean:.1} ms, {} Rollouts present",
            all.len(),
            p.rollouts
        );
        report.add(
            "promote+abort → ReplicaSet write: p50",
            p50,
            "ms",
            Target::None,
            &note,
        );
        report.add(
            "promote+abort → ReplicaSet write: p99",
            p99,
            "ms",
            Target::AtMost(100.0),
            "",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn line(message: &str, rollouts: usize) -> String {
        format!(
            "{{\"level\":\"INFO\",\"message\":\"{message}\",\"rollouts\":{rollouts},\"failed\":1,\"seconds\":2.5}}\n"
        )
    }

    #[test]
    fn the_first_pass_line_is_found_as_the_log_grows_even_when_cut_in_two() {
        let dir =
            std::env::temp_dir().join(format!("sluice-first-pass-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("controller.log");
        let mut reader = FirstPassLog::new(&path);
        assert_eq!(reader.read_new(), None, "no log yet");
        let mut file = std::fs::File::create(&path).expect("log file");
        let done = line(FIRST_PASS_DONE, 7);
        let (head, tail) = done.split_at(30);
        write!(file, "{}{head}", line("caches synced", 3)).expect("write");
        assert_eq!(
            reader.read_new(),
            None,
            "another line, and the cut line, are not it"
        );
        write!(file, "{tail}").expect("write");
        assert_eq!(
            reader.read_new(),
            Some(FirstPassLine {
                rollouts: 7,
                failed: 1
            })
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    fn ro(name: &str, paused: bool) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": name},
            "status": {"paused": paused},
        }))
        .expect("a Rollout")
    }

    fn paused(o: &DynamicObject) -> bool {
        o.data["status"]["paused"] == json!(true)
    }

    #[test]
    fn a_watched_count_follows_each_objects_latest_state_and_ignores_a_half_read_list() {
        use watcher::Event::*;
        let mut t = Tally::default();
        assert_eq!(t.see(Init, paused), 0);
        assert_eq!(
            t.see(InitApply(ro("a", true)), paused),
            0,
            "the list is not read yet"
        );
        assert_eq!(t.see(InitApply(ro("b", false)), paused), 0);
        assert_eq!(t.see(InitDone, paused), 1);
        assert_eq!(t.see(Apply(ro("b", true)), paused), 2);
        assert_eq!(
            t.see(Apply(ro("b", true)), paused),
            2,
            "the same state twice counts once"
        );
        assert_eq!(
            t.see(Apply(ro("a", false)), paused),
            1,
            "a Rollout can leave the state"
        );
        assert_eq!(t.see(Apply(ro("c", true)), paused), 2, "a new one counts");
        assert_eq!(
            t.see(Delete(ro("b", true)), paused),
            1,
            "a deleted one no longer counts"
        );
        // A relist (after the watch expired) replaces what was known once it is whole.
        assert_eq!(
            t.see(Init, paused),
            1,
            "the previous count holds while relisting"
        );
        assert_eq!(t.see(InitApply(ro("a", true)), paused), 1);
        assert_eq!(
            t.see(InitDone, paused),
            1,
            "c is gone from the new list, a is paused now"
        );
    }
}
