//! The kube-runtime wiring of the controllers: observe the cluster, call the pure
//! planners in `core`, apply their plans.

pub mod backoff;
pub mod freshness;
pub mod status_patch;
