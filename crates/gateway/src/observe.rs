//! The observer hook: one call per finished request, for metrics and request logs kept
//! elsewhere (the gateway depends on no other wisp crate, so it only says what happened).
//!
//! Why a trait object installed once rather than a channel of records: most requests are
//! counted, not logged, and counting is a few atomic adds the observer can do in place; an
//! observer that writes logs hands lines to its own bounded queue. Why `for_revision`: the
//! observer resolves a revision's counters once, when the gateway learns of the revision, and
//! the request path then reaches them through the revision's state with no lookup.
//!
//! What it costs with no observer installed: one load of an empty `OnceLock` per request.
//! With one: a few reference-count increments to keep the request's method, target and
//! headers until the response ends (no copy of their bytes), and one wall-clock read.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Uri, Version};
use tokio::time::Instant;

use crate::revision::RevisionState;
use crate::table::RevisionKey;
use crate::trace::HopTrace;

/// Told about every request the gateway answered, once, when its response ended (the last
/// byte sent, the client gone, or an upgraded connection closed). Called on the request's own
/// task: keep it short and never block.
pub trait RequestObserver: Send + Sync + 'static {
    fn on_request(&self, record: &RequestRecord<'_>);

    /// The observer of one revision's requests, asked once when the gateway learns of the
    /// revision (`None`: this one observes them too).
    fn for_revision(&self, _revision: &RevisionKey) -> Option<Arc<dyn RequestObserver>> {
        None
    }
}

/// One finished request.
#[derive(Debug, Clone)]
pub struct RequestRecord<'a> {
    /// Wall-clock time of its arrival.
    pub start: SystemTime,
    /// From arrival to the end of the response.
    pub latency: Duration,
    pub method: &'a Method,
    pub version: Version,
    /// The host the client asked for (the `Host` header or the URI's authority).
    pub host: &'a str,
    /// The request target: path and query (as the client sent it).
    pub uri: &'a Uri,
    /// The status sent (the gateway's own answer if it made one).
    pub status: u16,
    /// Bytes of the request body, when known from the start (`Content-Length`, or no body):
    /// a chunked upload is streamed to the replica uncounted.
    pub request_size: Option<u64>,
    /// Bytes of the response body sent (for an upgraded connection: bytes sent to the client).
    pub response_size: u64,
    /// The revision it was routed to (`None`: unknown host, probe, ...).
    pub revision: Option<&'a RevisionKey>,
    /// The replica that answered.
    pub replica: Option<SocketAddr>,
    /// It waited for the revision to scale from zero.
    pub held: bool,
    /// The client's address.
    pub remote: IpAddr,
    pub user_agent: Option<&'a str>,
    pub referer: Option<&'a str>,
    /// The W3C `traceparent` header, as sent.
    pub traceparent: Option<&'a str>,
    /// The hop's trace context: the span the replica was told is its parent (sampled or
    /// not, see [`crate::trace`]), and the caller's span if it sent a valid `traceparent`.
    pub trace: HopTrace,
    /// How long it was held while the revision scaled from zero (`held`).
    pub held_for: Option<Duration>,
}

/// What is kept of a request until its response ends.
pub(crate) struct Observed {
    global: Arc<dyn RequestObserver>,
    revision: Option<Arc<RevisionState>>,
    start: SystemTime,
    started: Instant,
    method: Method,
    version: Version,
    host: Option<HeaderValue>,
    uri: Uri,
    request_size: Option<u64>,
    user_agent: Option<HeaderValue>,
    referer: Option<HeaderValue>,
    traceparent: Option<HeaderValue>,
    trace: HopTrace,
    remote: IpAddr,
    pub status: u16,
    pub replica: Option<SocketAddr>,
    pub held: bool,
    pub held_for: Option<Duration>,
    pub response_size: u64,
}

fn text(v: &Option<HeaderValue>) -> Option<&str> {
    v.as_ref().and_then(|v| v.to_str().ok())
}

impl Observed {
    pub fn new<B: hyper::body::Body>(
        global: Arc<dyn RequestObserver>,
        request: &Request<B>,
        started: Instant,
        remote: IpAddr,
        trace: HopTrace,
    ) -> Observed {
        let headers = request.headers();
        let size = request.body().size_hint();
        Observed {
            global,
            revision: None,
            start: SystemTime::now(),
            started,
            method: request.method().clone(),
            version: request.version(),
            host: None,
            uri: request.uri().clone(),
            request_size: size.exact(),
            user_agent: headers.get(header::USER_AGENT).cloned(),
            referer: headers.get(header::REFERER).cloned(),
            traceparent: headers.get(&crate::trace::TRACEPARENT).cloned(),
            trace,
            remote,
            status: 0,
            replica: None,
            held: false,
            held_for: None,
            response_size: 0,
        }
    }

    pub fn set_host(&mut self, host: &HeaderValue) {
        self.host = Some(host.clone());
    }

    pub fn set_revision(&mut self, revision: &Arc<RevisionState>) {
        self.revision = Some(revision.clone());
    }

    /// Tells the observer (the revision's own, if it has one).
    pub fn finish(self) {
        let key = self.revision.as_ref().map(|r| &r.key);
        let record = RequestRecord {
            start: self.start,
            latency: Instant::now().duration_since(self.started),
            method: &self.method,
            version: self.version,
            host: text(&self.host).unwrap_or(""),
            uri: &self.uri,
            status: self.status,
            request_size: self.request_size,
            response_size: self.response_size,
            revision: key,
            replica: self.replica,
            held: self.held,
            remote: self.remote,
            user_agent: text(&self.user_agent),
            referer: text(&self.referer),
            traceparent: text(&self.traceparent),
            trace: self.trace,
            held_for: self.held_for,
        };
        match self.revision.as_ref().and_then(|r| r.observer.as_ref()) {
            Some(observer) => observer.on_request(&record),
            None => self.global.on_request(&record),
        }
    }
}
