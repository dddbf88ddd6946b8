//! Bytes in, events out: shared by the file follower and the SQL reader.
//!
//! `Splitter` cuts a byte stream into records and keeps an unfinished tail for the next call; `Pairer` joins
//! each `connection authorized` line to the `connection received` line of the same backend.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Duration, Utc};

use super::csvlog::parse_csv_record;
use super::jsonlog::parse_json_line;
use super::message::ConnectionMessage;
use super::stderr::{Annotation, StderrPrefix, annotation_line, context_line_pid, is_broken_line, parse_stderr_line};
use super::{ConnectionEvent, LogFormat, LogLine, LogNews, Refusal, RefusedAttempt, SettingChange, SuspectLine};

/// A record longer than this without an end is not a log record; drop it and look for the next one.
const MAX_PARTIAL: usize = 16 << 20;
/// A received line waits at most this long for its authorized line (authentication_timeout is at most 600 s).
const MAX_AUTH_WAIT_SECS: i64 = 600;
/// Without pids, lines are paired by order; older received lines are assumed to belong to failed logins
/// (the default authentication_timeout is 60 s).
const ORDER_PAIRING_WINDOW_SECS: i64 = 60;
const MAX_ORDER_PENDING: usize = 1024;
/// Received lines waiting for their authorized line, by pid. A flood of failed logins (a scanner, a TLS 1.2 client
/// refused thousands of times) within [`MAX_AUTH_WAIT_SECS`] must not grow memory with it: past this many the
/// oldest quarter is forgotten. Their logins, if they do succeed later, are then unpaired (stderr: suspect).
const MAX_PID_PENDING: usize = 65_536;
/// The by-pid map is swept for expired entries when it reaches this size, then at twice what a sweep left.
const FIRST_SWEEP_AT: usize = 4096;
/// Reading that starts mid-file (or at a new file) may miss the `connection received` line of a login in
/// flight; an unpaired stderr line this close to the start is given the benefit of the doubt.
const START_GRACE_SECS: i64 = 10;
/// After a line broken by a name with a line break, this many following lines are what that client chose.
const TAINTED_LINES: u8 = 3;
/// Suspect lines kept until taken (they are counted beyond that).
const MAX_SUSPECTS: usize = 256;
/// HINT and DETAIL texts are the server's, but cut all the same: a line is no place for a novel.
const MAX_ANNOTATION: usize = 512;

/// Settings whose reload lines are kept: the TLS floor and ceiling, TLS itself, and what makes refusals visible.
fn setting_of_interest(name: &str) -> bool {
    name.starts_with("ssl") || name == "log_connections"
}

pub struct Pipeline {
    decoder: Decoder,
    splitter: Splitter,
    checks: Checks,
}

/// What the pipeline knows between records to decide whether a connection line is genuine.
#[derive(Default)]
struct Checks {
    pairer: Pairer,
    /// stderr: an accepted line waits for the next record, which could be its CONTEXT line (or, for a refusal,
    /// its DETAIL and HINT lines).
    held: Option<Held>,
    /// stderr: lines left that follow a broken line.
    tainted: u8,
    suspects: Vec<SuspectLine>,
    dropped_suspects: u64,
    news: LogNews,
}

/// What a line turned into.
enum Found {
    Connection(ConnectionEvent),
    Refused(RefusedAttempt),
    /// The pid that wrote it, for the CONTEXT check.
    Change(SettingChange, Option<i32>),
}

type Held = Found;

impl Found {
    fn pid(&self) -> Option<i32> {
        match self {
            Found::Connection(e) => Some(e.pid).filter(|p| *p != 0),
            Found::Refused(r) => Some(r.pid).filter(|p| *p != 0),
            Found::Change(_, pid) => *pid,
        }
    }

    fn into_suspect(self, reason: &str) -> SuspectLine {
        match self {
            Found::Connection(event) => suspect_from_event(event, reason),
            Found::Refused(r) => SuspectLine {
                at: r.at,
                pid: Some(r.pid).filter(|p| *p != 0),
                writer: None,
                claim: match &r.refusal {
                    Refusal::Handshake { reason } => format!("could not accept SSL connection: {reason}"),
                    Refusal::Hba(h) => format!("pg_hba.conf refusal for user \"{}\"", h.user),
                    Refusal::Pooler(p) => format!("pooler error: {}", p.reason),
                },
                reason: reason.to_string(),
            },
            Found::Change(c, pid) => SuspectLine {
                at: c.at,
                pid,
                writer: None,
                claim: format!("parameter \"{}\" changed", c.name),
                reason: reason.to_string(),
            },
        }
    }
}

enum Decoder {
    Stderr(StderrPrefix),
    Csv,
    Json,
    PgBouncer(super::pgbouncer::Reader),
}

impl Pipeline {
    pub fn new(format: &LogFormat) -> Pipeline {
        let decoder = match format {
            LogFormat::Stderr { prefix } => Decoder::Stderr(StderrPrefix::new(prefix)),
            LogFormat::Csv => Decoder::Csv,
            LogFormat::Json => Decoder::Json,
            LogFormat::PgBouncer => Decoder::PgBouncer(super::pgbouncer::Reader::default()),
        };
        Pipeline {
            splitter: Splitter::new(matches!(decoder, Decoder::Csv)),
            decoder,
            checks: Checks::default(),
        }
    }

    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<ConnectionEvent>) {
        let Pipeline {
            decoder,
            splitter,
            checks,
        } = self;
        splitter.push(bytes, |record| checks.handle(decoder, record, Record::Whole, out));
    }

    /// Everything available has been read: release a held line. The server writes a message and its CONTEXT
    /// line together, so once a read has reached the end of what is there, no CONTEXT line is still to come.
    pub fn settle(&mut self, out: &mut Vec<ConnectionEvent>) {
        if let Some(held) = self.checks.held.take() {
            self.checks.emit(held, out);
        }
        if let Decoder::PgBouncer(reader) = &mut self.decoder {
            let mut refused = Vec::new();
            reader.settle(&mut refused);
            for r in refused {
                self.checks.emit(Found::Refused(r), out);
            }
        }
    }

    /// Refused attempts and setting changes since the last call.
    pub fn take_news(&mut self) -> LogNews {
        std::mem::take(&mut self.checks.news)
    }

    /// The file is finished (rotated away): its unterminated last record, if any, is complete.
    pub fn end_of_file(&mut self, out: &mut Vec<ConnectionEvent>) {
        let Pipeline {
            decoder,
            splitter,
            checks,
        } = self;
        splitter.flush(|record| checks.handle(decoder, record, Record::CutByEndOfFile, out));
        self.settle(out);
    }

    /// Reading restarts at the beginning of a file: forget any partial record (pairing state stays).
    pub fn restart(&mut self) {
        self.splitter.clear();
        self.checks.pairer.started = None;
    }

    /// Reading starts at an arbitrary offset: skip to where the next record begins.
    pub fn resync(&mut self) {
        self.splitter.clear();
        self.splitter.skipping = true;
        self.checks.pairer.started = None;
    }

    /// Bytes fed but not yet part of a whole record (the partial last record), or `None` while skipping to the
    /// next record's start: the end of what was applied is the bytes fed minus these.
    pub fn pending_bytes(&self) -> Option<usize> {
        (!self.splitter.skipping).then_some(self.splitter.buf.len())
    }

    /// The time of the latest line read, if any.
    pub fn latest(&self) -> Option<DateTime<Utc>> {
        self.checks.pairer.latest
    }

    /// Lines refused since the last call, and how many more were refused beyond what is kept.
    pub fn take_suspects(&mut self) -> (Vec<SuspectLine>, u64) {
        let dropped = std::mem::take(&mut self.checks.dropped_suspects);
        (std::mem::take(&mut self.checks.suspects), dropped)
    }
}

