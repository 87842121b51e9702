//! `wisp serve`: the daemon, wired from library parts.
//!
//! Thin on purpose: parse flags, take the data dir, open the store, reap replicas a crashed
//! daemon left behind, start the API server, the controller, the data plane and the gateway,
//! log the bound addresses, and run until SIGINT/SIGTERM, then drain replicas. Everything with
//! behaviour lives in the library crates.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use wisp_apiserver::ApiServer;
use wisp_controller::{Config, Controller};
use wisp_dataplane::images::ImageResolver;
use wisp_dataplane::{DataPlane, Options};
use wisp_gateway::{Gateway, GatewayOptions};
use wisp_runtime::{Backends, OciBackend, OciOptions, ProcessBackend};
use wisp_store::{SqliteStore, Store};

/// Flags of `wisp serve` (fixed interface, see DESIGN.md).
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Directory for the SQLite state file and replica data.
    #[arg(long, env = "WISP_DATA_DIR", default_value = ".wisp")]
    pub data_dir: PathBuf,
    /// Address of the Kubernetes-style REST API.
    #[arg(long, env = "WISP_API_ADDR", default_value = "127.0.0.1:7070")]
    pub api_addr: SocketAddr,
    /// Address of the gateway that serves the Services' URLs.
    #[arg(long, env = "WISP_GATEWAY_ADDR", default_value = "127.0.0.1:8080")]
    pub gateway_addr: SocketAddr,
    /// Address of the event plane's ingress: brokers at /{namespace}/{name}, channels at
    /// /channels/{namespace}/{name}.
    #[arg(long, env = "WISP_EVENTS_ADDR", default_value = "127.0.0.1:8081")]
    pub events_addr: SocketAddr,
    /// Base URL of the ingress as clients reach it (brokers' status.address.url); default:
    /// http:// and the --events-addr the daemon listens on.
    #[arg(long, value_name = "URL")]
    pub events_url: Option<String>,
    /// Domain of Service URLs: http://{name}.{namespace}.{domain}.
    #[arg(long, env = "WISP_DOMAIN", default_value = "localhost")]
    pub domain: String,
    /// Concurrent reconciles.
    #[arg(long, default_value_t = 4)]
    pub controller_workers: usize,
    /// Knative's config-autoscaler as a file: a ConfigMap manifest (its `data`) or a plain
    /// YAML map of the same keys (stable-window, scale-to-zero-grace-period, ...).
    #[arg(long, value_name = "FILE")]
    pub autoscaler_config: Option<PathBuf>,
    /// One config-autoscaler key, overriding the file: `--autoscaler stable-window=20s`.
    /// Repeatable.
    #[arg(long = "autoscaler", value_name = "KEY=VALUE")]
    pub autoscaler: Vec<String>,
    /// Knative's config-deployment progress-deadline: how long a new revision may take to
    /// become ready before it fails (the revision's serving.knative.dev/progress-deadline
    /// annotation wins).
    #[arg(long, value_name = "DURATION", default_value = "600s", value_parser = parse_duration)]
    pub progress_deadline: Duration,
    /// How often images no revision uses are removed from the image store (images built
    /// here and never pushed are kept); 0 turns collection off.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub image_gc_interval: Duration,
    /// A registry (host[:port]) reached over plain HTTP although it is not on loopback.
    /// Repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registries: Vec<String>,
    /// The gateway's request log: `on` (one JSON line per request in
    /// DATA_DIR/logs/requests.log, rotated at 32 MiB), `off`, or another file.
    #[arg(long, value_name = "on|off|FILE", default_value = "on", value_parser = parse_request_log)]
    pub request_log: RequestLogArg,
    /// Per-revision request metrics in the gateway (revision_request_count, ...) on /metrics.
    #[arg(long, value_name = "on|off", default_value = "on", value_parser = parse_on_off, action = clap::ArgAction::Set)]
    pub request_metrics: bool,
    /// Export spans (gateway hops, cold starts, event ingress and deliveries) over OTLP/HTTP
    /// (JSON) to this collector: a base URL such as http://127.0.0.1:4318 (`/v1/traces` is
    /// appended). Default: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else
    /// OTEL_EXPORTER_OTLP_ENDPOINT; none set, nothing is exported (`traceparent` is still
    /// propagated).
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
}

