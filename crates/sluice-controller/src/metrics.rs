//! Prometheus metrics of the controller, named and labelled like upstream Argo Rollouts so
//! dashboards and alerts written for `argo-rollouts` keep working against Sluice.
//!
//! Upstream computes its info gauges at scrape time from informer caches; so does Sluice,
//! from its reflector stores ([`CacheGauges`], run by the scrape hooks of
//! [`Metrics::on_scrape`]), so the registry never holds series for objects that no longer
//! exist. Counters and histograms are kept (as upstream does) because dropping them would
//! turn a deletion into a counter reset.
//!
//! Naming notes:
//! - The exposition is OpenMetrics, where a counter's samples always end in `_total`.
//!   Upstream's `rollout_reconcile_error` has no such suffix, so it is exposed with type
//!   `unknown` to keep the sample name that dashboards query.
//! - `rollout_events_total` and `controller_clientset_k8s_request_total` keep their upstream
//!   sample names (the family is registered without `_total`, which OpenMetrics appends).

mod cache;
mod k8s;

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex, RwLock};

use prometheus_client::encoding::{
    EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet, text::encode,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use sluice_api::analysis::{AnalysisRun, Metric};
use sluice_api::common::AnalysisPhase;
use sluice_api::experiment::Experiment;
use sluice_api::rollout::{Rollout, RolloutConditionType};

pub use cache::CacheGauges;
pub use k8s::{K8sRequestLayer, K8sRequestService, RequestInfo};

/// Upstream's buckets for `rollout_reconcile` (seconds).
pub const RECONCILE_BUCKETS: [f64; 5] = [0.01, 0.15, 0.25, 0.5, 1.0];

/// Buckets for `sluice_rollout_update_duration_seconds`: from 30 s to 8 h, because an update
/// spans pauses and analyses, not just a reconcile.
pub const UPDATE_DURATION_BUCKETS: [f64; 11] = [
    30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0,
];

/// The analysis phases upstream emits one 0/1 series for, per metric.
const METRIC_PHASES: [AnalysisPhase; 6] = [
    AnalysisPhase::Pending,
    AnalysisPhase::Error,
    AnalysisPhase::Failed,
    AnalysisPhase::Successful,
    AnalysisPhase::Running,
    AnalysisPhase::Inconclusive,
];

/// A label value. Series share their values through [`Interner`]: a Rollout's name is one
/// allocation whatever the number of its series, and a reason, verb or phase one for the process.
type Value = Arc<str>;

/// The label values in use. A value is kept while some series holds it; values no series holds
/// any more (a deleted object's name) are dropped when the set has doubled since the last sweep,
/// so a sweep costs O(1) per value interned.
#[derive(Debug, Default)]
struct Interner {
    values: HashSet<Value>,
    swept_at: usize,
}

impl Interner {
    fn get(&mut self, s: &str) -> Value {
        if let Some(v) = self.values.get(s) {
            return v.clone();
        }
        if self.values.len() >= 2 * self.swept_at.max(1024) {
            self.values.retain(|v| Arc::strong_count(v) > 1);
            self.swept_at = self.values.len();
        }
        let v: Value = Arc::from(s);
        self.values.insert(v.clone());
        v
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NsName {
    namespace: Value,
    name: Value,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RolloutInfoLabels {
    namespace: Value,
    name: Value,
    strategy: Value,
    traffic_router: Value,
    phase: Value,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    namespace: Value,
    name: Value,
    phase: Value,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    namespace: Value,
    name: Value,
    r#type: Value,
    reason: Value,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MetricTypeLabels {
    namespace: Value,
    name: Value,
    metric: Value,
    r#type: Value,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MetricPhaseLabels {
    namespace: Value,
    name: Value,
    metric: Value,
    r#type: Value,
    dry_run: Value,
    phase: Value,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct K8sRequestLabels {
    kind: Value,
    namespace: Value,
    name: Value,
    verb: Value,
    status_code: Value,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    namespace: Value,
    name: Value,
    outcome: Value,
    cause: Value,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileErrorLabels {
    controller: Value,
    reason: Value,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DurationLabels {
    namespace: Value,
    name: Value,
    outcome: Value,
}

/// A counter exposed with OpenMetrics type `unknown`, so its sample name carries no `_total`
/// suffix (upstream's `rollout_reconcile_error`).
#[derive(Debug, Default, Clone)]
struct UnsuffixedCounter(Counter);

impl TypedMetric for UnsuffixedCounter {
    const TYPE: MetricType = MetricType::Unknown;
}

impl EncodeMetric for UnsuffixedCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&(self.0.get() as i64))
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Unknown
    }
}

/// `rollout_events_total`, with upstream's labels (namespace, name, type, reason). A Rollout
/// has a series for each Event type and reason it ever had, about eight over an update. As a
/// `Family` each series was a hash-table slot of four labels and a counter behind its own
/// `Arc`: 1.2 KB a Rollout at 10,000 (heaptrack). Here a Rollout is one slot, and each of its
/// series 12 bytes in its list: the index of its (type, reason) and the count.
#[derive(Debug, Default, Clone)]
struct EventCounts(Arc<RwLock<EventCountsInner>>);

/// The index of a (type, reason) in [`EventCountsInner::kinds`], and its count.
type KindCount = (u32, u64);

#[derive(Debug, Default)]
struct EventCountsInner {
    /// Every (type, reason) counted so far; a series names one by its index.
    kinds: Vec<(Value, Value)>,
    by_rollout: HashMap<(Value, Value), Box<[KindCount]>>,
}

impl EventCounts {
    fn inc(&self, rollout: (Value, Value), type_: Value, reason: Value) {
        let mut inner = self.0.write().unwrap_or_else(|p| p.into_inner());
        let kind = match inner
            .kinds
            .iter()
            .position(|(t, r)| *t == type_ && *r == reason)
        {
            Some(i) => i,
            None => {
                inner.kinds.push((type_, reason));
                inner.kinds.len() - 1
            }
        };
        // More kinds than a u32 counts would be a bug upstream of here (reasons are constants).
        let kind = u32::try_from(kind).unwrap_or(u32::MAX);
        let series = inner.by_rollout.entry(rollout).or_default();
        match series.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, count)) => *count += 1,
            None => {
                let mut grown = std::mem::take(series).into_vec();
                grown.push((kind, 1));
                *series = grown.into_boxed_slice();
            }
        }
    }
}

impl EncodeMetric for EventCounts {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let inner = self.0.read().unwrap_or_else(|p| p.into_inner());
        for ((namespace, name), series) in &inner.by_rollout {
            for (kind, count) in series.iter() {
                let Some((type_, reason)) = inner.kinds.get(*kind as usize) else {
                    continue;
                };
                let labels = EventLabels {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    r#type: type_.clone(),
                    reason: reason.clone(),
                };
                encoder
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(count, None)?;
            }
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

/// Histograms with one series per label set (per Rollout, for upstream's `rollout_reconcile`),
/// with fixed bucket bounds. A `Family` of `Histogram`s kept each series behind its own `Arc`'d
/// lock, with its bounds and room for native buckets: ~400 bytes a Rollout at 10,000
/// (heaptrack). Here a series is its sum, its count and one count per bucket.
#[derive(Debug, Clone)]
struct Histograms<L> {
    /// Upper bounds, finite and ascending; `+Inf` is implied.
    bounds: &'static [f64],
    series: Arc<RwLock<HashMap<L, Observations>>>,
}

#[derive(Debug)]
struct Observations {
    sum: f64,
    count: u64,
    /// Per bucket, not cumulative; the last is `+Inf`.
    buckets: Box<[u64]>,
}

impl<L: Clone + Hash + Eq> Histograms<L> {
    fn new(bounds: &'static [f64]) -> Self {
        Histograms {
            bounds,
            series: Arc::default(),
        }
    }

    fn observe(&self, labels: L, v: f64) {
        let mut series = self.series.write().unwrap_or_else(|p| p.into_inner());
        let o = series.entry(labels).or_insert_with(|| Observations {
            sum: 0.0,
            count: 0,
            buckets: vec![0; self.bounds.len() + 1].into_boxed_slice(),
        });
        o.sum += v;
        o.count += 1;
        let bucket = self
            .bounds
            .iter()
            .position(|le| v <= *le)
            .unwrap_or(self.bounds.len());
        o.buckets[bucket] += 1;
    }
}

impl<L> EncodeMetric for Histograms<L>
where
    L: Clone + Hash + Eq + EncodeLabelSet + Debug + Send + Sync + 'static,
{
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let series = self.series.read().unwrap_or_else(|p| p.into_inner());
        let mut buckets: Vec<(f64, u64)> = Vec::with_capacity(self.bounds.len() + 1);
        for (labels, o) in series.iter() {
            buckets.clear();
            buckets.extend(
                self.bounds
                    .iter()
                    .copied()
                    .chain(std::iter::once(f64::INFINITY))
                    .zip(o.buckets.iter().copied()),
            );
            encoder
                .encode_family(labels)?
                .encode_histogram::<NoLabelSet>(o.sum, o.count, &buckets, None)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Gauges owned by one object: replacing the object's series removes the ones it no longer
/// has (a phase change is a new label set, so the old one must go).
struct OwnedGauges<L: Clone + Hash + Eq> {
    family: Family<L, Gauge>,
    owned: Mutex<HashMap<(Value, Value), Vec<L>>>,
}

impl<L> OwnedGauges<L>
where
    L: Clone + Hash + Eq + Debug + EncodeLabelSet + Send + Sync + 'static,
{
    fn new() -> Self {
        OwnedGauges {
            family: Family::default(),
            owned: Mutex::new(HashMap::new()),
        }
    }

    fn replace(&self, key: (Value, Value), series: Vec<(L, i64)>) {
        let mut owned = self.owned.lock().unwrap_or_else(|p| p.into_inner());
        let previous = owned.remove(&key).unwrap_or_default();
        for old in &previous {
            if !series.iter().any(|(l, _)| l == old) {
                self.family.remove(old);
            }
        }
        for (labels, value) in &series {
            self.family.get_or_create(labels).set(*value);
        }
        owned.insert(key, series.into_iter().map(|(l, _)| l).collect());
    }

    fn keys(&self) -> Vec<(Value, Value)> {
        let owned = self.owned.lock().unwrap_or_else(|p| p.into_inner());
        owned.keys().cloned().collect()
    }

    fn forget(&self, key: &(Value, Value)) {
        let mut owned = self.owned.lock().unwrap_or_else(|p| p.into_inner());
        for old in owned.remove(key).unwrap_or_default() {
            self.family.remove(&old);
        }
    }
}

/// How an update ended, for `sluice_rollout_outcomes_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The new revision became stable.
    Completed,
    /// The update was aborted (the change failed).
    Aborted,
}

impl Outcome {
    /// The `outcome` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Aborted => "aborted",
        }
    }
}

/// Why an update was aborted, for the `cause` label; `None` for completed updates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbortCause {
    /// A step or background analysis (or experiment) failed.
    Analysis,
    /// A user aborted (`status.abort` set by a client).
    Manual,
    /// The progress deadline passed with `progressDeadlineAbort`.
    Deadline,
    /// Not aborted.
    None,
}

impl AbortCause {
    /// The `cause` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            AbortCause::Analysis => "analysis",
            AbortCause::Manual => "manual",
            AbortCause::Deadline => "deadline",
            AbortCause::None => "none",
        }
    }

    /// Classifies an aborted Rollout from its Progressing condition: reason
    /// `ProgressDeadlineExceeded` is a deadline; an abort message naming a failed analysis or
    /// experiment (upstream's "Step-based analysis phase failed", "Background analysis phase
    /// failed", "Experiment ... failed") is analysis; any other abort was asked for by a user.
    pub fn classify(reason: &str, message: &str) -> AbortCause {
        if reason == "ProgressDeadlineExceeded" {
            return AbortCause::Deadline;
        }
        let m = message.to_ascii_lowercase();
        if m.contains("analysis phase") || m.contains("experiment") || m.contains("metric ") {
            AbortCause::Analysis
        } else {
            AbortCause::Manual
        }
    }
}

