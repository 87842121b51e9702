//! Channels, Subscriptions, Sequences and Parallels.
//!
//! A channel is a stream of the log with an address on the ingress
//! (`/channels/{namespace}/{name}`); a subscription is a consumer of it. Channel and
//! InMemoryChannel are the same thing here: both are durable (Knative's InMemoryChannel loses
//! events on restart; wisp's does not), and a Channel needs no backing InMemoryChannel object.
//!
//! Flows are run natively rather than by creating the child Channels and Subscriptions that
//! Knative's flow controllers create: a Sequence of n steps is n internal channels
//! (`{name}-kn-sequence-{i}`, Knative's names) whose consumers call step i and hand its reply
//! to channel i+1; a Parallel is an ingress channel (`{name}-kn-parallel`) and, per branch, a
//! filter consumer feeding a branch channel (`{name}-kn-parallel-{i}`) whose consumer calls
//! the subscriber. The channels are addressable like any other (a Sequence's address is its
//! first channel), but no child objects appear in the API.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use wisp_api::eventing::{
    ChannelStatus, DeliverySpec, Destination, InMemoryChannelStatus, ParallelStatus,
    PhysicalSubscription, SequenceStatus, SubscriberStatus, SubscriptionStatus,
};
use wisp_api::kinds;
use wisp_api::meta::{ConditionSet, READY};
use wisp_api::serving::Addressable;
use wisp_eventing::delivery::RetryPolicy;
use wisp_eventing::filter::Filter;
use wisp_eventlog::Start;

use super::{Plan, Resolver, Settings, World, channel_stream, channel_url, finish, retry_policy};
use crate::deliver::{Delivery, Target};
use crate::dispatch::ConsumerSpec;

/// knative/eventing `pkg/apis/messaging/v1/channel_lifecycle.go`, without the backing
/// channel (there is none).
pub const CHANNEL_CONDITIONS: ConditionSet = ConditionSet {
    happy: READY,
    dependents: &["Addressable", "DeadLetterSinkResolved"],
};
/// `subscription_lifecycle.go`.
pub const SUBSCRIPTION_CONDITIONS: ConditionSet = ConditionSet {
    happy: READY,
    dependents: &["AddedToChannel", "ChannelReady", "ReferencesResolved"],
};
/// `flows/v1/sequence_lifecycle.go` and `parallel_lifecycle.go`.
pub const FLOW_CONDITIONS: ConditionSet = ConditionSet {
    happy: READY,
    dependents: &["AddressableReady", "ChannelsReady", "SubscriptionsReady"],
};

fn live(meta: &wisp_api::meta::ObjectMeta) -> bool {
    meta.deletion_timestamp.is_none()
}

fn sequence_channel(name: &str, i: usize) -> String {
    format!("{name}-kn-sequence-{i}")
}

fn parallel_ingress(name: &str) -> String {
    format!("{name}-kn-parallel")
}

fn parallel_branch(name: &str, i: usize) -> String {
    format!("{name}-kn-parallel-{i}")
}

/// Every channel that exists: `(namespace, name)`.
pub(super) fn channel_names(world: &World) -> HashSet<(String, String)> {
    let mut out = HashSet::new();
    for c in world.channels.iter().filter(|c| live(&c.metadata)) {
        out.insert((c.metadata.namespace.clone(), c.metadata.name.clone()));
    }
    for c in world
        .in_memory_channels
        .iter()
        .filter(|c| live(&c.metadata))
    {
        out.insert((c.metadata.namespace.clone(), c.metadata.name.clone()));
    }
    for s in world.sequences.iter().filter(|s| live(&s.metadata)) {
        for i in 0..s.spec.steps.len() {
            out.insert((
                s.metadata.namespace.clone(),
                sequence_channel(&s.metadata.name, i),
            ));
        }
    }
    for p in world.parallels.iter().filter(|p| live(&p.metadata)) {
        let ns = &p.metadata.namespace;
        out.insert((ns.clone(), parallel_ingress(&p.metadata.name)));
        for i in 0..p.spec.branches.len() {
            out.insert((ns.clone(), parallel_branch(&p.metadata.name, i)));
        }
    }
    out
}

