//! The eventing benchmark: wisp's durable broker, from ingress to subscriber delivery,
//! against a plain HTTP POST loop to the same subscriber (the limit).
//!
//! One daemon, one Broker `default` and one Trigger on it whose subscriber is a URI: the
//! [`sink`], a hyper server of this tool on a thread of its own that answers 200 with an empty
//! body at once and records, per event, when it arrived. Every event this tool sends carries
//! its send time (`ce-sentns`, nanoseconds on this process's monotonic clock, see [`clock`])
//! and its run (`ce-benchrun`), which the broker passes through as CloudEvents extensions, so
//! ingress → delivery is exact: one clock, one process, counted per run.
//!
//! 1. `throughput`: closed loop, C keep-alive connections POSTing binary-mode events as fast
//!    as the broker answers 202, for T seconds; accepted/s at the ingress and delivered/s at
//!    the subscriber over the run after a warm-up, the backlog when the load stops and the time
//!    it takes to drain, the daemon's CPU (per thread, from /proc). Alternated in the same
//!    round with the same loop POSTing the same events straight to the subscriber.
//! 2. `latency`: open loop at a fixed rate (1,000 events/s), every event stamped with its
//!    scheduled send time: ingress → delivery and the ingress's own 202, against the same
//!    load POSTed straight to the subscriber; short slices alternated between the two.
//!
//! Nothing here judges by exit code: targets are marked met or not in the table.

pub mod client;
pub mod latency;
pub mod report;
pub mod sink;
pub mod throughput;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::daemon::Daemon;
use crate::http::Conn;

pub const BROKERS: &str = "/apis/eventing.knative.dev/v1/namespaces/default/brokers";
pub const TRIGGERS: &str = "/apis/eventing.knative.dev/v1/namespaces/default/triggers";
pub const BROKER: &str = "default";
pub const TRIGGER: &str = "bench";

/// The two systems every figure is measured on.
pub const SYSTEMS: [&str; 2] = ["wisp", "direct"];

#[derive(clap::Args)]
// The script's settings come first; options after its `--` override them.
#[command(args_override_self = true)]
pub struct Args {
    /// The `wisp` binary (a release build).
    #[arg(long)]
    bin: PathBuf,
    /// Scratch directory (removed by the script).
    #[arg(long)]
    workdir: PathBuf,
    /// File to append the daemon's pid to, for the script's clean-up trap.
    #[arg(long)]
    pidfile: Option<PathBuf>,
    /// Quick run (CI): figures are printed but never judged.
    #[arg(long)]
    quick: bool,
    /// Only these parts (throughput, latency), comma-separated; all by default.
    #[arg(long, value_delimiter = ',')]
    parts: Vec<String>,
    /// Rounds of wisp / direct.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Concurrent keep-alive connections of the closed-loop runs.
    #[arg(long, default_value = "16,64,256", value_parser = crate::list::<usize>)]
    connections: std::vec::Vec<usize>,
    /// Length of each closed-loop run, warm-up included.
    #[arg(long, default_value_t = 10.0)]
    duration_secs: f64,
    /// The start of each closed-loop run left out of its rates.
    #[arg(long, default_value_t = 2.0)]
    warmup_secs: f64,
    /// Longest wait for the broker's backlog to reach the subscriber after a run.
    #[arg(long, default_value_t = 120.0)]
    drain_secs: f64,
    /// Open-loop rate (events/s), judged against the latency target.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Per system and round, cut into --latency-slices slices alternated between systems.
    #[arg(long, default_value_t = 10.0)]
    latency_secs: f64,
    #[arg(long, default_value_t = 5)]
    latency_slices: usize,
    #[arg(long, default_value_t = 16)]
    open_loop_connections: usize,
    /// Bytes of each event's JSON data.
    #[arg(long, default_value_t = 100)]
    body_bytes: usize,
    /// Give up (and stop everything) after this long.
    #[arg(long, default_value_t = 1200)]
    deadline_secs: u64,
    #[arg(long)]
    json: PathBuf,
    /// Write the section into this Markdown file (full runs only).
    #[arg(long)]
    benchmarks_md: Option<PathBuf>,
    #[command(flatten)]
    meta: crate::report::Meta,
}

/// The one clock of the benchmark: nanoseconds since a fixed instant of this process. The
/// sender stamps events with it and the subscriber reads it on arrival, so their difference
/// is exact (monotonic, same process; no wall clock involved).
pub mod clock {
    use std::sync::OnceLock;
    use std::time::Instant;

    static BASE: OnceLock<Instant> = OnceLock::new();

