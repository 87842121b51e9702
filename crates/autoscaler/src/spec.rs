//! One revision's resolved autoscaling settings: its `autoscaling.knative.dev/*` annotations
//! over the global [`Config`], the way Knative folds them into a `DeciderSpec` and a `Metric`
//! (knative/serving `pkg/reconciler/autoscaling/kpa/resources/decider.go`,
//! `pkg/reconciler/autoscaling/resources/{target,metric}.go`,
//! `pkg/apis/autoscaling/v1alpha1/pa_lifecycle.go`).
//!
//! Annotation values are checked as Knative's webhook checks them
//! (`pkg/apis/autoscaling/annotation_validation.go`), with its messages, so a stored revision
//! that slipped past admission still yields a clear error rather than a silent default. The two
//! rules that depend on the global config (`max-scale-limit`, `allow-zero-initial-scale`) are
//! not re-checked here: the config may have changed since admission, and Knative's runtime then
//! uses the value anyway (`max-scale`) or falls back to the global default (`initial-scale`).

use std::collections::BTreeMap;
use std::time::Duration;

use wisp_api::serving::keys;

use crate::config::{
    Config, PANIC_THRESHOLD_PERCENTAGE_MAX, PANIC_THRESHOLD_PERCENTAGE_MIN,
    PANIC_WINDOW_PERCENTAGE_MAX, PANIC_WINDOW_PERCENTAGE_MIN, TARGET_MIN,
};
use wisp_api::goparse::{self, HOUR, Nanos, SECOND};

/// Knative's `config-deployment` `progress-deadline` default, used when the revision has no
/// `serving.knative.dev/progress-deadline` annotation.
pub const DEFAULT_PROGRESS_DEADLINE: Duration = Duration::from_secs(600);
/// Added to the progress deadline before a revision stuck activating is scaled back to zero
/// (`activationTimeoutBuffer` in `kpa/scaler.go`).
pub const ACTIVATION_TIMEOUT_BUFFER: Duration = Duration::from_secs(30);
/// The bucket width of the metric windows (`config.BucketSize`).
pub const BUCKET_SIZE: Duration = Duration::from_secs(1);

/// What the autoscaler scales on (`autoscaling.knative.dev/metric`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Average in-flight requests per replica (the KPA default).
    Concurrency,
    /// Requests per second per replica.
    Rps,
}

/// How a window's buckets are averaged (`autoscaling.knative.dev/metric-aggregation-algorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Aggregation {
    /// Plain mean over the window (the default).
    Linear,
    /// Exponentially weighted: recent seconds count more.
    WeightedExponential,
}

/// The per-revision settings every decision reads: Knative's `DeciderSpec` plus the metric
/// windows, scale bounds and scale-to-zero timings its KPA reconciler applies.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub metric: Metric,
    pub aggregation: Aggregation,
    /// Metric value per replica to aim for (`TargetValue`, at least 0.01).
    pub target: f64,
    /// Metric value one replica can take at most (`TotalValue`).
    pub total: f64,
    /// Spare capacity to keep for bursts: -1 = unlimited, 0 = none.
    pub target_burst_capacity: f64,
    /// Panic when the panic-window want reaches this multiple of ready replicas (2.0 = 200%).
    pub panic_threshold: f64,
    pub stable_window: Duration,
    /// `stable_window x panic-window-percentage`, rounded to a second, at least one second.
    pub panic_window: Duration,
    pub max_scale_up_rate: f64,
    pub max_scale_down_rate: f64,
    /// Scale-downs take effect only once this long has passed at the lower count.
    pub scale_down_delay: Duration,
    /// 0 = no lower bound.
    pub min_scale: i32,
    /// 0 = no upper bound.
    pub max_scale: i32,
    /// Replicas a new revision starts with (held until first reached).
    pub initial_scale: i32,
    /// Smallest non-zero scale (`activation-scale`); 0 or 1 = unset.
    pub activation_scale: i32,
    pub enable_scale_to_zero: bool,
    /// Idle time, after the stable window, before the last replica goes.
    pub scale_to_zero_grace_period: Duration,
    /// Minimum time the last replica is kept once the revision is idle.
    pub scale_to_zero_pod_retention_period: Duration,
    /// A revision that wants replicas but has none ready for this long is scaled back to zero
    /// (progress deadline + 30 s).
    pub activation_timeout: Duration,
    /// Whether a route sends traffic here (Knative's `Reachability`). Unreachable revisions
    /// ignore min-scale, initial-scale, retention and the scale-down limits. `from_revision`
    /// sets `true`; the caller clears it for revisions no route references.
    pub reachable: bool,
}

