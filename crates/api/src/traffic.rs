//! Traffic resolution: a Route's spec traffic plus what exists now -> which revisions get
//! which share, per tag.
//!
//! Why pure: this decides where every request goes, so it must be testable from tables alone.
//! The Route reconciler gathers a [`Lookup`] snapshot of Configurations and Revisions, calls
//! [`resolve`], writes `status.traffic` with [`status_traffic`] and maps a [`TargetError`] to
//! the `AllTrafficAssigned` condition with [`TargetError::reason`] / [`TargetError::message`].
//! Follows knative/serving `pkg/reconciler/route/traffic/traffic.go`
//! (`BuildTrafficConfiguration`) without gradual rollout: targets pointing at a configuration
//! become its latest ready revision; the default target (tag `""`) receives every target,
//! each tag also gets its own list; targets with the same revision are merged; a target list
//! with one revision gets 100%; 0% targets are kept (they still get a tag URL).

use std::collections::BTreeMap;

use crate::meta::ConditionStatus;
use crate::naming;
use crate::serving::TrafficTarget;

/// The tag of the list that holds all traffic.
pub const DEFAULT_TARGET: &str = "";

/// What the reconciler knows about a Configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigurationState {
    /// `status.latestReadyRevisionName`, if any.
    pub latest_ready_revision_name: Option<String>,
    /// The Configuration's `Ready` condition status.
    pub ready: ConditionStatus,
}

/// What the reconciler knows about a Revision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevisionState {
    /// The Revision's `Ready` condition status.
    pub ready: ConditionStatus,
    /// Its `serving.knative.dev/configuration` label.
    pub configuration: Option<String>,
    /// Its `serving.knative.dev/service` label.
    pub service: Option<String>,
}

/// A snapshot of the objects traffic may point at, in the Route's namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lookup {
    pub configurations: BTreeMap<String, ConfigurationState>,
    pub revisions: BTreeMap<String, RevisionState>,
}

/// One resolved target: always a revision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedTarget {
    pub tag: String,
    pub revision_name: String,
    /// The Configuration the revision comes from (spec's, or the revision's label).
    pub configuration_name: String,
    pub latest_revision: Option<bool>,
    pub percent: i64,
}

/// The result of [`resolve`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrafficConfig {
    /// Per tag (`""` = all traffic): the revisions and their shares, merged by revision.
    pub targets: BTreeMap<String, Vec<ResolvedTarget>>,
    /// Spec order, merged only where tag, revision and latestRevision agree: what
    /// `status.traffic` lists.
    pub revision_targets: Vec<ResolvedTarget>,
}

/// Why traffic cannot be assigned. The Route's `AllTrafficAssigned` becomes False for a
/// failure and Unknown otherwise ([`TargetError::condition_status`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("Configuration {0:?} referenced in traffic not found")]
    ConfigurationMissing(String),
    #[error("Revision {0:?} referenced in traffic not found")]
    RevisionMissing(String),
    #[error("Configuration {name:?} not ready, isFailure={failed}")]
    ConfigurationNotReady { name: String, failed: bool },
    #[error("Revision {name:?} not ready, isFailure={failed}")]
    RevisionNotReady { name: String, failed: bool },
    #[error("Revision {revision:?} does not belong to Service {expected_service:?}")]
    RevisionNotOwned {
        revision: String,
        expected_service: String,
        actual_service: String,
    },
}

impl TargetError {
    /// A failure (False) rather than something still in progress (Unknown).
    pub fn is_failure(&self) -> bool {
        match self {
            TargetError::ConfigurationMissing(_)
            | TargetError::RevisionMissing(_)
            | TargetError::RevisionNotOwned { .. } => true,
            TargetError::ConfigurationNotReady { failed, .. }
            | TargetError::RevisionNotReady { failed, .. } => *failed,
        }
    }

    /// Status for the Route's `AllTrafficAssigned` condition.
    pub fn condition_status(&self) -> ConditionStatus {
        if self.is_failure() {
            ConditionStatus::False
        } else {
            ConditionStatus::Unknown
        }
    }

