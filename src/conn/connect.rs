//! Connecting as libpq would: try each host in order, apply sslmode's fallbacks, verify the server
//! certificate as far as sslmode and the root file say, and map it all onto tokio-postgres + native-tls.

use std::path::Path;
use std::time::Duration;

use native_tls::{Certificate, Identity, Protocol, TlsConnector};
use postgres_native_tls::MakeTlsConnector;
use tokio::task::JoinHandle;
use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres::{Client, NoTls};

use super::error::{ConnectError, FailureKind, describe};
use super::params::{ConnParams, HostTarget, RootCert, SslMode};
use super::pgpass;
use crate::model::Verification;

/// libpq waits forever by default; a dashboard must not hang on a black-holed address.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

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

async fn connect_target(params: &ConnParams, target: &HostTarget) -> Result<Connected, ConnectError> {
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
    let mut last_error = None;
    // libpq's connect_timeout bounds the whole start-up, not just the TCP connect: a server that
    // accepts and then says nothing must not hang the dashboard.
    let limit = params.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    for attempt in attempts(params.sslmode, unix_socket) {
        let config = pg_config(params, target, password.as_deref(), *attempt);
        let tls = match attempt {
            Attempt::Plain => None,
            Attempt::TlsIfOffered | Attempt::TlsRequired => Some(tls_connector(params, verification)?),
        };
        let connecting = async {
            let (client, conn_task) = match tls {
                None => {
                    let (client, conn) = config.connect(NoTls).await?;
                    (client, tokio::spawn(async move { drop(conn.await) }))
                }
                Some(tls) => {
                    let (client, conn) = config.connect(tls).await?;
                    (client, tokio::spawn(async move { drop(conn.await) }))
                }
            };
            Ok::<_, tokio_postgres::Error>((client, conn_task))
        };
        let result = match tokio::time::timeout(limit, connecting).await {
            Ok(result) => Ok(result),
            Err(_) => Err(ConnectError::new(format!(
                "connection to {} failed: timeout expired after {} s (connect_timeout)",
                super::error::endpoint(target),
                limit.as_secs()
            ))),
        };
        match result {
            Ok(Ok((client, connection))) => {
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
            Ok(Err(e)) => last_error = Some(describe(&e, params, target)),
            Err(e) => last_error = Some(e),
        }
    }
    let mut error = last_error.unwrap_or_else(|| ConnectError::new("no connection attempt was made"));
    if error.kind != FailureKind::Other {
        error = explain_certificate(error, params, target).await;
    }
    if let Some(warning) = warnings.first() {
        error = ConnectError::new(format!("{error} ({})", warning.trim_start_matches("WARNING: ")));
    }
    Err(error)
}

/// One more connection, without verification, to name the certificate in the error.
async fn explain_certificate(error: ConnectError, params: &ConnParams, target: &HostTarget) -> ConnectError {
    let (host, hostaddr, port) = (target.host.clone(), target.hostaddr, target.port);
    let fetched = tokio::task::spawn_blocking(move || {
        let addr = crate::probe::starttls::resolve(&host, hostaddr, port)?;
        crate::probe::starttls::peer_chain(&host, addr, Duration::from_secs(5))
    })
    .await;
    match fetched {
        Ok(Ok(Some(chain))) if !chain.is_empty() => super::error::with_certificate(error, &chain[0], params, target),
        _ => error,
    }
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
    config.connect_timeout(params.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT));
    if let Some(options) = &params.options {
        config.options(options);
    }
    config
}

fn tls_connector(params: &ConnParams, verification: Verification) -> Result<MakeTlsConnector, ConnectError> {
    let mut builder = TlsConnector::builder();
    match (&params.sslrootcert, verification) {
        (Some(RootCert::System), _) => {}
        (_, Verification::None) => {
            builder.danger_accept_invalid_certs(true);
        }
        (_, _) => {
            let path = root_file(params).ok_or_else(|| ConnectError::new("no root certificate file"))?;
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
    let certs = Certificate::stack_from_pem(&pem)
        .map_err(|e| ConnectError::new(format!("root certificate file \"{}\" is not PEM: {e}", path.display())))?;
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
        other => Err(ConnectError::new(format!("invalid SSL protocol version \"{other}\""))),
    }
}

/// The client certificate and key, if configured; PKCS#1 and SEC1 keys are converted to PKCS#8 in memory.
///
/// As libpq: a certificate file that does not exist means "no client certificate" (the server
/// decides whether that is enough); a key that is missing, or readable by group or others, is an error.
fn client_identity(params: &ConnParams) -> Result<Option<Identity>, ConnectError> {
    let Some(cert_path) = &params.sslcert else {
        return Ok(None);
    };
    let cert = match std::fs::read(cert_path) {
        Ok(cert) => cert,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(None);
        }
        Err(e) => {
            return Err(ConnectError::new(format!(
                "could not open certificate file \"{}\": {e}",
                cert_path.display()
            )));
        }
    };
    // libpq's default key sits beside its default root file: ~/.postgresql/postgresql.key.
    let key_path = params
        .sslkey
        .clone()
        .unwrap_or_else(|| params.default_rootcert.with_file_name("postgresql.key"));
    check_key_permissions(&key_path)?;
    let key_pem = std::fs::read(&key_path).map_err(|e| {
        ConnectError::new(format!(
            "could not read private key file \"{}\": {e}",
            key_path.display()
        ))
    })?;
    let key = match &params.sslpassword {
        Some(pass) => openssl::pkey::PKey::private_key_from_pem_passphrase(&key_pem, pass.as_bytes()),
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
    let matches = x509.public_key().map(|pk| pk.public_eq(&key)).unwrap_or(false);
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

/// libpq refuses a key others can read: 0600 or less if ours, 0640 or less if owned by root.
fn check_key_permissions(path: &Path) -> Result<(), ConnectError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|_| {
        ConnectError::new(format!(
            "certificate present, but not private key file \"{}\"",
            path.display()
        ))
    })?;
    if !meta.is_file() {
        return Err(ConnectError::new(format!(
            "private key file \"{}\" is not a regular file",
            path.display()
        )));
    }
    let euid = nix::unistd::Uid::effective().as_raw();
    let mode = meta.mode();
    let too_open = (meta.uid() == euid && mode & 0o077 != 0) || (meta.uid() == 0 && mode & 0o037 != 0);
    if too_open {
        return Err(ConnectError::new(format!(
            "private key file \"{}\" has group or world access; file must have permissions u=rw (0600) or less \
             if owned by the current user, or permissions u=rw,g=r (0640) or less if owned by root",
            path.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_order_matches_libpq() {
        assert_eq!(attempts(SslMode::Disable, false), &[Attempt::Plain]);
        assert_eq!(attempts(SslMode::Allow, false), &[Attempt::Plain, Attempt::TlsRequired]);
        assert_eq!(
            attempts(SslMode::Prefer, false),
            &[Attempt::TlsIfOffered, Attempt::Plain]
        );
        assert_eq!(attempts(SslMode::VerifyFull, false), &[Attempt::TlsRequired]);
        assert_eq!(attempts(SslMode::VerifyFull, true), &[Attempt::Plain]);
    }
}
