//! Secret-backed analysis arguments never leak. AnalysisRuns and a canary Rollout take
//! arguments from a Secret (`valueFrom.secretKeyRef`) and send them as auth headers to a web
//! endpoint and a Prometheus-compatible API (a server on 127.0.0.1 that checks the headers, so
//! the secrets provably reached it); some also put a secret into a URL that fails, so the error
//! paths run too. The controller runs first with text logs, then with JSON logs, both at debug
//! level; afterwards every log line, every Event, every AnalysisRun and Rollout (status
//! included) and the controller's /metrics are searched for each secret value (as written,
//! and base64-encoded as the Secret stores it): none may appear.

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::harness::{Env, free_port};
use crate::require_kubectl;

const T: Duration = Duration::from_secs(120);

const WEB_TOKEN: &str = "wEb-T0ken-6a1f93c2e7";
const PROM_KEY: &str = "pr0m-K3y-b84d0e5519";
const BASIC_PASSWORD: &str = "bAs1c-Pw-3c7e2a90d4";
const PATH_SECRET: &str = "p4th-S3cret-91e6f0b2aa";
const SECRETS: [&str; 4] = [WEB_TOKEN, PROM_KEY, BASIC_PASSWORD, PATH_SECRET];

/// Requests that carried the right credentials, per endpoint.
#[derive(Default)]
struct Authorized {
    web: AtomicUsize,
    prometheus: AtomicUsize,
    basic: AtomicUsize,
    refused: Mutex<Vec<String>>,
}

/// A server on 127.0.0.1 that answers only requests with the expected credentials:
/// `/web` (Authorization: Bearer), `/api/v1/query` (X-Api-Key, like a Prometheus behind an
/// API gateway), `/basic` (basic auth); anything else (such as a URL with a secret in it)
/// gets a 500 whose body echoes the path, as careless servers do.
struct AuthServer {
    addr: std::net::SocketAddr,
    /// A port nothing listens on (connection errors name the URL).
    dead_port: u16,
    seen: Arc<Authorized>,
    _thread: std::thread::JoinHandle<()>,
}

impl AuthServer {
    fn start() -> AuthServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Authorized::default());
        let state = seen.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
                    let state = state.clone();
                    async move { answer(&state, &uri, &headers) }
                });
                let _ = axum::serve(listener, app).await;
            });
        });
        AuthServer {
            addr,
            dead_port: free_port(),
            seen,
            _thread: thread,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

fn answer(state: &Authorized, uri: &Uri, headers: &HeaderMap) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    match uri.path() {
        "/web" if header("authorization") == format!("Bearer {WEB_TOKEN}") => {
            state.web.fetch_add(1, Ordering::SeqCst);
            axum::Json(json!({"ok": true, "rate": 1})).into_response()
        }
        "/api/v1/query" if header("x-api-key") == PROM_KEY => {
            state.prometheus.fetch_add(1, Ordering::SeqCst);
            axum::Json(json!({"status": "success", "data": {"resultType": "vector",
                "result": [{"metric": {}, "value": [1_700_000_000, "1"]}]}}))
            .into_response()
        }
        "/basic" => {
            let want = base64::engine::general_purpose::STANDARD
                .encode(format!("sluice:{BASIC_PASSWORD}"));
            if header("authorization") == format!("Basic {want}") {
                state.basic.fetch_add(1, Ordering::SeqCst);
                axum::Json(json!({"ok": true})).into_response()
            } else {
                (StatusCode::UNAUTHORIZED, "bad credentials").into_response()
            }
        }
        other => {
            state.refused.lock().unwrap().push(other.to_string());
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("no route for {other} (auth {})", header("authorization")),
            )
                .into_response()
        }
    }
}

fn secret_yaml() -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\nstringData:\n  web-token: {WEB_TOKEN}\n  prom-key: {PROM_KEY}\n  password: {BASIC_PASSWORD}\n  path: {PATH_SECRET}\n"
    )
}

const SECRET_ARGS: &str = r#"
    - name: web-token
      valueFrom: {secretKeyRef: {name: creds, key: web-token}}
    - name: prom-key
      valueFrom: {secretKeyRef: {name: creds, key: prom-key}}
    - name: password
      valueFrom: {secretKeyRef: {name: creds, key: password}}
    - name: path
      valueFrom: {secretKeyRef: {name: creds, key: path}}"#;