/// The channel each flow is entered by.
pub(super) fn flow_entries(world: &World) -> HashMap<(&'static str, String, String), String> {
    let mut out = HashMap::new();
    for s in world
        .sequences
        .iter()
        .filter(|s| live(&s.metadata) && !s.spec.steps.is_empty())
    {
        out.insert(
            (
                "Sequence",
                s.metadata.namespace.clone(),
                s.metadata.name.clone(),
            ),
            sequence_channel(&s.metadata.name, 0),
        );
    }
    for p in world.parallels.iter().filter(|p| live(&p.metadata)) {
        out.insert(
            (
                "Parallel",
                p.metadata.namespace.clone(),
                p.metadata.name.clone(),
            ),
            parallel_ingress(&p.metadata.name),
        );
    }
    out
}

fn address(url: String) -> (Option<Addressable>, Vec<Addressable>) {
    let a = Addressable {
        name: Some("http".into()),
        url: Some(url),
        ..Default::default()
    };
    (Some(a.clone()), vec![a])
}

/// A channel's subscribers' delivery: the subscription's own, else the channel's; none at
/// all means one attempt, as Knative's channels do.
fn channel_retry(delivery: Option<&DeliverySpec>) -> Result<RetryPolicy, String> {
    match delivery {
        None => Ok(RetryPolicy::no_retries()),
        Some(_) => retry_policy(delivery),
    }
}

struct Resolved {
    subscriber: Target,
    subscriber_uri: String,
    reply: Option<(Target, String)>,
    dead_letter: Option<(Target, String)>,
    retry: RetryPolicy,
}

fn resolve_all(
    resolver: &Resolver,
    ns: &str,
    subscriber: &Destination,
    reply: Option<&Destination>,
    delivery: Option<&DeliverySpec>,
) -> Result<Resolved, String> {
    let (subscriber, subscriber_uri) = resolver
        .resolve(subscriber, ns)
        .map_err(|e| format!("subscriber: {e}"))?;
    let reply = reply
        .map(|r| resolver.resolve(r, ns).map_err(|e| format!("reply: {e}")))
        .transpose()?;
    let dead_letter = delivery
        .and_then(|d| d.dead_letter_sink.as_ref())
        .map(|d| {
            resolver
                .resolve(d, ns)
                .map_err(|e| format!("deadLetterSink: {e}"))
        })
        .transpose()?;
    let retry = channel_retry(delivery).map_err(|e| format!("delivery: {e}"))?;
    Ok(Resolved {
        subscriber,
        subscriber_uri,
        reply,
        dead_letter,
        retry,
    })
}

fn consumer(id: String, stream: String, r: &Resolved) -> ConsumerSpec {
    let delivery = Delivery {
        subscriber: r.subscriber.clone(),
        reply: r.reply.as_ref().map(|(t, _)| t.clone()),
        carry_ttl: false,
        dead_letter: r.dead_letter.as_ref().map(|(t, _)| t.clone()),
        retry: r.retry.clone(),
    };
    ConsumerSpec {
        fingerprint: format!("{delivery:?}"),
        id,
        stream,
        filter: Arc::new(Filter::default()),
        delivery,
        parallelism: super::DEFAULT_PARALLELISM,
        start: Start::Tail,
        trigger: None,
    }
}

