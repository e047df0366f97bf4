//! The one place the server turns a PATCH body into a new object. It adapts the request to the
//! patch engine so the engine can be swapped without touching the handlers.

use serde_json::Value;

use super::error::ApiError;

/// The four PATCH content types kubectl and kube-rs send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchKind {
    pub fn from_content_type(ct: &str) -> Option<PatchKind> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        match base {
            "application/json-patch+json" => Some(PatchKind::Json),
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
            "application/apply-patch+yaml" => Some(PatchKind::Apply),
            _ => None,
        }
    }
}

/// Facts about the patched object the engine needs.
pub struct PatchTarget<'a> {
    pub kind: &'a str,
    pub api_version: &'a str,
    pub builtin: bool,
    pub field_manager: &'a str,
    pub force: bool,
    pub subresource: Option<&'a str>,
}

/// The object after applying `body`; `current` is `None` only for a server-side-apply create.
pub fn apply(
    kind: PatchKind,
    current: Option<&Value>,
    body: &[u8],
    target: &PatchTarget<'_>,
) -> Result<Value, ApiError> {
    let _ = (
        target.kind,
        target.api_version,
        target.builtin,
        target.field_manager,
        target.force,
        target.subresource,
    );
    match kind {
        PatchKind::Merge => {
            let patch: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "error decoding patch: a merge patch must be a JSON object",
                ));
            }
            let mut doc = current.cloned().unwrap_or(Value::Null);
            json_patch::merge(&mut doc, &patch);
            Ok(doc)
        }
        PatchKind::Json => {
            let ops: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            let mut doc = current.cloned().unwrap_or(Value::Null);
            json_patch::patch(&mut doc, &ops).map_err(|e| {
                ApiError::internal(format!(
                    "the server rejected our request due to an error in our request: {e}"
                ))
                .with_code(422, "Invalid")
            })?;
            Ok(doc)
        }
        PatchKind::Strategic | PatchKind::Apply => Err(ApiError::unsupported_media_msg(format!(
            "{} patches are not supported yet by the embedded cluster",
            if kind == PatchKind::Strategic {
                "strategic merge"
            } else {
                "server-side apply"
            }
        ))),
    }
}

impl ApiError {
    fn with_code(mut self, code: u16, reason: &'static str) -> Self {
        self.code = code;
        self.reason = reason;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn target() -> PatchTarget<'static> {
        PatchTarget {
            kind: "ConfigMap",
            api_version: "v1",
            builtin: true,
            field_manager: "t",
            force: false,
            subresource: None,
        }
    }

    #[test]
    fn merge_patch_sets_and_removes_fields() {
        let cur = json!({"data": {"a": "1", "b": "2"}});
        let out = apply(
            PatchKind::Merge,
            Some(&cur),
            br#"{"data":{"a":null,"c":"3"}}"#,
            &target(),
        )
        .unwrap();
        assert_eq!(out, json!({"data": {"b": "2", "c": "3"}}));
    }

    #[test]
    fn json_patch_test_failure_is_invalid() {
        let cur = json!({"a": 1});
        let err = apply(
            PatchKind::Json,
            Some(&cur),
            br#"[{"op":"test","path":"/a","value":2}]"#,
            &target(),
        )
        .unwrap_err();
        assert_eq!(err.code, 422);
    }

    #[test]
    fn content_types_map_to_kinds() {
        assert_eq!(
            PatchKind::from_content_type("application/merge-patch+json; charset=utf-8"),
            Some(PatchKind::Merge)
        );
        assert_eq!(PatchKind::from_content_type("application/json"), None);
    }
}
