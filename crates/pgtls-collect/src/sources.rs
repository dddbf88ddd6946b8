//! Which history sources are on for this run, and what each can miss.
//!
//! Polls see sessions that are connected when they run. The connection log (log_connections=on)
//! also sees the ones shorter than the interval: from a file the user names, or through
//! pg_read_file() when the role may and the logging collector writes files.

use std::path::Path;

use tokio_postgres::Client;

use crate::analysis::alerts::Alert;
use crate::analysis::alerts::config::AlertsConfig;
use crate::analysis::ledger::{Ledger, LogPosition};
use crate::analysis::sources::{SourceNote, SourceStatus};
use crate::logsource::{self, ConnectionEvent, LogFollower, LogFormat, LogNews, Resumed, SqlLogReader, SuspectLine};

pub struct LogSources {
    /// The followed file, with its key among the ledger's positions.
    file: Option<(LogFollower, String)>,
    resumed: Option<Resumed>,
    sql: Option<SqlLogReader>,
    /// The SQL reader has read once: until then it is not on.
    sql_read: bool,
    /// A file was named (`--server-log`): no hint to name one when it stops.
    file_given: bool,
    /// Why the log source is off or stopped, to show the user.
    off_reason: Option<String>,
    /// The most recent lines refused as forged, oldest first, and how many there were in all.
    suspects: Vec<SuspectLine>,
    suspect_total: u64,
}

/// Refused lines kept to show; older ones are only counted.
const KEEP_SUSPECTS: usize = 20;

/// What polling alone misses.
pub const POLL_LIMITATION: &str =
    "poll: sees every session connected at each refresh; misses connections shorter than the interval";

impl LogSources {
    /// `server_log` names a file to follow; without it the SQL reader is tried on the first poll. A file the
    /// ledger has read before is read on from where it was applied up to (see [`LogSources::position`]).
    pub async fn open(
        client: &Client,
        server_log: Option<&Path>,
        from_start: bool,
        ledger: &Ledger,
    ) -> Result<LogSources, crate::files::FollowError> {
        let Some(path) = server_log else {
            let resume = ledger.log_position(crate::logsource::SQL_SOURCE);
            return Ok(LogSources {
                sql: Some(SqlLogReader::new(from_start).resuming(resume)),
                ..LogSources::none_yet()
            });
        };
        let format = file_format(client, path).await;
        let key = file_source_key(path);
        let (follower, resumed) =
            LogFollower::open_resuming(path.to_path_buf(), format, from_start, ledger.log_position(&key)).map_err(
                |source| crate::files::FollowError {
                    flag: "--server-log",
                    path: path.to_path_buf(),
                    source,
                },
            )?;
        Ok(LogSources {
            file: Some((follower, key)),
            file_given: true,
            resumed: Some(resumed),
            ..LogSources::none_yet()
        })
    }

    /// How far the log has been applied, to journal with what was applied from it.
    pub async fn position(&mut self, client: &Client) -> Option<LogPosition> {
        if let Some((file, key)) = &self.file {
            return file.position(key).ok().flatten();
        }
        self.sql.as_mut()?.position(client).await
    }

    /// Where the followed file was taken up, given the ledger's position.
    pub fn resumed(&self) -> Option<Resumed> {
        self.resumed
    }

    fn none_yet() -> LogSources {
        LogSources {
            file: None,
            resumed: None,
            sql: None,
            sql_read: false,
            file_given: false,
            off_reason: None,
            suspects: Vec::new(),
            suspect_total: 0,
        }
    }

    /// No log source at all.
    pub fn none(reason: &str) -> LogSources {
        LogSources {
            off_reason: Some(reason.to_string()),
            ..LogSources::none_yet()
        }
    }

    /// Lines refused as forged so far (the most recent ones) and how many in all.
    pub fn suspects(&self) -> (&[SuspectLine], u64) {
        (&self.suspects, self.suspect_total)
    }

    /// The alert for refused lines, if any (configurable as rule `log_lines_forged`).
    pub fn forgery_alert(&self, config: &AlertsConfig) -> Option<Alert> {
        let latest = self.suspects.last()?;
        crate::analysis::alerts::forged_log_lines(self.suspect_total, latest, config)
    }

    fn collect_suspects(&mut self) {
        let taken = [
            self.file.as_mut().map(|(f, _)| f.take_suspects()),
            self.sql.as_mut().map(SqlLogReader::take_suspects),
        ];
        for (lines, dropped) in taken.into_iter().flatten() {
            self.suspect_total += lines.len() as u64 + dropped;
            self.suspects.extend(lines);
        }
        let excess = self.suspects.len().saturating_sub(KEEP_SUSPECTS);
        self.suspects.drain(..excess);
    }

    /// On once a read has succeeded (a file opened, the SQL reader's first read done): a reader that has not
    /// read yet is not called on, so no output says "on" and then "off: permission denied" in one run.
    pub fn is_active(&self) -> bool {
        self.status().is_on()
    }

