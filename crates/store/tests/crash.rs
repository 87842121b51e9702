//! Crash safety: `kill -9` at any point loses no acknowledged write.
//!
//! The parent test re-runs this test binary as a child (selected by [`CHILD_ENV`]) that writes
//! to the store from several tasks and prints every acknowledged write. The parent kills it
//! with SIGKILL in the middle of its writes, reopens the store and checks that every write the
//! child saw acknowledged is there, and that the database is consistent. Three rounds on the
//! same data dir (the second with `Durability::Normal`, which must survive a process crash too).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use rusqlite::OpenFlags;
use serde_json::{Value, json};
use wisp_store::{Durability, Preconditions, SqliteOptions, SqliteStore, Store, StoreError};

const CHILD_ENV: &str = "WISP_STORE_CRASH_CHILD_DIR";
const DURABILITY_ENV: &str = "WISP_STORE_CRASH_CHILD_DURABILITY";
const ROUND_ENV: &str = "WISP_STORE_CRASH_CHILD_ROUND";
const CM: &str = "configmaps";
const TASKS: usize = 4;
const NAMES_PER_TASK: usize = 20;

/// The child's entry point: does nothing unless the parent set [`CHILD_ENV`].
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let durability = match std::env::var(DURABILITY_ENV).as_deref() {
        Ok("normal") => Durability::Normal,
        _ => Durability::Full,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let opts = SqliteOptions {
            durability,
            ..SqliteOptions::default()
        };
        let store = SqliteStore::open(&Path::new(&dir).join("wisp.db"), opts).unwrap();
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let store = store.clone();
                tokio::spawn(async move { child_task(&store, t).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
}

/// Prints one acknowledged write; exits when the parent has gone.
fn ack(line: String) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "ACK {line}")
        .and_then(|()| out.flush())
        .is_err()
    {
        std::process::exit(0);
    }
}

async fn child_task(store: &SqliteStore, t: usize) {
    // Names of one-off objects are unique per round: a killed round may leave some behind.
    let round = std::env::var(ROUND_ENV).unwrap_or_default();
    for step in 0..100_000usize {
        let name = format!("c{t}-{}", step % NAMES_PER_TASK);
        if step % 9 == 8 {
            // An owner with two dependents, deleted in one cascading step.
            let owner_name = format!("own{round}-{t}-{step}");
            let owner = store
                .create("owners.test", common::object("crash", &owner_name))
                .await
                .unwrap();
            let kids = [
                format!("kid{round}-{t}-{step}-a"),
                format!("kid{round}-{t}-{step}-b"),
            ];
            for kid in &kids {
                store
                    .create("kids.test", common::owned("crash", kid, &[&owner]))
                    .await
                    .unwrap();
            }
            store
                .delete(
                    "owners.test",
                    "crash",
                    &owner_name,
                    Preconditions::default(),
                )
                .await
                .unwrap();
            ack(format!("gone {owner_name} {} {}", kids[0], kids[1]));
            continue;
        }
        let written = match store.get(CM, "crash", &name).await {
            Err(StoreError::NotFound { .. }) => {
                let mut obj = common::object("crash", &name);
                obj["spec"] = json!({"counter": 0});
                store.create(CM, obj).await.unwrap()
            }
            Ok(mut obj) => {
                let counter = obj["spec"]["counter"].as_u64().unwrap() + 1;
                obj["spec"]["counter"] = json!(counter);
                if step % 2 == 0 {
                    store.update(CM, obj).await.unwrap()
                } else {
                    obj["status"] = json!({"observed": counter});
                    let obj = store.update(CM, obj).await.unwrap();
                    store.update_status(CM, obj).await.unwrap()
                }
            }
            Err(e) => panic!("{e}"),
        };
        ack(format!(
            "obj {} {name} {}",
            common::rv(&written),
            written["spec"]["counter"]
        ));
    }
}

