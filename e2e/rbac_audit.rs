//! Every API call the controller makes is allowed by `sluice_controller::rbac::REQUIRED_RBAC`
//! (and so by the ClusterRole in manifests/, which tests/manifests.rs ties to it).
//!
//! The controller runs in-process against the embedded cluster with a client
//! that records each request; a canary is driven through update, promote, abort,
//! retry, promote-full and restart, plus a standalone Experiment with a Service.

use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use sluice_api::rollout::rollout_resource;
use sluice_cluster::{ClusterConfig, EmbeddedCluster, workloads};

/// A discovery request (`/api`, `/apis`, `/apis/{group}[/{version}]`): a non-resource URL
/// every authenticated user may GET (the default `system:discovery` ClusterRole), so no rule
/// of the controller's grants it. The controller asks which route kinds are served.
fn is_discovery(method: &str, path_and_query: &str) -> bool {
    let path = path_and_query.split('?').next().unwrap_or_default();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    method == "GET"
        && match parts.first() {
            Some(&"api") => parts.len() <= 2,
            Some(&"apis") => parts.len() <= 3,
            Some(&"version") => parts.len() == 1,
            _ => false,
        }
}

/// (group, resource-with-subresource, verb) of one request path, as RBAC sees it.
fn rbac_triple(method: &str, path_and_query: &str) -> (String, String, String) {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.first() {
        Some(&"api") => ("", &parts[2..]),
        _ => (parts[1], &parts[3..]),
    };
    // namespaces/{ns}/{resource}/... unless the resource is the namespace itself.
    let rest = if rest.len() >= 3 && rest[0] == "namespaces" {
        &rest[2..]
    } else {
        rest
    };
    let resource = rest.first().copied().unwrap_or("");
    let name = rest.get(1).copied();
    let sub = rest.get(2).copied();
    let full = match sub {
        Some(s) => format!("{resource}/{s}"),
        None => resource.to_string(),
    };
    let watch = query
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1");
    let verb = match (method, name.is_some()) {
        ("GET", _) if watch => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        (other, _) => other,
    };
    (group.to_string(), full, verb.to_string())
}

#[test]
fn discovery_requests_are_told_from_resource_requests() {
    assert!(is_discovery("GET", "/apis"));
    assert!(is_discovery("GET", "/apis/gateway.networking.k8s.io/v1"));
    assert!(is_discovery("GET", "/api/v1"));
    assert!(!is_discovery("GET", "/api/v1/namespaces/a/services/b"));
    assert!(!is_discovery("GET", "/apis/apps/v1/replicasets"));
    assert!(!is_discovery("POST", "/apis"));
}

#[test]
fn path_parsing_matches_rbac_terms() {
    let t = |m, p| rbac_triple(m, p);
    let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        t(
            "PATCH",
            "/apis/argoproj.io/v1alpha1/namespaces/x/rollouts/web/status"
        ),
        s("argoproj.io", "rollouts/status", "patch")
    );
    assert_eq!(
        t(
            "GET",
            "/apis/apps/v1/replicasets?labelSelector=a&watch=true"
        ),
        s("apps", "replicasets", "watch")
    );
    assert_eq!(
        t("GET", "/api/v1/namespaces/x/services/web"),
        s("", "services", "get")
    );
    assert_eq!(
        t("POST", "/api/v1/namespaces/x/pods/p/eviction"),
        s("", "pods/eviction", "create")
    );
    assert_eq!(
        t("GET", "/apis/argoproj.io/v1alpha1/rollouts?limit=1"),
        s("argoproj.io", "rollouts", "list")
    );
}

