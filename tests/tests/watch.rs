//! `GET ...?watch=true&resourceVersion=N`: every change after N, in order, none missed, none
//! twice; then live changes on the same stream.

mod common;

use common::*;
use serde_json::{Value, json};

const CM: &str = "/api/v1/namespaces/default/configmaps";

fn configmap(name: &str, v: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"v": v}})
}

/// (type, name, resourceVersion) of a watch event.
fn event_key(ev: &Value) -> (String, String, u64) {
    (
        s(ev, "/type").to_string(),
        s(ev, "/object/metadata/name").to_string(),
        rv(&ev["object"]),
    )
}

#[test]
fn watch_replays_every_change_after_a_resource_version_in_order() {
    let d = Daemon::start();
    let start = rv(&d.get_json(CM));
    let mut expected = Vec::new();

    for i in 0..20 {
        let r = d.post_json(CM, &configmap(&format!("cm-{i:02}"), "0"));
        assert_eq!(r.status, 201, "{}", r.body);
        expected.push(("ADDED".to_string(), format!("cm-{i:02}"), rv(&r.json())));
    }
    for i in [3, 7, 11, 3, 19] {
        let name = format!("cm-{i:02}");
        let path = format!("{CM}/{name}");
        let mut obj = d.get_json(&path);
        obj["data"]["v"] = json!(format!("{}", rv(&obj)));
        let r = d.put_json(&path, &obj);
        assert_eq!(r.status, 200, "{}", r.body);
        expected.push(("MODIFIED".to_string(), name, rv(&r.json())));
    }
    for i in [0, 7, 19] {
        let name = format!("cm-{i:02}");
        let r = d.request("DELETE", &format!("{CM}/{name}"), None);
        assert_eq!(r.status, 200, "{}", r.body);
        expected.push(("DELETED".to_string(), name, rv(&r.json())));
    }
    // Writes in another namespace and of another resource are not in this watch.
    let r = d.post_json(
        "/api/v1/namespaces/other/configmaps",
        &configmap("elsewhere", "0"),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = d.post_json(
        &serving_path("default", "services", None),
        &service_json("noise", "x"),
    );
    assert_eq!(r.status, 201, "{}", r.body);

    let mut w = d.stream(&format!("{CM}?watch=true&resourceVersion={start}"));
    assert_eq!(w.status, 200);
    let mut got = Vec::new();
    while got.len() < expected.len() {
        let ev = w.next_json().unwrap_or_else(|| {
            panic!(
                "the watch ended after {} of {} events: {got:?}",
                got.len(),
                expected.len()
            )
        });
        got.push(event_key(&ev));
        if s(&ev, "/type") != "DELETED" {
            assert_eq!(s(&ev, "/object/kind"), "ConfigMap", "{ev}");
        }
    }
    assert_eq!(got, expected);
    assert!(
        got.windows(2).all(|w| w[0].2 < w[1].2),
        "resourceVersions increase: {got:?}"
    );

    // The stream goes on with live changes.
    let r = d.post_json(CM, &configmap("live", "1"));
    assert_eq!(r.status, 201, "{}", r.body);
    let ev = w.next_json().expect("a live event");
    assert_eq!(
        event_key(&ev),
        ("ADDED".to_string(), "live".to_string(), rv(&r.json()))
    );

    // From the middle: exactly the changes after that version.
    let mid = expected[9].2;
    let mut w = d.stream(&format!("{CM}?watch=true&resourceVersion={mid}"));
    let tail: Vec<_> = expected[10..]
        .iter()
        .cloned()
        .chain([("ADDED".to_string(), "live".to_string(), rv(&r.json()))])
        .collect();
    let mut got = Vec::new();
    while got.len() < tail.len() {
        got.push(event_key(&w.next_json().expect("event")));
    }
    assert_eq!(got, tail);

    // Without a resourceVersion: the current objects as ADDED, then changes.
    let list = d.get_json(CM);
    let mut w = d.stream(&format!("{CM}?watch=true"));
    let mut initial = Vec::new();
    for _ in 0..names(&list).len() {
        let ev = w.next_json().expect("initial event");
        assert_eq!(s(&ev, "/type"), "ADDED", "{ev}");
        initial.push(s(&ev, "/object/metadata/name").to_string());
    }
    initial.sort();
    let mut listed = names(&list);
    listed.sort();
    assert_eq!(initial, listed);
}

#[test]
fn watch_of_services_sees_each_creation_once_in_order() {
    let d = Daemon::start();
    let path = serving_path("default", "services", None);
    let start = rv(&d.get_json(&path));
    let mut created = Vec::new();
    for i in 0..20 {
        let name = format!("svc-{i:02}");
        let r = d.post_json(&path, &service_json(&name, "x"));
        assert_eq!(r.status, 201, "{}", r.body);
        created.push((name, rv(&r.json())));
    }
    // The controller writes statuses meanwhile: MODIFIED events interleave.
    let mut w = d.stream(&format!("{path}?watch=true&resourceVersion={start}"));
    let mut added = Vec::new();
    let mut last = start;
    while added.len() < created.len() {
        let ev = w.next_json().expect("the watch ended early");
        let (kind, name, v) = event_key(&ev);
        assert!(v > last, "out of order: {v} after {last}");
        last = v;
        assert_eq!(s(&ev, "/object/kind"), "Service", "{ev}");
        match kind.as_str() {
            "ADDED" => added.push((name, v)),
            "MODIFIED" => assert!(
                added.iter().any(|(n, _)| *n == name),
                "MODIFIED before ADDED for {name}"
            ),
            other => panic!("unexpected {other} event: {ev}"),
        }
    }
    assert_eq!(added, created);

    // A bad resourceVersion is a 400 Status, not a stream.
    let r = d.request(
        "GET",
        &format!("{path}?watch=true&resourceVersion=abc"),
        None,
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["kind"], "Status");
}
