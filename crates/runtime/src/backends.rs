//! The backend the daemon holds: host processes and OCI containers behind one [`Backend`].
//!
//! A container with an `image` goes to the OCI backend (its `command`, if any, replaces the
//! image's entrypoint); one with a `command` and no image to the process backend. When the
//! OCI backend could not be set up (runc missing, not root), image containers are refused with
//! the reason, and processes run as before.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;

use crate::oci::{OciBackend, OciUnavailable};
use crate::orphans::ReapReport;
use crate::{Backend, ProcessBackend, ReplicaHandle, ReplicaSpec, RevisionRef, RuntimeError};

/// Host processes and, when available, OCI containers.
#[derive(Debug)]
pub struct Backends {
    process: ProcessBackend,
    oci: Result<OciBackend, OciUnavailable>,
}

impl Backends {
    /// Both backends; `oci` is what [`OciBackend::new`] returned.
    pub fn new(process: ProcessBackend, oci: Result<OciBackend, OciUnavailable>) -> Self {
        Backends { process, oci }
    }

    /// Host processes only: image containers are refused.
    pub fn process_only(process: ProcessBackend) -> Self {
        Backends {
            process,
            oci: Err(OciUnavailable {
                reason: "this daemon runs no OCI backend".to_string(),
            }),
        }
    }

    pub fn process(&self) -> &ProcessBackend {
        &self.process
    }

    pub fn oci(&self) -> Option<&OciBackend> {
        self.oci.as_ref().ok()
    }

    /// Why image containers cannot run, when they cannot.
    pub fn oci_unavailable(&self) -> Option<&OciUnavailable> {
        self.oci.as_ref().err()
    }

    /// Both backends' sweeps of what a previous daemon left (see
    /// [`ProcessBackend::reap_orphans`] and [`OciBackend::reap_orphans`]). Call once at
    /// daemon start, before starting replicas.
    pub async fn reap_orphans(&self) -> ReapReport {
        let mut report = self.process.reap_orphans().await;
        if let Ok(oci) = &self.oci {
            let more = oci.reap_orphans().await;
            report.killed.extend(more.killed);
            report.killed.sort();
            report.stale += more.stale;
        }
        report
    }

    /// Stops every replica of both backends, each with `grace`, and waits for them all.
    pub async fn shutdown(&self, grace: Duration) {
        match &self.oci {
            Ok(oci) => {
                tokio::join!(self.process.shutdown(grace), oci.shutdown(grace));
            }
            Err(_) => self.process.shutdown(grace).await,
        }
    }

    /// The log files of every replica of `revision`, of both backends, oldest first.
    pub fn revision_logs(&self, revision: &RevisionRef) -> Vec<(String, PathBuf)> {
        let mut logs = self.process.revision_logs(revision);
        if let Ok(oci) = &self.oci
            && oci.data_dir() != self.process.data_dir()
        {
            logs.extend(oci.revision_logs(revision));
        }
        logs
    }
}

#[async_trait]
impl Backend for Backends {
    async fn start(&self, spec: ReplicaSpec) -> Result<ReplicaHandle, RuntimeError> {
        if spec.container.image.is_empty() {
            return self.process.start(spec).await;
        }
        match &self.oci {
            Ok(oci) => oci.start(spec).await,
            Err(unavailable) => Err(RuntimeError::Unsupported {
                backend: "oci",
                what: format!("image {:?}: {unavailable}", spec.container.image),
            }),
        }
    }
}
