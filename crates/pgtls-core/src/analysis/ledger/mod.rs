//! The client ledger: every client identity seen, with the TLS it used, across polls, log lines and restarts.
//!
//! A single poll cannot answer "who breaks if I raise the minimum?": a nightly job that connects
//! for two seconds never shows in it. The ledger keeps everything the poller and the connection
//! log have seen, as counts: its size follows the number of distinct clients (capped, see [`Caps`]), never the
//! number of connections. Its file (the journal: `pgtls::analysis::ledger::Journal`, in the binary, since it
//! takes a lock and does I/O) is a compacted state plus the entries appended since, so a crash loses at most the
//! last poll and a damaged line costs only that line.

mod compact;
mod hours;
mod index;
mod refused;
mod resume;
mod trend;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use self::compact::{Names, grow_by_one};
pub use self::compact::{Sources, VecMap, VecSet};
pub use self::hours::Hours;
use self::index::Index;
pub use self::refused::{
    FloorSince, HourCount, RecentHandshake, RefusalKind, RefusedRecord, RefusedView, SCAN_MIN_HANDSHAKES,
    SCAN_WINDOW_MS, SinceSource, UNKNOWN_ADDRESS, floor_since,
};
use self::resume::pooled_ended;
pub use self::resume::{HASHED_LINE_MAX, LogPosition, head_hash, last_line_hash, line_hash};
pub use self::trend::{ClientHour, DAY, Lane, Lanes, Trend, TrendHour, WEEK, hour_of};
use crate::model::{ConnClass, Session, Setting, Snapshot};

/// Which fields identify a client. Pooled apps connect from many addresses: drop the address for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFields {
    pub user: bool,
    pub database: bool,
    pub application: bool,
    pub address: bool,
}

impl Default for KeyFields {
    fn default() -> Self {
        KeyFields {
            user: true,
            database: true,
            application: true,
            address: true,
        }
    }
}

/// A ledger key (`ledger.key`) pgtls cannot use. Display and Error by hand: the pure layer takes no derive crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// With no field every client would be one record: the holdouts list and every what-if would be empty lies.
    Empty,
    /// A name that is none of user, database, application, address.
    UnknownField(String),
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyError::Empty => {
                f.write_str("an empty key names no field; list at least one of user, database, application, address")
            }
            KeyError::UnknownField(other) => write!(
                f,
                "unknown ledger key field \"{other}\" (use user, database, application, address)"
            ),
        }
    }
}

impl std::error::Error for KeyError {}

impl KeyFields {
    /// From names like `["user", "database", "application"]`.
    pub fn from_names(names: &[String]) -> Result<KeyFields, KeyError> {
        if names.is_empty() {
            return Err(KeyError::Empty);
        }
        let mut k = KeyFields {
            user: false,
            database: false,
            application: false,
            address: false,
        };
        for n in names {
            match n.as_str() {
                "user" => k.user = true,
                "database" => k.database = true,
                "application" => k.application = true,
                "address" => k.address = true,
                other => return Err(KeyError::UnknownField(other.to_string())),
            }
        }
        Ok(k)
    }
}

/// A client identity. Fields left out of the key are empty.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClientKey {
    pub user: String,
    pub database: String,
    pub application: String,
    pub address: String,
    /// Behind a pooler (`--pgbouncer`): which one, and on which side of it this identity is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pooler: Option<PoolerSide>,
}

/// Which pooler a [`ClientKey`] belongs to, and on which side.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PoolerSide {
    /// The pooler's address, as `--pgbouncer` names it.
    pub address: String,
    pub side: Side,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// A client of the pooler, on its own leg (from `SHOW CLIENTS`): the pooler's client settings refuse it.
    Client,
    /// The pooler's own connections to the server: the server's settings refuse them, and with them every client
    /// behind the pooler.
    Server,
}

impl ClientKey {
    pub fn new(
        fields: KeyFields,
        user: Option<&str>,
        database: Option<&str>,
        application: Option<&str>,
        address: Option<&str>,
    ) -> Self {
        let pick = |on: bool, v: Option<&str>| if on { v.unwrap_or("").to_string() } else { String::new() };
        ClientKey {
            user: pick(fields.user, user),
            database: pick(fields.database, database),
            application: pick(fields.application, application),
            address: pick(fields.address, address),
            pooler: None,
        }
    }

    /// "billing-batch (billing@shop from 10.0.0.7)", "billing-batch (billing@shop via pooler pool:6432)",
    /// "pooler pool:6432's server connections (billing@shop)"
    pub fn label(&self) -> String {
        let mut who = self.user.clone();
        if !self.database.is_empty() {
            who = format!("{who}@{}", self.database);
        }
        if let Some(PoolerSide {
            address,
            side: Side::Server,
        }) = &self.pooler
        {
            return if who.is_empty() {
                format!("pooler {address}'s server connections")
            } else {
                format!("pooler {address}'s server connections ({who})")
            };
        }
        let app = if self.application.is_empty() {
            "(no application_name)"
        } else {
            &self.application
        };
        if !self.address.is_empty() {
            who = format!("{who} from {}", self.address);
        }
        if let Some(p) = &self.pooler {
            who = format!("{who} via pooler {}", p.address).trim_start().to_string();
        }
        if who.is_empty() {
            app.to_string()
        } else {
            format!("{app} ({who})")
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Poll,
    Log,
}

/// How much the ledger keeps at most, so that unbounded inputs (a scanner from many addresses, a forged log naming
/// many users or ciphers) cost a bounded amount of memory and file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Client identities; sessions of identities beyond it are counted in one "others" record.
    pub identities: usize,
    /// Client addresses kept per identity; more are only counted.
    pub addresses: usize,
    /// Recent sessions kept per identity (what a drill-down shows).
    pub recent: usize,
    /// (class, TLS version, cipher, source) rows per identity; rarer names beyond it are counted as `(other)`.
    pub usage: usize,
    /// Changes of the server's TLS settings kept (the latest ones), from polls and from the log each.
    pub settings_changes: usize,
    /// Addresses with refused attempts kept; attempts from more addresses are counted in one record.
    pub refused_addresses: usize,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            identities: 10_000,
            addresses: 16,
            recent: 8,
            usage: 32,
            settings_changes: 64,
            refused_addresses: 4096,
        }
    }
}

/// The name counted in place of TLS versions and ciphers beyond [`Caps::usage`].
pub const OTHER: &str = "(other)";

/// Sessions of one (class, TLS version, cipher, source) for one client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub class: ConnClass,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_version: Option<Arc<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cipher: Option<Arc<str>>,
    pub source: Source,
    pub sessions: u64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// One session, as the drill-down lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentSession {
    pub at: DateTime<Utc>,
    pub class: ConnClass,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_version: Option<Arc<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cipher: Option<Arc<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Arc<str>>,
    pub source: Source,
}

