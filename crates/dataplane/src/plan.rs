//! What running a Revision means, decided once per revision change: the container to start,
//! the variables Knative gives it, the gateway's settings and the autoscaler's spec. Pure, so
//! every rule is a unit test; the driver only executes a plan.

use std::time::Duration;

use wisp_api::core::Container;
use wisp_api::serving::{Revision, keys};
use wisp_autoscaler::{Config, Spec, spec::ACTIVATION_TIMEOUT_BUFFER};
use wisp_gateway::RevisionConfig;

/// Knative's `revision-timeout-seconds` default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Everything the driver needs to run one revision.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The serving container; its `image`, if any, pinned to a digest when the Revision's
    /// status records one.
    pub container: Container,
    /// The image still has to be resolved to a digest (first run of the revision).
    pub resolve_image: bool,
    /// `imagePullSecrets` by name.
    pub pull_secrets: Vec<String>,
    /// `K_SERVICE`, `K_CONFIGURATION`, `K_REVISION` (Knative's order).
    pub env: Vec<(String, String)>,
    /// Values of the container's `valueFrom`/`envFrom` references, read when the plan is
    /// prepared.
    pub refs_env: Vec<(String, String)>,
    /// SIGTERM-to-SIGKILL grace when a replica stops (Knative: the revision's timeout).
    pub grace: Duration,
    pub gateway: RevisionConfig,
    pub spec: Spec,
    /// How long replicas may take to first reach the initial scale before the revision fails
    /// (`serving.knative.dev/progress-deadline`, else the daemon's default).
    pub progress_deadline: Duration,
}

impl Plan {
    /// Something must be read or fetched before the plan can run: an image tag to pin, or
    /// Secrets and ConfigMaps it names.
    pub fn needs_prepare(&self) -> bool {
        self.resolve_image || crate::refs::any(&self.container, &self.pull_secrets)
    }
}

/// A revision that cannot be run as written: Knative's reason and a message for its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError {
    pub reason: &'static str,
    pub message: String,
}

fn secs(v: Option<i64>) -> Option<Duration> {
    v.filter(|s| *s > 0)
        .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0)))
}