/// Upstream's `strategy` and `traffic_router` label values for a Rollout.
pub fn strategy_and_traffic_router(ro: &Rollout) -> (&'static str, &'static str) {
    let Some(strategy) = &ro.spec.strategy else {
        return ("none", "");
    };
    if strategy.blue_green.is_some() {
        return ("blueGreen", "");
    }
    let Some(canary) = &strategy.canary else {
        return ("none", "");
    };
    let router = match &canary.traffic_routing {
        None => "",
        // Upstream checks in this order and the last match wins; only one is normally set.
        Some(tr) => {
            if tr.app_mesh.is_some() {
                "AppMesh"
            } else if tr.smi.is_some() {
                "SMI"
            } else if tr.nginx.is_some() {
                "Nginx"
            } else if tr.istio.is_some() {
                "Istio"
            } else if tr.ambassador.is_some() {
                "Ambassador"
            } else if tr.alb.is_some() {
                "ALB"
            } else {
                ""
            }
        }
    };
    ("canary", router)
}

/// Upstream's `phase` label of `rollout_info`: a summary of the reconcile state derived from
/// the Progressing and InvalidSpec conditions, not `status.phase`.
pub fn rollout_info_phase(ro: &Rollout) -> &'static str {
    let Some(status) = &ro.status else {
        return "Progressing";
    };
    if status
        .condition(&RolloutConditionType::InvalidSpec)
        .is_some()
    {
        return "InvalidSpec";
    }
    match status
        .condition(&RolloutConditionType::Progressing)
        .map(|c| c.reason.as_str())
    {
        Some("NewReplicaSetAvailable") => "Completed",
        Some("RolloutPaused") => "Paused",
        Some("ReplicaSetCreateError") | Some("ServiceNotFound") => "Error",
        Some("ProgressDeadlineExceeded") => "Timeout",
        Some("RolloutAborted") => "Abort",
        _ => "Progressing",
    }
}

