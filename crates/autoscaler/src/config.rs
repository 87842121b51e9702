//! Global autoscaling defaults: Knative's `config-autoscaler` ConfigMap
//! (knative/serving `pkg/autoscaler/config/config.go`, `config/autoscalerconfig/`), with the same
//! keys, defaults, parsing and validation messages.
//!
//! wisp has no ConfigMaps: the daemon reads these keys from its config file or from flags named
//! after them, merges them into one string map (see [`Config::to_map`] and [`KEYS`]) and calls
//! [`Config::from_map`], exactly as Knative parses the ConfigMap's `data`. Unknown keys are
//! ignored, as Knative does (ConfigMaps carry `_example` blocks).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use wisp_api::serving::keys;

use wisp_api::goparse::{self, HOUR, Nanos, SECOND};

/// Smallest target value per replica (`autoscaling.TargetMin`).
pub const TARGET_MIN: f64 = 0.01;
/// Smallest stable window (`autoscaling.WindowMin`).
pub const WINDOW_MIN: Duration = Duration::from_secs(6);
/// Largest stable window, scale-down delay and retention period (`autoscaling.WindowMax`).
pub const WINDOW_MAX: Duration = Duration::from_secs(3600);
/// Panic window bounds, in percent of the stable window.
pub const PANIC_WINDOW_PERCENTAGE_MIN: f64 = 1.0;
pub const PANIC_WINDOW_PERCENTAGE_MAX: f64 = 100.0;
/// Panic threshold bounds for the annotation, in percent.
pub const PANIC_THRESHOLD_PERCENTAGE_MIN: f64 = 110.0;
pub const PANIC_THRESHOLD_PERCENTAGE_MAX: f64 = 1000.0;
/// Target utilization for metrics other than concurrency (`defaultTargetUtilization`): not a
/// ConfigMap key in Knative, only the annotation overrides it.
pub const DEFAULT_TARGET_UTILIZATION: f64 = 0.7;

/// Every `config-autoscaler` key Knative reads, in its order. Flags and config-file keys use
/// these names.
pub const KEYS: &[&str] = &[
    "pod-autoscaler-class",
    "enable-scale-to-zero",
    "allow-zero-initial-scale",
    "max-scale-up-rate",
    "max-scale-down-rate",
    "container-concurrency-target-percentage",
    "container-concurrency-target-default",
    "requests-per-second-target-default",
    "target-burst-capacity",
    "panic-window-percentage",
    "activator-capacity",
    "panic-threshold-percentage",
    "initial-scale",
    "min-scale",
    "max-scale",
    "max-scale-limit",
    "stable-window",
    "scale-down-delay",
    "scale-to-zero-grace-period",
    "scale-to-zero-pod-retention-period",
];

/// `config-autoscaler`, parsed and validated. `Config::default()` is Knative's defaults.
///
/// Serialized as the ConfigMap's `data` would be (every value a string, keys as in [`KEYS`]);
/// deserialized from such a map, with plain YAML/JSON numbers and booleans also accepted, and
/// validated like [`Config::from_map`].
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `pod-autoscaler-class`: class of revisions without the class annotation.
    pub pod_autoscaler_class: String,
    /// `enable-scale-to-zero`.
    pub enable_scale_to_zero: bool,
    /// `allow-zero-initial-scale`.
    pub allow_zero_initial_scale: bool,
    /// `max-scale-up-rate`: at most `ceil(rate x ready)` replicas per decision.
    pub max_scale_up_rate: f64,
    /// `max-scale-down-rate`: at least `floor(ready / rate)` replicas per decision.
    pub max_scale_down_rate: f64,
    /// `container-concurrency-target-percentage`, kept as a fraction (70 -> 0.7) as Knative does;
    /// values in (0, 1] are read as fractions already (legacy).
    pub container_concurrency_target_fraction: f64,
    /// `container-concurrency-target-default`: total concurrency per replica when
    /// containerConcurrency is 0.
    pub container_concurrency_target_default: f64,
    /// `requests-per-second-target-default`.
    pub requests_per_second_target_default: f64,
    /// `target-burst-capacity`: -1 = unlimited, 0 = none.
    pub target_burst_capacity: f64,
    /// `panic-window-percentage` of the stable window.
    pub panic_window_percentage: f64,
    /// `activator-capacity`: kept for fidelity; wisp's gateway has no activator subsetting.
    pub activator_capacity: f64,
    /// `panic-threshold-percentage`.
    pub panic_threshold_percentage: f64,
    /// `initial-scale`.
    pub initial_scale: i32,
    /// `min-scale`.
    pub min_scale: i32,
    /// `max-scale`: 0 = unlimited.
    pub max_scale: i32,
    /// `max-scale-limit`: 0 = none.
    pub max_scale_limit: i32,
    /// `stable-window`.
    pub stable_window: Duration,
    /// `scale-down-delay`.
    pub scale_down_delay: Duration,
    /// `scale-to-zero-grace-period`.
    pub scale_to_zero_grace_period: Duration,
    /// `scale-to-zero-pod-retention-period`.
    pub scale_to_zero_pod_retention_period: Duration,
}

