//! How long to wait before restarting a replica that ended: pure.
//!
//! Kubernetes' CrashLoopBackOff waits 10 s, doubling to 5 min, and forgets a container's
//! crashes after it has run for 10 min. That start is too slow for a serverless runtime where a
//! crash often comes from a transient condition (a port still in TIME_WAIT, a dependency that is
//! one moment late), so wisp starts at 100 ms and doubles to the same 5 min ceiling: 0.1, 0.2,
//! 0.4, ... 51.2, 102.4, 204.8, 300 s. A crash loop therefore costs at most ten restarts in its
//! first minute and one every five minutes after that. A run that lasted at least
//! [`RestartPolicy::reset_after`] (default 60 s) counts as healthy: the next crash starts over
//! at the initial delay.

use std::time::Duration;

/// The restart back-off's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    pub initial: Duration,
    pub max: Duration,
    pub reset_after: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(300),
            reset_after: Duration::from_secs(60),
        }
    }
}

/// The back-off state of one replica.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: RestartPolicy,
    /// Crashes since the last healthy run.
    streak: u32,
}

impl Backoff {
    pub fn new(policy: RestartPolicy) -> Self {
        Backoff { policy, streak: 0 }
    }

    /// The delay before restarting a run that lasted `ran_for` and then ended.
    pub fn next(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= self.policy.reset_after {
            self.streak = 0;
        }
        let factor = 1u32.checked_shl(self.streak.min(31)).unwrap_or(u32::MAX);
        self.streak = self.streak.saturating_add(1);
        self.policy
            .initial
            .checked_mul(factor)
            .unwrap_or(self.policy.max)
            .min(self.policy.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn doubles_from_100ms_to_five_minutes() {
        let mut b = Backoff::new(RestartPolicy::default());
        let got: Vec<Duration> = (0..16).map(|_| b.next(Duration::ZERO)).collect();
        let want: Vec<Duration> = [
            100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 102400, 204800, 300000,
            300000, 300000, 300000,
        ]
        .into_iter()
        .map(ms)
        .collect();
        assert_eq!(got, want);
        // Far into a crash loop nothing overflows.
        for _ in 0..100 {
            assert_eq!(b.next(ms(1)), ms(300_000));
        }
    }

    #[test]
    fn a_long_run_resets_the_streak() {
        let mut b = Backoff::new(RestartPolicy::default());
        assert_eq!(b.next(ms(10)), ms(100));
        assert_eq!(b.next(ms(10)), ms(200));
        assert_eq!(b.next(ms(59_999)), ms(400));
        assert_eq!(b.next(ms(60_000)), ms(100));
        assert_eq!(b.next(ms(10)), ms(200));
    }
}