/// What the ledger knows about one client.
///
/// `serve` keeps a ledger per target and each holds a record per client, so a record's few-entry maps and sets are
/// [`VecMap`] and [`VecSet`] (sorted vectors of exactly their length), and the names of TLS versions, ciphers and
/// addresses are shared with the ledger's other records (see `compact::Names`). Its JSON is that of `BTreeMap`s and
/// `BTreeSet`s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRecord {
    pub key: ClientKey,
    /// Sessions per transport class.
    pub classes: VecMap<ConnClass, u64>,
    /// Sessions per TLS version (TLS sessions only).
    pub tls_versions: VecMap<Arc<str>, u64>,
    pub ciphers: VecMap<Arc<str>, u64>,
    pub sessions: u64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Sessions connected at the latest poll.
    #[serde(default)]
    pub connected_now: u32,
    pub sources: Sources,
    /// Sessions per (class, TLS version, cipher, source), with first and last seen: what was used before and after
    /// a settings change.
    #[serde(default)]
    pub usage: Vec<Usage>,
    /// Client addresses seen (at most [`Caps::addresses`]), and how many sessions came from addresses not kept.
    #[serde(default)]
    pub addresses: VecSet<Arc<str>>,
    #[serde(default)]
    pub addresses_not_kept: u64,
    /// The latest sessions, oldest first (at most [`Caps::recent`]).
    #[serde(default)]
    pub recent: VecDeque<RecentSession>,
    /// Sessions that were walsenders (standbys, logical subscribers): raising the floor can break HA.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub replication: u64,
    /// pg_hba.conf lines that let this client in (14+ log, `connection authenticated`), at most [`MAX_HBA_LINES`].
    #[serde(default, skip_serializing_if = "VecSet::is_empty")]
    pub hba_lines: VecSet<u32>,
    /// Sessions by clock hour for the last week, oldest first (see [`Trend`]), packed a few bytes an hour (see
    /// [`Hours`]); absent from files written before.
    #[serde(default, skip_serializing_if = "Hours::is_empty")]
    pub hours: Hours,
}

/// pg_hba.conf line numbers kept per client: a client matches one or two lines; more is a forged log.
pub const MAX_HBA_LINES: usize = 8;

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl ClientRecord {
    fn new(key: ClientKey, at: DateTime<Utc>) -> ClientRecord {
        ClientRecord {
            key,
            classes: VecMap::new(),
            tls_versions: VecMap::new(),
            ciphers: VecMap::new(),
            sessions: 0,
            first_seen: at,
            last_seen: at,
            connected_now: 0,
            sources: Sources::new(),
            usage: Vec::new(),
            addresses: VecSet::new(),
            addresses_not_kept: 0,
            recent: VecDeque::new(),
            replication: 0,
            hba_lines: VecSet::new(),
            hours: Hours::new(),
        }
    }

    fn note_extras(&mut self, replication: bool, hba_line: Option<u32>) {
        self.replication += u64::from(replication);
        if let Some(line) = hba_line
            && (self.hba_lines.len() < MAX_HBA_LINES || self.hba_lines.contains(&line))
        {
            self.hba_lines.insert(line);
        }
    }

    /// Which sources saw this client, as the Holdouts screen and the CSV export write it: `poll`, `log`,
    /// `poll+log`.
    pub fn sources_label(&self) -> &'static str {
        match (
            self.sources.contains(&Source::Poll),
            self.sources.contains(&Source::Log),
        ) {
            (true, true) => "poll+log",
            (false, true) => "log",
            (true, false) => "poll",
            (false, false) => "",
        }
    }

    /// The weakest way this client was seen connecting.
    pub fn worst_class(&self) -> Option<ConnClass> {
        self.classes.keys().min_by_key(|c| c.exposure_rank()).copied()
    }

    pub fn count(&self, class: ConnClass) -> u64 {
        self.classes.get(&class).copied().unwrap_or(0)
    }

    /// Count one session. Names beyond the usage cap are counted as [`OTHER`], so a forged log cannot grow a record.
    /// `s` names what it names through `names`, which gives the name [`OTHER`] too.
    fn add_session(&mut self, s: RecentSession, caps: &Caps, names: &mut Names) {
        let row = self.usage.iter().position(|u| {
            u.class == s.class && u.tls_version == s.tls_version && u.cipher == s.cipher && u.source == s.source
        });
        let row = match row {
            Some(i) => i,
            None => {
                let full = self.usage.len() >= caps.usage;
                let mut capped = |name: &Option<Arc<str>>| {
                    name.as_ref()
                        .map(|n| if full { names.get(OTHER) } else { Arc::clone(n) })
                };
                let (tls_version, cipher) = (capped(&s.tls_version), capped(&s.cipher));
                let same = |u: &Usage| {
                    u.class == s.class && u.tls_version == tls_version && u.cipher == cipher && u.source == s.source
                };
                match self.usage.iter().position(same) {
                    Some(i) => i,
                    None => {
                        grow_by_one(&mut self.usage);
                        self.usage.push(Usage {
                            class: s.class,
                            tls_version,
                            cipher,
                            source: s.source,
                            sessions: 0,
                            first_seen: s.at,
                            last_seen: s.at,
                        });
                        self.usage.len() - 1
                    }
                }
            }
        };
        let u = &mut self.usage[row];
        u.sessions += 1;
        u.first_seen = u.first_seen.min(s.at);
        u.last_seen = u.last_seen.max(s.at);
        *self.classes.or_default(s.class) += 1;
        if let Some(v) = &u.tls_version {
            *self.tls_versions.or_default_with(&**v, || Arc::clone(v)) += 1;
        }
        if let Some(c) = &u.cipher {
            *self.ciphers.or_default_with(&**c, || Arc::clone(c)) += 1;
        }
        self.sessions += 1;
        self.count_hour(s.at, s.class, 1);
        self.first_seen = self.first_seen.min(s.at);
        self.last_seen = self.last_seen.max(s.at);
        self.sources.insert(s.source);
        if let Some(address) = &s.address {
            if self.addresses.len() < caps.addresses {
                self.addresses.insert(Arc::clone(address));
            } else if !self.addresses.contains(address) {
                self.addresses_not_kept += 1;
            }
        }
        let in_order = self.recent.back().is_none_or(|r| r.at <= s.at);
        // Make room before pushing, and only as much as is kept: a deque grows by doubling, to twice the cap.
        if in_order && !self.recent.is_empty() && self.recent.len() >= caps.recent {
            self.recent.pop_front();
        }
        if self.recent.len() == self.recent.capacity() {
            self.recent.reserve_exact(1);
        }
        self.recent.push_back(s);
        if !in_order {
            // Log lines read from a file's start arrive older than what polls saw.
            self.recent.make_contiguous().sort_by_key(|r| r.at);
        }
        while self.recent.len() > caps.recent {
            self.recent.pop_front();
        }
    }

    /// Fold a compacted record of the same client in (a file written by an older pgtls, or the others record).
    fn merge(&mut self, other: &ClientRecord, caps: &Caps) {
        for u in &other.usage {
            let same = self.usage.iter().position(|m| {
                m.class == u.class && m.tls_version == u.tls_version && m.cipher == u.cipher && m.source == u.source
            });
            match same {
                Some(i) => {
                    let m = &mut self.usage[i];
                    m.sessions += u.sessions;
                    m.first_seen = m.first_seen.min(u.first_seen);
                    m.last_seen = m.last_seen.max(u.last_seen);
                }
                // Room for the (other) rows per class and source beyond the cap; a file edited by hand to hold more
                // rows loses the excess rows' detail, never their counts in the totals below.
                None if self.usage.len() < caps.usage + 16 => {
                    grow_by_one(&mut self.usage);
                    self.usage.push(u.clone());
                }
                None => {}
            }
        }
        for (class, n) in &other.classes {
            *self.classes.or_default(*class) += n;
        }
        for (v, n) in &other.tls_versions {
            *self.tls_versions.or_default_with(&**v, || Arc::clone(v)) += n;
        }
        for (c, n) in &other.ciphers {
            *self.ciphers.or_default_with(&**c, || Arc::clone(c)) += n;
        }
        self.sessions += other.sessions;
        self.merge_hours(other);
        self.first_seen = self.first_seen.min(other.first_seen);
        self.last_seen = self.last_seen.max(other.last_seen);
        self.sources.extend(other.sources.iter());
        for a in &other.addresses {
            if self.addresses.len() < caps.addresses {
                self.addresses.insert(Arc::clone(a));
            } else if !self.addresses.contains(a) {
                self.addresses_not_kept += 1;
            }
        }
        self.addresses_not_kept += other.addresses_not_kept;
        self.replication += other.replication;
        for line in &other.hba_lines {
            self.note_extras(false, Some(*line));
        }
        self.recent.extend(other.recent.iter().cloned());
        self.recent.make_contiguous().sort_by_key(|r| r.at);
        while self.recent.len() > caps.recent {
            self.recent.pop_front();
        }
        self.recent.shrink_to(caps.recent);
    }

    /// Hold every name through `names`: a record read from a file has its own copy of each.
    fn share_names(&mut self, names: &mut Names) {
        let share = |names: &mut Names, name: &mut Option<Arc<str>>| {
            if let Some(n) = name {
                *n = names.get(n);
            }
        };
        for u in &mut self.usage {
            share(names, &mut u.tls_version);
            share(names, &mut u.cipher);
        }
        for s in &mut self.recent {
            share(names, &mut s.tls_version);
            share(names, &mut s.cipher);
            share(names, &mut s.address);
        }
        self.tls_versions = self.tls_versions.iter().map(|(v, n)| (names.get(v), *n)).collect();
        self.ciphers = self.ciphers.iter().map(|(c, n)| (names.get(c), *n)).collect();
        self.addresses = self.addresses.iter().map(|a| names.get(a)).collect();
    }
}

