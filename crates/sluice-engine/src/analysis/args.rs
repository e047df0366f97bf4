//! AnalysisRun arguments: resolving their values and substituting `{{args.name}}` placeholders
//! into a metric (upstream `utils/template` + `utils/analysis/factory.go`).
//!
//! Two moments, as upstream:
//! - When a Rollout creates a run, [`resolve_rollout_args`] fills `valueFrom.fieldRef` and
//!   `valueFrom.podTemplateHashValue` from the Rollout, so the run's spec carries plain values.
//! - When the run is reconciled, [`resolve_run_args`] takes plain values and the secrets the caller
//!   read for `valueFrom.secretKeyRef` (from the run's namespace), and [`substitute`] replaces
//!   every `{{...}}` placeholder in the metric's JSON. An argument without a value, or a
//!   placeholder that names no argument, is an error naming it.
//!
//! Secret values travel as [`SecretString`], whose `Debug`/`Display` print `*****`; use
//! [`ResolvedArgs::redact`] on any text (measurement messages) that may echo them. The
//! substituted metric JSON itself contains secrets in clear and must not be logged or stored.

use std::collections::BTreeMap;
use std::fmt;

use thiserror::Error;

use sluice_api::common::{AnalysisRunArgument, Argument, PodTemplateHashValue};

/// The text that replaces secret values in messages (upstream's redaction string).
pub const REDACTED: &str = "*****";

/// A secret value (from `valueFrom.secretKeyRef`). Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        SecretString(value.into())
    }

    /// The clear value, for building the provider request only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretString({REDACTED})")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Why arguments could not be resolved or substituted. Messages follow upstream's wording.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ArgsError {
    #[error("argument \"{0}\" was not supplied")]
    NotSupplied(String),
    #[error("failed to resolve {{{{{0}}}}}")]
    Unresolved(String),
    #[error("unterminated placeholder starting at {0:?}")]
    Unterminated(String),
    #[error("argument \"{name}\": secret {secret:?}: {reason}")]
    Secret {
        name: String,
        secret: String,
        reason: String,
    },
    #[error("argument \"{name}\": fieldRef {path:?}: {reason}")]
    FieldRef {
        name: String,
        path: String,
        reason: String,
    },
    #[error("argument \"{name}\": podTemplateHashValue {value:?}: {reason}")]
    PodTemplateHash {
        name: String,
        value: String,
        reason: String,
    },
}

/// A resolved argument value; secrets stay wrapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgValue {
    Plain(String),
    Secret(SecretString),
}

impl ArgValue {
    fn text(&self) -> &str {
        match self {
            ArgValue::Plain(s) => s,
            ArgValue::Secret(s) => s.expose(),
        }
    }
}

/// The values of a run's arguments, ready for [`substitute`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedArgs {
    values: BTreeMap<String, ArgValue>,
}

impl ResolvedArgs {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert_plain(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.values
            .insert(name.into(), ArgValue::Plain(value.into()));
    }

    pub fn insert_secret(&mut self, name: impl Into<String>, value: SecretString) {
        self.values.insert(name.into(), ArgValue::Secret(value));
    }

    pub fn get(&self, name: &str) -> Option<&ArgValue> {
        self.values.get(name)
    }

    /// Replaces every secret value occurring in `text` with `*****` (for measurement messages,
    /// which may echo a URL or header).
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in self.values.values() {
            if let ArgValue::Secret(s) = v
                && !s.expose().is_empty()
            {
                out = out.replace(s.expose(), REDACTED);
            }
        }
        out
    }
}

