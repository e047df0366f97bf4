//! The metric providers Sluice implements: `web` and `prometheus` over HTTP, and the pure part
//! of `job`.
pub mod job;
pub mod prometheus;
pub mod web;
