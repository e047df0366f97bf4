//! The bad-input catalogue (`e2e/catalogue/*.yaml`): every malformed or contradictory object
//! ends in InvalidSpec/Error with a message naming the field — or is refused by the API
//! server's schema — and the controller writes nothing but status, Events and its Lease while
//! it holds one: no ReplicaSet, Service, Deployment, Pod, Job, AnalysisRun, Experiment or
//! traffic route is created, changed or deleted.
//!
//! One embedded cluster and one in-process controller whose client records every request it
//! sends (`method`, `path`), so the writes are counted per namespace: each entry runs in its
//! own namespace, all at once.
//!
//! An entry:
//!
//! ```yaml
//! - name: both-strategies          # also the namespace suffix
//!   why: upstream's InvalidStrategyMessage
//!   objects: []                    # created first, in order (Services, templates, ...)
//!   rollout:                       # a JSON merge patch over `base_rollout()`; optional
//!     spec: {strategy: {blueGreen: {activeService: web-active}}}
//!   subject: {kind: AnalysisRun, name: x}   # when the subject is one of `objects`
//!   expect:
//!     message: "spec.strategy: Multiple Strategies can not be listed"
//!     # or: schema: "<substring of the API server's refusal>"
//! ```
//!
//! An entry with `edit` first creates its Rollout valid, waits until it is Healthy, then
//! applies `edit` (a merge patch, as `kubectl patch --type=merge` would): the mistake made on
//! a live Rollout. Its writes are counted from the edit on, and its stable ReplicaSet must
//! still have every replica, all available, at the end.
//!
//! A Rollout subject must reach phase Degraded with an `InvalidSpec` condition whose message
//! holds `message`; an AnalysisRun phase Error with a status message holding it; an Experiment
//! phase Error with an `InvalidSpec` condition (or status message) holding it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_cluster::{ClusterConfig, EmbeddedCluster, workloads};

/// Every entry together must settle within this (all run at once).
const SETTLE: Duration = Duration::from_secs(180);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    #[serde(default)]
    why: String,
    #[serde(default)]
    objects: Vec<Value>,
    rollout: Option<Value>,
    /// A merge patch applied to the Rollout once it is Healthy: a user's mistake on a live
    /// Rollout. The stable ReplicaSet must keep every replica, and nothing but status may be
    /// written after the edit.
    edit: Option<Value>,
    /// Steps put before the Rollout's own (huge step lists without a huge file).
    prepend_steps: Option<Repeat>,
    subject: Option<Subject>,
    expect: Expect,
    /// Filled in by `load`: the file the entry came from.
    #[serde(skip)]
    file: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Repeat {
    times: usize,
    step: Value,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Subject {
    kind: String,
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    message: Option<String>,
    schema: Option<String>,
}

fn base_rollout() -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}
            },
            "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}}
        }
    })
}

