//! Probes: what to check ([`ProbeAction`], resolved from a Kubernetes [`Probe`]) and when a
//! replica counts as started, ready or alive ([`ProbeTracker`]). Pure: the I/O of one attempt
//! lives in [`crate::prober`], and the loop that joins the two takes time from tokio's clock.
//!
//! Semantics follow the kubelet's prober worker (`pkg/kubelet/prober/worker.go`) and Knative:
//! - the first attempt comes after `initialDelaySeconds`, then one every `periodSeconds`
//!   (default 10 s); each attempt times out after `timeoutSeconds` (default 1 s);
//! - the state flips only after `successThreshold` consecutive successes (default 1) or
//!   `failureThreshold` consecutive failures (default 3);
//! - readiness starts "not ready", liveness starts "alive", a startup probe starts unknown and
//!   stops once it has succeeded;
//! - a readiness probe with `periodSeconds: 0` (Knative's default, and the implicit TCP probe of
//!   a container without one) is probed aggressively until it first passes. Knative's
//!   queue-proxy probes every 50 ms with a 100 ms timeout; wisp starts faster: every 1 ms for
//!   the first 100 ms (a small app binds its port within a few ms, and a refused connect on
//!   loopback costs microseconds), every 10 ms up to 1 s, then every 50 ms. Once ready it is
//!   probed every second with a 1 s timeout. An `exec` probe is never run more often than
//!   every 50 ms (each attempt spawns a process).

use std::time::Duration;

use wisp_api::core::{Container, IntOrString, Probe};

use crate::RuntimeError;

/// Which probe of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Startup,
    Readiness,
    Liveness,
}

impl std::fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Liveness => "Liveness",
        })
    }
}

/// One check, with every address resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeAction {
    /// Success when a TCP connection opens.
    Tcp { host: String, port: u16 },
    /// Success on a 2xx or 3xx answer to a GET.
    Http {
        host: String,
        port: u16,
        path: String,
        headers: Vec<(String, String)>,
    },
    /// Success when the command exits 0. Runs with the replica's environment and working
    /// directory (the analogue of `exec` inside the container).
    Exec { command: Vec<String> },
}

/// When and how strictly to probe (a Kubernetes probe's numbers, with defaults applied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeTiming {
    pub initial_delay: Duration,
    /// `None`: Knative's aggressive probing (readiness with `periodSeconds: 0`).
    pub period: Option<Duration>,
    /// `None`: not set; 100 ms while aggressive, else 1 s.
    pub timeout: Option<Duration>,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

/// A probe ready to run: what and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    pub kind: ProbeKind,
    pub action: ProbeAction,
    pub timing: ProbeTiming,
    /// `terminationGracePeriodSeconds` of a liveness or startup probe: the grace period when
    /// this probe's failure kills the replica (else the replica's own).
    pub termination_grace: Option<Duration>,
}

/// The probes of one replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSet {
    pub startup: Option<ProbeSpec>,
    /// Always present: a container without a readiness probe gets Knative's default, a TCP
    /// connect to its port, probed aggressively.
    pub readiness: ProbeSpec,
    pub liveness: Option<ProbeSpec>,
}

const DEFAULT_PERIOD: Duration = Duration::from_secs(10);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
const AGGRESSIVE_TIMEOUT: Duration = Duration::from_millis(100);
/// The period of an aggressive readiness probe once it has passed (Knative's kubelet probe).
const AGGRESSIVE_STEADY_PERIOD: Duration = Duration::from_secs(1);

fn secs(v: i32) -> Duration {
    Duration::from_secs(u64::try_from(v).unwrap_or(0))
}

fn threshold(v: i32, default: u32) -> u32 {
    u32::try_from(v).ok().filter(|v| *v > 0).unwrap_or(default)
}

