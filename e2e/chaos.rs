//! The chaos suite: concurrent canaries while the controller is SIGKILLed and restarted, the API
//! server restarts with its data kept, two controller replicas contend for the Lease, and the
//! server injects faults into the controller's requests. An independent checker (its own
//! watches, not the controller's) and the server's request log count invariant violations.
//!
//! `chaos_short` runs in `make test`; `make chaos` runs `chaos_long` (sized by `SLUICE_CHAOS_*`,
//! see docs/reliability.md).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};

use crate::harness::{Env, Proc, free_port, sluice_bin, spawn_program, wait_until};
use crate::prometheus::Served;
use crate::require_kubectl;

/// Every Rollout has 4 replicas and `maxUnavailable: 1`: at least 3 pods stay available.
const REPLICAS: i64 = 4;
const MIN_AVAILABLE: i64 = 3;
/// The hot-loop bound: the controller's API requests per Rollout in any minute.
const MAX_REQUESTS_PER_ROLLOUT_MINUTE: f64 = 300.0;

/// How big a run is.
#[derive(Debug, Clone)]
struct Plan {
    rollouts: usize,
    kills: usize,
    api_restarts: usize,
    write_fault_rate: f64,
    seed: u64,
    /// How long every Rollout has to reach its final phase once updates start.
    deadline: Duration,
    /// The window the kills and restarts are spread over, at random moments.
    spread: Duration,
}

impl Plan {
    fn from_env(default: Plan) -> Plan {
        let var = |k: &str| std::env::var(k).ok();
        Plan {
            rollouts: var("SLUICE_CHAOS_ROLLOUTS").map_or(default.rollouts, |v| {
                v.parse().expect("SLUICE_CHAOS_ROLLOUTS")
            }),
            kills: var("SLUICE_CHAOS_KILLS")
                .map_or(default.kills, |v| v.parse().expect("SLUICE_CHAOS_KILLS")),
            api_restarts: var("SLUICE_CHAOS_RESTARTS").map_or(default.api_restarts, |v| {
                v.parse().expect("SLUICE_CHAOS_RESTARTS")
            }),
            write_fault_rate: var("SLUICE_CHAOS_WRITE_FAULTS")
                .map_or(default.write_fault_rate, |v| {
                    v.parse().expect("SLUICE_CHAOS_WRITE_FAULTS")
                }),
            seed: var("SLUICE_CHAOS_SEED")
                .map_or(default.seed, |v| v.parse().expect("SLUICE_CHAOS_SEED")),
            spread: var("SLUICE_CHAOS_SPREAD_SECS").map_or(default.spread, |v| {
                Duration::from_secs(v.parse().expect("SLUICE_CHAOS_SPREAD_SECS"))
            }),
            deadline: var("SLUICE_CHAOS_DEADLINE_SECS").map_or(default.deadline, |v| {
                Duration::from_secs(v.parse().expect("SLUICE_CHAOS_DEADLINE_SECS"))
            }),
        }
    }
}

/// The scenario of Rollout `i`: its steps and what the user does to it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// Timed pauses only.
    Plain,
    /// An analysis step that passes.
    AnalysisStep,
    /// An experiment step (baseline and canary) with a passing analysis.
    ExperimentStep,
    /// A background analysis that fails on purpose: aborted, Degraded.
    FailingBackground,
    /// An indefinite pause the user promotes (clears `pauseConditions`).
    Promoted,
    /// An indefinite pause the user aborts (`abort: true`): Degraded.
    Aborted,
    /// An indefinite pause the user skips with `promoteFull: true`.
    PromotedFull,
}

const KINDS: [Kind; 7] = [
    Kind::Plain,
    Kind::AnalysisStep,
    Kind::ExperimentStep,
    Kind::FailingBackground,
    Kind::Promoted,
    Kind::Aborted,
    Kind::PromotedFull,
];

impl Kind {
    fn expected_phase(self) -> &'static str {
        match self {
            Kind::FailingBackground | Kind::Aborted => "Degraded",
            _ => "Healthy",
        }
    }

    fn steps(self) -> &'static str {
        match self {
            Kind::Plain => {
                "        - setWeight: 25\n        - pause: {duration: 2s}\n        - setWeight: 75\n        - pause: {duration: 1s}\n"
            }
            Kind::AnalysisStep => {
                "        - setWeight: 25\n        - analysis:\n            templates: [{templateName: chaos-pass}]\n        - setWeight: 50\n"
            }
            Kind::ExperimentStep => {
                "        - setWeight: 25\n        - experiment:\n            duration: 3s\n            templates:\n              - {name: baseline, specRef: stable}\n              - {name: canary, specRef: canary}\n            analyses:\n              - {name: check, templateName: chaos-pass}\n        - setWeight: 50\n"
            }
            Kind::FailingBackground => "        - setWeight: 25\n        - pause: {}\n",
            Kind::Promoted | Kind::Aborted | Kind::PromotedFull => {
                "        - setWeight: 25\n        - pause: {}\n        - setWeight: 50\n        - pause: {duration: 1s}\n"
            }
        }
    }
}

