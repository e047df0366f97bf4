//! Field ownership: `metadata.managedFields` with `FieldsV1` sets, as server-side apply
//! and every other write record it.
//!
//! A field set is a tree whose edges are `FieldsV1` path elements: `f:<name>` for an
//! object field, `k:<json>` for an associative-list element (its merge key as a JSON
//! object), `v:<json>` for an element of a set-like primitive list. A node is a member of
//! the set when it is a leaf, or when it carries `.` (an associative-list element itself).
//!
//! Which lists are associative comes from the strategic merge table
//! ([`super::strategic::lookup`]) for built-in kinds; lists of custom resources and
//! untagged lists are atomic (owned as one leaf), like SMD treats lists without
//! `x-kubernetes-list-type`. Associative lists are keyed by the single strategic merge
//! key (upstream keys Service and container ports by `port`/`containerPort` *and*
//! `protocol`).

use super::PatchContext;
use super::strategic::{Ty, lookup, root_type};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// One node of a `FieldsV1` set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Node {
    pub member: bool,
    pub children: BTreeMap<String, Node>,
}

/// A path in a field set: `FieldsV1` element strings from the root.
pub(super) type Path = Vec<String>;

impl Node {
    pub fn from_fields_v1(v: &Value) -> Node {
        let Value::Object(m) = v else {
            return Node::default();
        };
        if m.is_empty() {
            return Node {
                member: true,
                children: BTreeMap::new(),
            };
        }
        let mut node = Node::default();
        for (k, child) in m {
            if k == "." {
                node.member = true;
            } else {
                node.children.insert(k.clone(), Node::from_fields_v1(child));
            }
        }
        node
    }

    pub fn to_fields_v1(&self) -> Value {
        let mut m = Map::new();
        if self.member && !self.children.is_empty() {
            m.insert(".".into(), json!({}));
        }
        for (k, c) in &self.children {
            m.insert(k.clone(), c.to_fields_v1());
        }
        Value::Object(m)
    }

    pub fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }

    /// Every member path, parents before children, in key order.
    pub fn members(&self) -> Vec<Path> {
        self.members_under(&[])
    }

    /// [`Node::members`] of this node taken as the node at `prefix`, with their full paths
    /// (the node itself included when it is a member and `prefix` is not the root).
    fn members_under(&self, prefix: &[String]) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect(&mut prefix.to_vec(), &mut out);
        out
    }

    fn collect(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        if self.member && !prefix.is_empty() {
            out.push(prefix.clone());
        }
        for (k, c) in &self.children {
            prefix.push(k.clone());
            c.collect(prefix, out);
            prefix.pop();
        }
    }

    /// Member paths that are leaves (no children): the values a manager sets directly.
    pub fn leaves(&self) -> Vec<Path> {
        self.members()
            .into_iter()
            .filter(|p| self.get(p).is_some_and(|n| n.children.is_empty()))
            .collect()
    }

    pub fn get(&self, path: &[String]) -> Option<&Node> {
        let mut cur = self;
        for p in path {
            cur = cur.children.get(p)?;
        }
        Some(cur)
    }

    pub fn contains(&self, path: &[String]) -> bool {
        self.get(path).is_some_and(|n| n.member)
    }

    /// Whether the set owns `path`, anything below it, or an atomic leaf above it.
    pub fn overlaps(&self, path: &[String]) -> bool {
        let mut cur = self;
        for p in path {
            if cur.member && cur.children.is_empty() && !std::ptr::eq(cur, self) {
                return true;
            }
            match cur.children.get(p) {
                Some(n) => cur = n,
                None => return false,
            }
        }
        !cur.is_empty()
    }

    pub fn insert(&mut self, path: &[String]) {
        let mut cur = self;
        for p in path {
            cur = cur.children.entry(p.clone()).or_default();
        }
        cur.member = true;
    }

    /// Removes `path` and everything below it, then prunes emptied parents.
    pub fn remove_subtree(&mut self, path: &[String]) {
        let Some((last, parents)) = path.split_last() else {
            *self = Node::default();
            return;
        };
        if let Some(parent) = self.get_mut(parents) {
            parent.children.remove(last);
        }
        self.prune();
    }

    fn get_mut(&mut self, path: &[String]) -> Option<&mut Node> {
        let mut cur = self;
        for p in path {
            cur = cur.children.get_mut(p)?;
        }
        Some(cur)
    }

    fn prune(&mut self) {
        for c in self.children.values_mut() {
            c.prune();
        }
        self.children.retain(|_, c| !c.is_empty());
    }
}

