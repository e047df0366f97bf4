//! The HTTP API and the page.
//!
//! | Route | What |
//! |---|---|
//! | `GET /` | the page (an overview and a page per Rollout, switched in the page) |
//! | `GET /assets/app.js`, `/assets/app.css`, `/favicon.svg` | its script, style, icon |
//! | `GET /api/rollouts` | every Rollout's summary, and the watches' state |
//! | `GET /api/rollouts/{ns}/{name}` | one Rollout's whole view |
//! | `GET /api/stream` | server-sent events: `snapshot`, then `update` with changed rows |
//! | `GET /api/rollouts/{ns}/{name}/stream` | server-sent events: `rollout` on every change |
//! | `POST /api/rollouts/{ns}/{name}/actions/{action}` | promote, promote-full, abort, retry, pause, resume, restart |

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{StatusCode, header};
use serde_json::json;

use sluice_client::actions::{self, Action};
use sluice_client::error::Error as ClientError;
use sluice_client::view::{self, RolloutSummary, RolloutView};
use sluice_client::world::{Index, Key};

use crate::assets;
use crate::guard::{ACTION_HEADER, check_host};

pub(crate) fn router(state: Arc<crate::State>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { page(assets::INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/assets/app.js",
            get(|| async { page(assets::APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/assets/app.css",
            get(|| async { page(assets::APP_CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/favicon.svg",
            get(|| async { page(assets::FAVICON_SVG, "image/svg+xml") }),
        )
        .route("/api/rollouts", get(list))
        .route("/api/rollouts/{ns}/{name}", get(detail))
        .route("/api/stream", get(crate::stream::overview))
        .route(
            "/api/rollouts/{ns}/{name}/stream",
            get(crate::stream::rollout),
        )
        .route("/api/rollouts/{ns}/{name}/actions/{action}", post(act))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            check_host,
        ))
        .with_state(state)
}

fn page(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'",
            ),
        ],
        body,
    )
        .into_response()
}

/// Every Rollout's summary, sorted by namespace and name.
pub(crate) fn summaries(index: &Index) -> Vec<RolloutSummary> {
    index
        .rollouts()
        .filter_map(|(key, _)| summary_of(index, key))
        .collect()
}

/// One Rollout's summary (`None`: it is gone).
pub(crate) fn summary_of(index: &Index, key: &Key) -> Option<RolloutSummary> {
    match index.world(key)? {
        Ok(world) => Some(view::summary(&view::rollout(&world))),
        Err(message) => Some(view::summary::undecodable(
            &key.namespace,
            &key.name,
            &message,
        )),
    }
}

/// One Rollout's view, or why there is none.
pub(crate) fn detail_of(index: &Index, key: &Key) -> Result<RolloutView, (StatusCode, String)> {
    match index.world(key) {
        Some(Ok(world)) => Ok(view::rollout(&world)),
        Some(Err(message)) => Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("rollout {:?} cannot be read: {message}", key.name),
        )),
        None => Err((
            StatusCode::NOT_FOUND,
            format!(
                "rollout {:?} not found in namespace {:?}",
                key.name, key.namespace
            ),
        )),
    }
}

/// The watches' state, for the page's banner.
pub(crate) fn watches(state: &crate::State) -> serde_json::Value {
    let states: BTreeMap<&str, serde_json::Value> = state
        .live
        .states()
        .into_iter()
        .map(|(k, s)| (k.plural(), json!({"synced": s.synced, "error": s.error})))
        .collect();
    json!(states)
}

async fn list(State(state): State<Arc<crate::State>>) -> Response {
    let rollouts = summaries(&state.live.read());
    Json(json!({
        "namespace": state.namespace,
        "rollouts": rollouts,
        "watches": watches(&state),
    }))
    .into_response()
}

async fn detail(
    State(state): State<Arc<crate::State>>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    match detail_of(&state.live.read(), &Key::new(ns, name)) {
        Ok(view) => Json(view).into_response(),
        Err((code, error)) => (code, Json(json!({"error": error}))).into_response(),
    }
}

