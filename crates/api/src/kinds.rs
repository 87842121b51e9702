//! The registry of resources wisp serves: what the API server's discovery documents list, how
//! `kubectl get ksvc` resolves a name, which printer columns a table shows, and the key each
//! kind is stored under.
//!
//! Why a static table: discovery, routing, tables and the CLI must agree, and a `const` slice
//! is the simplest thing they can all read. Printer columns, short names and categories are
//! copied from Knative's CRDs (knative/serving `config/core/300-resources/*.yaml`,
//! knative/eventing `config/core/resources/*.yaml` and
//! `config/channels/in-memory-channel/resources/in-memory-channel.yaml`) and from Kubernetes'
//! built-in table printers. The `NAME` column is implicit (always first) and not listed;
//! Serving's CRDs declare no `Age` column while Eventing's do, and each kind lists what its
//! CRD declares. JSONPaths use the bracket form for dotted keys
//! (`.metadata.annotations['eventing\.knative\.dev/broker\.class']`), which kubectl and
//! wisp's table printer both read.

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

// ---------------------------------------------------------------- Eventing

const EVENTING_CATEGORIES: &[&str] = &["all", "knative", "eventing"];
const MESSAGING_CATEGORIES: &[&str] = &["all", "knative", "messaging"];
const CHANNEL_CATEGORIES: &[&str] = &["all", "knative", "messaging", "channel"];
const FLOWS_CATEGORIES: &[&str] = &["all", "knative", "flows"];
const SOURCES_CATEGORIES: &[&str] = &["all", "knative", "sources"];
const BINDING_CATEGORIES: &[&str] = &["all", "knative", "sources", "bindings"];

const ADDRESS_URL: PrinterColumn = PrinterColumn {
    name: "URL",
    type_: "string",
    json_path: ".status.address.url",
    priority: 0,
};
const SINK: PrinterColumn = PrinterColumn {
    name: "Sink",
    type_: "string",
    json_path: ".status.sinkUri",
    priority: 0,
};

pub const BROKERS: ResourceInfo = ResourceInfo {
    group: "eventing.knative.dev",
    version: "v1",
    kind: "Broker",
    plural: "brokers",
    singular: "broker",
    short_names: &[],
    namespaced: true,
    has_status: true,
    verbs: ALL_VERBS,
    categories: EVENTING_CATEGORIES,
    printer_columns: &[
        ADDRESS_URL,
        AGE,
        READY,
        REASON,
        PrinterColumn {
            name: "Class",
            type_: "string",
            json_path: r".metadata.annotations['eventing\.knative\.dev/broker\.class']",
            priority: 1,
        },
    ],
};

pub const TRIGGERS: ResourceInfo = ResourceInfo {
    group: "eventing.knative.dev",
    version: "v1",
    kind: "Trigger",
    plural: "triggers",
    singular: "trigger",
    short_names: &[],
    namespaced: true,
    has_status: true,
    verbs: ALL_VERBS,
    categories: EVENTING_CATEGORIES,
    printer_columns: &[
        PrinterColumn {
            name: "Broker",
            type_: "string",
            json_path: ".spec.broker",
            priority: 0,
        },
        PrinterColumn {
            name: "Subscriber_URI",
            type_: "string",
            json_path: ".status.subscriberUri",
            priority: 0,
        },
        AGE,
        READY,
        REASON,
    ],
};

pub const CHANNELS: ResourceInfo = ResourceInfo {
    group: "messaging.knative.dev",
    version: "v1",
    kind: "Channel",
    plural: "channels",
    singular: "channel",
    short_names: &["ch"],
    namespaced: true,
    has_status: true,
    verbs: ALL_VERBS,
    categories: CHANNEL_CATEGORIES,
    printer_columns: &[ADDRESS_URL, AGE, READY, REASON],
};

pub const IN_MEMORY_CHANNELS: ResourceInfo = ResourceInfo {
    group: "messaging.knative.dev",
    version: "v1",
    kind: "InMemoryChannel",
    plural: "inmemorychannels",
    singular: "inmemorychannel",
    short_names: &["imc"],
    namespaced: true,
    has_status: true,
    verbs: ALL_VERBS,
    categories: CHANNEL_CATEGORIES,
    printer_columns: &[ADDRESS_URL, AGE, READY, REASON],
};

pub const SUBSCRIPTIONS: ResourceInfo = ResourceInfo {
    group: "messaging.knative.dev",
    version: "v1",
    kind: "Subscription",
    plural: "subscriptions",
    singular: "subscription",
    short_names: &["sub"],
    namespaced: true,
    has_status: true,
    verbs: ALL_VERBS,
    categories: MESSAGING_CATEGORIES,
    printer_columns: &[AGE, READY, REASON],
};

pub const SEQUENCES: ResourceInfo = ResourceInfo {
    group: "flows.knative.dev",
    version: "v1",
    kind: "Sequence",
    plural: "sequences",
    singular: "sequence",
    short_names: &[],
    namespaced: true,
    has_status: true,
    verbs: ALL_VERBS,
    categories: FLOWS_CATEGORIES,
    printer_columns: &[ADDRESS_URL, AGE, READY, REASON],
};

pub const PARALLELS: ResourceInfo = ResourceInfo {
    group: "flows.knative.dev",
    version: "v1",
    kind: "Parallel",
    plural: "parallels",
    singular: "parallel",
    short_names: &[],
    namespaced: true,
    has_status: true,
    verbs: ALL_VERBS,
    categories: FLOWS_CATEGORIES,
    printer_columns: &[ADDRESS_URL, AGE, READY, REASON],
};

