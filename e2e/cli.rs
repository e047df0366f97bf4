//! `kubectl sluice`: every command against the embedded cluster, through the real kubectl's
//! plugin mechanism (a `kubectl-sluice` link on PATH), with `get --watch` captured through a
//! pseudo-terminal and `status`'s exit codes checked.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Env, sluice_bin};
use crate::require_kubectl;

const T: Duration = Duration::from_secs(60);

pub const ROLLOUT: &str = r#"apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: web
spec:
  replicas: 4
  revisionHistoryLimit: 5
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: nginx:1.25
  strategy:
    canary:
      maxSurge: 1
      maxUnavailable: 0
      steps:
        - setWeight: 25
        - pause: {}
        - setWeight: 50
        - pause: {}
"#;

/// A directory holding a `kubectl-sluice` link to the binary under test, as `make install`
/// leaves one.
pub struct Plugin {
    dir: tempfile::TempDir,
}

impl Plugin {
    pub fn install() -> Plugin {
        let dir = tempfile::Builder::new()
            .prefix("sluice-plugin-")
            .tempdir()
            .expect("tempdir");
        std::os::unix::fs::symlink(sluice_bin(), dir.path().join("kubectl-sluice"))
            .expect("link kubectl-sluice");
        Plugin { dir }
    }

    fn path_env(&self) -> std::ffi::OsString {
        let mut paths = vec![self.dir.path().to_path_buf()];
        paths.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        std::env::join_paths(paths).expect("PATH")
    }

    /// `kubectl sluice ARGS --kubeconfig K -n NS` (namespace omitted when ARGS has `-A`).
    pub fn run(&self, env: &Env, args: &[&str]) -> Output {
        let mut cmd = Command::new("kubectl");
        cmd.arg("sluice")
            .args(args)
            .arg("--kubeconfig")
            .arg(&env.kubeconfig);
        if !args.contains(&"-A") && args.first() != Some(&"lint") {
            cmd.arg("-n").arg(&env.namespace);
        }
        cmd.env("PATH", self.path_env())
            .stdin(Stdio::null())
            .output()
            .expect("running kubectl sluice")
    }
}

pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Success, and stdout.
pub fn ok(out: Output) -> String {
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {stdout}\nstderr: {stderr}",
        out.status.code()
    );
    stdout
}

/// Failure with `code` and one `error:` line containing `needle`.
pub fn fails(out: Output, code: i32, needle: &str) -> String {
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(stderr.contains(needle), "wanted {needle:?} in {stderr}");
    stdout
}

fn rollout(env: &Env) -> Value {
    env.get_json(&["rollout", "web"])
}

/// Wait until the Rollout reports `phase` for its current generation.
pub fn wait_phase(env: &Env, want: &str) -> Value {
    env.wait_for(&format!("rollout phase {want}"), T, |env| {
        let ro = rollout(env);
        let observed = ro["status"]["observedGeneration"].as_str()
            == Some(&ro["metadata"]["generation"].to_string());
        (observed && ro["status"]["phase"] == want).then_some(ro)
    })
}

/// What the API server holds of the Rollout (generation, spec and the user-written status
/// fields): equal before and after a refused command means nothing was patched.
fn written(env: &Env) -> Value {
    let ro = rollout(env);
    serde_json::json!({
        "generation": ro["metadata"]["generation"],
        "spec": ro["spec"],
        "abort": ro["status"]["abort"],
        "pauseConditions": ro["status"]["pauseConditions"],
        "promoteFull": ro["status"]["promoteFull"],
    })
}

/// A command run in a pseudo-terminal (util-linux `script`), its output collected as it
/// comes.
struct Pty {
    child: std::process::Child,
    output: Arc<Mutex<Vec<u8>>>,
}

