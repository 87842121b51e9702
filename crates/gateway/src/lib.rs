//! wisp's data plane: Knative's ingress (Envoy/Kourier), activator and queue-proxy in one
//! proxy hop.
//!
//! It owns the request path from the client's connection to a replica's port: routing by
//! host, the weighted split between revisions, holding requests while a revision scales from
//! zero, the per-replica `containerConcurrency` limit and its queue, load balancing, the
//! revision's timeouts, header rewriting, pooled upstream connections, and the load
//! measurements the autoscaler needs. It must not read the store, decide replica counts or
//! start replicas, and depends on no other wisp crate: the daemon feeds it plain values
//! ([`RoutingTable`], [`RevisionConfig`], endpoint lists) and reads back [`GatewayEvent`]s and
//! [`Load`] samples.
//!
//! ## The request path
//! ```text
//!  client ──► serve (HTTP/1.1 + h2c, one task per connection; each request/stream alone)
//!               │
//!   route.rs    │ host ─► route (ArcSwap snapshot, no lock) ─► weighted pick ─► revision
//!               │   unknown host ─► 404 · K-Network-Probe ─► 200 from the gateway
//!   proxy.rs    │ deadlines: timeoutSeconds / responseStartTimeoutSeconds / idleTimeoutSeconds
//!   dispatch.rs │ replica free? ─► claim a slot (balancing: revision.rs)
//!               │   no replica ─► hold; first held request sends Activate (activation.rs)
//!               │   all at containerConcurrency ─► queue (bounded)
//!               │   queue/hold full or wait too long ─► 503
//!   headers.rs  │ strip hop-by-hop · add Forwarded / X-Forwarded-*
//!   trace.rs    │ traceparent: the caller's trace (or a new one) with this hop as parent
//!   pool.rs     │ pooled keep-alive connection to the replica (h2c if the port says so)
//!               │   refused ─► once more on another replica · no response start ─► 504
//!   body.rs     │ stream the response back; idle timeout; release slot + connection at end
//!               │   101 Switching Protocols ─► splice both upgraded connections
//!   observe.rs  │ at the end: one call to the RequestObserver, if one is installed
//!   error.rs    └ every gateway-made answer: one enum, one mapping to status + message
//! ```
//! Each phase is a function or type in its module, written so a request does a handful of
//! atomic operations and no lock when a replica is free: the routing table, the revision's
//! settings and its replica list are `ArcSwap` snapshots; counts are atomics; the meter is one
//! `fetch_add` per event ([`meter`]). Phases are plain async code rather than a stack of
//! boxed `tower` services: the whole path compiles to one future per request, with no
//! allocation or dynamic dispatch between phases.
//!
//! ## Wiring (done by the daemon)
//! ```no_run
//! # async fn wire(listener: tokio::net::TcpListener) {
//! use wisp_gateway::*;
//! let (events, mut rx) = tokio::sync::mpsc::unbounded_channel();
//! let gateway = Gateway::new(events);
//! let rev = RevisionKey::new("default", "hello-00001");
//! gateway.set_revision(rev.clone(), RevisionConfig::default());
//! let mut table = RoutingTable::new();
//! table.insert("hello.default.localhost", HostRoute {
//!     namespace: "default".into(),
//!     route: "hello".into(),
//!     targets: vec![(rev.clone(), 100)],
//! });
//! gateway.set_routes(table);
//! // Later, from the runtime: gateway.set_endpoints(&rev, vec![addr]);
//! // From the autoscaler's tick: gateway.take_load(&rev).
//! tokio::spawn(async move {
//!     while let Some(GatewayEvent::Activate(rev)) = rx.recv().await { /* poke */ }
//! });
//! gateway.serve(listener, std::future::pending()).await;
//! # }
//! ```

#![forbid(unsafe_code)]

mod activation;
mod body;
mod dispatch;
mod error;
mod headers;
pub mod meter;
mod observe;
mod pool;
mod proxy;
mod revision;
pub mod route;
mod server;
mod table;
pub mod trace;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

pub use body::{BodyError, ResponseBody};
pub use error::{GatewayError, TimeoutKind};
pub use observe::{RequestObserver, RequestRecord};
pub use table::{HostRoute, RevisionConfig, RevisionKey, RoutingTable, normalize_host};

use revision::RevisionState;
use route::Snapshot;

/// What the gateway tells the rest of the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GatewayEvent {
    /// A request is held for this revision, which has no ready replica: scale it from zero
    /// now. Sent once per activation (when the first request is held), not per request.
    Activate(RevisionKey),
}

