//! WATCH: a chunked stream of events for one resource, filtered by namespace, name and
//! selectors, starting from the current state (or `sendInitialEvents`) or from a
//! resourceVersion still in the history, with bookmarks on request.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::json;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::convert::{present, presented};
use super::options::Query;
use super::resource::Target;
use crate::error::ApiError;
use crate::selector::Selector;
use crate::store::{EventType, Stored, WatchEvent};
use crate::table::{self, Include};
use crate::types::ResourceType;

/// Per-watch filter: which events a watcher sees and how they are rendered.
struct WatchFilter {
    gr: (String, String),
    ns: Option<String>,
    name: Option<String>,
    label: Selector,
    field: Selector,
    plural: String,
}

impl WatchFilter {
    fn matches(&self, o: &Stored) -> bool {
        if let Some(ns) = &self.ns
            && o.namespace() != ns
        {
            return false;
        }
        if let Some(n) = &self.name
            && o.name() != n
        {
            return false;
        }
        o.matches_labels(&self.label) && o.matches_fields(&self.plural, &self.field)
    }

    /// The event type this watcher sees, accounting for objects moving in and out of the filter.
    fn classify(&self, ev: &WatchEvent) -> Option<EventType> {
        if *ev.gr != self.gr {
            return None;
        }
        let now = self.matches(&ev.obj);
        match ev.type_ {
            EventType::Added => now.then_some(EventType::Added),
            EventType::Deleted => ev
                .prev
                .as_ref()
                .is_some_and(|p| self.matches(p))
                .then_some(EventType::Deleted),
            EventType::Modified => {
                let before = ev.prev.as_ref().is_some_and(|p| self.matches(p));
                match (before, now) {
                    (true, true) => Some(EventType::Modified),
                    (false, true) => Some(EventType::Added),
                    (true, false) => Some(EventType::Deleted),
                    (false, false) => None,
                }
            }
        }
    }
}

/// Renders watch lines for one watcher.
struct Renderer {
    t: Arc<ResourceType>,
    version: String,
    api_version: String,
    table: bool,
    include: Include,
}

impl Renderer {
    fn line(&self, type_: &str, obj: &Stored) -> Bytes {
        let mut out = Vec::new();
        self.write_line(&mut out, type_, obj);
        Bytes::from(out)
    }

    /// Appends one event line to `out`: the object's shared encoding when this watcher sees
    /// the object as stored, else the object decoded and reshaped.
    fn write_line(&self, out: &mut Vec<u8>, type_: &str, obj: &Stored) {
        let encoded;
        let cached;
        let body: &[u8] = if self.table {
            let obj = obj.value();
            let o = present(&self.t, &self.version, &obj);
            let tab = table::render(
                &self.t,
                &self.version,
                &[o],
                json!({"resourceVersion": obj["metadata"]["resourceVersion"]}),
                self.include,
                Utc::now(),
            );
            encoded = serde_json::to_vec(&tab).unwrap_or_default();
            &encoded
        } else if obj.api_version() == self.api_version && obj.kind() == self.t.kind {
            cached = obj.json();
            &cached
        } else {
            encoded = serde_json::to_vec(&presented(&self.t, &self.version, &obj.value()))
                .unwrap_or_default();
            &encoded
        };
        out.reserve(body.len() + 32);
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(type_.as_bytes());
        out.extend_from_slice(b"\",\"object\":");
        out.extend_from_slice(body);
        out.extend_from_slice(b"}\n");
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let o = json!({"kind": self.t.kind, "apiVersion": self.api_version, "metadata": meta});
        let mut v =
            serde_json::to_vec(&json!({"type": "BOOKMARK", "object": o})).unwrap_or_default();
        v.push(b'\n');
        Bytes::from(v)
    }
}

/// The shortest time between two chunks of one watch stream. Delivery order and content are
/// the API server's; only a burst's timing changes, by at most this much.
const FLUSH_GAP: Duration = Duration::from_millis(2);

/// Most events sent in one chunk, so one busy watcher cannot hold its task indefinitely.
const MAX_CHUNK_EVENTS: usize = 512;

/// What the watch starts with, gathered under the lock as shared pointers and rendered
/// after it: the matching objects, or the retained events since the given version.
struct Start {
    rx: broadcast::Receiver<Arc<WatchEvent>>,
    /// The resourceVersion the stream continues from.
    rv: u64,
    objs: Vec<Stored>,
    events: Vec<(EventType, Arc<WatchEvent>)>,
    /// Set when the initial events end with a bookmark (`sendInitialEvents`).
    initial_end: Option<u64>,
}

