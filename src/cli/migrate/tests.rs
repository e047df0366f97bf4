//! Golden tests of `sluice migrate`: Deployment YAML in, Rollout YAML out, and every refusal.
//!
//! `SLUICE_BLESS=1 cargo test --lib cli::migrate` rewrites the expected files; review the diff.

use serde_json::Value;

use super::*;
use sluice_api::rollout::Rollout;

const LIVE: &str = include_str!("testdata/deployment-live.yaml");
const TWO: &str = include_str!("testdata/two-deployments.yaml");
const LIST: &str = include_str!("testdata/deployment-list.yaml");

fn options(mode: Mode, scale_down: ScaleDown, steps: &str) -> Options {
    Options {
        mode,
        scale_down,
        steps: parse_steps(steps).unwrap(),
        blue_green: None,
    }
}

fn blue_green(preview: Option<&str>) -> Options {
    Options {
        blue_green: Some(BlueGreenServices {
            active: "web-active".into(),
            preview: preview.map(str::to_string),
        }),
        ..Options::default()
    }
}

fn golden(input: &str, options: &Options, expected_file: &str) -> String {
    let got = convert(input, options).unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/cli/migrate/testdata")
        .join(expected_file);
    if std::env::var("SLUICE_BLESS").is_ok() {
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(got, want, "output differs from {expected_file}");
    got
}

/// Each output document as JSON (comments dropped by the YAML parser).
fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

#[test]
fn template_mode_maps_every_deployment_field_and_lists_what_it_dropped() {
    let out = golden(
        LIVE,
        &options(Mode::Template, ScaleDown::Progressively, DEFAULT_STEPS),
        "rollout-template.yaml",
    );
    let docs = documents(&out);
    assert_eq!(docs.len(), 1);
    let ro = &docs[0];
    assert_eq!(ro["spec"]["replicas"], 4);
    assert_eq!(ro["spec"]["minReadySeconds"], 5);
    assert_eq!(ro["spec"]["revisionHistoryLimit"], 5);
    assert_eq!(ro["spec"]["progressDeadlineSeconds"], 300);
    assert_eq!(ro["spec"]["paused"], false);
    assert_eq!(ro["spec"]["strategy"]["canary"]["maxSurge"], 1);
    assert_eq!(ro["spec"]["strategy"]["canary"]["maxUnavailable"], "10%");
    assert_eq!(
        ro["metadata"]["annotations"],
        serde_json::json!({"team.example.com/owner": "payments"})
    );
    assert!(ro.get("status").is_none());
    assert!(
        ro["spec"]["template"]["metadata"]
            .get("creationTimestamp")
            .is_none()
    );
    for dropped in [
        "#   metadata.annotations[deployment.kubernetes.io/revision]",
        "#   metadata.annotations[kubectl.kubernetes.io/last-applied-configuration]",
        "#   metadata.managedFields",
        "#   metadata.uid",
        "#   status",
    ] {
        assert!(out.contains(dropped), "comment lists {dropped}:\n{out}");
    }
}

#[test]
fn workload_ref_mode_references_the_deployment_and_copies_the_selector() {
    let out = golden(
        LIVE,
        &options(Mode::WorkloadRef, ScaleDown::Onsuccess, DEFAULT_STEPS),
        "rollout-workload-ref.yaml",
    );
    let ro = &documents(&out)[0];
    assert!(ro["spec"].get("template").is_none());
    assert_eq!(
        ro["spec"]["workloadRef"],
        serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "scaleDown": "onsuccess"})
    );
    assert_eq!(ro["spec"]["selector"]["matchLabels"]["app"], "web");
    assert_eq!(ro["spec"]["replicas"], 4);
}

#[test]
fn multi_document_input_gives_one_rollout_per_deployment_and_skips_empty_documents() {
    let out = golden(
        TWO,
        &options(Mode::Template, ScaleDown::Progressively, "none"),
        "two-rollouts.yaml",
    );
    let docs = documents(&out);
    let names: Vec<&str> = docs
        .iter()
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api", "worker"]);
    // `--steps none`: a plain rolling update, like the Deployment had.
    assert!(docs[0]["spec"]["strategy"]["canary"].get("steps").is_none());
    // Empty label maps are not emitted.
    assert!(docs[1]["metadata"].get("labels").is_none());
    assert_eq!(out.matches("\n---\n").count(), 1);
}

