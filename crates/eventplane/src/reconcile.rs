//! The eventing reconciler's decisions: from the objects in the store to their statuses and
//! to what the event plane runs (streams the ingress accepts for, consumers, ping schedules).
//!
//! Why one pure function over everything: eventing objects refer to each other by name (a
//! trigger to its broker and subscriber, a source to its sink), and a change of any of them
//! changes the others' readiness. Recomputing the whole picture from a snapshot is simple,
//! idempotent and easy to test; at the scale of one machine (thousands of objects) it costs
//! microseconds. The I/O loop around it (`controller.rs`) writes only statuses that differ.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use wisp_api::eventing::{
    ApiServerSource, Channel, CloudEventAttributes, ContainerSource, InMemoryChannel, KReference,
    Parallel, Sequence, SinkBinding, Subscription,
};
use wisp_api::eventing::{
    Broker, BrokerStatus, DeliverySpec, Destination, PingSource, SourceStatus, Trigger,
    TriggerStatus,
};
use wisp_api::kinds::{self, ResourceInfo};
use wisp_api::meta::{Condition, ConditionSet, ConditionStatus, READY, keep_transition_times};
use wisp_api::serving::{Addressable, Service};
use wisp_eventing::delivery::RetryPolicy;
use wisp_eventing::filter::{self, Filter};
use wisp_eventlog::Start;

use crate::deliver::{Delivery, Target};
use crate::dispatch::ConsumerSpec;

/// Knative's MT broker reports these; wisp's broker has no channel, so `TriggerChannelReady`
/// is not among them.
pub const BROKER_CONDITIONS: ConditionSet = ConditionSet {
    happy: READY,
    dependents: &[
        "Addressable",
        "DeadLetterSinkResolved",
        "FilterReady",
        "IngressReady",
    ],
};
/// knative/eventing `pkg/apis/eventing/v1/trigger_lifecycle.go`.
pub const TRIGGER_CONDITIONS: ConditionSet = ConditionSet {
    happy: READY,
    dependents: &[
        "BrokerReady",
        "DeadLetterSinkResolved",
        "DependencyReady",
        "SubscriberResolved",
        "SubscriptionReady",
    ],
};
/// knative/eventing `pkg/apis/sources/v1/ping_lifecycle.go`.
pub const PING_CONDITIONS: ConditionSet = ConditionSet {
    happy: READY,
    dependents: &["Deployed", "SinkProvided"],
};

/// Knative's PingSource event type.
pub const PING_EVENT_TYPE: &str = "dev.knative.sources.ping";
/// The annotation Knative's Kafka broker reads for per-trigger ordered delivery.
pub const DELIVERY_ORDER_ANNOTATION: &str = "kafka.eventing.knative.dev/delivery.order";
/// Deliveries in flight per unordered trigger.
pub const DEFAULT_PARALLELISM: usize = 64;

/// Everything the reconciler reads.
#[derive(Debug, Default, Clone)]
pub struct World {
    pub brokers: Vec<Broker>,
    pub triggers: Vec<Trigger>,
    pub pings: Vec<PingSource>,
    pub services: Vec<Service>,
    pub channels: Vec<Channel>,
    pub in_memory_channels: Vec<InMemoryChannel>,
    pub subscriptions: Vec<Subscription>,
    pub sequences: Vec<Sequence>,
    pub parallels: Vec<Parallel>,
    pub sink_bindings: Vec<SinkBinding>,
    pub container_sources: Vec<ContainerSource>,
    pub api_server_sources: Vec<ApiServerSource>,
}

/// Settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The ingress's base URL, e.g. `http://127.0.0.1:8081`.
    pub ingress_url: String,
}

/// A ping schedule to run.
#[derive(Debug, Clone, PartialEq)]
pub struct PingSpec {
    /// Unique per source incarnation (its uid).
    pub id: String,
    pub namespace: String,
    pub name: String,
    pub schedule: String,
    pub timezone: String,
    pub content_type: String,
    pub data: Vec<u8>,
    pub extensions: Vec<(String, String)>,
    /// The stream its events are appended to; a consumer delivers them to the sink.
    pub stream: String,
}

/// A status to write when it differs from the stored one.
pub struct StatusWrite {
    pub info: &'static ResourceInfo,
    /// The stored status.
    pub old: Value,
    /// The whole object with its new status.
    pub new: Value,
}

