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
mod http;
mod report;
mod stats;

#[derive(Parser)]
#[command(about = "Benchmark driver for wisp (used by bench/*.sh)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create N Services, time reconciliation, GET latency, memory and restarts.
    ControlPlane(ControlPlaneArgs),
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
    }
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
