//! The write semantics of the apiserver on top of the store: create, update (main and status),
//! delete with finalizers and propagation, scale, and what CustomResourceDefinition writes do to
//! the served types. Everything runs synchronously under the store lock.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::error::{ApiError, Cause};
use super::names::{self, NameRule};
use super::schema;
use super::selector::label_selector_string;
use super::store::{GcWork, State};
use super::types::{self, GroupResource, ResourceType};

/// Per-request write options.
#[derive(Debug, Clone, Default)]
pub struct WriteOpts {
    pub dry_run: bool,
    /// RFC 3339 timestamp of the request (`creationTimestamp`, `deletionTimestamp`).
    pub now: String,
}

/// Which part of the object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Main,
    Status,
}

/// How dependents are treated when their owner is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

/// The parsed `DeleteOptions`.
#[derive(Debug, Clone)]
pub struct DeleteOpts {
    pub propagation: Propagation,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
}

/// The outcome of a DELETE.
#[derive(Debug)]
pub enum Deleted {
    /// Removed now; the last state of the object.
    Gone(Arc<Value>),
    /// Marked for deletion (finalizers or foreground); the object as it now is.
    Pending(Arc<Value>),
}

pub const CRD_GR: (&str, &str) = ("apiextensions.k8s.io", "customresourcedefinitions");
const NS_GR: (&str, &str) = ("", "namespaces");

fn gr_of(t: &ResourceType) -> GroupResource {
    t.gr()
}

fn is_gr(gr: &GroupResource, want: (&str, &str)) -> bool {
    gr.0 == want.0 && gr.1 == want.1
}

/// Rejects a body whose apiVersion/kind disagree with the URL, then fills them in.
fn check_type_meta(t: &ResourceType, version: &str, obj: &mut Value) -> Result<(), ApiError> {
    let want_av = t.api_version(version);
    if let Some(av) = obj.get("apiVersion").and_then(Value::as_str)
        && !av.is_empty()
        && av != want_av
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({want_av})"
        )));
    }
    if let Some(k) = obj.get("kind").and_then(Value::as_str)
        && !k.is_empty()
        && k != t.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            t.kind
        )));
    }
    obj["apiVersion"] = json!(want_av);
    obj["kind"] = json!(t.kind);
    Ok(())
}

fn meta(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

fn strip_system_fields(m: &mut Map<String, Value>) {
    for k in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "selfLink",
    ] {
        m.remove(k);
    }
}

fn rv_of(obj: &Value) -> &str {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
}

fn invalid(t: &ResourceType, name: &str, causes: Vec<Cause>) -> ApiError {
    ApiError::invalid(&t.qualified_kind(), &t.group, &t.kind, name, causes)
}

/// The parts of an object whose change bumps `metadata.generation`.
fn spec_view(obj: &Value, status_sub: bool) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        if status_sub {
            m.remove("status");
        }
    }
    v
}

fn ensure_namespace(st: &State, t: &ResourceType, ns: &str, name: &str) -> Result<(), ApiError> {
    if !t.namespaced {
        return Ok(());
    }
    let ns_gr = (NS_GR.0.to_string(), NS_GR.1.to_string());
    match st.get(&ns_gr, "", ns) {
        None => Err(ApiError::not_found("", "namespaces", ns)),
        Some(n) if !n["metadata"]["deletionTimestamp"].is_null() => Err(ApiError {
            code: 403,
            reason: "Forbidden",
            message: format!(
                "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                super::error::group_resource(&t.group, &t.plural),
            ),
            details: Some(json!({"name": name, "kind": t.plural})),
        }),
        Some(_) => Ok(()),
    }
}

fn set_default(obj: &mut Value, key: &str, v: Value) {
    if obj.get(key).is_none_or(Value::is_null)
        && let Some(m) = obj.as_object_mut()
    {
        m.insert(key.to_string(), v);
    }
}

/// The apiserver's defaults for a PodSpec; controllers that compare pod templates see these on
/// a real cluster, so they must see them here too.
fn default_pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    for list in ["containers", "initContainers"] {
        for c in spec
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let image = c["image"].as_str().unwrap_or_default();
            let tag = image.rsplit('/').next().unwrap_or_default();
            let latest = !image.contains('@') && (!tag.contains(':') || tag.ends_with(":latest"));
            set_default(
                c,
                "imagePullPolicy",
                json!(if latest { "Always" } else { "IfNotPresent" }),
            );
            set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
            set_default(c, "terminationMessagePolicy", json!("File"));
            set_default(c, "resources", json!({}));
            for p in c
                .get_mut("ports")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                set_default(p, "protocol", json!("TCP"));
            }
        }
    }
}