/// A refused annotation: which one, and Knative's message (`invalid value: ...: <key>`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct SpecError {
    /// The annotation key (or `containerConcurrency`, or the config key it came from).
    pub key: String,
    pub message: String,
}

fn invalid(v: &str, key: &str) -> SpecError {
    SpecError {
        key: key.to_string(),
        message: format!("invalid value: {v}: {key}"),
    }
}

fn out_of_bounds(v: &str, lo: &str, hi: &str, key: &str) -> SpecError {
    SpecError {
        key: key.to_string(),
        message: format!("expected {lo} <= {v} <= {hi}: {key}"),
    }
}

fn generic(msg: impl std::fmt::Display, key: &str) -> SpecError {
    SpecError {
        key: key.to_string(),
        message: format!("{msg}: {key}"),
    }
}

const GROUP: &str = "autoscaling.knative.dev/";

/// The annotations, looked up like `kmap.KeyPriority`: the current key, then legacy spellings.
struct Annotations<'a>(&'a BTreeMap<String, String>);

impl<'a> Annotations<'a> {
    /// `(key found, value)` for the first present key of `names` (`min-scale`, `minScale`).
    fn get(&self, names: &[&str]) -> Option<(String, &'a str)> {
        names.iter().find_map(|n| {
            let k = if n.contains('/') {
                (*n).to_string()
            } else {
                format!("{GROUP}{n}")
            };
            self.0.get(&k).map(|v| (k, v.as_str()))
        })
    }

    fn float(&self, names: &[&str]) -> Result<Option<(String, &'a str, f64)>, SpecError> {
        match self.get(names) {
            None => Ok(None),
            Some((k, v)) => match goparse::parse_float(v) {
                Ok(f) => Ok(Some((k, v, f))),
                Err(_) => Err(invalid(v, &k)),
            },
        }
    }

    /// A float within `[lo, hi]`, reported as Knative's `ErrOutOfBoundsValue`.
    fn bounded(&self, names: &[&str], lo: f64, hi: f64) -> Result<Option<f64>, SpecError> {
        match self.float(names)? {
            Some((k, v, f)) if f < lo || f > hi => Err(out_of_bounds(
                v,
                &goparse::format_float(lo),
                &goparse::format_float(hi),
                &k,
            )),
            other => Ok(other.map(|(_, _, f)| f)),
        }
    }

    fn duration(&self, names: &[&str]) -> Result<Option<(String, &'a str, Nanos)>, SpecError> {
        match self.get(names) {
            None => Ok(None),
            Some((k, v)) => match goparse::parse_duration(v) {
                Ok(d) => Ok(Some((k, v, d))),
                Err(_) => Err(invalid(v, &k)),
            },
        }
    }

    /// `getIntGE0`: an int32 that must not be negative (0 when absent).
    fn int_ge0(&self, names: &[&str]) -> Result<Option<i32>, SpecError> {
        let Some((k, v)) = self.get(names) else {
            return Ok(None);
        };
        let bounds = || out_of_bounds(v, "0", "2147483647", &k);
        match goparse::parse_i32(v) {
            Ok(i) if i < 0 => Err(bounds()),
            Ok(i) => Ok(Some(i)),
            Err(e) if e.ends_with("value out of range") => Err(bounds()),
            Err(_) => Err(invalid(v, &k)),
        }
    }
}

