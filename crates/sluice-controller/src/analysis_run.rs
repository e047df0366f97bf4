//! The AnalysisRun controller: the I/O around the pure `analysis::run::plan_run`.
//!
//! One reconcile reads the run's Secrets, asks the planner which measurements are
//! due, takes them (HTTP providers concurrently; Jobs are created, checked or
//! deleted), plans again with what was measured, and writes the status as a
//! merge patch carrying the resourceVersion it read, so a user's `terminate`
//! that lands meanwhile wins (409) and the watch retriggers. Timing is
//! kube-runtime's scheduler: a reconcile ends with `Action::requeue` at the next
//! due measurement, so hundreds of runs cost no task or timer of their own, and
//! the controller's concurrency keeps one slow metric from holding the others.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use super::backoff::Backoff;
use super::events::{self, Publisher};
use super::rollout::Config;
use super::status_patch::merge_diff;
use super::{api_code, object_key};
use crate::error::{ApiCallError, MetricLabel, ReconcileError, RunError};
use crate::metrics::{CacheGauges, Metrics};
use crate::providers::Providers;
use crate::undecoded::Undecoded;
use sluice_api::analysis::AnalysisRun;
use sluice_engine::analysis::args::SecretString;
use sluice_engine::analysis::evaluate::Phase;
use sluice_engine::analysis::job::{ANALYSIS_RUN_UID_LABEL, JOB_NAME_KEY, assess_job};
use sluice_engine::analysis::provider::MetricProvider;
use sluice_engine::analysis::run::{
    DueMeasurement, FinishTimes, MeasurementOutcome, SecretValues, TakenMeasurement, from_time,
    job_to_create, plan_run, required_secrets,
};

/// How many AnalysisRuns are reconciled at once. A reconcile mostly waits on
/// metric providers (HTTP, at most their timeout), so this is well above the
/// CPU count; it bounds the sockets and API requests in flight.
pub const DEFAULT_CONCURRENCY: u16 = 256;

/// Environment variable naming the Prometheus used by metrics without an
/// `address` (upstream's name, so existing deployments keep working).
pub const PROMETHEUS_ADDRESS_ENV: &str = "ARGO_ROLLOUTS_PROMETHEUS_ADDRESS";

/// Shared state of the AnalysisRun reconcilers.
pub struct Context {
    pub client: Client,
    pub providers: Providers,
    /// Jobs created by the job provider (label-selected on the run UID label).
    pub jobs: Store<Job>,
    pub backoff: Backoff,
    pub written: Written,
    pub finishes: Finishes,
    pub events: Arc<Publisher>,
    /// Bounds the Event writes in flight ([`EVENT_CONCURRENCY`]).
    pub event_permits: Arc<tokio::sync::Semaphore>,
    /// Where failed reconciles are counted.
    pub metrics: Option<Arc<Metrics>>,
}

/// How many reconciles' Events are written at once.
pub const EVENT_CONCURRENCY: usize = 32;

/// The exact finish times of each run's latest measurements ([`FinishTimes`]), by run key:
/// the status holds whole seconds, and scheduling from those would measure early and line
/// every run up on the same second.
#[derive(Default)]
pub struct Finishes(Mutex<HashMap<String, FinishTimes>>);

impl Finishes {
    fn get(&self, key: &str) -> FinishTimes {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key).cloned().unwrap_or_default()
    }

    /// Remember what a plan whose status was written returned (nothing: forget the run).
    fn set(&self, key: &str, times: FinishTimes) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if times.is_empty() {
            map.remove(key);
        } else {
            map.insert(key.to_string(), times);
        }
    }
}

/// The copies of runs the controller itself wrote, until the watch cache catches up.
///
/// A run measured every second is written every second; under load the watch
/// event of a write can arrive after the next measurement is due. Rather than
/// wait for it (late measurements) or act on the superseded cached copy (a
/// measurement taken twice), a reconcile that receives the exact cached version
/// our write replaced continues from the object the write returned. Anything
/// newer from the watch (a user's `terminate`) supersedes the memory.
#[derive(Default)]
pub struct Written {
    by_key: Mutex<HashMap<String, WrittenRun>>,
}

