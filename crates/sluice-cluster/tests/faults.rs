//! Fault injection on the embedded cluster (`/_sluice/faults`), the request log
//! (`/_sluice/requests`) and a restart with `data_dir`, driven over raw HTTP and kube-rs.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use sluice_cluster::{ClusterConfig, EmbeddedCluster};

async fn start() -> EmbeddedCluster {
    EmbeddedCluster::start(ClusterConfig::default())
        .await
        .expect("cluster starts")
}

async fn call(
    c: &EmbeddedCluster,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = reqwest::Client::new()
        .request(method, format!("http://{}{path}", c.addr()))
        .header("content-type", "application/json")
        .header("user-agent", "faults-test/1")
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    let code = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.expect("body");
    (
        code,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn set_faults(c: &EmbeddedCluster, faults: Value) {
    let (code, _, body) = call(c, reqwest::Method::PUT, "/_sluice/faults", faults).await;
    assert_eq!(code, 200, "{body}");
}

fn cm(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";

#[tokio::test]
async fn injected_errors_answer_as_kube_apiserver_does() {
    let c = start().await;
    let rule = |code: u16, applied: bool| {
        json!({"seed": 3, "errors": [{"verbs": ["create"], "resources": ["configmaps"],
            "rate": 1.0, "code": code, "retryAfterSeconds": 3, "delayMs": 20, "applied": applied}]})
    };
    set_faults(&c, rule(429, false)).await;
    let (code, headers, body) = call(&c, reqwest::Method::POST, CMS, cm("a")).await;
    assert_eq!(
        (code, body["reason"].as_str()),
        (429, Some("TooManyRequests"))
    );
    assert_eq!(headers["retry-after"], "3");
    assert_eq!(body["details"]["retryAfterSeconds"], 3);

    set_faults(&c, rule(409, false)).await;
    let (code, _, body) = call(&c, reqwest::Method::POST, CMS, cm("a")).await;
    assert_eq!((code, body["reason"].as_str()), (409, Some("Conflict")));

    set_faults(&c, rule(500, false)).await;
    let (code, _, body) = call(&c, reqwest::Method::POST, CMS, cm("a")).await;
    assert_eq!(
        (code, body["reason"].as_str()),
        (500, Some("InternalError"))
    );
    // Reads are not matched by a `create` rule; nothing was stored.
    let (code, _, _) = call(&c, reqwest::Method::GET, &format!("{CMS}/a"), json!(null)).await;
    assert_eq!(code, 404);

    // A 504 after the write: the client is told it timed out, yet the object exists.
    set_faults(&c, rule(504, true)).await;
    let (code, _, body) = call(&c, reqwest::Method::POST, CMS, cm("a")).await;
    assert_eq!((code, body["reason"].as_str()), (504, Some("Timeout")));
    let (code, _, _) = call(&c, reqwest::Method::GET, &format!("{CMS}/a"), json!(null)).await;
    assert_eq!(code, 200);

    let (_, _, state) = call(&c, reqwest::Method::GET, "/_sluice/faults", json!(null)).await;
    let errors = &state["stats"]["errors"];
    assert_eq!(
        (
            &errors["429"],
            &errors["409"],
            &errors["500"],
            &errors["504"]
        ),
        (&json!(1), &json!(1), &json!(1), &json!(1)),
        "{state}"
    );
    assert_eq!(state["stats"]["faultedWrites"], 4);

    // `{}` switches everything off.
    set_faults(&c, json!({})).await;
    let (code, _, _) = call(&c, reqwest::Method::POST, CMS, cm("b")).await;
    assert_eq!(code, 201);
    c.shutdown().await;
}

#[tokio::test]
async fn a_bad_fault_configuration_is_refused_with_the_field() {
    let c = start().await;
    let (code, _, body) = call(
        &c,
        reqwest::Method::PUT,
        "/_sluice/faults",
        json!({"errors": [{"rate": 2, "code": 500}]}),
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(body["message"], "errors[0].rate: must be between 0 and 1");
    c.shutdown().await;
}

#[tokio::test]
async fn kube_clients_ride_through_injected_latency() {
    let c = start().await;
    set_faults(
        &c,
        json!({"latency": [{"rate": 1.0, "minMs": 20, "maxMs": 40}]}),
    )
    .await;
    let cms: Api<ConfigMap> = Api::default_namespaced(c.client());
    let made = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(cm("slow")).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(made.metadata.name.as_deref(), Some("slow"));
    let (_, _, state) = call(&c, reqwest::Method::GET, "/_sluice/faults", json!(null)).await;
    assert!(state["stats"]["delayed"].as_u64().unwrap() >= 1, "{state}");
    c.shutdown().await;
}

/// Reads a watch body to its end: the lines received and whether it ended with an error.
async fn read_watch(c: &EmbeddedCluster, path: &str) -> (Vec<Value>, bool) {
    let mut r = reqwest::Client::new()
        .get(format!("http://{}{path}", c.addr()))
        .send()
        .await
        .expect("watch opens");
    let mut buf = Vec::new();
    let mut failed = false;
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match r.chunk().await {
                Ok(Some(b)) => buf.extend_from_slice(&b),
                Ok(None) => break,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the watch {path} did not end within 30s");
    let lines = String::from_utf8_lossy(&buf)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (lines, failed)
}

#[tokio::test]
async fn a_resumed_watch_is_told_its_version_expired_and_streams_are_cut() {
    let c = start().await;
    let (_, _, made) = call(&c, reqwest::Method::POST, CMS, cm("w")).await;
    let rv = made["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    set_faults(&c, json!({"watch": {"expireRate": 1.0}})).await;
    let (lines, _) = read_watch(&c, &format!("{CMS}?watch=1&resourceVersion={rv}")).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["type"], "ERROR");
    assert_eq!(lines[0]["object"]["code"], 410);
    assert_eq!(lines[0]["object"]["reason"], "Expired");
    // A watch from the current state (no resourceVersion) is not a resume: it opens.
    set_faults(
        &c,
        json!({"watch": {"expireRate": 1.0, "cutRate": 1.0, "cutAfterMinMs": 50, "cutAfterMaxMs": 100}}),
    )
    .await;
    let (lines, failed) = read_watch(&c, &format!("{CMS}?watch=1&timeoutSeconds=60")).await;
    assert!(failed, "the stream was cut, not ended: {lines:?}");
    assert_eq!(lines[0]["type"], "ADDED", "{lines:?}");
    let (_, _, state) = call(&c, reqwest::Method::GET, "/_sluice/faults", json!(null)).await;
    assert_eq!(
        (
            &state["stats"]["watchesExpired"],
            &state["stats"]["watchesCut"]
        ),
        (&json!(1), &json!(1))
    );
    c.shutdown().await;
}

#[tokio::test]
async fn the_same_seed_faults_the_same_requests() {
    let mut runs = Vec::new();
    for _ in 0..2 {
        let c = start().await;
        set_faults(
            &c,
            json!({"seed": 42, "errors": [{"verbs": ["create"], "rate": 0.5, "code": 500}]}),
        )
        .await;
        let mut codes = Vec::new();
        for i in 0..40 {
            let (code, _, _) = call(&c, reqwest::Method::POST, CMS, cm(&format!("c{i}"))).await;
            codes.push(code);
        }
        assert!(codes.contains(&500) && codes.contains(&201), "{codes:?}");
        runs.push(codes);
        c.shutdown().await;
    }
    assert_eq!(runs[0], runs[1]);
}

#[tokio::test]
async fn the_request_log_stamps_each_write_with_the_lease_holder() {
    let c = start().await;
    let leases = "/apis/coordination.k8s.io/v1/namespaces/default/leases";
    let (code, _, _) = call(
        &c,
        reqwest::Method::POST,
        leases,
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
               "metadata": {"name": "leader"}, "spec": {"holderIdentity": "replica-a"}}),
    )
    .await;
    assert_eq!(code, 201);
    let (code, _, body) = call(
        &c,
        reqwest::Method::PUT,
        "/_sluice/requests",
        json!({"enabled": true, "lease": "default/leader"}),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    call(&c, reqwest::Method::POST, CMS, cm("logged")).await;
    call(
        &c,
        reqwest::Method::GET,
        &format!("{CMS}/logged"),
        json!(null),
    )
    .await;
    let (_, _, log) = call(
        &c,
        reqwest::Method::GET,
        "/_sluice/requests?since=0",
        json!(null),
    )
    .await;
    let items = log["items"].as_array().unwrap();
    let create = items.iter().find(|e| e["verb"] == "create").unwrap();
    assert_eq!(create["userAgent"], "faults-test/1");
    assert_eq!(create["leaseHolder"], "replica-a");
    assert_eq!(
        (create["code"].as_u64(), create["name"].as_str()),
        (Some(201), None)
    );
    let read = items.iter().find(|e| e["verb"] == "get").unwrap();
    assert!(
        read.get("leaseHolder").is_none(),
        "reads are not stamped: {read}"
    );
    let (_, _, later) = call(
        &c,
        reqwest::Method::GET,
        &format!(
            "/_sluice/requests?since={}",
            create["seq"].as_u64().unwrap() + 1
        ),
        json!(null),
    )
    .await;
    assert!(
        later["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["verb"] != "create")
    );
    c.shutdown().await;
}

#[tokio::test]
async fn a_restart_on_the_same_port_keeps_uids_generations_and_expires_old_watches() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ClusterConfig {
        port: 0,
        data_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let c = EmbeddedCluster::start(cfg.clone()).await.unwrap();
    let port = c.addr().port();
    let deploys = "/apis/apps/v1/namespaces/default/deployments";
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
        "spec": {"containers": [{"name": "c", "image": "x:1"}]}}}});
    let (code, _, first) = call(&c, reqwest::Method::POST, deploys, d.clone()).await;
    assert_eq!(code, 201, "{first}");
    let mut changed = d.clone();
    changed["metadata"]["resourceVersion"] = first["metadata"]["resourceVersion"].clone();
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("x:2");
    let (code, _, before) = call(&c, reqwest::Method::PUT, &format!("{deploys}/d"), changed).await;
    assert_eq!(code, 200, "{before}");
    let old_rv = first["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    c.shutdown().await;

    let c = EmbeddedCluster::start(ClusterConfig { port, ..cfg })
        .await
        .unwrap();
    assert_eq!(c.addr().port(), port);
    let (_, _, after) = call(
        &c,
        reqwest::Method::GET,
        &format!("{deploys}/d"),
        json!(null),
    )
    .await;
    for field in ["uid", "generation", "resourceVersion", "creationTimestamp"] {
        assert_eq!(
            after["metadata"][field], before["metadata"][field],
            "{field}"
        );
    }
    let (lines, _) = read_watch(&c, &format!("{deploys}?watch=1&resourceVersion={old_rv}")).await;
    assert_eq!(
        (
            lines[0]["type"].as_str(),
            lines[0]["object"]["code"].as_u64()
        ),
        (Some("ERROR"), Some(410)),
        "{lines:?}"
    );
    let (_, _, made) = call(&c, reqwest::Method::POST, CMS, cm("next")).await;
    let next: u64 = made["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let last: u64 = before["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        next > last,
        "resourceVersions continue: {next} after {last}"
    );
    c.shutdown().await;
}