/// How a record ended: at its newline, or cut short where a rotated file ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Record {
    Whole,
    CutByEndOfFile,
}

impl Checks {
    fn handle(&mut self, decoder: &mut Decoder, record: &[u8], how: Record, out: &mut Vec<ConnectionEvent>) {
        if let Decoder::PgBouncer(reader) = decoder {
            // Cut before decoding: a pooler's line is short, so a long one is no refusal and costs no copy.
            if record.len() <= super::pgbouncer::MAX_LINE {
                let mut refused = Vec::new();
                reader.line(&String::from_utf8_lossy(record), &mut refused);
                for r in refused {
                    self.emit(Found::Refused(r), out);
                }
            }
            return;
        }
        let decoder: &Decoder = decoder;
        let text = String::from_utf8_lossy(record);
        let stderr = match decoder {
            Decoder::Stderr(prefix) => Some(prefix),
            _ => None,
        };
        if let Some(prefix) = stderr {
            if let Some(mut held) = self.held.take() {
                if let Some((pid, kind, text)) = annotation_line(&text, prefix)
                    && pid.is_none_or(|p| Some(p) == held.pid())
                {
                    if let Found::Refused(r) = &mut held {
                        let text: String = text.chars().take(MAX_ANNOTATION).collect();
                        match kind {
                            Annotation::Hint => r.hint = Some(text),
                            Annotation::Detail => r.detail = Some(text),
                        }
                    }
                    // RAISE ... USING HINT writes its HINT before its CONTEXT: keep waiting.
                    self.held = Some(held);
                    return;
                }
                match context_line_pid(&text, prefix) {
                    Some(pid) if pid.is_none_or(|p| Some(p) == held.pid() || held.pid().is_none()) => {
                        self.suspect(
                            held.into_suspect("written by running code: a CONTEXT line (PL/pgSQL RAISE) follows it"),
                        );
                        return;
                    }
                    _ => self.emit(held, out),
                }
            }
            // A record cut short by rotation also lacks a severity; only a whole line is a broken one.
            if how == Record::Whole && is_broken_line(&text, prefix) {
                self.tainted = TAINTED_LINES;
                return;
            }
        }
        let tainted = stderr.is_some() && self.tainted > 0 && !text.starts_with('\t');
        if tainted {
            self.tainted -= 1;
        }
        let line = match decoder {
            Decoder::Stderr(prefix) => parse_stderr_line(&text, prefix),
            Decoder::Csv => parse_csv_record(&text),
            Decoder::Json => parse_json_line(&text),
            Decoder::PgBouncer(_) => return,
        };
        let Some(mut line) = line else { return };
        if tainted && line.doubt.is_none() {
            line.doubt = Some("it follows a log line broken by a user or database name with a line break".into());
        }
        match self.pairer.line(line, stderr.is_some()) {
            Some(Ok(found)) if stderr.is_some() => self.held = Some(found),
            Some(Ok(found)) => self.emit(found, out),
            Some(Err(suspect)) => self.suspect(suspect),
            None => {}
        }
    }

    fn emit(&mut self, found: Found, out: &mut Vec<ConnectionEvent>) {
        let news = match found {
            Found::Connection(event) => {
                out.push(event);
                return;
            }
            Found::Refused(r) => LogNews {
                refused: vec![r],
                ..LogNews::default()
            },
            Found::Change(c, _) => LogNews {
                changes: vec![c],
                ..LogNews::default()
            },
        };
        self.news.extend(news);
    }

    fn suspect(&mut self, suspect: SuspectLine) {
        if self.suspects.len() < MAX_SUSPECTS {
            self.suspects.push(suspect);
        } else {
            self.dropped_suspects += 1;
        }
    }
}

fn claim_of(message: &ConnectionMessage) -> String {
    match message {
        ConnectionMessage::Received { host, .. } => format!("connection received: host={host}"),
        ConnectionMessage::Authorized(a) => {
            let mut claim = format!("connection authorized: user={}", a.user);
            if let Some(db) = &a.database {
                claim.push_str(&format!(" database={db}"));
            }
            if let Some(app) = &a.application_name {
                claim.push_str(&format!(" application_name={app}"));
            }
            claim
        }
        ConnectionMessage::HandshakeFailed { reason } => format!("could not accept SSL connection: {reason}"),
        ConnectionMessage::HbaRefused(h) => format!(
            "pg_hba.conf refusal for host \"{}\", user \"{}\", database \"{}\"",
            h.host,
            h.user,
            h.database.as_deref().unwrap_or_default()
        ),
        ConnectionMessage::Authenticated { identity, .. } => {
            format!("connection authenticated: identity=\"{identity}\"")
        }
        ConnectionMessage::ParameterChanged { name, value } => {
            format!(
                "parameter \"{name}\" changed to \"{}\"",
                value.as_deref().unwrap_or_default()
            )
        }
    }
}

