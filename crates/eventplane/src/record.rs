//! Kubernetes Events about Triggers whose events were dead-lettered or dropped, so that
//! `kubectl describe trigger` and `kubectl get events` say what went wrong.
//!
//! Why rate-limited: a subscriber that is down fails every event, and one Event object per
//! failed event would flood the store (and every watcher of it). At most one Event per
//! trigger and reason is written per [`WINDOW`], carrying in `count` how many events it
//! stands for; failures within a window are gathered and written when it ends. Writes happen
//! on tasks of their own: delivery never waits for the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::json;
use tokio::time::Instant;
use wisp_api::kinds;
use wisp_store::Store;

/// One Event per trigger and reason per this long at most.
pub const WINDOW: Duration = Duration::from_secs(10);

pub const REASON_DEAD_LETTERED: &str = "EventDeadLettered";
pub const REASON_DROPPED: &str = "EventDropped";

/// The Trigger a consumer delivers for: its metric labels, and what its Events are about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TriggerRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub broker: String,
}

/// Failures of one trigger and reason not yet written.
#[derive(Debug, Default)]
struct Pending {
    count: i32,
    first: Option<SystemTime>,
    message: String,
    /// When an Event was last written.
    last_write: Option<Instant>,
    flush_scheduled: bool,
}

/// What the rate limit decides for one failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Write an Event for this many failures now.
    Write(i32),
    /// Gather it; a write is already scheduled for the end of the window.
    Gathered,
    /// Gather it and schedule a write at this instant.
    Schedule(Instant),
}

/// The rate limit as a pure step: a failure at `now` on `p`.
fn on_failure(p: &mut Pending, now: Instant) -> Verdict {
    p.count += 1;
    match p.last_write {
        Some(last) if now.duration_since(last) < WINDOW => {
            if p.flush_scheduled {
                Verdict::Gathered
            } else {
                p.flush_scheduled = true;
                Verdict::Schedule(last + WINDOW)
            }
        }
        _ => {
            p.last_write = Some(now);
            Verdict::Write(std::mem::take(&mut p.count))
        }
    }
}

