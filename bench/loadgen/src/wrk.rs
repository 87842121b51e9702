//! wrk as a child process: closed-loop keep-alive load (each connection sends its next request
//! as soon as the last answer arrived), its figures read from one JSON line printed by a Lua
//! `done` hook (`wrk_report.lua`) instead of parsing wrk's text.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tokio::process::Command;

const SCRIPT: &str = include_str!("wrk_report.lua");

/// What wrk reports, latencies in ms.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct WrkResult {
    pub requests: u64,
    pub duration_s: f64,
    pub rps: f64,
    /// Socket errors (connect, read, write, timeout) plus non-2xx/3xx answers.
    pub errors: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

#[derive(Deserialize)]
struct Raw {
    requests: f64,
    duration_us: f64,
    connect_errors: f64,
    read_errors: f64,
    write_errors: f64,
    status_errors: f64,
    timeouts: f64,
    p50_us: f64,
    p90_us: f64,
    p99_us: f64,
    p999_us: f64,
    max_us: f64,
    mean_us: f64,
}

pub struct Wrk {
    bin: PathBuf,
    script: PathBuf,
}

/// One wrk invocation.
pub struct Load<'a> {
    pub url: &'a str,
    /// `Host:` header, when it is not the URL's.
    pub host: Option<&'a str>,
    pub threads: usize,
    pub connections: usize,
    pub duration: Duration,
}

impl Wrk {
    /// Writes the Lua hook into `workdir`.
    pub fn new(bin: &Path, workdir: &Path) -> anyhow::Result<Wrk> {
        let script = workdir.join("wrk_report.lua");
        std::fs::write(&script, SCRIPT)?;
        Ok(Wrk {
            bin: bin.to_owned(),
            script,
        })
    }

    pub async fn run(&self, load: &Load<'_>) -> anyhow::Result<WrkResult> {
        let secs = load.duration.as_secs().max(1);
        let mut cmd = Command::new(&self.bin);
        cmd.arg(format!("-t{}", load.threads))
            .arg(format!("-c{}", load.connections))
            .arg(format!("-d{secs}s"))
            .args(["--timeout", "5s", "-s"])
            .arg(&self.script);
        if let Some(host) = load.host {
            cmd.arg("-H").arg(format!("Host: {host}"));
        }
        cmd.arg(load.url).kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(secs + 30), cmd.output())
            .await
            .context("wrk did not finish")?
            .with_context(|| format!("cannot run {}", self.bin.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "wrk exited with {}: {}{}",
                out.status,
                stdout,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("WRKJSON "))
            .with_context(|| format!("no WRKJSON line in wrk's output:\n{stdout}"))?;
        let r: Raw = serde_json::from_str(line).with_context(|| format!("odd line {line}"))?;
        let duration_s = r.duration_us / 1e6;
        Ok(WrkResult {
            requests: r.requests as u64,
            duration_s,
            rps: if duration_s > 0.0 {
                r.requests / duration_s
            } else {
                0.0
            },
            errors: (r.connect_errors
                + r.read_errors
                + r.write_errors
                + r.status_errors
                + r.timeouts) as u64,
            p50_ms: r.p50_us / 1e3,
            p90_ms: r.p90_us / 1e3,
            p99_ms: r.p99_us / 1e3,
            p999_ms: r.p999_us / 1e3,
            max_ms: r.max_us / 1e3,
            mean_ms: r.mean_us / 1e3,
        })
    }
}
