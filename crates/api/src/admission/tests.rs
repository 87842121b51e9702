//! Table tests for `admit`: one row per defaulting or validation rule, with the rendered error
//! (Knative's message and path) or a check on the admitted object.

use super::*;
use crate::kinds;
use serde_json::json;

fn ctx() -> AdmissionContext {
    AdmissionContext::new("alice")
}

/// A Service named `hello` whose single container is `container`, plus `extra` merged into
/// the template spec.
fn svc_with(container: Value, extra: Value) -> Value {
    let mut spec = json!({"containers": [container]});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service",
        "metadata": {"name": "hello", "namespace": "default"},
        "spec": {"template": {"spec": spec}}})
}

fn svc(container: Value) -> Value {
    svc_with(container, json!({}))
}

fn create(info: &ResourceInfo, v: Value) -> Result<Value, AdmissionError> {
    admit(info, Operation::Create, None, v, &ctx())
}

fn err_text(r: Result<Value, AdmissionError>) -> String {
    match r {
        Ok(v) => format!("OK {v}"),
        Err(e) => e.to_string(),
    }
}

/// Sets `v[path...] = value`.
fn set(mut v: Value, path: &[&str], value: Value) -> Value {
    let mut cur = &mut v;
    for p in path {
        cur = match p.parse::<usize>() {
            Ok(i) => &mut cur[i],
            Err(_) => &mut cur[*p],
        };
    }
    *cur = value;
    v
}

