//! One watcher: a task that sends the committed changes after `after`, read from the change
//! log in batches, then sleeps until the writer publishes a newer committed rv.
//!
//! Why this cannot miss or duplicate: `after` only grows, and each read returns exactly the
//! matching changes in `(after, snapshot rv]` (or the first `BATCH` of them, and then `after`
//! becomes the last one sent). The committed rv is marked seen *before* the read, so a commit
//! published during the read wakes the watcher again. The writer publishes only after commit, so
//! the snapshot read after a wake-up contains what woke it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{mpsc, watch};

use super::reader::{Filter, Reads};
use crate::{Result, StoreError, WatchEvent};

/// Changes read per log read.
const BATCH: usize = 64;

/// The newest committed rv of each resource changed since the store was opened, so that a
/// watcher of one resource skips the log read when a commit touched only other resources.
///
/// The writer updates it after a commit and before publishing that commit's rv, so a watcher
/// that has seen committed rv `C` finds every change up to `C` here.
pub(super) struct Recent {
    /// The committed rv when the store was opened: changes up to it are not indexed.
    opened_at: u64,
    last: Mutex<HashMap<String, u64>>,
}

impl Recent {
    pub(super) fn new(opened_at: u64) -> Recent {
        Recent {
            opened_at,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// Records committed changes (`(resource, rv)` in any order).
    pub(super) fn committed<'a>(&self, changes: impl IntoIterator<Item = (&'a str, u64)>) {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        for (resource, rv) in changes {
            match last.get_mut(resource) {
                Some(newest) => *newest = (*newest).max(rv),
                None => {
                    last.insert(resource.to_owned(), rv);
                }
            }
        }
    }

    /// Whether `resource` surely has no change after `after` (up to what has been published).
    fn unchanged_since(&self, resource: &str, after: u64) -> bool {
        if after < self.opened_at {
            return false;
        }
        let last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        last.get(resource).is_none_or(|newest| *newest <= after)
    }
}

pub(super) struct Watcher {
    pub reads: Arc<Reads>,
    pub recent: Arc<Recent>,
    pub committed: watch::Receiver<u64>,
    pub filter: Filter,
    /// Every change up to this rv has been sent (or filtered out).
    pub after: u64,
    pub tx: mpsc::Sender<Result<WatchEvent>>,
}

impl Watcher {
    /// Runs until the receiver is dropped, the store is closed (after sending everything that
    /// was committed), or an error (sent as the last item).
    pub(super) async fn run(mut self) {
        loop {
            let committed = *self.committed.borrow_and_update();
            if committed > self.after
                && let Some(resource) = &self.filter.resource
                && self.recent.unchanged_since(resource, self.after)
            {
                self.after = committed;
            }
            if committed > self.after {
                let batch = {
                    let (reads, filter, after) =
                        (self.reads.clone(), self.filter.clone(), self.after);
                    tokio::task::spawn_blocking(move || reads.changes(&filter, after, BATCH)).await
                };
                let batch = match batch {
                    Ok(Ok(batch)) => batch,
                    Ok(Err(e)) => return self.fail(e).await,
                    Err(e) => {
                        return self
                            .fail(StoreError::Backend(format!("watch read task failed: {e}")))
                            .await;
                    }
                };
                for event in batch.events {
                    if self.tx.send(Ok(event)).await.is_err() {
                        return;
                    }
                }
                self.after = self.after.max(batch.next_after);
                continue;
            }
            tokio::select! {
                changed = self.committed.changed() => {
                    if changed.is_err() {
                        // The store is closed and everything it committed was sent.
                        return;
                    }
                }
                () = self.tx.closed() => return,
            }
        }
    }

    async fn fail(self, err: StoreError) {
        match &err {
            StoreError::Expired { .. } => tracing::debug!(error = %err, "watch expired"),
            _ => tracing::warn!(error = %err, "watch failed"),
        }
        let _ = self.tx.send(Err(err)).await;
    }
}
