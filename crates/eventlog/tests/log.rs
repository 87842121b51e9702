//! The SQLite event log against real files in temporary directories.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use wisp_eventlog::{
    Durability, EventLog, LogError, Record, Seq, SqliteLog, SqliteOptions, Start, StreamStats,
};

const S: &str = "broker/default/orders";

fn open(dir: &Path) -> SqliteLog {
    open_with(dir, SqliteOptions::default())
}

fn open_with(dir: &Path, opts: SqliteOptions) -> SqliteLog {
    SqliteLog::open(&dir.join("events.db"), opts).expect("open event log")
}

fn payload(text: impl Into<String>) -> Bytes {
    Bytes::from(text.into())
}

fn seqs(records: &[Record]) -> Vec<Seq> {
    records.iter().map(|r| r.seq).collect()
}

/// Everything after `after`, in reads of `max`.
async fn read_all(log: &dyn EventLog, stream: &str, mut after: Seq, max: usize) -> Vec<Record> {
    let mut all = Vec::new();
    loop {
        let batch = log.read(stream, after, max).await.unwrap();
        assert!(batch.len() <= max);
        let Some(last) = batch.last() else {
            return all;
        };
        after = last.seq;
        all.extend(batch);
    }
}

/// A stream with a consumer at the head, so that nothing is trimmed.
async fn stream_with_keeper(log: &dyn EventLog, stream: &str) {
    log.ensure_stream(stream).await.unwrap();
    log.ensure_consumer(stream, &format!("{stream}/keeper"), Start::Head)
        .await
        .unwrap();
}

