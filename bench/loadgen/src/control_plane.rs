//! The control-plane benchmark, one run:
//!
//! 1. limit: a daemon on an empty data dir — its start-up, its idle memory, and N ConfigMap
//!    POSTs one after another (admission + durable store write, nothing to reconcile);
//! 2. a fresh daemon: N Services POSTed one after another (each waits for its 201), a watch on
//!    Services records when each is fully reconciled (status.observedGeneration ==
//!    metadata.generation and status.latestCreatedRevisionName set), then the lists prove every
//!    Configuration, Route and Revision `{name}-00001` is stored;
//! 3. on that daemon: sequential keep-alive GETs of one Service alternated with GETs of
//!    `/healthz` (the HTTP stack alone), LISTs of all Services, and its memory;
//! 4. SIGTERM, then restarts on the same data dir: time to the API answering, to the
//!    controller's "synced" line, until its CPU goes quiet, its memory, and whether the restart
//!    wrote anything.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;

use crate::daemon::{Daemon, Mem, dir_bytes};
use crate::http::Conn;
use crate::stats::{Summary, ms, summarize};

/// The control plane is measured alone: revisions become Ready at zero replicas, so no app
/// process starts (the data plane has its own benchmark).
fn zero_scale() -> Vec<String> {
    [
        "--autoscaler",
        "allow-zero-initial-scale=true",
        "--autoscaler",
        "initial-scale=0",
    ]
    .map(String::from)
    .to_vec()
}

const SERVICES: &str = "/apis/serving.knative.dev/v1/namespaces/default/services";
const CONFIGURATIONS: &str = "/apis/serving.knative.dev/v1/namespaces/default/configurations";
const ROUTES: &str = "/apis/serving.knative.dev/v1/namespaces/default/routes";
const REVISIONS: &str = "/apis/serving.knative.dev/v1/namespaces/default/revisions";
const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";
/// A real API read that works on an empty data dir too (the daemon creates `default`).
const PROBE: &str = "/api/v1/namespaces/default";

#[derive(Debug, Clone)]
pub struct Opts {
    pub bin: PathBuf,
    pub workdir: PathBuf,
    pub pidfile: Option<PathBuf>,
    /// Services (and ConfigMaps for the limit) to create.
    pub n: usize,
    /// GETs of each of the Service and /healthz.
    pub gets: usize,
    /// LISTs of all Services.
    pub lists: usize,
    pub restarts: usize,
}

/// Times from spawning `wisp serve`, in ms.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Startup {
    /// The first 200 to a GET of the `default` namespace.
    pub api_ms: f64,
    /// The "wisp is serving" line was read.
    pub serving_log_ms: f64,
    /// The "serving controller synced" line was read.
    pub synced_ms: f64,
    /// The daemon's own `startup_ms=` on its "wisp is serving" line.
    pub logged_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Restart {
    pub startup: Startup,
    /// Last change of the daemon's CPU time (10 ms ticks) before 500 ms of quiet: roughly when
    /// the controller finished re-reconciling everything.
    pub settle_ms: f64,
    /// CPU the daemon used from spawn to quiet.
    pub cpu_ms: f64,
    pub mem: Mem,
    /// Store writes the restart caused (resourceVersion after quiet minus before).
    pub writes: u64,
    pub shutdown_ms: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Run {
    pub n: usize,
    pub empty_startup: Startup,
    pub idle_mem: Mem,
    pub configmaps_ms: f64,
    pub configmap_post: Summary,
    /// First POST sent to the last 201 received.
    pub create_ms: f64,
    /// First POST sent to every Service reconciled and its children listed.
    pub reconciled_ms: f64,
    pub service_post: Summary,
    /// From a Service's 201 to the watch event showing it reconciled.
    pub reconcile_lag: Summary,
    /// Lists needed after the watch saw everything (1 = children were all there at once).
    pub verify_lists: u32,
    /// Daemon CPU (user + system) from the first POST to all reconciled.
    pub create_cpu_ms: f64,
    pub mem_reconciled: Mem,
    pub mem_after_reads: Mem,
    pub get_service: Summary,
    pub get_healthz: Summary,
    pub list_services: Summary,
    pub list_bytes: usize,
    pub service_bytes: usize,
    pub db_bytes: u64,
    pub shutdown_ms: f64,
    pub restarts: Vec<Restart>,
}

fn since(t: Instant, start: Instant) -> f64 {
    ms(t.saturating_duration_since(start))
}

fn service_body(name: &str) -> Bytes {
    Bytes::from(
        serde_json::json!({
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {"template": {"spec": {"containers": [
                {"command": ["python3", "-m", "http.server"]}
            ]}}}
        })
        .to_string(),
    )
}

fn configmap_body(name: &str) -> Bytes {
    Bytes::from(
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name},
            "data": {"key": "value"}
        })
        .to_string(),
    )
}

