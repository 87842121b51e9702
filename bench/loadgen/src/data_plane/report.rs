//! The data-plane results table and its BENCHMARKS.md section (between its own markers; the
//! control-plane section and anything else in the file stay as they are).

use std::path::Path;

use super::Results;
use super::burst::Burst;
use super::throughput::{SYSTEMS, Throughput};
use crate::report::{Meta, splice_section};
use crate::rows::{Row, Tally, render, verdict};
use crate::stats::{median, min_max};

pub const BEGIN: &str = "<!-- bench:data-plane:begin -->";
pub const END: &str = "<!-- bench:data-plane:end -->";
const HISTORY: &str = "### Data plane history";

/// The targets.
pub const RATIO_TARGET: f64 = 0.85;
pub const ADDED_P50_MS: f64 = 0.1;
pub const ADDED_P99_MS: f64 = 1.0;
pub const COLD_P50_MS: f64 = 5.0;
pub const COLD_P99_MS: f64 = 20.0;
pub const BURST_REPLICAS: i64 = 18;
pub const BURST_WITHIN_MS: f64 = 4000.0;
pub const IDLE_RSS_BYTES: f64 = 60e6;
/// "CPU ~0 %", judged as under half a percent of one core.
pub const IDLE_CPU_PERCENT: f64 = 0.5;

fn fmt(v: f64, digits: usize) -> String {
    if v.is_finite() {
        format!("{v:.digits$}")
    } else {
        "—".into()
    }
}

/// Thousands separated, for request rates.
fn rate(v: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    let n = v.round() as i64;
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// Values over rounds: "median" and "min–max".
struct Col(Vec<f64>);

impl Col {
    fn med(&self) -> f64 {
        median(&self.0)
    }
    fn spread(&self, digits: usize) -> String {
        if self.0.len() < 2 {
            return "—".into();
        }
        let (lo, hi) = min_max(&self.0);
        format!("{}–{}", fmt(lo, digits), fmt(hi, digits))
    }
    fn spread_rate(&self) -> String {
        if self.0.len() < 2 {
            return "—".into();
        }
        let (lo, hi) = min_max(&self.0);
        format!("{}–{}", rate(lo), rate(hi))
    }
}

/// Exact nearest-rank percentile of plain values.
fn pct(values: &[f64], p: f64) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let idx = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    v[idx]
}

fn wrk_col(
    t: &Throughput,
    system: &str,
    c: usize,
    f: impl Fn(&super::throughput::WrkSample) -> f64,
) -> Col {
    Col(t
        .wrk
        .iter()
        .filter(|s| s.system == system && s.connections == c)
        .map(f)
        .collect())
}

/// Per-round ratio of one system's figure to another's (alternated in the same round).
fn wrk_ratio(t: &Throughput, a: &str, b: &str, c: usize) -> Col {
    Col((0..t.rounds)
        .filter_map(|r| {
            let get = |sys: &str| {
                t.wrk
                    .iter()
                    .find(|s| s.system == sys && s.connections == c && s.round == r)
                    .map(|s| s.result.rps)
            };
            Some(get(a)? / get(b)?)
        })
        .collect())
}

fn lat_col(t: &Throughput, system: &str, f: impl Fn(&crate::wrk::WrkResult) -> f64) -> Col {
    Col(t
        .latency
        .iter()
        .filter(|s| s.system == system)
        .map(|s| f(&s.result))
        .collect())
}

fn ol_col(t: &Throughput, system: &str, r: f64, f: impl Fn(&crate::stats::Summary) -> f64) -> Col {
    Col(t
        .open_loop
        .iter()
        .filter(|s| s.system == system && s.result.rate == r)
        .map(|s| f(&s.result.latency))
        .collect())
}

/// Per-round difference `a − b` of an open-loop percentile.
fn ol_added(
    t: &Throughput,
    a: &str,
    b: &str,
    r: f64,
    f: impl Fn(&crate::stats::Summary) -> f64,
) -> Col {
    Col((0..t.rounds)
        .filter_map(|round| {
            let get = |sys: &str| {
                t.open_loop
                    .iter()
                    .find(|s| s.system == sys && s.result.rate == r && s.round == round)
                    .map(|s| f(&s.result.latency))
            };
            Some(get(a)? - get(b)?)
        })
        .collect())
}