#[tokio::test]
async fn append_and_read_in_order_across_batches() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    stream_with_keeper(&log, S).await;
    let mut expected = Vec::new();
    for call in 0..20 {
        let payloads: Vec<Bytes> = (0..call % 4 + 1)
            .map(|i| payload(format!("e{call}-{i}")))
            .collect();
        let got = log.append(S, payloads.clone()).await.unwrap();
        assert_eq!(got.len(), payloads.len());
        for (seq, p) in got.into_iter().zip(payloads) {
            assert_eq!(seq, expected.len() as Seq + 1, "seqs are contiguous");
            expected.push(p);
        }
    }
    for max in [1, 3, 7, 1000] {
        let records = read_all(&log, S, 0, max).await;
        assert_eq!(
            seqs(&records),
            (1..=expected.len() as Seq).collect::<Vec<_>>()
        );
        let payloads: Vec<Bytes> = records.into_iter().map(|r| r.payload).collect();
        assert_eq!(payloads, expected);
    }
    let tail = log.read(S, 45, 3).await.unwrap();
    assert_eq!(seqs(&tail), vec![46, 47, 48]);
    assert!(log.read(S, 50, 10).await.unwrap().is_empty());
    assert!(log.read(S, 999, 10).await.unwrap().is_empty());
    assert_eq!(log.append(S, Vec::new()).await.unwrap(), Vec::<Seq>::new());
    assert!(matches!(
        log.append("missing", vec![payload("x")]).await,
        Err(LogError::UnknownStream(_))
    ));
    assert!(matches!(
        log.read("missing", 0, 1).await,
        Err(LogError::UnknownStream(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_get_distinct_increasing_seqs() {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> = Arc::new(open(dir.path()));
    stream_with_keeper(log.as_ref(), S).await;
    let tasks: Vec<_> = (0..32)
        .map(|t| {
            let log = log.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                for n in 0..40 {
                    let payloads: Vec<Bytes> = (0..n % 3 + 1)
                        .map(|k| payload(format!("t{t}-{n}-{k}")))
                        .collect();
                    let got = log.append(S, payloads.clone()).await.unwrap();
                    mine.extend(got.into_iter().zip(payloads));
                }
                mine
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        let mine = task.await.unwrap();
        assert!(
            mine.windows(2).all(|w| w[0].0 < w[1].0),
            "one caller's seqs increase"
        );
        all.extend(mine);
    }
    let distinct: BTreeSet<Seq> = all.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(distinct.len(), all.len(), "no seq handed out twice");
    assert_eq!(distinct, (1..=all.len() as Seq).collect(), "no gaps");
    let stored = read_all(log.as_ref(), S, 0, 500).await;
    assert_eq!(stored.len(), all.len());
    all.sort_by_key(|(seq, _)| *seq);
    for (record, (seq, p)) in stored.iter().zip(&all) {
        assert_eq!((record.seq, &record.payload), (*seq, p));
    }
}

#[tokio::test]
async fn consumer_cursor_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path());
        stream_with_keeper(&log, S).await;
        assert_eq!(log.ensure_consumer(S, "c", Start::Head).await.unwrap(), 0);
        log.append(S, (0..10).map(|i| payload(format!("{i}"))).collect())
            .await
            .unwrap();
        log.commit("c", 4).await.unwrap();
        log.commit("c", 6).await.unwrap();
        // Dropping the last handle persists committed cursors.
    }
    let log = open(dir.path());
    assert_eq!(log.ensure_consumer(S, "c", Start::Head).await.unwrap(), 6);
    assert_eq!(seqs(&log.read(S, 6, 100).await.unwrap()), vec![7, 8, 9, 10]);
    // The head survives too: the next append continues the sequence.
    assert_eq!(log.append(S, vec![payload("n")]).await.unwrap(), vec![11]);
}

#[tokio::test]
async fn committed_cursors_are_persisted_lazily_but_soon() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SqliteOptions {
        cursor_flush_interval: Duration::from_millis(20),
        ..SqliteOptions::default()
    };
    let log = open_with(dir.path(), opts);
    stream_with_keeper(&log, S).await;
    log.ensure_consumer(S, "c", Start::Head).await.unwrap();
    log.append(S, vec![payload("a"), payload("b")])
        .await
        .unwrap();
    log.commit("c", 2).await.unwrap();
    // No write comes by: the writer's timer persists it. Read the file directly.
    let conn = rusqlite::Connection::open(dir.path().join("events.db")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stored: i64 = conn
            .query_row("SELECT cursor FROM consumers WHERE name = 'c'", [], |r| {
                r.get(0)
            })
            .unwrap();
        if stored == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "cursor not persisted");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn tail_consumers_see_only_later_records_and_head_consumers_all() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    stream_with_keeper(&log, S).await;
    log.append(S, vec![payload("1"), payload("2"), payload("3")])
        .await
        .unwrap();
    assert_eq!(
        log.ensure_consumer(S, "tail", Start::Tail).await.unwrap(),
        3
    );
    assert_eq!(
        log.ensure_consumer(S, "head", Start::Head).await.unwrap(),
        0
    );
    log.append(S, vec![payload("4")]).await.unwrap();
    assert_eq!(seqs(&log.read(S, 3, 10).await.unwrap()), vec![4]);
    assert_eq!(seqs(&log.read(S, 0, 10).await.unwrap()), vec![1, 2, 3, 4]);
    // Idempotent: an existing consumer keeps its cursor, whatever `start` says.
    log.commit("head", 2).await.unwrap();
    assert_eq!(
        log.ensure_consumer(S, "tail", Start::Head).await.unwrap(),
        3
    );
    assert_eq!(
        log.ensure_consumer(S, "head", Start::Tail).await.unwrap(),
        2
    );
    // Consumer names are global.
    log.ensure_stream("other").await.unwrap();
    let err = log
        .ensure_consumer("other", "tail", Start::Tail)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LogError::ConsumerOnOtherStream { existing, .. } if existing == S),
        "{err}"
    );
    assert!(matches!(
        log.ensure_consumer("missing", "x", Start::Tail).await,
        Err(LogError::UnknownStream(_))
    ));
}

#[tokio::test]
async fn commit_is_monotonic_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path());
        stream_with_keeper(&log, S).await;
        log.ensure_consumer(S, "c", Start::Head).await.unwrap();
        log.append(S, (0..8).map(|i| payload(format!("{i}"))).collect())
            .await
            .unwrap();
        log.commit("c", 5).await.unwrap();
        log.commit("c", 3).await.unwrap();
        assert_eq!(log.ensure_consumer(S, "c", Start::Head).await.unwrap(), 5);
        log.flush().await.unwrap();
        log.commit("c", 1).await.unwrap();
        let err = log.commit("c", 9).await.unwrap_err();
        assert!(
            matches!(
                err,
                LogError::CursorBeyondHead {
                    cursor: 9,
                    head: 8,
                    ..
                }
            ),
            "{err}"
        );
        assert!(matches!(
            log.commit("nobody", 1).await,
            Err(LogError::UnknownConsumer(_))
        ));
    }
    let log = open(dir.path());
    assert_eq!(log.ensure_consumer(S, "c", Start::Head).await.unwrap(), 5);
}

