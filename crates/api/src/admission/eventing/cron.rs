//! The PingSource schedule check: what robfig/cron v3's parser (as knative/eventing
//! `pkg/apis/sources/v1/ping_validation.go` configures it: optional seconds, descriptors)
//! accepts, with its messages, so a schedule Knative refuses is refused here too.
//!
//! Why a checker and not a scheduler: admission only needs to tell valid from invalid; the
//! component that fires PingSources owns the real cron engine. Time zones are checked for
//! shape only (wisp-api reads no tz database).

/// `(name, min, max, names)` of each field, seconds first.
type FieldSpec = (&'static str, u32, u32, &'static [&'static str]);

const MONTHS: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

const FIELDS: &[FieldSpec] = &[
    ("second", 0, 59, &[]),
    ("minute", 0, 59, &[]),
    ("hour", 0, 23, &[]),
    ("day of month", 1, 31, &[]),
    ("month", 1, 12, MONTHS),
    ("day of week", 0, 6, DAYS),
];

const DESCRIPTORS: &[&str] = &[
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

/// Where a schedule problem lies: in the `schedule` or in the time zone it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum CronError {
    Schedule(String),
    Timezone(String),
}

/// Checks a schedule, optionally prefixed by `CRON_TZ=zone ` or `TZ=zone `. Knative refuses
/// the `@every` descriptor before parsing; so does this.
pub(super) fn check(spec: &str) -> Result<(), CronError> {
    if spec.contains("@every") {
        return Err(CronError::Schedule("unsupported descriptor @every".into()));
    }
    if spec.is_empty() {
        return Err(CronError::Schedule("empty spec string".into()));
    }
    let mut rest = spec;
    if rest.starts_with("TZ=") || rest.starts_with("CRON_TZ=") {
        let (prefix, after) = rest.split_once(' ').unwrap_or((rest, ""));
        let zone = prefix.split_once('=').map(|(_, z)| z).unwrap_or("");
        timezone(zone).map_err(CronError::Timezone)?;
        rest = after.trim();
    }
    if rest.starts_with('@') {
        return if DESCRIPTORS.contains(&rest) {
            Ok(())
        } else {
            Err(CronError::Schedule(format!(
                "unrecognized descriptor: {rest}"
            )))
        };
    }
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let specs = match fields.len() {
        5 => &FIELDS[1..],
        6 => FIELDS,
        n => {
            return Err(CronError::Schedule(format!(
                "expected 5 to 6 fields, found {n}: [{}]",
                fields.join(" ")
            )));
        }
    };
    for (field, spec) in fields.iter().zip(specs) {
        check_field(field, spec).map_err(CronError::Schedule)?;
    }
    Ok(())
}

/// A field is a comma-separated list of `*`, `?`, `n`, `a-b`, each optionally `/step`.
fn check_field(field: &str, spec: &FieldSpec) -> Result<(), String> {
    for expr in field.split(',') {
        check_range(expr, spec)?;
    }
    Ok(())
}

fn check_range(expr: &str, &(_, min, max, names): &FieldSpec) -> Result<(), String> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
    let (start, mut end) = if low_and_high[0] == "*" || low_and_high[0] == "?" {
        (min, max)
    } else {
        let start = parse_value(low_and_high[0], names)?;
        let end = match low_and_high.len() {
            1 => start,
            2 => parse_value(low_and_high[1], names)?,
            _ => return Err(format!("too many hyphens: {expr}")),
        };
        (start, end)
    };
    match range_and_step.len() {
        1 => {}
        2 => {
            if parse_int(range_and_step[1])? == 0 {
                return Err(format!("step of range should be a positive number: {expr}"));
            }
            // `n/step` means `n-max/step`.
            if low_and_high.len() == 1 {
                end = max;
            }
        }
        _ => return Err(format!("too many slashes: {expr}")),
    }
    if start < min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({min}): {expr}"
        ));
    }
    if end > max {
        return Err(format!(
            "end of range ({end}) above maximum ({max}): {expr}"
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    Ok(())
}

fn parse_value(v: &str, names: &[&str]) -> Result<u32, String> {
    let lower = v.to_ascii_lowercase();
    if let Some(i) = names.iter().position(|n| *n == lower) {
        // Months count from 1, days of the week from 0.
        let base = if names.len() == 12 { 1 } else { 0 };
        return Ok(i as u32 + base);
    }
    parse_int(v)
}

fn parse_int(v: &str) -> Result<u32, String> {
    v.parse::<u32>().map_err(|_| {
        format!("failed to parse int from {v}: strconv.Atoi: parsing {v:?}: invalid syntax")
    })
}

/// The shape of an IANA zone name (`UTC`, `Europe/Paris`, `America/Argentina/Buenos_Aires`,
/// `Etc/GMT+3`), as Go's `time.LoadLocation` would find it; whether the zone exists is not
/// checked.
pub(super) fn timezone(zone: &str) -> Result<(), String> {
    let well_formed = !zone.is_empty()
        && zone.split('/').all(|part| {
            part.starts_with(|c: char| c.is_ascii_alphabetic())
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+'))
        });
    if well_formed {
        Ok(())
    } else {
        Err(format!(
            "provided bad location {zone}: unknown time zone {zone}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        for ok in [
            "* * * * *",
            "*/2 * * * *",
            "0 9 * * MON-FRI",
            "0 0 1 jan *",
            "0,15,30,45 * * * *",
            "30 * * * * *",
            "? * * * *",
            "@hourly",
            "@daily",
            "CRON_TZ=Europe/Paris 0 9 * * *",
            "TZ=UTC @midnight",
            "5-10/2 * * * *",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        let bad: &[(&str, &str)] = &[
            ("", "empty spec string"),
            ("@every 1m", "unsupported descriptor @every"),
            ("@often", "unrecognized descriptor: @often"),
            ("* * * *", "expected 5 to 6 fields, found 4: [* * * *]"),
            (
                "* * * * * * *",
                "expected 5 to 6 fields, found 7: [* * * * * * *]",
            ),
            ("60 * * * *", "end of range (60) above maximum (59): 60"),
            ("* 24 * * *", "end of range (24) above maximum (23): 24"),
            ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
            ("* * * 13 *", "end of range (13) above maximum (12): 13"),
            ("* * * * 7", "end of range (7) above maximum (6): 7"),
            (
                "5-2 * * * *",
                "beginning of range (5) beyond end of range (2): 5-2",
            ),
            (
                "*/0 * * * *",
                "step of range should be a positive number: */0",
            ),
            ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
            ("*/1/2 * * * *", "too many slashes: */1/2"),
        ];
        for (input, want) in bad {
            assert_eq!(
                check(input),
                Err(CronError::Schedule(want.to_string())),
                "{input}"
            );
        }
        assert!(
            matches!(check("x * * * *"), Err(CronError::Schedule(m)) if m.starts_with("failed to parse int from x"))
        );
        assert_eq!(
            check("CRON_TZ=../etc 0 * * * *"),
            Err(CronError::Timezone(
                "provided bad location ../etc: unknown time zone ../etc".into()
            ))
        );
    }

    #[test]
    fn timezones() {
        for ok in [
            "UTC",
            "Europe/Paris",
            "America/Argentina/Buenos_Aires",
            "Etc/GMT+3",
            "Local",
        ] {
            assert_eq!(timezone(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "Europe/",
            "Europe Paris",
            "../x",
            "Asia/Kolkata ",
        ] {
            assert!(timezone(bad).is_err(), "{bad:?}");
        }
    }
}
