//! Knative Eventing's webhook for the eleven Eventing kinds: defaults, then validation, then
//! the update rules, each collecting every error with its field path.
//!
//! Why these rules: they are knative/eventing `pkg/apis/{eventing,messaging,flows,sources}/
//! v1/*_defaults.go` and `*_validation.go` (plus knative.dev/pkg's duck validators, see
//! `duck.rs`), so that a manifest Knative accepts is accepted here and one it refuses is
//! refused with the same message. Where Knative's code is lax in a way that loses or
//! misroutes events, wisp is stricter, and says so at the rule:
//! - a reference next to a relative URI is still checked (Knative skips it);
//! - every trigger filter element needs exactly one dialect (Knative accepts `{}`, and its
//!   dispatcher then skips the element, matching everything); `exact`/`prefix`/`suffix` hold
//!   exactly one attribute, as the Subscriptions API says (Knative's webhook accepts several),
//!   with a non-empty value (Knative's dispatcher silently drops such a filter);
//! - negative `backoffDelay` is refused; an ApiServerSource resource needs an `apiVersion`;
//! - delivery options are checked on InMemoryChannels too; Sequence steps and Parallel
//!   branches report the exact nested field, not the whole array element;
//! - every reference without a namespace gets the object's namespace (Knative's Sequence
//!   defaulting loses it on a copy; PingSource and ContainerSource skip it).
//!
//! What wisp leaves out: Knative's check that only the eventing controller's service account
//! may edit an InMemoryChannel's subscribers (wisp's controllers write through the store, not
//! admission), and the cross-namespace features (off by default in Knative). Status is never
//! validated beyond its shape; the store keeps the stored status on spec updates and the
//! `/status` subresource bypasses admission, as for Serving kinds.

mod cron;
mod duck;
mod sources;

pub use sources::{DEFAULT_PING_SCHEDULE, DEFAULT_SERVICE_ACCOUNT};
pub(super) use sources::{
    admit_api_server_source, admit_container_source, admit_ping_source, admit_sink_binding,
};

use std::collections::BTreeMap;

use serde_json::Value;

use self::duck::Parent;
use super::{AdmissionContext, AdmissionError, core_name, decode, decode_old, encode};
use crate::eventing::keys;
use crate::eventing::{
    Broker, Channel, ChannelTemplateSpec, InMemoryChannel, Parallel, Sequence, Subscription,
    Trigger, TriggerFilter,
};
use crate::meta::ObjectMeta;
use crate::naming;
use crate::validation::{FieldErrors, Reason};

/// Object-level name checks every Eventing kind gets (Kubernetes' rule for custom resources:
/// a DNS-1123 subdomain).
fn metadata(meta: &ObjectMeta) -> FieldErrors {
    core_name(meta, naming::name_is_dns1123_subdomain)
}

fn same_namespace(meta: &ObjectMeta) -> Parent<'_> {
    Parent {
        namespace: &meta.namespace,
        allow_different_namespace: false,
    }
}

/// `Immutable fields changed (-old +new)` at `path`, when `old` and `new` differ.
fn immutable(old: Value, new: Value, path: &str) -> FieldErrors {
    if old == new {
        return FieldErrors::new();
    }
    FieldErrors::generic_details(
        Reason::FieldValueForbidden,
        "Immutable fields changed (-old +new)",
        &super::rules::short_diff(&old, &new),
        &[path],
    )
}

/// `-"old" +"new"` (`<none>` for absent), the details of a changed immutable string.
fn scalar_diff(old: Option<&str>, new: Option<&str>) -> String {
    let show = |v: Option<&str>| v.map_or_else(|| "<none>".to_string(), |v| format!("{v:?}"));
    format!("-{} +{}", show(old), show(new))
}

/// Adds `key: value` to the annotations unless the key is present.
fn default_annotation(meta: &mut ObjectMeta, key: &str, value: &str) {
    meta.annotations
        .entry(key.to_string())
        .or_insert_with(|| value.to_string());
}

fn channel_template(t: &Option<ChannelTemplateSpec>) -> FieldErrors {
    let Some(t) = t else {
        return FieldErrors::missing(&["channelTemplate"]);
    };
    let mut missing = Vec::new();
    if t.api_version.is_empty() {
        missing.push("channelTemplate.apiVersion");
    }
    if t.kind.is_empty() {
        missing.push("channelTemplate.kind");
    }
    if missing.is_empty() {
        FieldErrors::new()
    } else {
        FieldErrors::missing(&missing)
    }
}