fn rollout_yaml(name: &str, kind: Kind, image: &str) -> String {
    let background = if kind == Kind::FailingBackground {
        "      analysis:\n        templates: [{templateName: chaos-fail}]\n"
    } else {
        ""
    };
    format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: {name}
spec:
  replicas: {REPLICAS}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
        - name: app
          image: {image}
  strategy:
    canary:
      maxSurge: 1
      maxUnavailable: 1
{background}      steps:
{steps}"#,
        steps = kind.steps()
    )
}

fn templates_yaml(pass_url: &str, fail_url: &str) -> String {
    format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: chaos-pass
spec:
  metrics:
    - name: value
      interval: 1s
      count: 2
      successCondition: "result == 1"
      provider:
        web:
          url: "{pass_url}"
          jsonPath: "{{$.value}}"
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: chaos-fail
spec:
  metrics:
    - name: value
      interval: 1s
      successCondition: "result == 1"
      provider:
        web:
          url: "{fail_url}"
          jsonPath: "{{$.value}}"
"#
    )
}

/// Faults on the controller's requests only (matched by its User-Agent): errors on
/// `write_fault_rate` of its writes (split between 500, 409, 429, and a 504 after the write was
/// stored), latency, cut watches and expired resumes.
fn faults_yaml(p: &Plan) -> String {
    let r = p.write_fault_rate / 4.0;
    format!(
        r#"seed: {seed}
errors:
  - {{verbs: [write], userAgents: [sluice-controller], rate: {r}, code: 500}}
  - {{verbs: [write], userAgents: [sluice-controller], rate: {r}, code: 409}}
  - {{verbs: [write], userAgents: [sluice-controller], rate: {r}, code: 429, retryAfterSeconds: 1}}
  - {{verbs: [write], userAgents: [sluice-controller], rate: {r}, code: 504, delayMs: 500, applied: true}}
  - {{verbs: [get, list], userAgents: [sluice-controller], rate: 0.02, code: 500}}
latency:
  - {{userAgents: [sluice-controller], rate: 0.05, minMs: 10, maxMs: 300}}
watch:
  userAgents: [sluice-controller]
  cutRate: 0.2
  cutAfterMinMs: 2000
  cutAfterMaxMs: 20000
  expireRate: 0.1
"#,
        seed = p.seed
    )
}

/// A small deterministic generator for the chaos schedule.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo + 1))
    }
}

/// What the user wrote into a Rollout's status, for the checker to hold the controller to.
#[derive(Debug, Clone)]
enum UserWrite {
    Promote { step: i64, hash: String },
    Abort { hash: String },
    PromoteFull { hash: String },
}

/// The independent checker's view and findings.
#[derive(Default)]
struct Checker {
    /// ReplicaSets by UID: (owner Rollout name, pod-template hash, spec replicas, available).
    rs: HashMap<String, (String, String, i64, i64)>,
    rs_init: Option<HashMap<String, (String, String, i64, i64)>>,
    /// Rollouts by name: the last status seen, and whether it was ever Healthy.
    rollouts: HashMap<String, (Value, bool)>,
    /// Runs and Experiments a Rollout created, by (kind, owner, hash, type, step): their UIDs.
    children: HashMap<(String, String, String, String, String), HashSet<String>>,
    user: HashMap<String, Vec<UserWrite>>,
    /// Checks are suspended while the API server is down, and until this instant after it
    /// restarts (the checker's own watches re-list meanwhile).
    paused: bool,
    paused_until: Option<Instant>,
    violations: Vec<String>,
    samples: u64,
}

fn rs_entry(rs: &ReplicaSet) -> Option<(String, (String, String, i64, i64))> {
    let m = &rs.metadata;
    let owner = m
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.kind == "Rollout")?
        .name
        .clone();
    let hash = m
        .labels
        .as_ref()?
        .get("rollouts-pod-template-hash")?
        .clone();
    let spec = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0) as i64;
    let available = rs
        .status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0) as i64;
    Some((m.uid.clone()?, (owner, hash, spec, available)))
}

impl Checker {
    fn suspended(&self) -> bool {
        self.paused || self.paused_until.is_some_and(|t| Instant::now() < t)
    }