/// Upstream's provider `type` label of an analysis metric.
pub fn metric_provider_type(metric: &Metric) -> &'static str {
    let p = &metric.provider;
    if p.prometheus.is_some() {
        "Prometheus"
    } else if p.job.is_some() {
        "Job"
    } else if p.kayenta.is_some() {
        "Kayenta"
    } else if p.web.is_some() {
        "Web"
    } else if p.datadog.is_some() {
        "Datadog"
    } else if p.wavefront.is_some() {
        "Wavefront"
    } else if p.new_relic.is_some() {
        "NewRelic"
    } else if p.cloud_watch.is_some() {
        "CloudWatch"
    } else if p.graphite.is_some() {
        "Graphite"
    } else if p.influxdb.is_some() {
        "Influxdb"
    } else if p.sky_walking.is_some() {
        "SkyWalking"
    } else if p.plugin.is_some() {
        "RPCPlugin"
    } else {
        "Unknown Provider"
    }
}

/// The controller's metric registry. Share it as `Arc<Metrics>`; every method takes `&self`.
pub struct Metrics {
    registry: Registry,
    rollout_info: OwnedGauges<RolloutInfoLabels>,
    replicas_available: OwnedGauges<NsName>,
    replicas_unavailable: OwnedGauges<NsName>,
    replicas_desired: OwnedGauges<NsName>,
    replicas_updated: OwnedGauges<NsName>,
    reconcile: Histograms<NsName>,
    reconcile_error: Family<NsName, UnsuffixedCounter>,
    reconcile_errors: Family<ReconcileErrorLabels, Counter>,
    events: EventCounts,
    analysis_run_info: OwnedGauges<PhaseLabels>,
    analysis_run_metric_phase: OwnedGauges<MetricPhaseLabels>,
    analysis_run_metric_type: OwnedGauges<MetricTypeLabels>,
    experiment_info: OwnedGauges<PhaseLabels>,
    k8s_requests: Family<K8sRequestLabels, Counter>,
    outcomes: Family<OutcomeLabels, Counter>,
    update_duration: Histograms<DurationLabels>,
    scrape_hooks: Mutex<Vec<(&'static str, ScrapeHook)>>,
    interner: Mutex<Interner>,
}

/// A function run before every scrape (see [`Metrics::on_scrape`]).
pub type ScrapeHook = Box<dyn Fn(&Metrics) + Send + Sync>;

impl Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// The shared copy of a label value.
    fn v(&self, s: &str) -> Value {
        self.interner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(s)
    }

