//! The CloudEvents HTTP protocol binding 1.0.2: binary, structured and batched modes.
//!
//! Why the mode is decided by Content-Type alone: that is the binding's rule (section 3), and it
//! keeps a plain JSON POST with `ce-` headers in binary mode, where its body is the data. Why a
//! CloudEvents media type with another format is a 415 rather than binary mode: treating
//! `application/cloudevents+avro` as an opaque payload would accept an event whose attributes
//! are in the body and then fail it for missing headers, which misleads the sender.
//!
//! Binary mode is the broker's fast path: header values are percent-decoded without allocating
//! unless they hold escapes, and the body becomes `data` without a copy.

use bytes::Bytes;
use http::StatusCode;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use percent_encoding::{AsciiSet, CONTROLS, percent_decode, utf8_percent_encode};

use crate::event::{Builder, Event, ValidationError};
use crate::json::{self, starts_with_ignore_case};

/// What one HTTP request carried.
#[derive(Debug, Clone, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "made once per request and consumed at once; boxing would cost the common case"
)]
pub enum Incoming {
    One(Event),
    Batch(Vec<Event>),
}

impl Incoming {
    pub fn into_events(self) -> Vec<Event> {
        match self {
            Incoming::One(e) => vec![e],
            Incoming::Batch(events) => events,
        }
    }
}

/// Why a request does not hold acceptable CloudEvents. [`ParseError::status`] is the HTTP
/// answer; the Display text is meant for the response body.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error(
        "unsupported CloudEvents format `{content_type}`: send application/cloudevents+json, \
         application/cloudevents-batch+json or binary mode with ce- headers"
    )]
    UnsupportedMediaType { content_type: String },
    #[error("malformed JSON in CloudEvent{}: {error}", at_index(.index))]
    MalformedJson {
        index: Option<usize>,
        error: serde_json::Error,
    },
    #[error("{} must be a JSON {expected}, not {found}{}", what(.index, .expected), array_hint(.index, .found))]
    WrongJsonShape {
        index: Option<usize>,
        expected: &'static str,
        found: &'static str,
    },
    #[error("invalid CloudEvent{}: {error}{}", at_index(.index), header_hint(*.binary, .error))]
    InvalidEvent {
        index: Option<usize>,
        /// The event came in binary mode, so attributes are `ce-` headers.
        binary: bool,
        error: ValidationError,
    },
}

fn at_index(index: &Option<usize>) -> String {
    index.map_or_else(String::new, |i| format!(" at index {i} of the batch"))
}

fn what(index: &Option<usize>, expected: &str) -> String {
    match index {
        Some(i) => format!("the batch element at index {i}"),
        None if expected == "object" => "a structured CloudEvent".to_owned(),
        None => "a CloudEvents batch".to_owned(),
    }
}

fn array_hint(index: &Option<usize>, found: &str) -> &'static str {
    match (index, found) {
        (None, "an array") => " (send a batch as application/cloudevents-batch+json)",
        _ => "",
    }
}

fn header_hint(binary: bool, error: &ValidationError) -> String {
    match error.attribute() {
        Some("datacontenttype") if binary => " (header Content-Type)".to_owned(),
        Some(name) if binary => format!(" (header ce-{name})"),
        _ => String::new(),
    }
}

