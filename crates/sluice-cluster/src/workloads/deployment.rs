//! The Deployment controller (apps/v1): rolls a Deployment's Pod template out through
//! ReplicaSets named `<deployment>-<pod-template-hash>`.
//!
//! What it does, after kube-controller-manager:
//! - The ReplicaSet whose template equals the Deployment's (ignoring the
//!   `pod-template-hash` label) is the new one; all other owned ReplicaSets are old.
//! - `RollingUpdate` (default; `maxSurge`/`maxUnavailable` default 25%, surge rounds up,
//!   unavailable down, both 0 means unavailable 1): the new ReplicaSet grows while the total
//!   stays within `replicas + maxSurge`; old ones shrink — unhealthy Pods first — while
//!   available Pods stay at least `replicas - maxUnavailable`. A pass that scales the new
//!   ReplicaSet does not also scale old ones (the next pass does).
//! - `Recreate`: old ReplicaSets go to 0 and their Pods must be gone before the new one is
//!   scaled to `replicas`.
//! - `spec.paused`: no new ReplicaSet is created; replica changes still apply — to the one
//!   active ReplicaSet, or proportionally across several (within `replicas + maxSurge`).
//! - Revisions: the new ReplicaSet gets `deployment.kubernetes.io/revision` = highest old
//!   revision + 1 (also when an old template comes back), mirrored on the Deployment.
//! - Old ReplicaSets at 0 beyond `revisionHistoryLimit` (default 10) are deleted.
//! - Status: replicas/updated/ready/available/unavailable, observedGeneration, and the
//!   `Available` (MinimumReplicasAvailable / MinimumReplicasUnavailable) and `Progressing`
//!   (NewReplicaSetCreated, ReplicaSetUpdated, NewReplicaSetAvailable,
//!   ProgressDeadlineExceeded, DeploymentPaused, DeploymentResumed) conditions.
//! - A ReplicaSet name taken by a different template bumps `status.collisionCount`, which
//!   changes the hash.
//!
//! Scaling a Deployment to 0 scales every ReplicaSet to 0; scaling it back up grows the new
//! ReplicaSet again (Sluice's Deployment → Rollout migration relies on both).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use super::informer::{Cache, ObjectKey};
use super::pod_state::{controller_of, controller_ref, created};
use super::reflects::WriteMemo;
use super::status::{StatusBody, changed_status, write_status};
use super::{WorkloadsError, is_not_found};
use sluice_api::k8s::conditions as k8s_conditions;
use sluice_api::k8s::hash::pod_template_hash;
use sluice_api::k8s::intstr;
use sluice_api::k8s::time::{from_time, to_time};

/// Revision annotation on Deployments and their ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// The Deployment's replicas when a ReplicaSet was last scaled.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// `replicas + maxSurge` when a ReplicaSet was last scaled.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// The label that ties a ReplicaSet and its Pods to one template.
pub const HASH_LABEL: &str = "pod-template-hash";

const DEFAULT_PROGRESS_DEADLINE: i32 = 600;
const DEFAULT_HISTORY_LIMIT: i32 = 10;

/// One write the Deployment controller makes.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    CreateReplicaSet(Box<ReplicaSet>),
    ScaleReplicaSet {
        name: String,
        replicas: i32,
        annotations: BTreeMap<String, String>,
    },
    SetReplicaSetRevision {
        name: String,
        revision: String,
    },
    DeleteReplicaSet(String),
    SetDeploymentRevision(String),
}

/// The Deployment controller's decision.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub changes: Vec<Change>,
    /// The status to write, when it differs from the stored one.
    pub status: Option<DeploymentStatus>,
    /// When the progress deadline would expire.
    pub requeue_at: Option<DateTime<Utc>>,
}

fn strip_hash(template: &PodTemplateSpec) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(HASH_LABEL);
        if labels.is_empty() {
            t.metadata.as_mut().unwrap().labels = None;
        }
    }
    serde_json::to_value(t).unwrap_or_default()
}

fn revision_of(rs: &ReplicaSet) -> i64 {
    rs.annotations()
        .get(REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn int_or_percent(v: Option<&IntOrString>, default: &str) -> IntOrString {
    v.cloned()
        .unwrap_or_else(|| IntOrString::String(default.to_string()))
}

/// `(maxSurge, maxUnavailable)` of a rolling Deployment resolved against `replicas`.
pub fn surge_and_unavailable(d: &Deployment, replicas: i32) -> (i32, i32) {
    let rolling = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let surge_v = int_or_percent(rolling.and_then(|r| r.max_surge.as_ref()), "25%");
    let unavail_v = int_or_percent(rolling.and_then(|r| r.max_unavailable.as_ref()), "25%");
    let surge = intstr::resolve("maxSurge", &surge_v, replicas, true)
        .unwrap_or_else(|_| (replicas + 3) / 4);
    let unavailable =
        intstr::resolve("maxUnavailable", &unavail_v, replicas, false).unwrap_or(replicas / 4);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable.min(replicas))
    }
}

fn is_recreate(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        == Some("Recreate")
}

#[derive(Clone)]
struct View {
    name: String,
    spec: i32,
    target: i32,
    status_replicas: i32,
    ready: i32,
    available: i32,
    revision: i64,
    created: DateTime<Utc>,
    observed: bool,
}

impl View {
    fn of(rs: &ReplicaSet) -> Self {
        let spec = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let status = rs.status.clone().unwrap_or_default();
        Self {
            name: rs.name_any(),
            spec,
            target: spec,
            status_replicas: status.replicas,
            ready: status.ready_replicas.unwrap_or(0),
            available: status.available_replicas.unwrap_or(0),
            revision: revision_of(rs),
            created: created(&rs.metadata),
            observed: status.observed_generation >= rs.metadata.generation,
        }
    }
}

