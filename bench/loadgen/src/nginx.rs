//! nginx as a reverse proxy to one app, configured from `bench/nginx/proxy.conf.in` and run in
//! the foreground (`daemon off`) as our child, on a free loopback port.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use crate::daemon::cpu_time;

pub struct Nginx {
    child: Child,
    pub pid: u32,
    pub addr: SocketAddr,
}

/// A loopback port nobody listens on right now (the kernel's pick for port 0).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl Nginx {
    /// Renders the template into `prefix/nginx.conf` and starts nginx; returns once it accepts
    /// connections.
    pub async fn start(
        bin: &Path,
        template: &Path,
        prefix: &Path,
        upstream: SocketAddr,
        workers: usize,
        pidfile: Option<&Path>,
    ) -> anyhow::Result<Nginx> {
        std::fs::create_dir_all(prefix)?;
        let text = std::fs::read_to_string(template)
            .with_context(|| format!("cannot read {}", template.display()))?;
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let conf = text
            .replace("@WORKERS@", &workers.to_string())
            .replace("@PREFIX@", &prefix.display().to_string())
            .replace("@UPSTREAM@", &upstream.to_string())
            .replace("@LISTEN@", &addr.to_string());
        let conf_path = prefix.join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let mut child = Command::new(bin)
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(prefix.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let pid = child.id().context("nginx has no pid")?;
        if let Some(pidfile) = pidfile {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(pidfile)?;
            writeln!(f, "{pid}")?;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let err = std::fs::read_to_string(prefix.join("error.log")).unwrap_or_default();
                bail!("nginx exited at once ({status}): {err}");
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                break;
            }
            if Instant::now() > deadline {
                bail!("nginx did not listen on {addr} within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(Nginx { child, pid, addr })
    }

    /// CPU time of the master and its workers.
    pub fn cpu(&self) -> Duration {
        let mut total = cpu_time(self.pid).unwrap_or_default();
        for c in crate::daemon::children(self.pid) {
            total += cpu_time(c.pid).unwrap_or_default();
        }
        total
    }

    /// Fast shutdown (SIGTERM: the master stops its workers), then waits.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
        Ok(())
    }
}
