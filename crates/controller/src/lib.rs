//! The serving controller: Knative's reconcilers for Services, Configurations, Revisions and
//! Routes, on one machine.
//!
//! Shape (as kube-rs and Knative's own controllers): informers keep typed caches current from
//! the store's watch; every change enqueues the keys it affects; workers take keys from a
//! deduplicating queue and reconcile them. A reconcile is an idempotent function of desired
//! state (the object) and observed state (the caches): it computes children and status with the
//! pure functions in [`resources`] and [`status`], and writes only what differs, with
//! optimistic concurrency. Start-up, change and crash recovery are one path: list everything,
//! reconcile everything.
//!
//! The controller never serves HTTP and never talks to the API server: it reads and writes the
//! store directly, as Knative's controllers read informers and write the kube-apiserver.

use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use wisp_api::kinds::{self, ResourceInfo};
use wisp_api::meta::{CONFIGURATION_CONDITIONS, ObjectMeta, READY, get_condition};
use wisp_api::serving::{self, Configuration, Revision, Route, Service, keys};
use wisp_api::traffic::{ConfigurationState, Lookup, RevisionState};
use wisp_store::{Store, StoreError};

pub mod cache;
pub mod dataplane;
pub mod events;
mod informer;
pub mod queue;
mod refs;
pub mod resources;
pub mod status;

use cache::{Caches, Object};
use dataplane::DataPlane;
use queue::{Key, Kind, Queue};

/// Why a reconcile did not finish; the key is retried after a back-off.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot read back a stored object: {0}")]
    Decode(#[from] serde_json::Error),
}

impl ReconcileError {
    /// Stale caches cause these; they heal on the next pass and are not worth a warning.
    fn is_expected(&self) -> bool {
        matches!(
            self,
            ReconcileError::Store(
                StoreError::Conflict { .. }
                    | StoreError::AlreadyExists { .. }
                    | StoreError::NotFound { .. }
            )
        )
    }
}

type Result<T, E = ReconcileError> = std::result::Result<T, E>;

/// Settings of the serving controller.
#[derive(Debug, Clone)]
pub struct Config {
    /// Domain of Route URLs: `http://{name}.{namespace}.{domain}`.
    pub domain: String,
    /// Concurrent reconciles (never two of one key).
    pub workers: usize,
}

/// The serving controller. Cheap to clone; clones share caches and queue.
#[derive(Clone)]
pub struct Controller {
    store: Arc<dyn Store>,
    caches: Arc<Caches>,
    queue: Queue,
    config: Arc<Config>,
    route_refs: Arc<refs::RouteRefs>,
    data_plane: Option<Arc<dyn DataPlane>>,
    events: Option<events::Recorder>,
}

fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

fn owned_by(meta: &ObjectMeta, owner_uid: &str) -> bool {
    meta.controller_ref().is_some_and(|r| r.uid == owner_uid)
}

impl Controller {
    pub fn new(store: Arc<dyn Store>, config: Config) -> Controller {
        Controller {
            store,
            caches: Arc::new(Caches::default()),
            queue: Queue::default(),
            config: Arc::new(config),
            route_refs: Arc::default(),
            data_plane: None,
            events: None,
        }
    }

    /// Records Kubernetes Events (created children, latest ready revision, failures,
    /// scaling) through `recorder`.
    pub fn with_events(mut self, recorder: events::Recorder) -> Controller {
        self.events = Some(recorder);
        self
    }

    fn event(
        &self,
        warning: bool,
        object: wisp_api::core::ObjectReference,
        reason: &str,
        message: String,
    ) {
        if let Some(r) = &self.events {
            if warning {
                r.warning(object, reason, message);
            } else {
                r.normal(object, reason, message);
            }
        }
    }

    /// Runs revisions and serves routes through `data_plane`; without one, Revisions stay
    /// `Ready=Unknown` and Routes `IngressReady=Unknown`, saying why.
    pub fn with_data_plane(mut self, data_plane: Arc<dyn DataPlane>) -> Controller {
        self.data_plane = Some(data_plane);
        self
    }

