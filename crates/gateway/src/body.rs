//! Response bodies: the gateway's own short answers, and proxied bodies streamed frame by
//! frame from the replica.
//!
//! A proxied body carries the request's [`InFlight`] guard and, for HTTP/1.1, the upstream
//! connection: when the body ends cleanly the connection goes back to the replica's pool and
//! the slot is released (in that order, so a waiter woken by the slot can reuse the
//! connection); when it ends early (client gone, upstream error, idle timeout) the connection
//! is dropped (hyper closes it) and the slot released all the same. Nothing is buffered: each
//! frame is handed on as it arrives.
//!
//! `idleTimeoutSeconds` is enforced here once the response has started: a timer is only
//! created the first time the replica keeps the body waiting, and it is re-armed lazily (the
//! frame path only records the time).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::dispatch::InFlight;
use crate::error::TimeoutKind;
use crate::observe::Observed;
use crate::pool::H1Sender;

/// Why a response body ended abnormally after its headers were sent. The client sees a
/// truncated response (HTTP/1.1: the connection is closed; HTTP/2: the stream is reset).
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("upstream body failed: {0}")]
    Upstream(#[from] hyper::Error),
    #[error("{kind} ({limit:?}) expired: no bytes from the revision")]
    Timeout { kind: TimeoutKind, limit: Duration },
}

/// The body of every response the gateway sends.
pub struct ResponseBody {
    kind: Kind,
}

// Boxing the proxied variant would cost every proxied request an allocation; the body is
// built once and polled in place, so its size only costs one move into hyper.
#[allow(clippy::large_enum_variant)]
enum Kind {
    Full(Option<Bytes>),
    Proxied(ProxyBody),
}

impl ResponseBody {
    pub(crate) fn full(data: impl Into<Bytes>) -> Self {
        ResponseBody {
            kind: Kind::Full(Some(data.into())),
        }
    }

    pub(crate) fn empty() -> Self {
        ResponseBody {
            kind: Kind::Full(None),
        }
    }

    pub(crate) fn proxied(
        inner: Incoming,
        flight: InFlight,
        conn: Option<H1Sender>,
        idle_timeout: Option<Duration>,
        observed: Option<Observed>,
    ) -> Self {
        ResponseBody {
            kind: Kind::Proxied(ProxyBody {
                inner,
                flight: Some(flight),
                conn,
                idle: idle_timeout.map(IdleTimer::new),
                observed,
            }),
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match &mut self.get_mut().kind {
            Kind::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Kind::Proxied(body) => body.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(data) => data.is_none(),
            Kind::Proxied(body) => body.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Kind::Proxied(body) => body.inner.size_hint(),
        }
    }
}

struct ProxyBody {
    inner: Incoming,
    flight: Option<InFlight>,
    conn: Option<H1Sender>,
    idle: Option<IdleTimer>,
    /// Reported to the request observer when the exchange is over; counts the bytes sent.
    observed: Option<Observed>,
}

impl ProxyBody {
    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(idle) = &mut self.idle {
                    idle.touch();
                }
                if let (Some(o), Some(data)) = (&mut self.observed, frame.data_ref()) {
                    o.response_size += data.len() as u64;
                }
                if self.inner.is_end_stream() {
                    self.finish(true);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => {
                self.finish(false);
                Poll::Ready(Some(Err(BodyError::Upstream(err))))
            }
            Poll::Ready(None) => {
                self.finish(true);
                Poll::Ready(None)
            }
            Poll::Pending => {
                if let Some(idle) = &mut self.idle
                    && idle.poll_expired(cx).is_ready()
                {
                    let limit = idle.limit;
                    self.finish(false);
                    tracing::debug!(?limit, "idle timeout: closing the response");
                    return Poll::Ready(Some(Err(BodyError::Timeout {
                        kind: TimeoutKind::Idle,
                        limit,
                    })));
                }
                Poll::Pending
            }
        }
    }

    /// The exchange is over: a cleanly finished HTTP/1.1 connection goes back to the pool,
    /// then the slot and the in-flight count are released. Idempotent.
    fn finish(&mut self, clean: bool) {
        let Some(flight) = self.flight.take() else {
            return;
        };
        if let Some(conn) = self.conn.take()
            && clean
            && let Some(replica) = flight.replica()
        {
            replica.pool.put_back(conn);
        }
        drop(flight);
        if let Some(observed) = self.observed.take() {
            observed.finish();
        }
    }
}

impl Drop for ProxyBody {
    fn drop(&mut self) {
        let clean = self.inner.is_end_stream();
        self.finish(clean);
    }
}

/// `idleTimeoutSeconds` on a streaming body.
struct IdleTimer {
    limit: Duration,
    last: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl IdleTimer {
    fn new(limit: Duration) -> Self {
        IdleTimer {
            limit,
            last: Instant::now(),
            sleep: None,
        }
    }

    fn touch(&mut self) {
        self.last = Instant::now();
    }

    /// Ready when `limit` has passed since the last frame.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let deadline = self.last + self.limit;
            let sleep = self
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if sleep.deadline() != deadline {
                sleep.as_mut().reset(deadline);
            }
            match sleep.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                // A frame may have come since the timer was set: re-check against `last`.
                Poll::Ready(()) if Instant::now() < self.last + self.limit => continue,
                Poll::Ready(()) => return Poll::Ready(()),
            }
        }
    }
}
