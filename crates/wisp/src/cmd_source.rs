//! `wisp source list|ping|apiserver|container|binding`: kn's `source` commands. One file per
//! source kind under `cmd_source/`; this one holds `source list`, which lists sources of
//! every kind as kn does (NAME, TYPE, RESOURCE, SINK, READY), and the flags the kinds share.

use serde_json::Value;
use wisp_api::eventing::SourceSpec;
use wisp_api::kinds::{self, ResourceInfo};
use wisp_api::meta::Condition;

use crate::Ctx;
use crate::describe_eventing::ready_status;
use crate::object_cmds::{self, ListArgs, from_value};
use crate::output::{self, OutputFormat};
use crate::sink::sink_text;

mod apiserver;
mod binding;
mod container;
mod ping;

#[derive(Debug, clap::Subcommand)]
pub enum SourceCommand {
    /// List event sources of every kind.
    #[command(visible_alias = "ls")]
    List(ListAllArgs),
    /// Manage ping sources.
    #[command(subcommand)]
    Ping(ping::PingCommand),
    /// Manage Kubernetes API server sources.
    #[command(subcommand)]
    Apiserver(apiserver::ApiServerCommand),
    /// Manage container sources.
    #[command(subcommand)]
    Container(container::ContainerCommand),
    /// Manage sink bindings.
    #[command(subcommand)]
    Binding(binding::BindingCommand),
}

#[derive(Debug, clap::Args)]
pub struct ListAllArgs {
    #[command(flatten)]
    pub list: ListArgs,
    /// Only sources of this type (PingSource, ApiServerSource, ContainerSource, SinkBinding;
    /// case ignored); repeatable or comma-separated.
    #[arg(short = 't', long = "type", value_name = "TYPE", value_delimiter = ',')]
    pub types: Vec<String>,
}

/// `--ce-override`, shared by the source kinds.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CeOverrideArgs {
    /// CloudEvent extension to set on every event the source sends: KEY=VALUE; KEY- removes
    /// it. Repeatable.
    #[arg(long = "ce-override", value_name = "KEY=VALUE")]
    pub ce_override: Vec<String>,
}

/// The source kinds wisp serves, in the order `source list` shows them.
pub const SOURCE_KINDS: &[&ResourceInfo] = &[
    &kinds::API_SERVER_SOURCES,
    &kinds::CONTAINER_SOURCES,
    &kinds::PING_SOURCES,
    &kinds::SINK_BINDINGS,
];

/// The kinds a `--type` list selects (all when empty).
pub fn selected_kinds(types: &[String]) -> Result<Vec<&'static ResourceInfo>, String> {
    if types.is_empty() {
        return Ok(SOURCE_KINDS.to_vec());
    }
    let mut out: Vec<&'static ResourceInfo> = Vec::new();
    for t in types {
        let lower = t.to_ascii_lowercase();
        let found = SOURCE_KINDS.iter().find(|k| {
            let kind = k.kind.to_ascii_lowercase();
            kind == lower
                || k.plural == lower
                || format!("{lower}source") == kind
                || format!("sink{lower}") == kind
        });
        match found {
            Some(k) if !out.contains(k) => out.push(k),
            Some(_) => {}
            None => {
                let known: Vec<&str> = SOURCE_KINDS.iter().map(|k| k.kind).collect();
                return Err(format!(
                    "Invalid --type {t:?}: wisp serves the source types {}",
                    known.join(", ")
                ));
            }
        }
    }
    Ok(out)
}

/// kn's `source list` table.
pub const HEADER: &[&str] = &["NAME", "TYPE", "RESOURCE", "SINK", "READY"];

/// One row of `source list`, read through the source duck type (`spec.sink`,
/// `status.conditions`) so any source kind works.
pub fn source_row(item: &Value, info: &ResourceInfo) -> Vec<String> {
    let ns = item
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let sink = item
        .get("spec")
        .cloned()
        .and_then(|s| serde_json::from_value::<SourceSpec>(s).ok())
        .map(|s| sink_text(&s.sink, ns))
        .unwrap_or_default();
    let conditions: Vec<Condition> = item
        .pointer("/status/conditions")
        .cloned()
        .and_then(|c| serde_json::from_value(c).ok())
        .unwrap_or_default();
    vec![
        item.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        info.kind.to_string(),
        format!("{}.{}", info.plural, info.group),
        sink,
        ready_status(&conditions),
    ]
}