struct WrittenRun {
    /// Versions our writes replaced (the cache may still deliver any of them).
    superseded: BTreeSet<String>,
    newest: Arc<AnalysisRun>,
}

impl Written {
    /// Record that our write replaced version `base_rv` (read from the cache at
    /// `cache_rv`) with `newer`.
    fn wrote(&self, key: &str, cache_rv: &str, base_rv: &str, newer: AnalysisRun) {
        let mut map = self.by_key.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.entry(key.to_string()).or_insert_with(|| WrittenRun {
            superseded: BTreeSet::new(),
            newest: Arc::new(newer.clone()),
        });
        entry.superseded.insert(cache_rv.to_string());
        entry.superseded.insert(base_rv.to_string());
        entry.newest = Arc::new(newer);
    }

    /// Our own newer copy of a run the watch delivered at version `cached_rv`, if our
    /// writes superseded that version; `None`: the cached copy is the freshest.
    fn superseding(&self, key: &str, cached_rv: &str) -> Option<Arc<AnalysisRun>> {
        let mut map = self.by_key.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(key) {
            Some(w) if w.superseded.contains(cached_rv) => Some(w.newest.clone()),
            Some(_) => {
                // The cache caught up with our last write, or moved past it.
                map.remove(key);
                None
            }
            None => None,
        }
    }

    fn forget(&self, key: &str) {
        let mut map = self.by_key.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(key);
    }
}

/// The `controller` label of this controller's failures in `sluice_reconcile_errors_total`.
pub const CONTROLLER: &str = "analysisrun";

/// Errors of one reconcile: the controllers' one taxonomy.
pub type Error = ReconcileError;

/// Read the `valueFrom.secretKeyRef` values the run's arguments need. A missing
/// Secret or key is recorded as an error for the planner to report (naming the
/// secret and key, never a value); other API failures fail the reconcile.
async fn read_secrets(client: &Client, run: &AnalysisRun) -> Result<SecretValues, Error> {
    let ns = run.namespace().unwrap_or_default();
    let wanted = required_secrets(run);
    let mut values = SecretValues::new();
    if wanted.is_empty() {
        return Ok(values);
    }
    let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let names: BTreeSet<&str> = wanted.iter().map(|(n, _)| n.as_str()).collect();
    let mut secrets = BTreeMap::new();
    for name in names {
        let secret = api
            .get_opt(name)
            .await
            .map_err(ApiCallError::on("read", format!("secret {ns}/{name}")))?;
        secrets.insert(name.to_string(), secret);
    }
    for (name, k) in wanted {
        let value = match secrets.get(&name).and_then(Option::as_ref) {
            None => Err(format!("secret '{name}' not found in namespace '{ns}'")),
            Some(secret) => secret_value(secret, &k)
                .ok_or_else(|| format!("key '{k}' does not exist in secret '{name}'")),
        };
        values.insert((name, k), value);
    }
    Ok(values)
}

fn secret_value(secret: &Secret, key: &str) -> Option<SecretString> {
    if let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(key)) {
        return Some(SecretString::new(String::from_utf8_lossy(&bytes.0)));
    }
    // An API server folds stringData into data on write; accept it too in case
    // the object came from somewhere that did not.
    secret
        .string_data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|s| SecretString::new(s.clone()))
}

/// Take one due measurement. Never fails the reconcile: an API or provider
/// failure becomes an Error measurement, which counts toward
/// `consecutiveErrorLimit` as upstream does.
async fn take(
    ctx: &Context,
    run: &AnalysisRun,
    due: &DueMeasurement,
    now: DateTime<Utc>,
) -> TakenMeasurement {
    let outcome = match &due.provider.0 {
        MetricProvider::Job(_) => return take_job(ctx, run, due, now).await,
        provider => {
            MeasurementOutcome::from(ctx.providers.measure(&due.metric, provider, now).await)
        }
    };
    TakenMeasurement {
        metric: due.metric.clone(),
        started_at: now,
        finished_at: Utc::now(),
        outcome,
    }
}