const MIN_SCALE: &[&str] = &[keys::MIN_SCALE_ANNOTATION, "minScale"];
const MAX_SCALE: &[&str] = &[keys::MAX_SCALE_ANNOTATION, "maxScale"];
const INITIAL_SCALE: &[&str] = &[keys::INITIAL_SCALE_ANNOTATION, "initialScale"];
const ACTIVATION_SCALE: &[&str] = &[keys::ACTIVATION_SCALE_ANNOTATION];
const TARGET: &[&str] = &[keys::TARGET_ANNOTATION];
const METRIC: &[&str] = &[keys::METRIC_ANNOTATION];
const CLASS: &[&str] = &[keys::CLASS_ANNOTATION];
const WINDOW: &[&str] = &[keys::WINDOW_ANNOTATION];
const ALGORITHM: &[&str] = &[
    keys::METRIC_AGGREGATION_ALGORITHM_ANNOTATION,
    "metricAggregationAlgorithm",
];
const PANIC_WINDOW: &[&str] = &[
    keys::PANIC_WINDOW_PERCENTAGE_ANNOTATION,
    "panicWindowPercentage",
];
const PANIC_THRESHOLD: &[&str] = &[
    keys::PANIC_THRESHOLD_PERCENTAGE_ANNOTATION,
    "panicThresholdPercentage",
];
const UTILIZATION: &[&str] = &[
    keys::TARGET_UTILIZATION_PERCENTAGE_ANNOTATION,
    "targetUtilizationPercentage",
];
const BURST: &[&str] = &[
    keys::TARGET_BURST_CAPACITY_ANNOTATION,
    "targetBurstCapacity",
];
const SCALE_DOWN_DELAY: &[&str] = &[keys::SCALE_DOWN_DELAY_ANNOTATION, "scaleDownDelay"];
const RETENTION: &[&str] = &[
    keys::SCALE_TO_ZERO_POD_RETENTION_PERIOD_ANNOTATION,
    "scaleToZeroPodRetentionPeriod",
];
const PROGRESS_DEADLINE: &[&str] = &[keys::PROGRESS_DEADLINE_ANNOTATION];

