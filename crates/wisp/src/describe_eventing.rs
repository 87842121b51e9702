//! kn's human-readable `describe` output for the Eventing kinds, as pure functions of the
//! object and `now`.
//!
//! The writer is `describe`'s (kn's `PrefixWriter` over a Go tabwriter, min width
//! 0, padding 2, flushed where kn flushes); the layouts are knative/client's
//! `pkg/commands/{broker,trigger,channel,subscription,source/*}/describe.go`. Where kn shows
//! less than the object says, wisp adds a section only when there is something in it: a
//! broker's or trigger's `Delivery`, a trigger's delivery order.

use std::time::SystemTime;

use wisp_api::eventing::{
    ApiServerSource, Broker, Channel, CloudEventOverrides, ContainerSource, DeliverySpec,
    Destination, PingSource, SinkBinding, Subscription, SubscriptionsApiFilter, Trigger,
};
use wisp_api::meta::{Condition, ConditionStatus};

use crate::describe::{Out, write_conditions, write_metadata};
use crate::eventing_flags::selector_text;

/// kn's `describe.Sink`: the reference (name, namespace if another, kind and apiVersion) and
/// the URI.
fn write_sink(out: &mut Out, prefix: &str, label: &str, namespace: &str, sink: &Destination) {
    let sub = out.attribute(prefix, label, "");
    if let Some(r) = &sink.ref_ {
        out.attribute(&sub, "Name", &r.name);
        if !r.namespace.is_empty() && r.namespace != namespace {
            out.attribute(&sub, "Namespace", &r.namespace);
        }
        out.attribute(&sub, "Resource", &format!("{} ({})", r.kind, r.api_version));
    }
    if let Some(uri) = &sink.uri {
        out.attribute(&sub, "URI", uri);
    }
}

/// wisp's `Delivery:` section: retries, back-off, timeout, dead letter sink.
fn write_delivery(out: &mut Out, namespace: &str, d: &DeliverySpec) {
    let sub = out.attribute("", "Delivery", "");
    if let Some(r) = d.retry {
        out.attribute(&sub, "Retry", &r.to_string());
    }
    if let Some(p) = &d.backoff_policy {
        out.attribute(&sub, "Backoff Policy", p);
    }
    if let Some(b) = &d.backoff_delay {
        out.attribute(&sub, "Backoff Delay", b);
    }
    if let Some(t) = &d.timeout {
        out.attribute(&sub, "Timeout", t);
    }
    if let Some(m) = &d.retry_after_max {
        out.attribute(&sub, "Retry-After Max", m);
    }
    if let Some(dls) = &d.dead_letter_sink {
        write_sink(out, &sub, "Dead Letter Sink", namespace, dls);
    }
}

/// kn's `writeCeOverrides`.
fn write_ce_overrides(out: &mut Out, overrides: &Option<CloudEventOverrides>) -> bool {
    let Some(o) = overrides.as_ref().filter(|o| !o.extensions.is_empty()) else {
        return false;
    };
    let sub = out.attribute("", "CloudEvent Overrides", "");
    for (k, v) in &o.extensions {
        out.attribute(&sub, k, v);
    }
    true
}

/// The end kn's source descriptions share: the sink, the CloudEvent overrides, the
/// conditions.
fn finish_source(
    mut out: Out,
    namespace: &str,
    sink: &Destination,
    overrides: &Option<CloudEventOverrides>,
    conditions: &[Condition],
    (details, now): (bool, SystemTime),
) -> String {
    write_sink(&mut out, "", "Sink", namespace, sink);
    out.line();
    out.flush();
    if write_ce_overrides(&mut out, overrides) {
        out.line();
        out.flush();
    }
    write_conditions(&mut out, conditions, details, now);
    out.finish()
}

fn address_url(address: Option<&wisp_api::eventing::Addressable>) -> &str {
    address.and_then(|a| a.url.as_deref()).unwrap_or("")
}

/// `broker describe`.
pub fn describe_broker(b: &Broker, details: bool, now: SystemTime) -> String {
    let mut out = Out::default();
    write_metadata(&mut out, &b.metadata, details, now);
    out.line();
    let sub = out.attribute("", "Address", "");
    out.attribute(&sub, "URL", address_url(b.status.address.as_ref()));
    if let Some(d) = &b.spec.delivery {
        out.line();
        write_delivery(&mut out, &b.metadata.namespace, d);
    }
    out.line();
    write_conditions(&mut out, &b.status.conditions, details, now);
    out.finish()
}

