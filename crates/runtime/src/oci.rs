//! The OCI backend: a container with an `image` runs as a runc container, under the same
//! supervisor as host processes (`replica.rs`), so probes, logs, graceful stop, restart
//! back-off and the no-orphans guarantee behave the same.
//!
//! One replica, by step:
//! - **start** (`Backend::start`, returns at once): the image must be pinned by digest
//!   (`repo@sha256:…`; the daemon resolves tags when the Revision is created), so every replica
//!   of a revision runs the same bytes. `PORT` is a free loopback port as for processes; the
//!   environment is the container's `env` with `$(VAR)` expansion, then `K_*`, then `PORT`
//!   (`expand.rs`), over the image's `ENV`; `command`/`args` are expanded the same way and
//!   merged with the image's Entrypoint/Cmd by Kubernetes' rules (`wisp_oci::spec`).
//! - **prepare** (in the supervisor, before each run, cancellable by a stop): the image is
//!   pulled (no network when the store has it; one pull per image at a time). A failing pull
//!   is a start error of the run, `pulling image R: …`, shown in the replica's status and
//!   retried with the restart back-off; nothing of the run exists yet.
//! - **launch**: under `{data_dir}/replicas/{ns}/{rev}/{id}/`, the run's bundle `run/`
//!   (`config.json`, the overlay rootfs `rootfs/` with `upper/` and `work/`) and the replica's
//!   emptyDir volumes `volumes/{name}/` (kept across runs, as a pod's are); the pod cgroup
//!   (`cgroups.rs`); then `runc run` in the foreground, started like a host process through
//!   `spawn.rs` (own session, `PR_SET_PDEATHSIG`), its stdout and stderr (passed straight to
//!   the container) into the replica's log, its own messages into `run/runc.log`. A failure
//!   on the way removes whatever was made: a half-prepared bundle is never used.
//! - **network**: the host's (no network namespace): the container listens on
//!   `127.0.0.1:$PORT` like a process, and tcpSocket/httpGet probes reach it there. Images
//!   that ignore `$PORT` and listen on a fixed port (8080) are not supported yet: two replicas
//!   would collide.
//! - **probes**: tcpSocket/httpGet from the host; exec probes through `runc exec`.
//! - **stop**: SIGTERM to runc, which forwards it to the container's init; SIGKILL to the init
//!   after the grace period (its pid namespace dies with it). Then `runc delete --force`, the
//!   rootfs unmounted and the bundle removed; logs stay.
//! - **exit**: runc exits with the init's status (128 + signal when killed), reported as the
//!   signal; a run whose memory ran out is `OOMKilled` (exit code 137 when the init was the
//!   victim); a run runc could not start is a `StartError` with runc's own message.
//! - **no orphans**: runc dies with the daemon, but the container does not (its init is
//!   runc's child in a namespace of its own). A record `runc.pid` per run names runc; at daemon
//!   start [`OciBackend::reap_orphans`] kills what any replica directory, any container of
//!   wisp's runc root or any of their cgroups still holds, deletes the containers, releases
//!   the rootfs mounts and removes bundles and cgroups.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rustix::process::{Pid, Signal};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use wisp_api::core::Container;
use wisp_oci::auth::Keychain;
use wisp_oci::reference::Reference;
use wisp_oci::spec::{Network, SpecOptions, UserDb, VolumeSource};
use wisp_oci::{Image, Images, PullError, Rootfs};

use crate::backoff::RestartPolicy;
use crate::cgroups::{Cgroups, Pod};
use crate::expand::{EnvInputs, build_env, expand};
use crate::logs::{DEFAULT_LOG_CAP, LogSink};
use crate::orphans::{self, PidRecord, ReapReport};
use crate::probe::{ProbeAction, resolve_probes};
use crate::prober::{NetProber, Prober, run_exec_probe};
use crate::process::{check_name, free_port};
use crate::replica::{
    Control, ExitInfo, Launcher, ReplicaHandle, StopSignal, SupervisorConfig, Workload,
    spawn_replica,
};
use crate::runc::{self, Runc};
use crate::{Backend, ReplicaSpec, RevisionRef, RuntimeError, spawn};

/// The cgroup under which replicas' cgroups go by default (`/wisp/{container id}/…`).
pub const DEFAULT_CGROUP_PARENT: &str = "wisp";

