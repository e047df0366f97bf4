//! `sluice bench cluster`: the embedded API server's throughput and memory.
//!
//! The server runs in this process (API only, no simulated workloads) and is driven over
//! HTTP on 127.0.0.1 by ordinary kube clients, so every request pays the same JSON
//! encoding, routing and locking a controller's would. The clients share the process and
//! the two cores with the server: the rates are therefore a lower bound for the server on
//! its own. The watch consumers and the label-group lists decode only what they check (each
//! item's `metadata.resourceVersion`) instead of building whole `ConfigMap`s: the server's
//! work is the same either way, and the bench's own decoding is not what is measured. Memory is the OS's figure for the whole process (VmRSS/VmHWM), reported as
//! the growth over the bench's own baseline measured before the server starts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchParams};
use kube::core::{Request, WatchEvent};
use serde::Deserialize;
use serde_json::{Value, json};

use super::procfs;
use super::report::{Report, Target};

const NAMESPACE: &str = "bench";
/// Labels spread the stored objects over this many groups; a list reads one group.
const GROUPS: usize = 100;

/// How big a run is.
#[derive(Debug, Clone)]
pub struct Params {
    pub objects: usize,
    /// Rollout-sized objects (ReplicaSets) stored after the ConfigMaps.
    pub replica_sets: usize,
    pub clients: usize,
    pub watches: usize,
    pub duration: Duration,
}

fn config_map(name: &str, group: usize) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"group": format!("g{group}"), "app": "bench"}},
        // About 300 bytes of data: a small but not empty ConfigMap.
        "data": {
            "settings": "x".repeat(200),
            "owner": "sluice-bench",
            "index": name,
        }
    }))
    .expect("a valid ConfigMap")
}

/// A ReplicaSet as the Rollout controller makes one for `bench controller`'s Rollouts (owner
/// reference, pod-template-hash labels, revision annotations, a one-container template); the
/// server adds the pod defaults and managedFields, as it does for the controller's. Its owner
/// is the ConfigMap `owner` (an owner that exists, so the collector keeps it; the server
/// runs no Rollout kind here).
fn replica_set(i: usize, owner: &ConfigMap) -> Value {
    let name = format!("ro-{i}");
    let hash = format!("{:x}", 0x5d4c_3b2a_u64 + i as u64);
    json!({
        "metadata": {
            "name": format!("{name}-{hash}"),
            "labels": {"app": name, "rollouts-pod-template-hash": hash},
            "annotations": {
                "rollout.argoproj.io/revision": "1",
                "rollout.argoproj.io/desired-replicas": "0",
            },
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "ConfigMap", "name": owner.metadata.name,
                "uid": owner.metadata.uid,
                "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": {
            "replicas": 0,
            "minReadySeconds": 0,
            "selector": {"matchLabels": {"app": name, "rollouts-pod-template-hash": hash}},
            "template": {
                "metadata": {"labels": {"app": name, "rollouts-pod-template-hash": hash}},
                "spec": {"containers": [{"name": "app", "image": "registry.example/bench:1.0"}]},
            },
        },
    })
}

/// Creates `n` objects made by `make` through `api`, `clients` at a time; the summed size of
/// the created objects' JSON as the server returned them (the size GET serves), or the number
/// of failures.
async fn fill<K, F, Fut>(api: &Api<K>, n: usize, make: F, clients: usize) -> Result<usize, usize>
where
    K: Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Option<K>>,
{
    let sizes: Vec<Option<usize>> = futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            let o = make(i);
            async move {
                let o = o.await?;
                let made = api.create(&PostParams::default(), &o).await.ok()?;
                serde_json::to_vec(&made).ok().map(|v| v.len())
            }
        })
        .buffer_unordered(clients.max(1))
        .collect()
        .await;
    match sizes.iter().filter(|s| s.is_none()).count() {
        0 => Ok(sizes.into_iter().flatten().sum()),
        failed => Err(failed),
    }
}

