//! One task per revision: Knative's KPA reconciler, Deployment controller and endpoints
//! controller for that revision, as one loop.
//!
//! ```text
//!   messages ─► Update(plan) · Poke (a request waits at zero) · ReplicaChanged · Stop
//!   timers   ─► every 1 s: gateway load → collector; every 2 s: autoscaler decision
//!               (no timer at all while the revision is at zero: idle revisions cost nothing)
//!   then     ─► start or drain replicas to the decision; ready replicas → gateway endpoints;
//!               facts → observation → the controller, when it changed
//! ```
//!
//! A poke at zero decides at once, and a replica's readiness reaches the gateway the moment
//! its supervisor publishes it, so the request that woke the revision waits only for the app
//! to start listening.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::time::Instant;
use wisp_autoscaler::{Autoscaler, BUCKET_SIZE, Collector, TICK_INTERVAL};
use wisp_controller::dataplane::{RevisionName, RevisionObservation};
use wisp_gateway::{Gateway, RevisionConfig, RevisionKey};
use wisp_runtime::{Backend, ReplicaHandle, ReplicaSpec, RevisionRef, RuntimeError};

use wisp_oci::auth::Keychain;
use wisp_store::Store;
use wisp_telemetry::{AutoscalerGauges, AutoscalerSample, RevisionLabels};

use crate::images::ImageResolver;
use crate::observe::{Facts, Failure, observe};
use crate::plan::{Plan, PlanError};
use crate::refs;

/// A revision's plan, boxed: a driver's task keeps one (and its future one more), and a
/// Kubernetes container inline is ~1.5 KB.
pub(crate) type Planned = Result<Box<Plan>, PlanError>;

/// A replica that keeps failing this many times makes waiting requests fail fast.
const FAIL_FAST_RESTARTS: u32 = 3;
/// Log lines quoted in a failure message.
const FAILURE_LOG_LINES: usize = 5;

pub(crate) enum Msg {
    Update(Planned),
    Poke,
    ReplicaChanged,
    Stop,
}

/// What every driver shares.
pub(crate) struct Shared {
    pub gateway: Gateway,
    pub backend: Arc<dyn Backend>,
    pub resolver: Option<Arc<ImageResolver>>,
    /// Where the Secrets and ConfigMaps that revisions name are read.
    pub store: Option<Arc<dyn Store>>,
    pub observations: Mutex<HashMap<RevisionKey, RevisionObservation>>,
    pub changes: UnboundedSender<RevisionName>,
    pub telemetry: Option<wisp_telemetry::Telemetry>,
    replica_seq: AtomicU64,
    id_prefix: String,
}

impl Shared {
    pub fn new(
        gateway: Gateway,
        backend: Arc<dyn Backend>,
        resolver: Option<Arc<ImageResolver>>,
        store: Option<Arc<dyn Store>>,
        changes: UnboundedSender<RevisionName>,
        telemetry: Option<wisp_telemetry::Telemetry>,
    ) -> Self {
        Shared {
            gateway,
            backend,
            resolver,
            store,
            observations: Mutex::default(),
            changes,
            telemetry,
            replica_seq: AtomicU64::new(1),
            // Random per daemon run: log files of earlier runs stay apart, and two daemons on
            // one host never name a container (or its cgroup) alike.
            id_prefix: uuid::Uuid::new_v4().simple().to_string()[..8].to_string(),
        }
    }

    fn next_replica_id(&self) -> String {
        let n = self.replica_seq.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.id_prefix)
    }

    fn observations(&self) -> std::sync::MutexGuard<'_, HashMap<RevisionKey, RevisionObservation>> {
        self.observations.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Replica {
    handle: ReplicaHandle,
}

impl Replica {
    fn ready(&self) -> bool {
        self.handle.status().ready
    }
}

pub(crate) struct Driver {
    key: RevisionKey,
    shared: Arc<Shared>,
    plan: Planned,
    /// `None` while the plan is an error.
    scaler: Option<(Autoscaler, Collector)>,
    replicas: Vec<Replica>,
    tx: UnboundedSender<Msg>,
    endpoints: Vec<SocketAddr>,
    initialized: bool,
    failure: Option<Failure>,
    fail_fast: Option<String>,
    wanting_since: Option<Instant>,
    deadline_exceeded: bool,
    start_error: Option<(String, String)>,
    next_sample: Instant,
    next_decide: Instant,
    published: Option<RevisionObservation>,
    /// Images resolved to digests, by container name (for the Revision's status).
    image_digests: Vec<(String, String)>,
    /// A plan whose image could not be resolved, tried again at this time.
    retry: Option<(Instant, Duration, Box<Plan>)>,
    /// Where decisions are reported, with the revision's metric labels.
    gauges: Option<(AutoscalerGauges, Box<RevisionLabels>)>,
}