/// Gateway-wide limits. The defaults are Knative's where Knative has one.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// Requests held per revision while it has no replica (Knative's activator: 10,000);
    /// more get 503.
    pub hold_capacity: usize,
    /// The longest a request waits for a replica or a free slot (further bounded by the
    /// revision's own timeouts); then 503.
    pub hold_timeout: Duration,
    /// Queue per replica slot when all replicas are at `containerConcurrency`: requests
    /// waiting may reach this × containerConcurrency × replicas (queue-proxy's 10); more get
    /// 503 "pending request queue full".
    pub queue_depth_factor: u32,
    /// Limit for opening a connection to a replica.
    pub connect_timeout: Duration,
    /// Idle keep-alive HTTP/1.1 connections kept per replica.
    pub max_idle_per_replica: usize,
    /// The scheme clients use to reach the gateway, for `X-Forwarded-Proto` and `Forwarded`.
    pub forwarded_proto: &'static str,
    /// Whether a request without a valid `traceparent` starts a *sampled* trace (set when
    /// spans are exported). A request that has one keeps its caller's sampled flag.
    pub sample_new_traces: bool,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        GatewayOptions {
            hold_capacity: 10_000,
            hold_timeout: Duration::from_secs(300),
            queue_depth_factor: 10,
            connect_timeout: Duration::from_secs(5),
            max_idle_per_replica: 256,
            forwarded_proto: "http",
            sample_new_traces: false,
        }
    }
}

/// A revision's counters at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RevisionStats {
    /// Requests routed to the revision and not finished (held ones included, as the
    /// activator counts them).
    pub in_flight: u64,
    /// Requests ever routed to the revision.
    pub requests_total: u64,
    /// Requests waiting in the gateway: for a first replica, or for a free slot.
    pub held: u64,
    /// Ready replicas the gateway sends to.
    pub endpoints: usize,
}

/// Load since the previous [`Gateway::take_load`] for a revision: what the autoscaler's
/// collector takes (`Collector::observe(now, concurrency_seconds, requests)`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Load {
    /// The integral of in-flight requests over the interval; divided by the interval, the
    /// average concurrency.
    pub concurrency_seconds: f64,
    /// Requests that arrived in the interval.
    pub requests: u64,
    /// The interval's length.
    pub interval: Duration,
    /// Requests in flight at the end of the interval.
    pub in_flight: u64,
}

/// A replica taken out of rotation by [`Gateway::replace_endpoints`]: no new request goes to
/// it; those in flight finish. Stop the replica once [`in_flight`](Drain::in_flight) is 0.
pub struct Drain {
    replica: Arc<revision::Replica>,
}

impl Drain {
    pub fn addr(&self) -> SocketAddr {
        self.replica.addr
    }

    /// Requests still in flight on the replica.
    pub fn in_flight(&self) -> u32 {
        self.replica.load()
    }

    /// Waits until no request is in flight on the replica, or `limit` has passed; returns
    /// whether it is idle. Polls every few milliseconds: drains are rare and short.
    pub async fn idle(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.in_flight() > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }
}

/// The gateway: cheap to clone (one `Arc`), safe to share between the server and the daemon's
/// control tasks.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// The compiled routing table, read by every request without a lock.
    pub routes: ArcSwap<Snapshot>,
    /// Writers' side: the last table and the revisions, recompiled into `routes` on change.
    control: Mutex<Control>,
    pub options: GatewayOptions,
    events: UnboundedSender<GatewayEvent>,
    epoch: Instant,
    /// Told about every finished request; set once, before revisions are added.
    pub observer: OnceLock<Arc<dyn RequestObserver>>,
}

#[derive(Default)]
struct Control {
    table: RoutingTable,
    revisions: HashMap<RevisionKey, Arc<RevisionState>>,
}

impl Control {
    fn compile(&self) -> Snapshot {
        Snapshot::compile(&self.table, &self.revisions)
    }
}

impl Gateway {
    /// A gateway with default options; `events` receives [`GatewayEvent`]s.
    pub fn new(events: UnboundedSender<GatewayEvent>) -> Self {
        Self::with_options(GatewayOptions::default(), events)
    }

    pub fn with_options(options: GatewayOptions, events: UnboundedSender<GatewayEvent>) -> Self {
        Gateway {
            inner: Arc::new(Inner {
                routes: ArcSwap::from_pointee(Snapshot::default()),
                control: Mutex::new(Control::default()),
                options,
                events,
                epoch: Instant::now(),
                observer: OnceLock::new(),
            }),
        }
    }

    /// Installs `observer`, told about every finished request (see [`RequestObserver`]).
    /// Install it before adding revisions: a revision's own observer is asked for when the
    /// revision is added. A second observer is ignored.
    pub fn with_observer(self, observer: Arc<dyn RequestObserver>) -> Self {
        if self.inner.observer.set(observer).is_err() {
            tracing::warn!("a request observer is already installed; the new one is ignored");
        }
        self
    }

    pub fn options(&self) -> &GatewayOptions {
        &self.inner.options
    }

