//! RFC 3339 `date-time` syntax check for the `time` attribute.
//!
//! Why not a date crate: the broker never computes with `time`, it only has to refuse what is not
//! a timestamp and pass the rest on unchanged, so a checker over the RFC's grammar (section 5.6,
//! with the leap-second and per-month limits of 5.7) is all that is needed.

/// `Ok` when `s` is `full-date "T" full-time`; otherwise why not, in words.
pub(crate) fn check_rfc3339(s: &str) -> Result<(), &'static str> {
    let b = s.as_bytes();
    let num = |at: usize, len: usize| -> Result<u32, &'static str> {
        let digits = b.get(at..at + len).ok_or("it is too short")?;
        digits.iter().try_fold(0u32, |acc, d| match d {
            b'0'..=b'9' => Ok(acc * 10 + u32::from(d - b'0')),
            _ => Err("expected a digit"),
        })
    };
    let sep = |at: usize, allowed: &[u8], what: &'static str| match b.get(at) {
        Some(c) if allowed.contains(c) => Ok(()),
        Some(_) => Err(what),
        None => Err("it is too short"),
    };

    let year = num(0, 4)?;
    sep(4, b"-", "expected `-` after the year")?;
    let month = num(5, 2)?;
    sep(7, b"-", "expected `-` after the month")?;
    let day = num(8, 2)?;
    sep(10, b"Tt", "expected `T` between date and time")?;
    let hour = num(11, 2)?;
    sep(13, b":", "expected `:` after the hour")?;
    let minute = num(14, 2)?;
    sep(16, b":", "expected `:` after the minutes")?;
    let second = num(17, 2)?;

    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return Err("a `.` must be followed by fraction digits");
        }
    }
    match b.get(i) {
        Some(b'Z' | b'z') => i += 1,
        Some(b'+' | b'-') => {
            let oh = num(i + 1, 2)?;
            sep(i + 3, b":", "the offset must be written ±hh:mm")?;
            let om = num(i + 4, 2)?;
            if oh > 23 || om > 59 {
                return Err("the time zone offset is out of range");
            }
            i += 6;
        }
        _ => return Err("the time zone is missing (end with Z or ±hh:mm)"),
    }
    if i != b.len() {
        return Err("there are characters after the time zone");
    }

    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err("the month is out of range"),
    };
    if day == 0 || day > days_in_month {
        return Err("the day is out of range for the month");
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err("the time of day is out of range");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_rfc3339;

    #[test]
    fn accepts_rfc3339() {
        for ok in [
            "2018-04-05T17:31:00Z",
            "2018-04-05t17:31:00z",
            "2018-04-05T17:31:00.123456789Z",
            "2018-04-05T17:31:00+05:30",
            "2018-04-05T17:31:00-00:00",
            "2016-12-31T23:59:60Z",
            "2000-02-29T00:00:00Z",
        ] {
            assert_eq!(check_rfc3339(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_others() {
        for (bad, why) in [
            ("", "too short"),
            ("2018-04-05", "too short"),
            ("2018-04-05 17:31:00Z", "`T`"),
            ("2018-04-05T17:31:00", "time zone is missing"),
            ("2018-04-05T17:31:00.Z", "fraction"),
            ("2018-13-05T17:31:00Z", "month"),
            ("1900-02-29T00:00:00Z", "day"),
            ("2018-04-31T00:00:00Z", "day"),
            ("2018-04-05T24:00:00Z", "time of day"),
            ("2018-04-05T17:31:00+0530", "offset"),
            ("2018-04-05T17:31:00+24:00", "offset"),
            ("2018-04-05T17:31:00Zjunk", "after the time zone"),
            ("2018-4-05T17:31:00Z", "digit"),
            ("２０18-04-05T17:31:00Z", "digit"),
        ] {
            let err = check_rfc3339(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
