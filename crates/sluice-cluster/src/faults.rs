//! Fault injection and the request log: what the chaos suite uses to make the embedded API
//! server fail the way a loaded or restarting kube-apiserver does, and to see who wrote what.
//!
//! Off by default. Switched on by `sluice cluster --faults FILE` or, at run time, by the
//! control endpoint `PUT /_sluice/faults` (JSON, the same schema); `GET /_sluice/faults` shows
//! the configuration and what was injected so far. Both are served on the cluster's own
//! 127.0.0.1 port, outside the Kubernetes API paths.
//!
//! Every fault is drawn from one pseudo-random sequence seeded by `seed`: the n-th request the
//! server examines meets the same fate on every run with the same configuration.
//!
//! The request log (`PUT /_sluice/requests` to switch it on, `GET /_sluice/requests?since=N`
//! to read it) records every resource request with its user agent, verb, target, the status
//! code the client got, and, for writes, the holder of a named Lease at the moment the request
//! arrived — so a test can check that only the lease holder writes.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The fault configuration (`--faults FILE`, `PUT /_sluice/faults`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Faults {
    /// Seed of the draw sequence.
    #[serde(default)]
    pub seed: u64,
    /// Error answers, tried in order; the first rule whose draw hits answers the request.
    #[serde(default)]
    pub errors: Vec<ErrorRule>,
    /// Added latency before a request is served.
    #[serde(default)]
    pub latency: Vec<LatencyRule>,
    /// Faults of watch streams.
    #[serde(default)]
    pub watch: WatchFaults,
}

/// Which requests a rule applies to. Empty lists match everything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Match {
    /// Kubernetes verbs (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`), or `write` (the five changing ones) and `read` (the other three).
    #[serde(default)]
    pub verbs: Vec<String>,
    /// Resources by plural (`replicasets`, every subresource included), plural and
    /// subresource (`rollouts/status`), or plural and group (`leases.coordination.k8s.io`).
    #[serde(default)]
    pub resources: Vec<String>,
    /// Substrings of the client's User-Agent (`sluice-controller` hits only the controller).
    #[serde(default)]
    pub user_agents: Vec<String>,
}

/// An error answer: the request is refused with `code` in `rate` of the matching requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorRule {
    #[serde(flatten)]
    pub on: Match,
    /// Fraction of matching requests, 0 to 1.
    pub rate: f64,
    /// 500 (InternalError), 409 (Conflict), 429 (TooManyRequests with `Retry-After`) or 504
    /// (Timeout, answered after `delayMs`).
    pub code: u16,
    /// `Retry-After` of a 429, in seconds.
    #[serde(default = "one")]
    pub retry_after_seconds: u64,
    /// How long a 504 keeps the client waiting, in milliseconds.
    #[serde(default = "thousand")]
    pub delay_ms: u64,
    /// The request is carried out and only the answer is lost (a 500 or 504 after the write
    /// was stored, as when kube-apiserver times out after etcd committed).
    #[serde(default)]
    pub applied: bool,
}

fn one() -> u64 {
    1
}

fn thousand() -> u64 {
    1000
}

/// Added latency: `rate` of the matching requests wait between `minMs` and `maxMs` first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LatencyRule {
    #[serde(flatten)]
    pub on: Match,
    pub rate: f64,
    pub min_ms: u64,
    pub max_ms: u64,
}

/// Faults of watch streams.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchFaults {
    #[serde(flatten)]
    pub on: Match,
    /// Fraction of watch streams cut mid-flight (the connection is dropped without the final
    /// chunk) between `cutAfterMinMs` and `cutAfterMaxMs` after they open.
    #[serde(default)]
    pub cut_rate: f64,
    #[serde(default)]
    pub cut_after_min_ms: u64,
    #[serde(default)]
    pub cut_after_max_ms: u64,
    /// Fraction of watches resuming from a resourceVersion that are told it is too old: one
    /// `ERROR` event carrying a 410 `Expired` Status, as kube-apiserver sends after compaction.
    #[serde(default)]
    pub expire_rate: f64,
}

/// Why a fault configuration was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FaultsError {
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

fn invalid(field: String, message: &str) -> FaultsError {
    FaultsError::Invalid {
        field,
        message: message.to_string(),
    }
}

const VERBS: [&str; 10] = [
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "write",
    "read",
];

