//! The embedded backend: one SQLite file in the data dir (WAL mode).
//!
//! - Writes go through one writer thread that commits in groups ([`writer`]): one fsync per
//!   group, each request in its own savepoint. A write's future resolves only after its commit.
//! - Reads use a small pool of read connections ([`reader`]) and never wait for the writer.
//! - Every watcher is a task that reads the `changes` log after the last rv it sent, in batches,
//!   then sleeps until the writer publishes a newer committed rv ([`watch`]). Events are read
//!   from the committed log, never pushed from memory, so a watcher cannot miss or duplicate
//!   one, and a slow watcher only delays itself.
//!
//! See [`schema`] for the tables.

use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc as std_mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch as tokio_watch};

use crate::{List, Preconditions, Result, Store, StoreError, WatchEvent};

mod reader;
mod schema;
mod watch;
mod writer;

use reader::{Filter, Reads};
use writer::{Op, Request, Settings, Writer};

/// The file [`SqliteStore::open_in`] uses inside the data dir.
pub const FILE_NAME: &str = "wisp.db";

/// When a commit counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous = FULL`: every commit is fsynced before it is acknowledged; survives power
    /// loss and kernel crashes. Group commit makes this cheap under concurrency.
    #[default]
    Full,
    /// `synchronous = NORMAL`: the write-ahead log is fsynced only at checkpoints. Survives a
    /// crash or `kill -9` of wisp (the OS still has the data), not a power loss.
    Normal,
}

/// Settings of the SQLite store. `SqliteOptions::default()` suits the daemon.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    pub durability: Durability,
    /// The change log keeps at least this many of the newest changes...
    pub retain_changes: u64,
    /// ...and at least the changes of this long ago; older ones are compacted away, and a
    /// watch from before them gets `Expired`.
    pub retain_for: Duration,
    /// Idle read connections kept open (more are opened while reads run concurrently).
    pub read_connections: usize,
    /// Most write requests committed as one transaction.
    pub max_batch: usize,
    /// Events buffered per watcher before it waits for its receiver.
    pub watch_buffer: usize,
    /// Garbage-collect an object written with `ownerReferences` whose owners are all gone
    /// (as Kubernetes' garbage collector does), deleting it in the same transaction.
    pub collect_orphans: bool,
}

impl Default for SqliteOptions {
    fn default() -> SqliteOptions {
        SqliteOptions {
            durability: Durability::Full,
            retain_changes: 100_000,
            retain_for: Duration::from_secs(10 * 60),
            read_connections: 4,
            max_batch: 512,
            watch_buffer: 128,
            collect_orphans: true,
        }
    }
}