    /// The controller's caches (read-only use: other parts may watch the same objects).
    pub fn caches(&self) -> Arc<Caches> {
        self.caches.clone()
    }

    /// Keys waiting or being reconciled: zero when everything has converged.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// Runs informers and workers until the future is dropped.
    pub async fn run(self) {
        let mut synced = Vec::new();
        let mut tasks = tokio::task::JoinSet::new();
        macro_rules! inform {
            ($info:expr, $pick:expr, $on_change:ident) => {{
                let (tx, rx) = watch::channel(false);
                synced.push(rx);
                let this = self.clone();
                tasks.spawn(informer::run(
                    self.store.clone(),
                    kinds::storage_key(&$info),
                    self.caches.clone(),
                    $pick,
                    move |obj| this.$on_change(obj),
                    tx,
                ));
            }};
        }
        inform!(kinds::SERVICES, |c: &Caches| &c.services, on_service);
        inform!(
            kinds::CONFIGURATIONS,
            |c: &Caches| &c.configurations,
            on_configuration
        );
        inform!(kinds::REVISIONS, |c: &Caches| &c.revisions, on_revision);
        inform!(kinds::ROUTES, |c: &Caches| &c.routes, on_route);
        if let Some(mut changes) = self.data_plane.as_ref().and_then(|dp| dp.changes()) {
            let queue = self.queue.clone();
            tasks.spawn(async move {
                while let Some(r) = changes.recv().await {
                    queue.add(Key::new(Kind::Revision, &r.namespace, &r.name));
                }
            });
        }
        // Reconciling before every cache is filled would see children as missing.
        for mut rx in synced {
            let _ = rx.wait_for(|s| *s).await;
        }
        tracing::info!(
            services = self.caches.services.len(),
            revisions = self.caches.revisions.len(),
            "serving controller synced"
        );
        for _ in 0..self.config.workers.max(1) {
            let this = self.clone();
            tasks.spawn(async move { this.work().await });
        }
        while tasks.join_next().await.is_some() {}
    }

    async fn work(self) {
        loop {
            let key = self.queue.next().await;
            let result = self.reconcile(&key).await;
            match &result {
                Ok(()) => {}
                Err(e) if e.is_expected() => tracing::debug!(%key, error = %e, "retrying"),
                Err(e) => tracing::warn!(%key, error = %e, "reconcile failed; retrying"),
            }
            self.queue.done(key, result.is_ok());
        }
    }

    // ---- what each change affects -------------------------------------------------------

    fn enqueue_routes(&self, ns: &str, configuration: &str, revision: Option<&str>) {
        let names = [Some(configuration), revision].into_iter().flatten();
        for target in names.filter(|n| !n.is_empty()) {
            for route in self.route_refs.routes(ns, target) {
                self.queue.add(Key::new(Kind::Route, ns, &route));
            }
        }
    }

    fn enqueue_owner(&self, meta: &ObjectMeta, kind: &str, as_kind: Kind) {
        if let Some(owner) = meta.controller_ref().filter(|o| o.kind == kind) {
            self.queue
                .add(Key::new(as_kind, &meta.namespace, &owner.name));
        }
    }

    fn on_service(&self, s: &Service) {
        self.queue.add(Key::new(
            Kind::Service,
            &s.metadata.namespace,
            &s.metadata.name,
        ));
    }

    fn on_configuration(&self, c: &Configuration) {
        let m = &c.metadata;
        self.queue
            .add(Key::new(Kind::Configuration, &m.namespace, &m.name));
        self.enqueue_owner(m, Service::KIND, Kind::Service);
        self.enqueue_routes(&m.namespace, &m.name, None);
        if self.data_plane.is_some() {
            // A new latest revision changes the reachability of the older ones.
            self.enqueue_revisions_of(&m.namespace, std::slice::from_ref(&m.name));
        }
    }

