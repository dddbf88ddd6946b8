//! The plain-text ("stderr") format: `log_line_prefix`, then `LOG:  `, then the message.
//!
//! The prefix is compiled once into literals and escapes, then matched against each candidate line with a
//! small backtracking matcher: escapes with a fixed shape (`%p`, `%m`, `%l`, ...) consume exactly that
//! shape; free-text escapes (`%u`, `%d`, `%a`, `%h`, `%r`, ...) take the shortest text that lets the rest of
//! the prefix match. Continuation lines of multi-line messages start with a tab and are skipped.

use chrono::{DateTime, Utc};

use super::LogLine;
use super::message::{ConnectionMessage, parse_message};
use super::timestamp::{parse_epoch, parse_pg_timestamp};

/// A compiled `log_line_prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StderrPrefix {
    source: String,
    tokens: Vec<Token>,
    /// Where `%q` stood: processes without a client (the postmaster) print only the tokens before it.
    before_q: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(String),
    Escape { kind: char, padded: bool },
}

/// Escapes PostgreSQL (12..18) expands; others print nothing, as in the server.
const KNOWN_ESCAPES: &str = "audbrhLpPtmnieclsvxQ";

impl StderrPrefix {
    pub fn new(prefix: &str) -> StderrPrefix {
        let chars: Vec<char> = prefix.chars().collect();
        let mut tokens = Vec::new();
        let mut literal = String::new();
        let mut before_q = None;
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            if c != '%' {
                literal.push(c);
                continue;
            }
            // Padding as the server reads it: `%-10u` or `%10u`; a lone `-` is an (unknown) escape letter.
            let mut padded = false;
            let starts_padding = match chars.get(i) {
                Some('-') => chars.get(i + 1).is_some_and(char::is_ascii_digit),
                Some(d) => d.is_ascii_digit(),
                None => false,
            };
            if starts_padding {
                let start = i;
                if chars[i] == '-' {
                    i += 1;
                }
                while chars.get(i).is_some_and(char::is_ascii_digit) {
                    i += 1;
                }
                padded = chars[start..i].iter().any(|d| d.is_ascii_digit() && *d != '0');
            }
            let Some(&kind) = chars.get(i) else { break };
            i += 1;
            match kind {
                '%' => literal.push('%'),
                // %q ends the prefix only for processes without a client; connection lines always have one, the
                // postmaster's reload lines never do.
                'q' if before_q.is_none() => {
                    if !literal.is_empty() {
                        tokens.push(Token::Literal(std::mem::take(&mut literal)));
                    }
                    before_q = Some(tokens.len());
                }
                'q' => {}
                k if KNOWN_ESCAPES.contains(k) => {
                    if !literal.is_empty() {
                        tokens.push(Token::Literal(std::mem::take(&mut literal)));
                    }
                    tokens.push(Token::Escape { kind: k, padded });
                }
                _ => {}
            }
        }
        if !literal.is_empty() {
            tokens.push(Token::Literal(literal));
        }
        StderrPrefix {
            source: prefix.to_string(),
            tokens,
            before_q,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether lines carry the backend pid, so "received" and "authorized" lines can be paired exactly.
    pub fn has_pid(&self) -> bool {
        self.has_escape(&['p'])
    }

    /// Whether lines carry a time; without one, events are stamped with the time pgtls read them.
    pub fn has_timestamp(&self) -> bool {
        self.has_escape(&['m', 't', 'n'])
    }

    fn has_escape(&self, kinds: &[char]) -> bool {
        self.tokens
            .iter()
            .any(|t| matches!(t, Token::Escape { kind, .. } if kinds.contains(kind)))
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Captures<'a> {
    at: Option<DateTime<Utc>>,
    at_has_millis: bool,
    pid: Option<i32>,
    port: Option<u16>,
    user: Option<&'a str>,
    database: Option<&'a str>,
    host: Option<&'a str>,
    /// The user and database the message names: a split of the prefix is tried only if its `%u`/`%d` agree, so
    /// a name that contains the prefix's own separators still finds the reading that agrees, if there is one.
    expect_user: Option<&'a str>,
    expect_database: Option<&'a str>,
}

/// Parse one line of a stderr-format log written with `prefix`. Returns `None` for anything that is not one of
/// the messages of [`parse_message`] under its own severity (most lines are rejected by a few substring scans).
pub fn parse_stderr_line(line: &str, prefix: &StderrPrefix) -> Option<LogLine> {
    let line = line.trim_end_matches(['\n', '\r']);
    if line.starts_with('\t')
        || !(line.contains(" connection") || line.contains("pg_hba.conf") || line.contains("parameter \""))
    {
        return None;
    }
    let starts = line
        .match_indices("LOG:  ")
        .chain(line.match_indices("FATAL:  "))
        .map(|(at, severity)| (at, severity.trim_end().trim_end_matches(':')));
    for (at, severity) in starts {
        let Some(message) = parse_message(&line[at + severity.len() + 3..]) else {
            continue;
        };
        if message.severity() != severity {
            continue;
        }
        if let Some(parsed) = read_prefix(&line[..at], prefix, message) {
            return Some(parsed);
        }
    }
    None
}

fn read_prefix(head: &str, prefix: &StderrPrefix, message: ConnectionMessage) -> Option<LogLine> {
    let (expect_user, expect_database) = match &message {
        ConnectionMessage::Authorized(a) => (Some(a.user.trim_matches(' ')), a.database.as_deref()),
        ConnectionMessage::HbaRefused(h) => (Some(h.user.trim_matches(' ')), h.database.as_deref()),
        _ => (None, None),
    };
    let mut caps = Captures {
        expect_user,
        expect_database: expect_database.map(|d| d.trim_matches(' ')),
        ..Captures::default()
    };
    let mut doubt = None;
    let postmaster_form = prefix
        .before_q
        .filter(|_| matches!(message, ConnectionMessage::ParameterChanged { .. }));
    if let Some(q) = postmaster_form {
        if !match_tokens(&prefix.tokens[..q], head, &mut caps) {
            caps = Captures::default();
            if !match_tokens(&prefix.tokens, head, &mut caps) {
                return None;
            }
            doubt = Some("its log_line_prefix goes on past %q, so a session wrote it, not the postmaster".to_string());
        }
    } else if !match_tokens(&prefix.tokens, head, &mut caps) {
        // No reading of the prefix agrees with the message; if one matches at all, the line names one
        // user or database in its prefix and another in its message: a running session wrote it.
        caps = Captures::default();
        if !match_tokens(&prefix.tokens, head, &mut caps) {
            return None;
        }
        doubt = Some(format!(
            "its log_line_prefix says role \"{}\" in database \"{}\", not the user and database it names",
            caps.user.unwrap_or_default(),
            caps.database.unwrap_or_default()
        ));
    }
    // Nothing knows the user yet when a handshake fails, and the postmaster has none.
    if doubt.is_none()
        && matches!(
            message,
            ConnectionMessage::HandshakeFailed { .. } | ConnectionMessage::ParameterChanged { .. }
        )
        && let Some(user) = caps.user
    {
        doubt = Some(format!(
            "its log_line_prefix names role \"{user}\", which no such line has"
        ));
    }
    Some(LogLine {
        at: caps.at.unwrap_or_else(Utc::now),
        pid: caps.pid,
        remote_host: caps.host.map(str::to_string),
        remote_port: caps.port,
        database: caps.database.map(str::to_string),
        writer: caps.user.map(str::to_string),
        doubt,
        message,
        hint: None,
        detail: None,
    })
}

/// What a `DETAIL:` or `HINT:` line adds to the message before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Annotation {
    Detail,
    Hint,
}

/// `(pid, kind, text)` if `line` is a `DETAIL:` or `HINT:` line written with `prefix` (pid `None` when the prefix
/// has no `%p`). The server writes them right after their message, with the same prefix.
pub(crate) fn annotation_line<'a>(line: &'a str, prefix: &StderrPrefix) -> Option<(Option<i32>, Annotation, &'a str)> {
    let line = line.trim_end_matches(['\n', '\r']);
    if line.starts_with('\t') {
        return None;
    }
    [("DETAIL:  ", Annotation::Detail), ("HINT:  ", Annotation::Hint)]
        .into_iter()
        .find_map(|(label, kind)| {
            line.match_indices(label).find_map(|(at, _)| {
                let mut caps = Captures::default();
                match_tokens(&prefix.tokens, &line[..at], &mut caps)
                    .then(|| (caps.pid, kind, &line[at + label.len()..]))
            })
        })
}

