//! Bytes in, events out: shared by the file follower and the SQL reader.
//!
//! `Splitter` cuts a byte stream into records and keeps an unfinished tail for the next call; `Pairer` joins
//! each `connection authorized` line to the `connection received` line of the same backend.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Duration, Utc};

use super::csvlog::parse_csv_record;
use super::jsonlog::parse_json_line;
use super::message::ConnectionMessage;
use super::stderr::{StderrPrefix, parse_stderr_line};
use super::{ConnectionEvent, LogFormat, LogLine};

/// A record longer than this without an end is not a log record; drop it and look for the next one.
const MAX_PARTIAL: usize = 16 << 20;
/// A received line waits at most this long for its authorized line (authentication_timeout is at most 600 s).
const MAX_AUTH_WAIT_SECS: i64 = 600;
/// Without pids, lines are paired by order; older received lines are assumed to belong to failed logins
/// (the default authentication_timeout is 60 s).
const ORDER_PAIRING_WINDOW_SECS: i64 = 60;
const MAX_ORDER_PENDING: usize = 1024;

pub(crate) struct Pipeline {
    decoder: Decoder,
    splitter: Splitter,
    pairer: Pairer,
}

enum Decoder {
    Stderr(StderrPrefix),
    Csv,
    Json,
}

impl Pipeline {
    pub(crate) fn new(format: &LogFormat) -> Pipeline {
        let decoder = match format {
            LogFormat::Stderr { prefix } => Decoder::Stderr(StderrPrefix::new(prefix)),
            LogFormat::Csv => Decoder::Csv,
            LogFormat::Json => Decoder::Json,
        };
        Pipeline {
            splitter: Splitter::new(matches!(decoder, Decoder::Csv)),
            decoder,
            pairer: Pairer::default(),
        }
    }

    pub(crate) fn feed(&mut self, bytes: &[u8], out: &mut Vec<ConnectionEvent>) {
        let Pipeline {
            decoder,
            splitter,
            pairer,
        } = self;
        splitter.push(bytes, |record| handle(decoder, pairer, record, out));
    }

    /// The file is finished (rotated away): its unterminated last record, if any, is complete.
    pub(crate) fn end_of_file(&mut self, out: &mut Vec<ConnectionEvent>) {
        let Pipeline {
            decoder,
            splitter,
            pairer,
        } = self;
        splitter.flush(|record| handle(decoder, pairer, record, out));
    }

    /// Reading restarts at the beginning of a file: forget any partial record (pairing state stays).
    pub(crate) fn restart(&mut self) {
        self.splitter.clear();
    }

    /// Reading starts at an arbitrary offset: skip to where the next record begins.
    pub(crate) fn resync(&mut self) {
        self.splitter.clear();
        self.splitter.skipping = true;
    }
}

fn handle(decoder: &Decoder, pairer: &mut Pairer, record: &[u8], out: &mut Vec<ConnectionEvent>) {
    let text = String::from_utf8_lossy(record);
    let line = match decoder {
        Decoder::Stderr(prefix) => parse_stderr_line(&text, prefix),
        Decoder::Csv => parse_csv_record(&text),
        Decoder::Json => parse_json_line(&text),
    };
    if let Some(event) = line.and_then(|line| pairer.line(line)) {
        out.push(event);
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
}

#[derive(Default)]
struct Pairer {
    by_pid: HashMap<i32, Pending>,
    by_order: VecDeque<Pending>,
    latest: Option<DateTime<Utc>>,
}

impl Pairer {
    fn line(&mut self, line: LogLine) -> Option<ConnectionEvent> {
        self.latest = Some(self.latest.map_or(line.at, |latest| latest.max(line.at)));
        match line.message {
            ConnectionMessage::Received { host, .. } => {
                let pending = Pending { at: line.at, host };
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
            ConnectionMessage::Authorized(authorized) => {
                let pending = match line.pid {
                    Some(pid) => self.by_pid.remove(&pid),
                    None => self.next_in_order(line.at),
                };
                let host = pending.map(|p| p.host).or(line.remote_host);
                let local_socket = host.as_deref() == Some("[local]");
                Some(ConnectionEvent {
                    at: line.at,
                    pid: line.pid.unwrap_or(0),
                    user: authorized.user,
                    database: authorized.database.or(line.database).unwrap_or_default(),
                    application_name: authorized.application_name,
                    client_addr: host.filter(|_| !local_socket),
                    local_socket,
                    tls: authorized.tls,
                    gss_encrypted: authorized.gss_encrypted,
                })
            }
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

    /// Received lines of logins that failed never get their authorized line; forget them eventually.
    fn prune(&mut self) {
        if self.by_pid.len() < 4096 {
            return;
        }
        if let Some(latest) = self.latest {
            let cutoff = latest - Duration::seconds(MAX_AUTH_WAIT_SECS);
            self.by_pid.retain(|_, p| p.at >= cutoff);
        }
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
        assert_eq!(events[0].tls, None);
        assert_eq!(events[1].pid, 22545);
        assert_eq!(events[1].client_addr.as_deref(), Some("127.0.0.1"));
        assert!(!events[1].local_socket);
        assert_eq!(events[1].application_name.as_deref(), Some("tls12app"));
        assert_eq!(events[1].tls.as_ref().map(|t| t.bits), Some(Some(256)));
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
        assert_eq!(out.len(), 1);
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
        let events = run(&format, &[text.as_bytes()]);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].client_addr.as_deref(), Some("10.0.0.2"));
        assert_eq!(events[0].pid, 0);
        assert_eq!(events[1].client_addr, None);
    }

    #[test]
    fn json_lines() {
        let text = concat!(
            r#"{"timestamp":"2026-11-27 17:42:50.077 UTC","pid":1,"remote_host":"127.0.0.1","remote_port":4,"error_severity":"LOG","message":"connection received: host=127.0.0.1 port=4"}"#,
            "\n",
            r#"{"timestamp":"2026-11-27 17:42:50.084 UTC","user":"u","dbname":"d","pid":1,"remote_host":"127.0.0.1","error_severity":"LOG","message":"connection authorized: user=u database=d application_name=a SSL enabled (protocol=TLSv1.3, cipher=TLS_AES_128_GCM_SHA256, bits=128)"}"#,
            "\n"
        );
        let events = run(&LogFormat::Json, &[text.as_bytes()]);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].client_addr.as_deref(), Some("127.0.0.1"));
        assert_eq!(events[0].tls.as_ref().and_then(|t| t.bits), Some(128));
    }
}
