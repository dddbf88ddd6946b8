//! The collector: connect, run the privilege preflight once, then poll in one round trip.

pub mod act;
pub mod cert_file;
pub mod engine;
pub mod fleet;
pub mod history;
pub mod own_backends;
pub mod platform;
/// The set of our own helper backends is `pgtls_core::own`, so the lab can share it without depending on this crate.
pub use pgtls_core::own;
pub mod poller;
pub mod pooler;
pub mod rows;
pub mod sql;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_postgres::Statement;
use tokio_postgres::error::SqlState;

use tokio::task::JoinHandle;

use crate::conn::{ConnParams, ConnectError, ConnectReport, connect};
use crate::model::{
    HbaUnreadable, MonitorConnection, Privileges, SNAPSHOT_FORMAT_VERSION, ServerInfo, Snapshot, Verification,
};

/// What the preflight learned; fixed for the life of a connection.
#[derive(Debug, Clone)]
pub struct Preflight {
    pub server: ServerInfo,
    pub privileges: Privileges,
    pub sslinfo_schema: Option<String>,
    /// Why sslinfo is installed but not used, for the user to see once.
    pub sslinfo_note: Option<String>,
    pub monitor_user: String,
    pub monitor_database: String,
    pub monitor_pid: i32,
    /// Where the server runs, from its marks (read here, once, not on every poll).
    pub platform: crate::model::Platform,
    /// The server as it describes itself, to tell our other connections to it (see [`own_backends`]).
    pub server_key: own_backends::ServerKey,
}

/// A connection whose I/O task runs on tokio; dropping it ends the task.
pub struct Connected {
    /// Shared with the history service, which reads the server log through it (one backend, not two).
    pub client: Arc<tokio_postgres::Client>,
    pub report: ConnectReport,
    /// Message bytes read so far (a pooler's replies are bounded by it).
    pub received: crate::conn::inspect::Received,
    task: JoinHandle<Result<(), tokio_postgres::Error>>,
    /// Given up (see [`Connected::cancel`]): closed from then on, whatever the aborted task has done yet.
    abandoned: std::sync::atomic::AtomicBool,
}

impl Connected {
    /// A connection to a PostgreSQL server, with `search_path` pinned empty before any statement of ours runs (see
    /// [`sql::PIN_SEARCH_PATH`]). Every server connection pgtls opens comes through here.
    pub async fn open_server(params: &ConnParams) -> Result<Connected, CollectError> {
        let connected = Self::open(params).await.map_err(CollectError::Connect)?;
        connected.pin(params).await
    }

