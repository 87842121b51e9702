//! The embedded backend: one SQLite file (WAL mode), one writer thread, an in-memory tail.
//!
//! Why it is built this way:
//!
//! - **Group commit.** An ingress may answer 202 only once the event is on disk, and a durable
//!   commit costs an fsync. One fsync per event would cap a broker at the disk's fsync rate; so
//!   every append goes to one writer thread ([`writer`]) that takes all appends queued while
//!   the previous commit ran and commits them as one transaction, one fsync for the group.
//!   The more callers wait, the bigger the group: throughput grows with load while each caller
//!   still waits for about one commit. A dedicated thread with its own connection keeps
//!   SQLite's blocking calls off the async runtime, and having the only writer own the
//!   sequence counters means seqs are assigned without any lock or read-back.
//! - **Lazy cursor commits.** A dispatcher commits its cursor after every delivery; persisting
//!   each one would double the fsyncs for no gain, because losing a cursor update is harmless
//!   under at-least-once: after a crash the consumer resumes from an older cursor and sees a
//!   few records again, it never skips one (a cursor is only ever persisted after the
//!   dispatcher reported it). So `commit` only updates memory; the writer persists committed
//!   cursors in its next transaction, or on its own after `cursor_flush_interval` when no
//!   append comes by, and on close.
//! - **A tail cache.** A dispatcher that keeps up reads records milliseconds after they were
//!   appended; the writer keeps the newest records of each stream in memory ([`tail`]) so
//!   those reads never touch SQLite, and SQLite serves only dispatchers that fell behind
//!   (read connections of their own, which in WAL mode never wait for the writer).
//! - **Trimming in the writer.** Records every consumer has passed are deleted in the writer's
//!   transactions, a bounded chunk at a time, so a consumer that jumps ahead after a long
//!   outage does not stall appends with one huge delete.
//! - **One process per file.** The writer keeps counters in memory, so a second writer process
//!   would hand out the same seqs. `open` takes an exclusive lock on `<file>.lock` and fails
//!   with [`LogError::Locked`] when another process holds it; the kernel drops the lock when
//!   its holder dies, even by `kill -9`.
//!
//! The event log lives in its own file (see [`FILE_NAME`]), not in the object store's: the two
//! then have independent writers, and a burst of events never delays an API write.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{
    Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
    mpsc as std_mpsc,
};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::{oneshot, watch};

use crate::{EventLog, LogError, Record, Result, Seq, Start, StreamStats};

mod reader;
mod schema;
mod tail;
mod writer;

use reader::Reads;
use tail::Tail;
use writer::{Request, Settings, Writer};

/// The file [`SqliteLog::open_in`] uses inside the data dir.
pub const FILE_NAME: &str = "events.db";

/// When an append counts as durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous = FULL`: every group commit is fsynced before any of its appends returns;
    /// survives a power loss or kernel crash as well as a crash of wisp.
    #[default]
    Full,
    /// `synchronous = NORMAL`: the write-ahead log is fsynced only at checkpoints. Survives a
    /// crash or `kill -9` of wisp (the kernel still has the data), but a power loss or kernel
    /// crash may lose the last appends acknowledged before it.
    Process,
}

/// Settings of the SQLite event log. `SqliteOptions::default()` suits the daemon.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    pub durability: Durability,
    /// Memory for the newest records, shared evenly among streams. Reads of older records go
    /// to SQLite. Counts payload bytes plus a small per-record overhead; payloads are kept as
    /// given, so pass compact `Bytes` (not slices of a larger buffer).
    pub tail_cache_bytes: usize,
    /// Longest a committed cursor waits in memory for a write to ride along with.
    pub cursor_flush_interval: Duration,
    /// Most requests committed as one transaction.
    pub max_batch: usize,
    /// Most payload bytes committed as one transaction (a larger single append goes alone).
    pub max_batch_bytes: usize,
    /// Most records deleted per stream and transaction when trimming.
    pub trim_chunk: u64,
    /// Idle read connections kept open (more are opened while reads run concurrently).
    pub read_connections: usize,
    /// Largest the database may grow (rounded down to whole pages). Appends beyond it fail
    /// with [`LogError::DiskFull`] until consumers catch up and their records are trimmed, so
    /// a stuck subscriber cannot fill the disk the object store lives on. `None`: no limit.
    pub max_bytes: Option<u64>,
}

