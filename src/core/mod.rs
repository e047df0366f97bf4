//! The pure decision core: no Kubernetes client, no async runtime, no clock.
pub mod hash;
pub mod intstr;
pub mod replicas;
