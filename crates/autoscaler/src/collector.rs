//! Metric collection for one revision: what Knative's autoscaler gathers by scraping every
//! queue-proxy once a second and from the activator's reports
//! (`pkg/autoscaler/metrics/collector.go`), here fed straight by wisp's gateway, which sees
//! every request.
//!
//! ## What the gateway reports
//! Knative's stat per pod and second is the *average concurrency* over that second (the
//! integral of in-flight requests over time, divided by the time: knative/networking
//! `pkg/http/stats/request.go`) and the *request count* (divided by the reporting period, so a
//! rate). Buckets are one second wide, so the cheapest faithful interface is to add
//! **concurrency-seconds** and **request counts** to the bucket of the second they were
//! measured in: [`Collector::observe`]. Summed over a second, concurrency-seconds are exactly
//! the average concurrency of that second, however often the gateway reports (every request,
//! or once a second); a single report should not span more than a second. [`RequestMeter`]
//! does the bookkeeping from request-in/request-out events, as Knative's `RequestStats` does.
//! Requests the gateway holds while replicas start count as in flight, as the activator counts
//! them.
//!
//! ## Where wisp differs
//! Knative records a (possibly zero) stat every second for as long as the revision has pods,
//! because it scrapes each of them; it records nothing at zero pods except the activator's
//! reports. wisp's gateway reports only when there is traffic, so [`Collector::stats`] fills
//! the silent seconds with zeros while the revision has ready replicas — the same buckets
//! Knative would have — and leaves them empty at zero replicas, which keeps Knative's
//! partial-window behaviour for a burst at a cold revision (the first seconds of traffic are
//! averaged over themselves, not over a window of zeros). There is no per-pod sampling: the
//! gateway's numbers are totals already.

use std::time::{Duration, Instant};

use crate::spec::{Aggregation, Spec};
use crate::window::MetricWindow;

/// Window averages at one instant: Knative's `StableAndPanicConcurrency` and
/// `StableAndPanicRPS`, totals over all replicas of the revision.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stats {
    pub stable_concurrency: f64,
    pub panic_concurrency: f64,
    pub stable_rps: f64,
    pub panic_rps: f64,
    /// When the gateway last reported traffic (any in-flight time or any request).
    pub last_activity: Option<Instant>,
}

#[derive(Debug, Clone)]
struct Pair {
    stable: MetricWindow,
    panic: MetricWindow,
}

impl Pair {
    fn new(spec: &Spec) -> Self {
        let weighted = spec.aggregation == Aggregation::WeightedExponential;
        Pair {
            stable: MetricWindow::new(buckets(spec.stable_window), weighted),
            panic: MetricWindow::new(buckets(spec.panic_window), weighted),
        }
    }

    fn record(&mut self, sec: i64, value: f64) {
        self.stable.record(sec, value);
        self.panic.record(sec, value);
    }
}

/// One-second buckets covering `d`, rounded up (`NewTimedFloat64Buckets`).
fn buckets(d: Duration) -> usize {
    usize::try_from(d.as_nanos().div_ceil(1_000_000_000)).unwrap_or(usize::MAX)
}

/// Stable and panic windows of concurrency and requests per second for one revision.
#[derive(Debug, Clone)]
pub struct Collector {
    epoch: Instant,
    concurrency: Pair,
    rps: Pair,
    last_activity: Option<Instant>,
}

impl Collector {
    /// Empty windows sized for `spec`. `epoch` anchors the one-second buckets; any instant
    /// not after the first observation will do (the revision's creation, say).
    pub fn new(spec: &Spec, epoch: Instant) -> Self {
        Collector {
            epoch,
            concurrency: Pair::new(spec),
            rps: Pair::new(spec),
            last_activity: None,
        }
    }

    fn sec(&self, now: Instant) -> i64 {
        i64::try_from(now.saturating_duration_since(self.epoch).as_secs()).unwrap_or(i64::MAX)
    }