fn finish<T: serde::Serialize>(
    obj: &T,
    mut errs: FieldErrors,
    unknown: FieldErrors,
) -> Result<Value, AdmissionError> {
    errs.also(unknown);
    errs.into_result()?;
    encode(obj)
}

// ----------------------------------------------------------------- Broker

/// `broker_defaults.go`, `broker_validation.go`.
pub(super) fn admit_broker(
    old: Option<&Value>,
    new: Value,
    ctx: &AdmissionContext,
) -> Result<Value, AdmissionError> {
    let cfg = &ctx.config.eventing;
    let (mut b, unknown): (Broker, _) = decode(new)?;
    let old: Option<Broker> = decode_old(old)?;
    let ns = b.metadata.namespace.clone();

    default_annotation(
        &mut b.metadata,
        keys::BROKER_CLASS_ANNOTATION,
        &cfg.default_broker_class,
    );
    if b.spec.config.is_none() {
        b.spec.config = cfg.default_broker_config.clone();
    }
    if b.spec.delivery.is_none() {
        b.spec.delivery = cfg.default_broker_delivery.clone();
    }
    if let Some(c) = &mut b.spec.config
        && c.namespace.is_empty()
    {
        c.namespace = ns.clone();
    }
    duck::default_delivery(&mut b.spec.delivery, &ns);

    // Knative lets a Broker's config and dead letter sink live in other namespaces unless
    // `config-br-defaults` says `disallow-different-namespace-config`.
    let parent = Parent {
        namespace: &ns,
        allow_different_namespace: true,
    };
    let class_path = format!("metadata.annotations[{}]", keys::BROKER_CLASS_ANNOTATION);
    let mut errs = metadata(&b.metadata);
    let class = b.metadata.annotations.get(keys::BROKER_CLASS_ANNOTATION);
    if class.is_none_or(String::is_empty) {
        errs.also(FieldErrors::missing(&[&class_path]));
    }
    if let Some(c) = &b.spec.config {
        errs.also(duck::kreference(c, parent).via_field("spec.config"));
    }
    if let Some(d) = &b.spec.delivery {
        errs.also(duck::delivery(d, parent, cfg).via_field("spec.delivery"));
    }
    if let Some(o) = &old {
        // Everything but `delivery` is immutable, and so is the class.
        errs.also(immutable(
            serde_json::json!({"config": o.spec.config}),
            serde_json::json!({"config": b.spec.config}),
            "spec",
        ));
        let old_class = o.metadata.annotations.get(keys::BROKER_CLASS_ANNOTATION);
        if old_class != class {
            errs.also(FieldErrors::generic_details(
                Reason::FieldValueForbidden,
                "Immutable annotations changed (-old +new)",
                &scalar_diff(old_class.map(String::as_str), class.map(String::as_str)),
                &[&class_path],
            ));
        }
    }
    finish(&b, errs, unknown)
}

// ---------------------------------------------------------------- Trigger

/// `trigger_defaults.go`, `trigger_validation.go`.
pub(super) fn admit_trigger(
    old: Option<&Value>,
    new: Value,
    ctx: &AdmissionContext,
) -> Result<Value, AdmissionError> {
    let cfg = &ctx.config.eventing;
    let (mut t, unknown): (Trigger, _) = decode(new)?;
    let old: Option<Trigger> = decode_old(old)?;
    let ns = t.metadata.namespace.clone();

    if t.spec.filter.is_none() {
        t.spec.filter = Some(TriggerFilter::default());
    }
    duck::default_destination(&mut t.spec.subscriber, &ns);
    duck::default_delivery(&mut t.spec.delivery, &ns);
    if !t.spec.broker.is_empty() {
        t.metadata
            .labels
            .insert(keys::BROKER_LABEL.to_string(), t.spec.broker.clone());
    }

    let parent = same_namespace(&t.metadata);
    let mut errs = metadata(&t.metadata);
    errs.also(trigger_annotations(&t).via_field("metadata.annotations"));
    let spec = &t.spec;
    let mut s = FieldErrors::new();
    match (&spec.broker_ref, spec.broker.is_empty()) {
        (None, true) => {
            s.also(FieldErrors::missing(&["broker"]));
        }
        (Some(_), false) => {
            s.also(FieldErrors::multiple_one_of(&["broker", "brokerRef"]));
        }
        _ => {}
    }
    if let Some(r) = &spec.broker_ref
        && !r.namespace.is_empty()
    {
        s.also(FieldErrors::generic_details(
            Reason::FieldValueForbidden,
            "must not set the field(s)",
            "only name, apiVersion and kind are supported fields when feature.CrossNamespaceEventLinks is disabled",
            &["brokerRef.namespace"],
        ));
    }
    if let Some(f) = &spec.filter {
        s.also(duck::attribute_names(&f.attributes).via_field("filter.attributes"));
    }
    s.also(duck::filters(&spec.filters, cfg).via_field("filters"));
    s.also(duck::destination(&spec.subscriber, parent).via_field("subscriber"));
    if let Some(d) = &spec.delivery {
        s.also(duck::delivery(d, parent, cfg).via_field("delivery"));
    }
    errs.also(s.via_field("spec"));
    if let Some(o) = &old
        && o.spec.broker != t.spec.broker
    {
        errs.also(FieldErrors::generic_details(
            Reason::FieldValueForbidden,
            "Immutable fields changed (-old +new)",
            &scalar_diff(Some(&o.spec.broker), Some(&t.spec.broker)),
            &["spec.broker"],
        ));
    }
    finish(&t, errs, unknown)
}