type Key = (String, String, &'static str);

/// Writes rate-limited Events through the store.
pub struct Recorder {
    store: Arc<dyn Store>,
    pending: Mutex<HashMap<Key, (TriggerRef, Pending)>>,
}

impl Recorder {
    pub fn new(store: Arc<dyn Store>) -> Arc<Recorder> {
        Arc::new(Recorder {
            store,
            pending: Mutex::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (TriggerRef, Pending)>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One event of `trigger` failed for `reason`; `message` says how.
    pub fn failed(self: &Arc<Self>, trigger: &TriggerRef, reason: &'static str, message: String) {
        let key = (trigger.namespace.clone(), trigger.name.clone(), reason);
        let now = Instant::now();
        let verdict = {
            let mut pending = self.lock();
            let (t, p) = pending
                .entry(key.clone())
                .or_insert_with(|| (trigger.clone(), Pending::default()));
            *t = trigger.clone();
            p.first.get_or_insert_with(SystemTime::now);
            p.message = message;
            match on_failure(p, now) {
                Verdict::Write(count) => {
                    let first = p.first.take();
                    Some((t.clone(), count, first, p.message.clone(), None))
                }
                Verdict::Schedule(at) => Some((t.clone(), 0, None, String::new(), Some(at))),
                Verdict::Gathered => None,
            }
        };
        let Some((t, count, first, message, at)) = verdict else {
            return;
        };
        let this = self.clone();
        tokio::spawn(async move {
            match at {
                None => this.write(&t, reason, count, first, &message).await,
                Some(at) => {
                    tokio::time::sleep_until(at).await;
                    this.flush(key).await;
                }
            }
        });
    }

    /// The end of a window: writes what was gathered in it.
    async fn flush(&self, key: Key) {
        let taken = {
            let mut pending = self.lock();
            let Some((t, p)) = pending.get_mut(&key) else {
                return;
            };
            p.flush_scheduled = false;
            if p.count == 0 {
                return;
            }
            p.last_write = Some(Instant::now());
            let count = std::mem::take(&mut p.count);
            (t.clone(), count, p.first.take(), p.message.clone())
        };
        let (t, count, first, message) = taken;
        self.write(&t, key.2, count, first, &message).await;
    }

    /// Forgets a deleted trigger.
    pub fn forget(&self, namespace: &str, name: &str) {
        self.lock()
            .retain(|(ns, n, _), _| !(ns == namespace && n == name));
    }

    async fn write(
        &self,
        t: &TriggerRef,
        reason: &str,
        count: i32,
        first: Option<SystemTime>,
        message: &str,
    ) {
        let now = SystemTime::now();
        let event = make_event(t, reason, count, first.unwrap_or(now), now, message);
        if let Err(e) = self
            .store
            .create(&kinds::storage_key(&kinds::EVENTS), event)
            .await
        {
            tracing::warn!(trigger = %t.name, namespace = %t.namespace, error = %e, "cannot record an Event");
        }
    }
}

/// The `v1` Event about `t`.
pub fn make_event(
    t: &TriggerRef,
    reason: &str,
    count: i32,
    first: SystemTime,
    last: SystemTime,
    message: &str,
) -> serde_json::Value {
    let stamp = |t: SystemTime| humantime::format_rfc3339_seconds(t).to_string();
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..16];
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": format!("{}.{suffix}", t.name),
            "namespace": t.namespace,
        },
        "involvedObject": {
            "apiVersion": "eventing.knative.dev/v1",
            "kind": "Trigger",
            "namespace": t.namespace,
            "name": t.name,
            "uid": t.uid,
        },
        "reason": reason,
        "message": message,
        "source": {"component": "wisp-eventplane"},
        "firstTimestamp": stamp(first),
        "lastTimestamp": stamp(last),
        "count": count.max(1),
        "type": "Warning",
        "reportingComponent": "wisp-eventplane",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_write_per_window_with_the_count_of_what_it_gathered() {
        let t0 = Instant::now();
        let mut p = Pending::default();
        assert_eq!(on_failure(&mut p, t0), Verdict::Write(1));
        // Within the window: the first schedules the write at the window's end, others wait.
        assert_eq!(
            on_failure(&mut p, t0 + Duration::from_secs(1)),
            Verdict::Schedule(t0 + WINDOW)
        );
        assert_eq!(
            on_failure(&mut p, t0 + Duration::from_secs(2)),
            Verdict::Gathered
        );
        assert_eq!(p.count, 2);
        // A failure after the window writes at once, with everything not yet written.
        p.flush_scheduled = false;
        assert_eq!(
            on_failure(&mut p, t0 + WINDOW + Duration::from_secs(1)),
            Verdict::Write(3)
        );
        assert_eq!(p.count, 0);
    }

    #[test]
    fn the_event_names_the_trigger() {
        let t = TriggerRef {
            namespace: "default".into(),
            name: "orders".into(),
            uid: "u-1".into(),
            broker: "default".into(),
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let e = make_event(&t, REASON_DROPPED, 3, now, now, "boom");
        let typed: wisp_api::core::Event = serde_json::from_value(e.clone()).unwrap();
        assert_eq!(typed.involved_object.kind, "Trigger");
        assert_eq!(typed.involved_object.name, "orders");
        assert_eq!(typed.involved_object.uid, "u-1");
        assert_eq!(typed.reason, "EventDropped");
        assert_eq!(typed.count, 3);
        assert_eq!(typed.type_, "Warning");
        assert_eq!(
            typed.last_timestamp.as_deref(),
            Some("2023-11-14T22:13:20Z")
        );
        assert!(typed.metadata.name.starts_with("orders."));
    }
}
