//! Kubernetes resource quantities (`128Mi`, `500m`, `1.5`, `2e3`) turned into the integers
//! cgroups take.
//!
//! `wisp-api` keeps quantities as written (its job is to store and validate them); the
//! runtime spec needs bytes and millicores. Conversion is exact (no floating point) and
//! rounds up, as Kubernetes' `Value()` and `MilliValue()` do.

/// Why a quantity could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error(
        "{0:?} is not a quantity (expected a number with an optional suffix such as 128Mi, 500m or 1G)"
    )]
    Invalid(String),
    #[error("{0:?} is negative")]
    Negative(String),
    #[error("{0:?} is too large")]
    TooLarge(String),
}

/// A parsed quantity: `mantissa × 10^exp10 × 2^exp2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parsed {
    negative: bool,
    mantissa: u128,
    exp10: i32,
    exp2: u32,
}

fn parse(s: &str) -> Result<Parsed, QuantityError> {
    let invalid = || QuantityError::Invalid(s.to_string());
    let (negative, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let num_end = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (num, suffix) = body.split_at(num_end);
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
        return Err(invalid());
    }
    let digits = format!("{int}{frac}");
    let digits = digits.trim_start_matches('0');
    if digits.len() > 36 {
        return Err(QuantityError::TooLarge(s.to_string()));
    }
    let mantissa: u128 = if digits.is_empty() {
        0
    } else {
        digits.parse().map_err(|_| invalid())?
    };
    let (mut exp10, exp2): (i32, u32) = match suffix {
        "" => (0, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        other => {
            let exp = other.strip_prefix(['e', 'E']).ok_or_else(invalid)?;
            let e: i32 = exp.parse().map_err(|_| invalid())?;
            if !(-60..=60).contains(&e) {
                return Err(QuantityError::TooLarge(s.to_string()));
            }
            (e, 0)
        }
    };
    exp10 -= frac.len() as i32;
    Ok(Parsed {
        negative,
        mantissa,
        exp10,
        exp2,
    })
}

/// `ceil(q × 10^scale)` as an integer.
fn scaled(s: &str, scale: i32) -> Result<i64, QuantityError> {
    let p = parse(s)?;
    let too_large = || QuantityError::TooLarge(s.to_string());
    if p.negative && p.mantissa != 0 {
        return Err(QuantityError::Negative(s.to_string()));
    }
    let mut num = p
        .mantissa
        .checked_mul(1u128.checked_shl(p.exp2).ok_or_else(too_large)?)
        .ok_or_else(too_large)?;
    let e = p.exp10 + scale;
    if e >= 0 {
        let f = 10u128.checked_pow(e as u32).ok_or_else(too_large)?;
        num = num.checked_mul(f).ok_or_else(too_large)?;
    } else {
        let f = 10u128.checked_pow((-e) as u32).ok_or_else(too_large)?;
        num = num.div_ceil(f);
    }
    i64::try_from(num).map_err(|_| too_large())
}

/// The quantity in whole units, rounded up (memory in bytes).
pub fn value(s: &str) -> Result<i64, QuantityError> {
    scaled(s, 0)
}

/// The quantity in thousandths, rounded up (CPU in millicores).
pub fn milli_value(s: &str) -> Result<i64, QuantityError> {
    scaled(s, 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes() {
        let table: &[(&str, i64)] = &[
            ("0", 0),
            ("128Mi", 128 << 20),
            ("1Gi", 1 << 30),
            ("1.5Gi", 3 << 29),
            ("1G", 1_000_000_000),
            ("1k", 1000),
            ("512", 512),
            ("1e3", 1000),
            ("1E6", 1_000_000),
            ("+2Ki", 2048),
            ("1500m", 2),
            ("0.5", 1),
            (".5Ki", 512),
            ("1Ei", 1 << 60),
        ];
        for (q, want) in table {
            assert_eq!(value(q), Ok(*want), "{q}");
        }
    }

    #[test]
    fn millis() {
        let table: &[(&str, i64)] = &[
            ("500m", 500),
            ("1", 1000),
            ("0.1", 100),
            ("2.5", 2500),
            ("100u", 1),
            ("1n", 1),
            ("0", 0),
            ("1k", 1_000_000),
        ];
        for (q, want) in table {
            assert_eq!(milli_value(q), Ok(*want), "{q}");
        }
    }

    #[test]
    fn refusals() {
        for bad in ["", "abc", "1.2.3", "1Mb", "Mi", "1e", "1e+", "."] {
            assert!(
                matches!(value(bad), Err(QuantityError::Invalid(_))),
                "{bad}"
            );
        }
        assert!(matches!(value("-1"), Err(QuantityError::Negative(_))));
        assert!(matches!(value("16Ei"), Err(QuantityError::TooLarge(_))));
        assert!(matches!(value("1e60"), Err(QuantityError::TooLarge(_))));
        assert_eq!(value("-0"), Ok(0));
    }
}