    fn control(&self) -> std::sync::MutexGuard<'_, Control> {
        self.inner.control.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the whole routing table. Atomic: each request sees the old table or the new
    /// one, never a mix and never a missing entry that both contain.
    pub fn set_routes(&self, table: RoutingTable) {
        let mut control = self.control();
        control.table = table;
        self.inner.routes.store(Arc::new(control.compile()));
    }

    /// Adds a revision, or updates its settings (applied to requests that arrive from now
    /// on). Call it before routing traffic to the revision: a route to a revision the gateway
    /// does not know answers 503.
    pub fn set_revision(&self, key: RevisionKey, config: RevisionConfig) {
        let mut control = self.control();
        if let Some(existing) = control.revisions.get(&key) {
            existing.set_config(config);
            return;
        }
        let observer = self.inner.observer.get().and_then(|o| o.for_revision(&key));
        let state = Arc::new(RevisionState::new(
            key.clone(),
            config,
            self.inner.epoch,
            self.inner.events.clone(),
            self.inner.options.max_idle_per_replica,
            observer,
        ));
        // Routes naming the revision were compiled with an unknown target: recompile them.
        // Only then: a thousand revisions added at start-up must not compile the table a
        // thousand times.
        let routed = control
            .table
            .iter()
            .any(|(_, r)| r.targets.iter().any(|(k, _)| *k == key));
        control.revisions.insert(key, state);
        if routed {
            self.inner.routes.store(Arc::new(control.compile()));
        }
    }

    /// Sets the revision's ready replicas (their `host:port`). Requests held for the revision
    /// are released at once when the first appears; requests in flight on a replica that is
    /// no longer listed finish there. Returns false if the revision is unknown.
    pub fn set_endpoints(&self, key: &RevisionKey, endpoints: Vec<SocketAddr>) -> bool {
        self.replace_endpoints(key, endpoints).is_some()
    }

    /// [`set_endpoints`](Self::set_endpoints), returning a [`Drain`] for each replica taken
    /// out of rotation (`None` if the revision is unknown).
    pub fn replace_endpoints(
        &self,
        key: &RevisionKey,
        endpoints: Vec<SocketAddr>,
    ) -> Option<Vec<Drain>> {
        let Some(state) = self.revision(key) else {
            tracing::debug!(revision = %key, "endpoints for an unknown revision ignored");
            return None;
        };
        let removed = state.set_endpoints(endpoints);
        Some(
            removed
                .into_iter()
                .map(|replica| Drain { replica })
                .collect(),
        )
    }

    /// Marks the revision as failing (`Some(reason)`): while it has no ready replica, requests
    /// get 503 with the reason at once instead of being held. `None` clears it. Returns false
    /// if the revision is unknown.
    pub fn set_failure(&self, key: &RevisionKey, failure: Option<String>) -> bool {
        let Some(state) = self.revision(key) else {
            return false;
        };
        state.set_failure(failure);
        true
    }

    /// Forgets a revision: requests waiting for it get 503, requests in flight finish, routes
    /// still naming it answer 503 until they change.
    pub fn remove_revision(&self, key: &RevisionKey) {
        let mut control = self.control();
        if let Some(state) = control.revisions.remove(key) {
            state.mark_removed();
            self.inner.routes.store(Arc::new(control.compile()));
        }
    }

    fn revision(&self, key: &RevisionKey) -> Option<Arc<RevisionState>> {
        self.control().revisions.get(key).cloned()
    }

    /// The revision's counters now.
    pub fn stats(&self, key: &RevisionKey) -> Option<RevisionStats> {
        self.revision(key).map(|state| state.stats())
    }

    /// Every revision's counters now (for metrics: reads atomics, never waits for the request
    /// path).
    pub fn all_stats(&self) -> Vec<(RevisionKey, RevisionStats)> {
        let states: Vec<Arc<RevisionState>> = self.control().revisions.values().cloned().collect();
        states
            .into_iter()
            .map(|state| (state.key.clone(), state.stats()))
            .collect()
    }

    /// Concurrency-seconds and arrivals since the previous call for this revision (since it
    /// was added, the first time). Meant for one consumer (the autoscaler's tick), called at
    /// least every few minutes; the request path pays one atomic add per arrival and
    /// departure for it, whatever the sampling rate.
    pub fn take_load(&self, key: &RevisionKey) -> Option<Load> {
        self.revision(key).map(|state| state.take_load())
    }

    /// [`take_load`](Self::take_load) for every revision.
    pub fn take_loads(&self) -> Vec<(RevisionKey, Load)> {
        let states: Vec<Arc<RevisionState>> = self.control().revisions.values().cloned().collect();
        states
            .into_iter()
            .map(|state| (state.key.clone(), state.take_load()))
            .collect()
    }
}
