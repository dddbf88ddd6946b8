//! Connections found in PostgreSQL's own log.
//!
//! Polling `pg_stat_ssl` misses a client that connects and leaves between two polls. With
//! `log_connections` the server writes two lines for every connection, and those stay in the log:
//!
//! ```text
//! 2026-11-27 17:42:50.128 UTC [22545] LOG:  connection received: host=127.0.0.1 port=47078
//! 2026-11-27 17:42:50.136 UTC [22545] LOG:  connection authorized: user=postgres database=postgres application_name=tls12app SSL enabled (protocol=TLSv1.2, cipher=ECDHE-RSA-AES256-GCM-SHA384, bits=256)
//! ```
//!
//! The "authorized" line carries user, database, application_name and the TLS (or GSS) details; the
//! "received" line of the same backend pid carries the client address. The binary's `LogFollower` reads a
//! file on this machine, its `SqlLogReader` reads the server's current log file through SQL. Both feed the bytes
//! to a [`stream::Pipeline`], which turns lines into [`ConnectionEvent`]s; this module is the parsing only.
//!
//! # Wordings, per version
//!
//! Seen on this machine's PostgreSQL 15.18 (stderr, csvlog and jsonlog):
//! * `connection received: host=127.0.0.1 port=47062`, and `connection received: host=[local]` for a Unix socket;
//! * `connection authorized: user=U database=D application_name=A SSL enabled (protocol=TLSv1.3,
//!   cipher=TLS_AES_256_GCM_SHA384, bits=256)`; without TLS the `SSL enabled (...)` part is absent, and
//!   `application_name=A` is absent when the client sent none;
//! * `replication connection authorized: user=U application_name=A` for physical and logical
//!   (`replication=database`) walsenders alike: no `database=`. [`ConnectionEvent::database`] then comes
//!   from csvlog's/jsonlog's database field or a `%d` in the prefix, else it is empty.
//!
//! Read in the server's source (`src/backend/utils/init/postinit.c`, `PerformAuthentication`):
//! * 12-13: the SSL part ends `, compression=off)` (or `on`); GSS part `GSS (authenticated=yes, encrypted=yes,
//!   principal=P)`.
//! * 14-15: no compression (SSL compression was removed in 14).
//! * 16-18: the GSS part gains `delegated_credentials=yes|no` before `principal`.
//! * 18: `log_connections` became a list of aspects (`receipt`, `authentication`, `authorization`,
//!   `setup_durations`, `all`; `on` = the first three). The "authorized" line needs `authorization`, the
//!   "received" line needs `receipt`; without `receipt` client addresses come only from the line's own
//!   metadata (csvlog, jsonlog, `%h`/`%r` in the prefix). The 18 line itself was seen only in a port of the
//!   18 source, whose SSL/GSS branch was elided; it is assumed unchanged from 16-17 (not verified on a server).
//! * Older servers (not targets) print fewer parts: no `application_name`, and the oldest no `bits`. Such
//!   lines still parse, `bits` as `None`.
//!
//! All of these are translated when `lc_messages` is not English; translated lines are not recognised.
//!
//! # Formats
//!
//! * stderr: `log_line_prefix`, then `LOG:  `, then the message; continuation lines of a multi-line
//!   message start with a tab. Any prefix works as long as it has a time (`%m`, `%t` or `%n`) and `%p`.
//!   **Without `%p`**, lines are paired by order: an "authorized" line takes the oldest unpaired
//!   "received" line of the last 60 s, which is a guess when logins overlap or fail; events then have
//!   `pid` 0. Without a time, events are stamped with the time pgtls read them.
//! * csvlog: one record per event, quoted fields may span lines; columns 0..=13 are the same in 12..18.
//! * jsonlog (15+): one object per line. CloudNativePG's log (each csvlog record wrapped in a JSON line of the
//!   operator's, see `cloudnativepg`) is read by the same decoder, line by line.
//!
//! Without `logging_collector`, csvlog/jsonlog output falls back to plain text on the server's stderr,
//! which is why [`detect_with_collector`] picks stderr then.

