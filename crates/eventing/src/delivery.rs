//! Delivery decisions: how long to wait before the next attempt, when to give up and
//! dead-letter, and what a subscriber's HTTP status means.
//!
//! Why these numbers (knative/eventing `pkg/kncloudevents/retries.go`,
//! `RetryConfigFromDeliverySpec` and `SelectiveRetry`):
//! - `retry` counts retries after the first attempt, so there are `retry + 1` attempts; no
//!   `retry` means no retries.
//! - A back-off applies only when *both* `backoffPolicy` and `backoffDelay` are set; otherwise
//!   retries are immediate, as in Knative (a delay without a policy is ignored there too).
//! - The wait before the next attempt is `delay × n` (linear) or `delay × 2ⁿ` (exponential),
//!   where `n` is go-retryablehttp's `attemptNum`: the 0-based index of the attempt that just
//!   failed (hashicorp/go-retryablehttp v0.7.7 `client.go`, `Backoff(…, i, resp)` with
//!   `i` starting at 0). So exponential waits `d, 2d, 4d, …` and linear waits `0, d, 2d, …`:
//!   Knative's first linear retry is immediate. (Knative's own `retries_test.go` calls the
//!   back-off from 1 and so never shows that first wait; we follow the running code.)
//! - Retried: 5xx, 404, 408, 409 and 429 (and network errors, which the caller classifies as
//!   [`Outcome::Retryable`]). Not retried: every other status; 2xx is success.
//! - `Retry-After` on a 429 or 503 may lengthen a wait (Knative's `delivery-retryafter`
//!   feature, `generateBackoffFn`): the wait is the larger of the back-off and the header.
//!
//! Where wisp differs, on purpose:
//! - Every wait, back-off or `Retry-After`, is capped at [`RetryPolicy::max_delay`] (one hour by
//!   default, never below the configured delay). Knative's exponential back-off is uncapped:
//!   ten retries from one second already wait 8.5 minutes, and a `Retry-After` with no
//!   `retryAfterMax` can park an event indefinitely.
//! - `Retry-After` is always honoured (within the cap); Knative only honours it when the
//!   experimental `retryAfterMax` is set. [`RetryPolicy::with_retry_after_max`] gives that
//!   field its Knative meaning, `PT0S` switching it off.
//!
//! Durations are ISO-8601 as Knative's `github.com/rickb777/date/period` parses them, minus
//! what has no fixed length; see [`parse_iso8601`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest wait [`RetryPolicy::from_spec`] allows unless the delay itself is longer.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(3600);

/// A duration that is not one Knative would accept (or one wisp refuses: see
/// [`parse_iso8601`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration")]
    Empty,
    #[error("{0:?}: negative durations are not allowed")]
    Negative(String),
    #[error(
        "{0:?}: years and months have no fixed length; use weeks (W), days (D), hours (H), minutes (M) or seconds (S)"
    )]
    CalendarUnit(String),
    #[error("{input:?} is not an ISO-8601 duration: {reason}")]
    Invalid { input: String, reason: &'static str },
    #[error("{0:?} is too long")]
    Overflow(String),
}