/// Top-level and `metadata` fields the apiserver never records as owned.
const UNOWNED_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "managedFields",
];

/// The field set an object (or applied configuration) consists of.
pub(super) fn fields_of(obj: &Value, kind: &str, builtin: bool) -> Node {
    let ty = if builtin { Some(root_type(kind)) } else { None };
    let mut node = fields_of_value(obj, ty, builtin);
    node.member = false;
    node.children.remove("f:apiVersion");
    node.children.remove("f:kind");
    if let Some(meta) = node.children.remove("f:metadata")
        && let Some(meta) = owned_metadata(meta)
    {
        node.children.insert("f:metadata".into(), meta);
    }
    node
}

/// The field set of `metadata` without what the server sets; `None` when nothing is left
/// (`metadata` is never owned as a value of its own).
fn owned_metadata(mut meta: Node) -> Option<Node> {
    for f in UNOWNED_META {
        meta.children.remove(&format!("f:{f}"));
    }
    (!meta.children.is_empty()).then_some(meta)
}

/// How a list is tracked: by merge key, as a set of values, or as one atomic value.
pub(super) enum ListKind<'a> {
    Associative(&'a str),
    Set,
    Atomic,
}

pub(super) fn list_kind<'a>(
    merge_key: Option<&'a str>,
    builtin: bool,
    items: &[&Value],
) -> ListKind<'a> {
    match merge_key {
        Some("") if builtin && items.iter().all(|v| !v.is_object() && !v.is_array()) => {
            ListKind::Set
        }
        Some(mk) if builtin && !mk.is_empty() && items.iter().all(|v| v.get(mk).is_some()) => {
            ListKind::Associative(mk)
        }
        _ => ListKind::Atomic,
    }
}

pub(super) fn key_element(item: &Value, mk: &str) -> String {
    let mut m = Map::new();
    m.insert(mk.to_string(), item.get(mk).cloned().unwrap_or(Value::Null));
    format!("k:{}", Value::Object(m))
}

fn fields_of_value(v: &Value, ty: Ty, builtin: bool) -> Node {
    match v {
        Value::Object(m) if !m.is_empty() => {
            let mut node = Node::default();
            for (k, child) in m {
                let (child_ty, merge_key) = lookup(ty, k);
                let n = member_fields(child, child_ty, merge_key, builtin);
                node.children.insert(format!("f:{k}"), n);
            }
            node
        }
        _ => Node {
            member: true,
            children: BTreeMap::new(),
        },
    }
}

/// The field set of one object member: a non-empty list by its kind, anything else by value.
fn member_fields(v: &Value, ty: Ty, merge_key: Option<&str>, builtin: bool) -> Node {
    match v {
        Value::Array(items) if !items.is_empty() => {
            let refs: Vec<&Value> = items.iter().collect();
            list_fields(items, list_kind(merge_key, builtin, &refs), ty, builtin)
        }
        other => fields_of_value(other, ty, builtin),
    }
}

fn list_fields(items: &[Value], kind: ListKind, elem_ty: Ty, builtin: bool) -> Node {
    let mut node = Node::default();
    match kind {
        ListKind::Atomic => node.member = true,
        ListKind::Set => {
            for item in items {
                node.children.insert(
                    format!("v:{item}"),
                    Node {
                        member: true,
                        children: BTreeMap::new(),
                    },
                );
            }
        }
        ListKind::Associative(mk) => {
            for item in items {
                let mut n = fields_of_value(item, elem_ty, builtin);
                n.member = true;
                node.children.insert(key_element(item, mk), n);
            }
        }
    }
    node
}

/// The value at a field-set path, if the object has it.
pub(super) fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for p in path {
        cur = step(cur, p)?;
    }
    Some(cur)
}

