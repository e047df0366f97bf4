//! The controllers wired to the embedded API server over HTTP, end to end: every test
//! waits on a watched condition with a deadline, never on a fixed sleep.

use std::fmt::Debug;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{Config, run};
use crate::{ClusterConfig, EmbeddedCluster};

const DEADLINE: Duration = Duration::from_secs(20);

struct Harness {
    cluster: EmbeddedCluster,
    client: kube::Client,
    shutdown: CancellationToken,
    controllers: tokio::task::JoinHandle<Result<(), super::WorkloadsError>>,
}

impl Harness {
    async fn start() -> Self {
        Self::start_with(Vec::new()).await
    }

    async fn start_with(failures: Vec<super::simulate::Rule>) -> Self {
        let cluster = EmbeddedCluster::start(ClusterConfig::default())
            .await
            .expect("embedded cluster starts");
        let client = cluster.client();
        let shutdown = CancellationToken::new();
        let cfg = Config {
            pod_ready_delay: Duration::from_millis(150),
            pod_start_delay: Duration::from_millis(50),
            namespace: None,
            failures,
        };
        let controllers = tokio::spawn(run(client.clone(), cfg, shutdown.clone()));
        Self {
            cluster,
            client,
            shutdown,
            controllers,
        }
    }

    fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), "default")
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let res = tokio::time::timeout(DEADLINE, self.controllers)
            .await
            .expect("controllers stop promptly")
            .expect("controller task did not panic");
        res.expect("controllers stop cleanly");
        self.cluster.shutdown().await;
    }

    /// Active (not finished, not deleting) Pods whose names start with `prefix`.
    async fn active_pods(&self, prefix: &str) -> Vec<Pod> {
        let pods: Api<Pod> = self.api();
        pods.list(&ListParams::default())
            .await
            .expect("list pods")
            .items
            .into_iter()
            .filter(|p| {
                p.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.starts_with(prefix))
                    && super::pod_state::is_active(p)
            })
            .collect()
    }
}

/// Waits (on a watch) until `name` satisfies `cond`, failing with `what` after the deadline.
async fn wait_until<K>(api: &Api<K>, name: &str, what: &str, cond: impl Fn(&K) -> bool) -> K
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let waited = tokio::time::timeout(
        DEADLINE,
        await_condition(api.clone(), name, move |o: Option<&K>| o.is_some_and(&cond)),
    )
    .await;
    match waited {
        Ok(Ok(Some(obj))) => obj,
        Ok(other) => panic!("waiting for {name} to be {what}: {other:?}"),
        Err(_) => panic!(
            "{name} did not become {what} within {DEADLINE:?}; last seen: {:#?}",
            api.get(name).await.ok()
        ),
    }
}

fn rs_manifest(
    name: &str,
    replicas: i32,
    min_ready: i32,
    annotations: serde_json::Value,
) -> ReplicaSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "minReadySeconds": min_ready,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": annotations},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}
            }
        }
    }))
    .expect("valid ReplicaSet")
}

fn rs_counts(rs: &ReplicaSet) -> (i32, i32, i32) {
    let s = rs.status.clone().unwrap_or_default();
    (
        s.replicas,
        s.ready_replicas.unwrap_or(0),
        s.available_replicas.unwrap_or(0),
    )
}

#[tokio::test]
async fn replicaset_becomes_available_and_scales_down() {
    let h = Harness::start().await;
    let api: Api<ReplicaSet> = h.api();
    api.create(&PostParams::default(), &rs_manifest("web", 3, 0, json!({})))
        .await
        .expect("create rs");
    let rs = wait_until(&api, "web", "3 available", |rs| rs_counts(rs) == (3, 3, 3)).await;
    assert_eq!(
        rs.status.unwrap().observed_generation,
        rs.metadata.generation
    );

    let pods = h.active_pods("web-").await;
    assert_eq!(pods.len(), 3);
    for p in &pods {
        let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("ReplicaSet", Some(true))
        );
        let status = p.status.as_ref().unwrap();
        assert!(status.pod_ip.as_deref().unwrap().starts_with("10."));
        assert_eq!(p.metadata.name.as_ref().unwrap().len(), "web-".len() + 5);
    }

    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .expect("scale rs");
    wait_until(&api, "web", "scaled to 1", |rs| rs_counts(rs) == (1, 1, 1)).await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while h.active_pods("web-").await.len() != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "surplus pods were not deleted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    h.stop().await;
}

