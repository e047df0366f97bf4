//! POST, PUT and PATCH: the body is decoded, checked for unknown fields (`fieldValidation`),
//! stamped with field ownership, converted to the stored shape and handed to [`ops`].

use axum::http::{StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::convert::{presented, to_storage};
use super::options::Query;
use super::resource::{Payload, Target};
use super::{Shared, json_response, ok};
use crate::error::ApiError;
use crate::ops::{self, Part, WriteOpts};
use crate::patch::{self, PatchContext, PatchType};
use crate::store::State;
use crate::types::ResourceType;
use crate::{openapi, protobuf};

/// POST: creates an object.
pub(super) fn create(
    sh: &Shared,
    tg: &Target,
    q: &Query,
    p: &Payload,
) -> Result<Response, ApiError> {
    let (t, version) = (&tg.t, tg.version.as_str());
    if t.namespaced && tg.path.namespace.is_none() {
        return Err(ApiError::no_resource());
    }
    let mut obj = decode_body(&p.body, &p.content_type)?;
    let warnings = field_check(t, version, &obj, q.get("fieldValidation"))?;
    if let Some(why) = ops::undecodable(t, &obj) {
        return Err(ops::cannot_be_handled(t, &obj, &why));
    }
    let o = q.write_opts();
    let api_version = t.api_version(version);
    let fm = q.manager(&p.user_agent);
    let ctx = write_ctx(t, &api_version, &fm, None);
    patch::record_update(None, &mut obj, &ctx, &o.now);
    let created = {
        let mut st = sh.lock();
        ops::create(
            &mut st,
            &tg.st_t,
            &tg.st_version,
            &tg.ns,
            to_storage(t, version, obj),
            &o,
        )
    }?;
    sh.gc_notify.notify_one();
    Ok(with_warnings(
        json_response(StatusCode::CREATED, &presented(t, version, &created)),
        &warnings,
    ))
}

/// PUT: replaces an object, its status, or its scale.
pub(super) fn update(
    sh: &Shared,
    tg: &Target,
    name: &str,
    q: &Query,
    p: &Payload,
) -> Result<Response, ApiError> {
    let (t, version, sub) = (&tg.t, tg.version.as_str(), tg.path.sub.as_deref());
    let mut obj = decode_body(&p.body, &p.content_type)?;
    let warnings = if sub.is_none() {
        field_check(t, version, &obj, q.get("fieldValidation"))?
    } else {
        Vec::new()
    };
    if sub != Some("scale")
        && let Some(why) = ops::undecodable(t, &obj)
    {
        return Err(ops::cannot_be_handled(t, &obj, &why));
    }
    let o = q.write_opts();
    let api_version = t.api_version(version);
    let fm = q.manager(&p.user_agent);
    let ctx = write_ctx(t, &api_version, &fm, sub);
    let res = {
        let mut st = sh.lock();
        if sub.is_none() && obj.is_object() {
            let current = st.get(&tg.st_t.gr(), &tg.ns, name);
            patch::record_update(current.as_deref(), &mut obj, &ctx, &o.now);
        }
        let (st_t, st_version, ns) = (&tg.st_t, tg.st_version.as_str(), tg.ns.as_str());
        match sub {
            Some("scale") => ops::update_scale(&mut st, st_t, st_version, ns, name, &obj, &o),
            _ => {
                let part = if sub == Some("status") {
                    Part::Status
                } else {
                    Part::Main
                };
                let obj = to_storage(t, version, obj);
                ops::update(&mut st, st_t, st_version, ns, name, obj, part, &o)
            }
        }
    }?;
    sh.gc_notify.notify_one();
    if sub == Some("scale") {
        return Ok(ok(&res));
    }
    Ok(with_warnings(ok(&presented(t, version, &res)), &warnings))
}

/// A PATCH request as the patch engines see it.
struct PatchRequest<'a> {
    kind: PatchType,
    body: &'a [u8],
    ctx: PatchContext<'a>,
    /// The `fieldValidation` mode.
    validation: Option<&'a str>,
}

/// The result of a PATCH: the object (or Scale) written, whether server-side apply created
/// it, and the unknown-field warnings.
struct Patched {
    obj: Value,
    created: bool,
    warnings: Vec<String>,
}

/// PATCH of an object, its status, or its scale; server-side apply may create.
pub(super) fn patch(
    sh: &Shared,
    tg: &Target,
    name: &str,
    q: &Query,
    p: &Payload,
) -> Result<Response, ApiError> {
    let (t, version) = (&tg.t, tg.version.as_str());
    let kind = PatchType::from_content_type(&p.content_type)
        .ok_or_else(|| ApiError::unsupported_media_type(&p.content_type))?;
    let o = q.write_opts();
    let field_manager = q.manager(&p.user_agent);
    let api_version = t.api_version(version);
    let req = PatchRequest {
        kind,
        body: &p.body,
        ctx: PatchContext {
            force: q.flag("force"),
            ..write_ctx(t, &api_version, &field_manager, tg.path.sub.as_deref())
        },
        validation: q.get("fieldValidation"),
    };
    let res = {
        let mut st = sh.lock();
        patch_object(&mut st, tg, name, &req, &o)
    }?;
    sh.gc_notify.notify_one();
    let code = if res.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    if tg.path.sub.as_deref() == Some("scale") {
        return Ok(json_response(code, &res.obj));
    }
    Ok(with_warnings(
        json_response(code, &presented(t, version, &res.obj)),
        &res.warnings,
    ))
}