impl ProbeTiming {
    /// Kubernetes' defaults applied to a probe's numbers. A readiness probe with
    /// `periodSeconds: 0` is aggressive; other kinds default to 10 s.
    pub fn from_probe(kind: ProbeKind, p: &Probe) -> Self {
        let period = match (kind, p.period_seconds) {
            (ProbeKind::Readiness, v) if v <= 0 => None,
            (_, v) if v <= 0 => Some(DEFAULT_PERIOD),
            (_, v) => Some(secs(v)),
        };
        ProbeTiming {
            initial_delay: secs(p.initial_delay_seconds),
            period,
            timeout: (p.timeout_seconds > 0).then(|| secs(p.timeout_seconds)),
            success_threshold: threshold(p.success_threshold, 1),
            failure_threshold: threshold(p.failure_threshold, 3),
        }
    }

    /// Knative's implicit readiness probe: aggressive, default thresholds.
    pub fn aggressive() -> Self {
        ProbeTiming {
            initial_delay: Duration::ZERO,
            period: None,
            timeout: None,
            success_threshold: 1,
            failure_threshold: 3,
        }
    }
}

/// Resolves the probes of a container serving on `port` (the port wisp assigned; a probe
/// naming the declared `containerPort`, its name, or no port at all is pointed at it).
pub fn resolve_probes(container: &Container, port: u16) -> Result<ProbeSet, RuntimeError> {
    let resolve = |kind: ProbeKind, p: &Option<Probe>| -> Result<Option<ProbeSpec>, RuntimeError> {
        let Some(p) = p else { return Ok(None) };
        Ok(Some(ProbeSpec {
            kind,
            action: resolve_action(kind, p, container, port)?,
            timing: ProbeTiming::from_probe(kind, p),
            termination_grace: p
                .termination_grace_period_seconds
                .and_then(|v| u64::try_from(v).ok())
                .map(Duration::from_secs),
        }))
    };
    let readiness =
        resolve(ProbeKind::Readiness, &container.readiness_probe)?.unwrap_or(ProbeSpec {
            kind: ProbeKind::Readiness,
            action: ProbeAction::Tcp {
                host: "127.0.0.1".to_string(),
                port,
            },
            timing: ProbeTiming::aggressive(),
            termination_grace: None,
        });
    Ok(ProbeSet {
        startup: resolve(ProbeKind::Startup, &container.startup_probe)?,
        readiness,
        liveness: resolve(ProbeKind::Liveness, &container.liveness_probe)?,
    })
}

fn resolve_action(
    kind: ProbeKind,
    p: &Probe,
    container: &Container,
    port: u16,
) -> Result<ProbeAction, RuntimeError> {
    let invalid = |msg: String| RuntimeError::InvalidSpec(format!("{kind} probe: {msg}"));
    let host = |h: &str| {
        if h.is_empty() {
            "127.0.0.1".to_string()
        } else {
            h.to_string()
        }
    };
    let port_of = |p: &IntOrString| -> Result<u16, RuntimeError> {
        let declared = container.ports.first();
        match p {
            IntOrString::Int(0) => Ok(port),
            IntOrString::Int(n) if declared.is_some_and(|d| d.container_port == *n) => Ok(port),
            IntOrString::Int(n) => {
                u16::try_from(*n).map_err(|_| invalid(format!("port {n} is out of range")))
            }
            IntOrString::String(s) if s.is_empty() => Ok(port),
            IntOrString::String(s)
                if declared.is_some_and(|d| d.name == *s)
                    || ["http", "http1", "h2c"].contains(&s.as_str()) =>
            {
                Ok(port)
            }
            IntOrString::String(s) => Err(invalid(format!("unknown port name {s:?}"))),
        }
    };
    if let Some(h) = &p.http_get {
        if !h.scheme.is_empty() && !h.scheme.eq_ignore_ascii_case("http") {
            return Err(invalid(format!("scheme {} is not supported", h.scheme)));
        }
        let path = if h.path.is_empty() {
            "/".to_string()
        } else if h.path.starts_with('/') {
            h.path.clone()
        } else {
            format!("/{}", h.path)
        };
        return Ok(ProbeAction::Http {
            host: host(&h.host),
            port: port_of(&h.port)?,
            path,
            headers: h
                .http_headers
                .iter()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect(),
        });
    }
    if let Some(t) = &p.tcp_socket {
        return Ok(ProbeAction::Tcp {
            host: host(&t.host),
            port: port_of(&t.port)?,
        });
    }
    if let Some(e) = &p.exec {
        if e.command.is_empty() {
            return Err(invalid("exec.command is empty".to_string()));
        }
        return Ok(ProbeAction::Exec {
            command: e.command.clone(),
        });
    }
    if p.grpc.is_some() {
        return Err(invalid("gRPC probes are not supported yet".to_string()));
    }
    // No handler (Knative allows a readiness probe with only timings): the serving port.
    Ok(ProbeAction::Tcp {
        host: "127.0.0.1".to_string(),
        port,
    })
}

