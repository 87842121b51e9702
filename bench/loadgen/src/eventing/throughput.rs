//! Closed loop: C connections POSTing events as fast as they are answered, to the broker and,
//! alternately in the same round, straight to the subscriber (the limit).
//!
//! A run lasts T seconds. Its rates are taken between two snapshots, after the warm-up and at
//! the end (accepted by the target, delivered to the subscriber, CPU per thread of the daemon
//! and of this tool); then the load stops, and the backlog (accepted − delivered) is waited out
//! and timed, so each run starts with nothing of the previous one in flight.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::client::{EventConn, RunIds};
use super::sink::{self, Sink};
use super::{Pcts, Targets, clock, cpu_delta, order, thread_cpu, wait_delivered};
use crate::daemon::{Daemon, cpu_time};

#[derive(Debug, Clone)]
pub struct Opts {
    pub rounds: usize,
    pub connections: Vec<usize>,
    pub duration: Duration,
    pub warmup: Duration,
    pub drain: Duration,
}

/// One closed-loop run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Sample {
    pub system: String,
    pub round: usize,
    pub connections: usize,
    /// The measured window (after the warm-up), s.
    pub window_s: f64,
    /// Answered 2xx per second in the window (the broker's 202s; the subscriber's 200s).
    pub accepted_per_s: f64,
    /// Deliveries per second the subscriber got in the window.
    pub delivered_per_s: f64,
    /// Over the whole run, warm-up included.
    pub accepted: u64,
    pub errors: u64,
    /// Accepted − delivered when the load stopped.
    pub backlog_at_stop: u64,
    /// Load stopped → the last accepted event delivered (`None`: not within the drain time).
    pub drain_ms: Option<f64>,
    /// Deliveries in all (after the drain); more than `accepted` means duplicates.
    pub delivered: u64,
    /// Send → answer of every request.
    pub answer: Pcts,
    /// Send → arrival at the subscriber of every delivery.
    pub delivery: Pcts,
    /// In the window: the daemon's CPU (utime + stime, whole process), ms.
    pub daemon_cpu_ms: f64,
    /// The same by thread name (threads that ended during the window are missing here).
    pub daemon_threads_ms: BTreeMap<String, f64>,
    /// This tool in the window: the sending thread(s) and the subscriber's thread, ms.
    pub client_cpu_ms: f64,
    pub sink_cpu_ms: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Throughput {
    pub rounds: usize,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub samples: Vec<Sample>,
}

struct Snap {
    at: Instant,
    accepted: u64,
    delivered: u64,
    daemon: Duration,
    daemon_threads: BTreeMap<String, Duration>,
    own: BTreeMap<String, Duration>,
}

fn snap(d: &Daemon, sink: &Sink, run: u32, accepted: &AtomicU64) -> Snap {
    // Counts first and together, so the backlog is not skewed by the /proc reads.
    let accepted = accepted.load(Ordering::Relaxed);
    let delivered = sink.progress(run).0;
    let at = Instant::now();
    Snap {
        at,
        accepted,
        delivered,
        daemon: cpu_time(d.pid).unwrap_or_default(),
        daemon_threads: thread_cpu(d.pid),
        own: thread_cpu(std::process::id()),
    }
}

#[allow(clippy::too_many_arguments)]
async fn one(
    o: &Opts,
    d: &Daemon,
    sink: &Sink,
    targets: Targets<'_>,
    body: &Bytes,
    system: &str,
    round: usize,
    connections: usize,
    run: u32,
) -> anyhow::Result<Sample> {
    let (addr, path) = targets.of(system);
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        conns.push(EventConn::connect(addr, path, body.clone()).await?);
    }
    let accepted = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(connections);
    for (i, mut conn) in conns.into_iter().enumerate() {
        let (accepted, errors, stop) = (accepted.clone(), errors.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            let mut n: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let sent = Instant::now();
                match conn.post(run, ((i as u64) << 32) | n, sent).await {
                    Ok(s) if s.is_success() => {
                        answers.push(sent.elapsed().as_nanos() as u64);
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
            answers
        }));
    }
    tokio::time::sleep_until((t0 + o.warmup).into()).await;
    let a = snap(d, sink, run, &accepted);
    tokio::time::sleep_until((t0 + o.duration).into()).await;
    let b = snap(d, sink, run, &accepted);
    stop.store(true, Ordering::Relaxed);
    let stopped = clock::now_ns();
    let mut answers = Vec::new();
    for t in tasks {
        answers.extend(t.await?);
    }
    let total = accepted.load(Ordering::Relaxed);
    let drained = wait_delivered(sink, run, total, o.drain).await;
    let log = sink.take(run);
    let window = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
    let own = cpu_delta(&a.own, &b.own);
    let sink_cpu_ms = own.get(sink::THREAD).copied().unwrap_or(0.0);
    // The sending happens on this tool's main thread (its runtime has one).
    let client_cpu_ms = own
        .iter()
        .filter(|(k, _)| k.as_str() != sink::THREAD)
        .map(|(_, v)| v)
        .sum();
    let mut delivery = log.latencies_ns;
    Ok(Sample {
        system: system.to_owned(),
        round,
        connections,
        window_s: window,
        accepted_per_s: (b.accepted - a.accepted) as f64 / window,
        delivered_per_s: (b.delivered - a.delivered) as f64 / window,
        accepted: total,
        errors: errors.load(Ordering::Relaxed),
        backlog_at_stop: b.accepted.saturating_sub(b.delivered),
        drain_ms: drained.map(|last| last.saturating_sub(stopped) as f64 / 1e6),
        delivered: log.count,
        answer: Pcts::of_ns(&mut answers),
        delivery: Pcts::of_ns(&mut delivery),
        daemon_cpu_ms: b.daemon.saturating_sub(a.daemon).as_secs_f64() * 1e3,
        daemon_threads_ms: cpu_delta(&a.daemon_threads, &b.daemon_threads),
        client_cpu_ms,
        sink_cpu_ms,
    })
}

pub async fn run(
    o: &Opts,
    d: &Daemon,
    sink: &Sink,
    targets: Targets<'_>,
    body: &Bytes,
    ids: &mut RunIds,
) -> anyhow::Result<Throughput> {
    let mut out = Throughput {
        rounds: o.rounds,
        duration_s: o.duration.as_secs_f64(),
        warmup_s: o.warmup.as_secs_f64(),
        samples: Vec::new(),
    };
    for round in 0..o.rounds {
        for &c in &o.connections {
            for system in order(round) {
                let s = one(o, d, sink, targets, body, system, round, c, ids.next()).await?;
                eprintln!(
                    "  round {}: {system:6} -c{c}: accepted {:.0}/s, delivered {:.0}/s, backlog at stop {}, drained in {}, answer p50 {:.2} ms p99 {:.2} ms, delivery p50 {:.2} ms p99 {:.2} ms, daemon CPU {:.0} %, errors {}",
                    round + 1,
                    s.accepted_per_s,
                    s.delivered_per_s,
                    s.backlog_at_stop,
                    s.drain_ms
                        .map_or("(not within the drain time)".to_owned(), |v| format!(
                            "{v:.0} ms"
                        )),
                    s.answer.p50_ms,
                    s.answer.p99_ms,
                    s.delivery.p50_ms,
                    s.delivery.p99_ms,
                    100.0 * s.daemon_cpu_ms / (s.window_s * 1e3),
                    s.errors
                );
                out.samples.push(s);
            }
        }
    }
    Ok(out)
}
