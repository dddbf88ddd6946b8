//! Plain data that flows from the collector to the views and the headless outputs.
//!
//! Nothing here knows about databases or terminals, so analysis, rendering and tests can build
//! these values directly. Everything serializes: `pgtls snapshot --format json` prints a
//! [`Snapshot`] as is, and docs/json.md documents the fields. Changing a field name is a breaking change.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Version of the JSON document shape; bumped on any incompatible change.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 1;

/// Everything one poll learned, stamped with the server's clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub format_version: u32,
    /// `now()` on the server when the poll ran; ages are measured from it so client clock skew does not matter.
    pub taken_at: DateTime<Utc>,
    /// Wall time of the poll's round trip, in milliseconds.
    pub poll_ms: f64,
    pub server: ServerInfo,
    pub monitor: MonitorConnection,
    pub privileges: Privileges,
    /// Server TLS settings by GUC name, in a stable (alphabetical) order.
    pub settings: BTreeMap<String, Setting>,
    /// `pg_conf_load_time()`: the last reload of the configuration (any setting, or pg_hba.conf). Only a bound on
    /// when a given setting changed; see [`crate::analysis::ledger::floor_since`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conf_load_time: Option<DateTime<Utc>>,
    /// Client sessions (TCP and Unix socket) and sessions the monitor may not inspect, ordered by pid.
    pub sessions: Vec<Session>,
    /// PgBouncer poolers in front of this server (`--pgbouncer`), as their admin consoles answered in this poll.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub poolers: Vec<Pooler>,
    /// Where this server runs, as its marks tell (read once per connection; see
    /// [`crate::analysis::platform::classify`]).
    #[serde(default)]
    pub platform: Platform,
}

impl Snapshot {
    /// The monitor's own row, if the server reported it.
    pub fn own_session(&self) -> Option<&Session> {
        self.sessions.iter().find(|s| s.pid == self.monitor.pid)
    }

    /// The sessions of clients: every row but pgtls's own connections (see [`Session::monitor`]).
    pub fn clients(&self) -> impl Iterator<Item = &Session> {
        self.sessions.iter().filter(|s| !s.monitor)
    }

    /// The one place that decides which rows are pgtls's own: the monitor's backend, and `helpers` (backends this
    /// process opened for itself, such as the demo's set-up connections). By pid only: any client may call itself
    /// "pgtls", and counting it is the point.
    /// Leave out backends of this process's other connections to the server that were listed after the poll's
    /// statement was sent (a target connecting meanwhile): they are pgtls's own, not clients.
    pub fn leave_out_own(&mut self, ours: Vec<i32>) {
        let late: Vec<i32> = self.late_own(&ours).collect();
        if !late.is_empty() {
            self.sessions.retain(|s| !late.contains(&s.pid));
            self.monitor.others.extend(late);
        }
    }

    /// Which of `ours` this snapshot does not yet leave out.
    pub fn late_own<'a>(&'a self, ours: &'a [i32]) -> impl Iterator<Item = i32> + 'a {
        ours.iter().copied().filter(|pid| !self.monitor.others.contains(pid))
    }

    pub fn mark_own(&mut self, helpers: &[i32]) {
        let monitor = self.monitor.pid;
        for s in &mut self.sessions {
            s.monitor = s.pid == monitor || helpers.contains(&s.pid);
        }
    }

    pub fn setting(&self, name: &str) -> &Setting {
        self.settings.get(name).unwrap_or(&Setting::ABSENT)
    }

    /// Session counts per transport class, in display order.
    pub fn class_counts(&self) -> ClassCounts {
        ClassCounts::of(&self.sessions)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// Host (or socket directory) and port the monitor reached.
    pub host: String,
    pub port: u16,
    /// `server_version_num`, e.g. 150018.
    pub version_num: u32,
    /// `server_version`, e.g. "15.18 (Debian 15.18-0+deb12u1)".
    pub version: String,
}

impl ServerInfo {
    pub fn major(&self) -> u32 {
        self.version_num / 10_000
    }
}

/// Where a server runs, told from what it shows a monitor; decides how the floor is raised there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub enum PlatformName {
    #[serde(rename = "azure_flexible_server")]
    Azure,
    #[serde(rename = "rds")]
    Rds,
    #[serde(rename = "aurora")]
    Aurora,
    #[serde(rename = "cloud_sql")]
    CloudSql,
    #[serde(rename = "alloydb")]
    AlloyDb,
    #[serde(rename = "cloudnativepg")]
    CloudNativePg,
    #[serde(rename = "self_hosted")]
    SelfHosted,
    /// No mark, marks that disagree, or marks pgtls could not read: never a guess.
    #[default]
    #[serde(rename = "unknown")]
    Unknown,
}