impl Faults {
    /// Parses YAML or JSON and checks every rule.
    pub fn parse(text: &str) -> Result<Faults, FaultsError> {
        let f: Faults = serde_yaml::from_str(text).map_err(|e| FaultsError::Invalid {
            field: e
                .location()
                .map(|l| format!("line {}", l.line()))
                .unwrap_or_else(|| "faults".into()),
            message: e.to_string(),
        })?;
        f.validate()?;
        Ok(f)
    }

    /// Every rate is within 0..=1, every code one the server can inject, every range ordered.
    pub fn validate(&self) -> Result<(), FaultsError> {
        let rate = |field: String, r: f64| {
            if (0.0..=1.0).contains(&r) {
                Ok(())
            } else {
                Err(invalid(field, "must be between 0 and 1"))
            }
        };
        let on = |field: String, m: &Match| match m
            .verbs
            .iter()
            .find(|v| !VERBS.contains(&v.as_str()))
        {
            Some(v) => Err(invalid(
                format!("{field}.verbs"),
                &format!("unknown verb `{v}` (one of {})", VERBS.join(", ")),
            )),
            None => Ok(()),
        };
        for (i, e) in self.errors.iter().enumerate() {
            rate(format!("errors[{i}].rate"), e.rate)?;
            on(format!("errors[{i}]"), &e.on)?;
            if !matches!(e.code, 409 | 429 | 500 | 504) {
                return Err(invalid(
                    format!("errors[{i}].code"),
                    "must be 409, 429, 500 or 504",
                ));
            }
            if e.applied && !matches!(e.code, 500 | 504) {
                return Err(invalid(
                    format!("errors[{i}].applied"),
                    "only a 500 or 504 can follow a carried-out request",
                ));
            }
        }
        for (i, l) in self.latency.iter().enumerate() {
            rate(format!("latency[{i}].rate"), l.rate)?;
            on(format!("latency[{i}]"), &l.on)?;
            if l.min_ms > l.max_ms {
                return Err(invalid(
                    format!("latency[{i}].minMs"),
                    "must not exceed maxMs",
                ));
            }
        }
        rate("watch.cutRate".into(), self.watch.cut_rate)?;
        rate("watch.expireRate".into(), self.watch.expire_rate)?;
        on("watch".into(), &self.watch.on)?;
        if self.watch.cut_after_min_ms > self.watch.cut_after_max_ms {
            return Err(invalid(
                "watch.cutAfterMinMs".into(),
                "must not exceed cutAfterMaxMs",
            ));
        }
        Ok(())
    }
}

/// What the server knows of a request when it decides its fate.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub verb: &'a str,
    pub group: &'a str,
    pub resource: &'a str,
    pub subresource: Option<&'a str>,
    pub user_agent: &'a str,
}

/// Whether `verb` changes objects.
pub fn is_write(verb: &str) -> bool {
    matches!(
        verb,
        "create" | "update" | "patch" | "delete" | "deletecollection"
    )
}

impl Match {
    fn matches(&self, r: &Request) -> bool {
        let verb = self.verbs.is_empty()
            || self.verbs.iter().any(|v| {
                v == r.verb
                    || (v == "write" && is_write(r.verb))
                    || (v == "read" && !is_write(r.verb))
            });
        let resource = self.resources.is_empty()
            || self.resources.iter().any(|want| {
                if let Some((plural, sub)) = want.split_once('/') {
                    plural == r.resource && Some(sub) == r.subresource
                } else if let Some((plural, group)) = want.split_once('.') {
                    plural == r.resource && group == r.group
                } else {
                    want == r.resource
                }
            });
        let agent = self.user_agents.is_empty()
            || self
                .user_agents
                .iter()
                .any(|a| r.user_agent.contains(a.as_str()));
        verb && resource && agent
    }
}

/// An injected error.
#[derive(Debug, Clone, PartialEq)]
pub struct Injected {
    pub code: u16,
    pub retry_after_seconds: u64,
    /// How long to hold the answer back (a 504's timeout).
    pub delay: Duration,
    /// Serve the request, then answer with the error.
    pub applied: bool,
}

/// The fate of one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    pub latency: Option<Duration>,
    pub error: Option<Injected>,
    /// Cut the watch stream this long after it opens.
    pub cut_after: Option<Duration>,
    /// Answer a watch resuming from a resourceVersion with 410 Expired.
    pub expire: bool,
}

/// Counts of what was examined and injected.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultStats {
    pub requests: u64,
    pub writes: u64,
    pub faulted_writes: u64,
    pub errors: std::collections::BTreeMap<u16, u64>,
    pub delayed: u64,
    pub watches_cut: u64,
    pub watches_expired: u64,
}

