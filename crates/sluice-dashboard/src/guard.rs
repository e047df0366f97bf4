//! Who may talk to the dashboard: requests addressed to 127.0.0.1 or localhost on its port
//! (a page on another site that rebinds its name to 127.0.0.1 is refused), and actions only
//! with the page's own header (a cross-site form cannot set it, and a cross-site script
//! cannot either without a CORS answer the dashboard never gives).

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use std::sync::Arc;

/// The header the page sends with every action.
pub const ACTION_HEADER: &str = "x-sluice-action";

/// Whether `host` (a Host header) names this dashboard.
pub fn host_allowed(host: &str, port: u16) -> bool {
    let (name, p) = match host.rsplit_once(':') {
        Some((n, p)) => (n, p.parse::<u16>().ok()),
        None => (host, None),
    };
    let local = matches!(name, "127.0.0.1" | "localhost" | "[::1]");
    local && p.is_none_or(|p| p == port)
}

/// Middleware: refuse requests addressed to another host.
pub async fn check_host(
    State(state): State<Arc<crate::State>>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if !host_allowed(host, state.port) {
        return (
            StatusCode::FORBIDDEN,
            "the dashboard answers only requests to 127.0.0.1 or localhost",
        )
            .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_names_on_our_port_are_allowed() {
        assert!(host_allowed("127.0.0.1:3100", 3100));
        assert!(host_allowed("localhost:3100", 3100));
        assert!(host_allowed("[::1]:3100", 3100));
        assert!(!host_allowed("127.0.0.1:9999", 3100));
        assert!(!host_allowed("evil.example:3100", 3100));
        assert!(!host_allowed("", 3100));
    }
}
