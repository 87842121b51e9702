//! The two time windows the KPA keeps, ported from knative/serving:
//!
//! - [`MetricWindow`]: `aggregation.TimedFloat64Buckets` / `WeightedFloat64Buckets`
//!   (`pkg/autoscaler/aggregation/bucketing.go`), a ring of one-second buckets averaged over
//!   the stable or the panic window, linearly or with exponential weights.
//! - [`MaxWindow`]: `aggregation/max.TimeWindow` (`pkg/autoscaler/aggregation/max/`), the
//!   running maximum of recent decisions that implements `scale-down-delay`.
//!
//! Times are whole seconds since the owner's epoch (Knative uses Unix seconds); buckets are
//! one second wide, as Knative's `config.BucketSize`.

use std::collections::VecDeque;

/// "Never written": far enough in the past that every distance from it exceeds any window.
const NEVER: i64 = i64::MIN / 4;

/// Knative's `minExponent`: the weighted average never decays slower than this per bucket.
const MIN_EXPONENT: f64 = 0.2;
/// Knative's `weightPrecision`: the weights of a window sum to at least this.
const WEIGHT_PRECISION: f64 = 0.9999;

/// `computeSmoothingCoeff`.
pub(crate) fn smoothing_coeff(buckets: usize) -> f64 {
    (1.0 - (1.0 - WEIGHT_PRECISION).powf(1.0 / buckets as f64)).max(MIN_EXPONENT)
}

/// `roundToNDigits(6, f)`: hides the float dust of adding and subtracting bucket values.
fn round6(f: f64) -> f64 {
    (f * 1e6).round() / 1e6
}

/// A window of one-second buckets (Knative's `TimedFloat64Buckets`, or its weighted variant
/// when `smoothing` is set).
#[derive(Debug, Clone)]
pub(crate) struct MetricWindow {
    buckets: Vec<f64>,
    /// Second of the first write of the current run of data; partial windows average over
    /// the buckets since then only.
    first_write: i64,
    last_write: i64,
    /// Sum of all buckets, including stale ones not yet cleared.
    window_total: f64,
    /// `Some(coefficient)` for the weighted-exponential algorithm.
    smoothing: Option<f64>,
}

impl MetricWindow {
    /// A window of `seconds` buckets (at least one).
    pub(crate) fn new(seconds: usize, weighted: bool) -> Self {
        let n = seconds.max(1);
        MetricWindow {
            buckets: vec![0.0; n],
            first_write: NEVER,
            last_write: NEVER,
            window_total: 0.0,
            smoothing: weighted.then(|| smoothing_coeff(n)),
        }
    }

    fn window(&self) -> i64 {
        self.buckets.len() as i64
    }

    fn slot(&self, sec: i64) -> usize {
        sec.rem_euclid(self.window()) as usize
    }

    /// The second of the last write, if any.
    pub(crate) fn last_write(&self) -> Option<i64> {
        (self.last_write != NEVER).then_some(self.last_write)
    }

    /// `IsEmpty`: nothing written for longer than the window.
    pub(crate) fn is_empty(&self, now: i64) -> bool {
        now - self.last_write > self.window()
    }

    /// `Record`: adds `value` to the bucket of second `now`. A gap since the last write is
    /// zeroed; a gap of a whole window starts a new run (a partial window again); a value
    /// older than the window is dropped.
    pub(crate) fn record(&mut self, now: i64, value: f64) {
        if self.last_write != now {
            if now + self.window() <= self.last_write {
                return;
            }
            if self.first_write == NEVER || self.first_write > now {
                self.first_write = now;
            }
            if now > self.last_write {
                if now - self.last_write >= self.window() {
                    self.first_write = now;
                    self.buckets.fill(0.0);
                    self.window_total = 0.0;
                } else {
                    for i in self.last_write + 1..=now {
                        let s = self.slot(i);
                        self.window_total -= self.buckets[s];
                        self.buckets[s] = 0.0;
                    }
                }
                self.last_write = now;
            }
        }
        let s = self.slot(now);
        self.buckets[s] += value;
        self.window_total += value;
    }

    /// `WindowAverage` at second `now`.
    pub(crate) fn average(&self, now: i64) -> f64 {
        match self.smoothing {
            None => self.linear_average(now),
            Some(m) => self.weighted_average(now, m),
        }
    }

