//! `sluice migrate`: turn Deployments into Rollouts.
//!
//! The conversion is pure ([`convert`]: YAML text in, YAML text out) so every mapping and every
//! refusal is covered by golden tests; [`run`] only reads the input (a file, stdin or the
//! cluster) and prints the result.
//!
//! Choices (documented in `docs/migration.md`):
//! - Every input document must be an `apps/v1` Deployment (or a `v1` `List` of them, as
//!   `kubectl get deploy -o yaml` prints). Anything else is an error naming the document, rather
//!   than passed through: a silently passed-through Service or HPA that still targets the
//!   Deployment is exactly the kind of half-migration this command exists to avoid.
//! - `Recreate` is refused: a Rollout always runs the old and the new pods side by side during an
//!   update, which is what `Recreate` exists to prevent.
//! - The default steps are [`DEFAULT_STEPS`]: a small canary, a manual gate, half, a timed soak.
//! - `--strategy blue-green` produces a blue/green Rollout instead, with the Services named by
//!   `--active-service` (required) and `--preview-service`; one Deployment at a time (each needs
//!   its own Services), and the rolling update's `maxSurge` is dropped (blue/green runs a whole
//!   second copy) while `maxUnavailable` is kept (it paces restarts).

use std::collections::BTreeSet;
use std::io::Read as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use sluice_api::common::ObjectRef;
use sluice_api::rollout::{
    BlueGreenStrategy, CanaryStep, CanaryStrategy, Rollout, RolloutPause, RolloutSpec,
    RolloutStrategy,
};

/// The steps used when `--steps` is not given: 20% of the pods on the new version, wait for a
/// person to promote, then 50% for a minute, then the rest. The manual gate is deliberate: the
/// first update after a migration is the one to watch.
pub const DEFAULT_STEPS: &str = "20,pause,50,pause:60s";

/// Annotations the Deployment controller and `kubectl apply` own; copying them would lie about
/// the Rollout (its revision is counted by Sluice, and its last-applied state is not the
/// Deployment's).
pub const DROPPED_ANNOTATIONS: &[&str] = &[
    "deployment.kubernetes.io/revision",
    "kubectl.kubernetes.io/last-applied-configuration",
];

/// `metadata` keys carried over to the Rollout; every other key is server-set or owned by
/// someone else and is listed as dropped.
const KEPT_METADATA: &[&str] = &["name", "namespace", "labels", "annotations"];

/// `spec` keys of an apps/v1 Deployment that have a Rollout counterpart.
const MAPPED_SPEC: &[&str] = &[
    "replicas",
    "selector",
    "template",
    "strategy",
    "minReadySeconds",
    "revisionHistoryLimit",
    "progressDeadlineSeconds",
    "paused",
];

/// Why a conversion was refused. Every message names the document (0-based index in the input
/// stream) and says what to do.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MigrateError {
    /// The input is not YAML.
    #[error("document {index}: invalid YAML: {message}")]
    InvalidYaml { index: usize, message: String },
    /// The input held no document at all.
    #[error("no Deployment in the input (it is empty)")]
    Empty,
    /// A document of another kind.
    #[error(
        "document {index} is a {kind} ({api_version}), not an apps/v1 Deployment; \
         `sluice migrate` converts Deployments only: remove other documents from its input"
    )]
    NotADeployment {
        index: usize,
        kind: String,
        api_version: String,
    },
    /// A Deployment that does not parse as apps/v1 or lacks something a Rollout needs.
    #[error("document {index} (Deployment {name:?}): {message}")]
    InvalidDeployment {
        index: usize,
        name: String,
        message: String,
    },
    /// `strategy.type: Recreate`.
    #[error(
        "document {index} (Deployment {name:?}): spec.strategy.type Recreate cannot be migrated: \
         a Rollout runs the old and the new pods side by side during every update, which \
         Recreate exists to prevent. If the app tolerates two versions at once, switch the \
         Deployment to RollingUpdate first and migrate again"
    )]
    Recreate { index: usize, name: String },
    /// A bad `--steps` token.
    #[error("--steps: bad step {token:?}: {reason}")]
    BadStep { token: String, reason: String },
    /// `--strategy blue-green` with several Deployments.
    #[error(
        "--strategy blue-green converts one Deployment at a time (each Rollout needs its own \
         active and preview Services), but the input holds {count}"
    )]
    BlueGreenOneAtATime { count: usize },
}