/// kn's `writeNestedFilters`.
fn write_filter(out: &mut Out, prefix: &str, f: &SubscriptionsApiFilter) {
    if !f.all.is_empty() {
        let sub = out.attribute(prefix, "all", "");
        for nested in &f.all {
            write_filter(out, &sub, nested);
        }
    }
    if !f.any.is_empty() {
        let sub = out.attribute(prefix, "any", "");
        for nested in &f.any {
            write_filter(out, &sub, nested);
        }
    }
    if let Some(not) = &f.not {
        let sub = out.attribute(prefix, "not", "");
        write_filter(out, &sub, not);
    }
    for (dialect, map) in [
        ("exact", &f.exact),
        ("prefix", &f.prefix),
        ("suffix", &f.suffix),
    ] {
        if !map.is_empty() {
            let sub = out.attribute(prefix, dialect, "");
            for (k, v) in map {
                out.attribute(&sub, k, v);
            }
        }
    }
    if !f.cesql.is_empty() {
        out.attribute(prefix, "cesql", &f.cesql);
    }
}

/// `trigger describe`.
pub fn describe_trigger(t: &Trigger, details: bool, now: SystemTime) -> String {
    let mut out = Out::default();
    write_metadata(&mut out, &t.metadata, details, now);
    out.attribute("", "Broker", &t.spec.broker);
    if let Some(f) = t.spec.filter.as_ref().filter(|f| !f.attributes.is_empty()) {
        let sub = out.attribute("", "Filter", "");
        for (k, v) in &f.attributes {
            out.attribute(&sub, k, v);
        }
    }
    if !t.spec.filters.is_empty() {
        out.line();
        let sub = out.attribute("", "Filters (experimental)", "");
        for f in &t.spec.filters {
            write_filter(&mut out, &sub, f);
        }
    }
    out.line();
    out.flush();
    write_sink(
        &mut out,
        "",
        "Sink",
        &t.metadata.namespace,
        &t.spec.subscriber,
    );
    if let Some(d) = &t.spec.delivery {
        out.line();
        write_delivery(&mut out, &t.metadata.namespace, d);
    }
    out.line();
    out.flush();
    write_conditions(&mut out, &t.status.conditions, details, now);
    out.finish()
}

/// `source ping describe`.
pub fn describe_ping(s: &PingSource, details: bool, now: SystemTime) -> String {
    let mut out = Out::default();
    write_metadata(&mut out, &s.metadata, details, now);
    out.attribute("", "Schedule", &s.spec.schedule);
    if !s.spec.timezone.is_empty() {
        out.attribute("", "Timezone", &s.spec.timezone);
    }
    if !s.spec.data_base64.is_empty() {
        out.attribute("", "DataBase64", &s.spec.data_base64);
    } else {
        out.attribute("", "Data", &s.spec.data);
    }
    if !s.spec.content_type.is_empty() {
        out.attribute("", "ContentType", &s.spec.content_type);
    }
    out.line();
    out.flush();
    finish_source(
        out,
        &s.metadata.namespace,
        &s.spec.sink,
        &s.spec.ce_overrides,
        &s.status.conditions,
        (details, now),
    )
}

/// `source apiserver describe`.
pub fn describe_apiserver(s: &ApiServerSource, details: bool, now: SystemTime) -> String {
    let mut out = Out::default();
    write_metadata(&mut out, &s.metadata, details, now);
    out.attribute("", "ServiceAccountName", &s.spec.service_account_name);
    out.attribute("", "EventMode", &s.spec.mode);
    out.line();
    out.flush();
    write_sink(&mut out, "", "Sink", &s.metadata.namespace, &s.spec.sink);
    out.line();
    out.flush();
    write_ce_overrides(&mut out, &s.spec.ce_overrides);
    let sub = out.attribute("", "Resources", "");
    for r in &s.spec.resources {
        out.attribute(&sub, "Kind", &format!("{} ({})", r.kind, r.api_version));
        if let Some(sel) = &r.selector {
            out.attribute(&sub, "Selector", &selector_text(sel));
        }
    }
    out.line();
    out.flush();
    write_conditions(&mut out, &s.status.conditions, details, now);
    out.finish()
}