    fn on_revision(&self, r: &Revision) {
        let m = &r.metadata;
        self.queue
            .add(Key::new(Kind::Revision, &m.namespace, &m.name));
        self.enqueue_owner(m, Configuration::KIND, Kind::Configuration);
        let config = m
            .labels
            .get(keys::CONFIGURATION_LABEL)
            .map(String::as_str)
            .unwrap_or("");
        self.enqueue_routes(&m.namespace, config, Some(&m.name));
    }

    fn on_route(&self, r: &Route) {
        let m = &r.metadata;
        // A deleted route is already gone from the cache when its event arrives.
        let targets = match self.caches.routes.get(&m.namespace, &m.name) {
            Some(_) => r
                .spec
                .traffic
                .iter()
                .flat_map(|t| [&t.configuration_name, &t.revision_name])
                .filter(|n| !n.is_empty())
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        if self.data_plane.is_some() {
            // Reachability follows the route's traffic: its revisions may start or stop.
            self.enqueue_revisions_of(&m.namespace, &targets);
            for t in &r.status.traffic {
                self.queue
                    .add(Key::new(Kind::Revision, &m.namespace, &t.revision_name));
            }
        }
        self.route_refs.set(&m.namespace, &m.name, targets);
        self.queue.add(Key::new(Kind::Route, &m.namespace, &m.name));
        self.enqueue_owner(m, Service::KIND, Kind::Service);
    }

    /// Every revision named in `targets`, or belonging to a configuration named there.
    fn enqueue_revisions_of(&self, ns: &str, targets: &[String]) {
        for rev in self.caches.revisions.list(ns) {
            let m = &rev.metadata;
            let config = m.labels.get(keys::CONFIGURATION_LABEL);
            if targets.iter().any(|t| *t == m.name || Some(t) == config) {
                self.queue.add(Key::new(Kind::Revision, ns, &m.name));
            }
        }
    }

    /// Knative's routing state, folded into a bool: a route's status sends the revision
    /// traffic (tags included), or it is its configuration's newest and not routed yet.
    fn reachable(&self, rev: &Revision) -> bool {
        let m = &rev.metadata;
        let ns = m.namespace.as_str();
        let config = m.labels.get(keys::CONFIGURATION_LABEL).map(String::as_str);
        let mut routes = self.route_refs.routes(ns, &m.name);
        if let Some(c) = config {
            routes.extend(self.route_refs.routes(ns, c));
        }
        let routed = routes.iter().any(|r| {
            self.caches.routes.get(ns, r).is_some_and(|route| {
                route
                    .status
                    .traffic
                    .iter()
                    .any(|t| t.revision_name == m.name)
            })
        });
        routed
            || config
                .and_then(|c| self.caches.configurations.get(ns, c))
                .is_some_and(|c| {
                    c.status.latest_created_revision_name == m.name
                        || resources::revision_name(&c) == m.name
                })
    }

    // ---- reconcilers --------------------------------------------------------------------

    async fn reconcile(&self, key: &Key) -> Result<()> {
        let (ns, name) = (key.namespace.as_str(), key.name.as_str());
        match key.kind {
            Kind::Service => self.reconcile_service(ns, name).await,
            Kind::Configuration => self.reconcile_configuration(ns, name).await,
            Kind::Revision => self.reconcile_revision(ns, name).await,
            Kind::Route => self.reconcile_route(ns, name).await,
        }
    }

    async fn create<T: Serialize + DeserializeOwned>(
        &self,
        info: &ResourceInfo,
        obj: &T,
    ) -> Result<T> {
        let stored = self
            .store
            .create(&kinds::storage_key(info), serde_json::to_value(obj)?)
            .await?;
        let created: T = serde_json::from_value(stored.clone())?;
        // Knative's reconcilers tell the owner: `Created Revision "hello-00001"`.
        if let Ok(meta) = serde_json::from_value::<ObjectMeta>(stored["metadata"].clone())
            && let Some(owner) = meta.controller_ref()
        {
            let object = wisp_api::core::ObjectReference {
                api_version: owner.api_version.clone(),
                kind: owner.kind.clone(),
                namespace: meta.namespace.clone(),
                name: owner.name.clone(),
                uid: owner.uid.clone(),
                ..Default::default()
            };
            self.event(
                false,
                object,
                "Created",
                format!("Created {} {:?}", info.kind, meta.name),
            );
        }
        Ok(created)
    }

    async fn update<T: Serialize + DeserializeOwned>(
        &self,
        info: &ResourceInfo,
        obj: &T,
    ) -> Result<T> {
        let stored = self
            .store
            .update(&kinds::storage_key(info), serde_json::to_value(obj)?)
            .await?;
        Ok(serde_json::from_value(stored)?)
    }

    async fn write_status<T: Serialize + Object>(
        &self,
        info: &ResourceInfo,
        obj: &T,
    ) -> Result<()> {
        self.store
            .update_status(&kinds::storage_key(info), serde_json::to_value(obj)?)
            .await?;
        Ok(())
    }

    /// Creates the child `want`, or brings the cached one's spec, labels and annotations to it.
    /// `Err(message)` when an object of that name exists but is not owned by `owner_uid`.
    async fn ensure_child<T: Child>(
        &self,
        info: &ResourceInfo,
        cache: &cache::Indexer<T>,
        owner_uid: &str,
        want: T,
    ) -> Result<Result<T, String>> {
        let meta = want.meta();
        let Some(cur) = cache.get(&meta.namespace, &meta.name) else {
            return Ok(Ok(self.create(info, &want).await?));
        };
        if !owned_by(cur.meta(), owner_uid) {
            return Ok(Err(format!(
                "There is an existing {} {:?} that we do not own.",
                info.kind,
                cur.meta().name
            )));
        }
        if cur.matches(&want) {
            return Ok(Ok((*cur).clone()));
        }
        let mut next = (*cur).clone();
        next.adopt(want);
        Ok(Ok(self.update(info, &next).await?))
    }

    /// Service -> its Configuration and Route, then status mirrored from both.
    async fn reconcile_service(&self, ns: &str, name: &str) -> Result<()> {
        let Some(svc) = self.caches.services.get(ns, name) else {
            return Ok(());
        };
        if svc.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }
        let uid = svc.metadata.uid.as_str();

        let config = self
            .ensure_child(
                &kinds::CONFIGURATIONS,
                &self.caches.configurations,
                uid,
                resources::make_configuration(&svc),
            )
            .await?;
        let route = self
            .ensure_child(
                &kinds::ROUTES,
                &self.caches.routes,
                uid,
                resources::make_route(&svc),
            )
            .await?;

        let st = status::service_status(
            &svc,
            config.as_ref().map_err(Clone::clone),
            route.as_ref().map_err(Clone::clone),
            &now(),
        );
        if st != svc.status {
            let mut next = (*svc).clone();
            next.status = st;
            self.write_status(&kinds::SERVICES, &next).await?;
        }
        Ok(())
    }

