//! PgBouncer admin consoles (`--pgbouncer`): polled beside the server, each bounded by the poll timeout.
//!
//! The admin console (`dbname=pgbouncer`) speaks only the simple query protocol and closes the connection on
//! anything else, so everything here is a simple query: no prepared statement, no session `SET`. A pooler that
//! does not answer is reported in [`Pooler::error`] and retried with backoff; a continuous poller polls it on a
//! task of its own ([`feed`]), so it never holds up the server's poll. Replies are read row by row under a row and
//! a byte cap ([`read`]); past either the console connection is closed and the answer marked truncated. Values in
//! SHOW output are set by clients (application_name, user, database): they are decoded leniently ([`rows`]) and
//! escaped by each output, like every other outside text.

pub mod feed;
pub mod read;
pub mod rows;

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use self::read::{Budget, Outcome};
pub use self::rows::{NOT_UTF8, SETTINGS, client_class};
use super::Connected;
use crate::conn::params::{ConnParams, Environment, resolve};
use crate::conn::text::quoted;
use crate::conn::{Cause, ConnInfoError, ConnectError};
use crate::model::{Pooler, PoolerServer};

/// Why a list of poolers (`--pgbouncer`, a target's `pgbouncer`) was not accepted; nothing was connected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolerSetupError {
    #[error("--pgbouncer: {0}")]
    Conninfo(#[from] ConnInfoError),
    #[error("--pgbouncer: the admin console is the database \"pgbouncer\", not {}: add dbname=pgbouncer", quoted(.dbname))]
    NotTheConsole { dbname: String },
    #[error(
        "--pgbouncer: PgBouncer refuses the options start-up parameter (options=, PGOPTIONS, PGDATESTYLE, PGTZ, \
         PGGEQO): unset them for the admin console"
    )]
    OptionsRefused,
    /// `--pgbouncer-log` pairs with `--pgbouncer` by position, so the counts must match.
    #[error(
        "--pgbouncer-log: give one per --pgbouncer, in the same order ({poolers} --pgbouncer, {logs} --pgbouncer-log)"
    )]
    UnpairedLogs { poolers: usize, logs: usize },
    #[error(transparent)]
    Log(#[from] crate::files::FlagFileError),
}

/// Why a console gave no answer this poll. Shown as the pooler's `error`; kept to answer while waiting to retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolerError {
    /// The console could not be reached, or refused the log-in for a reason other than the role.
    #[error("{0}")]
    Connect(ConnectError),
    /// PgBouncer refused the role: it is in neither `admin_users` nor `stats_users`.
    #[error(
        "{source}: the role {} is in neither admin_users nor stats_users of this PgBouncer (add it to stats_users \
         to let pgtls read SHOW CLIENTS, SHOW SERVERS and SHOW CONFIG)",
        quoted(.user)
    )]
    NotAllowed { source: ConnectError, user: String },
    /// pgtls closed the connection itself: a message over its limit, or a protocol or authentication refusal.
    #[error("pgtls closed the admin console connection: {0}")]
    ClosedByPgtls(String),
    /// The console answered a SHOW with an ErrorResponse.
    #[error("the admin console refused a SHOW: {message}")]
    Refused {
        code: tokio_postgres::error::SqlState,
        message: String,
    },
    #[error("the admin console closed the connection")]
    Closed,
    /// Any other failure of a SHOW (the socket, the protocol), in tokio-postgres's words.
    #[error("{0}")]
    Query(String),
    /// The whole poll passed the poll timeout.
    #[error("the admin console did not answer within {} s", .0.as_secs())]
    TimedOut(Duration),
    /// Between a failure and the next attempt, with no failure to repeat.
    #[error("waiting to reconnect")]
    WaitingToReconnect,
    #[error("not connected")]
    NotConnected,
}

/// The SQLSTATE PgBouncer sends with the errors of its own (not the server's): `protocol_violation`, whatever
/// the reason, so the reason's fixed text is what tells them apart.
const PGBOUNCER_OWN_ERROR: &str = "08P01";

/// PgBouncer's whole message to a role in neither `admin_users` nor `stats_users` (`disconnect_client(..., "not
/// allowed")` in its client.c).
const PGBOUNCER_NOT_ALLOWED: &str = "not allowed";