fn element_index(list: &[Value], p: &str) -> Option<usize> {
    if let Some(key) = p.strip_prefix("k:") {
        let key: Map<String, Value> = serde_json::from_str(key).ok()?;
        list.iter()
            .position(|item| key.iter().all(|(k, v)| item.get(k) == Some(v)))
    } else if let Some(val) = p.strip_prefix("v:") {
        let val: Value = serde_json::from_str(val).ok()?;
        list.iter().position(|item| *item == val)
    } else if let Some(i) = p.strip_prefix("i:") {
        i.parse().ok().filter(|i: &usize| *i < list.len())
    } else {
        None
    }
}

fn step<'a>(cur: &'a Value, p: &str) -> Option<&'a Value> {
    match cur {
        Value::Object(m) => m.get(p.strip_prefix("f:")?),
        Value::Array(a) => element_index(a, p).map(|i| &a[i]),
        _ => None,
    }
}

/// Removes the value at `path` from the object, if present.
pub(super) fn remove_at(obj: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for p in parents {
        let next = match cur {
            Value::Object(m) => p.strip_prefix("f:").and_then(|k| m.get_mut(k)),
            Value::Array(a) => element_index(a, p).map(move |i| &mut a[i]),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match cur {
        Value::Object(m) => {
            if let Some(k) = last.strip_prefix("f:") {
                m.remove(k);
            }
        }
        Value::Array(a) => {
            if let Some(i) = element_index(a, last) {
                a.remove(i);
            }
        }
        _ => {}
    }
}

/// A path as SMD prints it in conflict messages: `.spec.containers[name="app"].image`.
pub(super) fn display_path(path: &[String]) -> String {
    let mut out = String::new();
    for p in path {
        if let Some(f) = p.strip_prefix("f:") {
            out.push('.');
            out.push_str(f);
        } else if let Some(k) = p.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            let parts: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = p.strip_prefix("v:") {
            out.push_str(&format!("[={v}]"));
        } else if let Some(i) = p.strip_prefix("i:") {
            out.push_str(&format!("[{i}]"));
        }
    }
    out
}

/// The members a write changed (a leaf whose value differs, or a member the old object
/// lacks) and removed (a member only the old object has), as the field sets of both
/// versions ([`fields_of`]) would give them.
///
/// Both objects are walked together through their nested objects, and a member whose old
/// and new values are equal is skipped whole: a status write of a large object only looks
/// at its status. Where the two differ in anything but being objects (a list, a scalar, a
/// member only one side has), the field sets of that member alone are compared.
fn changes(old: &Value, new: &Value, kind: &str, builtin: bool) -> (Vec<Path>, Vec<Path>) {
    let (Value::Object(om), Value::Object(nm)) = (old, new) else {
        return changes_by_sets(old, new, kind, builtin);
    };
    let ty = if builtin { Some(root_type(kind)) } else { None };
    let mut walk = Walk {
        old_root: old,
        new_root: new,
        builtin,
        prefix: Vec::new(),
        changed: Vec::new(),
        removed: Vec::new(),
    };
    walk.objects(om, nm, ty);
    (walk.changed, walk.removed)
}

/// The whole-set comparison [`changes`] narrows down to the members that differ.
fn changes_by_sets(old: &Value, new: &Value, kind: &str, builtin: bool) -> (Vec<Path>, Vec<Path>) {
    let old_set = fields_of(old, kind, builtin);
    let new_set = fields_of(new, kind, builtin);
    let changed = new_set
        .members()
        .into_iter()
        .filter(|p| changed_member(old, new, &old_set, new_set.get(p), p, 0))
        .collect();
    let removed = old_set
        .members()
        .into_iter()
        .filter(|p| !new_set.contains(p))
        .collect();
    (changed, removed)
}

/// Whether the member `path` of the new field set (its node `node`) is changed: a leaf whose
/// value differs, or an inner member (an associative-list element) the old set lacks.
/// `old_set` is the old field set of the member at `path[..from]`.
fn changed_member(
    old: &Value,
    new: &Value,
    old_set: &Node,
    node: Option<&Node>,
    path: &[String],
    from: usize,
) -> bool {
    let rel = &path[from..];
    if node.is_some_and(|n| n.children.is_empty()) {
        // A map that only lost its children (say `spec: {}` after a patch of nulls) is a
        // container, not a value this manager now owns; owning it would make the cleared
        // fields look taken to every later apply.
        let emptied_container = value_at(new, path)
            .is_some_and(|v| v.as_object().is_some_and(Map::is_empty))
            && old_set.get(rel).is_some_and(|n| !n.children.is_empty());
        !emptied_container && value_at(old, path) != value_at(new, path)
    } else {
        !old_set.contains(rel)
    }
}

/// The state of [`changes`]' walk.
struct Walk<'a> {
    old_root: &'a Value,
    new_root: &'a Value,
    builtin: bool,
    prefix: Path,
    changed: Vec<Path>,
    removed: Vec<Path>,
}

impl Walk<'_> {
    fn objects(&mut self, old: &Map<String, Value>, new: &Map<String, Value>, ty: Ty) {
        let at_root = self.prefix.is_empty();
        let at_meta = self.prefix.len() == 1 && self.prefix[0] == "f:metadata";
        let only_old = old.keys().filter(|k| !new.contains_key(*k));
        for k in new.keys().chain(only_old) {
            if (at_root && (k == "apiVersion" || k == "kind"))
                || (at_meta && UNOWNED_META.contains(&k.as_str()))
            {
                continue;
            }
            let (o, n) = (old.get(k), new.get(k));
            if o == n {
                continue;
            }
            let (child_ty, merge_key) = lookup(ty, k);
            self.prefix.push(format!("f:{k}"));
            match (o, n) {
                (Some(Value::Object(om)), Some(Value::Object(nm)))
                    if !om.is_empty() && !nm.is_empty() =>
                {
                    self.objects(om, nm, child_ty);
                }
                _ => self.member(o, n, child_ty, merge_key, at_root && k == "metadata"),
            }
            self.prefix.pop();
        }
    }

    /// Compares the field sets of one member (at `self.prefix`) whose values differ.
    fn member(
        &mut self,
        old: Option<&Value>,
        new: Option<&Value>,
        ty: Ty,
        merge_key: Option<&str>,
        metadata: bool,
    ) {
        let set = |v: &Value| {
            let node = member_fields(v, ty, merge_key, self.builtin);
            if metadata {
                owned_metadata(node)
            } else {
                Some(node)
            }
        };
        let old_set = old.and_then(set);
        let new_set = new.and_then(set);
        let from = self.prefix.len();
        if let Some(new_set) = &new_set {
            for p in new_set.members_under(&self.prefix) {
                let changed = match &old_set {
                    // Against nothing, every member is changed.
                    None => true,
                    Some(old_set) => {
                        let node = new_set.get(&p[from..]);
                        changed_member(self.old_root, self.new_root, old_set, node, &p, from)
                    }
                };
                if changed {
                    self.changed.push(p);
                }
            }
        }
        if let Some(old_set) = &old_set {
            let kept = |p: &Path| new_set.as_ref().is_some_and(|n| n.contains(&p[from..]));
            let members = old_set.members_under(&self.prefix);
            self.removed
                .extend(members.into_iter().filter(|p| !kept(p)));
        }
    }
}

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: Option<String>,
    pub subresource: Option<String>,
    pub fields: Node,
}

