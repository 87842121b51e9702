//! The duck types every Eventing kind embeds: where to send events (`Destination`,
//! `KReference`), how hard to try (`DeliverySpec`), and the status pieces that say where a
//! resource can be reached (`Addressable`) or where it sends (`SourceStatus`).
//!
//! Why here and spelled out: knative.dev/pkg `apis/duck/v1` (destination.go,
//! knative_reference.go, source_types.go) and knative/eventing `pkg/apis/duck/v1`
//! (delivery_types.go, subscribable_types.go) inline these into many kinds; wisp cannot use
//! serde's `flatten` together with `deny_unknown_fields`, so the kinds repeat the fields and
//! this module holds only what is shared as a whole. The ISO-8601 duration reader lives here
//! because every `DeliverySpec` needs it and wisp-api may not depend on the eventing crate
//! that owns the real retry schedule.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::meta::{Condition, is_zero_i64};

pub use crate::serving::Addressable;

/// A reference to a Knative object by kind and name (knative.dev/pkg `duckv1.KReference`).
/// `kind` and `name` are always written, as Go writes them (no `omitempty`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KReference {
    #[serde(default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// Only with Knative's `kreference-group` feature (off by default, and in wisp).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// Knative's `kreference-mapping` feature: an explicit address for the reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// Where to deliver: a reference, a URI, or a reference plus a URI relative to its address
/// (knative.dev/pkg `duckv1.Destination`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub ref_: Option<KReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// PEM CA certificates for an `https` URI.
    #[serde(default, rename = "CACerts", skip_serializing_if = "Option::is_none")]
    pub ca_certs: Option<String>,
    /// OIDC audience of the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

impl Destination {
    /// A destination that is just a URI.
    pub fn uri(uri: impl Into<String>) -> Self {
        Destination {
            uri: Some(uri.into()),
            ..Destination::default()
        }
    }

    /// A destination that is just a reference.
    pub fn reference(api_version: &str, kind: &str, name: &str) -> Self {
        Destination {
            ref_: Some(KReference {
                api_version: api_version.to_string(),
                kind: kind.to_string(),
                name: name.to_string(),
                ..KReference::default()
            }),
            ..Destination::default()
        }
    }

    /// True when nothing is set (Knative's `isDestinationNilOrEmpty`).
    pub fn is_empty(&self) -> bool {
        *self == Destination::default()
    }
}

/// `linear` waits `backoffDelay * n`, `exponential` waits `backoffDelay * 2^n`.
pub const BACKOFF_POLICY_LINEAR: &str = "linear";
pub const BACKOFF_POLICY_EXPONENTIAL: &str = "exponential";
/// `delivery.format`: structured (`json`) or binary content mode.
pub const DELIVERY_FORMAT_JSON: &str = "json";
pub const DELIVERY_FORMAT_BINARY: &str = "binary";

/// How a sender retries and where undeliverable events go (knative/eventing
/// `eventingduckv1.DeliverySpec`). Durations are ISO-8601 (`PT0.2S`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeliverySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink: Option<Destination>,
    /// Retries after the first attempt (attempts = retry + 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<i32>,
    /// Per-request timeout, > 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// `linear` or `exponential`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_delay: Option<String>,
    /// Upper bound on a `Retry-After` answer; `PT0S` opts out of honouring it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_max: Option<String>,
    /// `json` or `binary`; absent = as received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// `status.auth` (knative.dev/pkg `duckv1.AuthStatus`): the OIDC identity used to send.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_account_names: Vec<String>,
}

/// `status.policies[]`: the EventPolicies that apply to the resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppliedEventPolicyRef {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub name: String,
}

/// `ceOverrides` of a source: extension attributes added to every event it sends.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloudEventOverrides {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extensions: BTreeMap<String, String>,
}

/// `status.ceAttributes[]` of a source: the event types and sources it emits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloudEventAttributes {
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
}

/// The part every source's spec shares (knative.dev/pkg `duckv1.SourceSpec`), as a duck
/// view: it does not refuse unknown fields, so `serde_json::from_value::<SourceSpec>` reads
/// the sink of any source's `spec`. The source kinds themselves repeat these two fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceSpec {
    #[serde(default)]
    pub sink: Destination,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ce_overrides: Option<CloudEventOverrides>,
}

/// A source's status (knative.dev/pkg `duckv1.SourceStatus`): the common status plus the
/// resolved sink. PingSource and ContainerSource use it as is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceStatus {
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub observed_generation: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ce_attributes: Vec<CloudEventAttributes>,
    #[serde(
        default,
        rename = "sinkCACerts",
        skip_serializing_if = "Option::is_none"
    )]
    pub sink_ca_certs: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink_audience: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthStatus>,
}

impl SourceStatus {
    pub fn is_empty(&self) -> bool {
        *self == SourceStatus::default()
    }
}

/// One entry of a channel's `spec.subscribers` (knative/eventing `SubscriberSpec`), written by
/// the Subscription controller with resolved URIs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubscriberSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub generation: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber_uri: Option<String>,
    #[serde(
        default,
        rename = "subscriberCACerts",
        skip_serializing_if = "Option::is_none"
    )]
    pub subscriber_ca_certs: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber_audience: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_uri: Option<String>,
    #[serde(
        default,
        rename = "replyCACerts",
        skip_serializing_if = "Option::is_none"
    )]
    pub reply_ca_certs: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_audience: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthStatus>,
}

/// One entry of a channel's `status.subscribers`: whether that subscriber is wired up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubscriberStatus {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub observed_generation: i64,
    /// `True`, `False` or `Unknown`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ready: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthStatus>,
}

