//! Replica backends: wisp's kubelet and container runtime.
//!
//! A [`Backend`] starts a replica of a revision's container from a [`ReplicaSpec`] and hands
//! back a [`ReplicaHandle`]. Behind the handle a supervisor task (one per replica, `replica.rs`)
//! runs the replica's life as a state machine: start, probe (startup, readiness, liveness, as
//! Kubernetes does, with Knative's aggressive readiness probing so cold starts stay short),
//! restart with exponential back-off when it ends or fails its liveness probe, drain on stop
//! (SIGTERM, then SIGKILL after the grace period). Its [`ReplicaStatus`] goes out on a watch
//! channel: the controller derives ContainerHealthy (reason, exit code, last log lines) from
//! it, the gateway learns from it when the replica's address may receive requests.
//!
//! This crate owns processes and their files (logs, pid records) under the data directory. It
//! must not decide how many replicas run (the autoscaler does), route requests (the gateway
//! does) or touch the store (the controller does): it is told what to run and reports what
//! happened.
//!
//! Backends: [`ProcessBackend`] runs a container with `command` and no `image` as a host
//! process; [`OciBackend`] runs a container with an `image` (pinned by digest) as a runc
//! container, with the same supervisor; [`Backends`] is the one the daemon holds, dispatching
//! by `image`.
//!
//! Pure parts, tested as such: `$(VAR)` expansion and the environment ([`expand`]), probe
//! decisions ([`probe`]), restart back-off ([`backoff`]), cgroup layout and OOM counters
//! (`cgroups.rs`), runc exits. Unsafe code is confined to `spawn.rs` (the child's pre-exec
//! hook), audited there.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use wisp_api::core::Container;

mod backends;
pub mod backoff;
mod cgroups;
pub mod expand;
pub mod logs;
pub mod oci;
pub mod orphans;
pub mod probe;
pub mod prober;
mod process;
mod replica;
mod runc;
mod spawn;
pub mod tuning;

pub use backends::Backends;
pub use backoff::RestartPolicy;
pub use logs::{LogSink, read_tail};
pub use oci::{OciBackend, OciOptions, OciUnavailable};
pub use orphans::ReapReport;
pub use process::{DEFAULT_INHERITED_ENV, ProcessBackend, ProcessOptions, free_port};
pub use replica::{ExitInfo, NeverReady, Phase, ReplicaHandle, ReplicaStatus};

/// A revision, by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RevisionRef {
    pub namespace: String,
    pub name: String,
}

impl RevisionRef {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        RevisionRef {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for RevisionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What to run: one replica of a revision's serving container.
#[derive(Debug, Clone)]
pub struct ReplicaSpec {
    /// Unique among the replicas of the revision; used in file names (letters, digits, `-`,
    /// `.`, `_`).
    pub id: String,
    pub revision: RevisionRef,
    pub container: Container,
    /// Variables resolved by the caller: `K_SERVICE`, `K_CONFIGURATION`, `K_REVISION`, and the
    /// values of the container's `valueFrom` entries by name. They come after the container's
    /// own `env` (as Knative appends them) and win over it; `PORT` is set by the backend.
    pub env: Vec<(String, String)>,
    /// The port the replica must listen on (`PORT`); 0 lets the backend pick a free one.
    pub port: u16,
    /// Time between SIGTERM and SIGKILL when the replica is stopped for it (dropped handle,
    /// failed liveness probe). Knative uses the revision's `timeoutSeconds`.
    pub grace: Duration,
}

/// Errors of starting a replica. Anything that goes wrong later (the program is missing, it
/// crashes) is not an error of `start` but shows in the replica's status.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("invalid replica spec: {0}")]
    InvalidSpec(String),
    #[error("the {backend} backend cannot run {what}")]
    Unsupported { backend: &'static str, what: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl RuntimeError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        RuntimeError::Io {
            what: what.into(),
            source,
        }
    }
}

/// Runs replicas. Implementations: [`ProcessBackend`] (host processes), [`OciBackend`] (runc
/// containers), [`Backends`] (both, by `image`).
#[async_trait]
pub trait Backend: Send + Sync {
    /// Starts a replica and returns at once (before it is ready: see
    /// [`ReplicaHandle::ready`]). Must be called within a tokio runtime.
    async fn start(&self, spec: ReplicaSpec) -> Result<ReplicaHandle, RuntimeError>;
}