    fn linear_average(&self, now: i64) -> f64 {
        let d = now - self.last_write;
        let run = (self.last_write - self.first_write + 1) as f64;
        if d <= 0 {
            // Written this second: the whole run so far, at most a window.
            round6(self.window_total / run.min(self.window() as f64))
        } else if d < self.window() {
            // Nothing written for `d` seconds: drop the stale buckets since the last write and
            // average over the valid ones only.
            let mut total = self.window_total;
            for i in self.last_write + 1..=now {
                total -= self.buckets[self.slot(i)];
            }
            let valid = run.min((self.window() - d) as f64);
            round6(total / valid)
        } else {
            0.0
        }
    }

    fn weighted_average(&self, now: i64, m: f64) -> f64 {
        if self.is_empty(now) {
            return 0.0;
        }
        let mut count = self.window();
        let mut multiplier = m;
        if now > self.last_write {
            // The seconds since the last write are zeros: skip their weights directly.
            let zeros = now - self.last_write;
            multiplier *= (1.0 - m).powi(zeros as i32);
            count -= zeros;
        }
        let mut total = 0.0;
        for i in 0..count.max(0) {
            total += self.buckets[self.slot(self.last_write - i)] * multiplier;
            multiplier *= 1.0 - m;
        }
        total
    }

    /// `ResizeWindow`, with the clock injected (Knative reads `time.Now()` here).
    pub(crate) fn resize(&mut self, seconds: usize, now: i64) {
        let n = seconds.max(1);
        if n == self.buckets.len() {
            return;
        }
        let old = self.buckets.len();
        let mut fresh = vec![0.0; n];
        let mut total = 0.0;
        if now - self.last_write <= self.window() {
            let mut t = self.last_write;
            for _ in 0..n.min(old) {
                let v = self.buckets[t.rem_euclid(old as i64) as usize];
                fresh[t.rem_euclid(n as i64) as usize] = v;
                total += v;
                t -= 1;
            }
            self.first_write = self.last_write - (old as i64 - 1);
        } else {
            self.first_write = NEVER;
        }
        self.buckets = fresh;
        self.window_total = total;
        if self.smoothing.is_some() {
            self.smoothing = Some(smoothing_coeff(n));
        }
    }
}

/// The maximum of the values recorded over the last `size` indexes (Knative's descending
/// minima window, `max.window`, indexed by `now / granularity` as `max.TimeWindow` does).
#[derive(Debug, Clone)]
pub(crate) struct MaxWindow {
    /// `(index, value)`, values strictly descending, indexes ascending.
    maxima: VecDeque<(i64, i32)>,
    size: i64,
    granularity_secs: u64,
}

impl MaxWindow {
    /// A window over `duration_secs`, in buckets of `granularity_secs`.
    pub(crate) fn new(duration_secs: u64, granularity_secs: u64) -> Self {
        let g = granularity_secs.max(1);
        MaxWindow {
            maxima: VecDeque::new(),
            size: duration_secs.div_ceil(g).max(1) as i64,
            granularity_secs: g,
        }
    }

    /// `TimeWindow.Record` at second `now`.
    pub(crate) fn record(&mut self, now_secs: u64, value: i32) {
        let index = (now_secs / self.granularity_secs) as i64;
        let mut v = value;
        // A value no larger than the new one, and older, can never be the maximum again.
        while self.maxima.back().is_some_and(|&(_, b)| b <= v) {
            self.maxima.pop_back();
        }
        // Drop what has slid out of the window.
        while self
            .maxima
            .front()
            .is_some_and(|&(i, _)| index - i >= self.size)
        {
            self.maxima.pop_front();
        }
        // Two records in one bucket: keep the larger.
        if let Some(&(i, b)) = self.maxima.back()
            && i == index
        {
            v = v.max(b);
            self.maxima.pop_back();
        }
        self.maxima.push_back((index, v));
    }

