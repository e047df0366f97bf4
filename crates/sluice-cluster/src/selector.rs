//! Label and field selectors in their query-string forms (`a=b,c in (d,e),!f`), as LIST, WATCH and
//! DELETE-collection accept them.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
    Gt(i64),
    Lt(i64),
}

/// A parsed selector: every requirement must hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Selector {
    reqs: Vec<(String, Op)>,
}

/// Splits on commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn set_values(rest: &str, whole: &str) -> Result<Vec<String>, String> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("unable to parse requirement: found '{whole}', expected: '('"))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

impl Selector {
    /// Parses a label selector; the error text is what the apiserver returns in a 400.
    pub fn parse_labels(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for part in split_top(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            if let Some(k) = part.strip_prefix('!') {
                reqs.push((k.trim().to_string(), Op::NotExists));
                continue;
            }
            if let Some((k, v)) = part.split_once("!=") {
                reqs.push((k.trim().into(), Op::NotEq(v.trim().into())));
            } else if let Some((k, v)) = part.split_once("==") {
                reqs.push((k.trim().into(), Op::Eq(v.trim().into())));
            } else if let Some((k, v)) = part.split_once('=') {
                reqs.push((k.trim().into(), Op::Eq(v.trim().into())));
            } else if let Some((k, v)) = part.split_once('>') {
                let n = v
                    .trim()
                    .parse()
                    .map_err(|_| format!("invalid selector: '{part}'"))?;
                reqs.push((k.trim().into(), Op::Gt(n)));
            } else if let Some((k, v)) = part.split_once('<') {
                let n = v
                    .trim()
                    .parse()
                    .map_err(|_| format!("invalid selector: '{part}'"))?;
                reqs.push((k.trim().into(), Op::Lt(n)));
            } else if let Some((k, rest)) = part.split_once(" notin ") {
                reqs.push((k.trim().into(), Op::NotIn(set_values(rest, part)?)));
            } else if let Some((k, rest)) = part.split_once(" in ") {
                reqs.push((k.trim().into(), Op::In(set_values(rest, part)?)));
            } else if part.contains(char::is_whitespace) || part.contains('(') {
                return Err(format!(
                    "unable to parse requirement: invalid selector: '{part}'"
                ));
            } else {
                reqs.push((part.to_string(), Op::Exists));
            }
        }
        for (k, _) in &reqs {
            if k.is_empty() {
                return Err(format!(
                    "unable to parse requirement: invalid label key in '{s}'"
                ));
            }
        }
        Ok(Selector { reqs })
    }

    /// Parses a field selector (only `=`, `==`, `!=`).
    pub fn parse_fields(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            if let Some((k, v)) = part.split_once("!=") {
                reqs.push((k.trim().into(), Op::NotEq(v.trim().into())));
            } else if let Some((k, v)) = part.split_once("==") {
                reqs.push((k.trim().into(), Op::Eq(v.trim().into())));
            } else if let Some((k, v)) = part.split_once('=') {
                reqs.push((k.trim().into(), Op::Eq(v.trim().into())));
            } else {
                return Err(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                ));
            }
        }
        Ok(Selector { reqs })
    }

    /// The keys the selector tests (field selectors check them against the supported fields).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.reqs.iter().map(|(k, _)| k.as_str())
    }

    /// The requirements that admit only listed values of a key (`k=v`, `k==v`, `k in (..)`),
    /// as `(key, values)`: a store can answer them from a label index instead of a scan.
    pub fn indexable(&self) -> Vec<(&str, Vec<&str>)> {
        self.reqs
            .iter()
            .filter_map(|(k, op)| match op {
                Op::Eq(v) => Some((k.as_str(), vec![v.as_str()])),
                Op::In(vs) => Some((k.as_str(), vs.iter().map(String::as_str).collect())),
                _ => None,
            })
            .collect()
    }

    /// Whether the selector admits everything (the apiserver then reports a remaining count).
    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// How many requirements the selector has.
    pub fn len(&self) -> usize {
        self.reqs.len()
    }

    /// Whether `lookup` (key → value, `None` when absent) satisfies every requirement.
    pub fn matches(&self, lookup: impl Fn(&str) -> Option<String>) -> bool {
        self.reqs.iter().all(|(k, op)| {
            let v = lookup(k);
            match op {
                Op::Eq(x) => v.as_deref() == Some(x.as_str()),
                Op::NotEq(x) => v.as_deref() != Some(x.as_str()),
                Op::In(xs) => v.is_some_and(|v| xs.contains(&v)),
                Op::NotIn(xs) => v.is_none_or(|v| !xs.contains(&v)),
                Op::Exists => v.is_some(),
                Op::NotExists => v.is_none(),
                Op::Gt(n) => v
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_some_and(|v| v > *n),
                Op::Lt(n) => v
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_some_and(|v| v < *n),
            }
        })
    }

    /// Matches against an object's `metadata.labels`.
    pub fn matches_labels(&self, obj: &Value) -> bool {
        if self.reqs.is_empty() {
            return true;
        }
        let labels = &obj["metadata"]["labels"];
        self.matches(|k| labels.get(k).and_then(|v| v.as_str()).map(str::to_string))
    }
}

