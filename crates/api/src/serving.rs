//! `serving.knative.dev/v1`: Service, Configuration, Revision and Route.
//!
//! Why the Go "inline" structs are spelled out field by field: Knative inlines PodSpec into
//! RevisionSpec, ConfigurationSpec and RouteSpec into ServiceSpec, and the common status into
//! every status. serde's `flatten` cannot be combined with `deny_unknown_fields`, and refusing
//! unknown fields (with their path) matters more than saving a few lines. Field names, which
//! fields are omitted when empty, and which are pointers (here `Option`) follow the Go types in
//! knative/serving `pkg/apis/serving/v1`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::core::{Container, LocalObjectReference, PodSecurityContext, Volume};
use crate::meta::{Condition, ObjectMeta, is_zero_i64};

/// `apiVersion` of every kind in this module.
pub const API_VERSION: &str = "serving.knative.dev/v1";
/// The API group.
pub const GROUP: &str = "serving.knative.dev";

/// Well-known labels and annotations (knative/serving `pkg/apis/serving/register.go`).
pub mod keys {
    pub const SERVICE_LABEL: &str = "serving.knative.dev/service";
    pub const SERVICE_UID_LABEL: &str = "serving.knative.dev/serviceUID";
    pub const CONFIGURATION_LABEL: &str = "serving.knative.dev/configuration";
    pub const CONFIGURATION_UID_LABEL: &str = "serving.knative.dev/configurationUID";
    pub const CONFIGURATION_GENERATION_LABEL: &str = "serving.knative.dev/configurationGeneration";
    pub const REVISION_LABEL: &str = "serving.knative.dev/revision";
    pub const REVISION_UID_LABEL: &str = "serving.knative.dev/revisionUID";
    pub const ROUTE_LABEL: &str = "serving.knative.dev/route";
    pub const ROUTES_ANNOTATION: &str = "serving.knative.dev/routes";
    pub const ROUTING_STATE_LABEL: &str = "serving.knative.dev/routingState";
    pub const ROUTING_STATE_MODIFIED_ANNOTATION: &str = "serving.knative.dev/routingStateModified";
    pub const CREATOR_ANNOTATION: &str = "serving.knative.dev/creator";
    pub const UPDATER_ANNOTATION: &str = "serving.knative.dev/lastModifier";
    pub const ROLLOUT_DURATION_ANNOTATION: &str = "serving.knative.dev/rollout-duration";
    pub const LAST_PINNED_ANNOTATION: &str = "serving.knative.dev/lastPinned";
    pub const NO_GC_ANNOTATION: &str = "serving.knative.dev/no-gc";
    pub const PROGRESS_DEADLINE_ANNOTATION: &str = "serving.knative.dev/progress-deadline";
    /// `networking.knative.dev/visibility: cluster-local` keeps a Service off the gateway.
    pub const VISIBILITY_LABEL: &str = "networking.knative.dev/visibility";
    pub const VISIBILITY_CLUSTER_LOCAL: &str = "cluster-local";

    /// Autoscaling annotations (`autoscaling.knative.dev/...`), set on the revision template.
    pub const AUTOSCALING_GROUP: &str = "autoscaling.knative.dev";
    pub const CLASS_ANNOTATION: &str = "autoscaling.knative.dev/class";
    pub const KPA_CLASS: &str = "kpa.autoscaling.knative.dev";
    pub const HPA_CLASS: &str = "hpa.autoscaling.knative.dev";
    pub const METRIC_ANNOTATION: &str = "autoscaling.knative.dev/metric";
    pub const TARGET_ANNOTATION: &str = "autoscaling.knative.dev/target";
    pub const MIN_SCALE_ANNOTATION: &str = "autoscaling.knative.dev/min-scale";
    pub const MAX_SCALE_ANNOTATION: &str = "autoscaling.knative.dev/max-scale";
    pub const INITIAL_SCALE_ANNOTATION: &str = "autoscaling.knative.dev/initial-scale";
    pub const ACTIVATION_SCALE_ANNOTATION: &str = "autoscaling.knative.dev/activation-scale";
    pub const WINDOW_ANNOTATION: &str = "autoscaling.knative.dev/window";
    pub const PANIC_WINDOW_PERCENTAGE_ANNOTATION: &str =
        "autoscaling.knative.dev/panic-window-percentage";
    pub const PANIC_THRESHOLD_PERCENTAGE_ANNOTATION: &str =
        "autoscaling.knative.dev/panic-threshold-percentage";
    pub const TARGET_UTILIZATION_PERCENTAGE_ANNOTATION: &str =
        "autoscaling.knative.dev/target-utilization-percentage";
    pub const TARGET_BURST_CAPACITY_ANNOTATION: &str =
        "autoscaling.knative.dev/target-burst-capacity";
    pub const SCALE_DOWN_DELAY_ANNOTATION: &str = "autoscaling.knative.dev/scale-down-delay";
    pub const SCALE_TO_ZERO_POD_RETENTION_PERIOD_ANNOTATION: &str =
        "autoscaling.knative.dev/scale-to-zero-pod-retention-period";
    pub const METRIC_AGGREGATION_ALGORITHM_ANNOTATION: &str =
        "autoscaling.knative.dev/metric-aggregation-algorithm";
}

