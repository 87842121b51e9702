//! Kubernetes REST paths, parsed once into a value the handlers match on.
//!
//! The API surface is not a fixed route table: it is every served resource under its group and
//! version, namespaced or not, with optional name and subresource. Parsing the path by hand into
//! [`Target`] keeps that logic pure and testable, instead of spread over dozens of router
//! patterns.

/// What a request path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/{group}`
    Group { group: String },
    /// `/api/v1` or `/apis/{group}/{version}`
    ResourceList { group: String, version: String },
    /// A collection or an object.
    Resource(ResourcePath),
}

/// `/apis/{group}/{version}[/namespaces/{ns}]/{plural}[/{name}[/{subresource}]]`
/// (core resources under `/api/v1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub plural: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Parses a request path; `None` when it is not part of the Kubernetes API.
pub fn parse(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    if segs.iter().any(|s| s.is_empty()) {
        return None;
    }
    let (group, version, rest) = match segs.as_slice() {
        ["api"] => return Some(Target::CoreVersions),
        ["apis"] => return Some(Target::Groups),
        ["apis", group] => {
            return Some(Target::Group {
                group: group.to_string(),
            });
        }
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let (group, version) = (group.to_string(), version.to_string());
    let resource =
        |namespace: Option<&str>, plural: &str, name: Option<&&str>, sub: Option<&&str>| {
            Some(Target::Resource(ResourcePath {
                group: group.clone(),
                version: version.clone(),
                namespace: namespace.map(str::to_string),
                plural: plural.to_string(),
                name: name.map(|s| s.to_string()),
                subresource: sub.map(|s| s.to_string()),
            }))
        };
    match rest {
        [] => Some(Target::ResourceList { group, version }),
        // `/api/v1/namespaces/{ns}` is the Namespace object itself, and
        // `/api/v1/namespaces/{ns}/status` its status; anything deeper is a namespaced resource.
        ["namespaces", ns, plural, tail @ ..] if !(group.is_empty() && *plural == "status") => {
            match tail {
                [] => resource(Some(ns), plural, None, None),
                [name] => resource(Some(ns), plural, Some(name), None),
                [name, sub] => resource(Some(ns), plural, Some(name), Some(sub)),
                _ => None,
            }
        }
        [plural] => resource(None, plural, None, None),
        [plural, name] => resource(None, plural, Some(name), None),
        [plural, name, sub] => resource(None, plural, Some(name), Some(sub)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(
        group: &str,
        ns: Option<&str>,
        plural: &str,
        name: Option<&str>,
        sub: Option<&str>,
    ) -> Option<Target> {
        Some(Target::Resource(ResourcePath {
            group: group.into(),
            version: "v1".into(),
            namespace: ns.map(Into::into),
            plural: plural.into(),
            name: name.map(Into::into),
            subresource: sub.map(Into::into),
        }))
    }

    #[test]
    fn parses_kubernetes_paths() {
        let g = "serving.knative.dev";
        let cases = [
            ("/api", Some(Target::CoreVersions)),
            ("/apis", Some(Target::Groups)),
            ("/apis/", Some(Target::Groups)),
            (
                "/apis/serving.knative.dev",
                Some(Target::Group { group: g.into() }),
            ),
            (
                "/apis/serving.knative.dev/v1",
                Some(Target::ResourceList {
                    group: g.into(),
                    version: "v1".into(),
                }),
            ),
            (
                "/api/v1",
                Some(Target::ResourceList {
                    group: "".into(),
                    version: "v1".into(),
                }),
            ),
            (
                "/apis/serving.knative.dev/v1/services",
                res(g, None, "services", None, None),
            ),
            (
                "/apis/serving.knative.dev/v1/namespaces/default/services",
                res(g, Some("default"), "services", None, None),
            ),
            (
                "/apis/serving.knative.dev/v1/namespaces/default/services/hello",
                res(g, Some("default"), "services", Some("hello"), None),
            ),
            (
                "/apis/serving.knative.dev/v1/namespaces/default/services/hello/status",
                res(
                    g,
                    Some("default"),
                    "services",
                    Some("hello"),
                    Some("status"),
                ),
            ),
            (
                "/api/v1/namespaces",
                res("", None, "namespaces", None, None),
            ),
            (
                "/api/v1/namespaces/default",
                res("", None, "namespaces", Some("default"), None),
            ),
            (
                "/api/v1/namespaces/default/status",
                res("", None, "namespaces", Some("default"), Some("status")),
            ),
            (
                "/api/v1/namespaces/default/events",
                res("", Some("default"), "events", None, None),
            ),
            ("/healthz", None),
            ("/apis//v1", None),
            ("/apis/g/v1/namespaces/a/b/c/d/e", None),
        ];
        for (path, want) in cases {
            assert_eq!(parse(path), want, "{path}");
        }
    }
}
