//! The writer: one thread owns the write connection and commits in groups.
//!
//! It blocks for the first queued request, takes every other request already queued (up to
//! `max_batch`), applies each inside its own `SAVEPOINT` of one transaction (so one request's
//! `Conflict` rolls back only that request), commits once, which costs one fsync for the whole
//! group under `synchronous = FULL`, then publishes the committed resourceVersion to the
//! watchers and only then answers the requests. An answered `Ok` is therefore on disk.
//!
//! The resourceVersion counter lives here: a request that fails gives its rvs back, so the
//! committed rvs have no gaps and every one of them has exactly one row in `changes`.

use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use tokio::sync::{oneshot, watch};

use super::reader::parse;
use super::watch::Recent;
use super::{backend, from_sql_rv, to_sql_rv};
use crate::object::{self, Key};
use crate::{EventType, Preconditions, Result, StoreError};

/// One write, as queued by [`super::SqliteStore`].
pub(super) enum Op {
    Create {
        resource: String,
        object: Value,
    },
    Update {
        resource: String,
        object: Value,
    },
    UpdateStatus {
        resource: String,
        object: Value,
    },
    Delete {
        resource: String,
        namespace: String,
        name: String,
        preconditions: Preconditions,
    },
}

pub(super) enum Request {
    Write {
        op: Op,
        reply: oneshot::Sender<Result<Value>>,
    },
    /// Compacts the change log now (within the retention limits); answers the compaction point.
    Compact { reply: oneshot::Sender<Result<u64>> },
}

/// Settings of the writer, taken from `SqliteOptions`.
pub(super) struct Settings {
    pub max_batch: usize,
    pub retain_changes: u64,
    pub retain_for: Duration,
    pub collect_orphans: bool,
}

/// How often the writer considers compacting the change log on its own.
const COMPACT_EVERY_COMMITS: u32 = 256;
const COMPACT_EVERY: Duration = Duration::from_secs(30);
/// Rows a compaction deletes at least, when that many are due (it also keeps up with twice the
/// write rate since the previous compaction).
const COMPACT_CHUNK: u64 = 2_000;
/// Attempts at a free name for `metadata.generateName`.
const GENERATE_NAME_ATTEMPTS: usize = 16;

pub(super) struct Writer {
    conn: Connection,
    settings: Settings,
    /// The newest rv handed out (committed, or pending in the open transaction).
    rv: u64,
    compacted: u64,
    committed: watch::Sender<u64>,
    recent: Arc<Recent>,
    /// `(resource, rv)` of the changes in the open transaction.
    pending: Vec<(String, u64)>,
    commits_since_compaction: u32,
    last_compaction: Instant,
    rv_at_compaction: u64,
}

/// What one request leaves for its answer.
enum Outcome {
    Write(oneshot::Sender<Result<Value>>, Result<Value>),
    Compact(oneshot::Sender<Result<u64>>, Result<u64>),
}

impl Outcome {
    fn fail(self, err: &StoreError) -> Outcome {
        let failed = || StoreError::Backend(format!("the write was not committed: {err}"));
        match self {
            Outcome::Write(reply, Ok(_)) => Outcome::Write(reply, Err(failed())),
            Outcome::Compact(reply, Ok(_)) => Outcome::Compact(reply, Err(failed())),
            other => other,
        }
    }

    fn send(self) {
        // A requester that went away (its future was dropped) needs no answer.
        match self {
            Outcome::Write(reply, result) => {
                let _ = reply.send(result);
            }
            Outcome::Compact(reply, result) => {
                let _ = reply.send(result);
            }
        }
    }
}

