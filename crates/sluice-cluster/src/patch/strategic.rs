//! Strategic merge patch (`application/strategic-merge-patch+json`) for built-in kinds.
//!
//! Semantics follow k8s.io/apimachinery `strategicpatch` as the apiserver runs it
//! (`MergeParallelList` and `IgnoreUnmatchedNulls` on):
//! - maps merge recursively and `null` deletes a key;
//! - a list merges only when its field has `patchStrategy: merge` upstream; lists of
//!   objects then match elements by the field's merge key, primitive lists are a set
//!   union; every other list is replaced;
//! - `$patch: replace` replaces the enclosing map (or, as a list element, the whole
//!   list); `$patch: delete` empties a map or deletes the list elements with that merge
//!   key; `$retainKeys` drops keys of the original that are not listed;
//!   `$setElementOrder/<field>` fixes the final order of a merged list;
//!   `$deleteFromPrimitiveList/<field>` removes values from a merged primitive list;
//! - values copied verbatim from the patch lose their nulls and directives, as they do
//!   when the real server decodes the result into its Go types.
//!
//! Merge keys live in one table, [`FIELDS`], a small type graph of the upstream Go
//! structs' `patchStrategy`/`patchMergeKey` tags for the kinds the embedded cluster
//! serves. Unknown fields behave like untagged Go fields: maps merge, lists replace.
//!
//! Deviations: errors the real server answers with 500 (e.g. an element without its merge
//! key) are reported as 422 Invalid with the same message. Upstream's element order
//! after a `$setElementOrder` merge with deletions depends on Go slice aliasing; that is
//! reproduced ([`live_order_after_go_merge`]) for lists of objects.

use super::{PatchError, go_type_name};
use serde_json::{Map, Value};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER_PREFIX: &str = "$setElementOrder/";
const DELETE_PRIMITIVE_PREFIX: &str = "$deleteFromPrimitiveList/";

const ERR_RETAIN_KEYS: &str = "invalid patch format of retainKeys";
const ERR_SET_ORDER: &str = "invalid patch format of setElementOrder list";
const ERR_LIST_OF_LISTS: &str = "lists of lists are not supported";

/// A node of the patch-metadata type graph; `None` is a type without tagged fields.
pub(super) type Ty = Option<&'static str>;

/// One tagged (or typed) field: (parent type, field, child type, merge key).
/// A merge key of `Some("")` marks a primitive list with `patchStrategy: merge`;
/// `None` means the list (if it is one) is replaced.
type FieldMeta = (&'static str, &'static str, Ty, Option<&'static str>);

/// Upstream `patchStrategy:"merge"` / `patchMergeKey` tags (k8s.io/api), plus the struct
/// edges needed to reach them from each kind's root.
const FIELDS: &[FieldMeta] = &[
    ("ObjectMeta", "finalizers", None, Some("")),
    ("ObjectMeta", "ownerReferences", None, Some("uid")),
    ("Pod", "spec", Some("PodSpec"), None),
    ("Pod", "status", Some("PodStatus"), None),
    ("PodTemplate", "template", Some("PodTemplateSpec"), None),
    ("PodTemplateSpec", "metadata", Some("ObjectMeta"), None),
    ("PodTemplateSpec", "spec", Some("PodSpec"), None),
    ("PodSpec", "containers", Some("Container"), Some("name")),
    ("PodSpec", "initContainers", Some("Container"), Some("name")),
    (
        "PodSpec",
        "ephemeralContainers",
        Some("Container"),
        Some("name"),
    ),
    ("PodSpec", "volumes", None, Some("name")),
    ("PodSpec", "imagePullSecrets", None, Some("name")),
    ("PodSpec", "hostAliases", None, Some("ip")),
    (
        "PodSpec",
        "topologySpreadConstraints",
        None,
        Some("topologyKey"),
    ),
    ("PodSpec", "resourceClaims", None, Some("name")),
    ("PodSpec", "schedulingGates", None, Some("name")),
    ("Container", "ports", None, Some("containerPort")),
    ("Container", "env", None, Some("name")),
    ("Container", "volumeMounts", None, Some("mountPath")),
    ("Container", "volumeDevices", None, Some("devicePath")),
    ("PodStatus", "conditions", None, Some("type")),
    ("PodStatus", "podIPs", None, Some("ip")),
    ("PodStatus", "hostIPs", None, Some("ip")),
    ("PodStatus", "resourceClaimStatuses", None, Some("name")),
    ("ServiceAccount", "secrets", None, Some("name")),
    ("Status", "conditions", None, Some("type")),
    ("Workload", "spec", Some("WorkloadSpec"), None),
    ("Workload", "status", Some("Status"), None),
    ("WorkloadSpec", "template", Some("PodTemplateSpec"), None),
    ("Job", "spec", Some("JobSpec"), None),
    ("Job", "status", Some("Status"), None),
    ("JobSpec", "template", Some("PodTemplateSpec"), None),
    ("CronJob", "spec", Some("CronJobSpec"), None),
    ("CronJobSpec", "jobTemplate", Some("JobTemplate"), None),
    ("JobTemplate", "metadata", Some("ObjectMeta"), None),
    ("JobTemplate", "spec", Some("JobSpec"), None),
    ("Service", "spec", Some("ServiceSpec"), None),
    ("Service", "status", Some("Status"), None),
    ("ServiceSpec", "ports", None, Some("port")),
    ("WithStatus", "status", Some("Status"), None),
];

/// The root type of each built-in kind; kinds not listed only get `metadata` rules.
pub(super) fn root_type(kind: &str) -> &'static str {
    match kind {
        "Pod" => "Pod",
        "PodTemplate" => "PodTemplate",
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" | "ReplicationController" => {
            "Workload"
        }
        "Job" => "Job",
        "CronJob" => "CronJob",
        "Service" => "Service",
        "ServiceAccount" => "ServiceAccount",
        "Namespace" | "HorizontalPodAutoscaler" | "PodDisruptionBudget" | "Node" | "Ingress" => {
            "WithStatus"
        }
        _ => "Object",
    }
}