#[test]
fn service_create_rules() {
    let img = json!({"image": "ghcr.io/knative/helloworld-go"});
    let table: Vec<(&str, Value, &str)> = vec![
        (
            "missing image",
            svc(json!({"name": "app"})),
            "missing field(s): spec.template.spec.containers[0].image",
        ),
        // Defaulting names the container and adds a probe before validation runs, as in Knative.
        (
            "empty container",
            svc(json!({})),
            "missing field(s): spec.template.spec.containers[0].image",
        ),
        (
            "no containers",
            svc_with(json!({"image": "x"}), json!({"containers": []})),
            "missing field(s): spec.template.spec.containers",
        ),
        (
            "bad image",
            svc(json!({"image": "Not/Valid"})),
            "Failed to parse image reference: spec.template.spec.containers[0].image (image: \"Not/Valid\", error: could not parse reference: Not/Valid)",
        ),
        (
            "reserved env",
            svc(
                json!({"image": "x", "env": [{"name": "PORT", "value": "1"}, {"name": "K_SERVICE"}]}),
            ),
            "\"K_SERVICE\" is a reserved environment variable: spec.template.spec.containers[0].env[1].name; \"PORT\" is a reserved environment variable: spec.template.spec.containers[0].env[0].name",
        ),
        (
            "env without name",
            svc(json!({"image": "x", "env": [{"value": "1"}]})),
            "missing field(s): spec.template.spec.containers[0].env[0].name",
        ),
        (
            "fieldRef is feature-gated",
            svc(
                json!({"image": "x", "env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}),
            ),
            "must not set the field(s): spec.template.spec.containers[0].env[0].valueFrom.fieldRef",
        ),
        (
            "reserved port",
            svc(json!({"image": "x", "ports": [{"containerPort": 8012}]})),
            "invalid value: 8012 is a reserved port: spec.template.spec.containers[0].ports.containerPort (8012 is a reserved port, please use a different value)",
        ),
        (
            "port out of range",
            svc(json!({"image": "x", "ports": [{"containerPort": 70000}]})),
            "expected 0 <= 70000 <= 65535: spec.template.spec.containers[0].ports.containerPort",
        ),
        (
            "port name",
            svc(json!({"image": "x", "ports": [{"name": "grpc", "containerPort": 8080}]})),
            "Port name grpc is not allowed: spec.template.spec.containers[0].ports (Name must be empty, or one of: 'h2c', 'http1')",
        ),
        (
            "udp",
            svc(json!({"image": "x", "ports": [{"containerPort": 8080, "protocol": "UDP"}]})),
            "invalid value: UDP: spec.template.spec.containers[0].ports.protocol",
        ),
        (
            "host port",
            svc(json!({"image": "x", "ports": [{"containerPort": 8080, "hostPort": 80}]})),
            "must not set the field(s): spec.template.spec.containers[0].ports.hostPort",
        ),
        (
            "two ports",
            svc(json!({"image": "x", "ports": [{"containerPort": 8080}, {"containerPort": 8081}]})),
            "more than one container port is set: spec.template.spec.containers[*].ports (Only a single port is allowed across all containers)",
        ),
        (
            "container concurrency",
            svc_with(img.clone(), json!({"containerConcurrency": 1001})),
            "expected 0 <= 1001 <= 1000: spec.template.spec.containerConcurrency",
        ),
        (
            "negative concurrency",
            svc_with(img.clone(), json!({"containerConcurrency": -1})),
            "expected 0 <= -1 <= 1000: spec.template.spec.containerConcurrency",
        ),
        (
            "timeout",
            svc_with(img.clone(), json!({"timeoutSeconds": 601})),
            "expected 0 <= 601 <= 600: spec.template.spec.timeoutSeconds",
        ),
        (
            "affinity is feature-gated",
            svc_with(
                img.clone(),
                json!({"affinity": {}, "nodeSelector": {"a": "b"}}),
            ),
            "must not set the field(s): spec.template.spec.affinity, spec.template.spec.nodeSelector",
        ),
        (
            "automount true",
            svc_with(img.clone(), json!({"automountServiceAccountToken": true})),
            "must not set the field(s): spec.template.spec.automountServiceAccountToken",
        ),
        (
            "service account name",
            svc_with(img.clone(), json!({"serviceAccountName": "Bad_Name"})),
            "invalid value: Bad_Name: spec.template.spec.serviceAccountName (a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*'))",
        ),
        (
            "queue-proxy name",
            svc(json!({"name": "queue-proxy", "image": "x"})),
            "\"queue-proxy\" is a reserved container name: spec.template.spec.containers[0].name",
        ),
        (
            "lifecycle",
            svc(json!({"image": "x", "lifecycle": {"preStop": {}}, "stdin": true})),
            "must not set the field(s): spec.template.spec.containers[0].lifecycle, spec.template.spec.containers[0].stdin",
        ),
        (
            "two probe handlers",
            svc(json!({"image": "x", "livenessProbe": {"httpGet": {}, "tcpSocket": {}}})),
            "expected exactly one, got both: spec.template.spec.containers[0].livenessProbe.httpGet, spec.template.spec.containers[0].livenessProbe.tcpSocket",
        ),
        (
            "probe port name mismatch",
            svc(json!({"image": "x", "readinessProbe": {"httpGet": {"port": "admin"}}})),
            "invalid value: admin: spec.template.spec.containers[0].readinessProbe.httpGet.port (Probe port must match container port)",
        ),
        (
            "probe without handler",
            svc(json!({"image": "x", "livenessProbe": {"periodSeconds": 5}})),
            "expected exactly one, got neither: spec.template.spec.containers[0].livenessProbe.exec, spec.template.spec.containers[0].livenessProbe.grpc, spec.template.spec.containers[0].livenessProbe.httpGet, spec.template.spec.containers[0].livenessProbe.tcpSocket",
        ),
        (
            "readiness period zero with failure threshold",
            svc(json!({"image": "x", "readinessProbe": {"tcpSocket": {}, "failureThreshold": 2}})),
            "failureThreshold is disallowed when periodSeconds is zero: spec.template.spec.containers[0].readinessProbe.failureThreshold",
        ),
        (
            "run as user",
            svc(
                json!({"image": "x", "securityContext": {"runAsUser": -1, "capabilities": {"add": ["NET_ADMIN"]}}}),
            ),
            "expected 0 <= -1 <= 2147483647: spec.template.spec.containers[0].securityContext.runAsUser; must not set the field(s): spec.template.spec.containers[0].securityContext.capabilities.add",
        ),
        (
            "volume not mounted and mount without volume",
            svc_with(
                json!({"image": "x", "volumeMounts": [{"name": "nope", "mountPath": "/data", "readOnly": true}]}),
                json!({"volumes": [{"name": "cfg", "configMap": {"name": "c"}}]}),
            ),
            "volume with name \"cfg\" not mounted: spec.template.spec.volumes[0].name; volumeMount has no matching volume: spec.template.spec.containers[0].volumeMounts[0].name",
        ),
        (
            "reserved mount path",
            svc_with(
                json!({"image": "x", "volumeMounts": [{"name": "cfg", "mountPath": "/dev/"}]}),
                json!({"volumes": [{"name": "cfg", "secret": {"secretName": "s"}}]}),
            ),
            "mountPath \"/dev\" is a reserved path: spec.template.spec.containers[0].volumeMounts[0].mountPath",
        ),
        (
            "volume without source",
            svc_with(
                json!({"image": "x", "volumeMounts": [{"name": "v", "mountPath": "/v"}]}),
                json!({"volumes": [{"name": "v"}]}),
            ),
            "expected exactly one, got neither: spec.template.spec.volumes[0].configMap, spec.template.spec.volumes[0].emptyDir, spec.template.spec.volumes[0].projected, spec.template.spec.volumes[0].secret",
        ),
        (
            "pvc is feature-gated",
            svc_with(
                json!({"image": "x", "volumeMounts": [{"name": "v", "mountPath": "/v"}]}),
                json!({"volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "c", "readOnly": true}}]}),
            ),
            "Persistent volume claim support is disabled, but found persistent volume claim c: spec.template.spec.volumes[0]; must not set the field(s): spec.template.spec.volumes[0].persistentVolumeClaim; volume is readOnly but volume mount is not: spec.template.spec.containers[0].volumeMounts[0].readOnly",
        ),
        (
            "bad name",
            set(svc(img.clone()), &["metadata", "name"], json!("Hello")),
            "not a DNS 1035 label: [a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')]: metadata.name",
        ),
        (
            "long name",
            set(
                svc(img.clone()),
                &["metadata", "name"],
                json!("a".repeat(64)),
            ),
            "not a DNS 1035 label: [must be no more than 63 characters]: metadata.name",
        ),
        (
            "no name",
            set(svc(img.clone()), &["metadata", "name"], json!("")),
            "name or generateName is required: metadata.name",
        ),
        (
            "autoscaling annotation on the service",
            set(
                svc(img.clone()),
                &["metadata", "annotations"],
                json!({"autoscaling.knative.dev/min-scale": "1"}),
            ),
            "invalid key name \"autoscaling.knative.dev/min-scale\": metadata.annotations (autoscaling annotations must be put under \"spec.template.metadata.annotations\" to work)",
        ),
        (
            "bad autoscaling annotation on the template",
            set(
                svc(img.clone()),
                &["spec", "template", "metadata"],
                json!({"annotations": {"autoscaling.knative.dev/min-scale": "-1", "autoscaling.knative.dev/window": "1s"}}),
            ),
            "expected 0 <= -1 <= 2147483647: spec.template.metadata.annotations.autoscaling.knative.dev/min-scale; expected 6s <= 1s <= 1h0m0s: spec.template.metadata.annotations.autoscaling.knative.dev/window",
        ),
        (
            "unknown networking annotation",
            set(
                svc(img.clone()),
                &["spec", "template", "metadata"],
                json!({"annotations": {"networking.knative.dev/foo": "x"}}),
            ),
            "invalid key name \"networking.knative.dev/foo\": spec.template.metadata.annotations",
        ),
        (
            "rollout duration",
            set(
                svc(img.clone()),
                &["metadata", "annotations"],
                json!({"serving.knative.dev/rollout-duration": "1.5s"}),
            ),
            "rollout-duration=1.5s is not at second precision: metadata.annotations.serving.knative.dev/rollout-duration",
        ),
        (
            "BYO name without prefix",
            set(
                svc(img.clone()),
                &["spec", "template", "metadata"],
                json!({"name": "other-v1"}),
            ),
            "invalid value: \"other-v1\" must have prefix \"hello-\": spec.template.metadata.name",
        ),
        (
            "BYO name with generateName",
            set(
                set(
                    svc(img.clone()),
                    &["spec", "template", "metadata"],
                    json!({"name": "hello-v1"}),
                ),
                &["metadata"],
                json!({"generateName": "hello-"}),
            ),
            "must not set the field(s): spec.template.metadata.name",
        ),
        (
            "traffic sum",
            set(
                svc(img.clone()),
                &["spec", "traffic"],
                json!([{"latestRevision": true, "percent": 90}]),
            ),
            "Traffic targets sum to 90, want 100: spec.traffic",
        ),
        (
            "configurationName in a service",
            set(
                svc(img.clone()),
                &["spec", "traffic"],
                json!([{"configurationName": "hello", "percent": 100}]),
            ),
            "must not set the field(s): spec.traffic[0].configurationName",
        ),
        (
            "duplicate tags",
            set(
                svc(img.clone()),
                &["spec", "traffic"],
                json!([
                {"tag": "a", "revisionName": "hello-00001", "percent": 50},
                {"tag": "a", "latestRevision": true, "percent": 50}]),
            ),
            "Multiple definitions for \"a\": spec.traffic[0].tag, spec.traffic[1].tag",
        ),
        (
            "latestRevision with revisionName",
            set(
                svc(img.clone()),
                &["spec", "traffic"],
                json!([{"revisionName": "hello-00001", "latestRevision": true, "percent": 100}]),
            ),
            "may not set revisionName \"hello-00001\" when latestRevision is true: spec.traffic[0].latestRevision",
        ),
        (
            "url in spec",
            set(
                svc(img.clone()),
                &["spec", "traffic"],
                json!([{"latestRevision": true, "percent": 100, "tag": "x", "url": "http://x"}]),
            ),
            "must not set the field(s): spec.traffic[0].url",
        ),
        (
            "all errors are collected",
            set(
                svc_with(
                    json!({"env": [{"name": "PORT"}]}),
                    json!({"timeoutSeconds": 9999}),
                ),
                &["spec", "traffic"],
                json!([{"latestRevision": true, "percent": 50}]),
            ),
            "\"PORT\" is a reserved environment variable: spec.template.spec.containers[0].env[0].name; Traffic targets sum to 50, want 100: spec.traffic; expected 0 <= 9999 <= 600: spec.template.spec.timeoutSeconds; missing field(s): spec.template.spec.containers[0].image",
        ),
        (
            "unknown field",
            svc(json!({"imagee": "x"})),
            "missing field(s): spec.template.spec.containers[0].image; unknown field \"imagee\": spec.template.spec.containers[0].imagee",
        ),
        (
            "wrong type",
            svc_with(img.clone(), json!({"containerConcurrency": "ten"})),
            "invalid type: string \"ten\", expected i64: spec.template.spec.containerConcurrency",
        ),
        (
            "bad quantity",
            svc(json!({"image": "x", "resources": {"limits": {"memory": "lots"}}})),
            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': \"lots\": spec.template.spec.containers[0].resources.limits.memory",
        ),
        (
            "legacy container",
            set(
                svc(img.clone()),
                &["spec", "template", "spec"],
                json!({"container": {"image": "x"}}),
            ),
            "container (one object) is the v1alpha1 shape: in v1 write spec.template.spec.containers: [ ... ] (a list): spec.template.spec.container",
        ),
    ];
    for (name, input, want) in table {
        assert_eq!(err_text(create(&kinds::SERVICES, input)), want, "{name}");
    }
}

#[test]
fn multi_container_rules() {
    let two = |a: Value, b: Value| {
        set(
            svc(json!({})),
            &["spec", "template", "spec", "containers"],
            json!([a, b]),
        )
    };
    let table: Vec<(&str, Value, &str)> = vec![
        (
            "no port",
            two(json!({"image": "a"}), json!({"image": "b"})),
            "missing field(s): spec.template.spec.containers[*].ports",
        ),
        (
            "duplicate names",
            two(
                json!({"name": "x", "image": "a", "ports": [{"containerPort": 8080}]}),
                json!({"name": "x", "image": "b"}),
            ),
            "duplicate container name \"x\": spec.template.spec.containers[1].name",
        ),
        (
            "sidecar probe",
            two(
                json!({"image": "a", "ports": [{"containerPort": 8080}]}),
                json!({"image": "b", "readinessProbe": {"tcpSocket": {"port": 9000}}}),
            ),
            "must not set the field(s): spec.template.spec.containers[1].readinessProbe.successThreshold, spec.template.spec.containers[1].readinessProbe.tcpSocket",
        ),
        (
            "sidecar may set PORT",
            two(
                json!({"image": "a", "ports": [{"containerPort": 8080}]}),
                json!({"image": "b", "env": [{"name": "PORT", "value": "9"}]}),
            ),
            "",
        ),
    ];
    for (name, input, want) in table {
        let got = create(&kinds::SERVICES, input);
        if want.is_empty() {
            assert!(got.is_ok(), "{name}: {got:?}");
        } else {
            assert_eq!(err_text(got), want, "{name}");
        }
    }
    // Default names for several unnamed containers.
    let out = create(
        &kinds::SERVICES,
        two(
            json!({"image": "a", "ports": [{"containerPort": 8080}]}),
            json!({"image": "b"}),
        ),
    )
    .unwrap_or_default();
    let names: Vec<&str> = out["spec"]["template"]["spec"]["containers"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["user-container-0", "user-container-1"]);
    assert!(
        out["spec"]["template"]["spec"]["containers"][1]
            .get("readinessProbe")
            .is_none()
    );
}

#[test]
fn service_defaults() {
    let out = create(
        &kinds::SERVICES,
        svc(json!({"image": "ghcr.io/knative/helloworld-go"})),
    );
    let out = out.unwrap_or_default();
    assert_eq!(
        out,
        json!({
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": {
                "name": "hello",
                "namespace": "default",
                "annotations": {
                    "serving.knative.dev/creator": "alice",
                    "serving.knative.dev/lastModifier": "alice"
                }
            },
            "spec": {
                "template": {"spec": {
                    "containers": [{
                        "name": "user-container",
                        "image": "ghcr.io/knative/helloworld-go",
                        "resources": {},
                        "readinessProbe": {"tcpSocket": {"port": 0}, "successThreshold": 1}
                    }],
                    "enableServiceLinks": false,
                    "containerConcurrency": 0,
                    "timeoutSeconds": 300
                }},
                "traffic": [{"latestRevision": true, "percent": 100}]
            }
        })
    );
}

#[test]
fn host_process_container_needs_no_image() {
    let out = create(
        &kinds::SERVICES,
        svc(json!({"command": ["python3", "-m", "http.server"]})),
    );
    let out = out.unwrap_or_default();
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["command"][0],
        "python3"
    );
    assert!(
        out["spec"]["template"]["spec"]["containers"][0]
            .get("image")
            .is_none()
    );
}

#[test]
fn wrong_type_and_legacy_versions() {
    let v = svc(json!({"image": "x"}));
    let r = create(&kinds::ROUTES, v.clone());
    assert_eq!(
        r,
        Err(AdmissionError::BadRequest(
            "the kind in the data (Service) does not match the expected kind (Route)".into()
        ))
    );
    let old = set(
        v.clone(),
        &["apiVersion"],
        json!("serving.knative.dev/v1alpha1"),
    );
    let old = set(
        old,
        &["spec"],
        json!({"runLatest": {"configuration": {"revisionTemplate": {"spec": {"container": {"image": "x"}}}}}}),
    );
    match create(&kinds::SERVICES, old) {
        Err(AdmissionError::BadRequest(m)) => {
            assert!(m.starts_with("the API version in the data (serving.knative.dev/v1alpha1) does not match the expected API version (serving.knative.dev/v1); apiVersion: "), "{m}");
            assert!(
                m.contains("spec.runLatest: runLatest is the v1alpha1 shape"),
                "{m}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        create(&kinds::SERVICES, json!([])),
        Err(AdmissionError::BadRequest(_))
    ));
    let no_kind = json!({"apiVersion": "serving.knative.dev/v1"});
    assert!(matches!(
        create(&kinds::SERVICES, no_kind),
        Err(AdmissionError::BadRequest(_))
    ));
}

#[test]
fn nulls_are_absent() {
    let v = set(
        svc(json!({"image": "x", "env": null})),
        &["metadata", "creationTimestamp"],
        Value::Null,
    );
    assert!(create(&kinds::SERVICES, v).is_ok());
}

fn update(
    info: &ResourceInfo,
    old: &Value,
    new: Value,
    user: &str,
) -> Result<Value, AdmissionError> {
    admit(
        info,
        Operation::Update,
        Some(old),
        new,
        &AdmissionContext::new(user),
    )
}

#[test]
fn service_updates() {
    let manifest = set(
        svc(json!({"image": "x"})),
        &["spec", "template", "metadata"],
        json!({"name": "hello-v1"}),
    );
    let stored = create(&kinds::SERVICES, manifest.clone()).unwrap_or_default();

    // Re-applying the same manifest (no annotations, not defaulted) is fine and keeps the
    // creator and lastModifier.
    let again = update(&kinds::SERVICES, &stored, manifest.clone(), "bob").unwrap_or_default();
    assert_eq!(again, stored);

    // Changing the template but not its BYO name is refused.
    let changed = set(
        manifest.clone(),
        &["spec", "template", "spec", "containers", "0", "image"],
        json!("y"),
    );
    let changed = set(
        changed,
        &["spec", "template", "spec", "containers"],
        json!([{"image": "y"}]),
    );
    assert_eq!(
        err_text(update(&kinds::SERVICES, &stored, changed.clone(), "bob")),
        "Saw the following changes without a name change (-old +new): spec.template.metadata.name (spec.containers[0].image: -\"x\" +\"y\")"
    );

    // With a new name it is a new revision; lastModifier moves, creator stays.
    let renamed = set(
        changed,
        &["spec", "template", "metadata", "name"],
        json!("hello-v2"),
    );
    let out = update(&kinds::SERVICES, &stored, renamed, "bob").unwrap_or_default();
    assert_eq!(
        out["metadata"]["annotations"]["serving.knative.dev/creator"],
        "alice"
    );
    assert_eq!(
        out["metadata"]["annotations"]["serving.knative.dev/lastModifier"],
        "bob"
    );
    assert_eq!(out["spec"]["template"]["spec"]["timeoutSeconds"], 300);
    assert!(
        out["spec"]["template"]["spec"]
            .get("enableServiceLinks")
            .is_none(),
        "Knative defaults enableServiceLinks on create only"
    );

    // A label-only change leaves lastModifier alone.
    let labelled = set(
        stored.clone(),
        &["metadata", "labels"],
        json!({"team": "a"}),
    );
    let out = update(&kinds::SERVICES, &stored, labelled, "bob").unwrap_or_default();
    assert_eq!(
        out["metadata"]["annotations"]["serving.knative.dev/lastModifier"],
        "alice"
    );

    // The creator cannot be rewritten.
    let forged = set(
        stored.clone(),
        &["metadata", "annotations", "serving.knative.dev/creator"],
        json!("mallory"),
    );
    assert_eq!(
        err_text(update(&kinds::SERVICES, &stored, forged, "bob")),
        "annotation value is immutable: metadata.annotations.serving.knative.dev/creator"
    );
}

fn revision(spec: Value) -> Value {
    json!({"apiVersion": "serving.knative.dev/v1", "kind": "Revision",
        "metadata": {"name": "hello-00001", "namespace": "default"}, "spec": spec})
}

#[test]
fn revisions() {
    // Knative's webhook lets a Revision be created directly; it is defaulted like a template.
    let out = create(
        &kinds::REVISIONS,
        revision(json!({"containers": [{"image": "x"}]})),
    )
    .unwrap_or_default();
    assert_eq!(out["spec"]["timeoutSeconds"], 300);
    assert_eq!(out["spec"]["containers"][0]["name"], "user-container");
    assert!(
        out["metadata"].get("annotations").is_none(),
        "no user stamps on revisions"
    );

    // Autoscaling annotations belong on revisions and are checked there.
    let annotated = set(
        revision(json!({"containers": [{"image": "x"}]})),
        &["metadata", "annotations"],
        json!({"autoscaling.knative.dev/max-scale": "x"}),
    );
    assert_eq!(
        err_text(create(&kinds::REVISIONS, annotated)),
        "invalid value: x: metadata.annotations.autoscaling.knative.dev/max-scale"
    );

    // The spec is immutable; metadata may change.
    let changed = set(out.clone(), &["spec", "timeoutSeconds"], json!(10));
    assert_eq!(
        err_text(update(&kinds::REVISIONS, &out, changed, "u")),
        "Immutable fields changed (-old +new): spec (timeoutSeconds: -300 +10)"
    );
    let relabelled = set(out.clone(), &["metadata", "labels"], json!({"a": "b"}));
    assert!(update(&kinds::REVISIONS, &out, relabelled, "u").is_ok());

    // A configuration label must be backed by an owner reference.
    let labelled = set(
        revision(json!({"containers": [{"image": "x"}]})),
        &["metadata", "labels"],
        json!({"serving.knative.dev/configuration": "hello"}),
    );
    assert_eq!(
        err_text(create(&kinds::REVISIONS, labelled.clone())),
        "missing field(s): metadata.labels.serving.knative.dev/configuration"
    );
    let owned = set(
        labelled,
        &["metadata", "ownerReferences"],
        json!([{"apiVersion": "serving.knative.dev/v1", "kind": "Configuration", "name": "hello", "uid": "u1", "controller": true}]),
    );
    assert!(create(&kinds::REVISIONS, owned).is_ok());
}

#[test]
fn configurations_and_routes() {
    let cfg = json!({"apiVersion": "serving.knative.dev/v1", "kind": "Configuration",
        "metadata": {"name": "hello"}, "spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}});
    let out = create(&kinds::CONFIGURATIONS, cfg.clone()).unwrap_or_default();
    assert_eq!(
        out["metadata"]["annotations"]["serving.knative.dev/creator"],
        "alice"
    );
    assert_eq!(out["spec"]["template"]["spec"]["timeoutSeconds"], 300);

    // Owned by a Service: no user stamps.
    let owned = set(
        cfg.clone(),
        &["metadata", "ownerReferences"],
        json!([{"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "hello", "uid": "u"}]),
    );
    let owned = set(
        owned,
        &["metadata", "labels"],
        json!({"serving.knative.dev/service": "hello"}),
    );
    let out = create(&kinds::CONFIGURATIONS, owned).unwrap_or_default();
    assert!(out["metadata"].get("annotations").is_none());

    let route = |traffic: Value| {
        json!({"apiVersion": "serving.knative.dev/v1", "kind": "Route",
        "metadata": {"name": "hello"}, "spec": {"traffic": traffic}})
    };
    assert_eq!(
        err_text(create(&kinds::ROUTES, route(json!([])))),
        "Traffic targets sum to 0, want 100: spec.traffic"
    );
    assert_eq!(
        err_text(create(&kinds::ROUTES, route(json!([{"percent": 100}])))),
        "expected exactly one, got neither: spec.traffic[0].configurationName, spec.traffic[0].revisionName"
    );
    let ok = create(
        &kinds::ROUTES,
        route(json!([{"configurationName": "hello", "percent": 60, "tag": "a"}, {"revisionName": "hello-00001", "percent": 40, "tag": "b"}])),
    )
    .unwrap_or_default();
    assert_eq!(ok["spec"]["traffic"][0]["latestRevision"], true);
    assert_eq!(ok["spec"]["traffic"][1]["latestRevision"], false);
}

#[test]
fn core_kinds() {
    let ns = create(
        &kinds::NAMESPACES,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}),
    );
    assert_eq!(ns.unwrap_or_default()["status"]["phase"], "Active");
    assert_eq!(
        err_text(create(
            &kinds::NAMESPACES,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a.b"}})
        )),
        "invalid value: a.b: metadata.name (must not contain dots)"
    );
    let s = create(
        &kinds::SECRETS,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"pw": "hunter2", "a": "ab"}}),
    )
    .unwrap_or_default();
    assert_eq!(s["data"], json!({"a": "YWI=", "pw": "aHVudGVyMg=="}));
    assert_eq!(s["type"], "Opaque");
    assert!(s.get("stringData").is_none());
    assert_eq!(
        err_text(create(
            &kinds::CONFIGMAPS,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"bad key": "x"}})
        )),
        "invalid value: bad key: data[bad key] (a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+'))"
    );
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}, "immutable": true});
    let stored = create(&kinds::CONFIGMAPS, cm.clone()).unwrap_or_default();
    let changed = set(cm, &["data", "k"], json!("w"));
    assert_eq!(
        err_text(update(&kinds::CONFIGMAPS, &stored, changed, "u")),
        "field is immutable when `immutable` is set: data"
    );
    let ev = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "hello.1"},
        "involvedObject": {"kind": "Service", "name": "hello"}, "reason": "Created", "type": "Normal"});
    assert!(create(&kinds::EVENTS, ev).is_ok());
}