impl Writer {
    /// Reads the counters of a freshly opened write connection.
    pub(super) fn new(
        conn: Connection,
        settings: Settings,
    ) -> Result<(Writer, watch::Receiver<u64>, Arc<Recent>)> {
        let (rv, compacted): (i64, i64) = conn
            .query_row("SELECT rv, compacted FROM meta WHERE id = 0", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(backend)?;
        let (mut rv, compacted) = (from_sql_rv(rv)?, from_sql_rv(compacted)?);
        // `meta.rv` is written in the same transaction as the changes, so this never differs;
        // checked anyway because reusing an rv would break every watcher.
        let logged: Option<i64> = conn
            .query_row("SELECT max(rv) FROM changes", [], |r| r.get(0))
            .map_err(backend)?;
        let stored: Option<i64> = conn
            .query_row("SELECT max(rv) FROM objects", [], |r| r.get(0))
            .map_err(backend)?;
        let newest = logged
            .max(stored)
            .map(from_sql_rv)
            .transpose()?
            .unwrap_or(0)
            .max(compacted);
        if newest > rv {
            tracing::warn!(
                meta = rv,
                newest,
                "store meta resourceVersion behind its data, repairing"
            );
            conn.execute(
                "UPDATE meta SET rv = ?1 WHERE id = 0",
                params![to_sql_rv(newest)?],
            )
            .map_err(backend)?;
            rv = newest;
        }
        conn.set_prepared_statement_cache_capacity(64);
        let (committed, rx) = watch::channel(rv);
        let recent = Arc::new(Recent::new(rv));
        let writer = Writer {
            conn,
            settings,
            rv,
            compacted,
            committed,
            recent: recent.clone(),
            pending: Vec::new(),
            commits_since_compaction: 0,
            last_compaction: Instant::now(),
            rv_at_compaction: rv,
        };
        Ok((writer, rx, recent))
    }

    /// Serves requests until every sender is gone.
    pub(super) fn run(mut self, requests: mpsc::Receiver<Request>) {
        let max_batch = self.settings.max_batch.max(1);
        let mut batch = Vec::with_capacity(max_batch);
        while let Ok(first) = requests.recv() {
            batch.push(first);
            while batch.len() < max_batch {
                match requests.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            self.commit_batch(&mut batch);
        }
        if let Err(e) = self.conn.execute_batch("PRAGMA optimize") {
            tracing::debug!(error = %e, "PRAGMA optimize failed on close");
        }
        tracing::debug!(rv = self.rv, "store writer stopped");
    }

    fn commit_batch(&mut self, batch: &mut Vec<Request>) {
        let start_rv = self.rv;
        let start_compacted = self.compacted;
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut failure = self
            .conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(backend)
            .err();
        for request in batch.drain(..) {
            let outcome = match request {
                Request::Write { op, reply } if failure.is_none() => {
                    let result = self.in_savepoint(&mut failure, |w| w.apply(op));
                    Outcome::Write(reply, result)
                }
                Request::Compact { reply } if failure.is_none() => {
                    let result = self.in_savepoint(&mut failure, |w| w.compact());
                    Outcome::Compact(reply, result)
                }
                Request::Write { reply, .. } => Outcome::Write(reply, Ok(Value::Null)),
                Request::Compact { reply } => Outcome::Compact(reply, Ok(0)),
            };
            outcomes.push(outcome);
        }
        if failure.is_none()
            && self.compaction_due()
            && let Err(e) = self.in_savepoint(&mut failure, |w| w.compact())
        {
            tracing::warn!(error = %e, "compacting the change log failed");
        }
        if failure.is_none() && self.rv != start_rv {
            failure = to_sql_rv(self.rv)
                .and_then(|rv| {
                    self.conn
                        .execute("UPDATE meta SET rv = ?1 WHERE id = 0", params![rv])
                        .map_err(backend)
                })
                .err();
        }
        if failure.is_none() {
            failure = self.conn.execute_batch("COMMIT").map_err(backend).err();
        }
        match failure {
            None => {
                self.commits_since_compaction = self.commits_since_compaction.saturating_add(1);
                if self.rv != start_rv {
                    self.recent
                        .committed(self.pending.iter().map(|(r, rv)| (r.as_str(), *rv)));
                    self.committed.send_replace(self.rv);
                }
                self.pending.clear();
                outcomes.into_iter().for_each(Outcome::send);
            }
            Some(err) => {
                tracing::error!(error = %err, requests = outcomes.len(), "store commit failed");
                if !self.conn.is_autocommit()
                    && let Err(e) = self.conn.execute_batch("ROLLBACK")
                {
                    tracing::error!(error = %e, "store rollback failed");
                }
                // Resynchronise the counters with what the file says (a commit that reported
                // an I/O error may still have reached it); fall back to the batch's start.
                let on_disk: rusqlite::Result<(i64, i64)> =
                    self.conn
                        .query_row("SELECT rv, compacted FROM meta WHERE id = 0", [], |r| {
                            Ok((r.get(0)?, r.get(1)?))
                        });
                match on_disk {
                    Ok((rv, compacted)) => {
                        self.rv = from_sql_rv(rv).unwrap_or(start_rv).max(start_rv);
                        self.compacted = from_sql_rv(compacted).unwrap_or(start_compacted);
                    }
                    Err(_) => {
                        self.rv = start_rv;
                        self.compacted = start_compacted;
                    }
                }
                if self.rv != start_rv {
                    // Committed after all: let watchers see it.
                    self.recent
                        .committed(self.pending.iter().map(|(r, rv)| (r.as_str(), *rv)));
                    self.committed.send_replace(self.rv);
                }
                self.pending.clear();
                outcomes.into_iter().for_each(|o| o.fail(&err).send());
            }
        }
    }

    /// Runs `f` inside a savepoint: its writes stay when it succeeds and vanish, with the rvs it
    /// took, when it fails. A savepoint that cannot be rolled back fails the whole batch.
    fn in_savepoint<T>(
        &mut self,
        failure: &mut Option<StoreError>,
        f: impl FnOnce(&mut Writer) -> Result<T>,
    ) -> Result<T> {
        let (rv, compacted) = (self.rv, self.compacted);
        if let Err(e) = self.conn.execute_batch("SAVEPOINT op") {
            let err = backend(e);
            *failure = Some(StoreError::Backend(err.to_string()));
            return Err(err);
        }
        let result = f(self);
        let end = match result {
            Ok(_) => self.conn.execute_batch("RELEASE op"),
            Err(_) => {
                self.rv = rv;
                self.compacted = compacted;
                self.conn.execute_batch("ROLLBACK TO op; RELEASE op")
            }
        };
        if let Err(e) = end {
            *failure = Some(backend(e));
        }
        result
    }

    fn apply(&mut self, op: Op) -> Result<Value> {
        match op {
            Op::Create { resource, object } => self.create(&resource, object),
            Op::Update { resource, object } => self.update(&resource, object),
            Op::UpdateStatus { resource, object } => self.update_status(&resource, object),
            Op::Delete {
                resource,
                namespace,
                name,
                preconditions,
            } => self.delete(&resource, Key { namespace, name }, &preconditions),
        }
    }

    fn create(&mut self, resource: &str, mut obj: Value) -> Result<Value> {
        let mut key = object::key_of(&obj)?;
        if key.name.is_empty() {
            let Some(prefix) = object::generate_name_of(&obj).map(str::to_owned) else {
                return Err(StoreError::Invalid(
                    "metadata.name: Required value: name or generateName is required".into(),
                ));
            };
            key.name = self.free_name(resource, &key.namespace, &prefix)?;
            object::set_name(&mut obj, &key.name)?;
        } else if self.exists(resource, &key)? {
            return Err(StoreError::AlreadyExists {
                resource: resource.into(),
                name: key.name,
            });
        }
        let uid = uuid::Uuid::new_v4().to_string();
        object::stamp_new(&mut obj, &uid, &now_rfc3339())?;
        let rv = self.next_rv();
        object::set_resource_version(&mut obj, rv);
        let text = to_text(&obj)?;
        let rv_sql = to_sql_rv(rv)?;
        self.conn
            .prepare_cached("INSERT INTO objects (resource, namespace, name, uid, rv, value) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
            .and_then(|mut s| s.execute(params![resource, key.namespace, key.name, uid, rv_sql, text]))
            .map_err(backend)?;
        let owners = object::owner_uids(&obj);
        self.add_owners(resource, &key, &owners)?;
        self.record(rv, EventType::Added, resource, &key, &text)?;
        if self.is_orphan(&owners)? {
            return self.collect_orphan(resource, key, obj);
        }
        Ok(obj)
    }

    /// A name from `prefix` and a random suffix that no object of `resource` has yet.
    fn free_name(&mut self, resource: &str, namespace: &str, prefix: &str) -> Result<String> {
        for _ in 0..GENERATE_NAME_ATTEMPTS {
            let random = uuid::Uuid::new_v4();
            let name = object::generated_name(prefix, random.as_bytes());
            let key = Key {
                namespace: namespace.into(),
                name,
            };
            if !self.exists(resource, &key)? {
                return Ok(key.name);
            }
        }
        Err(StoreError::AlreadyExists {
            resource: resource.into(),
            name: format!("{prefix}*"),
        })
    }

    fn update(&mut self, resource: &str, incoming: Value) -> Result<Value> {
        let key = object::named_key_of(&incoming)?;
        let stored = self.load_existing(resource, &key)?;
        object::check_resource_version(resource, &stored, &incoming)?;
        let Some(mut new) = object::merge_update(&stored, incoming)? else {
            return Ok(stored);
        };
        if object::is_deleting(&new) && !object::has_finalizers(&new) {
            // The last finalizer is gone: the pending delete happens now.
            self.remove_owners(resource, &key, &object::owner_uids(&stored))?;
            return self.delete_cascade(resource, key, new);
        }
        let rv = self.write_existing(resource, &key, &stored, &mut new)?;
        let owners = object::owner_uids(&new);
        if owners != object::owner_uids(&stored) && self.is_orphan(&owners)? {
            return self.collect_orphan(resource, key, new);
        }
        debug_assert_eq!(object::resource_version_of(&new).ok().flatten(), Some(rv));
        Ok(new)
    }

    fn update_status(&mut self, resource: &str, incoming: Value) -> Result<Value> {
        let key = object::named_key_of(&incoming)?;
        let stored = self.load_existing(resource, &key)?;
        object::check_resource_version(resource, &stored, &incoming)?;
        let Some(mut new) = object::merge_status(&stored, &incoming)? else {
            return Ok(stored);
        };
        self.write_existing(resource, &key, &stored, &mut new)?;
        Ok(new)
    }

    fn delete(&mut self, resource: &str, key: Key, pre: &Preconditions) -> Result<Value> {
        let stored = self.load_existing(resource, &key)?;
        object::check_preconditions(resource, &stored, pre)?;
        if object::has_finalizers(&stored) {
            return self.mark_deleting(resource, &key, stored);
        }
        self.delete_cascade(resource, key, stored)
    }

    /// Sets `deletionTimestamp` on an object with finalizers (once).
    fn mark_deleting(&mut self, resource: &str, key: &Key, stored: Value) -> Result<Value> {
        if object::is_deleting(&stored) {
            return Ok(stored);
        }
        let mut new = stored.clone();
        object::mark_deleting(&mut new, &now_rfc3339())?;
        self.write_existing(resource, key, &stored, &mut new)?;
        Ok(new)
    }

    /// Writes a changed existing object with a new rv (and its owner index), and logs MODIFIED.
    fn write_existing(
        &mut self,
        resource: &str,
        key: &Key,
        stored: &Value,
        new: &mut Value,
    ) -> Result<u64> {
        let rv = self.next_rv();
        object::set_resource_version(new, rv);
        let text = to_text(new)?;
        let rv_sql = to_sql_rv(rv)?;
        self.conn
            .prepare_cached("UPDATE objects SET rv = ?4, value = ?5 WHERE resource = ?1 AND namespace = ?2 AND name = ?3")
            .and_then(|mut s| s.execute(params![resource, key.namespace, key.name, rv_sql, text]))
            .map_err(backend)?;
        let (old_owners, new_owners) = (object::owner_uids(stored), object::owner_uids(new));
        if old_owners != new_owners {
            self.remove_owners(resource, key, &old_owners)?;
            self.add_owners(resource, key, &new_owners)?;
        }
        self.record(rv, EventType::Modified, resource, key, &text)?;
        Ok(rv)
    }

    /// Deletes `obj` and, depth first, every dependent whose owners are all gone; a dependent
    /// with finalizers only gets `deletionTimestamp` (its own dependents wait for its delete).
    /// Each deleted object is logged DELETED with its own rv. Returns `obj` as deleted.
    fn delete_cascade(&mut self, resource: &str, key: Key, obj: Value) -> Result<Value> {
        let mut first = None;
        let mut pending = vec![(resource.to_owned(), key, obj)];
        while let Some((resource, key, mut obj)) = pending.pop() {
            let rv = self.next_rv();
            object::set_resource_version(&mut obj, rv);
            let text = to_text(&obj)?;
            self.conn
                .prepare_cached(
                    "DELETE FROM objects WHERE resource = ?1 AND namespace = ?2 AND name = ?3",
                )
                .and_then(|mut s| s.execute(params![resource, key.namespace, key.name]))
                .map_err(backend)?;
            self.remove_owners(&resource, &key, &object::owner_uids(&obj))?;
            self.record(rv, EventType::Deleted, &resource, &key, &text)?;
            if let Some(uid) = object::uid_of(&obj) {
                let mut dependents = self.dependents(uid)?;
                self.conn
                    .prepare_cached("DELETE FROM owners WHERE owner_uid = ?1")
                    .and_then(|mut s| s.execute(params![uid]))
                    .map_err(backend)?;
                // Reversed so that the stack deletes them in (resource, namespace, name) order.
                dependents.reverse();
                for (dep_resource, dep_key) in dependents {
                    let Some(dep) = self.load(&dep_resource, &dep_key)? else {
                        continue;
                    };
                    if self.any_exists(&object::owner_uids(&dep))? {
                        continue;
                    }
                    if object::has_finalizers(&dep) {
                        self.mark_deleting(&dep_resource, &dep_key, dep)?;
                    } else {
                        pending.push((dep_resource, dep_key, dep));
                    }
                }
            }
            if first.is_none() {
                first = Some(obj);
            }
        }
        first.ok_or_else(|| StoreError::Backend("cascading delete deleted nothing".into()))
    }

    /// Whether an object with these owner uids has lost all of its owners.
    fn is_orphan(&mut self, owners: &[String]) -> Result<bool> {
        Ok(self.settings.collect_orphans && !owners.is_empty() && !self.any_exists(owners)?)
    }

    /// Garbage collection of an object written with owners that are all gone (its owner was
    /// deleted while a controller was creating it): deleted at once, as Kubernetes' garbage
    /// collector would shortly after. Returns the written object, as the write succeeded.
    fn collect_orphan(&mut self, resource: &str, key: Key, obj: Value) -> Result<Value> {
        tracing::debug!(resource, namespace = %key.namespace, name = %key.name, "collecting object whose owners are gone");
        if object::has_finalizers(&obj) {
            self.mark_deleting(resource, &key, obj.clone())?;
        } else {
            self.delete_cascade(resource, key, obj.clone())?;
        }
        Ok(obj)
    }

    /// Deletes the oldest changes beyond both retention limits (a bounded chunk per call).
    fn compact(&mut self) -> Result<u64> {
        self.commits_since_compaction = 0;
        self.last_compaction = Instant::now();
        let written = self.rv.saturating_sub(self.rv_at_compaction);
        self.rv_at_compaction = self.rv;
        let by_count = self.rv.saturating_sub(self.settings.retain_changes);
        let limit = by_count.min(
            self.compacted
                .saturating_add(COMPACT_CHUNK.max(written.saturating_mul(2))),
        );
        if limit <= self.compacted {
            return Ok(self.compacted);
        }
        let cutoff = unix_now().saturating_sub(self.settings.retain_for.as_secs());
        let cutoff = i64::try_from(cutoff).unwrap_or(i64::MAX);
        let (low, high) = (to_sql_rv(self.compacted)?, to_sql_rv(limit)?);
        let newest_old: Option<i64> = self
            .conn
            .prepare_cached("SELECT max(rv) FROM changes WHERE rv > ?1 AND rv <= ?2 AND ts <= ?3")
            .and_then(|mut s| s.query_row(params![low, high, cutoff], |r| r.get(0)))
            .map_err(backend)?;
        let Some(point) = newest_old else {
            return Ok(self.compacted);
        };
        let deleted = self
            .conn
            .prepare_cached("DELETE FROM changes WHERE rv <= ?1")
            .and_then(|mut s| s.execute(params![point]))
            .map_err(backend)?;
        self.conn
            .prepare_cached("UPDATE meta SET compacted = ?1 WHERE id = 0")
            .and_then(|mut s| s.execute(params![point]))
            .map_err(backend)?;
        self.compacted = from_sql_rv(point)?;
        tracing::debug!(
            compacted = self.compacted,
            deleted,
            "compacted the change log"
        );
        Ok(self.compacted)
    }

    fn compaction_due(&self) -> bool {
        self.commits_since_compaction >= COMPACT_EVERY_COMMITS
            || self.last_compaction.elapsed() >= COMPACT_EVERY
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn record(
        &mut self,
        rv: u64,
        kind: EventType,
        resource: &str,
        key: &Key,
        text: &str,
    ) -> Result<()> {
        let ts = i64::try_from(unix_now()).unwrap_or(i64::MAX);
        let rv_sql = to_sql_rv(rv)?;
        self.conn
            .prepare_cached(
                "INSERT INTO changes (rv, type, resource, namespace, name, ts, value) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .and_then(|mut s| {
                s.execute(params![rv_sql, kind.as_str(), resource, key.namespace, key.name, ts, text])
            })
            .map_err(backend)?;
        // Kept even if the request's savepoint is rolled back: an extra entry only costs a
        // watcher one needless read.
        self.pending.push((resource.to_owned(), rv));
        Ok(())
    }

    fn load(&mut self, resource: &str, key: &Key) -> Result<Option<Value>> {
        let text: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT value FROM objects WHERE resource = ?1 AND namespace = ?2 AND name = ?3",
            )
            .and_then(|mut s| {
                s.query_row(params![resource, key.namespace, key.name], |r| r.get(0))
                    .optional()
            })
            .map_err(backend)?;
        text.map(|t| parse(&t)).transpose()
    }

    fn load_existing(&mut self, resource: &str, key: &Key) -> Result<Value> {
        self.load(resource, key)?
            .ok_or_else(|| StoreError::NotFound {
                resource: resource.into(),
                name: key.name.clone(),
            })
    }

    fn exists(&mut self, resource: &str, key: &Key) -> Result<bool> {
        self.conn
            .prepare_cached(
                "SELECT 1 FROM objects WHERE resource = ?1 AND namespace = ?2 AND name = ?3",
            )
            .and_then(|mut s| s.exists(params![resource, key.namespace, key.name]))
            .map_err(backend)
    }

    /// Whether an object with any of these uids exists.
    fn any_exists(&mut self, uids: &[String]) -> Result<bool> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT 1 FROM objects WHERE uid = ?1")
            .map_err(backend)?;
        for uid in uids {
            if stmt.exists(params![uid]).map_err(backend)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn add_owners(&mut self, resource: &str, key: &Key, uids: &[String]) -> Result<()> {
        if uids.is_empty() {
            return Ok(());
        }
        let mut stmt = self
            .conn
            .prepare_cached("INSERT OR IGNORE INTO owners (owner_uid, resource, namespace, name) VALUES (?1, ?2, ?3, ?4)")
            .map_err(backend)?;
        for uid in uids {
            stmt.execute(params![uid, resource, key.namespace, key.name])
                .map_err(backend)?;
        }
        Ok(())
    }

    fn remove_owners(&mut self, resource: &str, key: &Key, uids: &[String]) -> Result<()> {
        if uids.is_empty() {
            return Ok(());
        }
        let mut stmt = self
            .conn
            .prepare_cached("DELETE FROM owners WHERE owner_uid = ?1 AND resource = ?2 AND namespace = ?3 AND name = ?4")
            .map_err(backend)?;
        for uid in uids {
            stmt.execute(params![uid, resource, key.namespace, key.name])
                .map_err(backend)?;
        }
        Ok(())
    }

    /// The objects naming `uid` in their `ownerReferences`, in (resource, namespace, name) order.
    fn dependents(&mut self, uid: &str) -> Result<Vec<(String, Key)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT resource, namespace, name FROM owners WHERE owner_uid = ?1 ORDER BY resource, namespace, name")
            .map_err(backend)?;
        let rows = stmt
            .query_map(params![uid], |r| {
                Ok((
                    r.get(0)?,
                    Key {
                        namespace: r.get(1)?,
                        name: r.get(2)?,
                    },
                ))
            })
            .map_err(backend)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
    }
}

fn to_text(obj: &Value) -> Result<String> {
    serde_json::to_string(obj)
        .map_err(|e| StoreError::Invalid(format!("cannot serialize the object: {e}")))
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
