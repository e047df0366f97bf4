//! The one error type of the client: each variant renders as one line naming the object.

use thiserror::Error;

/// Why a request or a read failed.
#[derive(Debug, Error)]
pub enum Error {
    /// The object does not exist.
    #[error("{kind} {name:?} not found in namespace {namespace:?}")]
    NotFound {
        kind: &'static str,
        namespace: String,
        name: String,
    },
    /// The request would do nothing or the wrong thing; nothing was sent.
    #[error("{kind} {name:?} {reason}")]
    Refused {
        kind: &'static str,
        name: String,
        reason: String,
    },
    /// The API server answered with an error.
    #[error("{verb} {kind} {name:?}: {message}")]
    Api {
        verb: &'static str,
        kind: &'static str,
        name: String,
        message: String,
    },
    /// The object exists but does not decode (names the field).
    #[error("{kind} {name:?} cannot be read: {message}")]
    Decode {
        kind: &'static str,
        name: String,
        message: String,
    },
    /// The cluster could not be reached (no server, TLS, credentials).
    #[error("cannot reach the cluster: {0}")]
    Unreachable(String),
}

/// The kinds the client names in its messages.
pub mod kind {
    pub const ROLLOUT: &str = "rollout";
    pub const EXPERIMENT: &str = "experiment";
    pub const ANALYSIS_RUN: &str = "analysisrun";
    pub const DEPLOYMENT: &str = "deployment";
    pub const REPLICA_SET: &str = "replicaset";
    pub const POD_TEMPLATE: &str = "podtemplate";
}

impl Error {
    /// Classify a failed API call on `kind` `namespace/name`.
    pub fn from_kube(
        err: kube::Error,
        verb: &'static str,
        kind: &'static str,
        namespace: &str,
        name: &str,
    ) -> Error {
        match err {
            kube::Error::Api(status) if status.code == 404 => Error::NotFound {
                kind,
                namespace: namespace.to_string(),
                name: name.to_string(),
            },
            kube::Error::Api(status) => Error::Api {
                verb,
                kind,
                name: name.to_string(),
                message: status.message.clone(),
            },
            other => Error::Unreachable(chain(&other)),
        }
    }

    /// Whether this is a 409 Conflict (a write raced another writer).
    pub fn is_conflict(err: &kube::Error) -> bool {
        matches!(err, kube::Error::Api(s) if s.code == 409)
    }
}

/// An error and its causes on one line (`a: b: c`), without repeating a cause that its
/// parent already printed.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_is_one_line_naming_the_object() {
        let errors = [
            Error::NotFound {
                kind: kind::ROLLOUT,
                namespace: "shop".into(),
                name: "web".into(),
            },
            Error::Refused {
                kind: kind::ROLLOUT,
                name: "web".into(),
                reason: "is not paused: nothing to promote".into(),
            },
        ];
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                r#"rollout "web" not found in namespace "shop""#,
                r#"rollout "web" is not paused: nothing to promote"#,
            ]
        );
    }
}