impl Entry {
    pub fn is(&self, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
    }

    /// How the apiserver names a manager in conflict messages.
    pub fn display(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            s.push_str(&format!(" with subresource {sub:?}"));
        }
        if self.operation == "Update" {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("apiVersion".into(), json!(self.api_version));
        m.insert("fieldsType".into(), json!("FieldsV1"));
        m.insert("fieldsV1".into(), self.fields.to_fields_v1());
        m.insert("manager".into(), json!(self.manager));
        m.insert("operation".into(), json!(self.operation));
        if let Some(sub) = &self.subresource {
            m.insert("subresource".into(), json!(sub));
        }
        if let Some(t) = &self.time {
            m.insert("time".into(), json!(t));
        }
        Value::Object(m)
    }
}

pub(super) fn read_entries(obj: &Value) -> Vec<Entry> {
    let Some(Value::Array(list)) = obj.pointer("/metadata/managedFields") else {
        return Vec::new();
    };
    let s = |e: &Value, k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
    list.iter()
        .map(|e| Entry {
            manager: s(e, "manager").unwrap_or_default(),
            operation: s(e, "operation").unwrap_or_default(),
            api_version: s(e, "apiVersion").unwrap_or_default(),
            time: s(e, "time"),
            subresource: s(e, "subresource").filter(|s| !s.is_empty()),
            fields: e
                .get("fieldsV1")
                .map(Node::from_fields_v1)
                .unwrap_or_default(),
        })
        .collect()
}

