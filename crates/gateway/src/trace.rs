//! W3C Trace Context (level 1) for the gateway's hop: the `traceparent` header parsed,
//! a span id made for the hop, and the header the replica gets.
//!
//! Why here and not in a tracing crate: the gateway depends on no other wisp crate, and the
//! header handling is on every request (propagation is always on, exporting or not), so it
//! must be a few dozen instructions: a fixed-width parse, a thread-local xorshift for ids,
//! a 55-byte format. `wisp-telemetry` re-exports this module for the event plane and owns
//! the span model and the exporter.
//!
//! Rules (<https://www.w3.org/TR/trace-context/#traceparent-header>): `version-traceid-
//! parentid-flags`, lowercase hex only; version `ff` is invalid; version `00` is exactly 55
//! characters; a later version may carry more after a `-`, and is propagated as `00`; an
//! all-zero trace or parent id is invalid. An invalid header is treated as absent. Only the
//! `sampled` flag is propagated.

use std::cell::Cell;

use hyper::header::{HeaderName, HeaderValue};

/// The `traceparent` header.
pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// The `tracestate` header (passed through untouched).
pub static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Length of a version-00 `traceparent`.
pub const TRACEPARENT_LEN: usize = 55;

/// One span's place in a trace: what a `traceparent` carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    /// The span this context names (in a received header: the caller's span, our parent).
    pub span_id: [u8; 8],
    /// Trace flags; only [`TraceContext::SAMPLED`] is kept.
    pub flags: u8,
}

impl TraceContext {
    /// The `sampled` flag: the caller may have recorded its span, and asks us to record ours.
    pub const SAMPLED: u8 = 0x01;

    /// Parses a `traceparent` value; `None` if it is not valid.
    pub fn parse(value: &[u8]) -> Option<TraceContext> {
        if value.len() < TRACEPARENT_LEN {
            return None;
        }
        let version = hex_byte(value[0], value[1])?;
        if version == 0xff
            || (version == 0 && value.len() != TRACEPARENT_LEN)
            || (value.len() > TRACEPARENT_LEN && value[TRACEPARENT_LEN] != b'-')
            || value[2] != b'-'
            || value[35] != b'-'
            || value[52] != b'-'
        {
            return None;
        }
        let mut trace_id = [0u8; 16];
        for (i, b) in trace_id.iter_mut().enumerate() {
            *b = hex_byte(value[3 + 2 * i], value[4 + 2 * i])?;
        }
        let mut span_id = [0u8; 8];
        for (i, b) in span_id.iter_mut().enumerate() {
            *b = hex_byte(value[36 + 2 * i], value[37 + 2 * i])?;
        }
        let flags = hex_byte(value[53], value[54])?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceContext {
            trace_id,
            span_id,
            flags: flags & Self::SAMPLED,
        })
    }

    /// [`parse`](Self::parse) of a header value.
    pub fn from_header(value: &HeaderValue) -> Option<TraceContext> {
        Self::parse(value.as_bytes())
    }

    pub fn sampled(&self) -> bool {
        self.flags & Self::SAMPLED != 0
    }

    /// A new trace (random ids), sampled or not.
    pub fn new_root(sampled: bool) -> TraceContext {
        TraceContext {
            trace_id: random_trace_id(),
            span_id: random_span_id(),
            flags: if sampled { Self::SAMPLED } else { 0 },
        }
    }

    /// A span of the same trace under this one: a new span id, the same flags.
    pub fn child(&self) -> TraceContext {
        TraceContext {
            span_id: random_span_id(),
            ..*self
        }
    }

    /// The version-00 `traceparent` text.
    pub fn encode(&self) -> [u8; TRACEPARENT_LEN] {
        let mut out = [b'-'; TRACEPARENT_LEN];
        out[0] = b'0';
        out[1] = b'0';
        hex_into(&mut out[3..35], &self.trace_id);
        hex_into(&mut out[36..52], &self.span_id);
        hex_into(&mut out[53..55], &[self.flags]);
        out
    }

    /// The `traceparent` header value.
    pub fn to_header(&self) -> HeaderValue {
        HeaderValue::from_bytes(&self.encode()).expect("hex and dashes are a valid header value")
    }

    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    pub fn span_id_hex(&self) -> String {
        hex(&self.span_id)
    }
}

impl std::fmt::Display for TraceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self.encode();
        f.write_str(std::str::from_utf8(&text).map_err(|_| std::fmt::Error)?)
    }
}

