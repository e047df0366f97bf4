//! The specs of the built-in objects that hold pod templates, as the apiserver validates them
//! (`pkg/apis/apps/validation`, `pkg/apis/batch/validation`, `ValidatePod`, `ValidatePodTemplate`),
//! and the Services that select their pods. Metadata is validated separately ([`super::meta`]).

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, PodTemplate, PodTemplateSpec, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::field::{BadValue, ErrorList, FieldError, Path};
use super::{meta, names, pod, selector};

const NEGATIVE: &str = "must be greater than or equal to 0";

fn non_negative(value: i64, path: Path, errs: &mut ErrorList) {
    if value < 0 {
        errs.push(FieldError::invalid_int(path, value, NEGATIVE));
    }
}

/// The pod template of a ReplicaSet (or of what creates ReplicaSets: a Deployment, and a
/// Rollout, whose template Sluice copies into its ReplicaSets): a valid pod template whose
/// pods restart `Always` and have no `activeDeadlineSeconds`.
pub fn replica_set_pod_template(template: &PodTemplateSpec, path: &Path) -> ErrorList {
    let mut errs = pod::pod_template_spec(template, path);
    let spec = template.spec.as_ref();
    let restart = spec
        .and_then(|s| s.restart_policy.as_deref())
        .filter(|r| !r.is_empty())
        .unwrap_or("Always");
    if restart != "Always" {
        errs.push(FieldError::not_supported(
            path.child("spec").child("restartPolicy"),
            restart,
            &["Always"],
        ));
    }
    if spec.is_some_and(|s| s.active_deadline_seconds.is_some()) {
        errs.push(FieldError::forbidden(
            path.child("spec").child("activeDeadlineSeconds"),
            "activeDeadlineSeconds in ReplicaSet is not Supported",
        ));
    }
    errs
}