/// What the watch asked for in its query string.
struct Params {
    bookmarks: bool,
    send_initial: bool,
    timeout: Duration,
    resource_version: Option<String>,
}

impl Params {
    fn of(q: &Query) -> Params {
        Params {
            bookmarks: q.flag("allowWatchBookmarks"),
            send_initial: q.flag("sendInitialEvents"),
            timeout: q
                .get("timeoutSeconds")
                .and_then(|s| s.parse::<u64>().ok())
                .map(Duration::from_secs)
                .unwrap_or(Duration::from_secs(1800)),
            resource_version: q.get("resourceVersion").map(str::to_string),
        }
    }
}

/// WATCH of a resource, or of the one object `name`.
pub(super) fn watch(
    sh: &Shared,
    tg: &Target,
    name: Option<String>,
    q: &Query,
    faults: &crate::faults::Decision,
) -> Result<Response, ApiError> {
    let t = &tg.t;
    let (label, field) = q.selectors(t)?;
    let filter = WatchFilter {
        gr: tg.st_t.gr(),
        ns: tg.path.namespace.clone(),
        name,
        label,
        field,
        plural: t.plural.clone(),
    };
    let renderer = Renderer {
        t: t.clone(),
        version: tg.version.clone(),
        api_version: t.api_version(&tg.version),
        table: tg.table,
        include: q.include(),
    };
    let params = Params::of(q);
    let resuming =
        !params.send_initial && !matches!(params.resource_version.as_deref(), None | Some("0"));
    if faults.expire && resuming {
        sh.faults.count_watch(false, true);
        let rv = params.resource_version.as_deref().unwrap_or_default();
        return Ok(expired_response(&ApiError::expired(format!(
            "too old resource version: {rv} (injected fault)"
        ))));
    }
    let start = match start(sh, &filter, &params)? {
        Opening::Start(start) => start,
        Opening::Expired(err) => return Ok(expired_response(&err)),
    };
    if faults.cut_after.is_some() {
        sh.faults.count_watch(true, false);
    }
    let mut initial: Vec<Bytes> = start
        .objs
        .iter()
        .map(|o| renderer.line("ADDED", o))
        .chain(
            start
                .events
                .iter()
                .map(|(ty, ev)| renderer.line(ty.as_str(), &ev.obj)),
        )
        .collect();
    initial.extend(start.initial_end.map(|rv| renderer.bookmark(rv, true)));
    let live = Live {
        filter,
        renderer,
        bookmarks: params.bookmarks,
        timeout: params.timeout,
        interval: sh.bookmark_interval,
        shutdown: sh.shutdown.clone(),
        cut_after: faults.cut_after,
    };
    Ok(stream_response(live.stream(initial, start.rx, start.rv)))
}

/// How a watch opens: with what it starts from, or, for a resourceVersion older than the
/// history, with only an ERROR event in the stream, as the apiserver answers.
enum Opening {
    Start(Start),
    Expired(ApiError),
}

/// Subscribes and gathers what the watch starts with.
fn start(sh: &Shared, filter: &WatchFilter, params: &Params) -> Result<Opening, ApiError> {
    let st = sh.lock();
    let rx = st.tx.subscribe();
    let rv_param = params.resource_version.as_deref();
    let mut start = Start {
        rx,
        rv: st.rv,
        objs: Vec::new(),
        events: Vec::new(),
        initial_end: None,
    };
    if params.send_initial || matches!(rv_param, None | Some("0")) {
        start.objs = st
            .select(&filter.gr, filter.ns.as_deref(), None, &filter.label)
            .filter(|(_, o)| filter.matches(o))
            .map(|(_, o)| o.clone())
            .collect();
        if params.send_initial && params.bookmarks {
            start.initial_end = Some(st.rv);
        }
        return Ok(Opening::Start(start));
    }
    let rv: u64 = rv_param.unwrap_or_default().parse().map_err(|_| {
        ApiError::bad_request(format!(
            "invalid resource version: {}",
            rv_param.unwrap_or_default()
        ))
    })?;
    match st.events_since(rv) {
        Ok(evs) => {
            start.events = evs
                .into_iter()
                .filter_map(|ev| filter.classify(&ev).map(|ty| (ty, ev)))
                .collect();
            Ok(Opening::Start(start))
        }
        Err(oldest) => Ok(Opening::Expired(ApiError::expired(format!(
            "too old resource version: {rv} ({oldest})"
        )))),
    }
}