mod cloudnativepg;
mod csvlog;
mod jsonlog;
mod message;
pub mod pgbouncer;
pub mod provenance;
mod stderr;
pub mod stream;
mod timestamp;

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use self::cloudnativepg::parse_cloudnativepg_line;
pub use self::csvlog::parse_csv_record;
pub use self::jsonlog::parse_json_line;
pub use self::message::{Authorized, ConnectionMessage, HbaRefusal, parse_message};
pub use self::stderr::{StderrPrefix, parse_stderr_line};
pub use self::timestamp::parse_pg_timestamp;

/// TLS as the "authorized" line reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsSeen {
    /// OpenSSL's name: TLSv1, TLSv1.1, TLSv1.2, TLSv1.3.
    pub version: String,
    pub cipher: String,
    pub bits: Option<i32>,
}

/// One connection that reached authorization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionEvent {
    /// When the "authorized" line was written.
    pub at: DateTime<Utc>,
    /// Backend pid; 0 when the stderr prefix has no `%p`.
    pub pid: i32,
    pub user: String,
    /// Empty for physical replication connections, which have none.
    pub database: String,
    pub application_name: Option<String>,
    /// From the matching "connection received" line of the same pid (or the line's own metadata when that
    /// was not seen); `None` for a Unix socket or when unknown. A host name when `log_hostname` is on.
    pub client_addr: Option<String>,
    /// The client's port from the same "connection received" line; `None` for a Unix socket or when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_port: Option<u16>,
    pub local_socket: bool,
    pub tls: Option<TlsSeen>,
    pub gss_encrypted: bool,
    /// A walsender (`replication connection authorized`): a standby or a logical subscriber.
    #[serde(default)]
    pub replication: bool,
    /// The pg_hba.conf line that let it in, from the pid's `connection authenticated` line (14+, and only for
    /// methods that establish an identity before 18).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hba_line: Option<u32>,
}

/// Why an attempt was turned away before authorization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Refusal {
    /// `could not accept SSL connection: REASON`.
    Handshake { reason: String },
    /// A FATAL from pg_hba.conf, which names user and database.
    Hba(HbaRefusal),
    /// A pooler's client side turned it away (PgBouncer's own log, `--pgbouncer-log`).
    Pooler(PoolerRefusal),
}

/// A client a pooler refused before the server ever saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolerRefusal {
    /// The pooler's address as `--pgbouncer` names it (`host:port`).
    pub pooler: String,
    /// The pooler setting that refused it: `client_tls_protocols`, `client_tls_sslmode`, ...
    pub setting: String,
    /// PgBouncer's words: `SSL required`, or the handshake's OpenSSL reason.
    pub reason: String,
    /// It came without TLS (refused by `client_tls_sslmode`), rather than failing the handshake.
    pub plain: bool,
}

impl Refusal {
    /// A short reason for lists: the OpenSSL reason, or which pg_hba.conf rule and the encryption.
    pub fn reason(&self) -> String {
        match self {
            Refusal::Handshake { reason } => format!("TLS handshake: {reason}"),
            Refusal::Hba(h) => format!(
                "pg_hba.conf {}, {}",
                if h.rejected { "reject line" } else { "no matching line" },
                h.encryption
            ),
            Refusal::Pooler(p) => format!("pooler {}'s {}: {}", p.pooler, p.setting, p.reason),
        }
    }

    /// The pooler that refused it, if a pooler did.
    pub fn pooler(&self) -> Option<&str> {
        match self {
            Refusal::Pooler(p) => Some(&p.pooler),
            _ => None,
        }
    }
}

/// One connection attempt refused before authorization, joined to its `connection received` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedAttempt {
    pub at: DateTime<Utc>,
    /// 0 when the stderr prefix has no `%p`.
    pub pid: i32,
    /// From the pid's `connection received` line (or the line's own metadata); `None` when unknown.
    pub client_addr: Option<String>,
    pub client_port: Option<u16>,
    pub local_socket: bool,
    pub refusal: Refusal,
    /// The server's HINT (for protocol versions: the range it accepts) and DETAIL, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A setting the postmaster reports as changed on reload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingChange {
    pub at: DateTime<Utc>,
    pub name: String,
    /// `None` when the setting was removed from the file and reset to its default.
    pub value: Option<String>,
}

