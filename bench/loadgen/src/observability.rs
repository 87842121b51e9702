//! `wisp-loadgen observability`: what metrics, request logs and tracing cost the gateway.
//!
//! Two daemons run side by side for the whole run, each with the same test app pinned at one
//! replica: one with the defaults (per-request metrics and the request log on) and tracing
//! on (`--otlp-endpoint` pointing at a sink this process runs, which answers 200 to every
//! export: every request is a new sampled trace, so every request makes a span), one with
//! `--request-metrics off --request-log off` and no endpoint. wrk drives one at a time, alternating on/off
//! (then off/on the next round, so neither always runs second), and the figure is the ratio
//! of the two throughputs within each round; the median of those ratios is reported with its
//! spread. Afterwards the "on" daemon's `/metrics` must show the requests counted and the log
//! lines written, so a broken hook cannot pass for a cheap one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use serde::{Deserialize, Serialize};

use crate::daemon::Daemon;
use crate::data_plane::{create_service, service_body, wait_revisions};
use crate::http::Conn;
use crate::report::{Meta, splice_section};
use crate::stats::{median, min_max};
use crate::wrk::{Load, Wrk, WrkResult};

#[derive(clap::Args)]
#[command(args_override_self = true)]
pub struct Args {
    /// The `wisp` binary (a release build).
    #[arg(long)]
    bin: PathBuf,
    /// The `wisp-testapp` binary (a release build).
    #[arg(long)]
    testapp: PathBuf,
    /// Scratch directory (removed by the script).
    #[arg(long)]
    workdir: PathBuf,
    #[arg(long)]
    pidfile: Option<PathBuf>,
    #[arg(long, default_value = "wrk")]
    wrk: PathBuf,
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// wrk connection counts.
    #[arg(long, default_value = "16,64", value_parser = crate::list::<usize>)]
    connections: std::vec::Vec<usize>,
    #[arg(long, default_value_t = 1)]
    wrk_threads: usize,
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Quick run (CI): figures are printed but never judged.
    #[arg(long)]
    quick: bool,
    #[arg(long)]
    json: PathBuf,
    /// Write the section into this Markdown file.
    #[arg(long)]
    benchmarks_md: Option<PathBuf>,
    #[command(flatten)]
    meta: Meta,
}

const SERVICE: &str = "hello";
const SYSTEMS: [&str; 2] = ["on", "off"];
/// The target: with metrics and logs on, at least this share of the throughput.
const TARGET: f64 = 0.95;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    pub round: usize,
    pub connections: usize,
    pub system: String,
    pub wrk: WrkResult,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Results {
    pub rounds: usize,
    pub duration_s: f64,
    pub wrk_threads: usize,
    pub samples: Vec<Sample>,
    /// What the "on" daemon reported at the end.
    pub counted_requests: f64,
    pub log_lines: f64,
    pub log_dropped: f64,
    /// Spans the "on" daemon exported, and dropped (queue full or export failed).
    #[serde(default)]
    pub spans_exported: f64,
    #[serde(default)]
    pub spans_dropped: f64,
    /// Export requests the sink answered.
    #[serde(default)]
    pub exports_received: u64,
    pub rss_on_mib: f64,
    pub rss_off_mib: f64,
}

/// A daemon with the test app's Service ready behind its gateway.
async fn start(a: &Args, name: &str, flags: &[&str]) -> anyhow::Result<Daemon> {
    let flags: Vec<String> = flags.iter().map(|f| (*f).to_owned()).collect();
    let mut d = Daemon::spawn_with(
        &a.bin,
        &a.workdir.join(name).join("data"),
        a.pidfile.as_deref(),
        &flags,
    )
    .await?;
    d.wait_synced().await?;
    let mut api = Conn::connect(d.api).await?;
    // As given (the script's link in the workdir), so the script's clean-up finds its
    // processes.
    anyhow::ensure!(a.testapp.exists(), "no test app at {}", a.testapp.display());
    let testapp = &a.testapp;
    create_service(
        &mut api,
        service_body(
            SERVICE,
            &[testapp.display().to_string()],
            &[
                ("autoscaling.knative.dev/min-scale", "1"),
                ("autoscaling.knative.dev/max-scale", "1"),
            ],
            None,
        ),
    )
    .await?;
    wait_revisions(
        &mut api,
        &[format!("{SERVICE}-00001")],
        |s| s.ready && s.actual == Some(1),
        Duration::from_secs(60),
        &d,
    )
    .await?;
    let mut c = Conn::connect_host(d.gateway_addr()?, &host()).await?;
    let (status, body) = c.get("/").await?;
    anyhow::ensure!(
        status.is_success() && body.starts_with(b"Hello"),
        "{name}: the gateway answered {status}"
    );
    Ok(d)
}

