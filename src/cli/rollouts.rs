//! User commands on Rollouts: promote, abort, retry, pause, restart, get.
//!
//! They send exactly the patches Argo Rollouts' own CLI and Argo CD's actions
//! send (COMPAT §7), so Sluice and Argo Rollouts can be driven by either tool.

use anyhow::{Context as _, bail};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use sluice_api::rollout::rollout_resource;

fn rollouts(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &rollout_resource())
}

async fn fetch(api: &Api<DynamicObject>, name: &str) -> anyhow::Result<Value> {
    let obj = api.get(name).await.map_err(|e| describe(e, name))?;
    Ok(serde_json::to_value(obj)?)
}

/// Turn an API error into the one-line reason the CLI prints.
fn describe(err: kube::Error, name: &str) -> anyhow::Error {
    match err {
        kube::Error::Api(status) if status.code == 404 => {
            anyhow::anyhow!("rollout {name:?} not found")
        }
        kube::Error::Api(status) => anyhow::anyhow!("{}", status.message),
        other => anyhow::anyhow!("{other}"),
    }
}

/// Patch `/status`; on NotFound (a server without the status subresource) fall back
/// to patching the main resource, as upstream's CLI does.
async fn patch_status(api: &Api<DynamicObject>, name: &str, patch: &Value) -> anyhow::Result<()> {
    match api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => {
            api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .map_err(|e| describe(e, name))?;
            Ok(())
        }
        Err(e) => Err(describe(e, name)),
    }
}

async fn patch_spec(api: &Api<DynamicObject>, name: &str, patch: &Value) -> anyhow::Result<()> {
    api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map_err(|e| describe(e, name))?;
    Ok(())
}

/// The patches a promote sends, decided from the Rollout as read.
#[derive(Debug, PartialEq)]
pub struct PromotePatches {
    /// Sent to `/status` first.
    pub status: Option<Value>,
    /// Sent to the main resource after the status patch.
    pub spec: Option<Value>,
}

/// Decide the promote patches (pure, so the rules are unit-tested).
pub fn promote_patches(rollout: &Value, full: bool) -> PromotePatches {
    let status = &rollout["status"];
    if full {
        let current = status["currentPodHash"].as_str();
        let stable = status["stableRS"].as_str();
        let status_patch = (current != stable).then(|| json!({"status": {"promoteFull": true}}));
        return PromotePatches {
            status: status_patch,
            spec: None,
        };
    }
    let spec_patch =
        (rollout["spec"]["paused"] == json!(true)).then(|| json!({"spec": {"paused": false}}));
    let has_pause_conditions = status["pauseConditions"]
        .as_array()
        .is_some_and(|a| !a.is_empty());
    let steps_len = rollout["spec"]["strategy"]["canary"]["steps"]
        .as_array()
        .map_or(0, Vec::len) as i64;
    let index = status["currentStepIndex"].as_i64().unwrap_or(0);
    let next = if index < steps_len { index + 1 } else { index };
    let inconclusive_step = status["pauseConditions"]
        .as_array()
        .is_some_and(|a| a.iter().any(|c| c["reason"] == "InconclusiveAnalysisRun"))
        && steps_len > 0;
    let status_patch = if inconclusive_step {
        // After an inconclusive step analysis a promote skips the analysis step
        // (a plain resume would run it again).
        Some(
            json!({"status": {"pauseConditions": null, "controllerPause": false, "currentStepIndex": next}}),
        )
    } else if has_pause_conditions {
        Some(json!({"status": {"pauseConditions": null}}))
    } else if let Some(steps) = rollout["spec"]["strategy"]["canary"]
        .get("steps")
        .and_then(Value::as_array)
    {
        // Mid analysis/experiment: skip the current step.
        let steps_len = steps.len() as i64;
        if steps_len == 0 {
            None
        } else {
            let index = status["currentStepIndex"].as_i64().unwrap_or(0);
            let next = if index < steps_len { index + 1 } else { index };
            Some(json!({"status": {"pauseConditions": null, "currentStepIndex": next}}))
        }
    } else {
        None
    };
    PromotePatches {
        status: status_patch,
        spec: spec_patch,
    }
}