/// Take one measurement of a job metric: create its Job, stop it (run terminating), or
/// assess the Job in flight.
async fn take_job(
    ctx: &Context,
    run: &AnalysisRun,
    due: &DueMeasurement,
    now: DateTime<Utc>,
) -> TakenMeasurement {
    let ns = run.namespace().unwrap_or_default();
    let taken = |outcome| TakenMeasurement {
        metric: due.metric.clone(),
        started_at: now,
        finished_at: Utc::now(),
        outcome,
    };
    if let Some((job, measurement)) = job_to_create(run, due, None, now) {
        return create_job(ctx, &ns, &job, due, measurement)
            .await
            .unwrap_or_else(taken);
    }
    let Some(in_flight) = &due.in_flight else {
        return taken(MeasurementOutcome::Error(
            "job measurement has neither a Job to create nor one in flight".into(),
        ));
    };
    let metadata = in_flight.metadata.clone().unwrap_or_default();
    let (job_ns, name) = match sluice_engine::analysis::job::job_reference(&metadata, &ns) {
        Ok(r) => r,
        Err(e) => return taken(MeasurementOutcome::Error(e)),
    };
    if due.terminate {
        return taken(stop_job(ctx, &job_ns, &name).await);
    }
    let job = match read_job(ctx, &job_ns, &name).await {
        Ok(job) => job,
        Err(outcome) => return taken(outcome),
    };
    let pods = job_pods(ctx, run, &job_ns, &job).await;
    let started = in_flight.started_at.as_ref().map(from_time).unwrap_or(now);
    taken(assess_job(&job, &pods, started, now).into())
}

/// Create the Job of a measurement: `Ok` with the in-flight measurement the planner made,
/// `Err` with an Error outcome.
async fn create_job(
    ctx: &Context,
    ns: &str,
    job: &Job,
    due: &DueMeasurement,
    measurement: TakenMeasurement,
) -> Result<TakenMeasurement, MeasurementOutcome> {
    let job_ns = job
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| ns.to_string());
    let name = job.name_any();
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &job_ns);
    match api.create(&PostParams::default(), job).await {
        Ok(_) => {
            debug!(job = %name, metric = %due.metric, "created analysis Job");
            Ok(measurement)
        }
        // A previous reconcile created it but its status write was refused (409):
        // the Job is ours (the name holds the run UID and attempt), so adopt it.
        Err(e) if api_code(&e) == Some(409) => Ok(measurement),
        Err(e) => Err(MeasurementOutcome::Error(format!(
            "creating job {job_ns}/{name}: {e}"
        ))),
    }
}

/// Delete the Job of a terminating run (foreground, so its pods go before it does); the
/// measurement ends Inconclusive.
async fn stop_job(ctx: &Context, job_ns: &str, name: &str) -> MeasurementOutcome {
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), job_ns);
    match api.delete(name, &DeleteParams::foreground()).await {
        Ok(_) => {}
        Err(e) if api_code(&e) == Some(404) => {}
        Err(e) => {
            return MeasurementOutcome::Error(format!("deleting job {job_ns}/{name}: {e}"));
        }
    }
    MeasurementOutcome::Finished {
        phase: Phase::Inconclusive,
        message: None,
    }
}

/// The Job in flight: from the watch cache first, from the API when a Job created moments
/// ago is not in it yet.
async fn read_job(ctx: &Context, job_ns: &str, name: &str) -> Result<Job, MeasurementOutcome> {
    if let Some(job) = ctx.jobs.get(&ObjectRef::new(name).within(job_ns)) {
        return Ok((*job).clone());
    }
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), job_ns);
    match api.get_opt(name).await {
        Ok(Some(job)) => Ok(job),
        Ok(None) => Err(MeasurementOutcome::Error(format!(
            "job {job_ns}/{name} not found"
        ))),
        Err(e) => Err(MeasurementOutcome::Error(format!(
            "reading job {job_ns}/{name}: {e}"
        ))),
    }
}

