//! `wisp broker create|update|list|describe|delete`: kn's `broker` commands.

use std::time::SystemTime;

use wisp_api::eventing::{Broker, Destination, keys};
use wisp_api::kinds;

use crate::cmd_revision::{conditions_value, non_ready_reason};
use crate::describe_eventing::{self, ready_status};
use crate::eventing_flags::DeliveryArgs;
use crate::object_cmds::{self, AddressDescribeArgs, DeleteArgs, ListArgs, from_value};
use crate::{Ctx, age, sink};

#[derive(Debug, clap::Subcommand)]
pub enum BrokerCommand {
    /// Create a broker.
    Create(CreateArgs),
    /// Update a broker's delivery options.
    Update(UpdateArgs),
    /// List brokers.
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Show details of a broker.
    Describe(AddressDescribeArgs),
    /// Delete brokers.
    Delete(DeleteArgs),
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Name of the broker.
    pub name: String,
    /// Broker class like 'MTChannelBasedBroker' (annotation eventing.knative.dev/broker.class;
    /// the server's default class when absent).
    #[arg(long, value_name = "CLASS")]
    pub class: Option<String>,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
}

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// Name of the broker.
    pub name: String,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
}

pub async fn run(ctx: &Ctx, cmd: BrokerCommand) -> anyhow::Result<()> {
    let ns = ctx.namespace.clone();
    match cmd {
        BrokerCommand::Create(args) => {
            let dls = sink::resolve_opt(ctx, "--dl-sink", args.delivery.dl_sink.as_deref()).await?;
            let broker = make_broker(&ns, &args, dls)?;
            object_cmds::create(ctx, &kinds::BROKERS, &broker).await?;
            println!(
                "Broker '{}' successfully created in namespace '{ns}'.",
                args.name
            );
            Ok(())
        }
        BrokerCommand::Update(args) => {
            if !args.delivery.any() {
                anyhow::bail!("flag(s) not set\nUsage: wisp broker update NAME [flags]");
            }
            let dls = sink::resolve_opt(ctx, "--dl-sink", args.delivery.dl_sink.as_deref()).await?;
            object_cmds::update(ctx, &kinds::BROKERS, &args.name, |b: &mut Broker| {
                args.delivery
                    .apply(&mut b.spec.delivery, dls.clone())
                    .map_err(anyhow::Error::msg)
            })
            .await?;
            println!("Broker '{}' updated in namespace '{ns}'.", args.name);
            Ok(())
        }
        BrokerCommand::List(args) => {
            let now = SystemTime::now();
            object_cmds::list(
                ctx,
                &kinds::BROKERS,
                &args,
                "No brokers found.",
                HEADER,
                |b: &Broker| broker_row(b, now),
            )
            .await
        }
        BrokerCommand::Describe(args) => {
            let json = object_cmds::get_json(ctx, &kinds::BROKERS, &args.name).await?;
            if let Some(text) =
                object_cmds::address_describe_output(&json, &kinds::BROKERS, args.output)
            {
                print!("{text}");
                return Ok(());
            }
            let b: Broker = from_value(json, "broker")?;
            print!(
                "{}",
                describe_eventing::describe_broker(&b, args.verbose, SystemTime::now())
            );
            Ok(())
        }
        BrokerCommand::Delete(args) => {
            object_cmds::delete(ctx, &kinds::BROKERS, &args.names, |name| {
                format!("Broker '{name}' successfully deleted in namespace '{ns}'.")
            })
            .await
        }
    }
}

/// The broker `broker create` sends: the class annotation and the delivery flags.
pub fn make_broker(
    namespace: &str,
    args: &CreateArgs,
    dead_letter: Option<Destination>,
) -> anyhow::Result<Broker> {
    let mut b = Broker::new(namespace, &args.name);
    if let Some(class) = &args.class {
        if class.is_empty() {
            anyhow::bail!("Invalid --class \"\": the broker class cannot be empty");
        }
        b.metadata
            .annotations
            .insert(keys::BROKER_CLASS_ANNOTATION.to_string(), class.clone());
    }
    args.delivery
        .apply(&mut b.spec.delivery, dead_letter)
        .map_err(anyhow::Error::msg)?;
    Ok(b)
}

/// kn's broker table.
pub const HEADER: &[&str] = &["NAME", "URL", "AGE", "CONDITIONS", "READY", "REASON"];

pub fn broker_row(b: &Broker, now: SystemTime) -> Vec<String> {
    let conditions = &b.status.conditions;
    vec![
        b.metadata.name.clone(),
        b.status
            .address
            .as_ref()
            .and_then(|a| a.url.clone())
            .unwrap_or_default(),
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
    fn builds_the_broker_from_flags() {
        let args = CreateArgs {
            name: "b".into(),
            class: Some("MTChannelBasedBroker".into()),
            delivery: DeliveryArgs {
                retry: Some(2),
                backoff_policy: Some("linear".into()),
                backoff_delay: Some("PT0.2S".into()),
                ..DeliveryArgs::default()
            },
        };
        let b = make_broker("team", &args, Some(Destination::uri("http://dead")))
            .map(|b| serde_json::to_value(b).unwrap_or_default())
            .ok();
        assert_eq!(
            b,
            Some(json!({
                "apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
                "metadata": {"name": "b", "namespace": "team",
                             "annotations": {"eventing.knative.dev/broker.class": "MTChannelBasedBroker"}},
                "spec": {"delivery": {"deadLetterSink": {"uri": "http://dead"}, "retry": 2,
                                      "backoffPolicy": "linear", "backoffDelay": "PT0.2S"}}
            }))
        );
        // No flags: no annotation (the server defaults the class) and no delivery.
        let plain = CreateArgs {
            name: "default".into(),
            class: None,
            delivery: DeliveryArgs::default(),
        };
        let b = make_broker("default", &plain, None).unwrap_or_default();
        assert!(b.metadata.annotations.is_empty() && b.spec.delivery.is_none());
    }

    #[test]
    fn rows_like_kn() {
        let b: Broker = serde_json::from_value(json!({
            "metadata": {"name": "default", "namespace": "default", "creationTimestamp": "2026-01-02T03:04:05Z"},
            "status": {"address": {"url": "http://127.0.0.1:8081/default/default"},
                       "conditions": [{"type": "Ready", "status": "True"}, {"type": "Addressable", "status": "True"}]}
        }))
        .unwrap_or_default();
        let now = age::parse_timestamp("2026-01-02T03:05:05Z").unwrap_or(SystemTime::UNIX_EPOCH);
        let rows = vec![("default".to_string(), broker_row(&b, now))];
        assert_eq!(
            object_cmds::table(HEADER, rows, false, false),
            "NAME      URL                                     AGE   CONDITIONS   READY   REASON\n\
             default   http://127.0.0.1:8081/default/default   60s   2 OK / 2     True\n"
        );
        let empty = broker_row(&Broker::new("default", "x"), now);
        assert_eq!(
            empty[3..],
            ["0 OK / 0", "<unknown>", "<unknown>"].map(String::from)
        );
    }
}
