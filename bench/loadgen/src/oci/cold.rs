//! Cold start of a cached image: one request to a Service at zero replicas, timed from sending
//! it to the last byte of the answer, against `runc run` alone on an equivalent bundle.
//!
//! Set-up: a daemon (`--autoscaler allow-zero-initial-scale=true`) runs a warm-up Service of
//! the image, which pulls and unpacks it; then N Services of the same image are created with
//! `autoscaling.knative.dev/initial-scale: "0"` and wait, Ready, at zero. The limit's bundle
//! is made from the warm-up replica: its `config.json` as wisp wrote it (same process, env,
//! mounts, namespaces, capabilities) with the root, `PORT`, hostname and cgroup changed, and
//! its root file system copied flat into a plain directory.
//!
//! Each trial, alternately: (a) `runc run` of that bundle with a free `PORT`, timed from just
//! before `spawn` until a TCP connect succeeds (polled every 100 µs) and until the GET's answer
//! is read; the container is then killed and deleted, untimed; (b) a request through the
//! gateway to the next Service at zero (the connection is opened first, untimed), and a second
//! request on the same connection (warm); the Service is then deleted and its replica waited
//! out, untimed, so every trial starts with only the warm-up replica running.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    ImageInfo, Opts, PAGE, delete_service, overlays_under, replica_dirs, service_body, wait_ready,
    wait_replicas_gone, wait_services_ready,
};
use crate::daemon::Daemon;
use crate::data_plane::{create_service, wait_revisions};
use crate::http::Conn;
use crate::nginx::free_port;
use crate::stats::ms;

pub const DAEMON_FLAGS: [&str; 2] = ["--autoscaler", "allow-zero-initial-scale=true"];

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Cold {
    pub trials: usize,
    /// Warm-up Service: POST → Service Ready, its revision with one replica (pull + unpack + start of the image).
    pub warmup_ready_ms: f64,
    /// Through the gateway, request at zero → answer, ms.
    pub raw_ms: Vec<f64>,
    /// The next request on the same connection, ms.
    pub warm_ms: Vec<f64>,
    /// `runc run` alone: spawn → a TCP connect succeeds, ms.
    pub runc_listen_ms: Vec<f64>,
    /// `runc run` alone: spawn → the answer to a GET, ms (the limit).
    pub runc_answer_ms: Vec<f64>,
    /// Replicas of the trial's revision before its request (must be 0).
    pub replicas_before: Vec<usize>,
    /// Whether the trial's replica ran on an overlay mount over the shared layers.
    pub overlay: Vec<bool>,
    /// Service deleted → its replica directory gone, ms (informative).
    pub teardown_ms: Vec<f64>,
    /// How often the limit's port was polled, µs.
    pub runc_poll_us: u64,
    /// How the limit's root file system was made.
    pub bundle_rootfs: String,
    pub runc_version: String,
}

/// The bundle for `runc run` alone.
struct Bundle {
    runc: PathBuf,
    /// runc's `--root` (its state), under the workdir.
    state: PathBuf,
    dir: PathBuf,
    config: Value,
    poll: Duration,
}