/// The selector of a ReplicaSet or Deployment: present, well-formed, not empty, and matching
/// the template's labels; then the template. `missing` says the object had no
/// `spec.selector` at all (a typed object cannot tell that from an empty one). A missing
/// selector matches no labels; a malformed one stops validation before the template, as
/// upstream.
fn selector_and_template(
    selector: &LabelSelector,
    missing: bool,
    template: &PodTemplateSpec,
    path: &Path,
    errs: &mut ErrorList,
) {
    let sel_path = path.child("selector");
    let shown = || BadValue::Raw(meta::go_label_selector(selector));
    if missing {
        errs.push(FieldError::required(sel_path.clone(), ""));
    } else {
        let malformed = meta::label_selector(selector, &sel_path);
        let is_malformed = !malformed.is_empty();
        errs.extend(malformed);
        if selector::is_empty(selector) {
            errs.push(FieldError::invalid(
                sel_path.clone(),
                shown(),
                "empty selector is invalid for deployment",
            ));
        }
        if is_malformed || selector::matches(Some(selector), &Default::default()).is_err() {
            errs.push(FieldError::invalid(
                sel_path,
                shown(),
                "invalid label selector",
            ));
            return;
        }
    }
    let tpl_path = path.child("template");
    let labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let mismatched = missing
        || (!selector::is_empty(selector)
            && matches!(selector::matches(Some(selector), &labels), Ok(false)));
    if mismatched {
        let map = template.metadata.as_ref().and_then(|m| m.labels.as_ref());
        let shown = match map {
            Some(m) if m.is_empty() => "map[string]string{}".to_string(),
            _ => meta::go_string_map(labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        };
        errs.push(FieldError::invalid(
            tpl_path.child("metadata").child("labels"),
            BadValue::Raw(shown),
            "`selector` does not match template `labels`",
        ));
    }
    errs.extend(replica_set_pod_template(template, &tpl_path));
}

/// `ValidateReplicaSetSpec`.
pub fn replica_set(rs: &ReplicaSet, selector_missing: bool) -> ErrorList {
    let mut errs = Vec::new();
    let path = Path::new("spec");
    let Some(spec) = &rs.spec else {
        errs.push(FieldError::required(path.child("selector"), ""));
        return errs;
    };
    non_negative(
        i64::from(spec.replicas.unwrap_or(1)),
        path.child("replicas"),
        &mut errs,
    );
    non_negative(
        i64::from(spec.min_ready_seconds.unwrap_or(0)),
        path.child("minReadySeconds"),
        &mut errs,
    );
    let template = spec.template.clone().unwrap_or_default();
    selector_and_template(
        &spec.selector,
        selector_missing,
        &template,
        &path,
        &mut errs,
    );
    errs
}

/// `ValidateDeploymentSpec`: the ReplicaSet rules plus strategy, history and deadline.
pub fn deployment(d: &Deployment, selector_missing: bool) -> ErrorList {
    let mut errs = Vec::new();
    let path = Path::new("spec");
    let Some(spec) = &d.spec else {
        errs.push(FieldError::required(path.child("selector"), ""));
        return errs;
    };
    non_negative(
        i64::from(spec.replicas.unwrap_or(1)),
        path.child("replicas"),
        &mut errs,
    );
    selector_and_template(
        &spec.selector,
        selector_missing,
        &spec.template,
        &path,
        &mut errs,
    );
    if let Some(strategy) = &spec.strategy {
        let s_path = path.child("strategy");
        match strategy.type_.as_deref().unwrap_or("RollingUpdate") {
            "Recreate" => {
                if strategy.rolling_update.is_some() {
                    errs.push(FieldError::forbidden(
                        s_path.child("rollingUpdate"),
                        "may not be specified when strategy `type` is 'Recreate'",
                    ));
                }
            }
            "RollingUpdate" => {
                if let Some(ru) = &strategy.rolling_update {
                    rolling_update(
                        ru.max_unavailable.as_ref(),
                        ru.max_surge.as_ref(),
                        &s_path.child("rollingUpdate"),
                        &mut errs,
                    );
                }
            }
            other => errs.push(FieldError::not_supported(
                s_path,
                other,
                &["Recreate", "RollingUpdate"],
            )),
        }
    }
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    non_negative(
        i64::from(min_ready),
        path.child("minReadySeconds"),
        &mut errs,
    );
    if let Some(limit) = spec.revision_history_limit {
        non_negative(
            i64::from(limit),
            path.child("revisionHistoryLimit"),
            &mut errs,
        );
    }
    if let Some(deadline) = spec.progress_deadline_seconds {
        non_negative(
            i64::from(deadline),
            path.child("progressDeadlineSeconds"),
            &mut errs,
        );
        if deadline <= min_ready {
            errs.push(FieldError::invalid_int(
                path.child("progressDeadlineSeconds"),
                i64::from(deadline),
                "must be greater than minReadySeconds",
            ));
        }
    }
    errs
}

/// An int-or-percent as Go prints `intstr.IntOrString` in these errors.
fn int_or_string_value(v: &IntOrString) -> BadValue {
    match v {
        IntOrString::Int(i) => BadValue::Raw(format!(
            "intstr.IntOrString{{Type:0, IntVal:{i}, StrVal:\"\"}}"
        )),
        IntOrString::String(s) => BadValue::Raw(format!(
            "intstr.IntOrString{{Type:1, IntVal:0, StrVal:{}}}",
            super::field::go_quote(s)
        )),
    }
}

/// A percent (`"25%"`) or a non-negative count, and what it amounts to for "both zero".
fn int_or_percent(v: &IntOrString, path: &Path, errs: &mut ErrorList) -> Option<i64> {
    match v {
        IntOrString::Int(i) => {
            non_negative(i64::from(*i), path.clone(), errs);
            Some(i64::from(*i))
        }
        IntOrString::String(s) => {
            let number = s
                .strip_suffix('%')
                .filter(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()));
            match number {
                Some(n) => n.parse().ok(),
                None => {
                    errs.push(FieldError::invalid(
                        path.clone(),
                        int_or_string_value(v),
                        names::regex_error(
                            "a valid percent string must be a numeric string followed by an ending '%'",
                            "[0-9]+%",
                            &["1%", "93%"],
                        ),
                    ));
                    None
                }
            }
        }
    }
}

