//! The event log's encoding of an [`Event`], version 1:
//!
//! ```text
//! event = 0x01 field* 0x00
//! field = tag len bytes              tag 1..=8: spec attribute (specversion, id, source, type,
//!                                               datacontenttype, dataschema, subject, time)
//!       | 0x09 len name len bytes    extension attribute
//!       | 0x0A len bytes             data
//! len   = unsigned LEB128
//! ```
//!
//! Why this shape: the version byte lets a later layout coexist with logs already on disk; tags
//! for the spec attributes keep the common event small while extension names make the record
//! readable without a schema; the end marker makes a record cut at a field boundary an error
//! instead of an event that silently lost its data. Why the size is computed first: encoding is
//! on the ingress path, so it is one allocation of the exact size and straight copies.
//! Decoding runs the same checks as HTTP parsing: a log is input too, and a bad record must
//! surface as an error, never as a panic or an invalid event.

use bytes::Bytes;

use crate::event::{Builder, Event, SPEC_ATTRIBUTES, ValidationError};

const VERSION: u8 = 1;
const TAG_END: u8 = 0;
const TAG_EXTENSION: u8 = 9;
const TAG_DATA: u8 = 10;

/// Why bytes are not an encoded event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("encoded event is truncated at byte {0}")]
    Truncated(usize),
    #[error("encoded event has version {0}; this build reads version 1")]
    UnsupportedVersion(u8),
    #[error("encoded event has unknown field tag {tag} at byte {at}")]
    UnknownTag { tag: u8, at: usize },
    #[error("encoded event has an oversized length at byte {0}")]
    BadLength(usize),
    #[error("encoded event has text that is not UTF-8 at byte {0}")]
    NotUtf8(usize),
    #[error("encoded event has {0} bytes after its end marker")]
    TrailingBytes(usize),
    #[error("encoded event has data twice")]
    DuplicateData,
    #[error("encoded event is not a valid CloudEvent: {0}")]
    Invalid(#[from] ValidationError),
}

impl Event {
    /// The log encoding of this event (see the module docs for the layout).
    pub fn encode(&self) -> Bytes {
        let spec = self.spec_attributes();
        let field = |len: usize| 1 + varint_len(len) + len;
        let size = 2
            + spec.iter().flatten().map(|v| field(v.len())).sum::<usize>()
            + self
                .extensions()
                .map(|(k, v)| field(k.len()) + varint_len(v.len()) + v.len())
                .sum::<usize>()
            + self.data().map_or(0, |d| field(d.len()));

        let mut out = Vec::with_capacity(size);
        out.push(VERSION);
        for (tag, value) in (1u8..).zip(spec) {
            if let Some(value) = value {
                out.push(tag);
                put_bytes(&mut out, value.as_bytes());
            }
        }
        for (name, value) in self.extensions() {
            out.push(TAG_EXTENSION);
            put_bytes(&mut out, name.as_bytes());
            put_bytes(&mut out, value.as_bytes());
        }
        if let Some(data) = self.data() {
            out.push(TAG_DATA);
            put_bytes(&mut out, data);
        }
        out.push(TAG_END);
        debug_assert_eq!(out.len(), size);
        out.into()
    }

    /// Reads an event written by [`Event::encode`], copying the data.
    pub fn decode(buf: &[u8]) -> Result<Event, DecodeError> {
        decode(buf, Bytes::copy_from_slice)
    }

    /// Like [`Event::decode`], but `data` shares `buf`'s memory instead of copying it.
    pub fn decode_bytes(buf: &Bytes) -> Result<Event, DecodeError> {
        decode(buf, |data| buf.slice_ref(data))
    }
}

fn decode(buf: &[u8], mut data_from: impl FnMut(&[u8]) -> Bytes) -> Result<Event, DecodeError> {
    let mut r = Reader { buf, pos: 0 };
    match r.byte()? {
        VERSION => {}
        other => return Err(DecodeError::UnsupportedVersion(other)),
    }
    let mut b = Builder::new();
    loop {
        let at = r.pos;
        match r.byte()? {
            TAG_END => break,
            tag @ 1..=8 => {
                let value = r.text()?;
                b.set(SPEC_ATTRIBUTES[usize::from(tag - 1)], value.to_owned())?;
            }
            TAG_EXTENSION => {
                let name = r.text()?;
                let value = r.text()?;
                b.set(name, value.to_owned())?;
            }
            TAG_DATA => {
                let data = r.bytes()?;
                if b.has_data() {
                    return Err(DecodeError::DuplicateData);
                }
                b.set_data(data_from(data));
            }
            tag => return Err(DecodeError::UnknownTag { tag, at }),
        }
    }
    match buf.len() - r.pos {
        0 => Ok(b.finish()?),
        extra => Err(DecodeError::TrailingBytes(extra)),
    }
}

