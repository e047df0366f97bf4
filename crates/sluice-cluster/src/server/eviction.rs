//! `POST pods/{name}/eviction`: deletes a Pod only if its PodDisruptionBudget allows it, as
//! the apiserver's eviction subresource does.
//!
//! - A Pod that has finished (`Succeeded`/`Failed`), or that no budget selects, is deleted.
//! - A Pod selected by more than one budget cannot be evicted (500, the apiserver's message).
//! - A Pod that is not Ready is deleted without spending the budget while the budget is
//!   healthy (`currentHealthy >= desiredHealthy`), or always under
//!   `unhealthyPodEvictionPolicy: AlwaysAllow`.
//! - Otherwise the budget must have been observed at its generation and allow a disruption:
//!   the eviction then decrements `disruptionsAllowed`, records the Pod in `disruptedPods`
//!   (the disruption controller keeps it out of `currentHealthy` until it is gone) and
//!   deletes the Pod. When it allows none: 429 `TooManyRequests` "Cannot evict pod as it would
//!   violate the pod's disruption budget.", with a `DisruptionBudget` cause naming the budget.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::options::Query;
use super::resource::{Payload, Target};
use super::{Shared, json_response};
use crate::error::ApiError;
use crate::ops::{self, DeleteOpts, Part, Propagation, WriteOpts};
use crate::selector::{Selector, label_selector_string};
use crate::store::State;

const VIOLATION: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

fn too_many_requests(cause: String) -> ApiError {
    ApiError {
        code: 429,
        reason: "TooManyRequests",
        message: VIOLATION.into(),
        details: Some(json!({"causes": [{"reason": "DisruptionBudget", "message": cause}]})),
    }
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// The budgets of `ns` whose selector selects `pod` (a missing selector selects nothing).
fn budgets_of(st: &State, ns: &str, pod: &Value) -> Vec<Value> {
    let gr = ("policy".to_string(), "poddisruptionbudgets".to_string());
    st.list(&gr, Some(ns))
        .map(|(_, pdb)| pdb.value())
        .filter(|pdb| {
            let sel = &pdb["spec"]["selector"];
            sel.is_object()
                && Selector::parse_labels(&label_selector_string(sel))
                    .is_ok_and(|s| s.matches_labels(pod))
        })
        .collect()
}

/// What an admitted eviction does to the budget before the Pod is deleted.
enum Admitted {
    /// Delete without touching any budget.
    Free,
    /// Delete and write this budget's status first.
    Spend(Value),
}

fn admit(st: &State, ns: &str, pod: &Value, now: &str) -> Result<Admitted, ApiError> {
    if matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    ) {
        return Ok(Admitted::Free);
    }
    let mut budgets = budgets_of(st, ns, pod);
    if budgets.len() > 1 {
        return Err(ApiError::internal(
            "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
        ));
    }
    let Some(mut pdb) = budgets.pop() else {
        return Ok(Admitted::Free);
    };
    let status = &pdb["status"];
    let healthy = status["currentHealthy"].as_i64().unwrap_or(0);
    let desired = status["desiredHealthy"].as_i64().unwrap_or(0);
    if !is_ready(pod) {
        let always = pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow";
        if always || (healthy >= desired && desired > 0) {
            return Ok(Admitted::Free);
        }
    }
    let name = pdb["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let generation = pdb["metadata"]["generation"].as_i64().unwrap_or(1);
    if status["observedGeneration"].as_i64().unwrap_or(0) < generation {
        return Err(too_many_requests(format!(
            "The disruption budget {name} is still being processed by the server."
        )));
    }
    let allowed = status["disruptionsAllowed"].as_i64().unwrap_or(0);
    if allowed < 0 {
        return Err(ApiError {
            code: 403,
            reason: "Forbidden",
            message: "pdb disruptions allowed is negative".into(),
            details: None,
        });
    }
    if allowed == 0 {
        return Err(too_many_requests(format!(
            "The disruption budget {name} needs {desired} healthy pods and has {healthy} currently"
        )));
    }
    let pod_name = pod["metadata"]["name"].clone();
    let status = &mut pdb["status"];
    status["disruptionsAllowed"] = json!(allowed - 1);
    if !status["disruptedPods"].is_object() {
        status["disruptedPods"] = json!({});
    }
    status["disruptedPods"][pod_name.as_str().unwrap_or_default()] = json!(now);
    if allowed == 1 {
        for c in status["conditions"].as_array_mut().into_iter().flatten() {
            if c["type"] == "DisruptionAllowed" {
                c["status"] = json!("False");
                c["reason"] = json!("InsufficientPods");
                c["lastTransitionTime"] = json!(now);
            }
        }
    }
    Ok(Admitted::Spend(pdb))
}

/// POST of an Eviction for the Pod `name`.
pub(super) fn evict(
    sh: &Shared,
    tg: &Target,
    name: &str,
    q: &Query,
    p: &Payload,
) -> Result<Response, ApiError> {
    let body: Value = if p.body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else if p.content_type.contains("protobuf") {
        crate::protobuf::decode(&p.body).unwrap_or_else(|_| json!({}))
    } else {
        serde_json::from_slice(&p.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding Eviction: {e}")))?
    };
    if let Some(n) = body["metadata"]["name"].as_str()
        && n != name
    {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    let options = &body["deleteOptions"];
    let dry_run = q.get("dryRun") == Some("All")
        || options["dryRun"]
            .as_array()
            .is_some_and(|d| d.iter().any(|x| x == "All"));
    let o = WriteOpts {
        dry_run,
        now: super::options::now_string(),
    };
    let opts = DeleteOpts {
        propagation: Propagation::Background,
        precondition_uid: options["preconditions"]["uid"].as_str().map(str::to_string),
        precondition_rv: options["preconditions"]["resourceVersion"]
            .as_str()
            .map(str::to_string),
    };
    {
        let mut st = sh.lock();
        let pod = st
            .get(&tg.st_t.gr(), &tg.ns, name)
            .ok_or_else(|| ApiError::not_found("", "pods", name))?;
        let admitted = admit(&st, &tg.ns, &pod, &o.now)?;
        if let Admitted::Spend(pdb) = admitted
            && !dry_run
        {
            let t = st
                .registry
                .lookup("policy", "v1", "poddisruptionbudgets")
                .ok_or_else(ApiError::no_resource)?;
            let pdb_name = pdb["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            ops::update(&mut st, &t, "v1", &tg.ns, &pdb_name, pdb, Part::Status, &o)?;
        }
        ops::delete(&mut st, &tg.st_t, &tg.ns, name, &opts, &o)?;
    }
    sh.gc_notify.notify_one();
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}
