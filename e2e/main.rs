//! End-to-end scenarios: the embedded cluster (or `SLUICE_E2E_KUBECONFIG`), the
//! controller and the real `kubectl`.

mod analysis;
mod argocd;
mod argocd_oracle;
mod blue_green;
mod canary;
mod catalogue;
mod chaos;
mod cli;
mod cluster_fidelity;
mod dashboard;
mod demo;
mod events;
mod experiment;
mod fidelity;
mod harness;
mod image;
mod migrate;
mod operations;
mod prometheus;
mod rbac_audit;
mod request_counts;
mod rollout_experiment;
mod routers;
mod scale;
mod secrets;
mod tls;
mod traffic;
mod webdriver;
