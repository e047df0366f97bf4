//! The simulated kubelet: moves every Pod through the lifecycle a real node would, without
//! running anything.
//!
//! # Lifecycle
//! A Pod first seen at `T` is `Pending` (containers waiting, `ContainerCreating`) until
//! `T + pod_start_delay`; it is then `Running` with a `podIP` in 10.0.0.0/8, a `startTime`
//! and running containers that are not ready; `pod_ready_delay` later its containers become
//! ready and the `ContainersReady` and `Ready` conditions turn True.
//!
//! # Failure conventions
//! - Annotation `sluice.dev/simulate: never-ready` on the Pod, or an image whose tag ends in
//!   `:never-ready`, keeps the Pod (or that container) `Running` but never ready.
//! - Annotation `sluice.dev/simulate: crash-loop`, or an image tag ending in `:crash-loop`,
//!   makes the container crash as soon as it starts: it waits in `CrashLoopBackOff` with its
//!   `restartCount` increasing (back-off `pod_ready_delay` (at least 100 ms) doubling up to
//!   5 minutes) and is never ready. With `restartPolicy: Never` the Pod fails instead.
//! - Pods with `restartPolicy: Never` or `OnFailure` (Jobs) run their containers' `command` +
//!   `args` *interpreted, never executed* (see [`super::script`]): `sleep N` takes N seconds,
//!   `exit N` ends with exit code N; a script without `sleep` finishes after
//!   `pod_ready_delay`. When every container has finished the Pod is `Succeeded` (all exit
//!   codes 0) or `Failed`. Under `OnFailure` a failing container is restarted in place
//!   instead (restartCount increases, same back-off), as a real kubelet does.
//! - Pods with `restartPolicy: Always` (the default) keep running whatever their command.
//!
//! Init containers are not simulated (the Pod reports `Initialized`). A Pod being deleted
//! is confirmed at once (deleted with grace period 0), as a kubelet does once its containers
//! have stopped. Only Pods without `spec.nodeName` or with `spec.nodeName: sluice-node` are
//! handled, so a real node's Pods are never touched.
//!
//! Everything the kubelet writes is derived from the Pod's spec, the moment it first saw
//! the Pod and the current time, so repeating a decision (after a restart, or from a stale
//! cache) writes the same status again rather than a different one.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use kube::api::DeleteParams;
use kube::{Api, ResourceExt};
use serde_json::Value;

use super::informer::{Cache, ObjectKey};
use super::probes::{self, Start};
use super::reflects::WriteMemo;
use super::script::{Script, interpret};
use super::simulate::{self, Behaviour, Rule};
use super::status::{StatusBody, StatusWrite, changed_status, write_status};
use super::{WorkloadsError, is_not_found};
use sluice_api::k8s::conditions;
use sluice_api::k8s::hash::Fnv32a;
use sluice_api::k8s::time::{from_time, to_time};

/// The node name the simulated kubelet answers for.
pub const NODE_NAME: &str = "sluice-node";
/// The Pod annotation selecting a failure mode (`never-ready` or `crash-loop`).
pub const SIMULATE_ANNOTATION: &str = "sluice.dev/simulate";
/// The host IP every simulated Pod reports.
pub const HOST_IP: &str = "10.0.0.1";

const MAX_BACKOFF: Duration = Duration::from_secs(300);
const MIN_BACKOFF: Duration = Duration::from_millis(100);

/// How long the simulated lifecycle steps take.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timing {
    pub start_delay: Duration,
    pub ready_delay: Duration,
}

/// What the kubelet does about one Pod right now.
#[derive(Clone, Debug, PartialEq)]
pub enum KubeletChange {
    /// Write this status through `pods/status`.
    SetStatus(Box<PodStatus>),
    /// The Pod is being deleted: confirm it (delete with grace period 0).
    ConfirmDeletion,
}

/// The kubelet's decision for one Pod.
#[derive(Clone, Debug, PartialEq)]
pub struct KubeletPlan {
    pub change: Option<KubeletChange>,
    /// When the Pod's simulated state next changes on its own.
    pub wake_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq)]
enum Mode {
    /// A long-running container whose application is up `app_up` after it starts.
    Serve {
        app_up: Duration,
    },
    NeverReady,
    /// Runs for `run` then exits with `exit_code`; `restart` says whether it is restarted.
    Run {
        run: Option<Duration>,
        exit_code: i32,
        restart: bool,
    },
    /// The image cannot be pulled: never runs.
    PullError,
    /// The runtime cannot start the command: never runs, restarted with back-off.
    StartError,
}

fn mode_of(pod: &Pod, c: &Container, restart_policy: &str, node: &Node) -> Mode {
    let timing = &node.timing;
    let crash = |run: Duration| Mode::Run {
        run: Some(run),
        exit_code: 1,
        restart: restart_policy != "Never",
    };
    let mut app_up = timing.ready_delay;
    match simulate::behaviour_of(pod, c, SIMULATE_ANNOTATION, &node.failures) {
        Some(Behaviour::NeverReady) => return Mode::NeverReady,
        Some(Behaviour::CrashLoop) => return crash(Duration::ZERO),
        Some(Behaviour::CrashAfter(after)) => return crash(after),
        Some(Behaviour::ImagePullError) => return Mode::PullError,
        Some(Behaviour::CommandNotFound) => return Mode::StartError,
        Some(Behaviour::SlowStart(extra)) => app_up += extra,
        None => {}
    }
    if restart_policy == "Always" {
        return Mode::Serve { app_up };
    }
    let words = c.command.iter().flatten().chain(c.args.iter().flatten());
    let Script {
        sleeps,
        has_sleep,
        exit_code,
    } = interpret(words.map(String::as_str));
    Mode::Run {
        run: if has_sleep {
            sleeps
        } else {
            Some(timing.ready_delay)
        },
        exit_code,
        restart: restart_policy == "OnFailure" && exit_code != 0,
    }
}