#[tokio::test]
async fn min_ready_seconds_delays_availability() {
    let h = Harness::start().await;
    let api: Api<ReplicaSet> = h.api();
    api.create(
        &PostParams::default(),
        &rs_manifest("slow", 1, 2, json!({})),
    )
    .await
    .expect("create rs");
    let ready = wait_until(&api, "slow", "ready", |rs| rs_counts(rs).1 == 1).await;
    assert_eq!(
        rs_counts(&ready).2,
        0,
        "available before minReadySeconds passed"
    );
    let ready_at = tokio::time::Instant::now();
    wait_until(&api, "slow", "available", |rs| rs_counts(rs).2 == 1).await;
    // Ready times have whole-second precision, so at least one full second must pass.
    assert!(ready_at.elapsed() >= Duration::from_millis(900));
    h.stop().await;
}

#[tokio::test]
async fn never_ready_and_crash_looping_pods_stay_unready() {
    let h = Harness::start().await;
    let api: Api<ReplicaSet> = h.api();
    let pp = PostParams::default();
    api.create(
        &pp,
        &rs_manifest("stuck", 2, 0, json!({"sluice.dev/simulate": "never-ready"})),
    )
    .await
    .expect("create never-ready rs");
    api.create(
        &pp,
        &rs_manifest("crashy", 1, 0, json!({"sluice.dev/simulate": "crash-loop"})),
    )
    .await
    .expect("create crash-loop rs");
    // A normal ReplicaSet started at the same time is the clock: once it is ready, the
    // others have had their ready delay too.
    api.create(&pp, &rs_manifest("control", 1, 0, json!({})))
        .await
        .expect("create control rs");
    wait_until(&api, "control", "ready", |rs| rs_counts(rs) == (1, 1, 1)).await;
    let pods: Api<Pod> = h.api();
    let crashy = h.active_pods("crashy-").await.remove(0);
    let name = crashy.metadata.name.unwrap();
    let crashed = wait_until(&pods, &name, "restarted twice", |p| {
        super::pod_state::restart_count(p) >= 2
    })
    .await;
    let state = &crashed
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0];
    let waiting = state.state.as_ref().and_then(|s| s.waiting.as_ref());
    assert_eq!(
        waiting.and_then(|w| w.reason.as_deref()),
        Some("CrashLoopBackOff")
    );

    let stuck = wait_until(&api, "stuck", "2 replicas", |rs| rs_counts(rs).0 == 2).await;
    assert_eq!(rs_counts(&stuck), (2, 0, 0));
    for p in h.active_pods("stuck-").await {
        assert_eq!(super::pod_state::phase(&p), "Running");
        assert!(!super::pod_state::is_ready(&p));
    }
    assert_eq!(rs_counts(&api.get("crashy").await.unwrap()), (1, 0, 0));
    h.stop().await;
}

fn deployment_manifest(name: &str, replicas: i32, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": image}]}
            }
        }
    }))
    .expect("valid Deployment")
}

fn rolled_out(d: &Deployment, replicas: i32) -> bool {
    let Some(s) = d.status.as_ref() else {
        return false;
    };
    s.observed_generation == d.metadata.generation
        && s.replicas.unwrap_or(0) == replicas
        && s.updated_replicas.unwrap_or(0) == replicas
        && s.available_replicas.unwrap_or(0) == replicas
        && s.conditions.iter().flatten().any(|c| {
            c.type_ == "Progressing" && c.reason.as_deref() == Some("NewReplicaSetAvailable")
        })
}