/// Parses an ISO-8601 duration such as `PT0.2S`, `PT1M`, `P1D`, `PT1H30M` or `P2W`.
///
/// Accepted, as `rickb777/date/period` (v1.13, `period/parse.go`) accepts them: an optional
/// leading `+`; `P`; then weeks `W` and days `D`; then `T` and hours `H`, minutes `M`, seconds
/// `S`, each at most once and in that order; any component may have a fraction, written with
/// `.` or `,`; `P0` is zero. Refused: a leading `-` (Knative parses negative periods; a
/// negative delay or timeout is meaningless), and non-zero years `Y` or months `M` before the
/// `T`, which Knative converts with an average year of 365.2425 days: a retry delay of "one
/// month" is surely a mistake, and an exact duration is what a scheduler needs. Fractions keep
/// nanosecond precision, where the period library keeps one decimal digit (so `PT0.25S` is
/// 250 ms here and 200 ms in Knative).
pub fn parse_iso8601(s: &str) -> Result<Duration, DurationError> {
    let invalid = |reason| DurationError::Invalid {
        input: s.to_owned(),
        reason,
    };
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s.starts_with('-') {
        return Err(DurationError::Negative(s.to_owned()));
    }
    let body = s.strip_prefix('+').unwrap_or(s);
    let Some(mut rest) = body.strip_prefix('P') else {
        return Err(invalid("it must start with 'P'"));
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    const SECOND: u128 = 1_000_000_000;
    let mut total: u128 = 0;
    let mut in_time = false;
    let (mut components, mut time_components) = (0, 0);
    let mut last_rank = 0;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('T') {
            if in_time {
                return Err(invalid("'T' appears twice"));
            }
            in_time = true;
            rest = after;
            continue;
        }
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(invalid("expected a number"));
        }
        let (number, tail) = rest.split_at(digits);
        let Some(unit) = tail.chars().next() else {
            return Err(invalid("a number lacks its unit"));
        };
        rest = &tail[unit.len_utf8()..];
        // Rank orders the designators; `None` marks the calendar units.
        let (rank, unit_ns) = match (in_time, unit) {
            (false, 'Y') => (1, None),
            (false, 'M') => (2, None),
            (false, 'W') => (3, Some(7 * 86_400 * SECOND)),
            (false, 'D') => (4, Some(86_400 * SECOND)),
            (true, 'H') => (5, Some(3_600 * SECOND)),
            (true, 'M') => (6, Some(60 * SECOND)),
            (true, 'S') => (7, Some(SECOND)),
            (false, _) => return Err(invalid("date units are Y, M, W and D")),
            (true, _) => return Err(invalid("time units after 'T' are H, M and S")),
        };
        if rank <= last_rank {
            return Err(invalid("units are repeated or out of order"));
        }
        last_rank = rank;
        components += 1;
        if in_time {
            time_components += 1;
        }
        match unit_ns {
            None if number.bytes().all(|b| matches!(b, b'0' | b'.' | b',')) => {
                scaled(number, 1).ok_or_else(|| invalid("malformed number"))?;
            }
            None => return Err(DurationError::CalendarUnit(s.to_owned())),
            Some(unit_ns) => {
                let ns = scaled(number, unit_ns).ok_or_else(|| invalid("malformed number"))?;
                total = total
                    .checked_add(ns)
                    .ok_or_else(|| DurationError::Overflow(s.to_owned()))?;
            }
        }
    }
    if components == 0 {
        return Err(invalid("it has no components"));
    }
    if in_time && time_components == 0 {
        return Err(invalid("'T' must be followed by hours, minutes or seconds"));
    }
    let secs = u64::try_from(total / SECOND).map_err(|_| DurationError::Overflow(s.to_owned()))?;
    // The remainder is below one second, so it fits.
    Ok(Duration::new(secs, (total % SECOND) as u32))
}

/// `number` (digits, optionally a `.`/`,` and more digits) times `unit`, truncated to whole
/// nanoseconds. `None` when malformed; saturates rather than overflowing (the caller's sum
/// then reports the overflow).
fn scaled(number: &str, unit: u128) -> Option<u128> {
    let (whole, fraction) = match number.find(['.', ',']) {
        Some(i) => (&number[..i], Some(&number[i + 1..])),
        None => (number, None),
    };
    let digits_ok = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    if !digits_ok(whole) || fraction.is_some_and(|f| !digits_ok(f)) {
        return None;
    }
    let parse = |d: &str| {
        d.bytes().try_fold(0u128, |acc, b| {
            acc.checked_mul(10)?.checked_add(u128::from(b - b'0'))
        })
    };
    let whole = parse(whole).map_or(u128::MAX, |w| w.saturating_mul(unit));
    let Some(fraction) = fraction else {
        return Some(whole);
    };
    // 18 digits are far below a nanosecond of a week, and keep the product inside u128.
    let fraction = &fraction[..fraction.len().min(18)];
    let scale = 10u128.pow(fraction.len() as u32);
    Some(whole.saturating_add(parse(fraction)? * unit / scale))
}

/// `spec.delivery.backoffPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    Linear,
    Exponential,
}

/// A `spec.delivery` that cannot be used: the field (relative to the owning object's `spec`)
/// and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct DeliveryError {
    pub field: &'static str,
    pub message: String,
}

/// When to try a delivery again. Build it with [`RetryPolicy::from_spec`]; the fields are
/// public so that tests and defaults can be written as literals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt: `retry + 1` attempts in all.
    pub retry: u32,
    pub backoff: Backoff,
    /// The back-off unit; zero means retry immediately.
    pub delay: Duration,
    /// No wait is ever longer than this.
    pub max_delay: Duration,
    /// The longest a `Retry-After` header may ask for (Knative's `retryAfterMax`); zero
    /// ignores the header. Still capped by `max_delay`.
    pub retry_after_max: Duration,
    /// Per-attempt request timeout (`spec.delivery.timeout`).
    pub timeout: Option<Duration>,
}

/// How a subscriber's answer is to be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: delivered (a body may be a reply event).
    Delivered,
    /// Worth another attempt: 5xx, 404, 408, 409, 429, or a network error.
    Retryable,
    /// Refused for good (other 1xx, 3xx and 4xx): retrying cannot help.
    Rejected,
}