    /// Reason for the `AllTrafficAssigned` condition, as Knative's RouteStatus sets it.
    pub fn reason(&self) -> &'static str {
        match self {
            TargetError::ConfigurationMissing(_) => "ConfigurationMissing",
            TargetError::RevisionNotOwned { .. } => "RevisionNotOwned",
            _ => "RevisionMissing",
        }
    }

    /// Message for the `AllTrafficAssigned` condition, as Knative's RouteStatus sets it.
    pub fn message(&self) -> String {
        match self {
            TargetError::ConfigurationMissing(n) => {
                format!("Configuration {n:?} referenced in traffic not found.")
            }
            TargetError::RevisionMissing(n) => {
                format!("Revision {n:?} referenced in traffic not found.")
            }
            TargetError::ConfigurationNotReady { name, failed: true } => {
                format!("Configuration {name:?} does not have any ready Revision.")
            }
            TargetError::ConfigurationNotReady {
                name,
                failed: false,
            } => {
                format!("Configuration {name:?} is waiting for a Revision to become ready.")
            }
            TargetError::RevisionNotReady { name, failed: true } => {
                format!("Revision {name:?} failed to become ready.")
            }
            TargetError::RevisionNotReady {
                name,
                failed: false,
            } => {
                format!("Revision {name:?} is not yet ready.")
            }
            TargetError::RevisionNotOwned {
                revision,
                expected_service,
                actual_service,
            } => {
                if actual_service.is_empty() {
                    format!(
                        "Revision {revision:?} does not belong to Service {expected_service:?}."
                    )
                } else {
                    format!(
                        "Revision {revision:?} belongs to Service {actual_service:?}, not Service {expected_service:?}."
                    )
                }
            }
        }
    }
}

/// Resolves a Route's spec traffic. `route_service` is the Route's
/// `serving.knative.dev/service` label: when set, revisions named directly must belong to
/// that Service. Every target is examined; when several fail, the last failure wins (or the
/// first non-failure when none failed), as in Knative.
pub fn resolve(
    route_service: Option<&str>,
    traffic: &[TrafficTarget],
    lookup: &Lookup,
) -> Result<TrafficConfig, TargetError> {
    let mut out = TrafficConfig::default();
    let mut deferred: Option<TargetError> = None;
    for tt in traffic {
        let resolved = if !tt.revision_name.is_empty() {
            revision_target(route_service, tt, lookup)
        } else if !tt.configuration_name.is_empty() {
            configuration_target(tt, lookup)
        } else {
            continue;
        };
        match resolved {
            Ok(t) => add_flattened(&mut out, t),
            Err(e) => {
                if deferred.is_none() || e.is_failure() {
                    deferred = Some(e);
                }
            }
        }
    }
    if let Some(e) = deferred {
        return Err(e);
    }
    for list in out.targets.values_mut() {
        *list = consolidate(std::mem::take(list));
    }
    Ok(out)
}

fn ready_or(status: ConditionStatus, err: TargetError) -> Result<(), TargetError> {
    if status == ConditionStatus::True {
        Ok(())
    } else {
        Err(err)
    }
}

fn configuration_target(
    tt: &TrafficTarget,
    lookup: &Lookup,
) -> Result<ResolvedTarget, TargetError> {
    let name = &tt.configuration_name;
    let cfg = lookup
        .configurations
        .get(name)
        .ok_or_else(|| TargetError::ConfigurationMissing(name.clone()))?;
    let Some(rev_name) = cfg
        .latest_ready_revision_name
        .as_deref()
        .filter(|n| !n.is_empty())
    else {
        return Err(TargetError::ConfigurationNotReady {
            name: name.clone(),
            failed: cfg.ready == ConditionStatus::False,
        });
    };
    let rev = lookup
        .revisions
        .get(rev_name)
        .ok_or_else(|| TargetError::RevisionMissing(rev_name.to_string()))?;
    ready_or(
        rev.ready,
        TargetError::RevisionNotReady {
            name: rev_name.to_string(),
            failed: rev.ready == ConditionStatus::False,
        },
    )?;
    Ok(ResolvedTarget {
        tag: tt.tag.clone(),
        revision_name: rev_name.to_string(),
        configuration_name: name.clone(),
        latest_revision: tt.latest_revision,
        percent: tt.percent.unwrap_or(0),
    })
}

