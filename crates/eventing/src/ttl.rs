//! The `knativebrokerttl` loop guard. A subscriber's reply goes back into the broker, where it
//! may match the same trigger again and produce another reply; the TTL bounds that loop.
//!
//! Knative's rules (knative/eventing `pkg/broker/ttl.go` `TTLDefaulter`, applied by the
//! ingress in `pkg/broker/ingress/ingress_handler.go`): on every arrival at a broker's
//! ingress, an event without the extension gets the default (255, the ingress's `MAX_TTL`),
//! one with a value that is not an integer is reset to the default, and otherwise the value
//! is decremented, never below 0. The ingress then drops the event when the result is 0 or
//! less (Knative answers 400). The filter side (`pkg/broker/filter/filter_handler.go`)
//! removes the extension before delivering to the subscriber and puts the same value back on
//! the reply, so the next arrival decrements it again: an event and its replies pass through
//! a broker at most 255 times.

/// The CloudEvents extension attribute that carries the TTL.
pub const TTL_ATTRIBUTE: &str = "knativebrokerttl";

/// Knative's default TTL (`MAX_TTL` of the broker ingress).
pub const DEFAULT_TTL: i32 = 255;

/// The ingress's verdict on an arriving event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlVerdict {
    /// Accept the event, storing this value in [`TTL_ATTRIBUTE`] (always >= 1).
    Forward(i32),
    /// The loop guard ran out: refuse the event.
    Drop,
}

/// Decides at a broker's ingress, given the event's current `knativebrokerttl` value (as the
/// string it arrived as, `None` when absent) and the broker's default.
pub fn on_ingress(current: Option<&str>, default_ttl: i32) -> TtlVerdict {
    let ttl = match current.and_then(parse) {
        None => default_ttl,
        Some(ttl) => ttl.saturating_sub(1).max(0),
    };
    if ttl <= 0 {
        TtlVerdict::Drop
    } else {
        TtlVerdict::Forward(ttl)
    }
}

/// CloudEvents Integer parsing as sdk-go's `types.ParseInteger` does it: a number (a fraction
/// is truncated) that fits 32 bits; anything else is invalid.
fn parse(value: &str) -> Option<i32> {
    if let Ok(i) = value.parse::<i32>() {
        return Some(i);
    }
    let f = value.parse::<f64>().ok().filter(|f| f.is_finite())?;
    if f > f64::from(i32::MAX) || f < f64::from(i32::MIN) {
        return None;
    }
    // In range and finite, so the truncating cast is exact.
    Some(f as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingress_table() {
        let cases: [(Option<&str>, TtlVerdict); 12] = [
            (None, TtlVerdict::Forward(255)),
            (Some("255"), TtlVerdict::Forward(254)),
            (Some("10"), TtlVerdict::Forward(9)),
            (Some("2"), TtlVerdict::Forward(1)),
            (Some("1"), TtlVerdict::Drop),
            (Some("0"), TtlVerdict::Drop),
            (Some("-7"), TtlVerdict::Drop),
            (Some("-2147483648"), TtlVerdict::Drop),
            (Some("7.9"), TtlVerdict::Forward(6)),
            (Some("abc"), TtlVerdict::Forward(255)),
            (Some(""), TtlVerdict::Forward(255)),
            (Some("99999999999"), TtlVerdict::Forward(255)),
        ];
        for (current, want) in cases {
            assert_eq!(on_ingress(current, DEFAULT_TTL), want, "{current:?}");
        }
    }

    #[test]
    fn a_reply_loop_stops_after_the_default_number_of_passes() {
        let mut value: Option<String> = None;
        let mut passes = 0;
        while let TtlVerdict::Forward(ttl) = on_ingress(value.as_deref(), DEFAULT_TTL) {
            passes += 1;
            value = Some(ttl.to_string());
        }
        assert_eq!(passes, 255);
    }

    #[test]
    fn a_non_positive_default_drops_everything_new() {
        assert_eq!(on_ingress(None, 0), TtlVerdict::Drop);
        assert_eq!(on_ingress(Some("x"), -1), TtlVerdict::Drop);
    }
}