/// The pid of `line` if it is a `CONTEXT:` line written with `prefix` (`Some(None)` when the prefix has no
/// `%p`). The server writes a message and its CONTEXT in one go, so a connection line followed by a CONTEXT
/// line was written by running code (`RAISE LOG`), never by a start-up, which has no context.
pub(crate) fn context_line_pid(line: &str, prefix: &StderrPrefix) -> Option<Option<i32>> {
    let line = line.trim_end_matches(['\n', '\r']);
    if line.starts_with('\t') {
        return None;
    }
    line.match_indices("CONTEXT:  ").find_map(|(at, _)| {
        let mut caps = Captures::default();
        match_tokens(&prefix.tokens, &line[..at], &mut caps).then_some(caps.pid)
    })
}

/// Severity labels the server writes after the prefix (untranslated).
const SEVERITIES: [&str; 16] = [
    "LOG:  ",
    "ERROR:  ",
    "FATAL:  ",
    "PANIC:  ",
    "WARNING:  ",
    "NOTICE:  ",
    "INFO:  ",
    "DEBUG1:  ",
    "DEBUG2:  ",
    "DEBUG3:  ",
    "DEBUG4:  ",
    "DEBUG5:  ",
    "DETAIL:  ",
    "HINT:  ",
    "CONTEXT:  ",
    "STATEMENT:  ",
];

