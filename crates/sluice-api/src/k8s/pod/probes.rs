//! Probes and lifecycle hooks: exactly one action each, valid ports, non-negative timings.

use k8s_openapi::api::core::v1::{Container, HTTPGetAction, Lifecycle, LifecycleHandler, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::super::field::{ErrorList, FieldError, Path};
use super::super::names;
use super::NEGATIVE;

pub(super) fn probes(c: &Container, grace: i64, at: &Path, errs: &mut ErrorList) {
    if let Some(p) = &c.liveness_probe {
        let p_at = at.child("livenessProbe");
        probe(p, grace, &p_at, errs);
        success_threshold_is_one(p, &p_at, errs);
    }
    if let Some(p) = &c.readiness_probe {
        let p_at = at.child("readinessProbe");
        probe(p, grace, &p_at, errs);
        if let Some(t) = p.termination_grace_period_seconds {
            errs.push(FieldError::invalid_int(
                p_at.child("terminationGracePeriodSeconds"),
                t,
                "must not be set for readinessProbes",
            ));
        }
    }
    if let Some(p) = &c.startup_probe {
        let p_at = at.child("startupProbe");
        probe(p, grace, &p_at, errs);
        success_threshold_is_one(p, &p_at, errs);
    }
}

fn success_threshold_is_one(p: &Probe, path: &Path, errs: &mut ErrorList) {
    let value = defaulted(p.success_threshold, 1);
    if value != 1 {
        errs.push(FieldError::invalid_int(
            path.child("successThreshold"),
            i64::from(value),
            "must be 1",
        ));
    }
}

/// A probe timing the apiserver defaults when it is absent or zero.
fn defaulted(value: Option<i32>, default: i32) -> i32 {
    match value {
        None | Some(0) => default,
        Some(v) => v,
    }
}

pub(super) fn lifecycle(l: &Lifecycle, grace: i64, path: &Path, errs: &mut ErrorList) {
    for (field, hook) in [("postStart", &l.post_start), ("preStop", &l.pre_stop)] {
        if let Some(h) = hook {
            lifecycle_handler(h, grace, &path.child(field), errs);
        }
    }
}

fn lifecycle_handler(h: &LifecycleHandler, grace: i64, path: &Path, errs: &mut ErrorList) {
    handler(
        Handler {
            exec: h
                .exec
                .as_ref()
                .map(|e| e.command.as_deref().unwrap_or_default()),
            http_get: h.http_get.as_ref(),
            tcp_port: h.tcp_socket.as_ref().map(|t| &t.port),
            grpc_port: None,
            sleep_seconds: h.sleep.as_ref().map(|s| s.seconds),
        },
        grace,
        path,
        errs,
    );
}

/// The actions a probe or lifecycle hook may take; exactly one must be set.
struct Handler<'a> {
    exec: Option<&'a [String]>,
    http_get: Option<&'a HTTPGetAction>,
    tcp_port: Option<&'a IntOrString>,
    grpc_port: Option<i32>,
    sleep_seconds: Option<i64>,
}

/// `validateHandler`.
fn handler(h: Handler<'_>, grace: i64, path: &Path, errs: &mut ErrorList) {
    let mut count = 0;
    let mut take = |field: &'static str, errs: &mut ErrorList| -> bool {
        if count > 0 {
            errs.push(FieldError::forbidden(
                path.child(field),
                "may not specify more than 1 handler type",
            ));
            false
        } else {
            count += 1;
            true
        }
    };
    if let Some(command) = h.exec
        && take("exec", errs)
        && command.is_empty()
    {
        errs.push(FieldError::required(
            path.child("exec").child("command"),
            "",
        ));
    }
    if let Some(get) = h.http_get
        && take("httpGet", errs)
    {
        http_get(get, &path.child("httpGet"), errs);
    }
    if let Some(port) = h.tcp_port
        && take("tcpSocket", errs)
    {
        port_number_or_name(port, &path.child("tcpSocket").child("port"), errs);
    }
    if let Some(port) = h.grpc_port
        && take("grpc", errs)
    {
        for m in names::port_number(i64::from(port)) {
            errs.push(FieldError::invalid_int(
                path.child("grpc").child("port"),
                i64::from(port),
                m,
            ));
        }
    }
    if let Some(seconds) = h.sleep_seconds
        && take("sleep", errs)
        && (seconds < 0 || seconds > grace)
    {
        errs.push(FieldError::invalid_int(
            path.child("sleep"),
            seconds,
            format!("must be non-negative and less than terminationGracePeriodSeconds ({grace})"),
        ));
    }
    if count == 0 {
        errs.push(FieldError::required(
            path.clone(),
            "must specify a handler type",
        ));
    }
}

/// `validateHTTPGetAction` (an empty `path` is defaulted to `/`, so never missing).
fn http_get(get: &HTTPGetAction, path: &Path, errs: &mut ErrorList) {
    port_number_or_name(&get.port, &path.child("port"), errs);
    let scheme = get.scheme.as_deref().unwrap_or_default();
    if !matches!(scheme, "" | "HTTP" | "HTTPS") {
        errs.push(FieldError::not_supported(
            path.child("scheme"),
            scheme,
            &["HTTP", "HTTPS"],
        ));
    }
    for header in get.http_headers.iter().flatten() {
        for m in names::http_header_name(&header.name) {
            errs.push(FieldError::invalid_str(
                path.child("httpHeaders"),
                &header.name,
                m,
            ));
        }
    }
}

/// `ValidatePortNumOrName`.
fn port_number_or_name(port: &IntOrString, path: &Path, errs: &mut ErrorList) {
    match port {
        IntOrString::Int(n) => {
            for m in names::port_number(i64::from(*n)) {
                errs.push(FieldError::invalid_int(path.clone(), i64::from(*n), m));
            }
        }
        IntOrString::String(s) => {
            for m in names::port_name(s) {
                errs.push(FieldError::invalid_str(path.clone(), s, m));
            }
        }
    }
}

/// `validateProbe`: one handler and non-negative timings.
fn probe(p: &Probe, grace: i64, path: &Path, errs: &mut ErrorList) {
    handler(
        Handler {
            exec: p
                .exec
                .as_ref()
                .map(|e| e.command.as_deref().unwrap_or_default()),
            http_get: p.http_get.as_ref(),
            tcp_port: p.tcp_socket.as_ref().map(|t| &t.port),
            grpc_port: p.grpc.as_ref().map(|g| g.port),
            sleep_seconds: None,
        },
        grace,
        path,
        errs,
    );
    let timings = [
        ("initialDelaySeconds", p.initial_delay_seconds.unwrap_or(0)),
        ("timeoutSeconds", defaulted(p.timeout_seconds, 1)),
        ("periodSeconds", defaulted(p.period_seconds, 10)),
        ("successThreshold", defaulted(p.success_threshold, 1)),
        ("failureThreshold", defaulted(p.failure_threshold, 3)),
    ];
    for (field, value) in timings {
        if value < 0 {
            errs.push(FieldError::invalid_int(
                path.child(field),
                i64::from(value),
                NEGATIVE,
            ));
        }
    }
    if let Some(t) = p.termination_grace_period_seconds
        && t <= 0
    {
        errs.push(FieldError::invalid_int(
            path.child("terminationGracePeriodSeconds"),
            t,
            "must be greater than 0",
        ));
    }
}
