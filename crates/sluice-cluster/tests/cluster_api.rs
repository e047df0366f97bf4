//! Conformance of the embedded cluster's API server, driven through kube-rs and raw HTTP.

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use sluice_cluster::{ClusterConfig, EmbeddedCluster};

async fn start() -> EmbeddedCluster {
    EmbeddedCluster::start(ClusterConfig::default())
        .await
        .expect("cluster starts")
}

fn url(c: &EmbeddedCluster, path: &str) -> String {
    format!("http://{}{path}", c.addr())
}

async fn raw(
    c: &EmbeddedCluster,
    method: reqwest::Method,
    path: &str,
    ct: &str,
    body: &str,
) -> (u16, Value) {
    let r = reqwest::Client::new()
        .request(method, url(c, path))
        .header("content-type", ct)
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    let code = r.status().as_u16();
    let text = r.text().await.expect("body");
    (
        code,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn get(c: &EmbeddedCluster, path: &str) -> (u16, Value) {
    raw(c, reqwest::Method::GET, path, "application/json", "").await
}

fn cm(name: &str, labels: Value) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}),
    )
    .unwrap()
}

/// Polls `f` until it returns true, failing after `secs`.
async fn eventually<F, Fut>(secs: u64, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

const ROLLOUT_CRD: &str = r#"{
  "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
  "metadata": {"name": "rollouts.argoproj.io"},
  "spec": {"group": "argoproj.io", "scope": "Namespaced",
    "names": {"kind": "Rollout", "listKind": "RolloutList", "plural": "rollouts", "singular": "rollout", "shortNames": ["ro"]},
    "versions": [{"name": "v1alpha1", "served": true, "storage": true,
      "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.HPAReplicas", "labelSelectorPath": ".status.selector"}},
      "additionalPrinterColumns": [{"name": "Desired", "type": "integer", "jsonPath": ".spec.replicas"}, {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}],
      "schema": {"openAPIV3Schema": {"type": "object", "properties": {
        "spec": {"type": "object", "properties": {"replicas": {"type": "integer", "default": 1}, "paused": {"type": "boolean"}, "strategy": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}},
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}]}}"#;

async fn install_rollouts(c: &EmbeddedCluster) -> Api<DynamicObject> {
    let (code, body) = raw(
        c,
        reqwest::Method::POST,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        "application/json",
        ROLLOUT_CRD,
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Rollout"),
        "rollouts",
    );
    Api::namespaced_with(c.client(), "default", &ar)
}

fn rollout(name: &str) -> DynamicObject {
    serde_json::from_value(json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": name}, "spec": {"replicas": 2, "unknown": true}})).unwrap()
}

#[tokio::test]
async fn stale_resource_version_is_a_conflict_with_the_apiserver_message() {
    let c = start().await;
    let ro = install_rollouts(&c).await;
    let created = ro
        .create(&PostParams::default(), &rollout("x"))
        .await
        .unwrap();
    let mut first = created.clone();
    first.data["spec"]["replicas"] = json!(3);
    ro.replace("x", &PostParams::default(), &first)
        .await
        .unwrap();
    let mut stale = created.clone();
    stale.data["spec"]["replicas"] = json!(5);
    let err = ro
        .replace("x", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    let kube::Error::Api(s) = err else {
        panic!("api error expected")
    };
    assert_eq!(s.code, 409);
    assert_eq!(s.reason, "Conflict");
    assert_eq!(
        s.message,
        "Operation cannot be fulfilled on rollouts.argoproj.io \"x\": the object has been modified; please apply your changes to the latest version and try again"
    );
    assert_eq!(
        ro.get("x").await.unwrap().data["spec"]["replicas"],
        3,
        "nothing changed"
    );
    c.shutdown().await;
}

#[tokio::test]
async fn custom_resources_refuse_unconditional_updates() {
    let c = start().await;
    let ro = install_rollouts(&c).await;
    let mut created = ro
        .create(&PostParams::default(), &rollout("x"))
        .await
        .unwrap();
    created.metadata.resource_version = None;
    let err = ro
        .replace("x", &PostParams::default(), &created)
        .await
        .unwrap_err();
    let kube::Error::Api(s) = err else { panic!() };
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        s.message,
        "rollouts.argoproj.io \"x\" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"
    );
    // Built-ins allow them.
    let cms: Api<ConfigMap> = Api::default_namespaced(c.client());
    cms.create(&PostParams::default(), &cm("u", json!({})))
        .await
        .unwrap();
    cms.replace("u", &PostParams::default(), &cm("u", json!({"x": "y"})))
        .await
        .unwrap();
    c.shutdown().await;
}

#[tokio::test]
async fn merge_patch_carrying_a_stale_resource_version_conflicts() {
    let c = start().await;
    let ro = install_rollouts(&c).await;
    let created = ro
        .create(&PostParams::default(), &rollout("x"))
        .await
        .unwrap();
    let rv = created.metadata.resource_version.clone().unwrap();
    ro.patch(
        "x",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"paused": true}})),
    )
    .await
    .unwrap();
    let stale = json!({"metadata": {"resourceVersion": rv}, "spec": {"replicas": 9}});
    let err = ro
        .patch("x", &PatchParams::default(), &Patch::Merge(stale))
        .await
        .unwrap_err();
    let kube::Error::Api(s) = err else { panic!() };
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
    let now = ro.get("x").await.unwrap();
    let fresh = json!({"metadata": {"resourceVersion": now.metadata.resource_version}, "spec": {"replicas": 9}});
    let ok = ro
        .patch("x", &PatchParams::default(), &Patch::Merge(fresh))
        .await
        .unwrap();
    assert_eq!(ok.data["spec"]["replicas"], 9);
    c.shutdown().await;
}

