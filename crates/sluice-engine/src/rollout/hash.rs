//! The step hash, and semantic template equality.
//!
//! The pod-template hash that names a Rollout's ReplicaSets (`<rollout>-<hash>`) is
//! Kubernetes' rule and lives in `sluice_api::k8s::hash`. Its serialization is not
//! byte-identical to upstream's, which is why ReplicaSets made by another controller are
//! matched by [`templates_semantically_equal`] as well.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::{Map, Value};

use sluice_api::common::{POD_TEMPLATE_HASH_LABEL, PodTemplateMetadata};
use sluice_api::k8s::defaults::default_pod_spec;
use sluice_api::k8s::hash::json_hash;
use sluice_api::rollout::CanaryStep;

/// `status.currentStepHash`: a hash of `spec.strategy.canary.steps` (`None` hashes like
/// upstream's nil slice). For the step kinds Sluice runs (`setWeight`, `pause`) the JSON is
/// the same as upstream's, so the hash survives a takeover from Argo Rollouts without
/// resetting the step index.
pub fn step_hash(steps: Option<&[CanaryStep]>) -> String {
    json_hash(&steps)
}

/// Whether a live ReplicaSet's pod template is the Rollout's template: equal after dropping
/// the hash label, the ephemeral metadata Sluice (or upstream) injected (recorded in the
/// ReplicaSet's `rollout.argoproj.io/ephemeral-metadata` annotation, passed as
/// `live_ephemeral`), and the defaults the API server fills into a ReplicaSet's template.
pub fn templates_semantically_equal(
    live: &PodTemplateSpec,
    live_ephemeral: Option<&PodTemplateMetadata>,
    desired: &PodTemplateSpec,
) -> bool {
    TemplateMatcher::new(desired).matches(live, live_ephemeral)
}

/// [`templates_semantically_equal`] against one desired template, normalized once, for
/// comparing it with many ReplicaSets.
pub struct TemplateMatcher {
    desired: Value,
}

impl TemplateMatcher {
    pub fn new(desired: &PodTemplateSpec) -> Self {
        Self {
            desired: normalized(desired, None),
        }
    }

    pub fn matches(
        &self,
        live: &PodTemplateSpec,
        live_ephemeral: Option<&PodTemplateMetadata>,
    ) -> bool {
        normalized(live, live_ephemeral) == self.desired
    }
}

fn normalized(template: &PodTemplateSpec, ephemeral: Option<&PodTemplateMetadata>) -> Value {
    let mut v = serde_json::to_value(template).unwrap_or(Value::Null);
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("creationTimestamp");
        if let Some(labels) = meta.get_mut("labels").and_then(Value::as_object_mut) {
            labels.remove(POD_TEMPLATE_HASH_LABEL);
            if let Some(keys) = ephemeral.and_then(|e| e.labels.as_ref()) {
                for k in keys.keys() {
                    labels.remove(k);
                }
            }
        }
        if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut)
            && let Some(keys) = ephemeral.and_then(|e| e.annotations.as_ref())
        {
            for k in keys.keys() {
                annotations.remove(k);
            }
        }
    }
    if let Some(spec) = v.get_mut("spec") {
        default_pod_spec(spec);
        if let Some(spec) = spec.as_object_mut() {
            // The deprecated alias is filled in by the server on one side only.
            spec.remove("serviceAccount");
            remove_injected_anti_affinity(spec);
        }
    }
    prune_empty(&mut v);
    v
}

/// Drops the pod anti-affinity terms a canary ReplicaSet gets injected (`antiAffinity`):
/// those selecting on the pod-template-hash label, which users never write themselves.
fn remove_injected_anti_affinity(spec: &mut Map<String, Value>) {
    let Some(anti) = spec
        .get_mut("affinity")
        .and_then(|a| a.get_mut("podAntiAffinity"))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let selects_hash = |term: &Value| {
        term.pointer("/labelSelector/matchExpressions")
            .and_then(Value::as_array)
            .is_some_and(|exprs| {
                exprs
                    .iter()
                    .any(|e| e.get("key").and_then(Value::as_str) == Some(POD_TEMPLATE_HASH_LABEL))
            })
    };
    if let Some(required) = anti
        .get_mut("requiredDuringSchedulingIgnoredDuringExecution")
        .and_then(Value::as_array_mut)
    {
        required.retain(|t| !selects_hash(t));
    }
    if let Some(preferred) = anti
        .get_mut("preferredDuringSchedulingIgnoredDuringExecution")
        .and_then(Value::as_array_mut)
    {
        preferred.retain(|t| !t.get("podAffinityTerm").is_some_and(selects_hash));
    }
}

