//! The broker ingress: `POST /{namespace}/{broker}` (Knative's broker URL path), CloudEvents
//! in binary, structured or batched mode, answered 202 only once the event is in the durable
//! log.
//!
//! Answers follow Knative's data-plane spec: 202 accepted, 400 for an invalid event (the
//! reason in the body), 404 for an unknown or not-ready broker, 405 for other methods, 415
//! for an unsupported CloudEvents format, `OPTIONS` lists `Allow: POST, OPTIONS`. A log that
//! cannot take the event answers 503 so senders retry. The ingress stamps
//! `knativearrivaltime` and gives events without one Knative's `knativebrokerttl` of 255.
//!
//! Tracing (the CloudEvents distributed-tracing extension): an event without a `traceparent`
//! extension gets the request's W3C `traceparent` (and `tracestate`), so deliveries carry
//! the caller's trace. With a tracer, each sampled event gets an ingress span (a child of the
//! request's context, else of the event's own, else a new trace) and the extension names
//! that span, so deliveries hang under it; without one, events with no context anywhere are
//! left untouched.

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
use wisp_telemetry::Eventing;
use wisp_telemetry::trace::{Kind, Span, TraceContext, Tracer};

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
    metrics: Option<Arc<Eventing>>,
    tracer: Option<Tracer>,
}

/// The ingress's routes: brokers at `/{ns}/{name}`, channels at `/channels/{ns}/{name}`.
/// Broker answers are counted in `metrics`, per event; sampled events get a span in `tracer`.
pub fn router(
    log: Arc<dyn EventLog>,
    addresses: Arc<Addresses>,
    metrics: Option<Arc<Eventing>>,
    tracer: Option<Tracer>,
) -> Router {
    Router::new()
        .route("/{ns}/{name}", any(broker))
        .route("/channels/{ns}/{name}", any(channel))
        .with_state(Ingress {
            log,
            addresses,
            metrics,
            tracer,
        })
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
    let started = tokio::time::Instant::now();
    let stream = ingress.addresses.broker(&ns, &name);
    let known = stream.is_some();
    let mut types = Vec::new();
    let response = accept(
        &ingress, stream, "broker", &ns, &name, method, headers, body, true, &mut types,
    )
    .await;
    if let Some(m) = &ingress.metrics {
        // A broker that does not exist is counted without the names its path made up.
        let (ns, name) = if known { (&*ns, &*name) } else { ("", "") };
        let (status, took) = (response.status().as_u16(), started.elapsed());
        if types.is_empty() {
            m.ingress(ns, name, "", status, took);
        }
        for t in &types {
            m.ingress(ns, name, t, status, took);
        }
    }
    response
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
        &ingress,
        stream,
        "channel",
        &ns,
        &name,
        method,
        headers,
        body,
        false,
        &mut Vec::new(),
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
    types: &mut Vec<String>,
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
    types.extend(events.iter().map(|e| e.ty().to_string()));
    let started = std::time::SystemTime::now();
    let mut payloads = Vec::with_capacity(events.len());
    let mut spans = Vec::new();
    for mut event in events {
        if let Some(span) = trace_event(&mut event, &headers, ingress.tracer.is_some()) {
            spans.push(span);
        }
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
    let response = match ingress.log.append(&stream, payloads).await {
        Ok(_) => StatusCode::ACCEPTED.into_response(),
        Err(e) => {
            tracing::warn!(%stream, error = %e, "cannot store an event");
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the event was not stored, send it again: {e}"),
            )
        }
    };
    if let Some(tracer) = &ingress.tracer {
        let end = std::time::SystemTime::now();
        let status = response.status().as_u16();
        let destination: Arc<str> = format!("{ns}/{name}").into();
        for mut span in spans {
            span.start = started;
            span.end = end;
            span.attr(
                if broker {
                    "wisp.broker"
                } else {
                    "wisp.channel"
                },
                destination.clone(),
            )
            .attr("http.response.status_code", i64::from(status));
            span.error = status >= 500;
            tracer.record(span);
        }
    }
    response
}

/// The trace context of an arriving event: the request's `traceparent` (the CloudEvents
/// distributed-tracing extension's HTTP form) or the event's own extension. Sets the
/// extension when the event has none; returns the ingress span to record (start and end are
/// set by the caller) when `tracing` and the context is sampled.
fn trace_event(event: &mut Event, headers: &HeaderMap, tracing: bool) -> Option<Span> {
    let from_http = headers
        .get(&wisp_telemetry::trace::TRACEPARENT)
        .and_then(TraceContext::from_header);
    let own = event
        .attribute(extensions::TRACEPARENT)
        .and_then(|v| TraceContext::parse(v.as_bytes()));
    let parent = from_http.or(own);
    let span_ctx = match parent {
        Some(p) if tracing && p.sampled() => Some(p.child()),
        Some(_) => None,
        None if tracing => Some(TraceContext::new_root(true)),
        None => None,
    };
    if own.is_none() {
        // The extension names the ingress span when there is one, else the caller's.
        if let Some(ctx) = span_ctx.or(from_http) {
            let _ = event.set_attribute(extensions::TRACEPARENT, ctx.to_string());
            if let Some(state) = headers
                .get(&wisp_telemetry::trace::TRACESTATE)
                .and_then(|v| v.to_str().ok())
                .filter(|_| from_http.is_some())
            {
                let _ = event.set_attribute(extensions::TRACESTATE, state);
            }
        }
    }
    let ctx = span_ctx?;
    let now = std::time::SystemTime::now();
    let mut span = Span::new(
        &ctx,
        parent.map(|p| p.span_id),
        "ingress",
        Kind::Server,
        now,
        now,
    );
    span.attr("cloudevents.event_id", event.id())
        .attr("cloudevents.event_type", event.ty())
        .attr("cloudevents.event_source", event.source());
    Some(span)
}