/// `knative.dev/dependency` (a JSON object reference in the trigger's namespace) and
/// `eventing.knative.dev/injection` (only on triggers of the `default` broker). Relative to
/// `annotations`.
fn trigger_annotations(t: &Trigger) -> FieldErrors {
    let mut errs = FieldErrors::new();
    let ann = &t.metadata.annotations;
    if let Some(dep) = ann.get(keys::DEPENDENCY_ANNOTATION) {
        let mut e = FieldErrors::new();
        match serde_json::from_str::<BTreeMap<String, Value>>(dep) {
            Err(why) => {
                e.also(FieldErrors::generic_details(
                    Reason::FieldValueInvalid,
                    format!("The provided annotation was not a corev1.ObjectReference: {dep:?}"),
                    &why.to_string(),
                    &[""],
                ));
            }
            Ok(r) => {
                let field = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("");
                let ns = field("namespace");
                if !ns.is_empty() && ns != t.metadata.namespace {
                    e.also(FieldErrors::generic(
                        Reason::FieldValueInvalid,
                        format!(
                            "Namespace must be empty or equal to the trigger namespace {:?}",
                            t.metadata.namespace
                        ),
                        &["namespace"],
                    ));
                }
                for k in ["kind", "name", "apiVersion"] {
                    if field(k).is_empty() {
                        e.also(FieldErrors::missing(&[k]));
                    }
                }
            }
        }
        errs.also(e.via_key(keys::DEPENDENCY_ANNOTATION));
    }
    if let Some(inj) = ann.get(keys::INJECTION_ANNOTATION) {
        let msg = if inj != "enabled" && inj != "disabled" {
            Some(format!(
                "The provided injection annotation value can only be \"enabled\" or \"disabled\", not {inj:?}"
            ))
        } else if t.spec.broker != "default" {
            Some(format!(
                "The provided injection annotation is only used for default broker, but non-default broker specified here: {:?}",
                t.spec.broker
            ))
        } else {
            None
        };
        if let Some(m) = msg {
            errs.also(
                FieldErrors::generic(Reason::FieldValueInvalid, m, &[""])
                    .via_key(keys::INJECTION_ANNOTATION),
            );
        }
    }
    errs
}

// ---------------------------------------------------------------- Channel

/// `channel_defaults.go`, `channel_validation.go`.
pub(super) fn admit_channel(
    old: Option<&Value>,
    new: Value,
    ctx: &AdmissionContext,
) -> Result<Value, AdmissionError> {
    let cfg = &ctx.config.eventing;
    let (mut c, unknown): (Channel, _) = decode(new)?;
    let old: Option<Channel> = decode_old(old)?;
    let ns = c.metadata.namespace.clone();

    default_annotation(
        &mut c.metadata,
        keys::SUBSCRIBABLE_DUCK_VERSION_ANNOTATION,
        "v1",
    );
    if c.spec.channel_template.is_none() {
        c.spec.channel_template = Some(cfg.default_channel_template.clone());
    }
    duck::default_delivery(&mut c.spec.delivery, &ns);

    let parent = same_namespace(&c.metadata);
    let mut errs = metadata(&c.metadata);
    let mut s = channel_template(&c.spec.channel_template);
    if !c.spec.subscribers.is_empty() {
        // Subscriptions are written to the backing channel, never to the Channel.
        s.also(FieldErrors::disallowed(&["subscribers"]));
    }
    if let Some(d) = &c.spec.delivery {
        s.also(duck::delivery(d, parent, cfg).via_field("delivery"));
    }
    errs.also(s.via_field("spec"));
    if let Some(o) = &old {
        // Everything but the subscribers is immutable.
        let view = |ch: &Channel| serde_json::json!({"channelTemplate": ch.spec.channel_template, "delivery": ch.spec.delivery});
        errs.also(immutable(view(o), view(&c), "spec"));
    }
    finish(&c, errs, unknown)
}

