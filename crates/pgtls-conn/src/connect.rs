//! Connecting as libpq 18 does: hosts and their addresses in order (or shuffled), sslmode's attempts per
//! address, OpenSSL with libpq's verification rules, the authentication rules enforced on the wire, then
//! target_session_attrs. Failures move on to the next address or host exactly where libpq moves on.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream, UnixStream};
use tokio_postgres::config::{ChannelBinding, SslMode as PgSslMode, SslNegotiation};
use tokio_postgres::tls::NoTls;
use tokio_postgres::{Client, Config};

use crate::error::{Cause, ConnectError};
use crate::inspect::{AuthPolicy, CancelKey, Inspector, Layer, Observed, Received, Refusal};
use crate::params::{ConnParams, HostTarget, SslMode};
use crate::pgpass;
use crate::rules::{ChannelBindingMode, TargetSessionAttrs};
use crate::session_attrs;
use crate::socket::{self, SocketReport};
use crate::text::escaped;
use crate::tls_setup::{self, TlsCapture, TlsSetup};
use crate::{TlsReport, Verification};

/// libpq waits forever by default; a dashboard must not hang on a black-holed address.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The connection's I/O task: run it (e.g. `tokio::spawn`) and watch it; it ends when the connection does.
pub type ConnectionTask = Pin<Box<dyn Future<Output = Result<(), tokio_postgres::Error>> + Send>>;

/// What was negotiated and verified, for the caller to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectReport {
    /// The host (or socket directory) and port that answered.
    pub host: String,
    pub port: u16,
    /// The address connected to; `None` for a Unix socket.
    pub addr: Option<SocketAddr>,
    /// This end of the TCP connection, as the server sees the client (a pooler's `SHOW CLIENTS` lists it as
    /// `addr:port`); `None` for a Unix socket.
    pub local_addr: Option<SocketAddr>,
    pub sslmode: SslMode,
    /// How far the server certificate was checked, should this connection use TLS.
    pub verification_if_tls: Verification,
    /// `None` when the connection is not TLS.
    pub tls: Option<TlsReport>,
    /// Authentication requests the server sent (`scram-sha-256`, `password`, ...); empty for trust or cert.
    pub auth_methods: Vec<&'static str>,
    /// The SCRAM exchange was bound to the TLS channel.
    pub channel_bound: bool,
    /// Socket options as read back from the socket after they were set.
    pub socket: Option<SocketReport>,
    /// Non-fatal notes, e.g. a .pgpass file ignored for its permissions.
    pub warnings: Vec<String>,
    /// What [`cancel`] needs to stop this session's running query.
    pub cancel_key: Option<CancelKey>,
    /// The certificates the server sent in this connection's handshake, leaf first, DER; empty when not TLS. The
    /// certificate probe reads the chain from here instead of a handshake of its own.
    pub peer_chain: Vec<Vec<u8>>,
}

/// Ask the server to cancel the query running on the session `report` describes, as libpq's PQcancel
/// does: a CancelRequest on a new plaintext connection (the server takes it before any TLS), bounded by
/// `limit`. The server never answers; success means only that the request was delivered.
pub async fn cancel(report: &ConnectReport, limit: Duration) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let key = report
        .cancel_key
        .as_ref()
        .ok_or_else(|| std::io::Error::other("the server sent no cancel key"))?;
    let mut request = Vec::with_capacity(12 + key.secret.len());
    let length = u32::try_from(12 + key.secret.len()).map_err(std::io::Error::other)?;
    request.extend_from_slice(&length.to_be_bytes());
    request.extend_from_slice(&80_877_102u32.to_be_bytes());
    request.extend_from_slice(&key.pid.to_be_bytes());
    request.extend_from_slice(&key.secret);
    let send = async {
        match report.addr {
            Some(addr) => TcpStream::connect(addr).await?.write_all(&request).await,
            None => {
                UnixStream::connect(socket::unix_path(&report.host, report.port))
                    .await?
                    .write_all(&request)
                    .await
            }
        }
    };
    tokio::time::timeout(limit, send)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "cancel request timed out"))?
}

/// A live connection: the client, the task the caller must drive, and the report.
pub struct Connection {
    pub client: Client,
    pub task: ConnectionTask,
    pub report: ConnectReport,
    /// Message bytes read from the server so far, start-up included.
    pub received: Received,
}