fn scale_change(v: &View, replicas: i32, desired: i32, max: i32) -> Change {
    Change::ScaleReplicaSet {
        name: v.name.clone(),
        replicas,
        annotations: [
            (DESIRED_REPLICAS.to_string(), desired.to_string()),
            (MAX_REPLICAS.to_string(), max.to_string()),
        ]
        .into(),
    }
}

/// Decides the ReplicaSet writes and status of `d` given the ReplicaSets it controls.
pub fn plan(d: &Deployment, owned: &[Arc<ReplicaSet>], now: DateTime<Utc>) -> Plan {
    if d.metadata.deletion_timestamp.is_some() {
        return Plan {
            changes: Vec::new(),
            status: None,
            requeue_at: None,
        };
    }
    let spec = d.spec.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1).max(0);
    let current = d.status.clone().unwrap_or_default();
    let mut collision_count = current.collision_count;
    let hash = pod_template_hash(&spec.template, collision_count);
    let (mut new_rs, mut olds) = split_by_template(owned, &spec.template);
    let new_revision = next_revision(new_rs.as_ref(), &olds);
    let new_name = format!("{}-{}", d.name_any(), hash);
    let (surge, unavailable) = surge_and_unavailable(d, replicas);
    let max_total = replicas + surge;
    let paused = spec.paused == Some(true);
    let name_taken = new_rs.is_none() && olds.iter().any(|o| o.name == new_name);

    // The size of the new ReplicaSet to create, when one is to be created.
    let mut create = None;
    if paused {
        scale_paused(new_rs.as_mut(), &mut olds, replicas, max_total);
    } else if name_taken {
        // Another template already holds our name: a collision. Bumping the count
        // changes the hash on the next pass.
        collision_count = Some(collision_count.unwrap_or(0) + 1);
    } else if is_recreate(d) {
        create = recreate(new_rs.as_mut(), &mut olds, replicas);
    } else {
        create = roll(new_rs.as_mut(), &mut olds, replicas, max_total, unavailable);
    }
    let created_new = create.is_some();
    let mut changes: Vec<Change> = create
        .map(|target| {
            let rs = new_replica_set(d, &new_name, &hash, new_revision, target, max_total);
            Change::CreateReplicaSet(Box::new(rs))
        })
        .into_iter()
        .collect();
    changes.extend(scale_writes(new_rs.as_ref(), &olds, replicas, max_total));
    changes.extend(revision_writes(
        d,
        new_rs.as_ref(),
        new_revision,
        created_new,
    ));
    changes.extend(history_cleanup(&olds, spec.revision_history_limit));

    let (status, requeue_at) = status_of(
        d,
        &current,
        StatusInputs {
            new_rs: new_rs.as_ref(),
            olds: &olds,
            replicas,
            unavailable: if is_recreate(d) || replicas == 0 {
                0
            } else {
                unavailable
            },
            paused,
            created_new: created_new.then_some(new_name.as_str()),
            collision_count,
        },
        now,
    );
    Plan {
        changes,
        status: changed_status(&current, status),
        requeue_at,
    }
}

/// The live ReplicaSets, oldest first, as the new one (the oldest whose template is the
/// Deployment's, ignoring the hash label) and the old ones.
fn split_by_template(
    owned: &[Arc<ReplicaSet>],
    template: &PodTemplateSpec,
) -> (Option<View>, Vec<View>) {
    let want = strip_hash(template);
    let mut by_age: Vec<&ReplicaSet> = owned
        .iter()
        .map(|r| r.as_ref())
        .filter(|r| r.metadata.deletion_timestamp.is_none())
        .collect();
    by_age.sort_by(|a, b| {
        created(&a.metadata)
            .cmp(&created(&b.metadata))
            .then_with(|| a.name_any().cmp(&b.name_any()))
    });
    let mut new_rs: Option<View> = None;
    let mut olds: Vec<View> = Vec::new();
    for rs in by_age {
        let matches = rs
            .spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .is_some_and(|t| strip_hash(t) == want);
        if matches && new_rs.is_none() {
            new_rs = Some(View::of(rs));
        } else {
            olds.push(View::of(rs));
        }
    }
    (new_rs, olds)
}

/// The new ReplicaSet's revision: its own while it is the newest, else one past the old ones.
fn next_revision(new_rs: Option<&View>, olds: &[View]) -> i64 {
    let max_old_revision = olds.iter().map(|o| o.revision).max().unwrap_or(0);
    match new_rs {
        Some(n) if n.revision > max_old_revision => n.revision,
        _ => max_old_revision + 1,
    }
}

/// `Recreate`: old ReplicaSets go to 0, and only once their Pods are gone does the new one
/// get `replicas`. Returns the size of a new ReplicaSet to create.
fn recreate(new_rs: Option<&mut View>, olds: &mut [View], replicas: i32) -> Option<i32> {
    if olds.iter().any(|o| o.spec > 0) {
        olds.iter_mut().for_each(|o| o.target = 0);
    } else if olds.iter().all(|o| o.status_replicas == 0) {
        match new_rs {
            None => return Some(replicas),
            Some(n) => n.target = replicas,
        }
    }
    None
}

/// `RollingUpdate`: the new ReplicaSet grows while the total stays within `max_total`; when
/// it cannot grow, old ones shrink within `max_unavailable`. Returns the size of a new
/// ReplicaSet to create.
fn roll(
    new_rs: Option<&mut View>,
    olds: &mut [View],
    replicas: i32,
    max_total: i32,
    max_unavailable: i32,
) -> Option<i32> {
    let total: i32 =
        olds.iter().map(|o| o.spec).sum::<i32>() + new_rs.as_ref().map(|n| n.spec).unwrap_or(0);
    match new_rs {
        None => return Some((max_total - total).clamp(0, replicas)),
        Some(n) if n.spec > replicas => n.target = replicas,
        Some(n) if n.spec < replicas && max_total - total > 0 => {
            n.target = n.spec + (max_total - total).min(replicas - n.spec);
        }
        Some(n) => scale_down_olds(olds, n, replicas, max_unavailable),
    }
    None
}

