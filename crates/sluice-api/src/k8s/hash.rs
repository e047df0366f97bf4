//! The pod-template hash and Kubernetes' "safe" encoding of generated names.
//!
//! Kubernetes (`controller.ComputeHash`) and Argo Rollouts (`hash.ComputePodTemplateHash`)
//! compute the `pod-template-hash` the same way: FNV-1a (32 bit) over the serialized template,
//! then, when the object has a `collisionCount`, eight more bytes holding that count as a
//! little-endian `uint32` (four bytes of value, four zero bytes), and finally the decimal
//! form of the sum mapped character by character into the safe alphabet
//! (`rand.SafeEncodeString`). Argo serializes the template as JSON, and so does Sluice.
//!
//! Sluice's JSON lists fields in key order where Go lists them in struct order, so the same
//! template gets a different hash than under Argo Rollouts (or under kube-controller-manager,
//! which prints the Go struct instead): that is why a ReplicaSet made by another controller is
//! matched by semantic template equality as well as by hash. Everything after the
//! serialization is byte-for-byte Kubernetes' rule, which the tests below pin with upstream's
//! own published value.

use std::io::Write;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde::Serialize;

use crate::common::POD_TEMPLATE_HASH_LABEL;

/// Kubernetes' alphabet for generated names and hashes: no vowels (no words) and no
/// look-alike characters (`rand.SafeEncodeString`, `rand.String`).
pub const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

const FNV_OFFSET: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

/// FNV-1a 32-bit as an `io::Write` sink, so JSON is hashed without an intermediate buffer.
#[derive(Debug, Clone, Copy)]
pub struct Fnv32a(u32);

impl Fnv32a {
    pub fn new() -> Self {
        Self(FNV_OFFSET)
    }

    /// The hash of everything written so far.
    pub fn sum(&self) -> u32 {
        self.0
    }
}

impl Default for Fnv32a {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for Fnv32a {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for &b in buf {
            self.0 ^= u32::from(b);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `rand.SafeEncodeString(fmt.Sprint(h))`: each decimal digit of `h` mapped into
/// [`SAFE_ALPHABET`] (byte value modulo the alphabet's length).
pub fn safe_encode(h: u32) -> String {
    h.to_string()
        .bytes()
        .map(|b| char::from(SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()]))
        .collect()
}

/// FNV-1a of `value`'s JSON, safe-encoded (Argo's step hash and similar fingerprints).
pub fn json_hash<T: Serialize + ?Sized>(value: &T) -> String {
    safe_encode(fnv_json(value, None))
}

/// The `pod-template-hash` of `template` for `collision_count` (`status.collisionCount`).
///
/// A hash label already on the template is ignored: a template taken from an existing
/// ReplicaSet (a `workloadRef` to a ReplicaSet, an adopted object) carries one, and it must
/// hash like the template it was made from.
pub fn pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let has_label = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref())
        .is_some_and(|l| l.contains_key(POD_TEMPLATE_HASH_LABEL));
    let h = if has_label {
        let mut t = template.clone();
        if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            labels.remove(POD_TEMPLATE_HASH_LABEL);
        }
        fnv_json(&t, collision_count)
    } else {
        fnv_json(template, collision_count)
    };
    safe_encode(h)
}

/// FNV-1a over `value`'s JSON followed by the collision count as Kubernetes writes it.
fn fnv_json<T: Serialize + ?Sized>(value: &T, collision_count: Option<i32>) -> u32 {
    let mut h = Fnv32a::new();
    // Plain data structures serialize into an infallible sink without error.
    serde_json::to_writer(&mut h, value).expect("serializing a Kubernetes object cannot fail");
    write_collision_count(&mut h, collision_count);
    h.sum()
}

