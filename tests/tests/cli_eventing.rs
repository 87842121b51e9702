//! kn's eventing commands against the real daemon: what `wisp broker|trigger|source|channel|
//! subscription create` store (the specs, read back through the API), how refusals read, and
//! `wisp event send` delivering a CloudEvent to a Knative Service through the gateway and to
//! a broker whose trigger forwards it.

mod common;

use common::*;
use serde_json::{Value, json};

const EVENTING: &str = "/apis/eventing.knative.dev/v1/namespaces/default";
const MESSAGING: &str = "/apis/messaging.knative.dev/v1/namespaces/default";
const SOURCES: &str = "/apis/sources.knative.dev/v1/namespaces/default";

fn testapp() -> String {
    let bin = wisp_bin().with_file_name("wisp-testapp");
    assert!(
        bin.is_file(),
        "{} does not exist: run the README's test command (it builds wisp-testapp)",
        bin.display()
    );
    bin.display().to_string()
}

#[test]
fn eventing_commands_store_kns_objects() {
    let d = Daemon::start();
    let out = d
        .wisp(&["broker", "create", "default", "--retry", "3"])
        .success();
    assert_eq!(
        out.stdout,
        "Broker 'default' successfully created in namespace 'default'.\n"
    );
    let b = d.get_json(&format!("{EVENTING}/brokers/default"));
    assert_eq!(b["spec"]["delivery"]["retry"], json!(3), "{b}");

    // A sink that does not exist is refused before anything is written, naming the flag.
    let out = d
        .wisp(&["trigger", "create", "t1", "--sink", "ksvc:nope"])
        .failure();
    assert!(
        out.stderr
            .contains("invalid --sink \"ksvc:nope\": Service \"nope\" not found"),
        "{out}"
    );

    let out = d
        .wisp(&[
            "trigger",
            "create",
            "t1",
            "--sink",
            "broker:default",
            "--filter",
            "type=dev.example.a",
            "--filter-cesql",
            "source LIKE '/x%'",
            "--ordered",
        ])
        .success();
    assert!(
        out.stdout
            .contains("Trigger 't1' successfully created in namespace 'default'."),
        "{out}"
    );
    let t = d.get_json(&format!("{EVENTING}/triggers/t1"));
    assert_eq!(t["spec"]["broker"], json!("default"), "{t}");
    assert_eq!(
        t["spec"]["filter"]["attributes"],
        json!({"type": "dev.example.a"})
    );
    assert_eq!(
        t["spec"]["filters"],
        json!([{"cesql": "source LIKE '/x%'"}])
    );
    assert_eq!(
        t["spec"]["subscriber"]["ref"],
        json!({"kind": "Broker", "namespace": "default", "name": "default",
               "apiVersion": "eventing.knative.dev/v1"})
    );
    assert_eq!(
        t["metadata"]["annotations"]["kafka.eventing.knative.dev/delivery.order"],
        json!("ordered")
    );

    d.wisp(&[
        "trigger", "update", "t1", "--filter", "type-", "--filter", "source=s",
    ])
    .success();
    let t = d.get_json(&format!("{EVENTING}/triggers/t1"));
    assert_eq!(
        t["spec"]["filter"]["attributes"],
        json!({"source": "s"}),
        "{t}"
    );

    let out = d.wisp(&["trigger", "list"]).success();
    let header: Vec<&str> = out
        .stdout
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "BROKER",
            "SINK",
            "AGE",
            "CONDITIONS",
            "READY",
            "REASON"
        ]
    );
    assert!(
        out.stdout.contains("t1     default   broker:default"),
        "{out}"
    );

    // The server's refusal, with its field path, as the other commands show it.
    let out = d
        .wisp(&[
            "trigger",
            "create",
            "bad",
            "--sink",
            "http://127.0.0.1:9/",
            "--filter-cesql",
            "not ((valid",
        ])
        .failure();
    assert!(
        out.stderr
            .starts_with("The Trigger \"bad\" is invalid: spec.filters[0].cesql:"),
        "{out}"
    );

    d.wisp(&["channel", "create", "pipe", "--type", "imc"])
        .success();
    let c = d.get_json(&format!("{MESSAGING}/channels/pipe"));
    assert_eq!(
        c["spec"]["channelTemplate"],
        json!({"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel"}),
        "{c}"
    );
    d.wisp(&[
        "subscription",
        "create",
        "s1",
        "--channel",
        "pipe",
        "--sink",
        "http://127.0.0.1:9/",
        "--sink-dead-letter",
        "broker:default",
    ])
    .success();
    let s = d.get_json(&format!("{MESSAGING}/subscriptions/s1"));
    assert_eq!(s["spec"]["channel"]["name"], json!("pipe"), "{s}");
    assert_eq!(
        s["spec"]["delivery"]["deadLetterSink"]["ref"]["kind"],
        json!("Broker")
    );

    d.wisp(&[
        "source",
        "ping",
        "create",
        "p1",
        "--schedule",
        "0 0 1 1 *",
        "--data",
        "{\"hello\":\"world\"}",
        "--sink",
        "broker:default",
    ])
    .success();
    let p = d.get_json(&format!("{SOURCES}/pingsources/p1"));
    assert_eq!(p["spec"]["schedule"], json!("0 0 1 1 *"), "{p}");
    assert_eq!(p["spec"]["data"], json!("{\"hello\":\"world\"}"));
    d.wisp(&[
        "source",
        "binding",
        "create",
        "b1",
        "--subject",
        "Deployment:apps/v1:app=x",
        "--sink",
        "broker:default",
    ])
    .success();
    let out = d.wisp(&["source", "list"]).success();
    let rows: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().take(4).collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["NAME", "TYPE", "RESOURCE", "SINK"],
            vec![
                "b1",
                "SinkBinding",
                "sinkbindings.sources.knative.dev",
                "broker:default"
            ],
            vec![
                "p1",
                "PingSource",
                "pingsources.sources.knative.dev",
                "broker:default"
            ],
        ],
        "{out}"
    );

    let out = d.wisp(&["trigger", "delete", "t1"]).success();
    assert_eq!(out.stdout, "Trigger 't1' deleted in namespace 'default'.\n");
    assert_eq!(d.get_opt(&format!("{EVENTING}/triggers/t1")), None);
}