/// What the event plane should be, and the statuses to write.
#[derive(Default)]
pub struct Plan {
    pub writes: Vec<StatusWrite>,
    /// Ready brokers: `(namespace, name)` -> stream.
    pub broker_streams: HashMap<(String, String), String>,
    /// Channels (and the channels of flows): `(namespace, name)` -> stream.
    pub channel_streams: HashMap<(String, String), String>,
    pub consumers: Vec<ConsumerSpec>,
    pub schedules: Vec<PingSpec>,
    /// Services whose template a SinkBinding changes (or stops changing).
    pub service_updates: Vec<Service>,
    /// The Services that run ContainerSources, as they should be (not yet admitted).
    pub children: Vec<Value>,
    pub api_watches: Vec<sources::ApiWatchSpec>,
}

impl Plan {
    fn write<S: Serialize, T: Serialize>(&mut self, info: &'static ResourceInfo, old: &S, new: &T) {
        let (Ok(old), Ok(new)) = (serde_json::to_value(old), serde_json::to_value(new)) else {
            return;
        };
        self.writes.push(StatusWrite { info, old, new });
    }
}

/// Broker streams' names start with this.
pub const BROKER_STREAM_PREFIX: &str = "broker/";

pub fn broker_stream(ns: &str, name: &str) -> String {
    format!("{BROKER_STREAM_PREFIX}{ns}/{name}")
}

fn ping_stream(ns: &str, name: &str, uid: &str) -> String {
    format!("ping/{ns}/{name}/{uid}")
}

/// Broker URL in Knative's shape: the ingress, then `/{namespace}/{name}`.
pub fn broker_url(settings: &Settings, ns: &str, name: &str) -> String {
    format!("{}/{ns}/{name}", settings.ingress_url.trim_end_matches('/'))
}

mod messaging;
pub mod sources;

/// Channel streams' names start with this.
pub const CHANNEL_STREAM_PREFIX: &str = "channel/";

pub fn channel_stream(ns: &str, name: &str) -> String {
    format!("{CHANNEL_STREAM_PREFIX}{ns}/{name}")
}

/// Channel URL: the ingress, then `/channels/{namespace}/{name}`.
pub fn channel_url(settings: &Settings, ns: &str, name: &str) -> String {
    format!(
        "{}/channels/{ns}/{name}",
        settings.ingress_url.trim_end_matches('/')
    )
}

struct Resolver<'a> {
    settings: &'a Settings,
    services: HashMap<(&'a str, &'a str), &'a Service>,
    ready_brokers: HashMap<(&'a str, &'a str), bool>,
    /// Channels that exist (user channels and the channels of flows).
    channels: std::collections::HashSet<(String, String)>,
    /// Sequences and Parallels: `(kind, namespace, name)` -> the channel events enter by.
    flows: HashMap<(&'static str, String, String), String>,
}