/// `ValidateRollingUpdateDeployment`.
fn rolling_update(
    max_unavailable: Option<&IntOrString>,
    max_surge: Option<&IntOrString>,
    path: &Path,
    errs: &mut ErrorList,
) {
    let default = IntOrString::String("25%".into());
    let unavailable = max_unavailable.unwrap_or(&default);
    let surge = max_surge.unwrap_or(&default);
    let u = int_or_percent(unavailable, &path.child("maxUnavailable"), errs);
    let s = int_or_percent(surge, &path.child("maxSurge"), errs);
    if u.unwrap_or(0) == 0 && s.unwrap_or(0) == 0 {
        errs.push(FieldError::invalid(
            path.child("maxUnavailable"),
            int_or_string_value(unavailable),
            "may not be 0 when `maxSurge` is 0",
        ));
    }
    if matches!(unavailable, IntOrString::String(_)) && u.is_some_and(|p| p > 100) {
        errs.push(FieldError::invalid(
            path.child("maxUnavailable"),
            int_or_string_value(unavailable),
            "must not be greater than 100%",
        ));
    }
}

/// `validateJobSpec`: counts, the template, and pods that restart `OnFailure` or `Never`.
pub fn job(j: &Job) -> ErrorList {
    let mut errs = Vec::new();
    let path = Path::new("spec");
    let Some(spec) = &j.spec else {
        errs.push(FieldError::required(path.child("template"), ""));
        return errs;
    };
    for (field, value) in [
        ("parallelism", spec.parallelism),
        ("completions", spec.completions),
        ("backoffLimit", spec.backoff_limit),
    ] {
        if let Some(v) = value {
            non_negative(i64::from(v), path.child(field), &mut errs);
        }
    }
    if let Some(d) = spec.active_deadline_seconds
        && d <= 0
    {
        errs.push(FieldError::invalid_int(
            path.child("activeDeadlineSeconds"),
            d,
            "must be greater than zero",
        ));
    }
    let tpl_path = path.child("template");
    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    if let Some(sel) = &spec.selector
        && !selector::is_empty(sel)
        && matches!(selector::matches(Some(sel), &labels), Ok(false))
    {
        errs.push(FieldError::invalid(
            tpl_path.child("metadata").child("labels"),
            BadValue::Raw(meta::go_string_map(
                labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            )),
            "`selector` does not match template `labels`",
        ));
    }
    errs.extend(pod::pod_template_spec(&spec.template, &tpl_path));
    let restart = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .filter(|r| !r.is_empty())
        .unwrap_or("Always");
    if restart != "OnFailure" && restart != "Never" {
        errs.push(FieldError::not_supported(
            tpl_path.child("spec").child("restartPolicy"),
            restart,
            &["OnFailure", "Never"],
        ));
    }
    errs
}

/// `ValidatePodCreate` (spec part): the pod spec, and no ephemeral containers on create.
pub fn pod(p: &Pod, creating: bool) -> ErrorList {
    let path = Path::new("spec");
    let empty = Default::default();
    let spec = p.spec.as_ref().unwrap_or(&empty);
    let mut errs = pod::pod_spec(spec, &path);
    if creating
        && spec
            .ephemeral_containers
            .as_ref()
            .is_some_and(|e| !e.is_empty())
    {
        errs.push(FieldError::forbidden(
            path.child("ephemeralContainers"),
            "cannot be set on create",
        ));
    }
    errs
}

