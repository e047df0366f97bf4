//! An object's JSON as the caches keep it, trimmed without building a tree of it.
//!
//! The caches keep what the API server sent minus what no decision reads: `managedFields`
//! (often most of an object) and, for Rollouts, kubectl's last-applied copy of the whole
//! object. Doing that on a `serde_json::Value` allocated every string, number and map of the
//! object and freed it again, for every object of every list: at a restart over 10,000
//! Rollouts and 20,000 ReplicaSets that was a third of the controller's time before its
//! first reconcile. Here the object is read once, as the list or watch event that carries
//! it is read ([`trim_from`]): each member of the top level and of `metadata` is taken as the
//! text it was sent as (`RawValue`) and written straight back, without the dropped members;
//! spec and status are copied, not parsed into anything, and only the few metadata fields
//! the controller keys on are decoded, from their own short text.
//!
//! Keys are compared as JSON strings decode them, so an escaped key is still recognised.

use std::borrow::Cow;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
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
    let mut de = serde_json::Deserializer::from_str(text);
    let trimmed = trim_from(&mut de, drop_annotations, |_, _| {})?;
    de.end()?;
    Ok(trimmed)
}

/// [`trim`] reading the object from `d` (a list item or a watch event's object as serde
/// reaches it: the object's text is scanned once), also handing `visit` each top-level
/// member but `metadata` as it is written (its name as decoded, its value as sent), so a
/// caller can read a part of the object, such as `spec`, without scanning it again.
pub fn trim_from<'de, D: Deserializer<'de>>(
    d: D,
    drop_annotations: &[&str],
    visit: impl FnMut(&str, &RawValue),
) -> Result<Trimmed, D::Error> {
    d.deserialize_map(ObjectVisitor {
        drop_annotations,
        visit,
    })
}

/// Reads the top level of an object, writing it back as it goes.
struct ObjectVisitor<'x, F> {
    drop_annotations: &'x [&'x str],
    visit: F,
}

impl<'de, F: FnMut(&str, &RawValue)> Visitor<'de> for ObjectVisitor<'_, F> {
    type Value = Trimmed;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Trimmed, A::Error> {
        let mut json = Vec::with_capacity(1024);
        let mut meta = None;
        json.push(b'{');
        while let Some(Key(key)) = map.next_key()? {
            if json.len() > 1 {
                json.push(b',');
            }
            write_key(&mut json, &key);
            if key == "metadata" {
                meta = Some(map.next_value_seed(MetadataSeed {
                    out: &mut json,
                    drop_annotations: self.drop_annotations,
                })?);
            } else {
                let value: Box<RawValue> = map.next_value()?;
                (self.visit)(&key, &value);
                json.extend_from_slice(value.get().as_bytes());
            }
        }
        json.push(b'}');
        // As `ObjectMeta` would read a missing `metadata`: an error, not an empty one.
        let meta = meta.ok_or_else(|| de::Error::missing_field("metadata"))?;
        Ok(Trimmed { json, meta })
    }
}

/// Writes `metadata` without `managedFields` (and the annotations named), and decodes the
/// fields kept in [`Trimmed::meta`] from their text.
struct MetadataSeed<'x> {
    out: &'x mut Vec<u8>,
    drop_annotations: &'x [&'x str],
}

impl<'de> DeserializeSeed<'de> for MetadataSeed<'_> {
    type Value = ObjectMeta;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<ObjectMeta, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MetadataSeed<'_> {
    type Value = ObjectMeta;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object's metadata")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ObjectMeta, A::Error> {
        let out = self.out;
        let mut meta = ObjectMeta::default();
        out.push(b'{');
        let mut first = true;
        while let Some(Key(key)) = map.next_key()? {
            if key == "managedFields" {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
            write_key(out, &key);
            if key == "annotations" && !self.drop_annotations.is_empty() {
                map.next_value_seed(AnnotationsSeed {
                    out: &mut *out,
                    drop: self.drop_annotations,
                })?;
                continue;
            }
            let value: Box<RawValue> = map.next_value()?;
            let text = value.get();
            out.extend_from_slice(text.as_bytes());
            let kept = match &*key {
                "name" => parse(text).map(|v| meta.name = v),
                "namespace" => parse(text).map(|v| meta.namespace = v),
                "uid" => parse(text).map(|v| meta.uid = v),
                "resourceVersion" => parse(text).map(|v| meta.resource_version = v),
                "generation" => parse(text).map(|v| meta.generation = v),
                "deletionTimestamp" => parse(text).map(|v| meta.deletion_timestamp = v),
                "ownerReferences" => parse(text).map(|v| meta.owner_references = v),
                _ => Ok(()),
            };
            kept.map_err(|e| de::Error::custom(format_args!("metadata.{key}: {e}")))?;
        }
        out.push(b'}');
        Ok(meta)
    }
}

