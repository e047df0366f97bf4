//! A template's ReplicaSet and Service, and its status: created when the experiment starts,
//! scaled to zero once it has finished (after `scaleDownDelaySeconds`), judged against
//! `progressDeadlineSeconds`.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use sluice_api::common::{POD_TEMPLATE_HASH_LABEL, SCALE_DOWN_DEADLINE_ANNOTATION};
use sluice_api::experiment::{TemplateSpec, TemplateStatus, TemplateStatusCode};

use super::{
    EXPERIMENT_NAME_ANNOTATION, ExperimentChange, Planner, TEMPLATE_NAME_ANNOTATION, annotation,
    duration_until, event, plus_secs, replica_set_name, secs, service_name, template_completed,
};
use crate::rollout::plan::EventType;
use sluice_api::k8s::hash::pod_template_hash;

impl<'a> Planner<'a> {
    /// One template: its ReplicaSet created, or scaled (and its Service kept in step), then
    /// its replica counts and status recorded, with an event when the status changes.
    pub(super) fn reconcile_template(
        &mut self,
        t: &TemplateSpec,
        finished: bool,
        terminating: bool,
        passed: bool,
    ) {
        let prev = self
            .prev
            .template_statuses
            .iter()
            .flatten()
            .find(|s| s.name == t.name)
            .cloned();
        let mut ts = prev.clone().unwrap_or_else(|| TemplateStatus {
            name: t.name.clone(),
            ..Default::default()
        });
        let desired = if finished { 0 } else { t.replicas() };
        let rs = self.template_rs(t);
        let wanted_rs = replica_set_name(&self.name, &t.name);
        match rs {
            None if self.obs.foreign_replica_sets.contains(&wanted_rs) => template_error(
                &mut ts,
                format!(
                    "Failed to create ReplicaSet for template '{}': replicaset {wanted_rs:?} already exists and is not controlled by this experiment",
                    t.name
                ),
            ),
            None if !terminating => self.create_template_replica_set(t, &mut ts, desired),
            None => {}
            Some(rs) => {
                ts.pod_template_hash = hash_label(rs);
                let target = self.scale_template_replica_set(rs, &mut ts, desired);
                self.reconcile_template_service(t, rs, &mut ts, desired, target);
            }
        }
        record_counts(&mut ts, rs, prev.as_ref(), &self.now);
        self.assess_template(t, &mut ts, desired, passed, terminating);
        self.template_transition_event(t, prev.and_then(|p| p.status), &ts);
        let list = self.status.template_statuses.get_or_insert_with(Vec::new);
        match list.iter_mut().find(|s| s.name == ts.name) {
            Some(s) => *s = ts,
            None => list.push(ts),
        }
    }

    fn create_template_replica_set(
        &mut self,
        t: &TemplateSpec,
        ts: &mut TemplateStatus,
        desired: i32,
    ) {
        let new = self.new_replica_set(t, ts.collision_count, desired);
        ts.pod_template_hash = hash_label(&new);
        ts.last_transition_time = Some(self.now.clone());
        let rs_name = new.metadata.name.clone().unwrap_or_default();
        self.changes
            .push(ExperimentChange::CreateReplicaSet(Box::new(new)));
        if desired > 0 {
            self.changes.push(event(
                EventType::Normal,
                "NewReplicaSetCreated",
                format!("Created new replica set {rs_name:?} with size {desired}"),
            ));
        }
    }

    /// Scales the template's ReplicaSet toward `desired` (a scale-down to zero waits for the
    /// scale-down delay). Returns the replicas it is scaled to now.
    fn scale_template_replica_set(
        &mut self,
        rs: &ReplicaSet,
        ts: &mut TemplateStatus,
        desired: i32,
    ) -> i32 {
        let rs_name = rs.metadata.name.clone().unwrap_or_default();
        let current = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let target = if desired == 0 && current != 0 {
            self.scale_down_target(rs, &rs_name, current)
        } else {
            desired
        };
        if target != current {
            let op = if target > current { "up" } else { "down" };
            self.changes.push(ExperimentChange::ScaleReplicaSet {
                name: rs_name.clone(),
                from: current,
                replicas: target,
            });
            self.changes.push(event(
                EventType::Normal,
                "ScalingReplicaSet",
                format!("Scaled {op} ReplicaSet {rs_name} from {current} to {target}"),
            ));
            ts.last_transition_time = Some(self.now.clone());
        }
        target
    }