impl Default for Config {
    /// Knative's `defaultConfig()`.
    fn default() -> Self {
        Config {
            pod_autoscaler_class: keys::KPA_CLASS.to_string(),
            enable_scale_to_zero: true,
            allow_zero_initial_scale: false,
            max_scale_up_rate: 1000.0,
            max_scale_down_rate: 2.0,
            container_concurrency_target_fraction: DEFAULT_TARGET_UTILIZATION,
            container_concurrency_target_default: 100.0,
            requests_per_second_target_default: 200.0,
            target_burst_capacity: 211.0,
            panic_window_percentage: 10.0,
            activator_capacity: 100.0,
            panic_threshold_percentage: 200.0,
            initial_scale: 1,
            min_scale: 0,
            max_scale: 0,
            max_scale_limit: 0,
            stable_window: Duration::from_secs(60),
            scale_down_delay: Duration::ZERO,
            scale_to_zero_grace_period: Duration::from_secs(30),
            scale_to_zero_pod_retention_period: Duration::ZERO,
        }
    }
}

/// A refused `config-autoscaler`: which key, and Knative's message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    /// The offending key (the first one named, when a rule relates two keys).
    pub key: &'static str,
    pub message: String,
}

fn err(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key,
        message: message.into(),
    }
}

fn fmt_d(d: Nanos) -> String {
    goparse::format_duration(d)
}

fn fmt_f(f: f64) -> String {
    goparse::format_float(f)
}

/// Durations as read from the map, still signed, so validation can name negative values.
struct Durations {
    stable_window: Nanos,
    scale_down_delay: Nanos,
    grace: Nanos,
    retention: Nanos,
}

