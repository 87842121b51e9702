//! Bring-your-own revision names (`spec.template.metadata.name`), as in Knative's blue/green
//! samples: the name is used as is, a template change needs a new name, and traffic can pin
//! the named revisions.

mod common;

use common::*;
use serde_json::{Value, json};

fn byo_yaml(revision: &str, target: &str) -> String {
    format!(
        "apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hello
spec:
  template:
    metadata:
      name: {revision}
    spec:
      containers:
        - command: [\"python3\", \"-m\", \"http.server\", \"--bind\", \"127.0.0.1\", \"$(PORT)\"]
          env:
            - name: TARGET
              value: {target}
"
    )
}

fn revision(d: &Daemon, name: &str) -> Option<Value> {
    d.get_opt(&serving_path("default", "revisions", Some(name)))
}

fn wait_revision(d: &Daemon, name: &str) -> Value {
    wait_for(&format!("revision {name}"), || {
        revision(d, name).ok_or_else(|| "absent".to_string())
    })
}

#[test]
fn byo_revision_names() {
    let d = Daemon::start();
    let svc_path = serving_path("default", "services", Some("hello"));
    d.wisp_stdin(&["apply", "-f", "-"], Some(&byo_yaml("hello-blue", "blue")))
        .success();
    let blue = wait_revision(&d, "hello-blue");
    let labels = &blue["metadata"]["labels"];
    assert_eq!(labels["serving.knative.dev/service"], "hello");
    assert_eq!(labels["serving.knative.dev/configuration"], "hello");
    assert_eq!(labels["serving.knative.dev/configurationGeneration"], "1");
    assert_eq!(s(&blue, "/spec/containers/0/env/0/value"), "blue");
    assert!(revision(&d, "hello-00001").is_none(), "no generated name");
    wait_for("hello-blue as latest created", || {
        let svc = d.get_json(&svc_path);
        if s(&svc, "/status/latestCreatedRevisionName") == "hello-blue" {
            Ok(())
        } else {
            Err(svc["status"].to_string())
        }
    });

    // Changing the template but not its name is refused at the name, via the CLI...
    let before = d.get_json(&svc_path);
    let out = d
        .wisp_stdin(
            &["apply", "-f", "-"],
            Some(&byo_yaml("hello-blue", "green")),
        )
        .failure();
    assert!(out.stderr.contains("spec.template.metadata.name"), "{out}");
    // ... via PUT, with the path in the Status causes ...
    let mut put = before.clone();
    put["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = json!("green");
    let r = d.put_json(&svc_path, &put);
    assert_eq!(r.status, 422, "{}", r.body);
    let st = r.json();
    assert_eq!(st["reason"], "Invalid");
    let fields: Vec<&str> = st["details"]["causes"]
        .as_array()
        .expect("causes")
        .iter()
        .map(|c| s(c, "/field"))
        .collect();
    assert_eq!(fields, ["spec.template.metadata.name"], "{st}");
    // ... and via kubectl.
    let file = d.scratch.join("green.yaml");
    std::fs::write(&file, byo_yaml("hello-blue", "green")).unwrap();
    let out = d
        .kubectl(&["apply", "-f", file.to_str().unwrap()])
        .failure();
    assert!(out.stderr.contains("spec.template.metadata.name"), "{out}");
    let after = d.get_json(&svc_path);
    assert_eq!(
        after["spec"], before["spec"],
        "a refused change must not be stored"
    );
    assert_eq!(
        after["metadata"]["generation"],
        before["metadata"]["generation"]
    );

    // Re-applying the unchanged template under its name is fine.
    d.wisp_stdin(&["apply", "-f", "-"], Some(&byo_yaml("hello-blue", "blue")))
        .success();

    // A new name with the new template: a second revision, both kept.
    d.wisp_stdin(
        &["apply", "-f", "-"],
        Some(&byo_yaml("hello-green", "green")),
    )
    .success();
    let green = wait_revision(&d, "hello-green");
    assert_eq!(s(&green, "/spec/containers/0/env/0/value"), "green");
    assert_eq!(
        green["metadata"]["labels"]["serving.knative.dev/configurationGeneration"],
        "2"
    );
    assert_eq!(
        s(
            &revision(&d, "hello-blue").unwrap(),
            "/spec/containers/0/env/0/value"
        ),
        "blue"
    );

    // Blue/green: split between the named revisions; the Route follows.
    d.wisp(&[
        "service",
        "update",
        "hello",
        "--traffic",
        "hello-blue=80,hello-green=20",
    ])
    .success();
    let svc = d.get_json(&svc_path);
    let percents: Vec<(String, i64)> = svc["spec"]["traffic"]
        .as_array()
        .expect("traffic")
        .iter()
        .map(|t| {
            (
                s(t, "/revisionName").to_string(),
                t["percent"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        percents,
        [
            ("hello-blue".to_string(), 80),
            ("hello-green".to_string(), 20)
        ],
        "{svc}"
    );
    wait_for("the Route to follow", || {
        let r = d.get_json(&serving_path("default", "routes", Some("hello")));
        if r["spec"]["traffic"] == svc["spec"]["traffic"] {
            Ok(())
        } else {
            Err(r["spec"].to_string())
        }
    });

    // A name that is not prefixed with the Service's name is refused.
    let out = d
        .wisp_stdin(&["apply", "-f", "-"], Some(&byo_yaml("other-v3", "three")))
        .failure();
    assert!(out.stderr.contains("spec.template.metadata.name"), "{out}");
    assert!(out.stderr.contains("hello-"), "{out}");
}

#[test]
fn byo_name_taken_by_another_service_is_reported() {
    let d = Daemon::start();
    // Both "hello-" and "hello-two-" prefix the name hello-two-blue: Service hello takes it
    // first, then Service hello-two asks for it too.
    d.wisp_stdin(
        &["apply", "-f", "-"],
        Some(&byo_yaml("hello-two-blue", "one")),
    )
    .success();
    wait_revision(&d, "hello-two-blue");
    let other = "apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hello-two
spec:
  template:
    metadata:
      name: hello-two-blue
    spec:
      containers:
        - command: [\"python3\", \"-m\", \"http.server\", \"--bind\", \"127.0.0.1\", \"$(PORT)\"]
";
    d.wisp_stdin(&["apply", "-f", "-"], Some(other)).success();
    // hello-two's Configuration cannot create its revision: it says so, and never adopts the
    // other Service's revision.
    let cfg = wait_for("hello-two's Configuration to report the taken name", || {
        let c = d
            .get_opt(&serving_path(
                "default",
                "configurations",
                Some("hello-two"),
            ))
            .ok_or("no configuration")?;
        if condition(&c, "Ready") == "False" {
            Ok(c)
        } else {
            Err(c.to_string())
        }
    });
    assert_ne!(
        s(&cfg, "/status/latestCreatedRevisionName"),
        "hello-two-blue",
        "{cfg}"
    );
    let rev = revision(&d, "hello-two-blue").unwrap();
    assert_eq!(
        rev["metadata"]["labels"]["serving.knative.dev/service"], "hello",
        "{rev}"
    );
    let svc = d.get_json(&serving_path("default", "services", Some("hello-two")));
    assert_ne!(condition(&svc, "Ready"), "True", "{svc}");
}
