//! The text of the two connection messages, once the format's own framing (prefix, CSV, JSON) is gone.
//!
//! Wordings (English; the server translates them when `lc_messages` is not C/English):
//!
//! ```text
//! connection received: host=127.0.0.1 port=45678          (all versions; host=[local] for Unix sockets)
//! connection authorized: user=U database=D [application_name=A] [SSL enabled (...)] [GSS (...)]
//! replication connection authorized: user=U [application_name=A] [SSL enabled (...)] [GSS (...)]
//!   SSL part, 12-13:  SSL enabled (protocol=P, cipher=C, bits=N, compression=off|on)
//!   SSL part, 14-18:  SSL enabled (protocol=P, cipher=C, bits=N)
//!   GSS part, 12-15:  GSS (authenticated=yes|no, encrypted=yes|no[, principal=X])
//!   GSS part, 16-18:  GSS (authenticated=yes|no, encrypted=yes|no, delegated_credentials=yes|no[, principal=X])
//! ```
//!
//! `application_name=` is left out when the client sent none. Replication connections never say
//! `database=`, even logical ones (`replication=database`).
//!
//! Attempts that never reach authorization, and the settings reload (seen on 13.23, 15.18 and 18.4; the
//! wordings are the same in `src/backend/libpq/be-secure-openssl.c` and `auth.c` of 13..18):
//!
//! ```text
//! LOG:    could not accept SSL connection: REASON        REASON from OpenSSL ("unsupported protocol", "no shared
//!                                                         cipher", "wrong version number", "no protocols available",
//!                                                         "tlsv1 alert protocol version", ...), "EOF detected", or
//!                                                         an errno text; HINT "This may indicate that the client
//!                                                         does not support any SSL protocol version between A and B."
//!                                                         for protocol-version reasons (SQLSTATE 08P01)
//! FATAL:  no pg_hba.conf entry for host "H", user "U", database "D", ENC
//! FATAL:  pg_hba.conf rejects connection for host "H", user "U", database "D", ENC
//! FATAL:  no pg_hba.conf entry for replication connection from host "H", user "U", ENC
//! FATAL:  pg_hba.conf rejects replication connection for host "H", user "U", ENC
//!   ENC, 13:    SSL on | SSL off           (and "GSS encryption" with GSS)
//!   ENC, 14-18: no encryption | SSL encryption | GSS encryption
//! LOG:    connection authenticated: identity="I" method=M (FILE:N)      14-17, only for methods with an identity
//! LOG:    connection authenticated: user="U" method=M (FILE:N)          18 (also trust)
//! LOG:    parameter "N" changed to "V"                                   postmaster, on reload
//! LOG:    parameter "N" removed from configuration file, reset to default
//! ```
//!
//! The user and database of a pg_hba refusal are printed raw inside the quotes, so a name holding `", user "`
//! splits ambiguously; the parser splits at the last separator and the format's own fields (or the prefix's
//! `%u`/`%d`) then have to agree.

use serde::{Deserialize, Serialize};

use super::TlsSeen;

/// One of the connection messages pgtls cares about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnectionMessage {
    /// `connection received: host=H[ port=P]`. `host` is `[local]` for a Unix socket, and a host name
    /// instead of an address when `log_hostname` is on.
    Received {
        host: String,
        port: Option<u16>,
    },
    Authorized(Authorized),
    /// `could not accept SSL connection: REASON`: the TLS handshake failed, before any user is known.
    HandshakeFailed {
        reason: String,
    },
    /// A FATAL refusal by pg_hba.conf (no matching line, or a `reject` line).
    HbaRefused(HbaRefusal),
    /// `connection authenticated: identity="I" method=M (FILE:N)` (14+): the pg_hba.conf line that let it in.
    Authenticated {
        identity: String,
        method: String,
        hba_file: String,
        hba_line: Option<u32>,
    },
    /// `parameter "N" changed to "V"` (`value` is `None` for "removed from configuration file, reset to default").
    ParameterChanged {
        name: String,
        value: Option<String>,
    },
}

impl ConnectionMessage {
    /// The severity the server writes this message with; a message under another severity is not it.
    pub fn severity(&self) -> &'static str {
        match self {
            ConnectionMessage::HbaRefused(_) => "FATAL",
            _ => "LOG",
        }
    }
}

/// The parts of a pg_hba.conf refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HbaRefusal {
    /// A `reject` line matched (as opposed to no line at all).
    pub rejected: bool,
    pub replication: bool,
    pub host: String,
    pub user: String,
    /// Absent for replication connections.
    pub database: Option<String>,
    /// `no encryption`, `SSL encryption`, `GSS encryption` (14+), `SSL off`, `SSL on` (13).
    pub encryption: String,
}

