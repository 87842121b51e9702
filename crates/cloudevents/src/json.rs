//! The CloudEvents JSON format (single events and batches) without a `serde_json::Value`.
//!
//! Why a hand-written visitor: `data` must be located, not decoded, so it is read as a borrowed
//! `RawValue` and sliced out of the body; attribute members are read straight into the event
//! with their JSON type checked, so no intermediate map exists; and a semantic problem in one
//! member is remembered while the rest of the object is still consumed, so a syntax error later
//! in the body is still reported as one (with its position).
//!
//! Writing is done by hand as well: attribute values are strings, so the only JSON this needs
//! is string escaping, and JSON `data` is copied in as-is.

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_PAD_INDIFFERENT};
use bytes::Bytes;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::event::{Builder, Event, SPEC_ATTRIBUTES, ValidationError};

/// `application/json`, `text/json` and any `*/*+json`, parameters ignored. An absent content
/// type counts as JSON too (JSON format, section 3.1), which callers decide.
pub(crate) fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence.eq_ignore_ascii_case("text/json")
        || ends_with_ignore_case(essence, "+json")
}

/// Media types whose payload is text, so it can travel as a JSON string in `data`.
fn is_text(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    starts_with_ignore_case(essence, "text/")
        || essence.eq_ignore_ascii_case("application/xml")
        || ends_with_ignore_case(essence, "+xml")
}

pub(crate) fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

fn ends_with_ignore_case(s: &str, suffix: &str) -> bool {
    s.len() >= suffix.len()
        && s.as_bytes()[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}

/// What kind of JSON value `text` starts with, judged by its first significant byte.
pub(crate) fn json_kind(text: &[u8]) -> Option<&'static str> {
    match text.iter().find(|b| !b.is_ascii_whitespace())? {
        b'{' => Some("an object"),
        b'[' => Some("an array"),
        b'"' => Some("a string"),
        b't' | b'f' => Some("a boolean"),
        b'n' => Some("null"),
        b'-' | b'0'..=b'9' => Some("a number"),
        _ => None,
    }
}

/// Parses one structured event from `text`, which must lie inside `body` (so `data` can be
/// sliced out of `body` without copying). The outer error is a JSON syntax error.
pub(crate) fn parse_event(
    body: &Bytes,
    text: &[u8],
) -> Result<Result<Event, ValidationError>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(text);
    let event = EventSeed { body }.deserialize(&mut de)?;
    de.end()?;
    Ok(event)
}

/// Splits a batch into its elements' raw text, checking the JSON syntax of the whole body.
pub(crate) fn split_batch(body: &[u8]) -> Result<Vec<&RawValue>, serde_json::Error> {
    serde_json::from_slice(body)
}

struct EventSeed<'b> {
    body: &'b Bytes,
}

impl<'de> DeserializeSeed<'de> for EventSeed<'_> {
    type Value = Result<Event, ValidationError>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EventSeed<'_> {
    type Value = Result<Event, ValidationError>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a CloudEvent as a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut b = Builder::new();
        let mut error = None;
        let mut data: Option<&'de RawValue> = None;
        let mut data_base64: Option<String> = None;
        while let Some(Key(key)) = map.next_key()? {
            if error.is_some() {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let outcome = match &*key {
                "data" => {
                    let raw: &'de RawValue = map.next_value()?;
                    match data.replace(raw) {
                        Some(_) => Err(ValidationError::Duplicate("data".into())),
                        None => Ok(()),
                    }
                }
                "data_base64" => match map.next_value()? {
                    Scalar::Null => Ok(()),
                    Scalar::Str(s) if data_base64.is_none() => {
                        data_base64 = Some(s);
                        Ok(())
                    }
                    Scalar::Str(_) => Err(ValidationError::Duplicate("data_base64".into())),
                    other => Err(ValidationError::WrongType {
                        name: "data_base64".into(),
                        expected: "a base64 JSON string",
                        found: other.kind(),
                    }),
                },
                name => {
                    let value: Scalar = map.next_value()?;
                    value
                        .into_attribute(name)
                        .and_then(|v| v.map_or(Ok(()), |v| b.set(name, v)))
                }
            };
            error = outcome.err();
        }
        if let Some(e) = error {
            return Ok(Err(e));
        }
        Ok(finish(b, data, data_base64, self.body))
    }
}

