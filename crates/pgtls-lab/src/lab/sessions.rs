//! Client sessions of a chosen kind, held open against the lab server.

use color_eyre::eyre::{Result, WrapErr};
use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVersion};
use postgres_openssl::MakeTlsConnector;
use tokio::task::JoinHandle;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, NoTls};

use super::{CERT_USER, LAB_PASSWORD, LabHandle};

/// How a lab client connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionKind {
    /// TLS with the client's defaults (TLS 1.3 against a modern server).
    Tls13,
    /// TLS capped at 1.2 on the client, as an old driver would.
    Tls12,
    /// TCP with sslmode=disable.
    PlainTcp,
    /// Unix-domain socket (never TLS).
    UnixSocket,
    /// TLS 1.3 authenticated by the lab's client certificate (user must be [`CERT_USER`]).
    ClientCert,
    /// TLS capped at 1.2 with libpq's default sslmode=prefer: when the handshake fails (the server's minimum was
    /// raised) it connects again without TLS, as libpq does, where pg_hba.conf has a `host` line.
    Tls12Prefer,
}

impl SessionKind {
    pub const ALL: [SessionKind; 6] = [
        SessionKind::Tls13,
        SessionKind::Tls12,
        SessionKind::PlainTcp,
        SessionKind::UnixSocket,
        SessionKind::ClientCert,
        SessionKind::Tls12Prefer,
    ];
}

/// An open client session; dropping it closes the connection.
pub struct LabSession {
    pub client: Client,
    pub pid: i32,
    pub kind: SessionKind,
    connection: JoinHandle<()>,
}

impl LabSession {
    /// Run a statement, e.g. to move the session through active / idle in transaction states.
    pub async fn execute(&self, sql: &str) -> Result<()> {
        self.client
            .batch_execute(sql)
            .await
            .wrap_err_with(|| format!("running {sql:?}"))
    }

    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }
}

impl Drop for LabSession {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

pub(super) async fn open(lab: &LabHandle, kind: SessionKind, user: &str, application_name: &str) -> Result<LabSession> {
    open_at(lab, lab.port, kind, user, application_name).await
}

/// A session to `port` on the lab's host: the server's, or a pooler's in front of it (then `pid` is the backend
/// the pooler gave it at connect time, which transaction pooling may change). Only simple queries, which every
/// pool mode passes through.
pub(super) async fn open_at(
    lab: &LabHandle,
    port: u16,
    kind: SessionKind,
    user: &str,
    application_name: &str,
) -> Result<LabSession> {
    let user = if kind == SessionKind::ClientCert {
        CERT_USER
    } else {
        user
    };
    lab.ensure_role(user).await?;
    let mut config = tokio_postgres::Config::new();
    config
        .user(user)
        .dbname("postgres")
        .application_name(application_name)
        .port(port);
    match kind {
        SessionKind::UnixSocket => {
            config.host_path(&lab.socket_dir);
        }
        _ => {
            config.host(&lab.host).password(LAB_PASSWORD);
        }
    }
    let what = || format!("opening a {kind:?} lab session as {user}");
    let (client, connection) = match kind {
        SessionKind::PlainTcp | SessionKind::UnixSocket => {
            config.ssl_mode(SslMode::Disable);
            let (client, conn) = config.connect(NoTls).await.wrap_err_with(what)?;
            (client, tokio::spawn(async move { drop(conn.await) }))
        }
        SessionKind::Tls13 | SessionKind::Tls12 | SessionKind::ClientCert => {
            config.ssl_mode(SslMode::Require);
            let tls = tls_connector(lab, kind)?;
            let (client, conn) = config.connect(tls).await.wrap_err_with(what)?;
            (client, tokio::spawn(async move { drop(conn.await) }))
        }
        SessionKind::Tls12Prefer => {
            config.ssl_mode(SslMode::Require);
            match config.connect(tls_connector(lab, kind)?).await {
                Ok((client, conn)) => (client, tokio::spawn(async move { drop(conn.await) })),
                Err(_) => {
                    // libpq's prefer: any failure with TLS is retried once without it.
                    config.ssl_mode(SslMode::Disable);
                    let (client, conn) = config.connect(NoTls).await.wrap_err_with(what)?;
                    (client, tokio::spawn(async move { drop(conn.await) }))
                }
            }
        }
    };
    let pid = client
        .simple_query("SELECT pg_catalog.pg_backend_pid()")
        .await?
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).and_then(|v| v.parse::<i32>().ok()),
            _ => None,
        })
        .ok_or_else(|| color_eyre::eyre::eyre!("no pid from {what}", what = what()))?;
    Ok(LabSession {
        client,
        pid,
        kind,
        connection,
    })
}

fn tls_connector(lab: &LabHandle, kind: SessionKind) -> Result<MakeTlsConnector> {
    let mut builder = SslConnector::builder(SslMethod::tls_client())?;
    builder.set_ca_file(&lab.certs.ca_cert)?;
    if matches!(kind, SessionKind::Tls12 | SessionKind::Tls12Prefer) {
        builder.set_max_proto_version(Some(SslVersion::TLS1_2))?;
    }
    if kind == SessionKind::ClientCert {
        builder.set_certificate_chain_file(&lab.certs.client_cert)?;
        builder.set_private_key_file(&lab.certs.client_key, SslFiletype::PEM)?;
    }
    Ok(MakeTlsConnector::new(builder.build()))
}
