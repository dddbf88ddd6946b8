//! PgBouncer admin consoles (`--pgbouncer`): polled in step with the server, each bounded by the poll timeout.
//!
//! The admin console (`dbname=pgbouncer`) speaks only the simple query protocol and closes the connection on
//! anything else, so everything here is a `simple_query`: no prepared statement, no session `SET`. A pooler that
//! does not answer never holds up the server's poll: it is reported in [`Pooler::error`] and retried with backoff.
//! Values in SHOW output are set by clients (application_name, user, database): they are decoded leniently here
//! and escaped by each output, like every other outside text.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use tokio::time::Instant;
use tokio_postgres::{SimpleQueryMessage, SimpleQueryRow};

use super::Connected;
use crate::conn::params::{ConnParams, Environment, resolve};
use crate::model::{Pooler, PoolerClient, PoolerServer, PoolerTls};

/// The `SHOW CONFIG` keys pgtls keeps: what decides each leg's TLS, and the pool mode.
pub const SETTINGS: [&str; 9] = [
    "client_tls_sslmode",
    "client_tls_protocols",
    "client_tls_ciphers",
    "server_tls_sslmode",
    "server_tls_protocols",
    "server_tls_ciphers",
    "pool_mode",
    "listen_addr",
    "listen_port",
];

/// Rows kept per SHOW at most: a pooler's `max_client_conn` bounds them already; this bounds a hostile one.
pub const MAX_ROWS: usize = 100_000;

/// What a value that is not UTF-8 is shown as: the simple protocol gives no access to its bytes.
pub const NOT_UTF8: &str = "\u{FFFD}";

const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One pooler's admin console: its connection (opened on first use, remade after a failure with backoff).
pub struct PoolerSource {
    address: String,
    params: ConnParams,
    connected: Option<Connected>,
    retry_at: Option<Instant>,
    backoff: Duration,
    last_error: Option<String>,
    /// The server connections of the last answer, so sessions from the pooler are still known as pooled while
    /// it does not answer (their client leg is then unknown).
    last_servers: Vec<PoolerServer>,
}

/// Every pooler in front of one server (a target's `pgbouncer` list, or the `--pgbouncer` flags).
#[derive(Default)]
pub struct Poolers {
    sources: Vec<PoolerSource>,
    /// Each pooler's own log file (`--pgbouncer-log`), by its address.
    logs: Vec<(String, std::path::PathBuf)>,
}

impl Poolers {
    /// Resolve each connection string as psql would (service file, PG* variables, .pgpass); nothing is
    /// connected yet.
    pub fn resolve(conninfos: &[String], env: &Environment) -> Result<Poolers, String> {
        let mut sources = Vec::with_capacity(conninfos.len());
        for conninfo in conninfos {
            let params = resolve(Some(conninfo), env).map_err(|e| format!("--pgbouncer: {e}"))?;
            if params.dbname != "pgbouncer" {
                return Err(format!(
                    "--pgbouncer: the admin console is the database \"pgbouncer\", not {}: add dbname=pgbouncer",
                    crate::conn::text::quoted(&params.dbname)
                ));
            }
            if params.options.as_deref().is_some_and(|o| !o.trim().is_empty()) || !params.session_settings.is_empty() {
                return Err(
                    "--pgbouncer: PgBouncer refuses the options start-up parameter (options=, PGOPTIONS, \
                            PGDATESTYLE, PGTZ, PGGEQO): unset them for the admin console"
                        .to_string(),
                );
            }
            sources.push(PoolerSource::new(params));
        }
        Ok(Poolers {
            sources,
            logs: Vec::new(),
        })
    }

    /// Pair these poolers with their log files: one log per pooler, in the same order. With several poolers a
    /// missing one would shift every log onto the wrong pooler, so the counts must match.
    pub fn with_logs(mut self, logs: &[std::path::PathBuf]) -> Result<Poolers, String> {
        if logs.is_empty() {
            return Ok(self);
        }
        if self.sources.len() != logs.len() {
            return Err(format!(
                "--pgbouncer-log: give one per --pgbouncer, in the same order ({} --pgbouncer, {} --pgbouncer-log)",
                self.sources.len(),
                logs.len()
            ));
        }
        for path in logs {
            crate::files::check_growing("--pgbouncer-log", Some(path))?;
        }
        self.logs = self
            .sources
            .iter()
            .map(|s| s.address.clone())
            .zip(logs.iter().cloned())
            .collect();
        Ok(self)
    }

