//! What the controller asks the API server for over a routed canary: counts of requests, not
//! times. The controller runs in-process against the embedded cluster with a client that
//! records every request, and a canary routed through an HTTPRoute is walked through
//! `setWeight 20 → pause → setWeight 60 → pause → done`, checking at each pause that the route
//! holds the weight (a step completes on the route as observed).
//!
//! The reads of the Services and the route come from the controller's watch caches: a GET is
//! made only to verify one of its own writes the cache does not show yet, so GETs of Services
//! and routes are bounded by the writes to them, not by the number of reconciles (before the
//! caches, every reconcile GET both Services and the route: ~15 Service GETs per Rollout over
//! one mass update in `sluice bench`).

use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use sluice_api::rollout::rollout_resource;
use sluice_cluster::{ClusterConfig, EmbeddedCluster, workloads};

async fn wait_for(what: &str, mut probe: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !probe().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn http_routes() -> ApiResource {
    ApiResource {
        group: "gateway.networking.k8s.io".into(),
        version: "v1".into(),
        api_version: "gateway.networking.k8s.io/v1".into(),
        kind: "HTTPRoute".into(),
        plural: "httproutes".into(),
    }
}

/// (method, path without query) of the recorded calls that name one object of `resource`.
fn object_calls<'a>(
    calls: &'a [(String, String)],
    resource: &'a str,
) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
    calls.iter().filter_map(move |(m, pq)| {
        let path = pq.split('?').next().unwrap_or_default();
        let watch = pq.contains("watch=true") || pq.contains("watch=1");
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let at = parts.iter().position(|p| *p == resource)?;
        // A named object: `{resource}/{name}` (not a list or a watch).
        (!watch && parts.len() > at + 1).then_some((m.as_str(), path))
    })
}

/// The embedded cluster with pods Ready 100 ms after they start, and Sluice's CRDs.
async fn start_cluster() -> EmbeddedCluster {
    let cluster = EmbeddedCluster::start(ClusterConfig {
        port: 0,
        workloads: Some(workloads::Config {
            pod_ready_delay: Duration::from_millis(100),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .expect("embedded cluster");
    sluice_controller::crds::install(&cluster.client())
        .await
        .expect("CRDs");
    cluster
}

/// Rollout `web`: its phase once the controller has observed its generation (empty before),
/// its step index, and the whole object.
async fn observed_state(rollouts: &Api<DynamicObject>) -> (String, Option<i64>, Value) {
    let v = serde_json::to_value(rollouts.get("web").await.unwrap()).unwrap();
    let observed = v["status"]["observedGeneration"].as_str()
        == Some(&v["metadata"]["generation"].to_string());
    let phase = if observed {
        v["status"]["phase"].as_str().unwrap_or("").to_string()
    } else {
        String::new()
    };
    (phase, v["status"]["currentStepIndex"].as_i64(), v)
}

/// What `kubectl argo rollouts promote` sends at a pause.
async fn promote(rollouts: &Api<DynamicObject>) {
    rollouts
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"pauseConditions": null}})),
        )
        .await
        .unwrap();
}

