//! Typed errors of the connection layer. Each renders as one line, names its cause, never contains a
//! password, and has every piece of outside text escaped (see [`crate::text`]).

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::text::quoted;

/// Why a connection string (or the parameters derived from it) was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConnInfoError {
    /// The string does not follow the keyword/value or URI grammar.
    #[error("{0}")]
    Syntax(String),
    /// A keyword libpq does not know (keyword/value form or service file).
    #[error("invalid connection option {}", quoted(.0))]
    InvalidOption(String),
    /// A query parameter libpq does not know (URI form).
    #[error("invalid URI query parameter: {}", quoted(.0))]
    InvalidUriParameter(String),
    /// A keyword was recognised but its value was rejected.
    #[error("{0}")]
    InvalidValue(String),
    /// The named service could not be loaded.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// A keyword asks for something pgtls cannot do: refused rather than silently ignored.
    #[error("{keyword}={}: {reason}", crate::text::escaped(.value))]
    Unsupported {
        keyword: &'static str,
        value: String,
        reason: &'static str,
    },
}

/// Why a service could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ServiceError {
    /// No searched file has a `[service]` section.
    #[error("definition of service {} not found", quoted(.service))]
    NotFound { service: String },
    /// A service file that was named explicitly (`PGSERVICEFILE`) is missing.
    #[error("service file {} not found", quoted_path(.path))]
    FileNotFound { path: PathBuf },
    /// A line in the service's section is not `keyword=value`.
    #[error("syntax error in service file {}, line {line}: expected keyword=value", quoted_path(.path))]
    Syntax { path: PathBuf, line: usize },
    /// A line in the service's section uses a keyword libpq does not know.
    #[error(
        "syntax error in service file {}, line {line}: invalid connection option {}",
        quoted_path(.path),
        quoted(.keyword)
    )]
    InvalidOption {
        path: PathBuf,
        line: usize,
        keyword: String,
    },
    /// A service refers to another service, which libpq does not support.
    #[error("nested service specifications not supported in service file {}, line {line}", quoted_path(.path))]
    Nested { path: PathBuf, line: usize },
    /// The file exists but could not be read.
    #[error("could not read service file {}: {message}", quoted_path(.path))]
    Io { path: PathBuf, message: String },
}

pub(crate) fn quoted_path(path: &Path) -> String {
    quoted(&path.display().to_string())
}

/// Why no connection was made.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConnectError {
    /// The parameters themselves are wrong (bad keyword value, unreadable service file).
    #[error(transparent)]
    Options(#[from] ConnInfoError),
    /// Local set-up failed before anything was sent (certificate or key files, the TLS library).
    #[error("{0}")]
    Setup(String),
    /// Every host was tried; this is the last one's failure, as libpq reports it.
    #[error("connection to {endpoint} failed: {cause}")]
    Host { endpoint: String, cause: Cause },
}

impl ConnectError {
    /// The cause, when a host was reached or tried.
    pub fn cause(&self) -> Option<&Cause> {
        match self {
            ConnectError::Host { cause, .. } => Some(cause),
            _ => None,
        }
    }
}

/// What went wrong with one host. Outside text in every variant is already escaped.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Cause {
    #[error("connection refused (is the server running and accepting TCP connections on that port?)")]
    Refused,
    #[error("could not translate host name {host} to address ({detail})")]
    Dns { host: String, detail: String },
    #[error("timeout expired after {0} s (connect_timeout)")]
    Timeout(u64),
    #[error("no such socket (is the server running locally and accepting connections on that socket?)")]
    NoSocket,
    #[error("server does not support SSL, but SSL was required (sslmode={0})")]
    NoSsl(&'static str),
    #[error("server certificate {subject} issued by {issuer} is not trusted by {trust}: {reason}")]
    Untrusted {
        subject: String,
        issuer: String,
        trust: String,
        reason: String,
    },
    #[error("server certificate {subject} expired on {not_after}")]
    Expired { subject: String, not_after: String },
    #[error("server certificate {subject} has been revoked (certificate revocation list {crl})")]
    Revoked { subject: String, crl: String },
    #[error("{0}")]
    HostMismatch(String),
    #[error("SSL error: {0}")]
    Tls(String),
    /// An ErrorResponse during start-up, with its SQLSTATE.
    #[error("{message}{}", hint_text(.code))]
    Server { code: String, message: String },
    /// Authentication refused on the client side: channel binding, require_auth, a missing password.
    #[error("{0}")]
    Auth(String),
    /// target_session_attrs did not accept this server.
    #[error("{0}")]
    SessionAttrs(String),
    /// requirepeer did not match the socket's owner.
    #[error("{0}")]
    Peer(String),
    /// A message from the server broke a limit or the protocol.
    #[error("{0}")]
    Protocol(String),
    #[error("{0}")]
    Io(String),
}

/// What to do about the two start-up errors every DBA meets.
fn hint_text(code: &str) -> &'static str {
    match code {
        "28P01" => " (check the password, PGPASSWORD or .pgpass)",
        "28000" => " (pg_hba.conf refused this client)",
        _ => "",
    }
}
