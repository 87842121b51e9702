//! kn's sink flags (`--sink`, `--dl-sink`, `--sink-reply`, `--sink-dead-letter`, `event send
//! --to`): a pure parser from what the user typed to a [`SinkRef`], the `Destination` it
//! becomes, the text list tables print for a `Destination`, and the one I/O step kn adds, a
//! GET that the referenced object exists.
//!
//! The forms are kn's (`knative.dev/client/pkg/flags/sink`): `http(s)://...` is a URI;
//! `NAME` alone is a Knative Service; `PREFIX:NAME[:NAMESPACE]` with the prefixes `ksvc`,
//! `kservice`, `broker` and `channel`, or a `group/version/resource` prefix
//! (`messaging.knative.dev/v1/inmemorychannels:pipe`). wisp also reads the form its own tables
//! print (`inmemorychannels.messaging.knative.dev/v1:pipe`), any kind it serves by name or
//! short name (`imc:pipe`, `sequence:seq`), and `KIND:APIVERSION:NAME`
//! (`Parallel:flows.knative.dev/v1:fan`). Kubernetes Services (`svc:`) are refused: wisp
//! serves none, so such a reference could never resolve.

use wisp_api::eventing::{Destination, KReference};
use wisp_api::kinds::{self, ResourceInfo};

use crate::Ctx;
use crate::client::object_path;

/// A sink as typed on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkRef {
    /// An absolute `http`/`https` URL.
    Uri(String),
    /// An object wisp serves; `namespace` when one was given (`ksvc:NAME:NAMESPACE`).
    Object {
        info: &'static ResourceInfo,
        name: String,
        namespace: Option<String>,
    },
}

/// A sink flag wisp cannot use; the message names the flag and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {flag} {value:?}: {reason}")]
pub struct SinkError {
    pub flag: String,
    pub value: String,
    pub reason: String,
}

/// Kinds an event can be sent to (they have an address or a URL).
const ADDRESSABLE: &[&ResourceInfo] = &[
    &kinds::SERVICES,
    &kinds::ROUTES,
    &kinds::BROKERS,
    &kinds::CHANNELS,
    &kinds::IN_MEMORY_CHANNELS,
    &kinds::SEQUENCES,
    &kinds::PARALLELS,
];

/// kn's built-in prefixes (`knative.dev/client/pkg/flags/sink.DefaultMappings`).
fn builtin_prefix(prefix: &str) -> Option<Result<&'static ResourceInfo, String>> {
    match prefix {
        "ksvc" | "kservice" => Some(Ok(&kinds::SERVICES)),
        "broker" => Some(Ok(&kinds::BROKERS)),
        "channel" => Some(Ok(&kinds::CHANNELS)),
        "svc" | "service" => Some(Err(
            "wisp serves no Kubernetes Services: use ksvc:NAME for a Knative Service".to_string(),
        )),
        _ => None,
    }
}

/// `v1`, `v1beta1`, `v2alpha3`: a Kubernetes version.
fn is_version(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('v') else {
        return false;
    };
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    if digits == 0 {
        return false;
    }
    let tail = &rest[digits..];
    if tail.is_empty() {
        return true;
    }
    ["alpha", "beta"].iter().any(|stage| {
        tail.strip_prefix(stage)
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    })
}

/// `serving.knative.dev/v1` or `v1`.
fn looks_like_api_version(s: &str) -> bool {
    match s.rsplit_once('/') {
        Some((group, version)) => !group.is_empty() && is_version(version),
        None => is_version(s),
    }
}

/// The served resource of a `group/version/resource` (kn) or `resource.group/version` (what
/// list tables print) prefix.
fn resource_prefix(prefix: &str) -> Result<&'static ResourceInfo, String> {
    let (left, right) = prefix.rsplit_once('/').unwrap_or(("", prefix));
    let (group, version, resource) = match left.split_once('/') {
        Some((group, version)) => (group, version, right),
        None => match left.split_once('.') {
            Some((resource, group)) => (group, right, resource),
            None => ("", right, left),
        },
    };
    let mut plural = resource.to_ascii_lowercase();
    if !plural.ends_with('s') {
        plural.push('s');
    }
    kinds::find(group, &plural)
        .filter(|r| r.version == version)
        .ok_or_else(|| {
            format!("wisp serves no resource {plural:?} in group {group:?} version {version:?}")
        })
}

/// A kind by `apiVersion` and kind, the kind's case ignored.
fn by_api_version_kind(api_version: &str, kind: &str) -> Result<&'static ResourceInfo, String> {
    kinds::ALL
        .iter()
        .find(|r| r.api_version() == api_version && r.kind.eq_ignore_ascii_case(kind))
        .ok_or_else(|| format!("wisp serves no kind {kind:?} in {api_version:?}"))
}