const ROOT_TYPES: &[&str] = &[
    "Pod",
    "PodTemplate",
    "Workload",
    "Job",
    "CronJob",
    "Service",
    "ServiceAccount",
    "WithStatus",
    "Object",
];

/// Child type and merge key of `field` inside a value of type `ty`.
pub(super) fn lookup(ty: Ty, field: &str) -> (Ty, Option<&'static str>) {
    let Some(ty) = ty else { return (None, None) };
    if field == "metadata" && ROOT_TYPES.contains(&ty) {
        return (Some("ObjectMeta"), None);
    }
    FIELDS
        .iter()
        .find(|(parent, name, _, _)| *parent == ty && *name == field)
        .map(|&(_, _, child, key)| (child, key))
        .unwrap_or((None, None))
}

/// Error classes of the strategic merge engine, by the status the apiserver returns.
enum SmpError {
    BadRequest(String),
    Unprocessable(String),
}

impl From<SmpError> for PatchError {
    fn from(e: SmpError) -> Self {
        match e {
            SmpError::BadRequest(m) => PatchError::Malformed(m),
            SmpError::Unprocessable(m) => PatchError::Invalid(m),
        }
    }
}

type Result<T> = std::result::Result<T, SmpError>;

fn unprocessable(msg: impl Into<String>) -> SmpError {
    SmpError::Unprocessable(msg.into())
}

pub(super) fn apply(
    current: &Value,
    body: &[u8],
    kind: &str,
) -> std::result::Result<Value, PatchError> {
    let patch: Value =
        serde_json::from_slice(body).map_err(|e| PatchError::Malformed(e.to_string()))?;
    let patch = match patch {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        other => {
            return Err(PatchError::Malformed(format!(
                "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                go_type_name(&other)
            )));
        }
    };
    let original = match current {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    let merged = merge_map(original, patch, Some(root_type(kind)))?;
    Ok(Value::Object(merged))
}

fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    ty: Ty,
) -> Result<Map<String, Value>> {
    if let Some(directive) = patch.remove(DIRECTIVE) {
        return match directive.as_str() {
            Some("replace") => Ok(clean_map(patch, Clean::TypedDecode)),
            Some("delete") => Ok(Map::new()),
            _ => Err(unprocessable(format!(
                "unknown patch type: {} in map: {}",
                display_scalar(&directive),
                Value::Object(patch)
            ))),
        };
    }
    apply_retain_keys(&mut original, &mut patch)?;
    apply_set_element_order(&mut original, &mut patch, ty)?;

    for (key, patch_v) in patch {
        let (field, is_delete_list) = match key.strip_prefix(DELETE_PRIMITIVE_PREFIX) {
            Some(field) => (field.to_string(), true),
            None if key.starts_with('$') => continue,
            None => (key, false),
        };
        if patch_v.is_null() {
            original.remove(&field);
            continue;
        }
        let Some(orig_v) = original.remove(&field) else {
            if !is_delete_list && let Some(v) = clean(patch_v, Clean::RemoveDirectives) {
                original.insert(field, v);
            }
            continue;
        };
        let (child, merge_key) = lookup(ty, &field);
        let merged = match (orig_v, patch_v) {
            (Value::Object(o), Value::Object(p)) => Some(Value::Object(merge_map(o, p, child)?)),
            (Value::Array(o), Value::Array(p)) => match merge_key {
                Some(mk) => Some(Value::Array(merge_slice(o, p, child, mk, is_delete_list)?)),
                None => clean(Value::Array(p), Clean::TypedDecode),
            },
            (o, p) if std::mem::discriminant(&o) != std::mem::discriminant(&p) => {
                if is_delete_list {
                    Some(o)
                } else {
                    clean(p, Clean::RemoveDirectives)
                }
            }
            (_, p) => Some(p),
        };
        if let Some(v) = merged {
            original.insert(field, v);
        }
    }
    Ok(original)
}

fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<()> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(SmpError::BadRequest(ERR_RETAIN_KEYS.into()));
    };
    let listed = |k: &str| retain.iter().any(|r| r.as_str() == Some(k));
    for (k, v) in patch.iter() {
        let directive = k.starts_with(DELETE_PRIMITIVE_PREFIX) || k.starts_with(SET_ORDER_PREFIX);
        if !v.is_null() && !directive && !listed(k) {
            return Err(SmpError::BadRequest(ERR_RETAIN_KEYS.into()));
        }
    }
    original.retain(|k, _| listed(k));
    Ok(())
}

