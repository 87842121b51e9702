//! The eventing results table and its BENCHMARKS.md section (between its own markers; the
//! other sections and anything else in the file stay as they are).

use std::collections::BTreeMap;
use std::path::Path;

use super::Results;
use super::latency::Latency;
use super::throughput::{Sample, Throughput};
use crate::report::{Meta, splice_section};
use crate::rows::{Row, Tally, render, verdict};
use crate::stats::{median, min_max};

pub const BEGIN: &str = "<!-- bench:eventing:begin -->";
pub const END: &str = "<!-- bench:eventing:end -->";
const HISTORY: &str = "### Eventing history";

/// The targets.
pub const EVENTS_PER_S: f64 = 20_000.0;
pub const P99_MS: f64 = 10.0;
pub const P99_RATE: f64 = 1000.0;

fn fmt(v: f64, digits: usize) -> String {
    if v.is_finite() {
        format!("{v:.digits$}")
    } else {
        "—".into()
    }
}

/// " (spread)", or nothing when there is no spread (one round).
fn paren(spread: String) -> String {
    if spread == "—" {
        String::new()
    } else {
        format!(" ({spread})")
    }
}

/// Seconds with one decimal only when they have one.
fn secs(v: f64) -> String {
    if (v - v.round()).abs() < 0.05 {
        fmt(v, 0)
    } else {
        fmt(v, 1)
    }
}

/// Thousands separated, for rates.
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

/// Values over rounds: the median and "min–max".
struct Col(Vec<f64>);

impl Col {
    fn med(&self) -> f64 {
        median(&self.0)
    }
    fn spread_with(&self, f: impl Fn(f64) -> String) -> String {
        if self.0.len() < 2 {
            return "—".into();
        }
        let (lo, hi) = min_max(&self.0);
        format!("{}–{}", f(lo), f(hi))
    }
    fn spread(&self, digits: usize) -> String {
        self.spread_with(|v| fmt(v, digits))
    }
    fn spread_rate(&self) -> String {
        self.spread_with(rate)
    }
}

/// What the broker sustains end to end in one run: the slower of what the ingress accepted
/// and what the subscriber got (a growing backlog is not sustained).
pub fn sustained(s: &Sample) -> f64 {
    s.accepted_per_s.min(s.delivered_per_s)
}

fn col(t: &Throughput, system: &str, c: usize, f: impl Fn(&Sample) -> f64) -> Col {
    Col(t
        .samples
        .iter()
        .filter(|s| s.system == system && s.connections == c)
        .map(f)
        .collect())
}

/// Per-round ratio of wisp's sustained rate to the limit's (alternated in the same round).
fn ratio(t: &Throughput, c: usize) -> Col {
    Col((0..t.rounds)
        .filter_map(|r| {
            let get = |sys: &str| {
                t.samples
                    .iter()
                    .find(|s| s.system == sys && s.connections == c && s.round == r)
                    .map(sustained)
            };
            Some(get("wisp")? / get("direct")?)
        })
        .collect())
}

fn connection_counts(t: &Throughput) -> Vec<usize> {
    let mut conns: Vec<usize> = t.samples.iter().map(|s| s.connections).collect();
    conns.sort_unstable();
    conns.dedup();
    conns
}