/// What the log says besides connections: refused attempts and setting changes, since the last take.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogNews {
    pub refused: Vec<RefusedAttempt>,
    pub changes: Vec<SettingChange>,
    /// Items beyond [`MAX_NEWS`] between two takes, only counted.
    pub dropped: u64,
}

/// Refusals and changes kept between two takes; the readers take after every bounded read, so only a flood
/// within one read (a scanner) reaches it.
pub const MAX_NEWS: usize = 65_536;

impl LogNews {
    pub fn is_empty(&self) -> bool {
        self.refused.is_empty() && self.changes.is_empty() && self.dropped == 0
    }

    pub fn extend(&mut self, other: LogNews) {
        let room = MAX_NEWS.saturating_sub(self.refused.len());
        self.dropped += other.dropped + other.refused.len().saturating_sub(room) as u64;
        self.refused.extend(other.refused.into_iter().take(room));
        let room = MAX_NEWS.saturating_sub(self.changes.len());
        self.dropped += other.changes.len().saturating_sub(room) as u64;
        self.changes.extend(other.changes.into_iter().take(room));
    }
}

/// One connection line, as the format-specific parsers return it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub at: DateTime<Utc>,
    pub pid: Option<i32>,
    /// The client host from the line's own metadata (csvlog `connection_from` without its port, jsonlog
    /// `remote_host`, prefix `%h`/`%r`), `[local]` for a Unix socket.
    pub remote_host: Option<String>,
    /// The client port from the line's own metadata (csvlog `connection_from`, jsonlog `remote_port`, prefix `%r`).
    pub remote_port: Option<u16>,
    /// The database from the line's own metadata (csvlog/jsonlog, prefix `%d`).
    pub database: Option<String>,
    pub message: ConnectionMessage,
    /// The role that wrote the line, from its own metadata (prefix `%u`, csvlog `user_name`, jsonlog `user`), as
    /// opposed to the user its message names.
    pub writer: Option<String>,
    /// Why the line's own metadata contradicts its message (see [`provenance`]); such a line is suspect.
    pub doubt: Option<String>,
    /// csvlog/jsonlog's `hint` and `detail` fields (stderr writes them as lines of their own; see `stream`).
    pub hint: Option<String>,
    pub detail: Option<String>,
}

/// A line that reads like a connection but whose own context says it is not one: written by a running session
/// (`RAISE LOG`), by another role, or right after a line broken by a name with a line break. It never enters the
/// ledger or a what-if; it is shown as an alert, with the pid and role that wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuspectLine {
    pub at: DateTime<Utc>,
    /// The backend that wrote it, when the format says.
    pub pid: Option<i32>,
    /// The role that wrote it, when the format says (never the role the line claims).
    pub writer: Option<String>,
    /// What it claims, e.g. `connection authorized: user=payroll database=prod`.
    pub claim: String,
    pub reason: String,
}

impl SuspectLine {
    /// One sentence for alerts and the sources list. Outside text in it is raw: outputs escape it.
    pub fn sentence(&self) -> String {
        let pid = self.pid.map_or("an unknown pid".to_string(), |p| format!("pid {p}"));
        let role = self
            .writer
            .as_deref()
            .map_or("an unknown role".to_string(), |r| format!("role \"{r}\""));
        format!("{pid} as {role} wrote \"{}\" ({})", self.claim, self.reason)
    }
}

/// How the log file is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogFormat {
    /// Plain text with `log_line_prefix`, e.g. `"%m [%p] "`.
    Stderr {
        prefix: String,
    },
    Csv,
    Json,
    /// PgBouncer's own log: only the clients it refused are read from it (see [`pgbouncer`]).
    PgBouncer,
}

impl LogFormat {
    /// The name `current_logfiles` and `pg_current_logfile(text)` use for this format.
    pub fn current_logfiles_key(&self) -> &'static str {
        match self {
            LogFormat::Stderr { .. } => "stderr",
            LogFormat::Csv => "csvlog",
            LogFormat::Json => "jsonlog",
            LogFormat::PgBouncer => "pgbouncer",
        }
    }
}

