//! `wisp serve`: the daemon, wired from library parts.
//!
//! Thin on purpose: parse flags, take the data dir, open the store, start the API server and the
//! controller, log the bound addresses, and run until SIGINT/SIGTERM. Everything with behaviour
//! lives in the library crates so tests can run it in-process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use axum::http::StatusCode;
use tokio::net::TcpListener;
use wisp_apiserver::ApiServer;
use wisp_controller::{Config, Controller};
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
    /// Domain of Service URLs: http://{name}.{namespace}.{domain}.
    #[arg(long, env = "WISP_DOMAIN", default_value = "localhost")]
    pub domain: String,
    /// Concurrent reconciles.
    #[arg(long, default_value_t = 4)]
    pub controller_workers: usize,
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

/// Until the data plane is built, the gateway port answers every request with a clear 503
/// instead of a connection refused.
fn placeholder_gateway() -> axum::Router {
    axum::Router::new().fallback(|| async {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "wisp: the gateway (data plane) is not built yet; Services are stored and reconciled, but nothing runs or routes them\n",
        )
    })
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_tracing();
    let started = std::time::Instant::now();
    let _lock = lock_data_dir(&args.data_dir)?;
    let store = SqliteStore::open_in(&args.data_dir)
        .with_context(|| format!("cannot open the state in {}", args.data_dir.display()))?;
    let store: Arc<dyn Store> = Arc::new(store);

    let api = ApiServer::new(store.clone(), args.api_addr.to_string());
    api.bootstrap()
        .await
        .context("cannot create the default namespace")?;
    let api_listener = TcpListener::bind(args.api_addr)
        .await
        .with_context(|| format!("cannot listen on --api-addr {}", args.api_addr))?;
    let gw_listener = TcpListener::bind(args.gateway_addr)
        .await
        .with_context(|| format!("cannot listen on --gateway-addr {}", args.gateway_addr))?;

    let controller = Controller::new(
        store.clone(),
        Config {
            domain: args.domain.clone(),
            workers: args.controller_workers,
        },
    );
    let controller_task = tokio::spawn(controller.run());

    tracing::info!(
        api = %api_listener.local_addr()?,
        gateway = %gw_listener.local_addr()?,
        data_dir = %args.data_dir.display(),
        domain = %args.domain,
        startup_ms = started.elapsed().as_millis() as u64,
        "wisp is serving"
    );
    let stopper = api.clone();
    let api_server = axum::serve(api_listener, api.router()).with_graceful_shutdown(async move {
        shutdown_signal().await;
        stopper.stop_watches();
    });
    let gateway = axum::serve(gw_listener, placeholder_gateway());
    tokio::select! {
        r = api_server => r.context("API server failed")?,
        r = gateway => r.context("gateway failed")?,
    }
    controller_task.abort();
    Ok(())
}