fn suspect_from_event(event: ConnectionEvent, reason: &str) -> SuspectLine {
    let mut claim = format!("connection authorized: user={} database={}", event.user, event.database);
    if let Some(app) = &event.application_name {
        claim.push_str(&format!(" application_name={app}"));
    }
    SuspectLine {
        at: event.at,
        pid: Some(event.pid).filter(|p| *p != 0),
        writer: None,
        claim,
        reason: reason.to_string(),
    }
}

struct Splitter {
    buf: Vec<u8>,
    /// How much of `buf` has been scanned already (its quote state is in `in_quotes`).
    scanned: usize,
    in_quotes: bool,
    csv: bool,
    skipping: bool,
}

impl Splitter {
    fn new(csv: bool) -> Splitter {
        Splitter {
            buf: Vec::new(),
            scanned: 0,
            in_quotes: false,
            csv,
            skipping: false,
        }
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.scanned = 0;
        self.in_quotes = false;
        self.skipping = false;
    }

    fn push(&mut self, bytes: &[u8], mut on_record: impl FnMut(&[u8])) {
        self.buf.extend_from_slice(bytes);
        if self.skipping && !self.skip_to_record_start() {
            return;
        }
        let buf = std::mem::take(&mut self.buf);
        let mut start = 0;
        let mut i = self.scanned;
        if self.csv {
            // A newline inside a quoted field belongs to the field; "" toggles twice and so changes nothing.
            while i < buf.len() {
                match buf[i] {
                    b'"' => self.in_quotes = !self.in_quotes,
                    b'\n' if !self.in_quotes => {
                        on_record(&buf[start..i]);
                        start = i + 1;
                    }
                    _ => {}
                }
                i += 1;
            }
        } else {
            while let Some(nl) = buf[i..].iter().position(|b| *b == b'\n') {
                on_record(&buf[start..i + nl]);
                i += nl + 1;
                start = i;
            }
        }
        self.buf = buf;
        self.buf.drain(..start);
        self.scanned = self.buf.len();
        if self.buf.len() > MAX_PARTIAL {
            self.clear();
            self.skipping = true;
        }
    }

    fn flush(&mut self, mut on_record: impl FnMut(&[u8])) {
        if !self.skipping && !self.buf.is_empty() {
            on_record(&self.buf);
        }
        self.clear();
    }

    /// Drop bytes up to the start of the next record; false if it is not in the buffer yet.
    fn skip_to_record_start(&mut self) -> bool {
        // In csvlog a newline can sit inside a quoted field, so also insist that the next line starts
        // like a record ("2026-11-27 ..."); a stray match is possible but only at start-up.
        let need = if self.csv { 11 } else { 0 };
        let mut from = 0;
        while let Some(nl) = self.buf[from..].iter().position(|b| *b == b'\n') {
            let next = from + nl + 1;
            if self.buf.len() < next + need {
                self.buf.drain(..from);
                return false;
            }
            if !self.csv || looks_like_date(&self.buf[next..next + need]) {
                self.buf.drain(..next);
                self.scanned = 0;
                self.in_quotes = false;
                self.skipping = false;
                return true;
            }
            from = next;
        }
        self.buf.clear();
        false
    }
}

fn looks_like_date(bytes: &[u8]) -> bool {
    bytes.len() == 11
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            10 => *b == b' ',
            _ => b.is_ascii_digit(),
        })
}

struct Pending {
    at: DateTime<Utc>,
    host: String,
    port: Option<u16>,
    /// From the pid's `connection authenticated` line, which comes between received and authorized.
    hba_line: Option<u32>,
}

#[derive(Default)]
struct Pairer {
    by_pid: HashMap<i32, Pending>,
    /// Size at which [`Pairer::prune`] sweeps next; doubling keeps a busy map from being swept on every insert.
    next_sweep: usize,
    by_order: VecDeque<Pending>,
    latest: Option<DateTime<Utc>>,
    /// Time of the first line since reading (re)started, for [`START_GRACE_SECS`].
    started: Option<DateTime<Utc>>,
}

