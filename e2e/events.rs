//! The Events of a canary walk, in upstream's order.
//!
//! Upstream's own end-to-end test of this walk (`TestRolloutAbortRetryPromote` in
//! argo-rollouts' `test/e2e/functional_test.go`) watches the namespace's Events and compares
//! the reasons of the Rollout's Events, one per watch notification (so a repeated Event that
//! the recorder merges into a series counts again), with a fixed list. The same walk here
//! must give the same list, and the messages upstream's recorder writes.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{Env, watched_objects};
use crate::require_kubectl;

const T: Duration = Duration::from_secs(60);

fn manifest(image: &str) -> String {
    format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: abort-retry-promote}}
spec:
  strategy:
    canary:
      steps:
      - setWeight: 50
      - pause: {{duration: 3s}}
  selector:
    matchLabels: {{app: abort-retry-promote}}
  template:
    metadata:
      labels: {{app: abort-retry-promote}}
    spec:
      containers:
      - name: abort-retry-promote
        image: {image}
"#
    )
}

fn wait_phase(env: &Env, want: &str) -> Value {
    env.wait_for(&format!("phase {want}"), T, |env| {
        let ro = env.get_json(&["rollout", "abort-retry-promote"]);
        let observed = ro["status"]["observedGeneration"].as_str()
            == Some(&ro["metadata"]["generation"].to_string());
        (observed && ro["status"]["phase"] == want).then_some(ro)
    })
}

/// Every notification of the Events watch for the Rollout `uid`: (reason, message).
fn watched(log: &str, uid: &str) -> Vec<(String, String)> {
    watched_objects(log)
        .into_iter()
        .filter(|e| e["involvedObject"]["uid"] == uid)
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or_default().to_string(),
                e["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_canary_walk_records_upstreams_events_in_upstreams_order() {
    require_kubectl!();
    let env = Env::start("events-walk");
    let mut watch = env.watch_json("events-watch", &["events"]);
    // The watch is listening once it reports the Namespace's first Event or a moment of
    // silence is over; wait for its process to have started by asking the server for the
    // same list it began from.
    env.kubectl_ok(&["get", "events"]);

    env.apply(&manifest("nginx:1.19-alpine"));
    let ro = wait_phase(&env, "Healthy");
    let uid = ro["metadata"]["uid"].as_str().unwrap().to_string();
    env.apply(&manifest("nginx:1.20-alpine"));
    let paused = wait_phase(&env, "Paused");
    let attempt = paused["status"]["duration"].clone();
    assert!(attempt["rolloutStartedAt"].is_string(), "{attempt}");
    assert!(attempt["finishedAt"].is_null(), "{attempt}");
    env.patch_rollout_status("abort-retry-promote", r#"{"status":{"abort":true}}"#);
    let aborted = wait_phase(&env, "Degraded");
    // status.duration: the aborted attempt finished as upstream records it.
    let d = &aborted["status"]["duration"];
    assert_eq!(d["completionStatus"], "Aborted", "{d}");
    assert_eq!(d["rolloutStartedAt"], attempt["rolloutStartedAt"]);
    assert!(
        d["finishedAt"].as_str() >= d["rolloutStartedAt"].as_str(),
        "{d}"
    );
    env.patch_rollout_status("abort-retry-promote", r#"{"status":{"abort":false}}"#);
    wait_phase(&env, "Paused");
    let done = wait_phase(&env, "Healthy"); // the 3 s pause ends by itself
    // The retry is a new attempt; it ends Promoted, and a timed pause is not a manual one.
    let d = &done["status"]["duration"];
    assert_eq!(d["completionStatus"], "Promoted", "{d}");
    assert!(d["rolloutStartedAt"].as_str() >= aborted["status"]["duration"]["finishedAt"].as_str());
    assert!(
        d["finishedAt"].is_string() && d["manualPauseStartedAt"].is_null(),
        "{d}"
    );
    assert!(d["totalManualPauseDurationSeconds"].is_null(), "{d}");
    let want: Vec<&str> = vec![
        "RolloutAddedToInformer",
        "RolloutNotCompleted",
        "RolloutUpdated",
        "NewReplicaSetCreated",
        "ScalingReplicaSet",
        "RolloutCompleted",
        "RolloutNotCompleted",
        "RolloutUpdated",
        "NewReplicaSetCreated",
        "ScalingReplicaSet",
        "RolloutStepCompleted",
        "RolloutPaused",
        "ScalingReplicaSet",
        "RolloutAborted",
        "ScalingReplicaSet",
        "RolloutStepCompleted",
        "RolloutPaused",
        "RolloutStepCompleted",
        "RolloutResumed",
        "ScalingReplicaSet",
        "RolloutCompleted",
    ];
    // The last Event is published right after the status that made the Rollout Healthy.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let events = loop {
        let log = std::fs::read_to_string(&watch.log).unwrap_or_default();
        let events = watched(&log, &uid);
        if events.len() >= want.len() || std::time::Instant::now() > deadline {
            break events;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    watch.kill();
    let reasons: Vec<&str> = events.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(reasons, want, "{events:#?}");

    // Upstream's messages (utils/conditions), with this walk's names and hashes.
    let ns = &env.namespace;
    let first = &events[..6];
    let rs1 = first[3].1.split_whitespace().nth(2).unwrap().to_string();
    let hash1 = rs1.rsplit('-').next().unwrap().to_string();
    assert_eq!(
        first[0].1,
        format!("Rollout resource added to informer: {ns}/abort-retry-promote")
    );
    assert_eq!(
        first[1].1,
        format!("Rollout not completed, started update to revision 0 ({hash1})")
    );
    assert_eq!(first[2].1, "Rollout updated to revision 1");
    assert_eq!(first[3].1, format!("Created ReplicaSet {rs1} (revision 1)"));
    assert_eq!(
        first[4].1,
        format!("Scaled up ReplicaSet {rs1} (revision 1) from 0 to 1")
    );
    assert_eq!(
        first[5].1,
        format!("Rollout completed update to revision 1 ({hash1}): Initial deploy")
    );
    let rs2 = events[8].1.split_whitespace().nth(2).unwrap().to_string();
    let hash2 = rs2.rsplit('-').next().unwrap().to_string();
    let rest: Vec<String> = events[6..].iter().map(|(_, m)| m.clone()).collect();
    assert_eq!(
        rest,
        [
            format!("Rollout not completed, started update to revision 1 ({hash2})"),
            "Rollout updated to revision 2".to_string(),
            format!("Created ReplicaSet {rs2} (revision 2)"),
            format!("Scaled up ReplicaSet {rs2} (revision 2) from 0 to 1"),
            "Rollout step 1/2 completed (setWeight: 50)".to_string(),
            "Rollout is paused (CanaryPauseStep)".to_string(),
            format!("Scaled down ReplicaSet {rs2} (revision 2) from 1 to 0"),
            "Rollout aborted update to revision 2".to_string(),
            format!("Scaled up ReplicaSet {rs2} (revision 2) from 0 to 1"),
            "Rollout step 1/2 completed (setWeight: 50)".to_string(),
            "Rollout is paused (CanaryPauseStep)".to_string(),
            "Rollout step 2/2 completed (pause: 3s)".to_string(),
            "Rollout is resumed".to_string(),
            format!("Scaled down ReplicaSet {rs1} (revision 1) from 1 to 0"),
            format!(
                "Rollout completed update to revision 2 ({hash2}): Completed all 2 canary steps"
            ),
        ]
    );
}
