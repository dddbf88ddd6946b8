//! The fixtures: the pure ones (snapshots, sessions, settings) are `pgtls_core::fixtures`, the ones that need the
//! collector (the poller's history, a probe report) `pgtls_collect::fixtures`; both reached through this module.

pub use pgtls_collect::fixtures::*;
