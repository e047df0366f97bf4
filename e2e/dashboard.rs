//! The dashboard in a real browser (Debian's headless Chromium through chromedriver): it
//! loads, shows a canary advance live without reloading, promotes and then aborts through
//! its buttons (with confirmation), shows a refused action inline, and the changes are
//! checked through kubectl. The screenshots in docs/images come from this test
//! (`SLUICE_UPDATE_SCREENSHOTS=1` writes them there).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::cli::ok;
use crate::harness::{Env, Proc, free_port, repo_root, sluice_bin, wait_until};
use crate::prometheus::Served;
use crate::require_kubectl;
use crate::webdriver::Browser;

const T: Duration = Duration::from_secs(60);

const TEMPLATE: &str = r#"apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: success-rate
spec:
  args:
    - name: url
  metrics:
    - name: success-rate
      interval: 1s
      successCondition: "result >= 0.95"
      provider:
        web:
          url: "{{args.url}}"
          jsonPath: "{$.rate}"
"#;

fn rollout(url: &str) -> String {
    format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: checkout
spec:
  replicas: 4
  selector:
    matchLabels: {{app: checkout}}
  template:
    metadata:
      labels: {{app: checkout}}
    spec:
      containers:
        - name: checkout
          image: registry.example/checkout:1.4.0
  strategy:
    canary:
      maxSurge: 1
      maxUnavailable: 0
      analysis:
        templates: [{{templateName: success-rate}}]
        args: [{{name: url, value: "{url}"}}]
      steps:
        - setWeight: 25
        - pause: {{}}
        - setWeight: 50
        - pause: {{}}
        - setWeight: 75
        - pause: {{duration: 1h}}
"#
    )
}

/// Where screenshots go: docs/images when asked, a temporary directory otherwise.
fn shots_dir(tmp: &std::path::Path) -> PathBuf {
    if std::env::var_os("SLUICE_UPDATE_SCREENSHOTS").is_some() {
        repo_root().join("docs/images")
    } else {
        tmp.to_path_buf()
    }
}

fn save_png(dir: &std::path::Path, name: &str, png: &[u8]) {
    assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
    assert!(
        png.len() > 10_000,
        "{name} shows something ({} bytes)",
        png.len()
    );
    std::fs::write(dir.join(name), png).expect("write screenshot");
}

fn start_dashboard(env: &Env) -> (Proc, u16) {
    let port = free_port();
    let log = env.dir.path().join("dashboard.log");
    let file = std::fs::File::create(&log).expect("log file");
    let child = Command::new(sluice_bin())
        .args(["dashboard", "--port", &port.to_string(), "--kubeconfig"])
        .arg(&env.kubeconfig)
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("clone"))
        .stderr(file)
        .spawn()
        .expect("starting sluice dashboard");
    let proc = Proc::from_child(child, "dashboard", log);
    wait_until("the dashboard to answer", T, || {
        crate::prometheus::http_get(&format!("http://127.0.0.1:{port}/api/rollouts"))
            .filter(|(code, _)| *code == 200)
    });
    (proc, port)
}

