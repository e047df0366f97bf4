//! Server-side apply (`application/apply-patch+yaml`), simplified.
//!
//! What matches the apiserver:
//! - the body is YAML or JSON; the applied configuration is merged into the live object
//!   (created from it when there is none): maps merge recursively, associative lists of
//!   built-in kinds merge element-wise by merge key, set-like primitive lists (finalizers)
//!   take the union, every other list — and every list of a custom resource — is atomic;
//! - the manager's set (`metadata.managedFields`, operation `Apply`, `FieldsV1`) becomes
//!   exactly the applied configuration's fields; fields it owned before and no longer
//!   applies are removed from the object unless another manager still owns them;
//! - applying a value that differs from the live one on a field another manager owns
//!   (by Apply or Update) is a 409 with the apiserver's message; with `force` the field
//!   changes owner instead; equal values become shared ownership;
//! - name, namespace, uid, resourceVersion, generation, timestamps, apiVersion and kind
//!   are never owned; `status` is ignored on the main resource and is the only thing taken
//!   from a `/status` apply; the entry's `time` moves only when the object changed, so a
//!   no-op apply returns the object unchanged.
//!
//! Simplified relative to structured-merge-diff:
//! - no OpenAPI schema: CR lists are atomic even with `x-kubernetes-list-type: map`, and
//!   maps marked `x-kubernetes-map-type: atomic` (e.g. label selectors) are granular;
//! - associative lists use one merge key (the strategic one), so two Service ports that
//!   differ only by protocol are one element;
//! - `null` in the applied configuration means "not applied" rather than "owned, unset";
//! - a conflict is reported at the applied leaf path, also when the other manager owns a
//!   descendant or an atomic ancestor of it;
//! - merged associative lists keep the live order and append new elements in applied
//!   order; no version conversion of managedFields between API versions;
//! - `status` is dropped from a main-resource apply for every kind, also for a CRD
//!   without a status subresource (upstream keeps it there);
//! - Update managers are not capped (upstream folds more than 10 into `ancient-changes`).
//!
//! Also like the apiserver: a body whose `apiVersion` differs from the request's is 400
//! `Incorrect version specified in apply patch...`, and one carrying
//! `metadata.managedFields` is 400 `metadata.managedFields must be nil`.

use super::fields::{
    Entry, ListKind, Path, display_path, fields_of, key_element, list_kind, read_entries,
    remove_at, value_at, without_managed_fields, write_entries,
};
use super::strategic::{Ty, lookup, root_type};
use super::{PatchContext, PatchError};
use serde_json::Value;
use std::collections::BTreeMap;

