//! `eventing.knative.dev/v1`: Broker and Trigger.
//!
//! Shapes follow knative/eventing `pkg/apis/eventing/v1/broker_types.go` and
//! `trigger_types.go`; the inlined `duckv1.Status`, `AddressStatus` and `DeliveryStatus` are
//! spelled out field by field (see the module docs of `eventing`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::duck::{
    Addressable, AppliedEventPolicyRef, AuthStatus, DeliverySpec, Destination, KReference,
};
use crate::meta::{Condition, ObjectMeta, is_zero_i64};

/// `apiVersion` of Broker and Trigger.
pub const API_VERSION: &str = "eventing.knative.dev/v1";
/// The API group.
pub const GROUP: &str = "eventing.knative.dev";

/// `kind: Broker`: an addressable event mesh that triggers subscribe to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Broker {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: BrokerSpec,
    #[serde(default, skip_serializing_if = "BrokerStatus::is_empty")]
    pub status: BrokerStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BrokerSpec {
    /// Implementation-specific configuration (Knative: a ConfigMap for the channel-based broker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<KReference>,
    /// Default delivery for every trigger of this broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
}

/// duckv1.Status + AddressStatus + DeliveryStatus + AppliedEventPoliciesStatus, inlined.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BrokerStatus {
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub observed_generation: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Addressable>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Addressable>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink_uri: Option<String>,
    #[serde(
        default,
        rename = "deadLetterSinkCACerts",
        skip_serializing_if = "Option::is_none"
    )]
    pub dead_letter_sink_ca_certs: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink_audience: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<AppliedEventPolicyRef>,
}

impl BrokerStatus {
    pub fn is_empty(&self) -> bool {
        *self == BrokerStatus::default()
    }
}

/// `kind: Trigger`: a filtered subscription to a broker.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Trigger {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: TriggerSpec,
    #[serde(default, skip_serializing_if = "TriggerStatus::is_empty")]
    pub status: TriggerStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TriggerSpec {
    /// The broker's name, in the trigger's namespace. Immutable.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub broker: String,
    /// Knative's cross-namespace form (feature `cross-namespace-event-links`, off): refused
    /// with a namespace; without one it names a broker like `broker` does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_ref: Option<KReference>,
    /// Exact-match attributes (the original filter). Knative's webhook defaults it to `{}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<TriggerFilter>,
    /// The Subscriptions API filters; when non-empty, `filter` is ignored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<SubscriptionsApiFilter>,
    /// Always written (Go: no `omitempty`).
    #[serde(default)]
    pub subscriber: Destination,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
}

/// `spec.filter`: every key must be present on the event with exactly this value; `""`
/// matches any value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TriggerFilter {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

/// One element of a Trigger's `spec.filters` (knative/eventing `SubscriptionsAPIFilter`):
/// exactly one dialect is set. A list of them means "all must match".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionsApiFilter {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub all: Vec<SubscriptionsApiFilter>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub any: Vec<SubscriptionsApiFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not: Option<Box<SubscriptionsApiFilter>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exact: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub prefix: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub suffix: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cesql: String,
}

impl SubscriptionsApiFilter {
    /// The names of the dialects set on this element, in Knative's order.
    pub fn dialects(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if !self.exact.is_empty() {
            out.push("exact");
        }
        if !self.prefix.is_empty() {
            out.push("prefix");
        }
        if !self.suffix.is_empty() {
            out.push("suffix");
        }
        if !self.all.is_empty() {
            out.push("all");
        }
        if !self.any.is_empty() {
            out.push("any");
        }
        if self.not.is_some() {
            out.push("not");
        }
        if !self.cesql.is_empty() {
            out.push("cesql");
        }
        out
    }
}

/// duckv1.Status + subscriber + DeliveryStatus, inlined.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TriggerStatus {
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub observed_generation: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber_uri: Option<String>,
    #[serde(
        default,
        rename = "subscriberCACerts",
        skip_serializing_if = "Option::is_none"
    )]
    pub subscriber_ca_certs: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber_audience: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink_uri: Option<String>,
    #[serde(
        default,
        rename = "deadLetterSinkCACerts",
        skip_serializing_if = "Option::is_none"
    )]
    pub dead_letter_sink_ca_certs: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink_audience: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthStatus>,
}

impl TriggerStatus {
    pub fn is_empty(&self) -> bool {
        *self == TriggerStatus::default()
    }
}

typed!(Broker, "Broker");
typed!(Trigger, "Trigger");
