//! Crash safety: `kill -9` at any point loses no append that returned, and no cursor skips.
//!
//! The parent test re-runs this test binary as a child (selected by [`CHILD_ENV`]) that appends
//! from several tasks and prints every append that returned, and every cursor it committed.
//! The parent SIGKILLs it in the middle of its appends, reopens the log and checks that every
//! acknowledged record is there with its payload, that seqs have no gaps, and that the
//! consumer's cursor is at most what the child committed. Three rounds on the same file, the
//! second with `Durability::Process` (which must survive a process crash too).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use bytes::Bytes;
use wisp_eventlog::{Durability, EventLog, Seq, SqliteLog, SqliteOptions, Start};

const CHILD_ENV: &str = "WISP_EVENTLOG_CRASH_CHILD_DIR";
const DURABILITY_ENV: &str = "WISP_EVENTLOG_CRASH_CHILD_DURABILITY";
const ROUND_ENV: &str = "WISP_EVENTLOG_CRASH_CHILD_ROUND";
const STREAM: &str = "broker/crash/default";
/// Never commits: keeps every record, so every acknowledged one must still be there.
const KEEPER: &str = "trigger/crash/keeper";
/// Commits as it goes; its cursor after a crash must not be past what it committed.
const MOVER: &str = "trigger/crash/mover";
const TASKS: usize = 8;

fn db(dir: &Path) -> std::path::PathBuf {
    dir.join("events.db")
}

/// The child's entry point: does nothing unless the parent set [`CHILD_ENV`].
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let durability = match std::env::var(DURABILITY_ENV).as_deref() {
        Ok("process") => Durability::Process,
        _ => Durability::Full,
    };
    let round = std::env::var(ROUND_ENV).unwrap_or_default();
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
        let log = Arc::new(SqliteLog::open(&db(Path::new(&dir)), opts).unwrap());
        log.ensure_stream(STREAM).await.unwrap();
        log.ensure_consumer(STREAM, KEEPER, Start::Head)
            .await
            .unwrap();
        let mut cursor = log
            .ensure_consumer(STREAM, MOVER, Start::Head)
            .await
            .unwrap();
        let mover = {
            let log = log.clone();
            tokio::spawn(async move {
                let mut head = log.watch(STREAM).await.unwrap();
                loop {
                    let records = log.read(STREAM, cursor, 7).await.unwrap();
                    let Some(last) = records.last() else {
                        head.wait_for(|h| *h > cursor).await.unwrap();
                        continue;
                    };
                    cursor = last.seq;
                    // Announced before it is made: a commit may be persisted before the
                    // child gets to print anything after it.
                    ack(format!("COMMIT {cursor}"));
                    log.commit(MOVER, cursor).await.unwrap();
                }
            })
        };
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let (log, round) = (log.clone(), round.clone());
                tokio::spawn(async move {
                    for n in 0..1_000_000usize {
                        let payloads: Vec<String> = (0..n % 3 + 1)
                            .map(|k| format!("r{round}-t{t}-{n}-{k}"))
                            .collect();
                        let seqs = log
                            .append(STREAM, payloads.iter().cloned().map(Bytes::from).collect())
                            .await
                            .unwrap();
                        for (seq, payload) in seqs.into_iter().zip(payloads) {
                            ack(format!("ACK {seq} {payload}"));
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        mover.abort();
    });
}

/// Prints one acknowledged line; exits when the parent has gone.
fn ack(line: String) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        std::process::exit(0);
    }
}

#[derive(Default)]
struct Acked {
    records: BTreeMap<Seq, String>,
    /// The highest cursor the mover announced it would commit.
    committed: Seq,
    lines: usize,
}

impl Acked {
    fn record(&mut self, line: &str) {
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            ["ACK", seq, payload] => {
                let seq = seq.parse().unwrap();
                let previous = self.records.insert(seq, (*payload).to_owned());
                assert!(previous.is_none(), "seq {seq} acknowledged twice");
            }
            ["COMMIT", cursor] => self.committed = self.committed.max(cursor.parse().unwrap()),
            // The test harness's own output.
            _ => return,
        }
        self.lines += 1;
    }
}

#[test]
fn kill_9_loses_no_acknowledged_append() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut acked = Acked::default();
    let mut mover_cursor = 0;
    for (round, durability) in ["full", "process", "full"].into_iter().enumerate() {
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
        // Let it get well into its appends, at a different point each round, then SIGKILL it.
        let kill_after = acked.lines + 3_000 + 1_117 * round;
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
        mover_cursor = verify(dir.path(), &acked, mover_cursor);
    }
}

/// Every acknowledged record is there; the mover's cursor went forward but not past its
/// commits. Returns the mover's cursor.
fn verify(dir: &Path, acked: &Acked, previous_cursor: Seq) -> Seq {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cursor = runtime.block_on(async {
        let log = SqliteLog::open(&db(dir), SqliteOptions::default()).unwrap();
        let stats = log.stats(STREAM).await.unwrap();
        let mut stored = BTreeMap::new();
        let mut after = 0;
        loop {
            let records = log.read(STREAM, after, 1000).await.unwrap();
            let Some(last) = records.last() else { break };
            after = last.seq;
            for r in records {
                stored.insert(r.seq, String::from_utf8(r.payload.to_vec()).unwrap());
            }
        }
        assert_eq!(stored.len() as u64, stats.len);
        assert_eq!(
            stored.keys().copied().collect::<Vec<_>>(),
            (1..=stats.head).collect::<Vec<_>>(),
            "seqs from 1 to the head without gaps (the keeper trims nothing)"
        );
        for (seq, payload) in &acked.records {
            assert_eq!(
                stored.get(seq),
                Some(payload),
                "acknowledged record {seq} is not as appended"
            );
        }
        let cursor = log
            .ensure_consumer(STREAM, MOVER, Start::Head)
            .await
            .unwrap();
        assert!(
            cursor <= acked.committed,
            "cursor {cursor} is past the mover's last commit {}",
            acked.committed
        );
        assert!(cursor >= previous_cursor, "the cursor went backwards");
        assert!(cursor <= stats.head);
        cursor
    });
    let conn = rusqlite::Connection::open(db(dir)).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    cursor
}
