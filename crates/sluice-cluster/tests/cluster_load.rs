//! Load behaviour of the embedded cluster: many open watches and concurrent writers.

use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_cluster::{ClusterConfig, EmbeddedCluster};

/// Reads a watch stream until `want` ADDED events arrived; returns their resourceVersions.
async fn collect(mut r: reqwest::Response, want: usize) -> Vec<u64> {
    let mut buf = Vec::new();
    let mut rvs = Vec::new();
    while rvs.len() < want {
        let Ok(Some(chunk)) = r.chunk().await else {
            break;
        };
        buf.extend_from_slice(&chunk);
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let ev: Value = serde_json::from_slice(&line).expect("each line is one JSON event");
            if ev["type"] == "ADDED" {
                rvs.push(
                    ev["object"]["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap()
                        .parse()
                        .unwrap(),
                );
            }
        }
    }
    rvs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_watcher_sees_every_write_in_order_under_concurrent_load() {
    const WATCHERS: usize = 50;
    const WRITERS: usize = 4;
    const PER_WRITER: usize = 250;
    let c = EmbeddedCluster::start(ClusterConfig::default())
        .await
        .unwrap();
    let base = format!("http://{}", c.addr());
    let http = reqwest::Client::new();
    let mut watches = Vec::new();
    for _ in 0..WATCHERS {
        let r = http
            .get(format!("{base}/api/v1/namespaces/default/configmaps?watch=1&allowWatchBookmarks=true&timeoutSeconds=120"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        watches.push(tokio::spawn(collect(r, WRITERS * PER_WRITER)));
    }
    let start = Instant::now();
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (http, base) = (http.clone(), base.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..PER_WRITER {
                let body =
                    format!(r#"{{"metadata":{{"name":"cm-{w}-{i}"}},"data":{{"k":"{i}"}}}}"#);
                let r = http
                    .post(format!("{base}/api/v1/namespaces/default/configmaps"))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 201);
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let elapsed = start.elapsed();
    eprintln!(
        "{} writes with {WATCHERS} watches in {elapsed:?}",
        WRITERS * PER_WRITER
    );
    for w in watches {
        let rvs = tokio::time::timeout(Duration::from_secs(60), w)
            .await
            .expect("watch delivered")
            .unwrap();
        assert_eq!(rvs.len(), WRITERS * PER_WRITER);
        assert!(
            rvs.windows(2).all(|p| p[0] < p[1]),
            "events arrive in resourceVersion order"
        );
    }
    c.shutdown().await;
}
