//! The event value and the attribute rules every way in (HTTP, log, code) goes through.
//!
//! Why fields for the eight spec attributes and a sorted map for extensions: the spec attributes
//! are read on every delivery (id for dedup, type/source for filters, datacontenttype for the
//! JSON decision), so they are one field access away; extensions iterate in name order so
//! headers, JSON and the log encoding come out the same every time. Why one `check_attribute`
//! for parsing, `set_attribute` and `validate`: the rules then cannot drift between entry points.

use std::collections::BTreeMap;

use bytes::Bytes;

/// The only `specversion` this crate accepts and writes.
pub const SPEC_VERSION: &str = "1.0";

/// A CloudEvent: context attributes in canonical string form plus `data` exactly as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    id: String,
    source: String,
    specversion: String,
    ty: String,
    datacontenttype: Option<String>,
    dataschema: Option<String>,
    subject: Option<String>,
    time: Option<String>,
    extensions: BTreeMap<String, String>,
    data: Option<Bytes>,
}

/// Why an event (or one attribute of it) is not a valid CloudEvent. Messages are written for the
/// sender: they become HTTP 400 bodies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("missing required attribute `{0}`")]
    Missing(&'static str),
    #[error("attribute `{0}` must not be empty")]
    Empty(String),
    #[error(
        "specversion `{0}` is not supported: this server accepts CloudEvents specversion 1.0 only"
    )]
    UnsupportedSpecVersion(String),
    #[error(
        "attribute name `{0}` is not allowed: CloudEvents attribute names are one or more of \
         the characters a-z and 0-9"
    )]
    InvalidName(String),
    #[error("`data` cannot be used as an attribute name: it is the member that holds the payload")]
    ReservedName,
    #[error(
        "attribute `time` is `{value}`, which is not an RFC 3339 timestamp such as \
         2024-05-01T12:00:00Z: {reason}"
    )]
    InvalidTime { value: String, reason: &'static str },
    #[error(
        "attribute `datacontenttype` is `{0}`, which is not a media type such as application/json"
    )]
    InvalidContentType(String),
    #[error("attribute `{0}` is given more than once")]
    Duplicate(String),
    #[error("attribute `{name}` must be {expected}, not {found}")]
    WrongType {
        name: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error(
        "attribute `{0}` is an integer outside the CloudEvents Integer range \
         -2147483648 to 2147483647"
    )]
    IntegerOutOfRange(String),
    #[error("attribute `{0}` is not valid UTF-8 after percent-decoding")]
    NotUtf8(String),
    #[error("the event has both `data` and `data_base64`: send the payload in only one of them")]
    DataAndDataBase64,
    #[error("`data_base64` is not valid base64: {0}")]
    InvalidBase64(String),
    #[error("required attribute `{0}` cannot be removed")]
    Required(String),
}

impl ValidationError {
    /// The attribute the error is about, if it is about one.
    pub fn attribute(&self) -> Option<&str> {
        match self {
            ValidationError::Missing(name) => Some(name),
            ValidationError::Empty(name)
            | ValidationError::InvalidName(name)
            | ValidationError::Duplicate(name)
            | ValidationError::WrongType { name, .. }
            | ValidationError::IntegerOutOfRange(name)
            | ValidationError::NotUtf8(name)
            | ValidationError::Required(name) => Some(name),
            ValidationError::UnsupportedSpecVersion(_) => Some("specversion"),
            ValidationError::ReservedName => Some("data"),
            ValidationError::InvalidTime { .. } => Some("time"),
            ValidationError::InvalidContentType(_) => Some("datacontenttype"),
            ValidationError::InvalidBase64(_) => Some("data_base64"),
            ValidationError::DataAndDataBase64 => None,
        }
    }
}

/// The eight attributes the spec defines, in the order [`Event::attributes`] yields them. The
/// log encoding's tags are positions in this list (plus one), so the order is frozen.
pub(crate) const SPEC_ATTRIBUTES: [&str; 8] = [
    "specversion",
    "id",
    "source",
    "type",
    "datacontenttype",
    "dataschema",
    "subject",
    "time",
];

