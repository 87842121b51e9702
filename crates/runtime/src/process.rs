//! The host-process backend: a container with `command` and no `image` runs as a process of
//! this machine (wisp's one extension of the Knative schema).
//!
//! The process gets Knative's runtime contract as far as a host process can have it:
//! - environment: a few variables of the daemon ([`ProcessOptions::inherit_env`]: `PATH`,
//!   `HOME`, locale...; the analogue of an image's `ENV`, and deliberately not the whole daemon
//!   environment), then the container's `env` with `$(VAR)` expansion, then `K_SERVICE`,
//!   `K_CONFIGURATION`, `K_REVISION` (from [`ReplicaSpec::env`]), then `PORT`;
//! - `command` and `args` with `$(VAR)` expansion; `workingDir` (default: the daemon's);
//! - stdin at end of file (`/dev/null`), stdout and stderr into the replica's log; `/tmp` is the
//!   host's; `securityContext.runAsUser`/`runAsGroup` honoured (needs the privilege to switch);
//! - its own session and process group, a death signal tied to the daemon, a pid record for
//!   the orphan sweep (see `spawn.rs` and `orphans.rs`).

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rustix::process::Signal;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use crate::backoff::RestartPolicy;
use crate::expand::{EnvInputs, build_env, expand_command};
use crate::logs::{DEFAULT_LOG_CAP, LogSink};
use crate::orphans::{self, ORPHAN_GRACE, PidRecord, ReapReport};
use crate::probe::resolve_probes;
use crate::prober::NetProber;
use crate::replica::{
    Control, ExitInfo, Launcher, ReplicaHandle, StopSignal, SupervisorConfig, Workload,
    spawn_replica,
};
use crate::{Backend, ReplicaSpec, RevisionRef, RuntimeError, spawn};

/// Variables taken from the daemon's environment by default.
pub const DEFAULT_INHERITED_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ",
    "TMPDIR",
];

/// How long a run's output may take to drain into its log after the run ended.
const LOG_DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// Tunables of the process backend.
#[derive(Debug, Clone)]
pub struct ProcessOptions {
    /// Size cap of one replica log file (one rotated file is kept besides).
    pub log_cap: u64,
    pub restart: RestartPolicy,
    /// Names of daemon variables passed to replicas.
    pub inherit_env: Vec<String>,
}