/// One attempt's transport, in libpq's order for the sslmode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    Plain,
    /// TLS if the server agrees; plaintext on the server's 'N'.
    TlsIfOffered,
    TlsRequired,
}

fn attempts(mode: SslMode, unix_socket: bool) -> &'static [Attempt] {
    if unix_socket {
        // libpq never asks for TLS over a Unix socket, whatever sslmode says.
        return &[Attempt::Plain];
    }
    match mode {
        SslMode::Disable => &[Attempt::Plain],
        // allow: plaintext first, TLS only if the server refuses plaintext.
        SslMode::Allow => &[Attempt::Plain, Attempt::TlsRequired],
        // prefer: TLS first; a failure after that retries in plaintext (libpq does, tokio-postgres does not).
        SslMode::Prefer => &[Attempt::TlsIfOffered, Attempt::Plain],
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => &[Attempt::TlsRequired],
    }
}

/// What libpq checks for a mode (defined with the TLS set-up, which decides it).
pub use crate::tls_setup::verification_for;

/// Where a failure leaves the search, as libpq decides it.
#[derive(Debug)]
enum Next {
    /// Try the next address of this host (connect refused, timeout, socket set-up).
    Address,
    /// Try the next host (DNS, 57P03, target_session_attrs).
    Host,
    /// Stop: TLS, authentication, server FATAL and client-side refusals end the whole connect.
    Stop,
}

struct Failure {
    next: Next,
    cause: Cause,
    endpoint: String,
}

impl Failure {
    fn into_error(self) -> ConnectError {
        ConnectError::Host {
            endpoint: self.endpoint,
            cause: self.cause,
        }
    }
}

/// Connect with `params` as libpq would.
pub async fn connect(params: &ConnParams) -> Result<Connection, ConnectError> {
    let setup = TlsSetup::new(params)?;
    let mut targets = params.targets.clone();
    if params.rules.load_balance_random {
        shuffle(&mut targets);
    }
    // prefer-standby: a first pass that only takes a standby, then any server.
    let passes: &[TargetSessionAttrs] = match params.rules.target_session_attrs {
        TargetSessionAttrs::PreferStandby => &[TargetSessionAttrs::Standby, TargetSessionAttrs::Any],
        ref one => std::slice::from_ref(one),
    };
    let mut last: Option<Failure> = None;
    for wanted in passes {
        for target in &targets {
            match connect_host(params, &setup, target, *wanted).await {
                Ok(connection) => return Ok(connection),
                Err(failure) if matches!(failure.next, Next::Stop) => return Err(failure.into_error()),
                Err(failure) => last = Some(failure),
            }
        }
    }
    Err(last.map_or_else(
        || ConnectError::Setup("no host to connect to".to_string()),
        Failure::into_error,
    ))
}

