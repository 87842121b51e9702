//! Distributed tracing: the span model, a bounded queue the request path hands spans to, and
//! an exporter task that sends them over OTLP/HTTP with JSON encoding.
//!
//! Trace-context parsing and formatting are the gateway's ([`wisp_gateway::trace`],
//! re-exported here): the gateway depends on no wisp crate and propagates on every request.
//! Spans are only made when a [`Tracer`] exists (an OTLP endpoint is configured) and the
//! context is sampled; otherwise tracing costs the header handling and nothing else.
//!
//! Why a hand-written OTLP/JSON encoder rather than the opentelemetry crates: the OTLP JSON
//! mapping of `ExportTraceServiceRequest` is small (resourceSpans → scopeSpans → spans with
//! hex ids, nanosecond timestamps as strings, typed attribute values), the SDK's batch
//! processor and OTLP exporter would add tonic/prost or reqwest and a second span pipeline
//! beside `tracing` for five span shapes, and the otel crates change their API often and
//! build slowly on this machine. Every OpenTelemetry collector accepts JSON on `/v1/traces`.
//!
//! Never slows a request: [`Tracer::record`] is a `try_send` into a queue of
//! [`QUEUE_CAPACITY`]; a full queue drops the span (`wisp_spans_dropped_total{reason=
//! "queue_full"}`). The exporter sends a batch every [`BATCH_PAUSE`] or [`BATCH_SIZE`] spans,
//! one request at a time, each bounded by [`EXPORT_TIMEOUT`]; a failed batch is dropped
//! (`reason="export_failed"`) and never retried, so an unreachable collector only ever costs
//! a full queue.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prometheus_client::encoding::DescriptorEncoder;
use tokio::sync::mpsc;
pub use wisp_gateway::trace::{
    HopTrace, TRACEPARENT, TRACESTATE, TraceContext, hex, random_span_id, random_trace_id,
};

use crate::expose;
use crate::metric::Counter;

/// Spans waiting for the exporter at most; more are dropped.
pub const QUEUE_CAPACITY: usize = 8192;
/// Spans per export request at most.
pub const BATCH_SIZE: usize = 512;
/// The longest a span waits for its batch to fill.
pub const BATCH_PAUSE: Duration = Duration::from_secs(1);
/// The longest one export request may take; then its batch is dropped.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(3);
/// The `service.name` resource attribute.
pub const SERVICE_NAME: &str = "wisp";

/// OpenTelemetry's span kinds (the OTLP enum's numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Internal = 1,
    Server = 2,
    Client = 3,
}

/// An attribute's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(Arc<str>),
    Int(i64),
    Bool(bool),
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.into())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s.into())
    }
}

impl From<Arc<str>> for Value {
    fn from(s: Arc<str>) -> Value {
        Value::Str(s)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}

/// One finished span.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent: Option<[u8; 8]>,
    pub name: &'static str,
    pub kind: Kind,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<(&'static str, Value)>,
    /// The operation failed (OTLP status code ERROR); otherwise the status is unset.
    pub error: bool,
}

impl Span {
    /// A span with the ids of `context` under `parent`.
    pub fn new(
        context: &TraceContext,
        parent: Option<[u8; 8]>,
        name: &'static str,
        kind: Kind,
        start: SystemTime,
        end: SystemTime,
    ) -> Span {
        Span {
            trace_id: context.trace_id,
            span_id: context.span_id,
            parent,
            name,
            kind,
            start,
            end,
            attributes: Vec::with_capacity(8),
            error: false,
        }
    }

    pub fn attr(&mut self, key: &'static str, value: impl Into<Value>) -> &mut Span {
        self.attributes.push((key, value.into()));
        self
    }
}

/// What the exporter did.
#[derive(Debug, Default)]
pub struct TraceStats {
    pub exported: Counter,
    pub dropped_queue_full: Counter,
    pub dropped_export_failed: Counter,
}

/// The request path's side of tracing: cheap to clone, never waits.
#[derive(Debug, Clone)]
pub struct Tracer {
    tx: mpsc::Sender<Span>,
    stats: Arc<TraceStats>,
}

impl Tracer {
    /// A tracer exporting to `endpoint` (the full URL, `.../v1/traces`); spawns the exporter
    /// on the current tokio runtime. It ends when every clone of the tracer is gone.
    pub fn start(endpoint: Uri) -> Tracer {
        let (tracer, rx) = Tracer::channel(QUEUE_CAPACITY);
        tokio::spawn(export(rx, endpoint, tracer.stats.clone()));
        tracer
    }

    /// A tracer and the receiving end of its queue (tests; [`start`](Self::start)).
    pub fn channel(capacity: usize) -> (Tracer, mpsc::Receiver<Span>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            Tracer {
                tx,
                stats: Arc::default(),
            },
            rx,
        )
    }

    /// Hands `span` to the exporter; drops it (counted) if the queue is full.
    pub fn record(&self, span: Span) {
        if self.tx.try_send(span).is_err() {
            self.stats.dropped_queue_full.inc();
        }
    }

