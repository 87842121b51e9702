//! The controller's view of whatever runs revisions and serves routes.
//!
//! Knative's revision reconciler creates a Deployment and a PodAutoscaler and reads their status
//! back; its route reconciler programs a KIngress and waits for it to be ready. wisp has no such
//! intermediate objects: the data plane (crate `wisp-dataplane`) implements this trait, the
//! reconcilers hand it desired state and read back an observation. The trait lives here so
//! that the controller depends on no data-plane crate and its tests can run without one.

use std::fmt;

use tokio::sync::mpsc::UnboundedReceiver;
use wisp_api::serving::{Revision, Route};

/// A condition's value as observed: what the revision reconciler writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    True,
    Unknown { reason: String, message: String },
    False { reason: String, message: String },
}

impl Observed {
    pub fn unknown(reason: &str, message: impl Into<String>) -> Self {
        Observed::Unknown {
            reason: reason.to_string(),
            message: message.into(),
        }
    }

    pub fn failed(reason: &str, message: impl Into<String>) -> Self {
        Observed::False {
            reason: reason.to_string(),
            message: message.into(),
        }
    }
}

/// What the data plane knows of one revision: Knative's Deployment and PodAutoscaler status
/// folded into the revision's own terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisionObservation {
    /// Replicas the autoscaler wants.
    pub desired_replicas: i32,
    /// Replicas ready to serve.
    pub actual_replicas: i32,
    /// `ResourcesAvailable`: True once the initial scale was reached; False past the progress
    /// deadline or when the revision cannot be run at all.
    pub resources_available: Observed,
    /// `ContainerHealthy`: True once a replica was ready; False with the exit reason while
    /// replicas are wanted and none is ready after one ended.
    pub container_healthy: Observed,
    /// `Active`: serving, activating, or idle/at zero.
    pub active: Observed,
    /// Images resolved to digests, by container name (`registry/repo@sha256:...`), for
    /// `status.containerStatuses[].imageDigest`.
    pub image_digests: Vec<(String, String)>,
}

/// Identifies a revision whose observation changed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RevisionName {
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for RevisionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Why a route could not be programmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressError {
    pub reason: String,
    pub message: String,
}

/// The data plane as the reconcilers use it. Calls are cheap and never block on I/O: they
/// record desired state and return; the data plane converges in its own tasks and reports
/// changes on [`changes`](DataPlane::changes).
pub trait DataPlane: Send + Sync + 'static {
    /// The revision should run as its spec says (called on every reconcile; idempotent).
    /// `reachable`: a route sends it traffic, or it is its configuration's newest revision and
    /// may soon get some (Knative's PodAutoscaler reachability); unreachable revisions go to
    /// zero whatever their min-scale.
    fn sync_revision(&self, rev: &Revision, reachable: bool);
    /// The revision is gone: stop its replicas.
    fn remove_revision(&self, namespace: &str, name: &str);
    /// What is observed of the revision; `None` before its first observation.
    fn observe_revision(&self, namespace: &str, name: &str) -> Option<RevisionObservation>;
    /// Programs the route's hosts from its status (url, traffic, tags). When this returns Ok,
    /// requests to those hosts go where the status says.
    fn sync_route(&self, route: &Route) -> Result<(), IngressError>;
    /// The route is gone: its hosts answer 404.
    fn remove_route(&self, namespace: &str, name: &str);
    /// Revisions whose observation changed, for the controller to reconcile again. Taken once.
    fn changes(&self) -> Option<UnboundedReceiver<RevisionName>>;
}
