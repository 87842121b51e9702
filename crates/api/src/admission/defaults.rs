//! Knative's defaulting (`pkg/apis/serving/v1/*_defaults.go`), applied before validation.

use std::collections::BTreeSet;

use super::config::Config;
use crate::core::{Container, Probe, TcpSocketAction};
use crate::naming;
use crate::serving::{RevisionSpec, TrafficTarget};

/// `RevisionSpec.SetDefaults`. `in_create` gates `enableServiceLinks` as in Knative.
pub(crate) fn revision_spec(rs: &mut RevisionSpec, cfg: &Config, in_create: bool) {
    let d = &cfg.defaults;
    if rs.timeout_seconds.is_none_or(|t| t == 0) {
        rs.timeout_seconds = Some(d.revision_timeout_seconds);
    }
    let timeout = rs.timeout_seconds.unwrap_or(d.revision_timeout_seconds);
    if rs.idle_timeout_seconds.is_none()
        && d.revision_idle_timeout_seconds != 0
        && d.revision_idle_timeout_seconds < timeout
    {
        rs.idle_timeout_seconds = Some(d.revision_idle_timeout_seconds);
    }
    if rs.response_start_timeout_seconds.is_none()
        && d.revision_response_start_timeout_seconds != 0
        && d.revision_response_start_timeout_seconds < timeout
    {
        rs.response_start_timeout_seconds = Some(d.revision_response_start_timeout_seconds);
    }
    if rs.container_concurrency.is_none() {
        rs.container_concurrency = Some(d.container_concurrency);
    }

    let mut names: BTreeSet<String> = rs
        .containers
        .iter()
        .chain(&rs.init_containers)
        .map(|c| c.name.clone())
        .collect();
    apply_default_container_names(&mut rs.containers, &mut names, &d.user_container_name);
    apply_default_container_names(&mut rs.init_containers, &mut names, &d.init_container_name);

    let single = rs.containers.len() == 1;
    let writable: BTreeSet<String> = rs
        .volumes
        .iter()
        .filter(|v| {
            v.empty_dir.is_some() || v.persistent_volume_claim.is_some() || v.ephemeral.is_some()
        })
        .map(|v| v.name.clone())
        .collect();
    for c in &mut rs.containers {
        if single || !c.ports.is_empty() {
            default_readiness_probe(c);
        }
        readiness_probe_defaults(c);
        grpc_probe_defaults(c);
        for vm in &mut c.volume_mounts {
            if !writable.contains(&vm.name) {
                vm.read_only = true;
            }
        }
    }
    if !rs.containers.is_empty() && rs.enable_service_links.is_none() && in_create {
        rs.enable_service_links = d.enable_service_links;
    }
}

/// Knative's `applyDefaultContainerNames`: one unnamed container gets `user-container`;
/// with several, unnamed ones get `user-container-0`, `user-container-1`, ... (skipping taken
/// names).
fn apply_default_container_names(
    containers: &mut [Container],
    names: &mut BTreeSet<String>,
    default_name: &str,
) {
    let mut next = 0;
    let many = containers.len() > 1;
    for c in containers.iter_mut() {
        if !c.name.is_empty() {
            continue;
        }
        let mut name = default_name.to_string();
        if many || names.contains(&name) {
            loop {
                name = naming::child_name(default_name, &format!("-{next}"));
                next += 1;
                if !names.contains(&name) {
                    break;
                }
            }
        }
        names.insert(name.clone());
        c.name = name;
    }
}

fn default_readiness_probe(c: &mut Container) {
    let p = c.readiness_probe.get_or_insert_with(Probe::default);
    if p.handlers().is_empty() {
        p.tcp_socket = Some(TcpSocketAction::default());
    }
}

fn readiness_probe_defaults(c: &mut Container) {
    let Some(p) = c.readiness_probe.as_mut() else {
        return;
    };
    if p.success_threshold == 0 {
        p.success_threshold = 1;
    }
    if p.period_seconds != 0 {
        if p.failure_threshold == 0 {
            p.failure_threshold = 3;
        }
        if p.timeout_seconds == 0 {
            p.timeout_seconds = 1;
        }
    }
}

fn grpc_probe_defaults(c: &mut Container) {
    for p in [
        &mut c.readiness_probe,
        &mut c.liveness_probe,
        &mut c.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        if let Some(g) = p.grpc.as_mut()
            && g.service.is_none()
        {
            g.service = Some(String::new());
        }
    }
}