/// A new image for Rollout `web`: an update.
async fn set_image(rollouts: &Api<DynamicObject>, image: &str) {
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": image}]}}}});
    rollouts
        .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routed_canary_reads_its_services_and_route_from_the_watch_caches() {
    let cluster = start_cluster().await;
    let admin = cluster.client();
    let crd_path =
        crate::harness::repo_root().join("../shared/crds/gateway-api-v1.6.1/httproutes.yaml");
    let text = std::fs::read_to_string(&crd_path)
        .unwrap_or_else(|e| panic!("the Gateway API CRD {}: {e}", crd_path.display()));
    let crd: CustomResourceDefinition = serde_yaml::from_str(&text).expect("a CRD");
    Api::<CustomResourceDefinition>::all(admin.clone())
        .create(&PostParams::default(), &crd)
        .await
        .expect("installing the HTTPRoute CRD");
    let ns = "default";
    let routes: Api<DynamicObject> = Api::namespaced_with(admin.clone(), ns, &http_routes());
    wait_for("HTTPRoutes to be served", async || {
        routes.list(&Default::default()).await.is_ok()
    })
    .await;

    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(admin.clone(), ns);
    for name in ["web-stable", "web-canary"] {
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                         "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}});
        services
            .patch(name, &PatchParams::apply("test"), &Patch::Apply(&svc))
            .await
            .unwrap();
    }
    let route = json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "web"},
        "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [
            {"name": "web-stable", "port": 80, "weight": 100},
            {"name": "web-canary", "port": 80, "weight": 0}]}]}
    });
    routes
        .patch("web", &PatchParams::apply("test"), &Patch::Apply(&route))
        .await
        .unwrap();

    // The controller's client records (method, path) of every request.
    let controller = crate::harness::RecordedController::start(cluster.addr());

    let rollouts: Api<DynamicObject> = Api::namespaced_with(admin.clone(), ns, &rollout_resource());
    let rollout = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "v1"}]}},
                 "strategy": {"canary": {"canaryService": "web-canary", "stableService": "web-stable",
                     "trafficRouting": {"plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": "web", "namespace": ns}}},
                     "scaleDownDelaySeconds": 0,
                     "steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}, {"pause": {}}]}}}
    });
    rollouts
        .patch("web", &PatchParams::apply("test"), &Patch::Apply(&rollout))
        .await
        .unwrap();
    let state = |rollouts: Api<DynamicObject>| async move {
        let (phase, index, _) = observed_state(&rollouts).await;
        (phase, index)
    };
    let weights = |routes: Api<DynamicObject>| async move {
        let v = serde_json::to_value(routes.get("web").await.unwrap()).unwrap();
        let refs = v["spec"]["rules"][0]["backendRefs"].as_array().cloned();
        let weight = |name: &str| {
            refs.iter()
                .flatten()
                .find(|r| r["name"] == name)
                .and_then(|r| r["weight"].as_i64())
        };
        (weight("web-stable"), weight("web-canary"))
    };

    wait_for("Healthy", async || {
        state(rollouts.clone()).await.0 == "Healthy"
    })
    .await;
    let before_update = controller.sent();
    set_image(&rollouts, "v2").await;
    wait_for("the pause after setWeight 20", async || {
        state(rollouts.clone()).await == ("Paused".into(), Some(1))
    })
    .await;
    assert_eq!(
        weights(routes.clone()).await,
        (Some(80), Some(20)),
        "paused at setWeight 20: the route holds 80/20"
    );
    promote(&rollouts).await;
    wait_for("the pause after setWeight 60", async || {
        state(rollouts.clone()).await == ("Paused".into(), Some(3))
    })
    .await;
    assert_eq!(weights(routes.clone()).await, (Some(40), Some(60)));
    promote(&rollouts).await;
    wait_for("Healthy after the update", async || {
        state(rollouts.clone()).await.0 == "Healthy"
    })
    .await;
    // Healthy comes with all traffic on the new version through the canary Service; once
    // the stable Service points at it too, the route goes back to 100/0.
    wait_for("the route back on the stable Service", async || {
        weights(routes.clone()).await == (Some(100), Some(0))
    })
    .await;

    let calls = controller.stop().await;
    cluster.shutdown().await;

    let calls = calls[before_update..].to_vec();
    let reconciles_wrote_status = calls
        .iter()
        .filter(|(m, p)| m == "PATCH" && p.contains("/rollouts/web/status"))
        .count();
    assert!(
        reconciles_wrote_status >= 4,
        "the update moved through several reconciles: {calls:#?}"
    );
    for resource in ["services", "httproutes"] {
        let mut gets = 0;
        let mut writes = 0;
        for (method, _) in object_calls(&calls, resource) {
            match method {
                "GET" => gets += 1,
                "PATCH" | "PUT" | "POST" | "DELETE" => writes += 1,
                _ => {}
            }
        }
        eprintln!("{resource}: {gets} GETs, {writes} writes over the update");
        // The canary Service's selector at the start, the stable Service's at the end; the
        // route at each setWeight (80/20, 40/60), all to the canary at the end (0/100), and
        // back to the stable Service once it selects the new pods (100/0).
        let want = if resource == "services" { 2 } else { 4 };
        assert_eq!(
            writes, want,
            "{resource} writes over the update: {calls:#?}"
        );
        // Each write may be verified by a GET while the watch has not delivered it; a
        // reconcile that finds the cache caught up reads nothing. (Twice the writes leaves
        // room for a second reconcile that runs before the watch event arrives.)
        assert!(
            gets <= 2 * writes,
            "{gets} GETs of {resource} for {writes} writes: reads come from the watch cache \
             except to verify a write; calls: {calls:#?}"
        );
    }
}