/// How a run's output may take to drain into its log after the run ended.
const LOG_DRAIN_TIMEOUT: Duration = Duration::from_secs(1);
/// How long killed processes get to leave their cgroups.
const KILL_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest container id (runc's state directory and the cgroup are named after it).
const MAX_CONTAINER_ID: usize = 200;
/// The record of a run's runc process, in the replica's directory.
const RUNC_RECORD: &str = "runc.pid";

/// Tunables of the OCI backend.
#[derive(Debug, Clone)]
pub struct OciOptions {
    /// The runc binary: a path, or a name looked up on `PATH` (then in the sbin and bin
    /// directories). Default `runc`.
    pub runc: PathBuf,
    /// Size cap of one replica log file (one rotated file is kept besides).
    pub log_cap: u64,
    pub restart: RestartPolicy,
    /// Credentials for pulls. Default: the docker `config.json` of the daemon's user.
    pub keychain: Keychain,
    /// The cgroup under which each container gets `{parent}/{container id}`.
    pub cgroup_parent: String,
    /// `pids.max` of each container (none by default, as in Kubernetes).
    pub pids_limit: Option<i64>,
}

impl Default for OciOptions {
    fn default() -> Self {
        let keychain = Keychain::from_default_docker_config().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "ignoring the docker config for image pulls");
            Keychain::new()
        });
        OciOptions {
            runc: PathBuf::from("runc"),
            log_cap: DEFAULT_LOG_CAP,
            restart: RestartPolicy::default(),
            keychain,
            cgroup_parent: DEFAULT_CGROUP_PARENT.to_string(),
            pids_limit: None,
        }
    }
}

/// Why the OCI backend cannot run on this host (runc missing, not root...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct OciUnavailable {
    pub reason: String,
}

/// Runs replicas of containers with an image as runc containers. Files live under
/// `data_dir`: `logs/` (replica logs, as for processes), `replicas/` (bundles, rootfs mounts,
/// volumes, runc records), `runc/` (runc's state), and the image store `oci/` of `images`
/// wherever it was opened.
#[derive(Debug)]
pub struct OciBackend {
    shared: Arc<Shared>,
    log_cap: u64,
    restart: RestartPolicy,
    replicas: Mutex<Vec<Control>>,
}

