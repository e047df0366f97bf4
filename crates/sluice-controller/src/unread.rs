//! Writes whose answer is not read.
//!
//! The API server answers a create or a patch with the whole object, and kube's `Api`
//! decodes that into the object's type. For a status write of a Rollout, or an Event, that
//! decoding was about a tenth of the controller's CPU in a mass update, for an answer nobody
//! read. These send the same request through the same client (its request count, `--qps`
//! budget, TLS and errors) and scan the answer only for the resourceVersion the write
//! produced.

use kube::Resource;
use kube::api::{Patch, PatchParams, PostParams};
use kube::core::Request;
use serde::Deserialize;
use serde_json::Value;

/// What a write produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The object's resourceVersion after the write (empty if the answer had none).
    pub resource_version: String,
}

/// Only `metadata.resourceVersion` of an answer; serde skips the rest without building it.
#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    metadata: AnswerMeta,
}

#[derive(Deserialize, Default)]
struct AnswerMeta {
    #[serde(default, rename = "resourceVersion")]
    resource_version: String,
}

fn request<K: Resource<DynamicType = ()>>(ns: Option<&str>) -> Request {
    Request::new(K::url_path(&(), ns))
}

/// A JSON merge patch of `name` (of its `subresource`, if given), as `Api::patch` and
/// `Api::patch_status` send it.
pub async fn merge_patch<K: Resource<DynamicType = ()>>(
    client: &kube::Client,
    ns: Option<&str>,
    name: &str,
    subresource: Option<&str>,
    body: &Value,
) -> Result<Written, kube::Error> {
    let (pp, patch) = (PatchParams::default(), Patch::Merge(body));
    let built = match subresource {
        None => request::<K>(ns).patch(name, &pp, &patch),
        Some(sub) => request::<K>(ns).patch_subresource(sub, name, &pp, &patch),
    };
    let mut req = built.map_err(kube::Error::BuildRequest)?;
    req.extensions_mut().insert(if subresource.is_some() {
        "patch_subresource"
    } else {
        "patch"
    });
    written(&client.request_text(req).await?)
}

/// A create of `obj`, as `Api::create` sends it.
pub async fn create<K: Resource<DynamicType = ()> + serde::Serialize>(
    client: &kube::Client,
    ns: Option<&str>,
    obj: &K,
) -> Result<Written, kube::Error> {
    let data = serde_json::to_vec(obj).map_err(kube::Error::SerdeError)?;
    let mut req = request::<K>(ns)
        .create(&PostParams::default(), data)
        .map_err(kube::Error::BuildRequest)?;
    req.extensions_mut().insert("create");
    written(&client.request_text(req).await?)
}

fn written(text: &str) -> Result<Written, kube::Error> {
    let answer: Answer = serde_json::from_str(text).map_err(kube::Error::SerdeError)?;
    Ok(Written {
        resource_version: answer.metadata.resource_version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_resource_version_of_an_answer_is_read() {
        let text = r#"{"apiVersion":"argoproj.io/v1alpha1","kind":"Rollout",
            "metadata":{"name":"a","resourceVersion":"42","labels":{"x":"y"}},
            "spec":{"replicas":3,"strategy":{"canary":{"steps":[{"setWeight":20}]}}},
            "status":{"phase":"Paused","conditions":[{"type":"Available"}]}}"#;
        assert_eq!(written(text).unwrap().resource_version, "42");
        assert_eq!(written(r#"{"kind":"Event"}"#).unwrap().resource_version, "");
        assert!(matches!(
            written("not json"),
            Err(kube::Error::SerdeError(_))
        ));
    }
}
