//! What the daemon tells the gateway: revisions, their settings, and which host goes where.
//!
//! These are plain values, built by the daemon from Route and Revision objects; the gateway
//! never reads the store. Host names are normalised once, here, when the table is built
//! ([`normalize_host`]), so the request path can compare them without allocating.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

/// A revision, by namespace and name (`default/hello-00001`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RevisionKey {
    pub namespace: String,
    pub name: String,
}

impl RevisionKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        RevisionKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for RevisionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The data-plane settings of a revision, from its spec (Knative's defaults in [`Default`]).
/// A zero duration means "no limit", like an absent one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevisionConfig {
    /// `containerConcurrency`: at most this many requests in flight per replica; 0 = no limit.
    pub container_concurrency: u32,
    /// `timeoutSeconds`: the response must start within this time of the request's arrival
    /// (time held while scaling from zero included). As in Knative's queue-proxy, a response
    /// that has started is not cut by it.
    pub timeout: Duration,
    /// `responseStartTimeoutSeconds`: the response must start within this time.
    pub response_start_timeout: Option<Duration>,
    /// `idleTimeoutSeconds`: at most this long without a byte from the replica, before and
    /// during the response.
    pub idle_timeout: Option<Duration>,
    /// The container port is named `h2c`: talk HTTP/2 (prior knowledge) to the replicas.
    pub h2c: bool,
}

impl Default for RevisionConfig {
    fn default() -> Self {
        RevisionConfig {
            container_concurrency: 0,
            timeout: Duration::from_secs(300),
            response_start_timeout: None,
            idle_timeout: None,
            h2c: false,
        }
    }
}

/// Where one host's requests go: a Route's traffic targets (for its `status.url` host) or a
/// tagged target (for the tag's own host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoute {
    /// Namespace of the Route.
    pub namespace: String,
    /// Name of the Route (for messages and logs).
    pub route: String,
    /// Revisions and their percent. Percents are weights: they normally sum to 100; targets at
    /// 0 get nothing; if all are 0 the targets share equally.
    pub targets: Vec<(RevisionKey, u32)>,
}

/// A snapshot of every routed host. Build it whole and hand it to
/// [`Gateway::set_routes`](crate::Gateway::set_routes), which swaps it in atomically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutingTable {
    hosts: HashMap<String, HostRoute>,
}

impl RoutingTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the route for `host`, normalised with [`normalize_host`]
    /// (`Hello.Default.Example.com:8080` and `hello.default.example.com` are one host).
    pub fn insert(&mut self, host: &str, route: HostRoute) -> Option<HostRoute> {
        self.hosts.insert(normalize_host(host).into_owned(), route)
    }

    pub fn remove(&mut self, host: &str) -> Option<HostRoute> {
        self.hosts.remove(normalize_host(host).as_ref())
    }

    pub fn get(&self, host: &str) -> Option<&HostRoute> {
        self.hosts.get(normalize_host(host).as_ref())
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Hosts (normalised) and their routes, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &HostRoute)> {
        self.hosts.iter().map(|(h, r)| (h.as_str(), r))
    }
}

impl<'a> FromIterator<(&'a str, HostRoute)> for RoutingTable {
    fn from_iter<I: IntoIterator<Item = (&'a str, HostRoute)>>(iter: I) -> Self {
        let mut table = RoutingTable::new();
        for (host, route) in iter {
            table.insert(host, route);
        }
        table
    }
}

/// A `Host` (or `:authority`) value as the routing table keys it: the port and a trailing dot
/// removed, ASCII lowercased. Borrows when nothing needs changing (the usual case).
///
/// ```
/// # use wisp_gateway::normalize_host;
/// assert_eq!(normalize_host("Hello.Default.localhost:8080"), "hello.default.localhost");
/// assert_eq!(normalize_host("hello.default.localhost."), "hello.default.localhost");
/// assert_eq!(normalize_host("[::1]:8080"), "[::1]");
/// ```
pub fn normalize_host(host: &str) -> Cow<'_, str> {
    let host = host.trim();
    let without_port = if host.starts_with('[') {
        // IPv6 literal: the port, if any, follows the closing bracket.
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        match host.rfind(':') {
            Some(colon) if host[colon + 1..].bytes().all(|b| b.is_ascii_digit()) => &host[..colon],
            _ => host,
        }
    };
    let trimmed = without_port.strip_suffix('.').unwrap_or(without_port);
    if trimmed.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(trimmed.to_ascii_lowercase())
    } else {
        Cow::Borrowed(trimmed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_normalised_once() {
        assert!(matches!(normalize_host("a.b.c"), Cow::Borrowed("a.b.c")));
        assert_eq!(normalize_host("A.B.C:80"), "a.b.c");
        assert_eq!(normalize_host("a.b.c:"), "a.b.c");
        assert_eq!(normalize_host("127.0.0.1:8080"), "127.0.0.1");
        assert_eq!(normalize_host("[::1]"), "[::1]");
        assert_eq!(normalize_host(" x.y "), "x.y");
    }

    #[test]
    fn table_keys_by_normalised_host() {
        let route = HostRoute {
            namespace: "default".into(),
            route: "hello".into(),
            targets: vec![(RevisionKey::new("default", "hello-00001"), 100)],
        };
        let table: RoutingTable = [("Hello.Default.localhost:8080", route.clone())]
            .into_iter()
            .collect();
        assert_eq!(table.get("hello.default.localhost"), Some(&route));
        assert_eq!(table.get("HELLO.default.localhost:1"), Some(&route));
        assert_eq!(table.len(), 1);
        assert_eq!(
            RevisionKey::new("default", "hello-00001").to_string(),
            "default/hello-00001"
        );
    }
}
