//! Pure builders: the children an object should have (Knative's `resources.Make*`).
//!
//! Reconcilers compare what these return with what the cache holds and write only the
//! difference, so the builders decide *what*, and the reconcilers only decide *whether to
//! write*. Everything here is a function of its inputs, tested by tables.

use std::collections::BTreeMap;

use wisp_api::meta::{ObjectMeta, controller_owner_ref};
use wisp_api::naming;
use wisp_api::serving::{
    self, Configuration, ConfigurationSpec, Revision, Route, RouteSpec, Service, keys,
};

/// kubectl's bookkeeping annotation: never copied to children.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

fn child_annotations(parent: &ObjectMeta) -> BTreeMap<String, String> {
    parent
        .annotations
        .iter()
        .filter(|(k, _)| *k != LAST_APPLIED)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn child_labels(service: &Service) -> BTreeMap<String, String> {
    let mut labels = service.metadata.labels.clone();
    labels.insert(keys::SERVICE_LABEL.into(), service.metadata.name.clone());
    labels.insert(keys::SERVICE_UID_LABEL.into(), service.metadata.uid.clone());
    labels
}

fn owned_by(
    owner: &ObjectMeta,
    kind: &str,
    name: &str,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
) -> ObjectMeta {
    ObjectMeta {
        name: name.to_string(),
        namespace: owner.namespace.clone(),
        labels,
        annotations,
        owner_references: vec![controller_owner_ref(
            serving::API_VERSION,
            kind,
            &owner.name,
            &owner.uid,
        )],
        ..ObjectMeta::default()
    }
}

/// The Configuration a Service owns: same name, the Service's template.
pub fn make_configuration(service: &Service) -> Configuration {
    let mut c = Configuration::new(&service.metadata.namespace, &service.metadata.name);
    c.metadata = owned_by(
        &service.metadata,
        Service::KIND,
        &service.metadata.name,
        child_labels(service),
        child_annotations(&service.metadata),
    );
    c.spec = ConfigurationSpec {
        template: service.spec.template.clone(),
    };
    c
}

/// The Route a Service owns: same name, the Service's traffic pointed at its Configuration.
pub fn make_route(service: &Service) -> Route {
    let mut r = Route::new(&service.metadata.namespace, &service.metadata.name);
    r.metadata = owned_by(
        &service.metadata,
        Service::KIND,
        &service.metadata.name,
        child_labels(service),
        child_annotations(&service.metadata),
    );
    r.spec = RouteSpec {
        traffic: wisp_api::traffic::route_traffic_for_service(
            &service.metadata.name,
            &service.spec.traffic,
        ),
    };
    r
}

/// The name the Configuration's current template gives its Revision: the bring-your-own name,
/// or `{config}-{generation:05}`.
pub fn revision_name(config: &Configuration) -> String {
    let byo = &config.spec.template.metadata.name;
    if byo.is_empty() {
        naming::revision_name(&config.metadata.name, config.metadata.generation)
    } else {
        byo.clone()
    }
}

/// The immutable Revision for the Configuration's current generation.
pub fn make_revision(config: &Configuration) -> Revision {
    let template = &config.spec.template;
    let name = revision_name(config);
    let mut labels = template.metadata.labels.clone();
    labels.insert(
        keys::CONFIGURATION_LABEL.into(),
        config.metadata.name.clone(),
    );
    labels.insert(
        keys::CONFIGURATION_GENERATION_LABEL.into(),
        config.metadata.generation.to_string(),
    );
    labels.insert(
        keys::CONFIGURATION_UID_LABEL.into(),
        config.metadata.uid.clone(),
    );
    for key in [keys::SERVICE_LABEL, keys::SERVICE_UID_LABEL] {
        match config.metadata.labels.get(key) {
            Some(v) => labels.insert(key.into(), v.clone()),
            None => labels.remove(key),
        };
    }
    let mut annotations = template.metadata.annotations.clone();
    if let Some(who) = config.metadata.annotations.get(keys::UPDATER_ANNOTATION) {
        annotations.insert(keys::CREATOR_ANNOTATION.into(), who.clone());
    }
    let mut r = Revision::new(&config.metadata.namespace, &name);
    r.metadata = owned_by(
        &config.metadata,
        Configuration::KIND,
        &name,
        labels,
        annotations,
    );
    r.spec = template.spec.clone();
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use wisp_api::serving::TrafficTarget;

    fn service() -> Service {
        let mut s = Service::new("default", "hello");
        s.metadata.uid = "uid-1".into();
        s.metadata.labels.insert("team".into(), "a".into());
        s.metadata
            .annotations
            .insert(LAST_APPLIED.into(), "{}".into());
        s.metadata
            .annotations
            .insert(keys::UPDATER_ANNOTATION.into(), "alice".into());
        s.spec
            .template
            .metadata
            .labels
            .insert("tpl".into(), "x".into());
        s.spec.traffic = vec![
            TrafficTarget {
                latest_revision: Some(true),
                percent: Some(80),
                ..Default::default()
            },
            TrafficTarget {
                revision_name: "hello-00001".into(),
                percent: Some(20),
                tag: "old".into(),
                ..Default::default()
            },
        ];
        s
    }

    #[test]
    fn configuration_and_route_are_owned_and_labelled() {
        let s = service();
        for meta in [make_configuration(&s).metadata, make_route(&s).metadata] {
            assert_eq!(meta.name, "hello");
            assert_eq!(meta.namespace, "default");
            assert_eq!(meta.labels["serving.knative.dev/service"], "hello");
            assert_eq!(meta.labels["serving.knative.dev/serviceUID"], "uid-1");
            assert_eq!(meta.labels["team"], "a");
            assert!(!meta.annotations.contains_key(LAST_APPLIED));
            let owner = meta.controller_ref().unwrap();
            assert_eq!(
                (owner.kind.as_str(), owner.uid.as_str()),
                ("Service", "uid-1")
            );
        }
        let r = make_route(&s);
        assert_eq!(r.spec.traffic[0].configuration_name, "hello");
        assert_eq!(r.spec.traffic[1].configuration_name, "");
        assert_eq!(r.spec.traffic[1].revision_name, "hello-00001");
        assert_eq!(make_configuration(&s).spec.template, s.spec.template);
    }

    #[test]
    fn revisions_are_named_by_generation_or_byo() {
        let mut c = make_configuration(&service());
        c.metadata.uid = "cfg-uid".into();
        c.metadata.generation = 3;
        let r = make_revision(&c);
        assert_eq!(r.metadata.name, "hello-00003");
        assert_eq!(
            r.metadata.labels["serving.knative.dev/configuration"],
            "hello"
        );
        assert_eq!(
            r.metadata.labels["serving.knative.dev/configurationGeneration"],
            "3"
        );
        assert_eq!(r.metadata.labels["serving.knative.dev/service"], "hello");
        assert_eq!(r.metadata.labels["tpl"], "x");
        assert!(
            !r.metadata.labels.contains_key("team"),
            "configuration labels are not copied"
        );
        assert_eq!(
            r.metadata.annotations["serving.knative.dev/creator"],
            "alice"
        );
        assert_eq!(r.metadata.controller_ref().unwrap().uid, "cfg-uid");
        c.spec.template.metadata.name = "hello-blue".into();
        assert_eq!(make_revision(&c).metadata.name, "hello-blue");
        let mut long = c.clone();
        long.metadata.name = "a".repeat(70);
        long.spec.template.metadata.name.clear();
        assert!(make_revision(&long).metadata.name.len() <= 63);
    }
}