#[test]
fn error_codes() {
    assert_eq!(AdmissionError::BadRequest(String::new()).code(), 400);
    assert_eq!(
        AdmissionError::Invalid(FieldErrors::new()).reason(),
        "Invalid"
    );
}

#[test]
fn base64_matches_rfc4648() {
    for (i, o) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64(i.as_bytes()), o);
    }
}

#[test]
fn every_unknown_field_is_reported_with_the_other_mistakes() {
    let mut v = svc_with(
        json!({"imagee": "x", "image": "y", "portz": 1, "env": [{"name": "PORT", "value": "1"}]}),
        json!({"containerConcurrencyy": 3}),
    );
    v["spec"]["traffic"] = json!([{"latestRevision": true, "percent": 90}]);
    let Err(AdmissionError::Invalid(errs)) = create(&kinds::SERVICES, v) else {
        panic!("expected Invalid");
    };
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    for want in [
        "spec.template.spec.containers[0].imagee",
        "spec.template.spec.containers[0].portz",
        "spec.template.spec.containerConcurrencyy",
        "spec.template.spec.containers[0].env[0].name",
        "spec.traffic",
    ] {
        assert!(
            paths.iter().any(|p| p.starts_with(want)),
            "{want} missing from {paths:?}"
        );
    }
    // A wrong type still stops decoding, naming its path.
    let wrong = svc(json!({"image": "x", "ports": "8080"}));
    let text = err_text(create(&kinds::SERVICES, wrong));
    assert!(
        text.contains("spec.template.spec.containers[0].ports"),
        "{text}"
    );
}