fn throughput_rows(t: &Throughput, quick: bool, tally: &mut Tally, rows: &mut Vec<Row>) {
    let mut conns: Vec<usize> = t.wrk.iter().map(|s| s.connections).collect();
    conns.sort_unstable();
    conns.dedup();
    for &c in &conns {
        let rps = |sys: &str| wrk_col(t, sys, c, |s| s.result.rps);
        let (w, d, n) = (rps("wisp"), rps("direct"), rps("nginx"));
        let vs_direct = wrk_ratio(t, "wisp", "direct", c);
        let vs_nginx = wrk_ratio(t, "wisp", "nginx", c);
        let nginx_direct = wrk_ratio(t, "nginx", "direct", c);
        let ok_ratio = vs_direct.med() >= RATIO_TARGET;
        let ok_nginx = vs_nginx.med() > 1.0;
        let judged_ratio =
            !quick && tally.judge(&format!("throughput ≥ 0.85 × direct (-c{c})"), ok_ratio);
        let judged_nginx =
            !quick && tally.judge(&format!("throughput above nginx (-c{c})"), ok_nginx);
        let _ = (judged_ratio, judged_nginx);
        let errors: u64 = t
            .wrk
            .iter()
            .filter(|s| s.connections == c)
            .map(|s| s.result.errors)
            .sum();
        rows.push(
            Row::new(
                format!(
                    "Throughput, wrk -t{} -c{c}, {} s, keep-alive, `GET /` (13-byte body)",
                    t.wrk_threads.min(c),
                    fmt(t.duration_s, 0)
                ),
                format!("{} req/s", rate(w.med())),
            )
            .spread(w.spread_rate())
            .reference(format!(
                "direct (limit): {} req/s ({}) · nginx: {} req/s ({}) · **wisp / direct {}** ({}) · wisp / nginx {} ({}) · nginx / direct {}{}",
                rate(d.med()),
                d.spread_rate(),
                rate(n.med()),
                n.spread_rate(),
                fmt(vs_direct.med(), 2),
                vs_direct.spread(2),
                fmt(vs_nginx.med(), 2),
                vs_nginx.spread(2),
                fmt(nginx_direct.med(), 2),
                if errors > 0 { format!(" · {errors} errors") } else { String::new() }
            ))
            .target(
                "≥ 0.85 × direct, and above nginx",
                verdict(
                    ok_ratio && ok_nginx,
                    quick,
                    &format!(
                        "{} direct, {} nginx",
                        if ok_ratio { "≥ 0.85 ×" } else { "< 0.85 ×" },
                        if ok_nginx { "above" } else { "not above" }
                    ),
                ),
            ),
        );
        let p = |sys: &str, f: fn(&crate::wrk::WrkResult) -> f64| {
            wrk_col(t, sys, c, |s| f(&s.result)).med()
        };
        rows.push(
            Row::new(
                "… latency at that (saturating) load, p50 / p99",
                format!(
                    "{} / {} ms",
                    fmt(p("wisp", |r| r.p50_ms), 3),
                    fmt(p("wisp", |r| r.p99_ms), 3)
                ),
            )
            .spread(format!(
                "{} / {}",
                wrk_col(t, "wisp", c, |s| s.result.p50_ms).spread(3),
                wrk_col(t, "wisp", c, |s| s.result.p99_ms).spread(3)
            ))
            .reference(format!(
                "direct: {} / {} ms · nginx: {} / {} ms",
                fmt(p("direct", |r| r.p50_ms), 3),
                fmt(p("direct", |r| r.p99_ms), 3),
                fmt(p("nginx", |r| r.p50_ms), 3),
                fmt(p("nginx", |r| r.p99_ms), 3)
            )),
        );
        let per_req = |sys: &str, f: fn(&super::throughput::WrkSample) -> f64| {
            wrk_col(t, sys, c, |s| {
                1e3 * f(s) / (s.result.requests.max(1) as f64)
            })
            .med()
        };
        let pump = per_req("direct", |s| s.daemon_cpu_ms);
        rows.push(
            Row::new(
                "… CPU per request (µs): proxy + app + wisp daemon's other work",
                format!(
                    "daemon {} (gateway ≈ {} + log pump as in direct) + app {}",
                    fmt(per_req("wisp", |s| s.daemon_cpu_ms), 1),
                    fmt(per_req("wisp", |s| s.daemon_cpu_ms) - pump, 1),
                    fmt(per_req("wisp", |s| s.app_cpu_ms), 1)
                ),
            )
            .reference(format!(
                "direct: app {} + daemon {} (the replica's log pump) · nginx: nginx {} + app {} + daemon {}",
                fmt(per_req("direct", |s| s.app_cpu_ms), 1),
                fmt(per_req("direct", |s| s.daemon_cpu_ms), 1),
                fmt(per_req("nginx", |s| s.nginx_cpu_ms), 1),
                fmt(per_req("nginx", |s| s.app_cpu_ms), 1),
                fmt(per_req("nginx", |s| s.daemon_cpu_ms), 1)
            )),
        );
    }

    let mut rates: Vec<f64> = Vec::new();
    for s in &t.open_loop {
        if !rates.contains(&s.result.rate) {
            rates.push(s.result.rate);
        }
    }
    for (i, &r) in rates.iter().enumerate() {
        let q = |sys: &str| {
            [
                ol_col(t, sys, r, |l| l.p50_ms),
                ol_col(t, sys, r, |l| l.p99_ms),
                ol_col(t, sys, r, |l| l.p999_ms),
            ]
        };
        let [w50, w99, w999] = q("wisp");
        let [d50, d99, d999] = q("direct");
        let [n50, n99, n999] = q("nginx");
        let errors: usize = t
            .open_loop
            .iter()
            .filter(|s| s.result.rate == r)
            .map(|s| s.result.errors)
            .sum();
        rows.push(
            Row::new(
                format!(
                    "Latency at {} req/s, open loop, {} connections, {} s: p50 / p99 / p99.9",
                    rate(r),
                    t.open_loop_connections,
                    fmt(t.open_loop_duration_s, 0)
                ),
                format!(
                    "{} / {} / {} ms",
                    fmt(w50.med(), 3),
                    fmt(w99.med(), 3),
                    fmt(w999.med(), 3)
                ),
            )
            .spread(format!(
                "{} / {} / {}",
                w50.spread(3),
                w99.spread(3),
                w999.spread(3)
            ))
            .reference(format!(
                "direct (limit): {} / {} / {} ms · nginx: {} / {} / {} ms{}",
                fmt(d50.med(), 3),
                fmt(d99.med(), 3),
                fmt(d999.med(), 3),
                fmt(n50.med(), 3),
                fmt(n99.med(), 3),
                fmt(n999.med(), 3),
                if errors > 0 {
                    format!(" · {errors} errors")
                } else {
                    String::new()
                }
            )),
        );
        let a50 = ol_added(t, "wisp", "direct", r, |l| l.p50_ms);
        let a99 = ol_added(t, "wisp", "direct", r, |l| l.p99_ms);
        let n_a50 = ol_added(t, "nginx", "direct", r, |l| l.p50_ms);
        let n_a99 = ol_added(t, "nginx", "direct", r, |l| l.p99_ms);
        let mut row = Row::new(
            format!("… **added by the proxy** at {} req/s, p50 / p99", rate(r)),
            format!("{} / {} ms", fmt(a50.med(), 3), fmt(a99.med(), 3)),
        )
        .spread(format!("{} / {}", a50.spread(3), a99.spread(3)))
        .reference(format!(
            "nginx adds {} / {} ms",
            fmt(n_a50.med(), 3),
            fmt(n_a99.med(), 3)
        ));
        if i == 0 {
            let ok50 = a50.med() < ADDED_P50_MS;
            let ok99 = a99.med() < ADDED_P99_MS;
            if !quick {
                tally.judge("added latency p50 < 0.1 ms", ok50);
                tally.judge("added latency p99 < 1 ms", ok99);
            }
            row = row.target(
                "< 0.1 ms / < 1 ms",
                verdict(
                    ok50 && ok99,
                    quick,
                    &format!(
                        "p50 {}, p99 {}",
                        if ok50 { "met" } else { "missed" },
                        if ok99 { "met" } else { "missed" }
                    ),
                ),
            );
        }
        rows.push(row);
    }

    let l = |sys: &str| {
        (
            lat_col(t, sys, |r| r.p50_ms),
            lat_col(t, sys, |r| r.p99_ms),
            lat_col(t, sys, |r| r.rps),
        )
    };
    let (w50, w99, wr) = l("wisp");
    let (d50, d99, dr) = l("direct");
    let (n50, n99, nr) = l("nginx");
    rows.push(
        Row::new(
            format!(
                "One connection, back to back (wrk -t1 -c1, {} s): p50 / p99",
                fmt(t.latency_duration_s, 0)
            ),
            format!(
                "{} / {} ms ({} req/s)",
                fmt(w50.med(), 3),
                fmt(w99.med(), 3),
                rate(wr.med())
            ),
        )
        .spread(format!("{} / {}", w50.spread(3), w99.spread(3)))
        .reference(format!(
            "direct: {} / {} ms ({} req/s) · nginx: {} / {} ms ({} req/s) · wisp adds {} ms at p50",
            fmt(d50.med(), 3),
            fmt(d99.med(), 3),
            rate(dr.med()),
            fmt(n50.med(), 3),
            fmt(n99.med(), 3),
            rate(nr.med()),
            fmt(w50.med() - d50.med(), 3)
        )),
    );
}

