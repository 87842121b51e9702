//! Knative's own sample manifests (from knative.dev docs and knative/eventing `config/` and
//! `docs/`) decode into these types and encode back to the same JSON; typos are refused.

use super::*;
use serde_json::{Value, json};

/// YAML text to JSON, as `kubectl` sends it.
pub(crate) fn yaml(text: &str) -> Value {
    match serde_saphyr::from_str::<Value>(text) {
        Ok(v) => v,
        Err(e) => panic!("bad test YAML: {e}"),
    }
}

/// Decodes `v` as `T` and checks that encoding gives `v` back.
fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(v: &Value) -> T {
    let t: T = match serde_json::from_value(v.clone()) {
        Ok(t) => t,
        Err(e) => panic!("does not decode: {e}\n{v:#}"),
    };
    assert_eq!(serde_json::to_value(&t).unwrap_or_default(), *v);
    t
}

pub(crate) const BROKER: &str = r#"
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: default
  namespace: default
  annotations:
    eventing.knative.dev/broker.class: MTChannelBasedBroker
spec:
  config:
    apiVersion: v1
    kind: ConfigMap
    name: config-br-default-channel
    namespace: knative-eventing
  delivery:
    deadLetterSink:
      ref:
        apiVersion: serving.knative.dev/v1
        kind: Service
        name: dlq
    retry: 5
    backoffPolicy: exponential
    backoffDelay: PT0.5S
    timeout: PT10S
"#;

pub(crate) const TRIGGER: &str = r#"
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: my-service-trigger
  namespace: default
spec:
  broker: default
  filters:
    - any:
        - exact:
            type: com.github.push
        - exact:
            type: com.gitlab.push
    - not:
        prefix:
          source: /internal
    - cesql: "source LIKE '%commerce%' AND type IN ('order.created', 'order.updated')"
  subscriber:
    ref:
      apiVersion: serving.knative.dev/v1
      kind: Service
      name: my-service
    uri: /events
"#;

pub(crate) const PING_SOURCE: &str = r#"
apiVersion: sources.knative.dev/v1
kind: PingSource
metadata:
  name: test-ping-source
  namespace: default
spec:
  schedule: "*/1 * * * *"
  timezone: Europe/Paris
  contentType: "application/json"
  data: '{"message": "Hello world!"}'
  ceOverrides:
    extensions:
      color: blue
  sink:
    ref:
      apiVersion: serving.knative.dev/v1
      kind: Service
      name: event-display
"#;

pub(crate) const SEQUENCE: &str = r#"
apiVersion: flows.knative.dev/v1
kind: Sequence
metadata:
  name: sequence
  namespace: default
spec:
  channelTemplate:
    apiVersion: messaging.knative.dev/v1
    kind: InMemoryChannel
  steps:
    - ref:
        apiVersion: serving.knative.dev/v1
        kind: Service
        name: first
    - uri: http://second.default.svc.cluster.local
      delivery:
        retry: 3
        backoffPolicy: linear
        backoffDelay: PT1S
  reply:
    ref:
      kind: Service
      apiVersion: serving.knative.dev/v1
      name: event-display
"#;

pub(crate) const PARALLEL: &str = r#"
apiVersion: flows.knative.dev/v1
kind: Parallel
metadata:
  name: odd-even-parallel
  namespace: default
spec:
  channelTemplate:
    apiVersion: messaging.knative.dev/v1
    kind: InMemoryChannel
  branches:
    - filter:
        ref:
          apiVersion: serving.knative.dev/v1
          kind: Service
          name: even-filter
      subscriber:
        ref:
          apiVersion: serving.knative.dev/v1
          kind: Service
          name: even-transformer
    - filter:
        uri: http://odd-filter.default.svc.cluster.local
      subscriber:
        ref:
          apiVersion: serving.knative.dev/v1
          kind: Service
          name: odd-transformer
  reply:
    ref:
      apiVersion: serving.knative.dev/v1
      kind: Service
      name: event-display
"#;

pub(crate) const SUBSCRIPTION: &str = r#"
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata:
  name: my-subscription
  namespace: default
spec:
  channel:
    apiVersion: messaging.knative.dev/v1
    kind: Channel
    name: my-channel
  delivery:
    deadLetterSink:
      uri: http://dead.default.svc.cluster.local
  reply:
    ref:
      apiVersion: messaging.knative.dev/v1
      kind: InMemoryChannel
      name: my-reply-channel
  subscriber:
    ref:
      apiVersion: serving.knative.dev/v1
      kind: Service
      name: my-service
"#;