/// The server's TLS settings as a poll saw them, from `at` on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsSeen {
    pub at: DateTime<Utc>,
    pub settings: BTreeMap<String, Setting>,
}

/// One line of the ledger file. A file is a compacted state (`header`, `observed`, `settings`, `client`, `others`)
/// followed by the entries appended since (`session`, `watching`, `settings`); a version-1 file has only the latter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    /// First line of a compacted file.
    Header { format: u32 },
    Session {
        at: DateTime<Utc>,
        key: ClientKey,
        class: ConnClass,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tls_version: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cipher: Option<String>,
        source: Source,
        /// The client address even when the key leaves it out (pooled apps), for the record's address set.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address: Option<String>,
        /// A walsender.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        replication: bool,
        /// The pg_hba.conf line that let it in, when the log said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hba_line: Option<u32>,
        /// A session from the log near the latest poll: its pid, so that a poll after a restart knows it is counted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid: Option<i32>,
    },
    /// An attempt refused before authorization (failed TLS handshake, pg_hba.conf), from the log.
    Refused(crate::logsource::RefusedAttempt),
    /// Refused attempts from one address, compacted.
    RefusedAddress(RefusedRecord),
    /// A setting change the postmaster logged on reload.
    LogSetting(crate::logsource::SettingChange),
    /// pgtls was watching at `at` (written at most once a minute, and on each start).
    Watching { at: DateTime<Utc>, log_source: bool },
    /// The watched window, compacted.
    Observed {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        log_source: bool,
    },
    /// The server's TLS settings changed (or were first seen).
    Settings(SettingsSeen),
    /// One client, compacted.
    Client(ClientRecord),
    /// Sessions of clients beyond the identity cap, compacted.
    Others(ClientRecord),
    /// A session counted before was still connected in a later clock hour (once per client, class and hour): the
    /// trend's distinct clients (see [`Trend`]). Older pgtls versions skip the line.
    Present {
        at: DateTime<Utc>,
        key: ClientKey,
        class: ConnClass,
    },
    /// How far a log source has been applied (see [`LogPosition`]).
    LogPosition(LogPosition),
    /// A session a poll saw connected, by pid and start: after a restart it is the same session, not a new one.
    Live {
        pid: i32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start: Option<DateTime<Utc>>,
        key: ClientKey,
    },
    /// A session in [`Entry::Live`] that a later poll no longer saw.
    Ended {
        pid: i32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start: Option<DateTime<Utc>>,
    },
    /// A session counted from its log line that no poll has seen yet (compacted form of a `session` with a pid).
    LogPending { pid: i32, at: DateTime<Utc> },
    /// A pooler's client a poll saw connected (`SHOW CLIENTS`), by the pooler's address, its `ptr` and connect
    /// time: after a restart it is the same client, not a new one. Older pgtls versions skip the line.
    PooledLive {
        pooler: String,
        ptr: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start: Option<DateTime<Utc>>,
        key: ClientKey,
    },
    /// A client in [`Entry::PooledLive`] that a later answer of its pooler no longer listed.
    PooledEnded {
        pooler: String,
        ptr: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start: Option<DateTime<Utc>>,
    },
    /// A session counted by one source was seen by the other too: the client's record names both, after a
    /// restart as well.
    SeenBy { key: ClientKey, source: Source },
}

/// A session connected at the latest poll, by pid. Pids are reused, so the start time tells sessions apart.
#[derive(Debug, Clone)]
struct Live {
    start: Option<DateTime<Utc>>,
    client: Client,
}

/// Whose a live session is. Most point at their client's record and hold no key of their own: `serve` keeps a
/// ledger per target, and a copy of every connected session's key (four strings) was a quarter of a ledger.
#[derive(Debug, Clone)]
enum Client {
    /// The record at this position in `Ledger::records`; the session's key is the record's.
    Record(usize),
    /// No record has this key (yet).
    Key(Box<ClientKey>),
    /// The record at this position was given to a newer client while the session pointed at it (at the identity
    /// cap, before the first poll after a restart): the session keeps its key, and the position as it did.
    Given(usize, Box<ClientKey>),
}

impl Client {
    /// Where its client's record is in `Ledger::records`, once there is one.
    fn record(&self) -> Option<usize> {
        match self {
            Client::Record(i) | Client::Given(i, _) => Some(*i),
            Client::Key(_) => None,
        }
    }

    fn key<'a>(&'a self, records: &'a [ClientRecord]) -> &'a ClientKey {
        match self {
            Client::Record(i) => &records[*i].key,
            Client::Key(key) | Client::Given(_, key) => key,
        }
    }
}

/// Log lines and polls see the same session at slightly different times.
const SAME_SESSION_WITHIN: Duration = Duration::seconds(10);
const HEARTBEAT_EVERY: Duration = Duration::seconds(60);