    fn base() -> Instant {
        *BASE.get_or_init(Instant::now)
    }

    /// Fixes the base (call once, before anything is stamped).
    pub fn start() {
        base();
    }

    pub fn ns_of(t: Instant) -> u64 {
        t.saturating_duration_since(base()).as_nanos() as u64
    }

    pub fn now_ns() -> u64 {
        ns_of(Instant::now())
    }
}

/// Latency percentiles in milliseconds (nearest rank over every sample).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Pcts {
    pub count: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Pcts {
    pub fn of_ns(samples: &mut [u64]) -> Pcts {
        samples.sort_unstable();
        let n = samples.len();
        let at = |p: f64| -> f64 {
            if n == 0 {
                return f64::NAN;
            }
            let idx = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
            samples[idx] as f64 / 1e6
        };
        Pcts {
            count: n,
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: at(1.0),
            mean_ms: if n == 0 {
                f64::NAN
            } else {
                samples.iter().map(|&v| v as f64).sum::<f64>() / n as f64 / 1e6
            },
        }
    }
}

/// How the setup went.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Setup {
    /// `status.address.url` of the broker.
    pub broker_url: String,
    /// POST Broker → Ready.
    pub broker_ready_ms: f64,
    /// POST Trigger → Ready.
    pub trigger_ready_ms: f64,
    /// Times the Broker or the Trigger had to be rewritten before the event plane saw it
    /// (see [`wait_ready`]); its Ready time then includes the wait.
    #[serde(default)]
    pub nudges: u32,
    /// The daemon's tokio worker threads.
    pub workers: usize,
}

/// Everything one invocation measured (also written as JSON).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Results {
    pub quick: bool,
    pub body_bytes: usize,
    pub setup: Setup,
    pub throughput: Option<throughput::Throughput>,
    pub latency: Option<latency::Latency>,
    /// The event log's files at the end (the SQLite file, its WAL and shared memory).
    pub eventlog_bytes: u64,
    /// The daemon's RSS at the end, in KiB.
    pub daemon_rss_kib: u64,
    pub daemon_hwm_kib: u64,
    /// Deliveries the subscriber got that belonged to no run of this tool.
    pub stray: u64,
}

