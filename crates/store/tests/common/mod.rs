//! Helpers shared by the store's integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use wisp_store::{Result, SqliteOptions, SqliteStore, WatchEvent};

pub fn open(dir: &Path) -> SqliteStore {
    SqliteStore::open(&dir.join("wisp.db"), SqliteOptions::default()).expect("open store")
}

pub fn open_with(dir: &Path, opts: SqliteOptions) -> SqliteStore {
    SqliteStore::open(&dir.join("wisp.db"), opts).expect("open store")
}

pub fn object(namespace: &str, name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"key": "value"}
    })
}

pub fn owned(namespace: &str, name: &str, owners: &[&Value]) -> Value {
    let mut obj = object(namespace, name);
    let refs: Vec<Value> = owners
        .iter()
        .map(|o| json!({"apiVersion": "v1", "kind": "ConfigMap", "name": o["metadata"]["name"], "uid": o["metadata"]["uid"]}))
        .collect();
    obj["metadata"]["ownerReferences"] = Value::Array(refs);
    obj
}

/// `metadata.resourceVersion` as a number.
pub fn rv(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no resourceVersion in {obj}"))
}

pub fn name(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or_default()
}

/// The next event; a generous bound only so that a bug fails the test instead of hanging it.
pub async fn next(rx: &mut mpsc::Receiver<Result<WatchEvent>>) -> WatchEvent {
    match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(e))) => panic!("watch error: {e}"),
        Ok(None) => panic!("watch ended"),
        Err(_) => panic!("no watch event within 30 s"),
    }
}