/// What every replica's launcher shares.
#[derive(Debug)]
struct Shared {
    data_dir: PathBuf,
    runc: Runc,
    images: Images,
    keychain: Keychain,
    cgroups: Cgroups,
    pids_limit: Option<i64>,
    /// One pull per image at a time: concurrent replicas of a new revision wait for the first
    /// pull and then find the image in the store.
    pulls: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl OciBackend {
    /// Finds runc and checks that it runs (and that this process is root: runc needs it);
    /// creates `{data_dir}/runc` and `{data_dir}/replicas`.
    pub fn new(
        data_dir: impl Into<PathBuf>,
        images: Images,
        options: OciOptions,
    ) -> Result<OciBackend, OciUnavailable> {
        let data_dir = data_dir.into();
        let unavailable = |reason: String| OciUnavailable { reason };
        let bin = runc::find_binary(&options.runc).ok_or_else(|| {
            unavailable(format!(
                "runc was not found (looked for {:?} on PATH and in the system directories); install it (e.g. `apt-get install runc`)",
                options.runc
            ))
        })?;
        if !rustix::process::geteuid().is_root() {
            return Err(unavailable(
                "running containers with runc needs root; run the daemon as root".to_string(),
            ));
        }
        let version = runc::version(&bin).map_err(unavailable)?;
        let root = data_dir.join("runc");
        for dir in [&root, &data_dir.join("replicas")] {
            std::fs::create_dir_all(dir)
                .map_err(|e| unavailable(format!("cannot create {}: {e}", dir.display())))?;
        }
        let cgroups = Cgroups::detect(&options.cgroup_parent);
        tracing::info!(runc = %bin.display(), %version, cgroup_v2 = cgroups.is_v2(), "OCI backend ready");
        Ok(OciBackend {
            shared: Arc::new(Shared {
                data_dir,
                runc: Runc { bin, root },
                images,
                keychain: options.keychain,
                cgroups,
                pids_limit: options.pids_limit,
                pulls: Mutex::new(HashMap::new()),
            }),
            log_cap: options.log_cap,
            restart: options.restart,
            replicas: Mutex::new(Vec::new()),
        })
    }

    pub fn data_dir(&self) -> &Path {
        &self.shared.data_dir
    }

    /// runc's state root (`--root`).
    pub fn runc_root(&self) -> &Path {
        &self.shared.runc.root
    }

    /// The runc binary in use.
    pub fn runc_binary(&self) -> &Path {
        &self.shared.runc.bin
    }

    /// The directory of a replica: its run's bundle (`run/`), volumes, runc record.
    pub fn replica_dir(&self, revision: &RevisionRef, replica: &str) -> PathBuf {
        replica_dir(&self.shared.data_dir, revision, replica)
    }

    /// The replica's cgroup directories, one per cgroup mount (for checks: they exist only
    /// while the container runs).
    pub fn cgroup_dirs(&self, revision: &RevisionRef, replica: &str) -> Vec<PathBuf> {
        self.shared
            .cgroups
            .pod_dirs(&container_id(revision, replica))
    }

    /// The log file of a replica (the same path with `.1` appended is the previous one).
    pub fn log_path(&self, revision: &RevisionRef, replica: &str) -> PathBuf {
        crate::logs::log_path(&self.shared.data_dir, revision, replica)
    }

    /// The log files of every replica of `revision` (see `ProcessBackend::revision_logs`).
    pub fn revision_logs(&self, revision: &RevisionRef) -> Vec<(String, PathBuf)> {
        crate::logs::revision_logs(&self.shared.data_dir, revision)
    }

    /// Ends whatever a previous daemon left: runc processes still alive, containers in wisp's
    /// runc root or in replicas' cgroups (killed, then deleted), rootfs mounts, bundles,
    /// volumes and cgroups. Call once at daemon start, before starting replicas.
    pub async fn reap_orphans(&self) -> ReapReport {
        let shared = &self.shared;
        let mut killed = BTreeSet::new();
        let mut stale = 0;
        let dirs = replica_dirs(&shared.data_dir.join("replicas"));
        // A runc still running (its daemon died between fork and the death signal's arming).
        for (_, _, dir) in &dirs {
            if let Some(rec) = PidRecord::read(&dir.join(RUNC_RECORD))
                && orphans::proc_stat(rec.pid).is_some_and(|s| s.start_time == rec.start_time)
            {
                let _ = orphans::signal_group(rec.pid, Signal::KILL);
            }
        }
        let mut cids: BTreeSet<String> = shared.runc.containers().into_iter().collect();
        cids.extend(
            dirs.iter()
                .map(|(revision, id, _)| container_id(revision, id)),
        );
        for cid in cids {
            let name = replica_name(&cid);
            let running = !shared.cgroups.procs(&cid).is_empty();
            let run_dir = split_container_id(&cid)
                .map(|(revision, id)| replica_dir(&shared.data_dir, &revision, &id).join("run"));
            shared.clear_run(&cid, run_dir.as_deref()).await;
            if running {
                tracing::warn!(replica = %name, container = %cid, "killed a container left over by a previous daemon");
                killed.insert(name);
            } else {
                stale += 1;
            }
        }
        for (_, _, dir) in &dirs {
            remove_replica_dir(dir);
        }
        ReapReport {
            killed: killed.into_iter().collect(),
            stale,
        }
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

/// runc's id of a replica's container: `{namespace}+{revision}+{replica}` (`+` is valid in a
/// runc id and in none of the three names, so ids are unique).
pub fn container_id(revision: &RevisionRef, replica: &str) -> String {
    format!("{}+{}+{}", revision.namespace, revision.name, replica)
}

fn split_container_id(cid: &str) -> Option<(RevisionRef, String)> {
    let mut parts = cid.split('+');
    let (ns, rev, id) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || [ns, rev, id].iter().any(|p| check_name("", p).is_err()) {
        return None;
    }
    Some((RevisionRef::new(ns, rev), id.to_string()))
}

/// `namespace/revision/replica` of a container id (the id itself when it is not one of
/// wisp's).
fn replica_name(cid: &str) -> String {
    match split_container_id(cid) {
        Some((revision, id)) => format!("{revision}/{id}"),
        None => cid.to_string(),
    }
}

fn replica_dir(data_dir: &Path, revision: &RevisionRef, replica: &str) -> PathBuf {
    data_dir
        .join("replicas")
        .join(&revision.namespace)
        .join(&revision.name)
        .join(replica)
}

/// Every `{namespace}/{revision}/{replica}` directory under `root`.
fn replica_dirs(root: &Path) -> Vec<(RevisionRef, String, PathBuf)> {
    let subdirs = |dir: &Path| -> Vec<(String, PathBuf)> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
            .filter(|(name, _)| check_name("", name).is_ok())
            .collect()
    };
    let mut out = Vec::new();
    for (ns, ns_dir) in subdirs(root) {
        for (rev, rev_dir) in subdirs(&ns_dir) {
            for (id, dir) in subdirs(&rev_dir) {
                out.push((RevisionRef::new(&ns, &rev), id, dir));
            }
        }
    }
    out.sort_by(|a, b| a.2.cmp(&b.2));
    out
}

/// Removes a replica's directory once its run is cleared (its `run/` gone: a rootfs that
/// could not be unmounted keeps it), then its revision's and namespace's if empty.
fn remove_replica_dir(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir.join("volumes"));
    let _ = std::fs::remove_file(dir.join(RUNC_RECORD));
    if dir.join("run").exists() {
        tracing::warn!(dir = %dir.display(), "keeping a replica directory whose root file system could not be released");
        return;
    }
    if let Err(e) = std::fs::remove_dir_all(dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a replica directory");
    }
    // The revision's and namespace's directories, when this was their last replica.
    let mut parent = dir.parent();
    for _ in 0..2 {
        match parent {
            Some(p) if std::fs::remove_dir(p).is_ok() => parent = p.parent(),
            _ => break,
        }
    }
}

/// The image reference of a container, which must carry a digest.
pub fn pinned_reference(image: &str) -> Result<Reference, RuntimeError> {
    let reference =
        Reference::parse(image).map_err(|e| RuntimeError::InvalidSpec(e.to_string()))?;
    if reference.digest().is_none() {
        return Err(RuntimeError::InvalidSpec(format!(
            "image {image:?} is not pinned to a digest (repo@sha256:...); its tag is resolved when the Revision is created"
        )));
    }
    Ok(reference)
}

/// The container's host name: `{revision}-{replica}` as a DNS label.
fn hostname(revision: &RevisionRef, replica: &str) -> String {
    let mut h: String = format!("{}-{replica}", revision.name)
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    h.truncate(63);
    let h = h.trim_matches('-');
    if h.is_empty() {
        "wisp".to_string()
    } else {
        h.to_string()
    }
}

/// The container as the spec builder gets it: `command` and `args` expanded against the
/// replica's environment, which replaces `env` (it comes whole, expanded, as the spec's extra
/// variables), and without a memory limit when the pod cgroup enforces it.
fn container_for_spec(c: &Container, env: &[(String, String)], strip_memory: bool) -> Container {
    let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let mut out = c.clone();
    out.command = c.command.iter().map(|w| expand(w, lookup)).collect();
    out.args = c.args.iter().map(|w| expand(w, lookup)).collect();
    out.env.clear();
    if strip_memory {
        out.resources.limits.remove("memory");
    }
    out
}

/// How a run ended, from runc's exit status: runc exits with the init's code, or 128 + the
/// signal that killed it (reported as the signal, as for a process). `oom`: some process of
/// the container was killed for its memory; `runc_error`: what runc logged as failing;
/// `started`: whether the container's process was started (runc wrote its pid).
fn exit_info(
    code: Option<i32>,
    signal: Option<i32>,
    started: bool,
    runc_error: Option<String>,
    oom: bool,
    memory_limit: Option<&str>,
) -> ExitInfo {
    let (code, signal) = match code {
        Some(c) if (129..=128 + 64).contains(&c) => (None, Some(c - 128)),
        _ => (code, signal),
    };
    if oom {
        return ExitInfo {
            code,
            signal,
            reason: "OOMKilled".to_string(),
            message: match memory_limit {
                Some(l) => format!(
                    "the container ran out of memory (resources.limits.memory: {l}) and was killed"
                ),
                None => "the container ran out of memory and was killed".to_string(),
            },
        };
    }
    match runc_error {
        Some(e) if !started => ExitInfo::start_error(e),
        runc_error => ExitInfo {
            code,
            signal,
            reason: if code == Some(0) {
                "Completed"
            } else {
                "Error"
            }
            .to_string(),
            message: match (runc_error, signal) {
                (Some(e), _) => e,
                (None, Some(s)) if code.is_none() && !started => {
                    format!("runc was killed by signal {s} before the container started")
                }
                _ => String::new(),
            },
        },
    }
}

#[async_trait]
impl Backend for OciBackend {
    async fn start(&self, spec: ReplicaSpec) -> Result<ReplicaHandle, RuntimeError> {
        check_name("replica id", &spec.id)?;
        check_name("namespace", &spec.revision.namespace)?;
        check_name("revision", &spec.revision.name)?;
        let c = &spec.container;
        if c.image.is_empty() {
            return Err(RuntimeError::InvalidSpec(
                "a container of the OCI backend needs an image".to_string(),
            ));
        }
        let reference = pinned_reference(&c.image)?;
        for vm in &c.volume_mounts {
            check_name("volume", &vm.name)?;
        }
        let cid = container_id(&spec.revision, &spec.id);
        if cid.len() > MAX_CONTAINER_ID {
            return Err(RuntimeError::InvalidSpec(format!(
                "namespace, revision and replica id are too long together ({} characters, at most {MAX_CONTAINER_ID})",
                cid.len()
            )));
        }
        let memory_text = c
            .resources
            .limits
            .get("memory")
            .map(|q| q.as_str().to_string());
        let memory_limit =
            match &memory_text {
                Some(q) => Some(wisp_oci::quantity::value(q).map_err(|e| {
                    RuntimeError::InvalidSpec(format!("resources.limits.memory: {e}"))
                })?)
                .filter(|v| *v > 0),
                None => None,
            };
        let port = match spec.port {
            0 => free_port().map_err(|e| RuntimeError::io("cannot find a free port", e))?,
            p => p,
        };
        let env = build_env(
            c,
            &EnvInputs {
                inherited: &[],
                extra: &spec.env,
                port,
            },
        );
        let shared = &self.shared;
        let container = container_for_spec(c, &env, shared.cgroups.memory_limit_on_pod());
        let probes = resolve_probes(c, port)?;
        let log_path = self.log_path(&spec.revision, &spec.id);
        let logs = LogSink::open(log_path.clone(), self.log_cap)
            .map_err(|e| RuntimeError::io(format!("cannot open log {}", log_path.display()), e))?;
        let name = format!("{}/{}", spec.revision, spec.id);
        let launcher = OciLauncher {
            shared: shared.clone(),
            name: name.clone(),
            cid: cid.clone(),
            reference,
            container,
            env,
            hostname: hostname(&spec.revision, &spec.id),
            memory_limit: memory_limit.filter(|_| shared.cgroups.memory_limit_on_pod()),
            memory_text,
            replica_dir: self.replica_dir(&spec.revision, &spec.id),
            image: Mutex::new(None),
        };
        let config = SupervisorConfig {
            id: name,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            grace: spec.grace,
            probes,
            restart: self.restart,
            prober: Arc::new(OciProber {
                net: NetProber::default(),
                runc: shared.runc.clone(),
                cid,
            }),
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

impl Shared {
    async fn pull(&self, reference: &Reference) -> Result<Image, PullError> {
        let lock = {
            let mut pulls = self.pulls.lock().unwrap_or_else(|e| e.into_inner());
            pulls.entry(reference.to_string()).or_default().clone()
        };
        let _one_at_a_time = lock.lock().await;
        let (images, reference, keychain) = (
            self.images.clone(),
            reference.clone(),
            self.keychain.clone(),
        );
        // `Images::pull`'s future is not provably `Send` (the closure of its parallel layer
        // stream is not higher-ranked: rustc's "FnOnce is not general enough"), so it cannot
        // be awaited in a supervisor task. It runs on a blocking thread instead, driven by
        // this runtime's handle (`Handle::block_on` needs no `Send`). Dropping this future (a
        // stop during the pull) leaves the pull to finish in the background.
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || handle.block_on(images.pull(&reference, &keychain)))
            .await
            .map_err(|e| PullError::Task {
                what: "pulling",
                detail: e.to_string(),
            })?
    }

    /// Removes every trace of container `cid`'s run in `run_dir`: the container (runc
    /// kills and deletes it), processes left in its cgroups (a runc killed mid-start), the
    /// rootfs mount, the bundle, the pod cgroup. Idempotent; failures are logged.
    async fn clear_run(&self, cid: &str, run_dir: Option<&Path>) {
        if let Err(e) = self.runc.delete_force(cid).await {
            tracing::warn!(container = %cid, error = %e, "cannot delete a container");
        }
        let procs = self.cgroups.procs(cid);
        if !procs.is_empty() {
            for pid in &procs {
                if let Some(pid) = i32::try_from(*pid).ok().and_then(Pid::from_raw) {
                    let _ = rustix::process::kill_process(pid, Signal::KILL);
                }
            }
            let deadline = tokio::time::Instant::now() + KILL_TIMEOUT;
            while !self.cgroups.procs(cid).is_empty() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            // runc may have recorded the container meanwhile.
            let _ = self.runc.delete_force(cid).await;
        }
        let run_dir = run_dir.map(Path::to_path_buf);
        let cgroups = self.cgroups.clone();
        let cid = cid.to_string();
        let cleared = tokio::task::spawn_blocking(move || {
            if let Some(dir) = run_dir {
                release_bundle(&dir);
            }
            cgroups.remove_pod(&cid);
        })
        .await;
        if let Err(e) = cleared {
            tracing::warn!(error = %e, "clean-up of a container run failed");
        }
    }
}

/// Unmounts a run's rootfs and removes its bundle (kept when the unmount fails: removing
/// files through a live mount would reach the image's layers).
fn release_bundle(run_dir: &Path) {
    match Rootfs::of_replica_dir(run_dir).release() {
        Ok(()) => match std::fs::remove_dir_all(run_dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(dir = %run_dir.display(), error = %e, "cannot remove a container bundle")
            }
        },
        Err(e) => {
            tracing::warn!(dir = %run_dir.display(), error = %e, "cannot release a container's root file system")
        }
    }
}

/// Starts runs of one replica's container.
struct OciLauncher {
    shared: Arc<Shared>,
    /// `namespace/revision/replica`.
    name: String,
    cid: String,
    reference: Reference,
    /// As the spec builder takes it (see `container_for_spec`).
    container: Container,
    /// The replica's variables (the container's, `K_*`, `PORT`), expanded.
    env: Vec<(String, String)>,
    hostname: String,
    /// The memory limit the pod cgroup enforces (cgroup v1; on v2 it is in the spec).
    memory_limit: Option<i64>,
    /// `resources.limits.memory` as written, for messages.
    memory_text: Option<String>,
    replica_dir: PathBuf,
    /// The image, once pulled.
    image: Mutex<Option<Image>>,
}

#[async_trait]
impl Launcher for OciLauncher {
    async fn prepare(&self) -> Result<(), String> {
        let image = self
            .shared
            .pull(&self.reference)
            .await
            .map_err(|e| format!("pulling image {}: {e}", self.reference))?;
        *self.image.lock().unwrap_or_else(|e| e.into_inner()) = Some(image);
        Ok(())
    }