/// The format to read, from the server's `log_destination` and `log_line_prefix`, assuming the logging
/// collector writes the files (see [`detect_with_collector`]). jsonlog is preferred over csvlog over stderr:
/// the structured formats cannot be confused by what clients put in names.
pub fn detect(log_destination: &str, log_line_prefix: &str) -> LogFormat {
    detect_with_collector(log_destination, log_line_prefix, "on")
}

/// As [`detect`], also given `logging_collector`: when it is off, csvlog and jsonlog output goes to the
/// server's stderr as plain text, so only the stderr format exists. `syslog`/`eventlog` alone leave no file
/// pgtls can read; the stderr format is returned for them all the same.
pub fn detect_with_collector(log_destination: &str, log_line_prefix: &str, logging_collector: &str) -> LogFormat {
    let collector = matches!(
        logging_collector.trim().to_ascii_lowercase().as_str(),
        "on" | "true" | "yes" | "1"
    );
    let has = |name: &str| log_destination.split(',').any(|d| d.trim().eq_ignore_ascii_case(name));
    if collector && has("jsonlog") {
        LogFormat::Json
    } else if collector && has("csvlog") {
        LogFormat::Csv
    } else {
        LogFormat::Stderr {
            prefix: log_line_prefix.to_string(),
        }
    }
}

/// Where events come from, to describe it with [`limitations`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogSource {
    File {
        path: PathBuf,
        format: LogFormat,
        from_start: bool,
    },
    Sql {
        /// Known after the first successful poll.
        file: Option<String>,
        format: Option<LogFormat>,
        from_start: bool,
    },
}

/// Why connection lines read from the stderr format are a hint, not evidence (see [`provenance`]).
pub const STDERR_UNVERIFIABLE: &str = "stderr log: unverifiable format: lines are checked against the prefix's \
    user, database and pid and refused when running code wrote them, but a failed login prints its user and database \
    names raw, line breaks included, so a crafted name can print a whole fake line; use log_destination = jsonlog \
    (PostgreSQL 15+) or csvlog, where these checks are exact";

/// What a pooler's log can and cannot tell (see [`pgbouncer`]).
pub const POOLER_LOG_LIMITS: &str = "read only for the clients the pooler refused (SSL required, failed TLS \
    handshakes); PgBouncer logs a failed handshake without the client's address, so it is counted as an anonymous \
    attempt at the pooler (one of the pooler's own server-leg handshakes is told apart only by the server close \
    that follows it, which needs log_disconnections); a RELOAD line names \
    no setting, so refusals count over the window, not since the change; a file truncated in place (copytruncate) \
    loses what was written between the last read and the truncation";

/// A plain statement of what a source can miss, for the UI.
pub fn limitations(source: &LogSource) -> String {
    let (head, format, from_start) = match source {
        LogSource::File {
            path,
            format,
            from_start,
        } => (
            format!("log source: file {} ({})", path.display(), describe(format)),
            Some(format),
            *from_start,
        ),
        LogSource::Sql {
            file,
            format,
            from_start,
        } => {
            let what = match (file, format) {
                (Some(file), Some(format)) => format!(" {file} ({})", describe(format)),
                _ => String::new(),
            };
            (
                format!(
                    "log source: server log{what} read through SQL, which needs logging_collector = on and rights to pg_current_logfile and pg_read_binary_file"
                ),
                format.as_ref(),
                *from_start,
            )
        }
    };
    if format == Some(&LogFormat::PgBouncer) {
        return format!("{head}; {POOLER_LOG_LIMITS}");
    }
    let mut parts = vec![head];
    let mut misses = Vec::new();
    if !from_start {
        misses.push("connections made before pgtls started (it reads from the end of the log)");
    }
    misses
        .push("connections refused before authorization (wrong password, no pg_hba.conf entry, failed TLS handshake)");
    misses.push(
        "every connection unless log_connections is on (on PostgreSQL 18 it must include authorization, and receipt for client addresses)",
    );
    misses.push("lines in another language than English (lc_messages)");
    parts.push(format!("misses {}", join_and(&misses)));
    if let Some(LogFormat::Stderr { prefix }) = format {
        parts.push(STDERR_UNVERIFIABLE.to_string());
        let prefix = StderrPrefix::new(prefix);
        if !prefix.has_pid() {
            parts.push(
                "log_line_prefix has no %p, so lines are paired by order and client addresses can be given to the \
                 wrong connection when logins overlap"
                    .to_string(),
            );
        }
        if !prefix.has_timestamp() {
            parts.push("log_line_prefix has no %m, %t or %n, so times are when pgtls read the lines".to_string());
        }
    }
    if matches!(source, LogSource::File { .. }) {
        parts.push(
            "a file truncated in place (copytruncate) loses what was written between the last read and the truncation"
                .to_string(),
        );
    }
    parts.push(
        "a logged connection can still fail right after authorization (unknown role, too many connections)".to_string(),
    );
    parts.push(
        "a client without TLS can fake the TLS part of its line through application_name, so a line is a hint, not proof"
            .to_string(),
    );
    parts.join("; ")
}

