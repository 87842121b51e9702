//! Defaulting and validation of the pieces every Eventing kind embeds: destinations,
//! references, delivery options, CloudEvent overrides, label selectors and trigger filters.
//!
//! Follows knative.dev/pkg `apis/duck/v1/destination.go`, `knative_reference.go`,
//! `source_types.go` and knative/eventing `pkg/apis/duck/v1/delivery_types.go`,
//! `pkg/apis/eventing/v1/trigger_validation.go`. Every function returns errors relative to
//! the value it checks; callers prefix the path. Where Knative is lax in a way that loses
//! events silently, wisp refuses instead (each such rule says so).

use std::collections::BTreeMap;

use crate::admission::config::Eventing;
use crate::eventing::duck::{
    BACKOFF_POLICY_EXPONENTIAL, BACKOFF_POLICY_LINEAR, DELIVERY_FORMAT_BINARY, DELIVERY_FORMAT_JSON,
};
use crate::eventing::{
    CloudEventOverrides, DeliverySpec, Destination, KReference, SubscriptionsApiFilter,
    parse_iso8601_duration,
};
use crate::meta::LabelSelector;
use crate::naming;
use crate::validation::{FieldErrors, Reason};

/// The object a nested value belongs to (Knative's `apis.WithinParent`): its namespace, and
/// whether references may point into other namespaces (only a Broker's, by Knative's
/// `config-br-defaults`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Parent<'a> {
    pub namespace: &'a str,
    pub allow_different_namespace: bool,
}

// ------------------------------------------------------------- defaulting

/// `Destination.SetDefaults`: a reference without a namespace points into the parent's.
pub(super) fn default_destination(d: &mut Destination, namespace: &str) {
    if let Some(r) = &mut d.ref_
        && r.namespace.is_empty()
    {
        r.namespace = namespace.to_string();
    }
}

/// `DeliverySpec.SetDefaults`: the dead letter sink's reference gets the parent's namespace.
pub(super) fn default_delivery(d: &mut Option<DeliverySpec>, namespace: &str) {
    if let Some(dls) = d.as_mut().and_then(|d| d.dead_letter_sink.as_mut()) {
        default_destination(dls, namespace);
    }
}

// ------------------------------------------------------------- references

/// `KReference.Validate` with Knative's default features (no `group`).
pub(super) fn kreference(r: &KReference, parent: Parent<'_>) -> FieldErrors {
    let mut errs = FieldErrors::new();
    if r.name.is_empty() {
        errs.also(FieldErrors::missing(&["name"]));
    }
    if !r.group.is_empty() {
        errs.also(FieldErrors::disallowed(&["group"]));
    }
    if r.api_version.is_empty() {
        errs.also(FieldErrors::missing(&["apiVersion"]));
    }
    if r.kind.is_empty() {
        errs.also(FieldErrors::missing(&["kind"]));
    }
    if !r.namespace.is_empty()
        && !parent.allow_different_namespace
        && !parent.namespace.is_empty()
        && r.namespace != parent.namespace
    {
        errs.also(FieldErrors::generic_details(
            Reason::FieldValueInvalid,
            "mismatched namespaces",
            &format!(
                "parent namespace: {:?} does not match ref: {:?}",
                parent.namespace, r.namespace
            ),
            &["namespace"],
        ));
    }
    errs
}

/// What a URI looks like to Go's `url.URL`: whether it has a scheme and a host.
struct UriShape {
    absolute: bool,
    has_host: bool,
}

