//! The user session of the issue, end to end: `wisp apply` the hello example, look at it with
//! `wisp get` and `kubectl`, roll out a second revision with `wisp service update --env`, split
//! traffic with a tag, and check what the controller made of it.

mod common;

use common::*;
use serde_json::Value;

fn revision(d: &Daemon, name: &str) -> Option<Value> {
    d.get_opt(&serving_path("default", "revisions", Some(name)))
}

#[test]
fn hello_session_from_the_issue() {
    let d = Daemon::start();
    let hello = example("hello.yaml");
    let out = d.wisp(&["apply", "-f", hello.to_str().unwrap()]).success();
    assert_eq!(
        out.stdout.trim(),
        "service.serving.knative.dev/hello created",
        "{out}"
    );

    // `wisp get ksvc`: kn's columns, hello-00001 as the latest created revision.
    let table = wait_for(
        "hello-00001 as LATESTCREATED and a URL in `wisp get ksvc`",
        || {
            let out = d.wisp(&["get", "ksvc"]).success();
            let t = Table::parse(&out.stdout);
            if t.firsts().contains(&"hello")
                && t.cell("hello", "LATESTCREATED") == "hello-00001"
                && !t.cell("hello", "URL").is_empty()
            {
                Ok(t)
            } else {
                Err(out.stdout)
            }
        },
    );
    assert_eq!(
        table.header[..6],
        [
            "NAME",
            "URL",
            "LATESTCREATED",
            "LATESTREADY",
            "READY",
            "REASON"
        ],
        "{table:?}"
    );
    assert_eq!(table.cell("hello", "URL"), "http://hello.default.localhost");
    // The revision runs (python's http.server on $PORT) and the Service becomes Ready.
    wait_for("hello Ready with hello-00001 as LATESTREADY", || {
        let out = d.wisp(&["get", "ksvc"]).success();
        let t = Table::parse(&out.stdout);
        if t.cell("hello", "LATESTREADY") == "hello-00001" && t.cell("hello", "READY") == "True" {
            Ok(())
        } else {
            Err(out.stdout)
        }
    });
    let r = d.gateway_get("hello.default.localhost", "/");
    assert_eq!(r.status, 200, "{}", r.body);

    // kubectl sees the same revision.
    let out = d.kubectl(&["get", "revisions"]).success();
    let t = Table::parse(&out.stdout);
    assert_eq!(t.firsts(), ["hello-00001"], "{out}");
    assert_eq!(t.cell("hello-00001", "CONFIG NAME"), "hello", "{out}");

    // A second revision from an env change.
    let out = d
        .wisp(&["service", "update", "hello", "--env", "TARGET=v2"])
        .success();
    assert!(out.stdout.contains("hello-00002"), "{out}");
    let rev2 = wait_for("revision hello-00002", || {
        revision(&d, "hello-00002").ok_or_else(|| "absent".to_string())
    });
    let rev1 = revision(&d, "hello-00001").expect("hello-00001 still exists");
    for (rev, generation) in [(&rev1, "1"), (&rev2, "2")] {
        let labels = &rev["metadata"]["labels"];
        assert_eq!(labels["serving.knative.dev/service"], "hello", "{rev}");
        assert_eq!(
            labels["serving.knative.dev/configuration"], "hello",
            "{rev}"
        );
        assert_eq!(
            labels["serving.knative.dev/configurationGeneration"], generation,
            "{rev}"
        );
    }
    let env = |rev: &Value| rev.pointer("/spec/containers/0/env").cloned();
    assert_eq!(
        env(&rev2),
        Some(serde_json::json!([{"name": "TARGET", "value": "v2"}])),
        "{rev2}"
    );
    assert_eq!(
        env(&rev1),
        Some(serde_json::json!([{"name": "TARGET", "value": "world"}])),
        "revisions are immutable: {rev1}"
    );

    // Split traffic 50/50 and tag the old revision.
    d.wisp(&[
        "service",
        "update",
        "hello",
        "--traffic",
        "hello-00001=50,hello-00002=50",
        "--tag",
        "hello-00001=current",
    ])
    .success();
    let svc = d.get_json(&serving_path("default", "services", Some("hello")));
    let traffic = svc["spec"]["traffic"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(traffic.len(), 2, "{svc}");
    let target = |rev: &str| {
        traffic
            .iter()
            .find(|t| t["revisionName"] == rev)
            .unwrap_or_else(|| panic!("no traffic target for {rev} in {svc}"))
    };
    assert_eq!(target("hello-00001")["percent"], 50);
    assert_eq!(target("hello-00001")["tag"], "current");
    assert_eq!(target("hello-00002")["percent"], 50);
    assert!(target("hello-00002").get("tag").is_none(), "{svc}");
    assert!(
        traffic.iter().all(|t| t["latestRevision"] != true),
        "pinned targets only: {svc}"
    );

    // The Route mirrors the Service's traffic.
    let route = wait_for("the Route to mirror the Service's traffic", || {
        let r = d.get_json(&serving_path("default", "routes", Some("hello")));
        if r["spec"]["traffic"] == svc["spec"]["traffic"] {
            Ok(r)
        } else {
            Err(r.to_string())
        }
    });
    assert_eq!(
        route["metadata"]["labels"]["serving.knative.dev/service"],
        "hello"
    );

    // A traffic-only change makes no revision: the Configuration settles on hello-00002.
    wait_for("the Configuration to settle on hello-00002", || {
        let c = d.get_json(&serving_path("default", "configurations", Some("hello")));
        let settled = c.pointer("/status/observedGeneration") == c.pointer("/metadata/generation")
            && s(&c, "/status/latestCreatedRevisionName") == "hello-00002";
        if settled { Ok(()) } else { Err(c.to_string()) }
    });
    assert!(
        revision(&d, "hello-00003").is_none(),
        "a traffic change must not create a revision"
    );

    // Both revisions run and are Ready; the tag's host reaches the tagged revision.
    for name in ["hello-00001", "hello-00002"] {
        wait_for("the revision to be Ready", || {
            let r = revision(&d, name).expect("revision exists");
            if condition(&r, "Ready") == "True" {
                Ok(())
            } else {
                Err(r.to_string())
            }
        });
    }
    wait_for("the Service to be Ready with its split", || {
        let svc = d.get_json(&serving_path("default", "services", Some("hello")));
        if condition(&svc, "Ready") == "True" {
            Ok(())
        } else {
            Err(svc.to_string())
        }
    });
    for host in ["hello.default.localhost", "current-hello.default.localhost"] {
        let r = d.gateway_get(host, "/");
        assert_eq!(r.status, 200, "{host}: {}", r.body);
    }
    let r = d.gateway_get("nope.default.localhost", "/");
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.body.contains("nope.default.localhost"), "{}", r.body);

    // The Service reflects the two revisions it has.
    let svc = d.get_json(&serving_path("default", "services", Some("hello")));
    assert_eq!(s(&svc, "/status/latestCreatedRevisionName"), "hello-00002");
    assert_eq!(s(&svc, "/status/url"), "http://hello.default.localhost");
    assert_eq!(condition(&svc, "Ready"), "True", "{svc}");
}

