//! `wisp serve` as a child process: started on loopback port 0 (the kernel picks free ports,
//! so there is no race with other daemons on the machine), its stderr read line by line to
//! time the log lines that mark start-up, and its memory and CPU read from /proc.

use std::collections::VecDeque;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{oneshot, watch};

use crate::http::Conn;

/// What the daemon logged when it was ready to serve.
struct Serving {
    at: Instant,
    api: SocketAddr,
    gateway: Option<SocketAddr>,
    events: Option<SocketAddr>,
    startup_ms: Option<u64>,
}

pub struct Daemon {
    child: Child,
    pub pid: u32,
    pub api: SocketAddr,
    /// The gateway's address, from the same log line (`None` if it was not logged).
    pub gateway: Option<SocketAddr>,
    /// The event plane's ingress (brokers' and channels' URLs), from the same log line.
    pub events: Option<SocketAddr>,
    /// Just before `spawn`: start-up times are measured from here.
    pub spawned: Instant,
    /// When the "wisp is serving" line was read.
    pub serving_at: Instant,
    /// The daemon's own `startup_ms=` figure on that line.
    pub logged_startup_ms: Option<u64>,
    synced: watch::Receiver<Option<Instant>>,
    tail: Arc<Mutex<VecDeque<String>>>,
}

/// Removes ANSI colour sequences, in case the daemon colours its log despite `NO_COLOR`.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The value of ` key=value` on a log line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    line[start..].split_whitespace().next()
}

impl Daemon {
    /// Starts `bin serve` on `data_dir` with `extra_args` (e.g. `--autoscaler KEY=VALUE`) and
    /// waits for its "wisp is serving" line.
    pub async fn spawn_with(
        bin: &Path,
        data_dir: &Path,
        pidfile: Option<&Path>,
        extra_args: &[String],
    ) -> anyhow::Result<Daemon> {
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--api-addr", "127.0.0.1:0", "--gateway-addr", "127.0.0.1:0"])
            .args(["--events-addr", "127.0.0.1:0"])
            .args(extra_args)
            .env("NO_COLOR", "1")
            .env("WISP_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let spawned = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let pid = child.id().context("child has no pid")?;
        if let Some(pidfile) = pidfile {
            // The script's trap kills these if this tool itself is killed.
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(pidfile)?;
            writeln!(f, "{pid}")?;
        }
        let stderr = child.stderr.take().context("no stderr pipe")?;
        let (serving_tx, serving_rx) = oneshot::channel::<Serving>();
        let (synced_tx, synced) = watch::channel(None);
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let tail_w = tail.clone();
        tokio::spawn(async move {
            let mut serving_tx = Some(serving_tx);
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(raw)) = lines.next_line().await {
                let now = Instant::now();
                let line = strip_ansi(&raw);
                if line.contains("wisp is serving")
                    && let Some(api) = field(&line, "api").and_then(|a| a.parse().ok())
                    && let Some(tx) = serving_tx.take()
                {
                    let startup_ms = field(&line, "startup_ms").and_then(|v| v.parse().ok());
                    let gateway = field(&line, "gateway").and_then(|a| a.parse().ok());
                    let events = field(&line, "events").and_then(|a| a.parse().ok());
                    let _ = tx.send(Serving {
                        at: now,
                        api,
                        gateway,
                        events,
                        startup_ms,
                    });
                }
                if line.contains("serving controller synced") {
                    synced_tx.send_replace(Some(now));
                }
                let mut tail = tail_w.lock().unwrap_or_else(|e| e.into_inner());
                if tail.len() == 40 {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        });
        let serving = tokio::select! {
            s = serving_rx => s.ok(),
            _ = tokio::time::sleep(Duration::from_secs(60)) => None,
        };
        let Some(serving) = serving else {
            let _ = child.start_kill();
            let _ = child.wait().await;
            bail!(
                "wisp serve did not log \"wisp is serving\"; its last lines:\n{}",
                Vec::from(tail.lock().unwrap_or_else(|e| e.into_inner()).clone()).join("\n")
            );
        };
        Ok(Daemon {
            child,
            pid,
            api: serving.api,
            gateway: serving.gateway,
            events: serving.events,
            spawned,
            serving_at: serving.at,
            logged_startup_ms: serving.startup_ms,
            synced,
            tail,
        })
    }

    pub fn log_tail(&self) -> String {
        Vec::from(self.tail.lock().unwrap_or_else(|e| e.into_inner()).clone()).join("\n")
    }

    /// Polls `path` with fresh connections until it answers 200; returns when it did.
    pub async fn wait_answers(&self, path: &str) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(mut conn) = Conn::connect(self.api).await
                && let Ok((status, _)) = conn.get(path).await
                && status.is_success()
            {
                return Ok(Instant::now());
            }
            if Instant::now() > deadline {
                bail!(
                    "the API did not answer {path} within 60 s:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Waits for the "serving controller synced" line; returns when it was read.
    pub async fn wait_synced(&mut self) -> anyhow::Result<Instant> {
        let r = tokio::time::timeout(
            Duration::from_secs(120),
            self.synced.wait_for(Option::is_some),
        )
        .await;
        match r.map(|r| r.map(|at| *at)) {
            Ok(Ok(Some(at))) => Ok(at),
            _ => bail!(
                "no \"serving controller synced\" line within 120 s:\n{}",
                self.log_tail()
            ),
        }
    }

    /// The gateway's address; an error if the daemon did not log one.
    pub fn gateway_addr(&self) -> anyhow::Result<SocketAddr> {
        self.gateway
            .context("wisp serve did not log its gateway address on \"wisp is serving\"")
    }

    /// The event plane's ingress address; an error if the daemon did not log one.
    pub fn events_addr(&self) -> anyhow::Result<SocketAddr> {
        self.events.context(
            "wisp serve did not log its event ingress address (events=) on \"wisp is serving\"",
        )
    }

    /// The daemon's direct child processes (its replicas), with what their environment says.
    pub fn children(&self) -> Vec<ChildProc> {
        children(self.pid)
    }

    pub fn mem(&self) -> anyhow::Result<Mem> {
        Mem::read(self.pid)
    }

    /// CPU time (user + system) the daemon has used so far.
    pub fn cpu(&self) -> anyhow::Result<Duration> {
        cpu_time(self.pid)
    }

    /// SIGTERM, then waits for a clean exit; returns how long the exit took.
    pub async fn stop(mut self) -> anyhow::Result<Duration> {
        let t = Instant::now();
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()?
            .success();
        anyhow::ensure!(ok, "kill -TERM {} failed", self.pid);
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                anyhow::ensure!(
                    status.success(),
                    "wisp serve exited with {status}:\n{}",
                    self.log_tail()
                );
                Ok(t.elapsed())
            }
            Err(_) => {
                let _ = self.child.start_kill();
                let _ = self.child.wait().await;
                bail!("wisp serve did not exit within 30 s of SIGTERM")
            }
        }
    }
}

/// A child process of the daemon: a replica, identified by the environment wisp gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildProc {
    pub pid: u32,
    /// `K_SERVICE`, empty if unset.
    pub service: String,
    /// `PORT`: where the replica listens.
    pub port: Option<u16>,
}

/// Direct children of `pid` (from every thread's `/proc/PID/task/TID/children`).
pub fn children(pid: u32) -> Vec<ChildProc> {
    let mut pids: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .filter_map(Result::ok)
                .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
                .flat_map(|s| {
                    s.split_whitespace()
                        .filter_map(|p| p.parse().ok())
                        .collect::<Vec<u32>>()
                })
                .collect()
        })
        .unwrap_or_default();
    pids.sort_unstable();
    pids.dedup();
    pids.into_iter()
        .map(|pid| {
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let mut child = ChildProc {
                pid,
                service: String::new(),
                port: None,
            };
            for var in env.split(|&b| b == 0) {
                let var = String::from_utf8_lossy(var);
                if let Some(v) = var.strip_prefix("K_SERVICE=") {
                    child.service = v.to_owned();
                } else if let Some(v) = var.strip_prefix("PORT=") {
                    child.port = v.parse().ok();
                }
            }
            child
        })
        .collect()
}