impl Resolver<'_> {
    /// `dest` as a target (and its URI for status), relative to namespace `ns`.
    fn resolve(&self, dest: &Destination, ns: &str) -> Result<(Target, String), String> {
        let Some(r) = &dest.ref_ else {
            return match dest.uri.as_deref() {
                Some(uri) if !uri.is_empty() => Ok((self.target_of(uri), uri.to_string())),
                _ => Err("the destination has neither ref nor uri".to_string()),
            };
        };
        let base = self.resolve_ref(r, ns)?;
        let url = match dest.uri.as_deref().filter(|u| !u.is_empty()) {
            Some(rel) => join(&base, rel),
            None => base,
        };
        Ok((self.target_of(&url), url))
    }

    fn resolve_ref(&self, r: &KReference, ns: &str) -> Result<String, String> {
        let ns = if r.namespace.is_empty() {
            ns
        } else {
            r.namespace.as_str()
        };
        let group = r.api_version.split('/').next().unwrap_or_default();
        match (group, r.kind.as_str()) {
            ("serving.knative.dev", "Service") => {
                let svc = self.services.get(&(ns, r.name.as_str())).ok_or_else(|| {
                    format!(
                        "failed to get object {ns}/{}: services.serving.knative.dev {:?} not found",
                        r.name, r.name
                    )
                })?;
                svc.status
                    .address
                    .as_ref()
                    .and_then(|a: &Addressable| a.url.clone())
                    .or_else(|| svc.status.url.clone())
                    .ok_or_else(|| {
                        format!("Service {ns}/{} has no address yet (not ready)", r.name)
                    })
            }
            ("messaging.knative.dev", "Channel" | "InMemoryChannel") => {
                if self.channels.contains(&(ns.to_string(), r.name.clone())) {
                    Ok(channel_url(self.settings, ns, &r.name))
                } else {
                    Err(format!(
                        "failed to get object {ns}/{}: {} {:?} not found",
                        r.name,
                        if r.kind == "Channel" {
                            "channels.messaging.knative.dev"
                        } else {
                            "inmemorychannels.messaging.knative.dev"
                        },
                        r.name
                    ))
                }
            }
            ("flows.knative.dev", kind @ ("Sequence" | "Parallel")) => {
                let kind: &'static str = if kind == "Sequence" {
                    "Sequence"
                } else {
                    "Parallel"
                };
                match self.flows.get(&(kind, ns.to_string(), r.name.clone())) {
                    Some(channel) => Ok(channel_url(self.settings, ns, channel)),
                    None => Err(format!("{kind} {ns}/{} not found", r.name)),
                }
            }
            ("eventing.knative.dev", "Broker") => {
                match self.ready_brokers.get(&(ns, r.name.as_str())) {
                    Some(_) => Ok(broker_url(self.settings, ns, &r.name)),
                    None => Err(format!(
                        "failed to get object {ns}/{}: brokers.eventing.knative.dev {:?} not found",
                        r.name, r.name
                    )),
                }
            }
            _ => Err(format!(
                "{} {ns}/{} ({}) is not an addressable kind wisp knows",
                r.kind, r.name, r.api_version
            )),
        }
    }

    /// Addresses of wisp's own brokers and channels become appends to their streams.
    fn target_of(&self, url: &str) -> Target {
        let base = self.settings.ingress_url.trim_end_matches('/');
        if let Some(path) = url.strip_prefix(base) {
            if let Some(rest) = path.strip_prefix("/channels/") {
                let mut parts = rest.trim_matches('/').split('/');
                if let (Some(ns), Some(name), None) = (parts.next(), parts.next(), parts.next())
                    && self.channels.contains(&(ns.to_string(), name.to_string()))
                {
                    return Target::Stream(channel_stream(ns, name));
                }
            }
            let mut parts = path.trim_matches('/').split('/');
            if let (Some(ns), Some(name), None) = (parts.next(), parts.next(), parts.next())
                && self.ready_brokers.contains_key(&(ns, name))
            {
                return Target::Stream(broker_stream(ns, name));
            }
        }
        Target::Http(url.to_string())
    }
}

/// `rel` resolved against `base` (a path relative to the base's path, as Knative's
/// `Destination` with ref + uri does).
fn join(base: &str, rel: &str) -> String {
    if rel.contains("://") {
        return rel.to_string();
    }
    let base = base.trim_end_matches('/');
    if rel.starts_with('/') {
        // Absolute path: replace the base's path.
        let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
        let host_end = base[scheme_end..]
            .find('/')
            .map(|i| scheme_end + i)
            .unwrap_or(base.len());
        format!("{}{rel}", &base[..host_end])
    } else {
        format!("{base}/{rel}")
    }
}

fn retry_policy(delivery: Option<&DeliverySpec>) -> Result<RetryPolicy, String> {
    match delivery {
        None => Ok(RetryPolicy::knative_broker_default()),
        Some(d) => RetryPolicy::from_spec(
            d.retry,
            d.backoff_policy.as_deref(),
            d.backoff_delay.as_deref(),
            d.timeout.as_deref(),
        )
        .map_err(|e| e.to_string()),
    }
}

fn finish(conditions: &mut [Condition], old: &[Condition]) {
    keep_transition_times(old, conditions);
}

