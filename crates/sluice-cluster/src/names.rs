//! Object-name validation with the apiserver's exact messages, and `generateName` suffixes.

use sluice_api::k8s::hash::SAFE_ALPHABET;

/// Which name rule a resource's names follow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NameRule {
    /// DNS-1123 subdomain (most kinds).
    Subdomain,
    /// DNS-1123 label (namespaces).
    Label,
    /// DNS-1035 label (services).
    Dns1035,
}

impl NameRule {
    pub fn for_resource(group: &str, plural: &str) -> NameRule {
        match (group, plural) {
            ("", "namespaces") => NameRule::Label,
            ("", "services") => NameRule::Dns1035,
            _ => NameRule::Subdomain,
        }
    }
}

fn alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && alnum(b[0])
        && alnum(b[b.len() - 1])
        && b.iter().all(|&c| alnum(c) || c == b'-')
}

/// The messages (without the field prefix) a name fails with; empty when valid.
pub fn validate(name: &str, rule: NameRule) -> Vec<String> {
    let mut errs = Vec::new();
    let q = format!("{name:?}");
    match rule {
        NameRule::Subdomain => {
            if name.len() > 253 {
                errs.push(format!(
                    "Invalid value: {q}: must be no more than 253 characters"
                ));
            }
            if !name.split('.').all(is_label) {
                errs.push(format!("Invalid value: {q}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"));
            }
        }
        NameRule::Label => {
            if name.len() > 63 {
                errs.push(format!(
                    "Invalid value: {q}: must be no more than 63 characters"
                ));
            }
            if !is_label(name) {
                errs.push(format!("Invalid value: {q}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"));
            }
        }
        NameRule::Dns1035 => {
            if name.len() > 63 {
                errs.push(format!(
                    "Invalid value: {q}: must be no more than 63 characters"
                ));
            }
            if !is_label(name) || !name.as_bytes()[0].is_ascii_lowercase() {
                errs.push(format!("Invalid value: {q}: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"));
            }
        }
    }
    errs
}

