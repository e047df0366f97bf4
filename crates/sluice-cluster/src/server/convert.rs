//! Served and stored shapes. A few types are served at versions whose shape differs from the
//! one stored (events.k8s.io/v1 Events are stored as core/v1, autoscaling/v1
//! HorizontalPodAutoscalers as autoscaling/v2); every object goes out through
//! [`presented`] and comes in through [`to_storage`].

use std::borrow::Cow;

use axum::body::Bytes;
use serde_json::{Value, json};

use crate::events;
use crate::hpa;
use crate::store::Stored;
use crate::types::ResourceType;

/// The object as served at `version`, borrowed when the stored copy already is exactly that
/// (the common case), so responses encode it without a deep copy.
pub(super) fn presented<'a>(t: &ResourceType, version: &str, obj: &'a Value) -> Cow<'a, Value> {
    let reshaped = t.group == "events.k8s.io" || (t.group == "autoscaling" && version == "v1");
    if !reshaped
        && obj["kind"].as_str() == Some(t.kind.as_str())
        && obj["apiVersion"]
            .as_str()
            .is_some_and(|av| t.is_api_version(av, version))
    {
        Cow::Borrowed(obj)
    } else {
        Cow::Owned(present(t, version, obj))
    }
}

/// The object as served at `version`, encoded: the stored object's shared encoding when it is
/// served as stored.
pub(super) fn presented_json(t: &ResourceType, version: &str, obj: &Stored) -> Bytes {
    match presented(t, version, obj) {
        Cow::Borrowed(_) => obj.json(),
        Cow::Owned(o) => Bytes::from(serde_json::to_vec(&o).unwrap_or_default()),
    }
}

/// The object as served at `version` (multi-version types share one stored copy).
pub(super) fn present(t: &ResourceType, version: &str, obj: &Value) -> Value {
    let mut o = if t.group == "events.k8s.io" {
        events::to_events_v1(obj)
    } else if t.group == "autoscaling" && version == "v1" {
        hpa::to_v1(obj)
    } else {
        obj.clone()
    };
    o["apiVersion"] = json!(t.api_version(version));
    o["kind"] = json!(t.kind);
    o
}

/// A request body in the stored shape (events.k8s.io/v1 Events are stored as core/v1,
/// autoscaling/v1 HorizontalPodAutoscalers as autoscaling/v2).
pub(super) fn to_storage(t: &ResourceType, version: &str, obj: Value) -> Value {
    if !obj.is_object() {
        obj
    } else if t.group == "events.k8s.io" {
        events::to_core(&obj)
    } else if t.group == "autoscaling" && version == "v1" {
        hpa::to_v2(&obj)
    } else {
        obj
    }
}
