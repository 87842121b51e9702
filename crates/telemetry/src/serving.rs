//! The gateway's per-revision request metrics, under the names Knative's queue-proxy exports
//! (`revision_request_count`, `revision_request_latencies`), and the gateway's observer that
//! records them and writes request-log lines.
//!
//! Labels are Knative's: `namespace_name`, `service_name`, `configuration_name`,
//! `revision_name`, plus `response_code` and `response_code_class` on the request series.
//! Knative's `pod_name` and `container_name` are left out: one gateway serves every replica
//! (the replica of each request is in the request log), so they would only multiply series.
//! Service and configuration names come from the Revision's labels, told by the data plane
//! ([`Serving::describe`]) before the revision reaches the gateway.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use prometheus_client::encoding::DescriptorEncoder;
use wisp_gateway::{Gateway, RequestObserver, RequestRecord, RevisionKey};

use crate::expose::{self, Labels};
use crate::family::{Bounded, ByCode, DEFAULT_CAP};
use crate::metric::{Counter, Histogram, LATENCY_MS, SIZE_BYTES, code_class};
use crate::requestlog::RequestLog;
use crate::trace::{Kind, Span, Tracer};

/// Who a revision belongs to, as its metric labels say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevisionLabels {
    pub namespace: String,
    pub service: String,
    pub configuration: String,
    pub revision: String,
}

/// Label names of a revision's series, in the order of [`RevisionLabels::values`].
pub const REVISION_LABELS: [&str; 4] = [
    "namespace_name",
    "service_name",
    "configuration_name",
    "revision_name",
];

impl RevisionLabels {
    pub fn values(&self) -> [&str; 4] {
        [
            &self.namespace,
            &self.service,
            &self.configuration,
            &self.revision,
        ]
    }

    /// A revision nobody described: its own name only.
    pub fn of_key(key: &RevisionKey) -> RevisionLabels {
        RevisionLabels {
            namespace: key.namespace.clone(),
            revision: key.name.clone(),
            ..Default::default()
        }
    }

    fn key(&self) -> RevisionKey {
        RevisionKey::new(&self.namespace, &self.revision)
    }
}

/// One response code's requests of one revision.
#[derive(Debug)]
pub struct CodeMetrics {
    pub count: Counter,
    pub latency: Histogram,
}

impl CodeMetrics {
    fn new() -> CodeMetrics {
        CodeMetrics {
            count: Counter::default(),
            latency: Histogram::new(LATENCY_MS),
        }
    }
}

/// One revision's request metrics; recording a request touches only atomics.
#[derive(Debug)]
pub struct RevisionMetrics {
    codes: ByCode<CodeMetrics>,
    request_sizes: Histogram,
    response_sizes: Histogram,
}

impl RevisionMetrics {
    fn new() -> RevisionMetrics {
        RevisionMetrics {
            codes: ByCode::new(CodeMetrics::new),
            request_sizes: Histogram::new(SIZE_BYTES),
            response_sizes: Histogram::new(SIZE_BYTES),
        }
    }

    pub fn record(&self, r: &RequestRecord<'_>) {
        let code = self.codes.get(r.status);
        code.count.inc();
        code.latency
            .observe(u64::try_from(r.latency.as_micros()).unwrap_or(u64::MAX));
        if let Some(size) = r.request_size {
            self.request_sizes.observe(size);
        }
        self.response_sizes.observe(r.response_size);
    }
}

/// Request metrics of every revision, and what the data plane told of them.
pub struct Serving {
    described: RwLock<HashMap<RevisionKey, RevisionLabels>>,
    revisions: Bounded<RevisionMetrics>,
    gateway: OnceLock<Gateway>,
}

impl std::fmt::Debug for Serving {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serving")
            .field("revisions", &self.revisions.len())
            .finish_non_exhaustive()
    }
}

impl Default for Serving {
    fn default() -> Self {
        Serving {
            described: RwLock::default(),
            revisions: Bounded::new(DEFAULT_CAP, RevisionMetrics::new),
            gateway: OnceLock::new(),
        }
    }
}

impl Serving {
    /// Names the service and configuration of a revision (the data plane, from its labels).
    pub fn describe(&self, labels: RevisionLabels) {
        self.described
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(labels.key(), labels);
    }