fn revision_target(
    route_service: Option<&str>,
    tt: &TrafficTarget,
    lookup: &Lookup,
) -> Result<ResolvedTarget, TargetError> {
    let name = &tt.revision_name;
    let rev = lookup
        .revisions
        .get(name)
        .ok_or_else(|| TargetError::RevisionMissing(name.clone()))?;
    if let Some(svc) = route_service.filter(|s| !s.is_empty()) {
        let actual = rev.service.clone().unwrap_or_default();
        if actual != svc {
            return Err(TargetError::RevisionNotOwned {
                revision: name.clone(),
                expected_service: svc.to_string(),
                actual_service: actual,
            });
        }
    }
    ready_or(
        rev.ready,
        TargetError::RevisionNotReady {
            name: name.clone(),
            failed: rev.ready == ConditionStatus::False,
        },
    )?;
    let mut configuration_name = String::new();
    if let Some(cfg) = &rev.configuration {
        if !lookup.configurations.contains_key(cfg) {
            return Err(TargetError::ConfigurationMissing(cfg.clone()));
        }
        configuration_name = cfg.clone();
    }
    Ok(ResolvedTarget {
        tag: tt.tag.clone(),
        revision_name: name.clone(),
        configuration_name,
        latest_revision: tt.latest_revision,
        percent: tt.percent.unwrap_or(0),
    })
}

fn add_flattened(out: &mut TrafficConfig, t: ResolvedTarget) {
    // Knative's mergeIfNecessary: same tag, revision and latestRevision -> add percents.
    match out.revision_targets.iter_mut().find(|r| {
        r.tag == t.tag
            && r.revision_name == t.revision_name
            && r.latest_revision == t.latest_revision
    }) {
        Some(r) => r.percent += t.percent,
        None => out.revision_targets.push(t.clone()),
    }
    if !t.tag.is_empty() {
        out.targets
            .entry(t.tag.clone())
            .or_default()
            .push(t.clone());
    }
    out.targets
        .entry(DEFAULT_TARGET.to_string())
        .or_default()
        .push(t);
}

fn consolidate(targets: Vec<ResolvedTarget>) -> Vec<ResolvedTarget> {
    let mut out: Vec<ResolvedTarget> = Vec::with_capacity(targets.len());
    for t in targets {
        match out.iter_mut().find(|o| o.revision_name == t.revision_name) {
            Some(o) => o.percent += t.percent,
            None => out.push(t),
        }
    }
    if let [only] = out.as_mut_slice() {
        only.percent = 100;
    }
    out
}

/// `status.traffic` for a resolved configuration: one entry per revision target, with
/// `url` = `http://{tag}-{route}.{namespace}.{domain}` for tagged ones.
pub fn status_traffic(
    config: &TrafficConfig,
    route_name: &str,
    namespace: &str,
    domain: &str,
) -> Vec<TrafficTarget> {
    config
        .revision_targets
        .iter()
        .map(|t| TrafficTarget {
            tag: t.tag.clone(),
            revision_name: t.revision_name.clone(),
            configuration_name: String::new(),
            latest_revision: t.latest_revision,
            percent: Some(t.percent),
            url: (!t.tag.is_empty())
                .then(|| naming::tag_url(&t.tag, route_name, namespace, domain)),
        })
        .collect()
}