async fn post_created(conn: &mut Conn, path: &str, body: Bytes) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let (status, answer) = conn.send(Method::POST, path, Some(body)).await?;
    let took = t.elapsed();
    if status != StatusCode::CREATED {
        bail!(
            "POST {path}: {status}: {}",
            String::from_utf8_lossy(&answer)
        );
    }
    Ok(took)
}

async fn resource_version(conn: &mut Conn) -> anyhow::Result<u64> {
    let list = conn.get_json("/api/v1/namespaces").await?;
    list["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .context("a list without metadata.resourceVersion")
}

async fn startup(d: &mut Daemon) -> anyhow::Result<Startup> {
    let api = d.wait_answers(PROBE).await?;
    let synced = d.wait_synced().await?;
    Ok(Startup {
        api_ms: since(api, d.spawned),
        serving_log_ms: since(d.serving_at, d.spawned),
        synced_ms: since(synced, d.spawned),
        logged_ms: d.logged_startup_ms,
    })
}

/// When each Service was first seen reconciled on the watch.
type Seen = Arc<Mutex<HashMap<String, Instant>>>;

fn reconciled(obj: &Value) -> Option<&str> {
    let generation = obj["metadata"]["generation"].as_u64()?;
    let status = &obj["status"];
    let created = status["latestCreatedRevisionName"].as_str()?;
    (status["observedGeneration"].as_u64()? == generation && !created.is_empty())
        .then(|| obj["metadata"]["name"].as_str())
        .flatten()
}

async fn follow_watch(mut body: Incoming, seen: Seen, count: watch::Sender<usize>) {
    let mut buf: Vec<u8> = Vec::new();
    while let Some(Ok(frame)) = body.frame().await {
        let at = Instant::now();
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        while let Some(end) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            let Ok(event) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            if let Some(name) = reconciled(&event["object"]) {
                let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                seen.entry(name.to_owned()).or_insert(at);
                count.send_replace(seen.len());
            }
        }
    }
}

/// Names missing among the children of Services `s1..=sN`.
async fn missing_children(conn: &mut Conn, n: usize) -> anyhow::Result<usize> {
    let names = |list: Value| -> HashSet<String> {
        list["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i["metadata"]["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let configurations = names(conn.get_json(CONFIGURATIONS).await?);
    let routes = names(conn.get_json(ROUTES).await?);
    let revisions = names(conn.get_json(REVISIONS).await?);
    Ok((1..=n)
        .map(|i| {
            let s = format!("s{i}");
            usize::from(!configurations.contains(&s))
                + usize::from(!routes.contains(&s))
                + usize::from(!revisions.contains(&format!("{s}-00001")))
        })
        .sum())
}

async fn timed_gets(conn: &mut Conn, path: &str, count: usize) -> anyhow::Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let t = Instant::now();
        let (status, body) = conn.get(path).await?;
        out.push(t.elapsed());
        if status != StatusCode::OK {
            bail!("GET {path}: {status}: {}", String::from_utf8_lossy(&body));
        }
    }
    Ok(out)
}

/// Samples the daemon's CPU time until it has not moved for `quiet`.
async fn settle(d: &Daemon, quiet: Duration) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = d.cpu()?;
    let mut changed = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
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