fn run_cmd(cmd: &mut std::process::Command) -> anyhow::Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    anyhow::ensure!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Bundle {
    /// From the warm-up replica's run directory (`…/{id}/run`, with `config.json` and the
    /// mounted `rootfs/`).
    fn from_replica(o: &Opts, run_dir: &Path) -> anyhow::Result<Bundle> {
        let config: Value = serde_json::from_slice(
            &std::fs::read(run_dir.join("config.json"))
                .with_context(|| format!("no config.json in {}", run_dir.display()))?,
        )?;
        let root = config["root"]["path"]
            .as_str()
            .context("config.json has no root.path")?;
        let root = if Path::new(root).is_absolute() {
            PathBuf::from(root)
        } else {
            run_dir.join(root)
        };
        let base = o.workdir.join("runc-alone");
        let dir = base.join("bundle");
        let rootfs = dir.join("rootfs");
        std::fs::create_dir_all(&rootfs)?;
        // The merged view of the replica's overlay: the image flattened (plus the mount points
        // runc made in the replica's upper directory).
        run_cmd(
            std::process::Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", root.display()))
                .arg(&rootfs),
        )?;
        let state = base.join("state");
        std::fs::create_dir_all(&state)?;
        Ok(Bundle {
            runc: o.runc.clone(),
            state,
            dir,
            config,
            poll: o.runc_poll,
        })
    }

    fn runc(&self) -> std::process::Command {
        let mut c = std::process::Command::new(&self.runc);
        c.arg("--root").arg(&self.state);
        c.stdin(Stdio::null());
        c
    }

    /// One `runc run`; returns (spawn → listening, spawn → answered).
    fn run_once(&self, i: usize) -> anyhow::Result<(Duration, Duration)> {
        let port = free_port()?;
        let id = format!("wisp-bench-{}-{i}", std::process::id());
        let mut config = self.config.clone();
        config["root"] = serde_json::json!({"path": self.dir.join("rootfs"), "readonly": false});
        config["hostname"] = Value::String(id.clone());
        config["linux"]["cgroupsPath"] = Value::String(format!("/{id}"));
        if let Some(env) = config["process"]["env"].as_array_mut() {
            env.retain(|v| !v.as_str().is_some_and(|s| s.starts_with("PORT=")));
            env.push(Value::String(format!("PORT={port}")));
        }
        std::fs::write(self.dir.join("config.json"), serde_json::to_vec(&config)?)?;
        let log = self.dir.join("runc.log");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));

        let t0 = Instant::now();
        let mut child = self
            .runc()
            .arg("--log")
            .arg(&log)
            .arg("run")
            .arg("--bundle")
            .arg(&self.dir)
            .arg(&id)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", self.runc.display()))?;
        let result = (|| {
            let mut stream = loop {
                match TcpStream::connect(addr) {
                    Ok(s) => break s,
                    Err(e) => {
                        if let Ok(Some(status)) = child.try_wait() {
                            bail!(
                                "runc run exited with {status} before the container listened: {}",
                                std::fs::read_to_string(&log).unwrap_or_default()
                            );
                        }
                        if t0.elapsed() > Duration::from_secs(10) {
                            bail!("the container did not listen on {addr} within 10 s: {e}");
                        }
                        std::thread::sleep(self.poll);
                    }
                }
            };
            let listening = t0.elapsed();
            stream.write_all(b"GET / HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")?;
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer)?;
            let answered = t0.elapsed();
            anyhow::ensure!(
                answer.starts_with(b"HTTP/1.") && answer.get(9..12) == Some(b"200"),
                "the container answered {:?}",
                String::from_utf8_lossy(&answer)
            );
            Ok((listening, answered))
        })();
        // Untimed: stop (the image's shell exits on SIGTERM), then delete.
        let _ = self.runc().args(["kill", &id, "TERM"]).output();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !matches!(child.try_wait(), Ok(Some(_))) {
            if Instant::now() > deadline {
                let _ = self.runc().args(["kill", &id, "KILL"]).output();
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        run_cmd(self.runc().args(["delete", "--force", &id]))?;
        result
    }
}

pub fn name(i: usize) -> String {
    format!("cold{i}")
}

