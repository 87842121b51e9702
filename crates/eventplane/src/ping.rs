//! PingSource: a fixed event on a cron schedule.
//!
//! Why ticks are appended to a stream instead of sent: a tick is then durable the moment it
//! fires, and the consumer that carries it to the sink retries with the same machinery as a
//! trigger; a sink that is down for a minute still gets the tick. Schedules follow Knative's
//! (robfig/cron's standard parser): five fields or a descriptor (`@hourly`), a `CRON_TZ=` or
//! `TZ=` prefix or `spec.timezone` for the zone (UTC otherwise); `@every` is refused as Knative
//! refuses it. wisp also takes six fields, seconds first (Knative's admission accepts them;
//! its adapter does not), for ticks more often than once a minute.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use tokio::sync::watch;
use wisp_api::eventing::PingSourceSpec;
use wisp_cloudevents::Event;
use wisp_eventlog::EventLog;

use crate::reconcile::{PING_EVENT_TYPE, PingSpec};

/// A parsed schedule with its time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    tz: Tz,
}

impl Schedule {
    pub fn parse(schedule: &str, timezone: &str) -> Result<Schedule, String> {
        let schedule = if schedule.trim().is_empty() {
            "* * * * *"
        } else {
            schedule.trim()
        };
        let (zone, expr) = match schedule
            .strip_prefix("CRON_TZ=")
            .or_else(|| schedule.strip_prefix("TZ="))
        {
            Some(rest) => match rest.split_once(char::is_whitespace) {
                Some((zone, expr)) => (Some(zone), expr.trim()),
                None => {
                    return Err(format!(
                        "schedule {schedule:?} has a time zone but no fields"
                    ));
                }
            },
            None => (None, schedule),
        };
        let zone = zone.or(Some(timezone).filter(|t| !t.is_empty()));
        let tz = match zone {
            Some(z) => Tz::from_str(z).map_err(|_| format!("unknown time zone {z:?}"))?,
            None => Tz::UTC,
        };
        if expr.starts_with("@every") {
            return Err(format!(
                "schedule {expr:?}: @every is not supported, use five cron fields"
            ));
        }
        let fields = expr.split_whitespace().count();
        if !expr.starts_with('@') && fields != 5 && fields != 6 {
            return Err(format!(
                "schedule {expr:?} has {fields} fields; expected 5 (minute hour day-of-month month day-of-week), or 6 with seconds first"
            ));
        }
        let cron = Cron::from_str(expr).map_err(|e| format!("schedule {expr:?}: {e}"))?;
        Ok(Schedule { cron, tz })
    }

