//! The event plane: what Knative's broker ingress, broker filter, channel dispatchers, ping
//! adapter and eventing controllers do, as tasks of the daemon.
//!
//! Shape: the ingress ([`ingress`]) appends accepted events to a durable log (the
//! `wisp-eventlog` trait; SQLite by default), one stream per broker. Each trigger is a
//! consumer of its broker's stream ([`dispatch`]): it reads from its cursor, filters, and
//! delivers ([`deliver`]) with retries and dead letters; replies go back into the broker's
//! stream. Sources produce into streams of their own ([`ping`]). The reconciler
//! ([`reconcile`], pure) derives all of that, and every eventing object's status, from the
//! objects in the store; [`EventPlane::run`] is its I/O loop.
//!
//! Why the event plane reads the store directly rather than through the serving controller's
//! caches: eventing reacts to few kinds and recomputes its whole picture on any change
//! (cheap at one machine's scale), so a watch of the store and a debounce are all it needs.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::sync::watch;
use wisp_api::kinds::{self, ResourceInfo};
use wisp_eventlog::EventLog;
use wisp_store::{Store, StoreError};

pub mod apiwatch;
pub mod deliver;
pub mod dispatch;
pub mod ingress;
pub mod ping;
pub mod reconcile;
pub mod record;

use deliver::Sender;
use dispatch::Dispatcher;
use ingress::Addresses;
use reconcile::{Settings, World};

/// Changes are gathered this long before one reconcile.
const DEBOUNCE: Duration = Duration::from_millis(20);

/// The kinds whose changes the event plane reacts to.
const WATCHED: &[&ResourceInfo] = &[
    &kinds::BROKERS,
    &kinds::TRIGGERS,
    &kinds::PING_SOURCES,
    &kinds::SERVICES,
    &kinds::CHANNELS,
    &kinds::IN_MEMORY_CHANNELS,
    &kinds::SUBSCRIPTIONS,
    &kinds::SEQUENCES,
    &kinds::PARALLELS,
    &kinds::SINK_BINDINGS,
    &kinds::CONTAINER_SOURCES,
    &kinds::API_SERVER_SOURCES,
];

/// Settings of the event plane.
#[derive(Debug, Clone)]
pub struct Config {
    /// Base URL of the ingress as clients reach it (brokers' `status.address.url`).
    pub ingress_url: String,
    /// The gateway, where deliveries to Services go.
    pub gateway: Option<SocketAddr>,
    /// The serving domain: hosts under it are the gateway's.
    pub domain: String,
    /// The API server's URL: the `source` of ApiServerSource events.
    pub api_url: String,
    /// Where ingress and dispatch figures go (`None`: nowhere).
    pub telemetry: Option<wisp_telemetry::Telemetry>,
}

/// The running event plane. Cheap to share.
pub struct EventPlane {
    store: Arc<dyn Store>,
    log: Arc<dyn EventLog>,
    settings: Settings,
    addresses: Arc<Addresses>,
    dispatcher: Dispatcher,
    pings: watch::Sender<Vec<reconcile::PingSpec>>,
    api_watches: watch::Sender<Vec<reconcile::sources::ApiWatchSpec>>,
    telemetry: Option<wisp_telemetry::Telemetry>,
}

impl EventPlane {
    pub fn new(store: Arc<dyn Store>, log: Arc<dyn EventLog>, config: Config) -> Arc<EventPlane> {
        let sender = Sender::new(log.clone(), config.gateway, &config.domain)
            .with_tracer(config.telemetry.as_ref().and_then(|t| t.tracer().cloned()));
        let recorder = record::Recorder::new(store.clone());
        let (pings, rx) = watch::channel(Vec::new());
        tokio::spawn(ping::run(log.clone(), rx));
        let (api_watches, rx) = watch::channel(Vec::new());
        tokio::spawn(apiwatch::run(
            store.clone(),
            log.clone(),
            config.api_url.clone(),
            rx,
        ));
        Arc::new(EventPlane {
            store,
            log,
            settings: Settings {
                ingress_url: config.ingress_url,
            },
            addresses: Arc::default(),
            dispatcher: Dispatcher::new(
                sender,
                dispatch::Reporting {
                    telemetry: config.telemetry.clone(),
                    recorder: Some(recorder),
                },
            ),
            pings,
            api_watches,
            telemetry: config.telemetry,
        })
    }

    /// The ingress's HTTP routes.
    pub fn router(&self) -> axum::Router {
        ingress::router(
            self.log.clone(),
            self.addresses.clone(),
            self.telemetry.as_ref().map(|t| t.eventing().clone()),
            self.telemetry.as_ref().and_then(|t| t.tracer().cloned()),
        )
    }