impl PlatformName {
    pub const ALL: [PlatformName; 8] = [
        PlatformName::Azure,
        PlatformName::Rds,
        PlatformName::Aurora,
        PlatformName::CloudSql,
        PlatformName::AlloyDb,
        PlatformName::CloudNativePg,
        PlatformName::SelfHosted,
        PlatformName::Unknown,
    ];

    pub fn label(self) -> &'static str {
        match self {
            PlatformName::Azure => "Azure Database for PostgreSQL flexible server",
            PlatformName::Rds => "Amazon RDS for PostgreSQL",
            PlatformName::Aurora => "Amazon Aurora PostgreSQL",
            PlatformName::CloudSql => "Google Cloud SQL for PostgreSQL",
            PlatformName::AlloyDb => "AlloyDB for PostgreSQL",
            PlatformName::CloudNativePg => "CloudNativePG",
            PlatformName::SelfHosted => "self-hosted",
            PlatformName::Unknown => "unknown",
        }
    }

    /// Where space is short (the header, a metric label).
    pub fn short_label(self) -> &'static str {
        match self {
            PlatformName::Azure => "Azure flexible server",
            PlatformName::Rds => "Amazon RDS",
            PlatformName::Aurora => "Aurora",
            PlatformName::CloudSql => "Cloud SQL",
            PlatformName::AlloyDb => "AlloyDB",
            PlatformName::CloudNativePg => "CloudNativePG",
            PlatformName::SelfHosted => "self-hosted",
            PlatformName::Unknown => "unknown",
        }
    }

    /// The name in JSON and in metric labels (`azure_flexible_server`, `self_hosted`, ...).
    pub fn key(self) -> &'static str {
        match self {
            PlatformName::Azure => "azure_flexible_server",
            PlatformName::Rds => "rds",
            PlatformName::Aurora => "aurora",
            PlatformName::CloudSql => "cloud_sql",
            PlatformName::AlloyDb => "alloydb",
            PlatformName::CloudNativePg => "cloudnativepg",
            PlatformName::SelfHosted => "self_hosted",
            PlatformName::Unknown => "unknown",
        }
    }
}

/// The platform and the marks that told it (or why it is unknown), in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Platform {
    pub name: PlatformName,
    pub evidence: Vec<String>,
}

/// How the monitor itself is connected: what it asked for and what the server reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorConnection {
    pub pid: i32,
    pub user: String,
    pub database: String,
    /// The sslmode the connection was made with (libpq spelling).
    pub sslmode: String,
    /// How far the client checked the server's certificate.
    pub verification: Verification,
    /// TLS as reported by `pg_stat_ssl` for `pg_backend_pid()`; `None` when not TLS.
    pub tls: Option<TlsInfo>,
    /// `ssl_is_used()` from the sslinfo extension; `None` when sslinfo is not installed in this database.
    pub ssl_is_used: Option<bool>,
    /// Which sources answered, e.g. `["pg_stat_ssl", "sslinfo"]`.
    pub sources: Vec<String>,
    /// Backends of this process's other connections to the same server (other targets that are this server under
    /// another name, database or role): left out of `sessions` by the poll itself and never counted as clients.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub others: Vec<i32>,
}

/// What the client verified about the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verification {
    /// Not TLS at all.
    NotTls,
    /// TLS, but the certificate was not checked (sslmode require/prefer/allow without a root file).
    None,
    /// The chain was checked against trusted roots, the host name was not (verify-ca).
    Chain,
    /// Chain and host name were checked (verify-full).
    ChainAndHost,
}

impl Verification {
    pub fn label(self) -> &'static str {
        match self {
            Verification::NotTls => "not TLS",
            Verification::None => "not verified",
            Verification::Chain => "chain verified",
            Verification::ChainAndHost => "chain + host verified",
        }
    }
}