    /// A template with `service` gets its Service while it should run; the Service is
    /// deleted once the ReplicaSet goes to zero (or the template no longer asks for one).
    fn reconcile_template_service(
        &mut self,
        t: &TemplateSpec,
        rs: &ReplicaSet,
        ts: &mut TemplateStatus,
        desired: i32,
        target: i32,
    ) {
        match (&t.service, self.template_service(t)) {
            (Some(_), None) if desired != 0 => self.create_template_service(t, rs, ts),
            (Some(_), Some(s)) if target != 0 => {
                ts.service_name = s.metadata.name.clone();
            }
            (_, Some(s)) => {
                self.changes.push(ExperimentChange::DeleteService {
                    name: s.metadata.name.clone().unwrap_or_default(),
                });
                ts.service_name = None;
            }
            (_, None) => ts.service_name = None,
        }
    }

    fn create_template_service(
        &mut self,
        t: &TemplateSpec,
        rs: &ReplicaSet,
        ts: &mut TemplateStatus,
    ) {
        let Some(new) = self.new_service(t, rs) else {
            return;
        };
        let svc_name = new.metadata.name.clone().unwrap_or_default();
        if self.obs.foreign_services.contains(&svc_name) {
            template_error(
                ts,
                format!(
                    "Failed to create Service {svc_name} for template '{}': service already exists and is not owned by this experiment",
                    t.name
                ),
            );
        } else {
            ts.service_name = Some(svc_name);
            self.changes
                .push(ExperimentChange::CreateService(Box::new(new)));
        }
    }

    /// The status of a template not yet completed: with every desired replica available,
    /// Running (Successful once the duration passed or the experiment ends); otherwise
    /// Failed past `progressDeadlineSeconds` since its last transition, else Progressing
    /// (Successful when the experiment ends).
    fn assess_template(
        &self,
        t: &TemplateSpec,
        ts: &mut TemplateStatus,
        desired: i32,
        passed: bool,
        terminating: bool,
    ) {
        if template_completed(ts.status.as_ref()) {
            return;
        }
        if desired == ts.available_replicas {
            ts.status = Some(if passed || terminating {
                TemplateStatusCode::Successful
            } else {
                TemplateStatusCode::Running
            });
            return;
        }
        let deadline_secs = self.ex.spec.progress_deadline_seconds();
        let from = ts
            .last_transition_time
            .clone()
            .unwrap_or_else(|| self.now.clone());
        let deadline = plus_secs(&from, i64::from(deadline_secs));
        if secs(&self.now) > secs(&deadline) {
            ts.status = Some(TemplateStatusCode::Failed);
            ts.message = Some(format!(
                "Template '{}' exceeded its progressDeadlineSeconds ({deadline_secs})",
                t.name
            ));
        } else if terminating {
            ts.status = Some(TemplateStatusCode::Successful);
        } else {
            ts.status = Some(TemplateStatusCode::Progressing);
        }
    }

    fn template_transition_event(
        &mut self,
        t: &TemplateSpec,
        prev_code: Option<TemplateStatusCode>,
        ts: &TemplateStatus,
    ) {
        if prev_code == ts.status {
            return;
        }
        let to = ts.status.as_ref().map(|s| s.as_str()).unwrap_or("");
        let mut msg = format!(
            "Template '{}' transitioned from {} -> {to}",
            t.name,
            prev_code.as_ref().map(|s| s.as_str()).unwrap_or("")
        );
        if let Some(m) = ts.message.as_deref().filter(|m| !m.is_empty()) {
            msg = format!("{msg}: {m}");
        }
        let type_ = match ts.status {
            Some(TemplateStatusCode::Failed | TemplateStatusCode::Error) => EventType::Warning,
            _ => EventType::Normal,
        };
        self.changes
            .push(event(type_, format!("Template{to}"), msg));
    }

