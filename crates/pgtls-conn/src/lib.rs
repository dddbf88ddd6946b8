//! Connect to PostgreSQL exactly as libpq 18 (and so psql) would, on OpenSSL.
//!
//! ```text
//! resolve(conninfo, &Environment) -> ConnParams     connection string or URI, service file, PG* variables
//! connect(&ConnParams) -> Connection                  { client, task (drive it), report }
//! ```
//!
//! Every libpq keyword is applied with libpq's meaning or refused with a one-line reason ([`rules::KEYWORDS`]
//! says which). Errors are typed ([`ConnectError`], [`ConnInfoError`]), one line each, with outside text
//! escaped and passwords never shown. The crate knows nothing of the dashboard.

pub mod chain;
pub mod connect;
pub mod conninfo;
pub mod error;
pub mod files;
pub mod inspect;
pub mod own_sockets;
pub mod params;
pub mod pgpass;
pub mod rules;
pub mod service;
mod session_attrs;
pub mod socket;
/// Outside text made safe to quote: defined in the pure layer (`pgtls-core`), whose log parsers use it too.
pub use pgtls_core::text;
pub mod tls;
pub mod tls_context;
mod tls_setup;

pub use connect::{ConnectReport, Connection, ConnectionTask, cancel, connect};
pub use error::{Cause, ConnInfoError, ConnectError, ServiceError};
pub use params::{ConnParams, Environment, PsqlOptions, resolve, resolve_psql};

/// What the client verified about the server's certificate: defined in the pure layer (`pgtls-core`), whose
/// snapshot model records it.
pub use pgtls_core::model::Verification;

/// The TLS session as the handshake negotiated it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsReport {
    /// OpenSSL's name: `TLSv1.3`, `TLSv1.2`, ...
    pub version: String,
    pub cipher: String,
    pub bits: i32,
    pub verification: Verification,
    /// A CRL was loaded and checked for the whole chain.
    pub crl_checked: bool,
    /// Subjects of the certificates the server sent, leaf first.
    pub server_chain: Vec<String>,
}