/// What the monitor's role may see; decided once per connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Privileges {
    pub superuser: bool,
    /// Has the privileges of `pg_read_all_stats` (sees every session's TLS details).
    pub read_all_stats: bool,
    /// Has the privileges of `pg_read_all_settings` (sees ssl_min_protocol_version, ssl_ciphers, ...).
    pub read_all_settings: bool,
}

/// A server setting as the monitor could read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", content = "value", rename_all = "snake_case")]
pub enum Setting {
    /// Read from `pg_settings` (or `current_setting`).
    Set(String),
    /// Exists in this server version but the role may not read it (needs pg_read_all_settings).
    Hidden,
    /// Does not exist on this server (version or distribution lacks it).
    Absent,
}

impl Setting {
    pub const ABSENT: Setting = Setting::Absent;

    pub fn value(&self) -> Option<&str> {
        match self {
            Setting::Set(v) => Some(v),
            _ => None,
        }
    }
}

/// TLS details of one session, from `pg_stat_ssl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsInfo {
    /// OpenSSL protocol name: TLSv1, TLSv1.1, TLSv1.2, TLSv1.3.
    pub version: String,
    pub cipher: String,
    pub bits: Option<i32>,
    /// Client certificate subject (slash form, cut at 63 bytes by the server).
    pub client_dn: Option<String>,
    /// Client certificate serial number, in decimal.
    pub client_serial: Option<String>,
    pub issuer_dn: Option<String>,
}

/// GSSAPI details of one session, from `pg_stat_gssapi`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GssInfo {
    pub authenticated: bool,
    pub principal: Option<String>,
    pub encrypted: bool,
    /// PostgreSQL 16+ only.
    pub credentials_delegated: Option<bool>,
}

/// How one session's bytes travel. The order is the display order of the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnClass {
    Tls13,
    Tls12,
    /// TLS 1.1, 1.0 or anything unrecognised below 1.2.
    TlsOlder,
    /// TCP without TLS or GSS encryption: readable on the wire.
    PlainTcp,
    /// GSSAPI-encrypted TCP.
    Gss,
    /// Unix-domain socket: never leaves the host, never TLS.
    Local,
    /// The monitor may not see this session's connection details (needs pg_read_all_stats).
    Unknown,
}

impl ConnClass {
    pub const ALL: [ConnClass; 7] = [
        ConnClass::Tls13,
        ConnClass::Tls12,
        ConnClass::TlsOlder,
        ConnClass::PlainTcp,
        ConnClass::Gss,
        ConnClass::Local,
        ConnClass::Unknown,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ConnClass::Tls13 => "TLSv1.3",
            ConnClass::Tls12 => "TLSv1.2",
            ConnClass::TlsOlder => "older TLS",
            ConnClass::PlainTcp => "no TLS (TCP)",
            ConnClass::Gss => "GSS encrypted",
            ConnClass::Local => "local socket",
            ConnClass::Unknown => "unknown",
        }
    }

    pub fn from_tls_version(version: &str) -> ConnClass {
        match version {
            "TLSv1.3" => ConnClass::Tls13,
            "TLSv1.2" => ConnClass::Tls12,
            _ => ConnClass::TlsOlder,
        }
    }

    /// Would a server with `ssl_min_protocol_version=TLSv1.3` refuse this kind of connection?
    pub fn below_tls13(self) -> bool {
        matches!(self, ConnClass::Tls12 | ConnClass::TlsOlder)
    }

    /// Worst exposure first, so sorting by TLS puts plain-text and old-TLS sessions on top, and a client seen in
    /// several ways is judged by its worst.
    pub fn exposure_rank(self) -> u8 {
        match self {
            ConnClass::PlainTcp => 0,
            ConnClass::TlsOlder => 1,
            ConnClass::Tls12 => 2,
            ConnClass::Unknown => 3,
            ConnClass::Gss => 4,
            ConnClass::Tls13 => 5,
            ConnClass::Local => 6,
        }
    }

    /// [`ConnClass::label`] where space is short (a border, a legend).
    pub fn short_label(self) -> &'static str {
        match self {
            ConnClass::Tls13 => "TLSv1.3",
            ConnClass::Tls12 => "TLSv1.2",
            ConnClass::TlsOlder => "older TLS",
            ConnClass::PlainTcp => "no TLS",
            ConnClass::Gss => "GSS",
            ConnClass::Local => "local",
            ConnClass::Unknown => "unknown",
        }
    }
}

