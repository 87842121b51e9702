//! The I/O of probing: one attempt of a [`ProbeAction`] ([`Prober`], [`NetProber`]), and the
//! loop that runs attempts on a [`ProbeTracker`]'s schedule and reports verdicts
//! ([`probe_loop`]). Time comes from tokio's clock, so tests run the loop on paused time.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::probe::{ProbeAction, ProbeKind, ProbeSpec, ProbeTracker, Verdict};

/// Runs one attempt of a probe. `Err` carries the reason shown to users.
#[async_trait]
pub trait Prober: Send + Sync + 'static {
    async fn probe(&self, action: &ProbeAction) -> Result<(), String>;
}

/// The real prober: TCP connect, HTTP/1.1 GET, or a command.
#[derive(Debug, Clone, Default)]
pub struct NetProber {
    /// Environment of `exec` probes (the replica's).
    pub env: Vec<(String, String)>,
    /// Working directory of `exec` probes (the replica's).
    pub working_dir: Option<PathBuf>,
}

#[async_trait]
impl Prober for NetProber {
    async fn probe(&self, action: &ProbeAction) -> Result<(), String> {
        match action {
            ProbeAction::Tcp { host, port } => connect(host, *port).await.map(drop),
            ProbeAction::Http {
                host,
                port,
                path,
                headers,
            } => http_get(host, *port, path, headers).await,
            ProbeAction::Exec { command } => self.exec(command).await,
        }
    }
}

async fn connect(host: &str, port: u16) -> Result<TcpStream, String> {
    let stream = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => TcpStream::connect((ip, port)).await,
        Err(_) => TcpStream::connect((host, port)).await,
    };
    stream.map_err(|e| format!("dial tcp {host}:{port}: {e}"))
}