fn host() -> String {
    format!("{SERVICE}.default.localhost")
}

/// The sum of every series of `name` in a metrics text.
fn total(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// An OTLP/HTTP sink: answers 200 `{}` to every request, counting them.
async fn otlp_sink() -> anyhow::Result<(std::net::SocketAddr, Arc<AtomicU64>)> {
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let count = Arc::new(AtomicU64::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let counted = counted.clone();
                    async move {
                        let _ = req.into_body().collect().await;
                        counted.fetch_add(1, Ordering::Relaxed);
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from_static(b"{}"),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((addr, count))
}

pub async fn main(a: Args) -> anyhow::Result<()> {
    let (sink, exports) = otlp_sink().await?;
    let endpoint = format!("http://{sink}");
    let on = start(&a, "on", &["--otlp-endpoint", &endpoint]).await?;
    let off = start(
        &a,
        "off",
        &["--request-metrics", "off", "--request-log", "off"],
    )
    .await?;
    let wrk = Wrk::new(&a.wrk, &a.workdir)?;
    let mut res = Results {
        rounds: a.rounds,
        duration_s: a.duration_secs as f64,
        wrk_threads: a.wrk_threads,
        ..Default::default()
    };
    let host = host();
    for round in 0..a.rounds {
        for &connections in &a.connections {
            let order: Vec<&str> = if round % 2 == 0 {
                SYSTEMS.to_vec()
            } else {
                SYSTEMS.iter().rev().copied().collect()
            };
            for system in order {
                let d = if system == "on" { &on } else { &off };
                let url = format!("http://{}/", d.gateway_addr()?);
                let r = wrk
                    .run(&Load {
                        url: &url,
                        host: Some(&host),
                        threads: a.wrk_threads,
                        connections,
                        duration: Duration::from_secs(a.duration_secs),
                    })
                    .await?;
                eprintln!(
                    "round {} -c{connections} {system}: {:.0} req/s, p50 {:.3} ms, p99 {:.3} ms, {} errors",
                    round + 1,
                    r.rps,
                    r.p50_ms,
                    r.p99_ms,
                    r.errors
                );
                res.samples.push(Sample {
                    round,
                    connections,
                    system: system.to_owned(),
                    wrk: r,
                });
            }
        }
    }
    // The hook was really on: every request counted, every line written or counted dropped.
    let mut api = Conn::connect(on.api).await?;
    let (_, body) = api.get("/metrics").await?;
    let text = String::from_utf8_lossy(&body);
    res.counted_requests = total(&text, "revision_request_count_total");
    res.log_lines = total(&text, "wisp_request_log_lines_total");
    res.log_dropped = total(&text, "wisp_request_log_dropped_total");
    res.spans_exported = total(&text, "wisp_spans_exported_total");
    res.spans_dropped = total(&text, "wisp_spans_dropped_total");
    res.exports_received = exports.load(Ordering::Relaxed);
    res.rss_on_mib = on.mem()?.rss_kib as f64 / 1024.0;
    res.rss_off_mib = off.mem()?.rss_kib as f64 / 1024.0;
    let sent: u64 = res
        .samples
        .iter()
        .filter(|s| s.system == "on")
        .map(|s| s.wrk.requests)
        .sum();
    eprintln!(
        "on: {sent} requests sent by wrk, {} counted, {} log lines written, {} dropped, {} spans exported in {} requests, {} dropped",
        res.counted_requests,
        res.log_lines,
        res.log_dropped,
        res.spans_exported,
        res.exports_received,
        res.spans_dropped
    );
    std::fs::write(&a.json, serde_json::to_vec_pretty(&res)?)?;
    on.stop().await?;
    off.stop().await?;
    println!("{}", table(&res, &a.connections, a.quick));
    if let Some(md) = &a.benchmarks_md {
        splice(md, &res, &a.connections, &a.meta)?;
        eprintln!("wrote the observability section of {}", md.display());
    }
    Ok(())
}

/// Per connection count: (on/off ratio median, min, max, on rps median, off rps median,
/// on p99 median, off p99 median).
struct Row {
    connections: usize,
    ratio: f64,
    spread: (f64, f64),
    on_rps: f64,
    off_rps: f64,
    on_p50: f64,
    off_p50: f64,
    on_p99: f64,
    off_p99: f64,
}

fn rows(r: &Results, connections: &[usize]) -> Vec<Row> {
    connections
        .iter()
        .map(|&c| {
            let of = |system: &str, round: usize| {
                r.samples
                    .iter()
                    .find(|s| s.connections == c && s.system == system && s.round == round)
                    .map(|s| s.wrk)
            };
            let pairs: Vec<(WrkResult, WrkResult)> = (0..r.rounds)
                .filter_map(|round| Some((of("on", round)?, of("off", round)?)))
                .collect();
            let ratios: Vec<f64> = pairs
                .iter()
                .map(|(on, off)| if off.rps > 0.0 { on.rps / off.rps } else { 0.0 })
                .collect();
            let m = |f: &dyn Fn(&(WrkResult, WrkResult)) -> f64| {
                median(&pairs.iter().map(f).collect::<Vec<_>>())
            };
            Row {
                connections: c,
                ratio: median(&ratios),
                spread: min_max(&ratios),
                on_rps: m(&|p| p.0.rps),
                off_rps: m(&|p| p.1.rps),
                on_p50: m(&|p| p.0.p50_ms),
                off_p50: m(&|p| p.1.p50_ms),
                on_p99: m(&|p| p.0.p99_ms),
                off_p99: m(&|p| p.1.p99_ms),
            }
        })
        .collect()
}

pub fn table(r: &Results, connections: &[usize], quick: bool) -> String {
    let mut s = String::from(
        "| wrk connections | req/s on | req/s off | on / off (median, spread) | target ≥ 0.95 | p50 on / off | p99 on / off |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for row in rows(r, connections) {
        let verdict = if quick {
            "(quick: not judged)"
        } else if row.ratio >= TARGET {
            "met"
        } else {
            "**missed**"
        };
        s.push_str(&format!(
            "| {} | {:.0} | {:.0} | **{:.3}** ({:.3}–{:.3}) | {verdict} | {:.3} / {:.3} ms | {:.3} / {:.3} ms |\n",
            row.connections,
            row.on_rps,
            row.off_rps,
            row.ratio,
            row.spread.0,
            row.spread.1,
            row.on_p50,
            row.off_p50,
            row.on_p99,
            row.off_p99,
        ));
    }
    let sent: u64 = r
        .samples
        .iter()
        .filter(|s| s.system == "on")
        .map(|s| s.wrk.requests)
        .sum();
    s.push_str(&format!(
        "\nDaemon with metrics, logs and tracing on, after the run: {:.0} requests counted in `revision_request_count` (wrk counted {sent} answers within its runs; the daemon also counts the warm-up request and those still in flight when a run stopped), {:.0} request-log lines written, {:.0} dropped because the writer fell behind; {:.0} spans exported over OTLP in {} requests to the sink, {:.0} dropped (queue full or export failed). RSS at the end: {:.1} MiB on, {:.1} MiB off.\n",
        r.counted_requests,
        r.log_lines,
        r.log_dropped,
        r.spans_exported,
        r.exports_received,
        r.spans_dropped,
        r.rss_on_mib,
        r.rss_off_mib
    ));
    s
}

const BEGIN: &str = "<!-- bench:observability:begin -->";
const END: &str = "<!-- bench:observability:end -->";
const HISTORY: &str = "### Observability history";

fn splice(path: &Path, r: &Results, connections: &[usize], meta: &Meta) -> anyhow::Result<()> {
    splice_section(path, BEGIN, END, HISTORY, |mut history| {
        let rows = rows(r, connections);
        let ratios: Vec<String> = rows
            .iter()
            .map(|row| format!("{:.3} (-c{})", row.ratio, row.connections))
            .collect();
        history.push(format!(
            "| {} | {} | {} | {} | {:.0} / {:.0} |",
            meta.date,
            meta.commit,
            meta.load,
            ratios.join(", "),
            r.log_lines,
            r.log_dropped
        ));
        let mut s = String::new();
        s.push_str(BEGIN);
        s.push_str("\n## Observability: metrics, request logs and tracing on vs off\n\n");
        s.push_str(&format!("Command: `{}`  \n", meta.command));
        s.push_str(&format!(
            "Date: {} · commit `{}` · nproc {} · CPU {} · kernel {} · {} · {} · load average at start {}\n\n",
            meta.date, meta.commit, meta.nproc, meta.cpu, meta.kernel, meta.rustc, meta.tools, meta.load
        ));
        s.push_str(&format!(
            "Setup: two daemons side by side on loopback, each running the test app (`wisp-testapp`) as the one replica of a Service pinned with `min-scale`/`max-scale` 1: **on** with the defaults (per-revision request metrics and the JSON request log in `DATA_DIR/logs/requests.log`) and tracing (`--otlp-endpoint` at a sink in the load generator answering 200; wrk sends no `traceparent`, so every request starts a sampled trace and its gateway span is exported), **off** with `--request-metrics off --request-log off` and no endpoint (`traceparent` is still propagated). wrk ({} thread, closed loop, keep-alive, {} s per run) drives one daemon at a time, on then off, then off then on the next round; the figure is the ratio of the two throughputs within a round, median over {} rounds, spread = min–max of the per-round ratios. Load generator, gateway and app share the 2 cores, as in the data-plane benchmark, so the ratio measures the extra CPU per request. Target (BENCH.md): on / off ≥ {TARGET}.\n\n",
            r.wrk_threads, r.duration_s, r.rounds
        ));
        s.push_str(&table(r, connections, false));
        s.push_str(&format!(
            "\n{HISTORY}\n\nOne line per full run of the command.\n\n\
             | date | commit | load at start | on / off req/s | log lines written / dropped |\n\
             | --- | --- | --- | --- | --- |\n"
        ));
        for h in &history {
            s.push_str(h);
            s.push('\n');
        }
        s.push_str(END);
        s.push('\n');
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_add_every_series_of_a_name_only() {
        let text = "# TYPE revision_request_count_total counter\n\
                    revision_request_count_total{response_code=\"200\"} 10\n\
                    revision_request_count_total{response_code=\"404\"} 2\n\
                    revision_request_count_totals 99\n\
                    wisp_request_log_lines_total 12\n";
        assert_eq!(total(text, "revision_request_count_total"), 12.0);
        assert_eq!(total(text, "wisp_request_log_lines_total"), 12.0);
        assert_eq!(total(text, "absent"), 0.0);
    }

    #[test]
    fn ratios_pair_systems_within_a_round() {
        let w = |rps| WrkResult {
            rps,
            ..Default::default()
        };
        let mut r = Results {
            rounds: 2,
            ..Default::default()
        };
        for (round, on, off) in [(0, 95.0, 100.0), (1, 99.0, 100.0)] {
            for (system, rps) in [("on", on), ("off", off)] {
                r.samples.push(Sample {
                    round,
                    connections: 16,
                    system: system.into(),
                    wrk: w(rps),
                });
            }
        }
        let rows = rows(&r, &[16]);
        assert!((rows[0].ratio - 0.97).abs() < 1e-9);
        assert_eq!(rows[0].spread, (0.95, 0.99));
    }
}