impl Spec {
    /// Resolves a revision's settings from its annotations (the revision template's), its
    /// `containerConcurrency` (0 = unlimited) and the global config.
    pub fn from_revision(
        annotations: &BTreeMap<String, String>,
        container_concurrency: i64,
        cfg: &Config,
    ) -> Result<Spec, SpecError> {
        let a = Annotations(annotations);
        if container_concurrency < 0 {
            return Err(SpecError {
                key: "containerConcurrency".to_string(),
                message: format!(
                    "expected 0 <= {container_concurrency} <= 1000: containerConcurrency"
                ),
            });
        }

        // Class: wisp implements the KPA only.
        match a.get(CLASS) {
            Some((_, v)) if v != keys::KPA_CLASS => {
                return Err(generic(
                    format!(
                        "wisp implements only the {} class, not {v}",
                        keys::KPA_CLASS
                    ),
                    keys::CLASS_ANNOTATION,
                ));
            }
            None if cfg.pod_autoscaler_class != keys::KPA_CLASS => {
                return Err(SpecError {
                    key: "pod-autoscaler-class".to_string(),
                    message: format!(
                        "wisp implements only the {} class, not {}: pod-autoscaler-class",
                        keys::KPA_CLASS,
                        cfg.pod_autoscaler_class
                    ),
                });
            }
            _ => {}
        }

        // Metric: `validateMetric` for the KPA class.
        let metric = match a.get(METRIC) {
            None | Some((_, "concurrency")) => Metric::Concurrency,
            Some((_, "rps")) => Metric::Rps,
            Some((_, v)) => return Err(invalid(v, keys::METRIC_ANNOTATION)),
        };

        // `validateAlgorithm`, normalised as `Metric.AggregationAlgorithm()` does.
        let aggregation = match a.get(ALGORITHM) {
            None | Some((_, "" | "linear")) => Aggregation::Linear,
            Some((_, "weighted-exponential" | "weightedExponential")) => {
                Aggregation::WeightedExponential
            }
            Some((k, v)) => return Err(invalid(v, &k)),
        };

        // `validateFloats`.
        let panic_window_pct = a.bounded(
            PANIC_WINDOW,
            PANIC_WINDOW_PERCENTAGE_MIN,
            PANIC_WINDOW_PERCENTAGE_MAX,
        )?;
        let panic_threshold_pct = a.bounded(
            PANIC_THRESHOLD,
            PANIC_THRESHOLD_PERCENTAGE_MIN,
            PANIC_THRESHOLD_PERCENTAGE_MAX,
        )?;
        let target_annotation = match a.float(TARGET)? {
            Some((k, v, f)) if f < TARGET_MIN => {
                return Err(generic(
                    format!(
                        "target {v} should be at least {}",
                        goparse::format_float(TARGET_MIN)
                    ),
                    &k,
                ));
            }
            other => other.map(|(_, _, f)| f),
        };
        let utilization_pct = a.bounded(UTILIZATION, 1.0, 100.0)?;
        let burst = match a.float(BURST)? {
            Some((k, v, f)) if f < 0.0 && f != -1.0 => return Err(invalid(v, &k)),
            other => other.map(|(_, _, f)| f),
        };

        // `validateWindow`, `validateLastPodRetention`, `validateScaleDownDelay`.
        let window = match a.duration(WINDOW)? {
            Some((k, v, d)) if !(6 * SECOND..=HOUR).contains(&d) => {
                return Err(out_of_bounds(v, "6s", "1h0m0s", &k));
            }
            Some((k, _, d)) if d % SECOND != 0 => {
                return Err(generic(
                    "must be specified with at most second precision",
                    &k,
                ));
            }
            other => other.map(|(_, _, d)| d),
        };
        let retention = match a.duration(RETENTION)? {
            Some((k, v, d)) if !(0..=HOUR).contains(&d) => {
                return Err(out_of_bounds(v, "0s", "1h0m0s", &k));
            }
            other => other.map(|(_, _, d)| d),
        };
        let scale_down_delay = match a.duration(SCALE_DOWN_DELAY)? {
            Some((k, v, d)) if !(0..=HOUR).contains(&d) => {
                return Err(out_of_bounds(v, "0s", "1h0m0s", &k));
            }
            Some((k, _, d)) if goparse::round_to_second(d) != d => {
                return Err(generic(
                    "must be specified with at most second precision",
                    &k,
                ));
            }
            other => other.map(|(_, _, d)| d),
        };

        // `validateMinMaxScale`: on the annotation values alone (0 when absent).
        let min_annotation = a.int_ge0(MIN_SCALE)?;
        let max_annotation = a.int_ge0(MAX_SCALE)?;
        let (amin, amax) = (min_annotation.unwrap_or(0), max_annotation.unwrap_or(0));
        if amax != 0 && amax < amin {
            return Err(SpecError {
                key: keys::MAX_SCALE_ANNOTATION.to_string(),
                message: format!(
                    "max-scale={amax} is less than min-scale={amin}: {}, {}",
                    keys::MAX_SCALE_ANNOTATION,
                    keys::MIN_SCALE_ANNOTATION
                ),
            });
        }
        let activation_scale = match a.get(ACTIVATION_SCALE) {
            None => 0,
            Some((k, v)) => {
                let n = goparse::parse_i32(v).map_err(|_| invalid(v, &k))?;
                if amin > n {
                    return Err(generic(
                        format!("min-scale={amin} is greater than activation-scale={n}"),
                        &k,
                    ));
                }
                if amax < n && amax != 0 {
                    return Err(generic(
                        format!("max-scale={amax} is less than activation-scale={n}"),
                        &k,
                    ));
                }
                if n < 2 {
                    return Err(generic(
                        format!("activation-scale={n} must be greater than 1"),
                        &k,
                    ));
                }
                n
            }
        };

        // `validateInitialScale` (syntax and sign), then `GetInitialScale`.
        let initial_scale = match a.get(INITIAL_SCALE) {
            None => cfg.initial_scale,
            Some((k, v)) => match goparse::parse_i32(v) {
                Err(_) => return Err(invalid(v, &k)),
                Ok(n) if n < 0 => return Err(invalid(v, &format!("{k} must be greater than 0"))),
                Ok(0) if !cfg.allow_zero_initial_scale => cfg.initial_scale,
                Ok(n) => n,
            },
        };

        let progress_deadline = match a.duration(PROGRESS_DEADLINE)? {
            Some((k, v, d)) if d <= 0 => return Err(invalid(v, &k)),
            Some((_, _, d)) => goparse::to_std(d),
            None => DEFAULT_PROGRESS_DEADLINE,
        };

        // `ResolveMetricTarget`.
        let cc = container_concurrency as f64;
        let (mut total, mut utilization) = match metric {
            Metric::Rps => (
                cfg.requests_per_second_target_default,
                crate::config::DEFAULT_TARGET_UTILIZATION,
            ),
            Metric::Concurrency if cc == 0.0 => (
                cfg.container_concurrency_target_default,
                cfg.container_concurrency_target_fraction,
            ),
            Metric::Concurrency => (cc, cfg.container_concurrency_target_fraction),
        };
        if let Some(t) = target_annotation {
            // Never aim above what containerConcurrency lets one replica take.
            total = if metric == Metric::Concurrency && cc != 0.0 {
                t.min(cc)
            } else {
                t
            };
        }
        if let Some(u) = utilization_pct {
            utilization = u / 100.0;
        }
        let target = TARGET_MIN.max(total * utilization);

        // `StableWindow` and `MakeMetric`'s panic window.
        let stable = window.unwrap_or_else(|| goparse::from_std(cfg.stable_window));
        let pct = panic_window_pct.unwrap_or(cfg.panic_window_percentage);
        let panic = goparse::round_to_second((stable as f64 * pct / 100.0) as Nanos).max(SECOND);

        Ok(Spec {
            metric,
            aggregation,
            target,
            total,
            target_burst_capacity: burst.unwrap_or(cfg.target_burst_capacity),
            panic_threshold: panic_threshold_pct.unwrap_or(cfg.panic_threshold_percentage) / 100.0,
            stable_window: goparse::to_std(stable),
            panic_window: goparse::to_std(panic),
            max_scale_up_rate: cfg.max_scale_up_rate,
            max_scale_down_rate: cfg.max_scale_down_rate,
            scale_down_delay: scale_down_delay
                .map(goparse::to_std)
                .unwrap_or(cfg.scale_down_delay),
            min_scale: min_annotation.unwrap_or(cfg.min_scale),
            max_scale: max_annotation.unwrap_or(cfg.max_scale),
            initial_scale,
            activation_scale,
            enable_scale_to_zero: cfg.enable_scale_to_zero,
            scale_to_zero_grace_period: cfg.scale_to_zero_grace_period,
            scale_to_zero_pod_retention_period: retention
                .map(goparse::to_std)
                .unwrap_or(cfg.scale_to_zero_pod_retention_period),
            activation_timeout: progress_deadline + ACTIVATION_TIMEOUT_BUFFER,
            reachable: true,
        })
    }

