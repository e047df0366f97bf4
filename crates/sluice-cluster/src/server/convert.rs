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
    if served_as_stored(
        t,
        version,
        obj["apiVersion"].as_str().unwrap_or_default(),
        obj["kind"].as_str().unwrap_or_default(),
    ) {
        Cow::Borrowed(obj)
    } else {
        Cow::Owned(present(t, version, obj))
    }
}

/// The object as served at `version`, encoded: the stored object's shared encoding when it is
/// served as stored.
pub(super) fn presented_json(t: &ResourceType, version: &str, obj: &Stored) -> Bytes {
    if served_as_stored(t, version, obj.api_version(), obj.kind()) {
        obj.json()
    } else {
        Bytes::from(serde_json::to_vec(&present(t, version, &obj.value())).unwrap_or_default())
    }
}

/// Whether an object stored with `api_version` and `kind` is served at `version` as stored.
pub(super) fn served_as_stored(
    t: &ResourceType,
    version: &str,
    api_version: &str,
    kind: &str,
) -> bool {
    let reshaped = t.group == "events.k8s.io" || (t.group == "autoscaling" && version == "v1");
    !reshaped && kind == t.kind && t.is_api_version(api_version, version)
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
