//! Containers and init containers: names, images, ports, host ports, volume mounts, pull
//! and termination-message policies, and what may be set on which kind of container.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec, VolumeMount};

use super::super::field::{ErrorList, FieldError, Path};
use super::super::names;
use super::env::{env, env_from};
use super::probes::{lifecycle, probes};
use super::resources::resources;

/// The regular containers: at least one, unique names, each container's own rules, probes
/// and lifecycle hooks, no `restartPolicy`, no host port used twice.
pub(super) fn containers(
    list: &[Container],
    volumes: &HashSet<String>,
    grace: i64,
    path: &Path,
    errs: &mut ErrorList,
) {
    if list.is_empty() {
        errs.push(FieldError::required(path.clone(), ""));
        return;
    }
    let mut seen = HashSet::new();
    for (i, c) in list.iter().enumerate() {
        let at = path.index(i);
        container_common(c, volumes, &at, errs);
        if !seen.insert(c.name.as_str()) {
            errs.push(FieldError::duplicate(at.child("name"), &c.name));
        }
        if let Some(l) = &c.lifecycle {
            lifecycle(l, grace, &at.child("lifecycle"), errs);
        }
        probes(c, grace, &at, errs);
        if c.restart_policy.is_some() {
            errs.push(FieldError::forbidden(
                at.child("restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }
    host_port_conflicts(list.iter().enumerate(), path, errs);
}

/// Init containers: the common rules, names unique across init and regular containers,
/// `restartPolicy` only `Always` (a sidecar), and probes and lifecycle hooks only on sidecars.
pub(super) fn init_containers(
    spec: &PodSpec,
    volumes: &HashSet<String>,
    grace: i64,
    path: &Path,
    errs: &mut ErrorList,
) {
    let mut seen: HashSet<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let at = path.index(i);
        container_common(c, volumes, &at, errs);
        let mut sidecar = false;
        if let Some(policy) = &c.restart_policy {
            if policy == "Always" {
                sidecar = true;
            } else {
                errs.push(FieldError::not_supported(
                    at.child("restartPolicy"),
                    policy,
                    &["Always"],
                ));
            }
        }
        if seen.contains(c.name.as_str()) {
            errs.push(FieldError::duplicate(at.child("name"), &c.name));
        } else if !c.name.is_empty() {
            seen.insert(c.name.as_str());
        }
        host_port_conflicts(std::iter::once((i, c)), path, errs);
        if sidecar {
            if let Some(l) = &c.lifecycle {
                lifecycle(l, grace, &at.child("lifecycle"), errs);
            }
            probes(c, grace, &at, errs);
            continue;
        }
        let hooks = [
            ("lifecycle", c.lifecycle.is_some()),
            ("livenessProbe", c.liveness_probe.is_some()),
            ("readinessProbe", c.readiness_probe.is_some()),
            ("startupProbe", c.startup_probe.is_some()),
        ];
        for (field, set) in hooks {
            if set {
                errs.push(FieldError::forbidden(
                    at.child(field),
                    "may not be set for init containers without restartPolicy=Always",
                ));
            }
        }
    }
}

/// `validateContainerCommon`: name, image, termination message policy, ports, env, volume
/// mounts, pull policy, resources.
fn container_common(c: &Container, volumes: &HashSet<String>, path: &Path, errs: &mut ErrorList) {
    if c.name.is_empty() {
        errs.push(FieldError::required(path.child("name"), ""));
    } else {
        for m in names::dns1123_label(&c.name) {
            errs.push(FieldError::invalid_str(path.child("name"), &c.name, m));
        }
    }
    if c.image.as_deref().unwrap_or_default().is_empty() {
        errs.push(FieldError::required(path.child("image"), ""));
    }
    match c.termination_message_policy.as_deref() {
        None | Some("" | "File" | "FallbackToLogsOnError") => {}
        Some(other) => errs.push(FieldError::not_supported(
            path.child("terminationMessagePolicy"),
            other,
            &["File", "FallbackToLogsOnError"],
        )),
    }
    ports(
        c.ports.as_deref().unwrap_or_default(),
        &path.child("ports"),
        errs,
    );
    env(
        c.env.as_deref().unwrap_or_default(),
        &path.child("env"),
        errs,
    );
    env_from(
        c.env_from.as_deref().unwrap_or_default(),
        &path.child("envFrom"),
        errs,
    );
    let privileged = c
        .security_context
        .as_ref()
        .and_then(|s| s.privileged)
        .unwrap_or(false);
    volume_mounts(
        c.volume_mounts.as_deref().unwrap_or_default(),
        volumes,
        privileged,
        &path.child("volumeMounts"),
        errs,
    );
    match c.image_pull_policy.as_deref() {
        None | Some("" | "Always" | "IfNotPresent" | "Never") => {}
        Some(other) => errs.push(FieldError::not_supported(
            path.child("imagePullPolicy"),
            other,
            &["Always", "IfNotPresent", "Never"],
        )),
    }
    if let Some(r) = &c.resources {
        resources(r, &path.child("resources"), errs);
    }
}

/// `validateContainerPorts`: valid, unique (per container) names; container and host port
/// numbers in range; a known protocol.
fn ports(list: &[ContainerPort], path: &Path, errs: &mut ErrorList) {
    let mut seen = HashSet::new();
    for (i, p) in list.iter().enumerate() {
        let at = path.index(i);
        if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
            let msgs = names::port_name(name);
            if !msgs.is_empty() {
                for m in msgs {
                    errs.push(FieldError::invalid_str(at.child("name"), name, m));
                }
            } else if !seen.insert(name) {
                errs.push(FieldError::duplicate(at.child("name"), name));
            }
        }
        if p.container_port == 0 {
            errs.push(FieldError::required(at.child("containerPort"), ""));
        } else {
            for m in names::port_number(i64::from(p.container_port)) {
                errs.push(FieldError::invalid_int(
                    at.child("containerPort"),
                    i64::from(p.container_port),
                    m,
                ));
            }
        }
        if let Some(h) = p.host_port.filter(|h| *h != 0) {
            for m in names::port_number(i64::from(h)) {
                errs.push(FieldError::invalid_int(
                    at.child("hostPort"),
                    i64::from(h),
                    m,
                ));
            }
        }
        match p.protocol.as_deref() {
            None | Some("" | "TCP" | "UDP" | "SCTP") => {}
            Some(other) => errs.push(FieldError::not_supported(
                at.child("protocol"),
                other,
                &["SCTP", "TCP", "UDP"],
            )),
        }
    }
}

/// `AccumulateUniqueHostPorts`: a `protocol/hostIP/hostPort` may be claimed once.
fn host_port_conflicts<'a>(
    containers: impl Iterator<Item = (usize, &'a Container)>,
    path: &Path,
    errs: &mut ErrorList,
) {
    let mut seen = HashSet::new();
    for (ci, c) in containers {
        for (pi, p) in c.ports.iter().flatten().enumerate() {
            let Some(port) = p.host_port.filter(|h| *h != 0) else {
                continue;
            };
            let key = format!(
                "{}/{}/{port}",
                p.protocol
                    .as_deref()
                    .filter(|p| !p.is_empty())
                    .unwrap_or("TCP"),
                p.host_ip.as_deref().unwrap_or_default()
            );
            if !seen.insert(key.clone()) {
                errs.push(FieldError::duplicate(
                    path.index(ci).child("ports").index(pi).child("hostPort"),
                    &key,
                ));
            }
        }
    }
}

/// `ValidateVolumeMounts`: each mount names a volume of the pod and a unique, non-empty path;
/// sub-paths stay inside the volume.
fn volume_mounts(
    list: &[VolumeMount],
    volumes: &HashSet<String>,
    privileged: bool,
    path: &Path,
    errs: &mut ErrorList,
) {
    let mut mount_points = HashSet::new();
    for (i, m) in list.iter().enumerate() {
        let at = path.index(i);
        if m.name.is_empty() {
            errs.push(FieldError::required(at.child("name"), ""));
        }
        if !volumes.contains(&m.name) {
            errs.push(FieldError::not_found(at.child("name"), &m.name));
        }
        if m.mount_path.is_empty() {
            errs.push(FieldError::required(at.child("mountPath"), ""));
        }
        if !mount_points.insert(m.mount_path.as_str()) {
            errs.push(FieldError::invalid_str(
                at.child("mountPath"),
                &m.mount_path,
                "must be unique",
            ));
        }
        let sub_path = m.sub_path.as_deref().unwrap_or_default();
        if !sub_path.is_empty() {
            local_descending_path(sub_path, &path.child("subPath"), errs);
        }
        let expr = m.sub_path_expr.as_deref().unwrap_or_default();
        if !expr.is_empty() {
            if !sub_path.is_empty() {
                errs.push(FieldError::invalid_str(
                    at.child("subPathExpr"),
                    expr,
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
            local_descending_path(expr, &path.child("subPathExpr"), errs);
        }
        if let Some(mode) = &m.mount_propagation {
            let at = path.child("mountPropagation");
            match mode.as_str() {
                "None" | "HostToContainer" => {}
                "Bidirectional" if privileged => {}
                "Bidirectional" => errs.push(FieldError::forbidden(
                    at,
                    "Bidirectional mount propagation is available only to privileged containers",
                )),
                other => errs.push(FieldError::not_supported(
                    at,
                    other,
                    &["Bidirectional", "HostToContainer", "None"],
                )),
            }
        }
    }
}

/// `validateLocalDescendingPath`: relative, and no `..` step.
fn local_descending_path(target: &str, path: &Path, errs: &mut ErrorList) {
    if target.starts_with('/') {
        errs.push(FieldError::invalid_str(
            path.clone(),
            target,
            "must be a relative path",
        ));
    }
    if target.split('/').any(|part| part == "..") {
        errs.push(FieldError::invalid_str(
            path.clone(),
            target,
            "must not contain '..'",
        ));
    }
}