pub(super) fn reconcile(
    world: &World,
    resolver: &Resolver,
    settings: &Settings,
    now: &str,
    plan: &mut Plan,
) {
    for (ns, name) in &resolver.channels {
        plan.channel_streams
            .insert((ns.clone(), name.clone()), channel_stream(ns, name));
    }
    let deliveries: HashMap<(&str, &str), Option<&DeliverySpec>> = world
        .channels
        .iter()
        .map(|c| {
            (
                (c.metadata.namespace.as_str(), c.metadata.name.as_str()),
                c.spec.delivery.as_ref(),
            )
        })
        .chain(world.in_memory_channels.iter().map(|c| {
            (
                (c.metadata.namespace.as_str(), c.metadata.name.as_str()),
                c.spec.delivery.as_ref(),
            )
        }))
        .collect();

    // Subscriptions first: channels list their subscribers' readiness.
    let mut subscribers: HashMap<(String, String), Vec<SubscriberStatus>> = HashMap::new();
    for sub in &world.subscriptions {
        let (ns, name) = (sub.metadata.namespace.as_str(), sub.metadata.name.as_str());
        let mut status = SubscriptionStatus {
            observed_generation: sub.metadata.generation,
            conditions: sub.status.conditions.clone(),
            ..Default::default()
        };
        let mut m = SUBSCRIPTION_CONDITIONS.manage(&mut status.conditions, now);
        m.initialize();
        let channel = &sub.spec.channel;
        let key = (ns.to_string(), channel.name.clone());
        let exists = resolver.channels.contains(&key);
        if exists {
            m.mark_true("ChannelReady");
        } else {
            m.mark_false(
                "ChannelReady",
                "ChannelNotFound",
                &format!("{} {ns}/{} not found", channel.kind, channel.name),
            );
        }
        let channel_delivery = deliveries
            .get(&(ns, channel.name.as_str()))
            .copied()
            .flatten();
        let delivery = sub.spec.delivery.as_ref().or(channel_delivery);
        let resolved = match &sub.spec.subscriber {
            Some(s) => resolve_all(resolver, ns, s, sub.spec.reply.as_ref(), delivery),
            None => Err("subscriber: missing".to_string()),
        };
        match &resolved {
            Ok(r) => {
                m.mark_true("ReferencesResolved");
                status.physical_subscription = PhysicalSubscription {
                    subscriber_uri: Some(r.subscriber_uri.clone()),
                    reply_uri: r.reply.as_ref().map(|(_, u)| u.clone()),
                    dead_letter_sink_uri: r.dead_letter.as_ref().map(|(_, u)| u.clone()),
                    ..Default::default()
                };
            }
            Err(e) => m.mark_false("ReferencesResolved", "ReferencesNotResolved", e),
        }
        let ready = match (&resolved, exists) {
            (Ok(r), true) => {
                plan.consumers.push(consumer(
                    format!("subscription/{ns}/{name}/{}", sub.metadata.uid),
                    channel_stream(ns, &channel.name),
                    r,
                ));
                m.mark_true("AddedToChannel");
                true
            }
            _ => {
                m.mark_unknown(
                    "AddedToChannel",
                    "NotAddedToChannel",
                    "waiting for the channel and the references",
                );
                false
            }
        };
        finish(&mut status.conditions, &sub.status.conditions);
        subscribers.entry(key).or_default().push(SubscriberStatus {
            uid: sub.metadata.uid.clone(),
            observed_generation: sub.metadata.generation,
            ready: if ready { "True" } else { "Unknown" }.to_string(),
            ..Default::default()
        });
        let mut new = sub.clone();
        new.status = status;
        plan.write(&kinds::SUBSCRIPTIONS, &sub.status, &new);
    }

    for c in &world.channels {
        let (ns, name) = (c.metadata.namespace.as_str(), c.metadata.name.as_str());
        let mut status = ChannelStatus {
            observed_generation: c.metadata.generation,
            conditions: c.status.conditions.clone(),
            ..Default::default()
        };
        (status.address, status.addresses) = address(channel_url(settings, ns, name));
        status.subscribers = subscribers
            .remove(&(ns.to_string(), name.to_string()))
            .unwrap_or_default();
        status.dead_letter_sink_uri = mark_channel(
            &mut status.conditions,
            resolver,
            ns,
            c.spec.delivery.as_ref(),
            now,
        );
        finish(&mut status.conditions, &c.status.conditions);
        let mut new = c.clone();
        new.status = status;
        plan.write(&kinds::CHANNELS, &c.status, &new);
    }

    for c in &world.in_memory_channels {
        let (ns, name) = (c.metadata.namespace.as_str(), c.metadata.name.as_str());
        let mut status = InMemoryChannelStatus {
            observed_generation: c.metadata.generation,
            conditions: c.status.conditions.clone(),
            ..Default::default()
        };
        (status.address, status.addresses) = address(channel_url(settings, ns, name));
        let mut subs = subscribers
            .remove(&(ns.to_string(), name.to_string()))
            .unwrap_or_default();
        // Subscribers written straight into the spec (Knative's subscription controller
        // does that; so may a user).
        for (i, s) in c.spec.subscribers.iter().enumerate() {
            let to = |u: &Option<String>| {
                u.as_ref().filter(|u| !u.is_empty()).map(|u| Destination {
                    uri: Some(u.clone()),
                    ..Default::default()
                })
            };
            let ok = match to(&s.subscriber_uri) {
                Some(dest) => match resolve_all(
                    resolver,
                    ns,
                    &dest,
                    to(&s.reply_uri).as_ref(),
                    s.delivery.as_ref().or(c.spec.delivery.as_ref()),
                ) {
                    Ok(r) => {
                        let uid = if s.uid.is_empty() {
                            i.to_string()
                        } else {
                            s.uid.clone()
                        };
                        plan.consumers.push(consumer(
                            format!("imc/{ns}/{name}/{}/{uid}", c.metadata.uid),
                            channel_stream(ns, name),
                            &r,
                        ));
                        true
                    }
                    Err(_) => false,
                },
                None => false,
            };
            subs.push(SubscriberStatus {
                uid: s.uid.clone(),
                observed_generation: s.generation,
                ready: if ok { "True" } else { "False" }.to_string(),
                ..Default::default()
            });
        }
        status.subscribers = subs;
        status.dead_letter_sink_uri = mark_channel(
            &mut status.conditions,
            resolver,
            ns,
            c.spec.delivery.as_ref(),
            now,
        );
        finish(&mut status.conditions, &c.status.conditions);
        let mut new = c.clone();
        new.status = status;
        plan.write(&kinds::IN_MEMORY_CHANNELS, &c.status, &new);
    }

    for s in &world.sequences {
        let (ns, name) = (s.metadata.namespace.as_str(), s.metadata.name.as_str());
        let mut status = SequenceStatus {
            observed_generation: s.metadata.generation,
            conditions: s.status.conditions.clone(),
            ..Default::default()
        };
        let mut m = FLOW_CONDITIONS.manage(&mut status.conditions, now);
        m.initialize();
        m.mark_true("ChannelsReady");
        let reply = s.spec.reply.as_ref().map(|r| resolver.resolve(r, ns));
        let mut errors = Vec::new();
        let n = s.spec.steps.len();
        let mut consumers = Vec::new();
        for (i, step) in s.spec.steps.iter().enumerate() {
            let next = if i + 1 < n {
                let ch = sequence_channel(name, i + 1);
                Some(Ok((
                    Target::Stream(channel_stream(ns, &ch)),
                    channel_url(settings, ns, &ch),
                )))
            } else {
                reply.clone()
            };
            let dest = step.destination();
            match (
                resolve_all(resolver, ns, &dest, None, step.delivery.as_ref()),
                next,
            ) {
                (Ok(mut r), next) => match next.transpose() {
                    Ok(next) => {
                        r.reply = next;
                        consumers.push(consumer(
                            format!("sequence/{ns}/{name}/{}/{i}", s.metadata.uid),
                            channel_stream(ns, &sequence_channel(name, i)),
                            &r,
                        ));
                    }
                    Err(e) => errors.push(format!("reply: {e}")),
                },
                (Err(e), _) => errors.push(format!("steps[{i}]: {e}")),
            }
        }
        if errors.is_empty() && n > 0 {
            plan.consumers.extend(consumers);
            m.mark_true("SubscriptionsReady");
            m.mark_true("AddressableReady");
        } else {
            let message = if n == 0 {
                "the sequence has no steps".to_string()
            } else {
                errors.join("; ")
            };
            m.mark_false("SubscriptionsReady", "SubscriptionsNotReady", &message);
            m.mark_false("AddressableReady", "NotAddressable", &message);
        }
        if n > 0 {
            status.address = Some(Addressable {
                name: Some("http".into()),
                url: Some(channel_url(settings, ns, &sequence_channel(name, 0))),
                ..Default::default()
            });
        }
        finish(&mut status.conditions, &s.status.conditions);
        let mut new = s.clone();
        new.status = status;
        plan.write(&kinds::SEQUENCES, &s.status, &new);
    }

    for p in &world.parallels {
        let (ns, name) = (p.metadata.namespace.as_str(), p.metadata.name.as_str());
        let mut status = ParallelStatus {
            observed_generation: p.metadata.generation,
            conditions: p.status.conditions.clone(),
            ..Default::default()
        };
        let mut m = FLOW_CONDITIONS.manage(&mut status.conditions, now);
        m.initialize();
        m.mark_true("ChannelsReady");
        let ingress = channel_stream(ns, &parallel_ingress(name));
        let mut errors = Vec::new();
        let mut consumers = Vec::new();
        for (i, b) in p.spec.branches.iter().enumerate() {
            let branch_channel = parallel_branch(name, i);
            let branch_stream = channel_stream(ns, &branch_channel);
            let branch_target = (
                Target::Stream(branch_stream.clone()),
                channel_url(settings, ns, &branch_channel),
            );
            // The filter: a subscriber whose reply passes the event on; none passes all.
            let filter = match &b.filter {
                Some(f) => resolve_all(resolver, ns, f, None, b.delivery.as_ref()).map(|mut r| {
                    r.reply = Some(branch_target.clone());
                    r
                }),
                None => Ok(Resolved {
                    subscriber: branch_target.0.clone(),
                    subscriber_uri: branch_target.1.clone(),
                    reply: None,
                    dead_letter: None,
                    retry: RetryPolicy::no_retries(),
                }),
            };
            let reply = b.reply.as_ref().or(p.spec.reply.as_ref());
            let subscriber = resolve_all(resolver, ns, &b.subscriber, reply, b.delivery.as_ref());
            match (filter, subscriber) {
                (Ok(f), Ok(s)) => {
                    let base = format!("parallel/{ns}/{name}/{}/{i}", p.metadata.uid);
                    consumers.push(consumer(format!("{base}/filter"), ingress.clone(), &f));
                    consumers.push(consumer(format!("{base}/subscriber"), branch_stream, &s));
                }
                (Err(e), _) | (_, Err(e)) => errors.push(format!("branches[{i}]: {e}")),
            }
        }
        if errors.is_empty() && !p.spec.branches.is_empty() {
            plan.consumers.extend(consumers);
            m.mark_true("SubscriptionsReady");
            m.mark_true("AddressableReady");
        } else {
            let message = if p.spec.branches.is_empty() {
                "the parallel has no branches".to_string()
            } else {
                errors.join("; ")
            };
            m.mark_false("SubscriptionsReady", "SubscriptionsNotReady", &message);
            m.mark_false("AddressableReady", "NotAddressable", &message);
        }
        (status.address, status.addresses) =
            address(channel_url(settings, ns, &parallel_ingress(name)));
        finish(&mut status.conditions, &p.status.conditions);
        let mut new = p.clone();
        new.status = status;
        plan.write(&kinds::PARALLELS, &p.status, &new);
    }
}

/// A channel's conditions; returns its dead letter sink's URI.
fn mark_channel(
    conditions: &mut Vec<wisp_api::meta::Condition>,
    resolver: &Resolver,
    ns: &str,
    delivery: Option<&DeliverySpec>,
    now: &str,
) -> Option<String> {
    let mut m = CHANNEL_CONDITIONS.manage(conditions, now);
    m.initialize();
    m.mark_true("Addressable");
    match delivery.and_then(|d| d.dead_letter_sink.as_ref()) {
        None => {
            m.mark_true_with_reason(
                "DeadLetterSinkResolved",
                "DeadLetterSinkNotConfigured",
                "No dead letter sink is configured.",
            );
            None
        }
        Some(d) => match resolver.resolve(d, ns) {
            Ok((_, uri)) => {
                m.mark_true("DeadLetterSinkResolved");
                Some(uri)
            }
            Err(e) => {
                m.mark_false(
                    "DeadLetterSinkResolved",
                    "Unable to get the dead letter sink's URI",
                    &e,
                );
                None
            }
        },
    }
}