/// RFC 7386 JSON merge patch: objects merge key by key, `null` removes, anything else
/// replaces (arrays whole).
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let map = target.as_object_mut().expect("an object");
    for (key, value) in patch {
        if value.is_null() {
            map.remove(key);
        } else {
            merge(map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

#[test]
fn merge_follows_rfc_7386() {
    let mut v = json!({"a": {"b": 1, "c": 2}, "d": [1, 2]});
    merge(&mut v, &json!({"a": {"b": null, "e": 3}, "d": [3]}));
    assert_eq!(v, json!({"a": {"c": 2, "e": 3}, "d": [3]}));
}

fn catalogue_dir() -> std::path::PathBuf {
    super::harness::repo_root().join("e2e/catalogue")
}

fn load() -> Vec<Entry> {
    let mut files: Vec<_> = std::fs::read_dir(catalogue_dir())
        .expect("e2e/catalogue exists")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut entries = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("readable catalogue file");
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let list: Vec<Entry> =
            serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("e2e/catalogue/{file}: {e}"));
        for mut entry in list {
            entry.file = file.clone();
            entries.push(entry);
        }
    }
    entries
}

impl Entry {
    fn namespace(&self) -> String {
        format!("cat-{}", self.name)
    }

    /// The objects to create, in order: `objects`, then the Rollout (if any).
    fn manifests(&self) -> Vec<Value> {
        let mut out = self.objects.clone();
        if let Some(patch) = &self.rollout {
            let mut ro = base_rollout();
            merge(&mut ro, patch);
            if let Some(repeat) = &self.prepend_steps {
                let steps = &mut ro["spec"]["strategy"]["canary"]["steps"];
                let own = steps.as_array().cloned().unwrap_or_default();
                let mut all = vec![repeat.step.clone(); repeat.times];
                all.extend(own);
                *steps = Value::Array(all);
            }
            out.push(ro);
        }
        out
    }

    fn subject(&self) -> Subject {
        if let Some(s) = &self.subject {
            return s.clone();
        }
        let ro = self.manifests().pop().expect("an entry has an object");
        Subject {
            kind: ro["kind"].as_str().unwrap_or_default().to_string(),
            name: ro["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        }
    }

    /// What the entry's subject counts as in the summary.
    fn kind_label(&self) -> String {
        let subject = self.subject().kind;
        if self.edit.is_some() {
            return format!("{subject} (edit of a live one)");
        }
        // A template is judged through the Rollout or AnalysisRun that uses it.
        let template = self
            .objects
            .iter()
            .any(|o| o["kind"] == "AnalysisTemplate" || o["kind"] == "ClusterAnalysisTemplate");
        if template && self.expect.schema.is_none() {
            format!("AnalysisTemplate (through {subject})")
        } else {
            subject
        }
    }
}

#[test]
fn the_catalogue_is_well_formed() {
    let entries = load();
    assert!(entries.len() >= 40, "{} entries", entries.len());
    let mut names = std::collections::BTreeSet::new();
    for e in &entries {
        assert!(names.insert(e.name.clone()), "duplicate entry {}", e.name);
        assert!(
            e.expect.message.is_some() != e.expect.schema.is_some(),
            "{}: expect exactly one of message and schema",
            e.name
        );
        assert!(
            e.namespace().len() <= 63
                && e.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{}: the name is a namespace suffix",
            e.name
        );
        assert!(!e.manifests().is_empty(), "{}: nothing to create", e.name);
        if let Some(m) = &e.expect.message {
            assert!(
                // Upstream's own strings name an argument or the metrics list.
                [
                    "spec.",
                    "metrics[",
                    "templates[",
                    "dryRun[",
                    "argument \"",
                    "no metrics"
                ]
                .iter()
                .any(|f| m.contains(f)),
                "{}: the expected message names no field: {m}",
                e.name
            );
        }
    }
}

fn api_resource(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let plural = match kind {
        "Ingress" => "ingresses".to_string(),
        other => format!("{}s", other.to_ascii_lowercase()),
    };
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), &plural)
}

fn api_for(client: &kube::Client, ns: &str, api_version: &str, kind: &str) -> Api<DynamicObject> {
    let ar = api_resource(api_version, kind);
    if kind == "ClusterAnalysisTemplate" {
        Api::all_with(client.clone(), &ar)
    } else {
        Api::namespaced_with(client.clone(), ns, &ar)
    }
}

fn kind_api_version(kind: &str) -> &'static str {
    match kind {
        "Rollout" | "AnalysisRun" | "Experiment" | "AnalysisTemplate" => "argoproj.io/v1alpha1",
        other => panic!("no subject kind {other}"),
    }
}