/// Adds the memory figure of one fill: the RSS growth it caused, per object, and its
/// ratio to the objects' own JSON.
fn report_fill(report: &mut Report, what: &str, n: usize, json_bytes: usize, grown_kib: u64) {
    let n = n.max(1) as f64;
    let per = grown_kib as f64 * 1024.0 / n;
    report.add(
        &format!("server bytes per stored {what}"),
        per,
        "bytes",
        Target::None,
        &format!(
            "RSS growth over the fill / objects; the object's JSON as served is {:.0} bytes \
             ({:.1}x)",
            json_bytes as f64 / n,
            per * n / json_bytes.max(1) as f64
        ),
    );
}

#[derive(Default)]
struct Counters {
    writes: AtomicU64,
    reads: AtomicU64,
    errors: AtomicU64,
    watch_events: AtomicU64,
    /// Watch events whose resourceVersion was not above the previous one on that watch, and
    /// listed items without a resourceVersion: a server fault, reported beside the rates.
    out_of_order: AtomicU64,
}

/// What the bench reads of a listed or watched object: its resourceVersion. Every other
/// field is skipped by the decoder without being built.
#[derive(Clone, Debug, Deserialize)]
struct Light {
    metadata: LightMeta,
}

#[derive(Clone, Debug, Deserialize)]
struct LightMeta {
    #[serde(rename = "resourceVersion", default)]
    resource_version: String,
}

#[derive(Debug, Deserialize)]
struct LightList {
    items: Vec<Light>,
}

fn config_maps() -> Request {
    Request::new(format!("/api/v1/namespaces/{NAMESPACE}/configmaps"))
}

/// The resourceVersion as the number the embedded server issues; `None` when it is not one.
fn rv_number(l: &Light) -> Option<u64> {
    l.metadata.resource_version.parse().ok()
}

