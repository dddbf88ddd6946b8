//! Clients a PgBouncer turned away on its client side, read from the pooler's own log (`--pgbouncer-log`).
//!
//! Behind a pooler the server never sees the client's handshake: a TLS 1.2 client refused by the pooler's
//! `client_tls_protocols`, or a plain one refused by its `client_tls_sslmode`, shows up only in PgBouncer's log.
//! Seen on this machine's PgBouncer 1.18 (Debian), after `RELOAD` with `client_tls_protocols = tlsv1.3` and then
//! `client_tls_sslmode = require`:
//!
//! ```text
//! 2026-12-03 13:28:36.915 UTC [29888] LOG RELOAD command issued
//! 2026-12-03 13:28:37.554 UTC [29888] WARNING TLS handshake error: handshake failed: error:0A000102:SSL routines::unsupported protocol
//! 2026-12-03 13:29:44.172 UTC [29888] LOG C-0x5649663871c0: (nodb)/(nouser)@127.0.0.1:38770 closing because: SSL required (age=0s)
//! 2026-12-03 13:29:44.172 UTC [29888] WARNING C-0x5649663871c0: (nodb)/(nouser)@127.0.0.1:38770 pooler error: SSL required
//! ```
//!
//! * The handshake line carries **no client**: `sbuf.c` logs it with `log_warning`, not `slog_warning`, up to the
//!   current source. It is counted as an anonymous refused handshake at that pooler, never given an address. The
//!   same function also serves the pooler's own server leg; there (seen with `server_tls_protocols = tlsv1.3`
//!   against a TLS 1.2 server) the pooler closes its server connection in the same instant,
//!   `S-0x...: db/user@host:port closing because: server conn crashed? (age=0s)`, which tells the two apart when
//!   `log_disconnections` is on (the default).
//! * `SSL required` (a client without TLS under `client_tls_sslmode` require or stricter, same wording from 1.18
//!   to the current source) comes as up to two lines for one client: `closing because:` (needs
//!   `log_disconnections`) and `pooler error:` (needs `log_pooler_errors`); both defaults are on. The pair counts
//!   once.
//! * RELOAD names no setting, so the log cannot say when a setting changed.
//!
//! Everything after the prefix is the pooler's, but the `db/user` part of a client's prefix is what the client
//! sent: the address is taken after the *last* `@` before the message, must parse as an IP address and port, and
//! a line whose names hold control characters is not trusted.

use std::net::IpAddr;

use chrono::{DateTime, Utc};

use super::timestamp::parse_pg_timestamp;
use super::{PoolerRefusal, Refusal, RefusedAttempt};

/// PgBouncer formats each message into a buffer of a few KiB; a longer line is not one of its lines.
pub const MAX_LINE: usize = 8 << 10;
/// The OpenSSL reason is the pooler's text, cut all the same.
const MAX_REASON: usize = 256;

/// A client as a pooler's line names it: its `C-0x...` pointer, address and port.
pub type PoolerClient = (String, IpAddr, u16);

/// One refusal a line reports, before the pooler's address is stamped on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolerLine {
    pub at: DateTime<Utc>,
    /// The client's `C-0x...` pointer, address and port (none for a handshake failure).
    pub client: Option<PoolerClient>,
    pub plain: bool,
    pub reason: String,
}

/// Parse one log line; `None` for anything that is not a client refusal (most lines).
pub fn parse_line(line: &str) -> Option<PoolerLine> {
    if line.len() > MAX_LINE {
        return None;
    }
    let (at, level, message) = split_prefix(line)?;
    if let Some(reason) = message.strip_prefix("TLS handshake error: ") {
        if level != "WARNING" {
            return None;
        }
        return Some(PoolerLine {
            at,
            client: None,
            plain: false,
            reason: handshake_reason(reason),
        });
    }
    let (who, what) = message
        .split_once(" pooler error: ")
        .or_else(|| message.split_once(" closing because: "))?;
    let what = what
        .strip_suffix(')')
        .and_then(|w| w.rsplit_once(" (age="))
        .map_or(what, |(w, _)| w);
    if what != "SSL required" {
        return None;
    }
    Some(PoolerLine {
        at,
        client: Some(client_of(who)?),
        plain: true,
        reason: "SSL required".to_string(),
    })
}