impl Default for ProcessOptions {
    fn default() -> Self {
        ProcessOptions {
            log_cap: DEFAULT_LOG_CAP,
            restart: RestartPolicy::default(),
            inherit_env: DEFAULT_INHERITED_ENV
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

/// Runs replicas as host processes. Files live under `data_dir`: `logs/` (replica logs) and
/// `run/` (pid records).
#[derive(Debug)]
pub struct ProcessBackend {
    data_dir: PathBuf,
    options: ProcessOptions,
    replicas: Mutex<Vec<Control>>,
}

impl ProcessBackend {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self::with_options(data_dir, ProcessOptions::default())
    }

    pub fn with_options(data_dir: impl Into<PathBuf>, options: ProcessOptions) -> Self {
        ProcessBackend {
            data_dir: data_dir.into(),
            options,
            replicas: Mutex::new(Vec::new()),
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The log file of a replica (the same path with `.1` appended is the previous one).
    pub fn log_path(&self, revision: &RevisionRef, replica: &str) -> PathBuf {
        crate::logs::log_path(&self.data_dir, revision, replica)
    }

    /// The log files of every replica of `revision` this data dir has kept (current runs and
    /// earlier ones), oldest first, as (replica id, path). Rotated halves (`.log.1`) are not
    /// listed: they hold older lines of a listed file.
    pub fn revision_logs(&self, revision: &RevisionRef) -> Vec<(String, PathBuf)> {
        crate::logs::revision_logs(&self.data_dir, revision)
    }

    fn record_path(&self, revision: &RevisionRef, replica: &str) -> PathBuf {
        self.run_dir()
            .join(&revision.namespace)
            .join(&revision.name)
            .join(format!("{replica}.pid"))
    }

    fn run_dir(&self) -> PathBuf {
        self.data_dir.join("run")
    }

    /// Kills every replica process group a previous daemon left running (its records are under
    /// `run/`) and removes the records. Call once at daemon start, before starting replicas.
    pub async fn reap_orphans(&self) -> ReapReport {
        orphans::reap(&self.run_dir(), ORPHAN_GRACE).await
    }

    /// Stops every replica this backend started that still runs, each with `grace`, and waits
    /// for them all: the daemon's drain on shutdown.
    pub async fn shutdown(&self, grace: Duration) {
        let controls: Vec<Control> = match self.replicas.lock() {
            Ok(mut r) => std::mem::take(&mut *r),
            Err(_) => return,
        };
        let mut stops = tokio::task::JoinSet::new();
        for c in controls {
            stops.spawn(c.stop(grace));
        }
        while stops.join_next().await.is_some() {}
    }
}

/// A free TCP port on the loopback interface (bound and released: another process could take
/// it before the replica binds it; the replica then fails to start and is restarted).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

pub(crate) fn check_name(what: &str, v: &str) -> Result<(), RuntimeError> {
    let ok = !v.is_empty()
        && v != "."
        && v != ".."
        && v.len() <= 253
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::InvalidSpec(format!(
            "{what} {v:?} is not a valid name (letters, digits, '-', '.', '_')"
        )))
    }
}

#[async_trait]
impl Backend for ProcessBackend {
    async fn start(&self, spec: ReplicaSpec) -> Result<ReplicaHandle, RuntimeError> {
        check_name("replica id", &spec.id)?;
        check_name("namespace", &spec.revision.namespace)?;
        check_name("revision", &spec.revision.name)?;
        let c = &spec.container;
        if !c.image.is_empty() {
            return Err(RuntimeError::Unsupported {
                backend: "process",
                what: format!(
                    "image {:?} (a host process has a command and no image)",
                    c.image
                ),
            });
        }
        if c.command.is_empty() {
            return Err(RuntimeError::InvalidSpec(
                "a host-process container needs a command".to_string(),
            ));
        }
        let port = match spec.port {
            0 => free_port().map_err(|e| RuntimeError::io("cannot find a free port", e))?,
            p => p,
        };
        let inherited: Vec<(String, String)> = self
            .options
            .inherit_env
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.clone(), v)))
            .collect();
        let env = build_env(
            c,
            &EnvInputs {
                inherited: &inherited,
                extra: &spec.env,
                port,
            },
        );
        let Some((program, args)) = expand_command(c, &env) else {
            return Err(RuntimeError::InvalidSpec(
                "a host-process container needs a command".to_string(),
            ));
        };
        let working_dir = (!c.working_dir.is_empty()).then(|| PathBuf::from(&c.working_dir));
        let sc = c.security_context.as_ref();
        let id_of = |v: Option<i64>, what: &str| -> Result<Option<u32>, RuntimeError> {
            v.map(|v| {
                u32::try_from(v)
                    .map_err(|_| RuntimeError::InvalidSpec(format!("{what} {v} is out of range")))
            })
            .transpose()
        };
        let uid = id_of(sc.and_then(|s| s.run_as_user), "runAsUser")?;
        let gid = id_of(sc.and_then(|s| s.run_as_group), "runAsGroup")?;
        let probes = resolve_probes(c, port)?;
        let log_path = self.log_path(&spec.revision, &spec.id);
        let logs = LogSink::open(log_path.clone(), self.options.log_cap)
            .map_err(|e| RuntimeError::io(format!("cannot open log {}", log_path.display()), e))?;
        let name = format!("{}/{}", spec.revision, spec.id);
        let launcher = ProcessLauncher {
            program,
            args,
            env: env.clone(),
            working_dir: working_dir.clone(),
            uid,
            gid,
            record_path: self.record_path(&spec.revision, &spec.id),
            name: name.clone(),
        };
        let config = SupervisorConfig {
            id: name,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            grace: spec.grace,
            probes,
            restart: self.options.restart,
            prober: Arc::new(NetProber { env, working_dir }),
            logs: Arc::new(logs),
        };
        let handle = spawn_replica(config, Arc::new(launcher));
        if let Ok(mut r) = self.replicas.lock() {
            r.retain(Control::is_live);
            r.push(handle.control());
        }
        Ok(handle)
    }
}

