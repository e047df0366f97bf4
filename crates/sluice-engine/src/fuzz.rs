//! The fuzz targets' shared configuration, and the analysis condition evaluator's targets (the
//! planner's are in `rollout/fuzz.rs`). Every target is a proptest property whose name starts
//! with `fuzz_`; `SLUICE_FUZZ_CASES` sets the number of cases, and `make fuzz` runs millions
//! of them in release mode (docs/reliability.md).

use proptest::prelude::*;
use serde_json::json;

use crate::analysis::expr::Condition;

/// Cases per fuzz property: `SLUICE_FUZZ_CASES`, else `default` (what `make test` runs).
pub(crate) fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("SLUICE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        // A failure found is kept as a named regression test beside its target.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Any JSON a provider could return: nested arrays and objects of every scalar kind,
/// including the numbers that break naive arithmetic.
pub(crate) fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(json!(null)),
        any::<bool>().prop_map(|b| json!(b)),
        any::<i64>().prop_map(|i| json!(i)),
        any::<u64>().prop_map(|u| json!(u)),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "\\PC{0,8}".prop_map(|s| json!(s)),
        prop::sample::select(vec!["NaN", "+Inf", "-Inf", "1e309", "0x10", " 1 ", ""])
            .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::Array),
            prop::collection::btree_map("[a-z]{1,3}|status|ok|value", inner, 0..5)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Tokens of the condition language, its functions and some it does not have.
const TOKENS: &[&str] = &[
    "result",
    "result[0]",
    "result[-1]",
    "result[99999999999]",
    "result.a",
    "result.status",
    "result['ok']",
    "len(result)",
    "asFloat(result)",
    "asInt(result)",
    "isNaN(result)",
    "isInf(result)",
    "isNil(result)",
    "default(result, 1)",
    "result ?? 0",
    "1",
    "0",
    "-1",
    "0.5",
    "1e308",
    "9223372036854775807",
    "-9223372036854775808",
    "'a'",
    "\"b\"",
    "nil",
    "true",
    "false",
    "NaN",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "**",
    "^",
    "and",
    "or",
    "not",
    "!",
    "&&",
    "||",
    "in",
    "not in",
    "(",
    ")",
    "[",
    "]",
    "[1, 2]",
    ",",
    ".",
    "?",
    ":",
    "all(result, # > 0)",
    "any(result, # < 0)",
    "filter(result, # == 1)",
    "map(result, #)",
    "count(result, true)",
    "#",
    "..",
    "1..3",
    "matches",
    "contains",
    "startsWith",
    "let",
    "unknownFn(result)",
    "}",
    "{",
    "$",
    "@",
];

proptest! {
    #![proptest_config(config(10_000))]

    /// Arbitrary text never panics the condition parser.
    #[test]
    fn fuzz_condition_parse_never_panics(text in "\\PC{0,80}") {
        let _ = Condition::parse(&text);
    }

    /// Arbitrary bytes, read as the YAML a user could write, never panic the parser.
    #[test]
    fn fuzz_condition_parse_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = Condition::parse(&String::from_utf8_lossy(&bytes));
    }
}

proptest! {
    #![proptest_config(config(15_000))]


    /// Token soup of the language evaluated against any JSON: an answer or an error value,
    /// never a panic.
    #[test]
    fn fuzz_condition_eval_never_panics(
        tokens in prop::collection::vec(prop::sample::select(TOKENS), 1..10),
        value in json_value(),
    ) {
        let text = tokens.join(" ");
        if let Ok(condition) = Condition::parse(&text) {
            let _ = condition.eval(&value);
        }
    }
}

/// Deep nesting is refused with an error, not a stack overflow (which would abort the
/// controller, not just fail one measurement).
#[test]
fn deeply_nested_conditions_are_an_error() {
    for (open, close) in [
        ("(", ")"),
        ("[", "]"),
        ("not ", ""),
        ("-", ""),
        ("len(", ")"),
    ] {
        let text = format!("{}1{}", open.repeat(50_000), close.repeat(50_000));
        assert!(Condition::parse(&text).is_err(), "{open}…{close}");
    }
}
