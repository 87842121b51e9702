//! The per-revision decision: Knative's decider (`pkg/autoscaler/scaling/autoscaler.go`,
//! `Scale()`) followed by what its KPA reconciler does with the result
//! (`pkg/reconciler/autoscaling/kpa/scaler.go` `scale()` and `handleScaleToZero()`,
//! `kpa.go` `computeActiveCondition()`), as one pure state machine on an injected clock.
//!
//! Each [`Autoscaler::decide`]:
//! 1. **Decider.** `ready = max(1, ready replicas)`; the stable and panic wants are
//!    `ceil(average / target)`, each clamped to `[floor(ready / max-scale-down-rate),
//!    ceil(ready x max-scale-up-rate)]` (no lower clamp for unreachable revisions) and raised to
//!    `activation-scale` when non-zero. Panic starts when `panic want / ready >=
//!    panic threshold`, is extended by every tick still over it, and ends once a whole stable
//!    window has passed without one; while panicking the result is `max(stable, panic)` and
//!    never decreases. `scale-down-delay` then takes the maximum over that window. Excess burst
//!    capacity is `floor(ready x total - target-burst-capacity - panic average)`.
//! 2. **Bounds.** `min-scale` (raised to `initial-scale` until that many replicas were once
//!    ready) and `max-scale` clamp the result.
//! 3. **Scale to zero.** A zero is applied only when scale-to-zero is enabled, the revision has
//!    been active and without traffic for a stable window (until then one replica stays), and
//!    then idle for `max(scale-to-zero-grace-period, scale-to-zero-pod-retention-period)`
//!    (the replicas stay as they are meanwhile).
//!
//! ## Where wisp differs
//! - Knative's grace period is time for networking to put the activator back in the request
//!   path: it scales to zero once the revision has been inactive for the grace period, or
//!   earlier if the activator was already in the path that long (and the retention period has
//!   passed). wisp's gateway is always in the path, so that shortcut would always apply; wisp
//!   instead always waits the grace period after the stable window, so the last replica stays
//!   warm for the time Knative users configure and expect (the brief's "idle for the stable
//!   window, then the grace period").
//! - The activation timeout (a revision wanting replicas that never become ready goes back
//!   to zero) is the `serving.knative.dev/progress-deadline` annotation, else Knative's
//!   `config-deployment` default of 600 s, plus 30 s; wisp has no `config-deployment`.
//! - A request at zero replicas pokes the autoscaler ([`Autoscaler::poke`]) directly, instead of
//!   the activator sending a stat of concurrency 1 that triggers an immediate tick: the next
//!   decision counts one request of demand, so it is at least 1 (and `activation-scale`).
//! - Besides the decider's zero, the revision must have seen no traffic for a stable window
//!   (the gateway's last report or poke), so a poke never races a stale zero.

use std::time::{Duration, Instant};

use crate::collector::Stats;
use crate::spec::{Metric, Spec};
use crate::window::MaxWindow;

/// How often Knative's autoscaler decides (`tickInterval`); also the bucket width of the
/// scale-down-delay window.
pub const TICK_INTERVAL: Duration = Duration::from_secs(2);

/// Panic mode (Knative's `panicTime` and `maxPanicPods`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Decisions follow the stable window.
    Stable,
    /// A burst: decisions follow the larger of both windows and never go down.
    Panic {
        /// When this panic began.
        since: Instant,
        /// The last decision still over the panic threshold; panic ends a stable window later.
        last_over: Instant,
        /// The largest decision of this panic.
        max_replicas: i32,
    },
}

/// Whether the revision serves, is idle or is at zero (Knative's PodAutoscaler `Active`
/// condition and the scale applied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// Replicas wanted, fewer than needed ready yet (Active=Unknown, "Queued").
    Activating { since: Instant },
    /// Enough replicas ready (Active=True).
    Active { since: Instant },
    /// No traffic for a stable window; the replicas stay through the grace period
    /// (Active=False, zero not applied yet).
    Idle { since: Instant },
    /// Scaled to zero (Active=False, zero applied).
    Zero { since: Instant },
}

