//! Knative Eventing's object types: `eventing.knative.dev/v1` (Broker, Trigger),
//! `messaging.knative.dev/v1` (Channel, InMemoryChannel, Subscription), `flows.knative.dev/v1`
//! (Sequence, Parallel) and `sources.knative.dev/v1` (PingSource, ApiServerSource,
//! ContainerSource, SinkBinding), with the duck types they share (Destination, DeliverySpec).
//!
//! Why spelled out as in `serving`: Knative's Go types (knative/eventing `pkg/apis/*/v1/
//! *_types.go`, knative.dev/pkg `apis/duck/v1`) inline duck types (`duckv1.Status`,
//! `SourceSpec`, `ChannelableSpec`, `Destination` inside a `SequenceStep`); serde's `flatten`
//! cannot be combined with `deny_unknown_fields`, and a typo in a Trigger must be a 422 naming
//! its path rather than a field silently ignored. Field names, which fields are omitted when
//! empty and which are pointers (here `Option`) follow the Go types. Everything is re-exported
//! here, so `wisp_api::eventing::Trigger` and `wisp_api::eventing::SubscriptionsApiFilter`
//! are the paths to use.

/// `KIND`, and `new(namespace, name)` with `apiVersion` and `kind` filled in, for a kind whose
/// module defines `API_VERSION`.
macro_rules! typed {
    ($t:ident, $kind:literal) => {
        impl $t {
            /// `kind` of this type.
            pub const KIND: &'static str = $kind;
            /// An empty object with `apiVersion`, `kind`, namespace and name set.
            pub fn new(namespace: &str, name: &str) -> Self {
                $t {
                    api_version: API_VERSION.to_string(),
                    kind: $kind.to_string(),
                    metadata: ObjectMeta {
                        name: name.to_string(),
                        namespace: namespace.to_string(),
                        ..ObjectMeta::default()
                    },
                    ..$t::default()
                }
            }
        }
    };
}

pub mod broker;
pub mod duck;
pub mod flows;
pub mod messaging;
pub mod sources;

pub use broker::{
    Broker, BrokerSpec, BrokerStatus, SubscriptionsApiFilter, Trigger, TriggerFilter, TriggerSpec,
    TriggerStatus,
};
pub use duck::{
    Addressable, AppliedEventPolicyRef, AuthStatus, CloudEventAttributes, CloudEventOverrides,
    DeliverySpec, Destination, IsoDuration, KReference, SourceSpec, SourceStatus, SubscriberSpec,
    SubscriberStatus, parse_iso8601_duration,
};
pub use flows::{
    ChannelStatusRef, Parallel, ParallelBranch, ParallelBranchStatus, ParallelSpec, ParallelStatus,
    Sequence, SequenceSpec, SequenceStatus, SequenceStep, SubscriptionStatusRef,
};
pub use messaging::{
    Channel, ChannelSpec, ChannelStatus, ChannelTemplateSpec, InMemoryChannel, InMemoryChannelSpec,
    InMemoryChannelStatus, PhysicalSubscription, Subscription, SubscriptionSpec,
    SubscriptionStatus,
};
pub use sources::{
    ApiServerSource, ApiServerSourceSpec, ApiServerSourceStatus, ApiVersionKind,
    ApiVersionKindSelector, BindingSubject, ContainerSource, ContainerSourceSpec, PingSource,
    PingSourceSpec, SinkBinding, SinkBindingSpec, SinkBindingStatus,
};

/// Well-known labels and annotations (knative/eventing `pkg/apis/eventing/register.go`,
/// `pkg/apis/messaging/register.go`, `trigger_types.go`).
pub mod keys {
    /// On Brokers: which implementation serves it. Immutable.
    pub const BROKER_CLASS_ANNOTATION: &str = "eventing.knative.dev/broker.class";
    /// Knative's default class (`config-br-defaults`).
    pub const MT_CHANNEL_BROKER_CLASS: &str = "MTChannelBasedBroker";
    /// On Triggers: the broker's name, set by the webhook.
    pub const BROKER_LABEL: &str = "eventing.knative.dev/broker";
    /// On Triggers: an object (JSON `ObjectReference`) that must be ready first.
    pub const DEPENDENCY_ANNOTATION: &str = "knative.dev/dependency";
    /// On Triggers of the `default` broker: `enabled` or `disabled`.
    pub const INJECTION_ANNOTATION: &str = "eventing.knative.dev/injection";
    /// On channels: `cluster` or `namespace`.
    pub const SCOPE_ANNOTATION: &str = "eventing.knative.dev/scope";
    /// On channels: the subscribable duck version, defaulted to `v1`.
    pub const SUBSCRIBABLE_DUCK_VERSION_ANNOTATION: &str = "messaging.knative.dev/subscribable";
}

#[cfg(test)]
pub(crate) mod tests;
