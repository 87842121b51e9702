//! The versioned object store: wisp's etcd.
//!
//! Objects are stored as JSON documents keyed by `(resource, namespace, name)`, where `resource`
//! is the Kubernetes resource name (`services.serving.knative.dev`, `namespaces`, ...). The store
//! knows nothing of Knative: it owns exactly the semantics that Kubernetes' storage layer owns —
//! one global monotonically increasing `resourceVersion`, `uid`, `creationTimestamp`,
//! `generation` (bumped when anything outside `metadata` and `status` changes), optimistic
//! concurrency, finalizers, cascading delete through `ownerReferences`, and a watch that replays
//! every change after a given resourceVersion exactly once, in order.
//!
//! It must not do defaulting or validation of kinds (that is the API server's admission step),
//! and it never interprets `spec`.
//!
//! Cluster-scoped resources (such as `namespaces`) use the empty string as their namespace.

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::mpsc;

mod object;
mod sqlite;

pub use sqlite::{Durability, FILE_NAME, SqliteOptions, SqliteStore};

/// Errors of the store, each with what a user needs to act on it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{resource} \"{name}\" not found")]
    NotFound { resource: String, name: String },
    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists { resource: String, name: String },
    /// Optimistic concurrency failure, or a failed delete precondition.
    #[error("Operation cannot be fulfilled on {resource} \"{name}\": {message}")]
    Conflict {
        resource: String,
        name: String,
        message: String,
    },
    /// The requested watch start is older than the retained change log (HTTP 410 Gone).
    #[error("too old resource version: {requested} ({oldest})")]
    Expired { requested: u64, oldest: u64 },
    /// The object handed to the store is not an object with `metadata.name`, and the like.
    #[error("invalid object: {0}")]
    Invalid(String),
    /// The backend failed (I/O, SQLite, corruption).
    #[error("storage backend error: {0}")]
    Backend(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A list of objects of one resource, and the store's resourceVersion at the time of the list,
/// from which a watch continues without gaps.
#[derive(Debug, Clone)]
pub struct List {
    pub items: Vec<Value>,
    pub resource_version: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    /// The Kubernetes watch event type name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change. For `Deleted`, `object` is the last state of the object with the
/// resourceVersion of the deletion.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    pub event_type: EventType,
    pub resource: String,
    pub object: Value,
    pub resource_version: u64,
}

/// Preconditions of a delete, as in Kubernetes' `DeleteOptions.preconditions`.
#[derive(Debug, Clone, Default)]
pub struct Preconditions {
    pub uid: Option<String>,
    pub resource_version: Option<u64>,
}

/// The store seam. The SQLite backend is the embedded default; etcd comes later.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The object, or `NotFound`.
    async fn get(&self, resource: &str, namespace: &str, name: &str) -> Result<Value>;

    /// All objects of `resource` (in `namespace`, or in every namespace when `None`), ordered by
    /// namespace then name.
    async fn list(&self, resource: &str, namespace: Option<&str>) -> Result<List>;

    /// Stores a new object. Sets `metadata.uid`, `creationTimestamp`, `resourceVersion`,
    /// `generation: 1`; resolves `metadata.generateName` when `name` is empty. Any
    /// `resourceVersion` in the input is ignored. The namespace is `metadata.namespace` (empty
    /// for cluster-scoped objects).
    ///
    /// An object whose `ownerReferences` all name uids that no longer exist (its owner was
    /// deleted while a controller created it) is garbage-collected at once, in the same
    /// transaction, as Kubernetes' garbage collector would do shortly after; the call still
    /// returns the created object. (SQLite: `SqliteOptions::collect_orphans`.)
    async fn create(&self, resource: &str, object: Value) -> Result<Value>;

    /// Replaces everything but `status` (kept from the stored object). When the input carries a
    /// `metadata.resourceVersion` that differs from the stored one: `Conflict`. `uid` and
    /// `creationTimestamp` are kept; `generation` is bumped if anything outside `metadata` and
    /// `status` changed. An update that changes nothing writes nothing and returns the stored
    /// object. Removing the last finalizer of an object being deleted deletes it (and cascades)
    /// and returns it as deleted; adding a finalizer to an object being deleted is `Invalid`.
    /// `deletionTimestamp` cannot be set or cleared by an update (only by `delete`).
    async fn update(&self, resource: &str, object: Value) -> Result<Value>;

    /// Replaces only `status` (the `/status` subresource), with the same resourceVersion check.
    /// `generation` is unchanged; a status equal to the stored one writes nothing.
    async fn update_status(&self, resource: &str, object: Value) -> Result<Value>;

    /// Deletes the object and, in the same transaction, every object whose `ownerReferences`
    /// names its uid (recursively), unless one of its other owners still exists. An object with
    /// finalizers only gets `deletionTimestamp` set (once; deleting it again changes nothing),
    /// and its dependents wait for its real delete. Each deleted object is one `Deleted` event
    /// with its own resourceVersion. Returns the deleted (or marked) object; a deleted object
    /// carries the resourceVersion of its deletion.
    async fn delete(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
        preconditions: Preconditions,
    ) -> Result<Value>;

    /// Every change with a resourceVersion greater than `from`, for one resource (or all when
    /// `None`) and one namespace (or all when `None`), in resourceVersion order, with no gap and
    /// no duplicate, then live changes as they commit. `Expired` when `from` is older than the
    /// retained change log. The stream ends when the receiver is dropped.
    ///
    /// `from` is exclusive and has no special values: `0` replays every retained change (and is
    /// `Expired` once the log has been compacted), so "watch from now" is a watch from
    /// [`Store::current_revision`] or, to continue a list without a gap, from
    /// [`List::resource_version`]. A `from` newer than the store waits for it. A watcher that
    /// falls behind compaction gets an `Err(Expired)` item (after the events it had already
    /// read), and then the stream ends, as Kubernetes' watch does with its 410 `ERROR` event;
    /// the stream also ends, after every committed change, when the store is closed.
    async fn watch(
        &self,
        resource: Option<&str>,
        namespace: Option<&str>,
        from: u64,
    ) -> Result<mpsc::Receiver<Result<WatchEvent>>>;

    /// The newest resourceVersion committed (0 for an empty store).
    async fn current_revision(&self) -> Result<u64>;
}