impl Config {
    /// Knative's `NewConfigFromMap`: start from the defaults, override each key present, then
    /// validate. Messages name the key, as Knative's do.
    pub fn from_map(data: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        let mut d = Durations {
            stable_window: goparse::from_std(c.stable_window),
            scale_down_delay: goparse::from_std(c.scale_down_delay),
            grace: goparse::from_std(c.scale_to_zero_grace_period),
            retention: goparse::from_std(c.scale_to_zero_pod_retention_period),
        };
        let get = |key: &str| data.get(key).map(String::as_str);
        let wrap =
            |key: &'static str| move |e: String| err(key, format!("failed to parse {key:?}: {e}"));

        if let Some(v) = get("pod-autoscaler-class") {
            c.pod_autoscaler_class = v.to_string();
        }
        macro_rules! parse_into {
            ($key:literal, $parser:path, $target:expr) => {
                if let Some(v) = get($key) {
                    $target = $parser(v).map_err(wrap($key))?;
                }
            };
        }
        parse_into!(
            "enable-scale-to-zero",
            goparse::parse_bool,
            c.enable_scale_to_zero
        );
        parse_into!(
            "allow-zero-initial-scale",
            goparse::parse_bool,
            c.allow_zero_initial_scale
        );
        parse_into!(
            "max-scale-up-rate",
            goparse::parse_float,
            c.max_scale_up_rate
        );
        parse_into!(
            "max-scale-down-rate",
            goparse::parse_float,
            c.max_scale_down_rate
        );
        parse_into!(
            "container-concurrency-target-percentage",
            goparse::parse_float,
            c.container_concurrency_target_fraction
        );
        parse_into!(
            "container-concurrency-target-default",
            goparse::parse_float,
            c.container_concurrency_target_default
        );
        parse_into!(
            "requests-per-second-target-default",
            goparse::parse_float,
            c.requests_per_second_target_default
        );
        parse_into!(
            "target-burst-capacity",
            goparse::parse_float,
            c.target_burst_capacity
        );
        parse_into!(
            "panic-window-percentage",
            goparse::parse_float,
            c.panic_window_percentage
        );
        parse_into!(
            "activator-capacity",
            goparse::parse_float,
            c.activator_capacity
        );
        parse_into!(
            "panic-threshold-percentage",
            goparse::parse_float,
            c.panic_threshold_percentage
        );
        parse_into!("initial-scale", goparse::parse_i32, c.initial_scale);
        parse_into!("min-scale", goparse::parse_i32, c.min_scale);
        parse_into!("max-scale", goparse::parse_i32, c.max_scale);
        parse_into!("max-scale-limit", goparse::parse_i32, c.max_scale_limit);
        parse_into!("stable-window", goparse::parse_duration, d.stable_window);
        parse_into!(
            "scale-down-delay",
            goparse::parse_duration,
            d.scale_down_delay
        );
        parse_into!(
            "scale-to-zero-grace-period",
            goparse::parse_duration,
            d.grace
        );
        parse_into!(
            "scale-to-zero-pod-retention-period",
            goparse::parse_duration,
            d.retention
        );

        // Percent -> fraction; values in (0, 1] are legacy fractions already.
        if c.container_concurrency_target_fraction > 1.0 {
            c.container_concurrency_target_fraction /= 100.0;
        }
        c.validate(&d)?;
        c.stable_window = goparse::to_std(d.stable_window);
        c.scale_down_delay = goparse::to_std(d.scale_down_delay);
        c.scale_to_zero_grace_period = goparse::to_std(d.grace);
        c.scale_to_zero_pod_retention_period = goparse::to_std(d.retention);
        Ok(c)
    }

