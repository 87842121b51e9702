//! One revision's live state: settings, ready replicas with their in-flight counts and
//! connection pools, the activation state machine, waiters, and the load meter.
//!
//! Read on every request without locks: the settings and the replica list are `ArcSwap`
//! snapshots, counts are atomics. The only locks are the activation state (taken when there is
//! no replica) and the sampler's last reading (taken by the autoscaler's tick).
//!
//! ## Balancing (Knative's activator policies)
//! - `containerConcurrency` 0 (no limit): power of two choices — two random replicas, the one
//!   with fewer requests in flight. Near least-loaded at the cost of two loads, with no shared
//!   cursor to contend on.
//! - 1..=3: first available — the first replica, in endpoint order, with a free slot. With so
//!   few slots per replica, packing keeps the others free for bursts and lets idle replicas
//!   become truly idle (and scale down).
//! - more: round robin over free slots — a shared cursor picks where the scan starts, so slots
//!   fill evenly.
//!
//! A slot is claimed with a compare-and-swap on the replica's in-flight count, so at most
//! `containerConcurrency` requests are ever in flight on one replica, whatever the races.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio::sync::Notify;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

use crate::activation::{Activation, ActivationEvent, Effect};
use crate::meter::{Meter, Reading};
use crate::observe::RequestObserver;
use crate::pool::Pool;
use crate::route::random_u64;
use crate::table::{RevisionConfig, RevisionKey};
use crate::{GatewayEvent, Load, RevisionStats};

pub(crate) struct Replica {
    pub addr: SocketAddr,
    in_flight: AtomicU32,
    pub pool: Pool,
}

impl Replica {
    fn new(addr: SocketAddr, max_idle: usize) -> Self {
        Replica {
            addr,
            in_flight: AtomicU32::new(0),
            pool: Pool::new(addr, max_idle),
        }
    }