const REQUIRED: [&str; 4] = ["specversion", "id", "source", "type"];

impl Event {
    /// A new event with specversion 1.0 and no data. Call [`Event::validate`] if `id`, `source`
    /// or `ty` may be empty.
    pub fn new(id: impl Into<String>, source: impl Into<String>, ty: impl Into<String>) -> Event {
        Event {
            id: id.into(),
            source: source.into(),
            specversion: SPEC_VERSION.to_owned(),
            ty: ty.into(),
            datacontenttype: None,
            dataschema: None,
            subject: None,
            time: None,
            extensions: BTreeMap::new(),
            data: None,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }
    pub fn source(&self) -> &str {
        &self.source
    }
    pub fn specversion(&self) -> &str {
        &self.specversion
    }
    /// The `type` attribute.
    pub fn ty(&self) -> &str {
        &self.ty
    }
    pub fn datacontenttype(&self) -> Option<&str> {
        self.datacontenttype.as_deref()
    }
    pub fn dataschema(&self) -> Option<&str> {
        self.dataschema.as_deref()
    }
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }
    pub fn time(&self) -> Option<&str> {
        self.time.as_deref()
    }
    /// The payload, byte for byte as received; `None` when the event has no data.
    pub fn data(&self) -> Option<&Bytes> {
        self.data.as_ref()
    }

    /// Any attribute by name: the spec ones (`type`, not `ty`) and extensions.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        match name {
            "specversion" => Some(&self.specversion),
            "id" => Some(&self.id),
            "source" => Some(&self.source),
            "type" => Some(&self.ty),
            "datacontenttype" => self.datacontenttype.as_deref(),
            "dataschema" => self.dataschema.as_deref(),
            "subject" => self.subject.as_deref(),
            "time" => self.time.as_deref(),
            _ => self.extensions.get(name).map(String::as_str),
        }
    }

    /// Every attribute that is set, as (name, value): the spec attributes in the order
    /// specversion, id, source, type, datacontenttype, dataschema, subject, time, then
    /// extensions sorted by name.
    pub fn attributes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.spec_attributes()
            .into_iter()
            .zip(SPEC_ATTRIBUTES)
            .filter_map(|(value, name)| value.map(|v| (name, v)))
            .chain(self.extensions())
    }

    /// The spec attributes' values in [`SPEC_ATTRIBUTES`] order.
    pub(crate) fn spec_attributes(&self) -> [Option<&str>; 8] {
        [
            Some(self.specversion.as_str()),
            Some(self.id.as_str()),
            Some(self.source.as_str()),
            Some(self.ty.as_str()),
            self.datacontenttype.as_deref(),
            self.dataschema.as_deref(),
            self.subject.as_deref(),
            self.time.as_deref(),
        ]
    }

    pub(crate) fn extensions(&self) -> impl Iterator<Item = (&str, &str)> {
        self.extensions
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Sets a spec attribute or an extension, after checking the name and the value.
    pub fn set_attribute(
        &mut self,
        name: &str,
        value: impl Into<String>,
    ) -> Result<(), ValidationError> {
        let value = value.into();
        check_attribute(name, &value)?;
        self.store(name, value);
        Ok(())
    }

    /// Removes an optional attribute or extension, returning its value. The four required
    /// attributes cannot be removed.
    pub fn remove_attribute(&mut self, name: &str) -> Result<Option<String>, ValidationError> {
        match name {
            "specversion" | "id" | "source" | "type" => {
                Err(ValidationError::Required(name.to_owned()))
            }
            "datacontenttype" => Ok(self.datacontenttype.take()),
            "dataschema" => Ok(self.dataschema.take()),
            "subject" => Ok(self.subject.take()),
            "time" => Ok(self.time.take()),
            _ => Ok(self.extensions.remove(name)),
        }
    }

    /// Replaces the payload and its content type (`None` removes `datacontenttype`).
    pub fn set_data(
        &mut self,
        datacontenttype: Option<&str>,
        data: impl Into<Bytes>,
    ) -> Result<(), ValidationError> {
        if let Some(ct) = datacontenttype {
            check_attribute("datacontenttype", ct)?;
        }
        self.datacontenttype = datacontenttype.map(str::to_owned);
        self.data = Some(data.into());
        Ok(())
    }

    /// Removes the payload (the content type stays; remove it with `remove_attribute`).
    pub fn clear_data(&mut self) -> Option<Bytes> {
        self.data.take()
    }

    /// Checks every rule of the spec that this crate enforces. Events from [`crate::from_http`]
    /// and [`Event::decode`] have passed it already.
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.attributes()
            .try_for_each(|(name, value)| check_attribute(name, value))
    }

    /// Stores an already checked attribute; returns the previous value of an optional one.
    fn store(&mut self, name: &str, value: String) -> Option<String> {
        let slot = match name {
            "specversion" => return Some(std::mem::replace(&mut self.specversion, value)),
            "id" => return Some(std::mem::replace(&mut self.id, value)),
            "source" => return Some(std::mem::replace(&mut self.source, value)),
            "type" => return Some(std::mem::replace(&mut self.ty, value)),
            "datacontenttype" => &mut self.datacontenttype,
            "dataschema" => &mut self.dataschema,
            "subject" => &mut self.subject,
            "time" => &mut self.time,
            _ => return self.extensions.insert(name.to_owned(), value),
        };
        slot.replace(value)
    }
}

