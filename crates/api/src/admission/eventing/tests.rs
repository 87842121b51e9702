//! Table tests for the Eventing webhook: each kind's defaults, each validation rule (refused
//! with Knative's message and path, and the valid neighbour accepted), the update rules, and
//! Knative's sample manifests admitted as they are.

use serde_json::{Value, json};

use super::super::{AdmissionContext, AdmissionError, Operation, admit};
use crate::eventing::tests::{
    API_SERVER_SOURCE, BROKER, CHANNEL, CONTAINER_SOURCE, IN_MEMORY_CHANNEL, PARALLEL, PING_SOURCE,
    SEQUENCE, SINK_BINDING, SUBSCRIPTION, TRIGGER, yaml,
};
use crate::kinds::{self, ResourceInfo};

fn ctx() -> AdmissionContext {
    AdmissionContext::new("alice")
}

fn create_with(
    info: &ResourceInfo,
    v: Value,
    ctx: &AdmissionContext,
) -> Result<Value, AdmissionError> {
    admit(info, Operation::Create, None, v, ctx)
}

fn create(info: &ResourceInfo, v: Value) -> Result<Value, AdmissionError> {
    create_with(info, v, &ctx())
}

fn update(info: &ResourceInfo, old: &Value, new: Value) -> Result<Value, AdmissionError> {
    admit(info, Operation::Update, Some(old), new, &ctx())
}

fn ok(r: Result<Value, AdmissionError>) -> Value {
    match r {
        Ok(v) => v,
        Err(e) => panic!("refused: {e}"),
    }
}

fn err_text(r: Result<Value, AdmissionError>) -> String {
    match r {
        Ok(v) => format!("OK {v}"),
        Err(e) => e.to_string(),
    }
}

/// `base` with `patch` merged in (JSON merge patch: objects merge, `null` removes).
fn with(mut base: Value, patch: Value) -> Value {
    merge(&mut base, patch);
    base
}

fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(&k);
                } else {
                    merge(t.entry(k).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p,
    }
}

/// Runs `(name, object, expected rendering)` rows: `"OK"` means admitted.
fn table(info: &ResourceInfo, rows: Vec<(&str, Value, &str)>) {
    for (name, v, want) in rows {
        let got = err_text(create(info, v));
        if want == "OK" {
            assert!(got.starts_with("OK "), "{name}: {got}");
        } else {
            assert_eq!(got, want, "{name}");
        }
    }
}

fn meta() -> Value {
    json!({"name": "x", "namespace": "default"})
}

fn svc_ref(name: &str) -> Value {
    json!({"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": name}})
}

// ------------------------------------------------------------------ samples

#[test]
fn knative_samples_admit() {
    let samples: &[(&ResourceInfo, &str)] = &[
        (&kinds::BROKERS, BROKER),
        (&kinds::TRIGGERS, TRIGGER),
        (&kinds::PING_SOURCES, PING_SOURCE),
        (&kinds::SEQUENCES, SEQUENCE),
        (&kinds::PARALLELS, PARALLEL),
        (&kinds::SUBSCRIPTIONS, SUBSCRIPTION),
        (&kinds::API_SERVER_SOURCES, API_SERVER_SOURCE),
        (&kinds::CONTAINER_SOURCES, CONTAINER_SOURCE),
        (&kinds::SINK_BINDINGS, SINK_BINDING),
        (&kinds::CHANNELS, CHANNEL),
        (&kinds::IN_MEMORY_CHANNELS, IN_MEMORY_CHANNEL),
    ];
    for (info, text) in samples {
        let stored = ok(create(info, yaml(text)));
        // Admission is idempotent: the stored object admits unchanged, as an update too.
        assert_eq!(ok(create(info, stored.clone())), stored, "{}", info.kind);
        assert_eq!(
            ok(update(info, &stored, stored.clone())),
            stored,
            "{}",
            info.kind
        );
    }
}

#[test]
fn unknown_fields_have_paths() {
    let v = with(
        yaml(TRIGGER),
        json!({"spec": {"subscriber": {"uir": "/x"}, "delivery": {"retries": 2}}}),
    );
    assert_eq!(
        err_text(create(&kinds::TRIGGERS, v)),
        "unknown field \"retries\": spec.delivery.retries; unknown field \"uir\": spec.subscriber.uir"
    );
    let v = with(yaml(SEQUENCE), json!({"spec": {"step": []}}));
    assert_eq!(
        err_text(create(&kinds::SEQUENCES, v)),
        "unknown field \"step\": spec.step"
    );
    let v = with(yaml(PING_SOURCE), json!({"spec": {"data": 5}}));
    assert!(err_text(create(&kinds::PING_SOURCES, v)).ends_with(": spec.data"));
}

// ------------------------------------------------------------------- Broker