    /// `(min, max)` as Knative's `ScaleBounds`: min-scale counts only for reachable revisions.
    pub(crate) fn scale_bounds(&self) -> (i32, i32) {
        let min = if self.reachable { self.min_scale } else { 0 };
        (min, self.max_scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Name, annotations, containerConcurrency, target, total.
    type TargetCase<'a> = (&'a str, &'a [(&'a str, &'a str)], i64, f64, f64);
    /// Annotations, containerConcurrency, message.
    type RefusalCase<'a> = (Vec<(String, &'a str)>, i64, String);

    fn spec(pairs: &[(&str, &str)], cc: i64) -> Result<Spec, SpecError> {
        Spec::from_revision(&ann(pairs), cc, &Config::default())
    }

    #[test]
    fn defaults() {
        let s = spec(&[], 0).unwrap();
        assert_eq!(s.metric, Metric::Concurrency);
        assert_eq!(s.aggregation, Aggregation::Linear);
        assert_eq!(s.total, 100.0);
        assert!((s.target - 70.0).abs() < 1e-9);
        assert_eq!(s.stable_window, Duration::from_secs(60));
        assert_eq!(s.panic_window, Duration::from_secs(6));
        assert_eq!(s.panic_threshold, 2.0);
        assert_eq!(s.target_burst_capacity, 211.0);
        assert_eq!((s.min_scale, s.max_scale, s.initial_scale), (0, 0, 1));
        assert_eq!(s.activation_scale, 0);
        assert_eq!(s.scale_to_zero_grace_period, Duration::from_secs(30));
        assert_eq!(s.activation_timeout, Duration::from_secs(630));
        assert!(s.reachable && s.enable_scale_to_zero);
    }

