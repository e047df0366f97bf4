//! Argo's `DurationString` (`interval`, `initialDelay`, `rangeQuery.step`): Go's
//! `time.ParseDuration` syntax, so `"30s"`, `"1m30s"`, `"1.5h"`, `"500ms"` — a bare number other
//! than `0` is rejected, exactly as upstream rejects it.

use chrono::Duration;
use thiserror::Error;

/// A duration string that Go's `time.ParseDuration` would reject.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid duration {value:?}: {reason}")]
pub struct DurationError {
    pub value: String,
    pub reason: &'static str,
}

/// Parses a Go duration string such as `"1m30s"`.
pub fn parse_duration(value: &str) -> Result<Duration, DurationError> {
    let err = |reason| DurationError {
        value: value.to_string(),
        reason,
    };
    let (negative, mut rest) = match value.as_bytes().first() {
        Some(b'-') => (true, &value[1..]),
        Some(b'+') => (false, &value[1..]),
        _ => (false, value),
    };
    if rest == "0" {
        return Ok(Duration::zero());
    }
    if rest.is_empty() {
        return Err(err("empty duration"));
    }
    let mut total_nanos: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..num_end];
        if number.is_empty() || number == "." {
            return Err(err("expected a number"));
        }
        let amount: f64 = number.parse().map_err(|_| err("expected a number"))?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        let nanos_per_unit = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(err("missing unit in duration")),
            _ => return Err(err("unknown unit in duration")),
        };
        rest = &rest[unit_end..];
        total_nanos += amount * nanos_per_unit;
    }
    if total_nanos > i64::MAX as f64 {
        return Err(err("duration out of range"));
    }
    let d = Duration::nanoseconds(total_nanos.round() as i64);
    Ok(if negative { -d } else { d })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_duration_strings_parse() {
        let cases: &[(&str, i64)] = &[
            ("30s", 30_000),
            ("1m30s", 90_000),
            ("1.5h", 5_400_000),
            ("500ms", 500),
            ("0", 0),
            ("2m", 120_000),
            ("-1s", -1_000),
        ];
        for (text, millis) in cases {
            assert_eq!(
                parse_duration(text).map(|d| d.num_milliseconds()),
                Ok(*millis),
                "{text}"
            );
        }
    }

    #[test]
    fn bare_numbers_and_unknown_units_are_rejected_like_go() {
        for text in ["30", "", "5d", "s", "1.2.3s"] {
            assert!(parse_duration(text).is_err(), "{text}");
        }
        assert_eq!(
            parse_duration("30").unwrap_err().to_string(),
            "invalid duration \"30\": missing unit in duration"
        );
    }
}
