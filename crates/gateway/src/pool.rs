//! Keep-alive connections to one replica.
//!
//! Each replica owns its pool, so a replica that goes away takes its connections with it, and
//! the lock guarding a pool is only ever contended by requests to that one replica. HTTP/1.1
//! connections are lent one request at a time and come back when the response body has been
//! read to its end ([`Pool::put_back`]); an HTTP/2 (h2c) connection is shared by all requests.
//!
//! Connecting happens before the request is handed to hyper, so a refused connection gives
//! the request back untouched ([`SendError::Connect`]) and the caller may try another replica,
//! whatever the method: nothing was sent. A pooled connection that turns out to be closed when
//! used also gives the request back (hyper's `try_send_request`), and a fresh one is opened.

use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

pub(crate) type H1Sender = http1::SendRequest<Incoming>;
type H2Sender = http2::SendRequest<Incoming>;

pub(crate) struct Pool {
    addr: SocketAddr,
    max_idle: usize,
    idle: Mutex<Vec<H1Sender>>,
    h2: Mutex<Option<H2Sender>>,
    h2_connecting: tokio::sync::Mutex<()>,
}

/// Why a request could not be answered by this replica.
pub(crate) enum SendError {
    /// No connection could be opened; the request was not sent and is handed back.
    Connect {
        error: io::Error,
        request: Box<Request<Incoming>>,
    },
    /// The request was (or may have been) sent and the exchange failed.
    Upstream(hyper::Error),
}

/// A response, and the HTTP/1.1 connection that carried it (to give back when its body ends).
pub(crate) type Sent = (Response<Incoming>, Option<H1Sender>);

impl Pool {
    pub fn new(addr: SocketAddr, max_idle: usize) -> Self {
        Pool {
            addr,
            max_idle,
            idle: Mutex::new(Vec::new()),
            h2: Mutex::new(None),
            h2_connecting: tokio::sync::Mutex::new(()),
        }
    }

    pub async fn send(
        &self,
        request: Request<Incoming>,
        h2c: bool,
        connect_timeout: Duration,
    ) -> Result<Sent, SendError> {
        if h2c {
            self.send_h2(request, connect_timeout)
                .await
                .map(|resp| (resp, None))
        } else {
            self.send_h1(request, connect_timeout).await
        }
    }

    /// Returns an HTTP/1.1 connection whose exchange ended cleanly.
    pub fn put_back(&self, sender: H1Sender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max_idle {
            idle.push(sender);
        }
    }

    /// An idle connection ready for a request. Closed ones are dropped; ones still finishing
    /// their previous exchange stay for a later request instead of making this one wait.
    /// Most recently used first: usually the last one is ready and the scan stops there.
    fn checkout(&self) -> Option<H1Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let mut i = idle.len();
        while i > 0 {
            i -= 1;
            if idle[i].is_closed() {
                idle.swap_remove(i);
            } else if idle[i].is_ready() {
                return Some(idle.swap_remove(i));
            }
        }
        None
    }

    async fn send_h1(
        &self,
        mut request: Request<Incoming>,
        connect_timeout: Duration,
    ) -> Result<Sent, SendError> {
        while let Some(mut sender) = self.checkout() {
            match sender.try_send_request(request).await {
                Ok(response) => return Ok((response, Some(sender))),
                Err(mut err) => match err.take_message() {
                    // Closed under us before anything was written: try the next one.
                    Some(unsent) => request = unsent,
                    None => return Err(SendError::Upstream(err.into_error())),
                },
            }
        }
        let io = match self.connect(connect_timeout).await {
            Ok(io) => io,
            Err(error) => {
                return Err(SendError::Connect {
                    error,
                    request: Box::new(request),
                });
            }
        };
        let (mut sender, conn) = match http1::handshake(io).await {
            Ok(pair) => pair,
            Err(err) => {
                return Err(SendError::Connect {
                    error: io::Error::other(err),
                    request: Box::new(request),
                });
            }
        };
        tokio::spawn(async move {
            if let Err(err) = conn.with_upgrades().await {
                tracing::debug!(error = %err, "upstream HTTP/1.1 connection ended with an error");
            }
        });
        match sender.send_request(request).await {
            Ok(response) => Ok((response, Some(sender))),
            Err(err) => Err(SendError::Upstream(err)),
        }
    }

    async fn send_h2(
        &self,
        mut request: Request<Incoming>,
        connect_timeout: Duration,
    ) -> Result<Response<Incoming>, SendError> {
        let shared = self.h2.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(mut sender) = shared.filter(|s| !s.is_closed()) {
            match sender.try_send_request(request).await {
                Ok(response) => return Ok(response),
                Err(mut err) => match err.take_message() {
                    Some(unsent) => request = unsent,
                    None => return Err(SendError::Upstream(err.into_error())),
                },
            }
        }
        let mut sender = match self.shared_h2(connect_timeout).await {
            Ok(sender) => sender,
            Err(error) => {
                return Err(SendError::Connect {
                    error,
                    request: Box::new(request),
                });
            }
        };
        sender
            .send_request(request)
            .await
            .map_err(SendError::Upstream)
    }

    /// The replica's h2c connection, opened by the first request that needs it while the
    /// others wait for it (rather than each opening their own).
    async fn shared_h2(&self, connect_timeout: Duration) -> io::Result<H2Sender> {
        let _connecting = self.h2_connecting.lock().await;
        if let Some(existing) = self.h2.lock().unwrap_or_else(|e| e.into_inner()).as_ref()
            && !existing.is_closed()
        {
            return Ok(existing.clone());
        }
        let sender = self.connect_h2(connect_timeout).await?;
        *self.h2.lock().unwrap_or_else(|e| e.into_inner()) = Some(sender.clone());
        Ok(sender)
    }

    async fn connect(&self, limit: Duration) -> io::Result<TokioIo<TcpStream>> {
        let stream = match tokio::time::timeout(limit, TcpStream::connect(self.addr)).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connect timed out after {limit:?}"),
                ));
            }
        };
        stream.set_nodelay(true)?;
        Ok(TokioIo::new(stream))
    }

    async fn connect_h2(&self, limit: Duration) -> io::Result<H2Sender> {
        let io = self.connect(limit).await?;
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .handshake(io)
            .await
            .map_err(io::Error::other)?;
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!(error = %err, "upstream h2c connection ended with an error");
            }
        });
        Ok(sender)
    }
}
