//! Which history sources are on for this run, and what each can miss.
//!
//! Polls see sessions that are connected when they run. The connection log (log_connections=on)
//! also sees the ones shorter than the interval: from a file the user names, or through
//! pg_read_file() when the role may and the logging collector writes files.

use std::path::Path;

use crate::collect::Collector;
use crate::logsource::{self, ConnectionEvent, LogFollower, LogFormat, SqlLogReader};

pub struct LogSources {
    file: Option<LogFollower>,
    sql: Option<SqlLogReader>,
    /// Why the log source is off or stopped, to show the user.
    off_reason: Option<String>,
}

/// What polling alone misses.
pub const POLL_LIMITATION: &str =
    "poll: sees every session connected at each refresh; misses connections shorter than the interval";

impl LogSources {
    /// `server_log` names a file to follow; without it the SQL reader is tried on the first poll.
    pub async fn open(
        collector: &Collector,
        server_log: Option<&Path>,
        from_start: bool,
    ) -> Result<LogSources, String> {
        let Some(path) = server_log else {
            return Ok(LogSources {
                file: None,
                sql: Some(SqlLogReader::new(from_start)),
                off_reason: None,
            });
        };
        let format = file_format(collector, path).await;
        let follower = LogFollower::open(path.to_path_buf(), format, from_start)
            .map_err(|e| format!("--server-log {}: {e}", path.display()))?;
        Ok(LogSources {
            file: Some(follower),
            sql: None,
            off_reason: None,
        })
    }

    /// No log source at all.
    pub fn none(reason: &str) -> LogSources {
        LogSources {
            file: None,
            sql: None,
            off_reason: Some(reason.to_string()),
        }
    }

    pub fn is_active(&self) -> bool {
        self.file.is_some() || self.sql.is_some()
    }

    /// New connection events since the last call. A source that fails is switched off with its reason.
    pub async fn poll(&mut self, collector: &Collector) -> Vec<ConnectionEvent> {
        if let Some(file) = &mut self.file {
            match file.poll() {
                Ok(events) => return events,
                Err(e) => {
                    self.off_reason = Some(format!("log file {} stopped: {e}", file.path().display()));
                    self.file = None;
                }
            }
        }
        if let Some(sql) = &mut self.sql {
            match sql.poll(collector.client()).await {
                Ok(events) => return events,
                Err(e) => {
                    self.off_reason = Some(format!("log source off: {e}"));
                    self.sql = None;
                }
            }
        }
        Vec::new()
    }

    /// One line per source: what is on and what it can miss.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = vec![POLL_LIMITATION.to_string()];
        if let Some(file) = &self.file {
            lines.push(logsource::limitations(&file.source()));
        }
        if let Some(sql) = &self.sql {
            lines.push(logsource::limitations(&sql.source()));
        }
        if let Some(reason) = &self.off_reason {
            lines.push(format!(
                "{reason}; pass --server-log PATH to read the log file directly"
            ));
        }
        lines
    }
}

/// The file's own extension decides csv/json; plain files use the server's log_line_prefix.
async fn file_format(collector: &Collector, path: &Path) -> LogFormat {
    match path.extension().and_then(|e| e.to_str()) {
        Some("csv") => LogFormat::Csv,
        Some("json") => LogFormat::Json,
        _ => {
            let prefix = collector
                .client()
                .query_one("SELECT current_setting('log_line_prefix')", &[])
                .await
                .ok()
                .and_then(|row| row.try_get::<_, String>(0).ok())
                .unwrap_or_else(|| "%m [%p] ".to_string());
            LogFormat::Stderr { prefix }
        }
    }
}