fn cold_rows(c: &super::cold::Cold, quick: bool, tally: &mut Tally, rows: &mut Vec<Row>) {
    let n = c.raw_ms.len();
    let app = median(&c.app_listen_ms);
    let net: Vec<f64> = c.raw_ms.iter().map(|r| r - app).collect();
    let three = |v: &[f64]| {
        format!(
            "{} / {} / {} ms",
            fmt(pct(v, 0.5), 2),
            fmt(pct(v, 0.99), 2),
            fmt(pct(v, 1.0), 2)
        )
    };
    rows.push(
        Row::new(
            format!("Cold start: request at zero replicas → answer, raw ({n} trials) p50 / p99 / max"),
            three(&c.raw_ms),
        )
        .reference(
            "each trial a different Service at zero; connection to the gateway opened before the clock starts",
        ),
    );
    rows.push(
        Row::new("… the app alone: spawn → listening (TCP connect) p50 / p99 / max", three(&c.app_listen_ms))
            .reference(format!(
                "spawn → first answer: {} (`wisp-testapp` started by the load tool, alternated with the trials)",
                three(&c.app_answer_ms)
            )),
    );
    let ok50 = pct(&net, 0.5) < COLD_P50_MS;
    let ok99 = pct(&net, 0.99) < COLD_P99_MS;
    if !quick {
        tally.judge("cold-start overhead p50 < 5 ms", ok50);
        tally.judge("cold-start overhead p99 < 20 ms", ok99);
    }
    rows.push(
        Row::new(
            "… **cold-start overhead** (raw − the app's median spawn → listening) p50 / p99 / max",
            three(&net),
        )
        .reference(format!("app's median subtracted: {} ms", fmt(app, 2)))
        .target(
            "< 5 ms p50, < 20 ms p99",
            verdict(
                ok50 && ok99,
                quick,
                &format!(
                    "p50 {}, p99 {}",
                    if ok50 { "met" } else { "missed" },
                    if ok99 { "met" } else { "missed" }
                ),
            ),
        ),
    );
    rows.push(Row::new(
        "… the second request (warm, same connection) p50 / p99 / max",
        three(&c.warm_ms),
    ));
}

