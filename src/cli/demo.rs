//! `sluice demo`: the canary tour on the embedded cluster.
//!
//! Starts the embedded cluster and the controller in this process, installs the
//! CRDs, applies `manifests/examples/canary-demo.yaml`, updates its image and
//! prints the canary's progress live. Interactive mode waits for you to promote
//! with kubectl; `--auto` promotes at the pause, then demonstrates an abort and a
//! retry, and exits 0 (a smoke test in `make test`).

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::DemoArgs;
use sluice_api::rollout::rollout_resource;

const EXAMPLE: &str = include_str!("../../manifests/examples/canary-demo.yaml");
const NAMESPACE: &str = "default";
const NAME: &str = "web";

/// One line describing the Rollout's progress (pure, so it is unit-tested).
pub fn progress_line(rollout: &Value, replica_sets: &[Value]) -> String {
    let status = &rollout["status"];
    let steps = rollout["spec"]["strategy"]["canary"]["steps"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let index = status["currentStepIndex"].as_i64();
    let stable = status["stableRS"].as_str().unwrap_or("");
    let current = status["currentPodHash"].as_str().unwrap_or("");
    let step_text = match index {
        Some(i) if (i as usize) < steps.len() => {
            let step = &steps[i as usize];
            let what = if let Some(w) = step.get("setWeight") {
                format!("setWeight {w}")
            } else if let Some(p) = step.get("pause") {
                match p.get("duration") {
                    Some(d) => format!(
                        "pause {}",
                        d.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| format!("{d}s"))
                    ),
                    None => "pause".to_string(),
                }
            } else {
                step.as_object()
                    .and_then(|o| o.keys().next().cloned())
                    .unwrap_or_default()
            };
            format!("step {}/{} ({what})", i + 1, steps.len())
        }
        Some(_) => format!("steps done ({}/{})", steps.len(), steps.len()),
        None => "no steps".to_string(),
    };
    let side = |hash: &str| -> (String, i64, i64) {
        replica_sets
            .iter()
            .find(|rs| {
                rs["metadata"]["labels"]["rollouts-pod-template-hash"].as_str() == Some(hash)
            })
            .map(|rs| {
                let image = rs["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap_or("?")
                    .to_string();
                (
                    image,
                    rs["spec"]["replicas"].as_i64().unwrap_or(0),
                    rs["status"]["availableReplicas"].as_i64().unwrap_or(0),
                )
            })
            .unwrap_or_else(|| ("-".into(), 0, 0))
    };
    let (stable_image, stable_spec, stable_avail) = side(stable);
    let mut line = format!("{step_text} | stable {stable_image} {stable_avail}/{stable_spec}");
    if !current.is_empty() && current != stable {
        let (canary_image, canary_spec, canary_avail) = side(current);
        let total = stable_avail + canary_avail;
        let weight = if total == 0 {
            0
        } else {
            canary_avail * 100 / total
        };
        line += &format!(
            " | canary {canary_image} {canary_avail}/{canary_spec} | actual weight {weight}%"
        );
    }
    let phase = status["phase"].as_str().unwrap_or("Pending");
    let message = status["message"].as_str().unwrap_or("");
    line += &format!(" | {phase}");
    if !message.is_empty() {
        line += &format!(": {message}");
    }
    line
}

struct Tour {
    rollouts: Api<DynamicObject>,
    replica_sets: Api<ReplicaSet>,
    started: Instant,
    last: String,
    kubeconfig: String,
}

impl Tour {
    async fn snapshot(&self) -> anyhow::Result<(Value, Vec<Value>)> {
        let ro = serde_json::to_value(self.rollouts.get(NAME).await?)?;
        let rs = self
            .replica_sets
            .list(&ListParams::default().labels("rollouts-pod-template-hash"))
            .await?
            .items
            .into_iter()
            .map(|rs| serde_json::to_value(rs).unwrap_or(Value::Null))
            .collect();
        Ok((ro, rs))
    }

    /// Print progress whenever it changes, until `done` holds (or the deadline).
    async fn watch_until(
        &mut self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let (ro, rs) = self.snapshot().await?;
            let line = progress_line(&ro, &rs);
            if line != self.last {
                println!("[{:>6.1}s] {line}", self.started.elapsed().as_secs_f64());
                self.last = line;
            }
            let observed = ro["status"]["observedGeneration"].as_str()
                == Some(&ro["metadata"]["generation"].to_string());
            if observed && done(&ro) {
                return Ok(ro);
            }
            if Instant::now() > deadline {
                bail!("timed out after {timeout:?} waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn status_patch(&self, patch: Value) -> anyhow::Result<()> {
        self.rollouts
            .patch_status(NAME, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    async fn set_image(&mut self, image: &str) -> anyhow::Result<()> {
        println!("\n==> updating the image to {image}");
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": image}]}}}});
        self.rollouts
            .patch(NAME, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        self.last.clear();
        Ok(())
    }

    fn print_commands(&self) {
        let kc = &self.kubeconfig;
        println!("\n    The canary is paused. In another terminal:");
        println!(
            "      promote:      kubectl --kubeconfig {kc} patch rollout {NAME} --subresource=status --type=merge -p '{{\"status\":{{\"pauseConditions\":null}}}}'"
        );
        println!(
            "      promote-full: kubectl --kubeconfig {kc} patch rollout {NAME} --subresource=status --type=merge -p '{{\"status\":{{\"promoteFull\":true}}}}'"
        );
        println!(
            "      abort:        kubectl --kubeconfig {kc} patch rollout {NAME} --subresource=status --type=merge -p '{{\"status\":{{\"abort\":true}}}}'"
        );
        println!(
            "      retry:        kubectl --kubeconfig {kc} patch rollout {NAME} --subresource=status --type=merge -p '{{\"status\":{{\"abort\":false}}}}'"
        );
        println!("      look:         kubectl --kubeconfig {kc} get ro,rs,pods");
        println!("    Or with kubectl sluice (make install), and in the browser:");
        println!(
            "      kubectl sluice get rollout {NAME} --watch --kubeconfig {kc} -n {NAMESPACE}"
        );
        println!("      kubectl sluice promote {NAME} --kubeconfig {kc} -n {NAMESPACE}");
        println!("      sluice dashboard --kubeconfig {kc}    # http://127.0.0.1:3100/\n");
    }
}

fn phase_is(ro: &Value, phase: &str) -> bool {
    ro["status"]["phase"].as_str() == Some(phase)
}

/// `sluice demo [--auto]`.
pub async fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let kubeconfig = args
        .kubeconfig
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("sluice-demo.kubeconfig"));
    let mut cfg = sluice_cluster::ClusterConfig {
        port: args.port,
        data_dir: None,
        kubeconfig: Some(kubeconfig.clone()),
        workloads: Some(sluice_cluster::workloads::Config {
            pod_ready_delay: args.pod_ready_delay,
            ..Default::default()
        }),
        tls: false,
        faults: Default::default(),
    };
    let cluster = match sluice_cluster::EmbeddedCluster::start(cfg.clone()).await {
        Ok(c) => c,
        Err(e) if args.port != 0 => {
            eprintln!("port {} unavailable ({e}); using a free port", args.port);
            cfg.port = 0;
            sluice_cluster::EmbeddedCluster::start(cfg)
                .await
                .context("starting the embedded cluster")?
        }
        Err(e) => return Err(e).context("starting the embedded cluster"),
    };
    println!("Sluice demo: embedded cluster on http://{}", cluster.addr());
    println!("kubeconfig: {}", kubeconfig.display());
    let client = cluster.client();
    sluice_controller::crds::install(&client).await?;
    println!("CRDs installed; starting the controller");
    let shutdown = CancellationToken::new();
    let controller = tokio::spawn(sluice_controller::run(
        client.clone(),
        sluice_controller::Options::default(),
        shutdown.clone(),
    ));

    let rollouts: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), NAMESPACE, &rollout_resource());
    let example: Value = serde_yaml::from_str(EXAMPLE).context("parsing the example Rollout")?;
    rollouts
        .patch(
            NAME,
            &PatchParams::apply("sluice-demo").force(),
            &Patch::Apply(&example),
        )
        .await
        .context("applying manifests/examples/canary-demo.yaml")?;
    println!(
        "applied manifests/examples/canary-demo.yaml (Rollout {NAMESPACE}/{NAME}, 5 replicas)\n"
    );

    let mut tour = Tour {
        rollouts,
        replica_sets: Api::namespaced(client.clone(), NAMESPACE),
        started: Instant::now(),
        last: String::new(),
        kubeconfig: kubeconfig.display().to_string(),
    };
    let long = Duration::from_secs(120);
    tour.watch_until("the first revision to become Healthy", long, |ro| {
        phase_is(ro, "Healthy")
    })
    .await?;

    tour.set_image("nginx:1.26").await?;
    tour.watch_until("the canary to pause", long, |ro| phase_is(ro, "Paused"))
        .await?;
    tour.print_commands();
    if args.auto {
        println!("==> --auto: promoting (clearing status.pauseConditions)");
        tour.status_patch(json!({"status": {"pauseConditions": null}}))
            .await?;
        tour.watch_until("the canary to complete", long, |ro| phase_is(ro, "Healthy"))
            .await?;
        println!("\n==> revision 2 is stable");

        tour.set_image("nginx:1.27").await?;
        tour.watch_until("the canary to pause", long, |ro| phase_is(ro, "Paused"))
            .await?;
        println!("==> --auto: aborting (status.abort=true)");
        tour.status_patch(json!({"status": {"abort": true}}))
            .await?;
        let ro = tour
            .watch_until("the abort to restore the stable", long, |ro| {
                phase_is(ro, "Degraded")
                    && ro["status"]["updatedReplicas"].as_i64().unwrap_or(0) == 0
                    && ro["status"]["availableReplicas"].as_i64() == Some(5)
            })
            .await?;
        println!(
            "\n==> aborted: {}",
            ro["status"]["message"].as_str().unwrap_or("")
        );
        println!("==> --auto: retrying (status.abort=false)");
        tour.status_patch(json!({"status": {"abort": false}}))
            .await?;
        tour.watch_until("the retried canary to pause", long, |ro| {
            phase_is(ro, "Paused")
        })
        .await?;
        println!("==> --auto: promoting fully (status.promoteFull=true)");
        tour.status_patch(json!({"status": {"promoteFull": true}}))
            .await?;
        tour.watch_until("full promotion", long, |ro| phase_is(ro, "Healthy"))
            .await?;
        println!("\nDemo complete.");
    } else {
        println!("Watching; press Ctrl-C to stop.");
        let stop = super::serve::shutdown_on_signals();
        tokio::select! {
            _ = stop.cancelled() => {}
            r = tour.watch_until("ever", Duration::from_secs(24 * 3600), |_| false) => { r?; }
        }
    }
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), controller).await;
    cluster.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_line_names_the_step_the_sides_and_the_actual_weight() {
        let ro = json!({
            "spec": {"strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}, {"pause": {"duration": "5s"}}]}}},
            "status": {"currentStepIndex": 1, "stableRS": "a", "currentPodHash": "b", "phase": "Paused", "message": "CanaryPauseStep"}
        });
        let rs = |hash: &str, image: &str, n: i64| {
            json!({"metadata": {"labels": {"rollouts-pod-template-hash": hash}},
                   "spec": {"replicas": n, "template": {"spec": {"containers": [{"image": image}]}}},
                   "status": {"availableReplicas": n}})
        };
        let line = progress_line(&ro, &[rs("a", "nginx:1.25", 4), rs("b", "nginx:1.26", 1)]);
        assert_eq!(
            line,
            "step 2/3 (pause) | stable nginx:1.25 4/4 | canary nginx:1.26 1/1 | actual weight 20% | Paused: CanaryPauseStep"
        );
    }
}
