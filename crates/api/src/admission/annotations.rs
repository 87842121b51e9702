//! Annotation rules: autoscaling (knative/serving `pkg/apis/autoscaling/annotation_validation.go`),
//! networking, queue sidecar, rollout and progress deadlines. Paths are the annotation keys,
//! relative to the `annotations` map, as Knative reports them.

use std::collections::BTreeMap;

use super::config::Autoscaler;
use crate::goparse::{self, HOUR, Nanos, SECOND};
use crate::serving::keys;
use crate::validation::{FieldErrors, Reason};

type Annotations = BTreeMap<String, String>;

/// The first key present among a key and its legacy spellings (knative.dev/pkg `kmap.KeyPriority`).
fn get<'a>(m: &'a Annotations, keys: &[&'a str]) -> Option<(&'a str, &'a str)> {
    keys.iter()
        .find_map(|k| m.get(*k).map(|v| (*k, v.as_str())))
}

const G: &str = "autoscaling.knative.dev/";

fn alt(name: &str) -> String {
    format!("{G}{name}")
}

/// Go's `strconv.ParseFloat` as far as annotation values go.
fn parse_float(v: &str) -> Option<f64> {
    v.trim_start_matches('+')
        .parse::<f64>()
        .ok()
        .filter(|_| !v.is_empty())
}

