//! `wisp subscription create|update|list|describe|delete`: kn's `subscription` commands.

use std::time::SystemTime;

use wisp_api::eventing::{Channel, messaging};
use wisp_api::eventing::{Destination, InMemoryChannel, KReference, Subscription};
use wisp_api::kinds;

use crate::Ctx;
use crate::cmd_revision::non_ready_reason;
use crate::describe_eventing::{self, ready_status};
use crate::object_cmds::{self, DeleteArgs, DescribeArgs, ListArgs, from_value};
use crate::sink::{self, sink_text};

#[derive(Debug, clap::Subcommand)]
pub enum SubscriptionCommand {
    /// Create a subscription.
    Create(CreateArgs),
    /// Update a subscription.
    Update(UpdateArgs),
    /// List subscriptions.
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Show details of a subscription.
    Describe(DescribeArgs),
    /// Delete subscriptions.
    Delete(DeleteArgs),
}

/// The sink flags of `create` and `update`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SinkArgs {
    /// The subscriber: ksvc:NAME (or just NAME), broker:NAME, channel:NAME, an http(s) URL,
    /// or KIND:APIVERSION:NAME.
    #[arg(short = 's', long, value_name = "SINK")]
    pub sink: Option<String>,
    /// Where the subscriber's replies go (same forms as --sink).
    #[arg(long = "sink-reply", value_name = "SINK")]
    pub sink_reply: Option<String>,
    /// Where events go that could not be delivered (same forms as --sink).
    #[arg(long = "sink-dead-letter", value_name = "SINK")]
    pub sink_dead_letter: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Name of the subscription.
    pub name: String,
    /// The channel to subscribe to: NAME (a Channel), imc:NAME (an InMemoryChannel), or
    /// Group:Version:Kind:Name (messaging.knative.dev:v1:InMemoryChannel:pipe).
    #[arg(long, value_name = "CHANNEL")]
    pub channel: String,
    #[command(flatten)]
    pub sinks: SinkArgs,
}

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// Name of the subscription.
    pub name: String,
    #[command(flatten)]
    pub sinks: SinkArgs,
}

/// kn's `--channel` (`ChannelRef.Parse`), plus `channel:NAME` and `apiVersion:Kind:Name`.
pub fn parse_channel_ref(text: &str) -> Result<KReference, String> {
    let bad = || {
        format!(
            "Invalid --channel {text:?}: want NAME, imc:NAME or Group:Version:Kind:Name (messaging.knative.dev:v1:InMemoryChannel:pipe)"
        )
    };
    let parts: Vec<&str> = text.split(':').collect();
    let (api_version, kind, name) = match parts.as_slice() {
        [name] => (messaging::API_VERSION.to_string(), Channel::KIND, *name),
        ["imc", name] => (
            messaging::API_VERSION.to_string(),
            InMemoryChannel::KIND,
            *name,
        ),
        ["channel", name] => (messaging::API_VERSION.to_string(), Channel::KIND, *name),
        [api_version, kind, name] if api_version.contains('/') && !kind.is_empty() => {
            (api_version.to_string(), *kind, *name)
        }
        [group, version, kind, name]
            if !group.is_empty() && !version.is_empty() && !kind.is_empty() =>
        {
            (format!("{group}/{version}"), *kind, *name)
        }
        _ => return Err(bad()),
    };
    if name.is_empty() {
        return Err(bad());
    }
    Ok(KReference {
        kind: kind.to_string(),
        name: name.to_string(),
        api_version,
        ..KReference::default()
    })
}

/// The three sinks, resolved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resolved {
    pub subscriber: Option<Destination>,
    pub reply: Option<Destination>,
    pub dead_letter: Option<Destination>,
}

/// Applies resolved sinks to a subscription; absent ones are kept.
pub fn edit_subscription(s: &mut Subscription, sinks: Resolved) {
    if let Some(d) = sinks.subscriber {
        s.spec.subscriber = Some(d);
    }
    if let Some(d) = sinks.reply {
        s.spec.reply = Some(d);
    }
    if let Some(d) = sinks.dead_letter {
        s.spec
            .delivery
            .get_or_insert_with(Default::default)
            .dead_letter_sink = Some(d);
    }
}

pub fn make_subscription(
    namespace: &str,
    args: &CreateArgs,
    sinks: Resolved,
) -> Result<Subscription, String> {
    let mut s = Subscription::new(namespace, &args.name);
    s.spec.channel = parse_channel_ref(&args.channel)?;
    edit_subscription(&mut s, sinks);
    Ok(s)
}

async fn resolve(ctx: &Ctx, args: &SinkArgs) -> anyhow::Result<Resolved> {
    Ok(Resolved {
        subscriber: sink::resolve_opt(ctx, "--sink", args.sink.as_deref()).await?,
        reply: sink::resolve_opt(ctx, "--sink-reply", args.sink_reply.as_deref()).await?,
        dead_letter: sink::resolve_opt(ctx, "--sink-dead-letter", args.sink_dead_letter.as_deref())
            .await?,
    })
}