/// A change of a probe's state, reported once per flip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Started / ready / (still) alive.
    Pass,
    /// Not ready / dead / failed to start.
    Fail,
}

/// The pure state of one probe: consecutive results, the current verdict and the schedule.
#[derive(Debug, Clone)]
pub struct ProbeTracker {
    kind: ProbeKind,
    timing: ProbeTiming,
    state: Option<Verdict>,
    /// Consecutive results equal to `last`.
    run: u32,
    last: Option<bool>,
    /// Whether the probe has passed at least once (ends aggressive probing).
    passed_once: bool,
}

impl ProbeTracker {
    pub fn new(kind: ProbeKind, timing: ProbeTiming) -> Self {
        let state = match kind {
            ProbeKind::Readiness => Some(Verdict::Fail),
            ProbeKind::Liveness => Some(Verdict::Pass),
            ProbeKind::Startup => None,
        };
        ProbeTracker {
            kind,
            timing,
            state,
            run: 0,
            last: None,
            passed_once: false,
        }
    }

    /// The current verdict (`None`: a startup probe that has not decided yet).
    pub fn state(&self) -> Option<Verdict> {
        self.state
    }

    /// Whether the aggressive schedule applies right now.
    fn aggressive(&self) -> bool {
        self.timing.period.is_none() && !self.passed_once
    }

    /// Delay from the probe loop's start to the first attempt.
    pub fn first_delay(&self) -> Duration {
        self.timing.initial_delay
    }

    /// Delay from the start of the attempt made `elapsed` after the loop began to the next one.
    pub fn next_delay(&self, elapsed: Duration) -> Duration {
        match self.timing.period {
            Some(p) => p,
            None if self.passed_once => AGGRESSIVE_STEADY_PERIOD,
            None if elapsed < Duration::from_millis(100) => Duration::from_millis(1),
            None if elapsed < Duration::from_secs(1) => Duration::from_millis(10),
            None => Duration::from_millis(50),
        }
    }

    /// How long one attempt may take.
    pub fn attempt_timeout(&self) -> Duration {
        match self.timing.timeout {
            Some(t) => t,
            None if self.aggressive() => AGGRESSIVE_TIMEOUT,
            None => DEFAULT_TIMEOUT,
        }
    }