/// `in_memory_channel_defaults.go`, `in_memory_channel_validation.go`.
pub(super) fn admit_in_memory_channel(
    new: Value,
    ctx: &AdmissionContext,
) -> Result<Value, AdmissionError> {
    let cfg = &ctx.config.eventing;
    let (mut c, unknown): (InMemoryChannel, _) = decode(new)?;
    let ns = c.metadata.namespace.clone();

    default_annotation(
        &mut c.metadata,
        keys::SUBSCRIBABLE_DUCK_VERSION_ANNOTATION,
        "v1",
    );
    duck::default_delivery(&mut c.spec.delivery, &ns);

    let parent = same_namespace(&c.metadata);
    let mut errs = metadata(&c.metadata);
    if let Some(scope) = c.metadata.annotations.get(keys::SCOPE_ANNOTATION)
        && scope != "cluster"
        && scope != "namespace"
    {
        errs.also(
            FieldErrors::invalid_value(scope, "", "expected either 'cluster' or 'namespace'")
                .via_field_key("metadata.annotations", keys::SCOPE_ANNOTATION),
        );
    }
    for (i, sub) in c.spec.subscribers.iter().enumerate() {
        if sub.subscriber_uri.is_none() && sub.reply_uri.is_none() {
            errs.also(
                FieldErrors::generic_details(
                    Reason::FieldValueRequired,
                    "missing field(s)",
                    "expected at least one of, got none",
                    &["replyUri", "subscriberUri"],
                )
                .via_field_index("spec.subscribers", i),
            );
        }
    }
    if let Some(d) = &c.spec.delivery {
        errs.also(duck::delivery(d, parent, cfg).via_field("spec.delivery"));
    }
    finish(&c, errs, unknown)
}

// ----------------------------------------------------------- Subscription

/// `subscription_defaults.go`, `subscription_validation.go`. The subscriber is required
/// (Knative: "the Subscription must reference a subscriber"); `reply` is optional.
pub(super) fn admit_subscription(
    old: Option<&Value>,
    new: Value,
    ctx: &AdmissionContext,
) -> Result<Value, AdmissionError> {
    let cfg = &ctx.config.eventing;
    let (mut sub, unknown): (Subscription, _) = decode(new)?;
    let old: Option<Subscription> = decode_old(old)?;
    let ns = sub.metadata.namespace.clone();

    for d in [&mut sub.spec.subscriber, &mut sub.spec.reply]
        .into_iter()
        .flatten()
    {
        duck::default_destination(d, &ns);
    }
    duck::default_delivery(&mut sub.spec.delivery, &ns);

    let parent = same_namespace(&sub.metadata);
    let spec = &sub.spec;
    let mut errs = metadata(&sub.metadata);
    let mut s = FieldErrors::new();
    if spec.channel == Default::default() {
        s.also(FieldErrors::generic_details(
            Reason::FieldValueRequired,
            "missing field(s)",
            "the Subscription must reference a channel",
            &["channel"],
        ));
    } else {
        let mut ch = spec.channel.clone();
        let cross_namespace = !ch.namespace.is_empty();
        ch.namespace.clear();
        s.also(duck::kreference(&ch, parent).via_field("channel"));
        if cross_namespace {
            s.also(FieldErrors::generic_details(
                Reason::FieldValueForbidden,
                "must not set the field(s)",
                "only name, apiVersion and kind are supported fields when feature.CrossNamespaceEventLinks is disabled",
                &["channel.namespace"],
            ));
        }
    }
    match &spec.subscriber {
        Some(d) if !d.is_empty() => {
            s.also(duck::destination(d, parent).via_field("subscriber"));
        }
        _ => {
            s.also(FieldErrors::generic_details(
                Reason::FieldValueRequired,
                "missing field(s)",
                "the Subscription must reference a subscriber",
                &["subscriber"],
            ));
        }
    }
    if let Some(r) = spec.reply.as_ref().filter(|r| !r.is_empty()) {
        s.also(duck::destination(r, parent).via_field("reply"));
    }
    if let Some(d) = &spec.delivery {
        s.also(duck::delivery(d, parent, cfg).via_field("delivery"));
    }
    errs.also(s.via_field("spec"));
    if let Some(o) = &old {
        // Only subscriber, reply and delivery may change.
        errs.also(immutable(
            serde_json::json!({"channel": o.spec.channel}),
            serde_json::json!({"channel": sub.spec.channel}),
            "spec",
        ));
    }
    finish(&sub, errs, unknown)
}