#[tokio::test]
async fn deployment_rolls_out_a_new_image_and_scales_to_zero_and_back() {
    let h = Harness::start().await;
    let api: Api<Deployment> = h.api();
    api.create(
        &PostParams::default(),
        &deployment_manifest("app", 2, "nginx:1"),
    )
    .await
    .expect("create deployment");
    wait_until(&api, "app", "rolled out", |d| rolled_out(d, 2)).await;

    let image = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}});
    api.patch("app", &PatchParams::default(), &Patch::Strategic(image))
        .await
        .expect("update image");
    let d = wait_until(&api, "app", "rolled out to nginx:2", |d| {
        rolled_out(d, 2)
            && d.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(super::deployment::REVISION))
                .is_some_and(|r| r == "2")
    })
    .await;
    let uid = d.metadata.uid.clone().unwrap();

    let rs_api: Api<ReplicaSet> = h.api();
    let owned = |all: Vec<ReplicaSet>| -> Vec<ReplicaSet> {
        all.into_iter()
            .filter(|r| super::pod_state::controller_of(&r.metadata).is_some_and(|o| o.uid == uid))
            .collect()
    };
    let rss = owned(rs_api.list(&ListParams::default()).await.unwrap().items);
    assert_eq!(rss.len(), 2);
    let mut specs: Vec<i32> = rss
        .iter()
        .map(|r| r.spec.as_ref().unwrap().replicas.unwrap())
        .collect();
    specs.sort();
    assert_eq!(specs, [0, 2]);

    api.patch(
        "app",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 0}})),
    )
    .await
    .expect("scale to 0");
    wait_until(&api, "app", "scaled to 0", |d| {
        let s = d.status.clone().unwrap_or_default();
        s.observed_generation == d.metadata.generation
            && s.replicas == Some(0)
            && s.available_replicas.unwrap_or(0) == 0
    })
    .await;
    let rss = owned(rs_api.list(&ListParams::default()).await.unwrap().items);
    assert!(
        rss.iter()
            .all(|r| r.spec.as_ref().unwrap().replicas == Some(0))
    );

    api.patch(
        "app",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 3}})),
    )
    .await
    .expect("scale to 3");
    wait_until(&api, "app", "back at 3", |d| rolled_out(d, 3)).await;
    h.stop().await;
}

fn job_manifest(name: &str, script: &str, backoff: i32) -> Job {
    job_manifest_with(name, script, backoff, "Never")
}

fn job_manifest_with(name: &str, script: &str, backoff: i32, restart_policy: &str) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "backoffLimit": backoff,
            "template": {
                "spec": {
                    "restartPolicy": restart_policy,
                    "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", script]}]
                }
            }
        }
    }))
    .expect("valid Job")
}

fn has_condition(job: &Job, type_: &str) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

#[tokio::test]
async fn jobs_succeed_and_fail_by_their_interpreted_command() {
    let h = Harness::start().await;
    let api: Api<Job> = h.api();
    let pp = PostParams::default();
    api.create(&pp, &job_manifest("ok", "sleep 0.2; exit 0", 1))
        .await
        .expect("create ok job");
    api.create(&pp, &job_manifest("bad", "exit 3", 1))
        .await
        .expect("create bad job");

    let ok = wait_until(&api, "ok", "Complete", |j| has_condition(j, "Complete")).await;
    let s = ok.status.unwrap();
    assert_eq!(
        (s.succeeded, s.failed.unwrap_or(0), s.active.unwrap_or(0)),
        (Some(1), 0, 0)
    );
    assert!(s.start_time.is_some() && s.completion_time.is_some());
    assert!(has_condition(
        &api.get("ok").await.unwrap(),
        "SuccessCriteriaMet"
    ));

    let bad = wait_until(&api, "bad", "Failed", |j| has_condition(j, "Failed")).await;
    let s = bad.status.clone().unwrap();
    assert_eq!((s.failed, s.succeeded.unwrap_or(0)), (Some(2), 0));
    assert!(has_condition(&bad, "FailureTarget"));
    let pods: Api<Pod> = h.api();
    let failed: Vec<Pod> = pods
        .list(&ListParams::default().labels("job-name=bad"))
        .await
        .unwrap()
        .items;
    assert_eq!(failed.len(), 2);
    for p in failed {
        let term = p.status.unwrap().container_statuses.unwrap()[0]
            .state
            .clone()
            .unwrap()
            .terminated
            .unwrap();
        assert_eq!(term.exit_code, 3);
    }
    h.stop().await;
}

