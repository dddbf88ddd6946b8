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
    None
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
