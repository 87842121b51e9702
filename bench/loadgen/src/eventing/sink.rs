//! The fast subscriber: a hyper HTTP/1.1 server (keep-alive) on a thread of its own with a
//! one-thread tokio runtime, answering every request 200 with an empty body at once.
//!
//! Per delivery it reads the clock first (before the body), then `ce-benchrun` and
//! `ce-sentns` (see [`super::clock`]), and adds the arrival to its run: a count, the time of
//! the last arrival, and the latency `arrival − sentns`. Its own thread keeps its arrivals'
//! timestamps free of the load generator's work (one busy thread could not both send and
//! timestamp on time); the price is a third busy thread on the 2 cores, which every figure
//! here, the limit included, pays alike.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

use super::clock;

pub const RUN_HEADER: &str = "ce-benchrun";
pub const SENT_HEADER: &str = "ce-sentns";
/// The sink thread's name (what /proc/self/task/*/stat shows).
pub const THREAD: &str = "bench-sink";

/// What one run's deliveries looked like.
#[derive(Debug, Default)]
pub struct RunLog {
    pub count: u64,
    /// Arrival of the last delivery, on [`clock`].
    pub last_ns: u64,
    /// `arrival − sentns` of every delivery, ns.
    pub latencies_ns: Vec<u64>,
}

#[derive(Default)]
struct Shared {
    runs: Mutex<HashMap<u32, RunLog>>,
    stray: AtomicU64,
}

pub struct Sink {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn header<T: std::str::FromStr>(req: &Request<Incoming>, name: &str) -> Option<T> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Empty<Bytes>>, Infallible> {
    let now = clock::now_ns();
    let run: Option<u32> = header(&req, RUN_HEADER);
    let sent: Option<u64> = header(&req, SENT_HEADER);
    // Read to the end, so the connection is ready for the next request.
    let _ = req.into_body().collect().await;
    match (run, sent) {
        (Some(run), Some(sent)) => {
            let mut runs = shared.runs.lock().unwrap_or_else(|e| e.into_inner());
            let log = runs.entry(run).or_default();
            log.count += 1;
            log.last_ns = log.last_ns.max(now);
            log.latencies_ns.push(now.saturating_sub(sent));
        }
        _ => {
            shared.stray.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(Response::new(Empty::new()))
}

impl Sink {
    /// Binds a free loopback port and starts serving on a new thread.
    pub fn start() -> anyhow::Result<Sink> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let (stop, mut stopped) = oneshot::channel::<()>();
        let s = shared.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name(THREAD.into())
            .spawn(move || {
                rt.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    loop {
                        let stream = tokio::select! {
                            _ = &mut stopped => break,
                            r = listener.accept() => match r {
                                Ok((stream, _)) => stream,
                                Err(_) => continue,
                            },
                        };
                        let _ = stream.set_nodelay(true);
                        let s = s.clone();
                        tokio::spawn(async move {
                            let service = service_fn(move |req| handle(req, s.clone()));
                            let _ = hyper::server::conn::http1::Builder::new()
                                .keep_alive(true)
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                });
            })
            .context("cannot start the subscriber's thread")?;
        Ok(Sink {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Deliveries of `run` so far, and when the last one arrived.
    pub fn progress(&self, run: u32) -> (u64, u64) {
        let runs = self.shared.runs.lock().unwrap_or_else(|e| e.into_inner());
        runs.get(&run).map_or((0, 0), |l| (l.count, l.last_ns))
    }

    /// Takes what `run` recorded (later deliveries of it start a new record).
    pub fn take(&self, run: u32) -> RunLog {
        let mut runs = self.shared.runs.lock().unwrap_or_else(|e| e.into_inner());
        runs.remove(&run).unwrap_or_default()
    }

    /// Deliveries without this tool's headers.
    pub fn stray(&self) -> u64 {
        self.shared.stray.load(Ordering::Relaxed)
    }

    pub fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