    async fn launch(&self, logs: &Arc<LogSink>) -> Result<Box<dyn Workload>, String> {
        let image = self
            .image
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| format!("image {} was not pulled", self.reference))?;
        let shared = &self.shared;
        let run_dir = self.replica_dir.join("run");
        // Whatever an earlier run could not clean up.
        shared.clear_run(&self.cid, Some(&run_dir)).await;
        let pod = match self.prepare_bundle(&image, &run_dir).await {
            Ok(pod) => pod,
            Err(message) => {
                shared.clear_run(&self.cid, Some(&run_dir)).await;
                return Err(message);
            }
        };
        let pid_file = run_dir.join("init.pid");
        let mut cmd = Command::new(&shared.runc.bin);
        cmd.arg("--root")
            .arg(&shared.runc.root)
            .arg("--log")
            .arg(run_dir.join("runc.log"))
            .args(["--log-format", "json", "run", "--bundle"])
            .arg(&run_dir)
            .arg("--pid-file")
            .arg(&pid_file)
            .arg(&self.cid)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // The supervisor decides when a replica dies, never a dropped handle.
            .kill_on_drop(false);
        spawn::harden(&mut cmd);
        let mut child = match spawn::spawn(cmd).await {
            Ok(child) => child,
            Err(e) => {
                shared.clear_run(&self.cid, Some(&run_dir)).await;
                return Err(format!("cannot start {}: {e}", shared.runc.bin.display()));
            }
        };
        let Some(runc_pid) = child.id() else {
            shared.clear_run(&self.cid, Some(&run_dir)).await;
            return Err("runc ended before it could be recorded".to_string());
        };
        let record_path = self.replica_dir.join(RUNC_RECORD);
        if let Some(stat) = orphans::proc_stat(runc_pid) {
            let record = PidRecord {
                pid: runc_pid,
                start_time: stat.start_time,
                replica: self.name.clone(),
            };
            if let Err(e) = record.write(&record_path) {
                tracing::warn!(replica = %self.name, error = %e, "cannot write the replica's runc record");
            }
        }
        let pumps = crate::logs::pump_child(&mut child, logs);
        Ok(Box::new(OciRun {
            shared: shared.clone(),
            child,
            runc_pid,
            cid: self.cid.clone(),
            run_dir,
            pid_file,
            record_path,
            pod,
            memory_text: self.memory_text.clone(),
            pumps,
            exit: None,
            cleaned: false,
        }))
    }
}

impl OciLauncher {
    /// The run's bundle, volumes and pod cgroup. On error the caller clears the run.
    async fn prepare_bundle(&self, image: &Image, run_dir: &Path) -> Result<Pod, String> {
        let shared = &self.shared;
        std::fs::create_dir_all(run_dir)
            .map_err(|e| format!("cannot create {}: {e}", run_dir.display()))?;
        let rootfs = shared
            .images
            .mount_rootfs(image, run_dir)
            .await
            .map_err(|e| format!("preparing the root file system of {}: {e}", self.reference))?;
        let mut volumes = BTreeMap::new();
        for vm in &self.container.volume_mounts {
            // emptyDir volumes: the replica's for its whole life (across runs), mode 0777 as
            // the kubelet makes them.
            let dir = self.replica_dir.join("volumes").join(&vm.name);
            std::fs::create_dir_all(&dir)
                .and_then(|()| {
                    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
                })
                .map_err(|e| format!("cannot create volume {:?}: {e}", vm.name))?;
            volumes.insert(vm.name.clone(), VolumeSource::HostDir(dir));
        }
        // The host's resolver and hosts files, bound where the rootfs is the replica's own
        // (runc creates their mount points in it).
        let host_file =
            |p: &str| Some(PathBuf::from(p)).filter(|p| !rootfs.shared_read_only() && p.exists());
        let opts = SpecOptions {
            rootfs: rootfs.path.clone(),
            rootfs_shared_read_only: rootfs.shared_read_only(),
            hostname: self.hostname.clone(),
            cgroups_path: Some(shared.cgroups.container_path(&self.cid)),
            network: Network::Host,
            volumes,
            resolv_conf: host_file("/etc/resolv.conf"),
            hosts: host_file("/etc/hosts"),
            pod_security_context: None,
            user_db: Some(UserDb::read(&rootfs.path)),
            pids_limit: shared.pids_limit,
        };
        let spec =
            wisp_oci::spec::build(&image.config.container(), &self.container, &self.env, &opts)
                .map_err(|e| e.to_string())?;
        spec.save(run_dir.join("config.json"))
            .map_err(|e| format!("cannot write the container's config.json: {e}"))?;
        shared
            .cgroups
            .create_pod(&self.cid, self.memory_limit)
            .map_err(|e| format!("cannot set up the container's cgroup: {e}"))
    }
}

impl Drop for OciLauncher {
    fn drop(&mut self) {
        // The replica is gone (its last run cleaned up): so are its volumes. Logs stay.
        remove_replica_dir(&self.replica_dir);
    }
}

/// One run: `runc run` (leader of its process group), the container's log pumps and pod
/// cgroup.
struct OciRun {
    shared: Arc<Shared>,
    child: Child,
    runc_pid: u32,
    cid: String,
    run_dir: PathBuf,
    /// Where runc writes the container init's pid once it started.
    pid_file: PathBuf,
    record_path: PathBuf,
    pod: Pod,
    memory_text: Option<String>,
    pumps: Vec<JoinHandle<()>>,
    exit: Option<ExitInfo>,
    cleaned: bool,
}

impl OciRun {
    /// The container's init, if runc started it and it is still runc's child.
    fn init_pid(&self) -> Option<Pid> {
        let pid: u32 = std::fs::read_to_string(&self.pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        orphans::proc_stat(pid).filter(|s| s.ppid == self.runc_pid)?;
        Pid::from_raw(i32::try_from(pid).ok()?)
    }
}

#[async_trait]
impl Workload for OciRun {
    fn pid(&self) -> Option<u32> {
        Some(self.runc_pid)
    }

