use std::sync::Arc;

use http::Method;
use serde_json::json;

use super::*;

fn rollout(strategy: serde_json::Value, status: serde_json::Value) -> Rollout {
    serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "guestbook", "namespace": "shop"},
        "spec": {
            "replicas": 5,
            "selector": {"matchLabels": {"app": "guestbook"}},
            "template": {"metadata": {"labels": {"app": "guestbook"}},
                         "spec": {"containers": [{"name": "c", "image": "demo:blue"}]}},
            "strategy": strategy,
        },
        "status": status,
    }))
    .expect("valid rollout")
}

fn progressing(reason: &str, message: &str) -> serde_json::Value {
    json!({"conditions": [{
        "type": "Progressing", "status": "True", "reason": reason, "message": message,
        "lastUpdateTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z",
    }], "replicas": 6, "availableReplicas": 4, "updatedReplicas": 2})
}

/// The sample lines of `text` that start with `name{` (exactly that family).
fn samples(text: &str, name: &str) -> Vec<String> {
    let prefix = format!("{name}{{");
    text.lines()
        .filter(|l| l.starts_with(&prefix))
        .map(str::to_string)
        .collect()
}

#[test]
fn rollout_info_carries_upstream_labels_and_replica_gauges_follow_the_status() {
    let m = Metrics::new();
    m.observe_rollout(&rollout(
        json!({"canary": {"trafficRouting": {"smi": {}}}}),
        progressing("ReplicaSetUpdated", ""),
    ));
    let text = m.encode();
    assert_eq!(
        samples(&text, "rollout_info"),
        vec![
            r#"rollout_info{namespace="shop",name="guestbook",strategy="canary",traffic_router="SMI",phase="Progressing"} 1"#
        ]
    );
    assert_eq!(
        samples(&text, "rollout_info_replicas_available"),
        vec![r#"rollout_info_replicas_available{namespace="shop",name="guestbook"} 4"#]
    );
    assert_eq!(
        samples(&text, "rollout_info_replicas_unavailable"),
        vec![r#"rollout_info_replicas_unavailable{namespace="shop",name="guestbook"} 2"#]
    );
    assert_eq!(
        samples(&text, "rollout_info_replicas_desired"),
        vec![r#"rollout_info_replicas_desired{namespace="shop",name="guestbook"} 5"#]
    );
    assert_eq!(
        samples(&text, "rollout_info_replicas_updated"),
        vec![r#"rollout_info_replicas_updated{namespace="shop",name="guestbook"} 2"#]
    );
}

#[test]
fn a_phase_change_replaces_the_info_series_instead_of_adding_one() {
    let m = Metrics::new();
    m.observe_rollout(&rollout(
        json!({"canary": {}}),
        progressing("ReplicaSetUpdated", ""),
    ));
    m.observe_rollout(&rollout(
        json!({"canary": {}}),
        progressing("RolloutAborted", "Rollout aborted update to revision 2"),
    ));
    assert_eq!(
        samples(&m.encode(), "rollout_info"),
        vec![
            r#"rollout_info{namespace="shop",name="guestbook",strategy="canary",traffic_router="",phase="Abort"} 1"#
        ]
    );
}

#[test]
fn forgetting_a_deleted_rollout_removes_all_of_its_gauges() {
    let m = Metrics::new();
    m.observe_rollout(&rollout(
        json!({"blueGreen": {"activeService": "a"}}),
        json!({}),
    ));
    m.forget_rollout("shop", "guestbook");
    let text = m.encode();
    for family in [
        "rollout_info",
        "rollout_info_replicas_available",
        "rollout_info_replicas_unavailable",
        "rollout_info_replicas_desired",
        "rollout_info_replicas_updated",
    ] {
        assert!(samples(&text, family).is_empty(), "{family} left: {text}");
    }
}

#[test]
fn info_phase_follows_upstreams_condition_table() {
    let cases = [
        ("NewReplicaSetAvailable", "Completed"),
        ("RolloutPaused", "Paused"),
        ("ReplicaSetCreateError", "Error"),
        ("ServiceNotFound", "Error"),
        ("ProgressDeadlineExceeded", "Timeout"),
        ("RolloutAborted", "Abort"),
        ("ReplicaSetUpdated", "Progressing"),
    ];
    for (reason, phase) in cases {
        let ro = rollout(json!({"canary": {}}), progressing(reason, ""));
        assert_eq!(rollout_info_phase(&ro), phase, "reason {reason}");
    }
    let invalid = rollout(
        json!({"canary": {}}),
        json!({"conditions": [{
            "type": "InvalidSpec", "status": "True", "reason": "InvalidSpec", "message": "x",
            "lastUpdateTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z",
        }]}),
    );
    assert_eq!(rollout_info_phase(&invalid), "InvalidSpec");
    assert_eq!(
        rollout_info_phase(&rollout(json!({"canary": {}}), serde_json::Value::Null)),
        "Progressing"
    );
}

#[test]
fn strategy_and_router_labels_match_upstream() {
    let cases = [
        (
            json!({"blueGreen": {"activeService": "a"}}),
            ("blueGreen", ""),
        ),
        (json!({"canary": {}}), ("canary", "")),
        (json!({}), ("none", "")),
        (
            json!({"canary": {"trafficRouting": {"istio": {}}}}),
            ("canary", "Istio"),
        ),
        (
            json!({"canary": {"trafficRouting": {"nginx": {"stableIngress": "i"}}}}),
            ("canary", "Nginx"),
        ),
        (
            json!({"canary": {"trafficRouting": {"alb": {"ingress": "i", "servicePort": 80}}}}),
            ("canary", "ALB"),
        ),
        (
            json!({"canary": {"trafficRouting": {"ambassador": {"mappings": ["m"]}}}}),
            ("canary", "Ambassador"),
        ),
    ];
    for (strategy, want) in cases {
        let ro = rollout(strategy.clone(), json!({}));
        assert_eq!(strategy_and_traffic_router(&ro), want, "{strategy}");
    }
}

#[test]
fn reconcile_histogram_uses_upstream_buckets() {
    let m = Metrics::new();
    m.reconcile_duration("ro-namespace", "ro-test", 0.001);
    let text = m.encode();
    let buckets = samples(&text, "rollout_reconcile_bucket");
    assert_eq!(
        buckets,
        vec![
            r#"rollout_reconcile_bucket{le="0.01",namespace="ro-namespace",name="ro-test"} 1"#,
            r#"rollout_reconcile_bucket{le="0.15",namespace="ro-namespace",name="ro-test"} 1"#,
            r#"rollout_reconcile_bucket{le="0.25",namespace="ro-namespace",name="ro-test"} 1"#,
            r#"rollout_reconcile_bucket{le="0.5",namespace="ro-namespace",name="ro-test"} 1"#,
            r#"rollout_reconcile_bucket{le="1.0",namespace="ro-namespace",name="ro-test"} 1"#,
            r#"rollout_reconcile_bucket{le="+Inf",namespace="ro-namespace",name="ro-test"} 1"#,
        ]
    );
    assert!(text.contains("# TYPE rollout_reconcile histogram"));
}

#[test]
fn reconcile_histogram_counts_each_observation_in_its_bucket_cumulatively() {
    let m = Metrics::new();
    for seconds in [0.001, 0.2, 0.25, 2.0] {
        m.reconcile_duration("ns", "ro", seconds);
    }
    m.reconcile_duration("ns", "other", 0.5);
    let text = m.encode();
    let of_ro = |suffix: &str| {
        samples(&text, &format!("rollout_reconcile_{suffix}"))
            .into_iter()
            .filter(|s| s.contains(r#"name="ro""#))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        of_ro("bucket"),
        vec![
            r#"rollout_reconcile_bucket{le="0.01",namespace="ns",name="ro"} 1"#,
            r#"rollout_reconcile_bucket{le="0.15",namespace="ns",name="ro"} 1"#,
            r#"rollout_reconcile_bucket{le="0.25",namespace="ns",name="ro"} 3"#,
            r#"rollout_reconcile_bucket{le="0.5",namespace="ns",name="ro"} 3"#,
            r#"rollout_reconcile_bucket{le="1.0",namespace="ns",name="ro"} 3"#,
            r#"rollout_reconcile_bucket{le="+Inf",namespace="ns",name="ro"} 4"#,
        ]
    );
    assert_eq!(
        of_ro("count"),
        vec![r#"rollout_reconcile_count{namespace="ns",name="ro"} 4"#]
    );
    assert_eq!(
        of_ro("sum"),
        vec![r#"rollout_reconcile_sum{namespace="ns",name="ro"} 2.451"#]
    );
}

#[test]
fn reconcile_errors_keep_the_upstream_sample_name_without_total() {
    let m = Metrics::new();
    m.reconcile_error("shop", "guestbook");
    m.reconcile_error("shop", "guestbook");
    let text = m.encode();
    assert_eq!(
        samples(&text, "rollout_reconcile_error"),
        vec![r#"rollout_reconcile_error{namespace="shop",name="guestbook"} 2"#]
    );
}

#[test]
fn reconcile_failures_are_counted_per_controller_and_reason() {
    let m = Metrics::new();
    m.reconcile_failed("analysisrun", "decode");
    m.reconcile_failed("analysisrun", "decode");
    m.reconcile_failed("rollout", "api_conflict");
    let mut got = samples(&m.encode(), "sluice_reconcile_errors_total");
    got.sort();
    assert_eq!(
        got,
        vec![
            r#"sluice_reconcile_errors_total{controller="analysisrun",reason="decode"} 2"#,
            r#"sluice_reconcile_errors_total{controller="rollout",reason="api_conflict"} 1"#,
        ]
    );
    assert!(
        m.encode()
            .contains("# TYPE sluice_reconcile_errors counter"),
        "a counter family"
    );
}

#[test]
fn events_are_counted_per_type_and_reason() {
    let m = Metrics::new();
    m.event("ns", "ro", "Normal", "RolloutCompleted");
    m.event("ns", "ro", "Warning", "RolloutAborted");
    m.event("ns", "ro", "Warning", "RolloutAborted");
    m.event("other", "ro", "Warning", "RolloutAborted");
    m.event("ns", "ro-2", "Normal", "RolloutCompleted");
    let text = m.encode();
    assert!(text.contains("# TYPE rollout_events counter"), "{text}");
    assert!(
        text.contains("# HELP rollout_events Count of rollout events"),
        "{text}"
    );
    let mut got = samples(&text, "rollout_events_total");
    got.sort();
    assert_eq!(
        got,
        vec![
            r#"rollout_events_total{namespace="ns",name="ro",type="Normal",reason="RolloutCompleted"} 1"#,
            r#"rollout_events_total{namespace="ns",name="ro",type="Warning",reason="RolloutAborted"} 2"#,
            r#"rollout_events_total{namespace="ns",name="ro-2",type="Normal",reason="RolloutCompleted"} 1"#,
            r#"rollout_events_total{namespace="other",name="ro",type="Warning",reason="RolloutAborted"} 1"#,
        ]
    );
}

fn analysis_run(status: serde_json::Value) -> AnalysisRun {
    serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {"name": "guestbook-abc-2-1", "namespace": "shop"},
        "spec": {"metrics": [
            {"name": "success-rate", "provider": {"prometheus": {"address": "http://p", "query": "q"}}},
            {"name": "smoke", "provider": {"job": {"spec": {"template": {"spec": {"containers": [], "restartPolicy": "Never"}}}}}},
        ]},
        "status": status,
    }))
    .expect("valid analysis run")
}

#[test]
fn analysis_run_gauges_show_phase_per_metric_and_vanish_on_delete() {
    let m = Metrics::new();
    m.observe_analysis_run(&analysis_run(json!({
        "phase": "Running",
        "metricResults": [{"name": "success-rate", "phase": "Successful", "count": 1}],
    })));
    let text = m.encode();
    assert_eq!(
        samples(&text, "analysis_run_info"),
        vec![r#"analysis_run_info{namespace="shop",name="guestbook-abc-2-1",phase="Running"} 1"#]
    );
    let mut types = samples(&text, "analysis_run_metric_type");
    types.sort();
    assert_eq!(
        types,
        vec![
            r#"analysis_run_metric_type{namespace="shop",name="guestbook-abc-2-1",metric="smoke",type="Job"} 1"#,
            r#"analysis_run_metric_type{namespace="shop",name="guestbook-abc-2-1",metric="success-rate",type="Prometheus"} 1"#,
        ]
    );
    let phases = samples(&text, "analysis_run_metric_phase");
    assert_eq!(phases.len(), 12, "{phases:#?}");
    let mut on: Vec<&String> = phases.iter().filter(|l| l.ends_with(" 1")).collect();
    on.sort();
    assert_eq!(
        on,
        vec![
            r#"analysis_run_metric_phase{namespace="shop",name="guestbook-abc-2-1",metric="smoke",type="Job",dry_run="false",phase="Pending"} 1"#,
            r#"analysis_run_metric_phase{namespace="shop",name="guestbook-abc-2-1",metric="success-rate",type="Prometheus",dry_run="false",phase="Successful"} 1"#,
        ]
    );
    m.forget_analysis_run("shop", "guestbook-abc-2-1");
    let text = m.encode();
    for family in [
        "analysis_run_info",
        "analysis_run_metric_type",
        "analysis_run_metric_phase",
    ] {
        assert!(samples(&text, family).is_empty(), "{family} left");
    }
}

#[test]
fn experiment_info_defaults_to_pending_and_follows_the_phase() {
    let m = Metrics::new();
    let mut exp: Experiment = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Experiment",
        "metadata": {"name": "exp", "namespace": "shop"},
        "spec": {"templates": []},
    }))
    .expect("valid experiment");
    m.observe_experiment(&exp);
    assert_eq!(
        samples(&m.encode(), "experiment_info"),
        vec![r#"experiment_info{namespace="shop",name="exp",phase="Pending"} 1"#]
    );
    exp.status = Some(serde_json::from_value(json!({"phase": "Successful"})).unwrap());
    m.observe_experiment(&exp);
    assert_eq!(
        samples(&m.encode(), "experiment_info"),
        vec![r#"experiment_info{namespace="shop",name="exp",phase="Successful"} 1"#]
    );
    m.forget_experiment("shop", "exp");
    assert!(samples(&m.encode(), "experiment_info").is_empty());
}

#[test]
fn outcomes_count_completions_and_aborts_by_cause_with_durations() {
    let m = Metrics::new();
    m.outcome(
        "ns",
        "ro",
        Outcome::Completed,
        AbortCause::Manual,
        Some(90.0),
    );
    m.outcome(
        "ns",
        "ro",
        Outcome::Aborted,
        AbortCause::Analysis,
        Some(45.0),
    );
    m.outcome("ns", "ro", Outcome::Aborted, AbortCause::Analysis, None);
    let text = m.encode();
    let mut got = samples(&text, "sluice_rollout_outcomes_total");
    got.sort();
    assert_eq!(
        got,
        vec![
            r#"sluice_rollout_outcomes_total{namespace="ns",name="ro",outcome="aborted",cause="analysis"} 2"#,
            // A completed update never carries an abort cause.
            r#"sluice_rollout_outcomes_total{namespace="ns",name="ro",outcome="completed",cause="none"} 1"#,
        ]
    );
    let mut counts = samples(&text, "sluice_rollout_update_duration_seconds_count");
    counts.sort();
    assert_eq!(
        counts,
        vec![
            r#"sluice_rollout_update_duration_seconds_count{namespace="ns",name="ro",outcome="aborted"} 1"#,
            r#"sluice_rollout_update_duration_seconds_count{namespace="ns",name="ro",outcome="completed"} 1"#,
        ]
    );
}

#[test]
fn abort_causes_are_classified_from_the_progressing_condition() {
    let cases = [
        (
            "ProgressDeadlineExceeded",
            "ReplicaSet has timed out progressing.",
            AbortCause::Deadline,
        ),
        (
            "RolloutAborted",
            "Rollout aborted update to revision 3: Step-based analysis phase failed: Metric \"x\" assessed Failed",
            AbortCause::Analysis,
        ),
        (
            "RolloutAborted",
            "Rollout aborted update to revision 3: Background analysis phase failed",
            AbortCause::Analysis,
        ),
        (
            "RolloutAborted",
            "Rollout aborted update to revision 3: Experiment 'e' failed",
            AbortCause::Analysis,
        ),
        (
            "RolloutAborted",
            "Rollout aborted update to revision 3",
            AbortCause::Manual,
        ),
    ];
    for (reason, message, want) in cases {
        assert_eq!(AbortCause::classify(reason, message), want, "{message}");
    }
}

#[test]
fn request_paths_parse_into_upstream_kinds_and_verbs() {
    // (method, path, query, (kind, namespace, name, verb))
    type Case<'a> = (
        Method,
        &'a str,
        Option<&'a str>,
        (&'a str, &'a str, &'a str, &'a str),
    );
    let cases: &[Case] = &[
        (
            Method::GET,
            "/apis/argoproj.io/v1alpha1/namespaces/shop/rollouts/web",
            None,
            ("rollouts", "shop", "web", "Get"),
        ),
        (
            Method::GET,
            "/apis/argoproj.io/v1alpha1/rollouts",
            Some("limit=500"),
            ("rollouts", "", "", "List"),
        ),
        (
            Method::GET,
            "/apis/argoproj.io/v1alpha1/rollouts",
            Some("watch=true&resourceVersion=5"),
            ("rollouts", "", "", "Watch"),
        ),
        (
            Method::PATCH,
            "/apis/argoproj.io/v1alpha1/namespaces/shop/rollouts/web/status",
            None,
            ("rollouts", "shop", "web", "Patch"),
        ),
        (
            Method::POST,
            "/apis/apps/v1/namespaces/shop/replicasets",
            None,
            ("replicasets", "shop", "", "Create"),
        ),
        (
            Method::PUT,
            "/apis/coordination.k8s.io/v1/namespaces/sluice/leases/sluice",
            None,
            ("leases", "sluice", "sluice", "Update"),
        ),
        (
            Method::DELETE,
            "/api/v1/namespaces/shop/pods/p",
            None,
            ("pods", "shop", "p", "Delete"),
        ),
        (
            Method::GET,
            "/api/v1/namespaces/shop",
            None,
            ("namespaces", "", "shop", "Get"),
        ),
        (Method::GET, "/apis", None, ("Unknown", "", "", "Unknown")),
        (
            Method::GET,
            "/version",
            None,
            ("Unknown", "", "", "Unknown"),
        ),
    ];
    for (method, path, query, (kind, ns, name, verb)) in cases {
        let got = RequestInfo::parse(method, path, *query);
        assert_eq!(
            (
                got.kind.as_str(),
                got.namespace.as_str(),
                got.name.as_str(),
                got.verb
            ),
            (*kind, *ns, *name, *verb),
            "{method} {path}"
        );
    }
}

#[test]
fn request_counter_collapses_names_like_upstream() {
    let m = Metrics::new();
    m.k8s_request("rollouts", "shop", "web", "Get", 200);
    m.k8s_request("replicasets", "shop", "web-abc", "Patch", 200);
    m.k8s_request("rollouts", "", "", "List", 200);
    m.k8s_request("whatever", "x", "y", "Unknown", 404);
    let mut got = samples(&m.encode(), "controller_clientset_k8s_request_total");
    got.sort();
    assert_eq!(
        got,
        vec![
            r#"controller_clientset_k8s_request_total{kind="Unknown",namespace="Unknown",name="Unknown",verb="Unknown",status_code="404"} 1"#,
            r#"controller_clientset_k8s_request_total{kind="replicasets",namespace="shop",name="N/A",verb="Patch",status_code="200"} 1"#,
            r#"controller_clientset_k8s_request_total{kind="rollouts",namespace="",name="N/A",verb="List",status_code="200"} 1"#,
            r#"controller_clientset_k8s_request_total{kind="rollouts",namespace="shop",name="web",verb="Get",status_code="200"} 1"#,
        ]
    );
}

#[tokio::test]
async fn the_client_layer_counts_requests_made_through_a_kube_client() {
    let cluster = sluice_cluster::EmbeddedCluster::start(sluice_cluster::ClusterConfig {
        port: 0,
        ..Default::default()
    })
    .await
    .expect("embedded cluster starts");
    let metrics = Arc::new(Metrics::new());
    let mut config = kube::Config::new(
        format!("http://{}", cluster.addr())
            .parse()
            .expect("valid url"),
    );
    config.default_namespace = "default".into();
    let client = kube::client::ClientBuilder::try_from(config)
        .expect("client builder")
        .with_layer(&metrics.k8s_request_layer())
        .build();
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(client, "default");
    api.list(&Default::default()).await.expect("list works");
    let missing = api.get("absent").await;
    assert!(missing.is_err());
    let mut got = samples(&metrics.encode(), "controller_clientset_k8s_request_total");
    got.sort();
    assert_eq!(
        got,
        vec![
            r#"controller_clientset_k8s_request_total{kind="configmaps",namespace="default",name="N/A",verb="List",status_code="200"} 1"#,
            r#"controller_clientset_k8s_request_total{kind="configmaps",namespace="default",name="absent",verb="Get",status_code="404"} 1"#,
        ]
    );
    cluster.shutdown().await;
}

fn named(name: &str) -> Rollout {
    let mut ro = rollout(json!({"canary": {}}), json!({}));
    ro.metadata.name = Some(name.to_string());
    ro
}

#[test]
fn syncing_from_a_cache_removes_rollouts_that_were_deleted() {
    let m = Metrics::new();
    let (a, b) = (named("a"), named("b"));
    m.sync_rollouts([&a, &b]);
    assert_eq!(samples(&m.encode(), "rollout_info").len(), 2);
    m.sync_rollouts([&b]);
    let text = m.encode();
    let info = samples(&text, "rollout_info");
    assert_eq!(info.len(), 1);
    assert!(info[0].contains(r#"name="b""#), "{info:?}");
    assert!(
        samples(&text, "rollout_info_replicas_desired")
            .iter()
            .all(|l| !l.contains(r#"name="a""#))
    );
}

#[test]
fn scrape_hooks_refresh_the_gauges_at_read_time() {
    let m = Metrics::new();
    let cache = Arc::new(std::sync::Mutex::new(vec![named("web")]));
    let source = cache.clone();
    m.on_scrape("test", move |m| {
        m.sync_rollouts(source.lock().unwrap().iter())
    });
    assert_eq!(samples(&m.encode(), "rollout_info").len(), 1);
    cache.lock().unwrap().clear();
    assert!(samples(&m.encode(), "rollout_info").is_empty());
}

#[test]
fn a_scrape_hook_registered_again_under_its_name_replaces_the_old_one() {
    // A controller that loses and regains the lease registers its hook again with a new
    // cache; the stale cache's hook must stop running.
    use std::sync::atomic::{AtomicUsize, Ordering};
    let m = Metrics::new();
    let stale_runs = Arc::new(AtomicUsize::new(0));
    let fresh_runs = Arc::new(AtomicUsize::new(0));
    let other_runs = Arc::new(AtomicUsize::new(0));
    let (s, f, o) = (stale_runs.clone(), fresh_runs.clone(), other_runs.clone());
    m.on_scrape("rollouts", move |_| {
        s.fetch_add(1, Ordering::SeqCst);
    });
    m.on_scrape("experiments", move |_| {
        o.fetch_add(1, Ordering::SeqCst);
    });
    m.on_scrape("rollouts", move |_| {
        f.fetch_add(1, Ordering::SeqCst);
    });
    m.encode();
    m.encode();
    assert_eq!(stale_runs.load(Ordering::SeqCst), 0);
    assert_eq!(fresh_runs.load(Ordering::SeqCst), 2);
    assert_eq!(
        other_runs.load(Ordering::SeqCst),
        2,
        "hooks of other names stay"
    );
}

#[test]
fn syncing_analysis_runs_and_experiments_drops_deleted_ones() {
    let m = Metrics::new();
    let run = analysis_run(json!({"phase": "Running"}));
    m.sync_analysis_runs([&run]);
    assert_eq!(samples(&m.encode(), "analysis_run_info").len(), 1);
    m.sync_analysis_runs(std::iter::empty());
    let text = m.encode();
    assert!(samples(&text, "analysis_run_info").is_empty());
    assert!(samples(&text, "analysis_run_metric_phase").is_empty());
    let exp: Experiment = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Experiment",
        "metadata": {"name": "exp", "namespace": "shop"}, "spec": {"templates": []},
    }))
    .unwrap();
    m.sync_experiments([&exp]);
    assert_eq!(samples(&m.encode(), "experiment_info").len(), 1);
    m.sync_experiments(std::iter::empty());
    assert!(samples(&m.encode(), "experiment_info").is_empty());
}

#[test]
fn label_values_are_shared_between_series_and_dropped_once_no_series_holds_them() {
    let mut interner = Interner::default();
    let first = interner.get("ro-1");
    let again = interner.get("ro-1");
    assert!(Arc::ptr_eq(&first, &again), "one copy per value");
    let held = interner.get("held");
    drop((first, again));
    for n in 0..5_000 {
        interner.get(&format!("gone-{n}"));
    }
    assert!(interner.values.contains("held"), "a value in use is kept");
    assert!(
        interner.values.len() <= 2_048,
        "values no series holds are swept: {} kept",
        interner.values.len()
    );
    assert_eq!(&*held, "held");
}
