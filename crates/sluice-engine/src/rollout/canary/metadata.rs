//! What the Rollout adds to its pods beyond the template: `canaryMetadata`/`stableMetadata`
//! (blue/green: `previewMetadata`/`activeMetadata`), recorded on the ReplicaSet so it can be
//! taken back, and the anti-affinity that keeps a new canary (or preview) off the stable's
//! nodes.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{PodAffinityTerm, PodTemplateSpec, WeightedPodAffinityTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use sluice_api::common::{POD_TEMPLATE_HASH_LABEL, PodTemplateMetadata};

use super::{Planner, annotation};
use crate::rollout::plan::{Change, MetadataPatch};

/// Annotation on a ReplicaSet recording the ephemeral pod metadata injected into its template,
/// so it can be removed again without touching labels other controllers added.
pub const EPHEMERAL_METADATA_ANNOTATION: &str = "rollout.argoproj.io/ephemeral-metadata";

impl<'a> Planner<'a> {
    /// canaryMetadata (previewMetadata) on the new ReplicaSet's pods while a distinct stable
    /// exists, stableMetadata (activeMetadata) on the stable's, and on the new one once it is
    /// the stable.
    pub(crate) fn reconcile_ephemeral_metadata(&mut self, new: usize) {
        let (canary_meta, stable_meta) = self.ephemeral_metadata();
        match self.stable {
            Some(stable) if stable != new => {
                self.sync_ephemeral(new, canary_meta);
                self.sync_ephemeral(stable, stable_meta);
            }
            _ => self.sync_ephemeral(new, stable_meta),
        }
    }

    /// The strategy's ephemeral metadata: (for the new version while it is not the stable,
    /// for the stable version).
    pub(super) fn ephemeral_metadata(
        &self,
    ) -> (
        Option<&'a PodTemplateMetadata>,
        Option<&'a PodTemplateMetadata>,
    ) {
        if let Some(bg) = self.spec.blue_green() {
            return (bg.preview_metadata.as_ref(), bg.active_metadata.as_ref());
        }
        let canary = self.spec.canary();
        (
            canary.and_then(|c| c.canary_metadata.as_ref()),
            canary.and_then(|c| c.stable_metadata.as_ref()),
        )
    }

    fn sync_ephemeral(&mut self, idx: usize, desired: Option<&PodTemplateMetadata>) {
        let view = &self.rs[idx];
        let existing = ephemeral_of(view.rs);
        let template_meta = view
            .rs
            .spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .and_then(|t| t.metadata.as_ref());
        let labels = diff_metadata(
            template_meta.and_then(|m| m.labels.as_ref()),
            existing.as_ref().and_then(|e| e.labels.as_ref()),
            desired.and_then(|d| d.labels.as_ref()),
        );
        let annotations = diff_metadata(
            template_meta.and_then(|m| m.annotations.as_ref()),
            existing.as_ref().and_then(|e| e.annotations.as_ref()),
            desired.and_then(|d| d.annotations.as_ref()),
        );
        if labels.is_empty() && annotations.is_empty() {
            return;
        }
        let mut rs_annotations = MetadataPatch::default();
        match desired.filter(|d| !is_empty_metadata(d)) {
            Some(d) => {
                rs_annotations.set.insert(
                    EPHEMERAL_METADATA_ANNOTATION.to_string(),
                    serde_json::to_string(d).unwrap_or_default(),
                );
            }
            None => {
                rs_annotations
                    .remove
                    .insert(EPHEMERAL_METADATA_ANNOTATION.to_string());
            }
        }
        let (name, hash) = (view.name.to_string(), view.hash.to_string());
        self.changes.push(Change::UpdateReplicaSet {
            name,
            annotations: rs_annotations,
            template_labels: labels.clone(),
            template_annotations: annotations.clone(),
            min_ready_seconds: None,
        });
        self.changes.push(Change::PatchPods {
            pod_template_hash: hash,
            labels,
            annotations,
        });
    }

    /// `antiAffinity` (canary or blue/green): while a distinct stable exists, keep the new
    /// ReplicaSet's pods off the nodes running stable pods (preferred with the given weight,
    /// or required), with upstream's term: `rollouts-pod-template-hash In [<stable>]`, per
    /// hostname.
    pub(super) fn inject_anti_affinity(&self, template: &mut PodTemplateSpec) {
        let strategy = match self.spec.blue_green() {
            Some(bg) => bg.anti_affinity.as_ref(),
            None => self.spec.canary().and_then(|c| c.anti_affinity.as_ref()),
        };
        let Some(strategy) = strategy else {
            return;
        };
        let Some(stable) = self.stable.map(|i| self.rs[i].hash) else {
            return;
        };
        let term = PodAffinityTerm {
            label_selector: Some(LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: POD_TEMPLATE_HASH_LABEL.to_string(),
                    operator: "In".to_string(),
                    values: Some(vec![stable.to_string()]),
                }]),
                match_labels: None,
            }),
            topology_key: "kubernetes.io/hostname".to_string(),
            ..Default::default()
        };
        let pod = template.spec.get_or_insert_with(Default::default);
        let anti = pod
            .affinity
            .get_or_insert_with(Default::default)
            .pod_anti_affinity
            .get_or_insert_with(Default::default);
        match &strategy.preferred_during_scheduling_ignored_during_execution {
            Some(preferred) => anti
                .preferred_during_scheduling_ignored_during_execution
                .get_or_insert_with(Vec::new)
                .push(WeightedPodAffinityTerm {
                    weight: preferred.weight,
                    pod_affinity_term: term,
                }),
            None => anti
                .required_during_scheduling_ignored_during_execution
                .get_or_insert_with(Vec::new)
                .push(term),
        }
    }
}

pub(super) fn ephemeral_of(rs: &ReplicaSet) -> Option<PodTemplateMetadata> {
    annotation(rs, EPHEMERAL_METADATA_ANNOTATION).and_then(|s| serde_json::from_str(s).ok())
}

pub(super) fn is_empty_metadata(m: &PodTemplateMetadata) -> bool {
    m.labels.as_ref().is_none_or(BTreeMap::is_empty)
        && m.annotations.as_ref().is_none_or(BTreeMap::is_empty)
}

/// Keys to set (desired values that differ) and to remove (previously injected, no longer
/// desired, still present).
fn diff_metadata(
    current: Option<&BTreeMap<String, String>>,
    injected: Option<&BTreeMap<String, String>>,
    desired: Option<&BTreeMap<String, String>>,
) -> MetadataPatch {
    let mut patch = MetadataPatch::default();
    for (k, v) in desired.into_iter().flatten() {
        if current.and_then(|c| c.get(k)) != Some(v) {
            patch.set.insert(k.clone(), v.clone());
        }
    }
    for k in injected.into_iter().flatten().map(|(k, _)| k) {
        let still_desired = desired.is_some_and(|d| d.contains_key(k));
        if !still_desired && current.is_some_and(|c| c.contains_key(k)) {
            patch.remove.insert(k.clone());
        }
    }
    patch
}