#[derive(Debug, Clone, Default)]
pub struct Ledger {
    pub fields: KeyFields,
    pub caps: Caps,
    /// Every client seen (up to the cap). A record's position changes owner only when the cap is reached and it
    /// is given to a newer client (see [`Ledger::evict_for_newcomer`]); never while a live session points at it.
    records: Vec<ClientRecord>,
    /// Positions in `records`, in key order.
    index: Index,
    /// Sessions of identities beyond [`Caps::identities`], as one record.
    others: Option<ClientRecord>,
    /// The server's TLS settings as polled: the latest first seen and every change after it (capped).
    settings: VecDeque<SettingsSeen>,
    /// Sessions connected at the latest poll, by pid.
    live: HashMap<i32, Live>,
    /// Clients of poolers connected at the latest poll, by (pooler address, the pooler's `ptr`); the connect time
    /// tells a reused `ptr` apart.
    live_pooled: HashMap<(String, String), Live>,
    /// Each pooler's settings as last read (`client_tls_sslmode`, ...), by address: what would refuse its clients.
    pub pooler_settings: BTreeMap<String, BTreeMap<String, String>>,
    /// Refused attempts by address (capped), and those from addresses beyond the cap.
    refused: BTreeMap<String, RefusedRecord>,
    refused_others: Option<RefusedRecord>,
    /// Setting changes read in the log, oldest first (capped like `settings`).
    logged_settings: VecDeque<crate::logsource::SettingChange>,
    /// Sessions learned from the log, by pid, not yet seen in a poll: (authorized at, key).
    from_log: HashMap<i32, DateTime<Utc>>,
    /// When the latest poll ran: log lines much older than it are never matched by a poll, so not remembered.
    last_poll: Option<DateTime<Utc>>,
    /// First and last moment pgtls was watching, and whether a log source was on.
    pub observed_from: Option<DateTime<Utc>>,
    pub observed_to: Option<DateTime<Utc>>,
    pub log_source_seen: bool,
    last_heartbeat: Option<DateTime<Utc>>,
    pub polls: u64,
    /// pgtls's own backends as the latest poll marked them ([`Session::monitor`]): not clients, in polls or in the log.
    own_pids: Vec<i32>,
    /// Records last seen at or after this moment may be pointed at by a live session (the poll before the
    /// latest, or the latest if it is the first), so they are never given to a newcomer.
    pinned_since: Option<DateTime<Utc>>,
    /// Positions found evictable by the last scan, least recently seen last.
    spare: Vec<usize>,
    /// How far each log source has been applied, by [`LogPosition::source`].
    log_positions: BTreeMap<String, LogPosition>,
    /// New identities still to send to the others record before scanning again, after a scan found none.
    skip_scans: usize,
    /// The TLS versions, ciphers and addresses the records name, each held once.
    names: Names,
}

/// The label of the record that counts clients beyond the identity cap.
pub const OTHERS_LABEL: &str = "(other clients, beyond the ledger's identity cap)";

impl Ledger {
    pub fn new(fields: KeyFields) -> Ledger {
        Ledger {
            fields,
            ..Ledger::default()
        }
    }

    /// Every client, in key order, then the others record if the identity cap was reached.
    pub fn records(&self) -> impl Iterator<Item = &ClientRecord> {
        self.index
            .positions()
            .map(|i| &self.records[i])
            .chain(self.others.as_ref())
    }

    /// The record of sessions beyond the identity cap, if any.
    pub fn others(&self) -> Option<&ClientRecord> {
        self.others.as_ref()
    }

    /// The server's TLS settings as polled: when each state began, oldest first.
    pub fn settings_history(&self) -> impl Iterator<Item = &SettingsSeen> {
        self.settings.iter()
    }

