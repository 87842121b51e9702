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
use crate::record::{REASON_DEAD_LETTERED, REASON_DROPPED, Recorder, TriggerRef};

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
    /// The Trigger it delivers for (`None`: a subscription or a source): its dispatch
    /// metrics and its Events about failed deliveries.
    pub trigger: Option<TriggerRef>,
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
    trigger: Option<TriggerRef>,
}

/// Where consumers report what became of events.
#[derive(Clone, Default)]
pub struct Reporting {
    pub telemetry: Option<wisp_telemetry::Telemetry>,
    pub recorder: Option<Arc<Recorder>>,
}

/// Runs the consumers the reconciler asks for.
pub struct Dispatcher {
    sender: Sender,
    running: Mutex<HashMap<String, Running>>,
    pub counters: Arc<Counters>,
    reporting: Reporting,
}

impl Dispatcher {
    pub fn new(sender: Sender, reporting: Reporting) -> Dispatcher {
        Dispatcher {
            sender,
            running: Mutex::default(),
            counters: Arc::default(),
            reporting,
        }
    }

    /// A trigger that is gone: its series and pending Events go too.
    fn forget(&self, t: &TriggerRef) {
        if let Some(tel) = &self.reporting.telemetry {
            tel.eventing()
                .forget_trigger(&t.namespace, &t.broker, &t.name);
        }
        if let Some(r) = &self.reporting.recorder {
            r.forget(&t.namespace, &t.name);
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
            let mut gone = Vec::new();
            running.retain(|id, r| {
                let want = wanted.get(id.as_str());
                let keep = want.is_some_and(|s| s.fingerprint == r.fingerprint);
                if !keep {
                    r.task.abort();
                    if let (None, Some(t)) = (want, r.trigger.take()) {
                        gone.push(t);
                    }
                }
                keep
            });
            for t in &gone {
                self.forget(t);
            }
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
                    self.reporting.clone(),
                ));
                running.insert(
                    spec.id.clone(),
                    Running {
                        fingerprint: spec.fingerprint.clone(),
                        task,
                        trigger: spec.trigger.clone(),
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

async fn run(
    spec: ConsumerSpec,
    cursor: Seq,
    sender: Sender,
    counters: Arc<Counters>,
    reporting: Reporting,
) {
    let log = sender.log().clone();
    let trigger = spec.trigger.clone().map(Arc::new);
    let metrics = match (&trigger, &reporting.telemetry) {
        (Some(t), Some(tel)) => Some(tel.eventing().trigger(&t.namespace, &t.broker, &t.name)),
        _ => None,
    };
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
    // How spans name this consumer: the trigger, or the consumer's id.
    let consumer: Arc<str> = match &trigger {
        Some(t) => format!("{}/{}", t.namespace, t.name).into(),
        None => spec.id.as_str().into(),
    };
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
            let event = match Event::decode_bytes(&record.payload) {
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
            let (trigger, metrics, recorder) =
                (trigger.clone(), metrics.clone(), reporting.recorder.clone());
            let seq = record.seq;
            let consumer = consumer.clone();
            tokio::spawn(async move {
                let started = tokio::time::Instant::now();
                let report = sender.deliver(&delivery, event, &consumer).await;
                if let Some(m) = &metrics {
                    m.dispatched(report.status, started.elapsed(), report.attempts);
                }
                let counter = match report.outcome {
                    Outcome::Delivered => &counters.delivered,
                    Outcome::DeadLettered => {
                        if let Some(m) = &metrics {
                            m.dead_lettered();
                        }
                        &counters.dead_lettered
                    }
                    Outcome::Dropped => {
                        if let Some(m) = &metrics {
                            m.dropped();
                        }
                        &counters.dropped
                    }
                };
                if let (Some(t), Some(r), Outcome::DeadLettered | Outcome::Dropped) =
                    (&trigger, &recorder, &report.outcome)
                {
                    let (reason, fate) = match report.outcome {
                        Outcome::DeadLettered => {
                            (REASON_DEAD_LETTERED, "sent to the dead letter sink")
                        }
                        _ => (REASON_DROPPED, "dropped"),
                    };
                    let (id, ty) = report.failed_event.clone().unwrap_or_default();
                    let message = format!(
                        "event {id:?} ({ty}) could not be delivered to {} after {} attempt(s): {}; {fate}",
                        delivery.subscriber,
                        report.attempts,
                        report.error.as_deref().unwrap_or("failed"),
                    );
                    r.failed(t, reason, message);
                }
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                drop(permit);
                let _ = done.send(seq);
            });
        }
    }
}
