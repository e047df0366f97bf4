//! `set image NAME CONTAINER=IMAGE`: change a container's image in the Rollout's template
//! (or in the Deployment a `workloadRef` Rollout takes it from), as upstream does: read,
//! change, write back with the read resourceVersion, again on a conflict.

use kube::api::{Api, DynamicObject, PostParams};
use serde_json::Value;

use super::rollouts;
use crate::error::{Error, kind};

/// How often a write that raced another writer is tried again (upstream's number).
const ATTEMPTS: usize = 5;

/// Set `image` on the container named `container` (`*`: every container) among the
/// init, regular and ephemeral containers of the pod spec at `spec` (pure). Fails naming the
/// containers there are when none matches.
pub fn set_in_pod_spec(spec: &mut Value, container: &str, image: &str) -> Result<(), String> {
    let mut names = Vec::new();
    let mut found = false;
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for c in spec
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let name = c["name"].as_str().unwrap_or_default().to_string();
            if container == "*" || name == container {
                c["image"] = Value::String(image.to_string());
                found = true;
            }
            names.push(name);
        }
    }
    if found {
        Ok(())
    } else {
        Err(format!(
            "has no container {container:?} (containers: {})",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        ))
    }
}

/// Parse `CONTAINER=IMAGE`.
pub fn parse_assignment(arg: &str) -> Result<(&str, &str), String> {
    match arg.split_once('=') {
        Some((c, i)) if !c.is_empty() && !i.is_empty() && !i.contains('=') => Ok((c, i)),
        _ => Err(format!(
            "{arg:?} is not CONTAINER=IMAGE (for example web=nginx:1.27, or *=nginx:1.27 for every container)"
        )),
    }
}

/// `set image NAME CONTAINER=IMAGE`.
pub async fn run(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    container: &str,
    image: &str,
) -> Result<String, Error> {
    let rollout_api = rollouts(client, namespace);
    let ro = rollout_api
        .get(name)
        .await
        .map_err(|e| Error::from_kube(e, "get", kind::ROLLOUT, namespace, name))?;
    let workload = ro.data["spec"]["workloadRef"].clone();
    let (api, what, target) = if workload.is_object() {
        if workload["kind"] != "Deployment" {
            return Err(Error::Refused {
                kind: kind::ROLLOUT,
                name: name.to_string(),
                reason: format!(
                    "takes its template from a {}: set the image there",
                    workload["kind"].as_str().unwrap_or("workload")
                ),
            });
        }
        let resource = kube::api::ApiResource::erase::<k8s_openapi::api::apps::v1::Deployment>(&());
        let target = workload["name"].as_str().unwrap_or_default().to_string();
        (
            Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &resource),
            kind::DEPLOYMENT,
            target,
        )
    } else {
        (rollout_api, kind::ROLLOUT, name.to_string())
    };
    for attempt in 1..=ATTEMPTS {
        let mut obj = api
            .get(&target)
            .await
            .map_err(|e| Error::from_kube(e, "get", what, namespace, &target))?;
        let spec = &mut obj.data["spec"]["template"]["spec"];
        set_in_pod_spec(spec, container, image).map_err(|reason| Error::Refused {
            kind: what,
            name: target.clone(),
            reason,
        })?;
        match api.replace(&target, &PostParams::default(), &obj).await {
            Ok(_) => return Ok(format!("{what} \"{target}\" image updated")),
            Err(e) if Error::is_conflict(&e) && attempt < ATTEMPTS => continue,
            Err(e) => return Err(Error::from_kube(e, "update", what, namespace, &target)),
        }
    }
    unreachable!("the last attempt returns")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_image_changes_the_named_container_only() {
        let mut spec = json!({"containers": [{"name": "web", "image": "a"}, {"name": "side", "image": "b"}],
                              "initContainers": [{"name": "init", "image": "c"}]});
        set_in_pod_spec(&mut spec, "web", "nginx:1.27").unwrap();
        assert_eq!(spec["containers"][0]["image"], "nginx:1.27");
        assert_eq!(spec["containers"][1]["image"], "b");
        set_in_pod_spec(&mut spec, "*", "z").unwrap();
        assert_eq!(spec["initContainers"][0]["image"], "z");
    }

    #[test]
    fn an_unknown_container_is_refused_naming_the_ones_there_are() {
        let mut spec = json!({"containers": [{"name": "web", "image": "a"}]});
        assert_eq!(
            set_in_pod_spec(&mut spec, "api", "x"),
            Err("has no container \"api\" (containers: web)".to_string())
        );
        assert_eq!(spec["containers"][0]["image"], "a", "nothing changed");
    }

    #[test]
    fn the_assignment_is_container_equals_image() {
        assert_eq!(parse_assignment("web=nginx:1"), Ok(("web", "nginx:1")));
        for bad in ["web", "=x", "web=", "a=b=c"] {
            assert!(parse_assignment(bad).is_err(), "{bad}");
        }
    }
}
