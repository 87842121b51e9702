//! Writing families through prometheus-client's encoder, which owns the text format (names,
//! escaping, `_total`, `_bucket`/`le`, `+Inf`).

use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use crate::metric::HistogramSnapshot;

/// Label pairs of one series.
pub type Labels<'a> = Vec<(&'a str, &'a str)>;

pub fn counters(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(Labels<'_>, u64)],
) -> Result<(), std::fmt::Error> {
    if series.is_empty() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in series {
        m.encode_family(labels)?
            .encode_counter::<NoLabelSet, _, u64>(value, None)?;
    }
    Ok(())
}

pub fn gauges(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(Labels<'_>, f64)],
) -> Result<(), std::fmt::Error> {
    if series.is_empty() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in series {
        m.encode_family(labels)?.encode_gauge(value)?;
    }
    Ok(())
}

pub fn histograms(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(Labels<'_>, HistogramSnapshot)],
) -> Result<(), std::fmt::Error> {
    if series.is_empty() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, h) in series {
        // Snapshots are cumulative, as the exposition format is; prometheus-client's encoder
        // accumulates per-bucket counts itself, so it gets the differences.
        let mut below = 0;
        let per_bucket: Vec<(f64, u64)> = h
            .buckets
            .iter()
            .map(|&(bound, cumulative)| {
                let n = cumulative.saturating_sub(below);
                below = cumulative;
                (bound, n)
            })
            .collect();
        m.encode_family(labels)?.encode_histogram::<NoLabelSet>(
            h.sum,
            h.count,
            &per_bucket,
            None,
        )?;
    }
    Ok(())
}

/// A counter of one series without labels, counted in fractions (CPU seconds).
pub fn counters_f64(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    m.encode_counter::<NoLabelSet, _, u64>(&value, None)
}
