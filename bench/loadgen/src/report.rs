//! Turns runs into the results table (median over runs, spread = min–max over runs) and
//! splices it into BENCHMARKS.md between this benchmark's markers, keeping its history lines.

use std::path::Path;

use crate::control_plane::Run;
use crate::stats::{median, min_max};

/// Where and on what the benchmark ran; filled in by the script.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Meta {
    #[arg(long, default_value = "")]
    pub date: String,
    #[arg(long, default_value = "")]
    pub commit: String,
    #[arg(long, default_value = "")]
    pub nproc: String,
    #[arg(long, default_value = "")]
    pub cpu: String,
    #[arg(long, default_value = "")]
    pub kernel: String,
    #[arg(long, default_value = "")]
    pub fs: String,
    #[arg(long, default_value = "")]
    pub rustc: String,
    #[arg(long, default_value = "")]
    pub command: String,
    /// Load averages when the benchmark started (the machine is shared).
    #[arg(long, default_value = "")]
    pub load: String,
    /// Versions of the outside tools used (wrk, nginx), when the benchmark uses any.
    #[arg(long, default_value = "")]
    pub tools: String,
}

/// The number of Services the targets are stated for.
pub const TARGET_N: usize = 1000;
const MB: f64 = 1e6;
const MIB: f64 = 1024.0 * 1024.0;

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// A value per run, reduced to "median (min–max)".
struct Col(Vec<f64>);

impl Col {
    fn of(runs: &[Run], f: impl Fn(&Run) -> f64) -> Col {
        Col(runs.iter().map(f).collect())
    }
    /// One value per restart of every run (restarts are the samples of start-up).
    fn restarts(runs: &[Run], f: impl Fn(&crate::control_plane::Restart) -> f64) -> Col {
        Col(runs
            .iter()
            .flat_map(|r| r.restarts.iter().map(&f))
            .collect())
    }
    fn median(&self) -> f64 {
        median(&self.0)
    }
    fn max(&self) -> f64 {
        min_max(&self.0).1
    }
    fn spread(&self, digits: usize) -> String {
        if self.0.len() < 2 {
            return "—".into();
        }
        let (lo, hi) = min_max(&self.0);
        format!("{lo:.digits$}–{hi:.digits$}")
    }
}

fn fmt(v: f64, digits: usize) -> String {
    if v.is_finite() {
        format!("{v:.digits$}")
    } else {
        "—".into()
    }
}

/// "met" / "NOT met", judged on the median and reporting runs over the line.
fn verdict(col: &Col, limit: f64, quick: bool) -> String {
    if quick {
        return format!("n/a (quick, N != {TARGET_N})");
    }
    let over = col.0.iter().filter(|&&v| v >= limit).count();
    match (col.median() < limit, over) {
        (true, 0) => "**met** (every sample)".into(),
        (true, k) => format!("**met** at the median; {k} of {} samples over", col.0.len()),
        (false, k) => format!("**NOT met** ({k} of {} samples over)", col.0.len()),
    }
}

struct Row {
    what: String,
    value: String,
    spread: String,
    reference: String,
    target: String,
    verdict: String,
}

fn row(what: impl Into<String>, col: &Col, digits: usize, unit: &str) -> Row {
    Row {
        what: what.into(),
        value: format!("{} {unit}", fmt(col.median(), digits)),
        spread: col.spread(digits),
        reference: String::new(),
        target: String::new(),
        verdict: String::new(),
    }
}

fn triple(what: &str, cols: [&Col; 3], digits: usize, unit: &str) -> Row {
    Row {
        what: what.into(),
        value: format!(
            "{} / {} / {} {unit}",
            fmt(cols[0].median(), digits),
            fmt(cols[1].median(), digits),
            fmt(cols[2].median(), digits)
        ),
        spread: cols.map(|c| c.spread(digits)).join(" / "),
        reference: String::new(),
        target: String::new(),
        verdict: String::new(),
    }
}

impl Row {
    fn reference(mut self, s: impl Into<String>) -> Row {
        self.reference = s.into();
        self
    }
    fn target(mut self, t: &str, v: String) -> Row {
        self.target = t.into();
        self.verdict = v;
        self
    }
}

