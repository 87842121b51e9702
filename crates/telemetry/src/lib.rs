//! wisp's telemetry: what Knative's components export as Prometheus metrics, from one daemon,
//! and the gateway's request log.
//!
//! It owns the figures and how they are exposed: the gateway's per-revision request counts
//! and latencies ([`serving`], through the gateway's `RequestObserver` hook), the
//! autoscaler's decisions ([`autoscaler`], written by the data plane's drivers), broker and
//! trigger event counts ([`eventing`]), API requests ([`api`]), the process's own figures
//! ([`process`]), the request-log file ([`requestlog`]) and its reader ([`debug`]), spans
//! and their OTLP exporter ([`trace`]), and the axum routes that serve them (`/metrics`,
//! `/debug/requests`). It decides nothing and reads
//! no store: the crates that act record here through small typed handles.
//!
//! Why its own storage under prometheus-client's encoder: recording must cost the request
//! path a few relaxed atomic adds on handles resolved when a revision or trigger appears, and
//! a scrape must never make a request wait. Scrapes copy counters out (locks are held only to
//! clone handle lists) and encode with prometheus-client, which owns the text format.
//! Metric names are Knative's where Knative has one (queue-proxy's `revision_*`, the
//! autoscaler's `autoscaler_*`, the broker's `mt_broker_*`), kube-apiserver's for the API,
//! the standard `process_*`, and `wisp_*` for wisp's own. Counters carry the `_total` suffix
//! the Prometheus conventions require (Knative's OpenCensus exporter left it off), so
//! `revision_request_count` is scraped as `revision_request_count_total`.
//!
//! Label values that users choose are bounded ([`family`]): 1,000 label sets per family, an
//! `overflow` series beyond. Request paths and headers never become labels; they are in the
//! request log only.

#![forbid(unsafe_code)]

pub mod api;
pub mod autoscaler;
pub mod debug;
pub mod eventing;
mod expose;
pub mod family;
pub mod metric;
pub mod process;
pub mod requestlog;
pub mod serving;
pub mod trace;

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;

pub use api::{Api, ApiRequest};
pub use autoscaler::{AutoscalerGauges, AutoscalerSample, Autoscaling};
pub use eventing::{Eventing, TriggerMetrics};
pub use requestlog::RequestLog;
pub use serving::{GatewayObserver, RevisionLabels, Serving};
pub use trace::Tracer;

/// Every figure of the daemon. Cheap to clone; each part is shared with whoever records it.
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

struct Inner {
    parts: Arc<Parts>,
    registry: Registry,
    stopping: tokio::sync::watch::Sender<bool>,
}

#[derive(Debug, Default)]
struct Parts {
    serving: Arc<Serving>,
    autoscaling: Arc<Autoscaling>,
    eventing: Arc<Eventing>,
    api: Arc<Api>,
    request_log: OnceLock<RequestLog>,
    tracer: OnceLock<Tracer>,
}

impl Collector for Parts {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.serving.encode(&mut enc)?;
        self.autoscaling.encode(&mut enc)?;
        self.eventing.encode(&mut enc)?;
        self.api.encode(&mut enc)?;
        if let Some(log) = self.request_log.get() {
            log.encode(&mut enc)?;
        }
        if let Some(tracer) = self.tracer.get() {
            tracer.encode(&mut enc)?;
        }
        process::encode(&mut enc)
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

/// The `Content-Type` of `/metrics`: Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

impl Telemetry {
    pub fn new() -> Telemetry {
        let parts = Arc::new(Parts::default());
        let mut registry = Registry::default();
        registry.register_collector(Box::new(parts.clone()));
        Telemetry {
            inner: Arc::new(Inner {
                parts,
                registry,
                stopping: tokio::sync::watch::Sender::new(false),
            }),
        }
    }

    pub fn serving(&self) -> &Arc<Serving> {
        &self.inner.parts.serving
    }

    pub fn autoscaling(&self) -> &Arc<Autoscaling> {
        &self.inner.parts.autoscaling
    }

    pub fn eventing(&self) -> &Arc<Eventing> {
        &self.inner.parts.eventing
    }

    pub fn api(&self) -> &Arc<Api> {
        &self.inner.parts.api
    }

    /// Serves `log` at `/debug/requests` and exposes its counts. Once.
    pub fn set_request_log(&self, log: RequestLog) {
        let _ = self.inner.parts.request_log.set(log);
    }

    pub fn request_log(&self) -> Option<&RequestLog> {
        self.inner.parts.request_log.get()
    }

    /// Exports sampled spans through `tracer` and exposes its counts. Once.
    pub fn set_tracer(&self, tracer: Tracer) {
        let _ = self.inner.parts.tracer.set(tracer);
    }

    /// Where spans go; `None`: no exporter, no spans are made.
    pub fn tracer(&self) -> Option<&Tracer> {
        self.inner.parts.tracer.get()
    }

