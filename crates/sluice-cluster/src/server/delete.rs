//! DELETE of one object and of a collection, with DeleteOptions read from the body or the
//! query string (propagation policy, preconditions, dry run).

use axum::response::Response;
use serde_json::{Value, json};

use super::convert::{present, presented};
use super::options::{Query, now_string};
use super::resource::Target;
use super::{Shared, ok};
use crate::error::ApiError;
use crate::ops::{self, DeleteOpts, Deleted, Propagation, WriteOpts};
use crate::store::ObjKey;

/// DELETE of one object: a Status when it is gone, the object when it is only marked.
pub(super) fn delete(
    sh: &Shared,
    tg: &Target,
    name: &str,
    q: &Query,
    body: &[u8],
) -> Result<Response, ApiError> {
    if tg.path.sub.is_some() {
        return Err(ApiError::method_not_allowed());
    }
    let opts = delete_opts(q, body)?;
    let o = delete_write_opts(q, body);
    let res = {
        let mut st = sh.lock();
        ops::delete(&mut st, &tg.st_t, &tg.ns, name, &opts, &o)
    }?;
    sh.gc_notify.notify_one();
    let t = &tg.t;
    Ok(match res {
        Deleted::Gone(obj) => ok(&json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": {"name": name, "group": t.group, "kind": t.plural, "uid": obj["metadata"]["uid"]},
        })),
        Deleted::Pending(obj) => ok(&presented(t, &tg.version, &obj)),
    })
}

/// DELETE of every object the selectors match; answers with the list of what was deleted.
pub(super) fn delete_collection(
    sh: &Shared,
    tg: &Target,
    q: &Query,
    body: &[u8],
) -> Result<Response, ApiError> {
    let (t, version) = (&tg.t, tg.version.as_str());
    let opts = delete_opts(q, body)?;
    let o = delete_write_opts(q, body);
    let (label, field) = q.selectors(t)?;
    let mut items = Vec::new();
    {
        let mut st = sh.lock();
        let names: Vec<ObjKey> = st
            .select(&tg.st_t.gr(), tg.path.namespace.as_deref(), None, &label)
            .filter(|(_, o)| o.matches_fields(&t.plural, &field))
            .map(|(k, _)| k.clone())
            .collect();
        for (ons, oname) in names {
            match ops::delete(&mut st, &tg.st_t, &ons, &oname, &opts, &o)? {
                Deleted::Gone(x) | Deleted::Pending(x) => items.push(present(t, version, &x)),
            }
        }
    }
    sh.gc_notify.notify_one();
    Ok(ok(
        &json!({"kind": t.list_kind, "apiVersion": t.api_version(version), "metadata": {}, "items": items}),
    ))
}

/// A delete is a dry run when the query or the DeleteOptions body says `dryRun=All`.
fn delete_write_opts(q: &Query, body: &[u8]) -> WriteOpts {
    let dry_run = q.get("dryRun") == Some("All")
        || serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|b| b["dryRun"].as_array().cloned())
            .is_some_and(|d| d.iter().any(|x| x == "All"));
    WriteOpts {
        dry_run,
        now: now_string(),
    }
}

fn delete_opts(q: &Query, body: &[u8]) -> Result<DeleteOpts, ApiError> {
    let b: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?
    };
    let policy = b["propagationPolicy"]
        .as_str()
        .map(str::to_string)
        .or_else(|| q.get("propagationPolicy").map(str::to_string))
        .or_else(|| {
            match b["orphanDependents"]
                .as_bool()
                .or(q.get("orphanDependents").map(|v| v == "true"))
            {
                Some(true) => Some("Orphan".into()),
                _ => None,
            }
        });
    let propagation = match policy.as_deref() {
        None | Some("Background") => Propagation::Background,
        Some("Foreground") => Propagation::Foreground,
        Some("Orphan") => Propagation::Orphan,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
    };
    Ok(DeleteOpts {
        propagation,
        precondition_uid: b["preconditions"]["uid"].as_str().map(str::to_string),
        precondition_rv: b["preconditions"]["resourceVersion"]
            .as_str()
            .map(str::to_string),
    })
}