impl Outcome {
    /// Classifies an HTTP status the way Knative's `SelectiveRetry` does.
    pub fn of_status(status: u16) -> Outcome {
        if (200..300).contains(&status) {
            Outcome::Delivered
        } else if is_retryable(status) {
            Outcome::Retryable
        } else {
            Outcome::Rejected
        }
    }
}

/// What the dispatcher does after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Delivered: nothing more to do.
    Done,
    /// Wait this long, then make the next attempt.
    RetryIn(Duration),
    /// Give up: send to the dead-letter sink if there is one, else drop.
    DeadLetter,
}

/// Knative's `SelectiveRetry` rule for a status: 5xx, 404, 408, 409 and 429 are retried.
/// Network errors (no status at all) are retried too; that is the caller's call.
pub fn is_retryable(status: u16) -> bool {
    status >= 500 || matches!(status, 404 | 408 | 409 | 429)
}

impl RetryPolicy {
    /// Builds the policy from `spec.delivery`'s `retry`, `backoffPolicy`, `backoffDelay` and
    /// `timeout`, refusing what Knative's `DeliverySpec.Validate` refuses (and the durations
    /// [`parse_iso8601`] refuses). Error fields read `delivery.backoffDelay` and so on.
    pub fn from_spec(
        retry: Option<i32>,
        backoff_policy: Option<&str>,
        backoff_delay: Option<&str>,
        timeout: Option<&str>,
    ) -> Result<RetryPolicy, DeliveryError> {
        let fail = |field, message: String| DeliveryError { field, message };
        let retry = match retry {
            None => 0,
            Some(n) => u32::try_from(n)
                .map_err(|_| fail("delivery.retry", format!("invalid value {n}: must be >= 0")))?,
        };
        let backoff = match backoff_policy {
            None => None,
            Some("linear") => Some(Backoff::Linear),
            Some("exponential") => Some(Backoff::Exponential),
            Some(other) => {
                return Err(fail(
                    "delivery.backoffPolicy",
                    format!("invalid value {other:?}: must be linear or exponential"),
                ));
            }
        };
        let delay = backoff_delay
            .map(parse_iso8601)
            .transpose()
            .map_err(|e| fail("delivery.backoffDelay", e.to_string()))?;
        let timeout = timeout
            .map(parse_iso8601)
            .transpose()
            .map_err(|e| fail("delivery.timeout", e.to_string()))?;
        if timeout == Some(Duration::ZERO) {
            return Err(fail(
                "delivery.timeout",
                "must be greater than zero".to_owned(),
            ));
        }
        // Knative builds a back-off only when both the policy and the delay are given.
        let (backoff, delay) = match (backoff, delay) {
            (Some(backoff), Some(delay)) => (backoff, delay),
            (backoff, _) => (backoff.unwrap_or(Backoff::Exponential), Duration::ZERO),
        };
        let max_delay = DEFAULT_MAX_DELAY.max(delay);
        Ok(RetryPolicy {
            retry,
            backoff,
            delay,
            max_delay,
            retry_after_max: max_delay,
            timeout,
        })
    }

    /// Knative's default for brokers (`config-br-defaults`): 10 retries, exponential from
    /// `PT0.2S`, which waits 0.2 s, 0.4 s, … 102.4 s.
    pub fn knative_broker_default() -> RetryPolicy {
        RetryPolicy {
            retry: 10,
            backoff: Backoff::Exponential,
            delay: Duration::from_millis(200),
            max_delay: DEFAULT_MAX_DELAY,
            retry_after_max: DEFAULT_MAX_DELAY,
            timeout: None,
        }
    }

    /// A single attempt (Knative's `NoRetries`, used when there is no `spec.delivery`).
    pub fn no_retries() -> RetryPolicy {
        RetryPolicy {
            retry: 0,
            backoff: Backoff::Exponential,
            delay: Duration::ZERO,
            max_delay: DEFAULT_MAX_DELAY,
            retry_after_max: DEFAULT_MAX_DELAY,
            timeout: None,
        }
    }

    /// Applies `spec.delivery.retryAfterMax`: the most a `Retry-After` header may ask for,
    /// `PT0S` to ignore the header. Without it wisp honours headers up to `max_delay`.
    pub fn with_retry_after_max(mut self, value: Option<&str>) -> Result<Self, DeliveryError> {
        if let Some(value) = value {
            let max = parse_iso8601(value).map_err(|e| DeliveryError {
                field: "delivery.retryAfterMax",
                message: e.to_string(),
            })?;
            self.retry_after_max = max;
        }
        Ok(self)
    }

    /// Attempts in all: the first plus the retries.
    pub fn attempts(&self) -> u32 {
        self.retry.saturating_add(1)
    }

    /// How long to wait after attempt number `attempt_number` (1 for the first attempt)
    /// failed with a retryable outcome; `None` when that was the last attempt and the event
    /// goes to the dead-letter sink. `0` (nothing attempted yet) gives no wait.
    pub fn next_attempt(&self, attempt_number: u32) -> Option<Duration> {
        self.next_attempt_after(attempt_number, None)
    }