/// Resolves a run's arguments (upstream `resolveArgs`): `value` as is; `valueFrom.secretKeyRef`
/// through `read_secret(secret name, key)`, which the caller implements against the run's
/// namespace and whose error text should say what is missing (upstream:
/// `key 'k' does not exist in secret 's'`). Any other argument without a value was not supplied.
pub fn resolve_run_args<F>(args: &[Argument], mut read_secret: F) -> Result<ResolvedArgs, ArgsError>
where
    F: FnMut(&str, &str) -> Result<SecretString, String>,
{
    let mut resolved = ResolvedArgs::new();
    for arg in args {
        let secret_ref = arg
            .value_from
            .as_ref()
            .and_then(|vf| vf.secret_key_ref.as_ref());
        if let Some(r) = secret_ref {
            let secret = read_secret(&r.name, &r.key).map_err(|reason| ArgsError::Secret {
                name: arg.name.clone(),
                secret: r.name.clone(),
                reason,
            })?;
            resolved.insert_secret(arg.name.clone(), secret);
        } else if let Some(v) = &arg.value {
            resolved.insert_plain(arg.name.clone(), v.clone());
        } else {
            return Err(ArgsError::NotSupplied(arg.name.clone()));
        }
    }
    Ok(resolved)
}

/// Replaces `{{ args.name }}` placeholders in every string of `template` (a metric or its
/// provider, as JSON). Whitespace inside the braces is ignored, as upstream. A placeholder that
/// does not name a resolved argument — including any non-`args.` placeholder — is an error.
pub fn substitute(
    template: &serde_json::Value,
    args: &ResolvedArgs,
) -> Result<serde_json::Value, ArgsError> {
    use serde_json::Value as J;
    Ok(match template {
        J::String(s) => J::String(substitute_str(s, args)?),
        J::Array(items) => J::Array(
            items
                .iter()
                .map(|i| substitute(i, args))
                .collect::<Result<_, _>>()?,
        ),
        J::Object(map) => {
            let mut out = serde_json::Map::with_capacity(map.len());
            for (k, v) in map {
                out.insert(k.clone(), substitute(v, args)?);
            }
            J::Object(out)
        }
        other => other.clone(),
    })
}

