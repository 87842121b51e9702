//! `wisp source apiserver create|update|list|describe|delete`: kn's `source apiserver`
//! commands.

use std::time::SystemTime;

use wisp_api::eventing::{ApiServerSource, Destination};
use wisp_api::kinds;

use super::CeOverrideArgs;
use crate::cmd_revision::{conditions_value, non_ready_reason};
use crate::describe_eventing::{self, ready_status};
use crate::eventing_flags::{
    api_version_kind_selector, api_version_kind_selector_text, apply_ce_overrides, edit_resources,
};
use crate::object_cmds::{self, DeleteArgs, DescribeArgs, ListArgs};
use crate::sink::{self, sink_text};
use crate::{Ctx, age};

#[derive(Debug, clap::Subcommand)]
pub enum ApiServerCommand {
    /// Create an api-server source.
    Create(CreateArgs),
    /// Update an api-server source.
    Update(UpdateArgs),
    /// List api-server sources.
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Show details of an api-server source.
    Describe(DescribeArgs),
    /// Delete api-server sources.
    Delete(DeleteArgs),
}

#[derive(Debug, Clone, Default, clap::Args)]
pub struct ApiServerFlags {
    /// What to watch: Kind:APIVersion[:LabelSelector], e.g. "Event:v1" or
    /// "Service:serving.knative.dev/v1:app=web"; repeatable. On update, a trailing "-"
    /// removes a resource.
    #[arg(long = "resource", value_name = "RESOURCE")]
    pub resources: Vec<String>,
    /// Name of the service account to use to run this source.
    #[arg(long = "service-account", value_name = "NAME")]
    pub service_account: Option<String>,
    #[command(flatten)]
    pub ce: CeOverrideArgs,
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Name of the source.
    pub name: String,
    /// Addressable sink for events: ksvc:NAME (or just NAME), broker:NAME, channel:NAME, an
    /// http(s) URL, or KIND:APIVERSION:NAME.
    #[arg(short = 's', long, value_name = "SINK")]
    pub sink: String,
    /// "Reference" sends only a reference to the object, "Resource" the whole object.
    #[arg(long, default_value = "Reference", value_parser = ["Reference", "Resource"])]
    pub mode: String,
    #[command(flatten)]
    pub flags: ApiServerFlags,
}

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// Name of the source.
    pub name: String,
    /// Addressable sink for events (same forms as on create).
    #[arg(short = 's', long, value_name = "SINK")]
    pub sink: Option<String>,
    /// "Reference" sends only a reference to the object, "Resource" the whole object.
    #[arg(long, value_parser = ["Reference", "Resource"])]
    pub mode: Option<String>,
    #[command(flatten)]
    pub flags: ApiServerFlags,
}

/// Applies the flags to an ApiServerSource; `update` reads `--resource R-` as a removal.
pub fn edit_apiserver(
    s: &mut ApiServerSource,
    flags: &ApiServerFlags,
    mode: Option<&str>,
    sink: Option<Destination>,
    update: bool,
) -> Result<(), String> {
    if update {
        if !flags.resources.is_empty() {
            s.spec.resources = edit_resources(&s.spec.resources, &flags.resources)?;
        }
    } else {
        if flags.resources.is_empty() {
            return Err("'source apiserver create' requires at least one --resource".into());
        }
        s.spec.resources = flags
            .resources
            .iter()
            .map(|r| api_version_kind_selector(r))
            .collect::<Result<_, _>>()?;
    }
    if let Some(m) = mode {
        s.spec.mode = m.to_string();
    }
    if let Some(sa) = &flags.service_account {
        s.spec.service_account_name = sa.clone();
    }
    if let Some(d) = sink {
        s.spec.sink = d;
    }
    apply_ce_overrides(&flags.ce.ce_override, &mut s.spec.ce_overrides)
}

