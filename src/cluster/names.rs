//! Object-name validation with the apiserver's exact messages, and `generateName` suffixes.

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

/// Five characters from the apiserver's generateName alphabet (no vowels, no look-alikes),
/// derived from `seed`.
pub fn random_suffix(mut seed: u64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut s = String::with_capacity(5);
    for _ in 0..5 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        s.push(ALPHABET[((seed >> 33) % ALPHABET.len() as u64) as usize] as char);
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
    fn suffix_is_five_chars_of_the_alphabet() {
        let s = random_suffix(42);
        assert_eq!(s.len(), 5);
        assert!(s.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
        assert_ne!(random_suffix(1), random_suffix(2));
    }
}