    pub fn stats(&self) -> &TraceStats {
        &self.stats
    }

    pub(crate) fn encode(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        expose::counters(
            enc,
            "wisp_spans_exported",
            "Spans the OTLP endpoint accepted",
            &[(Vec::new(), self.stats.exported.get())],
        )?;
        expose::counters(
            enc,
            "wisp_spans_dropped",
            "Spans dropped: the queue to the exporter was full, or their export failed",
            &[
                (
                    vec![("reason", "queue_full")],
                    self.stats.dropped_queue_full.get(),
                ),
                (
                    vec![("reason", "export_failed")],
                    self.stats.dropped_export_failed.get(),
                ),
            ],
        )
    }
}

/// The OTLP traces URL from the settings, as OpenTelemetry SDKs read them: `flag` (a base
/// URL like `OTEL_EXPORTER_OTLP_ENDPOINT`, or a URL that already ends in `/v1/traces`), else
/// `traces_env` (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, used as is), else `base_env`
/// (`OTEL_EXPORTER_OTLP_ENDPOINT`, `/v1/traces` appended). Empty values are unset. `None`:
/// no endpoint, nothing exported. Only `http://` is supported (no TLS client here).
pub fn endpoint(
    flag: Option<&str>,
    traces_env: Option<&str>,
    base_env: Option<&str>,
) -> Result<Option<Uri>, String> {
    let set = |v: Option<&str>| {
        v.map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let with_path = |base: String| {
        if base.trim_end_matches('/').ends_with("/v1/traces") {
            base
        } else {
            format!("{}/v1/traces", base.trim_end_matches('/'))
        }
    };
    let url = match (set(flag), set(traces_env), set(base_env)) {
        (Some(f), _, _) => with_path(f),
        (None, Some(t), _) => t,
        (None, None, Some(b)) => with_path(b),
        (None, None, None) => return Ok(None),
    };
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("OTLP endpoint {url:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http") if uri.host().is_some() => Ok(Some(uri)),
        Some("https") => Err(format!(
            "OTLP endpoint {url:?}: only http:// is supported (run a collector on loopback to reach a TLS backend)"
        )),
        _ => Err(format!("OTLP endpoint {url:?}: expected http://host:port")),
    }
}

/// The exporter: batches from the queue, one POST at a time.
async fn export(mut rx: mpsc::Receiver<Span>, endpoint: Uri, stats: Arc<TraceStats>) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build_http();
    let mut batch = Vec::with_capacity(BATCH_SIZE);
    let mut failing = false;
    let mut body = String::with_capacity(64 << 10);
    loop {
        if rx.recv_many(&mut batch, BATCH_SIZE).await == 0 {
            return;
        }
        let deadline = tokio::time::Instant::now() + BATCH_PAUSE;
        while batch.len() < BATCH_SIZE {
            let room = BATCH_SIZE - batch.len();
            match tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, room)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        body.clear();
        encode_request(&mut body, &batch);
        let n = batch.len() as u64;
        batch.clear();
        let outcome =
            match tokio::time::timeout(EXPORT_TIMEOUT, post(&client, &endpoint, &body)).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {EXPORT_TIMEOUT:?}")),
            };
        match outcome {
            Ok(()) => {
                stats.exported.add(n);
                if failing {
                    tracing::info!(endpoint = %endpoint, "exporting spans again");
                    failing = false;
                }
            }
            Err(why) => {
                stats.dropped_export_failed.add(n);
                if failing {
                    tracing::debug!(endpoint = %endpoint, error = %why, spans = n, "span export failed; dropped");
                } else {
                    tracing::warn!(endpoint = %endpoint, error = %why, spans = n, "span export failed; spans are dropped until it works");
                    failing = true;
                }
            }
        }
    }
}

async fn post(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    endpoint: &Uri,
    body: &str,
) -> Result<(), String> {
    let req = Request::builder()
        .method(Method::POST)
        .uri(endpoint.clone())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
        .map_err(|e| e.to_string())?;
    let resp = client
        .request(req)
        .await
        .map_err(|e| format!("cannot reach the endpoint: {e}"))?;
    let status = resp.status();
    let _ = resp.into_body().collect().await;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the endpoint answered {status}"))
    }
}

