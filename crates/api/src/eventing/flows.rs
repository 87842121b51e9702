//! `flows.knative.dev/v1`: Sequence and Parallel.
//!
//! Shapes follow knative/eventing `pkg/apis/flows/v1/{sequence,parallel}_types.go`. A
//! `SequenceStep` inlines a `Destination`, so its `ref`/`uri` fields sit next to `delivery`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::duck::{
    Addressable, AppliedEventPolicyRef, AuthStatus, DeliverySpec, Destination, KReference,
};
use super::messaging::ChannelTemplateSpec;
use crate::core::ObjectReference;
use crate::meta::{Condition, ObjectMeta, is_zero_i64};

/// `apiVersion` of Sequence and Parallel.
pub const API_VERSION: &str = "flows.knative.dev/v1";
/// The API group.
pub const GROUP: &str = "flows.knative.dev";

// ---------------------------------------------------------------- Sequence

/// `kind: Sequence`: events pass through each step in order; each step's reply feeds the next.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sequence {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: SequenceSpec,
    #[serde(default, skip_serializing_if = "SequenceStatus::is_empty")]
    pub status: SequenceStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SequenceSpec {
    /// Always written (Go: no `omitempty`).
    #[serde(default)]
    pub steps: Vec<SequenceStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_template: Option<ChannelTemplateSpec>,
    /// Where the last step's reply goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<Destination>,
}

/// One step: a Destination (inlined) and its own delivery options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SequenceStep {
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub ref_: Option<KReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(default, rename = "CACerts", skip_serializing_if = "Option::is_none")]
    pub ca_certs: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
}

impl SequenceStep {
    /// The step's inlined Destination.
    pub fn destination(&self) -> Destination {
        Destination {
            ref_: self.ref_.clone(),
            uri: self.uri.clone(),
            ca_certs: self.ca_certs.clone(),
            audience: self.audience.clone(),
        }
    }

    /// Replaces the step's inlined Destination, keeping `delivery`.
    pub fn set_destination(&mut self, d: Destination) {
        self.ref_ = d.ref_;
        self.uri = d.uri;
        self.ca_certs = d.ca_certs;
        self.audience = d.audience;
    }
}

/// A child channel or subscription and its Ready condition (`SequenceChannelStatus`,
/// `SequenceSubscriptionStatus`, and Parallel's equivalents share this shape).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChannelStatusRef {
    #[serde(default)]
    pub channel: ObjectReference,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<Condition>,
}

impl ChannelStatusRef {
    pub fn is_empty(&self) -> bool {
        *self == ChannelStatusRef::default()
    }
}

/// A child subscription and its Ready condition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubscriptionStatusRef {
    #[serde(default)]
    pub subscription: ObjectReference,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<Condition>,
}

impl SubscriptionStatusRef {
    pub fn is_empty(&self) -> bool {
        *self == SubscriptionStatusRef::default()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SequenceStatus {
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub observed_generation: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscription_statuses: Vec<SubscriptionStatusRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channel_statuses: Vec<ChannelStatusRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Addressable>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<AppliedEventPolicyRef>,
}

impl SequenceStatus {
    pub fn is_empty(&self) -> bool {
        *self == SequenceStatus::default()
    }
}

// ---------------------------------------------------------------- Parallel

/// `kind: Parallel`: every event goes to every branch whose filter accepts it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Parallel {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ParallelSpec,
    #[serde(default, skip_serializing_if = "ParallelStatus::is_empty")]
    pub status: ParallelStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParallelSpec {
    /// Always written (Go: no `omitempty`).
    #[serde(default)]
    pub branches: Vec<ParallelBranch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_template: Option<ChannelTemplateSpec>,
    /// Default reply of every branch without its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<Destination>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParallelBranch {
    /// A service that answers with the event to keep it (2xx with a body), or nothing to drop it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Destination>,
    /// Always written (Go: no `omitempty`).
    #[serde(default)]
    pub subscriber: Destination,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<Destination>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParallelStatus {
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub observed_generation: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "ChannelStatusRef::is_empty")]
    pub ingress_channel_status: ChannelStatusRef,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub branch_statuses: Vec<ParallelBranchStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Addressable>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Addressable>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<AppliedEventPolicyRef>,
}

impl ParallelStatus {
    pub fn is_empty(&self) -> bool {
        *self == ParallelStatus::default()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParallelBranchStatus {
    #[serde(default, skip_serializing_if = "SubscriptionStatusRef::is_empty")]
    pub filter_subscription_status: SubscriptionStatusRef,
    #[serde(default, skip_serializing_if = "ChannelStatusRef::is_empty")]
    pub filter_channel_status: ChannelStatusRef,
    #[serde(default, skip_serializing_if = "SubscriptionStatusRef::is_empty")]
    pub subscriber_subscription_status: SubscriptionStatusRef,
}

typed!(Sequence, "Sequence");
typed!(Parallel, "Parallel");
