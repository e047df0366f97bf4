//! Installing the five CRDs from the API types, for the demo, the benchmarks and tests.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};

/// Install (server-side apply) the five CRDs and wait until every one is Established, so
/// all five kinds are served when this returns.
pub async fn install(client: &kube::Client) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crds = sluice_api::crds::all();
    for crd in &crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(
            &name,
            &PatchParams::apply("sluice").force(),
            &Patch::Apply(crd),
        )
        .await
        .with_context(|| format!("installing CRD {name}"))?;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    for name in crds.into_iter().filter_map(|c| c.metadata.name) {
        loop {
            let crd = api.get(&name).await?;
            let established = crd
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                break;
            }
            if Instant::now() > deadline {
                bail!("the CRD {name} was not established within 20 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}