impl HbaRefusal {
    /// The client came without encryption.
    pub fn plain(&self) -> bool {
        matches!(self.encryption.as_str(), "no encryption" | "SSL off")
    }
}

/// The parts of a `connection authorized` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authorized {
    /// `replication connection authorized` (a walsender).
    pub replication: bool,
    pub user: String,
    /// Absent for replication connections.
    pub database: Option<String>,
    pub application_name: Option<String>,
    pub tls: Option<TlsSeen>,
    pub gss_encrypted: bool,
}

const RECEIVED: &str = "connection received: host=";
const AUTHORIZED: &str = "connection authorized: ";
const REPLICATION_AUTHORIZED: &str = "replication connection authorized: ";
const HANDSHAKE_FAILED: &str = "could not accept SSL connection: ";
const AUTHENTICATED: &str = "connection authenticated: ";
/// (opening, rejected by a `reject` line, replication).
const HBA_OPENINGS: [(&str, bool, bool); 4] = [
    ("no pg_hba.conf entry for host \"", false, false),
    ("pg_hba.conf rejects connection for host \"", true, false),
    (
        "no pg_hba.conf entry for replication connection from host \"",
        false,
        true,
    ),
    ("pg_hba.conf rejects replication connection for host \"", true, true),
];

/// Parse a message that starts right after `LOG:  ` (or is csvlog's/jsonlog's `message` field).
pub fn parse_message(message: &str) -> Option<ConnectionMessage> {
    let message = message.trim_end_matches(['\n', '\r']);
    if let Some(rest) = message.strip_prefix(RECEIVED) {
        let (host, port) = match rest.rsplit_once(" port=") {
            Some((host, port)) => match port.parse::<u16>() {
                Ok(port) => (host, Some(port)),
                Err(_) => (rest, None),
            },
            None => (rest, None),
        };
        return Some(ConnectionMessage::Received {
            host: host.to_string(),
            port,
        });
    }
    if let Some(rest) = message.strip_prefix(AUTHORIZED) {
        return parse_authorized(rest, false).map(ConnectionMessage::Authorized);
    }
    if let Some(rest) = message.strip_prefix(REPLICATION_AUTHORIZED) {
        return parse_authorized(rest, true).map(ConnectionMessage::Authorized);
    }
    if let Some(reason) = message.strip_prefix(HANDSHAKE_FAILED) {
        return Some(ConnectionMessage::HandshakeFailed {
            reason: reason.to_string(),
        });
    }
    if let Some(rest) = message.strip_prefix(AUTHENTICATED) {
        return parse_authenticated(rest);
    }
    if let Some(rest) = message.strip_prefix("parameter \"") {
        return parse_parameter(rest);
    }
    HBA_OPENINGS.iter().find_map(|(opening, rejected, replication)| {
        let rest = message.strip_prefix(opening)?;
        parse_hba(rest, *rejected, *replication).map(ConnectionMessage::HbaRefused)
    })
}

/// `H", user "U", database "D", ENC` (or without the database for replication).
fn parse_hba(rest: &str, rejected: bool, replication: bool) -> Option<HbaRefusal> {
    let (names, encryption) = rest.rsplit_once("\", ")?;
    if encryption.contains('"') {
        return None;
    }
    // The host is the server's own rendering of the address (or a resolved name): it holds no quote.
    let (host, names) = names.split_once("\", user \"")?;
    let (user, database) = if replication {
        (names, None)
    } else {
        let (user, database) = names.rsplit_once("\", database \"")?;
        (user, Some(database.to_string()))
    };
    Some(HbaRefusal {
        rejected,
        replication,
        host: host.to_string(),
        user: user.to_string(),
        database,
        encryption: encryption.to_string(),
    })
}

/// `identity="I" method=M (FILE:N)`; 18 writes `user="U"` instead of `identity=`. The identity is the client's
/// (a certificate's DN, a Kerberos principal) and may hold anything, so the fixed tail is read from the right.
fn parse_authenticated(rest: &str) -> Option<ConnectionMessage> {
    let rest = rest
        .strip_prefix("identity=\"")
        .or_else(|| rest.strip_prefix("user=\""))?;
    let (identity, tail) = rest.rsplit_once("\" method=")?;
    let (method, location) = tail.split_once(' ')?;
    let location = location.strip_prefix('(')?.strip_suffix(')')?;
    let (hba_file, hba_line) = match location.rsplit_once(':') {
        Some((file, line)) => (file, line.parse().ok()),
        None => (location, None),
    };
    Some(ConnectionMessage::Authenticated {
        identity: identity.to_string(),
        method: method.to_string(),
        hba_file: hba_file.to_string(),
        hba_line,
    })
}

