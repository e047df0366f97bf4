//! Kubernetes' own rules that every Sluice crate shares, one copy each, each pinned by a test
//! stating Kubernetes' semantics.
pub mod duration;
pub mod intstr;
pub mod time;