#[tokio::test]
async fn a_settled_cluster_stops_writing() {
    let h = Harness::start().await;
    let rs_api: Api<ReplicaSet> = h.api();
    let d_api: Api<Deployment> = h.api();
    let pp = PostParams::default();
    rs_api
        .create(&pp, &rs_manifest("idle", 2, 0, json!({})))
        .await
        .expect("create rs");
    d_api
        .create(&pp, &deployment_manifest("calm", 2, "nginx:1"))
        .await
        .expect("create deployment");
    wait_until(&rs_api, "idle", "available", |rs| {
        rs_counts(rs) == (2, 2, 2)
    })
    .await;
    wait_until(&d_api, "calm", "rolled out", |d| rolled_out(d, 2)).await;

    let writes = |h: &Harness| {
        h.cluster
            .audit()
            .into_iter()
            // Creations carry no name in the audit log; the Pod counts are checked below.
            .filter(|e| !matches!(e.verb.as_str(), "get" | "list" | "watch" | "create"))
            .filter(|e| !e.name.as_deref().unwrap_or_default().starts_with("clock"))
            .count()
    };
    let before = writes(&h);
    // The clock: a ReplicaSet that needs more than a second to become available.
    rs_api
        .create(&pp, &rs_manifest("clock", 1, 1, json!({})))
        .await
        .expect("create clock rs");
    wait_until(&rs_api, "clock", "available", |rs| rs_counts(rs).2 == 1).await;
    assert_eq!(writes(&h), before, "settled objects were written again");
    assert_eq!(h.active_pods("idle-").await.len(), 2);
    assert_eq!(h.active_pods("calm-").await.len(), 2);
    h.stop().await;
}

#[tokio::test]
async fn on_failure_jobs_fail_once_restarts_reach_the_backoff_limit() {
    let h = Harness::start().await;
    let api: Api<Job> = h.api();
    api.create(
        &PostParams::default(),
        &job_manifest_with("flaky", "exit 1", 2, "OnFailure"),
    )
    .await
    .expect("create job");
    let job = wait_until(&api, "flaky", "Failed", |j| has_condition(j, "Failed")).await;
    let failed = job
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Failed")
        .unwrap();
    assert_eq!(failed.reason.as_deref(), Some("BackoffLimitExceeded"));
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !h.active_pods("flaky-").await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the restarting pod was not deleted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    h.stop().await;
}