/// `source container describe`.
pub fn describe_container(s: &ContainerSource, details: bool, now: SystemTime) -> String {
    let mut out = Out::default();
    write_metadata(&mut out, &s.metadata, details, now);
    if let Some(c) = s.spec.template.spec.containers.first() {
        let sub = out.attribute("", "Container", "");
        if c.image.is_empty() && !c.command.is_empty() {
            out.attribute(&sub, "Command", &c.command.join(" "));
        } else {
            out.attribute(&sub, "Image", &c.image);
        }
        if !c.env.is_empty() {
            let env = out.attribute(&sub, "Env", "");
            for e in &c.env {
                let value = if e.value_from.is_some() {
                    "[ref]"
                } else {
                    e.value.as_str()
                };
                out.attribute(&env, &e.name, value);
            }
        }
        if !c.args.is_empty() {
            let args = out.attribute(&sub, "Args", "");
            for a in &c.args {
                out.attribute(&args, a, "");
            }
        }
    }
    out.line();
    out.flush();
    finish_source(
        out,
        &s.metadata.namespace,
        &s.spec.sink,
        &s.spec.ce_overrides,
        &s.status.conditions,
        (details, now),
    )
}

/// `source binding describe`.
pub fn describe_binding(b: &SinkBinding, details: bool, now: SystemTime) -> String {
    let mut out = Out::default();
    write_metadata(&mut out, &b.metadata, details, now);
    let subject = &b.spec.subject;
    let sub = out.attribute("", "Subject", "");
    if !subject.namespace.is_empty() && subject.namespace != b.metadata.namespace {
        out.attribute(&sub, "Namespace", &subject.namespace);
    }
    if !subject.name.is_empty() {
        out.attribute(&sub, "Name", &subject.name);
    }
    out.attribute(
        &sub,
        "Resource",
        &format!("{} ({})", subject.kind, subject.api_version),
    );
    if let Some(sel) = &subject.selector {
        let matches = out.attribute(&sub, "Selector", "");
        for (k, v) in &sel.match_labels {
            out.attribute(&matches, k, v);
        }
    }
    write_sink(&mut out, "", "Sink", &b.metadata.namespace, &b.spec.sink);
    write_ce_overrides(&mut out, &b.spec.ce_overrides);
    out.line();
    out.flush();
    write_conditions(&mut out, &b.status.conditions, details, now);
    out.finish()
}

/// `channel describe`.
pub fn describe_channel(c: &Channel, details: bool, now: SystemTime) -> String {
    let mut out = Out::default();
    write_metadata(&mut out, &c.metadata, details, now);
    let (kind, api_version) = c
        .spec
        .channel_template
        .as_ref()
        .map(|t| (t.kind.as_str(), t.api_version.as_str()))
        .unwrap_or(("", ""));
    out.attribute("", "Type", &format!("{kind} ({api_version})"));
    if c.status.address.is_some() {
        out.attribute("", "URL", address_url(c.status.address.as_ref()));
    }
    out.line();
    out.flush();
    write_conditions(&mut out, &c.status.conditions, details, now);
    out.finish()
}

/// `subscription describe`.
pub fn describe_subscription(s: &Subscription, details: bool, now: SystemTime) -> String {
    let mut out = Out::default();
    let ns = &s.metadata.namespace;
    write_metadata(&mut out, &s.metadata, details, now);
    let ch = &s.spec.channel;
    out.attribute(
        "",
        "Channel",
        &format!("{}:{} ({})", ch.kind, ch.name, ch.api_version),
    );
    if let Some(d) = &s.spec.subscriber {
        write_sink(&mut out, "", "Subscriber", ns, d);
    }
    if let Some(d) = &s.spec.reply {
        write_sink(&mut out, "", "Reply", ns, d);
    }
    if let Some(d) = s
        .spec
        .delivery
        .as_ref()
        .and_then(|d| d.dead_letter_sink.as_ref())
    {
        write_sink(&mut out, "", "DeadLetterSink", ns, d);
    }
    out.line();
    out.flush();
    write_conditions(&mut out, &s.status.conditions, details, now);
    out.finish()
}