/// The blue/green Services a converted Rollout switches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlueGreenServices {
    /// `activeService`: the Service production traffic goes through.
    pub active: String,
    /// `previewService`, if any.
    pub preview: Option<String>,
}

/// Which strategy the Rollout gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum StrategyKind {
    /// A canary with `--steps`.
    #[default]
    Canary,
    /// Blue/green with `--active-service` (and `--preview-service`).
    BlueGreen,
}

/// How the Rollout gets its pod template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Mode {
    /// Copy the pod template into the Rollout; the Deployment can then be deleted.
    #[default]
    Template,
    /// Reference the Deployment (`spec.workloadRef`); it stays the place where the pod template
    /// is edited.
    WorkloadRef,
}

/// `workloadRef.scaleDown`: what happens to the referenced Deployment's pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScaleDown {
    /// Scale the Deployment down as the Rollout's pods become available.
    Progressively,
    /// Scale the Deployment to zero once the Rollout is healthy.
    Onsuccess,
    /// Leave the Deployment's pods alone.
    Never,
}

impl ScaleDown {
    /// The value upstream's `workloadRef.scaleDown` field takes.
    pub fn as_str(self) -> &'static str {
        match self {
            ScaleDown::Progressively => sluice_api::common::SCALE_DOWN_PROGRESSIVELY,
            ScaleDown::Onsuccess => sluice_api::common::SCALE_DOWN_ON_SUCCESS,
            ScaleDown::Never => sluice_api::common::SCALE_DOWN_NEVER,
        }
    }
}

/// What to produce.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Embed the template or reference the Deployment.
    pub mode: Mode,
    /// Only used with [`Mode::WorkloadRef`].
    pub scale_down: ScaleDown,
    /// The canary steps of every produced Rollout (empty: a plain rolling update).
    pub steps: Vec<CanaryStep>,
    /// Blue/green instead of canary, with these Services (`steps` is then unused).
    pub blue_green: Option<BlueGreenServices>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            mode: Mode::Template,
            scale_down: ScaleDown::Progressively,
            steps: parse_steps(DEFAULT_STEPS).expect("the default steps parse"),
            blue_green: None,
        }
    }
}

/// One converted Deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    /// The Rollout, without status.
    pub rollout: Rollout,
    /// Paths of the input fields that have no place in the Rollout, for the output comment.
    pub dropped: Vec<String>,
}

/// Parse `--steps`: comma-separated tokens, each `N` (setWeight N, 0–100), `pause` (until
/// promoted) or `pause:DURATION` (`30s`, `1m`, a bare number of seconds). `none` (alone) means
/// no steps.
pub fn parse_steps(text: &str) -> Result<Vec<CanaryStep>, MigrateError> {
    let text = text.trim();
    if text == "none" {
        return Ok(Vec::new());
    }
    let bad = |token: &str, reason: &str| MigrateError::BadStep {
        token: token.to_string(),
        reason: reason.to_string(),
    };
    let mut steps = Vec::new();
    for raw in text.split(',') {
        let token = raw.trim();
        if token.is_empty() {
            return Err(bad(
                raw,
                "empty step; separate steps with single commas, or pass `none` for no steps",
            ));
        }
        if token == "pause" {
            steps.push(CanaryStep {
                pause: Some(RolloutPause::default()),
                ..Default::default()
            });
        } else if let Some(duration) = token.strip_prefix("pause:") {
            sluice_api::k8s::duration::parse_seconds_or_duration(duration)
                .map_err(|_| bad(token, "the pause duration must look like 30s, 5m, 1h or 30"))?;
            let duration = match duration.parse::<i32>() {
                Ok(seconds) => IntOrString::Int(seconds),
                Err(_) => IntOrString::String(duration.to_string()),
            };
            steps.push(CanaryStep {
                pause: Some(RolloutPause {
                    duration: Some(duration),
                }),
                ..Default::default()
            });
        } else {
            let weight: i32 = token.parse().map_err(|_| {
                bad(
                    token,
                    "expected a weight 0-100, `pause` or `pause:DURATION` (e.g. 20,pause,50,pause:60s,100)",
                )
            })?;
            if !(0..=100).contains(&weight) {
                return Err(bad(token, "a weight must be between 0 and 100"));
            }
            steps.push(CanaryStep {
                set_weight: Some(weight),
                ..Default::default()
            });
        }
    }
    Ok(steps)
}