    fn ns_name(&self, ns: &str, name: &str) -> NsName {
        NsName {
            namespace: self.v(ns),
            name: self.v(name),
        }
    }

    /// The key of an object's gauges.
    fn key(&self, ns: &str, name: &str) -> (Value, Value) {
        (self.v(ns), self.v(name))
    }

    /// A registry holding every Sluice metric, all empty.
    pub fn new() -> Self {
        let mut m = Metrics {
            registry: Registry::default(),
            rollout_info: OwnedGauges::new(),
            replicas_available: OwnedGauges::new(),
            replicas_unavailable: OwnedGauges::new(),
            replicas_desired: OwnedGauges::new(),
            replicas_updated: OwnedGauges::new(),
            reconcile: Histograms::new(&RECONCILE_BUCKETS),
            reconcile_error: Family::default(),
            reconcile_errors: Family::default(),
            events: EventCounts::default(),
            analysis_run_info: OwnedGauges::new(),
            analysis_run_metric_phase: OwnedGauges::new(),
            analysis_run_metric_type: OwnedGauges::new(),
            experiment_info: OwnedGauges::new(),
            k8s_requests: Family::default(),
            outcomes: Family::default(),
            update_duration: Histograms::new(&UPDATE_DURATION_BUCKETS),
            scrape_hooks: Mutex::new(Vec::new()),
            interner: Mutex::new(Interner::default()),
        };
        let r = &mut m.registry;
        r.register(
            "rollout_info",
            "Information about rollout.",
            m.rollout_info.family.clone(),
        );
        r.register(
            "rollout_info_replicas_available",
            "The number of available replicas per rollout.",
            m.replicas_available.family.clone(),
        );
        r.register(
            "rollout_info_replicas_unavailable",
            "The number of unavailable replicas per rollout.",
            m.replicas_unavailable.family.clone(),
        );
        r.register(
            "rollout_info_replicas_desired",
            "The number of desired replicas per rollout.",
            m.replicas_desired.family.clone(),
        );
        r.register(
            "rollout_info_replicas_updated",
            "The number of updated replicas per rollout.",
            m.replicas_updated.family.clone(),
        );
        r.register(
            "rollout_reconcile",
            "Rollout reconciliation performance.",
            m.reconcile.clone(),
        );
        r.register(
            "rollout_reconcile_error",
            "Error occurring during the rollout",
            m.reconcile_error.clone(),
        );
        r.register(
            "sluice_reconcile_errors",
            "Failed reconciles by controller (rollout, analysisrun, experiment) and reason.",
            m.reconcile_errors.clone(),
        );
        r.register(
            "rollout_events",
            "Count of rollout events",
            m.events.clone(),
        );
        r.register(
            "analysis_run_info",
            "Information about analysis run.",
            m.analysis_run_info.family.clone(),
        );
        r.register(
            "analysis_run_metric_phase",
            "Information on the duration of a specific metric in the Analysis Run",
            m.analysis_run_metric_phase.family.clone(),
        );
        r.register(
            "analysis_run_metric_type",
            "Information on the type of a specific metric in the Analysis Runs",
            m.analysis_run_metric_type.family.clone(),
        );
        r.register(
            "experiment_info",
            "Information about Experiment.",
            m.experiment_info.family.clone(),
        );
        r.register(
            "controller_clientset_k8s_request",
            "Number of kubernetes requests executed during application reconciliation.",
            m.k8s_requests.clone(),
        );
        r.register(
            "sluice_rollout_outcomes",
            "Finished Rollout updates by outcome (completed, aborted) and abort cause.",
            m.outcomes.clone(),
        );
        r.register(
            "sluice_rollout_update_duration_seconds",
            "Time from the start of a Rollout update to its completion or abort.",
            m.update_duration.clone(),
        );
        m
    }

