//! SinkBinding, ContainerSource and ApiServerSource.
//!
//! SinkBinding: Knative's webhook adds `K_SINK` (and `K_CE_OVERRIDES`) to the subject's pod
//! template, which rolls out new pods. wisp does the same to the subject Knative Service's
//! revision template (a new Revision rolls out), and marks the Service with
//! [`BOUND_BY_ANNOTATION`] so that the variables are taken out again when the binding goes.
//! Only Knative Services are bindable subjects here (there are no Deployments).
//!
//! ContainerSource: Knative runs the template as a Deployment with a SinkBinding. wisp runs
//! it as a child Knative Service (`{name}-source`, owned by the source so that deleting the
//! source deletes it) held at exactly one replica, with `K_SINK` and `K_CE_OVERRIDES` in its
//! containers' environment and an always-true readiness probe where the container declares
//! none (a source need not serve HTTP).
//!
//! ApiServerSource: a watch of wisp's own store per source (see `apiwatch.rs`); here only
//! its status and its spec for the watcher.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};
use wisp_api::core::EnvVar;
use wisp_api::eventing::{
    ApiServerSourceStatus, CloudEventAttributes, SinkBindingStatus, SourceStatus,
};
use wisp_api::kinds;
use wisp_api::meta::{ConditionSet, LabelSelector, READY};
use wisp_api::serving::Service;

use super::{Plan, Resolver, World, finish};

/// On a Service that a SinkBinding changed: the binding's name.
pub const BOUND_BY_ANNOTATION: &str = "sinkbindings.sources.knative.dev/bound-by";
/// Knative's ContainerSource label on what it creates.
pub const CONTAINER_SOURCE_LABEL: &str = "sources.knative.dev/containerSource";

/// knative/eventing `pkg/apis/sources/v1/sinkbinding_lifecycle.go` (without OIDC).
pub const SINK_BINDING_CONDITIONS: ConditionSet = ConditionSet {
    happy: READY,
    dependents: &["BindingAvailable", "SinkProvided"],
};
/// `container_lifecycle.go`.
pub const CONTAINER_SOURCE_CONDITIONS: ConditionSet = ConditionSet {
    happy: READY,
    dependents: &["ReceiveAdapterReady", "SinkBindingReady"],
};
/// `apiserver_lifecycle.go`.
pub const API_SERVER_SOURCE_CONDITIONS: ConditionSet = ConditionSet {
    happy: READY,
    dependents: &["Deployed", "SinkProvided", "SufficientPermissions"],
};

/// What the ApiServerSource watcher runs for one source.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiWatchSpec {
    pub id: String,
    pub namespace: String,
    /// `(storage key, apiVersion, kind, plural, selector)` per watched resource.
    pub resources: Vec<(String, String, String, String, Option<LabelSelector>)>,
    /// `Resource` (the object as data) or `Reference` (kind/namespace/name/apiVersion).
    pub mode: String,
    pub extensions: Vec<(String, String)>,
    pub stream: String,
}