impl Default for SqliteOptions {
    fn default() -> SqliteOptions {
        SqliteOptions {
            durability: Durability::Full,
            tail_cache_bytes: 64 << 20,
            cursor_flush_interval: Duration::from_millis(50),
            max_batch: 1024,
            max_batch_bytes: 16 << 20,
            trim_chunk: 20_000,
            read_connections: 4,
            max_bytes: None,
        }
    }
}

/// The [`EventLog`] on one SQLite file. Cheap to clone (clones share the writer). When the last
/// clone is dropped the writer persists committed cursors and stops; the drop waits for that.
#[derive(Clone)]
pub struct SqliteLog {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    requests: Option<std_mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    reads: Arc<Reads>,
    /// Held for the life of the log: the inter-process lock (released when this closes).
    _lock: File,
}

/// State the writer publishes and the async side reads.
struct Shared {
    /// The database file, for error messages.
    path: String,
    /// Streams as of the last commit.
    streams: RwLock<HashMap<String, Arc<StreamState>>>,
    cursors: Mutex<Cursors>,
}

/// One stream as the readers see it.
struct StreamState {
    /// The row id in SQLite (never reused, so a stale handle cannot read another stream).
    id: i64,
    /// The newest durable seq.
    head: watch::Sender<Seq>,
    tail: Mutex<Tail>,
}

impl StreamState {
    fn new(id: i64, head: Seq) -> StreamState {
        StreamState {
            id,
            head: watch::channel(head).0,
            tail: Mutex::new(Tail::default()),
        }
    }

    fn head(&self) -> Seq {
        *self.head.borrow()
    }
}

/// The newest committed cursor of every consumer; `dirty` ones are not yet persisted.
#[derive(Default)]
struct Cursors {
    by_consumer: HashMap<String, CursorSlot>,
    dirty: HashSet<String>,
}

struct CursorSlot {
    stream: Arc<StreamState>,
    cursor: Seq,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn read_streams(&self) -> RwLockReadGuard<'_, HashMap<String, Arc<StreamState>>> {
        self.streams.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_streams(&self) -> RwLockWriteGuard<'_, HashMap<String, Arc<StreamState>>> {
        self.streams.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn stream(&self, name: &str) -> Result<Arc<StreamState>> {
        self.read_streams()
            .get(name)
            .cloned()
            .ok_or_else(|| LogError::UnknownStream(name.to_owned()))
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queue makes the writer persist cursors and stop.
        self.requests.take();
        if let Some(handle) = self.writer.take()
            && handle.join().is_err()
        {
            tracing::error!(path = %self.shared.path, "event log writer thread panicked");
        }
    }
}

impl std::fmt::Debug for SqliteLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteLog")
            .field("path", &self.inner.shared.path)
            .finish_non_exhaustive()
    }
}

