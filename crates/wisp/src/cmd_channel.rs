//! `wisp channel create|list|describe|delete`: kn's `channel` commands. A channel is a
//! `messaging.knative.dev/v1` Channel; `--type` picks the kind that backs it (its
//! `channelTemplate`), the server's default when absent.

use std::time::SystemTime;

use wisp_api::eventing::{Channel, ChannelTemplateSpec};
use wisp_api::kinds;

use crate::cmd_revision::non_ready_reason;
use crate::describe_eventing::{self, ready_status};
use crate::object_cmds::{self, AddressDescribeArgs, DeleteArgs, ListArgs, from_value};
use crate::{Ctx, age};

#[derive(Debug, clap::Subcommand)]
pub enum ChannelCommand {
    /// Create an event channel.
    Create(CreateArgs),
    /// List channels.
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Show details of a channel.
    Describe(AddressDescribeArgs),
    /// Delete channels.
    Delete(DeleteArgs),
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Name of the channel.
    pub name: String,
    /// The channel type: 'imc' (InMemoryChannel), Group:Version:Kind
    /// (messaging.knative.dev:v1:InMemoryChannel) or apiVersion:Kind
    /// (messaging.knative.dev/v1:InMemoryChannel). The server's default when absent.
    #[arg(long = "type", value_name = "TYPE")]
    pub type_: Option<String>,
}

/// kn's `--type` (`ChannelTypeFlags.Parse`), plus the `apiVersion:Kind` form.
pub fn parse_channel_type(text: &str) -> Result<ChannelTemplateSpec, String> {
    let bad = || {
        format!(
            "Invalid --type {text:?}: want 'imc', Group:Version:Kind (messaging.knative.dev:v1:InMemoryChannel) or apiVersion:Kind"
        )
    };
    let parts: Vec<&str> = text.split(':').collect();
    let (api_version, kind) = match parts.as_slice() {
        ["imc"] => return Ok(ChannelTemplateSpec::in_memory()),
        [api_version, kind] if api_version.contains('/') && !kind.is_empty() => {
            (api_version.to_string(), kind.to_string())
        }
        [group, version, kind] if !group.is_empty() && !version.is_empty() && !kind.is_empty() => {
            (format!("{group}/{version}"), kind.to_string())
        }
        _ => return Err(bad()),
    };
    Ok(ChannelTemplateSpec {
        api_version,
        kind,
        spec: None,
    })
}

pub fn make_channel(namespace: &str, args: &CreateArgs) -> Result<Channel, String> {
    let mut c = Channel::new(namespace, &args.name);
    if let Some(t) = &args.type_ {
        c.spec.channel_template = Some(parse_channel_type(t)?);
    }
    Ok(c)
}

pub async fn run(ctx: &Ctx, cmd: ChannelCommand) -> anyhow::Result<()> {
    let ns = ctx.namespace.clone();
    match cmd {
        ChannelCommand::Create(args) => {
            let channel = make_channel(&ns, &args).map_err(anyhow::Error::msg)?;
            object_cmds::create(ctx, &kinds::CHANNELS, &channel).await?;
            println!("Channel '{}' created in namespace '{ns}'.", args.name);
            Ok(())
        }
        ChannelCommand::List(args) => {
            let now = SystemTime::now();
            object_cmds::list(
                ctx,
                &kinds::CHANNELS,
                &args,
                "No channels found.",
                HEADER,
                |c: &Channel| channel_row(c, now),
            )
            .await
        }
        ChannelCommand::Describe(args) => {
            let json = object_cmds::get_json(ctx, &kinds::CHANNELS, &args.name).await?;
            if let Some(text) =
                object_cmds::address_describe_output(&json, &kinds::CHANNELS, args.output)
            {
                print!("{text}");
                return Ok(());
            }
            let c: Channel = from_value(json, "channel")?;
            print!(
                "{}",
                describe_eventing::describe_channel(&c, args.verbose, SystemTime::now())
            );
            Ok(())
        }
        ChannelCommand::Delete(args) => {
            object_cmds::delete(ctx, &kinds::CHANNELS, &args.names, |name| {
                format!("Channel '{name}' deleted in namespace '{ns}'.")
            })
            .await
        }
    }
}

/// kn's channel table.
pub const HEADER: &[&str] = &["NAME", "TYPE", "URL", "AGE", "READY", "REASON"];

pub fn channel_row(c: &Channel, now: SystemTime) -> Vec<String> {
    let conditions = &c.status.conditions;
    vec![
        c.metadata.name.clone(),
        c.spec
            .channel_template
            .as_ref()
            .map(|t| t.kind.clone())
            .unwrap_or_default(),
        c.status
            .address
            .as_ref()
            .and_then(|a| a.url.clone())
            .unwrap_or_default(),
        age::table_age(c.metadata.creation_timestamp.as_deref(), now),
        ready_status(conditions),
        non_ready_reason(conditions),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn channel_types() {
        let imc = Ok(ChannelTemplateSpec::in_memory());
        assert_eq!(parse_channel_type("imc"), imc);
        assert_eq!(
            parse_channel_type("messaging.knative.dev:v1:InMemoryChannel"),
            imc
        );
        assert_eq!(
            parse_channel_type("messaging.knative.dev/v1:InMemoryChannel"),
            imc
        );
        assert_eq!(
            parse_channel_type("messaging.knative.dev:v1beta1:KafkaChannel").map(|t| t.api_version),
            Ok("messaging.knative.dev/v1beta1".to_string())
        );
        for bad in ["", "kafka", "a::c", "v1:InMemoryChannel", "a:b:c:d"] {
            let err = parse_channel_type(bad).err().unwrap_or_default();
            assert!(
                err.starts_with(&format!("Invalid --type {bad:?}: want 'imc'")),
                "{err}"
            );
        }
    }

    #[test]
    fn builds_channels() {
        let args = CreateArgs {
            name: "pipe".into(),
            type_: Some("imc".into()),
        };
        assert_eq!(
            make_channel("default", &args).map(|c| serde_json::to_value(c).unwrap_or_default()),
            Ok(json!({
                "apiVersion": "messaging.knative.dev/v1", "kind": "Channel",
                "metadata": {"name": "pipe", "namespace": "default"},
                "spec": {"channelTemplate": {"apiVersion": "messaging.knative.dev/v1",
                                             "kind": "InMemoryChannel"}}
            }))
        );
        let plain = CreateArgs {
            name: "pipe".into(),
            type_: None,
        };
        assert_eq!(
            make_channel("default", &plain).map(|c| c.spec.channel_template),
            Ok(None)
        );
    }

    #[test]
    fn rows_like_kn() {
        let c: Channel = serde_json::from_value(json!({
            "metadata": {"name": "pipe", "namespace": "default", "creationTimestamp": "2026-01-02T03:04:05Z"},
            "spec": {"channelTemplate": {"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel"}},
            "status": {"address": {"url": "http://127.0.0.1:8081/channels/default/pipe"},
                       "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap_or_default();
        let now = age::parse_timestamp("2026-01-02T03:04:35Z").unwrap_or(SystemTime::UNIX_EPOCH);
        assert_eq!(
            object_cmds::table(
                HEADER,
                vec![("default".into(), channel_row(&c, now))],
                false,
                false
            ),
            "NAME   TYPE              URL                                           AGE   READY   REASON\n\
             pipe   InMemoryChannel   http://127.0.0.1:8081/channels/default/pipe   30s   True\n"
        );
    }
}
