//! GET of one object (or its `/scale`) and LIST, paged with continue tokens, as JSON or as a
//! Table for `kubectl get`.

use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use chrono::Utc;
use serde_json::{Value, json};

use super::convert::{present, presented_json};
use super::options::Query;
use super::resource::Target;
use super::{Shared, ok};
use crate::error::ApiError;
use crate::ops;
use crate::selector::Selector;
use crate::store::{self, ObjKey, State, Stored};
use crate::table;

/// GET of one object.
pub(super) fn get(sh: &Shared, tg: &Target, name: &str, q: &Query) -> Result<Response, ApiError> {
    let (t, version) = (&tg.t, tg.version.as_str());
    if t.namespaced && tg.path.namespace.is_none() {
        return Err(ApiError::no_resource());
    }
    let obj = sh
        .lock()
        .get_stored(&tg.st_t.gr(), &tg.ns, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(&t.group, &t.plural, name))?;
    if tg.path.sub.as_deref() == Some("scale") {
        return Ok(ok(&ops::scale_of(&tg.st_t, &tg.st_version, &obj.value())?));
    }
    if tg.table {
        let obj = present(t, version, &obj.value());
        let meta = json!({"resourceVersion": obj["metadata"]["resourceVersion"]});
        return Ok(ok(&table::render(
            t,
            version,
            &[obj],
            meta,
            q.include(),
            Utc::now(),
        )));
    }
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        presented_json(t, version, &obj),
    )
        .into_response())
}

/// One page of a list, gathered under the lock.
struct Page {
    items: Vec<Stored>,
    /// The list's resourceVersion.
    rv: u64,
    next: Option<String>,
    remaining: Option<usize>,
}

/// LIST of a resource, in one namespace or all.
pub(super) fn list(sh: &Shared, tg: &Target, q: &Query) -> Result<Response, ApiError> {
    let (t, version) = (&tg.t, tg.version.as_str());
    let (label, field) = q.selectors(t)?;
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let cont = q.get("continue").map(decode_continue).transpose()?;
    let page = page(&sh.lock(), tg, &label, &field, limit, cont);
    let mut meta = json!({"resourceVersion": page.rv.to_string()});
    if let Some(n) = page.next {
        meta["continue"] = json!(n);
    }
    if let Some(r) = page.remaining {
        meta["remainingItemCount"] = json!(r);
    }
    if tg.table {
        let items: Vec<Value> = page
            .items
            .iter()
            .map(|o| present(t, version, &o.value()))
            .collect();
        return Ok(ok(&table::render(
            t,
            version,
            &items,
            meta,
            q.include(),
            Utc::now(),
        )));
    }
    let encoded: Vec<Bytes> = page
        .items
        .iter()
        .map(|o| presented_json(t, version, o))
        .collect();
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        list_json(&t.api_version(version), &t.list_kind, &meta, &encoded),
    )
        .into_response())
}

/// The matching objects after the continue key, at most `limit` of them.
fn page(
    st: &State,
    tg: &Target,
    label: &Selector,
    field: &Selector,
    limit: Option<usize>,
    cont: Option<(u64, ObjKey)>,
) -> Page {
    // Every page reports the first page's resourceVersion (it travels in the token).
    let rv = cont.as_ref().map_or(st.rv, |(rv, _)| *rv);
    let plural = &tg.t.plural;
    let mut matching = st
        .select(
            &tg.st_t.gr(),
            tg.path.namespace.as_deref(),
            cont.as_ref().map(|(_, k)| k),
            label,
        )
        .filter(|(_, o)| o.matches_fields(plural, field))
        .map(|(_, o)| o);
    // Cheap Arc clones under the lock; the copies and the encoding are made after it.
    let items: Vec<Stored> = match limit {
        Some(l) => matching.by_ref().take(l).cloned().collect(),
        None => matching.by_ref().cloned().collect(),
    };
    let (mut next, mut remaining) = (None, None);
    // A continue token only when another object matches; the apiserver counts the rest
    // only for a list without selectors (with one, its count would include non-matches).
    if limit.is_some() && matching.next().is_some() {
        next = Some(encode_continue(rv, &items_last_key(&items)));
        if label.is_empty() && field.is_empty() {
            remaining = Some(1 + matching.count());
        }
    }
    Page {
        items,
        rv,
        next,
        remaining,
    }
}

/// A list response assembled from the items' encodings (keys in the order serde_json's
/// sorted maps give a whole list object).
fn list_json(api_version: &str, kind: &str, meta: &Value, items: &[Bytes]) -> Vec<u8> {
    let mut out = Vec::with_capacity(items.iter().map(|i| i.len() + 1).sum::<usize>() + 256);
    out.extend_from_slice(b"{\"apiVersion\":");
    let _ = serde_json::to_writer(&mut out, api_version);
    out.extend_from_slice(b",\"items\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item);
    }
    out.extend_from_slice(b"],\"kind\":");
    let _ = serde_json::to_writer(&mut out, kind);
    out.extend_from_slice(b",\"metadata\":");
    let _ = serde_json::to_writer(&mut out, meta);
    out.push(b'}');
    out
}

fn items_last_key(items: &[Stored]) -> ObjKey {
    items
        .last()
        .map_or_else(|| store::key("", ""), |o| o.key().clone())
}

/// A continue token: the list's resourceVersion (every page reports the first page's, as the
/// apiserver does, so a watch started from it misses nothing) and the last key served.
fn encode_continue(rv: u64, key: &ObjKey) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("{rv}\u{0}{}\u{0}{}", key.0, key.1))
}

fn decode_continue(tok: &str) -> Result<(u64, ObjKey), ApiError> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(tok)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| ApiError::bad_request("continue key is not valid: illegal base64 data"))?;
    let mut parts = raw.splitn(3, '\u{0}');
    match (
        parts.next().and_then(|r| r.parse().ok()),
        parts.next(),
        parts.next(),
    ) {
        (Some(rv), Some(a), Some(b)) => Ok((rv, store::key(a, b))),
        _ => Err(ApiError::bad_request("continue key is not valid")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assembled_list_is_the_list_object_with_its_items() {
        let items = [
            json!({"metadata": {"name": "a"}, "data": {"k": "\"q\""}}),
            json!({}),
        ];
        let encoded: Vec<Bytes> = items
            .iter()
            .map(|i| Bytes::from(serde_json::to_vec(i).unwrap()))
            .collect();
        let meta = json!({"resourceVersion": "7", "continue": "x"});
        for n in [0, 1, 2] {
            let got: Value =
                serde_json::from_slice(&list_json("v1", "ConfigMapList", &meta, &encoded[..n]))
                    .unwrap();
            let want = json!({"apiVersion": "v1", "kind": "ConfigMapList", "metadata": meta, "items": items[..n]});
            assert_eq!(got, want, "{n} items");
        }
    }

    #[test]
    fn continue_tokens_round_trip() {
        let k = store::key("ns", "name");
        assert_eq!(decode_continue(&encode_continue(7, &k)).unwrap(), (7, k));
        assert!(decode_continue("!!").is_err());
    }
}