impl Pairer {
    /// An event, a suspect line, or nothing (a received line waits for its authorized line).
    /// `unstructured`: the stderr format, where only the pid's received line vouches for an authorized line.
    fn line(&mut self, line: LogLine, unstructured: bool) -> Option<Result<Found, SuspectLine>> {
        self.latest = Some(self.latest.map_or(line.at, |latest| latest.max(line.at)));
        let started = *self.started.get_or_insert(line.at);
        let suspect = |line: &LogLine, reason: String| SuspectLine {
            at: line.at,
            pid: line.pid,
            writer: line.writer.clone(),
            claim: claim_of(&line.message),
            reason,
        };
        if let Some(reason) = &line.doubt {
            return Some(Err(suspect(&line, reason.clone())));
        }
        let names = match &line.message {
            ConnectionMessage::Authorized(a) => vec![Some(&a.user), a.database.as_ref(), a.application_name.as_ref()],
            ConnectionMessage::HbaRefused(h) => vec![Some(&h.user), h.database.as_ref(), Some(&h.host)],
            _ => Vec::new(),
        };
        if names.into_iter().flatten().any(|n| crate::safe::has_unsafe(n)) {
            return Some(Err(suspect(
                &line,
                "a name in it holds control characters (line breaks, escape sequences)".into(),
            )));
        }
        // A start-up writes "received" before anything else; a running session that writes a start-up line has
        // long used its pid's received line.
        let unvouched = |pending: &Option<Pending>, line: &LogLine| {
            (unstructured && pending.is_none() && line.at - started > Duration::seconds(START_GRACE_SECS)).then(|| {
                match line.pid {
                    Some(pid) => format!("pid {pid} wrote no \"connection received\" line before it"),
                    None => "no \"connection received\" line waits for it".to_string(),
                }
            })
        };
        match line.message {
            ConnectionMessage::Received { host, port } => {
                let pending = Pending {
                    at: line.at,
                    host,
                    port,
                    hba_line: None,
                };
                match line.pid {
                    Some(pid) => {
                        self.by_pid.insert(pid, pending);
                        self.prune();
                    }
                    None => {
                        if self.by_order.len() >= MAX_ORDER_PENDING {
                            self.by_order.pop_front();
                        }
                        self.by_order.push_back(pending);
                    }
                }
                None
            }
            ConnectionMessage::Authenticated { hba_line, .. } => {
                // Only noted on the pid's pending start-up; without a pid there is nothing to tie it to.
                if let Some(pending) = line.pid.and_then(|pid| self.by_pid.get_mut(&pid)) {
                    pending.hba_line = hba_line;
                }
                None
            }
            ConnectionMessage::ParameterChanged { name, value } => {
                let pid = line.pid;
                setting_of_interest(&name).then_some(Ok(Found::Change(
                    SettingChange {
                        at: line.at,
                        name,
                        value,
                    },
                    pid,
                )))
            }
            ConnectionMessage::HandshakeFailed { .. } | ConnectionMessage::HbaRefused(_) => {
                let pending = self.take_pending(&line);
                if let Some(reason) = unvouched(&pending, &line) {
                    return Some(Err(suspect(&line, reason)));
                }
                let (host, port) = match pending {
                    Some(p) => (Some(p.host), p.port),
                    None => (line.remote_host.clone(), line.remote_port),
                };
                let local_socket = host.as_deref() == Some("[local]");
                let refusal = match line.message {
                    ConnectionMessage::HbaRefused(h) => Refusal::Hba(h),
                    ConnectionMessage::HandshakeFailed { reason } => Refusal::Handshake { reason },
                    _ => return None,
                };
                let cut = |t: Option<String>| t.map(|t| t.chars().take(MAX_ANNOTATION).collect());
                Some(Ok(Found::Refused(RefusedAttempt {
                    at: line.at,
                    pid: line.pid.unwrap_or(0),
                    client_addr: host.filter(|_| !local_socket),
                    client_port: port.filter(|_| !local_socket),
                    local_socket,
                    refusal,
                    hint: cut(line.hint),
                    detail: cut(line.detail),
                })))
            }
            ConnectionMessage::Authorized(ref authorized) => {
                let pending = self.take_pending(&line);
                if let Some(reason) = unvouched(&pending, &line) {
                    return Some(Err(suspect(&line, reason)));
                }
                let authorized = authorized.clone();
                let hba_line = pending.as_ref().and_then(|p| p.hba_line);
                let (host, port) = match pending {
                    Some(p) => (Some(p.host), p.port),
                    None => (line.remote_host, line.remote_port),
                };
                let local_socket = host.as_deref() == Some("[local]");
                Some(Ok(Found::Connection(ConnectionEvent {
                    client_port: port.filter(|_| !local_socket),
                    at: line.at,
                    pid: line.pid.unwrap_or(0),
                    user: authorized.user,
                    database: authorized.database.or(line.database).unwrap_or_default(),
                    application_name: authorized.application_name,
                    client_addr: host.filter(|_| !local_socket),
                    local_socket,
                    tls: authorized.tls,
                    gss_encrypted: authorized.gss_encrypted,
                    replication: authorized.replication,
                    hba_line,
                })))
            }
        }
    }

    /// The pid's `connection received` line (or, without pids, the oldest recent one).
    fn take_pending(&mut self, line: &LogLine) -> Option<Pending> {
        match line.pid {
            Some(pid) => self.by_pid.remove(&pid),
            None => self.next_in_order(line.at),
        }
    }

    fn next_in_order(&mut self, at: DateTime<Utc>) -> Option<Pending> {
        while let Some(front) = self.by_order.pop_front() {
            if at - front.at <= Duration::seconds(ORDER_PAIRING_WINDOW_SECS) {
                return Some(front);
            }
        }
        None
    }

