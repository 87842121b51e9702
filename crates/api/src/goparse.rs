//! The Go parsers Knative reads its knobs with (`time.ParseDuration`, `strconv.ParseFloat`,
//! `strconv.ParseInt`, `strconv.ParseBool`) and `time.Duration.String()` for messages, so that
//! wisp accepts and refuses the same ConfigMap values and annotations and says so in the same
//! words.

use std::time::Duration;

/// A Go `time.Duration`: signed nanoseconds.
pub type Nanos = i64;

pub const SECOND: Nanos = 1_000_000_000;
pub const HOUR: Nanos = 3600 * SECOND;

/// `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, or a bare `0`.
pub fn parse_duration(s: &str) -> Result<Nanos, String> {
    let invalid = || format!("time: invalid duration {s:?}");
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    // Accumulate in i128 so that overflow is detected, not wrapped.
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let int_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let int_digits = &rest[..int_end];
        rest = &rest[int_end..];
        let mut frac_digits = "";
        if let Some(after_dot) = rest.strip_prefix('.') {
            let frac_end = after_dot
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after_dot.len());
            frac_digits = &after_dot[..frac_end];
            rest = &after_dot[frac_end..];
            if int_digits.is_empty() && frac_digits.is_empty() {
                return Err(invalid());
            }
        } else if int_digits.is_empty() {
            return Err(invalid());
        }
        let unit_end = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => SECOND as i128,
            "m" => 60 * SECOND as i128,
            "h" => HOUR as i128,
            "" => return Err(format!("time: missing unit in duration {s:?}")),
            _ => return Err(format!("time: unknown unit {unit:?} in duration {s:?}")),
        };
        let mut int: i128 = 0;
        for b in int_digits.bytes() {
            int = int * 10 + i128::from(b - b'0');
            if int > i128::from(i64::MAX) + 1 {
                return Err(invalid());
            }
        }
        // Keep at most 18 fractional digits: finer than a nanosecond at any unit.
        let (mut frac, mut denom): (i128, i128) = (0, 1);
        for b in frac_digits.bytes().take(18) {
            frac = frac * 10 + i128::from(b - b'0');
            denom *= 10;
        }
        total += int * scale + frac * scale / denom;
        if total > i128::from(i64::MAX) + 1 {
            return Err(invalid());
        }
    }
    let signed = if neg { -total } else { total };
    i64::try_from(signed).map_err(|_| invalid())
}

/// `time.Duration.String()`: `0s`, `500ms`, `1.5s`, `1m30s`, `1h0m0s`, `-2s`.
pub fn format_duration(d: Nanos) -> String {
    if d == 0 {
        return "0s".to_string();
    }
    let sign = if d < 0 { "-" } else { "" };
    let n = d.unsigned_abs();
    let frac = |value: u64, unit: u64| -> String {
        let whole = value / unit;
        let rest = value % unit;
        if rest == 0 {
            return whole.to_string();
        }
        let width = unit.ilog10() as usize;
        let digits = format!("{rest:0width$}");
        format!("{whole}.{}", digits.trim_end_matches('0'))
    };
    if n < 1_000 {
        return format!("{sign}{n}ns");
    }
    if n < 1_000_000 {
        return format!("{sign}{}µs", frac(n, 1_000));
    }
    if n < SECOND as u64 {
        return format!("{sign}{}ms", frac(n, 1_000_000));
    }
    let h = n / HOUR as u64;
    let m = (n % HOUR as u64) / (60 * SECOND as u64);
    let s = frac(n % (60 * SECOND as u64), SECOND as u64);
    if h > 0 {
        format!("{sign}{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{sign}{m}m{s}s")
    } else {
        format!("{sign}{s}s")
    }
}

/// A non-negative Go duration as a std one (negative values clamp to zero; callers validate).
pub fn to_std(d: Nanos) -> Duration {
    Duration::from_nanos(u64::try_from(d).unwrap_or(0))
}