    fn signal(&mut self, signal: StopSignal) {
        let result = match signal {
            // runc forwards it to the container's init.
            StopSignal::Term => orphans::signal_group(self.runc_pid, Signal::TERM),
            // The init's pid namespace dies with it. Before it exists, runc goes (the
            // clean-up's `runc delete --force` ends what it had started).
            StopSignal::Kill => match self.init_pid() {
                Some(init) => rustix::process::kill_process(init, Signal::KILL)
                    .or_else(|e| {
                        if e == rustix::io::Errno::SRCH {
                            Ok(())
                        } else {
                            Err(e)
                        }
                    })
                    .map_err(Into::into),
                None => orphans::signal_group(self.runc_pid, Signal::KILL),
            },
        };
        if let Err(e) = result {
            tracing::warn!(container = %self.cid, error = %e, "cannot signal a container");
        }
    }

    async fn wait(&mut self) -> ExitInfo {
        if let Some(exit) = &self.exit {
            return exit.clone();
        }
        let exit = match self.child.wait().await {
            Ok(status) => {
                use std::os::unix::process::ExitStatusExt;
                let log =
                    std::fs::read_to_string(self.run_dir.join("runc.log")).unwrap_or_default();
                exit_info(
                    status.code(),
                    status.signal(),
                    self.pid_file.exists(),
                    runc::last_error(&log),
                    self.pod.oom_killed(),
                    self.memory_text.as_deref(),
                )
            }
            Err(e) => ExitInfo {
                code: None,
                signal: None,
                reason: "Error".to_string(),
                message: format!("cannot wait for runc: {e}"),
            },
        };
        self.exit = Some(exit.clone());
        exit
    }

