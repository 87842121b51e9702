//! The serving data plane's control side: runs revisions and programs routes.
//!
//! It implements the controller's [`DataPlane`] trait. For each Revision it keeps one driver
//! task (`driver.rs`) that plays the parts Knative spreads over the KPA reconciler, the
//! Deployment controller and the endpoints controller: it feeds the gateway's load samples to
//! the autoscaler, starts and drains replicas through a runtime [`Backend`] to match each
//! decision, hands ready replicas to the gateway, and reports what it sees back to the
//! controller as a [`RevisionObservation`]. For Routes it turns their status into the
//! gateway's routing table (`ingress.rs`), swapped in whole.
//!
//! It must not read or write the store (the controller does, from what this crate reports), nor
//! proxy requests (the gateway does). Decisions are pure and tested alone: what a revision
//! needs (`plan.rs`), which hosts a route serves (`ingress.rs`), what the status says
//! (`observe.rs`); the autoscaling math is the `wisp-autoscaler` crate's.

#![forbid(unsafe_code)]

mod driver;
pub mod images;
pub mod ingress;
pub mod observe;
pub mod plan;
mod refs;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use wisp_api::meta::get_condition;
use wisp_api::serving::{Revision, Route};
use wisp_autoscaler::Config;
use wisp_controller::dataplane::{
    DataPlane as DataPlaneApi, IngressError, RevisionName, RevisionObservation,
};
use wisp_gateway::{Gateway, GatewayEvent, HostRoute, RevisionKey, RoutingTable};
use wisp_runtime::Backend;

use driver::{Msg, Shared};

/// Settings of the data plane.
#[derive(Debug, Clone)]
pub struct Options {
    /// Knative's `config-autoscaler`.
    pub autoscaler: Config,
    /// Knative's `config-deployment` `progress-deadline`: how long a new revision may take to
    /// reach its initial scale before it is marked failed (the revision's
    /// `serving.knative.dev/progress-deadline` annotation wins).
    pub progress_deadline: Duration,
    /// Where the drivers report autoscaler decisions, and revisions' names are told for the
    /// gateway's request metrics (`None`: nowhere).
    pub telemetry: Option<wisp_telemetry::Telemetry>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            autoscaler: Config::default(),
            progress_deadline: wisp_autoscaler::spec::DEFAULT_PROGRESS_DEADLINE,
            telemetry: None,
        }
    }
}

type HostRoutes = Vec<(String, HostRoute)>;

struct Entry {
    tx: UnboundedSender<Msg>,
    plan: driver::Planned,
}