/// Metrics that use every secret: as a bearer header, a Prometheus header, basic-auth
/// password, and (failing) inside a URL path and a header of a request that errors.
fn metrics(server: &AuthServer) -> String {
    format!(
        r#"
    - name: web
      successCondition: "result.ok == true"
      provider:
        web:
          url: "{web}"
          headers: [{{key: Authorization, value: "Bearer {{{{args.web-token}}}}"}}]
          jsonPath: "{{$}}"
    - name: prom
      successCondition: "result[0] == 1"
      provider:
        prometheus:
          address: "{base}"
          query: "up"
          headers: [{{key: X-Api-Key, value: "{{{{args.prom-key}}}}"}}]
    - name: basic
      successCondition: "result.ok == true"
      provider:
        web:
          url: "{basic}"
          authentication: {{basicAuth: {{username: sluice, password: "{{{{args.password}}}}"}}}}
          jsonPath: "{{$}}"
    - name: leaky-url
      consecutiveErrorLimit: 0
      provider:
        web:
          url: "{base}/s/{{{{args.path}}}}?token={{{{args.web-token}}}}"
          headers: [{{key: Authorization, value: "Token {{{{args.password}}}}"}}]
    - name: leaky-connect
      consecutiveErrorLimit: 0
      provider:
        web:
          url: "http://127.0.0.1:{dead}/s/{{{{args.path}}}}?token={{{{args.web-token}}}}"
    - name: leaky-prometheus
      consecutiveErrorLimit: 0
      provider:
        prometheus:
          address: "http://127.0.0.1:{dead}/{{{{args.path}}}}"
          query: "up{{token='{{{{args.prom-key}}}}'}}""#,
        dead = server.dead_port,
        web = server.url("/web"),
        basic = server.url("/basic"),
        base = server.url(""),
    )
}

