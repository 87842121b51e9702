//! Hold-while-activating and concurrency-limit phases: get the request a replica slot, waiting
//! if there is none.
//!
//! ```text
//!            try_acquire ──ok──────────────────────────────► slot on a replica
//!                 │
//!        NoEndpoints / Saturated
//!                 ▼
//!   admit as a waiter (bounded: hold capacity at zero replicas,
//!   queue_depth_factor × containerConcurrency × replicas otherwise) ──full──► 503
//!                 │
//!   NoEndpoints → poke the autoscaler (first held request only)
//!                 ▼
//!   wait for `changed` (endpoints set, slot freed, settings changed) ──deadline──► 503
//!                 └──────► try_acquire again
//! ```
//!
//! No polling: `set_endpoints` wakes every waiter at once, a freed slot wakes one. A waiter
//! registers for the wake-up *before* it looks at the replicas, and a releaser frees its slot
//! *before* it looks for waiters (both sequentially consistent), so a wake-up is never lost.
//! While anyone waits, newcomers go through the waiting path too, so they do not overtake the
//! queue on the fast path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::time::Instant;

use crate::GatewayOptions;
use crate::error::GatewayError;
use crate::revision::{Busy, Replica, RevisionState};

/// A request routed to a revision: counted in flight (for the autoscaler) from routing until
/// the response body ends, and holding a replica slot once it has one.
pub(crate) struct InFlight {
    pub revision: Arc<RevisionState>,
    replica: Option<Arc<Replica>>,
    /// It waited for the revision to get a first replica.
    pub held: bool,
}

impl InFlight {
    /// Counts a request that arrived at `arrived` in flight.
    pub fn new(revision: Arc<RevisionState>, arrived: Instant) -> Self {
        revision.request_in(arrived);
        InFlight {
            revision,
            replica: None,
            held: false,
        }
    }

    pub fn replica(&self) -> Option<&Arc<Replica>> {
        self.replica.as_ref()
    }

    /// Holds `replica`'s slot instead of the current one (if any), which is released.
    pub fn set_replica(&mut self, replica: Arc<Replica>) {
        if let Some(old) = self.replica.replace(replica) {
            self.revision.release(&old);
        }
    }

    /// Gets a slot on a replica of this revision, waiting until `deadline` if needed.
    pub async fn acquire(
        &mut self,
        container_concurrency: u32,
        options: &GatewayOptions,
        started: Instant,
        deadline: Instant,
    ) -> Result<(), GatewayError> {
        let rev = &*self.revision;
        if rev.waiting.load(Ordering::SeqCst) == 0
            && let Ok(replica) = rev.try_acquire(container_concurrency, None)
        {
            self.replica = Some(replica);
            return Ok(());
        }
        let mut waiter: Option<Waiter<'_>> = None;
        loop {
            let notified = rev.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if rev.is_removed() {
                return Err(GatewayError::RevisionRemoved {
                    revision: rev.key.clone(),
                });
            }
            let busy = match rev.try_acquire(container_concurrency, None) {
                Ok(replica) => {
                    self.replica = Some(replica);
                    return Ok(());
                }
                Err(busy) => busy,
            };
            if busy == Busy::NoEndpoints
                && let Some(message) = rev.failure()
            {
                return Err(GatewayError::RevisionFailing {
                    revision: rev.key.clone(),
                    message,
                });
            }
            if waiter.is_none() {
                let limit = match busy {
                    Busy::NoEndpoints => options.hold_capacity,
                    Busy::Saturated { replicas } => (options.queue_depth_factor as usize)
                        .saturating_mul(container_concurrency as usize)
                        .saturating_mul(replicas),
                };
                waiter = Some(Waiter::admit(rev, limit).ok_or_else(|| match busy {
                    Busy::NoEndpoints => GatewayError::HoldQueueFull {
                        revision: rev.key.clone(),
                        limit,
                    },
                    Busy::Saturated { .. } => GatewayError::QueueFull {
                        revision: rev.key.clone(),
                        limit,
                    },
                })?);
            }
            if busy == Busy::NoEndpoints {
                self.held = true;
                rev.note_held();
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let waited = Instant::now().duration_since(started);
                return Err(match busy {
                    Busy::NoEndpoints => GatewayError::HoldTimeout {
                        revision: rev.key.clone(),
                        waited,
                    },
                    Busy::Saturated { .. } => GatewayError::QueueTimeout {
                        revision: rev.key.clone(),
                        waited,
                        container_concurrency,
                    },
                });
            }
        }
    }

    /// A slot on another replica than the current one, without waiting (for a retry after a
    /// refused connection).
    pub fn try_other_replica(&mut self, container_concurrency: u32) -> bool {
        let exclude: Option<SocketAddr> = self.replica.as_ref().map(|r| r.addr);
        match self.revision.try_acquire(container_concurrency, exclude) {
            Ok(other) => {
                self.set_replica(other);
                true
            }
            Err(_) => false,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(replica) = self.replica.take() {
            self.revision.release(&replica);
        }
        self.revision.request_out();
    }
}

/// A request admitted to wait at a revision; leaving (however) updates the count.
struct Waiter<'a> {
    revision: &'a RevisionState,
}

impl<'a> Waiter<'a> {
    fn admit(revision: &'a RevisionState, limit: usize) -> Option<Self> {
        let before = revision.waiting.fetch_add(1, Ordering::SeqCst);
        if before >= limit {
            revision.waiting.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Waiter { revision })
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let before = self.revision.waiting.fetch_sub(1, Ordering::SeqCst);
        if before == 1 && !self.revision.has_endpoints() {
            self.revision.note_last_held_left();
        }
    }
}
