use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn iso8601_accepted() {
    let cases = [
        ("PT0.2S", ms(200)),
        ("PT0,5S", ms(500)),
        ("PT0.25S", ms(250)),
        ("PT0.000000001S", Duration::from_nanos(1)),
        ("PT1.0000000019S", Duration::from_nanos(1_000_000_001)),
        ("PT1S", secs(1)),
        ("PT1M", secs(60)),
        ("PT1.5M", secs(90)),
        ("PT1H30M", secs(5_400)),
        ("PT1H30M15.5S", ms(5_415_500)),
        ("P1D", secs(86_400)),
        ("P1DT1S", secs(86_401)),
        ("P0.5D", secs(43_200)),
        ("P2W", secs(14 * 86_400)),
        ("P1W1D", secs(8 * 86_400)),
        ("+PT10S", secs(10)),
        ("PT0S", Duration::ZERO),
        ("P0D", Duration::ZERO),
        ("P0", Duration::ZERO),
        ("P0Y0M1D", secs(86_400)),
        ("PT36H", secs(36 * 3_600)),
    ];
    for (input, want) in cases {
        assert_eq!(parse_iso8601(input), Ok(want), "{input}");
    }
}

#[test]
fn iso8601_refused() {
    let calendar = |s: &str| DurationError::CalendarUnit(s.to_owned());
    assert_eq!(parse_iso8601(""), Err(DurationError::Empty));
    assert_eq!(
        parse_iso8601("-PT1S"),
        Err(DurationError::Negative("-PT1S".into()))
    );
    assert_eq!(parse_iso8601("P1Y"), Err(calendar("P1Y")));
    assert_eq!(parse_iso8601("P1M"), Err(calendar("P1M")));
    assert_eq!(parse_iso8601("P1Y2M3DT4H"), Err(calendar("P1Y2M3DT4H")));
    for bad in [
        "1S", "PT", "P", "P1", "PT1", "P1H", "PT1D", "PT1S1M", "PT1M1M", "P1DT", "PT1.S", "PT.5S",
        "PT1.2.3S", "PT-1S", "PTT1S", "P1DP", "pt1s", "PT1s", "P1D T1S", "PT1SX", "PT1é",
    ] {
        assert!(
            matches!(parse_iso8601(bad), Err(DurationError::Invalid { .. })),
            "{bad}: {:?}",
            parse_iso8601(bad)
        );
    }
    assert!(matches!(
        parse_iso8601("PT99999999999999999999999999999999999999999S"),
        Err(DurationError::Overflow(_))
    ));
    assert!(matches!(
        parse_iso8601("P9999999999999999999W"),
        Err(DurationError::Overflow(_))
    ));
    let msg = parse_iso8601("PT1X").unwrap_err().to_string();
    assert_eq!(
        msg,
        "\"PT1X\" is not an ISO-8601 duration: time units after 'T' are H, M and S"
    );
}

fn schedule(policy: &RetryPolicy) -> Vec<Option<Duration>> {
    (1..=policy.retry + 1)
        .map(|n| policy.next_attempt(n))
        .collect()
}

#[test]
fn schedules() {
    let exp = RetryPolicy::from_spec(Some(4), Some("exponential"), Some("PT1S"), None).unwrap();
    assert_eq!(
        schedule(&exp),
        vec![
            Some(secs(1)),
            Some(secs(2)),
            Some(secs(4)),
            Some(secs(8)),
            None
        ]
    );
    let lin = RetryPolicy::from_spec(Some(4), Some("linear"), Some("PT2.5S"), None).unwrap();
    assert_eq!(
        schedule(&lin),
        vec![
            Some(secs(0)),
            Some(ms(2_500)),
            Some(secs(5)),
            Some(ms(7_500)),
            None
        ]
    );
    // No delay, or a delay without a policy: immediate retries (Knative).
    for policy in [
        RetryPolicy::from_spec(Some(2), Some("exponential"), None, None).unwrap(),
        RetryPolicy::from_spec(Some(2), None, Some("PT5S"), None).unwrap(),
    ] {
        assert_eq!(schedule(&policy), vec![Some(secs(0)), Some(secs(0)), None]);
    }
    // No retry field: a single attempt.
    let none = RetryPolicy::from_spec(None, Some("exponential"), Some("PT1S"), None).unwrap();
    assert_eq!(none.attempts(), 1);
    assert_eq!(schedule(&none), vec![None]);
    assert_eq!(RetryPolicy::no_retries().next_attempt(1), None);
    // Nothing attempted yet: go now.
    assert_eq!(exp.next_attempt(0), Some(Duration::ZERO));
}

