//! Pure status computations: what each object's `status` should say, given its children.
//!
//! Conditions are kept honest. A Revision is Ready only when the data plane observes it running
//! (without a data plane it stays `Ready=Unknown` and says why). Everything else follows Knative's propagation rules
//! (`ServiceStatus.PropagateConfigurationStatus`, `PropagateRouteStatus`, the configuration
//! reconciler's latest-ready bookkeeping), taking `now` as an argument.

use wisp_api::meta::{
    CONFIGURATION_CONDITIONS, ConditionStatus, READY, REVISION_CONDITIONS, ROUTE_CONDITIONS,
    SERVICE_CONDITIONS, get_condition, keep_transition_times,
};
use wisp_api::naming;
use wisp_api::serving::{
    Addressable, Configuration, ConfigurationStatus, ContainerStatus, Revision, RevisionStatus,
    Route, RouteStatus, Service, ServiceStatus, keys,
};
use wisp_api::traffic::{self, Lookup};

use crate::dataplane::{IngressError, Observed, RevisionObservation};

/// Why a revision is not running when the controller has no data plane (its own tests, or a
/// control-plane-only daemon).
pub const NO_DATA_PLANE_REASON: &str = "NoDataPlane";
pub const NO_DATA_PLANE_MESSAGE: &str =
    "no data plane runs with this controller, so nothing runs revisions";

fn ready_of(conditions: &[wisp_api::meta::Condition]) -> (ConditionStatus, String, String) {
    get_condition(conditions, READY)
        .map(|c| (c.status, c.reason.clone(), c.message.clone()))
        .unwrap_or((ConditionStatus::Unknown, String::new(), String::new()))
}

/// A Revision's status: its containers, and conditions from what the data plane observes
/// (`None`: no data plane runs this controller, or it has not looked at the revision yet).
pub fn revision_status(
    rev: &Revision,
    observed: Option<&RevisionObservation>,
    now: &str,
) -> RevisionStatus {
    let mut st = rev.status.clone();
    st.observed_generation = rev.metadata.generation;
    st.container_statuses = rev
        .spec
        .containers
        .iter()
        .map(|c| ContainerStatus {
            name: c.name.clone(),
            image_digest: st
                .container_statuses
                .iter()
                .find(|s| s.name == c.name)
                .map(|s| s.image_digest.clone())
                .unwrap_or_default(),
        })
        .collect();
    let mut m = REVISION_CONDITIONS.manage(&mut st.conditions, now);
    m.initialize();
    match observed {
        None => {
            m.mark_unknown(
                "ResourcesAvailable",
                NO_DATA_PLANE_REASON,
                NO_DATA_PLANE_MESSAGE,
            );
            m.mark_unknown(
                "ContainerHealthy",
                NO_DATA_PLANE_REASON,
                NO_DATA_PLANE_MESSAGE,
            );
        }
        Some(o) => {
            // Failures first, so that a True marked after them cannot hide them.
            let conds = [
                ("ContainerHealthy", &o.container_healthy),
                ("ResourcesAvailable", &o.resources_available),
                ("Active", &o.active),
            ];
            for (t, v) in conds
                .iter()
                .filter(|(_, v)| matches!(v, Observed::False { .. }))
            {
                mark(&mut m, t, v);
            }
            for (t, v) in conds
                .iter()
                .filter(|(_, v)| !matches!(v, Observed::False { .. }))
            {
                mark(&mut m, t, v);
            }
            st.actual_replicas = Some(o.actual_replicas);
            st.desired_replicas = Some(o.desired_replicas);
            for (name, digest) in &o.image_digests {
                if let Some(cs) = st.container_statuses.iter_mut().find(|c| &c.name == name) {
                    cs.image_digest = digest.clone();
                }
            }
        }
    }
    keep_transition_times(&rev.status.conditions, &mut st.conditions);
    st
}

fn mark(m: &mut wisp_api::meta::ConditionManager<'_>, t: &str, v: &Observed) {
    match v {
        Observed::True => m.mark_true(t),
        Observed::Unknown { reason, message } => m.mark_unknown(t, reason, message),
        Observed::False { reason, message } => m.mark_false(t, reason, message),
    }
}