    /// Adds what the gateway measured at `now`: `concurrency_seconds` (the integral of
    /// in-flight requests over the time reported on) and `requests` (arrivals). Cheap: a few
    /// float additions, no allocation. A report of nothing is ignored: silent seconds are
    /// accounted for by [`stats`](Collector::stats), which knows whether replicas were up.
    pub fn observe(&mut self, now: Instant, concurrency_seconds: f64, requests: f64) {
        let (c, r) = (concurrency_seconds.max(0.0), requests.max(0.0));
        if c == 0.0 && r == 0.0 {
            return;
        }
        let sec = self.sec(now);
        self.concurrency.record(sec, c);
        self.rps.record(sec, r);
        self.last_activity = Some(self.last_activity.map_or(now, |t| t.max(now)));
    }

    /// The window averages at `now`. `ready_replicas` says whether Knative would have been
    /// scraping pods, i.e. recording zeros for the seconds without traffic (see the module
    /// docs); the current, unfinished second is never counted.
    pub fn stats(&mut self, now: Instant, ready_replicas: i32) -> Stats {
        let sec = self.sec(now);
        if ready_replicas > 0 && sec > 0 {
            let last = self.concurrency.stable.last_write();
            if last.is_none_or(|l| l < sec - 1) {
                self.concurrency.record(sec - 1, 0.0);
                self.rps.record(sec - 1, 0.0);
            }
        }
        Stats {
            stable_concurrency: self.concurrency.stable.average(sec),
            panic_concurrency: self.concurrency.panic.average(sec),
            stable_rps: self.rps.stable.average(sec),
            panic_rps: self.rps.panic.average(sec),
            last_activity: self.last_activity,
        }
    }

    /// When the gateway last reported traffic.
    pub fn last_activity(&self) -> Option<Instant> {
        self.last_activity
    }

    /// Applies changed windows (a new global `stable-window`, say), keeping recent buckets
    /// (`ResizeWindow`). The aggregation algorithm is fixed at creation, as in Knative.
    pub fn update(&mut self, spec: &Spec, now: Instant) {
        let sec = self.sec(now);
        for pair in [&mut self.concurrency, &mut self.rps] {
            pair.stable.resize(buckets(spec.stable_window), sec);
            pair.panic.resize(buckets(spec.panic_window), sec);
        }
    }
}

/// In-flight bookkeeping for the gateway, per revision: Knative's `RequestStats`, reduced to
/// what [`Collector::observe`] takes.
///
/// ```
/// # use std::time::{Duration, Instant};
/// # use wisp_autoscaler::RequestMeter;
/// let t0 = Instant::now();
/// let mut meter = RequestMeter::new(t0);
/// meter.request_in(t0);
/// meter.request_in(t0 + Duration::from_millis(500));
/// meter.request_out(t0 + Duration::from_millis(750));
/// // 1 request for 0.5 s, 2 for 0.25 s, 1 for 0.25 s: 1.25 concurrency-seconds, 2 arrivals.
/// assert_eq!(meter.take(t0 + Duration::from_secs(1)), (1.25, 2.0));
/// assert_eq!(meter.in_flight(), 1);
/// ```
#[derive(Debug, Clone)]
pub struct RequestMeter {
    in_flight: u64,
    last_change: Instant,
    concurrency_seconds: f64,
    requests: f64,
}

impl RequestMeter {
    pub fn new(now: Instant) -> Self {
        RequestMeter {
            in_flight: 0,
            last_change: now,
            concurrency_seconds: 0.0,
            requests: 0.0,
        }
    }

    /// Accumulates in-flight time up to `now` (earlier instants are ignored, as Knative's
    /// `compute` ignores them).
    fn advance(&mut self, now: Instant) {
        if now > self.last_change {
            let dt = now.duration_since(self.last_change).as_secs_f64();
            self.concurrency_seconds += self.in_flight as f64 * dt;
            self.last_change = now;
        }
    }

