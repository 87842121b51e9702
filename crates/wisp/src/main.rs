//! The `wisp` binary: `wisp serve` runs the daemon; every other subcommand is a kn/kubectl-like
//! client of its Kubernetes-style REST API (so `kubectl --server URL` works against the same
//! daemon).
//!
//! Layout: one file per command family (`cmd_apply`, `cmd_get`, `cmd_delete`, `cmd_service`,
//! `cmd_revision`, `cmd_route`, and for Eventing `cmd_broker`, `cmd_trigger`, `cmd_source`,
//! `cmd_channel`, `cmd_subscription`, `cmd_event`), the HTTP client (`client`), the verbs the
//! Eventing families share (`object_cmds`), and pure modules holding every decision worth a
//! table test: kn's traffic flags (`traffic_flags`), the service edit flags (`service_edit`),
//! kn's sink flags (`sink`) and Eventing flags (`eventing_flags`), kubectl's three-way apply
//! patch (`apply_patch`), manifest parsing (`manifest`), the wait decision (`wait`), tables
//! (`table`), describe output (`describe`, `describe_eventing`), ages (`age`) and `-o` output
//! (`output`). Errors become `anyhow` only here, at the edge.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod age;
mod apply_patch;
mod client;
mod cmd_apply;
mod cmd_broker;
mod cmd_build;
mod cmd_channel;
mod cmd_delete;
mod cmd_event;
mod cmd_events;
mod cmd_get;
mod cmd_logs;
mod cmd_revision;
mod cmd_route;
mod cmd_service;
mod cmd_source;
mod cmd_subscription;
mod cmd_trigger;
mod describe;
mod describe_eventing;
mod eventing_flags;
mod manifest;
mod object_cmds;
mod output;
mod serve;
mod service_edit;
mod sink;
mod table;
mod traffic_flags;
mod wait;

use client::{ApiError, Client};

/// Knative's model in one program: deploy an image or a command, get a URL.
#[derive(Debug, Parser)]
#[command(name = "wisp", version, propagate_version = true, max_term_width = 100)]
struct Cli {
    /// URL of the wisp API server.
    #[arg(long, global = true, env = "WISP_SERVER", default_value = client::DEFAULT_SERVER, value_name = "URL")]
    server: String,
    /// Namespace to work in [default: default].
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    namespace: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the wisp daemon (API server, controllers, gateway).
    Serve(serve::ServeArgs),
    /// Create or update objects from YAML/JSON manifests, like `kubectl apply`.
    Apply(cmd_apply::ApplyArgs),
    /// Show objects as a table, or as YAML/JSON with -o.
    Get(cmd_get::GetArgs),
    /// Delete objects by kind and name, or those of manifests (-f).
    Delete(cmd_delete::DeleteArgs),
    /// Manage Knative services.
    #[command(subcommand, visible_aliases = ["ksvc", "services"])]
    Service(Box<cmd_service::ServiceCommand>),
    /// Manage the revisions of services.
    #[command(subcommand, visible_aliases = ["revisions", "rev"])]
    Revision(cmd_revision::RevisionCommand),
    /// Inspect routes.
    #[command(subcommand, visible_aliases = ["routes"])]
    Route(cmd_route::RouteCommand),
    /// Manage message brokers.
    #[command(subcommand, visible_aliases = ["brokers"])]
    Broker(cmd_broker::BrokerCommand),
    /// Manage event triggers.
    #[command(subcommand, visible_aliases = ["triggers"])]
    Trigger(Box<cmd_trigger::TriggerCommand>),
    /// Manage event sources.
    #[command(subcommand, visible_aliases = ["sources"])]
    Source(Box<cmd_source::SourceCommand>),
    /// Manage event channels.
    #[command(subcommand, visible_aliases = ["channels"])]
    Channel(cmd_channel::ChannelCommand),
    /// Manage event subscriptions.
    #[command(subcommand, visible_aliases = ["subscriptions", "sub"])]
    Subscription(cmd_subscription::SubscriptionCommand),
    /// Send CloudEvents.
    #[command(subcommand)]
    Event(Box<cmd_event::EventCommand>),
    /// What happened: Kubernetes Events for revisions, services and triggers.
    Events(cmd_events::EventsArgs),
    /// Print the stdout and stderr of a service's replicas.
    Logs(cmd_logs::LogsArgs),
    /// Build an OCI image from files (no container engine needed), optionally push it.
    Build(Box<cmd_build::BuildArgs>),
    /// Print the client and server versions.
    Version(VersionArgs),
}

#[derive(Debug, clap::Args)]
struct VersionArgs {
    /// Only the client version (do not ask the server).
    #[arg(long)]
    client: bool,
}

/// What every client command needs.
pub struct Ctx {
    pub client: Client,
    /// `-n`, or `default`.
    pub namespace: String,
    /// Whether `-n` was given (apply refuses objects of other namespaces then).
    pub namespace_given: bool,
}

/// An error already printed to stderr: just exit non-zero.
#[derive(Debug, thiserror::Error)]
#[error("errors were reported above")]
pub struct Reported;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Serve(_)) {
        // The daemon's memory is mostly what glibc's per-thread arenas keep after short peaks.
        wisp_runtime::tuning::limit_malloc_arenas(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e);
            ExitCode::FAILURE
        }
    }
}

