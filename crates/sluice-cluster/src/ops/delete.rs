//! DELETE: preconditions, finalizers, and the three propagation policies. An object without
//! finalizers goes at once; otherwise it is marked (`deletionTimestamp`) and the garbage
//! collector finishes the job once the finalizers are cleared.

use std::sync::Arc;

use serde_json::{Value, json};

use super::crd::unregister;
use super::{NS_GR, WriteOpts, is_gr, rv_of};
use crate::error::ApiError;
use crate::store::{GcWork, State};
use crate::types::{GroupResource, ResourceType};

/// How dependents are treated when their owner is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

/// The parsed `DeleteOptions`.
#[derive(Debug, Clone)]
pub struct DeleteOpts {
    pub propagation: Propagation,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
}

/// The outcome of a DELETE.
#[derive(Debug)]
pub enum Deleted {
    /// Removed now; the last state of the object.
    Gone(Arc<Value>),
    /// Marked for deletion (finalizers or foreground); the object as it now is.
    Pending(Arc<Value>),
}

/// DELETE of one object.
pub fn delete(
    st: &mut State,
    t: &ResourceType,
    ns: &str,
    name: &str,
    opts: &DeleteOpts,
    o: &WriteOpts,
) -> Result<Deleted, ApiError> {
    let gr = t.gr();
    let Some(current) = st.get(&gr, ns, name) else {
        return Err(ApiError::not_found(&t.group, &t.plural, name));
    };
    check_preconditions(t, name, &current, opts)?;
    if o.dry_run {
        return Ok(Deleted::Gone(current));
    }
    let uid = current["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut finalizers: Vec<Value> = current["metadata"]["finalizers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let already = !current["metadata"]["deletionTimestamp"].is_null();
    if opts.propagation == Propagation::Orphan {
        orphan_dependents(st, &uid);
    }
    let is_ns = is_gr(&gr, NS_GR);
    let foreground =
        opts.propagation == Propagation::Foreground && !st.dependents_of(&uid).is_empty();
    if foreground && !finalizers.iter().any(|f| f == "foregroundDeletion") {
        finalizers.push(json!("foregroundDeletion"));
    }
    if finalizers.is_empty() && !is_ns {
        let gone = remove_final(st, &gr, ns, name).expect("object exists");
        return Ok(Deleted::Gone(gone));
    }
    if already && !foreground {
        return Ok(Deleted::Pending(current));
    }
    let mut marked = (*current).clone();
    if !already {
        marked["metadata"]["deletionTimestamp"] = json!(o.now);
        marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
    }
    if !finalizers.is_empty() {
        marked["metadata"]["finalizers"] = Value::Array(finalizers);
    }
    if is_ns {
        marked["status"]["phase"] = json!("Terminating");
        st.gc_queue.push_back(GcWork::Namespace(name.to_string()));
    }
    if foreground {
        st.gc_queue.push_back(GcWork::Owner(uid));
    }
    let stored = st.put(&gr, marked);
    Ok(Deleted::Pending(stored))
}

/// The `preconditions` of DeleteOptions: the object must still be the one the client means.
fn check_preconditions(
    t: &ResourceType,
    name: &str,
    current: &Value,
    opts: &DeleteOpts,
) -> Result<(), ApiError> {
    if let Some(uid) = &opts.precondition_uid
        && current["metadata"]["uid"].as_str() != Some(uid.as_str())
    {
        return Err(ApiError::conflict_msg(
            &t.group,
            &t.plural,
            name,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                current["metadata"]["uid"].as_str().unwrap_or_default()
            ),
        ));
    }
    if let Some(rv) = &opts.precondition_rv
        && rv != rv_of(current)
    {
        return Err(ApiError::conflict_msg(
            &t.group,
            &t.plural,
            name,
            &format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                rv_of(current)
            ),
        ));
    }
    Ok(())
}

/// Removes an object for good, with what that means for CRDs (their types and objects go too).
pub(super) fn remove_final(
    st: &mut State,
    gr: &GroupResource,
    ns: &str,
    name: &str,
) -> Option<Arc<Value>> {
    let gone = st.remove(gr, ns, name)?;
    unregister(st, gr, &gone);
    super::quota::refresh(st, gr, ns);
    Some(gone)
}

/// Strips `uid` from the ownerReferences of every dependent (Orphan propagation).
fn orphan_dependents(st: &mut State, uid: &str) {
    for (dgr, (dns, dname)) in st.dependents_of(uid) {
        let Some(d) = st.get(&dgr, &dns, &dname) else {
            continue;
        };
        let mut d = (*d).clone();
        if let Some(refs) = d["metadata"]["ownerReferences"].as_array_mut() {
            refs.retain(|r| r["uid"].as_str() != Some(uid));
            if refs.is_empty() {
                d["metadata"]
                    .as_object_mut()
                    .map(|m| m.remove("ownerReferences"));
            }
        }
        st.put(&dgr, d);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::fixtures::{opts, state, ty};
    use super::super::{Part, create, update};
    use super::*;

    #[test]
    fn finalizers_hold_the_object_until_cleared() {
        let mut st = state();
        let cm = ty(&st, "", "v1", "configmaps");
        create(
            &mut st,
            &cm,
            "v1",
            "default",
            json!({"metadata": {"name": "a", "finalizers": ["x/y"]}}),
            &opts(),
        )
        .unwrap();
        let del = DeleteOpts {
            propagation: Propagation::Background,
            precondition_uid: None,
            precondition_rv: None,
        };
        let Deleted::Pending(p) = delete(&mut st, &cm, "default", "a", &del, &opts()).unwrap()
        else {
            panic!("must be pending")
        };
        assert!(p["metadata"]["deletionTimestamp"].is_string());
        let mut clear = (*p).clone();
        clear["metadata"]["finalizers"] = json!([]);
        update(
            &mut st,
            &cm,
            "v1",
            "default",
            "a",
            clear,
            Part::Main,
            &opts(),
        )
        .unwrap();
        assert!(st.get(&cm.gr(), "default", "a").is_none());
    }
}