/// Environment variables the runtime sets and users may not.
pub const RESERVED_ENV_VARS: &[&str] = &["PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"];
/// Ports Knative's sidecars own; a user container may not listen on them.
pub const RESERVED_PORTS: &[i32] = &[8012, 8013, 8022, 9090, 9091, 8008];
/// The port a container serves on when it names none.
pub const DEFAULT_USER_PORT: i32 = 8080;
/// Default container name for a single container.
pub const DEFAULT_USER_CONTAINER_NAME: &str = "user-container";

// ---------------------------------------------------------------- Service

/// `kind: Service`: a Configuration and a Route of the same name, managed together.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Service {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ServiceSpec,
    #[serde(default, skip_serializing_if = "ServiceStatus::is_empty")]
    pub status: ServiceStatus,
}

/// ConfigurationSpec + RouteSpec, inlined.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceSpec {
    #[serde(default)]
    pub template: RevisionTemplateSpec,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traffic: Vec<TrafficTarget>,
}

/// Common status + ConfigurationStatusFields + RouteStatusFields, inlined.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceStatus {
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub observed_generation: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub latest_ready_revision_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub latest_created_revision_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Addressable>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traffic: Vec<TrafficTarget>,
}

impl ServiceStatus {
    pub fn is_empty(&self) -> bool {
        *self == ServiceStatus::default()
    }
}

// ---------------------------------------------------------- Configuration

/// `kind: Configuration`: the latest desired revision template.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Configuration {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ConfigurationSpec,
    #[serde(default, skip_serializing_if = "ConfigurationStatus::is_empty")]
    pub status: ConfigurationStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigurationSpec {
    #[serde(default)]
    pub template: RevisionTemplateSpec,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigurationStatus {
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub observed_generation: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub latest_ready_revision_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub latest_created_revision_name: String,
}

impl ConfigurationStatus {
    pub fn is_empty(&self) -> bool {
        *self == ConfigurationStatus::default()
    }
}

// ---------------------------------------------------------------- Revision

/// `kind: Revision`: an immutable snapshot of code and configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Revision {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: RevisionSpec,
    #[serde(default, skip_serializing_if = "RevisionStatus::is_empty")]
    pub status: RevisionStatus,
}

/// `spec.template` of a Service or Configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RevisionTemplateSpec {
    #[serde(default, skip_serializing_if = "is_default_meta")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: RevisionSpec,
}

fn is_default_meta(m: &ObjectMeta) -> bool {
    *m == ObjectMeta::default()
}

/// Knative's PodSpec subset (inlined) plus the revision's own fields. Fields Knative keeps
/// behind feature flags are declared so validation can refuse them by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RevisionSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    /// Feature-gated (`kubernetes.podspec-init-containers`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub init_containers: Vec<Container>,
    #[serde(default)]
    pub containers: Vec<Container>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account_name: String,
    /// Only `false` is kept by Knative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automount_service_account_token: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Knative defaults this to `false` on create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_service_links: Option<bool>,
    // Feature-gated PodSpec fields, refused with Knative's default features.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<PodSecurityContext>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_spread_constraints: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_aliases: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_class_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_process_namespace: Option<bool>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub priority_class_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scheduler_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dns_policy: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_config: Option<serde_json::Value>,
    #[serde(default, rename = "hostIPC", skip_serializing_if = "is_false")]
    pub host_ipc: bool,
    #[serde(default, rename = "hostPID", skip_serializing_if = "is_false")]
    pub host_pid: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub host_network: bool,
    // Revision fields.
    /// Maximum in-flight requests per replica; 0 = unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_concurrency: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_start_timeout_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_seconds: Option<i64>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Whether the serving port speaks HTTP/1 or h2c (Knative's `networking.ProtocolType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Http1,
    H2c,
}

impl RevisionSpec {
    /// The container that receives requests: the only one, or the one with a port (Knative's
    /// `RevisionSpec.GetContainer`).
    pub fn serving_container(&self) -> Option<&Container> {
        match self.containers.len() {
            0 => None,
            1 => self.containers.first(),
            _ => self
                .containers
                .iter()
                .find(|c| !c.ports.is_empty())
                .or(self.containers.first()),
        }
    }

