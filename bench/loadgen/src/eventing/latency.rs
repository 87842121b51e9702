//! Open loop at a fixed rate: ingress → delivery, and the ingress's own answer, against the
//! same load POSTed straight to the subscriber.
//!
//! As in `crate::openloop`: a plain OS thread is the clock (`std::thread::sleep`, not tokio's
//! millisecond timer wheel) and hands each scheduled send time to the next connection in turn;
//! that instant is what the event carries as its send time and where its answer's latency
//! starts, so an event waiting for its connection is counted late (no coordinated omission).
//! Each round cuts the time into slices alternated between the two systems, each slice a run
//! of its own, waited out at the subscriber before the next starts; a round's slices are
//! pooled per system.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use super::client::{EventConn, RunIds};
use super::sink::Sink;
use super::{Pcts, SYSTEMS, Targets, order, wait_delivered};

#[derive(Debug, Clone)]
pub struct Opts {
    pub rounds: usize,
    pub rate: f64,
    pub duration: Duration,
    pub slices: usize,
    pub connections: usize,
    pub drain: Duration,
}

/// One system in one round (its slices pooled).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Sample {
    pub system: String,
    pub round: usize,
    pub sent: u64,
    pub accepted: u64,
    pub errors: u64,
    /// Accepted events the subscriber did not get within the drain time.
    pub lost: u64,
    /// Deliveries beyond one per accepted event.
    pub duplicates: u64,
    /// Answers per second over the slices' wall time.
    pub achieved_per_s: f64,
    /// Scheduled send → the answer (the broker's 202; the subscriber's 200).
    pub answer: Pcts,
    /// Scheduled send → arrival at the subscriber.
    pub delivery: Pcts,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Latency {
    pub rounds: usize,
    pub rate: f64,
    pub duration_s: f64,
    pub slices: usize,
    pub connections: usize,
    pub samples: Vec<Sample>,
}

struct Slice {
    sent: u64,
    accepted: u64,
    errors: u64,
    wall: Duration,
    answers: Vec<u64>,
}

/// Sends `rate` events/s of `run` for `duration` over `connections` connections (each warmed
/// up with 3 events of run `warmup` first).
#[allow(clippy::too_many_arguments)]
async fn slice(
    addr: SocketAddr,
    path: &str,
    body: &Bytes,
    run: u32,
    warmup: u32,
    rate: f64,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Slice> {
    let total = (rate * duration.as_secs_f64()).round().max(1.0) as usize;
    let mut senders = Vec::with_capacity(connections);
    let mut tasks = Vec::with_capacity(connections);
    for i in 0..connections {
        let mut conn = EventConn::connect(addr, path, body.clone()).await?;
        for k in 0..3 {
            conn.post(warmup, ((i as u64) << 32) | k, Instant::now())
                .await?;
        }
        let (tx, rx) = unbounded_channel::<Instant>();
        senders.push(tx);
        tasks.push(tokio::spawn(drive(conn, run, i, rx)));
    }
    let interval = Duration::from_secs_f64(1.0 / rate);
    let started = Instant::now();
    let clock = std::thread::Builder::new()
        .name("bench-clock".into())
        .spawn(move || {
            let start = Instant::now();
            for k in 0..total {
                let due = start + interval.mul_f64(k as f64);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                if senders[k % senders.len()].send(due).is_err() {
                    break;
                }
            }
        })?;
    let mut out = Slice {
        sent: total as u64,
        accepted: 0,
        errors: 0,
        wall: Duration::ZERO,
        answers: Vec::with_capacity(total),
    };
    for t in tasks {
        let (answers, errors) = t.await?;
        out.accepted += answers.len() as u64;
        out.answers.extend(answers);
        out.errors += errors;
    }
    out.wall = started.elapsed();
    clock
        .join()
        .map_err(|_| anyhow::anyhow!("the clock thread panicked"))?;
    Ok(out)
}

async fn drive(
    mut conn: EventConn,
    run: u32,
    i: usize,
    mut arrivals: UnboundedReceiver<Instant>,
) -> (Vec<u64>, u64) {
    let mut answers = Vec::new();
    let mut errors = 0;
    let mut n: u64 = 0;
    while let Some(due) = arrivals.recv().await {
        n += 1;
        match conn.post(run, ((i as u64) << 32) | n, due).await {
            Ok(s) if s.is_success() => answers.push(due.elapsed().as_nanos() as u64),
            _ => errors += 1,
        }
    }
    (answers, errors)
}

pub async fn run(
    o: &Opts,
    sink: &Sink,
    targets: Targets<'_>,
    body: &Bytes,
    ids: &mut RunIds,
) -> anyhow::Result<Latency> {
    anyhow::ensure!(o.rate > 0.0, "the rate must be > 0");
    let mut out = Latency {
        rounds: o.rounds,
        rate: o.rate,
        duration_s: o.duration.as_secs_f64(),
        slices: o.slices,
        connections: o.connections,
        samples: Vec::new(),
    };
    let per_slice = o.duration.div_f64(o.slices as f64);
    for round in 0..o.rounds {
        let mut pooled: Vec<Sample> = SYSTEMS
            .iter()
            .map(|s| Sample {
                system: (*s).to_owned(),
                round,
                ..Sample::default()
            })
            .collect();
        let mut answers: Vec<Vec<u64>> = vec![Vec::new(); SYSTEMS.len()];
        let mut deliveries: Vec<Vec<u64>> = vec![Vec::new(); SYSTEMS.len()];
        let mut wall = [Duration::ZERO; SYSTEMS.len()];
        for k in 0..o.slices {
            for system in order(round + k) {
                let i = SYSTEMS.iter().position(|s| *s == system).unwrap_or(0);
                let (addr, path) = targets.of(system);
                let (run, warmup) = (ids.next(), ids.next());
                let s = slice(
                    addr,
                    path,
                    body,
                    run,
                    warmup,
                    o.rate,
                    o.connections,
                    per_slice,
                )
                .await?;
                // Waited out, so the next slice starts with nothing in flight.
                let _ = wait_delivered(sink, run, s.accepted, o.drain).await;
                let _ = wait_delivered(sink, warmup, 3 * o.connections as u64, o.drain).await;
                let log = sink.take(run);
                sink.take(warmup);
                let p = &mut pooled[i];
                p.sent += s.sent;
                p.accepted += s.accepted;
                p.errors += s.errors;
                p.lost += s.accepted.saturating_sub(log.count);
                p.duplicates += log.count.saturating_sub(s.accepted);
                answers[i].extend(s.answers);
                deliveries[i].extend(log.latencies_ns);
                wall[i] += s.wall;
            }
        }
        for (i, mut p) in pooled.into_iter().enumerate() {
            p.achieved_per_s = p.accepted as f64 / wall[i].as_secs_f64().max(1e-9);
            p.answer = Pcts::of_ns(&mut answers[i]);
            p.delivery = Pcts::of_ns(&mut deliveries[i]);
            eprintln!(
                "  round {}: {:6} {:.0} events/s: delivery p50 {:.3} / p90 {:.3} / p99 {:.3} / max {:.3} ms; answer p50 {:.3} / p99 {:.3} ms; errors {}, lost {}",
                round + 1,
                p.system,
                o.rate,
                p.delivery.p50_ms,
                p.delivery.p90_ms,
                p.delivery.p99_ms,
                p.delivery.max_ms,
                p.answer.p50_ms,
                p.answer.p99_ms,
                p.errors,
                p.lost
            );
            out.samples.push(p);
        }
    }
    Ok(out)
}