    /// A deleted revision: its series go.
    pub fn forget(&self, key: &RevisionKey) {
        let labels = self
            .described
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key)
            .unwrap_or_else(|| RevisionLabels::of_key(key));
        self.revisions.remove(&labels.values());
    }

    pub fn labels(&self, key: &RevisionKey) -> RevisionLabels {
        self.described
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
            .unwrap_or_else(|| RevisionLabels::of_key(key))
    }

    /// The metrics of a revision, kept by its observer.
    pub fn revision(&self, labels: &RevisionLabels) -> Arc<RevisionMetrics> {
        self.revisions.get(&labels.values())
    }

    /// Reads the queue depth of every revision from `gateway` at each scrape.
    pub fn watch_gateway(&self, gateway: Gateway) {
        let _ = self.gateway.set(gateway);
    }

    pub(crate) fn encode(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let revisions = self.revisions.snapshot(REVISION_LABELS.len());
        let mut counts = Vec::new();
        let mut latencies = Vec::new();
        let mut req_sizes = Vec::new();
        let mut resp_sizes = Vec::new();
        let codes: Vec<Vec<(Option<u16>, &CodeMetrics)>> =
            revisions.iter().map(|(_, m)| m.codes.each()).collect();
        let code_strings: Vec<Vec<(String, &str)>> = codes
            .iter()
            .map(|cs| {
                cs.iter()
                    .map(|(c, _)| match c {
                        Some(c) => (c.to_string(), code_class(*c)),
                        None => (crate::family::OVERFLOW.to_string(), crate::family::OVERFLOW),
                    })
                    .collect()
            })
            .collect();
        for (i, (values, m)) in revisions.iter().enumerate() {
            let base: Labels = REVISION_LABELS
                .iter()
                .copied()
                .zip(values.iter().map(String::as_str))
                .collect();
            for (j, (_, cm)) in codes[i].iter().enumerate() {
                let (code, class) = &code_strings[i][j];
                let mut labels = base.clone();
                labels.push(("response_code", code.as_str()));
                labels.push(("response_code_class", class));
                counts.push((labels.clone(), cm.count.get()));
                latencies.push((labels, cm.latency.snapshot()));
            }
            req_sizes.push((base.clone(), m.request_sizes.snapshot()));
            resp_sizes.push((base, m.response_sizes.snapshot()));
        }
        expose::counters(
            enc,
            "revision_request_count",
            "The number of requests that are routed to the revision's replicas (through the gateway)",
            &counts,
        )?;
        expose::histograms(
            enc,
            "revision_request_latencies",
            "The response time in millisecond",
            &latencies,
        )?;
        expose::histograms(
            enc,
            "revision_request_sizes",
            "Bytes of request bodies (when known from the start: Content-Length or no body)",
            &req_sizes,
        )?;
        expose::histograms(
            enc,
            "revision_response_sizes",
            "Bytes of response bodies sent to clients",
            &resp_sizes,
        )?;
        self.encode_queues(enc)
    }

    fn encode_queues(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(gateway) = self.gateway.get() else {
            return Ok(());
        };
        let mut stats = gateway.all_stats();
        stats.sort_by(|a, b| a.0.cmp(&b.0));
        let labels: Vec<RevisionLabels> = stats.iter().map(|(k, _)| self.labels(k)).collect();
        let mut depth = Vec::new();
        let mut held = Vec::new();
        for ((_, s), l) in stats.iter().zip(&labels) {
            let base: Labels = REVISION_LABELS.iter().copied().zip(l.values()).collect();
            depth.push((base.clone(), s.in_flight as f64));
            // With no replica, every waiting request waits for the activation.
            let activating = if s.endpoints == 0 { s.held } else { 0 };
            held.push((base, activating as f64));
        }
        expose::gauges(
            enc,
            "revision_queue_depth",
            "The current number of requests in the gateway for the revision: being served or waiting",
            &depth,
        )?;
        expose::gauges(
            enc,
            "wisp_activator_queue_depth",
            "Requests held because the revision has no ready replica (scaling from zero)",
            &held,
        )
    }
}

/// The gateway's observer: counts requests per revision, writes request-log lines, and
/// records the hop's spans of sampled requests when a tracer is set.
pub struct GatewayObserver {
    serving: Option<Arc<Serving>>,
    log: Option<RequestLog>,
    tracer: Option<Tracer>,
}

impl GatewayObserver {
    /// `serving`: per-revision metrics (`None`: none); `log`: request-log lines (`None`: none).
    pub fn new(serving: Option<Arc<Serving>>, log: Option<RequestLog>) -> GatewayObserver {
        GatewayObserver {
            serving,
            log,
            tracer: None,
        }
    }

    /// Spans of sampled requests go to `tracer`.
    pub fn with_tracer(mut self, tracer: Option<Tracer>) -> GatewayObserver {
        self.tracer = tracer;
        self
    }
}

impl RequestObserver for GatewayObserver {
    /// Requests no revision answered (unknown host, probes): logged, not counted.
    fn on_request(&self, r: &RequestRecord<'_>) {
        if let Some(log) = &self.log {
            log.record(r, None);
        }
        if let Some(t) = &self.tracer {
            record_spans(t, r, None);
        }
    }

    fn for_revision(&self, key: &RevisionKey) -> Option<Arc<dyn RequestObserver>> {
        let labels = match &self.serving {
            Some(s) => s.labels(key),
            None => RevisionLabels::of_key(key),
        };
        Some(Arc::new(RevisionObserver {
            metrics: self.serving.as_ref().map(|s| s.revision(&labels)),
            log: self.log.clone(),
            tracer: self.tracer.clone(),
            names: (
                labels.namespace.as_str().into(),
                labels.revision.as_str().into(),
                labels.service.as_str().into(),
            ),
            labels,
        }))
    }
}