/// Convert every Deployment in a (multi-document) YAML stream and render the Rollouts as one
/// YAML stream, `---` separated, each preceded by a comment naming what was dropped.
pub fn convert(input: &str, options: &Options) -> Result<String, MigrateError> {
    let mut deployments = Vec::new();
    for (index, doc) in serde_yaml::Deserializer::from_str(input).enumerate() {
        let value = Value::deserialize_yaml(doc).map_err(|e| MigrateError::InvalidYaml {
            index,
            message: e.to_string(),
        })?;
        if value.is_null() {
            // An empty document (a stray `---`) carries nothing to convert.
            continue;
        }
        if value.get("kind").and_then(Value::as_str) == Some("List")
            && value.get("apiVersion").and_then(Value::as_str) == Some("v1")
        {
            let items = value["items"].as_array().cloned().unwrap_or_default();
            deployments.extend(items.into_iter().map(|item| (index, item)));
        } else {
            deployments.push((index, value));
        }
    }
    if deployments.is_empty() {
        return Err(MigrateError::Empty);
    }
    if options.blue_green.is_some() && deployments.len() > 1 {
        return Err(MigrateError::BlueGreenOneAtATime {
            count: deployments.len(),
        });
    }
    let mut out = Vec::new();
    for (index, value) in deployments {
        let converted = convert_deployment(index, &value, options)?;
        out.push(render(&converted, options));
    }
    Ok(out.join("---\n"))
}

