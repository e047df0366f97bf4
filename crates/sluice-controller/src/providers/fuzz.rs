//! Fuzzing the metric providers' response parsers: whatever bytes a Prometheus server or a web
//! endpoint answers, and whatever `jsonPath` a template names, the parser returns a value or
//! an error value; it never panics (a panic would end the AnalysisRun controller's task).
//! `SLUICE_FUZZ_CASES` sets the number of cases; `make fuzz` runs millions.

use proptest::prelude::*;
use serde_json::json;
use sluice_api::analysis::WebMetric;

use super::prometheus::parse_response;
use super::web::parse_body;

fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("SLUICE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(json!(null)),
        any::<bool>().prop_map(|b| json!(b)),
        any::<i64>().prop_map(|i| json!(i)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "\\PC{0,6}".prop_map(|s| json!(s)),
        prop::sample::select(vec![
            "success", "error", "vector", "matrix", "scalar", "string", "NaN", "+Inf", "-Inf",
            "1e999", "0.5", "", "bad_data",
        ])
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(5, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "status",
                    "data",
                    "resultType",
                    "result",
                    "value",
                    "values",
                    "metric",
                    "errorType",
                    "error",
                    "warnings",
                    "a",
                    "b",
                ]),
                inner,
                0..5
            )
            .prop_map(|m| serde_json::Value::Object(
                m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}

/// A Prometheus-shaped document with random holes and wrong types in it.
fn prometheus_like() -> impl Strategy<Value = serde_json::Value> {
    (
        prop::sample::select(vec!["success", "error", "weird"]),
        prop::sample::select(vec!["vector", "matrix", "scalar", "string", "other"]),
        json_value(),
        prop::collection::vec(json_value(), 0..3),
    )
        .prop_map(|(status, kind, value, extra)| {
            json!({
                "status": status,
                "data": {"resultType": kind, "result": [
                    {"metric": {}, "value": [1.5, value.clone()], "values": [[1, value.clone()]]},
                    extra,
                ]},
                "errorType": value,
            })
        })
}

const JSON_PATHS: &[&str] = &[
    "{$}",
    "{$.a}",
    "{$.data.result[0].value[1]}",
    "$.a[*]",
    "{$.a[?(@.b > 1)]}",
    "{$..a}",
    "{$[-1]}",
    "{$.a[0:2]}",
    "{$['a','b']}",
    "{.a}",
    "{",
    "}",
    "$[",
    "$.",
    "{$.a[}",
    "[*]",
    "{$.a[?(@ == 'x')]}",
    "{$.a.length()}",
    "",
    " ",
    "$$",
    "{$.a[99999999999999999999]}",
];

proptest! {
    #![proptest_config(config(20_000))]

    /// Arbitrary bytes with any HTTP status: a value or an error, never a panic.
    #[test]
    fn fuzz_prometheus_parses_any_bytes(
        status in prop::sample::select(vec![200u16, 204, 400, 422, 500, 503]),
        body in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let _ = parse_response(status, &body);
    }
}

proptest! {
    #![proptest_config(config(15_000))]

    /// Any JSON, and Prometheus-shaped JSON with wrong types in every place.
    #[test]
    fn fuzz_prometheus_parses_any_json(
        status in prop::sample::select(vec![200u16, 400, 500]),
        doc in prop_oneof![json_value(), prometheus_like()],
    ) {
        let body = serde_json::to_vec(&doc).unwrap();
        let _ = parse_response(status, &body);
    }

    /// Arbitrary bytes under any jsonPath (those a template could name, and random text).
    #[test]
    fn fuzz_web_parses_any_body_and_path(
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..200),
            json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        ],
        path in prop_oneof![
            prop::sample::select(JSON_PATHS).prop_map(|p| Some(p.to_string())),
            "\\PC{0,20}".prop_map(Some),
            Just(None),
        ],
    ) {
        let web = WebMetric {
            url: "http://127.0.0.1/metric".to_string(),
            json_path: path,
            ..Default::default()
        };
        let _ = parse_body(&web, "m", &body);
    }
}

/// A body nested deeper than serde_json's recursion limit is an error value.
#[test]
fn deeply_nested_bodies_are_an_error_not_a_crash() {
    let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(parse_response(200, deep.as_bytes()).is_err());
    let web = WebMetric {
        url: "http://127.0.0.1/metric".to_string(),
        json_path: Some("{$..a}".to_string()),
        ..Default::default()
    };
    assert!(parse_body(&web, "m", deep.as_bytes()).is_err());
}