/// Where the request log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestLogArg {
    Default,
    Off,
    File(PathBuf),
}

fn parse_request_log(s: &str) -> Result<RequestLogArg, String> {
    Ok(match s {
        "on" => RequestLogArg::Default,
        "off" => RequestLogArg::Off,
        "" => return Err("expected on, off or a file".into()),
        path => RequestLogArg::File(PathBuf::from(path)),
    })
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" | "true" => Ok(true),
        "off" | "false" => Ok(false),
        _ => Err(format!("{s:?}: expected on or off")),
    }
}

/// The daemon's telemetry, with the request log open where `--request-log` says.
fn telemetry(args: &ServeArgs) -> anyhow::Result<wisp_telemetry::Telemetry> {
    let telemetry = wisp_telemetry::Telemetry::new();
    let path = match &args.request_log {
        RequestLogArg::Off => None,
        RequestLogArg::Default => Some(args.data_dir.join("logs").join("requests.log")),
        RequestLogArg::File(p) => Some(p.clone()),
    };
    if let Some(path) = path {
        let log = wisp_telemetry::RequestLog::open(
            path.clone(),
            wisp_telemetry::requestlog::DEFAULT_MAX_BYTES,
        )
        .with_context(|| format!("cannot open the request log {}", path.display()))?;
        telemetry.set_request_log(log);
    }
    let env = |name: &str| std::env::var(name).ok();
    let endpoint = wisp_telemetry::trace::endpoint(
        args.otlp_endpoint.as_deref(),
        env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").as_deref(),
        env("OTEL_EXPORTER_OTLP_ENDPOINT").as_deref(),
    )
    .map_err(|e| anyhow::anyhow!("--otlp-endpoint: {e}"))?;
    if let Some(endpoint) = endpoint {
        tracing::info!(%endpoint, "exporting spans over OTLP");
        telemetry.set_tracer(wisp_telemetry::Tracer::start(endpoint));
    }
    Ok(telemetry)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    wisp_api::goparse::parse_duration(s)
        .ok()
        .filter(|d| *d > 0)
        .map(wisp_api::goparse::to_std)
        .ok_or_else(|| format!("{s:?} is not a positive duration such as 90s or 10m"))
}

/// The config-autoscaler map from `--autoscaler-config` and `--autoscaler` flags.
fn autoscaler_config(args: &ServeArgs) -> anyhow::Result<wisp_autoscaler::Config> {
    let mut map = BTreeMap::new();
    if let Some(path) = &args.autoscaler_config {
        map = read_config_map(path)?;
    }
    for kv in &args.autoscaler {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--autoscaler {kv:?}: expected KEY=VALUE"))?;
        let k = k.trim();
        if !wisp_autoscaler::KEYS.contains(&k) {
            anyhow::bail!(
                "--autoscaler {kv:?}: {k:?} is not a config-autoscaler key (known: {})",
                wisp_autoscaler::KEYS.join(", ")
            );
        }
        map.insert(k.to_string(), v.trim().to_string());
    }
    wisp_autoscaler::Config::from_map(&map).map_err(|e| anyhow::anyhow!("config-autoscaler: {e}"))
}