pub(crate) const API_SERVER_SOURCE: &str = r#"
apiVersion: sources.knative.dev/v1
kind: ApiServerSource
metadata:
  name: testevents
  namespace: default
spec:
  serviceAccountName: events-sa
  mode: Resource
  resources:
    - apiVersion: v1
      kind: Event
    - apiVersion: apps/v1
      kind: Deployment
      selector:
        matchLabels:
          app: web
        matchExpressions:
          - key: tier
            operator: In
            values: [frontend]
  namespaceSelector:
    matchLabels:
      env: test
  sink:
    ref:
      apiVersion: v1
      kind: Service
      name: event-display
"#;

pub(crate) const CONTAINER_SOURCE: &str = r#"
apiVersion: sources.knative.dev/v1
kind: ContainerSource
metadata:
  name: test-heartbeats
  namespace: default
spec:
  template:
    spec:
      containers:
        - image: gcr.io/knative-releases/knative.dev/eventing/cmd/heartbeats:latest
          name: heartbeats
          args:
            - --period=1
          env:
            - name: POD_NAME
              value: "mypod"
            - name: POD_NAMESPACE
              value: "event-test"
  sink:
    ref:
      apiVersion: serving.knative.dev/v1
      kind: Service
      name: event-display
"#;

pub(crate) const SINK_BINDING: &str = r#"
apiVersion: sources.knative.dev/v1
kind: SinkBinding
metadata:
  name: bind-heartbeat
  namespace: default
spec:
  subject:
    apiVersion: batch/v1
    kind: Job
    selector:
      matchLabels:
        app: heartbeat-cron
  sink:
    ref:
      apiVersion: serving.knative.dev/v1
      kind: Service
      name: event-display
  ceOverrides:
    extensions:
      sink: bound
"#;

pub(crate) const CHANNEL: &str = r#"
apiVersion: messaging.knative.dev/v1
kind: Channel
metadata:
  name: my-channel
  namespace: default
spec:
  channelTemplate:
    apiVersion: messaging.knative.dev/v1
    kind: InMemoryChannel
    spec:
      delivery:
        retry: 3
"#;

pub(crate) const IN_MEMORY_CHANNEL: &str = r#"
apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata:
  name: imc
  namespace: default
spec:
  subscribers:
    - uid: 2f9b5e8e-deb6-11e8-9f32-f2801f1b9fd1
      generation: 1
      subscriberUri: http://call1
      replyUri: http://sink2
  delivery:
    retry: 2
"#;

#[test]
fn samples_decode_and_round_trip() {
    let t: Trigger = round_trip(&yaml(TRIGGER));
    assert_eq!(t.spec.filters.len(), 3);
    assert_eq!(t.spec.filters[0].any[1].exact["type"], "com.gitlab.push");
    assert_eq!(t.spec.filters[2].dialects(), ["cesql"]);
    assert_eq!(t.spec.subscriber.uri.as_deref(), Some("/events"));

    let b: Broker = round_trip(&yaml(BROKER));
    let delivery = b.spec.delivery.unwrap_or_default();
    assert_eq!(delivery.retry, Some(5));
    assert_eq!(
        delivery
            .dead_letter_sink
            .and_then(|d| d.ref_)
            .map(|r| r.name),
        Some("dlq".to_string())
    );

    let p: PingSource = round_trip(&yaml(PING_SOURCE));
    assert_eq!(p.spec.schedule, "*/1 * * * *");
    assert_eq!(
        p.spec.ce_overrides.unwrap_or_default().extensions["color"],
        "blue"
    );

    let s: Sequence = round_trip(&yaml(SEQUENCE));
    assert_eq!(s.spec.steps.len(), 2);
    assert_eq!(
        s.spec.steps[1].destination().uri.as_deref(),
        Some("http://second.default.svc.cluster.local")
    );

    let p: Parallel = round_trip(&yaml(PARALLEL));
    assert_eq!(p.spec.branches.len(), 2);

    let sub: Subscription = round_trip(&yaml(SUBSCRIPTION));
    assert_eq!(sub.spec.channel.kind, "Channel");

    let a: ApiServerSource = round_trip(&yaml(API_SERVER_SOURCE));
    assert_eq!(a.spec.resources[1].kind, "Deployment");

    // Containers always carry `resources: {}`, as Kubernetes writes them.
    let mut with_resources = yaml(CONTAINER_SOURCE);
    with_resources["spec"]["template"]["spec"]["containers"][0]["resources"] = json!({});
    let c: ContainerSource = round_trip(&with_resources);
    assert_eq!(c.spec.template.spec.containers[0].name, "heartbeats");

    let sb: SinkBinding = round_trip(&yaml(SINK_BINDING));
    assert_eq!(sb.spec.subject.kind, "Job");

    let ch: Channel = round_trip(&yaml(CHANNEL));
    assert_eq!(
        ch.spec.channel_template.map(|t| t.kind),
        Some("InMemoryChannel".to_string())
    );

    let imc: InMemoryChannel = round_trip(&yaml(IN_MEMORY_CHANNEL));
    assert_eq!(imc.spec.subscribers[0].generation, 1);
}

