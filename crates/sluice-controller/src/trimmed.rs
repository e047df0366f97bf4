//! An object's JSON as the caches keep it, trimmed without building a tree of it.
//!
//! The caches keep what the API server sent minus what no decision reads: `managedFields`
//! (often most of an object) and, for Rollouts, kubectl's last-applied copy of the whole
//! object. Doing that on a `serde_json::Value` allocated every string, number and map of the
//! object and freed it again, for every object of every list: at a restart over 10,000
//! Rollouts and 20,000 ReplicaSets that was a third of the controller's time before its
//! first reconcile. Here the top level and `metadata` are split into their members, each
//! still the text it was sent as (`RawValue`), and the text is written back without the
//! dropped members; spec and status are copied, not parsed into anything.
//!
//! Keys are compared as JSON strings decode them, so an escaped key is still recognised.

use std::borrow::Cow;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// An object's JSON without the members the caches drop, and the metadata the controller
/// keys, routes and skips on.
pub struct Trimmed {
    /// The object as JSON: the members of its top level and of `metadata` in the order
    /// they were sent, `metadata.managedFields` and the dropped annotations left out.
    pub json: Vec<u8>,
    /// name, namespace, uid, resourceVersion, generation, deletionTimestamp and
    /// ownerReferences; every other field is left at its default.
    pub meta: ObjectMeta,
}

/// Trim `text`, one JSON object, dropping `metadata.managedFields` and the annotations named
/// in `drop_annotations`. Fails when `text` is not an object or its metadata is not valid.
pub fn trim(text: &str, drop_annotations: &[&str]) -> Result<Trimmed, serde_json::Error> {
    trim_visiting(text, drop_annotations, |_, _| {})
}

/// [`trim`], also handing `visit` each top-level member as it is written (its name as
/// decoded, its value as sent), so a caller can read a part of the object, such as `spec`,
/// without scanning the whole text again.
pub fn trim_visiting<'a>(
    text: &'a str,
    drop_annotations: &[&str],
    mut visit: impl FnMut(&str, &'a RawValue),
) -> Result<Trimmed, serde_json::Error> {
    let top: Members<'a> = serde_json::from_str(text)?;
    let mut json = Vec::with_capacity(text.len());
    let mut meta = None;
    write_object(
        &mut json,
        &top,
        |_| true,
        |out, key, value| {
            visit(key, value);
            if key == "metadata" {
                let start = out.len();
                write_metadata(out, value.get(), drop_annotations)?;
                meta = Some(kept_meta(&out[start..])?);
                Ok(())
            } else {
                copy(out, key, value)
            }
        },
    )?;
    let meta = match meta {
        Some(meta) => meta,
        // As `ObjectMeta` would read a missing `metadata`: an error, not an empty one.
        None => return Err(de::Error::missing_field("metadata")),
    };
    Ok(Trimmed { json, meta })
}

/// `metadata` without `managedFields`, and its annotations without `drop_annotations`.
fn write_metadata(
    out: &mut Vec<u8>,
    text: &str,
    drop_annotations: &[&str],
) -> Result<(), serde_json::Error> {
    let members: Members = serde_json::from_str(text)?;
    write_object(
        out,
        &members,
        |key| key != "managedFields",
        |out, key, value| {
            if key == "annotations" && !drop_annotations.is_empty() && value.get() != "null" {
                let annotations: Members = serde_json::from_str(value.get())?;
                write_object(
                    out,
                    &annotations,
                    |name| !drop_annotations.contains(&name),
                    copy,
                )
            } else {
                copy(out, key, value)
            }
        },
    )
}

/// Write `members` as a JSON object: those `keep` accepts, in order, each value written by
/// `value` after its key.
fn write_object<'a>(
    out: &mut Vec<u8>,
    members: &Members<'a>,
    keep: impl Fn(&str) -> bool,
    mut value: impl FnMut(&mut Vec<u8>, &str, &'a RawValue) -> Result<(), serde_json::Error>,
) -> Result<(), serde_json::Error> {
    out.push(b'{');
    for (i, (key, v)) in members.0.iter().filter(|(key, _)| keep(key)).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_key(out, key)?;
        value(out, key, v)?;
    }
    out.push(b'}');
    Ok(())
}

/// A member's value as it was sent.
fn copy(out: &mut Vec<u8>, _key: &str, value: &RawValue) -> Result<(), serde_json::Error> {
    out.extend_from_slice(value.get().as_bytes());
    Ok(())
}

fn write_key(out: &mut Vec<u8>, key: &str) -> Result<(), serde_json::Error> {
    serde_json::to_writer(&mut *out, key)?;
    out.push(b':');
    Ok(())
}

/// The metadata fields the controller reads without decoding the object.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeptMeta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    generation: Option<i64>,
    deletion_timestamp: Option<Time>,
    owner_references: Option<Vec<OwnerReference>>,
}

