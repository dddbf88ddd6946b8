//! Reading the server's log through SQL, for when pgtls does not run on the database host.

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use chrono::{DateTime, Utc};

use super::stream::Pipeline;
use super::{ConnectionEvent, LogFormat, LogSource, detect_with_collector};
use crate::analysis::ledger::{HASHED_LINE_MAX, LogPosition, head_hash, last_line_hash};

/// The SQL reader's name among the ledger's log positions: whichever file the server writes, it is one source.
pub const SQL_SOURCE: &str = "sql";

const READ_CHUNK: i64 = 1 << 20;
/// Chunks read at most per poll: a long log is caught up over several polls, each applied before the next.
const POLL_CHUNKS: u32 = 8;

/// Reads the log file the logging collector is writing, through `pg_current_logfile(format)` and
/// `pg_read_binary_file(path, offset, length)` (or `pg_read_file` when only that one may be executed),
/// tracking the offset between calls and following the file name `pg_current_logfile` returns (rotation):
/// the rest of the old file is read before the new one.
///
/// Needs `logging_collector = on` and a role that may run those functions: a superuser, or one granted
/// EXECUTE on them (plus `pg_read_server_files` when `log_directory` is outside the data directory).
pub struct SqlLogReader {
    from_start: bool,
    state: Option<State>,
    /// Bytes per read, and reads at most per poll.
    chunk_len: i64,
    chunks_per_poll: u32,
    /// The last poll stopped at its budget: the file holds more than was read.
    behind: bool,
    /// Where the ledger says this source was applied up to, for the first read.
    resume: Option<LogPosition>,
    /// After a restart that did not find the file it had read: lines at or before this time are not applied again.
    skip_through: Option<DateTime<Utc>>,
    /// The position last computed, so an idle poll asks the server nothing more.
    last_position: Option<LogPosition>,
}

struct State {
    format: LogFormat,
    file: String,
    offset: i64,
    reader: ReadFn,
    pipeline: Pipeline,
    /// [`head_hash`] of the file being read, once it has a whole first line.
    head_hash: Option<u64>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ReadFn {
    Binary,
    Text,
}

impl SqlLogReader {
    /// With `from_start` false, the first poll only finds the end of the current file.
    pub fn new(from_start: bool) -> SqlLogReader {
        SqlLogReader {
            from_start,
            state: None,
            chunk_len: READ_CHUNK,
            chunks_per_poll: POLL_CHUNKS,
            behind: false,
            resume: None,
            skip_through: None,
            last_position: None,
        }
    }

    /// Take up where the ledger's `position` says this source was applied up to (see [`LogPosition`]): the same
    /// file, whole up to the offset, is read on from there (a file rotated away since is finished first, as the
    /// server still has it); otherwise the current file is read from its start, leaving out lines no newer than
    /// the last one applied.
    pub fn resuming(mut self, position: Option<&LogPosition>) -> SqlLogReader {
        self.resume = position.cloned();
        self
    }

    /// How far this reader has applied the log, for the ledger; asks the server only when it moved.
    pub async fn position(&mut self, client: &Client) -> Option<LogPosition> {
        let state = self.state.as_mut()?;
        let pending = i64::try_from(state.pipeline.pending_bytes()?).ok()?;
        let offset = state.offset - pending;
        if let Some(last) = &self.last_position
            && last.file == state.file
            && last.offset == u64::try_from(offset).ok()?
        {
            return Some(last.clone());
        }
        if state.head_hash.is_none() {
            state.head_hash = read_head_hash(client, state).await;
        }
        let want = offset.min(HASHED_LINE_MAX as i64 + 1);
        let (tail, _) = read_chunk(client, state, offset - want, want).await.ok()?;
        let position = LogPosition {
            source: SQL_SOURCE.to_string(),
            file: state.file.clone(),
            dev: 0,
            ino: 0,
            head_hash: state.head_hash,
            offset: u64::try_from(offset).ok()?,
            last_line_hash: if want == 0 { None } else { last_line_hash(&tail) },
            last_at: state.pipeline.latest().max(self.skip_through),
        };
        self.last_position = Some(position.clone());
        Some(position)
    }

    /// Read at most about `budget` bytes per poll (whole chunks, at least one; small budgets read small chunks).
    pub fn set_budget(&mut self, budget: u64) {
        self.chunk_len = i64::try_from(budget).unwrap_or(READ_CHUNK).clamp(16, READ_CHUNK);
        self.chunks_per_poll = u32::try_from(budget / self.chunk_len.unsigned_abs())
            .unwrap_or(u32::MAX)
            .max(1);
    }

    /// The last poll stopped at its budget: the file holds more than was read.
    pub fn is_behind(&self) -> bool {
        self.behind
    }