async fn wait_for(what: &str, mut probe: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !probe().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_controller_call_is_granted_by_the_cluster_role() {
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
    let admin = cluster.client();
    sluice_controller::crds::install(&admin)
        .await
        .expect("CRDs");

    // The controller's client records (method, path) of every request.
    let controller = crate::harness::RecordedController::start(cluster.addr());

    let ns = "default";
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(admin.clone(), ns);
    for name in ["web-stable", "web-canary"] {
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                         "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}});
        services
            .patch(name, &PatchParams::apply("test"), &Patch::Apply(&svc))
            .await
            .unwrap();
    }
    let rollouts: Api<DynamicObject> = Api::namespaced_with(admin.clone(), ns, &rollout_resource());
    let rollout = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "v1"}]}},
                 "strategy": {"canary": {"canaryService": "web-canary", "stableService": "web-stable",
                                         "canaryMetadata": {"labels": {"role": "canary"}},
                                         "steps": [{"setWeight": 50}, {"pause": {}}]}}}
    });
    rollouts
        .patch("web", &PatchParams::apply("test"), &Patch::Apply(&rollout))
        .await
        .unwrap();
    let phase = |rollouts: Api<DynamicObject>| async move {
        let ro = rollouts.get("web").await.unwrap();
        let v = serde_json::to_value(ro).unwrap();
        let observed = v["status"]["observedGeneration"].as_str()
            == Some(&v["metadata"]["generation"].to_string());
        if observed {
            v["status"]["phase"].as_str().unwrap_or("").to_string()
        } else {
            String::new()
        }
    };
    let status_patch = |p: Value| {
        let rollouts = rollouts.clone();
        async move {
            rollouts
                .patch_status("web", &PatchParams::default(), &Patch::Merge(&p))
                .await
                .unwrap()
        }
    };
    let set_image = |image: &str| {
        let rollouts = rollouts.clone();
        let p = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": image}]}}}});
        async move {
            rollouts
                .patch("web", &PatchParams::default(), &Patch::Merge(&p))
                .await
                .unwrap()
        }
    };
    wait_for("Healthy", async || {
        phase(rollouts.clone()).await == "Healthy"
    })
    .await;
    set_image("v2").await;
    wait_for("Paused", async || phase(rollouts.clone()).await == "Paused").await;
    status_patch(json!({"status": {"pauseConditions": null}})).await;
    wait_for("Healthy after promote", async || {
        phase(rollouts.clone()).await == "Healthy"
    })
    .await;
    set_image("v3").await;
    wait_for("Paused", async || phase(rollouts.clone()).await == "Paused").await;
    status_patch(json!({"status": {"abort": true}})).await;
    wait_for("Degraded", async || {
        phase(rollouts.clone()).await == "Degraded"
    })
    .await;
    status_patch(json!({"status": {"abort": false}})).await;
    wait_for("Paused after retry", async || {
        phase(rollouts.clone()).await == "Paused"
    })
    .await;
    status_patch(json!({"status": {"promoteFull": true}})).await;
    wait_for("Healthy after promote-full", async || {
        phase(rollouts.clone()).await == "Healthy"
    })
    .await;
    let restart_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    rollouts
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"restartAt": restart_at}})),
        )
        .await
        .unwrap();
    wait_for("restart done", async || {
        let v = serde_json::to_value(rollouts.get("web").await.unwrap()).unwrap();
        v["status"]["restartedAt"].as_str() == Some(restart_at.as_str())
    })
    .await;

    // A standalone Experiment with a template Service.
    let experiments: Api<DynamicObject> = Api::namespaced_with(
        admin.clone(),
        ns,
        &kube::core::ApiResource::from_gvk_with_plural(
            &kube::core::GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Experiment"),
            "experiments",
        ),
    );
    let exp = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Experiment", "metadata": {"name": "ab"},
        "spec": {"duration": "1s", "scaleDownDelaySeconds": 0, "templates": [{
            "name": "a", "service": {},
            "selector": {"matchLabels": {"exp": "a"}},
            "template": {"metadata": {"labels": {"exp": "a"}}, "spec": {"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 80}]}]}}}]}
    });
    experiments
        .patch("ab", &PatchParams::apply("test"), &Patch::Apply(&exp))
        .await
        .unwrap();
    wait_for("the experiment to finish", async || {
        let v = serde_json::to_value(experiments.get("ab").await.unwrap()).unwrap();
        v["status"]["phase"] == "Successful"
    })
    .await;

    let calls = controller.stop().await;
    cluster.shutdown().await;

    assert!(calls.len() > 20, "the controller made calls: {calls:?}");
    let mut denied = std::collections::BTreeSet::new();
    let mut used = std::collections::BTreeSet::new();
    for (method, path) in calls.iter().filter(|(m, p)| !is_discovery(m, p)) {
        let (group, resource, verb) = rbac_triple(method, path);
        used.insert((group.clone(), resource.clone(), verb.clone()));
        let allowed = sluice_controller::rbac::verbs_for(&group, &resource)
            .is_some_and(|verbs| verbs.contains(&verb.as_str()));
        if !allowed {
            denied.insert(format!("{verb} {group}/{resource} ({method} {path})"));
        }
    }
    assert!(
        denied.is_empty(),
        "calls the ClusterRole does not grant:\n{}",
        denied.into_iter().collect::<Vec<_>>().join("\n")
    );
    for expected in [
        ("argoproj.io", "rollouts/status", "patch"),
        ("apps", "replicasets", "create"),
        ("", "services", "patch"),
    ] {
        assert!(
            used.contains(&(
                expected.0.to_string(),
                expected.1.to_string(),
                expected.2.to_string()
            )),
            "the scenario exercised {expected:?}: {used:?}"
        );
    }
}
