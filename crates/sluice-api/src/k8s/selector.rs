//! Matching labels against a `metav1.LabelSelector`, with Kubernetes' semantics
//! (`metav1.LabelSelectorAsSelector` followed by `Selector.Matches`):
//!
//! - a nil selector matches nothing, an empty one (no `matchLabels`, no `matchExpressions`)
//!   matches everything;
//! - every `matchLabels` pair and every expression must hold;
//! - `In` needs the key present with one of the values; `NotIn` holds when the key is absent
//!   or has none of the values; `Exists` / `DoesNotExist` test only the key;
//! - an unknown operator, `In`/`NotIn` without values, or `Exists`/`DoesNotExist` with values
//!   make the selector invalid, an error rather than a silent non-match.
//!
//! Callers that must never select a whole namespace (a controller adopting orphans, a Rollout
//! selector) reject empty selectors themselves with [`is_empty`], as the API server's
//! validation does.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use thiserror::Error;

/// Why a `LabelSelector` cannot be turned into a selector.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SelectorError {
    #[error("unknown operator {0:?}")]
    UnknownOperator(String),
    #[error("key {key:?}: operator {operator} needs at least one value")]
    ValuesRequired { key: String, operator: String },
    #[error("key {key:?}: operator {operator} takes no values")]
    ValuesForbidden { key: String, operator: String },
}

/// Whether `selector` has neither `matchLabels` nor `matchExpressions` (it selects everything).
pub fn is_empty(selector: &LabelSelector) -> bool {
    selector
        .match_labels
        .as_ref()
        .is_none_or(BTreeMap::is_empty)
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(Vec::is_empty)
}

/// Whether `labels` satisfy `selector` (`None` is a nil selector and matches nothing).
pub fn matches(
    selector: Option<&LabelSelector>,
    labels: &BTreeMap<String, String>,
) -> Result<bool, SelectorError> {
    let Some(selector) = selector else {
        return Ok(false);
    };
    // Validate every expression before answering, so an invalid selector is an error
    // whatever the labels are.
    let mut all = true;
    for expr in selector.match_expressions.iter().flatten() {
        let value = labels.get(&expr.key);
        let values = expr.values.as_deref().unwrap_or_default();
        let needs_values = |ok: bool| {
            if values.is_empty() {
                Err(SelectorError::ValuesRequired {
                    key: expr.key.clone(),
                    operator: expr.operator.clone(),
                })
            } else {
                Ok(ok)
            }
        };
        let takes_none = |ok: bool| {
            if values.is_empty() {
                Ok(ok)
            } else {
                Err(SelectorError::ValuesForbidden {
                    key: expr.key.clone(),
                    operator: expr.operator.clone(),
                })
            }
        };
        let holds = match expr.operator.as_str() {
            "In" => needs_values(value.is_some_and(|v| values.contains(v)))?,
            "NotIn" => needs_values(value.is_none_or(|v| !values.contains(v)))?,
            "Exists" => takes_none(value.is_some())?,
            "DoesNotExist" => takes_none(value.is_none())?,
            other => return Err(SelectorError::UnknownOperator(other.to_string())),
        };
        all &= holds;
    }
    let labels_hold = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    Ok(all && labels_hold)
}

