//! `wisp event send`: kn's event plugin (`kn event send`, knative-extensions/kn-plugin-event)
//! built in. It builds a CloudEvent from flags, finds where the target listens through the
//! API (a broker's or channel's `status.address.url`, a Knative Service's `status.url`), and
//! POSTs the event there in binary content mode (`ce-*` headers, the data as the body).
//!
//! The pure parts (building the event, its headers, the target's URL) are functions with
//! table tests; the two round trips (GET the target, POST the event) are in [`send`].
//!
//! Services are reached through wisp's gateway (`--gateway`, `$WISP_GATEWAY_ADDR`) with the
//! Service's host in `Host`, as the event plane does: a Service URL such as
//! `http://hello.default.localhost` names the gateway's virtual host, not a port of its own.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Map, Value};
use wisp_api::kinds::{self, ResourceInfo};

use crate::Ctx;
use crate::client::object_path;
use crate::sink::{self, SinkError, SinkRef};

/// kn-event's default `type`.
pub const DEFAULT_TYPE: &str = "dev.knative.cli.plugin.event.generic";

/// kn-event's default `source` is `kn-event/v<version>`; wisp's names itself.
pub fn default_source() -> String {
    concat!("wisp-event/v", env!("CARGO_PKG_VERSION")).to_string()
}

#[derive(Debug, clap::Subcommand)]
pub enum EventCommand {
    /// Build a CloudEvent and send it to a broker, channel, service or URL.
    Send(SendArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct SendArgs {
    /// Where to send: broker:NAME, channel:NAME, ksvc:NAME (or just NAME), another
    /// addressable KIND:APIVERSION:NAME, or an http URL; PREFIX:NAME:NAMESPACE for another
    /// namespace.
    #[arg(
        short = 'r',
        long,
        value_name = "TARGET",
        required_unless_present = "to_url",
        conflicts_with = "to_url"
    )]
    pub to: Option<String>,
    /// Send to this URL, as is.
    #[arg(long = "to-url", value_name = "URL")]
    pub to_url: Option<String>,
    /// A path to append to the target's address, e.g. /events.
    #[arg(long = "addressable-uri", value_name = "PATH")]
    pub addressable_uri: Option<String>,
    /// The CloudEvent type.
    #[arg(short = 't', long = "type", value_name = "TYPE", default_value = DEFAULT_TYPE)]
    pub type_: String,
    /// The CloudEvent id [default: a new UUID].
    #[arg(short = 'i', long, value_name = "ID")]
    pub id: Option<String>,
    /// The CloudEvent source [default: wisp-event/v<version>].
    #[arg(short = 's', long, value_name = "SOURCE")]
    pub source: Option<String>,
    /// A field of the JSON data: PATH=VALUE, the path dotted (person.age=18); true, false
    /// and integers become JSON booleans and numbers, as in kn-event. Repeatable.
    #[arg(short = 'f', long = "field", value_name = "PATH=VALUE")]
    pub fields: Vec<String>,
    /// A field of the JSON data whose value stays a string: PATH=VALUE. Repeatable.
    #[arg(long = "raw-field", value_name = "PATH=VALUE")]
    pub raw_fields: Vec<String>,
    /// The data as is, instead of a JSON object built from fields.
    #[arg(
        long,
        visible_alias = "raw-data",
        value_name = "DATA",
        conflicts_with_all = ["fields", "raw_fields"]
    )]
    pub data: Option<String>,
    /// Content type of the data [default: application/json for fields and JSON --data,
    /// text/plain for other --data].
    #[arg(long = "content-type", value_name = "TYPE")]
    pub content_type: Option<String>,
    /// A CloudEvent extension attribute NAME=VALUE (lower-case letters and digits).
    /// Repeatable.
    #[arg(short = 'e', long = "extension", value_name = "NAME=VALUE")]
    pub extensions: Vec<String>,
    /// Where wisp's gateway listens, for Knative Service targets.
    #[arg(
        long,
        env = "WISP_GATEWAY_ADDR",
        default_value = "127.0.0.1:8080",
        value_name = "HOST:PORT"
    )]
    pub gateway: String,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub timeout: u64,
}

/// A CloudEvent ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: String,
    pub source: String,
    pub type_: String,
    pub time: String,
    pub content_type: String,
    pub data: Vec<u8>,
    /// Other context attributes (`subject`, `dataschema`) and extensions.
    pub extensions: BTreeMap<String, String>,
}