#[tokio::test]
async fn custom_resources_are_pruned_defaulted_and_generation_tracks_spec_only() {
    let c = start().await;
    let ro = install_rollouts(&c).await;
    let mut r = rollout("x");
    r.data["spec"].as_object_mut().unwrap().remove("replicas");
    let created = ro.create(&PostParams::default(), &r).await.unwrap();
    assert!(created.data["spec"].get("unknown").is_none(), "pruned");
    assert_eq!(created.data["spec"]["replicas"], 1, "defaulted");
    assert_eq!(created.metadata.generation, Some(1));
    let s = ro
        .patch_status(
            "x",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Healthy"}, "spec": {"replicas": 7}})),
        )
        .await
        .unwrap();
    assert_eq!(
        s.metadata.generation,
        Some(1),
        "status writes do not bump generation"
    );
    assert_eq!(s.data["spec"]["replicas"], 1, "status writes ignore spec");
    let m = ro
        .patch(
            "x",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}, "status": {"phase": "X"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        m.metadata.generation,
        Some(1),
        "metadata does not bump generation"
    );
    assert_eq!(
        m.data["status"]["phase"], "Healthy",
        "main writes ignore status"
    );
    let sp = ro
        .patch(
            "x",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"paused": true}})),
        )
        .await
        .unwrap();
    assert_eq!(sp.metadata.generation, Some(2));
    c.shutdown().await;
}

#[tokio::test]
async fn scale_subresource_follows_the_crd_paths() {
    let c = start().await;
    let ro = install_rollouts(&c).await;
    ro.create(&PostParams::default(), &rollout("x"))
        .await
        .unwrap();
    ro.patch_status(
        "x",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"HPAReplicas": 2, "selector": "app=x"}})),
    )
    .await
    .unwrap();
    let (code, scale) = get(
        &c,
        "/apis/argoproj.io/v1alpha1/namespaces/default/rollouts/x/scale",
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["spec"]["replicas"], 2);
    assert_eq!(scale["status"], json!({"replicas": 2, "selector": "app=x"}));
    let (code, out) = raw(
        &c,
        reqwest::Method::PATCH,
        "/apis/argoproj.io/v1alpha1/namespaces/default/rollouts/x/scale",
        "application/merge-patch+json",
        r#"{"spec":{"replicas":5}}"#,
    )
    .await;
    assert_eq!(code, 200, "{out}");
    assert_eq!(ro.get("x").await.unwrap().data["spec"]["replicas"], 5);
    let deploys: Api<Deployment> = Api::default_namespaced(c.client());
    let d: Deployment = serde_json::from_value(json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"app": "d"}}, "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})).unwrap();
    deploys.create(&PostParams::default(), &d).await.unwrap();
    let s = deploys.get_scale("d").await.unwrap();
    assert_eq!(s.spec.unwrap().replicas, Some(1));
    assert_eq!(s.status.unwrap().selector.as_deref(), Some("app=d"));
    c.shutdown().await;
}