    fn violation(&mut self, v: String) {
        if !self.violations.contains(&v) {
            eprintln!("chaos violation: {v}");
            self.violations.push(v);
        }
    }

    fn on_rs(&mut self, ev: Event<ReplicaSet>) {
        match ev {
            Event::Init => self.rs_init = Some(HashMap::new()),
            Event::InitApply(rs) => {
                if let (Some(init), Some((uid, e))) = (self.rs_init.as_mut(), rs_entry(&rs)) {
                    init.insert(uid, e);
                }
            }
            Event::InitDone => {
                if let Some(init) = self.rs_init.take() {
                    self.rs = init;
                }
            }
            Event::Apply(rs) => {
                if let Some((uid, e)) = rs_entry(&rs) {
                    let owner = e.0.clone();
                    self.rs.insert(uid, e);
                    self.check_availability(&owner);
                }
            }
            Event::Delete(rs) => {
                if let Some((uid, (owner, hash, _, _))) = rs_entry(&rs) {
                    self.rs.remove(&uid);
                    let stable = self
                        .rollouts
                        .get(&owner)
                        .and_then(|(s, _)| s["stableRS"].as_str().map(str::to_string));
                    let completed = self
                        .rollouts
                        .get(&owner)
                        .is_some_and(|(s, _)| s["currentPodHash"] == s["stableRS"]);
                    if stable.as_deref() == Some(hash.as_str()) && !completed && !self.suspended() {
                        self.violation(format!(
                            "{owner}: the stable ReplicaSet {} was deleted before promotion completed",
                            rs.metadata.name.unwrap_or_default()
                        ));
                    }
                    self.check_availability(&owner);
                }
            }
        }
    }

    fn check_availability(&mut self, rollout: &str) {
        self.samples += 1;
        if self.suspended() || self.rs_init.is_some() {
            return;
        }
        let Some((_, healthy_seen)) = self.rollouts.get(rollout) else {
            return;
        };
        if !healthy_seen {
            return;
        }
        let available: i64 = self
            .rs
            .values()
            .filter(|(o, ..)| o == rollout)
            .map(|(.., a)| *a)
            .sum();
        if available < MIN_AVAILABLE {
            let detail: BTreeMap<&str, (i64, i64)> = self
                .rs
                .values()
                .filter(|(o, ..)| o == rollout)
                .map(|(_, h, s, a)| (h.as_str(), (*s, *a)))
                .collect();
            self.violation(format!(
                "{rollout}: {available} pods available, below {MIN_AVAILABLE} (hash: (spec, available) {detail:?})"
            ));
        }
    }

    fn on_rollout(&mut self, ro: &DynamicObject) {
        let name = ro.metadata.name.clone().unwrap_or_default();
        let status = ro.data["status"].clone();
        let healthy = status["phase"] == "Healthy";
        let entry = self
            .rollouts
            .entry(name.clone())
            .or_insert((Value::Null, false));
        entry.0 = status.clone();
        entry.1 |= healthy;
        if self.suspended() {
            return;
        }
        let hash = status["currentPodHash"].as_str().unwrap_or_default();
        let step = status["currentStepIndex"].as_i64().unwrap_or(-1);
        let paused_here = status["pauseConditions"]
            .as_array()
            .is_some_and(|p| !p.is_empty());
        let mut found = Vec::new();
        for w in self.user.get(&name).into_iter().flatten() {
            match w {
                UserWrite::Promote { step: s, hash: h }
                    if h == hash && *s == step && paused_here =>
                {
                    found.push(format!(
                        "{name}: the promote at step {s} was undone (pauseConditions are back)"
                    ));
                }
                UserWrite::Abort { hash: h } if h == hash && status["abort"] != true => {
                    found.push(format!(
                        "{name}: the user's abort was lost (status.abort is {})",
                        status["abort"]
                    ));
                }
                UserWrite::PromoteFull { hash: h }
                    if h == hash
                        && status["promoteFull"] != true
                        && status["stableRS"].as_str() != Some(h.as_str()) =>
                {
                    found.push(format!(
                        "{name}: promoteFull was lost before the promotion completed"
                    ));
                }
                _ => {}
            }
        }
        for v in found {
            self.violation(v);
        }
    }

    fn on_child(&mut self, kind: &str, o: &DynamicObject) {
        let Some(owner) = o
            .metadata
            .owner_references
            .as_ref()
            .and_then(|os| os.iter().find(|r| r.kind == "Rollout"))
        else {
            return;
        };
        let labels = o.metadata.labels.clone().unwrap_or_default();
        let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
        let key = (
            kind.to_string(),
            owner.name.clone(),
            label("rollouts-pod-template-hash"),
            label("rollout-type"),
            label("step-index"),
        );
        let uid = o.metadata.uid.clone().unwrap_or_default();
        let uids = self.children.entry(key.clone()).or_default();
        uids.insert(uid);
        if uids.len() > 1 {
            let n = uids.len();
            self.violation(format!(
                "{}: {n} {kind}s for the same step (hash {}, type {:?}, step {:?})",
                key.1, key.2, key.3, key.4
            ));
        }
    }
}