/// Starts runs of one replica's process.
struct ProcessLauncher {
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    working_dir: Option<PathBuf>,
    uid: Option<u32>,
    gid: Option<u32>,
    record_path: PathBuf,
    /// `namespace/revision/replica`.
    name: String,
}

#[async_trait]
impl Launcher for ProcessLauncher {
    async fn launch(&self, logs: &Arc<LogSink>) -> Result<Box<dyn Workload>, String> {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // The supervisor decides when a replica dies, never a dropped handle.
            .kill_on_drop(false);
        if let Some(dir) = &self.working_dir {
            cmd.current_dir(dir);
        }
        if let Some(gid) = self.gid {
            cmd.gid(gid);
        }
        if let Some(uid) = self.uid {
            cmd.uid(uid);
        }
        spawn::harden(&mut cmd);
        let mut child = spawn::spawn(cmd)
            .await
            .map_err(|e| format!("cannot start {:?}: {e}", self.program))?;
        let Some(pid) = child.id() else {
            return Err(format!(
                "{:?} ended before it could be recorded",
                self.program
            ));
        };
        // A zombie already (it exited at once) needs no record: there is nothing to reap.
        if let Some(stat) = orphans::proc_stat(pid) {
            let record = PidRecord {
                pid,
                start_time: stat.start_time,
                replica: self.name.clone(),
            };
            if let Err(e) = record.write(&self.record_path) {
                tracing::warn!(replica = %self.name, error = %e, "cannot write the replica's pid record");
            }
        }
        let pumps = crate::logs::pump_child(&mut child, logs);
        Ok(Box::new(ProcessRun {
            child,
            pid,
            pumps,
            record_path: self.record_path.clone(),
        }))
    }
}

/// One run: the child process (leader of its group) and its log pumps.
struct ProcessRun {
    child: Child,
    pid: u32,
    pumps: Vec<JoinHandle<()>>,
    record_path: PathBuf,
}

#[async_trait]
impl Workload for ProcessRun {
    fn pid(&self) -> Option<u32> {
        Some(self.pid)
    }

    fn signal(&mut self, signal: StopSignal) {
        let sig = match signal {
            StopSignal::Term => Signal::TERM,
            StopSignal::Kill => Signal::KILL,
        };
        if let Err(e) = orphans::signal_group(self.pid, sig) {
            tracing::warn!(pgid = self.pid, error = %e, "cannot signal replica process group");
        }
    }

    async fn wait(&mut self) -> ExitInfo {
        match self.child.wait().await {
            Ok(status) => ExitInfo::from_status(status),
            Err(e) => ExitInfo {
                code: None,
                signal: None,
                reason: "Error".to_string(),
                message: format!("cannot wait for the process: {e}"),
            },
        }
    }

    async fn cleanup(&mut self) {
        // The leader is gone; whatever it started dies with it, as in a container.
        let _ = orphans::signal_group(self.pid, Signal::KILL);
        for pump in &mut self.pumps {
            if tokio::time::timeout(LOG_DRAIN_TIMEOUT, &mut *pump)
                .await
                .is_err()
            {
                // Something outside the group still holds the pipe.
                pump.abort();
            }
        }
        self.pumps.clear();
        let _ = std::fs::remove_file(&self.record_path);
    }
}

impl Drop for ProcessRun {
    fn drop(&mut self) {
        for p in &self.pumps {
            p.abort();
        }
    }
}