/// Scale writes for every ReplicaSet whose target moved, new one first (it is what a
/// rollout waits on).
fn scale_writes(
    new_rs: Option<&View>,
    olds: &[View],
    replicas: i32,
    max_total: i32,
) -> Vec<Change> {
    new_rs
        .into_iter()
        .chain(olds.iter())
        .filter(|v| v.target != v.spec)
        .map(|v| scale_change(v, v.target, replicas, max_total))
        .collect()
}

/// The new revision, on the new ReplicaSet and mirrored on the Deployment.
fn revision_writes(
    d: &Deployment,
    new_rs: Option<&View>,
    new_revision: i64,
    created_new: bool,
) -> Vec<Change> {
    let mut changes = Vec::new();
    if let Some(n) = new_rs
        && n.revision != new_revision
    {
        changes.push(Change::SetReplicaSetRevision {
            name: n.name.clone(),
            revision: new_revision.to_string(),
        });
    }
    if (new_rs.is_some() || created_new)
        && d.annotations().get(REVISION) != Some(&new_revision.to_string())
    {
        changes.push(Change::SetDeploymentRevision(new_revision.to_string()));
    }
    changes
}

/// History cleanup: old, empty, settled ReplicaSets beyond the limit, oldest first.
fn history_cleanup(olds: &[View], revision_history_limit: Option<i32>) -> Vec<Change> {
    let limit = revision_history_limit
        .unwrap_or(DEFAULT_HISTORY_LIMIT)
        .max(0) as usize;
    let mut idle: Vec<&View> = olds
        .iter()
        .filter(|o| o.spec == 0 && o.target == 0 && o.status_replicas == 0 && o.observed)
        .collect();
    if idle.len() <= limit {
        return Vec::new();
    }
    idle.sort_by_key(|o| (o.revision, o.created));
    idle.iter()
        .take(idle.len() - limit)
        .map(|o| Change::DeleteReplicaSet(o.name.clone()))
        .collect()
}

/// A paused Deployment only scales. One active ReplicaSet (or, with none active, the new or
/// newest one) is set to `replicas`; several active ones share `replicas + maxSurge` in
/// proportion to their sizes, the remainder going to the largest (newest on a tie), as
/// upstream does. Scaling to 0 empties them all.
fn scale_paused(new_rs: Option<&mut View>, olds: &mut [View], replicas: i32, max_total: i32) {
    let mut all: Vec<&mut View> = new_rs.into_iter().chain(olds.iter_mut()).collect();
    let active = all.iter().filter(|v| v.spec > 0).count();
    if active <= 1 {
        // With one new ReplicaSet it comes first; otherwise take the active or newest one.
        let pick = all
            .iter()
            .position(|v| v.spec > 0)
            .or_else(|| (0..all.len()).max_by_key(|i| (all[*i].created, all[*i].name.clone())));
        if let Some(i) = pick {
            all[i].target = replicas;
        }
        return;
    }
    let allowed = if replicas == 0 { 0 } else { max_total };
    let current: i32 = all.iter().map(|v| v.spec).sum();
    if current == allowed {
        return;
    }
    let mut order: Vec<usize> = (0..all.len()).filter(|i| all[*i].spec > 0).collect();
    order.sort_by(|a, b| (all[*b].spec, all[*b].created).cmp(&(all[*a].spec, all[*a].created)));
    let mut assigned = 0;
    for &i in &order {
        let share = (i64::from(all[i].spec) * i64::from(allowed) / i64::from(current)) as i32;
        all[i].target = share;
        assigned += share;
    }
    let mut rest = allowed - assigned;
    for &i in order.iter().cycle().take(order.len() * 2) {
        if rest <= 0 {
            break;
        }
        all[i].target += 1;
        rest -= 1;
    }
}

/// Old ReplicaSets shrink in two steps: first Pods that are not available anyway (they
/// cost no availability), then available ones while at least `replicas - maxUnavailable`
/// stay available. Oldest ReplicaSets go first.
fn scale_down_olds(olds: &mut [View], new: &View, replicas: i32, max_unavailable: i32) {
    let min_available = replicas - max_unavailable;
    let total: i32 = olds.iter().map(|o| o.spec).sum::<i32>() + new.spec;
    let new_unavailable = (new.spec - new.available).max(0);
    let mut budget = total - min_available - new_unavailable;
    for o in olds.iter_mut() {
        if budget <= 0 {
            break;
        }
        let unhealthy = (o.target - o.available).max(0);
        let cut = unhealthy.min(budget);
        o.target -= cut;
        budget -= cut;
    }
    let available: i32 = olds.iter().map(|o| o.available).sum::<i32>() + new.available;
    let mut budget = available - min_available;
    for o in olds.iter_mut() {
        if budget <= 0 {
            break;
        }
        let cut = o.target.min(budget);
        o.target -= cut;
        budget -= cut;
    }
}

fn new_replica_set(
    d: &Deployment,
    name: &str,
    hash: &str,
    revision: i64,
    replicas: i32,
    max_total: i32,
) -> ReplicaSet {
    let spec = d.spec.clone().unwrap_or_default();
    let mut template = spec.template.clone();
    let meta = template.metadata.get_or_insert_with(ObjectMeta::default);
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .insert(HASH_LABEL.into(), hash.into());
    let labels = meta.labels.clone();
    let mut selector: LabelSelector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(HASH_LABEL.into(), hash.into());
    let mut annotations: BTreeMap<String, String> = d
        .annotations()
        .iter()
        .filter(|(k, _)| {
            !k.starts_with("deployment.kubernetes.io/")
                && k.as_str() != "kubectl.kubernetes.io/last-applied-configuration"
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    annotations.insert(REVISION.into(), revision.to_string());
    annotations.insert(
        DESIRED_REPLICAS.into(),
        spec.replicas.unwrap_or(1).to_string(),
    );
    annotations.insert(MAX_REPLICAS.into(), max_total.to_string());
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: d.namespace(),
            labels,
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref("apps/v1", "Deployment", &d.metadata)]),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    }
}

