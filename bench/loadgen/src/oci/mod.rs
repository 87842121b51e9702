//! The image benchmark: wisp's OCI backend (runc) against `runc run` alone and a bare registry
//! download.
//!
//! A real registry (Debian's `docker-registry`, on loopback with a free port, its config and
//! storage in the workdir) receives two images made by `wisp build --push`: `site` (busybox
//! and one HTML page) and `big` (the same plus an incompressible random file, ~10 MB). Both
//! run busybox's httpd on `$PORT` under a shell that exits on SIGTERM (busybox httpd as PID 1
//! ignores it, which would make every stop wait out the grace period).
//!
//! 1. `cold`: a daemon pulls `site` for a warm-up Service, then N Services of the same image
//!    are created at zero (`initial-scale: "0"`); one request each through the gateway, timed,
//!    alternated with `runc run` alone on an equivalent bundle (the warm-up replica's own
//!    `config.json`, its root file system copied flat) timed from spawn to the first 200;
//! 2. `pull`: a fresh daemon per round, one Service of `big`: POST → image resolved → pulled
//!    (the daemon's own `elapsed_ms`) → Ready → first answer, alternated with the registry
//!    alone (manifest, config and layer fetched over one keep-alive connection);
//! 3. `share`: on the last pull round's daemon, one Service pinned at 10 replicas of `big`:
//!    disk use of the image store and the replica directories together (`du`, hard links
//!    once, mounts not crossed) against ten copies, the unpacked layer directories, and the
//!    replicas' overlay mounts.

pub mod cold;
pub mod pull;
pub mod registry;
pub mod report;
pub mod share;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use bytes::Bytes;
use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::daemon::Daemon;
use crate::data_plane::{REVISIONS, RevState, SERVICES, rev_state};
use crate::http::Conn;

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
    /// File to append every started daemon's and registry's pid to, for the clean-up trap.
    #[arg(long)]
    pidfile: Option<PathBuf>,
    #[arg(long, default_value = "/usr/sbin/runc")]
    runc: PathBuf,
    #[arg(long, default_value = "/usr/bin/docker-registry")]
    registry: PathBuf,
    /// A static busybox, copied into the images.
    #[arg(long, default_value = "/bin/busybox")]
    busybox: PathBuf,
    /// Quick run (CI): figures are printed but never judged.
    #[arg(long)]
    quick: bool,
    /// Only these parts (cold, pull, share), comma-separated; all by default.
    #[arg(long, value_delimiter = ',')]
    parts: Vec<String>,
    #[arg(long, default_value_t = 100)]
    cold_trials: usize,
    /// How often `runc run` alone's port is polled (wisp's readiness probe: every 1 ms).
    #[arg(long, default_value_t = 100)]
    runc_poll_us: u64,
    /// Fresh daemons that pull the big image, alternated with the registry alone.
    #[arg(long, default_value_t = 10)]
    pull_rounds: usize,
    /// Bytes of random data in the big image.
    #[arg(long, default_value_t = 10_000_000)]
    pull_bytes: usize,
    #[arg(long, default_value_t = 10)]
    share_replicas: u32,
    /// Give up (and stop everything) after this long.
    #[arg(long, default_value_t = 600)]
    deadline_secs: u64,
    #[arg(long)]
    json: PathBuf,
    /// Write the section into this Markdown file (full runs only).
    #[arg(long)]
    benchmarks_md: Option<PathBuf>,
    #[command(flatten)]
    meta: crate::report::Meta,
}

/// What every part needs.
#[derive(Debug, Clone)]
pub struct Opts {
    pub bin: PathBuf,
    pub workdir: PathBuf,
    pub pidfile: Option<PathBuf>,
    pub runc: PathBuf,
    pub cold_trials: usize,
    pub runc_poll: Duration,
    pub pull_rounds: usize,
    pub share_replicas: u32,
}

/// An image pushed to the registry.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImageInfo {
    /// `127.0.0.1:PORT/name:v1`
    pub reference: String,
    pub repository: String,
    pub digest: String,
    pub config: Blob,
    pub layers: Vec<Blob>,
    /// Bytes of the files put in (busybox, the page, the random file).
    pub content_bytes: u64,
    /// Of which random.
    pub random_bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Blob {
    pub digest: String,
    pub size: u64,
}

impl ImageInfo {
    /// Bytes a pull downloads: manifest aside, the config and the (compressed) layers.
    pub fn download_bytes(&self) -> u64 {
        self.config.size + self.layers.iter().map(|l| l.size).sum::<u64>()
    }
}

/// Everything one invocation measured (also written as JSON).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Results {
    pub quick: bool,
    pub site: Option<ImageInfo>,
    pub big: Option<ImageInfo>,
    pub cold: Option<cold::Cold>,
    pub pull: Option<pull::Pull>,
    pub share: Option<share::Share>,
}

