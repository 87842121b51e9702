//! Load shapes replayed on simulated time through the public API, as the daemon will wire it:
//! the gateway reports every 250 ms (`Collector::observe`) and pokes at zero replicas, a tick
//! decides every 2 s, and a fake runtime starts replicas after a start-up delay and stops them
//! at once. No sleeps: minutes of load run in microseconds.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use wisp_api::serving::keys;
use wisp_autoscaler::{
    Activity, Autoscaler, Collector, Config, Decision, Reason, Spec, TICK_INTERVAL,
};

const STEP_MS: u64 = 250;

/// One decision as the simulation saw it.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Seconds since the start.
    t: f64,
    ready: i32,
    d: Decision,
}

struct Sim {
    t0: Instant,
    ms: u64,
    collector: Collector,
    autoscaler: Autoscaler,
    /// When each running replica is (or was) ready, in ms since the start.
    replicas: Vec<u64>,
    startup_ms: u64,
    /// In-flight requests at a given second (concurrency the gateway sees).
    concurrency: Box<dyn Fn(f64) -> f64>,
    /// Arrivals per second at a given second.
    rps: Box<dyn Fn(f64) -> f64>,
    log: Vec<Entry>,
}

fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Sim {
    fn new(spec: Spec, startup: Duration, concurrency: impl Fn(f64) -> f64 + 'static) -> Sim {
        let t0 = Instant::now();
        let initial = spec.initial_scale.max(0) as usize;
        Sim {
            t0,
            ms: 0,
            collector: Collector::new(&spec, t0),
            autoscaler: Autoscaler::new(spec, t0),
            replicas: vec![startup.as_millis() as u64; initial],
            startup_ms: startup.as_millis() as u64,
            concurrency: Box::new(concurrency),
            rps: Box::new(|_| 0.0),
            log: Vec::new(),
        }
    }

    fn with_rps(mut self, rps: impl Fn(f64) -> f64 + 'static) -> Sim {
        self.rps = Box::new(rps);
        self
    }

    fn from_annotations(
        pairs: &[(&str, &str)],
        cc: i64,
        cfg: &Config,
        startup: Duration,
        load: impl Fn(f64) -> f64 + 'static,
    ) -> Sim {
        let spec = Spec::from_revision(&annotations(pairs), cc, cfg).unwrap();
        Sim::new(spec, startup, load)
    }

    fn now(&self) -> Instant {
        self.t0 + Duration::from_millis(self.ms)
    }

    fn ready(&self) -> i32 {
        self.replicas.iter().filter(|&&r| r <= self.ms).count() as i32
    }

    fn decide(&mut self) {
        let now = self.now();
        let ready = self.ready();
        let stats = self.collector.stats(now, ready);
        let d = self.autoscaler.decide(now, ready, stats);
        // The fake runtime: start the missing replicas, stop the newest extra ones.
        let want = d.desired.max(0) as usize;
        while self.replicas.len() < want {
            self.replicas.push(self.ms + self.startup_ms);
        }
        self.replicas.sort_unstable();
        self.replicas.truncate(want);
        self.log.push(Entry {
            t: self.ms as f64 / 1000.0,
            ready,
            d,
        });
    }

    /// Runs until `secs` since the start.
    fn run_until(&mut self, secs: f64) {
        while (self.ms as f64) < secs * 1000.0 {
            self.ms += STEP_MS;
            if self.ms.is_multiple_of(TICK_INTERVAL.as_millis() as u64) {
                self.decide();
            }
            // The gateway's report for the quarter second that just ended.
            let t = (self.ms - STEP_MS) as f64 / 1000.0;
            let dt = STEP_MS as f64 / 1000.0;
            let (c, r) = ((self.concurrency)(t), (self.rps)(t));
            let now = self.now();
            self.collector.observe(now, c * dt, r * dt);
            // Requests held with no replica ready: poke; decide at once if at zero.
            if (c > 0.0 || r > 0.0) && self.ready() == 0 && self.autoscaler.poke(now) {
                self.decide();
            }
        }
    }

    #[allow(dead_code)]
    fn dump(&self, from: f64, to: f64) {
        for e in self.between(from, to) {
            eprintln!(
                "t={:>7.2} ready={:>3} desired={:>3} metric={:>3} panic={} stable={:.3} panic_avg={:.3} {:?} {:?}",
                e.t,
                e.ready,
                e.d.desired,
                e.d.metric_desired,
                e.d.panic,
                e.d.stable_avg,
                e.d.panic_avg,
                e.d.reason,
                e.d.activity
            );
        }
    }

    fn between(&self, from: f64, to: f64) -> impl Iterator<Item = &Entry> {
        self.log.iter().filter(move |e| e.t >= from && e.t <= to)
    }

    fn first(&self, from: f64, pred: impl Fn(&Entry) -> bool) -> Option<Entry> {
        self.log.iter().copied().find(|e| e.t >= from && pred(e))
    }

    fn last(&self) -> Entry {
        *self.log.last().unwrap()
    }

    /// Every decision respects Knative's per-decision scale-up limit.
    fn assert_scale_up_rate(&self, rate: f64) {
        for e in &self.log {
            let limit = (rate * f64::from(e.ready.max(1))).ceil() as i32;
            if e.d.reason != Reason::InitialScale && e.d.reason != Reason::MinScale {
                assert!(
                    e.d.metric_desired <= limit,
                    "t={} wants {} with {} ready: over the x{rate} limit",
                    e.t,
                    e.d.metric_desired,
                    e.ready
                );
            }
        }
    }
}