/// The trace context of the gateway's hop of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HopTrace {
    /// The hop's own span (its id is the parent the replica sees).
    pub context: TraceContext,
    /// The caller's span, from a valid incoming `traceparent`.
    pub parent: Option<[u8; 8]>,
}

impl HopTrace {
    /// The hop of a request whose `traceparent` is `incoming`: a child of the caller's span,
    /// keeping its sampled flag; or, with none valid, a new trace, sampled when
    /// `sample_new` (an exporter is configured).
    pub fn of(incoming: Option<&HeaderValue>, sample_new: bool) -> HopTrace {
        match incoming.and_then(TraceContext::from_header) {
            Some(caller) => HopTrace {
                context: caller.child(),
                parent: Some(caller.span_id),
            },
            None => HopTrace {
                context: TraceContext::new_root(sample_new),
                parent: None,
            },
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_into(out: &mut [u8], bytes: &[u8]) {
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[(b >> 4) as usize];
        out[2 * i + 1] = HEX[(b & 0xf) as usize];
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len() * 2];
    hex_into(&mut out, bytes);
    String::from_utf8(out).expect("hex is ASCII")
}

/// One lowercase hex digit (uppercase is invalid in a `traceparent`).
fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

fn hex_byte(hi: u8, lo: u8) -> Option<u8> {
    Some(nibble(hi)? << 4 | nibble(lo)?)
}

/// A random, non-zero 64-bit number: xorshift64* on a per-thread state seeded from the
/// standard library's per-process random keys. Fast and unpredictable enough for ids, not
/// for secrets.
fn next_random() -> u64 {
    thread_local! {
        static STATE: Cell<u64> = const { Cell::new(0) };
    }
    STATE.with(|s| {
        let mut x = s.get();
        if x == 0 {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64),
            );
            x = h.finish() | 1;
        }
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

/// A random span id (never all zeros).
pub fn random_span_id() -> [u8; 8] {
    loop {
        let v = next_random();
        if v != 0 {
            return v.to_be_bytes();
        }
    }
}

/// A random trace id (never all zeros).
pub fn random_trace_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&next_random().to_be_bytes());
    id[8..].copy_from_slice(&random_span_id());
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_round_trips() {
        let c = TraceContext::parse(VALID.as_bytes()).expect("valid");
        assert_eq!(c.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(c.span_id_hex(), "00f067aa0ba902b7");
        assert!(c.sampled());
        assert_eq!(c.to_string(), VALID);
        assert_eq!(c.to_header(), VALID);
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        assert!(!TraceContext::parse(unsampled.as_bytes()).unwrap().sampled());
    }

    #[test]
    fn invalid_traceparents_are_refused() {
        let bad = [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            // Uppercase hex is not allowed.
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
            // Version ff, and version 00 with trailing data.
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz",
            // All-zero ids.
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // Wrong lengths and separators.
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ];
        for b in bad {
            assert_eq!(TraceContext::parse(b.as_bytes()), None, "{b:?}");
        }
    }

    #[test]
    fn later_versions_are_read_and_propagated_as_00() {
        let v = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-what-the-future-holds";
        let c = TraceContext::parse(v.as_bytes()).expect("a later version is read");
        // Only the sampled flag is kept.
        assert_eq!(c.to_string(), VALID);
        let no_dash = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x";
        assert_eq!(TraceContext::parse(no_dash.as_bytes()), None);
    }

    #[test]
    fn a_hop_is_a_child_of_the_caller_or_a_new_trace() {
        let incoming = HeaderValue::from_static(VALID);
        let hop = HopTrace::of(Some(&incoming), false);
        let caller = TraceContext::from_header(&incoming).unwrap();
        assert_eq!(hop.context.trace_id, caller.trace_id);
        assert_ne!(hop.context.span_id, caller.span_id);
        assert_eq!(hop.parent, Some(caller.span_id));
        assert!(hop.context.sampled(), "the caller's flag is kept");

        let fresh = HopTrace::of(None, false);
        assert_eq!(fresh.parent, None);
        assert!(!fresh.context.sampled());
        assert!(HopTrace::of(None, true).context.sampled());
        let junk = HeaderValue::from_static("00-zz");
        assert_eq!(HopTrace::of(Some(&junk), true).parent, None);
        // Made ids are valid and differ.
        let a = TraceContext::new_root(true);
        let b = TraceContext::new_root(true);
        assert_ne!(a.trace_id, b.trace_id);
        assert_eq!(TraceContext::parse(&a.encode()), Some(a));
    }
}