/// One revision's observer: its metrics resolved, its labels for the log and spans.
struct RevisionObserver {
    metrics: Option<Arc<RevisionMetrics>>,
    log: Option<RequestLog>,
    tracer: Option<Tracer>,
    labels: RevisionLabels,
    /// Namespace, revision and service, shared by every span of the revision.
    names: (Arc<str>, Arc<str>, Arc<str>),
}

impl RequestObserver for RevisionObserver {
    fn on_request(&self, r: &RequestRecord<'_>) {
        if let Some(m) = &self.metrics {
            m.record(r);
        }
        if let Some(log) = &self.log {
            log.record(r, Some(&self.labels));
        }
        if let Some(t) = &self.tracer {
            record_spans(t, r, Some(&self.names));
        }
    }
}

/// The gateway hop's span of a sampled request, and a `cold start` child for the time it
/// was held while its revision scaled from zero.
fn record_spans(
    tracer: &Tracer,
    r: &RequestRecord<'_>,
    names: Option<&(Arc<str>, Arc<str>, Arc<str>)>,
) {
    let ctx = r.trace.context;
    if !ctx.sampled() {
        return;
    }
    let end = r.start + r.latency;
    let mut span = Span::new(&ctx, r.trace.parent, "gateway", Kind::Server, r.start, end);
    span.attr("http.request.method", r.method.as_str())
        .attr("server.address", r.host)
        .attr("url.path", r.uri.path())
        .attr("http.response.status_code", i64::from(r.status));
    if let Some((namespace, revision, service)) = names {
        span.attr("wisp.namespace", namespace.clone())
            .attr("wisp.revision", revision.clone());
        if !service.is_empty() {
            span.attr("wisp.service", service.clone());
        }
    }
    span.attr("wisp.cold_start", r.held);
    if let Some(held) = r.held_for {
        span.attr("wisp.cold_start.held_ms", held.as_millis() as i64);
    }
    span.error = r.status >= 500 || r.status == 0;
    tracer.record(span);
    if let Some(held) = r.held_for {
        let mut cold = Span::new(
            &ctx.child(),
            Some(ctx.span_id),
            "cold start",
            Kind::Internal,
            r.start,
            r.start + held,
        );
        if let Some((namespace, revision, _)) = names {
            cold.attr("wisp.namespace", namespace.clone())
                .attr("wisp.revision", revision.clone());
        }
        tracer.record(cold);
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::{Duration, SystemTime};

    use hyper::header::HeaderValue;
    use hyper::{Method, Uri, Version};
    use wisp_gateway::trace::HopTrace;

    use super::*;

    fn record<'a>(
        method: &'a Method,
        uri: &'a Uri,
        trace: HopTrace,
        held_for: Option<Duration>,
    ) -> RequestRecord<'a> {
        RequestRecord {
            start: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            latency: Duration::from_millis(40),
            method,
            version: Version::HTTP_11,
            host: "hello.default.localhost",
            uri,
            status: 200,
            request_size: Some(0),
            response_size: 2,
            revision: None,
            replica: None,
            held: held_for.is_some(),
            remote: IpAddr::V4(Ipv4Addr::LOCALHOST),
            user_agent: None,
            referer: None,
            traceparent: None,
            trace,
            held_for,
        }
    }

    #[test]
    fn sampled_requests_make_a_hop_span_and_a_cold_start_child() {
        let (tracer, mut rx) = Tracer::channel(16);
        let observer = GatewayObserver::new(None, None).with_tracer(Some(tracer));
        let rev = observer
            .for_revision(&RevisionKey::new("default", "hello-00001"))
            .expect("a revision observer");
        let (m, u) = (Method::GET, Uri::from_static("/x?y=1"));
        let caller =
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let trace = HopTrace::of(Some(&caller), false);
        rev.on_request(&record(&m, &u, trace, Some(Duration::from_millis(30))));
        let hop = rx.try_recv().expect("the hop's span");
        assert_eq!(hop.name, "gateway");
        assert_eq!(hop.trace_id, trace.context.trace_id);
        assert_eq!(hop.span_id, trace.context.span_id);
        assert_eq!(hop.parent, trace.parent);
        assert_eq!(
            hop.end.duration_since(hop.start).unwrap(),
            Duration::from_millis(40)
        );
        assert!(
            hop.attributes
                .contains(&("wisp.revision", "hello-00001".into()))
        );
        assert!(hop.attributes.contains(&("wisp.cold_start", true.into())));
        assert!(
            hop.attributes
                .contains(&("http.response.status_code", 200i64.into()))
        );
        let cold = rx.try_recv().expect("the cold start's span");
        assert_eq!(cold.name, "cold start");
        assert_eq!(cold.parent, Some(hop.span_id));
        assert_eq!(
            cold.end.duration_since(cold.start).unwrap(),
            Duration::from_millis(30)
        );

        // Not sampled: nothing.
        let unsampled =
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
        rev.on_request(&record(&m, &u, HopTrace::of(Some(&unsampled), true), None));
        rev.on_request(&record(&m, &u, HopTrace::of(None, false), None));
        assert!(rx.try_recv().is_err());
    }
}