pub async fn run(ctx: &Ctx, cmd: SubscriptionCommand) -> anyhow::Result<()> {
    let ns = ctx.namespace.clone();
    match cmd {
        SubscriptionCommand::Create(args) => {
            // Flags before I/O: a malformed --channel fails without a round trip.
            parse_channel_ref(&args.channel).map_err(anyhow::Error::msg)?;
            let sinks = resolve(ctx, &args.sinks).await?;
            let sub = make_subscription(&ns, &args, sinks).map_err(anyhow::Error::msg)?;
            object_cmds::create(ctx, &kinds::SUBSCRIPTIONS, &sub).await?;
            println!("Subscription '{}' created in namespace '{ns}'.", args.name);
            Ok(())
        }
        SubscriptionCommand::Update(args) => {
            let s = &args.sinks;
            if s.sink.is_none() && s.sink_reply.is_none() && s.sink_dead_letter.is_none() {
                anyhow::bail!("flag(s) not set\nUsage: wisp subscription update NAME [flags]");
            }
            let sinks = resolve(ctx, s).await?;
            object_cmds::update(
                ctx,
                &kinds::SUBSCRIPTIONS,
                &args.name,
                |sub: &mut Subscription| {
                    edit_subscription(sub, sinks.clone());
                    Ok(())
                },
            )
            .await?;
            println!("Subscription '{}' updated in namespace '{ns}'.", args.name);
            Ok(())
        }
        SubscriptionCommand::List(args) => {
            object_cmds::list(
                ctx,
                &kinds::SUBSCRIPTIONS,
                &args,
                "No subscriptions found.",
                HEADER,
                subscription_row,
            )
            .await
        }
        SubscriptionCommand::Describe(args) => {
            let json = object_cmds::get_json(ctx, &kinds::SUBSCRIPTIONS, &args.name).await?;
            if let Some(text) =
                object_cmds::describe_output(&json, &kinds::SUBSCRIPTIONS, args.output)
            {
                print!("{text}");
                return Ok(());
            }
            let s: Subscription = from_value(json, "subscription")?;
            print!(
                "{}",
                describe_eventing::describe_subscription(&s, args.verbose, SystemTime::now())
            );
            Ok(())
        }
        SubscriptionCommand::Delete(args) => {
            object_cmds::delete(ctx, &kinds::SUBSCRIPTIONS, &args.names, |name| {
                format!("Subscription '{name}' deleted in namespace '{ns}'.")
            })
            .await
        }
    }
}

/// kn's subscription table.
pub const HEADER: &[&str] = &[
    "NAME",
    "CHANNEL",
    "SUBSCRIBER",
    "REPLY",
    "DEAD LETTER SINK",
    "READY",
    "REASON",
];

pub fn subscription_row(s: &Subscription) -> Vec<String> {
    let ns = &s.metadata.namespace;
    let text = |d: Option<&Destination>| d.map(|d| sink_text(d, ns)).unwrap_or_default();
    let conditions = &s.status.conditions;
    vec![
        s.metadata.name.clone(),
        format!("{}:{}", s.spec.channel.kind, s.spec.channel.name),
        text(s.spec.subscriber.as_ref()),
        text(s.spec.reply.as_ref()),
        text(
            s.spec
                .delivery
                .as_ref()
                .and_then(|d| d.dead_letter_sink.as_ref()),
        ),
        ready_status(conditions),
        non_ready_reason(conditions),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn channel_refs() {
        let table: &[(&str, (&str, &str, &str))] = &[
            ("pipe", ("messaging.knative.dev/v1", "Channel", "pipe")),
            (
                "channel:pipe",
                ("messaging.knative.dev/v1", "Channel", "pipe"),
            ),
            (
                "imc:pipe",
                ("messaging.knative.dev/v1", "InMemoryChannel", "pipe"),
            ),
            (
                "messaging.knative.dev:v1beta1:KafkaChannel:k1",
                ("messaging.knative.dev/v1beta1", "KafkaChannel", "k1"),
            ),
            (
                "messaging.knative.dev/v1:InMemoryChannel:p",
                ("messaging.knative.dev/v1", "InMemoryChannel", "p"),
            ),
        ];
        for (input, (av, kind, name)) in table {
            let got = parse_channel_ref(input).map(|r| (r.api_version, r.kind, r.name));
            assert_eq!(
                got,
                Ok((av.to_string(), kind.to_string(), name.to_string())),
                "{input}"
            );
        }
        for bad in ["", "kafka:k", "imc:", "a:b:c:d:e"] {
            assert!(parse_channel_ref(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn builds_and_edits_subscriptions() {
        let args = CreateArgs {
            name: "sub0".into(),
            channel: "pipe".into(),
            sinks: SinkArgs::default(),
        };
        let sinks = Resolved {
            subscriber: Some(Destination::reference(
                "serving.knative.dev/v1",
                "Service",
                "receiver",
            )),
            reply: Some(Destination::reference(
                "eventing.knative.dev/v1",
                "Broker",
                "nest",
            )),
            dead_letter: Some(Destination::uri("http://dead")),
        };
        let s = make_subscription("default", &args, sinks).unwrap_or_default();
        assert_eq!(
            serde_json::to_value(&s.spec).unwrap_or_default(),
            json!({
                "channel": {"kind": "Channel", "name": "pipe", "apiVersion": "messaging.knative.dev/v1"},
                "subscriber": {"ref": {"kind": "Service", "name": "receiver", "apiVersion": "serving.knative.dev/v1"}},
                "reply": {"ref": {"kind": "Broker", "name": "nest", "apiVersion": "eventing.knative.dev/v1"}},
                "delivery": {"deadLetterSink": {"uri": "http://dead"}}
            })
        );
        assert_eq!(
            subscription_row(&s),
            [
                "sub0",
                "Channel:pipe",
                "ksvc:receiver",
                "broker:nest",
                "http://dead",
                "<unknown>",
                "<unknown>"
            ]
            .map(String::from)
        );
        let mut edited = s.clone();
        edit_subscription(
            &mut edited,
            Resolved {
                subscriber: Some(Destination::uri("http://new")),
                ..Resolved::default()
            },
        );
        assert_eq!(edited.spec.subscriber, Some(Destination::uri("http://new")));
        assert_eq!(edited.spec.reply, s.spec.reply);
        assert_eq!(edited.spec.delivery, s.spec.delivery);
    }
}