#[test]
fn typos_are_refused() {
    let mut v = yaml(TRIGGER);
    v["spec"]["subscriber"]["uir"] = json!("/x");
    assert!(serde_json::from_value::<Trigger>(v).is_err());
    let mut v = yaml(PING_SOURCE);
    v["spec"]["schedul"] = json!("* * * * *");
    assert!(serde_json::from_value::<PingSource>(v).is_err());
    let mut v = yaml(SEQUENCE);
    v["spec"]["steps"][0]["delivery"] = json!({"retries": 1});
    assert!(serde_json::from_value::<Sequence>(v).is_err());
}

#[test]
fn statuses_round_trip() {
    let broker = json!({
        "observedGeneration": 1,
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
        "address": {"name": "http", "url": "http://broker-ingress.knative-eventing.svc.cluster.local/default/default"},
        "addresses": [{"name": "http", "url": "http://broker-ingress.knative-eventing.svc.cluster.local/default/default"}],
        "deadLetterSinkUri": "http://dlq.default.svc.cluster.local",
        "annotations": {"knative.dev/channelAddress": "http://x"}
    });
    let _: BrokerStatus = round_trip(&broker);
    let trigger = json!({
        "observedGeneration": 2,
        "subscriberUri": "http://my-service.default.svc.cluster.local/events",
        "deadLetterSinkUri": "http://dlq"
    });
    let _: TriggerStatus = round_trip(&trigger);
    let sub = json!({
        "physicalSubscription": {
            "subscriberUri": "http://a", "replyUri": "http://b", "deadLetterSinkUri": "http://c"
        }
    });
    let _: SubscriptionStatus = round_trip(&sub);
    let source = json!({
        "sinkUri": "http://event-display.default.svc.cluster.local",
        "ceAttributes": [{"type": "dev.knative.sources.ping", "source": "/apis/v1/namespaces/default/pingsources/p"}]
    });
    let _: SourceStatus = round_trip(&source);
    let api = json!({"sinkUri": "http://x", "namespaces": ["default"]});
    let _: ApiServerSourceStatus = round_trip(&api);
    let seq = json!({
        "channelStatuses": [{"channel": {"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel", "name": "s-kn-sequence-0"},
                             "ready": {"type": "Ready", "status": "True"}}],
        "subscriptionStatuses": [{"subscription": {"name": "s-kn-sequence-0"}, "ready": {"type": "Ready", "status": "Unknown"}}],
        "address": {"url": "http://s-kn-sequence-0-kn-channel.default.svc.cluster.local"}
    });
    let _: SequenceStatus = round_trip(&seq);
    let par = json!({
        "ingressChannelStatus": {"channel": {"name": "p-kn-parallel"}, "ready": {"type": "Ready", "status": "True"}},
        "branchStatuses": [{"filterSubscriptionStatus": {"subscription": {"name": "f"}},
                            "subscriberSubscriptionStatus": {"subscription": {"name": "s"}}}]
    });
    let _: ParallelStatus = round_trip(&par);
    let imc = json!({"subscribers": [{"uid": "u", "observedGeneration": 1, "ready": "True", "message": "ok"}]});
    let _: InMemoryChannelStatus = round_trip(&imc);
}

#[test]
fn new_sets_type_meta() {
    let t = Trigger::new("default", "t");
    assert_eq!(t.api_version, "eventing.knative.dev/v1");
    assert_eq!(t.kind, Trigger::KIND);
    assert_eq!(
        PingSource::new("ns", "p").api_version,
        "sources.knative.dev/v1"
    );
    assert_eq!(Sequence::new("ns", "s").api_version, "flows.knative.dev/v1");
    assert_eq!(InMemoryChannel::new("ns", "c").kind, "InMemoryChannel");
    // An empty status is omitted, and `subscriber` is always written, as Go writes them.
    let v = serde_json::to_value(&t).unwrap_or_default();
    assert_eq!(
        v,
        json!({"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
               "metadata": {"name": "t", "namespace": "default"}, "spec": {"subscriber": {}}})
    );
}
