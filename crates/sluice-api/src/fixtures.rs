//! Upstream-style example manifests used to check that every API type round-trips without
//! loss and that the generated schemas keep every field a user applies.

use serde_json::Value;

use super::analysis::{AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate};
use super::experiment::Experiment;
use super::rollout::Rollout;

/// Every fixture file, by name.
pub(crate) const ALL: &[(&str, &str)] = &[
    (
        "canary-rollout.yaml",
        include_str!("testdata/canary-rollout.yaml"),
    ),
    (
        "bluegreen-rollout.yaml",
        include_str!("testdata/bluegreen-rollout.yaml"),
    ),
    (
        "analysis-templates.yaml",
        include_str!("testdata/analysis-templates.yaml"),
    ),
    (
        "analysis-run.yaml",
        include_str!("testdata/analysis-run.yaml"),
    ),
    ("experiment.yaml", include_str!("testdata/experiment.yaml")),
];

/// Each YAML document of every fixture, as a JSON value.
pub(crate) fn documents() -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    for (name, text) in ALL {
        for doc in serde_yaml::Deserializer::from_str(text) {
            let value: Value = serde::Deserialize::deserialize(doc)
                .unwrap_or_else(|e| panic!("{name}: invalid YAML: {e}"));
            out.push((*name, value));
        }
    }
    out
}

/// Deserializes `value` as `T` and serializes it back.
fn through<T: serde::de::DeserializeOwned + serde::Serialize>(value: &Value) -> Value {
    let typed: T = serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("{}: does not deserialize: {e}", std::any::type_name::<T>()));
    serde_json::to_value(&typed).unwrap()
}

/// Lists the paths where `got` differs from `want`.
fn differences(want: &Value, got: &Value, path: &str, out: &mut Vec<String>) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                match g.get(k) {
                    Some(gv) => differences(wv, gv, &format!("{path}.{k}"), out),
                    None => out.push(format!("{path}.{k}: lost")),
                }
            }
            for k in g.keys().filter(|k| !w.contains_key(*k)) {
                out.push(format!("{path}.{k}: added {}", g[k]));
            }
        }
        (Value::Array(w), Value::Array(g)) if w.len() == g.len() => {
            for (i, (wv, gv)) in w.iter().zip(g).enumerate() {
                differences(wv, gv, &format!("{path}[{i}]"), out);
            }
        }
        _ if want == got => {}
        _ => out.push(format!("{path}: {want} became {got}")),
    }
}

#[test]
fn every_fixture_round_trips_through_the_typed_api_without_loss() {
    let docs = documents();
    assert!(docs.len() >= 7, "fixtures went missing: {}", docs.len());
    for (name, value) in docs {
        let kind = value["kind"].as_str().unwrap_or_default().to_string();
        let back = match kind.as_str() {
            "Rollout" => through::<Rollout>(&value),
            "AnalysisTemplate" => through::<AnalysisTemplate>(&value),
            "ClusterAnalysisTemplate" => through::<ClusterAnalysisTemplate>(&value),
            "AnalysisRun" => through::<AnalysisRun>(&value),
            "Experiment" => through::<Experiment>(&value),
            other => panic!("{name}: unexpected kind {other:?}"),
        };
        let mut diffs = Vec::new();
        differences(&value, &back, "", &mut diffs);
        assert!(
            diffs.is_empty(),
            "{name} ({kind}) changed in a round trip:\n{}",
            diffs.join("\n")
        );
    }
}

#[test]
fn canary_fixture_reads_as_expected_through_the_accessors() {
    let (_, value) = documents()
        .into_iter()
        .find(|(n, _)| *n == "canary-rollout.yaml")
        .unwrap();
    let ro: Rollout = serde_json::from_value(value).unwrap();
    assert_eq!(ro.spec.replicas(), 5);
    assert_eq!(ro.spec.steps().len(), 12);
    assert_eq!(ro.spec.steps()[0].keys(), vec!["setWeight"]);
    assert_eq!(ro.spec.steps()[1].pause, Some(Default::default()));
    assert_eq!(
        ro.spec.steps()[5].pause.as_ref().unwrap().duration(),
        Ok(Some(std::time::Duration::from_secs(30)))
    );
    assert_eq!(
        ro.spec.steps()[10].pause.as_ref().unwrap().duration(),
        Ok(Some(std::time::Duration::from_secs(10)))
    );
    let status = ro.status.unwrap();
    assert_eq!(status.observed_generation.as_deref(), Some("3"));
    assert_eq!(status.hpa_replicas, Some(6));
    assert_eq!(status.phase, Some(super::rollout::RolloutPhase::Paused));
    assert_eq!(
        status.pause_conditions()[0].reason,
        super::rollout::PauseReason::CanaryPauseStep
    );
    assert_eq!(
        status.conditions()[1].type_,
        super::rollout::RolloutConditionType::Other("SomethingNewer".into())
    );
}