    /// Sets the info and replica gauges of a Rollout from its spec and status.
    pub fn observe_rollout(&self, ro: &Rollout) {
        let ns = ro.metadata.namespace.as_deref().unwrap_or_default();
        let name = ro.metadata.name.as_deref().unwrap_or_default();
        let (strategy, traffic_router) = strategy_and_traffic_router(ro);
        let info = RolloutInfoLabels {
            namespace: self.v(ns),
            name: self.v(name),
            strategy: self.v(strategy),
            traffic_router: self.v(traffic_router),
            phase: self.v(rollout_info_phase(ro)),
        };
        self.rollout_info
            .replace(self.key(ns, name), vec![(info, 1)]);
        let status = ro.status.clone().unwrap_or_default();
        let replicas = i64::from(status.replicas.unwrap_or(0));
        let available = i64::from(status.available_replicas.unwrap_or(0));
        let one = |v: i64| vec![(self.ns_name(ns, name), v)];
        self.replicas_available
            .replace(self.key(ns, name), one(available));
        self.replicas_unavailable
            .replace(self.key(ns, name), one((replicas - available).max(0)));
        self.replicas_desired
            .replace(self.key(ns, name), one(i64::from(ro.spec.replicas())));
        self.replicas_updated.replace(
            self.key(ns, name),
            one(i64::from(status.updated_replicas.unwrap_or(0))),
        );
    }

