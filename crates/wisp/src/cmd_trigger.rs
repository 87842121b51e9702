//! `wisp trigger create|update|list|describe|delete`: kn's `trigger` commands, plus two wisp
//! flags: `--filter-cesql EXPR` (an element `{cesql: EXPR}` of `spec.filters`, Knative's
//! Subscriptions API filters) and `--ordered` (the `kafka.eventing.knative.dev/delivery.order`
//! annotation, which asks for one event at a time, in order).
//!
//! Flags become a trigger through one pure edit ([`edit_trigger`]) that `create` applies to
//! an empty trigger and `update` to the stored one, as kn's builders do.

use std::time::SystemTime;

use wisp_api::eventing::{Destination, SubscriptionsApiFilter, Trigger, TriggerFilter};
use wisp_api::kinds;

use crate::cmd_revision::{conditions_value, non_ready_reason};
use crate::describe_eventing::{self, ready_status};
use crate::eventing_flags::{DeliveryArgs, key_values};
use crate::object_cmds::{self, DeleteArgs, DescribeArgs, ListArgs, from_value};
use crate::sink::{self, sink_text};
use crate::{Ctx, age};

/// Knative Kafka's per-trigger delivery order annotation: `ordered` or `unordered`.
pub const DELIVERY_ORDER_ANNOTATION: &str = "kafka.eventing.knative.dev/delivery.order";

#[derive(Debug, clap::Subcommand)]
pub enum TriggerCommand {
    /// Create a trigger.
    Create(CreateArgs),
    /// Update a trigger.
    Update(UpdateArgs),
    /// List triggers.
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Show details of a trigger.
    Describe(DescribeArgs),
    /// Delete triggers.
    Delete(DeleteArgs),
}

/// The flags `create` and `update` share.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TriggerFlags {
    /// Key-value pair for exact CloudEvent attribute matching against incoming events, e.g.
    /// type=dev.knative.foo; comma-separated or repeated. On update, KEY- removes a key.
    #[arg(long = "filter", value_name = "KEY=VALUE", value_delimiter = ',')]
    pub filter: Vec<String>,
    /// A CESQL expression events must match, stored as spec.filters: [{cesql: EXPR}];
    /// repeatable (all must match). On update it replaces the CESQL filters; '' removes them.
    #[arg(long = "filter-cesql", value_name = "EXPR")]
    pub filter_cesql: Vec<String>,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Name of the trigger.
    pub name: String,
    /// Name of the Broker which the trigger associates with.
    #[arg(long, default_value = "default", value_name = "BROKER")]
    pub broker: String,
    /// Addressable sink for events: ksvc:NAME (or just NAME), broker:NAME, channel:NAME, an
    /// http(s) URL, or KIND:APIVERSION:NAME; PREFIX:NAME:NAMESPACE for another namespace.
    #[arg(short = 's', long, value_name = "SINK")]
    pub sink: String,
    #[command(flatten)]
    pub flags: TriggerFlags,
    /// Deliver events one at a time, in order (annotation
    /// kafka.eventing.knative.dev/delivery.order: ordered).
    #[arg(long)]
    pub ordered: bool,
}

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// Name of the trigger.
    pub name: String,
    /// Addressable sink for events (same forms as on create).
    #[arg(short = 's', long, value_name = "SINK")]
    pub sink: Option<String>,
    #[command(flatten)]
    pub flags: TriggerFlags,
    /// Deliver events one at a time, in order.
    #[arg(long, conflicts_with = "unordered")]
    pub ordered: bool,
    /// Deliver events concurrently (delivery.order: unordered).
    #[arg(long)]
    pub unordered: bool,
}

/// What one `create` or `update` changes, with sinks already resolved.
#[derive(Debug, Clone)]
pub struct TriggerEdit<'a> {
    pub flags: &'a TriggerFlags,
    /// `update` (KEY- removes filters, CESQL filters are replaced) rather than `create`.
    pub update: bool,
    pub subscriber: Option<Destination>,
    pub dead_letter: Option<Destination>,
    /// `ordered` or `unordered`.
    pub delivery_order: Option<&'static str>,
}

fn is_cesql_only(f: &SubscriptionsApiFilter) -> bool {
    f.dialects() == ["cesql"]
}