fn ready(obj: &Value) -> bool {
    obj["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

async fn create(conn: &mut Conn, path: &str, body: Value) -> anyhow::Result<()> {
    let (status, answer) = conn
        .send(Method::POST, path, Some(Bytes::from(body.to_string())))
        .await?;
    if status != StatusCode::CREATED {
        bail!(
            "POST {path}: {status}: {}",
            String::from_utf8_lossy(&answer)
        );
    }
    Ok(())
}

/// Polls `path` every 2 ms until its Ready condition is True; returns the object and how
/// many times it had to be nudged.
///
/// The nudge works around a start-up race of the event plane (seen on 2026-11-24): its first
/// pass lists each kind in turn and then watches from the highest resource version it read,
/// so an object created while that pass runs, after its own kind was listed, is never seen
/// until something else changes. An object with no status at all after a second is
/// rewritten with a label, which the event plane does see; the table reports every nudge.
async fn wait_ready(conn: &mut Conn, path: &str, d: &Daemon) -> anyhow::Result<(Value, u32)> {
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(60);
    let mut nudges = 0;
    loop {
        let (status, body) = conn.get(path).await?;
        let obj: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if status == StatusCode::OK && ready(&obj) {
            return Ok((obj, nudges));
        }
        if status == StatusCode::OK
            && obj.get("status").is_none()
            && t0.elapsed() > Duration::from_secs(1 + u64::from(nudges))
            && nudges < 3
        {
            nudges += 1;
            eprintln!(
                "  {path}: no status after {:?}; nudging it with a label",
                t0.elapsed()
            );
            let mut obj = obj.clone();
            obj["metadata"]["labels"]["bench.wisp.dev/nudge"] = json!(nudges.to_string());
            let (s, b) = conn
                .send(Method::PUT, path, Some(Bytes::from(obj.to_string())))
                .await?;
            anyhow::ensure!(
                s.is_success(),
                "PUT {path}: {s}: {}",
                String::from_utf8_lossy(&b)
            );
        }
        if Instant::now() > deadline {
            bail!(
                "{path} not Ready within 60 s; GET: {status}: {}\n{}",
                String::from_utf8_lossy(&body),
                d.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Applies the Broker and the Trigger to `sink`; returns the setup and the broker's path.
async fn setup(d: &Daemon, sink: &sink::Sink) -> anyhow::Result<(Setup, String)> {
    let mut api = Conn::connect(d.api).await?;
    let t0 = Instant::now();
    create(
        &mut api,
        BROKERS,
        json!({
            "apiVersion": "eventing.knative.dev/v1",
            "kind": "Broker",
            "metadata": {"name": BROKER, "namespace": "default"}
        }),
    )
    .await?;
    let (broker, broker_nudges) = wait_ready(&mut api, &format!("{BROKERS}/{BROKER}"), d).await?;
    let broker_ready_ms = t0.elapsed().as_secs_f64() * 1e3;
    let url = broker["status"]["address"]["url"]
        .as_str()
        .context("the Ready broker has no status.address.url")?
        .to_owned();
    let events = d.events_addr()?;
    let path = url
        .strip_prefix(&format!("http://{events}"))
        .with_context(|| format!("the broker's URL {url} is not on the ingress {events}"))?
        .to_owned();
    let t1 = Instant::now();
    create(
        &mut api,
        TRIGGERS,
        json!({
            "apiVersion": "eventing.knative.dev/v1",
            "kind": "Trigger",
            "metadata": {"name": TRIGGER, "namespace": "default"},
            "spec": {
                "broker": BROKER,
                "subscriber": {"uri": format!("http://{}/", sink.addr)}
            }
        }),
    )
    .await?;
    let (_, trigger_nudges) = wait_ready(&mut api, &format!("{TRIGGERS}/{TRIGGER}"), d).await?;
    let trigger_ready_ms = t1.elapsed().as_secs_f64() * 1e3;
    // The daemon's runtime is tokio's default multi-thread one: one worker per CPU.
    let workers = std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    Ok((
        Setup {
            broker_url: url,
            broker_ready_ms,
            trigger_ready_ms,
            nudges: broker_nudges + trigger_nudges,
            workers,
        },
        path,
    ))
}

/// Where each system's events go.
#[derive(Debug, Clone, Copy)]
pub struct Targets<'a> {
    pub broker: (std::net::SocketAddr, &'a str),
    pub direct: (std::net::SocketAddr, &'a str),
}

impl Targets<'_> {
    pub fn of(&self, system: &str) -> (std::net::SocketAddr, &str) {
        if system == "wisp" {
            self.broker
        } else {
            self.direct
        }
    }
}

/// Rotates the systems' order by `k`.
pub fn order(k: usize) -> impl Iterator<Item = &'static str> {
    (0..SYSTEMS.len()).map(move |i| SYSTEMS[(i + k) % SYSTEMS.len()])
}

/// Waits until the subscriber has `want` deliveries of `run`, polling every 2 ms, for at most
/// `timeout`; returns when the last of them arrived (the sink's clock) if they all did.
pub async fn wait_delivered(
    sink: &sink::Sink,
    run: u32,
    want: u64,
    timeout: Duration,
) -> Option<u64> {
    let deadline = Instant::now() + timeout;
    loop {
        let (count, last_ns) = sink.progress(run);
        if count >= want {
            return Some(last_ns);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// CPU time (user + system) of each thread of `pid`, summed by thread name (`comm`).
pub fn thread_cpu(pid: u32) -> BTreeMap<String, Duration> {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let hz = *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    });
    let mut out = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.filter_map(Result::ok) {
        let Ok(text) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (text.find('('), text.rfind(')')) else {
            continue;
        };
        let comm = text[open + 1..close].to_owned();
        let f: Vec<&str> = text[close + 1..].split_whitespace().collect();
        let ticks = f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
            + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        *out.entry(comm).or_insert(Duration::ZERO) += Duration::from_micros(ticks * 1_000_000 / hz);
    }
    out
}

/// `after − before` per thread name, in ms (threads that ended in between are not counted).
pub fn cpu_delta(
    before: &BTreeMap<String, Duration>,
    after: &BTreeMap<String, Duration>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| {
            let b = before.get(k).copied().unwrap_or_default();
            (k.clone(), v.saturating_sub(b).as_secs_f64() * 1e3)
        })
        .collect()
}

fn runs(parts: &[String], part: &str) -> bool {
    parts.is_empty() || parts.iter().any(|p| p == part)
}

async fn run(a: &Args) -> anyhow::Result<Results> {
    for p in &a.parts {
        anyhow::ensure!(
            ["throughput", "latency"].contains(&p.as_str()),
            "unknown part {p:?} (throughput, latency)"
        );
    }
    clock::start();
    let mut res = Results {
        quick: a.quick,
        body_bytes: a.body_bytes,
        ..Results::default()
    };
    let save = |res: &Results| -> anyhow::Result<()> {
        std::fs::write(&a.json, serde_json::to_string_pretty(res)?)?;
        Ok(())
    };
    let sink = sink::Sink::start().context("the subscriber")?;
    let data = a.workdir.join("data");
    let mut d = Daemon::spawn_with(&a.bin, &data, a.pidfile.as_deref(), &[]).await?;
    d.wait_synced().await?;
    let (setup, path) = setup(&d, &sink).await.context("broker and trigger")?;
    eprintln!(
        "broker Ready in {:.0} ms at {}, trigger Ready in {:.0} ms; subscriber at {}",
        setup.broker_ready_ms, setup.broker_url, setup.trigger_ready_ms, sink.addr
    );
    res.setup = setup;
    let targets = Targets {
        broker: (d.events_addr()?, path.as_str()),
        direct: (sink.addr, "/"),
    };
    let body = client::body(a.body_bytes);
    let mut runs_ids = client::RunIds::default();

    // Both paths deliver before anything is timed.
    for system in SYSTEMS {
        let (addr, path) = targets.of(system);
        let run = runs_ids.next();
        let mut c = client::EventConn::connect(addr, path, body.clone()).await?;
        let status = c.post(run, 0, Instant::now()).await?;
        anyhow::ensure!(status.is_success(), "{system} answered {status}");
        if wait_delivered(&sink, run, 1, Duration::from_secs(10))
            .await
            .is_none()
        {
            bail!(
                "the event sent to {system} did not reach the subscriber within 10 s:\n{}",
                d.log_tail()
            );
        }
    }

    if runs(&a.parts, "throughput") {
        let o = throughput::Opts {
            rounds: a.rounds.max(1),
            connections: a.connections.clone(),
            duration: Duration::from_secs_f64(a.duration_secs),
            warmup: Duration::from_secs_f64(a.warmup_secs.min(a.duration_secs / 2.0)),
            drain: Duration::from_secs_f64(a.drain_secs),
        };
        eprintln!("throughput: closed loop, wisp's broker vs POSTs straight to the subscriber ...");
        res.throughput = Some(
            throughput::run(&o, &d, &sink, targets, &body, &mut runs_ids)
                .await
                .context("throughput")?,
        );
        save(&res)?;
    }
    if runs(&a.parts, "latency") {
        let o = latency::Opts {
            rounds: a.rounds.max(1),
            rate: a.rate,
            duration: Duration::from_secs_f64(a.latency_secs),
            slices: a.latency_slices.max(1),
            connections: a.open_loop_connections.max(1),
            drain: Duration::from_secs_f64(a.drain_secs),
        };
        eprintln!(
            "latency: open loop at {} events/s, wisp's broker vs POSTs straight to the subscriber ...",
            a.rate
        );
        res.latency = Some(
            latency::run(&o, &sink, targets, &body, &mut runs_ids)
                .await
                .context("latency")?,
        );
        save(&res)?;
    }
    res.eventlog_bytes = crate::daemon::dir_bytes(&data);
    if let Ok(m) = d.mem() {
        res.daemon_rss_kib = m.rss_kib;
        res.daemon_hwm_kib = m.hwm_kib;
    }
    res.stray = sink.stray();
    save(&res)?;
    d.stop().await?;
    sink.stop();
    Ok(res)
}

/// `wisp-loadgen eventing`.
pub async fn main(a: Args) -> anyhow::Result<()> {
    let res = tokio::time::timeout(Duration::from_secs(a.deadline_secs), run(&a))
        .await
        .map_err(|_| anyhow::anyhow!("gave up after {} s (--deadline-secs)", a.deadline_secs))??;
    println!("{}", report::table(&res, a.quick));
    if let Some(md) = &a.benchmarks_md {
        report::splice(md, &res, &a.meta)?;
        eprintln!("wrote the eventing section of {}", md.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut v: Vec<u64> = (1..=1000).map(|ms| ms * 1_000_000).collect();
        let p = Pcts::of_ns(&mut v);
        assert_eq!(p.p50_ms, 500.0);
        assert_eq!(p.p90_ms, 900.0);
        assert_eq!(p.p99_ms, 990.0);
        assert_eq!(p.max_ms, 1000.0);
        assert!(Pcts::of_ns(&mut []).p99_ms.is_nan());
    }

    #[test]
    fn own_threads_are_found_by_name() {
        let cpu = thread_cpu(std::process::id());
        assert!(!cpu.is_empty());
    }
}