    /// `(pooler address, log file)` for each pooler whose log pgtls reads.
    pub fn logs(&self) -> &[(String, std::path::PathBuf)] {
        &self.logs
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Watch `other`'s poolers too (a config target's list after the command line's).
    pub fn append(&mut self, mut other: Poolers) {
        self.sources.append(&mut other.sources);
        self.logs.append(&mut other.logs);
    }

    pub fn len(&self) -> usize {
        self.sources.len()
    }

    /// Poll every pooler at once, each bounded by `limit`; a pooler that fails is a [`Pooler`] with an error.
    pub async fn poll(&mut self, limit: Duration) -> Vec<Pooler> {
        futures_util::future::join_all(self.sources.iter_mut().map(|s| s.poll(limit))).await
    }
}

impl PoolerSource {
    fn new(params: ConnParams) -> PoolerSource {
        let address = params
            .targets
            .first()
            .map(|t| crate::model::endpoint_of(Some(&t.host), Some(i32::from(t.port))))
            .unwrap_or_else(|| "?".to_string());
        PoolerSource {
            address,
            params,
            connected: None,
            retry_at: None,
            backoff: MIN_BACKOFF,
            last_error: None,
            last_servers: Vec::new(),
        }
    }

    async fn poll(&mut self, limit: Duration) -> Pooler {
        match tokio::time::timeout(limit, self.poll_unbounded()).await {
            Ok(Ok(pooler)) => {
                self.backoff = MIN_BACKOFF;
                self.retry_at = None;
                self.last_error = None;
                self.last_servers = pooler.servers.clone();
                pooler
            }
            Ok(Err(error)) => self.failed(error),
            Err(_) => self.failed(format!("the admin console did not answer within {} s", limit.as_secs())),
        }
    }

    /// Note the failure, drop the connection and wait before the next attempt; the last server connections stay
    /// known for the join.
    fn failed(&mut self, error: String) -> Pooler {
        if let Some(c) = self.connected.take() {
            c.cancel();
        }
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        self.last_error = Some(error.clone());
        let mut pooler = Pooler::failed(self.address.clone(), error);
        pooler.servers = self.last_servers.clone();
        pooler
    }

    async fn poll_unbounded(&mut self) -> Result<Pooler, String> {
        if self.connected.as_ref().is_some_and(Connected::is_closed) {
            self.connected = None;
        }
        if self.connected.is_none() {
            if let Some(at) = self.retry_at
                && Instant::now() < at
            {
                return Err(self
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "waiting to reconnect".to_string()));
            }
            let connected = Connected::open_console(&self.params)
                .await
                .map_err(|e| connect_error(&e, &self.params))?;
            self.connected = Some(connected);
        }
        let Some(connected) = &self.connected else {
            return Err("not connected".to_string());
        };
        let client = &connected.client;
        // Pipelined: four simple queries in one round trip's time.
        let (clients, servers, databases, config) = tokio::try_join!(
            client.simple_query("SHOW CLIENTS"),
            client.simple_query("SHOW SERVERS"),
            client.simple_query("SHOW DATABASES"),
            client.simple_query("SHOW CONFIG"),
        )
        .map_err(|e| query_error(&e))?;
        let own = connected.report.local_addr;
        Ok(parse(
            self.address.clone(),
            own,
            &clients,
            &servers,
            &databases,
            &config,
        ))
    }
}

/// The connection error in the user's terms: PgBouncer says only "not allowed" to a role in neither list.
fn connect_error(e: &crate::conn::ConnectError, params: &ConnParams) -> String {
    let text = e.to_string();
    if text.contains("not allowed") {
        format!(
            "{text}: the role {} is in neither admin_users nor stats_users of this PgBouncer (add it to \
             stats_users to let pgtls read SHOW CLIENTS, SHOW SERVERS and SHOW CONFIG)",
            crate::conn::text::quoted(&params.user)
        )
    } else {
        text
    }
}

fn query_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("the admin console refused a SHOW: {}", db.message()),
        None if e.is_closed() => "the admin console closed the connection".to_string(),
        None => e.to_string(),
    }
}

/// The rows of one simple query's answer, at most [`MAX_ROWS`].
fn rows(messages: &[SimpleQueryMessage]) -> impl Iterator<Item = &SimpleQueryRow> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })
        .take(MAX_ROWS)
}

/// A text column, `None` when absent (an older PgBouncer) or empty; a value that is not UTF-8 becomes
/// [`NOT_UTF8`] rather than failing the poll.
fn text(row: &SimpleQueryRow, name: &str) -> Option<String> {
    if !row.columns().iter().any(|c| c.name() == name) {
        return None;
    }
    match row.try_get(name) {
        Ok(Some(v)) if !v.is_empty() => Some(v.to_string()),
        Ok(_) => None,
        Err(_) => Some(NOT_UTF8.to_string()),
    }
}

