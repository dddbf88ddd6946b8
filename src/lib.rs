//! pgtls: see how every PostgreSQL client is connected (TLS 1.3, TLS 1.2, older, or not at all).
//!
//! Data flows one way: `collect` (poller) -> `model::Snapshot` -> `tui` state -> views.
//! The binary is a thin shell over this library so that tests, the demo and benches share one code path.
//!
//! The pure layer (model, analysis, the log-line parsers, format) is the `pgtls-core` crate, which cannot name
//! anything here; its modules are re-exported under their old names, so `crate::model::...` paths keep working.
//! So is the collector (`pgtls-collect`: collect, probe, the log readers, the ledger file, config, targets, sources,
//! files, roots), re-exported the same way.

pub use pgtls_collect::analysis;
pub mod cli;
pub mod cmd;
pub use pgtls_collect::collect;
pub use pgtls_collect::config;
pub use pgtls_collect::files;
/// The connection layer lives in its own crate; `crate::conn::...` paths keep working.
pub use pgtls_conn as conn;
/// Deterministic snapshots for unit, render and screenshot tests and the benches; not in an installed binary.
#[cfg(any(test, feature = "test-support"))]
pub mod fixtures;
pub use pgtls_collect::logsource;
pub use pgtls_core::format;
pub use pgtls_core::model;
/// The lab (a throwaway PostgreSQL and PgBouncer) lives in its own crate, as does the provisioner below; both are
/// in the demo build and the tests, not in a server build (`--no-default-features`).
#[cfg(any(feature = "demo", feature = "test-support"))]
pub use pgtls_lab::lab;
pub mod output;
pub use pgtls_collect::pooler_logs;
pub use pgtls_collect::probe;
pub use pgtls_collect::roots;
#[cfg(any(feature = "demo", feature = "test-support"))]
pub use pgtls_lab::provision;
/// The PNG rasteriser behind the README's screenshots (image + ab_glyph); not in an installed binary.
#[cfg(feature = "test-support")]
pub mod screenshot;
pub mod serve;
pub use pgtls_collect::sources;
pub use pgtls_collect::targets;
pub mod tui;
