//! The vocabulary every other wisp crate speaks: Knative `serving.knative.dev/v1`, Knative
//! Eventing's `eventing`, `messaging`, `flows` and `sources` groups, and the Kubernetes core
//! subset they embed, plus the webhook (defaulting and validation with field paths), naming
//! and traffic resolution.
//!
//! Why one pure crate: the API server, the controllers, the gateway and the CLI must agree on
//! the exact JSON shapes and on the same rules, and those rules are only trustworthy if they
//! are deterministic functions that table tests can pin down. So nothing here does I/O, reads
//! a clock or spawns a task: time arrives as an RFC 3339 string argument, lookups arrive as
//! plain maps. Shapes and messages follow Knative's Go code (knative/serving `pkg/apis`,
//! knative/eventing `pkg/apis`, knative/pkg `apis` and `kmeta`) so that Knative YAML and
//! `kubectl` keep working unchanged.

#![forbid(unsafe_code)]

pub mod admission;
pub mod core;
pub mod eventing;
pub mod kinds;
pub mod meta;
pub mod naming;
pub mod serving;
pub mod traffic;
pub mod validation;

pub mod goparse;
mod md5;
