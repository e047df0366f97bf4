//! Which failure a simulated container has, and why.
//!
//! Failures are chosen without touching the workload's manifest (so the pod template and its
//! hash stay what the user wrote) by **cluster configuration**: rules that match a
//! container's image or command with a glob (`*` any run of characters, `?` one character).
//! `sluice cluster --simulate FILE` reads them from a YAML file:
//!
//! ```yaml
//! failures:
//! - image: "*:does-not-exist"   # ErrImagePull, then ImagePullBackOff
//!   simulate: image-pull-error
//! - command: "*/bin/migrate*"   # RunContainerError, then CrashLoopBackOff
//!   simulate: command-not-found
//! - image: "shop:v2"            # ready 20 s later than usual
//!   simulate: slow-start
//!   after: 20s
//! - image: "shop:v3"            # runs 30 s, exits 1, restarts with back-off
//!   simulate: crash-after
//!   after: 30s
//! ```
//!
//! The same rules can live in the cluster, changed while it runs: the ConfigMap
//! `kube-system/sluice-simulation`, key `failures.yaml`, in the same format. Its rules come
//! first, then the file's; a change applies to every Pod at once (Pods already running keep
//! what they had only where the new behaviour would not change them). A ConfigMap that does not
//! parse is ignored as a whole, with a warning in the cluster's log naming the rule and field.
//!
//! The older conventions keep working and win over the rules: the Pod annotation
//! `sluice.dev/simulate: <behaviour>` (every container of the Pod) and an image tag that names
//! a behaviour (`app:never-ready`, `app:crash-loop`).

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use serde::Deserialize;

/// What a container does instead of starting normally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Runs, never Ready.
    NeverReady,
    /// Crashes as soon as it starts, restarted with back-off (`CrashLoopBackOff`).
    CrashLoop,
    /// The image cannot be pulled: `ErrImagePull`, then `ImagePullBackOff`; never runs.
    ImagePullError,
    /// The command is not in the image: `RunContainerError`, then `CrashLoopBackOff`.
    CommandNotFound,
    /// Starts, but its application is up only this long after the usual ready delay.
    SlowStart(Duration),
    /// Runs this long, then exits with code 1 and is restarted with back-off.
    CrashAfter(Duration),
}

impl Behaviour {
    /// The behaviour an annotation value or image tag names (those carry no duration).
    pub fn named(name: &str) -> Option<Behaviour> {
        Some(match name {
            "never-ready" => Behaviour::NeverReady,
            "crash-loop" => Behaviour::CrashLoop,
            "image-pull-error" => Behaviour::ImagePullError,
            "command-not-found" => Behaviour::CommandNotFound,
            _ => return None,
        })
    }
}

/// One rule of the cluster's configuration, as written in the file.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    image: Option<String>,
    command: Option<String>,
    simulate: String,
    /// A number of seconds or a Go duration.
    after: Option<serde_yaml::Value>,
}

/// A rule: a container whose image (and/or `command` + `args`, joined by spaces) matches
/// gets the behaviour. Both patterns must match when both are given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub image: Option<String>,
    pub command: Option<String>,
    pub behaviour: Behaviour,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    failures: Vec<RuleSpec>,
}

fn parse_after(rule: usize, after: Option<&serde_yaml::Value>) -> Result<Duration, String> {
    let text = match after {
        Some(serde_yaml::Value::String(s)) => Some(s.clone()),
        Some(serde_yaml::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let Some(text) = text else {
        return Err(format!(
            "failures[{rule}].after: required for this behaviour"
        ));
    };
    sluice_api::k8s::duration::parse_seconds_or_duration(&text).map_err(|_| {
        format!("failures[{rule}].after: `{text}` is not a duration (for example 30s or 2m)")
    })
}

/// Reads the rules of a simulation file; the error names the rule and field.
pub fn parse_rules(yaml: &str) -> Result<Vec<Rule>, String> {
    let file: File = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
    file.failures
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            if r.image.is_none() && r.command.is_none() {
                return Err(format!(
                    "failures[{i}]: give `image` or `command` (a glob) to say which containers fail"
                ));
            }
            let behaviour = match r.simulate.as_str() {
                "slow-start" => Behaviour::SlowStart(parse_after(i, r.after.as_ref())?),
                "crash-after" => Behaviour::CrashAfter(parse_after(i, r.after.as_ref())?),
                other => Behaviour::named(other).ok_or_else(|| {
                    format!(
                        "failures[{i}].simulate: `{other}` is not one of image-pull-error, \
                         command-not-found, slow-start, crash-after, never-ready, crash-loop"
                    )
                })?,
            };
            Ok(Rule {
                image: r.image,
                command: r.command,
                behaviour,
            })
        })
        .collect()
}

/// Where the cluster's own failure rules live: `kube-system/sluice-simulation`, key
/// `failures.yaml`.
pub const CONFIG_MAP_NAMESPACE: &str = "kube-system";
pub const CONFIG_MAP_NAME: &str = "sluice-simulation";
pub const CONFIG_MAP_KEY: &str = "failures.yaml";

/// The rules of the simulation ConfigMap, `Ok(empty)` when it has no such key.
pub fn rules_of_config_map(
    cm: &k8s_openapi::api::core::v1::ConfigMap,
) -> Result<Vec<Rule>, String> {
    match cm.data.as_ref().and_then(|d| d.get(CONFIG_MAP_KEY)) {
        None => Ok(Vec::new()),
        Some(text) => parse_rules(text),
    }
}