fn number(row: &SimpleQueryRow, name: &str) -> Option<i32> {
    text(row, name).and_then(|v| v.trim().parse().ok())
}

/// PgBouncer's `connect_time`: `2026-12-03 09:20:10 UTC`.
fn time(row: &SimpleQueryRow, name: &str) -> Option<DateTime<Utc>> {
    let v = text(row, name)?;
    NaiveDateTime::parse_from_str(v.trim_end_matches(" UTC"), "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

/// How a pooler client's own leg travels: pure, so defined with the pooler verdicts.
pub use crate::analysis::pooler::client_class;

/// One pooler's answers as model data. `own` is this end of pgtls's admin console connection.
pub fn parse(
    address: String,
    own: Option<SocketAddr>,
    clients: &[SimpleQueryMessage],
    servers: &[SimpleQueryMessage],
    databases: &[SimpleQueryMessage],
    config: &[SimpleQueryMessage],
) -> Pooler {
    let clients = rows(clients)
        .map(|r| {
            let address = text(r, "addr");
            let port = number(r, "port");
            let tls = text(r, "tls").and_then(|t| PoolerTls::parse(&t));
            let database = text(r, "database");
            let monitor = database.as_deref() == Some("pgbouncer")
                && own.is_some_and(|own| {
                    address.as_deref() == Some(own.ip().to_string().as_str()) && port == Some(i32::from(own.port()))
                });
            PoolerClient {
                application_name: text(r, "application_name"),
                user: text(r, "user"),
                database,
                class: client_class(address.as_deref(), tls.as_ref()),
                address,
                port,
                tls,
                state: text(r, "state"),
                connect_time: time(r, "connect_time"),
                ptr: text(r, "ptr").unwrap_or_default(),
                monitor,
            }
        })
        .collect();
    let servers = rows(servers)
        .map(|r| PoolerServer {
            user: text(r, "user"),
            database: text(r, "database"),
            address: text(r, "addr"),
            port: number(r, "port"),
            local_address: text(r, "local_addr"),
            local_port: number(r, "local_port"),
            remote_pid: number(r, "remote_pid").filter(|pid| *pid > 0),
            tls: text(r, "tls").and_then(|t| PoolerTls::parse(&t)),
            state: text(r, "state"),
            link: text(r, "link"),
        })
        .collect();
    let database_pool_modes = rows(databases)
        .filter_map(|r| Some((text(r, "name")?, text(r, "pool_mode")?)))
        .collect();
    let settings: BTreeMap<String, String> = rows(config)
        .filter_map(|r| {
            let key = text(r, "key")?;
            SETTINGS
                .contains(&key.as_str())
                .then(|| (key, text(r, "value").unwrap_or_default()))
        })
        .collect();
    Pooler {
        address,
        error: None,
        settings,
        database_pool_modes,
        clients,
        servers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ConnClass;

    #[test]
    fn tls_columns_and_classes() {
        let t = PoolerTls::parse("TLSv1.2/ECDHE-RSA-CHACHA20-POLY1305/ECDH=X25519").unwrap();
        assert_eq!(t.version, "TLSv1.2");
        assert_eq!(t.cipher, "ECDHE-RSA-CHACHA20-POLY1305");
        assert_eq!(PoolerTls::parse(""), None);
        assert_eq!(client_class(Some("127.0.0.1"), Some(&t)), ConnClass::Tls12);
        assert_eq!(client_class(Some("127.0.0.1"), None), ConnClass::PlainTcp);
        assert_eq!(client_class(Some("unix"), None), ConnClass::Local);
    }

    #[test]
    fn option_parameters_are_refused_up_front() {
        let env = Environment::new(
            std::collections::HashMap::new(),
            Some(std::path::PathBuf::from("/nonexistent")),
            "tester",
        );
        let e = Poolers::resolve(&["host=pool dbname=postgres".to_string()], &env)
            .err()
            .unwrap();
        assert!(e.contains("dbname=pgbouncer"), "{e}");
        let e = Poolers::resolve(&["host=pool dbname=pgbouncer options=-cx=1".to_string()], &env)
            .err()
            .unwrap();
        assert!(e.contains("options"), "{e}");
        let p = Poolers::resolve(&["host=pool port=6432 dbname=pgbouncer".to_string()], &env).unwrap();
        assert_eq!(p.sources[0].address, "pool:6432");
    }
}