    /// Removes a deleted Rollout's info and replica gauges.
    pub fn forget_rollout(&self, ns: &str, name: &str) {
        let key = self.key(ns, name);
        self.rollout_info.forget(&key);
        self.replicas_available.forget(&key);
        self.replicas_unavailable.forget(&key);
        self.replicas_desired.forget(&key);
        self.replicas_updated.forget(&key);
    }

    /// Records how long one reconcile of a Rollout took.
    pub fn reconcile_duration(&self, ns: &str, name: &str, seconds: f64) {
        self.reconcile.observe(self.ns_name(ns, name), seconds);
    }

    /// Counts a reconcile of a Rollout that ended in an error.
    pub fn reconcile_error(&self, ns: &str, name: &str) {
        self.reconcile_error
            .get_or_create(&self.ns_name(ns, name))
            .0
            .inc();
    }

    /// Counts a failed reconcile of any controller (`rollout`, `analysisrun`, `experiment`)
    /// by the `reason` its error gives ([`crate::error::Reason`]). Unlike
    /// `rollout_reconcile_error` it has no per-object labels, so the series stay few whatever
    /// the number of objects, and it covers the AnalysisRun and Experiment controllers too.
    pub fn reconcile_failed(&self, controller: &str, reason: &str) {
        self.reconcile_errors
            .get_or_create(&ReconcileErrorLabels {
                controller: self.v(controller),
                reason: self.v(reason),
            })
            .inc();
    }

    /// Counts a Kubernetes Event emitted for a Rollout (`type` is Normal or Warning).
    pub fn event(&self, ns: &str, name: &str, type_: &str, reason: &str) {
        self.events
            .inc(self.key(ns, name), self.v(type_), self.v(reason));
    }