impl SqliteLog {
    /// Opens (creating when missing) the log at `path`, migrating its schema, and starts the
    /// writer thread. Blocking; call it before serving. Fails with [`LogError::Locked`] while
    /// another process has the same file open.
    pub fn open(path: &Path, opts: SqliteOptions) -> Result<SqliteLog> {
        let lock_file = schema::lock(path)?;
        let conn = schema::open_writer(path, opts.durability, opts.max_bytes)?;
        let shared = Arc::new(Shared {
            path: path.display().to_string(),
            streams: RwLock::new(HashMap::new()),
            cursors: Mutex::new(Cursors::default()),
        });
        let settings = Settings {
            tail_cache_bytes: opts.tail_cache_bytes,
            cursor_flush_interval: opts.cursor_flush_interval,
            max_batch: opts.max_batch.max(1),
            max_batch_bytes: opts.max_batch_bytes.max(1),
            trim_chunk: opts.trim_chunk.max(1),
        };
        let writer = Writer::new(conn, shared.clone(), settings)?;
        let (requests, queue) = std_mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("wisp-eventlog-writer".into())
            .spawn(move || writer.run(queue))
            .map_err(|e| {
                LogError::Backend(format!("cannot start the event log writer thread: {e}"))
            })?;
        let streams = shared.read_streams().len();
        tracing::info!(path = %path.display(), streams, durability = ?opts.durability, "event log opened");
        Ok(SqliteLog {
            inner: Arc::new(Inner {
                reads: Arc::new(Reads::new(path.to_owned(), opts.read_connections)),
                shared,
                requests: Some(requests),
                writer: Some(handle),
                _lock: lock_file,
            }),
        })
    }

    /// Opens `data_dir/events.db` with default options, creating `data_dir` when missing.
    pub fn open_in(data_dir: &Path) -> Result<SqliteLog> {
        std::fs::create_dir_all(data_dir).map_err(|e| LogError::Io {
            path: data_dir.display().to_string(),
            detail: format!("cannot create the directory: {e}"),
        })?;
        SqliteLog::open(&data_dir.join(FILE_NAME), SqliteOptions::default())
    }

    /// The database file.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(&self.inner.shared.path)
    }

    /// Persists every committed cursor and finishes due trimming now, instead of lazily. For
    /// tests and an orderly shutdown; dispatchers never need it.
    pub async fn flush(&self) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Flush { reply })?;
        answer.await.map_err(|_| LogError::Closed)?
    }

    fn send(&self, request: Request) -> Result<()> {
        let requests = self.inner.requests.as_ref().ok_or(LogError::Closed)?;
        requests.send(request).map_err(|_| LogError::Closed)
    }

    async fn ask<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<Result<T>>) -> Request,
    ) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        self.send(request(reply))?;
        answer.await.map_err(|_| LogError::Closed)?
    }
}

fn check_name(kind: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(LogError::Invalid(format!("the {kind} name is empty")));
    }
    Ok(())
}

#[async_trait]
impl EventLog for SqliteLog {
    async fn ensure_stream(&self, stream: &str) -> Result<()> {
        check_name("stream", stream)?;
        let stream = stream.to_owned();
        self.ask(|reply| Request::EnsureStream { stream, reply })
            .await
    }

    async fn delete_stream(&self, stream: &str) -> Result<()> {
        let stream = stream.to_owned();
        self.ask(|reply| Request::DeleteStream { stream, reply })
            .await
    }

    async fn append(&self, stream: &str, payloads: Vec<Bytes>) -> Result<Vec<Seq>> {
        if payloads.is_empty() {
            self.inner.shared.stream(stream)?;
            return Ok(Vec::new());
        }
        let stream = stream.to_owned();
        self.ask(|reply| Request::Append {
            stream,
            payloads,
            reply,
        })
        .await
    }

    async fn ensure_consumer(&self, stream: &str, consumer: &str, start: Start) -> Result<Seq> {
        check_name("consumer", consumer)?;
        let (stream, consumer) = (stream.to_owned(), consumer.to_owned());
        self.ask(|reply| Request::EnsureConsumer {
            stream,
            consumer,
            start,
            reply,
        })
        .await
    }

    async fn delete_consumer(&self, consumer: &str) -> Result<()> {
        let consumer = consumer.to_owned();
        self.ask(|reply| Request::DeleteConsumer { consumer, reply })
            .await
    }

    async fn names(&self) -> Result<(Vec<String>, Vec<String>)> {
        let mut streams: Vec<String> = self.inner.shared.read_streams().keys().cloned().collect();
        let mut consumers: Vec<String> = lock(&self.inner.shared.cursors)
            .by_consumer
            .keys()
            .cloned()
            .collect();
        streams.sort();
        consumers.sort();
        Ok((streams, consumers))
    }

