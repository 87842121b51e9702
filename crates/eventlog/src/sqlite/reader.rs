//! Reads for dispatchers that fell behind the tail cache, and for `stats`: a small pool of
//! query-only connections. In WAL mode a reader sees the last commit and never waits for the
//! writer, so a backlog read does not delay appends.

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};

use super::{from_sql, schema, sql_error, to_sql};
use crate::{Record, Result, Seq};

pub(super) struct Reads {
    path: PathBuf,
    shown: String,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
}

impl Reads {
    pub(super) fn new(path: PathBuf, max_idle: usize) -> Reads {
        Reads {
            shown: path.display().to_string(),
            path,
            idle: Mutex::new(Vec::new()),
            max_idle,
        }
    }

    /// Runs `f` on a pooled connection (opening one when none is idle).
    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let pooled = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => schema::open_reader(&self.path)?,
        };
        let result = f(&conn).map_err(|e| sql_error(&self.shown, e));
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
        result
    }

    /// Up to `max` records of stream `id` with `after < seq <= head`, in order.
    pub(super) fn records(
        &self,
        id: i64,
        after: Seq,
        head: Seq,
        max: usize,
    ) -> Result<Vec<Record>> {
        let (after, head) = (to_sql(after)?, to_sql(head)?);
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        let rows: Vec<(i64, Vec<u8>)> = self.with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, payload FROM records WHERE stream = ?1 AND seq > ?2 AND seq <= ?3 ORDER BY seq LIMIT ?4",
            )?;
            let rows = stmt.query_map(params![id, after, head, limit], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
            rows.collect()
        })?;
        rows.into_iter()
            .map(|(seq, payload)| {
                Ok(Record {
                    seq: from_sql(seq)?,
                    payload: Bytes::from(payload),
                })
            })
            .collect()
    }

    /// `(head, trimmed)` of the named stream, if it exists.
    pub(super) fn extent(&self, stream: &str) -> Result<Option<(Seq, Seq)>> {
        let row: Option<(i64, i64)> = self.with(|conn| {
            conn.prepare_cached("SELECT head, trimmed FROM streams WHERE name = ?1")?
                .query_row(params![stream], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })?;
        row.map(|(head, trimmed)| Ok((from_sql(head)?, from_sql(trimmed)?)))
            .transpose()
    }
}
