//! ResourceQuota object counts: a create that would take a namespace past a quota's
//! `count/<resource>[.<group>]` limit (or one of the core names `pods`, `services`,
//! `configmaps`, `secrets`, `persistentvolumeclaims`, `replicationcontrollers`,
//! `resourcequotas`) is refused with the apiserver's 403, and each quota's `status.hard` and
//! `status.used` follow what is stored.
//!
//! This is the admission a real cluster refuses ordinary, valid writes with (a team's quota
//! of ReplicaSets, say), which is how tests make the API server refuse a write the
//! controller needs. Compute quotas (`requests.cpu`, ...) are not enforced.
//!
//! Simplified on purpose: usage is counted from the store when it is needed, so a quota's
//! status is exact at once (a real cluster's quota controller recounts after deletions
//! within seconds).

use serde_json::{Map, Value, json};
use sluice_api::k8s::quantity::Quantity;

use crate::error::{self, ApiError};
use crate::store::State;
use crate::types::{GroupResource, ResourceType};

fn quota_gr() -> GroupResource {
    (String::new(), "resourcequotas".to_string())
}

/// Core resources a quota may count by their bare name.
const CORE_COUNTS: &[&str] = &[
    "pods",
    "services",
    "configmaps",
    "secrets",
    "persistentvolumeclaims",
    "replicationcontrollers",
    "resourcequotas",
];

/// The quota keys that count objects of `gr`.
fn keys_for(gr: &GroupResource) -> Vec<String> {
    let (group, plural) = (gr.0.as_str(), gr.1.as_str());
    let mut keys = vec![if group.is_empty() {
        format!("count/{plural}")
    } else {
        format!("count/{plural}.{group}")
    }];
    if group.is_empty() && CORE_COUNTS.contains(&plural) {
        keys.push(plural.to_string());
    }
    keys
}

/// The resource a quota key counts.
fn resource_of(key: &str) -> Option<GroupResource> {
    if CORE_COUNTS.contains(&key) {
        return Some((String::new(), key.to_string()));
    }
    let rest = key.strip_prefix("count/")?;
    Some(match rest.split_once('.') {
        Some((plural, group)) => (group.to_string(), plural.to_string()),
        None => (String::new(), rest.to_string()),
    })
}

/// Objects of `gr` in `ns` that count: all of them, except finished pods.
fn usage(st: &State, gr: &GroupResource, ns: &str) -> i64 {
    let pods = gr.0.is_empty() && gr.1 == "pods";
    st.list(gr, Some(ns))
        .filter(|(_, o)| {
            !pods
                || !matches!(
                    o.value()["status"]["phase"].as_str(),
                    Some("Succeeded" | "Failed")
                )
        })
        .count() as i64
}

