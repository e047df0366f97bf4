//! `maxSurge` / `maxUnavailable` resolution (int or percent string).

use thiserror::Error;

/// Error raised for an `IntOrString` value that is neither an integer nor a percentage.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{field}: invalid value {value:?}: must be an integer or a percentage such as \"25%\"")]
pub struct IntOrPercentError {
    pub field: String,
    pub value: String,
}

/// Resolve an int-or-percent against `total`. A string without `%` is still read
/// as a percent (upstream behaviour). `round_up` selects ceiling (surge) or floor
/// (unavailable).
pub fn resolve(
    field: &str,
    value: &serde_json::Value,
    total: i32,
    round_up: bool,
) -> Result<i32, IntOrPercentError> {
    let err = || IntOrPercentError {
        field: field.to_string(),
        value: value.to_string(),
    };
    match value {
        serde_json::Value::Number(n) => {
            let v = n.as_i64().ok_or_else(err)?;
            if v < 0 {
                return Err(err());
            }
            i32::try_from(v).map_err(|_| err())
        }
        serde_json::Value::String(s) => {
            let digits = s.strip_suffix('%').unwrap_or(s);
            let pct: i64 = digits.parse().map_err(|_| err())?;
            if pct < 0 {
                return Err(err());
            }
            let scaled = pct * i64::from(total);
            let v = if round_up {
                (scaled + 99) / 100
            } else {
                scaled / 100
            };
            i32::try_from(v).map_err(|_| err())
        }
        _ => Err(err()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn percent_rounds_up_for_surge_and_down_for_unavailable() {
        assert_eq!(resolve("maxSurge", &json!("25%"), 10, true), Ok(3));
        assert_eq!(resolve("maxUnavailable", &json!("25%"), 10, false), Ok(2));
    }

    #[test]
    fn string_without_percent_sign_is_a_percent() {
        assert_eq!(resolve("maxSurge", &json!("25"), 10, true), Ok(3));
    }

    #[test]
    fn integers_are_taken_as_is_and_garbage_is_rejected() {
        assert_eq!(resolve("maxSurge", &json!(4), 10, true), Ok(4));
        assert!(resolve("maxSurge", &json!("abc"), 10, true).is_err());
        assert!(resolve("maxSurge", &json!(-1), 10, true).is_err());
    }
}
