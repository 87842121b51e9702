//! Event counts of the broker ingress and of trigger dispatch, under the names Knative's
//! multi-tenant broker exports (`mt_broker_ingress_event_count`,
//! `mt_broker_filter_event_count` and their `event_dispatch_latencies`), plus wisp's own
//! retry, dead-letter and drop counts per trigger.
//!
//! The ingress's `event_type` label is the sender's choice; the family's cap (and its
//! overflow series) bounds it. A request for a broker that does not exist is counted under
//! empty broker and namespace labels, never under the name in its path.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::DescriptorEncoder;

use crate::expose::{self, Labels};
use crate::family::{Bounded, ByCode, DEFAULT_CAP, OVERFLOW};
use crate::metric::{Counter, Histogram, LATENCY_MS, code_class};
use crate::serving::CodeMetrics;

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[derive(Debug)]
struct IngressMetrics {
    count: Counter,
    latency: Histogram,
}

/// One trigger's dispatch figures; the trigger's consumer keeps it.
#[derive(Debug)]
pub struct TriggerMetrics {
    codes: ByCode<CodeMetrics>,
    retries: Counter,
    dead_lettered: Counter,
    dropped: Counter,
}

impl TriggerMetrics {
    fn new() -> TriggerMetrics {
        TriggerMetrics {
            codes: ByCode::new(|| CodeMetrics {
                count: Counter::default(),
                latency: Histogram::new(LATENCY_MS),
            }),
            retries: Counter::default(),
            dead_lettered: Counter::default(),
            dropped: Counter::default(),
        }
    }

    /// An event was dispatched to the subscriber: the last answer's status (`None`: no
    /// answer), the time from the first attempt to the outcome, and how many attempts.
    pub fn dispatched(&self, status: Option<u16>, took: Duration, attempts: u32) {
        let m = self.codes.get(status.unwrap_or(0));
        m.count.inc();
        m.latency.observe(micros(took));
        self.retries.add(u64::from(attempts.saturating_sub(1)));
    }

    pub fn dead_lettered(&self) {
        self.dead_lettered.inc();
    }

    pub fn dropped(&self) {
        self.dropped.inc();
    }
}

const INGRESS_LABELS: [&str; 4] = [
    "namespace_name",
    "broker_name",
    "event_type",
    "response_code",
];
const TRIGGER_LABELS: [&str; 3] = ["namespace_name", "broker_name", "trigger_name"];

/// Eventing figures.
#[derive(Debug)]
pub struct Eventing {
    ingress: Bounded<IngressMetrics>,
    triggers: Bounded<TriggerMetrics>,
}

impl Default for Eventing {
    fn default() -> Self {
        Eventing {
            ingress: Bounded::new(DEFAULT_CAP, || IngressMetrics {
                count: Counter::default(),
                latency: Histogram::new(LATENCY_MS),
            }),
            triggers: Bounded::new(DEFAULT_CAP, TriggerMetrics::new),
        }
    }
}

impl Eventing {
    /// An event the broker ingress answered with `status` after `took` (the append to the
    /// durable log, for accepted events).
    pub fn ingress(
        &self,
        namespace: &str,
        broker: &str,
        event_type: &str,
        status: u16,
        took: Duration,
    ) {
        let mut code = itoa::Buffer::new();
        let m = self
            .ingress
            .get(&[namespace, broker, event_type, code.format(status)]);
        m.count.inc();
        m.latency.observe(micros(took));
    }

    pub fn trigger(&self, namespace: &str, broker: &str, trigger: &str) -> Arc<TriggerMetrics> {
        self.triggers.get(&[namespace, broker, trigger])
    }

    /// A deleted trigger: its series go.
    pub fn forget_trigger(&self, namespace: &str, broker: &str, trigger: &str) {
        self.triggers.remove(&[namespace, broker, trigger]);
    }

    pub(crate) fn encode(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let ingress = self.ingress.snapshot(INGRESS_LABELS.len());
        let mut counts = Vec::new();
        let mut latencies = Vec::new();
        for (values, m) in &ingress {
            let class = match values[3].parse::<u16>() {
                Ok(c) => code_class(c),
                Err(_) => OVERFLOW,
            };
            let mut labels: Labels = INGRESS_LABELS
                .iter()
                .copied()
                .zip(values.iter().map(String::as_str))
                .collect();
            labels.push(("response_code_class", class));
            counts.push((labels.clone(), m.count.get()));
            latencies.push((labels, m.latency.snapshot()));
        }
        expose::counters(
            enc,
            "mt_broker_ingress_event_count",
            "Number of events received by a Broker",
            &counts,
        )?;
        expose::histograms(
            enc,
            "mt_broker_ingress_event_dispatch_latencies",
            "The time spent dispatching an event to a Broker's durable log, in milliseconds",
            &latencies,
        )?;

        let triggers = self.triggers.snapshot(TRIGGER_LABELS.len());
        let codes: Vec<Vec<(Option<u16>, &CodeMetrics)>> =
            triggers.iter().map(|(_, m)| m.codes.each()).collect();
        let code_text: Vec<Vec<(String, &str)>> = codes
            .iter()
            .map(|cs| {
                cs.iter()
                    .map(|(c, _)| match c {
                        Some(c) => (c.to_string(), code_class(*c)),
                        None => (OVERFLOW.to_string(), OVERFLOW),
                    })
                    .collect()
            })
            .collect();
        let (mut counts, mut latencies) = (Vec::new(), Vec::new());
        let (mut retries, mut dead, mut dropped) = (Vec::new(), Vec::new(), Vec::new());
        for (i, (values, m)) in triggers.iter().enumerate() {
            let base: Labels = TRIGGER_LABELS
                .iter()
                .copied()
                .zip(values.iter().map(String::as_str))
                .collect();
            for (j, (_, cm)) in codes[i].iter().enumerate() {
                let (code, class) = &code_text[i][j];
                let mut labels = base.clone();
                labels.push(("response_code", code.as_str()));
                labels.push(("response_code_class", class));
                counts.push((labels.clone(), cm.count.get()));
                latencies.push((labels, cm.latency.snapshot()));
            }
            retries.push((base.clone(), m.retries.get()));
            dead.push((base.clone(), m.dead_lettered.get()));
            dropped.push((base, m.dropped.get()));
        }
        expose::counters(
            enc,
            "mt_broker_filter_event_count",
            "Number of events dispatched to a Trigger's subscriber, by the subscriber's last answer (0: none)",
            &counts,
        )?;
        expose::histograms(
            enc,
            "mt_broker_filter_event_dispatch_latencies",
            "The time spent dispatching an event to a Trigger subscriber, retries included, in milliseconds",
            &latencies,
        )?;
        expose::counters(
            enc,
            "wisp_trigger_event_retries",
            "Delivery attempts after the first, per Trigger",
            &retries,
        )?;
        expose::counters(
            enc,
            "wisp_trigger_events_dead_lettered",
            "Events sent to the Trigger's dead letter sink after every attempt failed",
            &dead,
        )?;
        expose::counters(
            enc,
            "wisp_trigger_events_dropped",
            "Events dropped after every attempt failed (no dead letter sink, or it failed too)",
            &dropped,
        )
    }
}