    /// The search-path pin of [`Connected::open_server`], apart so that a monitor connection can be listed among our
    /// own backends (by the pid the start-up gave) before its first statement's round trip.
    async fn pin(self, params: &ConnParams) -> Result<Connected, CollectError> {
        let connected = self;
        let limit = params
            .connect_timeout
            .unwrap_or(crate::conn::connect::DEFAULT_CONNECT_TIMEOUT);
        match tokio::time::timeout(limit, pin_search_path(&connected.client)).await {
            Ok(Ok(())) => Ok(connected),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                connected.cancel();
                Err(CollectError::Stalled {
                    phase: Phase::StartUp,
                    after: limit,
                })
            }
        }
    }

    /// A connection to a PgBouncer admin console, which runs no SQL (only its SHOW commands), so there is no search
    /// path to pin and the pin's SELECT would be refused.
    pub async fn open_console(params: &ConnParams) -> Result<Connected, ConnectError> {
        Self::open(params).await
    }

    async fn open(params: &ConnParams) -> Result<Connected, ConnectError> {
        let connection = connect(params).await?;
        Ok(Connected {
            client: Arc::new(connection.client),
            report: connection.report,
            received: connection.received,
            task: tokio::spawn(connection.task),
            abandoned: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// True once the server closed the connection or the socket failed.
    pub fn is_closed(&self) -> bool {
        self.client.is_closed() || self.task.is_finished() || self.abandoned.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Send a CancelRequest for whatever this session runs (in the background, bounded), then close the
    /// connection: a backend that stopped answering is not waited for.
    pub fn cancel(&self) {
        let report = self.report.clone();
        tokio::spawn(async move {
            let _ = crate::conn::cancel(&report, Duration::from_secs(5)).await;
        });
        self.abandoned.store(true, std::sync::atomic::Ordering::SeqCst);
        self.task.abort();
    }
}

/// Backends whose client end is a TCP connection this process holds to `server`: ours even before the other
/// connection's start-up has told it its pid (another target connecting while this poll ran).
fn ours_by_address(snapshot: &Snapshot, server: std::net::SocketAddr) -> Vec<i32> {
    snapshot
        .sessions
        .iter()
        .filter(|s| s.pid != snapshot.monitor.pid)
        .filter(|s| {
            let port = s.client_port.and_then(|p| u16::try_from(p).ok());
            own_client(s.client_addr.as_deref(), port, server)
        })
        .map(|s| s.pid)
        .collect()
}

/// Is the client at `addr` and `port`, as the server reports it, a TCP connection this process holds to `server`?
/// A host name (`log_hostname`) or a missing port cannot be matched: the pid checks still apply to those.
pub(crate) fn own_client(addr: Option<&str>, port: Option<u16>, server: std::net::SocketAddr) -> bool {
    match (addr.and_then(|a| a.parse::<std::net::IpAddr>().ok()), port) {
        (Some(ip), Some(port)) => crate::conn::own_sockets::is_ours(std::net::SocketAddr::new(ip, port), server),
        _ => false,
    }
}

/// Pin the search path and check that the server took it: a proxy that swallowed the statement must not leave us
/// resolving names through whatever path the database or role set.
async fn pin_search_path(client: &tokio_postgres::Client) -> Result<(), CollectError> {
    let messages = client.simple_query(sql::PIN_SEARCH_PATH).await.map_err(poll_error)?;
    let pinned = messages.iter().any(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0) == Some(""),
        _ => false,
    });
    if pinned {
        Ok(())
    } else {
        Err(CollectError::poll(
            "the server did not confirm the empty search_path pgtls sets on every connection",
        ))
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A connected collector. Polls run as single autocommit statements, because pg_stat_activity
/// is a per-transaction snapshot that would otherwise go stale.
pub struct Collector {
    connected: Connected,
    preflight: Preflight,
    statement: Statement,
    /// How long a poll may take before it counts as stalled (see [`poll_timeout`]).
    poll_timeout: Duration,
    /// Other backends of this process (the demo's), marked as own in every snapshot.
    helpers: Option<own::OwnPids>,
    /// PgBouncer admin consoles in front of this server, polled with it.
    poolers: pooler::Poolers,
    /// This connection's backend, listed for the process's other connections to the same server to leave out.
    /// `None` once the connection is given up: its backend, if the server still lists it, is no longer ours to hide.
    own: Option<Arc<own_backends::Registration>>,
}

/// The shortest and longest a poll may take before pgtls gives up on it: a busy server deserves a few
/// seconds, but a stalled one must not leave "updated 16:34:43" on screen for long.
pub const MIN_POLL_TIMEOUT: Duration = Duration::from_secs(5);
pub const MAX_POLL_TIMEOUT: Duration = Duration::from_secs(30);

/// clamp(2 x interval, 5 s, 30 s), unless the user chose a value.
pub fn poll_timeout(interval: Duration, chosen: Option<Duration>) -> Duration {
    chosen.unwrap_or_else(|| (interval * 2).clamp(MIN_POLL_TIMEOUT, MAX_POLL_TIMEOUT))
}

/// Which step of talking to the server stopped answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Connecting: TCP, TLS, authentication (the connect timeout bounds it; the poller keeps one attempt at a time).
    ConnectionAttempt,
    /// The queries after connecting: the search-path pin, the session's timeouts, the preflight, preparing the poll.
    StartUp,
    /// One poll.
    Poll,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::ConnectionAttempt => "connection attempt",
            Phase::StartUp => "start-up queries",
            Phase::Poll => "poll",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CollectError {
    Connect(ConnectError),
    /// A query failed or the connection broke mid-poll. `code` is the server's SQLSTATE when it sent an error (the
    /// thing to decide on); `message` is its text, or what the client saw, for people.
    Poll {
        code: Option<SqlState>,
        message: String,
    },
    /// The server did not answer in time: the query was cancelled and the connection dropped.
    Stalled {
        phase: Phase,
        after: Duration,
    },
}

impl CollectError {
    /// A failure with no server error behind it (the connection went away, a task ended).
    pub fn poll(message: impl Into<String>) -> CollectError {
        CollectError::Poll {
            code: None,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for CollectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CollectError::Connect(e) => write!(f, "{e}"),
            CollectError::Poll { message, .. } => write!(f, "poll failed: {message}"),
            CollectError::Stalled {
                phase: Phase::ConnectionAttempt,
                after,
            } => write!(
                f,
                "the server has not finished the connection start-up after {} s; still waiting (one attempt at a time)",
                after.as_secs()
            ),
            CollectError::Stalled { phase, after } => write!(
                f,
                "the server did not answer the {phase} within {} s; cancelled, reconnecting",
                after.as_secs()
            ),
        }
    }
}

impl std::error::Error for CollectError {}

fn poll_error(e: tokio_postgres::Error) -> CollectError {
    match e.as_db_error() {
        Some(db) => CollectError::Poll {
            code: Some(db.code().clone()),
            message: db.message().to_string(),
        },
        None if e.is_closed() => CollectError::poll("connection to the server was lost"),
        None => CollectError::poll(e.to_string()),
    }
}

impl Collector {
    pub async fn connect(params: &ConnParams) -> Result<Collector, CollectError> {
        Self::connect_with(params, MAX_POLL_TIMEOUT).await
    }

    /// Connect, then run the preflight and prepare the poll, each step bounded by `poll_timeout`; the
    /// session's statement_timeout and lock_timeout make the server give up too, should the client not.
    pub async fn connect_with(params: &ConnParams, poll_timeout: Duration) -> Result<Collector, CollectError> {
        let connected = Connected::open(params).await.map_err(CollectError::Connect)?;
        // Listed as soon as the start-up gave the pid, before any statement (the search-path pin included): another
        // target's poll may run meanwhile, and the backend is already in pg_stat_activity.
        let own = connected
            .report
            .cancel_key
            .as_ref()
            .map(|key| own_backends::Registration::connected(connected.report.addr, key.pid));
        let connected = connected.pin(params).await?;
        let (preflight, statement) =
            match tokio::time::timeout(poll_timeout, Self::start(&connected, poll_timeout)).await {
                Ok(started) => started?,
                Err(_) => {
                    connected.cancel();
                    return Err(CollectError::Stalled {
                        phase: Phase::StartUp,
                        after: poll_timeout,
                    });
                }
            };
        let own = match own.filter(|o| o.pid() == preflight.monitor_pid) {
            Some(own) => own,
            None => own_backends::Registration::connected(connected.report.addr, preflight.monitor_pid),
        };
        let own = Some(Arc::new(own.identified(preflight.server_key.clone())));
        Ok(Collector {
            connected,
            preflight,
            statement,
            poll_timeout,
            helpers: None,
            poolers: pooler::Poolers::default(),
            own,
        })
    }

    /// Mark the backends `helpers` lists as pgtls's own too (see [`crate::model::Snapshot::mark_own`]).
    pub fn with_helpers(mut self, helpers: Option<own::OwnPids>) -> Collector {
        self.helpers = helpers;
        self
    }

    pub fn helpers(&self) -> Option<&own::OwnPids> {
        self.helpers.as_ref()
    }

    /// Poll these poolers with every poll of the server and join their clients to its sessions.
    pub fn with_poolers(mut self, poolers: pooler::Poolers) -> Collector {
        self.poolers = poolers;
        self
    }

    /// The poolers, with their connections, for the collector that replaces this one.
    pub fn take_poolers(&mut self) -> pooler::Poolers {
        std::mem::take(&mut self.poolers)
    }

    async fn start(connected: &Connected, poll_timeout: Duration) -> Result<(Preflight, Statement), CollectError> {
        connected
            .client
            .simple_query(&sql::timeouts(poll_timeout.as_millis()))
            .await
            .map_err(poll_error)?;
        let row = connected
            .client
            .query_one(sql::PREFLIGHT, &[])
            .await
            .map_err(poll_error)?;
        let version_num: i32 = row.try_get("version_num").map_err(poll_error)?;
        let mut preflight = Preflight {
            server: ServerInfo {
                host: connected.report.host.clone(),
                port: connected.report.port,
                version_num: u32::try_from(version_num).unwrap_or_default(),
                version: row.try_get("version").map_err(poll_error)?,
            },
            privileges: Privileges {
                superuser: row.try_get("superuser").map_err(poll_error)?,
                read_all_stats: row.try_get("read_all_stats").map_err(poll_error)?,
                read_all_settings: row.try_get("read_all_settings").map_err(poll_error)?,
            },
            sslinfo_schema: None,
            sslinfo_note: None,
            monitor_user: row.try_get("monitor_user").map_err(poll_error)?,
            monitor_database: row.try_get("monitor_database").map_err(poll_error)?,
            monitor_pid: row.try_get("monitor_pid").map_err(poll_error)?,
            platform: crate::model::Platform::default(),
            server_key: own_backends::ServerKey {
                postmaster_start: row.try_get("postmaster_start").map_err(poll_error)?,
                port: row.try_get("server_port").map_err(poll_error)?,
            },
        };
        let schema: Option<String> = row.try_get("sslinfo_schema").map_err(poll_error)?;
        let owner: Option<String> = row.try_get("sslinfo_schema_owner").map_err(poll_error)?;
        let trusted: bool = row.try_get("sslinfo_trusted").map_err(poll_error)?;
        match (schema, trusted) {
            (Some(schema), true) => preflight.sslinfo_schema = Some(schema),
            (Some(schema), false) => {
                preflight.sslinfo_note = Some(format!(
                    "sslinfo's ssl_is_used() is not called: its schema {} (owner {}) is not owned by a superuser, \
                     or holds another function of that name, so a database user could have put their own code \
                     under that name and pgtls would run it with its own rights",
                    crate::conn::text::escaped(&schema),
                    crate::conn::text::escaped(owner.as_deref().unwrap_or("unknown")),
                ))
            }
            (None, _) => {}
        }
        preflight.platform = platform::detect(
            &connected.client,
            preflight.server.version_num,
            preflight.privileges.superuser,
        )
        .await?;
        let shape = sql::PollShape {
            version_num: preflight.server.version_num,
            sslinfo_schema: preflight.sslinfo_schema.clone(),
        };
        // Prepared once: each poll then costs one Bind/Execute round trip and no planning of the text.
        let statement = connected
            .client
            .prepare(&sql::poll_statement(&shape))
            .await
            .map_err(poll_error)?;
        Ok((preflight, statement))
    }

    pub fn preflight(&self) -> &Preflight {
        &self.preflight
    }

    /// What the user should hear once about this connection: the connection layer's notes (an ignored .pgpass,
    /// a missing client certificate) and the preflight's (sslinfo left uncalled, and why).
    pub fn warnings(&self) -> Vec<String> {
        let mut all = self.connected.report.warnings.clone();
        all.extend(self.preflight.sslinfo_note.clone());
        all
    }

    pub fn is_closed(&self) -> bool {
        self.connected.is_closed()
    }

    /// Cancel whatever runs and close the connection; the collector is unusable afterwards.
    pub fn abandon(&self) {
        self.connected.cancel();
    }

    /// How long the next polls may take (the dashboard's interval changes it).
    pub fn set_poll_timeout(&mut self, limit: Duration) {
        self.poll_timeout = limit;
    }

    /// One poll, bounded by the poll timeout. On expiry the running query is cancelled and the collector must
    /// be dropped (its connection is unusable): the caller reconnects, leaving at most this one backend behind.
    /// The poolers are polled at the same time, each bounded by the same timeout; one that fails is reported in
    /// the snapshot and never fails the poll.
    pub async fn poll(&mut self) -> Result<Snapshot, CollectError> {
        let limit = self.poll_timeout;
        let others = self.own.as_ref().map(|own| own.others()).unwrap_or_default();
        let server = Self::poll_once(
            &self.connected,
            &self.preflight,
            &self.statement,
            self.helpers.as_ref(),
            others,
        );
        let (server, answered) = tokio::join!(tokio::time::timeout(limit, server), self.poolers.poll(limit));
        match server {
            Ok(Ok(mut snapshot)) => {
                // Asked again now: a backend of ours that started while the poll ran (another target connecting) is
                // listed by now, and is ours, not a client.
                if let Some(own) = &self.own {
                    snapshot.leave_out_own(own.others());
                }
                if let Some(server) = self.connected.report.addr {
                    snapshot.leave_out_own(ours_by_address(&snapshot, server));
                }
                crate::analysis::pooler::join(&mut snapshot.sessions, &answered);
                snapshot.poolers = answered;
                Ok(snapshot)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => {
                self.connected.cancel();
                self.own = None;
                Err(CollectError::Stalled {
                    phase: Phase::Poll,
                    after: limit,
                })
            }
        }
    }

    /// One poll of the server, from the collector's parts (so the poolers can be polled beside it, and a poll given
    /// up on leaves them in place).
    async fn poll_once(
        connected: &Connected,
        pre: &Preflight,
        statement: &Statement,
        helpers: Option<&own::OwnPids>,
        others: Vec<i32>,
    ) -> Result<Snapshot, CollectError> {
        let started = Instant::now();
        let rows = connected
            .client
            .query(statement, &[&others])
            .await
            .map_err(poll_error)?;
        let poll_ms = started.elapsed().as_secs_f64() * 1000.0;

        let mut sessions = Vec::with_capacity(rows.len());
        let mut meta = None;
        for row in &rows {
            let kind: i16 = row.try_get(sql::col::KIND).map_err(poll_error)?;
            if kind == 0 {
                meta = Some(row);
            } else {
                sessions.push(rows::session_from_row(row));
            }
        }
        let meta = meta.ok_or_else(|| CollectError::poll("the poll returned no meta row"))?;
        let taken_at: DateTime<Utc> = meta.try_get(sql::col::SERVER_NOW).map_err(poll_error)?;
        let names = rows::text_array(meta, sql::col::SETTING_NAMES).map_err(poll_error)?;
        let values = rows::text_array(meta, sql::col::SETTING_VALUES).map_err(poll_error)?;
        let rst: Option<rows::LossyText> = meta.try_get(sql::col::REQUIRE_SECURE_TRANSPORT).map_err(poll_error)?;
        let rst = rst.map(|t| t.0);
        let ssl_is_used: Option<bool> = meta.try_get(sql::col::SSL_IS_USED).map_err(poll_error)?;
        let conf_load_time: Option<DateTime<Utc>> = meta.try_get(sql::col::CONF_LOAD_TIME).map_err(poll_error)?;
        // A pid names one backend, so no two keys are equal and the unstable sort gives the stable order, without
        // the stable sort's scratch copy of every session (a profile at 200 sessions found it on every refresh).
        sessions.sort_unstable_by_key(|s| s.pid);

        let own_tls = sessions
            .iter()
            .find(|s| s.pid == pre.monitor_pid)
            .and_then(|s| s.tls.clone());
        let mut sources = vec!["pg_stat_ssl".to_string()];
        if ssl_is_used.is_some() {
            sources.push("sslinfo".to_string());
        }
        let verification = if own_tls.is_some() || ssl_is_used == Some(true) {
            connected.report.verification_if_tls
        } else {
            Verification::NotTls
        };
        let helpers = helpers.map_or_else(Vec::new, |own| {
            own.current(|pid| sessions.binary_search_by_key(&pid, |s| s.pid).is_ok())
        });
        let mut snapshot = Snapshot {
            format_version: SNAPSHOT_FORMAT_VERSION,
            taken_at,
            poll_ms,
            server: pre.server.clone(),
            monitor: MonitorConnection {
                pid: pre.monitor_pid,
                user: pre.monitor_user.clone(),
                database: pre.monitor_database.clone(),
                sslmode: connected.report.sslmode.to_string(),
                verification,
                tls: own_tls,
                ssl_is_used,
                sources,
                others,
            },
            privileges: pre.privileges,
            settings: rows::settings_from(pre.server.version_num, &names, &values, rst),
            conf_load_time,
            sessions,
            poolers: Vec::new(),
            platform: pre.platform.clone(),
        };
        snapshot.mark_own(&helpers);
        Ok(snapshot)
    }
}

impl Collector {
    /// pg_hba.conf as the server reads it from disk (superuser only; 16+ adds columns we do not need).
    /// An error is a reason to show the user, not a failure of the connection.
    pub async fn hba_rules(&self) -> crate::model::HbaRules {
        let rows = self
            .connected
            .client
            .query(sql::HBA_RULES, &[])
            .await
            .map_err(|e| match e.code() {
                Some(code) if *code == SqlState::INSUFFICIENT_PRIVILEGE => HbaUnreadable::NotPermitted,
                _ => HbaUnreadable::Failed(e.to_string()),
            })?;
        rows.iter()
            .map(|r| {
                Ok(crate::model::HbaRule {
                    line_number: r.try_get("line_number")?,
                    kind: r.try_get("type")?,
                    databases: r.try_get::<_, Option<Vec<String>>>("database")?.unwrap_or_default(),
                    users: r.try_get::<_, Option<Vec<String>>>("user_name")?.unwrap_or_default(),
                    address: r.try_get("address")?,
                    auth_method: r.try_get("auth_method")?,
                })
            })
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(|e| HbaUnreadable::Failed(e.to_string()))
    }

    /// The handshake this connection made, as the probe reads it: `None` when it is not TLS.
    pub fn handshake(&self) -> Option<crate::probe::scan::Handshake> {
        let tls = self.connected.report.tls.as_ref()?;
        let chain: Vec<openssl::x509::X509> = self
            .connected
            .report
            .peer_chain
            .iter()
            .filter_map(|der| openssl::x509::X509::from_der(der).ok())
            .collect();
        (!chain.is_empty()).then(|| crate::probe::scan::Handshake {
            version: tls.version.clone(),
            cipher: tls.cipher.clone(),
            chain,
        })
    }

    /// This connection's backend among the process's own on the server (see [`own_backends`]).
    pub fn own_backends(&self) -> Option<Arc<own_backends::Registration>> {
        self.own.clone()
    }

    /// The client for source-specific reads (the SQL log reader) on the same connection.
    pub fn client(&self) -> &tokio_postgres::Client {
        &self.connected.client
    }

    /// The client, for a task that outlives this borrow (the history service); it fails once this connection ends.
    pub fn shared_client(&self) -> Arc<tokio_postgres::Client> {
        Arc::clone(&self.connected.client)
    }

    /// The server's address this connection reached over TCP (`None` over a Unix socket).
    pub fn server_addr(&self) -> Option<std::net::SocketAddr> {
        self.connected.report.addr
    }
}