/// Handles every `$setElementOrder/<field>` of one map: merges that field's list now and
/// orders it, then drops the list from the patch so the main loop does not merge it again.
fn apply_set_element_order(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    ty: Ty,
) -> Result<()> {
    let keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ORDER_PREFIX))
        .cloned()
        .collect();
    for key in keys {
        let order = patch.remove(&key).unwrap_or(Value::Null);
        let Value::Array(order) = order else {
            return Err(SmpError::BadRequest(ERR_SET_ORDER.into()));
        };
        let field = &key[SET_ORDER_PREFIX.len()..];
        if field.is_empty() {
            return Err(SmpError::BadRequest(ERR_SET_ORDER.into()));
        }
        let orig_list = match original.get(field) {
            None => None,
            Some(Value::Array(a)) => Some(a.clone()),
            Some(_) => return Err(SmpError::BadRequest(ERR_SET_ORDER.into())),
        };
        let patch_list = match patch.get(field) {
            None => None,
            Some(Value::Array(a)) => Some(a.clone()),
            Some(_) => return Err(SmpError::BadRequest(ERR_SET_ORDER.into())),
        };
        let (child, merge_key) = lookup(ty, field);
        let mk = merge_key.unwrap_or("");
        validate_against_order(patch_list.as_deref().unwrap_or(&[]), &order, mk)?;
        let patch_len = patch_list.as_ref().map_or(0, Vec::len);
        let mut server_order = None;
        let merged = match (&orig_list, patch_list) {
            (None, None) => continue,
            (Some(o), None) => o.clone(),
            (None, Some(p)) => clean_list(p, Clean::RemoveDirectives),
            (Some(o), Some(p)) => match merge_key {
                Some(mk) => {
                    if !mk.is_empty() && o.iter().chain(&p).all(Value::is_object) {
                        server_order = Some(live_order_after_go_merge(o, &p, mk));
                    }
                    merge_slice(o.clone(), p, child, mk, false)?
                }
                None => clean_list(p, Clean::TypedDecode),
            },
        };
        let orig_list = orig_list.unwrap_or_default();
        let server_order = server_order.unwrap_or_else(|| orig_list.clone());
        if orig_list.is_empty() && patch_len == 0 {
            // Upstream derives the element type from these two lists and fails without one.
            return Err(unprocessable("no elements in any of the given slices"));
        }
        let maps = orig_list.iter().chain(order.iter()).any(Value::is_object);
        let key_for_order = if maps { mk } else { "" };
        let (in_order, server_only) = partition(merged, &order, key_for_order)?;
        let ordered = normalize_order(in_order, server_only, &order, &server_order, key_for_order)?;
        original.insert(field.to_string(), Value::Array(ordered));
        patch.remove(field);
    }
    Ok(())
}

/// The live list as upstream sees it when it orders a `$setElementOrder` merge.
///
/// Upstream merges into the live list in place: a deletion shifts later elements left and
/// an added element is appended into the freed slot of the same Go backing array, so the
/// list it later orders server-only elements by is the live list with deleted slots
/// overwritten by added elements. Clients observe the resulting order, so reproduce it.
fn live_order_after_go_merge(live: &[Value], patch: &[Value], mk: &str) -> Vec<Value> {
    // `visible` is the original backing array (what the caller's slice still shows);
    // `current` is the slice upstream keeps merging into.
    let mut visible = live.to_vec();
    let mut current = live.to_vec();
    for v in patch.iter().filter(|v| is_delete_element(v)) {
        let Some(key) = v.get(mk) else { continue };
        while let Some(k) = current.iter().position(|o| o.get(mk) == Some(key)) {
            // `append(s[:k], s[k+1:]...)` shifts left in place; the old last slot keeps
            // its value.
            current.remove(k);
            for (i, item) in current.iter().enumerate().skip(k) {
                visible[i] = item.clone();
            }
        }
    }
    let replace = patch
        .iter()
        .any(|v| v.get(DIRECTIVE).and_then(Value::as_str) == Some("replace"));
    if replace {
        return visible;
    }
    for v in patch.iter().filter(|v| v.get(DIRECTIVE).is_none()) {
        let Some(key) = v.get(mk) else { continue };
        if current.iter().any(|o| o.get(mk) == Some(key)) {
            continue;
        }
        if let Some(slot) = visible.get_mut(current.len()) {
            *slot = v.clone();
        }
        current.push(v.clone());
    }
    visible
}

/// The patch list must be a subsequence of the `$setElementOrder` list (ignoring
/// deletions and directive elements), or the client computed them from different data.
fn validate_against_order(patch_list: &[Value], order: &[Value], mk: &str) -> Result<()> {
    if patch_list.is_empty() || order.is_empty() {
        return Ok(());
    }
    let relevant: Vec<&Value> = patch_list
        .iter()
        .filter(|v| mk.is_empty() || !is_delete_element(v))
        .collect();
    let (mut pi, mut oi) = (0, 0);
    while pi < relevant.len() && oi < order.len() {
        if relevant[pi].get(DIRECTIVE).is_some() {
            pi += 1;
            continue;
        }
        if same_item(relevant[pi], &order[oi], mk)? {
            pi += 1;
        }
        oi += 1;
    }
    if pi < relevant.len() {
        return Err(unprocessable(format!(
            "The order in patch list:\n{}\n doesn't match $setElementOrder list:\n{}\n",
            Value::Array(patch_list.to_vec()),
            Value::Array(order.to_vec())
        )));
    }
    Ok(())
}