/// Whether `selector` selects `labels` (Kubernetes' rules; an empty selector selects all).
pub fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    selector
        .match_labels
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
        && selector.match_expressions.iter().all(|r| {
            let value = labels.get(&r.key);
            match r.operator.as_str() {
                "In" => value.is_some_and(|v| r.values.contains(v)),
                "NotIn" => value.is_none_or(|v| !r.values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
}

fn overrides_env(sink: &str, extensions: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut env = vec![("K_SINK".to_string(), sink.to_string())];
    if !extensions.is_empty() {
        env.push((
            "K_CE_OVERRIDES".to_string(),
            json!({ "extensions": extensions }).to_string(),
        ));
    }
    env
}

/// `svc` with `env` bound into every container of its template by `binding`, or with a
/// former binding's variables taken out (`env` = None); `None` when nothing changes.
pub fn bind_service(
    svc: &Service,
    binding: Option<(&str, &[(String, String)])>,
) -> Option<Service> {
    let bound_by = svc.metadata.annotations.get(BOUND_BY_ANNOTATION);
    if binding.is_none() && bound_by.is_none() {
        return None;
    }
    let mut out = svc.clone();
    for c in &mut out.spec.template.spec.containers {
        c.env
            .retain(|e| e.name != "K_SINK" && e.name != "K_CE_OVERRIDES");
        if let Some((_, env)) = binding {
            c.env.extend(env.iter().map(|(k, v)| EnvVar {
                name: k.clone(),
                value: v.clone(),
                ..Default::default()
            }));
        }
    }
    match binding {
        Some((name, _)) => {
            out.metadata
                .annotations
                .insert(BOUND_BY_ANNOTATION.to_string(), name.to_string());
        }
        None => {
            out.metadata.annotations.remove(BOUND_BY_ANNOTATION);
        }
    }
    (out != *svc).then_some(out)
}

pub(super) fn reconcile(world: &World, resolver: &Resolver, now: &str, plan: &mut Plan) {
    let services: HashMap<(&str, &str), &Service> = world
        .services
        .iter()
        .map(|s| ((s.metadata.namespace.as_str(), s.metadata.name.as_str()), s))
        .collect();

    // SinkBindings: which Service gets which variables.
    // (namespace, Service) -> (binding, variables)
    type Bound = HashMap<(String, String), (String, Vec<(String, String)>)>;
    let mut bound: Bound = HashMap::new();
    for b in &world.sink_bindings {
        let (ns, name) = (b.metadata.namespace.as_str(), b.metadata.name.as_str());
        let mut status = SinkBindingStatus {
            observed_generation: b.metadata.generation,
            conditions: b.status.conditions.clone(),
            ..Default::default()
        };
        let mut m = SINK_BINDING_CONDITIONS.manage(&mut status.conditions, now);
        m.initialize();
        let sink = resolver.resolve(&b.spec.sink, ns);
        match &sink {
            Ok(_) => m.mark_true("SinkProvided"),
            Err(e) => m.mark_false("SinkProvided", "NotFound", e),
        }
        let subject = &b.spec.subject;
        let group = subject.api_version.split('/').next().unwrap_or_default();
        let subjects: Vec<&Service> = if (group, subject.kind.as_str())
            != ("serving.knative.dev", "Service")
        {
            m.mark_false(
                "BindingAvailable",
                "SubjectUnsupported",
                &format!(
                    "wisp binds Knative Services (serving.knative.dev/v1 Service), not {} {}",
                    subject.api_version, subject.kind
                ),
            );
            Vec::new()
        } else if !subject.name.is_empty() {
            match services.get(&(ns, subject.name.as_str())) {
                Some(s) => vec![*s],
                None => {
                    m.mark_false(
                        "BindingAvailable",
                        "SubjectMissing",
                        &format!("Service {ns}/{} not found", subject.name),
                    );
                    Vec::new()
                }
            }
        } else {
            let selector = subject.selector.clone().unwrap_or_default();
            world
                .services
                .iter()
                .filter(|s| s.metadata.namespace == ns && selects(&selector, &s.metadata.labels))
                .collect()
        };
        if let Ok((_, uri)) = &sink {
            status.sink_uri = Some(uri.clone());
            let extensions = b
                .spec
                .ce_overrides
                .as_ref()
                .map(|o| o.extensions.clone())
                .unwrap_or_default();
            let env = overrides_env(uri, &extensions);
            for s in &subjects {
                bound.insert(
                    (s.metadata.namespace.clone(), s.metadata.name.clone()),
                    (name.to_string(), env.clone()),
                );
            }
            if !subjects.is_empty() || subject.name.is_empty() && subject.kind == "Service" {
                m.mark_true("BindingAvailable");
            }
        }
        finish(&mut status.conditions, &b.status.conditions);
        let mut new = b.clone();
        new.status = status;
        plan.write(&kinds::SINK_BINDINGS, &b.status, &new);
    }
    for s in &world.services {
        // A ContainerSource's own child is bound by the source, not by this.
        if s.metadata.labels.contains_key(CONTAINER_SOURCE_LABEL) {
            continue;
        }
        let key = (s.metadata.namespace.clone(), s.metadata.name.clone());
        let binding = bound.get(&key).map(|(n, env)| (n.as_str(), env.as_slice()));
        if let Some(updated) = bind_service(s, binding) {
            plan.service_updates.push(updated);
        }
    }

    for c in &world.container_sources {
        let (ns, name) = (c.metadata.namespace.as_str(), c.metadata.name.as_str());
        let mut status = SourceStatus {
            observed_generation: c.metadata.generation,
            conditions: c.status.conditions.clone(),
            ..Default::default()
        };
        let mut m = CONTAINER_SOURCE_CONDITIONS.manage(&mut status.conditions, now);
        m.initialize();
        let child_name = format!("{name}-source");
        match resolver.resolve(&c.spec.sink, ns) {
            Ok((_, uri)) => {
                m.mark_true("SinkBindingReady");
                status.sink_uri = Some(uri.clone());
                let extensions = c
                    .spec
                    .ce_overrides
                    .as_ref()
                    .map(|o| o.extensions.clone())
                    .unwrap_or_default();
                plan.children.push(container_source_child(
                    c,
                    &child_name,
                    &overrides_env(&uri, &extensions),
                ));
                match services.get(&(ns, child_name.as_str())) {
                    Some(child) if super::is_true(&child.status.conditions, READY) => {
                        m.mark_true("ReceiveAdapterReady")
                    }
                    Some(child) => {
                        let (reason, message) = child
                            .status
                            .conditions
                            .iter()
                            .find(|c| c.type_ == READY)
                            .map(|c| (c.reason.clone(), c.message.clone()))
                            .unwrap_or_default();
                        m.mark_unknown(
                            "ReceiveAdapterReady",
                            if reason.is_empty() {
                                "Deploying"
                            } else {
                                &reason
                            },
                            &format!("Service {child_name}: {message}"),
                        )
                    }
                    None => m.mark_unknown(
                        "ReceiveAdapterReady",
                        "Deploying",
                        &format!("creating Service {child_name}"),
                    ),
                }
            }
            Err(e) => m.mark_false("SinkBindingReady", "SinkNotFound", &e),
        }
        finish(&mut status.conditions, &c.status.conditions);
        let mut new = c.clone();
        new.status = status;
        plan.write(&kinds::CONTAINER_SOURCES, &c.status, &new);
    }

    for a in &world.api_server_sources {
        let (ns, name) = (a.metadata.namespace.as_str(), a.metadata.name.as_str());
        let mut status = ApiServerSourceStatus {
            observed_generation: a.metadata.generation,
            conditions: a.status.conditions.clone(),
            namespaces: vec![ns.to_string()],
            ..Default::default()
        };
        let mut m = API_SERVER_SOURCE_CONDITIONS.manage(&mut status.conditions, now);
        m.initialize();
        m.mark_true("SufficientPermissions");
        let sink = resolver.resolve(&a.spec.sink, ns);
        match &sink {
            Ok(_) => m.mark_true("SinkProvided"),
            Err(e) => m.mark_false("SinkProvided", "NotFound", e),
        }
        let mut resources = Vec::new();
        let mut unknown = Vec::new();
        for r in &a.spec.resources {
            match kinds::by_api_version_kind(&r.api_version, &r.kind) {
                Some(info) => resources.push((
                    kinds::storage_key(info),
                    r.api_version.clone(),
                    r.kind.clone(),
                    info.plural.to_string(),
                    r.selector.clone(),
                )),
                None => unknown.push(format!("{} {}", r.api_version, r.kind)),
            }
        }
        if unknown.is_empty() {
            m.mark_true("Deployed");
        } else {
            m.mark_false(
                "Deployed",
                "UnknownResource",
                &format!("wisp does not serve {}", unknown.join(", ")),
            );
        }
        let mode = if a.spec.mode.is_empty() {
            "Reference"
        } else {
            a.spec.mode.as_str()
        };
        let kind = if mode == "Resource" {
            "resource"
        } else {
            "ref"
        };
        status.ce_attributes = ["add", "update", "delete"]
            .iter()
            .map(|op| CloudEventAttributes {
                type_: format!("dev.knative.apiserver.{kind}.{op}"),
                source: String::new(),
            })
            .collect();
        if let (Ok((target, uri)), true) = (&sink, unknown.is_empty()) {
            status.sink_uri = Some(uri.clone());
            let stream = format!("apiserver/{ns}/{name}/{}", a.metadata.uid);
            plan.consumers.push(super::source_consumer(
                format!("apiserver/{ns}/{name}/{}", a.metadata.uid),
                stream.clone(),
                target,
            ));
            plan.api_watches.push(ApiWatchSpec {
                id: format!("{ns}/{name}/{}", a.metadata.uid),
                namespace: ns.to_string(),
                resources,
                mode: mode.to_string(),
                extensions: a
                    .spec
                    .ce_overrides
                    .as_ref()
                    .map(|o| o.extensions.clone().into_iter().collect())
                    .unwrap_or_default(),
                stream,
            });
        }
        finish(&mut status.conditions, &a.status.conditions);
        let mut new = a.clone();
        new.status = status;
        plan.write(&kinds::API_SERVER_SOURCES, &a.status, &new);
    }
}

/// The child Service that runs a ContainerSource's template.
fn container_source_child(
    c: &wisp_api::eventing::ContainerSource,
    name: &str,
    env: &[(String, String)],
) -> Value {
    let mut containers = Vec::new();
    for container in &c.spec.template.spec.containers {
        let mut container = container.clone();
        container
            .env
            .retain(|e| e.name != "K_SINK" && e.name != "K_CE_OVERRIDES");
        container.env.extend(env.iter().map(|(k, v)| EnvVar {
            name: k.clone(),
            value: v.clone(),
            ..Default::default()
        }));
        let mut v = serde_json::to_value(&container).unwrap_or(Value::Null);
        if container.readiness_probe.is_none() {
            v["readinessProbe"] = json!({"exec": {"command": ["true"]}, "periodSeconds": 1});
        }
        containers.push(v);
    }
    json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": c.metadata.namespace,
            "labels": {CONTAINER_SOURCE_LABEL: c.metadata.name},
            "ownerReferences": [{
                "apiVersion": "sources.knative.dev/v1",
                "kind": "ContainerSource",
                "name": c.metadata.name,
                "uid": c.metadata.uid,
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": {"template": {
            "metadata": {"annotations": {
                "autoscaling.knative.dev/min-scale": "1",
                "autoscaling.knative.dev/max-scale": "1",
            }},
            "spec": {"containers": containers},
        }},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wisp_api::core::Container;
    use wisp_api::meta::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_selectors_follow_kubernetes() {
        let sel = LabelSelector {
            match_labels: labels(&[("app", "a")]),
            match_expressions: vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: vec!["web".into(), "api".into()],
                },
                LabelSelectorRequirement {
                    key: "old".into(),
                    operator: "DoesNotExist".into(),
                    values: vec![],
                },
            ],
        };
        assert!(selects(&sel, &labels(&[("app", "a"), ("tier", "api")])));
        assert!(!selects(&sel, &labels(&[("app", "a"), ("tier", "db")])));
        assert!(!selects(
            &sel,
            &labels(&[("app", "a"), ("tier", "web"), ("old", "1")])
        ));
        assert!(!selects(&sel, &labels(&[("tier", "web")])));
        assert!(selects(&LabelSelector::default(), &labels(&[])));
    }

    #[test]
    fn binding_adds_replaces_and_removes_the_variables() {
        let mut svc = Service::default();
        svc.spec.template.spec.containers.push(Container {
            env: vec![EnvVar {
                name: "A".into(),
                value: "1".into(),
                ..Default::default()
            }],
            ..Default::default()
        });
        assert_eq!(bind_service(&svc, None), None, "never bound: nothing to do");
        let env = overrides_env(
            "http://sink/",
            &BTreeMap::from([("team".to_string(), "x".to_string())]),
        );
        let bound = bind_service(&svc, Some(("b", &env))).expect("bound");
        let names: Vec<&str> = bound.spec.template.spec.containers[0]
            .env
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(names, ["A", "K_SINK", "K_CE_OVERRIDES"]);
        assert_eq!(bound.metadata.annotations[BOUND_BY_ANNOTATION], "b");
        assert_eq!(bind_service(&bound, Some(("b", &env))), None, "idempotent");
        let moved = overrides_env("http://other/", &BTreeMap::new());
        let rebound = bind_service(&bound, Some(("b", &moved))).expect("new sink");
        assert_eq!(
            rebound.spec.template.spec.containers[0].env[1].value,
            "http://other/"
        );
        let unbound = bind_service(&rebound, None).expect("unbound");
        assert_eq!(unbound, svc);
    }
}
