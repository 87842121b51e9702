//! The flags kn's eventing commands share, as pure functions: `key=value` lists where `key-`
//! removes (`--filter`, `--ce-override`, `--env`), the delivery flags of brokers and triggers
//! (`--retry`, `--backoff-*`, `--timeout`, `--dl-sink`), label selectors (`a=b,c=d`) and
//! ApiServerSource resources (`Kind:apiVersion[:selector]`).
//!
//! Every error names the flag it is about, so `wisp` can print it as is.

use std::collections::BTreeMap;

use wisp_api::eventing::{
    ApiVersionKindSelector, CloudEventOverrides, DeliverySpec, Destination, parse_iso8601_duration,
};
use wisp_api::meta::LabelSelector;

/// `key=value` entries to set and `key-` entries to remove.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyValueEdits {
    pub set: BTreeMap<String, String>,
    pub remove: Vec<String>,
}

impl KeyValueEdits {
    /// Sets, then removes (kn's `Merge(...).Remove(...)`).
    pub fn apply(&self, map: &mut BTreeMap<String, String>) {
        for (k, v) in &self.set {
            map.insert(k.clone(), v.clone());
        }
        for k in &self.remove {
            map.remove(k);
        }
    }
}

/// kn's `MapFromArray` (`allow_singles` false: every entry needs `=`) or
/// `MapFromArrayAllowingSingles` + `ParseMinusSuffix` (a bare `key` sets `""`, `key-`
/// removes).
pub fn key_values(
    flag: &str,
    items: &[String],
    allow_singles: bool,
) -> Result<KeyValueEdits, String> {
    let mut set = BTreeMap::new();
    let mut remove = Vec::new();
    for item in items {
        match item.split_once('=') {
            Some(("", _)) => return Err(format!("Invalid {flag} {item:?}: the key is empty")),
            Some((k, v)) => {
                if set.insert(k.to_string(), v.to_string()).is_some() {
                    return Err(format!("Invalid {flag}: the key {k:?} is given twice"));
                }
            }
            None if !allow_singles => {
                return Err(format!(
                    "Invalid {flag} {item:?}: want KEY=VALUE (the \"=\" is missing)"
                ));
            }
            None => match item.strip_suffix('-') {
                Some(k) if !k.is_empty() => remove.push(k.to_string()),
                _ if item.is_empty() => {
                    return Err(format!("Invalid {flag} \"\": the key is empty"));
                }
                _ => {
                    set.insert(item.clone(), String::new());
                }
            },
        }
    }
    Ok(KeyValueEdits { set, remove })
}

/// `--ce-override key=value` (`key-` removes) applied to a source's `ceOverrides`; an empty
/// map leaves none.
pub fn apply_ce_overrides(
    items: &[String],
    overrides: &mut Option<CloudEventOverrides>,
) -> Result<(), String> {
    if items.is_empty() {
        return Ok(());
    }
    let edits = key_values("--ce-override", items, true)?;
    let mut ext = overrides.take().unwrap_or_default().extensions;
    edits.apply(&mut ext);
    *overrides = (!ext.is_empty()).then_some(CloudEventOverrides { extensions: ext });
    Ok(())
}

/// kn's delivery flags (`broker create`, wisp's `trigger create|update` too).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DeliveryArgs {
    /// The sink receiving events that could not be sent to a destination (same forms as
    /// --sink).
    #[arg(long = "dl-sink", value_name = "SINK")]
    pub dl_sink: Option<String>,
    /// The minimum number of retries the sender should attempt when sending an event before
    /// moving it to the dead letter sink.
    #[arg(long, value_name = "N")]
    pub retry: Option<i32>,
    /// The timeout of each single request, an ISO-8601 duration (PT5S). Must be > 0.
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// The retry backoff policy.
    #[arg(long = "backoff-policy", value_name = "POLICY", value_parser = ["linear", "exponential"])]
    pub backoff_policy: Option<String>,
    /// The delay before retrying, an ISO-8601 duration (PT0.2S).
    #[arg(long = "backoff-delay", value_name = "DURATION")]
    pub backoff_delay: Option<String>,
    /// An upper bound on a "Retry-After" answer when backing off (429 and 503), an ISO-8601
    /// duration; PT0S ignores Retry-After.
    #[arg(long = "retry-after-max", value_name = "DURATION")]
    pub retry_after_max: Option<String>,
}

