//! The registry of resources wisp serves: what the API server's discovery documents list, how
//! `kubectl get ksvc` resolves a name, which printer columns a table shows, and the key each
//! kind is stored under.
//!
//! Why a static table: discovery, routing, tables and the CLI must agree, and a `const` slice
//! is the simplest thing they can all read. Printer columns are copied from Knative's CRDs
//! (`config/core/300-resources/*.yaml`) and from Kubernetes' built-in table printers. The
//! `NAME` column is implicit (always first) and not listed; Knative's CRDs declare no `AGE`
//! column, so none is listed for them.

/// One column of `kubectl get` output (a CRD's `additionalPrinterColumns` entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrinterColumn {
    pub name: &'static str,
    /// OpenAPI type: `string`, `integer`, `number`, `boolean` or `date`.
    pub type_: &'static str,
    /// A kubectl JSONPath, e.g. `.status.conditions[?(@.type=='Ready')].status`.
    pub json_path: &'static str,
    /// 0 = shown by default; >0 = only with `-o wide`.
    pub priority: i32,
}

/// A served resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceInfo {
    /// `""` for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub short_names: &'static [&'static str],
    pub namespaced: bool,
    /// Has a `/status` subresource.
    pub has_status: bool,
    pub verbs: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub printer_columns: &'static [PrinterColumn],
}

impl ResourceInfo {
    /// `serving.knative.dev/v1` or `v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// Every verb wisp serves for a resource.
pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

const KNATIVE_CATEGORIES: &[&str] = &["all", "knative", "serving"];

const READY: PrinterColumn = PrinterColumn {
    name: "Ready",
    type_: "string",
    json_path: ".status.conditions[?(@.type=='Ready')].status",
    priority: 0,
};
const REASON: PrinterColumn = PrinterColumn {
    name: "Reason",
    type_: "string",
    json_path: ".status.conditions[?(@.type=='Ready')].reason",
    priority: 0,
};
const URL: PrinterColumn = PrinterColumn {
    name: "URL",
    type_: "string",
    json_path: ".status.url",
    priority: 0,
};
const LATEST_CREATED: PrinterColumn = PrinterColumn {
    name: "LatestCreated",
    type_: "string",
    json_path: ".status.latestCreatedRevisionName",
    priority: 0,
};
const LATEST_READY: PrinterColumn = PrinterColumn {
    name: "LatestReady",
    type_: "string",
    json_path: ".status.latestReadyRevisionName",
    priority: 0,
};
const AGE: PrinterColumn = PrinterColumn {
    name: "Age",
    type_: "date",
    json_path: ".metadata.creationTimestamp",
    priority: 0,
};

pub const SERVICES: ResourceInfo = ResourceInfo {
    group: "serving.knative.dev",
    version: "v1",
    kind: "Service",
    plural: "services",
    singular: "service",
    short_names: &["kservice", "ksvc"],
    namespaced: true,
    has_status: true,
    verbs: ALL_VERBS,
    categories: KNATIVE_CATEGORIES,
    printer_columns: &[URL, LATEST_CREATED, LATEST_READY, READY, REASON],
};

pub const CONFIGURATIONS: ResourceInfo = ResourceInfo {
    group: "serving.knative.dev",
    version: "v1",
    kind: "Configuration",
    plural: "configurations",
    singular: "configuration",
    short_names: &["config", "cfg"],
    namespaced: true,
    has_status: true,
    verbs: ALL_VERBS,
    categories: KNATIVE_CATEGORIES,
    printer_columns: &[LATEST_CREATED, LATEST_READY, READY, REASON],
};

pub const REVISIONS: ResourceInfo = ResourceInfo {
    group: "serving.knative.dev",
    version: "v1",
    kind: "Revision",
    plural: "revisions",
    singular: "revision",
    short_names: &["rev"],
    namespaced: true,
    has_status: true,
    verbs: ALL_VERBS,
    categories: KNATIVE_CATEGORIES,
    printer_columns: &[
        PrinterColumn {
            name: "Config Name",
            type_: "string",
            json_path: r".metadata.labels['serving\.knative\.dev/configuration']",
            priority: 0,
        },
        PrinterColumn {
            name: "Generation",
            type_: "string",
            json_path: r".metadata.labels['serving\.knative\.dev/configurationGeneration']",
            priority: 0,
        },
        READY,
        REASON,
        PrinterColumn {
            name: "Actual Replicas",
            type_: "integer",
            json_path: ".status.actualReplicas",
            priority: 0,
        },
        PrinterColumn {
            name: "Desired Replicas",
            type_: "integer",
            json_path: ".status.desiredReplicas",
            priority: 0,
        },
    ],
};

pub const ROUTES: ResourceInfo = ResourceInfo {
    group: "serving.knative.dev",
    version: "v1",
    kind: "Route",
    plural: "routes",
    singular: "route",
    short_names: &["rt"],
    namespaced: true,
    has_status: true,
    verbs: ALL_VERBS,
    categories: KNATIVE_CATEGORIES,
    printer_columns: &[URL, READY, REASON],
};

pub const NAMESPACES: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Namespace",
    plural: "namespaces",
    singular: "namespace",
    short_names: &["ns"],
    namespaced: false,
    has_status: true,
    verbs: &[
        "create", "delete", "get", "list", "patch", "update", "watch",
    ],
    categories: &[],
    printer_columns: &[
        PrinterColumn {
            name: "Status",
            type_: "string",
            json_path: ".status.phase",
            priority: 0,
        },
        AGE,
    ],
};