    /// The log source's state, as every output says it.
    pub fn status(&self) -> SourceStatus {
        if self.file.is_some() || (self.sql.is_some() && self.sql_read) {
            return SourceStatus::On;
        }
        let reason = match (&self.off_reason, &self.sql) {
            (Some(reason), _) => reason.clone(),
            (None, Some(_)) => "not read yet".to_string(),
            (None, None) => "no log source".to_string(),
        };
        SourceStatus::Off { reason }
    }

    /// Read at most about `budget` bytes of log per poll.
    pub fn set_budget(&mut self, budget: u64) {
        if let Some((file, _)) = &mut self.file {
            file.set_budget(budget);
        }
        if let Some(sql) = &mut self.sql {
            sql.set_budget(budget);
        }
    }

    /// The last poll stopped at its budget: the log holds more than was read, and the next poll goes on.
    pub fn is_behind(&self) -> bool {
        self.file.as_ref().is_some_and(|(f, _)| f.is_behind()) || self.sql.as_ref().is_some_and(SqlLogReader::is_behind)
    }

    /// New connection events since the last call, from at most one budget of log. A source that fails is
    /// switched off with its reason.
    pub async fn poll(&mut self, client: &Client) -> Vec<ConnectionEvent> {
        let events = self.poll_sources(client).await;
        self.collect_suspects();
        events
    }

    /// Refused attempts and setting changes read since the last call (bounded by what one poll reads).
    pub fn take_news(&mut self) -> LogNews {
        let mut news = LogNews::default();
        if let Some((file, _)) = &mut self.file {
            news.extend(file.take_news());
        }
        if let Some(sql) = &mut self.sql {
            news.extend(sql.take_news());
        }
        news
    }

    async fn poll_sources(&mut self, client: &Client) -> Vec<ConnectionEvent> {
        if let Some((file, _)) = &mut self.file {
            match file.poll() {
                Ok(events) => return events,
                Err(e) => {
                    self.off_reason = Some(format!("log file {} stopped: {e}", file.path().display()));
                    self.file = None;
                }
            }
        }
        if let Some(sql) = &mut self.sql {
            match sql.poll(client).await {
                Ok(events) => {
                    self.sql_read = true;
                    return events;
                }
                Err(e) => {
                    self.off_reason = Some(e.to_string());
                    self.sql = None;
                }
            }
        }
        Vec::new()
    }

    /// One line per source: what is on and what it can miss.
    pub fn describe(&self) -> Vec<SourceNote> {
        let mut lines = vec![SourceNote::on(POLL_LIMITATION)];
        match self.status() {
            SourceStatus::Off { reason } => lines.push(SourceNote::off(if self.file_given {
                format!("log source off: {reason}")
            } else {
                format!("log source off: {reason}; pass --server-log PATH to read the log file directly")
            })),
            SourceStatus::On | SourceStatus::Degraded { .. } => {
                if let Some((file, _)) = &self.file {
                    lines.push(SourceNote::on(logsource::limitations(&file.source())));
                }
                if let Some(sql) = self.sql.as_ref().filter(|_| self.sql_read) {
                    lines.push(SourceNote::on(logsource::limitations(&sql.source())));
                }
            }
        }
        if let Some(latest) = self.suspects.last() {
            lines.push(SourceNote::alert(format!(
                "ALERT: {} forged-looking connection line(s) refused, kept out of the ledger; latest: {}",
                self.suspect_total,
                latest.sentence()
            )));
        }
        lines
    }
}

/// Whether the file's first bytes open a JSON object (`{"`): a stderr-format line starts with its
/// `log_line_prefix` (a time, in any prefix pgtls reads well) or its severity. An empty file is not one: name a file
/// that starts empty `*.json`.
fn starts_with_json_object(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 2];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| &head == b"{\"")
}

/// A followed file's name among the ledger's log positions: the path as given, so a rotation (a new file at
/// the same path) is the same source.
pub fn file_source_key(path: &Path) -> String {
    format!("file:{}", path.display())
}

/// The file's own extension decides csv/json; a file whose first line is a JSON object is json too (CloudNativePG's
/// log as `kubectl logs` saves it, any name); other files use the server's log_line_prefix.
async fn file_format(client: &Client, path: &Path) -> LogFormat {
    match path.extension().and_then(|e| e.to_str()) {
        Some("csv") => LogFormat::Csv,
        Some("json") => LogFormat::Json,
        _ if starts_with_json_object(path) => LogFormat::Json,
        _ => {
            let prefix = client
                .query_one("SELECT pg_catalog.current_setting('log_line_prefix')", &[])
                .await
                .ok()
                .and_then(|row| row.try_get::<_, String>(0).ok())
                .unwrap_or_else(|| "%m [%p] ".to_string());
            LogFormat::Stderr { prefix }
        }
    }
}
