//! The OCI results table and its BENCHMARKS.md section (between its own markers; the other
//! sections and anything else in the file stay as they are).

use std::path::Path;

use super::Results;
use super::cold::Cold;
use super::pull::Pull;
use super::share::Share;
use crate::report::{Meta, splice_section};
use crate::rows::{Row, Tally, render, verdict};
use crate::stats::{median, min_max};

pub const BEGIN: &str = "<!-- bench:oci:begin -->";
pub const END: &str = "<!-- bench:oci:end -->";
const HISTORY: &str = "### OCI history";

/// The targets.
pub const COLD_OVERHEAD_P50_MS: f64 = 50.0;
pub const PULL_MS: f64 = 1000.0;

const MIB: f64 = 1024.0;

fn fmt(v: f64, digits: usize) -> String {
    if v.is_finite() {
        format!("{v:.digits$}")
    } else {
        "—".into()
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

/// "p50 / p99 / max" of values, in ms.
fn three(values: &[f64], digits: usize) -> String {
    format!(
        "{} / {} / {} ms",
        fmt(pct(values, 0.5), digits),
        fmt(pct(values, 0.99), digits),
        fmt(min_max(values).1, digits)
    )
}

fn spread(values: &[f64], digits: usize) -> String {
    if values.len() < 2 {
        return "—".into();
    }
    let (lo, hi) = min_max(values);
    format!("{}–{}", fmt(lo, digits), fmt(hi, digits))
}

/// Cold-start overhead of every trial: raw − the median of `runc run` alone.
pub fn overhead(c: &Cold) -> Vec<f64> {
    let limit = median(&c.runc_answer_ms);
    c.raw_ms.iter().map(|v| v - limit).collect()
}

fn cold_rows(c: &Cold, quick: bool, tally: &mut Tally, rows: &mut Vec<Row>) {
    let net = overhead(c);
    let ok = pct(&net, 0.5) < COLD_OVERHEAD_P50_MS;
    if !quick {
        tally.judge("cold-start overhead < 50 ms p50", ok);
    }
    let overlays = c.overlay.iter().filter(|o| **o).count();
    rows.push(
        Row::new(
            format!(
                "Cold start, cached image: request at zero replicas → answer, raw ({} trials) p50 / p99 / max",
                c.trials
            ),
            three(&c.raw_ms, 2),
        )
        .reference(format!(
            "each trial a different Service at zero (`initial-scale: \"0\"`), the image pulled and unpacked by a warm-up Service (POST → Ready {} ms); connection to the gateway opened before the clock starts; {overlays} of {} replicas on an overlay of the store's layers",
            fmt(c.warmup_ready_ms, 0),
            c.overlay.len()
        )),
    );
    rows.push(
        Row::new(
            "… `runc run` alone (the limit): spawn → first 200, p50 / p99 / max",
            three(&c.runc_answer_ms, 2),
        )
        .reference(format!(
            "spawn → TCP connect (polled every {} µs): {} · {} · the warm-up replica's `config.json`; root: {}; alternated with the trials",
            c.runc_poll_us,
            three(&c.runc_listen_ms, 2),
            c.runc_version,
            c.bundle_rootfs
        )),
    );
    rows.push(
        Row::new(
            "… **cold-start overhead** (raw − `runc run` alone's median) p50 / p99 / max",
            three(&net, 2),
        )
        .reference(format!(
            "`runc run` alone's median subtracted: {} ms",
            fmt(median(&c.runc_answer_ms), 2)
        ))
        .target(
            "< 50 ms p50",
            verdict(ok, quick, &format!("p50 {} ms", fmt(pct(&net, 0.5), 1))),
        ),
    );
    rows.push(Row::new(
        "… the second request (warm, same connection) p50 / p99 / max",
        three(&c.warm_ms, 2),
    ));
    rows.push(
        Row::new(
            "… Service deleted → its replica stopped and removed (untimed, between trials) p50 / max",
            format!(
                "{} / {} ms",
                fmt(pct(&c.teardown_ms, 0.5), 0),
                fmt(min_max(&c.teardown_ms).1, 0)
            ),
        )
        .reference("SIGTERM to runc → the image's shell exits → `runc delete`, overlay unmounted, bundle removed"),
    );
}

fn pull_rows(
    p: &Pull,
    cached_ms: Option<f64>,
    quick: bool,
    tally: &mut Tally,
    rows: &mut Vec<Row>,
) {
    let col = |f: fn(&super::pull::Round) -> f64| -> Vec<f64> { p.rounds.iter().map(f).collect() };
    let pulled = col(|r| r.pulled_ms);
    let elapsed = col(|r| r.pull_elapsed_ms);
    let resolved = col(|r| r.resolved_ms);
    let ready = col(|r| r.ready_ms);
    let svc_ready = col(|r| r.service_ready_ms);
    let answered = col(|r| r.answered_ms);
    let alone = col(|r| r.registry_alone_ms);
    let after_pull: Vec<f64> = p.rounds.iter().map(|r| r.ready_ms - r.pulled_ms).collect();
    let layers_mib = median(&col(|r| r.layers_kib as f64)) / MIB;
    let download = p.image.download_bytes() as f64;
    let ok = median(&pulled) < PULL_MS;
    if !quick {
        tally.judge("first pull < 1 s", ok);
    }
    let layers = p
        .image
        .layers
        .iter()
        .map(|l| format!("{:.1} MB", l.size as f64 / 1e6))
        .collect::<Vec<_>>()
        .join(" + ");
    rows.push(
        Row::new(
            format!(
                "First pull, fresh daemon, loopback registry: POST Service → image pulled (\"pulled image\" log line), median of {} round(s)",
                p.rounds.len()
            ),
            format!("{} ms", fmt(median(&pulled), 0)),
        )
        .spread(spread(&pulled, 0))
        .reference(format!(
            "{:.1} MB to download (layer {layers}, gzip of {:.1} MB of files: busybox, a page, {:.1} MB from /dev/urandom); the daemon's own `elapsed_ms` for the pull: {} ms ({}) · **registry alone** (manifest + config + layer, one connection): {} ms ({}), {} MB/s",
            download / 1e6,
            p.image.content_bytes as f64 / 1e6,
            p.image.random_bytes as f64 / 1e6,
            fmt(median(&elapsed), 0),
            spread(&elapsed, 0),
            fmt(median(&alone), 1),
            spread(&alone, 1),
            fmt(download / 1e6 / (median(&alone) / 1e3), 0)
        ))
        .target(
            "< 1 s",
            verdict(ok, quick, &format!("max {} ms", fmt(min_max(&pulled).1, 0))),
        ),
    );
    rows.push(
        Row::new(
            "… POST → image resolved (tag → digest) / → pulled / → revision Ready with 1 replica / → Service Ready / → first answer",
            format!(
                "{} / {} / {} / {} / {} ms",
                fmt(median(&resolved), 0),
                fmt(median(&pulled), 0),
                fmt(median(&ready), 0),
                fmt(median(&svc_ready), 0),
                fmt(median(&answered), 0)
            ),
        )
        .spread(format!("revision Ready: {}", spread(&ready, 0)))
        .reference(format!(
            "pulled → revision Ready (unpack to {} MiB, overlay mount, `runc run`, readiness): {} ms{}",
            fmt(layers_mib, 1),
            fmt(median(&after_pull), 0),
            cached_ms.map_or(String::new(), |c| format!(
                "; a cold start of a cached image takes {} ms (row above)",
                fmt(c, 0)
            ))
        )),
    );
}

fn share_rows(s: &Share, quick: bool, tally: &mut Tally, rows: &mut Vec<Row>) {
    let ok = s.shared();
    if !quick {
        tally.judge("replicas share one unpacked copy", ok);
    }
    let mib = |kib: u64| fmt(kib as f64 / MIB, 1);
    let n = u64::from(s.replicas);
    rows.push(
        Row::new(
            format!(
                "Sharing: {} replicas of the big image (`min-scale` = `max-scale` = {}): disk of `oci/` + `replicas/` (`du -skx`, hard links once)",
                s.replicas, s.replicas
            ),
            format!("{} MiB", mib(s.total_kib)),
        )
        .reference(format!(
            "{} copies of the unpacked image: {} MiB (the image unpacked: {} MiB) · of the total: blobs {} MiB, layers {} MiB, flattened roots {} MiB, replica directories (upper, work, bundle) {} MiB",
            s.replicas,
            mib(s.image_kib * n),
            mib(s.image_kib),
            mib(s.blobs_kib),
            mib(s.layers_kib),
            mib(s.flat_rootfs_kib),
            mib(s.replicas_kib)
        ))
        .target(
            "one unpacked copy",
            verdict(
                ok,
                quick,
                &format!(
                    "replicas add {} MiB",
                    mib(s.total_kib.saturating_sub(s.blobs_kib + s.layers_kib))
                ),
            ),
        ),
    );
    rows.push(
        Row::new(
            "… layer directories under `oci/layers` / replicas' overlay mounts / distinct `lowerdir` lists",
            format!(
                "{} / {} / {}",
                s.layer_dirs, s.overlay_mounts, s.distinct_lowerdirs
            ),
        )
        .reference(format!(
            "the image has {} layer(s); every lower directory in the store's `oci/layers`: {}; {} replica directories; POST → Ready with {} replicas in {} ms; {} of 20 requests through the gateway answered",
            s.image_layers,
            if s.lowers_in_store { "yes" } else { "no" },
            s.replica_dirs,
            s.replicas,
            fmt(s.ready_ms, 0),
            s.answered
        )),
    );
}

/// The results table in Markdown, and the summary of targets met.
pub fn table(r: &Results, quick: bool) -> String {
    let mut rows = Vec::new();
    let mut tally = Tally::default();
    if let Some(c) = &r.cold {
        cold_rows(c, quick, &mut tally, &mut rows);
    }
    if let Some(p) = &r.pull {
        let cached = r.cold.as_ref().map(|c| pct(&c.raw_ms, 0.5));
        pull_rows(p, cached, quick, &mut tally, &mut rows);
    }
    if let Some(s) = &r.share {
        share_rows(s, quick, &mut tally, &mut rows);
    }
    let mut out = String::new();
    out.push_str(&render(&rows, &tally, quick));
    out
}

pub fn history_line(r: &Results, meta: &Meta) -> String {
    let cold = r.cold.as_ref().map_or("—".to_owned(), |c| {
        let net = overhead(c);
        format!(
            "{} / {} ms",
            fmt(pct(&net, 0.5), 1),
            fmt(pct(&net, 0.99), 1)
        )
    });
    let runc = r.cold.as_ref().map_or("—".to_owned(), |c| {
        format!("{} ms", fmt(median(&c.runc_answer_ms), 1))
    });
    let pull = r.pull.as_ref().map_or("—".to_owned(), |p| {
        let pulled: Vec<f64> = p.rounds.iter().map(|r| r.pulled_ms).collect();
        let ready: Vec<f64> = p.rounds.iter().map(|r| r.ready_ms).collect();
        format!(
            "{} / {} ms",
            fmt(median(&pulled), 0),
            fmt(median(&ready), 0)
        )
    });
    let share = r.share.as_ref().map_or("—".to_owned(), |s| {
        format!(
            "{}: {} MiB vs {} MiB",
            s.replicas,
            fmt(s.total_kib as f64 / MIB, 1),
            fmt((s.image_kib * u64::from(s.replicas)) as f64 / MIB, 1)
        )
    });
    format!(
        "| {} | {} | {} | {cold} | {runc} | {pull} | {share} |",
        meta.date, meta.commit, meta.load
    )
}

pub fn section(r: &Results, meta: &Meta, history: &[String]) -> String {
    let mut s = String::new();
    s.push_str(BEGIN);
    s.push_str("\n## Images (issue: OCI images run with runc)\n\n");
    s.push_str(&format!("Command: `{}`  \n", meta.command));
    s.push_str(&format!(
        "Date: {} · commit `{}` · nproc {} · CPU {} · kernel {} · data dir on {} · {} · {} · load average at start {}\n\n",
        meta.date, meta.commit, meta.nproc, meta.cpu, meta.kernel, meta.fs, meta.rustc, meta.tools, meta.load
    ));
    s.push_str(
        "Setup, all on loopback on the same machine, as root: Debian's `docker-registry` with its own config (127.0.0.1, a free port, storage in the scratch dir) receives two images made by `wisp build --push`: **site** (static busybox + one page) and **big** (the same + 10 MB from /dev/urandom, so gzip cannot shrink it). Both run `busybox httpd -f -p $PORT` under `sh -c \"trap 'exit 0' TERM; … & wait\"` (busybox httpd as PID 1 ignores SIGTERM, so each stop would otherwise wait out the grace period). wisp's runc backend: host network, an overlay of the store's unpacked layers per replica, a pod cgroup (cgroup v1 here).\n\n",
    );
    if r.cold.is_some() {
        s.push_str(
            "Cold start: a daemon with `--autoscaler allow-zero-initial-scale=true`; a warm-up Service pulls and unpacks **site**, then N Services of the same image are created with `autoscaling.knative.dev/initial-scale: \"0\"` and wait Ready at zero. Each trial, alternately: `runc run` alone (the limit) on a bundle made from the warm-up replica — its `config.json` as wisp wrote it (same process, environment, mounts, namespaces, capabilities) with root, `PORT`, hostname and cgroup changed, and its root copied flat into a plain directory — timed from `spawn` to the first 200 (TCP connect polled every 100 µs unless the row says otherwise), then killed and deleted untimed; and one request through the gateway to the next Service at zero, timed to the last byte (connection opened first), then the Service deleted and its replica waited out, untimed, so every trial starts with only the warm-up replica running. Overhead = raw − the median of `runc run` alone.\n\n",
        );
    }
    if r.pull.is_some() {
        s.push_str(
            "First pull: each round a fresh daemon on an empty data dir gets one Service of **big** by tag; the clock starts before the POST. \"Image resolved\" and \"pulled image\" are the daemon's log lines (their timestamps against the wall clock at the POST; the second also carries the daemon's own `elapsed_ms`: manifest, config and layer fetched, digests checked, written to its store); then the revision's status Ready with one replica and the Service's Ready (its Route programmed), both polled every 5 ms; then one request through the gateway. The limit, fetched just before each round: the registry alone, manifest + config + layer over one new keep-alive connection.\n\n",
        );
    }
    if let Some(sh) = &r.share {
        s.push_str(&format!(
            "Sharing: on the last pull round's daemon (its Service deleted first), one Service of **big** with `min-scale` = `max-scale` = {}. Once all replicas run: `du -skx` of `oci/` and `replicas/` in one invocation (hard links counted once; the replicas' mounted roots not entered, their upper and work directories counted), the directories under `oci/layers`, and each replica's root from /proc/mounts.\n\n",
            sh.replicas
        ));
    }
    s.push_str(&table(r, false));
    s.push_str(
        "\nKnative's cold start for comparison (KNATIVE.md, \"Figures to beat\"): seconds, 2-4 s with kperf's hello world and 8-18 s in user reports.\n",
    );
    s.push_str(&format!(
        "\n{HISTORY}\n\nOne line per full run of the command.\n\n\
| date | commit | load at start | cold-start overhead p50 / p99 | `runc run` alone p50 | first pull: POST → pulled / → Ready | N replicas on disk vs N copies |\n\
| --- | --- | --- | --- | --- | --- | --- |\n"
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

    #[test]
    fn splice_keeps_other_sections_and_history() {
        let path = std::env::temp_dir().join(format!("wisp-oci-splice-{}.md", std::process::id()));
        let other = "# Benchmarks\n\nintro\n\n<!-- bench:data-plane:begin -->\ndp table\n### Data plane history\n| a | b |\n<!-- bench:data-plane:end -->\n\n### Data plane notes\n\nkept\n";
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

    #[test]
    fn overhead_subtracts_the_median_of_runc_alone() {
        let c = Cold {
            raw_ms: vec![40.0, 50.0],
            runc_answer_ms: vec![20.0, 30.0, 100.0],
            ..Cold::default()
        };
        assert_eq!(overhead(&c), vec![10.0, 20.0]);
    }
}
