//! One event to one destination, with Knative's delivery contract: binary-mode POST with
//! `Prefer: reply`, retries on network errors and on the statuses Knative retries, back-off
//! from the trigger's `delivery` spec, and a dead letter (with `knativeerror*` extensions)
//! when every attempt failed.
//!
//! Why destinations are [`Target`]s and not URLs: a reply to a broker, a trigger whose
//! subscriber is a broker, or a dead letter sink that is a broker would otherwise leave the
//! process and come back through the ingress. The reconciler recognises wisp's own addresses
//! and turns them into `Target::Stream`, an append to the durable log: one hop less, and the
//! hand-off is durable before the delivery counts as done.
//!
//! Why Services are reached through the gateway: a subscriber scaled to zero must be woken,
//! and the gateway is what holds a request while a replica starts. URLs whose host is under
//! the serving domain (or Kubernetes' cluster-local forms) are sent to the gateway's address
//! with the URL's host in `Host`.
//!
//! Tracing: each attempt is a span of the event's trace (its `traceparent` extension) with a
//! span id of its own, sent as the W3C `traceparent` header (with the event's `tracestate`),
//! and recorded when a tracer is set and the trace is sampled; a reply without a trace
//! context of its own continues the trace under the attempt that got it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use wisp_cloudevents::{Event, extensions};
use wisp_eventing::delivery::{Outcome as Outcome_, RetryPolicy, Step, retry_after};
use wisp_eventlog::EventLog;
use wisp_telemetry::trace::{Kind, Span, TRACEPARENT, TRACESTATE, TraceContext, Tracer};

/// Where an event goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// An append to a stream of the event log (a broker or channel of this daemon).
    Stream(String),
    /// An HTTP POST.
    Http(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Stream(s) => write!(f, "stream {s}"),
            Target::Http(u) => f.write_str(u),
        }
    }
}

/// How one consumer delivers.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub subscriber: Target,
    /// Where a reply event goes; `None` drops replies.
    pub reply: Option<Target>,
    /// Knative's broker filter: `knativebrokerttl` is taken off the event the subscriber
    /// gets and put back on its reply, which the broker's ingress rules then decrement.
    pub carry_ttl: bool,
    pub dead_letter: Option<Target>,
    pub retry: RetryPolicy,
}

/// What became of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    DeadLettered,
    /// Every attempt failed and there is no dead letter sink (or it failed too).
    Dropped,
}

/// What became of an event, and what the subscriber last answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub outcome: Outcome,
    /// The subscriber's last status (`None`: no answer; 202 for an append to a stream).
    pub status: Option<u16>,
    /// Attempts at the subscriber.
    pub attempts: u32,
    /// Why the subscriber failed, when it did.
    pub error: Option<String>,
    /// The failed event's id and type, when it failed (the event itself was consumed).
    pub failed_event: Option<(String, String)>,
}

/// Response bodies are read up to this size (replies and error data).
const MAX_RESPONSE: usize = 4 << 20;
/// `knativeerrordata` carries at most this much of the failed response's body.
const MAX_ERROR_DATA: usize = 1024;

/// The HTTP side of delivery, shared by every consumer.
#[derive(Clone)]
pub struct Sender {
    client: Client<HttpConnector, Full<Bytes>>,
    log: Arc<dyn EventLog>,
    gateway: Option<SocketAddr>,
    /// Host suffixes served by the gateway (`.localhost`, `.svc.cluster.local`, ...).
    local_suffixes: Arc<[String]>,
    /// Where spans of attempts go (`None`: none are made).
    tracer: Option<Tracer>,
}

/// Who sends, for the spans of the attempts.
struct Attempts<'a> {
    /// The trigger (`namespace/name`) or consumer delivering.
    consumer: &'a str,
    /// `subscriber`, `reply` or `dead letter`.
    role: &'static str,
    /// The event's trace context: each attempt is a child of it.
    parent: Option<TraceContext>,
}

