//! `undo [--to-revision N]`: put an older ReplicaSet's pod template back into the Rollout
//! (COMPAT §7: a JSON patch replacing `/spec/template`, the hash label removed), or into the
//! workload a `workloadRef` Rollout takes its template from.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use sluice_api::common::{POD_TEMPLATE_HASH_LABEL, PodTemplateMetadata, REVISION_ANNOTATION};
use sluice_api::rollout::Rollout;
use sluice_engine::rollout::canary::EPHEMERAL_METADATA_ANNOTATION;
use sluice_engine::rollout::hash::templates_semantically_equal;

use super::{get_rollout, rollouts};
use crate::error::{Error, kind};

/// What an undo does.
#[derive(Debug, Clone, PartialEq)]
pub enum UndoPlan {
    /// The Rollout already runs that revision's template.
    AlreadyThere { revision: i64 },
    /// Replace the template with `template` (revision `revision`'s).
    Restore { revision: i64, template: Value },
}

fn revision_of(rs: &ReplicaSet) -> Option<i64> {
    rs.metadata
        .annotations
        .as_ref()?
        .get(REVISION_ANNOTATION)?
        .parse()
        .ok()
}

fn controlled_by(rs: &ReplicaSet, rollout: &Rollout) -> bool {
    let uid = rollout.metadata.uid.as_deref();
    rs.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && Some(o.uid.as_str()) == uid)
}

/// Decide the undo from the Rollout and the ReplicaSets in its namespace (pure).
/// `to_revision` 0 or `None` means the revision before the newest.
pub fn plan(
    rollout: &Rollout,
    replica_sets: &[ReplicaSet],
    to_revision: Option<i64>,
) -> Result<UndoPlan, String> {
    let mut owned: Vec<(i64, &ReplicaSet)> = replica_sets
        .iter()
        .filter(|rs| controlled_by(rs, rollout))
        .filter_map(|rs| revision_of(rs).map(|r| (r, rs)))
        .collect();
    owned.sort_by_key(|(r, _)| std::cmp::Reverse(*r));
    let known = || {
        let mut revs: Vec<String> = owned.iter().map(|(r, _)| r.to_string()).collect();
        revs.reverse();
        if revs.is_empty() {
            "none".to_string()
        } else {
            revs.join(", ")
        }
    };
    let (revision, rs) = match to_revision.filter(|r| *r != 0) {
        Some(wanted) => *owned
            .iter()
            .find(|(r, _)| *r == wanted)
            .ok_or_else(|| format!("has no revision {wanted} (revisions: {})", known()))?,
        None => *owned.get(1).ok_or_else(|| {
            format!(
                "has no previous revision to go back to (revisions: {})",
                known()
            )
        })?,
    };
    let mut template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .ok_or_else(|| format!("revision {revision} has no pod template"))?;
    let ephemeral: Option<PodTemplateMetadata> = rs
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(EPHEMERAL_METADATA_ANNOTATION))
        .and_then(|s| serde_json::from_str(s).ok());
    let current = rollout.spec.template.clone().unwrap_or_default();
    if templates_semantically_equal(&template, ephemeral.as_ref(), &current) {
        return Ok(UndoPlan::AlreadyThere { revision });
    }
    strip_controller_metadata(&mut template, ephemeral.as_ref());
    Ok(UndoPlan::Restore {
        revision,
        template: serde_json::to_value(template).map_err(|e| e.to_string())?,
    })
}

/// Remove what the controller put into the ReplicaSet's template and the user never wrote:
/// the hash label and the ephemeral canary/stable metadata (upstream keeps the latter, which
/// makes the restored template differ from the revision's and start a new one).
fn strip_controller_metadata(
    template: &mut PodTemplateSpec,
    ephemeral: Option<&PodTemplateMetadata>,
) {
    let Some(meta) = template.metadata.as_mut() else {
        return;
    };
    if let Some(labels) = meta.labels.as_mut() {
        labels.remove(POD_TEMPLATE_HASH_LABEL);
        for k in ephemeral
            .and_then(|e| e.labels.as_ref())
            .into_iter()
            .flatten()
        {
            labels.remove(k.0);
        }
    }
    if let Some(annotations) = meta.annotations.as_mut() {
        for k in ephemeral
            .and_then(|e| e.annotations.as_ref())
            .into_iter()
            .flatten()
        {
            annotations.remove(k.0);
        }
    }
    meta.creation_timestamp = None;
}