/// The bench's canary (`setWeight 20 → pause → setWeight 60 → pause → setWeight 80`, 2
/// replicas, maxSurge 1, maxUnavailable 0) walked through one whole update by promotes: the
/// controller's writes other than Events, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrouted_update_costs_the_fewest_writes_each_step_needs() {
    let cluster = start_cluster().await;
    let admin = cluster.client();
    let ns = "default";
    let controller = crate::harness::RecordedController::start(cluster.addr());
    let rollouts: Api<DynamicObject> = Api::namespaced_with(admin.clone(), ns, &rollout_resource());
    let rollout = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "v1"}]}},
                 "strategy": {"canary": {"maxSurge": 1, "maxUnavailable": 0,
                     "steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}, {"pause": {}}, {"setWeight": 80}]}}}
    });
    rollouts
        .patch("web", &PatchParams::apply("test"), &Patch::Apply(&rollout))
        .await
        .unwrap();
    let state = |rollouts: Api<DynamicObject>| async move { observed_state(&rollouts).await };
    wait_for("Healthy", async || {
        state(rollouts.clone()).await.0 == "Healthy"
    })
    .await;
    let before_update = controller.sent();
    set_image(&rollouts, "v2").await;
    for step in [1, 3] {
        wait_for("a pause", async || {
            let (phase, index, _) = state(rollouts.clone()).await;
            phase == "Paused" && index == Some(step)
        })
        .await;
        promote(&rollouts).await;
    }
    wait_for(
        "completed: Healthy, the old ReplicaSet scaled to 0",
        async || {
            let (phase, index, v) = state(rollouts.clone()).await;
            phase == "Healthy"
                && index == Some(5)
                && v["status"]["stableRS"] == v["status"]["currentPodHash"]
                && v["status"]["replicas"] == 2
        },
    )
    .await;
    let calls = controller.stop().await;
    cluster.shutdown().await;
    let calls = calls[before_update..].to_vec();
    let writes: Vec<(&str, &str)> = calls
        .iter()
        .filter(|(m, p)| m != "GET" && !p.contains("/events"))
        .map(|(m, p)| (m.as_str(), p.split('?').next().unwrap_or_default()))
        .collect();
    let count = |method: &str, pred: &dyn Fn(&str) -> bool| {
        writes
            .iter()
            .filter(|(m, p)| *m == method && pred(p))
            .count()
    };
    let rs_create = count("POST", &|p| p.ends_with("/replicasets"));
    let rs_scales = count("PATCH", &|p| p.contains("/replicasets/"));
    let revision = count("PATCH", &|p| p.ends_with("/rollouts/web"));
    let status = count("PATCH", &|p| p.ends_with("/rollouts/web/status"));
    eprintln!("writes over the update: {writes:#?}");
    // The ReplicaSets: the canary created (at 0, as upstream), scaled to 1 at 20 %, to 2 at
    // 60 % with the stable down to 1 (maxSurge 1, maxUnavailable 0), and the old one to 0 at
    // the end (80 % of 2 is already met). The Rollout: upstream's revision annotation.
    assert_eq!((rs_create, rs_scales, revision), (1, 4, 1), "{writes:#?}");
    // Status: the update observed, the first pause, its promote acknowledged, the second
    // pause, its promote acknowledged (the last setWeight step is already met), the stable
    // set (upstream's next sync, so that its Events keep their order), Healthy. Replica
    // counts between these ride along with them (held up to a second); on a loaded machine a
    // held count can outlast its window and be written alone, hence the margin of two.
    assert!(
        (7..=9).contains(&status),
        "{status} status writes over the update (7 decisions): {writes:#?}"
    );
    let total = writes.len();
    assert_eq!(
        total,
        rs_create + rs_scales + revision + status,
        "{writes:#?}"
    );
}