/// apps/v1 requires a selector that matches the template's labels.
fn validate_selector(t: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let sel = &obj["spec"]["selector"];
    if sel.is_null() || sel.as_object().is_some_and(|m| m.is_empty()) {
        return Err(invalid(
            t,
            name,
            vec![Cause {
                reason: "FieldValueRequired",
                field: "spec.selector".into(),
                message: "Required value".into(),
            }],
        ));
    }
    let labels = &obj["spec"]["template"]["metadata"]["labels"];
    let parsed = super::selector::Selector::parse_labels(&label_selector_string(sel));
    let matches = parsed.is_ok_and(|s| s.matches_labels(&obj["spec"]["template"]));
    if !matches {
        let shown: Vec<String> = labels
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k:?}:{:?}", v.as_str().unwrap_or_default()))
            .collect();
        return Err(invalid(
            t,
            name,
            vec![Cause {
                reason: "FieldValueInvalid",
                field: "spec.template.metadata.labels".into(),
                message: format!(
                    "Invalid value: map[string]string{{{}}}: `selector` does not match template `labels`",
                    shown.join(", ")
                ),
            }],
        ));
    }
    Ok(())
}

/// Go's `%#v` rendering of a LabelSelector, as immutability errors print it.
fn go_selector(sel: &Value) -> String {
    let labels: Vec<String> = sel["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k:?}:{:?}", v.as_str().unwrap_or_default()))
        .collect();
    let labels = if labels.is_empty() {
        "map[string]string(nil)".to_string()
    } else {
        format!("map[string]string{{{}}}", labels.join(", "))
    };
    format!(
        "v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}}"
    )
}

/// Fields the apiserver refuses to change after creation.
fn check_immutable(t: &ResourceType, old: &Value, new: &Value) -> Result<(), ApiError> {
    let name = new["metadata"]["name"].as_str().unwrap_or_default();
    let immutable = |field: &str, shown: String| {
        invalid(
            t,
            name,
            vec![Cause {
                reason: "FieldValueInvalid",
                field: field.into(),
                message: format!("Invalid value: {shown}: field is immutable"),
            }],
        )
    };
    match (t.group.as_str(), t.plural.as_str()) {
        ("apps", "deployments" | "replicasets") | ("batch", "jobs")
            if old["spec"]["selector"] != new["spec"]["selector"] =>
        {
            Err(immutable(
                "spec.selector",
                go_selector(&new["spec"]["selector"]),
            ))
        }
        ("", "services") if old["spec"]["clusterIP"] != new["spec"]["clusterIP"] => Err(immutable(
            "spec.clusterIP",
            format!(
                "{:?}",
                new["spec"]["clusterIP"].as_str().unwrap_or_default()
            ),
        )),
        _ => Ok(()),
    }
}

/// Built-in defaulting the apiserver performs that clients rely on.
fn default_builtin(st: &mut State, t: &ResourceType, obj: &mut Value, creating: bool) {
    match (t.group.as_str(), t.plural.as_str()) {
        ("", "pods") => {
            if let Some(spec) = obj.get_mut("spec") {
                default_pod_spec(spec);
            }
        }
        ("apps", _) | ("batch", "jobs") => {
            let spec = obj
                .get_mut("spec")
                .and_then(|s| s.get_mut("template"))
                .and_then(|t| t.get_mut("spec"));
            if let Some(spec) = spec {
                default_pod_spec(spec);
            }
        }
        _ => {}
    }
    if (t.group.as_str(), t.plural.as_str()) == ("batch", "jobs")
        && creating
        && obj["spec"]["selector"].is_null()
        && obj["spec"]["manualSelector"] != true
    {
        let uid = obj["metadata"]["uid"].clone();
        let name = obj["metadata"]["name"].clone();
        obj["spec"]["selector"] =
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
        if !obj["spec"]["template"]["metadata"]["labels"].is_object() {
            obj["spec"]["template"]["metadata"]["labels"] = json!({});
        }
        let l = &mut obj["spec"]["template"]["metadata"]["labels"];
        l["batch.kubernetes.io/controller-uid"] = uid.clone();
        l["batch.kubernetes.io/job-name"] = name.clone();
        l["controller-uid"] = uid;
        l["job-name"] = name;
        set_default(&mut obj["spec"], "completionMode", json!("NonIndexed"));
        set_default(&mut obj["spec"], "suspend", json!(false));
    }
    match (t.group.as_str(), t.plural.as_str()) {
        ("", "namespaces") if obj["status"]["phase"].is_null() => {
            obj["status"] = json!({"phase": "Active"});
        }
        ("", "pods") if creating && obj["status"]["phase"].is_null() => {
            obj["status"] = json!({"phase": "Pending"});
        }
        ("", "services") => {
            let spec = &mut obj["spec"];
            if spec["type"].is_null() {
                spec["type"] = json!("ClusterIP");
            }
            if spec["sessionAffinity"].is_null() {
                spec["sessionAffinity"] = json!("None");
            }
            if spec["clusterIP"].is_null() && spec["type"] != "ExternalName" {
                st.service_ips += 1;
                let n = st.service_ips;
                let ip = format!("10.96.{}.{}", (n / 250) % 250, n % 250 + 1);
                spec["clusterIP"] = json!(ip);
                spec["clusterIPs"] = json!([ip]);
            }
            if let Some(ports) = spec["ports"].as_array_mut() {
                for p in ports {
                    if p["protocol"].is_null() {
                        p["protocol"] = json!("TCP");
                    }
                    if p["targetPort"].is_null() {
                        p["targetPort"] = p["port"].clone();
                    }
                }
            }
        }
        ("", "secrets") => {
            if obj["type"].is_null() {
                obj["type"] = json!("Opaque");
            }
            if let Some(sd) = obj.get("stringData").and_then(Value::as_object).cloned() {
                use base64::Engine as _;
                for (k, v) in sd {
                    let raw = v.as_str().unwrap_or_default();
                    obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(raw));
                }
                obj.as_object_mut().map(|m| m.remove("stringData"));
            }
        }
        ("apps", "deployments") => {
            let spec = &mut obj["spec"];
            if spec["replicas"].is_null() {
                spec["replicas"] = json!(1);
            }
            if spec["revisionHistoryLimit"].is_null() {
                spec["revisionHistoryLimit"] = json!(10);
            }
            if spec["progressDeadlineSeconds"].is_null() {
                spec["progressDeadlineSeconds"] = json!(600);
            }
            if spec["strategy"].is_null() {
                spec["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}});
            }
        }
        ("autoscaling", "horizontalpodautoscalers") => super::hpa::default_v2(obj),
        ("apps", "replicasets") if obj["spec"]["replicas"].is_null() => {
            obj["spec"]["replicas"] = json!(1);
        }
        ("batch", "jobs") => {
            let spec = &mut obj["spec"];
            for (k, v) in [("backoffLimit", 6), ("completions", 1), ("parallelism", 1)] {
                if spec[k].is_null() {
                    spec[k] = json!(v);
                }
            }
        }
        _ => {}
    }
}