const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One pooler's admin console: its connection (opened on first use, remade after a failure with backoff).
pub struct PoolerSource {
    address: String,
    params: ConnParams,
    connected: Option<Connected>,
    retry_at: Option<Instant>,
    backoff: Duration,
    last_error: Option<PoolerError>,
    /// When the console last answered.
    answered_at: Option<DateTime<Utc>>,
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
    pub fn resolve(conninfos: &[String], env: &Environment) -> Result<Poolers, PoolerSetupError> {
        let mut sources = Vec::with_capacity(conninfos.len());
        for conninfo in conninfos {
            let params = resolve(Some(conninfo), env)?;
            if params.dbname != "pgbouncer" {
                return Err(PoolerSetupError::NotTheConsole { dbname: params.dbname });
            }
            if params.options.as_deref().is_some_and(|o| !o.trim().is_empty()) || !params.session_settings.is_empty() {
                return Err(PoolerSetupError::OptionsRefused);
            }
            // A console's row is well under a KiB; this bounds what one message may make tokio-postgres buffer.
            let mut params = params;
            params.message_limit = Some(read::MESSAGE_LIMIT);
            sources.push(PoolerSource::new(params));
        }
        Ok(Poolers {
            sources,
            logs: Vec::new(),
        })
    }

    /// Pair these poolers with their log files: one log per pooler, in the same order. With several poolers a
    /// missing one would shift every log onto the wrong pooler, so the counts must match.
    pub fn with_logs(mut self, logs: &[std::path::PathBuf]) -> Result<Poolers, PoolerSetupError> {
        if logs.is_empty() {
            return Ok(self);
        }
        if self.sources.len() != logs.len() {
            return Err(PoolerSetupError::UnpairedLogs {
                poolers: self.sources.len(),
                logs: logs.len(),
            });
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

    /// Each pooler's failure in the last poll, in order (none for one that answered or was not polled yet).
    pub fn last_errors(&self) -> Vec<Option<&PoolerError>> {
        self.sources.iter().map(|s| s.last_error.as_ref()).collect()
    }

    /// Poll every pooler at once, each bounded by `limit`; a pooler that fails is a [`Pooler`] with an error.
    pub async fn poll(&mut self, limit: Duration) -> Vec<Pooler> {
        futures_util::future::join_all(self.sources.iter_mut().map(|s| s.poll(limit))).await
    }

    /// Every pooler as it stands before its first answer.
    pub fn waiting(&self) -> Vec<Pooler> {
        self.sources
            .iter()
            .map(|s| Pooler::failed(s.address.clone(), "waiting for its first answer".to_string()))
            .collect()
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
            answered_at: None,
            last_servers: Vec::new(),
        }
    }

    async fn poll(&mut self, limit: Duration) -> Pooler {
        match tokio::time::timeout(limit, self.poll_unbounded()).await {
            Ok(Ok(pooler)) => {
                self.backoff = MIN_BACKOFF;
                self.retry_at = None;
                self.last_error = None;
                self.answered_at = pooler.answered_at;
                self.last_servers = pooler.servers.clone();
                pooler
            }
            Ok(Err(error)) => self.failed(error),
            Err(_) => self.failed(PoolerError::TimedOut(limit)),
        }
    }

    /// Note the failure, drop the connection and wait before the next attempt; the last server connections stay
    /// known for the join.
    fn failed(&mut self, error: PoolerError) -> Pooler {
        if let Some(c) = self.connected.take() {
            c.cancel();
        }
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        let mut pooler = Pooler::failed(self.address.clone(), error.to_string());
        self.last_error = Some(error);
        pooler.servers = self.last_servers.clone();
        pooler.answered_at = self.answered_at;
        pooler
    }

    async fn poll_unbounded(&mut self) -> Result<Pooler, PoolerError> {
        if self.connected.as_ref().is_some_and(Connected::is_closed) {
            self.connected = None;
        }
        if self.connected.is_none() {
            if let Some(at) = self.retry_at
                && Instant::now() < at
            {
                return Err(self.last_error.clone().unwrap_or(PoolerError::WaitingToReconnect));
            }
            let connected = Connected::open_console(&self.params)
                .await
                .map_err(|e| connect_error(e, &self.params))?;
            self.connected = Some(connected);
        }
        let Some(connected) = &self.connected else {
            return Err(PoolerError::NotConnected);
        };
        let own = connected.report.local_addr;
        let mut budget = Budget::new(&connected.received, read::MAX_ROWS, read::MAX_BYTES);
        let (answer, outcome) = read_answer(&connected.client, own, &mut budget)
            .await
            .map_err(|e| query_error(&e, &connected.received))?;
        if let Outcome::Truncated(_) = outcome {
            // The rest of a reply past the cap is never read: the connection goes, and the next poll opens another.
            self.connected = None;
        }
        Ok(answer.into_pooler(self.address.clone(), budget.rows_read(), outcome))
    }
}

/// The four SHOWs, sent at once (one round trip) and read in turn under one budget; the first cap passed ends
/// the reading.
async fn read_answer(
    client: &tokio_postgres::Client,
    own: Option<std::net::SocketAddr>,
    budget: &mut Budget,
) -> Result<(rows::Answer, Outcome), tokio_postgres::Error> {
    let clients = client.simple_query_raw("SHOW CLIENTS").await?;
    let servers = client.simple_query_raw("SHOW SERVERS").await?;
    let databases = client.simple_query_raw("SHOW DATABASES").await?;
    let config = client.simple_query_raw("SHOW CONFIG").await?;
    let mut answer = rows::Answer::default();
    let outcome = read::rows(clients, budget, |r| answer.clients.push(rows::client(r, own))).await?;
    if outcome != Outcome::Complete {
        return Ok((answer, outcome));
    }
    let outcome = read::rows(servers, budget, |r| answer.servers.push(rows::server(r))).await?;
    if outcome != Outcome::Complete {
        return Ok((answer, outcome));
    }
    let outcome = read::rows(databases, budget, |r| answer.add_database(r)).await?;
    if outcome != Outcome::Complete {
        return Ok((answer, outcome));
    }
    let outcome = read::rows(config, budget, |r| answer.add_setting(r)).await?;
    Ok((answer, outcome))
}

/// The connection error in the user's terms: PgBouncer refuses a role in neither list with its own SQLSTATE and
/// the fixed reason "not allowed", and nothing else; that pair is the variant.
fn connect_error(e: ConnectError, params: &ConnParams) -> PoolerError {
    let not_allowed = matches!(
        e.cause(),
        Some(Cause::Server { code, message }) if code == PGBOUNCER_OWN_ERROR && message == PGBOUNCER_NOT_ALLOWED
    );
    if not_allowed {
        PoolerError::NotAllowed {
            source: e,
            user: params.user.clone(),
        }
    } else {
        PoolerError::Connect(e)
    }
}

/// What went wrong with a SHOW; a connection pgtls itself closed (a message over its limit) says why.
fn query_error(e: &tokio_postgres::Error, received: &crate::conn::inspect::Received) -> PoolerError {
    if let Some(crate::conn::inspect::Refusal::Protocol(why) | crate::conn::inspect::Refusal::Auth(why)) =
        received.refusal()
    {
        return PoolerError::ClosedByPgtls(why.to_string());
    }
    match e.as_db_error() {
        Some(db) => PoolerError::Refused {
            code: db.code().clone(),
            message: db.message().to_string(),
        },
        None if e.is_closed() => PoolerError::Closed,
        None => PoolerError::Query(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            e,
            PoolerSetupError::NotTheConsole {
                dbname: "postgres".into()
            }
        );
        assert!(e.to_string().contains("dbname=pgbouncer"), "{e}");
        let e = Poolers::resolve(&["host=pool dbname=pgbouncer options=-cx=1".to_string()], &env)
            .err()
            .unwrap();
        assert_eq!(e, PoolerSetupError::OptionsRefused);
        assert!(e.to_string().contains("options"), "{e}");
        let p = Poolers::resolve(&["host=pool port=6432 dbname=pgbouncer".to_string()], &env).unwrap();
        assert_eq!(p.sources[0].address, "pool:6432");
    }
}