fn step_at(at: f64, before: f64, after: f64) -> impl Fn(f64) -> f64 {
    move |t| if t < at { before } else { after }
}

/// Load between `from` and `to`, zero outside.
fn pulse(from: f64, to: f64, level: f64) -> impl Fn(f64) -> f64 {
    move |t| if t >= from && t < to { level } else { 0.0 }
}

const TARGET_10: &[(&str, &str)] = &[
    (keys::TARGET_ANNOTATION, "10"),
    (keys::TARGET_UTILIZATION_PERCENTAGE_ANNOTATION, "100"),
];

// ------------------------------------------------------------------ burst

/// The performance goal: 200 concurrent clients on a revision with target 10 reach at least
/// 18 replicas within 4 s, through panic mode, with 2 s ticks and 1 s buckets.
#[test]
fn burst_of_200_reaches_18_replicas_within_4s_at_a_warm_revision() {
    for (name, ann) in [
        (
            "target 10 (x 0.7 utilization)",
            &[(keys::TARGET_ANNOTATION, "10")][..],
        ),
        ("target 10 at 100% utilization", TARGET_10),
    ] {
        // A revision serving one client steadily, then 200 at t=100.
        let mut sim = Sim::from_annotations(
            ann,
            0,
            &Config::default(),
            Duration::from_secs(1),
            step_at(100.0, 1.0, 200.0),
        );
        sim.run_until(130.0);
        let hit = sim
            .first(100.0, |e| e.d.desired >= 18)
            .unwrap_or_else(|| panic!("{name}: never reached 18"));
        // The goal's figure holds with Knative's default utilization (target 7 per replica);
        // at 100% utilization the panic window needs one more tick.
        let deadline = if ann.len() == 2 { 106.0 } else { 104.0 };
        assert!(hit.t <= deadline, "{name}: 18 replicas only at t={}", hit.t);
        assert!(hit.d.panic, "{name}: reached through panic mode");
        let settled = sim.last().d.desired;
        let want = if ann.len() == 2 { 20 } else { 29 };
        assert_eq!(settled, want, "{name}: 200 / target");
        sim.assert_scale_up_rate(1000.0);
        // While panicking, decisions never go down.
        let panic_run: Vec<i32> = sim
            .between(100.0, 130.0)
            .filter(|e| e.d.panic)
            .map(|e| e.d.desired)
            .collect();
        assert!(panic_run.windows(2).all(|w| w[1] >= w[0]), "{panic_run:?}");
    }
}

