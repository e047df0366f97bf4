//! OpenAPI v3 documents (`/openapi/v3` and one document per group-version). kubectl reads them
//! to learn that the server validates fields itself (`fieldValidation` on PATCH), for `explain`,
//! and to decide how to compute apply patches. Built-in schemas come from k8s-openapi, custom
//! resources' from their CRD.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, OnceLock};

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use super::types::{Registry, ResourceType};

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// `api/v1` or `apis/{group}/{version}`.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn crd_fingerprint(reg: &Registry, group: &str, version: &str) -> u64 {
    let mut h = DefaultHasher::new();
    for t in reg.in_group_version(group, version) {
        t.plural.hash(&mut h);
        t.kind.hash(&mut h);
        if let Some(s) = t.version(version).and_then(|v| v.schema.as_ref()) {
            s.to_string().hash(&mut h);
        }
    }
    h.finish()
}

/// The `/openapi/v3` index of group-version documents.
pub fn index(reg: &Registry) -> Value {
    let mut paths = Map::new();
    for (g, vs) in reg.groups() {
        for v in vs {
            let p = gv_path(&g, &v);
            let hash = format!("{:016X}", crd_fingerprint(reg, &g, &v));
            paths.insert(
                p.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={hash}")}),
            );
        }
    }
    json!({"paths": paths})
}

fn schema_name(t: &ResourceType, version: &str) -> String {
    if t.crd {
        // The apiserver names custom resource schemas by reversed group.
        let rev: Vec<&str> = t.group.split('.').rev().collect();
        format!("{}.{version}.{}", rev.join("."), t.kind)
    } else {
        let g = match t.group.as_str() {
            "" => "core".to_string(),
            "apiextensions.k8s.io" => {
                return format!(
                    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.{version}.{}",
                    t.kind
                );
            }
            // k8s.io/api's package: `rbac.authorization.k8s.io` is `rbac`, `networking.k8s.io`
            // is `networking`.
            other => other.split('.').next().unwrap_or(other).to_string(),
        };
        format!("io.k8s.api.{g}.{version}.{}", t.kind)
    }
}

/// Generates the k8s-openapi schemas of the built-in kinds of one group-version.
fn builtin_defs(group: &str, version: &str) -> Map<String, Value> {
    let mut settings = SchemaSettings::openapi3();
    settings.definitions_path = "/components/schemas".into();
    let mut g = settings.into_generator();
    fn add<T: JsonSchema>(g: &mut schemars::SchemaGenerator) {
        g.subschema_for::<T>();
    }
    use k8s_openapi::api as a;
    match (group, version) {
        ("", "v1") => {
            add::<a::core::v1::Namespace>(&mut g);
            add::<a::core::v1::Pod>(&mut g);
            add::<a::core::v1::Service>(&mut g);
            add::<a::core::v1::Endpoints>(&mut g);
            add::<a::core::v1::ConfigMap>(&mut g);
            add::<a::core::v1::PodTemplate>(&mut g);
            add::<a::core::v1::Secret>(&mut g);
            add::<a::core::v1::Event>(&mut g);
            add::<a::core::v1::ServiceAccount>(&mut g);
            add::<a::core::v1::ResourceQuota>(&mut g);
            add::<a::policy::v1::Eviction>(&mut g);
        }
        ("apps", "v1") => {
            add::<a::apps::v1::Deployment>(&mut g);
            add::<a::apps::v1::ReplicaSet>(&mut g);
            add::<a::autoscaling::v1::Scale>(&mut g);
        }
        ("batch", "v1") => add::<a::batch::v1::Job>(&mut g),
        ("coordination.k8s.io", "v1") => add::<a::coordination::v1::Lease>(&mut g),
        ("autoscaling", "v2") => add::<a::autoscaling::v2::HorizontalPodAutoscaler>(&mut g),
        ("autoscaling", "v1") => {
            add::<a::autoscaling::v1::HorizontalPodAutoscaler>(&mut g);
            add::<a::autoscaling::v1::Scale>(&mut g);
        }
        ("events.k8s.io", "v1") => add::<a::events::v1::Event>(&mut g),
        ("networking.k8s.io", "v1") => {
            add::<a::networking::v1::Ingress>(&mut g);
            add::<a::networking::v1::IngressClass>(&mut g);
        }
        ("policy", "v1") => {
            add::<a::policy::v1::PodDisruptionBudget>(&mut g);
            add::<a::policy::v1::Eviction>(&mut g);
        }
        ("rbac.authorization.k8s.io", "v1") => {
            add::<a::rbac::v1::Role>(&mut g);
            add::<a::rbac::v1::RoleBinding>(&mut g);
            add::<a::rbac::v1::ClusterRole>(&mut g);
            add::<a::rbac::v1::ClusterRoleBinding>(&mut g);
        }
        ("meta.k8s.io", "v1") => {
            // ObjectMeta and what it references, reached through a kind that embeds it.
            add::<a::core::v1::ConfigMap>(&mut g);
            let mut defs = g.take_definitions(true);
            defs.remove("io.k8s.api.core.v1.ConfigMap");
            return defs;
        }
        ("apiextensions.k8s.io", "v1") => {
            add::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>(&mut g)
        }
        _ => {}
    }
    g.take_definitions(true)
}

