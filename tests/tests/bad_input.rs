//! Bad input is refused with the details a user needs, and refusing changes nothing stored:
//! malformed YAML (line and column), unknown kinds (what is served), invalid Services (422 with
//! every broken field), stale updates (409), deletes of missing objects (404).

mod common;

use common::*;
use serde_json::{Value, json};

/// Everything a user could have changed: every served Knative object and namespace, with the
/// store's resourceVersion.
fn snapshot(d: &Daemon) -> Vec<(String, Value)> {
    let mut paths: Vec<String> = ["services", "configurations", "revisions", "routes"]
        .iter()
        .map(|p| format!("{SERVING}/{p}"))
        .collect();
    paths.push("/api/v1/namespaces".into());
    paths.push("/api/v1/configmaps".into());
    paths
        .into_iter()
        .map(|p| {
            let l = d.get_json(&p);
            (p, l)
        })
        .collect()
}

fn services_path() -> String {
    serving_path("default", "services", None)
}

/// A Service with three validation mistakes (no decoding mistake).
fn invalid_service() -> Value {
    json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": "bad"},
        "spec": {
            "template": {"spec": {"containers": [{
                "image": "nginx",
                "env": [{"name": "PORT", "value": "8081"}],
            }]}},
            "traffic": [
                {"latestRevision": true, "percent": 40},
                {"revisionName": "bad-00001", "percent": 50, "tag": "Bad_Tag"},
            ],
        },
    })
}

const PORT_PATH: &str = "spec.template.spec.containers[0].env[0].name";

#[track_caller]
fn causes(status: &Value) -> Vec<String> {
    status["details"]["causes"]
        .as_array()
        .unwrap_or_else(|| panic!("no details.causes in {status}"))
        .iter()
        .map(|c| s(c, "/field").to_string())
        .collect()
}

#[track_caller]
fn assert_invalid(resp: &Response) -> Value {
    assert_eq!(resp.status, 422, "{}", resp.body);
    let st = resp.json();
    assert_eq!(st["kind"], "Status", "{st}");
    assert_eq!(st["status"], "Failure", "{st}");
    assert_eq!(st["reason"], "Invalid", "{st}");
    assert_eq!(st["code"], 422, "{st}");
    st
}

/// The traffic paths: the sum at `spec.traffic`, the tag somewhere under `spec.traffic` naming
/// `tag` (Knative writes `spec.traffic.tag[1]` for ErrInvalidArrayValue).
#[track_caller]
fn assert_traffic_causes(fields: &[String]) {
    assert!(fields.iter().any(|f| f == "spec.traffic"), "{fields:?}");
    assert!(
        fields
            .iter()
            .any(|f| f.starts_with("spec.traffic") && f.contains("tag") && f.contains("[1]")),
        "{fields:?}"
    );
}

#[test]
fn malformed_yaml_names_line_and_column_and_stores_nothing() {
    let d = Daemon::start();
    let before = snapshot(&d);
    // The first document is fine; the second has an unclosed flow sequence on line 9.
    let text = format!(
        "{}---\napiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n  name: broken\n  labels: [a, b\n",
        service_yaml("fine", "x")
    );
    let line = text
        .lines()
        .position(|l| l.contains("labels: [a, b"))
        .unwrap()
        + 1;
    let file = d.scratch.join("broken.yaml");
    std::fs::write(&file, &text).unwrap();
    let out = d.wisp(&["apply", "-f", file.to_str().unwrap()]).failure();
    assert!(out.stderr.contains("broken.yaml"), "names the file: {out}");
    let expected = format!("line {line}, column ");
    assert!(
        out.stderr.contains(&expected),
        "names line {line} and a column: {out}"
    );
    assert!(out.stdout.is_empty(), "{out}");
    assert_eq!(snapshot(&d), before, "a broken manifest must store nothing");

    // Same from stdin.
    let out = d.wisp_stdin(&["apply", "-f", "-"], Some(&text)).failure();
    assert!(out.stderr.contains(&expected), "{out}");
    assert_eq!(snapshot(&d), before);
}

#[test]
fn unknown_kind_lists_served_kinds() {
    let d = Daemon::start();
    let before = snapshot(&d);
    let manifest = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n";
    let out = d
        .wisp_stdin(&["apply", "-f", "-"], Some(manifest))
        .failure();
    assert!(out.stderr.contains("Deployment"), "{out}");
    for served in [
        "Service (serving.knative.dev/v1)",
        "Configuration (serving.knative.dev/v1)",
        "Revision (serving.knative.dev/v1)",
        "Route (serving.knative.dev/v1)",
    ] {
        assert!(out.stderr.contains(served), "lists {served}: {out}");
    }
    assert_eq!(snapshot(&d), before);

    // The REST API: an unknown resource is a 404 Status.
    let r = d.request("GET", "/apis/apps/v1/namespaces/default/deployments", None);
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.json()["kind"], "Status");
}