async fn list_all(ctx: &Ctx, args: ListAllArgs) -> anyhow::Result<()> {
    let kinds = selected_kinds(&args.types).map_err(anyhow::Error::msg)?;
    let mut items: Vec<(Value, &ResourceInfo)> = Vec::new();
    for info in kinds {
        for item in object_cmds::list_items(ctx, info, args.list.all_namespaces).await? {
            items.push((output::with_type(item, info), info));
        }
    }
    let name = |v: &Value, field: &str| {
        v.pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    items.sort_by_key(|(v, _)| {
        let ns = name(v, "namespace");
        (ns != "default", ns, name(v, "name"))
    });
    if let Some(format) = args.list.output.filter(|f| *f != OutputFormat::Wide) {
        if format == OutputFormat::Name {
            for (v, info) in items {
                print!("{}", output::render(vec![v], info, format, false));
            }
            return Ok(());
        }
        let objects = items.into_iter().map(|(v, _)| v).collect();
        // Every object carries its own kind already; the info only fills missing ones.
        print!(
            "{}",
            output::render(objects, &kinds::PING_SOURCES, format, false)
        );
        return Ok(());
    }
    if items.is_empty() {
        println!("No sources found.");
        return Ok(());
    }
    let rows = items
        .iter()
        .map(|(v, info)| (name(v, "namespace"), source_row(v, info)))
        .collect();
    print!(
        "{}",
        object_cmds::table(HEADER, rows, args.list.all_namespaces, args.list.no_headers)
    );
    Ok(())
}

pub async fn run(ctx: &Ctx, cmd: SourceCommand) -> anyhow::Result<()> {
    match cmd {
        SourceCommand::List(args) => list_all(ctx, args).await,
        SourceCommand::Ping(cmd) => ping::run(ctx, cmd).await,
        SourceCommand::Apiserver(cmd) => apiserver::run(ctx, cmd).await,
        SourceCommand::Container(cmd) => container::run(ctx, cmd).await,
        SourceCommand::Binding(cmd) => binding::run(ctx, cmd).await,
    }
}

/// `describe` of one source kind: `-o yaml|json`, or the summary `text` builds.
async fn describe<T: serde::de::DeserializeOwned>(
    ctx: &Ctx,
    info: &'static ResourceInfo,
    args: &object_cmds::DescribeArgs,
    text: impl Fn(&T, bool) -> String,
) -> anyhow::Result<()> {
    let json = object_cmds::get_json(ctx, info, &args.name).await?;
    if let Some(out) = object_cmds::describe_output(&json, info, args.output) {
        print!("{out}");
        return Ok(());
    }
    let obj: T = from_value(json, info.singular)?;
    print!("{}", text(&obj, args.verbose));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn type_filters() {
        let kinds = |t: &[&str]| {
            selected_kinds(&t.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .map(|v| v.iter().map(|k| k.kind).collect::<Vec<_>>())
        };
        assert_eq!(
            kinds(&[]),
            Ok(vec![
                "ApiServerSource",
                "ContainerSource",
                "PingSource",
                "SinkBinding"
            ])
        );
        assert_eq!(
            kinds(&["pingsource", "ApiServerSource", "ping"]),
            Ok(vec!["PingSource", "ApiServerSource"])
        );
        assert_eq!(
            kinds(&["sinkbindings", "binding", "container"]),
            Ok(vec!["SinkBinding", "ContainerSource"])
        );
        assert_eq!(
            kinds(&["KafkaSource"]),
            Err("Invalid --type \"KafkaSource\": wisp serves the source types ApiServerSource, ContainerSource, PingSource, SinkBinding".to_string())
        );
    }

    #[test]
    fn rows_like_kn() {
        let ping = json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"schedule": "* * * * *", "sink": {"ref": {"kind": "Broker", "name": "default",
                     "namespace": "default", "apiVersion": "eventing.knative.dev/v1"}}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        });
        let binding = json!({
            "metadata": {"name": "b", "namespace": "default"},
            "spec": {"subject": {"kind": "Deployment", "apiVersion": "apps/v1", "name": "x"},
                     "sink": {"uri": "http://x"}}
        });
        let rows = vec![
            (
                "default".to_string(),
                source_row(&binding, &kinds::SINK_BINDINGS),
            ),
            (
                "default".to_string(),
                source_row(&ping, &kinds::PING_SOURCES),
            ),
        ];
        assert_eq!(
            object_cmds::table(HEADER, rows, false, false),
            "NAME   TYPE          RESOURCE                           SINK             READY\n\
             b      SinkBinding   sinkbindings.sources.knative.dev   http://x         <unknown>\n\
             p      PingSource    pingsources.sources.knative.dev    broker:default   True\n"
        );
    }
}