/// Schema-driven processing of a custom resource: prune, default, validate.
fn process_custom(t: &ResourceType, version: &str, obj: &mut Value) -> Result<(), ApiError> {
    let Some(schema) = t.version(version).and_then(|v| v.schema.as_ref()) else {
        return Ok(());
    };
    schema::prune(obj, schema);
    schema::apply_defaults(obj, schema);
    let errs = schema::validate(obj, schema);
    if errs.is_empty() {
        return Ok(());
    }
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    Err(invalid(
        t,
        &name,
        errs.into_iter()
            .map(|e| Cause {
                reason: e.reason.cause_type(),
                field: e.path,
                message: e.message,
            })
            .collect(),
    ))
}

/// Validates a CRD and fills in the status an established CRD has.
fn prepare_crd(st: &State, obj: &mut Value, now: &str) -> Result<Arc<ResourceType>, ApiError> {
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let crd_t = st
        .registry
        .types
        .get(&(CRD_GR.0.to_string(), CRD_GR.1.to_string()))
        .cloned()
        .expect("CRDs are built in");
    let t = types::from_crd(obj).map_err(|m| {
        invalid(
            &crd_t,
            &name,
            vec![Cause {
                reason: "FieldValueRequired",
                field: "spec".into(),
                message: m,
            }],
        )
    })?;
    let want = format!("{}.{}", t.plural, t.group);
    if name != want {
        return Err(invalid(
            &crd_t,
            &name,
            vec![Cause {
                reason: "FieldValueInvalid",
                field: "metadata.name".into(),
                message: format!(
                    "Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"
                ),
            }],
        ));
    }
    if let Some(existing) = st.registry.types.get(&t.gr())
        && !existing.crd
    {
        return Err(invalid(
            &crd_t,
            &name,
            vec![Cause {
                reason: "FieldValueInvalid",
                field: "spec.group".into(),
                message: format!("Invalid value: {:?}: is a built-in API group", t.group),
            }],
        ));
    }
    let names = &obj["spec"]["names"];
    let since = obj["status"]["conditions"]
        .as_array()
        .and_then(|c| c.first())
        .and_then(|c| c["lastTransitionTime"].as_str())
        .unwrap_or(now)
        .to_string();
    let stored: Vec<String> = obj["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .filter_map(|v| v["name"].as_str().map(str::to_string))
        .collect();
    obj["status"] = json!({
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": since},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": since},
        ],
        "acceptedNames": {
            "plural": t.plural, "singular": t.singular, "kind": t.kind, "listKind": t.list_kind,
            "shortNames": names["shortNames"].clone(), "categories": names["categories"].clone(),
        },
        "storedVersions": stored,
    });
    if let Some(an) = obj["status"]["acceptedNames"].as_object_mut() {
        an.retain(|_, v| !v.is_null());
    }
    Ok(Arc::new(t))
}

fn name_causes(t: &ResourceType, name: &str) -> Vec<Cause> {
    names::validate(name, NameRule::for_resource(&t.group, &t.plural))
        .into_iter()
        .map(|m| Cause {
            reason: "FieldValueInvalid",
            field: "metadata.name".into(),
            message: m,
        })
        .collect()
}

