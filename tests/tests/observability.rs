//! Observability end to end: `/metrics` on the API port counts exactly the requests sent
//! through the real gateway, by revision and response code; the autoscaler's gauges and the
//! process figures are there; the request log has one line per request with its fields,
//! read with `wisp logs --requests`; broker and trigger events are counted, and a dropped
//! event becomes a Kubernetes Event about its Trigger.
//!
//! Counts are compared before and after, so probes and other traffic cannot make a test
//! flaky; nothing is timed.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// The metrics text.
fn scrape(d: &Daemon) -> String {
    let r = d.request("GET", "/metrics", None);
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// The value of the series of `name` whose labels include every `labels` pair (0 if absent).
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    series(text, name, labels).unwrap_or(0.0)
}

fn series(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (head, v) = l.rsplit_once(' ')?;
            let (n, rest) = match head.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (head, ""),
            };
            (n == name).then_some((rest, v))
        })
        .find(|(rest, _)| {
            labels
                .iter()
                .all(|(k, v)| rest.split(',').any(|kv| kv == format!("{k}=\"{v}\"")))
        })
        .and_then(|(_, v)| v.parse().ok())
}

fn host(svc: &str) -> String {
    format!("{svc}.default.localhost")
}

#[test]
fn gateway_requests_are_counted_logged_and_the_autoscaler_reported() {
    let mark = unique("obs");
    let _sweep = Sweep(mark.clone());
    let d = Daemon::start();
    d.create_service(&testapp_service("obs", &[(MARK, &mark)], &[], json!({})));
    d.wait_service_ready("obs");
    let rev = "obs-00001";
    let of = |code: &'static str, class: &'static str| {
        vec![
            ("namespace_name", "default"),
            ("service_name", "obs"),
            ("configuration_name", "obs"),
            ("revision_name", rev),
            ("response_code", code),
            ("response_code_class", class),
        ]
    };
    let before = scrape(&d);
    let ok0 = value(&before, "revision_request_count_total", &of("200", "2xx"));
    let nf0 = value(&before, "revision_request_count_total", &of("404", "4xx"));
    let lat0 = value(
        &before,
        "revision_request_latencies_count",
        &of("200", "2xx"),
    );

    let mut c = d.client(&host("obs"));
    for _ in 0..5 {
        assert_eq!(c.get("/hello?x=1").expect("answered").status, 200);
    }
    for _ in 0..2 {
        assert_eq!(c.get("/?status=404").expect("answered").status, 404);
    }
    let traced = http_request_full(
        d.gateway_port,
        &host("obs"),
        "GET",
        "/traced",
        &[
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            ("user-agent", "obs-test/1.0"),
        ],
        None,
        Duration::from_secs(30),
    )
    .expect("answered");
    assert_eq!(traced.status, 200);

    // Counted when each response ended, which the client saw: exact at once.
    let after = scrape(&d);
    assert_eq!(
        value(&after, "revision_request_count_total", &of("200", "2xx")) - ok0,
        6.0,
        "{after}"
    );
    assert_eq!(
        value(&after, "revision_request_count_total", &of("404", "4xx")) - nf0,
        2.0
    );
    assert_eq!(
        value(
            &after,
            "revision_request_latencies_count",
            &of("200", "2xx")
        ) - lat0,
        6.0
    );
    // Buckets are cumulative: the `+Inf` bucket holds every observation, as `_count` does.
    let mut inf = of("200", "2xx");
    inf.push(("le", "+Inf"));
    assert_eq!(
        value(&after, "revision_request_latencies_bucket", &inf),
        value(
            &after,
            "revision_request_latencies_count",
            &of("200", "2xx")
        ),
        "{after}"
    );
    let rev_labels = [("namespace_name", "default"), ("revision_name", rev)];
    assert!(
        series(&after, "revision_queue_depth", &rev_labels).is_some(),
        "{after}"
    );
    assert!(series(&after, "revision_response_sizes_count", &rev_labels).is_some());
    assert!(series(&after, "process_resident_memory_bytes", &[]).is_some_and(|v| v > 0.0));
    assert!(series(&after, "process_cpu_seconds_total", &[]).is_some());
    assert!(series(&after, "process_open_fds", &[]).is_some());
    assert!(
        value(
            &after,
            "apiserver_request_total",
            &[
                ("verb", "create"),
                ("resource", "services"),
                ("code", "201")
            ]
        ) >= 1.0,
        "{after}"
    );
    // The autoscaler decides when the revision starts and every two seconds after.
    wait_for("autoscaler gauges of the revision", || {
        let text = scrape(&d);
        let labels = [
            ("namespace_name", "default"),
            ("service_name", "obs"),
            ("configuration_name", "obs"),
            ("revision_name", rev),
        ];
        let actual = series(&text, "autoscaler_actual_pods", &labels);
        let ok = actual.is_some_and(|v| v >= 1.0)
            && series(&text, "autoscaler_desired_pods", &labels).is_some()
            && series(&text, "autoscaler_requested_pods", &labels).is_some()
            && series(&text, "autoscaler_panic_mode", &labels).is_some()
            && series(&text, "autoscaler_stable_request_concurrency", &labels).is_some()
            && series(&text, "autoscaler_target_concurrency_per_pod", &labels).is_some();
        if ok { Ok(()) } else { Err(text) }
    });

    // One line per request, read through the API.
    let lines = wait_for("request log lines of obs", || {
        let out = d.wisp(&["logs", "--requests", "obs"]).success();
        let lines: Vec<Value> = out
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        if lines.len() >= 8 {
            Ok(lines)
        } else {
            Err(out.stdout)
        }
    });
    assert_eq!(lines.len(), 8, "{lines:#?}");
    let statuses: Vec<u64> = lines
        .iter()
        .map(|l| l["httpRequest"]["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 6);
    assert_eq!(statuses.iter().filter(|s| **s == 404).count(), 2);
    for l in &lines {
        assert_eq!(l["host"], host("obs"), "{l}");
        assert_eq!(l["namespace"], "default");
        assert_eq!(l["service"], "obs");
        assert_eq!(l["revision"], rev);
        assert_eq!(l["httpRequest"]["requestMethod"], "GET");
        assert_eq!(l["httpRequest"]["remoteIp"], "127.0.0.1");
        assert_eq!(l["httpRequest"]["protocol"], "HTTP/1.1");
        assert!(
            s(l, "/httpRequest/serverIp").starts_with("127.0.0.1:"),
            "{l}"
        );
        assert!(s(l, "/httpRequest/latency").ends_with('s'), "{l}");
        assert!(s(l, "/time").ends_with('Z'), "{l}");
    }
    let hello = lines
        .iter()
        .find(|l| l["httpRequest"]["requestUrl"] == "/hello?x=1")
        .expect("the URL with its query");
    assert_eq!(
        hello["httpRequest"]["responseSize"], "13",
        "Hello World! and a newline: {hello}"
    );
    let traced = lines
        .iter()
        .find(|l| l["httpRequest"]["requestUrl"] == "/traced")
        .expect("the traced request");
    assert_eq!(traced["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(traced["httpRequest"]["userAgent"], "obs-test/1.0");

    // Filters: a revision, a time window, the last N, everything.
    let by_rev = d
        .wisp(&[
            "logs",
            "--requests",
            "--revision",
            rev,
            "--since",
            "10m",
            "--tail",
            "3",
        ])
        .success();
    assert_eq!(by_rev.stdout.lines().count(), 3, "{by_rev}");
    let other = d.wisp(&["logs", "--requests", "nosuchservice"]).success();
    assert_eq!(other.stdout, "");
    let all = d.wisp(&["logs", "--requests"]).success();
    assert!(all.stdout.lines().count() >= 8);
    // The app's own output, within a window.
    let app = d.wisp(&["logs", "obs", "--since", "1h"]).success();
    assert!(app.stdout.contains(&format!("[{rev}/")), "{app}");
    // The log file is where the daemon said.
    let file = d.data_dir.join("logs").join("requests.log");
    assert!(std::fs::read_to_string(&file).is_ok_and(|t| t.lines().count() >= 8));
}

#[test]
fn request_logs_and_metrics_can_be_off() {
    let mark = unique("obs-off");
    let _sweep = Sweep(mark.clone());
    let d = Daemon::start_with(&["--request-log", "off", "--request-metrics", "off"]);
    d.create_service(&testapp_service("quiet", &[(MARK, &mark)], &[], json!({})));
    d.wait_service_ready("quiet");
    assert_eq!(d.gateway_get(&host("quiet"), "/").status, 200);
    let text = scrape(&d);
    assert!(!text.contains("revision_request_count"), "{text}");
    assert!(text.contains("process_resident_memory_bytes"));
    let r = d.wisp(&["logs", "--requests"]);
    assert!(!r.ok, "{r}");
    assert!(r.stderr.contains("request log is off"), "{r}");
    assert!(!d.data_dir.join("logs").join("requests.log").exists());
}

const BROKER: &str =
    "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: default\n";

fn trigger(name: &str, uri: &str, extra: &str) -> String {
    format!(
        "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: {name}\nspec:\n  broker: default\n{extra}  subscriber:\n    ref:\n      apiVersion: serving.knative.dev/v1\n      kind: Service\n      name: sink\n    uri: {uri}\n"
    )
}

#[test]
fn broker_and_trigger_events_are_counted_and_drops_recorded() {
    let mark = unique("obs-ev");
    let _sweep = Sweep(mark.clone());
    let d = Daemon::start();
    d.create_service(&testapp_service("sink", &[(MARK, &mark)], &[], json!({})));
    d.wait_service_ready("sink");
    let yaml = [
        BROKER.to_string(),
        trigger("good", "/ok", ""),
        trigger(
            "bad",
            "/failing?status=500",
            "  delivery:\n    retry: 1\n    backoffPolicy: linear\n    backoffDelay: PT0.01S\n",
        ),
    ]
    .join("---\n");
    d.wisp_stdin(&["apply", "-f", "-"], Some(&yaml)).success();
    let broker = "/apis/eventing.knative.dev/v1/namespaces/default/brokers/default";
    for path in [
        broker.to_string(),
        "/apis/eventing.knative.dev/v1/namespaces/default/triggers/good".to_string(),
        "/apis/eventing.knative.dev/v1/namespaces/default/triggers/bad".to_string(),
    ] {
        wait_for(&format!("{path} Ready"), || {
            let o = d.get_opt(&path).ok_or("absent")?;
            if condition(&o, "Ready") == "True" {
                Ok(())
            } else {
                Err(o["status"].to_string())
            }
        });
    }
    for i in 0..3 {
        let r = http_request_full(
            d.events_port,
            "127.0.0.1",
            "POST",
            "/default/default",
            &[
                ("ce-specversion", "1.0"),
                ("ce-id", &format!("obs-{i}")),
                ("ce-source", "/e2e"),
                ("ce-type", "dev.obs.order"),
            ],
            Some(("application/json", "{}")),
            Duration::from_secs(30),
        )
        .expect("the ingress answers");
        assert_eq!(r.status, 202, "{}", r.body);
    }
    let unknown = http_request_full(
        d.events_port,
        "127.0.0.1",
        "POST",
        "/default/made-up-broker",
        &[
            ("ce-specversion", "1.0"),
            ("ce-id", "x"),
            ("ce-source", "/e2e"),
            ("ce-type", "dev.obs.order"),
        ],
        Some(("application/json", "{}")),
        Duration::from_secs(30),
    )
    .expect("the ingress answers");
    assert_eq!(unknown.status, 404);

    let text = scrape(&d);
    let ingress = [
        ("namespace_name", "default"),
        ("broker_name", "default"),
        ("event_type", "dev.obs.order"),
        ("response_code", "202"),
        ("response_code_class", "2xx"),
    ];
    assert_eq!(
        value(&text, "mt_broker_ingress_event_count_total", &ingress),
        3.0,
        "{text}"
    );
    assert!(!text.contains("made-up-broker"), "{text}");
    let trig = |t: &'static str| {
        vec![
            ("namespace_name", "default"),
            ("broker_name", "default"),
            ("trigger_name", t),
        ]
    };
    wait_for("every event dispatched to both triggers", || {
        let text = scrape(&d);
        let mut good = trig("good");
        good.extend([("response_code", "200"), ("response_code_class", "2xx")]);
        let mut bad = trig("bad");
        bad.extend([("response_code", "500"), ("response_code_class", "5xx")]);
        let done = value(&text, "mt_broker_filter_event_count_total", &good) == 3.0
            && value(&text, "mt_broker_filter_event_count_total", &bad) == 3.0
            && value(&text, "wisp_trigger_events_dropped_total", &trig("bad")) == 3.0;
        if done { Ok(()) } else { Err(text) }
    });
    let text = scrape(&d);
    assert_eq!(
        value(&text, "wisp_trigger_event_retries_total", &trig("bad")),
        3.0
    );
    assert_eq!(
        value(&text, "wisp_trigger_event_retries_total", &trig("good")),
        0.0
    );
    assert_eq!(
        value(&text, "wisp_trigger_events_dropped_total", &trig("good")),
        0.0
    );
    assert!(
        series(
            &text,
            "mt_broker_filter_event_dispatch_latencies_count",
            &trig("good")
        )
        .is_some_and(|v| v == 3.0)
    );

    // The drops are told on the Trigger, rate-limited: Events that together count three.
    let events = wait_for("EventDropped events about trigger bad", || {
        let list = d.get_json("/api/v1/namespaces/default/events");
        let dropped: Vec<Value> = list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["reason"] == "EventDropped" && e["involvedObject"]["name"] == "bad")
            .cloned()
            .collect();
        let total: i64 = dropped
            .iter()
            .map(|e| e["count"].as_i64().unwrap_or(0))
            .sum();
        if total == 3 {
            Ok(dropped)
        } else {
            Err(format!("{list}"))
        }
    });
    for e in &events {
        assert_eq!(e["involvedObject"]["kind"], "Trigger");
        assert_eq!(e["type"], "Warning");
        assert!(s(e, "/message").contains("/failing?status=500"), "{e}");
    }
    assert!(
        events.len() <= 2,
        "at most one per 10 s window: {events:#?}"
    );
}
