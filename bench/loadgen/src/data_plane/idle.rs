//! A daemon holding many Services at zero replicas: its memory and CPU while nothing happens.
//!
//! The daemon runs with `--autoscaler allow-zero-initial-scale=true --autoscaler
//! initial-scale=0`, so every new revision becomes Ready without starting a replica. (The
//! per-revision annotation `autoscaling.knative.dev/initial-scale: "0"` would be the Knative
//! way, but wisp's admission does not see the daemon's `allow-zero-initial-scale` and refuses
//! it; see the report.) The same daemon then serves the cold-start trials (`cold.rs`).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Opts as AllOpts, create_service, service_body, wait_revisions};
use crate::daemon::{Daemon, Mem};
use crate::http::Conn;
use crate::stats::ms;

#[derive(Debug, Clone)]
pub struct Opts {
    pub services: usize,
    /// How long CPU is sampled once the daemon is quiet.
    pub window: Duration,
}

pub const ZERO_FLAGS: [&str; 4] = [
    "--autoscaler",
    "allow-zero-initial-scale=true",
    "--autoscaler",
    "initial-scale=0",
];

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Idle {
    pub services: usize,
    pub flags: Vec<String>,
    /// The daemon before any Service.
    pub empty_mem: Mem,
    /// First POST to every revision Ready at zero.
    pub ready_ms: f64,
    /// Replica processes seen once all were Ready (must be 0).
    pub processes: usize,
    /// Quiet again after the creation (no CPU tick for 1 s), from the last revision Ready.
    pub settle_ms: f64,
    pub mem: Mem,
    pub window_s: f64,
    pub cpu_ms: f64,
    /// `cpu_ms` over the window, in % of one core.
    pub cpu_percent: f64,
}

/// Waits until the daemon's CPU time has not moved for `quiet` (at most 60 s).
async fn settle(d: &Daemon, quiet: Duration) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = d.cpu()?;
    let mut changed = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = Instant::now();
        let cpu = d.cpu()?;
        if cpu != last {
            last = cpu;
            changed = now;
        } else if now - changed >= quiet || now > deadline {
            return Ok(changed);
        }
    }
}

pub fn name(i: usize) -> String {
    format!("idle{i}")
}

pub async fn run_with_cold(o: &AllOpts) -> anyhow::Result<(Idle, super::cold::Cold)> {
    let n = o.idle.services.max(o.cold_trials);
    let flags: Vec<String> = ZERO_FLAGS.iter().map(|s| (*s).to_owned()).collect();
    let dir = o.workdir.join("idle");
    let mut d = Daemon::spawn_with(&o.bin, &dir.join("data"), o.pidfile.as_deref(), &flags).await?;
    d.wait_synced().await?;
    settle(&d, Duration::from_millis(500)).await?;
    let mut idle = Idle {
        services: n,
        flags: flags.clone(),
        empty_mem: d.mem()?,
        window_s: o.idle.window.as_secs_f64(),
        ..Idle::default()
    };
    let mut api = Conn::connect(d.api).await?;
    let command = vec![o.testapp.display().to_string()];
    let t0 = Instant::now();
    for i in 1..=n {
        create_service(&mut api, service_body(&name(i), &command, &[], None)).await?;
    }
    let revisions: Vec<String> = (1..=n).map(|i| format!("{}-00001", name(i))).collect();
    let ready = wait_revisions(
        &mut api,
        &revisions,
        |s| s.ready && s.actual == Some(0),
        Duration::from_secs(120),
        &d,
    )
    .await?;
    idle.ready_ms = ms(ready - t0);
    drop(api);
    idle.processes = d.children().len();
    anyhow::ensure!(
        idle.processes == 0,
        "{} replica processes running with every revision at zero",
        idle.processes
    );
    let quiet = settle(&d, Duration::from_secs(1)).await?;
    idle.settle_ms = ms(quiet.saturating_duration_since(ready));
    idle.mem = d.mem()?;
    let cpu0 = d.cpu()?;
    let w0 = Instant::now();
    tokio::time::sleep(o.idle.window).await;
    let cpu = d.cpu()?.saturating_sub(cpu0);
    let wall = w0.elapsed();
    idle.cpu_ms = ms(cpu);
    idle.cpu_percent = 100.0 * cpu.as_secs_f64() / wall.as_secs_f64();
    eprintln!(
        "  {n} Services at zero: RSS {:.1} MiB (empty daemon {:.1} MiB), CPU {:.0} ms over {:.0} s ({:.2} %)",
        idle.mem.rss_kib as f64 / 1024.0,
        idle.empty_mem.rss_kib as f64 / 1024.0,
        idle.cpu_ms,
        wall.as_secs_f64(),
        idle.cpu_percent
    );

    let cold = super::cold::run(o, &d).await?;
    d.stop().await?;
    Ok((idle, cold))
}