fn check_metadata(t: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    let errs = names::validate_metadata(&obj["metadata"]);
    if errs.is_empty() {
        return Ok(());
    }
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    Err(invalid(
        t,
        name,
        errs.into_iter()
            .map(|(field, message)| Cause {
                reason: if message.starts_with("Too long") {
                    "FieldValueTooLong"
                } else {
                    "FieldValueInvalid"
                },
                field,
                message,
            })
            .collect(),
    ))
}

/// POST: creates a new object.
pub fn create(
    st: &mut State,
    t: &ResourceType,
    version: &str,
    ns: &str,
    mut obj: Value,
    o: &WriteOpts,
) -> Result<Value, ApiError> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    check_type_meta(t, version, &mut obj)?;
    let m = meta(&mut obj);
    strip_system_fields(m);
    if t.namespaced {
        match m.get("namespace").and_then(Value::as_str) {
            Some(b) if !b.is_empty() && b != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {
                m.insert("namespace".into(), json!(ns));
            }
        }
    } else {
        m.remove("namespace");
    }
    let mut name = m
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let generate = m
        .get("generateName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if name.is_empty() {
        if generate.is_empty() {
            return Err(invalid(
                t,
                "",
                vec![Cause {
                    reason: "FieldValueRequired",
                    field: "metadata.name".into(),
                    message: "Required value: name or generateName is required".into(),
                }],
            ));
        }
        let base: String = generate.chars().take(58).collect();
        for _ in 0..8 {
            let r = st.random();
            name = format!("{base}{}", names::random_suffix(r));
            if st.get(&gr_of(t), ns, &name).is_none() {
                break;
            }
        }
    }
    let causes = name_causes(t, &name);
    if !causes.is_empty() {
        return Err(invalid(t, &name, causes));
    }
    obj["metadata"]["name"] = json!(name);
    check_metadata(t, &obj)?;
    ensure_namespace(st, t, ns, &name)?;
    if st.get(&gr_of(t), ns, &name).is_some() {
        return Err(ApiError::already_exists(&t.group, &t.plural, &name));
    }
    let uid = st.new_uid();
    let m = meta(&mut obj);
    m.insert("name".into(), json!(name));
    m.insert("uid".into(), json!(uid));
    m.insert("creationTimestamp".into(), json!(o.now));
    m.insert("generation".into(), json!(1));
    let status_sub = t.version(version).is_some_and(|v| v.status);
    let is_crd = is_gr(&gr_of(t), CRD_GR);
    if status_sub && !is_crd && t.plural != "namespaces" {
        obj.as_object_mut().map(|m| m.remove("status"));
    }
    if t.crd {
        process_custom(t, version, &mut obj)?;
    } else {
        default_builtin(st, t, &mut obj, true);
        if t.group == "apps" {
            validate_selector(t, &obj)?;
        }
    }
    let new_type = if is_crd {
        Some(prepare_crd(st, &mut obj, &o.now)?)
    } else {
        None
    };
    if o.dry_run {
        return Ok(obj);
    }
    let stored = st.put(&gr_of(t), obj);
    if let Some(nt) = new_type {
        st.registry.types.insert(nt.gr(), nt);
    }
    Ok((*stored).clone())
}