fn is_delete_element(v: &Value) -> bool {
    v.get(DIRECTIVE).and_then(Value::as_str) == Some("delete")
}

fn no_merge_key(v: &Value, mk: &str) -> SmpError {
    unprocessable(format!(
        "map: {v} does not contain declared merge key: {mk}"
    ))
}

/// Whether two list items are "the same element": equal merge keys, or equal primitives.
fn same_item(a: &Value, b: &Value, mk: &str) -> Result<bool> {
    if mk.is_empty() {
        return Ok(a == b);
    }
    let ka = a.get(mk).ok_or_else(|| no_merge_key(a, mk))?;
    let kb = b.get(mk).ok_or_else(|| no_merge_key(b, mk))?;
    Ok(ka == kb)
}

/// Position of `item` in `list`, matching maps by merge key and primitives by value.
fn index_of(list: &[Value], item: &Value, mk: &str) -> Option<usize> {
    if mk.is_empty() {
        return list.iter().position(|v| v == item);
    }
    let key = item.get(mk)?;
    list.iter().position(|v| v.get(mk) == Some(key))
}

fn partition(merged: Vec<Value>, by: &[Value], mk: &str) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut present = Vec::new();
    let mut server_only = Vec::new();
    for v in merged {
        if !mk.is_empty() && v.get(mk).is_none() {
            return Err(no_merge_key(&v, mk));
        }
        if index_of(by, &v, mk).is_some() {
            present.push(v);
        } else {
            server_only.push(v);
        }
    }
    Ok((present, server_only))
}

/// Orders a merged list: items named by the patch (or `$setElementOrder`) keep that
/// order, server-only items keep the live order, and the two interleave by live order.
fn normalize_order(
    mut patch_items: Vec<Value>,
    mut server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    mk: &str,
) -> Result<Vec<Value>> {
    sort_by_order(&mut patch_items, patch_order, mk);
    sort_by_order(&mut server_only, server_order, mk);
    Ok(interleave(server_only, patch_items, server_order, mk))
}

fn sort_by_order(items: &mut [Value], order: &[Value], mk: &str) {
    items.sort_by_key(|v| index_of(order, v, mk).unwrap_or(usize::MAX));
}

/// Inserts each `left` item before the first `right` item that comes after it in the
/// live order; both inputs keep their relative order.
fn interleave(left: Vec<Value>, right: Vec<Value>, server_order: &[Value], mk: &str) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => out.extend(left.next()),
            (None, Some(_)) => out.extend(right.next()),
            (Some(l), Some(r)) => {
                let li = index_of(server_order, l, mk);
                let ri = index_of(server_order, r, mk);
                let left_first = matches!((li, ri), (Some(a), Some(b)) if a < b);
                if left_first {
                    out.extend(left.next());
                } else {
                    out.extend(right.next());
                }
            }
        }
    }
    out
}

/// What every element of two lists is: `Some(true)` maps, `Some(false)` primitives,
/// `None` for two empty lists.
fn element_kind(a: &[Value], b: &[Value]) -> Result<Option<bool>> {
    let mut kind: Option<&Value> = None;
    for v in a.iter().chain(b) {
        if v.is_array() {
            return Err(unprocessable(ERR_LIST_OF_LISTS));
        }
        match kind {
            None => kind = Some(v),
            Some(k) if std::mem::discriminant(k) != std::mem::discriminant(v) => {
                return Err(unprocessable(format!(
                    "list element types are not identical: {} {}",
                    Value::Array(a.to_vec()),
                    Value::Array(b.to_vec())
                )));
            }
            Some(_) => {}
        }
    }
    Ok(kind.map(Value::is_object))
}