fn patch_object(
    st: &mut State,
    tg: &Target,
    name: &str,
    req: &PatchRequest<'_>,
    o: &WriteOpts,
) -> Result<Patched, ApiError> {
    let (t, version, sub) = (&tg.t, tg.version.as_str(), tg.path.sub.as_deref());
    let (st_t, st_version, ns) = (&tg.st_t, tg.st_version.as_str(), tg.ns.as_str());
    let current = st.get(&st_t.gr(), ns, name);
    let Some(current) = current else {
        if req.kind == PatchType::Apply && sub.is_none() {
            return apply_create(st, tg, name, req, o);
        }
        return Err(ApiError::not_found(&t.group, &t.plural, name));
    };
    if sub == Some("scale") {
        let scale = ops::scale_of(st_t, st_version, &current)?;
        let patched = patch::request::apply(req.kind, Some(&scale), req.body, &req.ctx)?;
        return Ok(Patched {
            obj: ops::update_scale(st, st_t, st_version, ns, name, &patched, o)?,
            created: false,
            warnings: Vec::new(),
        });
    }
    // Borrowed when served as stored: the patch reads it, and writes a new object.
    let cur = presented(t, version, &current);
    let mut patched = patch::request::apply(req.kind, Some(&cur), req.body, &req.ctx)?;
    // A patch is conditional only when it names a resourceVersion itself.
    if patched["metadata"]["resourceVersion"]
        .as_str()
        .is_none_or(str::is_empty)
        && patched.is_object()
    {
        patched["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
    }
    let part = if sub == Some("status") {
        Part::Status
    } else {
        Part::Main
    };
    let warnings = if part == Part::Main {
        field_check(t, version, &patched, req.validation)?
    } else {
        Vec::new()
    };
    if let Some(why) = ops::undecodable(t, &patched) {
        return Err(undecodable_patch(req.kind, t, &patched, &why));
    }
    let obj = to_storage(t, version, patched);
    Ok(Patched {
        obj: ops::update(st, st_t, st_version, ns, name, obj, part, o)?,
        created: false,
        warnings,
    })
}

/// Server-side apply of an object that does not exist yet creates it.
fn apply_create(
    st: &mut State,
    tg: &Target,
    name: &str,
    req: &PatchRequest<'_>,
    o: &WriteOpts,
) -> Result<Patched, ApiError> {
    let (t, version) = (&tg.t, tg.version.as_str());
    let mut obj = patch::request::apply(req.kind, None, req.body, &req.ctx)?;
    if obj["metadata"]["name"].as_str().unwrap_or(name) != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            obj["metadata"]["name"].as_str().unwrap_or_default()
        )));
    }
    obj["metadata"]["name"] = json!(name);
    let warnings = field_check(t, version, &obj, req.validation)?;
    if let Some(why) = ops::undecodable(t, &obj) {
        return Err(undecodable_patch(req.kind, t, &obj, &why));
    }
    let obj = to_storage(t, version, obj);
    Ok(Patched {
        obj: ops::create(st, &tg.st_t, &tg.st_version, &tg.ns, obj, o)?,
        created: true,
        warnings,
    })
}

/// A patched object that does not decode: server-side apply answers 400 (`BadRequest`), the
/// other patch types 422 with the patched object as the bad value of `patch`.
fn undecodable_patch(kind: PatchType, t: &ResourceType, patched: &Value, why: &str) -> ApiError {
    if kind == PatchType::Apply {
        ApiError::bad_request(format!(
            "failed to create typed patch object ({}, Kind={}): {why}",
            t.api_version(t.versions.first().map_or("v1", |v| v.name.as_str())),
            t.kind
        ))
    } else {
        ops::patch_cannot_be_decoded(patched, why)
    }
}

fn decode_body(body: &[u8], content_type: &str) -> Result<Value, ApiError> {
    if content_type.starts_with("application/vnd.kubernetes.protobuf") {
        protobuf::decode(body).map_err(|e| {
            ApiError::unsupported_media_msg(format!(
                "the body of the request could not be decoded: {e}"
            ))
        })
    } else if content_type.contains("yaml") {
        serde_yaml::from_slice::<Value>(body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; yaml parse error: {e}"))
        })
    } else {
        serde_json::from_slice::<Value>(body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        })
    }
}

/// `fieldValidation`: Strict rejects unknown fields, Warn (the default) reports them in
/// `Warning` headers, Ignore drops them silently.
fn field_check(
    t: &ResourceType,
    version: &str,
    obj: &Value,
    mode: Option<&str>,
) -> Result<Vec<String>, ApiError> {
    if mode == Some("Ignore") {
        return Ok(Vec::new());
    }
    let unknown: Vec<String> = openapi::unknown_fields(t, version, obj)
        .into_iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    if unknown.is_empty() {
        return Ok(unknown);
    }
    if mode == Some("Strict") {
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
            unknown.join(", "),
            kind = t.kind
        )));
    }
    Ok(unknown)
}

fn with_warnings(mut r: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let v = format!("299 - {}", serde_json::to_string(w).unwrap_or_default());
        if let Ok(h) = header::HeaderValue::from_str(&v) {
            r.headers_mut().append(header::WARNING, h);
        }
    }
    r
}

/// Who owns the fields a write sets, for `metadata.managedFields`.
fn write_ctx<'a>(
    t: &'a ResourceType,
    api_version: &'a str,
    fm: &'a str,
    sub: Option<&'a str>,
) -> PatchContext<'a> {
    PatchContext {
        kind: &t.kind,
        api_version,
        builtin: !t.crd,
        field_manager: fm,
        force: false,
        subresource: sub,
    }
}