    /// The first tick strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.tz);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

/// The event's data bytes: `data` as text, or `dataBase64` decoded.
pub fn data_of(spec: &PingSourceSpec) -> Result<Vec<u8>, String> {
    if !spec.data_base64.is_empty() {
        use base64::Engine as _;
        return base64::engine::general_purpose::STANDARD
            .decode(spec.data_base64.trim())
            .map_err(|e| format!("dataBase64 is not valid base64: {e}"));
    }
    Ok(spec.data.clone().into_bytes())
}

/// The event of one tick.
pub fn event(spec: &PingSpec, at: DateTime<Utc>) -> Event {
    let source = format!(
        "/apis/v1/namespaces/{}/pingsources/{}",
        spec.namespace, spec.name
    );
    let mut e = Event::new(uuid::Uuid::new_v4().to_string(), source, PING_EVENT_TYPE);
    let _ = e.set_attribute(
        "time",
        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    for (k, v) in &spec.extensions {
        let _ = e.set_attribute(k, v.clone());
    }
    if !spec.data.is_empty() {
        let ct = if spec.content_type.is_empty() {
            None
        } else {
            Some(spec.content_type.as_str())
        };
        let _ = e.set_data(ct, spec.data.clone());
    }
    e
}

/// Runs the schedules in `specs` (replaced whenever the reconciler sends new ones) until the
/// sender is dropped.
pub async fn run(log: Arc<dyn EventLog>, mut specs: watch::Receiver<Vec<PingSpec>>) {
    let mut next: HashMap<String, (PingSpec, Schedule, DateTime<Utc>)> = HashMap::new();
    loop {
        {
            let wanted = specs.borrow_and_update().clone();
            let now = Utc::now();
            next.retain(|id, (old, _, _)| wanted.iter().any(|w| &w.id == id && w == old));
            for spec in wanted {
                if next.contains_key(&spec.id) {
                    continue;
                }
                let Ok(schedule) = Schedule::parse(&spec.schedule, &spec.timezone) else {
                    continue;
                };
                if let Some(at) = schedule.next_after(now) {
                    next.insert(spec.id.clone(), (spec, schedule, at));
                }
            }
        }
        let earliest = next.values().map(|(_, _, at)| *at).min();
        let sleep = match earliest {
            Some(at) => (at - Utc::now()).to_std().unwrap_or(Duration::ZERO),
            None => Duration::from_secs(3600),
        };
        tokio::select! {
            changed = specs.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
            _ = tokio::time::sleep(sleep) => {}
        }
        let now = Utc::now();
        for (spec, schedule, at) in next.values_mut() {
            if *at > now {
                continue;
            }
            let e = event(spec, *at);
            if let Err(err) = log.append(&spec.stream, vec![e.encode()]).await {
                tracing::warn!(source = %spec.id, error = %err, "cannot store a ping; this tick is lost");
            }
            match schedule.next_after(now) {
                Some(t) => *at = t,
                None => *at = now + chrono::Duration::days(366),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn five_fields_descriptors_and_zones() {
        let s = Schedule::parse("*/5 * * * *", "").unwrap();
        assert_eq!(
            s.next_after(at("2026-01-01T10:02:30Z")),
            Some(at("2026-01-01T10:05:00Z"))
        );
        let s = Schedule::parse("", "").unwrap();
        assert_eq!(
            s.next_after(at("2026-01-01T10:02:30Z")),
            Some(at("2026-01-01T10:03:00Z"))
        );
        let s = Schedule::parse("@hourly", "").unwrap();
        assert_eq!(
            s.next_after(at("2026-01-01T10:02:30Z")),
            Some(at("2026-01-01T11:00:00Z"))
        );
        // 09:00 in Paris is 08:00 UTC in winter.
        let s = Schedule::parse("CRON_TZ=Europe/Paris 0 9 * * *", "").unwrap();
        assert_eq!(
            s.next_after(at("2026-01-01T00:00:00Z")),
            Some(at("2026-01-01T08:00:00Z"))
        );
        let s = Schedule::parse("0 9 * * *", "America/New_York").unwrap();
        assert_eq!(
            s.next_after(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()),
            Some(at("2026-01-01T14:00:00Z"))
        );
    }

    #[test]
    fn six_fields_start_with_seconds() {
        let s = Schedule::parse("*/2 * * * * *", "").unwrap();
        assert_eq!(
            s.next_after(at("2026-01-01T10:02:31Z")),
            Some(at("2026-01-01T10:02:32Z"))
        );
    }

    #[test]
    fn refusals_say_why() {
        for (schedule, tz, needle) in [
            ("@every 1m", "", "@every"),
            ("* * *", "", "3 fields"),
            ("61 * * * *", "", "61 * * * *"),
            ("0 9 * * *", "Mars/Olympus", "unknown time zone"),
            ("CRON_TZ=Nowhere 0 9 * * *", "", "unknown time zone"),
        ] {
            let e = Schedule::parse(schedule, tz).unwrap_err();
            assert!(e.contains(needle), "{schedule:?}: {e}");
        }
    }

    #[test]
    fn tick_event_has_knatives_type_source_and_data() {
        let spec = PingSpec {
            id: "x".into(),
            namespace: "default".into(),
            name: "tick".into(),
            schedule: "* * * * *".into(),
            timezone: String::new(),
            content_type: "application/json".into(),
            data: br#"{"hi":1}"#.to_vec(),
            extensions: vec![("team".into(), "a".into())],
            stream: "s".into(),
        };
        let e = event(&spec, at("2026-01-01T10:03:00Z"));
        assert_eq!(e.ty(), "dev.knative.sources.ping");
        assert_eq!(e.source(), "/apis/v1/namespaces/default/pingsources/tick");
        assert_eq!(e.time(), Some("2026-01-01T10:03:00Z"));
        assert_eq!(e.attribute("team"), Some("a"));
        assert_eq!(e.datacontenttype(), Some("application/json"));
        assert_eq!(e.data().map(|d| &d[..]), Some(&br#"{"hi":1}"#[..]));
    }
}
