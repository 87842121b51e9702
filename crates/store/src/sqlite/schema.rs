//! The SQLite schema, its migrations (`PRAGMA user_version`) and connection settings.
//!
//! Tables:
//! - `meta`: one row with the newest committed resourceVersion (`rv`) and the compaction point
//!   (`compacted`: every change with an rv at or below it is gone from `changes`).
//! - `objects`: the current state, one JSON document per `(resource, namespace, name)`, with the
//!   object's `uid` (unique) and `rv` (equal to its `metadata.resourceVersion`).
//! - `owners`: `(owner_uid, resource, namespace, name)` for every `ownerReferences[].uid`, the
//!   index of cascading delete.
//! - `changes`: the watch log, one row per resourceVersion: event type, key, unix time and the
//!   object as of that change (for `DELETED`, its last state with the deletion's rv).

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::{Durability, backend};
use crate::{Result, StoreError};

/// The schema version this build writes.
pub(super) const VERSION: i64 = 1;

const V1: &str = "
CREATE TABLE meta (
    id        INTEGER PRIMARY KEY CHECK (id = 0),
    rv        INTEGER NOT NULL,
    compacted INTEGER NOT NULL
);
INSERT INTO meta (id, rv, compacted) VALUES (0, 0, 0);
CREATE TABLE objects (
    resource  TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    uid       TEXT NOT NULL,
    rv        INTEGER NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (resource, namespace, name)
);
CREATE UNIQUE INDEX objects_uid ON objects (uid);
CREATE TABLE owners (
    owner_uid TEXT NOT NULL,
    resource  TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    PRIMARY KEY (owner_uid, resource, namespace, name)
) WITHOUT ROWID;
CREATE TABLE changes (
    rv        INTEGER PRIMARY KEY,
    type      TEXT NOT NULL,
    resource  TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    ts        INTEGER NOT NULL,
    value     TEXT NOT NULL
);
CREATE INDEX changes_resource ON changes (resource, rv);
";

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens the write connection: WAL, the requested durability, and the schema migrated.
pub(super) fn open_writer(path: &Path, durability: Durability) -> Result<Connection> {
    let conn = Connection::open(path).map_err(|e| open_error(path, e))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(backend)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(|e| open_error(path, e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!(
            "{}: cannot use write-ahead logging (journal_mode is {mode})",
            path.display()
        )));
    }
    let sync = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {sync};
         PRAGMA foreign_keys = OFF;
         PRAGMA journal_size_limit = 67108864;
         PRAGMA cache_size = -8192;"
    ))
    .map_err(backend)?;
    migrate(&conn, path)?;
    Ok(conn)
}

/// Opens one read connection (never writes; reads a consistent WAL snapshot per transaction).
pub(super) fn open_reader(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| open_error(path, e))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(backend)?;
    conn.execute_batch("PRAGMA query_only = ON; PRAGMA cache_size = -2048;")
        .map_err(backend)?;
    Ok(conn)
}

fn open_error(path: &Path, e: rusqlite::Error) -> StoreError {
    StoreError::Backend(format!("cannot open {}: {e}", path.display()))
}

fn migrate(conn: &Connection, path: &Path) -> Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(backend)?;
    let result = migrate_locked(conn, path);
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    conn.execute_batch(end).map_err(backend)?;
    result
}

/// Runs inside the migration's write transaction, so two processes cannot both migrate.
fn migrate_locked(conn: &Connection, path: &Path) -> Result<()> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(backend)?;
    if version > VERSION {
        return Err(StoreError::Backend(format!(
            "{} has schema version {version}, newer than this wisp's {VERSION}: upgrade wisp",
            path.display()
        )));
    }
    if version < 1 {
        tracing::info!(path = %path.display(), "creating store schema v1");
        conn.execute_batch(V1).map_err(backend)?;
    }
    if version < VERSION {
        conn.execute_batch(&format!("PRAGMA user_version = {VERSION}"))
            .map_err(backend)?;
    }
    Ok(())
}
