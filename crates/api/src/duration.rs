//! Go's `time.ParseDuration`, because Knative's annotations (`window: 60s`,
//! `scale-down-delay: 1m30s`, `rollout-duration`) are parsed with it and must accept and refuse
//! exactly what Knative does.

/// Nanoseconds, as Go's `time.Duration`.
pub(crate) type Nanos = i128;

pub(crate) const SECOND: Nanos = 1_000_000_000;
pub(crate) const HOUR: Nanos = 3600 * SECOND;

/// Parses `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+` (or a bare `0`) into nanoseconds.
pub(crate) fn parse(s: &str) -> Result<Nanos, String> {
    let orig = s;
    let err = || format!("time: invalid duration {orig:?}");
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(err());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_end];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(err());
        }
        let value: f64 = num.parse().map_err(|_| err())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        let scale: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("time: missing unit in duration {orig:?}")),
            _ => return Err(format!("time: unknown unit {unit:?} in duration {orig:?}")),
        };
        total += value * scale;
    }
    if total > i64::MAX as f64 {
        return Err(err());
    }
    let n = total.round() as Nanos;
    Ok(if neg { -n } else { n })
}

/// Go's `Duration.String()` for whole and fractional seconds, enough for error messages
/// (`1h0m0s`, `6s`, `0s`).
pub(crate) fn format(n: Nanos) -> String {
    if n == 0 {
        return "0s".to_string();
    }
    let neg = n < 0;
    let n = n.abs();
    let h = n / HOUR;
    let m = (n % HOUR) / (60 * SECOND);
    let s = n % (60 * SECOND);
    let secs = if s % SECOND == 0 {
        format!("{}", s / SECOND)
    } else {
        let f = format!("{:.9}", s as f64 / 1e9);
        f.trim_end_matches('0').to_string()
    };
    let body = if h > 0 {
        format!("{h}h{m}m{secs}s")
    } else if m > 0 {
        format!("{m}m{secs}s")
    } else {
        format!("{secs}s")
    };
    if neg { format!("-{body}") } else { body }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_go() {
        let ok: &[(&str, Nanos)] = &[
            ("0", 0),
            ("6s", 6 * SECOND),
            ("1m30s", 90 * SECOND),
            ("1h", HOUR),
            ("1.5s", 1_500_000_000),
            ("-2s", -2 * SECOND),
            ("500ms", 500_000_000),
            ("1h0m0s", HOUR),
        ];
        for (s, want) in ok {
            assert_eq!(parse(s), Ok(*want), "{s}");
        }
        for s in ["", "5", "s", "1x", "1..2s", "-", "abc"] {
            assert!(parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format(HOUR), "1h0m0s");
        assert_eq!(format(6 * SECOND), "6s");
        assert_eq!(format(90 * SECOND), "1m30s");
        assert_eq!(format(0), "0s");
        assert_eq!(format(1_500_000_000), "1.5s");
    }
}