/// The results table in Markdown.
pub fn table(runs: &[Run]) -> String {
    let n = runs.first().map_or(0, |r| r.n);
    let quick = n != TARGET_N;
    let restarts = runs.first().map_or(0, |r| r.restarts.len());
    let gets = runs.first().map_or(0, |r| r.get_service.count);
    let lists = runs.first().map_or(0, |r| r.list_services.count);
    let s = |ms: f64| ms / 1e3;

    let reconciled = Col::of(runs, |r| s(r.reconciled_ms));
    let created = Col::of(runs, |r| s(r.create_ms));
    let cms = Col::of(runs, |r| s(r.configmaps_ms));
    let rate = Col::of(runs, |r| r.n as f64 / s(r.reconciled_ms));
    let cpu = Col::of(runs, |r| s(r.create_cpu_ms));
    let cpu_share = Col::of(runs, |r| 100.0 * r.create_cpu_ms / r.reconciled_ms);
    let post = [
        Col::of(runs, |r| r.service_post.p50_ms),
        Col::of(runs, |r| r.service_post.p99_ms),
        Col::of(runs, |r| r.service_post.max_ms),
    ];
    let cm_post = [
        Col::of(runs, |r| r.configmap_post.p50_ms),
        Col::of(runs, |r| r.configmap_post.p99_ms),
        Col::of(runs, |r| r.configmap_post.max_ms),
    ];
    let lag = [
        Col::of(runs, |r| r.reconcile_lag.p50_ms),
        Col::of(runs, |r| r.reconcile_lag.p99_ms),
        Col::of(runs, |r| r.reconcile_lag.max_ms),
    ];
    let get = [
        Col::of(runs, |r| r.get_service.p50_ms),
        Col::of(runs, |r| r.get_service.p99_ms),
        Col::of(runs, |r| r.get_service.p999_ms),
    ];
    let health = [
        Col::of(runs, |r| r.get_healthz.p50_ms),
        Col::of(runs, |r| r.get_healthz.p99_ms),
        Col::of(runs, |r| r.get_healthz.p999_ms),
    ];
    let list = Col::of(runs, |r| r.list_services.p50_ms);
    let list_kib = Col::of(runs, |r| r.list_bytes as f64 / 1024.0);
    let rss = Col::of(runs, |r| mib(r.mem_reconciled.rss_kib));
    let hwm = Col::of(runs, |r| mib(r.mem_after_reads.hwm_kib));
    let rss_reads = Col::of(runs, |r| mib(r.mem_after_reads.rss_kib));
    let rss_reads_bytes = Col::of(runs, |r| r.mem_after_reads.rss_kib as f64 * 1024.0);
    let anon = Col::of(runs, |r| mib(r.mem_reconciled.anon_kib));
    let idle = Col::of(runs, |r| mib(r.idle_mem.rss_kib));
    let rss_restart = Col::restarts(runs, |r| mib(r.mem.rss_kib));
    let rss_restart_bytes = Col::restarts(runs, |r| r.mem.rss_kib as f64 * 1024.0);
    let api = Col::restarts(runs, |r| r.startup.api_ms);
    let synced = Col::restarts(runs, |r| r.startup.synced_ms);
    let logged = Col::restarts(runs, |r| r.startup.logged_ms.map_or(f64::NAN, |v| v as f64));
    let settle = Col::restarts(runs, |r| r.settle_ms);
    let restart_cpu = Col::restarts(runs, |r| r.cpu_ms);
    let writes = Col::restarts(runs, |r| r.writes as f64);
    let empty_api = Col::of(runs, |r| r.empty_startup.api_ms);
    let empty_synced = Col::of(runs, |r| r.empty_startup.synced_ms);
    let shutdown = Col::of(runs, |r| r.shutdown_ms);
    let db = Col::of(runs, |r| r.db_bytes as f64 / MIB);
    let svc_bytes = Col::of(runs, |r| r.service_bytes as f64);

    let rows = vec![
        row(format!("{n} Services POSTed one after another, **all reconciled**"), &reconciled, 2, "s")
            .reference(format!("{} Services/s", fmt(rate.median(), 0)))
            .target("< 10 s", verdict(&reconciled, 10.0, quick)),
        row("… of which creating (first POST to last 201)", &created, 2, "s")
            .reference(format!("{n} ConfigMap POSTs, nothing to reconcile: {} s", fmt(cms.median(), 2))),
        triple("POST Service p50 / p99 / max", [&post[0], &post[1], &post[2]], 2, "ms")
            .reference(format!(
                "POST ConfigMap: {} / {} / {} ms",
                fmt(cm_post[0].median(), 2),
                fmt(cm_post[1].median(), 2),
                fmt(cm_post[2].median(), 2)
            )),
        triple("201 → Service reconciled (watch) p50 / p99 / max", [&lag[0], &lag[1], &lag[2]], 2, "ms"),
        row("daemon CPU during create + reconcile", &cpu, 2, "s")
            .reference(format!("{} % of one core over the wall time", fmt(cpu_share.median(), 0))),
        triple(
            &format!("GET one Service p50 / p99 / p99.9 ({gets} sequential, keep-alive)"),
            [&get[0], &get[1], &get[2]],
            3,
            "ms",
        )
            .reference(format!(
                "limit, GET /healthz: {} / {} / {} ms",
                fmt(health[0].median(), 3),
                fmt(health[1].median(), 3),
                fmt(health[2].median(), 3)
            ))
            .target("p50 < 1 ms", verdict(&get[0], 1.0, quick)),
        row(format!("LIST all {n} Services p50 ({lists} sequential)"), &list, 1, "ms")
            .reference(format!("{} KiB body", fmt(list_kib.median(), 0))),
        row("RSS with the Services, after reconcile (VmRSS)", &rss, 1, "MiB")
            .reference(format!(
                "idle on an empty data dir: {} MiB; anonymous part: {} MiB; Knative: ~160 MiB idle (4 components)",
                fmt(idle.median(), 1),
                fmt(anon.median(), 1)
            ))
            .target(
                "< 100 MB (95.4 MiB)",
                verdict(&Col(rss.0.iter().map(|v| v * MIB / MB).collect()), 100.0, quick),
            ),
        row("RSS after the reads above", &rss_reads, 1, "MiB")
            .reference(format!("peak (VmHWM): {} MiB", fmt(hwm.median(), 1)))
            .target("< 100 MB", verdict(&Col(rss_reads_bytes.0.iter().map(|b| b / MB).collect()), 100.0, quick)),
        row(format!("RSS after a restart on {n} Services, settled"), &rss_restart, 1, "MiB")
            .target("< 100 MB", verdict(&Col(rss_restart_bytes.0.iter().map(|b| b / MB).collect()), 100.0, quick)),
        row(format!("restart on {n} Services: API answers (spawn → first 200)"), &api, 1, "ms")
            .reference(format!("empty data dir: {} ms", fmt(empty_api.median(), 1)))
            .target("< 1 s", verdict(&Col(api.0.iter().map(|v| v / 1e3).collect()), 1.0, quick)),
        row("restart: controller synced (spawn → log line)", &synced, 1, "ms")
            .reference(format!("empty data dir: {} ms", fmt(empty_synced.median(), 1)))
            .target("< 1 s", verdict(&Col(synced.0.iter().map(|v| v / 1e3).collect()), 1.0, quick)),
        row("restart: daemon's own startup_ms", &logged, 0, "ms"),
        row("restart: CPU quiet again (everything re-reconciled)", &settle, 0, "ms")
            .reference(format!("daemon CPU by then: {} ms", fmt(restart_cpu.median(), 0))),
        row("restart: store writes caused", &writes, 0, "")
            .reference(format!("max {}", fmt(writes.max(), 0))),
        row("shutdown, SIGTERM → exit", &shutdown, 1, "ms"),
        row("data dir on disk", &db, 1, "MiB")
            .reference(format!("one Service as JSON: {} B", fmt(svc_bytes.median(), 0))),
    ];

    let mut out = String::new();
    out.push_str(&format!(
        "Median of {} run(s); spread = min–max over the runs (start-up rows: over all {} restarts).\n\n",
        runs.len(),
        runs.len() * restarts
    ));
    out.push_str("| measure | wisp | spread | limit / reference | target | verdict |\n");
    out.push_str("| --- | --- | --- | --- | --- | --- |\n");
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.what, r.value, r.spread, r.reference, r.target, r.verdict
        ));
    }
    out
}