impl ParseError {
    /// 415 for a CloudEvents format this server does not speak, 400 for everything else.
    pub fn status(&self) -> StatusCode {
        match self {
            ParseError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

enum Mode {
    Binary,
    Structured,
    Batch,
    Unsupported,
}

fn mode(content_type: Option<&HeaderValue>) -> Mode {
    let Some(ct) = content_type.and_then(|v| std::str::from_utf8(v.as_bytes()).ok()) else {
        return Mode::Binary;
    };
    let ct = ct.trim_start();
    const FAMILY: &str = "application/cloudevents";
    if !starts_with_ignore_case(ct, FAMILY) {
        return Mode::Binary;
    }
    let rest = &ct[FAMILY.len()..];
    let essence_is = |what: &str| {
        starts_with_ignore_case(rest, what)
            && matches!(
                rest.as_bytes().get(what.len()),
                None | Some(b';' | b' ' | b'\t')
            )
    };
    if essence_is("+json") {
        Mode::Structured
    } else if essence_is("-batch+json") {
        Mode::Batch
    } else if rest.starts_with('+') || starts_with_ignore_case(rest, "-batch+") {
        Mode::Unsupported
    } else {
        Mode::Binary
    }
}

/// Reads the CloudEvent(s) of an HTTP request. `body` is shared, not copied, into `data`.
pub fn from_http(headers: &HeaderMap, body: Bytes) -> Result<Incoming, ParseError> {
    let content_type = headers.get(CONTENT_TYPE);
    match mode(content_type) {
        Mode::Binary => from_binary(headers, body)
            .map(Incoming::One)
            .map_err(|error| ParseError::InvalidEvent {
                index: None,
                binary: true,
                error,
            }),
        Mode::Structured => structured(&body, &body, None).map(Incoming::One),
        Mode::Batch => {
            if let Some(found) = json::json_kind(&body).filter(|k| *k != "an array") {
                return Err(ParseError::WrongJsonShape {
                    index: None,
                    expected: "array of CloudEvents",
                    found,
                });
            }
            let elements = json::split_batch(&body)
                .map_err(|error| ParseError::MalformedJson { index: None, error })?;
            elements
                .iter()
                .enumerate()
                .map(|(i, raw)| structured(&body, raw.get().as_bytes(), Some(i)))
                .collect::<Result<_, _>>()
                .map(Incoming::Batch)
        }
        Mode::Unsupported => Err(ParseError::UnsupportedMediaType {
            content_type: String::from_utf8_lossy(content_type.map_or(&[][..], |v| v.as_bytes()))
                .into_owned(),
        }),
    }
}

fn structured(body: &Bytes, text: &[u8], index: Option<usize>) -> Result<Event, ParseError> {
    if let Some(found) = json::json_kind(text).filter(|k| *k != "an object") {
        return Err(ParseError::WrongJsonShape {
            index,
            expected: "object",
            found,
        });
    }
    json::parse_event(body, text)
        .map_err(|error| ParseError::MalformedJson { index, error })?
        .map_err(|error| ParseError::InvalidEvent {
            index,
            binary: false,
            error,
        })
}

fn from_binary(headers: &HeaderMap, body: Bytes) -> Result<Event, ValidationError> {
    let mut b = Builder::new();
    let content_type = headers.get(CONTENT_TYPE);
    if let Some(ct) = content_type {
        let ct = std::str::from_utf8(ct.as_bytes())
            .map_err(|_| ValidationError::NotUtf8("datacontenttype".into()))?;
        b.set("datacontenttype", ct.to_owned())?;
    }
    for (name, value) in headers {
        let Some(attr) = name.as_str().strip_prefix("ce-") else {
            continue;
        };
        // The binding maps datacontenttype to Content-Type; a stray ce- header loses to it.
        if attr == "datacontenttype" && content_type.is_some() {
            continue;
        }
        let value = percent_decode(value.as_bytes())
            .decode_utf8()
            .map_err(|_| ValidationError::NotUtf8(attr.to_owned()))?;
        b.set(attr, value.into_owned())?;
    }
    if !body.is_empty() {
        b.set_data(body);
    }
    b.finish()
}

/// What the binding says to percent-encode in header values (section 3.1.3.2): space, `"`,
/// `%` and everything outside printable ASCII (`utf8_percent_encode` adds all non-ASCII).
const HEADER_VALUE: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'%');

/// The event in binary mode: `ce-` headers, Content-Type from `datacontenttype`, body = data.
pub fn to_binary(event: &Event) -> (HeaderMap, Bytes) {
    let mut headers = HeaderMap::with_capacity(12);
    for (name, value) in event.attributes() {
        if name == "datacontenttype" {
            let value = HeaderValue::from_str(value)
                .expect("datacontenttype is checked to be header-safe when set");
            headers.insert(CONTENT_TYPE, value);
            continue;
        }
        let encoded: std::borrow::Cow<str> = utf8_percent_encode(value, HEADER_VALUE).into();
        let value = HeaderValue::from_str(&encoded).expect("percent-encoded text is visible ASCII");
        headers.append(header_name(name), value);
    }
    (headers, event.data().cloned().unwrap_or_default())
}

fn header_name(attribute: &str) -> HeaderName {
    let known = match attribute {
        "specversion" => "ce-specversion",
        "id" => "ce-id",
        "source" => "ce-source",
        "type" => "ce-type",
        "dataschema" => "ce-dataschema",
        "subject" => "ce-subject",
        "time" => "ce-time",
        _ => {
            return HeaderName::try_from(format!("ce-{attribute}"))
                .expect("attribute names are checked to be a-z0-9");
        }
    };
    HeaderName::from_static(known)
}

/// The event in structured mode; send it with `Content-Type: application/cloudevents+json`.
pub fn to_structured(event: &Event) -> Bytes {
    let mut out = Vec::with_capacity(json::size_hint(event));
    json::write_event(&mut out, event);
    out.into()
}

/// The events as a JSON batch; send with `Content-Type: application/cloudevents-batch+json`.
pub fn to_batch(events: &[Event]) -> Bytes {
    let mut out = Vec::with_capacity(events.iter().map(json::size_hint).sum::<usize>() + 2);
    out.push(b'[');
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json::write_event(&mut out, event);
    }
    out.push(b']');
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    const REQUIRED: [(&str, &str); 4] = [
        ("ce-specversion", "1.0"),
        ("ce-id", "42"),
        ("ce-source", "/ping"),
        ("ce-type", "dev.wisp.ping"),
    ];

    fn one(h: &HeaderMap, body: &'static [u8]) -> Event {
        match from_http(h, Bytes::from_static(body)).unwrap() {
            Incoming::One(e) => e,
            other => panic!("expected one event, got {other:?}"),
        }
    }

    fn err(h: &HeaderMap, body: &str) -> ParseError {
        from_http(h, Bytes::copy_from_slice(body.as_bytes())).unwrap_err()
    }

    fn structured_headers() -> HeaderMap {
        headers(&[(
            "content-type",
            "application/cloudevents+json; charset=utf-8",
        )])
    }

    #[test]
    fn binary_mode_reads_headers_case_insensitively() {
        let mut pairs = REQUIRED.to_vec();
        pairs.extend([("CE-MyExt", "v"), ("Content-Type", "application/json")]);
        let e = one(&headers(&pairs), br#"{"a": 1}"#);
        assert_eq!(
            (e.id(), e.source(), e.ty()),
            ("42", "/ping", "dev.wisp.ping")
        );
        assert_eq!(e.attribute("myext"), Some("v"));
        assert_eq!(e.datacontenttype(), Some("application/json"));
        assert_eq!(e.data().unwrap().as_ref(), br#"{"a": 1}"#);
        assert_eq!(one(&headers(&REQUIRED), b"").data(), None);
    }

    #[test]
    fn binary_mode_errors_name_the_header() {
        let e = err(&headers(&REQUIRED[..3]), "");
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            e.to_string(),
            "invalid CloudEvent: missing required attribute `type` (header ce-type)"
        );
        let e = err(&headers(&REQUIRED[1..]), "");
        assert!(
            e.to_string()
                .contains("`specversion` (header ce-specversion)"),
            "{e}"
        );

        let mut pairs = REQUIRED.to_vec();
        pairs[0] = ("ce-specversion", "0.3");
        let e = err(&headers(&pairs), "").to_string();
        assert!(
            e.contains("specversion 1.0 only (header ce-specversion)"),
            "{e}"
        );

        let mut pairs = REQUIRED.to_vec();
        pairs.push(("ce-time", "noon"));
        assert!(
            err(&headers(&pairs), "")
                .to_string()
                .contains("(header ce-time)")
        );

        let mut pairs = REQUIRED.to_vec();
        pairs.push(("ce-id", "43"));
        assert!(
            err(&headers(&pairs), "")
                .to_string()
                .contains("more than once")
        );

        let mut pairs = REQUIRED.to_vec();
        pairs.push(("ce-data", "x"));
        assert!(
            err(&headers(&pairs), "")
                .to_string()
                .contains("`data` cannot be used")
        );

        let mut pairs = REQUIRED.to_vec();
        pairs.push(("ce-bad%ff", "x"));
        assert!(
            err(&headers(&pairs), "")
                .to_string()
                .contains("name `bad%ff`")
        );

        let mut pairs = REQUIRED.to_vec();
        pairs.push(("ce-x", "%FF"));
        assert!(
            err(&headers(&pairs), "")
                .to_string()
                .contains("not valid UTF-8")
        );
        assert!(err(&HeaderMap::new(), "hello").to_string().contains("ce-"));
    }

    #[test]
    fn percent_encoding_round_trips() {
        let mut pairs = REQUIRED.to_vec();
        pairs.push(("ce-subject", "caf%C3%A9%20100%25%20%22q%22"));
        pairs.push(("ce-tab", "a%09b"));
        let h = headers(&pairs);
        let e = one(&h, b"");
        assert_eq!(e.subject(), Some("café 100% \"q\""));
        assert_eq!(e.attribute("tab"), Some("a\tb"));
        let (out, body) = to_binary(&e);
        assert_eq!(out, h);
        assert!(body.is_empty());

        // Senders that skip the encoding of a space are still understood.
        let mut pairs = REQUIRED.to_vec();
        pairs.push(("ce-subject", "a b"));
        assert_eq!(one(&headers(&pairs), b"").subject(), Some("a b"));

        let mut made = Event::new("1", "/s", "t");
        made.set_attribute("ext", "ü €\u{7f}/?=&").unwrap();
        let (h, _) = to_binary(&made);
        assert_eq!(h["ce-ext"], "%C3%BC%20%E2%82%AC%7F/?=&");
        assert_eq!(one(&h, b""), made);
    }

    #[test]
    fn binary_round_trip_is_byte_identical() {
        let mut pairs = REQUIRED.to_vec();
        pairs.extend([
            ("content-type", "text/plain; charset=utf-8"),
            ("ce-time", "2024-05-01T12:00:00.5Z"),
            (
                "ce-traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            ("ce-knativebrokerttl", "255"),
        ]);
        let h = headers(&pairs);
        let body = b"\x00binary\xff body";
        let e = one(&h, body);
        let (out, out_body) = to_binary(&e);
        assert_eq!(out, h);
        assert_eq!(out_body.as_ref(), body);
    }

    #[test]
    fn content_type_wins_over_stray_ce_datacontenttype() {
        let mut pairs = REQUIRED.to_vec();
        pairs.extend([
            ("ce-datacontenttype", "text/xml"),
            ("content-type", "text/plain"),
        ]);
        assert_eq!(
            one(&headers(&pairs), b"x").datacontenttype(),
            Some("text/plain")
        );
        let mut pairs = REQUIRED.to_vec();
        pairs.push(("ce-datacontenttype", "text/xml"));
        assert_eq!(
            one(&headers(&pairs), b"x").datacontenttype(),
            Some("text/xml")
        );
    }

    #[test]
    fn mode_by_content_type() {
        for ct in [
            "application/cloudevents+xml",
            "application/cloudevents+avro",
            "APPLICATION/CLOUDEVENTS-BATCH+PROTOBUF",
        ] {
            let e = err(&headers(&[("content-type", ct)]), "{}");
            assert_eq!(e.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct}");
            assert!(e.to_string().contains(ct), "{e}");
        }
        // Not the CloudEvents family (or only a prefix of it): binary mode.
        for ct in ["application/json", "application/cloudeventsx", "text/plain"] {
            let e = err(&headers(&[("content-type", ct)]), "{}");
            assert!(e.to_string().contains("header ce-"), "{ct}: {e}");
        }
    }

    #[test]
    fn structured_keeps_json_data_and_converts_to_binary() {
        let body = "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\",\
                    \"datacontenttype\":\"application/json\",\"n\":7,\
                    \"data\":{ \"b\" : 2 ,\n \"a\":1.50 }}";
        let h = headers(&[("content-type", "Application/CloudEvents+JSON")]);
        let Incoming::One(e) = from_http(&h, Bytes::from(body)).unwrap() else {
            panic!("one event");
        };
        assert_eq!(e.attribute("n"), Some("7"));
        let (bh, bb) = to_binary(&e);
        assert_eq!(bb.as_ref(), b"{ \"b\" : 2 ,\n \"a\":1.50 }");
        assert_eq!(bh[CONTENT_TYPE], "application/json");
        assert_eq!(bh["ce-n"], "7");
    }

    #[test]
    fn binary_json_body_is_embedded_as_is() {
        let mut pairs = REQUIRED.to_vec();
        pairs.push(("content-type", "application/json"));
        let e = one(&headers(&pairs), b"[1,  {\"x\" :\"y\"}]");
        let s = to_structured(&e);
        let text = std::str::from_utf8(&s).unwrap();
        assert!(text.ends_with(",\"data\":[1,  {\"x\" :\"y\"}]}"), "{text}");
        let Incoming::One(back) = from_http(&structured_headers(), s).unwrap() else {
            panic!("one event");
        };
        assert_eq!(back, e);
    }

    #[test]
    fn structured_errors() {
        let h = structured_headers();
        let e = err(&h, r#"{"specversion":"1.0","id":"1" "source":"/s"}"#);
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        let msg = e.to_string();
        assert!(msg.starts_with("malformed JSON in CloudEvent: "), "{msg}");
        assert!(msg.contains("line 1 column 31"), "{msg}");
        assert!(err(&h, "").to_string().contains("EOF"));
        assert_eq!(
            err(&h, " [] ").to_string(),
            "a structured CloudEvent must be a JSON object, not an array \
             (send a batch as application/cloudevents-batch+json)"
        );
        assert!(
            err(
                &h,
                r#"{"specversion":"1.0","id":"1","source":"/s","type":"t"} x"#
            )
            .to_string()
            .contains("trailing characters")
        );
        let e = err(
            &h,
            r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data":1,"data_base64":"AA=="}"#,
        );
        assert!(
            e.to_string().contains("both `data` and `data_base64`"),
            "{e}"
        );
        let e = err(&h, r#"{"specversion":"1.0","id":"1","source":"/s"}"#);
        assert_eq!(
            e.to_string(),
            "invalid CloudEvent: missing required attribute `type`"
        );
        // A semantic error early does not hide a syntax error later.
        let e = err(&h, r#"{"specversion":"2.0", "id": }"#);
        assert!(matches!(e, ParseError::MalformedJson { .. }), "{e}");
    }

    #[test]
    fn batches() {
        let h = headers(&[("content-type", "application/cloudevents-batch+json")]);
        let body = r#"[
            {"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"n":1}},
            {"specversion":"1.0","id":"2","source":"/s","type":"t","datacontenttype":"text/plain","data":"two"}
        ]"#;
        let events = from_http(&h, Bytes::from(body)).unwrap().into_events();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].data().unwrap().as_ref(), br#"{"n":1}"#);
        assert_eq!(events[1].data().unwrap().as_ref(), b"two");

        let again = from_http(&h, to_batch(&events)).unwrap().into_events();
        assert_eq!(again, events);
        assert_eq!(
            from_http(&h, Bytes::from("[]")).unwrap(),
            Incoming::Batch(vec![])
        );
        assert_eq!(to_batch(&[]).as_ref(), b"[]");

        let bad = r#"[{"specversion":"1.0","id":"1","source":"/s","type":"t"},
                      {"specversion":"1.0","id":"2","source":"/s"}]"#;
        assert_eq!(
            err(&h, bad).to_string(),
            "invalid CloudEvent at index 1 of the batch: missing required attribute `type`"
        );
        assert_eq!(
            err(
                &h,
                r#"[{"specversion":"1.0","id":"1","source":"/s","type":"t"}, 5]"#
            )
            .to_string(),
            "the batch element at index 1 must be a JSON object, not a number"
        );
        assert_eq!(
            err(&h, "{}").to_string(),
            "a CloudEvents batch must be a JSON array of CloudEvents, not an object"
        );
        assert!(matches!(
            err(&h, "[{]"),
            ParseError::MalformedJson { index: None, .. }
        ));
    }

    #[test]
    fn many_headers_parse_in_linear_time() {
        // A 100-byte event plus 2000 extensions: every step is a map insert or a decode of one
        // value, so this stays fast even in a debug build.
        let mut h = headers(&REQUIRED);
        for i in 0..2000 {
            h.append(
                HeaderName::try_from(format!("ce-ext{i}")).unwrap(),
                HeaderValue::from_static("v%20w"),
            );
        }
        let e = one(&h, &[b'x'; 100]);
        assert_eq!(e.attributes().count(), 2004);
        let decoded = Event::decode(&e.encode()).unwrap();
        assert_eq!(decoded, e);
        assert_eq!(to_binary(&e).0, h);
    }
}