#[test]
fn burst_of_200_at_zero_replicas_pokes_and_scales_within_4s() {
    let mut sim = Sim::from_annotations(
        &[(keys::TARGET_ANNOTATION, "10")],
        0,
        &Config::default(),
        Duration::from_secs(1),
        pulse(200.0, 260.0, 200.0),
    );
    sim.run_until(199.0);
    assert!(matches!(sim.last().d.activity, Activity::Zero { .. }));
    assert_eq!(
        sim.last().d.next_tick,
        None,
        "nothing to do at zero until a poke"
    );
    sim.run_until(230.0);
    // The gateway's first report of held requests pokes: a decision at once, between ticks,
    // on windows that hold only the burst so far (partial windows after the long idle):
    // a quarter second of 200 in flight reads as 50, 8 replicas. Knative's activator would
    // have reported a concurrency of 1 here, for 1 replica.
    let poke = sim.first(200.0, |e| e.d.desired > 0).unwrap();
    assert_eq!(poke.t, 200.25);
    assert_eq!(poke.d.desired, 8);
    assert!(poke.d.panic);
    let hit = sim.first(200.0, |e| e.d.desired >= 18).unwrap();
    assert!(hit.t <= 204.0, "18 replicas only at t={}", hit.t);
    assert_eq!(sim.last().d.desired, 29);
    sim.assert_scale_up_rate(1000.0);
}

#[test]
fn scale_up_rate_limits_each_decision() {
    let cfg = Config::from_map(&annotations(&[("max-scale-up-rate", "2")])).unwrap();
    let mut sim = Sim::from_annotations(
        TARGET_10,
        0,
        &cfg,
        Duration::ZERO,
        step_at(100.0, 1.0, 200.0),
    );
    sim.run_until(140.0);
    sim.assert_scale_up_rate(2.0);
    let path: Vec<i32> = sim.between(100.0, 112.0).map(|e| e.d.desired).collect();
    // Doubling per tick from one replica: 1 -> 2 -> 4 -> 8 -> 16 -> 20.
    assert_eq!(path, vec![1, 2, 4, 8, 16, 20, 20], "{path:?}");
}

// ------------------------------------------------------------------ step

#[test]
fn step_to_100_concurrent_gives_10_replicas_fast_in_panic_slow_in_stable() {
    // Panic mode (the default threshold, 200%).
    let mut sim = Sim::from_annotations(
        TARGET_10,
        0,
        &Config::default(),
        Duration::from_secs(1),
        step_at(120.0, 1.0, 100.0),
    );
    sim.run_until(300.0);
    let fast = sim.first(120.0, |e| e.d.desired >= 10).unwrap();
    // Ticks at 122, 124, 126 see 1, 2 and 3 s of the step in the 5 finished seconds of the
    // panic window: 4, 8, then 10 replicas.
    assert!(fast.t <= 126.0, "panic: 10 replicas at t={}", fast.t);
    assert!(fast.d.panic);
    assert_eq!(sim.last().d.desired, 10);
    assert!(!sim.last().d.panic, "calm again after a stable window");

    // With panic made impossible, only the stable window's average moves the scale: 10
    // replicas once the step fills (nearly) the whole window.
    let cfg = Config {
        panic_threshold_percentage: 1e9,
        ..Config::default()
    };
    let mut sim = Sim::from_annotations(
        TARGET_10,
        0,
        &cfg,
        Duration::from_secs(1),
        step_at(120.0, 1.0, 100.0),
    );
    sim.run_until(300.0);
    assert!(sim.log.iter().all(|e| !e.d.panic));
    let slow = sim.first(120.0, |e| e.d.desired >= 10).unwrap();
    assert!(
        (170.0..=182.0).contains(&slow.t),
        "stable: 10 replicas at t={}",
        slow.t
    );
    // The stable average climbs linearly: the scale never goes down on the way.
    let path: Vec<i32> = sim.between(120.0, 200.0).map(|e| e.d.desired).collect();
    assert!(path.windows(2).all(|w| w[1] >= w[0]), "{path:?}");
    assert_eq!(sim.last().d.desired, 10);
}

// ------------------------------------------------------------------ ramp