/// `N" changed to "V"` or `N" removed from configuration file, reset to default`.
fn parse_parameter(rest: &str) -> Option<ConnectionMessage> {
    if let Some(name) = rest.strip_suffix("\" removed from configuration file, reset to default") {
        return (!name.contains('"')).then(|| ConnectionMessage::ParameterChanged {
            name: name.to_string(),
            value: None,
        });
    }
    let (name, value) = rest.split_once("\" changed to \"")?;
    let value = value.strip_suffix('"')?;
    // Setting names are identifiers; a quote in one means this is some other message.
    (!name.contains('"')).then(|| ConnectionMessage::ParameterChanged {
        name: name.to_string(),
        value: Some(value.to_string()),
    })
}

fn parse_authorized(body: &str, replication: bool) -> Option<Authorized> {
    // The server appends GSS after SSL after application_name, so peel them off from the right: the
    // client-chosen application_name can then contain anything without hiding a real SSL or GSS part.
    let mut body = body;
    let mut gss_encrypted = false;
    if let Some((rest, inner)) = trailing_group(body, " GSS (authenticated=") {
        // Fields come in a fixed order and the principal (free text) is last, so read by position.
        gss_encrypted = inner.split(", ").nth(1) == Some("encrypted=yes");
        body = rest;
    }
    let mut tls = None;
    if let Some((rest, seen)) =
        trailing_group(body, " SSL enabled (").and_then(|(rest, inner)| Some((rest, parse_tls(inner)?)))
    {
        tls = Some(seen);
        body = rest;
    }

    let body = body.strip_prefix("user=")?;
    let db_at = body.find(" database=");
    let app_at = match db_at {
        Some(db_at) => body[db_at..].find(" application_name=").map(|i| i + db_at),
        None => body.find(" application_name="),
    };
    let user_end = db_at.or(app_at).unwrap_or(body.len());
    let user = body[..user_end].to_string();
    let database = db_at.map(|at| body[at + " database=".len()..app_at.unwrap_or(body.len())].to_string());
    let application_name = app_at
        .map(|at| &body[at + " application_name=".len()..])
        .filter(|name| !name.is_empty())
        .map(str::to_string);
    Some(Authorized {
        replication,
        user,
        database,
        application_name,
        tls,
        gss_encrypted,
    })
}

/// `(text before the group, inside of the parentheses)` when `body` ends with `opener ... )`.
fn trailing_group<'a>(body: &'a str, opener: &str) -> Option<(&'a str, &'a str)> {
    let inner_end = body.strip_suffix(')')?.len();
    let at = body.rfind(opener)?;
    let inner_start = at + opener.len();
    if inner_start > inner_end {
        return None;
    }
    // GSS's opener includes its first key; give it back so the caller sees every field.
    let keep_key = opener.find('(').map_or(0, |paren| opener.len() - paren - 1);
    Some((&body[..at], &body[inner_start - keep_key..inner_end]))
}

