//! Converting between the planners' clock (`chrono`) and the API's `metav1.Time`.
//!
//! Kubernetes serializes `metav1.Time` as RFC 3339 with whole seconds (Go's `time.RFC3339`
//! layout), so a fraction never survives a round trip through the API server. Converting
//! drops it here, the way Go's `Format` does (truncation, never rounding up): a status
//! computed with a fraction would differ from the one read back and be rewritten forever.

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// `t` as an API timestamp, truncated to whole seconds.
pub fn to_time(t: DateTime<Utc>) -> Time {
    Time(Timestamp::from_second(t.timestamp()).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// An API timestamp on the planners' clock (exact: a fraction, if one was parsed, is kept).
pub fn from_time(t: &Time) -> DateTime<Utc> {
    DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339).unwrap().to_utc()
    }

    #[test]
    fn api_timestamps_serialize_as_rfc3339_whole_seconds_truncated_like_go() {
        let cases = [
            ("2026-12-06T12:00:00Z", "2026-12-06T12:00:00Z"),
            ("2026-12-06T12:00:00.999999999Z", "2026-12-06T12:00:00Z"),
            ("2026-12-06T13:30:05.5+01:30", "2026-12-06T12:00:05Z"),
            ("1969-12-31T23:59:59Z", "1969-12-31T23:59:59Z"),
        ];
        for (input, wire) in cases {
            let json = serde_json::to_value(to_time(at(input))).unwrap();
            assert_eq!(json, serde_json::json!(wire), "{input}");
        }
    }

    #[test]
    fn a_whole_second_round_trips_and_a_fraction_read_from_the_api_is_kept() {
        let t = at("2026-12-06T12:00:07Z");
        assert_eq!(from_time(&to_time(t)), t);
        let parsed: Time =
            serde_json::from_value(serde_json::json!("2026-12-06T12:00:07.25Z")).unwrap();
        assert_eq!(from_time(&parsed), at("2026-12-06T12:00:07.25Z"));
    }
}
