//! `lint FILE`: check Rollout manifests offline, with the controller's own checks.
//!
//! A Rollout passes when the API server would take it and the controller would run it:
//! 1. the CRD's structural schema, as the embedded API server applies it
//!    (`sluice_cluster::schema`): unknown fields (which `kubectl apply` refuses) and wrong
//!    types or values;
//! 2. the Rust types (a field that does not decode);
//! 3. the controller's InvalidSpec checks (`sluice_engine::rollout::validate`, after the
//!    `workloadRef` is resolved as the controller resolves it), with the Services,
//!    AnalysisTemplates, ClusterAnalysisTemplates and workloads found in the same file.
//!    A reference to an object that is not in the file cannot be checked offline: a note
//!    says so.
//!
//! Every problem is one line naming the file, the Rollout and the field; exit 1 if any.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use serde_json::Value;

use sluice_api::analysis::{AnalysisTemplate, ClusterAnalysisTemplate};
use sluice_api::rollout::Rollout;
use sluice_engine::rollout::Observed;
use sluice_engine::rollout::workload::{Workload, resolve};

use super::Exit;

/// Flags of `lint`.
#[derive(Debug, Args, Clone)]
pub struct LintArgs {
    /// The manifest (several YAML documents allowed; `-` reads stdin).
    #[arg(required_unless_present = "filename")]
    pub file: Option<PathBuf>,
    /// The manifest, as upstream's `lint -f FILE`.
    #[arg(short = 'f', long, conflicts_with = "file")]
    pub filename: Option<PathBuf>,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The Rollout is valid.
    Valid { rollout: String },
    /// Something the controller would refuse.
    Problem { rollout: String, message: String },
    /// Something that cannot be checked offline.
    Note { rollout: String, message: String },
}

fn rollout_schema() -> Value {
    let crd = sluice_api::crds::all()
        .into_iter()
        .find(|c| c.spec.names.kind == "Rollout")
        .expect("the Rollout CRD is rendered from the types");
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("the Rollout CRD has a schema");
    serde_json::to_value(schema).expect("a schema serializes")
}