    /// `ResolveMetricTarget`, table-driven like Knative's `target_test.go`.
    #[test]
    fn target_resolution() {
        let cases: &[TargetCase] = &[
            ("default: 100 x 0.7", &[], 0, 70.0, 100.0),
            ("containerConcurrency x 0.7", &[], 10, 7.0, 10.0),
            (
                "target annotation",
                &[(keys::TARGET_ANNOTATION, "10")],
                0,
                7.0,
                10.0,
            ),
            (
                "target capped by containerConcurrency",
                &[(keys::TARGET_ANNOTATION, "50")],
                10,
                7.0,
                10.0,
            ),
            (
                "target below containerConcurrency",
                &[(keys::TARGET_ANNOTATION, "5")],
                10,
                3.5,
                5.0,
            ),
            (
                "utilization",
                &[
                    (keys::TARGET_ANNOTATION, "10"),
                    (keys::TARGET_UTILIZATION_PERCENTAGE_ANNOTATION, "100"),
                ],
                0,
                10.0,
                10.0,
            ),
            (
                "legacy utilization key",
                &[("autoscaling.knative.dev/targetUtilizationPercentage", "50")],
                20,
                10.0,
                20.0,
            ),
            (
                "rps default: 200 x 0.7",
                &[(keys::METRIC_ANNOTATION, "rps")],
                10,
                140.0,
                200.0,
            ),
            (
                "rps target is not capped by containerConcurrency",
                &[
                    (keys::METRIC_ANNOTATION, "rps"),
                    (keys::TARGET_ANNOTATION, "50"),
                ],
                10,
                35.0,
                50.0,
            ),
            (
                "target floor 0.01",
                &[
                    (keys::TARGET_ANNOTATION, "0.01"),
                    (keys::TARGET_UTILIZATION_PERCENTAGE_ANNOTATION, "1"),
                ],
                0,
                0.01,
                0.01,
            ),
        ];
        for (name, pairs, cc, target, total) in cases {
            let s = spec(pairs, *cc).unwrap();
            assert!(
                (s.target - target).abs() < 1e-9,
                "{name}: target {}",
                s.target
            );
            assert!((s.total - total).abs() < 1e-9, "{name}: total {}", s.total);
        }
    }