fn api(client: &kube::Client, ns: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("argoproj.io", "v1alpha1", kind);
    Api::namespaced_with(
        client.clone(),
        ns,
        &ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

/// Runs the checker's own watches until `stop`.
fn spawn_checker(
    kubeconfig: PathBuf,
    ns: String,
    checker: Arc<Mutex<Checker>>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let kc = kube::config::Kubeconfig::read_from(&kubeconfig).expect("kubeconfig");
            let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .expect("config");
            let client = kube::Client::try_from(config).expect("client");
            enum Seen {
                Rs(Box<Event<ReplicaSet>>),
                Ro(Event<DynamicObject>),
                Run(Event<DynamicObject>),
                Exp(Event<DynamicObject>),
            }
            let cfg = watcher::Config::default;
            let rs = watcher::watcher(Api::<ReplicaSet>::namespaced(client.clone(), &ns), cfg())
                .default_backoff()
                .map(|e| e.map(|ev| Seen::Rs(Box::new(ev))));
            let ro = watcher::watcher(api(&client, &ns, "Rollout", "rollouts"), cfg())
                .default_backoff()
                .map(|e| e.map(Seen::Ro));
            let run = watcher::watcher(api(&client, &ns, "AnalysisRun", "analysisruns"), cfg())
                .default_backoff()
                .map(|e| e.map(Seen::Run));
            let exp = watcher::watcher(api(&client, &ns, "Experiment", "experiments"), cfg())
                .default_backoff()
                .map(|e| e.map(Seen::Exp));
            let mut all =
                futures::stream::select_all(vec![rs.boxed(), ro.boxed(), run.boxed(), exp.boxed()]);
            while !stop.load(Ordering::Relaxed) {
                let next = tokio::time::timeout(Duration::from_millis(200), all.next()).await;
                let Ok(Some(Ok(seen))) = next else { continue };
                let mut c = checker.lock().unwrap();
                match seen {
                    Seen::Rs(ev) => c.on_rs(*ev),
                    Seen::Ro(Event::Apply(o) | Event::InitApply(o)) => c.on_rollout(&o),
                    Seen::Run(Event::Apply(o) | Event::InitApply(o)) => {
                        c.on_child("AnalysisRun", &o)
                    }
                    Seen::Exp(Event::Apply(o) | Event::InitApply(o)) => {
                        c.on_child("Experiment", &o)
                    }
                    _ => {}
                }
            }
        });
    })
}

/// The API server process and how to restart it with its data.
struct Server {
    port: u16,
    args: Vec<String>,
    dir: PathBuf,
}

impl Server {
    fn spawn(&self) -> Proc {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let p = spawn_program("cluster", sluice_bin(), &args, &self.dir);
        wait_until(
            "the API server answers /healthz",
            Duration::from_secs(30),
            || {
                crate::prometheus::http_get(&format!("http://127.0.0.1:{}/healthz", self.port))
                    .filter(|(c, _)| *c == 200)
            },
        );
        // The cluster writes its kubeconfig once it listens, so /healthz can answer first:
        // kubectl must not run before the file is there (seen on a loaded machine).
        let kubeconfig = self.dir.join("kubeconfig");
        wait_until("the kubeconfig is written", Duration::from_secs(30), || {
            kubeconfig.exists().then_some(())
        });
        p
    }

    /// One request to the server's control endpoints.
    fn control(&self, method: reqwest::Method, path: &str, body: Value) -> Option<Value> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        rt.block_on(async {
            let r = reqwest::Client::new()
                .request(method, format!("http://127.0.0.1:{}{path}", self.port))
                .timeout(Duration::from_secs(10))
                .body(body.to_string())
                .send()
                .await
                .ok()?;
            r.json().await.ok()
        })
    }
}

/// The server's request log, read in pieces and kept across API-server restarts.
#[derive(Default)]
struct Requests {
    since: u64,
    items: Vec<Value>,
}

