//! Watch: replay from a resourceVersion, filters, concurrency, compaction, shutdown.

mod common;

use std::time::Duration;

use common::{next, object, open, open_with, rv};
use serde_json::json;
use wisp_store::{EventType, Preconditions, SqliteOptions, Store, StoreError};

const CM: &str = "configmaps";
const SVC: &str = "services.serving.knative.dev";

#[tokio::test]
async fn replays_exactly_the_changes_after_the_given_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut written = Vec::new();
    for i in 0..20 {
        let created = store
            .create(CM, object("default", &format!("o{i}")))
            .await
            .unwrap();
        written.push((EventType::Added, rv(&created)));
        if i % 3 == 0 {
            let mut changed = created.clone();
            changed["data"]["key"] = json!(format!("v{i}"));
            written.push((
                EventType::Modified,
                rv(&store.update(CM, changed).await.unwrap()),
            ));
        }
        if i % 5 == 0 {
            let deleted = store
                .delete(CM, "default", &format!("o{i}"), Preconditions::default())
                .await
                .unwrap();
            written.push((EventType::Deleted, rv(&deleted)));
        }
    }
    for from in [0, 1, 7, 20, written.len() as u64 - 1] {
        let mut rx = store.watch(None, None, from).await.unwrap();
        for (kind, at) in written.iter().filter(|(_, at)| *at > from) {
            let e = next(&mut rx).await;
            assert_eq!(
                (e.event_type, e.resource_version),
                (*kind, *at),
                "watch from {from}"
            );
            assert_eq!(rv(&e.object), *at);
        }
        // Then live changes.
        let live = store
            .create(CM, object("live", &format!("from-{from}")))
            .await
            .unwrap();
        let e = next(&mut rx).await;
        assert_eq!(
            (e.event_type, e.resource_version),
            (EventType::Added, rv(&live))
        );
        written.push((EventType::Added, rv(&live)));
    }
}

#[tokio::test]
async fn filters_by_resource_and_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut cm_all = store.watch(Some(CM), None, 0).await.unwrap();
    let mut cm_a = store.watch(Some(CM), Some("a"), 0).await.unwrap();
    let mut ns_b = store.watch(None, Some("b"), 0).await.unwrap();
    let mut cluster = store.watch(Some("namespaces"), Some(""), 0).await.unwrap();
    let mut writes = Vec::new();
    for (resource, ns, name) in [
        (CM, "a", "1"),
        (SVC, "a", "2"),
        (CM, "b", "3"),
        ("namespaces", "", "a"),
        (SVC, "b", "4"),
        (CM, "a", "5"),
    ] {
        let created = store.create(resource, object(ns, name)).await.unwrap();
        writes.push((resource, ns, rv(&created)));
    }
    let expect = |pred: &dyn Fn(&str, &str) -> bool| -> Vec<u64> {
        writes
            .iter()
            .filter(|(r, n, _)| pred(r, n))
            .map(|w| w.2)
            .collect()
    };
    for (rx, expected) in [
        (&mut cm_all, expect(&|r, _| r == CM)),
        (&mut cm_a, expect(&|r, n| r == CM && n == "a")),
        (&mut ns_b, expect(&|_, n| n == "b")),
        (&mut cluster, expect(&|r, _| r == "namespaces")),
    ] {
        let mut got = Vec::new();
        for _ in 0..expected.len() {
            got.push(next(rx).await.resource_version);
        }
        assert_eq!(got, expected);
    }
    // Nothing else arrives: the next matching event is a new write.
    let last = store.create(CM, object("a", "6")).await.unwrap();
    assert_eq!(next(&mut cm_a).await.resource_version, rv(&last));
    assert_eq!(next(&mut cm_all).await.resource_version, rv(&last));
    let last_b = store.create(SVC, object("b", "7")).await.unwrap();
    assert_eq!(next(&mut ns_b).await.resource_version, rv(&last_b));
}