fn prefix_kind(prefix: &str) -> Result<&'static ResourceInfo, String> {
    if let Some(builtin) = builtin_prefix(prefix) {
        return builtin;
    }
    if prefix.contains('/') {
        return resource_prefix(prefix);
    }
    kinds::by_name_or_short(prefix).ok_or_else(|| {
        format!(
            "unknown sink prefix {prefix:?}: use ksvc:NAME, broker:NAME, channel:NAME, \
             KIND:APIVERSION:NAME or an http(s) URL"
        )
    })
}

/// An absolute `http(s)` URL with a host.
fn check_url(value: &str) -> Result<(), String> {
    const WANT: &str = "not a valid URL: want http(s)://HOST[:PORT][/PATH]";
    let uri: http::Uri = value.parse().map_err(|_| WANT.to_string())?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let host_ok = uri.host().is_some_and(|h| !h.is_empty());
    if !scheme_ok || !host_ok {
        return Err(WANT.to_string());
    }
    Ok(())
}

/// Reads a sink flag's value. `flag` (`--sink`, `--to`, ...) only names the flag in errors.
pub fn parse(flag: &str, value: &str) -> Result<SinkRef, SinkError> {
    let err = |reason: String| SinkError {
        flag: flag.to_string(),
        value: value.to_string(),
        reason,
    };
    if value.is_empty() {
        return Err(err(
            "a sink is required: NAME or ksvc:NAME, broker:NAME, channel:NAME, or an http(s) URL"
                .to_string(),
        ));
    }
    let parts: Vec<&str> = value.splitn(3, ':').collect();
    if matches!(parts[0], "http" | "https") {
        check_url(value).map_err(err)?;
        return Ok(SinkRef::Uri(value.to_string()));
    }
    let (info, name, namespace) = match parts.as_slice() {
        [name] => (&kinds::SERVICES, *name, None),
        [prefix, name] => (prefix_kind(prefix).map_err(err)?, *name, None),
        [kind, api_version, name]
            if builtin_prefix(kind).is_none()
                && !kind.contains('/')
                && looks_like_api_version(api_version) =>
        {
            (
                by_api_version_kind(api_version, kind).map_err(err)?,
                *name,
                None,
            )
        }
        [prefix, name, namespace] => (prefix_kind(prefix).map_err(err)?, *name, Some(*namespace)),
        _ => return Err(err("cannot read the sink".to_string())),
    };
    if name.is_empty() {
        return Err(err("the name is missing".to_string()));
    }
    if namespace.is_some_and(str::is_empty) {
        return Err(err(
            "the namespace after the second ':' is empty".to_string()
        ));
    }
    if !ADDRESSABLE.contains(&info) {
        return Err(err(format!(
            "a {} cannot receive events (not addressable)",
            info.kind
        )));
    }
    Ok(SinkRef::Object {
        info,
        name: name.to_string(),
        namespace: namespace.map(str::to_string),
    })
}

impl SinkRef {
    /// The `Destination` to store; references get a namespace (`current` unless one was
    /// typed), as kn writes them.
    pub fn destination(&self, current: &str) -> Destination {
        match self {
            SinkRef::Uri(u) => Destination::uri(u.clone()),
            SinkRef::Object {
                info,
                name,
                namespace,
            } => Destination {
                ref_: Some(KReference {
                    kind: info.kind.to_string(),
                    api_version: info.api_version(),
                    name: name.clone(),
                    namespace: namespace.clone().unwrap_or_else(|| current.to_string()),
                    ..KReference::default()
                }),
                ..Destination::default()
            },
        }
    }
}