/// First wait before resolving an image again; doubled up to [`RESOLVE_RETRY_MAX`].
const RESOLVE_RETRY: Duration = Duration::from_secs(1);
const RESOLVE_RETRY_MAX: Duration = Duration::from_secs(60);

/// Starts the driver of `key`. `resumed`: the revision reached its initial scale before (in
/// an earlier daemon run), so it starts at zero rather than at its initial scale.
pub(crate) fn spawn(
    key: RevisionKey,
    shared: Arc<Shared>,
    plan: Planned,
    resumed: bool,
) -> UnboundedSender<Msg> {
    let (tx, rx) = unbounded_channel();
    let now = Instant::now();
    let driver = Driver {
        key,
        shared,
        plan: Err(PlanError {
            reason: "Deploying",
            message: String::new(),
        }),
        scaler: None,
        replicas: Vec::new(),
        tx: tx.clone(),
        endpoints: Vec::new(),
        initialized: resumed,
        failure: None,
        fail_fast: None,
        wanting_since: None,
        deadline_exceeded: false,
        start_error: None,
        next_sample: now,
        next_decide: now,
        published: None,
        image_digests: Vec::new(),
        retry: None,
        gauges: None,
    };
    // One heap allocation of the driver's state for the revision's life; the loop's
    // rarely taken branches are boxed, so an idle revision's task stays small.
    tokio::spawn(Box::pin(driver.run(plan, resumed, rx)));
    tx
}

impl Driver {
    async fn run(mut self, plan: Planned, resumed: bool, mut rx: UnboundedReceiver<Msg>) {
        match plan {
            Ok(p) if p.needs_prepare() => {
                Box::pin(self.prepare_then_update(p, RESOLVE_RETRY, resumed)).await
            }
            plan => Box::pin(self.update(plan, resumed)).await,
        }
        loop {
            self.refresh();
            let ticking = !self.replicas.is_empty()
                || self.scaler.as_ref().is_some_and(|(s, _)| s.desired() > 0);
            let wake = self.next_sample.min(self.next_decide);
            let retry_at = self.retry.as_ref().map(|(at, _, _)| *at);
            tokio::select! {
                _ = tokio::time::sleep_until(retry_at.unwrap_or(wake)), if retry_at.is_some() => {
                    if let Some((_, wait, plan)) = self.retry.take() {
                        Box::pin(self.prepare_then_update(plan, wait, false)).await;
                    }
                }
                msg = rx.recv() => match msg {
                    None | Some(Msg::Stop) => break,
                    Some(Msg::Poke) => Box::pin(self.poke()).await,
                    Some(Msg::Update(plan)) => {
                        self.retry = None;
                        match plan {
                            Ok(p) => Box::pin(self.prepare_then_update(p, RESOLVE_RETRY, false)).await,
                            Err(e) => Box::pin(self.update(Err(e), false)).await,
                        }
                    }
                    Some(Msg::ReplicaChanged) => {}
                },
                _ = tokio::time::sleep_until(wake), if ticking => Box::pin(self.tick()).await,
            }
        }
        Box::pin(self.shutdown()).await;
    }

    fn revision_ref(&self) -> RevisionRef {
        RevisionRef::new(&self.key.namespace, &self.key.name)
    }

    async fn update(&mut self, plan: Planned, resumed: bool) {
        let now = Instant::now();
        match &plan {
            Ok(p) => {
                self.shared
                    .gateway
                    .set_revision(self.key.clone(), p.gateway);
                match &mut self.scaler {
                    Some((scaler, collector)) => {
                        scaler.update(p.spec.clone());
                        collector.update(&p.spec, now.into_std());
                    }
                    None => {
                        let scaler = if resumed {
                            Autoscaler::resume(p.spec.clone(), now.into_std(), 0)
                        } else {
                            Autoscaler::new(p.spec.clone(), now.into_std())
                        };
                        if p.spec.initial_scale == 0 {
                            self.initialized = true;
                        }
                        self.scaler = Some((scaler, Collector::new(&p.spec, now.into_std())));
                    }
                }
                self.start_error = None;
                self.plan = plan;
                self.decide(now).await;
            }
            Err(e) => {
                tracing::warn!(revision = %self.key, reason = e.reason, "{}", e.message);
                self.shared
                    .gateway
                    .set_revision(self.key.clone(), RevisionConfig::default());
                self.scaler = None;
                self.plan = plan;
                self.scale_to(0).await;
            }
        }
    }

