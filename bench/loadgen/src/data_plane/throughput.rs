//! Gateway vs the app called directly vs nginx, on one app process.
//!
//! One daemon, one Service pinned at one replica (min-scale = max-scale = 1, so the three
//! paths reach the very same process); its port is read from the replica's environment. Per
//! round, for each load, the three systems run one after another in a rotating order (A B C,
//! B C A, C A B), so drift of the shared machine spreads over all three.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::{Opts as AllOpts, create_service, service_body, wait_revisions};
use crate::daemon::{Daemon, cpu_time};
use crate::http::Conn;
use crate::nginx::Nginx;
use crate::openloop::{self, OpenLoopResult};
use crate::stats::ms;
use crate::wrk::{Load, Wrk, WrkResult};

pub const SERVICE: &str = "hello";
pub const SYSTEMS: [&str; 3] = ["direct", "wisp", "nginx"];

#[derive(Debug, Clone)]
pub struct Opts {
    pub rounds: usize,
    /// wrk's connections for the throughput runs.
    pub connections: Vec<usize>,
    pub wrk_threads: usize,
    pub duration: Duration,
    /// The one-connection (back-to-back) latency run.
    pub latency_duration: Duration,
    /// Open-loop rates, requests per second; the first is the one judged.
    pub rates: Vec<f64>,
    pub open_loop_connections: usize,
    pub open_loop_duration: Duration,
    /// The open-loop duration is cut into this many slices, alternated between the systems.
    pub open_loop_slices: usize,
    /// Diagnostic: run the app with its stdout sent to /dev/null (through `sh -c exec`), so
    /// the daemon has no per-request log line to collect.
    pub quiet_app: bool,
}

/// One wrk run and the CPU each process used during it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WrkSample {
    pub system: String,
    pub round: usize,
    pub connections: usize,
    pub result: WrkResult,
    pub app_cpu_ms: f64,
    pub daemon_cpu_ms: f64,
    pub nginx_cpu_ms: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpenLoopSample {
    pub system: String,
    pub round: usize,
    pub result: OpenLoopResult,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Throughput {
    pub rounds: usize,
    pub wrk_threads: usize,
    pub duration_s: f64,
    pub latency_duration_s: f64,
    pub open_loop_duration_s: f64,
    pub open_loop_connections: usize,
    #[serde(default)]
    pub open_loop_slices: usize,
    /// The app's stdout went to /dev/null instead of the daemon's log collection.
    #[serde(default)]
    pub quiet_app: bool,
    /// The daemon's tokio worker threads (one per CPU), and so nginx's worker processes.
    pub workers: usize,
    pub wrk: Vec<WrkSample>,
    /// One connection, back to back (wrk -c1).
    pub latency: Vec<WrkSample>,
    pub open_loop: Vec<OpenLoopSample>,
}

struct Target {
    addr: SocketAddr,
    host: String,
}

/// Rotates the systems' order by the round number.
fn order(round: usize) -> impl Iterator<Item = &'static str> {
    (0..SYSTEMS.len()).map(move |i| SYSTEMS[(i + round) % SYSTEMS.len()])
}