#[test]
fn ramp_is_tracked_without_flapping() {
    // 0 -> 100 concurrent over 200 s, then flat.
    let ramp = |t: f64| (t / 2.0).clamp(0.0, 100.0);
    let mut sim = Sim::from_annotations(
        TARGET_10,
        0,
        &Config::default(),
        Duration::from_secs(1),
        ramp,
    );
    sim.run_until(320.0);
    let path: Vec<(f64, i32)> = sim
        .between(10.0, 320.0)
        .map(|e| (e.t, e.d.desired))
        .collect();
    // The stable window lags a linear ramp by half a window (30 s = 15 concurrent): never
    // more than 2 replicas behind, and never ahead of the load. (Early on, 2 wanted where 1
    // is ready is a panic; when it ends a calm minute later, the scale drops back to the
    // lagging stable want while the load still grows: Knative does exactly this.)
    for &(t, desired) in &path {
        let need = (ramp(t) / 10.0).ceil() as i32;
        assert!(desired <= need.max(1), "t={t}: {desired} > {need}");
        assert!(desired + 2 >= need, "t={t}: {desired} lags {need}");
    }
    assert_eq!(sim.last().d.desired, 10);
    let after_ramp: Vec<i32> = sim.between(200.0, 320.0).map(|e| e.d.desired).collect();
    assert!(
        after_ramp.windows(2).all(|w| w[1] >= w[0]),
        "{after_ramp:?}"
    );
}

// ------------------------------------------------------------------ idle

#[test]
fn idle_goes_to_zero_after_stable_window_and_grace_not_before() {
    // 50 concurrent until t=100, then nothing.
    let mut sim = Sim::from_annotations(
        TARGET_10,
        0,
        &Config::default(),
        Duration::from_secs(1),
        pulse(0.0, 100.0, 50.0),
    );
    sim.run_until(400.0);
    let zero = sim.first(100.0, |e| e.d.desired == 0).unwrap();
    assert_eq!(zero.t, 100.0 + 60.0 + 30.0, "stable window, then grace");
    assert_eq!(zero.d.reason, Reason::ScaledToZero);
    for e in sim.between(100.0, zero.t - 0.1) {
        assert!(e.d.desired >= 1, "t={}: zero too early", e.t);
    }
    // The idle phase starts when the stable window has seen nothing, and lasts the grace.
    let idle = sim
        .first(100.0, |e| matches!(e.d.activity, Activity::Idle { .. }))
        .unwrap();
    assert_eq!(idle.t, 160.0);
    assert_eq!(idle.d.reason, Reason::GracePeriod);
    // Scaled down gradually before that (max-scale-down-rate 2 per tick), to one replica.
    assert_eq!(
        sim.first(100.0, |e| e.d.desired == 1).map(|e| e.t < 160.0),
        Some(true)
    );
    assert!(sim.between(zero.t, 400.0).all(|e| e.d.desired == 0));
}

#[test]
fn idle_variants() {
    struct Case {
        name: &'static str,
        cfg: &'static [(&'static str, &'static str)],
        ann: &'static [(&'static str, &'static str)],
        /// Seconds after the load stops when the scale first reaches zero (None = never).
        zero_after: Option<f64>,
        /// The lowest scale seen after the load stopped.
        floor: i32,
    }
    let cases = [
        Case {
            name: "defaults",
            cfg: &[],
            ann: &[],
            zero_after: Some(90.0),
            floor: 0,
        },
        Case {
            name: "min-scale keeps replicas",
            cfg: &[],
            ann: &[(keys::MIN_SCALE_ANNOTATION, "2")],
            zero_after: None,
            floor: 2,
        },
        Case {
            name: "global min-scale",
            cfg: &[("min-scale", "1")],
            ann: &[],
            zero_after: None,
            floor: 1,
        },
        Case {
            name: "scale to zero disabled",
            cfg: &[("enable-scale-to-zero", "false")],
            ann: &[],
            zero_after: None,
            floor: 1,
        },
        Case {
            name: "longer grace period",
            cfg: &[("scale-to-zero-grace-period", "45s")],
            ann: &[],
            // Idle at 160; 205 is between ticks.
            zero_after: Some(106.0),
            floor: 0,
        },
        Case {
            name: "retention longer than grace",
            cfg: &[],
            ann: &[(keys::SCALE_TO_ZERO_POD_RETENTION_PERIOD_ANNOTATION, "1m")],
            zero_after: Some(120.0),
            floor: 0,
        },
        Case {
            name: "shorter stable window",
            cfg: &[],
            ann: &[(keys::WINDOW_ANNOTATION, "20s")],
            zero_after: Some(50.0),
            floor: 0,
        },
        Case {
            // Each halving (5 -> 2 -> 1 -> 0, max-scale-down-rate 2 of the replicas the delay
            // keeps ready) is recorded in the delay window and held for its 2 minutes; then
            // idle, then the grace period. Knative's decider staircases the same way.
            name: "scale-down-delay holds every step down",
            cfg: &[],
            ann: &[(keys::SCALE_DOWN_DELAY_ANNOTATION, "2m")],
            zero_after: Some(412.0),
            floor: 0,
        },
    ];
    for c in cases {
        let cfg = Config::from_map(&annotations(c.cfg)).unwrap();
        let mut ann = TARGET_10.to_vec();
        ann.extend_from_slice(c.ann);
        let mut sim = Sim::from_annotations(&ann, 0, &cfg, Duration::ZERO, pulse(0.0, 100.0, 50.0));
        sim.run_until(600.0);
        let zero = sim.first(100.0, |e| e.d.desired == 0).map(|e| e.t - 100.0);
        assert_eq!(zero, c.zero_after, "{}", c.name);
        let floor = sim.between(100.0, 600.0).map(|e| e.d.desired).min();
        assert_eq!(floor, Some(c.floor), "{}", c.name);
    }
}

