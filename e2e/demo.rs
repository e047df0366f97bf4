//! `sluice demo --auto` is the smoke test of the whole product.

use std::process::Command;

use crate::harness::sluice_bin;

#[test]
fn demo_auto_tours_promote_abort_retry_and_full_promotion() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    let out = Command::new(sluice_bin())
        .args([
            "demo",
            "--auto",
            "--port",
            "0",
            "--pod-ready-delay",
            "200ms",
            "--kubeconfig",
        ])
        .arg(&kubeconfig)
        .output()
        .expect("running sluice demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for expected in [
        "Paused: CanaryPauseStep",
        "==> revision 2 is stable",
        "Degraded: RolloutAborted: Rollout aborted update to revision 3",
        "patch rollout web --subresource=status --type=merge -p '{\"status\":{\"pauseConditions\":null}}'",
        "Demo complete.",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in demo output:\n{stdout}"
        );
    }
}