/// One row of `pg_stat_activity` with its `pg_stat_ssl` and `pg_stat_gssapi` details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub pid: i32,
    pub class: ConnClass,
    /// PostgreSQL 13+: the parallel group leader, if this is a parallel worker.
    pub leader_pid: Option<i32>,
    pub user: Option<String>,
    pub database: Option<String>,
    pub application_name: Option<String>,
    /// Client IP address; `None` for Unix sockets and hidden sessions.
    pub client_addr: Option<String>,
    pub client_hostname: Option<String>,
    /// -1 for Unix sockets; `None` when hidden.
    pub client_port: Option<i32>,
    pub backend_type: Option<String>,
    pub state: Option<String>,
    pub backend_start: Option<DateTime<Utc>>,
    pub xact_start: Option<DateTime<Utc>>,
    pub query_start: Option<DateTime<Utc>>,
    pub state_change: Option<DateTime<Utc>>,
    pub wait_event_type: Option<String>,
    pub wait_event: Option<String>,
    pub query: Option<String>,
    /// PostgreSQL 14+.
    pub query_id: Option<i64>,
    pub tls: Option<TlsInfo>,
    pub gss: Option<GssInfo>,
    /// Columns the server sent that could not be decoded (shown empty): the session is kept and marked rather
    /// than dropped, and the other sessions are unaffected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub undecoded: Vec<String>,
    /// pgtls's own connection (the monitor's backend, or one the demo opened for itself): listed, but never
    /// counted, alerted on or kept in the ledger. Set once by [`Snapshot::mark_own`] when the snapshot is built.
    #[serde(default)]
    pub monitor: bool,
    /// Served by a pooler (`--pgbouncer`): this session's own TLS (`tls`, `class`) is the pooler's leg, and this
    /// says what is known of the client's leg. `None` for sessions no pooler claims.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pooler: Option<PoolerLeg>,
}

impl Session {
    /// `addr:port`, `[local]` for Unix sockets, or `?` when hidden.
    pub fn client_endpoint(&self) -> String {
        match (&self.client_addr, self.client_port) {
            (_, Some(-1)) => "[local]".to_string(),
            (Some(addr), Some(port)) if addr.contains(':') => format!("[{addr}]:{port}"),
            (Some(addr), Some(port)) => format!("{addr}:{port}"),
            (Some(addr), None) => addr.clone(),
            (None, _) => "?".to_string(),
        }
    }

    /// How the client's bytes travel: behind a pooler that named the client, the client's own leg; otherwise the
    /// session's own (for a pooled session whose client is not known, that is the pooler's leg).
    pub fn client_class(&self) -> ConnClass {
        match &self.pooler {
            Some(PoolerLeg { client: Some(c), .. }) => c.class,
            _ => self.class,
        }
    }

    /// Seconds since the backend started, measured on the server's clock.
    pub fn age_secs(&self, now: DateTime<Utc>) -> Option<i64> {
        self.backend_start.map(|s| (now - s).num_seconds().max(0))
    }
}

/// The TLS of one pooler connection, from the `tls` column of `SHOW CLIENTS`/`SHOW SERVERS`
/// (`TLSv1.2/ECDHE-RSA-CHACHA20-POLY1305/ECDH=X25519`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolerTls {
    pub version: String,
    pub cipher: String,
}

impl PoolerTls {
    /// `None` for the empty column (no TLS). Parts past the cipher (the key exchange group) are left out.
    pub fn parse(column: &str) -> Option<PoolerTls> {
        let column = column.trim();
        if column.is_empty() {
            return None;
        }
        let mut parts = column.split('/');
        let version = parts.next().unwrap_or_default().to_string();
        let cipher = parts.next().unwrap_or_default().to_string();
        Some(PoolerTls { version, cipher })
    }
}