fn load_id(b: &Browser) -> String {
    b.execute("return window.__sluice.loadId", json!([]))
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn step_state(b: &Browser, index: usize) -> String {
    b.attribute_of(&format!("[data-testid=step-{index}]"), "data-state")
        .unwrap_or_default()
}

/// Click the action's button, check the confirmation names it, confirm.
fn act(b: &Browser, action: &str, label: &str) {
    let button = format!("[data-testid=action-{action}]");
    assert!(b.find(&button).is_some(), "no {action} button");
    assert_eq!(
        b.attribute_of(&button, "disabled"),
        None,
        "{action} is enabled"
    );
    b.click_on(&button);
    let title = b.wait_for("the confirmation", T, |b| {
        let t = b.text_of("#modal-title");
        (!t.is_empty()
            && b.execute("return !document.getElementById('modal').hidden", json!([]))
                == json!(true))
        .then_some(t)
    });
    assert_eq!(title, format!("{label} rollout checkout?"));
    b.click_on("[data-testid=confirm-yes]");
}

fn ro(env: &Env) -> Value {
    env.get_json(&["rollout", "checkout"])
}

#[test]
fn dashboard_shows_a_canary_live_and_steers_it_in_a_real_browser() {
    require_kubectl!();
    crate::webdriver::require_browser();
    let env = Env::start("dashboard");
    let server = Served::start();
    server.set_json("/rate", &json!({"rate": 0.99}));
    env.apply(TEMPLATE);
    env.apply(&rollout(&server.url("/rate")));
    // Neighbours for the overview: one settled, one waiting at its first pause.
    for (name, image) in [
        ("cart", "registry.example/cart:2.0.1"),
        ("search", "registry.example/search:0.9.0"),
    ] {
        env.apply(
            &crate::cli::ROLLOUT
                .replace("web", name)
                .replace("nginx:1.25", image)
                .replace("replicas: 4", "replicas: 2"),
        );
    }
    let stable_ro = env.wait_for("checkout Healthy", T, |env| {
        let r = ro(env);
        (r["status"]["phase"] == "Healthy").then_some(r)
    });
    env.wait_for("the neighbours Healthy", T, |env| {
        ["cart", "search"]
            .iter()
            .all(|n| env.get_json(&["rollout", n])["status"]["phase"] == "Healthy")
            .then_some(())
    });
    ok(Command::new(sluice_bin())
        .args([
            "set",
            "image",
            "search",
            "search=registry.example/search:1.0.0",
            "--kubeconfig",
        ])
        .arg(&env.kubeconfig)
        .args(["-n", &env.namespace])
        .output()
        .expect("sluice set image"));
    let (_dashboard, port) = start_dashboard(&env);
    let shots = shots_dir(env.dir.path());
    let b = Browser::start(1400, 1000);

    // The overview lists the Rollout by namespace, live.
    b.goto(&format!("http://127.0.0.1:{port}/"));
    let row = "[data-testid=rollout-row][data-name=checkout] [data-testid=phase]".to_string();
    b.wait_for("checkout Healthy in the overview", T, |b| {
        (b.text_of(&row) == "Healthy").then_some(())
    });
    assert!(
        b.text_of("main").contains(&env.namespace),
        "grouped by namespace"
    );
    let loaded = load_id(&b);

    // Open the Rollout's page (in the page: no reload), then start an update from outside.
    b.click_on("[data-testid=rollout-row][data-name=checkout] a");
    b.wait_for("the Rollout's page", T, |b| {
        (b.text_of("[data-testid=rollout-name]") == "checkout").then_some(())
    });
    assert_eq!(b.text_of("[data-testid=phase]"), "Healthy");
    ok(Command::new(sluice_bin())
        .args([
            "set",
            "image",
            "checkout",
            "checkout=registry.example/checkout:1.5.0",
            "--kubeconfig",
        ])
        .arg(&env.kubeconfig)
        .args(["-n", &env.namespace])
        .output()
        .expect("sluice set image"));

    // The canary advances on the open page: paused at step 1, actual weight 25%, and the
    // background analysis' measurements charted.
    b.wait_for("the canary paused at its first pause", T, |b| {
        (b.text_of("[data-testid=phase]") == "Paused" && step_state(b, 1) == "current")
            .then_some(())
    });
    assert_eq!(step_state(&b, 0), "done");
    b.wait_for("the actual weight at 25%", T, |b| {
        (b.text_of("[data-testid=actual-weight]") == "25%").then_some(())
    });
    assert_eq!(b.text_of("[data-testid=set-weight]"), "25%");
    b.wait_for("a charted measurement", T, |b| {
        b.find("[data-testid=metric][data-name=success-rate] circle.spark-dot.Successful")
            .map(|_| ())
    });
    assert_eq!(load_id(&b), loaded, "the page did not reload");

    // Promote through the button; the page follows to the next pause.
    act(&b, "promote", "Promote");
    let result = b.wait_for("the promote's result", T, |b| {
        let t = b.text_of("[data-testid=action-result]");
        (!t.is_empty()).then_some(t)
    });
    assert_eq!(result, "rollout 'checkout' promoted");
    b.wait_for("the canary at its second pause, 50%", T, |b| {
        (step_state(b, 3) == "current" && b.text_of("[data-testid=actual-weight]") == "50%")
            .then_some(())
    });
    let r = wait_phase_of(&env, "Paused");
    assert_eq!(
        r["status"]["currentStepIndex"], 3,
        "kubectl sees the promote"
    );
    save_png(&shots, "dashboard-rollout.png", &b.screenshot());

    // Abort on this next update; kubectl sees it, the page shows it.
    act(&b, "abort", "Abort");
    b.wait_for("the abort's result and Degraded", T, |b| {
        (b.text_of("[data-testid=action-result]") == "rollout 'checkout' aborted"
            && b.text_of("[data-testid=phase]") == "Degraded")
            .then_some(())
    });
    let r = wait_phase_of(&env, "Degraded");
    assert_eq!(r["status"]["abort"], true);
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("RolloutAborted"),
        "{}",
        r["status"]["message"]
    );
    assert!(
        b.find("[data-testid=aborted]").is_some(),
        "the page says aborted"
    );
    b.wait_for("promote disabled on an aborted Rollout", T, |b| {
        b.attribute_of("[data-testid=action-promote]", "disabled")
            .map(|_| ())
    });

    // The stable keeps serving: back to full size.
    let stable = stable_ro["status"]["stableRS"]
        .as_str()
        .unwrap()
        .to_string();
    env.wait_for("the stable back at 4 available", T, |env| {
        let rs = env.get_json(&["rs", &format!("checkout-{stable}")]);
        (rs["status"]["availableReplicas"] == 4).then_some(())
    });

    // The controller has finished the abort (the canary scaled down, the Rollout's status
    // counting only the stable) before the refusal below is checked, so the resourceVersion
    // it compares can only move because of a write the dashboard sent.
    let canary = r["status"]["currentPodHash"].as_str().unwrap().to_string();
    env.wait_for(
        "the abort finished: canary at 0, the status counts 4",
        T,
        |env| {
            let rs = env.get_json(&["rs", &format!("checkout-{canary}")]);
            let r = ro(env);
            let st = &r["status"];
            (rs["spec"]["replicas"] == 0
                && rs["status"]["replicas"].as_i64().unwrap_or(0) == 0
                && st["replicas"] == 4
                && st["readyReplicas"] == 4
                && st["availableReplicas"] == 4
                && st["updatedReplicas"].as_i64().unwrap_or(0) == 0)
                .then_some(())
        },
    );

    // A refused action (the page's own request, as if the button were stale) shows the
    // CLI's one-line reason inline and changes nothing.
    let before = ro(&env)["metadata"]["resourceVersion"].clone();
    b.execute(
        "sendAction(arguments[0], 'checkout', 'abort'); return null",
        json!([env.namespace]),
    );
    b.wait_for("the refusal inline", T, |b| {
        let t = b.text_of("[data-testid=action-error]");
        (!t.is_empty()).then_some(())
    });
    assert_eq!(
        b.text_of("[data-testid=action-error]"),
        r#"rollout "checkout" is already aborted"#
    );
    assert_eq!(
        ro(&env)["metadata"]["resourceVersion"],
        before,
        "nothing was written"
    );
    assert_eq!(load_id(&b), loaded, "still the same page load");

    // The overview, for the docs.
    b.goto(&format!("http://127.0.0.1:{port}/"));
    b.wait_for("the overview again", T, |b| {
        (b.text_of(&row) == "Degraded").then_some(())
    });
    save_png(&shots, "dashboard-overview.png", &b.screenshot());
    drop(b);
    terminal_screenshot(&env, &shots);
}