/// Writes the entries back (dropping empty ones) in the apiserver's order: Apply before
/// Update, then by time, manager, apiVersion and subresource. No entries removes the field.
pub(super) fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let seconds = |e: &Entry| {
        e.time
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map_or(0, |t| t.timestamp())
    };
    let mut kept: Vec<&Entry> = entries.iter().filter(|e| !e.fields.is_empty()).collect();
    kept.sort_by_cached_key(|e| {
        (
            e.operation.clone(),
            seconds(e),
            e.manager.clone(),
            e.api_version.clone(),
            e.subresource.clone(),
        )
    });
    let list: Vec<Value> = kept.into_iter().map(Entry::to_json).collect();
    let Value::Object(root) = obj else { return };
    let meta = root.entry("metadata").or_insert_with(|| json!({}));
    let Value::Object(meta) = meta else { return };
    if list.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(list));
    }
}

/// The object without `metadata.managedFields`, for comparisons.
pub(super) fn without_managed_fields(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(Value::Object(meta)) = o.get_mut("metadata") {
        meta.remove("managedFields");
    }
    o
}

/// Records a non-apply write (create, update, or a JSON/merge/strategic patch) the way
/// the apiserver's field manager does: the fields this write added or changed become
/// owned by `ctx.field_manager` (operation `Update`) and leave every other manager's set;
/// fields it removed leave all sets.
///
/// `managedFields` supplied by the request replace the stored ones when they differ and
/// are non-empty (how `kubectl` migrates client-side-apply ownership); `[]` or `[{}]`
/// resets them; absent or `null` keeps the stored ones. `now` (RFC 3339, e.g.
/// `2026-11-29T08:00:00Z`) is stamped on this manager's entry when the write changed
/// something. Call it for creates (`old = None`) and updates; [`super::apply_patch`]
/// already calls it for JSON, merge and strategic patches.
pub fn record_update(old: Option<&Value>, new: &mut Value, ctx: &PatchContext, now: &str) {
    let requested = read_entries(new);
    let stored = old.map(read_entries).unwrap_or_default();
    let reset = match new.pointer("/metadata/managedFields") {
        Some(Value::Array(list)) => {
            list.is_empty() || (list.len() == 1 && list[0].as_object().is_some_and(Map::is_empty))
        }
        _ => false,
    };
    let mut entries = if reset {
        Vec::new()
    } else if !requested.is_empty() && requested != stored {
        requested
    } else {
        stored
    };

    let (changed, removed) = match old {
        Some(old) => changes(old, new, ctx.kind, ctx.builtin),
        // Against nothing, every member of the new object is changed and none removed.
        None => (fields_of(new, ctx.kind, ctx.builtin).members(), Vec::new()),
    };
    if changed.is_empty() && removed.is_empty() {
        write_entries(new, &entries);
        return;
    }

    let manager = ctx.field_manager;
    let sub = ctx.subresource;
    for e in entries.iter_mut() {
        if e.is(manager, "Update", sub) {
            continue;
        }
        for p in changed.iter().chain(&removed) {
            e.fields.remove_subtree(p);
        }
    }
    let pos = entries.iter().position(|e| e.is(manager, "Update", sub));
    let mut mine = match pos {
        Some(i) => entries.remove(i),
        None => Entry {
            manager: manager.to_string(),
            operation: "Update".into(),
            api_version: ctx.api_version.to_string(),
            time: None,
            subresource: sub.map(str::to_string),
            fields: Node::default(),
        },
    };
    for p in &removed {
        mine.fields.remove_subtree(p);
    }
    for p in &changed {
        mine.fields.insert(p);
    }
    mine.api_version = ctx.api_version.to_string();
    mine.time = Some(now.to_string());
    match pos {
        Some(i) => entries.insert(i, mine),
        None => entries.push(mine),
    }
    write_entries(new, &entries);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(manager: &str) -> PatchContext<'_> {
        PatchContext {
            kind: "Deployment",
            api_version: "apps/v1",
            builtin: true,
            field_manager: manager,
            force: false,
            subresource: None,
        }
    }

    fn at(min: u32) -> String {
        format!("2026-11-29T09:{min:02}:00Z")
    }

    fn deployment(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "uid": "u1"},
               "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "app", "image": image}]}}}})
    }

    #[test]
    fn a_create_records_every_field_for_the_creating_manager() {
        let mut obj = deployment(1, "v1");
        record_update(None, &mut obj, &ctx("kubectl-client-side-apply"), &at(0));
        assert_eq!(
            obj["metadata"]["managedFields"],
            json!([{"apiVersion": "apps/v1", "fieldsType": "FieldsV1", "manager": "kubectl-client-side-apply",
                    "operation": "Update", "time": "2026-11-29T09:00:00Z",
                    "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                        "k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}}}])
        );
    }

    #[test]
    fn an_update_moves_changed_fields_to_the_updating_manager() {
        let mut created = deployment(1, "v1");
        record_update(None, &mut created, &ctx("creator"), &at(0));
        let mut scaled = created.clone();
        scaled["spec"]["replicas"] = json!(4);
        record_update(Some(&created), &mut scaled, &ctx("hpa"), &at(1));
        let entries = read_entries(&scaled);
        assert_eq!(entries.len(), 2);
        let replicas = vec!["f:spec".to_string(), "f:replicas".to_string()];
        assert!(!entries[0].fields.contains(&replicas));
        assert!(entries[1].fields.contains(&replicas));
        assert_eq!(entries[1].fields.members(), vec![replicas]);
    }

    #[test]
    fn a_write_that_changes_nothing_keeps_managed_fields_identical() {
        let mut created = deployment(1, "v1");
        record_update(None, &mut created, &ctx("creator"), &at(0));
        let mut same = created.clone();
        record_update(Some(&created), &mut same, &ctx("other"), &at(5));
        assert_eq!(same, created);
    }

    #[test]
    fn managed_fields_supplied_by_the_request_replace_the_stored_ones() {
        let mut created = deployment(1, "v1");
        record_update(
            None,
            &mut created,
            &ctx("kubectl-client-side-apply"),
            &at(0),
        );
        let mut migrated = created.clone();
        migrated["metadata"]["managedFields"][0]["manager"] = json!("kubectl");
        migrated["metadata"]["managedFields"][0]["operation"] = json!("Apply");
        record_update(Some(&created), &mut migrated, &ctx("kubectl"), &at(1));
        let entries = read_entries(&migrated);
        assert_eq!(
            (
                entries.len(),
                entries[0].manager.as_str(),
                entries[0].operation.as_str()
            ),
            (1, "kubectl", "Apply")
        );
    }

    #[test]
    fn an_empty_managed_fields_entry_in_the_request_resets_ownership() {
        let mut created = deployment(1, "v1");
        record_update(None, &mut created, &ctx("creator"), &at(0));
        for reset in [json!([]), json!([{}])] {
            let mut cleared = created.clone();
            cleared["metadata"]["managedFields"] = reset.clone();
            record_update(Some(&created), &mut cleared, &ctx("kubectl-patch"), &at(1));
            assert!(
                cleared["metadata"].get("managedFields").is_none(),
                "{reset}"
            );
        }
        let mut kept = created.clone();
        kept["metadata"]["managedFields"] = Value::Null;
        record_update(Some(&created), &mut kept, &ctx("kubectl-patch"), &at(1));
        assert_eq!(kept, created);
    }

    #[test]
    fn fields_v1_round_trips_and_paths_print_like_smd() {
        let v = json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                       "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}}}}});
        assert_eq!(Node::from_fields_v1(&v).to_fields_v1(), v);
        let path: Path = ["f:spec", "f:containers", "k:{\"name\":\"app\"}", "f:image"]
            .map(String::from)
            .to_vec();
        assert_eq!(display_path(&path), ".spec.containers[name=\"app\"].image");
        let set: Path = ["f:metadata", "f:finalizers", "v:\"a\""]
            .map(String::from)
            .to_vec();
        assert_eq!(display_path(&set), ".metadata.finalizers[=\"a\"]");
    }

    /// Deployment-shaped objects that differ a little: keyed containers (with duplicate
    /// names), keyed ports, a set-like finalizer list, labels, an untyped member that is a
    /// scalar, an empty map, a map or a list, and a status.
    fn object() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let loose = prop_oneof![
            Just(Value::Null),
            Just(json!({})),
            (0..3i64).prop_map(|i| json!(i)),
            (0..3i64).prop_map(|i| json!({"a": i, "b": {"c": i % 2}})),
            proptest::collection::vec(0..3i64, 0..3).prop_map(|v| json!(v)),
        ];
        let port = (
            prop::sample::select(vec![80i64, 81]),
            prop::sample::select(vec!["TCP", "UDP"]),
        )
            .prop_map(|(p, proto)| json!({"containerPort": p, "protocol": proto}));
        let container = (
            prop::sample::select(vec!["a", "b", "c"]),
            prop::sample::select(vec!["v1", "v2"]),
            proptest::option::of(proptest::collection::vec(port, 0..3)),
        )
            .prop_map(|(name, image, ports)| {
                let mut c = json!({"name": name, "image": image});
                if let Some(ports) = ports {
                    c["ports"] = json!(ports);
                }
                c
            });
        (
            proptest::collection::btree_map(
                prop::sample::select(vec!["app", "tier"]),
                prop::sample::select(vec!["x", "y"]),
                0..3,
            ),
            proptest::collection::vec(prop::sample::select(vec!["f1", "f2"]), 0..3),
            proptest::option::of(0..3i64),
            proptest::collection::vec(container, 0..3),
            loose.clone(),
            proptest::option::of((0..3i64, loose)),
            prop::sample::select(vec!["1", "2"]),
        )
            .prop_map(|(labels, finalizers, replicas, containers, extra, status, rv)| {
                let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "web", "uid": "u1", "resourceVersion": rv, "labels": labels},
                    "spec": {"template": {"spec": {"containers": containers}}, "extra": extra}});
                if !finalizers.is_empty() {
                    d["metadata"]["finalizers"] = json!(finalizers);
                }
                if let Some(r) = replicas {
                    d["spec"]["replicas"] = json!(r);
                }
                if let Some((ready, more)) = status {
                    d["status"] = json!({"readyReplicas": ready, "more": more});
                }
                d
            })
    }

    fn sorted(mut paths: Vec<Path>) -> Vec<Path> {
        paths.sort();
        paths
    }

    proptest::proptest! {
        /// Skipping equal members finds exactly what comparing the two whole field sets
        /// finds, for a built-in kind (keyed and set-like lists) and a custom one (atomic).
        #[test]
        fn the_walk_finds_the_changes_the_whole_field_sets_give(old in object(), new in object()) {
            for (kind, builtin) in [("Deployment", true), ("Rollout", false)] {
                let (changed, removed) = changes(&old, &new, kind, builtin);
                let (want_changed, want_removed) = changes_by_sets(&old, &new, kind, builtin);
                proptest::prop_assert_eq!(sorted(changed), sorted(want_changed), "{} {}", old, new);
                proptest::prop_assert_eq!(sorted(removed), sorted(want_removed), "{} {}", old, new);
            }
        }
    }

    #[test]
    fn a_write_that_changes_only_the_status_owns_only_the_status() {
        let mut created = deployment(1, "v1");
        record_update(None, &mut created, &ctx("creator"), &at(0));
        let mut ready = created.clone();
        ready["status"] = json!({"readyReplicas": 1});
        record_update(Some(&created), &mut ready, &ctx("kubelet"), &at(1));
        let entries = read_entries(&ready);
        assert_eq!(entries.len(), 2);
        let kubelet = entries.iter().find(|e| e.manager == "kubelet").unwrap();
        assert_eq!(
            kubelet.fields.to_fields_v1(),
            json!({"f:status": {"f:readyReplicas": {}}})
        );
    }
}