fn finish(
    mut b: Builder,
    data: Option<&RawValue>,
    data_base64: Option<String>,
    body: &Bytes,
) -> Result<Event, ValidationError> {
    match (data, data_base64) {
        (Some(_), Some(_)) => return Err(ValidationError::DataAndDataBase64),
        (None, Some(encoded)) => {
            let bytes = STANDARD_PAD_INDIFFERENT
                .decode(encoded)
                .map_err(|e| ValidationError::InvalidBase64(e.to_string()))?;
            b.set_data(bytes.into());
        }
        // JSON null data means no data, as null means unset for attributes.
        (Some(raw), None) if raw.get() != "null" => {
            let text = raw.get();
            let json = b.datacontenttype().is_none_or(is_json);
            let bytes = if !json && text.starts_with('"') {
                // A string payload of a non-JSON type (text, XML): the payload is the string.
                serde_json::from_str::<String>(text)
                    .map_or_else(|_| body.slice_ref(text.as_bytes()), Bytes::from)
            } else {
                body.slice_ref(text.as_bytes())
            };
            b.set_data(bytes);
        }
        _ => {}
    }
    b.finish()
}

/// An object key, borrowed from the input when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an attribute name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// A member value as far as attributes care: a scalar, or the kind of what it was instead.
enum Scalar {
    Str(String),
    Int(i64),
    Bool(bool),
    Null,
    Other(&'static str),
}

impl Scalar {
    fn kind(&self) -> &'static str {
        match self {
            Scalar::Str(_) => "a string",
            Scalar::Int(_) => "a number",
            Scalar::Bool(_) => "a boolean",
            Scalar::Null => "null",
            Scalar::Other(kind) => kind,
        }
    }

    /// The canonical string of this value as attribute `name`; `None` for null (unset).
    fn into_attribute(self, name: &str) -> Result<Option<String>, ValidationError> {
        let spec = SPEC_ATTRIBUTES.contains(&name);
        match self {
            Scalar::Null => Ok(None),
            Scalar::Str(s) => Ok(Some(s)),
            Scalar::Int(i) if !spec => match i32::try_from(i) {
                Ok(i) => Ok(Some(i.to_string())),
                Err(_) => Err(ValidationError::IntegerOutOfRange(name.to_owned())),
            },
            Scalar::Bool(v) if !spec => Ok(Some(v.to_string())),
            other => Err(ValidationError::WrongType {
                name: name.to_owned(),
                expected: if spec {
                    "a JSON string"
                } else {
                    "a string, an integer or a boolean"
                },
                found: other.kind(),
            }),
        }
    }
}

impl<'de> de::Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar::Str(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar::Int(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Scalar, E> {
                Ok(Scalar::Other("a fractional number"))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar::Null)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other("an object"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other("an array"))
            }
        }
        d.deserialize_any(V)
    }
}

/// Appends `event` as a JSON object: JSON payloads as-is, text as a JSON string, the rest as
/// `data_base64` (JSON format, section 3.1).
pub(crate) fn write_event(out: &mut Vec<u8>, event: &Event) {
    out.push(b'{');
    for (i, (name, value)) in event.attributes().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, name);
        out.push(b':');
        write_str(out, value);
    }
    if let Some(data) = event.data() {
        let ct = event.datacontenttype();
        if ct.is_none_or(is_json) && serde_json::from_slice::<&RawValue>(data).is_ok() {
            out.extend_from_slice(b",\"data\":");
            out.extend_from_slice(data);
        } else if let Some(text) = ct
            .filter(|ct| !is_json(ct) && is_text(ct))
            .and_then(|_| std::str::from_utf8(data).ok())
        {
            out.extend_from_slice(b",\"data\":");
            write_str(out, text);
        } else {
            out.extend_from_slice(b",\"data_base64\":\"");
            out.extend_from_slice(STANDARD.encode(data).as_bytes());
            out.push(b'"');
        }
    }
    out.push(b'}');
}