fn backoff(base: Duration, restarts: u32) -> Duration {
    let base = base.max(MIN_BACKOFF);
    base.checked_mul(1u32 << restarts.min(20))
        .unwrap_or(MAX_BACKOFF)
        .min(MAX_BACKOFF)
}

fn add(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    t + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX / 2)
}

/// One container's simulated state at a moment.
struct ContainerView {
    status: ContainerStatus,
    ready_since: Option<DateTime<Utc>>,
    /// Terminated for good (only for containers that are not restarted).
    finished: Option<i32>,
    finished_at: Option<DateTime<Utc>>,
    wake_at: Option<DateTime<Utc>>,
}

fn terminated(exit_code: i32, started: DateTime<Utc>, finished: DateTime<Utc>) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code,
            reason: Some(if exit_code == 0 { "Completed" } else { "Error" }.into()),
            started_at: Some(to_time(started)),
            finished_at: Some(to_time(finished)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl ContainerView {
    fn new(
        status: ContainerStatus,
        ready_since: Option<DateTime<Utc>>,
        finished: Option<(i32, DateTime<Utc>)>,
        wake_at: Option<DateTime<Utc>>,
    ) -> Self {
        ContainerView {
            status,
            ready_since,
            finished: finished.map(|f| f.0),
            finished_at: finished.map(|f| f.1),
            wake_at,
        }
    }
}

fn set_running(status: &mut ContainerStatus, since: DateTime<Utc>) {
    status.started = Some(true);
    status.state = Some(ContainerState {
        running: Some(ContainerStateRunning {
            started_at: Some(to_time(since)),
        }),
        ..Default::default()
    });
}

/// A container running since `since` (until `until`, should its run end first), whose
/// application is up `app_up` after it started: shown `ContainerCreating` while its postStart
/// hook runs, `started` once its startup probe passed, ready when its readiness probe says so
/// (see [`probes`]). Woken at the next of those moments.
fn running_view(
    mut status: ContainerStatus,
    c: &Container,
    since: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    app_up: Duration,
) -> ContainerView {
    let (visible, started, ready) = match probes::start(c, since, app_up) {
        Start::Up {
            visible,
            started,
            ready,
        } => (visible, Some(started), Some(ready)),
        // Killed by its startup probe at `until` (the run's end): never started.
        Start::Killed { visible, .. } => (visible, None, None),
    };
    let soonest = |t: Option<DateTime<Utc>>| match (t, until) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if now < visible {
        status.state = Some(waiting("ContainerCreating", None));
        return ContainerView::new(status, None, None, soonest(Some(visible)));
    }
    set_running(&mut status, since);
    status.started = Some(started.is_some_and(|s| now >= s));
    if let Some(r) = ready.filter(|r| now >= *r) {
        status.ready = true;
        return ContainerView::new(status, Some(r), None, until);
    }
    let next = [started, ready]
        .into_iter()
        .flatten()
        .filter(|t| *t > now)
        .min();
    ContainerView::new(status, None, None, soonest(next))
}

fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message,
        }),
        ..Default::default()
    }
}

/// An image reference as the runtime resolves it (`nginx` is `docker.io/library/nginx:latest`).
fn qualified_image(image: &str) -> String {
    let (first, _) = image.split_once('/').unwrap_or(("", image));
    let registry = first.contains('.') || first.contains(':') || first == "localhost";
    let mut name = match (registry, image.contains('/')) {
        (true, _) => image.to_string(),
        (false, true) => format!("docker.io/{image}"),
        (false, false) => format!("docker.io/library/{image}"),
    };
    let last = name.rsplit('/').next().unwrap_or_default();
    if !last.contains(':') && !last.contains('@') {
        name.push_str(":latest");
    }
    name
}

/// A container that never runs: each attempt (pulling the image, or starting the command)
/// fails and shows `failed` for the ready delay, then the kubelet backs off (`backoff`
/// reason) before the next attempt, doubling up to 5 minutes.
struct Attempts {
    failed: &'static str,
    message: String,
    backoff: &'static str,
    backoff_message: String,
    /// A start that failed leaves a terminated container behind and counts as a restart; a
    /// pull that failed does not.
    start_error: bool,
}