/// `undo NAME [--to-revision N]`.
pub async fn run(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    to_revision: Option<i64>,
) -> Result<String, Error> {
    let rollout = get_rollout(client, namespace, name).await?;
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
    let list = replica_sets
        .list(&ListParams::default().labels(POD_TEMPLATE_HASH_LABEL))
        .await
        .map_err(|e| Error::from_kube(e, "list", "replicasets", namespace, ""))?
        .items;
    let refused = |reason| Error::Refused {
        kind: kind::ROLLOUT,
        name: name.to_string(),
        reason,
    };
    let (revision, template) = match plan(&rollout, &list, to_revision).map_err(refused)? {
        UndoPlan::AlreadyThere { revision } => {
            return Ok(format!(
                "rollout '{name}' skipped rollback (current template already matches revision {revision})"
            ));
        }
        UndoPlan::Restore { revision, template } => (revision, template),
    };
    let patch = |path: &str| -> Result<json_patch::Patch, Error> {
        serde_json::from_value(json!([{"op": "replace", "path": path, "value": template}])).map_err(
            |e| Error::Api {
                verb: "patch",
                kind: kind::ROLLOUT,
                name: name.to_string(),
                message: e.to_string(),
            },
        )
    };
    let params = PatchParams::default();
    match rollout.spec.workload_ref.as_ref() {
        None => {
            rollouts(client, namespace)
                .patch(name, &params, &Patch::<()>::Json(patch("/spec/template")?))
                .await
                .map_err(|e| Error::from_kube(e, "patch", kind::ROLLOUT, namespace, name))?;
        }
        Some(workload) => {
            let target = workload.name.clone().unwrap_or_default();
            let (resource, what, path) = match workload.kind.as_deref().unwrap_or_default() {
                "Deployment" => (
                    kube::api::ApiResource::erase::<k8s_openapi::api::apps::v1::Deployment>(&()),
                    kind::DEPLOYMENT,
                    "/spec/template",
                ),
                "ReplicaSet" => (
                    kube::api::ApiResource::erase::<ReplicaSet>(&()),
                    kind::REPLICA_SET,
                    "/spec/template",
                ),
                "PodTemplate" => (
                    kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::PodTemplate>(&()),
                    kind::POD_TEMPLATE,
                    "/template",
                ),
                other => {
                    return Err(refused(format!(
                        "takes its template from a {other}, which undo cannot change"
                    )));
                }
            };
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), namespace, &resource);
            api.patch(&target, &params, &Patch::<()>::Json(patch(path)?))
                .await
                .map_err(|e| Error::from_kube(e, "patch", what, namespace, &target))?;
        }
    }
    Ok(format!(
        "rollout '{name}' undo (back to revision {revision})"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rollout(image: &str) -> Rollout {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web", "uid": "u1"},
            "spec": {"template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": image}]}}}
        }))
        .unwrap()
    }

    fn rs(revision: i64, image: &str, owner: &str) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": format!("web-{revision}"),
                         "annotations": {"rollout.argoproj.io/revision": revision.to_string(),
                                         "rollout.argoproj.io/ephemeral-metadata": "{\"labels\":{\"role\":\"canary\"}}"},
                         "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                                              "name": "web", "uid": owner, "controller": true}]},
            "spec": {"selector": {}, "template": {
                "metadata": {"labels": {"app": "web", "role": "canary", "rollouts-pod-template-hash": format!("h{revision}")}},
                "spec": {"containers": [{"name": "web", "image": image}]}}}
        }))
        .unwrap()
    }

    #[test]
    fn undo_goes_back_to_the_previous_revision_without_controller_labels() {
        let sets = [
            rs(1, "nginx:1.25", "u1"),
            rs(2, "nginx:1.26", "u1"),
            rs(7, "x", "other"),
        ];
        let plan = plan(&rollout("nginx:1.26"), &sets, None).unwrap();
        let UndoPlan::Restore { revision, template } = plan else {
            panic!("{plan:?}")
        };
        assert_eq!(revision, 1);
        assert_eq!(template["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(template["spec"]["containers"][0]["image"], "nginx:1.25");
    }

    #[test]
    fn undo_to_the_current_template_is_skipped() {
        let sets = [rs(1, "nginx:1.25", "u1"), rs(2, "nginx:1.26", "u1")];
        assert_eq!(
            plan(&rollout("nginx:1.25"), &sets, Some(1)),
            Ok(UndoPlan::AlreadyThere { revision: 1 })
        );
    }

    #[test]
    fn undo_to_an_unknown_revision_names_the_ones_there_are() {
        let sets = [rs(1, "nginx:1.25", "u1"), rs(2, "nginx:1.26", "u1")];
        assert_eq!(
            plan(&rollout("nginx:1.26"), &sets, Some(9)),
            Err("has no revision 9 (revisions: 1, 2)".to_string())
        );
        assert_eq!(
            plan(&rollout("nginx:1.26"), &sets[..1], None),
            Err("has no previous revision to go back to (revisions: 1)".to_string())
        );
    }
}