/// kn-event's typed field values: a value that a bool, an integer or a float prints back as
/// exactly (`true`, `42`, `1.500000`, Go's `%f`) becomes that JSON type; anything else
/// (`2345.40`, `1e3`, `01`) stays a string.
pub fn field_value(text: &str) -> Value {
    match text {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>()
        && i.to_string() == text
    {
        return Value::from(i);
    }
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() && format!("{f:.6}") == text => Value::from(f),
        _ => Value::String(text.to_string()),
    }
}

/// Sets `path` (dotted) in `data`, creating objects on the way.
fn set_path(data: &mut Map<String, Value>, path: &str, value: Value) -> Result<(), String> {
    let mut parts = path.split('.').peekable();
    let mut current = data;
    while let Some(part) = parts.next() {
        if part.is_empty() {
            return Err(format!("the path {path:?} has an empty segment"));
        }
        if parts.peek().is_none() {
            current.insert(part.to_string(), value);
            return Ok(());
        }
        if let Some(v) = current.get(part).filter(|v| !v.is_object()) {
            return Err(format!(
                "the path {path:?} is in conflict with the value {v} set before"
            ));
        }
        current = current
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .ok_or_else(|| format!("the path {path:?} is in conflict with a value set before"))?;
    }
    Ok(())
}

/// The JSON data of `--field` and `--raw-field` (kn-event's `CreateWithArgs`).
pub fn data_from_fields(fields: &[String], raw_fields: &[String]) -> Result<Value, String> {
    let mut data = Map::new();
    for (flag, items, typed) in [
        ("--field", fields, true),
        ("--raw-field", raw_fields, false),
    ] {
        for item in items {
            let Some((path, value)) = item.split_once('=') else {
                return Err(format!("Invalid {flag} {item:?}: want PATH=VALUE"));
            };
            let value = if typed {
                field_value(value)
            } else {
                Value::String(value.to_string())
            };
            set_path(&mut data, path, value)
                .map_err(|e| format!("Invalid {flag} {item:?}: {e}"))?;
        }
    }
    Ok(Value::Object(data))
}

/// Context attributes `--extension` may not set: each has its own flag.
const OWN_FLAGS: &[(&str, &str)] = &[
    ("id", "--id"),
    ("source", "--source"),
    ("type", "--type"),
    ("specversion", "(always 1.0)"),
    ("time", "(the time of sending)"),
    ("datacontenttype", "--content-type"),
    ("data", "--data"),
    ("data_base64", "--data"),
];

fn extension(item: &str) -> Result<(String, String), String> {
    let Some((name, value)) = item.split_once('=') else {
        return Err(format!("Invalid --extension {item:?}: want NAME=VALUE"));
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Err(format!(
            "Invalid --extension {item:?}: a CloudEvents attribute name is lower-case letters \
             and digits"
        ));
    }
    if let Some((_, flag)) = OWN_FLAGS.iter().find(|(n, _)| *n == name) {
        return Err(format!(
            "Invalid --extension {item:?}: {name} is not an extension; use {flag}"
        ));
    }
    Ok((name.to_string(), value.to_string()))
}

/// The event `args` describe; `id` and `time` are what the caller drew.
pub fn build_event(args: &SendArgs, id: String, time: String) -> Result<Event, String> {
    let (data, default_type) = match &args.data {
        Some(raw) => {
            let is_json = serde_json::from_str::<Value>(raw).is_ok();
            let ctype = if is_json {
                "application/json"
            } else {
                "text/plain"
            };
            (raw.clone().into_bytes(), ctype)
        }
        None => {
            let value = data_from_fields(&args.fields, &args.raw_fields)?;
            (value.to_string().into_bytes(), "application/json")
        }
    };
    let mut extensions = BTreeMap::new();
    for item in &args.extensions {
        let (k, v) = extension(item)?;
        extensions.insert(k, v);
    }
    let id = args.id.clone().unwrap_or(id);
    let source = args.source.clone().unwrap_or_else(default_source);
    for (flag, value) in [
        ("--id", &id),
        ("--source", &source),
        ("--type", &args.type_),
    ] {
        if value.is_empty() {
            return Err(format!("Invalid {flag} \"\": a CloudEvent needs one"));
        }
    }
    Ok(Event {
        id,
        source,
        type_: args.type_.clone(),
        time,
        content_type: args
            .content_type
            .clone()
            .unwrap_or_else(|| default_type.to_string()),
        data,
        extensions,
    })
}

