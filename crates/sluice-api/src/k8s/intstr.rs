//! `maxSurge` / `maxUnavailable` resolution (int or percent string).

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use thiserror::Error;

/// Error raised for an `IntOrString` value that is neither a non-negative integer nor a
/// percentage. It names the field so the InvalidSpec message tells the user what to fix.
#[derive(Debug, Error, PartialEq, Eq, Clone)]
#[error(
    "{field}: invalid value {value}: must be a non-negative integer or a percentage such as \"25%\""
)]
pub struct IntOrPercentError {
    pub field: String,
    pub value: String,
}

/// Resolve an int-or-percent against `total`. A string without `%` is still read
/// as a percent (upstream's default `"25"` relies on it). `round_up` selects ceiling
/// (surge) or floor (unavailable).
pub fn resolve(
    field: &str,
    value: &IntOrString,
    total: i32,
    round_up: bool,
) -> Result<i32, IntOrPercentError> {
    let err = || IntOrPercentError {
        field: field.to_string(),
        value: match value {
            IntOrString::Int(i) => i.to_string(),
            IntOrString::String(s) => format!("{s:?}"),
        },
    };
    match value {
        IntOrString::Int(v) if *v >= 0 => Ok(*v),
        IntOrString::Int(_) => Err(err()),
        IntOrString::String(s) => {
            let digits = s.strip_suffix('%').unwrap_or(s);
            let pct: i64 = digits.trim().parse().map_err(|_| err())?;
            if pct < 0 {
                return Err(err());
            }
            let scaled = pct * i64::from(total.max(0));
            let v = if round_up {
                (scaled + 99) / 100
            } else {
                scaled / 100
            };
            i32::try_from(v).map_err(|_| err())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> IntOrString {
        IntOrString::String(v.to_string())
    }

    #[test]
    fn percent_rounds_up_for_surge_and_down_for_unavailable() {
        assert_eq!(resolve("maxSurge", &s("25%"), 10, true), Ok(3));
        assert_eq!(resolve("maxUnavailable", &s("25%"), 10, false), Ok(2));
    }

    #[test]
    fn string_without_percent_sign_is_a_percent() {
        assert_eq!(resolve("maxSurge", &s("25"), 10, true), Ok(3));
        assert_eq!(resolve("maxUnavailable", &s("25"), 10, false), Ok(2));
    }

    #[test]
    fn integers_are_taken_as_is_and_garbage_is_rejected() {
        assert_eq!(resolve("maxSurge", &IntOrString::Int(4), 10, true), Ok(4));
        assert!(resolve("maxSurge", &s("abc"), 10, true).is_err());
        assert!(resolve("maxSurge", &s("-5%"), 10, true).is_err());
        assert!(resolve("maxSurge", &IntOrString::Int(-1), 10, true).is_err());
    }

    #[test]
    fn error_message_names_the_field() {
        let e = resolve("spec.strategy.canary.maxSurge", &s("x%"), 10, true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "spec.strategy.canary.maxSurge: invalid value \"x%\": must be a non-negative integer or a percentage such as \"25%\""
        );
    }
}
