//! Go's `time.ParseDuration`, the syntax of every Argo `DurationString` (`interval`,
//! `initialDelay`, `rangeQuery.step`, an Experiment's `duration`): a sign, then one or more
//! decimal numbers each with a unit (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`), as in `"30s"`,
//! `"1m30s"`, `"1.5h"`, `"-500ms"`. A bare number other than `0` is rejected, as Go rejects it.
//!
//! Argo's `pause.duration` is different: an int-or-string where a string of digits means
//! seconds. [`parse_seconds_or_duration`] is that rule (also used for Sluice's own flags),
//! built on the same parser.

use chrono::TimeDelta;
use thiserror::Error;

/// A duration string that the rule rejects, with Go's reason.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid duration {value:?}: {reason}")]
pub struct DurationError {
    /// The rejected input, verbatim.
    pub value: String,
    pub reason: &'static str,
}

const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// Parses a Go duration string such as `"1m30s"` (exact to the nanosecond).
pub fn parse_duration(value: &str) -> Result<TimeDelta, DurationError> {
    let err = |reason| DurationError {
        value: value.to_string(),
        reason,
    };
    let (negative, rest) = match value.as_bytes().first() {
        Some(b'-') => (true, &value[1..]),
        Some(b'+') => (false, &value[1..]),
        _ => (false, value),
    };
    if rest == "0" {
        return Ok(TimeDelta::zero());
    }
    if rest.is_empty() {
        return Err(err("empty duration"));
    }
    let nanos = sum_components(rest).map_err(err)?;
    // Go's limit is the range of an int64 of nanoseconds, one more on the negative side.
    let limit = i64::MAX as u128 + u128::from(negative);
    if nanos > limit {
        return Err(err("duration out of range"));
    }
    let nanos = nanos as i128;
    let signed = if negative { -nanos } else { nanos };
    Ok(TimeDelta::nanoseconds(signed as i64))
}

/// Argo's rule for `pause.duration` and the rule of Sluice's duration flags: a string of
/// digits is a number of seconds (`"30"`), anything else is Go syntax; negative durations are
/// rejected.
pub fn parse_seconds_or_duration(value: &str) -> Result<std::time::Duration, DurationError> {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value
            .parse::<u64>()
            .map(std::time::Duration::from_secs)
            .map_err(|_| DurationError {
                value: value.to_string(),
                reason: "duration out of range",
            });
    }
    parse_duration(value)?.to_std().map_err(|_| DurationError {
        value: value.to_string(),
        reason: "a duration cannot be negative",
    })
}

/// The total of `number unit` components, in nanoseconds (unsigned; the caller applies the
/// sign and the range check).
fn sum_components(mut rest: &str) -> Result<u128, &'static str> {
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(num_len);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => NANOS_PER_SECOND,
            "m" => 60 * NANOS_PER_SECOND,
            "h" => 3_600 * NANOS_PER_SECOND,
            "" => return Err("missing unit in duration"),
            _ => return Err("unknown unit in duration"),
        };
        let nanos = scaled(number, unit_nanos).ok_or("expected a number")?;
        total = total.checked_add(nanos).ok_or("duration out of range")?;
        rest = tail;
    }
    Ok(total)
}

