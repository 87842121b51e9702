//! `wisp source binding create|update|list|describe|delete`: kn's `source binding` commands
//! (SinkBinding).

use std::time::SystemTime;

use wisp_api::eventing::{BindingSubject, Destination, SinkBinding};
use wisp_api::kinds;

use super::CeOverrideArgs;
use crate::cmd_revision::{conditions_value, non_ready_reason};
use crate::describe_eventing::{self, ready_status};
use crate::eventing_flags::{apply_ce_overrides, label_selector, selector_text};
use crate::object_cmds::{self, DeleteArgs, DescribeArgs, ListArgs};
use crate::sink::{self, sink_text};
use crate::{Ctx, age};

#[derive(Debug, clap::Subcommand)]
pub enum BindingCommand {
    /// Create a sink binding.
    Create(CreateArgs),
    /// Update a sink binding.
    Update(UpdateArgs),
    /// List sink bindings.
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Show details of a sink binding.
    Describe(DescribeArgs),
    /// Delete sink bindings.
    Delete(DeleteArgs),
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Name of the sink binding.
    pub name: String,
    /// The workload to bind: kind:apiVersion:name, or kind:apiVersion:key1=value1,key2=value2
    /// for every object matching a label selector (Deployment:apps/v1:myapp).
    #[arg(long, value_name = "SUBJECT")]
    pub subject: String,
    /// Addressable sink for events: ksvc:NAME (or just NAME), broker:NAME, channel:NAME, an
    /// http(s) URL, or KIND:APIVERSION:NAME.
    #[arg(short = 's', long, value_name = "SINK")]
    pub sink: String,
    #[command(flatten)]
    pub ce: CeOverrideArgs,
}

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// Name of the sink binding.
    pub name: String,
    /// The workload to bind (same forms as on create).
    #[arg(long, value_name = "SUBJECT")]
    pub subject: Option<String>,
    /// Addressable sink for events (same forms as on create).
    #[arg(short = 's', long, value_name = "SINK")]
    pub sink: Option<String>,
    #[command(flatten)]
    pub ce: CeOverrideArgs,
}

/// `--subject` (kn's `ToTrackerReference`): `kind:apiVersion:nameOrSelector`, in `namespace`.
pub fn parse_subject(text: &str, namespace: &str) -> Result<BindingSubject, String> {
    const WANT: &str = "want kind:apiVersion:name or kind:apiVersion:key1=value1,key2=value2";
    let parts: Vec<&str> = text.splitn(3, ':').collect();
    let [kind, api_version, target] = parts.as_slice() else {
        return Err(format!("Invalid --subject {text:?}: {WANT}"));
    };
    if kind.is_empty() || api_version.is_empty() || target.is_empty() {
        return Err(format!("Invalid --subject {text:?}: {WANT}"));
    }
    if api_version.matches('/').count() > 1 {
        return Err(format!(
            "Invalid --subject {text:?}: {api_version:?} is not an apiVersion (group/version)"
        ));
    }
    let mut subject = BindingSubject {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        namespace: namespace.to_string(),
        ..BindingSubject::default()
    };
    if target.contains('=') {
        subject.selector = Some(label_selector("--subject", target)?);
    } else {
        subject.name = target.to_string();
    }
    Ok(subject)
}

/// kn's `subjectToString`.
pub fn subject_text(s: &BindingSubject) -> String {
    let base = format!("{}:{}", s.kind, s.api_version);
    if !s.name.is_empty() {
        return format!("{base}:{}", s.name);
    }
    match &s.selector {
        Some(sel) => format!("{base}:{}", selector_text(sel)),
        None => base,
    }
}

/// Applies the flags to a sink binding.
pub fn edit_binding(
    b: &mut SinkBinding,
    subject: Option<BindingSubject>,
    sink: Option<Destination>,
    ce_overrides: &[String],
) -> Result<(), String> {
    if let Some(s) = subject {
        b.spec.subject = s;
    }
    if let Some(d) = sink {
        b.spec.sink = d;
    }
    apply_ce_overrides(ce_overrides, &mut b.spec.ce_overrides)
}