pub const CONFIGMAPS: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "ConfigMap",
    plural: "configmaps",
    singular: "configmap",
    short_names: &["cm"],
    namespaced: true,
    has_status: false,
    verbs: ALL_VERBS,
    categories: &[],
    printer_columns: &[AGE],
};

pub const SECRETS: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Secret",
    plural: "secrets",
    singular: "secret",
    short_names: &[],
    namespaced: true,
    has_status: false,
    verbs: ALL_VERBS,
    categories: &[],
    printer_columns: &[
        PrinterColumn {
            name: "Type",
            type_: "string",
            json_path: ".type",
            priority: 0,
        },
        AGE,
    ],
};

pub const EVENTS: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Event",
    plural: "events",
    singular: "event",
    short_names: &["ev"],
    namespaced: true,
    has_status: false,
    verbs: ALL_VERBS,
    categories: &[],
    printer_columns: &[
        PrinterColumn {
            name: "Last Seen",
            type_: "date",
            json_path: ".lastTimestamp",
            priority: 0,
        },
        PrinterColumn {
            name: "Type",
            type_: "string",
            json_path: ".type",
            priority: 0,
        },
        PrinterColumn {
            name: "Reason",
            type_: "string",
            json_path: ".reason",
            priority: 0,
        },
        PrinterColumn {
            name: "Object",
            type_: "string",
            json_path: ".involvedObject.name",
            priority: 0,
        },
        PrinterColumn {
            name: "Message",
            type_: "string",
            json_path: ".message",
            priority: 0,
        },
    ],
};

/// Every served resource, Knative first (so that bare `services` resolves to Knative's).
pub const ALL: &[ResourceInfo] = &[
    SERVICES,
    CONFIGURATIONS,
    REVISIONS,
    ROUTES,
    NAMESPACES,
    CONFIGMAPS,
    SECRETS,
    EVENTS,
];

/// By group and plural, as in a REST path (`/apis/{group}/{version}/.../{plural}`).
pub fn find(group: &str, plural: &str) -> Option<&'static ResourceInfo> {
    ALL.iter().find(|r| r.group == group && r.plural == plural)
}

/// By group and kind, as in a manifest's `apiVersion` + `kind`.
pub fn by_kind(group: &str, kind: &str) -> Option<&'static ResourceInfo> {
    ALL.iter().find(|r| r.group == group && r.kind == kind)
}

/// By `apiVersion` (`serving.knative.dev/v1`, `v1`) and kind, checking the version too.
pub fn by_api_version_kind(api_version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    let (group, version) = match api_version.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    by_kind(group, kind).filter(|r| r.version == version)
}