/// Convert one Deployment (as JSON) into a Rollout. `index` only labels errors.
pub fn convert_deployment(
    index: usize,
    value: &Value,
    options: &Options,
) -> Result<Converted, MigrateError> {
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    if kind != "Deployment" || api_version != "apps/v1" {
        return Err(MigrateError::NotADeployment {
            index,
            kind: if kind.is_empty() {
                "document without a kind".to_string()
            } else {
                kind.to_string()
            },
            api_version: if api_version.is_empty() {
                "no apiVersion".to_string()
            } else {
                api_version.to_string()
            },
        });
    }
    let raw_name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let invalid = |message: String| MigrateError::InvalidDeployment {
        index,
        name: raw_name.clone(),
        message,
    };
    if raw_name.is_empty() {
        return Err(invalid(
            "metadata.name is missing; a Rollout needs a name".to_string(),
        ));
    }
    let deployment: Deployment = serde_json::from_value(value.clone())
        .map_err(|e| invalid(format!("not a valid apps/v1 Deployment: {e}")))?;
    let spec = deployment
        .spec
        .ok_or_else(|| invalid("spec is missing".to_string()))?;

    let strategy_type = spec.strategy.as_ref().and_then(|s| s.type_.as_deref());
    match strategy_type {
        None | Some("RollingUpdate") => {}
        Some("Recreate") => {
            return Err(MigrateError::Recreate {
                index,
                name: raw_name,
            });
        }
        Some(other) => {
            return Err(invalid(format!(
                "spec.strategy.type {other:?} is neither RollingUpdate nor Recreate"
            )));
        }
    }
    if spec.template.metadata.is_none() && options.mode == Mode::Template {
        return Err(invalid(
            "spec.template.metadata.labels is missing; the pods need labels the selector matches"
                .to_string(),
        ));
    }

    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    match sluice_api::k8s::selector::matches(Some(&spec.selector), &labels) {
        Ok(true) => {}
        Ok(false) => {
            return Err(invalid(
                "spec.selector does not match spec.template.metadata.labels; fix the Deployment first"
                    .to_string(),
            ));
        }
        Err(e) => return Err(invalid(format!("spec.selector is invalid: {e}"))),
    }

    let mut dropped = dropped_fields(value, options.mode);
    let rolling = spec.strategy.and_then(|s| s.rolling_update);
    let strategy = match &options.blue_green {
        Some(services) => {
            if rolling.as_ref().is_some_and(|r| r.max_surge.is_some()) {
                dropped.push("spec.strategy.rollingUpdate.maxSurge".to_string());
                dropped.sort();
            }
            RolloutStrategy {
                blue_green: Some(BlueGreenStrategy {
                    active_service: services.active.clone(),
                    preview_service: services.preview.clone(),
                    max_unavailable: rolling.as_ref().and_then(|r| r.max_unavailable.clone()),
                    ..Default::default()
                }),
                canary: None,
            }
        }
        None => RolloutStrategy {
            canary: Some(CanaryStrategy {
                max_surge: rolling.as_ref().and_then(|r| r.max_surge.clone()),
                max_unavailable: rolling.as_ref().and_then(|r| r.max_unavailable.clone()),
                steps: (!options.steps.is_empty()).then(|| options.steps.clone()),
                ..Default::default()
            }),
            blue_green: None,
        },
    };

    let (template, workload_ref) = match options.mode {
        Mode::Template => {
            let mut template = spec.template;
            if let Some(meta) = template.metadata.as_mut() {
                // `kubectl get -o yaml` prints `creationTimestamp: null` here; it means nothing.
                meta.creation_timestamp = None;
            }
            (Some(template), None)
        }
        Mode::WorkloadRef => (
            None,
            Some(ObjectRef {
                api_version: Some("apps/v1".to_string()),
                kind: Some("Deployment".to_string()),
                name: Some(raw_name.clone()),
                scale_down: Some(options.scale_down.as_str().to_string()),
            }),
        ),
    };

    let meta = deployment.metadata;
    let annotations = meta.annotations.map(|mut a| {
        a.retain(|k, _| !DROPPED_ANNOTATIONS.contains(&k.as_str()));
        a
    });
    let metadata = ObjectMeta {
        name: Some(raw_name.clone()),
        namespace: meta.namespace,
        labels: meta.labels.filter(|l| !l.is_empty()),
        annotations: annotations.filter(|a| !a.is_empty()),
        ..Default::default()
    };

    let rollout = Rollout {
        metadata,
        spec: RolloutSpec {
            replicas: spec.replicas,
            selector: Some(spec.selector),
            template,
            workload_ref,
            min_ready_seconds: spec.min_ready_seconds,
            strategy: Some(strategy),
            revision_history_limit: spec.revision_history_limit,
            paused: spec.paused,
            progress_deadline_seconds: spec.progress_deadline_seconds,
            ..Default::default()
        },
        status: None,
    };
    Ok(Converted { rollout, dropped })
}

/// The input paths that do not reach the Rollout, sorted.
fn dropped_fields(value: &Value, mode: Mode) -> Vec<String> {
    let mut dropped = BTreeSet::new();
    if let Some(meta) = value.get("metadata").and_then(Value::as_object) {
        for (key, v) in meta {
            if !KEPT_METADATA.contains(&key.as_str()) && !v.is_null() {
                dropped.insert(format!("metadata.{key}"));
            }
        }
        if let Some(annotations) = meta.get("annotations").and_then(Value::as_object) {
            for key in annotations.keys() {
                if DROPPED_ANNOTATIONS.contains(&key.as_str()) {
                    dropped.insert(format!("metadata.annotations[{key}]"));
                }
            }
        }
    }
    if let Some(spec) = value.get("spec").and_then(Value::as_object) {
        for key in spec.keys() {
            if !MAPPED_SPEC.contains(&key.as_str()) {
                dropped.insert(format!("spec.{key}"));
            }
        }
        if mode == Mode::Template
            && spec
                .get("template")
                .and_then(|t| t.pointer("/metadata/creationTimestamp"))
                .is_some_and(|v| !v.is_null())
        {
            dropped.insert("spec.template.metadata.creationTimestamp".to_string());
        }
    }
    if value.get("status").is_some_and(|v| !v.is_null()) {
        dropped.insert("status".to_string());
    }
    dropped.into_iter().collect()
}

