//! The `web` provider: an HTTP request whose JSON answer (or a part of it selected by
//! `jsonPath`) is the measured value (upstream `metricproviders/webmetric`).
//!
//! Behaviour kept from upstream: method GET (default), POST or PUT; `body` or `jsonBody` (not both,
//! and only with POST/PUT; `jsonBody` sets `Content-Type: application/json`); `headers`;
//! `timeoutSeconds` (default 10); `insecure`; a non-2xx status is an error; `jsonPath` in the
//! Kubernetes template form `{$.a.b}` / `{.items[0].x}` (default `{$}`) selects the first match.
//! A body that is not JSON becomes the string `result` when no `jsonPath` is given (as upstream);
//! with a `jsonPath` it is an error, since the path cannot apply (upstream silently ignored it).
//! `authentication.oauth2` (client credentials) and `authentication.basicAuth` are supported;
//! `authentication.sigv4` is not and is rejected by name.
//!
//! `jsonPath` is evaluated by the maintained `jsonpath-rust` crate (RFC 9535, already in the tree
//! through kube) after turning the Kubernetes template `{...}` into a `$...` query; this covers
//! the forms upstream documents (`{$.a.b}`, `{$.items[0].x}`, `{.a}`, `[*]`, `..`, filters).

use std::time::Duration;

use jsonpath_rust::JsonPath;

use super::Providers;
use sluice_api::analysis::{Authentication, OAuth2Config, WebMetric, WebMetricHeader};
use sluice_engine::analysis::expr::Value;
use sluice_engine::analysis::provider::{MeasuredValue, ProviderErrorKind};

/// Default request timeout.
pub const DEFAULT_TIMEOUT_SECONDS: i64 = 10;

/// Adds the `authentication` of a web or prometheus metric to a request: `basicAuth`, or an
/// OAuth2 client-credentials token fetched from `oauth2.tokenUrl` (client id/secret sent with
/// HTTP basic auth, as Go's `clientcredentials` does first). `sigv4` is not implemented and is
/// rejected by name.
pub(crate) async fn authenticate(
    provider: &'static str,
    auth: Option<&Authentication>,
    client: &reqwest::Client,
    timeout: Duration,
    mut request: reqwest::RequestBuilder,
) -> Result<reqwest::RequestBuilder, ProviderErrorKind> {
    let Some(auth) = auth else {
        return Ok(request);
    };
    let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
    if let Some(sig) = &auth.sigv4
        && (set(&sig.region) || set(&sig.profile) || set(&sig.role_arn))
    {
        return Err(ProviderErrorKind::invalid(
            provider,
            "authentication.sigv4",
            "is not supported by Sluice yet; remove it or use basicAuth, oauth2 or headers",
        ));
    }
    if let Some(basic) = &auth.basic_auth
        && (set(&basic.username) || set(&basic.password))
    {
        if !set(&basic.username) {
            return Err(ProviderErrorKind::invalid(
                provider,
                "authentication.basicAuth.username",
                "missing mandatory parameter in metric for basic auth setup: username",
            ));
        }
        if !set(&basic.password) {
            return Err(ProviderErrorKind::invalid(
                provider,
                "authentication.basicAuth.password",
                "missing mandatory parameter in metric for basic auth setup: password",
            ));
        }
        request = request.basic_auth(
            basic.username.as_deref().unwrap_or_default(),
            basic.password.as_deref(),
        );
    }
    if let Some(oauth) = auth.oauth2.as_ref().filter(|o| set(&o.token_url)) {
        if !set(&oauth.client_id) || !set(&oauth.client_secret) {
            return Err(ProviderErrorKind::invalid(
                provider,
                "authentication.oauth2",
                "missing mandatory parameter in metric for OAuth2 setup",
            ));
        }
        let token = oauth2_token(client, oauth, timeout).await?;
        request = request.bearer_auth(token);
    }
    Ok(request)
}

