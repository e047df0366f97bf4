//! The embedded cluster: an in-process Kubernetes API server and what makes its workloads run.
pub mod workloads;