    /// What this source is, for [`super::limitations`].
    pub fn source(&self) -> LogSource {
        LogSource::Sql {
            file: self.state.as_ref().map(|s| s.file.clone()),
            format: self.state.as_ref().map(|s| s.format.clone()),
            from_start: self.from_start,
        }
    }

    /// The file being read, as the server names it (relative to its data directory unless absolute).
    pub fn file(&self) -> Option<&str> {
        self.state.as_ref().map(|s| s.file.as_str())
    }

    /// Read what was added since the last call. Errors are one line, meant to be shown as they are.
    pub async fn poll(&mut self, client: &Client) -> Result<Vec<ConnectionEvent>, LogSqlError> {
        let mut events = Vec::new();
        let mut chunks = self.chunks_per_poll;
        self.behind = false;
        let state = match self.state.as_mut() {
            Some(state) => state,
            None => {
                let mut state = start(client, self.from_start).await?;
                if let Some(position) = self.resume.take()
                    && !resume(client, &mut state, &position).await
                {
                    self.skip_through = position.last_at;
                }
                self.state.insert(state)
            }
        };
        let current = current_logfile(client, &state.format).await?;
        if current != state.file {
            // Rotated: the old file is complete, so read its rest before starting the new one at 0.
            match read_new(client, state, &mut events, (self.chunk_len, &mut chunks)).await {
                Ok(false) => {
                    // The old file's rest takes more polls; the rotation is seen again next time.
                    self.behind = true;
                    state.pipeline.settle(&mut events);
                    return Ok(events);
                }
                // Removed before we finished it (rotation with deletion): its rest is gone, carry on.
                Ok(true) | Err(ReadError { gone: true, .. }) => {}
                Err(e) => return Err(e.error),
            }
            state.pipeline.end_of_file(&mut events);
            state.file = current;
            state.offset = 0;
            state.head_hash = None;
            state.pipeline.restart();
        }
        self.behind = !read_new(client, state, &mut events, (self.chunk_len, &mut chunks)).await?;
        state.pipeline.settle(&mut events);
        if let Some(through) = self.skip_through {
            events.retain(|e| e.at > through);
        }
        Ok(events)
    }

    /// Lines that read like connections but were refused (see [`super::provenance`]) since the last call, and
    /// how many more beyond those kept.
    pub fn take_suspects(&mut self) -> (Vec<super::SuspectLine>, u64) {
        self.state
            .as_mut()
            .map(|s| s.pipeline.take_suspects())
            .unwrap_or_default()
    }