struct StatusInputs<'a> {
    new_rs: Option<&'a View>,
    olds: &'a [View],
    replicas: i32,
    unavailable: i32,
    paused: bool,
    created_new: Option<&'a str>,
    collision_count: Option<i32>,
}

/// Kubernetes' condition rule; `refresh` is the controller's progress case, which rewrites
/// an unchanged condition so its `lastUpdateTime` (the progress deadline's start) moves.
fn set_condition(
    conditions: &mut Vec<DeploymentCondition>,
    cond: DeploymentCondition,
    refresh: bool,
) {
    if refresh {
        k8s_conditions::refresh(conditions, cond);
    } else {
        k8s_conditions::set(conditions, cond);
    }
}

fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: DateTime<Utc>,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(to_time(now)),
        last_transition_time: Some(to_time(now)),
    }
}

fn status_of(
    d: &Deployment,
    current: &DeploymentStatus,
    input: StatusInputs<'_>,
    now: DateTime<Utc>,
) -> (DeploymentStatus, Option<DateTime<Utc>>) {
    let totals = Totals::of(&input);
    let mut conditions = current.conditions.clone().unwrap_or_default();
    let available_cond = if totals.available >= input.replicas - input.unavailable {
        condition(
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".into(),
            now,
        )
    } else {
        condition(
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
            now,
        )
    };
    set_condition(&mut conditions, available_cond, false);
    let progress = Progress::of(d, current, &input, &totals, &conditions, now);
    if let Some((cond, refresh)) = progressing_condition(&progress, &input, now) {
        set_condition(&mut conditions, cond, refresh);
    }
    let requeue_at = if progress.complete || input.paused {
        None
    } else {
        conditions
            .iter()
            .find(|c| c.type_ == "Progressing" && c.status == "True")
            .and_then(|c| c.last_update_time.as_ref())
            .map(|t| from_time(t) + chrono::Duration::seconds(i64::from(progress.deadline) + 1))
    };
    let status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(totals.replicas),
        updated_replicas: Some(totals.updated),
        ready_replicas: Some(totals.ready),
        available_replicas: Some(totals.available),
        unavailable_replicas: Some((totals.target - totals.available).max(0)),
        collision_count: input.collision_count,
        conditions: (!conditions.is_empty()).then_some(conditions),
        terminating_replicas: None,
    };
    (status, requeue_at)
}

/// The Pod counts summed over the Deployment's ReplicaSets.
struct Totals {
    replicas: i32,
    ready: i32,
    available: i32,
    /// The sum of the ReplicaSets' targets after this pass.
    target: i32,
    /// Pods of the new ReplicaSet.
    updated: i32,
}

impl Totals {
    fn of(input: &StatusInputs<'_>) -> Totals {
        let mut t = Totals {
            replicas: 0,
            ready: 0,
            available: 0,
            target: 0,
            updated: input.new_rs.map(|n| n.status_replicas).unwrap_or(0),
        };
        for v in input.new_rs.into_iter().chain(input.olds.iter()) {
            t.replicas += v.status_replicas;
            t.ready += v.ready;
            t.available += v.available;
            t.target += v.target;
        }
        t
    }
}

/// What the `Progressing` condition is decided from.
struct Progress {
    /// How the messages name what progresses: the new ReplicaSet, or the Deployment.
    subject: String,
    /// The reason of the stored `Progressing` condition.
    reason: Option<String>,
    /// A `Progressing` condition is stored at all.
    recorded: bool,
    /// Every replica is updated and available.
    complete: bool,
    /// Some count moved forward since the stored status.
    made_progress: bool,
    /// `progressDeadlineSeconds` passed without progress.
    timed_out: bool,
    deadline: i32,
}

impl Progress {
    fn of(
        d: &Deployment,
        current: &DeploymentStatus,
        input: &StatusInputs<'_>,
        totals: &Totals,
        conditions: &[DeploymentCondition],
        now: DateTime<Utc>,
    ) -> Progress {
        let rs_name = input
            .new_rs
            .map(|n| n.name.clone())
            .or(input.created_new.map(str::to_string));
        let subject = match &rs_name {
            Some(n) => format!("ReplicaSet \"{n}\""),
            None => format!("Deployment \"{}\"", d.name_any()),
        };
        let deadline = d
            .spec
            .as_ref()
            .and_then(|s| s.progress_deadline_seconds)
            .unwrap_or(DEFAULT_PROGRESS_DEADLINE);
        let progressing = conditions.iter().find(|c| c.type_ == "Progressing");
        let want = input.replicas;
        let complete = input.new_rs.is_some()
            && totals.updated == want
            && totals.replicas == want
            && totals.available == want
            && totals.target == want;
        let old_replicas = |r: i32, u: i32| r - u;
        let made_progress = totals.updated > current.updated_replicas.unwrap_or(0)
            || old_replicas(totals.replicas, totals.updated)
                < old_replicas(
                    current.replicas.unwrap_or(0),
                    current.updated_replicas.unwrap_or(0),
                )
            || totals.ready > current.ready_replicas.unwrap_or(0)
            || totals.available > current.available_replicas.unwrap_or(0);
        let timed_out = progressing.is_some_and(|c| {
            c.reason.as_deref() != Some("NewReplicaSetAvailable")
                && c.status == "True"
                && c.last_update_time.as_ref().is_some_and(|t| {
                    from_time(t) + chrono::Duration::seconds(deadline.into()) < now
                })
        });
        Progress {
            subject,
            reason: progressing.and_then(|c| c.reason.clone()),
            recorded: progressing.is_some(),
            complete,
            made_progress,
            timed_out,
            deadline,
        }
    }
}