/// The Route spec traffic a Service's traffic becomes (Knative's `resources.MakeRoute`):
/// targets without a revision point at the Service's Configuration (same name).
pub fn route_traffic_for_service(
    service_name: &str,
    traffic: &[TrafficTarget],
) -> Vec<TrafficTarget> {
    traffic
        .iter()
        .map(|tt| {
            let mut t = tt.clone();
            if t.revision_name.is_empty() {
                t.configuration_name = service_name.to_string();
            }
            t
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(ready: ConditionStatus, cfg: &str, svc: &str) -> RevisionState {
        RevisionState {
            ready,
            configuration: (!cfg.is_empty()).then(|| cfg.to_string()),
            service: (!svc.is_empty()).then(|| svc.to_string()),
        }
    }

    fn lookup() -> Lookup {
        use ConditionStatus::*;
        let mut l = Lookup::default();
        l.configurations.insert(
            "hello".into(),
            ConfigurationState {
                latest_ready_revision_name: Some("hello-00002".into()),
                ready: True,
            },
        );
        l.configurations.insert(
            "pending".into(),
            ConfigurationState {
                latest_ready_revision_name: None,
                ready: Unknown,
            },
        );
        l.configurations.insert(
            "broken".into(),
            ConfigurationState {
                latest_ready_revision_name: None,
                ready: False,
            },
        );
        l.revisions
            .insert("hello-00001".into(), rev(True, "hello", "hello"));
        l.revisions
            .insert("hello-00002".into(), rev(True, "hello", "hello"));
        l.revisions
            .insert("hello-00003".into(), rev(Unknown, "hello", "hello"));
        l.revisions
            .insert("hello-00004".into(), rev(False, "hello", "hello"));
        l.revisions
            .insert("other-00001".into(), rev(True, "", "other"));
        l
    }

    fn cfg_tt(tag: &str, percent: i64) -> TrafficTarget {
        TrafficTarget {
            tag: tag.into(),
            configuration_name: "hello".into(),
            latest_revision: Some(true),
            percent: Some(percent),
            ..TrafficTarget::default()
        }
    }
    fn rev_tt(tag: &str, rev: &str, percent: i64) -> TrafficTarget {
        TrafficTarget {
            tag: tag.into(),
            revision_name: rev.into(),
            latest_revision: Some(false),
            percent: Some(percent),
            ..TrafficTarget::default()
        }
    }

    /// (revision, percent) per tag.
    type Want = &'static [(&'static str, &'static [(&'static str, i64)])];

    #[test]
    fn resolves_table() {
        let table: Vec<(&str, Vec<TrafficTarget>, Want)> = vec![
            (
                "latest only",
                vec![cfg_tt("", 100)],
                &[("", &[("hello-00002", 100)])],
            ),
            (
                "split with tags",
                vec![rev_tt("v1", "hello-00001", 40), cfg_tt("current", 60)],
                &[
                    ("", &[("hello-00001", 40), ("hello-00002", 60)]),
                    ("current", &[("hello-00002", 100)]),
                    ("v1", &[("hello-00001", 100)]),
                ],
            ),
            (
                "zero percent tag kept",
                vec![cfg_tt("", 100), rev_tt("old", "hello-00001", 0)],
                &[
                    ("", &[("hello-00002", 100), ("hello-00001", 0)]),
                    ("old", &[("hello-00001", 100)]),
                ],
            ),
            (
                "same revision twice merges",
                vec![cfg_tt("", 50), rev_tt("", "hello-00002", 50)],
                &[("", &[("hello-00002", 100)])],
            ),
        ];
        for (name, traffic, want) in table {
            let got = resolve(Some("hello"), &traffic, &lookup());
            let got = match got {
                Ok(g) => g,
                Err(e) => panic!("{name}: {e}"),
            };
            let got_simple: Vec<(String, Vec<(String, i64)>)> = got
                .targets
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.iter()
                            .map(|t| (t.revision_name.clone(), t.percent))
                            .collect(),
                    )
                })
                .collect();
            let want_simple: Vec<(String, Vec<(String, i64)>)> = want
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        v.iter().map(|(r, p)| (r.to_string(), *p)).collect(),
                    )
                })
                .collect();
            assert_eq!(got_simple, want_simple, "{name}");
        }
    }

    #[test]
    fn errors_table() {
        use ConditionStatus::*;
        let missing_cfg = TrafficTarget {
            configuration_name: "nope".into(),
            percent: Some(100),
            ..TrafficTarget::default()
        };
        let pending = TrafficTarget {
            configuration_name: "pending".into(),
            percent: Some(100),
            ..TrafficTarget::default()
        };
        let broken = TrafficTarget {
            configuration_name: "broken".into(),
            percent: Some(100),
            ..TrafficTarget::default()
        };
        let table: Vec<(Vec<TrafficTarget>, TargetError, ConditionStatus, &str)> = vec![
            (
                vec![rev_tt("", "hello-00009", 100)],
                TargetError::RevisionMissing("hello-00009".into()),
                False,
                "RevisionMissing",
            ),
            (
                vec![missing_cfg],
                TargetError::ConfigurationMissing("nope".into()),
                False,
                "ConfigurationMissing",
            ),
            (
                vec![pending.clone()],
                TargetError::ConfigurationNotReady {
                    name: "pending".into(),
                    failed: false,
                },
                Unknown,
                "RevisionMissing",
            ),
            (
                vec![broken],
                TargetError::ConfigurationNotReady {
                    name: "broken".into(),
                    failed: true,
                },
                False,
                "RevisionMissing",
            ),
            (
                vec![rev_tt("", "hello-00003", 100)],
                TargetError::RevisionNotReady {
                    name: "hello-00003".into(),
                    failed: false,
                },
                Unknown,
                "RevisionMissing",
            ),
            (
                vec![rev_tt("", "other-00001", 100)],
                TargetError::RevisionNotOwned {
                    revision: "other-00001".into(),
                    expected_service: "hello".into(),
                    actual_service: "other".into(),
                },
                False,
                "RevisionNotOwned",
            ),
            (
                // A failure wins over an earlier not-ready.
                vec![pending, rev_tt("", "hello-00004", 0)],
                TargetError::RevisionNotReady {
                    name: "hello-00004".into(),
                    failed: true,
                },
                False,
                "RevisionMissing",
            ),
        ];
        for (traffic, want, status, reason) in table {
            let got = resolve(Some("hello"), &traffic, &lookup());
            assert_eq!(got.as_ref().err(), Some(&want));
            assert_eq!(want.condition_status(), status, "{want}");
            assert_eq!(want.reason(), reason, "{want}");
        }
    }

    #[test]
    fn messages() {
        assert_eq!(
            TargetError::RevisionMissing("x".into()).message(),
            "Revision \"x\" referenced in traffic not found."
        );
        assert_eq!(
            TargetError::RevisionNotOwned {
                revision: "r".into(),
                expected_service: "a".into(),
                actual_service: String::new()
            }
            .message(),
            "Revision \"r\" does not belong to Service \"a\"."
        );
    }

    #[test]
    fn status_with_urls() {
        let traffic = vec![rev_tt("v1", "hello-00001", 40), cfg_tt("", 60)];
        let cfg = resolve(Some("hello"), &traffic, &lookup()).unwrap_or_default();
        let st = status_traffic(&cfg, "hello", "default", "example.com");
        assert_eq!(
            st,
            vec![
                TrafficTarget {
                    tag: "v1".into(),
                    revision_name: "hello-00001".into(),
                    latest_revision: Some(false),
                    percent: Some(40),
                    url: Some("http://v1-hello.default.example.com".into()),
                    ..TrafficTarget::default()
                },
                TrafficTarget {
                    revision_name: "hello-00002".into(),
                    latest_revision: Some(true),
                    percent: Some(60),
                    ..TrafficTarget::default()
                },
            ]
        );
    }

    #[test]
    fn service_traffic_points_at_configuration() {
        let t = route_traffic_for_service(
            "hello",
            &[
                TrafficTarget {
                    latest_revision: Some(true),
                    percent: Some(100),
                    ..TrafficTarget::default()
                },
                rev_tt("old", "hello-00001", 0),
            ],
        );
        assert_eq!(t[0].configuration_name, "hello");
        assert_eq!(t[1].configuration_name, "");
    }
}
