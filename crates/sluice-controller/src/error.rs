//! What makes a reconcile fail, in one shape for the three controllers, and the `reason`
//! each failure is counted under in `sluice_reconcile_errors_total`.
//!
//! Every controller's `Error` is built from the same parts: a failed API call
//! ([`ApiCallError`]), an object that did not decode ([`DecodeError`]), and, for Experiments,
//! a name held by someone else. The reason labels are a small closed set ([`Reason`]) so the
//! metric's series stay few and an alert can tell "the API server is struggling" from "an
//! object is malformed" from "RBAC is missing".

use std::fmt;

/// A reconcile failure's `reason` label in `sluice_reconcile_errors_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// 409: the object changed under a write the controller could not retry in place (the
    /// conflicts a reconcile expects, on guarded status writes, are not errors).
    ApiConflict,
    /// 404: an object the reconcile must write or read vanished (its namespace was deleted,
    /// say); the conflicts and deletions a reconcile expects are not errors.
    ApiNotFound,
    /// 429: the API server's priority and fairness turned the request away.
    ApiThrottled,
    /// 401/403: the service account may not make the call (RBAC).
    ApiForbidden,
    /// Any other 4xx: the request was refused as invalid (400, 410, 422, ...).
    ApiRejected,
    /// 5xx: the API server (or an admission webhook behind it) failed.
    ApiServer,
    /// No HTTP answer: connection, TLS, timeout, authentication or request building.
    ApiTransport,
    /// An object did not decode into Sluice's types: the object of the reconcile itself, one
    /// it owns in a watch cache, or one in an API response.
    Decode,
    /// An Experiment's ReplicaSet, Service or AnalysisRun name is taken by an object it does
    /// not control.
    NotOwned,
}