/// One kept metadata field, from the text it was sent as.
fn parse<T: de::DeserializeOwned>(text: &str) -> Result<T, serde_json::Error> {
    serde_json::from_str(text)
}

/// Writes `metadata.annotations` (an object or null) without the annotations named.
struct AnnotationsSeed<'x> {
    out: &'x mut Vec<u8>,
    drop: &'x [&'x str],
}

impl<'de> DeserializeSeed<'de> for AnnotationsSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AnnotationsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("annotations: an object or null")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let out = self.out;
        out.push(b'{');
        let mut first = true;
        while let Some(Key(name)) = map.next_key()? {
            let value: Box<RawValue> = map.next_value()?;
            if self.drop.contains(&&*name) {
                continue;
            }
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
            write_key(out, &name);
            out.extend_from_slice(value.get().as_bytes());
        }
        out.push(b'}');
        Ok(())
    }
}

fn write_key(out: &mut Vec<u8>, key: &str) {
    serde_json::to_writer(&mut *out, key).expect("a string encodes into a Vec");
    out.push(b':');
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
    fn visiting_hands_over_each_top_level_member_but_metadata_as_sent_and_trims_the_same() {
        let text = r#"{"kind":"Rollout","metadata":{"name":"a","managedFields":[]},"sp\u0065c":{"x": [1, 2]},"status":null}"#;
        let mut seen = Vec::new();
        let mut de = serde_json::Deserializer::from_str(text);
        let visited = trim_from(&mut de, &[], |key, value| {
            seen.push((key.to_string(), value.get().to_string()))
        })
        .unwrap();
        assert_eq!(
            seen,
            [
                ("kind", r#""Rollout""#),
                ("spec", r#"{"x": [1, 2]}"#),
                ("status", "null"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        assert_eq!(visited.json, trim(text, &[]).unwrap().json);
    }

    #[test]
    fn an_object_read_from_a_tree_or_a_list_item_trims_as_its_text_does() {
        let drop = ["kubectl.kubernetes.io/last-applied-configuration"];
        let text = serde_json::to_string(&object()).unwrap();
        let from_text = trim(&text, &drop).unwrap();
        let from_tree = trim_from(object(), &drop, |_, _| {}).unwrap();
        let as_json = |j: &[u8]| serde_json::from_slice::<Value>(j).unwrap();
        assert_eq!(as_json(&from_tree.json), as_json(&from_text.json));
        assert_eq!(from_tree.meta, from_text.meta);
        // As the items of a list: read in place, one after the other.
        let list = format!(r#"{{"items":[{text},{text}]}}"#);
        #[derive(Deserialize)]
        struct List {
            items: Vec<Item>,
        }
        struct Item(Trimmed);
        impl<'de> Deserialize<'de> for Item {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                trim_from(
                    d,
                    &["kubectl.kubernetes.io/last-applied-configuration"],
                    |_, _| {},
                )
                .map(Item)
            }
        }
        let list: List = serde_json::from_str(&list).unwrap();
        assert_eq!(list.items.len(), 2);
        for Item(t) in &list.items {
            assert_eq!(t.json, from_text.json);
            assert_eq!(t.meta, from_text.meta);
        }
    }

    #[test]
    fn a_kept_metadata_field_that_does_not_decode_is_named() {
        let err = trim(r#"{"metadata":{"name":"a","generation":"three"}}"#, &[])
            .err()
            .expect("refused");
        assert!(err.to_string().contains("metadata.generation"), "{err}");
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
