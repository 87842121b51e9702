//! Which hosts a Route answers and where each sends requests: Knative's KIngress, computed
//! from the Route's status (its URL, address and resolved traffic), so the gateway serves
//! exactly what the status says.
//!
//! A Route answers on its URL's host (`hello.default.localhost`) with the weighted targets,
//! on its cluster-local names (`hello.default.svc.cluster.local`, `hello.default.svc`,
//! `hello.default`, as Kubernetes' DNS search paths would let a client say), and on each tag's
//! host (`tag-hello.default.localhost` and its cluster-local forms) with that tag's revision
//! alone. Cluster-local routes have no public URL; their `status.url` already is the
//! cluster-local one.

use wisp_api::serving::Route;
use wisp_gateway::{HostRoute, RevisionKey};

/// The host of an `http://host[:port]/...` URL, lowercased.
fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split(['/', '?', '#']).next()?;
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// `name.ns.svc.cluster.local` -> also `name.ns.svc` and `name.ns`.
fn with_short_forms(host: String) -> Vec<String> {
    match host.strip_suffix(".svc.cluster.local") {
        Some(short) => vec![format!("{short}.svc"), short.to_string(), host.clone()],
        None => vec![host],
    }
}

/// The hosts the route serves and their targets. Empty when the status has no URL yet.
pub fn host_routes(route: &Route) -> Vec<(String, HostRoute)> {
    let ns = &route.metadata.namespace;
    let st = &route.status;
    let entry = |targets: Vec<(RevisionKey, u32)>| HostRoute {
        namespace: ns.clone(),
        route: route.metadata.name.clone(),
        targets,
    };
    let mut out = Vec::new();
    let Some(url) = st.url.as_deref().and_then(host_of) else {
        return out;
    };
    let main: Vec<(RevisionKey, u32)> = st
        .traffic
        .iter()
        .filter(|t| !t.revision_name.is_empty() && t.percent.unwrap_or(0) > 0)
        .map(|t| {
            let pct = u32::try_from(t.percent.unwrap_or(0)).unwrap_or(0);
            (RevisionKey::new(ns, &t.revision_name), pct)
        })
        .collect();
    let local = st
        .address
        .as_ref()
        .and_then(|a| a.url.as_deref())
        .and_then(host_of);
    let mut hosts = vec![url.clone()];
    if let Some(local) = &local
        && *local != url
    {
        hosts.extend(with_short_forms(local.clone()));
    } else {
        hosts = with_short_forms(url.clone());
    }
    for h in hosts {
        out.push((h, entry(main.clone())));
    }
    // Tags: `{tag}-{route}` in front of the route's own host names.
    let name = &route.metadata.name;
    for t in st.traffic.iter().filter(|t| !t.tag.is_empty()) {
        let target = vec![(RevisionKey::new(ns, &t.revision_name), 100)];
        let mut tag_hosts: Vec<String> = t.url.as_deref().and_then(host_of).into_iter().collect();
        if let Some(local) = &local
            && let Some(rest) = local.strip_prefix(&format!("{name}."))
        {
            tag_hosts.extend(with_short_forms(format!("{}-{name}.{rest}", t.tag)));
        }
        tag_hosts.sort();
        tag_hosts.dedup();
        for h in tag_hosts {
            out.push((h, entry(target.clone())));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use wisp_api::serving::{Addressable, TrafficTarget};

    fn target(rev: &str, pct: i64, tag: &str, url: Option<&str>) -> TrafficTarget {
        TrafficTarget {
            revision_name: rev.into(),
            percent: Some(pct),
            tag: tag.into(),
            url: url.map(str::to_string),
            ..TrafficTarget::default()
        }
    }

    fn route() -> Route {
        let mut r = Route::new("default", "hello");
        r.status.url = Some("http://hello.default.localhost".into());
        r.status.address = Some(Addressable {
            url: Some("http://hello.default.svc.cluster.local".into()),
            ..Addressable::default()
        });
        r.status.traffic = vec![
            target("hello-00001", 80, "", None),
            target("hello-00002", 20, "", None),
            target(
                "hello-00002",
                0,
                "canary",
                Some("http://canary-hello.default.localhost"),
            ),
        ];
        r
    }

    fn find<'a>(routes: &'a [(String, HostRoute)], host: &str) -> &'a HostRoute {
        &routes
            .iter()
            .find(|(h, _)| h == host)
            .unwrap_or_else(|| panic!("no {host} in {routes:?}"))
            .1
    }

    #[test]
    fn main_host_splits_and_tags_pin() {
        let routes = host_routes(&route());
        let main = find(&routes, "hello.default.localhost");
        assert_eq!(
            main.targets,
            vec![
                (RevisionKey::new("default", "hello-00001"), 80),
                (RevisionKey::new("default", "hello-00002"), 20),
            ]
        );
        for h in [
            "hello.default.svc.cluster.local",
            "hello.default.svc",
            "hello.default",
        ] {
            assert_eq!(find(&routes, h).targets, main.targets);
        }
        for h in [
            "canary-hello.default.localhost",
            "canary-hello.default.svc.cluster.local",
            "canary-hello.default",
        ] {
            assert_eq!(
                find(&routes, h).targets,
                vec![(RevisionKey::new("default", "hello-00002"), 100)]
            );
        }
    }

    #[test]
    fn no_url_no_hosts_and_cluster_local_has_no_public_host() {
        let mut r = route();
        r.status.url = None;
        assert!(host_routes(&r).is_empty());

        let mut r = route();
        r.status.url = Some("http://hello.default.svc.cluster.local".into());
        let routes = host_routes(&r);
        assert!(routes.iter().all(|(h, _)| h != "hello.default.localhost"));
        find(&routes, "hello.default");
    }

    #[test]
    fn host_parsing() {
        assert_eq!(
            host_of("http://a.b.example.com:8080/x").as_deref(),
            Some("a.b.example.com:8080")
        );
        assert_eq!(host_of("http://"), None);
    }
}