    /// Configuration -> the Revision of its current generation, and latest created/ready.
    async fn reconcile_configuration(&self, ns: &str, name: &str) -> Result<()> {
        let Some(cfg) = self.caches.configurations.get(ns, name) else {
            return Ok(());
        };
        if cfg.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }
        let uid = cfg.metadata.uid.as_str();
        let rev_name = resources::revision_name(&cfg);
        let owned: Vec<Arc<Revision>> = self
            .caches
            .revisions
            .list(ns)
            .into_iter()
            .filter(|r| owned_by(&r.metadata, uid))
            .collect();
        let latest: Result<Revision, String> = match self.caches.revisions.get(ns, &rev_name) {
            None => Ok(self
                .create(&kinds::REVISIONS, &resources::make_revision(&cfg))
                .await?),
            Some(r) if !owned_by(&r.metadata, uid) => Err(format!(
                "Revision {rev_name:?} already exists and belongs to another Configuration: choose another spec.template.metadata.name"
            )),
            Some(r) => Ok((*r).clone()),
        };
        let owned_refs: Vec<&Revision> = owned.iter().map(Arc::as_ref).collect();
        let now = now();
        let st = match &latest {
            Ok(rev) => status::configuration_status(&cfg, Some(rev), &owned_refs, &now),
            Err(taken) => {
                let mut st = status::configuration_status(&cfg, None, &owned_refs, &now);
                CONFIGURATION_CONDITIONS
                    .manage(&mut st.conditions, &now)
                    .mark_false(READY, "RevisionNameTaken", taken);
                st
            }
        };
        if st != cfg.status {
            let mut next = (*cfg).clone();
            let ready_changed = !st.latest_ready_revision_name.is_empty()
                && st.latest_ready_revision_name != cfg.status.latest_ready_revision_name;
            let message = format!(
                "LatestReadyRevisionName updated to {:?}",
                st.latest_ready_revision_name
            );
            next.status = st;
            self.write_status(&kinds::CONFIGURATIONS, &next).await?;
            if ready_changed {
                let object =
                    events::reference(serving::API_VERSION, "Configuration", &cfg.metadata);
                self.event(false, object, "LatestReadyUpdate", message);
            }
        }
        Ok(())
    }

    async fn reconcile_revision(&self, ns: &str, name: &str) -> Result<()> {
        let rev = self
            .caches
            .revisions
            .get(ns, name)
            .filter(|r| r.metadata.deletion_timestamp.is_none());
        let Some(rev) = rev else {
            if let Some(dp) = &self.data_plane {
                dp.remove_revision(ns, name);
            }
            return Ok(());
        };
        let observed = match &self.data_plane {
            None => None,
            Some(dp) => {
                dp.sync_revision(&rev, self.reachable(&rev));
                match dp.observe_revision(ns, name) {
                    Some(o) => Some(o),
                    // Not looked at yet (just created, or the daemon just started): its
                    // first observation re-queues the Revision; writing a guess now would
                    // only churn the status.
                    None => return Ok(()),
                }
            }
        };
        let st = status::revision_status(&rev, observed.as_ref(), &now());
        if st != rev.status {
            let mut next = (*rev).clone();
            let old = rev.status.clone();
            next.status = st;
            self.write_status(&kinds::REVISIONS, &next).await?;
            self.revision_events(&rev.metadata, &old, &next.status);
        }
        Ok(())
    }

    /// Events for a revision's status change: it failed (or failed differently), or its
    /// replicas were scaled.
    fn revision_events(
        &self,
        meta: &ObjectMeta,
        old: &wisp_api::serving::RevisionStatus,
        new: &wisp_api::serving::RevisionStatus,
    ) {
        let object = || events::reference(serving::API_VERSION, "Revision", meta);
        let ready =
            |s: &wisp_api::serving::RevisionStatus| get_condition(&s.conditions, READY).cloned();
        if let Some(c) = ready(new).filter(|c| c.is_false())
            && ready(old)
                .is_none_or(|o| !o.is_false() || o.reason != c.reason || o.message != c.message)
        {
            self.event(true, object(), &c.reason, c.message.clone());
        }
        if let (Some(from), Some(to)) = (old.actual_replicas, new.actual_replicas)
            && from != to
        {
            self.event(
                false,
                object(),
                "Scaled",
                format!("Scaled from {from} to {to} replicas"),
            );
        }
    }

    /// What a Route's traffic may point at, limited to the names it mentions.
    fn lookup(&self, route: &Route) -> Lookup {
        let ns = route.metadata.namespace.as_str();
        let mut lookup = Lookup::default();
        let ready = |conds: &[wisp_api::meta::Condition]| {
            get_condition(conds, READY)
                .map(|c| c.status)
                .unwrap_or_default()
        };
        for t in &route.spec.traffic {
            // A revision target also needs its configuration: it must still exist.
            let revision = (!t.revision_name.is_empty())
                .then(|| self.caches.revisions.get(ns, &t.revision_name))
                .flatten();
            let config_name = match &revision {
                Some(r) => r.metadata.labels.get(keys::CONFIGURATION_LABEL).cloned(),
                None => Some(t.configuration_name.clone()),
            };
            if let Some(r) = revision {
                lookup
                    .revisions
                    .insert(r.metadata.name.clone(), revision_state(&r));
            }
            let Some(c) = config_name
                .filter(|n| !n.is_empty())
                .and_then(|n| self.caches.configurations.get(ns, &n))
            else {
                continue;
            };
            let latest = &c.status.latest_ready_revision_name;
            lookup.configurations.insert(
                c.metadata.name.clone(),
                ConfigurationState {
                    latest_ready_revision_name: (!latest.is_empty()).then(|| latest.clone()),
                    ready: ready(&c.status.conditions),
                },
            );
            if let Some(r) = (!latest.is_empty())
                .then(|| self.caches.revisions.get(ns, latest))
                .flatten()
            {
                lookup
                    .revisions
                    .insert(r.metadata.name.clone(), revision_state(&r));
            }
        }
        lookup
    }

    async fn reconcile_route(&self, ns: &str, name: &str) -> Result<()> {
        let route = self
            .caches
            .routes
            .get(ns, name)
            .filter(|r| r.metadata.deletion_timestamp.is_none());
        let Some(route) = route else {
            if let Some(dp) = &self.data_plane {
                dp.remove_route(ns, name);
            }
            return Ok(());
        };
        let now = now();
        let mut st = status::route_status(&route, &self.lookup(&route), &self.config.domain, &now);
        let assigned =
            get_condition(&st.conditions, "AllTrafficAssigned").is_some_and(|c| c.is_true());
        let outcome = match &self.data_plane {
            None => Some(None),
            Some(_) if !assigned => None,
            Some(dp) => {
                let mut programmed = (*route).clone();
                programmed.status = st.clone();
                Some(Some(dp.sync_route(&programmed)))
            }
        };
        if let Some(outcome) = outcome {
            status::mark_ingress(&route.status, &mut st, outcome, &now);
        }
        if st != route.status {
            let mut next = (*route).clone();
            next.status = st;
            self.write_status(&kinds::ROUTES, &next).await?;
        }
        Ok(())
    }
}

fn revision_state(r: &Revision) -> RevisionState {
    RevisionState {
        ready: get_condition(&r.status.conditions, READY)
            .map(|c| c.status)
            .unwrap_or_default(),
        configuration: r.metadata.labels.get(keys::CONFIGURATION_LABEL).cloned(),
        service: r.metadata.labels.get(keys::SERVICE_LABEL).cloned(),
    }
}

/// A child a Service owns: what the Service decides about it, and how to take it over.
trait Child: Object + Serialize {
    /// Whether spec, labels and annotations already are as wanted.
    fn matches(&self, want: &Self) -> bool;
    /// Takes spec, labels and annotations from `want`, keeping identity and status.
    fn adopt(&mut self, want: Self);
}

macro_rules! child {
    ($t:ty) => {
        impl Child for $t {
            fn matches(&self, want: &Self) -> bool {
                self.spec == want.spec
                    && self.metadata.labels == want.metadata.labels
                    && self.metadata.annotations == want.metadata.annotations
            }
            fn adopt(&mut self, want: Self) {
                self.spec = want.spec;
                self.metadata.labels = want.metadata.labels;
                self.metadata.annotations = want.metadata.annotations;
            }
        }
    };
}
child!(Configuration);
child!(Route);