fn iso_duration(flag: &str, value: &str, positive: bool) -> Result<String, String> {
    let d = parse_iso8601_duration(value).map_err(|e| {
        format!("Invalid {flag} {value:?}: want an ISO-8601 duration such as PT5S ({e})")
    })?;
    if d.negative || (positive && d.is_zero()) {
        let want = if positive { "> 0" } else { ">= 0" };
        return Err(format!(
            "Invalid {flag} {value:?}: the duration must be {want}"
        ));
    }
    Ok(value.to_string())
}

impl DeliveryArgs {
    /// Whether any delivery flag was given.
    pub fn any(&self) -> bool {
        self.dl_sink.is_some()
            || self.retry.is_some()
            || self.timeout.is_some()
            || self.backoff_policy.is_some()
            || self.backoff_delay.is_some()
            || self.retry_after_max.is_some()
    }

    /// Applies the flags to `delivery`; `dead_letter` is `--dl-sink`, already resolved. Fields
    /// whose flag is absent are kept.
    pub fn apply(
        &self,
        delivery: &mut Option<DeliverySpec>,
        dead_letter: Option<Destination>,
    ) -> Result<(), String> {
        if !self.any() {
            return Ok(());
        }
        let mut d = delivery.take().unwrap_or_default();
        if let Some(dls) = dead_letter {
            d.dead_letter_sink = Some(dls);
        }
        if let Some(r) = self.retry {
            if r < 0 {
                return Err(format!("Invalid --retry {r}: must be >= 0"));
            }
            d.retry = Some(r);
        }
        if let Some(t) = &self.timeout {
            d.timeout = Some(iso_duration("--timeout", t, true)?);
        }
        if let Some(p) = &self.backoff_policy {
            d.backoff_policy = Some(p.clone());
        }
        if let Some(b) = &self.backoff_delay {
            d.backoff_delay = Some(iso_duration("--backoff-delay", b, false)?);
        }
        if let Some(m) = &self.retry_after_max {
            d.retry_after_max = Some(iso_duration("--retry-after-max", m, false)?);
        }
        *delivery = Some(d);
        Ok(())
    }
}

/// `key1=value1,key2=value2` as a `matchLabels` selector.
pub fn label_selector(flag: &str, text: &str) -> Result<LabelSelector, String> {
    let mut labels = BTreeMap::new();
    for pair in text.split(',') {
        match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                labels.insert(k.to_string(), v.to_string());
            }
            _ => {
                return Err(format!(
                    "Invalid {flag} {text:?}: want a label selector key1=value1,key2=value2"
                ));
            }
        }
    }
    Ok(LabelSelector {
        match_labels: labels,
        ..LabelSelector::default()
    })
}

/// `--resource Kind:apiVersion[:key=value,...]` (kn's `getValidAPIVersionKindSelector`).
pub fn api_version_kind_selector(text: &str) -> Result<ApiVersionKindSelector, String> {
    const WANT: &str = "want Kind:apiVersion[:label1=val1,label2=val2,..]";
    let parts: Vec<&str> = text.splitn(3, ':').collect();
    let kind = parts[0];
    if kind.is_empty() {
        return Err(format!(
            "Invalid --resource {text:?}: the kind is missing ({WANT})"
        ));
    }
    let api_version = parts.get(1).copied().unwrap_or("");
    if api_version.is_empty() {
        return Err(format!(
            "Invalid --resource {text:?}: the apiVersion is missing ({WANT})"
        ));
    }
    let selector = match parts.get(2) {
        Some(s) if !s.is_empty() => Some(label_selector("--resource", s)?),
        _ => None,
    };
    Ok(ApiVersionKindSelector {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        selector,
    })
}

