//! Kubernetes Events: what the controllers record (children created, the latest ready
//! revision, a revision failing, replicas scaled), as `wisp events` and `kubectl get events`
//! show them.

mod common;

use common::*;
use serde_json::{Value, json};

fn events(d: &Daemon, selector: &str) -> Vec<Value> {
    let path = format!("/api/v1/namespaces/default/events?fieldSelector={selector}");
    d.get_json(&path)["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[track_caller]
fn wait_event(d: &Daemon, selector: &str, reason: &str) -> Value {
    wait_for(&format!("a {reason} event for {selector}"), || {
        let all = events(d, selector);
        all.iter()
            .find(|e| e["reason"] == reason)
            .cloned()
            .ok_or_else(|| {
                format!(
                    "{:?}",
                    all.iter().map(|e| e["reason"].clone()).collect::<Vec<_>>()
                )
            })
    })
}

#[test]
fn controllers_record_what_happened() {
    let mark = unique("events");
    let _sweep = Sweep(mark.clone());
    let d = Daemon::start();
    d.create_service(&testapp_service("hello", &[(MARK, &mark)], &[], json!({})));
    d.wait_service_ready("hello");

    let created = wait_event(
        &d,
        "involvedObject.kind=Service,involvedObject.name=hello",
        "Created",
    );
    assert_eq!(created["type"], "Normal");
    assert!(
        created["message"].as_str().unwrap().starts_with("Created "),
        "{created}"
    );
    let ready = wait_event(
        &d,
        "involvedObject.kind=Configuration,involvedObject.name=hello",
        "LatestReadyUpdate",
    );
    assert_eq!(
        ready["message"],
        "LatestReadyRevisionName updated to \"hello-00001\""
    );
    let scaled = wait_event(
        &d,
        "involvedObject.kind=Revision,involvedObject.name=hello-00001",
        "Scaled",
    );
    assert_eq!(
        scaled["involvedObject"]["uid"].as_str().map(str::is_empty),
        Some(false)
    );

    // A revision that cannot start: a Warning naming why.
    let bad = testapp_service(
        "broken",
        &[(MARK, &mark), ("FAIL_TO_START", "1")],
        &[],
        json!({}),
    );
    d.create_service(&bad);
    let warning = wait_event(
        &d,
        "involvedObject.kind=Revision,involvedObject.name=broken-00001,type=Warning",
        "ExitCode1",
    );
    assert!(
        warning["message"]
            .as_str()
            .unwrap()
            .contains("FAIL_TO_START"),
        "{warning}"
    );

    // The CLI and kubectl show them.
    let out = d
        .wisp(&["events", "--for", "configuration/hello"])
        .success();
    assert!(out.stdout.contains("LatestReadyUpdate"), "{out}");
    let out = d.kubectl(&["get", "events"]).success();
    assert!(
        out.stdout.contains("LatestReadyUpdate") && out.stdout.contains("ExitCode1"),
        "{out}"
    );
}