/// Applies flags to a trigger. Returns warnings for the user.
pub fn edit_trigger(t: &mut Trigger, edit: &TriggerEdit<'_>) -> Result<Vec<String>, String> {
    let flags = edit.flags;
    if !flags.filter.is_empty() {
        let edits = key_values("--filter", &flags.filter, edit.update)?;
        let mut attributes = t.spec.filter.take().unwrap_or_default().attributes;
        edits.apply(&mut attributes);
        t.spec.filter = Some(TriggerFilter { attributes });
    }
    if !flags.filter_cesql.is_empty() {
        if edit.update {
            t.spec.filters.retain(|f| !is_cesql_only(f));
        } else if flags.filter_cesql.iter().any(|e| e.trim().is_empty()) {
            return Err("Invalid --filter-cesql \"\": the expression is empty".to_string());
        }
        for expr in flags.filter_cesql.iter().filter(|e| !e.trim().is_empty()) {
            t.spec.filters.push(SubscriptionsApiFilter {
                cesql: expr.clone(),
                ..SubscriptionsApiFilter::default()
            });
        }
    }
    if let Some(s) = &edit.subscriber {
        t.spec.subscriber = s.clone();
    }
    flags
        .delivery
        .apply(&mut t.spec.delivery, edit.dead_letter.clone())?;
    if let Some(order) = edit.delivery_order {
        t.metadata
            .annotations
            .insert(DELIVERY_ORDER_ANNOTATION.to_string(), order.to_string());
    }
    let mut warnings = Vec::new();
    let has_attributes = t
        .spec
        .filter
        .as_ref()
        .is_some_and(|f| !f.attributes.is_empty());
    if has_attributes && !t.spec.filters.is_empty() {
        warnings.push(format!(
            "Warning: trigger '{}' has both --filter attributes (spec.filter) and spec.filters: \
             Knative ignores spec.filter when spec.filters is set, so only spec.filters applies.",
            t.metadata.name
        ));
    }
    Ok(warnings)
}

/// The trigger `trigger create` sends.
pub fn make_trigger(
    namespace: &str,
    args: &CreateArgs,
    subscriber: Destination,
    dead_letter: Option<Destination>,
) -> Result<(Trigger, Vec<String>), String> {
    let mut t = Trigger::new(namespace, &args.name);
    if args.broker.is_empty() {
        return Err("Invalid --broker \"\": the broker name cannot be empty".to_string());
    }
    t.spec.broker = args.broker.clone();
    let edit = TriggerEdit {
        flags: &args.flags,
        update: false,
        subscriber: Some(subscriber),
        dead_letter,
        delivery_order: args.ordered.then_some("ordered"),
    };
    let warnings = edit_trigger(&mut t, &edit)?;
    Ok((t, warnings))
}

pub async fn run(ctx: &Ctx, cmd: TriggerCommand) -> anyhow::Result<()> {
    let ns = ctx.namespace.clone();
    match cmd {
        TriggerCommand::Create(args) => {
            let subscriber = sink::resolve(ctx, "--sink", &args.sink).await?;
            let dls =
                sink::resolve_opt(ctx, "--dl-sink", args.flags.delivery.dl_sink.as_deref()).await?;
            let (trigger, warnings) =
                make_trigger(&ns, &args, subscriber, dls).map_err(anyhow::Error::msg)?;
            object_cmds::create(ctx, &kinds::TRIGGERS, &trigger).await?;
            for w in warnings {
                eprintln!("{w}");
            }
            println!(
                "Trigger '{}' successfully created in namespace '{ns}'.",
                args.name
            );
            Ok(())
        }
        TriggerCommand::Update(args) => {
            let f = &args.flags;
            if f.filter.is_empty()
                && f.filter_cesql.is_empty()
                && !f.delivery.any()
                && args.sink.is_none()
                && !args.ordered
                && !args.unordered
            {
                anyhow::bail!("flag(s) not set\nUsage: wisp trigger update NAME [flags]");
            }
            let subscriber = sink::resolve_opt(ctx, "--sink", args.sink.as_deref()).await?;
            let dls = sink::resolve_opt(ctx, "--dl-sink", f.delivery.dl_sink.as_deref()).await?;
            let order = if args.ordered {
                Some("ordered")
            } else if args.unordered {
                Some("unordered")
            } else {
                None
            };
            let edit = TriggerEdit {
                flags: f,
                update: true,
                subscriber,
                dead_letter: dls,
                delivery_order: order,
            };
            let mut warnings = Vec::new();
            object_cmds::update(ctx, &kinds::TRIGGERS, &args.name, |t: &mut Trigger| {
                warnings = edit_trigger(t, &edit).map_err(anyhow::Error::msg)?;
                Ok(())
            })
            .await?;
            for w in warnings {
                eprintln!("{w}");
            }
            println!("Trigger '{}' updated in namespace '{ns}'.", args.name);
            Ok(())
        }
        TriggerCommand::List(args) => {
            let now = SystemTime::now();
            object_cmds::list(
                ctx,
                &kinds::TRIGGERS,
                &args,
                "No triggers found.",
                HEADER,
                |t: &Trigger| trigger_row(t, now),
            )
            .await
        }
        TriggerCommand::Describe(args) => {
            let json = object_cmds::get_json(ctx, &kinds::TRIGGERS, &args.name).await?;
            if let Some(text) = object_cmds::describe_output(&json, &kinds::TRIGGERS, args.output) {
                print!("{text}");
                return Ok(());
            }
            let t: Trigger = from_value(json, "trigger")?;
            print!(
                "{}",
                describe_eventing::describe_trigger(&t, args.verbose, SystemTime::now())
            );
            Ok(())
        }
        TriggerCommand::Delete(args) => {
            object_cmds::delete(ctx, &kinds::TRIGGERS, &args.names, |name| {
                format!("Trigger '{name}' deleted in namespace '{ns}'.")
            })
            .await
        }
    }
}