/// The CloudEvents HTTP binding's header encoding: space, `"`, `%` and everything outside
/// printable ASCII are percent-encoded (UTF-8 bytes).
pub fn header_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (0x21..=0x7e).contains(&b) && b != b'"' && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Binary content mode: `ce-*` headers and the content type.
pub fn binary_headers(e: &Event) -> Vec<(String, String)> {
    let mut headers = vec![
        ("ce-specversion".to_string(), "1.0".to_string()),
        ("ce-id".to_string(), header_value(&e.id)),
        ("ce-source".to_string(), header_value(&e.source)),
        ("ce-type".to_string(), header_value(&e.type_)),
        ("ce-time".to_string(), header_value(&e.time)),
    ];
    for (k, v) in &e.extensions {
        headers.push((format!("ce-{k}"), header_value(v)));
    }
    headers.push(("content-type".to_string(), e.content_type.clone()));
    headers
}

/// Where an object of `info` says it listens: `status.url` for Knative Services and Routes,
/// `status.address.url` for everything else addressable.
pub fn object_url<'a>(obj: &'a Value, info: &ResourceInfo) -> Option<&'a str> {
    let pointer = if *info == kinds::SERVICES || *info == kinds::ROUTES {
        "/status/url"
    } else {
        "/status/address/url"
    };
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
}

/// `base` with `--addressable-uri` appended (one `/` between them).
pub fn join_uri(base: &str, extra: Option<&str>) -> String {
    match extra.filter(|e| !e.is_empty()) {
        None => base.to_string(),
        Some(e) => format!(
            "{}/{}",
            base.trim_end_matches('/'),
            e.trim_start_matches('/')
        ),
    }
}

/// Where the POST goes: `url`, reached directly or, for Services, through the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub url: String,
    /// Connect here instead of the URL's host, naming the URL's host in `Host`.
    pub via: Option<String>,
}

/// A random v4 UUID. `std`'s `RandomState` is seeded from the OS once per thread and moves
/// on each time, which is plenty for event ids.
pub fn new_uuid() -> String {
    use std::hash::{BuildHasher, Hasher};
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let word = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.write_u64(salt);
        h.finish()
    };
    let (hi, lo) = (word(1), word(2));
    let hi = (hi & !0xf000) | 0x4000; // version 4
    let lo = (lo & !(0b11 << 62)) | (0b10 << 62); // RFC 4122 variant
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}

async fn resolve_target(ctx: &Ctx, args: &SendArgs) -> anyhow::Result<Target> {
    let (flag, value) = match (&args.to, &args.to_url) {
        (_, Some(url)) => ("--to-url", url.as_str()),
        (Some(to), None) => ("--to", to.as_str()),
        (None, None) => anyhow::bail!("'wisp event send' requires --to or --to-url"),
    };
    let target = sink::parse(flag, value)?;
    if flag == "--to-url" && !matches!(target, SinkRef::Uri(_)) {
        anyhow::bail!("invalid --to-url {value:?}: want an http(s) URL");
    }
    let (info, name, ns) = match target {
        SinkRef::Uri(url) => {
            return Ok(Target {
                url: join_uri(&url, args.addressable_uri.as_deref()),
                via: None,
            });
        }
        SinkRef::Object {
            info,
            name,
            namespace,
        } => (
            info,
            name,
            namespace.unwrap_or_else(|| ctx.namespace.clone()),
        ),
    };
    let obj = match ctx.client.get(&object_path(info, Some(&ns), &name)).await {
        Ok(v) => v,
        Err(e) if e.is_not_found() => {
            return Err(SinkError {
                flag: flag.to_string(),
                value: value.to_string(),
                reason: format!("{} {name:?} not found in namespace {ns:?}", info.kind),
            }
            .into());
        }
        Err(e) => return Err(e.into()),
    };
    let Some(url) = object_url(&obj, info) else {
        let what = if *info == kinds::SERVICES || *info == kinds::ROUTES {
            "URL"
        } else {
            "address"
        };
        anyhow::bail!(
            "{} {name} has no {what} yet: is it Ready? (see `wisp get {} {name} -n {ns}`)",
            info.singular,
            info.plural
        );
    };
    let via = (*info == kinds::SERVICES || *info == kinds::ROUTES).then(|| args.gateway.clone());
    Ok(Target {
        url: join_uri(url, args.addressable_uri.as_deref()),
        via,
    })
}