/// Parses a sink flag and, for an object, checks that it exists (kn's `ResolveSink`).
pub async fn resolve(ctx: &Ctx, flag: &str, value: &str) -> anyhow::Result<Destination> {
    let sink = parse(flag, value)?;
    if let SinkRef::Object {
        info,
        name,
        namespace,
    } = &sink
    {
        let ns = namespace.as_deref().unwrap_or(&ctx.namespace);
        match ctx.client.get(&object_path(info, Some(ns), name)).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {
                return Err(SinkError {
                    flag: flag.to_string(),
                    value: value.to_string(),
                    reason: format!("{} {name:?} not found in namespace {ns:?}", info.kind),
                }
                .into());
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(sink.destination(&ctx.namespace))
}

/// Resolves an optional sink flag.
pub async fn resolve_opt(
    ctx: &Ctx,
    flag: &str,
    value: Option<&str>,
) -> anyhow::Result<Option<Destination>> {
    match value {
        Some(v) => resolve(ctx, flag, v).await.map(Some),
        None => Ok(None),
    }
}

/// kn's `UnsafeGuessKindToResource`: the lower-case plural of a kind.
fn guess_plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if lower.ends_with('s') {
        format!("{lower}es")
    } else if let Some(stem) = lower.strip_suffix('y') {
        format!("{stem}ies")
    } else {
        format!("{lower}s")
    }
}

/// The prefix kn prints for a reference: its alias (`ksvc`, `broker`, `channel`, `svc`) or
/// `resource.group/version`.
fn ref_prefix(r: &KReference) -> String {
    let (group, version) = r
        .api_version
        .rsplit_once('/')
        .unwrap_or(("", &r.api_version));
    match (group, r.kind.as_str()) {
        ("serving.knative.dev", "Service") => return "ksvc".into(),
        ("eventing.knative.dev", "Broker") => return "broker".into(),
        ("messaging.knative.dev", "Channel") => return "channel".into(),
        ("", "Service") => return "svc".into(),
        _ => {}
    }
    let plural = kinds::by_kind(group, &r.kind)
        .map(|i| i.plural.to_string())
        .unwrap_or_else(|| guess_plural(&r.kind));
    if group.is_empty() {
        format!("{plural}/{version}")
    } else {
        format!("{plural}.{group}/{version}")
    }
}

/// A destination as list tables show it (kn's `Reference.AsText`): `ksvc:NAME`,
/// `broker:NAME:OTHER-NAMESPACE`, a URL; a reference with a relative URI gets it appended.
pub fn sink_text(d: &Destination, namespace: &str) -> String {
    let uri = d.uri.as_deref().unwrap_or("");
    let Some(r) = &d.ref_ else {
        return uri.to_string();
    };
    let mut text = format!("{}:{}", ref_prefix(r), r.name);
    if !r.namespace.is_empty() && r.namespace != namespace {
        text = format!("{text}:{}", r.namespace);
    }
    match uri {
        "" => text,
        u if u.starts_with('/') => format!("{text}{u}"),
        u => format!("{text} {u}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(info: &'static ResourceInfo, name: &str, ns: Option<&str>) -> SinkRef {
        SinkRef::Object {
            info,
            name: name.into(),
            namespace: ns.map(str::to_string),
        }
    }

    #[test]
    fn parses_kns_forms() {
        let table: &[(&str, SinkRef)] = &[
            ("hello", obj(&kinds::SERVICES, "hello", None)),
            ("ksvc:hello", obj(&kinds::SERVICES, "hello", None)),
            ("kservice:hello", obj(&kinds::SERVICES, "hello", None)),
            (
                "ksvc:hello:team",
                obj(&kinds::SERVICES, "hello", Some("team")),
            ),
            ("broker:default", obj(&kinds::BROKERS, "default", None)),
            (
                "broker:nest:other",
                obj(&kinds::BROKERS, "nest", Some("other")),
            ),
            ("channel:pipe", obj(&kinds::CHANNELS, "pipe", None)),
            (
                "http://example.com/path?q=1",
                SinkRef::Uri("http://example.com/path?q=1".into()),
            ),
            (
                "https://127.0.0.1:8443",
                SinkRef::Uri("https://127.0.0.1:8443".into()),
            ),
            // kn's group/version/resource prefix.
            (
                "messaging.knative.dev/v1/inmemorychannels:pipe",
                obj(&kinds::IN_MEMORY_CHANNELS, "pipe", None),
            ),
            (
                "flows.knative.dev/v1/Sequence:seq:team",
                obj(&kinds::SEQUENCES, "seq", Some("team")),
            ),
            // What list tables print.
            (
                "inmemorychannels.messaging.knative.dev/v1:pipe",
                obj(&kinds::IN_MEMORY_CHANNELS, "pipe", None),
            ),
            // Kinds wisp serves, by name or short name.
            ("imc:pipe", obj(&kinds::IN_MEMORY_CHANNELS, "pipe", None)),
            ("sequence:seq", obj(&kinds::SEQUENCES, "seq", None)),
            (
                "Parallel:fan:team",
                obj(&kinds::PARALLELS, "fan", Some("team")),
            ),
            // KIND:APIVERSION:NAME.
            (
                "Parallel:flows.knative.dev/v1:fan",
                obj(&kinds::PARALLELS, "fan", None),
            ),
            (
                "broker:eventing.knative.dev/v1:x",
                obj(&kinds::BROKERS, "eventing.knative.dev/v1", Some("x")),
            ),
            (
                "InMemoryChannel:messaging.knative.dev/v1:pipe",
                obj(&kinds::IN_MEMORY_CHANNELS, "pipe", None),
            ),
        ];
        for (input, want) in table {
            assert_eq!(parse("--sink", input).as_ref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn errors_name_the_flag() {
        let table: &[(&str, &str, &str)] = &[
            (
                "--sink",
                "",
                "invalid --sink \"\": a sink is required: NAME or ksvc:NAME, broker:NAME, channel:NAME, or an http(s) URL",
            ),
            (
                "--dl-sink",
                "ksvc:",
                "invalid --dl-sink \"ksvc:\": the name is missing",
            ),
            (
                "--sink",
                "svc:receiver",
                "invalid --sink \"svc:receiver\": wisp serves no Kubernetes Services: use ksvc:NAME for a Knative Service",
            ),
            (
                "--sink",
                "http://",
                "invalid --sink \"http://\": not a valid URL: want http(s)://HOST[:PORT][/PATH]",
            ),
            (
                "--sink",
                "http:/x",
                "invalid --sink \"http:/x\": not a valid URL: want http(s)://HOST[:PORT][/PATH]",
            ),
            (
                "--to",
                "foo:bar",
                "invalid --to \"foo:bar\": unknown sink prefix \"foo\": use ksvc:NAME, broker:NAME, channel:NAME, KIND:APIVERSION:NAME or an http(s) URL",
            ),
            (
                "--sink",
                "KafkaChannel:messaging.knative.dev/v1beta1:k",
                "invalid --sink \"KafkaChannel:messaging.knative.dev/v1beta1:k\": wisp serves no kind \"KafkaChannel\" in \"messaging.knative.dev/v1beta1\"",
            ),
            (
                "--sink",
                "special.eventing.dev/v1alpha1/channels:pipe",
                "invalid --sink \"special.eventing.dev/v1alpha1/channels:pipe\": wisp serves no resource \"channels\" in group \"special.eventing.dev\" version \"v1alpha1\"",
            ),
            (
                "--sink",
                "trigger:t1",
                "invalid --sink \"trigger:t1\": a Trigger cannot receive events (not addressable)",
            ),
            (
                "--sink",
                "ksvc:a:",
                "invalid --sink \"ksvc:a:\": the namespace after the second ':' is empty",
            ),
        ];
        for (flag, input, want) in table {
            let got = parse(flag, input).err().map(|e| e.to_string());
            assert_eq!(got.as_deref(), Some(*want), "{input}");
        }
    }

    #[test]
    fn versions() {
        for v in [
            "v1",
            "v1beta1",
            "v2alpha10",
            "serving.knative.dev/v1",
            "apps/v1",
        ] {
            assert!(looks_like_api_version(v), "{v}");
        }
        for v in ["v", "v1beta", "vx", "hello", "1", "/v1", "v1gamma1"] {
            assert!(!looks_like_api_version(v), "{v}");
        }
    }

    #[test]
    fn destinations_carry_the_namespace() {
        let d = obj(&kinds::SERVICES, "hello", None).destination("default");
        assert_eq!(
            serde_json::to_value(&d).ok(),
            Some(serde_json::json!({"ref": {
                "kind": "Service", "namespace": "default", "name": "hello",
                "apiVersion": "serving.knative.dev/v1"
            }}))
        );
        let d = obj(&kinds::BROKERS, "b", Some("team")).destination("default");
        assert_eq!(d.ref_.map(|r| r.namespace).as_deref(), Some("team"));
        let d = SinkRef::Uri("http://x".into()).destination("default");
        assert_eq!(d, Destination::uri("http://x"));
    }

    #[test]
    fn text_round_trips_through_the_parser() {
        let cases = [
            ("ksvc:hello", "ksvc:hello"),
            ("broker:b:team", "broker:b:team"),
            ("channel:pipe", "channel:pipe"),
            ("imc:pipe", "inmemorychannels.messaging.knative.dev/v1:pipe"),
            ("sequence:s", "sequences.flows.knative.dev/v1:s"),
            ("http://x.example/a", "http://x.example/a"),
        ];
        for (input, text) in cases {
            let d = parse("--sink", input)
                .map(|s| s.destination("default"))
                .unwrap_or_default();
            assert_eq!(sink_text(&d, "default"), text, "{input}");
            let again = parse("--sink", text).map(|s| s.destination("default"));
            assert_eq!(again, Ok(d), "{text}");
        }
        let with_path = Destination {
            uri: Some("/events".into()),
            ..Destination::reference("serving.knative.dev/v1", "Service", "hello")
        };
        assert_eq!(sink_text(&with_path, "default"), "ksvc:hello/events");
        let foreign = Destination::reference("messaging.knative.dev/v1beta1", "KafkaChannel", "k");
        assert_eq!(
            sink_text(&foreign, "default"),
            "kafkachannels.messaging.knative.dev/v1beta1:k"
        );
        let core = Destination::reference("v1", "Service", "s");
        assert_eq!(sink_text(&core, "default"), "svc:s");
        assert_eq!(sink_text(&Destination::default(), "default"), "");
        assert_eq!(guess_plural("Policy"), "policies");
        assert_eq!(guess_plural("Class"), "classes");
    }
}