    /// [`next_attempt`](Self::next_attempt) lengthened by a `Retry-After` the subscriber sent
    /// (see [`retry_after`]), bounded by `retry_after_max` and `max_delay`.
    pub fn next_attempt_after(
        &self,
        attempt_number: u32,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        if attempt_number == 0 {
            return Some(Duration::ZERO);
        }
        if attempt_number > self.retry {
            return None;
        }
        // go-retryablehttp's attemptNum: the 0-based index of the failed attempt.
        let n = attempt_number - 1;
        let backoff = match self.backoff {
            Backoff::Linear => self.delay.checked_mul(n),
            Backoff::Exponential => 1u32
                .checked_shl(n)
                .and_then(|factor| self.delay.checked_mul(factor)),
        }
        .unwrap_or(Duration::MAX);
        let asked = retry_after.map_or(Duration::ZERO, |d| d.min(self.retry_after_max));
        Some(backoff.max(asked).min(self.max_delay))
    }

    /// The dispatcher's transition after attempt `attempt_number` ended with `outcome`.
    pub fn step(
        &self,
        attempt_number: u32,
        outcome: Outcome,
        retry_after: Option<Duration>,
    ) -> Step {
        match outcome {
            Outcome::Delivered => Step::Done,
            Outcome::Rejected => Step::DeadLetter,
            Outcome::Retryable => match self.next_attempt_after(attempt_number, retry_after) {
                Some(wait) => Step::RetryIn(wait),
                None => Step::DeadLetter,
            },
        }
    }
}

/// The wait a response asks for with `Retry-After`, honoured (as in Knative) only on 429 and
/// 503. `now` is the time the response arrived, for the HTTP-date form.
pub fn retry_after(status: u16, header: Option<&str>, now: SystemTime) -> Option<Duration> {
    if status != 429 && status != 503 {
        return None;
    }
    parse_retry_after(header?, now)
}

/// Parses a `Retry-After` value (RFC 9110 §10.2.3): delay-seconds, or an HTTP-date in any of
/// its three forms (IMF-fixdate, RFC 850, asctime) measured from `now`. A date in the past
/// asks for no wait. `None` when unparseable.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = parse_http_date(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn parse_http_date(s: &str) -> Option<SystemTime> {
    let (day, month, year, time) = if let Some((weekday, rest)) = s.split_once(", ") {
        if !weekday.bytes().all(|b| b.is_ascii_alphabetic()) {
            return None;
        }
        let rest = rest.strip_suffix(" GMT")?;
        let mut parts = rest.split(' ');
        match (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) {
            // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
            (Some(day), Some(month), Some(year), Some(time), None) if year.len() == 4 => {
                (day, month, number(year)?, time)
            }
            // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
            (Some(date), Some(time), None, None, None) => {
                let mut dmy = date.split('-');
                let (day, month, yy) = (dmy.next()?, dmy.next()?, dmy.next()?);
                if dmy.next().is_some() || yy.len() != 2 {
                    return None;
                }
                let yy = number(yy)?;
                // Go's time package: 69–99 are 19xx, 00–68 are 20xx.
                (
                    day,
                    month,
                    if yy >= 69 { 1900 + yy } else { 2000 + yy },
                    time,
                )
            }
            _ => return None,
        }
    } else {
        // asctime: Sun Nov  6 08:49:37 1994
        let mut parts = s.split_whitespace();
        let weekday = parts.next()?;
        if !weekday.bytes().all(|b| b.is_ascii_alphabetic()) {
            return None;
        }
        let (month, day, time, year) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || year.len() != 4 {
            return None;
        }
        (day, month, number(year)?, time)
    };
    let month = MONTHS.iter().position(|m| *m == month)? as u64 + 1;
    if day.is_empty() || day.len() > 2 {
        return None;
    }
    let day = number(day)?;
    if day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let mut hms = time.split(':');
    let (h, m, sec) = (hms.next()?, hms.next()?, hms.next()?);
    if hms.next().is_some() || [h, m, sec].iter().any(|p| p.len() != 2) {
        return None;
    }
    let (h, m, sec) = (number(h)?, number(m)?, number(sec)?);
    if h > 23 || m > 59 || sec > 59 {
        return None;
    }
    let days = days_since_epoch(year, month, day);
    let secs = days * 86_400 + i64::try_from(h * 3_600 + m * 60 + sec).ok()?;
    // Dates before 1970 are in the past all the same.
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
}

fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn is_leap(year: u64) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given civil date (Howard Hinnant's `days_from_civil`).
fn days_since_epoch(year: u64, month: u64, day: u64) -> i64 {
    let y = year as i64 - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests;
