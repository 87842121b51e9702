//! wisp-loadgen: the driver behind `bench/*.sh`.
//!
//! It starts `wisp serve` itself (so start-up can be timed from `spawn`), drives the API over
//! single keep-alive connections with every request timed, reads memory and CPU from /proc,
//! and renders the results table and the BENCHMARKS.md section. The scripts own building,
//! machine facts and cleaning up; this tool owns measuring. Not a test: it judges nothing by
//! exit code except that the scenario ran.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

mod control_plane;
mod daemon;
mod data_plane;
mod eventing;
mod http;
mod nginx;
mod observability;
mod oci;
mod openloop;
mod report;
mod rows;
mod stats;
mod wrk;

#[derive(Parser)]
#[command(about = "Benchmark driver for wisp (used by bench/*.sh)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

// Parsed once per process: the size of the larger variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Cmd {
    /// Create N Services, time reconciliation, GET latency, memory and restarts.
    ControlPlane(ControlPlaneArgs),
    /// Gateway vs direct vs nginx, cold start, burst autoscaling, idle cost.
    DataPlane(DataPlaneArgs),
    /// Durable broker: ingress → subscriber throughput and latency vs POSTs to the subscriber.
    Eventing(eventing::Args),
    /// Images: cold start of a cached image vs `runc run` alone, first pull, shared layers.
    Oci(oci::Args),
    /// The gateway with metrics and request logs on vs off, alternated in one run.
    Observability(observability::Args),
}

fn list<T: std::str::FromStr>(s: &str) -> Result<Vec<T>, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            p.trim()
                .parse()
                .map_err(|_| format!("{p:?} is not a number"))
        })
        .collect()
}

#[derive(clap::Args)]
// The script's settings come first; options after its `--` override them.
#[command(args_override_self = true)]
struct DataPlaneArgs {
    /// The `wisp` binary (a release build).
    #[arg(long)]
    bin: PathBuf,
    /// The `wisp-testapp` binary (a release build).
    #[arg(long)]
    testapp: PathBuf,
    /// Scratch directory (removed by the script).
    #[arg(long)]
    workdir: PathBuf,
    /// File to append every started daemon's and nginx's pid to, for the clean-up trap.
    #[arg(long)]
    pidfile: Option<PathBuf>,
    #[arg(long, default_value = "wrk")]
    wrk: PathBuf,
    #[arg(long, default_value = "nginx")]
    nginx: PathBuf,
    /// nginx.conf template (bench/nginx/proxy.conf.in).
    #[arg(long)]
    nginx_template: PathBuf,
    /// Quick run (CI): figures are printed but never judged.
    #[arg(long)]
    quick: bool,
    /// Only these parts (throughput, idle, cold, burst), comma-separated; all by default.
    #[arg(long, value_delimiter = ',')]
    parts: Vec<String>,
    /// Rounds of direct / wisp / nginx.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// wrk connection counts for the throughput runs.
    #[arg(long, default_value = "16,64", value_parser = list::<usize>)]
    connections: std::vec::Vec<usize>,
    #[arg(long, default_value_t = 1)]
    wrk_threads: usize,
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// The one-connection latency run.
    #[arg(long, default_value_t = 5)]
    latency_secs: u64,
    /// Open-loop rates (requests/s); the first is judged against the added-latency target.
    #[arg(long, default_value = "5000,10000", value_parser = list::<f64>)]
    rates: std::vec::Vec<f64>,
    #[arg(long, default_value_t = 32)]
    open_loop_connections: usize,
    /// Per system and round, cut into --open-loop-slices slices alternated between systems.
    #[arg(long, default_value_t = 5)]
    open_loop_secs: u64,
    #[arg(long, default_value_t = 5)]
    open_loop_slices: usize,
    /// Diagnostic: the throughput app's stdout goes to /dev/null, not to the daemon's logs.
    #[arg(long)]
    quiet_app: bool,
    #[arg(long, default_value_t = 100)]
    idle_services: usize,
    #[arg(long, default_value_t = 10)]
    idle_window_secs: u64,
    #[arg(long, default_value_t = 50)]
    cold_trials: usize,
    #[arg(long, default_value_t = 200)]
    burst_clients: usize,
    #[arg(long, default_value_t = 100)]
    burst_sleep_ms: u64,
    #[arg(long, default_value_t = 10)]
    burst_load_secs: u64,
    #[arg(long, default_value_t = 10)]
    burst_target: u32,
    /// One burst run per value: `LABEL:KEY=VALUE,KEY=VALUE` (daemon's --autoscaler flags;
    /// `LABEL:` alone for Knative's defaults).
    #[arg(long = "burst")]
    bursts: Vec<String>,
    /// Longest wait for a burst's revision to get back to zero.
    #[arg(long, default_value_t = 240)]
    burst_zero_deadline_secs: u64,
    /// Give up (and stop everything) after this long.
    #[arg(long, default_value_t = 1800)]
    deadline_secs: u64,
    #[arg(long)]
    json: PathBuf,
    /// Write the section into this Markdown file (full runs only).
    #[arg(long)]
    benchmarks_md: Option<PathBuf>,
    #[command(flatten)]
    meta: report::Meta,
}

