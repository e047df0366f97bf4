//! The one place the server turns a PATCH body into a new object: an adapter from the request to
//! the patch engine and from its errors to apiserver Status errors.

use serde_json::Value;

use super::{PatchContext, PatchError, PatchType, apply_patch};
use crate::error::ApiError;

/// The object after applying `body`; `current` is `None` only for a server-side-apply create.
pub fn apply(
    kind: PatchType,
    current: Option<&Value>,
    body: &[u8],
    ctx: &PatchContext<'_>,
) -> Result<Value, ApiError> {
    apply_patch(kind, current, body, ctx).map_err(to_api_error)
}

fn to_api_error(e: PatchError) -> ApiError {
    match e {
        PatchError::Malformed(m) => ApiError::bad_request(m),
        PatchError::Invalid(m) => ApiError {
            code: 422,
            reason: "Invalid",
            message: m,
            details: None,
        },
        PatchError::Conflict(m) => ApiError {
            code: 409,
            reason: "Conflict",
            message: m,
            details: None,
        },
        PatchError::UnsupportedMediaType(m) => ApiError::unsupported_media_msg(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(builtin: bool) -> PatchContext<'static> {
        PatchContext {
            kind: "ConfigMap",
            api_version: "v1",
            builtin,
            field_manager: "t",
            force: false,
            subresource: None,
        }
    }

    #[test]
    fn merge_patch_sets_and_removes_fields() {
        let cur = json!({"data": {"a": "1", "b": "2"}});
        let out = apply(
            PatchType::Merge,
            Some(&cur),
            br#"{"data":{"a":null,"c":"3"}}"#,
            &ctx(true),
        )
        .unwrap();
        assert_eq!(out["data"], json!({"b": "2", "c": "3"}));
    }

    #[test]
    fn strategic_patch_of_a_custom_resource_is_unsupported_media_type() {
        let cur = json!({"spec": {}});
        let err = apply(PatchType::Strategic, Some(&cur), b"{}", &ctx(false)).unwrap_err();
        assert_eq!((err.code, err.reason), (415, "UnsupportedMediaType"));
    }

    #[test]
    fn malformed_patch_is_bad_request() {
        let cur = json!({});
        let err = apply(PatchType::Merge, Some(&cur), b"{nope", &ctx(true)).unwrap_err();
        assert_eq!(err.code, 400);
    }
}