/// Go's `strconv.ParseInt(v, 10, 32)`: `Err(true)` for out of range, `Err(false)` for syntax.
fn parse_i32(v: &str) -> Result<i32, bool> {
    match v.parse::<i64>() {
        Ok(i) => i32::try_from(i).map_err(|_| true),
        Err(_) => {
            let digits = v.trim_start_matches(['+', '-']);
            Err(!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        }
    }
}

/// Go's `%v` for a float: `1`, `0.01`, `110`.
fn gofloat(f: f64) -> String {
    format!("{f}")
}

/// `autoscaling.ValidateAnnotations`.
pub(crate) fn validate_autoscaling(cfg: &Autoscaler, m: &Annotations) -> FieldErrors {
    let mut errs = FieldErrors::new();
    errs.also(validate_class(m));
    errs.also(validate_min_max_scale(cfg, m));
    errs.also(validate_floats(m));
    errs.also(validate_window(m));
    errs.also(validate_last_pod_retention(m));
    errs.also(validate_scale_down_delay(m));
    errs.also(validate_metric(cfg, m));
    errs.also(validate_algorithm(m));
    errs.also(validate_initial_scale(cfg, m));
    errs
}

fn validate_class(m: &Annotations) -> FieldErrors {
    if let Some((k, v)) = get(m, &[keys::CLASS_ANNOTATION])
        && v.ends_with(".knative.dev")
        && v != keys::KPA_CLASS
        && v != keys::HPA_CLASS
    {
        return FieldErrors::invalid_value(v, k, "");
    }
    FieldErrors::new()
}

fn validate_algorithm(m: &Annotations) -> FieldErrors {
    if get(m, &[keys::CLASS_ANNOTATION]).map(|(_, v)| v) != Some(keys::KPA_CLASS) {
        return FieldErrors::new();
    }
    let legacy = alt("metricAggregationAlgorithm");
    if let Some((k, v)) = get(m, &[keys::METRIC_AGGREGATION_ALGORITHM_ANNOTATION, &legacy])
        && !v.is_empty()
        && !["linear", "weighted-exponential", "weightedExponential"].contains(&v)
    {
        return FieldErrors::invalid_value(v, k, "");
    }
    FieldErrors::new()
}

fn validate_floats(m: &Annotations) -> FieldErrors {
    let mut errs = FieldErrors::new();
    let bounded = |errs: &mut FieldErrors, keys: &[&str], lo: f64, hi: f64| {
        if let Some((k, v)) = get(m, keys) {
            match parse_float(v) {
                None => {
                    errs.also(FieldErrors::invalid_value(v, k, ""));
                }
                Some(f) if f < lo || f > hi => {
                    errs.also(FieldErrors::out_of_bounds(v, gofloat(lo), gofloat(hi), k));
                }
                _ => {}
            }
        }
    };
    let pwp = alt("panicWindowPercentage");
    bounded(
        &mut errs,
        &[keys::PANIC_WINDOW_PERCENTAGE_ANNOTATION, &pwp],
        1.0,
        100.0,
    );
    let ptp = alt("panicThresholdPercentage");
    bounded(
        &mut errs,
        &[keys::PANIC_THRESHOLD_PERCENTAGE_ANNOTATION, &ptp],
        110.0,
        1000.0,
    );
    if let Some((k, v)) = get(m, &[keys::TARGET_ANNOTATION]) {
        match parse_float(v) {
            None => {
                errs.also(FieldErrors::invalid_value(v, k, ""));
            }
            Some(f) if f < 0.01 => {
                errs.also(FieldErrors::generic(
                    Reason::FieldValueInvalid,
                    format!("target {v} should be at least 0.01"),
                    &[k],
                ));
            }
            _ => {}
        }
    }
    let tup = alt("targetUtilizationPercentage");
    bounded(
        &mut errs,
        &[keys::TARGET_UTILIZATION_PERCENTAGE_ANNOTATION, &tup],
        1.0,
        100.0,
    );
    let tbc = alt("targetBurstCapacity");
    if let Some((k, v)) = get(m, &[keys::TARGET_BURST_CAPACITY_ANNOTATION, &tbc]) {
        match parse_float(v) {
            Some(f) if f >= 0.0 || f == -1.0 => {}
            _ => {
                errs.also(FieldErrors::invalid_value(v, k, ""));
            }
        }
    }
    errs
}

fn duration_bounds(v: &str, lo: Nanos, k: &str) -> FieldErrors {
    FieldErrors::out_of_bounds(
        v,
        goparse::format_duration(lo),
        goparse::format_duration(HOUR),
        k,
    )
}

fn validate_scale_down_delay(m: &Annotations) -> FieldErrors {
    let legacy = alt("scaleDownDelay");
    if let Some((k, v)) = get(m, &[keys::SCALE_DOWN_DELAY_ANNOTATION, &legacy]) {
        return match goparse::parse_duration(v) {
            Err(_) => FieldErrors::invalid_value(v, k, ""),
            Ok(d) if !(0..=HOUR).contains(&d) => duration_bounds(v, 0, k),
            Ok(d) if d % SECOND != 0 => FieldErrors::generic(
                Reason::FieldValueInvalid,
                "must be specified with at most second precision",
                &[k],
            ),
            Ok(_) => FieldErrors::new(),
        };
    }
    FieldErrors::new()
}

fn validate_last_pod_retention(m: &Annotations) -> FieldErrors {
    let legacy = alt("scaleToZeroPodRetentionPeriod");
    if let Some((k, v)) = get(
        m,
        &[keys::SCALE_TO_ZERO_POD_RETENTION_PERIOD_ANNOTATION, &legacy],
    ) {
        return match goparse::parse_duration(v) {
            Err(_) => FieldErrors::invalid_value(v, k, ""),
            Ok(d) if !(0..=HOUR).contains(&d) => duration_bounds(v, 0, k),
            Ok(_) => FieldErrors::new(),
        };
    }
    FieldErrors::new()
}

fn validate_window(m: &Annotations) -> FieldErrors {
    let k = keys::WINDOW_ANNOTATION;
    if let Some((_, v)) = get(m, &[k]) {
        return match goparse::parse_duration(v) {
            Err(_) => FieldErrors::invalid_value(v, k, ""),
            Ok(d) if !(6 * SECOND..=HOUR).contains(&d) => duration_bounds(v, 6 * SECOND, k),
            Ok(d) if d % SECOND != 0 => FieldErrors::generic(
                Reason::FieldValueInvalid,
                "must be specified with at most second precision",
                &[k],
            ),
            Ok(_) => FieldErrors::new(),
        };
    }
    FieldErrors::new()
}

fn get_int_ge0(m: &Annotations, keys: &[&str]) -> (i32, FieldErrors) {
    let Some((k, v)) = get(m, keys) else {
        return (0, FieldErrors::new());
    };
    match parse_i32(v) {
        Ok(i) if i < 0 => (0, FieldErrors::out_of_bounds(v, 0, i32::MAX, k)),
        Ok(i) => (i, FieldErrors::new()),
        Err(true) => (0, FieldErrors::out_of_bounds(v, 0, i32::MAX, k)),
        Err(false) => (0, FieldErrors::invalid_value(v, k, "")),
    }
}

fn validate_min_max_scale(cfg: &Autoscaler, m: &Annotations) -> FieldErrors {
    let min_legacy = alt("minScale");
    let max_legacy = alt("maxScale");
    let (min, mut errs) = get_int_ge0(m, &[keys::MIN_SCALE_ANNOTATION, &min_legacy]);
    let (max, e) = get_int_ge0(m, &[keys::MAX_SCALE_ANNOTATION, &max_legacy]);
    errs.also(e);
    if max != 0 && max < min {
        errs.also(FieldErrors::generic(
            Reason::FieldValueInvalid,
            format!("max-scale={max} is less than min-scale={min}"),
            &[keys::MAX_SCALE_ANNOTATION, keys::MIN_SCALE_ANNOTATION],
        ));
    }
    if let Some((k, _)) = get(m, &[keys::MAX_SCALE_ANNOTATION, &max_legacy])
        && cfg.max_scale_limit != 0
    {
        if max > cfg.max_scale_limit {
            errs.also(FieldErrors::out_of_bounds(max, 1, cfg.max_scale_limit, k));
        }
        if max == 0 {
            errs.also(FieldErrors::generic(
                Reason::FieldValueInvalid,
                format!(
                    "max-scale=0 (unlimited), must be less than {}",
                    cfg.max_scale_limit
                ),
                &[k],
            ));
        }
    }
    if let Some((k, v)) = get(m, &[keys::ACTIVATION_SCALE_ANNOTATION]) {
        match parse_i32(v) {
            Err(_) => {
                errs.also(FieldErrors::invalid_value(v, k, ""));
            }
            Ok(nz) if min > nz => {
                errs.also(FieldErrors::generic(
                    Reason::FieldValueInvalid,
                    format!("min-scale={min} is greater than activation-scale={nz}"),
                    &[k],
                ));
            }
            Ok(nz) if max < nz && max != 0 => {
                errs.also(FieldErrors::generic(
                    Reason::FieldValueInvalid,
                    format!("max-scale={max} is less than activation-scale={nz}"),
                    &[k],
                ));
            }
            Ok(nz) if nz < 2 => {
                errs.also(FieldErrors::generic(
                    Reason::FieldValueInvalid,
                    format!("activation-scale={nz} must be greater than 1"),
                    &[k],
                ));
            }
            Ok(_) => {}
        }
    }
    errs
}

fn validate_metric(cfg: &Autoscaler, m: &Annotations) -> FieldErrors {
    let Some((_, metric)) = get(m, &[keys::METRIC_ANNOTATION]) else {
        return FieldErrors::new();
    };
    let class = get(m, &[keys::CLASS_ANNOTATION])
        .map(|(_, c)| c)
        .unwrap_or(cfg.pod_autoscaler_class.as_str());
    let ok = match class {
        keys::KPA_CLASS => metric == "concurrency" || metric == "rps",
        keys::HPA_CLASS => !metric.is_empty(),
        _ => true,
    };
    if ok {
        FieldErrors::new()
    } else {
        FieldErrors::invalid_value(metric, keys::METRIC_ANNOTATION, "")
    }
}

fn validate_initial_scale(cfg: &Autoscaler, m: &Annotations) -> FieldErrors {
    let legacy = alt("initialScale");
    if let Some((k, v)) = get(m, &[keys::INITIAL_SCALE_ANNOTATION, &legacy]) {
        return match v.parse::<i64>() {
            Err(_) => FieldErrors::invalid_value(v, k, ""),
            Ok(i) if i < 0 => {
                FieldErrors::invalid_value(v, &format!("{k} must be greater than 0"), "")
            }
            Ok(0) if !cfg.allow_zero_initial_scale => {
                FieldErrors::invalid_value(v, &format!("{k}=0 not allowed by cluster"), "")
            }
            Ok(_) => FieldErrors::new(),
        };
    }
    FieldErrors::new()
}

/// `serving.ValidateHasNoAutoscalingAnnotation`: on a Service, Configuration or Route the
/// autoscaling annotations would do nothing, so Knative refuses them.
pub(crate) fn validate_no_autoscaling(m: &Annotations) -> FieldErrors {
    let mut errs = FieldErrors::new();
    for k in m.keys() {
        if k.starts_with(keys::AUTOSCALING_GROUP) {
            errs.also(FieldErrors::invalid_key_name(
                k,
                "",
                "autoscaling annotations must be put under \"spec.template.metadata.annotations\" to work",
            ));
        }
    }
    errs
}

const NETWORKING_ALLOWED: &[&str] = &[
    "networking.knative.dev/ingress.class",
    "networking.knative.dev/certificate.class",
    "networking.knative.dev/disableAutoTLS",
    "networking.knative.dev/disable-external-domain-tls",
    "networking.knative.dev/httpOption",
    "networking.knative.dev/ingress-class",
    "networking.knative.dev/certificate-class",
    "networking.knative.dev/disable-auto-tls",
    "networking.knative.dev/http-protocol",
];

/// knative/networking `ValidateAnnotations`: unknown `networking.knative.dev` keys.
pub(crate) fn validate_networking(m: &Annotations) -> FieldErrors {
    let mut errs = FieldErrors::new();
    for k in m.keys() {
        if k.starts_with("networking.knative.dev") && !NETWORKING_ALLOWED.contains(&k.as_str()) {
            errs.also(FieldErrors::invalid_key_name(k, "", ""));
        }
    }
    errs
}

/// `validateQueueSidecarResourceAnnotations`.
pub(crate) fn validate_queue_sidecar(m: &Annotations) -> FieldErrors {
    let mut errs = FieldErrors::new();
    let pct_keys = [
        "queue.sidecar.serving.knative.dev/resource-percentage",
        "queue.sidecar.serving.knative.dev/resourcePercentage",
    ];
    if let Some((k, v)) = get(m, &pct_keys) {
        match parse_float(v) {
            None => {
                errs.also(FieldErrors::invalid_value(v, "", "").via_key(k));
            }
            Some(f) if !(0.1..=100.0).contains(&f) => {
                errs.also(FieldErrors::out_of_bounds(gofloat(f), "0.1", "100", "").via_key(k));
            }
            _ => {}
        }
    }
    for res in [
        "cpu-resource-request",
        "cpu-resource-limit",
        "memory-resource-request",
        "memory-resource-limit",
        "ephemeral-storage-resource-request",
        "ephemeral-storage-resource-limit",
    ] {
        let k = format!("queue.sidecar.serving.knative.dev/{res}");
        if let Some(v) = m.get(&k)
            && !crate::core::is_valid_quantity(v)
        {
            errs.also(FieldErrors::invalid_value(v, "", "").via_key(&k));
        }
    }
    errs
}

/// Rollout duration (Service/Route metadata) and progress deadline (template), both Go
/// durations at second precision, not negative.
pub(crate) fn validate_duration_annotation(
    m: &Annotations,
    keys: &[&str],
    what: &str,
) -> FieldErrors {
    let Some((k, v)) = get(m, keys) else {
        return FieldErrors::new();
    };
    if v.is_empty() {
        return FieldErrors::new();
    }
    match goparse::parse_duration(v) {
        Err(_) => FieldErrors::invalid_value(v, k, ""),
        Ok(d) if d % SECOND != 0 => FieldErrors::generic(
            Reason::FieldValueInvalid,
            format!("{what}={v} is not at second precision"),
            &[k],
        ),
        Ok(d) if d < 0 => FieldErrors::generic(
            Reason::FieldValueInvalid,
            format!("{what}={v} must be positive"),
            &[k],
        ),
        Ok(_) => FieldErrors::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anns(pairs: &[(&str, &str)]) -> Annotations {
        pairs
            .iter()
            .map(|(k, v)| (format!("{G}{k}"), v.to_string()))
            .collect()
    }

    #[test]
    fn autoscaling_table() {
        // (annotations, expected rendered errors or "" when valid)
        let table: &[(&[(&str, &str)], &str)] = &[
            (&[("min-scale", "1"), ("max-scale", "5")], ""),
            (&[("minScale", "1")], ""),
            (
                &[("min-scale", "-1")],
                "expected 0 <= -1 <= 2147483647: autoscaling.knative.dev/min-scale",
            ),
            (
                &[("min-scale", "x")],
                "invalid value: x: autoscaling.knative.dev/min-scale",
            ),
            (
                &[("min-scale", "99999999999")],
                "expected 0 <= 99999999999 <= 2147483647: autoscaling.knative.dev/min-scale",
            ),
            (
                &[("min-scale", "5"), ("max-scale", "2")],
                "max-scale=2 is less than min-scale=5: autoscaling.knative.dev/max-scale, autoscaling.knative.dev/min-scale",
            ),
            (&[("min-scale", "5"), ("max-scale", "0")], ""),
            (&[("target", "0.01")], ""),
            (
                &[("target", "0.001")],
                "target 0.001 should be at least 0.01: autoscaling.knative.dev/target",
            ),
            (
                &[("target", "abc")],
                "invalid value: abc: autoscaling.knative.dev/target",
            ),
            (&[("window", "6s")], ""),
            (&[("window", "1h")], ""),
            (
                &[("window", "5s")],
                "expected 6s <= 5s <= 1h0m0s: autoscaling.knative.dev/window",
            ),
            (
                &[("window", "61m")],
                "expected 6s <= 61m <= 1h0m0s: autoscaling.knative.dev/window",
            ),
            (
                &[("window", "6500ms")],
                "must be specified with at most second precision: autoscaling.knative.dev/window",
            ),
            (
                &[("window", "six")],
                "invalid value: six: autoscaling.knative.dev/window",
            ),
            (
                &[("panic-window-percentage", "0.5")],
                "expected 1 <= 0.5 <= 100: autoscaling.knative.dev/panic-window-percentage",
            ),
            (&[("panic-window-percentage", "10")], ""),
            (
                &[("panic-threshold-percentage", "100")],
                "expected 110 <= 100 <= 1000: autoscaling.knative.dev/panic-threshold-percentage",
            ),
            (&[("panic-threshold-percentage", "200")], ""),
            (
                &[("initial-scale", "0")],
                "invalid value: 0: autoscaling.knative.dev/initial-scale=0 not allowed by cluster",
            ),
            (
                &[("initial-scale", "-1")],
                "invalid value: -1: autoscaling.knative.dev/initial-scale must be greater than 0",
            ),
            (&[("initial-scale", "3")], ""),
            (&[("scale-down-delay", "15m")], ""),
            (
                &[("scale-down-delay", "2h")],
                "expected 0s <= 2h <= 1h0m0s: autoscaling.knative.dev/scale-down-delay",
            ),
            (
                &[("scale-down-delay", "1.5s")],
                "must be specified with at most second precision: autoscaling.knative.dev/scale-down-delay",
            ),
            (&[("activation-scale", "3")], ""),
            (
                &[("activation-scale", "1")],
                "activation-scale=1 must be greater than 1: autoscaling.knative.dev/activation-scale",
            ),
            (
                &[("activation-scale", "3"), ("max-scale", "2")],
                "max-scale=2 is less than activation-scale=3: autoscaling.knative.dev/activation-scale",
            ),
            (
                &[("activation-scale", "2"), ("min-scale", "4")],
                "min-scale=4 is greater than activation-scale=2: autoscaling.knative.dev/activation-scale",
            ),
            (&[("class", "kpa.autoscaling.knative.dev")], ""),
            (&[("class", "custom.example.com")], ""),
            (
                &[("class", "foo.autoscaling.knative.dev")],
                "invalid value: foo.autoscaling.knative.dev: autoscaling.knative.dev/class",
            ),
            (&[("metric", "rps")], ""),
            (
                &[("metric", "cpu")],
                "invalid value: cpu: autoscaling.knative.dev/metric",
            ),
            (
                &[("class", "hpa.autoscaling.knative.dev"), ("metric", "cpu")],
                "",
            ),
            (&[("target-utilization-percentage", "70")], ""),
            (
                &[("target-utilization-percentage", "0")],
                "expected 1 <= 0 <= 100: autoscaling.knative.dev/target-utilization-percentage",
            ),
            (&[("target-burst-capacity", "-1")], ""),
            (
                &[("target-burst-capacity", "-2")],
                "invalid value: -2: autoscaling.knative.dev/target-burst-capacity",
            ),
            (
                &[
                    ("class", "kpa.autoscaling.knative.dev"),
                    ("metric-aggregation-algorithm", "median"),
                ],
                "invalid value: median: autoscaling.knative.dev/metric-aggregation-algorithm",
            ),
            (&[("metric-aggregation-algorithm", "median")], ""),
            (
                &[("scale-to-zero-pod-retention-period", "2h")],
                "expected 0s <= 2h <= 1h0m0s: autoscaling.knative.dev/scale-to-zero-pod-retention-period",
            ),
        ];
        for (input, want) in table {
            let got = validate_autoscaling(&Autoscaler::default(), &anns(input)).to_string();
            assert_eq!(got, *want, "{input:?}");
        }
    }

    #[test]
    fn max_scale_limit() {
        let cfg = Autoscaler {
            max_scale_limit: 10,
            ..Autoscaler::default()
        };
        let got = validate_autoscaling(&cfg, &anns(&[("max-scale", "11")])).to_string();
        assert_eq!(
            got,
            "expected 1 <= 11 <= 10: autoscaling.knative.dev/max-scale"
        );
        let got = validate_autoscaling(&cfg, &anns(&[("max-scale", "0")])).to_string();
        assert_eq!(
            got,
            "max-scale=0 (unlimited), must be less than 10: autoscaling.knative.dev/max-scale"
        );
    }

    #[test]
    fn durations() {
        let keys = [keys::ROLLOUT_DURATION_ANNOTATION];
        let m = |v: &str| -> Annotations {
            [(keys::ROLLOUT_DURATION_ANNOTATION.to_string(), v.to_string())].into()
        };
        assert!(validate_duration_annotation(&m("120s"), &keys, "rollout-duration").is_empty());
        assert_eq!(
            validate_duration_annotation(&m("1.5s"), &keys, "rollout-duration").to_string(),
            "rollout-duration=1.5s is not at second precision: serving.knative.dev/rollout-duration"
        );
        assert_eq!(
            validate_duration_annotation(&m("-5s"), &keys, "rollout-duration").to_string(),
            "rollout-duration=-5s must be positive: serving.knative.dev/rollout-duration"
        );
    }
}
