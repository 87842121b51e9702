//! The autoscaler's decisions per revision, under the names Knative's autoscaler exports
//! (`autoscaler_desired_pods`, `autoscaler_panic_mode`, ...), with its revision labels.
//!
//! Written by each revision's driver after every decision (every two seconds while the
//! revision has replicas, never at zero), so a plain mutex per revision is enough: the scrape
//! copies the last sample out of it.

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::DescriptorEncoder;

use crate::expose::{self, Labels};
use crate::family::{Bounded, DEFAULT_CAP};
use crate::serving::{REVISION_LABELS, RevisionLabels};

/// One decision, as Knative's autoscaler reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AutoscalerSample {
    /// The decider's own number, before bounds and scale-to-zero rules.
    pub desired_pods: i32,
    /// The scale asked of the runtime.
    pub requested_pods: i32,
    /// Replicas ready to serve.
    pub actual_pods: i32,
    /// Replicas started and not ready (yet).
    pub not_ready_pods: i32,
    pub panic_mode: bool,
    /// Window averages (totals over the revision's replicas).
    pub stable_request_concurrency: f64,
    pub panic_request_concurrency: f64,
    pub stable_requests_per_second: f64,
    pub panic_requests_per_second: f64,
    /// The per-replica target of the metric in use (the other one is `None`).
    pub target_concurrency_per_pod: Option<f64>,
    pub target_requests_per_second: Option<f64>,
    pub excess_burst_capacity: f64,
}

type Slot = Mutex<Option<AutoscalerSample>>;

/// The last decision of every revision.
#[derive(Debug)]
pub struct Autoscaling {
    revisions: Bounded<Slot>,
}

impl Default for Autoscaling {
    fn default() -> Self {
        Autoscaling {
            revisions: Bounded::new(DEFAULT_CAP, Slot::default),
        }
    }
}

/// Where one revision's driver writes its decisions.
#[derive(Debug, Clone)]
pub struct AutoscalerGauges(Arc<Slot>);

impl AutoscalerGauges {
    pub fn set(&self, sample: AutoscalerSample) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(sample);
    }
}

impl Autoscaling {
    pub fn revision(&self, labels: &RevisionLabels) -> AutoscalerGauges {
        AutoscalerGauges(self.revisions.get(&labels.values()))
    }

    /// The revision stopped: its series go.
    pub fn forget(&self, labels: &RevisionLabels) {
        self.revisions.remove(&labels.values());
    }

    pub(crate) fn encode(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let samples: Vec<(Vec<String>, AutoscalerSample)> = self
            .revisions
            .snapshot(REVISION_LABELS.len())
            .into_iter()
            .filter_map(|(v, slot)| {
                let sample = *slot.lock().unwrap_or_else(|e| e.into_inner());
                sample.map(|s| (v, s))
            })
            .collect();
        type Field = fn(&AutoscalerSample) -> Option<f64>;
        let families: [(&str, &str, Field); 12] = [
            (
                "autoscaler_desired_pods",
                "Number of pods autoscaler wants to allocate",
                |s| Some(f64::from(s.desired_pods)),
            ),
            (
                "autoscaler_requested_pods",
                "Number of pods autoscaler requested from the runtime",
                |s| Some(f64::from(s.requested_pods)),
            ),
            (
                "autoscaler_actual_pods",
                "Number of pods that are allocated currently (ready)",
                |s| Some(f64::from(s.actual_pods)),
            ),
            (
                "autoscaler_not_ready_pods",
                "Number of pods that are not ready currently",
                |s| Some(f64::from(s.not_ready_pods)),
            ),
            (
                "autoscaler_panic_mode",
                "1 if autoscaler is in panic mode, 0 otherwise",
                |s| Some(if s.panic_mode { 1.0 } else { 0.0 }),
            ),
            (
                "autoscaler_stable_request_concurrency",
                "Average of requests count over the stable window",
                |s| Some(s.stable_request_concurrency),
            ),
            (
                "autoscaler_panic_request_concurrency",
                "Average of requests count over the panic window",
                |s| Some(s.panic_request_concurrency),
            ),
            (
                "autoscaler_target_concurrency_per_pod",
                "The desired number of concurrent requests for each pod",
                |s| s.target_concurrency_per_pod,
            ),
            (
                "autoscaler_stable_requests_per_second",
                "Average requests-per-second over the stable window",
                |s| Some(s.stable_requests_per_second),
            ),
            (
                "autoscaler_panic_requests_per_second",
                "Average requests-per-second over the panic window",
                |s| Some(s.panic_requests_per_second),
            ),
            (
                "autoscaler_target_requests_per_second",
                "The desired requests-per-second for each pod",
                |s| s.target_requests_per_second,
            ),
            (
                "autoscaler_excess_burst_capacity",
                "Excess burst capacity observed over the stable window",
                |s| Some(s.excess_burst_capacity),
            ),
        ];
        for (name, help, field) in families {
            let series: Vec<(Labels, f64)> = samples
                .iter()
                .filter_map(|(values, s)| {
                    let labels: Labels = REVISION_LABELS
                        .iter()
                        .copied()
                        .zip(values.iter().map(String::as_str))
                        .collect();
                    field(s).map(|v| (labels, v))
                })
                .collect();
            expose::gauges(enc, name, help, &series)?;
        }
        Ok(())
    }
}