/// A GET over a fresh connection; success on 2xx/3xx (the kubelet's rule, redirects not
/// followed). Reads no further than the status line.
async fn http_get(
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
) -> Result<(), String> {
    let mut stream = connect(host, port).await?;
    let _ = stream.set_nodelay(true);
    let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let mut req = format!("GET {path} HTTP/1.1\r\n");
    if !has("host") {
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        req.push_str(&format!("Host: {authority}\r\n"));
    }
    if !has("user-agent") {
        req.push_str("User-Agent: kube-probe/wisp\r\n");
    }
    if !has("accept") {
        req.push_str("Accept: */*\r\n");
    }
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(|e| format!("HTTP probe {path}: {e}"))?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    let line_end = loop {
        if let Some(i) = buf.iter().position(|b| *b == b'\n') {
            break i;
        }
        if buf.len() > 4096 {
            return Err("HTTP probe: status line too long".to_string());
        }
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("HTTP probe {path}: {e}"))?;
        if n == 0 {
            return Err(format!(
                "HTTP probe {path}: connection closed before a response"
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let line = String::from_utf8_lossy(&buf[..line_end]);
    let code: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .filter(|_| line.starts_with("HTTP/1."))
        .ok_or_else(|| format!("HTTP probe {path}: malformed status line {line:?}"))?;
    if (200..400).contains(&code) {
        Ok(())
    } else {
        Err(format!("HTTP probe failed with statuscode: {code}"))
    }
}

impl NetProber {
    async fn exec(&self, command: &[String]) -> Result<(), String> {
        let Some((program, args)) = command.split_first() else {
            return Err("exec probe: empty command".to_string());
        };
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            // The attempt's timeout drops this future: the command must not outlive it.
            .kill_on_drop(true);
        if let Some(dir) = &self.working_dir {
            cmd.current_dir(dir);
        }
        run_exec_probe(cmd, program).await
    }
}

/// Runs one attempt of an `exec` probe prepared in `cmd` (`program` names it in messages):
/// success on exit 0, else the start of its output as the reason. The command must be
/// `kill_on_drop`, as the attempt's timeout drops this future.
pub(crate) async fn run_exec_probe(
    mut cmd: tokio::process::Command,
    program: &str,
) -> Result<(), String> {
    let out = cmd
        .output()
        .await
        .map_err(|e| format!("exec probe {program}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    let text: String = text.trim().chars().take(200).collect();
    Err(format!(
        "exec probe {program} failed ({}): {text}",
        out.status
    ))
}

/// The shortest interval between two `exec` attempts (Knative's aggressive rate).
pub const EXEC_MIN_INTERVAL: Duration = Duration::from_millis(50);

/// A verdict of one probe, sent to the replica's supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeEvent {
    pub kind: ProbeKind,
    pub verdict: Verdict,
    /// Why the last attempt failed (empty on a pass).
    pub message: String,
}

/// Probes on the tracker's schedule until the receiver is gone; sends each verdict change. A
/// startup probe stops after its first verdict.
pub async fn probe_loop(
    spec: ProbeSpec,
    prober: Arc<dyn Prober>,
    tx: mpsc::UnboundedSender<ProbeEvent>,
) {
    let mut tracker = ProbeTracker::new(spec.kind, spec.timing);
    // Aggressive probing is for connects; a command is a process spawn per attempt.
    let floor = match spec.action {
        ProbeAction::Exec { .. } => EXEC_MIN_INTERVAL,
        _ => Duration::ZERO,
    };
    let start = Instant::now();
    let mut next = start + tracker.first_delay();
    loop {
        tokio::time::sleep_until(next).await;
        let attempt = Instant::now();
        let timeout = tracker.attempt_timeout();
        let outcome = match tokio::time::timeout(timeout, prober.probe(&spec.action)).await {
            Ok(r) => r,
            Err(_) => Err(format!("probe timed out after {}", show(timeout))),
        };
        let ok = outcome.is_ok();
        if let Some(verdict) = tracker.record(ok) {
            let event = ProbeEvent {
                kind: spec.kind,
                verdict,
                message: outcome.err().unwrap_or_default(),
            };
            if tx.send(event).is_err() || spec.kind == ProbeKind::Startup {
                return;
            }
        }
        next = attempt + tracker.next_delay(attempt - start).max(floor);
        // Never schedule in the past (a slow attempt): go again at once instead.
        next = next.max(Instant::now());
    }
}

fn show(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::ProbeTiming;
    use std::sync::Mutex;

    /// Answers from a script of (virtual time since creation -> result), recording attempts.
    struct Scripted {
        start: Instant,
        ok_from: Duration,
        hang: bool,
        attempts: Mutex<Vec<Duration>>,
    }

    #[async_trait]
    impl Prober for Scripted {
        async fn probe(&self, _: &ProbeAction) -> Result<(), String> {
            let t = self.start.elapsed();
            if let Ok(mut a) = self.attempts.lock() {
                a.push(t);
            }
            if self.hang {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            if t >= self.ok_from {
                Ok(())
            } else {
                Err("connection refused".to_string())
            }
        }
    }

    fn spec(kind: ProbeKind, timing: ProbeTiming) -> ProbeSpec {
        ProbeSpec {
            kind,
            action: ProbeAction::Tcp {
                host: "127.0.0.1".into(),
                port: 1,
            },
            timing,
            termination_grace: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn aggressive_readiness_on_paused_time() {
        let prober = Arc::new(Scripted {
            start: Instant::now(),
            ok_from: Duration::from_millis(250),
            hang: false,
            attempts: Mutex::new(Vec::new()),
        });
        let (tx, mut rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(probe_loop(
            spec(ProbeKind::Readiness, ProbeTiming::aggressive()),
            prober.clone(),
            tx,
        ));
        let ev = rx.recv().await.expect("a verdict");
        assert_eq!(ev.verdict, Verdict::Pass);
        // 1 ms steps to 100 ms, then 10 ms steps: the first attempt at or after 250 ms.
        assert_eq!(prober.start.elapsed(), Duration::from_millis(250));
        let n = prober.attempts.lock().map(|a| a.len()).unwrap_or(0);
        assert_eq!(n, 100 + 15 + 1);
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn hung_attempts_time_out_and_count_as_failures() {
        let prober = Arc::new(Scripted {
            start: Instant::now(),
            ok_from: Duration::ZERO,
            hang: true,
            attempts: Mutex::new(Vec::new()),
        });
        let timing = ProbeTiming {
            initial_delay: Duration::from_secs(1),
            period: Some(Duration::from_secs(2)),
            timeout: Some(Duration::from_millis(500)),
            success_threshold: 1,
            failure_threshold: 2,
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(probe_loop(
            spec(ProbeKind::Liveness, timing),
            prober.clone(),
            tx,
        ));
        let ev = rx.recv().await.expect("a verdict");
        assert_eq!(ev.verdict, Verdict::Fail);
        assert_eq!(ev.message, "probe timed out after 500ms");
        // Attempts at 1 s and 3 s; the second times out at 3.5 s.
        assert_eq!(prober.start.elapsed(), Duration::from_millis(3500));
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn startup_probe_reports_once_and_stops() {
        let prober = Arc::new(Scripted {
            start: Instant::now(),
            ok_from: Duration::from_secs(3),
            hang: false,
            attempts: Mutex::new(Vec::new()),
        });
        let timing = ProbeTiming {
            initial_delay: Duration::ZERO,
            period: Some(Duration::from_secs(1)),
            timeout: None,
            success_threshold: 1,
            failure_threshold: 10,
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(probe_loop(
            spec(ProbeKind::Startup, timing),
            prober.clone(),
            tx,
        ));
        assert_eq!(rx.recv().await.map(|e| e.verdict), Some(Verdict::Pass));
        assert!(
            task.await.is_ok(),
            "the loop ends after the startup verdict"
        );
        assert_eq!(rx.recv().await, None);
    }
}
