//! The Kubernetes permissions the controller needs, in one place.
//!
//! `manifests/` grants exactly these rules (a test renders the kustomization and compares),
//! and the embedded cluster's audit log of a full controller run can be checked against them,
//! so a new API call without a matching rule fails a test instead of a production install.

/// `(API group, resource, verbs)` for every resource the controller touches. The core group is
/// `""`. Subresources are separate entries (`rollouts/status`).
pub const REQUIRED_RBAC: &[(&str, &str, &[&str])] = &[
    // `*/finalizers`: owner references with `blockOwnerDeletion` (ReplicaSets owned by a
    // Rollout or Experiment, Jobs owned by an AnalysisRun) need `update` on the owner's
    // finalizers where the OwnerReferencesPermissionEnforcement admission plugin is on.
    // The Argo Rollouts kinds: the controller watches all of them and writes Rollout status
    // through the subresource; AnalysisRuns and Experiments are created, terminated (patched)
    // and garbage-collected by history limits.
    (
        "argoproj.io",
        "rollouts",
        &["get", "list", "watch", "update", "patch"],
    ),
    (
        "argoproj.io",
        "rollouts/status",
        &["get", "update", "patch"],
    ),
    ("argoproj.io", "rollouts/finalizers", &["update"]),
    (
        "argoproj.io",
        "analysisruns",
        &[
            "get", "list", "watch", "create", "update", "patch", "delete",
        ],
    ),
    ("argoproj.io", "analysisruns/finalizers", &["update"]),
    (
        "argoproj.io",
        "analysistemplates",
        &["get", "list", "watch"],
    ),
    (
        "argoproj.io",
        "clusteranalysistemplates",
        &["get", "list", "watch"],
    ),
    (
        "argoproj.io",
        "experiments",
        &[
            "get", "list", "watch", "create", "update", "patch", "delete",
        ],
    ),
    ("argoproj.io", "experiments/finalizers", &["update"]),
    // The ReplicaSets of each revision (and of experiment templates).
    (
        "apps",
        "replicasets",
        &[
            "get", "list", "watch", "create", "update", "patch", "delete",
        ],
    ),
    // workloadRef: read the referenced Deployment's template, scale it down.
    (
        "apps",
        "deployments",
        &["get", "list", "watch", "update", "patch"],
    ),
    // workloadRef to a PodTemplate.
    ("", "podtemplates", &["get", "list", "watch"]),
    // Traffic routing: the Gateway API routes a Rollout names are watched (metadata only),
    // read and JSON-patched (weights on their backendRefs, managed header and mirror rules).
    (
        "gateway.networking.k8s.io",
        "httproutes",
        &["get", "list", "watch", "patch"],
    ),
    (
        "gateway.networking.k8s.io",
        "grpcroutes",
        &["get", "list", "watch", "patch"],
    ),
    (
        "gateway.networking.k8s.io",
        "tcproutes",
        &["get", "list", "watch", "patch"],
    ),
    // SMI: the TrafficSplit a Rollout creates and owns (watched, metadata only, like routes).
    (
        "split.smi-spec.io",
        "trafficsplits",
        &["get", "list", "watch", "create", "patch"],
    ),
    // NGINX: the stable Ingresses are read, the canary Ingress a Rollout creates and owns is
    // patched (both watched, metadata only, like routes).
    (
        "networking.k8s.io",
        "ingresses",
        &["get", "list", "watch", "create", "patch"],
    ),
    // Istio: VirtualService weights and DestinationRule subset labels (watched, metadata only).
    (
        "networking.istio.io",
        "virtualservices",
        &["get", "list", "watch", "patch"],
    ),
    (
        "networking.istio.io",
        "destinationrules",
        &["get", "list", "watch", "patch"],
    ),
    // Traefik: the weights of a weighted TraefikService (watched, metadata only).
    (
        "traefik.io",
        "traefikservices",
        &["get", "list", "watch", "patch"],
    ),
    // Ephemeral canary/stable metadata is patched onto running pods; restarts delete pods.
    ("", "pods", &["list", "patch", "delete"]),
    // restartAt evicts pods one at a time (honouring PodDisruptionBudgets).
    ("", "pods/eviction", &["create"]),
    // Canary/stable/active/preview Services: their selectors are switched between revisions.
    (
        "",
        "services",
        &["get", "list", "watch", "create", "patch", "delete"],
    ),
    // Analysis arguments from secretKeyRef, read on demand (never listed or watched).
    ("", "secrets", &["get"]),
    // The job analysis provider.
    (
        "batch",
        "jobs",
        &["get", "list", "watch", "create", "delete"],
    ),
    // Events, through both APIs (kube-rs' Recorder uses events.k8s.io).
    ("", "events", &["create", "patch"]),
    ("events.k8s.io", "events", &["create", "patch"]),
    // Leader election: kube-lease-manager reads the Lease, creates it when missing, and
    // writes it only with patches (server-side apply to acquire, strategic merge to renew).
    ("coordination.k8s.io", "leases", &["get", "create", "patch"]),
];

/// The verbs granted on `group`/`resource`, if any.
pub fn verbs_for(group: &str, resource: &str) -> Option<&'static [&'static str]> {
    REQUIRED_RBAC
        .iter()
        .find(|(g, r, _)| *g == group && *r == resource)
        .map(|(_, _, v)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_is_listed_once_with_known_lowercase_verbs() {
        const VERBS: &[&str] = &[
            "get", "list", "watch", "create", "update", "patch", "delete",
        ];
        let mut seen = std::collections::BTreeSet::new();
        for (group, resource, verbs) in REQUIRED_RBAC {
            assert!(
                seen.insert((*group, *resource)),
                "{group}/{resource} listed twice"
            );
            assert!(!verbs.is_empty(), "{group}/{resource} has no verbs");
            for v in *verbs {
                assert!(VERBS.contains(v), "{group}/{resource}: unknown verb {v}");
            }
        }
    }

    #[test]
    fn lease_rules_cover_what_the_lease_manager_sends() {
        // kube-lease-manager reads the Lease, creates it when missing, and writes it with
        // strategic-merge and server-side-apply patches.
        let verbs = verbs_for("coordination.k8s.io", "leases").expect("leases listed");
        for v in ["get", "create", "patch"] {
            assert!(verbs.contains(&v), "leases lacks {v}");
        }
        assert_eq!(verbs_for("", "configmaps"), None);
    }
}