/// A Configuration's status given its latest created revision (if it exists yet) and the
/// revisions it owns, as Knative's configuration reconciler keeps it.
pub fn configuration_status(
    config: &Configuration,
    latest_created: Option<&Revision>,
    owned: &[&Revision],
    now: &str,
) -> ConfigurationStatus {
    let mut st = config.status.clone();
    st.observed_generation = config.metadata.generation;
    // The latest ready revision must still exist.
    if !st.latest_ready_revision_name.is_empty()
        && !owned
            .iter()
            .any(|r| r.metadata.name == st.latest_ready_revision_name)
    {
        st.latest_ready_revision_name.clear();
    }
    let mut m = CONFIGURATION_CONDITIONS.manage(&mut st.conditions, now);
    m.initialize();
    let Some(rev) = latest_created else {
        m.mark_unknown(READY, "", "");
        keep_transition_times(&config.status.conditions, &mut st.conditions);
        return st;
    };
    let name = rev.metadata.name.clone();
    let (status, _, message) = ready_of(&rev.status.conditions);
    match status {
        ConditionStatus::True => {
            m.mark_true(READY);
            st.latest_ready_revision_name = name.clone();
        }
        ConditionStatus::False => m.mark_false(
            READY,
            "RevisionFailed",
            &format!("Revision {name:?} failed with message: {message}."),
        ),
        ConditionStatus::Unknown => m.mark_unknown(READY, "", ""),
    }
    st.latest_created_revision_name = name;
    if st.latest_ready_revision_name.is_empty() {
        // Knative falls back to the newest ready revision it owns.
        st.latest_ready_revision_name = owned
            .iter()
            .filter(|r| ready_of(&r.status.conditions).0 == ConditionStatus::True)
            .max_by_key(|r| {
                r.metadata
                    .labels
                    .get(keys::CONFIGURATION_GENERATION_LABEL)
                    .and_then(|g| g.parse::<i64>().ok())
            })
            .map(|r| r.metadata.name.clone())
            .unwrap_or_default();
    }
    keep_transition_times(&config.status.conditions, &mut st.conditions);
    st
}

/// A Route's status given a snapshot of what its traffic may point at.
pub fn route_status(route: &Route, lookup: &Lookup, domain: &str, now: &str) -> RouteStatus {
    let (ns, name) = (&route.metadata.namespace, &route.metadata.name);
    let mut st = route.status.clone();
    st.observed_generation = route.metadata.generation;
    let cluster_local = route
        .metadata
        .labels
        .get(keys::VISIBILITY_LABEL)
        .map(String::as_str)
        == Some(keys::VISIBILITY_CLUSTER_LOCAL);
    st.url = Some(if cluster_local {
        naming::cluster_local_url(name, ns)
    } else {
        naming::service_url(name, ns, domain)
    });
    st.address = Some(Addressable {
        url: Some(naming::cluster_local_url(name, ns)),
        ..Addressable::default()
    });
    let service = route
        .metadata
        .labels
        .get(keys::SERVICE_LABEL)
        .map(String::as_str);
    let resolved = traffic::resolve(service, &route.spec.traffic, lookup);
    let mut m = ROUTE_CONDITIONS.manage(&mut st.conditions, now);
    m.initialize();
    m.mark_true_with_reason(
        "CertificateProvisioned",
        "TLSNotEnabled",
        "autoTLS is not enabled",
    );
    match resolved {
        Ok(cfg) => {
            m.mark_true("AllTrafficAssigned");
            st.traffic = traffic::status_traffic(&cfg, name, ns, domain);
        }
        Err(e) if e.is_failure() => m.mark_false("AllTrafficAssigned", e.reason(), &e.message()),
        Err(e) => m.mark_unknown("AllTrafficAssigned", e.reason(), &e.message()),
    }
    keep_transition_times(&route.status.conditions, &mut st.conditions);
    st
}

