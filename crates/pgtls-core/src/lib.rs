//! The pure layer of pgtls: what a poll and a log line become, and what pgtls concludes from them.
//!
//! * [`model`]: the snapshot of a server (sessions, settings, poolers), as every output shows it.
//! * [`analysis`]: alert rules, the what-if for raising the floor, what happened after a change, the client
//!   ledger's logic (its file is the binary's), pooler verdicts and the per-server rows of a fleet.
//! * [`logsource`]: the PostgreSQL (stderr, csvlog, jsonlog) and PgBouncer log-line parsers; following a file
//!   or reading the log through SQL is the binary's.
//! * [`own`]: the backends a process opened for itself (the lab's set-up connections), shared by whoever opens
//!   them and the collector that marks them as pgtls's own.
//! * [`mod@format`], [`safe`], [`text`]: timestamps and widths, and outside text made safe for each output.
//!
//! No runtime, no network, no file system, no command line: everything here is a function of its arguments, so
//! `cargo test -p pgtls-core` needs no server and no lab.

pub mod analysis;
/// Deterministic snapshots for unit, render and screenshot tests and the benches; not in an installed binary.
#[cfg(any(test, feature = "test-support"))]
pub mod fixtures;
pub mod format;
pub mod logsource;
pub mod model;
pub mod own;
pub mod safe;
pub mod text;