/// A std duration as a Go one, saturating at `i64::MAX` nanoseconds (292 years).
pub fn from_std(d: Duration) -> Nanos {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Go's `Duration.Round(time.Second)`: halves round away from zero.
pub fn round_to_second(d: Nanos) -> Nanos {
    let r = d % SECOND;
    if r == 0 {
        return d;
    }
    if d >= 0 {
        if r * 2 >= SECOND {
            d - r + SECOND
        } else {
            d - r
        }
    } else if -r * 2 >= SECOND {
        d - r - SECOND
    } else {
        d - r
    }
}

/// `strconv.ParseFloat(s, 64)`, refusing NaN and infinities (Go would accept them and then slip
/// them past every range check, as every comparison with NaN is false).
pub fn parse_float(s: &str) -> Result<f64, String> {
    let syntax = || format!("strconv.ParseFloat: parsing {s:?}: invalid syntax");
    if s.is_empty() || s.starts_with("++") || s.starts_with("+-") {
        return Err(syntax());
    }
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() => Ok(f),
        _ => Err(syntax()),
    }
}

/// `strconv.ParseInt(s, 10, 32)`.
pub fn parse_i32(s: &str) -> Result<i32, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.ParseInt: parsing {s:?}: invalid syntax"));
    }
    s.parse::<i32>()
        .map_err(|_| format!("strconv.ParseInt: parsing {s:?}: value out of range"))
}

/// `strconv.ParseBool`.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("strconv.ParseBool: parsing {s:?}: invalid syntax")),
    }
}

/// Go's `%v` for a float64 in the range these knobs live in: `0.7`, `1000`, `-1`.
pub fn format_float(f: f64) -> String {
    format!("{f}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_go() {
        let ok: &[(&str, Nanos)] = &[
            ("0", 0),
            ("6s", 6 * SECOND),
            ("1m30s", 90 * SECOND),
            ("1h", HOUR),
            ("1.5s", 1_500_000_000),
            (".5s", 500_000_000),
            ("5.s", 5 * SECOND),
            ("-2s", -2 * SECOND),
            ("+2s", 2 * SECOND),
            ("500ms", 500_000_000),
            ("1h0m0s", HOUR),
            ("1µs", 1_000),
            ("3ns", 3),
        ];
        for (s, want) in ok {
            assert_eq!(parse_duration(s), Ok(*want), "{s}");
        }
        assert_eq!(
            parse_duration("5"),
            Err(r#"time: missing unit in duration "5""#.to_string())
        );
        assert_eq!(
            parse_duration("1x"),
            Err(r#"time: unknown unit "x" in duration "1x""#.to_string())
        );
        for s in ["", "s", "1..2s", "-", ".s", "abc", "9999999999999h"] {
            assert!(parse_duration(s).is_err(), "{s}");
        }
    }

    #[test]
    fn durations_format_like_go() {
        let cases: &[(Nanos, &str)] = &[
            (0, "0s"),
            (HOUR, "1h0m0s"),
            (6 * SECOND, "6s"),
            (90 * SECOND, "1m30s"),
            (1_500_000_000, "1.5s"),
            (500_000_000, "500ms"),
            (1_500, "1.5µs"),
            (7, "7ns"),
            (-SECOND, "-1s"),
        ];
        for (d, want) in cases {
            assert_eq!(format_duration(*d), *want, "{d}");
        }
    }

    #[test]
    fn rounds_half_away_from_zero() {
        assert_eq!(round_to_second(6_500_000_000), 7 * SECOND);
        assert_eq!(round_to_second(6_499_999_999), 6 * SECOND);
        assert_eq!(round_to_second(-1_500_000_000), -2 * SECOND);
        assert_eq!(round_to_second(3 * SECOND), 3 * SECOND);
    }

    #[test]
    fn numbers_parse_like_go() {
        assert_eq!(parse_float("0.7"), Ok(0.7));
        assert_eq!(parse_float("+1e3"), Ok(1000.0));
        assert!(parse_float("NaN").is_err());
        assert!(parse_float("inf").is_err());
        assert!(parse_float("").is_err());
        assert_eq!(parse_i32("-5"), Ok(-5));
        assert_eq!(parse_i32("+5"), Ok(5));
        assert_eq!(
            parse_i32("2147483648"),
            Err(r#"strconv.ParseInt: parsing "2147483648": value out of range"#.to_string())
        );
        assert_eq!(
            parse_i32("1.5"),
            Err(r#"strconv.ParseInt: parsing "1.5": invalid syntax"#.to_string())
        );
        assert_eq!(parse_bool("True"), Ok(true));
        assert!(parse_bool("yes").is_err());
        assert_eq!(format_float(1000.0), "1000");
        assert_eq!(format_float(0.7), "0.7");
    }
}