/// The whole decision. `now` stamps condition transitions.
pub fn reconcile(world: &World, settings: &Settings, now: &str) -> Plan {
    let mut plan = Plan::default();
    let mut resolver = Resolver {
        settings,
        services: world
            .services
            .iter()
            .map(|s| ((s.metadata.namespace.as_str(), s.metadata.name.as_str()), s))
            .collect(),
        ready_brokers: HashMap::new(),
        channels: messaging::channel_names(world),
        flows: messaging::flow_entries(world),
    };
    // Brokers first: triggers and destinations depend on them. A broker is ready once its
    // dead letter sink (if any) resolves; its own address never depends on anything.
    for b in &world.brokers {
        if b.metadata.deletion_timestamp.is_some() {
            continue;
        }
        resolver.ready_brokers.insert(
            (b.metadata.namespace.as_str(), b.metadata.name.as_str()),
            true,
        );
    }
    let mut broker_dls: HashMap<(String, String), (Option<Target>, Option<DeliverySpec>)> =
        HashMap::new();
    for b in &world.brokers {
        let (ns, name) = (b.metadata.namespace.as_str(), b.metadata.name.as_str());
        let mut status = BrokerStatus {
            observed_generation: b.metadata.generation,
            conditions: b.status.conditions.clone(),
            ..Default::default()
        };
        let url = broker_url(settings, ns, name);
        {
            let mut m = BROKER_CONDITIONS.manage(&mut status.conditions, now);
            m.initialize();
            m.mark_true("Addressable");
            m.mark_true("IngressReady");
            m.mark_true("FilterReady");
        }
        let dls = b
            .spec
            .delivery
            .as_ref()
            .and_then(|d| d.dead_letter_sink.as_ref());
        let mut ready = true;
        let mut dls_target = None;
        match dls.map(|d| resolver.resolve(d, ns)) {
            None => BROKER_CONDITIONS
                .manage(&mut status.conditions, now)
                .mark_true_with_reason(
                    "DeadLetterSinkResolved",
                    "DeadLetterSinkNotConfigured",
                    "No dead letter sink is configured.",
                ),
            Some(Ok((t, uri))) => {
                status.dead_letter_sink_uri = Some(uri);
                dls_target = Some(t);
                BROKER_CONDITIONS
                    .manage(&mut status.conditions, now)
                    .mark_true("DeadLetterSinkResolved");
            }
            Some(Err(e)) => {
                ready = false;
                BROKER_CONDITIONS
                    .manage(&mut status.conditions, now)
                    .mark_false(
                        "DeadLetterSinkResolved",
                        "Unable to get the dead letter sink's URI",
                        &e,
                    );
            }
        }
        status.address = Some(Addressable {
            name: Some("http".into()),
            url: Some(url.clone()),
            ..Default::default()
        });
        status.addresses = vec![Addressable {
            name: Some("http".into()),
            url: Some(url),
            ..Default::default()
        }];
        finish(&mut status.conditions, &b.status.conditions);
        if ready {
            plan.broker_streams
                .insert((ns.to_string(), name.to_string()), broker_stream(ns, name));
        }
        broker_dls.insert(
            (ns.to_string(), name.to_string()),
            (dls_target, b.spec.delivery.clone()),
        );
        let mut new = b.clone();
        new.status = status;
        plan.write(&kinds::BROKERS, &b.status, &new);
    }

    for t in &world.triggers {
        let (ns, name) = (t.metadata.namespace.as_str(), t.metadata.name.as_str());
        let mut status = TriggerStatus {
            observed_generation: t.metadata.generation,
            conditions: t.status.conditions.clone(),
            ..Default::default()
        };
        let mut m = TRIGGER_CONDITIONS.manage(&mut status.conditions, now);
        m.initialize();
        m.mark_true("DependencyReady");
        let broker = broker_dls.get(&(ns.to_string(), t.spec.broker.clone()));
        let broker_ready = plan
            .broker_streams
            .contains_key(&(ns.to_string(), t.spec.broker.clone()));
        match (broker, broker_ready) {
            (None, _) => m.mark_false(
                "BrokerReady",
                "BrokerDoesNotExist",
                &format!("Broker {:?} does not exist", t.spec.broker),
            ),
            (Some(_), false) => m.mark_false(
                "BrokerReady",
                "BrokerNotReady",
                &format!("Broker {:?} is not ready", t.spec.broker),
            ),
            (Some(_), true) => m.mark_true("BrokerReady"),
        }
        let subscriber = resolver.resolve(&t.spec.subscriber, ns);
        match &subscriber {
            Ok(_) => m.mark_true("SubscriberResolved"),
            Err(e) => m.mark_false(
                "SubscriberResolved",
                "Unable to get the Subscriber's URI",
                e,
            ),
        }
        // The trigger's own delivery wins over the broker's, as in Knative.
        let delivery = t
            .spec
            .delivery
            .clone()
            .or_else(|| broker.and_then(|(_, d)| d.clone()));
        let dls = match delivery.as_ref().and_then(|d| d.dead_letter_sink.as_ref()) {
            None => {
                m.mark_true_with_reason(
                    "DeadLetterSinkResolved",
                    "DeadLetterSinkNotConfigured",
                    "No dead letter sink is configured.",
                );
                Ok(None)
            }
            Some(d) => match resolver.resolve(d, ns) {
                Ok((target, uri)) => {
                    m.mark_true("DeadLetterSinkResolved");
                    Ok(Some((target, uri)))
                }
                Err(e) => {
                    m.mark_false(
                        "DeadLetterSinkResolved",
                        "Unable to get the dead letter sink's URI",
                        &e,
                    );
                    Err(())
                }
            },
        };
        let filter = filter::compile(
            &t.spec.filters,
            t.spec.filter.as_ref().map(|f| &f.attributes),
        );
        let retry = retry_policy(delivery.as_ref());
        let consumer = match (&subscriber, &dls, &filter, &retry, broker_ready) {
            (Ok((target, _)), Ok(dls), Ok(filter), Ok(retry), true) => {
                let ordered = t
                    .metadata
                    .annotations
                    .get(DELIVERY_ORDER_ANNOTATION)
                    .is_some_and(|v| v == "ordered");
                let d = Delivery {
                    subscriber: target.clone(),
                    reply: Some(Target::Stream(broker_stream(ns, &t.spec.broker))),
                    carry_ttl: true,
                    dead_letter: dls.as_ref().map(|(t, _)| t.clone()),
                    retry: retry.clone(),
                };
                Some(ConsumerSpec {
                    id: format!("trigger/{ns}/{name}/{}", t.metadata.uid),
                    stream: broker_stream(ns, &t.spec.broker),
                    filter: Arc::new(filter.clone()),
                    fingerprint: format!(
                        "{d:?}|{ordered}|{:?}|{:?}",
                        t.spec.filters, t.spec.filter
                    ),
                    delivery: d,
                    parallelism: if ordered { 1 } else { DEFAULT_PARALLELISM },
                    start: Start::Tail,
                    trigger: Some(crate::record::TriggerRef {
                        namespace: ns.to_string(),
                        name: name.to_string(),
                        uid: t.metadata.uid.clone(),
                        broker: t.spec.broker.clone(),
                    }),
                })
            }
            _ => None,
        };
        if let Err(e) = &filter {
            m.mark_false("SubscriptionReady", "InvalidFilter", &e.to_string());
        } else if let Err(e) = &retry {
            m.mark_false("SubscriptionReady", "InvalidDelivery", e);
        } else if consumer.is_some() {
            m.mark_true("SubscriptionReady");
        } else {
            m.mark_unknown(
                "SubscriptionReady",
                "NotSubscribed",
                "waiting for the broker and the subscriber",
            );
        }

        if let Ok((_, uri)) = &subscriber {
            status.subscriber_uri = Some(uri.clone());
        }
        if let Ok(Some((_, uri))) = &dls {
            status.dead_letter_sink_uri = Some(uri.clone());
        }
        finish(&mut status.conditions, &t.status.conditions);
        plan.consumers.extend(consumer);
        let mut new = t.clone();
        new.status = status;
        plan.write(&kinds::TRIGGERS, &t.status, &new);
    }

    messaging::reconcile(world, &resolver, settings, now, &mut plan);
    sources::reconcile(world, &resolver, now, &mut plan);

    for p in &world.pings {
        let (ns, name) = (p.metadata.namespace.as_str(), p.metadata.name.as_str());
        let mut status = SourceStatus {
            observed_generation: p.metadata.generation,
            conditions: p.status.conditions.clone(),
            ..Default::default()
        };
        let mut m = PING_CONDITIONS.manage(&mut status.conditions, now);
        m.initialize();
        let sink = resolver.resolve(&p.spec.sink, ns);
        match &sink {
            Ok(_) => m.mark_true("SinkProvided"),
            Err(e) => m.mark_false("SinkProvided", "NotFound", e),
        }
        let schedule = crate::ping::Schedule::parse(&p.spec.schedule, &p.spec.timezone);
        let data = crate::ping::data_of(&p.spec);
        match (&schedule, &data) {
            (Err(e), _) => m.mark_false("Deployed", "InvalidSchedule", e),
            (_, Err(e)) => m.mark_false("Deployed", "InvalidData", e),
            (Ok(_), Ok(_)) => m.mark_true("Deployed"),
        }

        let source = format!("/apis/v1/namespaces/{ns}/pingsources/{name}");
        status.ce_attributes = vec![CloudEventAttributes {
            type_: PING_EVENT_TYPE.to_string(),
            source: source.clone(),
        }];
        if let Ok((_, uri)) = &sink {
            status.sink_uri = Some(uri.clone());
        }
        finish(&mut status.conditions, &p.status.conditions);
        if let (Ok((target, _)), Ok(_), Ok(data)) = (&sink, &schedule, data) {
            let stream = ping_stream(ns, name, &p.metadata.uid);
            plan.consumers.push(source_consumer(
                format!("ping/{ns}/{name}/{}", p.metadata.uid),
                stream.clone(),
                target,
            ));
            plan.schedules.push(PingSpec {
                id: format!("{ns}/{name}/{}", p.metadata.uid),
                namespace: ns.to_string(),
                name: name.to_string(),
                schedule: p.spec.schedule.clone(),
                timezone: p.spec.timezone.clone(),
                content_type: p.spec.content_type.clone(),
                data,
                extensions: p
                    .spec
                    .ce_overrides
                    .as_ref()
                    .map(|o| o.extensions.clone().into_iter().collect())
                    .unwrap_or_default(),
                stream,
            });
        }
        let mut new = p.clone();
        new.status = status;
        plan.write(&kinds::PING_SOURCES, &p.status, &new);
    }
    plan
}