pub async fn run(o: &Opts, image: &ImageInfo) -> anyhow::Result<Cold> {
    let flags: Vec<String> = DAEMON_FLAGS.iter().map(|s| (*s).to_owned()).collect();
    let data = o.workdir.join("cold/data");
    let mut d = Daemon::spawn_with(&o.bin, &data, o.pidfile.as_deref(), &flags).await?;
    d.wait_synced().await?;
    let gateway = d.gateway_addr()?;
    let mut api = Conn::connect(d.api).await?;
    let mut cold = Cold {
        trials: o.cold_trials,
        runc_poll_us: o.runc_poll.as_micros() as u64,
        runc_version: run_cmd(std::process::Command::new(&o.runc).arg("--version"))?
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
        ..Cold::default()
    };

    // Warm-up: pulls and unpacks the image; its replica gives the limit its bundle.
    let t0 = Instant::now();
    create_service(&mut api, service_body("warm", &image.reference, &[])).await?;
    let (ready, _) = wait_ready(
        &mut api,
        "warm",
        |s| s.ready && s.actual == Some(1),
        Duration::from_millis(5),
        Duration::from_secs(60),
        &d,
    )
    .await?;
    cold.warmup_ready_ms = ms(ready - t0);
    let mut conn = Conn::connect_host(gateway, "warm.default.localhost").await?;
    let (status, body) = conn.get("/").await?;
    anyhow::ensure!(
        status == StatusCode::OK && body == PAGE.as_bytes(),
        "warm-up request: {status}: {}",
        String::from_utf8_lossy(&body)
    );
    let warm_dir = replica_dirs(&data, "warm-00001")
        .into_iter()
        .next()
        .context("the warm-up replica has no directory under replicas/")?;
    let bundle = Bundle::from_replica(o, &warm_dir.join("run"))?;
    cold.bundle_rootfs = if overlays_under(&warm_dir).is_empty() {
        "a copy of the replica's shared read-only root in a plain directory".into()
    } else {
        "the replica's overlay root copied flat into a plain directory".into()
    };

    let annotations = [("autoscaling.knative.dev/initial-scale", "0")];
    let t0 = Instant::now();
    for i in 1..=o.cold_trials {
        create_service(
            &mut api,
            service_body(&name(i), &image.reference, &annotations),
        )
        .await?;
    }
    let revisions: Vec<String> = (1..=o.cold_trials)
        .map(|i| format!("{}-00001", name(i)))
        .collect();
    wait_revisions(
        &mut api,
        &revisions,
        |s| s.ready && s.actual == Some(0),
        Duration::from_secs(120),
        &d,
    )
    .await?;
    let services: Vec<String> = (1..=o.cold_trials).map(name).collect();
    wait_services_ready(&mut api, &services, Duration::from_secs(60), &d).await?;
    eprintln!(
        "  warm-up Ready in {:.0} ms; {} Services Ready at zero in {:.1} s",
        cold.warmup_ready_ms,
        o.cold_trials,
        t0.elapsed().as_secs_f64()
    );

    for i in 1..=o.cold_trials {
        let (listen, answer) = bundle.run_once(i).context("runc run alone")?;
        cold.runc_listen_ms.push(ms(listen));
        cold.runc_answer_ms.push(ms(answer));
        tokio::time::sleep(Duration::from_millis(20)).await;

        let service = name(i);
        let revision = format!("{service}-00001");
        cold.replicas_before
            .push(replica_dirs(&data, &revision).len());
        let mut conn = Conn::connect_host(gateway, &format!("{service}.default.localhost")).await?;
        let t = Instant::now();
        let (status, body) = conn.get("/").await?;
        let raw = t.elapsed();
        anyhow::ensure!(
            status == StatusCode::OK && body == PAGE.as_bytes(),
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
        cold.overlay.push(
            overlays_under(&data.join("replicas/default").join(&revision))
                .iter()
                .any(|m| {
                    m.lower
                        .iter()
                        .all(|l| l.starts_with(data.join("oci/layers")))
                }),
        );
        drop(conn);
        delete_service(&mut api, &service).await?;
        let gone = wait_replicas_gone(&data, &revision, Duration::from_secs(30), &d).await?;
        cold.teardown_ms.push(ms(gone));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = cold.replicas_before.iter().sum::<usize>();
    anyhow::ensure!(
        before == 0,
        "{before} trial(s) found their revision's replica already running"
    );
    eprintln!(
        "  {} cold starts: raw p50 {:.2} ms; runc run alone spawn → answer p50 {:.2} ms",
        o.cold_trials,
        crate::stats::median(&cold.raw_ms),
        crate::stats::median(&cold.runc_answer_ms)
    );
    drop(api);
    d.stop().await?;
    Ok(cold)
}