pub async fn run(o: &AllOpts) -> anyhow::Result<Throughput> {
    let t = &o.throughput;
    let dir = o.workdir.join("throughput");
    let mut d = Daemon::spawn_with(&o.bin, &dir.join("data"), o.pidfile.as_deref(), &[]).await?;
    d.wait_synced().await?;
    let gateway = d.gateway_addr()?;
    let mut api = Conn::connect(d.api).await?;
    let app_path = o.testapp.display().to_string();
    let command = if t.quiet_app {
        vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            "exec \"$0\" >/dev/null".to_owned(),
            app_path,
        ]
    } else {
        vec![app_path]
    };
    create_service(
        &mut api,
        service_body(
            SERVICE,
            &command,
            &[
                ("autoscaling.knative.dev/min-scale", "1"),
                ("autoscaling.knative.dev/max-scale", "1"),
            ],
            None,
        ),
    )
    .await?;
    let rev = format!("{SERVICE}-00001");
    wait_revisions(
        &mut api,
        std::slice::from_ref(&rev),
        |s| s.ready && s.actual == Some(1),
        Duration::from_secs(60),
        &d,
    )
    .await?;
    let replicas: Vec<_> = d
        .children()
        .into_iter()
        .filter(|c| c.service == SERVICE)
        .collect();
    anyhow::ensure!(
        replicas.len() == 1,
        "expected one replica of {SERVICE}, found {replicas:?}"
    );
    let app_pid = replicas[0].pid;
    let app_port = replicas[0].port.context("the replica has no PORT")?;
    let app = SocketAddr::from(([127, 0, 0, 1], app_port));
    // The daemon's runtime is tokio's default multi-thread one: one worker thread per CPU
    // (or TOKIO_WORKER_THREADS). Its blocking-pool threads carry the same thread name, so
    // the name cannot tell them apart.
    let workers = std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let nginx = Nginx::start(
        &o.nginx,
        &o.nginx_template,
        &dir.join("nginx"),
        app,
        workers,
        o.pidfile.as_deref(),
    )
    .await?;
    let host = format!("{SERVICE}.default.localhost");
    let target = |system: &str| match system {
        "direct" => Target {
            addr: app,
            host: host.clone(),
        },
        "wisp" => Target {
            addr: gateway,
            host: host.clone(),
        },
        _ => Target {
            addr: nginx.addr,
            host: host.clone(),
        },
    };
    // Every path answers before anything is timed.
    for system in SYSTEMS {
        let tg = target(system);
        let mut c = Conn::connect_host(tg.addr, &tg.host).await?;
        let (status, body) = c.get("/").await?;
        anyhow::ensure!(
            status.is_success() && body.starts_with(b"Hello"),
            "{system} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    drop(api);

    let wrk = Wrk::new(&o.wrk, &dir)?;
    let mut out = Throughput {
        rounds: t.rounds,
        wrk_threads: t.wrk_threads,
        duration_s: t.duration.as_secs_f64(),
        latency_duration_s: t.latency_duration.as_secs_f64(),
        open_loop_duration_s: t.open_loop_duration.as_secs_f64(),
        open_loop_connections: t.open_loop_connections,
        open_loop_slices: t.open_loop_slices,
        quiet_app: t.quiet_app,
        workers,
        ..Throughput::default()
    };
    let timed = |system: &'static str, round: usize, connections: usize, duration: Duration| {
        let tg = target(system);
        let wrk = &wrk;
        let nginx = &nginx;
        let daemon_pid = d.pid;
        async move {
            let url = format!("http://{}/", tg.addr);
            let cpu0 = (cpu_time(app_pid)?, cpu_time(daemon_pid)?, nginx.cpu());
            let result = wrk
                .run(&Load {
                    url: &url,
                    host: Some(&tg.host),
                    threads: t.wrk_threads.min(connections),
                    connections,
                    duration,
                })
                .await?;
            let cpu1 = (cpu_time(app_pid)?, cpu_time(daemon_pid)?, nginx.cpu());
            anyhow::Ok(WrkSample {
                system: system.to_owned(),
                round,
                connections,
                result,
                app_cpu_ms: ms(cpu1.0.saturating_sub(cpu0.0)),
                daemon_cpu_ms: ms(cpu1.1.saturating_sub(cpu0.1)),
                nginx_cpu_ms: ms(cpu1.2.saturating_sub(cpu0.2)),
            })
        }
    };
    for round in 0..t.rounds {
        for &c in &t.connections {
            for system in order(round) {
                let s = timed(system, round, c, t.duration).await?;
                eprintln!(
                    "  round {}: {system:6} wrk -t{} -c{c}: {:.0} req/s, p50 {:.3} ms, p99 {:.3} ms, errors {}",
                    round + 1,
                    t.wrk_threads.min(c),
                    s.result.rps,
                    s.result.p50_ms,
                    s.result.p99_ms,
                    s.result.errors
                );
                out.wrk.push(s);
            }
        }
        for system in order(round) {
            let s = timed(system, round, 1, t.latency_duration).await?;
            eprintln!(
                "  round {}: {system:6} wrk -c1: {:.0} req/s, p50 {:.3} ms, p99 {:.3} ms",
                round + 1,
                s.result.rps,
                s.result.p50_ms,
                s.result.p99_ms
            );
            out.latency.push(s);
        }
        // Open loop: short slices alternated between the systems, pooled per system, so a
        // burst of noise from the shared machine lands on all three alike.
        for &rate in &t.rates {
            let mut runs: Vec<Vec<openloop::Run>> = SYSTEMS.iter().map(|_| Vec::new()).collect();
            let slice = t
                .open_loop_duration
                .div_f64(t.open_loop_slices.max(1) as f64);
            for k in 0..t.open_loop_slices.max(1) {
                for system in order(round + k) {
                    let tg = target(system);
                    let run =
                        openloop::run(tg.addr, &tg.host, "/", rate, t.open_loop_connections, slice)
                            .await
                            .with_context(|| format!("open loop at {rate} req/s to {system}"))?;
                    let i = SYSTEMS.iter().position(|s| *s == system).unwrap_or(0);
                    runs[i].push(run);
                }
            }
            for (i, system) in SYSTEMS.iter().enumerate() {
                let result = OpenLoopResult::pool(rate, t.open_loop_connections, &runs[i]);
                eprintln!(
                    "  round {}: {system:6} open loop {rate:.0} req/s: p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, errors {}",
                    round + 1,
                    result.latency.p50_ms,
                    result.latency.p99_ms,
                    result.latency.p999_ms,
                    result.errors
                );
                out.open_loop.push(OpenLoopSample {
                    system: (*system).to_owned(),
                    round,
                    result,
                });
            }
        }
    }
    nginx.stop().await?;
    let mut api = Conn::connect(d.api).await?;
    // Still one replica: nothing above scaled the app (max-scale 1) or restarted it.
    let state = super::revision(&mut api, &rev).await?;
    anyhow::ensure!(
        d.children()
            .iter()
            .any(|c| c.pid == app_pid && c.service == SERVICE),
        "the app process {app_pid} went away during the run (revision: {state:?})"
    );
    drop(api);
    d.stop().await?;
    Ok(out)
}