    /// Refused attempts and setting changes read since the last call.
    pub fn take_news(&mut self) -> super::LogNews {
        let mut news = self.state.as_mut().map(|s| s.pipeline.take_news()).unwrap_or_default();
        if let Some(through) = self.skip_through {
            news.refused.retain(|r| r.at > through);
            news.changes.retain(|c| c.at > through);
        }
        news
    }
}

async fn start(client: &Client, from_start: bool) -> Result<State, LogSqlError> {
    let row = client
        .query_one(
            "SELECT CURRENT_USER::pg_catalog.text, pg_catalog.current_setting('logging_collector'), \
             pg_catalog.current_setting('log_destination'), pg_catalog.current_setting('log_line_prefix')",
            &[],
        )
        .await
        .map_err(|e| unavailable("reading the logging settings", &e))?;
    // try_get throughout: a server (or a proxy in front of one) may send NULL or another type, which is a
    // reason the log source is unavailable, never a panic.
    let text = |idx: usize| -> Result<String, LogSqlError> {
        row.try_get::<_, crate::collect::rows::LossyText>(idx)
            .map(|t| t.0)
            .map_err(|e| unavailable("reading the logging settings", &e))
    };
    let (role, collector, destination, prefix) = (text(0)?, text(1)?, text(2)?, text(3)?);
    if collector != "on" {
        return Err(LogSqlError::CollectorOff);
    }
    let format = detect_with_collector(&destination, &prefix, &collector);
    // Told apart by SQLSTATE, not by the server's words (which follow lc_messages).
    let file = match ask_current_logfile(client, &format).await {
        Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {
            return Err(LogSqlError::NoLogfileGrant {
                role,
                message: db_message(&e),
                code: e.code().cloned(),
            });
        }
        answer => logfile_named(answer, &format)?,
    };
    let reader = pick_reader(client, &file, &role).await?;
    let mut state = State {
        pipeline: Pipeline::new(&format),
        format,
        file,
        offset: 0,
        reader,
        head_hash: None,
    };
    if !from_start {
        skip_to_end(client, &mut state).await?;
    }
    Ok(state)
}

/// [`head_hash`] of the state's file, read through the server; `None` while it has no whole line (or on a failed
/// read, which the next call tries again).
async fn read_head_hash(client: &Client, state: &State) -> Option<u64> {
    let (head, _) = read_chunk(client, state, 0, HASHED_LINE_MAX as i64 + 1).await.ok()?;
    head_hash(&head)
}

/// Point `state` at `position` when the file it names is still the one it read, whole up to its offset (true);
/// the current file from its start otherwise (false).
async fn resume(client: &Client, state: &mut State, position: &LogPosition) -> bool {
    let current = std::mem::replace(&mut state.file, position.file.clone());
    let Ok(offset) = i64::try_from(position.offset) else {
        state.file = current;
        return false;
    };
    let want = offset.min(HASHED_LINE_MAX as i64 + 1);
    let same = position.head_hash.is_some()
        && read_head_hash(client, state).await == position.head_hash
        && match read_chunk(client, state, offset - want, want).await {
            Ok((tail, _)) => {
                tail.len() as i64 == want && (want == 0 || last_line_hash(&tail) == position.last_line_hash)
            }
            Err(_) => false,
        };
    state.pipeline.restart();
    if same {
        // An older file (rotated since) is finished first: the next poll sees the server write another one.
        state.offset = offset;
        state.head_hash = position.head_hash;
        return true;
    }
    state.file = current;
    state.offset = 0;
    state.head_hash = None;
    false
}

async fn current_logfile(client: &Client, format: &LogFormat) -> Result<String, LogSqlError> {
    logfile_named(ask_current_logfile(client, format).await, format)
}

async fn ask_current_logfile(client: &Client, format: &LogFormat) -> Result<Option<String>, tokio_postgres::Error> {
    let key = format.current_logfiles_key();
    client
        .query_one("SELECT pg_catalog.pg_current_logfile($1)", &[&key])
        .await?
        .try_get(0)
}

fn logfile_named(
    answer: Result<Option<String>, tokio_postgres::Error>,
    format: &LogFormat,
) -> Result<String, LogSqlError> {
    let key = format.current_logfiles_key();
    let file = answer.map_err(|e| unavailable("asking pg_current_logfile", &e))?;
    file.ok_or(LogSqlError::NoLogfile { key })
}

/// Prefer the binary reader: pg_read_file checks the text's encoding and fails on a multibyte character
/// cut by the chunk boundary or on a line logged in another database's encoding.
async fn pick_reader(client: &Client, file: &str, role: &str) -> Result<ReadFn, LogSqlError> {
    let binary = client
        .query_one("SELECT pg_catalog.pg_read_binary_file($1, 0, 0)", &[&file])
        .await;
    let Err(binary_err) = binary else {
        return Ok(ReadFn::Binary);
    };
    if binary_err.code() != Some(&SqlState::INSUFFICIENT_PRIVILEGE) {
        return Err(unavailable("reading the log file", &binary_err));
    }
    match client
        .query_one("SELECT pg_catalog.pg_read_file($1, 0, 0)", &[&file])
        .await
    {
        Ok(_) => Ok(ReadFn::Text),
        Err(e) => Err(LogSqlError::NoReadGrant {
            role: role.to_string(),
            message: db_message(&e),
            code: e.code().cloned(),
        }),
    }
}

/// Start at the end of the current file. pg_stat_file needs its own grant; without it, read through.
async fn skip_to_end(client: &Client, state: &mut State) -> Result<(), LogSqlError> {
    let size = client
        .query_one("SELECT (pg_catalog.pg_stat_file($1)).size", &[&state.file])
        .await;
    match size {
        Ok(row) => {
            let size: i64 = row.try_get(0).map_err(|e| ReadError::from_db(&e).error)?;
            state.offset = size;
            if size > 0 {
                let (last, _) = read_chunk(client, state, size - 1, 1).await?;
                if last.last() != Some(&b'\n') {
                    state.pipeline.resync();
                }
            }
        }
        Err(_) => {
            // Discarded chunk by chunk, so skipping a long file costs no memory.
            loop {
                let mut discard = Vec::new();
                let mut one = 1;
                if read_new(client, state, &mut discard, (READ_CHUNK, &mut one)).await? {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// Why the log source is unavailable. Each message is one line, meant to be shown as it is; `code` is the
/// server's SQLSTATE when the server answered with an error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LogSqlError {
    /// A query failed: `what` pgtls was doing, the server's one-line `message`.
    #[error("{what}: {message}")]
    Unavailable {
        what: &'static str,
        message: String,
        code: Option<SqlState>,
    },
    /// `logging_collector` is not on.
    #[error(
        "logging_collector is off, so the server keeps no log file \
                    that SQL can read (set logging_collector = on and restart)"
    )]
    CollectorOff,
    /// The role may not call `pg_current_logfile`.
    #[error(
        "role \"{role}\" may not read server log files (needs superuser, or \
                 EXECUTE on pg_current_logfile and pg_read_binary_file or pg_read_file): asking pg_current_logfile: {message}"
    )]
    NoLogfileGrant {
        role: String,
        message: String,
        code: Option<SqlState>,
    },
    /// `pg_current_logfile(key)` returned NULL.
    #[error("pg_current_logfile('{key}') names no file (is {key} in log_destination?)")]
    NoLogfile { key: &'static str },
    /// The role may call neither file reader.
    #[error(
        "role \"{role}\" may not read server log files (needs superuser, or EXECUTE \
             on pg_read_binary_file or pg_read_file, plus pg_read_server_files when log_directory is outside \
             the data directory): {message}"
    )]
    NoReadGrant {
        role: String,
        message: String,
        code: Option<SqlState>,
    },
    /// Every shortened text read failed without an error to show.
    #[error("reading the log file failed")]
    ReadFailed,
}

