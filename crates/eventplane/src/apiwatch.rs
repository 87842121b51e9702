//! ApiServerSource: changes of wisp's own objects as CloudEvents.
//!
//! Each source watches its resources in its namespace from the moment it starts (Knative's
//! adapter does the same: no replay of history) and appends one event per change to its
//! stream; a consumer carries them to the sink. Types are Knative's
//! (`dev.knative.apiserver.resource.add|update|delete` with the object as data in `Resource`
//! mode, `dev.knative.apiserver.ref.*` with a reference in `Reference` mode), the source is
//! the API server's URL and the subject the object's API path.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use wisp_api::meta::ObjectMeta;
use wisp_cloudevents::Event;
use wisp_eventlog::EventLog;
use wisp_store::{EventType, Store};

use crate::reconcile::sources::{ApiWatchSpec, selects};

/// The API path of an object (`/apis/group/version/namespaces/ns/plural/name`, or `/api/v1/...`
/// for the core group).
fn subject(api_version: &str, plural: &str, ns: &str, name: &str) -> String {
    let root = if api_version.contains('/') {
        "apis"
    } else {
        "api"
    };
    format!("/{root}/{api_version}/namespaces/{ns}/{plural}/{name}")
}

/// The event for one change.
pub fn event(
    spec: &ApiWatchSpec,
    api_url: &str,
    (api_version, kind, plural): (&str, &str, &str),
    op: EventType,
    object: &Value,
) -> Event {
    let meta: ObjectMeta = object
        .get("metadata")
        .cloned()
        .and_then(|m| serde_json::from_value(m).ok())
        .unwrap_or_default();
    let op = match op {
        EventType::Added => "add",
        EventType::Modified => "update",
        EventType::Deleted => "delete",
    };
    let resource_mode = spec.mode == "Resource";
    let ty = format!(
        "dev.knative.apiserver.{}.{op}",
        if resource_mode { "resource" } else { "ref" }
    );
    let mut e = Event::new(uuid::Uuid::new_v4().to_string(), api_url, ty);
    let _ = e.set_attribute(
        "subject",
        subject(api_version, plural, &meta.namespace, &meta.name),
    );
    let _ = e.set_attribute("name", meta.name.clone());
    let _ = e.set_attribute("namespace", meta.namespace.clone());
    let _ = e.set_attribute("kind", kind);
    for (k, v) in &spec.extensions {
        let _ = e.set_attribute(k, v.clone());
    }
    let data = if resource_mode {
        object.clone()
    } else {
        json!({"kind": kind, "namespace": meta.namespace, "name": meta.name, "apiVersion": api_version})
    };
    let _ = e.set_data(Some("application/json"), data.to_string().into_bytes());
    e
}

async fn watch_one(
    store: Arc<dyn Store>,
    log: Arc<dyn EventLog>,
    spec: ApiWatchSpec,
    api_url: String,
    resource: (
        String,
        String,
        String,
        String,
        Option<wisp_api::meta::LabelSelector>,
    ),
) {
    let (key, api_version, kind, plural, selector) = resource;
    loop {
        let from = match store.list(&key, Some(&spec.namespace)).await {
            Ok(l) => l.resource_version,
            Err(e) => {
                tracing::warn!(resource = %key, error = %e, "ApiServerSource cannot list; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut events = match store.watch(Some(&key), Some(&spec.namespace), from).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(resource = %key, error = %e, "ApiServerSource cannot watch; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(Ok(change)) = events.recv().await {
            if let Some(sel) = &selector {
                let labels = change
                    .object
                    .pointer("/metadata/labels")
                    .cloned()
                    .and_then(|l| serde_json::from_value(l).ok())
                    .unwrap_or_default();
                if !selects(sel, &labels) {
                    continue;
                }
            }
            let e = event(
                &spec,
                &api_url,
                (&api_version, &kind, &plural),
                change.event_type,
                &change.object,
            );
            if let Err(err) = log.append(&spec.stream, vec![e.encode()]).await {
                tracing::warn!(source = %spec.id, error = %err, "cannot store an ApiServerSource event");
            }
        }
    }
}

/// Runs the watches in `specs` (replaced whenever the reconciler sends new ones).
pub async fn run(
    store: Arc<dyn Store>,
    log: Arc<dyn EventLog>,
    api_url: String,
    mut specs: watch::Receiver<Vec<ApiWatchSpec>>,
) {
    let mut running: HashMap<String, (ApiWatchSpec, Vec<JoinHandle<()>>)> = HashMap::new();
    loop {
        let wanted = specs.borrow_and_update().clone();
        running.retain(|id, (spec, tasks)| {
            let keep = wanted.iter().any(|w| &w.id == id && w == spec);
            if !keep {
                tasks.iter().for_each(JoinHandle::abort);
            }
            keep
        });
        for spec in wanted {
            if running.contains_key(&spec.id) {
                continue;
            }
            let tasks = spec
                .resources
                .iter()
                .map(|r| {
                    tokio::spawn(watch_one(
                        store.clone(),
                        log.clone(),
                        spec.clone(),
                        api_url.clone(),
                        r.clone(),
                    ))
                })
                .collect();
            running.insert(spec.id.clone(), (spec, tasks));
        }
        if specs.changed().await.is_err() {
            for (_, (_, tasks)) in running {
                tasks.iter().for_each(JoinHandle::abort);
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_follow_knatives_types_and_subjects() {
        let spec = ApiWatchSpec {
            id: "x".into(),
            namespace: "default".into(),
            resources: vec![],
            mode: "Reference".into(),
            extensions: vec![("team".into(), "a".into())],
            stream: "s".into(),
        };
        let obj = json!({"metadata": {"name": "cm", "namespace": "default"}, "data": {"k": "v"}});
        let e = event(
            &spec,
            "http://127.0.0.1:7070",
            ("v1", "ConfigMap", "configmaps"),
            EventType::Added,
            &obj,
        );
        assert_eq!(e.ty(), "dev.knative.apiserver.ref.add");
        assert_eq!(e.source(), "http://127.0.0.1:7070");
        assert_eq!(
            e.subject(),
            Some("/api/v1/namespaces/default/configmaps/cm")
        );
        assert_eq!(e.attribute("team"), Some("a"));
        let data: Value = serde_json::from_slice(e.data().unwrap()).unwrap();
        assert_eq!(
            data,
            json!({"kind": "ConfigMap", "namespace": "default", "name": "cm", "apiVersion": "v1"})
        );

        let spec = ApiWatchSpec {
            mode: "Resource".into(),
            ..spec
        };
        let e = event(
            &spec,
            "http://api",
            ("serving.knative.dev/v1", "Service", "services"),
            EventType::Deleted,
            &obj,
        );
        assert_eq!(e.ty(), "dev.knative.apiserver.resource.delete");
        assert_eq!(
            e.subject(),
            Some("/apis/serving.knative.dev/v1/namespaces/default/services/cm")
        );
        let data: Value = serde_json::from_slice(e.data().unwrap()).unwrap();
        assert_eq!(data, obj);
    }
}