    /// The port the serving container listens on (its first `containerPort`, else 8080).
    pub fn serving_port(&self) -> i32 {
        self.serving_container()
            .and_then(|c| c.ports.first())
            .map(|p| p.container_port)
            .filter(|p| *p != 0)
            .unwrap_or(DEFAULT_USER_PORT)
    }

    /// `h2c` when the serving port is named so, else HTTP/1.
    pub fn protocol(&self) -> Protocol {
        match self.serving_container().and_then(|c| c.ports.first()) {
            Some(p) if p.name == "h2c" => Protocol::H2c,
            _ => Protocol::Http1,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RevisionStatus {
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub observed_generation: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub log_url: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_statuses: Vec<ContainerStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub init_container_statuses: Vec<ContainerStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_replicas: Option<i32>,
}

impl RevisionStatus {
    pub fn is_empty(&self) -> bool {
        *self == RevisionStatus::default()
    }
}

/// `status.containerStatuses[]`: the image digest each container was resolved to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerStatus {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image_digest: String,
}

// ------------------------------------------------------------------- Route

/// `kind: Route`: named, weighted traffic over revisions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Route {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: RouteSpec,
    #[serde(default, skip_serializing_if = "RouteStatus::is_empty")]
    pub status: RouteStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traffic: Vec<TrafficTarget>,
}

/// One entry of `traffic` (spec or status).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrafficTarget {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tag: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub revision_name: String,
    /// Spec only; never in status.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub configuration_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_revision: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<i64>,
    /// Status only: `http://{tag}-{route}.{ns}.{domain}` for tagged targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteStatus {
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub observed_generation: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Addressable>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traffic: Vec<TrafficTarget>,
}

impl RouteStatus {
    pub fn is_empty(&self) -> bool {
        *self == RouteStatus::default()
    }
}

/// `status.address` (knative.dev/pkg `duckv1.Addressable`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Addressable {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, rename = "CACerts", skip_serializing_if = "Option::is_none")]
    pub ca_certs: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

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
typed!(Service, "Service");
typed!(Configuration, "Configuration");
typed!(Revision, "Revision");
typed!(Route, "Route");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ContainerPort;

    #[test]
    fn service_json_shape() {
        let mut s = Service::new("default", "hello");
        s.spec.template.spec.containers.push(Container {
            image: "ghcr.io/knative/helloworld-go".into(),
            ..Container::default()
        });
        s.spec.traffic.push(TrafficTarget {
            latest_revision: Some(true),
            percent: Some(100),
            ..TrafficTarget::default()
        });
        let v = serde_json::to_value(&s).unwrap_or_default();
        assert_eq!(
            v,
            serde_json::json!({
                "apiVersion": "serving.knative.dev/v1",
                "kind": "Service",
                "metadata": {"name": "hello", "namespace": "default"},
                "spec": {
                    "template": {"spec": {"containers": [
                        {"image": "ghcr.io/knative/helloworld-go", "resources": {}}
                    ]}},
                    "traffic": [{"latestRevision": true, "percent": 100}]
                }
            })
        );
        let back: Service = serde_json::from_value(v).unwrap_or_default();
        assert_eq!(back, s);
    }

    #[test]
    fn serving_port_and_protocol() {
        let mut spec = RevisionSpec::default();
        assert_eq!(spec.serving_port(), 8080);
        spec.containers.push(Container::default());
        spec.containers.push(Container {
            name: "app".into(),
            ports: vec![ContainerPort {
                name: "h2c".into(),
                container_port: 9000,
                ..ContainerPort::default()
            }],
            ..Container::default()
        });
        assert_eq!(
            spec.serving_container().map(|c| c.name.as_str()),
            Some("app")
        );
        assert_eq!(spec.serving_port(), 9000);
        assert_eq!(spec.protocol(), Protocol::H2c);
    }

    #[test]
    fn status_round_trip() {
        let v = serde_json::json!({
            "observedGeneration": 2,
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
            "latestReadyRevisionName": "hello-00002",
            "latestCreatedRevisionName": "hello-00002",
            "url": "http://hello.default.localhost",
            "address": {"url": "http://hello.default.svc.cluster.local"},
            "traffic": [{"revisionName": "hello-00002", "latestRevision": true, "percent": 100}]
        });
        let st: ServiceStatus = serde_json::from_value(v.clone()).unwrap_or_default();
        assert_eq!(serde_json::to_value(&st).unwrap_or_default(), v);
    }
}