    #[test]
    fn annotations_override_config() {
        let s = spec(
            &[
                (keys::MIN_SCALE_ANNOTATION, "2"),
                (keys::MAX_SCALE_ANNOTATION, "8"),
                (keys::INITIAL_SCALE_ANNOTATION, "3"),
                (keys::ACTIVATION_SCALE_ANNOTATION, "4"),
                (keys::WINDOW_ANNOTATION, "120s"),
                (keys::PANIC_WINDOW_PERCENTAGE_ANNOTATION, "5.5"),
                (keys::PANIC_THRESHOLD_PERCENTAGE_ANNOTATION, "150"),
                (keys::TARGET_BURST_CAPACITY_ANNOTATION, "-1"),
                (keys::SCALE_DOWN_DELAY_ANNOTATION, "15s"),
                (keys::SCALE_TO_ZERO_POD_RETENTION_PERIOD_ANNOTATION, "1m"),
                (
                    keys::METRIC_AGGREGATION_ALGORITHM_ANNOTATION,
                    "weightedExponential",
                ),
                (keys::PROGRESS_DEADLINE_ANNOTATION, "20s"),
            ],
            0,
        )
        .unwrap();
        assert_eq!((s.min_scale, s.max_scale, s.initial_scale), (2, 8, 3));
        assert_eq!(s.activation_scale, 4);
        assert_eq!(s.stable_window, Duration::from_secs(120));
        // 120 s x 5.5% = 6.6 s, rounded to 7 s.
        assert_eq!(s.panic_window, Duration::from_secs(7));
        assert_eq!(s.panic_threshold, 1.5);
        assert_eq!(s.target_burst_capacity, -1.0);
        assert_eq!(s.scale_down_delay, Duration::from_secs(15));
        assert_eq!(
            s.scale_to_zero_pod_retention_period,
            Duration::from_secs(60)
        );
        assert_eq!(s.aggregation, Aggregation::WeightedExponential);
        assert_eq!(s.activation_timeout, Duration::from_secs(50));

        // Legacy camelCase keys still work; the new spelling wins when both are present.
        let s = spec(
            &[
                ("autoscaling.knative.dev/minScale", "1"),
                ("autoscaling.knative.dev/maxScale", "3"),
                (keys::MAX_SCALE_ANNOTATION, "4"),
            ],
            0,
        )
        .unwrap();
        assert_eq!((s.min_scale, s.max_scale), (1, 4));

        // Panic window never under one bucket.
        let s = spec(
            &[
                (keys::WINDOW_ANNOTATION, "6s"),
                (keys::PANIC_WINDOW_PERCENTAGE_ANNOTATION, "1"),
            ],
            0,
        )
        .unwrap();
        assert_eq!(s.panic_window, Duration::from_secs(1));
    }

    #[test]
    fn config_defaults_flow_through() {
        let cfg = Config {
            min_scale: 1,
            max_scale: 9,
            initial_scale: 2,
            scale_down_delay: Duration::from_secs(30),
            container_concurrency_target_default: 10.0,
            container_concurrency_target_fraction: 1.0,
            ..Config::default()
        };
        let s = Spec::from_revision(&BTreeMap::new(), 0, &cfg).unwrap();
        assert_eq!((s.min_scale, s.max_scale, s.initial_scale), (1, 9, 2));
        assert_eq!(s.scale_down_delay, Duration::from_secs(30));
        assert_eq!(s.target, 10.0);
    }

    #[test]
    fn initial_scale_zero_needs_the_cluster_to_allow_it() {
        let zero = ann(&[(keys::INITIAL_SCALE_ANNOTATION, "0")]);
        let s = Spec::from_revision(&zero, 0, &Config::default()).unwrap();
        assert_eq!(
            s.initial_scale, 1,
            "GetInitialScale falls back to the config"
        );
        let cfg = Config {
            allow_zero_initial_scale: true,
            ..Config::default()
        };
        assert_eq!(
            Spec::from_revision(&zero, 0, &cfg).unwrap().initial_scale,
            0
        );
    }