    async fn read(&self, stream: &str, after: Seq, max: usize) -> Result<Vec<Record>> {
        let state = self.inner.shared.stream(stream)?;
        // Never past the published head: a dispatcher cannot commit what `watch` has not shown.
        let head = state.head();
        if after >= head || max == 0 {
            return Ok(Vec::new());
        }
        if let Some(records) = lock(&state.tail).read(after, head, max) {
            return Ok(records);
        }
        // Behind the cache: read the backlog from SQLite, off the async workers.
        let (reads, id) = (self.inner.reads.clone(), state.id);
        tokio::task::spawn_blocking(move || reads.records(id, after, head, max))
            .await
            .map_err(|e| LogError::Backend(format!("event log read task failed: {e}")))?
    }

    async fn commit(&self, consumer: &str, cursor: Seq) -> Result<()> {
        let wake = {
            let mut cursors = lock(&self.inner.shared.cursors);
            let slot = cursors
                .by_consumer
                .get_mut(consumer)
                .ok_or_else(|| LogError::UnknownConsumer(consumer.to_owned()))?;
            if cursor <= slot.cursor {
                return Ok(());
            }
            let head = slot.stream.head();
            if cursor > head {
                return Err(LogError::CursorBeyondHead {
                    consumer: consumer.to_owned(),
                    cursor,
                    head,
                });
            }
            slot.cursor = cursor;
            let wake = cursors.dirty.is_empty();
            cursors.dirty.insert(consumer.to_owned());
            wake
        };
        // The first dirty cursor arms the writer's flush timer; later ones ride along.
        if wake {
            self.send(Request::CursorsDirty)?;
        }
        Ok(())
    }

    async fn watch(&self, stream: &str) -> Result<watch::Receiver<Seq>> {
        Ok(self.inner.shared.stream(stream)?.head.subscribe())
    }

    async fn stats(&self, stream: &str) -> Result<StreamStats> {
        let (reads, name) = (self.inner.reads.clone(), stream.to_owned());
        let (head, trimmed) = tokio::task::spawn_blocking(move || reads.extent(&name))
            .await
            .map_err(|e| LogError::Backend(format!("event log read task failed: {e}")))??
            .ok_or_else(|| LogError::UnknownStream(stream.to_owned()))?;
        let len = head.saturating_sub(trimmed);
        Ok(StreamStats {
            head,
            oldest: (len > 0).then_some(trimmed + 1),
            len,
        })
    }
}

/// Maps a SQLite error to what the user can act on.
fn sql_error(path: &str, e: rusqlite::Error) -> LogError {
    use rusqlite::ErrorCode;
    let path = path.to_owned();
    let code = match &e {
        rusqlite::Error::SqliteFailure(failure, _) => Some(failure.code),
        _ => None,
    };
    match code {
        Some(ErrorCode::DiskFull) => LogError::DiskFull { path },
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => LogError::Corrupt {
            path,
            detail: e.to_string(),
        },
        Some(
            ErrorCode::SystemIoFailure
            | ErrorCode::CannotOpen
            | ErrorCode::PermissionDenied
            | ErrorCode::ReadOnly
            | ErrorCode::NoLargeFileSupport,
        ) => LogError::Io {
            path,
            detail: e.to_string(),
        },
        _ => LogError::Backend(format!("{path}: {e}")),
    }
}

/// Seqs are u64 in the API and INTEGER (i64) in SQLite.
fn to_sql(seq: Seq) -> Result<i64> {
    i64::try_from(seq).map_err(|_| LogError::Invalid(format!("seq {seq} out of range")))
}

fn from_sql(value: i64) -> Result<Seq> {
    Seq::try_from(value)
        .map_err(|_| LogError::Backend(format!("negative seq {value} in the event log")))
}