/// The bytes `write_event` will roughly need, so the buffer is allocated once.
pub(crate) fn size_hint(event: &Event) -> usize {
    let attrs: usize = event.attributes().map(|(n, v)| n.len() + v.len() + 6).sum();
    attrs + event.data().map_or(0, |d| d.len() * 4 / 3 + 20) + 2
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Event, ValidationError> {
        let body = Bytes::copy_from_slice(text.as_bytes());
        parse_event(&body, &body).expect("valid JSON")
    }

    const BASE: &str = r#""specversion":"1.0","id":"1","source":"/s","type":"t""#;

    #[test]
    fn media_type_classes() {
        for json in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "text/json",
            "application/vnd.foo+json",
        ] {
            assert!(is_json(json), "{json}");
        }
        assert!(!is_json("application/jsonx") && !is_json("text/plain"));
        assert!(is_text("text/plain") && is_text("application/atom+xml"));
        assert!(!is_text("application/octet-stream"));
    }

    #[test]
    fn extension_scalars_become_canonical_strings() {
        let e = parse(&format!(
            r#"{{{BASE},"num":-42,"flag":true,"str":"x","gone":null,"subject":null}}"#
        ))
        .unwrap();
        assert_eq!(e.attribute("num"), Some("-42"));
        assert_eq!(e.attribute("flag"), Some("true"));
        assert_eq!(e.attribute("str"), Some("x"));
        assert_eq!(e.attribute("gone"), None);
        assert_eq!(e.subject(), None);
    }

    #[test]
    fn wrong_member_types_are_refused() {
        for (member, expected) in [
            (
                r#""ext":{"a":1}"#,
                "attribute `ext` must be a string, an integer or a boolean, not an object",
            ),
            (r#""ext":[1]"#, "not an array"),
            (r#""ext":1.5"#, "not a fractional number"),
            (
                r#""ext":4294967296"#,
                "outside the CloudEvents Integer range",
            ),
            (
                r#""subject":5"#,
                "attribute `subject` must be a JSON string, not a number",
            ),
            (
                r#""data_base64":5"#,
                "`data_base64` must be a base64 JSON string",
            ),
            (r#""data_base64":"!!!""#, "not valid base64"),
            (r#""Bad":"x""#, "attribute name `Bad` is not allowed"),
            (r#""id":"2""#, "attribute `id` is given more than once"),
        ] {
            let err = parse(&format!("{{{BASE},{member}}}")).unwrap_err();
            assert!(err.to_string().contains(expected), "{member}: {err}");
        }
    }

    #[test]
    fn data_rules() {
        let data_of = |extra: &str| {
            parse(&format!("{{{BASE}{extra}}}"))
                .unwrap()
                .data()
                .cloned()
        };
        // JSON (declared or implied): the raw text, whitespace and all.
        let raw = r#"{ "b":1,  "a" : [1.0, 2e3] }"#;
        assert_eq!(
            data_of(&format!(r#","data":{raw}"#)),
            Some(Bytes::from(raw))
        );
        assert_eq!(
            data_of(r#","datacontenttype":"application/json","data":"s""#),
            Some(Bytes::from(r#""s""#))
        );
        // Text: the decoded string.
        assert_eq!(
            data_of(r#","datacontenttype":"text/plain","data":"h\u00e9 \"q\"""#),
            Some(Bytes::from("hé \"q\""))
        );
        // Non-JSON type with non-string data: the raw text.
        assert_eq!(
            data_of(r#","datacontenttype":"text/plain","data":[1, 2]"#),
            Some(Bytes::from("[1, 2]"))
        );
        assert_eq!(
            data_of(r#","data_base64":"AAEC/w==""#),
            Some(Bytes::from_static(&[0, 1, 2, 255]))
        );
        assert_eq!(data_of(r#","data":null"#), None);
        assert_eq!(
            parse(&format!(r#"{{{BASE},"data":1,"data_base64":"AA=="}}"#)),
            Err(ValidationError::DataAndDataBase64)
        );
    }

    #[test]
    fn json_data_is_sliced_not_copied() {
        let body = Bytes::from(format!(r#"{{{BASE},"data":{{"k": 1}}}}"#));
        let e = parse_event(&body, &body).unwrap().unwrap();
        let data = e.data().unwrap();
        let offset = data.as_ptr() as usize - body.as_ptr() as usize;
        assert_eq!(&body[offset..offset + data.len()], br#"{"k": 1}"#);
    }

    #[test]
    fn writes_escaped_strings_and_data_forms() {
        let mut e = Event::new("1", "/s", "t");
        e.set_attribute("subject", "a\"b\\c\nd\u{1}é").unwrap();
        let mut out = Vec::new();
        write_event(&mut out, &e);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","subject":"a\"b\\c\nd\u0001é"}"#
        );
        let back = parse(&text).unwrap();
        assert_eq!(back, e);

        for (ct, data, member) in [
            (None, &b"[1,  2]"[..], r#""data":[1,  2]}"#),
            (
                Some("application/json"),
                b"not json",
                r#""data_base64":"bm90IGpzb24="}"#,
            ),
            (Some("text/plain"), b"hi \"x\"", r#""data":"hi \"x\""}"#),
            (Some("text/plain"), b"\xff", r#""data_base64":"/w=="}"#),
            (
                Some("application/octet-stream"),
                b"{}",
                r#""data_base64":"e30="}"#,
            ),
        ] {
            e.set_data(ct, Bytes::copy_from_slice(data)).unwrap();
            let mut out = Vec::new();
            write_event(&mut out, &e);
            let text = String::from_utf8(out).unwrap();
            assert!(text.ends_with(member), "{text}");
            assert_eq!(parse(&text).unwrap(), e, "{text}");
        }
    }
}
