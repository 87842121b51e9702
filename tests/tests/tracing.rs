//! Distributed tracing end to end: W3C `traceparent` through the real gateway to the test app
//! and through the event plane to a trigger's subscriber, and spans exported over OTLP/HTTP
//! to a receiver in this test process (it stands in for an OpenTelemetry collector: it
//! collects every POST to `/v1/traces` and answers 200). An unreachable endpoint costs the
//! requests nothing: they succeed and the failed exports are counted.
//!
//! Nothing is timed: waits poll up to a deadline.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use common::*;
use serde_json::{Value, json};

const BROKERS: &str = "/apis/eventing.knative.dev/v1/namespaces/default/brokers";
const TRIGGERS: &str = "/apis/eventing.knative.dev/v1/namespaces/default/triggers";

/// An OTLP/HTTP receiver: every span of every `POST /v1/traces` it was sent.
#[derive(Clone)]
struct Collector {
    port: u16,
    spans: Arc<Mutex<Vec<Value>>>,
}

impl Collector {
    fn start() -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the collector");
        let port = listener.local_addr().unwrap().port();
        let c = Collector {
            port,
            spans: Arc::default(),
        };
        let spans = c.spans.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let spans = spans.clone();
                std::thread::spawn(move || serve(conn, &spans));
            }
        });
        c
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Waits for a span with this name and trace id; returns it.
    #[track_caller]
    fn wait_span(&self, name: &str, trace_id: &str) -> Value {
        wait_for(&format!("a {name:?} span of trace {trace_id}"), || {
            let spans = self.spans.lock().unwrap();
            spans
                .iter()
                .find(|s| s["name"] == name && s["traceId"] == trace_id)
                .cloned()
                .ok_or_else(|| format!("{} spans so far", spans.len()))
        })
    }
}

/// One keep-alive connection of the exporter: requests answered 200 `{}`.
fn serve(conn: TcpStream, spans: &Mutex<Vec<Value>>) {
    let mut out = conn.try_clone().expect("clone the connection");
    let mut r = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        if path == "/v1/traces"
            && let Ok(doc) = serde_json::from_slice::<Value>(&body)
        {
            let mut got = spans.lock().unwrap();
            for rs in doc["resourceSpans"].as_array().into_iter().flatten() {
                assert_eq!(
                    rs["resource"]["attributes"][0],
                    json!({"key": "service.name", "value": {"stringValue": "wisp"}})
                );
                for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                    got.extend(ss["spans"].as_array().into_iter().flatten().cloned());
                }
            }
        }
        let answer =
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        if out.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// A span attribute's value (string, or an int as its string).
fn attr<'a>(span: &'a Value, key: &str) -> &'a Value {
    span["attributes"]
        .as_array()
        .and_then(|a| a.iter().find(|kv| kv["key"] == key))
        .map(|kv| &kv["value"])
        .unwrap_or(&Value::Null)
}

/// `(trace id, parent id, flags)` of a `traceparent`.
fn parts(tp: &str) -> (&str, &str, &str) {
    let p: Vec<&str> = tp.split('-').collect();
    assert_eq!(p.len(), 4, "a traceparent: {tp:?}");
    (p[1], p[2], p[3])
}

fn scrape(d: &Daemon) -> String {
    let r = d.request("GET", "/metrics", None);
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// The value of the metrics line starting with `series` (0 if absent).
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit_once(' ')?.1.parse().ok())
        .unwrap_or(0.0)
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER: &str = "00f067aa0ba902b7";
const EVENT_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const EVENT_CALLER: &str = "b7ad6b7169203331";