/// Memory of a process, from /proc/PID/status, in KiB.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Mem {
    pub rss_kib: u64,
    pub hwm_kib: u64,
    pub anon_kib: u64,
    pub file_kib: u64,
    pub threads: u64,
}

impl Mem {
    pub fn read(pid: u32) -> anyhow::Result<Mem> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let mut m = Mem::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let n = value
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            match key {
                "VmRSS" => m.rss_kib = n,
                "VmHWM" => m.hwm_kib = n,
                "RssAnon" => m.anon_kib = n,
                "RssFile" => m.file_kib = n,
                "Threads" => m.threads = n,
                _ => {}
            }
        }
        anyhow::ensure!(m.rss_kib > 0, "no VmRSS in /proc/{pid}/status");
        Ok(m)
    }
}

fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// utime + stime of a process (10 ms resolution on most kernels).
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let hz = *TICKS.get_or_init(clock_ticks_per_second);
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after "(comm)": state is the first, utime the 12th, stime the 13th.
    let rest = text.rsplit_once(')').context("odd /proc/PID/stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).context("no utime")?.parse::<u64>()?
        + f.get(12).context("no stime")?.parse::<u64>()?;
    Ok(Duration::from_micros(ticks * 1_000_000 / hz))
}

/// Bytes of the files directly in `dir` (the SQLite file, its WAL and shared memory).
pub fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serving_line_fields_are_read() {
        let line = strip_ansi(
            "2026-11-25T10:00:00.1Z  INFO wisp::serve: wisp is serving api=127.0.0.1:4100 \
gateway=127.0.0.1:4101 events=127.0.0.1:4102 data_dir=/tmp/x startup_ms=12",
        );
        assert_eq!(field(&line, "api"), Some("127.0.0.1:4100"));
        assert_eq!(field(&line, "gateway"), Some("127.0.0.1:4101"));
        assert_eq!(field(&line, "events"), Some("127.0.0.1:4102"));
        assert_eq!(field(&line, "startup_ms"), Some("12"));
        assert_eq!(field(&line, "missing"), None);
    }
}