#[tokio::test]
async fn a_replicaset_adopts_a_matching_orphan_pod() {
    let h = Harness::start().await;
    let pods: Api<Pod> = h.api();
    let orphan: Pod = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "stray", "namespace": "default", "labels": {"app": "adopt"}},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}
    }))
    .expect("valid Pod");
    pods.create(&PostParams::default(), &orphan)
        .await
        .expect("create orphan");
    // Running means the kubelet, and so the shared cache, has seen it.
    wait_until(&pods, "stray", "running", |p| {
        super::pod_state::phase(p) == "Running"
    })
    .await;

    let api: Api<ReplicaSet> = h.api();
    api.create(
        &PostParams::default(),
        &rs_manifest("adopt", 1, 0, json!({})),
    )
    .await
    .expect("create rs");
    let rs = wait_until(&api, "adopt", "available", |rs| rs_counts(rs) == (1, 1, 1)).await;
    let stray = pods.get("stray").await.expect("orphan still exists");
    let owner = super::pod_state::controller_of(&stray.metadata).expect("adopted");
    assert_eq!(Some(&owner.uid), rs.metadata.uid.as_ref());
    let matching = pods
        .list(&ListParams::default().labels("app=adopt"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(super::pod_state::is_active)
        .count();
    assert_eq!(matching, 1, "no extra Pod was created");
    h.stop().await;
}

#[tokio::test]
async fn evictions_honour_the_pod_disruption_budget() {
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use kube::api::EvictParams;
    let h = Harness::start().await;
    let rs_api: Api<ReplicaSet> = h.api();
    rs_api
        .create(
            &PostParams::default(),
            &rs_manifest("guarded", 3, 0, json!({})),
        )
        .await
        .expect("create rs");
    wait_until(&rs_api, "guarded", "3 available", |rs| {
        rs_counts(rs) == (3, 3, 3)
    })
    .await;
    let pdbs: Api<PodDisruptionBudget> = h.api();
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "guarded"},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "guarded"}}},
    }))
    .unwrap();
    pdbs.create(&PostParams::default(), &pdb).await.unwrap();
    let counts = |p: &PodDisruptionBudget| {
        let s = p.status.clone().unwrap_or_default();
        (
            s.expected_pods,
            s.desired_healthy,
            s.current_healthy,
            s.disruptions_allowed,
        )
    };
    let settled = wait_until(&pdbs, "guarded", "one disruption allowed", |p| {
        counts(p) == (3, 2, 3, 1)
            && p.status.as_ref().unwrap().observed_generation == p.metadata.generation
    })
    .await;
    let condition = &settled.status.unwrap().conditions.unwrap()[0];
    assert_eq!(
        (
            condition.type_.as_str(),
            condition.status.as_str(),
            condition.reason.as_str()
        ),
        ("DisruptionAllowed", "True", "SufficientPods")
    );

    let pods: Api<Pod> = h.api();
    let names: Vec<String> = h
        .active_pods("guarded-")
        .await
        .into_iter()
        .map(|p| p.metadata.name.unwrap())
        .collect();
    pods.evict(&names[0], &EvictParams::default())
        .await
        .expect("the first eviction fits the budget");
    // The budget is spent until the replacement is Ready: the second one is refused. (Over
    // plain HTTP: kube-rs retries a 429 by itself until the budget allows it.)
    let refused = reqwest::Client::new()
        .post(format!(
            "http://{}/api/v1/namespaces/default/pods/{}/eviction",
            h.cluster.addr(),
            names[1]
        ))
        .json(
            &json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": names[1]}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    let status: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(status["reason"], "TooManyRequests");
    assert_eq!(
        status["message"],
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    // The count is the budget's stored status.currentHealthy, as kube-apiserver reports it:
    // 2 once the disruption controller has counted the evicted pod, still 3 before that.
    let cause = &status["details"]["causes"][0];
    assert_eq!(cause["reason"], "DisruptionBudget");
    let message = cause["message"].as_str().unwrap_or_default();
    assert!(
        [2, 3].iter().any(|n| message
            == format!("The disruption budget guarded needs 2 healthy pods and has {n} currently")),
        "{message}"
    );
    assert!(pods.get(&names[1]).await.is_ok(), "the refused pod is kept");
    // Once the ReplicaSet has replaced the evicted pod, the budget allows one again.
    wait_until(&pdbs, "guarded", "healthy again", |p| {
        counts(p) == (3, 2, 3, 1)
    })
    .await;
    pods.evict(&names[1], &EvictParams::default())
        .await
        .expect("evicted once the budget allows it");
    // A pod no budget selects is simply deleted.
    rs_api
        .create(
            &PostParams::default(),
            &rs_manifest("free", 1, 0, json!({})),
        )
        .await
        .unwrap();
    wait_until(&rs_api, "free", "available", |rs| {
        rs_counts(rs) == (1, 1, 1)
    })
    .await;
    let free = h.active_pods("free-").await.pop().unwrap();
    pods.evict(
        free.metadata.name.as_deref().unwrap(),
        &EvictParams::default(),
    )
    .await
    .expect("no budget, no refusal");
    h.stop().await;
}

#[tokio::test]
async fn failures_from_the_simulation_config_map_apply_and_lift_while_the_cluster_runs() {
    use k8s_openapi::api::core::v1::ConfigMap;
    let h = Harness::start().await;
    let cms: Api<ConfigMap> = Api::namespaced(h.client.clone(), "kube-system");
    let cm = |rules: &str| -> ConfigMap {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "sluice-simulation", "namespace": "kube-system"},
            "data": {"failures.yaml": rules},
        }))
        .unwrap()
    };
    cms.create(
        &PostParams::default(),
        &cm("failures:\n- {image: '*:missing', simulate: image-pull-error}\n"),
    )
    .await
    .unwrap();
    let rs_api: Api<ReplicaSet> = h.api();
    let mut rs = rs_manifest("pull", 1, 0, json!({}));
    rs.spec
        .as_mut()
        .unwrap()
        .template
        .as_mut()
        .unwrap()
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .image = Some("nginx:missing".into());
    rs_api.create(&PostParams::default(), &rs).await.unwrap();
    let pods: Api<Pod> = h.api();
    let waiting_reason = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.first())
            .and_then(|c| c.state.as_ref())
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.clone())
    };
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let name = loop {
        let found = h.active_pods("pull-").await.into_iter().find(|p| {
            matches!(
                waiting_reason(p).as_deref(),
                Some("ErrImagePull" | "ImagePullBackOff")
            )
        });
        if let Some(p) = found {
            break p.metadata.name.unwrap();
        }
        assert!(tokio::time::Instant::now() < deadline, "no pull error");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // The image "appears": the rule is lifted and the same Pod starts.
    cms.replace(
        "sluice-simulation",
        &PostParams::default(),
        &cm("failures: []\n"),
    )
    .await
    .unwrap();
    wait_until(&pods, &name, "Ready once the rule is lifted", |p| {
        super::pod_state::is_ready(p)
    })
    .await;
    h.stop().await;
}
