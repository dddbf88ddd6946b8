//! Connecting as libpq would: try each host in order, apply sslmode's fallbacks, verify the server
//! certificate as far as sslmode and the root file say, and map it all onto tokio-postgres + native-tls.

use std::path::Path;
use std::time::Duration;

use native_tls::{Certificate, Identity, Protocol, TlsConnector};
use postgres_native_tls::MakeTlsConnector;
use tokio::task::JoinHandle;
use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres::{Client, NoTls};

use super::error::{ConnectError, describe};
use super::params::{ConnParams, HostTarget, RootCert, SslMode};
use super::pgpass;
use crate::model::Verification;

/// A live connection and how it was made.
pub struct Connected {
    pub client: Client,
    /// The host (or socket directory) and port that answered.
    pub host: String,
    pub port: u16,
    pub sslmode: SslMode,
    /// How far the server certificate was checked, should this connection use TLS.
    pub verification_if_tls: Verification,
    /// Non-fatal notes, e.g. a .pgpass file ignored for its permissions.
    pub warnings: Vec<String>,
    connection: JoinHandle<()>,
}

impl Connected {
    /// True once the server closed the connection or the socket failed.
    pub fn is_closed(&self) -> bool {
        self.client.is_closed() || self.connection.is_finished()
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

/// One attempt's transport: which sslmode to hand tokio-postgres and whether TLS is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    Plain,
    /// TLS if the server agrees; plaintext on the server's 'N' (tokio-postgres Prefer).
    TlsIfOffered,
    TlsRequired,
}

/// libpq's order of attempts for each sslmode.
fn attempts(mode: SslMode, unix_socket: bool) -> &'static [Attempt] {
    if unix_socket {
        // libpq never asks for TLS over a Unix socket, whatever sslmode says.
        return &[Attempt::Plain];
    }
    match mode {
        SslMode::Disable => &[Attempt::Plain],
        // allow: plaintext first, TLS only if the server refuses plaintext.
        SslMode::Allow => &[Attempt::Plain, Attempt::TlsRequired],
        // prefer: TLS first; any failure after that retries in plaintext (libpq does, tokio-postgres does not).
        SslMode::Prefer => &[Attempt::TlsIfOffered, Attempt::Plain],
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => &[Attempt::TlsRequired],
    }
}

/// What libpq checks for a mode: verify-* as named; weaker modes check the chain when a root file exists.
pub fn verification_for(params: &ConnParams) -> Verification {
    match params.sslmode {
        SslMode::VerifyFull => Verification::ChainAndHost,
        SslMode::VerifyCa => Verification::Chain,
        _ if root_file(params).is_some_and(|p| p.exists()) => Verification::Chain,
        _ => Verification::None,
    }
}

/// The root certificate file in force: the explicit one, else ~/.postgresql/root.crt.
fn root_file(params: &ConnParams) -> Option<&Path> {
    match &params.sslrootcert {
        Some(RootCert::File(path)) => Some(path),
        Some(RootCert::System) => None,
        None => Some(&params.default_rootcert),
    }
}

pub async fn connect(params: &ConnParams) -> Result<Connected, ConnectError> {
    let mut last_error = None;
    for target in &params.targets {
        match connect_target(params, target).await {
            Ok(connected) => return Ok(connected),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| ConnectError::new("no host to connect to")))
}

