//! Every manifest under `examples/` applies cleanly, and each Knative Service in it becomes
//! Ready and answers at its URL through the gateway, every Broker, Trigger and PingSource
//! becomes Ready, and an event sent to the broker reaches its subscriber: the tutorial cannot
//! rot unnoticed.

mod common;

use common::*;

#[test]
fn every_example_applies_and_reconciles() {
    let d = Daemon::start();
    let mut files: Vec<_> = std::fs::read_dir(workspace_dir().join("examples"))
        .expect("examples/ exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    assert!(
        files.iter().any(|f| f.ends_with("hello.yaml")),
        "examples/hello.yaml is missing: {files:?}"
    );
    for file in &files {
        let out = d.wisp(&["apply", "-f", file.to_str().unwrap()]).success();
        assert!(
            out.stdout.lines().all(|l| l.ends_with(" created")),
            "{}: {out}",
            file.display()
        );
    }
    // Each Service reaches its first revision (generated or named), becomes Ready, and its
    // URL answers.
    let services = d.get_json(&format!("{SERVING}/services"));
    for svc in services["items"].as_array().unwrap() {
        let (ns, name) = (s(svc, "/metadata/namespace"), s(svc, "/metadata/name"));
        let want = match s(svc, "/spec/template/metadata/name") {
            "" => format!("{name}-00001"),
            byo => byo.to_string(),
        };
        wait_for(&format!("{ns}/{name} to create {want}"), || {
            let svc = d.get_json(&serving_path(ns, "services", Some(name)));
            if s(&svc, "/status/latestCreatedRevisionName") == want {
                Ok(())
            } else {
                Err(svc["status"].to_string())
            }
        });
        d.get_json(&serving_path(ns, "revisions", Some(&want)));
        let svc = wait_for(&format!("{ns}/{name} to be Ready"), || {
            let svc = d.get_json(&serving_path(ns, "services", Some(name)));
            match condition(&svc, "Ready") {
                "True" => Ok(svc),
                _ => Err(svc["status"].to_string()),
            }
        });
        let host = s(&svc, "/status/url").trim_start_matches("http://");
        let r = d.gateway_get(host, "/");
        assert_eq!(r.status, 200, "{host}: {}", r.body);
    }
    // Every Eventing object becomes Ready; an event sent to each broker reaches the
    // subscribers of the triggers that match it (event-display prints it).
    for plural in ["brokers", "triggers"] {
        let list = d.get_json(&format!("/apis/eventing.knative.dev/v1/{plural}"));
        for obj in list["items"].as_array().unwrap() {
            let path = format!(
                "/apis/eventing.knative.dev/v1/namespaces/{}/{plural}/{}",
                s(obj, "/metadata/namespace"),
                s(obj, "/metadata/name")
            );
            wait_for(&format!("{path} to be Ready"), || {
                let obj = d.get_json(&path);
                match condition(&obj, "Ready") {
                    "True" => Ok(()),
                    _ => Err(obj["status"].to_string()),
                }
            });
        }
    }
    let sources = d.get_json("/apis/sources.knative.dev/v1/pingsources");
    for src in sources["items"].as_array().unwrap() {
        let path = format!(
            "/apis/sources.knative.dev/v1/namespaces/{}/pingsources/{}",
            s(src, "/metadata/namespace"),
            s(src, "/metadata/name")
        );
        wait_for(&format!("{path} to be Ready"), || {
            let obj = d.get_json(&path);
            match condition(&obj, "Ready") {
                "True" => Ok(()),
                _ => Err(obj["status"].to_string()),
            }
        });
    }
    let sent = d
        .wisp(&[
            "event",
            "send",
            "--to",
            "broker:default",
            "--type",
            "dev.example.order",
            "--id",
            "example-1",
            "--field",
            "n=1",
        ])
        .success();
    assert!(sent.stdout.contains("202"), "{sent}");
    wait_for("event-display to print the event", || {
        let logs = d.wisp(&["logs", "event-display"]);
        if logs.stdout.contains("example-1") {
            Ok(())
        } else {
            Err(logs.stdout.clone())
        }
    });
}