    pub(super) fn template_rs(&self, t: &TemplateSpec) -> Option<&'a ReplicaSet> {
        self.obs.template_replica_set(t)
    }

    fn template_service(&self, t: &TemplateSpec) -> Option<&'a Service> {
        self.obs.template_service(t)
    }

    fn new_replica_set(
        &self,
        t: &TemplateSpec,
        collision_count: Option<i32>,
        replicas: i32,
    ) -> ReplicaSet {
        let hash = pod_template_hash(&t.template, collision_count);
        let mut template = t.template.clone();
        let labels = template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(Default::default);
        labels.insert(POD_TEMPLATE_HASH_LABEL.to_string(), hash.clone());
        let rs_labels = labels.clone();
        let mut selector = t.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH_LABEL.to_string(), hash);
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(replica_set_name(&self.name, &t.name)),
                namespace: self.ex.metadata.namespace.clone(),
                labels: Some(rs_labels),
                annotations: Some(self.owned_annotations(&t.name)),
                owner_references: Some(vec![self.owner_ref()]),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                min_ready_seconds: t.min_ready_seconds.filter(|s| *s != 0),
                selector,
                template: Some(template),
            }),
            status: None,
        }
    }

    /// A Service selecting the template ReplicaSet's pods, one port per container port.
    /// `None` when the pods expose no port (a Service needs at least one).
    fn new_service(&self, t: &TemplateSpec, rs: &ReplicaSet) -> Option<Service> {
        let pod_spec = rs.spec.as_ref()?.template.as_ref()?.spec.as_ref()?;
        let ports: Vec<ServicePort> = pod_spec
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .map(|p| ServicePort {
                name: p.name.clone().filter(|n| !n.is_empty()),
                protocol: p.protocol.clone(),
                port: p.container_port,
                target_port: Some(IntOrString::Int(p.container_port)),
                ..Default::default()
            })
            .collect();
        if ports.is_empty() {
            return None;
        }
        let name = service_name(&self.name, t);
        Some(Service {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: self.ex.metadata.namespace.clone(),
                annotations: Some(self.owned_annotations(&t.name)),
                owner_references: Some(vec![self.owner_ref()]),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                selector: rs.metadata.labels.clone(),
                ports: Some(ports),
                ..Default::default()
            }),
            status: None,
        })
    }

    /// The replicas a finished experiment's ReplicaSet should have now: zero once its
    /// `scale-down-deadline` passed (or with no delay), else unchanged (stamping the
    /// deadline first if missing).
    fn scale_down_target(&mut self, rs: &ReplicaSet, rs_name: &str, current: i32) -> i32 {
        let delay = i64::from(self.ex.spec.scale_down_delay_seconds());
        let existing = annotation(rs, SCALE_DOWN_DEADLINE_ANNOTATION);
        if delay <= 0 {
            if existing.is_some() {
                self.changes.push(ExperimentChange::SetScaleDownDeadline {
                    name: rs_name.to_string(),
                    deadline: None,
                });
            }
            return 0;
        }
        match existing {
            None => {
                let deadline = plus_secs(&self.now, delay);
                self.changes.push(ExperimentChange::SetScaleDownDeadline {
                    name: rs_name.to_string(),
                    deadline: Some(deadline.0.to_string()),
                });
                self.requeue_in(Duration::from_secs(delay.unsigned_abs()));
                current
            }
            Some(text) => match text.parse::<Timestamp>() {
                Ok(at) => match duration_until(&self.now, &Time(at)) {
                    Some(left) => {
                        self.requeue_in(left);
                        current
                    }
                    None => 0,
                },
                // An unreadable deadline must not keep pods up forever.
                Err(_) => 0,
            },
        }
    }

    fn owned_annotations(&self, template: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (EXPERIMENT_NAME_ANNOTATION.to_string(), self.name.clone()),
            (TEMPLATE_NAME_ANNOTATION.to_string(), template.to_string()),
        ])
    }
}

/// Marks the template Error with `message`, unless it already completed.
fn template_error(ts: &mut TemplateStatus, message: String) {
    if !template_completed(ts.status.as_ref()) {
        ts.status = Some(TemplateStatusCode::Error);
        ts.message = Some(message);
    }
}

fn hash_label(rs: &ReplicaSet) -> Option<String> {
    rs.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL))
        .cloned()
}

/// Counts of a template status: a change in them is progress.
pub(super) fn replica_counts(ts: &TemplateStatus) -> (i32, i32, i32, i32) {
    (
        ts.replicas,
        ts.updated_replicas,
        ts.ready_replicas,
        ts.available_replicas,
    )
}

/// The ReplicaSet's replica counts as observed; a change from the previous status moves
/// `lastTransitionTime` (the progress deadline counts from it).
fn record_counts(
    ts: &mut TemplateStatus,
    rs: Option<&ReplicaSet>,
    prev: Option<&TemplateStatus>,
    now: &Time,
) {
    let counts = rs.and_then(|r| r.status.as_ref());
    ts.replicas = counts.map_or(0, |s| s.replicas);
    ts.updated_replicas = ts.replicas;
    ts.ready_replicas = counts.and_then(|s| s.ready_replicas).unwrap_or(0);
    ts.available_replicas = counts.and_then(|s| s.available_replicas).unwrap_or(0);
    if prev.is_some_and(|p| replica_counts(p) != replica_counts(ts)) {
        ts.last_transition_time = Some(now.clone());
    }
}