pub async fn run(ctx: &Ctx, cmd: BindingCommand) -> anyhow::Result<()> {
    let ns = ctx.namespace.clone();
    match cmd {
        BindingCommand::Create(args) => {
            let subject = parse_subject(&args.subject, &ns).map_err(anyhow::Error::msg)?;
            let sink = sink::resolve(ctx, "--sink", &args.sink).await?;
            let mut b = SinkBinding::new(&ns, &args.name);
            edit_binding(&mut b, Some(subject), Some(sink), &args.ce.ce_override)
                .map_err(anyhow::Error::msg)?;
            object_cmds::create(ctx, &kinds::SINK_BINDINGS, &b).await?;
            println!("Sink binding '{}' created in namespace '{ns}'.", args.name);
            Ok(())
        }
        BindingCommand::Update(args) => {
            if args.subject.is_none() && args.sink.is_none() && args.ce.ce_override.is_empty() {
                anyhow::bail!("flag(s) not set\nUsage: wisp source binding update NAME [flags]");
            }
            let subject = args
                .subject
                .as_deref()
                .map(|s| parse_subject(s, &ns))
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let sink = sink::resolve_opt(ctx, "--sink", args.sink.as_deref()).await?;
            object_cmds::update(
                ctx,
                &kinds::SINK_BINDINGS,
                &args.name,
                |b: &mut SinkBinding| {
                    edit_binding(b, subject.clone(), sink.clone(), &args.ce.ce_override)
                        .map_err(anyhow::Error::msg)
                },
            )
            .await?;
            println!("Sink binding '{}' updated in namespace '{ns}'.", args.name);
            Ok(())
        }
        BindingCommand::List(args) => {
            let now = SystemTime::now();
            object_cmds::list(
                ctx,
                &kinds::SINK_BINDINGS,
                &args,
                "No sink binding found.",
                HEADER,
                |b: &SinkBinding| binding_row(b, now),
            )
            .await
        }
        BindingCommand::Describe(args) => {
            super::describe(ctx, &kinds::SINK_BINDINGS, &args, |b: &SinkBinding, v| {
                describe_eventing::describe_binding(b, v, SystemTime::now())
            })
            .await
        }
        BindingCommand::Delete(args) => {
            object_cmds::delete(ctx, &kinds::SINK_BINDINGS, &args.names, |name| {
                format!("Sink binding '{name}' deleted in namespace '{ns}'.")
            })
            .await
        }
    }
}

/// kn's sink binding table.
pub const HEADER: &[&str] = &[
    "NAME",
    "SUBJECT",
    "SINK",
    "AGE",
    "CONDITIONS",
    "READY",
    "REASON",
];

pub fn binding_row(b: &SinkBinding, now: SystemTime) -> Vec<String> {
    let conditions = &b.status.conditions;
    vec![
        b.metadata.name.clone(),
        subject_text(&b.spec.subject),
        sink_text(&b.spec.sink, &b.metadata.namespace),
        age::table_age(b.metadata.creation_timestamp.as_deref(), now),
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
    fn subjects_like_kn() {
        let named = parse_subject("Deployment:apps/v1:myapp", "default");
        assert_eq!(
            named
                .as_ref()
                .map(|s| serde_json::to_value(s).unwrap_or_default()),
            Ok(
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "default", "name": "myapp"})
            )
        );
        assert_eq!(
            named.as_ref().map(subject_text).as_deref(),
            Ok("Deployment:apps/v1:myapp")
        );
        let selected = parse_subject("Deployment:apps/v1:app=a,tier=web", "team");
        assert_eq!(
            selected.as_ref().map(subject_text).as_deref(),
            Ok("Deployment:apps/v1:app=a,tier=web")
        );
        for bad in [
            "Deployment:apps/v1",
            "Deployment::x",
            "D:a/b/c:x",
            "D:v1:a=b,c",
        ] {
            assert!(parse_subject(bad, "default").is_err(), "{bad}");
        }
    }

    #[test]
    fn builds_bindings() {
        let mut b = SinkBinding::new("default", "bind");
        let subject = parse_subject("Service:serving.knative.dev/v1:hello", "default").ok();
        let sink = Destination::reference("eventing.knative.dev/v1", "Broker", "default");
        assert_eq!(
            edit_binding(&mut b, subject, Some(sink), &["team=blue".to_string()]),
            Ok(())
        );
        assert_eq!(
            binding_row(&b, SystemTime::UNIX_EPOCH)[..3],
            [
                "bind",
                "Service:serving.knative.dev/v1:hello",
                "broker:default"
            ]
            .map(String::from)
        );
        assert_eq!(b.spec.ce_overrides.map(|o| o.extensions.len()), Some(1));
    }
}
