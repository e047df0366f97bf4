//! The status write every simulated controller ends a reconcile with.
//!
//! A controller owns its kind's status and writes it whole, as a JSON merge patch of
//! `/status`, and only when it would change something: every write comes back through the
//! watch and would otherwise trigger the next reconcile forever ([`reflects`]). A write is
//! also skipped while an identical one is still on its way through the watch
//! ([`WriteMemo`]). A 404 means the object was deleted meanwhile, which is not an error.

use std::fmt::Debug;

use kube::Api;
use kube::api::{Patch, PatchParams};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::informer::ObjectKey;
use super::reflects::{WriteMemo, reflects};
use super::{WorkloadsError, is_not_found};

/// A status a controller owns and writes as a whole.
pub trait StatusBody: Serialize {
    /// The merge-patch body (the value of `status`) that writes this status.
    fn patch_body(&self) -> Value;
}

/// `desired`, when writing it would change the stored `current`.
pub fn changed_status<S: StatusBody>(current: &S, desired: S) -> Option<S> {
    let unchanged = reflects(
        &serde_json::to_value(current).unwrap_or_default(),
        &desired.patch_body(),
    );
    (!unchanged).then_some(desired)
}

/// How a status write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusWrite {
    /// Written, or skipped because the same write is still on its way through the watch.
    Done,
    /// The object no longer exists.
    Gone,
}

/// Merge-patches the `/status` of `key` with `status` (a [`StatusBody::patch_body`]);
/// `cached` is the copy the decision was made from.
pub async fn write_status<K>(
    api: &Api<K>,
    writes: &WriteMemo,
    key: &ObjectKey,
    cached: &K,
    status: Value,
) -> Result<StatusWrite, WorkloadsError>
where
    K: kube::Resource + Clone + DeserializeOwned + Debug,
{
    let body = json!({ "status": status });
    if writes.in_flight(key, &body, cached.meta().resource_version.as_deref()) {
        return Ok(StatusWrite::Done);
    }
    match api
        .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&body))
        .await
    {
        Ok(written) => {
            writes.record(key, &body, written.meta().resource_version.clone());
            Ok(StatusWrite::Done)
        }
        Err(e) if is_not_found(&e) => Ok(StatusWrite::Gone),
        Err(e) => Err(e.into()),
    }
}
