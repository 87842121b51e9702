//! `wisp source ping create|update|list|describe|delete`: kn's `source ping` commands.

use std::time::SystemTime;

use wisp_api::eventing::{Destination, PingSource};
use wisp_api::kinds;

use super::CeOverrideArgs;
use crate::cmd_revision::{conditions_value, non_ready_reason};
use crate::describe_eventing::{self, ready_status};
use crate::eventing_flags::apply_ce_overrides;
use crate::object_cmds::{self, DeleteArgs, DescribeArgs, ListArgs};
use crate::sink::{self, sink_text};
use crate::{Ctx, age};

#[derive(Debug, clap::Subcommand)]
pub enum PingCommand {
    /// Create a ping source.
    Create(CreateArgs),
    /// Update a ping source.
    Update(UpdateArgs),
    /// List ping sources.
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Show details of a ping source.
    Describe(DescribeArgs),
    /// Delete ping sources.
    Delete(DeleteArgs),
}

/// What `create` and `update` share.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PingFlags {
    /// Schedule in crontab format, e.g. '*/2 * * * *' for every two minutes (every minute by
    /// default).
    #[arg(long, value_name = "CRON")]
    pub schedule: Option<String>,
    /// Data to send; its encoding is guessed (base64 if it decodes as base64, else text)
    /// unless --encoding says.
    #[arg(short = 'd', long, value_name = "DATA")]
    pub data: Option<String>,
    /// Data encoding format.
    #[arg(short = 'e', long, value_name = "ENCODING", value_parser = ["text", "base64"])]
    pub encoding: Option<String>,
    #[command(flatten)]
    pub ce: CeOverrideArgs,
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Name of the ping source.
    pub name: String,
    /// Addressable sink for events: ksvc:NAME (or just NAME), broker:NAME, channel:NAME, an
    /// http(s) URL, or KIND:APIVERSION:NAME.
    #[arg(short = 's', long, value_name = "SINK")]
    pub sink: String,
    #[command(flatten)]
    pub flags: PingFlags,
}

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// Name of the ping source.
    pub name: String,
    /// Addressable sink for events (same forms as on create).
    #[arg(short = 's', long, value_name = "SINK")]
    pub sink: Option<String>,
    #[command(flatten)]
    pub flags: PingFlags,
}

/// Whether `s` is standard base64 with padding (Go's `base64.StdEncoding.DecodeString`
/// succeeding, which is what kn's guess asks).
pub fn is_base64(s: &str) -> bool {
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return false;
    }
    let body = s.trim_end_matches('=');
    if s.len() - body.len() > 2 {
        return false;
    }
    body.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// kn's `getDataFields`: `(data, dataBase64)` for `--data` and `--encoding`.
pub fn data_fields(data: &str, encoding: Option<&str>) -> (String, String) {
    match encoding {
        Some("base64") => (String::new(), data.to_string()),
        Some(_) => (data.to_string(), String::new()),
        None if is_base64(data) => (String::new(), data.to_string()),
        None => (data.to_string(), String::new()),
    }
}

/// Applies the flags to a ping source.
pub fn edit_ping(
    p: &mut PingSource,
    flags: &PingFlags,
    sink: Option<Destination>,
) -> Result<(), String> {
    if let Some(s) = &flags.schedule {
        p.spec.schedule = s.clone();
    }
    if let Some(d) = &flags.data {
        (p.spec.data, p.spec.data_base64) = data_fields(d, flags.encoding.as_deref());
    }
    if let Some(s) = sink {
        p.spec.sink = s;
    }
    apply_ce_overrides(&flags.ce.ce_override, &mut p.spec.ce_overrides)
}