/// A line that starts like a log line but never reaches a severity: the server printed a name with a line
/// break in it (`%u` or `%d` of a failed login are printed raw), and what follows the break is text that
/// client chose, possibly a whole fake line with a fake prefix. A heuristic: it needs a prefix that starts with
/// a time, as nearly all do.
pub(crate) fn is_broken_line(line: &str, prefix: &StderrPrefix) -> bool {
    let starts_with_time = matches!(prefix.tokens.first(), Some(Token::Escape { kind: 'm' | 't', .. }));
    let line = line.trim_end_matches(['\n', '\r']);
    starts_with_time && starts_with_clock(line.as_bytes()) && !SEVERITIES.iter().any(|s| line.contains(s))
}

/// `YYYY-MM-DD HH:MM:SS` at the start.
fn starts_with_clock(bytes: &[u8]) -> bool {
    const SHAPE: &[u8; 19] = b"0000-00-00 00:00:00";
    bytes.len() >= SHAPE.len()
        && SHAPE
            .iter()
            .zip(bytes)
            .all(|(shape, b)| if *shape == b'0' { b.is_ascii_digit() } else { b == shape })
}

fn match_tokens<'a>(tokens: &[Token], text: &'a str, caps: &mut Captures<'a>) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return text.is_empty();
    };
    match first {
        Token::Literal(literal) => match text.strip_prefix(literal.as_str()) {
            Some(text) => match_tokens(rest, text, caps),
            None => false,
        },
        Token::Escape { kind, padded } => {
            for end in candidate_ends(*kind, *padded, text, rest.first()) {
                // Candidates are byte counts (e.g. %e's five characters); inside a multibyte character the
                // line cannot match there, and slicing would panic. Found by the property tests.
                if !text.is_char_boundary(end) {
                    continue;
                }
                let saved = *caps;
                if capture(*kind, &text[..end], caps) && match_tokens(rest, &text[end..], caps) {
                    return true;
                }
                *caps = saved;
            }
            false
        }
    }
}