fn wait_phase_of(env: &Env, phase: &str) -> Value {
    env.wait_for(&format!("checkout {phase}"), T, |env| {
        let r = ro(env);
        let observed = r["status"]["observedGeneration"].as_str()
            == Some(&r["metadata"]["generation"].to_string());
        (observed && r["status"]["phase"] == phase).then_some(r)
    })
}

/// `get rollout` as a terminal shows it (through a pseudo-terminal, so in colour), drawn
/// as a page and photographed by the browser.
fn terminal_screenshot(env: &Env, shots: &std::path::Path) {
    ok(Command::new(sluice_bin())
        .args(["retry", "rollout", "checkout", "--kubeconfig"])
        .arg(&env.kubeconfig)
        .args(["-n", &env.namespace])
        .output()
        .expect("retry"));
    wait_phase_of(env, "Paused");
    let command = format!(
        "'{}' get rollout checkout --kubeconfig '{}' -n '{}'",
        sluice_bin(),
        env.kubeconfig.display(),
        env.namespace
    );
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .env("COLUMNS", "140")
        .stdin(Stdio::null())
        .output()
        .expect("`script` (util-linux) runs the command in a pseudo-terminal");
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(
        text.contains("\x1b[33mcanary\x1b[0m"),
        "colour in a terminal: {text}"
    );
    let page = env.dir.path().join("terminal.html");
    std::fs::write(&page, ansi_page(&text)).expect("write page");
    let lines = text.lines().count() as u32;
    let b = Browser::start(1180, 40 + lines * 19);
    b.goto(&format!("file://{}", page.display()));
    save_png(shots, "get-rollout.png", &b.screenshot());
}

/// Terminal output with SGR colours as an HTML page.
fn ansi_page(text: &str) -> String {
    let mut html = String::from(
        "<!doctype html><meta charset=utf-8><body style=\"margin:0;background:#1d2330\"><pre style=\"margin:0;padding:14px 18px;color:#d8dee9;font:14px/19px 'DejaVu Sans Mono',monospace\">",
    );
    let mut open = false;
    let mut rest = text;
    while let Some(at) = rest.find('\x1b') {
        html += &escape(&rest[..at]);
        rest = &rest[at + 1..];
        let Some(end) = rest.find(|c: char| c.is_ascii_alphabetic()) else {
            break;
        };
        let (code, kind) = (&rest[1..end], &rest[end..=end]);
        rest = &rest[end + 1..];
        if kind != "m" {
            continue;
        }
        if open {
            html += "</span>";
            open = false;
        }
        let style = match code {
            "1" => "font-weight:bold;color:#fff",
            "31" => "color:#ef6b73",
            "32" => "color:#7fd88f",
            "33" => "color:#f0c674",
            "90" => "color:#7a8394",
            "94" => "color:#6cb6ff",
            _ => "",
        };
        if !style.is_empty() {
            html += &format!("<span style=\"{style}\">");
            open = true;
        }
    }
    html += &escape(rest);
    html + "</pre></body>"
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