fn stats(head: Seq, oldest: Option<Seq>, len: u64) -> StreamStats {
    StreamStats { head, oldest, len }
}

#[tokio::test]
async fn trim_removes_only_what_every_consumer_passed() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.ensure_stream(S).await.unwrap();
    log.ensure_consumer(S, "a", Start::Head).await.unwrap();
    log.ensure_consumer(S, "b", Start::Head).await.unwrap();
    log.append(S, (1..=10).map(|i| payload(format!("{i}"))).collect())
        .await
        .unwrap();
    log.commit("a", 7).await.unwrap();
    log.commit("b", 4).await.unwrap();
    log.flush().await.unwrap();
    assert_eq!(log.stats(S).await.unwrap(), stats(10, Some(5), 6));
    assert_eq!(
        seqs(&read_all(&log, S, 0, 100).await),
        (5..=10).collect::<Vec<_>>(),
        "b still needs 5 and up"
    );
    log.commit("b", 9).await.unwrap();
    log.flush().await.unwrap();
    assert_eq!(log.stats(S).await.unwrap(), stats(10, Some(8), 3));
    log.delete_consumer("a").await.unwrap();
    log.delete_consumer("a").await.unwrap();
    log.flush().await.unwrap();
    assert_eq!(log.stats(S).await.unwrap(), stats(10, Some(10), 1));
    assert!(matches!(
        log.commit("a", 10).await,
        Err(LogError::UnknownConsumer(_))
    ));

    // Trimmed state survives a reopen, and the count matches the rows.
    drop(log);
    let log = open(dir.path());
    assert_eq!(log.stats(S).await.unwrap(), stats(10, Some(10), 1));
    assert_eq!(seqs(&read_all(&log, S, 0, 100).await), vec![10]);
}

#[tokio::test]
async fn a_stream_without_consumers_keeps_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.ensure_stream(S).await.unwrap();
    assert_eq!(
        log.append(S, vec![payload("a"), payload("b")])
            .await
            .unwrap(),
        vec![1, 2]
    );
    log.flush().await.unwrap();
    assert_eq!(log.stats(S).await.unwrap(), stats(2, None, 0));
    // A consumer created now starts after them, and seqs carry on.
    assert_eq!(
        log.ensure_consumer(S, "late", Start::Head).await.unwrap(),
        2
    );
    assert_eq!(log.append(S, vec![payload("c")]).await.unwrap(), vec![3]);
    assert_eq!(seqs(&log.read(S, 2, 10).await.unwrap()), vec![3]);
}

#[tokio::test]
async fn large_trims_happen_in_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SqliteOptions {
        trim_chunk: 7,
        ..SqliteOptions::default()
    };
    let log = open_with(dir.path(), opts);
    log.ensure_stream(S).await.unwrap();
    log.ensure_consumer(S, "c", Start::Head).await.unwrap();
    log.append(S, (1..=100).map(|i| payload(format!("{i}"))).collect())
        .await
        .unwrap();
    log.commit("c", 95).await.unwrap();
    // `flush` returns once the trimming it made due is finished.
    log.flush().await.unwrap();
    assert_eq!(log.stats(S).await.unwrap(), stats(100, Some(96), 5));
}