/// Where the value of an escape may end in `text`, most likely first.
fn candidate_ends(kind: char, padded: bool, text: &str, next: Option<&Token>) -> Vec<usize> {
    let bytes = text.as_bytes();
    let run = |from: usize, ok: fn(u8) -> bool| from + bytes[from..].iter().take_while(|b| ok(**b)).count();
    if !padded {
        match kind {
            'p' | 'l' | 'x' | 'Q' => {
                let start = usize::from(bytes.first() == Some(&b'-'));
                let end = run(start, |b| b.is_ascii_digit());
                return if end > start { vec![end] } else { Vec::new() };
            }
            'n' => return vec![run(0, |b| b.is_ascii_digit() || b == b'.')],
            'c' => return vec![run(0, |b| b.is_ascii_hexdigit() || b == b'.')],
            'e' => return if bytes.len() >= 5 { vec![5] } else { Vec::new() },
            'm' | 't' | 's' => {
                // "YYYY-MM-DD HH:MM:SS" [".mmm" for %m] " " zone; the zone's length is the only freedom.
                let clock = if kind == 'm' { 23 } else { 19 };
                if bytes.len() <= clock + 1 || bytes[clock] != b' ' {
                    return Vec::new();
                }
                let zone_end = run(clock + 1, |b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-');
                return (clock + 2..=zone_end).rev().collect();
            }
            _ => {}
        }
    }
    match next {
        Some(Token::Literal(literal)) => text.match_indices(literal.as_str()).map(|(i, _)| i).collect(),
        Some(Token::Escape { .. }) => (0..=text.len()).filter(|i| text.is_char_boundary(*i)).collect(),
        None => vec![text.len()],
    }
}

/// Check an escape's value and keep what pgtls needs from it.
fn capture<'a>(kind: char, value: &'a str, caps: &mut Captures<'a>) -> bool {
    let value = value.trim_matches(' ');
    // The server prints "[unknown]" (translated) for a session's unset user, database or application name.
    let unknown = value.starts_with('[') && value.ends_with(']') && value != "[local]";
    match kind {
        'm' | 't' | 'n' => {
            let at = if kind == 'n' {
                parse_epoch(value)
            } else {
                parse_pg_timestamp(value)
            };
            let Some(at) = at else { return false };
            let has_millis = kind != 't';
            if caps.at.is_none() || (has_millis && !caps.at_has_millis) {
                caps.at = Some(at);
                caps.at_has_millis = has_millis;
            }
            true
        }
        's' => parse_pg_timestamp(value).is_some(),
        'p' => match value.parse() {
            Ok(pid) => {
                caps.pid = Some(pid);
                true
            }
            Err(_) => false,
        },
        'l' | 'x' | 'Q' => value.parse::<i64>().is_ok(),
        'P' => value.is_empty() || value.parse::<i32>().is_ok(),
        'e' => value.len() == 5 && value.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()),
        // Connection lines are written before the session's application_name is set, so %a is always
        // empty or "[unknown]" there; insisting on it stops a client from forging a line through its name.
        'a' => value.is_empty() || unknown,
        'u' => {
            caps.user = Some(value).filter(|v| !v.is_empty() && !unknown);
            caps.expect_user.is_none_or(|expected| caps.user == Some(expected))
        }
        'd' => {
            caps.database = Some(value).filter(|v| !v.is_empty() && !unknown);
            caps.expect_database
                .is_none_or(|expected| caps.database == Some(expected))
        }
        'h' => {
            caps.host = Some(value).filter(|v| !v.is_empty());
            true
        }
        'r' => {
            // "host(port)" for TCP, "[local]" for a Unix socket.
            let host = match value.strip_suffix(')').and_then(|v| v.rsplit_once('(')) {
                Some((host, port)) => {
                    caps.port = port.parse().ok();
                    host
                }
                None => value,
            };
            if caps.host.is_none() {
                caps.host = Some(host).filter(|v| !v.is_empty());
            }
            true
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn lab_prefix_received_and_authorized() {
        let prefix = StderrPrefix::new("%m [%p] ");
        assert!(prefix.has_pid() && prefix.has_timestamp());
        let line = parse_stderr_line(
            "2026-11-27 17:42:50.128 UTC [22545] LOG:  connection received: host=127.0.0.1 port=47078\n",
            &prefix,
        )
        .unwrap();
        assert_eq!(line.pid, Some(22545));
        assert_eq!(line.at, at("2026-11-27T17:42:50.128Z"));
        assert_eq!(
            line.message,
            ConnectionMessage::Received {
                host: "127.0.0.1".into(),
                port: Some(47078)
            }
        );
        let line = parse_stderr_line(
            "2026-11-27 17:42:50.136 UTC [22545] LOG:  connection authorized: user=postgres database=postgres \
             application_name=tls12app SSL enabled (protocol=TLSv1.2, cipher=ECDHE-RSA-AES256-GCM-SHA384, bits=256)",
            &prefix,
        )
        .unwrap();
        let ConnectionMessage::Authorized(a) = line.message else {
            panic!("not authorized")
        };
        assert_eq!(a.tls.unwrap().version, "TLSv1.2");
    }

    #[test]
    fn every_common_escape_as_pg15_printed_it() {
        let prefix = StderrPrefix::new("%m|%t|%n|%p|%u|%d|%a|%h|%r|%l|%c|%s|%v|%x|%e|%i|%b|%q|%%|%-8p|%10u| ");
        let received = "2026-11-27 17:44:35.087 UTC|2026-11-27 17:44:35 UTC|1795801475.087|24883|[unknown]|[unknown]|\
             [unknown]|127.0.0.1|127.0.0.1(33370)|1|6b09c183.6133|2026-11-27 17:44:35 UTC||0|00000||not initialized||%|\
             24883   | [unknown]| LOG:  connection received: host=127.0.0.1 port=33370";
        let line = parse_stderr_line(received, &prefix).unwrap();
        assert_eq!(line.pid, Some(24883));
        assert_eq!(line.remote_host.as_deref(), Some("127.0.0.1"));
        assert_eq!(line.database, None);
        assert_eq!(line.at, at("2026-11-27T17:44:35.087Z"));
        let authorized = "2026-11-27 17:44:35.130 UTC|2026-11-27 17:44:35 UTC|1795801475.130|24885|postgres|postgres|\
             [unknown]|[local]|[local]|2|6b09c183.6135|2026-11-27 17:44:35 UTC|3/51|0|00000|authentication|client backend\
             ||%|24885   |  postgres| LOG:  connection authorized: user=postgres database=postgres application_name=sockapp";
        let line = parse_stderr_line(authorized, &prefix).unwrap();
        assert_eq!(line.pid, Some(24885));
        assert_eq!(line.remote_host.as_deref(), Some("[local]"));
        assert_eq!(line.database.as_deref(), Some("postgres"));
    }

    #[test]
    fn debian_default_prefix() {
        let prefix = StderrPrefix::new("%m [%p] %q%u@%d ");
        let line = parse_stderr_line(
            "2026-11-27 17:44:35.087 UTC [24883] [unknown]@[unknown] LOG:  connection received: host=10.0.0.9 port=1",
            &prefix,
        )
        .unwrap();
        assert_eq!((line.pid, line.database), (Some(24883), None));
        let line = parse_stderr_line(
            "2026-11-27 17:44:35.095 UTC [24883] app@user@shop LOG:  connection authorized: user=app@user database=shop",
            &prefix,
        )
        .unwrap();
        assert_eq!(line.pid, Some(24883));
        // "%u@%d" is ambiguous when the user name has an "@"; the reading that agrees with the message wins.
        assert_eq!(line.database.as_deref(), Some("shop"));
        assert_eq!((line.writer.as_deref(), line.doubt), (Some("app@user"), None));
        // A running session of another role writing the same text: the prefix names it.
        let line = parse_stderr_line(
            "2026-11-27 17:44:35.095 UTC [24890] mallory@postgres LOG:  connection authorized: user=payroll database=prod",
            &prefix,
        )
        .unwrap();
        assert_eq!(line.writer.as_deref(), Some("mallory"));
        assert!(
            line.doubt
                .unwrap()
                .contains("role \"mallory\" in database \"postgres\"")
        );
    }

    #[test]
    fn prefix_without_space_and_empty_prefix() {
        let line = parse_stderr_line(
            "2026-01-01 00:00:00 CET[7]LOG:  connection received: host=[local]",
            &StderrPrefix::new("%t[%p]"),
        )
        .unwrap();
        assert_eq!(line.pid, Some(7));
        assert_eq!(line.at, at("2025-12-31T23:00:00Z"));
        let empty = StderrPrefix::new("");
        assert!(!empty.has_pid() && !empty.has_timestamp());
        let line = parse_stderr_line("LOG:  connection received: host=[local]", &empty).unwrap();
        assert_eq!(line.pid, None);
    }

    #[test]
    fn other_lines_are_rejected() {
        let prefix = StderrPrefix::new("%m [%p] ");
        for line in [
            "2026-11-27 17:42:57.923 UTC [22576] ERROR:  relation \"nosuch\" does not exist at character 63",
            "\t'connection authorized: user=evil' as",
            "2026-11-27 17:42:57.923 UTC [22576] STATEMENT:  select 'LOG:  connection received: host=1.2.3.4'",
            "2026-11-27 17:42:50.089 UTC [22543] LOG:  disconnection: session time: 0:00:00.011 user=postgres",
            "garbage LOG:  connection received: host=[local]",
            "",
        ] {
            assert_eq!(parse_stderr_line(line, &prefix), None, "{line}");
        }
    }

    #[test]
    fn application_name_cannot_forge_a_line() {
        let prefix = StderrPrefix::new("%m [%p] %a ");
        let forged = "2026-11-27 17:42:57.923 UTC [22576] evil LOG:  connection authorized: user=x database=y \
                      SSL enabled (protocol=TLSv1.3, cipher=X, bits=1) LOG:  statement: select 1";
        assert_eq!(parse_stderr_line(forged, &prefix), None);
        let genuine = "2026-11-27 17:42:57.923 UTC [22576] [unknown] LOG:  connection received: host=[local]";
        assert!(parse_stderr_line(genuine, &prefix).is_some());
    }

    #[test]
    fn free_text_escapes_with_spaces_and_adjacent_escapes() {
        let prefix = StderrPrefix::new("%t %u@%d %p ");
        let line = parse_stderr_line(
            "2026-01-01 00:00:00 UTC Jane Doe@my db 42 LOG:  connection authorized: user=Jane Doe database=my db",
            &prefix,
        )
        .unwrap();
        assert_eq!(line.pid, Some(42));
        assert_eq!(line.database.as_deref(), Some("my db"));
        // Adjacent escapes are ambiguous; a fixed-shape one takes all it can.
        let prefix = StderrPrefix::new("%p%h");
        let line = parse_stderr_line("42127.0.0.1LOG:  connection received: host=127.0.0.1 port=1", &prefix).unwrap();
        assert_eq!(line.pid, Some(42127));
        assert_eq!(line.remote_host.as_deref(), Some(".0.0.1"));
    }

    #[test]
    fn unknown_escapes_and_trailing_percent_print_nothing() {
        // As in the server, "%-" followed by no digit is an unknown escape and the "w" after it is literal.
        let prefix = StderrPrefix::new("%Z%m %-w[%p]%");
        let line = parse_stderr_line(
            "2026-01-01 00:00:00.000 UTC w[9]LOG:  connection received: host=[local]",
            &prefix,
        )
        .unwrap();
        assert_eq!(line.pid, Some(9));
    }

    /// A fixed-width escape (%e is five characters) over a multibyte character must not slice inside it.
    #[test]
    fn a_multibyte_character_where_a_fixed_width_escape_ends_is_no_match_not_a_panic() {
        let prefix = StderrPrefix::new("%e ");
        assert_eq!(
            parse_stderr_line("ab\u{c449b} LOG:  connection received: host=x", &prefix),
            None
        );
        let prefix = StderrPrefix::new("%%%h%e\u{a1}");
        assert_eq!(parse_stderr_line("LOG:  connection received: host=", &prefix), None);
    }
}
