//! API server requests, under the names kube-apiserver exports (`apiserver_request_total`,
//! `apiserver_request_duration_seconds`) with its labels: `verb` (get, list, watch, create,
//! update, patch, delete, deletecollection; the HTTP method for paths outside the resource
//! API), `group`, `version`, `resource`, `subresource` and `code`.
//!
//! The API server passes only names it knows (a served kind's plural, a known subresource),
//! so a client probing random paths cannot grow the label sets; the cap bounds the rest.

use std::time::Duration;

use prometheus_client::encoding::DescriptorEncoder;

use crate::expose::{self, Labels};
use crate::family::{Bounded, DEFAULT_CAP};
use crate::metric::{Counter, Histogram, LATENCY_SECONDS};

/// One answered API request.
#[derive(Debug, Clone, Copy)]
pub struct ApiRequest<'a> {
    pub verb: &'a str,
    pub group: &'a str,
    pub version: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    pub code: u16,
    /// Until the response's head (a watch counts until it started streaming).
    pub latency: Duration,
}

const COUNT_LABELS: [&str; 6] = [
    "verb",
    "group",
    "version",
    "resource",
    "subresource",
    "code",
];
const DURATION_LABELS: [&str; 5] = ["verb", "group", "version", "resource", "subresource"];

#[derive(Debug)]
pub struct Api {
    counts: Bounded<Counter>,
    durations: Bounded<Histogram>,
}

impl Default for Api {
    fn default() -> Self {
        Api {
            counts: Bounded::new(DEFAULT_CAP, Counter::default),
            durations: Bounded::new(DEFAULT_CAP, || Histogram::new(LATENCY_SECONDS)),
        }
    }
}

impl Api {
    pub fn record(&self, r: &ApiRequest<'_>) {
        let mut code = itoa::Buffer::new();
        let code = code.format(r.code);
        self.counts
            .get(&[r.verb, r.group, r.version, r.resource, r.subresource, code])
            .inc();
        self.durations
            .get(&[r.verb, r.group, r.version, r.resource, r.subresource])
            .observe(u64::try_from(r.latency.as_micros()).unwrap_or(u64::MAX));
    }

    pub(crate) fn encode(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counts = self.counts.snapshot(COUNT_LABELS.len());
        let series: Vec<(Labels, u64)> = counts
            .iter()
            .map(|(v, c)| {
                (
                    COUNT_LABELS
                        .iter()
                        .copied()
                        .zip(v.iter().map(String::as_str))
                        .collect(),
                    c.get(),
                )
            })
            .collect();
        expose::counters(
            enc,
            "apiserver_request",
            "Counter of API requests broken out by verb, group, version, resource, subresource and HTTP response code",
            &series,
        )?;
        let durations = self.durations.snapshot(DURATION_LABELS.len());
        let series: Vec<_> = durations
            .iter()
            .map(|(v, h)| {
                let labels: Labels = DURATION_LABELS
                    .iter()
                    .copied()
                    .zip(v.iter().map(String::as_str))
                    .collect();
                (labels, h.snapshot())
            })
            .collect();
        expose::histograms(
            enc,
            "apiserver_request_duration_seconds",
            "Response latency distribution in seconds for each verb, group, version, resource and subresource",
            &series,
        )
    }
}