    /// Knative's `validate`, rule for rule and in the same order (the first failure wins).
    fn validate(&self, d: &Durations) -> Result<(), ConfigError> {
        if d.grace <= 0 {
            return Err(err(
                "scale-to-zero-grace-period",
                format!(
                    "scale-to-zero-grace-period must be positive, was: {}",
                    fmt_d(d.grace)
                ),
            ));
        }
        if d.scale_down_delay < 0 {
            return Err(err(
                "scale-down-delay",
                format!(
                    "scale-down-delay cannot be negative, was: {}",
                    fmt_d(d.scale_down_delay)
                ),
            ));
        }
        if goparse::round_to_second(d.scale_down_delay) != d.scale_down_delay {
            return Err(err(
                "scale-down-delay",
                format!(
                    "scale-down-delay = {}, must be specified with at most second precision",
                    fmt_d(d.scale_down_delay)
                ),
            ));
        }
        if d.retention < 0 {
            return Err(err(
                "scale-to-zero-pod-retention-period",
                format!(
                    "scale-to-zero-pod-retention-period cannot be negative, was: {}",
                    fmt_d(d.retention)
                ),
            ));
        }
        if self.target_burst_capacity < 0.0 && self.target_burst_capacity != -1.0 {
            return Err(err(
                "target-burst-capacity",
                format!(
                    "target-burst-capacity must be either non-negative or -1 (for unlimited), was: {:.6}",
                    self.target_burst_capacity
                ),
            ));
        }
        let fraction = self.container_concurrency_target_fraction;
        if fraction <= 0.0 || fraction > 1.0 {
            return Err(err(
                "container-concurrency-target-percentage",
                format!(
                    "container-concurrency-target-percentage = {fraction:.6} is outside of valid range of (0, 100]"
                ),
            ));
        }
        let x = fraction * self.container_concurrency_target_default;
        if x < TARGET_MIN {
            return Err(err(
                "container-concurrency-target-percentage",
                format!(
                    "container-concurrency-target-percentage and container-concurrency-target-default yield target concurrency of {}, can't be less than {}",
                    fmt_f(x),
                    fmt_f(TARGET_MIN)
                ),
            ));
        }
        if self.requests_per_second_target_default < TARGET_MIN {
            return Err(err(
                "requests-per-second-target-default",
                format!(
                    "requests-per-second-target-default must be at least {}, was: {}",
                    fmt_f(TARGET_MIN),
                    fmt_f(self.requests_per_second_target_default)
                ),
            ));
        }
        if self.activator_capacity < 1.0 {
            return Err(err(
                "activator-capacity",
                format!(
                    "activator-capacity = {}, must be at least 1",
                    fmt_f(self.activator_capacity)
                ),
            ));
        }
        if self.max_scale_up_rate <= 1.0 {
            return Err(err(
                "max-scale-up-rate",
                format!(
                    "max-scale-up-rate = {}, must be greater than 1.0",
                    fmt_f(self.max_scale_up_rate)
                ),
            ));
        }
        if self.max_scale_down_rate <= 1.0 {
            return Err(err(
                "max-scale-down-rate",
                format!(
                    "max-scale-down-rate = {}, must be greater than 1.0",
                    fmt_f(self.max_scale_down_rate)
                ),
            ));
        }
        let (wmin, wmax) = (6 * SECOND, HOUR);
        if d.stable_window < wmin || d.stable_window > wmax {
            return Err(err(
                "stable-window",
                format!(
                    "stable-window = {}, must be in [{}; {}] range",
                    fmt_d(d.stable_window),
                    fmt_d(wmin),
                    fmt_d(wmax)
                ),
            ));
        }
        if goparse::round_to_second(d.stable_window) != d.stable_window {
            return Err(err(
                "stable-window",
                format!(
                    "stable-window = {}, must be specified with at most second precision",
                    fmt_d(d.stable_window)
                ),
            ));
        }
        if self.panic_window_percentage < PANIC_WINDOW_PERCENTAGE_MIN
            || self.panic_window_percentage > PANIC_WINDOW_PERCENTAGE_MAX
        {
            return Err(err(
                "panic-window-percentage",
                format!(
                    "panic-window-percentage = {}, must be in [{}, {}] interval",
                    fmt_f(self.panic_window_percentage),
                    fmt_f(PANIC_WINDOW_PERCENTAGE_MIN),
                    fmt_f(PANIC_WINDOW_PERCENTAGE_MAX)
                ),
            ));
        }
        if self.initial_scale < 0 || (self.initial_scale == 0 && !self.allow_zero_initial_scale) {
            return Err(err(
                "initial-scale",
                format!(
                    "initial-scale = {}, must be at least 0 (or at least 1 when allow-zero-initial-scale is false)",
                    self.initial_scale
                ),
            ));
        }
        if self.min_scale < 0 {
            return Err(err(
                "min-scale",
                format!("min-scale = {}, must be at least 0", self.min_scale),
            ));
        }
        let min_max_scale = i32::from(self.max_scale_limit > 0);
        if self.max_scale < min_max_scale
            || (self.max_scale_limit > 0 && self.max_scale > self.max_scale_limit)
        {
            return Err(err(
                "max-scale",
                format!(
                    "max-scale = {}, must be in [{}, max-scale-limit({})] range",
                    self.max_scale, min_max_scale, self.max_scale_limit
                ),
            ));
        }
        if self.max_scale_limit < 0 {
            return Err(err(
                "max-scale-limit",
                format!(
                    "max-scale-limit = {}, must be at least 0",
                    self.max_scale_limit
                ),
            ));
        }
        if self.min_scale > self.max_scale && self.max_scale > 0 {
            return Err(err(
                "min-scale",
                format!(
                    "min-scale ({}) must be less than max-scale ({})",
                    self.min_scale, self.max_scale
                ),
            ));
        }
        Ok(())
    }