pub async fn run(ctx: &Ctx, cmd: ApiServerCommand) -> anyhow::Result<()> {
    let ns = ctx.namespace.clone();
    match cmd {
        ApiServerCommand::Create(args) => {
            let mut s = ApiServerSource::new(&ns, &args.name);
            // Flags first: a bad --resource fails before any round trip.
            edit_apiserver(&mut s, &args.flags, Some(&args.mode), None, false)
                .map_err(anyhow::Error::msg)?;
            s.spec.sink = sink::resolve(ctx, "--sink", &args.sink).await?;
            object_cmds::create(ctx, &kinds::API_SERVER_SOURCES, &s).await?;
            println!(
                "ApiServer source '{}' created in namespace '{ns}'.",
                args.name
            );
            Ok(())
        }
        ApiServerCommand::Update(args) => {
            let f = &args.flags;
            if f.resources.is_empty()
                && f.service_account.is_none()
                && f.ce.ce_override.is_empty()
                && args.mode.is_none()
                && args.sink.is_none()
            {
                anyhow::bail!("flag(s) not set\nUsage: wisp source apiserver update NAME [flags]");
            }
            let sink = sink::resolve_opt(ctx, "--sink", args.sink.as_deref()).await?;
            object_cmds::update(
                ctx,
                &kinds::API_SERVER_SOURCES,
                &args.name,
                |s: &mut ApiServerSource| {
                    edit_apiserver(s, f, args.mode.as_deref(), sink.clone(), true)
                        .map_err(anyhow::Error::msg)
                },
            )
            .await?;
            println!(
                "ApiServer source '{}' updated in namespace '{ns}'.",
                args.name
            );
            Ok(())
        }
        ApiServerCommand::List(args) => {
            let now = SystemTime::now();
            object_cmds::list(
                ctx,
                &kinds::API_SERVER_SOURCES,
                &args,
                "No ApiServer source found.",
                HEADER,
                |s: &ApiServerSource| apiserver_row(s, now),
            )
            .await
        }
        ApiServerCommand::Describe(args) => {
            super::describe(
                ctx,
                &kinds::API_SERVER_SOURCES,
                &args,
                |s: &ApiServerSource, v| {
                    describe_eventing::describe_apiserver(s, v, SystemTime::now())
                },
            )
            .await
        }
        ApiServerCommand::Delete(args) => {
            object_cmds::delete(ctx, &kinds::API_SERVER_SOURCES, &args.names, |name| {
                format!("ApiServer source '{name}' deleted in namespace '{ns}'.")
            })
            .await
        }
    }
}

/// kn's api-server source table.
pub const HEADER: &[&str] = &[
    "NAME",
    "RESOURCES",
    "SINK",
    "AGE",
    "CONDITIONS",
    "READY",
    "REASON",
];

pub fn apiserver_row(s: &ApiServerSource, now: SystemTime) -> Vec<String> {
    let conditions = &s.status.conditions;
    let resources: Vec<String> = s
        .spec
        .resources
        .iter()
        .map(api_version_kind_selector_text)
        .collect();
    vec![
        s.metadata.name.clone(),
        resources.join(","),
        sink_text(&s.spec.sink, &s.metadata.namespace),
        age::table_age(s.metadata.creation_timestamp.as_deref(), now),
        conditions_value(conditions),
        ready_status(conditions),
        non_ready_reason(conditions).trim().to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builds_and_updates() {
        let flags = ApiServerFlags {
            resources: vec![
                "Event:v1".into(),
                "Service:serving.knative.dev/v1:app=web".into(),
            ],
            service_account: Some("watcher".into()),
            ce: CeOverrideArgs::default(),
        };
        let mut s = ApiServerSource::new("default", "k8s");
        let sink = Destination::reference("eventing.knative.dev/v1", "Broker", "default");
        assert_eq!(
            edit_apiserver(&mut s, &flags, Some("Reference"), Some(sink), false),
            Ok(())
        );
        assert_eq!(
            serde_json::to_value(&s.spec).unwrap_or_default(),
            json!({
                "sink": {"ref": {"kind": "Broker", "name": "default", "apiVersion": "eventing.knative.dev/v1"}},
                "resources": [
                    {"apiVersion": "v1", "kind": "Event"},
                    {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
                     "selector": {"matchLabels": {"app": "web"}}}
                ],
                "mode": "Reference",
                "serviceAccountName": "watcher"
            })
        );
        assert_eq!(
            apiserver_row(&s, SystemTime::UNIX_EPOCH)[1],
            "Event:v1,Service:serving.knative.dev/v1:app=web"
        );
        let update = ApiServerFlags {
            resources: vec!["Event:v1-".into(), "Pod:v1".into()],
            ..ApiServerFlags::default()
        };
        assert_eq!(
            edit_apiserver(&mut s, &update, Some("Resource"), None, true),
            Ok(())
        );
        let kinds: Vec<&str> = s.spec.resources.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(kinds, ["Service", "Pod"]);
        assert_eq!(s.spec.mode, "Resource");

        let none = ApiServerFlags::default();
        assert_eq!(
            edit_apiserver(&mut ApiServerSource::default(), &none, None, None, false),
            Err("'source apiserver create' requires at least one --resource".into())
        );
    }
}
