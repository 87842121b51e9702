//! `wisp source container create|update|list|describe|delete`: kn's `source container`
//! commands, with the container flags kept to what a source needs: image (or a host command,
//! as `service create --cmd` allows), arguments and environment.

use std::time::SystemTime;

use wisp_api::core::{Container, EnvVar};
use wisp_api::eventing::{ContainerSource, Destination};
use wisp_api::kinds;

use super::CeOverrideArgs;
use crate::cmd_revision::{conditions_value, non_ready_reason};
use crate::describe_eventing::{self, ready_status};
use crate::eventing_flags::{apply_ce_overrides, key_values};
use crate::object_cmds::{self, DeleteArgs, DescribeArgs, ListArgs};
use crate::sink::{self, sink_text};
use crate::{Ctx, age};

#[derive(Debug, clap::Subcommand)]
pub enum ContainerCommand {
    /// Create a container source.
    Create(CreateArgs),
    /// Update a container source.
    Update(UpdateArgs),
    /// List container sources.
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Show details of a container source.
    Describe(DescribeArgs),
    /// Delete container sources.
    Delete(DeleteArgs),
}

#[derive(Debug, Clone, Default, clap::Args)]
pub struct ContainerFlags {
    /// Image to run.
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// Command to run instead of the image's entrypoint; without --image, the host process
    /// to run. Repeat for the words of the command (replaces the current command).
    #[arg(
        long = "cmd",
        visible_alias = "command",
        value_name = "CMD",
        allow_hyphen_values = true
    )]
    pub cmd: Vec<String>,
    /// Argument to the command; repeat for several (replaces the current arguments).
    #[arg(long = "arg", value_name = "ARG", allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// Environment variable NAME=value; NAME- removes it. Repeatable.
    #[arg(short = 'e', long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    #[command(flatten)]
    pub ce: CeOverrideArgs,
}

impl ContainerFlags {
    fn any(&self) -> bool {
        self.image.is_some()
            || !self.cmd.is_empty()
            || !self.args.is_empty()
            || !self.env.is_empty()
            || !self.ce.ce_override.is_empty()
    }
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Name of the source.
    pub name: String,
    /// Addressable sink for events: ksvc:NAME (or just NAME), broker:NAME, channel:NAME, an
    /// http(s) URL, or KIND:APIVERSION:NAME.
    #[arg(short = 's', long, value_name = "SINK")]
    pub sink: String,
    #[command(flatten)]
    pub flags: ContainerFlags,
}

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// Name of the source.
    pub name: String,
    /// Addressable sink for events (same forms as on create).
    #[arg(short = 's', long, value_name = "SINK")]
    pub sink: Option<String>,
    #[command(flatten)]
    pub flags: ContainerFlags,
}

/// `--env`: set in place (order kept), append new names, remove `NAME-`.
fn edit_env(env: &mut Vec<EnvVar>, items: &[String]) -> Result<(), String> {
    let edits = key_values("--env", items, true)?;
    for (name, value) in &edits.set {
        match env.iter_mut().find(|e| &e.name == name) {
            Some(e) => {
                e.value = value.clone();
                e.value_from = None;
            }
            None => env.push(EnvVar {
                name: name.clone(),
                value: value.clone(),
                value_from: None,
            }),
        }
    }
    env.retain(|e| !edits.remove.contains(&e.name));
    Ok(())
}

/// Applies the flags to a ContainerSource's first container.
pub fn edit_container(
    s: &mut ContainerSource,
    flags: &ContainerFlags,
    sink: Option<Destination>,
) -> Result<(), String> {
    let containers = &mut s.spec.template.spec.containers;
    if containers.is_empty() {
        containers.push(Container::default());
    }
    let c = &mut containers[0];
    if let Some(image) = &flags.image {
        c.image = image.clone();
    }
    if !flags.cmd.is_empty() {
        c.command = flags.cmd.clone();
    }
    if !flags.args.is_empty() {
        c.args = flags.args.clone();
    }
    if !flags.env.is_empty() {
        edit_env(&mut c.env, &flags.env)?;
    }
    if c.image.is_empty() && c.command.is_empty() {
        return Err(
            "a container source needs an image (--image) or a host command (--cmd)".to_string(),
        );
    }
    if let Some(d) = sink {
        s.spec.sink = d;
    }
    apply_ce_overrides(&flags.ce.ce_override, &mut s.spec.ce_overrides)
}

