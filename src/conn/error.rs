//! One clear line per connection failure, naming the cause. Never includes a password.

use std::error::Error as _;
use std::fmt;

use tokio_postgres::error::SqlState;

use super::params::{ConnParams, HostTarget};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectError {
    message: String,
    pub kind: FailureKind,
}

/// Failures whose message improves once we know the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    CertificateUntrusted,
    HostNameMismatch,
    CertificateExpired,
    Other,
}

impl ConnectError {
    pub fn new(message: impl Into<String>) -> Self {
        ConnectError {
            message: message.into(),
            kind: FailureKind::Other,
        }
    }

    fn of_kind(kind: FailureKind, message: impl Into<String>) -> Self {
        ConnectError {
            message: message.into(),
            kind,
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConnectError {}

/// `host:port` or the socket path, as psql names a server.
pub fn endpoint(target: &HostTarget) -> String {
    if target.host.starts_with('/') {
        format!(
            "socket \"{}/.s.PGSQL.{}\"",
            target.host.trim_end_matches('/'),
            target.port
        )
    } else if let Some(addr) = target.hostaddr {
        format!("{} ({addr}) port {}", target.host, target.port)
    } else {
        format!("{} port {}", target.host, target.port)
    }
}

/// Turn a tokio-postgres error into one line that says what went wrong and, where it helps, what to do.
pub fn describe(error: &tokio_postgres::Error, params: &ConnParams, target: &HostTarget) -> ConnectError {
    let at = endpoint(target);
    if let Some(db) = error.as_db_error() {
        let hint = match *db.code() {
            SqlState::INVALID_PASSWORD => " (check the password, PGPASSWORD or .pgpass)",
            SqlState::INVALID_AUTHORIZATION_SPECIFICATION => " (pg_hba.conf refused this client)",
            _ => "",
        };
        return ConnectError::new(format!("connection to {at} failed: {}{hint}", db.message()));
    }
    let chain = cause_chain(error);
    let lower = chain.to_lowercase();
    let kind = if lower.contains("hostname mismatch") {
        FailureKind::HostNameMismatch
    } else if lower.contains("certificate has expired") {
        FailureKind::CertificateExpired
    } else if lower.contains("certificate verify failed") {
        FailureKind::CertificateUntrusted
    } else {
        FailureKind::Other
    };
    let cause = if lower.contains("connection refused") {
        "connection refused (is the server running and accepting TCP connections on that port?)".to_string()
    } else if lower.contains("failed to lookup address") || lower.contains("name or service not known") {
        "could not translate host name to address (DNS lookup failed)".to_string()
    } else if lower.contains("timeout") || lower.contains("timed out") {
        "timeout expired while connecting".to_string()
    } else if lower.contains("server does not support tls") || lower.contains("server does not support ssl") {
        format!(
            "server does not support SSL, but SSL was required (sslmode={})",
            params.sslmode
        )
    } else if lower.contains("hostname mismatch") {
        format!(
            "server certificate does not match host name \"{}\" (certificate verify failed: hostname mismatch)",
            target.host
        )
    } else if lower.contains("certificate has expired") {
        "server certificate has expired (certificate verify failed)".to_string()
    } else if lower.contains("certificate verify failed") {
        format!(
            "server certificate is not trusted by {}: {}",
            trust_source(params),
            openssl_reason(&chain)
        )
    } else if lower.contains("password missing") {
        "the server asked for a password but none was supplied (password=, PGPASSWORD or a matching .pgpass line)"
            .to_string()
    } else if lower.contains("no such file or directory") && target.host.starts_with('/') {
        "no such socket (is the server running locally and accepting connections on that socket?)".to_string()
    } else {
        chain
    };
    ConnectError::of_kind(kind, format!("connection to {at} failed: {cause}"))
}

/// Say which certificate failed and why, from the chain the server sent (fetched without verifying).
pub fn with_certificate(
    error: ConnectError,
    leaf: &openssl::x509::X509,
    params: &ConnParams,
    target: &HostTarget,
) -> ConnectError {
    use crate::probe::certinfo::name;
    use crate::probe::starttls::names;
    let subject = |c: &openssl::x509::X509| name(c.subject_name());
    let at = endpoint(target);
    let issuer = name(leaf.issuer_name());
    let message = match error.kind {
        FailureKind::HostNameMismatch => {
            let names = names(leaf);
            let first = names.first().cloned().unwrap_or_default();
            let others = match names.len() {
                0 | 1 => String::new(),
                n => format!(
                    " (and {} other name{}: {})",
                    n - 1,
                    if n == 2 { "" } else { "s" },
                    names[1..].join(", ")
                ),
            };
            format!(
                "connection to {at} failed: server certificate for \"{first}\"{others} does not match host name \"{}\"",
                target.host
            )
        }
        FailureKind::CertificateExpired => format!(
            "connection to {at} failed: server certificate \"{}\" expired on {}",
            subject(leaf),
            leaf.not_after()
        ),
        FailureKind::CertificateUntrusted => format!(
            "connection to {at} failed: server certificate \"{}\" issued by \"{issuer}\" is not trusted by {}",
            subject(leaf),
            trust_source(params)
        ),
        FailureKind::Other => return error,
    };
    ConnectError::of_kind(error.kind, message)
}

fn trust_source(params: &ConnParams) -> String {
    match &params.sslrootcert {
        Some(super::params::RootCert::System) => "the system's trusted roots".to_string(),
        Some(super::params::RootCert::File(p)) => format!("root file \"{}\"", p.display()),
        None => format!("root file \"{}\"", params.default_rootcert.display()),
    }
}

/// The reason OpenSSL gives inside "certificate verify failed (...)".
fn openssl_reason(chain: &str) -> String {
    chain
        .split_once("certificate verify failed")
        .and_then(|(_, rest)| {
            rest.split_once('(')
                .and_then(|(_, r)| r.split_once(')'))
                .map(|(reason, _)| reason.to_string())
        })
        .unwrap_or_else(|| "certificate verify failed".to_string())
}

/// The error and all its sources, deduplicated, joined with ": ".
fn cause_chain(error: &tokio_postgres::Error) -> String {
    let mut parts: Vec<String> = vec![error.to_string()];
    let mut source = error.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_is_taken_from_the_openssl_message() {
        let chain = "error performing TLS handshake: error:0A000086:SSL routines:tls_post_process_server_certificate:certificate verify failed:../ssl/statem/statem_clnt.c:1889: (self-signed certificate in certificate chain)";
        assert_eq!(openssl_reason(chain), "self-signed certificate in certificate chain");
    }
}