#[test]
fn knative_broker_default() {
    let policy = RetryPolicy::knative_broker_default();
    assert_eq!(policy.attempts(), 11);
    let waits: Vec<Option<Duration>> = schedule(&policy);
    let want: Vec<Option<Duration>> = (0..10).map(|n| Some(ms(200 << n))).chain([None]).collect();
    assert_eq!(waits, want);
    assert_eq!(waits[9], Some(ms(102_400)));
    assert_eq!(
        RetryPolicy::from_spec(Some(10), Some("exponential"), Some("PT0.2S"), None).unwrap(),
        policy
    );
}

#[test]
fn waits_are_capped() {
    let policy = RetryPolicy::from_spec(Some(40), Some("exponential"), Some("PT1S"), None).unwrap();
    assert_eq!(policy.max_delay, DEFAULT_MAX_DELAY);
    assert_eq!(policy.next_attempt(12), Some(secs(2_048)));
    assert_eq!(policy.next_attempt(13), Some(DEFAULT_MAX_DELAY));
    // 2^39 does not fit the u32 factor: the wait saturates, then the cap applies.
    assert_eq!(policy.next_attempt(40), Some(DEFAULT_MAX_DELAY));
    let custom = RetryPolicy {
        max_delay: secs(10),
        ..policy.clone()
    };
    assert_eq!(custom.next_attempt(4), Some(secs(8)));
    assert_eq!(custom.next_attempt(5), Some(secs(10)));
    // A delay longer than the default cap raises the cap rather than being cut.
    let long = RetryPolicy::from_spec(Some(3), Some("linear"), Some("PT2H"), None).unwrap();
    assert_eq!(long.max_delay, secs(7_200));
    assert_eq!(
        schedule(&long),
        vec![Some(secs(0)), Some(secs(7_200)), Some(secs(7_200)), None]
    );
}

#[test]
fn retry_after_lengthens_within_limits() {
    let policy = RetryPolicy::from_spec(Some(3), Some("exponential"), Some("PT1S"), None).unwrap();
    assert_eq!(policy.next_attempt_after(1, Some(secs(30))), Some(secs(30)));
    assert_eq!(policy.next_attempt_after(3, Some(secs(2))), Some(secs(4)));
    assert_eq!(
        policy.next_attempt_after(1, Some(secs(86_400))),
        Some(DEFAULT_MAX_DELAY)
    );
    assert_eq!(policy.next_attempt_after(4, Some(secs(1))), None);
    let capped = policy.clone().with_retry_after_max(Some("PT10S")).unwrap();
    assert_eq!(capped.next_attempt_after(1, Some(secs(30))), Some(secs(10)));
    let ignored = policy.clone().with_retry_after_max(Some("PT0S")).unwrap();
    assert_eq!(ignored.next_attempt_after(1, Some(secs(30))), Some(secs(1)));
    assert_eq!(
        policy.clone().with_retry_after_max(None).unwrap(),
        policy.clone()
    );
    let err = policy.with_retry_after_max(Some("soon")).unwrap_err();
    assert_eq!(err.field, "delivery.retryAfterMax");
}

#[test]
fn spec_errors_name_the_field() {
    type Case<'a> = (
        Option<i32>,
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
        &'a str,
    );
    let cases: [Case; 6] = [
        (
            Some(-1),
            None,
            None,
            None,
            "delivery.retry: invalid value -1: must be >= 0",
        ),
        (
            None,
            Some("Linear"),
            None,
            None,
            "delivery.backoffPolicy: invalid value \"Linear\": must be linear or exponential",
        ),
        (
            None,
            Some("linear"),
            Some("1s"),
            None,
            "delivery.backoffDelay: \"1s\" is not an ISO-8601 duration: it must start with 'P'",
        ),
        (
            None,
            Some("linear"),
            Some("P1M"),
            None,
            "delivery.backoffDelay: \"P1M\": years and months have no fixed length; use weeks (W), days (D), hours (H), minutes (M) or seconds (S)",
        ),
        (
            None,
            None,
            None,
            Some("PT0S"),
            "delivery.timeout: must be greater than zero",
        ),
        (
            None,
            None,
            None,
            Some("-PT1S"),
            "delivery.timeout: \"-PT1S\": negative durations are not allowed",
        ),
    ];
    for (retry, policy, delay, timeout, want) in cases {
        let err = RetryPolicy::from_spec(retry, policy, delay, timeout).unwrap_err();
        assert_eq!(err.to_string(), want);
    }
    let ok = RetryPolicy::from_spec(Some(0), None, None, Some("PT30S")).unwrap();
    assert_eq!(ok.timeout, Some(secs(30)));
}