/// `number` (digits, an optional fraction) times `unit_nanos`, the fraction truncated to
/// whole nanoseconds. At least one digit is needed on one side of the point.
fn scaled(number: &str, unit_nanos: u128) -> Option<u128> {
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if (int_part.is_empty() && frac_part.is_empty()) || frac_part.contains('.') {
        return None;
    }
    let whole: u128 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().ok()?
    };
    let mut nanos = whole.checked_mul(unit_nanos)?;
    // Beyond 18 digits a fraction cannot change a nanosecond count of an hour.
    let digits = &frac_part[..frac_part.len().min(18)];
    if !digits.is_empty() {
        let frac: u128 = digits.parse().ok()?;
        nanos = nanos.checked_add(frac * unit_nanos / 10u128.pow(digits.len() as u32))?;
    }
    Some(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

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
            ("+10s", 10_000),
            (".5m", 30_000),
            ("1h30m15s", 5_415_000),
        ];
        for (text, millis) in cases {
            assert_eq!(
                parse_duration(text).map(|d| d.num_milliseconds()),
                Ok(*millis),
                "{text}"
            );
        }
        assert_eq!(parse_duration("7ns"), Ok(TimeDelta::nanoseconds(7)));
        assert_eq!(parse_duration("2us"), Ok(TimeDelta::microseconds(2)));
        assert_eq!(parse_duration("2µs"), Ok(TimeDelta::microseconds(2)));
    }

    #[test]
    fn bare_numbers_and_unknown_units_are_rejected_like_go() {
        for text in ["30", "", "5d", "s", "1.2.3s", ".s", "-", "5 m", " 5s"] {
            assert!(parse_duration(text).is_err(), "{text}");
        }
        assert_eq!(
            parse_duration("30").unwrap_err().to_string(),
            "invalid duration \"30\": missing unit in duration"
        );
        assert_eq!(
            parse_duration("5d").unwrap_err().reason,
            "unknown unit in duration"
        );
    }

    #[test]
    fn the_range_is_an_int64_of_nanoseconds_like_go() {
        assert_eq!(
            parse_duration("9223372036854775807ns"),
            Ok(TimeDelta::nanoseconds(i64::MAX))
        );
        assert_eq!(
            parse_duration("-9223372036854775808ns"),
            Ok(TimeDelta::nanoseconds(i64::MIN))
        );
        assert!(parse_duration("9223372036854775808ns").is_err());
        assert!(parse_duration("2562048h").is_err());
    }

    #[test]
    fn duration_strings_parse_like_go_durations_plus_bare_seconds() {
        let cases: &[(&str, Duration)] = &[
            ("30s", secs(30)),
            ("5m", secs(300)),
            ("1h", secs(3600)),
            ("1h30m", secs(5400)),
            ("1h30m15s", secs(5415)),
            ("500ms", Duration::from_millis(500)),
            ("1.5s", Duration::from_millis(1500)),
            ("2us", Duration::from_micros(2)),
            ("7ns", Duration::from_nanos(7)),
            ("30", secs(30)),
            ("0", secs(0)),
            ("+10s", secs(10)),
            (".5m", secs(30)),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse_seconds_or_duration(input),
                Ok(*want),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn bad_duration_strings_are_rejected_naming_the_value() {
        for input in ["", "s", "10x", "1h-5m", "-5s", "1..5s", "abc", "5 m"] {
            let err = parse_seconds_or_duration(input).expect_err(input);
            assert_eq!(err.value, input);
            assert!(err.to_string().contains(&format!("{input:?}")));
        }
    }

    proptest::proptest! {
        #[test]
        fn any_combination_of_units_parses_to_its_sum(
            h in 0u64..100, m in 0u64..600, s in 0u64..600, ms in 0u64..5000,
            use_h: bool, use_m: bool, use_s: bool, use_ms: bool,
        ) {
            let mut text = String::new();
            let mut want = Duration::ZERO;
            if use_h { text += &format!("{h}h"); want += secs(h * 3600); }
            if use_m { text += &format!("{m}m"); want += secs(m * 60); }
            if use_s { text += &format!("{s}s"); want += secs(s); }
            if use_ms { text += &format!("{ms}ms"); want += Duration::from_millis(ms); }
            proptest::prop_assume!(!text.is_empty());
            proptest::prop_assert_eq!(parse_seconds_or_duration(&text), Ok(want));
            proptest::prop_assert_eq!(parse_duration(&text).unwrap().to_std(), Ok(want));
        }

        #[test]
        fn bare_integers_are_seconds(n in 0u64..10_000_000) {
            proptest::prop_assert_eq!(parse_seconds_or_duration(&n.to_string()), Ok(secs(n)));
        }
    }
}