    /// Received lines of logins that failed never get their authorized line; forget them after the longest
    /// authentication_timeout, and the oldest of them sooner when there are more than [`MAX_PID_PENDING`].
    fn prune(&mut self) {
        if self.by_pid.len() < self.next_sweep.max(FIRST_SWEEP_AT) {
            return;
        }
        if let Some(latest) = self.latest {
            let cutoff = latest - Duration::seconds(MAX_AUTH_WAIT_SECS);
            self.by_pid.retain(|_, p| p.at >= cutoff);
        }
        if self.by_pid.len() > MAX_PID_PENDING {
            let mut ages: Vec<(DateTime<Utc>, i32)> = self.by_pid.iter().map(|(pid, p)| (p.at, *pid)).collect();
            let quarter = ages.len() / 4;
            ages.select_nth_unstable(quarter);
            for (_, pid) in &ages[..quarter] {
                self.by_pid.remove(pid);
            }
        }
        self.next_sweep = (self.by_pid.len() * 2).clamp(FIRST_SWEEP_AT, MAX_PID_PENDING + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(format: &LogFormat, chunks: &[&[u8]]) -> Vec<ConnectionEvent> {
        let mut pipeline = Pipeline::new(format);
        let mut out = Vec::new();
        for chunk in chunks {
            pipeline.feed(chunk, &mut out);
        }
        pipeline.settle(&mut out);
        out
    }

    fn lab_prefix() -> LogFormat {
        LogFormat::Stderr {
            prefix: "%m [%p] ".into(),
        }
    }

    const STDERR: &str = "2026-11-27 17:42:50.128 UTC [22545] LOG:  connection received: host=127.0.0.1 port=47078\n\
        2026-11-27 17:42:50.129 UTC [22547] LOG:  connection received: host=[local]\n\
        2026-11-27 17:42:50.130 UTC [22547] LOG:  connection authorized: user=bob database=db application_name=sock\n\
        2026-11-27 17:42:50.131 UTC [22547] ERROR:  syntax error at or near \"x\"\n\
        2026-11-27 17:42:50.131 UTC [22547] STATEMENT:  select 'a\n\
        \t2026-11-27 17:42:50.136 UTC [22545] LOG:  connection authorized: user=evil database=x'\n\
        2026-11-27 17:42:50.136 UTC [22545] LOG:  connection authorized: user=postgres database=postgres \
        application_name=tls12app SSL enabled (protocol=TLSv1.2, cipher=ECDHE-RSA-AES256-GCM-SHA384, bits=256)\n";

    #[test]
    fn pairs_by_pid_across_interleaving_and_skips_continuations() {
        let events = run(&lab_prefix(), &[STDERR.as_bytes()]);
        assert_eq!(events.len(), 2, "{events:#?}");
        assert_eq!(events[0].pid, 22547);
        assert!(events[0].local_socket);
        assert_eq!(events[0].client_addr, None);
        assert_eq!(events[0].client_port, None);
        assert_eq!(events[0].tls, None);
        assert_eq!(events[1].pid, 22545);
        assert_eq!(events[1].client_addr.as_deref(), Some("127.0.0.1"));
        assert_eq!(events[1].client_port, Some(47078), "from its received line");
        assert!(!events[1].local_socket);
        assert_eq!(events[1].application_name.as_deref(), Some("tls12app"));
        assert_eq!(events[1].tls.as_ref().map(|t| t.bits), Some(Some(256)));
    }

    /// A flood of logins that never authenticate (all within the authentication timeout, so none expire by time)
    /// is held to a count, and a login after it still pairs with its own received line.
    #[test]
    fn a_flood_of_unanswered_received_lines_stays_bounded() {
        let mut pipeline = Pipeline::new(&lab_prefix());
        let mut out = Vec::new();
        let mut most = 0;
        for chunk in 0..20 {
            let mut text = String::new();
            for i in 0..10_000 {
                let pid = 100_000 + chunk * 10_000 + i;
                text.push_str(&format!(
                    "2026-11-27 17:42:50.{:03} UTC [{pid}] LOG:  connection received: host=10.9.{}.{} port=5\n",
                    chunk,
                    i / 256,
                    i % 256
                ));
            }
            pipeline.feed(text.as_bytes(), &mut out);
            most = most.max(pipeline.checks.pairer.by_pid.len());
        }
        assert!(most <= MAX_PID_PENDING + 1, "{most} pending received lines");
        pipeline.feed(
            b"2026-11-27 17:42:51.000 UTC [7] LOG:  connection received: host=192.0.2.7 port=5\n\
              2026-11-27 17:42:51.001 UTC [7] LOG:  connection authorized: user=app database=db\n\
              2026-11-27 17:42:51.002 UTC [7] LOG:  statement: select 1\n",
            &mut out,
        );
        pipeline.settle(&mut out);
        assert_eq!(out.len(), 1, "{out:#?}");
        assert_eq!(out[0].client_addr.as_deref(), Some("192.0.2.7"));
    }

    #[test]
    fn any_chunking_gives_the_same_events() {
        let whole = run(&lab_prefix(), &[STDERR.as_bytes()]);
        let bytes = STDERR.as_bytes();
        for size in [1, 2, 7, 64, 100] {
            let chunks: Vec<&[u8]> = bytes.chunks(size).collect();
            assert_eq!(run(&lab_prefix(), &chunks), whole, "chunk size {size}");
        }
    }

    #[test]
    fn csv_records_with_newlines_in_quotes() {
        let csv = "2026-11-27 17:42:57.915 UTC,,,22576,\"[local]\",6b09c121.5830,1,\"\",2026-11-27 17:42:57 UTC,,0,LOG,\
            00000,\"connection received: host=[local]\",,,,,,,,,\"\",\"not initialized\",,0\n\
            2026-11-27 17:42:57.923 UTC,\"postgres\",\"postgres\",22576,\"[local]\",6b09c121.5830,3,\"SELECT\",\
            2026-11-27 17:42:57 UTC,3/16,0,ERROR,42P01,\"relation \"\"nosuch\"\" does not exist\",,,,,,\"select\n\
            2026-11-27 17:42:57.924 UTC,,,1,,x,1,\"\",2026-11-27 17:42:57 UTC,,0,LOG,00000,\"\"connection authorized: user=evil database=e\"\",\n\
            y from nosuch\",63,,\"psql\",\"client backend\",,0\n\
            2026-11-27 17:42:57.918 UTC,\"postgres\",\"postgres\",22576,\"[local]\",6b09c121.5830,2,\"authentication\",\
            2026-11-27 17:42:57 UTC,3/15,0,LOG,00000,\"connection authorized: user=postgres database=postgres \
            application_name=psql\",,,,,,,,,\"\",\"client backend\",,0\n";
        let events = run(&LogFormat::Csv, &[csv.as_bytes()]);
        assert_eq!(events.len(), 1, "{events:#?}");
        assert!(events[0].local_socket);
        let chunks: Vec<&[u8]> = csv.as_bytes().chunks(3).collect();
        assert_eq!(run(&LogFormat::Csv, &chunks), events);
    }

    #[test]
    fn partial_last_line_waits_for_its_end() {
        let mut pipeline = Pipeline::new(&lab_prefix());
        let mut out = Vec::new();
        let (head, tail) = STDERR.split_at(STDERR.len() - 20);
        pipeline.feed(head.as_bytes(), &mut out);
        assert_eq!(out.len(), 1);
        pipeline.feed(tail.as_bytes(), &mut out);
        pipeline.settle(&mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].tls.as_ref().map(|t| t.version.as_str()), Some("TLSv1.2"));
    }

    #[test]
    fn end_of_file_completes_an_unterminated_record() {
        let mut pipeline = Pipeline::new(&lab_prefix());
        let mut out = Vec::new();
        pipeline.feed(STDERR.trim_end().as_bytes(), &mut out);
        assert_eq!(out.len(), 1);
        pipeline.end_of_file(&mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn resync_skips_the_torn_first_record() {
        let mut pipeline = Pipeline::new(&lab_prefix());
        pipeline.resync();
        let mut out = Vec::new();
        // Start in the middle of the authorized line of pid 22547: that one is lost, the rest is read.
        let at = STDERR.find("user=bob").unwrap();
        pipeline.feed(&STDERR.as_bytes()[at..], &mut out);
        pipeline.settle(&mut out);
        assert_eq!(out.len(), 1, "unpaired, but within the grace after starting mid-file");
        assert_eq!(out[0].pid, 22545);
        // Without the received line the address is unknown.
        assert_eq!(out[0].client_addr, None);

        let mut csv = Pipeline::new(&LogFormat::Csv);
        csv.resync();
        let mut out = Vec::new();
        csv.feed(b"ment\"\",\nnot a record\n2026-11-27 17:42:57.918 UTC,\"u\",\"d\",5,\"[local]\",s,2,\"authentication\",x,3/15,0,LOG,00000,\"connection authorized: user=u database=d\",,\n", &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].pid, 5);
        assert!(
            out[0].local_socket,
            "csv's connection_from stands in for the missing received line"
        );
    }

    #[test]
    fn without_pids_pairs_by_order_and_forgets_stale_receipts() {
        let format = LogFormat::Stderr { prefix: "%m ".into() };
        let text = "2026-01-01 00:00:00.000 UTC LOG:  connection received: host=10.0.0.1 port=1\n\
            2026-01-01 00:05:00.000 UTC LOG:  connection received: host=10.0.0.2 port=2\n\
            2026-01-01 00:05:00.100 UTC LOG:  connection authorized: user=a database=b\n\
            2026-01-01 00:05:01.000 UTC LOG:  connection authorized: user=c database=d\n";
        let mut pipeline = Pipeline::new(&format);
        let mut events = Vec::new();
        pipeline.feed(text.as_bytes(), &mut events);
        pipeline.settle(&mut events);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].client_addr.as_deref(), Some("10.0.0.2"));
        assert_eq!(events[0].pid, 0);
        // Five minutes in, an authorized line with no received line left is no start-up.
        let (suspects, _) = pipeline.take_suspects();
        assert_eq!(suspects.len(), 1);
        assert!(suspects[0].claim.contains("user=c"));
    }