/// The consumer that carries a source's events from its own stream to its sink: in order,
/// with the broker's default retries, nothing done with replies.
fn source_consumer(id: String, stream: String, sink: &Target) -> ConsumerSpec {
    let delivery = Delivery {
        subscriber: sink.clone(),
        reply: None,
        carry_ttl: false,
        dead_letter: None,
        retry: RetryPolicy::knative_broker_default(),
    };
    ConsumerSpec {
        id,
        stream,
        filter: Arc::new(Filter::default()),
        fingerprint: format!("{delivery:?}"),
        delivery,
        parallelism: 1,
        start: Start::Head,
        trigger: None,
    }
}

/// Whether `c` is True.
pub fn is_true(conditions: &[Condition], t: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == t && c.status == ConditionStatus::True)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wisp_api::eventing::TriggerSpec;

    const NOW: &str = "2026-01-01T00:00:00Z";

    fn settings() -> Settings {
        Settings {
            ingress_url: "http://127.0.0.1:8081".into(),
        }
    }

    fn broker(name: &str) -> Broker {
        let mut b = Broker::new("default", name);
        b.metadata.uid = format!("uid-{name}");
        b
    }

    fn service(name: &str) -> Service {
        let mut s = Service::default();
        s.metadata.name = name.into();
        s.metadata.namespace = "default".into();
        s.status.address = Some(Addressable {
            url: Some(format!("http://{name}.default.svc.cluster.local")),
            ..Default::default()
        });
        s
    }

    fn trigger(name: &str, broker: &str, subscriber: Destination) -> Trigger {
        let mut t = Trigger::new("default", name);
        t.metadata.uid = format!("uid-{name}");
        t.spec = TriggerSpec {
            broker: broker.into(),
            subscriber,
            ..Default::default()
        };
        t
    }

    fn to(kind: &str, api_version: &str, name: &str, uri: Option<&str>) -> Destination {
        Destination {
            ref_: Some(KReference {
                kind: kind.into(),
                api_version: api_version.into(),
                name: name.into(),
                ..Default::default()
            }),
            uri: uri.map(str::to_string),
            ..Default::default()
        }
    }

    fn condition<'a>(plan: &'a Plan, name: &str, t: &str) -> (&'a str, &'a str) {
        let w = plan
            .writes
            .iter()
            .find(|w| w.new["metadata"]["name"] == name)
            .expect("a status for the object");
        let c = w.new["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == t)
            .expect("the condition");
        (
            c["status"].as_str().unwrap(),
            c["reason"].as_str().unwrap_or(""),
        )
    }

    #[test]
    fn destinations_join_a_relative_uri_to_the_reference() {
        assert_eq!(join("http://a.b/x", "y?z=1"), "http://a.b/x/y?z=1");
        assert_eq!(join("http://a.b/x", "/y"), "http://a.b/y");
        assert_eq!(join("http://a.b", "/y"), "http://a.b/y");
        assert_eq!(join("http://a.b", "http://c.d/e"), "http://c.d/e");
    }

    #[test]
    fn trigger_without_its_broker_is_not_ready_and_not_run() {
        let world = World {
            triggers: vec![trigger(
                "t",
                "missing",
                to("Service", "serving.knative.dev/v1", "svc", None),
            )],
            services: vec![service("svc")],
            ..Default::default()
        };
        let plan = reconcile(&world, &settings(), NOW);
        assert!(plan.consumers.is_empty());
        assert_eq!(
            condition(&plan, "t", "BrokerReady"),
            ("False", "BrokerDoesNotExist")
        );
        assert_eq!(condition(&plan, "t", "SubscriberResolved"), ("True", ""));
        assert_eq!(condition(&plan, "t", "Ready").0, "False");
    }

    #[test]
    fn trigger_delivers_to_its_service_and_replies_into_its_broker() {
        let world = World {
            brokers: vec![broker("default")],
            triggers: vec![trigger(
                "t",
                "default",
                to("Service", "serving.knative.dev/v1", "svc", Some("/in")),
            )],
            services: vec![service("svc")],
            ..Default::default()
        };
        let plan = reconcile(&world, &settings(), NOW);
        assert_eq!(condition(&plan, "t", "Ready").0, "True");
        let c = &plan.consumers[0];
        assert_eq!(c.id, "trigger/default/t/uid-t");
        assert_eq!(c.stream, "broker/default/default");
        assert_eq!(
            c.delivery.subscriber,
            Target::Http("http://svc.default.svc.cluster.local/in".into())
        );
        assert_eq!(
            c.delivery.reply,
            Some(Target::Stream("broker/default/default".into()))
        );
        assert!(c.delivery.carry_ttl);
        assert_eq!(
            plan.broker_streams
                .get(&("default".into(), "default".into())),
            Some(&"broker/default/default".to_string())
        );
    }

    #[test]
    fn a_broker_as_subscriber_is_an_append_not_an_http_hop() {
        let world = World {
            brokers: vec![broker("a"), broker("b")],
            triggers: vec![trigger(
                "t",
                "a",
                to("Broker", "eventing.knative.dev/v1", "b", None),
            )],
            ..Default::default()
        };
        let plan = reconcile(&world, &settings(), NOW);
        assert_eq!(
            plan.consumers[0].delivery.subscriber,
            Target::Stream("broker/default/b".into())
        );
        // The same broker named by its URL.
        let world = World {
            brokers: vec![broker("a"), broker("b")],
            triggers: vec![trigger(
                "t",
                "a",
                Destination {
                    uri: Some("http://127.0.0.1:8081/default/b".into()),
                    ..Default::default()
                },
            )],
            ..Default::default()
        };
        let plan = reconcile(&world, &settings(), NOW);
        assert_eq!(
            plan.consumers[0].delivery.subscriber,
            Target::Stream("broker/default/b".into())
        );
    }

    #[test]
    fn reconcile_is_idempotent() {
        let world = World {
            brokers: vec![broker("default")],
            triggers: vec![trigger(
                "t",
                "default",
                to("Service", "serving.knative.dev/v1", "svc", None),
            )],
            services: vec![service("svc")],
            ..Default::default()
        };
        let plan = reconcile(&world, &settings(), NOW);
        // Feed the written statuses back: a second pass writes the same statuses, even later.
        let brokers = vec![serde_json::from_value(plan.writes[0].new.clone()).unwrap()];
        let triggers = vec![serde_json::from_value(plan.writes[1].new.clone()).unwrap()];
        let again = World {
            brokers,
            triggers,
            ..world
        };
        let plan2 = reconcile(&again, &settings(), "2026-01-02T00:00:00Z");
        for w in &plan2.writes {
            assert_eq!(
                w.new.get("status"),
                Some(&w.old),
                "{}",
                w.new["metadata"]["name"]
            );
        }
    }
}
