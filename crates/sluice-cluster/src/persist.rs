//! Optional persistence: a snapshot plus an append-only log of changes in `data_dir`, replayed on
//! start so objects and the resourceVersion sequence survive restarts.

use std::collections::HashMap;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::store::{self, ObjKey, PersistRecord, State, Stored};
use super::types;
use super::types::GroupResource;

const SNAPSHOT: &str = "snapshot.json";
const LOG: &str = "changes.jsonl";

/// Loads the snapshot and log into `st` and compacts them into a fresh snapshot.
pub fn load(st: &mut State, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let snap = dir.join(SNAPSHOT);
    let log = dir.join(LOG);
    let mut rv = st.rv;
    let mut snapshot_rv = 0;
    if snap.exists() {
        let reader = std::io::BufReader::new(std::fs::File::open(&snap)?);
        let mut de = serde_json::Deserializer::from_reader(reader);
        snapshot_rv = SnapshotSeed(st)
            .deserialize(&mut de)
            .map_err(std::io::Error::other)?;
        rv = rv.max(snapshot_rv);
    }
    if log.exists() {
        let f = std::io::BufReader::new(std::fs::File::open(&log)?);
        for line in f.lines() {
            let line = line?;
            // A torn last line (crash mid-write) is dropped.
            let Ok(rec) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            let rec_rv = rec["rv"].as_u64().unwrap_or(0);
            // A crash between writing a snapshot and truncating the log leaves older records.
            if rec_rv <= snapshot_rv {
                continue;
            }
            rv = rv.max(rec_rv);
            let gr = (s(&rec["g"]), s(&rec["r"]));
            if rec["o"].is_null() {
                st.unload(&gr, &store::key(&s(&rec["ns"]), &s(&rec["n"])));
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
    let crds: Vec<Value> = st.list(&crd_gr, None).map(|(_, o)| o.value()).collect();
    for crd in crds {
        if let Ok(t) = types::from_crd(&crd) {
            st.registry.types.insert(t.gr(), std::sync::Arc::new(t));
        }
    }
    // Deletions in flight when the cluster stopped carry on after the restart.
    for (gr, o) in st.all() {
        let o = o.value();
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
    write_snapshot(st.all().into_iter(), st.rv, dir)?;
    std::fs::write(&log, b"")?;
    Ok(())
}

/// Reads a snapshot into the store one object at a time (a whole snapshot decoded into one
/// tree would cost about ten times the file), answering its resourceVersion.
struct SnapshotSeed<'a>(&'a mut State);

/// One object of a snapshot.
#[derive(serde::Deserialize)]
struct SnapshotObject {
    g: String,
    r: String,
    o: Value,
}

impl<'de> DeserializeSeed<'de> for SnapshotSeed<'_> {
    type Value = u64;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for SnapshotSeed<'_> {
    type Value = u64;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a snapshot object with rv and objects")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<u64, A::Error> {
        let mut rv = 0;
        while let Some(k) = map.next_key::<String>()? {
            match k.as_str() {
                "rv" => rv = map.next_value()?,
                "objects" => map.next_value_seed(ObjectsSeed(&mut *self.0))?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(rv)
    }
}

/// The snapshot's `objects` array, each loaded as soon as it is read.
struct ObjectsSeed<'a>(&'a mut State);

impl<'de> DeserializeSeed<'de> for ObjectsSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ObjectsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of stored objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(o) = seq.next_element::<SnapshotObject>()? {
            self.0.load((o.g, o.r), o.o);
        }
        Ok(())
    }
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn write_snapshot(
    objs: impl Iterator<Item = (GroupResource, Stored)>,
    rv: u64,
    dir: &Path,
) -> std::io::Result<()> {
    let tmp = dir.join(format!("{SNAPSHOT}.tmp"));
    let mut w = BufWriter::new(std::fs::File::create(&tmp)?);
    write!(w, "{{\"rv\":{rv},\"objects\":[")?;
    for (i, ((g, r), o)) in objs.enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        let head = json!({"g": g, "r": r});
        let mut bytes = serde_json::to_vec(&head)?;
        bytes.pop();
        bytes.extend_from_slice(b",\"o\":");
        w.write_all(&bytes)?;
        w.write_all(&o.json())?;
        w.write_all(b"}")?;
    }
    w.write_all(b"]}")?;
    w.flush()?;
    drop(w);
    std::fs::rename(tmp, dir.join(SNAPSHOT))
}

/// Appends every change to the log, flushing whenever the queue drains.
/// Objects the writer has seen, so it can compact the log into a snapshot without the store lock.
pub type Known = HashMap<(GroupResource, ObjKey), Stored>;

/// The store's objects as the writer's starting point.
pub fn known(st: &State) -> Known {
    st.all()
        .into_iter()
        .map(|(gr, o)| ((gr, o.key().clone()), o))
        .collect()
}

/// Log lines after which the writer folds the log into a fresh snapshot.
const COMPACT_AFTER: usize = 20_000;