/// Assembles an event from parts arriving one by one (headers, JSON members, log fields),
/// refusing duplicates and reporting the first required attribute that never came.
pub(crate) struct Builder {
    event: Event,
    seen_required: [bool; 4],
}

impl Builder {
    pub(crate) fn new() -> Builder {
        let mut event = Event::new(String::new(), String::new(), String::new());
        event.specversion.clear();
        Builder {
            event,
            seen_required: [false; 4],
        }
    }

    pub(crate) fn set(&mut self, name: &str, value: String) -> Result<(), ValidationError> {
        check_attribute(name, &value)?;
        let duplicate = match REQUIRED.iter().position(|r| *r == name) {
            Some(i) => std::mem::replace(&mut self.seen_required[i], true),
            None => self.contains(name),
        };
        if duplicate {
            return Err(ValidationError::Duplicate(name.to_owned()));
        }
        self.event.store(name, value);
        Ok(())
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        match REQUIRED.iter().position(|r| *r == name) {
            Some(i) => self.seen_required[i],
            None => self.event.attribute(name).is_some(),
        }
    }

    pub(crate) fn datacontenttype(&self) -> Option<&str> {
        self.event.datacontenttype()
    }

    pub(crate) fn has_data(&self) -> bool {
        self.event.data.is_some()
    }

    pub(crate) fn set_data(&mut self, data: Bytes) {
        self.event.data = Some(data);
    }

    pub(crate) fn finish(self) -> Result<Event, ValidationError> {
        match REQUIRED
            .iter()
            .zip(self.seen_required)
            .find(|(_, seen)| !seen)
        {
            Some((name, _)) => Err(ValidationError::Missing(name)),
            None => Ok(self.event),
        }
    }
}

