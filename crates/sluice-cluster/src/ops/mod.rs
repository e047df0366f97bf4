//! The write semantics of the apiserver on top of the store: create, update (main and status),
//! delete with finalizers and propagation, scale, and what CustomResourceDefinition writes do to
//! the served types. Everything runs synchronously under the store lock.
//!
//! A write passes the same stages on every verb: the body is checked against the URL
//! ([`validation`]), given the apiserver's built-in defaults ([`defaults`]) or, for a custom
//! resource, its CRD schema ([`crd`]), validated (built-in kinds by `sluice_api::k8s`'s
//! rules), and only then stored.

mod crd;
mod create;
mod defaults;
mod delete;
mod quota;
mod scale;
mod update;
mod validation;

#[cfg(test)]
mod fixtures;

use serde_json::{Map, Value, json};

use super::types::GroupResource;

pub use create::create;
pub use delete::{DeleteOpts, Deleted, Propagation, delete};
pub use scale::{scale_of, update_scale};
pub use update::update;
pub use validation::{cannot_be_handled, patch_cannot_be_decoded, undecodable};

/// Per-request write options.
#[derive(Debug, Clone, Default)]
pub struct WriteOpts {
    pub dry_run: bool,
    /// RFC 3339 timestamp of the request (`creationTimestamp`, `deletionTimestamp`).
    pub now: String,
}

/// Which part of the object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Main,
    Status,
}

/// Writes of CRDs change the served types; writes of Namespaces change what may be created
/// in them. Both therefore need to be told apart from every other resource.
const CRD_GR: (&str, &str) = ("apiextensions.k8s.io", "customresourcedefinitions");
const NS_GR: (&str, &str) = ("", "namespaces");

fn is_gr(gr: &GroupResource, want: (&str, &str)) -> bool {
    gr.0 == want.0 && gr.1 == want.1
}

/// The metadata map of `obj`, created when the body has none (or not an object).
fn meta(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

/// Removes the fields only the server sets, so a client cannot forge them.
fn strip_system_fields(m: &mut Map<String, Value>) {
    for k in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "selfLink",
    ] {
        m.remove(k);
    }
}

fn rv_of(obj: &Value) -> &str {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
}