/// The entrypoint of both images: busybox's httpd on `$PORT`, under a shell that exits on
/// SIGTERM (PID 1 of a pid namespace gets only the signals it handles, and httpd handles none).
pub const ENTRYPOINT: [&str; 4] = [
    "/bin/busybox",
    "sh",
    "-c",
    "trap 'exit 0' TERM; /bin/busybox httpd -f -p \"$PORT\" -h /www & wait",
];

/// What the images' page says (the check that an answer came from the container).
pub const PAGE: &str = "hello from a wisp OCI benchmark image\n";

/// A Service running `image`, with template annotations.
pub fn service_body(name: &str, image: &str, annotations: &[(&str, &str)]) -> Bytes {
    let annotations: serde_json::Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
        .collect();
    Bytes::from(
        json!({
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {"template": {
                "metadata": {"annotations": annotations},
                "spec": {"containers": [{"image": image}]}
            }}
        })
        .to_string(),
    )
}

pub async fn delete_service(conn: &mut Conn, name: &str) -> anyhow::Result<()> {
    let path = format!("{SERVICES}/{name}");
    let (status, body) = conn.send(Method::DELETE, &path, None).await?;
    if !status.is_success() {
        bail!(
            "DELETE {path}: {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(())
}

/// True when a Service's `Ready` condition is `True` (its Route programmed).
pub fn service_ready(obj: &Value) -> bool {
    obj["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// Polls Service `name` and Revision `{name}-00001` every `every` until the Service is Ready
/// and the Revision satisfies `ok`; returns when each was first seen so (Service, Revision).
pub async fn wait_ready(
    conn: &mut Conn,
    name: &str,
    ok: impl Fn(&RevState) -> bool,
    every: Duration,
    timeout: Duration,
    daemon: &Daemon,
) -> anyhow::Result<(Instant, Instant)> {
    let deadline = Instant::now() + timeout;
    let svc_path = format!("{SERVICES}/{name}");
    let rev_path = format!("{REVISIONS}/{name}-00001");
    let (mut svc_at, mut rev_at) = (None, None);
    let mut last = (Value::Null, Value::Null);
    loop {
        if rev_at.is_none() {
            let (status, body) = conn.get(&rev_path).await?;
            if status == StatusCode::OK {
                let v: Value = serde_json::from_slice(&body)?;
                if ok(&rev_state(&v)) {
                    rev_at = Some(Instant::now());
                }
                last.1 = v["status"].clone();
            }
        }
        if svc_at.is_none() {
            let (status, body) = conn.get(&svc_path).await?;
            if status == StatusCode::OK {
                let v: Value = serde_json::from_slice(&body)?;
                if service_ready(&v) {
                    svc_at = Some(Instant::now());
                }
                last.0 = v["status"].clone();
            }
        }
        if let (Some(s), Some(r)) = (svc_at, rev_at) {
            return Ok((s, r));
        }
        if Instant::now() > deadline {
            bail!(
                "Service {name} not Ready with its revision as expected after {timeout:?}; Service status: {}; revision status: {}\n{}",
                last.0,
                last.1,
                daemon.log_tail()
            );
        }
        tokio::time::sleep(every).await;
    }
}

/// Lists Services until every one in `names` is Ready.
pub async fn wait_services_ready(
    conn: &mut Conn,
    names: &[String],
    timeout: Duration,
    daemon: &Daemon,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let list = conn.get_json(SERVICES).await?;
        let ready: std::collections::HashSet<&str> = list["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter(|i| service_ready(i))
                    .filter_map(|i| i["metadata"]["name"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        let pending = names.iter().filter(|n| !ready.contains(n.as_str())).count();
        if pending == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{pending} of {} Services not Ready after {timeout:?}:\n{}",
                names.len(),
                daemon.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The replica directories of a revision (`{data}/replicas/default/{rev}/{id}`).
pub fn replica_dirs(data: &Path, revision: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(data.join("replicas/default").join(revision))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

/// Waits until nothing of `revision` is left under `{data}/replicas` (its replicas stopped,
/// their root file systems released); returns how long that took.
pub async fn wait_replicas_gone(
    data: &Path,
    revision: &str,
    timeout: Duration,
    daemon: &Daemon,
) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let dir = data.join("replicas/default").join(revision);
    while dir.exists() {
        if t0.elapsed() > timeout {
            bail!(
                "{} still exists {timeout:?} after its Service was deleted:\n{}",
                dir.display(),
                daemon.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(t0.elapsed())
}

/// An overlay mount from /proc/mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlay {
    pub target: PathBuf,
    /// `lowerdir`, top layer first.
    pub lower: Vec<PathBuf>,
    pub upper: Option<PathBuf>,
}

/// /proc/mounts escapes space, tab, newline and backslash as octal.
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && let Some(v) = s
                .get(i + 1..i + 4)
                .and_then(|o| u8::from_str_radix(o, 8).ok())
        {
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Overlay mounts whose mount point is under `prefix`.
pub fn overlays_under(prefix: &Path) -> Vec<Overlay> {
    let text = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            if f.len() < 4 || f[2] != "overlay" {
                return None;
            }
            let target = PathBuf::from(unescape_mount(f[1]));
            if !target.starts_with(prefix) {
                return None;
            }
            let mut lower = Vec::new();
            let mut upper = None;
            for opt in f[3].split(',') {
                if let Some(l) = opt.strip_prefix("lowerdir=") {
                    lower = l
                        .split(':')
                        .map(|p| PathBuf::from(unescape_mount(p)))
                        .collect();
                } else if let Some(u) = opt.strip_prefix("upperdir=") {
                    upper = Some(PathBuf::from(unescape_mount(u)));
                }
            }
            Some(Overlay {
                target,
                lower,
                upper,
            })
        })
        .collect()
}

/// `du -skx` over `paths` in one invocation (hard links counted once, mounts not crossed),
/// in KiB; the grand total when there are several.
pub fn du_kib(paths: &[&Path]) -> anyhow::Result<u64> {
    let out = std::process::Command::new("du")
        .args(["-s", "-k", "-x", "-c"])
        .args(paths)
        .output()
        .context("cannot run du")?;
    anyhow::ensure!(
        out.status.success(),
        "du failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .last()
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("odd output from du")
}

/// Seconds since the epoch of a daemon log line's timestamp (`2026-11-24T21:00:41.317612Z`).
pub fn log_epoch(line: &str) -> Option<f64> {
    let ts = line.split_whitespace().next()?.strip_suffix('Z')?;
    let (date, time) = ts.split_once('T')?;
    let mut d = date.split('-').map(|v| v.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':');
    let h: f64 = t.next()?.parse().ok()?;
    let min: f64 = t.next()?.parse().ok()?;
    let s: f64 = t.next()?.parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days as f64 * 86_400.0 + h * 3600.0 + min * 60.0 + s)
}

pub fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The value of ` key=value` on a log line.
pub fn log_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    line[start..].split_whitespace().next()
}

/// Runs `wisp build … --push`; returns what was pushed, read back from the build's store.
async fn build_image(
    bin: &Path,
    build_dir: &Path,
    reference: &str,
    copies: &[(PathBuf, &str)],
) -> anyhow::Result<ImageInfo> {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("build");
    for (src, dest) in copies {
        cmd.arg("--copy").arg(format!("{}:{dest}", src.display()));
    }
    let out = cmd
        .arg("--entrypoint")
        .arg(serde_json::to_string(&ENTRYPOINT)?)
        .args(["--image", reference, "--push", "--data-dir"])
        .arg(build_dir)
        .env("NO_COLOR", "1")
        .output()
        .await
        .context("cannot run wisp build")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "wisp build {reference} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let digest = stdout
        .split_whitespace()
        .find_map(|w| w.split_once("@sha256:").map(|(_, h)| h.to_owned()))
        .with_context(|| format!("no digest in wisp build's output: {stdout}"))?;
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(build_dir.join("oci/blobs/sha256").join(&digest))
            .context("the built manifest is not in the build's store")?,
    )?;
    let blob = |v: &Value| Blob {
        digest: v["digest"].as_str().unwrap_or_default().to_owned(),
        size: v["size"].as_u64().unwrap_or_default(),
    };
    let mut content_bytes = 0;
    for (src, _) in copies {
        content_bytes += du_apparent(src);
    }
    let repository = reference
        .split_once('/')
        .map(|(_, r)| r.rsplit_once(':').map_or(r, |(n, _)| n).to_owned())
        .unwrap_or_default();
    Ok(ImageInfo {
        reference: reference.to_owned(),
        repository,
        digest: format!("sha256:{digest}"),
        config: blob(&manifest["config"]),
        layers: manifest["layers"]
            .as_array()
            .map(|ls| ls.iter().map(blob).collect())
            .unwrap_or_default(),
        content_bytes,
        random_bytes: 0,
    })
}

/// Bytes of the regular files at or under `path`.
fn du_apparent(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_dir() {
        std::fs::read_dir(path)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| du_apparent(&e.path()))
                    .sum()
            })
            .unwrap_or(0)
    } else if meta.is_file() {
        meta.len()
    } else {
        0
    }
}

/// Builds and pushes both images; returns (site, big).
async fn images(
    a: &Args,
    registry: &registry::Registry,
    pull_bytes: usize,
) -> anyhow::Result<(ImageInfo, ImageInfo)> {
    let files = a.workdir.join("files");
    let www = files.join("www");
    std::fs::create_dir_all(&www)?;
    std::fs::write(www.join("index.html"), PAGE)?;
    // Incompressible: gzip leaves it as big as it is.
    let mut random = vec![0u8; pull_bytes];
    {
        use std::io::Read;
        std::fs::File::open("/dev/urandom")?.read_exact(&mut random)?;
    }
    let random_file = files.join("random.bin");
    std::fs::write(&random_file, &random)?;
    drop(random);
    let build = a.workdir.join("build");
    let host = registry.addr.to_string();
    let site = build_image(
        &a.bin,
        &build,
        &format!("{host}/site:v1"),
        &[(a.busybox.clone(), "/bin/busybox"), (www.clone(), "/www")],
    )
    .await?;
    let mut big = build_image(
        &a.bin,
        &build,
        &format!("{host}/big:v1"),
        &[
            (a.busybox.clone(), "/bin/busybox"),
            (www, "/www"),
            (random_file, "/data/random.bin"),
        ],
    )
    .await?;
    big.random_bytes = pull_bytes as u64;
    Ok((site, big))
}

fn runs(parts: &[String], part: &str) -> bool {
    parts.is_empty() || parts.iter().any(|p| p == part)
}

async fn run(a: &Args) -> anyhow::Result<Results> {
    for p in &a.parts {
        anyhow::ensure!(
            ["cold", "pull", "share"].contains(&p.as_str()),
            "unknown part {p:?} (cold, pull, share)"
        );
    }
    let o = Opts {
        bin: a.bin.clone(),
        workdir: a.workdir.clone(),
        pidfile: a.pidfile.clone(),
        runc: a.runc.clone(),
        cold_trials: a.cold_trials,
        runc_poll: Duration::from_micros(a.runc_poll_us),
        pull_rounds: a.pull_rounds.max(1),
        share_replicas: a.share_replicas,
    };
    let mut res = Results {
        quick: a.quick,
        ..Results::default()
    };
    let save = |res: &Results| -> anyhow::Result<()> {
        std::fs::write(&a.json, serde_json::to_string_pretty(res)?)?;
        Ok(())
    };
    eprintln!("registry and images ...");
    let registry = registry::Registry::start(
        &a.registry,
        &a.workdir.join("registry"),
        a.pidfile.as_deref(),
    )
    .await
    .context("docker-registry")?;
    let (site, big) = images(a, &registry, a.pull_bytes)
        .await
        .context("building the images")?;
    eprintln!(
        "  {}: {} KiB to download; {}: {} KiB",
        site.reference,
        site.download_bytes() / 1024,
        big.reference,
        big.download_bytes() / 1024
    );
    res.site = Some(site.clone());
    res.big = Some(big.clone());
    save(&res)?;

    if runs(&a.parts, "cold") {
        eprintln!(
            "cold: {} Services of {} at zero, alternated with runc run alone ...",
            o.cold_trials, site.reference
        );
        res.cold = Some(cold::run(&o, &site).await.context("cold start")?);
        save(&res)?;
    }
    let mut kept = None;
    if runs(&a.parts, "pull") {
        eprintln!(
            "pull: {} fresh daemon(s) pulling {}, alternated with the registry alone ...",
            o.pull_rounds, big.reference
        );
        let (pull, daemon) = pull::run(&o, &registry, &big, runs(&a.parts, "share"))
            .await
            .context("first pull")?;
        res.pull = Some(pull);
        kept = daemon;
        save(&res)?;
    }
    if runs(&a.parts, "share") {
        eprintln!(
            "share: {} replicas of {} ...",
            o.share_replicas, big.reference
        );
        res.share = Some(share::run(&o, &big, kept).await.context("sharing")?);
        save(&res)?;
    }
    registry.stop().await;
    Ok(res)
}

/// `wisp-loadgen oci`.
pub async fn main(a: Args) -> anyhow::Result<()> {
    let res = tokio::time::timeout(Duration::from_secs(a.deadline_secs), run(&a))
        .await
        .map_err(|_| anyhow::anyhow!("gave up after {} s (--deadline-secs)", a.deadline_secs))??;
    println!("{}", report::table(&res, a.quick));
    if let Some(md) = &a.benchmarks_md {
        report::splice(md, &res, &a.meta)?;
        eprintln!("wrote the OCI section of {}", md.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_timestamps_are_read_as_utc() {
        let t = log_epoch("2026-11-24T21:00:41.317612Z  INFO wisp: x").unwrap();
        // date -u -d 2026-11-24T21:00:41Z +%s
        assert!((t - 1_795_554_041.317_612).abs() < 1e-6, "{t}");
        assert_eq!(log_epoch("garbage"), None);
    }

    #[test]
    fn mount_fields_are_unescaped() {
        assert_eq!(unescape_mount("/a\\040b/c"), "/a b/c");
        assert_eq!(unescape_mount("/plain"), "/plain");
    }
}