/// The one place attribute names and values are checked.
pub(crate) fn check_attribute(name: &str, value: &str) -> Result<(), ValidationError> {
    // 1.0.2 recommends names of at most 20 characters; longer ones are accepted.
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(ValidationError::InvalidName(name.to_owned()));
    }
    match name {
        "data" => Err(ValidationError::ReservedName),
        "specversion" if value != SPEC_VERSION => {
            Err(ValidationError::UnsupportedSpecVersion(value.to_owned()))
        }
        "id" | "source" | "type" | "subject" | "dataschema" if value.is_empty() => {
            Err(ValidationError::Empty(name.to_owned()))
        }
        // It travels as the Content-Type header, so it must be something a header can carry.
        "datacontenttype"
            if value.is_empty()
                || !value
                    .bytes()
                    .all(|b| b == b'\t' || (b' '..=b'~').contains(&b)) =>
        {
            Err(ValidationError::InvalidContentType(value.to_owned()))
        }
        "time" => {
            crate::time::check_rfc3339(value).map_err(|reason| ValidationError::InvalidTime {
                value: value.to_owned(),
                reason,
            })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Event {
        let mut e = Event::new("1", "/src", "com.example.created");
        e.set_attribute("subject", "thing").unwrap();
        e.set_attribute("zext", "z").unwrap();
        e.set_attribute("aext", "a").unwrap();
        e.set_data(Some("text/plain"), "hi").unwrap();
        e
    }

    #[test]
    fn accessors_and_deterministic_order() {
        let e = sample();
        assert_eq!(
            (e.id(), e.source(), e.ty(), e.specversion()),
            ("1", "/src", "com.example.created", "1.0")
        );
        assert_eq!(e.attribute("type"), Some("com.example.created"));
        assert_eq!(e.attribute("aext"), Some("a"));
        assert_eq!(e.attribute("nope"), None);
        assert_eq!(e.datacontenttype(), Some("text/plain"));
        let names: Vec<_> = e.attributes().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "specversion",
                "id",
                "source",
                "type",
                "datacontenttype",
                "subject",
                "aext",
                "zext"
            ]
        );
        assert!(e.validate().is_ok());
    }

    #[test]
    fn names_are_lowercase_alphanumeric_of_any_length() {
        let mut e = sample();
        for bad in ["", "Foo", "foo-bar", "foo_bar", "héllo", "a b"] {
            assert_eq!(
                e.set_attribute(bad, "x"),
                Err(ValidationError::InvalidName(bad.to_owned())),
                "{bad}"
            );
        }
        e.set_attribute("averyveryverylongextensionname123", "ok")
            .unwrap();
        assert_eq!(
            e.set_attribute("data", "x"),
            Err(ValidationError::ReservedName)
        );
    }

    #[test]
    fn value_rules() {
        let mut e = sample();
        let err = e.set_attribute("specversion", "0.3").unwrap_err();
        assert!(
            err.to_string()
                .contains("accepts CloudEvents specversion 1.0")
        );
        assert_eq!(
            e.set_attribute("id", ""),
            Err(ValidationError::Empty("id".into()))
        );
        assert!(matches!(
            e.set_attribute("time", "yesterday"),
            Err(ValidationError::InvalidTime { .. })
        ));
        e.set_attribute("time", "2024-02-29T23:59:60.123+01:00")
            .unwrap();
        assert!(e.set_data(Some("text/plain\n"), "x").is_err());
        e.set_attribute("emptyext", "").unwrap();
        assert!(e.validate().is_ok());

        let blank = Event::new("", "/s", "t");
        assert_eq!(blank.validate(), Err(ValidationError::Empty("id".into())));
    }

    #[test]
    fn remove_and_data() {
        let mut e = sample();
        assert_eq!(
            e.remove_attribute("id"),
            Err(ValidationError::Required("id".into()))
        );
        assert_eq!(e.remove_attribute("aext"), Ok(Some("a".into())));
        assert_eq!(e.remove_attribute("subject"), Ok(Some("thing".into())));
        assert_eq!(e.remove_attribute("subject"), Ok(None));
        assert_eq!(e.clear_data(), Some(Bytes::from_static(b"hi")));
        assert_eq!(e.data(), None);
        e.set_data(None, "x").unwrap();
        assert_eq!(e.datacontenttype(), None);
    }

    #[test]
    fn builder_refuses_duplicates_and_names_missing() {
        let mut b = Builder::new();
        b.set("id", "1".into()).unwrap();
        assert_eq!(
            b.set("id", "2".into()),
            Err(ValidationError::Duplicate("id".into()))
        );
        b.set("x", "1".into()).unwrap();
        assert_eq!(
            b.set("x", "1".into()),
            Err(ValidationError::Duplicate("x".into()))
        );
        b.set("specversion", "1.0".into()).unwrap();
        b.set("source", "/s".into()).unwrap();
        assert_eq!(b.finish(), Err(ValidationError::Missing("type")));
    }
}