async fn connect_target(
    params: &ConnParams,
    target: &HostTarget,
) -> Result<Connected, ConnectError> {
    let unix_socket = target.host.starts_with('/');
    let mut warnings = Vec::new();
    let password = match &params.password {
        Some(p) => Some(p.clone()),
        None => {
            let found = pgpass::lookup(
                &params.passfile,
                &target.host,
                target.port,
                &params.dbname,
                &params.user,
            );
            warnings.extend(found.warning);
            found.password
        }
    };
    let verification = verification_for(params);
    let mut tls: Option<MakeTlsConnector> = None;
    let mut last_error = None;
    for attempt in attempts(params.sslmode, unix_socket) {
        let config = pg_config(params, target, password.as_deref(), *attempt);
        let result = match attempt {
            Attempt::Plain => match config.connect(NoTls).await {
                Ok((client, conn)) => Ok((client, tokio::spawn(async move { drop(conn.await) }))),
                Err(e) => Err(e),
            },
            Attempt::TlsIfOffered | Attempt::TlsRequired => {
                if tls.is_none() {
                    tls = Some(tls_connector(params, verification)?);
                }
                let connector = tls
                    .clone()
                    .ok_or_else(|| ConnectError::new("TLS set-up failed"))?;
                match config.connect(connector).await {
                    Ok((client, conn)) => {
                        Ok((client, tokio::spawn(async move { drop(conn.await) })))
                    }
                    Err(e) => Err(e),
                }
            }
        };
        match result {
            Ok((client, connection)) => {
                return Ok(Connected {
                    client,
                    host: target.host.clone(),
                    port: target.port,
                    sslmode: params.sslmode,
                    verification_if_tls: verification,
                    warnings,
                    connection,
                });
            }
            Err(e) => last_error = Some(describe(&e, params, target)),
        }
    }
    Err(last_error.unwrap_or_else(|| ConnectError::new("no connection attempt was made")))
}

fn pg_config(
    params: &ConnParams,
    target: &HostTarget,
    password: Option<&str>,
    attempt: Attempt,
) -> tokio_postgres::Config {
    let mut config = tokio_postgres::Config::new();
    if target.host.starts_with('/') {
        config.host_path(&target.host);
    } else {
        config.host(&target.host);
    }
    if let Some(addr) = target.hostaddr {
        config.hostaddr(addr);
    }
    config
        .port(target.port)
        .user(&params.user)
        .dbname(&params.dbname)
        .application_name(&params.application_name)
        .ssl_mode(match attempt {
            Attempt::Plain => PgSslMode::Disable,
            Attempt::TlsIfOffered => PgSslMode::Prefer,
            Attempt::TlsRequired => PgSslMode::Require,
        });
    if let Some(password) = password {
        config.password(password);
    }
    if let Some(timeout) = params.connect_timeout {
        config.connect_timeout(timeout);
    } else {
        // libpq waits forever by default; a dashboard must not hang on a black-holed address.
        config.connect_timeout(Duration::from_secs(30));
    }
    if let Some(options) = &params.options {
        config.options(options);
    }
    config
}

fn tls_connector(
    params: &ConnParams,
    verification: Verification,
) -> Result<MakeTlsConnector, ConnectError> {
    let mut builder = TlsConnector::builder();
    match (&params.sslrootcert, verification) {
        (Some(RootCert::System), _) => {}
        (_, Verification::None) => {
            builder.danger_accept_invalid_certs(true);
        }
        (_, _) => {
            let path =
                root_file(params).ok_or_else(|| ConnectError::new("no root certificate file"))?;
            for cert in read_roots(path)? {
                builder.add_root_certificate(cert);
            }
            builder.disable_built_in_roots(true);
            if verification == Verification::Chain {
                builder.danger_accept_invalid_hostnames(true);
            }
        }
    }
    if let Some(v) = &params.ssl_min_protocol_version {
        builder.min_protocol_version(Some(protocol(v)?));
    }
    if let Some(v) = &params.ssl_max_protocol_version {
        builder.max_protocol_version(Some(protocol(v)?));
    }
    if let Some(identity) = client_identity(params)? {
        builder.identity(identity);
    }
    let connector = builder
        .build()
        .map_err(|e| ConnectError::new(format!("cannot set up TLS: {e}")))?;
    Ok(MakeTlsConnector::new(connector))
}

