//! List-then-watch loops that keep the caches current (client-go's reflector).
//!
//! Each kind is listed, the cache replaced, then watched from the list's resourceVersion, so no
//! change is missed between the two. If the watch fails (history compacted, store closed), the
//! loop lists again: the cache converges on the store whatever happened in between, and every
//! object seen is handed to `on_change` so its reconcilers run (level-triggered).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use wisp_store::{EventType, Store};

use crate::cache::{Caches, Indexer, Object};

fn decode<T: Object>(value: Value, resource: &str) -> Option<T> {
    match serde_json::from_value::<T>(value) {
        Ok(obj) => Some(obj),
        Err(e) => {
            tracing::warn!(resource, error = %e, "skipping an object the controller cannot read");
            None
        }
    }
}

/// Runs forever: keeps `index` equal to the store's `resource` objects. `synced` turns true
/// after the first list.
pub async fn run<T: Object>(
    store: Arc<dyn Store>,
    resource: String,
    caches: Arc<Caches>,
    pick: fn(&Caches) -> &Indexer<T>,
    on_change: impl Fn(&T) + Send,
    synced: watch::Sender<bool>,
) {
    let index = pick(&caches);
    loop {
        let list = match store.list(&resource, None).await {
            Ok(list) => list,
            Err(e) => {
                tracing::warn!(%resource, error = %e, "list failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        // Decode, fill the cache, then announce: keys enqueued before the cache holds their
        // objects would be reconciled against a half-filled cache.
        let objects: Vec<Arc<T>> = list
            .items
            .into_iter()
            .filter_map(|v| decode(v, &resource))
            .map(Arc::new)
            .collect();
        index.replace(objects.clone());
        for obj in objects {
            on_change(&obj);
        }
        synced.send_replace(true);
        let mut events = match store
            .watch(Some(&resource), None, list.resource_version)
            .await
        {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!(%resource, error = %e, "watch failed; listing again");
                continue;
            }
        };
        while let Some(event) = events.recv().await {
            let event = match event {
                Ok(event) => event,
                Err(e) => {
                    tracing::info!(%resource, error = %e, "watch ended; listing again");
                    break;
                }
            };
            let Some(obj) = decode::<T>(event.object, &resource) else {
                continue;
            };
            match event.event_type {
                EventType::Added | EventType::Modified => {
                    index.upsert(obj.clone());
                    on_change(&obj);
                }
                EventType::Deleted => {
                    let meta = obj.meta();
                    index.remove(&meta.namespace, &meta.name, event.resource_version);
                    on_change(&obj);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
