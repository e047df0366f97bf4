//! Placeholders an Experiment fills into its analyses' argument values (upstream
//! `ResolveExperimentArgsValue`): `{{templates.<name>.podTemplateHash}}`,
//! `{{templates.<name>.replicaset.name}}`, `{{experiment.availableAt}}` and
//! `{{experiment.finishedAt}}` (availableAt + duration). Any other placeholder is an error,
//! so a typo never reaches a metric query.

use std::collections::BTreeMap;

use thiserror::Error;

/// A placeholder with no value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("failed to resolve {{{{{0}}}}}")]
pub struct UnresolvedPlaceholder(pub String);

/// Replaces every `{{ key }}` in `value` with `vars[key]` (whitespace inside the braces is
/// ignored). Text without placeholders is returned unchanged; an unterminated `{{` is kept
/// literally.
pub fn substitute(
    value: &str,
    vars: &BTreeMap<String, String>,
) -> Result<String, UnresolvedPlaceholder> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start + 2..].find("}}") else {
            break;
        };
        out.push_str(&rest[..start]);
        let tag = rest[start + 2..start + 2 + len].trim();
        match vars.get(tag) {
            Some(v) => out.push_str(v),
            None => return Err(UnresolvedPlaceholder(tag.to_string())),
        }
        rest = &rest[start + 2 + len + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The variable name of a template's pod-template hash.
pub fn pod_template_hash_var(template: &str) -> String {
    format!("templates.{template}.podTemplateHash")
}

/// The variable name of a template's ReplicaSet name.
pub fn replica_set_name_var(template: &str) -> String {
    format!("templates.{template}.replicaset.name")
}

/// Variable name of the instant every template became available.
pub const AVAILABLE_AT_VAR: &str = "experiment.availableAt";
/// Variable name of the instant the experiment's duration ends.
pub const FINISHED_AT_VAR: &str = "experiment.finishedAt";

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        BTreeMap::from([
            (pod_template_hash_var("baseline"), "abc123".to_string()),
            (replica_set_name_var("canary"), "exp-canary".to_string()),
        ])
    }

    #[test]
    fn template_placeholders_are_replaced_and_spaces_inside_braces_ignored() {
        assert_eq!(
            substitute(
                "hash={{templates.baseline.podTemplateHash}},rs={{ templates.canary.replicaset.name }}",
                &vars()
            ),
            Ok("hash=abc123,rs=exp-canary".to_string())
        );
        assert_eq!(substitute("plain", &vars()), Ok("plain".to_string()));
        assert_eq!(
            substitute("open {{ only", &vars()),
            Ok("open {{ only".to_string())
        );
    }

    #[test]
    fn an_unknown_placeholder_is_an_error_naming_it() {
        let err = substitute("{{templates.other.podTemplateHash}}", &vars()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to resolve {{templates.other.podTemplateHash}}"
        );
    }
}
