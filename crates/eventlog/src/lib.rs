//! The durable event log behind brokers and channels.
//!
//! A broker or channel answers `202 Accepted` only once the event is stored, and then delivers
//! it at least once to every trigger or subscription, across `kill -9` of the daemon. This crate
//! owns exactly that storage: named *streams* (one per broker or channel) of opaque payloads,
//! each given a strictly increasing [`Seq`], and named *consumers* (one per trigger or
//! subscription) with a durable cursor. It knows nothing of CloudEvents, HTTP, filters or retry
//! schedules; the integrator stores encoded events and runs the dispatchers.
//!
//! [`EventLog`] is the seam: [`SqliteLog`] is the embedded backend; a NATS JetStream backend
//! can implement the same trait later, which is why the trait speaks only of streams, sequence
//! numbers and cursors. [`AckTracker`] is the pure piece of a dispatcher that turns
//! out-of-order completions into the cursor to commit.
//!
//! # Guarantees (every backend)
//! - `append` returns only when its records are durable; their seqs are strictly increasing
//!   per stream, contiguous, and never reused while the stream exists.
//! - `read` returns records in seq order, never a record beyond the head published by `watch`.
//! - A consumer's cursor never moves backwards, and after a crash it is at most the last value
//!   committed: a consumer may see records again (at-least-once), it never skips one.
//! - A record is kept until every consumer of its stream has committed past it. A stream with
//!   no consumers keeps nothing (see [`EventLog::append`]).

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::watch;

mod ack;
mod sqlite;

pub use ack::AckTracker;
pub use sqlite::{Durability, FILE_NAME, SqliteLog, SqliteOptions};

/// A record's position in its stream: 1 for the first record, 0 means "before the first".
pub type Seq = u64;

/// One stored payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: Seq,
    pub payload: Bytes,
}

/// Where a new consumer starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Only records appended after the consumer is created: what a new Knative trigger sees.
    Tail,
    /// Every record the stream still holds (those some other consumer has not yet passed).
    Head,
}

/// The extent of a stream, for tests and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamStats {
    /// The newest durable seq (0 when nothing was ever appended).
    pub head: Seq,
    /// The oldest record still stored, if any.
    pub oldest: Option<Seq>,
    /// Records still stored: `oldest..=head`.
    pub len: u64,
}

/// Errors of the event log, each with what a user needs to act on it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LogError {
    #[error("event stream \"{0}\" does not exist")]
    UnknownStream(String),
    #[error("event consumer \"{0}\" does not exist")]
    UnknownConsumer(String),
    /// Consumer names are global; one name cannot move to another stream.
    #[error(
        "event consumer \"{consumer}\" already belongs to stream \"{existing}\", not \"{requested}\": delete it first"
    )]
    ConsumerOnOtherStream {
        consumer: String,
        existing: String,
        requested: String,
    },
    /// A dispatcher committed a cursor past the records it could have read: a bug in the caller.
    #[error("consumer \"{consumer}\" committed cursor {cursor} beyond the stream's head {head}")]
    CursorBeyondHead {
        consumer: String,
        cursor: Seq,
        head: Seq,
    },
    #[error("invalid event log request: {0}")]
    Invalid(String),
    /// Another process has the log open.
    #[error(
        "{path} is in use by another wisp process (it holds {lock}): stop that process, or give this one another data directory"
    )]
    Locked { path: String, lock: String },
    /// The disk is full, or the log reached its configured size limit.
    #[error(
        "no space left for {path}: the disk or the event log's size limit is full; free disk space, or let slow consumers catch up (or remove them) so their records are trimmed"
    )]
    DiskFull { path: String },
    #[error(
        "{path} has event log schema version {found}, newer than this wisp's {supported}: upgrade wisp"
    )]
    SchemaTooNew {
        path: String,
        found: i64,
        supported: i64,
    },
    #[error("{path} is not a wisp event log, or is corrupt ({detail}): restore it or move it away")]
    Corrupt { path: String, detail: String },
    /// I/O failed (permissions, a vanished directory, a failing disk).
    #[error("event log I/O error on {path}: {detail}")]
    Io { path: String, detail: String },
    #[error("the event log is closed")]
    Closed,
    #[error("event log backend error: {0}")]
    Backend(String),
}

impl LogError {
    /// Whether the same request may succeed later unchanged (the disk was full, I/O failed,
    /// the log was busy): an ingress answers these with 503 rather than 4xx.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            LogError::DiskFull { .. } | LogError::Io { .. } | LogError::Backend(_)
        )
    }
}

pub type Result<T, E = LogError> = std::result::Result<T, E>;

/// Durable streams of opaque payloads with per-consumer cursors. Object safe: the daemon holds
/// an `Arc<dyn EventLog>`.
///
/// Stream and consumer names are free-form strings (e.g. `broker/default/orders` and
/// `trigger/default/orders-to-svc`); consumer names are global, not per stream.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Creates the stream when missing. Idempotent.
    async fn ensure_stream(&self, stream: &str) -> Result<()>;

    /// Deletes the stream with its records and consumers; a no-op when missing. Receivers from
    /// [`EventLog::watch`] see the channel close. A stream created later under the same name
    /// starts again at seq 1.
    async fn delete_stream(&self, stream: &str) -> Result<()>;

    /// Appends `payloads` in order and returns their seqs once they are durable. Concurrent
    /// callers share one commit (the backend batches them), so callers need not batch.
    ///
    /// A stream with no consumers keeps nothing: its records are trimmed once durable, as an
    /// event sent to a Knative broker without triggers goes nowhere. The seqs still advance.
    ///
    /// Dropping the future does not withdraw the append: it may still be stored (a client that
    /// saw no 202 and retries then produces a duplicate, which at-least-once allows).
    async fn append(&self, stream: &str, payloads: Vec<Bytes>) -> Result<Vec<Seq>>;

    /// Creates the consumer at `start` when missing and returns its cursor: every seq at or
    /// below it is done. Idempotent: an existing consumer keeps its cursor (`start` is
    /// ignored). Fails with [`LogError::ConsumerOnOtherStream`] if the name is taken elsewhere.
    async fn ensure_consumer(&self, stream: &str, consumer: &str, start: Start) -> Result<Seq>;

    /// Deletes the consumer; a no-op when missing. Records only it still needed are trimmed.
    async fn delete_consumer(&self, consumer: &str) -> Result<()>;

    /// Every stream and every consumer, by name: for the owner to delete those whose broker,
    /// channel or trigger was deleted while it was not running (a forgotten consumer would
    /// keep its stream's records forever).
    async fn names(&self) -> Result<(Vec<String>, Vec<String>)>;

    /// Up to `max` records with seq > `after`, in order. Empty when the consumer is caught up
    /// (wait on [`EventLog::watch`]). Records already trimmed are skipped silently, which a
    /// consumer's own cursor never needs.
    async fn read(&self, stream: &str, after: Seq, max: usize) -> Result<Vec<Record>>;

    /// Marks every seq at or below `cursor` done for `consumer`. Monotonic: a lower cursor is
    /// ignored. Persisted lazily (with the next write, or within a short interval): after a
    /// crash the consumer resumes from an earlier cursor and sees some records again.
    async fn commit(&self, consumer: &str, cursor: Seq) -> Result<()>;

    /// The stream's newest durable seq, updated on every append, so dispatchers wait instead
    /// of polling. The channel closes when the stream is deleted.
    async fn watch(&self, stream: &str) -> Result<watch::Receiver<Seq>>;

    /// The stream's durable extent.
    async fn stats(&self, stream: &str) -> Result<StreamStats>;
}
