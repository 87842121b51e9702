//! CloudEvents 1.0.2 for wisp: the event value, the HTTP protocol binding (binary, structured and
//! batched JSON) and the compact encoding the broker writes to its event log.
//!
//! Why raw bytes: a broker is a pipe, and Knative promises that what a producer sends is what a
//! subscriber receives. The Rust cloudevents-sdk decodes JSON `data` into a `serde_json::Value`
//! and prints it again, which changes whitespace, key order and number spelling. Here `data` is
//! `Bytes` exactly as received; JSON `data` is located with `RawValue` and sliced out of the
//! request body without a copy.
//!
//! Why attributes are strings: every CloudEvents type (String, Integer, Boolean, URI,
//! URI-reference, Timestamp) has a canonical string form, binary mode carries nothing else, and
//! trigger filters compare strings. One representation means binary, structured and log forms
//! convert into each other without reformatting. The price: an integer or boolean extension that
//! arrived as a JSON number comes back out of [`to_structured`] as a JSON string, which the JSON
//! format allows.
//!
//! Why validate on the way in: an [`Event`] can only be built from checked parts (parsing,
//! [`Event::set_attribute`], [`Event::decode`]), so the ingress rejects a bad event once, with a
//! message naming the attribute and the header it came from, and nothing downstream re-checks.
//!
//! Why an own log encoding: the event log stores every event at ingress rates; re-parsing JSON
//! or HTTP headers on replay would cost more than the write. [`Event::encode`] is one exactly
//! sized buffer, tagged and length-prefixed so a decoder can reject garbage without panicking.
//!
//! What this crate must not do: I/O, clocks, tasks. Callers stamp `knativearrivaltime` themselves.

#![forbid(unsafe_code)]

mod binding;
mod codec;
mod event;
mod json;
mod time;

pub use binding::{Incoming, ParseError, from_http, to_batch, to_binary, to_structured};
pub use codec::DecodeError;
pub use event::{Event, SPEC_VERSION, ValidationError};

/// Extension attributes the Knative broker and tracing use.
pub mod extensions {
    /// When the broker ingress accepted the event (RFC 3339).
    pub const KNATIVE_ARRIVAL_TIME: &str = "knativearrivaltime";
    /// Hops left before the broker drops an event that loops through triggers.
    pub const KNATIVE_BROKER_TTL: &str = "knativebrokerttl";
    /// Where delivery failed last, on events sent to a dead letter sink.
    pub const KNATIVE_ERROR_DEST: &str = "knativeerrordest";
    /// The HTTP status of the last failed delivery.
    pub const KNATIVE_ERROR_CODE: &str = "knativeerrorcode";
    /// The (base64, truncated) response body of the last failed delivery.
    pub const KNATIVE_ERROR_DATA: &str = "knativeerrordata";
    /// W3C trace context, as the CloudEvents distributed tracing extension carries it.
    pub const TRACEPARENT: &str = "traceparent";
    /// W3C trace state, vendor specific.
    pub const TRACESTATE: &str = "tracestate";
}