/// Where the route's hosts stand in the gateway: `None` when no data plane runs with this
/// controller; otherwise the outcome of programming them from the status just computed.
/// Nothing is programmed while the traffic cannot be assigned, and the condition then stays
/// as it was (Knative keeps the last ingress too).
pub fn mark_ingress(
    old: &RouteStatus,
    st: &mut RouteStatus,
    outcome: Option<Result<(), IngressError>>,
    now: &str,
) {
    let mut m = ROUTE_CONDITIONS.manage(&mut st.conditions, now);
    match outcome {
        None => m.mark_unknown(
            "IngressReady",
            "IngressNotConfigured",
            "no data plane runs with this controller, so nothing serves this route",
        ),
        Some(Ok(())) => m.mark_true("IngressReady"),
        Some(Err(e)) => m.mark_false("IngressReady", &e.reason, &e.message),
    }
    keep_transition_times(&old.conditions, &mut st.conditions);
}

/// A Service's status mirrors its Configuration and Route.
pub fn service_status(
    svc: &Service,
    config: Result<&Configuration, String>,
    route: Result<&Route, String>,
    now: &str,
) -> ServiceStatus {
    let mut st = svc.status.clone();
    st.observed_generation = svc.metadata.generation;
    let mut conds = std::mem::take(&mut st.conditions);
    let mut m = SERVICE_CONDITIONS.manage(&mut conds, now);
    m.initialize();
    match config {
        Err(not_owned) => m.mark_false("ConfigurationsReady", "NotOwned", &not_owned),
        Ok(c) if c.status.observed_generation != c.metadata.generation => m.mark_unknown(
            "ConfigurationsReady",
            "OutOfDate",
            "The Configuration is still working to reflect the latest desired specification.",
        ),
        Ok(c) => {
            st.latest_created_revision_name = c.status.latest_created_revision_name.clone();
            st.latest_ready_revision_name = c.status.latest_ready_revision_name.clone();
            match ready_of(&c.status.conditions) {
                (ConditionStatus::True, _, _) => m.mark_true("ConfigurationsReady"),
                (ConditionStatus::False, reason, message) => {
                    m.mark_false("ConfigurationsReady", &reason, &message)
                }
                (ConditionStatus::Unknown, reason, message) => {
                    m.mark_unknown("ConfigurationsReady", &reason, &message)
                }
            }
        }
    }
    match route {
        Err(not_owned) => m.mark_false("RoutesReady", "NotOwned", &not_owned),
        Ok(r) if r.status.observed_generation != r.metadata.generation => m.mark_unknown(
            "RoutesReady",
            "OutOfDate",
            "The Route is still working to reflect the latest desired specification.",
        ),
        Ok(r) => {
            st.url = r.status.url.clone();
            st.address = r.status.address.clone();
            st.traffic = r.status.traffic.clone();
            let migrated = traffic_migrated(r, &st.latest_ready_revision_name);
            match ready_of(&r.status.conditions) {
                (ConditionStatus::True, _, _) if !migrated => m.mark_unknown(
                    "RoutesReady",
                    "TrafficNotMigrated",
                    "Traffic is not yet migrated to the latest revision.",
                ),
                (ConditionStatus::True, _, _) => m.mark_true("RoutesReady"),
                (ConditionStatus::False, reason, message) => {
                    m.mark_false("RoutesReady", &reason, &message)
                }
                (ConditionStatus::Unknown, reason, message) => {
                    m.mark_unknown("RoutesReady", &reason, &message)
                }
            }
        }
    }
    st.conditions = conds;
    keep_transition_times(&svc.status.conditions, &mut st.conditions);
    st
}