/// Drops nulls, empty objects and empty arrays so `{}` and absent compare equal.
fn prune_empty(v: &mut Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(map) => {
            map.retain(|_, child| !prune_empty(child));
            map.is_empty()
        }
        Value::Array(items) => {
            for item in items.iter_mut() {
                prune_empty(item);
            }
            items.is_empty()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use serde_json::json;
    use sluice_api::k8s::hash::{Fnv32a, safe_encode};
    use sluice_api::rollout::RolloutPause;
    use std::io::Write;

    fn template(v: Value) -> PodTemplateSpec {
        serde_json::from_value(v).unwrap()
    }

    fn app(image: &str) -> PodTemplateSpec {
        template(json!({
            "metadata": {"labels": {"app": "demo"}},
            "spec": {"containers": [{"name": "app", "image": image}]}
        }))
    }

    #[test]
    fn step_hash_depends_on_the_steps() {
        let w20 = [CanaryStep {
            set_weight: Some(20),
            ..Default::default()
        }];
        let pause = [CanaryStep {
            pause: Some(RolloutPause {
                duration: Some(IntOrString::String("10s".into())),
            }),
            ..Default::default()
        }];
        assert_eq!(step_hash(Some(&w20)), step_hash(Some(&w20)));
        assert_ne!(step_hash(Some(&w20)), step_hash(Some(&pause)));
        assert_ne!(step_hash(None), step_hash(Some(&[])));
    }

    #[test]
    fn step_hash_hashes_the_same_json_as_upstream() {
        // upstream: fnv32a(json.Marshal(steps)) → SafeEncodeString(decimal)
        let steps = [
            CanaryStep {
                set_weight: Some(20),
                ..Default::default()
            },
            CanaryStep {
                pause: Some(RolloutPause::default()),
                ..Default::default()
            },
        ];
        assert_eq!(
            serde_json::to_string(&Some(&steps[..])).unwrap(),
            r#"[{"setWeight":20},{"pause":{}}]"#
        );
        let mut h = Fnv32a::new();
        h.write_all(br#"[{"setWeight":20},{"pause":{}}]"#).unwrap();
        assert_eq!(step_hash(Some(&steps)), safe_encode(h.sum()));
    }

    #[test]
    fn server_defaulted_template_equals_the_original() {
        let live = template(json!({
            "metadata": {"labels": {"app": "demo", POD_TEMPLATE_HASH_LABEL: "xyz"}, "creationTimestamp": null},
            "spec": {
                "containers": [{
                    "name": "app", "image": "nginx:1.25", "imagePullPolicy": "IfNotPresent",
                    "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                    "resources": {}, "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "readinessProbe": {"httpGet": {"path": "/", "port": 80, "scheme": "HTTP"},
                        "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}
                }],
                "restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler",
                "terminationGracePeriodSeconds": 30, "securityContext": {}
            }
        }));
        let desired = template(json!({
            "metadata": {"labels": {"app": "demo"}},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.25",
                "ports": [{"containerPort": 80}],
                "readinessProbe": {"httpGet": {"path": "/", "port": 80}}}]}
        }));
        assert!(templates_semantically_equal(&live, None, &desired));
        assert!(!templates_semantically_equal(
            &live,
            None,
            &app("nginx:1.26")
        ));
    }

    #[test]
    fn ephemeral_labels_are_ignored_only_when_recorded() {
        let live = template(json!({
            "metadata": {"labels": {"app": "demo", "role": "canary"}},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]}
        }));
        let eph = PodTemplateMetadata {
            labels: Some([("role".to_string(), "canary".to_string())].into()),
            annotations: None,
        };
        assert!(templates_semantically_equal(
            &live,
            Some(&eph),
            &app("nginx:1.25")
        ));
        assert!(!templates_semantically_equal(
            &live,
            None,
            &app("nginx:1.25")
        ));
    }
}
