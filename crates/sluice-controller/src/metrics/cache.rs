//! Info gauges that follow a controller's cache at scrape time.
//!
//! Upstream computes `rollout_info`, `analysis_run_info`, `experiment_info` and their
//! siblings from its informer caches when Prometheus scrapes. Sluice does the same from its
//! reflector stores, but decodes an object only when its resourceVersion changed since the
//! previous scrape: a scrape of 10,000 unchanged objects decodes none. Objects gone from the
//! cache lose their series, which is how deletions reach the metrics (a deleted object is
//! never reconciled again).

use std::collections::HashMap;
use std::sync::Mutex;

use kube::Resource;

use super::Metrics;
use crate::cached_rollout::CachedRollout;
use crate::error::DecodeError;
use crate::undecoded::Undecoded;
use sluice_api::analysis::AnalysisRun;
use sluice_api::experiment::Experiment;

/// Sets the gauges of one cached object (decoding it as needed).
type Observe<T> = fn(&Metrics, &T) -> Result<(), DecodeError>;
/// Removes the gauges of the object with this namespace and name.
type Forget = fn(&Metrics, &str, &str);

/// One family of per-object gauges kept in step with a cache.
pub struct CacheGauges<T> {
    /// (namespace, name) → the resourceVersion last observed ("" when it did not decode,
    /// so it is retried at the next scrape).
    seen: Mutex<HashMap<(String, String), String>>,
    observe: Observe<T>,
    forget: Forget,
    kind: &'static str,
}

impl<T> std::fmt::Debug for CacheGauges<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheGauges")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl CacheGauges<CachedRollout> {
    /// `rollout_info` and the `rollout_info_replicas_*` gauges.
    pub fn rollouts() -> Self {
        Self::new(
            "Rollout",
            |m, cached| {
                m.observe_rollout(&cached.rollout()?);
                Ok(())
            },
            Metrics::forget_rollout,
        )
    }
}

impl CacheGauges<Undecoded<AnalysisRun>> {
    /// `analysis_run_info`, `analysis_run_metric_type` and `analysis_run_metric_phase`.
    pub fn analysis_runs() -> Self {
        Self::new(
            "AnalysisRun",
            |m, run| {
                m.observe_analysis_run(&run.decode()?);
                Ok(())
            },
            Metrics::forget_analysis_run,
        )
    }
}

impl CacheGauges<Undecoded<Experiment>> {
    /// `experiment_info`.
    pub fn experiments() -> Self {
        Self::new(
            "Experiment",
            |m, exp| {
                m.observe_experiment(&exp.decode()?);
                Ok(())
            },
            Metrics::forget_experiment,
        )
    }
}

impl<T: Resource> CacheGauges<T> {
    fn new(kind: &'static str, observe: Observe<T>, forget: Forget) -> Self {
        CacheGauges {
            seen: Mutex::new(HashMap::new()),
            observe,
            forget,
            kind,
        }
    }

    /// Observe the objects that changed since the last call and forget those no longer in
    /// `objects`.
    pub fn sync<'a>(&self, metrics: &Metrics, objects: impl IntoIterator<Item = &'a T>)
    where
        T: 'a,
    {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let mut present = HashMap::with_capacity(seen.len());
        for obj in objects {
            let meta = obj.meta();
            let key = (
                meta.namespace.clone().unwrap_or_default(),
                meta.name.clone().unwrap_or_default(),
            );
            let rv = meta.resource_version.clone().unwrap_or_default();
            let observed = if seen.get(&key) == Some(&rv) {
                rv
            } else {
                match (self.observe)(metrics, obj) {
                    Ok(()) => rv,
                    Err(e) => {
                        tracing::warn!(kind = self.kind, name = %key.1, namespace = %key.0, error = %e, "cached object did not decode; its gauges are retried at the next scrape");
                        String::new()
                    }
                }
            };
            present.insert(key, observed);
        }
        for (ns, name) in seen.keys().filter(|k| !present.contains_key(*k)) {
            (self.forget)(metrics, ns, name);
        }
        *seen = present;
    }
}