impl Reason {
    /// Every reason, in the order the docs list them.
    pub const ALL: [Reason; 9] = [
        Reason::ApiConflict,
        Reason::ApiNotFound,
        Reason::ApiThrottled,
        Reason::ApiForbidden,
        Reason::ApiRejected,
        Reason::ApiServer,
        Reason::ApiTransport,
        Reason::Decode,
        Reason::NotOwned,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ApiConflict => "api_conflict",
            Reason::ApiNotFound => "api_not_found",
            Reason::ApiThrottled => "api_throttled",
            Reason::ApiForbidden => "api_forbidden",
            Reason::ApiRejected => "api_rejected",
            Reason::ApiServer => "api_server",
            Reason::ApiTransport => "api_transport",
            Reason::Decode => "decode",
            Reason::NotOwned => "not_owned",
        }
    }

    /// The reason of a failed client call: by HTTP status when the server answered; a
    /// response that did not decode is a malformed object like any other.
    pub fn of(err: &kube::Error) -> Reason {
        match err {
            kube::Error::Api(status) => match status.code {
                409 => Reason::ApiConflict,
                404 => Reason::ApiNotFound,
                429 => Reason::ApiThrottled,
                401 | 403 => Reason::ApiForbidden,
                400..=499 => Reason::ApiRejected,
                _ => Reason::ApiServer,
            },
            kube::Error::SerdeError(_) => Reason::Decode,
            _ => Reason::ApiTransport,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reconcile error that can say which [`Reason`] it is counted under.
pub trait MetricLabel {
    /// The `reason` label of `sluice_reconcile_errors_total` for this error.
    fn reason(&self) -> Reason;

    /// [`MetricLabel::reason`] as its label value.
    fn metric_label(&self) -> &'static str {
        self.reason().as_str()
    }
}

/// A failed call to the API server: what was asked (`verb`) of which object (`target`, as
/// `kind namespace/name`), and how the client failed.
#[derive(Debug, thiserror::Error)]
#[error("{verb} {target}: {source}")]
pub struct ApiCallError {
    pub verb: &'static str,
    pub target: String,
    #[source]
    pub source: kube::Error,
}

impl ApiCallError {
    /// For `map_err`: `api.get(name).await.map_err(ApiCallError::on("read", target))?`.
    pub fn on(verb: &'static str, target: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let target = target.into();
        move |source| ApiCallError {
            verb,
            target,
            source,
        }
    }

    /// The HTTP status the API server answered with (`None`: no answer).
    pub fn code(&self) -> Option<u16> {
        crate::api_code(&self.source)
    }
}

impl MetricLabel for ApiCallError {
    fn reason(&self) -> Reason {
        Reason::of(&self.source)
    }
}

/// An object that did not decode into Sluice's types. Planning without it could recreate or
/// delete what exists, so the reconcile fails (and is retried) instead.
#[derive(Debug, thiserror::Error)]
#[error("decoding {what}: {}{source}", at_path(.path))]
pub struct DecodeError {
    /// Which object, as `kind namespace/name` (or what was read, for a group of objects).
    pub what: String,
    /// Where in the object decoding stopped (`spec.metrics[0].count`), when known.
    pub path: Option<String>,
    #[source]
    pub source: serde_json::Error,
}

fn at_path(path: &Option<String>) -> String {
    path.as_ref().map(|p| format!("{p}: ")).unwrap_or_default()
}

impl DecodeError {
    /// For `map_err` on a decode that reports no path.
    pub fn of(what: impl Into<String>) -> impl FnOnce(serde_json::Error) -> Self {
        let what = what.into();
        move |source| DecodeError {
            what,
            path: None,
            source,
        }
    }
}

impl MetricLabel for DecodeError {
    fn reason(&self) -> Reason {
        Reason::Decode
    }
}

/// Errors of one reconcile, in any of the three controllers. A failed measurement, an invalid
/// spec or a failed analysis is not one: those are decisions, recorded in status.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// A read while observing, or a write while applying the plan, failed.
    #[error(transparent)]
    Api(#[from] ApiCallError),
    /// The object, or one it owns, did not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A name the object needs is held by an object it does not control (an Experiment's
    /// ReplicaSet, Service or AnalysisRun).
    #[error("{kind} {namespace}/{name} already exists and is not owned by experiment {experiment}")]
    NotOwned {
        kind: &'static str,
        namespace: String,
        name: String,
        experiment: String,
    },
}

impl MetricLabel for ReconcileError {
    fn reason(&self) -> Reason {
        match self {
            ReconcileError::Api(e) => e.reason(),
            ReconcileError::Decode(e) => e.reason(),
            ReconcileError::NotOwned { .. } => Reason::NotOwned,
        }
    }
}

/// Why the controllers could not start, or stopped on their own.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A CRD the controllers watch is not served. The message carries the client's error
    /// and the fix on one line (docs/operations.md quotes it), so `error` is not a source
    /// that would print a second time.
    #[error(
        "cannot list {resource} ({error}); are the CRDs installed? run: kubectl apply --server-side -f crds/"
    )]
    MissingCrd {
        resource: &'static str,
        error: kube::Error,
    },
    /// The HTTP clients of the metric providers could not be built (TLS set-up).
    #[error("building the HTTP clients of the metric providers: {0}")]
    Providers(#[source] reqwest::Error),
    /// Leader election could not start.
    #[error(transparent)]
    Leader(#[from] crate::leader::LeaderError),
    /// Leader election failed while running, the lease was lost, or the controllers failed
    /// while leading.
    #[error(transparent)]
    Lead(Box<crate::leader::LeadError<RunError>>),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(
            kube::core::Status::failure("refused", "Test").with_code(code),
        ))
    }

    #[test]
    fn api_failures_are_labelled_by_http_status_class() {
        let table = [
            (409, "api_conflict"),
            (404, "api_not_found"),
            (429, "api_throttled"),
            (401, "api_forbidden"),
            (403, "api_forbidden"),
            (400, "api_rejected"),
            (422, "api_rejected"),
            (500, "api_server"),
            (503, "api_server"),
        ];
        for (code, label) in table {
            let err = ApiCallError::on("patch", "rollout ns/web")(api(code));
            assert_eq!(err.metric_label(), label, "HTTP {code}");
            assert_eq!(err.code(), Some(code));
        }
    }

    #[test]
    fn a_call_without_an_answer_is_transport_and_an_undecodable_answer_is_decode() {
        let transport = kube::Error::LinesCodecMaxLineLengthExceeded;
        assert_eq!(Reason::of(&transport), Reason::ApiTransport);
        let bad = serde_json::from_str::<i32>("\"x\"").unwrap_err();
        assert_eq!(Reason::of(&kube::Error::SerdeError(bad)), Reason::Decode);
    }

    #[test]
    fn a_failed_call_names_the_verb_and_the_object() {
        let err = ApiCallError::on("delete", "analysisrun ns/r")(api(500));
        assert!(
            err.to_string().starts_with("delete analysisrun ns/r: "),
            "{err}"
        );
    }

    #[test]
    fn a_decode_error_names_the_object_and_the_field_path() {
        let source = serde_json::from_str::<i32>("3000000000").unwrap_err();
        let err = DecodeError {
            what: "analysisrun ns/r".into(),
            path: Some("spec.ttlStrategy.secondsAfterCompletion".into()),
            source,
        };
        assert!(
            err.to_string().starts_with(
                "decoding analysisrun ns/r: spec.ttlStrategy.secondsAfterCompletion: "
            ),
            "{err}"
        );
        assert_eq!(err.metric_label(), "decode");
    }

    #[test]
    fn every_reason_has_a_distinct_label() {
        let labels: std::collections::BTreeSet<&str> =
            Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels.len(), Reason::ALL.len());
    }
}
