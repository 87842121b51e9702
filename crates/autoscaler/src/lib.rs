//! wisp's autoscaler: Knative's KPA (knative/serving `pkg/autoscaler`,
//! `pkg/reconciler/autoscaling/kpa`) as pure decision logic.
//!
//! It owns the math and the state of scaling one revision: the global `config-autoscaler`
//! defaults ([`Config`]), a revision's resolved settings ([`Spec`]), the metric windows fed by
//! the gateway ([`Collector`], [`RequestMeter`]) and the per-revision state machine that turns
//! them into a replica count ([`Autoscaler`] → [`Decision`]). It must not do I/O, spawn tasks
//! or read a clock: every call takes `now`, so a test replays minutes of load in microseconds
//! and every decision can be explained from its inputs. The daemon wires it: the gateway calls
//! [`Collector::observe`] and [`Autoscaler::poke`], a task calls [`Autoscaler::decide`] every
//! [`TICK_INTERVAL`] and hands [`Decision::desired`] to the runtime.
//!
//! ## What Knative does, and what wisp keeps
//! Knative's queue-proxy measures each pod's average concurrency and request rate every second;
//! the autoscaler scrapes them into one-second buckets and averages them over a stable window
//! (60 s) and a panic window (10% of it). Every 2 s it wants `ceil(average / target)` replicas,
//! bounded by how fast it may scale up (x1000) and down (/2) per decision. When the panic
//! window alone asks for twice the ready replicas it panics: it follows the faster window and
//! refuses to scale down until a stable window passes calmly. Annotations bound the result
//! (`min-scale`, `max-scale`, `initial-scale`, `activation-scale`) and delay scale-downs
//! (`scale-down-delay`). A revision without traffic for the stable window becomes inactive;
//! after the grace period it goes to zero, and the activator holds the next request while it
//! pokes the autoscaler to scale up at once. wisp keeps all of this — the same keys, defaults,
//! validation messages, bucket arithmetic (partial windows, the weighted-exponential variant)
//! and decision formula — so a Knative user's annotations behave the same.
//!
//! ## Where wisp differs, and why
//! wisp's gateway sees every request directly, where Knative samples pods: there is no scraping
//! and no sampling, the gateway adds concurrency-seconds to the current bucket
//! ([`collector`] docs), and silent seconds count as zeros while replicas are ready, which is
//! what Knative's scraper would have recorded. The gateway is always in the request path, so
//! there is no activator to thread in or out: excess burst capacity is still computed, for
//! faithful metrics, but decides nothing; the grace period is kept as a warm-replica delay after
//! the stable window ([`autoscaler`] docs). A request at zero pokes the autoscaler directly.

#![forbid(unsafe_code)]

pub mod autoscaler;
pub mod collector;
pub mod config;

pub mod spec;
mod window;

pub use autoscaler::{Activity, Autoscaler, Decision, Mode, Reason, TICK_INTERVAL};
pub use collector::{Collector, RequestMeter, Stats};
pub use config::{Config, ConfigError, KEYS};
pub use spec::{Aggregation, BUCKET_SIZE, Metric, Spec, SpecError};