/// The [`Store`] on one SQLite file. Cheap to clone (all clones share the writer); the writer
/// thread stops, after finishing its batch, when the last clone is dropped, and then every
/// watch stream ends once it has delivered the committed changes.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    requests: Option<std_mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    reads: Arc<Reads>,
    recent: Arc<watch::Recent>,
    committed: tokio_watch::Receiver<u64>,
    watch_buffer: usize,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queue stops the writer after its current batch.
        self.requests.take();
        if let Some(handle) = self.writer.take()
            && handle.join().is_err()
        {
            tracing::error!(path = %self.path.display(), "store writer thread panicked");
        }
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating when missing) the store at `path`, migrating its schema, and starts the
    /// writer thread. Blocking; call it before serving.
    pub fn open(path: &Path, opts: SqliteOptions) -> Result<SqliteStore> {
        let conn = schema::open_writer(path, opts.durability)?;
        let settings = Settings {
            max_batch: opts.max_batch,
            retain_changes: opts.retain_changes,
            retain_for: opts.retain_for,
            collect_orphans: opts.collect_orphans,
        };
        let (writer, committed, recent) = Writer::new(conn, settings)?;
        let rv = *committed.borrow();
        let (requests, queue) = std_mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("wisp-store-writer".into())
            .spawn(move || writer.run(queue))
            .map_err(|e| {
                StoreError::Backend(format!("cannot start the store writer thread: {e}"))
            })?;
        tracing::info!(path = %path.display(), resource_version = rv, durability = ?opts.durability, "store opened");
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                requests: Some(requests),
                writer: Some(handle),
                reads: Arc::new(Reads::new(path.to_owned(), opts.read_connections)),
                recent,
                committed,
                watch_buffer: opts.watch_buffer.max(1),
            }),
        })
    }

    /// Opens `data_dir/wisp.db` with default options, creating `data_dir` when missing.
    pub fn open_in(data_dir: &Path) -> Result<SqliteStore> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Backend(format!("cannot create {}: {e}", data_dir.display()))
        })?;
        SqliteStore::open(&data_dir.join(FILE_NAME), SqliteOptions::default())
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Compacts the change log now, as far as the retention options allow (the writer also does
    /// this on its own every few hundred commits). Returns the compaction point: a watch from
    /// an older resourceVersion gets `Expired`.
    pub async fn compact(&self) -> Result<u64> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Compact { reply })?;
        answer.await.map_err(|_| stopped())?
    }

    fn send(&self, request: Request) -> Result<()> {
        let requests = self.inner.requests.as_ref().ok_or_else(stopped)?;
        requests.send(request).map_err(|_| stopped())
    }

    async fn write(&self, op: Op) -> Result<Value> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Write { op, reply })?;
        answer.await.map_err(|_| stopped())?
    }

    /// Runs a read on the blocking pool (for reads that may take milliseconds).
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Reads) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let reads = self.inner.reads.clone();
        tokio::task::spawn_blocking(move || f(&reads))
            .await
            .map_err(|e| StoreError::Backend(format!("store read task failed: {e}")))?
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn get(&self, resource: &str, namespace: &str, name: &str) -> Result<Value> {
        // One indexed row: tens of microseconds, so it runs in place.
        self.inner
            .reads
            .get(resource, namespace, name)?
            .ok_or_else(|| StoreError::NotFound {
                resource: resource.into(),
                name: name.into(),
            })
    }

    async fn list(&self, resource: &str, namespace: Option<&str>) -> Result<List> {
        let (resource, namespace) = (resource.to_owned(), namespace.map(str::to_owned));
        self.blocking(move |reads| reads.list(&resource, namespace.as_deref()))
            .await
    }

    async fn create(&self, resource: &str, object: Value) -> Result<Value> {
        self.write(Op::Create {
            resource: resource.into(),
            object,
        })
        .await
    }

    async fn update(&self, resource: &str, object: Value) -> Result<Value> {
        self.write(Op::Update {
            resource: resource.into(),
            object,
        })
        .await
    }

    async fn update_status(&self, resource: &str, object: Value) -> Result<Value> {
        self.write(Op::UpdateStatus {
            resource: resource.into(),
            object,
        })
        .await
    }

    async fn delete(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
        preconditions: Preconditions,
    ) -> Result<Value> {
        self.write(Op::Delete {
            resource: resource.into(),
            namespace: namespace.into(),
            name: name.into(),
            preconditions,
        })
        .await
    }

    // Semantics of `from` are documented on the trait. The compaction check here makes an
    // expired start an error of the call; later expiry arrives as an `Err` item of the stream.
    async fn watch(
        &self,
        resource: Option<&str>,
        namespace: Option<&str>,
        from: u64,
    ) -> Result<mpsc::Receiver<Result<WatchEvent>>> {
        let (_, compacted) = self.inner.reads.meta()?;
        if from < compacted {
            return Err(StoreError::Expired {
                requested: from,
                oldest: compacted,
            });
        }
        let filter = Filter {
            resource: resource.map(str::to_owned),
            namespace: namespace.map(str::to_owned),
        };
        let (tx, rx) = mpsc::channel(self.inner.watch_buffer);
        let watcher = watch::Watcher {
            reads: self.inner.reads.clone(),
            recent: self.inner.recent.clone(),
            committed: self.inner.committed.clone(),
            filter,
            after: from,
            tx,
        };
        tokio::spawn(watcher.run());
        Ok(rx)
    }

    async fn current_revision(&self) -> Result<u64> {
        Ok(*self.inner.committed.borrow())
    }
}

fn stopped() -> StoreError {
    StoreError::Backend("the store writer has stopped".into())
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// resourceVersions are u64 in the API and INTEGER (i64) in SQLite.
fn to_sql_rv(rv: u64) -> Result<i64> {
    i64::try_from(rv).map_err(|_| StoreError::Backend(format!("resourceVersion {rv} out of range")))
}

fn from_sql_rv(rv: i64) -> Result<u64> {
    u64::try_from(rv)
        .map_err(|_| StoreError::Backend(format!("negative resourceVersion {rv} in the database")))
}