impl Attempts {
    fn view(
        &self,
        mut status: ContainerStatus,
        start_at: DateTime<Utc>,
        now: DateTime<Utc>,
        timing: &Timing,
    ) -> ContainerView {
        let show = timing.ready_delay.max(MIN_BACKOFF);
        let mut attempt = start_at;
        let mut n: u32 = 0;
        loop {
            status.restart_count = if self.start_error { n as i32 } else { 0 };
            if self.start_error {
                status.last_state = Some(ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        exit_code: 128,
                        reason: Some("StartError".into()),
                        message: Some(self.message.clone()),
                        started_at: Some(to_time(DateTime::<Utc>::UNIX_EPOCH)),
                        finished_at: Some(to_time(attempt)),
                        ..Default::default()
                    }),
                    ..Default::default()
                });
            }
            let failed_until = add(attempt, show);
            if now < failed_until {
                status.state = Some(waiting(self.failed, Some(self.message.clone())));
                return ContainerView::new(status, None, None, Some(failed_until));
            }
            let next = add(failed_until, backoff(timing.ready_delay, n));
            if now < next {
                status.state = Some(waiting(self.backoff, Some(self.backoff_message.clone())));
                return ContainerView::new(status, None, None, Some(next));
            }
            attempt = next;
            n += 1;
        }
    }
}

fn view_container(
    pod: &Pod,
    c: &Container,
    mode: &Mode,
    start_at: DateTime<Utc>,
    now: DateTime<Utc>,
    timing: &Timing,
) -> ContainerView {
    let mut status = ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        image_id: String::new(),
        ready: false,
        restart_count: 0,
        started: Some(false),
        ..Default::default()
    };
    if now < start_at {
        status.state = Some(waiting("ContainerCreating", None));
        return ContainerView::new(status, None, None, Some(start_at));
    }
    let who = format!("container={} pod={}", c.name, pod.name_any());
    if *mode == Mode::PullError {
        let image = qualified_image(c.image.as_deref().unwrap_or_default());
        let attempts = Attempts {
            failed: "ErrImagePull",
            message: format!(
                "rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": \
                 failed to resolve reference \"{image}\": {image}: not found"
            ),
            backoff: "ImagePullBackOff",
            backoff_message: format!(
                "Back-off pulling image \"{}\"",
                c.image.as_deref().unwrap_or_default()
            ),
            start_error: false,
        };
        return attempts.view(status, start_at, now, timing);
    }
    status.container_id = Some(format!(
        "sluice://{}-{}",
        pod.metadata.uid.as_deref().unwrap_or("pod"),
        c.name
    ));
    match mode {
        Mode::PullError => unreachable!("handled above"),
        Mode::StartError => {
            let executable = c
                .command
                .iter()
                .flatten()
                .chain(c.args.iter().flatten())
                .next()
                .cloned()
                .unwrap_or_default();
            let attempts = Attempts {
                failed: "RunContainerError",
                message: format!(
                    "failed to create containerd task: failed to create shim task: OCI runtime \
                     create failed: runc create failed: unable to start container process: \
                     exec: \"{executable}\": executable file not found in $PATH: unknown"
                ),
                backoff: "CrashLoopBackOff",
                backoff_message: format!("back-off restarting failed {who}"),
                start_error: true,
            };
            attempts.view(status, start_at, now, timing)
        }
        Mode::Serve { app_up } => {
            // A startup probe that gives up kills the container: it then restarts like a
            // crashing one (exit code 137), each run killed at the same moment.
            if let Start::Killed { killed, .. } = probes::start(c, start_at, *app_up) {
                let cycle = Cycle {
                    run: (killed - start_at).to_std().unwrap_or_default(),
                    exit_code: 137,
                    restart: true,
                    app_up: *app_up,
                };
                return cycle.view(status, c, start_at, now, timing, &who);
            }
            running_view(status, c, start_at, None, now, *app_up)
        }
        Mode::NeverReady => {
            set_running(&mut status, start_at);
            ContainerView::new(status, None, None, None)
        }
        // A script that never ends (`sleep infinity`) serves like a long-running container.
        Mode::Run { run: None, .. } => {
            running_view(status, c, start_at, None, now, timing.ready_delay)
        }
        Mode::Run {
            run: Some(run),
            exit_code,
            restart,
        } => {
            let cycle = Cycle {
                run: *run,
                exit_code: *exit_code,
                restart: *restart,
                app_up: timing.ready_delay,
            };
            cycle.view(status, c, start_at, now, timing, &who)
        }
    }
}

/// A container that runs for `run`, exits with `exit_code`, and (when `restart`) starts
/// again after a back-off.
struct Cycle {
    run: Duration,
    exit_code: i32,
    restart: bool,
    app_up: Duration,
}

impl Cycle {
    /// The container's state at `now`: walks the run/back-off cycles from `start_at`;
    /// bounded because back-off grows to minutes and the walk stops at `now`.
    fn view(
        &self,
        mut status: ContainerStatus,
        c: &Container,
        start_at: DateTime<Utc>,
        now: DateTime<Utc>,
        timing: &Timing,
        who: &str,
    ) -> ContainerView {
        let mut run_start = start_at;
        let mut restarts: u32 = 0;
        let mut last: Option<ContainerState> = None;
        loop {
            let run_end = add(run_start, self.run);
            status.restart_count = restarts as i32;
            if now < run_end {
                status.last_state = last;
                return running_view(status, c, run_start, Some(run_end), now, self.app_up);
            }
            let exited = terminated(self.exit_code, run_start, run_end);
            if !self.restart {
                status.last_state = last;
                status.state = Some(exited);
                return ContainerView::new(status, None, Some((self.exit_code, run_end)), None);
            }
            let delay = backoff(timing.ready_delay, restarts);
            let next_start = add(run_end, delay);
            if now < next_start {
                status.last_state = Some(exited);
                status.state = Some(waiting(
                    "CrashLoopBackOff",
                    Some(format!(
                        "back-off {}s restarting failed {who}",
                        delay.as_secs()
                    )),
                ));
                return ContainerView::new(status, None, None, Some(next_start));
            }
            last = Some(exited);
            run_start = next_start;
            restarts += 1;
        }
    }
}