#[test]
fn status_classification() {
    let cases = [
        (100, Outcome::Rejected),
        (200, Outcome::Delivered),
        (202, Outcome::Delivered),
        (204, Outcome::Delivered),
        (301, Outcome::Rejected),
        (400, Outcome::Rejected),
        (401, Outcome::Rejected),
        (403, Outcome::Rejected),
        (404, Outcome::Retryable),
        (405, Outcome::Rejected),
        (408, Outcome::Retryable),
        (409, Outcome::Retryable),
        (410, Outcome::Rejected),
        (413, Outcome::Rejected),
        (422, Outcome::Rejected),
        (429, Outcome::Retryable),
        (500, Outcome::Retryable),
        (502, Outcome::Retryable),
        (503, Outcome::Retryable),
        (504, Outcome::Retryable),
        (599, Outcome::Retryable),
    ];
    for (status, want) in cases {
        assert_eq!(Outcome::of_status(status), want, "{status}");
        assert_eq!(is_retryable(status), want == Outcome::Retryable, "{status}");
    }
}

#[test]
fn steps() {
    let policy = RetryPolicy::from_spec(Some(2), Some("exponential"), Some("PT1S"), None).unwrap();
    assert_eq!(policy.step(1, Outcome::Delivered, None), Step::Done);
    assert_eq!(policy.step(1, Outcome::Rejected, None), Step::DeadLetter);
    assert_eq!(
        policy.step(1, Outcome::Retryable, None),
        Step::RetryIn(secs(1))
    );
    assert_eq!(
        policy.step(2, Outcome::Retryable, Some(secs(5))),
        Step::RetryIn(secs(5))
    );
    assert_eq!(policy.step(3, Outcome::Retryable, None), Step::DeadLetter);
}

#[test]
fn retry_after_header() {
    // 1994-11-06T08:49:37Z
    let date = UNIX_EPOCH + secs(784_111_777);
    let now = date - secs(90);
    let cases = [
        ("120", Some(secs(120))),
        (" 7 ", Some(secs(7))),
        ("0", Some(secs(0))),
        ("Sun, 06 Nov 1994 08:49:37 GMT", Some(secs(90))),
        ("Sunday, 06-Nov-94 08:49:37 GMT", Some(secs(90))),
        ("Sun Nov  6 08:49:37 1994", Some(secs(90))),
        ("Sun, 06 Nov 1994 08:48:07 GMT", Some(secs(0))),
        ("Sat, 05 Nov 1994 08:49:37 GMT", Some(secs(0))),
        ("Thu, 01 Jan 1970 00:00:00 GMT", Some(secs(0))),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        ("Sun, 06 Nov 1994 08:49:37 UTC", None),
        ("Sun, 31 Nov 1994 08:49:37 GMT", None),
        ("Sun, 06 Foo 1994 08:49:37 GMT", None),
        ("Sun, 06 Nov 1994 24:00:00 GMT", None),
        ("Sun, 6 Nov 1994 8:49:37 GMT", None),
    ];
    for (value, want) in cases {
        assert_eq!(parse_retry_after(value, now), want, "{value:?}");
    }
    assert_eq!(
        parse_retry_after("Tue, 29 Feb 2028 00:00:00 GMT", UNIX_EPOCH),
        Some(secs(1_835_395_200))
    );
    assert_eq!(
        parse_retry_after("Thu, 29 Feb 2029 00:00:00 GMT", UNIX_EPOCH),
        None
    );
    assert_eq!(
        parse_retry_after("Sat, 01 Jan 2000 00:00:00 GMT", UNIX_EPOCH),
        Some(secs(946_684_800))
    );
    assert_eq!(
        parse_retry_after("Saturday, 01-Jan-00 00:00:00 GMT", UNIX_EPOCH),
        Some(secs(946_684_800))
    );
    // Only 429 and 503 carry a Retry-After worth honouring.
    let now = SystemTime::UNIX_EPOCH;
    assert_eq!(retry_after(429, Some("3"), now), Some(secs(3)));
    assert_eq!(retry_after(503, Some("3"), now), Some(secs(3)));
    assert_eq!(retry_after(500, Some("3"), now), None);
    assert_eq!(retry_after(429, None, now), None);
}
