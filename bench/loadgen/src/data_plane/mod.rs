//! The data-plane benchmark: wisp's gateway and scale-from-zero path against their limits.
//!
//! 1. `throughput`: one Service pinned at one replica of `wisp-testapp`; wrk (closed loop) and
//!    an open-loop fixed-rate client drive, alternately, the app directly (the limit), wisp's
//!    gateway, and nginx as a reverse proxy to the same app process;
//! 2. `idle`: a daemon with many Services at zero replicas: its RSS and CPU;
//! 3. `cold`: on that daemon, one request to each of N Services at zero, against the app's own
//!    spawn-to-listening time measured alone, alternately;
//! 4. `burst`: 200 clients looping slow requests at a revision with target 10: replicas over
//!    time, then the time back to zero once the load stops.
//!
//! Each part starts its own daemon, so one part's replicas and autoscaler state never reach
//! another's figures.

pub mod burst;
pub mod cold;
pub mod idle;
pub mod report;
pub mod throughput;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::daemon::Daemon;
use crate::http::Conn;

pub const SERVICES: &str = "/apis/serving.knative.dev/v1/namespaces/default/services";
pub const REVISIONS: &str = "/apis/serving.knative.dev/v1/namespaces/default/revisions";

#[derive(Debug, Clone)]
pub struct Opts {
    pub bin: PathBuf,
    /// `wisp-testapp`, reached through a symlink in the workdir so that every copy of it we
    /// start names the workdir on its command line (the script's clean-up finds them so).
    pub testapp: PathBuf,
    pub workdir: PathBuf,
    pub pidfile: Option<PathBuf>,
    pub wrk: PathBuf,
    pub nginx: PathBuf,
    pub nginx_template: PathBuf,
    pub throughput: throughput::Opts,
    pub idle: idle::Opts,
    pub cold_trials: usize,
    pub burst: burst::Opts,
    /// Which parts to run (all by default).
    pub parts: Vec<String>,
}

impl Opts {
    fn runs(&self, part: &str) -> bool {
        self.parts.is_empty() || self.parts.iter().any(|p| p == part)
    }
}

/// Everything one invocation measured (also written as JSON).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Results {
    pub throughput: Option<throughput::Throughput>,
    pub idle: Option<idle::Idle>,
    pub cold: Option<cold::Cold>,
    pub bursts: Vec<burst::Burst>,
}

/// A Service running `command`, with template annotations and `containerConcurrency`.
pub fn service_body(
    name: &str,
    command: &[String],
    annotations: &[(&str, &str)],
    container_concurrency: Option<u32>,
) -> Bytes {
    let annotations: serde_json::Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
        .collect();
    let mut spec = json!({"containers": [{"command": command}]});
    if let Some(cc) = container_concurrency {
        spec["containerConcurrency"] = json!(cc);
    }
    Bytes::from(
        json!({
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {"template": {
                "metadata": {"annotations": annotations},
                "spec": spec
            }}
        })
        .to_string(),
    )
}

pub async fn create_service(conn: &mut Conn, body: Bytes) -> anyhow::Result<()> {
    let (status, answer) = conn.send(Method::POST, SERVICES, Some(body)).await?;
    if status != StatusCode::CREATED {
        bail!(
            "POST {SERVICES}: {status}: {}",
            String::from_utf8_lossy(&answer)
        );
    }
    Ok(())
}

/// What a Revision's status says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevState {
    pub ready: bool,
    pub actual: Option<i64>,
    pub desired: Option<i64>,
}

pub fn rev_state(obj: &Value) -> RevState {
    let status = &obj["status"];
    let ready = status["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    });
    RevState {
        ready,
        actual: status["actualReplicas"].as_i64(),
        desired: status["desiredReplicas"].as_i64(),
    }
}

pub async fn revision(conn: &mut Conn, name: &str) -> anyhow::Result<RevState> {
    let (status, body) = conn.get(&format!("{REVISIONS}/{name}")).await?;
    if status == StatusCode::NOT_FOUND {
        return Ok(RevState::default());
    }
    anyhow::ensure!(status == StatusCode::OK, "GET revision {name}: {status}");
    Ok(rev_state(&serde_json::from_slice(&body)?))
}

/// Lists Revisions until every one in `names` satisfies `ok`; returns when they did.
pub async fn wait_revisions(
    conn: &mut Conn,
    names: &[String],
    ok: impl Fn(&RevState) -> bool,
    timeout: Duration,
    daemon: &Daemon,
) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        let list = conn.get_json(REVISIONS).await?;
        let states: std::collections::HashMap<&str, RevState> = list["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| Some((i["metadata"]["name"].as_str()?, rev_state(i))))
                    .collect()
            })
            .unwrap_or_default();
        let pending: Vec<&String> = names
            .iter()
            .filter(|n| !states.get(n.as_str()).is_some_and(&ok))
            .collect();
        if pending.is_empty() {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            bail!(
                "{} of {} revisions not in the expected state after {:?} (first: {} {:?}):\n{}",
                pending.len(),
                names.len(),
                timeout,
                pending[0],
                states.get(pending[0].as_str()),
                daemon.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Makes `workdir/bin/wisp-testapp` point at the real binary; returns the link.
fn link_testapp(testapp: &Path, workdir: &Path) -> anyhow::Result<PathBuf> {
    let dir = workdir.join("bin");
    std::fs::create_dir_all(&dir)?;
    let link = dir.join("wisp-testapp");
    if !link.exists() {
        let target = std::fs::canonicalize(testapp)
            .with_context(|| format!("no test app at {}", testapp.display()))?;
        std::os::unix::fs::symlink(target, &link)?;
    }
    Ok(link)
}

/// Runs every part; the results so far are written to `json` after each.
pub async fn run(o: &Opts, json: &Path) -> anyhow::Result<Results> {
    let mut o = o.clone();
    o.testapp = link_testapp(&o.testapp, &o.workdir)?;
    let mut res = Results::default();
    let save = |res: &Results| -> anyhow::Result<()> {
        std::fs::write(json, serde_json::to_string_pretty(res)?)?;
        Ok(())
    };
    if o.runs("throughput") {
        eprintln!("throughput: direct vs wisp vs nginx ...");
        res.throughput = Some(throughput::run(&o).await.context("throughput")?);
        save(&res)?;
    }
    if o.runs("idle") || o.runs("cold") {
        eprintln!(
            "idle: {} Services at zero; then cold starts ...",
            o.idle.services.max(o.cold_trials)
        );
        let (idle, cold) = idle::run_with_cold(&o).await.context("idle / cold start")?;
        res.idle = Some(idle);
        res.cold = Some(cold);
        save(&res)?;
    }
    if o.runs("burst") {
        for settings in &o.burst.settings {
            eprintln!("burst ({}) ...", settings.label);
            let b = burst::run(&o, settings)
                .await
                .with_context(|| format!("burst ({})", settings.label))?;
            res.bursts.push(b);
            save(&res)?;
        }
    }
    Ok(res)
}