    async fn cleanup(&mut self) {
        // First the container (what is left of it), so that its output ends.
        self.shared.clear_run(&self.cid, Some(&self.run_dir)).await;
        for pump in &mut self.pumps {
            if tokio::time::timeout(LOG_DRAIN_TIMEOUT, &mut *pump)
                .await
                .is_err()
            {
                pump.abort();
            }
        }
        self.pumps.clear();
        let _ = std::fs::remove_file(&self.record_path);
        self.cleaned = true;
    }
}

impl Drop for OciRun {
    fn drop(&mut self) {
        for p in &self.pumps {
            p.abort();
        }
        if !self.cleaned {
            // Dropped without its clean-up (the runtime shutting down under the supervisor):
            // do not leave the container running unaccounted for.
            let _ = std::process::Command::new(&self.shared.runc.bin)
                .arg("--root")
                .arg(&self.shared.runc.root)
                .args(["delete", "--force", &self.cid])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            release_bundle(&self.run_dir);
            self.shared.cgroups.remove_pod(&self.cid);
            let _ = std::fs::remove_file(&self.record_path);
        }
    }
}

/// Probes a container: tcpSocket and httpGet from the host (host network), exec through
/// `runc exec`.
struct OciProber {
    net: NetProber,
    runc: Runc,
    cid: String,
}

#[async_trait]
impl Prober for OciProber {
    async fn probe(&self, action: &ProbeAction) -> Result<(), String> {
        match action {
            ProbeAction::Exec { command } => {
                let Some(program) = command.first() else {
                    return Err("exec probe: empty command".to_string());
                };
                let mut cmd = self.runc.exec(&self.cid, command);
                // The attempt's timeout drops this future: the command must not outlive it.
                cmd.kill_on_drop(true);
                run_exec_probe(cmd, program).await
            }
            other => self.net.probe(other).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wisp_api::core::{EnvVar, Quantity};

    #[test]
    fn container_ids_are_unique_and_reversible() {
        let rev = RevisionRef::new("default", "hello-00001");
        let cid = container_id(&rev, "a_b-1");
        assert_eq!(cid, "default+hello-00001+a_b-1");
        assert_eq!(split_container_id(&cid), Some((rev, "a_b-1".to_string())));
        assert_eq!(replica_name(&cid), "default/hello-00001/a_b-1");
        assert_eq!(split_container_id("other"), None);
        assert_eq!(split_container_id("a+b+c+d"), None);
        assert_eq!(replica_name("other"), "other");
    }

    #[test]
    fn host_names_are_dns_labels() {
        let rev = RevisionRef::new("default", "Hello_00001");
        assert_eq!(hostname(&rev, "r.1"), "hello-00001-r-1");
        let long = RevisionRef::new("ns", "x".repeat(80));
        assert_eq!(hostname(&long, "r").len(), 63);
        assert_eq!(hostname(&RevisionRef::new("ns", "_"), "_"), "wisp");
    }

    #[test]
    fn images_must_be_pinned() {
        let digest = format!("sha256:{}", "a".repeat(64));
        assert!(pinned_reference(&format!("busybox@{digest}")).is_ok());
        assert!(pinned_reference(&format!("127.0.0.1:5000/app:v1@{digest}")).is_ok());
        let err = pinned_reference("busybox:latest")
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("is not pinned to a digest")),
            "{err:?}"
        );
        assert!(matches!(
            pinned_reference("Not A Reference"),
            Err(RuntimeError::InvalidSpec(_))
        ));
    }