/// Several tasks write 1000 objects while 3 watchers (started at different points) watch: each
/// sees every rv after its start exactly once, strictly increasing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_no_missed_or_duplicate_events() {
    const WRITERS: usize = 8;
    const PER_WRITER: usize = 125;
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // A little history before the first watcher.
    for i in 0..10 {
        store
            .create(SVC, object("pre", &format!("p{i}")))
            .await
            .unwrap();
    }
    let mut watchers = Vec::new();
    let spawn_watcher = |from: u64| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut rx = store.watch(None, None, from).await.unwrap();
            let mut seen = Vec::new();
            let mut last = from;
            loop {
                let e = next(&mut rx).await;
                assert!(
                    e.resource_version > last,
                    "rv {} after {last}",
                    e.resource_version
                );
                assert_eq!(rv(&e.object), e.resource_version);
                last = e.resource_version;
                seen.push(last);
                if e.object["metadata"]["name"] == "done" {
                    return (from, seen);
                }
            }
        })
    };
    watchers.push(spawn_watcher(0));
    watchers.push(spawn_watcher(5));
    let mut tasks = Vec::new();
    let (mid_load, at_mid_load) = tokio::sync::oneshot::channel();
    let mut mid_load = Some(mid_load);
    for w in 0..WRITERS {
        let store = store.clone();
        let mut mid_load = if w == 0 { mid_load.take() } else { None };
        tasks.push(tokio::spawn(async move {
            for i in 0..PER_WRITER {
                if i == PER_WRITER / 2
                    && let Some(signal) = mid_load.take()
                {
                    let _ = signal.send(());
                }
                let name = format!("w{w}-{i}");
                let created = store.create(CM, object("load", &name)).await.unwrap();
                if i % 4 == 0 {
                    let mut changed = created;
                    changed["data"]["key"] = json!(i);
                    store.update(CM, changed).await.unwrap();
                }
                if i % 10 == 0 {
                    store
                        .delete(CM, "load", &name, Preconditions::default())
                        .await
                        .unwrap();
                }
            }
        }));
    }
    // The third watcher starts mid-load, from whatever a list says.
    at_mid_load.await.unwrap();
    let mid = store.list(CM, None).await.unwrap().resource_version;
    watchers.push(spawn_watcher(mid));
    for t in tasks {
        t.await.unwrap();
    }
    let done = store.create(CM, object("load", "done")).await.unwrap();
    let total = rv(&done);
    assert_eq!(
        total,
        10 + (WRITERS * PER_WRITER) as u64 + (WRITERS * 32) as u64 + (WRITERS * 13) as u64 + 1
    );
    for w in watchers {
        let (from, seen) = w.await.unwrap();
        assert_eq!(
            seen,
            (from + 1..=total).collect::<Vec<_>>(),
            "watcher from {from}"
        );
    }
}

#[tokio::test]
async fn expired_after_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SqliteOptions {
        retain_changes: 10,
        retain_for: Duration::ZERO,
        watch_buffer: 4,
        ..SqliteOptions::default()
    };
    let store = open_with(dir.path(), opts);
    // A watcher that falls behind: it can have read at most one batch ahead of its receiver.
    let mut slow = store.watch(None, None, 0).await.unwrap();
    for i in 0..600 {
        store
            .create(CM, object("default", &format!("o{i}")))
            .await
            .unwrap();
    }
    // Not compacted yet: everything is there.
    assert_eq!(next(&mut slow).await.resource_version, 1);
    assert_eq!(store.compact().await.unwrap(), 590);
    let err = store.watch(None, None, 589).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Expired {
                requested: 589,
                oldest: 590
            }
        ),
        "{err}"
    );
    assert_eq!(err.to_string(), "too old resource version: 589 (590)");
    let mut rx = store.watch(None, None, 590).await.unwrap();
    for expected in 591..=600 {
        assert_eq!(next(&mut rx).await.resource_version, expected);
    }
    // The watcher that fell behind gets what it had read, then Expired, then the end.
    let mut last = 1;
    let mut expired = false;
    while let Some(item) = tokio::time::timeout(Duration::from_secs(30), slow.recv())
        .await
        .unwrap()
    {
        match item {
            Ok(e) => {
                assert!(
                    !expired && e.resource_version == last + 1 && e.resource_version <= 590,
                    "{}",
                    e.resource_version
                );
                last = e.resource_version;
            }
            Err(StoreError::Expired { .. }) => expired = true,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(expired);
    // Compaction survives a restart.
    drop((rx, store));
    let store = open(dir.path());
    assert!(matches!(
        store.watch(None, None, 0).await,
        Err(StoreError::Expired { .. })
    ));
    store.watch(None, None, 595).await.unwrap();
}

#[tokio::test]
async fn retention_by_time_keeps_recent_changes() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SqliteOptions {
        retain_changes: 10,
        ..SqliteOptions::default()
    };
    let store = open_with(dir.path(), opts);
    for i in 0..50 {
        store
            .create(CM, object("default", &format!("o{i}")))
            .await
            .unwrap();
    }
    // All 50 changes are younger than ten minutes: nothing goes.
    assert_eq!(store.compact().await.unwrap(), 0);
    store.watch(None, None, 0).await.unwrap();
}