async fn act(
    State(state): State<Arc<crate::State>>,
    Path((ns, name, action)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let refuse =
        |code: StatusCode, error: String| (code, Json(json!({"error": error}))).into_response();
    if !headers.contains_key(ACTION_HEADER) {
        return refuse(
            StatusCode::FORBIDDEN,
            format!("actions need the {ACTION_HEADER} header the dashboard's page sends"),
        );
    }
    let Some(action) = Action::from_name(&action) else {
        return refuse(
            StatusCode::NOT_FOUND,
            format!(
                "no action {action:?}: use promote, promote-full, abort, retry, pause, resume or restart"
            ),
        );
    };
    if state.namespace.as_deref().is_some_and(|only| only != ns) {
        return refuse(
            StatusCode::FORBIDDEN,
            format!(
                "this dashboard shows only namespace {:?}",
                state.namespace.as_deref().unwrap_or_default()
            ),
        );
    }
    tracing::info!(namespace = %ns, rollout = %name, action = action.name(), "dashboard action");
    match actions::run(&state.client, &ns, &name, action, Default::default()).await {
        Ok(message) => Json(json!({"message": message})).into_response(),
        Err(e) => {
            let code = match &e {
                ClientError::NotFound { .. } => StatusCode::NOT_FOUND,
                ClientError::Refused { .. } => StatusCode::CONFLICT,
                ClientError::Decode { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                ClientError::Api { .. } | ClientError::Unreachable(_) => StatusCode::BAD_GATEWAY,
            };
            refuse(code, e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http::Request;
    use tower::ServiceExt as _;

    /// A router whose cluster is nowhere: enough for what is decided before any API call.
    async fn app() -> Router {
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        let state = Arc::new(crate::State {
            live: sluice_client::live::Live::start(client.clone(), Some("shop".into())),
            client,
            namespace: Some("shop".into()),
            port: 3100,
        });
        router(state)
    }

    async fn send(
        app: &Router,
        method: &str,
        path: &str,
        host: &str,
        action_header: bool,
    ) -> (StatusCode, String) {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", host);
        if action_header {
            req = req.header(ACTION_HEADER, "1");
        }
        let response = app
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let code = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (code, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn the_page_is_served_from_the_binary_with_a_strict_policy() {
        let app = app().await;
        let response = app
            .clone()
            .oneshot(
                Request::get("/")
                    .header("host", "127.0.0.1:3100")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        let (code, js) = send(&app, "GET", "/assets/app.js", "localhost:3100", false).await;
        assert_eq!(code, StatusCode::OK);
        assert!(js.contains("EventSource"));
    }

    #[tokio::test]
    async fn requests_for_another_host_are_refused() {
        let app = app().await;
        let (code, _) = send(&app, "GET", "/api/rollouts", "rebound.example:3100", false).await;
        assert_eq!(code, StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn actions_need_the_pages_header_a_known_name_and_the_shown_namespace() {
        let app = app().await;
        let host = "127.0.0.1:3100";
        let (code, body) = send(
            &app,
            "POST",
            "/api/rollouts/shop/web/actions/promote",
            host,
            false,
        )
        .await;
        assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
        let (code, body) = send(
            &app,
            "POST",
            "/api/rollouts/shop/web/actions/explode",
            host,
            true,
        )
        .await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
        assert!(body.contains("no action \\\"explode\\\""), "{body}");
        let (code, body) = send(
            &app,
            "POST",
            "/api/rollouts/other/web/actions/promote",
            host,
            true,
        )
        .await;
        assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
        // The cluster is unreachable: the action fails as the CLI's would, writing nothing.
        let (code, body) = send(
            &app,
            "POST",
            "/api/rollouts/shop/web/actions/promote",
            host,
            true,
        )
        .await;
        assert_eq!(code, StatusCode::BAD_GATEWAY, "{body}");
        assert!(body.contains("cannot reach the cluster"), "{body}");
    }

    #[tokio::test]
    async fn an_unknown_rollout_is_a_404_naming_it() {
        let app = app().await;
        let (code, body) = send(
            &app,
            "GET",
            "/api/rollouts/shop/ghost",
            "127.0.0.1:3100",
            false,
        )
        .await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        assert!(
            body.contains(r#"rollout \"ghost\" not found in namespace \"shop\""#),
            "{body}"
        );
    }
}
