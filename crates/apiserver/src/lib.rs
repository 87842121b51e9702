//! wisp's Kubernetes-style REST API: the kube-apiserver + admission webhook of one machine.
//!
//! It speaks the conventions kubectl relies on — discovery, list/get/create/update/patch/delete,
//! `?watch=true`, the `status` subresource, server-side `Table` printing, and `Status` errors —
//! for every kind in `wisp_api::kinds`. Objects pass through `wisp_api::admission` (defaulting
//! and validation) on the way in and are kept by a [`wisp_store::Store`]. It owns no business
//! logic of Knative: reconciling is the controller's job, and the API server never calls it.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use wisp_api::admission::AdmissionContext;
use wisp_store::Store;

mod discovery;
mod error;
mod handlers;
mod logs;
mod metrics;
mod openapi;
mod paths;
mod selector;
mod table;

pub use error::ApiError;
pub use logs::LogSource;
pub use metrics::{RequestInfo, request_info};
pub use selector::{FieldSelector, LabelSelector};

/// Shared state of the API server.
#[derive(Clone)]
pub struct ApiServer {
    store: Arc<dyn Store>,
    /// The `host:port` clients reach us at, announced in `/api`.
    server_address: String,
    /// Turns true when the daemon stops: open watches end so connections can drain.
    stopping: Arc<tokio::sync::watch::Sender<bool>>,
    /// Replica logs, served at `revisions/{name}/log`.
    logs: Option<Arc<dyn LogSource>>,
    /// The user stamped on objects and the Knative configuration admission checks against.
    admission: Arc<AdmissionContext>,
    /// Routes of other parts of the daemon served on the API port (the dashboard, metrics).
    extra: Router,
    /// Where API requests are counted.
    metrics: Option<Arc<wisp_telemetry::Api>>,
}

impl ApiServer {
    pub fn new(store: Arc<dyn Store>, server_address: impl Into<String>) -> ApiServer {
        ApiServer {
            store,
            server_address: server_address.into(),
            stopping: Arc::new(tokio::sync::watch::Sender::new(false)),
            logs: None,
            admission: Arc::new(AdmissionContext::new("admin")),
            extra: Router::new(),
            metrics: None,
        }
    }

    /// Counts and times every API request (`apiserver_request_total`, ...) in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<wisp_telemetry::Api>) -> ApiServer {
        self.metrics = Some(metrics);
        self
    }

    /// Admits objects against this configuration (`config-autoscaler`'s
    /// `allow-zero-initial-scale`, `max-scale-limit`, ...) instead of Knative's defaults.
    pub fn with_admission_config(mut self, config: wisp_api::admission::Config) -> ApiServer {
        self.admission = Arc::new(AdmissionContext {
            config,
            ..AdmissionContext::new("admin")
        });
        self
    }

    /// Serves replica logs from `source` at `.../revisions/{name}/log`.
    pub fn with_logs(mut self, source: Arc<dyn LogSource>) -> ApiServer {
        self.logs = Some(source);
        self
    }

    /// Serves `routes` on the API port beside the Kubernetes API (the dashboard, `/metrics`).
    /// Their paths must not overlap the API's; unmatched paths still reach the API.
    pub fn with_routes(mut self, routes: Router) -> ApiServer {
        self.extra = self.extra.merge(routes);
        self
    }

    /// Ends every open watch stream (and refuses new ones), so a graceful shutdown of the
    /// HTTP server does not wait for long-lived watches.
    pub fn stop_watches(&self) {
        self.stopping.send_replace(true);
    }

    /// Creates the `default` namespace if it does not exist, so a fresh data dir lists it.
    pub async fn bootstrap(&self) -> Result<(), ApiError> {
        handlers::ensure_namespace(self.store.as_ref(), "default").await
    }

    /// The HTTP router: discovery, health, and every served resource.
    pub fn router(mut self) -> Router {
        let extra = std::mem::replace(&mut self.extra, Router::new());
        let metrics = self.metrics.clone();
        let api = Router::new()
            .route(
                "/version",
                get(|| async { axum::Json(discovery::version()) }),
            )
            .route("/openapi/v3", get(|| async { axum::Json(openapi::root()) }))
            .route(
                "/openapi/v3/{*path}",
                get(
                    |axum::extract::Path(path): axum::extract::Path<String>| async move {
                        openapi::group_version(&path)
                            .map(axum::Json)
                            .ok_or_else(|| {
                                ApiError::NotFound(format!("no OpenAPI document for {path}"))
                            })
                    },
                ),
            )
            .route("/healthz", get(|| async { "ok" }))
            .route("/livez", get(|| async { "ok" }))
            .route("/readyz", get(|| async { "ok" }))
            .fallback(handlers::dispatch)
            .with_state(Arc::new(self));
        let api = match metrics {
            Some(m) => api.layer(axum::middleware::from_fn_with_state(m, metrics::observe)),
            None => api,
        };
        api.merge(extra)
    }
}