#[tokio::test]
async fn delete_stream_drops_records_consumers_and_watchers() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    stream_with_keeper(&log, S).await;
    log.ensure_consumer(S, "c", Start::Head).await.unwrap();
    log.append(S, vec![payload("a"), payload("b")])
        .await
        .unwrap();
    let mut head = log.watch(S).await.unwrap();
    log.delete_stream(S).await.unwrap();
    log.delete_stream(S).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        while head.changed().await.is_ok() {}
    })
    .await
    .expect("the watch channel closes");
    assert!(matches!(
        log.read(S, 0, 10).await,
        Err(LogError::UnknownStream(_))
    ));
    assert!(matches!(
        log.stats(S).await,
        Err(LogError::UnknownStream(_))
    ));
    assert!(matches!(
        log.commit("c", 1).await,
        Err(LogError::UnknownConsumer(_))
    ));
    // A new stream of the same name starts afresh; the consumer name is free again.
    log.ensure_stream(S).await.unwrap();
    assert_eq!(log.stats(S).await.unwrap(), stats(0, None, 0));
    assert_eq!(log.ensure_consumer(S, "c", Start::Head).await.unwrap(), 0);
    assert_eq!(log.append(S, vec![payload("x")]).await.unwrap(), vec![1]);
    assert_eq!(log.read(S, 0, 10).await.unwrap()[0].payload, payload("x"));
    let conn = rusqlite::Connection::open(dir.path().join("events.db")).unwrap();
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM records", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1, "the old stream's records are gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_wakes_on_append() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open(dir.path()));
    stream_with_keeper(log.as_ref(), S).await;
    let mut head = log.watch(S).await.unwrap();
    assert_eq!(*head.borrow_and_update(), 0);
    let waiter = tokio::spawn(async move { *head.wait_for(|h| *h >= 3).await.unwrap() });
    log.append(S, vec![payload("a")]).await.unwrap();
    log.append(S, vec![payload("b"), payload("c")])
        .await
        .unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("woken")
        .unwrap();
    assert_eq!(seen, 3);
    // Reads never go past what the watch published.
    let head = *log.watch(S).await.unwrap().borrow();
    assert_eq!(
        seqs(&log.read(S, 0, 10).await.unwrap()),
        (1..=head).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn reads_fall_back_to_sqlite_after_the_tail_cache_evicted() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SqliteOptions {
        // Room for about ten 100-byte records.
        tail_cache_bytes: 1500,
        ..SqliteOptions::default()
    };
    let log = open_with(dir.path(), opts);
    stream_with_keeper(&log, S).await;
    let body = |i: u64| payload(format!("{i:0100}"));
    for i in 1..=100u64 {
        log.append(S, vec![body(i)]).await.unwrap();
    }
    let records = read_all(&log, S, 0, 16).await;
    assert_eq!(records.len(), 100);
    assert!(records.iter().all(|r| r.payload == body(r.seq)));

    // Tell the two paths apart: change the stored payloads behind the log's back. An old
    // record then reads as changed (it came from SQLite); the newest still reads as appended
    // (it came from memory).
    let conn = rusqlite::Connection::open(dir.path().join("events.db")).unwrap();
    conn.execute("UPDATE records SET payload = X'00'", [])
        .unwrap();
    drop(conn);
    let old = log.read(S, 0, 1).await.unwrap();
    assert_eq!(old[0].payload, Bytes::from_static(&[0]), "read from SQLite");
    let newest = log.read(S, 99, 1).await.unwrap();
    assert_eq!(newest[0].payload, body(100), "read from the tail cache");
}

#[tokio::test]
async fn a_full_log_refuses_appends_and_recovers_once_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SqliteOptions {
        max_bytes: Some(256 << 10),
        ..SqliteOptions::default()
    };
    let log = open_with(dir.path(), opts);
    log.ensure_stream(S).await.unwrap();
    log.ensure_consumer(S, "slow", Start::Head).await.unwrap();
    let body = |seq: Seq| payload(format!("{seq:01000}"));
    let mut acked = 0;
    let err = loop {
        match log.append(S, vec![body(acked + 1)]).await {
            Ok(seqs) => {
                assert_eq!(seqs, vec![acked + 1]);
                acked += 1;
            }
            Err(err) => break err,
        }
        assert!(acked < 10_000, "the size limit is not enforced");
    };
    assert!(matches!(err, LogError::DiskFull { .. }), "{err}");
    assert!(err.is_retryable());
    // 1 KB events fill 256 KiB at about 1.1 KB each (no overflow page per record).
    assert!(acked > 200, "only {acked} 1 KB records fit in 256 KiB");
    // The failed commit left nothing behind, and everything acknowledged is intact.
    assert_eq!(*log.watch(S).await.unwrap().borrow(), acked);
    assert_eq!(log.stats(S).await.unwrap(), stats(acked, Some(1), acked));
    let records = read_all(&log, S, 0, 64).await;
    assert_eq!(seqs(&records), (1..=acked).collect::<Vec<_>>());
    assert!(records.iter().all(|r| r.payload == body(r.seq)));
    // The consumer catches up, its records are trimmed, and appends fit again, with no gap.
    log.commit("slow", acked).await.unwrap();
    log.flush().await.unwrap();
    assert_eq!(log.stats(S).await.unwrap(), stats(acked, None, 0));
    assert_eq!(
        log.append(S, vec![body(acked + 1)]).await.unwrap(),
        vec![acked + 1]
    );
}