    /// A request arrived (counted from arrival, including time held while scaling from zero).
    pub fn request_in(&mut self, now: Instant) {
        self.advance(now);
        self.in_flight += 1;
        self.requests += 1.0;
    }

    /// A request finished.
    pub fn request_out(&mut self, now: Instant) {
        self.advance(now);
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight
    }

    /// `(concurrency_seconds, requests)` since the last take; resets both.
    pub fn take(&mut self, now: Instant) -> (f64, f64) {
        self.advance(now);
        let out = (self.concurrency_seconds, self.requests);
        self.concurrency_seconds = 0.0;
        self.requests = 0.0;
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::Config;

    fn spec() -> Spec {
        Spec::from_revision(&BTreeMap::new(), 0, &Config::default()).unwrap()
    }

    #[test]
    fn observations_within_a_second_add_up_to_its_average() {
        let t0 = Instant::now();
        let mut c = Collector::new(&spec(), t0);
        // Ten reports of 0.1 s at 5 in flight: an average concurrency of 5 for that second.
        for i in 0..10 {
            c.observe(t0 + Duration::from_millis(100 * i + 50), 0.5, 1.0);
        }
        let s = c.stats(t0 + Duration::from_millis(999), 1);
        assert!((s.stable_concurrency - 5.0).abs() < 1e-9);
        assert!((s.panic_concurrency - 5.0).abs() < 1e-9);
        assert!((s.stable_rps - 10.0).abs() < 1e-9);
        assert_eq!(s.last_activity, Some(t0 + Duration::from_millis(950)));
    }

    #[test]
    fn silence_counts_as_zero_only_while_replicas_are_ready() {
        let t0 = Instant::now();
        let sec = |s: u64| t0 + Duration::from_secs(s);
        let mut with = Collector::new(&spec(), t0);
        let mut without = Collector::new(&spec(), t0);
        for c in [&mut with, &mut without] {
            for s in 0..3 {
                c.observe(sec(s), 6.0, 6.0);
            }
        }
        // Three seconds of 6, then three silent seconds. With replicas Knative scraped
        // zeros: the panic window at second 6 is seconds 1..=5 (the current one is not
        // finished), 12 / 5; the stable window holds all six, 18 / 6. At zero replicas
        // nothing was recorded, and the average stays over the valid buckets, 1..=2.
        let a = with.stats(sec(6), 1);
        assert!((a.panic_concurrency - 2.4).abs() < 1e-9, "{a:?}");
        assert!((a.stable_concurrency - 3.0).abs() < 1e-9, "{a:?}");
        let b = without.stats(sec(6), 0);
        assert!((b.panic_concurrency - 6.0).abs() < 1e-9, "{b:?}");
    }

    #[test]
    fn a_cold_burst_is_averaged_over_itself() {
        let t0 = Instant::now();
        let mut c = Collector::new(&spec(), t0);
        // Long idle at zero replicas, then 200 in flight for a second.
        let t = t0 + Duration::from_secs(3600);
        c.observe(t + Duration::from_millis(500), 200.0, 200.0);
        let s = c.stats(t + Duration::from_millis(900), 0);
        assert_eq!(s.panic_concurrency, 200.0);
        assert_eq!(s.stable_concurrency, 200.0);
    }

    #[test]
    fn meter_integrates_in_flight_time() {
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let mut m = RequestMeter::new(t0);
        for _ in 0..4 {
            m.request_in(t0);
        }
        m.request_out(ms(500));
        m.request_out(ms(500));
        let (cs, n) = m.take(ms(1000));
        assert!((cs - 3.0).abs() < 1e-9, "4 x 0.5 + 2 x 0.5");
        assert_eq!(n, 4.0);
        let (cs, n) = m.take(ms(2000));
        assert!((cs - 2.0).abs() < 1e-9);
        assert_eq!(n, 0.0);
        // An event stamped before the last one adds no time.
        m.request_out(ms(1500));
        assert_eq!(m.in_flight(), 1);
        assert_eq!(m.take(ms(2000)).0, 0.0);
    }
}