pub(super) fn apply(
    current: Option<&Value>,
    body: &[u8],
    ctx: &PatchContext,
    now: &str,
) -> Result<Value, PatchError> {
    // kubectl and kube-rs send JSON (valid YAML); parse it as such, which is much faster.
    let looks_json = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let parsed = match looks_json {
        true => serde_json::from_slice(body).ok(),
        false => None,
    };
    let applied: Value = match parsed {
        Some(v) => v,
        None => serde_yaml::from_slice(body)
            .map_err(|e| PatchError::Malformed(format!("error decoding YAML: {e}")))?,
    };
    let Value::Object(mut applied) = applied else {
        return Err(PatchError::Malformed(format!(
            "error decoding YAML: the applied configuration must be an object, got {}",
            super::go_type_name(&applied)
        )));
    };
    for field in ["apiVersion", "kind"] {
        if !applied.get(field).is_some_and(Value::is_string) {
            let what = if field == "kind" {
                "Kind"
            } else {
                "apiVersion"
            };
            return Err(PatchError::Malformed(format!(
                "error decoding YAML: Object '{what}' is missing in the applied configuration"
            )));
        }
    }
    let version = applied
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if matches!(ctx.subresource, None | Some("status")) && version != ctx.api_version {
        return Err(PatchError::Malformed(format!(
            "Incorrect version specified in apply patch. Specified patch version: {version}, expected: {}",
            ctx.api_version
        )));
    }
    if applied
        .get("metadata")
        .and_then(|m| m.get("managedFields"))
        .is_some_and(|m| !m.is_null())
    {
        return Err(PatchError::Malformed(
            "metadata.managedFields must be nil".into(),
        ));
    }
    match ctx.subresource {
        None => {
            applied.remove("status");
        }
        Some("status") => applied.retain(|k, _| k == "status" || k == "apiVersion" || k == "kind"),
        Some(_) => {}
    }
    let applied = drop_nulls(Value::Object(applied));

    let live = match current {
        Some(c) => without_managed_fields(c),
        None => applied.clone(),
    };
    let mut entries = current.map(read_entries).unwrap_or_default();
    let ty = ctx.builtin.then(|| root_type(ctx.kind));
    let mut merged = match current {
        Some(_) => merge(live.clone(), &applied, ty, ctx.builtin),
        None => applied.clone(),
    };

    let new_set = fields_of(&applied, ctx.kind, ctx.builtin);
    let me = |e: &Entry| e.is(ctx.field_manager, "Apply", ctx.subresource);

    // Conflicts: fields whose value changes and that someone else owns.
    let mut conflicts: BTreeMap<usize, Vec<Path>> = BTreeMap::new();
    for path in new_set.leaves() {
        if value_at(&live, &path) == value_at(&merged, &path) {
            continue;
        }
        for (i, e) in entries.iter().enumerate() {
            if !me(e) && e.fields.overlaps(&path) {
                conflicts.entry(i).or_default().push(path.clone());
            }
        }
    }
    if !conflicts.is_empty() {
        if !ctx.force {
            return Err(PatchError::Conflict(conflict_message(&entries, &conflicts)));
        }
        for (i, paths) in &conflicts {
            for p in paths {
                entries[*i].fields.remove_subtree(p);
            }
        }
    }

    // Fields this manager applied before and dropped now are removed unless shared.
    let previous = entries
        .iter()
        .find(|e| me(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    for path in previous.members() {
        if new_set.overlaps(&path) {
            continue;
        }
        let shared = entries.iter().any(|e| !me(e) && e.fields.overlaps(&path));
        if !shared {
            remove_at(&mut merged, &path);
        }
    }

    // Like the apiserver, the entry's time moves only when the object itself changed.
    let changed = current.is_none() || without_managed_fields(&merged) != live;
    match entries.iter_mut().find(|e| me(e)) {
        Some(e) => {
            if changed {
                e.time = Some(now.to_string());
            }
            e.fields = new_set;
            e.api_version = ctx.api_version.to_string();
        }
        None => entries.push(Entry {
            manager: ctx.field_manager.to_string(),
            operation: "Apply".into(),
            api_version: ctx.api_version.to_string(),
            time: Some(now.to_string()),
            subresource: ctx.subresource.map(str::to_string),
            fields: new_set,
        }),
    }
    write_entries(&mut merged, &entries);
    Ok(merged)
}

fn conflict_message(entries: &[Entry], conflicts: &BTreeMap<usize, Vec<Path>>) -> String {
    let total: usize = conflicts.values().map(Vec::len).sum();
    if total == 1 {
        let (i, paths) = conflicts.iter().next().expect("one conflict");
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            entries[*i].display(),
            display_path(&paths[0])
        );
    }
    let mut by_manager: Vec<(&Entry, &Vec<Path>)> =
        conflicts.iter().map(|(i, p)| (&entries[*i], p)).collect();
    by_manager.sort_by(|a, b| (&a.0.manager, &a.0.operation).cmp(&(&b.0.manager, &b.0.operation)));
    let mut lines = Vec::new();
    for (e, paths) in by_manager {
        lines.push(format!("conflicts with {}:", e.display()));
        for p in paths {
            lines.push(format!("- {}", display_path(p)));
        }
    }
    format!("Apply failed with {total} conflicts: {}", lines.join("\n"))
}

fn drop_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, drop_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(drop_nulls).collect()),
        other => other,
    }
}

/// Merges the applied configuration into the live object (see the module docs).
fn merge(live: Value, applied: &Value, ty: Ty, builtin: bool) -> Value {
    match (live, applied) {
        (Value::Object(mut l), Value::Object(a)) => {
            for (k, av) in a {
                let (child_ty, merge_key) = lookup(ty, k);
                let merged = match (l.remove(k), av) {
                    (Some(Value::Array(lv)), Value::Array(items)) => {
                        merge_list(lv, items, merge_key, child_ty, builtin)
                    }
                    (Some(lv), av) => merge(lv, av, child_ty, builtin),
                    (None, av) => av.clone(),
                };
                l.insert(k.clone(), merged);
            }
            Value::Object(l)
        }
        (_, a) => a.clone(),
    }
}