/// Resolves what a user types after `kubectl get`, case-insensitively: a plural, singular,
/// short name or kind, optionally qualified by `.group` or `.version.group`
/// (`ksvc`, `services`, `Service`, `service.serving.knative.dev`, `services.v1.serving.knative.dev`).
/// Bare `services` means Knative's Service: wisp serves no core Services.
pub fn by_name_or_short(name: &str) -> Option<&'static ResourceInfo> {
    let lower = name.to_ascii_lowercase();
    let matches = |r: &ResourceInfo, n: &str| {
        r.plural == n
            || r.singular == n
            || r.kind.eq_ignore_ascii_case(n)
            || r.short_names.contains(&n)
    };
    if let Some(r) = ALL.iter().find(|r| matches(r, &lower)) {
        return Some(r);
    }
    // `resource.group` or `resource.version.group`.
    let (head, rest) = lower.split_once('.')?;
    ALL.iter().find(|r| {
        if r.group.is_empty() || !matches(r, head) {
            return false;
        }
        rest == r.group
            || rest
                .strip_prefix(r.version)
                .and_then(|g| g.strip_prefix('.'))
                .is_some_and(|g| g == r.group)
    })
}

/// The key prefix objects of this resource are stored under: `{plural}.{group}`, or
/// `{plural}` for the core group.
pub fn storage_key(info: &ResourceInfo) -> String {
    if info.group.is_empty() {
        info.plural.to_string()
    } else {
        format!("{}.{}", info.plural, info.group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_names_like_kubectl() {
        let table: &[(&str, Option<&str>)] = &[
            ("ksvc", Some("services.serving.knative.dev")),
            ("KSVC", Some("services.serving.knative.dev")),
            ("kservice", Some("services.serving.knative.dev")),
            ("services", Some("services.serving.knative.dev")),
            ("service", Some("services.serving.knative.dev")),
            ("Service", Some("services.serving.knative.dev")),
            (
                "service.serving.knative.dev",
                Some("services.serving.knative.dev"),
            ),
            (
                "services.v1.serving.knative.dev",
                Some("services.serving.knative.dev"),
            ),
            ("config", Some("configurations.serving.knative.dev")),
            ("cfg", Some("configurations.serving.knative.dev")),
            ("rev", Some("revisions.serving.knative.dev")),
            ("revisions", Some("revisions.serving.knative.dev")),
            ("rt", Some("routes.serving.knative.dev")),
            ("route", Some("routes.serving.knative.dev")),
            ("ns", Some("namespaces")),
            ("namespace", Some("namespaces")),
            ("cm", Some("configmaps")),
            ("configmap", Some("configmaps")),
            ("secret", Some("secrets")),
            ("ev", Some("events")),
            ("pods", None),
            ("service.apps", None),
            ("", None),
        ];
        for (input, want) in table {
            let got = by_name_or_short(input).map(storage_key);
            assert_eq!(got.as_deref(), *want, "{input}");
        }
    }

    #[test]
    fn lookups() {
        assert_eq!(find("serving.knative.dev", "routes"), Some(&ROUTES));
        assert_eq!(find("", "routes"), None);
        assert_eq!(by_kind("", "Namespace"), Some(&NAMESPACES));
        assert_eq!(
            by_api_version_kind("serving.knative.dev/v1", "Service"),
            Some(&SERVICES)
        );
        assert_eq!(
            by_api_version_kind("serving.knative.dev/v1alpha1", "Service"),
            None
        );
        assert_eq!(by_api_version_kind("v1", "Secret"), Some(&SECRETS));
        assert_eq!(SERVICES.api_version(), "serving.knative.dev/v1");
        assert_eq!(EVENTS.api_version(), "v1");
        assert_eq!(by_name_or_short("ns").map(|r| r.namespaced), Some(false));
    }

    #[test]
    fn unique_names() {
        let mut seen = std::collections::BTreeSet::new();
        for r in ALL {
            for n in r.short_names.iter().chain([&r.plural, &r.singular]) {
                assert!(seen.insert(*n), "duplicate name {n}");
            }
        }
    }
}