/// One Rollout as YAML with its explanatory comment.
fn render(converted: &Converted, options: &Options) -> String {
    let name = converted.rollout.metadata.name.as_deref().unwrap_or("");
    let mut out = String::new();
    let strategy = if options.blue_green.is_some() {
        " --strategy blue-green"
    } else {
        ""
    };
    match options.mode {
        Mode::Template => {
            out += &format!(
                "# Rollout converted by `sluice migrate --mode template{strategy}` from Deployment {name:?}.\n"
            )
        }
        Mode::WorkloadRef => {
            out += &format!(
                "# Rollout converted by `sluice migrate --mode workload-ref{strategy}` from Deployment {name:?}.\n\
                 # The pod template stays in the Deployment: keep editing it there. scaleDown: {}.\n",
                options.scale_down.as_str()
            );
        }
    }
    if let Some(services) = &options.blue_green {
        let names = match &services.preview {
            Some(preview) => format!("{} and {preview}", services.active),
            None => services.active.clone(),
        };
        out += &format!(
            "# Blue/green: the Services {names} must exist in the Rollout's namespace and select its\n\
             # pods; the Rollout adds rollouts-pod-template-hash to their selectors.\n"
        );
    }
    if !converted.dropped.is_empty() {
        out += "# Dropped (server-set or Deployment-only):\n";
        for path in &converted.dropped {
            out += &format!("#   {path}\n");
        }
    }
    let mut value = serde_json::to_value(&converted.rollout).expect("a Rollout serializes");
    if let Some(obj) = value.as_object_mut() {
        obj.remove("status");
    }
    out += &serde_yaml::to_string(&value).expect("JSON values render as YAML");
    out
}

/// Deserialize a YAML document into JSON; a tiny helper trait so the call reads naturally.
trait DeserializeYaml: Sized {
    fn deserialize_yaml(doc: serde_yaml::Deserializer<'_>) -> Result<Self, serde_yaml::Error>;
}

impl DeserializeYaml for Value {
    fn deserialize_yaml(doc: serde_yaml::Deserializer<'_>) -> Result<Self, serde_yaml::Error> {
        serde::Deserialize::deserialize(doc)
    }
}

/// Flags of `sluice migrate`.
#[derive(Debug, Args, Clone)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["filename", "from_cluster"]))]
pub struct MigrateArgs {
    /// Read Deployments from this YAML file (`-` for stdin); several documents are allowed.
    #[arg(short = 'f', long)]
    pub filename: Option<PathBuf>,
    /// Read the Deployment NAMESPACE/NAME from the cluster.
    #[arg(long, value_name = "NAMESPACE/NAME")]
    pub from_cluster: Option<String>,
    /// `template` embeds the pod template; `workload-ref` references the Deployment.
    #[arg(long, value_enum, default_value_t = Mode::Template)]
    pub mode: Mode,
    /// With `--mode workload-ref`: what happens to the Deployment's pods (default progressively).
    #[arg(long, value_enum)]
    pub scale_down: Option<ScaleDown>,
    /// Canary steps: weights 0-100, `pause`, `pause:DURATION`, comma separated; `none` for no
    /// steps [default: 20,pause,50,pause:60s]. Canary only.
    #[arg(long)]
    pub steps: Option<String>,
    /// `canary` (with `--steps`) or `blue-green` (with `--active-service`).
    #[arg(long, value_enum, default_value_t = StrategyKind::Canary)]
    pub strategy: StrategyKind,
    /// With `--strategy blue-green`: the Service production traffic goes through (required).
    #[arg(long, value_name = "SERVICE")]
    pub active_service: Option<String>,
    /// With `--strategy blue-green`: the Service of the new version before its promotion.
    #[arg(long, value_name = "SERVICE")]
    pub preview_service: Option<String>,
    #[command(flatten)]
    pub kube: super::KubeArgs,
}

/// `sluice migrate`: print the Rollouts for the given Deployments.
pub async fn run(args: &MigrateArgs) -> anyhow::Result<()> {
    if args.scale_down.is_some() && args.mode != Mode::WorkloadRef {
        anyhow::bail!("--scale-down only applies to --mode workload-ref");
    }
    let options = Options {
        mode: args.mode,
        scale_down: args.scale_down.unwrap_or(ScaleDown::Progressively),
        steps: parse_steps(args.steps.as_deref().unwrap_or(DEFAULT_STEPS))?,
        blue_green: blue_green_services(args)?,
    };
    let input = match (&args.filename, &args.from_cluster) {
        (Some(path), _) if path.as_os_str() == "-" => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading stdin")?;
            text
        }
        (Some(path), _) => {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
        }
        (None, Some(target)) => fetch_deployment(args, target).await?,
        (None, None) => anyhow::bail!("give -f FILE, -f - or --from-cluster NAMESPACE/NAME"),
    };
    print!("{}", convert(&input, &options)?);
    Ok(())
}