/// The pods of a running Job, which matter only to spot an image that can never be pulled
/// (none for a finished Job, or when listing fails: the Job's own status decides then).
async fn job_pods(ctx: &Context, run: &AnalysisRun, job_ns: &str, job: &Job) -> Vec<Pod> {
    if job_finished(job) {
        return Vec::new();
    }
    let uid = job.uid().unwrap_or_default();
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), job_ns);
    let selector = format!("{ANALYSIS_RUN_UID_LABEL}={}", run.uid().unwrap_or_default());
    match pod_api.list(&ListParams::default().labels(&selector)).await {
        Ok(list) => list
            .items
            .into_iter()
            .filter(|p| p.owner_references().iter().any(|o| o.uid == uid))
            .collect(),
        Err(e) => {
            warn!(job = %job.name_any(), error = %e, "listing the analysis Job's pods failed");
            Vec::new()
        }
    }
}

fn job_finished(job: &Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.status == "True" && (c.type_ == "Complete" || c.type_ == "Failed"))
        })
}

/// Finished Jobs of `run` (among `jobs`) that no retained measurement in `status`
/// points at any more: measurement retention dropped them, so their Jobs go too.
fn jobs_to_collect(jobs: &[Arc<Job>], run: &AnalysisRun, status: &Value) -> Vec<(String, String)> {
    let uid = run.uid().unwrap_or_default();
    let referenced: BTreeSet<&str> = status["metricResults"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["measurements"].as_array().into_iter().flatten())
        .filter_map(|m| m["metadata"][JOB_NAME_KEY].as_str())
        .collect();
    jobs.iter()
        .filter(|j| {
            j.labels().get(ANALYSIS_RUN_UID_LABEL).map(String::as_str) == Some(uid.as_str())
        })
        .filter(|j| job_finished(j) && !referenced.contains(j.name_any().as_str()))
        .map(|j| (j.namespace().unwrap_or_default(), j.name_any()))
        .collect()
}

/// The requeue for a plan made at `planned_at` that wants another look `after`
/// it, seen from `now` (measuring took time): aim at the same instant.
fn requeue_at(planned_at: DateTime<Utc>, after: Option<Duration>, now: DateTime<Utc>) -> Action {
    match after {
        Some(after) => {
            let at = planned_at + chrono::Duration::from_std(after).unwrap_or_default();
            Action::requeue((at - now).to_std().unwrap_or_default())
        }
        None => Action::await_change(),
    }
}

async fn reconcile(
    cached: Arc<Undecoded<AnalysisRun>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let key = object_key(&*cached);
    if cached.meta().deletion_timestamp.is_some() {
        ctx.written.forget(&key);
        ctx.finishes.set(&key, FinishTimes::default());
        return Ok(Action::await_change());
    }
    let cache_rv = cached.resource_version().unwrap_or_default();
    let run = match ctx.written.superseding(&key, &cache_rv) {
        Some(ours) => ours,
        None => Arc::new(events::decode_or_warn(&ctx.events, &cached).await?),
    };
    let now = Utc::now();
    let completed = run
        .status
        .as_ref()
        .is_some_and(|s| Phase::from_api(&s.phase).is_completed());
    let secrets = if completed {
        SecretValues::new()
    } else {
        read_secrets(&ctx.client, &run).await?
    };
    let finish_times = ctx.finishes.get(&key);
    let first = plan_run(&run, &secrets, &[], &finish_times, now);
    if first.delete {
        return delete_expired(&ctx, &key, &run).await;
    }
    let plan = if first.due.is_empty() {
        first
    } else {
        let taken: Vec<TakenMeasurement> =
            futures::future::join_all(first.due.iter().map(|due| take(&ctx, &run, due, now))).await;
        debug!(measurements = taken.len(), "measured");
        plan_run(&run, &secrets, &taken, &finish_times, now)
    };
    let new = serde_json::to_value(&plan.status).unwrap_or(Value::Null);
    if !write_status(&ctx, &key, &cache_rv, &run, &new, &plan.finish_times).await? {
        // Changed since we read it (a user's terminate, say): the watch event of that
        // change reconciles again; measurements taken are retaken.
        debug!("status write conflicted; waiting for the newer version");
        ctx.backoff.success(&key);
        return Ok(Action::await_change());
    }
    if !plan.events.is_empty() {
        publish_events(&ctx, &plan.events, run.object_ref(&()));
    }
    collect_jobs(&ctx, &run, &new).await;
    ctx.backoff.success(&key);
    Ok(requeue_at(now, plan.requeue_after, Utc::now()))
}