/// `RouteSpec.SetDefaults`: inside a Service an empty traffic list means "all to latest";
/// every target gets `latestRevision` (true iff no revisionName) and `percent` (0).
pub(crate) fn traffic(traffic: &mut Vec<TrafficTarget>, in_service: bool) {
    if traffic.is_empty() && in_service {
        traffic.push(TrafficTarget {
            percent: Some(100),
            latest_revision: Some(true),
            ..TrafficTarget::default()
        });
    }
    for t in traffic.iter_mut() {
        if t.latest_revision.is_none() {
            t.latest_revision = Some(t.revision_name.is_empty());
        }
        if t.percent.is_none() {
            t.percent = Some(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{ContainerPort, GrpcAction, Volume, VolumeMount};

    fn spec(containers: Vec<Container>) -> RevisionSpec {
        RevisionSpec {
            containers,
            ..RevisionSpec::default()
        }
    }

    fn named(n: &str) -> Container {
        Container {
            name: n.into(),
            image: "x".into(),
            ..Container::default()
        }
    }

    #[test]
    fn timeouts_and_concurrency() {
        // (timeoutSeconds in, out, responseStart out)
        let table = [
            (None, Some(300), None),
            (Some(0), Some(300), None),
            (Some(100), Some(100), None),
            (Some(600), Some(600), Some(300)),
        ];
        for (tin, tout, rs_out) in table {
            let mut s = spec(vec![named("a")]);
            s.timeout_seconds = tin;
            revision_spec(&mut s, &Config::default(), true);
            assert_eq!(s.timeout_seconds, tout, "{tin:?}");
            assert_eq!(s.response_start_timeout_seconds, rs_out, "{tin:?}");
            assert_eq!(s.idle_timeout_seconds, None);
            assert_eq!(s.container_concurrency, Some(0));
            assert_eq!(s.enable_service_links, Some(false));
        }
        let mut s = spec(vec![named("a")]);
        s.container_concurrency = Some(10);
        revision_spec(&mut s, &Config::default(), false);
        assert_eq!(s.container_concurrency, Some(10));
        assert_eq!(s.enable_service_links, None, "only on create");
    }

    #[test]
    fn container_names() {
        let table: &[(&[&str], &[&str])] = &[
            (&[""], &["user-container"]),
            (&["app"], &["app"]),
            (&["", ""], &["user-container-0", "user-container-1"]),
            (
                &["user-container-0", ""],
                &["user-container-0", "user-container-1"],
            ),
            (&["", "side"], &["user-container-0", "side"]),
        ];
        for (input, want) in table {
            let mut s = spec(input.iter().map(|n| named(n)).collect());
            revision_spec(&mut s, &Config::default(), true);
            let got: Vec<&str> = s.containers.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(&got, want, "{input:?}");
        }
    }

    #[test]
    fn readiness_probe_defaulting() {
        // Single container: tcpSocket probe with successThreshold 1.
        let mut s = spec(vec![named("a")]);
        revision_spec(&mut s, &Config::default(), true);
        let p = s.containers[0].readiness_probe.clone().unwrap_or_default();
        assert_eq!(p.tcp_socket, Some(TcpSocketAction::default()));
        assert_eq!(p.success_threshold, 1);
        assert_eq!(p.failure_threshold, 0);

        // periodSeconds set: failureThreshold 3, timeoutSeconds 1.
        let mut c = named("a");
        c.readiness_probe = Some(Probe {
            period_seconds: 5,
            ..Probe::default()
        });
        let mut s = spec(vec![c]);
        revision_spec(&mut s, &Config::default(), true);
        let p = s.containers[0].readiness_probe.clone().unwrap_or_default();
        assert_eq!((p.failure_threshold, p.timeout_seconds), (3, 1));

        // Multi-container: only the one with a port gets the default probe.
        let mut serving = named("app");
        serving.ports.push(ContainerPort {
            container_port: 8080,
            ..ContainerPort::default()
        });
        let mut s = spec(vec![serving, named("side")]);
        revision_spec(&mut s, &Config::default(), true);
        assert!(s.containers[0].readiness_probe.is_some());
        assert!(s.containers[1].readiness_probe.is_none());

        // gRPC probe gets service "".
        let mut c = named("a");
        c.liveness_probe = Some(Probe {
            grpc: Some(GrpcAction {
                port: 9000,
                service: None,
            }),
            ..Probe::default()
        });
        let mut s = spec(vec![c]);
        revision_spec(&mut s, &Config::default(), true);
        let g = s.containers[0].liveness_probe.clone().and_then(|p| p.grpc);
        assert_eq!(g.and_then(|g| g.service), Some(String::new()));
    }

    #[test]
    fn mounts_of_read_only_volumes_become_read_only() {
        let mut c = named("a");
        c.volume_mounts = vec![
            VolumeMount {
                name: "cfg".into(),
                mount_path: "/etc/cfg".into(),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "scratch".into(),
                mount_path: "/scratch".into(),
                ..VolumeMount::default()
            },
        ];
        let mut s = spec(vec![c]);
        s.volumes = vec![
            Volume {
                name: "cfg".into(),
                config_map: Some(Default::default()),
                ..Volume::default()
            },
            Volume {
                name: "scratch".into(),
                empty_dir: Some(Default::default()),
                ..Volume::default()
            },
        ];
        revision_spec(&mut s, &Config::default(), true);
        assert!(s.containers[0].volume_mounts[0].read_only);
        assert!(!s.containers[0].volume_mounts[1].read_only);
    }

    #[test]
    fn traffic_defaults() {
        let mut t = Vec::new();
        traffic(&mut t, true);
        assert_eq!(
            t,
            vec![TrafficTarget {
                latest_revision: Some(true),
                percent: Some(100),
                ..TrafficTarget::default()
            }]
        );
        let mut t = Vec::new();
        traffic(&mut t, false);
        assert!(t.is_empty());
        let mut t = vec![
            TrafficTarget {
                revision_name: "a-1".into(),
                ..TrafficTarget::default()
            },
            TrafficTarget {
                percent: Some(10),
                ..TrafficTarget::default()
            },
        ];
        traffic(&mut t, true);
        assert_eq!(t[0].latest_revision, Some(false));
        assert_eq!(t[0].percent, Some(0));
        assert_eq!(t[1].latest_revision, Some(true));
        assert_eq!(t[1].percent, Some(10));
    }
}