/// Fisher-Yates with OpenSSL's generator: load_balance_hosts=random needs no other source of randomness.
fn shuffle<T>(items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let mut bytes = [0u8; 8];
        if openssl::rand::rand_bytes(&mut bytes).is_err() {
            return;
        }
        let j = (u64::from_le_bytes(bytes) % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// libpq's name for a server in errors: `server at "host" (addr), port N` or `server on socket "..."`.
fn endpoint(target: &HostTarget, addr: Option<SocketAddr>) -> String {
    if target.is_unix_socket() {
        return format!(
            "server on socket \"{}/.s.PGSQL.{}\"",
            escaped(target.host.trim_end_matches('/')),
            target.port
        );
    }
    match addr {
        Some(a) if a.ip().to_string() != target.host => {
            format!(
                "server at \"{}\" ({}), port {}",
                escaped(&target.host),
                a.ip(),
                target.port
            )
        }
        _ => format!("server at \"{}\", port {}", escaped(&target.host), target.port),
    }
}

async fn connect_host(
    params: &ConnParams,
    setup: &TlsSetup,
    target: &HostTarget,
    wanted: TargetSessionAttrs,
) -> Result<Connection, Failure> {
    let found = match &params.password {
        Some(_) => pgpass::PgpassLookup::default(),
        None => params.password_for(target),
    };
    let password = params.password.clone().or(found.password);
    let warnings: Vec<String> = params.warnings.iter().cloned().chain(found.warning).collect();
    let limit = params.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);

    let addrs: Vec<Option<SocketAddr>> = if target.is_unix_socket() {
        vec![None]
    } else if let Some(ip) = target.hostaddr {
        vec![Some(SocketAddr::new(ip, target.port))]
    } else {
        let resolved = tokio::time::timeout(limit, tokio::net::lookup_host((target.host.as_str(), target.port))).await;
        let mut addrs: Vec<Option<SocketAddr>> = match resolved {
            Ok(Ok(addrs)) => addrs.map(Some).collect(),
            Ok(Err(e)) => {
                return Err(Failure {
                    next: Next::Host,
                    cause: Cause::Dns {
                        host: format!("\"{}\"", escaped(&target.host)),
                        detail: escaped(&e.to_string()),
                    },
                    endpoint: endpoint(target, None),
                });
            }
            Err(_) => {
                return Err(Failure {
                    next: Next::Host,
                    cause: Cause::Timeout(limit.as_secs()),
                    endpoint: endpoint(target, None),
                });
            }
        };
        if params.rules.load_balance_random {
            shuffle(&mut addrs);
        }
        addrs
    };

    let mut last = None;
    for addr in addrs {
        let at = endpoint(target, addr);
        match connect_addr(params, setup, target, addr, password.as_deref(), limit).await {
            Ok(mut connection) => {
                // The check's queries need the connection task running; drive both until the check ends.
                let checked = {
                    let check = tokio::time::timeout(limit, session_attrs::check(&connection.client, wanted));
                    tokio::pin!(check);
                    tokio::select! {
                        result = &mut check => result.unwrap_or(Err(Cause::Timeout(limit.as_secs()))),
                        _ = &mut connection.task => Err(Cause::Io("server closed the connection unexpectedly".to_string())),
                    }
                };
                if let Err(cause) = checked {
                    return Err(Failure {
                        next: Next::Host,
                        cause,
                        endpoint: at,
                    });
                }
                connection.report.warnings = warnings;
                return Ok(connection);
            }
            Err((Next::Address, cause)) => {
                last = Some(Failure {
                    next: Next::Host,
                    cause,
                    endpoint: at,
                })
            }
            Err((next, cause)) => {
                return Err(Failure {
                    next,
                    cause,
                    endpoint: at,
                });
            }
        }
    }
    let mut failure = last.unwrap_or(Failure {
        next: Next::Host,
        cause: Cause::Io("no address to connect to".to_string()),
        endpoint: endpoint(target, None),
    });
    // The .pgpass warning explains many a failure ("password authentication failed" after an ignored file).
    if let (Some(warning), Cause::Server { message, .. }) = (warnings.first(), &mut failure.cause) {
        message.push_str(&format!(" ({})", warning.trim_start_matches("WARNING: ")));
    }
    Err(failure)
}

/// Every attempt sslmode asks for at one address; the first that works wins.
async fn connect_addr(
    params: &ConnParams,
    setup: &TlsSetup,
    target: &HostTarget,
    addr: Option<SocketAddr>,
    password: Option<&str>,
    limit: Duration,
) -> Result<Connection, (Next, Cause)> {
    let plan = attempts(params.sslmode, target.is_unix_socket());
    let mut last = None;
    for (i, attempt) in plan.iter().enumerate() {
        let more = i + 1 < plan.len();
        let outcome = tokio::time::timeout(limit, attempt_once(params, setup, target, addr, password, *attempt)).await;
        match outcome {
            Ok(Ok(connection)) => return Ok(connection),
            Ok(Err((Next::Stop, cause))) if more && retry_in_next_mode(&cause) => last = Some(cause),
            Ok(Err(failure)) => return Err(failure),
            Err(_) => return Err((Next::Address, Cause::Timeout(limit.as_secs()))),
        }
    }
    Err((
        Next::Stop,
        last.unwrap_or(Cause::Io("no connection attempt was made".to_string())),
    ))
}

/// libpq reconnects in the next sslmode attempt after a TLS failure or a server error, never after
/// its own refusal (require_auth, channel_binding, sslcertmode) or a 57P03.
fn retry_in_next_mode(cause: &Cause) -> bool {
    match cause {
        Cause::Server { code, .. } => code != "57P03",
        Cause::Auth(_) | Cause::Peer(_) | Cause::Protocol(_) => false,
        _ => true,
    }
}

async fn attempt_once(
    params: &ConnParams,
    setup: &TlsSetup,
    target: &HostTarget,
    addr: Option<SocketAddr>,
    password: Option<&str>,
    attempt: Attempt,
) -> Result<Connection, (Next, Cause)> {
    let config = pg_config(params, password, attempt);
    let observed = Arc::new(Mutex::new(Observed::default()));
    let capture = Arc::new(Mutex::new(TlsCapture::default()));
    let cert_flags = Arc::new(crate::inspect::CertFlags::default());
    let policy = Arc::new(AuthPolicy {
        channel_binding: params.rules.channel_binding,
        require_auth: params.rules.require_auth.clone(),
        sslcertmode: params.rules.sslcertmode,
        cert: cert_flags.clone(),
        message_limit: params.message_limit,
        received: Received::default(),
    });
    let received = policy.received.clone();
    let direct = params.sslnegotiation.as_deref() == Some("direct") && attempt != Attempt::Plain;
    let socket_layer = if direct { Layer::SocketDirectTls } else { Layer::Socket };

    let (client, task, socket_report, local_addr) = match addr {
        None => {
            let stream = UnixStream::connect(socket::unix_path(&target.host, target.port))
                .await
                .map_err(|e| (Next::Address, socket::connect_cause(&e, true)))?;
            if let Some(wanted) = &params.rules.requirepeer {
                socket::check_peer(&stream, wanted).map_err(|c| (Next::Stop, c))?;
            }
            let stream = Inspector::new(stream, socket_layer, policy, observed.clone());
            let (client, connection) = config
                .connect_raw(stream, NoTls)
                .await
                .map_err(|e| failure_of(&e, &observed, &capture, params.sslmode))?;
            let task: ConnectionTask = Box::pin(connection);
            (client, task, None, None)
        }
        Some(addr) => {
            let socket = if addr.is_ipv4() {
                TcpSocket::new_v4()
            } else {
                TcpSocket::new_v6()
            }
            .map_err(|e| (Next::Address, Cause::Io(escaped(&e.to_string()))))?;
            let report = socket::apply_tcp_options(&socket, &params.rules).map_err(|c| (Next::Address, c))?;
            let stream: TcpStream = socket
                .connect(addr)
                .await
                .map_err(|e| (Next::Address, socket::connect_cause(&e, false)))?;
            let local_addr = stream.local_addr().ok();
            // Held from now: the server lists the backend before the start-up ends (see own_sockets).
            let held = local_addr.map(|local| crate::own_sockets::Held::new(local, addr));
            let stream = Inspector::new(stream, socket_layer, policy.clone(), observed.clone());
            let (client, task): (Client, ConnectionTask) = match attempt {
                Attempt::Plain => {
                    let (client, connection) = config
                        .connect_raw(stream, NoTls)
                        .await
                        .map_err(|e| failure_of(&e, &observed, &capture, params.sslmode))?;
                    (client, Box::pin(connection))
                }
                Attempt::TlsIfOffered | Attempt::TlsRequired => {
                    let tls = setup
                        .connector(params, target, capture.clone(), cert_flags, policy, observed.clone())
                        .map_err(|c| (Next::Stop, c))?;
                    let (client, connection) = config
                        .connect_raw(stream, tls)
                        .await
                        .map_err(|e| failure_of(&e, &observed, &capture, params.sslmode))?;
                    (client, Box::pin(connection))
                }
            };
            let task: ConnectionTask = Box::pin(async move {
                let _held = held;
                task.await
            });
            (client, task, Some(report), local_addr)
        }
    };

    let observed = observed.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let (tls, peer_chain) = {
        let c = capture.lock().unwrap_or_else(PoisonError::into_inner);
        let chain = match c.report() {
            Some(_) => c.chain.iter().filter_map(|x| x.to_der().ok()).collect(),
            None => Vec::new(),
        };
        (c.report(), chain)
    };
    Ok(Connection {
        client,
        task,
        received,
        report: ConnectReport {
            host: target.host.clone(),
            port: target.port,
            addr,
            local_addr,
            sslmode: params.sslmode,
            verification_if_tls: verification_for(params),
            tls,
            auth_methods: observed.auth_requests.iter().map(|m| m.name()).collect(),
            channel_bound: observed.channel_bound,
            socket: socket_report,
            warnings: Vec::new(),
            cancel_key: observed.cancel_key.clone(),
            peer_chain,
        },
    })
}

fn pg_config(params: &ConnParams, password: Option<&str>, attempt: Attempt) -> Config {
    let mut config = Config::new();
    config
        .user(&params.user)
        .dbname(&params.dbname)
        .application_name(&params.application_name)
        .ssl_mode(match attempt {
            Attempt::Plain => PgSslMode::Disable,
            Attempt::TlsIfOffered => PgSslMode::Prefer,
            Attempt::TlsRequired => PgSslMode::Require,
        })
        .ssl_negotiation(match params.sslnegotiation.as_deref() {
            Some("direct") if attempt != Attempt::Plain => SslNegotiation::Direct,
            _ => SslNegotiation::Postgres,
        })
        .channel_binding(match params.rules.channel_binding {
            ChannelBindingMode::Disable => ChannelBinding::Disable,
            ChannelBindingMode::Prefer => ChannelBinding::Prefer,
            ChannelBindingMode::Require => ChannelBinding::Require,
        });
    if let Some(password) = password {
        config.password(password);
    }
    // tokio-postgres sends only user, database, application_name and options at start-up, so the settings
    // libpq takes from PGDATESTYLE, PGTZ and PGGEQO travel as `-c` options, with the same effect.
    let mut options = params.options.clone().unwrap_or_default();
    for (setting, value) in &params.session_settings {
        let escaped: String = value
            .chars()
            .flat_map(|c| match c {
                ' ' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        options.push_str(&format!(" -c {setting}={escaped}"));
    }
    if !options.trim().is_empty() {
        config.options(options.trim());
    }
    config
}

/// The cause of a failed start-up, preferring what the TLS layer and the inspector recorded (exact, in
/// libpq's words) over tokio-postgres's error.
fn failure_of(
    error: &tokio_postgres::Error,
    observed: &Mutex<Observed>,
    capture: &Mutex<TlsCapture>,
    sslmode: SslMode,
) -> (Next, Cause) {
    if let Some(cause) = capture.lock().unwrap_or_else(PoisonError::into_inner).failure.clone() {
        return (Next::Stop, cause);
    }
    if let Some(refusal) = observed.lock().unwrap_or_else(PoisonError::into_inner).refusal.clone() {
        return match refusal {
            Refusal::Auth(text) => (Next::Stop, Cause::Auth(text)),
            Refusal::Protocol(text) => (Next::Stop, Cause::Protocol(text)),
        };
    }
    if let Some(db) = error.as_db_error() {
        let cause = Cause::Server {
            code: db.code().code().to_string(),
            message: escaped(db.message()),
        };
        // 57P03 (the database system is starting up / in recovery): libpq tries the next host.
        let next = if db.code().code() == "57P03" {
            Next::Host
        } else {
            Next::Stop
        };
        return (next, cause);
    }
    let chain = cause_chain(error);
    let cause = if chain.contains("server does not support TLS") {
        Cause::NoSsl(sslmode.as_str())
    } else if chain.contains("password missing") {
        Cause::Auth(
            "the server asked for a password but none was supplied (password=, PGPASSWORD or a matching .pgpass line)"
                .to_string(),
        )
    } else if chain.contains("unsupported authentication method") {
        Cause::Auth("the server asked for GSSAPI or SSPI authentication, which pgtls does not support".to_string())
    } else if chain.contains("unsupported SASL mechanism") {
        Cause::Auth("the server offered no SASL mechanism pgtls supports (SCRAM-SHA-256)".to_string())
    } else if chain.contains("server did not use channel binding") {
        Cause::Auth("channel binding required, but server authenticated client without channel binding".to_string())
    } else if error.is_closed() {
        Cause::Io("server closed the connection unexpectedly".to_string())
    } else {
        Cause::Io(escaped(&chain))
    };
    (Next::Stop, cause)
}

/// The error and all its sources, deduplicated, joined with ": ".
fn cause_chain(error: &tokio_postgres::Error) -> String {
    use std::error::Error as _;
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

/// The path of the default root file, for callers that show it.
pub fn default_root_file(params: &ConnParams) -> Option<PathBuf> {
    tls_setup::root_file(params).map(Path::to_path_buf)
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

    #[test]
    fn shuffle_keeps_every_item() {
        let mut items: Vec<u32> = (0..50).collect();
        shuffle(&mut items);
        let mut sorted = items.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
    }
}