/// Why a decision has its value: the last rule that set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The stable window's average over the target.
    Metrics,
    /// Panic mode: the larger of both windows, never decreasing.
    Panic,
    /// Raised to `activation-scale`.
    ActivationScale,
    /// A request arrived at zero replicas ([`Autoscaler::poke`]).
    Poked,
    /// Held up by `scale-down-delay`.
    ScaleDownDelay,
    /// Raised to `min-scale`.
    MinScale,
    /// Raised to `initial-scale`, not reached yet.
    InitialScale,
    /// Lowered to `max-scale`.
    MaxScale,
    /// Zero wanted, but `enable-scale-to-zero` is false: one replica stays.
    ScaleToZeroDisabled,
    /// Zero wanted while activating: the scale is held.
    Activating,
    /// Zero wanted, but the revision has not been idle for a stable window: one replica stays.
    StableWindow,
    /// Idle: the replicas stay until the grace (or retention) period has passed.
    GracePeriod,
    /// Scaled to zero.
    ScaledToZero,
    /// Replicas never became ready within the activation timeout: back to zero.
    ActivationTimedOut,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Reason::Metrics => "stable window",
            Reason::Panic => "panic mode",
            Reason::ActivationScale => "activation-scale",
            Reason::Poked => "request at zero replicas",
            Reason::ScaleDownDelay => "scale-down-delay",
            Reason::MinScale => "min-scale",
            Reason::InitialScale => "initial-scale",
            Reason::MaxScale => "max-scale",
            Reason::ScaleToZeroDisabled => "scale to zero disabled",
            Reason::Activating => "activating",
            Reason::StableWindow => "not idle for a stable window yet",
            Reason::GracePeriod => "idle, within the grace period",
            Reason::ScaledToZero => "scaled to zero",
            Reason::ActivationTimedOut => "activation timed out",
        };
        f.write_str(s)
    }
}

/// One decision: how many replicas the revision should have now, and why.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// Replicas to run (Knative's PodAutoscaler `desiredScale` after the reconciler).
    pub desired: i32,
    /// The decider's own number, before bounds and scale-to-zero (the Decider's
    /// `DesiredScale`).
    pub metric_desired: i32,
    pub panic: bool,
    /// Spare capacity beyond the target burst capacity; negative means Knative would keep the
    /// activator in the path. -1 for unlimited TBC, 0 for none.
    pub excess_burst_capacity: i32,
    /// The stable and panic averages of the spec's metric, totals over all replicas.
    pub stable_avg: f64,
    pub panic_avg: f64,
    pub reason: Reason,
    pub activity: Activity,
    /// When to decide again: the next tick, or `None` at zero replicas, where nothing changes
    /// until [`Autoscaler::poke`] (or a new spec).
    pub next_tick: Option<Instant>,
}

/// The autoscaler of one revision. Not `Sync`-clever: the caller owns it (behind its own lock)
/// and calls [`decide`](Autoscaler::decide) every [`TICK_INTERVAL`] and right after a
/// [`poke`](Autoscaler::poke) that returns true.
#[derive(Debug, Clone)]
pub struct Autoscaler {
    spec: Spec,
    epoch: Instant,
    mode: Mode,
    activity: Activity,
    delay: Option<MaxWindow>,
    /// Knative's `ScaleTargetInitialized`: `initial-scale` was reached once.
    initialized: bool,
    /// The scale last applied (what the runtime was asked for).
    applied: i32,
    /// A request is waiting at zero replicas.
    poked: bool,
    last_poke: Option<Instant>,
}

fn delay_window(spec: &Spec) -> Option<MaxWindow> {
    (!spec.scale_down_delay.is_zero())
        .then(|| MaxWindow::new(spec.scale_down_delay.as_secs(), TICK_INTERVAL.as_secs()))
}

impl Autoscaler {
    /// The autoscaler of a new revision: it starts with `initial-scale` replicas asked for,
    /// activating (or at zero when the initial scale is 0).
    pub fn new(spec: Spec, now: Instant) -> Self {
        let applied = spec.initial_scale.max(0);
        let activity = if applied == 0 {
            Activity::Zero { since: now }
        } else {
            Activity::Activating { since: now }
        };
        Autoscaler {
            delay: delay_window(&spec),
            spec,
            epoch: now,
            mode: Mode::Stable,
            activity,
            initialized: false,
            applied,
            poked: false,
            last_poke: None,
        }
    }

    /// The autoscaler of a revision that already runs `ready_replicas` (after a daemon
    /// restart). As in Knative, with more than one replica it starts in panic mode, so that
    /// the lost metric history does not scale it down before enough data is in.
    pub fn resume(spec: Spec, now: Instant, ready_replicas: i32) -> Self {
        let ready = ready_replicas.max(0);
        let mut a = Autoscaler::new(spec, now);
        a.initialized = true;
        a.applied = ready;
        a.activity = if ready > 0 {
            Activity::Active { since: now }
        } else {
            Activity::Zero { since: now }
        };
        if ready > 1 {
            a.mode = Mode::Panic {
                since: now,
                last_over: now,
                max_replicas: ready,
            };
        }
        a
    }