/// One PgBouncer, as its admin console (`dbname=pgbouncer`) answered `SHOW CLIENTS`, `SHOW SERVERS`,
/// `SHOW DATABASES` and `SHOW CONFIG`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pooler {
    /// `host:port` of the admin console, as given in `--pgbouncer` (a socket directory for Unix sockets).
    pub address: String,
    /// Why this poll has no fresh data from this pooler (cannot connect, role not in admin_users or stats_users,
    /// query failed); `None` when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// TLS settings and the pool mode from `SHOW CONFIG`, by name (`client_tls_sslmode`, `client_tls_protocols`,
    /// `server_tls_sslmode`, ...), in a stable order.
    pub settings: BTreeMap<String, String>,
    /// Pool mode per pooler database (`SHOW DATABASES`), where it differs from the pooler's `pool_mode`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub database_pool_modes: BTreeMap<String, String>,
    /// The pooler's clients: each one's own leg (its address and TLS to the pooler).
    pub clients: Vec<PoolerClient>,
    /// The pooler's connections to servers (to this one and any other it serves).
    pub servers: Vec<PoolerServer>,
    /// When the console last answered (this poll's answer, or the last one before `error`); `None` if it never did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<DateTime<Utc>>,
    /// Rows read from that answer, every SHOW together.
    #[serde(default)]
    pub rows: u64,
    /// That answer passed pgtls's row or byte cap: what is here is its first part, and the console connection was
    /// closed rather than read on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl Pooler {
    /// A pooler that could not be polled: an address and a reason, no data.
    pub fn failed(address: String, error: String) -> Pooler {
        Pooler {
            address,
            error: Some(error),
            settings: BTreeMap::new(),
            database_pool_modes: BTreeMap::new(),
            clients: Vec::new(),
            servers: Vec::new(),
            answered_at: None,
            rows: 0,
            truncated: false,
        }
    }

    /// Whether this poll has the pooler's answer (whole or truncated).
    pub fn is_up(&self) -> bool {
        self.error.is_none()
    }

    pub fn setting(&self, name: &str) -> Option<&str> {
        self.settings.get(name).map(String::as_str)
    }

    /// The pool mode of one pooler database: its own (SHOW DATABASES) or the pooler's.
    pub fn pool_mode(&self, database: &str) -> Option<&str> {
        self.database_pool_modes
            .get(database)
            .map(String::as_str)
            .or_else(|| self.setting("pool_mode"))
    }

    /// The pooler's clients, without pgtls's own admin console connection.
    pub fn client_list(&self) -> impl Iterator<Item = &PoolerClient> {
        self.clients.iter().filter(|c| !c.monitor)
    }
}

/// One client of a pooler (`SHOW CLIENTS`). Names are set by the client: shown escaped like any outside text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolerClient {
    pub application_name: Option<String>,
    pub user: Option<String>,
    /// The pooler database it asked for (`pgbouncer` for the admin console).
    pub database: Option<String>,
    /// The client's own address (`unix` for a Unix socket).
    pub address: Option<String>,
    pub port: Option<i32>,
    /// The client's own leg: `None` when it connected to the pooler without TLS.
    pub tls: Option<PoolerTls>,
    pub class: ConnClass,
    /// `active`, `waiting`, ...
    pub state: Option<String>,
    pub connect_time: Option<DateTime<Utc>>,
    /// The pooler's handle for this client; a server connection's `link` names it while serving it.
    pub ptr: String,
    /// pgtls's own admin console connection: listed, never counted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub monitor: bool,
}

impl PoolerClient {
    /// `addr:port`, `[local]` for Unix sockets, `?` when unknown.
    pub fn endpoint(&self) -> String {
        endpoint_of(self.address.as_deref(), self.port)
    }
}

/// `addr:port`, `[addr]:port` for IPv6, `[local]` for a Unix socket.
pub fn endpoint_of(address: Option<&str>, port: Option<i32>) -> String {
    match (address, port) {
        (Some("unix"), _) => "[local]".to_string(),
        (Some(a), Some(p)) if a.contains(':') => format!("[{a}]:{p}"),
        (Some(a), Some(p)) => format!("{a}:{p}"),
        (Some(a), None) => a.to_string(),
        (None, _) => "?".to_string(),
    }
}

/// One server connection of a pooler (`SHOW SERVERS`): the pooler's own leg to a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolerServer {
    pub user: Option<String>,
    pub database: Option<String>,
    /// The server it is connected to.
    pub address: Option<String>,
    pub port: Option<i32>,
    /// The pooler's end of the connection: the server sees it as `client_addr:client_port`.
    pub local_address: Option<String>,
    pub local_port: Option<i32>,
    /// The server backend's pid (`remote_pid`).
    pub remote_pid: Option<i32>,
    pub tls: Option<PoolerTls>,
    pub state: Option<String>,
    /// The `ptr` of the client it serves right now, if any.
    pub link: Option<String>,
}

