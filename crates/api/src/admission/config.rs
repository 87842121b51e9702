//! The knobs Knative reads from `config-defaults`, `config-features` and `config-autoscaler`
//! while admitting objects, with Knative's default values. wisp has no ConfigMaps for these
//! yet; the values are plain data so the daemon can fill them from its own configuration.

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

/// Everything admission reads besides the object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pub defaults: Defaults,
    pub features: Features,
    pub autoscaler: Autoscaler,
}
