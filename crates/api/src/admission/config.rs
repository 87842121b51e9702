//! The knobs Knative reads from `config-defaults`, `config-features` and `config-autoscaler`
//! (Serving) and from `config-br-defaults`, `default-ch-webhook`, `config-ping-defaults` and
//! Eventing's `config-features` while admitting objects, with Knative's default values. wisp
//! has no ConfigMaps for these yet; the values are plain data so the daemon can fill them from
//! its own configuration.

use crate::eventing::{ChannelTemplateSpec, DeliverySpec, KReference};

/// `config-defaults`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    pub revision_timeout_seconds: i64,
    pub max_revision_timeout_seconds: i64,
    pub revision_response_start_timeout_seconds: i64,
    pub revision_idle_timeout_seconds: i64,
    pub container_concurrency: i64,
    pub container_concurrency_max_limit: i64,
    pub allow_container_concurrency_zero: bool,
    pub enable_service_links: Option<bool>,
    pub user_container_name: String,
    pub init_container_name: String,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            revision_timeout_seconds: 300,
            max_revision_timeout_seconds: 600,
            revision_response_start_timeout_seconds: 300,
            revision_idle_timeout_seconds: 0,
            container_concurrency: 0,
            container_concurrency_max_limit: 1000,
            allow_container_concurrency_zero: true,
            enable_service_links: Some(false),
            user_container_name: "user-container".to_string(),
            init_container_name: "init-container".to_string(),
        }
    }
}

/// `config-features`: which optional PodSpec fields are accepted. `true` = Enabled.
/// Knative's defaults: only `multi-container` and `kubernetes.podspec-volumes-emptydir` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Features {
    pub multi_container: bool,
    pub multi_container_probing: bool,
    pub pod_spec_affinity: bool,
    pub pod_spec_topology_spread_constraints: bool,
    pub pod_spec_host_aliases: bool,
    pub pod_spec_field_ref: bool,
    pub pod_spec_node_selector: bool,
    pub pod_spec_runtime_class_name: bool,
    pub pod_spec_security_context: bool,
    pub pod_spec_share_process_namespace: bool,
    pub pod_spec_host_ipc: bool,
    pub pod_spec_host_pid: bool,
    pub pod_spec_host_network: bool,
    pub pod_spec_priority_class_name: bool,
    pub pod_spec_scheduler_name: bool,
    pub container_spec_add_capabilities: bool,
    pub pod_spec_tolerations: bool,
    pub pod_spec_volumes_empty_dir: bool,
    pub pod_spec_volumes_host_path: bool,
    pub pod_spec_volumes_mount_propagation: bool,
    pub pod_spec_volumes_csi: bool,
    pub pod_spec_volumes_ephemeral: bool,
    pub pod_spec_volumes_image: bool,
    pub pod_spec_persistent_volume_claim: bool,
    pub pod_spec_persistent_volume_write: bool,
    pub pod_spec_init_containers: bool,
    pub pod_spec_dns_policy: bool,
    pub pod_spec_dns_config: bool,
}

impl Default for Features {
    fn default() -> Self {
        Features {
            multi_container: true,
            multi_container_probing: false,
            pod_spec_affinity: false,
            pod_spec_topology_spread_constraints: false,
            pod_spec_host_aliases: false,
            pod_spec_field_ref: false,
            pod_spec_node_selector: false,
            pod_spec_runtime_class_name: false,
            pod_spec_security_context: false,
            pod_spec_share_process_namespace: false,
            pod_spec_host_ipc: false,
            pod_spec_host_pid: false,
            pod_spec_host_network: false,
            pod_spec_priority_class_name: false,
            pod_spec_scheduler_name: false,
            container_spec_add_capabilities: false,
            pod_spec_tolerations: false,
            pod_spec_volumes_empty_dir: true,
            pod_spec_volumes_host_path: false,
            pod_spec_volumes_mount_propagation: false,
            pod_spec_volumes_csi: false,
            pod_spec_volumes_ephemeral: false,
            pod_spec_volumes_image: false,
            pod_spec_persistent_volume_claim: false,
            pod_spec_persistent_volume_write: false,
            pod_spec_init_containers: false,
            pod_spec_dns_policy: false,
            pod_spec_dns_config: false,
        }
    }
}

/// The parts of `config-autoscaler` that admission reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Autoscaler {
    /// Default class when the annotation is absent.
    pub pod_autoscaler_class: String,
    /// 0 = no limit.
    pub max_scale_limit: i32,
    pub allow_zero_initial_scale: bool,
}

impl Default for Autoscaler {
    fn default() -> Self {
        Autoscaler {
            pod_autoscaler_class: crate::serving::keys::KPA_CLASS.to_string(),
            max_scale_limit: 0,
            allow_zero_initial_scale: false,
        }
    }
}

