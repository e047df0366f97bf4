//! Experiment scenarios driven by the real kubectl (issue 5, item 1).

use std::time::Duration;

use serde_json::Value;

use crate::harness::Env;
use crate::require_kubectl;

const T: Duration = Duration::from_secs(60);

fn template(name: &str, app: &str) -> String {
    format!(
        r#"    - name: {name}
      selector:
        matchLabels: {{app: {app}}}
      template:
        metadata:
          labels: {{app: {app}}}
        spec:
          containers:
            - name: web
              image: nginx:1.27
              ports: [{{containerPort: 8080}}]
"#
    )
}

fn experiment_yaml(name: &str, extra: &str, templates: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Experiment\nmetadata:\n  name: {name}\nspec:\n{extra}  templates:\n{templates}"
    )
}

fn experiment(env: &Env, name: &str) -> Value {
    env.get_json(&["experiment", name])
}

fn wait_phase(env: &Env, name: &str, want: &str) -> Value {
    env.wait_for(&format!("experiment {name} phase {want}"), T, |env| {
        let ex = experiment(env, name);
        (ex["status"]["phase"].as_str() == Some(want)).then_some(ex)
    })
}

/// The ReplicaSets controlled by the Experiment with this uid: (name, spec.replicas).
fn owned_replica_sets(env: &Env, uid: &str) -> Vec<(String, i64)> {
    let list = env.get_json(&["replicasets"]);
    let mut out: Vec<(String, i64)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|rs| {
            rs["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|o| o.iter().any(|o| o["uid"].as_str() == Some(uid)))
        })
        .map(|rs| {
            (
                rs["metadata"]["name"].as_str().unwrap().to_string(),
                rs["spec"]["replicas"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn standalone_experiment_runs_for_its_duration_then_scales_down_and_is_garbage_collected() {
    require_kubectl!();
    let env = Env::start("exp_duration");
    let templates = template("baseline", "base")
        + &template("canary", "can")
            .replace("      selector:", "      service: {}\n      selector:");
    env.apply(&experiment_yaml(
        "ab",
        "  duration: 5s\n  scaleDownDelaySeconds: 1\n",
        &templates,
    ));

    let running = wait_phase(&env, "ab", "Running");
    let uid = running["metadata"]["uid"].as_str().unwrap().to_string();
    assert!(running["status"]["availableAt"].is_string(), "{running}");
    let statuses = running["status"]["templateStatuses"].as_array().unwrap();
    assert_eq!(statuses.len(), 2);
    for ts in statuses {
        assert_eq!(ts["status"], "Running", "{ts}");
        assert_eq!(ts["availableReplicas"], 1, "{ts}");
        assert!(ts["podTemplateHash"].is_string(), "{ts}");
    }
    assert_eq!(
        owned_replica_sets(&env, &uid),
        vec![("ab-baseline".to_string(), 1), ("ab-canary".to_string(), 1)]
    );
    // The canary template's Service selects exactly its pods.
    let svc = env.wait_for("service ab-canary", T, |env| {
        let out = env.kubectl(&["get", "service", "ab-canary", "-o", "json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice::<Value>(&out.stdout).unwrap())
    });
    let canary_hash = statuses[1]["podTemplateHash"].as_str().unwrap();
    assert_eq!(svc["spec"]["selector"]["app"], "can", "{svc}");
    assert_eq!(
        svc["spec"]["selector"]["rollouts-pod-template-hash"], canary_hash,
        "{svc}"
    );
    assert_eq!(svc["spec"]["ports"][0]["port"], 8080, "{svc}");
    let table = env.kubectl_ok(&["get", "exp"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("ab ") && l.contains("Running")),
        "kubectl get exp shows the phase:\n{table}"
    );

    let done = wait_phase(&env, "ab", "Successful");
    for ts in done["status"]["templateStatuses"].as_array().unwrap() {
        assert_eq!(ts["status"], "Successful", "{ts}");
    }
    let table = env.kubectl_ok(&["get", "exp", "ab"]);
    assert!(table.contains("Successful"), "{table}");

    // After scaleDownDelaySeconds the template ReplicaSets go to zero.
    env.wait_for("experiment ReplicaSets scaled to 0", T, |env| {
        let rss = owned_replica_sets(env, &uid);
        (rss.len() == 2 && rss.iter().all(|(_, r)| *r == 0)).then_some(())
    });
    env.wait_for("service ab-canary deleted after scale-down", T, |env| {
        (!env
            .kubectl(&["get", "service", "ab-canary"])
            .status
            .success())
        .then_some(())
    });
    let rs = env.get_json(&["replicaset", "ab-canary"]);
    assert!(
        rs["metadata"]["annotations"]["scale-down-deadline"].is_string(),
        "{rs}"
    );

    // Deleting the Experiment garbage-collects its ReplicaSets.
    env.kubectl_ok(&["delete", "exp", "ab"]);
    env.wait_for("experiment ReplicaSets garbage-collected", T, |env| {
        owned_replica_sets(env, &uid).is_empty().then_some(())
    });
}

#[test]
fn an_invalid_experiment_goes_error_naming_the_field_and_creates_nothing() {
    require_kubectl!();
    let env = Env::start("exp_invalid");
    // The second template's selector also selects the first template's pods.
    let overlapping = template("baseline", "web")
        + r#"    - name: canary
      selector:
        matchExpressions: [{key: app, operator: Exists}]
      template:
        metadata:
          labels: {app: web-canary}
        spec:
          containers:
            - name: web
              image: nginx:1.28
"#;
    env.apply(&experiment_yaml("bad", "  duration: 5s\n", &overlapping));
    let ex = wait_phase(&env, "bad", "Error");
    let message = ex["status"]["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with(
            "spec.templates[1].selector: overlaps with the selector of template \"baseline\""
        ),
        "{message}"
    );
    let conditions = ex["status"]["conditions"].as_array().unwrap();
    assert!(
        conditions
            .iter()
            .any(|c| c["type"] == "InvalidSpec" && c["status"] == "True"),
        "{conditions:?}"
    );
    let uid = ex["metadata"]["uid"].as_str().unwrap();
    assert!(owned_replica_sets(&env, uid).is_empty());
    let table = env.kubectl_ok(&["get", "exp", "bad"]);
    assert!(table.contains("Error"), "{table}");

    // A missing analysis template is reported the same way.
    env.apply(&experiment_yaml(
        "noat",
        "  analyses:\n    - name: check\n      templateName: does-not-exist\n",
        &template("solo", "solo"),
    ));
    let ex = wait_phase(&env, "noat", "Error");
    assert_eq!(
        ex["status"]["message"],
        "spec.analyses[0].templateName: AnalysisTemplate \"does-not-exist\" not found"
    );
    let uid = ex["metadata"]["uid"].as_str().unwrap();
    assert!(owned_replica_sets(&env, uid).is_empty());
}

#[test]
fn a_replica_set_name_taken_by_another_owner_makes_the_experiment_error() {
    require_kubectl!();
    let env = Env::start("exp_clash");
    env.apply(
        r#"apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: clash-solo
spec:
  replicas: 0
  selector:
    matchLabels: {app: other}
  template:
    metadata:
      labels: {app: other}
    spec:
      containers:
        - name: web
          image: nginx:1.27
"#,
    );
    env.apply(&experiment_yaml(
        "clash",
        "  duration: 5s\n",
        &template("solo", "solo"),
    ));
    let ex = wait_phase(&env, "clash", "Error");
    assert_eq!(
        ex["status"]["message"],
        "Failed to create ReplicaSet for template 'solo': replicaset \"clash-solo\" already exists and is not controlled by this experiment"
    );
    let rs = env.get_json(&["replicaset", "clash-solo"]);
    assert_eq!(rs["spec"]["template"]["metadata"]["labels"]["app"], "other");
}

/// A local HTTP server answering every request with `{"ok": true}` (127.0.0.1 only).
fn ok_server() -> (u16, std::thread::JoinHandle<()>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        // Bounded: enough requests for any scenario here.
        for stream in listener.incoming().take(200) {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let body = r#"{"ok": true}"#;
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, handle)
}

#[test]
fn a_standalone_experiment_without_duration_ends_when_its_required_analysis_succeeds() {
    require_kubectl!();
    let env = Env::start("exp_required");
    let (port, _server) = ok_server();
    env.apply(&format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: healthy
spec:
  args:
    - name: hash
  metrics:
    - name: ok
      count: 1
      successCondition: result.ok == true
      provider:
        web:
          url: "http://127.0.0.1:{port}/check?hash={{{{args.hash}}}}"
          jsonPath: "{{$}}"
"#
    ));
    env.apply(&experiment_yaml(
        "req",
        "  scaleDownDelaySeconds: 0\n  analyses:\n    - name: check\n      templateName: healthy\n      requiredForCompletion: true\n      args:\n        - name: hash\n          value: \"{{templates.solo.podTemplateHash}}\"\n",
        &template("solo", "solo"),
    ));
    let ex = wait_phase(&env, "req", "Successful");
    assert_eq!(ex["status"]["message"], "Required AnalysisRuns completed");
    let runs = ex["status"]["analysisRuns"].as_array().unwrap();
    assert_eq!(runs[0]["analysisRun"], "req-check");
    assert_eq!(runs[0]["phase"], "Successful");
    let run = env.get_json(&["analysisrun", "req-check"]);
    let hash = ex["status"]["templateStatuses"][0]["podTemplateHash"]
        .as_str()
        .unwrap();
    assert_eq!(run["spec"]["args"][0]["value"], hash);
    let uid = ex["metadata"]["uid"].as_str().unwrap().to_string();
    env.wait_for("experiment ReplicaSet scaled to 0", T, |env| {
        let rss = owned_replica_sets(env, &uid);
        (rss.len() == 1 && rss[0].1 == 0).then_some(())
    });
}