fn merge_slice(
    original: Vec<Value>,
    patch: Vec<Value>,
    elem_ty: Ty,
    mk: &str,
    is_delete_list: bool,
) -> Result<Vec<Value>> {
    let Some(maps) = element_kind(&original, &patch)? else {
        return Ok(original);
    };
    if !maps {
        if is_delete_list {
            return Ok(original
                .into_iter()
                .filter(|v| !patch.contains(v))
                .collect());
        }
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for v in original.iter().chain(patch.iter()) {
            if !merged.contains(v) {
                merged.push(v.clone());
            }
        }
        let (in_patch, server_only) = partition(merged, &patch, "")?;
        return normalize_order(in_patch, server_only, &patch, &original, "");
    }
    if mk.is_empty() {
        return Err(unprocessable(
            "cannot merge lists without merge key for type struct",
        ));
    }

    // Directive elements first: deletions by merge key, or a replace of the whole list.
    let mut original = original;
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for v in patch {
        match v.get(DIRECTIVE) {
            None => plain.push(v),
            Some(Value::String(d)) if d == "delete" => {
                let key = v.get(mk).ok_or_else(|| no_merge_key(&v, mk))?;
                original.retain(|o| o.get(mk) != Some(key));
            }
            Some(Value::String(d)) if d == "replace" => replace = true,
            Some(Value::String(d)) if d == "merge" => {
                return Err(unprocessable(
                    "merging lists cannot yet be specified in the patch",
                ));
            }
            Some(other) => {
                return Err(unprocessable(format!(
                    "unknown patch type: {} in map: {v}",
                    display_scalar(other)
                )));
            }
        }
    }
    if replace {
        return Ok(clean_list(plain, Clean::TypedDecode));
    }

    let server_order = original.clone();
    let mut merged = original;
    for v in &plain {
        let key = v.get(mk).ok_or_else(|| no_merge_key(v, mk))?;
        let mut found = None;
        for (i, o) in merged.iter().enumerate() {
            if !o.is_object() {
                return Err(unprocessable(format!("value for key {i} is not a map.")));
            }
            if o.get(mk) == Some(key) {
                found = Some(i);
                break;
            }
        }
        // element_kind checked that every element of both lists is an object.
        match (found, v) {
            (Some(i), Value::Object(p)) => {
                if let Value::Object(o) = std::mem::take(&mut merged[i]) {
                    merged[i] = Value::Object(merge_map(o, p.clone(), elem_ty)?);
                }
            }
            _ => merged.extend(clean(v.clone(), Clean::TypedDecode)),
        }
    }
    let (in_patch, server_only) = partition(merged, &plain, mk)?;
    normalize_order(in_patch, server_only, &plain, &server_order, mk)
}

fn display_scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// How much of a patch value taken as-is survives.
#[derive(Clone, Copy)]
enum Clean {
    /// Only what decoding into the Go types drops: `null` fields and `$`-keys.
    TypedDecode,
    /// Upstream's `removeDirectives` on top: maps carrying `$patch` vanish entirely.
    RemoveDirectives,
}

/// A patch value taken as-is, minus what upstream drops before storing it; `None` when
/// the value itself is a directive map that `RemoveDirectives` discards.
fn clean(v: Value, mode: Clean) -> Option<Value> {
    match v {
        Value::Object(m) => {
            if matches!(mode, Clean::RemoveDirectives) && m.contains_key(DIRECTIVE) {
                return None;
            }
            Some(Value::Object(clean_map(m, mode)))
        }
        Value::Array(a) => Some(Value::Array(clean_list(a, mode))),
        other => Some(other),
    }
}

fn clean_map(m: Map<String, Value>, mode: Clean) -> Map<String, Value> {
    m.into_iter()
        .filter(|(k, v)| !k.starts_with('$') && !v.is_null())
        .filter_map(|(k, v)| clean(v, mode).map(|v| (k, v)))
        .collect()
}