/// The selector's string form (`labels.Selector.String()` of `LabelSelectorAsSelector`):
/// requirements sorted by key, values sorted, `a=b`, `c in (d,e)`, `c notin (d)`, `c`, `!c`.
/// It is what a scale subresource reports in `status.selector`, which `kubectl scale` and the
/// HPA read, and what `kubectl get -o wide` shows as SELECTOR.
pub fn to_string(selector: &LabelSelector) -> String {
    let mut parts: Vec<(&str, String)> = Vec::new();
    for (k, v) in selector.match_labels.iter().flatten() {
        parts.push((k, format!("{k}={v}")));
    }
    for e in selector.match_expressions.iter().flatten() {
        let mut values: Vec<&str> = e.values.iter().flatten().map(String::as_str).collect();
        values.sort_unstable();
        values.dedup();
        let values = values.join(",");
        let text = match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            other => format!("{} {other} ({values})", e.key),
        };
        parts.push((&e.key, text));
    }
    parts.sort();
    parts
        .into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(",")
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

    fn sel(match_labels: &[(&str, &str)], exprs: Vec<LabelSelectorRequirement>) -> LabelSelector {
        LabelSelector {
            match_labels: (!match_labels.is_empty()).then(|| labels(match_labels)),
            match_expressions: (!exprs.is_empty()).then_some(exprs),
        }
    }

    #[test]
    fn a_nil_selector_matches_nothing_and_an_empty_one_everything() {
        let any = labels(&[("app", "web")]);
        assert_eq!(matches(None, &any), Ok(false));
        assert_eq!(matches(None, &labels(&[])), Ok(false));
        assert_eq!(matches(Some(&LabelSelector::default()), &any), Ok(true));
        assert_eq!(
            matches(Some(&LabelSelector::default()), &labels(&[])),
            Ok(true)
        );
        let explicit_empty = LabelSelector {
            match_labels: Some(BTreeMap::new()),
            match_expressions: Some(vec![]),
        };
        assert!(is_empty(&explicit_empty));
        assert_eq!(matches(Some(&explicit_empty), &any), Ok(true));
    }

    #[test]
    fn golden_selector_matches() {
        let app = sel(&[("app", "web")], vec![]);
        let tiered = sel(
            &[],
            vec![
                expr("tier", "In", &["front", "edge"]),
                expr("canary", "DoesNotExist", &[]),
                expr("env", "NotIn", &["prod"]),
                expr("app", "Exists", &[]),
            ],
        );
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
        ];
        for (i, (s, l, want)) in cases.into_iter().enumerate() {
            assert_eq!(matches(Some(s), &l), Ok(want), "case {i}: {l:?}");
        }
    }

    #[test]
    fn selector_expressions_match_like_kubernetes() {
        let l = labels(&[("app", "demo"), ("tier", "web")]);
        for (e, expected) in [
            (expr("tier", "In", &["web", "api"]), true),
            (expr("tier", "In", &["api"]), false),
            (expr("tier", "NotIn", &["api"]), true),
            (expr("zone", "NotIn", &["a"]), true),
            (expr("tier", "Exists", &[]), true),
            (expr("zone", "Exists", &[]), false),
            (expr("zone", "DoesNotExist", &[]), true),
            (expr("tier", "DoesNotExist", &[]), false),
        ] {
            let s = sel(&[("app", "demo")], vec![e.clone()]);
            assert_eq!(matches(Some(&s), &l), Ok(expected), "{e:?}");
        }
    }

    #[test]
    fn invalid_expressions_are_errors_whatever_the_labels() {
        let l = labels(&[("app", "demo")]);
        let cases = [
            (
                expr("tier", "Near", &[]),
                SelectorError::UnknownOperator("Near".into()),
            ),
            (
                expr("tier", "In", &[]),
                SelectorError::ValuesRequired {
                    key: "tier".into(),
                    operator: "In".into(),
                },
            ),
            (
                expr("tier", "NotIn", &[]),
                SelectorError::ValuesRequired {
                    key: "tier".into(),
                    operator: "NotIn".into(),
                },
            ),
            (
                expr("tier", "Exists", &["x"]),
                SelectorError::ValuesForbidden {
                    key: "tier".into(),
                    operator: "Exists".into(),
                },
            ),
        ];
        for (e, want) in cases {
            // A failing matchLabels pair does not hide the invalid expression.
            let s = sel(&[("app", "other")], vec![e.clone()]);
            assert_eq!(matches(Some(&s), &l), Err(want), "{e:?}");
        }
        assert_eq!(
            SelectorError::UnknownOperator("Near".into()).to_string(),
            "unknown operator \"Near\""
        );
    }

    #[test]
    fn the_string_form_sorts_requirements_by_key_and_values() {
        let s = sel(
            &[("b", "2"), ("a", "1")],
            vec![
                expr("c", "In", &["y", "x"]),
                expr("0", "DoesNotExist", &[]),
                expr("t", "NotIn", &["q"]),
                expr("e", "Exists", &[]),
            ],
        );
        assert_eq!(to_string(&s), "!0,a=1,b=2,c in (x,y),e,t notin (q)");
        assert_eq!(to_string(&LabelSelector::default()), "");
    }
}
