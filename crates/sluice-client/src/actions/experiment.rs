//! Experiments and AnalysisRuns: `retry experiment` and `terminate`.

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::json;

use sluice_api::analysis::AnalysisRun;
use sluice_api::experiment::Experiment;

use crate::error::{Error, kind};
use crate::world::decode;

fn api_of<K: kube::Resource<DynamicType = ()>>(
    client: &kube::Client,
    namespace: &str,
) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        namespace,
        &kube::api::ApiResource::erase::<K>(&()),
    )
}

fn finished(phase: Option<&str>) -> bool {
    matches!(
        phase,
        Some("Successful" | "Failed" | "Error" | "Inconclusive")
    )
}

/// `retry experiment NAME`: clear its status so it starts again (upstream's
/// `{"status":null}` merge patch; Experiments have no status subresource).
pub async fn retry(client: &kube::Client, namespace: &str, name: &str) -> Result<String, Error> {
    let api = api_of::<Experiment>(client, namespace);
    let obj = api
        .get(name)
        .await
        .map_err(|e| Error::from_kube(e, "get", kind::EXPERIMENT, namespace, name))?;
    let experiment: Experiment = decode(obj).map_err(|message| Error::Decode {
        kind: kind::EXPERIMENT,
        name: name.to_string(),
        message,
    })?;
    let phase = experiment
        .status
        .as_ref()
        .and_then(|s| s.phase.as_ref())
        .map(|p| p.as_str().to_string());
    if !finished(phase.as_deref()) {
        return Err(Error::Refused {
            kind: kind::EXPERIMENT,
            name: name.to_string(),
            reason: format!(
                "is {}: only a finished experiment can be retried",
                phase.as_deref().unwrap_or("Pending")
            ),
        });
    }
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": null})),
    )
    .await
    .map_err(|e| Error::from_kube(e, "patch", kind::EXPERIMENT, namespace, name))?;
    Ok(format!("experiment '{name}' retried"))
}

/// What `terminate` stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terminable {
    Experiment,
    AnalysisRun,
}

/// `terminate experiment|analysisrun NAME`: `{"spec":{"terminate":true}}`.
pub async fn terminate(
    client: &kube::Client,
    namespace: &str,
    which: Terminable,
    name: &str,
) -> Result<String, Error> {
    let (api, what) = match which {
        Terminable::Experiment => (api_of::<Experiment>(client, namespace), kind::EXPERIMENT),
        Terminable::AnalysisRun => (api_of::<AnalysisRun>(client, namespace), kind::ANALYSIS_RUN),
    };
    let obj = api
        .get(name)
        .await
        .map_err(|e| Error::from_kube(e, "get", what, namespace, name))?;
    let phase = obj.data["status"]["phase"].as_str();
    if finished(phase) {
        return Err(Error::Refused {
            kind: what,
            name: name.to_string(),
            reason: format!(
                "already finished ({}): nothing to terminate",
                phase.unwrap_or("")
            ),
        });
    }
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"terminate": true}})),
    )
    .await
    .map_err(|e| Error::from_kube(e, "patch", what, namespace, name))?;
    Ok(format!("{what} '{name}' terminated"))
}
