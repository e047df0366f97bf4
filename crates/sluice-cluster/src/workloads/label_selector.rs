//! Matching labels against a `LabelSelector` (matchLabels and matchExpressions), for
//! deciding which orphan Pods a ReplicaSet may adopt.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// True when `labels` satisfy every requirement of `selector`. An empty selector selects
/// nothing here: a controller must never adopt every Pod of a namespace by accident.
pub fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let match_labels = selector.match_labels.as_ref();
    let exprs = selector.match_expressions.as_deref().unwrap_or_default();
    if match_labels.is_none_or(|m| m.is_empty()) && exprs.is_empty() {
        return false;
    }
    let labels_ok = match_labels
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    labels_ok
        && exprs.iter().all(|e| {
            let value = labels.get(&e.key);
            let values = e.values.as_deref().unwrap_or_default();
            match e.operator.as_str() {
                "In" => value.is_some_and(|v| values.contains(v)),
                "NotIn" => value.is_none_or(|v| !values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                // An operator the API server would have rejected selects nothing.
                _ => false,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn golden_selector_matches() {
        let app = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            ..Default::default()
        };
        let tiered = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![
                expr("tier", "In", &["front", "edge"]),
                expr("canary", "DoesNotExist", &[]),
                expr("env", "NotIn", &["prod"]),
                expr("app", "Exists", &[]),
            ]),
        };
        let cases = [
            (&app, labels(&[("app", "web"), ("x", "y")]), true),
            (&app, labels(&[("app", "api")]), false),
            (&app, labels(&[]), false),
            (&tiered, labels(&[("app", "a"), ("tier", "edge")]), true),
            (&tiered, labels(&[("app", "a"), ("tier", "back")]), false),
            (
                &tiered,
                labels(&[("app", "a"), ("tier", "edge"), ("canary", "1")]),
                false,
            ),
            (
                &tiered,
                labels(&[("app", "a"), ("tier", "edge"), ("env", "prod")]),
                false,
            ),
            (&tiered, labels(&[("tier", "edge")]), false),
            (&LabelSelector::default(), labels(&[("app", "web")]), false),
        ];
        for (i, (sel, l, want)) in cases.into_iter().enumerate() {
            assert_eq!(selects(sel, &l), want, "case {i}: {l:?}");
        }
    }
}
