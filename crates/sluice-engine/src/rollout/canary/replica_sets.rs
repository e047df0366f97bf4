//! The canary's ReplicaSet: found by template (or created), its revision kept above every
//! older one, and old ReplicaSets beyond `revisionHistoryLimit` deleted.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use sluice_api::common::{
    DESIRED_REPLICAS_ANNOTATION, POD_TEMPLATE_HASH_LABEL, PodTemplateMetadata, REVISION_ANNOTATION,
};
use sluice_api::rollout::RolloutConditionType as Cond;

use super::metadata::{EPHEMERAL_METADATA_ANNOTATION, ephemeral_of, is_empty_metadata};
use super::{Planner, annotation};
use crate::rollout::hash::TemplateMatcher;
use crate::rollout::plan::{Change, MetadataPatch, Plan};
use crate::rollout::status::{self as st, TRUE, set_condition};

impl<'a> Planner<'a> {
    /// The ReplicaSet of the current template: by hash label, else (a ReplicaSet another
    /// controller made, or a template copied back from an old ReplicaSet) by semantic
    /// template equality, oldest first.
    pub(super) fn find_new(&self, desired_hash: &str) -> Option<usize> {
        if let Some(i) = self
            .rs
            .iter()
            .position(|v| !v.deleting && v.hash == desired_hash)
        {
            return Some(i);
        }
        let matcher = TemplateMatcher::new(self.template());
        let mut candidates: Vec<usize> = (0..self.rs.len())
            .filter(|&i| !self.rs[i].deleting)
            .collect();
        // The ReplicaSet adopted last time is the likely match: try it first so an adopted
        // Rollout normally costs one comparison per reconcile.
        let previous = self.prev.current_pod_hash.as_deref().unwrap_or_default();
        candidates.sort_by(|&a, &b| {
            let key = |i: usize| (self.rs[i].hash != previous, self.rs[i].created());
            key(a).cmp(&key(b))
        });
        candidates.into_iter().find(|&i| {
            let rs = self.rs[i].rs;
            let live = rs.spec.as_ref().and_then(|s| s.template.as_ref());
            live.is_some_and(|live| matcher.matches(live, ephemeral_of(rs).as_ref()))
        })
    }

    /// The ReplicaSet the status names stable, if it still exists.
    pub(super) fn find_stable(&self) -> Option<usize> {
        let hash = self.prev.stable_rs.as_deref().filter(|h| !h.is_empty())?;
        self.rs.iter().position(|v| v.hash == hash)
    }