/// The verdict on one subject, or `None` while it has not settled.
fn judge(entry: &Entry, subject: &Value) -> Option<Result<String, String>> {
    let want = entry.expect.message.as_deref().expect("a message entry");
    let status = &subject["status"];
    let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
    let invalid_spec = conditions
        .iter()
        .find(|c| c["type"] == "InvalidSpec" && c["status"] == "True")
        .and_then(|c| c["message"].as_str())
        .map(str::to_string);
    let phase = status["phase"].as_str().unwrap_or_default();
    let message = status["message"].as_str().unwrap_or_default().to_string();
    match subject["kind"].as_str().unwrap_or_default() {
        "Rollout" => {
            let observed = status["observedGeneration"].as_str()
                == Some(&subject["metadata"]["generation"].to_string());
            if !observed || phase.is_empty() {
                return None;
            }
            match invalid_spec {
                Some(m) if phase == "Degraded" && message.starts_with("InvalidSpec: ") => {
                    Some(if m.contains(want) { Ok(m) } else { Err(m) })
                }
                _ if phase == "Degraded" || phase == "Healthy" || phase == "Paused" => {
                    // Settled on something other than InvalidSpec.
                    Some(Err(format!("phase {phase}: {message}")))
                }
                _ => None,
            }
        }
        "AnalysisRun" => match phase {
            "Error" => Some(if message.contains(want) {
                Ok(message)
            } else {
                Err(message)
            }),
            "" | "Pending" | "Running" => None,
            other => Some(Err(format!("phase {other}: {message}"))),
        },
        "Experiment" => match phase {
            "Error" | "Failed" => {
                let m = invalid_spec.unwrap_or(message);
                Some(if phase == "Error" && m.contains(want) {
                    Ok(m)
                } else {
                    Err(format!("phase {phase}: {m}"))
                })
            }
            "" | "Pending" => None,
            other => Some(Err(format!("phase {other}: {message}"))),
        },
        other => Some(Err(format!("no verdict for kind {other}"))),
    }
}

/// Writes the controller may make to a namespace holding only bad input: the status of the
/// objects it reconciles (Rollout, AnalysisRun, Experiment — the latter two are written on
/// the main resource), Events.
fn allowed_write(method: &str, resource: &str) -> bool {
    match resource {
        "rollouts" | "rollouts/status" => method == "PATCH" || method == "PUT",
        "analysisruns" | "analysisruns/status" | "experiments" | "experiments/status" => {
            method == "PATCH" || method == "PUT"
        }
        "events" => method == "POST" || method == "PATCH",
        _ => false,
    }
}

/// (namespace, resource-with-subresource) of a request path; `None` for cluster-scoped paths.
fn namespaced_resource(path_and_query: &str) -> Option<(String, String)> {
    let path = path_and_query.split('?').next().unwrap_or_default();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match parts.first() {
        Some(&"api") => parts.get(2..)?,
        Some(&"apis") => parts.get(3..)?,
        _ => return None,
    };
    if rest.len() < 3 || rest[0] != "namespaces" {
        return None;
    }
    let resource = rest[2].to_string();
    Some(match rest.get(4) {
        Some(sub) => (rest[1].to_string(), format!("{resource}/{sub}")),
        None => (rest[1].to_string(), resource),
    })
}