    #[test]
    fn refuses_like_the_webhook() {
        let k = |s: &str| format!("autoscaling.knative.dev/{s}");
        let cases: Vec<RefusalCase> = vec![
            (
                vec![(k("metric"), "cpu")],
                0,
                format!("invalid value: cpu: {}", k("metric")),
            ),
            (
                vec![(k("class"), keys::HPA_CLASS)],
                0,
                format!(
                    "wisp implements only the kpa.autoscaling.knative.dev class, not {}: {}",
                    keys::HPA_CLASS,
                    k("class")
                ),
            ),
            (
                vec![(k("target"), "abc")],
                0,
                format!("invalid value: abc: {}", k("target")),
            ),
            (
                vec![(k("target"), "0.001")],
                0,
                format!("target 0.001 should be at least 0.01: {}", k("target")),
            ),
            (
                vec![(k("target-utilization-percentage"), "101")],
                0,
                format!(
                    "expected 1 <= 101 <= 100: {}",
                    k("target-utilization-percentage")
                ),
            ),
            (
                vec![(k("panic-threshold-percentage"), "100")],
                0,
                format!(
                    "expected 110 <= 100 <= 1000: {}",
                    k("panic-threshold-percentage")
                ),
            ),
            (
                vec![(k("panicWindowPercentage"), "0")],
                0,
                format!("expected 1 <= 0 <= 100: {}", k("panicWindowPercentage")),
            ),
            (
                vec![(k("target-burst-capacity"), "-2")],
                0,
                format!("invalid value: -2: {}", k("target-burst-capacity")),
            ),
            (
                vec![(k("window"), "5s")],
                0,
                format!("expected 6s <= 5s <= 1h0m0s: {}", k("window")),
            ),
            (
                vec![(k("window"), "6500ms")],
                0,
                format!(
                    "must be specified with at most second precision: {}",
                    k("window")
                ),
            ),
            (
                vec![(k("scale-down-delay"), "2h")],
                0,
                format!("expected 0s <= 2h <= 1h0m0s: {}", k("scale-down-delay")),
            ),
            (
                vec![(k("scale-to-zero-pod-retention-period"), "soon")],
                0,
                format!(
                    "invalid value: soon: {}",
                    k("scale-to-zero-pod-retention-period")
                ),
            ),
            (
                vec![(k("min-scale"), "-1")],
                0,
                format!("expected 0 <= -1 <= 2147483647: {}", k("min-scale")),
            ),
            (
                vec![(k("max-scale"), "x")],
                0,
                format!("invalid value: x: {}", k("max-scale")),
            ),
            (
                vec![(k("min-scale"), "3"), (k("max-scale"), "2")],
                0,
                format!(
                    "max-scale=2 is less than min-scale=3: {}, {}",
                    k("max-scale"),
                    k("min-scale")
                ),
            ),
            (
                vec![(k("activation-scale"), "1")],
                0,
                format!(
                    "activation-scale=1 must be greater than 1: {}",
                    k("activation-scale")
                ),
            ),
            (
                vec![(k("activation-scale"), "2"), (k("min-scale"), "3")],
                0,
                format!(
                    "min-scale=3 is greater than activation-scale=2: {}",
                    k("activation-scale")
                ),
            ),
            (
                vec![(k("activation-scale"), "5"), (k("max-scale"), "3")],
                0,
                format!(
                    "max-scale=3 is less than activation-scale=5: {}",
                    k("activation-scale")
                ),
            ),
            (
                vec![(k("initial-scale"), "-1")],
                0,
                format!(
                    "invalid value: -1: {} must be greater than 0",
                    k("initial-scale")
                ),
            ),
            (
                vec![(k("metric-aggregation-algorithm"), "median")],
                0,
                format!(
                    "invalid value: median: {}",
                    k("metric-aggregation-algorithm")
                ),
            ),
            (
                vec![],
                -1,
                "expected 0 <= -1 <= 1000: containerConcurrency".to_string(),
            ),
        ];
        for (pairs, cc, want) in cases {
            let m: BTreeMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect();
            let got = Spec::from_revision(&m, cc, &Config::default());
            assert_eq!(got.map_err(|e| e.message), Err(want.clone()), "{pairs:?}");
        }
    }
}