fn hard_of(quota: &Value) -> Vec<(String, String)> {
    quota["spec"]["hard"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect()
}

/// Refuses creating one more object of `t` in `ns` when a quota there would be exceeded:
/// `<resource> "<name>" is forbidden: exceeded quota: <quota>, requested: <key>=1, used:
/// <key>=<n>, limited: <key>=<hard>`.
pub(super) fn admit(st: &State, t: &ResourceType, ns: &str, name: &str) -> Result<(), ApiError> {
    if !t.namespaced {
        return Ok(());
    }
    let gr = t.gr();
    let keys = keys_for(&gr);
    for (_, quota) in st.list(&quota_gr(), Some(ns)) {
        let quota = quota.value();
        for (key, hard) in hard_of(&quota) {
            if !keys.contains(&key) {
                continue;
            }
            let Ok(limit) = Quantity::parse(&hard) else {
                continue;
            };
            let used = usage(st, &gr, ns);
            let wanted = Quantity::parse(&(used + 1).to_string()).expect("a count is a quantity");
            if wanted > limit {
                let quota_name = quota["metadata"]["name"].as_str().unwrap_or_default();
                let mut details = json!({"name": name, "kind": t.plural});
                if !t.group.is_empty() {
                    details["group"] = json!(t.group);
                }
                return Err(ApiError {
                    code: 403,
                    reason: "Forbidden",
                    message: format!(
                        "{} \"{name}\" is forbidden: exceeded quota: {quota_name}, requested: {key}=1, used: {key}={used}, limited: {key}={}",
                        error::group_resource(&t.group, &t.plural),
                        limit.canonical()
                    ),
                    details: Some(details),
                });
            }
        }
    }
    Ok(())
}

/// `status.hard` and `status.used` of a quota being written, from its `spec.hard` and the
/// objects stored in its namespace.
pub(super) fn fill_status(st: &State, quota: &mut Value) {
    let ns = quota["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut hard = Map::new();
    let mut used = Map::new();
    for (key, value) in hard_of(quota) {
        hard.insert(key.clone(), json!(value));
        if let Some(gr) = resource_of(&key) {
            used.insert(key, json!(usage(st, &gr, &ns).to_string()));
        }
    }
    quota["status"] = json!({"hard": hard, "used": used});
}

/// After an object of `gr` came or went in `ns`: the `status.used` of the quotas counting it.
pub(super) fn refresh(st: &mut State, gr: &GroupResource, ns: &str) {
    if ns.is_empty() {
        return;
    }
    let keys = keys_for(gr);
    let quotas: Vec<Value> = st
        .list(&quota_gr(), Some(ns))
        .map(|(_, q)| q.value())
        .filter(|q| hard_of(q).iter().any(|(k, _)| keys.contains(k)))
        .collect();
    for mut quota in quotas {
        let before = quota["status"].clone();
        fill_status(st, &mut quota);
        if quota["status"] != before {
            st.put(&quota_gr(), quota);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::fixtures::{opts, state, ty};
    use super::super::{DeleteOpts, Propagation, create, delete};

    fn config_map(name: &str) -> serde_json::Value {
        json!({"metadata": {"name": name}})
    }

    #[test]
    fn a_count_quota_refuses_the_create_past_its_limit_and_tracks_usage() {
        let mut st = state();
        let quota = ty(&st, "", "v1", "resourcequotas");
        let cm = ty(&st, "", "v1", "configmaps");
        create(&mut st, &cm, "v1", "default", config_map("a"), &opts()).unwrap();
        let q = create(
            &mut st,
            &quota,
            "v1",
            "default",
            json!({"metadata": {"name": "q"}, "spec": {"hard": {"count/configmaps": "2"}}}),
            &opts(),
        )
        .unwrap();
        assert_eq!(
            q["status"],
            json!({"hard": {"count/configmaps": "2"}, "used": {"count/configmaps": "1"}})
        );
        create(&mut st, &cm, "v1", "default", config_map("b"), &opts()).unwrap();
        let e = create(&mut st, &cm, "v1", "default", config_map("c"), &opts()).unwrap_err();
        assert_eq!((e.code, e.reason), (403, "Forbidden"));
        assert_eq!(
            e.message,
            "configmaps \"c\" is forbidden: exceeded quota: q, requested: count/configmaps=1, used: count/configmaps=2, limited: count/configmaps=2"
        );
        let stored = st.get(&quota.gr(), "default", "q").unwrap();
        assert_eq!(stored["status"]["used"]["count/configmaps"], "2");
        let background = DeleteOpts {
            propagation: Propagation::Background,
            precondition_uid: None,
            precondition_rv: None,
        };
        delete(&mut st, &cm, "default", "a", &background, &opts()).unwrap();
        let stored = st.get(&quota.gr(), "default", "q").unwrap();
        assert_eq!(stored["status"]["used"]["count/configmaps"], "1");
        create(&mut st, &cm, "v1", "default", config_map("c"), &opts()).unwrap();
    }

    #[test]
    fn quota_keys_name_group_and_resource() {
        assert_eq!(
            super::keys_for(&("apps".into(), "replicasets".into())),
            ["count/replicasets.apps"]
        );
        assert_eq!(
            super::keys_for(&(String::new(), "pods".into())),
            ["count/pods", "pods"]
        );
        assert_eq!(
            super::resource_of("count/analysisruns.argoproj.io"),
            Some(("argoproj.io".into(), "analysisruns".into()))
        );
    }
}