fn label_chars(s: &str) -> bool {
    let b = s.as_bytes();
    b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Problems with `metadata.labels` and the size of `metadata.annotations`, as
/// `(field, message)` pairs with the apiserver's wording.
pub fn validate_metadata(meta: &serde_json::Value) -> Vec<(String, String)> {
    let mut errs = Vec::new();
    for (k, v) in meta["labels"].as_object().into_iter().flatten() {
        let (prefix, name) = match k.rsplit_once('/') {
            Some((p, n)) => (Some(p), n),
            None => (None, k.as_str()),
        };
        if let Some(p) = prefix
            && !validate(p, NameRule::Subdomain).is_empty()
        {
            errs.push(("metadata.labels".into(), format!("Invalid value: {k:?}: prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")));
        }
        if name.len() > 63 {
            errs.push((
                "metadata.labels".into(),
                format!("Invalid value: {k:?}: name part must be no more than 63 characters"),
            ));
        } else if !label_chars(name) {
            errs.push(("metadata.labels".into(), format!("Invalid value: {k:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")));
        }
        let val = v.as_str().unwrap_or_default();
        if val.len() > 63 {
            errs.push((
                "metadata.labels".into(),
                format!("Invalid value: {val:?}: must be no more than 63 characters"),
            ));
        } else if !val.is_empty() && !label_chars(val) {
            errs.push(("metadata.labels".into(), format!("Invalid value: {val:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")));
        }
    }
    let refs = meta["ownerReferences"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for r in &refs {
        for (field, what) in [
            ("apiVersion", "version"),
            ("kind", "kind"),
            ("name", "name"),
            ("uid", "uid"),
        ] {
            if r[field].as_str().is_none_or(str::is_empty) {
                errs.push((
                    format!("metadata.ownerReferences.{field}"),
                    format!("Invalid value: \"\": {what} must not be empty"),
                ));
            }
        }
    }
    let controllers: Vec<String> = refs
        .iter()
        .filter(|r| r["controller"] == true)
        .map(|r| {
            format!(
                "{}/{}",
                r["kind"].as_str().unwrap_or_default(),
                r["name"].as_str().unwrap_or_default()
            )
        })
        .collect();
    if controllers.len() > 1 {
        errs.push((
            "metadata.ownerReferences".into(),
            format!("Only one reference can have Controller set to true. Found \"true\" in references for {}", controllers.join(" and ")),
        ));
    }
    let size: usize = meta["annotations"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
        .sum();
    if size > 262_144 {
        errs.push((
            "metadata.annotations".into(),
            "Too long: must have at most 262144 bytes".into(),
        ));
    }
    errs
}

/// Five characters from the apiserver's generateName alphabet (no vowels, no look-alikes),
/// derived from `seed`.
pub fn random_suffix(mut seed: u64) -> String {
    let mut s = String::with_capacity(5);
    for _ in 0..5 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        s.push(SAFE_ALPHABET[((seed >> 33) % SAFE_ALPHABET.len() as u64) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_rules_golden_table() {
        let cases = [
            ("web", NameRule::Subdomain, true),
            ("web.example.com", NameRule::Subdomain, true),
            ("Web", NameRule::Subdomain, false),
            ("web_1", NameRule::Subdomain, false),
            ("-web", NameRule::Subdomain, false),
            ("a.b", NameRule::Label, false),
            ("team-a", NameRule::Label, true),
            ("1svc", NameRule::Dns1035, false),
            ("svc-1", NameRule::Dns1035, true),
            ("", NameRule::Subdomain, false),
        ];
        for (n, r, ok) in cases {
            assert_eq!(validate(n, r).is_empty(), ok, "{n} {r:?}");
        }
    }

    #[test]
    fn subdomain_message_is_the_apiservers() {
        let e = validate("Foo_", NameRule::Subdomain);
        assert!(e[0].starts_with(
            "Invalid value: \"Foo_\": a lowercase RFC 1123 subdomain must consist of"
        ));
    }

    #[test]
    fn labels_and_annotation_size_are_checked() {
        use serde_json::json;
        assert!(validate_metadata(&json!({"labels": {"app": "web", "example.com/tier": "", "rollouts-pod-template-hash": "6d4f8b9c7"}})).is_empty());
        let bad = validate_metadata(&json!({"labels": {"app": "no spaces", "-x": "ok"}}));
        assert_eq!(bad.len(), 2);
        assert!(bad.iter().all(|(f, _)| f == "metadata.labels"));
        let long = "x".repeat(64);
        assert_eq!(
            validate_metadata(&json!({"labels": {"a": long}}))[0].1,
            format!("Invalid value: {long:?}: must be no more than 63 characters")
        );
        let huge = "y".repeat(262_145);
        assert_eq!(
            validate_metadata(&json!({"annotations": {"a": huge}}))[0].1,
            "Too long: must have at most 262144 bytes"
        );
    }

    #[test]
    fn owner_references_need_identity_and_one_controller() {
        use serde_json::json;
        let ok = json!({"ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "web", "uid": "u1", "controller": true}]});
        assert!(validate_metadata(&ok).is_empty());
        let missing = validate_metadata(
            &json!({"ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "n"}]}),
        );
        assert_eq!(
            missing,
            vec![(
                "metadata.ownerReferences.uid".to_string(),
                "Invalid value: \"\": uid must not be empty".to_string()
            )]
        );
        let two = json!({"ownerReferences": [
            {"apiVersion": "v1", "kind": "A", "name": "a", "uid": "1", "controller": true},
            {"apiVersion": "v1", "kind": "B", "name": "b", "uid": "2", "controller": true}]});
        assert_eq!(validate_metadata(&two).len(), 1);
    }

    #[test]
    fn suffix_is_five_chars_of_the_alphabet() {
        let s = random_suffix(42);
        assert_eq!(s.len(), 5);
        assert!(s.bytes().all(|c| SAFE_ALPHABET.contains(&c)));
        assert_ne!(random_suffix(1), random_suffix(2));
    }
}