fn uri_shape(uri: &str) -> Result<UriShape, String> {
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a URI must not contain spaces or control characters".to_string());
    }
    let scheme_end = uri.find(':').filter(|i| {
        let scheme = &uri[..*i];
        !scheme.contains(['/', '?', '#'])
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    let Some(end) = scheme_end else {
        return Ok(UriShape {
            absolute: false,
            has_host: false,
        });
    };
    let rest = &uri[end + 1..];
    let host = rest
        .strip_prefix("//")
        .map(|r| {
            let authority = &r[..r.find(['/', '?', '#']).unwrap_or(r.len())];
            authority.rsplit('@').next().unwrap_or("")
        })
        .unwrap_or("");
    Ok(UriShape {
        absolute: true,
        has_host: !host.is_empty(),
    })
}

/// Knative's `validateCACerts`, reduced to the PEM envelope (wisp-api parses no X.509).
fn ca_certs(pem: &str) -> FieldErrors {
    let begin = pem.find("-----BEGIN CERTIFICATE-----");
    let end = pem.find("-----END CERTIFICATE-----");
    match (begin, end) {
        (Some(b), Some(e)) if b < e => FieldErrors::new(),
        _ => FieldErrors::invalid_value("CA Cert provided is invalid", "CACerts", ""),
    }
}

/// `ValidateDestination`: a reference, an absolute URI, or a reference plus a relative URI.
/// Knative skips the reference's own checks when a relative URI accompanies it; wisp checks
/// the reference either way.
pub(super) fn destination(d: &Destination, parent: Parent<'_>) -> FieldErrors {
    let mut errs = FieldErrors::new();
    let shape = match d.uri.as_deref().map(uri_shape).transpose() {
        Ok(s) => s,
        Err(why) => {
            let uri = d.uri.as_deref().unwrap_or("");
            return FieldErrors::invalid_value(uri, "uri", &why);
        }
    };
    match (&d.ref_, shape) {
        (None, None) => {
            return FieldErrors::generic(
                Reason::FieldValueRequired,
                "expected at least one, got none",
                &["ref", "uri"],
            );
        }
        (Some(_), Some(s)) if s.absolute => {
            return FieldErrors::generic(
                Reason::FieldValueInvalid,
                "Absolute URI is not allowed when Ref or [apiVersion, kind, name] is present",
                &["ref", "uri"],
            );
        }
        (None, Some(s)) if !s.absolute || !s.has_host => {
            return FieldErrors::invalid_value(
                "Relative URI is not allowed when Ref and [apiVersion, kind, name] is absent",
                "uri",
                "",
            );
        }
        // A reference, alone or with a relative URI.
        (Some(r), _) => {
            errs.also(kreference(r, parent).via_field("ref"));
        }
        // An absolute URI with a host.
        (None, Some(_)) => {}
    }
    if let Some(pem) = &d.ca_certs {
        errs.also(ca_certs(pem));
    }
    errs
}

// --------------------------------------------------------------- delivery

/// A delivery duration: ISO-8601 and, unlike Knative (which accepts `-PT1S` for
/// `backoffDelay`), never negative; `timeout` must also be above zero.
fn duration(value: &str, field: &str, allow_zero: bool) -> FieldErrors {
    match parse_iso8601_duration(value) {
        Err(why) => FieldErrors::invalid_value(
            value,
            field,
            &format!("expected an ISO-8601 duration such as PT0.2S: {why}"),
        ),
        Ok(d) if d.negative && !d.is_zero() => {
            FieldErrors::invalid_value(value, field, "the duration must not be negative")
        }
        Ok(d) if !allow_zero && d.is_zero() => {
            FieldErrors::invalid_value(value, field, "the duration must be greater than zero")
        }
        Ok(_) => FieldErrors::new(),
    }
}

/// `DeliverySpec.Validate`.
pub(super) fn delivery(d: &DeliverySpec, parent: Parent<'_>, cfg: &Eventing) -> FieldErrors {
    let mut errs = FieldErrors::new();
    if let Some(dls) = &d.dead_letter_sink {
        errs.also(destination(dls, parent).via_field("deadLetterSink"));
    }
    if let Some(retry) = d.retry
        && retry < 0
    {
        errs.also(FieldErrors::invalid_value(
            retry,
            "retry",
            "retry must be zero or more",
        ));
    }
    if let Some(t) = &d.timeout {
        if cfg.delivery_timeout {
            errs.also(duration(t, "timeout", false));
        } else {
            errs.also(FieldErrors::disallowed(&["timeout"]));
        }
    }
    if let Some(p) = &d.backoff_policy
        && p != BACKOFF_POLICY_LINEAR
        && p != BACKOFF_POLICY_EXPONENTIAL
    {
        errs.also(FieldErrors::invalid_value(
            p,
            "backoffPolicy",
            "expected linear or exponential",
        ));
    }
    if let Some(delay) = &d.backoff_delay {
        errs.also(duration(delay, "backoffDelay", true));
    }
    if let Some(f) = &d.format
        && f != DELIVERY_FORMAT_JSON
        && f != DELIVERY_FORMAT_BINARY
    {
        errs.also(FieldErrors::invalid_value(
            f,
            "format",
            "expected json or binary",
        ));
    }
    if let Some(max) = &d.retry_after_max {
        if cfg.delivery_retry_after {
            errs.also(duration(max, "retryAfterMax", true));
        } else {
            errs.also(FieldErrors::disallowed(&["retryAfterMax"]));
        }
    }
    errs
}

// ---------------------------------------------------------------- sources

/// `CloudEventOverrides.Validate`: extension names are non-empty and alphanumeric.
pub(super) fn ce_overrides(o: &CloudEventOverrides) -> FieldErrors {
    let mut errs = FieldErrors::new();
    for key in o.extensions.keys() {
        let why = if key.is_empty() {
            "keys MUST NOT be empty"
        } else if !key.chars().all(|c| c.is_ascii_alphanumeric()) {
            "keys are expected to be alphanumeric"
        } else {
            continue;
        };
        errs.also(FieldErrors::invalid_key_name(key, "", why).via_field_key("extensions", key));
    }
    errs
}

/// k8s `IsValidLabelValue`.
fn label_value(v: &str) -> Option<String> {
    let b = v.as_bytes();
    let ok_chars = b
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
    let ok_ends = b.first().is_none_or(u8::is_ascii_alphanumeric)
        && b.last().is_none_or(u8::is_ascii_alphanumeric);
    if v.len() > 63 {
        Some("must be no more than 63 characters".to_string())
    } else if !ok_chars || !ok_ends {
        Some("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character".to_string())
    } else {
        None
    }
}

/// `metav1.LabelSelectorAsSelector`: keys are qualified names, values label values, and
/// operators take values (`In`, `NotIn`) or none (`Exists`, `DoesNotExist`).
pub(super) fn label_selector(s: &LabelSelector) -> FieldErrors {
    let mut errs = FieldErrors::new();
    let key_errs = |key: &str| {
        let msgs = naming::is_qualified_name(key);
        if msgs.is_empty() {
            FieldErrors::new()
        } else {
            FieldErrors::invalid_key_name(key, "", &msgs.join(", "))
        }
    };
    for (k, v) in &s.match_labels {
        errs.also(key_errs(k).via_field_key("matchLabels", k));
        if let Some(why) = label_value(v) {
            errs.also(FieldErrors::invalid_value(v, "", &why).via_field_key("matchLabels", k));
        }
    }
    for (i, req) in s.match_expressions.iter().enumerate() {
        let mut e = key_errs(&req.key).via_field("key");
        match req.operator.as_str() {
            "In" | "NotIn" if req.values.is_empty() => e.also(FieldErrors::generic(
                Reason::FieldValueRequired,
                "for 'In', 'NotIn' operators, values set can't be empty",
                &["values"],
            )),
            "Exists" | "DoesNotExist" if !req.values.is_empty() => e.also(FieldErrors::generic(
                Reason::FieldValueForbidden,
                "values set must be empty for 'Exists' and 'DoesNotExist'",
                &["values"],
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => &mut e,
            other => e.also(FieldErrors::generic(
                Reason::FieldValueNotSupported,
                format!("{other:?} is not a valid label selector operator"),
                &["operator"],
            )),
        };
        for (j, v) in req.values.iter().enumerate() {
            if let Some(why) = label_value(v) {
                e.also(FieldErrors::invalid_value(v, "", &why).via_field_index("values", j));
            }
        }
        errs.also(e.via_field_index("matchExpressions", i));
    }
    errs
}

// ---------------------------------------------------------------- filters

/// CloudEvents attribute names as Knative checks them (`^[a-z][a-z0-9]*$`).
pub(super) fn is_attribute_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// `ValidateAttributesNames`, relative to the map.
pub(super) fn attribute_names(attrs: &BTreeMap<String, String>) -> FieldErrors {
    let mut errs = FieldErrors::new();
    for k in attrs.keys().filter(|k| !is_attribute_name(k)) {
        errs.also(
            FieldErrors::invalid_key_name(
                k,
                "",
                "Attribute name must start with a letter and can only contain lowercase alphanumeric",
            )
            .via_key(k),
        );
    }
    errs
}

/// `exact`, `prefix` and `suffix` each hold exactly one attribute (as the Subscriptions API
/// says and Knative's dispatcher assumes) with a non-empty value. Knative's webhook accepts an
/// empty value and its dispatcher then drops the whole filter, matching every event; wisp
/// refuses it.
fn single_attribute(attrs: &BTreeMap<String, String>) -> FieldErrors {
    let mut errs = attribute_names(attrs);
    if attrs.len() > 1 {
        errs.also(FieldErrors::generic_details(
            Reason::FieldValueInvalid,
            format!("expected exactly one attribute, got {}", attrs.len()),
            "write one filter per attribute inside `all` to require several",
            &[""],
        ));
    }
    for (k, v) in attrs {
        if v.is_empty() {
            errs.also(
                FieldErrors::generic_details(
                    Reason::FieldValueRequired,
                    "missing value",
                    "exact, prefix and suffix need a non-empty value",
                    &[""],
                )
                .via_key(k),
            );
        }
    }
    errs
}

/// `ValidateSubscriptionAPIFiltersList`, relative to the list.
pub(super) fn filters(list: &[SubscriptionsApiFilter], cfg: &Eventing) -> FieldErrors {
    let mut errs = FieldErrors::new();
    for (i, f) in list.iter().enumerate() {
        errs.also(filter(f, cfg).via_index(i));
    }
    errs
}

/// `ValidateSubscriptionAPIFilter`: exactly one dialect per element. Knative accepts an
/// element with no dialect at all (its dispatcher then skips it, matching everything); wisp
/// refuses it.
fn filter(f: &SubscriptionsApiFilter, cfg: &Eventing) -> FieldErrors {
    let mut errs = FieldErrors::new();
    let dialects = f.dialects();
    match dialects.len() {
        0 => {
            errs.also(FieldErrors::generic_details(
                Reason::FieldValueRequired,
                "expected exactly one dialect, got none",
                "set one of exact, prefix, suffix, all, any, not, cesql",
                &[""],
            ));
        }
        1 => {}
        _ => {
            errs.also(FieldErrors::generic_details(
                Reason::FieldValueInvalid,
                "multiple dialects found, filters can have only one dialect set",
                &dialects.join(", "),
                &[""],
            ));
        }
    }
    for (name, attrs) in [
        ("exact", &f.exact),
        ("prefix", &f.prefix),
        ("suffix", &f.suffix),
    ] {
        if !attrs.is_empty() {
            errs.also(single_attribute(attrs).via_field(name));
        }
    }
    errs.also(filters(&f.all, cfg).via_field("all"));
    errs.also(filters(&f.any, cfg).via_field("any"));
    if let Some(not) = &f.not {
        errs.also(filter(not, cfg).via_field("not"));
    }
    if !f.cesql.is_empty()
        && let Some(check) = cfg.cesql_check
        && let Err(why) = check(&f.cesql)
    {
        errs.also(FieldErrors::invalid_value(&f.cesql, "cesql", &why));
    }
    errs
}