/// Checks a CESQL expression: `Ok` if it parses, else the parser's message. wisp-api has no
/// CESQL parser (it may not depend on other wisp crates); the daemon plugs in wisp-eventing's.
pub type CesqlCheck = fn(&str) -> Result<(), String>;

/// What Eventing's webhook reads (knative/eventing `pkg/apis/config`, `pkg/apis/feature`).
#[derive(Clone)]
pub struct Eventing {
    /// `config-br-defaults` `brokerClass`: stamped on Brokers without the class annotation.
    pub default_broker_class: String,
    /// `config-br-defaults` `apiVersion/kind/name/namespace`: a Broker's default `spec.config`.
    /// Knative points at its `config-br-default-channel` ConfigMap; wisp's broker needs no
    /// such ConfigMap, so the default is none.
    pub default_broker_config: Option<KReference>,
    /// `config-br-defaults` `delivery`: a Broker's default `spec.delivery`
    /// (Knative: 10 retries, exponential, `PT0.2S`).
    pub default_broker_delivery: Option<DeliverySpec>,
    /// `default-ch-webhook`: the `channelTemplate` of Channels, Sequences and Parallels that
    /// name none (Knative: `messaging.knative.dev/v1` `InMemoryChannel`).
    pub default_channel_template: ChannelTemplateSpec,
    /// `config-ping-defaults` `data-max-size`: bytes of PingSource data; -1 = no limit.
    pub ping_data_max_size: i64,
    /// Feature `delivery-timeout` (Knative: enabled): `delivery.timeout` is accepted.
    pub delivery_timeout: bool,
    /// Feature `delivery-retryafter`: `delivery.retryAfterMax` is accepted. Knative disables
    /// it by default and refuses the field; wisp accepts it by default (a deliberate
    /// deviation: the field is validated, never silently ignored).
    pub delivery_retry_after: bool,
    /// Feature `new-apiserversource-filters` (Knative: disabled): ApiServerSource `filters`.
    pub new_apiserver_filters: bool,
    /// Used on every `cesql` filter when set; when `None` only emptiness is checked.
    pub cesql_check: Option<CesqlCheck>,
}

impl Default for Eventing {
    fn default() -> Self {
        Eventing {
            default_broker_class: crate::eventing::keys::MT_CHANNEL_BROKER_CLASS.to_string(),
            default_broker_config: None,
            default_broker_delivery: Some(DeliverySpec {
                retry: Some(10),
                backoff_policy: Some(crate::eventing::duck::BACKOFF_POLICY_EXPONENTIAL.into()),
                backoff_delay: Some("PT0.2S".to_string()),
                ..DeliverySpec::default()
            }),
            default_channel_template: ChannelTemplateSpec::in_memory(),
            ping_data_max_size: -1,
            delivery_timeout: true,
            delivery_retry_after: true,
            new_apiserver_filters: false,
            cesql_check: None,
        }
    }
}

impl std::fmt::Debug for Eventing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Eventing")
            .field("default_broker_class", &self.default_broker_class)
            .field("default_broker_config", &self.default_broker_config)
            .field("default_broker_delivery", &self.default_broker_delivery)
            .field("default_channel_template", &self.default_channel_template)
            .field("ping_data_max_size", &self.ping_data_max_size)
            .field("delivery_timeout", &self.delivery_timeout)
            .field("delivery_retry_after", &self.delivery_retry_after)
            .field("new_apiserver_filters", &self.new_apiserver_filters)
            .field("cesql_check", &self.cesql_check.map(|_| "fn"))
            .finish()
    }
}

/// Function pointers compare by address: two configs are equal when they plug in the same
/// checker.
impl PartialEq for Eventing {
    fn eq(&self, other: &Self) -> bool {
        let same_check = match (self.cesql_check, other.cesql_check) {
            (None, None) => true,
            (Some(a), Some(b)) => std::ptr::fn_addr_eq(a, b),
            _ => false,
        };
        same_check
            && self.default_broker_class == other.default_broker_class
            && self.default_broker_config == other.default_broker_config
            && self.default_broker_delivery == other.default_broker_delivery
            && self.default_channel_template == other.default_channel_template
            && self.ping_data_max_size == other.ping_data_max_size
            && self.delivery_timeout == other.delivery_timeout
            && self.delivery_retry_after == other.delivery_retry_after
            && self.new_apiserver_filters == other.new_apiserver_filters
    }
}

impl Eq for Eventing {}

/// Everything admission reads besides the object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pub defaults: Defaults,
    pub features: Features,
    pub autoscaler: Autoscaler,
    pub eventing: Eventing,
}