/// `ValidatePodTemplate`: the template under `template`.
pub fn pod_template(t: &PodTemplate) -> ErrorList {
    pod::pod_template_spec(
        &t.template.clone().unwrap_or_default(),
        &Path::new("template"),
    )
}

/// The parts of `ValidateService` that concern the pods it selects and the ports it serves:
/// selector labels, port numbers, protocols, names (required and unique when there are
/// several) and target ports.
pub fn service(s: &Service) -> ErrorList {
    let mut errs = Vec::new();
    let path = Path::new("spec");
    let Some(spec) = &s.spec else {
        return errs;
    };
    let ports = spec.ports.as_deref().unwrap_or_default();
    let mut seen = std::collections::HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let at = path.child("ports").index(i);
        let name = p.name.as_deref().unwrap_or_default();
        if ports.len() > 1 && name.is_empty() {
            errs.push(FieldError::required(at.child("name"), ""));
        } else if !name.is_empty() {
            for m in names::dns1123_label(name) {
                errs.push(FieldError::invalid_str(at.child("name"), name, m));
            }
            if !seen.insert(name) {
                errs.push(FieldError::duplicate(at.child("name"), name));
            }
        }
        for m in names::port_number(i64::from(p.port)) {
            errs.push(FieldError::invalid_int(
                at.child("port"),
                i64::from(p.port),
                m,
            ));
        }
        match p.protocol.as_deref() {
            None | Some("" | "TCP" | "UDP" | "SCTP") => {}
            Some(other) => errs.push(FieldError::not_supported(
                at.child("protocol"),
                other,
                &["SCTP", "TCP", "UDP"],
            )),
        }
        if let Some(target) = &p.target_port {
            let target_at = at.child("targetPort");
            match target {
                IntOrString::Int(n) => {
                    for m in names::port_number(i64::from(*n)) {
                        errs.push(FieldError::invalid_int(target_at.clone(), i64::from(*n), m));
                    }
                }
                IntOrString::String(n) => {
                    for m in names::port_name(n) {
                        errs.push(FieldError::invalid_str(target_at.clone(), n, m));
                    }
                }
            }
        }
    }
    errs.extend(meta::labels(
        spec.selector
            .iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str())),
        &path.child("selector"),
    ));
    let kind = spec.type_.as_deref().unwrap_or("ClusterIP");
    if !matches!(
        kind,
        "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName"
    ) {
        errs.push(FieldError::not_supported(
            path.child("type"),
            kind,
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn replica_set_of(spec: serde_json::Value) -> ReplicaSet {
        serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": spec})).unwrap()
    }

    fn rendered(errs: ErrorList) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    /// A template the container rules refuse (no image), to see whether it was looked at.
    fn imageless_template() -> serde_json::Value {
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web"}]}})
    }

    #[test]
    fn a_missing_selector_is_required_and_matches_no_template_labels() {
        let rs = replica_set_of(json!({"template": imageless_template()}));
        assert_eq!(
            rendered(replica_set(&rs, true)),
            [
                "spec.selector: Required value",
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
                "spec.template.spec.containers[0].image: Required value",
            ]
        );
    }

    #[test]
    fn a_malformed_selector_is_an_invalid_label_selector_and_the_template_is_not_checked() {
        let rs = replica_set_of(json!({
            "selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": []}]},
            "template": imageless_template(),
        }));
        assert_eq!(
            rendered(replica_set(&rs, false)),
            [
                "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
                "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:\"app\", Operator:\"In\", Values:[]string{}}}}: invalid label selector",
            ]
        );
    }

    #[test]
    fn a_selector_that_misses_the_template_labels_names_them() {
        let rs = replica_set_of(json!({
            "selector": {"matchLabels": {"app": "api"}},
            "template": {"metadata": {"labels": {}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}},
        }));
        assert_eq!(
            rendered(replica_set(&rs, false)),
            [
                "spec.template.metadata.labels: Invalid value: map[string]string{}: `selector` does not match template `labels`"
            ]
        );
    }
}