/// Knative's `checkRoutesNotReady`: the route's status lists the spec's targets, with
/// `latestRevision` ones on the latest ready revision.
fn traffic_migrated(route: &Route, latest_ready: &str) -> bool {
    route.spec.traffic.len() == route.status.traffic.len()
        && route
            .spec
            .traffic
            .iter()
            .zip(&route.status.traffic)
            .all(|(want, got)| {
                let rev = if want.latest_revision == Some(true) || want.revision_name.is_empty() {
                    latest_ready
                } else {
                    want.revision_name.as_str()
                };
                got.revision_name == rev
                    && got.tag == want.tag
                    && got.percent.unwrap_or(0) == want.percent.unwrap_or(0)
            })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wisp_api::meta::Condition;
    use wisp_api::serving::TrafficTarget;
    use wisp_api::traffic::{ConfigurationState, RevisionState};

    const NOW: &str = "2026-11-24T12:00:00Z";

    fn cond<'a>(conds: &'a [Condition], t: &str) -> &'a Condition {
        get_condition(conds, t).unwrap_or_else(|| panic!("no {t} condition in {conds:?}"))
    }

    fn revision(name: &str, generation: i64, ready: ConditionStatus) -> Revision {
        let mut r = Revision::new("default", name);
        r.metadata.labels.insert(
            keys::CONFIGURATION_GENERATION_LABEL.into(),
            generation.to_string(),
        );
        r.status.conditions.push(Condition {
            reason: "X".into(),
            message: "boom".into(),
            ..Condition::new(READY, ready)
        });
        r
    }

    #[test]
    fn revisions_stay_unknown_without_a_data_plane() {
        let mut r = Revision::new("default", "hello-00001");
        r.metadata.generation = 1;
        r.spec.containers.push(Default::default());
        let st = revision_status(&r, None, NOW);
        assert_eq!(cond(&st.conditions, READY).status, ConditionStatus::Unknown);
        let ra = cond(&st.conditions, "ResourcesAvailable");
        assert_eq!(
            (ra.status, ra.reason.as_str()),
            (ConditionStatus::Unknown, NO_DATA_PLANE_REASON)
        );
        assert_eq!(st.observed_generation, 1);
        assert_eq!(st.container_statuses.len(), 1);
    }

    fn observation(ch: Observed, ra: Observed, ready: i32) -> RevisionObservation {
        RevisionObservation {
            desired_replicas: 1,
            actual_replicas: ready,
            resources_available: ra,
            container_healthy: ch,
            active: Observed::True,
            image_digests: Vec::new(),
        }
    }

    #[test]
    fn revisions_follow_what_the_data_plane_observes() {
        let mut r = Revision::new("default", "hello-00001");
        r.spec.containers.push(Default::default());
        let o = observation(Observed::True, Observed::True, 1);
        r.status = revision_status(&r, Some(&o), NOW);
        assert_eq!(
            cond(&r.status.conditions, READY).status,
            ConditionStatus::True
        );
        assert_eq!(
            cond(&r.status.conditions, "Active").status,
            ConditionStatus::True
        );
        assert_eq!(
            (r.status.actual_replicas, r.status.desired_replicas),
            (Some(1), Some(1))
        );

        // A crash while nothing is ready fails the revision with the exit reason, even when
        // resources were available before.
        let o = observation(
            Observed::failed("ExitCode3", "Container failed with: boom"),
            Observed::True,
            0,
        );
        r.status = revision_status(&r, Some(&o), NOW);
        let ready = cond(&r.status.conditions, READY);
        assert_eq!(
            (ready.status, ready.reason.as_str(), ready.message.as_str()),
            (
                ConditionStatus::False,
                "ExitCode3",
                "Container failed with: boom"
            )
        );

        // Healthy again.
        let o = observation(Observed::True, Observed::True, 1);
        r.status = revision_status(&r, Some(&o), NOW);
        assert_eq!(
            cond(&r.status.conditions, READY).status,
            ConditionStatus::True
        );
    }

    #[test]
    fn configuration_tracks_latest_created_and_ready() {
        let mut c = Configuration::new("default", "hello");
        c.metadata.generation = 2;
        let r1 = revision("hello-00001", 1, ConditionStatus::True);
        let r2 = revision("hello-00002", 2, ConditionStatus::Unknown);
        let st = configuration_status(&c, Some(&r2), &[&r1, &r2], NOW);
        assert_eq!(st.latest_created_revision_name, "hello-00002");
        assert_eq!(st.latest_ready_revision_name, "hello-00001");
        assert_eq!(cond(&st.conditions, READY).status, ConditionStatus::Unknown);
        assert_eq!(st.observed_generation, 2);

        let r2 = revision("hello-00002", 2, ConditionStatus::True);
        let st = configuration_status(&c, Some(&r2), &[&r1, &r2], NOW);
        assert_eq!(st.latest_ready_revision_name, "hello-00002");
        assert_eq!(cond(&st.conditions, READY).status, ConditionStatus::True);

        let r2 = revision("hello-00002", 2, ConditionStatus::False);
        let st = configuration_status(&c, Some(&r2), &[&r1, &r2], NOW);
        let ready = cond(&st.conditions, READY);
        assert_eq!(
            (ready.status, ready.reason.as_str()),
            (ConditionStatus::False, "RevisionFailed")
        );
        assert!(ready.message.contains("boom"), "{}", ready.message);
    }

    fn route(traffic: Vec<TrafficTarget>) -> Route {
        let mut r = Route::new("default", "hello");
        r.metadata.generation = 1;
        r.metadata
            .labels
            .insert(keys::SERVICE_LABEL.into(), "hello".into());
        r.spec.traffic = traffic;
        r
    }

    #[test]
    fn route_waits_for_a_ready_revision_and_says_why() {
        let r = route(vec![TrafficTarget {
            configuration_name: "hello".into(),
            latest_revision: Some(true),
            percent: Some(100),
            ..Default::default()
        }]);
        let mut lookup = Lookup::default();
        lookup
            .configurations
            .insert("hello".into(), ConfigurationState::default());
        let st = route_status(&r, &lookup, "example.com", NOW);
        assert_eq!(st.url.as_deref(), Some("http://hello.default.example.com"));
        assert_eq!(
            st.address.unwrap().url.as_deref(),
            Some("http://hello.default.svc.cluster.local")
        );
        assert_eq!(
            cond(&st.conditions, "AllTrafficAssigned").status,
            ConditionStatus::Unknown
        );
        assert_eq!(cond(&st.conditions, READY).status, ConditionStatus::Unknown);
        assert!(st.traffic.is_empty());

        let missing = route(vec![TrafficTarget {
            revision_name: "hello-00009".into(),
            latest_revision: Some(false),
            percent: Some(100),
            ..Default::default()
        }]);
        let st = route_status(&missing, &lookup, "example.com", NOW);
        let c = cond(&st.conditions, "AllTrafficAssigned");
        assert_eq!(
            (c.status, c.reason.as_str()),
            (ConditionStatus::False, "RevisionMissing")
        );
        assert_eq!(cond(&st.conditions, READY).status, ConditionStatus::False);
    }

    #[test]
    fn route_resolves_tags_when_revisions_are_ready() {
        let r = route(vec![
            TrafficTarget {
                revision_name: "hello-00001".into(),
                latest_revision: Some(false),
                percent: Some(50),
                tag: "current".into(),
                ..Default::default()
            },
            TrafficTarget {
                revision_name: "hello-00002".into(),
                latest_revision: Some(false),
                percent: Some(50),
                ..Default::default()
            },
        ]);
        let mut lookup = Lookup::default();
        lookup
            .configurations
            .insert("hello".into(), ConfigurationState::default());
        for n in ["hello-00001", "hello-00002"] {
            lookup.revisions.insert(
                n.into(),
                RevisionState {
                    ready: ConditionStatus::True,
                    configuration: Some("hello".into()),
                    service: Some("hello".into()),
                },
            );
        }
        let st = route_status(&r, &lookup, "localhost", NOW);
        assert_eq!(
            cond(&st.conditions, "AllTrafficAssigned").status,
            ConditionStatus::True
        );
        assert_eq!(st.traffic.len(), 2);
        assert_eq!(
            st.traffic[0].url.as_deref(),
            Some("http://current-hello.default.localhost")
        );
        // No gateway yet: the route is not served, and says so.
        let ingress = cond(&st.conditions, "IngressReady");
        assert_eq!(ingress.status, ConditionStatus::Unknown);
        assert_eq!(cond(&st.conditions, READY).status, ConditionStatus::Unknown);
    }

    #[test]
    fn service_mirrors_children() {
        let mut s = Service::new("default", "hello");
        s.metadata.generation = 3;
        let mut c = Configuration::new("default", "hello");
        c.metadata.generation = 1;
        let mut r = Route::new("default", "hello");
        r.metadata.generation = 1;
        // Children not reconciled yet.
        let st = service_status(&s, Ok(&c), Ok(&r), NOW);
        assert_eq!(st.observed_generation, 3);
        assert_eq!(
            cond(&st.conditions, "ConfigurationsReady").reason,
            "OutOfDate"
        );
        assert_eq!(cond(&st.conditions, "RoutesReady").reason, "OutOfDate");
        // Reconciled children are mirrored.
        c.status.observed_generation = 1;
        c.status.latest_created_revision_name = "hello-00001".into();
        c.status
            .conditions
            .push(Condition::new(READY, ConditionStatus::True));
        r.status.observed_generation = 1;
        r.status.url = Some("http://hello.default.localhost".into());
        r.status
            .conditions
            .push(Condition::new(READY, ConditionStatus::True));
        r.spec.traffic = vec![TrafficTarget {
            latest_revision: Some(true),
            percent: Some(100),
            configuration_name: "hello".into(),
            ..Default::default()
        }];
        c.status.latest_ready_revision_name = "hello-00001".into();
        r.status.traffic = vec![TrafficTarget {
            revision_name: "hello-00001".into(),
            latest_revision: Some(true),
            percent: Some(100),
            ..Default::default()
        }];
        let st = service_status(&s, Ok(&c), Ok(&r), NOW);
        assert_eq!(st.latest_created_revision_name, "hello-00001");
        assert_eq!(st.url.as_deref(), Some("http://hello.default.localhost"));
        assert_eq!(cond(&st.conditions, READY).status, ConditionStatus::True);
        // Traffic still on an older revision: not migrated.
        c.status.latest_ready_revision_name = "hello-00002".into();
        let st = service_status(&s, Ok(&c), Ok(&r), NOW);
        assert_eq!(
            cond(&st.conditions, "RoutesReady").reason,
            "TrafficNotMigrated"
        );
        // Someone else's configuration.
        let st = service_status(&s, Err("not ours".into()), Ok(&r), NOW);
        let cr = cond(&st.conditions, "ConfigurationsReady");
        assert_eq!(
            (cr.status, cr.reason.as_str()),
            (ConditionStatus::False, "NotOwned")
        );
        assert_eq!(cond(&st.conditions, READY).status, ConditionStatus::False);
    }
}

