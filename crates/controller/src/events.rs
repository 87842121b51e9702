//! Kubernetes Events (`kubectl get events`, `wisp events`) for what the controllers did: a
//! child created, a new latest ready revision, a revision failing, replicas scaled.
//!
//! Why a recorder task rather than writes inside reconciles: an Event is a side note, and a
//! reconcile must neither wait for it nor fail because of it. Like client-go's event
//! correlator, a repeat of the same (object, type, reason, message) bumps `count` and
//! `lastTimestamp` of one Event instead of creating another, and, like the Kubernetes API
//! server's event TTL, Events older than an hour are deleted, so a busy daemon does not grow
//! its store with them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use wisp_api::core::{Event, EventSource, ObjectReference};
use wisp_api::kinds;
use wisp_api::meta::ObjectMeta;
use wisp_store::{Preconditions, Store, StoreError};

/// Kubernetes' default event TTL.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// Correlation entries kept; beyond this the oldest half is forgotten (a repeat then starts
/// a new Event, which is harmless).
const MAX_TRACKED: usize = 4096;

/// `Normal` or `Warning`, as Kubernetes spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// Correlation: (object uid, type, reason, message) -> (Event name, count, first time).
type Seen = HashMap<(String, EventType, String, String), (String, i32, String)>;

struct Record {
    object: ObjectReference,
    type_: EventType,
    reason: String,
    message: String,
}

/// Sends Events to the store from a background task. Cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    tx: UnboundedSender<Record>,
}

/// The reference an Event's `involvedObject` holds.
pub fn reference(api_version: &str, kind: &str, meta: &ObjectMeta) -> ObjectReference {
    ObjectReference {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        namespace: meta.namespace.clone(),
        name: meta.name.clone(),
        uid: meta.uid.clone(),
        ..Default::default()
    }
}

impl Recorder {
    /// Starts the recorder; `component` is the Events' `source.component`.
    pub fn spawn(store: Arc<dyn Store>, component: &'static str, ttl: Duration) -> Recorder {
        let (tx, mut rx) = unbounded_channel::<Record>();
        tokio::spawn(async move {
            let mut seen = Seen::new();
            let mut gc = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    r = rx.recv() => match r {
                        Some(r) => write(store.as_ref(), component, &mut seen, r).await,
                        None => return,
                    },
                    _ = gc.tick() => collect(store.as_ref(), ttl).await,
                }
            }
        });
        Recorder { tx }
    }

    pub fn normal(&self, object: ObjectReference, reason: &str, message: String) {
        self.record(object, EventType::Normal, reason, message);
    }

    pub fn warning(&self, object: ObjectReference, reason: &str, message: String) {
        self.record(object, EventType::Warning, reason, message);
    }

    fn record(&self, object: ObjectReference, type_: EventType, reason: &str, message: String) {
        let _ = self.tx.send(Record {
            object,
            type_,
            reason: reason.to_string(),
            message,
        });
    }
}

fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

async fn write(store: &dyn Store, component: &'static str, seen: &mut Seen, r: Record) {
    let key_name = kinds::storage_key(&kinds::EVENTS);
    let now = timestamp(SystemTime::now());
    let key = (
        r.object.uid.clone(),
        r.type_,
        r.reason.clone(),
        r.message.clone(),
    );
    if let Some((name, count, first)) = seen.get(&key).cloned() {
        // A repeat: bump the Event it made, if it is still there.
        if let Ok(v) = store.get(&key_name, &r.object.namespace, &name).await
            && let Ok(mut e) = serde_json::from_value::<Event>(v)
        {
            e.count = count + 1;
            e.last_timestamp = Some(now.clone());
            if let Ok(v) = serde_json::to_value(&e)
                && store.update(&key_name, v).await.is_ok()
            {
                seen.insert(key, (name, count + 1, first));
                return;
            }
        }
    }
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let name = format!("{}.{nanos:x}", r.object.name);
    let event = Event {
        api_version: "v1".into(),
        kind: "Event".into(),
        metadata: ObjectMeta {
            name: name.clone(),
            namespace: r.object.namespace.clone(),
            ..Default::default()
        },
        involved_object: r.object,
        reason: r.reason,
        message: r.message,
        source: Some(EventSource {
            component: component.to_string(),
            ..Default::default()
        }),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now.clone()),
        count: 1,
        type_: r.type_.as_str().to_string(),
        reporting_component: component.to_string(),
        ..Default::default()
    };
    let Ok(v) = serde_json::to_value(&event) else {
        return;
    };
    match store.create(&key_name, v).await {
        Ok(_) => {
            if seen.len() >= MAX_TRACKED {
                seen.clear();
            }
            seen.insert(key, (name, 1, now));
        }
        // The namespace is going away, or the store is closing: nothing to tell.
        Err(e) => tracing::debug!(error = %e, "cannot record an event"),
    }
}

/// Deletes Events last seen more than `ttl` ago.
async fn collect(store: &dyn Store, ttl: Duration) {
    let key = kinds::storage_key(&kinds::EVENTS);
    let Ok(list) = store.list(&key, None).await else {
        return;
    };
    let cutoff = SystemTime::now() - ttl;
    for v in list.items {
        let Ok(e) = serde_json::from_value::<Event>(v) else {
            continue;
        };
        let last = e
            .last_timestamp
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok());
        if last.is_some_and(|t| t < cutoff) {
            match store
                .delete(
                    &key,
                    &e.metadata.namespace,
                    &e.metadata.name,
                    Preconditions::default(),
                )
                .await
            {
                Ok(_) | Err(StoreError::NotFound { .. }) => {}
                Err(err) => tracing::debug!(error = %err, "cannot delete an old event"),
            }
        }
    }
}