/// The data plane. Create it with [`DataPlane::new`], give it to the controller, and feed it
/// the gateway's events with [`DataPlane::run_activator`].
pub struct DataPlane {
    shared: Arc<Shared>,
    options: Options,
    revisions: Mutex<HashMap<RevisionKey, Entry>>,
    /// The hosts every route serves, and when the gateway last got them.
    routes: Arc<Mutex<Routes>>,
    changes: Mutex<Option<UnboundedReceiver<RevisionName>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl DataPlane {
    /// `resolver` pins images named by tag to digests; without one, an image container
    /// reaches the backend as written (and the backend refuses what it cannot run).
    pub fn new(
        gateway: Gateway,
        backend: Arc<dyn Backend>,
        resolver: Option<Arc<images::ImageResolver>>,
        store: Option<Arc<dyn wisp_store::Store>>,
        options: Options,
    ) -> Arc<Self> {
        let (tx, rx) = unbounded_channel();
        Arc::new(DataPlane {
            shared: Arc::new(Shared::new(
                gateway,
                backend,
                resolver,
                store,
                tx,
                options.telemetry.clone(),
            )),
            options,
            revisions: Mutex::default(),
            routes: Arc::default(),
            changes: Mutex::new(Some(rx)),
        })
    }

    /// Turns the gateway's `Activate` events into pokes of the revisions' autoscalers, until
    /// the gateway is dropped.
    pub async fn run_activator(self: Arc<Self>, mut events: UnboundedReceiver<GatewayEvent>) {
        while let Some(event) = events.recv().await {
            match event {
                GatewayEvent::Activate(key) => {
                    if let Some(e) = lock(&self.revisions).get(&key) {
                        let _ = e.tx.send(Msg::Poke);
                    }
                }
                other => tracing::debug!(?other, "gateway event ignored"),
            }
        }
    }

    /// Stops every revision's driver (each drains and stops its replicas) and waits a little
    /// for them; the backend's own shutdown then stops whatever is left.
    pub fn stop_all(&self) {
        for (_, e) in lock(&self.revisions).drain() {
            let _ = e.tx.send(Msg::Stop);
        }
    }

    /// Hands the routes to the gateway: at once when it has not been updated for
    /// [`ROUTE_COALESCE`], else once at the end of that window, so a daemon programming a
    /// thousand routes at start-up compiles the gateway's table a few dozen times, not a
    /// thousand. A lone change is served before its route is marked IngressReady.
    fn publish_routes(&self) {
        let mut routes = lock(&self.routes);
        let now = Instant::now();
        if routes
            .last_publish
            .is_none_or(|t| now.duration_since(t) >= ROUTE_COALESCE)
        {
            routes.publish(&self.shared.gateway, now);
            return;
        }
        if routes.pending {
            return;
        }
        routes.pending = true;
        let (state, gateway) = (self.routes.clone(), self.shared.gateway.clone());
        tokio::spawn(async move {
            tokio::time::sleep(ROUTE_COALESCE).await;
            lock(&state).publish(&gateway, Instant::now());
        });
    }
}

/// The labels of a revision's metrics: Knative's, from the Revision's own labels.
fn metric_labels(rev: &Revision) -> wisp_telemetry::RevisionLabels {
    use wisp_api::serving::keys;
    let label = |k: &str| rev.metadata.labels.get(k).cloned().unwrap_or_default();
    wisp_telemetry::RevisionLabels {
        namespace: rev.metadata.namespace.clone(),
        service: label(keys::SERVICE_LABEL),
        configuration: label(keys::CONFIGURATION_LABEL),
        revision: rev.metadata.name.clone(),
    }
}

/// How long route changes are gathered before the gateway's table is rebuilt, once one was
/// just rebuilt.
const ROUTE_COALESCE: Duration = Duration::from_millis(5);

/// The hosts every route serves.
#[derive(Default)]
struct Routes {
    /// (namespace, route) -> the hosts it serves.
    by_route: BTreeMap<(String, String), HostRoutes>,
    last_publish: Option<Instant>,
    /// A publish is scheduled.
    pending: bool,
}

impl Routes {
    fn publish(&mut self, gateway: &Gateway, now: Instant) {
        let mut table = RoutingTable::new();
        for ((ns, name), hosts) in &self.by_route {
            for (host, route) in hosts {
                if table.get(host).is_some() {
                    tracing::warn!(host, route = %format!("{ns}/{name}"), "host already served by another route; ignored");
                    continue;
                }
                table.insert(host, route.clone());
            }
        }
        gateway.set_routes(table);
        self.last_publish = Some(now);
        self.pending = false;
    }
}

impl DataPlaneApi for DataPlane {
    fn sync_revision(&self, rev: &Revision, reachable: bool) {
        let key = RevisionKey::new(&rev.metadata.namespace, &rev.metadata.name);
        let plan: driver::Planned = plan::plan(
            rev,
            &self.options.autoscaler,
            self.options.progress_deadline,
            reachable,
        )
        .map(Box::new);
        let mut revisions = lock(&self.revisions);
        match revisions.get_mut(&key) {
            Some(e) if e.plan == plan => {}
            Some(e) => {
                e.plan = plan.clone();
                let _ = e.tx.send(Msg::Update(plan));
            }
            None => {
                if let Some(t) = &self.options.telemetry {
                    // Before the driver adds the revision to the gateway, whose observer
                    // resolves the revision's metric labels then.
                    t.serving().describe(metric_labels(rev));
                }
                // Reached its initial scale in an earlier run: start at zero, as Knative's
                // autoscaler does for an initialized PodAutoscaler.
                let resumed = get_condition(&rev.status.conditions, "ResourcesAvailable")
                    .is_some_and(|c| c.is_true());
                let tx = driver::spawn(key.clone(), self.shared.clone(), plan.clone(), resumed);
                revisions.insert(key, Entry { tx, plan });
            }
        }
    }

    fn remove_revision(&self, namespace: &str, name: &str) {
        if let Some(e) = lock(&self.revisions).remove(&RevisionKey::new(namespace, name)) {
            let _ = e.tx.send(Msg::Stop);
        }
    }

    fn observe_revision(&self, namespace: &str, name: &str) -> Option<RevisionObservation> {
        lock(&self.shared.observations)
            .get(&RevisionKey::new(namespace, name))
            .cloned()
    }

    fn sync_route(&self, route: &Route) -> Result<(), IngressError> {
        let hosts = ingress::host_routes(route);
        if hosts.is_empty() {
            return Err(IngressError {
                reason: "NoURL".to_string(),
                message: "the route has no URL to serve yet".to_string(),
            });
        }
        let key = (
            route.metadata.namespace.clone(),
            route.metadata.name.clone(),
        );
        let changed = lock(&self.routes).by_route.insert(key, hosts.clone()) != Some(hosts);
        if changed {
            self.publish_routes();
        }
        Ok(())
    }

    fn remove_route(&self, namespace: &str, name: &str) {
        let removed = lock(&self.routes)
            .by_route
            .remove(&(namespace.to_string(), name.to_string()))
            .is_some();
        if removed {
            self.publish_routes();
        }
    }

    fn changes(&self) -> Option<UnboundedReceiver<RevisionName>> {
        lock(&self.changes).take()
    }
}