#[derive(Default)]
struct Acked {
    /// name -> (highest acknowledged rv, highest acknowledged counter)
    objects: BTreeMap<String, (u64, u64)>,
    /// (resource, name) of objects whose deletion was acknowledged
    gone: BTreeSet<(&'static str, String)>,
    lines: usize,
}

impl Acked {
    fn record(&mut self, line: &str) {
        let Some(rest) = line.strip_prefix("ACK ") else {
            return;
        };
        let parts: Vec<&str> = rest.split_whitespace().collect();
        match parts.as_slice() {
            ["obj", rv, name, counter] => {
                let (rv, counter) = (rv.parse().unwrap(), counter.parse().unwrap());
                let entry = self.objects.entry((*name).to_owned()).or_default();
                assert!(
                    rv > entry.0 && counter >= entry.1,
                    "acks of {name} go forward"
                );
                *entry = (rv, counter);
            }
            ["gone", owner, kid_a, kid_b] => {
                self.gone.insert(("owners.test", (*owner).to_owned()));
                self.gone.insert(("kids.test", (*kid_a).to_owned()));
                self.gone.insert(("kids.test", (*kid_b).to_owned()));
            }
            _ => panic!("bad line from the child: {line}"),
        }
        self.lines += 1;
    }
}

#[test]
fn kill_9_loses_no_acknowledged_write() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut acked = Acked::default();
    for (round, durability) in ["full", "normal", "full"].into_iter().enumerate() {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .env(DURABILITY_ENV, durability)
            .env(ROUND_ENV, round.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        // Let it get well into its writes, at a different point each round, then SIGKILL it.
        let kill_after = acked.lines + 700 + 311 * round;
        let mut line = String::new();
        while acked.lines < kill_after {
            line.clear();
            let n = out.read_line(&mut line).unwrap();
            assert!(n > 0, "the child ended early: {:?}", child.wait());
            acked.record(line.trim_end());
        }
        child.kill().unwrap();
        // Whatever it printed before dying was acknowledged too; a torn last line was not.
        loop {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 {
                break;
            }
            if line.ends_with('\n') {
                acked.record(line.trim_end());
            }
        }
        let status = child.wait().unwrap();
        assert!(!status.success(), "the child was killed: {status:?}");
        verify(dir.path(), &acked);
    }
}

/// Every acknowledged write is there, and the database is consistent.
fn verify(dir: &Path, acked: &Acked) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = common::open(dir);
        let current = store.current_revision().await.unwrap();
        for (name, (rv, counter)) in &acked.objects {
            let obj = store
                .get(CM, "crash", name)
                .await
                .unwrap_or_else(|e| panic!("acknowledged {name}: {e}"));
            assert!(
                common::rv(&obj) >= *rv,
                "{name}: stored {} < acknowledged {rv}",
                common::rv(&obj)
            );
            assert!(
                obj["spec"]["counter"].as_u64().unwrap() >= *counter,
                "{name}: {obj}"
            );
            assert!(common::rv(&obj) <= current);
        }
        for (resource, name) in &acked.gone {
            let found = store.get(resource, "crash", name).await;
            assert!(
                matches!(found, Err(StoreError::NotFound { .. })),
                "{resource}/{name} came back: {found:?}"
            );
        }
        // The change log replays to exactly the stored state.
        let mut rx = store.watch(None, None, 0).await.unwrap();
        let mut replayed: BTreeMap<(String, String, String), Value> = BTreeMap::new();
        for expected in 1..=current {
            let e = common::next(&mut rx).await;
            assert_eq!(e.resource_version, expected);
            let key = (
                e.resource.clone(),
                e.object["metadata"]["namespace"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                common::name(&e.object).to_owned(),
            );
            match e.event_type {
                wisp_store::EventType::Deleted => replayed.remove(&key),
                _ => replayed.insert(key, e.object),
            };
        }
        let mut stored = BTreeMap::new();
        for resource in [CM, "owners.test", "kids.test"] {
            for obj in store.list(resource, None).await.unwrap().items {
                let key = (
                    resource.to_owned(),
                    "crash".to_owned(),
                    common::name(&obj).to_owned(),
                );
                stored.insert(key, obj);
            }
        }
        assert_eq!(replayed.len(), stored.len());
        assert!(
            replayed == stored,
            "the change log does not replay to the stored objects"
        );
    });
    // Low-level invariants, read straight from the file.
    let conn = rusqlite::Connection::open_with_flags(
        dir.join("wisp.db"),
        OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let (meta_rv, compacted): (i64, i64) = conn
        .query_row("SELECT rv, compacted FROM meta", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    let (count, min, max): (i64, Option<i64>, Option<i64>) = conn
        .query_row("SELECT count(*), min(rv), max(rv) FROM changes", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(
        (count, min, max),
        (meta_rv - compacted, Some(compacted + 1), Some(meta_rv)),
        "change log has gaps"
    );
    let max_object: i64 = conn
        .query_row("SELECT max(rv) FROM objects", [], |r| r.get(0))
        .unwrap();
    assert!(max_object <= meta_rv);
    let mismatched: i64 = conn
        .query_row(
            "SELECT count(*) FROM objects o LEFT JOIN changes c ON c.rv = o.rv
             WHERE c.rv IS NULL OR c.value != o.value OR c.resource != o.resource OR c.name != o.name
                OR json_extract(o.value, '$.metadata.resourceVersion') != CAST(o.rv AS TEXT)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(mismatched, 0, "objects that do not match their last change");
    let dangling: i64 = conn
        .query_row(
            "SELECT count(*) FROM owners w LEFT JOIN objects o
               ON o.resource = w.resource AND o.namespace = w.namespace AND o.name = w.name
             WHERE o.name IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(dangling, 0, "owner index rows for missing objects");
}
