//! The audit log: every resource request, as the RBAC-coverage test reads it back to check
//! that the controller's ClusterRole grants exactly what the controller uses.

use super::Shared;
use super::routing::ResPath;
use crate::types::ResourceType;

/// One recorded API call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Kubernetes verb: get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

/// The audit log keeps this many most recent calls, so a long-running cluster stays bounded.
pub const AUDIT_CAP: usize = 200_000;

pub(super) fn record(sh: &Shared, verb: &str, t: &ResourceType, rp: &ResPath) {
    let e = AuditEntry {
        verb: verb.into(),
        group: t.group.clone(),
        resource: t.plural.clone(),
        subresource: rp.sub.clone(),
        namespace: rp.namespace.clone(),
        name: rp.name.clone(),
    };
    let mut log = sh.audit.lock().unwrap_or_else(|p| p.into_inner());
    if log.len() >= AUDIT_CAP {
        log.pop_front();
    }
    log.push_back(e);
}