    /// Delivery counters (delivered, dead-lettered, dropped).
    pub fn counters(&self) -> Arc<dispatch::Counters> {
        self.dispatcher.counters.clone()
    }

    /// Stops every consumer; cursors stay for the next start.
    pub fn stop(&self) {
        self.dispatcher.stop_all();
    }

    /// Reconciles on every relevant change of the store, forever.
    pub async fn run(self: Arc<Self>) {
        loop {
            let rv = match self.reconcile_once().await {
                Ok(rv) => rv,
                Err(e) => {
                    tracing::warn!(error = %e, "eventing reconcile failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let mut events = match self.store.watch(None, None, rv).await {
                Ok(events) => events,
                Err(e) => {
                    tracing::info!(error = %e, "eventing watch failed; listing again");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let watched: Vec<String> = WATCHED.iter().map(|k| kinds::storage_key(k)).collect();
            'watch: loop {
                // Wait for a relevant change, then gather what follows for a moment.
                loop {
                    match events.recv().await {
                        Some(Ok(e)) if watched.contains(&e.resource) => break,
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => break 'watch,
                    }
                }
                let deadline = tokio::time::Instant::now() + DEBOUNCE;
                while let Ok(Some(e)) = tokio::time::timeout_at(deadline, events.recv()).await {
                    if e.is_err() {
                        break 'watch;
                    }
                }
                if let Err(e) = self.reconcile_once().await {
                    tracing::warn!(error = %e, "eventing reconcile failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    async fn list<T: DeserializeOwned>(
        &self,
        info: &ResourceInfo,
    ) -> Result<(Vec<T>, u64), StoreError> {
        let list = self.store.list(&kinds::storage_key(info), None).await?;
        let items = list
            .items
            .into_iter()
            .filter_map(|v| match serde_json::from_value(v) {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::warn!(kind = info.kind, error = %e, "skipping an object the event plane cannot read");
                    None
                }
            })
            .collect();
        Ok((items, list.resource_version))
    }

    /// One pass: read, decide, write statuses, apply. Returns the oldest of the versions its
    /// lists were read at: watching from there cannot miss an object created between two of
    /// the lists (changes seen twice are harmless, the pass is idempotent).
    async fn reconcile_once(&self) -> Result<u64, StoreError> {
        let (brokers, rv1) = self.list(&kinds::BROKERS).await?;
        let (triggers, rv2) = self.list(&kinds::TRIGGERS).await?;
        let (pings, rv3) = self.list(&kinds::PING_SOURCES).await?;
        let (services, rv4) = self.list(&kinds::SERVICES).await?;
        let (channels, rv5) = self.list(&kinds::CHANNELS).await?;
        let (in_memory_channels, rv6) = self.list(&kinds::IN_MEMORY_CHANNELS).await?;
        let (subscriptions, rv7) = self.list(&kinds::SUBSCRIPTIONS).await?;
        let (sequences, rv8) = self.list(&kinds::SEQUENCES).await?;
        let (parallels, rv9) = self.list(&kinds::PARALLELS).await?;
        let (sink_bindings, rv10) = self.list(&kinds::SINK_BINDINGS).await?;
        let (container_sources, rv11) = self.list(&kinds::CONTAINER_SOURCES).await?;
        let (api_server_sources, rv12) = self.list(&kinds::API_SERVER_SOURCES).await?;
        let world = World {
            brokers,
            triggers,
            pings,
            services,
            channels,
            in_memory_channels,
            subscriptions,
            sequences,
            parallels,
            sink_bindings,
            container_sources,
            api_server_sources,
        };
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let plan = reconcile::reconcile(&world, &self.settings, &now);

        let mut wanted: HashSet<&str> = plan
            .broker_streams
            .values()
            .chain(plan.channel_streams.values())
            .map(String::as_str)
            .collect();
        wanted.extend(plan.consumers.iter().map(|c| c.stream.as_str()));
        for stream in wanted {
            if let Err(e) = self.log.ensure_stream(stream).await {
                tracing::warn!(%stream, error = %e, "cannot create an event stream");
            }
        }
        let addresses: HashMap<(String, String), String> = plan.broker_streams.clone();
        self.addresses.set_brokers(addresses);
        self.addresses.set_channels(plan.channel_streams.clone());
        let consumer_ids: HashSet<String> = plan.consumers.iter().map(|c| c.id.clone()).collect();
        let stream_names: HashSet<String> = plan
            .broker_streams
            .values()
            .chain(plan.channel_streams.values())
            .chain(plan.consumers.iter().map(|c| &c.stream))
            .cloned()
            .collect();
        self.dispatcher.apply(plan.consumers).await;
        self.collect_garbage(&stream_names, &consumer_ids).await;
        self.pings.send_replace(plan.schedules);
        self.api_watches.send_replace(plan.api_watches);
        for svc in plan.service_updates {
            self.write_object(&kinds::SERVICES, svc).await;
        }
        for child in plan.children {
            self.apply_child(&world.services, child).await;
        }

        for w in plan.writes {
            self.write_status(w).await;
        }
        Ok([
            rv1, rv2, rv3, rv4, rv5, rv6, rv7, rv8, rv9, rv10, rv11, rv12,
        ]
        .into_iter()
        .min()
        .unwrap_or(0))
    }

    /// Deletes the streams and consumers of objects that no longer exist, including those
    /// deleted while the daemon was down.
    async fn collect_garbage(&self, streams: &HashSet<String>, consumers: &HashSet<String>) {
        let Ok((all_streams, all_consumers)) = self.log.names().await else {
            return;
        };
        for c in all_consumers.iter().filter(|c| !consumers.contains(*c)) {
            if let Err(e) = self.log.delete_consumer(c).await {
                tracing::warn!(consumer = %c, error = %e, "cannot delete an unused consumer");
            }
        }
        for s in all_streams.iter().filter(|s| !streams.contains(*s)) {
            if let Err(e) = self.log.delete_stream(s).await {
                tracing::warn!(stream = %s, error = %e, "cannot delete an unused stream");
            }
        }
    }

    /// Writes an object the reconciler changed (a conflict waits for the next pass).
    async fn write_object<T: serde::Serialize>(&self, info: &ResourceInfo, object: T) {
        let Ok(value) = serde_json::to_value(object) else {
            return;
        };
        if let Err(e) = self.store.update(&kinds::storage_key(info), value).await
            && !matches!(e, StoreError::Conflict { .. } | StoreError::NotFound { .. })
        {
            tracing::warn!(kind = info.kind, error = %e, "cannot update an object");
        }
    }

    /// Creates a ContainerSource's Service, or updates it when its spec is not what the
    /// source asks for. Both go through the admission webhook, as a client's write would.
    async fn apply_child(&self, services: &[wisp_api::serving::Service], child: serde_json::Value) {
        use wisp_api::admission::{AdmissionContext, Operation, admit};
        let ctx =
            AdmissionContext::new("system:serviceaccount:knative-eventing:eventing-controller");
        let ns = child["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let name = child["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let existing = services
            .iter()
            .find(|s| s.metadata.namespace == ns && s.metadata.name == name);
        let name = name.as_str();
        let key = kinds::storage_key(&kinds::SERVICES);
        let result = match existing {
            None => match admit(&kinds::SERVICES, Operation::Create, None, child, &ctx) {
                Ok(v) => self.store.create(&key, v).await.map(drop),
                Err(e) => {
                    tracing::warn!(service = name, error = %e, "a ContainerSource's Service is refused");
                    return;
                }
            },
            Some(old) => {
                let Ok(old) = serde_json::to_value(old) else {
                    return;
                };
                let mut new = old.clone();
                new["spec"] = child["spec"].clone();
                match admit(&kinds::SERVICES, Operation::Update, Some(&old), new, &ctx) {
                    Ok(v) if v["spec"] != old["spec"] => self.store.update(&key, v).await.map(drop),
                    Ok(_) => return,
                    Err(e) => {
                        tracing::warn!(service = name, error = %e, "a ContainerSource's Service is refused");
                        return;
                    }
                }
            }
        };
        if let Err(e) = result
            && !matches!(
                e,
                StoreError::Conflict { .. } | StoreError::AlreadyExists { .. }
            )
        {
            tracing::warn!(service = name, error = %e, "cannot write a ContainerSource's Service");
        }
    }

    /// Writes a status that differs from the stored one. A conflict is left for the next
    /// pass (the change that caused it triggers one).
    async fn write_status(&self, w: reconcile::StatusWrite) {
        if w.new.get("status") == Some(&w.old) {
            return;
        }
        if let Err(e) = self
            .store
            .update_status(&kinds::storage_key(w.info), w.new)
            .await
            && !matches!(e, StoreError::Conflict { .. } | StoreError::NotFound { .. })
        {
            tracing::warn!(kind = w.info.kind, error = %e, "cannot write a status");
        }
    }
}

/// The admission webhook's CESQL check (`wisp_api::admission::CesqlCheck`): a Trigger whose
/// `cesql` filter does not parse is refused when it is written, not when events arrive.
pub fn cesql_check(expression: &str) -> Result<(), String> {
    wisp_eventing::cesql::Expression::parse(expression)
        .map(drop)
        .map_err(|e| e.to_string())
}
