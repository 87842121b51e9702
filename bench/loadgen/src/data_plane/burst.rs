//! Burst: many clients at once against a revision with a low target, replicas over time.
//!
//! A Service with `autoscaling.knative.dev/target: "10"` (containerConcurrency 0, so the
//! gateway queues nothing and the app answers every request in parallel) is created and
//! becomes Ready at its initial scale of 1. At once, C clients each loop `GET /?sleep=MS` on
//! their own keep-alive connection to the gateway. Every ~100 ms the revision's
//! `status.actualReplicas` / `desiredReplicas` are read from the API and the daemon's replica
//! processes counted. After the load, the clients stop and the same polling runs until the
//! revision is back at zero (status and processes).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::{Opts as AllOpts, create_service, revision, service_body, wait_revisions};
use crate::daemon::Daemon;
use crate::http::Conn;
use crate::stats::{Summary, ms, summarize};

pub const SERVICE: &str = "burst";

#[derive(Debug, Clone)]
pub struct Settings {
    pub label: String,
    /// `--autoscaler KEY=VALUE` pairs for the daemon (empty: Knative's defaults).
    pub autoscaler: Vec<String>,
    /// Longest wait for the way back to zero after the load.
    pub zero_deadline: Duration,
}

#[derive(Debug, Clone)]
pub struct Opts {
    pub clients: usize,
    pub sleep_ms: u64,
    pub load: Duration,
    pub target: u32,
    pub poll: Duration,
    pub settings: Vec<Settings>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Sample {
    /// Since the load started (negative: before), ms.
    pub t_ms: f64,
    pub actual: Option<i64>,
    pub desired: Option<i64>,
    pub processes: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Burst {
    pub label: String,
    pub autoscaler: Vec<String>,
    pub clients: usize,
    pub sleep_ms: u64,
    pub target: u32,
    pub load_ms: f64,
    /// During the load.
    pub samples: Vec<Sample>,
    /// From the moment the clients were told to stop.
    pub after: Vec<Sample>,
    pub requests: usize,
    pub errors: usize,
    pub latency: Summary,
    /// Load stopped → `actualReplicas` 0.
    pub zero_status_ms: Option<f64>,
    /// Load stopped → no replica process left.
    pub zero_processes_ms: Option<f64>,
}

impl Burst {
    /// The sample taken at `t_ms` (the last one no later than half a poll interval after it:
    /// samples drift a few ms past their 100 ms marks).
    pub fn at(&self, t_ms: f64) -> Option<Sample> {
        self.samples
            .iter()
            .rev()
            .find(|s| s.t_ms <= t_ms + 50.0)
            .copied()
    }

    /// First time `actualReplicas` reached `n`.
    pub fn reached(&self, n: i64) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.actual.unwrap_or(0) >= n)
            .map(|s| s.t_ms)
    }

    pub fn max_actual(&self) -> i64 {
        self.samples
            .iter()
            .filter_map(|s| s.actual)
            .max()
            .unwrap_or(0)
    }

    pub fn max_processes(&self) -> usize {
        self.samples.iter().map(|s| s.processes).max().unwrap_or(0)
    }
}

async fn sample(api: &mut Conn, d: &Daemon, rev: &str, t0: Instant) -> anyhow::Result<Sample> {
    let now = Instant::now();
    let state = revision(api, rev).await?;
    let processes = d.children().iter().filter(|c| c.service == SERVICE).count();
    Ok(Sample {
        t_ms: now.saturating_duration_since(t0).as_secs_f64() * 1e3,
        actual: state.actual,
        desired: state.desired,
        processes,
    })
}