pub async fn run(ctx: &Ctx, cmd: ContainerCommand) -> anyhow::Result<()> {
    let ns = ctx.namespace.clone();
    match cmd {
        ContainerCommand::Create(args) => {
            let mut s = ContainerSource::new(&ns, &args.name);
            edit_container(&mut s, &args.flags, None).map_err(anyhow::Error::msg)?;
            s.spec.sink = sink::resolve(ctx, "--sink", &args.sink).await?;
            object_cmds::create(ctx, &kinds::CONTAINER_SOURCES, &s).await?;
            println!(
                "ContainerSource '{}' created in namespace '{ns}'.",
                args.name
            );
            Ok(())
        }
        ContainerCommand::Update(args) => {
            if !args.flags.any() && args.sink.is_none() {
                anyhow::bail!("flag(s) not set\nUsage: wisp source container update NAME [flags]");
            }
            let sink = sink::resolve_opt(ctx, "--sink", args.sink.as_deref()).await?;
            object_cmds::update(
                ctx,
                &kinds::CONTAINER_SOURCES,
                &args.name,
                |s: &mut ContainerSource| {
                    edit_container(s, &args.flags, sink.clone()).map_err(anyhow::Error::msg)
                },
            )
            .await?;
            println!(
                "Container source '{}' updated in namespace '{ns}'.",
                args.name
            );
            Ok(())
        }
        ContainerCommand::List(args) => {
            let now = SystemTime::now();
            object_cmds::list(
                ctx,
                &kinds::CONTAINER_SOURCES,
                &args,
                "No Container source found.",
                HEADER,
                |s: &ContainerSource| container_row(s, now),
            )
            .await
        }
        ContainerCommand::Describe(args) => {
            super::describe(
                ctx,
                &kinds::CONTAINER_SOURCES,
                &args,
                |s: &ContainerSource, v| {
                    describe_eventing::describe_container(s, v, SystemTime::now())
                },
            )
            .await
        }
        ContainerCommand::Delete(args) => {
            object_cmds::delete(ctx, &kinds::CONTAINER_SOURCES, &args.names, |name| {
                format!("ContainerSource '{name}' deleted in namespace '{ns}'.")
            })
            .await
        }
    }
}

/// kn's container source table.
pub const HEADER: &[&str] = &[
    "NAME",
    "IMAGE",
    "SINK",
    "AGE",
    "CONDITIONS",
    "READY",
    "REASON",
];

pub fn container_row(s: &ContainerSource, now: SystemTime) -> Vec<String> {
    let conditions = &s.status.conditions;
    let image = s
        .spec
        .template
        .spec
        .containers
        .first()
        .map(|c| {
            if c.image.is_empty() {
                c.command.join(" ")
            } else {
                c.image.clone()
            }
        })
        .unwrap_or_default();
    vec![
        s.metadata.name.clone(),
        image,
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
        let flags = ContainerFlags {
            image: Some("ghcr.io/example/heartbeats".into()),
            args: vec!["--period=5".into()],
            env: vec!["A=1".into(), "B=2".into()],
            ..ContainerFlags::default()
        };
        let mut s = ContainerSource::new("default", "src");
        let sink = Destination::uri("http://x");
        assert_eq!(edit_container(&mut s, &flags, Some(sink)), Ok(()));
        assert_eq!(
            serde_json::to_value(&s.spec).unwrap_or_default(),
            json!({
                "sink": {"uri": "http://x"},
                "template": {"spec": {"containers": [{
                    "image": "ghcr.io/example/heartbeats", "args": ["--period=5"],
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                    "resources": {}
                }]}}
            })
        );
        let update = ContainerFlags {
            env: vec!["A-".into(), "B=3".into(), "C=4".into()],
            ..ContainerFlags::default()
        };
        assert_eq!(edit_container(&mut s, &update, None), Ok(()));
        let env: Vec<String> = s.spec.template.spec.containers[0]
            .env
            .iter()
            .map(|e| format!("{}={}", e.name, e.value))
            .collect();
        assert_eq!(env, ["B=3", "C=4"]);
        assert_eq!(
            container_row(&s, SystemTime::UNIX_EPOCH)[1],
            "ghcr.io/example/heartbeats"
        );

        let host = ContainerFlags {
            cmd: vec!["/usr/bin/heartbeats".into()],
            ..ContainerFlags::default()
        };
        let mut h = ContainerSource::new("default", "h");
        assert_eq!(edit_container(&mut h, &host, None), Ok(()));
        assert_eq!(
            container_row(&h, SystemTime::UNIX_EPOCH)[1],
            "/usr/bin/heartbeats"
        );
        assert_eq!(
            edit_container(
                &mut ContainerSource::default(),
                &ContainerFlags::default(),
                None
            ),
            Err("a container source needs an image (--image) or a host command (--cmd)".into())
        );
    }
}