#[derive(clap::Args)]
struct ControlPlaneArgs {
    /// The `wisp` binary (a release build).
    #[arg(long)]
    bin: PathBuf,
    /// Scratch directory for the data dirs (removed by the script).
    #[arg(long)]
    workdir: PathBuf,
    /// File to append every started daemon's pid to, for the script's clean-up trap.
    #[arg(long)]
    pidfile: Option<PathBuf>,
    #[arg(long, default_value_t = 1000)]
    services: usize,
    #[arg(long, default_value_t = 5000)]
    gets: usize,
    #[arg(long, default_value_t = 20)]
    lists: usize,
    #[arg(long, default_value_t = 5)]
    restarts: usize,
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Give up (and stop every daemon) after this long.
    #[arg(long, default_value_t = 600)]
    deadline_secs: u64,
    /// Raw results of every run, as JSON.
    #[arg(long)]
    json: PathBuf,
    /// Write the section into this Markdown file (full runs only).
    #[arg(long)]
    benchmarks_md: Option<PathBuf>,
    #[command(flatten)]
    meta: report::Meta,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // One thread: the load tool leaves the other core to the daemon.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match cli.cmd {
        Cmd::ControlPlane(a) => rt.block_on(control_plane(a)),
        Cmd::DataPlane(a) => rt.block_on(data_plane(a)),
        Cmd::Eventing(a) => rt.block_on(eventing::main(a)),
        Cmd::Oci(a) => rt.block_on(oci::main(a)),
        Cmd::Observability(a) => rt.block_on(observability::main(a)),
    }
}

async fn data_plane(a: DataPlaneArgs) -> anyhow::Result<()> {
    use data_plane::{burst, idle, throughput};
    let secs = Duration::from_secs;
    let bursts = if a.bursts.is_empty() {
        vec!["defaults:".to_owned()]
    } else {
        a.bursts.clone()
    };
    let settings = bursts
        .iter()
        .map(|b| {
            let (label, flags) = b.split_once(':').unwrap_or((b.as_str(), ""));
            burst::Settings {
                label: label.to_owned(),
                autoscaler: flags
                    .split(',')
                    .filter(|f| !f.is_empty())
                    .map(str::to_owned)
                    .collect(),
                zero_deadline: secs(a.burst_zero_deadline_secs),
            }
        })
        .collect();
    let opts = data_plane::Opts {
        bin: a.bin,
        testapp: a.testapp,
        workdir: a.workdir,
        pidfile: a.pidfile,
        wrk: a.wrk,
        nginx: a.nginx,
        nginx_template: a.nginx_template,
        throughput: throughput::Opts {
            rounds: a.rounds,
            connections: a.connections,
            wrk_threads: a.wrk_threads,
            duration: secs(a.duration_secs),
            latency_duration: secs(a.latency_secs),
            rates: a.rates,
            open_loop_connections: a.open_loop_connections,
            open_loop_duration: secs(a.open_loop_secs),
            open_loop_slices: a.open_loop_slices,
            quiet_app: a.quiet_app,
        },
        idle: idle::Opts {
            services: a.idle_services,
            window: secs(a.idle_window_secs),
        },
        cold_trials: a.cold_trials,
        burst: burst::Opts {
            clients: a.burst_clients,
            sleep_ms: a.burst_sleep_ms,
            load: secs(a.burst_load_secs),
            target: a.burst_target,
            poll: Duration::from_millis(100),
            settings,
        },
        parts: a.parts,
    };
    let results = tokio::time::timeout(
        Duration::from_secs(a.deadline_secs),
        data_plane::run(&opts, &a.json),
    )
    .await
    .map_err(|_| anyhow::anyhow!("gave up after {} s (--deadline-secs)", a.deadline_secs))??;
    println!("{}", data_plane::report::table(&results, a.quick));
    if let Some(md) = a.benchmarks_md {
        data_plane::report::splice(&md, &results, &a.meta)?;
        eprintln!("wrote the data-plane section of {}", md.display());
    }
    Ok(())
}

async fn control_plane(a: ControlPlaneArgs) -> anyhow::Result<()> {
    let opts = control_plane::Opts {
        bin: a.bin,
        workdir: a.workdir,
        pidfile: a.pidfile,
        n: a.services,
        gets: a.gets,
        lists: a.lists,
        restarts: a.restarts,
    };
    let runs = tokio::time::timeout(
        Duration::from_secs(a.deadline_secs),
        control_plane::run_all(&opts, a.runs, &a.json),
    )
    .await
    .map_err(|_| anyhow::anyhow!("gave up after {} s (--deadline-secs)", a.deadline_secs))??;
    println!("{}", report::table(&runs));
    if let Some(md) = a.benchmarks_md {
        report::splice(&md, &runs, &a.meta)?;
        eprintln!("wrote the control-plane section of {}", md.display());
    }
    Ok(())
}