    fn max_revision_except(&self, except: Option<usize>) -> i64 {
        self.rs
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != except)
            .map(|(_, v)| v.revision)
            .max()
            .unwrap_or(0)
    }

    /// The Rollout's `rollout.argoproj.io/revision` annotation as observed.
    pub(super) fn rollout_revision(&self) -> Option<&str> {
        self.obs
            .rollout
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION_ANNOTATION))
            .map(String::as_str)
    }

    fn annotate_rollout_revision(&mut self, revision: i64) {
        let text = revision.to_string();
        if self.rollout_revision() != Some(text.as_str()) {
            self.changes.push(Change::AnnotateRolloutRevision {
                revision: text.clone(),
            });
            self.changes.push(Change::normal(
                st::ROLLOUT_UPDATED_REASON,
                format!("Rollout updated to revision {text}"),
            ));
        }
    }

    /// Keeps the canary's revision above every older ReplicaSet's (a rollback to an old
    /// template gets a new revision, like a Deployment), its minReadySeconds in step with the
    /// Rollout, and the Rollout's revision annotation equal to it.
    pub(crate) fn sync_revision(&mut self, new: usize) -> i64 {
        let want = self.max_revision_except(Some(new)) + 1;
        let view = &self.rs[new];
        let mut revision = view.revision;
        let mut annotations = MetadataPatch::default();
        if revision < want || annotation(view.rs, REVISION_ANNOTATION).is_none() {
            revision = revision.max(want);
            annotations
                .set
                .insert(REVISION_ANNOTATION.to_string(), revision.to_string());
        }
        let current_min_ready = view
            .rs
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0);
        let min_ready_seconds = (current_min_ready != self.spec.min_ready_seconds())
            .then(|| self.spec.min_ready_seconds());
        if !annotations.is_empty() || min_ready_seconds.is_some() {
            self.changes.push(Change::UpdateReplicaSet {
                name: view.name.to_string(),
                annotations,
                template_labels: MetadataPatch::default(),
                template_annotations: MetadataPatch::default(),
                min_ready_seconds,
            });
        }
        self.annotate_rollout_revision(revision);
        revision
    }

    pub(super) fn create_new_replica_set(mut self, hash: String) -> Plan {
        let name = format!("{}-{}", self.name(), hash);
        let mut status = self.prev.clone();
        if self.rs.iter().any(|v| v.name == name) {
            // Same name, different template: a hash collision. Bumping the count changes
            // the hash on the next reconcile.
            status.collision_count = Some(self.prev.collision_count.unwrap_or(0) + 1);
            return self.finish(status, 0);
        }
        let revision = self.max_revision_except(None) + 1;
        let stable_distinct = self.stable.is_some();
        let (new_metadata, stable_metadata) = self.ephemeral_metadata();
        let ephemeral = if stable_distinct {
            new_metadata
        } else {
            stable_metadata
        };
        let rs = self.build_replica_set(&name, &hash, revision, ephemeral);
        self.changes.push(Change::CreateReplicaSet(Box::new(rs)));
        // Upstream sets the Rollout's revision (RolloutUpdated) right after the create, then
        // tells of the new ReplicaSet.
        self.annotate_rollout_revision(revision);
        self.changes.push(Change::normal(
            st::NEW_REPLICA_SET_REASON,
            format!("Created ReplicaSet {name} (revision {revision})"),
        ));
        self.creating = true;

        status.current_pod_hash = Some(hash);
        status.current_step_hash = self.status_step_hash();
        self.reset_for_update(&mut status);
        let mut conditions = status.conditions.take().unwrap_or_default();
        set_condition(
            &mut conditions,
            Cond::Progressing,
            TRUE,
            st::NEW_REPLICA_SET_REASON,
            st::new_rs_message(&name),
            &self.now,
        );
        status.conditions = Some(conditions);
        self.finish(status, revision)
    }

    fn build_replica_set(
        &self,
        name: &str,
        hash: &str,
        revision: i64,
        ephemeral: Option<&PodTemplateMetadata>,
    ) -> ReplicaSet {
        let ro = &self.obs.rollout;
        let mut template = self.template().clone();
        let meta = template.metadata.get_or_insert_with(Default::default);
        let labels = meta.labels.get_or_insert_with(Default::default);
        if let Some(e) = ephemeral {
            labels.extend(e.labels.clone().unwrap_or_default());
            if let Some(a) = e.annotations.as_ref().filter(|a| !a.is_empty()) {
                meta.annotations
                    .get_or_insert_with(Default::default)
                    .extend(a.clone());
            }
        }
        let labels = meta.labels.get_or_insert_with(Default::default);
        labels.insert(POD_TEMPLATE_HASH_LABEL.to_string(), hash.to_string());
        let rs_labels = labels.clone();
        self.inject_anti_affinity(&mut template);

        let mut selector = self.spec.selector.clone().unwrap_or_default();
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH_LABEL.to_string(), hash.to_string());

        let mut annotations = BTreeMap::from([
            (REVISION_ANNOTATION.to_string(), revision.to_string()),
            (
                DESIRED_REPLICAS_ANNOTATION.to_string(),
                self.replicas.to_string(),
            ),
        ]);
        if let Some(e) = ephemeral.filter(|e| !is_empty_metadata(e)) {
            annotations.insert(
                EPHEMERAL_METADATA_ANNOTATION.to_string(),
                serde_json::to_string(e).unwrap_or_default(),
            );
        }
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: ro.metadata.namespace.clone(),
                labels: Some(rs_labels),
                annotations: Some(annotations),
                owner_references: Some(vec![OwnerReference {
                    api_version: "argoproj.io/v1alpha1".to_string(),
                    kind: "Rollout".to_string(),
                    name: self.name().to_string(),
                    uid: ro.metadata.uid.clone().unwrap_or_default(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: self.spec.min_ready_seconds.filter(|s| *s != 0),
                selector,
                template: Some(template),
            }),
            status: None,
        }
    }

    /// Deletes the oldest scaled-down ReplicaSets beyond `revisionHistoryLimit`; never the
    /// canary or the stable.
    pub(crate) fn cleanup_history(&mut self) {
        let limit = usize::try_from(self.spec.revision_history_limit().max(0)).unwrap_or(0);
        let mut old: Vec<usize> = (0..self.rs.len())
            .filter(|&i| Some(i) != self.new && Some(i) != self.stable && !self.rs[i].deleting)
            .collect();
        if old.len() <= limit {
            return;
        }
        let excess = old.len() - limit;
        old.sort_by(|&a, &b| {
            (self.rs[a].created(), self.rs[a].name).cmp(&(self.rs[b].created(), self.rs[b].name))
        });
        for &i in &old[..excess] {
            let v = &self.rs[i];
            let observed_generation =
                v.rs.status
                    .as_ref()
                    .and_then(|s| s.observed_generation)
                    .unwrap_or(0);
            let settled = v.rs.metadata.generation.unwrap_or(0) <= observed_generation;
            if v.spec == 0 && v.replicas == 0 && settled {
                self.changes.push(Change::DeleteReplicaSet {
                    name: v.name.to_string(),
                });
            }
        }
    }
}
