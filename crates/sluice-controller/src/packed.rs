//! Cached objects kept as their JSON encoding.
//!
//! A k8s-openapi struct holds every optional field of every nested type inline: a cached
//! ReplicaSet with one container took ~6.5 KiB of heap as a struct (its `PodSpec` alone is
//! kilobytes of `None`s) and ~1.2 KiB as JSON; a Rollout with its status ~14 KiB against
//! ~2 KiB. At 10,000 Rollouts the caches of whole structs were most of the controller's
//! memory (heaptrack: 139 MB of Rollouts, 129 MB of ReplicaSets at the end of a mass
//! update). A reconcile needs its objects whole only while it runs, and it copied them out
//! of the cache anyway, so the caches keep the encoding and a reconcile decodes what it
//! reads: tens of microseconds per object, next to the milliseconds of its API calls.
//!
//! The encoding is the object as the API server would serve it (minus what the watch
//! stream already stripped), so decoding gives back an equal object: nothing the planner
//! reads is lost or summarised.

use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// One object of type `K`, JSON-encoded. Cloning shares the bytes.
pub struct Packed<K> {
    bytes: Arc<[u8]>,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Packed<K> {
    fn clone(&self) -> Self {
        Self {
            bytes: self.bytes.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> std::fmt::Debug for Packed<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Packed({} bytes)", self.bytes.len())
    }
}

impl<K: Serialize + DeserializeOwned> Packed<K> {
    /// Encode `obj`.
    pub fn pack(obj: &K) -> Result<Self, serde_json::Error> {
        Ok(Self {
            bytes: serde_json::to_vec(obj)?.into(),
            kind: PhantomData,
        })
    }

    /// Encode `obj`, a value of another type that encodes as a `K` (a `DynamicObject` kept
    /// as the JSON the planner reads, say).
    pub fn pack_from<T: Serialize>(obj: &T) -> Result<Self, serde_json::Error> {
        Ok(Self {
            bytes: serde_json::to_vec(obj)?.into(),
            kind: PhantomData,
        })
    }

    /// Encode an object that is still JSON, whatever it decodes to (see
    /// [`crate::undecoded`]).
    pub fn from_json(obj: &serde_json::Value) -> Result<Self, serde_json::Error> {
        Ok(Self {
            bytes: serde_json::to_vec(obj)?.into(),
            kind: PhantomData,
        })
    }

    /// Decode a fresh copy of the object.
    pub fn unpack(&self) -> Result<K, serde_json::Error> {
        serde_json::from_slice(&self.bytes)
    }

    /// Decode the encoding as another type (a part of the object).
    pub fn unpack_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.bytes)
    }

    /// Decode a fresh copy of the object; a failure names the field where decoding stopped.
    pub fn unpack_tracked(&self) -> Result<K, serde_path_to_error::Error<serde_json::Error>> {
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&self.bytes))
    }

    /// Size of the encoding in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the encoding is empty (never, for an encoded object).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// A cached object: packed, or whole when it could not be encoded (a k8s-openapi object
/// that was decoded from JSON always encodes; this keeps the cache complete regardless).
pub enum Cached<K> {
    Packed(Packed<K>),
    Whole(Arc<K>),
}

impl<K> Clone for Cached<K> {
    fn clone(&self) -> Self {
        match self {
            Cached::Packed(p) => Cached::Packed(p.clone()),
            Cached::Whole(w) => Cached::Whole(w.clone()),
        }
    }
}

impl<K> std::fmt::Debug for Cached<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cached::Packed(p) => p.fmt(f),
            Cached::Whole(_) => write!(f, "Whole"),
        }
    }
}

impl<K: Serialize + DeserializeOwned + Clone> Cached<K> {
    /// Keep `obj` packed if it encodes, whole otherwise.
    pub fn new(obj: K) -> Self {
        match Packed::pack(&obj) {
            Ok(p) => Cached::Packed(p),
            Err(e) => {
                tracing::warn!(error = %e, "object kept unencoded in the cache");
                Cached::Whole(Arc::new(obj))
            }
        }
    }

    /// A fresh copy of the object.
    pub fn get(&self) -> Result<K, serde_json::Error> {
        match self {
            Cached::Packed(p) => p.unpack(),
            Cached::Whole(w) => Ok((**w).clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSet;

    fn replica_set() -> ReplicaSet {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": "web-6d4b", "namespace": "prod", "uid": "u-1", "resourceVersion": "42",
                "generation": 3, "creationTimestamp": "2026-11-29T10:00:00Z",
                "labels": {"app": "web", "rollouts-pod-template-hash": "6d4b"},
                "annotations": {"rollout.argoproj.io/revision": "2"},
                "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                    "name": "web", "uid": "r-1", "controller": true, "blockOwnerDeletion": true}]
            },
            "spec": {
                "replicas": 2,
                "minReadySeconds": 5,
                "selector": {"matchLabels": {"app": "web", "rollouts-pod-template-hash": "6d4b"}},
                "template": {
                    "metadata": {"labels": {"app": "web", "rollouts-pod-template-hash": "6d4b"}},
                    "spec": {"containers": [{"name": "app", "image": "web:2",
                        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                        "ports": [{"containerPort": 8080}]}],
                        "terminationGracePeriodSeconds": 30}
                }
            },
            "status": {"replicas": 2, "readyReplicas": 2, "availableReplicas": 1,
                "fullyLabeledReplicas": 2, "observedGeneration": 3}
        }))
        .expect("a valid ReplicaSet")
    }

    #[test]
    fn unpacking_gives_back_an_equal_object() {
        let rs = replica_set();
        let packed = Packed::pack(&rs).expect("encodes");
        assert_eq!(packed.unpack().expect("decodes"), rs);
        assert_eq!(Cached::new(rs.clone()).get().expect("decodes"), rs);
    }

    fn round_trips<K>(yaml: &str)
    where
        K: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        for doc in serde_yaml::Deserializer::from_str(yaml) {
            let obj = K::deserialize(doc).expect("a valid test object");
            let packed = Packed::pack(&obj).expect("encodes");
            assert_eq!(packed.unpack().expect("decodes"), obj);
        }
    }

    #[test]
    fn every_field_of_the_api_types_survives_packing() {
        use sluice_api::analysis::AnalysisRun;
        use sluice_api::experiment::Experiment;
        use sluice_api::rollout::Rollout;
        round_trips::<Rollout>(include_str!(
            "../../sluice-api/src/testdata/canary-rollout.yaml"
        ));
        round_trips::<Rollout>(include_str!(
            "../../sluice-api/src/testdata/bluegreen-rollout.yaml"
        ));
        round_trips::<AnalysisRun>(include_str!(
            "../../sluice-api/src/testdata/analysis-run.yaml"
        ));
        round_trips::<Experiment>(include_str!(
            "../../sluice-api/src/testdata/experiment.yaml"
        ));
    }

    #[test]
    fn the_encoding_is_a_fraction_of_the_struct_it_replaces() {
        let rs = replica_set();
        let packed = Packed::pack(&rs).expect("encodes");
        // The struct alone, without any of its heap parts, is larger than the encoding.
        assert!(
            packed.len() < std::mem::size_of::<ReplicaSet>(),
            "{} encoded bytes vs {} inline",
            packed.len(),
            std::mem::size_of::<ReplicaSet>()
        );
    }

    #[test]
    fn clones_share_the_encoding() {
        let packed = Packed::pack(&replica_set()).expect("encodes");
        let copy = packed.clone();
        assert!(Arc::ptr_eq(&packed.bytes, &copy.bytes));
    }
}