fn varint_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut n = bytes.len();
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend_from_slice(bytes);
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or(DecodeError::Truncated(self.pos))?;
        self.pos += 1;
        Ok(b)
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let at = self.pos;
        let mut len: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            len |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                let len = usize::try_from(len).map_err(|_| DecodeError::BadLength(at))?;
                let end = self
                    .pos
                    .checked_add(len)
                    .filter(|end| *end <= self.buf.len())
                    .ok_or(DecodeError::Truncated(self.buf.len()))?;
                let bytes = &self.buf[self.pos..end];
                self.pos = end;
                return Ok(bytes);
            }
        }
        Err(DecodeError::BadLength(at))
    }

    fn text(&mut self) -> Result<&'a str, DecodeError> {
        let at = self.pos;
        std::str::from_utf8(self.bytes()?).map_err(|_| DecodeError::NotUtf8(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> Event {
        let mut e = Event::new(
            "id-1",
            "/apis/v1/namespaces/default/pingsources/p",
            "dev.knative.sources.ping",
        );
        e.set_attribute("time", "2024-05-01T12:00:00Z").unwrap();
        e.set_attribute("subject", "s").unwrap();
        e.set_attribute("dataschema", "https://example.com/schema")
            .unwrap();
        e.set_attribute(
            crate::extensions::KNATIVE_ARRIVAL_TIME,
            "2024-05-01T12:00:01Z",
        )
        .unwrap();
        e.set_attribute("long", "é".repeat(200)).unwrap();
        e.set_data(Some("application/json"), Bytes::from(vec![b'7'; 300]))
            .unwrap();
        e
    }

    #[test]
    fn round_trips() {
        for e in [Event::new("1", "/s", "t"), full()] {
            let bytes = e.encode();
            assert_eq!(Event::decode(&bytes).unwrap(), e);
            assert_eq!(Event::decode_bytes(&bytes).unwrap(), e);
        }
        let mut empty = Event::new("1", "/s", "t");
        empty.set_data(None, Bytes::new()).unwrap();
        assert_eq!(Event::decode(&empty.encode()).unwrap(), empty);
    }

    #[test]
    fn layout_is_compact_and_stable() {
        let mut e = Event::new("1", "/s", "t");
        e.set_attribute("x", "y").unwrap();
        e.set_data(None, "d").unwrap();
        assert_eq!(
            e.encode().as_ref(),
            b"\x01\x01\x031.0\x02\x011\x03\x02/s\x04\x01t\x09\x01x\x01y\x0a\x01d\x00"
        );
    }

    #[test]
    fn decode_bytes_shares_data() {
        let bytes = full().encode();
        let e = Event::decode_bytes(&bytes).unwrap();
        let data = e.data().unwrap();
        let range = bytes.as_ptr_range();
        assert!(range.contains(&data.as_ptr()));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = full().encode();
        for cut in 0..bytes.len() {
            assert!(Event::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let good = full().encode();
        assert_eq!(Event::decode(&[]), Err(DecodeError::Truncated(0)));
        assert_eq!(Event::decode(&[2]), Err(DecodeError::UnsupportedVersion(2)));
        assert_eq!(
            Event::decode(&[1, 11]),
            Err(DecodeError::UnknownTag { tag: 11, at: 1 })
        );
        assert_eq!(
            Event::decode(&[
                1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
            ]),
            Err(DecodeError::BadLength(2))
        );
        assert_eq!(
            Event::decode(&[1, 2, 1, 0xff]),
            Err(DecodeError::NotUtf8(2))
        );
        let mut trailing = good.to_vec();
        trailing.push(0);
        assert_eq!(Event::decode(&trailing), Err(DecodeError::TrailingBytes(1)));
        assert_eq!(
            Event::decode(b"\x01\x01\x031.0\x00"),
            Err(DecodeError::Invalid(ValidationError::Missing("id")))
        );
        assert_eq!(
            Event::decode(b"\x01\x01\x030.3\x00"),
            Err(DecodeError::Invalid(
                ValidationError::UnsupportedSpecVersion("0.3".into())
            ))
        );
        assert_eq!(
            Event::decode(b"\x01\x0a\x00\x0a\x00\x00"),
            Err(DecodeError::DuplicateData)
        );
        // Flip every byte of a valid record in turn: anything may come out, but no panic.
        for i in 0..good.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut bad = good.to_vec();
                bad[i] ^= flip;
                let _ = Event::decode(&bad);
            }
        }
    }
}