fn burst_rows(b: &Burst, quick: bool, tally: &mut Tally, rows: &mut Vec<Row>) {
    let settings = if b.autoscaler.is_empty() {
        "Knative's defaults (stable-window 60s, panic window 10 % = 6 s, scale-to-zero-grace-period 30s)".to_owned()
    } else {
        format!("`--autoscaler {}`", b.autoscaler.join(" --autoscaler "))
    };
    let at = |t: f64| {
        b.at(t)
            .map(|s| {
                (
                    s.actual.map_or("—".to_owned(), |a| a.to_string()),
                    s.processes.to_string(),
                )
            })
            .unwrap_or(("—".into(), "—".into()))
    };
    let (a1, p1) = at(1000.0);
    let (a2, p2) = at(2000.0);
    let (a4, p4) = at(4000.0);
    let reached = b.reached(BURST_REPLICAS);
    let ok = reached.is_some_and(|t| t <= BURST_WITHIN_MS);
    if !quick {
        tally.judge(&format!("burst ≥ 18 replicas within 4 s ({})", b.label), ok);
    }
    rows.push(
        Row::new(
            format!(
                "Burst ({}): {} clients looping `GET /?sleep={}`, target {}; `actualReplicas` at 1 s / 2 s / 4 s",
                b.label, b.clients, b.sleep_ms, b.target
            ),
            format!("{a1} / {a2} / {a4}"),
        )
        .reference(format!(
            "replica processes at 1 / 2 / 4 s: {p1} / {p2} / {p4} · max {} ({} processes) in {} s · ≥ {BURST_REPLICAS} reached at {} · {} requests, {} errors, latency p50 / p99 {} / {} ms · daemon: {settings}",
            b.max_actual(),
            b.max_processes(),
            fmt(b.load_ms / 1e3, 1),
            reached.map_or("never".to_owned(), |t| format!("{} s", fmt(t / 1e3, 1))),
            b.requests,
            b.errors,
            fmt(b.latency.p50_ms, 1),
            fmt(b.latency.p99_ms, 1),
        ))
        .target(
            "≥ 18 within 4 s",
            verdict(
                ok,
                quick,
                &reached.map_or("never reached".to_owned(), |t| format!("at {} s", fmt(t / 1e3, 1))),
            ),
        ),
    );
    rows.push(
        Row::new(
            format!("… load stopped → back to zero ({})", b.label),
            format!(
                "{} s (`actualReplicas` 0) / {} s (no process)",
                b.zero_status_ms.map_or("—".to_owned(), |v| fmt(v / 1e3, 1)),
                b.zero_processes_ms
                    .map_or("—".to_owned(), |v| fmt(v / 1e3, 1))
            ),
        )
        .reference(settings),
    );
}