/// PUT (and the tail of PATCH): replaces the object's `part`.
#[allow(clippy::too_many_arguments)]
pub fn update(
    st: &mut State,
    t: &ResourceType,
    version: &str,
    ns: &str,
    name: &str,
    mut obj: Value,
    part: Part,
    o: &WriteOpts,
) -> Result<Value, ApiError> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    check_type_meta(t, version, &mut obj)?;
    let gr = gr_of(t);
    let body_name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    if t.namespaced
        && let Some(bns) = obj["metadata"]["namespace"].as_str()
        && !bns.is_empty()
        && bns != ns
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let Some(current) = st.get(&gr, ns, name).cloned() else {
        return Err(ApiError::not_found(&t.group, &t.plural, name));
    };
    let want_rv = rv_of(&obj);
    if want_rv.is_empty() && t.crd {
        // Custom resources allow no unconditional updates.
        return Err(ApiError::invalid(
            &super::error::group_resource(&t.group, &t.plural),
            &t.group,
            &t.plural,
            name,
            vec![Cause {
                reason: "FieldValueInvalid",
                field: "metadata.resourceVersion".into(),
                message: "Invalid value: 0x0: must be specified for an update".into(),
            }],
        ));
    }
    if !want_rv.is_empty() && want_rv != rv_of(&current) {
        return Err(ApiError::conflict(&t.group, &t.plural, name));
    }
    let status_sub = t.version(version).is_some_and(|v| v.status);
    let mut new = match part {
        Part::Status => {
            let mut n = (*current).clone();
            match obj.get("status") {
                Some(s) => n["status"] = s.clone(),
                None => {
                    n.as_object_mut().map(|m| m.remove("status"));
                }
            }
            n
        }
        Part::Main => {
            let mut n = obj;
            if status_sub {
                match current.get("status") {
                    Some(s) => n["status"] = s.clone(),
                    None => {
                        n.as_object_mut().map(|m| m.remove("status"));
                    }
                }
            }
            let m = meta(&mut n);
            strip_system_fields(m);
            let cm = current["metadata"].as_object().cloned().unwrap_or_default();
            for k in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ] {
                if let Some(v) = cm.get(k) {
                    m.insert(k.into(), v.clone());
                }
            }
            m.insert("name".into(), json!(name));
            if t.namespaced {
                m.insert("namespace".into(), json!(ns));
            } else {
                m.remove("namespace");
            }
            m.remove("generateName");
            if let Some(g) = cm.get("generateName") {
                m.insert("generateName".into(), g.clone());
            }
            n
        }
    };
    new["apiVersion"] = current["apiVersion"].clone();
    check_metadata(t, &new)?;
    if t.crd {
        if part == Part::Main {
            process_custom(t, version, &mut new)?;
        }
    } else {
        if (t.group.as_str(), t.plural.as_str()) == ("", "services") {
            // Allocated IPs survive an update that omits them.
            for k in ["clusterIP", "clusterIPs"] {
                if new["spec"].get(k).is_none_or(Value::is_null)
                    && let Some(v) = current["spec"].get(k)
                    && new["spec"].is_object()
                {
                    new["spec"][k] = v.clone();
                }
            }
        }
        default_builtin(st, t, &mut new, false);
        if t.group == "apps" && part == Part::Main {
            validate_selector(t, &new)?;
        }
        check_immutable(t, &current, &new)?;
    }
    let is_crd = is_gr(&gr, CRD_GR);
    let new_type = if is_crd {
        Some(prepare_crd(st, &mut new, &o.now)?)
    } else {
        None
    };
    if is_crd
        && (current["spec"]["names"]["plural"] != new["spec"]["names"]["plural"]
            || current["spec"]["group"] != new["spec"]["group"])
    {
        return Err(invalid(
            t,
            name,
            vec![Cause {
                reason: "FieldValueInvalid",
                field: "spec.names.plural".into(),
                message: "Invalid value: the group and plural of a CustomResourceDefinition are immutable".into(),
            }],
        ));
    }
    if spec_view(&new, status_sub) != spec_view(&current, status_sub) {
        let g = current["metadata"]["generation"].as_i64().unwrap_or(1);
        new["metadata"]["generation"] = json!(g + 1);
    }
    let mut cur_cmp = (*current).clone();
    cur_cmp["metadata"]["resourceVersion"] = Value::Null;
    let mut new_cmp = new.clone();
    new_cmp["metadata"]["resourceVersion"] = Value::Null;
    if cur_cmp == new_cmp {
        // A no-op write neither bumps the resourceVersion nor wakes watchers.
        return Ok((*current).clone());
    }
    if o.dry_run {
        // A dry run answers with the object as it would be, still at the stored version.
        new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
        return Ok(new);
    }
    let deleting = !new["metadata"]["deletionTimestamp"].is_null();
    let no_finalizers = new["metadata"]["finalizers"]
        .as_array()
        .is_none_or(|f| f.is_empty());
    let stored = st.put(&gr, new);
    if let Some(nt) = new_type {
        st.registry.types.insert(nt.gr(), nt);
    }
    if deleting
        && no_finalizers
        && !is_gr(&gr, NS_GR)
        && let Some(gone) = remove_final(st, &gr, ns, name)
    {
        return Ok((*gone).clone());
    }
    Ok((*stored).clone())
}

/// Removes an object for good, with what that means for CRDs (their types and objects go too).
pub fn remove_final(
    st: &mut State,
    gr: &GroupResource,
    ns: &str,
    name: &str,
) -> Option<Arc<Value>> {
    let gone = st.remove(gr, ns, name)?;
    if is_gr(gr, CRD_GR)
        && let Ok(t) = types::from_crd(&gone)
    {
        let cgr = t.gr();
        if st.registry.types.get(&cgr).is_some_and(|x| x.crd) {
            st.registry.types.remove(&cgr);
            st.drop_resource(&cgr);
        }
    }
    Some(gone)
}

/// Strips `uid` from the ownerReferences of every dependent (Orphan propagation).
fn orphan_dependents(st: &mut State, uid: &str) {
    for (dgr, (dns, dname)) in st.dependents_of(uid) {
        let Some(d) = st.get(&dgr, &dns, &dname).cloned() else {
            continue;
        };
        let mut d = (*d).clone();
        if let Some(refs) = d["metadata"]["ownerReferences"].as_array_mut() {
            refs.retain(|r| r["uid"].as_str() != Some(uid));
            if refs.is_empty() {
                d["metadata"]
                    .as_object_mut()
                    .map(|m| m.remove("ownerReferences"));
            }
        }
        st.put(&dgr, d);
    }
}

