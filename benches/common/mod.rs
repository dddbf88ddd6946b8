//! Shared by the benches that need a real server: many idle client sessions on the lab, opened fast.
//!
//! `Lab::open` makes an admin connection per session to ensure the role exists; for thousands of sessions that
//! doubles the work, so the roles are created once here and sessions are opened concurrently.

#![allow(dead_code)]

use std::collections::BTreeSet;

use color_eyre::eyre::{Result, WrapErr};
use futures_util::{StreamExt, stream};
use openssl::ssl::{SslConnector, SslMethod, SslVersion};
use postgres_openssl::MakeTlsConnector;
use tokio::task::JoinHandle;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, NoTls};

use pgtls::lab::{LAB_PASSWORD, LabHandle};

/// How the n-th session connects: 6 in 10 TLS 1.3, 2 TLS 1.2, 1 plain TCP, 1 Unix socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tls13,
    Tls12,
    PlainTcp,
    Unix,
}

pub fn kind_of(i: usize) -> Kind {
    match i % 10 {
        0..=5 => Kind::Tls13,
        6 | 7 => Kind::Tls12,
        8 => Kind::PlainTcp,
        _ => Kind::Unix,
    }
}

pub fn user_of(i: usize) -> String {
    format!("app_user_{}", i % 8)
}

pub fn app_of(i: usize) -> String {
    format!("service-{}", i % 20)
}

/// An open session; dropping it closes the connection.
pub struct Idle {
    pub client: Client,
    connection: JoinHandle<()>,
}

impl Drop for Idle {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

/// Create roles (with the lab password) that do not exist yet.
pub async fn create_roles(lab: &LabHandle, roles: &[String], grant: Option<&str>) -> Result<()> {
    let admin = lab.admin().await?;
    for role in roles.iter().collect::<BTreeSet<_>>() {
        let sql: String = admin
            .query_one(
                "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1) THEN '' \
                 ELSE format('CREATE ROLE %I LOGIN PASSWORD %L', $1::text, $2::text) END",
                &[role, &LAB_PASSWORD],
            )
            .await?
            .get(0);
        if !sql.is_empty() {
            admin.batch_execute(&sql).await?;
        }
        if let Some(grant) = grant {
            let sql: String = admin
                .query_one("SELECT format('GRANT %I TO %I', $1::text, $2::text)", &[&grant, role])
                .await?
                .get(0);
            admin.batch_execute(&sql).await?;
        }
    }
    Ok(())
}

fn connector(lab: &LabHandle, max: Option<SslVersion>) -> Result<MakeTlsConnector> {
    let mut builder = SslConnector::builder(SslMethod::tls_client())?;
    builder.set_ca_file(&lab.certs.ca_cert)?;
    builder.set_max_proto_version(max)?;
    Ok(MakeTlsConnector::new(builder.build()))
}

/// Open session `i` of the [`kind_of`] mix, as [`user_of`] with [`app_of`] (the roles must exist).
pub async fn open_one(lab: &LabHandle, i: usize, tls13: MakeTlsConnector, tls12: MakeTlsConnector) -> Result<Idle> {
    let kind = kind_of(i);
    let mut config = tokio_postgres::Config::new();
    config
        .user(user_of(i))
        .dbname("postgres")
        .application_name(app_of(i))
        .port(lab.port);
    if kind == Kind::Unix {
        config.host_path(&lab.socket_dir);
    } else {
        config.host(&lab.host).password(LAB_PASSWORD);
    }
    let what = || format!("opening session {i} ({kind:?})");
    let (client, connection) = match kind {
        Kind::PlainTcp | Kind::Unix => {
            config.ssl_mode(SslMode::Disable);
            let (client, conn) = config.connect(NoTls).await.wrap_err_with(what)?;
            (client, tokio::spawn(async move { drop(conn.await) }))
        }
        Kind::Tls13 | Kind::Tls12 => {
            config.ssl_mode(SslMode::Require);
            let tls = if kind == Kind::Tls12 { tls12 } else { tls13 };
            let (client, conn) = config.connect(tls).await.wrap_err_with(what)?;
            (client, tokio::spawn(async move { drop(conn.await) }))
        }
    };
    Ok(Idle { client, connection })
}

/// TLS connectors for [`open_one`]: (TLS 1.3, TLS 1.2 at most).
pub fn connectors(lab: &LabHandle) -> Result<(MakeTlsConnector, MakeTlsConnector)> {
    Ok((connector(lab, None)?, connector(lab, Some(SslVersion::TLS1_2))?))
}

/// Open `n` sessions in the [`kind_of`] mix, as [`user_of`] with [`app_of`]. With `in_transaction` each one is left
/// `idle in transaction` (after `BEGIN; SELECT 1`): still idle, but listed by monitors that hide `idle` sessions.
pub async fn open_sessions(lab: &LabHandle, n: usize, in_transaction: bool) -> Result<Vec<Idle>> {
    let users: Vec<String> = (0..n.min(8)).map(user_of).collect();
    create_roles(lab, &users, None).await?;
    let tls13 = connector(lab, None)?;
    let tls12 = connector(lab, Some(SslVersion::TLS1_2))?;
    let opened: Vec<Result<Idle>> = stream::iter(0..n)
        .map(|i| {
            let (tls13, tls12) = (tls13.clone(), tls12.clone());
            async move {
                let idle = open_one(lab, i, tls13, tls12).await?;
                if in_transaction {
                    idle.client
                        .batch_execute("BEGIN; SELECT 1")
                        .await
                        .wrap_err_with(|| format!("session {i}"))?;
                }
                Ok(idle)
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    opened.into_iter().collect()
}