/// `binary.LittleEndian.PutUint32` into an 8-byte buffer: the count's four bytes, then four
/// zero bytes. A negative count (invalid, but representable) wraps like Go's `uint32(x)`.
fn write_collision_count(h: &mut Fnv32a, collision_count: Option<i32>) {
    if let Some(c) = collision_count {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&(c as u32).to_le_bytes());
        h.write_all(&bytes).expect("hashing cannot fail");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(v: serde_json::Value) -> PodTemplateSpec {
        serde_json::from_value(v).unwrap()
    }

    fn app(image: &str) -> PodTemplateSpec {
        template(json!({
            "metadata": {"labels": {"app": "demo"}},
            "spec": {"containers": [{"name": "app", "image": image}]}
        }))
    }

    /// What Go's `json.Marshal` writes for the template of upstream's `TestHashUtils`
    /// (argo-rollouts `utils/hash/hash_test.go`), whose hash upstream pins as `7bb4fbc896`.
    const UPSTREAM_RED_TEMPLATE_JSON: &str = concat!(
        r#"{"metadata":{"creationTimestamp":null,"labels":{"name":"red"}},"#,
        r#""spec":{"containers":[{"name":"red","image":"red","resources":{},"#,
        r#""terminationMessagePath":"/dev/termination-log","imagePullPolicy":"Always"}],"#,
        r#""restartPolicy":"Always","dnsPolicy":"ClusterFirst","securityContext":{}}}"#
    );

    fn hash_bytes(bytes: &[u8], collision_count: Option<i32>) -> String {
        let mut h = Fnv32a::new();
        h.write_all(bytes).unwrap();
        write_collision_count(&mut h, collision_count);
        safe_encode(h.sum())
    }

    #[test]
    fn fnv1a_matches_reference_vectors() {
        for (input, expected) in [
            ("", 0x811c_9dc5u32),
            ("a", 0xe40c_292c),
            ("foobar", 0xbf9c_f968),
        ] {
            let mut h = Fnv32a::new();
            h.write_all(input.as_bytes()).unwrap();
            assert_eq!(h.sum(), expected, "{input:?}");
        }
    }

    #[test]
    fn safe_encoding_maps_each_decimal_digit() {
        // '0' is byte 48 → 48 % 27 = 21 → '4'; '1' → 22 → '5'; '9' → 57 % 27 = 3 → 'f'.
        assert_eq!(safe_encode(0), "4");
        assert_eq!(safe_encode(109), "54f");
        assert!(
            safe_encode(u32::MAX)
                .bytes()
                .all(|b| SAFE_ALPHABET.contains(&b))
        );
    }

    #[test]
    fn the_same_serialized_template_hashes_to_upstreams_published_value() {
        assert_eq!(
            hash_bytes(UPSTREAM_RED_TEMPLATE_JSON.as_bytes(), None),
            "7bb4fbc896"
        );
    }

    #[test]
    fn the_collision_count_is_eight_bytes_little_endian_like_kubernetes() {
        let json = UPSTREAM_RED_TEMPLATE_JSON.as_bytes();
        let mut by_hand = json.to_vec();
        by_hand.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(hash_bytes(json, Some(1)), hash_bytes(&by_hand, None));
        let mut big = json.to_vec();
        big.extend_from_slice(&[0x04, 0x03, 0x02, 0x01, 0, 0, 0, 0]);
        assert_eq!(hash_bytes(json, Some(0x0102_0304)), hash_bytes(&big, None));
        // A count of 0 is not "no count": Kubernetes still appends the eight bytes.
        assert_ne!(hash_bytes(json, Some(0)), hash_bytes(json, None));
    }

    #[test]
    fn the_template_hash_is_the_rule_applied_to_the_templates_json() {
        let t = app("nginx:1.25");
        let json = serde_json::to_vec(&t).unwrap();
        assert_eq!(pod_template_hash(&t, None), hash_bytes(&json, None));
        assert_eq!(pod_template_hash(&t, Some(3)), hash_bytes(&json, Some(3)));
    }

    #[test]
    fn pod_template_hash_is_stable_and_changes_with_the_template() {
        let a = pod_template_hash(&app("nginx:1.25"), None);
        assert_eq!(a, pod_template_hash(&app("nginx:1.25"), None));
        assert_ne!(a, pod_template_hash(&app("nginx:1.26"), None));
        assert!(a.len() <= 10 && !a.is_empty());
    }

    #[test]
    fn pod_template_hash_ignores_an_existing_hash_label() {
        let labelled = template(json!({
            "metadata": {"labels": {"app": "demo", "rollouts-pod-template-hash": "abc"}},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]}
        }));
        assert_eq!(
            pod_template_hash(&labelled, None),
            pod_template_hash(&app("nginx:1.25"), None)
        );
    }

    #[test]
    fn collision_count_changes_the_hash() {
        let t = app("nginx:1.25");
        let none = pod_template_hash(&t, None);
        let one = pod_template_hash(&t, Some(1));
        assert_ne!(none, one);
        assert_ne!(one, pod_template_hash(&t, Some(2)));
    }
}