type Defs = Arc<Map<String, Value>>;

/// `(schema, list field, merge key)` for the strategic-merge list fields of the built-in types
/// (the `patchStrategy:"merge"` tags of k8s.io/api); an empty key marks a merged primitive list.
const PATCH_MERGE: &[(&str, &str, &str)] = &[
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "finalizers",
        "",
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "ownerReferences",
        "uid",
    ),
    ("io.k8s.api.core.v1.PodSpec", "containers", "name"),
    ("io.k8s.api.core.v1.PodSpec", "initContainers", "name"),
    ("io.k8s.api.core.v1.PodSpec", "ephemeralContainers", "name"),
    ("io.k8s.api.core.v1.PodSpec", "volumes", "name"),
    ("io.k8s.api.core.v1.PodSpec", "imagePullSecrets", "name"),
    ("io.k8s.api.core.v1.PodSpec", "hostAliases", "ip"),
    (
        "io.k8s.api.core.v1.PodSpec",
        "topologySpreadConstraints",
        "topologyKey",
    ),
    ("io.k8s.api.core.v1.PodSpec", "resourceClaims", "name"),
    ("io.k8s.api.core.v1.PodSpec", "schedulingGates", "name"),
    ("io.k8s.api.core.v1.Container", "ports", "containerPort"),
    ("io.k8s.api.core.v1.Container", "env", "name"),
    ("io.k8s.api.core.v1.Container", "volumeMounts", "mountPath"),
    (
        "io.k8s.api.core.v1.Container",
        "volumeDevices",
        "devicePath",
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "ports",
        "containerPort",
    ),
    ("io.k8s.api.core.v1.EphemeralContainer", "env", "name"),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "volumeMounts",
        "mountPath",
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "volumeDevices",
        "devicePath",
    ),
    ("io.k8s.api.core.v1.PodStatus", "conditions", "type"),
    ("io.k8s.api.core.v1.PodStatus", "podIPs", "ip"),
    ("io.k8s.api.core.v1.PodStatus", "hostIPs", "ip"),
    ("io.k8s.api.core.v1.ServiceSpec", "ports", "port"),
    ("io.k8s.api.core.v1.NamespaceStatus", "conditions", "type"),
    ("io.k8s.api.apps.v1.DeploymentStatus", "conditions", "type"),
    ("io.k8s.api.apps.v1.ReplicaSetStatus", "conditions", "type"),
    (
        "io.k8s.api.policy.v1.PodDisruptionBudgetStatus",
        "conditions",
        "type",
    ),
];