#[test]
fn scale_down_delay_holds_a_lower_load() {
    // 50 concurrent (5 replicas), then 10 (1 replica) from t=100. A 6 s stable window makes
    // the decider's own scale-down quick, so the delay's effect stands out.
    let run = |delay: Option<&'static str>| {
        let mut ann = TARGET_10.to_vec();
        ann.push((keys::WINDOW_ANNOTATION, "6s"));
        if let Some(d) = delay {
            ann.push((keys::SCALE_DOWN_DELAY_ANNOTATION, d));
        }
        let mut sim = Sim::from_annotations(
            &ann,
            0,
            &Config::default(),
            Duration::ZERO,
            step_at(100.0, 50.0, 10.0),
        );
        sim.run_until(300.0);
        sim
    };
    let plain = run(None);
    let first_down = plain.first(100.0, |e| e.d.desired < 5).unwrap().t;
    assert!(first_down <= 106.0, "t={first_down}");
    assert_eq!(plain.last().d.desired, 1);

    let delayed = run(Some("30s"));
    let held_until = delayed.first(100.0, |e| e.d.desired < 5).unwrap().t;
    for e in delayed.between(100.0, held_until - 0.1) {
        assert_eq!(e.d.desired, 5, "t={}", e.t);
    }
    // The last 5 was wanted one tick before `first_down`; 30 s later it leaves the window.
    assert_eq!(held_until, first_down - 2.0 + 30.0);
    assert_eq!(delayed.last().d.desired, 1);
}

// ------------------------------------------------------------------ rps

#[test]
fn rps_metric_scales_on_request_rate() {
    // 100 requests/s of 50 ms each: concurrency 5. Target 20 rps per replica.
    let ann = [
        (keys::METRIC_ANNOTATION, "rps"),
        (keys::TARGET_ANNOTATION, "20"),
        (keys::TARGET_UTILIZATION_PERCENTAGE_ANNOTATION, "100"),
    ];
    let mut sim =
        Sim::from_annotations(&ann, 0, &Config::default(), Duration::from_secs(1), |_| 5.0)
            .with_rps(|_| 100.0);
    sim.run_until(120.0);
    assert_eq!(sim.last().d.desired, 5, "100 rps / 20");
    assert!((sim.last().d.stable_avg - 100.0).abs() < 1e-6);

    // The same traffic under the concurrency metric, target 10: one replica.
    let mut sim = Sim::from_annotations(TARGET_10, 0, &Config::default(), Duration::ZERO, |_| 5.0)
        .with_rps(|_| 100.0);
    sim.run_until(120.0);
    assert_eq!(sim.last().d.desired, 1);
}

// ------------------------------------------------------------------ targets

#[test]
fn targets_from_annotation_container_concurrency_and_utilization() {
    /// Name, annotations, containerConcurrency, load, replicas.
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], i64, f64, i32);
    let cases: &[Case] = &[
        ("default target 100 x 0.7 = 70", &[], 0, 700.0, 10),
        ("containerConcurrency 10 x 0.7 = 7", &[], 10, 70.0, 10),
        (
            "target 50 capped by containerConcurrency 5: 3.5",
            &[(keys::TARGET_ANNOTATION, "50")],
            5,
            35.0,
            10,
        ),
        (
            "utilization 50% of containerConcurrency 10: 5",
            &[(keys::TARGET_UTILIZATION_PERCENTAGE_ANNOTATION, "50")],
            10,
            50.0,
            10,
        ),
    ];
    for (name, ann, cc, load, want) in cases {
        let load = *load;
        let mut sim = Sim::from_annotations(
            ann,
            *cc,
            &Config::default(),
            Duration::from_secs(1),
            move |_| load,
        );
        sim.run_until(120.0);
        assert_eq!(sim.last().d.desired, *want, "{name}");
    }
}