    /// Sets the info, metric type and metric phase gauges of an AnalysisRun.
    pub fn observe_analysis_run(&self, run: &AnalysisRun) {
        let ns = run.metadata.namespace.as_deref().unwrap_or_default();
        let name = run.metadata.name.as_deref().unwrap_or_default();
        let status = run.status.as_ref();
        let phase = status.map(|s| s.phase.as_str()).unwrap_or_default();
        let phase = if phase.is_empty() { "Pending" } else { phase };
        self.analysis_run_info.replace(
            self.key(ns, name),
            vec![(
                PhaseLabels {
                    namespace: self.v(ns),
                    name: self.v(name),
                    phase: self.v(phase),
                },
                1,
            )],
        );
        let results = status
            .and_then(|s| s.metric_results.as_deref())
            .unwrap_or_default();
        let mut types = Vec::new();
        let mut phases = Vec::new();
        for metric in &run.spec.metrics {
            let type_ = metric_provider_type(metric);
            types.push((
                MetricTypeLabels {
                    namespace: self.v(ns),
                    name: self.v(name),
                    metric: self.v(&metric.name),
                    r#type: self.v(type_),
                },
                1,
            ));
            let result = results.iter().find(|r| r.name == metric.name);
            let current = result.map(|r| r.phase.clone());
            let dry_run = result.and_then(|r| r.dry_run).unwrap_or(false);
            for candidate in METRIC_PHASES {
                let on = match &current {
                    None => candidate == AnalysisPhase::Pending,
                    Some(p) if p.as_str().is_empty() => candidate == AnalysisPhase::Pending,
                    Some(p) => *p == candidate,
                };
                phases.push((
                    MetricPhaseLabels {
                        namespace: self.v(ns),
                        name: self.v(name),
                        metric: self.v(&metric.name),
                        r#type: self.v(type_),
                        dry_run: self.v(if dry_run { "true" } else { "false" }),
                        phase: self.v(candidate.as_str()),
                    },
                    i64::from(on),
                ));
            }
        }
        self.analysis_run_metric_type
            .replace(self.key(ns, name), types);
        self.analysis_run_metric_phase
            .replace(self.key(ns, name), phases);
    }

    /// Removes a deleted AnalysisRun's gauges.
    pub fn forget_analysis_run(&self, ns: &str, name: &str) {
        let key = self.key(ns, name);
        self.analysis_run_info.forget(&key);
        self.analysis_run_metric_type.forget(&key);
        self.analysis_run_metric_phase.forget(&key);
    }

    /// Sets the info gauge of an Experiment (phase Pending until the controller sets one).
    pub fn observe_experiment(&self, exp: &Experiment) {
        let ns = exp.metadata.namespace.as_deref().unwrap_or_default();
        let name = exp.metadata.name.as_deref().unwrap_or_default();
        let phase = exp
            .status
            .as_ref()
            .and_then(|s| s.phase.as_ref())
            .map(|p| p.as_str())
            .filter(|p| !p.is_empty())
            .unwrap_or("Pending");
        self.experiment_info.replace(
            self.key(ns, name),
            vec![(
                PhaseLabels {
                    namespace: self.v(ns),
                    name: self.v(name),
                    phase: self.v(phase),
                },
                1,
            )],
        );
    }

    /// Removes a deleted Experiment's gauge.
    pub fn forget_experiment(&self, ns: &str, name: &str) {
        let key = self.key(ns, name);
        self.experiment_info.forget(&key);
    }

    /// Counts one request to the Kubernetes API. `kind` is the resource (plural), `verb` one
    /// of upstream's (Get, List, Watch, Create, Update, Patch, Delete, DeleteCollection,
    /// Unknown). Like upstream, names are collapsed to `N/A` for lists and for the kinds the
    /// controller creates in bulk, so the series count stays bounded.
    pub fn k8s_request(&self, kind: &str, ns: &str, name: &str, verb: &str, status_code: u16) {
        let collapse = verb == "List"
            || matches!(
                kind,
                "events" | "replicasets" | "analysisruns" | "jobs" | "experiments"
            );
        let (kind, ns, name) = if verb == "Unknown" {
            ("Unknown", "Unknown", "Unknown")
        } else if collapse {
            (kind, ns, "N/A")
        } else {
            (kind, ns, name)
        };
        self.k8s_requests
            .get_or_create(&K8sRequestLabels {
                kind: self.v(kind),
                namespace: self.v(ns),
                name: self.v(name),
                verb: self.v(verb),
                status_code: self.v(&status_code.to_string()),
            })
            .inc();
    }