/// `Kind:apiVersion[:key=value,...]` of a resource, as kn prints it.
pub fn api_version_kind_selector_text(r: &ApiVersionKindSelector) -> String {
    let mut text = format!("{}:{}", r.kind, r.api_version);
    if let Some(s) = &r.selector {
        let labels = selector_text(s);
        if !labels.is_empty() {
            text = format!("{text}:{labels}");
        }
    }
    text
}

/// `a=b,c=d` of a selector's `matchLabels`, or `[match expressions]`.
pub fn selector_text(s: &LabelSelector) -> String {
    if !s.match_labels.is_empty() {
        let pairs: Vec<String> = s
            .match_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        return pairs.join(",");
    }
    if !s.match_expressions.is_empty() {
        return "[match expressions]".to_string();
    }
    String::new()
}

/// kn's `AddedAndRemovalListsFromArray` for `--resource` on update: entries ending with `-`
/// remove that resource, the others add it. Removing one that is not there is an error.
pub fn edit_resources(
    existing: &[ApiVersionKindSelector],
    items: &[String],
) -> Result<Vec<ApiVersionKindSelector>, String> {
    let mut out = existing.to_vec();
    let mut missing = Vec::new();
    for item in items {
        match item.strip_suffix('-') {
            Some(spec) => {
                let r = api_version_kind_selector(spec)?;
                match out.iter().position(|e| *e == r) {
                    Some(i) => {
                        out.remove(i);
                    }
                    None => missing.push(spec.to_string()),
                }
            }
            None => {
                let r = api_version_kind_selector(item)?;
                if !out.contains(&r) {
                    out.push(r);
                }
            }
        }
    }
    if !missing.is_empty() {
        return Err(format!(
            "Invalid --resource: cannot find resources to remove: {}",
            missing.join(", ")
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn key_values_like_kn() {
        let got = key_values("--filter", &strings(&["type=a", "source=b=c"]), false);
        let want: BTreeMap<String, String> = [("source", "b=c"), ("type", "a")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got.map(|e| e.set), Ok(want));

        let got = key_values("--filter", &strings(&["type-", "x", "a=1"]), true);
        assert_eq!(
            got.as_ref().map(|e| e.remove.clone()),
            Ok(vec!["type".to_string()])
        );
        assert_eq!(
            got.map(|e| e.set.get("x").cloned()),
            Ok(Some(String::new()))
        );

        let errors = [
            (
                strings(&["type"]),
                false,
                "Invalid --filter \"type\": want KEY=VALUE (the \"=\" is missing)",
            ),
            (
                strings(&["=a"]),
                true,
                "Invalid --filter \"=a\": the key is empty",
            ),
            (
                strings(&["a=1", "a=2"]),
                true,
                "Invalid --filter: the key \"a\" is given twice",
            ),
            (
                strings(&[""]),
                true,
                "Invalid --filter \"\": the key is empty",
            ),
        ];
        for (items, singles, want) in errors {
            assert_eq!(
                key_values("--filter", &items, singles).err().as_deref(),
                Some(want),
                "{items:?}"
            );
        }
    }

    #[test]
    fn edits_set_then_remove() {
        let mut map: BTreeMap<String, String> = [("type", "old"), ("source", "s")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let edits = key_values(
            "--filter",
            &strings(&["type=new", "source-", "gone-"]),
            true,
        )
        .unwrap_or_default();
        edits.apply(&mut map);
        assert_eq!(map.len(), 1);
        assert_eq!(map.get("type").map(String::as_str), Some("new"));
    }

    #[test]
    fn ce_overrides() {
        let mut o = None;
        assert_eq!(
            apply_ce_overrides(&strings(&["a=1", "b=2"]), &mut o),
            Ok(())
        );
        assert_eq!(o.as_ref().map(|o| o.extensions.len()), Some(2));
        assert_eq!(apply_ce_overrides(&strings(&["a-", "b-"]), &mut o), Ok(()));
        assert_eq!(o, None);
        assert_eq!(apply_ce_overrides(&[], &mut o), Ok(()));
        assert_eq!(o, None);
    }

    #[test]
    fn delivery_flags() {
        let args = DeliveryArgs {
            retry: Some(3),
            backoff_policy: Some("exponential".into()),
            backoff_delay: Some("PT0.5S".into()),
            timeout: Some("PT10S".into()),
            ..DeliveryArgs::default()
        };
        let mut d = None;
        let dls = Destination::uri("http://dead.example");
        assert_eq!(args.apply(&mut d, Some(dls.clone())), Ok(()));
        assert_eq!(
            d,
            Some(DeliverySpec {
                dead_letter_sink: Some(dls.clone()),
                retry: Some(3),
                timeout: Some("PT10S".into()),
                backoff_policy: Some("exponential".into()),
                backoff_delay: Some("PT0.5S".into()),
                ..DeliverySpec::default()
            })
        );
        // Absent flags keep what is there.
        let more = DeliveryArgs {
            retry: Some(5),
            ..DeliveryArgs::default()
        };
        assert_eq!(more.apply(&mut d, None), Ok(()));
        assert_eq!(d.as_ref().and_then(|d| d.retry), Some(5));
        assert_eq!(
            d.as_ref().and_then(|d| d.dead_letter_sink.clone()),
            Some(dls)
        );
        // Nothing given: nothing changes, not even an empty `delivery: {}`.
        let mut none = None;
        assert_eq!(DeliveryArgs::default().apply(&mut none, None), Ok(()));
        assert_eq!(none, None);

        let bad = [
            (
                DeliveryArgs {
                    timeout: Some("5s".into()),
                    ..DeliveryArgs::default()
                },
                "Invalid --timeout \"5s\": want an ISO-8601 duration such as PT5S (\"5s\": expected 'P' period mark at the start)",
            ),
            (
                DeliveryArgs {
                    timeout: Some("PT0S".into()),
                    ..DeliveryArgs::default()
                },
                "Invalid --timeout \"PT0S\": the duration must be > 0",
            ),
            (
                DeliveryArgs {
                    backoff_delay: Some("-PT1S".into()),
                    ..DeliveryArgs::default()
                },
                "Invalid --backoff-delay \"-PT1S\": the duration must be >= 0",
            ),
            (
                DeliveryArgs {
                    retry: Some(-1),
                    ..DeliveryArgs::default()
                },
                "Invalid --retry -1: must be >= 0",
            ),
        ];
        for (args, want) in bad {
            assert_eq!(args.apply(&mut None, None).err().as_deref(), Some(want));
        }
    }

    #[test]
    fn resources() {
        let r = api_version_kind_selector("Event:v1:app=a,tier=web");
        assert_eq!(
            r.as_ref().map(api_version_kind_selector_text).as_deref(),
            Ok("Event:v1:app=a,tier=web")
        );
        let plain = api_version_kind_selector("Deployment:apps/v1");
        assert_eq!(plain.as_ref().map(|r| r.selector.is_none()), Ok(true));
        for (bad, want) in [
            (
                ":v1",
                "Invalid --resource \":v1\": the kind is missing (want Kind:apiVersion[:label1=val1,label2=val2,..])",
            ),
            (
                "Event",
                "Invalid --resource \"Event\": the apiVersion is missing (want Kind:apiVersion[:label1=val1,label2=val2,..])",
            ),
            (
                "Event:v1:app",
                "Invalid --resource \"app\": want a label selector key1=value1,key2=value2",
            ),
        ] {
            assert_eq!(api_version_kind_selector(bad).err().as_deref(), Some(want));
        }

        let existing = vec![plain.clone().unwrap_or_default()];
        let edited = edit_resources(
            &existing,
            &strings(&["Deployment:apps/v1-", "Event:v1", "Event:v1"]),
        );
        assert_eq!(
            edited.map(|v| v
                .iter()
                .map(api_version_kind_selector_text)
                .collect::<Vec<_>>()),
            Ok(vec!["Event:v1".to_string()])
        );
        assert_eq!(
            edit_resources(&[], &strings(&["Pod:v1-"])).err().as_deref(),
            Some("Invalid --resource: cannot find resources to remove: Pod:v1")
        );
    }
}
