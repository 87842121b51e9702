//! Load measurement per revision, for the autoscaler: in-flight requests integrated over time
//! (concurrency-seconds) and arrivals, what Knative's queue-proxy and activator report.
//!
//! ## One atomic per event, no lock
//! The integral of in-flight requests up to time `t` is
//! `I(t) = Σ completed (out - in) + Σ in-flight (t - in) = A + n·t`
//! with `A = Σ out-times - Σ in-times` and `n` the requests in flight. An arrival at `t_in` adds
//! `(-t_in, +1)` to `(A, n)`; a departure at `t_out` adds `(+t_out, -1)`. Both live in **one**
//! `AtomicU64`, `n` in the low [`COUNT_BITS`] bits and `A` (microseconds, wrapping) in the high
//! bits, so each event is a single `fetch_add` and a reader always sees a consistent pair:
//! `n` never leaves `0..2^COUNT_BITS`, so it never carries into `A`, and `A` is only ever
//! needed modulo `2^(64 - COUNT_BITS)` because the reader wants differences between two
//! readings. That bounds what one sampling interval can hold to 2^40 µs ≈ 1.1 million
//! concurrency-seconds, far beyond a 1-2 s autoscaler tick.
//!
//! Times are microseconds since an epoch the owner picks; every function takes `now`, so the
//! arithmetic is tested without a clock.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bits of the packed word holding the in-flight count (up to 16.7 million per revision).
pub const COUNT_BITS: u32 = 24;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
/// Bits holding the wrapping time sum.
const TIME_BITS: u32 = 64 - COUNT_BITS;
const TIME_MASK: u64 = (1 << TIME_BITS) - 1;

/// In-flight requests and their time integral, updated by the request path.
#[derive(Debug, Default)]
pub struct Meter {
    packed: AtomicU64,
    arrivals: AtomicU64,
}

/// A consistent reading of a [`Meter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// Requests in flight at the reading.
    pub in_flight: u64,
    /// Requests that ever arrived.
    pub arrivals: u64,
    /// The concurrency integral in microseconds, modulo 2^40: compare two readings with
    /// [`Reading::concurrency_micros_since`].
    integral: u64,
}

impl Meter {
    /// A request arrived at `now_us`.
    pub fn request_in(&self, now_us: u64) {
        self.arrivals.fetch_add(1, Ordering::Relaxed);
        let delta = 1u64.wrapping_sub(now_us << COUNT_BITS);
        self.packed.fetch_add(delta, Ordering::Relaxed);
    }

    /// A request that arrived earlier finished at `now_us`.
    pub fn request_out(&self, now_us: u64) {
        let delta = (now_us << COUNT_BITS).wrapping_sub(1);
        self.packed.fetch_add(delta, Ordering::Relaxed);
    }

    pub fn in_flight(&self) -> u64 {
        self.packed.load(Ordering::Relaxed) & COUNT_MASK
    }

    pub fn arrivals(&self) -> u64 {
        self.arrivals.load(Ordering::Relaxed)
    }

    /// Reads the meter at `now_us`.
    pub fn read(&self, now_us: u64) -> Reading {
        let packed = self.packed.load(Ordering::Acquire);
        let n = packed & COUNT_MASK;
        let a = packed >> COUNT_BITS;
        Reading {
            in_flight: n,
            arrivals: self.arrivals.load(Ordering::Relaxed),
            integral: a.wrapping_add(n.wrapping_mul(now_us)) & TIME_MASK,
        }
    }
}

impl Reading {
    /// Concurrency-microseconds between `earlier` and `self`.
    pub fn concurrency_micros_since(&self, earlier: &Reading) -> u64 {
        self.integral.wrapping_sub(earlier.integral) & TIME_MASK
    }

    /// Arrivals between `earlier` and `self`.
    pub fn arrivals_since(&self, earlier: &Reading) -> u64 {
        self.arrivals.wrapping_sub(earlier.arrivals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    #[test]
    fn integrates_in_flight_time_between_readings() {
        let m = Meter::default();
        let t0 = 5 * S;
        let r0 = m.read(t0);
        m.request_in(t0);
        m.request_in(t0 + S / 2);
        m.request_out(t0 + 3 * S / 4);
        let r1 = m.read(t0 + S);
        // 1 request for 0.5 s, 2 for 0.25 s, 1 for 0.25 s: 1.25 concurrency-seconds.
        assert_eq!(r1.concurrency_micros_since(&r0), 1_250_000);
        assert_eq!(r1.arrivals_since(&r0), 2);
        assert_eq!(r1.in_flight, 1);
        // The next second: the one left in flight counts fully.
        let r2 = m.read(t0 + 2 * S);
        assert_eq!(r2.concurrency_micros_since(&r1), S);
        assert_eq!(r2.arrivals_since(&r1), 0);
        m.request_out(t0 + 2 * S + S / 10);
        let r3 = m.read(t0 + 3 * S);
        assert_eq!(r3.concurrency_micros_since(&r2), S / 10);
        assert_eq!(m.in_flight(), 0);
    }

    #[test]
    fn survives_wrapping_of_the_time_sum() {
        let m = Meter::default();
        // Far past 2^40 µs (12.7 days) of clock, with many requests in flight.
        let base = (1u64 << 45) + 12_345;
        for i in 0..1000 {
            m.request_in(base + i);
        }
        let r0 = m.read(base + 1000);
        let r1 = m.read(base + 1000 + 2 * S);
        assert_eq!(r1.concurrency_micros_since(&r0), 1000 * 2 * S);
        for _ in 0..1000 {
            m.request_out(base + 1000 + 3 * S);
        }
        let r2 = m.read(base + 1000 + 4 * S);
        assert_eq!(r2.concurrency_micros_since(&r1), 1000 * S);
        assert_eq!(r2.in_flight, 0);
    }

    #[test]
    fn concurrent_updates_keep_the_count_exact() {
        let m = std::sync::Arc::new(Meter::default());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        m.request_in(t * 100 + i);
                        m.request_out(t * 100 + i + 1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let r = m.read(1 << 20);
        assert_eq!(r.in_flight, 0);
        assert_eq!(r.arrivals, 40_000);
        // Each request was in flight for exactly 1 µs.
        assert_eq!(
            r.concurrency_micros_since(&Meter::default().read(0)),
            40_000
        );
    }
}