    /// Identities with a record of their own.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn total_sessions(&self) -> u64 {
        self.records().map(|r| r.sessions).sum()
    }

    pub fn observed(&self) -> Duration {
        match (self.observed_from, self.observed_to) {
            (Some(from), Some(to)) => to - from,
            _ => Duration::zero(),
        }
    }

    /// A session a pooler serves is the pooler's (its application_name is its current client's, its TLS the
    /// pooler's own): it enters as the pooler's server side, and the pooler's clients enter on their own.
    fn key_of(&self, s: &Session) -> ClientKey {
        let mut key = ClientKey::new(
            self.fields,
            s.user.as_deref(),
            s.database.as_deref(),
            if s.pooler.is_some() {
                None
            } else {
                s.application_name.as_deref()
            },
            s.client_addr.as_deref(),
        );
        key.pooler = s.pooler.as_ref().map(|p| PoolerSide {
            address: p.address.clone(),
            side: Side::Server,
        });
        key
    }

    /// Count sessions that are new since the last poll; returns journal entries to append.
    ///
    /// Runs after every poll, so a session that was connected at the previous poll and still has the same identity
    /// reuses its key instead of building a new one: in the steady state nothing is allocated per session.
    pub fn observe_snapshot(&mut self, snap: &Snapshot, log_source: bool) -> Vec<Entry> {
        let mut entries = Vec::new();
        let at = snap.taken_at;
        self.polls += 1;
        self.pinned_since = Some(self.last_poll.unwrap_or(at).min(at));
        self.last_poll = Some(at);
        self.own_pids.clear();
        self.own_pids.push(snap.monitor.pid);
        self.own_pids.extend_from_slice(&snap.monitor.others);
        entries.extend(self.watching(at, log_source));
        if self.settings.back().is_none_or(|seen| seen.settings != snap.settings) {
            let entry = Entry::Settings(SettingsSeen {
                at,
                settings: snap.settings.clone(),
            });
            self.apply(&entry);
            entries.push(entry);
        }
        if let Some(others) = &mut self.others {
            others.connected_now = 0;
        }
        for r in &mut self.records {
            r.connected_now = 0;
        }
        let mut previous = std::mem::take(&mut self.live);
        let mut live = HashMap::with_capacity(snap.sessions.len());
        // Live sessions whose client has no record yet (their identity changed): counted once the loop is done,
        // in case a later session of the same client creates the record.
        let mut unrecorded: Vec<i32> = Vec::new();
        for s in &snap.sessions {
            if s.monitor {
                self.own_pids.push(s.pid);
                continue;
            }
            let before = previous.remove(&s.pid).filter(|l| l.start == s.backend_start);
            let was_live = before.is_some();
            let mut client = match before {
                Some(l) if self.same_client(l.client.key(&self.records), s) => l.client,
                _ => Client::Key(Box::new(self.key_of(s))),
            };
            if !was_live {
                let key = client.key(&self.records).clone();
                let logged = self
                    .from_log
                    .get(&s.pid)
                    .is_some_and(|t| s.backend_start.is_none_or(|b| (*t - b).abs() <= SAME_SESSION_WITHIN));
                if logged {
                    // Counted already from its log line: only note that polls see it too.
                    self.from_log.remove(&s.pid);
                    entries.extend(self.seen_by(&key, Source::Poll));
                } else {
                    let entry = Entry::Session {
                        at,
                        key: key.clone(),
                        class: s.class,
                        tls_version: s.tls.as_ref().map(|t| t.version.clone()),
                        cipher: s.tls.as_ref().map(|t| t.cipher.clone()),
                        source: Source::Poll,
                        address: s.client_addr.clone(),
                        replication: s.backend_type.as_deref() == Some("walsender"),
                        hba_line: None,
                        pid: None,
                    };
                    self.apply(&entry);
                    entries.push(entry);
                }
            }
            if let Client::Key(key) = &client
                && let Some(i) = self.index.get(&self.records, key)
            {
                client = Client::Record(i);
            }
            match client.record() {
                Some(i) => {
                    let r = &mut self.records[i];
                    r.last_seen = at;
                    r.connected_now += 1;
                    if was_live && r.mark_present(at, s.class) {
                        entries.push(Entry::Present {
                            at,
                            key: client.key(&self.records).clone(),
                            class: s.class,
                        });
                    }
                }
                None => unrecorded.push(s.pid),
            }
            if !was_live {
                entries.push(Entry::Live {
                    pid: s.pid,
                    start: s.backend_start,
                    key: client.key(&self.records).clone(),
                });
            }
            live.insert(
                s.pid,
                Live {
                    start: s.backend_start,
                    client,
                },
            );
        }
        // Journalled so that a restart knows which sessions it already counted; a pid reused by a new backend is
        // replaced by that backend's own `live` line instead.
        let mut ended: Vec<_> = previous
            .into_iter()
            .filter(|(pid, _)| !live.contains_key(pid))
            .map(|(pid, l)| Entry::Ended { pid, start: l.start })
            .collect();
        ended.sort_by_key(|e| match e {
            Entry::Ended { pid, .. } => *pid,
            _ => 0,
        });
        entries.extend(ended);
        for pid in &unrecorded {
            if let Some(l) = live.get_mut(pid)
                && let Client::Key(key) = &l.client
                && let Some(i) = self.index.get(&self.records, key)
            {
                l.client = Client::Record(i);
                self.records[i].connected_now += 1;
            }
        }
        self.live = live;
        entries.extend(self.observe_pooler_clients(snap));
        // Forget log sessions that no poll will ever match.
        self.from_log.retain(|_, t| at - *t <= SAME_SESSION_WITHIN * 6);
        entries
    }

    /// The clients of each pooler that answered, on their own leg; a pooler that did not answer keeps its clients
    /// as they were, so they are not counted again when it answers.
    fn observe_pooler_clients(&mut self, snap: &Snapshot) -> Vec<Entry> {
        let mut entries = Vec::new();
        let at = snap.taken_at;
        let mut previous = std::mem::take(&mut self.live_pooled);
        let mut live = HashMap::new();
        for pooler in &snap.poolers {
            if pooler.error.is_some() {
                let kept: Vec<(String, String)> = previous
                    .keys()
                    .filter(|(address, _)| *address == pooler.address)
                    .cloned()
                    .collect();
                for id in kept {
                    if let Some(l) = previous.remove(&id) {
                        live.insert(id, l);
                    }
                }
                continue;
            }
            self.pooler_settings
                .insert(pooler.address.clone(), pooler.settings.clone());
            for c in pooler.client_list() {
                let id = (pooler.address.clone(), c.ptr.clone());
                let mut key = ClientKey::new(
                    self.fields,
                    c.user.as_deref(),
                    c.database.as_deref(),
                    c.application_name.as_deref(),
                    c.address.as_deref(),
                );
                key.pooler = Some(PoolerSide {
                    address: pooler.address.clone(),
                    side: Side::Client,
                });
                let before = previous
                    .remove(&id)
                    .filter(|l| l.start == c.connect_time && *l.client.key(&self.records) == key);
                let was_live = before.is_some();
                if !was_live {
                    let entry = Entry::Session {
                        at,
                        key: key.clone(),
                        class: c.class,
                        tls_version: c.tls.as_ref().map(|t| t.version.clone()),
                        cipher: c.tls.as_ref().map(|t| t.cipher.clone()),
                        source: Source::Poll,
                        address: c.address.clone(),
                        replication: false,
                        hba_line: None,
                        pid: None,
                    };
                    self.apply(&entry);
                    entries.push(entry);
                }
                if !was_live {
                    entries.push(Entry::PooledLive {
                        pooler: pooler.address.clone(),
                        ptr: c.ptr.clone(),
                        start: c.connect_time,
                        key: key.clone(),
                    });
                }
                let client = match self.index.get(&self.records, &key) {
                    Some(i) => {
                        let r = &mut self.records[i];
                        r.last_seen = at;
                        r.connected_now += 1;
                        Client::Record(i)
                    }
                    None => Client::Key(Box::new(key)),
                };
                live.insert(
                    id,
                    Live {
                        start: c.connect_time,
                        client,
                    },
                );
            }
        }
        // Journalled so that a restart knows which clients it already counted; a `ptr` reused by a new client is
        // replaced by that client's own `pooled_live` line instead.
        entries.extend(pooled_ended(previous));
        self.live_pooled = live;
        entries
    }

    /// Whether `key` is still the identity of `s` (an application may change its name mid-session).
    fn same_client(&self, key: &ClientKey, s: &Session) -> bool {
        let f = self.fields;
        let same = |on: bool, have: &str, now: Option<&str>| have == if on { now.unwrap_or("") } else { "" };
        let application = if s.pooler.is_some() {
            None
        } else {
            s.application_name.as_deref()
        };
        same(f.user, &key.user, s.user.as_deref())
            && same(f.database, &key.database, s.database.as_deref())
            && same(f.application, &key.application, application)
            && same(f.address, &key.address, s.client_addr.as_deref())
            && key.pooler.as_ref().map(|p| p.address.as_str()) == s.pooler.as_ref().map(|p| p.address.as_str())
    }

    /// A connection from the log source; `None` when a poll already counted it.
    pub fn observe_log(&mut self, ev: &crate::logsource::ConnectionEvent) -> Option<Entry> {
        self.log_source_seen = true;
        if self.own_pids.contains(&ev.pid) {
            return None;
        }
        let polled = self
            .live
            .get(&ev.pid)
            .filter(|l| l.start.is_none_or(|s| (s - ev.at).abs() <= SAME_SESSION_WITHIN));
        if let Some(live) = polled {
            // Counted already by a poll: only note that the log sees it too, as a poll after a log line does.
            let key = match live.client.record() {
                Some(i) => self.records[i].key.clone(),
                None => live.client.key(&self.records).clone(),
            };
            return self.seen_by(&key, Source::Log);
        }
        let class = match (&ev.tls, ev.local_socket, ev.gss_encrypted) {
            (Some(t), _, _) => ConnClass::from_tls_version(&t.version),
            (None, true, _) => ConnClass::Local,
            (None, false, true) => ConnClass::Gss,
            (None, false, false) => ConnClass::PlainTcp,
        };
        // Only a line near the latest poll can be matched by the next one; remembering every pid of a long log
        // read from its start would grow with the log.
        let pending = self
            .last_poll
            .is_none_or(|t| (ev.at - t).abs() <= SAME_SESSION_WITHIN * 6);
        let entry = Entry::Session {
            at: ev.at,
            key: ClientKey::new(
                self.fields,
                Some(&ev.user),
                Some(&ev.database),
                ev.application_name.as_deref(),
                ev.client_addr.as_deref(),
            ),
            class,
            tls_version: ev.tls.as_ref().map(|t| t.version.clone()),
            cipher: ev.tls.as_ref().map(|t| t.cipher.clone()),
            source: Source::Log,
            address: ev.client_addr.clone(),
            replication: ev.replication,
            hba_line: ev.hba_line,
            pid: pending.then_some(ev.pid),
        };
        self.apply(&entry);
        Some(entry)
    }

    /// Note that `source` saw a session of `key` counted by the other source; the entry when that is news.
    fn seen_by(&mut self, key: &ClientKey, source: Source) -> Option<Entry> {
        let i = self.index.get(&self.records, key)?;
        if self.records[i].sources.contains(&source) {
            return None;
        }
        let entry = Entry::SeenBy {
            key: key.clone(),
            source,
        };
        self.apply(&entry);
        Some(entry)
    }

    fn watching(&mut self, at: DateTime<Utc>, log_source: bool) -> Option<Entry> {
        let due = self.last_heartbeat.is_none_or(|last| at - last >= HEARTBEAT_EVERY);
        let entry = Entry::Watching { at, log_source };
        self.apply(&entry);
        due.then(|| {
            self.last_heartbeat = Some(at);
            entry
        })
    }

    /// Fold one journal entry into the records (also used when replaying the journal).
    pub fn apply(&mut self, entry: &Entry) {
        match entry {
            Entry::Header { .. } => {}
            Entry::Watching { at, log_source } => {
                self.observe_window(*at, *at);
                self.log_source_seen |= *log_source;
            }
            Entry::Observed { from, to, log_source } => {
                self.observe_window(*from, *to);
                self.log_source_seen |= *log_source;
            }
            Entry::Settings(seen) => {
                self.settings.push_back(seen.clone());
                while self.settings.len() > self.caps.settings_changes.max(1) {
                    self.settings.pop_front();
                }
            }
            Entry::Session {
                at,
                key,
                class,
                tls_version,
                cipher,
                source,
                address,
                replication,
                hba_line,
                pid,
            } => {
                if let (Source::Log, Some(pid)) = (source, pid) {
                    self.from_log.insert(*pid, *at);
                }
                let mut names = std::mem::take(&mut self.names);
                let session = RecentSession {
                    at: *at,
                    class: *class,
                    tls_version: tls_version.as_deref().map(|v| names.get(v)),
                    cipher: cipher.as_deref().map(|c| names.get(c)),
                    address: address.as_deref().map(|a| names.get(a)),
                    source: *source,
                };
                let caps = self.caps;
                let record = self.record_for(key, *at);
                record.add_session(session, &caps, &mut names);
                record.note_extras(*replication, *hba_line);
                self.names = names;
                // A session seen in the log widens the evidence window too.
                self.observe_window(*at, *at);
            }
            Entry::Client(record) => {
                let caps = self.caps;
                let mut loaded = record.clone();
                loaded.connected_now = 0;
                loaded.share_names(&mut self.names);
                match self.index.get(&self.records, &record.key) {
                    Some(i) => self.records[i].merge(&loaded, &caps),
                    None if self.records.len() < caps.identities => {
                        self.push_record(loaded);
                        self.index.insert(&self.records, self.records.len() - 1);
                    }
                    None => self.others_record(record.first_seen).merge(&loaded, &caps),
                }
            }
            Entry::Others(record) => {
                let caps = self.caps;
                let mut loaded = record.clone();
                loaded.share_names(&mut self.names);
                self.others_record(record.first_seen).merge(&loaded, &caps);
            }
            Entry::Present { at, key, class } => {
                if let Some(i) = self.index.get(&self.records, key) {
                    self.records[i].mark_present(*at, *class);
                }
            }
            Entry::Refused(attempt) => self.apply_refused(attempt),
            Entry::RefusedAddress(record) => self.apply_refused_record(record),
            Entry::LogPosition(position) => {
                self.log_positions.insert(position.source.clone(), position.clone());
            }
            Entry::Live { pid, start, key } => self.apply_live(*pid, *start, key),
            Entry::Ended { pid, start } => self.apply_ended(*pid, *start),
            Entry::PooledLive {
                pooler,
                ptr,
                start,
                key,
            } => self.apply_pooled_live(pooler, ptr, *start, key),
            Entry::PooledEnded { pooler, ptr, start } => self.apply_pooled_ended(pooler, ptr, *start),
            Entry::LogPending { pid, at } => {
                self.from_log.insert(*pid, *at);
            }
            Entry::SeenBy { key, source } => {
                if let Some(i) = self.index.get(&self.records, key) {
                    self.records[i].sources.insert(*source);
                }
            }
            Entry::LogSetting(change) => {
                self.logged_settings.push_back(change.clone());
                while self.logged_settings.len() > self.caps.settings_changes.max(1) {
                    self.logged_settings.pop_front();
                }
            }
        }
    }

    fn observe_window(&mut self, from: DateTime<Utc>, to: DateTime<Utc>) {
        self.observed_from = Some(self.observed_from.map_or(from, |f| f.min(from)));
        self.observed_to = Some(self.observed_to.map_or(to, |t| t.max(to)));
    }

    /// Add a record (the index is the caller's). The records grow by an eighth, not by doubling: a record is a few
    /// hundred bytes, and a ledger per target of a fleet would hold up to as many unused ones as used.
    fn push_record(&mut self, record: ClientRecord) {
        if self.records.len() == self.records.capacity() {
            self.records.reserve_exact((self.records.len() / 8).max(1));
        }
        self.records.push(record);
    }

    /// The record that counts `key`: its own, a new one while under the identity cap, else the others record.
    fn record_for(&mut self, key: &ClientKey, at: DateTime<Utc>) -> &mut ClientRecord {
        if let Some(i) = self.index.get(&self.records, key) {
            return &mut self.records[i];
        }
        if self.records.len() < self.caps.identities {
            self.push_record(ClientRecord::new(key.clone(), at));
            let last = self.records.len() - 1;
            self.index.insert(&self.records, last);
            return &mut self.records[last];
        }
        match self.evict_for_newcomer() {
            Some(i) => {
                self.records[i] = ClientRecord::new(key.clone(), at);
                self.index.insert(&self.records, i);
                &mut self.records[i]
            }
            None => self.others_record(at),
        }
    }

    /// Whether a record may give its place to a newer client at the identity cap: it only ever used TLS 1.3 (nothing
    /// a stricter floor would break, so its detail matters least), and no live session points at it. Holdouts and
    /// plain-text clients keep their records: a flood of new identities must not push out the evidence the What-if
    /// and Holdouts screens exist for.
    fn evictable(&self, r: &ClientRecord) -> bool {
        r.connected_now == 0
            && r.classes.keys().all(|c| *c == ConnClass::Tls13)
            && self.pinned_since.is_none_or(|p| r.last_seen < p)
            && r.key.application != OTHERS_LABEL
    }

    /// A position for a new client at the identity cap: the least recently seen evictable record, folded into the
    /// others record first so its sessions stay counted. Scans in batches, and after a fruitless scan waits for a
    /// tenth of the cap of new identities before scanning again, so a flood costs little.
    fn evict_for_newcomer(&mut self) -> Option<usize> {
        if self.skip_scans > 0 {
            self.skip_scans -= 1;
            return None;
        }
        let found = loop {
            match self.spare.pop() {
                Some(i) if self.evictable(&self.records[i]) => break Some(i),
                Some(_) => continue,
                None => break None,
            }
        };
        let i = match found {
            Some(i) => i,
            None => {
                let mut spare: Vec<usize> = (0..self.records.len())
                    .filter(|i| self.evictable(&self.records[*i]))
                    .collect();
                let batch = (self.caps.identities / 100).max(1);
                if spare.len() > batch {
                    spare.select_nth_unstable_by_key(batch, |i| self.records[*i].last_seen);
                    spare.truncate(batch);
                }
                spare.sort_by_key(|i| std::cmp::Reverse(self.records[*i].last_seen));
                self.spare = spare;
                match self.spare.pop() {
                    Some(i) => i,
                    None => {
                        self.skip_scans = self.caps.identities / 10;
                        return None;
                    }
                }
            }
        };
        let evicted = self.records[i].clone();
        self.index.remove(&self.records, &evicted.key);
        for l in self.live.values_mut().chain(self.live_pooled.values_mut()) {
            if matches!(l.client, Client::Record(j) if j == i) {
                l.client = Client::Given(i, Box::new(evicted.key.clone()));
            }
        }
        let caps = self.caps;
        self.others_record(evicted.first_seen).merge(&evicted, &caps);
        Some(i)
    }

    fn others_record(&mut self, at: DateTime<Utc>) -> &mut ClientRecord {
        self.others.get_or_insert_with(|| {
            let key = ClientKey {
                user: String::new(),
                database: String::new(),
                application: OTHERS_LABEL.to_string(),
                address: String::new(),
                pooler: None,
            };
            ClientRecord::new(key, at)
        })
    }

    /// The compacted state, as the lines of a version-2 file (without its header).
    pub fn compacted(&self) -> impl Iterator<Item = Entry> + '_ {
        let observed = match (self.observed_from, self.observed_to) {
            (Some(from), Some(to)) => Some(Entry::Observed {
                from,
                to,
                log_source: self.log_source_seen,
            }),
            _ => None,
        };
        observed
            .into_iter()
            .chain(self.settings.iter().cloned().map(Entry::Settings))
            .chain(self.logged_settings.iter().cloned().map(Entry::LogSetting))
            .chain(self.records.iter().cloned().map(Entry::Client))
            .chain(self.others.iter().cloned().map(Entry::Others))
            .chain(self.refused.values().cloned().map(Entry::RefusedAddress))
            .chain(self.refused_others.iter().cloned().map(Entry::RefusedAddress))
            // After the clients: a live session's line finds its record.
            .chain(self.compacted_resume())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn sessions_are_counted_once_across_polls_and_connected_now_follows() {
        let mut ledger = Ledger::new(KeyFields::default());
        let snap = fixtures::snapshot();
        let first = ledger.observe_snapshot(&snap, false);
        // 11 sessions besides the monitor, plus one heartbeat and the server's settings as first seen; and each
        // session as live, for a restart.
        let live = first.iter().filter(|e| matches!(e, Entry::Live { .. })).count();
        assert_eq!((first.len() - live, live), (13, 11));
        let mut later = snap.clone();
        later.taken_at += Duration::seconds(2);
        assert!(
            ledger.observe_snapshot(&later, false).is_empty(),
            "no new sessions, no heartbeat yet"
        );
        let billing: Vec<&ClientRecord> = ledger
            .records()
            .filter(|r| r.key.application == "billing-batch")
            .collect();
        // Two billing sessions come from different addresses in the fixture: two identities.
        assert_eq!(billing.iter().map(|r| r.sessions).sum::<u64>(), 2);
        assert!(
            billing
                .iter()
                .all(|r| r.count(ConnClass::Tls12) == 1 && r.connected_now == 1)
        );
        later
            .sessions
            .retain(|s| s.application_name.as_deref() != Some("billing-batch"));
        ledger.observe_snapshot(&later, false);
        assert!(
            ledger
                .records()
                .filter(|r| r.key.application == "billing-batch")
                .all(|r| r.connected_now == 0)
        );
        assert_eq!(ledger.total_sessions(), 11);
    }

    #[test]
    fn a_session_that_changes_its_application_name_is_not_counted_again() {
        let mut ledger = Ledger::new(KeyFields::default());
        let snap = fixtures::snapshot();
        ledger.observe_snapshot(&snap, false);
        let sessions = ledger.total_sessions();
        let i = snap
            .sessions
            .iter()
            .position(|s| s.pid != snap.monitor.pid && s.application_name.is_some())
            .unwrap();
        let key = ledger.key_of(&snap.sessions[i]);
        let connected = |ledger: &Ledger| ledger.records().find(|r| r.key == key).unwrap().connected_now;
        let before = connected(&ledger);
        assert!(before >= 1);

        let mut renamed = snap.clone();
        renamed.taken_at += Duration::seconds(2);
        renamed.sessions[i].application_name = Some("renamed-app".into());
        assert!(ledger.observe_snapshot(&renamed, false).is_empty());
        assert_eq!(ledger.total_sessions(), sessions, "same session, not a new one");
        assert!(ledger.records().all(|r| r.key.application != "renamed-app"));
        assert_eq!(connected(&ledger), before - 1, "the old identity lost the session");

        let mut back = snap.clone();
        back.taken_at += Duration::seconds(4);
        assert!(ledger.observe_snapshot(&back, false).is_empty());
        assert_eq!(ledger.total_sessions(), sessions);
        assert_eq!(connected(&ledger), before, "back under its first name");
    }

    #[test]
    fn dropping_the_address_merges_pooled_connections() {
        let mut ledger = Ledger::new(KeyFields::from_names(&["user".into(), "application".into()]).unwrap());
        ledger.observe_snapshot(&fixtures::snapshot(), false);
        let billing = ledger.records().find(|r| r.key.application == "billing-batch").unwrap();
        assert_eq!((billing.sessions, billing.key.address.as_str()), (2, ""));
        let e = KeyFields::from_names(&[]).unwrap_err();
        assert_eq!(e, KeyError::Empty);
        assert!(e.to_string().contains("empty key"), "{e}");
        let e = KeyFields::from_names(&["host".into()]).unwrap_err();
        assert_eq!(e, KeyError::UnknownField("host".into()));
        assert!(e.to_string().contains("unknown ledger key field"), "{e}");
    }

    fn session(at: DateTime<Utc>, app: &str, address: &str, version: &str) -> Entry {
        crate::fixtures::log_session(at, app, address, version)
    }

    /// At the identity cap a holdout that shows up late still gets a record of its own: the least recently seen
    /// TLS 1.3-only client gives up its place (its sessions move to the others record, still counted), while
    /// holdouts never do.
    #[test]
    fn a_late_holdout_takes_the_place_of_an_old_tls13_client() {
        let mut ledger = Ledger::new(KeyFields::default());
        ledger.caps.identities = 100;
        let at = fixtures::now();
        for i in 0..50u32 {
            ledger.apply(&session(at, &format!("old-tls13-{i}"), "10.0.0.1", "TLSv1.3"));
        }
        for i in 0..50u32 {
            ledger.apply(&session(
                at + Duration::seconds(10),
                &format!("tls12-{i}"),
                "10.0.0.2",
                "TLSv1.2",
            ));
        }
        assert_eq!(ledger.len(), 100);
        let later = at + Duration::hours(1);
        ledger.apply(&session(later, "late-holdout", "10.0.0.3", "TLSv1.2"));
        assert_eq!(ledger.len(), 100);
        assert!(ledger.records().any(|r| r.key.application == "late-holdout"));
        assert_eq!(
            ledger
                .records()
                .filter(|r| r.key.application.starts_with("tls12-"))
                .count(),
            50
        );
        assert_eq!(
            ledger
                .records()
                .filter(|r| r.key.application.starts_with("old-tls13-"))
                .count(),
            49
        );
        assert_eq!(ledger.others().unwrap().count(ConnClass::Tls13), 1);
        assert_eq!(ledger.total_sessions(), 101);

        // Once only holdouts are left, newcomers are counted in the others record.
        for i in 0..200u32 {
            ledger.apply(&session(later, &format!("new-{i}"), "10.0.0.4", "TLSv1.2"));
        }
        assert_eq!(ledger.len(), 100);
        assert_eq!(
            ledger
                .records()
                .filter(|r| r.key.application.starts_with("tls12-"))
                .count(),
            50
        );
        assert_eq!(ledger.total_sessions(), 301);
        let compacted: Vec<Entry> = ledger.compacted().collect();
        let mut reread = Ledger::new(KeyFields::default());
        reread.caps.identities = 100;
        for e in &compacted {
            reread.apply(e);
        }
        assert_eq!(reread.total_sessions(), 301);
    }

    /// A scanner (many addresses, many identities, made-up cipher names) cannot grow the ledger past its caps, and
    /// what goes past them is still counted, so a what-if still sees it.
    #[test]
    fn caps_hold_against_a_scanner() {
        let mut ledger = Ledger::new(KeyFields::default());
        ledger.caps.identities = 100;
        let at = fixtures::now();
        for i in 0..50_000u32 {
            let address = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
            ledger.apply(&session(at, "scan", &address, "TLSv1.2"));
        }
        assert_eq!(ledger.len(), 100);
        let others = ledger.others().unwrap();
        assert_eq!(others.sessions, 49_900);
        assert_eq!(others.count(ConnClass::Tls12), 49_900);
        assert_eq!(others.addresses.len(), ledger.caps.addresses);
        assert_eq!(others.addresses_not_kept, 49_900 - ledger.caps.addresses as u64);
        assert_eq!(others.recent.len(), ledger.caps.recent);
        assert_eq!(ledger.total_sessions(), 50_000);
        assert!(ledger.records().any(|r| r.key.application == OTHERS_LABEL));

        // One identity without the address in its key, many addresses and invented cipher names.
        let mut pooled = Ledger::new(KeyFields::from_names(&["user".into(), "application".into()]).unwrap());
        for i in 0..5_000u32 {
            let mut entry = session(
                at + Duration::seconds(i.into()),
                "pool",
                &format!("10.1.{}.{}", i >> 8, i & 255),
                "TLSv1.2",
            );
            if let Entry::Session { key, cipher, .. } = &mut entry {
                key.address.clear();
                *cipher = Some(format!("FORGED-{i}"));
            }
            pooled.apply(&entry);
        }
        let r = pooled.records().next().unwrap();
        assert_eq!(r.sessions, 5_000);
        assert_eq!(r.addresses.len(), pooled.caps.addresses);
        assert!(r.usage.len() <= pooled.caps.usage + 1, "{} usage rows", r.usage.len());
        assert!(r.ciphers.len() <= pooled.caps.usage + 1, "{} ciphers", r.ciphers.len());
        assert_eq!(r.ciphers.get(OTHER).copied(), Some(5_000 - pooled.caps.usage as u64));
        let times: Vec<_> = r.recent.iter().map(|s| s.at).collect();
        assert_eq!(times.len(), pooled.caps.recent);
        assert!(times.windows(2).all(|w| w[0] <= w[1]) && times.last() == Some(&(at + Duration::seconds(4_999))));
    }

    /// Own connections are known by pid: a client that calls itself "pgtls" is a client, the monitor's backend and
    /// the demo's helpers are not, in polls and in the log alike.
    #[test]
    fn own_connections_are_not_clients_in_polls_or_the_log() {
        let mut ledger = Ledger::new(KeyFields::default());
        let mut snap = fixtures::snapshot();
        let mut impostor = fixtures::session(4300, ConnClass::Tls12);
        impostor.user = Some("pgtls".into());
        impostor.database = Some("postgres".into());
        impostor.application_name = Some("pgtls".into());
        let mut helper = fixtures::session(4301, ConnClass::Local);
        helper.application_name = Some("pgtls-lab-admin".into());
        snap.sessions.extend([impostor, helper]);
        snap.mark_own(&[4301]);
        ledger.observe_snapshot(&snap, true);
        let counted = |ledger: &Ledger, app: &str| {
            ledger
                .records()
                .filter(|r| r.key.application == app)
                .map(|r| r.sessions)
                .sum::<u64>()
        };
        assert_eq!(counted(&ledger, "pgtls"), 1, "the impostor only");
        assert_eq!(counted(&ledger, "pgtls-lab-admin"), 0);
        assert_eq!(ledger.total_sessions(), snap.class_counts().total() as u64);
        let line = |pid: i32| crate::logsource::ConnectionEvent {
            client_port: None,
            at: snap.taken_at,
            pid,
            user: "postgres".into(),
            database: "postgres".into(),
            application_name: Some("pgtls".into()),
            client_addr: None,
            local_socket: true,
            tls: None,
            gss_encrypted: false,
            replication: false,
            hba_line: None,
        };
        assert!(ledger.observe_log(&line(snap.monitor.pid)).is_none());
        assert!(ledger.observe_log(&line(4301)).is_none());
        assert!(ledger.observe_log(&line(4302)).is_some(), "another pgtls-named client");
    }

    /// Log lines far from the latest poll can never be matched by a poll, so a log read from its start leaves
    /// nothing behind per connection; lines near it are remembered so the next poll does not count them twice.
    #[test]
    fn old_log_lines_leave_no_per_pid_memory() {
        let mut ledger = Ledger::new(KeyFields::default());
        let snap = fixtures::snapshot();
        ledger.observe_snapshot(&snap, true);
        let event = |pid: i32, at: DateTime<Utc>| crate::logsource::ConnectionEvent {
            client_port: None,
            at,
            pid,
            user: "u".into(),
            database: "d".into(),
            application_name: None,
            client_addr: Some("10.0.0.1".into()),
            local_socket: false,
            tls: None,
            gss_encrypted: false,
            replication: false,
            hba_line: None,
        };
        for pid in 100_000..150_000 {
            assert!(
                ledger
                    .observe_log(&event(pid, snap.taken_at - Duration::days(1)))
                    .is_some()
            );
        }
        assert!(ledger.from_log.is_empty(), "{} pids remembered", ledger.from_log.len());
        assert!(ledger.observe_log(&event(7, snap.taken_at)).is_some());
        assert_eq!(ledger.from_log.len(), 1);
        assert_eq!(ledger.records().find(|r| r.key.user == "u").unwrap().sessions, 50_001);
    }
}

#[cfg(test)]
mod dedup_tests;

#[cfg(test)]
mod file_format_tests;