/// `sluice promote NAME [--full]`.
pub async fn promote(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    full: bool,
) -> anyhow::Result<String> {
    let api = rollouts(client, namespace);
    let rollout = fetch(&api, name).await?;
    let patches = promote_patches(&rollout, full);
    if let Some(p) = &patches.status {
        patch_status(&api, name, p).await?;
    }
    if let Some(p) = &patches.spec {
        patch_spec(&api, name, p).await?;
    }
    Ok(if full {
        format!("rollout '{name}' fully promoted")
    } else {
        format!("rollout '{name}' promoted")
    })
}

/// `sluice abort NAME`.
pub async fn abort(client: &kube::Client, namespace: &str, name: &str) -> anyhow::Result<String> {
    let api = rollouts(client, namespace);
    fetch(&api, name).await?;
    patch_status(&api, name, &json!({"status": {"abort": true}})).await?;
    Ok(format!("rollout '{name}' aborted"))
}

/// `sluice retry NAME`.
pub async fn retry(client: &kube::Client, namespace: &str, name: &str) -> anyhow::Result<String> {
    let api = rollouts(client, namespace);
    fetch(&api, name).await?;
    patch_status(&api, name, &json!({"status": {"abort": false}})).await?;
    Ok(format!("rollout '{name}' retried"))
}

/// `sluice pause NAME`.
pub async fn pause(client: &kube::Client, namespace: &str, name: &str) -> anyhow::Result<String> {
    let api = rollouts(client, namespace);
    fetch(&api, name).await?;
    patch_spec(&api, name, &json!({"spec": {"paused": true}})).await?;
    Ok(format!("rollout '{name}' paused"))
}

/// `sluice restart NAME`: sets `spec.restartAt` to now.
pub async fn restart(client: &kube::Client, namespace: &str, name: &str) -> anyhow::Result<String> {
    let api = rollouts(client, namespace);
    fetch(&api, name).await?;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    patch_spec(&api, name, &json!({"spec": {"restartAt": now}})).await?;
    Ok(format!("rollout '{name}' restarts"))
}

/// `sluice get NAME`: a summary of the Rollout and its ReplicaSets.
pub async fn get(client: &kube::Client, namespace: &str, name: &str) -> anyhow::Result<String> {
    let api = rollouts(client, namespace);
    let rollout = fetch(&api, name).await?;
    let rs_api: Api<k8s_openapi::api::apps::v1::ReplicaSet> =
        Api::namespaced(client.clone(), namespace);
    let uid = rollout["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let owned: Vec<Value> = rs_api
        .list(&ListParams::default().labels("rollouts-pod-template-hash"))
        .await
        .context("listing ReplicaSets")?
        .items
        .into_iter()
        .filter(|rs| {
            rs.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == uid)
        })
        .map(|rs| serde_json::to_value(rs).unwrap_or(Value::Null))
        .collect();
    Ok(render_summary(&rollout, &owned))
}