#[tokio::test]
async fn label_and_field_selectors_filter_lists() {
    let c = start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(c.client());
    for (n, l) in [
        ("a", json!({"app": "web", "tier": "fe"})),
        ("b", json!({"app": "api"})),
        ("c", json!({"app": "db", "tier": "be"})),
    ] {
        cms.create(&PostParams::default(), &cm(n, l)).await.unwrap();
    }
    let names = |l: kube::core::ObjectList<ConfigMap>| {
        l.items
            .into_iter()
            .map(|c| c.metadata.name.unwrap())
            .collect::<Vec<_>>()
    };
    let cases = [
        ("app=web", vec!["a"]),
        ("app in (web,db)", vec!["a", "c"]),
        ("app notin (web)", vec!["b", "c"]),
        ("!tier", vec!["b"]),
        ("tier", vec!["a", "c"]),
        ("app!=api,tier", vec!["a", "c"]),
    ];
    for (sel, want) in cases {
        let got = names(cms.list(&ListParams::default().labels(sel)).await.unwrap());
        assert_eq!(got, want, "{sel}");
    }
    assert_eq!(
        names(
            cms.list(&ListParams::default().fields("metadata.name=b"))
                .await
                .unwrap()
        ),
        vec!["b"]
    );
    assert_eq!(
        names(
            cms.list(&ListParams::default().fields("metadata.name!=b"))
                .await
                .unwrap()
        ),
        vec!["a", "c"]
    );
    let all: Api<ConfigMap> = Api::all(c.client());
    assert_eq!(
        names(
            all.list(&ListParams::default().fields("metadata.namespace=default"))
                .await
                .unwrap()
        )
        .len(),
        3
    );
    let (code, body) = get(
        &c,
        "/api/v1/namespaces/default/configmaps?fieldSelector=spec.x%3Dy",
    )
    .await;
    assert_eq!((code, body["reason"].as_str()), (400, Some("BadRequest")));
    c.shutdown().await;
}

#[tokio::test]
async fn limit_and_continue_paginate_without_gaps() {
    let c = start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(c.client());
    for i in 0..7 {
        cms.create(&PostParams::default(), &cm(&format!("c{i}"), json!({})))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut list_rv: Option<String> = None;
    for _ in 0..10 {
        let mut lp = ListParams::default().limit(3);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = cms.list(&lp).await.unwrap();
        assert!(page.items.len() <= 3);
        // Every page reports the first page's resourceVersion, even after other writes.
        let rv = page.metadata.resource_version.clone();
        assert_eq!(
            list_rv.get_or_insert(rv.clone().unwrap()),
            rv.as_ref().unwrap()
        );
        cms.create(
            &PostParams::default(),
            &cm(&format!("a{}", seen.len()), json!({})),
        )
        .await
        .unwrap();
        seen.extend(page.items.into_iter().map(|c| c.metadata.name.unwrap()));
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen, (0..7).map(|i| format!("c{i}")).collect::<Vec<_>>());
    c.shutdown().await;
}

#[tokio::test]
async fn watch_resumes_from_a_resource_version_and_sends_bookmarks() {
    let c = start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(c.client());
    let a = cms
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let rv = a.metadata.resource_version.unwrap();
    cms.create(&PostParams::default(), &cm("b", json!({})))
        .await
        .unwrap();
    cms.delete("a", &DeleteParams::default()).await.unwrap();
    let mut stream = cms
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .unwrap()
        .boxed();
    let mut kinds = Vec::new();
    let deadline = tokio::time::sleep(Duration::from_secs(8));
    tokio::pin!(deadline);
    let mut bookmark = false;
    while !(bookmark && kinds.len() >= 2) {
        tokio::select! {
            ev = stream.try_next() => match ev.unwrap() {
                Some(WatchEvent::Added(o)) => kinds.push(format!("ADDED {}", o.metadata.name.unwrap())),
                Some(WatchEvent::Deleted(o)) => kinds.push(format!("DELETED {}", o.metadata.name.unwrap())),
                Some(WatchEvent::Bookmark(_)) => bookmark = true,
                Some(other) => panic!("unexpected {other:?}"),
                None => break,
            },
            _ = &mut deadline => panic!("watch did not deliver: {kinds:?}"),
        }
    }
    assert_eq!(kinds, vec!["ADDED b", "DELETED a"]);
    c.shutdown().await;
}

#[tokio::test]
async fn watch_from_a_resource_version_older_than_the_history_is_gone() {
    // A restart keeps objects but not the event history, like etcd compaction.
    let dir = tempfile::tempdir().unwrap();
    let cfg = ClusterConfig {
        port: 0,
        data_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let c = EmbeddedCluster::start(cfg.clone()).await.unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(c.client());
    let a = cms
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &cm("b", json!({})))
        .await
        .unwrap();
    let old_rv = a.metadata.resource_version.unwrap();
    c.shutdown().await;
    let c = EmbeddedCluster::start(cfg).await.unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(c.client());
    let mut stream = cms
        .watch(&WatchParams::default(), &old_rv)
        .await
        .unwrap()
        .boxed();
    match stream.try_next().await.unwrap() {
        Some(WatchEvent::Error(s)) => {
            assert_eq!(s.code, 410);
            assert_eq!(s.reason, "Expired");
            assert!(
                s.message
                    .starts_with(&format!("too old resource version: {old_rv} (")),
                "{}",
                s.message
            );
        }
        other => panic!("expected a 410 error event, got {other:?}"),
    }
    c.shutdown().await;
}

#[tokio::test]
async fn watch_reports_objects_leaving_a_label_selector_as_deleted() {
    let c = start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(c.client());
    cms.create(&PostParams::default(), &cm("a", json!({"app": "x"})))
        .await
        .unwrap();
    let mut stream = cms
        .watch(
            &WatchParams::default().labels("app=x").disable_bookmarks(),
            "0",
        )
        .await
        .unwrap()
        .boxed();
    assert!(matches!(
        stream.try_next().await.unwrap(),
        Some(WatchEvent::Added(_))
    ));
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "y"}}})),
    )
    .await
    .unwrap();
    assert!(matches!(
        stream.try_next().await.unwrap(),
        Some(WatchEvent::Deleted(_))
    ));
    c.shutdown().await;
}

