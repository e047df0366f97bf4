//! The served resource types: the built-in kinds the embedded cluster knows, plus the ones that
//! CustomResourceDefinitions add at runtime. Discovery, routing, tables and OpenAPI all read this.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

/// `(group, plural)`: the version-agnostic identity of a resource, as storage keys it.
pub type GroupResource = (String, String);

/// Where the `/scale` subresource reads and writes replica counts.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleSpec {
    pub spec_replicas_path: String,
    pub status_replicas_path: String,
    pub label_selector_path: Option<String>,
}

/// One `additionalPrinterColumns` entry of a CRD version.
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub json_path: String,
}

/// What differs per served version of a resource.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionInfo {
    pub name: String,
    pub status: bool,
    pub scale: Option<ScaleSpec>,
    pub columns: Vec<PrinterColumn>,
    /// The CRD's `openAPIV3Schema`; `None` for built-ins.
    pub schema: Option<Value>,
}

/// A served resource.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    pub group: String,
    /// Served versions, the preferred (storage) version first.
    pub versions: Vec<VersionInfo>,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub crd: bool,
}

impl ResourceType {
    pub fn gr(&self) -> GroupResource {
        (self.group.clone(), self.plural.clone())
    }

    pub fn version(&self, v: &str) -> Option<&VersionInfo> {
        self.versions.iter().find(|x| x.name == v)
    }

    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    /// Whether `api_version` is this type's apiVersion at `version` (without building it: a
    /// LIST asks this of every item).
    pub fn is_api_version(&self, api_version: &str, version: &str) -> bool {
        if self.group.is_empty() {
            api_version == version
        } else {
            api_version
                .strip_prefix(self.group.as_str())
                .and_then(|r| r.strip_prefix('/'))
                == Some(version)
        }
    }

    /// `Rollout.argoproj.io` or `ConfigMap`, as Invalid messages name kinds.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }
}

struct B {
    group: &'static str,
    versions: &'static [&'static str],
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    all: bool,
    status: bool,
    scale: bool,
}

const BUILTINS: &[B] = &[
    B {
        group: "",
        versions: &["v1"],
        plural: "namespaces",
        kind: "Namespace",
        namespaced: false,
        short: &["ns"],
        all: false,
        status: true,
        scale: false,
    },
    B {
        group: "",
        versions: &["v1"],
        plural: "pods",
        kind: "Pod",
        namespaced: true,
        short: &["po"],
        all: true,
        status: true,
        scale: false,
    },
    B {
        group: "",
        versions: &["v1"],
        plural: "services",
        kind: "Service",
        namespaced: true,
        short: &["svc"],
        all: true,
        status: true,
        scale: false,
    },
    B {
        group: "",
        versions: &["v1"],
        plural: "endpoints",
        kind: "Endpoints",
        namespaced: true,
        short: &["ep"],
        all: false,
        status: false,
        scale: false,
    },
    B {
        group: "",
        versions: &["v1"],
        plural: "configmaps",
        kind: "ConfigMap",
        namespaced: true,
        short: &["cm"],
        all: false,
        status: false,
        scale: false,
    },
    B {
        group: "",
        versions: &["v1"],
        plural: "podtemplates",
        kind: "PodTemplate",
        namespaced: true,
        short: &[],
        all: false,
        status: false,
        scale: false,
    },
    B {
        group: "",
        versions: &["v1"],
        plural: "secrets",
        kind: "Secret",
        namespaced: true,
        short: &[],
        all: false,
        status: false,
        scale: false,
    },
    B {
        group: "",
        versions: &["v1"],
        plural: "resourcequotas",
        kind: "ResourceQuota",
        namespaced: true,
        short: &["quota"],
        all: false,
        status: true,
        scale: false,
    },
    B {
        group: "",
        versions: &["v1"],
        plural: "events",
        kind: "Event",
        namespaced: true,
        short: &["ev"],
        all: false,
        status: false,
        scale: false,
    },
    B {
        group: "",
        versions: &["v1"],
        plural: "serviceaccounts",
        kind: "ServiceAccount",
        namespaced: true,
        short: &["sa"],
        all: false,
        status: false,
        scale: false,
    },
    B {
        group: "apps",
        versions: &["v1"],
        plural: "deployments",
        kind: "Deployment",
        namespaced: true,
        short: &["deploy"],
        all: true,
        status: true,
        scale: true,
    },
    B {
        group: "apps",
        versions: &["v1"],
        plural: "replicasets",
        kind: "ReplicaSet",
        namespaced: true,
        short: &["rs"],
        all: true,
        status: true,
        scale: true,
    },
    B {
        group: "batch",
        versions: &["v1"],
        plural: "jobs",
        kind: "Job",
        namespaced: true,
        short: &[],
        all: true,
        status: true,
        scale: false,
    },
    B {
        group: "coordination.k8s.io",
        versions: &["v1"],
        plural: "leases",
        kind: "Lease",
        namespaced: true,
        short: &[],
        all: false,
        status: false,
        scale: false,
    },
    B {
        group: "autoscaling",
        versions: &["v2", "v1"],
        plural: "horizontalpodautoscalers",
        kind: "HorizontalPodAutoscaler",
        namespaced: true,
        short: &["hpa"],
        all: true,
        status: true,
        scale: false,
    },
    B {
        group: "networking.k8s.io",
        versions: &["v1"],
        plural: "ingresses",
        kind: "Ingress",
        namespaced: true,
        short: &["ing"],
        all: false,
        status: true,
        scale: false,
    },
    B {
        group: "networking.k8s.io",
        versions: &["v1"],
        plural: "ingressclasses",
        kind: "IngressClass",
        namespaced: false,
        short: &[],
        all: false,
        status: false,
        scale: false,
    },
    B {
        group: "policy",
        versions: &["v1"],
        plural: "poddisruptionbudgets",
        kind: "PodDisruptionBudget",
        namespaced: true,
        short: &["pdb"],
        all: false,
        status: true,
        scale: false,
    },
    B {
        group: "apiextensions.k8s.io",
        versions: &["v1"],
        plural: "customresourcedefinitions",
        kind: "CustomResourceDefinition",
        namespaced: false,
        short: &["crd", "crds"],
        all: false,
        status: true,
        scale: false,
    },
    B {
        group: "events.k8s.io",
        versions: &["v1"],
        plural: "events",
        kind: "Event",
        namespaced: true,
        short: &["ev"],
        all: false,
        status: false,
        scale: false,
    },
    B {
        group: "rbac.authorization.k8s.io",
        versions: &["v1"],
        plural: "roles",
        kind: "Role",
        namespaced: true,
        short: &[],
        all: false,
        status: false,
        scale: false,
    },
    B {
        group: "rbac.authorization.k8s.io",
        versions: &["v1"],
        plural: "rolebindings",
        kind: "RoleBinding",
        namespaced: true,
        short: &[],
        all: false,
        status: false,
        scale: false,
    },
    B {
        group: "rbac.authorization.k8s.io",
        versions: &["v1"],
        plural: "clusterroles",
        kind: "ClusterRole",
        namespaced: false,
        short: &[],
        all: false,
        status: false,
        scale: false,
    },
    B {
        group: "rbac.authorization.k8s.io",
        versions: &["v1"],
        plural: "clusterrolebindings",
        kind: "ClusterRoleBinding",
        namespaced: false,
        short: &[],
        all: false,
        status: false,
        scale: false,
    },
];

