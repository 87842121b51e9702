//! `sources.knative.dev/v1`: PingSource, ApiServerSource, ContainerSource and SinkBinding.
//!
//! Shapes follow knative/eventing `pkg/apis/sources/v1/*_types.go`. Every source inlines
//! knative.dev/pkg `duckv1.SourceSpec` (`sink`, `ceOverrides`) into its spec and
//! `duckv1.SourceStatus` into its status; they are repeated here field by field.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::broker::SubscriptionsApiFilter;
use super::duck::{
    AuthStatus, CloudEventAttributes, CloudEventOverrides, Destination, SourceStatus,
};
use crate::core::PodTemplateSpec;
use crate::meta::{Condition, LabelSelector, ObjectMeta, is_zero_i64};

/// `apiVersion` of the kinds in this module.
pub const API_VERSION: &str = "sources.knative.dev/v1";
/// The API group.
pub const GROUP: &str = "sources.knative.dev";

/// ApiServerSource `mode`: events carry a reference to the object.
pub const MODE_REFERENCE: &str = "Reference";
/// ApiServerSource `mode`: events carry the whole object.
pub const MODE_RESOURCE: &str = "Resource";

// -------------------------------------------------------------- PingSource

/// `kind: PingSource`: sends a fixed event on a cron schedule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PingSource {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: PingSourceSpec,
    #[serde(default, skip_serializing_if = "SourceStatus::is_empty")]
    pub status: SourceStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PingSourceSpec {
    #[serde(default)]
    pub sink: Destination,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ce_overrides: Option<CloudEventOverrides>,
    /// Cron, 5 fields (6 with seconds) or a descriptor; `CRON_TZ=` / `TZ=` prefix allowed.
    /// Defaults to `* * * * *`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub schedule: String,
    /// An IANA time zone name, e.g. `Europe/Paris`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub timezone: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub content_type: String,
    /// Event data as text; excludes `dataBase64`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub data: String,
    /// Event data, base64-encoded; excludes `data`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub data_base64: String,
}

// --------------------------------------------------------- ApiServerSource

/// `kind: ApiServerSource`: turns watch events of Kubernetes objects into CloudEvents.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiServerSource {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ApiServerSourceSpec,
    #[serde(default, skip_serializing_if = "ApiServerSourceStatus::is_empty")]
    pub status: ApiServerSourceStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiServerSourceSpec {
    #[serde(default)]
    pub sink: Destination,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ce_overrides: Option<CloudEventOverrides>,
    /// What to watch; at least one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ApiVersionKindSelector>,
    /// Only objects controlled by an owner of this kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<ApiVersionKind>,
    /// `Reference` (default) or `Resource`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mode: String,
    /// Defaults to `default`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account_name: String,
    /// Namespaces to watch besides the source's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Knative feature `new-apiserversource-filters` (off by default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<SubscriptionsApiFilter>,
}

/// `resources[]`: a kind to watch, optionally narrowed by labels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiVersionKindSelector {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// `owner`: an apiVersion and a kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiVersionKind {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
}

/// SourceStatus + the namespaces being watched, inlined.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiServerSourceStatus {
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub observed_generation: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ce_attributes: Vec<CloudEventAttributes>,
    #[serde(
        default,
        rename = "sinkCACerts",
        skip_serializing_if = "Option::is_none"
    )]
    pub sink_ca_certs: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink_audience: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
}

impl ApiServerSourceStatus {
    pub fn is_empty(&self) -> bool {
        *self == ApiServerSourceStatus::default()
    }
}

// --------------------------------------------------------- ContainerSource

/// `kind: ContainerSource`: runs a container that sends events to `K_SINK`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerSource {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ContainerSourceSpec,
    #[serde(default, skip_serializing_if = "SourceStatus::is_empty")]
    pub status: SourceStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerSourceSpec {
    #[serde(default)]
    pub sink: Destination,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ce_overrides: Option<CloudEventOverrides>,
    /// Always written (Go: no `omitempty`).
    #[serde(default)]
    pub template: PodTemplateSpec,
}

// ------------------------------------------------------------- SinkBinding

/// `kind: SinkBinding`: injects `K_SINK` (and `K_CE_OVERRIDES`) into the subject's pods.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SinkBinding {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: SinkBindingSpec,
    #[serde(default, skip_serializing_if = "SinkBindingStatus::is_empty")]
    pub status: SinkBindingStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SinkBindingSpec {
    #[serde(default)]
    pub sink: Destination,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ce_overrides: Option<CloudEventOverrides>,
    /// The workload(s) to bind. Always written (Go: no `omitempty`).
    #[serde(default)]
    pub subject: BindingSubject,
}

/// `spec.subject` (knative.dev/pkg `tracker.Reference`): one object by name, or every object
/// of a kind matching a selector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BindingSubject {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Defaults to the binding's namespace, and must equal it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// SourceStatus + the OIDC token secret, inlined.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SinkBindingStatus {
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub observed_generation: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ce_attributes: Vec<CloudEventAttributes>,
    #[serde(
        default,
        rename = "sinkCACerts",
        skip_serializing_if = "Option::is_none"
    )]
    pub sink_ca_certs: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink_audience: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc_token_secret_name: Option<String>,
}

impl SinkBindingStatus {
    pub fn is_empty(&self) -> bool {
        *self == SinkBindingStatus::default()
    }
}

typed!(PingSource, "PingSource");
typed!(ApiServerSource, "ApiServerSource");
typed!(ContainerSource, "ContainerSource");
typed!(SinkBinding, "SinkBinding");