async fn oauth2_token(
    client: &reqwest::Client,
    cfg: &OAuth2Config,
    timeout: Duration,
) -> Result<String, ProviderErrorKind> {
    let mut form = vec![("grant_type", "client_credentials".to_string())];
    let scopes = cfg.scopes.clone().unwrap_or_default();
    if !scopes.is_empty() {
        form.push(("scope", scopes.join(" ")));
    }
    let fail =
        |why: String| ProviderErrorKind::Measurement(format!("oauth2: cannot fetch token: {why}"));
    let response = client
        .post(cfg.token_url.as_deref().unwrap_or_default())
        .timeout(timeout)
        .basic_auth(
            cfg.client_id.as_deref().unwrap_or_default(),
            cfg.client_secret.as_deref(),
        )
        .form(&form)
        .send()
        .await
        .map_err(|e| fail(describe_reqwest_error(&e)))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| fail(describe_reqwest_error(&e)))?;
    if !status.is_success() {
        return Err(fail(format!("token endpoint returned {}", status.as_u16())));
    }
    let json: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| fail(format!("invalid token response: {e}")))?;
    json["access_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .ok_or_else(|| fail("server response missing access_token".to_string()))
}

/// The metric's `headers`, a later entry replacing an earlier one of the same name (Go's
/// `Header.Set`). A name or value HTTP cannot carry is a spec error naming the entry.
pub(crate) fn header_map(
    provider: &'static str,
    headers: &[WebMetricHeader],
) -> Result<reqwest::header::HeaderMap, ProviderErrorKind> {
    let mut map = reqwest::header::HeaderMap::new();
    for (i, h) in headers.iter().enumerate() {
        let bad = |what: &str| {
            ProviderErrorKind::invalid(
                provider,
                &format!("headers[{i}]"),
                format!("invalid header {what}"),
            )
        };
        let name = reqwest::header::HeaderName::from_bytes(h.key.as_bytes())
            .map_err(|_| bad(&format!("name {:?}", h.key)))?;
        let value = reqwest::header::HeaderValue::from_str(&h.value)
            .map_err(|_| bad(&format!("value for {:?}", h.key)))?;
        map.insert(name, value);
    }
    Ok(map)
}

/// Converts the Kubernetes JSONPath template form (`{$.a}`, `{.a}`) to an RFC 9535 query.
fn to_rfc_jsonpath(template: &str) -> String {
    let t = template.trim();
    let inner = t
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .unwrap_or(t)
        .trim();
    if inner.is_empty() || inner == "$" {
        "$".to_string()
    } else if inner.starts_with('$') {
        inner.to_string()
    } else if inner.starts_with('.') || inner.starts_with('[') {
        format!("${inner}")
    } else {
        format!("$.{inner}")
    }
}

