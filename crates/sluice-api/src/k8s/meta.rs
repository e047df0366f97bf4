//! Object metadata and label selectors as the apiserver validates them
//! (`k8s.io/apimachinery/pkg/api/validation`, `pkg/apis/meta/v1/validation`): label keys and
//! values, annotation keys and total size, owner references, LabelSelectors.
//!
//! Maps come in as `(key, value)` pairs so the same rule serves typed objects (the planner's
//! pod templates) and JSON (the embedded API server's stored objects).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::field::{BadValue, ErrorList, FieldError, Path};
use super::names;

/// The most bytes all annotations of one object may take, keys and values together.
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// `ValidateLabels`: every key a qualified name, every value a label value; errors are
/// reported on `path` itself (`metadata.labels: Invalid value: "-x": ...`).
pub fn labels<'a>(labels: impl IntoIterator<Item = (&'a str, &'a str)>, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    for (k, v) in labels {
        for m in names::qualified_name(k) {
            errs.push(FieldError::invalid_str(path.clone(), k, m));
        }
        for m in names::label_value(v) {
            errs.push(FieldError::invalid_str(path.clone(), v, m));
        }
    }
    errs
}

/// `ValidateAnnotations`: keys are qualified names (compared in lower case) and all of them
/// together stay within [`TOTAL_ANNOTATION_SIZE_LIMIT`].
pub fn annotations<'a>(
    annotations: impl IntoIterator<Item = (&'a str, &'a str)>,
    path: &Path,
) -> ErrorList {
    let mut errs = Vec::new();
    let mut size = 0;
    for (k, v) in annotations {
        for m in names::qualified_name(&k.to_lowercase()) {
            errs.push(FieldError::invalid_str(path.clone(), k, m));
        }
        size += k.len() + v.len();
    }
    if size > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError::too_long(
            path.clone(),
            TOTAL_ANNOTATION_SIZE_LIMIT,
        ));
    }
    errs
}

/// The parts of an owner reference the apiserver checks.
#[derive(Debug, Clone, Copy, Default)]
pub struct OwnerRef<'a> {
    pub api_version: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
    pub controller: bool,
}

/// `ValidateOwnerReferences`: each names its owner completely, and at most one is the
/// controller. Errors are reported on `metadata.ownerReferences` (no index, as upstream).
pub fn owner_references(refs: &[OwnerRef<'_>], path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    let mut first_controller: Option<String> = None;
    for r in refs {
        let version = r.api_version.rsplit('/').next().unwrap_or_default();
        for (field, value, what, empty) in [
            ("apiVersion", r.api_version, "version", version.is_empty()),
            ("kind", r.kind, "kind", r.kind.is_empty()),
            ("name", r.name, "name", r.name.is_empty()),
            ("uid", r.uid, "uid", r.uid.is_empty()),
        ] {
            if empty {
                errs.push(FieldError::invalid_str(
                    path.child(field),
                    value,
                    format!("{what} must not be empty"),
                ));
            }
        }
        if r.controller {
            let current = format!("{}/{}", r.kind, r.name);
            match &first_controller {
                Some(first) => errs.push(FieldError::invalid_str(
                    path.clone(),
                    first,
                    format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {current}"
                    ),
                )),
                None => first_controller = Some(current),
            }
        }
    }
    errs
}

/// Go's `%#v` of a `map[string]string`, as the apiserver prints label maps in errors:
/// `map[string]string{"app":"web"}` (keys sorted), `map[string]string(nil)` for none.
pub fn go_string_map<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut pairs: Vec<(&str, &str)> = entries.into_iter().collect();
    if pairs.is_empty() {
        return "map[string]string(nil)".to_string();
    }
    pairs.sort();
    let shown: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}:{}",
                super::field::go_quote(k),
                super::field::go_quote(v)
            )
        })
        .collect();
    format!("map[string]string{{{}}}", shown.join(", "))
}