/// The request for `event` to `target`.
pub fn make_request(target: &Target, event: &Event) -> anyhow::Result<Request<Full<Bytes>>> {
    let url: http::Uri = target
        .url
        .parse()
        .map_err(|e| anyhow::anyhow!("invalid target URL {:?}: {e}", target.url))?;
    if url.scheme_str() != Some("http") {
        anyhow::bail!(
            "cannot send to {}: wisp event send speaks plain HTTP only",
            target.url
        );
    }
    let host = url
        .authority()
        .map(|a| a.as_str().to_string())
        .ok_or_else(|| anyhow::anyhow!("invalid target URL {:?}: no host", target.url))?;
    let path = url.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let connect = match &target.via {
        Some(gateway) => format!("http://{gateway}{path}"),
        None => target.url.clone(),
    };
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(&connect)
        .header(header::HOST, host)
        .header(
            header::USER_AGENT,
            concat!("wisp/", env!("CARGO_PKG_VERSION")),
        );
    for (k, v) in binary_headers(event) {
        req = req.header(k, v);
    }
    req.body(Full::new(Bytes::from(event.data.clone())))
        .map_err(|e| anyhow::anyhow!("cannot build a request to {}: {e}", target.url))
}

/// POSTs the event; the answer's status when it is 2xx, else an error with the body.
pub async fn post(target: &Target, event: &Event, timeout: Duration) -> anyhow::Result<String> {
    let req = make_request(target, event)?;
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_secs(10)));
    let client: HyperClient<HttpConnector, Full<Bytes>> =
        HyperClient::builder(TokioExecutor::new()).build(connector);
    let url = &target.url;
    let exchange = async {
        let resp = client.request(req).await.map_err(|e| {
            let mut detail = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                detail = s.to_string();
                source = s.source();
            }
            match &target.via {
                Some(g) => anyhow::anyhow!("cannot send to {url} through the gateway at {g} (is `wisp serve` running there? see --gateway): {detail}"),
                None => anyhow::anyhow!("cannot send to {url}: {detail}"),
            }
        })?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        anyhow::Ok((status, body))
    };
    let (status, body) = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| anyhow::anyhow!("no answer from {url} within {}s", timeout.as_secs()))??;
    let code = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
    .trim_end()
    .to_string();
    if !status.is_success() {
        let text: String = String::from_utf8_lossy(&body).chars().take(2000).collect();
        let text = text.trim();
        if text.is_empty() {
            anyhow::bail!("the event was not accepted: {url} answered {code}");
        }
        anyhow::bail!("the event was not accepted: {url} answered {code}: {text}");
    }
    Ok(code)
}