/// Render the text of `sluice get` (pure; shared with the demo's live view).
pub fn render_summary(rollout: &Value, replica_sets: &[Value]) -> String {
    let status = &rollout["status"];
    let spec = &rollout["spec"];
    let s = |v: &Value| v.as_str().map(str::to_string).unwrap_or_else(|| "-".into());
    let n = |v: &Value| v.as_i64().unwrap_or(0);
    let mut out = String::new();
    let phase = s(&status["phase"]);
    let message = status["message"].as_str().unwrap_or("");
    out += &format!("Name:            {}\n", s(&rollout["metadata"]["name"]));
    out += &format!(
        "Namespace:       {}\n",
        s(&rollout["metadata"]["namespace"])
    );
    out += &format!(
        "Status:          {}{}\n",
        phase,
        if message.is_empty() {
            String::new()
        } else {
            format!(" ({message})")
        }
    );
    let steps = spec["strategy"]["canary"]["steps"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);
    if steps > 0 {
        let index = status["currentStepIndex"]
            .as_i64()
            .map(|i| i.to_string())
            .unwrap_or_else(|| "-".into());
        out += &format!("Step:            {index}/{steps}\n");
    }
    let stable = status["stableRS"].as_str().unwrap_or("");
    let current = status["currentPodHash"].as_str().unwrap_or("");
    let blue_green = spec["strategy"]["blueGreen"].is_object();
    let active = status["blueGreen"]["activeSelector"].as_str().unwrap_or("");
    let preview = status["blueGreen"]["previewSelector"]
        .as_str()
        .unwrap_or("");
    if blue_green {
        let or_none = |h: &str| {
            if h.is_empty() {
                "-".to_string()
            } else {
                h.to_string()
            }
        };
        out += "Strategy:        BlueGreen\n";
        out += &format!(
            "Services:        active {} ({}), preview {}\n",
            spec["strategy"]["blueGreen"]["activeService"]
                .as_str()
                .unwrap_or("-"),
            or_none(active),
            spec["strategy"]["blueGreen"]["previewService"]
                .as_str()
                .map(|p| format!("{p} ({})", or_none(preview)))
                .unwrap_or_else(|| "-".to_string()),
        );
    }
    let canary_avail: i64 = replica_sets
        .iter()
        .filter(|rs| {
            rs["metadata"]["labels"]["rollouts-pod-template-hash"].as_str() == Some(current)
                && current != stable
        })
        .map(|rs| n(&rs["status"]["availableReplicas"]))
        .sum();
    let total_avail: i64 = replica_sets
        .iter()
        .map(|rs| n(&rs["status"]["availableReplicas"]))
        .sum();
    let actual_weight = if current == stable || total_avail == 0 {
        if current == stable { 100 } else { 0 }
    } else {
        canary_avail * 100 / total_avail
    };
    if current != stable && !current.is_empty() && !blue_green {
        out += &format!("ActualWeight:    {actual_weight}\n");
    }
    out += &format!(
        "Replicas:        desired {} current {} updated {} ready {} available {}\n",
        n(&spec["replicas"]),
        n(&status["replicas"]),
        n(&status["updatedReplicas"]),
        n(&status["readyReplicas"]),
        n(&status["availableReplicas"])
    );
    let mut sorted: Vec<&Value> = replica_sets.iter().collect();
    sorted.sort_by_key(|rs| {
        std::cmp::Reverse(
            rs["metadata"]["annotations"]["rollout.argoproj.io/revision"]
                .as_str()
                .and_then(|r| r.parse::<i64>().ok())
                .unwrap_or(0),
        )
    });
    for rs in sorted {
        let hash = rs["metadata"]["labels"]["rollouts-pod-template-hash"]
            .as_str()
            .unwrap_or("");
        let mut roles = Vec::new();
        if hash == stable {
            roles.push("stable");
        }
        if blue_green {
            if hash == active {
                roles.push("active");
            }
            if hash == preview && hash != active {
                roles.push("preview");
            }
        } else if hash == current && hash != stable {
            roles.push("canary");
        }
        let revision = rs["metadata"]["annotations"]["rollout.argoproj.io/revision"]
            .as_str()
            .unwrap_or("?");
        out += &format!(
            "  revision:{revision:<3} {:<28} {:<13} spec {} ready {} available {}\n",
            s(&rs["metadata"]["name"]),
            roles.join(","),
            n(&rs["spec"]["replicas"]),
            n(&rs["status"]["readyReplicas"]),
            n(&rs["status"]["availableReplicas"])
        );
    }
    out
}