/// Adds `x-kubernetes-patch-strategy`/`x-kubernetes-patch-merge-key` where the apiserver's
/// published schemas carry them.
fn add_patch_extensions(defs: &mut Map<String, Value>) {
    for (schema, field, key) in PATCH_MERGE {
        if let Some(p) = defs
            .get_mut(*schema)
            .and_then(|s| s.get_mut("properties"))
            .and_then(|p| p.get_mut(*field))
            .and_then(Value::as_object_mut)
        {
            p.insert("x-kubernetes-patch-strategy".into(), json!("merge"));
            if !key.is_empty() {
                p.insert("x-kubernetes-patch-merge-key".into(), json!(key));
            }
        }
    }
}

fn cached_builtin_defs(group: &str, version: &str) -> Defs {
    static CACHE: OnceLock<std::sync::Mutex<HashMap<String, Defs>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = gv_path(group, version);
    if let Some(d) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return d.clone();
    }
    let mut d = builtin_defs(group, version);
    add_patch_extensions(&mut d);
    let d = Arc::new(d);
    cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, d.clone());
    d
}

fn gvk(t: &ResourceType, version: &str) -> Value {
    json!({"group": t.group, "version": version, "kind": t.kind})
}

fn query_param(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
}

/// The operations of one resource's paths. PATCH lists `fieldValidation` (so kubectl leaves
/// validation to the server) and no strategic-merge body for custom resources.
fn resource_paths(
    t: &ResourceType,
    version: &str,
    schema_ref: &str,
    paths: &mut Map<String, Value>,
) {
    let vi = t.version(version).expect("served version");
    let base = format!("/{}", gv_path(&t.group, version));
    let coll = if t.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}", t.plural)
    } else {
        format!("{base}/{}", t.plural)
    };
    let item = format!("{coll}/{{name}}");
    let reference = json!({"$ref": format!("#/components/schemas/{schema_ref}")});
    let body = |cts: &[&str]| {
        let mut content = Map::new();
        for ct in cts {
            content.insert((*ct).into(), json!({"schema": {"type": "object"}}));
        }
        json!({"content": content, "required": true})
    };
    // No strategic-merge body: kubectl then computes apply patches of built-ins from its
    // compiled-in types and uses merge patches for custom resources, as against a real server.
    let patch_types: &[&str] = &[
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/apply-patch+yaml",
    ];
    let ok = json!({"200": {"description": "OK", "content": {"application/json": {"schema": reference}}}});
    let write_params = json!([
        query_param("dryRun"),
        query_param("fieldManager"),
        query_param("fieldValidation")
    ]);
    let mut patch_params = write_params.clone();
    patch_params
        .as_array_mut()
        .expect("array")
        .push(query_param("force"));
    let op = |action: &str, params: &Value, body: Option<Value>, g: Value| {
        let mut o = json!({
            "operationId": format!("{action}{}", t.kind),
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": g,
            "parameters": params,
            "responses": ok,
        });
        if let Some(b) = body {
            o["requestBody"] = b;
        }
        o
    };
    let none = json!([]);
    paths.insert(
        coll,
        json!({
            "get": op("list", &none, None, gvk(t, version)),
            "post": op("post", &write_params, Some(body(&["application/json"])), gvk(t, version)),
        }),
    );
    paths.insert(
        item.clone(),
        json!({
            "get": op("get", &none, None, gvk(t, version)),
            "put": op("put", &write_params, Some(body(&["application/json"])), gvk(t, version)),
            "patch": op("patch", &patch_params, Some(body(patch_types)), gvk(t, version)),
            "delete": op("delete", &none, None, gvk(t, version)),
        }),
    );
    if vi.status {
        paths.insert(
            format!("{item}/status"),
            json!({
                "get": op("get", &none, None, gvk(t, version)),
                "put": op("put", &write_params, Some(body(&["application/json"])), gvk(t, version)),
                "patch": op("patch", &patch_params, Some(body(patch_types)), gvk(t, version)),
            }),
        );
    }
    if t.group.is_empty() && t.plural == "pods" {
        let eviction = json!({"group": "policy", "version": "v1", "kind": "Eviction"});
        let mut post = op(
            "post",
            &write_params,
            Some(body(&["application/json"])),
            eviction,
        );
        post["operationId"] = json!("createNamespacedPodEviction");
        post["responses"] = json!({"201": {"description": "Created", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/io.k8s.api.policy.v1.Eviction"}}}}});
        paths.insert(format!("{item}/eviction"), json!({ "post": post }));
    }
    if vi.scale.is_some() {
        let scale_gvk = json!({"group": "autoscaling", "version": "v1", "kind": "Scale"});
        paths.insert(format!("{item}/scale"), json!({
            "get": op("get", &none, None, scale_gvk.clone()),
            "put": op("put", &write_params, Some(body(&["application/json"])), scale_gvk.clone()),
            "patch": op("patch", &patch_params, Some(body(patch_types)), scale_gvk),
        }));
    }
}

/// The document for `api/v1` or `apis/{group}/{version}`, or `None` when not served.
pub fn group_version_doc(reg: &Registry, gv: &str) -> Option<Value> {
    let segs: Vec<&str> = gv.split('/').collect();
    let (group, version) = match segs.as_slice() {
        ["api", v] => ("", *v),
        ["apis", g, v] => (*g, *v),
        _ => return None,
    };
    let types: Vec<_> = reg.in_group_version(group, version).cloned().collect();
    if types.is_empty() {
        return None;
    }
    let mut schemas = Map::new();
    let mut paths = Map::new();
    if types.iter().any(|t| !t.crd) {
        schemas.extend(
            cached_builtin_defs(group, version)
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
    }
    if types.iter().any(|t| t.crd) {
        // Custom resources' metadata is published as the real ObjectMeta, as the apiserver does.
        schemas.extend(
            cached_builtin_defs("meta.k8s.io", "v1")
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
    }
    for t in &types {
        let name = schema_name(t, version);
        if t.crd {
            let mut s = t
                .version(version)
                .and_then(|v| v.schema.clone())
                .unwrap_or_else(
                    || json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
                );
            if let Some(props) = s.get_mut("properties").and_then(Value::as_object_mut) {
                props.entry("apiVersion").or_insert(json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}));
                props.entry("kind").or_insert(json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}));
                props.insert(
                    "metadata".into(),
                    json!({
                        "allOf": [{"$ref": format!("#/components/schemas/{OBJECT_META}")}],
                        "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
                    }),
                );
            }
            schemas.insert(name.clone(), s);
        }
        if let Some(s) = schemas.get_mut(&name) {
            s["x-kubernetes-group-version-kind"] = json!([gvk(t, version)]);
        }
        resource_paths(t, version, &name, &mut paths);
    }
    if let Some(s) = schemas.get_mut("io.k8s.api.autoscaling.v1.Scale") {
        s["x-kubernetes-group-version-kind"] =
            json!([{"group": "autoscaling", "version": "v1", "kind": "Scale"}]);
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

fn resolve<'a>(mut s: &'a Value, defs: &'a Map<String, Value>) -> &'a Value {
    for _ in 0..16 {
        if let Some(r) = s["$ref"].as_str() {
            match defs.get(r.trim_start_matches("#/components/schemas/")) {
                Some(d) => s = d,
                None => return s,
            }
        } else if let Some([one]) = s["allOf"].as_array().map(Vec::as_slice) {
            s = one;
        } else {
            return s;
        }
    }
    s
}

fn walk_unknown(
    v: &Value,
    schema: &Value,
    defs: &Map<String, Value>,
    path: &str,
    out: &mut Vec<String>,
) {
    let schema = resolve(schema, defs);
    if schema["x-kubernetes-preserve-unknown-fields"] == true
        || schema["x-kubernetes-int-or-string"] == true
    {
        return;
    }
    match v {
        Value::Object(m) => {
            let props = schema["properties"].as_object();
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, x) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                if let Some(ps) = props.and_then(|ps| ps.get(k)) {
                    walk_unknown(x, ps, defs, &p, out);
                } else if let Some(a) = additional {
                    walk_unknown(x, a, defs, &p, out);
                } else if props.is_some()
                    && schema
                        .get("additionalProperties")
                        .is_none_or(|a| a == false)
                {
                    out.push(p);
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = schema.get("items") {
                for (i, x) in a.iter().enumerate() {
                    walk_unknown(x, items, defs, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// Fields of `obj` its schema does not declare (`spec.junk`, `spec.containers[0].imagee`), for
/// `fieldValidation=Strict|Warn`.
pub fn unknown_fields(t: &ResourceType, version: &str, obj: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if t.crd {
        let Some(schema) = t.version(version).and_then(|v| v.schema.as_ref()) else {
            return out;
        };
        let empty = Map::new();
        if let Some(m) = obj.as_object() {
            for (k, x) in m {
                if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                match schema["properties"].get(k) {
                    Some(ps) => walk_unknown(x, ps, &empty, k, &mut out),
                    None if schema["x-kubernetes-preserve-unknown-fields"] != true => {
                        out.push(k.clone())
                    }
                    None => {}
                }
            }
        }
    } else {
        let defs = cached_builtin_defs(&t.group, version);
        if let Some(root) = defs.get(&schema_name(t, version)) {
            walk_unknown(obj, root, &defs, "", &mut out);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apps_v1_document_has_deployment_schema_with_gvk_and_field_validation() {
        let reg = Registry::with_builtins();
        let doc = group_version_doc(&reg, "apis/apps/v1").unwrap();
        let d = &doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            d["x-kubernetes-group-version-kind"][0]["kind"],
            "Deployment"
        );
        let p = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert!(
            p["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["name"] == "fieldValidation")
        );
        assert!(doc["components"]["schemas"]["io.k8s.api.apps.v1.DeploymentSpec"].is_object());
        let containers =
            &doc["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        let ports =
            &doc["components"]["schemas"]["io.k8s.api.core.v1.Container"]["properties"]["ports"];
        assert_eq!(ports["x-kubernetes-patch-merge-key"], "containerPort");
    }

    #[test]
    fn unknown_fields_are_found_through_refs() {
        let reg = Registry::with_builtins();
        let t = reg.lookup("apps", "v1", "deployments").unwrap();
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x", "labels": {"a": "b"}},
            "spec": {"replica": 1, "template": {"spec": {"containers": [{"name": "c", "imagee": "x"}]}}}});
        assert_eq!(
            unknown_fields(&t, "v1", &d),
            vec!["spec.replica", "spec.template.spec.containers[0].imagee"]
        );
    }

    #[test]
    fn custom_resource_metadata_refers_to_object_meta() {
        let mut reg = Registry::with_builtins();
        let crd = json!({"spec": {"group": "argoproj.io", "names": {"plural": "rollouts", "kind": "Rollout"},
            "versions": [{"name": "v1alpha1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object"}}}}}]}});
        let t = crate::types::from_crd(&crd).unwrap();
        reg.types.insert(t.gr(), Arc::new(t));
        let doc = group_version_doc(&reg, "apis/argoproj.io/v1alpha1").unwrap();
        let ro = &doc["components"]["schemas"]["io.argoproj.v1alpha1.Rollout"];
        assert_eq!(
            ro["properties"]["metadata"]["allOf"][0]["$ref"],
            format!("#/components/schemas/{OBJECT_META}")
        );
        assert!(doc["components"]["schemas"][OBJECT_META]["properties"]["labels"].is_object());
        assert_eq!(ro["x-kubernetes-group-version-kind"][0]["kind"], "Rollout");
    }

    #[test]
    fn index_lists_every_group_version() {
        let reg = Registry::with_builtins();
        let idx = index(&reg);
        assert!(
            idx["paths"]["api/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .starts_with("/openapi/v3/api/v1?hash=")
        );
        assert!(idx["paths"]["apis/autoscaling/v1"].is_object());
        assert!(group_version_doc(&reg, "apis/nope/v1").is_none());
    }
}