    /// Reads the Secrets and ConfigMaps the plan names and pins its image to a digest when it
    /// names a tag; a failure fails the revision (Kubernetes' `CreateContainerConfigError`,
    /// Knative's `ContainerMissing`) and is retried with back-off.
    async fn prepare_then_update(&mut self, mut plan: Box<Plan>, wait: Duration, resumed: bool) {
        match self.prepare(&mut plan).await {
            Ok(()) => self.update(Ok(plan), resumed).await,
            Err(e) => {
                self.retry = Some((
                    Instant::now() + wait,
                    (wait * 2).min(RESOLVE_RETRY_MAX),
                    plan,
                ));
                self.update(Err(e), false).await;
            }
        }
    }

    async fn prepare(&mut self, plan: &mut Plan) -> Result<(), PlanError> {
        let mut keychain = Keychain::new();
        if let Some(store) = self.shared.store.clone()
            && refs::any(&plan.container, &plan.pull_secrets)
        {
            let resolved = Box::pin(refs::resolve(
                store.as_ref(),
                &self.key.namespace,
                &plan.container,
                &plan.pull_secrets,
            ))
            .await?;
            plan.refs_env = resolved.env;
            keychain = resolved.keychain;
        }
        // Resolved already in this run (the status may not say so yet): keep those bytes.
        if plan.resolve_image
            && let Some((_, pinned)) = self
                .image_digests
                .iter()
                .find(|(name, _)| *name == plan.container.name)
        {
            plan.container.image = pinned.clone();
            plan.resolve_image = false;
        }
        let Some(resolver) = self.shared.resolver.clone() else {
            return Ok(());
        };
        let unable = |image: &str, e: String| PlanError {
            reason: "ContainerMissing",
            message: format!("Unable to fetch image {image:?}: {e}"),
        };
        if plan.resolve_image {
            // Boxed: a registry round trip is a large future, and every idle revision's task
            // would otherwise carry its size.
            let pinned = Box::pin(resolver.resolve(&plan.container.image, &keychain))
                .await
                .map_err(|e| unable(&plan.container.image, e))?;
            tracing::info!(revision = %self.key, image = %plan.container.image, %pinned, "image resolved");
            self.image_digests = vec![(plan.container.name.clone(), pinned.clone())];
            plan.container.image = pinned;
            plan.resolve_image = false;
        }
        if !keychain.is_empty() && !plan.container.image.is_empty() {
            Box::pin(resolver.pull(&plan.container.image, &keychain))
                .await
                .map_err(|e| unable(&plan.container.image, e))?;
        }
        Ok(())
    }

    async fn poke(&mut self) {
        let now = Instant::now();
        self.sample(now);
        let decide_now = match &mut self.scaler {
            Some((scaler, _)) => scaler.poke(now.into_std()),
            None => false,
        };
        if decide_now {
            self.decide(now).await;
        }
    }

    async fn tick(&mut self) {
        let now = Instant::now();
        if now >= self.next_sample {
            self.sample(now);
            self.next_sample = now + BUCKET_SIZE;
        }
        if now >= self.next_decide {
            self.decide(now).await;
        }
    }

    fn sample(&mut self, now: Instant) {
        let (Some((_, collector)), Some(load)) =
            (&mut self.scaler, self.shared.gateway.take_load(&self.key))
        else {
            return;
        };
        collector.observe(
            now.into_std(),
            load.concurrency_seconds,
            load.requests as f64,
        );
    }

    fn ready_count(&self) -> i32 {
        i32::try_from(self.replicas.iter().filter(|r| r.ready()).count()).unwrap_or(i32::MAX)
    }

