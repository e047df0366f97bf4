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
//!
//! The JSON is kept LZ4-compressed against a dictionary: an earlier object of the same type.
//! Objects of one kind share most of their text (every key, the defaulted fields, the owner's
//! spec copied into its ReplicaSets), so a bench ReplicaSet's 1,247 bytes of JSON take 193
//! and a Rollout's 2,426 take 272, at about 1 µs to compress and 0.3 µs to decompress (next
//! to 6–12 µs to parse the JSON). The first object of a type is its dictionary; an object
//! that compresses to more than half its size becomes the dictionary for the objects after
//! it, so the dictionary follows the shapes the cluster holds. An object keeps the dictionary
//! it was compressed with; a dictionary costs one object's JSON.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, OnceLock};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// LZ4 reads at most the last 64 KiB of a dictionary.
const DICTIONARY_MAX: usize = 64 * 1024;

/// The text the encodings of one type are compressed against.
#[derive(Debug)]
struct Dictionary(Box<[u8]>);

/// Every type's current dictionary.
fn dictionaries() -> std::sync::MutexGuard<'static, HashMap<&'static str, Arc<Dictionary>>> {
    static DICTIONARIES: OnceLock<Mutex<HashMap<&'static str, Arc<Dictionary>>>> = OnceLock::new();
    DICTIONARIES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

fn dictionary_of(json: &[u8]) -> Arc<Dictionary> {
    let tail = &json[json.len().saturating_sub(DICTIONARY_MAX)..];
    Arc::new(Dictionary(tail.into()))
}

/// The dictionary to compress an encoding of a `K` against (`json` itself, for the first).
fn dictionary<K>(json: &[u8]) -> Arc<Dictionary> {
    dictionaries()
        .entry(std::any::type_name::<K>())
        .or_insert_with(|| dictionary_of(json))
        .clone()
}

/// Make `json` the dictionary of the `K`s packed from now on. Objects packed before keep
/// the dictionary they were compressed with.
fn replace_dictionary<K>(json: &[u8]) {
    dictionaries().insert(std::any::type_name::<K>(), dictionary_of(json));
}

/// One object of type `K`, JSON-encoded and compressed (see the module docs). Cloning shares
/// the bytes.
pub struct Packed<K> {
    /// The JSON's length, then its LZ4 block.
    bytes: Arc<[u8]>,
    dictionary: Arc<Dictionary>,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Packed<K> {
    fn clone(&self) -> Self {
        Self {
            bytes: self.bytes.clone(),
            dictionary: self.dictionary.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> std::fmt::Debug for Packed<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Packed({} bytes)", self.bytes.len())
    }
}

impl<K> Packed<K> {
    fn compress(json: Vec<u8>) -> Self {
        let dictionary = dictionary::<K>(&json);
        let bytes = lz4_flex::block::compress_prepend_size_with_dict(&json, &dictionary.0);
        if bytes.len() * 2 > json.len() {
            // Less than half the text was found in the dictionary: this object is unlike the
            // one the dictionary was made of (the first of a new shape, or the first object
            // was an odd one). It becomes the dictionary, so the next ones like it compress.
            replace_dictionary::<K>(&json);
        }
        Self {
            bytes: bytes.into(),
            dictionary,
            kind: PhantomData,
        }
    }

    /// The object's JSON.
    fn json(&self) -> Vec<u8> {
        // Only this module writes `bytes`, always with `compress`: failing to decompress
        // them is a bug in this module, not bad input.
        lz4_flex::block::decompress_size_prepended_with_dict(&self.bytes, &self.dictionary.0)
            .expect("a packed object decompresses with the dictionary it was compressed with")
    }
}

impl<K: Serialize + DeserializeOwned> Packed<K> {
    /// Encode `obj`.
    pub fn pack(obj: &K) -> Result<Self, serde_json::Error> {
        Ok(Self::compress(serde_json::to_vec(obj)?))
    }

    /// Encode `obj`, a value of another type that encodes as a `K` (a `DynamicObject` kept
    /// as the JSON the planner reads, say).
    pub fn pack_from<T: Serialize>(obj: &T) -> Result<Self, serde_json::Error> {
        Ok(Self::compress(serde_json::to_vec(obj)?))
    }

    /// Encode an object that is still JSON, whatever it decodes to (see
    /// [`crate::undecoded`]).
    pub fn from_json(obj: &serde_json::Value) -> Result<Self, serde_json::Error> {
        Ok(Self::compress(serde_json::to_vec(obj)?))
    }

    /// Keep `json`, an object's JSON text, whatever it decodes to.
    pub fn from_json_text(json: Vec<u8>) -> Self {
        Self::compress(json)
    }

    /// Decode a fresh copy of the object.
    pub fn unpack(&self) -> Result<K, serde_json::Error> {
        serde_json::from_slice(&self.json())
    }

    /// Decode the encoding as another type (a part of the object).
    pub fn unpack_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.json())
    }

    /// Decode a fresh copy of the object; a failure names the field where decoding stopped.
    /// Tracking the path costs about a third of the decode, so it is paid only again for an
    /// object that failed to decode (the same bytes fail the same way).
    pub fn unpack_tracked(&self) -> Result<K, serde_path_to_error::Error<serde_json::Error>> {
        let json = self.json();
        serde_json::from_slice(&json).or_else(|_| {
            serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&json))
        })
    }

    /// Size of the encoding in bytes (compressed).
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
            Err(e) => Self::whole(obj, &e),
        }
    }

    /// [`Cached::new`] from a borrowed object: copied only in the (never seen) case that it
    /// does not encode.
    pub fn of(obj: &K) -> Self {
        match Packed::pack(obj) {
            Ok(p) => Cached::Packed(p),
            Err(e) => Self::whole(obj.clone(), &e),
        }
    }

    fn whole(obj: K, e: &serde_json::Error) -> Self {
        tracing::warn!(error = %e, "object kept unencoded in the cache");
        Cached::Whole(Arc::new(obj))
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

    /// A ReplicaSet under a type of its own, so other tests' ReplicaSets do not change its
    /// dictionary while this test runs.
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    #[serde(transparent)]
    struct OwnReplicaSet(ReplicaSet);

    #[test]
    fn objects_of_one_kind_are_kept_compressed_against_each_other() {
        let odd = OwnReplicaSet(ReplicaSet::default());
        let first = OwnReplicaSet(replica_set());
        let mut second = OwnReplicaSet(replica_set());
        let second_rs = &mut second.0;
        second_rs.metadata.name = Some("api-7f9c".into());
        second_rs.metadata.uid = Some("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0".into());
        second_rs.metadata.resource_version = Some("98765".into());
        let json = serde_json::to_vec(&second).expect("encodes").len();
        // The first object packed is an odd one: the next, unlike it, replaces it as the
        // dictionary, and the one after compresses against that.
        let packed_odd = Packed::pack(&odd).expect("encodes");
        let packed_first = Packed::pack(&first).expect("encodes");
        let packed = Packed::pack(&second).expect("encodes");
        assert!(
            packed.len() * 3 < json,
            "{} bytes kept for {json} bytes of JSON",
            packed.len()
        );
        assert_eq!(packed.unpack().expect("decodes"), second);
        assert_eq!(packed_first.unpack().expect("decodes"), first);
        assert_eq!(
            packed_odd.unpack().expect("decodes"),
            odd,
            "keeps its dictionary"
        );
    }

    /// A type of its own, so this test decides its dictionary.
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Blob {
        text: String,
    }

    #[test]
    fn objects_larger_than_the_dictionary_window_round_trip() {
        let big = |seed: u64| Blob {
            text: (0..40_000u64)
                .map(|i| format!("{:x}", (i * 2654435761 + seed) % 4093))
                .collect(),
        };
        let first = big(1);
        assert!(serde_json::to_vec(&first).expect("encodes").len() > DICTIONARY_MAX);
        let (a, b) = (Packed::pack(&first).expect("encodes"), big(7));
        let packed_b = Packed::pack(&b).expect("encodes");
        assert_eq!(a.unpack().expect("decodes"), first);
        assert_eq!(packed_b.unpack().expect("decodes"), b);
        assert_eq!(packed_b.unpack_tracked().expect("decodes"), b);
        assert_eq!(
            a.dictionary.0.len(),
            DICTIONARY_MAX,
            "only the window is kept"
        );
    }
}
