//! Consumers: one task per trigger (or subscription, or source) that reads its stream from
//! its durable cursor, filters, delivers, and moves the cursor past what is done.
//!
//! Why a cursor and not per-event acknowledgements: the log stays append-only and a commit is
//! one number per consumer, so a fast subscriber costs no write per event. Deliveries finish
//! out of order; [`AckTracker`] keeps the cursor at the oldest one still in flight, so a
//! crash re-delivers what was in flight (at least once) and never skips anything.
//!
//! Unordered consumers deliver up to `parallelism` events at once (Knative's default broker
//! has no bound; a bound keeps one slow subscriber from holding every connection). Ordered
//! consumers (`kafka.eventing.knative.dev/delivery.order: ordered`, the annotation Knative's
//! Kafka broker reads) deliver one at a time, retries included, so order holds per trigger.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use wisp_cloudevents::Event;
use wisp_eventing::filter::Filter;
use wisp_eventlog::{AckTracker, Seq, Start};

use crate::deliver::{Delivery, Outcome, Sender};

/// Records read from the log per batch.
const READ_BATCH: usize = 512;

/// One consumer as the reconciler wants it.
#[derive(Clone)]
pub struct ConsumerSpec {
    /// Durable name of the cursor: unique per trigger incarnation (uid), so a re-created
    /// trigger starts afresh.
    pub id: String,
    pub stream: String,
    pub filter: Arc<Filter>,
    pub delivery: Delivery,
    /// At most this many deliveries in flight; 1 = ordered.
    pub parallelism: usize,
    pub start: Start,
    /// Changes whenever anything above changes: a changed consumer is restarted from its
    /// cursor.
    pub fingerprint: String,
}

/// What happened to events, for status and tests.
#[derive(Debug, Default)]
pub struct Counters {
    pub delivered: std::sync::atomic::AtomicU64,
    pub dead_lettered: std::sync::atomic::AtomicU64,
    pub dropped: std::sync::atomic::AtomicU64,
}

struct Running {
    fingerprint: String,
    task: JoinHandle<()>,
}

/// Runs the consumers the reconciler asks for.
pub struct Dispatcher {
    sender: Sender,
    running: Mutex<HashMap<String, Running>>,
    pub counters: Arc<Counters>,
}

impl Dispatcher {
    pub fn new(sender: Sender) -> Dispatcher {
        Dispatcher {
            sender,
            running: Mutex::default(),
            counters: Arc::default(),
        }
    }

    /// Makes the running consumers exactly `specs`: new ones start, changed ones restart
    /// from their cursor, missing ones stop (their cursors are the event plane's to delete).
    pub async fn apply(&self, specs: Vec<ConsumerSpec>) {
        // Cursors first: a trigger reported Ready must see every event accepted after that,
        // so its `Start::Tail` position is fixed before its status is written.
        let mut cursors: HashMap<String, Seq> = HashMap::new();
        for spec in &specs {
            let running = self
                .running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&spec.id)
                .is_some_and(|r| r.fingerprint == spec.fingerprint);
            if running {
                continue;
            }
            match self
                .sender
                .log()
                .ensure_consumer(&spec.stream, &spec.id, spec.start)
                .await
            {
                Ok(c) => {
                    cursors.insert(spec.id.clone(), c);
                }
                Err(e) => {
                    tracing::warn!(consumer = %spec.id, error = %e, "cannot open a consumer");
                }
            }
        }
        {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            let wanted: HashMap<&str, &ConsumerSpec> =
                specs.iter().map(|s| (s.id.as_str(), s)).collect();
            running.retain(|id, r| {
                let keep = wanted
                    .get(id.as_str())
                    .is_some_and(|s| s.fingerprint == r.fingerprint);
                if !keep {
                    r.task.abort();
                }
                keep
            });
            for spec in &specs {
                if running.contains_key(&spec.id) {
                    continue;
                }
                let Some(&cursor) = cursors.get(&spec.id) else {
                    continue;
                };
                let task = tokio::spawn(run(
                    spec.clone(),
                    cursor,
                    self.sender.clone(),
                    self.counters.clone(),
                ));
                running.insert(
                    spec.id.clone(),
                    Running {
                        fingerprint: spec.fingerprint.clone(),
                        task,
                    },
                );
            }
        }
    }

    /// Stops every consumer (daemon shutdown); cursors stay.
    pub fn stop_all(&self) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        for (_, r) in running.drain() {
            r.task.abort();
        }
    }
}

async fn run(spec: ConsumerSpec, cursor: Seq, sender: Sender, counters: Arc<Counters>) {
    let log = sender.log().clone();
    let mut head = loop {
        match log.watch(&spec.stream).await {
            Ok(w) => break w,
            Err(e) => {
                tracing::warn!(stream = %spec.stream, error = %e, "cannot watch a stream; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let mut tracker = AckTracker::new(cursor);
    let mut read_pos: Seq = cursor;
    let mut committed: Seq = cursor;
    let limit = Arc::new(Semaphore::new(spec.parallelism.max(1)));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Seq>();
    let delivery = Arc::new(spec.delivery.clone());
    loop {
        while let Ok(seq) = done_rx.try_recv() {
            tracker.done(seq);
        }
        let low = tracker.low_water();
        if low > committed {
            match log.commit(&spec.id, low).await {
                Ok(()) => committed = low,
                Err(e) => tracing::warn!(consumer = %spec.id, error = %e, "cannot commit a cursor"),
            }
        }
        if *head.borrow_and_update() <= read_pos {
            tokio::select! {
                changed = head.changed() => if changed.is_err() {
                    return;
                },
                Some(seq) = done_rx.recv() => { tracker.done(seq); }
            }
            continue;
        }
        let records = match log.read(&spec.stream, read_pos, READ_BATCH).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(stream = %spec.stream, error = %e, "cannot read a stream; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if records.is_empty() {
            // The head moved past what is readable (trimmed by a concurrent commit of a
            // restarted incarnation): wait for more.
            let _ = tokio::time::timeout(Duration::from_millis(50), head.changed()).await;
            continue;
        }
        for record in records {
            read_pos = record.seq;
            let event = match Event::decode(&record.payload) {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(stream = %spec.stream, seq = record.seq, error = %e, "an undecodable record is skipped");
                    tracker.skip(record.seq);
                    continue;
                }
            };
            if !spec.filter.matches(&|name| event.attribute(name)) {
                tracker.skip(record.seq);
                continue;
            }
            tracker.track(record.seq);
            let Ok(permit) = limit.clone().acquire_owned().await else {
                return;
            };
            let (sender, delivery, done, counters) = (
                sender.clone(),
                delivery.clone(),
                done_tx.clone(),
                counters.clone(),
            );
            let seq = record.seq;
            tokio::spawn(async move {
                let outcome = sender.deliver(&delivery, &event).await;
                let counter = match outcome {
                    Outcome::Delivered => &counters.delivered,
                    Outcome::DeadLettered => &counters.dead_lettered,
                    Outcome::Dropped => &counters.dropped,
                };
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                drop(permit);
                let _ = done.send(seq);
            });
        }
    }
}