/// The blue/green Services of `--strategy blue-green`, and the flags that only go with one
/// strategy checked.
fn blue_green_services(args: &MigrateArgs) -> anyhow::Result<Option<BlueGreenServices>> {
    let named = |flag: &str, v: &Option<String>| -> anyhow::Result<Option<String>> {
        match v.as_deref().map(str::trim) {
            Some("") => anyhow::bail!("{flag} needs a Service name"),
            other => Ok(other.map(str::to_string)),
        }
    };
    let active = named("--active-service", &args.active_service)?;
    let preview = named("--preview-service", &args.preview_service)?;
    match args.strategy {
        StrategyKind::Canary => {
            if active.is_some() || preview.is_some() {
                anyhow::bail!(
                    "--active-service and --preview-service only apply to --strategy blue-green"
                );
            }
            Ok(None)
        }
        StrategyKind::BlueGreen => {
            if args.steps.is_some() {
                anyhow::bail!("--steps only applies to --strategy canary");
            }
            let Some(active) = active else {
                anyhow::bail!(
                    "--strategy blue-green needs --active-service SERVICE (the Service production traffic goes through)"
                );
            };
            if preview.as_deref() == Some(active.as_str()) {
                anyhow::bail!(
                    "--preview-service must differ from --active-service: a blue/green Rollout switches two Services"
                );
            }
            Ok(Some(BlueGreenServices { active, preview }))
        }
    }
}

async fn fetch_deployment(args: &MigrateArgs, target: &str) -> anyhow::Result<String> {
    let (namespace, name) = match target.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => (ns, name),
        _ => anyhow::bail!("--from-cluster takes NAMESPACE/NAME, got {target:?}"),
    };
    let (client, _) = sluice_controller::client::connect(
        args.kube.kubeconfig.as_deref(),
        args.kube.context.as_deref(),
    )
    .await?;
    let api: kube::Api<Deployment> = kube::Api::namespaced(client, namespace);
    let deployment = api
        .get_opt(name)
        .await
        .with_context(|| format!("reading deployment {namespace}/{name}"))?
        .ok_or_else(|| {
            anyhow::anyhow!("deployment \"{name}\" not found in namespace {namespace}")
        })?;
    let mut value = serde_json::to_value(&deployment)?;
    // The typed client leaves these out of the object; the conversion checks them.
    value["apiVersion"] = Value::from("apps/v1");
    value["kind"] = Value::from("Deployment");
    Ok(serde_json::to_string(&value)?)
}

#[cfg(test)]
mod tests;
