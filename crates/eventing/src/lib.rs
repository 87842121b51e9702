//! Eventing's decisions, kept apart from the code that moves events: which trigger an event
//! matches (`filter`, built on the `cesql` engine), when a failed delivery is tried again or
//! goes to the dead-letter sink (`delivery`), and when a reply loop through a broker must stop
//! (`ttl`).
//!
//! Why a crate of its own: the broker's ingress and dispatcher, the channel dispatcher and the
//! API admission all need the same answers, and those answers are only trustworthy if they are
//! plain functions that table tests pin down. So nothing here does I/O, reads a clock or spawns
//! a task: events arrive as attribute look-ups, `now` arrives as an argument, and the result is
//! a value the caller acts on. Semantics follow Knative's Go code (knative/eventing
//! `pkg/eventfilter`, `pkg/kncloudevents/retries.go`, `pkg/broker/ttl.go`) and the CloudEvents
//! SQL v1 specification; where wisp deliberately differs, the module docs say so.

#![forbid(unsafe_code)]

pub mod cesql;
pub mod delivery;
pub mod filter;
pub mod ttl;
