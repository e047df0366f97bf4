//! The four PATCH flavours a kube-apiserver accepts, as pure functions over JSON.
//!
//! The embedded API server hands the stored object and the raw request body to
//! `request::apply`, which answers in apiserver Status errors, and gets back the object to
//! validate and store. Nothing here does I/O:
//! the caller owns resourceVersion, admission, defaulting and persistence. Error variants
//! map one-to-one onto the HTTP status the real apiserver answers with, and their
//! messages copy the real server's wording because `kubectl` prints them verbatim.
//!
//! Every write also maintains `metadata.managedFields` as the apiserver's field manager
//! does: server-side apply owns exactly what it applies (see `apply.rs` for what is
//! simplified relative to structured-merge-diff), and other writes take ownership of the
//! fields they change ([`record_update`], which the server also calls for create/update).
//!
//! Deviations in status codes: a JSON patch over 10,000 operations is 400 (upstream 413),
//! and strategic-merge errors upstream answers with 500 are 422 here.

mod apply;
mod fields;
mod json;
mod merge;
pub(crate) mod request;
mod strategic;

pub use fields::record_update;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

/// Which patch engine a request asks for, decided by its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// RFC 6902 operation list (`application/json-patch+json`).
    Json,
    /// RFC 7386 merge patch (`application/merge-patch+json`).
    Merge,
    /// Kubernetes strategic merge patch; built-in kinds only.
    Strategic,
    /// Server-side apply (`application/apply-patch+yaml`).
    Apply,
}

impl PatchType {
    /// Maps a request `Content-Type` to a patch type, ignoring parameters such as
    /// `; charset=utf-8` exactly as the apiserver does; `None` means 415.
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base.to_ascii_lowercase().as_str() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" => Some(PatchType::Apply),
            _ => None,
        }
    }

    /// The media type string, as listed in 415 answers.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::Strategic => "application/strategic-merge-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }
}

/// What the engines need to know about the request besides the two documents.
#[derive(Debug, Clone, Copy)]
pub struct PatchContext<'a> {
    /// Kind of the patched object, e.g. `Deployment`; selects strategic merge keys.
    pub kind: &'a str,
    /// `group/version` of the request, recorded in managedFields.
    pub api_version: &'a str,
    /// Built-in kinds take strategic merge patches; custom resources do not.
    pub builtin: bool,
    /// The `fieldManager` query parameter (or the user agent's default).
    pub field_manager: &'a str,
    /// `force=true` on server-side apply: take over conflicting fields.
    pub force: bool,
    /// `status`, `scale`, ... when the request targets a subresource.
    pub subresource: Option<&'a str>,
}

/// Why a patch could not be applied; each variant is one HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// 400 BadRequest: the body is not a patch of the requested type.
    #[error("{0}")]
    Malformed(String),
    /// 422 Invalid / UnprocessableEntity: the patch is well-formed but cannot be applied.
    #[error("{0}")]
    Invalid(String),
    /// 409 Conflict: server-side apply would take fields owned by another manager.
    #[error("{0}")]
    Conflict(String),
    /// 415 UnsupportedMediaType: e.g. a strategic merge patch on a custom resource.
    #[error("{0}")]
    UnsupportedMediaType(String),
}

/// Applies one PATCH request body to the stored object and returns the new object,
/// stamping managedFields with the current time; see [`apply_patch_at`].
pub fn apply_patch(
    pt: PatchType,
    current: Option<&Value>,
    body: &[u8],
    ctx: &PatchContext,
) -> Result<Value, PatchError> {
    apply_patch_at(pt, current, body, ctx, Utc::now())
}

/// The pure core of [`apply_patch`], with the clock as an input.
///
/// `current` is `None` only when server-side apply creates the object; the other patch
/// types answer NotFound before reaching here. Besides applying the patch this records
/// field ownership in `metadata.managedFields` like the apiserver's field manager: an
/// `Apply` entry for server-side apply, an `Update` entry (fields the patch changed) for
/// the other types. An entry's `time` is `now`, and is left alone when nothing changed.
pub fn apply_patch_at(
    pt: PatchType,
    current: Option<&Value>,
    body: &[u8],
    ctx: &PatchContext,
    now: DateTime<Utc>,
) -> Result<Value, PatchError> {
    let now = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    let empty = Value::Object(serde_json::Map::new());
    let base = current.unwrap_or(&empty);
    let mut patched = match pt {
        PatchType::Json => json::apply(base, body)?,
        PatchType::Merge => merge::apply(base, body)?,
        PatchType::Strategic => {
            if !ctx.builtin {
                return Err(PatchError::UnsupportedMediaType(
                    "the body of the request was in an unknown format - accepted media types include: \
                     application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
                        .to_string(),
                ));
            }
            strategic::apply(base, body, ctx.kind)?
        }
        PatchType::Apply => return apply::apply(current, body, ctx, &now),
    };
    record_update(current, &mut patched, ctx, &now);
    Ok(patched)
}

/// The Go name of a JSON value's type, as `encoding/json` prints it in unmarshal errors.
fn go_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_map_to_patch_types_ignoring_parameters() {
        let cases = [
            ("application/json-patch+json", Some(PatchType::Json)),
            ("application/merge-patch+json", Some(PatchType::Merge)),
            (
                "application/merge-patch+json; charset=utf-8",
                Some(PatchType::Merge),
            ),
            (
                "application/strategic-merge-patch+json",
                Some(PatchType::Strategic),
            ),
            ("application/apply-patch+yaml", Some(PatchType::Apply)),
            ("application/json", None),
            ("", None),
        ];
        for (ct, want) in cases {
            assert_eq!(PatchType::from_content_type(ct), want, "{ct}");
            if let Some(pt) = want {
                assert_eq!(PatchType::from_content_type(pt.content_type()), Some(pt));
            }
        }
    }
}
