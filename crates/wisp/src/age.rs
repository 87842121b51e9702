//! How old an object is, spelled the way kubectl and kn spell it.
//!
//! Two spellings exist upstream and both are visible to users: kubectl's table `AGE` column
//! (k8s.io/apimachinery `duration.HumanDuration`: `119s`, `3m20s`, `5h`, `3d1h`) and kn's
//! `describe` output (`duration.ShortHumanDuration`: `5s`, `3m`, `2h`, `4d`). Both take the
//! clock as an argument so tests never read it.

use std::time::SystemTime;

/// Parses an RFC 3339 timestamp (`2026-01-02T03:04:05Z`, fractions and offsets allowed).
pub fn parse_timestamp(ts: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(ts.trim()).ok().or_else(|| {
        // `parse_rfc3339_weak` wants `Z`; accept `+00:00` too.
        let t = ts.trim().strip_suffix("+00:00")?;
        humantime::parse_rfc3339_weak(&format!("{t}Z")).ok()
    })
}

/// Seconds from `then` to `now`; negative when `then` lies in the future.
pub fn seconds_between(then: SystemTime, now: SystemTime) -> i64 {
    match now.duration_since(then) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// kubectl's `duration.HumanDuration`, used for table `AGE` columns.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        return match secs % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{}d", hours / 24),
            h => format!("{}d{h}h", hours / 24),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let years = hours / 24 / 365;
        return match (hours / 24) % 365 {
            0 => format!("{years}y"),
            d => format!("{years}y{d}d"),
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// kn's `duration.ShortHumanDuration`, used by `describe`.
pub fn short_human_duration(secs: i64) -> String {
    if secs < -1 {
        "<invalid>".into()
    } else if secs < 0 {
        "0s".into()
    } else if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        format!("{}m", secs / 60)
    } else if secs < 86400 {
        format!("{}h", secs / 3600)
    } else if secs < 86400 * 365 {
        format!("{}d", secs / 86400)
    } else {
        format!("{}y", secs / 86400 / 365)
    }
}

/// kubectl's table age of a timestamp; `<unknown>` when absent or unreadable.
pub fn table_age(ts: Option<&str>, now: SystemTime) -> String {
    match ts.and_then(parse_timestamp) {
        Some(t) => human_duration(seconds_between(t, now)),
        None => "<unknown>".into(),
    }
}

/// kn's describe age of a timestamp; empty when absent.
pub fn short_age(ts: Option<&str>, now: SystemTime) -> String {
    match ts.and_then(parse_timestamp) {
        Some(t) => short_human_duration(seconds_between(t, now)),
        None => String::new(),
    }
}

/// `now` as Kubernetes writes timestamps: RFC 3339 in UTC with whole seconds.
pub fn rfc3339_seconds(now: SystemTime) -> String {
    humantime::format_rfc3339_seconds(now).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn human_duration_like_kubectl() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (200, "3m20s"),
            (600, "10m"),
            (179 * 60, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 120, "3h2m"),
            (10 * 3600, "10h"),
            (47 * 3600, "47h"),
            (2 * 86400, "2d"),
            (3 * 86400 + 3600, "3d1h"),
            (30 * 86400, "30d"),
            (3 * 365 * 86400, "3y"),
            (3 * 365 * 86400 + 86400, "3y1d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }

    #[test]
    fn short_duration_like_kn() {
        let cases = [
            (5, "5s"),
            (59, "59s"),
            (60, "1m"),
            (3 * 60 + 59, "3m"),
            (2 * 3600 + 5, "2h"),
            (4 * 86400 + 7, "4d"),
            (800 * 86400, "2y"),
        ];
        for (secs, want) in cases {
            assert_eq!(short_human_duration(secs), want, "{secs}");
        }
    }

    #[test]
    fn ages_from_timestamps() {
        let created = "2026-01-02T03:04:05Z";
        let t = parse_timestamp(created).unwrap_or(SystemTime::UNIX_EPOCH);
        let now = t + Duration::from_secs(185);
        assert_eq!(table_age(Some(created), now), "3m5s");
        assert_eq!(short_age(Some(created), now), "3m");
        assert_eq!(table_age(None, now), "<unknown>");
        assert_eq!(short_age(Some("yesterday"), now), "");
        assert_eq!(table_age(Some("2026-01-02T03:04:05+00:00"), now), "3m5s");
        assert_eq!(table_age(Some("2026-01-02T03:04:05.123456Z"), now), "3m4s");
        assert_eq!(rfc3339_seconds(t), created);
    }
}