fn idle_rows(i: &super::idle::Idle, quick: bool, tally: &mut Tally, rows: &mut Vec<Row>) {
    let mib = |kib: u64| kib as f64 / 1024.0;
    let ok_rss = (i.mem.rss_kib as f64 * 1024.0) < IDLE_RSS_BYTES;
    let ok_cpu = i.cpu_percent < IDLE_CPU_PERCENT;
    if !quick {
        tally.judge("idle RSS < 60 MB", ok_rss);
        tally.judge("idle CPU ≈ 0 %", ok_cpu);
    }
    rows.push(
        Row::new(
            format!("Idle: RSS with {} Services at zero replicas (VmRSS)", i.services),
            format!("{} MiB", fmt(mib(i.mem.rss_kib), 1)),
        )
        .reference(format!(
            "empty daemon: {} MiB · anonymous part: {} MiB · {} threads · created and all Ready at zero in {} s",
            fmt(mib(i.empty_mem.rss_kib), 1),
            fmt(mib(i.mem.anon_kib), 1),
            i.mem.threads,
            fmt(i.ready_ms / 1e3, 2)
        ))
        .target("< 60 MB (57.2 MiB)", verdict(ok_rss, quick, "")),
    );
    rows.push(
        Row::new(
            format!(
                "Idle: daemon CPU (utime + stime) over {} s",
                fmt(i.window_s, 0)
            ),
            format!("{} % of one core", fmt(i.cpu_percent, 2)),
        )
        .reference(format!(
            "{} ms of CPU (10 ms ticks) · quiet {} s after the last revision was Ready",
            fmt(i.cpu_ms, 0),
            fmt(i.settle_ms / 1e3, 1)
        ))
        .target("≈ 0 % (judged: < 0.5 %)", verdict(ok_cpu, quick, "")),
    );
}

/// The results table in Markdown, and the summary of targets met.
pub fn table(r: &Results, quick: bool) -> String {
    let mut rows = Vec::new();
    let mut tally = Tally::default();
    if let Some(t) = &r.throughput {
        throughput_rows(t, quick, &mut tally, &mut rows);
    }
    if let Some(c) = &r.cold {
        cold_rows(c, quick, &mut tally, &mut rows);
    }
    for b in &r.bursts {
        burst_rows(b, quick, &mut tally, &mut rows);
    }
    if let Some(i) = &r.idle {
        idle_rows(i, quick, &mut tally, &mut rows);
    }
    let mut out = String::new();
    if let Some(t) = &r.throughput {
        out.push_str(&format!(
            "Throughput and latency: median of {} round(s), each running {} in rotating order; spread = min–max over the rounds.\n\n",
            t.rounds,
            SYSTEMS.join(", ")
        ));
        if t.quiet_app {
            out.push_str("Diagnostic run: the app's stdout went to /dev/null (`--quiet-app`), so the daemon collected no log lines.\n\n");
        }
    }
    out.push_str(&render(&rows, &tally, quick));
    out
}