async fn client(
    gateway: std::net::SocketAddr,
    path: String,
    stop: Arc<AtomicBool>,
) -> (Vec<Duration>, usize) {
    let host = format!("{SERVICE}.default.localhost");
    let mut samples = Vec::new();
    let mut errors = 0;
    let mut conn = None;
    while !stop.load(Ordering::Relaxed) {
        if conn.is_none() {
            match Conn::connect_host(gateway, &host).await {
                Ok(c) => conn = Some(c),
                Err(_) => {
                    errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let t = Instant::now();
        match c.get(&path).await {
            Ok((StatusCode::OK, _)) => samples.push(t.elapsed()),
            Ok(_) => errors += 1,
            Err(_) => {
                errors += 1;
                conn = None;
            }
        }
    }
    (samples, errors)
}

pub async fn run(o: &AllOpts, s: &Settings) -> anyhow::Result<Burst> {
    let b = &o.burst;
    let mut flags = Vec::new();
    for kv in &s.autoscaler {
        flags.push("--autoscaler".to_owned());
        flags.push(kv.clone());
    }
    let dir = o.workdir.join(format!(
        "burst-{}",
        s.label.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
    ));
    let mut d = Daemon::spawn_with(&o.bin, &dir.join("data"), o.pidfile.as_deref(), &flags).await?;
    d.wait_synced().await?;
    let gateway = d.gateway_addr()?;
    let mut api = Conn::connect(d.api).await?;
    let command = vec![o.testapp.display().to_string()];
    let target = b.target.to_string();
    create_service(
        &mut api,
        service_body(
            SERVICE,
            &command,
            &[("autoscaling.knative.dev/target", &target)],
            Some(0),
        ),
    )
    .await?;
    let rev = format!("{SERVICE}-00001");
    wait_revisions(
        &mut api,
        std::slice::from_ref(&rev),
        |st| st.ready && st.actual == Some(1),
        Duration::from_secs(60),
        &d,
    )
    .await?;
    let mut out = Burst {
        label: s.label.clone(),
        autoscaler: s.autoscaler.clone(),
        clients: b.clients,
        sleep_ms: b.sleep_ms,
        target: b.target,
        ..Burst::default()
    };

    let stop = Arc::new(AtomicBool::new(false));
    let path = format!("/?sleep={}", b.sleep_ms);
    let t0 = Instant::now();
    let clients: Vec<_> = (0..b.clients)
        .map(|_| tokio::spawn(client(gateway, path.clone(), stop.clone())))
        .collect();
    let mut next = t0;
    while t0.elapsed() < b.load {
        out.samples.push(sample(&mut api, &d, &rev, t0).await?);
        next += b.poll;
        tokio::time::sleep_until(next.into()).await;
    }
    stop.store(true, Ordering::Relaxed);
    let stopped = Instant::now();
    out.load_ms = ms(stopped - t0);
    let mut latencies = Vec::new();
    for c in clients {
        let (samples, errors) = c.await?;
        out.requests += samples.len();
        out.errors += errors;
        latencies.extend(samples);
    }
    out.latency = summarize(&latencies);
    let at4 = out.at(4000.0).and_then(|s| s.actual).unwrap_or(0);
    eprintln!(
        "  {} clients for {:.1} s: {} requests, {} errors, replicas (actual) at 1/2/4 s: {:?}/{:?}/{at4}, max {} (processes max {})",
        b.clients,
        out.load_ms / 1e3,
        out.requests,
        out.errors,
        out.at(1000.0).and_then(|s| s.actual),
        out.at(2000.0).and_then(|s| s.actual),
        out.max_actual(),
        out.max_processes()
    );

    let deadline = stopped + s.zero_deadline;
    let mut next = stopped;
    loop {
        let smp = sample(&mut api, &d, &rev, stopped).await?;
        out.after.push(smp);
        if out.zero_status_ms.is_none() && smp.actual == Some(0) {
            out.zero_status_ms = Some(smp.t_ms);
        }
        if out.zero_processes_ms.is_none() && smp.processes == 0 {
            out.zero_processes_ms = Some(smp.t_ms);
        }
        if (out.zero_status_ms.is_some() && out.zero_processes_ms.is_some())
            || Instant::now() > deadline
        {
            break;
        }
        next += b.poll;
        tokio::time::sleep_until(next.into()).await;
    }
    eprintln!(
        "  back to zero after the load: status {:?} ms, processes {:?} ms",
        out.zero_status_ms.map(|v| v.round()),
        out.zero_processes_ms.map(|v| v.round())
    );
    drop(api);
    d.stop().await?;
    Ok(out)
}
