//! A malformed object (Rollout, AnalysisRun or Experiment) fails its own reconcile and
//! nothing else.
//!
//! The object is one an API server accepts but Sluice's types reject: an int32 field beyond
//! its range (CRD validation does not check integer formats). Watched as typed objects, it
//! failed the watch's list, so no object of its kind was reconciled again (and a run
//! carrying the Rollouts' hash label held every Rollout reconcile waiting for that cache).

use std::time::{Duration, Instant};

use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde_json::{Value, json};
use sluice_api::analysis::AnalysisRun;
use sluice_api::experiment::Experiment;
use sluice_cluster::{ClusterConfig, EmbeddedCluster};
use tokio_util::sync::CancellationToken;

const NS: &str = "default";

async fn create(client: &kube::Client, resource: &ApiResource, obj: Value) {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, resource);
    let obj: DynamicObject = serde_json::from_value(obj).expect("a dynamic object");
    api.create(&PostParams::default(), &obj)
        .await
        .expect("the API server accepts the object");
}

fn analysis_run(name: &str, seconds_after_completion: i64) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
        // The label the Rollout controller's watch of the runs it owns selects on.
        "metadata": {"name": name, "labels": {"rollouts-pod-template-hash": "abc"}},
        "spec": {
            "terminate": true,
            "metrics": [{"name": "m", "provider": {"web": {"url": "http://127.0.0.1:9/never"}}}],
            "ttlStrategy": {"secondsAfterCompletion": seconds_after_completion},
        },
    })
}

async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The note of the `DecodeFailed` Warning Event on the object of `kind` named `name`, once
/// written.
async fn decode_warning(client: &kube::Client, kind: &str, name: &str) -> Option<String> {
    let events: Api<Event> = Api::namespaced(client.clone(), NS);
    let list = events.list(&Default::default()).await.ok()?;
    list.items
        .into_iter()
        .find(|e| {
            let regarding = e.regarding.as_ref();
            e.reason.as_deref() == Some("DecodeFailed")
                && e.type_.as_deref() == Some("Warning")
                && regarding.and_then(|r| r.kind.as_deref()) == Some(kind)
                && regarding.and_then(|r| r.name.as_deref()) == Some(name)
        })
        .and_then(|e| e.note)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_rollout_analysis_run_or_experiment_does_not_stop_the_other_objects() {
    let cluster = EmbeddedCluster::start(ClusterConfig {
        port: 0,
        ..Default::default()
    })
    .await
    .expect("embedded cluster");
    let client = cluster.client();
    sluice_controller::crds::install(&client)
        .await
        .expect("CRDs");
    let runs = ApiResource::erase::<AnalysisRun>(&());
    create(&client, &runs, analysis_run("bad", 3_000_000_000)).await;
    create(&client, &runs, analysis_run("good", 3600)).await;
    let experiments = ApiResource::erase::<Experiment>(&());
    create(
        &client,
        &experiments,
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Experiment",
               "metadata": {"name": "bad"},
               "spec": {"templates": [{"name": "t", "replicas": 3_000_000_000_i64,
                   "selector": {"matchLabels": {"app": "t"}},
                   "template": {"metadata": {"labels": {"app": "t"}},
                                "spec": {"containers": [{"name": "c", "image": "x"}]}}}]}}),
    )
    .await;

    let rollout = |name: &str, replicas: i64| {
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": name},
               "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                        "template": {"metadata": {"labels": {"app": name}},
                                     "spec": {"containers": [{"name": "web", "image": "v1"}]}},
                        "strategy": {"canary": {"steps": [{"setWeight": 50}]}}}})
    };
    let rollouts = sluice_api::rollout::rollout_resource();
    create(&client, &rollouts, rollout("broken", 3_000_000_000)).await;
    create(&client, &rollouts, rollout("web", 1)).await;

    let metrics = std::sync::Arc::new(sluice_controller::metrics::Metrics::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let endpoint = format!("http://{}/metrics", listener.local_addr().expect("addr"));
    let options = sluice_controller::Options {
        controllers: sluice_controller::rollout::Config {
            metrics: Some(metrics),
            ..Default::default()
        },
        endpoints: Some(listener),
        ..Default::default()
    };
    let shutdown = CancellationToken::new();
    let controllers = tokio::spawn(sluice_controller::run(
        client.clone(),
        options,
        shutdown.clone(),
    ));

    let typed: Api<AnalysisRun> = Api::namespaced(client.clone(), NS);
    let phase = eventually("the good AnalysisRun to be reconciled", async || {
        let run = typed.get("good").await.ok()?;
        run.status.map(|s| s.phase).filter(|p| p.is_completed())
    })
    .await;
    assert_eq!(
        phase.as_str(),
        "Successful",
        "terminated before any decision"
    );

    let rollouts: Api<sluice_api::rollout::Rollout> = Api::namespaced(client.clone(), NS);
    eventually("the Rollout to be reconciled", async || {
        let ro = rollouts.get("web").await.ok()?;
        ro.status.and_then(|s| s.observed_generation)
    })
    .await;

    let note = eventually("a Warning Event on the bad AnalysisRun", async || {
        decode_warning(&client, "AnalysisRun", "bad").await
    })
    .await;
    assert!(
        note.contains("analysisrun default/bad")
            && note.contains("spec.ttlStrategy.secondsAfterCompletion"),
        "the Event names the object and the field: {note}"
    );
    let note = eventually("a Warning Event on the bad Experiment", async || {
        decode_warning(&client, "Experiment", "bad").await
    })
    .await;
    assert!(
        note.contains("experiment default/bad") && note.contains("spec.templates[0].replicas"),
        "{note}"
    );

    let note = eventually("a Warning Event on the bad Rollout", async || {
        decode_warning(&client, "Rollout", "broken").await
    })
    .await;
    assert!(
        note.contains("rollout default/broken") && note.contains("spec.replicas"),
        "{note}"
    );

    let text = eventually("the decode failures on /metrics", async || {
        let text = reqwest::get(&endpoint).await.ok()?.text().await.ok()?;
        let counted = |controller: &str| {
            text.contains(&format!(
                "sluice_reconcile_errors_total{{controller=\"{controller}\",reason=\"decode\"}} "
            ))
        };
        (counted("analysisrun") && counted("experiment") && counted("rollout")).then_some(text)
    })
    .await;
    assert!(
        !text.contains("reason=\"decode\"} 0"),
        "only failures are counted: {text}"
    );

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), controllers)
        .await
        .expect("the controllers stop on shutdown")
        .expect("joined")
        .expect("a clean stop");
    cluster.shutdown().await;
}