    /// The gateway's observer: per-revision metrics when `metrics`, lines to the request log
    /// if one is set, and spans if a tracer is. `None` when it would do nothing, so the
    /// gateway skips observing.
    pub fn gateway_observer(&self, metrics: bool) -> Option<Arc<GatewayObserver>> {
        let log = self.request_log().cloned();
        let tracer = self.tracer().cloned();
        if !metrics && log.is_none() && tracer.is_none() {
            return None;
        }
        Some(Arc::new(
            GatewayObserver::new(metrics.then(|| self.serving().clone()), log).with_tracer(tracer),
        ))
    }

    /// Everything, in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(64 << 10);
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.inner.registry)
        {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        out
    }

    /// Ends request-log followers (the daemon is stopping).
    pub fn stop(&self) {
        self.inner.stopping.send_replace(true);
    }

    /// `GET /metrics` and `GET /debug/requests`.
    pub fn router(&self) -> Router {
        let metrics = self.clone();
        let endpoint = debug::Endpoint {
            path: self.request_log().map(|l| l.path().to_path_buf()),
            stopping: self.inner.stopping.subscribe(),
        };
        Router::new()
            .route(
                "/metrics",
                get(move || {
                    let t = metrics.clone();
                    async move {
                        // Encoding reads atomics and /proc; off the async workers all the same.
                        match tokio::task::spawn_blocking(move || t.encode()).await {
                            Ok(body) => {
                                ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
                            }
                            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                        }
                    }
                }),
            )
            .route("/debug/requests", get(debug::requests).with_state(endpoint))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_daemon_still_exposes_its_process() {
        let t = Telemetry::new();
        let text = t.encode();
        assert!(
            text.contains("# TYPE process_cpu_seconds_total counter"),
            "{text}"
        );
        assert!(text.contains("process_resident_memory_bytes "), "{text}");
        assert!(!text.contains("revision_request_count"));
    }

    #[test]
    fn autoscaler_and_eventing_families_are_exposed_with_their_labels() {
        let t = Telemetry::new();
        let labels = RevisionLabels {
            namespace: "default".into(),
            service: "hello".into(),
            configuration: "hello".into(),
            revision: "hello-00001".into(),
        };
        t.autoscaling().revision(&labels).set(AutoscalerSample {
            desired_pods: 2,
            requested_pods: 2,
            actual_pods: 1,
            panic_mode: true,
            target_concurrency_per_pod: Some(70.0),
            ..Default::default()
        });
        t.eventing().ingress(
            "default",
            "default",
            "dev.example",
            202,
            std::time::Duration::from_millis(1),
        );
        let tm = t.eventing().trigger("default", "default", "t1");
        tm.dispatched(Some(200), std::time::Duration::from_millis(3), 1);
        tm.dispatched(None, std::time::Duration::from_millis(3), 3);
        tm.dropped();
        let text = t.encode();
        let want = [
            r#"autoscaler_desired_pods{namespace_name="default",service_name="hello",configuration_name="hello",revision_name="hello-00001"} 2"#,
            r#"autoscaler_panic_mode{namespace_name="default",service_name="hello",configuration_name="hello",revision_name="hello-00001"} 1"#,
            r#"autoscaler_target_concurrency_per_pod{namespace_name="default",service_name="hello",configuration_name="hello",revision_name="hello-00001"} 70.0"#,
            r#"mt_broker_ingress_event_count_total{namespace_name="default",broker_name="default",event_type="dev.example",response_code="202",response_code_class="2xx"} 1"#,
            r#"mt_broker_filter_event_count_total{namespace_name="default",broker_name="default",trigger_name="t1",response_code="200",response_code_class="2xx"} 1"#,
            r#"mt_broker_filter_event_count_total{namespace_name="default",broker_name="default",trigger_name="t1",response_code="0",response_code_class="0xx"} 1"#,
            r#"wisp_trigger_event_retries_total{namespace_name="default",broker_name="default",trigger_name="t1"} 2"#,
            r#"wisp_trigger_events_dropped_total{namespace_name="default",broker_name="default",trigger_name="t1"} 1"#,
        ];
        for w in want {
            assert!(text.contains(w), "missing {w} in\n{text}");
        }
        assert!(!text.contains("autoscaler_target_requests_per_second"));
        t.autoscaling().forget(&labels);
        assert!(!t.encode().contains("autoscaler_desired_pods"));
    }

    #[test]
    fn api_requests_by_verb_resource_and_code() {
        let t = Telemetry::new();
        let r = ApiRequest {
            verb: "list",
            group: "serving.knative.dev",
            version: "v1",
            resource: "services",
            subresource: "",
            code: 200,
            latency: std::time::Duration::from_millis(2),
        };
        t.api().record(&r);
        t.api().record(&r);
        let text = t.encode();
        assert!(text.contains(r#"apiserver_request_total{verb="list",group="serving.knative.dev",version="v1",resource="services",subresource="",code="200"} 2"#), "{text}");
        assert!(text.contains(r#"apiserver_request_duration_seconds_bucket{verb="list",group="serving.knative.dev",version="v1",resource="services",subresource="",le="0.0025"} 2"#), "{text}");
    }
}
