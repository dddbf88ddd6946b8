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
pub mod params;
pub mod pgpass;
pub mod rules;
pub mod service;
mod session_attrs;
pub mod socket;
pub mod text;
pub mod tls;
mod tls_setup;

use serde::{Deserialize, Serialize};

pub use connect::{ConnectReport, Connection, ConnectionTask, cancel, connect};
pub use error::{Cause, ConnInfoError, ConnectError, ServiceError};
pub use params::{ConnParams, Environment, PsqlOptions, resolve, resolve_psql};

/// What the client verified about the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verification {
    /// Not TLS at all.
    NotTls,
    /// TLS, but the certificate was not checked (sslmode require/prefer/allow without a root file).
    None,
    /// The chain was checked against trusted roots, the host name was not (verify-ca).
    Chain,
    /// Chain and host name were checked (verify-full).
    ChainAndHost,
}

impl Verification {
    pub fn label(self) -> &'static str {
        match self {
            Verification::NotTls => "not TLS",
            Verification::None => "not verified",
            Verification::Chain => "chain verified",
            Verification::ChainAndHost => "chain + host verified",
        }
    }
}

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