fn clean_list(a: Vec<Value>, mode: Clean) -> Vec<Value> {
    a.into_iter().filter_map(|v| clean(v, mode)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn smp(kind: &str, original: Value, patch: Value) -> std::result::Result<Value, PatchError> {
        apply(&original, patch.to_string().as_bytes(), kind)
    }

    fn pod_spec(spec: Value) -> Value {
        json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"template":{"spec":spec}}})
    }

    fn c(name: &str, image: &str) -> Value {
        json!({"name":name,"image":image})
    }

    /// (what, kind, original, patch, expected)
    #[test]
    fn strategic_merge_golden_cases() {
        let cases: Vec<(&str, &str, Value, Value, Value)> = vec![
            (
                "kubectl apply: image change with $setElementOrder keeps other containers and order",
                "Deployment",
                pod_spec(json!({"containers":[c("app","v1"),c("side","s1")]})),
                json!({"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"app"},{"name":"side"}],"containers":[{"image":"v2","name":"app"}]}}}}),
                pod_spec(json!({"containers":[c("app","v2"),c("side","s1")]})),
            ),
            (
                "$setElementOrder alone reorders a merged list",
                "Deployment",
                pod_spec(json!({"containers":[c("app","v1"),c("side","s1")]})),
                json!({"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"side"},{"name":"app"}]}}}}),
                pod_spec(json!({"containers":[c("side","s1"),c("app","v1")]})),
            ),
            (
                "kubectl apply adds a container at the position $setElementOrder gives",
                "Deployment",
                pod_spec(json!({"containers":[c("app","v1")]})),
                json!({"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"app"},{"name":"new"}],"containers":[{"image":"n1","name":"new"}]}}}}),
                pod_spec(json!({"containers":[c("app","v1"),c("new","n1")]})),
            ),
            (
                "kubectl apply deletes a container with $patch: delete",
                "Deployment",
                pod_spec(json!({"containers":[c("app","v1"),c("side","s1")]})),
                json!({"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"app"}],"containers":[{"$patch":"delete","name":"side"}]}}}}),
                pod_spec(json!({"containers":[c("app","v1")]})),
            ),
            (
                "env var deleted with $patch: delete inside a matched container",
                "Deployment",
                pod_spec(
                    json!({"containers":[{"name":"app","env":[{"name":"A","value":"1"},{"name":"B","value":"2"}]}]}),
                ),
                json!({"spec":{"template":{"spec":{"containers":[{"name":"app","env":[{"name":"B","$patch":"delete"}]}]}}}}),
                pod_spec(json!({"containers":[{"name":"app","env":[{"name":"A","value":"1"}]}]})),
            ),
            (
                "env var value changed by name, others kept",
                "Deployment",
                pod_spec(
                    json!({"containers":[{"name":"app","env":[{"name":"A","value":"1"},{"name":"B","value":"2"}]}]}),
                ),
                json!({"spec":{"template":{"spec":{"containers":[{"name":"app","env":[{"name":"B","value":"3"}]}]}}}}),
                pod_spec(
                    json!({"containers":[{"name":"app","env":[{"name":"A","value":"1"},{"name":"B","value":"3"}]}]}),
                ),
            ),
            (
                "kubectl patch without $setElementOrder puts new elements before server-only ones",
                "Deployment",
                pod_spec(json!({"containers":[{"name":"app","env":[{"name":"A","value":"1"}]}]})),
                json!({"spec":{"template":{"spec":{"containers":[{"name":"app","env":[{"name":"C","value":"3"}]}]}}}}),
                pod_spec(
                    json!({"containers":[{"name":"app","env":[{"name":"C","value":"3"},{"name":"A","value":"1"}]}]}),
                ),
            ),
            (
                "container ports merge by containerPort, volumeMounts by mountPath",
                "Pod",
                json!({"spec":{"containers":[{"name":"app","ports":[{"containerPort":80,"name":"http"}],"volumeMounts":[{"mountPath":"/a","name":"a"}]}]}}),
                json!({"spec":{"containers":[{"name":"app","ports":[{"containerPort":80,"name":"web"}],"volumeMounts":[{"mountPath":"/a","readOnly":true}]}]}}),
                json!({"spec":{"containers":[{"name":"app","ports":[{"containerPort":80,"name":"web"}],"volumeMounts":[{"mountPath":"/a","name":"a","readOnly":true}]}]}}),
            ),
            (
                "Service ports merge by port",
                "Service",
                json!({"spec":{"ports":[{"port":80,"targetPort":8080},{"port":443,"targetPort":8443}]}}),
                json!({"spec":{"ports":[{"port":443,"targetPort":9443}]}}),
                json!({"spec":{"ports":[{"port":80,"targetPort":8080},{"port":443,"targetPort":9443}]}}),
            ),
            (
                "tolerations have no patch strategy and are replaced",
                "Pod",
                json!({"spec":{"tolerations":[{"key":"a"},{"key":"b"}]}}),
                json!({"spec":{"tolerations":[{"key":"c"}]}}),
                json!({"spec":{"tolerations":[{"key":"c"}]}}),
            ),
            (
                "container args are atomic",
                "Pod",
                json!({"spec":{"containers":[{"name":"app","args":["a","b"]}]}}),
                json!({"spec":{"containers":[{"name":"app","args":["c"]}]}}),
                json!({"spec":{"containers":[{"name":"app","args":["c"]}]}}),
            ),
            (
                "finalizers are a merged primitive list",
                "ConfigMap",
                json!({"metadata":{"finalizers":["a","b"]}}),
                json!({"metadata":{"finalizers":["b","c"]}}),
                json!({"metadata":{"finalizers":["a","b","c"]}}),
            ),
            (
                "$deleteFromPrimitiveList removes finalizers",
                "Pod",
                json!({"metadata":{"finalizers":["a","b","c"]}}),
                json!({"metadata":{"$deleteFromPrimitiveList/finalizers":["b"]}}),
                json!({"metadata":{"finalizers":["a","c"]}}),
            ),
            (
                "ownerReferences merge by uid",
                "ReplicaSet",
                json!({"metadata":{"ownerReferences":[{"uid":"1","name":"a"}]}}),
                json!({"metadata":{"ownerReferences":[{"uid":"1","controller":true}]}}),
                json!({"metadata":{"ownerReferences":[{"uid":"1","name":"a","controller":true}]}}),
            ),
            (
                "status conditions merge by type",
                "Deployment",
                json!({"status":{"conditions":[{"type":"Available","status":"False"},{"type":"Progressing","status":"True"}]}}),
                json!({"status":{"conditions":[{"type":"Available","status":"True"}]}}),
                json!({"status":{"conditions":[{"type":"Available","status":"True"},{"type":"Progressing","status":"True"}]}}),
            ),
            (
                "$retainKeys clears the deployment strategy's other members",
                "Deployment",
                json!({"spec":{"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":1}}}}),
                json!({"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate","rollingUpdate":null}}}),
                json!({"spec":{"strategy":{"type":"Recreate"}}}),
            ),
            (
                "$retainKeys on a volume swaps its source",
                "Pod",
                json!({"spec":{"volumes":[{"name":"v","emptyDir":{}}]}}),
                json!({"spec":{"volumes":[{"$retainKeys":["configMap","name"],"name":"v","configMap":{"name":"cm"}}]}}),
                json!({"spec":{"volumes":[{"name":"v","configMap":{"name":"cm"}}]}}),
            ),
            (
                "$patch: replace on a map replaces it",
                "ConfigMap",
                json!({"metadata":{"labels":{"a":"1","b":"2"}}}),
                json!({"metadata":{"labels":{"$patch":"replace","c":"3"}}}),
                json!({"metadata":{"labels":{"c":"3"}}}),
            ),
            (
                "$patch: replace as a list element replaces the list",
                "Pod",
                json!({"spec":{"containers":[c("a","1"),c("b","1")]}}),
                json!({"spec":{"containers":[{"$patch":"replace"},c("z","9")]}}),
                json!({"spec":{"containers":[c("z","9")]}}),
            ),
            (
                "$patch: delete on a map empties it",
                "Deployment",
                json!({"spec":{"strategy":{"type":"Recreate"},"replicas":1}}),
                json!({"spec":{"strategy":{"$patch":"delete"}}}),
                json!({"spec":{"strategy":{},"replicas":1}}),
            ),
            (
                "null deletes a key; map values merge",
                "ConfigMap",
                json!({"data":{"a":"1","b":"2"},"metadata":{"annotations":{"x":"y"}}}),
                json!({"data":{"a":null,"c":"3"},"metadata":{"annotations":null}}),
                json!({"data":{"b":"2","c":"3"},"metadata":{}}),
            ),
            (
                "a new subtree loses its nulls and directives",
                "Pod",
                json!({"spec":{}}),
                json!({"spec":{"containers":[{"name":"a","image":null,"env":[{"name":"x","$patch":"delete"}]}]}}),
                json!({"spec":{"containers":[{"name":"a","env":[]}]}}),
            ),
            (
                "the rollout plugin's pause patch merges into a status",
                "Deployment",
                json!({"spec":{"paused":false,"replicas":3}}),
                json!({"spec":{"paused":true}}),
                json!({"spec":{"paused":true,"replicas":3}}),
            ),
            (
                "kubectl apply removing an env var: nested $setElementOrder and $patch: delete",
                "Deployment",
                pod_spec(
                    json!({"containers":[{"name":"app","image":"v1","env":[{"name":"A","value":"1"},{"name":"B","value":"2"}]}]}),
                ),
                json!({"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"app"}],"containers":[{"$setElementOrder/env":[{"name":"A"}],"env":[{"$patch":"delete","name":"B"}],"name":"app"}]}}}}),
                pod_spec(
                    json!({"containers":[{"name":"app","image":"v1","env":[{"name":"A","value":"1"}]}]}),
                ),
            ),
            (
                "kubectl apply adding a port keeps the $setElementOrder position",
                "Deployment",
                pod_spec(json!({"containers":[{"name":"app","ports":[{"containerPort":80}]}]})),
                json!({"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"app"}],"containers":[{"$setElementOrder/ports":[{"containerPort":443},{"containerPort":80}],"name":"app","ports":[{"containerPort":443}]}]}}}}),
                pod_spec(
                    json!({"containers":[{"name":"app","ports":[{"containerPort":443},{"containerPort":80}]}]}),
                ),
            ),
            (
                "ordered primitive list with a deletion: $setElementOrder and $deleteFromPrimitiveList together",
                "Pod",
                json!({"metadata":{"finalizers":["a","b","c"]}}),
                json!({"metadata":{"$setElementOrder/finalizers":["c","a","d"],"$deleteFromPrimitiveList/finalizers":["b"],"finalizers":["d"]}}),
                json!({"metadata":{"finalizers":["c","a","d"]}}),
            ),
            (
                "kubectl rollout restart adds a template annotation",
                "Deployment",
                pod_spec(json!({"containers":[c("app","v1")]})),
                json!({"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"2026-11-29T08:00:00Z"}}}}}),
                json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"2026-11-29T08:00:00Z"}},"spec":{"containers":[c("app","v1")]}}}}),
            ),
            (
                "kubectl apply replacing one container keeps a server-only one where upstream puts it",
                "Deployment",
                pod_spec(json!({"containers":[c("a","1"),c("c","1"),c("b","1")]})),
                json!({"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"a"},{"name":"d"}],"containers":[c("d","1"),{"$patch":"delete","name":"b"}]}}}}),
                pod_spec(json!({"containers":[c("a","1"),c("c","1"),c("d","1")]})),
            ),
            (
                "a deletion and more additions than freed slots (order as kubectl 1.32 computes it)",
                "Deployment",
                pod_spec(json!({"containers":[c("a","1"),c("s","1")]})),
                json!({"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"x"},{"name":"y"},{"name":"z"}],"containers":[c("x","1"),c("y","1"),c("z","1"),{"$patch":"delete","name":"a"}]}}}}),
                pod_spec(json!({"containers":[c("s","1"),c("x","1"),c("y","1"),c("z","1")]})),
            ),
            (
                "init containers of a CronJob's job template merge by name",
                "CronJob",
                json!({"spec":{"jobTemplate":{"spec":{"template":{"spec":{"initContainers":[c("i","1"),c("j","1")]}}}}}}),
                json!({"spec":{"jobTemplate":{"spec":{"template":{"spec":{"initContainers":[c("j","2")]}}}}}}),
                json!({"spec":{"jobTemplate":{"spec":{"template":{"spec":{"initContainers":[c("i","1"),c("j","2")]}}}}}}),
            ),
        ];
        for (what, kind, original, patch, want) in cases {
            assert_eq!(smp(kind, original, patch), Ok(want), "{what}");
        }
    }

    #[test]
    fn strategic_merge_errors_match_the_apiserver() {
        let spec = pod_spec(json!({"containers":[c("app","v1")]}));
        let cases: Vec<(&str, Value, PatchError)> = vec![
            (
                "element without its merge key",
                json!({"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}}),
                PatchError::Invalid(r#"map: {"image":"x"} does not contain declared merge key: name"#.into()),
            ),
            (
                "patch key missing from $retainKeys",
                json!({"spec":{"strategy":{"$retainKeys":["type"],"rollingUpdate":{}}}}),
                PatchError::Malformed("invalid patch format of retainKeys".into()),
            ),
            (
                "$retainKeys not a list",
                json!({"spec":{"strategy":{"$retainKeys":"type"}}}),
                PatchError::Malformed("invalid patch format of retainKeys".into()),
            ),
            (
                "$setElementOrder not a list",
                json!({"spec":{"template":{"spec":{"$setElementOrder/containers":{}}}}}),
                PatchError::Malformed("invalid patch format of setElementOrder list".into()),
            ),
            (
                "$patch: merge in a list",
                json!({"spec":{"template":{"spec":{"containers":[{"$patch":"merge","name":"app"}]}}}}),
                PatchError::Invalid("merging lists cannot yet be specified in the patch".into()),
            ),
            (
                "patch list out of $setElementOrder order",
                json!({"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"a"},{"name":"b"}],"containers":[{"name":"b"},{"name":"a"}]}}}}),
                PatchError::Invalid(
                    "The order in patch list:\n[{\"name\":\"b\"},{\"name\":\"a\"}]\n doesn't match $setElementOrder list:\n[{\"name\":\"a\"},{\"name\":\"b\"}]\n".into(),
                ),
            ),
            (
                "lists of lists",
                json!({"metadata":{"finalizers":[["a"]]}}),
                PatchError::Invalid("lists of lists are not supported".into()),
            ),
            (
                "non-object body",
                json!([1]),
                PatchError::Malformed("json: cannot unmarshal array into Go value of type map[string]interface {}".into()),
            ),
        ];
        let spec = {
            let mut s = spec;
            s["metadata"]["finalizers"] = json!(["x"]);
            s["spec"]["strategy"] = json!({"type": "Recreate"});
            s
        };
        for (what, patch, want) in cases {
            assert_eq!(smp("Deployment", spec.clone(), patch), Err(want), "{what}");
        }
    }

    /// 50 random Deployment patches in the shapes `kubectl apply`/`kubectl patch` send
    /// (merge-key lists, `$setElementOrder`, `$patch: delete|replace`, `$retainKeys`,
    /// `$deleteFromPrimitiveList`, nulls), with the results `kubectl 1.32 patch --local`
    /// computed using upstream's strategicpatch, after dropping what decoding into the Go
    /// types drops (`$`-keys, null fields).
    #[test]
    fn matches_kubectl_1_32_on_recorded_random_cases() {
        let cases = include_str!("testdata/smp_kubectl_1_32.jsonl");
        let mut n = 0;
        for line in cases.lines() {
            let case: Value = serde_json::from_str(line).unwrap();
            let got = smp(
                "Deployment",
                case["original"].clone(),
                case["patch"].clone(),
            );
            assert_eq!(got, Ok(case["kubectl"].clone()), "patch {}", case["patch"]);
            n += 1;
        }
        assert_eq!(n, 50);
    }

    fn arb_value(nulls: bool) -> impl Strategy<Value = Value> {
        let scalar = prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            (-5i64..5).prop_map(|n| json!(n)),
            "[a-c]{0,2}".prop_map(Value::String),
        ];
        let list = prop::collection::vec(scalar.clone(), 0..3).prop_map(Value::Array);
        let leaf = prop_oneof![4 => scalar, 1 => list];
        leaf.prop_recursive(3, 20, 4, move |inner| {
            let value = if nulls {
                prop_oneof![4 => inner, 1 => Just(Value::Null)].boxed()
            } else {
                inner.boxed()
            };
            prop::collection::btree_map("[a-d]", value, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect()))
        })
    }

    proptest::proptest! {
        /// Where no field has a patch strategy, a strategic merge patch is a JSON merge patch.
        #[test]
        fn without_tagged_fields_strategic_merge_equals_json_merge(
            original in arb_value(false),
            patch in arb_value(true),
        ) {
            let original = json!({"data": original});
            let patch = json!({"data": patch});
            let mut expected = original.clone();
            json_patch::merge(&mut expected, &patch);
            proptest::prop_assert_eq!(smp("ConfigMap", original, patch), Ok(expected));
        }
    }

    #[test]
    fn strategic_merge_on_a_custom_resource_is_415() {
        let ctx = super::super::PatchContext {
            kind: "Rollout",
            api_version: "argoproj.io/v1alpha1",
            builtin: false,
            field_manager: "kubectl",
            force: false,
            subresource: None,
        };
        let err = super::super::apply_patch(
            super::super::PatchType::Strategic,
            Some(&json!({})),
            b"{}",
            &ctx,
        )
        .unwrap_err();
        assert_eq!(
            err,
            PatchError::UnsupportedMediaType(
                "the body of the request was in an unknown format - accepted media types include: \
                 application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
                    .into()
            )
        );
    }
}