/// `protocol=TLSv1.3, cipher=TLS_AES_256_GCM_SHA384, bits=256[, compression=off]`.
fn parse_tls(inner: &str) -> Option<TlsSeen> {
    let mut version = None;
    let mut cipher = None;
    let mut bits = None;
    for field in inner.split(", ") {
        match field.split_once('=') {
            Some(("protocol", value)) => version = Some(value.to_string()),
            Some(("cipher", value)) => cipher = Some(value.to_string()),
            Some(("bits", value)) => bits = value.parse().ok(),
            _ => {}
        }
    }
    Some(TlsSeen {
        version: version?,
        cipher: cipher?,
        bits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authorized(message: &str) -> Authorized {
        match parse_message(message) {
            Some(ConnectionMessage::Authorized(a)) => a,
            other => panic!("{message:?} parsed as {other:?}"),
        }
    }

    fn tls(version: &str, cipher: &str, bits: Option<i32>) -> Option<TlsSeen> {
        Some(TlsSeen {
            version: version.into(),
            cipher: cipher.into(),
            bits,
        })
    }

    #[test]
    fn received_tcp_and_local() {
        assert_eq!(
            parse_message("connection received: host=127.0.0.1 port=45678"),
            Some(ConnectionMessage::Received {
                host: "127.0.0.1".into(),
                port: Some(45678)
            })
        );
        assert_eq!(
            parse_message("connection received: host=::1 port=5"),
            Some(ConnectionMessage::Received {
                host: "::1".into(),
                port: Some(5)
            })
        );
        assert_eq!(
            parse_message("connection received: host=[local]"),
            Some(ConnectionMessage::Received {
                host: "[local]".into(),
                port: None
            })
        );
    }

    #[test]
    fn authorized_pg15_tls13_as_logged() {
        let a = authorized(
            "connection authorized: user=postgres database=postgres application_name=tls13app SSL enabled \
             (protocol=TLSv1.3, cipher=TLS_AES_256_GCM_SHA384, bits=256)",
        );
        assert_eq!(
            a,
            Authorized {
                replication: false,
                user: "postgres".into(),
                database: Some("postgres".into()),
                application_name: Some("tls13app".into()),
                tls: tls("TLSv1.3", "TLS_AES_256_GCM_SHA384", Some(256)),
                gss_encrypted: false,
            }
        );
    }

    #[test]
    fn authorized_pg13_with_compression_and_no_app() {
        let a = authorized(
            "connection authorized: user=alice database=db SSL enabled (protocol=TLSv1.2, \
             cipher=ECDHE-RSA-AES256-GCM-SHA384, bits=256, compression=off)",
        );
        assert_eq!(a.application_name, None);
        assert_eq!(a.database.as_deref(), Some("db"));
        assert_eq!(a.tls, tls("TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384", Some(256)));
    }

    #[test]
    fn authorized_plain_and_old_ssl_without_bits() {
        let a = authorized("connection authorized: user=u database=d application_name=psql");
        assert_eq!(a.tls, None);
        assert_eq!(a.application_name.as_deref(), Some("psql"));
        let a = authorized(
            "connection authorized: user=u database=d SSL enabled (protocol=TLSv1, cipher=AES256-SHA, compression=off)",
        );
        assert_eq!(a.tls, tls("TLSv1", "AES256-SHA", None));
    }

    #[test]
    fn authorized_gss_pg12_and_pg16() {
        let a = authorized(
            "connection authorized: user=u database=d application_name=x GSS (authenticated=yes, encrypted=yes, \
             principal=u@EXAMPLE.COM)",
        );
        assert!(a.gss_encrypted);
        assert_eq!(a.tls, None);
        assert_eq!(a.application_name.as_deref(), Some("x"));
        let a = authorized(
            "connection authorized: user=u database=d GSS (authenticated=yes, encrypted=no, \
             delegated_credentials=no, principal=u@R)",
        );
        assert!(!a.gss_encrypted);
        let a = authorized(
            "connection authorized: user=u database=d GSS (authenticated=no, encrypted=yes, delegated_credentials=no)",
        );
        assert!(a.gss_encrypted);
    }

    #[test]
    fn gss_authentication_over_tls_keeps_both() {
        let a = authorized(
            "connection authorized: user=u database=d application_name=a SSL enabled (protocol=TLSv1.3, \
             cipher=TLS_AES_128_GCM_SHA256, bits=128) GSS (authenticated=yes, encrypted=no, principal=p)",
        );
        assert_eq!(a.tls, tls("TLSv1.3", "TLS_AES_128_GCM_SHA256", Some(128)));
        assert!(!a.gss_encrypted);
        assert_eq!(a.application_name.as_deref(), Some("a"));
    }

    #[test]
    fn replication_has_no_database() {
        let a = authorized("replication connection authorized: user=postgres application_name=repl");
        assert!(a.replication);
        assert_eq!(a.database, None);
        assert_eq!(a.user, "postgres");
        assert_eq!(a.application_name.as_deref(), Some("repl"));
        let a = authorized(
            "replication connection authorized: user=rep SSL enabled (protocol=TLSv1.3, cipher=TLS_AES_256_GCM_SHA384, bits=256)",
        );
        assert_eq!(a.user, "rep");
        assert_eq!(a.tls.map(|t| t.version).as_deref(), Some("TLSv1.3"));
    }

    #[test]
    fn names_with_spaces_and_a_decoy_in_application_name() {
        let a = authorized(
            "connection authorized: user=Jane Doe database=my db application_name=x SSL enabled (protocol=TLSv1, \
             cipher=NULL, bits=0) SSL enabled (protocol=TLSv1.3, cipher=TLS_AES_256_GCM_SHA384, bits=256)",
        );
        assert_eq!(a.user, "Jane Doe");
        assert_eq!(a.database.as_deref(), Some("my db"));
        assert_eq!(a.tls, tls("TLSv1.3", "TLS_AES_256_GCM_SHA384", Some(256)));
        assert_eq!(
            a.application_name.as_deref(),
            Some("x SSL enabled (protocol=TLSv1, cipher=NULL, bits=0)")
        );
    }

    #[test]
    fn failed_handshakes_every_reason() {
        for reason in [
            "unsupported protocol",
            "no shared cipher",
            "wrong version number",
            "no protocols available",
            "tlsv1 alert protocol version",
            "EOF detected",
            "Connection reset by peer",
            "version too low",
        ] {
            assert_eq!(
                parse_message(&format!("could not accept SSL connection: {reason}")),
                Some(ConnectionMessage::HandshakeFailed { reason: reason.into() })
            );
        }
    }

    fn hba(message: &str) -> HbaRefusal {
        match parse_message(message) {
            Some(ConnectionMessage::HbaRefused(h)) => h,
            other => panic!("{message:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn hba_refusals_13_and_18_as_logged() {
        let h =
            hba(r#"pg_hba.conf rejects connection for host "127.0.0.1", user "tlsonly", database "postgres", SSL off"#);
        assert_eq!(
            h,
            HbaRefusal {
                rejected: true,
                replication: false,
                host: "127.0.0.1".into(),
                user: "tlsonly".into(),
                database: Some("postgres".into()),
                encryption: "SSL off".into(),
            }
        );
        assert!(h.plain());
        let h = hba(r#"no pg_hba.conf entry for host "10.0.1.141", user "app", database "shop", no encryption"#);
        assert!(!h.rejected && h.plain());
        let h = hba(
            r#"no pg_hba.conf entry for replication connection from host "127.0.0.1", user "postgres", no encryption"#,
        );
        assert!(h.replication && h.database.is_none());
        let h = hba(r#"pg_hba.conf rejects replication connection for host "::1", user "rep", SSL encryption"#);
        assert!(h.rejected && h.replication && !h.plain());
        // Names are printed raw: quotes and separators inside them still leave the last separators.
        let h = hba(r#"no pg_hba.conf entry for host "1.2.3.4", user "a", b", database "d"x", no encryption"#);
        assert_eq!((h.user.as_str(), h.database.as_deref()), ("a\", b", Some("d\"x")));
        assert_eq!(
            parse_message(r#"no pg_hba.conf entry for host "1.2.3.4", user "a""#),
            None
        );
    }

    #[test]
    fn authenticated_14_and_18() {
        assert_eq!(
            parse_message(
                r#"connection authenticated: identity="CN=alice, O=x" method=cert (/etc/pg (1)/pg_hba.conf:12)"#
            ),
            Some(ConnectionMessage::Authenticated {
                identity: "CN=alice, O=x".into(),
                method: "cert".into(),
                hba_file: "/etc/pg (1)/pg_hba.conf".into(),
                hba_line: Some(12),
            })
        );
        let Some(ConnectionMessage::Authenticated { identity, hba_line, .. }) = parse_message(
            r#"connection authenticated: user="postgres" method=trust (/tmp/i15exp/pg18/data/pg_hba.conf:3)"#,
        ) else {
            panic!("18's wording")
        };
        assert_eq!((identity.as_str(), hba_line), ("postgres", Some(3)));
    }

    #[test]
    fn parameter_changes() {
        assert_eq!(
            parse_message(r#"parameter "ssl_min_protocol_version" changed to "TLSv1.3""#),
            Some(ConnectionMessage::ParameterChanged {
                name: "ssl_min_protocol_version".into(),
                value: Some("TLSv1.3".into())
            })
        );
        assert_eq!(
            parse_message(r#"parameter "ssl_min_protocol_version" removed from configuration file, reset to default"#),
            Some(ConnectionMessage::ParameterChanged {
                name: "ssl_min_protocol_version".into(),
                value: None
            })
        );
        assert_eq!(
            parse_message(r#"parameter "ssl" cannot be changed without restarting the server"#),
            None
        );
    }

    #[test]
    fn other_messages_are_not_connections() {
        assert_eq!(
            parse_message("disconnection: session time: 0:00:00.011 user=postgres"),
            None
        );
        assert_eq!(
            parse_message("connection authenticated: identity=\"x\" method=scram-sha-256"),
            None
        );
        assert_eq!(parse_message("connection authorized: database=x"), None);
        assert_eq!(parse_message("statement: select 1"), None);
    }
}