impl Requests {
    fn poll(&mut self, server: &Server, lease: &str) {
        for _ in 0..100 {
            let Some(page) = server.control(
                reqwest::Method::GET,
                &format!("/_sluice/requests?since={}&limit=20000", self.since),
                Value::Null,
            ) else {
                return;
            };
            if page["config"]["enabled"] != true {
                // A fresh server (restarted): switch the log on again, numbering from 0.
                server.control(
                    reqwest::Method::PUT,
                    "/_sluice/requests",
                    json!({"enabled": true, "lease": lease}),
                );
                self.since = 0;
                return;
            }
            let items = page["items"].as_array().cloned().unwrap_or_default();
            if items.is_empty() {
                return;
            }
            self.since = items.last().unwrap()["seq"].as_u64().unwrap() + 1;
            self.items.extend(items);
        }
    }
}

fn run_chaos(test: &str, plan: Plan) {
    require_kubectl!();
    let started = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("sluice-chaos-")
        .tempdir()
        .expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    let data = dir.path().join("data");
    let faults = dir.path().join("faults.yaml");
    std::fs::write(&faults, faults_yaml(&plan)).unwrap();
    let port = free_port();
    let server = Server {
        port,
        dir: dir.path().to_path_buf(),
        args: [
            "cluster",
            "--port",
            &port.to_string(),
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--faults",
            faults.to_str().unwrap(),
            "--pod-ready-delay",
            "300ms",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    };
    let cluster = server.spawn();
    let namespace = format!(
        "{}-{}",
        test.replace('_', "-"),
        std::process::id() % 100_000
    );
    let mut env = Env {
        dir,
        kubeconfig: kubeconfig.clone(),
        namespace: namespace.clone(),
        cluster: Some(cluster),
        controller: None,
        metrics_port: 0,
    };
    env.apply(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n"
    ));
    env.install_crds();
    let lease = format!("{namespace}/sluice-controller");
    let mut requests = Requests::default();
    requests.poll(&server, &lease);
    requests.poll(&server, &lease);

    let web = Served::start();
    web.set_json("/ok", &json!({"value": 1}));
    web.set_json("/bad", &json!({"value": 0}));
    env.apply(&templates_yaml(&web.url("/ok"), &web.url("/bad")));

    let controller_args = [
        "--leader-elect",
        "--leader-election-namespace",
        namespace.as_str(),
        "--lease-duration",
        "3",
        "--shutdown-grace",
        "2s",
    ];
    // Each incarnation logs to its own file (leaked names: a handful per run).
    let mut incarnations: Vec<&'static str> = Vec::new();
    let mut spawn = |env: &Env, replica: usize| -> Proc {
        let name: &'static str =
            Box::leak(format!("controller-{replica}-{}", incarnations.len()).into_boxed_str());
        incarnations.push(name);
        env.spawn_controller(name, free_port(), &controller_args)
    };
    let mut controllers: Vec<Proc> = vec![spawn(&env, 0), spawn(&env, 1)];
    let mut exits = 0usize;

    let checker = Arc::new(Mutex::new(Checker::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = spawn_checker(
        kubeconfig.clone(),
        namespace.clone(),
        checker.clone(),
        stop.clone(),
    );

    let rollouts: Vec<(String, Kind)> = (0..plan.rollouts)
        .map(|i| (format!("c{i}"), KINDS[i % KINDS.len()]))
        .collect();
    let mut manifest = String::new();
    for (name, kind) in &rollouts {
        manifest += &rollout_yaml(name, *kind, "nginx:1.25");
        manifest += "---\n";
    }
    env.apply(&manifest);
    let all = |env: &Env| -> Option<HashMap<String, Value>> {
        let out = env.kubectl(&["get", "rollouts", "-o", "json"]);
        if !out.status.success() {
            return None;
        }
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        Some(
            v["items"]
                .as_array()?
                .iter()
                .map(|r| {
                    (
                        r["metadata"]["name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        r.clone(),
                    )
                })
                .collect(),
        )
    };
    // Every Rollout Healthy at its first revision (faults are on already; a controller that
    // exits meanwhile is restarted, as its Deployment would).
    let initial = Instant::now() + Duration::from_secs(240);
    loop {
        for (i, c) in controllers.iter_mut().enumerate() {
            if c.try_wait().is_some() {
                exits += 1;
                *c = spawn(&env, i);
            }
        }
        let ready = all(&env).is_some_and(|now| {
            now.len() == rollouts.len() && now.values().all(|r| r["status"]["phase"] == "Healthy")
        });
        if ready {
            break;
        }
        assert!(
            Instant::now() < initial,
            "timed out after 240s waiting for every Rollout Healthy at its first revision"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    // The update, under chaos.
    let mut update = String::new();
    for (name, kind) in &rollouts {
        update += &rollout_yaml(name, *kind, "nginx:1.26");
        update += "---\n";
    }
    env.apply(&update);
    let chaos_start = Instant::now();
    let deadline = chaos_start + plan.deadline;
    let mut dice = Dice(plan.seed.max(1));
    // The n disruptions of a kind fall at random moments, about spread / (n + 1) apart.
    let gap = |d: &mut Dice, n: usize| {
        let slot = plan.spread.as_millis() as u64 / (n as u64 + 1);
        d.millis(slot / 2, (slot * 3 / 2).max(slot / 2 + 1))
    };
    let (mut kills, mut restarts) = (0usize, 0usize);
    let mut next_kill = Instant::now() + gap(&mut dice, plan.kills);
    let mut next_restart = Instant::now() + gap(&mut dice, plan.api_restarts);
    let mut acted: HashSet<String> = HashSet::new();
    let mut finished: HashMap<String, String> = HashMap::new();
    let mut last_poll = Instant::now();
    while Instant::now() < deadline {
        if last_poll.elapsed() > Duration::from_millis(500) {
            requests.poll(&server, &lease);
            last_poll = Instant::now();
        }
        if kills < plan.kills && Instant::now() >= next_kill {
            let i = (dice.next() % 2) as usize;
            controllers[i].kill();
            controllers[i] = spawn(&env, i);
            kills += 1;
            next_kill = Instant::now() + gap(&mut dice, plan.kills);
        }
        if restarts < plan.api_restarts && Instant::now() >= next_restart {
            requests.poll(&server, &lease);
            checker.lock().unwrap().paused = true;
            let mut old = env.cluster.take().unwrap();
            assert!(
                old.terminate(Duration::from_secs(20)).is_some(),
                "the API server did not stop on SIGTERM"
            );
            env.cluster = Some(server.spawn());
            requests.poll(&server, &lease);
            restarts += 1;
            next_restart = Instant::now() + gap(&mut dice, plan.api_restarts);
            // The checker's watches reconnect and re-list within a grace window.
            {
                let mut c = checker.lock().unwrap();
                c.paused = false;
                c.paused_until = Some(Instant::now() + Duration::from_secs(5));
            }
        }
        // A controller that exited on its own (it lost the API server for too long, or its
        // Lease) is restarted, as its Deployment would.
        for (i, c) in controllers.iter_mut().enumerate() {
            if c.try_wait().is_some() {
                exits += 1;
                *c = spawn(&env, i);
            }
        }
        let Some(now) = all(&env) else {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        };
        for (name, kind) in &rollouts {
            let Some(ro) = now.get(name) else { continue };
            let s = &ro["status"];
            let hash = s["currentPodHash"].as_str().unwrap_or_default().to_string();
            let updated = s["stableRS"].as_str() != Some(hash.as_str()) || s["phase"] == "Degraded";
            let paused = s["pauseConditions"]
                .as_array()
                .is_some_and(|p| !p.is_empty());
            if paused && updated && !acted.contains(name) {
                let (patch, write) = match kind {
                    Kind::Promoted => (
                        json!({"status": {"pauseConditions": null}}),
                        Some(UserWrite::Promote {
                            step: s["currentStepIndex"].as_i64().unwrap_or(-1),
                            hash: hash.clone(),
                        }),
                    ),
                    Kind::Aborted => (
                        json!({"status": {"abort": true}}),
                        Some(UserWrite::Abort { hash: hash.clone() }),
                    ),
                    Kind::PromotedFull => (
                        json!({"status": {"promoteFull": true}}),
                        Some(UserWrite::PromoteFull { hash: hash.clone() }),
                    ),
                    _ => (Value::Null, None),
                };
                if let Some(write) = write {
                    let out = env.kubectl(&[
                        "patch",
                        "rollout",
                        name,
                        "--subresource=status",
                        "--type=merge",
                        "-p",
                        &patch.to_string(),
                    ]);
                    if out.status.success() {
                        acted.insert(name.clone());
                        checker
                            .lock()
                            .unwrap()
                            .user
                            .entry(name.clone())
                            .or_default()
                            .push(write);
                    }
                }
            }
            let phase = s["phase"].as_str().unwrap_or_default();
            let observed =
                s["observedGeneration"].as_str() == Some(&ro["metadata"]["generation"].to_string());
            let done = observed
                && phase == kind.expected_phase()
                && (phase == "Degraded" || s["stableRS"].as_str() == Some(hash.as_str()))
                && s["currentPodHash"].as_str().is_some_and(|h| !h.is_empty());
            if done {
                finished.insert(name.clone(), phase.to_string());
            } else {
                finished.remove(name);
            }
        }
        if finished.len() == rollouts.len() && kills >= plan.kills && restarts >= plan.api_restarts
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let elapsed = chaos_start.elapsed();
    requests.poll(&server, &lease);
    stop.store(true, Ordering::Relaxed);
    let _ = watcher.join();

    let mut violations = checker.lock().unwrap().violations.clone();
    for (name, kind) in &rollouts {
        if !finished.contains_key(name) {
            let now = all(&env)
                .and_then(|m| m.get(name).cloned())
                .unwrap_or_default();
            violations.push(format!(
                "{name} ({kind:?}) did not reach {} within {:?}: {}",
                kind.expected_phase(),
                plan.deadline,
                now["status"]
            ));
        }
    }
    // Only the lease holder writes; the controller's request rate stays bounded.
    let controller_requests: Vec<&Value> = requests
        .items
        .iter()
        .filter(|e| {
            e["userAgent"]
                .as_str()
                .is_some_and(|u| u.starts_with("sluice-controller/"))
        })
        .collect();
    let mut writes = 0u64;
    let mut faulted = 0u64;
    for e in &controller_requests {
        let verb = e["verb"].as_str().unwrap_or_default();
        if !matches!(
            verb,
            "create" | "update" | "patch" | "delete" | "deletecollection"
        ) {
            continue;
        }
        writes += 1;
        faulted += u64::from(e["injected"] == true);
        if e["resource"] == "leases" {
            continue;
        }
        let ua = e["userAgent"].as_str().unwrap_or_default();
        let identity = ua
            .split_once('(')
            .map(|(_, r)| r.trim_end_matches(')'))
            .unwrap_or_default();
        if e["leaseHolder"].as_str() != Some(identity) {
            violations.push(format!(
                "a write by {identity} while the Lease was held by {}: {verb} {}/{} {}",
                e["leaseHolder"],
                e["resource"],
                e["subresource"].as_str().unwrap_or(""),
                e["name"].as_str().unwrap_or("")
            ));
        }
    }
    let mut per_minute: BTreeMap<i64, u64> = BTreeMap::new();
    for e in &controller_requests {
        if e["resource"] != "leases" {
            *per_minute
                .entry(e["atMs"].as_i64().unwrap_or(0) / 60_000)
                .or_default() += 1;
        }
    }
    let busiest = per_minute.values().copied().max().unwrap_or(0) as f64 / plan.rollouts as f64;
    if busiest > MAX_REQUESTS_PER_ROLLOUT_MINUTE {
        violations.push(format!(
            "hot loop: {busiest:.0} controller requests per Rollout in one minute (bound {MAX_REQUESTS_PER_ROLLOUT_MINUTE})"
        ));
    }
    let samples = checker.lock().unwrap().samples;
    let fault_stats = server
        .control(reqwest::Method::GET, "/_sluice/faults", Value::Null)
        .unwrap_or_default();
    eprintln!(
        "chaos summary: {} rollouts, {kills} controller kills, {exits} controller exits restarted, {restarts} API-server restarts, {faulted}/{writes} controller writes faulted ({:.1} %), {} checker samples, busiest minute {busiest:.0} requests/Rollout, {} violations; updates took {elapsed:?}, whole test {:?}; the server's fault counts since its last restart: {}",
        plan.rollouts,
        100.0 * faulted as f64 / writes.max(1) as f64,
        samples,
        violations.len(),
        started.elapsed(),
        fault_stats["stats"]
    );
    drop(controllers);
    if !violations.is_empty() {
        let mut logs = String::new();
        for n in &incarnations {
            let text = std::fs::read_to_string(env.dir.path().join(format!("{n}.log")))
                .unwrap_or_default();
            let notable: Vec<&str> = text
                .lines()
                .filter(|l| !l.contains("DEBUG"))
                .take(60)
                .collect();
            logs += &format!("--- {n} (first 60 lines above DEBUG) ---\n");
            for l in notable {
                logs += l;
                logs.push('\n');
            }
        }
        // Keep the logs, the data directory and the faults file for the post-mortem.
        let dir = std::mem::replace(&mut env.dir, tempfile::tempdir().expect("tempdir"));
        let kept = dir.keep();
        panic!(
            "{} invariant violations (logs and data kept in {}):\n{}\n{logs}",
            violations.len(),
            kept.display(),
            violations.join("\n")
        );
    }
}

/// The short form, in `make test`: 7 canaries (one of each scenario), 3 controller kills, one
/// API-server restart, about 7 % of the controller's writes faulted.
#[test]
fn chaos_short() {
    run_chaos(
        "chaos-short",
        Plan::from_env(Plan {
            rollouts: 7,
            kills: 3,
            api_restarts: 1,
            write_fault_rate: 0.07,
            seed: 19,
            deadline: Duration::from_secs(120),
            spread: Duration::from_secs(30),
        }),
    );
}

/// The long form (`make chaos`): 100 canaries, 30 kills, 3 API-server restarts, about 7 %
/// faulted writes, unless `SLUICE_CHAOS_*` says otherwise.
#[test]
#[ignore = "long: run with `make chaos`"]
fn chaos_long() {
    run_chaos(
        "chaos-long",
        Plan::from_env(Plan {
            rollouts: 100,
            kills: 30,
            api_restarts: 3,
            write_fault_rate: 0.07,
            seed: 2026,
            deadline: Duration::from_secs(1500),
            spread: Duration::from_secs(600),
        }),
    );
}

/// The checker itself: each invariant is reported when broken (a checker that cannot fail
/// would make the suite worthless).
#[cfg(test)]
mod checker_tests {
    use super::*;

    fn rs(uid: &str, owner: &str, hash: &str, spec: i32, available: i32) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": format!("{owner}-{hash}"), "uid": uid,
                "labels": {"rollouts-pod-template-hash": hash},
                "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                    "name": owner, "uid": "ro-uid"}]},
            "spec": {"replicas": spec, "selector": {}},
            "status": {"replicas": spec, "availableReplicas": available}
        }))
        .unwrap()
    }

    fn rollout(name: &str, status: Value) -> DynamicObject {
        serde_json::from_value(
            json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": name, "uid": "ro-uid"}, "status": status}),
        )
        .unwrap()
    }

    fn run(name: &str, uid: &str, step: &str) -> DynamicObject {
        serde_json::from_value(json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
            "metadata": {"name": name, "uid": uid,
                "labels": {"rollouts-pod-template-hash": "new", "rollout-type": "Step", "step-index": step},
                "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                    "name": "r", "uid": "ro-uid"}]}}))
        .unwrap()
    }

    fn healthy_at_old() -> Checker {
        let mut c = Checker::default();
        c.on_rollout(&rollout(
            "r",
            json!({"phase": "Healthy", "stableRS": "old", "currentPodHash": "old"}),
        ));
        c.on_rs(Event::Apply(rs("1", "r", "old", 4, 4)));
        c.on_rollout(&rollout(
            "r",
            json!({"phase": "Progressing", "stableRS": "old", "currentPodHash": "new"}),
        ));
        c
    }

    #[test]
    fn availability_below_the_bound_is_a_violation() {
        let mut c = healthy_at_old();
        c.on_rs(Event::Apply(rs("2", "r", "new", 1, 0)));
        c.on_rs(Event::Apply(rs("1", "r", "old", 3, 3)));
        assert!(c.violations.is_empty(), "{:?}", c.violations);
        c.on_rs(Event::Apply(rs("1", "r", "old", 2, 2)));
        assert_eq!(c.violations.len(), 1, "{:?}", c.violations);
        assert!(c.violations[0].starts_with("r: 2 pods available, below 3"));
    }

    #[test]
    fn deleting_the_stable_replicaset_before_promotion_is_a_violation() {
        let mut c = healthy_at_old();
        c.on_rs(Event::Delete(rs("1", "r", "old", 4, 4)));
        assert!(
            c.violations
                .iter()
                .any(|v| v.contains("stable ReplicaSet r-old was deleted")),
            "{:?}",
            c.violations
        );
    }

    #[test]
    fn a_second_run_for_the_same_step_is_a_violation() {
        let mut c = healthy_at_old();
        c.on_child("AnalysisRun", &run("r-new-1", "a", "1"));
        c.on_child("AnalysisRun", &run("r-new-1", "a", "1"));
        c.on_child("AnalysisRun", &run("r-new-3", "b", "3"));
        assert!(c.violations.is_empty(), "{:?}", c.violations);
        c.on_child("AnalysisRun", &run("r-new-1.1", "c", "1"));
        assert_eq!(c.violations.len(), 1, "{:?}", c.violations);
    }

    #[test]
    fn a_lost_abort_or_an_undone_promote_is_a_violation() {
        let mut c = healthy_at_old();
        c.user.insert(
            "r".into(),
            vec![
                UserWrite::Abort { hash: "new".into() },
                UserWrite::Promote {
                    step: 1,
                    hash: "new".into(),
                },
            ],
        );
        c.on_rollout(&rollout(
            "r",
            json!({"abort": true, "currentPodHash": "new", "currentStepIndex": 2}),
        ));
        assert!(c.violations.is_empty(), "{:?}", c.violations);
        c.on_rollout(&rollout(
            "r",
            json!({"currentPodHash": "new", "currentStepIndex": 1,
            "pauseConditions": [{"reason": "CanaryPauseStep"}]}),
        ));
        assert_eq!(c.violations.len(), 2, "{:?}", c.violations);
    }
}