pub fn history_line(r: &Results, meta: &Meta) -> String {
    let (ratio, vs_nginx, added) = match &r.throughput {
        Some(t) => {
            let c = t.wrk.iter().map(|s| s.connections).max().unwrap_or(0);
            let first = t.open_loop.first().map_or(f64::NAN, |s| s.result.rate);
            (
                format!(
                    "{} (-c{c})",
                    fmt(wrk_ratio(t, "wisp", "direct", c).med(), 2)
                ),
                fmt(wrk_ratio(t, "wisp", "nginx", c).med(), 2),
                format!(
                    "{} / {} ms @ {}/s",
                    fmt(ol_added(t, "wisp", "direct", first, |l| l.p50_ms).med(), 3),
                    fmt(ol_added(t, "wisp", "direct", first, |l| l.p99_ms).med(), 3),
                    rate(first)
                ),
            )
        }
        None => ("—".into(), "—".into(), "—".into()),
    };
    let cold = r.cold.as_ref().map_or("—".to_owned(), |c| {
        let app = median(&c.app_listen_ms);
        let net: Vec<f64> = c.raw_ms.iter().map(|v| v - app).collect();
        format!(
            "{} / {} ms",
            fmt(pct(&net, 0.5), 2),
            fmt(pct(&net, 0.99), 2)
        )
    });
    let burst = r
        .bursts
        .iter()
        .map(|b| {
            format!(
                "{}: {}",
                b.label,
                b.at(4000.0)
                    .and_then(|s| s.actual)
                    .map_or("—".to_owned(), |a| a.to_string())
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let idle = r.idle.as_ref().map_or("—".to_owned(), |i| {
        format!(
            "{} MiB / {} %",
            fmt(i.mem.rss_kib as f64 / 1024.0, 1),
            fmt(i.cpu_percent, 2)
        )
    });
    format!(
        "| {} | {} | {} | {ratio} | {vs_nginx} | {added} | {cold} | {burst} | {idle} |",
        meta.date, meta.commit, meta.load
    )
}

pub fn section(r: &Results, meta: &Meta, history: &[String]) -> String {
    let mut s = String::new();
    s.push_str(BEGIN);
    s.push_str("\n## Data plane (issue: gateway, scale from zero, autoscaling)\n\n");
    s.push_str(&format!("Command: `{}`  \n", meta.command));
    s.push_str(&format!(
        "Date: {} · commit `{}` · nproc {} · CPU {} · kernel {} · {} · {} · load average at start {}\n\n",
        meta.date, meta.commit, meta.nproc, meta.cpu, meta.kernel, meta.rustc, meta.tools, meta.load
    ));
    if let Some(t) = &r.throughput {
        s.push_str(&format!(
            "Setup, all on loopback on the same {}-core machine: **one app process** (`wisp-testapp`, std only, a thread per connection, one log line per request on stdout, which wisp's daemon collects into the replica's log file) runs as the replica of a Service pinned with `min-scale: \"1\"` and `max-scale: \"1\"`, so the three paths reach the very same process: **direct** (the limit: wrk to the replica's port), **wisp** (through the daemon's gateway, `Host: hello.default.localhost`), **nginx** (Debian's nginx as a reverse proxy: {} worker processes, as many as wisp's daemon has tokio worker threads (tokio's default: one per CPU); keep-alive pool to the app; `access_log off`; X-Forwarded-* set like wisp's; config in `bench/nginx/proxy.conf.in`). Load: wrk with {} thread(s), closed loop (each connection sends its next request when the last answer arrives: that is the maximum throughput, and the latency *at saturation*); the added-latency target is judged on an open-loop run at a fixed rate well below saturation by `bench/loadgen` (one tokio thread plus a clock thread; every request timed from its scheduled arrival, so queueing counts), and a one-connection wrk run shows the bare per-request cost. **The load generator, the proxy and the app share the 2 cores**: with the proxy in the path three busy processes compete where direct has two, so on this machine the proxy's CPU per request (row below) is what the throughput ratio measures. CPU figures are utime + stime from /proc over each run.\n\n",
            meta.nproc, t.workers, t.wrk_threads
        ));
    }
    if r.cold.is_some() || r.idle.is_some() {
        s.push_str(
            "Idle and cold start: a daemon run with `--autoscaler allow-zero-initial-scale=true --autoscaler initial-scale=0`, so each new revision becomes Ready without starting a replica; memory and CPU from /proc once every revision is Ready at zero and the daemon is quiet. Then one request per Service at zero (a different Service each trial), alternated with starting the app alone.\n\n",
        );
    }
    if !r.bursts.is_empty() {
        s.push_str(
            "Burst: a Service with `autoscaling.knative.dev/target: \"10\"` and `containerConcurrency: 0` starts at its initial scale of 1; 200 clients at once, each looping requests that sleep 100 ms in the app, on their own keep-alive connection to the gateway; every 100 ms the load tool reads the revision's `status.actualReplicas` from the API and counts the daemon's replica processes. Knative's `container-concurrency-target-percentage` (70 %) makes the effective target 7 requests per replica, so 200 clients ask for about 29 replicas; the autoscaler decides every 2 s (Knative's tick), so the first scale-up lands at the first tick after the burst starts.\n\n",
        );
    }
    s.push_str(&table(r, false));
    s.push_str(&format!(
        "\n{HISTORY}\n\nOne line per full run of the command.\n\n\
| date | commit | load at start | wisp / direct req/s | wisp / nginx | added p50 / p99 (open loop) | cold-start overhead p50 / p99 | burst replicas at 4 s | idle RSS / CPU |\n\
| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
    ));
    for line in history {
        s.push_str(line);
        s.push('\n');
    }
    s.push_str(END);
    s.push('\n');
    s
}

pub fn splice(path: &Path, r: &Results, meta: &Meta) -> anyhow::Result<()> {
    splice_section(path, BEGIN, END, HISTORY, |mut history| {
        history.push(history_line(r, meta));
        section(r, meta, &history)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data_plane::burst::Sample;

    #[test]
    fn rates_are_grouped_by_thousands() {
        assert_eq!(rate(38457.4), "38,457");
        assert_eq!(rate(999.0), "999");
        assert_eq!(rate(1234567.0), "1,234,567");
        assert_eq!(rate(f64::NAN), "—");
    }

    #[test]
    fn burst_samples_are_read_at_their_marks() {
        let s = |t_ms: f64, actual: i64| Sample {
            t_ms,
            actual: Some(actual),
            desired: Some(actual),
            processes: actual as usize,
        };
        let b = Burst {
            samples: vec![s(0.0, 1), s(1003.0, 1), s(2004.0, 20), s(4001.0, 28)],
            ..Burst::default()
        };
        assert_eq!(b.at(2000.0).and_then(|s| s.actual), Some(20));
        assert_eq!(b.at(1000.0).and_then(|s| s.actual), Some(1));
        assert_eq!(b.reached(18), Some(2004.0));
        assert_eq!(b.reached(30), None);
        assert_eq!(b.max_actual(), 28);
    }

    #[test]
    fn splice_keeps_other_sections_and_history() {
        let path = std::env::temp_dir().join(format!("wisp-dp-splice-{}.md", std::process::id()));
        let other = "# Benchmarks\n\nintro\n\n<!-- bench:control-plane:begin -->\ncp table\n### History\n| a | b |\n<!-- bench:control-plane:end -->\n\n### Control plane notes\n\nkept\n";
        std::fs::write(&path, other).unwrap();
        let meta = Meta {
            date: "D1".into(),
            ..Meta::default()
        };
        let r = Results::default();
        splice(&path, &r, &meta).unwrap();
        let once = std::fs::read_to_string(&path).unwrap();
        assert!(once.starts_with(other.trim_end()), "{once}");
        assert!(once.contains(BEGIN) && once.contains(END));
        let meta2 = Meta {
            date: "D2".into(),
            ..Meta::default()
        };
        splice(&path, &r, &meta2).unwrap();
        let twice = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(twice.starts_with(other.trim_end()));
        assert_eq!(twice.matches(BEGIN).count(), 1);
        assert!(
            twice.contains("| D1 |") && twice.contains("| D2 |"),
            "{twice}"
        );
    }
}
