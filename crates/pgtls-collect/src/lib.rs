//! pgtls's collector: everything that reads a server, a pooler, a log or a file and turns it into the pure layer's
//! model (`pgtls-core`), on top of the connection layer (`pgtls-conn`); no CLI, terminal or web code.
//!
//! * [`collect`]: the poller, its history service, the engine and the fleet, pooler consoles.
//! * [`logsource`] and [`pooler_logs`]: following PostgreSQL's and the poolers' logs, or reading them through SQL.
//! * [`probe`]: the TLS probes and certificate checks; [`roots`]: the bundled root certificates.
//! * [`analysis`]: the pure analysis re-exported, with the ledger's journal file and its locks.
//! * [`config`], [`targets`], [`sources`], [`files`]: the configuration, the targets, what each source can see,
//!   small-file reading.
//!
//! The binary re-exports each module under its old path (`pgtls::collect`, `pgtls::config`, ...).

pub mod analysis;
pub mod collect;
pub mod config;
pub mod files;
/// The fixtures that need the collector (a poller's history, a probe report), with the pure ones of
/// `pgtls_core::fixtures`; for tests and benches only.
#[cfg(any(test, feature = "test-support"))]
pub mod fixtures;
pub mod logsource;
pub mod pooler_logs;
pub mod probe;
pub mod roots;
pub mod sources;
pub mod targets;

// The layers below, under the names the moved modules use (`crate::model::...`, `crate::conn::...`).
pub(crate) use pgtls_conn as conn;
pub(crate) use pgtls_core::model;
#[cfg(test)]
pub(crate) use pgtls_lab::lab;