pub const PING_SOURCES: ResourceInfo = ResourceInfo {
    group: "sources.knative.dev",
    version: "v1",
    kind: "PingSource",
    plural: "pingsources",
    singular: "pingsource",
    short_names: &[],
    namespaced: true,
    has_status: true,
    verbs: ALL_VERBS,
    categories: SOURCES_CATEGORIES,
    printer_columns: &[
        SINK,
        PrinterColumn {
            name: "Schedule",
            type_: "string",
            json_path: ".spec.schedule",
            priority: 0,
        },
        AGE,
        READY,
        REASON,
    ],
};

pub const API_SERVER_SOURCES: ResourceInfo = ResourceInfo {
    group: "sources.knative.dev",
    version: "v1",
    kind: "ApiServerSource",
    plural: "apiserversources",
    singular: "apiserversource",
    short_names: &[],
    namespaced: true,
    has_status: true,
    verbs: ALL_VERBS,
    categories: SOURCES_CATEGORIES,
    printer_columns: &[SINK, AGE, READY, REASON],
};

pub const CONTAINER_SOURCES: ResourceInfo = ResourceInfo {
    group: "sources.knative.dev",
    version: "v1",
    kind: "ContainerSource",
    plural: "containersources",
    singular: "containersource",
    short_names: &[],
    namespaced: true,
    has_status: true,
    verbs: ALL_VERBS,
    categories: SOURCES_CATEGORIES,
    printer_columns: &[SINK, AGE, READY, REASON],
};

pub const SINK_BINDINGS: ResourceInfo = ResourceInfo {
    group: "sources.knative.dev",
    version: "v1",
    kind: "SinkBinding",
    plural: "sinkbindings",
    singular: "sinkbinding",
    short_names: &[],
    namespaced: true,
    has_status: true,
    verbs: ALL_VERBS,
    categories: BINDING_CATEGORIES,
    printer_columns: &[SINK, AGE, READY, REASON],
};

// -------------------------------------------------------------------- Core

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
    BROKERS,
    TRIGGERS,
    CHANNELS,
    IN_MEMORY_CHANNELS,
    SUBSCRIPTIONS,
    SEQUENCES,
    PARALLELS,
    PING_SOURCES,
    API_SERVER_SOURCES,
    CONTAINER_SOURCES,
    SINK_BINDINGS,
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
            ("brokers", Some("brokers.eventing.knative.dev")),
            ("Broker", Some("brokers.eventing.knative.dev")),
            ("trigger", Some("triggers.eventing.knative.dev")),
            (
                "triggers.v1.eventing.knative.dev",
                Some("triggers.eventing.knative.dev"),
            ),
            ("ch", Some("channels.messaging.knative.dev")),
            ("channel", Some("channels.messaging.knative.dev")),
            ("imc", Some("inmemorychannels.messaging.knative.dev")),
            (
                "InMemoryChannel",
                Some("inmemorychannels.messaging.knative.dev"),
            ),
            ("sub", Some("subscriptions.messaging.knative.dev")),
            ("subscriptions", Some("subscriptions.messaging.knative.dev")),
            ("sequence", Some("sequences.flows.knative.dev")),
            ("parallels", Some("parallels.flows.knative.dev")),
            ("pingsource", Some("pingsources.sources.knative.dev")),
            (
                "pingsources.sources.knative.dev",
                Some("pingsources.sources.knative.dev"),
            ),
            (
                "apiserversources",
                Some("apiserversources.sources.knative.dev"),
            ),
            (
                "ContainerSource",
                Some("containersources.sources.knative.dev"),
            ),
            ("sinkbinding", Some("sinkbindings.sources.knative.dev")),
            ("broker.serving.knative.dev", None),
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
    fn eventing_kinds() {
        let eventing: Vec<&ResourceInfo> = ALL
            .iter()
            .filter(|r| r.group.ends_with(".knative.dev") && r.group != "serving.knative.dev")
            .collect();
        assert_eq!(eventing.len(), 11);
        for r in &eventing {
            assert!(r.namespaced && r.has_status, "{}", r.kind);
            assert!(r.categories.starts_with(&["all", "knative"]), "{}", r.kind);
            let names: Vec<&str> = r.printer_columns.iter().map(|c| c.name).collect();
            assert!(
                names.ends_with(&["Age", "Ready", "Reason"])
                    || names.ends_with(&["Age", "Ready", "Reason", "Class"]),
                "{}: {names:?}",
                r.kind
            );
        }
        assert_eq!(
            by_api_version_kind("eventing.knative.dev/v1", "Trigger"),
            Some(&TRIGGERS)
        );
        assert_eq!(
            by_api_version_kind("sources.knative.dev/v1beta2", "PingSource"),
            None
        );
        assert_eq!(find("flows.knative.dev", "sequences"), Some(&SEQUENCES));
        assert_eq!(
            storage_key(&IN_MEMORY_CHANNELS),
            "inmemorychannels.messaging.knative.dev"
        );
        assert_eq!(
            SINK_BINDINGS.categories,
            &["all", "knative", "sources", "bindings"]
        );
        assert_eq!(
            CHANNELS.categories,
            &["all", "knative", "messaging", "channel"]
        );
        let names: Vec<&str> = PING_SOURCES
            .printer_columns
            .iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["Sink", "Schedule", "Age", "Ready", "Reason"]);
        let names: Vec<&str> = TRIGGERS.printer_columns.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            ["Broker", "Subscriber_URI", "Age", "Ready", "Reason"]
        );
        assert_eq!(BROKERS.printer_columns.last().map(|c| c.priority), Some(1));
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