fn merge_list(
    live: Vec<Value>,
    applied: &[Value],
    merge_key: Option<&str>,
    elem_ty: Ty,
    builtin: bool,
) -> Value {
    let all: Vec<&Value> = live.iter().chain(applied).collect();
    match list_kind(merge_key, builtin, &all) {
        ListKind::Atomic => Value::Array(applied.to_vec()),
        ListKind::Set => {
            let mut out = live;
            for v in applied {
                if !out.contains(v) {
                    out.push(v.clone());
                }
            }
            Value::Array(out)
        }
        ListKind::Associative(mk) => {
            let mut out = live;
            for item in applied {
                let key = key_element(item, mk);
                match out.iter().position(|l| key_element(l, mk) == key) {
                    Some(i) => {
                        let l = std::mem::take(&mut out[i]);
                        out[i] = merge(l, item, elem_ty, builtin);
                    }
                    None => out.push(item.clone()),
                }
            }
            Value::Array(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{PatchType, apply_patch_at};
    use super::*;
    use chrono::{DateTime, TimeZone, Utc};
    use serde_json::json;

    fn t(min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 8, min, 0).unwrap()
    }

    fn ctx<'a>(
        kind: &'a str,
        api_version: &'a str,
        builtin: bool,
        manager: &'a str,
        force: bool,
    ) -> PatchContext<'a> {
        PatchContext {
            kind,
            api_version,
            builtin,
            field_manager: manager,
            force,
            subresource: None,
        }
    }

    fn deploy_ctx(manager: &str, force: bool) -> PatchContext<'_> {
        ctx("Deployment", "apps/v1", true, manager, force)
    }

    fn ssa(
        current: Option<&Value>,
        body: &str,
        ctx: &PatchContext,
        at: DateTime<Utc>,
    ) -> Result<Value, PatchError> {
        apply_patch_at(PatchType::Apply, current, body.as_bytes(), ctx, at)
    }

    const DEPLOY: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web, tier: front}
spec:
  replicas: 2
  template:
    spec:
      containers:
      - name: app
        image: nginx:1.25
