//! Kubernetes' own rules that every Sluice crate shares, one copy each, each pinned by a test
//! stating Kubernetes' semantics.
//!
//! - [`conditions`]: setting status conditions (transition times, no-op updates).
//! - [`defaults`]: the API server's PodSpec defaulting.
//! - [`field`]: field errors as the API server renders them (`spec.x: Invalid value: ...`).
//! - [`quantity`]: resource quantities: what parses, their value and canonical form.
//! - [`names`]: the string formats (DNS labels and subdomains, label keys and values, port
//!   and environment variable names).
//! - [`meta`]: object metadata (labels, annotations, owner references) and label selectors.
//! - [`pod`]: pod specs and pod templates (containers, ports, env, volumes, probes,
//!   resources).
//! - [`workloads`]: the specs of ReplicaSets, Deployments, Jobs, Pods, PodTemplates and
//!   Services.
//! - [`hash`]: the pod-template hash and the safe encoding of generated names.
//! - [`intstr`]: int-or-percent values (`maxSurge`, `maxUnavailable`) and their rounding.
//! - [`selector`]: LabelSelector matching (nil, empty, operators).
//! - [`time`]: `metav1.Time` and the planners' clock.
//! - [`duration`]: Go's `time.ParseDuration`.
pub mod conditions;
pub mod defaults;
pub mod duration;
pub mod field;
pub mod hash;
pub mod intstr;
pub mod meta;
pub mod names;
pub mod pod;
pub mod quantity;
pub mod selector;
pub mod time;
pub mod workloads;