    /// What PostgreSQL 15 wrote (prefix `%m [%p] %q%u@%d `) for a RAISE LOG in a DO block, and for a failed login
    /// whose user name held a line break and a fake line.
    const FORGED_STDERR: &str = "\
2026-12-02 17:50:20.246 UTC [20690] [unknown]@[unknown] LOG:  connection received: host=127.0.0.1 port=38498
2026-12-02 17:50:20.247 UTC [20690] mallory@postgres LOG:  connection authorized: user=mallory database=postgres application_name=psql
2026-12-02 17:50:20.254 UTC [20690] mallory@postgres LOG:  connection authorized: user=payroll database=prod application_name=payroll-batch SSL enabled (protocol=TLSv1, cipher=AES256-SHA, bits=256)
2026-12-02 17:50:20.254 UTC [20690] mallory@postgres CONTEXT:  PL/pgSQL function inline_code_block line 1 at RAISE
2026-12-02 17:50:20.334 UTC [20694] [unknown]@[unknown] LOG:  connection received: host=127.0.0.1 port=38500
2026-12-02 17:50:20.335 UTC [20694] x
2026-12-02 17:50:20.335 UTC [20694] payroll@prod LOG:  connection authorized: user=payroll database=prod@postgres LOG:  connection authorized: user=x
\t2026-12-02 17:50:20.335 UTC [20694] payroll@prod LOG:  connection authorized: user=payroll database=prod database=postgres application_name=psql
";

    #[test]
    fn forged_stderr_lines_are_refused_and_named() {
        let prefix = LogFormat::Stderr {
            prefix: "%m [%p] %q%u@%d ".into(),
        };
        for size in [FORGED_STDERR.len(), 1, 7, 100] {
            let mut pipeline = Pipeline::new(&prefix);
            let mut events = Vec::new();
            for chunk in FORGED_STDERR.as_bytes().chunks(size) {
                pipeline.feed(chunk, &mut events);
            }
            pipeline.settle(&mut events);
            let users: Vec<&str> = events.iter().map(|e| e.user.as_str()).collect();
            assert_eq!(users, vec!["mallory"], "chunks of {size}");
            let (suspects, _) = pipeline.take_suspects();
            assert_eq!(suspects.len(), 2, "{suspects:#?}");
            assert_eq!(suspects[0].pid, Some(20690));
            assert_eq!(suspects[0].writer.as_deref(), Some("mallory"));
            // Caught twice over: its prefix disagrees, and it follows a line broken inside the prefix.
            assert_eq!(suspects[1].pid, Some(20694), "{}", suspects[1].reason);
        }
        // The heuristic alone: a line after a broken one is refused even when its prefix agrees.
        let text = FORGED_STDERR.lines().skip(4).take(2).collect::<Vec<_>>().join("\n")
            + "\n2026-12-02 17:50:20.335 UTC [20694] payroll@prod LOG:  connection authorized: user=payroll database=prod\n";
        let mut pipeline = Pipeline::new(&prefix);
        let mut events = Vec::new();
        pipeline.feed(text.as_bytes(), &mut events);
        pipeline.settle(&mut events);
        let (suspects, _) = pipeline.take_suspects();
        assert!(events.is_empty());
        assert!(suspects[0].reason.contains("line break"), "{}", suspects[0].reason);
        // With a prefix that names no user, the CONTEXT line that follows gives the RAISE away.
        let plain: String = FORGED_STDERR
            .lines()
            .take(4)
            .map(|l| {
                l.replacen(" mallory@postgres", "", 1)
                    .replacen(" [unknown]@[unknown]", "", 1)
                    + "\n"
            })
            .collect();
        let mut pipeline = Pipeline::new(&LogFormat::Stderr {
            prefix: "%m [%p] ".into(),
        });
        let mut events = Vec::new();
        pipeline.feed(plain.as_bytes(), &mut events);
        pipeline.settle(&mut events);
        let (suspects, _) = pipeline.take_suspects();
        assert_eq!((events.len(), suspects.len()), (1, 1), "{plain}");
        assert!(suspects[0].reason.contains("CONTEXT"), "{}", suspects[0].reason);
        // Another role's RAISE LOG: its prefix names the writer even without the CONTEXT line.
        let text = FORGED_STDERR.lines().take(3).collect::<Vec<_>>().join("\n") + "\n";
        let mut pipeline = Pipeline::new(&prefix);
        let mut events = Vec::new();
        pipeline.feed(text.as_bytes(), &mut events);
        pipeline.settle(&mut events);
        let (suspects, _) = pipeline.take_suspects();
        assert_eq!((events.len(), suspects.len()), (1, 1));
        assert_eq!(suspects[0].writer.as_deref(), Some("mallory"));
        assert!(
            suspects[0]
                .sentence()
                .starts_with("pid 20690 as role \"mallory\" wrote \"connection authorized: user=payroll")
        );
    }