/// Paths present in `before` and gone from `after` (the fields pruning dropped).
fn dropped(before: &Value, after: &Value, path: &str, out: &mut Vec<String>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (k, v) in b {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match a.get(k) {
                    None => out.push(p),
                    Some(av) => dropped(v, av, &p, out),
                }
            }
        }
        (Value::Array(b), Value::Array(a)) => {
            for (i, (bv, av)) in b.iter().zip(a).enumerate() {
                dropped(bv, av, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn name_of(doc: &Value) -> String {
    doc["metadata"]["name"]
        .as_str()
        .unwrap_or("(unnamed)")
        .to_string()
}

/// Check every Rollout in `docs` (pure).
pub fn lint(docs: &[Value]) -> Vec<Finding> {
    let kind = |d: &Value, k: &str| d["kind"] == k;
    let argo = |d: &Value| {
        d["apiVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("argoproj.io/"))
    };
    let mut services = BTreeMap::new();
    let mut templates = BTreeMap::new();
    let mut cluster_templates = BTreeMap::new();
    let mut workloads: BTreeMap<(String, String), Value> = BTreeMap::new();
    for d in docs {
        if kind(d, "Service") {
            if let Ok(s) = serde_json::from_value(d.clone()) {
                services.insert(name_of(d), Some(s));
            }
        } else if kind(d, "AnalysisTemplate") && argo(d) {
            if let Ok(t) = serde_json::from_value::<AnalysisTemplate>(d.clone()) {
                templates.insert(name_of(d), t);
            }
        } else if kind(d, "ClusterAnalysisTemplate") && argo(d) {
            if let Ok(t) = serde_json::from_value::<ClusterAnalysisTemplate>(d.clone()) {
                cluster_templates.insert(name_of(d), t);
            }
        } else if ["Deployment", "ReplicaSet", "PodTemplate"]
            .iter()
            .any(|k| kind(d, k))
        {
            workloads.insert(
                (
                    d["kind"].as_str().unwrap_or_default().to_string(),
                    name_of(d),
                ),
                d.clone(),
            );
        }
    }
    let schema = rollout_schema();
    let mut findings = Vec::new();
    for doc in docs.iter().filter(|d| kind(d, "Rollout") && argo(d)) {
        let name = name_of(doc);
        let problem = |message: String| Finding::Problem {
            rollout: name.clone(),
            message,
        };
        let note = |message: String| Finding::Note {
            rollout: name.clone(),
            message,
        };
        // 1. What the API server refuses.
        let mut pruned = doc.clone();
        sluice_cluster::schema::prune(&mut pruned, &schema);
        let mut unknown = Vec::new();
        dropped(doc, &pruned, "", &mut unknown);
        let mut schema_errors: Vec<String> = unknown
            .into_iter()
            .filter(|p| !p.starts_with("metadata.") && p != "status" && !p.starts_with("status."))
            .map(|p| format!("{p}: unknown field"))
            .collect();
        schema_errors.extend(
            sluice_cluster::schema::validate(&pruned, &schema)
                .into_iter()
                .filter(|e| !e.path.starts_with("status"))
                .map(|e| e.to_string()),
        );
        if !schema_errors.is_empty() {
            findings.extend(schema_errors.into_iter().map(problem));
            continue;
        }
        // 2. What does not decode.
        let rollout: Rollout = match serde_path_to_error::deserialize(pruned) {
            Ok(r) => r,
            Err(e) => {
                let path = e.path().to_string();
                findings.push(problem(format!("{path}: {}", e.into_inner())));
                continue;
            }
        };
        // 3. The controller's InvalidSpec checks, with what the file holds.
        let refs = Observed::referenced_templates(&rollout);
        let missing: Vec<String> = refs
            .0
            .iter()
            .filter(|t| !templates.contains_key(*t))
            .map(|t| format!("AnalysisTemplate {t:?}"))
            .chain(
                refs.1
                    .iter()
                    .filter(|t| !cluster_templates.contains_key(*t))
                    .map(|t| format!("ClusterAnalysisTemplate {t:?}")),
            )
            .collect();
        let mut observed = Observed {
            rollout: rollout.clone(),
            services: services.clone(),
            analysis_templates: templates.clone(),
            cluster_analysis_templates: cluster_templates.clone(),
            ..Default::default()
        };
        if let Some(canary) = rollout.spec.canary() {
            for svc in [&canary.canary_service, &canary.stable_service]
                .into_iter()
                .flatten()
                .filter(|s| !s.is_empty())
            {
                if !observed.services.contains_key(svc) {
                    findings.push(note(format!(
                        "Service {svc:?} is not in the file: not checked"
                    )));
                    observed
                        .services
                        .insert(svc.clone(), Some(Default::default()));
                }
            }
        }
        if let Some(r) = rollout.spec.workload_ref.as_ref() {
            let key = (
                r.kind.clone().unwrap_or_default(),
                r.name.clone().unwrap_or_default(),
            );
            match workloads.get(&key) {
                Some(w) => {
                    let template_at = if key.0 == "PodTemplate" {
                        &w["template"]
                    } else {
                        &w["spec"]["template"]
                    };
                    observed.workload = Some(Workload {
                        generation: 0,
                        template: serde_json::from_value(template_at.clone()).ok(),
                        selector: serde_json::from_value(w["spec"]["selector"].clone()).ok(),
                        scale: None,
                    });
                }
                None => {
                    findings.push(note(format!(
                        "spec.workloadRef names {} {:?}, which is not in the file: the template and selector were not checked",
                        key.0, key.1
                    )));
                    continue;
                }
            }
        }
        let resolved = match resolve(&observed) {
            Ok(r) => r,
            Err(e) => {
                findings.push(problem(e.to_string()));
                continue;
            }
        };
        let verdict = if missing.is_empty() {
            sluice_engine::rollout::validate(&resolved)
        } else {
            findings.push(note(format!(
                "{} not in the file: its analysis arguments were not checked",
                missing.join(", ")
            )));
            sluice_engine::rollout::validate::validate_spec(&resolved.rollout.spec)
        };
        findings.push(match verdict {
            Ok(()) => Finding::Valid {
                rollout: name.clone(),
            },
            Err(e) => problem(e.to_string()),
        });
    }
    findings
}

/// Run `lint`.
pub fn run(args: &LintArgs) -> anyhow::Result<()> {
    let path = args
        .file
        .clone()
        .or_else(|| args.filename.clone())
        .unwrap_or_default();
    let shown = path.display().to_string();
    let text = if shown == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading stdin")?
    } else {
        std::fs::read_to_string(&path).with_context(|| format!("reading {shown}"))?
    };
    let mut docs = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
        let value = Value::deserialize_from(doc)
            .with_context(|| format!("{shown}: document {} is not valid YAML", i + 1))?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    let findings = lint(&docs);
    if findings.is_empty() {
        return Err(anyhow::anyhow!(
            "{shown}: no argoproj.io Rollout in the file"
        ));
    }
    let mut problems = Vec::new();
    for f in findings {
        match f {
            Finding::Valid { rollout } => println!("{shown}: rollout '{rollout}' is valid"),
            Finding::Note { rollout, message } => {
                println!("{shown}: rollout '{rollout}': note: {message}")
            }
            Finding::Problem { rollout, message } => {
                problems.push(format!("{shown}: rollout '{rollout}': {message}"))
            }
        }
    }
    let Some(last) = problems.pop() else {
        return Ok(());
    };
    for p in problems {
        eprintln!("error: {p}");
    }
    Err(Exit {
        code: 1,
        message: last,
    }
    .into())
}

/// `Value` from one YAML document.
trait FromYamlDocument: Sized {
    fn deserialize_from(doc: serde_yaml::Deserializer<'_>) -> Result<Self, serde_yaml::Error>;
}

impl FromYamlDocument for Value {
    fn deserialize_from(doc: serde_yaml::Deserializer<'_>) -> Result<Self, serde_yaml::Error> {
        serde::Deserialize::deserialize(doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(yaml: &str) -> Vec<Value> {
        serde_yaml::Deserializer::from_str(yaml)
            .map(|d| Value::deserialize_from(d).unwrap())
            .filter(|v| !v.is_null())
            .collect()
    }

    const VALID: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  replicas: 4
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: "nginx:1.25"}]}
  strategy:
    canary:
      steps: [{setWeight: 20}, {pause: {}}]
"#;

    #[test]
    fn a_valid_rollout_is_valid() {
        assert_eq!(
            lint(&docs(VALID)),
            [Finding::Valid {
                rollout: "web".into()
            }]
        );
    }

    #[test]
    fn problems_name_the_field() {
        let cases = [
            (
                VALID.replace("{setWeight: 20}", "{setWeight: 120}"),
                "spec.strategy.canary.steps[0].setWeight: SetWeight needs to be between 0 and 100 (got 120)",
            ),
            (
                VALID.replace("{setWeight: 20}", "{setWeigth: 20}"),
                "spec.strategy.canary.steps[0].setWeigth: unknown field",
            ),
            (
                VALID.replace("{pause: {}}", "{pause: {}, setWeight: 5}"),
                "spec.strategy.canary.steps[1]: Step must have one of the following set: experiment, setWeight, setCanaryScale, plugin or pause (found setWeight and pause)",
            ),
            (
                VALID.replace("replicas: 4", "replicas: four"),
                "spec.replicas",
            ),
        ];
        for (yaml, want) in cases {
            let found = lint(&docs(&yaml));
            let Some(Finding::Problem { message, .. }) = found.first() else {
                panic!("{want}: {found:?}")
            };
            assert!(message.starts_with(want), "{message}");
        }
    }

    #[test]
    fn references_in_the_file_are_checked_and_others_noted() {
        let with_services = VALID.replace(
            "      steps:",
            "      canaryService: web-canary\n      stableService: web-canary\n      steps:",
        );
        let found = lint(&docs(&with_services));
        assert!(
            found.iter().any(|f| matches!(f, Finding::Problem { message, .. } if message.starts_with("spec.strategy.canary.stableService"))),
            "{found:?}"
        );
        let analysis = VALID.replace(
            "{pause: {}}",
            "{analysis: {templates: [{templateName: rate}]}}",
        );
        let found = lint(&docs(&analysis));
        assert!(
            matches!(&found[..], [Finding::Note { .. }, Finding::Valid { .. }]),
            "{found:?}"
        );
    }
}