/// kn's `ReadyCondition`: the Ready condition's status, or `<unknown>`.
pub fn ready_status(conditions: &[Condition]) -> String {
    conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| match c.status {
            ConditionStatus::True => "True".to_string(),
            ConditionStatus::False => "False".to_string(),
            ConditionStatus::Unknown => "Unknown".to_string(),
        })
        .unwrap_or_else(|| "<unknown>".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::age;
    use serde_json::json;

    fn now() -> SystemTime {
        age::parse_timestamp("2026-01-02T03:10:05Z").unwrap_or(SystemTime::UNIX_EPOCH)
    }

    fn from<T: serde::de::DeserializeOwned + Default>(v: serde_json::Value) -> T {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn broker_like_kn() {
        let b: Broker = from(json!({
            "metadata": {"name": "default", "namespace": "default",
                         "creationTimestamp": "2026-01-02T03:04:05Z",
                         "annotations": {"eventing.knative.dev/broker.class": "MTChannelBasedBroker"}},
            "spec": {"delivery": {"retry": 3, "backoffPolicy": "linear", "backoffDelay": "PT1S",
                                  "deadLetterSink": {"ref": {"kind": "Service", "name": "dls", "namespace": "default",
                                                             "apiVersion": "serving.knative.dev/v1"}}}},
            "status": {"address": {"url": "http://127.0.0.1:8081/default/default"},
                       "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-02T03:05:05Z"}]}
        }));
        let want = [
            "Name:         default",
            "Namespace:    default",
            "Annotations:  eventing.knative.dev/broker.class=MTChannelBasedBroker",
            "Age:          6m",
            "",
            "Address:",
            "  URL:    http://127.0.0.1:8081/default/default",
            "",
            "Delivery:",
            "  Retry:             3",
            "  Backoff Policy:    linear",
            "  Backoff Delay:     PT1S",
            "  Dead Letter Sink:",
            "    Name:            dls",
            "    Resource:        Service (serving.knative.dev/v1)",
            "",
            "Conditions:",
            "  OK TYPE     AGE REASON",
            "  ++ Ready     5m",
            "",
        ];
        let got = describe_broker(&b, false, now());
        let lines: Vec<&str> = got.split('\n').collect();
        assert_eq!(lines, want, "{got}");
    }

    #[test]
    fn trigger_like_kn() {
        let t: Trigger = from(json!({
            "metadata": {"name": "t1", "namespace": "default", "creationTimestamp": "2026-01-02T03:04:05Z"},
            "spec": {"broker": "default",
                     "filter": {"attributes": {"type": "dev.example", "source": "src"}},
                     "filters": [{"cesql": "LOWER(type) = 'x'"}, {"not": {"exact": {"a": "b"}}}],
                     "subscriber": {"ref": {"kind": "Service", "name": "hello", "namespace": "other",
                                            "apiVersion": "serving.knative.dev/v1"}}},
            "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "BrokerDoesNotExist",
                                       "message": "m", "lastTransitionTime": "2026-01-02T03:05:05Z"},
                                      {"type": "BrokerReady", "status": "False", "reason": "BrokerDoesNotExist"}]}
        }));
        let got = describe_trigger(&t, true, now());
        let want = [
            "Name:       t1",
            "Namespace:  default",
            "Age:        6m",
            "Broker:     default",
            "Filter:",
            "  source:   src",
            "  type:     dev.example",
            "",
            // Go's tabwriter aligns a block up to the next line without a tab, as kn prints.
            "Filters (experimental):",
            "  cesql:                 LOWER(type) = 'x'",
            "  not:",
            "    exact:",
            "      a:                 b",
            "",
            "Sink:",
            "  Name:       hello",
            "  Namespace:  other",
            "  Resource:   Service (serving.knative.dev/v1)",
            "",
            "Conditions:",
            "  OK TYPE           AGE REASON",
            "  !! Ready           5m BrokerDoesNotExist (m)",
            "  !! BrokerReady        BrokerDoesNotExist ()",
            "",
        ];
        let lines: Vec<&str> = got.split('\n').collect();
        assert_eq!(lines, want, "{got}");
    }

    #[test]
    fn sources_like_kn() {
        let p: PingSource = from(json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"schedule": "*/2 * * * *", "data": "{\"a\":1}",
                     "sink": {"uri": "http://example.com"},
                     "ceOverrides": {"extensions": {"team": "blue"}}}
        }));
        let got = describe_ping(&p, false, now());
        for want in [
            "Schedule:   */2 * * * *\n",
            "Data:       {\"a\":1}\n",
            "Sink:\n  URI:  http://example.com\n",
            "CloudEvent Overrides:\n  team:                blue\n",
            "Conditions:\n  OK TYPE    AGE REASON\n",
        ] {
            assert!(got.contains(want), "{want:?} in\n{got}");
        }

        let a: ApiServerSource = from(json!({
            "metadata": {"name": "k8s", "namespace": "default"},
            "spec": {"mode": "Reference", "serviceAccountName": "default",
                     "resources": [{"kind": "Event", "apiVersion": "v1", "selector": {"matchLabels": {"a": "b"}}}],
                     "sink": {"ref": {"kind": "Broker", "name": "default", "namespace": "default",
                                      "apiVersion": "eventing.knative.dev/v1"}}}
        }));
        let got = describe_apiserver(&a, false, now());
        for want in [
            "EventMode:           Reference\n",
            "Resources:\n  Kind:      Event (v1)\n  Selector:  a=b\n",
            "Resource:  Broker (eventing.knative.dev/v1)\n",
        ] {
            assert!(got.contains(want), "{want:?} in\n{got}");
        }

        let c: ContainerSource = from(json!({
            "metadata": {"name": "c", "namespace": "default"},
            "spec": {"template": {"spec": {"containers": [{"image": "ghcr.io/x/heartbeats",
                "env": [{"name": "PERIOD", "value": "5"}], "args": ["--once"]}]}},
                "sink": {"uri": "http://x"}}
        }));
        let got = describe_container(&c, false, now());
        assert!(
            got.contains("Container:\n  Image:     ghcr.io/x/heartbeats\n  Env:\n    PERIOD:  5\n  Args:\n    --once:\n\nSink:\n  URI:  http://x\n\nConditions:"),
            "{got}"
        );

        let b: SinkBinding = from(json!({
            "metadata": {"name": "b", "namespace": "default"},
            "spec": {"subject": {"kind": "Deployment", "apiVersion": "apps/v1", "namespace": "default",
                                 "selector": {"matchLabels": {"app": "x"}}},
                     "sink": {"uri": "http://x"}}
        }));
        let got = describe_binding(&b, false, now());
        assert!(
            got.contains("Subject:\n  Resource:  Deployment (apps/v1)\n  Selector:\n    app:     x\nSink:\n  URI:       http://x\n"),
            "{got}"
        );
    }

    #[test]
    fn messaging_like_kn() {
        let c: Channel = from(json!({
            "metadata": {"name": "pipe", "namespace": "default"},
            "spec": {"channelTemplate": {"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel"}},
            "status": {"address": {"url": "http://127.0.0.1:8081/channels/default/pipe"}}
        }));
        let got = describe_channel(&c, false, now());
        assert!(
            got.contains("Type:       InMemoryChannel (messaging.knative.dev/v1)\nURL:        http://127.0.0.1:8081/channels/default/pipe\n"),
            "{got}"
        );
        let s: Subscription = from(json!({
            "metadata": {"name": "s", "namespace": "default"},
            "spec": {"channel": {"kind": "Channel", "name": "pipe", "apiVersion": "messaging.knative.dev/v1"},
                     "subscriber": {"uri": "http://x"},
                     "delivery": {"deadLetterSink": {"uri": "http://dead"}}}
        }));
        let got = describe_subscription(&s, false, now());
        for want in [
            "Channel:         Channel:pipe (messaging.knative.dev/v1)\n",
            "Subscriber:\n  URI:           http://x\n",
            "DeadLetterSink:\n  URI:           http://dead\n",
        ] {
            assert!(got.contains(want), "{want:?} in\n{got}");
        }
        assert_eq!(ready_status(&[]), "<unknown>");
    }
}