// ------------------------------------------------------------------ flows

/// `sequence_defaults.go`, `sequence_validation.go`.
pub(super) fn admit_sequence(new: Value, ctx: &AdmissionContext) -> Result<Value, AdmissionError> {
    let cfg = &ctx.config.eventing;
    let (mut seq, unknown): (Sequence, _) = decode(new)?;
    let ns = seq.metadata.namespace.clone();

    if seq.spec.channel_template.is_none() {
        seq.spec.channel_template = Some(cfg.default_channel_template.clone());
    }
    for step in &mut seq.spec.steps {
        let mut d = step.destination();
        duck::default_destination(&mut d, &ns);
        step.set_destination(d);
        duck::default_delivery(&mut step.delivery, &ns);
    }
    if let Some(r) = &mut seq.spec.reply {
        duck::default_destination(r, &ns);
    }

    let parent = same_namespace(&seq.metadata);
    let mut errs = metadata(&seq.metadata);
    let mut s = FieldErrors::new();
    if seq.spec.steps.is_empty() {
        s.also(FieldErrors::missing(&["steps"]));
    }
    for (i, step) in seq.spec.steps.iter().enumerate() {
        let mut e = duck::destination(&step.destination(), parent);
        if let Some(d) = &step.delivery {
            e.also(duck::delivery(d, parent, cfg).via_field("delivery"));
        }
        s.also(e.via_field_index("steps", i));
    }
    s.also(channel_template(&seq.spec.channel_template));
    if let Some(r) = &seq.spec.reply {
        s.also(duck::destination(r, parent).via_field("reply"));
    }
    errs.also(s.via_field("spec"));
    finish(&seq, errs, unknown)
}

/// `parallel_defaults.go`, `parallel_validation.go`.
pub(super) fn admit_parallel(new: Value, ctx: &AdmissionContext) -> Result<Value, AdmissionError> {
    let cfg = &ctx.config.eventing;
    let (mut p, unknown): (Parallel, _) = decode(new)?;
    let ns = p.metadata.namespace.clone();

    if p.spec.channel_template.is_none() {
        p.spec.channel_template = Some(cfg.default_channel_template.clone());
    }
    for b in &mut p.spec.branches {
        duck::default_destination(&mut b.subscriber, &ns);
        for d in [&mut b.filter, &mut b.reply].into_iter().flatten() {
            duck::default_destination(d, &ns);
        }
        duck::default_delivery(&mut b.delivery, &ns);
    }
    if let Some(r) = &mut p.spec.reply {
        duck::default_destination(r, &ns);
    }

    let parent = same_namespace(&p.metadata);
    let mut errs = metadata(&p.metadata);
    let mut s = FieldErrors::new();
    if p.spec.branches.is_empty() {
        s.also(FieldErrors::missing(&["branches"]));
    }
    for (i, b) in p.spec.branches.iter().enumerate() {
        let mut e = duck::destination(&b.subscriber, parent).via_field("subscriber");
        if let Some(f) = &b.filter {
            e.also(duck::destination(f, parent).via_field("filter"));
        }
        if let Some(r) = &b.reply {
            e.also(duck::destination(r, parent).via_field("reply"));
        }
        if let Some(d) = &b.delivery {
            e.also(duck::delivery(d, parent, cfg).via_field("delivery"));
        }
        s.also(e.via_field_index("branches", i));
    }
    s.also(channel_template(&p.spec.channel_template));
    if let Some(r) = &p.spec.reply {
        s.also(duck::destination(r, parent).via_field("reply"));
    }
    errs.also(s.via_field("spec"));
    finish(&p, errs, unknown)
}

#[cfg(test)]
mod tests;
