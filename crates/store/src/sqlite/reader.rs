//! Reads: a small pool of read-only connections. In WAL mode a reader sees the last commit as
//! of the start of its transaction and never waits for the writer, so `get`, `list` and the
//! watchers' log reads proceed while a batch is being written.

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use rusqlite::{Connection, OptionalExtension, Params, params};
use serde_json::Value;

use super::{backend, from_sql_rv, schema, to_sql_rv};
use crate::{EventType, List, Result, StoreError, WatchEvent};

pub(super) struct Reads {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
}

/// What a watcher filters on: one resource or all, one namespace or all.
#[derive(Debug, Clone)]
pub(super) struct Filter {
    pub resource: Option<String>,
    pub namespace: Option<String>,
}

/// One read of the change log.
pub(super) struct Batch {
    pub events: Vec<WatchEvent>,
    /// The rv to read after next time: the last event's rv when the batch is full, otherwise
    /// the newest rv committed in the snapshot that was read (nothing matched up to it).
    pub next_after: u64,
}

impl Reads {
    pub(super) fn new(path: PathBuf, max_idle: usize) -> Reads {
        Reads {
            path,
            idle: Mutex::new(Vec::new()),
            max_idle,
        }
    }

    /// Runs `f` on a pooled connection (opening one when none is idle).
    fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let pooled = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => schema::open_reader(&self.path)?,
        };
        let result = f(&conn);
        // A connection left inside a transaction (a failed read) is not reused.
        if conn.is_autocommit() {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < self.max_idle {
                idle.push(conn);
            }
        }
        result
    }

    /// Runs `f` inside one read transaction: everything it reads is one snapshot.
    fn snapshot<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.with(|conn| {
            let tx = conn.unchecked_transaction().map_err(backend)?;
            let result = f(&tx)?;
            tx.commit().map_err(backend)?;
            Ok(result)
        })
    }

    pub(super) fn get(&self, resource: &str, namespace: &str, name: &str) -> Result<Option<Value>> {
        self.with(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT value FROM objects WHERE resource = ?1 AND namespace = ?2 AND name = ?3")
                .map_err(backend)?;
            let text: Option<String> = stmt
                .query_row(params![resource, namespace, name], |r| r.get(0))
                .optional()
                .map_err(backend)?;
            text.map(|t| parse(&t)).transpose()
        })
    }

    pub(super) fn list(&self, resource: &str, namespace: Option<&str>) -> Result<List> {
        self.snapshot(|conn| {
            let (rv, _) = meta(conn)?;
            let mut items = Vec::new();
            let mut push = |text: String| -> Result<()> {
                items.push(parse(&text)?);
                Ok(())
            };
            match namespace {
                Some(ns) => {
                    let mut stmt = conn
                        .prepare_cached(
                            "SELECT value FROM objects WHERE resource = ?1 AND namespace = ?2 ORDER BY name",
                        )
                        .map_err(backend)?;
                    let rows = stmt.query_map(params![resource, ns], |r| r.get(0)).map_err(backend)?;
                    for text in rows {
                        push(text.map_err(backend)?)?;
                    }
                }
                None => {
                    let mut stmt = conn
                        .prepare_cached(
                            "SELECT value FROM objects WHERE resource = ?1 ORDER BY namespace, name",
                        )
                        .map_err(backend)?;
                    let rows = stmt.query_map(params![resource], |r| r.get(0)).map_err(backend)?;
                    for text in rows {
                        push(text.map_err(backend)?)?;
                    }
                }
            }
            Ok(List { items, resource_version: rv })
        })
    }

    /// The newest committed rv and the compaction point.
    pub(super) fn meta(&self) -> Result<(u64, u64)> {
        self.with(meta)
    }

    /// Up to `limit` changes after `after` that pass `filter`, in rv order. `Expired` when the
    /// log no longer holds every change after `after`.
    pub(super) fn changes(&self, filter: &Filter, after: u64, limit: usize) -> Result<Batch> {
        self.snapshot(|conn| {
            let (rv, compacted) = meta(conn)?;
            if after < compacted {
                return Err(StoreError::Expired {
                    requested: after,
                    oldest: compacted,
                });
            }
            if rv <= after {
                return Ok(Batch {
                    events: Vec::new(),
                    next_after: after,
                });
            }
            let (after_sql, rv_sql) = (to_sql_rv(after)?, to_sql_rv(rv)?);
            let limit_sql = i64::try_from(limit).unwrap_or(i64::MAX);
            const COLUMNS: &str =
                "SELECT rv, type, resource, value FROM changes WHERE rv > ?1 AND rv <= ?2";
            let mut events = Vec::new();
            match (&filter.resource, &filter.namespace) {
                (None, None) => {
                    let sql = format!("{COLUMNS} ORDER BY rv LIMIT ?3");
                    read_changes(
                        conn,
                        &sql,
                        params![after_sql, rv_sql, limit_sql],
                        &mut events,
                    )?;
                }
                (Some(res), None) => {
                    let sql = format!("{COLUMNS} AND resource = ?3 ORDER BY rv LIMIT ?4");
                    read_changes(
                        conn,
                        &sql,
                        params![after_sql, rv_sql, res, limit_sql],
                        &mut events,
                    )?;
                }
                (None, Some(ns)) => {
                    let sql = format!("{COLUMNS} AND namespace = ?3 ORDER BY rv LIMIT ?4");
                    read_changes(
                        conn,
                        &sql,
                        params![after_sql, rv_sql, ns, limit_sql],
                        &mut events,
                    )?;
                }
                (Some(res), Some(ns)) => {
                    let sql = format!(
                        "{COLUMNS} AND resource = ?3 AND namespace = ?4 ORDER BY rv LIMIT ?5"
                    );
                    read_changes(
                        conn,
                        &sql,
                        params![after_sql, rv_sql, res, ns, limit_sql],
                        &mut events,
                    )?;
                }
            }
            let next_after = match events.last() {
                Some(last) if events.len() >= limit => last.resource_version,
                _ => rv,
            };
            Ok(Batch { events, next_after })
        })
    }
}

fn read_changes(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    events: &mut Vec<WatchEvent>,
) -> Result<()> {
    let mut stmt = conn.prepare_cached(sql).map_err(backend)?;
    let mut rows = stmt.query(params).map_err(backend)?;
    while let Some(row) = rows.next().map_err(backend)? {
        let rv: i64 = row.get(0).map_err(backend)?;
        let kind: String = row.get(1).map_err(backend)?;
        let text: String = row.get(3).map_err(backend)?;
        events.push(WatchEvent {
            event_type: event_type(&kind)?,
            resource: row.get(2).map_err(backend)?,
            object: parse(&text)?,
            resource_version: from_sql_rv(rv)?,
        });
    }
    Ok(())
}

fn meta(conn: &Connection) -> Result<(u64, u64)> {
    let mut stmt = conn
        .prepare_cached("SELECT rv, compacted FROM meta WHERE id = 0")
        .map_err(backend)?;
    let (rv, compacted): (i64, i64) = stmt
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(backend)?;
    Ok((from_sql_rv(rv)?, from_sql_rv(compacted)?))
}

pub(super) fn parse(text: &str) -> Result<Value> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Backend(format!("stored object is not valid JSON: {e}")))
}

fn event_type(kind: &str) -> Result<EventType> {
    match kind {
        "ADDED" => Ok(EventType::Added),
        "MODIFIED" => Ok(EventType::Modified),
        "DELETED" => Ok(EventType::Deleted),
        other => Err(StoreError::Backend(format!(
            "unknown change type {other:?} in the change log"
        ))),
    }
}