/// Fail with a one-line reason when a name is missing or malformed.
pub fn require_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty() {
        bail!("a rollout name is required");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ro(spec: Value, status: Value) -> Value {
        json!({"metadata": {"name": "web"}, "spec": spec, "status": status})
    }

    #[test]
    fn promote_clears_pause_conditions_when_paused_at_a_step() {
        let r = ro(
            json!({"strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}}}),
            json!({"currentStepIndex": 1, "pauseConditions": [{"reason": "CanaryPauseStep"}]}),
        );
        assert_eq!(
            promote_patches(&r, false),
            PromotePatches {
                status: Some(json!({"status": {"pauseConditions": null}})),
                spec: None
            }
        );
    }

    #[test]
    fn promote_after_an_inconclusive_analysis_skips_the_analysis_step() {
        let r = ro(
            json!({"strategy": {"canary": {"steps": [{"setWeight": 20}, {"analysis": {}}, {"pause": {}}]}}}),
            json!({"currentStepIndex": 1, "controllerPause": true, "pauseConditions": [{"reason": "InconclusiveAnalysisRun"}]}),
        );
        assert_eq!(
            promote_patches(&r, false).status,
            Some(
                json!({"status": {"pauseConditions": null, "controllerPause": false, "currentStepIndex": 2}})
            )
        );
    }

    #[test]
    fn promote_mid_step_skips_to_the_next_step() {
        let r = ro(
            json!({"strategy": {"canary": {"steps": [{"analysis": {}}, {"pause": {}}]}}}),
            json!({"currentStepIndex": 0}),
        );
        assert_eq!(
            promote_patches(&r, false).status,
            Some(json!({"status": {"pauseConditions": null, "currentStepIndex": 1}}))
        );
    }

    #[test]
    fn promote_unpauses_a_user_paused_rollout_on_the_main_resource() {
        let r = ro(
            json!({"paused": true, "strategy": {"canary": {}}}),
            json!({}),
        );
        assert_eq!(
            promote_patches(&r, false),
            PromotePatches {
                status: None,
                spec: Some(json!({"spec": {"paused": false}}))
            }
        );
    }

    #[test]
    fn promote_full_is_a_status_patch_only_when_a_canary_is_in_flight() {
        let inflight = ro(json!({}), json!({"currentPodHash": "b", "stableRS": "a"}));
        assert_eq!(
            promote_patches(&inflight, true).status,
            Some(json!({"status": {"promoteFull": true}}))
        );
        let done = ro(json!({}), json!({"currentPodHash": "a", "stableRS": "a"}));
        assert_eq!(promote_patches(&done, true).status, None);
    }

    #[test]
    fn summary_of_a_blue_green_rollout_shows_its_services_and_roles() {
        let r = ro(
            json!({"replicas": 2, "strategy": {"blueGreen": {"activeService": "web-active", "previewService": "web-preview"}}}),
            json!({"phase": "Paused", "message": "BlueGreenPause", "stableRS": "aaa", "currentPodHash": "bbb",
                   "blueGreen": {"activeSelector": "aaa", "previewSelector": "bbb"}}),
        );
        let rs = |hash: &str, n: i64| {
            json!({"metadata": {"name": format!("web-{hash}"), "labels": {"rollouts-pod-template-hash": hash}},
                   "spec": {"replicas": n}, "status": {"availableReplicas": n}})
        };
        let text = render_summary(&r, &[rs("aaa", 2), rs("bbb", 2)]);
        assert!(text.contains("Strategy:        BlueGreen"), "{text}");
        assert!(
            text.contains("Services:        active web-active (aaa), preview web-preview (bbb)"),
            "{text}"
        );
        assert!(!text.contains("ActualWeight"), "{text}");
        assert!(
            text.lines()
                .any(|l| l.contains("web-aaa") && l.contains("stable,active")),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.contains("web-bbb") && l.contains("preview")),
            "{text}"
        );
    }

    #[test]
    fn summary_shows_actual_weight_from_available_replicas() {
        let r = ro(
            json!({"replicas": 4, "strategy": {"canary": {"steps": [{"setWeight": 25}, {"pause": {}}]}}}),
            json!({"phase": "Paused", "message": "CanaryPauseStep", "currentStepIndex": 1, "stableRS": "aaa", "currentPodHash": "bbb"}),
        );
        let rs = |hash: &str, avail: i64| {
            json!({"metadata": {"name": format!("web-{hash}"), "labels": {"rollouts-pod-template-hash": hash}},
                   "spec": {"replicas": avail}, "status": {"availableReplicas": avail}})
        };
        let text = render_summary(&r, &[rs("aaa", 3), rs("bbb", 1)]);
        assert!(
            text.contains("Status:          Paused (CanaryPauseStep)"),
            "{text}"
        );
        assert!(text.contains("ActualWeight:    25"), "{text}");
        assert!(text.contains("Step:            1/2"), "{text}");
    }
}