    async fn decide(&mut self, now: Instant) {
        let ready = self.ready_count();
        let Some((scaler, collector)) = &mut self.scaler else {
            return;
        };
        let stats = collector.stats(now.into_std(), ready);
        let d = scaler.decide(now.into_std(), ready, stats);
        if let Some(t) = &self.shared.telemetry {
            let (gauges, _) = self.gauges.get_or_insert_with(|| {
                let labels = t.serving().labels(&self.key);
                (t.autoscaling().revision(&labels), Box::new(labels))
            });
            let spec = scaler.spec();
            let (target_c, target_r) = match spec.metric {
                wisp_autoscaler::spec::Metric::Concurrency => (Some(spec.target), None),
                wisp_autoscaler::spec::Metric::Rps => (None, Some(spec.target)),
            };
            gauges.set(AutoscalerSample {
                desired_pods: d.metric_desired,
                requested_pods: d.desired,
                actual_pods: ready,
                not_ready_pods: i32::try_from(self.replicas.len())
                    .unwrap_or(i32::MAX)
                    .saturating_sub(ready),
                panic_mode: d.panic,
                stable_request_concurrency: stats.stable_concurrency,
                panic_request_concurrency: stats.panic_concurrency,
                stable_requests_per_second: stats.stable_rps,
                panic_requests_per_second: stats.panic_rps,
                target_concurrency_per_pod: target_c,
                target_requests_per_second: target_r,
                excess_burst_capacity: f64::from(d.excess_burst_capacity),
            });
        }
        tracing::debug!(
            revision = %self.key, desired = d.desired, ready, reason = %d.reason,
            stable = d.stable_avg, panic = d.panic_avg, "autoscaler decision"
        );
        self.next_decide = now + TICK_INTERVAL;
        if self.next_sample <= now {
            self.next_sample = now + BUCKET_SIZE;
        }
        self.scale_to(d.desired.max(0) as usize).await;
    }

    async fn scale_to(&mut self, want: usize) {
        while self.replicas.len() < want && self.start_error.is_none() {
            self.start_replica().await;
        }
        if self.replicas.len() > want {
            self.stop_replicas(self.replicas.len() - want);
        }
    }