/// A failed read; `gone` when the file no longer exists.
struct ReadError {
    gone: bool,
    error: LogSqlError,
}

impl ReadError {
    fn from_db(error: &tokio_postgres::Error) -> ReadError {
        ReadError {
            gone: error.code() == Some(&SqlState::UNDEFINED_FILE),
            error: unavailable("reading the log file", error),
        }
    }
}

impl From<ReadError> for LogSqlError {
    fn from(error: ReadError) -> LogSqlError {
        error.error
    }
}

/// Read on until the end of the file (true) or until `chunks` are spent (false).
async fn read_new(
    client: &Client,
    state: &mut State,
    events: &mut Vec<ConnectionEvent>,
    (chunk_len, chunks): (i64, &mut u32),
) -> Result<bool, ReadError> {
    loop {
        if *chunks == 0 {
            return Ok(false);
        }
        *chunks -= 1;
        let (bytes, consumed) = read_chunk(client, state, state.offset, chunk_len).await?;
        state.offset += consumed;
        state.pipeline.feed(&bytes, events);
        // The text reader may stop up to three bytes short of a full chunk without being at the end.
        if consumed < chunk_len - 3 {
            return Ok(true);
        }
    }
}

/// `(bytes, how far the offset moves)` for up to `length` bytes at `offset`.
async fn read_chunk(client: &Client, state: &State, offset: i64, length: i64) -> Result<(Vec<u8>, i64), ReadError> {
    match state.reader {
        ReadFn::Binary => {
            let row = client
                .query_one(
                    "SELECT pg_catalog.pg_read_binary_file($1, $2, $3)",
                    &[&state.file, &offset, &length],
                )
                .await
                .map_err(|e| ReadError::from_db(&e))?;
            let bytes: Vec<u8> = row.try_get(0).map_err(|e| ReadError::from_db(&e))?;
            let consumed = bytes.len() as i64;
            Ok((bytes, consumed))
        }
        ReadFn::Text => {
            // A chunk may end inside a multibyte character, which pg_read_file rejects: shorten it by up
            // to three bytes. The offset moves by the server-side byte count, which is the file's.
            let mut last_err = None;
            for cut in 0..4 {
                let len = (length - cut).max(1);
                match client
                    .query_one(
                        "SELECT t, pg_catalog.octet_length(t)::pg_catalog.int8 FROM pg_catalog.pg_read_file($1, $2, $3) AS t",
                        &[&state.file, &offset, &len],
                    )
                    .await
                {
                    Ok(row) => {
                        let text: String = row.try_get(0).map_err(|e| ReadError::from_db(&e))?;
                        let consumed: i64 = row.try_get(1).map_err(|e| ReadError::from_db(&e))?;
                        return Ok((text.into_bytes(), consumed));
                    }
                    Err(e) if e.code() == Some(&SqlState::CHARACTER_NOT_IN_REPERTOIRE) => last_err = Some(e),
                    Err(e) => return Err(ReadError::from_db(&e)),
                }
            }
            Err(last_err.map_or_else(
                || ReadError {
                    gone: false,
                    error: LogSqlError::ReadFailed,
                },
                |e| ReadError::from_db(&e),
            ))
        }
    }
}

fn unavailable(what: &'static str, error: &tokio_postgres::Error) -> LogSqlError {
    LogSqlError::Unavailable {
        what,
        message: db_message(error),
        code: error.code().cloned(),
    }
}

/// The server's own one-line message, without the driver's "db error: ERROR:" wrapping.
fn db_message(error: &tokio_postgres::Error) -> String {
    let text = match error.as_db_error() {
        Some(db) => db.message().to_string(),
        None => error.to_string(),
    };
    text.lines().next().unwrap_or_default().to_string()
}
