//! API errors rendered as `metav1.Status` bodies shaped like the real kube-apiserver's, because
//! kubectl and kube-rs print and branch on `reason`, `code`, `message` and `details`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One validation failure inside an `Invalid` (422) status.
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    pub reason: &'static str,
    pub field: String,
    pub message: String,
}

/// A failed API request; converts into the HTTP response the real apiserver would send.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

/// `group` and `resource` (plural) as the apiserver names them in messages: `rollouts.argoproj.io`
/// for a group, bare `configmaps` for the core group.
pub fn group_resource(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

fn details(group: &str, resource: &str, name: &str) -> Value {
    let mut d = json!({ "name": name, "kind": resource });
    if !group.is_empty() {
        d["group"] = json!(group);
    }
    d
}

impl ApiError {
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        ApiError {
            code: 404,
            reason: "NotFound",
            message: format!("{} \"{name}\" not found", group_resource(group, resource)),
            details: Some(details(group, resource, name)),
        }
    }

    /// The bare 404 for an unknown path, group, version or resource.
    pub fn no_resource() -> Self {
        ApiError {
            code: 404,
            reason: "NotFound",
            message: "the server could not find the requested resource".into(),
            details: Some(json!({})),
        }
    }

    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        ApiError {
            code: 409,
            reason: "AlreadyExists",
            message: format!(
                "{} \"{name}\" already exists",
                group_resource(group, resource)
            ),
            details: Some(details(group, resource, name)),
        }
    }

    /// The optimistic-concurrency failure (stale `metadata.resourceVersion`).
    pub fn conflict(group: &str, resource: &str, name: &str) -> Self {
        Self::conflict_msg(
            group,
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    pub fn conflict_msg(group: &str, resource: &str, name: &str, why: &str) -> Self {
        ApiError {
            code: 409,
            reason: "Conflict",
            message: format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                group_resource(group, resource)
            ),
            details: Some(details(group, resource, name)),
        }
    }

    /// 422 with field causes; `qualified_kind` is `Rollout.argoproj.io` or `ConfigMap`.
    pub fn invalid(
        qualified_kind: &str,
        group: &str,
        kind: &str,
        name: &str,
        causes: Vec<Cause>,
    ) -> Self {
        let joined: Vec<String> = causes
            .iter()
            .map(|c| {
                if c.field.is_empty() {
                    c.message.clone()
                } else {
                    format!("{}: {}", c.field, c.message)
                }
            })
            .collect();
        let summary = if joined.len() == 1 {
            joined[0].clone()
        } else {
            format!("[{}]", joined.join(", "))
        };
        let mut d = json!({
            "name": name,
            "kind": kind,
            "causes": causes.iter().map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field})).collect::<Vec<_>>(),
        });
        if !group.is_empty() {
            d["group"] = json!(group);
        }
        ApiError {
            code: 422,
            reason: "Invalid",
            message: format!("{qualified_kind} \"{name}\" is invalid: {summary}"),
            details: Some(d),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            code: 400,
            reason: "BadRequest",
            message: message.into(),
            details: None,
        }
    }

    pub fn method_not_allowed() -> Self {
        ApiError {
            code: 405,
            reason: "MethodNotAllowed",
            message: "the server does not allow this method on the requested resource".into(),
            details: Some(json!({})),
        }
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        ApiError {
            code: 415,
            reason: "UnsupportedMediaType",
            message: format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {content_type:?})"
            ),
            details: None,
        }
    }

    pub fn unsupported_media_msg(message: impl Into<String>) -> Self {
        ApiError {
            code: 415,
            reason: "UnsupportedMediaType",
            message: message.into(),
            details: None,
        }
    }

    pub fn not_acceptable(message: impl Into<String>) -> Self {
        ApiError {
            code: 406,
            reason: "NotAcceptable",
            message: message.into(),
            details: None,
        }
    }

    /// A resourceVersion older than the retained history (watch or continue token).
    pub fn expired(message: impl Into<String>) -> Self {
        ApiError {
            code: 410,
            reason: "Expired",
            message: message.into(),
            details: None,
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError {
            code: 500,
            reason: "InternalError",
            message: message.into(),
            details: None,
        }
    }

    /// The `metav1.Status` object for this error.
    pub fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self.status()).unwrap_or_default();
        (
            code,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_names_group_resource_like_the_apiserver() {
        let e = ApiError::not_found("argoproj.io", "rollouts", "x").status();
        assert_eq!(e["message"], "rollouts.argoproj.io \"x\" not found");
        assert_eq!(
            e["details"],
            json!({"name": "x", "group": "argoproj.io", "kind": "rollouts"})
        );
        let core = ApiError::not_found("", "configmaps", "y").status();
        assert_eq!(core["message"], "configmaps \"y\" not found");
        assert!(core["details"].get("group").is_none());
    }

    #[test]
    fn conflict_message_matches_the_apiserver() {
        let e = ApiError::conflict("argoproj.io", "rollouts", "x");
        assert_eq!(
            e.message,
            "Operation cannot be fulfilled on rollouts.argoproj.io \"x\": the object has been modified; please apply your changes to the latest version and try again"
        );
        assert_eq!((e.code, e.reason), (409, "Conflict"));
    }

    #[test]
    fn invalid_joins_several_causes_in_brackets() {
        let c = |f: &str| Cause {
            reason: "FieldValueRequired",
            field: f.into(),
            message: "Required value".into(),
        };
        let one = ApiError::invalid("ConfigMap", "", "ConfigMap", "a", vec![c("data")]);
        assert_eq!(
            one.message,
            "ConfigMap \"a\" is invalid: data: Required value"
        );
        let two = ApiError::invalid(
            "Rollout.argoproj.io",
            "argoproj.io",
            "Rollout",
            "a",
            vec![c("x"), c("y")],
        );
        assert_eq!(
            two.message,
            "Rollout.argoproj.io \"a\" is invalid: [x: Required value, y: Required value]"
        );
        assert_eq!(two.status()["details"]["causes"][1]["field"], "y");
    }
}