"#;

    fn managed(obj: &Value) -> &Value {
        &obj["metadata"]["managedFields"]
    }

    #[test]
    fn apply_creates_the_object_and_records_an_apply_entry() {
        let obj = ssa(None, DEPLOY, &deploy_ctx("kubectl", false), t(0)).unwrap();
        assert_eq!(
            obj["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:1.25"
        );
        assert_eq!(
            managed(&obj),
            &json!([{
                "apiVersion": "apps/v1",
                "fieldsType": "FieldsV1",
                "fieldsV1": {
                    "f:metadata": {"f:labels": {"f:app": {}, "f:tier": {}}},
                    "f:spec": {
                        "f:replicas": {},
                        "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {
                            ".": {}, "f:image": {}, "f:name": {}
                        }}}}
                    }
                },
                "manager": "kubectl",
                "operation": "Apply",
                "time": "2026-11-29T08:00:00Z"
            }])
        );
    }

    #[test]
    fn repeated_apply_is_idempotent_including_the_timestamp() {
        let c = deploy_ctx("kubectl", false);
        let first = ssa(None, DEPLOY, &c, t(0)).unwrap();
        let second = ssa(Some(&first), DEPLOY, &c, t(5)).unwrap();
        assert_eq!(first, second);
    }

    #[test]
    fn changing_an_applied_value_updates_it_and_the_timestamp() {
        let c = deploy_ctx("kubectl", false);
        let first = ssa(None, DEPLOY, &c, t(0)).unwrap();
        let second = ssa(
            Some(&first),
            &DEPLOY.replace("replicas: 2", "replicas: 5"),
            &c,
            t(5),
        )
        .unwrap();
        assert_eq!(second["spec"]["replicas"], 5);
        assert_eq!(managed(&second)[0]["time"], "2026-11-29T08:05:00Z");
    }

    #[test]
    fn fields_dropped_from_the_applied_config_are_removed() {
        let c = deploy_ctx("kubectl", false);
        let first = ssa(None, DEPLOY, &c, t(0)).unwrap();
        let body = DEPLOY
            .replace(", tier: front", "")
            .replace("  replicas: 2\n", "");
        let second = ssa(Some(&first), &body, &c, t(1)).unwrap();
        assert_eq!(second["metadata"]["labels"], json!({"app": "web"}));
        assert!(second["spec"].get("replicas").is_none());
        assert!(
            managed(&second)[0]["fieldsV1"]["f:spec"]
                .get("f:replicas")
                .is_none()
        );
    }

    #[test]
    fn dropped_containers_of_an_associative_list_are_removed() {
        let c = deploy_ctx("kubectl", false);
        let two = DEPLOY.replace(
            "        image: nginx:1.25\n",
            "        image: nginx:1.25\n      - name: side\n        image: envoy\n",
        );
        let first = ssa(None, &two, &c, t(0)).unwrap();
        assert_eq!(
            first["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        let second = ssa(Some(&first), DEPLOY, &c, t(1)).unwrap();
        assert_eq!(
            second["spec"]["template"]["spec"]["containers"],
            json!([{"name": "app", "image": "nginx:1.25"}])
        );
    }

    #[test]
    fn a_dropped_field_another_manager_also_owns_stays() {
        let first = ssa(None, DEPLOY, &deploy_ctx("kubectl", false), t(0)).unwrap();
        let shared = ssa(
            Some(&first),
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 2}\n",
            &deploy_ctx("helm", false),
            t(1),
        )
        .unwrap();
        let body = DEPLOY.replace("  replicas: 2\n", "");
        let after = ssa(Some(&shared), &body, &deploy_ctx("kubectl", false), t(2)).unwrap();
        assert_eq!(after["spec"]["replicas"], 2);
    }

    /// A Deployment last written by `kubectl apply` (client side) and `kubectl scale`.
    fn client_side_owned() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}, "managedFields": [
                {"apiVersion": "apps/v1", "fieldsType": "FieldsV1", "manager": "kubectl-client-side-apply",
                 "operation": "Update", "time": "2026-11-29T07:00:00Z",
                 "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}, "f:spec": {"f:replicas": {}}}},
                {"apiVersion": "apps/v1", "fieldsType": "FieldsV1", "manager": "kubectl", "operation": "Update",
                 "subresource": "scale", "time": "2026-11-29T07:10:00Z",
                 "fieldsV1": {"f:spec": {"f:paused": {}}}}
            ]},
            "spec": {"replicas": 3, "paused": false}
        })
    }

    #[test]
    fn applying_a_different_value_on_a_field_owned_by_another_manager_conflicts() {
        let live = client_side_owned();
        let body =
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 5}\n";
        let err = ssa(Some(&live), body, &deploy_ctx("kubectl", false), t(0)).unwrap_err();
        assert_eq!(
            err,
            PatchError::Conflict(
                "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
                    .into()
            )
        );
        let body = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 5, paused: true}\n";
        let err = ssa(Some(&live), body, &deploy_ctx("kubectl", false), t(0)).unwrap_err();
        assert_eq!(
            err,
            PatchError::Conflict(
                "Apply failed with 2 conflicts: conflicts with \"kubectl\" with subresource \"scale\" using apps/v1:\n- .spec.paused\nconflicts with \"kubectl-client-side-apply\" using apps/v1:\n- .spec.replicas"
                    .into()
            )
        );
    }

    #[test]
    fn applying_the_same_value_shares_ownership_without_conflict() {
        let live = client_side_owned();
        let body =
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 3}\n";
        let out = ssa(Some(&live), body, &deploy_ctx("kubectl", false), t(0)).unwrap();
        let entries = managed(&out).as_array().unwrap();
        let who: Vec<(&Value, &Value)> = entries
            .iter()
            .map(|e| (&e["manager"], &e["operation"]))
            .collect();
        assert_eq!(
            who,
            [
                (&json!("kubectl"), &json!("Apply")),
                (&json!("kubectl-client-side-apply"), &json!("Update")),
                (&json!("kubectl"), &json!("Update")),
            ],
            "Apply first, then Update entries by time"
        );
        assert_eq!(entries[0]["fieldsV1"]["f:spec"], json!({"f:replicas": {}}));
        assert_eq!(entries[1]["fieldsV1"]["f:spec"], json!({"f:replicas": {}}));
    }

    #[test]
    fn force_takes_ownership_of_conflicting_fields() {
        let live = client_side_owned();
        let body =
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 5}\n";
        let out = ssa(Some(&live), body, &deploy_ctx("kubectl", true), t(0)).unwrap();
        assert_eq!(out["spec"]["replicas"], 5);
        let entries = managed(&out).as_array().unwrap();
        assert_eq!(
            (&entries[0]["manager"], &entries[0]["operation"]),
            (&json!("kubectl"), &json!("Apply"))
        );
        assert_eq!(entries[1]["manager"], "kubectl-client-side-apply");
        assert_eq!(
            entries[1]["fieldsV1"],
            json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}}})
        );
    }

    #[test]
    fn custom_resource_lists_are_atomic() {
        let c = ctx("Rollout", "argoproj.io/v1alpha1", false, "kubectl", false);
        let body = |steps: &str| {
            format!(
                "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {{name: r}}\nspec:\n  strategy:\n    canary:\n      steps: {steps}\n"
            )
        };
        let first = ssa(None, &body("[{setWeight: 20}, {pause: {}}]"), &c, t(0)).unwrap();
        assert_eq!(
            managed(&first)[0]["fieldsV1"],
            json!({"f:spec": {"f:strategy": {"f:canary": {"f:steps": {}}}}})
        );
        let second = ssa(Some(&first), &body("[{setWeight: 50}]"), &c, t(1)).unwrap();
        assert_eq!(
            second["spec"]["strategy"]["canary"]["steps"],
            json!([{"setWeight": 50}])
        );
    }

    #[test]
    fn status_is_ignored_on_the_main_resource_and_alone_on_the_status_subresource() {
        let c = ctx("Rollout", "argoproj.io/v1alpha1", false, "kubectl", false);
        let live = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "r"},
                          "spec": {"replicas": 1}, "status": {"phase": "Healthy"}});
        let body = "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {name: r}\nspec: {replicas: 2}\nstatus: {phase: Degraded}\n";
        let main = ssa(Some(&live), body, &c, t(0)).unwrap();
        assert_eq!(
            (&main["spec"]["replicas"], &main["status"]["phase"]),
            (&json!(2), &json!("Healthy"))
        );
        let status_ctx = PatchContext {
            subresource: Some("status"),
            ..c
        };
        let status = ssa(Some(&live), body, &status_ctx, t(0)).unwrap();
        assert_eq!(
            (&status["spec"]["replicas"], &status["status"]["phase"]),
            (&json!(1), &json!("Degraded"))
        );
        assert_eq!(managed(&status)[0]["subresource"], "status");
    }

    #[test]
    fn an_apply_in_another_api_version_is_400() {
        let body = DEPLOY.replace("apps/v1", "apps/v1beta2");
        assert_eq!(
            ssa(None, &body, &deploy_ctx("kubectl", false), t(0)).unwrap_err(),
            PatchError::Malformed(
                "Incorrect version specified in apply patch. Specified patch version: apps/v1beta2, expected: apps/v1".into()
            )
        );
    }

    #[test]
    fn malformed_apply_bodies_are_400() {
        let c = deploy_ctx("kubectl", false);
        let with_managed = DEPLOY.replace("  name: web\n", "  name: web\n  managedFields: []\n");
        assert_eq!(
            ssa(None, &with_managed, &c, t(0)).unwrap_err(),
            PatchError::Malformed("metadata.managedFields must be nil".into())
        );
        for body in ["{", "- a\n- b\n", "metadata: {name: x}\n"] {
            assert!(
                matches!(ssa(None, body, &c, t(0)), Err(PatchError::Malformed(_))),
                "{body}"
            );
        }
    }

    #[test]
    fn a_merge_patch_records_an_update_entry_that_later_conflicts_with_apply() {
        let c = deploy_ctx("kubectl", false);
        let applied = ssa(None, DEPLOY, &c, t(0)).unwrap();
        let patch_ctx = deploy_ctx("kubectl-patch", false);
        let patched = apply_patch_at(
            PatchType::Merge,
            Some(&applied),
            br#"{"spec":{"replicas":7}}"#,
            &patch_ctx,
            t(1),
        )
        .unwrap();
        let entries = managed(&patched).as_array().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1]["manager"], "kubectl-patch");
        assert_eq!(entries[1]["operation"], "Update");
        assert_eq!(
            entries[1]["fieldsV1"],
            json!({"f:spec": {"f:replicas": {}}})
        );
        assert!(
            entries[0]["fieldsV1"]["f:spec"].get("f:replicas").is_none(),
            "Update takes ownership"
        );
        let err = ssa(Some(&patched), DEPLOY, &c, t(2)).unwrap_err();
        assert_eq!(
            err,
            PatchError::Conflict(
                "Apply failed with 1 conflict: conflict with \"kubectl-patch\" using apps/v1: .spec.replicas".into()
            )
        );
    }

    #[test]
    fn a_manager_that_cleared_a_map_does_not_block_a_later_apply_of_its_fields() {
        // The leader-election pattern: holder A applies the lease fields, releases them
        // with a strategic patch of nulls, then holder B applies them again.
        let lease = |holder: &str| {
            format!(
                "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: l\nspec:\n  holderIdentity: {holder}\n  leaseDurationSeconds: 15\n"
            )
        };
        let a = ctx("Lease", "coordination.k8s.io/v1", true, "a", false);
        let held = ssa(None, &lease("a"), &a, t(0)).unwrap();
        let released = apply_patch_at(
            PatchType::Strategic,
            Some(&held),
            br#"{"spec":{"holderIdentity":null,"leaseDurationSeconds":null}}"#,
            &a,
            t(1),
        )
        .unwrap();
        assert_eq!(released["spec"], json!({}));
        let b = ctx("Lease", "coordination.k8s.io/v1", true, "b", false);
        let taken =
            ssa(Some(&released), &lease("b"), &b, t(2)).expect("no conflict with a cleared map");
        assert_eq!(taken["spec"]["holderIdentity"], "b");
    }

    #[test]
    fn a_no_op_merge_patch_leaves_managed_fields_alone() {
        let c = deploy_ctx("kubectl", false);
        let applied = ssa(None, DEPLOY, &c, t(0)).unwrap();
        let patched = apply_patch_at(
            PatchType::Merge,
            Some(&applied),
            br#"{"spec":{"replicas":2}}"#,
            &c,
            t(1),
        )
        .unwrap();
        assert_eq!(patched, applied);
    }

    /// A CRD the size of Argo's Rollout CRD (~500 KB) applies, and re-applies as a no-op.
    #[test]
    fn large_crd_applies_and_reapplies_idempotently() {
        fn props(depth: u32) -> Value {
            let mut m = serde_json::Map::new();
            for i in 0..8 {
                let v = if depth == 0 {
                    json!({"type": "string", "description": "a field with a reasonably long description text"})
                } else {
                    json!({"type": "object", "properties": props(depth - 1)})
                };
                m.insert(format!("field{i}"), v);
            }
            Value::Object(m)
        }
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "rollouts.argoproj.io"},
            "spec": {"group": "argoproj.io", "names": {"kind": "Rollout", "plural": "rollouts"}, "scope": "Namespaced",
                     "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                                   "schema": {"openAPIV3Schema": {"type": "object", "properties": props(4)}}}]}
        });
        let body = serde_json::to_vec(&crd).unwrap();
        assert!(body.len() > 400_000, "{}", body.len());
        let c = ctx(
            "CustomResourceDefinition",
            "apiextensions.k8s.io/v1",
            true,
            "kubectl",
            false,
        );
        let first = apply_patch_at(PatchType::Apply, None, &body, &c, t(0)).unwrap();
        let second = apply_patch_at(PatchType::Apply, Some(&first), &body, &c, t(1)).unwrap();
        assert_eq!(first, second);
        assert_eq!(without_managed_fields(&first), crd);
    }
}