#[tokio::test]
async fn a_second_open_of_the_same_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let err = SqliteLog::open(&dir.path().join("events.db"), SqliteOptions::default()).unwrap_err();
    assert!(matches!(err, LogError::Locked { .. }), "{err}");
    assert!(err.to_string().contains("another wisp process"), "{err}");
    drop(log);
    open(dir.path());
}

#[tokio::test]
async fn foreign_and_newer_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let foreign = dir.path().join("wisp.db");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE objects (id INTEGER)")
        .unwrap();
    let err = SqliteLog::open(&foreign, SqliteOptions::default()).unwrap_err();
    assert!(matches!(err, LogError::Corrupt { .. }), "{err}");

    drop(open(dir.path()));
    rusqlite::Connection::open(dir.path().join("events.db"))
        .unwrap()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    let err = SqliteLog::open(&dir.path().join("events.db"), SqliteOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            LogError::SchemaTooNew {
                found: 99,
                supported: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade wisp"));
}

/// The group-commit benchmark: 64 concurrent callers appending one 200-byte payload each,
/// durable, on two runtime workers. Run it with
/// `cargo test --release -p wisp-eventlog --test log -- --ignored --nocapture append_throughput`.
#[test]
#[ignore = "benchmark; run explicitly with --ignored --nocapture"]
fn append_throughput() {
    const CALLERS: usize = 64;
    const RUN: Duration = Duration::from_secs(4);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for (durability, dispatcher) in [
        (Durability::Full, false),
        (Durability::Full, true),
        (Durability::Process, false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let opts = SqliteOptions {
            durability,
            ..SqliteOptions::default()
        };
        let log = Arc::new(open_with(dir.path(), opts));
        let (appended, delivered, elapsed) = runtime.block_on(async {
            log.ensure_stream(S).await.unwrap();
            log.ensure_consumer(S, "dispatcher", Start::Tail)
                .await
                .unwrap();
            let started = Instant::now();
            // A dispatcher that reads and commits as it goes, as a trigger would.
            let reader = dispatcher.then(|| {
                let log = log.clone();
                tokio::spawn(async move {
                    let (mut cursor, mut delivered) = (0, 0u64);
                    let mut head = log.watch(S).await.unwrap();
                    while started.elapsed() < RUN {
                        let records = log.read(S, cursor, 512).await.unwrap();
                        let Some(last) = records.last() else {
                            let _ = tokio::time::timeout(
                                Duration::from_millis(50),
                                head.wait_for(|h| *h > cursor),
                            )
                            .await;
                            continue;
                        };
                        cursor = last.seq;
                        delivered += records.len() as u64;
                        log.commit("dispatcher", cursor).await.unwrap();
                    }
                    delivered
                })
            });
            let callers: Vec<_> = (0..CALLERS)
                .map(|_| {
                    let log = log.clone();
                    tokio::spawn(async move {
                        let body = Bytes::from(vec![b'x'; 200]);
                        let mut n = 0u64;
                        while started.elapsed() < RUN {
                            log.append(S, vec![body.clone()]).await.unwrap();
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            let mut appended = 0;
            for caller in callers {
                appended += caller.await.unwrap();
            }
            let elapsed = started.elapsed();
            let delivered = match reader {
                Some(reader) => reader.await.unwrap(),
                None => 0,
            };
            (appended, delivered, elapsed)
        });
        let rate = appended as f64 / elapsed.as_secs_f64();
        println!(
            "append_throughput: {durability:?}{}: {appended} appends in {:.2} s = {rate:.0} appends/s ({CALLERS} callers, 200 B){}",
            if dispatcher { " + dispatcher" } else { "" },
            elapsed.as_secs_f64(),
            if dispatcher {
                format!(", {delivered} read back and committed")
            } else {
                String::new()
            }
        );
    }
}

#[tokio::test]
async fn names_lists_streams_and_consumers_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path());
        log.ensure_stream("b").await.unwrap();
        log.ensure_stream("a").await.unwrap();
        log.ensure_consumer("a", "ca", Start::Tail).await.unwrap();
        log.ensure_consumer("b", "cb", Start::Tail).await.unwrap();
        log.delete_consumer("cb").await.unwrap();
        log.flush().await.unwrap();
    }
    let log = open(dir.path());
    let (streams, consumers) = log.names().await.unwrap();
    assert_eq!(streams, ["a", "b"]);
    assert_eq!(consumers, ["ca"]);
}