/// One client's loop: writes (create, update, merge patch) and reads (get, list of one
/// label group) in equal numbers until `until`.
async fn client_loop(
    api: Api<ConfigMap>,
    client: kube::Client,
    id: usize,
    objects: usize,
    until: Instant,
    c: Arc<Counters>,
) {
    let mut n = 0usize;
    let mut last: Option<ConfigMap> = None;
    while Instant::now() < until {
        n += 1;
        let ok = match n % 6 {
            0 => {
                let name = format!("mix-{id}-{n}");
                match api
                    .create(&PostParams::default(), &config_map(&name, n % GROUPS))
                    .await
                {
                    Ok(cm) => {
                        last = Some(cm);
                        c.writes.fetch_add(1, Ordering::Relaxed);
                        true
                    }
                    Err(_) => false,
                }
            }
            1 | 4 => {
                let name = format!("cm-{}", (id * 7919 + n * 104_729) % objects.max(1));
                let r = api.get(&name).await.is_ok();
                c.reads.fetch_add(u64::from(r), Ordering::Relaxed);
                r
            }
            2 => match last.take() {
                Some(mut cm) => {
                    let name = cm.metadata.name.clone().unwrap_or_default();
                    cm.data
                        .get_or_insert_with(Default::default)
                        .insert("step".into(), n.to_string());
                    match api.replace(&name, &PostParams::default(), &cm).await {
                        Ok(cm) => {
                            last = Some(cm);
                            c.writes.fetch_add(1, Ordering::Relaxed);
                            true
                        }
                        Err(_) => false,
                    }
                }
                None => true,
            },
            3 => {
                let lp = ListParams::default().labels(&format!("group=g{}", (id + n) % GROUPS));
                let listed = match config_maps().list(&lp) {
                    Ok(req) => client.request::<LightList>(req).await.ok(),
                    Err(_) => None,
                };
                if let Some(l) = &listed {
                    let bad = l.items.iter().filter(|i| rv_number(i).is_none()).count();
                    c.out_of_order.fetch_add(bad as u64, Ordering::Relaxed);
                }
                let r = listed.is_some();
                c.reads.fetch_add(u64::from(r), Ordering::Relaxed);
                r
            }
            _ => {
                let name = format!("cm-{}", (id * 31 + n) % objects.max(1));
                let p = json!({"metadata": {"annotations": {"bench/touched": n.to_string()}}});
                let r = api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&p))
                    .await
                    .is_ok();
                c.writes.fetch_add(u64::from(r), Ordering::Relaxed);
                r
            }
        };
        if !ok {
            c.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Run the benchmark.
pub async fn run(p: Params) -> anyhow::Result<Report> {
    let mut report = Report::new(
        "cluster",
        json!({
            "objects": p.objects, "clients": p.clients, "watches": p.watches,
            "seconds": p.duration.as_secs_f64(),
        }),
    );
    let base = procfs::memory("self").unwrap_or_default();
    let cluster = sluice_cluster::EmbeddedCluster::start(sluice_cluster::ClusterConfig {
        port: 0,
        ..Default::default()
    })
    .await
    .context("starting the embedded cluster")?;
    let client = cluster.client();
    let idle = procfs::memory("self").unwrap_or_default();
    report.add(
        "RSS of the bench process before the server",
        base.rss_kib as f64 / 1024.0,
        "MiB",
        Target::None,
        "baseline (runtime, client)",
    );
    report.add(
        "server RSS growth, idle",
        idle.rss_kib.saturating_sub(base.rss_kib) as f64 / 1024.0,
        "MiB",
        Target::None,
        "VmRSS after start minus baseline",
    );

    let ns: Api<Namespace> = Api::all(client.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": NAMESPACE}}))?,
    )
    .await
    .context("creating the bench namespace")?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);

    // Fill the store.
    let t = Instant::now();
    let json_bytes = fill(
        &api,
        p.objects,
        |i| futures::future::ready(Some(config_map(&format!("cm-{i}"), i % GROUPS))),
        p.clients,
    )
    .await
    .map_err(|failures| {
        anyhow::anyhow!(
            "{failures} of {} creates failed while filling the store",
            p.objects
        )
    })?;
    let fill_secs = t.elapsed().as_secs_f64();
    report.add(
        "creates/s while filling the store",
        p.objects as f64 / fill_secs,
        "writes/s",
        Target::None,
        &format!(
            "{} ConfigMaps, {} clients, no watches",
            p.objects, p.clients
        ),
    );
    let filled = procfs::memory("self").unwrap_or_default();
    report.add(
        &format!("server RSS growth with {} stored objects", p.objects),
        filled.rss_kib.saturating_sub(base.rss_kib) as f64 / 1024.0,
        "MiB",
        Target::None,
        "VmRSS minus baseline; includes the watch history (last 50,000 events)",
    );
    report_fill(
        &mut report,
        "ConfigMap",
        p.objects,
        json_bytes,
        filled.rss_kib.saturating_sub(idle.rss_kib),
    );
    if p.replica_sets > 0 {
        let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), NAMESPACE);
        // Each ReplicaSet is owned by a ConfigMap, looked up as it is made (ConfigMaps are
        // reused when there are more ReplicaSets).
        let owners = &api;
        let n_owners = p.objects;
        if n_owners == 0 {
            anyhow::bail!("--replica-sets needs --objects above 0: ConfigMaps own the ReplicaSets");
        }
        let shaped = |i: usize| async move {
            let owner = owners.get(&format!("cm-{}", i % n_owners)).await.ok()?;
            serde_json::from_value(replica_set(i, &owner)).ok()
        };
        let rs_json = fill(&rs_api, p.replica_sets, shaped, p.clients)
            .await
            .map_err(|failures| {
                anyhow::anyhow!(
                    "{failures} of {} ReplicaSet creates failed while filling the store",
                    p.replica_sets
                )
            })?;
        let after = procfs::memory("self").unwrap_or_default();
        report_fill(
            &mut report,
            "ReplicaSet (Rollout-sized)",
            p.replica_sets,
            rs_json,
            after.rss_kib.saturating_sub(filled.rss_kib),
        );
    }

    // Open the watches from the current resourceVersion.
    let rv = api
        .list_metadata(&ListParams::default().limit(1))
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let counters = Arc::new(Counters::default());
    let stop = tokio_util::sync::CancellationToken::new();
    let mut watchers = Vec::new();
    for _ in 0..p.watches {
        let req = config_maps()
            .watch(&WatchParams::default().timeout(290), &rv)
            .context("building a watch request")?;
        let stream = client
            .request_events::<Light>(req)
            .await
            .context("opening a watch")?;
        let c = counters.clone();
        let stop = stop.clone();
        watchers.push(tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            let mut last = 0u64;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    ev = stream.next() => match ev {
                        Some(Ok(WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o))) => {
                            c.watch_events.fetch_add(1, Ordering::Relaxed);
                            match rv_number(&o) {
                                Some(rv) if rv > last => last = rv,
                                _ => { c.out_of_order.fetch_add(1, Ordering::Relaxed); }
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => return,
                    }
                }
            }
        }));
    }
    let open = watchers.iter().filter(|w| !w.is_finished()).count();

    // The mixed workload.
    let cpu0 = procfs::cpu_seconds("self").unwrap_or(0.0);
    let t = Instant::now();
    let until = t + p.duration;
    let tasks: Vec<_> = (0..p.clients)
        .map(|id| {
            tokio::spawn(client_loop(
                api.clone(),
                client.clone(),
                id,
                p.objects,
                until,
                counters.clone(),
            ))
        })
        .collect();
    for task in tasks {
        task.await?;
    }
    let secs = t.elapsed().as_secs_f64();
    let cpu = procfs::cpu_seconds("self").unwrap_or(0.0) - cpu0;
    // Let the watchers drain what was already sent before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    for w in watchers {
        let _ = w.await;
    }
    let writes = counters.writes.load(Ordering::Relaxed) as f64;
    let reads = counters.reads.load(Ordering::Relaxed) as f64;
    let note = format!(
        "{} clients, {open} open watches, {} stored objects, {:.0} s",
        p.clients,
        p.objects,
        p.duration.as_secs_f64()
    );
    report.add(
        "mixed: writes/s",
        writes / secs,
        "writes/s",
        Target::AtLeast(2000.0),
        &note,
    );
    report.add(
        "mixed: reads/s",
        reads / secs,
        "reads/s",
        Target::None,
        "get + list of 100",
    );
    report.add(
        "mixed: watch events delivered/s",
        counters.watch_events.load(Ordering::Relaxed) as f64 / secs,
        "events/s",
        Target::None,
        "summed over all watches (each write fans out to every watch)",
    );
    report.add(
        "mixed: watch events out of order",
        counters.out_of_order.load(Ordering::Relaxed) as f64,
        "events",
        Target::None,
        "a watch event not newer than the one before it, or a listed item without a \
         resourceVersion; 0 unless the server is wrong",
    );
    report.add(
        "mixed: failed requests",
        counters.errors.load(Ordering::Relaxed) as f64,
        "requests",
        Target::None,
        "",
    );
    report.add(
        "mixed: CPU of the whole process",
        cpu / secs,
        "cores",
        Target::None,
        "server + clients + watch consumers share the process",
    );
    report.add(
        "mixed: CPU per write",
        if writes > 0.0 {
            cpu * 1000.0 / writes
        } else {
            0.0
        },
        "ms",
        Target::None,
        "process CPU over writes: includes the reads and every watch's decoding of each \
         event, so it is comparable across runs on a machine with other load",
    );
    let end = procfs::memory("self").unwrap_or_default();
    report.add(
        "peak RSS of the process (VmHWM)",
        end.hwm_kib as f64 / 1024.0,
        "MiB",
        Target::None,
        "server + clients",
    );
    cluster.shutdown().await;
    Ok(report)
}