#[cfg(test)]
mod steady_state {
    //! A recomputed status of an unchanged world must equal the stored one, or every restart
    //! rewrites every object (seen in the control-plane benchmark before this was kept).
    use super::*;
    use wisp_api::serving::TrafficTarget;
    use wisp_api::traffic::ConfigurationState;

    const T1: &str = "2026-11-24T12:00:00Z";
    const T2: &str = "2026-11-24T13:00:00Z";

    #[test]
    fn recomputing_later_changes_nothing() {
        let mut rev = Revision::new("default", "hello-00001");
        rev.spec.containers.push(Default::default());
        rev.status = revision_status(&rev, None, T1);
        assert_eq!(revision_status(&rev, None, T2), rev.status);

        let mut route = Route::new("default", "hello");
        route.spec.traffic = vec![TrafficTarget {
            configuration_name: "hello".into(),
            latest_revision: Some(true),
            percent: Some(100),
            ..Default::default()
        }];
        let mut lookup = Lookup::default();
        lookup
            .configurations
            .insert("hello".into(), ConfigurationState::default());
        route.status = route_status(&route, &lookup, "localhost", T1);
        assert_eq!(route_status(&route, &lookup, "localhost", T2), route.status);

        let mut cfg = Configuration::new("default", "hello");
        cfg.status = configuration_status(&cfg, Some(&rev), &[&rev], T1);
        assert_eq!(
            configuration_status(&cfg, Some(&rev), &[&rev], T2),
            cfg.status
        );

        let mut svc = Service::new("default", "hello");
        svc.status = service_status(&svc, Ok(&cfg), Ok(&route), T1);
        assert_eq!(service_status(&svc, Ok(&cfg), Ok(&route), T2), svc.status);
    }
}