fn open_log(path: &Path, truncate: bool) -> Option<BufWriter<std::fs::File>> {
    let mut o = std::fs::OpenOptions::new();
    if truncate {
        o.write(true).truncate(true).create(true);
    } else {
        o.append(true).create(true);
    }
    match o.open(path) {
        Ok(f) => Some(BufWriter::new(f)),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot open the embedded cluster's change log");
            None
        }
    }
}

/// Appends every change to the log (flushing whenever the queue drains) and compacts it now and
/// then. Blocking: run it on a blocking thread.
pub fn writer(dir: PathBuf, known: Known, rv: u64, rx: mpsc::UnboundedReceiver<PersistRecord>) {
    write_loop(dir, known, rv, rx, COMPACT_AFTER);
}

fn write_loop(
    dir: PathBuf,
    mut known: Known,
    mut rv: u64,
    mut rx: mpsc::UnboundedReceiver<PersistRecord>,
    compact_after: usize,
) {
    let log = dir.join(LOG);
    let Some(mut w) = open_log(&log, false) else {
        return;
    };
    let mut lines = 0usize;
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        while let Some(rec) = next {
            rv = rv.max(rec.rv);
            let head = json!({"rv": rec.rv, "g": rec.gr.0, "r": rec.gr.1, "ns": &*rec.key.0, "n": &*rec.key.1});
            let mut line = serde_json::to_vec(&head).unwrap_or_default();
            line.pop(); // reopen the object to append "o" without cloning the stored object
            line.extend_from_slice(b",\"o\":");
            match &rec.obj {
                Some(o) => line.extend_from_slice(&o.json()),
                None => line.extend_from_slice(b"null"),
            }
            line.extend_from_slice(b"}\n");
            if w.write_all(&line).is_err() {
                tracing::error!("writing the embedded cluster's change log failed");
            }
            let k = (rec.gr, rec.key);
            match rec.obj {
                Some(o) => known.insert(k, o),
                None => known.remove(&k),
            };
            lines += 1;
            next = rx.try_recv().ok();
        }
        if w.flush().is_err() {
            tracing::error!("flushing the embedded cluster's change log failed");
        }
        if lines >= compact_after {
            let objs = known.iter().map(|((gr, _), o)| (gr.clone(), o.clone()));
            match write_snapshot(objs, rv, &dir) {
                Ok(()) => {
                    if let Some(fresh) = open_log(&log, true) {
                        w = fresh;
                        lines = 0;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "compacting the embedded cluster's change log failed")
                }
            }
        }
    }
    let _ = w.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(rv: u64, name: &str, obj: Option<Value>) -> PersistRecord {
        PersistRecord {
            rv,
            gr: ("".into(), "configmaps".into()),
            key: store::key("default", name),
            obj: obj.map(|o| Stored::alone(&("".into(), "configmaps".into()), &o)),
        }
    }

    fn cm(name: &str, rv: u64) -> Value {
        json!({"metadata": {"name": name, "namespace": "default", "uid": name, "resourceVersion": rv.to_string()}})
    }

    #[test]
    fn the_writer_compacts_and_a_reload_sees_the_latest_state() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = State::new(10);
        load(&mut st, dir.path()).unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        for (i, name) in ["a", "b", "c", "d"].iter().enumerate() {
            tx.send(rec(10 + i as u64, name, Some(cm(name, 10 + i as u64))))
                .unwrap();
        }
        tx.send(rec(20, "b", None)).unwrap();
        drop(tx);
        let d = dir.path().to_path_buf();
        std::thread::spawn(move || write_loop(d, Known::new(), 1, rx, 3))
            .join()
            .unwrap();
        let log_lines = std::fs::read_to_string(dir.path().join(LOG))
            .unwrap()
            .lines()
            .count();
        assert!(
            log_lines < 5,
            "the log was compacted ({log_lines} lines left)"
        );
        let mut again = State::new(10);
        load(&mut again, dir.path()).unwrap();
        let gr = ("".to_string(), "configmaps".to_string());
        let names: Vec<String> = again
            .list(&gr, None)
            .map(|(k, _)| k.1.to_string())
            .collect();
        assert_eq!(names, vec!["a", "c", "d"]);
        assert_eq!(again.rv, 20);
    }

    #[test]
    fn log_records_older_than_the_snapshot_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let objs = vec![(
            ("".to_string(), "configmaps".to_string()),
            Stored::alone(&("".into(), "configmaps".into()), &cm("a", 9)),
        )];
        write_snapshot(objs.into_iter(), 9, dir.path()).unwrap();
        // A stale delete from before the snapshot, as a crash mid-compaction would leave.
        std::fs::write(dir.path().join(LOG), b"{\"rv\":5,\"g\":\"\",\"r\":\"configmaps\",\"ns\":\"default\",\"n\":\"a\",\"o\":null}\n").unwrap();
        let mut st = State::new(10);
        load(&mut st, dir.path()).unwrap();
        assert!(
            st.get(&("".into(), "configmaps".into()), "default", "a")
                .is_some()
        );
        assert_eq!(st.rv, 9);
    }
}