#[test]
fn broker_defaults() {
    let b = ok(create(
        &kinds::BROKERS,
        json!({"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "metadata": meta()}),
    ));
    assert_eq!(
        b["metadata"]["annotations"]["eventing.knative.dev/broker.class"],
        "MTChannelBasedBroker"
    );
    assert_eq!(
        b["spec"],
        json!({"delivery": {"retry": 10, "backoffPolicy": "exponential", "backoffDelay": "PT0.2S"}})
    );
    // A given class and delivery are kept; refs get the broker's namespace.
    let b = ok(create(
        &kinds::BROKERS,
        json!({"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
               "metadata": {"name": "x", "namespace": "team",
                            "annotations": {"eventing.knative.dev/broker.class": "Kafka"}},
               "spec": {"config": {"apiVersion": "v1", "kind": "ConfigMap", "name": "cfg"},
                        "delivery": {"deadLetterSink": svc_ref("dlq")}}}),
    ));
    assert_eq!(
        b["metadata"]["annotations"]["eventing.knative.dev/broker.class"],
        "Kafka"
    );
    assert_eq!(b["spec"]["config"]["namespace"], "team");
    assert_eq!(
        b["spec"]["delivery"],
        json!({"deadLetterSink": {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "dlq", "namespace": "team"}}})
    );
    // A wisp deployment may configure Knative's default config reference.
    let mut c = ctx();
    c.config.eventing.default_broker_config = Some(crate::eventing::KReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "config-br-default-channel".into(),
        namespace: "knative-eventing".into(),
        ..Default::default()
    });
    let b = ok(create_with(
        &kinds::BROKERS,
        json!({"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "metadata": meta()}),
        &c,
    ));
    assert_eq!(b["spec"]["config"]["namespace"], "knative-eventing");
}

#[test]
fn broker_validation() {
    let b = |spec: Value| json!({"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "metadata": meta(), "spec": spec});
    table(
        &kinds::BROKERS,
        vec![
            ("empty spec", b(json!({})), "OK"),
            (
                "config needs kind, name, apiVersion",
                b(json!({"config": {"namespace": "default"}})),
                "missing field(s): spec.config.apiVersion, spec.config.kind, spec.config.name",
            ),
            (
                "config in another namespace is allowed",
                b(
                    json!({"config": {"apiVersion": "v1", "kind": "ConfigMap", "name": "c", "namespace": "other"}}),
                ),
                "OK",
            ),
            (
                "negative retry",
                b(json!({"delivery": {"retry": -1}})),
                "invalid value: -1: spec.delivery.retry (retry must be zero or more)",
            ),
            (
                "bad policy",
                b(json!({"delivery": {"backoffPolicy": "fibonacci"}})),
                "invalid value: fibonacci: spec.delivery.backoffPolicy (expected linear or exponential)",
            ),
            (
                "bad delay",
                b(json!({"delivery": {"backoffDelay": "5s"}})),
                "invalid value: 5s: spec.delivery.backoffDelay (expected an ISO-8601 duration such as PT0.2S: \"5s\": expected 'P' period mark at the start)",
            ),
            (
                "negative delay",
                b(json!({"delivery": {"backoffDelay": "-PT1S"}})),
                "invalid value: -PT1S: spec.delivery.backoffDelay (the duration must not be negative)",
            ),
            (
                "zero timeout",
                b(json!({"delivery": {"timeout": "PT0S"}})),
                "invalid value: PT0S: spec.delivery.timeout (the duration must be greater than zero)",
            ),
            (
                "retryAfterMax",
                b(
                    json!({"delivery": {"retryAfterMax": "PT0S", "timeout": "PT1M", "format": "json"}}),
                ),
                "OK",
            ),
            (
                "negative retryAfterMax",
                b(json!({"delivery": {"retryAfterMax": "-PT5S"}})),
                "invalid value: -PT5S: spec.delivery.retryAfterMax (the duration must not be negative)",
            ),
            (
                "bad format",
                b(json!({"delivery": {"format": "xml"}})),
                "invalid value: xml: spec.delivery.format (expected json or binary)",
            ),
            (
                "dead letter sink without either",
                b(json!({"delivery": {"deadLetterSink": {}}})),
                "expected at least one, got none: spec.delivery.deadLetterSink.ref, spec.delivery.deadLetterSink.uri",
            ),
            (
                "empty class",
                with(
                    b(json!({})),
                    json!({"metadata": {"annotations": {"eventing.knative.dev/broker.class": ""}}}),
                ),
                "missing field(s): metadata.annotations[eventing.knative.dev/broker.class]",
            ),
            (
                "bad name",
                with(b(json!({})), json!({"metadata": {"name": "Bad_Name"}})),
                "invalid value: Bad_Name: metadata.name (a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*'))",
            ),
        ],
    );
}

#[test]
fn broker_feature_flags() {
    let mut c = ctx();
    c.config.eventing.delivery_retry_after = false;
    c.config.eventing.delivery_timeout = false;
    let v = with(
        yaml(BROKER),
        json!({"spec": {"delivery": {"retryAfterMax": "PT1S"}}}),
    );
    assert_eq!(
        err_text(create_with(&kinds::BROKERS, v, &c)),
        "must not set the field(s): spec.delivery.retryAfterMax, spec.delivery.timeout"
    );
}

#[test]
fn broker_updates() {
    let stored = ok(create(&kinds::BROKERS, yaml(BROKER)));
    // Delivery may change.
    let v = with(stored.clone(), json!({"spec": {"delivery": {"retry": 1}}}));
    assert!(update(&kinds::BROKERS, &stored, v).is_ok());
    // The config may not.
    let v = with(
        stored.clone(),
        json!({"spec": {"config": {"name": "other"}}}),
    );
    assert_eq!(
        err_text(update(&kinds::BROKERS, &stored, v)),
        "Immutable fields changed (-old +new): spec (config.name: -\"config-br-default-channel\" +\"other\")"
    );
    // Nor the class.
    let v = with(
        stored.clone(),
        json!({"metadata": {"annotations": {"eventing.knative.dev/broker.class": "Kafka"}}}),
    );
    assert_eq!(
        err_text(update(&kinds::BROKERS, &stored, v)),
        "Immutable annotations changed (-old +new): metadata.annotations[eventing.knative.dev/broker.class] (-\"MTChannelBasedBroker\" +\"Kafka\")"
    );
    // A body without the annotation gets the default class again: fine for a default-class
    // broker.
    let v = with(stored.clone(), json!({"metadata": {"annotations": null}}));
    assert!(update(&kinds::BROKERS, &stored, v).is_ok());
}

// ------------------------------------------------------------------ Trigger

fn trigger(spec: Value) -> Value {
    json!({"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger", "metadata": meta(), "spec": spec})
}

#[test]
fn trigger_defaults() {
    let t = ok(create(
        &kinds::TRIGGERS,
        trigger(json!({"broker": "default", "subscriber": svc_ref("svc")})),
    ));
    assert_eq!(
        t["metadata"]["labels"]["eventing.knative.dev/broker"],
        "default"
    );
    assert_eq!(t["spec"]["filter"], json!({}));
    assert_eq!(t["spec"]["subscriber"]["ref"]["namespace"], "default");
    // The label follows the broker even when the user set another value.
    let t = ok(create(
        &kinds::TRIGGERS,
        with(
            trigger(json!({"broker": "b2", "subscriber": {"uri": "http://x"}})),
            json!({"metadata": {"labels": {"eventing.knative.dev/broker": "nope", "app": "a"}}}),
        ),
    ));
    assert_eq!(
        t["metadata"]["labels"],
        json!({"app": "a", "eventing.knative.dev/broker": "b2"})
    );
}

#[test]
fn trigger_validation() {
    let sub = svc_ref("svc");
    let t = |extra: Value| {
        trigger(with(
            json!({"broker": "default", "subscriber": sub.clone()}),
            extra,
        ))
    };
    table(
        &kinds::TRIGGERS,
        vec![
            (
                "no broker",
                trigger(json!({"subscriber": sub.clone()})),
                "missing field(s): spec.broker",
            ),
            (
                "broker and brokerRef",
                t(json!({"brokerRef": {"name": "b"}})),
                "expected exactly one, got both: spec.broker, spec.brokerRef",
            ),
            (
                "brokerRef with a namespace",
                trigger(
                    json!({"brokerRef": {"name": "b", "namespace": "other"}, "subscriber": sub.clone()}),
                ),
                "must not set the field(s): spec.brokerRef.namespace (only name, apiVersion and kind are supported fields when feature.CrossNamespaceEventLinks is disabled)",
            ),
            (
                "no subscriber",
                trigger(json!({"broker": "default"})),
                "expected at least one, got none: spec.subscriber.ref, spec.subscriber.uri",
            ),
            (
                "relative uri alone",
                t(json!({"subscriber": {"ref": null, "uri": "/events"}})),
                "invalid value: Relative URI is not allowed when Ref and [apiVersion, kind, name] is absent: spec.subscriber.uri",
            ),
            (
                "uri without host",
                t(json!({"subscriber": {"ref": null, "uri": "mailto:someone"}})),
                "invalid value: Relative URI is not allowed when Ref and [apiVersion, kind, name] is absent: spec.subscriber.uri",
            ),
            (
                "absolute uri with ref",
                t(json!({"subscriber": {"uri": "http://x/y"}})),
                "Absolute URI is not allowed when Ref or [apiVersion, kind, name] is present: spec.subscriber.ref, spec.subscriber.uri",
            ),
            (
                "ref plus relative uri",
                t(json!({"subscriber": {"uri": "/path?q=1"}})),
                "OK",
            ),
            (
                "ref plus relative uri still checks the ref",
                t(json!({"subscriber": {"ref": {"name": null}, "uri": "/path"}})),
                "missing field(s): spec.subscriber.ref.name",
            ),
            (
                "uri with spaces",
                t(json!({"subscriber": {"ref": null, "uri": "http://a b"}})),
                "invalid value: http://a b: spec.subscriber.uri (a URI must not contain spaces or control characters)",
            ),
            (
                "ref in another namespace",
                t(json!({"subscriber": {"ref": {"namespace": "other"}}})),
                "mismatched namespaces: spec.subscriber.ref.namespace (parent namespace: \"default\" does not match ref: \"other\")",
            ),
            (
                "ref with group",
                t(json!({"subscriber": {"ref": {"group": "serving.knative.dev"}}})),
                "must not set the field(s): spec.subscriber.ref.group",
            ),
            (
                "bad CA certs",
                t(json!({"subscriber": {"ref": null, "uri": "https://x", "CACerts": "nope"}})),
                "invalid value: CA Cert provided is invalid: spec.subscriber.CACerts",
            ),
            (
                "good CA certs",
                t(
                    json!({"subscriber": {"ref": null, "uri": "https://x", "CACerts": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}}),
                ),
                "OK",
            ),
            (
                "filter attribute names",
                t(json!({"filter": {"attributes": {"type": "", "Source": "x", "9x": "y"}}})),
                "invalid key name \"9x\": spec.filter.attributes[9x] (Attribute name must start with a letter and can only contain lowercase alphanumeric); invalid key name \"Source\": spec.filter.attributes[Source] (Attribute name must start with a letter and can only contain lowercase alphanumeric)",
            ),
            (
                "delivery",
                t(
                    json!({"delivery": {"retry": 3, "backoffPolicy": "linear", "backoffDelay": "PT0.5S"}}),
                ),
                "OK",
            ),
            (
                "dependency annotation",
                with(
                    t(json!({})),
                    json!({"metadata": {"annotations": {"knative.dev/dependency": "{\"kind\":\"PingSource\",\"namespace\":\"other\",\"apiVersion\":\"sources.knative.dev/v1\"}"}}}),
                ),
                "Namespace must be empty or equal to the trigger namespace \"default\": metadata.annotations[knative.dev/dependency].namespace; missing field(s): metadata.annotations[knative.dev/dependency].name",
            ),
            (
                "dependency annotation not JSON",
                with(
                    t(json!({})),
                    json!({"metadata": {"annotations": {"knative.dev/dependency": "ping"}}}),
                ),
                "The provided annotation was not a corev1.ObjectReference: \"ping\": metadata.annotations[knative.dev/dependency] (expected value at line 1 column 1)",
            ),
            (
                "injection on another broker",
                with(
                    t(json!({"broker": "b"})),
                    json!({"metadata": {"annotations": {"eventing.knative.dev/injection": "enabled"}}}),
                ),
                "The provided injection annotation is only used for default broker, but non-default broker specified here: \"b\": metadata.annotations[eventing.knative.dev/injection]",
            ),
            (
                "injection value",
                with(
                    t(json!({})),
                    json!({"metadata": {"annotations": {"eventing.knative.dev/injection": "yes"}}}),
                ),
                "The provided injection annotation value can only be \"enabled\" or \"disabled\", not \"yes\": metadata.annotations[eventing.knative.dev/injection]",
            ),
        ],
    );
}

#[test]
fn trigger_filters() {
    let t = |filters: Value| {
        trigger(json!({"broker": "default", "subscriber": {"uri": "http://x"}, "filters": filters}))
    };
    table(
        &kinds::TRIGGERS,
        vec![
            (
                "every dialect",
                t(json!([
                    {"exact": {"type": "a"}}, {"prefix": {"source": "/a"}}, {"suffix": {"subject": ".png"}},
                    {"all": [{"exact": {"type": "a"}}]}, {"any": [{"exact": {"type": "a"}}, {"exact": {"type": "b"}}]},
                    {"not": {"exact": {"type": "a"}}}, {"cesql": "type = 'a'"}
                ])),
                "OK",
            ),
            (
                "two dialects",
                t(json!([{"exact": {"type": "a"}}, {"exact": {"type": "a"}, "cesql": "true"}])),
                "multiple dialects found, filters can have only one dialect set: spec.filters[1] (exact, cesql)",
            ),
            (
                "no dialect",
                t(json!([{"exact": {"type": "a"}}, {}])),
                "expected exactly one dialect, got none: spec.filters[1] (set one of exact, prefix, suffix, all, any, not, cesql)",
            ),
            (
                "nested paths",
                t(
                    json!([{"all": [{"exact": {"type": "a"}}, {"any": [{"prefix": {"Type": "x"}}]}]}]),
                ),
                "invalid key name \"Type\": spec.filters[0].all[1].any[0].prefix[Type] (Attribute name must start with a letter and can only contain lowercase alphanumeric)",
            ),
            (
                "not is checked",
                t(json!([{"not": {"suffix": {"type": ""}}}])),
                "missing value: spec.filters[0].not.suffix[type] (exact, prefix and suffix need a non-empty value)",
            ),
            (
                "two attributes",
                t(json!([{"exact": {"type": "a", "source": "b"}}])),
                "expected exactly one attribute, got 2: spec.filters[0].exact (write one filter per attribute inside `all` to require several)",
            ),
            (
                "empty prefix",
                t(json!([{"prefix": {"type": ""}}])),
                "missing value: spec.filters[0].prefix[type] (exact, prefix and suffix need a non-empty value)",
            ),
            (
                "empty all list is no dialect",
                t(json!([{"all": []}])),
                "expected exactly one dialect, got none: spec.filters[0] (set one of exact, prefix, suffix, all, any, not, cesql)",
            ),
            (
                "cesql without a checker is only checked for emptiness",
                t(json!([{"cesql": "this is ((( not parsed"}])),
                "OK",
            ),
        ],
    );
}

fn fake_cesql(expr: &str) -> Result<(), String> {
    if expr.matches('(').count() == expr.matches(')').count() {
        Ok(())
    } else {
        Err("unbalanced parentheses".to_string())
    }
}

#[test]
fn trigger_cesql_hook() {
    let mut c = ctx();
    c.config.eventing.cesql_check = Some(fake_cesql);
    let v = trigger(
        json!({"broker": "default", "subscriber": {"uri": "http://x"},
        "filters": [{"cesql": "(type = 'a')"}, {"any": [{"cesql": "((a"}]}]}),
    );
    assert_eq!(
        err_text(create_with(&kinds::TRIGGERS, v, &c)),
        "invalid value: ((a: spec.filters[1].any[0].cesql (unbalanced parentheses)"
    );
    assert!(create_with(&kinds::TRIGGERS, yaml(TRIGGER), &c).is_ok());
    // The hook is part of the configuration's identity.
    assert_ne!(c.config, ctx().config);
}

#[test]
fn trigger_updates() {
    let stored = ok(create(&kinds::TRIGGERS, yaml(TRIGGER)));
    let v = with(stored.clone(), json!({"spec": {"broker": "other"}}));
    assert_eq!(
        err_text(update(&kinds::TRIGGERS, &stored, v)),
        "Immutable fields changed (-old +new): spec.broker (-\"default\" +\"other\")"
    );
    let v = with(
        stored.clone(),
        json!({"spec": {"subscriber": {"uri": "/other"}, "filters": null}}),
    );
    let updated = ok(update(&kinds::TRIGGERS, &stored, v));
    assert_eq!(updated["spec"]["subscriber"]["uri"], "/other");
}

// ------------------------------------------------------------ messaging

#[test]
fn channel_rules() {
    let c = |spec: Value| json!({"apiVersion": "messaging.knative.dev/v1", "kind": "Channel", "metadata": meta(), "spec": spec});
    let stored = ok(create(&kinds::CHANNELS, c(json!({}))));
    assert_eq!(
        stored["spec"]["channelTemplate"],
        json!({"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel"})
    );
    assert_eq!(
        stored["metadata"]["annotations"]["messaging.knative.dev/subscribable"],
        "v1"
    );
    table(
        &kinds::CHANNELS,
        vec![
            (
                "template without kind",
                c(json!({"channelTemplate": {"apiVersion": "messaging.knative.dev/v1"}})),
                "missing field(s): spec.channelTemplate.kind",
            ),
            (
                "subscribers",
                c(json!({"subscribers": [{"subscriberUri": "http://x"}]})),
                "must not set the field(s): spec.subscribers",
            ),
            (
                "delivery",
                c(json!({"delivery": {"backoffPolicy": "linear", "retry": -2}})),
                "invalid value: -2: spec.delivery.retry (retry must be zero or more)",
            ),
        ],
    );
    let v = with(
        stored.clone(),
        json!({"spec": {"channelTemplate": {"kind": "KafkaChannel"}}}),
    );
    assert_eq!(
        err_text(update(&kinds::CHANNELS, &stored, v)),
        "Immutable fields changed (-old +new): spec (channelTemplate.kind: -\"InMemoryChannel\" +\"KafkaChannel\")"
    );
}

#[test]
fn in_memory_channel_rules() {
    let c = |spec: Value| json!({"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel", "metadata": meta(), "spec": spec});
    let stored = ok(create(&kinds::IN_MEMORY_CHANNELS, c(json!({}))));
    assert_eq!(
        stored["metadata"]["annotations"]["messaging.knative.dev/subscribable"],
        "v1"
    );
    table(
        &kinds::IN_MEMORY_CHANNELS,
        vec![
            (
                "subscriber without uris",
                c(json!({"subscribers": [{"replyUri": "http://r"}, {"uid": "u"}]})),
                "missing field(s): spec.subscribers[1].replyUri, spec.subscribers[1].subscriberUri (expected at least one of, got none)",
            ),
            (
                "scope",
                with(
                    c(json!({})),
                    json!({"metadata": {"annotations": {"eventing.knative.dev/scope": "galaxy"}}}),
                ),
                "invalid value: galaxy: metadata.annotations[eventing.knative.dev/scope] (expected either 'cluster' or 'namespace')",
            ),
        ],
    );
}

#[test]
fn subscription_rules() {
    let s = |spec: Value| json!({"apiVersion": "messaging.knative.dev/v1", "kind": "Subscription", "metadata": meta(), "spec": spec});
    let channel = json!({"apiVersion": "messaging.knative.dev/v1", "kind": "Channel", "name": "c"});
    let stored = ok(create(&kinds::SUBSCRIPTIONS, yaml(SUBSCRIPTION)));
    assert_eq!(stored["spec"]["subscriber"]["ref"]["namespace"], "default");
    assert_eq!(stored["spec"]["reply"]["ref"]["namespace"], "default");
    assert_eq!(stored["spec"]["channel"].get("namespace"), None);
    table(
        &kinds::SUBSCRIPTIONS,
        vec![
            (
                "nothing",
                s(json!({})),
                "missing field(s): spec.channel (the Subscription must reference a channel); missing field(s): spec.subscriber (the Subscription must reference a subscriber)",
            ),
            (
                "channel without apiVersion",
                s(
                    json!({"channel": {"kind": "Channel", "name": "c"}, "subscriber": {"uri": "http://x"}}),
                ),
                "missing field(s): spec.channel.apiVersion",
            ),
            (
                "channel in a namespace",
                s(
                    json!({"channel": with(channel.clone(), json!({"namespace": "default"})), "subscriber": {"uri": "http://x"}}),
                ),
                "must not set the field(s): spec.channel.namespace (only name, apiVersion and kind are supported fields when feature.CrossNamespaceEventLinks is disabled)",
            ),
            (
                "reply only",
                s(json!({"channel": channel.clone(), "reply": {"uri": "http://x"}})),
                "missing field(s): spec.subscriber (the Subscription must reference a subscriber)",
            ),
            (
                "empty subscriber",
                s(json!({"channel": channel.clone(), "subscriber": {}})),
                "missing field(s): spec.subscriber (the Subscription must reference a subscriber)",
            ),
            (
                "bad reply",
                s(
                    json!({"channel": channel.clone(), "subscriber": {"uri": "http://x"}, "reply": {"uri": "/r"}}),
                ),
                "invalid value: Relative URI is not allowed when Ref and [apiVersion, kind, name] is absent: spec.reply.uri",
            ),
            (
                "dead letter sink",
                s(
                    json!({"channel": channel.clone(), "subscriber": {"uri": "http://x"},
                         "delivery": {"deadLetterSink": {"uri": "/dls"}}}),
                ),
                "invalid value: Relative URI is not allowed when Ref and [apiVersion, kind, name] is absent: spec.delivery.deadLetterSink.uri",
            ),
        ],
    );
    let v = with(
        stored.clone(),
        json!({"spec": {"channel": {"name": "other"}}}),
    );
    assert_eq!(
        err_text(update(&kinds::SUBSCRIPTIONS, &stored, v)),
        "Immutable fields changed (-old +new): spec (channel.name: -\"my-channel\" +\"other\")"
    );
    let v = with(
        stored.clone(),
        json!({"spec": {"subscriber": {"ref": {"name": "other"}}, "reply": null}}),
    );
    assert!(update(&kinds::SUBSCRIPTIONS, &stored, v).is_ok());
}

// ---------------------------------------------------------------- flows

#[test]
fn sequence_rules() {
    let s = |spec: Value| json!({"apiVersion": "flows.knative.dev/v1", "kind": "Sequence", "metadata": meta(), "spec": spec});
    let stored = ok(create(
        &kinds::SEQUENCES,
        s(json!({"steps": [svc_ref("a"), {"uri": "http://b"}]})),
    ));
    assert_eq!(
        stored["spec"]["channelTemplate"],
        json!({"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel"})
    );
    assert_eq!(stored["spec"]["steps"][0]["ref"]["namespace"], "default");
    table(
        &kinds::SEQUENCES,
        vec![
            (
                "no steps",
                s(json!({"steps": []})),
                "missing field(s): spec.steps",
            ),
            (
                "bad steps",
                s(
                    json!({"steps": [{"uri": "http://a"}, {}, {"uri": "http://c", "delivery": {"retry": -1}}]}),
                ),
                "expected at least one, got none: spec.steps[1].ref, spec.steps[1].uri; invalid value: -1: spec.steps[2].delivery.retry (retry must be zero or more)",
            ),
            (
                "template without apiVersion",
                s(
                    json!({"steps": [{"uri": "http://a"}], "channelTemplate": {"kind": "InMemoryChannel"}}),
                ),
                "missing field(s): spec.channelTemplate.apiVersion",
            ),
            (
                "bad reply",
                s(json!({"steps": [{"uri": "http://a"}], "reply": {"ref": {"name": "r"}}})),
                "missing field(s): spec.reply.ref.apiVersion, spec.reply.ref.kind",
            ),
        ],
    );
}

#[test]
fn parallel_rules() {
    let p = |spec: Value| json!({"apiVersion": "flows.knative.dev/v1", "kind": "Parallel", "metadata": meta(), "spec": spec});
    let stored = ok(create(&kinds::PARALLELS, yaml(PARALLEL)));
    assert_eq!(
        stored["spec"]["branches"][0]["filter"]["ref"]["namespace"],
        "default"
    );
    table(
        &kinds::PARALLELS,
        vec![
            (
                "no branches",
                p(json!({"branches": []})),
                "missing field(s): spec.branches",
            ),
            (
                "bad branch",
                p(json!({"branches": [{"subscriber": {"uri": "http://a"}},
                                      {"subscriber": {}, "filter": {"uri": "/f"}, "reply": {"uri": "http://r"},
                                       "delivery": {"backoffPolicy": "random"}}]})),
                "expected at least one, got none: spec.branches[1].subscriber.ref, spec.branches[1].subscriber.uri; invalid value: Relative URI is not allowed when Ref and [apiVersion, kind, name] is absent: spec.branches[1].filter.uri; invalid value: random: spec.branches[1].delivery.backoffPolicy (expected linear or exponential)",
            ),
        ],
    );
}

// -------------------------------------------------------------- sources

#[test]
fn ping_source_rules() {
    let p = |spec: Value| {
        json!({"apiVersion": "sources.knative.dev/v1", "kind": "PingSource", "metadata": meta(),
               "spec": with(json!({"sink": {"uri": "http://x"}}), spec)})
    };
    let stored = ok(create(&kinds::PING_SOURCES, p(json!({}))));
    assert_eq!(stored["spec"]["schedule"], "* * * * *");
    table(
        &kinds::PING_SOURCES,
        vec![
            (
                "no sink",
                json!({"apiVersion": "sources.knative.dev/v1", "kind": "PingSource", "metadata": meta(), "spec": {}}),
                "expected at least one, got none: spec.sink.ref, spec.sink.uri",
            ),
            (
                "cron tz prefix",
                p(json!({"schedule": "CRON_TZ=America/New_York 0 9 * * 1-5"})),
                "OK",
            ),
            (
                "every",
                p(json!({"schedule": "@every 1m"})),
                "invalid value: unsupported descriptor @every: spec.schedule",
            ),
            (
                "four fields",
                p(json!({"schedule": "* * * *"})),
                "invalid value: expected 5 to 6 fields, found 4: [* * * *]: spec.schedule",
            ),
            (
                "out of range",
                p(json!({"schedule": "0 25 * * *"})),
                "invalid value: end of range (25) above maximum (23): 25: spec.schedule",
            ),
            (
                "timezone",
                p(json!({"timezone": "Mars/Olympus Mons"})),
                "invalid value: provided bad location Mars/Olympus Mons: unknown time zone Mars/Olympus Mons: spec.timezone",
            ),
            (
                "bad timezone",
                p(json!({"timezone": "../../etc"})),
                "invalid value: provided bad location ../../etc: unknown time zone ../../etc: spec.timezone",
            ),
            (
                "timezone and a CRON_TZ prefix",
                p(json!({"timezone": "UTC", "schedule": "CRON_TZ=UTC * * * * *"})),
                "invalid value: failed to parse int from CRON_TZ=UTC: strconv.Atoi: parsing \"CRON_TZ=UTC\": invalid syntax: spec.schedule",
            ),
            (
                "data and dataBase64",
                p(json!({"data": "a", "dataBase64": "YQ=="})),
                "expected exactly one, got both: spec.data, spec.dataBase64",
            ),
            (
                "bad base64",
                p(json!({"dataBase64": "YQ="})),
                "invalid value: illegal base64 data at input byte 3: spec.dataBase64",
            ),
            (
                "json data must be an object",
                p(json!({"contentType": "application/json", "data": "[1, 2]"})),
                "invalid value: invalid type: sequence, expected a map at line 1 column 0: spec.data",
            ),
            (
                "json base64 data",
                p(json!({"contentType": "application/json", "dataBase64": "eyJhIjogMX0="})),
                "OK",
            ),
            (
                "text data",
                p(json!({"contentType": "text/plain", "data": "[not json"})),
                "OK",
            ),
            (
                "ceOverrides",
                p(json!({"ceOverrides": {"extensions": {"ok1": "a", "not-ok": "b"}}})),
                "invalid key name \"not-ok\": spec.ceOverrides.extensions[not-ok] (keys are expected to be alphanumeric)",
            ),
        ],
    );
    let mut c = ctx();
    c.config.eventing.ping_data_max_size = 4;
    assert_eq!(
        err_text(create_with(
            &kinds::PING_SOURCES,
            p(json!({"data": "hello"})),
            &c
        )),
        "invalid value: the data length of 5 bytes exceeds limit set at 4.: spec.data"
    );
}

#[test]
fn base64_like_go() {
    let table: &[(&str, Result<&[u8], &str>)] = &[
        ("", Ok(b"")),
        ("YQ==", Ok(b"a")),
        ("YWI=", Ok(b"ab")),
        ("YWJj", Ok(b"abc")),
        ("YWJj\nZGVm", Ok(b"abcdef")),
        ("YQ", Err("illegal base64 data at input byte 2")),
        ("Y===", Err("illegal base64 data at input byte 1")),
        ("YQ==YQ==", Err("illegal base64 data at input byte 4")),
        ("YW=j", Err("illegal base64 data at input byte 3")),
        ("YW!j", Err("illegal base64 data at input byte 2")),
    ];
    for (input, want) in table {
        let got = super::sources::base64_decode(input);
        assert_eq!(
            got.as_deref().map_err(String::as_str),
            want.map(|b| b),
            "{input}"
        );
    }
}

#[test]
fn api_server_source_rules() {
    let a = |spec: Value| {
        json!({"apiVersion": "sources.knative.dev/v1", "kind": "ApiServerSource", "metadata": meta(),
               "spec": with(json!({"sink": {"uri": "http://x"}, "resources": [{"apiVersion": "v1", "kind": "Event"}]}), spec)})
    };
    let stored = ok(create(&kinds::API_SERVER_SOURCES, a(json!({}))));
    assert_eq!(stored["spec"]["mode"], "Reference");
    assert_eq!(stored["spec"]["serviceAccountName"], "default");
    table(
        &kinds::API_SERVER_SOURCES,
        vec![
            (
                "mode",
                a(json!({"mode": "Everything"})),
                "invalid value: Everything: spec.mode (expected Reference or Resource)",
            ),
            (
                "no resources",
                a(json!({"resources": []})),
                "missing field(s): spec.resources",
            ),
            (
                "resource without apiVersion and kind",
                a(json!({"resources": [{"apiVersion": "v1", "kind": "Event"}, {"kind": " "}]})),
                "missing field(s): spec.resources[1].apiVersion, spec.resources[1].kind",
            ),
            (
                "bad apiVersion",
                a(json!({"resources": [{"apiVersion": "a/b/c", "kind": "X"}]})),
                "invalid value: a/b/c: spec.resources[0].apiVersion (unexpected GroupVersion string: a/b/c)",
            ),
            (
                "owner",
                a(json!({"owner": {"apiVersion": "apps/v1"}})),
                "missing field(s): spec.owner.kind",
            ),
            (
                "selector operator",
                a(json!({"resources": [{"apiVersion": "v1", "kind": "Pod",
                          "selector": {"matchExpressions": [{"key": "app", "operator": "Near"},
                                                            {"key": "tier", "operator": "In"},
                                                            {"key": "x", "operator": "Exists", "values": ["y"]}]}}]})),
                "\"Near\" is not a valid label selector operator: spec.resources[0].selector.matchExpressions[0].operator; for 'In', 'NotIn' operators, values set can't be empty: spec.resources[0].selector.matchExpressions[1].values; values set must be empty for 'Exists' and 'DoesNotExist': spec.resources[0].selector.matchExpressions[2].values",
            ),
            (
                "namespace selector label value",
                a(json!({"namespaceSelector": {"matchLabels": {"env": "-bad"}}})),
                "invalid value: -bad: spec.namespaceSelector.matchLabels[env] (a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character)",
            ),
            (
                "filters are feature-gated",
                a(json!({"filters": [{"exact": {"type": "x"}}]})),
                "Filters is not empty but the NewAPIServerFilters feature is disabled.: spec.filters",
            ),
        ],
    );
    let mut c = ctx();
    c.config.eventing.new_apiserver_filters = true;
    assert_eq!(
        err_text(create_with(
            &kinds::API_SERVER_SOURCES,
            a(json!({"filters": [{"exact": {"type": "x"}}, {}]})),
            &c
        )),
        "expected exactly one dialect, got none: spec.filters[1] (set one of exact, prefix, suffix, all, any, not, cesql)"
    );
}

#[test]
fn container_source_rules() {
    let c = |containers: Value| {
        json!({"apiVersion": "sources.knative.dev/v1", "kind": "ContainerSource", "metadata": meta(),
               "spec": {"sink": {"uri": "http://x"}, "template": {"spec": {"containers": containers}}}})
    };
    let stored = ok(create(
        &kinds::CONTAINER_SOURCES,
        c(json!([{"image": "a"}, {"image": "b", "name": "named"}])),
    ));
    let names: Vec<&str> = stored["spec"]["template"]["spec"]["containers"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["x-0", "named"]);
    table(
        &kinds::CONTAINER_SOURCES,
        vec![
            (
                "no containers",
                c(json!([])),
                "missing field(s): spec.template.spec.containers",
            ),
            (
                "no image",
                c(json!([{"image": "a"}, {"args": ["x"]}])),
                "missing field(s): spec.template.spec.containers[1].image",
            ),
            (
                "host process",
                c(json!([{"command": ["/bin/heartbeat"]}])),
                "OK",
            ),
            (
                "unknown pod field",
                c(
                    json!([{"image": "a", "imagePullPolicy": "Always", "livenessProbe": {"exec": {"command": ["true"]}}, "resource": {}}]),
                ),
                "unknown field \"resource\": spec.template.spec.containers[0].resource",
            ),
        ],
    );
}

#[test]
fn sink_binding_rules() {
    let b = |subject: Value| {
        json!({"apiVersion": "sources.knative.dev/v1", "kind": "SinkBinding", "metadata": meta(),
               "spec": {"sink": {"uri": "http://x"}, "subject": subject}})
    };
    let stored = ok(create(
        &kinds::SINK_BINDINGS,
        b(json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"})),
    ));
    assert_eq!(stored["spec"]["subject"]["namespace"], "default");
    table(
        &kinds::SINK_BINDINGS,
        vec![
            (
                "empty subject",
                b(json!({})),
                "expected exactly one, got neither: spec.subject.name, spec.subject.selector; missing field(s): spec.subject.apiVersion, spec.subject.kind",
            ),
            (
                "name and selector",
                b(
                    json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "selector": {"matchLabels": {"a": "b"}}}),
                ),
                "expected exactly one, got both: spec.subject.name, spec.subject.selector",
            ),
            (
                "other namespace",
                b(
                    json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": "other"}),
                ),
                "invalid value: other: spec.subject.namespace (the subject must be in the binding's namespace)",
            ),
            (
                "bad kind",
                b(json!({"apiVersion": "apps/v1", "kind": "Deploy-ment", "name": "web"})),
                "invalid value: a valid C identifier must start with alphabetic character or '_', followed by a string of alphanumeric characters or '_' (e.g. 'my_name',  or 'MY_NAME',  or 'MyName', regex used for validation is '[A-Za-z_][A-Za-z0-9_]*'): spec.subject.kind",
            ),
        ],
    );
}

#[test]
fn status_passes_through() {
    // Status is decoded strictly but never validated or changed by admission.
    let v = with(
        yaml(TRIGGER),
        json!({"status": {"observedGeneration": 3, "subscriberUri": "http://x",
                          "conditions": [{"type": "Ready", "status": "True"}]}}),
    );
    let stored = ok(create(&kinds::TRIGGERS, v));
    assert_eq!(stored["status"]["subscriberUri"], "http://x");
    let v = with(
        yaml(TRIGGER),
        json!({"status": {"subscriberURI": "http://x"}}),
    );
    assert_eq!(
        err_text(create(&kinds::TRIGGERS, v)),
        "unknown field \"subscriberURI\": status.subscriberURI"
    );
}
