//! Server-sent events: the page never reloads to see a change.
//!
//! Changes arrive from the watches as topics (the Rollout whose view changed). A stream
//! gathers them for a moment (a scale-up touches a ReplicaSet, pods and the Rollout in a
//! few milliseconds) and sends one event: the overview sends only the rows that changed,
//! a Rollout's page sends its whole view again when it differs from the last one sent. A
//! stream that fell behind the watches starts over with a full snapshot.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use sluice_client::world::{Key, Topic};

use crate::routes::{detail_of, summaries, summary_of, watches};

/// How long changes are gathered into one event.
const GATHER: Duration = Duration::from_millis(150);

fn event(name: &str, data: &serde_json::Value) -> Result<Event, Infallible> {
    Ok(Event::default().event(name).data(data.to_string()))
}

/// `GET /api/stream`: the overview.
pub(crate) async fn overview(
    State(state): State<Arc<crate::State>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = async_stream::stream! {
        let mut changes = state.live.subscribe();
        let mut watch_states = state.live.state_changes();
        let snapshot = |state: &crate::State| json!({
            "namespace": state.namespace,
            "rollouts": summaries(&state.live.read()),
            "watches": watches(state),
        });
        yield event("snapshot", &snapshot(&state));
        loop {
            let mut changed = BTreeSet::new();
            let mut lagged = false;
            tokio::select! {
                r = changes.recv() => match r {
                    Ok(Topic::Rollout(key)) => { changed.insert(key); }
                    Ok(Topic::Experiment(_)) => continue,
                    Err(RecvError::Lagged(_)) => lagged = true,
                    Err(RecvError::Closed) => break,
                },
                r = watch_states.changed() => {
                    if r.is_err() { break; }
                    yield event("watches", &watches(&state));
                    continue;
                }
            }
            let until = tokio::time::Instant::now() + GATHER;
            while let Ok(r) = tokio::time::timeout_at(until, changes.recv()).await {
                match r {
                    Ok(Topic::Rollout(key)) => { changed.insert(key); }
                    Ok(Topic::Experiment(_)) => {}
                    Err(RecvError::Lagged(_)) => lagged = true,
                    Err(RecvError::Closed) => break,
                }
            }
            if lagged {
                yield event("snapshot", &snapshot(&state));
                continue;
            }
            let (upsert, remove): (Vec<_>, Vec<_>) = {
                let index = state.live.read();
                let mut upsert = Vec::new();
                let mut remove = Vec::new();
                for key in changed {
                    match summary_of(&index, &key) {
                        Some(s) => upsert.push(s),
                        None => remove.push(key),
                    }
                }
                (upsert, remove)
            };
            yield event("update", &json!({"upsert": upsert, "remove": remove}));
        }
    };
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// `GET /api/rollouts/{ns}/{name}/stream`: one Rollout's page.
pub(crate) async fn rollout(
    State(state): State<Arc<crate::State>>,
    Path((ns, name)): Path<(String, String)>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let key = Key::new(ns, name);
    let stream = async_stream::stream! {
        let mut changes = state.live.subscribe();
        let mut watch_states = state.live.state_changes();
        let topic = Topic::Rollout(key.clone());
        let mut last = String::new();
        loop {
            let data = match detail_of(&state.live.read(), &key) {
                Ok(view) => json!({"rollout": view, "watches": watches(&state)}),
                Err((_, error)) => json!({"error": error, "watches": watches(&state)}),
            };
            let text = data.to_string();
            if text != last {
                yield Ok(Event::default().event("rollout").data(text.clone()));
                last = text;
            }
            // Wait for a change under this Rollout (or to the watches).
            loop {
                tokio::select! {
                    r = changes.recv() => match r {
                        Ok(t) if t == topic => break,
                        Ok(_) => {}
                        Err(RecvError::Lagged(_)) => break,
                        Err(RecvError::Closed) => return,
                    },
                    r = watch_states.changed() => {
                        if r.is_err() { return; }
                        break;
                    }
                }
            }
            tokio::time::sleep(GATHER).await;
            while let Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) = changes.try_recv() {}
        }
    };
    Sse::new(stream).keep_alive(KeepAlive::default())
}
