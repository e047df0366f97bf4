//! Optional persistence: a snapshot plus an append-only log of changes in `data_dir`, replayed on
//! start so objects and the resourceVersion sequence survive restarts.

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::store::{PersistRecord, State};
use super::types;

const SNAPSHOT: &str = "snapshot.json";
const LOG: &str = "changes.jsonl";

/// Loads the snapshot and log into `st`, compacts them into a fresh snapshot, and returns the
/// log path for the writer.
pub fn load(st: &mut State, dir: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let snap = dir.join(SNAPSHOT);
    let log = dir.join(LOG);
    let mut rv = st.rv;
    if snap.exists() {
        let v: Value =
            serde_json::from_slice(&std::fs::read(&snap)?).map_err(std::io::Error::other)?;
        rv = rv.max(v["rv"].as_u64().unwrap_or(0));
        for o in v["objects"].as_array().into_iter().flatten() {
            st.load((s(&o["g"]), s(&o["r"])), o["o"].clone());
        }
    }
    if log.exists() {
        let f = std::io::BufReader::new(std::fs::File::open(&log)?);
        for line in f.lines() {
            let line = line?;
            // A torn last line (crash mid-write) is dropped.
            let Ok(rec) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            rv = rv.max(rec["rv"].as_u64().unwrap_or(0));
            let gr = (s(&rec["g"]), s(&rec["r"]));
            if rec["o"].is_null() {
                st.unload(&gr, &(s(&rec["ns"]), s(&rec["n"])));
            } else {
                st.load(gr, rec["o"].clone());
            }
        }
    }
    st.rv = rv;
    st.compacted_rv = rv;
    let crd_gr = (
        "apiextensions.k8s.io".to_string(),
        "customresourcedefinitions".to_string(),
    );
    let crds: Vec<Value> = st.list(&crd_gr, None).map(|(_, o)| (**o).clone()).collect();
    for crd in crds {
        if let Ok(t) = types::from_crd(&crd) {
            st.registry.types.insert(t.gr(), std::sync::Arc::new(t));
        }
    }
    // Deletions in flight when the cluster stopped carry on after the restart.
    for (gr, o) in st.all() {
        if o["metadata"]["deletionTimestamp"].is_null() {
            continue;
        }
        if gr.0.is_empty() && gr.1 == "namespaces" {
            let name = o["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            st.gc_queue.push_back(super::store::GcWork::Namespace(name));
        } else if let Some(uid) = o["metadata"]["uid"].as_str() {
            st.gc_queue
                .push_back(super::store::GcWork::Owner(uid.to_string()));
        }
    }
    write_snapshot(st, dir)?;
    std::fs::write(&log, b"")?;
    Ok(log)
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn write_snapshot(st: &State, dir: &Path) -> std::io::Result<()> {
    let objects: Vec<Value> = st
        .all()
        .into_iter()
        .map(|((g, r), o)| json!({"g": g, "r": r, "o": *o}))
        .collect();
    let tmp = dir.join(format!("{SNAPSHOT}.tmp"));
    std::fs::write(
        &tmp,
        serde_json::to_vec(&json!({"rv": st.rv, "objects": objects}))?,
    )?;
    std::fs::rename(tmp, dir.join(SNAPSHOT))
}

/// Appends every change to the log, flushing whenever the queue drains.
pub async fn writer(path: PathBuf, mut rx: mpsc::UnboundedReceiver<PersistRecord>) {
    let Ok(f) = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
    else {
        tracing::error!(path = %path.display(), "cannot open the embedded cluster's change log");
        return;
    };
    let mut w = BufWriter::new(f);
    while let Some(rec) = rx.recv().await {
        let mut next = Some(rec);
        while let Some(rec) = next {
            let line = json!({
                "rv": rec.rv, "g": rec.gr.0, "r": rec.gr.1, "ns": rec.key.0, "n": rec.key.1,
                "o": rec.obj.as_deref().cloned().unwrap_or(Value::Null),
            });
            if serde_json::to_writer(&mut w, &line).is_err() || w.write_all(b"\n").is_err() {
                tracing::error!("writing the embedded cluster's change log failed");
            }
            next = rx.try_recv().ok();
        }
        if w.flush().is_err() {
            tracing::error!("flushing the embedded cluster's change log failed");
        }
    }
    let _ = w.flush();
}
