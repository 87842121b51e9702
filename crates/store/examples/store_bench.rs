//! Rough timings of the SQLite store on this machine (a print, not a test):
//! `cargo run -p wisp-store --release --example store_bench [-- N]`
//!
//! For each durability: N sequential creates, N creates from 8 concurrent tasks, N status
//! updates from 8 tasks, get and list latency, and the time to reopen the store.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wisp_store::{Durability, SqliteOptions, SqliteStore, Store};

const RESOURCE: &str = "services.serving.knative.dev";

fn service(name: &str) -> Value {
    json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": {"app": name, "team": "bench"},
            "annotations": {"serving.knative.dev/creator": "bench", "serving.knative.dev/lastModifier": "bench"}
        },
        "spec": {
            "template": {
                "metadata": {"annotations": {"autoscaling.knative.dev/target": "10"}},
                "spec": {
                    "containerConcurrency": 0,
                    "timeoutSeconds": 300,
                    "containers": [{
                        "image": "ghcr.io/knative/helloworld-go:latest",
                        "env": [{"name": "TARGET", "value": "wisp"}],
                        "ports": [{"containerPort": 8080}],
                        "readinessProbe": {"successThreshold": 1, "tcpSocket": {"port": 0}},
                        "resources": {}
                    }]
                }
            },
            "traffic": [{"latestRevision": true, "percent": 100}]
        }
    })
}

fn status(generation: u64) -> Value {
    json!({
        "observedGeneration": generation,
        "conditions": [
            {"type": "ConfigurationsReady", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
            {"type": "RoutesReady", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}
        ],
        "latestCreatedRevisionName": "x-00001",
        "latestReadyRevisionName": "x-00001",
        "url": "http://x.default.localhost",
        "traffic": [{"latestRevision": true, "percent": 100, "revisionName": "x-00001"}]
    })
}

/// Resident memory of this process (Linux), for a rough look at what the store keeps.
fn rss() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    format!("RSS {:.1} MB", kb / 1024.0)
}

fn rate(n: usize, took: Duration) -> String {
    format!(
        "{:>8.0}/s ({:.1} ms for {n})",
        n as f64 / took.as_secs_f64(),
        took.as_secs_f64() * 1e3
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    fsync_cost();
    for durability in [Durability::Full, Durability::Normal] {
        let dir = tempfile::tempdir_in(".").expect("temp dir");
        let path = dir.path().join("wisp.db");
        let opts = SqliteOptions {
            durability,
            ..SqliteOptions::default()
        };
        let store = SqliteStore::open(&path, opts.clone()).expect("open");
        println!("== {durability:?} ==");

        let start = Instant::now();
        for i in 0..n {
            store
                .create(RESOURCE, service(&format!("seq-{i}")))
                .await
                .expect("create");
        }
        println!("sequential creates        {}", rate(n, start.elapsed()));

        let start = Instant::now();
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let store = store.clone();
                tokio::spawn(async move {
                    for i in 0..n / 8 {
                        store
                            .create(RESOURCE, service(&format!("par-{t}-{i}")))
                            .await
                            .expect("create");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        println!(
            "8 concurrent creates      {}",
            rate(n / 8 * 8, start.elapsed())
        );

        let start = Instant::now();
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let store = store.clone();
                tokio::spawn(async move {
                    for i in 0..n / 8 {
                        let mut obj = store
                            .get(RESOURCE, "default", &format!("par-{t}-{i}"))
                            .await
                            .expect("get");
                        obj["status"] = status(1);
                        store.update_status(RESOURCE, obj).await.expect("status");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        println!(
            "8 concurrent get+status   {}",
            rate(n / 8 * 8, start.elapsed())
        );
        println!("after writes              {}", rss());

        let start = Instant::now();
        let gets = 10_000;
        for i in 0..gets {
            store
                .get(RESOURCE, "default", &format!("seq-{}", i % n))
                .await
                .expect("get");
        }
        println!(
            "get                       {:.1} us each",
            start.elapsed().as_secs_f64() * 1e6 / gets as f64
        );

        let start = Instant::now();
        let list = store.list(RESOURCE, None).await.expect("list");
        println!(
            "list of {}              {:.1} ms",
            list.items.len(),
            start.elapsed().as_secs_f64() * 1e3
        );
        println!("holding the list          {}", rss());
        drop(list);

        drop(store);
        let start = Instant::now();
        let store = SqliteStore::open(&path, opts).expect("reopen");
        let rv = store.current_revision().await.expect("rv");
        println!(
            "reopen at rv {rv}          {:.1} ms",
            start.elapsed().as_secs_f64() * 1e3
        );
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        println!("db file                   {:.1} MB", size as f64 / 1e6);
    }
}

/// What one fsync of a small append costs on the file system of the current directory.
fn fsync_cost() {
    use std::io::Write;
    let dir = tempfile::tempdir_in(".").expect("temp dir");
    let mut file = std::fs::File::create(dir.path().join("probe")).expect("probe file");
    let rounds = 500;
    let start = Instant::now();
    for _ in 0..rounds {
        file.write_all(&[0u8; 4096]).expect("write");
        file.sync_data().expect("fdatasync");
    }
    println!(
        "fdatasync of a 4 KiB append: {:.3} ms",
        start.elapsed().as_secs_f64() * 1e3 / rounds as f64
    );
}
