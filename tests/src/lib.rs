//! End-to-end tests of wisp, black-box: the real `wisp` binary (daemon and CLI), real SQLite
//! files on disk, real `kubectl`, plain HTTP. They live in `tests/*.rs`, one file per area,
//! sharing the harness in `tests/common/mod.rs` (start/kill/restart a daemon on its own ports
//! and data dir, run the CLI and kubectl against it, a small HTTP/1.1 client, polling with a
//! deadline). Each test starts its own daemon, so tests run in parallel.
//!
//! Run: `cargo build -p wisp -p wisp-testapp && cargo test -p wisp-e2e` (the harness refuses a missing or
//! stale `target/debug/wisp`; `WISP_BIN` points it at another binary). `kubectl` must be
//! installed: its absence fails the tests rather than skipping them.