/// How a server session served by a pooler relates to the pooler's clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolerJoin {
    /// Session pooling: the server connection belongs to one client for the client's life; `client` is its leg.
    Client,
    /// Session pooling, but no client holds the connection now (it waits in the pool).
    Idle,
    /// Transaction or statement pooling: the client changes from one transaction to the next, so none is named;
    /// the pooler's clients are listed on their own.
    Transaction,
    /// From a pooler's connection, but pgtls could not tie it to a client (the pooler did not answer, or its
    /// pid and address disagree): via pooler, client leg unknown, never the client's own TLS.
    Unknown,
}

impl PoolerJoin {
    pub fn label(self) -> &'static str {
        match self {
            PoolerJoin::Client => "client joined",
            PoolerJoin::Idle => "idle in pool",
            PoolerJoin::Transaction => "transaction pooling",
            PoolerJoin::Unknown => "via pooler, client leg unknown",
        }
    }
}

/// The client's leg of a pooled session, as the pooler saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientLeg {
    pub address: Option<String>,
    pub port: Option<i32>,
    pub tls: Option<PoolerTls>,
    pub class: ConnClass,
    pub application_name: Option<String>,
    pub user: Option<String>,
}

impl ClientLeg {
    pub fn endpoint(&self) -> String {
        endpoint_of(self.address.as_deref(), self.port)
    }
}

/// [`Session::pooler`]: which pooler serves the session and what is known of its client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolerLeg {
    /// The pooler's [`Pooler::address`].
    pub address: String,
    pub join: PoolerJoin,
    /// Only with [`PoolerJoin::Client`].
    pub client: Option<ClientLeg>,
}

/// Session counts by [`ConnClass`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClassCounts {
    pub tls13: usize,
    pub tls12: usize,
    pub tls_older: usize,
    pub plain_tcp: usize,
    pub gss: usize,
    pub local: usize,
    pub unknown: usize,
}

impl ClassCounts {
    /// Counts of client sessions, by their client's own leg (see [`Session::client_class`]); pgtls's own
    /// connections are skipped.
    pub fn of(sessions: &[Session]) -> ClassCounts {
        let mut counts = ClassCounts::default();
        for s in sessions.iter().filter(|s| !s.monitor) {
            *counts.slot(s.client_class()) += 1;
        }
        counts
    }

    fn slot(&mut self, class: ConnClass) -> &mut usize {
        match class {
            ConnClass::Tls13 => &mut self.tls13,
            ConnClass::Tls12 => &mut self.tls12,
            ConnClass::TlsOlder => &mut self.tls_older,
            ConnClass::PlainTcp => &mut self.plain_tcp,
            ConnClass::Gss => &mut self.gss,
            ConnClass::Local => &mut self.local,
            ConnClass::Unknown => &mut self.unknown,
        }
    }

    pub fn get(&self, class: ConnClass) -> usize {
        let mut copy = *self;
        *copy.slot(class)
    }

    pub fn total(&self) -> usize {
        ConnClass::ALL.iter().map(|c| self.get(*c)).sum()
    }
}

/// One pg_hba.conf rule, as pg_hba_file_rules shows it (the file, not necessarily what is loaded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HbaRule {
    pub line_number: i32,
    pub kind: String,
    pub databases: Vec<String>,
    pub users: Vec<String>,
    pub address: Option<String>,
    pub auth_method: Option<String>,
}

/// Why pg_hba.conf's rules are not known: told apart so that callers never read the words to decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HbaUnreadable {
    /// The server refused the read (pg_hba_file_rules is for superusers unless granted).
    NotPermitted,
    /// The connection has not read them yet (the history service before its first connection).
    NotReadYet,
    /// The read failed for another reason; the client's words, for people.
    Failed(String),
    /// There is no pg_hba.conf to read (a pooler's client side).
    NotApplicable,
}

impl std::fmt::Display for HbaUnreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HbaUnreadable::NotPermitted => f.write_str(
                "pg_hba_file_rules is readable by superusers, or after GRANT SELECT ON \
                 pg_catalog.pg_hba_file_rules and GRANT EXECUTE ON FUNCTION pg_catalog.pg_hba_file_rules()",
            ),
            HbaUnreadable::NotReadYet => f.write_str("not read yet"),
            HbaUnreadable::NotApplicable => f.write_str("a pooler's client side has no pg_hba.conf"),
            HbaUnreadable::Failed(message) => write!(f, "cannot read pg_hba_file_rules: {message}"),
        }
    }
}