/// The built-in resource types, served from start.
pub fn builtins() -> Vec<ResourceType> {
    BUILTINS
        .iter()
        .map(|b| {
            let scale = b.scale.then(|| ScaleSpec {
                spec_replicas_path: ".spec.replicas".into(),
                status_replicas_path: ".status.replicas".into(),
                label_selector_path: Some(".spec.selector".into()),
            });
            ResourceType {
                group: b.group.into(),
                versions: b
                    .versions
                    .iter()
                    .map(|v| VersionInfo {
                        name: (*v).into(),
                        status: b.status,
                        scale: scale.clone(),
                        columns: Vec::new(),
                        schema: None,
                    })
                    .collect(),
                plural: b.plural.into(),
                singular: b.kind.to_lowercase(),
                kind: b.kind.into(),
                list_kind: format!("{}List", b.kind),
                namespaced: b.namespaced,
                short_names: b.short.iter().map(|s| s.to_string()).collect(),
                categories: if b.all {
                    vec!["all".into()]
                } else {
                    Vec::new()
                },
                crd: false,
            }
        })
        .collect()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The resource type a CustomResourceDefinition declares, or why it cannot be served.
pub fn from_crd(crd: &Value) -> Result<ResourceType, String> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default().to_string();
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or_default().to_string();
    let kind = names["kind"].as_str().unwrap_or_default().to_string();
    if group.is_empty() || plural.is_empty() || kind.is_empty() {
        return Err("spec.group, spec.names.plural and spec.names.kind are required".into());
    }
    let mut versions: Vec<(bool, VersionInfo)> = Vec::new();
    for v in spec["versions"].as_array().into_iter().flatten() {
        if v["served"].as_bool() == Some(false) {
            continue;
        }
        let subs = &v["subresources"];
        let scale = subs
            .get("scale")
            .filter(|s| s.is_object())
            .map(|s| ScaleSpec {
                spec_replicas_path: s["specReplicasPath"]
                    .as_str()
                    .unwrap_or(".spec.replicas")
                    .into(),
                status_replicas_path: s["statusReplicasPath"]
                    .as_str()
                    .unwrap_or(".status.replicas")
                    .into(),
                label_selector_path: s["labelSelectorPath"].as_str().map(str::to_string),
            });
        let columns = v["additionalPrinterColumns"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| PrinterColumn {
                name: c["name"].as_str().unwrap_or_default().into(),
                type_: c["type"].as_str().unwrap_or("string").into(),
                format: c["format"].as_str().unwrap_or_default().into(),
                description: c["description"].as_str().unwrap_or_default().into(),
                priority: c["priority"].as_i64().unwrap_or(0),
                json_path: c["jsonPath"].as_str().unwrap_or_default().into(),
            })
            .collect();
        versions.push((
            v["storage"].as_bool() == Some(true),
            VersionInfo {
                name: v["name"].as_str().unwrap_or_default().into(),
                status: subs.get("status").is_some_and(|s| s.is_object()),
                scale,
                columns,
                schema: v["schema"].get("openAPIV3Schema").cloned(),
            },
        ));
    }
    if versions.is_empty() {
        return Err("spec.versions must contain at least one served version".into());
    }
    // Discovery lists the storage version first, as the preferred version.
    versions.sort_by_key(|(storage, _)| !*storage);
    Ok(ResourceType {
        group,
        versions: versions.into_iter().map(|(_, v)| v).collect(),
        singular: names["singular"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| kind.to_lowercase()),
        list_kind: names["listKind"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("{kind}List")),
        plural,
        kind,
        namespaced: spec["scope"].as_str() != Some("Cluster"),
        short_names: strs(&names["shortNames"]),
        categories: strs(&names["categories"]),
        crd: true,
    })
}