/// Substitutes placeholders in one string.
pub fn substitute_str(text: &str, args: &ResolvedArgs) -> Result<String, ArgsError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(ArgsError::Unterminated(rest[start..].to_string()));
        };
        let tag = &after[..end];
        let value = tag
            .trim()
            .strip_prefix("args.")
            .and_then(|name| args.get(name))
            .ok_or_else(|| ArgsError::Unresolved(tag.to_string()))?;
        out.push_str(value.text());
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Fills the arguments a Rollout passes to a run it creates (upstream
/// `BuildArgumentsForRolloutAnalysisRun`): `podTemplateHashValue: Latest|Stable` from the new and
/// stable ReplicaSets' pod-template hashes, `fieldRef.fieldPath` from the Rollout object
/// (`metadata.name`, `metadata.labels['x']`, or any path into the Rollout such as
/// `spec.template.spec.containers[0].image`). Arguments with a plain value pass through.
pub fn resolve_rollout_args(
    args: &[AnalysisRunArgument],
    rollout: &serde_json::Value,
    latest_hash: &str,
    stable_hash: Option<&str>,
) -> Result<Vec<Argument>, ArgsError> {
    let mut out = Vec::with_capacity(args.len());
    for arg in args {
        let mut value = arg.value.clone();
        if let Some(vf) = &arg.value_from {
            if let Some(which) = &vf.pod_template_hash_value {
                let err = |reason: &str| ArgsError::PodTemplateHash {
                    name: arg.name.clone(),
                    value: which.to_string(),
                    reason: reason.to_string(),
                };
                value = Some(match which {
                    PodTemplateHashValue::Latest => latest_hash.to_string(),
                    PodTemplateHashValue::Stable => stable_hash
                        .ok_or_else(|| err("the rollout has no stable ReplicaSet yet"))?
                        .to_string(),
                    PodTemplateHashValue::Other(_) => return Err(err("must be Latest or Stable")),
                });
            } else if let Some(field) = &vf.field_ref {
                value = Some(
                    field_path_value(rollout, &field.field_path).map_err(|reason| {
                        ArgsError::FieldRef {
                            name: arg.name.clone(),
                            path: field.field_path.clone(),
                            reason,
                        }
                    })?,
                );
            }
        }
        out.push(Argument {
            name: arg.name.clone(),
            value,
            value_from: None,
        });
    }
    Ok(out)
}

/// Reads `path` from an object as a string, following the two upstream forms: Kubernetes
/// downward-API metadata paths (`metadata.name`, `metadata.labels['k']`, whole `metadata.labels`
/// as `k="v"` lines) and a dotted/indexed walk of the object for anything else.
pub fn field_path_value(obj: &serde_json::Value, path: &str) -> Result<String, String> {
    if let Some(meta_field) = path.strip_prefix("metadata.") {
        let meta = &obj["metadata"];
        for map_name in ["labels", "annotations"] {
            if meta_field == map_name {
                let mut lines: Vec<String> = meta[map_name]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| {
                                format!(
                                    "{k}={}",
                                    serde_json::Value::String(
                                        v.as_str().unwrap_or_default().to_string()
                                    )
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                lines.sort();
                return Ok(lines.join("\n"));
            }
            if let Some(sub) = meta_field
                .strip_prefix(map_name)
                .and_then(|s| s.strip_prefix("['"))
                .and_then(|s| s.strip_suffix("']"))
            {
                return Ok(meta[map_name][sub].as_str().unwrap_or_default().to_string());
            }
        }
        return match meta_field {
            "name" | "namespace" | "uid" | "generateName" | "resourceVersion" => {
                Ok(meta[meta_field].as_str().unwrap_or_default().to_string())
            }
            _ => Err(format!("unsupported metadata fieldPath {path:?}")),
        };
    }
    let mut current = obj;
    for section in path.split(['.', '[', ']']).filter(|s| !s.is_empty()) {
        current = match current {
            serde_json::Value::Array(items) => {
                let i: usize = section
                    .parse()
                    .map_err(|_| format!("invalid index '{section}'"))?;
                items
                    .get(i)
                    .ok_or_else(|| format!("index {i} out of range"))?
            }
            serde_json::Value::Object(map) => map.get(section).unwrap_or(&serde_json::Value::Null),
            _ => return Err(format!("invalid path {path} in rollout")),
        };
    }
    match current {
        serde_json::Value::Null => Err(format!("invalid path {path} in rollout")),
        serde_json::Value::Array(_) | serde_json::Value::Object(_) => Err(format!(
            "path {path} in rollout must terminate in a primitive value"
        )),
        serde_json::Value::String(s) => Ok(s.clone()),
        other => Ok(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args() -> ResolvedArgs {
        let mut a = ResolvedArgs::new();
        a.insert_plain("service", "checkout");
        a.insert_plain("quote", "a\"b");
        a.insert_secret("token", SecretString::new("s3cr3t"));
        a
    }

    #[test]
    fn placeholders_are_replaced_in_every_string_of_the_provider() {
        let provider = json!({
            "web": {
                "url": "http://{{args.service}}.svc/{{ args.service }}",
                "headers": [{"key": "Authorization", "value": "Bearer {{args.token}}"}],
                "timeoutSeconds": 5,
                "jsonBody": {"q": "{{args.quote}}"}
            }
        });
        let got = substitute(&provider, &args()).unwrap();
        assert_eq!(
            got,
            json!({
                "web": {
                    "url": "http://checkout.svc/checkout",
                    "headers": [{"key": "Authorization", "value": "Bearer s3cr3t"}],
                    "timeoutSeconds": 5,
                    "jsonBody": {"q": "a\"b"}
                }
            })
        );
    }

    #[test]
    fn unresolved_placeholder_is_an_error_naming_it() {
        let err = substitute(&json!({"q": "rate({{args.missing}}[5m])"}), &args()).unwrap_err();
        assert_eq!(err.to_string(), "failed to resolve {{args.missing}}");
        let err = substitute_str("{{ nope }}", &args()).unwrap_err();
        assert_eq!(err.to_string(), "failed to resolve {{ nope }}");
        let err = substitute_str("x {{args.service", &args()).unwrap_err();
        assert!(matches!(err, ArgsError::Unterminated(_)));
        assert_eq!(
            substitute_str("no placeholders", &args()).unwrap(),
            "no placeholders"
        );
    }

    #[test]
    fn run_args_need_a_value_or_a_secret() {
        let specs: Vec<Argument> = serde_json::from_value(json!([
            {"name": "a", "value": "1"},
            {"name": "b", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}
        ]))
        .unwrap();
        let mut asked = Vec::new();
        let got = resolve_run_args(&specs, |name, key| {
            asked.push((name.to_string(), key.to_string()));
            Ok(SecretString::new("xyz"))
        })
        .unwrap();
        assert_eq!(asked, vec![("creds".to_string(), "token".to_string())]);
        assert_eq!(got.get("a"), Some(&ArgValue::Plain("1".into())));
        assert_eq!(
            got.get("b"),
            Some(&ArgValue::Secret(SecretString::new("xyz")))
        );

        let missing = vec![Argument {
            name: "c".into(),
            ..Argument::default()
        }];
        assert_eq!(
            resolve_run_args(&missing, |_, _| unreachable!())
                .unwrap_err()
                .to_string(),
            "argument \"c\" was not supplied"
        );
        let err = resolve_run_args(&specs, |n, k| {
            Err(format!("key '{k}' does not exist in secret '{n}'"))
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "argument \"b\": secret \"creds\": key 'token' does not exist in secret 'creds'"
        );
    }

    #[test]
    fn secrets_never_print_and_are_redacted_from_messages() {
        let a = args();
        let debug = format!("{a:?}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
        assert_eq!(SecretString::new("x").to_string(), "*****");
        assert_eq!(
            a.redact("GET http://h/?t=s3cr3t failed"),
            "GET http://h/?t=***** failed"
        );
    }

    #[test]
    fn rollout_args_take_pod_hashes_and_field_refs() {
        let rollout = json!({
            "metadata": {"name": "web", "namespace": "prod", "labels": {"app": "web", "tier": "fe"}},
            "spec": {"template": {"spec": {"containers": [{"image": "nginx:1.25"}]}}, "replicas": 3}
        });
        let specs: Vec<AnalysisRunArgument> = serde_json::from_value(json!([
            {"name": "plain", "value": "v"},
            {"name": "latest", "valueFrom": {"podTemplateHashValue": "Latest"}},
            {"name": "stable", "valueFrom": {"podTemplateHashValue": "Stable"}},
            {"name": "name", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "app", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "labels", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels"}}},
            {"name": "image", "valueFrom": {"fieldRef": {"fieldPath": "spec.template.spec.containers[0].image"}}},
            {"name": "replicas", "valueFrom": {"fieldRef": {"fieldPath": "spec.replicas"}}}
        ]))
        .unwrap();
        let got = resolve_rollout_args(&specs, &rollout, "abc123", Some("def456")).unwrap();
        let values: Vec<(&str, &str)> = got
            .iter()
            .map(|a| (a.name.as_str(), a.value.as_deref().unwrap()))
            .collect();
        assert_eq!(
            values,
            vec![
                ("plain", "v"),
                ("latest", "abc123"),
                ("stable", "def456"),
                ("name", "web"),
                ("app", "web"),
                ("labels", "app=\"web\"\ntier=\"fe\""),
                ("image", "nginx:1.25"),
                ("replicas", "3"),
            ]
        );
        assert!(got.iter().all(|a| a.value_from.is_none()));

        let bad: Vec<AnalysisRunArgument> = serde_json::from_value(json!([
            {"name": "x", "valueFrom": {"fieldRef": {"fieldPath": "spec.nope"}}}
        ]))
        .unwrap();
        assert_eq!(
            resolve_rollout_args(&bad, &rollout, "a", None)
                .unwrap_err()
                .to_string(),
            "argument \"x\": fieldRef \"spec.nope\": invalid path spec.nope in rollout"
        );
        let no_stable: Vec<AnalysisRunArgument> = serde_json::from_value(json!([
            {"name": "s", "valueFrom": {"podTemplateHashValue": "Stable"}}
        ]))
        .unwrap();
        assert!(resolve_rollout_args(&no_stable, &rollout, "a", None).is_err());
    }
}