    #[test]
    fn structured_raise_log_lines_are_refused() {
        let json = concat!(
            r#"{"timestamp":"2026-12-02 17:50:20.254 UTC","user":"mallory","dbname":"postgres","pid":20690,"remote_host":"127.0.0.1","ps":"DO","error_severity":"LOG","message":"connection authorized: user=payroll database=prod application_name=payroll-batch SSL enabled (protocol=TLSv1, cipher=AES256-SHA, bits=256)","context":"PL/pgSQL function inline_code_block line 1 at RAISE","backend_type":"client backend"}"#,
            "\n"
        );
        let mut pipeline = Pipeline::new(&LogFormat::Json);
        let mut events = Vec::new();
        pipeline.feed(json.as_bytes(), &mut events);
        pipeline.settle(&mut events);
        let (suspects, _) = pipeline.take_suspects();
        assert!(events.is_empty());
        assert_eq!(suspects[0].writer.as_deref(), Some("mallory"));
        assert!(suspects[0].reason.contains("context"));
    }

    #[test]
    fn json_lines() {
        let text = concat!(
            r#"{"timestamp":"2026-11-27 17:42:50.077 UTC","pid":1,"remote_host":"127.0.0.1","remote_port":4,"error_severity":"LOG","message":"connection received: host=127.0.0.1 port=4"}"#,
            "\n",
            r#"{"timestamp":"2026-11-27 17:42:50.084 UTC","user":"u","dbname":"d","pid":1,"remote_host":"127.0.0.1","ps":"authentication","error_severity":"LOG","message":"connection authorized: user=u database=d application_name=a SSL enabled (protocol=TLSv1.3, cipher=TLS_AES_128_GCM_SHA256, bits=128)","backend_type":"client backend"}"#,
            "\n"
        );
        let events = run(&LogFormat::Json, &[text.as_bytes()]);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].client_addr.as_deref(), Some("127.0.0.1"));
        assert_eq!(events[0].tls.as_ref().and_then(|t| t.bits), Some(128));
    }

    /// What PostgreSQL 13.23 and 18.4 wrote (prefix `%m [%p] %q%u@%d `) after ALTER SYSTEM SET
    /// ssl_min_protocol_version = 'TLSv1.3' and a reload: a TLS 1.2 client refused, a plain client refused by a
    /// `hostnossl ... reject` line, a replication attempt with no pg_hba.conf line, and (18) an authenticated line.
    const REFUSALS_STDERR: &str = "\
2026-12-03 06:02:26.561 UTC [29092] LOG:  parameter \"ssl_min_protocol_version\" changed to \"TLSv1.3\"
2026-12-03 06:02:27.679 UTC [29145] [unknown]@[unknown] LOG:  connection received: host=127.0.0.1 port=40296
2026-12-03 06:02:27.684 UTC [29145] [unknown]@[unknown] LOG:  could not accept SSL connection: unsupported protocol
2026-12-03 06:02:27.684 UTC [29145] [unknown]@[unknown] HINT:  This may indicate that the client does not support any SSL protocol version between TLSv1.3 and TLSv1.3.
2026-12-03 06:02:27.786 UTC [29150] [unknown]@[unknown] LOG:  connection received: host=127.0.0.1 port=40302
2026-12-03 06:02:27.787 UTC [29150] postgres@postgres LOG:  connection authenticated: user=\"postgres\" method=trust (/tmp/i15exp/pg18/data/pg_hba.conf:3)
2026-12-03 06:02:27.787 UTC [29150] postgres@postgres LOG:  connection authorized: user=postgres database=postgres application_name=psql
2026-12-03 06:02:27.913 UTC [29158] [unknown]@[unknown] LOG:  connection received: host=127.0.0.1 port=40316
2026-12-03 06:02:27.914 UTC [29158] tlsonly@postgres FATAL:  pg_hba.conf rejects connection for host \"127.0.0.1\", user \"tlsonly\", database \"postgres\", no encryption
2026-12-03 06:02:20.923 UTC [28907] [unknown]@[unknown] LOG:  connection received: host=127.0.0.1 port=37562
2026-12-03 06:02:20.924 UTC [28907] postgres@[unknown] FATAL:  no pg_hba.conf entry for replication connection from host \"127.0.0.1\", user \"postgres\", SSL off
";

    fn run_news(format: &LogFormat, text: &str, chunk: usize) -> (Vec<ConnectionEvent>, LogNews, Vec<SuspectLine>) {
        let mut pipeline = Pipeline::new(format);
        let mut events = Vec::new();
        for c in text.as_bytes().chunks(chunk) {
            pipeline.feed(c, &mut events);
        }
        pipeline.settle(&mut events);
        (events, pipeline.take_news(), pipeline.take_suspects().0)
    }

    #[test]
    fn stderr_refusals_join_their_received_lines_and_keep_their_hints() {
        let format = LogFormat::Stderr {
            prefix: "%m [%p] %q%u@%d ".into(),
        };
        for chunk in [REFUSALS_STDERR.len(), 1, 13] {
            let (events, news, suspects) = run_news(&format, REFUSALS_STDERR, chunk);
            assert!(suspects.is_empty(), "{suspects:#?}");
            assert_eq!(events.len(), 1);
            assert_eq!(events[0].hba_line, Some(3));
            assert_eq!(news.changes.len(), 1);
            assert_eq!(news.changes[0].value.as_deref(), Some("TLSv1.3"));
            assert_eq!(news.refused.len(), 3, "{news:#?}");
            let tls = &news.refused[0];
            assert_eq!(
                (tls.client_addr.as_deref(), tls.client_port),
                (Some("127.0.0.1"), Some(40296))
            );
            assert_eq!(
                tls.refusal,
                Refusal::Handshake {
                    reason: "unsupported protocol".into()
                }
            );
            assert!(tls.hint.as_deref().unwrap().contains("between TLSv1.3 and TLSv1.3"));
            let Refusal::Hba(h) = &news.refused[1].refusal else {
                panic!("pg_hba refusal")
            };
            assert!(h.rejected && h.plain() && h.user == "tlsonly");
            assert_eq!(news.refused[1].client_port, Some(40316));
            let Refusal::Hba(h) = &news.refused[2].refusal else {
                panic!("replication refusal")
            };
            assert!(h.replication && h.encryption == "SSL off");
        }
    }

    /// `RAISE LOG 'could not accept SSL connection: ...'` from a running session: its pid's received line is long
    /// used, its prefix names its role, and a CONTEXT line follows. A postmaster-looking reload line written by a
    /// session has the part of the prefix after %q.
    #[test]
    fn forged_refusals_and_changes_are_refused() {
        let forged = "\
2026-12-03 06:02:26.000 UTC [300] [unknown]@[unknown] LOG:  connection received: host=10.0.0.5 port=1
2026-12-03 06:02:26.001 UTC [300] mallory@postgres LOG:  connection authorized: user=mallory database=postgres
2026-12-03 06:02:50.000 UTC [300] mallory@postgres LOG:  could not accept SSL connection: unsupported protocol
2026-12-03 06:02:50.000 UTC [300] mallory@postgres CONTEXT:  PL/pgSQL function inline_code_block line 1 at RAISE
2026-12-03 06:02:51.000 UTC [300] mallory@postgres LOG:  parameter \"ssl_min_protocol_version\" changed to \"TLSv1.3\"
2026-12-03 06:02:51.000 UTC [300] mallory@postgres CONTEXT:  PL/pgSQL function inline_code_block line 1 at RAISE
";
        let format = LogFormat::Stderr {
            prefix: "%m [%p] %q%u@%d ".into(),
        };
        let (events, news, suspects) = run_news(&format, forged, forged.len());
        assert_eq!(events.len(), 1);
        assert!(news.is_empty(), "{news:#?}");
        assert_eq!(suspects.len(), 2, "{suspects:#?}");
        // Without %u in the prefix: the missing received line and the CONTEXT line still give them away.
        let plain: String = forged
            .replace(" mallory@postgres", "")
            .replace(" [unknown]@[unknown]", "");
        let (_, news, suspects) = run_news(
            &LogFormat::Stderr {
                prefix: "%m [%p] ".into(),
            },
            &plain,
            7,
        );
        assert!(news.is_empty(), "{news:#?}");
        assert_eq!(suspects.len(), 2, "{suspects:#?}");

        let json = concat!(
            r#"{"timestamp":"2026-12-03 06:02:50.000 UTC","user":"mallory","dbname":"postgres","pid":300,"remote_host":"10.0.0.5","ps":"DO","error_severity":"LOG","message":"could not accept SSL connection: unsupported protocol","context":"PL/pgSQL function inline_code_block line 1 at RAISE","backend_type":"client backend"}"#,
            "\n",
            r#"{"timestamp":"2026-12-03 06:02:50.000 UTC","pid":301,"remote_host":"10.0.0.5","ps":"","error_severity":"LOG","message":"could not accept SSL connection: unsupported protocol","backend_type":"client backend"}"#,
            "\n",
            r#"{"timestamp":"2026-12-03 06:02:51.000 UTC","user":"mallory","pid":300,"error_severity":"LOG","message":"parameter \"ssl_min_protocol_version\" changed to \"TLSv1.3\"","backend_type":"client backend"}"#,
            "\n"
        );
        let (_, news, suspects) = run_news(&LogFormat::Json, json, json.len());
        assert!(news.is_empty(), "{news:#?}");
        assert_eq!(suspects.len(), 3);
    }

    #[test]
    fn csv_and_json_refusals_as_pg18_wrote_them() {
        let csv = "2026-12-03 06:02:27.684 UTC,,,29145,\"127.0.0.1:40296\",6b1105f3.71d9,2,\"\",2026-12-03 06:02:27 UTC,,0,LOG,08P01,\"could not accept SSL connection: unsupported protocol\",,\"This may indicate that the client does not support any SSL protocol version between TLSv1.3 and TLSv1.3.\",,,,,,,\"\",\"not initialized\",,0\n\
            2026-12-03 06:02:26.561 UTC,,,29092,,6b1105f2.71a4,6,,2026-12-03 06:02:26 UTC,,0,LOG,00000,\"parameter \"\"ssl_min_protocol_version\"\" changed to \"\"TLSv1.3\"\"\",,,,,,,,,\"\",\"postmaster\",,0\n\
            2026-12-03 06:02:27.914 UTC,\"tlsonly\",\"postgres\",29158,\"127.0.0.1:40316\",6b1105f3.71e6,2,\"authentication\",2026-12-03 06:02:27 UTC,2/1,0,FATAL,28000,\"pg_hba.conf rejects connection for host \"\"127.0.0.1\"\", user \"\"tlsonly\"\", database \"\"postgres\"\", no encryption\",,,,,,,,,\"\",\"client backend\",,0\n";
        let (_, news, suspects) = run_news(&LogFormat::Csv, csv, 5);
        assert!(suspects.is_empty(), "{suspects:#?}");
        assert_eq!((news.refused.len(), news.changes.len()), (2, 1));
        assert_eq!(news.refused[0].client_port, Some(40296));
        assert!(news.refused[0].hint.is_some());
        let json = concat!(
            r#"{"timestamp":"2026-12-03 06:02:27.684 UTC","pid":29145,"remote_host":"127.0.0.1","remote_port":40296,"session_id":"6b1105f3.71d9","line_num":2,"ps":"","session_start":"2026-12-03 06:02:27 UTC","txid":0,"error_severity":"LOG","state_code":"08P01","message":"could not accept SSL connection: unsupported protocol","hint":"This may indicate that the client does not support any SSL protocol version between TLSv1.3 and TLSv1.3.","backend_type":"not initialized","query_id":0}"#,
            "\n",
            r#"{"timestamp":"2026-12-03 06:02:26.561 UTC","pid":29092,"session_id":"6b1105f2.71a4","line_num":6,"session_start":"2026-12-03 06:02:26 UTC","txid":0,"error_severity":"LOG","message":"parameter \"ssl_min_protocol_version\" changed to \"TLSv1.3\"","backend_type":"postmaster","query_id":0}"#,
            "\n",
            r#"{"timestamp":"2026-12-03 06:02:28.043 UTC","user":"postgres","dbname":"","pid":29165,"remote_host":"127.0.0.1","remote_port":40318,"session_id":"6b1105f4.71ed","line_num":2,"ps":"authentication","session_start":"2026-12-03 06:02:28 UTC","vxid":"126/1","txid":0,"error_severity":"FATAL","state_code":"28000","message":"no pg_hba.conf entry for replication connection from host \"127.0.0.1\", user \"postgres\", no encryption","backend_type":"walsender","query_id":0}"#,
            "\n"
        );
        let (_, news, suspects) = run_news(&LogFormat::Json, json, json.len());
        assert!(suspects.is_empty(), "{suspects:#?}");
        assert_eq!((news.refused.len(), news.changes.len()), (2, 1));
        assert!(matches!(&news.refused[1].refusal, Refusal::Hba(h) if h.replication));
    }
}
