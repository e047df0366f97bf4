//! A store with the `default` namespace and the objects the write tests start from.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{WriteOpts, create};
use crate::store::State;
use crate::types::ResourceType;

pub fn opts() -> WriteOpts {
    WriteOpts {
        dry_run: false,
        now: "2026-01-01T00:00:00Z".into(),
    }
}

pub fn state() -> State {
    let mut st = State::new(100);
    let ns = st.registry.lookup("", "v1", "namespaces").unwrap();
    create(
        &mut st,
        &ns,
        "v1",
        "",
        json!({"metadata": {"name": "default"}}),
        &opts(),
    )
    .unwrap();
    st
}

pub fn deployment(name: &str, replicas: i64) -> Value {
    json!({"metadata": {"name": name}, "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "x"}},
        "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}})
}

pub fn ty(st: &State, g: &str, v: &str, r: &str) -> Arc<ResourceType> {
    st.registry.lookup(g, v, r).unwrap()
}