pub async fn run_once(o: &Opts, index: usize) -> anyhow::Result<Run> {
    let mut run = Run {
        n: o.n,
        ..Run::default()
    };
    let pidfile = o.pidfile.as_deref();

    // 1. The limit: an empty daemon, and ConfigMaps (stored, never reconciled).
    let dir = o.workdir.join(format!("run{index}-limit"));
    let mut d = Daemon::spawn_with(&o.bin, &dir, pidfile, &zero_scale()).await?;
    run.empty_startup = startup(&mut d).await?;
    run.idle_mem = d.mem()?;
    let mut conn = Conn::connect(d.api).await?;
    let t0 = Instant::now();
    let mut posts = Vec::with_capacity(o.n);
    for i in 1..=o.n {
        let name = format!("cm{i}");
        posts.push(post_created(&mut conn, CONFIGMAPS, configmap_body(&name)).await?);
    }
    run.configmaps_ms = ms(t0.elapsed());
    run.configmap_post = summarize(&posts);
    drop(conn);
    d.stop().await?;

    // 2. N Services, one after another, until all are reconciled.
    let dir = o.workdir.join(format!("run{index}-services"));
    let mut d = Daemon::spawn_with(&o.bin, &dir, pidfile, &zero_scale()).await?;
    startup(&mut d).await?;
    let mut conn = Conn::connect(d.api).await?;
    let rv = conn.get_json(SERVICES).await?["metadata"]["resourceVersion"]
        .as_str()
        .context("no resourceVersion on the Service list")?
        .to_owned();
    let seen: Seen = Arc::default();
    let (count_tx, mut count) = watch::channel(0usize);
    let watch_body = Conn::connect(d.api)
        .await?
        .stream(&format!("{SERVICES}?watch=true&resourceVersion={rv}"))
        .await?;
    let watcher = tokio::spawn(follow_watch(watch_body, seen.clone(), count_tx));

    let cpu0 = d.cpu()?;
    let t0 = Instant::now();
    let mut created = Vec::with_capacity(o.n);
    let mut posts = Vec::with_capacity(o.n);
    for i in 1..=o.n {
        let name = format!("s{i}");
        posts.push(post_created(&mut conn, SERVICES, service_body(&name)).await?);
        created.push((name, Instant::now()));
    }
    let t_created = Instant::now();
    let all = tokio::time::timeout(Duration::from_secs(120), count.wait_for(|&c| c >= o.n))
        .await
        .is_ok_and(|r| r.is_ok());
    if !all {
        bail!(
            "only {} of {} Services reconciled within 120 s of the last POST:\n{}",
            *count.borrow(),
            o.n,
            d.log_tail()
        );
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap_or_else(|e| e.into_inner()));
    let mut done = seen.values().copied().max().unwrap_or(t_created);
    run.verify_lists = 1;
    while missing_children(&mut conn, o.n).await? > 0 {
        if done.elapsed() > Duration::from_secs(60) {
            bail!("children still missing 60 s after every Service reported reconciled");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        run.verify_lists += 1;
        done = Instant::now();
    }
    run.create_cpu_ms = ms(d.cpu()?.saturating_sub(cpu0));
    run.mem_reconciled = d.mem()?;
    watcher.abort();
    run.create_ms = since(t_created, t0);
    run.reconciled_ms = since(done, t0);
    run.service_post = summarize(&posts);
    let lags: Vec<Duration> = created
        .iter()
        .map(|(name, at)| seen[name].saturating_duration_since(*at))
        .collect();
    run.reconcile_lag = summarize(&lags);

    // 3. Reads: one Service alternated with /healthz, then whole lists.
    let one = format!("{SERVICES}/s{}", o.n.div_ceil(2));
    run.service_bytes = conn.get(&one).await?.1.len();
    timed_gets(&mut conn, &one, 200).await?;
    timed_gets(&mut conn, "/healthz", 200).await?;
    let rounds = 5.min(o.gets.max(1));
    let (mut svc, mut health) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        let k = o.gets / rounds + usize::from(r < o.gets % rounds);
        svc.extend(timed_gets(&mut conn, &one, k).await?);
        health.extend(timed_gets(&mut conn, "/healthz", k).await?);
    }
    run.get_service = summarize(&svc);
    run.get_healthz = summarize(&health);
    run.list_bytes = conn.get(SERVICES).await?.1.len();
    run.list_services = summarize(&timed_gets(&mut conn, SERVICES, o.lists).await?);
    run.mem_after_reads = d.mem()?;
    let mut rv_before = resource_version(&mut conn).await?;
    drop(conn);
    run.shutdown_ms = ms(d.stop().await?);
    run.db_bytes = dir_bytes(&dir);

    // 4. Restarts on the same data dir.
    for _ in 0..o.restarts {
        let mut d = Daemon::spawn_with(&o.bin, &dir, pidfile, &zero_scale()).await?;
        let startup = startup(&mut d).await?;
        let quiet = settle(&d, Duration::from_millis(500)).await?;
        let mut r = Restart {
            startup,
            settle_ms: since(quiet, d.spawned),
            cpu_ms: ms(d.cpu()?),
            mem: d.mem()?,
            ..Restart::default()
        };
        let mut conn = Conn::connect(d.api).await?;
        let (status, _) = conn.get(&one).await?;
        anyhow::ensure!(
            status == StatusCode::OK,
            "GET {one} after restart: {status}"
        );
        let rv = resource_version(&mut conn).await?;
        r.writes = rv.saturating_sub(rv_before);
        rv_before = rv;
        drop(conn);
        r.shutdown_ms = ms(d.stop().await?);
        run.restarts.push(r);
    }
    Ok(run)
}

/// Runs the benchmark `runs` times; each run is written to `out` as soon as it ends.
pub async fn run_all(o: &Opts, runs: usize, out: &Path) -> anyhow::Result<Vec<Run>> {
    let mut all = Vec::new();
    for i in 1..=runs {
        eprintln!("run {i}/{runs}: {} Services ...", o.n);
        let run = run_once(o, i).await.with_context(|| format!("run {i}"))?;
        eprintln!(
            "run {i}/{runs}: created {:.0} ms, all reconciled {:.0} ms, GET p50 {:.3} ms, RSS {} KiB, restart to synced {:.0} ms",
            run.create_ms,
            run.reconciled_ms,
            run.get_service.p50_ms,
            run.mem_reconciled.rss_kib,
            run.restarts
                .first()
                .map_or(f64::NAN, |r| r.startup.synced_ms),
        );
        all.push(run);
        std::fs::write(out, serde_json::to_string_pretty(&all)?)?;
    }
    Ok(all)
}