fn run_yaml(name: &str, server: &AuthServer) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisRun\nmetadata:\n  name: {name}\nspec:\n  args:{SECRET_ARGS}\n  dryRun: [{{metricName: \"leaky-.*\"}}]\n  metrics:{}\n",
        metrics(server)
    )
}

fn template_yaml(server: &AuthServer) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nmetadata:\n  name: secret-checks\nspec:\n  args:{SECRET_ARGS}\n  dryRun: [{{metricName: \"leaky-.*\"}}]\n  metrics:{}\n",
        metrics(server)
    )
}

fn rollout_yaml(image: &str) -> String {
    format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: guarded
spec:
  replicas: 2
  selector:
    matchLabels: {{app: guarded}}
  template:
    metadata:
      labels: {{app: guarded}}
    spec:
      containers:
        - name: app
          image: {image}
  strategy:
    canary:
      steps:
        - setWeight: 50
        - analysis:
            templates: [{{templateName: secret-checks}}]
"#
    )
}

fn wait_run(env: &Env, name: &str) -> Value {
    env.wait_for(&format!("analysisrun {name} done"), T, |env| {
        let ar = env.get_json(&["analysisrun", name]);
        let phase = ar["status"]["phase"].as_str().unwrap_or("");
        ["Successful", "Failed", "Error", "Inconclusive"]
            .contains(&phase)
            .then_some(ar)
    })
}

fn wait_rollout(env: &Env, want: &str) -> Value {
    env.wait_for(&format!("rollout guarded {want}"), T, |env| {
        let ro = env.get_json(&["rollout", "guarded"]);
        let observed = ro["status"]["observedGeneration"].as_str()
            == Some(&ro["metadata"]["generation"].to_string());
        (observed && ro["status"]["phase"] == want).then_some(ro)
    })
}

/// Every form a secret could leak in: as written, and base64 (how the Secret stores it).
fn leak_forms() -> Vec<(String, &'static str)> {
    let b64 = base64::engine::general_purpose::STANDARD;
    SECRETS
        .iter()
        .flat_map(|s| [(s.to_string(), *s), (b64.encode(s), *s)])
        .collect()
}

/// The lines of `text` holding any secret, labelled with where they came from.
fn leaks(place: &str, text: &str) -> Vec<String> {
    let forms = leak_forms();
    text.lines()
        .filter_map(|line| {
            forms
                .iter()
                .find(|(form, _)| line.contains(form.as_str()))
                .map(|(_, secret)| format!("{place}: secret {secret:?} in: {line}"))
        })
        .collect()
}

#[test]
fn leak_search_finds_secrets_in_every_form() {
    let b64 = base64::engine::general_purpose::STANDARD.encode(WEB_TOKEN);
    assert_eq!(
        leaks("x", &format!("a\nAuthorization: Bearer {WEB_TOKEN}\n")).len(),
        1
    );
    assert_eq!(leaks("x", &format!("data: {b64}")).len(), 1);
    assert!(leaks("x", "nothing here\n").is_empty());
}

#[test]
fn secret_backed_auth_headers_reach_the_provider_and_appear_nowhere_else() {
    require_kubectl!();
    let mut env = Env::start("secrets");
    // Debug level for everything (the default scenario controller logs only Sluice at debug).
    if let Some(mut c) = env.controller.take() {
        c.kill();
    }
    let port = free_port();
    env.controller = Some(env.spawn_controller_logging("controller-text", port, "debug", &[]));
    env.metrics_port = port;
    let server = AuthServer::start();
    env.apply(&secret_yaml());

    // Phase 1: text logs at debug level.
    env.apply(&run_yaml("run-text", &server));
    let run = wait_run(&env, "run-text");
    assert_eq!(run["status"]["phase"], "Successful", "{run:#}");
    env.apply(&template_yaml(&server));
    env.apply(&rollout_yaml("nginx:1.25"));
    wait_rollout(&env, "Healthy");
    env.apply(&rollout_yaml("nginx:1.26"));
    let ro = wait_rollout(&env, "Healthy");
    assert_eq!(
        ro["metadata"]["annotations"]["rollout.argoproj.io/revision"],
        "2"
    );
    let step_runs = env.get_json(&["analysisruns", "-l", "rollout-type=Step"]);
    let step_runs = step_runs["items"].as_array().cloned().unwrap_or_default();
    assert!(
        step_runs.len() == 1 && step_runs[0]["status"]["phase"] == "Successful",
        "the Rollout's step analysis ran with the secrets: {step_runs:#?}"
    );
    let metrics_text = env
        .http_get(env.metrics_port, "/metrics")
        .map(|(_, body)| body)
        .unwrap_or_default();
    assert!(
        metrics_text.contains("analysis_run_info"),
        "the controller's /metrics answered: {metrics_text}"
    );
    let text_log = env.controller.as_ref().unwrap().log_text();

    // Phase 2: JSON logs at debug level, a fresh controller.
    if let Some(mut c) = env.controller.take() {
        c.kill();
    }
    let port = free_port();
    env.controller = Some(env.spawn_controller_logging(
        "controller-json",
        port,
        "debug",
        &["--log-format", "json"],
    ));
    env.metrics_port = port;
    env.apply(&run_yaml("run-json", &server));
    let run = wait_run(&env, "run-json");
    assert_eq!(run["status"]["phase"], "Successful", "{run:#}");
    let json_metrics = env.wait_for("the JSON controller's /metrics", T, |env| {
        env.http_get(port, "/metrics").map(|(_, body)| body)
    });
    let json_log = env.controller.as_ref().unwrap().log_text();

    // The credentials reached the server, and the leaky metric's request was made.
    for (endpoint, count) in [
        ("web", server.seen.web.load(Ordering::SeqCst)),
        ("prometheus", server.seen.prometheus.load(Ordering::SeqCst)),
        ("basic", server.seen.basic.load(Ordering::SeqCst)),
    ] {
        assert!(count >= 3, "{endpoint}: {count} authorized requests");
    }
    assert!(
        server
            .seen
            .refused
            .lock()
            .unwrap()
            .iter()
            .any(|p| p.contains(PATH_SECRET)),
        "the leaky metric's URL reached the server"
    );
    assert!(
        json_log.lines().any(|l| l.starts_with('{')) && json_log.contains("\"level\""),
        "the second controller logged JSON:\n{}",
        json_log.lines().take(5).collect::<Vec<_>>().join("\n")
    );
    assert!(
        text_log.contains("DEBUG") && json_log.contains("DEBUG"),
        "both controllers logged at debug level"
    );

    // Search everything for the secrets.
    let mut found = Vec::new();
    found.extend(leaks("text log", &text_log));
    found.extend(leaks("JSON log", &json_log));
    found.extend(leaks("/metrics (text run)", &metrics_text));
    found.extend(leaks("/metrics (JSON run)", &json_metrics));
    let events = env.kubectl_ok(&["get", "events", "-o", "json"]);
    assert!(events.contains("\"items\""), "{events}");
    found.extend(leaks("Events", &events));
    let events_v1 = env.kubectl_ok(&["get", "events.events.k8s.io", "-o", "json"]);
    found.extend(leaks("events.k8s.io Events", &events_v1));
    for kind in ["analysisruns", "rollouts", "experiments", "replicasets"] {
        let list = env.get_json(&[kind]);
        let pretty = serde_json::to_string_pretty(&list).unwrap();
        found.extend(leaks(kind, &pretty));
    }
    let runs = env.get_json(&["analysisruns"]);
    let n = runs["items"].as_array().map(Vec::len).unwrap_or(0);
    assert!(
        n >= 3,
        "two standalone runs and the Rollout's step run: {n}"
    );
    // The leaky metric's measurements ran and failed (so its error path was searched too).
    let leaky_errors = runs["items"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r["status"]["metricResults"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|m| m["name"] == "leaky-url")
        .filter(|m| m["error"].as_i64().unwrap_or(0) + m["failed"].as_i64().unwrap_or(0) > 0)
        .count();
    assert!(leaky_errors >= 1, "{runs:#}");
    // Its error message describes the request (so the secrets in it had to be redacted).
    let leaky_messages: Vec<String> = runs["items"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r["status"]["metricResults"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|m| m["name"].as_str().is_some_and(|n| n.starts_with("leaky-")))
        .flat_map(|m| m["measurements"].as_array().cloned().unwrap_or_default())
        .filter_map(|m| m["message"].as_str().map(str::to_string))
        .collect();
    assert!(
        leaky_messages.iter().any(|m| m.contains("/s/")) && leaky_messages.len() >= 3,
        "the failed request is described: {leaky_messages:#?}"
    );
    assert!(
        found.is_empty(),
        "secret values leaked:\n{}",
        found.join("\n")
    );
}