/// The plan for `rev`. `progress_deadline` is the default for revisions without the
/// annotation.
pub fn plan(
    rev: &Revision,
    config: &Config,
    progress_deadline: Duration,
    reachable: bool,
) -> Result<Plan, PlanError> {
    let containers = &rev.spec.containers;
    let container = match containers.len() {
        0 => {
            return Err(PlanError {
                reason: "ContainerMissing",
                message: "the revision has no container".into(),
            });
        }
        1 => &containers[0],
        _ => {
            return Err(PlanError {
                reason: "Unsupported",
                message: format!(
                    "wisp runs one container per revision; this one has {} (sidecars are not supported)",
                    containers.len()
                ),
            });
        }
    };
    let mut container = container.clone();
    let pinned = rev
        .status
        .container_statuses
        .iter()
        .find(|s| s.name == container.name && !s.image_digest.is_empty())
        .map(|s| s.image_digest.clone());
    let resolve_image = !container.image.is_empty() && pinned.is_none();
    if let Some(p) = pinned {
        container.image = p;
    }
    let cc = rev.spec.container_concurrency.unwrap_or(0);
    let mut spec =
        Spec::from_revision(&rev.metadata.annotations, cc, config).map_err(|e| PlanError {
            reason: "InvalidAnnotation",
            message: e.message,
        })?;
    spec.reachable = reachable;
    let has_annotation = rev
        .metadata
        .annotations
        .contains_key(keys::PROGRESS_DEADLINE_ANNOTATION);
    let progress_deadline = if has_annotation {
        spec.activation_timeout
            .saturating_sub(ACTIVATION_TIMEOUT_BUFFER)
    } else {
        spec.activation_timeout = progress_deadline + ACTIVATION_TIMEOUT_BUFFER;
        progress_deadline
    };
    let timeout = secs(rev.spec.timeout_seconds).unwrap_or(DEFAULT_TIMEOUT);
    let labels = &rev.metadata.labels;
    let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
    let env = vec![
        ("K_SERVICE".to_string(), label(keys::SERVICE_LABEL)),
        (
            "K_CONFIGURATION".to_string(),
            label(keys::CONFIGURATION_LABEL),
        ),
        ("K_REVISION".to_string(), rev.metadata.name.clone()),
    ];
    Ok(Plan {
        resolve_image,
        pull_secrets: rev
            .spec
            .image_pull_secrets
            .iter()
            .map(|s| s.name.clone())
            .collect(),
        container,
        env,
        refs_env: Vec::new(),
        grace: timeout,
        gateway: RevisionConfig {
            container_concurrency: u32::try_from(cc).unwrap_or(0),
            timeout,
            response_start_timeout: secs(rev.spec.response_start_timeout_seconds),
            idle_timeout: secs(rev.spec.idle_timeout_seconds),
            h2c: rev.spec.containers[0]
                .ports
                .first()
                .is_some_and(|p| p.name == "h2c"),
        },
        spec,
        progress_deadline,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev() -> Revision {
        let mut r = Revision::new("default", "hello-00001");
        r.metadata
            .labels
            .insert(keys::SERVICE_LABEL.into(), "hello".into());
        r.metadata
            .labels
            .insert(keys::CONFIGURATION_LABEL.into(), "hello".into());
        r.spec.containers.push(Container {
            command: vec!["app".into()],
            ..Container::default()
        });
        r
    }

    #[test]
    fn defaults_follow_knative() {
        let p = plan(&rev(), &Config::default(), Duration::from_secs(600), true).unwrap();
        assert_eq!(
            p.env,
            vec![
                ("K_SERVICE".to_string(), "hello".to_string()),
                ("K_CONFIGURATION".to_string(), "hello".to_string()),
                ("K_REVISION".to_string(), "hello-00001".to_string()),
            ]
        );
        assert_eq!(p.gateway.timeout, Duration::from_secs(300));
        assert_eq!(p.gateway.container_concurrency, 0);
        assert_eq!(p.grace, Duration::from_secs(300));
        // containerConcurrency 0: target 100 x 0.7.
        assert!((p.spec.target - 70.0).abs() < 1e-9);
        assert_eq!(p.progress_deadline, Duration::from_secs(600));
        assert!(p.spec.reachable);
    }

    #[test]
    fn spec_fields_and_annotations_apply() {
        let mut r = rev();
        r.spec.container_concurrency = Some(10);
        r.spec.timeout_seconds = Some(30);
        r.spec.response_start_timeout_seconds = Some(5);
        r.spec.idle_timeout_seconds = Some(7);
        r.spec.containers[0]
            .ports
            .push(wisp_api::core::ContainerPort {
                name: "h2c".into(),
                container_port: 8080,
                ..Default::default()
            });
        r.metadata
            .annotations
            .insert(keys::PROGRESS_DEADLINE_ANNOTATION.into(), "5s".into());
        r.metadata
            .annotations
            .insert("autoscaling.knative.dev/target".into(), "4".into());
        let p = plan(&r, &Config::default(), Duration::from_secs(600), false).unwrap();
        assert_eq!(p.gateway.container_concurrency, 10);
        assert_eq!(p.gateway.timeout, Duration::from_secs(30));
        assert_eq!(
            p.gateway.response_start_timeout,
            Some(Duration::from_secs(5))
        );
        assert_eq!(p.gateway.idle_timeout, Some(Duration::from_secs(7)));
        assert!(p.gateway.h2c);
        assert_eq!(p.progress_deadline, Duration::from_secs(5));
        assert!((p.spec.target - 4.0 * 0.7).abs() < 1e-9);
        assert!(!p.spec.reachable);
    }

    #[test]
    fn daemon_default_deadline_applies_without_annotation() {
        let p = plan(&rev(), &Config::default(), Duration::from_secs(20), true).unwrap();
        assert_eq!(p.progress_deadline, Duration::from_secs(20));
        assert_eq!(
            p.spec.activation_timeout,
            Duration::from_secs(20) + ACTIVATION_TIMEOUT_BUFFER
        );
    }

    #[test]
    fn images_run_pinned_to_the_digest_in_the_status() {
        let mut r = rev();
        r.spec.containers[0].image = "127.0.0.1:5000/site:v1".into();
        r.spec.containers[0].name = "user-container".into();
        let p = plan(&r, &Config::default(), Duration::from_secs(1), true).unwrap();
        assert!(p.resolve_image);
        assert_eq!(p.container.image, "127.0.0.1:5000/site:v1");
        r.status
            .container_statuses
            .push(wisp_api::serving::ContainerStatus {
                name: "user-container".into(),
                image_digest: "127.0.0.1:5000/site@sha256:abc".into(),
            });
        let p = plan(&r, &Config::default(), Duration::from_secs(1), true).unwrap();
        assert!(!p.resolve_image);
        assert_eq!(p.container.image, "127.0.0.1:5000/site@sha256:abc");
        // A command-only container has nothing to resolve.
        assert!(
            !plan(&rev(), &Config::default(), Duration::from_secs(1), true)
                .unwrap()
                .resolve_image
        );
    }

    #[test]
    fn unrunnable_revisions_say_why() {
        let mut r = rev();
        r.spec.containers.push(Container::default());
        assert_eq!(
            plan(&r, &Config::default(), Duration::from_secs(1), true)
                .unwrap_err()
                .reason,
            "Unsupported"
        );
        let mut r = rev();
        r.metadata
            .annotations
            .insert("autoscaling.knative.dev/min-scale".into(), "-1".into());
        let e = plan(&r, &Config::default(), Duration::from_secs(1), true).unwrap_err();
        assert_eq!(e.reason, "InvalidAnnotation");
        assert!(e.message.contains("min-scale"), "{}", e.message);
    }
}