    #[test]
    fn command_args_and_env_are_expanded_for_the_spec() {
        let mut c = Container {
            command: vec!["/app".into(), "--port=$(PORT)".into()],
            args: vec!["$(GREETING)".into(), "$$(PORT)".into()],
            env: vec![EnvVar {
                name: "GREETING".into(),
                value: "hi-$(NAME)".into(),
                value_from: None,
            }],
            ..Container::default()
        };
        c.resources
            .limits
            .insert("memory".into(), Quantity("16Mi".into()));
        let env = vec![
            ("GREETING".to_string(), "hi-".to_string()),
            ("PORT".to_string(), "8081".to_string()),
        ];
        let out = container_for_spec(&c, &env, true);
        assert_eq!(out.command, vec!["/app", "--port=8081"]);
        assert_eq!(out.args, vec!["hi-", "$(PORT)"]);
        assert!(out.env.is_empty());
        assert!(!out.resources.limits.contains_key("memory"));
        let kept = container_for_spec(&c, &env, false);
        assert!(kept.resources.limits.contains_key("memory"));
    }

    #[test]
    fn exits_as_kubernetes_reports_them() {
        // Killed by SIGKILL (runc exits 137): the signal, as for a process.
        let killed = exit_info(Some(137), None, true, None, false, None);
        assert_eq!((killed.code, killed.signal), (None, Some(9)));
        assert_eq!(killed.reason, "Error");
        assert_eq!(killed.exit_code(), Some(137));
        // Out of memory.
        let oom = exit_info(Some(137), None, true, None, true, Some("16Mi"));
        assert_eq!(oom.reason, "OOMKilled");
        assert_eq!(oom.exit_code(), Some(137));
        assert!(oom.message.contains("16Mi"), "{}", oom.message);
        // Clean exits and failures.
        assert_eq!(
            exit_info(Some(0), None, true, None, false, None).reason,
            "Completed"
        );
        let failed = exit_info(Some(3), None, true, None, false, None);
        assert_eq!((failed.code, failed.reason.as_str()), (Some(3), "Error"));
        // runc could not start the process.
        let start = exit_info(
            Some(1),
            None,
            false,
            Some("exec: \"nope\": executable file not found in $PATH".into()),
            false,
            None,
        );
        assert_eq!(start.reason, "StartError");
        assert!(start.message.contains("executable file not found"));
        // runc itself killed before the container started.
        let early = exit_info(None, Some(15), false, None, false, None);
        assert_eq!(early.signal, Some(15));
        assert!(early.message.contains("before the container started"));
    }
}
