//! Kubernetes' own rules that every Sluice crate shares, one copy each, each pinned by a test
//! stating Kubernetes' semantics.
//!
//! - [`conditions`]: setting status conditions (transition times, no-op updates).
//! - [`defaults`]: the API server's PodSpec defaulting.
//! - [`hash`]: the pod-template hash and the safe encoding of generated names.
//! - [`intstr`]: int-or-percent values (`maxSurge`, `maxUnavailable`) and their rounding.
//! - [`selector`]: LabelSelector matching (nil, empty, operators).
//! - [`time`]: `metav1.Time` and the planners' clock.
//! - [`duration`]: Go's `time.ParseDuration`.
pub mod conditions;
pub mod defaults;
pub mod duration;
pub mod hash;
pub mod intstr;
pub mod selector;
pub mod time;