fn read_config_map(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --autoscaler-config {}", path.display()))?;
    let doc: serde_json::Value = serde_saphyr::from_str(&text)
        .with_context(|| format!("--autoscaler-config {}: not YAML", path.display()))?;
    let data = match doc.get("data") {
        Some(d) if doc.get("kind").is_some() => d.clone(),
        _ => doc,
    };
    let obj = data.as_object().with_context(|| {
        format!(
            "--autoscaler-config {}: expected a map of config-autoscaler keys",
            path.display()
        )
    })?;
    // Knative ignores unknown keys (`_example` among them); a typo deserves a word.
    for k in obj.keys() {
        if !k.starts_with('_') && !wisp_autoscaler::KEYS.contains(&k.as_str()) {
            tracing::warn!(key = %k, file = %path.display(), "not a config-autoscaler key; ignored");
        }
    }
    Ok(obj
        .iter()
        .map(|(k, v)| {
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), v)
        })
        .collect())
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WISP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Holds an exclusive lock on the data dir: two daemons on one state file would fight.
fn lock_data_dir(dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data dir {}", dir.display()))?;
    let path = dir.join("wisp.lock");
    let file = std::fs::File::create(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.try_lock().map_err(|_| {
        anyhow::anyhow!(
            "another wisp daemon is using the data dir {} (lock {} is held)",
            dir.display(),
            path.display()
        )
    })?;
    Ok(file)
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}

/// The API server's view of the runtime's log files.
struct ReplicaLogs(Arc<Backends>);

impl wisp_apiserver::LogSource for ReplicaLogs {
    fn revision_logs(&self, namespace: &str, revision: &str) -> Vec<(String, PathBuf)> {
        self.0
            .revision_logs(&wisp_runtime::RevisionRef::new(namespace, revision))
    }
}

/// Removes unused images a minute after start, then every `interval`.
async fn collect_images(store: Arc<dyn Store>, images: wisp_oci::pull::Images, interval: Duration) {
    let mut next = tokio::time::Instant::now() + Duration::from_secs(60).min(interval);
    loop {
        tokio::time::sleep_until(next).await;
        next += interval;
        match wisp_dataplane::images::collect_garbage(store.as_ref(), &images).await {
            Ok(r) if r.blobs + r.layers + r.rootfs + r.records > 0 => tracing::info!(
                blobs = r.blobs,
                layers = r.layers,
                rootfs = r.rootfs,
                records = r.records,
                bytes = r.bytes,
                "removed images no revision uses"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "image garbage collection failed"),
        }
    }
}

/// Longest wait for replicas to stop when the daemon shuts down.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_tracing();
    let started = std::time::Instant::now();
    let _lock = lock_data_dir(&args.data_dir)?;
    let telemetry = telemetry(&args)?;
    let options = Options {
        autoscaler: autoscaler_config(&args)?,
        progress_deadline: args.progress_deadline,
        telemetry: Some(telemetry.clone()),
    };
    let oci_store = wisp_oci::store::Store::open(&args.data_dir)
        .with_context(|| format!("cannot open the image store in {}", args.data_dir.display()))?;
    let registry = wisp_oci::registry::Client::new(wisp_oci::registry::ClientConfig {
        insecure: args.insecure_registries.clone(),
        ..Default::default()
    });
    let images = wisp_oci::pull::Images::new(Arc::new(registry), oci_store);
    let keychain = wisp_oci::auth::Keychain::from_default_docker_config().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read the docker config; pulling anonymously");
        Default::default()
    });
    let oci = OciBackend::new(
        &args.data_dir,
        images.clone(),
        OciOptions {
            keychain: keychain.clone(),
            ..Default::default()
        },
    );
    if let Err(e) = &oci {
        tracing::warn!(reason = %e.reason, "images cannot run here; host processes can");
    }
    let backend = Arc::new(Backends::new(ProcessBackend::new(&args.data_dir), oci));
    // Replicas of a daemon that was killed are orphans: nothing routes to them any more.
    let reaped = backend.reap_orphans().await;
    if !reaped.killed.is_empty() {
        tracing::info!(killed = ?reaped.killed, "stopped replicas left by a previous daemon");
    }
    let store = SqliteStore::open_in(&args.data_dir)
        .with_context(|| format!("cannot open the state in {}", args.data_dir.display()))?;
    let store: Arc<dyn Store> = Arc::new(store);

    let mut admission = wisp_api::admission::Config {
        autoscaler: wisp_api::admission::config::Autoscaler {
            pod_autoscaler_class: options.autoscaler.pod_autoscaler_class.clone(),
            max_scale_limit: options.autoscaler.max_scale_limit,
            allow_zero_initial_scale: options.autoscaler.allow_zero_initial_scale,
        },
        ..Default::default()
    };
    admission.eventing.cesql_check = Some(wisp_eventplane::cesql_check);
    let api = ApiServer::new(store.clone(), args.api_addr.to_string())
        .with_logs(Arc::new(ReplicaLogs(backend.clone())))
        .with_admission_config(admission)
        .with_metrics(telemetry.api().clone())
        .with_routes(telemetry.router())
        .with_routes(wisp_dashboard::router());
    api.bootstrap()
        .await
        .context("cannot create the default namespace")?;
    let api_listener = TcpListener::bind(args.api_addr)
        .await
        .with_context(|| format!("cannot listen on --api-addr {}", args.api_addr))?;
    let gw_listener = TcpListener::bind(args.gateway_addr)
        .await
        .with_context(|| format!("cannot listen on --gateway-addr {}", args.gateway_addr))?;
    let events_listener = TcpListener::bind(args.events_addr)
        .await
        .with_context(|| format!("cannot listen on --events-addr {}", args.events_addr))?;
    let events_addr = events_listener.local_addr()?;
    let event_log = wisp_eventlog::SqliteLog::open(
        &args.data_dir.join(wisp_eventlog::FILE_NAME),
        wisp_eventlog::SqliteOptions::default(),
    )
    .with_context(|| format!("cannot open the event log in {}", args.data_dir.display()))?;
    let event_plane = wisp_eventplane::EventPlane::new(
        store.clone(),
        Arc::new(event_log),
        wisp_eventplane::Config {
            ingress_url: args
                .events_url
                .clone()
                .unwrap_or_else(|| format!("http://{events_addr}")),
            gateway: Some(gw_listener.local_addr()?),
            domain: args.domain.clone(),
            api_url: format!("http://{}", api_listener.local_addr()?),
            telemetry: Some(telemetry.clone()),
        },
    );

    if !args.image_gc_interval.is_zero() {
        tokio::spawn(collect_images(
            store.clone(),
            images.clone(),
            args.image_gc_interval,
        ));
    }
    let resolver = Arc::new(ImageResolver::new(images, keychain.clone()));

    let (events_tx, events) = tokio::sync::mpsc::unbounded_channel();
    let gateway_options = GatewayOptions {
        // New traces are sampled only when their spans go somewhere.
        sample_new_traces: telemetry.tracer().is_some(),
        ..GatewayOptions::default()
    };
    let mut gateway = Gateway::with_options(gateway_options, events_tx);
    if let Some(observer) = telemetry.gateway_observer(args.request_metrics) {
        gateway = gateway.with_observer(observer);
    }
    telemetry.serving().watch_gateway(gateway.clone());
    let data_plane = DataPlane::new(
        gateway.clone(),
        backend.clone(),
        Some(resolver),
        Some(store.clone()),
        options,
    );
    tokio::spawn(data_plane.clone().run_activator(events));
    let controller = Controller::new(
        store.clone(),
        Config {
            domain: args.domain.clone(),
            workers: args.controller_workers,
        },
    )
    .with_data_plane(data_plane.clone())
    .with_events(wisp_controller::events::Recorder::spawn(
        store.clone(),
        "wisp-controller",
        wisp_controller::events::DEFAULT_TTL,
    ));
    let controller_task = tokio::spawn(controller.run());
    let event_task = tokio::spawn(event_plane.clone().run());

    tracing::info!(
        api = %api_listener.local_addr()?,
        dashboard = %format!("http://{}{}", api_listener.local_addr()?, wisp_dashboard::PATH),
        gateway = %gw_listener.local_addr()?,
        events = %events_addr,
        data_dir = %args.data_dir.display(),
        domain = %args.domain,
        startup_ms = started.elapsed().as_millis() as u64,
        "wisp is serving"
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let stopper = api.clone();
    let api_server =
        axum::serve(api_listener, api.router()).with_graceful_shutdown(stopped(stop_rx.clone()));
    let api_task = tokio::spawn(async move { api_server.await });
    let gw = gateway.clone();
    let gw_stop = stopped(stop_rx.clone());
    let gateway_task = tokio::spawn(async move { gw.serve(gw_listener, gw_stop).await });
    let events_server = axum::serve(events_listener, event_plane.router())
        .with_graceful_shutdown(stopped(stop_rx.clone()));
    let events_server_task = tokio::spawn(async move { events_server.await });

    shutdown_signal().await;
    stopper.stop_watches();
    telemetry.stop();
    let _ = stop_tx.send(true);
    controller_task.abort();
    event_task.abort();
    event_plane.stop();
    // Drain: every driver stops its replicas (SIGTERM, SIGKILL after their grace); the
    // backend then stops whatever is still running, with a bound on the whole wait.
    data_plane.stop_all();
    backend.shutdown(SHUTDOWN_GRACE).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), gateway_task).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), events_server_task).await;
    match tokio::time::timeout(Duration::from_secs(5), api_task).await {
        Ok(Ok(r)) => r.context("API server failed")?,
        Ok(Err(e)) => return Err(anyhow::anyhow!("API server task failed: {e}")),
        Err(_) => tracing::warn!("API server did not stop within 5s"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn args(extra: &[&str]) -> ServeArgs {
        let mut argv = vec!["wisp"];
        argv.extend_from_slice(extra);
        T::try_parse_from(argv).expect("flags parse").serve
    }

    #[test]
    fn autoscaler_config_from_a_configmap_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config-autoscaler.yaml");
        std::fs::write(
            &file,
            "kind: ConfigMap\napiVersion: v1\nmetadata: {name: config-autoscaler}\ndata:\n  stable-window: 20s\n  scale-to-zero-grace-period: 10s\n  _example: ignored\n",
        )
        .unwrap();
        let f = file.to_str().unwrap();
        let cfg = autoscaler_config(&args(&["--autoscaler-config", f])).unwrap();
        assert_eq!(cfg.stable_window, Duration::from_secs(20));
        assert_eq!(cfg.scale_to_zero_grace_period, Duration::from_secs(10));

        let cfg = autoscaler_config(&args(&[
            "--autoscaler-config",
            f,
            "--autoscaler",
            "stable-window=30s",
        ]))
        .unwrap();
        assert_eq!(cfg.stable_window, Duration::from_secs(30));

        // A plain map works too.
        std::fs::write(&file, "max-scale-up-rate: 10\n").unwrap();
        let cfg = autoscaler_config(&args(&["--autoscaler-config", f])).unwrap();
        assert_eq!(cfg.max_scale_up_rate, 10.0);
    }

    #[test]
    fn bad_autoscaler_settings_name_the_key() {
        let e = autoscaler_config(&args(&["--autoscaler", "stabel-window=20s"])).unwrap_err();
        assert!(
            e.to_string()
                .contains("\"stabel-window\" is not a config-autoscaler key"),
            "{e}"
        );
        let e = autoscaler_config(&args(&["--autoscaler", "stable-window=1s"])).unwrap_err();
        assert!(e.to_string().contains("stable-window"), "{e}");
        let e = autoscaler_config(&args(&["--autoscaler", "stable-window"])).unwrap_err();
        assert!(e.to_string().contains("KEY=VALUE"), "{e}");
        assert!(T::try_parse_from(["wisp", "--progress-deadline", "0s"]).is_err());
    }

    #[test]
    fn request_log_and_metrics_flags() {
        let a = args(&[]);
        assert_eq!(a.request_log, RequestLogArg::Default);
        assert!(a.request_metrics);
        let a = args(&["--request-log", "off", "--request-metrics", "off"]);
        assert_eq!(a.request_log, RequestLogArg::Off);
        assert!(!a.request_metrics);
        let a = args(&["--request-log", "/tmp/r.log"]);
        assert_eq!(a.request_log, RequestLogArg::File("/tmp/r.log".into()));
        assert!(T::try_parse_from(["wisp", "--request-metrics", "maybe"]).is_err());
        assert_eq!(a.otlp_endpoint, None);
        let a = args(&["--otlp-endpoint", "http://127.0.0.1:4318"]);
        assert_eq!(a.otlp_endpoint.as_deref(), Some("http://127.0.0.1:4318"));
    }
}