/// The connection count with the highest median sustained rate through wisp.
pub fn best(t: &Throughput) -> Option<(usize, f64)> {
    connection_counts(t)
        .into_iter()
        .map(|c| (c, col(t, "wisp", c, sustained).med()))
        .filter(|(_, v)| v.is_finite())
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// The daemon's threads, grouped: tokio's (its workers and blocking pool share one name), the
/// event log's writer, everything else (the store's writer, the main thread).
fn thread_groups(threads: &BTreeMap<String, f64>) -> (f64, f64, f64) {
    let mut g = (0.0, 0.0, 0.0);
    for (name, ms) in threads {
        if name.starts_with("tokio") {
            g.0 += ms;
        } else if name.starts_with("wisp-eventlog") {
            g.1 += ms;
        } else {
            g.2 += ms;
        }
    }
    g
}

/// CPU µs per event accepted in the window.
fn per_event(s: &Sample, ms: f64) -> f64 {
    ms * 1e3 / (s.accepted_per_s * s.window_s).max(1.0)
}

fn throughput_rows(
    t: &Throughput,
    body: usize,
    quick: bool,
    tally: &mut Tally,
    rows: &mut Vec<Row>,
) {
    let best = best(t);
    for c in connection_counts(t) {
        let w = col(t, "wisp", c, sustained);
        let acc = col(t, "wisp", c, |s| s.accepted_per_s);
        let del = col(t, "wisp", c, |s| s.delivered_per_s);
        let lim = col(t, "direct", c, sustained);
        let r = ratio(t, c);
        let backlog = col(t, "wisp", c, |s| s.backlog_at_stop as f64);
        let drain = col(t, "wisp", c, |s| s.drain_ms.unwrap_or(f64::NAN));
        let undrained = t
            .samples
            .iter()
            .filter(|s| s.system == "wisp" && s.connections == c && s.drain_ms.is_none())
            .count();
        let errors: u64 = t
            .samples
            .iter()
            .filter(|s| s.connections == c)
            .map(|s| s.errors)
            .sum();
        let dups: u64 = t
            .samples
            .iter()
            .filter(|s| s.system == "wisp" && s.connections == c && s.drain_ms.is_some())
            .map(|s| s.delivered.saturating_sub(s.accepted))
            .sum();
        let mut row = Row::new(
            format!(
                "Throughput, closed loop, {c} connections, {} s ({} s warm-up left out), {body}-byte events: **ingress → subscriber, sustained** (the lower of accepted/s and delivered/s)",
                secs(t.duration_s),
                secs(t.warmup_s)
            ),
            format!("{} events/s", rate(w.med())),
        )
        .spread(w.spread_rate())
        .reference(format!(
            "accepted (202) {}/s{} · delivered {}/s{} · backlog when the load stopped: {} events, drained in {} ms{} · **limit, the same loop POSTing straight to the subscriber: {} req/s**{} · wisp / limit {}{}{}{}",
            rate(acc.med()),
            paren(acc.spread_rate()),
            rate(del.med()),
            paren(del.spread_rate()),
            rate(backlog.med()),
            fmt(drain.med(), 0),
            if undrained > 0 {
                format!(" ({undrained} run(s) not drained within the drain time)")
            } else {
                String::new()
            },
            rate(lim.med()),
            paren(lim.spread_rate()),
            fmt(r.med(), 2),
            paren(r.spread(2)),
            if errors > 0 { format!(" · {errors} errors") } else { String::new() },
            if dups > 0 { format!(" · {dups} duplicate deliveries") } else { String::new() },
        ));
        if best.is_some_and(|(bc, _)| bc == c) {
            let ok = w.med() >= EVENTS_PER_S;
            if !quick {
                tally.judge("≥ 20,000 events/s sustained", ok);
            }
            row = row.target(
                "≥ 20,000 events/s (best concurrency)",
                verdict(ok, quick, &format!("{} events/s", rate(w.med()))),
            );
        }
        rows.push(row);
        let m = |sys: &str, f: fn(&Sample) -> f64| col(t, sys, c, f).med();
        rows.push(
            Row::new(
                "… at that (saturating) load: the answer (202) p50 / p99; send → delivery p50 / p99",
                format!(
                    "{} / {} ms; {} / {} ms",
                    fmt(m("wisp", |s| s.answer.p50_ms), 2),
                    fmt(m("wisp", |s| s.answer.p99_ms), 2),
                    fmt(m("wisp", |s| s.delivery.p50_ms), 2),
                    fmt(m("wisp", |s| s.delivery.p99_ms), 2)
                ),
            )
            .reference(format!(
                "limit: the subscriber's 200 {} / {} ms; send → arrival {} / {} ms",
                fmt(m("direct", |s| s.answer.p50_ms), 2),
                fmt(m("direct", |s| s.answer.p99_ms), 2),
                fmt(m("direct", |s| s.delivery.p50_ms), 2),
                fmt(m("direct", |s| s.delivery.p99_ms), 2)
            )),
        );
        let groups = |f: fn((f64, f64, f64)) -> f64| {
            col(t, "wisp", c, |s| {
                per_event(s, f(thread_groups(&s.daemon_threads_ms)))
            })
            .med()
        };
        let daemon = col(t, "wisp", c, |s| per_event(s, s.daemon_cpu_ms));
        let share = col(t, "wisp", c, |s| s.daemon_cpu_ms / (s.window_s * 10.0));
        rows.push(
            Row::new(
                "… CPU per accepted event in the window (µs): the daemon, by thread",
                format!(
                    "{} (tokio workers {} · event-log writer {} · other {})",
                    fmt(daemon.med(), 1),
                    fmt(groups(|g| g.0), 1),
                    fmt(groups(|g| g.1), 1),
                    fmt(groups(|g| g.2), 1)
                ),
            )
            .spread(daemon.spread(1))
            .reference(format!(
                "the daemon used {} % of one core; this tool: sender {} + subscriber {} µs per event · limit: sender {} + subscriber {} µs per request",
                fmt(share.med(), 0),
                fmt(col(t, "wisp", c, |s| per_event(s, s.client_cpu_ms)).med(), 1),
                fmt(col(t, "wisp", c, |s| per_event(s, s.sink_cpu_ms)).med(), 1),
                fmt(col(t, "direct", c, |s| per_event(s, s.client_cpu_ms)).med(), 1),
                fmt(col(t, "direct", c, |s| per_event(s, s.sink_cpu_ms)).med(), 1)
            )),
        );
    }
}

fn latency_rows(l: &Latency, quick: bool, tally: &mut Tally, rows: &mut Vec<Row>) {
    let c = |sys: &str, f: fn(&super::latency::Sample) -> f64| {
        Col(l
            .samples
            .iter()
            .filter(|s| s.system == sys)
            .map(f)
            .collect())
    };
    let four = |sys: &str, delivery: bool| -> (String, Col) {
        let cols = if delivery {
            [
                c(sys, |s| s.delivery.p50_ms),
                c(sys, |s| s.delivery.p90_ms),
                c(sys, |s| s.delivery.p99_ms),
                c(sys, |s| s.delivery.max_ms),
            ]
        } else {
            [
                c(sys, |s| s.answer.p50_ms),
                c(sys, |s| s.answer.p90_ms),
                c(sys, |s| s.answer.p99_ms),
                c(sys, |s| s.answer.max_ms),
            ]
        };
        let text = format!(
            "{} / {} / {} / {} ms",
            fmt(cols[0].med(), 3),
            fmt(cols[1].med(), 3),
            fmt(cols[2].med(), 3),
            fmt(cols[3].med(), 3)
        );
        let [_, _, p99, _] = cols;
        (text, p99)
    };
    let sum = |sys: &str, f: fn(&super::latency::Sample) -> u64| -> u64 {
        l.samples.iter().filter(|s| s.system == sys).map(f).sum()
    };
    let (wd, wd99) = four("wisp", true);
    let (dd, _) = four("direct", true);
    let (wa, wa99) = four("wisp", false);
    let (da, _) = four("direct", false);
    let achieved = c("wisp", |s| s.achieved_per_s);
    let judged = (l.rate - P99_RATE).abs() < 1e-9;
    let ok = wd99.med() < P99_MS;
    if judged && !quick {
        tally.judge("p99 ingress → delivery < 10 ms at 1,000/s", ok);
    }
    let mut row = Row::new(
        format!(
            "Latency at {} events/s, open loop, {} connections, {} s per round in {} slice(s): **ingress → subscriber** p50 / p90 / p99 / max",
            rate(l.rate),
            l.connections,
            secs(l.duration_s),
            l.slices
        ),
        wd,
    )
    .spread(format!("p99: {}", wd99.spread(3)))
    .reference(format!(
        "**limit, POSTed straight to the subscriber: send → arrival {dd}** · through the broker: {} events sent, {} accepted ({} /s achieved), {} not delivered, {} duplicates; {} errors in all",
        rate(sum("wisp", |s| s.sent) as f64),
        rate(sum("wisp", |s| s.accepted) as f64),
        rate(achieved.med()),
        sum("wisp", |s| s.lost),
        sum("wisp", |s| s.duplicates),
        sum("wisp", |s| s.errors) + sum("direct", |s| s.errors)
    ));
    if judged {
        row = row.target(
            "p99 < 10 ms",
            verdict(ok, quick, &format!("p99 {} ms", fmt(wd99.med(), 2))),
        );
    }
    rows.push(row);
    rows.push(
        Row::new(
            "… the ingress's answer (202 once durable: group commit, fsync) p50 / p90 / p99 / max",
            wa,
        )
        .spread(format!("p99: {}", wa99.spread(3)))
        .reference(format!("limit, the subscriber's 200: {da}")),
    );
}

/// The results table in Markdown, and the summary of targets met.
pub fn table(r: &Results, quick: bool) -> String {
    let mut rows = Vec::new();
    let mut tally = Tally::default();
    if let Some(t) = &r.throughput {
        throughput_rows(t, r.body_bytes, quick, &mut tally, &mut rows);
    }
    if let Some(l) = &r.latency {
        latency_rows(l, quick, &mut tally, &mut rows);
    }
    rows.push(
        Row::new(
            "Setup: Broker POST → Ready / Trigger POST → Ready",
            format!(
                "{} / {} ms",
                fmt(r.setup.broker_ready_ms, 1),
                fmt(r.setup.trigger_ready_ms, 1)
            ),
        )
        .reference(format!(
            "{}at the end: event log on disk {} MiB · daemon RSS {} MiB (peak {} MiB){}",
            if r.setup.nudges > 0 {
                format!(
                    "**the event plane missed an object created at its start-up and it had to be rewritten to be seen ({} time(s); a known race of its first pass, so this Ready time includes a wait)** · ",
                    r.setup.nudges
                )
            } else {
                String::new()
            },
            fmt(r.eventlog_bytes as f64 / 1048576.0, 1),
            fmt(r.daemon_rss_kib as f64 / 1024.0, 1),
            fmt(r.daemon_hwm_kib as f64 / 1024.0, 1),
            if r.stray > 0 {
                format!(" · {} deliveries without this tool's headers", r.stray)
            } else {
                String::new()
            }
        )),
    );
    let mut out = String::new();
    if let Some(t) = &r.throughput {
        out.push_str(&format!(
            "Throughput: median of {} round(s), each running wisp and the limit in rotating order; spread = min–max over the rounds. ",
            t.rounds
        ));
    }
    if let Some(l) = &r.latency {
        out.push_str(&format!(
            "Latency: the median over {} round(s) of each round's percentiles (its slices pooled).",
            l.rounds
        ));
    }
    if !out.is_empty() {
        out.push_str("\n\n");
    }
    out.push_str(&render(&rows, &tally, quick));
    out
}

pub fn history_line(r: &Results, meta: &Meta) -> String {
    let thr = r.throughput.as_ref().and_then(|t| {
        let (c, v) = best(t)?;
        Some((
            format!("{} (-c{c})", rate(v)),
            rate(col(t, "direct", c, sustained).med()),
            fmt(
                col(t, "wisp", c, |s| per_event(s, s.daemon_cpu_ms)).med(),
                1,
            ),
        ))
    });
    let (thr, lim, cpu) = thr.unwrap_or(("—".into(), "—".into(), "—".into()));
    let lat = r.latency.as_ref().map_or(("—".into(), "—".into()), |l| {
        let m = |sys: &str, f: fn(&super::latency::Sample) -> f64| {
            median(
                &l.samples
                    .iter()
                    .filter(|s| s.system == sys)
                    .map(f)
                    .collect::<Vec<_>>(),
            )
        };
        (
            format!(
                "{} / {} ms @ {}/s",
                fmt(m("wisp", |s| s.delivery.p50_ms), 2),
                fmt(m("wisp", |s| s.delivery.p99_ms), 2),
                rate(l.rate)
            ),
            format!(
                "{} / {} ms",
                fmt(m("wisp", |s| s.answer.p50_ms), 2),
                fmt(m("wisp", |s| s.answer.p99_ms), 2)
            ),
        )
    });
    format!(
        "| {} | {} | {} | {thr} | {lim} | {cpu} µs | {} | {} |",
        meta.date, meta.commit, meta.load, lat.0, lat.1
    )
}

pub fn section(r: &Results, meta: &Meta, history: &[String]) -> String {
    let mut s = String::new();
    s.push_str(BEGIN);
    s.push_str("\n## Eventing (issue: durable broker, ingress → delivery)\n\n");
    s.push_str(&format!("Command: `{}`  \n", meta.command));
    s.push_str(&format!(
        "Date: {} · commit `{}` · nproc {} · CPU {} · kernel {} · data dir on {} · {} · load average at start {}\n\n",
        meta.date, meta.commit, meta.nproc, meta.cpu, meta.kernel, meta.fs, meta.rustc, meta.load
    ));
    s.push_str(&format!(
        "Setup, all on loopback on the same {}-core machine: one daemon with its defaults (the event log in SQLite, `synchronous=FULL`: the ingress answers 202 once the event's group commit is fsync'ed; the dispatcher delivers up to 64 events at once per trigger), one Broker `default` and one Trigger on it with no filter whose subscriber is a URI (delivered directly, not through the gateway): **the subscriber** is a hyper HTTP/1.1 server inside `bench/loadgen`, on a thread of its own, answering 200 with an empty body at once and recording per event its arrival. The events are binary-mode CloudEvents with {}-byte JSON data; each carries its run and its send time (nanoseconds on the load tool's monotonic clock) as the extensions `benchrun` and `sentns`, which the broker passes through, so send → delivery is measured on one clock in one process. **The limit** is the same sender POSTing the same requests straight to the subscriber. The sender is `bench/loadgen`'s one tokio thread (plus, for the open loop, a clock thread): the daemon, the sender and the subscriber share the 2 cores, so every figure, the limit's too, includes the load tool's own time. Closed loop: C keep-alive connections, each sending its next event when the last is answered; rates are taken between a snapshot after the warm-up and one at the end; then the load stops and the broker's backlog (accepted − delivered) is waited out before the next run. Open loop: the events' send times are fixed in advance (a clock thread), each stamped with its scheduled time, so an event waiting for its connection counts late. CPU: utime + stime from /proc, the daemon's threads summed by name.\n\n",
        meta.nproc, r.body_bytes
    ));
    s.push_str(&table(r, false));
    s.push_str(
        "\nKnative for comparison: KNATIVE.md has no published eventing throughput or latency figure to quote; its default multi-tenant broker (in-memory channel) is not durable — it fans out synchronously and loses events on restart — so it does not do what is measured here.\n",
    );
    s.push_str(&format!(
        "\n{HISTORY}\n\nOne line per full run of the command.\n\n\
| date | commit | load at start | sustained events/s (best) | limit req/s | daemon CPU per event | ingress → delivery p50 / p99 (open loop) | 202 p50 / p99 |\n\
| --- | --- | --- | --- | --- | --- | --- | --- |\n"
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

    fn sample(system: &str, round: usize, c: usize, acc: f64, del: f64) -> Sample {
        Sample {
            system: system.into(),
            round,
            connections: c,
            accepted_per_s: acc,
            delivered_per_s: del,
            window_s: 1.0,
            ..Sample::default()
        }
    }

    #[test]
    fn sustained_is_the_slower_side_and_best_is_the_highest_median() {
        let t = Throughput {
            rounds: 1,
            samples: vec![
                sample("wisp", 0, 16, 25_000.0, 18_000.0),
                sample("direct", 0, 16, 40_000.0, 40_000.0),
                sample("wisp", 0, 64, 21_000.0, 22_000.0),
                sample("direct", 0, 64, 41_000.0, 41_000.0),
            ],
            ..Throughput::default()
        };
        assert_eq!(sustained(&t.samples[0]), 18_000.0);
        assert_eq!(best(&t), Some((64, 21_000.0)));
        assert_eq!(ratio(&t, 64).med(), 21_000.0 / 41_000.0);
        let table = table(
            &Results {
                throughput: Some(t),
                ..Results::default()
            },
            false,
        );
        assert!(table.contains("**met** (21,000 events/s)"), "{table}");
    }

    #[test]
    fn splice_keeps_other_sections_and_history() {
        let path = std::env::temp_dir().join(format!("wisp-ev-splice-{}.md", std::process::id()));
        let other = "# Benchmarks\n\nintro\n\n<!-- bench:oci:begin -->\noci table\n### OCI history\n| a | b |\n<!-- bench:oci:end -->\n\n### Images: notes\n\nkept\n";
        std::fs::write(&path, other).unwrap();
        let r = Results::default();
        for date in ["D1", "D2"] {
            let meta = Meta {
                date: date.into(),
                ..Meta::default()
            };
            splice(&path, &r, &meta).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(text.starts_with(other.trim_end()), "{text}");
        assert_eq!(text.matches(BEGIN).count(), 1);
        assert!(text.contains("| D1 |") && text.contains("| D2 |"), "{text}");
    }
}