    /// The ConfigMap `data` that [`Config::from_map`] reads back to this config: every key of
    /// [`KEYS`], values formatted as Knative's parsers accept them. Merge maps (file, then flags)
    /// and parse once to layer settings.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        let d = |d: Duration| goparse::format_duration(goparse::from_std(d));
        let pairs: [(&str, String); 20] = [
            ("pod-autoscaler-class", self.pod_autoscaler_class.clone()),
            (
                "enable-scale-to-zero",
                self.enable_scale_to_zero.to_string(),
            ),
            (
                "allow-zero-initial-scale",
                self.allow_zero_initial_scale.to_string(),
            ),
            ("max-scale-up-rate", fmt_f(self.max_scale_up_rate)),
            ("max-scale-down-rate", fmt_f(self.max_scale_down_rate)),
            ("container-concurrency-target-percentage", {
                // Knative reads values in (0, 1] as fractions, so 1% can only be written 0.01.
                let f = self.container_concurrency_target_fraction;
                if f * 100.0 > 1.0 {
                    fmt_f(f * 100.0)
                } else {
                    fmt_f(f)
                }
            }),
            (
                "container-concurrency-target-default",
                fmt_f(self.container_concurrency_target_default),
            ),
            (
                "requests-per-second-target-default",
                fmt_f(self.requests_per_second_target_default),
            ),
            ("target-burst-capacity", fmt_f(self.target_burst_capacity)),
            (
                "panic-window-percentage",
                fmt_f(self.panic_window_percentage),
            ),
            ("activator-capacity", fmt_f(self.activator_capacity)),
            (
                "panic-threshold-percentage",
                fmt_f(self.panic_threshold_percentage),
            ),
            ("initial-scale", self.initial_scale.to_string()),
            ("min-scale", self.min_scale.to_string()),
            ("max-scale", self.max_scale.to_string()),
            ("max-scale-limit", self.max_scale_limit.to_string()),
            ("stable-window", d(self.stable_window)),
            ("scale-down-delay", d(self.scale_down_delay)),
            (
                "scale-to-zero-grace-period",
                d(self.scale_to_zero_grace_period),
            ),
            (
                "scale-to-zero-pod-retention-period",
                d(self.scale_to_zero_pod_retention_period),
            ),
        ];
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }
}

impl Serialize for Config {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_map().serialize(s)
    }
}