/// Appends the OTLP/JSON `ExportTraceServiceRequest` of `spans` to `out`.
pub fn encode_request(out: &mut String, spans: &[Span]) {
    out.push_str(r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":""#);
    out.push_str(SERVICE_NAME);
    out.push_str(r#""}}]},"scopeSpans":[{"scope":{"name":"wisp","version":""#);
    out.push_str(env!("CARGO_PKG_VERSION"));
    out.push_str(r#""},"spans":["#);
    for (i, span) in spans.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        encode_span(out, span);
    }
    out.push_str("]}]}]}");
}

fn nanos(t: SystemTime) -> u128 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn encode_span(out: &mut String, s: &Span) {
    let mut n = itoa::Buffer::new();
    out.push_str(r#"{"traceId":""#);
    push_hex(out, &s.trace_id);
    out.push_str(r#"","spanId":""#);
    push_hex(out, &s.span_id);
    out.push('"');
    if let Some(parent) = &s.parent {
        out.push_str(r#","parentSpanId":""#);
        push_hex(out, parent);
        out.push('"');
    }
    out.push_str(r#","name":"#);
    crate::requestlog::json_str(out, s.name);
    out.push_str(r#","kind":"#);
    out.push_str(n.format(s.kind as u8));
    out.push_str(r#","startTimeUnixNano":""#);
    out.push_str(n.format(nanos(s.start)));
    out.push_str(r#"","endTimeUnixNano":""#);
    out.push_str(n.format(nanos(s.end.max(s.start))));
    out.push_str(r#"","attributes":["#);
    for (i, (key, value)) in s.attributes.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r#"{"key":"#);
        crate::requestlog::json_str(out, key);
        out.push_str(r#","value":{"#);
        match value {
            Value::Str(v) => {
                out.push_str(r#""stringValue":"#);
                crate::requestlog::json_str(out, v);
            }
            Value::Int(v) => {
                // int64 is a string in proto3's JSON mapping.
                let _ = write!(out, r#""intValue":"{v}""#);
            }
            Value::Bool(v) => {
                out.push_str(if *v {
                    r#""boolValue":true"#
                } else {
                    r#""boolValue":false"#
                });
            }
        }
        out.push_str("}}");
    }
    out.push(']');
    if s.error {
        out.push_str(r#","status":{"code":2}"#);
    }
    out.push('}');
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 0xf) as usize] as char);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span() -> Span {
        let ctx = TraceContext::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .unwrap();
        let start = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        let mut s = Span::new(
            &ctx,
            Some([1, 2, 3, 4, 5, 6, 7, 8]),
            "gateway",
            Kind::Server,
            start,
            start + Duration::from_micros(1500),
        );
        s.attr("http.request.method", "GET")
            .attr("http.response.status_code", 503i64)
            .attr("wisp.held", true)
            .attr("server.address", "a\"b");
        s.error = true;
        s
    }

    #[test]
    fn spans_are_encoded_as_otlp_json() {
        let mut out = String::new();
        encode_request(&mut out, &[span(), span()]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
        let rs = &v["resourceSpans"][0];
        assert_eq!(
            rs["resource"]["attributes"][0],
            serde_json::json!({"key": "service.name", "value": {"stringValue": "wisp"}})
        );
        let spans = rs["scopeSpans"][0]["spans"].as_array().unwrap();
        assert_eq!(spans.len(), 2);
        assert_eq!(
            spans[0],
            serde_json::json!({
                "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
                "spanId": "00f067aa0ba902b7",
                "parentSpanId": "0102030405060708",
                "name": "gateway",
                "kind": 2,
                "startTimeUnixNano": "1700000000123456789",
                "endTimeUnixNano": "1700000000124956789",
                "attributes": [
                    {"key": "http.request.method", "value": {"stringValue": "GET"}},
                    {"key": "http.response.status_code", "value": {"intValue": "503"}},
                    {"key": "wisp.held", "value": {"boolValue": true}},
                    {"key": "server.address", "value": {"stringValue": "a\"b"}},
                ],
                "status": {"code": 2},
            })
        );
        // A root span has no parent and an unset status.
        let mut root = span();
        root.parent = None;
        root.error = false;
        let mut out = String::new();
        encode_request(&mut out, &[root]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let s = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert!(
            s.get("parentSpanId").is_none() && s.get("status").is_none(),
            "{s}"
        );
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let (tracer, mut rx) = Tracer::channel(2);
        for _ in 0..5 {
            tracer.record(span());
        }
        assert_eq!(tracer.stats().dropped_queue_full.get(), 3);
        assert!(rx.try_recv().is_ok());
    }

    #[test]
    fn endpoints_follow_the_sdk_variables() {
        let e = |f: Option<&str>, t: Option<&str>, b: Option<&str>| {
            endpoint(f, t, b).map(|u| u.map(|u| u.to_string()))
        };
        assert_eq!(e(None, None, None), Ok(None));
        assert_eq!(e(Some(""), None, Some(" ")), Ok(None));
        assert_eq!(
            e(Some("http://127.0.0.1:4318"), Some("http://x:1/t"), None).unwrap(),
            Some("http://127.0.0.1:4318/v1/traces".into())
        );
        assert_eq!(
            e(Some("http://c:4318/v1/traces"), None, None).unwrap(),
            Some("http://c:4318/v1/traces".into())
        );
        assert_eq!(
            e(None, Some("http://x:1/custom"), Some("http://y:2")).unwrap(),
            Some("http://x:1/custom".into())
        );
        assert_eq!(
            e(None, None, Some("http://y:2/base/")).unwrap(),
            Some("http://y:2/base/v1/traces".into())
        );
        assert!(e(Some("https://c:4318"), None, None).is_err());
        assert!(e(Some("c:4318"), None, None).is_err());
    }
}