impl std::error::Error for HbaUnreadable {}

/// pg_hba.conf's rules as the monitor could read them, or why not.
pub type HbaRules = Result<Vec<HbaRule>, HbaUnreadable>;

impl HbaRule {
    /// A rule that lets a TCP client in without TLS (`host`/`hostnossl`, not `reject`).
    pub fn admits_plaintext(&self) -> bool {
        matches!(self.kind.as_str(), "host" | "hostnossl") && self.auth_method.as_deref() != Some("reject")
    }

    pub fn describe(&self) -> String {
        format!(
            "line {}: {} {} {} {} {}",
            self.line_number,
            self.kind,
            self.databases.join(","),
            self.users.join(","),
            self.address.as_deref().unwrap_or(""),
            self.auth_method.as_deref().unwrap_or("")
        )
        .trim_end()
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_versions_map_to_classes() {
        assert_eq!(ConnClass::from_tls_version("TLSv1.3"), ConnClass::Tls13);
        assert_eq!(ConnClass::from_tls_version("TLSv1.2"), ConnClass::Tls12);
        assert_eq!(ConnClass::from_tls_version("TLSv1.1"), ConnClass::TlsOlder);
        assert_eq!(ConnClass::from_tls_version("TLSv1"), ConnClass::TlsOlder);
        assert!(ConnClass::Tls12.below_tls13());
        assert!(!ConnClass::PlainTcp.below_tls13());
    }

    #[test]
    fn setting_serializes_with_state_tag() {
        let json = serde_json::to_string(&Setting::Set("on".into())).unwrap();
        assert_eq!(json, r#"{"state":"set","value":"on"}"#);
        assert_eq!(
            serde_json::to_string(&Setting::Hidden).unwrap(),
            r#"{"state":"hidden"}"#
        );
    }

    #[test]
    fn backends_of_ours_listed_late_are_left_out_once() {
        let mut snap = crate::fixtures::snapshot();
        let late = snap.clients().next().unwrap().pid;
        let before = snap.sessions.len();
        snap.leave_out_own(vec![late]);
        assert!(snap.sessions.iter().all(|s| s.pid != late));
        assert_eq!(snap.sessions.len(), before - 1);
        assert!(snap.monitor.others.contains(&late));
        snap.leave_out_own(vec![late]);
        assert_eq!(
            snap.monitor.others.iter().filter(|p| **p == late).count(),
            1,
            "listed once"
        );
    }

    #[test]
    fn own_connections_are_known_by_pid_and_not_counted() {
        let mut snap = crate::fixtures::snapshot();
        // A client that calls itself pgtls is still a client.
        let impostor = snap.sessions.iter().position(|s| s.pid != snap.monitor.pid).unwrap();
        snap.sessions[impostor].application_name = Some("pgtls".into());
        let impostor_pid = snap.sessions[impostor].pid;
        let before = snap.class_counts().total();
        snap.mark_own(&[]);
        let own: Vec<i32> = snap.sessions.iter().filter(|s| s.monitor).map(|s| s.pid).collect();
        assert_eq!(own, vec![snap.monitor.pid]);
        assert_eq!(snap.class_counts().total(), before);
        assert_eq!(snap.class_counts().total(), snap.sessions.len() - 1);
        assert!(snap.clients().any(|s| s.pid == impostor_pid));
        snap.mark_own(&[impostor_pid]);
        assert_eq!(
            snap.clients().count(),
            snap.sessions.len() - 2,
            "a helper pid is own too"
        );
        let json = serde_json::to_value(&snap).unwrap();
        let flagged = json["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["monitor"] == true)
            .count();
        assert_eq!(flagged, 2);
    }

    #[test]
    fn endpoint_formats_ipv6_and_sockets() {
        let mut s = crate::fixtures::session(1, ConnClass::Tls13);
        s.client_addr = Some("::1".into());
        s.client_port = Some(5000);
        assert_eq!(s.client_endpoint(), "[::1]:5000");
        s.client_port = Some(-1);
        s.client_addr = None;
        assert_eq!(s.client_endpoint(), "[local]");
    }
}