/// `ttlStrategy` expired: delete the run (already gone is fine) and forget it.
async fn delete_expired(ctx: &Context, key: &str, run: &AnalysisRun) -> Result<Action, Error> {
    info!("ttlStrategy expired: deleting the AnalysisRun");
    let ns = run.namespace().unwrap_or_default();
    let name = run.name_any();
    let api: Api<AnalysisRun> = Api::namespaced(ctx.client.clone(), &ns);
    match api.delete(&name, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(e) if api_code(&e) == Some(404) => {}
        Err(e) => {
            return Err(ApiCallError::on("delete", format!("analysisrun {ns}/{name}"))(e).into());
        }
    }
    ctx.backoff.success(key);
    ctx.written.forget(key);
    ctx.finishes.set(key, FinishTimes::default());
    Ok(Action::await_change())
}

/// Write the status fields that changed (`new` is the planned status) as a merge patch of
/// the main resource (there is no status subresource), guarded by the version the run was
/// read at, and remember what was written. `Ok(false)`: the run changed since (409).
async fn write_status(
    ctx: &Context,
    key: &str,
    cache_rv: &str,
    run: &AnalysisRun,
    new: &Value,
    finish_times: &FinishTimes,
) -> Result<bool, Error> {
    let old = serde_json::to_value(run.status.clone().unwrap_or_default()).unwrap_or(Value::Null);
    let Some(diff) = merge_diff(&old, new) else {
        ctx.finishes.set(key, finish_times.clone());
        return Ok(true);
    };
    let ns = run.namespace().unwrap_or_default();
    let name = run.name_any();
    let rv = run.resource_version().unwrap_or_default();
    let api: Api<AnalysisRun> = Api::namespaced(ctx.client.clone(), &ns);
    let body = json!({"metadata": {"resourceVersion": rv}, "status": diff});
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&body))
        .await
    {
        Ok(patched) => {
            ctx.written.wrote(key, cache_rv, &rv, patched);
            ctx.finishes.set(key, finish_times.clone());
            Ok(true)
        }
        Err(e) if api_code(&e) == Some(409) => Ok(false),
        Err(e) => {
            Err(ApiCallError::on("patch status of", format!("analysisrun {ns}/{name}"))(e).into())
        }
    }
}

/// Delete the run's Jobs that measurement retention no longer points at (best effort: a
/// failure is logged and tried again on the next reconcile).
async fn collect_jobs(ctx: &Context, run: &AnalysisRun, status: &Value) {
    for (job_ns, job_name) in jobs_to_collect(&ctx.jobs.state(), run, status) {
        let api: Api<Job> = Api::namespaced(ctx.client.clone(), &job_ns);
        match api.delete(&job_name, &DeleteParams::background()).await {
            Ok(_) => debug!(job = %job_name, "deleted a Job beyond measurement retention"),
            Err(e) if api_code(&e) == Some(404) => {}
            Err(e) => warn!(job = %job_name, error = %e, "deleting an old analysis Job failed"),
        }
    }
}

/// Publish a reconcile's Events, in order, beside the reconcile rather than in it: they are
/// best effort, and awaiting them held a reconcile slot per completing run, so a thousand runs
/// completing together delayed the measurements of the others by up to a second. At most
/// [`EVENT_CONCURRENCY`] reconciles' Events are written at once.
fn publish_events(
    ctx: &Context,
    events: &[sluice_engine::analysis::run::RunEvent],
    reference: k8s_openapi::api::core::v1::ObjectReference,
) {
    let events: Vec<Event> = events
        .iter()
        .map(|ev| Event {
            type_: if ev.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: ev.reason.clone(),
            note: Some(ev.message.clone()),
            action: ev.reason.clone(),
            secondary: None,
        })
        .collect();
    let publisher = ctx.events.clone();
    let permits = ctx.event_permits.clone();
    tokio::spawn(
        async move {
            let Ok(_permit) = permits.acquire_owned().await else {
                return;
            };
            for event in &events {
                if let Err(e) = publisher.publish(event, &reference).await {
                    warn!(reason = %event.reason, error = %e, "recording event failed");
                }
            }
        }
        .in_current_span(),
    );
}