impl Attempts<'_> {
    fn of<'a>(consumer: &'a str, role: &'static str, event: &Event) -> Attempts<'a> {
        Attempts {
            consumer,
            role,
            parent: event
                .attribute(extensions::TRACEPARENT)
                .and_then(|v| TraceContext::parse(v.as_bytes())),
        }
    }
}

/// A failed attempt.
#[derive(Debug)]
struct Failure {
    status: Option<u16>,
    /// Attempts made before giving up (set by `send_with_retries`).
    attempts: u32,
    body: Bytes,
    message: String,
    retry_after: Option<String>,
}

impl Sender {
    pub fn new(log: Arc<dyn EventLog>, gateway: Option<SocketAddr>, domain: &str) -> Sender {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(256)
            .build(connector);
        Sender {
            client,
            log,
            gateway,
            local_suffixes: vec![
                format!(".{domain}"),
                ".svc.cluster.local".to_string(),
                ".svc".to_string(),
            ]
            .into(),
            tracer: None,
        }
    }

    /// Records a span per attempt of sampled events in `tracer`.
    pub fn with_tracer(mut self, tracer: Option<Tracer>) -> Sender {
        self.tracer = tracer;
        self
    }

    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }

    /// Delivers `event` as `d` says, retrying and dead-lettering; returns once the event is
    /// done with. Errors of the event log (replies, streams) are retried like HTTP failures.
    /// `consumer` names the trigger (or consumer) in spans.
    pub async fn deliver(&self, d: &Delivery, event: Event, consumer: &str) -> Report {
        // Owned: the copy sent is the event itself (no clone per delivery).
        let mut sent = event;
        let ttl = if d.carry_ttl {
            sent.remove_attribute(extensions::KNATIVE_BROKER_TTL)
                .ok()
                .flatten()
        } else {
            None
        };
        let who = Attempts::of(consumer, "subscriber", &sent);
        match self
            .send_with_retries(&d.subscriber, &sent, &d.retry, &who)
            .await
        {
            Ok((reply, status, attempts, ctx)) => {
                if let (Some(mut reply), Some(to)) = (reply, &d.reply) {
                    if let Some(ttl) = ttl {
                        let _ = reply.set_attribute(extensions::KNATIVE_BROKER_TTL, ttl);
                    }
                    // The reply continues the trace, under the attempt that got it.
                    if let Some(ctx) = ctx
                        && reply.attribute(extensions::TRACEPARENT).is_none()
                    {
                        let _ = reply.set_attribute(extensions::TRACEPARENT, ctx.to_string());
                    }
                    let who = Attempts::of(consumer, "reply", &reply);
                    if let Err(f) = self.send_with_retries(to, &reply, &d.retry, &who).await {
                        tracing::warn!(to = %to, error = %f.message, "cannot deliver a reply; dropped");
                    }
                }
                Report {
                    outcome: Outcome::Delivered,
                    status: Some(status),
                    attempts,
                    error: None,
                    failed_event: None,
                }
            }
            Err(f) => {
                let failed_event = Some((sent.id().to_string(), sent.ty().to_string()));
                let report = |outcome| Report {
                    outcome,
                    status: f.status,
                    attempts: f.attempts,
                    error: Some(f.message.clone()),
                    failed_event: failed_event.clone(),
                };
                let Some(dls) = &d.dead_letter else {
                    tracing::warn!(to = %d.subscriber, id = sent.id(), error = %f.message, "delivery failed; no dead letter sink, event dropped");
                    return report(Outcome::Dropped);
                };
                let mut dead = sent;
                let _ =
                    dead.set_attribute(extensions::KNATIVE_ERROR_DEST, d.subscriber.to_string());
                if let Some(code) = f.status {
                    let _ = dead.set_attribute(extensions::KNATIVE_ERROR_CODE, code.to_string());
                }
                if !f.body.is_empty() {
                    let cut = &f.body[..f.body.len().min(MAX_ERROR_DATA)];
                    let _ = dead.set_attribute(extensions::KNATIVE_ERROR_DATA, base64(cut));
                }
                let who = Attempts::of(consumer, "dead letter", &dead);
                match self.send_with_retries(dls, &dead, &d.retry, &who).await {
                    Ok(_) => report(Outcome::DeadLettered),
                    Err(e) => {
                        tracing::warn!(to = %dls, id = dead.id(), error = %e.message, "dead letter delivery failed; event dropped");
                        report(Outcome::Dropped)
                    }
                }
            }
        }
    }

    async fn send_with_retries(
        &self,
        to: &Target,
        event: &Event,
        policy: &RetryPolicy,
        who: &Attempts<'_>,
    ) -> Result<(Option<Event>, u16, u32, Option<TraceContext>), Failure> {
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let ctx = who.parent.map(|p| p.child());
            let started = SystemTime::now();
            let result = self
                .send_once(to, event, policy.timeout, ctx.as_ref())
                .await;
            if let Some(ctx) = &ctx {
                self.record_attempt(who, ctx, to, attempt, started, &result);
            }
            let mut failure = match result {
                Ok((status, reply)) => return Ok((reply, status, attempt, ctx)),
                Err(f) => f,
            };
            failure.attempts = attempt;
            let outcome = match failure.status {
                Some(s) => Outcome_::of_status(s),
                None => Outcome_::Retryable,
            };
            let asked = failure
                .status
                .and_then(|s| retry_after(s, failure.retry_after.as_deref(), SystemTime::now()));
            match policy.step(attempt, outcome, asked) {
                Step::RetryIn(wait) => {
                    tracing::debug!(to = %to, attempt, wait_ms = wait.as_millis() as u64, error = %failure.message, "retrying delivery");
                    tokio::time::sleep(wait).await;
                }
                Step::Done | Step::DeadLetter => return Err(failure),
            }
        }
    }

    /// The span of one attempt, if the trace is sampled and a tracer is set.
    fn record_attempt(
        &self,
        who: &Attempts<'_>,
        ctx: &TraceContext,
        to: &Target,
        attempt: u32,
        started: SystemTime,
        result: &Result<(u16, Option<Event>), Failure>,
    ) {
        let Some(tracer) = &self.tracer else {
            return;
        };
        if !ctx.sampled() {
            return;
        }
        let parent = who.parent.map(|p| p.span_id);
        let end = SystemTime::now();
        let mut span = Span::new(ctx, parent, "delivery", Kind::Client, started, end);
        span.attr("wisp.trigger", who.consumer)
            .attr("wisp.delivery.role", who.role)
            .attr("wisp.delivery.dead_letter", who.role == "dead letter")
            .attr("url.full", to.to_string())
            .attr("wisp.delivery.attempt", i64::from(attempt));
        let status = match result {
            Ok((status, _)) => Some(*status),
            Err(f) => f.status,
        };
        if let Some(status) = status {
            span.attr("http.response.status_code", i64::from(status));
        }
        if let Err(f) = result {
            span.attr("error.message", f.message.as_str());
            span.error = true;
        }
        tracer.record(span);
    }

    async fn send_once(
        &self,
        to: &Target,
        event: &Event,
        timeout: Option<Duration>,
        trace: Option<&TraceContext>,
    ) -> Result<(u16, Option<Event>), Failure> {
        match to {
            Target::Stream(stream) => {
                let mut ev = event.clone();
                if !crate::ingress::arrive(
                    &mut ev,
                    stream.starts_with(crate::reconcile::BROKER_STREAM_PREFIX),
                ) {
                    tracing::info!(id = ev.id(), %stream, "dropped: knativebrokerttl ran out (a reply loop?)");
                    return Ok((StatusCode::ACCEPTED.as_u16(), None));
                }
                match self.log.append(stream, vec![ev.encode()]).await {
                    Ok(_) => Ok((StatusCode::ACCEPTED.as_u16(), None)),
                    Err(e) => Err(Failure {
                        status: None,
                        attempts: 0,
                        body: Bytes::new(),
                        message: format!("cannot append to {stream}: {e}"),
                        retry_after: None,
                    }),
                }
            }
            Target::Http(url) => {
                let fut = self.post(url, event, trace);
                match timeout {
                    Some(t) => match tokio::time::timeout(t, fut).await {
                        Ok(r) => r,
                        Err(_) => Err(Failure {
                            status: None,
                            attempts: 0,
                            body: Bytes::new(),
                            message: format!("no response within {t:?} (delivery.timeout)"),
                            retry_after: None,
                        }),
                    },
                    None => fut.await,
                }
            }
        }
    }

    async fn post(
        &self,
        url: &str,
        event: &Event,
        trace: Option<&TraceContext>,
    ) -> Result<(u16, Option<Event>), Failure> {
        let fail = |message: String| Failure {
            status: None,
            attempts: 0,
            body: Bytes::new(),
            message,
            retry_after: None,
        };
        let uri: http::Uri = url
            .parse()
            .map_err(|e| fail(format!("bad URL {url:?}: {e}")))?;
        let host = uri.host().unwrap_or_default().to_string();
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_default();
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let (headers, body) = wisp_cloudevents::to_binary(event);
        // Hosts the gateway serves go to the gateway, named in `Host`.
        let target = match self.gateway {
            Some(gw)
                if self
                    .local_suffixes
                    .iter()
                    .any(|s| host.ends_with(s.as_str())) =>
            {
                format!("http://{gw}{path}")
            }
            _ => url.to_string(),
        };
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(&target)
            .body(Full::new(body))
            .map_err(|e| fail(format!("cannot build a request to {url}: {e}")))?;
        *req.headers_mut() = headers;
        if let Ok(v) = HeaderValue::from_str(&authority) {
            req.headers_mut().insert(header::HOST, v);
        }
        req.headers_mut()
            .insert("prefer", HeaderValue::from_static("reply"));
        if let Some(ctx) = trace {
            req.headers_mut()
                .insert(TRACEPARENT.clone(), ctx.to_header());
            if let Some(state) = event
                .attribute(extensions::TRACESTATE)
                .and_then(|v| HeaderValue::from_str(v).ok())
            {
                req.headers_mut().insert(TRACESTATE.clone(), state);
            }
        }
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| fail(format!("cannot reach {url}: {}", error_chain(&e))))?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, MAX_RESPONSE)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if !status.is_success() {
            return Err(Failure {
                status: Some(status.as_u16()),
                attempts: 0,
                message: format!("{url} answered {status}"),
                body,
                retry_after,
            });
        }
        Ok((status.as_u16(), reply_of(status, &parts.headers, body)))
    }
}

/// The event in a 2xx response, if it carries one.
fn reply_of(status: StatusCode, headers: &http::HeaderMap, body: Bytes) -> Option<Event> {
    if status == StatusCode::NO_CONTENT || status == StatusCode::ACCEPTED && body.is_empty() {
        return None;
    }
    let is_event = headers.contains_key("ce-specversion")
        || headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                ct.to_ascii_lowercase()
                    .starts_with("application/cloudevents+json")
            });
    if !is_event {
        return None;
    }
    match wisp_cloudevents::from_http(headers, body) {
        Ok(wisp_cloudevents::Incoming::One(e)) => Some(e),
        Ok(_) => None,
        Err(e) => {
            tracing::info!(error = %e, "a subscriber replied with an invalid event; ignored");
            None
        }
    }
}

/// RFC 3339 UTC with microseconds, as Knative writes `knativearrivaltime`.
pub fn humantime_rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_micros(t).to_string()
}

fn base64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_of_known_instants() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(humantime_rfc3339(t), "2023-11-14T22:13:20.000000Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_micros(951_782_400_000_001);
        assert_eq!(humantime_rfc3339(t), "2000-02-29T00:00:00.000001Z");
    }
}