#[tokio::test]
async fn finalizers_keep_a_deleted_object_until_cleared() {
    let c = start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(c.client());
    let mut f = cm("f", json!({}));
    f.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    cms.create(&PostParams::default(), &f).await.unwrap();
    let res = cms.delete("f", &DeleteParams::default()).await.unwrap();
    let held = res
        .left()
        .expect("the object comes back while finalizers remain");
    assert!(held.metadata.deletion_timestamp.is_some());
    assert!(cms.get("f").await.is_ok());
    cms.patch(
        "f",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(cms.get_opt("f").await.unwrap().is_none());
    c.shutdown().await;
}

async fn owner_with_dependents(c: &EmbeddedCluster) -> Api<ConfigMap> {
    let cms: Api<ConfigMap> = Api::default_namespaced(c.client());
    let owner = cms
        .create(&PostParams::default(), &cm("owner", json!({})))
        .await
        .unwrap();
    let uid = owner.metadata.uid.unwrap();
    for n in ["d1", "d2"] {
        let d: ConfigMap = serde_json::from_value(json!({"metadata": {"name": n, "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid, "blockOwnerDeletion": true}]}})).unwrap();
        cms.create(&PostParams::default(), &d).await.unwrap();
    }
    cms
}

#[tokio::test]
async fn background_deletion_collects_dependents() {
    let c = start().await;
    let cms = owner_with_dependents(&c).await;
    cms.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    eventually(5, "dependents collected", || async {
        cms.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    })
    .await;
    c.shutdown().await;
}

#[tokio::test]
async fn foreground_deletion_removes_the_owner_after_its_dependents() {
    let c = start().await;
    let cms = owner_with_dependents(&c).await;
    let res = cms
        .delete("owner", &DeleteParams::foreground())
        .await
        .unwrap();
    let owner = res.left().expect("owner stays while dependents exist");
    assert_eq!(
        owner.metadata.finalizers,
        Some(vec!["foregroundDeletion".to_string()])
    );
    eventually(5, "all gone", || async {
        cms.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    })
    .await;
    c.shutdown().await;
}

#[tokio::test]
async fn orphan_deletion_strips_owner_references() {
    let c = start().await;
    let cms = owner_with_dependents(&c).await;
    cms.delete("owner", &DeleteParams::orphan()).await.unwrap();
    // Proving a negative: give the collector (which runs at least every 200 ms) time to act.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let left = cms.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(left.len(), 2);
    assert!(left.iter().all(|d| {
        d.metadata
            .owner_references
            .as_ref()
            .is_none_or(|r| r.is_empty())
    }));
    c.shutdown().await;
}

#[tokio::test]
async fn crd_install_serves_discovery_and_deleting_it_removes_objects() {
    let c = start().await;
    let ro = install_rollouts(&c).await;
    let (code, groups) = get(&c, "/apis").await;
    assert_eq!(code, 200);
    assert!(
        groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "argoproj.io")
    );
    let (_, list) = get(&c, "/apis/argoproj.io/v1alpha1").await;
    let res = list["resources"].as_array().unwrap();
    let main = res.iter().find(|r| r["name"] == "rollouts").unwrap();
    assert_eq!(main["shortNames"], json!(["ro"]));
    assert_eq!(main["kind"], "Rollout");
    assert!(res.iter().any(|r| r["name"] == "rollouts/status"));
    assert!(
        res.iter()
            .any(|r| r["name"] == "rollouts/scale" && r["kind"] == "Scale")
    );
    let (_, crd) = get(
        &c,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/rollouts.argoproj.io",
    )
    .await;
    let conds = crd["status"]["conditions"].as_array().unwrap();
    assert!(
        conds
            .iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True")
    );
    assert_eq!(crd["status"]["acceptedNames"]["kind"], "Rollout");
    ro.create(&PostParams::default(), &rollout("x"))
        .await
        .unwrap();
    let (code, _) = raw(
        &c,
        reqwest::Method::DELETE,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/rollouts.argoproj.io",
        "application/json",
        "",
    )
    .await;
    assert_eq!(code, 200);
    let (code, body) = get(
        &c,
        "/apis/argoproj.io/v1alpha1/namespaces/default/rollouts/x",
    )
    .await;
    assert_eq!(code, 404);
    assert_eq!(
        body["message"],
        "the server could not find the requested resource"
    );
    install_rollouts(&c).await;
    assert!(
        ro.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "objects went with the CRD"
    );
    c.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_apiserver_shaped_status_and_change_nothing() {
    let c = start().await;
    let p = reqwest::Method::POST;
    let base = "/api/v1/namespaces/default/configmaps";
    let (code, body) = raw(
        &c,
        p.clone(),
        base,
        "application/json",
        r#"{"metadata":{"name":"ok"}}"#,
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let rv_before = body["metadata"]["resourceVersion"].clone();
    let cases: Vec<(reqwest::Method, &str, &str, &str, u16, &str)> = vec![
        (
            p.clone(),
            base,
            "application/json",
            "{not json",
            400,
            "BadRequest",
        ),
        (
            p.clone(),
            base,
            "application/json",
            r#"{"apiVersion":"apps/v1","kind":"ConfigMap","metadata":{"name":"x"}}"#,
            400,
            "BadRequest",
        ),
        (
            p.clone(),
            base,
            "application/json",
            r#"{"metadata":{"name":"Bad_Name"}}"#,
            422,
            "Invalid",
        ),
        (
            p.clone(),
            base,
            "application/json",
            r#"{"metadata":{"name":"ok"}}"#,
            409,
            "AlreadyExists",
        ),
        (
            p.clone(),
            base,
            "application/json",
            r#"{"metadata":{"name":"lbl","labels":{"a":"no spaces"}}}"#,
            422,
            "Invalid",
        ),
        (
            p.clone(),
            "/api/v1/namespaces/nope/configmaps",
            "application/json",
            r#"{"metadata":{"name":"x"}}"#,
            404,
            "NotFound",
        ),
        (
            p.clone(),
            "/apis/nope.io/v1/namespaces/default/things",
            "application/json",
            "{}",
            404,
            "NotFound",
        ),
        (
            reqwest::Method::PATCH,
            "/api/v1/namespaces/default/configmaps/ok",
            "application/json",
            "{}",
            415,
            "UnsupportedMediaType",
        ),
        (
            reqwest::Method::PATCH,
            "/api/v1/namespaces/default/configmaps/ok",
            "application/merge-patch+json",
            "[1",
            400,
            "BadRequest",
        ),
        (
            reqwest::Method::PUT,
            "/api/v1/namespaces/default/configmaps/ok",
            "application/json",
            r#"{"metadata":{"name":"ok","resourceVersion":"1"}}"#,
            409,
            "Conflict",
        ),
        (
            reqwest::Method::PUT,
            "/api/v1/namespaces/default/configmaps/other",
            "application/json",
            r#"{"metadata":{"name":"ok"}}"#,
            400,
            "BadRequest",
        ),
    ];
    for (m, path, ct, body, want_code, want_reason) in cases {
        let (code, st) = raw(&c, m.clone(), path, ct, body).await;
        assert_eq!(
            (code, st["reason"].as_str().unwrap_or_default()),
            (want_code, want_reason),
            "{m} {path} {body}: {st}"
        );
        assert_eq!(st["kind"], "Status");
        assert_eq!(st["status"], "Failure");
        assert_eq!(st["code"], want_code);
    }
    let (_, invalid) = raw(
        &c,
        p.clone(),
        base,
        "application/json",
        r#"{"metadata":{"name":"Bad_Name"}}"#,
    )
    .await;
    assert!(invalid["message"].as_str().unwrap().starts_with("ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of"));
    assert_eq!(invalid["details"]["causes"][0]["field"], "metadata.name");
    let (_, exists) = raw(
        &c,
        p.clone(),
        base,
        "application/json",
        r#"{"metadata":{"name":"ok"}}"#,
    )
    .await;
    assert_eq!(exists["message"], "configmaps \"ok\" already exists");
    let (_, missing) = get(&c, "/api/v1/namespaces/default/configmaps/missing").await;
    assert_eq!(missing["message"], "configmaps \"missing\" not found");
    assert_eq!(
        missing["details"],
        json!({"name": "missing", "kind": "configmaps"})
    );
    let (_, wrong) = raw(
        &c,
        p.clone(),
        base,
        "application/json",
        r#"{"apiVersion":"apps/v1","kind":"ConfigMap","metadata":{"name":"x"}}"#,
    )
    .await;
    assert_eq!(
        wrong["message"],
        "the API version in the data (apps/v1) does not match the expected API version (v1)"
    );
    let (_, after) = get(&c, "/api/v1/namespaces/default/configmaps/ok").await;
    assert_eq!(
        after["metadata"]["resourceVersion"], rv_before,
        "nothing stored changed"
    );
    let (_, list) = get(&c, base).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    c.shutdown().await;
}

#[tokio::test]
async fn tables_render_printer_columns() {
    let c = start().await;
    let ro = install_rollouts(&c).await;
    ro.create(&PostParams::default(), &rollout("x"))
        .await
        .unwrap();
    let r = reqwest::Client::new()
        .get(url(
            &c,
            "/apis/argoproj.io/v1alpha1/namespaces/default/rollouts",
        ))
        .header(
            "accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .send()
        .await
        .unwrap();
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["kind"], "Table");
    let cols: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, vec!["Name", "Desired", "Age"]);
    assert_eq!(t["rows"][0]["cells"][0], "x");
    assert_eq!(t["rows"][0]["cells"][1], 2);
    assert_eq!(t["rows"][0]["object"]["metadata"]["name"], "x");
    c.shutdown().await;
}

#[tokio::test]
async fn dry_run_validates_without_storing() {
    let c = start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(c.client());
    let out = cms
        .create(
            &PostParams {
                dry_run: true,
                field_manager: None,
            },
            &cm("dry", json!({})),
        )
        .await
        .unwrap();
    assert_eq!(out.metadata.name.as_deref(), Some("dry"));
    assert!(cms.get_opt("dry").await.unwrap().is_none());
    c.shutdown().await;
}

#[tokio::test]
async fn generate_name_and_namespaces_behave_like_the_apiserver() {
    let c = start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(c.client());
    let g: ConfigMap =
        serde_json::from_value(json!({"metadata": {"generateName": "web-"}})).unwrap();
    let made = cms.create(&PostParams::default(), &g).await.unwrap();
    let name = made.metadata.name.unwrap();
    assert!(name.starts_with("web-") && name.len() == 9, "{name}");
    let nss: Api<Namespace> = Api::all(c.client());
    let names: Vec<String> = nss
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|n| n.metadata.name.unwrap())
        .collect();
    assert!(names.contains(&"default".to_string()) && names.contains(&"kube-system".to_string()));
    c.shutdown().await;
}

#[tokio::test]
async fn objects_and_resource_versions_survive_a_restart_with_a_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ClusterConfig {
        port: 0,
        data_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let c = EmbeddedCluster::start(cfg.clone()).await.unwrap();
    install_rollouts(&c).await;
    let cms: Api<ConfigMap> = Api::default_namespaced(c.client());
    let a = cms
        .create(&PostParams::default(), &cm("keep", json!({})))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &cm("gone", json!({})))
        .await
        .unwrap();
    cms.delete("gone", &DeleteParams::default()).await.unwrap();
    let rv: u64 = a.metadata.resource_version.unwrap().parse().unwrap();
    c.shutdown().await;
    let c = EmbeddedCluster::start(cfg).await.unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(c.client());
    assert!(cms.get_opt("keep").await.unwrap().is_some());
    assert!(cms.get_opt("gone").await.unwrap().is_none());
    let b = cms
        .create(&PostParams::default(), &cm("new", json!({})))
        .await
        .unwrap();
    let rv2: u64 = b.metadata.resource_version.unwrap().parse().unwrap();
    assert!(rv2 > rv + 2, "resourceVersion continues: {rv2} after {rv}");
    let (code, _) = get(&c, "/apis/argoproj.io/v1alpha1/namespaces/default/rollouts").await;
    assert_eq!(code, 200, "CRDs are served again after reload");
    c.shutdown().await;
}

#[tokio::test]
async fn audit_records_each_call() {
    let c = start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(c.client());
    cms.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    cms.get("a").await.unwrap();
    let (code, body) = get(&c, "/healthz").await;
    assert_eq!((code, body), (200, Value::String("ok".into())));
    let log = c.audit();
    let verbs: Vec<(&str, &str)> = log
        .iter()
        .map(|e| (e.verb.as_str(), e.resource.as_str()))
        .collect();
    assert!(verbs.contains(&("create", "configmaps")));
    assert!(verbs.contains(&("get", "configmaps")));
    assert_eq!(
        log.iter()
            .find(|e| e.verb == "get")
            .unwrap()
            .namespace
            .as_deref(),
        Some("default")
    );
    c.shutdown().await;
}

#[tokio::test]
async fn kube_discovery_works_both_aggregated_and_legacy() {
    let c = start().await;
    install_rollouts(&c).await;
    for aggregated in [true, false] {
        let d = kube::Discovery::new(c.client());
        let d = if aggregated {
            d.run_aggregated().await
        } else {
            d.run().await
        }
        .unwrap();
        let (ar, caps) = d
            .resolve_gvk(&GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Rollout"))
            .expect("rollouts discovered");
        assert_eq!(ar.plural, "rollouts");
        assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
        assert!(
            caps.subresources
                .iter()
                .any(|(s, _)| s.plural == "scale" || s.plural == "rollouts/scale"),
            "aggregated={aggregated}"
        );
        assert!(
            d.resolve_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"))
                .is_some()
        );
        assert!(
            d.resolve_gvk(&GroupVersionKind::gvk("", "v1", "ConfigMap"))
                .is_some()
        );
    }
    c.shutdown().await;
}

#[tokio::test]
async fn events_written_as_events_k8s_io_are_read_as_core_v1() {
    use k8s_openapi::api::core::v1::{Event as CoreEvent, ObjectReference};
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let c = start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(c.client());
    let owner = cms
        .create(&PostParams::default(), &cm("target", json!({})))
        .await
        .unwrap();
    let recorder = Recorder::new(
        c.client(),
        Reporter {
            controller: "sluice".into(),
            instance: None,
        },
    );
    let reference = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("ConfigMap".into()),
        name: owner.metadata.name.clone(),
        namespace: Some("default".into()),
        uid: owner.metadata.uid.clone(),
        ..Default::default()
    };
    let ev = Event {
        type_: EventType::Normal,
        reason: "Tested".into(),
        note: Some("hello".into()),
        action: "Test".into(),
        secondary: None,
    };
    recorder.publish(&ev, &reference).await.unwrap();
    recorder.publish(&ev, &reference).await.unwrap();
    let core: Api<CoreEvent> = Api::default_namespaced(c.client());
    let listed = core
        .list(&ListParams::default().fields(&format!(
            "involvedObject.uid={}",
            owner.metadata.uid.unwrap()
        )))
        .await
        .unwrap()
        .items;
    assert_eq!(
        listed.len(),
        1,
        "the repeat became a series on the same Event"
    );
    assert_eq!(listed[0].message.as_deref(), Some("hello"));
    assert_eq!(listed[0].reason.as_deref(), Some("Tested"));
    assert_eq!(listed[0].involved_object.name.as_deref(), Some("target"));
    let (_, v1) = get(
        &c,
        "/apis/events.k8s.io/v1/namespaces/default/events?fieldSelector=regarding.name%3Dtarget",
    )
    .await;
    assert_eq!(v1["items"][0]["note"], "hello");
    assert_eq!(v1["items"][0]["apiVersion"], "events.k8s.io/v1");
    c.shutdown().await;
}

#[tokio::test]
async fn namespace_termination_resumes_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ClusterConfig {
        port: 0,
        data_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let c = EmbeddedCluster::start(cfg.clone()).await.unwrap();
    let nss: Api<Namespace> = Api::all(c.client());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap();
    nss.create(&PostParams::default(), &ns).await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(c.client(), "team");
    let mut held = cm("held", json!({}));
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    cms.create(&PostParams::default(), &held).await.unwrap();
    nss.delete("team", &DeleteParams::default()).await.unwrap();
    let phase = |n: Namespace| n.status.and_then(|s| s.phase);
    assert_eq!(
        phase(nss.get("team").await.unwrap()).as_deref(),
        Some("Terminating")
    );
    c.shutdown().await;
    let c = EmbeddedCluster::start(cfg).await.unwrap();
    let nss: Api<Namespace> = Api::all(c.client());
    let cms: Api<ConfigMap> = Api::namespaced(c.client(), "team");
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    eventually(5, "namespace removed", || async {
        nss.get_opt("team").await.unwrap().is_none()
    })
    .await;
    let err = cms
        .create(&PostParams::default(), &cm("late", json!({})))
        .await
        .unwrap_err();
    let kube::Error::Api(s) = err else { panic!() };
    assert_eq!(s.message, "namespaces \"team\" not found");
    c.shutdown().await;
}

#[tokio::test]
async fn start_reports_a_busy_port_and_writes_the_kubeconfig_after_binding() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kc.yaml");
    let c = EmbeddedCluster::start(ClusterConfig {
        port: 0,
        data_dir: None,
        kubeconfig: Some(path.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    let written = std::fs::read_to_string(&path).unwrap();
    assert_eq!(written, c.kubeconfig_yaml());
    assert!(written.contains(&format!("server: http://127.0.0.1:{}", c.addr().port())));
    assert!(written.contains("current-context: sluice"));
    let busy = EmbeddedCluster::start(ClusterConfig {
        port: c.addr().port(),
        ..Default::default()
    })
    .await;
    assert!(matches!(
        busy,
        Err(sluice_cluster::ClusterError::Bind { .. })
    ));
    c.shutdown().await;
}

#[tokio::test]
async fn autoscaling_v1_and_v2_share_one_horizontal_pod_autoscaler() {
    let c = start().await;
    let v1 = r#"{"apiVersion":"autoscaling/v1","kind":"HorizontalPodAutoscaler","metadata":{"name":"h"},
        "spec":{"scaleTargetRef":{"apiVersion":"argoproj.io/v1alpha1","kind":"Rollout","name":"web"},"maxReplicas":5,"targetCPUUtilizationPercentage":60}}"#;
    let (code, created) = raw(
        &c,
        reqwest::Method::POST,
        "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers",
        "application/json",
        v1,
    )
    .await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["spec"]["targetCPUUtilizationPercentage"], 60);
    assert_eq!(created["spec"]["minReplicas"], 1);
    let (_, as_v2) = get(
        &c,
        "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/h",
    )
    .await;
    assert_eq!(as_v2["apiVersion"], "autoscaling/v2");
    assert_eq!(
        as_v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        60
    );
    let (code, _) = raw(&c, reqwest::Method::PATCH, "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/h/status", "application/merge-patch+json",
        r#"{"status":{"currentReplicas":2,"desiredReplicas":3,"currentMetrics":[{"type":"Resource","resource":{"name":"cpu","current":{"averageUtilization":75}}}]}}"#).await;
    assert_eq!(code, 200);
    let (_, as_v1) = get(
        &c,
        "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers/h",
    )
    .await;
    assert_eq!(as_v1["status"]["currentCPUUtilizationPercentage"], 75);
    assert_eq!(as_v1["status"]["desiredReplicas"], 3);
    c.shutdown().await;
}