/// Go's `%#v` of a `*metav1.LabelSelector` as validation errors print it:
/// `v1.LabelSelector{MatchLabels:map[string]string{"app":"web"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}`.
pub fn go_label_selector(selector: &LabelSelector) -> String {
    let labels = match &selector.match_labels {
        None => "map[string]string(nil)".to_string(),
        Some(m) if m.is_empty() => "map[string]string{}".to_string(),
        Some(m) => go_string_map(m.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
    };
    let expressions = match &selector.match_expressions {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(list) => {
            let shown: Vec<String> = list
                .iter()
                .map(|r| {
                    let values = match &r.values {
                        None => "[]string(nil)".to_string(),
                        Some(v) => format!(
                            "[]string{{{}}}",
                            v.iter()
                                .map(|s| super::field::go_quote(s))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{values}}}",
                        super::field::go_quote(&r.key),
                        super::field::go_quote(&r.operator)
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", shown.join(", "))
        }
    };
    format!("v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{expressions}}}")
}

/// `ValidateLabelSelector` (strict: label values in `matchExpressions` must be valid).
pub fn label_selector(selector: &LabelSelector, path: &Path) -> ErrorList {
    let mut errs = labels(
        selector
            .match_labels
            .iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str())),
        &path.child("matchLabels"),
    );
    for (i, req) in selector.match_expressions.iter().flatten().enumerate() {
        let at = path.child("matchExpressions").index(i);
        let values = req.values.as_deref().unwrap_or_default();
        match req.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => errs.push(FieldError::required(
                at.child("values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if !values.is_empty() => errs.push(FieldError::forbidden(
                at.child("values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errs.push(FieldError::invalid_str(
                at.child("operator"),
                other,
                "not a valid selector operator",
            )),
        }
        for m in names::qualified_name(&req.key) {
            errs.push(FieldError::invalid_str(at.child("key"), &req.key, m));
        }
        for (vi, v) in values.iter().enumerate() {
            for m in names::label_value(v) {
                errs.push(FieldError::invalid(
                    at.child("values").index(vi),
                    BadValue::Str(v.clone()),
                    m,
                ));
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn meta() -> Path {
        Path::new("metadata")
    }

    #[test]
    fn labels_name_the_bad_key_or_value() {
        assert!(
            labels(
                [
                    ("app", "web"),
                    ("example.com/tier", ""),
                    ("rollouts-pod-template-hash", "6d4f8b9c7")
                ],
                &meta().child("labels")
            )
            .is_empty()
        );
        let bad = labels(
            [("app", "no spaces"), ("-x", "ok")],
            &meta().child("labels"),
        );
        let text: Vec<String> = bad.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 2);
        assert!(
            text[0].starts_with(
                "metadata.labels: Invalid value: \"no spaces\": a valid label must be"
            )
        );
        assert!(
            text[1].starts_with("metadata.labels: Invalid value: \"-x\": name part must consist")
        );
        let long = "x".repeat(64);
        assert_eq!(
            labels([("a", long.as_str())], &meta().child("labels"))[0].to_string(),
            format!(
                "metadata.labels: Invalid value: \"{long}\": must be no more than 63 characters"
            )
        );
    }

    #[test]
    fn annotations_need_qualified_keys_and_fit_in_256_kib() {
        let path = meta().child("annotations");
        assert!(annotations([("Example.com/Note", "x")], &path).is_empty());
        assert_eq!(annotations([("bad key", "x")], &path).len(), 1);
        let huge = "y".repeat(262_145);
        assert_eq!(
            annotations([("a", huge.as_str())], &path)[0].to_string(),
            "metadata.annotations: Too long: must have at most 262144 bytes"
        );
    }

    #[test]
    fn owner_references_need_identity_and_one_controller() {
        let path = meta().child("ownerReferences");
        let full = OwnerRef {
            api_version: "argoproj.io/v1alpha1",
            kind: "Rollout",
            name: "web",
            uid: "u1",
            controller: true,
        };
        assert!(owner_references(&[full], &path).is_empty());
        let missing = OwnerRef { uid: "", ..full };
        assert_eq!(
            owner_references(&[missing], &path)[0].to_string(),
            "metadata.ownerReferences.uid: Invalid value: \"\": uid must not be empty"
        );
        let other = OwnerRef {
            kind: "Deployment",
            name: "d",
            ..full
        };
        assert_eq!(
            owner_references(&[full, other], &path)[0].to_string(),
            "metadata.ownerReferences: Invalid value: \"Rollout/web\": Only one reference can have Controller set to true. Found \"true\" in references for Rollout/web and Deployment/d"
        );
    }

    #[test]
    fn selectors_check_operators_values_and_labels() {
        let sel = LabelSelector {
            match_labels: Some([("app".to_string(), "web!".to_string())].into()),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: None,
                },
                LabelSelectorRequirement {
                    key: "x".into(),
                    operator: "Matches".into(),
                    values: None,
                },
            ]),
        };
        let errs: Vec<String> = label_selector(&sel, &Path::new("spec.selector"))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(errs[0].starts_with("spec.selector.matchLabels: Invalid value: \"web!\""));
        assert_eq!(
            errs[1],
            "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"
        );
        assert_eq!(
            errs[2],
            "spec.selector.matchExpressions[1].operator: Invalid value: \"Matches\": not a valid selector operator"
        );
    }

    #[test]
    fn string_maps_print_as_go_does() {
        assert_eq!(
            go_string_map([("b", "2"), ("a", "1")]),
            "map[string]string{\"a\":\"1\", \"b\":\"2\"}"
        );
        assert_eq!(go_string_map([]), "map[string]string(nil)");
        let sel = LabelSelector {
            match_labels: Some([("app".to_string(), "y".to_string())].into()),
            match_expressions: None,
        };
        assert_eq!(
            go_label_selector(&sel),
            "v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"y\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}"
        );
    }
}
