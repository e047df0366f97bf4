//! Owner-reference garbage collection and namespace cleanup, driven by the work queue the store
//! fills as objects go away.

use serde_json::{Value, json};

use super::ops::{self, DeleteOpts, Propagation, WriteOpts};
use super::store::{GcWork, State};

fn opts(p: Propagation) -> DeleteOpts {
    DeleteOpts {
        propagation: p,
        precondition_uid: None,
        precondition_rv: None,
    }
}

fn deleting(o: &Value) -> bool {
    !o["metadata"]["deletionTimestamp"].is_null()
}

/// Processes up to `budget` queued items; returns whether work remains.
pub fn run(st: &mut State, now: &str, budget: usize) -> bool {
    let w = WriteOpts {
        dry_run: false,
        now: now.to_string(),
    };
    for _ in 0..budget {
        let Some(work) = st.gc_queue.pop_front() else {
            return false;
        };
        match work {
            GcWork::Owner(uid) => owner(st, &uid, &w),
            GcWork::Namespace(ns) => namespace(st, &ns, &w),
        }
    }
    !st.gc_queue.is_empty()
}

fn owner(st: &mut State, uid: &str, w: &WriteOpts) {
    match st.by_uid(uid) {
        Some((gr, (ns, name))) => {
            // Only an owner being deleted is decoded (this runs after every dependent's delete).
            if !st.get_stored(&gr, &ns, &name).is_some_and(|o| o.deleting()) {
                return;
            }
            let Some(o) = st.get(&gr, &ns, &name) else {
                return;
            };
            let foreground = deleting(&o)
                && o["metadata"]["finalizers"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|x| x == "foregroundDeletion"));
            if !foreground {
                return;
            }
            let deps = st.dependents_of(uid);
            for (dgr, (dns, dname)) in &deps {
                let Some(d) = st.get(dgr, dns, dname) else {
                    continue;
                };
                if deleting(&d) {
                    continue;
                }
                if let Some(t) = st.registry.types.get(dgr).cloned() {
                    let _ = ops::delete(st, &t, dns, dname, &opts(Propagation::Foreground), w);
                }
            }
            // Only dependents with blockOwnerDeletion hold the owner back.
            let blocking = st
                .dependents_of(uid)
                .into_iter()
                .any(|(dgr, (dns, dname))| {
                    st.get(&dgr, &dns, &dname).is_some_and(|d| {
                        d["metadata"]["ownerReferences"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|r| {
                                r["uid"].as_str() == Some(uid) && r["blockOwnerDeletion"] == true
                            })
                    })
                });
            if !blocking {
                let mut o = (*o).clone();
                if let Some(f) = o["metadata"]["finalizers"].as_array_mut() {
                    f.retain(|x| x != "foregroundDeletion");
                }
                if let Some(t) = st.registry.types.get(&gr).cloned() {
                    let version = o["apiVersion"]
                        .as_str()
                        .and_then(|a| a.rsplit('/').next())
                        .unwrap_or("v1")
                        .to_string();
                    let version = if t.version(&version).is_some() {
                        version
                    } else {
                        t.versions[0].name.clone()
                    };
                    let _ = ops::update(st, &t, &version, &ns, &name, o, ops::Part::Main, w);
                }
            }
        }
        None => {
            for (dgr, (dns, dname)) in st.dependents_of(uid) {
                let Some(d) = st.get(&dgr, &dns, &dname) else {
                    continue;
                };
                let refs = d["metadata"]["ownerReferences"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let others_alive = refs.iter().any(|r| {
                    r["uid"]
                        .as_str()
                        .is_some_and(|u| u != uid && st.exists_uid(u))
                });
                let Some(t) = st.registry.types.get(&dgr).cloned() else {
                    continue;
                };
                if others_alive {
                    let mut d = (*d).clone();
                    let kept: Vec<Value> = refs
                        .into_iter()
                        .filter(|r| r["uid"].as_str() != Some(uid))
                        .collect();
                    d["metadata"]["ownerReferences"] = json!(kept);
                    let version = t.versions[0].name.clone();
                    let _ = ops::update(st, &t, &version, &dns, &dname, d, ops::Part::Main, w);
                } else if !deleting(&d) {
                    let _ = ops::delete(st, &t, &dns, &dname, &opts(Propagation::Background), w);
                }
            }
        }
    }
}