    pub fn load(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Claims a slot if fewer than `limit` are taken.
    fn try_claim(&self, limit: u32) -> bool {
        self.in_flight
            .fetch_update(Ordering::SeqCst, Ordering::Relaxed, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok()
    }

    fn claim(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
    }

    fn release(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Why no replica could be claimed right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Busy {
    /// No ready replica (at zero, or scaling from zero).
    NoEndpoints,
    /// Every replica has `containerConcurrency` requests in flight.
    Saturated { replicas: usize },
}

pub(crate) struct RevisionState {
    pub key: RevisionKey,
    config: ArcSwap<RevisionConfig>,
    replicas: ArcSwap<Vec<Arc<Replica>>>,
    /// Guards the activation state and serialises endpoint updates with it.
    activation: Mutex<Activation>,
    /// Woken on endpoint or setting changes (all waiters) and on a freed slot (one waiter).
    pub changed: Notify,
    /// Requests waiting here, for a first replica or for a free slot.
    pub waiting: AtomicUsize,
    removed: AtomicBool,
    /// Set while the revision's replicas keep failing: requests that would wait for a first
    /// replica get 503 with this message at once instead of waiting out their timeout.
    failure: ArcSwap<Option<String>>,
    cursor: AtomicUsize,
    meter: Meter,
    last_reading: Mutex<Option<(Reading, Instant)>>,
    epoch: Instant,
    events: UnboundedSender<GatewayEvent>,
    max_idle: usize,
    /// This revision's request observer, if the gateway's has one for it.
    pub observer: Option<Arc<dyn RequestObserver>>,
}

impl RevisionState {
    pub fn new(
        key: RevisionKey,
        config: RevisionConfig,
        epoch: Instant,
        events: UnboundedSender<GatewayEvent>,
        max_idle: usize,
        observer: Option<Arc<dyn RequestObserver>>,
    ) -> Self {
        RevisionState {
            key,
            config: ArcSwap::from_pointee(config),
            replicas: ArcSwap::from_pointee(Vec::new()),
            activation: Mutex::new(Activation::Idle),
            changed: Notify::new(),
            waiting: AtomicUsize::new(0),
            removed: AtomicBool::new(false),
            failure: ArcSwap::from_pointee(None),
            cursor: AtomicUsize::new(0),
            meter: Meter::default(),
            last_reading: Mutex::new(None),
            epoch,
            events,
            max_idle,
            observer,
        }
    }

    pub fn config(&self) -> RevisionConfig {
        **self.config.load()
    }

    pub fn set_config(&self, config: RevisionConfig) {
        self.config.store(Arc::new(config));
        // A larger containerConcurrency may let waiters in.
        self.changed.notify_waiters();
    }

    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::SeqCst)
    }

    pub fn mark_removed(&self) {
        self.removed.store(true, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    pub fn failure(&self) -> Option<String> {
        (*self.failure.load_full()).clone()
    }

    /// Sets or clears the failure; waiters re-check it at once.
    pub fn set_failure(&self, failure: Option<String>) {
        self.failure.store(Arc::new(failure));
        self.changed.notify_waiters();
    }

    pub fn has_endpoints(&self) -> bool {
        !self.replicas.load().is_empty()
    }

    /// Replaces the ready replicas. Replicas that stay keep their counts and connections;
    /// requests in flight on removed ones finish there, and those are returned. Waiters are
    /// woken at once.
    pub fn set_endpoints(&self, mut addrs: Vec<SocketAddr>) -> Vec<Arc<Replica>> {
        addrs.sort_unstable();
        addrs.dedup();
        let mut activation = self.activation.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.replicas.load();
        let by_addr: HashMap<SocketAddr, &Arc<Replica>> =
            current.iter().map(|r| (r.addr, r)).collect();
        let next: Vec<Arc<Replica>> = addrs
            .iter()
            .map(|addr| match by_addr.get(addr) {
                Some(existing) => Arc::clone(existing),
                None => Arc::new(Replica::new(*addr, self.max_idle)),
            })
            .collect();
        let removed: Vec<Arc<Replica>> = current
            .iter()
            .filter(|r| addrs.binary_search(&r.addr).is_err())
            .cloned()
            .collect();
        let event = if next.is_empty() {
            ActivationEvent::EndpointsGone
        } else {
            ActivationEvent::EndpointsReady
        };
        self.replicas.store(Arc::new(next));
        let (state, _) = activation.step(event);
        *activation = state;
        drop(activation);
        self.changed.notify_waiters();
        removed
    }

    /// A request is being held because there is no replica: the first one asks the
    /// autoscaler for a replica (see `activation.rs`).
    pub fn note_held(&self) {
        let mut activation = self.activation.lock().unwrap_or_else(|e| e.into_inner());
        if self.has_endpoints() {
            return;
        }
        let (state, effect) = activation.step(ActivationEvent::RequestHeld);
        *activation = state;
        if effect == Effect::Activate {
            tracing::debug!(revision = %self.key, "activating: asking for a replica");
            // The receiver may be gone during shutdown; nothing to do then.
            let _ = self.events.send(GatewayEvent::Activate(self.key.clone()));
        }
    }

    /// The last waiter left while there was still no replica.
    pub fn note_last_held_left(&self) {
        let mut activation = self.activation.lock().unwrap_or_else(|e| e.into_inner());
        if self.has_endpoints() {
            return;
        }
        let (state, _) = activation.step(ActivationEvent::LastHeldLeft);
        *activation = state;
    }

    /// Claims a slot on a replica chosen by the revision's balancing policy, skipping
    /// `exclude`. Never waits.
    pub fn try_acquire(
        &self,
        container_concurrency: u32,
        exclude: Option<SocketAddr>,
    ) -> Result<Arc<Replica>, Busy> {
        let replicas = self.replicas.load();
        let eligible = |r: &Arc<Replica>| Some(r.addr) != exclude;
        let n = replicas.len();
        if n == 0 || (n == 1 && !eligible(&replicas[0])) {
            return Err(Busy::NoEndpoints);
        }
        let chosen = match container_concurrency {
            0 => power_of_two_choices(&replicas, exclude),
            cc @ 1..=3 => replicas
                .iter()
                .find(|r| eligible(r) && r.try_claim(cc))
                .cloned(),
            cc => {
                let start = self.cursor.fetch_add(1, Ordering::Relaxed) % n;
                (0..n)
                    .map(|i| &replicas[(start + i) % n])
                    .find(|r| eligible(r) && r.try_claim(cc))
                    .cloned()
            }
        };
        chosen.ok_or(Busy::Saturated { replicas: n })
    }

    /// Gives back a slot claimed by [`try_acquire`](Self::try_acquire) and wakes one waiter.
    pub fn release(&self, replica: &Replica) {
        replica.release();
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.changed.notify_one();
        }
    }

    fn micros(&self, at: Instant) -> u64 {
        u64::try_from(at.duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX)
    }

    pub fn now_us(&self) -> u64 {
        self.micros(Instant::now())
    }

    pub fn request_in(&self, arrived: Instant) {
        self.meter.request_in(self.micros(arrived));
    }

    pub fn request_out(&self) {
        self.meter.request_out(self.now_us());
    }

    pub fn stats(&self) -> RevisionStats {
        RevisionStats {
            in_flight: self.meter.in_flight(),
            requests_total: self.meter.arrivals(),
            held: self.waiting.load(Ordering::Relaxed) as u64,
            endpoints: self.replicas.load().len(),
        }
    }

    /// Load since the previous call (or since the revision was added, the first time).
    pub fn take_load(&self) -> Load {
        let now = Instant::now();
        let reading = self.meter.read(self.now_us());
        let mut last = self.last_reading.lock().unwrap_or_else(|e| e.into_inner());
        let (prev, since) = last.unwrap_or((Meter::default().read(0), self.epoch));
        *last = Some((reading, now));
        Load {
            concurrency_seconds: reading.concurrency_micros_since(&prev) as f64 / 1e6,
            requests: reading.arrivals_since(&prev),
            interval: now.duration_since(since),
            in_flight: reading.in_flight,
        }
    }
}

/// Power of two choices over all replicas (no limit to respect): two distinct random picks,
/// the less loaded wins; `exclude` is never picked while another replica exists.
fn power_of_two_choices(
    replicas: &[Arc<Replica>],
    exclude: Option<SocketAddr>,
) -> Option<Arc<Replica>> {
    let candidates: &[Arc<Replica>] = replicas;
    let n = candidates.len();
    let chosen = if n == 1 {
        &candidates[0]
    } else {
        let r = random_u64();
        let a = (r as u32 as usize) % n;
        // A second pick distinct from the first.
        let b = (a + 1 + ((r >> 32) as u32 as usize) % (n - 1)) % n;
        let (a, b) = (&candidates[a], &candidates[b]);
        match exclude {
            Some(x) if a.addr == x => b,
            Some(x) if b.addr == x => a,
            _ if b.load() < a.load() => b,
            _ => a,
        }
    };
    if Some(chosen.addr) == exclude {
        return None;
    }
    chosen.claim();
    Some(chosen.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revision(n: u16) -> RevisionState {
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let rev = RevisionState::new(
            RevisionKey::new("ns", "r"),
            RevisionConfig::default(),
            Instant::now(),
            tx,
            4,
            None,
        );
        rev.set_endpoints(
            (0..n)
                .map(|i| SocketAddr::from(([127, 0, 0, 1], 1000 + i)))
                .collect(),
        );
        rev
    }

    #[tokio::test]
    async fn concurrency_limit_is_never_exceeded() {
        let rev = revision(3);
        let mut claimed = Vec::new();
        while let Ok(r) = rev.try_acquire(2, None) {
            claimed.push(r);
        }
        assert_eq!(claimed.len(), 6);
        assert_eq!(
            rev.try_acquire(2, None).err(),
            Some(Busy::Saturated { replicas: 3 })
        );
        for r in rev.replicas.load().iter() {
            assert_eq!(r.load(), 2);
        }
    }

    #[tokio::test]
    async fn first_available_packs_low_concurrency() {
        let rev = revision(3);
        let a = rev.try_acquire(1, None).unwrap();
        let b = rev.try_acquire(1, None).unwrap();
        assert_eq!(a.addr.port(), 1000);
        assert_eq!(b.addr.port(), 1001);
        a.release();
        assert_eq!(rev.try_acquire(1, None).unwrap().addr.port(), 1000);
    }

    #[tokio::test]
    async fn round_robin_spreads_high_concurrency() {
        let rev = revision(4);
        for _ in 0..40 {
            rev.try_acquire(10, None).unwrap();
        }
        for r in rev.replicas.load().iter() {
            assert_eq!(r.load(), 10);
        }
    }

    #[tokio::test]
    async fn power_of_two_choices_balances_unlimited() {
        let rev = revision(4);
        for _ in 0..1000 {
            rev.try_acquire(0, None).unwrap();
        }
        let loads: Vec<u32> = rev.replicas.load().iter().map(|r| r.load()).collect();
        let (min, max) = (loads.iter().min().unwrap(), loads.iter().max().unwrap());
        // Two choices keep the spread tiny (one random choice would be tens apart).
        assert!(max - min <= 3, "{loads:?}");
    }

    #[tokio::test]
    async fn excluded_replica_is_skipped() {
        let rev = revision(2);
        let bad = SocketAddr::from(([127, 0, 0, 1], 1000));
        for cc in [0, 1, 5] {
            for _ in 0..20 {
                let r = rev.try_acquire(cc, Some(bad)).unwrap();
                assert_ne!(r.addr, bad);
                r.release();
            }
        }
        let single = revision(1);
        assert_eq!(
            single.try_acquire(0, Some(bad)).err(),
            Some(Busy::NoEndpoints)
        );
    }

    #[tokio::test]
    async fn endpoint_updates_keep_counts_of_surviving_replicas() {
        let rev = revision(2);
        let held = rev.try_acquire(1, None).unwrap();
        rev.set_endpoints(vec![held.addr, SocketAddr::from(([127, 0, 0, 1], 2000))]);
        let still = rev
            .replicas
            .load()
            .iter()
            .find(|r| r.addr == held.addr)
            .cloned()
            .unwrap();
        assert!(Arc::ptr_eq(&still, &held));
        assert_eq!(still.load(), 1);
    }
}