#[test]
fn request_paths_name_namespace_and_resource() {
    let s = |a: &str, b: &str| Some((a.to_string(), b.to_string()));
    assert_eq!(
        namespaced_resource("/apis/apps/v1/namespaces/cat-x/replicasets"),
        s("cat-x", "replicasets")
    );
    assert_eq!(
        namespaced_resource("/apis/argoproj.io/v1alpha1/namespaces/n/rollouts/web/status?x=1"),
        s("n", "rollouts/status")
    );
    assert_eq!(
        namespaced_resource("/api/v1/namespaces/n/services/web"),
        s("n", "services")
    );
    assert_eq!(namespaced_resource("/apis/apps/v1/replicasets"), None);
    assert!(allowed_write("PATCH", "rollouts/status"));
    assert!(!allowed_write("POST", "replicasets"));
    assert!(!allowed_write("PATCH", "services"));
    assert!(!allowed_write("POST", "analysisruns"));
    assert!(!allowed_write("DELETE", "deployments"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_catalogue_entry_is_refused_naming_the_field_and_writes_nothing() {
    let entries = load();
    let cluster = EmbeddedCluster::start(ClusterConfig {
        port: 0,
        workloads: Some(workloads::Config {
            pod_ready_delay: Duration::from_millis(100),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .expect("embedded cluster");
    let admin = cluster.client();
    sluice_controller::crds::install(&admin)
        .await
        .expect("CRDs");
    // The route kinds some entries name (the shared third-party CRDs; missing ones fail).
    for crd in ["gateway-api-v1.6.1", "smi"] {
        let dir = super::harness::repo_root().join("../shared/crds").join(crd);
        assert!(
            dir.is_dir(),
            "the third-party CRDs are missing: {}",
            dir.display()
        );
        install_crds_from(&admin, &dir).await;
    }

    // The controller's client records (method, path) of every request it sends.
    let controller = crate::harness::RecordedController::start(cluster.addr());

    // Create every entry's objects; the schema refusals are judged here.
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(admin.clone());
    let mut verdicts: BTreeMap<String, Result<String, String>> = BTreeMap::new();
    for entry in &entries {
        let ns = entry.namespace();
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
            )
            .await
            .unwrap_or_else(|e| panic!("namespace {ns}: {e}"));
        let manifests = entry.manifests();
        let last = manifests.len() - 1;
        for (i, manifest) in manifests.into_iter().enumerate() {
            let api = api_for(
                &admin,
                &ns,
                manifest["apiVersion"].as_str().unwrap_or_default(),
                manifest["kind"].as_str().unwrap_or_default(),
            );
            let object: DynamicObject = serde_json::from_value(manifest.clone())
                .unwrap_or_else(|e| panic!("{}: object {i}: {e}", entry.name));
            let created = api.create(&PostParams::default(), &object).await;
            match (&entry.expect.schema, created) {
                (Some(want), Err(e)) if i == last => {
                    let text = e.to_string();
                    verdicts.insert(
                        entry.name.clone(),
                        if text.contains(want.as_str()) {
                            Ok(format!("rejected by the API server's schema: {text}"))
                        } else {
                            Err(format!("refused, but not with {want:?}: {text}"))
                        },
                    );
                }
                (Some(_), Ok(_)) if i == last => {
                    verdicts.insert(
                        entry.name.clone(),
                        Err("the API server accepted it; the schema should refuse it".into()),
                    );
                }
                (None, Err(e)) if i == last => {
                    verdicts.insert(
                        entry.name.clone(),
                        Err(format!(
                            "the API server refused it (list it as schema): {e}"
                        )),
                    );
                }
                (_, Err(e)) => panic!(
                    "{} ({}): creating {} {}: {e}",
                    entry.name, entry.file, manifest["kind"], manifest["metadata"]["name"]
                ),
                (_, Ok(_)) => {}
            }
        }
    }

    // The live-Rollout mistakes: wait until each is Healthy, then edit it.
    let rollouts_api = |ns: &str| api_for(&admin, ns, "argoproj.io/v1alpha1", "Rollout");
    let mut edited_at: BTreeMap<String, usize> = BTreeMap::new();
    let mut stable_of: BTreeMap<String, String> = BTreeMap::new();
    let deadline = Instant::now() + SETTLE;
    for entry in entries.iter().filter(|e| e.edit.is_some()) {
        let api = rollouts_api(&entry.namespace());
        let stable = loop {
            let ro = serde_json::to_value(api.get("web").await.unwrap()).unwrap();
            let observed = ro["status"]["observedGeneration"].as_str()
                == Some(&ro["metadata"]["generation"].to_string());
            if observed && ro["status"]["phase"] == "Healthy" {
                break ro["status"]["stableRS"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
            }
            assert!(
                Instant::now() < deadline,
                "{}: the Rollout never became Healthy before the edit: {ro:#}",
                entry.name
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        edited_at.insert(entry.name.clone(), controller.sent());
        stable_of.insert(entry.name.clone(), stable);
        api.patch(
            "web",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(entry.edit.as_ref().unwrap()),
        )
        .await
        .unwrap_or_else(|e| panic!("{}: the edit: {e}", entry.name));
    }

    // Wait until every other entry's subject settles (one bounded loop for all of them).
    loop {
        for entry in entries.iter().filter(|e| e.expect.schema.is_none()) {
            if verdicts.get(&entry.name).is_some_and(Result::is_ok) {
                continue;
            }
            let subject = entry.subject();
            let api = api_for(
                &admin,
                &entry.namespace(),
                kind_api_version(&subject.kind),
                &subject.kind,
            );
            let Ok(object) = api.get(&subject.name).await else {
                continue;
            };
            let value = serde_json::to_value(object).unwrap();
            if let Some(verdict) = judge(entry, &value) {
                verdicts.insert(entry.name.clone(), verdict);
            }
        }
        let settled = entries
            .iter()
            .all(|e| verdicts.get(&e.name).is_some_and(Result::is_ok));
        if settled || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The stable ReplicaSet of every edited Rollout still runs every replica.
    let mut stable_failures = Vec::new();
    for (name, hash) in &stable_of {
        let ns = format!("cat-{name}");
        let sets: Api<k8s_openapi::api::apps::v1::ReplicaSet> = Api::namespaced(admin.clone(), &ns);
        let rs = sets.get(&format!("web-{hash}")).await;
        let counts = rs.as_ref().ok().map(|rs| {
            (
                rs.spec.as_ref().and_then(|s| s.replicas),
                rs.status.as_ref().and_then(|s| s.available_replicas),
            )
        });
        if counts != Some((Some(3), Some(3))) {
            stable_failures.push(format!(
                "{name}: the stable ReplicaSet web-{hash} lost replicas: (spec, available) = {counts:?}"
            ));
        }
    }

    let calls = controller.stop().await;
    cluster.shutdown().await;

    // Every write the controller made into a catalogue namespace.
    let mut writes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let since: BTreeMap<String, usize> = edited_at
        .iter()
        .map(|(name, i)| (format!("cat-{name}"), *i))
        .collect();
    for (i, (method, path)) in calls.iter().enumerate() {
        if method == "GET" {
            continue;
        }
        let Some((ns, resource)) = namespaced_resource(path) else {
            continue;
        };
        if since.get(&ns).is_some_and(|edit| i < *edit) {
            // Before a live Rollout's edit: its ordinary rollout.
            continue;
        }
        if !allowed_write(method, &resource) {
            writes
                .entry(ns)
                .or_default()
                .push(format!("{method} {path}"));
        }
    }

    let mut failures = stable_failures;
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for entry in &entries {
        let label = if entry.expect.schema.is_some() {
            format!("{} (schema)", entry.subject().kind)
        } else {
            entry.kind_label()
        };
        *by_kind.entry(label).or_default() += 1;
        match verdicts.get(&entry.name) {
            Some(Ok(m)) => println!("ok    {:<40} {}", entry.name, m),
            Some(Err(m)) => failures.push(format!(
                "{} ({}; {}): want {:?}, got {m}",
                entry.name, entry.file, entry.why, entry.expect
            )),
            None => failures.push(format!(
                "{} ({}): never settled within {SETTLE:?}",
                entry.name, entry.file
            )),
        }
        if let Some(w) = writes.get(&entry.namespace()) {
            failures.push(format!(
                "{}: the controller wrote outside status: {w:#?}",
                entry.name
            ));
        }
    }
    println!("catalogue: {} entries, by kind: {by_kind:?}", entries.len());
    assert!(
        calls
            .iter()
            .any(|(m, p)| m == "PATCH" && p.contains("/rollouts/")),
        "the controller wrote Rollout statuses: the recorder saw its calls"
    );
    assert!(
        failures.is_empty(),
        "{} of {} catalogue entries failed:\n{}",
        failures.len(),
        entries.len(),
        failures.join("\n")
    );
}

/// Apply every CRD manifest in `dir` (the foreign route kinds some entries name).
async fn install_crds_from(client: &kube::Client, dir: &std::path::Path) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Patch, PatchParams};
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let Ok(value) = Value::deserialize(doc) else {
                continue;
            };
            if value["kind"] != "CustomResourceDefinition" {
                continue;
            }
            let name = value["metadata"]["name"].as_str().unwrap().to_string();
            crds.patch(
                &name,
                &PatchParams::apply("catalogue").force(),
                &Patch::Apply(&value),
            )
            .await
            .unwrap_or_else(|e| panic!("CRD {name} from {}: {e}", path.display()));
        }
    }
}