fn kept_meta(json: &[u8]) -> Result<ObjectMeta, serde_json::Error> {
    let k: KeptMeta = serde_json::from_slice(json)?;
    Ok(ObjectMeta {
        name: k.name,
        namespace: k.namespace,
        uid: k.uid,
        resource_version: k.resource_version,
        generation: k.generation,
        deletion_timestamp: k.deletion_timestamp,
        owner_references: k.owner_references,
        ..ObjectMeta::default()
    })
}

/// A JSON object's members in order, each value still its text.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Members<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Members<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'a>, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(Key(key)) = map.next_key()? {
                    members.push((key, map.next_value()?));
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// A member's name: borrowed from the text unless it had escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Key<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// What the Value-based trimming this replaces produced.
    fn by_tree(mut obj: Value, drop_annotations: &[&str]) -> Value {
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
            if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
                for d in drop_annotations {
                    a.remove(*d);
                }
            }
        }
        obj
    }

    fn object() -> Value {
        json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {
                "name": "web", "namespace": "shop", "uid": "u1", "resourceVersion": "42",
                "generation": 3, "deletionTimestamp": "2026-12-07T10:00:00Z",
                "labels": {"app": "web"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"big\":1}",
                                "team": "a\"b", "esc\\u0061ped": "x"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsV1": {"f:spec": {}}}],
                "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "o", "uid": "o1", "controller": true}]
            },
            "spec": {"replicas": 3, "nested": {"managedFields": "kept: not metadata"}, "n": 1.5e3},
            "status": null
        })
    }

    #[test]
    fn trimming_drops_managed_fields_and_the_named_annotations_and_keeps_everything_else() {
        let drop = ["kubectl.kubernetes.io/last-applied-configuration"];
        let text = serde_json::to_string(&object()).unwrap();
        let t = trim(&text, &drop).expect("trims");
        let got: Value = serde_json::from_slice(&t.json).expect("valid JSON");
        assert_eq!(got, by_tree(object(), &drop));
        let kept = trim(&text, &[]).expect("trims");
        let got: Value = serde_json::from_slice(&kept.json).unwrap();
        assert_eq!(got, by_tree(object(), &[]));
    }

    #[test]
    fn the_kept_metadata_is_what_object_meta_reads_for_the_keyed_fields() {
        let text = serde_json::to_string(&object()).unwrap();
        let meta = trim(&text, &[]).unwrap().meta;
        let full: ObjectMeta = serde_json::from_value(object()["metadata"].clone()).unwrap();
        assert_eq!(meta.name, full.name);
        assert_eq!(meta.namespace, full.namespace);
        assert_eq!(meta.uid, full.uid);
        assert_eq!(meta.resource_version, full.resource_version);
        assert_eq!(meta.generation, full.generation);
        assert_eq!(meta.deletion_timestamp, full.deletion_timestamp);
        assert_eq!(meta.owner_references, full.owner_references);
        assert!(
            meta.labels.is_none() && meta.annotations.is_none() && meta.managed_fields.is_none()
        );
    }

    #[test]
    fn keys_are_matched_as_decoded_so_an_escaped_managed_fields_is_still_dropped() {
        let text = r#"{"metadata":{"name":"a","managed\u0046ields":[{"manager":"m"}],"annotations":null},"spec":{}}"#;
        let t = trim(text, &["x"]).unwrap();
        let got: Value = serde_json::from_slice(&t.json).unwrap();
        assert_eq!(
            got,
            json!({"metadata": {"name": "a", "annotations": null}, "spec": {}})
        );
    }

    #[test]
    fn visiting_hands_over_each_top_level_member_as_sent_and_trims_the_same() {
        let text = r#"{"kind":"Rollout","metadata":{"name":"a","managedFields":[]},"sp\u0065c":{"x": [1, 2]},"status":null}"#;
        let mut seen = Vec::new();
        let visited = trim_visiting(text, &[], |key, value| {
            seen.push((key.to_string(), value.get().to_string()))
        })
        .unwrap();
        assert_eq!(
            seen,
            [
                ("kind", r#""Rollout""#),
                ("metadata", r#"{"name":"a","managedFields":[]}"#),
                ("spec", r#"{"x": [1, 2]}"#),
                ("status", "null"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        assert_eq!(visited.json, trim(text, &[]).unwrap().json);
    }

    #[test]
    fn what_is_not_an_object_with_valid_metadata_is_refused() {
        for bad in [
            "[]",
            "{}",
            r#"{"metadata":[]}"#,
            r#"{"metadata":{"generation":"three"}}"#,
            r#"{"metadata":{"name":"a"}"#,
        ] {
            assert!(trim(bad, &[]).is_err(), "{bad}");
        }
    }
}
