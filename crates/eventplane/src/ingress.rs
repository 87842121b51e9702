//! The broker ingress: `POST /{namespace}/{broker}` (Knative's broker URL path), CloudEvents
//! in binary, structured or batched mode, answered 202 only once the event is in the durable
//! log.
//!
//! Answers follow Knative's data-plane spec: 202 accepted, 400 for an invalid event (the
//! reason in the body), 404 for an unknown or not-ready broker, 405 for other methods, 415
//! for an unsupported CloudEvents format, `OPTIONS` lists `Allow: POST, OPTIONS`. A log that
//! cannot take the event answers 503 so senders retry. The ingress stamps
//! `knativearrivaltime` and gives events without one Knative's `knativebrokerttl` of 255.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use wisp_cloudevents::{Event, Incoming, extensions};
use wisp_eventlog::EventLog;

use wisp_eventing::ttl::{DEFAULT_TTL, TtlVerdict, on_ingress};

/// What happens to every event entering a broker or a channel: `knativearrivaltime` is
/// stamped, and for a broker the TTL rules apply. False: drop it (the TTL ran out).
pub fn arrive(event: &mut Event, broker: bool) -> bool {
    let now = crate::deliver::humantime_rfc3339(std::time::SystemTime::now());
    let _ = event.set_attribute(extensions::KNATIVE_ARRIVAL_TIME, now);
    if !broker {
        return true;
    }
    match on_ingress(event.attribute(extensions::KNATIVE_BROKER_TTL), DEFAULT_TTL) {
        TtlVerdict::Forward(ttl) => {
            let _ = event.set_attribute(extensions::KNATIVE_BROKER_TTL, ttl.to_string());
            true
        }
        TtlVerdict::Drop => false,
    }
}

/// The streams the ingress accepts for, by `(namespace, name)`; kept by the reconciler.
#[derive(Default)]
pub struct Addresses {
    brokers: RwLock<Arc<HashMap<(String, String), String>>>,
    channels: RwLock<Arc<HashMap<(String, String), String>>>,
}

impl Addresses {
    pub fn set_brokers(&self, m: HashMap<(String, String), String>) {
        *self.brokers.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(m);
    }

    pub fn set_channels(&self, m: HashMap<(String, String), String>) {
        *self.channels.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(m);
    }

    fn broker(&self, ns: &str, name: &str) -> Option<String> {
        let m = self
            .brokers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        m.get(&(ns.to_string(), name.to_string())).cloned()
    }

    fn channel(&self, ns: &str, name: &str) -> Option<String> {
        let m = self
            .channels
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        m.get(&(ns.to_string(), name.to_string())).cloned()
    }
}

#[derive(Clone)]
struct Ingress {
    log: Arc<dyn EventLog>,
    addresses: Arc<Addresses>,
}

/// The ingress's routes: brokers at `/{ns}/{name}`, channels at `/channels/{ns}/{name}`.
pub fn router(log: Arc<dyn EventLog>, addresses: Arc<Addresses>) -> Router {
    Router::new()
        .route("/{ns}/{name}", any(broker))
        .route("/channels/{ns}/{name}", any(channel))
        .with_state(Ingress { log, addresses })
}

fn text(status: StatusCode, message: impl Into<String>) -> Response {
    (status, message.into()).into_response()
}

async fn broker(
    State(ingress): State<Ingress>,
    Path((ns, name)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let stream = ingress.addresses.broker(&ns, &name);
    accept(
        &ingress, stream, "broker", &ns, &name, method, headers, body, true,
    )
    .await
}

async fn channel(
    State(ingress): State<Ingress>,
    Path((ns, name)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let stream = ingress.addresses.channel(&ns, &name);
    accept(
        &ingress, stream, "channel", &ns, &name, method, headers, body, false,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn accept(
    ingress: &Ingress,
    stream: Option<String>,
    what: &str,
    ns: &str,
    name: &str,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
    broker: bool,
) -> Response {
    if method == Method::OPTIONS {
        return (
            StatusCode::OK,
            [(header::ALLOW, "POST, OPTIONS")],
            String::new(),
        )
            .into_response();
    }
    if method != Method::POST {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "POST, OPTIONS")],
            format!("{method} is not allowed: send events with POST"),
        )
            .into_response();
    }
    let Some(stream) = stream else {
        return text(
            StatusCode::NOT_FOUND,
            format!("{what} {ns}/{name} does not exist or is not ready"),
        );
    };
    let events = match wisp_cloudevents::from_http(&headers, body) {
        Ok(Incoming::One(e)) => vec![e],
        Ok(Incoming::Batch(events)) => events,
        Err(e) => return text(e.status(), e.to_string()),
    };
    let mut payloads = Vec::with_capacity(events.len());
    for mut event in events {
        if !arrive(&mut event, broker) {
            return text(
                StatusCode::BAD_REQUEST,
                format!(
                    "event {:?}: its knativebrokerttl ran out; it has looped through brokers too often",
                    event.id()
                ),
            );
        }
        payloads.push(event.encode());
    }
    if payloads.is_empty() {
        return StatusCode::ACCEPTED.into_response();
    }
    match ingress.log.append(&stream, payloads).await {
        Ok(_) => StatusCode::ACCEPTED.into_response(),
        Err(e) => {
            tracing::warn!(%stream, error = %e, "cannot store an event");
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the event was not stored, send it again: {e}"),
            )
        }
    }
}