    /// Records one attempt; returns the new verdict when the state flips.
    pub fn record(&mut self, ok: bool) -> Option<Verdict> {
        if self.last == Some(ok) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(ok);
            self.run = 1;
        }
        let (wanted, needed) = if ok {
            (Verdict::Pass, self.timing.success_threshold)
        } else {
            (Verdict::Fail, self.timing.failure_threshold)
        };
        if self.state == Some(wanted) || self.run < needed {
            return None;
        }
        // A startup probe decides once; readiness and liveness flip back and forth.
        if self.kind == ProbeKind::Startup && self.state.is_some() {
            return None;
        }
        self.state = Some(wanted);
        if wanted == Verdict::Pass {
            self.passed_once = true;
        }
        Some(wanted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wisp_api::core::{ContainerPort, ExecAction, HttpGetAction, TcpSocketAction};

    /// Runs a tracker over simulated time: `result(t)` is the outcome of an attempt at `t`.
    /// Returns the verdicts with the time of the attempt that caused them.
    fn simulate(
        kind: ProbeKind,
        timing: ProbeTiming,
        horizon: Duration,
        result: impl Fn(Duration) -> bool,
    ) -> Vec<(Duration, Verdict)> {
        let mut t = ProbeTracker::new(kind, timing);
        let mut now = t.first_delay();
        let mut out = Vec::new();
        while now <= horizon {
            if let Some(v) = t.record(result(now)) {
                out.push((now, v));
            }
            now += t.next_delay(now);
        }
        out
    }

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn aggressive_readiness_passes_within_a_millisecond_of_listening() {
        // The app listens 7.5 ms after start: the first attempt after that passes.
        let got = simulate(
            ProbeKind::Readiness,
            ProbeTiming::aggressive(),
            ms(5000),
            |t| t >= Duration::from_micros(7500),
        );
        assert_eq!(got, vec![(ms(8), Verdict::Pass)]);
    }

    #[test]
    fn aggressive_schedule_backs_off_then_steadies() {
        let t = ProbeTracker::new(ProbeKind::Readiness, ProbeTiming::aggressive());
        assert_eq!(t.first_delay(), Duration::ZERO);
        assert_eq!(t.next_delay(ms(0)), ms(1));
        assert_eq!(t.next_delay(ms(99)), ms(1));
        assert_eq!(t.next_delay(ms(100)), ms(10));
        assert_eq!(t.next_delay(ms(1000)), ms(50));
        assert_eq!(t.next_delay(ms(60_000)), ms(50));
        assert_eq!(t.attempt_timeout(), ms(100));
        let mut t = t;
        assert_eq!(t.record(true), Some(Verdict::Pass));
        assert_eq!(t.next_delay(ms(5)), ms(1000));
        assert_eq!(t.attempt_timeout(), ms(1000));
    }

    #[test]
    fn slow_start_is_caught_within_50ms() {
        let got = simulate(
            ProbeKind::Readiness,
            ProbeTiming::aggressive(),
            ms(20_000),
            |t| t >= ms(3_333),
        );
        let (at, v) = got[0];
        assert_eq!(v, Verdict::Pass);
        assert!(at >= ms(3_333) && at < ms(3_333 + 50), "{at:?}");
    }

    #[test]
    fn readiness_flips_after_thresholds() {
        let timing = ProbeTiming {
            initial_delay: ms(2000),
            period: Some(ms(1000)),
            timeout: None,
            success_threshold: 2,
            failure_threshold: 3,
        };
        // Healthy from 0 to 10 s, sick from 10 s to 20 s, healthy after.
        let got = simulate(ProbeKind::Readiness, timing, ms(30_000), |t| {
            t < ms(10_000) || t >= ms(20_000)
        });
        assert_eq!(
            got,
            vec![
                (ms(3000), Verdict::Pass),  // 2 successes: 2 s and 3 s
                (ms(12000), Verdict::Fail), // 3 failures: 10, 11, 12 s
                (ms(21000), Verdict::Pass), // 2 successes: 20, 21 s
            ]
        );
    }

    #[test]
    fn flapping_under_the_threshold_changes_nothing() {
        let timing = ProbeTiming::from_probe(
            ProbeKind::Liveness,
            &Probe {
                period_seconds: 1,
                ..Probe::default()
            },
        );
        // Fails 2 of every 3 attempts: never 3 in a row.
        let got = simulate(ProbeKind::Liveness, timing, ms(60_000), |t| {
            (t.as_secs() % 3) == 0
        });
        assert_eq!(got, vec![]);
    }

    #[test]
    fn liveness_fails_after_failure_threshold() {
        let timing = ProbeTiming::from_probe(ProbeKind::Liveness, &Probe::default());
        assert_eq!(timing.period, Some(ms(10_000)));
        let got = simulate(ProbeKind::Liveness, timing, ms(100_000), |t| t < ms(25_000));
        assert_eq!(got, vec![(ms(50_000), Verdict::Fail)]);
    }

    #[test]
    fn startup_decides_once() {
        let timing = ProbeTiming::from_probe(
            ProbeKind::Startup,
            &Probe {
                period_seconds: 1,
                failure_threshold: 5,
                ..Probe::default()
            },
        );
        let got = simulate(ProbeKind::Startup, timing, ms(20_000), |t| {
            (ms(3000)..ms(4000)).contains(&t)
        });
        assert_eq!(got, vec![(ms(3000), Verdict::Pass)]);
        let got = simulate(ProbeKind::Startup, timing, ms(20_000), |_| false);
        assert_eq!(got, vec![(ms(4000), Verdict::Fail)]);
    }

    #[test]
    fn defaults_follow_kubernetes() {
        let t = ProbeTiming::from_probe(ProbeKind::Readiness, &Probe::default());
        assert_eq!(t, ProbeTiming::aggressive());
        let t = ProbeTiming::from_probe(
            ProbeKind::Liveness,
            &Probe {
                initial_delay_seconds: 5,
                timeout_seconds: 2,
                period_seconds: 0,
                success_threshold: 0,
                failure_threshold: -1,
                ..Probe::default()
            },
        );
        assert_eq!(
            t,
            ProbeTiming {
                initial_delay: ms(5000),
                period: Some(ms(10_000)),
                timeout: Some(ms(2000)),
                success_threshold: 1,
                failure_threshold: 3,
            }
        );
    }

    #[test]
    fn resolves_ports_to_the_assigned_one() {
        let container = Container {
            ports: vec![ContainerPort {
                name: "http1".into(),
                container_port: 8080,
                ..ContainerPort::default()
            }],
            readiness_probe: Some(Probe {
                http_get: Some(HttpGetAction {
                    path: "healthz".into(),
                    port: IntOrString::Int(8080),
                    ..HttpGetAction::default()
                }),
                ..Probe::default()
            }),
            liveness_probe: Some(Probe {
                tcp_socket: Some(TcpSocketAction {
                    port: IntOrString::Int(9999),
                    host: "::1".into(),
                }),
                ..Probe::default()
            }),
            startup_probe: Some(Probe {
                exec: Some(ExecAction {
                    command: vec!["true".into()],
                }),
                ..Probe::default()
            }),
            ..Container::default()
        };
        let set = resolve_probes(&container, 40123).expect("valid probes");
        assert_eq!(
            set.readiness.action,
            ProbeAction::Http {
                host: "127.0.0.1".into(),
                port: 40123,
                path: "/healthz".into(),
                headers: vec![],
            }
        );
        assert_eq!(
            set.liveness.map(|p| p.action),
            Some(ProbeAction::Tcp {
                host: "::1".into(),
                port: 9999
            })
        );
        assert_eq!(
            set.startup.map(|p| p.action),
            Some(ProbeAction::Exec {
                command: vec!["true".into()]
            })
        );
        // No readiness probe: Knative's default TCP probe on the port, aggressive.
        let set = resolve_probes(&Container::default(), 5).expect("valid");
        assert_eq!(
            set.readiness,
            ProbeSpec {
                kind: ProbeKind::Readiness,
                action: ProbeAction::Tcp {
                    host: "127.0.0.1".into(),
                    port: 5
                },
                timing: ProbeTiming::aggressive(),
                termination_grace: None,
            }
        );
    }

    #[test]
    fn refuses_what_cannot_run() {
        for probe in [
            Probe {
                http_get: Some(HttpGetAction {
                    scheme: "HTTPS".into(),
                    ..HttpGetAction::default()
                }),
                ..Probe::default()
            },
            Probe {
                tcp_socket: Some(TcpSocketAction {
                    port: IntOrString::String("metrics".into()),
                    ..TcpSocketAction::default()
                }),
                ..Probe::default()
            },
            Probe {
                exec: Some(ExecAction { command: vec![] }),
                ..Probe::default()
            },
        ] {
            let c = Container {
                liveness_probe: Some(probe),
                ..Container::default()
            };
            assert!(resolve_probes(&c, 1).is_err());
        }
    }
}