fn namespace(st: &mut State, ns: &str, w: &WriteOpts) {
    let ns_gr = ("".to_string(), "namespaces".to_string());
    let Some(n) = st.get(&ns_gr, "", ns) else {
        return;
    };
    if !deleting(&n) {
        return;
    }
    let mut remaining = 0;
    for gr in st.resources() {
        let Some(t) = st.registry.types.get(&gr).cloned() else {
            continue;
        };
        if !t.namespaced {
            continue;
        }
        let items: Vec<(String, bool)> = st
            .list(&gr, Some(ns))
            .map(|((_, name), o)| (name.to_string(), o.deleting()))
            .collect();
        for (name, already) in items {
            remaining += 1;
            if !already {
                let _ = ops::delete(st, &t, ns, &name, &opts(Propagation::Background), w);
            }
        }
    }
    let left = st
        .resources()
        .iter()
        .map(|gr| st.list(gr, Some(ns)).count())
        .sum::<usize>();
    if remaining == 0 || left == 0 {
        st.remove(&ns_gr, "", ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn w() -> WriteOpts {
        WriteOpts {
            dry_run: false,
            now: "2026-01-01T00:00:00Z".into(),
        }
    }

    fn setup() -> (State, String) {
        let mut st = State::new(1000);
        let ns = st.registry.lookup("", "v1", "namespaces").unwrap();
        ops::create(
            &mut st,
            &ns,
            "v1",
            "",
            json!({"metadata": {"name": "default"}}),
            &w(),
        )
        .unwrap();
        let cm = st.registry.lookup("", "v1", "configmaps").unwrap();
        let owner = ops::create(
            &mut st,
            &cm,
            "v1",
            "default",
            json!({"metadata": {"name": "owner"}}),
            &w(),
        )
        .unwrap();
        let uid = owner["metadata"]["uid"].as_str().unwrap().to_string();
        for n in ["d1", "d2"] {
            ops::create(&mut st, &cm, "v1", "default", json!({"metadata": {"name": n, "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid, "blockOwnerDeletion": true}]}}), &w()).unwrap();
        }
        st.gc_queue.clear();
        (st, uid)
    }

    fn drain(st: &mut State) {
        for _ in 0..100 {
            if !run(st, "2026-01-01T00:00:00Z", 1000) {
                break;
            }
        }
    }

    fn names(st: &State) -> Vec<String> {
        st.list(&("".into(), "configmaps".into()), Some("default"))
            .map(|(k, _)| k.1.to_string())
            .collect()
    }

    #[test]
    fn background_deletion_collects_dependents() {
        let (mut st, _) = setup();
        let cm = st.registry.lookup("", "v1", "configmaps").unwrap();
        ops::delete(
            &mut st,
            &cm,
            "default",
            "owner",
            &opts(Propagation::Background),
            &w(),
        )
        .unwrap();
        assert_eq!(names(&st), vec!["d1", "d2"]);
        drain(&mut st);
        assert!(names(&st).is_empty());
    }

    #[test]
    fn foreground_deletion_waits_for_dependents() {
        let (mut st, _) = setup();
        let cm = st.registry.lookup("", "v1", "configmaps").unwrap();
        ops::delete(
            &mut st,
            &cm,
            "default",
            "owner",
            &opts(Propagation::Foreground),
            &w(),
        )
        .unwrap();
        let o = st.get(&cm.gr(), "default", "owner").unwrap();
        assert_eq!(o["metadata"]["finalizers"], json!(["foregroundDeletion"]));
        drain(&mut st);
        assert!(names(&st).is_empty());
    }

    #[test]
    fn foreground_deletion_waits_only_for_blocking_dependents() {
        let (mut st, uid) = setup();
        let cm = st.registry.lookup("", "v1", "configmaps").unwrap();
        // A non-blocking dependent that cannot go away yet (finalizer).
        ops::create(&mut st, &cm, "v1", "default", json!({"metadata": {"name": "slow", "finalizers": ["x/hold"],
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}]}}), &w()).unwrap();
        ops::delete(
            &mut st,
            &cm,
            "default",
            "owner",
            &opts(Propagation::Foreground),
            &w(),
        )
        .unwrap();
        drain(&mut st);
        assert!(
            st.get(&cm.gr(), "default", "owner").is_none(),
            "owner gone once blocking dependents are"
        );
        assert!(
            st.get(&cm.gr(), "default", "slow").unwrap()["metadata"]["deletionTimestamp"]
                .is_string()
        );
    }

    #[test]
    fn orphan_deletion_keeps_dependents_without_owner_refs() {
        let (mut st, _) = setup();
        let cm = st.registry.lookup("", "v1", "configmaps").unwrap();
        ops::delete(
            &mut st,
            &cm,
            "default",
            "owner",
            &opts(Propagation::Orphan),
            &w(),
        )
        .unwrap();
        drain(&mut st);
        assert_eq!(names(&st), vec!["d1", "d2"]);
        assert!(
            st.get(&cm.gr(), "default", "d1").unwrap()["metadata"]["ownerReferences"].is_null()
        );
    }

    #[test]
    fn dependent_of_a_missing_owner_is_collected() {
        let (mut st, _) = setup();
        let cm = st.registry.lookup("", "v1", "configmaps").unwrap();
        ops::create(&mut st, &cm, "v1", "default", json!({"metadata": {"name": "stray", "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "no-such-uid"}]}}), &w()).unwrap();
        drain(&mut st);
        assert!(!names(&st).contains(&"stray".to_string()));
    }

    #[test]
    fn deleting_a_namespace_empties_then_removes_it() {
        let (mut st, _) = setup();
        let ns = st.registry.lookup("", "v1", "namespaces").unwrap();
        ops::delete(
            &mut st,
            &ns,
            "",
            "default",
            &opts(Propagation::Background),
            &w(),
        )
        .unwrap();
        drain(&mut st);
        assert!(names(&st).is_empty());
        assert!(st.get(&ns.gr(), "", "default").is_none());
    }
}