/// DELETE of one object.
pub fn delete(
    st: &mut State,
    t: &ResourceType,
    ns: &str,
    name: &str,
    opts: &DeleteOpts,
    o: &WriteOpts,
) -> Result<Deleted, ApiError> {
    let gr = gr_of(t);
    let Some(current) = st.get(&gr, ns, name).cloned() else {
        return Err(ApiError::not_found(&t.group, &t.plural, name));
    };
    if let Some(uid) = &opts.precondition_uid
        && current["metadata"]["uid"].as_str() != Some(uid.as_str())
    {
        return Err(ApiError::conflict_msg(
            &t.group,
            &t.plural,
            name,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                current["metadata"]["uid"].as_str().unwrap_or_default()
            ),
        ));
    }
    if let Some(rv) = &opts.precondition_rv
        && rv != rv_of(&current)
    {
        return Err(ApiError::conflict_msg(
            &t.group,
            &t.plural,
            name,
            &format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                rv_of(&current)
            ),
        ));
    }
    if o.dry_run {
        return Ok(Deleted::Gone(current));
    }
    let uid = current["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut finalizers: Vec<Value> = current["metadata"]["finalizers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let already = !current["metadata"]["deletionTimestamp"].is_null();
    if opts.propagation == Propagation::Orphan {
        orphan_dependents(st, &uid);
    }
    let is_ns = is_gr(&gr, NS_GR);
    let foreground =
        opts.propagation == Propagation::Foreground && !st.dependents_of(&uid).is_empty();
    if foreground && !finalizers.iter().any(|f| f == "foregroundDeletion") {
        finalizers.push(json!("foregroundDeletion"));
    }
    if finalizers.is_empty() && !is_ns {
        let gone = remove_final(st, &gr, ns, name).expect("object exists");
        return Ok(Deleted::Gone(gone));
    }
    if already && !foreground {
        return Ok(Deleted::Pending(current));
    }
    let mut marked = (*current).clone();
    if !already {
        marked["metadata"]["deletionTimestamp"] = json!(o.now);
        marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
    }
    if !finalizers.is_empty() {
        marked["metadata"]["finalizers"] = Value::Array(finalizers);
    }
    if is_ns {
        marked["status"]["phase"] = json!("Terminating");
        st.gc_queue.push_back(GcWork::Namespace(name.to_string()));
    }
    if foreground {
        st.gc_queue.push_back(GcWork::Owner(uid));
    }
    let stored = st.put(&gr, marked);
    Ok(Deleted::Pending(stored))
}

/// Reads a dotted JSON path such as `.spec.replicas`.
pub fn get_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = obj;
    for seg in path
        .trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
    {
        cur = cur.get(seg)?;
    }
    Some(cur)
}

fn set_path(obj: &mut Value, path: &str, v: Value) {
    let segs: Vec<&str> = path
        .trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
        .collect();
    let mut cur = obj;
    for (i, seg) in segs.iter().enumerate() {
        if i == segs.len() - 1 {
            cur[*seg] = v;
            return;
        }
        if !cur[*seg].is_object() {
            cur[*seg] = json!({});
        }
        cur = &mut cur[*seg];
    }
}

/// The autoscaling/v1 Scale view of an object.
pub fn scale_of(t: &ResourceType, version: &str, obj: &Value) -> Result<Value, ApiError> {
    let Some(spec) = t.version(version).and_then(|v| v.scale.clone()) else {
        return Err(ApiError::no_resource());
    };
    let selector = spec
        .label_selector_path
        .as_deref()
        .and_then(|p| get_path(obj, p))
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other if other.is_object() => label_selector_string(other),
            _ => String::new(),
        })
        .unwrap_or_default();
    let m = &obj["metadata"];
    let mut status = json!({
        "replicas": get_path(obj, &spec.status_replicas_path).and_then(Value::as_i64).unwrap_or(0),
    });
    if !selector.is_empty() {
        status["selector"] = json!(selector);
    }
    let mut meta = json!({
        "name": m["name"], "uid": m["uid"], "resourceVersion": m["resourceVersion"],
        "creationTimestamp": m["creationTimestamp"],
    });
    if t.namespaced {
        meta["namespace"] = m["namespace"].clone();
    }
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": meta,
        "spec": {"replicas": get_path(obj, &spec.spec_replicas_path).and_then(Value::as_i64).unwrap_or(0)},
        "status": status,
    }))
}