/// `2026-12-03 13:28:37.554 UTC [29888] WARNING rest` into time, level and rest.
///
/// The timestamp must start the line. PgBouncer writes a message's own line breaks (a client-chosen user or
/// database name can hold one) as a break and a tab, so a line that starts otherwise is the rest of an earlier
/// message, whatever it looks like: seen on 1.18 with a user name carrying a whole forged line.
fn split_prefix(line: &str) -> Option<(DateTime<Utc>, &str, &str)> {
    if !line.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let open = line.find(" [")?;
    let at = parse_pg_timestamp(&line[..open])?;
    let rest = &line[open + 2..];
    let (pid, rest) = rest.split_once("] ")?;
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (level, message) = rest.split_once(' ')?;
    matches!(level, "LOG" | "WARNING" | "ERROR" | "FATAL" | "NOISE" | "DEBUG").then_some((at, level, message))
}

/// `C-0x5649663871c0: (nodb)/(nouser)@127.0.0.1:38770` into the pointer, address and port.
fn client_of(who: &str) -> Option<PoolerClient> {
    let (ptr, names) = who.split_once(": ")?;
    let hex = ptr.strip_prefix("C-0x")?;
    if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    if crate::safe::has_unsafe(names) {
        return None;
    }
    let (_, endpoint) = names.rsplit_once('@')?;
    let (host, port) = endpoint.rsplit_once(':')?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    Some((ptr.to_string(), host.parse().ok()?, port.parse().ok()?))
}

/// `handshake failed: error:0A000102:SSL routines::unsupported protocol` reads as `unsupported protocol`, as the
/// server's own `could not accept SSL connection:` reason does.
fn handshake_reason(text: &str) -> String {
    let text = text.trim();
    let text = text.strip_prefix("handshake failed: ").unwrap_or(text);
    let text = match text.strip_prefix("error:") {
        Some(rest) => rest.rsplit_once("::").map_or(text, |(_, reason)| reason),
        None => text,
    };
    text.chars().take(MAX_REASON).collect()
}

/// The pooler setting that refused a line: plain text is `client_tls_sslmode`'s doing; a handshake failing on the
/// protocol version is `client_tls_protocols`'; any other handshake failure (ciphers, certificates) is one of the
/// client TLS settings, not said which.
pub fn setting_of(line: &PoolerLine) -> &'static str {
    if line.plain {
        "client_tls_sslmode"
    } else if line.reason.contains("protocol") || line.reason.contains("version") {
        "client_tls_protocols"
    } else {
        "client_tls_* settings"
    }
}

/// Turns lines into refused attempts, counting a client's `closing because:` and `pooler error:` pair once, and
/// leaving out the handshakes of the pooler's own server leg.
#[derive(Default)]
pub(crate) struct Reader {
    last_plain: Option<(Option<PoolerClient>, DateTime<Utc>)>,
    /// A failed handshake waits for the next line: if the pooler closes a server connection right after it, the
    /// handshake was its own server leg's, not a client's.
    held: Option<PoolerLine>,
    /// Handshake failures told apart as the pooler's own server leg's.
    pub(crate) server_leg: u64,
}

/// The lines of one event are written in the same instant; a second client on the same port is not that fast.
const PAIR_WITHIN: chrono::Duration = chrono::Duration::seconds(1);

impl Reader {
    pub(crate) fn line(&mut self, text: &str, out: &mut Vec<RefusedAttempt>) {
        if let Some(held) = self.held.take() {
            // Seen on 1.18 when server_tls_protocols could not be met:
            // `S-0x...: db/user@host:port closing because: server conn crashed? (age=0s)`.
            if closes_server_at(text).is_some_and(|at| (at - held.at).abs() <= PAIR_WITHIN) {
                self.server_leg += 1;
                return;
            }
            out.push(attempt(held));
        }
        let Some(line) = parse_line(text) else { return };
        if !line.plain {
            self.held = Some(line);
            return;
        }
        let same = self
            .last_plain
            .as_ref()
            .is_some_and(|(client, at)| *client == line.client && (line.at - *at).abs() <= PAIR_WITHIN);
        // The pair's second line ends the pair: a third line with the same client is another attempt.
        self.last_plain = if same {
            None
        } else {
            Some((line.client.clone(), line.at))
        };
        if !same {
            out.push(attempt(line));
        }
    }

