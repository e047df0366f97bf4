//! Sluice: a progressive-delivery controller implementing the Argo Rollouts API.
#![forbid(unsafe_code)]

pub mod analysis;
pub mod api;
pub mod bench;
pub mod cli;
pub mod cluster;
pub mod controller;
pub mod core;
pub mod experiment;
pub mod gitops;
pub mod health;
pub mod metrics;
pub mod rbac;
pub mod telemetry;
pub mod throttle;
