//! The SQLite schema, its migrations (`PRAGMA user_version`), connection settings and the
//! inter-process lock.
//!
//! Tables:
//! - `streams`: one row per stream: its `head` (the newest seq ever appended; kept when every
//!   record is trimmed, so seqs are never reused) and `trimmed` (every record at or below it is
//!   deleted, every one above it up to `head` is stored: seqs are contiguous).
//! - `consumers`: one row per consumer: its stream and its persisted cursor.
//! - `records`: the payloads in append order (rowid), with a unique index on `(stream, seq)`
//!   through which reads and trims take one range. Not `WITHOUT ROWID`, although that would
//!   save the index: its rows live in an index b-tree, which keeps only ~1 KB of a row in the
//!   page and spills the rest to a 4 KiB overflow page, so a 1-4 KB event (a common size)
//!   would take about four times its size on disk. A rowid table keeps up to ~4 KB in place.
//!
//! `PRAGMA application_id` marks the file as a wisp event log, so that opening another SQLite
//! file by mistake (the object store's, say) fails instead of being migrated.

use std::fs::{File, TryLockError};
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::{Durability, sql_error};
use crate::{LogError, Result};

/// The schema version this build writes.
pub(super) const VERSION: i64 = 1;

/// "wELg": written into the header of every event log file.
const APPLICATION_ID: i64 = 0x7745_4c67;

const V1: &str = "
CREATE TABLE streams (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    name    TEXT NOT NULL UNIQUE,
    head    INTEGER NOT NULL,
    trimmed INTEGER NOT NULL
);
CREATE TABLE consumers (
    name   TEXT PRIMARY KEY,
    stream INTEGER NOT NULL,
    cursor INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX consumers_stream ON consumers (stream);
CREATE TABLE records (
    id      INTEGER PRIMARY KEY,
    stream  INTEGER NOT NULL,
    seq     INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE UNIQUE INDEX records_seq ON records (stream, seq);
";

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Takes the exclusive lock on `<path>.lock`, held for as long as the returned file is open.
/// SQLite's own locks would let a second process open the file and write to it; the writer
/// keeps seq counters in memory, so a second writer must be refused outright.
pub(super) fn lock(path: &Path) -> Result<File> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = Path::new(&name);
    let io = |e: std::io::Error| LogError::Io {
        path: lock_path.display().to_string(),
        detail: e.to_string(),
    };
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(LogError::Locked {
            path: path.display().to_string(),
            lock: lock_path.display().to_string(),
        }),
        Err(TryLockError::Error(e)) => Err(io(e)),
    }
}

/// Opens the write connection: WAL, the requested durability, and the schema migrated.
pub(super) fn open_writer(
    path: &Path,
    durability: Durability,
    max_bytes: Option<u64>,
) -> Result<Connection> {
    let shown = path.display().to_string();
    let err = |e| sql_error(&shown, e);
    let conn = Connection::open(path).map_err(err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
    // Before anything changes the file: is it ours (or empty)?
    identify(&conn, &shown)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(LogError::Io {
            path: shown,
            detail: format!("cannot use write-ahead logging (journal_mode is {mode})"),
        });
    }
    let sync = match durability {
        Durability::Full => "FULL",
        Durability::Process => "NORMAL",
    };
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {sync};
         PRAGMA journal_size_limit = 67108864;
         PRAGMA cache_size = -16384;"
    ))
    .map_err(err)?;
    migrate(&conn, &shown)?;
    if let Some(max) = max_bytes {
        let page: i64 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .map_err(err)?;
        let pages = i64::try_from(max).unwrap_or(i64::MAX) / page.max(1);
        // Per connection, and only the writer allocates pages.
        conn.query_row(
            &format!("PRAGMA max_page_count = {}", pages.max(1)),
            [],
            |_| Ok(()),
        )
        .map_err(err)?;
    }
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// Opens one read connection (never writes; reads a consistent WAL snapshot per statement).
pub(super) fn open_reader(path: &Path) -> Result<Connection> {
    let shown = path.display().to_string();
    let err = |e| sql_error(&shown, e);
    // Read-write flags only so that the connection can map the WAL index; it is query-only.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
    conn.execute_batch("PRAGMA query_only = ON; PRAGMA cache_size = -4096;")
        .map_err(err)?;
    Ok(conn)
}

fn migrate(conn: &Connection, path: &str) -> Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(|e| sql_error(path, e))?;
    let result = migrate_locked(conn, path);
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    conn.execute_batch(end).map_err(|e| sql_error(path, e))?;
    result
}

/// The file's schema version, if it is an event log or empty; otherwise an error.
fn identify(conn: &Connection, path: &str) -> Result<i64> {
    let err = |e| sql_error(path, e);
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err)?;
    let app: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(err)?;
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .map_err(err)?;
    if app != APPLICATION_ID && (app != 0 || version != 0 || tables != 0) {
        return Err(LogError::Corrupt {
            path: path.to_owned(),
            detail: format!("another application's SQLite database (application_id {app:#x})"),
        });
    }
    if version > VERSION {
        return Err(LogError::SchemaTooNew {
            path: path.to_owned(),
            found: version,
            supported: VERSION,
        });
    }
    Ok(version)
}

/// Runs inside the migration's write transaction, so two processes cannot both migrate.
fn migrate_locked(conn: &Connection, path: &str) -> Result<()> {
    let err = |e| sql_error(path, e);
    let version = identify(conn, path)?;
    if version < 1 {
        tracing::info!(path, "creating event log schema v1");
        conn.execute_batch(V1).map_err(err)?;
        conn.execute_batch(&format!("PRAGMA application_id = {APPLICATION_ID}"))
            .map_err(err)?;
    }
    // Later versions migrate here, one `if version < N` step each.
    if version < VERSION {
        conn.execute_batch(&format!("PRAGMA user_version = {VERSION}"))
            .map_err(err)?;
    }
    Ok(())
}