/// A stable pseudo-random Pod IP in 10.0.0.0/8 derived from the Pod's UID (or name).
pub fn pod_ip(pod: &Pod) -> String {
    let seed = pod.metadata.uid.clone().unwrap_or_else(|| pod.name_any());
    // FNV-1a: stable across runs and platforms, unlike std's hasher.
    let mut h = Fnv32a::new();
    h.write_all(seed.as_bytes()).expect("hashing cannot fail");
    let [_, a, b, c] = h.sum().to_be_bytes();
    format!("10.{}.{}.{}", a.max(1), b, c.clamp(2, 254))
}

fn condition(
    pod: &Pod,
    type_: &str,
    ok: bool,
    since: DateTime<Utc>,
    reason: Option<&str>,
    message: Option<String>,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let previous = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let type_ = type_.to_string();
    let since = conditions::transition_time(previous, &type_, status, to_time(since));
    PodCondition {
        last_transition_time: Some(since),
        type_,
        status: status.into(),
        reason: reason.map(Into::into),
        message,
        ..Default::default()
    }
}

/// Whether this simulated node is responsible for the Pod.
pub fn handles(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .is_some_and(|s| s.node_name.as_deref().is_none_or(|n| n == NODE_NAME))
}

/// When the kubelet first saw a Pod, recovered from its `startTime` if it has one (so a
/// restarted kubelet does not move Pods back to Pending).
pub fn first_seen(pod: &Pod, timing: &Timing, seen_now: DateTime<Utc>) -> DateTime<Utc> {
    pod.status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(|t| from_time(t) - chrono::Duration::from_std(timing.start_delay).unwrap_or_default())
        .unwrap_or(seen_now)
}

/// The simulated node: its timing and the failures its configuration chooses.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Node {
    pub timing: Timing,
    pub failures: Vec<Rule>,
}

/// The node as configured when the cluster started, and the rules of the simulation
/// ConfigMap as last seen (they come first).
#[derive(Debug, Default)]
pub struct NodeConfig {
    pub node: Node,
    pub from_config_map: std::sync::RwLock<Vec<Rule>>,
}

impl NodeConfig {
    /// The node as it is configured now.
    pub fn current(&self) -> Node {
        let mut failures = self
            .from_config_map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        failures.extend(self.node.failures.iter().cloned());
        Node {
            timing: self.node.timing,
            failures,
        }
    }
}

/// Decides what the kubelet does about `pod` at `now`, given when it first saw it.
pub fn plan(pod: &Pod, first_seen: DateTime<Utc>, now: DateTime<Utc>, node: &Node) -> KubeletPlan {
    let timing = &node.timing;
    let idle = KubeletPlan {
        change: None,
        wake_at: None,
    };
    if !handles(pod) {
        return idle;
    }
    if pod.metadata.deletion_timestamp.is_some() {
        return KubeletPlan {
            change: Some(KubeletChange::ConfirmDeletion),
            wake_at: None,
        };
    }
    let current = pod.status.clone().unwrap_or_default();
    if matches!(current.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return idle;
    }
    let spec = pod.spec.as_ref().expect("handles() checked the spec");
    let restart_policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let start_at = add(first_seen, timing.start_delay);
    let views: Vec<ContainerView> = spec
        .containers
        .iter()
        .map(|c| {
            let mode = mode_of(pod, c, restart_policy, node);
            view_container(pod, c, &mode, start_at, now, timing)
        })
        .collect();

    let started = now >= start_at;
    let conditions = pod_conditions(pod, &views, started, start_at, first_seen, now);
    let mut status = PodStatus {
        phase: Some(phase_of(started, &views).into()),
        conditions: Some(conditions),
        host_ip: Some(HOST_IP.into()),
        host_ips: Some(vec![HostIP { ip: HOST_IP.into() }]),
        container_statuses: Some(views.iter().map(|v| v.status.clone()).collect()),
        qos_class: current.qos_class.clone(),
        ..Default::default()
    };
    if started {
        let ip = pod_ip(pod);
        status.pod_ip = Some(ip.clone());
        status.pod_ips = Some(vec![PodIP { ip }]);
        status.start_time = Some(to_time(start_at));
    }
    let wake_at = views.iter().filter_map(|v| v.wake_at).min();
    KubeletPlan {
        change: changed_status(&current, status).map(|s| KubeletChange::SetStatus(Box::new(s))),
        wake_at,
    }
}

fn all_finished(views: &[ContainerView]) -> bool {
    !views.is_empty() && views.iter().all(|v| v.finished.is_some())
}