/// The `Progressing` condition to set, and whether to refresh it even when it says the same
/// (its update time is what the progress deadline counts from).
fn progressing_condition(
    p: &Progress,
    input: &StatusInputs<'_>,
    now: DateTime<Utc>,
) -> Option<(DeploymentCondition, bool)> {
    let subject = &p.subject;
    let reason = p.reason.as_deref();
    let set = |status: &str, reason: &str, message: String, refresh: bool| {
        Some((
            condition("Progressing", status, reason, message, now),
            refresh,
        ))
    };
    if input.paused {
        set(
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused".into(),
            false,
        )
    } else if p.complete {
        if reason == Some("NewReplicaSetAvailable") {
            return None;
        }
        set(
            "True",
            "NewReplicaSetAvailable",
            format!("{subject} has successfully progressed."),
            false,
        )
    } else if let Some(name) = input.created_new {
        set(
            "True",
            "NewReplicaSetCreated",
            format!("Created new replica set \"{name}\""),
            true,
        )
    } else if p.made_progress || !p.recorded || reason == Some("NewReplicaSetAvailable") {
        set(
            "True",
            "ReplicaSetUpdated",
            format!("{subject} is progressing."),
            p.made_progress,
        )
    } else if p.timed_out {
        set(
            "False",
            "ProgressDeadlineExceeded",
            format!("{subject} has timed out progressing."),
            false,
        )
    } else if reason == Some("DeploymentPaused") {
        set(
            "Unknown",
            "DeploymentResumed",
            "Deployment is resumed".into(),
            false,
        )
    } else {
        None
    }
}

/// Every field explicit, so zeros and removed conditions are written rather than skipped.
impl StatusBody for DeploymentStatus {
    fn patch_body(&self) -> Value {
        json!({
            "observedGeneration": self.observed_generation,
            "replicas": self.replicas.unwrap_or(0),
            "updatedReplicas": self.updated_replicas.unwrap_or(0),
            "readyReplicas": self.ready_replicas.unwrap_or(0),
            "availableReplicas": self.available_replicas.unwrap_or(0),
            "unavailableReplicas": self.unavailable_replicas.unwrap_or(0),
            "collisionCount": self.collision_count,
            "conditions": self.conditions,
        })
    }
}

/// Shared state of the Deployment controller.
pub struct Context {
    pub client: kube::Client,
    pub deployments: Arc<Cache<Deployment>>,
    pub replicasets: Arc<Cache<ReplicaSet>>,
    /// Status writes not yet seen in the cache.
    pub writes: WriteMemo,
}

/// Observes, plans and applies one Deployment.
pub async fn reconcile(
    key: ObjectKey,
    ctx: Arc<Context>,
) -> Result<Option<Duration>, WorkloadsError> {
    let Some(d) = ctx.deployments.get(&key) else {
        ctx.writes.forget(&key);
        return Ok(None);
    };
    let uid = d.metadata.uid.clone().unwrap_or_default();
    let owned = ctx.replicasets.owned_by(&uid);
    let now = Utc::now();
    ctx.writes
        .seen(&key, d.metadata.resource_version.as_deref());
    let mut decision = plan(&d, &owned, now);
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let d_api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &key.namespace);
    for change in std::mem::take(&mut decision.changes) {
        let collided = apply_change(&rs_api, &d_api, &d, &key.name, change).await?;
        if collided {
            return Ok(Some(Duration::ZERO));
        }
    }
    if let Some(status) = &decision.status {
        // A Deployment deleted meanwhile (StatusWrite::Gone) is found gone on the requeue.
        write_status(&d_api, &ctx.writes, &key, &d, status.patch_body()).await?;
    }
    Ok(decision
        .requeue_at
        .map(|at| (at - now).to_std().unwrap_or(Duration::ZERO)))
}

/// Creates the new ReplicaSet; true when its name is held by another template, a hash
/// collision, which is then counted in the status so the next pass picks another name.
async fn create_replica_set(
    rs_api: &Api<ReplicaSet>,
    d_api: &Api<Deployment>,
    d: &Deployment,
    name: &str,
    rs: &ReplicaSet,
) -> Result<bool, WorkloadsError> {
    match rs_api.create(&PostParams::default(), rs).await {
        Ok(_) => Ok(false),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            // Our own creation not yet in the cache is fine; anything else
            // holding the name is a hash collision.
            let existing = rs_api.get(&rs.name_any()).await?;
            let uid = d.metadata.uid.clone().unwrap_or_default();
            let ours = controller_of(&existing.metadata).is_some_and(|o| o.uid == uid);
            if ours {
                return Ok(false);
            }
            let next = d
                .status
                .as_ref()
                .and_then(|s| s.collision_count)
                .unwrap_or(0)
                + 1;
            let body = json!({"status": {"collisionCount": next}});
            d_api
                .patch_status(name, &PatchParams::default(), &Patch::Merge(&body))
                .await?;
            Ok(true)
        }
        Err(e) => Err(e.into()),
    }
}

/// Applies one write; an object deleted meanwhile needs none. True when a new ReplicaSet
/// collided with another template's name.
async fn apply_change(
    rs_api: &Api<ReplicaSet>,
    d_api: &Api<Deployment>,
    d: &Deployment,
    name: &str,
    change: Change,
) -> Result<bool, WorkloadsError> {
    match change {
        Change::CreateReplicaSet(rs) => {
            return create_replica_set(rs_api, d_api, d, name, &rs).await;
        }
        Change::ScaleReplicaSet {
            name: rs,
            replicas,
            annotations,
        } => {
            let body =
                json!({"metadata": {"annotations": annotations}, "spec": {"replicas": replicas}});
            ignore_not_found(
                rs_api
                    .patch(&rs, &PatchParams::default(), &Patch::Merge(&body))
                    .await,
            )?;
        }
        Change::SetReplicaSetRevision { name: rs, revision } => {
            let body = json!({"metadata": {"annotations": {REVISION: revision}}});
            ignore_not_found(
                rs_api
                    .patch(&rs, &PatchParams::default(), &Patch::Merge(&body))
                    .await,
            )?;
        }
        Change::DeleteReplicaSet(rs) => {
            ignore_not_found(
                rs_api
                    .delete(&rs, &DeleteParams::background())
                    .await
                    .map(|_| ()),
            )?;
        }
        Change::SetDeploymentRevision(revision) => {
            let body = json!({"metadata": {"annotations": {REVISION: revision}}});
            ignore_not_found(
                d_api
                    .patch(name, &PatchParams::default(), &Patch::Merge(&body))
                    .await,
            )?;
        }
    }
    Ok(false)
}