/// SplitMix64: small, fast, and the same sequence for the same seed on every platform.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            lo
        } else {
            lo + self.next() % (hi - lo + 1)
        }
    }
}

struct InjectorState {
    faults: Faults,
    rng: Rng,
    stats: FaultStats,
}

/// The server's fault injector: the configuration, its draw sequence and its counts.
pub struct Injector {
    /// Whether any fault is configured: when not, a request costs one atomic load.
    active: AtomicBool,
    state: Mutex<InjectorState>,
}

impl Default for Injector {
    fn default() -> Self {
        Injector::new(Faults::default())
    }
}

impl Injector {
    pub fn new(faults: Faults) -> Injector {
        Injector {
            active: AtomicBool::new(faults != Faults::default()),
            state: Mutex::new(InjectorState {
                rng: Rng(faults.seed),
                faults,
                stats: FaultStats::default(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InjectorState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the configuration and restarts its draw sequence; the counts are kept.
    pub fn set(&self, faults: Faults) {
        let mut st = self.lock();
        st.rng = Rng(faults.seed);
        self.active
            .store(faults != Faults::default(), Ordering::Release);
        st.faults = faults;
    }

    pub fn faults(&self) -> Faults {
        self.lock().faults.clone()
    }

    pub fn stats(&self) -> FaultStats {
        self.lock().stats.clone()
    }

    /// Draws the fate of `r`. One draw per rule examined, so the sequence depends only on the
    /// seed and the order in which requests arrive. Requests are counted while faults are on.
    pub fn decide(&self, r: &Request) -> Decision {
        if !self.active.load(Ordering::Acquire) {
            return Decision::default();
        }
        let mut guard = self.lock();
        let st = &mut *guard;
        st.stats.requests += 1;
        let write = is_write(r.verb);
        if write {
            st.stats.writes += 1;
        }
        let mut d = Decision::default();
        for l in &st.faults.latency {
            if l.on.matches(r) && st.rng.unit() < l.rate {
                d.latency = Some(Duration::from_millis(st.rng.between(l.min_ms, l.max_ms)));
                st.stats.delayed += 1;
                break;
            }
        }
        for e in &st.faults.errors {
            if e.on.matches(r) && st.rng.unit() < e.rate {
                d.error = Some(Injected {
                    code: e.code,
                    retry_after_seconds: e.retry_after_seconds,
                    delay: if e.code == 504 {
                        Duration::from_millis(e.delay_ms)
                    } else {
                        Duration::ZERO
                    },
                    applied: e.applied,
                });
                *st.stats.errors.entry(e.code).or_default() += 1;
                if write {
                    st.stats.faulted_writes += 1;
                }
                break;
            }
        }
        let w = &st.faults.watch;
        if r.verb == "watch" && d.error.is_none() && w.on.matches(r) {
            if w.cut_rate > 0.0 && st.rng.unit() < w.cut_rate {
                d.cut_after = Some(Duration::from_millis(
                    st.rng.between(w.cut_after_min_ms, w.cut_after_max_ms),
                ));
            }
            if w.expire_rate > 0.0 && st.rng.unit() < w.expire_rate {
                d.expire = true;
            }
        }
        d
    }

    /// Counts a watch stream that was cut or told its resourceVersion expired.
    pub fn count_watch(&self, cut: bool, expired: bool) {
        let mut st = self.lock();
        st.stats.watches_cut += u64::from(cut);
        st.stats.watches_expired += u64::from(expired);
    }
}

/// The error an injected fault answers with, as kube-apiserver words it.
pub fn error_for(i: &Injected, group: &str, resource: &str, name: &str) -> crate::error::ApiError {
    use crate::error::ApiError;
    match i.code {
        409 => ApiError::conflict(group, resource, name),
        429 => ApiError {
            code: 429,
            reason: "TooManyRequests",
            message: "the server has received too many requests and has asked us to try again later (injected)".into(),
            details: Some(serde_json::json!({
                "retryAfterSeconds": i.retry_after_seconds,
                "causes": [{"message": "injected fault"}],
            })),
        },
        504 => ApiError {
            code: 504,
            reason: "Timeout",
            message: "the server was unable to return a response in the time allotted, but may still be processing the request (injected)".into(),
            details: Some(serde_json::json!({"retryAfterSeconds": 1})),
        },
        _ => ApiError::internal("an error on the server (\"injected fault\") has prevented the request from succeeding"),
    }
}

/// Which Lease the request log reports the holder of (`PUT /_sluice/requests`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestLogConfig {
    /// Record requests (off by default: the log holds at most [`REQUEST_LOG_CAP`] entries).
    #[serde(default)]
    pub enabled: bool,
    /// `namespace/name` of the Lease whose holder is stamped on every write.
    #[serde(default)]
    pub lease: Option<String>,
}

/// One request as the log keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoggedRequest {
    pub seq: u64,
    /// Milliseconds since the Unix epoch when the request arrived.
    pub at_ms: i64,
    pub user_agent: String,
    pub verb: String,
    pub group: String,
    pub resource: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subresource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The status code the client got (200 for a watch that opened).
    pub code: u16,
    /// Whether the code was injected.
    pub injected: bool,
    /// For writes, the tracked Lease's `holderIdentity` when the request arrived (`None`:
    /// no holder, or no Lease tracked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_holder: Option<String>,
}

/// The most requests the log keeps; older ones are dropped first.
pub const REQUEST_LOG_CAP: usize = 500_000;

/// The request log.
#[derive(Default)]
pub struct RequestLog {
    /// Mirrors `config.enabled`: when off, a request costs one atomic load.
    on: AtomicBool,
    inner: Mutex<RequestLogState>,
}

#[derive(Default)]
struct RequestLogState {
    config: RequestLogConfig,
    next_seq: u64,
    entries: VecDeque<LoggedRequest>,
}

impl RequestLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, RequestLogState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn configure(&self, config: RequestLogConfig) {
        let mut st = self.lock();
        self.on.store(config.enabled, Ordering::Release);
        st.config = config;
    }

    pub fn config(&self) -> RequestLogConfig {
        self.lock().config.clone()
    }

    /// The tracked Lease as `(namespace, name)`, when the log is on and tracks one.
    pub fn tracked_lease(&self) -> Option<(String, String)> {
        if !self.enabled() {
            return None;
        }
        let st = self.lock();
        if !st.config.enabled {
            return None;
        }
        let (ns, name) = st.config.lease.as_deref()?.split_once('/')?;
        Some((ns.to_string(), name.to_string()))
    }

    pub fn enabled(&self) -> bool {
        self.on.load(Ordering::Acquire)
    }

    /// Appends `entry`, numbering it.
    pub fn push(&self, mut entry: LoggedRequest) {
        let mut st = self.lock();
        if !st.config.enabled {
            return;
        }
        entry.seq = st.next_seq;
        st.next_seq += 1;
        if st.entries.len() >= REQUEST_LOG_CAP {
            st.entries.pop_front();
        }
        st.entries.push_back(entry);
    }

    /// Entries numbered `since` or later, at most `limit` of them.
    pub fn since(&self, since: u64, limit: usize) -> Vec<LoggedRequest> {
        let st = self.lock();
        st.entries
            .iter()
            .filter(|e| e.seq >= since)
            .take(limit)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(verb: &'a str, resource: &'a str) -> Request<'a> {
        Request {
            verb,
            group: "apps",
            resource,
            subresource: None,
            user_agent: "sluice-controller/0.1 (a_1)",
        }
    }

    fn errors_at(rate: f64, code: u16) -> Faults {
        Faults {
            seed: 7,
            errors: vec![ErrorRule {
                on: Match {
                    verbs: vec!["write".into()],
                    ..Default::default()
                },
                rate,
                code,
                retry_after_seconds: 2,
                delay_ms: 50,
                applied: false,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn off_by_default_injects_nothing_and_counts_only_while_on() {
        let inj = Injector::default();
        for _ in 0..100 {
            assert_eq!(
                inj.decide(&req("patch", "replicasets")),
                Decision::default()
            );
        }
        assert_eq!(inj.stats().requests, 0);
        inj.set(errors_at(0.0, 500));
        for _ in 0..10 {
            assert_eq!(
                inj.decide(&req("patch", "replicasets")),
                Decision::default()
            );
        }
        let s = inj.stats();
        assert_eq!((s.requests, s.writes, s.faulted_writes), (10, 10, 0));
        inj.set(Faults::default());
        inj.decide(&req("patch", "replicasets"));
        assert_eq!(inj.stats().requests, 10);
    }

    #[test]
    fn the_same_seed_draws_the_same_faults() {
        let draw = || {
            let inj = Injector::new(errors_at(0.3, 500));
            (0..500)
                .map(|_| inj.decide(&req("create", "pods")).error.is_some())
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(), draw());
        let mut other = errors_at(0.3, 500);
        other.seed = 8;
        let inj = Injector::new(other);
        let third: Vec<bool> = (0..500)
            .map(|_| inj.decide(&req("create", "pods")).error.is_some())
            .collect();
        assert_ne!(draw(), third);
    }

    #[test]
    fn the_rate_is_the_fraction_of_matching_requests_faulted() {
        let inj = Injector::new(errors_at(0.1, 429));
        let hits = (0..20_000)
            .filter(|_| inj.decide(&req("update", "replicasets")).error.is_some())
            .count();
        assert!((1_600..2_400).contains(&hits), "{hits} of 20000 at 10 %");
        // Reads never match a `write` rule.
        assert!((0..1000).all(|_| inj.decide(&req("get", "replicasets")).error.is_none()));
    }

    #[test]
    fn matches_golden_table() {
        let m = |verbs: &[&str], resources: &[&str], agents: &[&str]| Match {
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            resources: resources.iter().map(|s| s.to_string()).collect(),
            user_agents: agents.iter().map(|s| s.to_string()).collect(),
        };
        let status = Request {
            verb: "patch",
            group: "argoproj.io",
            resource: "rollouts",
            subresource: Some("status"),
            user_agent: "sluice-controller/0.1 (x)",
        };
        let table = [
            (m(&[], &[], &[]), true),
            (m(&["write"], &[], &[]), true),
            (m(&["read"], &[], &[]), false),
            (m(&["patch"], &["rollouts"], &[]), true),
            (m(&[], &["rollouts/status"], &[]), true),
            (m(&[], &["rollouts/scale"], &[]), false),
            (m(&[], &["rollouts.argoproj.io"], &[]), true),
            (m(&[], &["rollouts.apps"], &[]), false),
            (m(&[], &[], &["sluice-controller"]), true),
            (m(&[], &[], &["kubectl"]), false),
        ];
        for (rule, want) in table {
            assert_eq!(rule.matches(&status), want, "{rule:?}");
        }
    }

    #[test]
    fn a_429_carries_retry_after_and_a_504_its_delay() {
        let inj = Injector::new(errors_at(1.0, 429));
        let e = inj.decide(&req("patch", "replicasets")).error.unwrap();
        assert_eq!((e.code, e.retry_after_seconds), (429, 2));
        let st = error_for(&e, "apps", "replicasets", "x").status();
        assert_eq!(st["reason"], "TooManyRequests");
        assert_eq!(st["details"]["retryAfterSeconds"], 2);
        let inj = Injector::new(errors_at(1.0, 504));
        let e = inj.decide(&req("patch", "replicasets")).error.unwrap();
        assert_eq!(e.delay, Duration::from_millis(50));
        assert_eq!(
            error_for(&e, "apps", "replicasets", "x").status()["reason"],
            "Timeout"
        );
    }

    #[test]
    fn watch_faults_cut_within_the_range_and_expire() {
        let inj = Injector::new(Faults {
            seed: 1,
            watch: WatchFaults {
                cut_rate: 1.0,
                cut_after_min_ms: 100,
                cut_after_max_ms: 200,
                expire_rate: 1.0,
                ..Default::default()
            },
            ..Default::default()
        });
        for _ in 0..100 {
            let d = inj.decide(&req("watch", "pods"));
            let cut = d.cut_after.unwrap();
            assert!(cut >= Duration::from_millis(100) && cut <= Duration::from_millis(200));
            assert!(d.expire);
        }
        assert_eq!(inj.decide(&req("get", "pods")), Decision::default());
    }

    #[test]
    fn invalid_configurations_name_the_field() {
        let cases = [
            (
                "errors: [{rate: 1.5, code: 500}]",
                "errors[0].rate: must be between 0 and 1",
            ),
            (
                "errors: [{rate: 0.5, code: 404}]",
                "errors[0].code: must be 409, 429, 500 or 504",
            ),
            (
                "errors: [{rate: 0.5, code: 409, applied: true}]",
                "errors[0].applied: only a 500 or 504 can follow a carried-out request",
            ),
            (
                "latency: [{rate: 0.5, minMs: 9, maxMs: 1}]",
                "latency[0].minMs: must not exceed maxMs",
            ),
            (
                "watch: {expireRate: -1}",
                "watch.expireRate: must be between 0 and 1",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(Faults::parse(text).unwrap_err().to_string(), want, "{text}");
        }
        let e = Faults::parse("errors: [{rate: 0.5, code: 500, verbs: [post]}]").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("errors[0].verbs: unknown verb `post`"),
            "{e}"
        );
        assert!(Faults::parse("bogus: 1").is_err());
    }
}