/// Prints an error for a user: the server's `Status` as kubectl does, anything else as
/// `Error: ...` with its causes.
fn report(e: &anyhow::Error) {
    if e.downcast_ref::<Reported>().is_some() {
        return;
    }
    if let Some(api @ ApiError::Status(_)) = e.downcast_ref::<ApiError>() {
        eprintln!("{api}");
        return;
    }
    eprintln!("Error: {e:#}");
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => return serve::run(args).await,
        Command::Build(args) => return cmd_build::run(*args).await,
        _ => {}
    }
    let ctx = Ctx {
        client: Client::new(&cli.server)?,
        namespace: cli
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string()),
        namespace_given: cli.namespace.is_some(),
    };
    match cli.command {
        Command::Serve(_) | Command::Build(_) => Ok(()),
        Command::Apply(args) => cmd_apply::run(&ctx, args).await,
        Command::Get(args) => cmd_get::run(&ctx, args).await,
        Command::Events(args) => cmd_events::run(&ctx, args).await,
        Command::Delete(args) => cmd_delete::run(&ctx, args).await,
        Command::Service(cmd) => cmd_service::run(&ctx, *cmd).await,
        Command::Revision(cmd) => cmd_revision::run(&ctx, cmd).await,
        Command::Route(cmd) => cmd_route::run(&ctx, cmd).await,
        Command::Broker(cmd) => cmd_broker::run(&ctx, cmd).await,
        Command::Trigger(cmd) => cmd_trigger::run(&ctx, *cmd).await,
        Command::Source(cmd) => cmd_source::run(&ctx, *cmd).await,
        Command::Channel(cmd) => cmd_channel::run(&ctx, cmd).await,
        Command::Subscription(cmd) => cmd_subscription::run(&ctx, cmd).await,
        Command::Event(cmd) => cmd_event::run(&ctx, *cmd).await,
        Command::Logs(args) => cmd_logs::run(&ctx, args).await,
        Command::Version(args) => version(&ctx, args).await,
    }
}

async fn version(ctx: &Ctx, args: VersionArgs) -> anyhow::Result<()> {
    println!("Client Version: v{}", env!("CARGO_PKG_VERSION"));
    if args.client {
        return Ok(());
    }
    let v = ctx.client.get("/version").await?;
    let server = v
        .get("gitVersion")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string());
    println!("Server Version: {server}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_kn_style_commands() {
        let cli = Cli::try_parse_from([
            "wisp",
            "service",
            "update",
            "hello",
            "--traffic",
            "hello-00001=50,@latest=50",
            "--tag",
            "@latest=latest",
            "--env",
            "A=1",
            "--env",
            "B-",
            "-n",
            "team",
        ]);
        let Ok(cli) = cli else { panic!("{cli:?}") };
        assert_eq!(cli.namespace.as_deref(), Some("team"));
        let Command::Service(cmd) = cli.command else {
            panic!("not a service command")
        };
        let cmd_service::ServiceCommand::Update(u) = *cmd else {
            panic!("not an update")
        };
        assert_eq!(u.traffic.traffic, ["hello-00001=50", "@latest=50"]);
        assert_eq!(u.edit.env, ["A=1", "B-"]);

        let cli = Cli::try_parse_from([
            "wisp",
            "ksvc",
            "create",
            "hi",
            "--cmd",
            "python3",
            "--arg",
            "-m",
            "--arg",
            "http.server",
            "--concurrency-limit",
            "-1",
        ]);
        let Ok(cli) = cli else { panic!("{cli:?}") };
        let Command::Service(cmd) = cli.command else {
            panic!("not a service command")
        };
        let cmd_service::ServiceCommand::Create(c) = *cmd else {
            panic!("not a create")
        };
        assert_eq!(c.edit.args, ["-m", "http.server"]);
        assert_eq!(c.edit.concurrency_limit, Some(-1));

        assert!(Cli::try_parse_from(["wisp", "get", "ksvc", "hello", "-o", "yaml", "-A"]).is_ok());
        assert!(Cli::try_parse_from(["wisp", "delete", "-f", "-"]).is_ok());
        assert!(Cli::try_parse_from(["wisp", "apply", "-f", "a.yaml", "-f", "b.yaml"]).is_ok());
        assert!(Cli::try_parse_from(["wisp", "serve", "--api-addr", "127.0.0.1:0"]).is_ok());
        assert!(Cli::try_parse_from(["wisp", "rev", "list", "-s", "hello"]).is_ok());
        assert!(Cli::try_parse_from(["wisp", "route", "describe", "hello", "-v"]).is_ok());
        assert!(Cli::try_parse_from(["wisp", "logs", "hello", "-f", "--tail", "5"]).is_ok());
    }

    #[test]
    fn parses_kn_style_eventing_commands() {
        for argv in [
            "broker create b --class MTChannelBasedBroker --dl-sink ksvc:dls --retry 2",
            "broker describe b -o url",
            "trigger create t --broker b --filter type=x,source=y -s ksvc:h --ordered",
            "trigger update t --filter type- --filter-cesql true --unordered",
            "trigger list -A -o yaml",
            "source list -t PingSource",
            "source ping create p --schedule @hourly -d hi -e text -s h --ce-override a=b",
            "source apiserver create a --resource Event:v1 --mode Resource -s h",
            "source container create c --image x --arg -v -e A=1 -s h",
            "source binding create b --subject Deployment:apps/v1:x -s h",
            "channel create c --type imc",
            "subscription create s --channel c --sink h --sink-reply broker:b",
            "event send --to broker:default -f a=1 -t dev.x -e team=blue",
            "event send --to-url http://127.0.0.1:8081/default/default --data x",
        ] {
            let all = std::iter::once("wisp").chain(argv.split(' '));
            let parsed = Cli::try_parse_from(all);
            assert!(parsed.is_ok(), "{argv}: {:?}", parsed.err());
        }
    }
}