fn describe(format: &LogFormat) -> String {
    match format {
        LogFormat::Stderr { prefix } => format!("stderr format, log_line_prefix '{prefix}'"),
        LogFormat::Csv => "csvlog".to_string(),
        LogFormat::Json => "jsonlog".to_string(),
        LogFormat::PgBouncer => "PgBouncer log".to_string(),
    }
}

fn join_and(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{}, and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detect_prefers_structured_formats_when_the_collector_writes_them() {
        assert_eq!(detect("stderr,csvlog,jsonlog", "%m [%p] "), LogFormat::Json);
        assert_eq!(detect("csvlog, stderr", "%m [%p] "), LogFormat::Csv);
        assert_eq!(detect("CSVLOG", ""), LogFormat::Csv);
        assert_eq!(
            detect("stderr", "%m [%p] "),
            LogFormat::Stderr {
                prefix: "%m [%p] ".into()
            }
        );
        assert_eq!(
            detect_with_collector("csvlog,jsonlog", "%t ", "off"),
            LogFormat::Stderr { prefix: "%t ".into() }
        );
        assert_eq!(detect_with_collector("csvlog", "%t ", "on"), LogFormat::Csv);
        assert_eq!(detect("syslog", "%m "), LogFormat::Stderr { prefix: "%m ".into() });
    }

    #[test]
    fn limitations_read_as_one_plain_line() {
        let text = limitations(&LogSource::File {
            path: "/var/log/postgresql/pg.log".into(),
            format: LogFormat::Stderr {
                prefix: "%m [%p] ".into(),
            },
            from_start: false,
        });
        assert!(text.starts_with("log source: file /var/log/postgresql/pg.log (stderr format, log_line_prefix '%m [%p] '); misses connections made before pgtls started"), "{text}");
        assert!(text.contains("connections refused before authorization"));
        assert!(!text.contains("no %p"));
        assert!(!text.contains('\n'));

        let text = limitations(&LogSource::File {
            path: "x".into(),
            format: LogFormat::Stderr { prefix: "%u ".into() },
            from_start: true,
        });
        assert!(!text.contains("before pgtls started"));
        assert!(text.contains("no %p") && text.contains("no %m, %t or %n"), "{text}");

        let text = limitations(&LogSource::Sql {
            file: Some("log/postgresql.csv".into()),
            format: Some(LogFormat::Csv),
            from_start: false,
        });
        assert!(
            text.starts_with("log source: server log log/postgresql.csv (csvlog) read through SQL"),
            "{text}"
        );
        assert!(!text.contains("copytruncate"));
    }

    #[test]
    fn events_round_trip_through_json() {
        let event = ConnectionEvent {
            client_port: None,
            at: DateTime::from_timestamp(1_795_801_474, 0).unwrap(),
            pid: 7,
            user: "u".into(),
            database: "d".into(),
            application_name: None,
            client_addr: Some("127.0.0.1".into()),
            local_socket: false,
            tls: Some(TlsSeen {
                version: "TLSv1.3".into(),
                cipher: "TLS_AES_256_GCM_SHA384".into(),
                bits: Some(256),
            }),
            gss_encrypted: false,
            replication: false,
            hba_line: Some(3),
        };
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(serde_json::from_str::<ConnectionEvent>(&json).unwrap(), event);
    }
}