    /// Applies new settings (Knative's `Update`). Panic and activity state carry over; the
    /// scale-down-delay window restarts when its length changed. Give the same spec to
    /// [`Collector::update`](crate::Collector::update) so the metric windows follow.
    pub fn update(&mut self, spec: Spec) {
        if spec.scale_down_delay != self.spec.scale_down_delay {
            self.delay = delay_window(&spec);
        }
        self.spec = spec;
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn activity(&self) -> Activity {
        self.activity
    }

    /// The scale last decided and applied.
    pub fn desired(&self) -> i32 {
        self.applied
    }

    /// A request arrived for this revision while it may have no replica (the gateway calls
    /// this when it has to hold a request). The next decision counts at least one request of
    /// demand. Returns true when that decision should be made right away — the revision is at
    /// zero — as Knative's `MultiScaler.Poke` ticks at once only when the last scale was 0.
    pub fn poke(&mut self, now: Instant) -> bool {
        self.poked = true;
        self.last_poke = Some(self.last_poke.map_or(now, |t| t.max(now)));
        self.applied == 0
    }

    /// Decides the scale at `now`, given the replicas ready to serve and the window averages
    /// (from [`Collector::stats`](crate::Collector::stats)).
    pub fn decide(&mut self, now: Instant, ready_replicas: i32, stats: Stats) -> Decision {
        let spec = &self.spec;
        let (stable_avg, panic_avg) = match spec.metric {
            Metric::Concurrency => (stats.stable_concurrency, stats.panic_concurrency),
            Metric::Rps => (stats.stable_rps, stats.panic_rps),
        };
        let ready = ready_replicas.max(0);
        let poked = std::mem::take(&mut self.poked);

        // ---- 1. The decider (`autoscaler.Scale`).
        let ready_f = f64::from(ready.max(1));
        // At least one more replica when scaling up, whatever the rate.
        let max_up = (spec.max_scale_up_rate * ready_f).ceil();
        let max_down = if spec.reachable {
            (ready_f / spec.max_scale_down_rate).floor()
        } else {
            0.0
        };
        let mut dspc = (stable_avg / spec.target).ceil();
        let mut dppc = (panic_avg / spec.target).ceil();
        let mut reason = Reason::Metrics;
        if poked && dspc < 1.0 {
            // The held request is demand the windows may not show yet.
            dspc = 1.0;
            dppc = dppc.max(1.0);
            reason = Reason::Poked;
        }
        let clamp = |want: f64| want.max(max_down).min(max_up) as i32;
        let mut stable_want = clamp(dspc);
        let mut panic_want = clamp(dppc);
        let mut stable_raised = false;
        if spec.activation_scale > 1 {
            if dspc > 0.0 && spec.activation_scale > stable_want {
                stable_want = spec.activation_scale;
                stable_raised = true;
            }
            if dppc > 0.0 && spec.activation_scale > panic_want {
                panic_want = spec.activation_scale;
            }
        }
        if stable_raised {
            reason = Reason::ActivationScale;
        }

        let over_threshold = dppc / ready_f >= spec.panic_threshold;
        self.mode = match self.mode {
            // The panic window wants `panic_threshold` times the ready replicas: panic.
            Mode::Stable if over_threshold => Mode::Panic {
                since: now,
                last_over: now,
                max_replicas: 0,
            },
            // Still over the threshold: the panic extends from now.
            Mode::Panic {
                since,
                max_replicas,
                ..
            } if over_threshold => Mode::Panic {
                since,
                last_over: now,
                max_replicas,
            },
            // A whole stable window without crossing it: the surge is in the stable
            // average by now; back to stable.
            Mode::Panic { last_over, .. } if last_over + spec.stable_window < now => Mode::Stable,
            // Under the threshold and not for long enough (or never in panic): no change.
            mode => mode,
        };

        let mut desired = stable_want;
        if let Mode::Panic { max_replicas, .. } = &mut self.mode {
            // Provision for the larger window, and never scale down while panicking.
            desired = desired.max(panic_want);
            *max_replicas = (*max_replicas).max(desired);
            if *max_replicas != stable_want || reason == Reason::Metrics {
                reason = Reason::Panic;
            }
            desired = *max_replicas;
        }

        if spec.reachable
            && let Some(window) = &mut self.delay
        {
            let secs = now.saturating_duration_since(self.epoch).as_secs();
            window.record(secs, desired);
            let delayed = window.current();
            if delayed != desired {
                desired = delayed;
                reason = Reason::ScaleDownDelay;
            }
        }

        let excess_burst_capacity = if spec.target_burst_capacity == 0.0 {
            0
        } else if spec.target_burst_capacity > 0.0 {
            (f64::from(ready) * spec.total - spec.target_burst_capacity - panic_avg).floor() as i32
        } else {
            -1
        };
        let metric_desired = desired;

        // ---- 2. Bounds (`scaler.scale`).
        let (mut min, max) = spec.scale_bounds();
        let mut min_reason = Reason::MinScale;
        if spec.initial_scale > 1 && !self.initialized && spec.reachable && spec.initial_scale > min
        {
            min = spec.initial_scale;
            min_reason = Reason::InitialScale;
        }
        if desired < min {
            desired = min;
            reason = min_reason;
        } else if max != 0 && desired > max {
            desired = max;
            reason = Reason::MaxScale;
        }

        // ---- 3. Scale to zero (`handleScaleToZero`): `want` None = hold the current scale.
        let (want, apply) = if desired != 0 {
            (Some(desired), true)
        } else if !spec.enable_scale_to_zero {
            reason = Reason::ScaleToZeroDisabled;
            (Some(1), true)
        } else {
            match self.activity {
                Activity::Activating { since } => {
                    if now.saturating_duration_since(since) > spec.activation_timeout {
                        reason = Reason::ActivationTimedOut;
                        (Some(0), true)
                    } else {
                        reason = Reason::Activating;
                        (None, false)
                    }
                }
                Activity::Active { since } => {
                    let quiet_since = [stats.last_activity, self.last_poke]
                        .into_iter()
                        .flatten()
                        .fold(since, Instant::max);
                    if now.saturating_duration_since(quiet_since) >= spec.stable_window {
                        // Becomes idle; the replicas stay for now.
                        reason = Reason::GracePeriod;
                        (Some(0), false)
                    } else {
                        reason = Reason::StableWindow;
                        (Some(1), true)
                    }
                }
                Activity::Idle { since } => {
                    let retention = if spec.reachable {
                        spec.scale_to_zero_pod_retention_period
                    } else {
                        Duration::ZERO
                    };
                    let wait = spec.scale_to_zero_grace_period.max(retention);
                    if now.saturating_duration_since(since) >= wait {
                        reason = Reason::ScaledToZero;
                        (Some(0), true)
                    } else {
                        reason = Reason::GracePeriod;
                        (Some(0), false)
                    }
                }
                Activity::Zero { .. } => {
                    reason = Reason::ScaledToZero;
                    (Some(0), true)
                }
            }
        };
        if apply && let Some(w) = want {
            self.applied = w;
        }

        // ---- 4. Activity (`computeActiveCondition`).
        let (min_bound, _) = spec.scale_bounds();
        let min_ready = if self.initialized {
            min_bound.max(1)
        } else {
            min_bound.max(spec.initial_scale)
        };
        if ready >= min_ready {
            self.initialized = true;
        }
        self.activity = match (self.activity, want) {
            // Already at zero and staying there.
            (Activity::Zero { since }, Some(0)) => Activity::Zero { since },
            // Zero applied: scaled to zero.
            (_, Some(0)) if apply => Activity::Zero { since: now },
            // Zero wanted, not applied: idle (since the first such decision).
            (Activity::Idle { since }, Some(0)) => Activity::Idle { since },
            (_, Some(0)) => Activity::Idle { since: now },
            // Replicas wanted and enough ready: serving (since it first was).
            (Activity::Active { since }, _) if ready >= min_ready => Activity::Active { since },
            (_, _) if ready >= min_ready => Activity::Active { since: now },
            // Replicas wanted, not enough ready: activating (since it first was).
            (Activity::Activating { since }, _) => Activity::Activating { since },
            (_, _) => Activity::Activating { since: now },
        };

        Decision {
            desired: self.applied,
            metric_desired,
            panic: matches!(self.mode, Mode::Panic { .. }),
            excess_burst_capacity,
            stable_avg,
            panic_avg,
            reason,
            activity: self.activity,
            next_tick: (self.applied != 0).then(|| now + TICK_INTERVAL),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The decider, table by table as Knative's `pkg/autoscaler/scaling/autoscaler_test.go`
    //! checks it (`metric_desired` is its `DesiredPodCount`), then the scale-to-zero path.

    use std::collections::BTreeMap;

    use super::*;
    use crate::config::Config;

    const TARGET_UTILIZATION: f64 = 0.75;
    const STABLE_WINDOW: Duration = Duration::from_secs(60);

    /// `newTestAutoscaler(target, tbc)`: total = target / 0.75, threshold 2, rates 10.
    fn knative_spec(target: f64, tbc: f64) -> Spec {
        let mut s = Spec::from_revision(&BTreeMap::new(), 0, &Config::default()).unwrap();
        s.target = target;
        s.total = target / TARGET_UTILIZATION;
        s.target_burst_capacity = tbc;
        s.panic_threshold = 2.0;
        s.max_scale_up_rate = 10.0;
        s.max_scale_down_rate = 10.0;
        s.stable_window = STABLE_WINDOW;
        s
    }

    /// `expectedEBC(totCap, targetBC, recordedConcurrency, numPods)`.
    fn ebc(target: f64, tbc: f64, panic: f64, pods: f64) -> i32 {
        (target / TARGET_UTILIZATION * pods - tbc - panic).floor() as i32
    }

    fn conc(stable: f64, panic: f64) -> Stats {
        Stats {
            stable_concurrency: stable,
            panic_concurrency: panic,
            ..Stats::default()
        }
    }

    fn rps(stable: f64, panic: f64) -> Stats {
        Stats {
            stable_rps: stable,
            panic_rps: panic,
            ..Stats::default()
        }
    }

    fn is_panic_from(a: &Autoscaler) -> Option<Instant> {
        match a.mode() {
            Mode::Panic { last_over, .. } => Some(last_over),
            Mode::Stable => None,
        }
    }

    #[test]
    fn stable_mode_follows_the_stable_window() {
        let t = Instant::now();
        let mut a = Autoscaler::new(knative_spec(10.0, 101.0), t);
        let d = a.decide(t, 1, conc(50.0, 10.0));
        assert_eq!((d.metric_desired, d.panic), (5, false));
        assert_eq!(d.excess_burst_capacity, ebc(10.0, 101.0, 10.0, 1.0));
        let d = a.decide(t, 1, conc(100.0, 10.0));
        assert_eq!(d.metric_desired, 10);

        let mut spec = knative_spec(10.0, 101.0);
        spec.metric = Metric::Rps;
        let mut a = Autoscaler::new(spec, t);
        let d = a.decide(t, 1, rps(50.0, 50.0));
        assert_eq!(d.metric_desired, 5);
        assert_eq!(d.excess_burst_capacity, ebc(10.0, 101.0, 50.0, 1.0));
        let d = a.decide(t, 1, rps(100.0, 99.0));
        assert_eq!(d.metric_desired, 10);
        assert_eq!(d.excess_burst_capacity, ebc(10.0, 101.0, 99.0, 1.0));
        assert!(d.panic, "99 rps wants 10 replicas where 1 is ready");
        // Concurrency is ignored under the rps metric.
        let mut spec = knative_spec(10.0, 101.0);
        spec.metric = Metric::Rps;
        let mut a = Autoscaler::new(spec, t);
        assert_eq!(a.decide(t, 10, conc(1000.0, 1000.0)).metric_desired, 1);

        let mut a = Autoscaler::new(knative_spec(10.0, 98.0), t);
        assert_eq!(a.decide(t, 8, conc(100.0, 100.0)).metric_desired, 10);
        assert_eq!(a.decide(t, 8, conc(50.0, 50.0)).metric_desired, 5);
    }

    /// `TestAutoscalerScale`.
    #[test]
    fn scale_table() {
        struct Case {
            label: &'static str,
            target: f64,
            tbc: f64,
            stats: Stats,
            ready: i32,
            prep: fn(&mut Autoscaler, Instant),
            want: i32,
            want_ebc: i32,
        }
        fn none(_: &mut Autoscaler, _: Instant) {}
        fn panicking_at_5(a: &mut Autoscaler, now: Instant) {
            let five_ago = now - Duration::from_secs(5);
            a.mode = Mode::Panic {
                since: five_ago,
                last_over: five_ago,
                max_replicas: 5,
            };
        }
        fn slow_up(a: &mut Autoscaler, _: Instant) {
            a.spec.max_scale_up_rate = 1.1;
        }
        fn slow_down(a: &mut Autoscaler, _: Instant) {
            a.spec.max_scale_down_rate = 1.1;
        }
        fn slow_down_unreachable(a: &mut Autoscaler, _: Instant) {
            a.spec.max_scale_down_rate = 1.1;
            a.spec.reachable = false;
        }
        let cases = [
            Case {
                label: "no data at zero",
                target: 10.0,
                tbc: 100.0,
                stats: conc(0.0, 0.0),
                ready: 1,
                prep: none,
                want: 0,
                want_ebc: ebc(10.0, 100.0, 0.0, 1.0),
            },
            Case {
                label: "unlimited TBC",
                target: 181.0,
                tbc: -1.0,
                stats: conc(21.0, 26.0),
                ready: 1,
                prep: none,
                want: 1,
                want_ebc: -1,
            },
            Case {
                label: "zero TBC",
                target: 10.0,
                tbc: 0.0,
                stats: conc(50.0, 49.0),
                ready: 1,
                prep: none,
                want: 5,
                want_ebc: 0,
            },
            Case {
                label: "stable, no change",
                target: 10.0,
                tbc: 100.0,
                stats: conc(50.0, 50.0),
                ready: 1,
                prep: none,
                want: 5,
                want_ebc: ebc(10.0, 100.0, 50.0, 1.0),
            },
            Case {
                label: "panic, stable larger than panic",
                target: 1.0,
                tbc: 100.0,
                stats: conc(50.0, 30.0),
                ready: 5,
                prep: panicking_at_5,
                want: 50,
                want_ebc: ebc(1.0, 100.0, 30.0, 5.0),
            },
            Case {
                label: "panic, stable less than panic",
                target: 1.0,
                tbc: 100.0,
                stats: conc(20.0, 30.0),
                ready: 5,
                prep: panicking_at_5,
                want: 30,
                want_ebc: ebc(1.0, 100.0, 30.0, 5.0),
            },
            Case {
                label: "stable, already scaled",
                target: 10.0,
                tbc: 100.0,
                stats: conc(50.0, 50.0),
                ready: 5,
                prep: none,
                want: 5,
                want_ebc: ebc(10.0, 100.0, 50.0, 5.0),
            },
            Case {
                label: "small scale-up rate still adds one",
                target: 1.0,
                tbc: 1982.0,
                stats: conc(3.0, 3.1),
                ready: 2,
                prep: slow_up,
                want: 3,
                want_ebc: ebc(1.0, 1982.0, 3.1, 2.0),
            },
            Case {
                label: "small scale-down rate",
                target: 10.0,
                tbc: 1982.0,
                stats: conc(1.0, 1.0),
                ready: 100,
                prep: slow_down,
                want: 90,
                want_ebc: ebc(10.0, 1982.0, 1.0, 100.0),
            },
            Case {
                label: "unreachable: no scale-down limit",
                target: 10.0,
                tbc: 1982.0,
                stats: conc(1.0, 1.0),
                ready: 100,
                prep: slow_down_unreachable,
                want: 1,
                want_ebc: ebc(10.0, 1982.0, 1.0, 100.0),
            },
            Case {
                label: "panic doubles the pod count",
                target: 10.0,
                tbc: 84.0,
                stats: conc(50.0, 100.0),
                ready: 1,
                prep: none,
                want: 10,
                want_ebc: ebc(10.0, 84.0, 100.0, 1.0),
            },
        ];
        for c in cases {
            let now = Instant::now() + Duration::from_secs(100);
            let mut a = Autoscaler::new(knative_spec(c.target, c.tbc), now);
            (c.prep)(&mut a, now);
            let d = a.decide(now, c.ready, c.stats);
            assert_eq!(d.metric_desired, c.want, "{}", c.label);
            assert_eq!(d.excess_burst_capacity, c.want_ebc, "{}", c.label);
        }
    }

    #[test]
    fn panic_starts_extends_and_ends() {
        // `TestAutoscalerUnpanicAfterSlowIncrease`.
        let start = Instant::now();
        let mut a = Autoscaler::new(knative_spec(1.0, 98.0), start);
        let d = a.decide(start, 10, conc(11.0, 25.0));
        assert_eq!((d.metric_desired, d.panic), (25, true));
        assert_eq!(is_panic_from(&a), Some(start));
        let t = start + STABLE_WINDOW / 2;
        let d = a.decide(t, 40, conc(30.0, 41.0));
        assert_eq!(d.metric_desired, 41);
        assert_eq!(
            is_panic_from(&a),
            Some(start),
            "41/40 is under 2: not extended"
        );
        let t = t + STABLE_WINDOW / 2 + TICK_INTERVAL;
        let d = a.decide(t, 55, conc(50.0, 56.0));
        assert_eq!(
            (d.metric_desired, d.panic),
            (50, false),
            "a calm stable window ends it"
        );

        // `TestAutoscalerExtendPanicWindow`.
        let mut a = Autoscaler::new(knative_spec(1.0, 98.0), start);
        a.decide(start, 10, conc(11.0, 25.0));
        let t = start + STABLE_WINDOW / 2;
        let d = a.decide(t, 40, conc(30.0, 80.0));
        assert_eq!(d.metric_desired, 80);
        assert_eq!(is_panic_from(&a), Some(t));

        // `TestAutoscalerPanicThenUnPanicScaleDown`.
        let mut a = Autoscaler::new(knative_spec(10.0, 93.0), start);
        assert_eq!(a.decide(start, 1, conc(100.0, 100.0)).metric_desired, 10);
        let p = start + Duration::from_secs(1);
        assert_eq!(a.decide(p, 10, conc(100.0, 1000.0)).metric_desired, 100);
        let d = a.decide(p + Duration::from_secs(30), 10, conc(1.0, 1.0));
        assert_eq!(
            (d.metric_desired, d.reason),
            (100, Reason::Panic),
            "no scale-down"
        );
        let d = a.decide(p + Duration::from_secs(61), 10, conc(1.0, 1.0));
        assert_eq!((d.metric_desired, d.panic), (1, false));
    }

    /// `TestAutoscalerPanicModeExponentialTrackAndStabilize`.
    #[test]
    fn panic_tracks_exponential_growth() {
        let t = Instant::now();
        let mut a = Autoscaler::new(knative_spec(1.0, 101.0), t);
        assert_eq!(a.decide(t, 1, conc(6.0, 6.0)).metric_desired, 6);
        for (ready, load) in [(6, 36.0), (36, 216.0), (216, 1296.0), (1296, 1296.0)] {
            let d = a.decide(t, ready, conc(load, load));
            assert_eq!(d.metric_desired, load as i32);
            assert_eq!(d.excess_burst_capacity, ebc(1.0, 101.0, load, ready as f64));
        }
    }

    /// `TestAutoscalerRateLimitScaleUp` / `ScaleDown`.
    #[test]
    fn rate_limits() {
        let t = Instant::now();
        let mut a = Autoscaler::new(knative_spec(10.0, 61.0), t);
        assert_eq!(a.decide(t, 1, conc(1000.0, 1001.0)).metric_desired, 10);
        assert_eq!(a.decide(t, 10, conc(1000.0, 1001.0)).metric_desired, 100);

        let mut a = Autoscaler::new(knative_spec(10.0, 61.0), t);
        assert_eq!(a.decide(t, 100, conc(1.0, 1.0)).metric_desired, 10);
        assert_eq!(a.decide(t, 10, conc(1.0, 1.0)).metric_desired, 1);
    }

    /// `TestAutoscalerActivationScale`, `TestAutoscalerStableModeNoTrafficScaleToZero`.
    #[test]
    fn activation_scale_floors_non_zero_wants() {
        let t = Instant::now();
        let mut spec = knative_spec(10.0, 75.0);
        spec.activation_scale = 2;
        let mut a = Autoscaler::new(spec, t);
        assert_eq!(a.decide(t, 1, conc(0.0, 0.0)).metric_desired, 0);
        let d = a.decide(t, 1, conc(1.0, 0.0));
        assert_eq!((d.metric_desired, d.reason), (2, Reason::ActivationScale));

        let mut a = Autoscaler::new(knative_spec(10.0, 75.0), t);
        assert_eq!(a.decide(t, 1, conc(1.0, 0.0)).metric_desired, 1);
        assert_eq!(a.decide(t, 1, conc(0.0, 0.0)).metric_desired, 0);
    }

    /// `TestStartInPanicMode`.
    #[test]
    fn resumes_in_panic_above_one_replica() {
        let t = Instant::now();
        for ready in 0..2 {
            let a = Autoscaler::resume(knative_spec(100.0, 11.0), t, ready);
            assert_eq!(a.mode(), Mode::Stable, "{ready}");
        }
        let mut a = Autoscaler::resume(knative_spec(100.0, 11.0), t, 2);
        assert!(matches!(
            a.mode(),
            Mode::Panic {
                max_replicas: 2,
                ..
            }
        ));
        // No data yet after a restart: the two replicas stay.
        assert_eq!(a.decide(t, 2, conc(0.0, 0.0)).desired, 2);
    }

    /// `TestAutoscalerScaleDownDelay*`.
    #[test]
    fn scale_down_delay_takes_the_maximum_over_its_window() {
        let now = Instant::now();
        let at = |s: u64| now + Duration::from_secs(s);
        let mut spec = knative_spec(10.0, 0.0);
        spec.panic_threshold = 100.0;
        spec.scale_down_delay = Duration::from_secs(300);
        let mut a = Autoscaler::new(spec.clone(), now);
        assert_eq!(a.decide(at(2), 0, conc(40.0, 40.0)).metric_desired, 4);
        let d = a.decide(at(300), 0, conc(0.0, 0.0));
        assert_eq!((d.metric_desired, d.reason), (4, Reason::ScaleDownDelay));
        assert_eq!(a.decide(at(302), 0, conc(0.0, 0.0)).metric_desired, 0);
        // Gradual.
        assert_eq!(a.decide(at(540), 0, conc(40.0, 40.0)).metric_desired, 4);
        assert_eq!(a.decide(at(600), 0, conc(30.0, 30.0)).metric_desired, 4);
        assert_eq!(a.decide(at(660), 0, conc(0.0, 0.0)).metric_desired, 4);
        assert_eq!(a.decide(at(840), 0, conc(0.0, 0.0)).metric_desired, 3);
        assert_eq!(a.decide(at(900), 0, conc(0.0, 0.0)).metric_desired, 0);

        // Unreachable revisions skip the delay.
        let mut a = Autoscaler::new(spec.clone(), now);
        assert_eq!(a.decide(at(2), 0, conc(40.0, 40.0)).metric_desired, 4);
        assert_eq!(a.decide(at(60), 0, conc(0.0, 0.0)).metric_desired, 4);
        a.update(Spec {
            reachable: false,
            ..spec.clone()
        });
        assert_eq!(a.decide(at(62), 0, conc(0.0, 0.0)).metric_desired, 0);

        // No delay: two decisions within one tick still scale down at once.
        spec.scale_down_delay = Duration::ZERO;
        let mut a = Autoscaler::new(spec, now);
        assert_eq!(a.decide(now, 0, conc(40.0, 40.0)).metric_desired, 4);
        let half = now + Duration::from_millis(500);
        assert_eq!(a.decide(half, 0, conc(20.0, 20.0)).metric_desired, 2);
    }

    #[test]
    fn poke_at_zero_asks_for_a_replica_at_once() {
        let t = Instant::now();
        let mut spec = knative_spec(10.0, 0.0);
        spec.initial_scale = 0;
        let mut a = Autoscaler::new(spec.clone(), t);
        assert_eq!(a.activity(), Activity::Zero { since: t });
        let d = a.decide(t, 0, Stats::default());
        assert_eq!((d.desired, d.next_tick), (0, None));
        let t1 = t + Duration::from_millis(300);
        assert!(a.poke(t1), "at zero: decide now");
        let d = a.decide(t1, 0, Stats::default());
        assert_eq!((d.desired, d.reason), (1, Reason::Poked));
        assert_eq!(d.activity, Activity::Activating { since: t1 });
        assert_eq!(d.next_tick, Some(t1 + TICK_INTERVAL));
        assert!(!a.poke(t1), "not at zero any more: the next tick will do");

        // With activation-scale, the first non-zero decision is that many.
        spec.activation_scale = 3;
        let mut a = Autoscaler::new(spec, t);
        a.poke(t1);
        let d = a.decide(t1, 0, Stats::default());
        assert_eq!((d.desired, d.reason), (3, Reason::ActivationScale));
    }

    fn default_spec() -> Spec {
        Spec::from_revision(&BTreeMap::new(), 0, &Config::default()).unwrap()
    }

    #[test]
    fn a_revision_that_never_becomes_ready_times_out_to_zero() {
        let t = Instant::now();
        let mut a = Autoscaler::new(default_spec(), t);
        let at = |s: u64| t + Duration::from_secs(s);
        let d = a.decide(at(2), 0, Stats::default());
        assert_eq!((d.desired, d.reason), (1, Reason::Activating));
        let d = a.decide(at(630), 0, Stats::default());
        assert_eq!(
            (d.desired, d.reason),
            (1, Reason::Activating),
            "not after 630 s yet"
        );
        let d = a.decide(at(632), 0, Stats::default());
        assert_eq!((d.desired, d.reason), (0, Reason::ActivationTimedOut));
        assert!(matches!(d.activity, Activity::Zero { .. }));
    }

    #[test]
    fn traffic_during_the_grace_period_reactivates() {
        let t = Instant::now();
        let at = |s: u64| t + Duration::from_secs(s);
        let mut a = Autoscaler::new(default_spec(), t);
        a.decide(at(2), 1, Stats::default());
        assert_eq!(a.activity(), Activity::Active { since: at(2) });
        let d = a.decide(at(62), 1, Stats::default());
        assert_eq!(d.activity, Activity::Idle { since: at(62) });
        assert_eq!((d.desired, d.reason), (1, Reason::GracePeriod));
        let busy = Stats {
            stable_concurrency: 5.0,
            panic_concurrency: 5.0,
            last_activity: Some(at(70)),
            ..Stats::default()
        };
        let d = a.decide(at(70), 1, busy);
        assert_eq!(d.desired, 1);
        assert_eq!(d.activity, Activity::Active { since: at(70) });
        // Quiet again: a new stable window counts from the last traffic.
        let quiet = Stats {
            last_activity: Some(at(70)),
            ..Stats::default()
        };
        let d = a.decide(at(128), 1, quiet);
        assert_eq!((d.desired, d.reason), (1, Reason::StableWindow));
        let d = a.decide(at(130), 1, quiet);
        assert_eq!(d.activity, Activity::Idle { since: at(130) });
        let d = a.decide(at(160), 1, quiet);
        assert_eq!((d.desired, d.reason), (0, Reason::ScaledToZero));
        assert_eq!(d.next_tick, None);
        // A poke after the last decision counts as activity too.
        assert!(a.poke(at(170)));
        let d = a.decide(at(170), 0, quiet);
        assert_eq!(
            (d.desired, d.activity),
            (1, Activity::Activating { since: at(170) })
        );
    }

    #[test]
    fn bounds_and_their_reasons() {
        let t = Instant::now();
        let mut spec = default_spec();
        spec.min_scale = 2;
        spec.max_scale = 4;
        spec.target = 10.0;
        let mut a = Autoscaler::new(spec.clone(), t);
        let d = a.decide(t, 1, conc(0.0, 0.0));
        assert_eq!((d.desired, d.reason), (2, Reason::MinScale));
        let d = a.decide(t, 2, conc(100.0, 10.0));
        assert_eq!(
            (d.desired, d.metric_desired, d.reason),
            (4, 10, Reason::MaxScale)
        );

        // Unreachable revisions ignore min-scale (and may drop any number of replicas).
        spec.reachable = false;
        let mut a = Autoscaler::resume(spec.clone(), t, 4);
        a.mode = Mode::Stable;
        let d = a.decide(t, 4, conc(0.0, 0.0));
        assert_eq!(d.metric_desired, 0);

        // Scale to zero disabled: one replica stays.
        let mut spec = default_spec();
        spec.enable_scale_to_zero = false;
        let mut a = Autoscaler::resume(spec, t, 1);
        let d = a.decide(t + Duration::from_secs(3600), 1, Stats::default());
        assert_eq!((d.desired, d.reason), (1, Reason::ScaleToZeroDisabled));
    }
}