#[test]
fn a_v1_list_of_deployments_is_expanded() {
    let out = convert(LIST, &Options::default()).unwrap();
    let names: Vec<String> = documents(&out)
        .iter()
        .map(|d| d["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["a", "b"]);
}

#[test]
fn every_output_deserializes_into_a_rollout_and_round_trips_losslessly() {
    let cases = [
        (
            LIVE,
            options(Mode::Template, ScaleDown::Never, DEFAULT_STEPS),
        ),
        (
            LIVE,
            options(
                Mode::WorkloadRef,
                ScaleDown::Progressively,
                "10,pause:30,100",
            ),
        ),
        (TWO, options(Mode::Template, ScaleDown::Never, "none")),
        (LIST, options(Mode::WorkloadRef, ScaleDown::Never, "pause")),
    ];
    for (input, opts) in cases {
        let out = convert(input, &opts).unwrap();
        for doc in documents(&out) {
            let ro: Rollout = serde_json::from_value(doc.clone())
                .unwrap_or_else(|e| panic!("not a Rollout: {e}\n{out}"));
            assert_eq!(
                serde_json::to_value(&ro).unwrap(),
                doc,
                "lossless round trip"
            );
            assert!(ro.status.is_none());
            if opts.mode == Mode::Template {
                sluice_engine::rollout::validate::validate_spec(&ro.spec)
                    .unwrap_or_else(|e| panic!("the planner rejects the output: {e:?}\n{out}"));
            }
        }
    }
}

#[test]
fn steps_parse_weights_indefinite_and_timed_pauses() {
    let steps = parse_steps("20,pause,50,pause:60s,pause:30,100").unwrap();
    let json = serde_json::to_value(&steps).unwrap();
    assert_eq!(
        json,
        serde_json::json!([
            {"setWeight": 20},
            {"pause": {}},
            {"setWeight": 50},
            {"pause": {"duration": "60s"}},
            {"pause": {"duration": 30}},
            {"setWeight": 100},
        ])
    );
    assert_eq!(parse_steps(" none ").unwrap(), vec![]);
    assert_eq!(parse_steps("0, 100").unwrap().len(), 2);
}

#[test]
fn bad_step_tokens_are_named_in_the_error() {
    let cases = [
        ("20,101", "101", "between 0 and 100"),
        ("-5", "-5", "between 0 and 100"),
        ("20,pause:abc", "pause:abc", "pause duration"),
        ("pause:", "pause:", "pause duration"),
        ("twenty", "twenty", "expected a weight"),
        ("20,,50", "", "empty step"),
        ("", "", "empty step"),
        ("setWeight:20", "setWeight:20", "expected a weight"),
    ];
    for (text, token, reason) in cases {
        match parse_steps(text) {
            Err(MigrateError::BadStep {
                token: t,
                reason: r,
            }) => {
                assert_eq!(t, token, "{text}");
                assert!(r.contains(reason), "{text}: {r}");
            }
            other => panic!("{text}: expected BadStep, got {other:?}"),
        }
    }
    let message = parse_steps("20,pause:abc").unwrap_err().to_string();
    assert_eq!(
        message,
        "--steps: bad step \"pause:abc\": the pause duration must look like 30s, 5m, 1h or 30"
    );
}

const SERVICE: &str =
    "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports: [{port: 80}]\n";

fn deployment_with(extra_spec: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers: [{{name: web, image: nginx}}]\n{extra_spec}"
    )
}

#[test]
fn refusals_name_the_document_and_say_what_to_do() {
    let two_with_service = format!("{}---\n{SERVICE}", deployment_with(""));
    let recreate = deployment_with("  strategy:\n    type: Recreate\n");
    let bogus_strategy = deployment_with("  strategy:\n    type: BlueGreen\n");
    let mismatch = deployment_with("").replace("labels: {app: web}", "labels: {app: other}");
    let beta = deployment_with("").replace("apps/v1", "apps/v1beta1");
    let nameless = deployment_with("").replace("  name: web\n", "  labels: {a: b}\n");
    let cases: Vec<(&str, String, MigrateError)> = vec![
        (
            "a Service after a Deployment",
            two_with_service,
            MigrateError::NotADeployment {
                index: 1,
                kind: "Service".into(),
                api_version: "v1".into(),
            },
        ),
        (
            "an older Deployment API",
            beta,
            MigrateError::NotADeployment {
                index: 0,
                kind: "Deployment".into(),
                api_version: "apps/v1beta1".into(),
            },
        ),
        (
            "a document without kind",
            "foo: bar\n".into(),
            MigrateError::NotADeployment {
                index: 0,
                kind: "document without a kind".into(),
                api_version: "no apiVersion".into(),
            },
        ),
        (
            "Recreate",
            recreate,
            MigrateError::Recreate {
                index: 0,
                name: "web".into(),
            },
        ),
        ("empty input", "---\n".into(), MigrateError::Empty),
    ];
    for (what, input, want) in cases {
        assert_eq!(convert(&input, &Options::default()), Err(want), "{what}");
    }

    let message = |input: &str| convert(input, &Options::default()).unwrap_err().to_string();
    assert_eq!(
        message(&format!("{}---\n{SERVICE}", deployment_with(""))),
        "document 1 is a Service (v1), not an apps/v1 Deployment; `sluice migrate` converts \
         Deployments only: remove other documents from its input"
    );
    assert!(
        message(&deployment_with("  strategy:\n    type: Recreate\n")).starts_with(
            "document 0 (Deployment \"web\"): spec.strategy.type Recreate cannot be migrated"
        )
    );
    assert!(message(&bogus_strategy).contains("spec.strategy.type \"BlueGreen\""));
    assert!(
        message(&mismatch).contains("spec.selector does not match spec.template.metadata.labels"),
        "{}",
        message(&mismatch)
    );
    assert_eq!(
        message(&nameless),
        "document 0 (Deployment \"\"): metadata.name is missing; a Rollout needs a name"
    );
    let invalid_yaml = message("apiVersion: apps/v1\nkind: [Deployment\n");
    assert!(
        invalid_yaml.starts_with("document 0: invalid YAML: "),
        "{invalid_yaml}"
    );
    let wrong_type = message(&deployment_with("  replicas: many\n"));
    assert!(
        wrong_type.starts_with("document 0 (Deployment \"web\"): not a valid apps/v1 Deployment: "),
        "{wrong_type}"
    );
    let no_spec = message("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n");
    assert_eq!(no_spec, "document 0 (Deployment \"web\"): spec is missing");
}

#[test]
fn unknown_spec_fields_are_listed_as_dropped() {
    let input = deployment_with("  futureField: 1\n");
    let out = convert(&input, &Options::default()).unwrap();
    assert!(out.contains("#   spec.futureField\n"), "{out}");
    assert!(!out.contains("futureField: 1"), "{out}");
}

#[test]
fn blue_green_uses_the_named_services_keeps_max_unavailable_and_drops_max_surge() {
    let out = golden(
        LIVE,
        &blue_green(Some("web-preview")),
        "rollout-blue-green.yaml",
    );
    let ro = &documents(&out)[0];
    let bg = &ro["spec"]["strategy"]["blueGreen"];
    assert_eq!(bg["activeService"], "web-active");
    assert_eq!(bg["previewService"], "web-preview");
    assert_eq!(bg["maxUnavailable"], "10%");
    assert!(ro["spec"]["strategy"].get("canary").is_none());
    assert!(
        out.contains("#   spec.strategy.rollingUpdate.maxSurge"),
        "{out}"
    );
    assert!(
        out.contains("the Services web-active and web-preview must exist"),
        "{out}"
    );
    let rollout: Rollout = serde_json::from_value(ro.clone()).unwrap();
    sluice_engine::rollout::validate::validate_spec(&rollout.spec)
        .expect("a valid blue/green spec");
}

#[test]
fn blue_green_converts_one_deployment_at_a_time() {
    let err = convert(TWO, &blue_green(None)).unwrap_err();
    assert_eq!(err, MigrateError::BlueGreenOneAtATime { count: 2 });
    assert!(
        err.to_string().contains("one Deployment at a time"),
        "{err}"
    );
}

#[test]
fn strategy_flags_go_together_and_errors_say_which() {
    use clap::Parser;
    let parse = |args: &[&str]| {
        let mut argv = vec!["sluice", "migrate", "-f", "x.yaml"];
        argv.extend_from_slice(args);
        match crate::cli::Cli::try_parse_from(argv)
            .expect("parses")
            .command
        {
            crate::cli::Command::Migrate(m) => blue_green_services(&m),
            _ => unreachable!(),
        }
    };
    assert_eq!(parse(&[]).unwrap(), None);
    assert_eq!(
        parse(&[
            "--strategy",
            "blue-green",
            "--active-service",
            "a",
            "--preview-service",
            "p"
        ])
        .unwrap(),
        Some(BlueGreenServices {
            active: "a".into(),
            preview: Some("p".into())
        })
    );
    let errors = [
        (vec!["--strategy", "blue-green"], "needs --active-service"),
        (
            vec![
                "--strategy",
                "blue-green",
                "--active-service",
                "a",
                "--preview-service",
                "a",
            ],
            "must differ",
        ),
        (
            vec![
                "--strategy",
                "blue-green",
                "--active-service",
                "a",
                "--steps",
                "20",
            ],
            "--steps only applies to --strategy canary",
        ),
        (
            vec!["--active-service", "a"],
            "only apply to --strategy blue-green",
        ),
        (
            vec!["--strategy", "blue-green", "--active-service", " "],
            "needs a Service name",
        ),
    ];
    for (args, want) in errors {
        let err = parse(&args).unwrap_err().to_string();
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}