#[tokio::test]
async fn watch_from_the_future_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut rx = store.watch(None, None, 3).await.unwrap();
    for i in 0..5 {
        store
            .create(CM, object("default", &format!("o{i}")))
            .await
            .unwrap();
    }
    assert_eq!(next(&mut rx).await.resource_version, 4);
    assert_eq!(next(&mut rx).await.resource_version, 5);
}

#[tokio::test]
async fn dropped_receivers_and_closed_store_end_watches() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SqliteOptions {
        watch_buffer: 2,
        ..SqliteOptions::default()
    };
    let store = open_with(dir.path(), opts);
    for i in 0..10 {
        store
            .create(SVC, object("default", &format!("o{i}")))
            .await
            .unwrap();
    }
    let metrics = tokio::runtime::Handle::current().metrics();
    let mut receivers = Vec::new();
    for from in 0..50 {
        // Some wait for new commits, some are blocked sending history to a full buffer.
        receivers.push(store.watch(None, None, from % 12).await.unwrap());
    }
    tokio::task::yield_now().await;
    assert_eq!(metrics.num_alive_tasks(), 50);
    drop(receivers);
    // Every watcher task ends on its own (bounded wait, so a bug fails instead of hanging).
    for _ in 0..3000 {
        if metrics.num_alive_tasks() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(metrics.num_alive_tasks(), 0, "watcher tasks left running");

    let mut rx = store.watch(Some(CM), None, 10).await.unwrap();
    let created = store.create(CM, object("default", "a")).await.unwrap();
    drop(store);
    // Closing the store delivers what was committed, then ends the stream.
    assert_eq!(next(&mut rx).await.resource_version, rv(&created));
    let end = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .unwrap();
    assert!(end.is_none(), "{end:?}");
}

#[tokio::test]
async fn slow_watcher_does_not_block_writers() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SqliteOptions {
        watch_buffer: 4,
        ..SqliteOptions::default()
    };
    let store = open_with(dir.path(), opts);
    let mut stuck = store.watch(None, None, 0).await.unwrap();
    for i in 0..300 {
        store
            .create(CM, object("default", &format!("o{i}")))
            .await
            .unwrap();
    }
    // The stuck watcher still delivers all of it, in order, when it is read at last.
    for expected in 1..=300 {
        assert_eq!(next(&mut stuck).await.resource_version, expected);
    }
}

/// Watchers of one resource each (which skip log reads for commits that touched only other
/// resources) see exactly their resource's changes, across a reopen and under concurrent writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_watchers_under_concurrent_writes() {
    const RESOURCES: [&str; 3] = ["a.test", "b.test", "c.test"];
    let dir = tempfile::tempdir().unwrap();
    let mut written: Vec<(usize, u64)> = Vec::new();
    {
        let store = open(dir.path());
        for i in 0..10 {
            let created = store
                .create(RESOURCES[i % 2], object("x", &format!("old-{i}")))
                .await
                .unwrap();
            written.push((i % 2, rv(&created)));
        }
    }
    let store = open(dir.path());
    let starts = [0u64, 3, 0];
    let watchers: Vec<_> = (0..3)
        .map(|r| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut rx = store
                    .watch(Some(RESOURCES[r]), None, starts[r])
                    .await
                    .unwrap();
                let mut seen = Vec::new();
                loop {
                    let e = next(&mut rx).await;
                    assert_eq!(e.resource, RESOURCES[r]);
                    if common::name(&e.object) == "done" {
                        return seen;
                    }
                    seen.push(e.resource_version);
                }
            })
        })
        .collect();
    let tasks: Vec<_> = (0..6)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                for i in 0..100 {
                    // Long runs on one resource, so many commits touch only one of them.
                    let r = (t + i / 25) % 3;
                    let created = store
                        .create(RESOURCES[r], object("x", &format!("t{t}-{i}")))
                        .await
                        .unwrap();
                    mine.push((r, rv(&created)));
                }
                mine
            })
        })
        .collect();
    for t in tasks {
        written.extend(t.await.unwrap());
    }
    for r in RESOURCES {
        store.create(r, object("x", "done")).await.unwrap();
    }
    for (r, w) in watchers.into_iter().enumerate() {
        let seen = w.await.unwrap();
        let mut expected: Vec<u64> = written
            .iter()
            .filter(|(res, at)| *res == r && *at > starts[r])
            .map(|w| w.1)
            .collect();
        expected.sort_unstable();
        assert_eq!(seen, expected, "watcher of {}", RESOURCES[r]);
    }
}
