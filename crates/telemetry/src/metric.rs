//! The values the request path updates: counters, gauges and fixed-bucket histograms made of
//! plain atomics.
//!
//! Why not prometheus-client's own metric types: its histogram takes a lock on every
//! observation, and its `Family` hashes (and allocates) a label set on every lookup. Here a
//! recording is a few relaxed `fetch_add`s on values resolved once, and prometheus-client only
//! does what it is best at, writing the exposition format at scrape time. Histograms keep
//! integers in a base unit (microseconds, bytes) so an observation never loops on a
//! compare-and-swap of an `f64`; the scale to the exposed unit is applied when encoding.

use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonic count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (stored as `f64` bits).
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }

    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// Upper bounds of a histogram's buckets, in its base unit, ascending; `+Inf` is implied.
#[derive(Debug, Clone, Copy)]
pub struct Buckets {
    pub bounds: &'static [u64],
    /// Multiplies a base-unit value into the exposed unit (1e-3 for µs → ms).
    pub scale: f64,
}

/// Knative's request latency buckets (`pkg/metrics` `defaultLatencyDistribution`, in
/// milliseconds) with 0.5, 1 and 2 ms in front: a wisp hop is usually below Knative's first
/// bucket. Base unit: microseconds.
pub const LATENCY_MS: Buckets = Buckets {
    bounds: &[
        500,
        1_000,
        2_000,
        5_000,
        10_000,
        20_000,
        40_000,
        60_000,
        80_000,
        100_000,
        150_000,
        200_000,
        250_000,
        300_000,
        350_000,
        400_000,
        450_000,
        500_000,
        600_000,
        700_000,
        800_000,
        900_000,
        1_000_000,
        2_000_000,
        5_000_000,
        10_000_000,
        20_000_000,
        50_000_000,
        100_000_000,
    ],
    scale: 1e-3,
};

/// Kubernetes' API latency buckets (seconds), a few of them. Base unit: microseconds.
pub const LATENCY_SECONDS: Buckets = Buckets {
    bounds: &[
        1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
        2_500_000, 5_000_000, 10_000_000, 30_000_000, 60_000_000,
    ],
    scale: 1e-6,
};

/// Body sizes, by powers of four. Base unit: bytes.
pub const SIZE_BYTES: Buckets = Buckets {
    bounds: &[
        0,
        64,
        256,
        1 << 10,
        4 << 10,
        16 << 10,
        64 << 10,
        256 << 10,
        1 << 20,
        4 << 20,
        16 << 20,
        64 << 20,
    ],
    scale: 1.0,
};

/// A histogram with fixed buckets: one observation is two relaxed adds.
#[derive(Debug)]
pub struct Histogram {
    buckets: Buckets,
    /// Non-cumulative counts; the last one is `+Inf`.
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
}

/// A histogram as the exposition format wants it.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    pub sum: f64,
    pub count: u64,
    /// (upper bound in the exposed unit, cumulative count), `+Inf` last.
    pub buckets: Vec<(f64, u64)>,
}

impl Histogram {
    pub fn new(buckets: Buckets) -> Histogram {
        Histogram {
            buckets,
            counts: (0..=buckets.bounds.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            sum: AtomicU64::new(0),
        }
    }

    /// Records `v` (base unit).
    pub fn observe(&self, v: u64) {
        let i = self.buckets.bounds.partition_point(|b| *b < v);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(v, Ordering::Relaxed);
    }

    /// The counts now. Taken bucket by bucket without a lock, so under load the sum may
    /// include an observation whose bucket was read just before: scrapes are approximate by a
    /// request or two, as every lock-free exporter's are.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(self.counts.len());
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c.load(Ordering::Relaxed);
            let bound = match self.buckets.bounds.get(i) {
                Some(b) => *b as f64 * self.buckets.scale,
                None => f64::INFINITY,
            };
            buckets.push((bound, cumulative));
        }
        HistogramSnapshot {
            sum: self.sum.load(Ordering::Relaxed) as f64 * self.buckets.scale,
            count: cumulative,
            buckets,
        }
    }
}

/// Knative's `response_code_class`: `2xx`, `5xx`, ...; `0xx` for "no response".
pub fn code_class(code: u16) -> &'static str {
    match code / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        5 => "5xx",
        0 => "0xx",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let h = Histogram::new(LATENCY_MS);
        h.observe(0); // 0 ms
        h.observe(500); // exactly 0.5 ms: "le 0.5" holds it
        h.observe(501);
        h.observe(150_000); // 150 ms
        h.observe(u64::MAX / 4); // beyond the last bound
        let s = h.snapshot();
        assert_eq!(s.count, 5);
        assert_eq!(s.buckets[0], (0.5, 2));
        assert_eq!(s.buckets[1], (1.0, 3));
        let at_150 = s.buckets.iter().find(|(b, _)| *b == 150.0).unwrap();
        assert_eq!(at_150.1, 4);
        assert_eq!(*s.buckets.last().unwrap(), (f64::INFINITY, 5));
        assert_eq!(s.buckets.len(), LATENCY_MS.bounds.len() + 1);
    }

    #[test]
    fn cumulative_counts_never_decrease_and_sum_is_scaled() {
        let h = Histogram::new(LATENCY_SECONDS);
        for v in [1_500, 20_000, 20_000, 3_000_000] {
            h.observe(v);
        }
        let s = h.snapshot();
        assert!(s.buckets.windows(2).all(|w| w[0].1 <= w[1].1));
        assert!((s.sum - 3.0415).abs() < 1e-9, "{}", s.sum);
        let size = Histogram::new(SIZE_BYTES);
        size.observe(0);
        size.observe(65);
        assert_eq!(size.snapshot().buckets[0], (0.0, 1));
        assert_eq!(size.snapshot().buckets[2], (256.0, 2));
    }

    #[test]
    fn bounds_ascend() {
        for b in [LATENCY_MS, LATENCY_SECONDS, SIZE_BYTES] {
            assert!(b.bounds.windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[test]
    fn code_classes() {
        assert_eq!(code_class(200), "2xx");
        assert_eq!(code_class(404), "4xx");
        assert_eq!(code_class(503), "5xx");
        assert_eq!(code_class(0), "0xx");
        assert_eq!(code_class(999), "other");
    }
}