fn ignore_not_found<T>(r: Result<T, kube::Error>) -> Result<(), WorkloadsError> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::pod_state::fixtures::t;
    use super::*;
    use k8s_openapi::api::apps::v1::{
        DeploymentSpec, DeploymentStrategy, ReplicaSetStatus, RollingUpdateDeployment,
    };
    use k8s_openapi::api::core::v1::{Container, PodSpec};

    fn template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "web".into(),
                    image: Some(image.into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    fn deployment(replicas: i32, image: &str) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("ns".into()),
                uid: Some("d-uid".into()),
                generation: Some(1),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                selector: LabelSelector {
                    match_labels: Some([("app".to_string(), "web".to_string())].into()),
                    ..Default::default()
                },
                template: template(image),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn rolling(mut d: Deployment, surge: i32, unavailable: i32) -> Deployment {
        d.spec.as_mut().unwrap().strategy = Some(DeploymentStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateDeployment {
                max_surge: Some(IntOrString::Int(surge)),
                max_unavailable: Some(IntOrString::Int(unavailable)),
            }),
        });
        d
    }

    /// An in-memory cluster in which every ReplicaSet's Pods are instantly available (or,
    /// with `settle == false`, nothing changes on its own).
    struct World {
        d: Deployment,
        rss: Vec<Arc<ReplicaSet>>,
        clock: i64,
    }

    impl World {
        fn new(d: Deployment) -> Self {
            Self {
                d,
                rss: Vec::new(),
                clock: 0,
            }
        }

        fn step(&mut self, settle: bool) -> Plan {
            self.clock += 1;
            let plan = plan(&self.d, &self.rss, t(self.clock));
            for c in &plan.changes {
                self.apply(c.clone());
            }
            if let Some(s) = &plan.status {
                self.d.status = Some(s.clone());
            }
            if settle {
                self.settle();
            }
            plan
        }

        fn apply(&mut self, c: Change) {
            fn find<'a>(rss: &'a mut [Arc<ReplicaSet>], name: &str) -> &'a mut ReplicaSet {
                rss.iter_mut()
                    .find(|r| r.name_any() == name)
                    .map(Arc::make_mut)
                    .expect("replicaset exists")
            }
            match c {
                Change::CreateReplicaSet(rs) => {
                    let mut rs = *rs;
                    rs.metadata.creation_timestamp = Some(to_time(t(self.clock)));
                    rs.metadata.generation = Some(1);
                    self.rss.push(Arc::new(rs));
                }
                Change::ScaleReplicaSet { name, replicas, .. } => {
                    let rs = find(&mut self.rss, &name);
                    rs.spec.as_mut().unwrap().replicas = Some(replicas);
                }
                Change::SetReplicaSetRevision { name, revision } => {
                    find(&mut self.rss, &name)
                        .annotations_mut()
                        .insert(REVISION.into(), revision);
                }
                Change::DeleteReplicaSet(name) => self.rss.retain(|r| r.name_any() != name),
                Change::SetDeploymentRevision(rev) => {
                    self.d.annotations_mut().insert(REVISION.into(), rev);
                }
            }
        }

        fn settle(&mut self) {
            for rs in &mut self.rss {
                let rs = Arc::make_mut(rs);
                let n = rs.spec.as_ref().unwrap().replicas.unwrap();
                rs.status = Some(ReplicaSetStatus {
                    replicas: n,
                    ready_replicas: Some(n),
                    available_replicas: Some(n),
                    fully_labeled_replicas: Some(n),
                    observed_generation: Some(1),
                    ..Default::default()
                });
            }
        }

        /// `(new, old...)` spec replicas, new = the ReplicaSet matching the template.
        fn shape(&self) -> Vec<i32> {
            let want = strip_hash(&self.d.spec.as_ref().unwrap().template);
            let mut new = Vec::new();
            let mut old = Vec::new();
            for rs in &self.rss {
                let spec = rs.spec.as_ref().unwrap();
                let n = spec.replicas.unwrap();
                if strip_hash(spec.template.as_ref().unwrap()) == want {
                    new.push(n);
                } else {
                    old.push(n);
                }
            }
            new.into_iter().chain(old).collect()
        }

        /// Runs until nothing changes, returning every intermediate shape.
        fn roll(&mut self) -> Vec<Vec<i32>> {
            let mut shapes = Vec::new();
            for _ in 0..50 {
                let plan = self.step(true);
                if plan.changes.is_empty() {
                    return shapes;
                }
                shapes.push(self.shape());
            }
            panic!("rollout did not converge: {shapes:?}");
        }

        fn set_image(&mut self, image: &str) {
            self.d.spec.as_mut().unwrap().template = template(image);
            self.d.metadata.generation = Some(self.d.metadata.generation.unwrap() + 1);
        }

        fn set_replicas(&mut self, n: i32) {
            self.d.spec.as_mut().unwrap().replicas = Some(n);
            self.d.metadata.generation = Some(self.d.metadata.generation.unwrap() + 1);
        }

        fn condition(&self, type_: &str) -> (String, String) {
            let c = self
                .d
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == type_))
                .expect("condition present");
            (c.status.clone(), c.reason.clone().unwrap_or_default())
        }
    }

    #[test]
    fn a_new_deployment_creates_its_first_replicaset_at_full_size() {
        let d = deployment(3, "nginx:1");
        let plan = plan(&d, &[], t(0));
        let Change::CreateReplicaSet(rs) = &plan.changes[0] else {
            panic!("expected a creation, got {:?}", plan.changes);
        };
        let hash = pod_template_hash(&template("nginx:1"), None);
        assert_eq!(rs.name_any(), format!("web-{hash}"));
        let spec = rs.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(rs.labels().get(HASH_LABEL), Some(&hash));
        assert_eq!(
            spec.selector.match_labels.as_ref().unwrap().get(HASH_LABEL),
            Some(&hash)
        );
        let tpl_labels = spec.template.as_ref().unwrap().metadata.as_ref().unwrap();
        assert_eq!(
            tpl_labels.labels.as_ref().unwrap().get(HASH_LABEL),
            Some(&hash)
        );
        assert_eq!(
            rs.annotations().get(REVISION).map(String::as_str),
            Some("1")
        );
        let owner = &rs.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("Deployment", Some(true))
        );
        assert_eq!(plan.changes[1], Change::SetDeploymentRevision("1".into()));
        let progressing = plan.status.unwrap().conditions.unwrap();
        assert!(
            progressing
                .iter()
                .any(|c| c.reason.as_deref() == Some("NewReplicaSetCreated"))
        );
    }

    #[test]
    fn rolling_update_steps_respect_surge_and_unavailable() {
        // (surge, unavailable, shapes [new, old] after each pass)
        let cases: Vec<(i32, i32, Vec<Vec<i32>>)> = vec![
            (
                1,
                0,
                vec![
                    vec![1, 4],
                    vec![1, 3],
                    vec![2, 3],
                    vec![2, 2],
                    vec![3, 2],
                    vec![3, 1],
                    vec![4, 1],
                    vec![4, 0],
                ],
            ),
            (
                1,
                1,
                vec![vec![1, 4], vec![1, 2], vec![3, 2], vec![3, 0], vec![4, 0]],
            ),
            (
                0,
                2,
                vec![vec![0, 4], vec![0, 2], vec![2, 2], vec![2, 0], vec![4, 0]],
            ),
        ];
        for (surge, unavailable, want) in cases {
            let mut w = World::new(rolling(deployment(4, "nginx:1"), surge, unavailable));
            w.roll();
            w.set_image("nginx:2");
            assert_eq!(w.roll(), want, "surge {surge} unavailable {unavailable}");
            assert_eq!(
                w.d.annotations().get(REVISION).map(String::as_str),
                Some("2")
            );
            assert_eq!(
                w.condition("Progressing"),
                ("True".into(), "NewReplicaSetAvailable".into())
            );
            assert_eq!(
                w.condition("Available"),
                ("True".into(), "MinimumReplicasAvailable".into())
            );
        }
    }

    #[test]
    fn default_strategy_is_25_percent_each_way() {
        let d = deployment(4, "nginx:1");
        assert_eq!(surge_and_unavailable(&d, 4), (1, 1));
        assert_eq!(surge_and_unavailable(&d, 10), (3, 2));
        assert_eq!(surge_and_unavailable(&rolling(d, 0, 0), 4), (0, 1));
    }

    #[test]
    fn unhealthy_old_pods_are_removed_before_healthy_ones() {
        let mut w = World::new(rolling(deployment(4, "nginx:1"), 1, 1));
        w.roll();
        // The old ReplicaSet has 2 of 4 available.
        let old = Arc::make_mut(&mut w.rss[0]);
        old.status.as_mut().unwrap().available_replicas = Some(2);
        w.set_image("nginx:2");
        w.step(false); // creates the new ReplicaSet at 1
        let plan = w.step(false);
        // 5 Pods, at least 3 must stay available, the new one is not available yet: one
        // unavailable old Pod may go, although only 2 of the old ones are available.
        assert!(
            plan.changes
                .iter()
                .any(|c| matches!(c, Change::ScaleReplicaSet { replicas: 3, .. })),
            "{:?}",
            plan.changes
        );
    }

    #[test]
    fn scaling_to_zero_and_back_is_exact() {
        let mut w = World::new(deployment(3, "nginx:1"));
        w.roll();
        w.set_replicas(0);
        assert_eq!(w.roll(), vec![vec![0]]);
        let s = w.d.status.clone().unwrap();
        assert_eq!(
            (s.replicas, s.available_replicas, s.unavailable_replicas),
            (Some(0), Some(0), Some(0))
        );
        w.set_replicas(3);
        assert_eq!(w.roll(), vec![vec![3]]);

        // Mid-rollout, scaling to zero drains both ReplicaSets.
        w.set_image("nginx:2");
        w.step(true);
        w.set_replicas(0);
        w.roll();
        assert_eq!(w.shape(), vec![0, 0]);
    }

    #[test]
    fn recreate_waits_for_old_pods_to_be_gone() {
        let mut d = deployment(3, "nginx:1");
        d.spec.as_mut().unwrap().strategy = Some(DeploymentStrategy {
            type_: Some("Recreate".into()),
            rolling_update: None,
        });
        let mut w = World::new(d);
        w.roll();
        w.set_image("nginx:2");
        w.step(false);
        assert_eq!(w.shape(), vec![0], "old scaled to 0, new not created yet");
        let plan = w.step(false);
        assert!(
            plan.changes.is_empty(),
            "old Pods still exist: {:?}",
            plan.changes
        );
        w.settle();
        w.step(true);
        assert_eq!(w.shape(), vec![3, 0]);
    }

    #[test]
    fn paused_deployments_do_not_roll_out() {
        let mut w = World::new(deployment(2, "nginx:1"));
        w.roll();
        w.d.spec.as_mut().unwrap().paused = Some(true);
        w.set_image("nginx:2");
        w.roll();
        assert_eq!(w.shape(), vec![2], "no new ReplicaSet while paused");
        assert_eq!(
            w.condition("Progressing"),
            ("Unknown".into(), "DeploymentPaused".into())
        );
        w.set_replicas(5);
        w.roll();
        assert_eq!(w.shape(), vec![5], "a paused Deployment still scales");
        w.d.spec.as_mut().unwrap().paused = Some(false);
        w.roll();
        assert_eq!(w.shape(), vec![5, 0]);
    }

    #[test]
    fn paused_mid_rollout_scales_proportionally_and_to_zero() {
        let mut w = World::new(rolling(deployment(4, "nginx:1"), 2, 0));
        w.roll();
        w.set_image("nginx:2");
        w.step(true); // new ReplicaSet created at 2 next to the old 4
        assert_eq!(w.shape(), vec![2, 4]);
        w.d.spec.as_mut().unwrap().paused = Some(true);
        w.set_replicas(8); // allowed 8 + 2 = 10, shared 2:4
        w.roll();
        assert_eq!(w.shape(), vec![3, 7]);
        w.set_replicas(0);
        w.roll();
        assert_eq!(w.shape(), vec![0, 0]);
        w.set_replicas(3); // nothing active: the newest ReplicaSet takes it all
        w.roll();
        assert_eq!(w.shape(), vec![3, 0]);
    }

    #[test]
    fn rolling_back_to_an_old_template_gives_it_a_new_revision() {
        let mut w = World::new(deployment(1, "nginx:1"));
        w.roll();
        w.set_image("nginx:2");
        w.roll();
        w.set_image("nginx:1");
        w.roll();
        assert_eq!(w.rss.len(), 2, "the old ReplicaSet is reused");
        let revs: Vec<_> = w
            .rss
            .iter()
            .map(|r| (r.spec.as_ref().unwrap().replicas.unwrap(), revision_of(r)))
            .collect();
        assert_eq!(revs, vec![(1, 3), (0, 2)]);
        assert_eq!(
            w.d.annotations().get(REVISION).map(String::as_str),
            Some("3")
        );
    }

    #[test]
    fn history_beyond_the_limit_is_deleted_oldest_first() {
        let mut d = deployment(1, "v0");
        d.spec.as_mut().unwrap().revision_history_limit = Some(2);
        let mut w = World::new(d);
        for v in 1..=4 {
            w.set_image(&format!("v{v}"));
            w.roll();
        }
        let mut revs: Vec<_> = w.rss.iter().map(|r| revision_of(r)).collect();
        revs.sort();
        // Revisions 1..=4; the current one plus the two newest old ones remain.
        assert_eq!(revs, vec![2, 3, 4]);
    }

    #[test]
    fn missing_availability_is_reported() {
        let mut w = World::new(rolling(deployment(4, "nginx:1"), 1, 1));
        w.step(false);
        w.step(false);
        assert_eq!(
            w.condition("Available"),
            ("False".into(), "MinimumReplicasUnavailable".into())
        );
        let s = w.d.status.clone().unwrap();
        assert_eq!(
            (s.updated_replicas, s.unavailable_replicas),
            (Some(0), Some(4))
        );
    }

    #[test]
    fn progress_deadline_is_reported_when_nothing_moves() {
        let mut d = deployment(2, "nginx:1");
        d.spec.as_mut().unwrap().progress_deadline_seconds = Some(60);
        let mut w = World::new(d);
        let first = w.step(false);
        assert_eq!(first.requeue_at, Some(t(1) + chrono::Duration::seconds(61)));
        w.step(false);
        w.clock = 100;
        w.step(false);
        assert_eq!(
            w.condition("Progressing"),
            ("False".into(), "ProgressDeadlineExceeded".into())
        );
    }

    #[test]
    fn an_unchanged_status_is_not_rewritten() {
        let mut w = World::new(deployment(2, "nginx:1"));
        w.roll();
        let plan = plan(&w.d, &w.rss, t(500));
        assert_eq!((plan.changes, plan.status), (vec![], None));
    }

    #[test]
    fn template_hash_depends_on_template_and_collisions() {
        let a = pod_template_hash(&template("a"), None);
        assert_eq!(a, pod_template_hash(&template("a"), None));
        assert_ne!(a, pod_template_hash(&template("b"), None));
        assert_ne!(a, pod_template_hash(&template("a"), Some(1)));
        assert!(
            a.bytes()
                .all(|c| sluice_api::k8s::hash::SAFE_ALPHABET.contains(&c))
        );
    }

    #[test]
    fn a_name_taken_by_another_template_bumps_the_collision_count() {
        let d = deployment(1, "nginx:1");
        let hash = pod_template_hash(&template("nginx:1"), None);
        let mut squatter = new_replica_set(
            &deployment(1, "other"),
            &format!("web-{hash}"),
            "x",
            1,
            1,
            1,
        );
        squatter.spec.as_mut().unwrap().template = Some(template("other"));
        let plan = plan(&d, &[Arc::new(squatter)], t(0));
        assert!(
            !plan
                .changes
                .iter()
                .any(|c| matches!(c, Change::CreateReplicaSet(_)))
        );
        assert_eq!(plan.status.unwrap().collision_count, Some(1));
    }

    proptest::proptest! {
        /// A rolling update never runs more than `replicas + maxSurge` Pods, never keeps fewer
        /// than `replicas - maxUnavailable`, and always finishes with only the new ReplicaSet.
        #[test]
        fn rolling_updates_stay_within_surge_and_unavailable(
            replicas in 0i32..15,
            surge in 0i32..4,
            unavailable in 0i32..4,
        ) {
            let mut w = World::new(rolling(deployment(replicas, "nginx:1"), surge, unavailable));
            w.roll();
            w.set_image("nginx:2");
            let (max_surge, max_unavailable) = surge_and_unavailable(&w.d, replicas);
            for shape in w.roll() {
                let total: i32 = shape.iter().sum();
                proptest::prop_assert!(total <= replicas + max_surge, "{shape:?}");
                proptest::prop_assert!(total >= replicas - max_unavailable, "{shape:?}");
            }
            proptest::prop_assert_eq!(w.shape(), vec![replicas, 0]);
        }
    }
}
