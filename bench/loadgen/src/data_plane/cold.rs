//! Cold start: one request to a Service at zero replicas, timed from sending it to the last
//! byte of its answer, against the app's own start measured alone the same way.
//!
//! Trials alternate: (a) `wisp-testapp` started by this tool with a free `PORT`, timed from
//! just before `spawn` until a TCP connect succeeds (polled every 50 µs) and until it answers a
//! GET; then (b) a request through the gateway to the next Service still at zero (the
//! connection to the gateway is opened first and not timed), and a second request on the
//! same connection (warm). Net overhead = raw − median of (a)'s spawn → listening.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::Opts as AllOpts;
use super::idle::name;
use crate::daemon::Daemon;
use crate::http::Conn;
use crate::nginx::free_port;
use crate::stats::ms;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Cold {
    pub trials: usize,
    /// Through the gateway, request at zero → answer, ms.
    pub raw_ms: Vec<f64>,
    /// The next request on the same connection, ms.
    pub warm_ms: Vec<f64>,
    /// The app alone: spawn → a TCP connect succeeds, ms.
    pub app_listen_ms: Vec<f64>,
    /// The app alone: spawn → its answer to a GET, ms.
    pub app_answer_ms: Vec<f64>,
    /// Replica processes of the trial's Service before its request (must be 0).
    pub processes_before: Vec<usize>,
}

/// Starts the app alone once; returns (spawn → listening, spawn → answered).
fn app_alone(testapp: &std::path::Path) -> anyhow::Result<(Duration, Duration)> {
    let port = free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let t0 = Instant::now();
    let mut child = std::process::Command::new(testapp)
        .env("PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", testapp.display()))?;
    let result = (|| {
        let mut stream = loop {
            match TcpStream::connect(addr) {
                Ok(s) => break s,
                Err(_) if t0.elapsed() < Duration::from_secs(5) => {
                    std::thread::sleep(Duration::from_micros(50));
                }
                Err(e) => bail!("the app did not listen on {addr} within 5 s: {e}"),
            }
        };
        let listening = t0.elapsed();
        stream.write_all(b"GET / HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer)?;
        let answered = t0.elapsed();
        anyhow::ensure!(
            answer.starts_with(b"HTTP/1.1 200"),
            "the app answered {:?}",
            String::from_utf8_lossy(&answer)
        );
        Ok((listening, answered))
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}

pub async fn run(o: &AllOpts, d: &Daemon) -> anyhow::Result<Cold> {
    let gateway = d.gateway_addr()?;
    let mut cold = Cold {
        trials: o.cold_trials,
        ..Cold::default()
    };
    for i in 1..=o.cold_trials {
        let (listen, answer) = app_alone(&o.testapp)?;
        cold.app_listen_ms.push(ms(listen));
        cold.app_answer_ms.push(ms(answer));
        tokio::time::sleep(Duration::from_millis(20)).await;

        let service = name(i);
        cold.processes_before
            .push(d.children().iter().filter(|c| c.service == service).count());
        let mut conn = Conn::connect_host(gateway, &format!("{service}.default.localhost")).await?;
        let t = Instant::now();
        let (status, body) = conn.get("/").await?;
        let raw = t.elapsed();
        anyhow::ensure!(
            status == StatusCode::OK && body.starts_with(b"Hello"),
            "cold request to {service}: {status}: {}",
            String::from_utf8_lossy(&body)
        );
        let t = Instant::now();
        let (status, _) = conn.get("/").await?;
        let warm = t.elapsed();
        anyhow::ensure!(
            status == StatusCode::OK,
            "warm request to {service}: {status}"
        );
        cold.raw_ms.push(ms(raw));
        cold.warm_ms.push(ms(warm));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = cold.processes_before.iter().sum::<usize>();
    anyhow::ensure!(
        before == 0,
        "{before} trial(s) found their Service's replica already running"
    );
    eprintln!(
        "  {} cold starts: raw p50 {:.2} ms; app alone spawn → listening p50 {:.2} ms",
        o.cold_trials,
        crate::stats::median(&cold.raw_ms),
        crate::stats::median(&cold.app_listen_ms)
    );
    Ok(cold)
}