/// A watch stream holding only the ERROR event of `err`.
fn expired_response(err: &ApiError) -> Response {
    let mut line =
        serde_json::to_vec(&json!({"type": "ERROR", "object": err.status()})).unwrap_or_default();
    line.push(b'\n');
    stream_response(futures::stream::iter(vec![Ok::<_, std::io::Error>(
        Bytes::from(line),
    )]))
}

/// The live part of a watch: everything one watcher needs once the initial events are out.
struct Live {
    filter: WatchFilter,
    renderer: Renderer,
    bookmarks: bool,
    timeout: Duration,
    interval: Duration,
    shutdown: CancellationToken,
    /// An injected cut: the connection drops this long after the watch opened.
    cut_after: Option<Duration>,
}

impl Live {
    fn stream(
        self,
        initial: Vec<Bytes>,
        rx: broadcast::Receiver<Arc<WatchEvent>>,
        start_rv: u64,
    ) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        async_stream::stream! {
            for l in initial {
                yield Ok::<_, std::io::Error>(l);
            }
            let mut rx = rx;
            let mut last_rv = start_rv;
            let mut last_flush = tokio::time::Instant::now() - FLUSH_GAP;
            let deadline = tokio::time::sleep(self.timeout);
            tokio::pin!(deadline);
            // Far beyond any watch's timeout when no cut was injected.
            let cut = tokio::time::sleep(self.cut_after.unwrap_or(Duration::from_secs(86_400 * 365)));
            tokio::pin!(cut);
            let mut tick = tokio::time::interval(self.interval);
            tick.tick().await;
            loop {
                tokio::select! {
                    ev = rx.recv() => match ev {
                        Ok(ev) => {
                            // Under load, send every event already queued as one chunk, and at
                            // most one chunk per FLUSH_GAP: an event after a quiet spell goes out
                            // at once, while a stream of writes reaches each watcher as one
                            // socket write per gap instead of one per event (and one wake-up of
                            // its task).
                            let due = last_flush + FLUSH_GAP;
                            if tokio::time::Instant::now() < due {
                                tokio::time::sleep_until(due).await;
                            } else {
                                tokio::task::yield_now().await;
                            }
                            let (chunk, lagged) = self.drain(&mut rx, ev, &mut last_rv);
                            if !chunk.is_empty() {
                                last_flush = tokio::time::Instant::now();
                                yield Ok(Bytes::from(chunk));
                            }
                            if lagged {
                                break;
                            }
                        }
                        // A watcher too slow for the broadcast buffer is closed; the client
                        // resumes from its last resourceVersion, which the history still holds.
                        Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => break,
                    },
                    _ = tick.tick(), if self.bookmarks && !self.renderer.table => {
                        yield Ok(self.renderer.bookmark(last_rv, false));
                    }
                    _ = &mut deadline => break,
                    // An error ends the body without its last chunk: the client sees the
                    // connection drop mid-stream, as when an apiserver or a proxy dies.
                    _ = &mut cut, if self.cut_after.is_some() => {
                        yield Err(std::io::Error::other("injected fault: watch stream cut"));
                        break;
                    }
                    _ = self.shutdown.cancelled() => break,
                }
            }
        }
    }

    /// Renders `first` and the events already queued behind it into one chunk, skipping
    /// versions already sent; true when the receiver fell behind the broadcast buffer.
    fn drain(
        &self,
        rx: &mut broadcast::Receiver<Arc<WatchEvent>>,
        first: Arc<WatchEvent>,
        last_rv: &mut u64,
    ) -> (Vec<u8>, bool) {
        let mut chunk: Vec<u8> = Vec::new();
        let mut ev = first;
        for i in 0..MAX_CHUNK_EVENTS {
            if ev.rv > *last_rv {
                *last_rv = ev.rv;
                if let Some(ty) = self.filter.classify(&ev) {
                    self.renderer.write_line(&mut chunk, ty.as_str(), &ev.obj);
                }
            }
            if i == MAX_CHUNK_EVENTS - 1 {
                break;
            }
            match rx.try_recv() {
                Ok(e) => ev = e,
                Err(broadcast::error::TryRecvError::Lagged(_)) => return (chunk, true),
                Err(_) => break,
            }
        }
        (chunk, false)
    }
}

fn stream_response<S>(s: S) -> Response
where
    S: futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
{
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::TRANSFER_ENCODING, "chunked")
        .body(Body::from_stream(s))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