/// Takes one web measurement.
pub(crate) async fn measure(
    web: &WebMetric,
    providers: &Providers,
    metric: &str,
) -> Result<MeasuredValue, ProviderErrorKind> {
    let method = match web.method.as_deref().unwrap_or("GET") {
        "" | "GET" => reqwest::Method::GET,
        "POST" => reqwest::Method::POST,
        "PUT" => reqwest::Method::PUT,
        other => {
            return Err(ProviderErrorKind::invalid(
                "web",
                "method",
                format!("{other:?} is not one of GET, POST, PUT"),
            ));
        }
    };
    let body = web.body.as_deref().filter(|b| !b.is_empty());
    if body.is_some() && web.json_body.is_some() {
        return Err(ProviderErrorKind::Measurement(
            "use either Body or JSONBody; both cannot exists for WebMetric payload".to_string(),
        ));
    }
    if (body.is_some() || web.json_body.is_some()) && method == reqwest::Method::GET {
        return Err(ProviderErrorKind::Measurement(
            "Body/JSONBody can only be used with POST or PUT WebMetric Method types".to_string(),
        ));
    }
    let timeout = match web.timeout_seconds {
        Some(s) if s > 0 => s,
        _ => DEFAULT_TIMEOUT_SECONDS,
    };
    let timeout = Duration::from_secs(timeout as u64);
    let client = providers.client(web.insecure.unwrap_or(false));
    let mut request = client.request(method, &web.url).timeout(timeout);
    let mut headers = header_map("web", web.headers.as_deref().unwrap_or_default())?;
    if web.json_body.is_some() {
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            reqwest::header::HeaderValue::from_static("application/json"),
        );
    }
    request = request.headers(headers);
    request = authenticate("web", web.authentication.as_ref(), client, timeout, request).await?;
    if let Some(b) = body {
        request = request.body(b.to_string());
    } else if let Some(j) = &web.json_body {
        request = request.body(j.to_string());
    }
    let response = request
        .send()
        .await
        .map_err(|e| ProviderErrorKind::Measurement(describe_reqwest_error(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(ProviderErrorKind::Measurement(format!(
            "received non 2xx response code: {}",
            status.as_u16()
        )));
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| ProviderErrorKind::Measurement(describe_reqwest_error(&e)))?;
    parse_body(web, metric, &bytes)
}

/// Turns a 2xx body into the measured value.
pub fn parse_body(
    web: &WebMetric,
    metric: &str,
    bytes: &[u8],
) -> Result<MeasuredValue, ProviderErrorKind> {
    let path = web.json_path.as_deref().filter(|p| !p.trim().is_empty());
    let data: serde_json::Value = match serde_json::from_slice(bytes) {
        Ok(d) => d,
        Err(e) => {
            let text = String::from_utf8_lossy(bytes).into_owned();
            return match path {
                Some(p) if to_rfc_jsonpath(p) != "$" => {
                    Err(ProviderErrorKind::Measurement(format!(
                        "metric {metric:?}: response body is not JSON ({e}), so jsonPath {p} cannot be applied"
                    )))
                }
                _ => Ok(MeasuredValue {
                    value: Value::String(text.clone()),
                    display: text,
                    metadata: Default::default(),
                }),
            };
        }
    };
    let query = to_rfc_jsonpath(path.unwrap_or("{$}"));
    let found = data
        .query(&query)
        .map_err(|e| ProviderErrorKind::invalid("web", "jsonPath", format!("{query}: {e}")))?;
    let Some(selected) = found.first() else {
        return Err(ProviderErrorKind::Measurement(format!(
            "Could not find JSONPath in body: {} is not found",
            path.unwrap_or("{$}")
        )));
    };
    Ok(MeasuredValue {
        value: Value::from(*selected),
        display: selected.to_string(),
        metadata: Default::default(),
    })
}

/// reqwest's Display hides the cause (e.g. "error sending request"); include the chain and call
/// out timeouts explicitly.
pub(crate) fn describe_reqwest_error(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = if e.is_timeout() {
        "request timed out".to_string()
    } else {
        e.to_string()
    };
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{
        Router,
        body::Bytes,
        http::{HeaderMap, StatusCode},
        routing::{get, post},
    };
    use serde_json::json;
    use sluice_engine::analysis::provider::MetricProvider;
    use std::sync::{Arc, Mutex};

    type Seen = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

    async fn serve(seen: Seen) -> String {
        let echo = {
            let seen = seen.clone();
            move |headers: HeaderMap, body: Bytes| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push((headers, body));
                    axum::Json(json!({"ok": true}))
                }
            }
        };
        let app = Router::new()
            .route(
                "/health",
                get(|| async {
                    axum::Json(
                        json!({"status": 200, "ok": true, "items": [{"x": 0.97}, {"x": 0.5}]}),
                    )
                }),
            )
            .route(
                "/boom",
                get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
            )
            .route("/text", get(|| async { "ok" }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .route("/echo", post(echo.clone()).put(echo))
            .route(
                "/token",
                post(|headers: HeaderMap, body: String| async move {
                    // client id "app", secret "s3cret", as HTTP basic auth.
                    let ok = headers
                        .get("authorization")
                        .is_some_and(|v| v == "Basic YXBwOnMzY3JldA==")
                        && body.contains("grant_type=client_credentials")
                        && body.contains("scope=read+write");
                    if ok {
                        (
                            StatusCode::OK,
                            axum::Json(json!({"access_token": "tok-1", "token_type": "Bearer"})),
                        )
                    } else {
                        (
                            StatusCode::UNAUTHORIZED,
                            axum::Json(json!({"error": "invalid_client"})),
                        )
                    }
                }),
            )
            .route(
                "/secure",
                get(|headers: HeaderMap| async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    axum::Json(json!({"auth": auth}))
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    async fn measure(spec: serde_json::Value) -> Result<MeasuredValue, ProviderErrorKind> {
        let provider = MetricProvider::from_json("web-metric", &json!({ "web": spec })).unwrap();
        let providers = Providers::new(None).unwrap();
        providers
            .measure("web-metric", &provider, chrono::Utc::now())
            .await
            .map_err(|e| e.kind)
    }

    #[tokio::test]
    async fn whole_json_body_is_the_value_without_json_path() {
        let base = serve(Seen::default()).await;
        let got = measure(json!({"url": format!("{base}/health")}))
            .await
            .unwrap();
        assert_eq!(
            got.value,
            Value::from(&json!({"status": 200, "ok": true, "items": [{"x": 0.97}, {"x": 0.5}]}))
        );
        let cond =
            sluice_engine::analysis::expr::Condition::parse("result.status == 200 and result.ok")
                .unwrap();
        assert_eq!(cond.eval_value(&got.value), Ok(true));
    }

    #[tokio::test]
    async fn json_path_selects_the_first_match_in_kubernetes_template_form() {
        let base = serve(Seen::default()).await;
        let url = format!("{base}/health");
        let cases = [
            ("{$.status}", Value::Float(200.0), "200"),
            ("{.ok}", Value::Bool(true), "true"),
            ("{$.items[0].x}", Value::Float(0.97), "0.97"),
            ("{$.items[*].x}", Value::Float(0.97), "0.97"),
            (
                "{$}",
                Value::from(
                    &json!({"status": 200, "ok": true, "items": [{"x": 0.97}, {"x": 0.5}]}),
                ),
                "{\"items\":[{\"x\":0.97},{\"x\":0.5}],\"ok\":true,\"status\":200}",
            ),
        ];
        for (path, value, display) in cases {
            let got = measure(json!({"url": url, "jsonPath": path}))
                .await
                .unwrap();
            assert_eq!(got.value, value, "{path}");
            assert_eq!(got.display, display, "{path}");
        }
        let missing = measure(json!({"url": url, "jsonPath": "{$.nope}"}))
            .await
            .unwrap_err();
        assert!(
            missing.to_string().contains("Could not find JSONPath"),
            "{missing}"
        );
    }

    #[tokio::test]
    async fn non_2xx_is_an_error_with_the_status_code() {
        let base = serve(Seen::default()).await;
        let err = measure(json!({"url": format!("{base}/boom")}))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "received non 2xx response code: 500");
    }

    #[tokio::test]
    async fn non_json_body_is_a_string_result_but_an_error_with_json_path() {
        let base = serve(Seen::default()).await;
        let got = measure(json!({"url": format!("{base}/text")}))
            .await
            .unwrap();
        assert_eq!(got.value, Value::String("ok".into()));
        let err = measure(json!({"url": format!("{base}/text"), "jsonPath": "{$.a}"}))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("metric \"web-metric\""), "{text}");
        assert!(text.contains("not JSON"), "{text}");
    }

    #[tokio::test]
    async fn slow_response_times_out_after_timeout_seconds() {
        let base = serve(Seen::default()).await;
        let started = std::time::Instant::now();
        let err = measure(json!({"url": format!("{base}/slow"), "timeoutSeconds": 1}))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("timed out"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(4));
    }

    #[tokio::test]
    async fn post_sends_json_body_and_headers() {
        let seen = Seen::default();
        let base = serve(seen.clone()).await;
        let got = measure(json!({
            "url": format!("{base}/echo"),
            "method": "POST",
            "headers": [
                {"key": "X-Token", "value": "old"},
                {"key": "X-Token", "value": "abc"},
                {"key": "Content-Type", "value": "text/plain"}
            ],
            "jsonBody": {"query": "errors", "n": 1}
        }))
        .await
        .unwrap();
        assert_eq!(got.value, Value::from(&json!({"ok": true})));
        let (headers, body) = seen.lock().unwrap().pop().unwrap();
        assert_eq!(
            headers.get_all("x-token").iter().collect::<Vec<_>>(),
            vec!["abc"]
        );
        assert_eq!(
            headers.get_all("content-type").iter().collect::<Vec<_>>(),
            vec!["application/json"]
        );
        let sent: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(sent, json!({"query": "errors", "n": 1}));

        measure(json!({"url": format!("{base}/echo"), "method": "PUT", "body": "plain"}))
            .await
            .unwrap();
        let (_, body) = seen.lock().unwrap().pop().unwrap();
        assert_eq!(&body[..], b"plain");
    }

    #[tokio::test]
    async fn invalid_payload_combinations_and_oauth2_are_rejected() {
        let err = measure(json!({"url": "http://127.0.0.1:9/", "body": "x"}))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("only be used with POST or PUT"));
        let err = measure(
            json!({"url": "http://127.0.0.1:9/", "method": "POST", "body": "x", "jsonBody": {}}),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("use either Body or JSONBody"));
        let err = measure(
            json!({"url": "http://127.0.0.1:9/", "headers": [{"key": "bad name", "value": "x"}]}),
        )
        .await
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "web.headers[0]: invalid header name \"bad name\""
        );
        let err = measure(json!({"url": "http://127.0.0.1:9/", "method": "DELETE"}))
            .await
            .unwrap_err();
        assert!(err.to_string().starts_with("web.method:"));
        let err = measure(json!({
            "url": "http://127.0.0.1:9/",
            "authentication": {"sigv4": {"region": "eu-west-1"}}
        }))
        .await
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("web.authentication.sigv4: is not supported"),
            "{err}"
        );
        let err = measure(json!({
            "url": "http://127.0.0.1:9/",
            "authentication": {"oauth2": {"tokenUrl": "http://127.0.0.1:9/token", "clientId": "a"}}
        }))
        .await
        .unwrap_err();
        assert!(
            err.to_string().contains("missing mandatory parameter"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn oauth2_client_credentials_token_is_sent_as_bearer() {
        let base = serve(Seen::default()).await;
        let auth = |secret: &str| {
            json!({"oauth2": {
                "tokenUrl": format!("{base}/token"), "clientId": "app", "clientSecret": secret,
                "scopes": ["read", "write"]
            }})
        };
        let got = measure(json!({"url": format!("{base}/secure"), "jsonPath": "{$.auth}", "authentication": auth("s3cret")}))
            .await
            .unwrap();
        assert_eq!(got.value, Value::String("Bearer tok-1".into()));
        let err =
            measure(json!({"url": format!("{base}/secure"), "authentication": auth("wrong")}))
                .await
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            "oauth2: cannot fetch token: token endpoint returned 401"
        );
        let got = measure(json!({
            "url": format!("{base}/secure"), "jsonPath": "{$.auth}",
            "authentication": {"basicAuth": {"username": "u", "password": "p"}}
        }))
        .await
        .unwrap();
        assert_eq!(got.value, Value::String("Basic dTpw".into()));
    }

    #[test]
    fn kubernetes_jsonpath_templates_convert_to_rfc_queries() {
        assert_eq!(to_rfc_jsonpath("{$}"), "$");
        assert_eq!(to_rfc_jsonpath(""), "$");
        assert_eq!(to_rfc_jsonpath("{$.a.b}"), "$.a.b");
        assert_eq!(to_rfc_jsonpath("{.items[0].x}"), "$.items[0].x");
        assert_eq!(to_rfc_jsonpath("$.a"), "$.a");
    }
}