/// Glob match: `*` any run of characters (also none), `?` exactly one.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn image_tag(image: &str) -> &str {
    let last = image.rsplit('/').next().unwrap_or(image);
    let last = last.split('@').next().unwrap_or(last);
    last.split_once(':').map(|(_, tag)| tag).unwrap_or("")
}

/// The behaviour of one container: the Pod's annotation, else its image tag, else the first
/// matching rule; `None` when it starts normally.
pub fn behaviour_of(
    pod: &Pod,
    c: &Container,
    annotation: &str,
    rules: &[Rule],
) -> Option<Behaviour> {
    let annotated = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(annotation))
        .and_then(|v| Behaviour::named(v));
    let image = c.image.as_deref().unwrap_or("");
    annotated
        .or_else(|| Behaviour::named(image_tag(image)))
        .or_else(|| {
            let command: Vec<&str> = c
                .command
                .iter()
                .flatten()
                .chain(c.args.iter().flatten())
                .map(String::as_str)
                .collect();
            let command = command.join(" ");
            rules
                .iter()
                .find(|r| {
                    r.image.as_deref().is_none_or(|p| glob(p, image))
                        && r.command.as_deref().is_none_or(|p| glob(p, &command))
                })
                .map(|r| r.behaviour)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn image_tags_are_read_past_registry_ports_and_digests() {
        assert_eq!(image_tag("registry:5000/app:crash-loop"), "crash-loop");
        assert_eq!(image_tag("registry:5000/app"), "");
        assert_eq!(image_tag("app:v1@sha256:abc"), "v1");
    }

    #[test]
    fn globs_golden_table() {
        let cases = [
            ("*:does-not-exist", "nginx:does-not-exist", true),
            ("*:does-not-exist", "nginx:1.27", false),
            ("nginx:1.2?", "nginx:1.27", true),
            ("nginx:1.2?", "nginx:1.2", false),
            ("*", "", true),
            ("", "", true),
            ("", "x", false),
            ("*/bin/migrate*", "sh -c /app/bin/migrate --all", true),
            ("*/bin/migrate*", "/app/migrate --all", false),
            ("*/bin/migrate*", "/app/bin/migrate --all", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("registry:5000/*", "registry:5000/app:v1", true),
        ];
        for (p, t, want) in cases {
            assert_eq!(glob(p, t), want, "{p:?} ~ {t:?}");
        }
    }

    #[test]
    fn rules_are_read_with_errors_naming_the_field() {
        let rules = parse_rules(
            "failures:\n- {image: '*:missing', simulate: image-pull-error}\n- {command: 'migrate*', simulate: crash-after, after: 30s}\n- {image: 'slow:*', simulate: slow-start, after: 1m}\n",
        )
        .unwrap();
        assert_eq!(rules[0].behaviour, Behaviour::ImagePullError);
        assert_eq!(
            rules[1].behaviour,
            Behaviour::CrashAfter(Duration::from_secs(30))
        );
        assert_eq!(
            rules[2].behaviour,
            Behaviour::SlowStart(Duration::from_secs(60))
        );
        let errors = [
            ("failures:\n- {simulate: crash-loop}\n", "failures[0]: give"),
            (
                "failures:\n- {image: x, simulate: explode}\n",
                "failures[0].simulate: `explode`",
            ),
            (
                "failures:\n- {image: x, simulate: crash-after}\n",
                "failures[0].after: required",
            ),
            (
                "failures:\n- {image: x, simulate: slow-start, after: soon}\n",
                "failures[0].after: `soon`",
            ),
            ("failures:\n- {image: x, simulat: crash-loop}\n", "simulat"),
        ];
        for (yaml, want) in errors {
            let e = parse_rules(yaml).unwrap_err();
            assert!(e.contains(want), "{yaml}: {e}");
        }
    }

    #[test]
    fn annotation_then_tag_then_first_matching_rule() {
        let pod = |annotation: Option<&str>| Pod {
            metadata: ObjectMeta {
                annotations: annotation.map(|a| [("sim".to_string(), a.to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let c = |image: &str, command: &[&str]| Container {
            name: "c".into(),
            image: Some(image.into()),
            command: Some(command.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        };
        let rules = parse_rules(
            "failures:\n- {image: 'shop:*', command: 'serve*', simulate: command-not-found}\n- {image: 'shop:*', simulate: image-pull-error}\n",
        )
        .unwrap();
        let cases = [
            (
                None,
                c("shop:v2", &["serve"]),
                Some(Behaviour::CommandNotFound),
            ),
            (
                None,
                c("shop:v2", &["run"]),
                Some(Behaviour::ImagePullError),
            ),
            (None, c("other:v2", &["serve"]), None),
            (None, c("shop:crash-loop", &[]), Some(Behaviour::CrashLoop)),
            (
                Some("never-ready"),
                c("shop:v2", &["serve"]),
                Some(Behaviour::NeverReady),
            ),
            (Some("unknown"), c("other:v1", &[]), None),
        ];
        for (annotation, container, want) in cases {
            assert_eq!(
                behaviour_of(&pod(annotation), &container, "sim", &rules),
                want,
                "{annotation:?} {:?}",
                container.image
            );
        }
    }
}