impl Pty {
    fn spawn(command_line: &str) -> Pty {
        let mut child = Command::new("script")
            .args(["-q", "-f", "-e", "-c", command_line, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect(
                "`script` (util-linux) runs the command in a pseudo-terminal; install bsdutils",
            );
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut stdout = child.stdout.take().expect("stdout");
        let sink = output.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Pty { child, output }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// Wait until the output holds `needle` (after `from` bytes of it).
    fn wait_for(&self, needle: &str, from: usize, env: &Env) -> usize {
        let deadline = Instant::now() + T;
        loop {
            let text = self.text();
            if let Some(at) = text.get(from..).and_then(|t| t.find(needle)) {
                return from + at;
            }
            assert!(
                Instant::now() < deadline,
                "the terminal never showed {needle:?}; it showed:\n{text}\n{}",
                env.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[test]
fn kubectl_sluice_steers_a_canary_through_every_rollout_command() {
    require_kubectl!();
    let env = Env::start("cli-rollout");
    let plugin = Plugin::install();
    let sluice = |args: &[&str]| plugin.run(&env, args);
    env.apply(ROLLOUT);
    wait_phase(&env, "Healthy");

    // list (namespace and -A), status of a Healthy Rollout.
    let list = ok(sluice(&["list", "rollouts"]));
    assert!(list.starts_with("NAME  STRATEGY"), "{list}");
    assert!(
        list.contains("web   Canary    Healthy  4/4   100"),
        "{list}"
    );
    let all = ok(sluice(&["list", "rollouts", "-A"]));
    assert!(all.starts_with("NAMESPACE"), "{all}");
    assert!(all.contains(&env.namespace), "{all}");
    assert_eq!(ok(sluice(&["status", "web"])).trim(), "Healthy");

    // Bad input: one line naming the object, non-zero, nothing patched.
    let before = written(&env);
    fails(
        sluice(&["abort", "web"]),
        1,
        r#"rollout "web" has no update in progress: nothing to abort"#,
    );
    fails(
        sluice(&["promote", "web"]),
        1,
        r#"rollout "web" has no update in progress: nothing to promote"#,
    );
    fails(
        sluice(&["retry", "rollout", "web"]),
        1,
        r#"rollout "web" is not aborted"#,
    );
    fails(
        sluice(&["set", "image", "web", "api=nginx:1.26"]),
        1,
        r#"rollout "web" has no container "api" (containers: web)"#,
    );
    fails(
        sluice(&["undo", "web", "--to-revision", "7"]),
        1,
        r#"rollout "web" has no revision 7 (revisions: 1)"#,
    );
    fails(
        sluice(&["promote", "nothere"]),
        1,
        &format!(
            r#"rollout "nothere" not found in namespace "{}""#,
            env.namespace
        ),
    );
    fails(
        sluice(&["get", "rollout", "nothere"]),
        1,
        r#"rollout "nothere" not found"#,
    );
    assert_eq!(
        written(&env),
        before,
        "a refused command patched the Rollout"
    );

    // set image starts a canary; `status --timeout` gives up on the pause with exit 2.
    assert_eq!(
        ok(sluice(&["set", "image", "web", "web=nginx:1.26"])).trim(),
        r#"rollout "web" image updated"#
    );
    let timed_out = fails(
        sluice(&["status", "web", "--timeout", "2s"]),
        2,
        "rollout 'web' did not finish within 2s: Paused - CanaryPauseStep",
    );
    assert!(
        timed_out.lines().last() == Some("Paused - CanaryPauseStep"),
        "{timed_out}"
    );
    wait_phase(&env, "Paused");

    // get: the tree with the step marked, desired and actual weight, roles.
    let tree = ok(sluice(&["get", "rollout", "web"]));
    for want in [
        "Status:          ‖ Paused",
        "  SetWeight:     25",
        "  ActualWeight:  25",
        "nginx:1.25 (stable)",
        "nginx:1.26 (canary)",
        "  ▶  1  pause",
        "# revision:2",
        "canary,ready:1/1",
        "stable,ready:3/3",
    ] {
        assert!(tree.contains(want), "missing {want:?} in\n{tree}");
    }
    assert!(!tree.contains('\x1b'), "piped output has no escape codes");

    // get --watch in a terminal: colour, and a redraw when the canary moves on.
    let kubeconfig = env.kubeconfig.display().to_string();
    let pty = Pty::spawn(&format!(
        "{} get rollout web --watch --timeout-seconds 120 --kubeconfig {} -n {}",
        shell_quote(sluice_bin()),
        shell_quote(&kubeconfig),
        shell_quote(&env.namespace)
    ));
    let first = pty.wait_for("  SetWeight:     25", 0, &env);
    assert!(
        pty.text().contains("\x1b[H\x1b[2J"),
        "a terminal gets redraws"
    );
    assert!(
        pty.text().contains("\x1b[33mcanary\x1b[0m"),
        "a terminal gets colour"
    );
    assert_eq!(
        ok(sluice(&["promote", "web"])).trim(),
        "rollout 'web' promoted"
    );
    pty.wait_for("  SetWeight:     50", first, &env);
    pty.wait_for("pause\x1b[0m", first, &env);
    drop(pty);
    let ro = wait_phase(&env, "Paused");
    assert_eq!(ro["status"]["currentStepIndex"], 3);

    // get --watch piped: plain text, each state once.
    let piped = ok(sluice(&[
        "get",
        "rollout",
        "web",
        "--watch",
        "--timeout-seconds",
        "1",
    ]));
    assert!(piped.starts_with("Name:            web\n"), "{piped}");
    assert!(!piped.contains('\x1b'), "{piped}");

    // abort → Degraded (status exit 1), retry → back to the first step.
    assert_eq!(
        ok(sluice(&["abort", "web"])).trim(),
        "rollout 'web' aborted"
    );
    wait_phase(&env, "Degraded");
    let degraded = fails(
        sluice(&["status", "web"]),
        1,
        "rollout 'web' is Degraded: RolloutAborted: Rollout aborted update to revision 2",
    );
    assert!(
        degraded.starts_with("Degraded - RolloutAborted"),
        "{degraded}"
    );
    fails(
        sluice(&["abort", "web"]),
        1,
        r#"rollout "web" is already aborted"#,
    );
    fails(
        sluice(&["promote", "web"]),
        1,
        r#"rollout "web" is aborted"#,
    );
    assert_eq!(
        ok(sluice(&["retry", "rollout", "web"])).trim(),
        "rollout 'web' retried"
    );
    let ro = wait_phase(&env, "Paused");
    assert_eq!(ro["status"]["currentStepIndex"], 1);

    // pause and resume (Argo CD's resume action clears every pause).
    assert_eq!(ok(sluice(&["pause", "web"])).trim(), "rollout 'web' paused");
    assert_eq!(rollout(&env)["spec"]["paused"], true);
    assert_eq!(
        ok(sluice(&["status", "web", "--watch=false"])).trim(),
        "Paused - manually paused"
    );
    assert_eq!(
        ok(sluice(&["resume", "web"])).trim(),
        "rollout 'web' resumed"
    );
    let ro = rollout(&env);
    assert_eq!(ro["spec"]["paused"], false);
    let ro = env.wait_for("the canary past the first pause", T, |env| {
        let ro = rollout(env);
        (ro["status"]["currentStepIndex"].as_i64() == Some(3)).then_some(ro)
    });
    assert_eq!(ro["status"]["phase"], "Paused");

    // promote --full → Healthy; status exits 0 waiting for it.
    assert_eq!(
        ok(sluice(&["promote", "web", "--full"])).trim(),
        "rollout 'web' fully promoted"
    );
    let waited = ok(sluice(&["status", "web", "--timeout", "60s"]));
    assert_eq!(waited.lines().last(), Some("Healthy"), "{waited}");
    let ro = wait_phase(&env, "Healthy");
    fails(
        sluice(&["promote", "web", "--full"]),
        1,
        "nothing to promote",
    );

    // restart: spec.restartAt, and the controller restarts the pods.
    assert_eq!(
        ok(sluice(&["restart", "web"])).trim(),
        "rollout 'web' restarts in 0s"
    );
    let at = rollout(&env)["spec"]["restartAt"].clone();
    assert!(at.is_string(), "{at}");
    env.wait_for("the restart to be applied", T, |env| {
        (rollout(env)["status"]["restartedAt"] == at).then_some(())
    });
    assert_ne!(ro["status"]["stableRS"], Value::Null);

    // undo: back to revision 1's template (nginx:1.25), which rolls out again.
    assert_eq!(
        ok(sluice(&["undo", "web"])).trim(),
        "rollout 'web' undo (back to revision 1)"
    );
    let image = rollout(&env)["spec"]["template"]["spec"]["containers"][0]["image"].clone();
    assert_eq!(image, "nginx:1.25");
    let labels = rollout(&env)["spec"]["template"]["metadata"]["labels"].clone();
    assert_eq!(
        labels,
        serde_json::json!({"app": "web"}),
        "no controller labels restored"
    );
    // Revision 1's ReplicaSet comes back as revision 3, through the steps like any update
    // (no rollbackWindow), and is promoted to the end.
    env.wait_for(
        "revision 3 (revision 1's template) at the first pause",
        T,
        |env| {
            let ro = rollout(env);
            (ro["status"]["phase"] == "Paused"
                && ro["metadata"]["annotations"]["rollout.argoproj.io/revision"] == "3")
                .then_some(())
        },
    );
    ok(sluice(&["promote", "web", "--full"]));
    wait_phase(&env, "Healthy");
    assert_eq!(
        ok(sluice(&["undo", "web", "--to-revision", "3"])).trim(),
        "rollout 'web' skipped rollback (current template already matches revision 3)"
    );
}

const EXPERIMENT: &str = r#"apiVersion: argoproj.io/v1alpha1
kind: Experiment
metadata:
  name: ab
spec:
  duration: 2s
  templates:
    - name: baseline
      selector:
        matchLabels: {app: ab}
      template:
        metadata:
          labels: {app: ab}
        spec:
          containers: [{name: web, image: "nginx:1.27"}]
"#;

const ENDLESS_RUN: &str = r#"apiVersion: argoproj.io/v1alpha1
kind: AnalysisRun
metadata:
  name: endless
spec:
  metrics:
    - name: up
      interval: 1s
      count: 1000
      consecutiveErrorLimit: 1000
      successCondition: "result == 1"
      provider:
        web:
          url: "http://127.0.0.1:1/never"
"#;

fn phase_of(env: &Env, what: &[&str]) -> String {
    env.get_json(what)["status"]["phase"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn kubectl_sluice_lists_gets_retries_and_terminates_experiments_and_runs() {
    require_kubectl!();
    let env = Env::start("cli-experiment");
    let plugin = Plugin::install();
    let sluice = |args: &[&str]| plugin.run(&env, args);
    env.apply(EXPERIMENT);
    env.apply(ENDLESS_RUN);
    env.wait_for("experiment ab Successful", T, |env| {
        (phase_of(env, &["experiment", "ab"]) == "Successful").then_some(())
    });

    let list = ok(sluice(&["list", "experiments"]));
    assert!(list.contains("ab    Successful  2s"), "{list}");
    let tree = ok(sluice(&["get", "experiment", "ab"]));
    assert!(tree.contains("Status:          ✔ Successful"), "{tree}");
    assert!(tree.contains("ab-baseline"), "its ReplicaSet: {tree}");
    fails(
        sluice(&["get", "experiment", "nope"]),
        1,
        r#"experiment "nope" not found"#,
    );

    // retry a finished experiment: its status is cleared and it runs again.
    let uid = env.get_json(&["experiment", "ab"])["metadata"]["uid"].clone();
    assert_eq!(
        ok(sluice(&["retry", "experiment", "ab"])).trim(),
        "experiment 'ab' retried"
    );
    env.wait_for("experiment ab to run again and succeed", T, |env| {
        let ex = env.get_json(&["experiment", "ab"]);
        (ex["metadata"]["uid"] == uid
            && ex["status"]["phase"] == "Successful"
            && ex["status"]["availableAt"].is_string())
        .then_some(())
    });

    // AnalysisRuns: listed with their owner, terminated on request.
    env.wait_for("run endless Running", T, |env| {
        (phase_of(env, &["analysisrun", "endless"]) == "Running").then_some(())
    });
    let runs = ok(sluice(&["list", "analysisruns"]));
    assert!(runs.contains("endless  Running"), "{runs}");
    assert_eq!(
        ok(sluice(&["terminate", "analysisrun", "endless"])).trim(),
        "analysisrun 'endless' terminated"
    );
    assert_eq!(
        env.get_json(&["analysisrun", "endless"])["spec"]["terminate"],
        true
    );
    env.wait_for("run endless to stop", T, |env| {
        let phase = phase_of(env, &["analysisrun", "endless"]);
        (phase != "Running" && !phase.is_empty()).then_some(())
    });
    fails(
        sluice(&["terminate", "analysisrun", "endless"]),
        1,
        "already finished",
    );
    fails(
        sluice(&["retry", "experiment", "nope"]),
        1,
        r#"experiment "nope" not found"#,
    );
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write manifest");
    path
}

#[test]
fn lint_checks_manifests_offline_naming_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lint = |path: &Path| {
        Command::new(sluice_bin())
            .arg("lint")
            .arg(path)
            .stdin(Stdio::null())
            .output()
            .expect("running sluice lint")
    };
    let valid = write(dir.path(), "valid.yaml", ROLLOUT);
    let out = ok(lint(&valid));
    assert_eq!(
        out.trim(),
        format!("{}: rollout 'web' is valid", valid.display())
    );

    let bad_weight = write(
        dir.path(),
        "weight.yaml",
        &ROLLOUT.replace("setWeight: 50", "setWeight: 150"),
    );
    fails(
        lint(&bad_weight),
        1,
        "rollout 'web': spec.strategy.canary.steps[2].setWeight: SetWeight needs to be between 0 and 100 (got 150)",
    );
    let unknown = write(
        dir.path(),
        "unknown.yaml",
        &ROLLOUT.replace("maxSurge: 1", "maxSurge: 1\n      maxSurgee: 2"),
    );
    fails(
        lint(&unknown),
        1,
        "spec.strategy.canary.maxSurgee: unknown field",
    );
    let selector = write(
        dir.path(),
        "selector.yaml",
        &ROLLOUT.replace("matchLabels: {app: web}", "matchLabels: {app: api}"),
    );
    fails(
        lint(&selector),
        1,
        "spec.selector: `selector` does not match template `labels`",
    );
    let not_yaml = write(dir.path(), "broken.yaml", "kind: [");
    fails(
        lint(&not_yaml),
        1,
        "broken.yaml: document 1 is not valid YAML",
    );
    fails(lint(&dir.path().join("missing.yaml")), 1, "missing.yaml");
}

#[test]
fn no_kubeconfig_or_an_unreachable_cluster_is_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |kubeconfig: &Path| {
        Command::new(sluice_bin())
            .args(["list", "rollouts", "--kubeconfig"])
            .arg(kubeconfig)
            .stdin(Stdio::null())
            .output()
            .expect("running sluice")
    };
    fails(run(&dir.path().join("none")), 1, "reading kubeconfig");
    let port = crate::harness::free_port();
    let unreachable = write(
        dir.path(),
        "kubeconfig",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\ncontexts: [{{name: c, context: {{cluster: c, user: u}}}}]\ncurrent-context: c\nusers: [{{name: u, user: {{}}}}]\n"
        ),
    );
    fails(run(&unreachable), 1, "cannot reach the cluster");
}