fn error_policy(run: Arc<Undecoded<AnalysisRun>>, err: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoff.failure(&object_key(&*run));
    if let Some(metrics) = &ctx.metrics {
        metrics.reconcile_failed(CONTROLLER, err.metric_label());
    }
    warn!(analysisrun = %run.name_any(), namespace = %run.namespace().unwrap_or_default(), reason = err.metric_label(), error = %err, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Run the AnalysisRun controller until `shutdown` fires.
pub async fn run(client: Client, cfg: Config, shutdown: CancellationToken) -> Result<(), RunError> {
    // Decoded by each run's reconcile, so one malformed run fails only its own.
    let runs: Api<Undecoded<AnalysisRun>> = super::scoped_api(&client, cfg.namespace.as_deref());
    super::require_crd(&runs, "analysisruns.argoproj.io").await?;
    let job_api: Api<Job> = super::scoped_api(&client, cfg.namespace.as_deref());
    let (job_store, job_writer) = reflector::store();
    let job_stream = watcher(
        job_api,
        watcher::Config::default().labels(ANALYSIS_RUN_UID_LABEL),
    )
    .default_backoff()
    .modify(|j: &mut Job| j.metadata.managed_fields = None)
    .reflect(job_writer)
    .touched_objects();
    let providers =
        Providers::new(std::env::var(PROMETHEUS_ADDRESS_ENV).ok()).map_err(RunError::Providers)?;
    let ctx = Arc::new(Context {
        client: client.clone(),
        providers,
        jobs: job_store,
        backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(60)),
        written: Written::default(),
        finishes: Finishes::default(),
        event_permits: Arc::new(tokio::sync::Semaphore::new(EVENT_CONCURRENCY)),
        events: Arc::new(Publisher::new(
            client.clone(),
            events::reporter(),
            cfg.events,
        )),
        metrics: cfg.metrics.clone(),
    });
    let selector = cfg.instance_selector();
    info!(namespace = ?cfg.namespace, selector = %selector, "analysisrun controller starting");
    let controller = Controller::new(runs, watcher::Config::default().labels(&selector));
    if let Some(metrics) = &cfg.metrics {
        let store = controller.store();
        let gauges = CacheGauges::analysis_runs();
        metrics.on_scrape("analysis_runs", move |m| {
            gauges.sync(m, store.state().iter().map(|o| o.as_ref()))
        });
    }
    controller
        .with_config(controller::Config::default().concurrency(DEFAULT_CONCURRENCY))
        .owns_stream(job_stream)
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(
            |run, ctx| {
                let span = info_span!("reconcile", analysisrun = %run.name_any(), namespace = %run.namespace().unwrap_or_default());
                crate::own_task::on_own_task(reconcile(run, ctx).instrument(span))
            },
            error_policy,
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
    info!("analysisrun controller stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn run(uid: &str) -> AnalysisRun {
        let mut r = AnalysisRun::new("r", Default::default());
        r.metadata.namespace = Some("ns".into());
        r.metadata.uid = Some(uid.into());
        r
    }

    fn job(name: &str, uid: &str, condition: Option<&str>) -> Arc<Job> {
        Arc::new(Job {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                labels: Some([(ANALYSIS_RUN_UID_LABEL.to_string(), uid.to_string())].into()),
                ..Default::default()
            },
            spec: None,
            status: condition.map(|c| JobStatus {
                conditions: Some(vec![JobCondition {
                    type_: c.into(),
                    status: "True".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        })
    }

    #[test]
    fn only_finished_jobs_of_the_run_that_left_retention_are_collected() {
        let jobs = vec![
            job("u1.m.1", "u1", Some("Complete")),
            job("u1.m.2", "u1", Some("Failed")),
            job("u1.m.3", "u1", None),
            job("u2.m.1", "u2", Some("Complete")),
        ];
        let status = json!({"metricResults": [{"name": "m", "measurements": [
            {"phase": "Failed", "metadata": {"job-name": "u1.m.2"}},
            {"phase": "Running", "metadata": {"job-name": "u1.m.3"}}
        ]}]});
        assert_eq!(
            jobs_to_collect(&jobs, &run("u1"), &status),
            vec![("ns".to_string(), "u1.m.1".to_string())],
            "retained (m.2), running (m.3) and other runs' Jobs stay"
        );
    }

    #[test]
    fn requeue_aims_at_the_planned_instant_even_after_slow_measurements() {
        let planned = DateTime::from_timestamp(1_000, 0).unwrap();
        let later = planned + chrono::Duration::milliseconds(300);
        assert_eq!(
            requeue_at(planned, Some(Duration::from_secs(1)), later),
            Action::requeue(Duration::from_millis(700))
        );
        assert_eq!(
            requeue_at(planned, Some(Duration::from_millis(100)), later),
            Action::requeue(Duration::ZERO),
            "an instant already passed is due at once"
        );
        assert_eq!(requeue_at(planned, None, later), Action::await_change());
    }

    fn at(rv: &str, step: &str) -> Arc<AnalysisRun> {
        let mut r = run("u1");
        r.metadata.resource_version = Some(rv.into());
        r.metadata.annotations = Some([("step".to_string(), step.to_string())].into());
        Arc::new(r)
    }

    impl Written {
        /// The freshest copy of a run the watch delivered as `cached`.
        fn freshest(&self, key: &str, cached: Arc<AnalysisRun>) -> Arc<AnalysisRun> {
            let rv = cached.metadata.resource_version.clone().unwrap_or_default();
            self.superseding(key, &rv).unwrap_or(cached)
        }
    }

    fn step(r: &AnalysisRun) -> &str {
        &r.annotations()["step"]
    }

    #[test]
    fn a_lagging_cache_is_replaced_by_our_own_writes_until_it_catches_up() {
        let w = Written::default();
        assert_eq!(step(&w.freshest("ns/r", at("1", "cache"))), "cache");
        w.wrote("ns/r", "1", "1", (*at("2", "ours-1")).clone());
        assert_eq!(step(&w.freshest("ns/r", at("1", "cache"))), "ours-1");
        // A second write based on our first, while the cache still holds 1.
        w.wrote("ns/r", "1", "2", (*at("3", "ours-2")).clone());
        assert_eq!(step(&w.freshest("ns/r", at("1", "cache"))), "ours-2");
        assert_eq!(
            step(&w.freshest("ns/r", at("2", "cache"))),
            "ours-2",
            "our first write arriving late is still older than our second"
        );
        assert_eq!(step(&w.freshest("ns/r", at("3", "cache"))), "cache");
        assert_eq!(
            step(&w.freshest("ns/r", at("1", "cache"))),
            "cache",
            "once caught up the memory is gone"
        );
    }

    #[test]
    fn a_newer_foreign_version_wins_over_our_write() {
        let w = Written::default();
        w.wrote("ns/r", "1", "1", (*at("2", "ours")).clone());
        assert_eq!(
            step(&w.freshest("ns/r", at("5", "user-terminate"))),
            "user-terminate"
        );
    }

    #[test]
    fn secret_values_come_from_data_then_string_data() {
        let secret = Secret {
            data: Some([("a".to_string(), ByteString(b"from-data".to_vec()))].into()),
            string_data: Some([("b".to_string(), "from-string-data".to_string())].into()),
            ..Default::default()
        };
        assert_eq!(secret_value(&secret, "a").unwrap().expose(), "from-data");
        assert_eq!(
            secret_value(&secret, "b").unwrap().expose(),
            "from-string-data"
        );
        assert!(secret_value(&secret, "c").is_none());
    }
}