/// One line of the section's history: the headline figures of one invocation.
pub fn history_line(runs: &[Run], meta: &Meta) -> String {
    let reconciled = Col::of(runs, |r| r.reconciled_ms / 1e3);
    let get = Col::of(runs, |r| r.get_service.p50_ms);
    let rss = Col::of(runs, |r| mib(r.mem_reconciled.rss_kib));
    let rss_reads = Col::of(runs, |r| mib(r.mem_after_reads.rss_kib));
    let rss_restart = Col::restarts(runs, |r| mib(r.mem.rss_kib));
    let api = Col::restarts(runs, |r| r.startup.api_ms);
    let synced = Col::restarts(runs, |r| r.startup.synced_ms);
    format!(
        "| {} | {} | {} | {} | {} s ({}) | {} ms | {} / {} / {} MiB | {} / {} ms |",
        meta.date,
        meta.commit,
        runs.len(),
        meta.load,
        fmt(reconciled.median(), 2),
        reconciled.spread(2),
        fmt(get.median(), 3),
        fmt(rss.median(), 0),
        fmt(rss_reads.median(), 0),
        fmt(rss_restart.median(), 0),
        fmt(api.median(), 0),
        fmt(synced.median(), 0),
    )
}

pub const BEGIN: &str = "<!-- bench:control-plane:begin -->";
pub const END: &str = "<!-- bench:control-plane:end -->";
const HISTORY: &str = "### History";