#[test]
fn traceparent_reaches_replicas_and_subscribers_and_spans_are_exported() {
    let mark = unique("trace");
    let _sweep = Sweep(mark.clone());
    let collector = Collector::start();
    let d = Daemon::start_with(&["--otlp-endpoint", &collector.url()]);
    let rec = d.scratch.join("events.jsonl");
    let rec_path = rec.to_str().expect("a UTF-8 path");
    d.create_service(&testapp_service(
        "traced",
        &[("RECORD_EVENTS", rec_path), (MARK, &mark)],
        &[],
        json!({}),
    ));
    d.wait_service_ready("traced");

    // Through the gateway: same trace, the gateway's hop as the replica's parent.
    let incoming = format!("00-{TRACE}-{CALLER}-01");
    let r = http_request_full(
        d.gateway_port,
        "traced.default.localhost",
        "GET",
        "/?echo=1",
        &[("traceparent", &incoming), ("tracestate", "vendor=1")],
        None,
        DEADLINE,
    )
    .expect("answered");
    assert_eq!(r.status, 200, "{}", r.body);
    let echo = r.json();
    let seen = echo["headers"]["traceparent"]
        .as_str()
        .expect("traceparent");
    let (trace, parent, flags) = parts(seen);
    assert_eq!(trace, TRACE);
    assert_ne!(parent, CALLER, "the replica's parent is the gateway's hop");
    assert_eq!(flags, "01");
    assert_eq!(echo["headers"]["tracestate"], "vendor=1");

    let hop = collector.wait_span("gateway", TRACE);
    assert_eq!(hop["parentSpanId"], CALLER, "{hop}");
    assert_eq!(hop["spanId"], parent, "{hop}");
    assert_eq!(hop["kind"], 2);
    assert_eq!(attr(&hop, "http.request.method")["stringValue"], "GET");
    assert_eq!(
        attr(&hop, "server.address")["stringValue"],
        "traced.default.localhost"
    );
    assert_eq!(attr(&hop, "http.response.status_code")["intValue"], "200");
    assert_eq!(attr(&hop, "wisp.revision")["stringValue"], "traced-00001");

    // A request without a traceparent starts a trace (sampled: an exporter is configured).
    let r = d.gateway_get("traced.default.localhost", "/?echo=1");
    let seen = r.json()["headers"]["traceparent"]
        .as_str()
        .expect("a new traceparent")
        .to_string();
    let (fresh, _, flags) = parts(&seen);
    assert_eq!(flags, "01");
    let root = collector.wait_span("gateway", fresh);
    assert!(root.get("parentSpanId").is_none(), "{root}");

    // Through the event plane: the ingress takes the HTTP traceparent into the event, the
    // delivery continues the trace with a span per attempt.
    d.wisp_stdin(
        &["apply", "-f", "-"],
        Some("apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: default\n"),
    )
    .success();
    d.wisp_stdin(
        &["apply", "-f", "-"],
        Some(
            "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: all\nspec:\n  broker: default\n  subscriber:\n    ref:\n      apiVersion: serving.knative.dev/v1\n      kind: Service\n      name: traced\n    uri: /events\n",
        ),
    )
    .success();
    let ready = |path: String| {
        wait_for(&format!("{path} Ready"), || {
            let obj = d.get_opt(&path).ok_or("absent")?;
            if condition(&obj, "Ready") == "True" {
                Ok(obj)
            } else {
                Err(format!("{}", obj["status"]))
            }
        })
    };
    ready(format!("{TRIGGERS}/all"));
    let broker = ready(format!("{BROKERS}/default"));
    let url = s(&broker, "/status/address/url");
    let path = url
        .strip_prefix(&format!("http://127.0.0.1:{}", d.events_port))
        .expect("the broker is on the ingress")
        .to_string();
    let event_tp = format!("00-{EVENT_TRACE}-{EVENT_CALLER}-01");
    let r = http_request_full(
        d.events_port,
        "127.0.0.1",
        "POST",
        &path,
        &[
            ("ce-specversion", "1.0"),
            ("ce-id", "t1"),
            ("ce-source", "/e2e"),
            ("ce-type", "dev.example.traced"),
            ("traceparent", &event_tp),
        ],
        Some(("application/json", "{}")),
        DEADLINE,
    )
    .expect("the ingress answers");
    assert_eq!(r.status, 202, "{}", r.body);
    let got = wait_for("the event delivered", || {
        std::fs::read_to_string(&rec)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["path"] == "/events" && v["attributes"]["id"] == "t1")
            .ok_or_else(|| "not yet".to_string())
    });
    // The HTTP hop: the gateway's span under the delivery attempt's.
    let (trace, _, _) = parts(got["traceparent"].as_str().expect("a traceparent header"));
    assert_eq!(trace, EVENT_TRACE, "{got}");
    // The extension: the start of the event's trace (the ingress span).
    let ext = got["attributes"]["traceparent"]
        .as_str()
        .expect("ce-traceparent");
    let (ext_trace, ext_parent, _) = parts(ext);
    assert_eq!(ext_trace, EVENT_TRACE);

    let ingress = collector.wait_span("ingress", EVENT_TRACE);
    assert_eq!(ingress["parentSpanId"], EVENT_CALLER, "{ingress}");
    assert_eq!(ingress["spanId"], ext_parent, "{ingress}");
    assert_eq!(attr(&ingress, "cloudevents.event_id")["stringValue"], "t1");
    assert_eq!(
        attr(&ingress, "wisp.broker")["stringValue"],
        "default/default"
    );
    let delivery = collector.wait_span("delivery", EVENT_TRACE);
    assert_eq!(delivery["parentSpanId"], ext_parent, "{delivery}");
    assert_eq!(
        attr(&delivery, "wisp.trigger")["stringValue"],
        "default/all"
    );
    assert_eq!(attr(&delivery, "wisp.delivery.attempt")["intValue"], "1");
    assert_eq!(
        attr(&delivery, "http.response.status_code")["intValue"],
        "200"
    );
    assert_eq!(
        attr(&delivery, "wisp.delivery.dead_letter")["boolValue"],
        false
    );
    assert!(
        attr(&delivery, "url.full")["stringValue"]
            .as_str()
            .is_some_and(|u| u.ends_with("/events")),
        "{delivery}"
    );
    // The gateway's hop of that delivery is the delivery attempt's child.
    let hop = wait_for("the delivery's gateway span", || {
        let spans = collector.spans.lock().unwrap();
        spans
            .iter()
            .find(|s| s["name"] == "gateway" && s["parentSpanId"] == delivery["spanId"])
            .cloned()
            .ok_or_else(|| format!("{} spans", spans.len()))
    });
    assert_eq!(hop["traceId"], EVENT_TRACE);

    let text = scrape(&d);
    assert!(metric(&text, "wisp_spans_exported_total") >= 4.0, "{text}");
}

#[test]
fn an_unreachable_collector_costs_requests_nothing() {
    let mark = unique("trace-down");
    let _sweep = Sweep(mark.clone());
    // A port nobody listens on.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = Daemon::start_with(&["--otlp-endpoint", &format!("http://127.0.0.1:{closed}")]);
    d.create_service(&testapp_service("down", &[(MARK, &mark)], &[], json!({})));
    d.wait_service_ready("down");
    let mut c = d.client("down.default.localhost");
    for _ in 0..20 {
        assert_eq!(c.get("/").expect("answered").status, 200);
    }
    wait_for("failed exports counted", || {
        let text = scrape(&d);
        let dropped = metric(&text, "wisp_spans_dropped_total{reason=\"export_failed\"}")
            + metric(&text, "wisp_spans_dropped_total{reason=\"queue_full\"}");
        if dropped > 0.0 {
            Ok(())
        } else {
            Err(text
                .lines()
                .filter(|l| l.starts_with("wisp_spans"))
                .collect::<Vec<_>>()
                .join("\n"))
        }
    });
    assert_eq!(c.get("/").expect("still answered").status, 200);
    assert!(metric(&scrape(&d), "wisp_spans_exported_total") == 0.0);
}