    /// Records the end of a Rollout update: `cause` is [`AbortCause::None`] for completed
    /// updates; `update_seconds` is the time since the update started, when known.
    pub fn outcome(
        &self,
        ns: &str,
        name: &str,
        outcome: Outcome,
        cause: AbortCause,
        update_seconds: Option<f64>,
    ) {
        let cause = if outcome == Outcome::Completed {
            AbortCause::None
        } else {
            cause
        };
        self.outcomes
            .get_or_create(&OutcomeLabels {
                namespace: self.v(ns),
                name: self.v(name),
                outcome: self.v(outcome.as_str()),
                cause: self.v(cause.as_str()),
            })
            .inc();
        if let Some(seconds) = update_seconds {
            self.update_duration.observe(
                DurationLabels {
                    namespace: self.v(ns),
                    name: self.v(name),
                    outcome: self.v(outcome.as_str()),
                },
                seconds.max(0.0),
            );
        }
    }

    /// A tower layer for the kube client that counts every request in
    /// `controller_clientset_k8s_request_total`.
    pub fn k8s_request_layer(self: &std::sync::Arc<Self>) -> K8sRequestLayer {
        K8sRequestLayer::new(self.clone())
    }

    /// Makes the Rollout gauges describe exactly `rollouts` (for example the controller's
    /// reflector store): each is observed, and every Rollout seen before but absent now is
    /// forgotten. This is how deletions reach the metrics, since a deleted object is never
    /// reconciled again.
    pub fn sync_rollouts<'a>(&self, rollouts: impl IntoIterator<Item = &'a Rollout>) {
        let mut present = std::collections::HashSet::new();
        for ro in rollouts {
            self.observe_rollout(ro);
            present.insert(crate::namespaced_name(&ro.metadata));
        }
        for (ns, name) in self.rollout_info.keys() {
            if !present.contains(&(ns.clone(), name.clone())) {
                self.forget_rollout(&ns, &name);
            }
        }
    }

    /// Like [`Metrics::sync_rollouts`], for AnalysisRuns.
    pub fn sync_analysis_runs<'a>(&self, runs: impl IntoIterator<Item = &'a AnalysisRun>) {
        let mut present = std::collections::HashSet::new();
        for run in runs {
            self.observe_analysis_run(run);
            present.insert(crate::namespaced_name(&run.metadata));
        }
        for (ns, name) in self.analysis_run_info.keys() {
            if !present.contains(&(ns.clone(), name.clone())) {
                self.forget_analysis_run(&ns, &name);
            }
        }
    }

    /// Like [`Metrics::sync_rollouts`], for Experiments.
    pub fn sync_experiments<'a>(&self, experiments: impl IntoIterator<Item = &'a Experiment>) {
        let mut present = std::collections::HashSet::new();
        for exp in experiments {
            self.observe_experiment(exp);
            present.insert(crate::namespaced_name(&exp.metadata));
        }
        for (ns, name) in self.experiment_info.keys() {
            if !present.contains(&(ns.clone(), name.clone())) {
                self.forget_experiment(&ns, &name);
            }
        }
    }

    /// Runs `hook` before every scrape, so info gauges can be refreshed from a cache at the
    /// moment they are read (upstream's collector model), for example
    /// `metrics.on_scrape("rollouts", move |m| m.sync_rollouts(store.state().iter().map(|r| r.as_ref())))`.
    /// A hook registered under a name already used replaces the earlier one: a controller
    /// that loses and regains the lease starts with a new cache, and the old one's hook
    /// must not keep running against a store nothing updates any more.
    pub fn on_scrape(&self, name: &'static str, hook: impl Fn(&Metrics) + Send + Sync + 'static) {
        let mut hooks = self.scrape_hooks.lock().unwrap_or_else(|p| p.into_inner());
        hooks.retain(|(n, _)| *n != name);
        hooks.push((name, Box::new(hook)));
    }

    /// The OpenMetrics text exposition of every metric (after running the scrape hooks).
    pub fn encode(&self) -> String {
        {
            let hooks = self.scrape_hooks.lock().unwrap_or_else(|p| p.into_inner());
            for (_, hook) in hooks.iter() {
                hook(self);
            }
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        encode(&mut out, &self.registry).expect("encoding metrics into a String");
        out
    }
}

#[cfg(test)]
mod tests;