#[test]
fn invalid_service_is_422_with_every_field_and_stores_nothing() {
    let d = Daemon::start();
    let before = snapshot(&d);
    let st = assert_invalid(&d.post_json(&services_path(), &invalid_service()));
    let fields = causes(&st);
    assert!(fields.iter().any(|f| f == PORT_PATH), "{fields:?}");
    assert_traffic_causes(&fields);
    assert_eq!(fields.len(), 3, "exactly the three mistakes: {st}");
    assert_eq!(st["details"]["name"], "bad");
    assert_eq!(st["details"]["kind"], "Service");
    assert!(s(&st, "/message").contains(PORT_PATH), "{st}");

    // Each mistake alone is refused at its own path.
    let mut port_only = invalid_service();
    port_only["spec"].as_object_mut().unwrap().remove("traffic");
    assert_eq!(
        causes(&assert_invalid(&d.post_json(&services_path(), &port_only))),
        [PORT_PATH]
    );
    let mut sum_only = invalid_service();
    sum_only["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("env");
    sum_only["spec"]["traffic"][1]
        .as_object_mut()
        .unwrap()
        .remove("tag");
    assert_eq!(
        causes(&assert_invalid(&d.post_json(&services_path(), &sum_only))),
        ["spec.traffic"]
    );

    // An unknown field is named with its full path.
    let mut typo = service_json("typo", "x");
    typo["spec"]["template"]["spec"]["containers"][0]["imagee"] = json!("nginx");
    let st = assert_invalid(&d.post_json(&services_path(), &typo));
    assert_eq!(
        causes(&st),
        ["spec.template.spec.containers[0].imagee"],
        "{st}"
    );

    // dryRun validates the same way.
    let st = assert_invalid(&d.post_json(
        &format!("{}?dryRun=All", services_path()),
        &invalid_service(),
    ));
    assert_eq!(causes(&st).len(), 3);

    assert_eq!(snapshot(&d), before, "refused writes must store nothing");
}

#[test]
fn unknown_field_is_reported_with_the_other_mistakes() {
    let d = Daemon::start();
    let mut svc = invalid_service();
    svc["spec"]["template"]["spec"]["containers"][0]["imagee"] = json!("nginx");
    let st = assert_invalid(&d.post_json(&services_path(), &svc));
    let fields = causes(&st);
    assert!(
        fields
            .iter()
            .any(|f| f == "spec.template.spec.containers[0].imagee"),
        "{fields:?}"
    );
    assert!(fields.iter().any(|f| f == PORT_PATH), "{fields:?}");
    assert_traffic_causes(&fields);

    // Two typos: both named (Kubernetes' strict decoding lists every unknown field).
    let mut typos = service_json("typos", "x");
    typos["spec"]["template"]["spec"]["containers"][0]["imagee"] = json!("nginx");
    typos["spec"]["template"]["spec"]["containers"][0]["portz"] = json!([]);
    let fields = causes(&assert_invalid(&d.post_json(&services_path(), &typos)));
    assert!(
        fields.contains(&"spec.template.spec.containers[0].imagee".to_string())
            && fields.contains(&"spec.template.spec.containers[0].portz".to_string()),
        "{fields:?}"
    );
}

#[test]
fn invalid_service_via_wisp_apply_shows_every_field() {
    let d = Daemon::start();
    let before = snapshot(&d);
    let manifest = "apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: bad
spec:
  template:
    spec:
      containers:
        - image: nginx
          env:
            - name: PORT
              value: \"8081\"
  traffic:
    - latestRevision: true
      percent: 40
    - revisionName: bad-00001
      percent: 50
      tag: Bad_Tag
";
    let out = d
        .wisp_stdin(&["apply", "-f", "-"], Some(manifest))
        .failure();
    assert!(out.stderr.contains("\"bad\" is invalid"), "{out}");
    assert!(out.stderr.contains(PORT_PATH), "{out}");
    assert!(out.stderr.contains("spec.traffic"), "{out}");
    assert!(out.stderr.contains("sum to 90"), "{out}");
    assert!(out.stderr.contains("tag"), "{out}");
    assert_eq!(snapshot(&d), before, "a refused apply must store nothing");

    // A typo via apply: the path of the unknown field.
    let typo =
        service_yaml("typo", "x").replace("- command:", "- imagee: nginx\n          command:");
    let out = d.wisp_stdin(&["apply", "-f", "-"], Some(&typo)).failure();
    assert!(
        out.stderr
            .contains("spec.template.spec.containers[0].imagee"),
        "{out}"
    );

    // A refused object in a multi-document file does not stop the valid ones, and the exit
    // code still says something failed (as kubectl apply does).
    let both = format!("{}---\n{manifest}", service_yaml("good", "x"));
    let out = d.wisp_stdin(&["apply", "-f", "-"], Some(&both)).failure();
    assert!(
        out.stdout
            .contains("service.serving.knative.dev/good created"),
        "{out}"
    );
    assert!(
        d.get_opt(&serving_path("default", "services", Some("bad")))
            .is_none()
    );
    d.get_json(&serving_path("default", "services", Some("good")));
}

#[test]
fn stale_update_conflicts_and_missing_delete_is_404() {
    let d = Daemon::start();
    let created = d.post_json(&services_path(), &service_json("cas", "one"));
    assert_eq!(created.status, 201, "{}", created.body);
    let created = created.json();
    let path = serving_path("default", "services", Some("cas"));

    // A fresh update succeeds and moves the resourceVersion on.
    // (The controller writes the status concurrently, so a 409 here is retried as a client
    // would.)
    let (next, current) = wait_for("an update to succeed", || {
        let mut next = d.get_json(&path);
        next["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = json!("two");
        let r = d.put_json(&path, &next);
        match r.status {
            200 => Ok((next, r.json())),
            409 => Err(r.body),
            _ => panic!("PUT: {}", r.body),
        }
    });
    let stale_rv = rv(&next);
    assert!(rv(&current) > stale_rv);
    assert_eq!(current["metadata"]["uid"], created["metadata"]["uid"]);

    // The same body again, with the now stale resourceVersion: 409, nothing written.
    let mut stale = next.clone();
    stale["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = json!("three");
    stale["metadata"]["resourceVersion"] = json!(stale_rv.to_string());
    let r = d.put_json(&path, &stale);
    assert_eq!(r.status, 409, "{}", r.body);
    let st = r.json();
    assert_eq!(st["kind"], "Status");
    assert_eq!(st["reason"], "Conflict");
    assert_eq!(st["code"], 409);
    let stored = d.get_json(&path);
    assert_eq!(
        s(&stored, "/spec/template/spec/containers/0/env/0/value"),
        "two",
        "a stale write must not land"
    );
    // (The controller may have written statuses meanwhile; the Service itself is unchanged.)
    assert_eq!(stored["spec"], current["spec"]);
    assert_eq!(
        stored["metadata"]["generation"],
        current["metadata"]["generation"]
    );

    // An invalid update is 422 and leaves the stored object alone.
    let mut invalid = stored.clone();
    invalid["spec"]["template"]["spec"]["containers"][0]["env"][0]["name"] = json!("PORT");
    let st = assert_invalid(&d.put_json(&path, &invalid));
    assert_eq!(causes(&st), [PORT_PATH]);
    assert_eq!(d.get_json(&path)["spec"], current["spec"]);

    // Creating it again: 409 AlreadyExists.
    let r = d.post_json(&services_path(), &service_json("cas", "x"));
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.json()["reason"], "AlreadyExists");
    assert_eq!(
        d.get_json(&path)["metadata"]["uid"],
        created["metadata"]["uid"]
    );

    // Deleting what does not exist: 404 Status naming it, nothing deleted. (First let the
    // controller finish the revision of the accepted update, so nothing else moves.)
    wait_for("cas-00002", || {
        d.get_opt(&serving_path("default", "revisions", Some("cas-00002")))
            .ok_or_else(|| "absent".to_string())
    });
    let before = snapshot(&d);
    let r = d.request(
        "DELETE",
        &serving_path("default", "services", Some("missing")),
        None,
    );
    assert_eq!(r.status, 404, "{}", r.body);
    let st = r.json();
    assert_eq!(st["kind"], "Status");
    assert_eq!(st["reason"], "NotFound");
    assert_eq!(st["code"], 404);
    assert!(s(&st, "/message").contains("missing"), "{st}");
    let out = d.wisp(&["delete", "ksvc", "missing"]).failure();
    assert!(out.stderr.contains("missing"), "{out}");
    let out = d.kubectl(&["delete", "ksvc", "missing"]).failure();
    assert!(
        out.stderr.contains("NotFound") || out.stderr.contains("not found"),
        "{out}"
    );
    let still = d.get_json(&path);
    assert_eq!(still["metadata"]["uid"], created["metadata"]["uid"]);
    let after_names: Vec<Vec<String>> = snapshot(&d).iter().map(|(_, l)| names(l)).collect();
    let before_names: Vec<Vec<String>> = before.iter().map(|(_, l)| names(l)).collect();
    assert_eq!(after_names, before_names);
}