/// The string form of a stored `metav1.LabelSelector` (`sluice_api::k8s::selector::to_string`),
/// as the `/scale` subresource reports it in `status.selector`; empty when it does not decode.
pub fn label_selector_string(sel: &Value) -> String {
    serde_json::from_value(sel.clone())
        .map(|s| sluice_api::k8s::selector::to_string(&s))
        .unwrap_or_default()
}

/// The value of a supported field-selector key on `obj`, or `Err` with the apiserver's message
/// when the resource does not support that field.
pub fn field_value(plural: &str, obj: &Value, key: &str) -> Result<Option<String>, String> {
    let supported = match key {
        "metadata.name" | "metadata.namespace" => true,
        "status.phase"
        | "spec.nodeName"
        | "spec.restartPolicy"
        | "spec.schedulerName"
        | "spec.serviceAccountName"
        | "status.podIP"
        | "status.nominatedNodeName" => plural == "pods",
        "type" => plural == "secrets" || plural == "events",
        "reason" | "source" | "reportingComponent" => plural == "events",
        k if k.starts_with("involvedObject.") || k.starts_with("regarding.") => plural == "events",
        "status.successful" => plural == "jobs",
        _ => false,
    };
    if !supported {
        return Err(format!("field label not supported: {key}"));
    }
    // events.k8s.io/v1 selects on `regarding.*`; Events are stored in the core/v1 shape.
    let key = match key.strip_prefix("regarding.") {
        Some(rest) if obj.get("regarding").is_none() => format!("involvedObject.{rest}"),
        _ => key.to_string(),
    };
    let mut cur = obj;
    for seg in key.split('.') {
        cur = match cur.get(seg) {
            Some(v) => v,
            None => return Ok(Some(String::new())),
        };
    }
    Ok(Some(match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"labels": labels}})
    }

    #[test]
    fn label_selector_golden_table() {
        let o = obj(json!({"app": "web", "tier": "front", "n": "5"}));
        let cases = [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app=api", false),
            ("app in (api,web)", true),
            ("app in (api, db)", false),
            ("app notin (api,db)", true),
            ("missing notin (x)", true),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("app=web,tier in (front),!missing", true),
            ("app=web,tier=back", false),
            ("n>3", true),
            ("n<3", false),
            ("", true),
        ];
        for (s, want) in cases {
            let sel = Selector::parse_labels(s).unwrap();
            assert_eq!(sel.matches_labels(&o), want, "{s}");
        }
    }

    #[test]
    fn malformed_label_selector_is_an_error() {
        assert!(Selector::parse_labels("app in web").is_err());
        assert!(Selector::parse_labels("a b").is_err());
    }

    #[test]
    fn field_selectors_only_support_known_fields() {
        let pod =
            json!({"metadata": {"name": "p", "namespace": "ns"}, "status": {"phase": "Running"}});
        assert_eq!(
            field_value("pods", &pod, "status.phase")
                .unwrap()
                .as_deref(),
            Some("Running")
        );
        assert_eq!(
            field_value("configmaps", &pod, "metadata.name")
                .unwrap()
                .as_deref(),
            Some("p")
        );
        assert_eq!(
            field_value("configmaps", &pod, "status.phase").unwrap_err(),
            "field label not supported: status.phase"
        );
        let sel = Selector::parse_fields("metadata.name=p,metadata.namespace!=x").unwrap();
        assert!(sel.matches(|k| field_value("pods", &pod, k).unwrap()));
    }

    #[test]
    fn label_selector_string_renders_expressions() {
        let s = json!({"matchLabels": {"app": "a"}, "matchExpressions": [{"key": "t", "operator": "In", "values": ["x", "y"]}, {"key": "z", "operator": "DoesNotExist"}]});
        assert_eq!(label_selector_string(&s), "app=a,t in (x,y),!z");
    }
}