/// A config-file value: ConfigMap data is all strings, but a YAML file will say `70` or `true`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl<'de> Deserialize<'de> for Config {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = BTreeMap::<String, Scalar>::deserialize(d)?;
        let data = raw
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    Scalar::Bool(b) => b.to_string(),
                    Scalar::Int(i) => i.to_string(),
                    Scalar::Float(f) => fmt_f(f),
                    Scalar::Str(s) => s,
                };
                (k, v)
            })
            .collect();
        Config::from_map(&data).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_knatives() {
        let c = Config::default();
        assert_eq!(Config::from_map(&BTreeMap::new()), Ok(c.clone()));
        assert_eq!(c.container_concurrency_target_fraction, 0.7);
        assert_eq!(c.container_concurrency_target_default, 100.0);
        assert_eq!(c.requests_per_second_target_default, 200.0);
        assert_eq!(c.target_burst_capacity, 211.0);
        assert_eq!(c.stable_window, Duration::from_secs(60));
        assert_eq!(c.panic_window_percentage, 10.0);
        assert_eq!(c.panic_threshold_percentage, 200.0);
        assert_eq!(c.max_scale_up_rate, 1000.0);
        assert_eq!(c.max_scale_down_rate, 2.0);
        assert!(c.enable_scale_to_zero);
        assert_eq!(c.scale_to_zero_grace_period, Duration::from_secs(30));
        assert_eq!(c.initial_scale, 1);
        assert!(!c.allow_zero_initial_scale);
    }

    #[test]
    fn parses_every_key() {
        let m = map(&[
            ("pod-autoscaler-class", "kpa.autoscaling.knative.dev"),
            ("enable-scale-to-zero", "false"),
            ("allow-zero-initial-scale", "true"),
            ("max-scale-up-rate", "10"),
            ("max-scale-down-rate", "4"),
            ("container-concurrency-target-percentage", "80"),
            ("container-concurrency-target-default", "10"),
            ("requests-per-second-target-default", "50"),
            ("target-burst-capacity", "-1"),
            ("panic-window-percentage", "20"),
            ("activator-capacity", "50"),
            ("panic-threshold-percentage", "300"),
            ("initial-scale", "0"),
            ("min-scale", "1"),
            ("max-scale", "5"),
            ("max-scale-limit", "10"),
            ("stable-window", "2m"),
            ("scale-down-delay", "10s"),
            ("scale-to-zero-grace-period", "45s"),
            ("scale-to-zero-pod-retention-period", "1m30s"),
            ("_example", "ignored, as Knative ignores it"),
        ]);
        let c = Config::from_map(&m).unwrap();
        assert!(!c.enable_scale_to_zero);
        assert!(c.allow_zero_initial_scale);
        assert_eq!(c.max_scale_up_rate, 10.0);
        assert_eq!(c.max_scale_down_rate, 4.0);
        assert!((c.container_concurrency_target_fraction - 0.8).abs() < 1e-12);
        assert_eq!(c.container_concurrency_target_default, 10.0);
        assert_eq!(c.requests_per_second_target_default, 50.0);
        assert_eq!(c.target_burst_capacity, -1.0);
        assert_eq!(c.panic_window_percentage, 20.0);
        assert_eq!(c.activator_capacity, 50.0);
        assert_eq!(c.panic_threshold_percentage, 300.0);
        assert_eq!(
            (c.initial_scale, c.min_scale, c.max_scale, c.max_scale_limit),
            (0, 1, 5, 10)
        );
        assert_eq!(c.stable_window, Duration::from_secs(120));
        assert_eq!(c.scale_down_delay, Duration::from_secs(10));
        assert_eq!(c.scale_to_zero_grace_period, Duration::from_secs(45));
        assert_eq!(
            c.scale_to_zero_pod_retention_period,
            Duration::from_secs(90)
        );
        // The map form round-trips.
        assert_eq!(Config::from_map(&c.to_map()), Ok(c.clone()));
        assert_eq!(c.to_map().len(), KEYS.len());
        assert!(KEYS.iter().all(|k| c.to_map().contains_key(*k)));
    }

    #[test]
    fn legacy_fraction_is_kept() {
        let c = Config::from_map(&map(&[("container-concurrency-target-percentage", "0.5")]));
        assert_eq!(c.unwrap().container_concurrency_target_fraction, 0.5);
    }

    /// Config map entries, the key a refusal names, and Knative's message.
    type RefusalCase<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);

    #[test]
    fn refuses_like_knative() {
        let cases: &[RefusalCase] = &[
            (
                &[("stable-window", "forever")],
                "stable-window",
                r#"failed to parse "stable-window": time: invalid duration "forever""#,
            ),
            (
                &[("enable-scale-to-zero", "yes")],
                "enable-scale-to-zero",
                r#"failed to parse "enable-scale-to-zero": strconv.ParseBool: parsing "yes": invalid syntax"#,
            ),
            (
                &[("min-scale", "1.5")],
                "min-scale",
                r#"failed to parse "min-scale": strconv.ParseInt: parsing "1.5": invalid syntax"#,
            ),
            (
                &[("max-scale-up-rate", "fast")],
                "max-scale-up-rate",
                r#"failed to parse "max-scale-up-rate": strconv.ParseFloat: parsing "fast": invalid syntax"#,
            ),
            (
                &[("scale-to-zero-grace-period", "0s")],
                "scale-to-zero-grace-period",
                "scale-to-zero-grace-period must be positive, was: 0s",
            ),
            (
                &[("scale-down-delay", "-1s")],
                "scale-down-delay",
                "scale-down-delay cannot be negative, was: -1s",
            ),
            (
                &[("scale-down-delay", "1.5s")],
                "scale-down-delay",
                "scale-down-delay = 1.5s, must be specified with at most second precision",
            ),
            (
                &[("scale-to-zero-pod-retention-period", "-1m")],
                "scale-to-zero-pod-retention-period",
                "scale-to-zero-pod-retention-period cannot be negative, was: -1m0s",
            ),
            (
                &[("target-burst-capacity", "-2")],
                "target-burst-capacity",
                "target-burst-capacity must be either non-negative or -1 (for unlimited), was: -2.000000",
            ),
            (
                &[("container-concurrency-target-percentage", "150")],
                "container-concurrency-target-percentage",
                "container-concurrency-target-percentage = 1.500000 is outside of valid range of (0, 100]",
            ),
            (
                &[("container-concurrency-target-percentage", "0")],
                "container-concurrency-target-percentage",
                "container-concurrency-target-percentage = 0.000000 is outside of valid range of (0, 100]",
            ),
            (
                &[
                    ("container-concurrency-target-percentage", "1"),
                    ("container-concurrency-target-default", "0.001"),
                ],
                "container-concurrency-target-percentage",
                "container-concurrency-target-percentage and container-concurrency-target-default yield target concurrency of 0.001, can't be less than 0.01",
            ),
            (
                &[("requests-per-second-target-default", "0")],
                "requests-per-second-target-default",
                "requests-per-second-target-default must be at least 0.01, was: 0",
            ),
            (
                &[("activator-capacity", "0.5")],
                "activator-capacity",
                "activator-capacity = 0.5, must be at least 1",
            ),
            (
                &[("max-scale-up-rate", "1")],
                "max-scale-up-rate",
                "max-scale-up-rate = 1, must be greater than 1.0",
            ),
            (
                &[("max-scale-down-rate", "0.5")],
                "max-scale-down-rate",
                "max-scale-down-rate = 0.5, must be greater than 1.0",
            ),
            (
                &[("stable-window", "5s")],
                "stable-window",
                "stable-window = 5s, must be in [6s; 1h0m0s] range",
            ),
            (
                &[("stable-window", "2h")],
                "stable-window",
                "stable-window = 2h0m0s, must be in [6s; 1h0m0s] range",
            ),
            (
                &[("stable-window", "6500ms")],
                "stable-window",
                "stable-window = 6.5s, must be specified with at most second precision",
            ),
            (
                &[("panic-window-percentage", "0.5")],
                "panic-window-percentage",
                "panic-window-percentage = 0.5, must be in [1, 100] interval",
            ),
            (
                &[("initial-scale", "0")],
                "initial-scale",
                "initial-scale = 0, must be at least 0 (or at least 1 when allow-zero-initial-scale is false)",
            ),
            (
                &[("min-scale", "-1")],
                "min-scale",
                "min-scale = -1, must be at least 0",
            ),
            (
                &[("max-scale-limit", "5")],
                "max-scale",
                "max-scale = 0, must be in [1, max-scale-limit(5)] range",
            ),
            (
                &[("max-scale-limit", "5"), ("max-scale", "6")],
                "max-scale",
                "max-scale = 6, must be in [1, max-scale-limit(5)] range",
            ),
            (
                &[("max-scale-limit", "-1")],
                "max-scale-limit",
                "max-scale-limit = -1, must be at least 0",
            ),
            (
                &[("min-scale", "3"), ("max-scale", "2")],
                "min-scale",
                "min-scale (3) must be less than max-scale (2)",
            ),
        ];
        for (pairs, key, message) in cases {
            let got = Config::from_map(&map(pairs));
            assert_eq!(
                got,
                Err(ConfigError {
                    key,
                    message: message.to_string()
                }),
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn serde_reads_strings_numbers_and_booleans() {
        let json = r#"{"stable-window":"30s","max-scale-up-rate":10,"enable-scale-to-zero":false,
                       "container-concurrency-target-percentage":"85"}"#;
        let c: Config = serde_json::from_str(json).unwrap();
        assert_eq!(c.stable_window, Duration::from_secs(30));
        assert_eq!(c.max_scale_up_rate, 10.0);
        assert!(!c.enable_scale_to_zero);
        assert!((c.container_concurrency_target_fraction - 0.85).abs() < 1e-12);
        let back: Config = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);

        let bad = serde_json::from_str::<Config>(r#"{"stable-window":"1s"}"#).unwrap_err();
        assert!(bad.to_string().contains("stable-window = 1s"), "{bad}");
    }
}