/// The attributes of the events the test app recorded.
fn recorded(file: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn ready(d: &Daemon, path: &str) -> Result<(), String> {
    let obj = d.get_json(path);
    let ready = obj["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .map(|c| c["status"] == "True")
        .unwrap_or(false);
    if ready {
        Ok(())
    } else {
        Err(format!("{path} not Ready: {}", obj["status"]))
    }
}

#[test]
fn event_send_reaches_services_and_brokers() {
    let d = Daemon::start();
    let file = d.scratch.join("events.jsonl");
    let record = format!("RECORD_EVENTS={}", file.display());
    d.wisp(&[
        "service",
        "create",
        "rec",
        "--cmd",
        &testapp(),
        "--env",
        &record,
    ])
    .success();
    let gateway = format!("127.0.0.1:{}", d.gateway_port);

    // Straight to the Service, through the gateway, in binary mode.
    let out = d
        .wisp(&[
            "event",
            "send",
            "--to",
            "ksvc:rec",
            "--gateway",
            &gateway,
            "-i",
            "direct-1",
            "-t",
            "dev.example.direct",
            "-f",
            "n=1",
            "-e",
            "team=blue green",
        ])
        .success();
    assert_eq!(out.stdout, "Event sent (200 OK)\n");
    let events = recorded(&file);
    assert_eq!(events.len(), 1, "{events:?}");
    let attrs = &events[0]["attributes"];
    assert_eq!(attrs["id"], json!("direct-1"));
    assert_eq!(attrs["type"], json!("dev.example.direct"));
    assert_eq!(attrs["team"], json!("blue green"));
    assert!(
        attrs["source"]
            .as_str()
            .unwrap_or("")
            .starts_with("wisp-event/v"),
        "{attrs}"
    );
    assert_eq!(events[0]["body"], json!("{\"n\":1}"));

    // A broker with no address is said so; a missing one names the flag.
    let out = d.wisp(&["event", "send", "--to", "broker:nope"]).failure();
    assert!(
        out.stderr
            .contains("invalid --to \"broker:nope\": Broker \"nope\" not found"),
        "{out}"
    );

    // Through a broker and a trigger, once both are Ready.
    d.wisp(&["broker", "create", "default"]).success();
    d.wisp(&[
        "trigger",
        "create",
        "fwd",
        "--sink",
        "ksvc:rec",
        "--filter",
        "type=dev.example.fwd",
    ])
    .success();
    wait_for("the trigger to be Ready", || {
        ready(&d, &format!("{EVENTING}/triggers/fwd"))
    });
    let out = d
        .wisp(&[
            "event",
            "send",
            "--to",
            "broker:default",
            "-t",
            "dev.example.fwd",
            "-i",
            "via-1",
        ])
        .success();
    assert_eq!(out.stdout, "Event sent (202 Accepted)\n");
    wait_for("the event forwarded by the trigger", || {
        let events = recorded(&file);
        events
            .iter()
            .find(|e| e["attributes"]["id"] == "via-1")
            .map(|_| ())
            .ok_or_else(|| format!("{events:?}"))
    });
}