pub async fn run(ctx: &Ctx, cmd: PingCommand) -> anyhow::Result<()> {
    let ns = ctx.namespace.clone();
    match cmd {
        PingCommand::Create(args) => {
            let sink = sink::resolve(ctx, "--sink", &args.sink).await?;
            let mut p = PingSource::new(&ns, &args.name);
            edit_ping(&mut p, &args.flags, Some(sink)).map_err(anyhow::Error::msg)?;
            object_cmds::create(ctx, &kinds::PING_SOURCES, &p).await?;
            println!("Ping source '{}' created in namespace '{ns}'.", args.name);
            Ok(())
        }
        PingCommand::Update(args) => {
            let f = &args.flags;
            if f.schedule.is_none()
                && f.data.is_none()
                && f.ce.ce_override.is_empty()
                && args.sink.is_none()
            {
                anyhow::bail!("flag(s) not set\nUsage: wisp source ping update NAME [flags]");
            }
            let sink = sink::resolve_opt(ctx, "--sink", args.sink.as_deref()).await?;
            object_cmds::update(
                ctx,
                &kinds::PING_SOURCES,
                &args.name,
                |p: &mut PingSource| edit_ping(p, f, sink.clone()).map_err(anyhow::Error::msg),
            )
            .await?;
            println!("Ping source '{}' updated in namespace '{ns}'.", args.name);
            Ok(())
        }
        PingCommand::List(args) => {
            let now = SystemTime::now();
            object_cmds::list(
                ctx,
                &kinds::PING_SOURCES,
                &args,
                "No Ping source found.",
                HEADER,
                |p: &PingSource| ping_row(p, now),
            )
            .await
        }
        PingCommand::Describe(args) => {
            super::describe(ctx, &kinds::PING_SOURCES, &args, |p: &PingSource, v| {
                describe_eventing::describe_ping(p, v, SystemTime::now())
            })
            .await
        }
        PingCommand::Delete(args) => {
            object_cmds::delete(ctx, &kinds::PING_SOURCES, &args.names, |name| {
                format!("Ping source '{name}' deleted in namespace '{ns}'.")
            })
            .await
        }
    }
}

/// kn's ping source table.
pub const HEADER: &[&str] = &[
    "NAME",
    "SCHEDULE",
    "SINK",
    "AGE",
    "CONDITIONS",
    "READY",
    "REASON",
];

pub fn ping_row(p: &PingSource, now: SystemTime) -> Vec<String> {
    let conditions = &p.status.conditions;
    vec![
        p.metadata.name.clone(),
        p.spec.schedule.clone(),
        sink_text(&p.spec.sink, &p.metadata.namespace),
        age::table_age(p.metadata.creation_timestamp.as_deref(), now),
        conditions_value(conditions),
        ready_status(conditions),
        non_ready_reason(conditions),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn data_encoding_like_kn() {
        assert!(is_base64("aGVsbG8="));
        assert!(is_base64("dGVzdA=="));
        assert!(is_base64(""));
        assert!(!is_base64("{ value: \"hello\" }"));
        assert!(!is_base64("abc"));
        assert!(!is_base64("a==="));
        assert_eq!(
            data_fields("{\"a\":1}", None),
            ("{\"a\":1}".into(), String::new())
        );
        assert_eq!(
            data_fields("aGVsbG8=", None),
            (String::new(), "aGVsbG8=".into())
        );
        assert_eq!(
            data_fields("aGVsbG8=", Some("text")),
            ("aGVsbG8=".into(), String::new())
        );
        assert_eq!(
            data_fields("xyz", Some("base64")),
            (String::new(), "xyz".into())
        );
    }

    #[test]
    fn builds_ping_sources() {
        let flags = PingFlags {
            schedule: Some("*/2 * * * *".into()),
            data: Some("{\"value\": \"hello\"}".into()),
            encoding: None,
            ce: CeOverrideArgs {
                ce_override: vec!["team=blue".into()],
            },
        };
        let mut p = PingSource::new("default", "my-ping");
        let sink = Destination::reference("serving.knative.dev/v1", "Service", "mysvc");
        assert_eq!(edit_ping(&mut p, &flags, Some(sink)), Ok(()));
        assert_eq!(
            serde_json::to_value(&p).unwrap_or_default(),
            json!({
                "apiVersion": "sources.knative.dev/v1", "kind": "PingSource",
                "metadata": {"name": "my-ping", "namespace": "default"},
                "spec": {"schedule": "*/2 * * * *", "data": "{\"value\": \"hello\"}",
                         "sink": {"ref": {"kind": "Service", "name": "mysvc", "apiVersion": "serving.knative.dev/v1"}},
                         "ceOverrides": {"extensions": {"team": "blue"}}}
            })
        );
        // Update: only what is given changes; base64 data replaces text data.
        let more = PingFlags {
            data: Some("aGk=".into()),
            ce: CeOverrideArgs {
                ce_override: vec!["team-".into()],
            },
            ..PingFlags::default()
        };
        assert_eq!(edit_ping(&mut p, &more, None), Ok(()));
        assert_eq!(p.spec.schedule, "*/2 * * * *");
        assert_eq!(
            (p.spec.data.as_str(), p.spec.data_base64.as_str()),
            ("", "aGk=")
        );
        assert_eq!(p.spec.ce_overrides, None);
        assert_eq!(
            ping_row(&p, SystemTime::UNIX_EPOCH)[..3],
            ["my-ping", "*/2 * * * *", "ksvc:mysvc"].map(String::from)
        );
    }
}