/// PUT/PATCH of `/scale`: writes the replica count through to the object.
pub fn update_scale(
    st: &mut State,
    t: &ResourceType,
    version: &str,
    ns: &str,
    name: &str,
    scale: &Value,
    o: &WriteOpts,
) -> Result<Value, ApiError> {
    let Some(spec) = t.version(version).and_then(|v| v.scale.clone()) else {
        return Err(ApiError::no_resource());
    };
    let gr = gr_of(t);
    let Some(current) = st.get(&gr, ns, name).cloned() else {
        return Err(ApiError::not_found(&t.group, &t.plural, name));
    };
    let rv = rv_of(scale);
    if !rv.is_empty() && rv != rv_of(&current) {
        return Err(ApiError::conflict(&t.group, &t.plural, name));
    }
    let replicas = scale["spec"]["replicas"].as_i64();
    let Some(replicas) = replicas.filter(|r| *r >= 0) else {
        let shown = scale["spec"]["replicas"].to_string();
        return Err(ApiError::invalid(
            "Scale.autoscaling",
            "autoscaling",
            "Scale",
            name,
            vec![Cause {
                reason: "FieldValueInvalid",
                field: "spec.replicas".into(),
                message: format!("Invalid value: {shown}: must be greater than or equal to 0"),
            }],
        ));
    };
    let mut new = (*current).clone();
    set_path(&mut new, &spec.spec_replicas_path, json!(replicas));
    let updated = update(st, t, version, ns, name, new, Part::Main, o)?;
    scale_of(t, version, &updated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Registry;

    fn opts() -> WriteOpts {
        WriteOpts {
            dry_run: false,
            now: "2026-01-01T00:00:00Z".into(),
        }
    }

    fn state() -> State {
        let mut st = State::new(100);
        let ns = st.registry.lookup("", "v1", "namespaces").unwrap();
        create(
            &mut st,
            &ns,
            "v1",
            "",
            json!({"metadata": {"name": "default"}}),
            &opts(),
        )
        .unwrap();
        st
    }

    fn deployment(name: &str, replicas: i64) -> Value {
        json!({"metadata": {"name": name}, "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "x"}},
            "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}})
    }

    fn ty(st: &State, g: &str, v: &str, r: &str) -> Arc<ResourceType> {
        st.registry.lookup(g, v, r).unwrap()
    }

    #[test]
    fn registry_has_builtins() {
        assert!(
            Registry::with_builtins()
                .lookup("apps", "v1", "deployments")
                .is_some()
        );
    }

    #[test]
    fn stale_resource_version_conflicts_and_changes_nothing() {
        let mut st = state();
        let cm = ty(&st, "", "v1", "configmaps");
        let c = create(
            &mut st,
            &cm,
            "v1",
            "default",
            json!({"metadata": {"name": "a"}, "data": {"k": "1"}}),
            &opts(),
        )
        .unwrap();
        let mut upd = c.clone();
        upd["data"]["k"] = json!("2");
        update(
            &mut st,
            &cm,
            "v1",
            "default",
            "a",
            upd.clone(),
            Part::Main,
            &opts(),
        )
        .unwrap();
        let before = st.rv;
        let err = update(&mut st, &cm, "v1", "default", "a", upd, Part::Main, &opts()).unwrap_err();
        assert_eq!((err.code, err.reason), (409, "Conflict"));
        assert_eq!(st.rv, before);
    }

    #[test]
    fn generation_bumps_on_spec_but_not_status_or_metadata() {
        let mut st = state();
        let d = ty(&st, "apps", "v1", "deployments");
        let c = create(&mut st, &d, "v1", "default", deployment("d", 1), &opts()).unwrap();
        assert_eq!(c["metadata"]["generation"], 1);
        let mut s = c.clone();
        s["status"] = json!({"replicas": 1});
        let s = update(&mut st, &d, "v1", "default", "d", s, Part::Status, &opts()).unwrap();
        assert_eq!(s["metadata"]["generation"], 1);
        assert_eq!(s["status"]["replicas"], 1);
        let mut l = s.clone();
        l["metadata"]["labels"] = json!({"a": "b"});
        let l = update(&mut st, &d, "v1", "default", "d", l, Part::Main, &opts()).unwrap();
        assert_eq!(l["metadata"]["generation"], 1);
        let mut sp = l.clone();
        sp["spec"]["replicas"] = json!(3);
        sp["status"] = json!({"replicas": 99});
        let sp = update(&mut st, &d, "v1", "default", "d", sp, Part::Main, &opts()).unwrap();
        assert_eq!(sp["metadata"]["generation"], 2);
        assert_eq!(sp["status"]["replicas"], 1, "main writes ignore status");
    }

    #[test]
    fn kinds_without_status_subresource_bump_generation_on_any_content_change() {
        let mut st = state();
        let cm = ty(&st, "", "v1", "configmaps");
        let c = create(
            &mut st,
            &cm,
            "v1",
            "default",
            json!({"metadata": {"name": "a"}, "data": {"k": "1"}}),
            &opts(),
        )
        .unwrap();
        let mut u = c;
        u["data"]["k"] = json!("2");
        let u = update(&mut st, &cm, "v1", "default", "a", u, Part::Main, &opts()).unwrap();
        assert_eq!(u["metadata"]["generation"], 2);
    }

    #[test]
    fn no_op_update_keeps_the_resource_version() {
        let mut st = state();
        let cm = ty(&st, "", "v1", "configmaps");
        let c = create(
            &mut st,
            &cm,
            "v1",
            "default",
            json!({"metadata": {"name": "a"}}),
            &opts(),
        )
        .unwrap();
        let u = update(
            &mut st,
            &cm,
            "v1",
            "default",
            "a",
            c.clone(),
            Part::Main,
            &opts(),
        )
        .unwrap();
        assert_eq!(
            u["metadata"]["resourceVersion"],
            c["metadata"]["resourceVersion"]
        );
    }

    #[test]
    fn create_in_missing_namespace_is_not_found() {
        let mut st = state();
        let cm = ty(&st, "", "v1", "configmaps");
        let e = create(
            &mut st,
            &cm,
            "v1",
            "nope",
            json!({"metadata": {"name": "a"}}),
            &opts(),
        )
        .unwrap_err();
        assert_eq!(e.message, "namespaces \"nope\" not found");
    }

    #[test]
    fn finalizers_hold_the_object_until_cleared() {
        let mut st = state();
        let cm = ty(&st, "", "v1", "configmaps");
        create(
            &mut st,
            &cm,
            "v1",
            "default",
            json!({"metadata": {"name": "a", "finalizers": ["x/y"]}}),
            &opts(),
        )
        .unwrap();
        let del = DeleteOpts {
            propagation: Propagation::Background,
            precondition_uid: None,
            precondition_rv: None,
        };
        let Deleted::Pending(p) = delete(&mut st, &cm, "default", "a", &del, &opts()).unwrap()
        else {
            panic!("must be pending")
        };
        assert!(p["metadata"]["deletionTimestamp"].is_string());
        let mut clear = (*p).clone();
        clear["metadata"]["finalizers"] = json!([]);
        update(
            &mut st,
            &cm,
            "v1",
            "default",
            "a",
            clear,
            Part::Main,
            &opts(),
        )
        .unwrap();
        assert!(st.get(&cm.gr(), "default", "a").is_none());
    }

    #[test]
    fn pod_templates_get_the_apiserver_defaults() {
        let mut st = state();
        let d = ty(&st, "apps", "v1", "deployments");
        let c = create(&mut st, &d, "v1", "default", json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"app": "x"}},
            "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}]}]}}}}), &opts()).unwrap();
        let spec = &c["spec"]["template"]["spec"];
        assert_eq!(spec["restartPolicy"], "Always");
        assert_eq!(spec["dnsPolicy"], "ClusterFirst");
        assert_eq!(spec["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(spec["containers"][0]["ports"][0]["protocol"], "TCP");
        assert!(
            spec.get("initContainers").is_none(),
            "no nulls are invented"
        );
    }

    #[test]
    fn selectors_are_immutable() {
        let mut st = state();
        let d = ty(&st, "apps", "v1", "deployments");
        let c = create(&mut st, &d, "v1", "default", deployment("d", 1), &opts()).unwrap();
        let mut u = c.clone();
        u["spec"]["selector"] = json!({"matchLabels": {"app": "y"}});
        u["spec"]["template"]["metadata"]["labels"] = json!({"app": "y"});
        let e = update(&mut st, &d, "v1", "default", "d", u, Part::Main, &opts()).unwrap_err();
        assert_eq!(
            e.message,
            "Deployment.apps \"d\" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"y\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
        );
    }

    #[test]
    fn service_updates_keep_the_allocated_cluster_ip() {
        let mut st = state();
        let svc = ty(&st, "", "v1", "services");
        let c = create(
            &mut st,
            &svc,
            "v1",
            "default",
            json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}),
            &opts(),
        )
        .unwrap();
        let u = update(
            &mut st,
            &svc,
            "v1",
            "default",
            "s",
            json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 81}]}}),
            Part::Main,
            &opts(),
        )
        .unwrap();
        assert_eq!(u["spec"]["clusterIP"], c["spec"]["clusterIP"]);
    }

    #[test]
    fn deployment_selector_must_match_template_labels() {
        let mut st = state();
        let d = ty(&st, "apps", "v1", "deployments");
        let e = create(
            &mut st,
            &d,
            "v1",
            "default",
            json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"app": "y"}},
            "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": []}}}}),
            &opts(),
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "Deployment.apps \"d\" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"x\"}: `selector` does not match template `labels`"
        );
        let e = create(
            &mut st,
            &d,
            "v1",
            "default",
            json!({"metadata": {"name": "d"}, "spec": {}}),
            &opts(),
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "Deployment.apps \"d\" is invalid: spec.selector: Required value"
        );
    }

    #[test]
    fn scale_reads_and_writes_replicas_through_the_paths() {
        let mut st = state();
        let d = ty(&st, "apps", "v1", "deployments");
        create(&mut st, &d, "v1", "default", deployment("d", 2), &opts()).unwrap();
        let s = update_scale(
            &mut st,
            &d,
            "v1",
            "default",
            "d",
            &json!({"spec": {"replicas": 5}}),
            &opts(),
        )
        .unwrap();
        assert_eq!(s["spec"]["replicas"], 5);
        assert_eq!(s["status"]["selector"], "app=x");
        let e = update_scale(
            &mut st,
            &d,
            "v1",
            "default",
            "d",
            &json!({"spec": {"replicas": -1}}),
            &opts(),
        )
        .unwrap_err();
        assert_eq!(e.code, 422);
    }
}