/// kn's trigger table.
pub const HEADER: &[&str] = &[
    "NAME",
    "BROKER",
    "SINK",
    "AGE",
    "CONDITIONS",
    "READY",
    "REASON",
];

pub fn trigger_row(t: &Trigger, now: SystemTime) -> Vec<String> {
    let conditions = &t.status.conditions;
    vec![
        t.metadata.name.clone(),
        t.spec.broker.clone(),
        sink_text(&t.spec.subscriber, &t.metadata.namespace),
        age::table_age(t.metadata.creation_timestamp.as_deref(), now),
        conditions_value(conditions),
        ready_status(conditions),
        non_ready_reason(conditions),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::json;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: TriggerCommand,
    }

    fn parse(args: &[&str]) -> TriggerCommand {
        let mut all = vec!["trigger"];
        all.extend_from_slice(args);
        match Cli::try_parse_from(all) {
            Ok(c) => c.cmd,
            Err(e) => panic!("{e}"),
        }
    }

    fn ksvc(name: &str) -> Destination {
        crate::sink::parse("--sink", name)
            .map(|s| s.destination("default"))
            .unwrap_or_default()
    }

    #[test]
    fn create_builds_kns_trigger() {
        let TriggerCommand::Create(args) = parse(&[
            "create",
            "t1",
            "--sink",
            "ksvc:hello",
            "--filter",
            "type=dev.example,source=/src",
            "--filter-cesql",
            "type LIKE 'dev.%'",
            "--ordered",
            "--retry",
            "3",
        ]) else {
            panic!("not a create")
        };
        let (t, warnings) = make_trigger("default", &args, ksvc("ksvc:hello"), None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            serde_json::to_value(&t).unwrap_or_default(),
            json!({
                "apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
                "metadata": {"name": "t1", "namespace": "default",
                             "annotations": {"kafka.eventing.knative.dev/delivery.order": "ordered"}},
                "spec": {
                    "broker": "default",
                    "filter": {"attributes": {"source": "/src", "type": "dev.example"}},
                    "filters": [{"cesql": "type LIKE 'dev.%'"}],
                    "subscriber": {"ref": {"kind": "Service", "namespace": "default", "name": "hello",
                                           "apiVersion": "serving.knative.dev/v1"}},
                    "delivery": {"retry": 3}
                }
            })
        );
        assert_eq!(warnings.len(), 1, "{warnings:?}");

        // The default broker, no filter at all.
        let TriggerCommand::Create(args) = parse(&["create", "t2", "-s", "http://x.example"])
        else {
            panic!("not a create")
        };
        let (t, warnings) =
            make_trigger("default", &args, Destination::uri("http://x.example"), None)
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.spec.broker, "default");
        assert_eq!(t.spec.filter, None);
        assert!(t.spec.filters.is_empty() && t.metadata.annotations.is_empty());
        assert!(warnings.is_empty());
    }

    #[test]
    fn create_refuses_bad_flags() {
        for (argv, want) in [
            (
                vec!["create", "t", "-s", "x", "--filter", "type"],
                "Invalid --filter \"type\": want KEY=VALUE (the \"=\" is missing)",
            ),
            (
                vec!["create", "t", "-s", "x", "--filter-cesql", ""],
                "Invalid --filter-cesql \"\": the expression is empty",
            ),
            (
                vec!["create", "t", "-s", "x", "--broker", ""],
                "Invalid --broker \"\": the broker name cannot be empty",
            ),
            (
                vec!["create", "t", "-s", "x", "--backoff-delay", "1s"],
                "Invalid --backoff-delay \"1s\": want an ISO-8601 duration such as PT5S (\"1s\": expected 'P' period mark at the start)",
            ),
        ] {
            let TriggerCommand::Create(args) = parse(&argv) else {
                panic!("not a create")
            };
            let got = make_trigger("default", &args, ksvc("x"), None).err();
            assert_eq!(got.as_deref(), Some(want), "{argv:?}");
        }
        // --sink is required on create, as in kn.
        assert!(Cli::try_parse_from(["trigger", "create", "t"]).is_err());
    }

    #[test]
    fn update_adds_and_removes_filters() {
        let mut t: Trigger = serde_json::from_value(json!({
            "metadata": {"name": "t1", "namespace": "default"},
            "spec": {"broker": "default",
                     "filter": {"attributes": {"type": "old", "source": "s"}},
                     "filters": [{"cesql": "a = 'b'"}, {"exact": {"x": "y"}}],
                     "subscriber": {"uri": "http://x"}}
        }))
        .unwrap_or_default();
        let TriggerCommand::Update(args) = parse(&[
            "update",
            "t1",
            "--filter",
            "type=new",
            "--filter",
            "source-",
            "--filter",
            "any",
            "--filter-cesql",
            "c = 'd'",
            "--unordered",
        ]) else {
            panic!("not an update")
        };
        let edit = TriggerEdit {
            flags: &args.flags,
            update: true,
            subscriber: Some(ksvc("ksvc:other")),
            dead_letter: None,
            delivery_order: Some("unordered"),
        };
        let warnings = edit_trigger(&mut t, &edit).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            serde_json::to_value(&t.spec).unwrap_or_default(),
            json!({
                "broker": "default",
                "filter": {"attributes": {"any": "", "type": "new"}},
                "filters": [{"exact": {"x": "y"}}, {"cesql": "c = 'd'"}],
                "subscriber": {"ref": {"kind": "Service", "namespace": "default", "name": "other",
                                       "apiVersion": "serving.knative.dev/v1"}}
            })
        );
        assert_eq!(
            t.metadata
                .annotations
                .get(DELIVERY_ORDER_ANNOTATION)
                .map(String::as_str),
            Some("unordered")
        );
        assert_eq!(warnings.len(), 1);

        // '' removes the CESQL filters; removing every attribute leaves an empty filter.
        let flags = TriggerFlags {
            filter: vec!["type-".into(), "any-".into()],
            filter_cesql: vec![String::new()],
            ..TriggerFlags::default()
        };
        let edit = TriggerEdit {
            flags: &flags,
            update: true,
            subscriber: None,
            dead_letter: None,
            delivery_order: None,
        };
        let warnings = edit_trigger(&mut t, &edit).unwrap_or_else(|e| panic!("{e}"));
        assert!(warnings.is_empty());
        assert_eq!(t.spec.filter, Some(TriggerFilter::default()));
        assert_eq!(t.spec.filters.len(), 1);
        assert_eq!(t.spec.delivery, None);
        // --broker is immutable: update has no such flag, as in kn.
        assert!(Cli::try_parse_from(["trigger", "update", "t", "--broker", "b"]).is_err());
        assert!(
            Cli::try_parse_from(["trigger", "update", "t", "--ordered", "--unordered"]).is_err()
        );
    }

    #[test]
    fn rows_like_kn() {
        let t: Trigger = serde_json::from_value(json!({
            "metadata": {"name": "t1", "namespace": "default", "creationTimestamp": "2026-01-02T03:04:05Z"},
            "spec": {"broker": "default",
                     "subscriber": {"ref": {"kind": "Service", "namespace": "default", "name": "hello",
                                            "apiVersion": "serving.knative.dev/v1"}}},
            "status": {"conditions": [
                {"type": "BrokerReady", "status": "True"},
                {"type": "Ready", "status": "False", "reason": "SubscriberResolveFailed", "message": "no URL"}
            ]}
        }))
        .unwrap_or_default();
        let now = age::parse_timestamp("2026-01-02T03:14:05Z").unwrap_or(SystemTime::UNIX_EPOCH);
        let got = object_cmds::table(
            HEADER,
            vec![("default".into(), trigger_row(&t, now))],
            false,
            false,
        );
        assert_eq!(
            got,
            "NAME   BROKER    SINK         AGE   CONDITIONS   READY   REASON\n\
             t1     default   ksvc:hello   10m   1 OK / 2     False   SubscriberResolveFailed : no URL\n"
        );
    }
}
