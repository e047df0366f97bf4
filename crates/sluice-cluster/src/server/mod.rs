//! The HTTP face of the embedded cluster: path routing for core and group APIs, content
//! negotiation (JSON and Tables), and the handlers for every verb.
//!
//! A request is routed ([`routing`]), resolved to the type and store it addresses
//! ([`resource`]), recorded in the audit log ([`audit`]), and served by the handler of its verb:
//! [`reads`] (get, list), [`writes`] (create, update, patch), [`delete`], [`watch`]. Objects
//! cross the boundary through [`convert`], which maps between the served and the stored shape
//! of multi-version types; [`options`] parses what the query string asks for.

mod audit;
mod control;
mod convert;
mod delete;
mod eviction;
mod options;
mod reads;
mod resource;
mod routing;
mod watch;
mod writes;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::store::State;

pub use audit::AuditEntry;

/// State shared by every handler and background task.
pub struct Shared {
    pub state: Mutex<State>,
    pub gc_notify: Notify,
    pub audit: Mutex<std::collections::VecDeque<AuditEntry>>,
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    /// How often watches that asked for bookmarks get one.
    pub bookmark_interval: Duration,
    /// Injected faults (none unless configured).
    pub faults: crate::faults::Injector,
    /// Who asked for what (off unless switched on at `/_sluice/requests`).
    pub requests: crate::faults::RequestLog,
}

impl Shared {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(routing::handle).with_state(shared)
}

fn json_response(code: StatusCode, v: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(v).unwrap_or_default(),
    )
        .into_response()
}

fn ok(v: &Value) -> Response {
    json_response(StatusCode::OK, v)
}
