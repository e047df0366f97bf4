//! Watched objects decoded by their own reconcile, not by the watch.
//!
//! A watch of typed objects decodes every object of every list and event; one that does not
//! decode (a field Sluice's types read stricter than the CRD schema does, such as an int32
//! beyond its range, which an API server does not check) fails the whole list, and the
//! watcher retries it forever: nothing of that kind is reconciled again, however healthy. An
//! [`Undecoded`] keeps from the watch only the metadata kube-runtime keys and routes on, and
//! the object as JSON ([`crate::packed`]); the reconcile of that one object decodes it, and
//! only that reconcile fails when it does not decode.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::error::DecodeError;
use crate::packed::Packed;
use crate::trimmed::{Trimmed, trim, trim_from};

/// An object of kind `K` as the API server sent it, decoded on demand.
pub struct Undecoded<K> {
    /// What the controller keys, routes and skips on without decoding: name, namespace,
    /// uid, resourceVersion, generation, deletionTimestamp and ownerReferences.
    meta: ObjectMeta,
    body: Packed<K>,
}

impl<K> Clone for Undecoded<K> {
    fn clone(&self) -> Self {
        Self {
            meta: self.meta.clone(),
            body: self.body.clone(),
        }
    }
}

impl<K> std::fmt::Debug for Undecoded<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Undecoded")
            .field("name", &self.meta.name)
            .field("namespace", &self.meta.namespace)
            .field("body", &self.body)
            .finish()
    }
}

impl<K> Undecoded<K>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned,
{
    /// Keep `obj` (a whole object as JSON) without decoding its spec and status. Its
    /// managedFields are dropped: nothing reads them, and they are often most of the object.
    pub fn from_json(obj: Value) -> Result<Self, serde_json::Error> {
        Self::from_text(&obj.to_string(), &[])
    }

    /// [`Undecoded::from_json`] from the object's text as the API server sent it (what a
    /// watch reads), also dropping the annotations named in `drop_annotations` (see
    /// [`crate::trimmed`]: no tree of the object is built).
    pub fn from_text(text: &str, drop_annotations: &[&str]) -> Result<Self, serde_json::Error> {
        Ok(Self::from_trimmed(trim(text, drop_annotations)?))
    }

    /// Keep an object [`crate::trimmed`] has already trimmed.
    pub fn from_trimmed(trimmed: Trimmed) -> Self {
        Self {
            meta: trimmed.meta,
            body: Packed::from_json_text(trimmed.json),
        }
    }

    /// Decode the whole object; a failure names the object and the field where it stopped.
    pub fn decode(&self) -> Result<K, DecodeError> {
        self.body.unpack_tracked().map_err(|e| {
            let path = e.path().to_string();
            DecodeError {
                what: self.describe(),
                path: (path != ".").then_some(path),
                source: e.into_inner(),
            }
        })
    }

    /// Decode only the part of the object `T` names (a struct of the few fields wanted;
    /// the rest is skipped, not decoded).
    pub fn peek<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        self.body.unpack_as()
    }

    /// The encoding, for a cache that decodes it later (a clone shares the bytes).
    pub fn packed(&self) -> &Packed<K> {
        &self.body
    }

    /// `kind namespace/name`, as errors and logs name the object.
    pub fn describe(&self) -> String {
        format!(
            "{} {}/{}",
            K::kind(&()).to_lowercase(),
            self.meta.namespace.as_deref().unwrap_or_default(),
            self.meta.name.as_deref().unwrap_or_default()
        )
    }
}

impl<K: Resource<DynamicType = ()>> Resource for Undecoded<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.meta
    }
}

/// What the watch decodes: any JSON object with valid metadata (the API server validates
/// metadata itself, so every object it serves has that). The object is trimmed as it is read
/// ([`crate::trimmed::trim_from`]), its members taken as their text (`RawValue`), which
/// serde_json's readers and its `Value` give; kube reads list bodies and watch lines with
/// serde_json, and a watch event's `type` comes before its `object` (so serde reads the
/// object from the line itself, not from a buffered copy).
impl<'de, K> Deserialize<'de> for Undecoded<K>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::from_trimmed(trim_from(d, &[], |_, _| {})?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sluice_api::analysis::AnalysisRun;

    fn run(ttl: Value) -> Value {
        json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
            "metadata": {"name": "r", "namespace": "ns", "uid": "u1", "resourceVersion": "7",
                         "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
                         "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1",
                             "kind": "Experiment", "name": "e", "uid": "e1", "controller": true}]},
            "spec": {"metrics": [{"name": "m", "provider": {"web": {"url": "http://x"}}}],
                     "ttlStrategy": {"secondsAfterCompletion": ttl}}
        })
    }

    #[test]
    fn a_well_formed_object_decodes_to_what_a_typed_watch_would_have_given() {
        let typed: AnalysisRun = serde_json::from_value(run(json!(60))).unwrap();
        let lazy: Undecoded<AnalysisRun> = serde_json::from_value(run(json!(60))).unwrap();
        let decoded = lazy.decode().expect("decodes");
        assert_eq!(decoded.spec, typed.spec);
        assert_eq!(decoded.metadata.name, typed.metadata.name);
        assert_eq!(
            decoded.metadata.owner_references,
            typed.metadata.owner_references
        );
        assert!(decoded.metadata.managed_fields.is_none(), "dropped");
        assert_eq!(lazy.meta().resource_version.as_deref(), Some("7"));
        assert_eq!(lazy.meta().owner_references.as_ref().map(Vec::len), Some(1));
    }

    #[test]
    fn a_malformed_object_is_kept_and_fails_only_when_decoded() {
        let bad = run(json!(3_000_000_000_i64));
        assert!(serde_json::from_value::<AnalysisRun>(bad.clone()).is_err());
        let lazy: Undecoded<AnalysisRun> = serde_json::from_value(bad).expect("kept");
        assert_eq!(lazy.meta().name.as_deref(), Some("r"));
        let err = lazy.decode().expect_err("int32 out of range");
        assert_eq!(err.what, "analysisrun ns/r");
        assert_eq!(
            err.path.as_deref(),
            Some("spec.ttlStrategy.secondsAfterCompletion")
        );
    }

    #[test]
    fn a_list_with_one_malformed_item_still_lists_every_item() {
        let list = json!({"apiVersion": "v1", "kind": "List", "metadata": {},
            "items": [run(json!(60)), run(json!(3_000_000_000_i64))]});
        let typed = serde_json::from_value::<kube::core::ObjectList<AnalysisRun>>(list.clone());
        assert!(typed.is_err(), "a typed list fails whole");
        let lazy: kube::core::ObjectList<Undecoded<AnalysisRun>> =
            serde_json::from_value(list).expect("lists");
        assert_eq!(lazy.items.len(), 2);
        assert!(lazy.items[0].decode().is_ok());
        assert!(lazy.items[1].decode().is_err());
    }
}