    /// Everything written so far has been read: a held handshake with no server close after it was a client's.
    pub(crate) fn settle(&mut self, out: &mut Vec<RefusedAttempt>) {
        out.extend(self.held.take().map(attempt));
    }
}

/// The time of a line in which the pooler gives up a server connection whose reads failed, as it does when its own
/// handshake fails. Other closes of server connections (a RELOAD marks them all as changed: `database
/// configuration changed`) can follow a client's failed handshake at once and say nothing about it.
fn closes_server_at(text: &str) -> Option<DateTime<Utc>> {
    if text.len() > MAX_LINE {
        return None;
    }
    let (at, _, message) = split_prefix(text)?;
    let (who, why) = message.split_once(" closing because: ")?;
    (who.starts_with("S-0x") && why.starts_with("server conn crashed?")).then_some(at)
}

fn attempt(line: PoolerLine) -> RefusedAttempt {
    let setting = setting_of(&line).to_string();
    let (client_addr, client_port) = match &line.client {
        Some((_, ip, port)) => (Some(ip.to_string()), Some(*port)),
        None => (None, None),
    };
    RefusedAttempt {
        at: line.at,
        pid: 0,
        client_addr,
        client_port,
        local_socket: false,
        refusal: Refusal::Pooler(PoolerRefusal {
            pooler: String::new(),
            setting,
            reason: line.reason,
            plain: line.plain,
        }),
        hint: None,
        detail: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from PgBouncer 1.18 on this machine (see the module's documentation); tests/integration/pgbouncer.rs makes the
    /// same lines appear from a running pooler.
    const REAL: &str = "\
2026-12-03 13:28:32.686 UTC [29888] LOG process up: PgBouncer 1.18.0, libevent 2.1.12-stable (epoll), adns: c-ares 1.18.1, tls: OpenSSL 3.0.19 27 Jan 2026
2026-12-03 13:28:36.914 UTC [29888] LOG C-0x5649663871c0: pgbouncer/pgtls@127.0.0.1:33950 login attempt: db=pgbouncer user=pgtls tls=no
2026-12-03 13:28:36.915 UTC [29888] LOG RELOAD command issued
2026-12-03 13:28:37.554 UTC [29888] WARNING TLS handshake error: handshake failed: error:0A000102:SSL routines::unsupported protocol
2026-12-03 13:28:37.609 UTC [29888] LOG C-0x5649663871c0: postgres/pgtls@127.0.0.1:33972 login attempt: db=postgres user=pgtls tls=no
2026-12-03 13:29:37.687 UTC [29888] WARNING C-0x5649663871c0: postgres/pgtls@127.0.0.1:33972 pooler error: client_login_timeout (server down)
2026-12-03 13:29:44.172 UTC [29888] LOG C-0x5649663871c0: (nodb)/(nouser)@127.0.0.1:38770 closing because: SSL required (age=0s)
2026-12-03 13:29:44.172 UTC [29888] WARNING C-0x5649663871c0: (nodb)/(nouser)@127.0.0.1:38770 pooler error: SSL required
2026-12-03 13:29:44.217 UTC [29888] LOG C-0x5649663871c0: (nodb)/(nouser)@127.0.0.1:38782 closing because: SSL required (age=0s)
2026-12-03 13:29:44.217 UTC [29888] WARNING C-0x5649663871c0: (nodb)/(nouser)@127.0.0.1:38782 pooler error: SSL required
";

    fn read(text: &str) -> Vec<RefusedAttempt> {
        let mut reader = Reader::default();
        let mut out = Vec::new();
        for line in text.lines() {
            reader.line(line, &mut out);
        }
        reader.settle(&mut out);
        out
    }

    fn pooler(r: &RefusedAttempt) -> &PoolerRefusal {
        match &r.refusal {
            Refusal::Pooler(p) => p,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn real_lines_give_one_refusal_per_client() {
        let refused = read(REAL);
        assert_eq!(refused.len(), 3, "{refused:#?}");
        let handshake = &refused[0];
        assert_eq!(
            handshake.client_addr, None,
            "1.18 names no client on a failed handshake"
        );
        assert_eq!(pooler(handshake).setting, "client_tls_protocols");
        assert_eq!(pooler(handshake).reason, "unsupported protocol");
        assert!(!pooler(handshake).plain);
        assert_eq!(handshake.at, parse_pg_timestamp("2026-12-03 13:28:37.554 UTC").unwrap());
        for (r, port) in refused[1..].iter().zip([38770, 38782]) {
            assert_eq!(r.client_addr.as_deref(), Some("127.0.0.1"));
            assert_eq!(r.client_port, Some(port));
            assert_eq!(pooler(r).setting, "client_tls_sslmode");
            assert!(pooler(r).plain);
        }
    }

    #[test]
    fn either_line_of_the_pair_alone_counts() {
        let only_errors: String = REAL
            .lines()
            .filter(|l| !l.contains("closing because"))
            .map(|l| format!("{l}\n"))
            .collect();
        let only_closing: String = REAL
            .lines()
            .filter(|l| !l.contains("pooler error: SSL"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(read(&only_errors).len(), 3);
        assert_eq!(read(&only_closing).len(), 3);
    }

    /// Also captured from 1.18 here: `server_tls_protocols = tlsv1.3` against a server that speaks only TLS 1.2.
    /// The pooler's own handshake fails with the same words as a client's, but it closes its server connection
    /// in the same instant.
    #[test]
    fn the_poolers_own_server_leg_is_not_a_refused_client() {
        let server_leg = "\
2026-12-03 13:51:32.488 UTC [29888] LOG C-0x5649663871c0: postgres/pgtls@127.0.0.1:57178 login attempt: db=postgres user=pgtls tls=no
2026-12-03 13:51:32.488 UTC [29888] LOG S-0x56496646a340: postgres/pgtls@127.0.0.1:16433 new connection to server (from 127.0.0.1:57130)
2026-12-03 13:51:32.492 UTC [29888] WARNING TLS handshake error: handshake failed: error:0A00042E:SSL routines::tlsv1 alert protocol version
2026-12-03 13:51:32.492 UTC [29888] LOG S-0x56496646a340: postgres/pgtls@127.0.0.1:16433 closing because: server conn crashed? (age=0s)
";
        let mut reader = Reader::default();
        let mut out = Vec::new();
        for line in server_leg.lines() {
            reader.line(line, &mut out);
        }
        reader.settle(&mut out);
        assert!(out.is_empty(), "{out:#?}");
        assert_eq!(reader.server_leg, 1);
        // A client's failed handshake followed by any other line (even another server close, which a RELOAD
        // causes), or by nothing yet, is the client's.
        let reload_close = "2026-12-03 13:54:39.123 UTC [20123] LOG S-0x55dd8df0fe70: postgres/pooled_app@127.0.0.1:41621 \
                            closing because: database configuration changed (age=0s)";
        let handshake = REAL.lines().nth(3).unwrap();
        assert_eq!(read(&format!("{handshake}\n{reload_close}\n")).len(), 1);
        assert_eq!(read(&REAL.lines().take(4).collect::<Vec<_>>().join("\n")).len(), 1);
    }

    #[test]
    fn ipv6_and_other_handshake_reasons() {
        let line =
            "2026-12-03 13:29:44.172 UTC [1] WARNING C-0xab: (nodb)/(nouser)@[::1]:5000 pooler error: SSL required";
        assert_eq!(read(line)[0].client_addr.as_deref(), Some("::1"));
        let line = "2026-12-03 13:29:44.172 UTC [1] WARNING TLS handshake error: handshake failed: error:0A0000C1:SSL routines::no shared cipher";
        let r = read(line);
        assert_eq!(pooler(&r[0]).setting, "client_tls_* settings");
        assert_eq!(pooler(&r[0]).reason, "no shared cipher");
    }

    #[test]
    fn hostile_lines_are_never_refusals_with_invented_clients() {
        let hostile = [
            // A client-chosen name that fakes an address, with a line break and an escape sequence.
            "2026-12-03 13:29:44.172 UTC [1] WARNING C-0xab: x\n/\u{1b}[2J@6.6.6.6:1 pooler error: SSL required",
            // Bidi override in the names.
            "2026-12-03 13:29:44.172 UTC [1] WARNING C-0xab: \u{202e}db/u@6.6.6.6:1 pooler error: SSL required",
            // No IP address where one must be.
            "2026-12-03 13:29:44.172 UTC [1] WARNING C-0xab: db/u@evil.example:1 pooler error: SSL required",
            "2026-12-03 13:29:44.172 UTC [1] WARNING C-0xzz: db/u@1.2.3.4:1 pooler error: SSL required",
            "2026-12-03 13:29:44.172 UTC [1] WARNING C-0xab: db/u@1.2.3.4:99999 pooler error: SSL required",
            // Not at the start of a line, or without a prefix.
            "login attempt: WARNING TLS handshake error: x",
            "2026-12-03 13:29:44.172 UTC [x] WARNING TLS handshake error: x",
            "2026-12-03 13:29:44.172 UTC [1] LOG TLS handshake error: x",
            "",
        ];
        for line in hostile {
            assert_eq!(parse_line(line), None, "{line:?}");
        }
        // Captured from 1.18: a client whose user name holds a line break and a whole refusal line, crafted to end
        // where the name ends. PgBouncer writes the name's break as a break and a tab; the part after it is a
        // continuation, never a line of its own, in either of the pair's shapes and for the server-close check.
        let forged = "\
2026-12-03 14:25:44.068 UTC [4998] LOG C-0x55c1ae936cb0: (nodb)/evil
\t2026-12-03 14:40:00.000 UTC [1] WARNING C-0x1: (nodb)/(nouser)@6.6.6.6:1 pooler error: SSL required
\t@127.0.0.1:59470 closing because: \"trust\" authentication failed (age=0s)
\t2026-12-03 14:40:00.000 UTC [1] WARNING TLS handshake error: handshake failed: error:0A000102:SSL routines::unsupported protocol
 2026-12-03 14:40:00.000 UTC [1] LOG C-0x1: (nodb)/(nouser)@7.7.7.7:1 closing because: SSL required (age=0s)
\t2026-12-03 14:40:00.000 UTC [1] LOG S-0x1: x/u@1.1.1.1:1 closing because: server conn crashed? (age=0s)";
        for line in forged.lines() {
            assert_eq!(parse_line(line), None, "{line:?}");
            assert_eq!(closes_server_at(line), None, "{line:?}");
        }
        assert!(read(forged).is_empty());
        // A name cannot move the address: the last `@` before the message is the pooler's.
        let line =
            "2026-12-03 13:29:44.172 UTC [1] WARNING C-0xab: db/u@6.6.6.6:1@127.0.0.1:5 pooler error: SSL required";
        assert_eq!(read(line)[0].client_addr.as_deref(), Some("127.0.0.1"));
        // A megabyte line is skipped whole, however it ends.
        let long = format!(
            "2026-12-03 13:29:44.172 UTC [1] WARNING TLS handshake error: {}",
            "A".repeat(1 << 20)
        );
        assert_eq!(parse_line(&long), None);
        // The reason is cut, and its control characters stay for the outputs to escape.
        let line = format!(
            "2026-12-03 13:29:44.172 UTC [1] WARNING TLS handshake error: \u{1b}]0;x\u{7}{}",
            "B".repeat(4000)
        );
        let r = parse_line(&line).unwrap();
        assert_eq!(r.reason.chars().count(), MAX_REASON);
        assert!(crate::safe::terminal(&r.reason).starts_with("\\x1b]0;x\\x07"));
    }
}
