//! Open-loop load at a fixed rate, every request timed from its arrival.
//!
//! A plain OS thread is the clock: it sleeps until each arrival (`std::thread::sleep`, tens of
//! microseconds late at worst, where tokio's timer wheel would round up to whole
//! milliseconds), reads the time and hands that instant to the next connection in turn. Each
//! connection task sends one request per arrival; if its previous request is still out, the
//! new one waits, and that wait is inside its latency (no coordinated omission: a slow answer
//! delays the requests behind it and they are counted late, as a real client would see them).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::StatusCode;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use crate::http::Conn;
use crate::stats::{Summary, summarize};

/// One open-loop run: its counts and every request's latency.
pub struct Run {
    pub sent: usize,
    pub errors: usize,
    pub wall: Duration,
    pub samples: Vec<Duration>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct OpenLoopResult {
    /// Requests per second asked for.
    pub rate: f64,
    pub connections: usize,
    pub sent: usize,
    pub errors: usize,
    /// Requests answered per second over the run.
    pub achieved_rps: f64,
    /// Arrival to the last byte of the answer, in ms.
    pub latency: Summary,
}

impl OpenLoopResult {
    /// Pools several runs at the same rate (e.g. slices alternated with other systems).
    pub fn pool(rate: f64, connections: usize, runs: &[Run]) -> OpenLoopResult {
        let samples: Vec<Duration> = runs
            .iter()
            .flat_map(|r| r.samples.iter().copied())
            .collect();
        let wall: Duration = runs.iter().map(|r| r.wall).sum();
        OpenLoopResult {
            rate,
            connections,
            sent: runs.iter().map(|r| r.sent).sum(),
            errors: runs.iter().map(|r| r.errors).sum(),
            achieved_rps: samples.len() as f64 / wall.as_secs_f64().max(1e-9),
            latency: summarize(&samples),
        }
    }
}

/// Sends `path` at `rate` requests per second for `duration` over `connections` keep-alive
/// connections to `addr` with `Host: host` (each warmed up with 3 untimed requests first).
pub async fn run(
    addr: SocketAddr,
    host: &str,
    path: &str,
    rate: f64,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Run> {
    anyhow::ensure!(
        rate > 0.0 && connections > 0,
        "rate and connections must be > 0"
    );
    let total = (rate * duration.as_secs_f64()).round().max(1.0) as usize;
    let mut senders = Vec::with_capacity(connections);
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let mut conn = Conn::connect_host(addr, host).await?;
        // Warm-up: the connection is open and every layer has seen a request.
        for _ in 0..3 {
            conn.get(path).await?;
        }
        let (tx, rx) = unbounded_channel::<Instant>();
        senders.push(tx);
        let path = path.to_owned();
        tasks.push(tokio::spawn(drive(conn, path, rx)));
    }
    let interval = Duration::from_secs_f64(1.0 / rate);
    let started = Instant::now();
    let clock = std::thread::spawn(move || {
        let start = Instant::now();
        for k in 0..total {
            let due = start + interval.mul_f64(k as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if senders[k % senders.len()].send(Instant::now()).is_err() {
                break;
            }
        }
    });
    let mut samples = Vec::with_capacity(total);
    let mut errors = 0;
    for t in tasks {
        let (s, e) = t.await?;
        samples.extend(s);
        errors += e;
    }
    let wall = started.elapsed();
    clock
        .join()
        .map_err(|_| anyhow::anyhow!("the clock thread panicked"))?;
    Ok(Run {
        sent: total,
        errors,
        wall,
        samples,
    })
}

async fn drive(
    mut conn: Conn,
    path: String,
    mut arrivals: UnboundedReceiver<Instant>,
) -> (Vec<Duration>, usize) {
    let mut samples = Vec::new();
    let mut errors = 0;
    while let Some(arrival) = arrivals.recv().await {
        match conn.get(&path).await {
            Ok((StatusCode::OK, _)) => samples.push(arrival.elapsed()),
            _ => errors += 1,
        }
    }
    (samples, errors)
}