#[test]
fn get_output_formats_and_errors() {
    let d = Daemon::start();
    d.wisp_stdin(&["apply", "-f", "-"], Some(&service_yaml("fmt", "one")))
        .success();
    wait_for("fmt-00001", || {
        d.get_opt(&serving_path("default", "revisions", Some("fmt-00001")))
            .ok_or_else(|| "absent".to_string())
    });

    // Re-applying the same manifest stores nothing new. (Like kubectl, wisp apply may still
    // say "configured": its JSON merge patch replaces the defaulted containers list.)
    let svc_path = serving_path("default", "services", Some("fmt"));
    let before = d.get_json(&svc_path);
    let out = d
        .wisp_stdin(&["apply", "-f", "-"], Some(&service_yaml("fmt", "one")))
        .success();
    assert!(
        ["unchanged", "configured"]
            .map(|w| format!("service.serving.knative.dev/fmt {w}"))
            .contains(&out.stdout.trim().to_string()),
        "{out}"
    );
    let after = d.get_json(&svc_path);
    assert_eq!(after["spec"], before["spec"]);
    assert_eq!(
        after["metadata"]["generation"],
        before["metadata"]["generation"]
    );

    let out = d.wisp(&["get", "ksvc", "fmt", "-o", "json"]).success();
    let obj: Value = serde_json::from_str(&out.stdout).expect("-o json is JSON");
    assert_eq!(obj["kind"], "Service");
    assert_eq!(s(&obj, "/metadata/name"), "fmt");

    let out = d.wisp(&["get", "ksvc", "fmt", "-o", "yaml"]).success();
    assert!(out.stdout.contains("kind: Service"), "{out}");
    assert!(out.stdout.contains("name: fmt"), "{out}");

    // Every Knative kind by its short name.
    for (kind, name) in [("rev", "fmt-00001"), ("cfg", "fmt"), ("rt", "fmt")] {
        let out = d.wisp(&["get", kind]).success();
        assert!(
            Table::parse(&out.stdout).firsts().contains(&name),
            "wisp get {kind}: {out}"
        );
    }

    // A missing object is an error that names it.
    let out = d.wisp(&["get", "ksvc", "nope"]).failure();
    assert!(out.stderr.contains("nope"), "{out}");
    assert!(out.stderr.contains("not found"), "{out}");

    // An unknown kind names what is served.
    let out = d.wisp(&["get", "deployments"]).failure();
    assert!(out.stderr.contains("ksvc"), "{out}");
}