    /// `TimeWindow.Current`: the maximum over the window (0 before any record).
    pub(crate) fn current(&self) -> i32 {
        self.maxima.front().map_or(0, |&(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Knative's `TestComputeDecayMultiplier`.
    #[test]
    fn smoothing_coefficients() {
        assert_eq!(smoothing_coeff(100), MIN_EXPONENT);
        assert_eq!(smoothing_coeff(60), MIN_EXPONENT);
        assert!((smoothing_coeff(40) - 0.20567).abs() < 1e-4);
        assert!((smoothing_coeff(6) - 0.78456).abs() < 1e-4);
    }

    /// Knative's `TestTimedFloat64BucketsWindowAverage`, second for second.
    #[test]
    fn linear_average_like_knative() {
        let now = 1000;
        let mut b = MetricWindow::new(5, false);
        b.record(now, 1.0);
        assert_eq!(b.average(now), 1.0);
        for i in 1..5 {
            b.record(now + i, (i + 1) as f64);
        }
        assert_eq!(b.average(now + 4), 15.0 / 5.0);
        // 6 s later: the two oldest buckets are out, and there is no data for the last two
        // seconds: average over the three valid ones.
        assert_eq!(b.average(now + 6), (15.0 - 1.0 - 2.0) / 3.0);
        assert_eq!(b.average(now + 10), 0.0);
        b.record(now + 6, 91.0);
        assert_eq!(b.average(now + 6), (15.0 - 1.0 - 2.0 + 91.0) / 5.0);

        let now = now + 60;
        b.record(now, 1984.0);
        assert_eq!(b.average(now), 1984.0);
        b.record(now - 3, 4.0);
        assert_eq!(b.average(now), (4.0 + 1984.0) / 4.0);
        let now = now + 1;
        b.record(now, 5.0);
        assert_eq!(b.average(now), (4.0 + 1984.0 + 5.0) / 5.0);
        b.record(now - 3, 10.0);
        assert_eq!(b.average(now), (4.0 + 10.0 + 1984.0 + 5.0) / 5.0);
        // Older than the window: ignored.
        b.record(now - 6, 10.0);
        b.record(now - 5, 10.0);
        assert_eq!(b.average(now), (4.0 + 10.0 + 1984.0 + 5.0) / 5.0);
        b.record(now + 5, 10.0);
        assert_eq!(b.average(now + 5), 10.0);
    }

    /// Knative's `TestTimedFloat64BucketsWeightedAverage`.
    #[test]
    fn weighted_average_like_knative() {
        let now = 500;
        let mut b = MetricWindow::new(5, true);
        let m = b.smoothing.unwrap();
        b.record(now, 2.0);
        let mut want = 2.0 * m;
        assert_eq!(b.average(now), want);
        want *= 1.0 - m;
        assert_eq!(b.average(now + 1), want);
        b.record(now + 1, 2.0);
        want += 2.0 * m;
        assert!((b.average(now + 1) - want).abs() < 1e-12);
        for i in 0..5 {
            b.record(now + 2 + i, (i + 2) as f64);
        }
        let w = 6.0 * m
            + 5.0 * m * (1.0 - m)
            + 4.0 * m * (1.0 - m).powi(2)
            + 3.0 * m * (1.0 - m).powi(3)
            + 2.0 * m * (1.0 - m).powi(4);
        assert!((b.average(now + 6) - w).abs() < 1e-12);
        assert_eq!(b.average(now + 16), 0.0);
    }

    #[test]
    fn descending_records_fill_the_window() {
        let mut b = MetricWindow::new(5, false);
        for i in (0..=8).rev() {
            b.record(100 + i, 5.0);
        }
        assert_eq!(b.average(105), 5.0);
    }

    #[test]
    fn resize_keeps_recent_buckets() {
        let mut b = MetricWindow::new(5, false);
        for i in 0..5 {
            b.record(10 + i, (i + 1) as f64);
        }
        b.resize(3, 14);
        assert_eq!(b.average(14), (3.0 + 4.0 + 5.0) / 3.0);
        b.resize(10, 14);
        assert_eq!(b.average(14), (3.0 + 4.0 + 5.0) / 3.0);
    }

    /// Knative's `TestAutoscalerScaleDownDelay` timings on the bare window: 5 min, 2 s ticks.
    #[test]
    fn max_window_holds_the_maximum_for_its_duration() {
        let mut w = MaxWindow::new(300, 2);
        w.record(2, 4);
        assert_eq!(w.current(), 4);
        w.record(300, 0);
        assert_eq!(w.current(), 4, "still within five minutes");
        w.record(302, 0);
        assert_eq!(w.current(), 0, "the 4 slid out");

        let mut w = MaxWindow::new(300, 2);
        w.record(540, 4);
        w.record(600, 3);
        assert_eq!(w.current(), 4);
        w.record(660, 0);
        assert_eq!(w.current(), 4);
        w.record(840, 0);
        assert_eq!(w.current(), 3, "4 scrolls out, 3 remains");
        w.record(900, 0);
        assert_eq!(w.current(), 0);
        // Two records in one bucket: the larger stays.
        w.record(902, 7);
        w.record(903, 2);
        assert_eq!(w.current(), 7);
    }
}