fn phase_of(started: bool, views: &[ContainerView]) -> &'static str {
    if !started {
        "Pending"
    } else if all_finished(views) {
        if views.iter().all(|v| v.finished == Some(0)) {
            "Succeeded"
        } else {
            "Failed"
        }
    } else if views.iter().any(never_ran) {
        // A container that has not run yet (its image is being pulled, its postStart hook
        // runs) keeps the Pod Pending, as the kubelet's phase rule says.
        "Pending"
    } else {
        "Running"
    }
}

fn never_ran(v: &ContainerView) -> bool {
    let s = &v.status;
    s.state.as_ref().is_some_and(|st| st.waiting.is_some())
        && s.last_state.as_ref().is_none_or(|l| l.terminated.is_none())
}

/// The Pod conditions a kubelet reports, from its containers' views.
fn pod_conditions(
    pod: &Pod,
    views: &[ContainerView],
    started: bool,
    start_at: DateTime<Utc>,
    first_seen: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<PodCondition> {
    let all_finished = all_finished(views);
    let all_ready = views.iter().all(|v| v.ready_since.is_some());
    let (ready_since, reason, message) = readiness(views, all_finished, all_ready, first_seen, now);
    let ready = all_ready && !all_finished;
    vec![
        condition(
            pod,
            "PodReadyToStartContainers",
            started,
            if started { start_at } else { first_seen },
            None,
            None,
        ),
        condition(pod, "Initialized", true, first_seen, None, None),
        condition(pod, "Ready", ready, ready_since, reason, message.clone()),
        condition(pod, "ContainersReady", ready, ready_since, reason, message),
        condition(pod, "PodScheduled", true, first_seen, None, None),
    ]
}

/// Since when the Ready conditions hold their value, and why the Pod is not ready.
fn readiness(
    views: &[ContainerView],
    all_finished: bool,
    all_ready: bool,
    first_seen: DateTime<Utc>,
    now: DateTime<Utc>,
) -> (DateTime<Utc>, Option<&'static str>, Option<String>) {
    if all_finished {
        let done = views
            .iter()
            .filter_map(|v| v.finished_at)
            .max()
            .unwrap_or(now);
        (done, Some("PodCompleted"), None)
    } else if all_ready {
        let since = views
            .iter()
            .filter_map(|v| v.ready_since)
            .max()
            .unwrap_or(now);
        (since, None, None)
    } else {
        let unready: Vec<&str> = views
            .iter()
            .filter(|v| v.ready_since.is_none())
            .map(|v| v.status.name.as_str())
            .collect();
        (
            first_seen,
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    }
}

/// The kubelet writes the status it observed as it is: what it leaves unset is not its own
/// to clear.
impl StatusBody for PodStatus {
    fn patch_body(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// The kubelet's memory: when each Pod was first seen (keyed by name, checked by UID so a
/// re-created Pod of the same name starts over).
#[derive(Default)]
pub struct Memory {
    first_seen: Mutex<BTreeMap<ObjectKey, (String, DateTime<Utc>)>>,
    writes: WriteMemo,
}

/// Reconciles one Pod: decide, write, and say when to look again.
pub async fn reconcile(
    key: ObjectKey,
    client: kube::Client,
    pods: Arc<Cache<Pod>>,
    memory: Arc<Memory>,
    config: Arc<NodeConfig>,
) -> Result<Option<Duration>, WorkloadsError> {
    let node = config.current();
    let pod = pods.get(&key);
    let now = Utc::now();
    let seen = {
        let mut memory = memory.first_seen.lock().unwrap_or_else(|e| e.into_inner());
        match pod.as_deref() {
            Some(pod) if super::pod_state::is_active(pod) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                match memory.get(&key) {
                    Some((known, at)) if *known == uid => *at,
                    _ => {
                        let at = first_seen(pod, &node.timing, now);
                        memory.insert(key.clone(), (uid, at));
                        at
                    }
                }
            }
            _ => {
                memory.remove(&key);
                now
            }
        }
    };
    let Some(pod) = pod else {
        memory.writes.forget(&key);
        return Ok(None);
    };
    memory
        .writes
        .seen(&key, pod.metadata.resource_version.as_deref());
    let decision = plan(&pod, seen, now, &node);
    let api: Api<Pod> = Api::namespaced(client, &key.namespace);
    match decision.change {
        None => {}
        Some(KubeletChange::ConfirmDeletion) => {
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                ..Default::default()
            };
            match api.delete(&key.name, &dp).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(WorkloadsError::Kube(e)),
            }
        }
        Some(KubeletChange::SetStatus(status)) => {
            let written =
                write_status(&api, &memory.writes, &key, &pod, status.patch_body()).await?;
            if written == StatusWrite::Gone {
                return Ok(None);
            }
        }
    }
    Ok(decision
        .wake_at
        .map(|at| (at - now).to_std().unwrap_or(Duration::ZERO)))
}

#[cfg(test)]
mod tests {
    use super::super::pod_state::fixtures::t;
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    const TIMING: Timing = Timing {
        start_delay: Duration::from_secs(1),
        ready_delay: Duration::from_secs(2),
    };

    fn node() -> Node {
        Node {
            timing: TIMING,
            failures: Vec::new(),
        }
    }

    fn pod(image: &str, restart: &str, command: &[&str], annotation: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                uid: Some("uid-p".into()),
                annotations: annotation
                    .map(|a| [(SIMULATE_ANNOTATION.to_string(), a.to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                restart_policy: Some(restart.into()),
                containers: vec![Container {
                    name: "main".into(),
                    image: Some(image.into()),
                    command: (!command.is_empty())
                        .then(|| command.iter().map(|s| s.to_string()).collect()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: None,
        }
    }

    /// (phase, Ready, restartCount, container state, wake second)
    type Seen = (String, bool, i32, String, Option<i64>);

    fn observe(pod: &Pod, now: i64) -> Seen {
        let plan = plan(pod, t(0), t(now), &node());
        let Some(KubeletChange::SetStatus(status)) = plan.change else {
            panic!("expected a status at {now}, got {:?}", plan.change);
        };
        let ready = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        let c = &status.container_statuses.as_ref().unwrap()[0];
        let state = c.state.as_ref().unwrap();
        let state = if let Some(w) = &state.waiting {
            format!("waiting {}", w.reason.clone().unwrap_or_default())
        } else if let Some(term) = &state.terminated {
            format!("exited {}", term.exit_code)
        } else {
            "running".to_string()
        };
        let wake = plan.wake_at.map(|w| (w - t(0)).num_seconds());
        (status.phase.unwrap(), ready, c.restart_count, state, wake)
    }

    fn seen(phase: &str, ready: bool, restarts: i32, state: &str, wake: Option<i64>) -> Seen {
        (phase.into(), ready, restarts, state.into(), wake)
    }

    #[test]
    fn golden_lifecycles() {
        let serve = pod("nginx:1.27", "Always", &[], None);
        let never_ready_annotation = pod("nginx:1.27", "Always", &[], Some("never-ready"));
        let never_ready_tag = pod("registry:5000/app:never-ready", "Always", &[], None);
        let crash_annotation = pod("nginx:1.27", "Always", &[], Some("crash-loop"));
        let crash_tag = pod("app:crash-loop", "Always", &[], None);
        let crash_never = pod("app:crash-loop", "Never", &[], None);
        let always_exit = pod("busybox", "Always", &["sh", "-c", "exit 1"], None);
        let job_fail = pod("busybox", "Never", &["sh", "-c", "exit 3"], None);
        let job_sleep = pod("busybox", "Never", &["sh", "-c", "sleep 5; exit 0"], None);
        let job_empty = pod("busybox", "Never", &[], None);
        let job_on_failure = pod("busybox", "OnFailure", &["sh", "-c", "exit 1"], None);
        let cases: Vec<(&str, &Pod, i64, Seen)> = vec![
            (
                "serve pending",
                &serve,
                0,
                seen("Pending", false, 0, "waiting ContainerCreating", Some(1)),
            ),
            (
                "serve running",
                &serve,
                1,
                seen("Running", false, 0, "running", Some(3)),
            ),
            (
                "serve ready",
                &serve,
                3,
                seen("Running", true, 0, "running", None),
            ),
            (
                "serve stays ready",
                &serve,
                1000,
                seen("Running", true, 0, "running", None),
            ),
            (
                "never-ready by annotation",
                &never_ready_annotation,
                100,
                seen("Running", false, 0, "running", None),
            ),
            (
                "never-ready by image tag",
                &never_ready_tag,
                100,
                seen("Running", false, 0, "running", None),
            ),
            (
                "crash-loop first crash",
                &crash_annotation,
                1,
                seen("Running", false, 0, "waiting CrashLoopBackOff", Some(3)),
            ),
            (
                "crash-loop first restart",
                &crash_annotation,
                3,
                seen("Running", false, 1, "waiting CrashLoopBackOff", Some(7)),
            ),
            (
                "crash-loop backs off longer",
                &crash_tag,
                7,
                seen("Running", false, 2, "waiting CrashLoopBackOff", Some(15)),
            ),
            (
                "crash-loop under Never fails",
                &crash_never,
                1,
                seen("Failed", false, 0, "exited 1", None),
            ),
            (
                "Always ignores the command",
                &always_exit,
                3,
                seen("Running", true, 0, "running", None),
            ),
            (
                "exit N runs for the ready delay",
                &job_fail,
                1,
                seen("Running", false, 0, "running", Some(3)),
            ),
            (
                "exit N fails the pod",
                &job_fail,
                3,
                seen("Failed", false, 0, "exited 3", None),
            ),
            (
                "sleep keeps it running and ready",
                &job_sleep,
                4,
                seen("Running", true, 0, "running", Some(6)),
            ),
            (
                "sleep then exit 0 succeeds",
                &job_sleep,
                6,
                seen("Succeeded", false, 0, "exited 0", None),
            ),
            (
                "no command succeeds after the ready delay",
                &job_empty,
                3,
                seen("Succeeded", false, 0, "exited 0", None),
            ),
            (
                "OnFailure backs off after a failure",
                &job_on_failure,
                3,
                seen("Running", false, 0, "waiting CrashLoopBackOff", Some(5)),
            ),
            (
                "OnFailure restarts in place",
                &job_on_failure,
                5,
                seen("Running", false, 1, "running", Some(7)),
            ),
        ];
        for (name, pod, now, want) in cases {
            assert_eq!(observe(pod, now), want, "{name}");
        }
    }

    fn node_with(rules: &str) -> Node {
        Node {
            timing: TIMING,
            failures: simulate::parse_rules(rules).unwrap(),
        }
    }

    /// (phase, Ready, restartCount, container state, wake second) under `node`.
    fn observe_on(pod: &Pod, now: i64, node: &Node) -> Seen {
        let plan = plan(pod, t(0), t(now), node);
        let Some(KubeletChange::SetStatus(status)) = plan.change else {
            panic!("expected a status at {now}, got {:?}", plan.change);
        };
        let ready = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        let c = &status.container_statuses.as_ref().unwrap()[0];
        let state = c.state.as_ref().unwrap();
        let state = if let Some(w) = &state.waiting {
            format!("waiting {}", w.reason.clone().unwrap_or_default())
        } else if let Some(term) = &state.terminated {
            format!("exited {}", term.exit_code)
        } else {
            "running".to_string()
        };
        let wake = plan.wake_at.map(|w| (w - t(0)).num_seconds());
        (status.phase.unwrap(), ready, c.restart_count, state, wake)
    }

    #[test]
    fn golden_failures_from_the_clusters_configuration() {
        let node = node_with(
            "failures:\n\
             - {image: '*:does-not-exist', simulate: image-pull-error}\n\
             - {command: 'migrate*', simulate: command-not-found}\n\
             - {image: 'slow:*', simulate: slow-start, after: 10s}\n\
             - {image: 'flaky:*', simulate: crash-after, after: 5s}\n",
        );
        let missing = pod("nginx:does-not-exist", "Always", &[], None);
        let no_command = pod("busybox", "Always", &["migrate", "--all"], None);
        let slow = pod("slow:v1", "Always", &[], None);
        let flaky = pod("flaky:v1", "Always", &[], None);
        let cases: Vec<(&str, &Pod, i64, Seen)> = vec![
            (
                "pull fails",
                &missing,
                1,
                seen("Pending", false, 0, "waiting ErrImagePull", Some(3)),
            ),
            (
                "then backs off",
                &missing,
                3,
                seen("Pending", false, 0, "waiting ImagePullBackOff", Some(5)),
            ),
            (
                "and pulls again",
                &missing,
                5,
                seen("Pending", false, 0, "waiting ErrImagePull", Some(7)),
            ),
            (
                "for ever",
                &missing,
                600,
                seen("Pending", false, 0, "waiting ImagePullBackOff", Some(829)),
            ),
            (
                "start fails",
                &no_command,
                1,
                seen("Running", false, 0, "waiting RunContainerError", Some(3)),
            ),
            (
                "then crash-loops",
                &no_command,
                3,
                seen("Running", false, 0, "waiting CrashLoopBackOff", Some(5)),
            ),
            (
                "with restarts counted",
                &no_command,
                5,
                seen("Running", false, 1, "waiting RunContainerError", Some(7)),
            ),
            (
                "slow start: not ready at the usual time",
                &slow,
                3,
                seen("Running", false, 0, "running", Some(13)),
            ),
            (
                "slow start: ready 10 s later",
                &slow,
                13,
                seen("Running", true, 0, "running", None),
            ),
            (
                "crash after: ready while it runs",
                &flaky,
                4,
                seen("Running", true, 0, "running", Some(6)),
            ),
            (
                "crash after 5 s",
                &flaky,
                6,
                seen("Running", false, 0, "waiting CrashLoopBackOff", Some(8)),
            ),
            (
                "and runs again",
                &flaky,
                8,
                seen("Running", false, 1, "running", Some(10)),
            ),
        ];
        for (name, pod, now, want) in cases {
            assert_eq!(observe_on(pod, now, &node), want, "{name}");
        }
    }

    #[test]
    fn failure_messages_read_like_the_runtimes() {
        let node = node_with(
            "failures:\n- {image: '*:nope', simulate: image-pull-error}\n- {command: 'missing*', simulate: command-not-found}\n",
        );
        let waiting = |p: &Pod, now: i64| {
            let Some(KubeletChange::SetStatus(s)) = plan(p, t(0), t(now), &node).change else {
                panic!("expected a status")
            };
            let c = s.container_statuses.unwrap()[0].clone();
            (
                c.state.unwrap().waiting.unwrap().message.unwrap(),
                c.last_state,
            )
        };
        let (message, last) = waiting(&pod("shop:nope", "Always", &[], None), 1);
        assert!(
            message.contains("failed to pull and unpack image \"docker.io/library/shop:nope\""),
            "{message}"
        );
        assert!(
            message.ends_with("docker.io/library/shop:nope: not found"),
            "{message}"
        );
        assert_eq!(last, None);
        let (message, _) = waiting(&pod("shop:nope", "Always", &[], None), 3);
        assert_eq!(message, "Back-off pulling image \"shop:nope\"");
        let (message, last) = waiting(&pod("busybox", "Always", &["missing-binary"], None), 1);
        assert!(
            message.contains("exec: \"missing-binary\": executable file not found in $PATH"),
            "{message}"
        );
        let last = last.unwrap().terminated.unwrap();
        assert_eq!(
            (last.exit_code, last.reason.as_deref()),
            (128, Some("StartError"))
        );
        assert_eq!(
            qualified_image("registry:5000/team/app"),
            "registry:5000/team/app:latest"
        );
        assert_eq!(qualified_image("team/app:v1"), "docker.io/team/app:v1");
    }

    fn with_probes(mut p: Pod, f: impl FnOnce(&mut Container)) -> Pod {
        f(&mut p.spec.as_mut().unwrap().containers[0]);
        p
    }

    #[test]
    fn probes_and_post_start_decide_when_a_pod_is_ready() {
        use k8s_openapi::api::core::v1::{ExecAction, Lifecycle, LifecycleHandler, Probe};
        let probe = |initial: i32, period: i32, failure: i32| Probe {
            initial_delay_seconds: Some(initial),
            period_seconds: Some(period),
            failure_threshold: Some(failure),
            ..Default::default()
        };
        // Running at 1 s; the app is up at 3 s (ready delay 2 s).
        let readiness = with_probes(pod("nginx", "Always", &[], None), |c| {
            c.readiness_probe = Some(probe(10, 5, 3));
        });
        let startup_gives_up = with_probes(pod("nginx", "Always", &[], None), |c| {
            c.startup_probe = Some(probe(1, 1, 1));
        });
        let hook = with_probes(pod("nginx", "Always", &[], None), |c| {
            c.lifecycle = Some(Lifecycle {
                post_start: Some(LifecycleHandler {
                    exec: Some(ExecAction {
                        command: Some(vec!["sh".into(), "-c".into(), "sleep 4".into()]),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            });
        });
        let cases: Vec<(&str, &Pod, i64, Seen)> = vec![
            (
                "readiness waits for initialDelaySeconds",
                &readiness,
                3,
                seen("Running", false, 0, "running", Some(11)),
            ),
            (
                "ready at the first probe after it",
                &readiness,
                11,
                seen("Running", true, 0, "running", None),
            ),
            (
                "startup probe fails once: killed",
                &startup_gives_up,
                2,
                seen("Running", false, 0, "waiting CrashLoopBackOff", Some(4)),
            ),
            (
                "and restarted",
                &startup_gives_up,
                4,
                seen("Running", false, 1, "running", Some(5)),
            ),
            (
                "postStart: ContainerCreating while it runs",
                &hook,
                3,
                seen("Pending", false, 0, "waiting ContainerCreating", Some(5)),
            ),
            (
                "then running and ready",
                &hook,
                5,
                seen("Running", true, 0, "running", None),
            ),
        ];
        for (name, pod, now, want) in cases {
            assert_eq!(observe_on(pod, now, &node()), want, "{name}");
        }
    }

    #[test]
    fn running_pods_get_an_ip_and_start_time() {
        let p = pod("nginx", "Always", &[], None);
        let Some(KubeletChange::SetStatus(status)) = plan(&p, t(0), t(1), &node()).change else {
            panic!("expected a status");
        };
        assert!(status.pod_ip.as_deref().unwrap().starts_with("10."));
        assert_eq!(status.start_time, Some(to_time(t(1))));
    }

    #[test]
    fn a_written_status_is_not_written_again() {
        let mut p = pod("nginx", "Always", &[], None);
        for now in [0, 1, 3] {
            let Some(KubeletChange::SetStatus(status)) = plan(&p, t(0), t(now), &node()).change
            else {
                panic!("expected a status at {now}");
            };
            p.status = Some(*status);
            assert_eq!(plan(&p, t(0), t(now), &node()).change, None, "at {now}");
        }
    }

    #[test]
    fn a_restarted_kubelet_rewrites_nothing() {
        let mut p = pod("nginx", "Always", &[], None);
        let Some(KubeletChange::SetStatus(status)) = plan(&p, t(0), t(3), &node()).change else {
            panic!("expected a status");
        };
        p.status = Some(*status);
        // A kubelet restarted later recovers when it first saw the Pod from startTime.
        let recovered = first_seen(&p, &TIMING, t(50));
        let later = plan(&p, recovered, t(60), &node());
        assert_eq!(later.change, None);
    }

    #[test]
    fn deleting_pods_are_confirmed_and_finished_or_foreign_pods_left_alone() {
        let mut deleting = pod("nginx", "Always", &[], None);
        deleting.metadata.deletion_timestamp = Some(to_time(t(0)));
        assert_eq!(
            plan(&deleting, t(0), t(1), &node()).change,
            Some(KubeletChange::ConfirmDeletion)
        );

        let mut done = pod("busybox", "Never", &[], None);
        done.status = Some(PodStatus {
            phase: Some("Succeeded".into()),
            ..Default::default()
        });
        assert_eq!(plan(&done, t(0), t(9), &node()).change, None);

        let mut foreign = pod("nginx", "Always", &[], None);
        foreign.spec.as_mut().unwrap().node_name = Some("real-node-1".into());
        assert_eq!(plan(&foreign, t(0), t(9), &node()).change, None);
    }

    #[test]
    fn first_seen_is_recovered_from_start_time() {
        let mut p = pod("nginx", "Always", &[], None);
        p.status = Some(PodStatus {
            start_time: Some(to_time(t(10))),
            ..Default::default()
        });
        assert_eq!(first_seen(&p, &TIMING, t(99)), t(9));
        assert_eq!(
            first_seen(&pod("x", "Always", &[], None), &TIMING, t(99)),
            t(99)
        );
    }
}