    async fn start_replica(&mut self) {
        let Ok(plan) = &self.plan else { return };
        let spec = ReplicaSpec {
            id: self.shared.next_replica_id(),
            revision: self.revision_ref(),
            container: plan.container.clone(),
            env: plan.env.iter().chain(&plan.refs_env).cloned().collect(),
            port: 0,
            grace: plan.grace,
        };
        match self.shared.backend.start(spec).await {
            Ok(handle) => {
                tracing::debug!(revision = %self.key, replica = handle.id(), addr = %handle.addr(), "replica started");
                let mut status = handle.subscribe();
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    while status.changed().await.is_ok() {
                        if tx.send(Msg::ReplicaChanged).is_err() {
                            break;
                        }
                    }
                });
                self.replicas.push(Replica { handle });
            }
            Err(e) => {
                let reason = match e {
                    RuntimeError::Unsupported { .. } => "Unsupported",
                    RuntimeError::InvalidSpec(_) => "InvalidSpec",
                    RuntimeError::Io { .. } => "StartFailed",
                };
                tracing::warn!(revision = %self.key, error = %e, "cannot start a replica");
                self.start_error = Some((reason.to_string(), e.to_string()));
            }
        }
    }

    /// Takes `n` replicas out: not-ready ones first, then the newest. Each leaves the
    /// gateway's rotation at once and is stopped once its requests in flight are done.
    fn stop_replicas(&mut self, n: usize) {
        let mut victims = Vec::with_capacity(n);
        while victims.len() < n {
            let idx = self
                .replicas
                .iter()
                .rposition(|r| !r.ready())
                .unwrap_or(self.replicas.len() - 1);
            victims.push(self.replicas.remove(idx));
        }
        let mut drains = self.sync_endpoints();
        let grace = self
            .plan
            .as_ref()
            .map(|p| p.grace)
            .unwrap_or(Duration::from_secs(30));
        for v in victims {
            let drain = drains
                .iter()
                .position(|d| d.addr() == v.handle.addr())
                .map(|i| drains.swap_remove(i));
            let key = self.key.clone();
            tokio::spawn(async move {
                if let Some(d) = drain
                    && !d.idle(grace).await
                {
                    tracing::warn!(revision = %key, replica = v.handle.id(), "requests still in flight after the grace period");
                }
                let st = v.handle.stop(grace).await;
                tracing::debug!(revision = %key, replica = v.handle.id(), exit = ?st.final_exit, "replica stopped");
                v.handle.join().await;
            });
        }
    }

    /// Points the gateway at the ready replicas; returns the drains of those taken out.
    fn sync_endpoints(&mut self) -> Vec<wisp_gateway::Drain> {
        let mut ready: Vec<SocketAddr> = self
            .replicas
            .iter()
            .filter(|r| r.ready())
            .map(|r| r.handle.addr())
            .collect();
        ready.sort_unstable();
        if ready == self.endpoints {
            return Vec::new();
        }
        self.endpoints = ready.clone();
        self.shared
            .gateway
            .replace_endpoints(&self.key, ready)
            .unwrap_or_default()
    }

    /// After any event: endpoints, facts, fail-fast, observation.
    fn refresh(&mut self) {
        let now = Instant::now();
        drop(self.sync_endpoints());
        let ready = self.ready_count();
        let (desired, activity, initial) = match &self.scaler {
            Some((s, _)) => (s.desired(), Some(s.activity()), s.spec().initial_scale),
            None => (0, None, 0),
        };
        if ready > 0 && ready >= initial {
            self.initialized = true;
            self.deadline_exceeded = false;
        }
        let statuses: Vec<_> = self.replicas.iter().map(|r| r.handle.status()).collect();
        if ready > 0 {
            self.failure = None;
        } else if let Some(st) = statuses.iter().find(|s| s.last_exit.is_some()) {
            let exit = st.last_exit.as_ref().expect("checked");
            let mut message = exit.to_string();
            let lines = &st.last_log_lines;
            for line in &lines[lines.len().saturating_sub(FAILURE_LOG_LINES)..] {
                message.push('\n');
                message.push_str(line);
            }
            self.failure = Some(Failure {
                reason: exit.knative_reason(),
                message,
            });
        }
        if desired > 0 && !self.initialized {
            let since = *self.wanting_since.get_or_insert(now);
            if let Ok(plan) = &self.plan
                && now.duration_since(since) >= plan.progress_deadline
            {
                self.deadline_exceeded = true;
            }
        } else {
            self.wanting_since = None;
        }

        let unrunnable = match (&self.plan, &self.start_error) {
            (Err(e), _) => Some((e.reason.to_string(), e.message.clone())),
            (Ok(_), Some(e)) => Some(e.clone()),
            _ => None,
        };
        let persistent = statuses.iter().any(|s| {
            s.restarts >= FAIL_FAST_RESTARTS
                || s.last_exit
                    .as_ref()
                    .is_some_and(|e| e.reason == "StartError")
        });
        let fail_fast = if let Some((reason, message)) = &unrunnable {
            Some(format!("{reason}: {message}"))
        } else if ready == 0 && desired > 0 && (persistent || self.deadline_exceeded) {
            Some(match &self.failure {
                Some(f) => format!(
                    "its container keeps failing ({}: {})",
                    f.reason,
                    f.message.lines().next().unwrap_or("")
                ),
                None => "it did not become ready within its progress deadline".to_string(),
            })
        } else {
            None
        };
        if fail_fast != self.fail_fast {
            self.shared
                .gateway
                .set_failure(&self.key, fail_fast.clone());
            self.fail_fast = fail_fast;
        }

        let activity = activity.unwrap_or(wisp_autoscaler::Activity::Zero {
            since: now.into_std(),
        });
        let obs = observe(&Facts {
            desired,
            ready,
            initialized: self.initialized,
            activity,
            failure: self.failure.clone(),
            deadline_exceeded: self.deadline_exceeded,
            unrunnable,
            image_digests: self.image_digests.clone(),
            pulling: self.pulling(ready),
        });
        if self.published.as_ref() != Some(&obs) {
            self.shared
                .observations()
                .insert(self.key.clone(), obs.clone());
            self.published = Some(obs);
            let _ = self.shared.changes.send(RevisionName {
                namespace: self.key.namespace.clone(),
                name: self.key.name.clone(),
            });
        }
    }

    /// The pull of this revision's image in flight, while replicas wait for it.
    fn pulling(&self, ready: i32) -> Option<(String, u64, u64)> {
        if ready > 0 || self.replicas.is_empty() {
            return None;
        }
        let (Ok(plan), Some(resolver)) = (&self.plan, &self.shared.resolver) else {
            return None;
        };
        let image = &plan.container.image;
        if image.is_empty() {
            return None;
        }
        resolver
            .progress(image)
            .map(|(done, total)| (image.clone(), done, total))
    }

    async fn shutdown(mut self) {
        self.shared.gateway.remove_revision(&self.key);
        if let Some(t) = &self.shared.telemetry {
            if let Some((_, labels)) = &self.gauges {
                t.autoscaling().forget(labels);
            }
            t.serving().forget(&self.key);
        }
        self.shared.observations().remove(&self.key);
        let grace = self
            .plan
            .as_ref()
            .map(|p| p.grace)
            .unwrap_or(Duration::from_secs(30));
        let mut stops = tokio::task::JoinSet::new();
        for r in self.replicas.drain(..) {
            stops.spawn(async move {
                r.handle.stop(grace).await;
                r.handle.join().await;
            });
        }
        while stops.join_next().await.is_some() {}
    }
}
