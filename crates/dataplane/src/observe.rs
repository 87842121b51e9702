//! From what a revision's driver knows to what its Revision's status says: Knative's
//! `PropagateDeploymentStatus`, `PropagateAutoscalerStatus` and the crash check of its revision
//! reconciler, as one pure function.

use wisp_autoscaler::Activity;
use wisp_controller::dataplane::{Observed, RevisionObservation};

/// Knative's PodAutoscaler reasons and messages.
pub const QUEUED_MESSAGE: &str =
    "Requests to the target are being buffered as resources are provisioned.";
pub const NO_TRAFFIC_MESSAGE: &str = "The target is not receiving traffic.";

/// A replica's end, kept while no replica is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `ExitCode1`, `StartError`, ...
    pub reason: String,
    /// What ended it and its last log lines.
    pub message: String,
}

/// What the driver knows of its revision at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub desired: i32,
    pub ready: i32,
    /// The initial scale was reached once (Knative's `ScaleTargetInitialized`).
    pub initialized: bool,
    pub activity: Activity,
    /// The last replica failure, while no replica is ready.
    pub failure: Option<Failure>,
    /// Replicas were wanted for longer than the progress deadline without ever reaching the
    /// initial scale.
    pub deadline_exceeded: bool,
    /// The revision cannot be run at all (reason, message).
    pub unrunnable: Option<(String, String)>,
    /// Images resolved to digests, by container name.
    pub image_digests: Vec<(String, String)>,
    /// An image pull in flight for the revision's replicas: (image, bytes done, bytes in all).
    pub pulling: Option<(String, u64, u64)>,
}

/// `3.1 MB`: pull progress for people.
fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

pub fn observe(f: &Facts) -> RevisionObservation {
    let deploying = || Observed::unknown("Deploying", "");
    let container_healthy = match &f.failure {
        Some(fail) if f.ready == 0 => Observed::failed(
            &fail.reason,
            format!("Container failed with: {}", fail.message),
        ),
        _ if f.initialized || f.ready > 0 => Observed::True,
        _ => deploying(),
    };
    let resources_available = match &f.unrunnable {
        Some((reason, message)) => Observed::failed(reason, message.clone()),
        None if f.deadline_exceeded => Observed::failed(
            "ProgressDeadlineExceeded",
            "Initial scale was never achieved",
        ),
        None if f.initialized => Observed::True,
        None => match &f.pulling {
            Some((image, done, total)) => Observed::unknown(
                "Pulling",
                format!(
                    "Pulling image {image}: {} of {}",
                    megabytes(*done),
                    megabytes(*total)
                ),
            ),
            None => deploying(),
        },
    };
    let active = match f.activity {
        Activity::Active { .. } => Observed::True,
        Activity::Activating { .. } => Observed::unknown("Queued", QUEUED_MESSAGE),
        Activity::Idle { .. } | Activity::Zero { .. } => {
            Observed::failed("NoTraffic", NO_TRAFFIC_MESSAGE)
        }
    };
    RevisionObservation {
        desired_replicas: f.desired,
        actual_replicas: f.ready,
        resources_available,
        container_healthy,
        active,
        image_digests: f.image_digests.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn facts() -> Facts {
        Facts {
            desired: 1,
            ready: 0,
            initialized: false,
            activity: Activity::Activating {
                since: Instant::now(),
            },
            failure: None,
            deadline_exceeded: false,
            unrunnable: None,
            image_digests: Vec::new(),
            pulling: None,
        }
    }

    #[test]
    fn a_pull_in_flight_says_how_far_it_is() {
        let f = Facts {
            pulling: Some((
                "127.0.0.1:5000/site@sha256:ab".into(),
                3_100_000,
                11_000_000,
            )),
            ..facts()
        };
        assert_eq!(
            observe(&f).resources_available,
            Observed::unknown(
                "Pulling",
                "Pulling image 127.0.0.1:5000/site@sha256:ab: 3.1 MB of 11.0 MB"
            )
        );
        // Once a replica is up the revision's own state speaks, not the pull.
        let f = Facts {
            initialized: true,
            ready: 1,
            ..f
        };
        assert_eq!(observe(&f).resources_available, Observed::True);
    }

    #[test]
    fn deploying_then_ready_then_idle() {
        let o = observe(&facts());
        assert_eq!(o.resources_available, Observed::unknown("Deploying", ""));
        assert_eq!(o.container_healthy, Observed::unknown("Deploying", ""));
        assert_eq!(o.active, Observed::unknown("Queued", QUEUED_MESSAGE));

        let f = Facts {
            ready: 1,
            initialized: true,
            activity: Activity::Active {
                since: Instant::now(),
            },
            ..facts()
        };
        let o = observe(&f);
        assert_eq!(
            (o.resources_available, o.container_healthy, o.active),
            (Observed::True, Observed::True, Observed::True)
        );
        assert_eq!((o.desired_replicas, o.actual_replicas), (1, 1));

        let f = Facts {
            desired: 0,
            ready: 0,
            activity: Activity::Zero {
                since: Instant::now(),
            },
            ..f
        };
        let o = observe(&f);
        // At zero a revision stays Ready: only Active says it is idle.
        assert_eq!(o.resources_available, Observed::True);
        assert_eq!(o.container_healthy, Observed::True);
        assert_eq!(o.active, Observed::failed("NoTraffic", NO_TRAFFIC_MESSAGE));
    }

    #[test]
    fn crash_shows_while_nothing_is_ready() {
        let failure = Failure {
            reason: "ExitCode3".into(),
            message: "Error (exit code 3)\nboom".into(),
        };
        let f = Facts {
            failure: Some(failure.clone()),
            ..facts()
        };
        assert_eq!(
            observe(&f).container_healthy,
            Observed::failed(
                "ExitCode3",
                "Container failed with: Error (exit code 3)\nboom"
            )
        );
        let f = Facts {
            ready: 1,
            failure: Some(failure),
            ..facts()
        };
        assert_eq!(observe(&f).container_healthy, Observed::True);
    }

    #[test]
    fn deadline_and_unrunnable_fail_resources() {
        let f = Facts {
            deadline_exceeded: true,
            ..facts()
        };
        assert_eq!(
            observe(&f).resources_available,
            Observed::failed(
                "ProgressDeadlineExceeded",
                "Initial scale was never achieved"
            )
        );
        let f = Facts {
            unrunnable: Some(("Unsupported".into(), "no".into())),
            ..facts()
        };
        assert_eq!(
            observe(&f).resources_available,
            Observed::failed("Unsupported", "no")
        );
    }
}