// ------------------------------------------------------------ ISO-8601

/// An ISO-8601 duration as read by [`parse_iso8601_duration`]. Years and months have no fixed
/// length; they count as 365 and 30 days, which is only good enough to tell zero from not.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IsoDuration {
    pub negative: bool,
    pub seconds: f64,
}

impl IsoDuration {
    pub fn is_zero(&self) -> bool {
        self.seconds == 0.0
    }
}

/// Reads `[+-]P[nY][nM][nW][nD][T[nH][nM][nS]]` (a decimal fraction with `.` or `,` allowed
/// on any number), plus `P0`, as knative's `period.Parse` (github.com/rickb777/date) does.
/// The message says what is wrong.
pub fn parse_iso8601_duration(s: &str) -> Result<IsoDuration, String> {
    let (negative, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let Some(rest) = body.strip_prefix('P') else {
        return Err(format!("{s:?}: expected 'P' period mark at the start"));
    };
    if rest == "0" {
        return Ok(IsoDuration {
            negative,
            seconds: 0.0,
        });
    }
    if rest.is_empty() {
        return Err(format!("{s:?}: expected at least one component after 'P'"));
    }
    const DAY: f64 = 86_400.0;
    // (designator, seconds per unit) in the order ISO requires, before and after `T`.
    const DATE_UNITS: &[(char, f64)] = &[
        ('Y', 365.0 * DAY),
        ('M', 30.0 * DAY),
        ('W', 7.0 * DAY),
        ('D', DAY),
    ];
    const TIME_UNITS: &[(char, f64)] = &[('H', 3600.0), ('M', 60.0), ('S', 1.0)];
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => {
            if t.is_empty() {
                return Err(format!("{s:?}: expected a time component after 'T'"));
            }
            (d, Some(t))
        }
        None => (rest, None),
    };
    let mut seconds = components(s, date, DATE_UNITS)?;
    if let Some(t) = time {
        seconds += components(s, t, TIME_UNITS)?;
    }
    Ok(IsoDuration { negative, seconds })
}

/// Sums `n<unit>` components of one half of a duration; units must come in order, once each.
fn components(whole: &str, mut part: &str, units: &[(char, f64)]) -> Result<f64, String> {
    let mut total = 0.0;
    let mut next_unit = 0;
    while !part.is_empty() {
        let num_len = part
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
            .unwrap_or(part.len());
        let (num, tail) = part.split_at(num_len);
        let Some(unit) = tail.chars().next() else {
            return Err(format!("{whole:?}: missing designator after {num:?}"));
        };
        let digits = num.replace(',', ".");
        let value: f64 = match digits.parse() {
            Ok(v) if !num.is_empty() && digits.matches('.').count() <= 1 => v,
            _ => return Err(format!("{whole:?}: expected a number before '{unit}'")),
        };
        let Some(pos) = units[next_unit..].iter().position(|(u, _)| *u == unit) else {
            return Err(format!("{whole:?}: unexpected designator '{unit}'"));
        };
        total += value * units[next_unit + pos].1;
        next_unit += pos + 1;
        part = &tail[unit.len_utf8()..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_durations() {
        let ok: &[(&str, f64, bool)] = &[
            ("PT0.2S", 0.2, false),
            ("PT1S", 1.0, false),
            ("PT1M30S", 90.0, false),
            ("PT2H", 7200.0, false),
            ("P1D", 86400.0, false),
            ("P1W", 604_800.0, false),
            ("P1DT1H", 90000.0, false),
            ("PT0S", 0.0, false),
            ("P0", 0.0, false),
            ("PT1,5S", 1.5, false),
            ("-PT1S", 1.0, true),
            ("+PT1S", 1.0, false),
        ];
        for (input, secs, neg) in ok {
            match parse_iso8601_duration(input) {
                Ok(d) => {
                    assert!((d.seconds - secs).abs() < 1e-9, "{input}: {d:?}");
                    assert_eq!(d.negative, *neg, "{input}");
                }
                Err(e) => panic!("{input}: {e}"),
            }
        }
        for bad in [
            "", "P", "PT", "1S", "PT1", "PTS", "PT1X", "PT1S1M", "P1S", "PT1.2.3S", "5s", "pt1s",
            "PT1SS", "P1DT",
        ] {
            assert!(
                parse_iso8601_duration(bad).is_err(),
                "{bad:?} must not parse"
            );
        }
    }

    #[test]
    fn destination_json_names() {
        let d = Destination {
            ref_: Some(KReference {
                kind: "Service".into(),
                name: "display".into(),
                api_version: "serving.knative.dev/v1".into(),
                ..KReference::default()
            }),
            uri: Some("/path".into()),
            ca_certs: Some("pem".into()),
            audience: None,
        };
        let v = serde_json::to_value(&d).unwrap_or_default();
        assert_eq!(
            v,
            serde_json::json!({
                "ref": {"kind": "Service", "name": "display", "apiVersion": "serving.knative.dev/v1"},
                "uri": "/path",
                "CACerts": "pem"
            })
        );
        let back: Destination = serde_json::from_value(v).unwrap_or_default();
        assert_eq!(back, d);
    }

    #[test]
    fn source_spec_is_a_duck_view() {
        let v = serde_json::json!({"schedule": "* * * * *", "sink": {"uri": "http://x"}});
        let s: SourceSpec = serde_json::from_value(v).unwrap_or_default();
        assert_eq!(s.sink.uri.as_deref(), Some("http://x"));
    }
}