pub fn section(runs: &[Run], meta: &Meta, history: &[String]) -> String {
    let n = runs.first().map_or(0, |r| r.n);
    let mut s = String::new();
    s.push_str(BEGIN);
    s.push_str("\n## Control plane (issue: serving control plane)\n\n");
    s.push_str(&format!("Command: `{}`  \n", meta.command));
    s.push_str(&format!(
        "Date: {} · commit `{}` · nproc {} · CPU {} · kernel {} · data dir on {} · {} · \
load average at start {}\n\n",
        meta.date, meta.commit, meta.nproc, meta.cpu, meta.kernel, meta.fs, meta.rustc, meta.load
    ));
    s.push_str(&format!(
        "One run: a daemon on an empty data dir (start-up, idle memory, then {n} ConfigMap POSTs as \
the limit: admission + durable store write with nothing to reconcile); then a fresh daemon gets \
{n} Services POSTed one after another on one keep-alive connection, each waiting for its 201, \
while one watch on Services records when each is reconciled (`status.observedGeneration == \
metadata.generation` and `latestCreatedRevisionName` set); \"all reconciled\" also requires \
the lists to show every Configuration, Route and Revision `{{name}}-00001`. Then sequential \
keep-alive GETs of one Service alternated in 5 rounds with GETs of `/healthz` (the HTTP stack \
alone: the limit), LISTs of all Services, memory from `/proc/PID/status`, SIGTERM, and restarts \
on the same data dir timed from `spawn` to the first 200 and to the `serving controller synced` \
log line. The load tool (`bench/loadgen`) is one tokio thread on the same 2-core machine, so its \
own time is inside every latency figure, as it is inside the `/healthz` limit. Durability is the \
default (`synchronous=FULL`, an fsync per group commit).\n\n"
    ));
    s.push_str(&table(runs));
    s.push_str(
        "\nKnative for comparison (KNATIVE.md, \"Figures to beat\"): its control plane takes \
~160 MiB idle across four components, before any Service; Dirigent (SOSP'24) measured Knative \
at about 2 sandbox creations per second — that counts started sandboxes, which wisp's control \
plane does not start yet (no data plane), so it is not compared with the rate above.\n",
    );
    s.push_str(&format!(
        "\n{HISTORY}\n\nOne line per full run of the command (median over its runs).\n\n\
| date | commit | runs | load at start | {n} Services reconciled (spread) | GET p50 | RSS reconciled / after reads / after restart | restart → API / synced |\n\
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

const INTRO: &str = "# Benchmarks

How wisp measures itself (rules in the design brief's BENCH.md): every benchmark is one command \
under `bench/` that builds in release mode, starts what it needs on loopback, runs, stops \
everything it started and prints a table. Each section below is written by its command, with \
the date, the commit, `nproc`, the CPU model and the exact command. The machines are shared \
and noisy (2 cores), so figures are medians of several runs with their spread, and each \
figure sits beside its limit (what the same measurement costs without the part under test). \
CI runs every script with `--quick` only to prove it still works; quick figures are never \
judged, and no pass/fail test depends on timing.

";

/// Replaces (or appends) this benchmark's section of `path`, keeping earlier history lines.
pub fn splice(path: &Path, runs: &[Run], meta: &Meta) -> anyhow::Result<()> {
    splice_section(path, BEGIN, END, HISTORY, |mut history| {
        history.push(history_line(runs, meta));
        section(runs, meta, &history)
    })
}

/// Replaces the text between `begin` and `end` in `path` (or appends it, after the common
/// introduction if the file is new) with what `make` returns; `make` gets the table lines
/// found under `history` in the old section, so each benchmark keeps its history.
pub fn splice_section(
    path: &Path,
    begin: &str,
    end: &str,
    history: &str,
    make: impl FnOnce(Vec<String>) -> String,
) -> anyhow::Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let (before, old_section, after) = match (old.find(begin), old.find(end)) {
        (Some(b), Some(e)) if e > b => {
            let end = e + end.len();
            let end = if old[end..].starts_with('\n') {
                end + 1
            } else {
                end
            };
            (&old[..b], &old[b..end], &old[end..])
        }
        _ => (old.as_str(), "", ""),
    };
    let lines: Vec<String> = old_section
        .split_once(history)
        .map(|(_, h)| {
            h.lines()
                .filter(|l| {
                    l.starts_with("| ") && !l.starts_with("| date") && !l.starts_with("| ---")
                })
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let mut doc = String::new();
    if before.trim().is_empty() {
        doc.push_str(INTRO);
    } else {
        doc.push_str(before.trim_end());
        doc.push_str("\n\n");
    }
    doc.push_str(&make(lines));
    if !after.is_empty() && !after.starts_with('\n') {
        doc.push('\n');
    }
    doc.push_str(after);
    std::fs::write(path, doc)?;
    Ok(())
}