/// Every certificate in the bundle is trusted: managed services ask clients to trust several roots during rotations.
fn read_roots(path: &Path) -> Result<Vec<Certificate>, ConnectError> {
    let pem = std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ConnectError::new(format!(
                "root certificate file \"{}\" does not exist (provide it, use sslrootcert=system, or use an sslmode that does not verify the server)",
                path.display()
            ))
        } else {
            ConnectError::new(format!("could not read root certificate file \"{}\": {e}", path.display()))
        }
    })?;
    let certs = Certificate::stack_from_pem(&pem).map_err(|e| {
        ConnectError::new(format!(
            "root certificate file \"{}\" is not PEM: {e}",
            path.display()
        ))
    })?;
    if certs.is_empty() {
        return Err(ConnectError::new(format!(
            "root certificate file \"{}\" holds no certificate",
            path.display()
        )));
    }
    Ok(certs)
}

fn protocol(name: &str) -> Result<Protocol, ConnectError> {
    match name {
        "TLSv1" => Ok(Protocol::Tlsv10),
        "TLSv1.1" => Ok(Protocol::Tlsv11),
        "TLSv1.2" => Ok(Protocol::Tlsv12),
        "TLSv1.3" => Ok(Protocol::Tlsv13),
        other => Err(ConnectError::new(format!(
            "invalid SSL protocol version \"{other}\""
        ))),
    }
}

/// The client certificate and key, if configured; PKCS#1 and SEC1 keys are converted to PKCS#8 in memory.
fn client_identity(params: &ConnParams) -> Result<Option<Identity>, ConnectError> {
    let Some(cert_path) = &params.sslcert else {
        return Ok(None);
    };
    let key_path = params
        .sslkey
        .clone()
        .unwrap_or_else(|| cert_path.with_extension("key"));
    let read = |path: &Path, what: &str| {
        std::fs::read(path).map_err(|e| {
            ConnectError::new(format!("could not read {what} \"{}\": {e}", path.display()))
        })
    };
    let cert = read(cert_path, "certificate file")?;
    let key_pem = read(&key_path, "private key file")?;
    let key = match &params.sslpassword {
        Some(pass) => {
            openssl::pkey::PKey::private_key_from_pem_passphrase(&key_pem, pass.as_bytes())
        }
        None => openssl::pkey::PKey::private_key_from_pem(&key_pem),
    }
    .map_err(|_| {
        ConnectError::new(format!(
            "could not load private key file \"{}\" (not a PEM key, or wrong sslpassword)",
            key_path.display()
        ))
    })?;
    let x509 = openssl::x509::X509::from_pem(&cert).map_err(|_| {
        ConnectError::new(format!(
            "certificate file \"{}\" is not a PEM certificate",
            cert_path.display()
        ))
    })?;
    let matches = x509
        .public_key()
        .map(|pk| pk.public_eq(&key))
        .unwrap_or(false);
    if !matches {
        return Err(ConnectError::new(format!(
            "private key \"{}\" does not match certificate \"{}\"",
            key_path.display(),
            cert_path.display()
        )));
    }
    let pkcs8 = key
        .private_key_to_pem_pkcs8()
        .map_err(|e| ConnectError::new(format!("cannot convert the private key: {e}")))?;
    Identity::from_pkcs8(&cert, &pkcs8).map(Some).map_err(|e| {
        ConnectError::new(format!(
            "cannot use client certificate \"{}\": {e}",
            cert_path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_order_matches_libpq() {
        assert_eq!(attempts(SslMode::Disable, false), &[Attempt::Plain]);
        assert_eq!(
            attempts(SslMode::Allow, false),
            &[Attempt::Plain, Attempt::TlsRequired]
        );
        assert_eq!(
            attempts(SslMode::Prefer, false),
            &[Attempt::TlsIfOffered, Attempt::Plain]
        );
        assert_eq!(
            attempts(SslMode::VerifyFull, false),
            &[Attempt::TlsRequired]
        );
        assert_eq!(attempts(SslMode::VerifyFull, true), &[Attempt::Plain]);
    }
}