// ------------------------------------------------------------------ initial & activation scale

#[test]
fn initial_scale_is_held_until_reached() {
    let ann = [(keys::INITIAL_SCALE_ANNOTATION, "3")];
    let mut sim =
        Sim::from_annotations(&ann, 0, &Config::default(), Duration::from_secs(5), |_| 0.0);
    sim.run_until(200.0);
    for e in sim.between(0.0, 5.0) {
        assert_eq!(
            (e.d.desired, e.d.reason),
            (3, Reason::InitialScale),
            "t={}",
            e.t
        );
    }
    // Reached at t=5; with no traffic the scale then drops (one replica stays for the stable
    // window since activation) and goes to zero after the grace period.
    // The tick at 6 marks it reached (Knative marks the scale target initialized after
    // applying that decision's bounds), the next one may go down.
    let after = sim.first(5.0, |e| e.d.desired < 3).unwrap();
    assert_eq!((after.t, after.d.desired), (8.0, 1));
    // Active since 6; one replica stays for the stable window, then the grace period.
    let zero = sim.first(5.0, |e| e.d.desired == 0).unwrap();
    assert_eq!(zero.t, 6.0 + 60.0 + 30.0);
}

#[test]
fn initial_scale_zero_starts_at_zero_when_allowed() {
    let cfg = Config::from_map(&annotations(&[("allow-zero-initial-scale", "true")])).unwrap();
    let ann = [(keys::INITIAL_SCALE_ANNOTATION, "0")];
    let mut sim = Sim::from_annotations(
        &ann,
        0,
        &cfg,
        Duration::from_secs(1),
        pulse(10.0, 20.0, 5.0),
    );
    sim.run_until(9.0);
    assert!(sim.log.iter().all(|e| e.d.desired == 0));
    sim.run_until(30.0);
    assert_eq!(sim.first(0.0, |e| e.d.desired > 0).unwrap().t, 10.25);
}

#[test]
fn activation_scale_is_the_smallest_non_zero_scale() {
    let mut ann = TARGET_10.to_vec();
    ann.push((keys::ACTIVATION_SCALE_ANNOTATION, "3"));
    // Light traffic (one replica's worth) from t=200, after the revision went to zero.
    let mut sim = Sim::from_annotations(
        &ann,
        0,
        &Config::default(),
        Duration::from_secs(1),
        pulse(200.0, 300.0, 2.0),
    );
    sim.run_until(500.0);
    let wake = sim.first(200.0, |e| e.d.desired > 0).unwrap();
    assert_eq!(wake.d.desired, 3, "activation-scale on the poke");
    for e in sim.between(wake.t, 300.0) {
        assert_eq!(e.d.desired, 3, "t={}: floored at activation-scale", e.t);
    }
    // It does not keep the revision from going to zero: at 360 the stable window is empty
    // and the 3 replicas halve to 1, at 362 zero is wanted and the revision idles, 30 s later
    // it is at zero.
    let zero = sim.first(300.0, |e| e.d.desired == 0).unwrap();
    assert_eq!(zero.t, 300.0 + 60.0 + 2.0 + 30.0);
}

// ------------------------------------------------------------------ decisions say what's next

#[test]
fn decisions_say_when_to_look_again() {
    let mut sim = Sim::from_annotations(
        TARGET_10,
        0,
        &Config::default(),
        Duration::ZERO,
        pulse(0.0, 10.0, 10.0),
    );
    sim.run_until(200.0);
    for e in &sim.log {
        let next =
            e.d.next_tick
                .map(|n| n.duration_since(sim.t0).as_secs_f64());
        if e.d.desired == 0 {
            assert_eq!(next, None, "t={}", e.t);
        } else {
            assert_eq!(next, Some(e.t + TICK_INTERVAL.as_secs_f64()), "t={}", e.t);
        }
    }
}