/// All served types keyed by `(group, plural)`.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    pub types: BTreeMap<GroupResource, Arc<ResourceType>>,
}

impl Registry {
    pub fn with_builtins() -> Self {
        let mut r = Registry::default();
        for t in builtins() {
            r.types.insert(t.gr(), Arc::new(t));
        }
        r
    }

    /// The type served at `group/version` under `plural`.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.types
            .get(&(group.to_string(), plural.to_string()))
            .filter(|t| t.version(version).is_some())
            .cloned()
    }

    /// Groups in discovery order (core first, then alphabetical), each with its served versions.
    pub fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for t in self.types.values() {
            let e = out.entry(t.group.clone()).or_default();
            for v in &t.versions {
                if !e.contains(&v.name) {
                    e.push(v.name.clone());
                }
            }
        }
        out
    }

    pub fn in_group_version<'a>(
        &'a self,
        group: &'a str,
        version: &'a str,
    ) -> impl Iterator<Item = &'a Arc<ResourceType>> + 'a {
        self.types
            .values()
            .filter(move |t| t.group == group && t.version(version).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn registry_has_builtins() {
        assert!(
            Registry::with_builtins()
                .lookup("apps", "v1", "deployments")
                .is_some()
        );
    }

    #[test]
    fn crd_yields_type_with_storage_version_first_and_subresources() {
        let crd = json!({"spec": {
        "group": "argoproj.io", "scope": "Namespaced",
        "names": {"plural": "rollouts", "kind": "Rollout", "shortNames": ["ro"]},
        "versions": [
            {"name": "v1beta1", "served": true, "storage": false},
            {"name": "v1alpha1", "served": true, "storage": true,
             "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.HPAReplicas", "labelSelectorPath": ".status.selector"}},
             "additionalPrinterColumns": [{"name": "Desired", "type": "integer", "jsonPath": ".spec.replicas"}]},
        ]}});
        let t = from_crd(&crd).unwrap();
        assert_eq!(t.versions[0].name, "v1alpha1");
        assert!(t.versions[0].status);
        assert_eq!(
            t.versions[0].scale.as_ref().unwrap().status_replicas_path,
            ".status.HPAReplicas"
        );
        assert_eq!(t.singular, "rollout");
        assert_eq!(t.list_kind, "RolloutList");
        assert!(t.namespaced);
        assert_eq!(t.qualified_kind(), "Rollout.argoproj.io");
    }

    #[test]
    fn api_version_check_agrees_with_the_built_api_version() {
        let reg = Registry::with_builtins();
        let core = reg.lookup("", "v1", "configmaps").unwrap();
        let apps = reg.lookup("apps", "v1", "deployments").unwrap();
        for (t, version) in [(&core, "v1"), (&apps, "v1")] {
            for candidate in [
                "v1", "apps/v1", "apps/v2", "apps", "appsv1", "v2", "", "/v1",
            ] {
                assert_eq!(
                    t.is_api_version(candidate, version),
                    candidate == t.api_version(version),
                    "{} {candidate:?}",
                    t.plural
                );
            }
        }
    }

    #[test]
    fn crd_without_served_versions_is_rejected() {
        let crd = json!({"spec": {"group": "g.io", "names": {"plural": "xs", "kind": "X"}, "versions": [{"name": "v1", "served": false}]}});
        assert!(from_crd(&crd).is_err());
    }
}