pub async fn run(ctx: &Ctx, cmd: EventCommand) -> anyhow::Result<()> {
    match cmd {
        EventCommand::Send(args) => {
            let time = crate::age::rfc3339_seconds(SystemTime::now());
            let event = build_event(&args, new_uuid(), time).map_err(anyhow::Error::msg)?;
            let target = resolve_target(ctx, &args).await?;
            let code = post(&target, &event, Duration::from_secs(args.timeout.max(1))).await?;
            println!("Event sent ({code})");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::json;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: EventCommand,
    }

    fn send_args(argv: &[&str]) -> SendArgs {
        let mut all = vec!["event", "send"];
        all.extend_from_slice(argv);
        match Cli::try_parse_from(all) {
            Ok(Cli {
                cmd: EventCommand::Send(a),
            }) => a,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn fields_like_kn_event() {
        let data = data_from_fields(
            &[
                "operation.type=local-wire-transfer".into(),
                "operation.amount=2345.40".into(),
                "operation.from=87656231".into(),
                "automated=true".into(),
                "ratio=-0.500000".into(),
                "name=NaN".into(),
                "zip=01234".into(),
                "yes=True".into(),
            ],
            &["signature=1234".into()],
        );
        assert_eq!(
            data,
            Ok(json!({
                "automated": true,
                "name": "NaN",
                "operation": {"amount": "2345.40", "from": 87656231, "type": "local-wire-transfer"},
                "ratio": -0.5,
                "signature": "1234",
                "yes": "True",
                "zip": "01234"
            }))
        );
        assert_eq!(data_from_fields(&[], &[]), Ok(json!({})));
        assert_eq!(
            data_from_fields(&["a=1".into(), "a.b=2".into()], &[]),
            Err("Invalid --field \"a.b=2\": the path \"a.b\" is in conflict with the value 1 set before".into())
        );
        assert_eq!(
            data_from_fields(&["a".into()], &[]),
            Err("Invalid --field \"a\": want PATH=VALUE".into())
        );
        assert_eq!(
            data_from_fields(&[], &["a..b=1".into()]),
            Err("Invalid --raw-field \"a..b=1\": the path \"a..b\" has an empty segment".into())
        );
    }

    #[test]
    fn builds_events() {
        let args = send_args(&["--to", "broker:default", "-f", "msg=hi", "-e", "team=blue"]);
        let e = build_event(&args, "id-1".into(), "2026-01-02T03:04:05Z".into());
        let want = Event {
            id: "id-1".into(),
            source: default_source(),
            type_: DEFAULT_TYPE.into(),
            time: "2026-01-02T03:04:05Z".into(),
            content_type: "application/json".into(),
            data: br#"{"msg":"hi"}"#.to_vec(),
            extensions: [("team".to_string(), "blue".to_string())].into(),
        };
        assert_eq!(e.as_ref(), Ok(&want));
        assert!(want.source.starts_with("wisp-event/v"), "{}", want.source);
        assert_eq!(
            binary_headers(&want),
            [
                ("ce-specversion", "1.0"),
                ("ce-id", "id-1"),
                ("ce-source", want.source.as_str()),
                ("ce-type", DEFAULT_TYPE),
                ("ce-time", "2026-01-02T03:04:05Z"),
                ("ce-team", "blue"),
                ("content-type", "application/json"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );

        let raw = send_args(&[
            "--to-url", "http://x", "--data", "hello", "--id", "7", "-s", "me",
        ]);
        let e = build_event(&raw, "ignored".into(), "t".into()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((e.id.as_str(), e.source.as_str()), ("7", "me"));
        assert_eq!(
            (e.content_type.as_str(), e.data.as_slice()),
            ("text/plain", &b"hello"[..])
        );
        let json_data = send_args(&["--to-url", "http://x", "--raw-data", "[1]"]);
        let e = build_event(&json_data, "i".into(), "t".into()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.content_type, "application/json");
        let typed = send_args(&[
            "--to-url",
            "http://x",
            "--data",
            "<a/>",
            "--content-type",
            "application/xml",
        ]);
        let e = build_event(&typed, "i".into(), "t".into()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.content_type, "application/xml");

        for (argv, want) in [
            (
                vec!["--to", "x", "-e", "Team=blue"],
                "Invalid --extension \"Team=blue\": a CloudEvents attribute name is lower-case letters and digits",
            ),
            (
                vec!["--to", "x", "-e", "id=1"],
                "Invalid --extension \"id=1\": id is not an extension; use --id",
            ),
            (
                vec!["--to", "x", "-e", "team"],
                "Invalid --extension \"team\": want NAME=VALUE",
            ),
            (
                vec!["--to", "x", "--type", ""],
                "Invalid --type \"\": a CloudEvent needs one",
            ),
        ] {
            let args = send_args(&argv);
            assert_eq!(
                build_event(&args, "i".into(), "t".into()).err().as_deref(),
                Some(want)
            );
        }
        // --data excludes fields; a target is required; --to and --to-url exclude each other.
        assert!(
            Cli::try_parse_from(["event", "send", "--to", "x", "--data", "a", "-f", "b=c"])
                .is_err()
        );
        assert!(Cli::try_parse_from(["event", "send"]).is_err());
        assert!(
            Cli::try_parse_from(["event", "send", "--to", "x", "--to-url", "http://y"]).is_err()
        );
    }

    #[test]
    fn header_encoding() {
        assert_eq!(header_value("plain-ASCII_1.0/x"), "plain-ASCII_1.0/x");
        assert_eq!(header_value("a b\"c%d"), "a%20b%22c%25d");
        assert_eq!(header_value("€"), "%E2%82%AC");
        assert_eq!(header_value("tab\there"), "tab%09here");
    }

    #[test]
    fn target_urls() {
        let broker =
            json!({"status": {"address": {"url": "http://127.0.0.1:8081/default/default"}}});
        assert_eq!(
            object_url(&broker, &kinds::BROKERS),
            Some("http://127.0.0.1:8081/default/default")
        );
        let ksvc = json!({"status": {"url": "http://hello.default.localhost",
                                      "address": {"url": "http://hello.default.svc.cluster.local"}}});
        assert_eq!(
            object_url(&ksvc, &kinds::SERVICES),
            Some("http://hello.default.localhost")
        );
        assert_eq!(object_url(&json!({"status": {}}), &kinds::CHANNELS), None);
        assert_eq!(
            object_url(
                &json!({"status": {"address": {"url": ""}}}),
                &kinds::BROKERS
            ),
            None
        );
        assert_eq!(join_uri("http://x/a/", Some("/b")), "http://x/a/b");
        assert_eq!(join_uri("http://x", None), "http://x");
    }

    #[test]
    fn requests_through_the_gateway() {
        let event = Event {
            id: "1".into(),
            source: "s".into(),
            type_: "t".into(),
            time: "now".into(),
            content_type: "application/json".into(),
            data: b"{}".to_vec(),
            extensions: BTreeMap::new(),
        };
        let via = Target {
            url: "http://hello.default.localhost/path?q=1".into(),
            via: Some("127.0.0.1:8080".into()),
        };
        let req = make_request(&via, &event).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(req.uri(), "http://127.0.0.1:8080/path?q=1");
        assert_eq!(
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok()),
            Some("hello.default.localhost")
        );
        assert_eq!(
            req.headers().get("ce-id").and_then(|h| h.to_str().ok()),
            Some("1")
        );
        let https = Target {
            url: "https://x".into(),
            via: None,
        };
        assert!(make_request(&https, &event).is_err());
    }

    #[test]
    fn uuids_are_v4() {
        let a = new_uuid();
        let b = new_uuid();
        assert_ne!(a, b);
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12],
            "{a}"
        );
        assert!(parts[2].starts_with('4'), "{a}");
        assert!(
            matches!(parts[3].chars().next(), Some('8' | '9' | 'a' | 'b')),
            "{a}"
        );
    }

    /// A one-shot HTTP server that records the request head and answers `response`.
    async fn serve_once(response: &'static str) -> (String, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let task = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let Ok((mut sock, _)) = listener.accept().await else {
                return String::new();
            };
            let mut got = Vec::new();
            let mut buf = vec![0u8; 8192];
            // Read until the body (content-length bytes after the head) has arrived.
            loop {
                let n = sock.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(str::to_string)
                        })
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if body.len() >= len {
                        break;
                    }
                }
            }
            let _ = sock.write_all(response.as_bytes()).await;
            let _ = sock.shutdown().await;
            String::from_utf8_lossy(&got).to_string()
        });
        (format!("http://{addr}"), task)
    }

    fn event() -> Event {
        Event {
            id: "abc".into(),
            source: "wisp-event/v0".into(),
            type_: "dev.example.hi".into(),
            time: "2026-01-02T03:04:05Z".into(),
            content_type: "application/json".into(),
            data: br#"{"msg":"hi"}"#.to_vec(),
            extensions: [("team".to_string(), "blue green".to_string())].into(),
        }
    }

    #[tokio::test]
    async fn posts_in_binary_mode() {
        let (url, task) =
            serve_once("HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
        let target = Target {
            url: format!("{url}/default/default"),
            via: None,
        };
        let got = post(&target, &event(), Duration::from_secs(10)).await;
        assert_eq!(got.ok().as_deref(), Some("202 Accepted"));
        let request = task.await.unwrap_or_default().to_ascii_lowercase();
        for want in [
            "post /default/default http/1.1\r\n",
            "ce-specversion: 1.0\r\n",
            "ce-id: abc\r\n",
            "ce-type: dev.example.hi\r\n",
            "ce-source: wisp-event/v0\r\n",
            "ce-time: 2026-01-02t03:04:05z\r\n",
            "ce-team: blue%20green\r\n",
            "content-type: application/json\r\n",
            "\r\n\r\n{\"msg\":\"hi\"}",
        ] {
            assert!(request.contains(want), "{want:?} in\n{request}");
        }
    }

    #[tokio::test]
    async fn refusals_show_the_body() {
        let (url, task) = serve_once(
            "HTTP/1.1 400 Bad Request\r\ncontent-length: 19\r\nconnection: close\r\n\r\nmissing ce-source\r\n",
        )
        .await;
        let target = Target { url, via: None };
        let err = post(&target, &event(), Duration::from_secs(10))
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            err,
            format!(
                "the event was not accepted: {} answered 400 Bad Request: missing ce-source",
                target.url
            )
        );
        let _ = task.await;
    }
}
