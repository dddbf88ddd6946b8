//! Turning the poll's rows into model values. Row access is kept to thin extractors; the
//! decisions (what a row means) are pure functions tested without a server.

use std::collections::BTreeMap;

use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, Type};

use super::sql::{KNOWN_SETTINGS, REQUIRE_SECURE_TRANSPORT, col};
use crate::model::{ConnClass, GssInfo, Session, Setting, TlsInfo};

/// How a session travels, from the columns that decide it.
///
/// Order matters: a hidden row (no client_port) is unknown whatever else is NULL; a Unix socket
/// is local even though pg_stat_ssl says ssl=f; GSS encryption counts as encrypted even though
/// pg_stat_ssl says ssl=f.
pub fn classify(
    client_port: Option<i32>,
    ssl: Option<bool>,
    tls_version: Option<&str>,
    gss_encrypted: Option<bool>,
) -> ConnClass {
    match (client_port, ssl, gss_encrypted) {
        (None, _, _) => ConnClass::Unknown,
        (Some(-1), _, _) => ConnClass::Local,
        (Some(_), Some(true), _) => tls_version.map_or(ConnClass::TlsOlder, ConnClass::from_tls_version),
        (Some(_), _, Some(true)) => ConnClass::Gss,
        (Some(_), Some(false), _) => ConnClass::PlainTcp,
        // A TCP row without a pg_stat_ssl row should not happen; do not guess "no TLS".
        (Some(_), None, _) => ConnClass::Unknown,
    }
}

/// Text as the server sent it, decoded lossily. pg_stat_activity shows other databases' text in their own
/// encoding (a LATIN1 or SQL_ASCII database's query holds bytes that are not UTF-8) and the server does not
/// convert it: strict decoding failed the whole poll on one such row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LossyText(pub String);

impl<'a> FromSql<'a> for LossyText {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(LossyText(String::from_utf8_lossy(raw).into_owned()))
    }

    fn accepts(ty: &Type) -> bool {
        // Every type whose binary form is its text; citext and other extension types have no fixed oid.
        matches!(
            *ty,
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN
        ) || ty.name() == "citext"
    }
}

/// Reads one row's columns, carrying on past a column that cannot be decoded: its value is left empty and its
/// name noted, so the session is still shown (marked) and the rest of the poll is unaffected.
struct Columns<'r> {
    row: &'r Row,
    undecoded: Vec<String>,
}

impl<'r> Columns<'r> {
    fn get<T: FromSql<'r>>(&mut self, idx: usize, name: &str) -> Option<T> {
        match self.row.try_get::<_, Option<T>>(idx) {
            Ok(value) => value,
            Err(_) => {
                self.undecoded.push(name.to_string());
                None
            }
        }
    }

    fn text(&mut self, idx: usize, name: &str) -> Option<String> {
        self.get::<LossyText>(idx, name).map(|t| t.0)
    }
}

/// A `bytea` column's bytes (the poll's bounded query text, see [`super::sql::QUERY_BYTES`]).
struct RawBytes(Vec<u8>);

impl<'a> FromSql<'a> for RawBytes {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawBytes(raw.to_vec()))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::BYTEA
    }
}

/// A query's text, decoded lossily (see [`LossyText`]); one the poll cut at `limit` bytes ends with "…", so nobody
/// reads it as whole, without the character the cut split.
fn bounded_query(raw: &[u8], limit: usize) -> String {
    if raw.len() < limit {
        return String::from_utf8_lossy(raw).into_owned();
    }
    let whole = match std::str::from_utf8(raw) {
        // Only an incomplete sequence at the very end is the cut's doing; other invalid bytes are the text's own.
        Err(e) if e.error_len().is_none() => &raw[..e.valid_up_to()],
        _ => raw,
    };
    let mut text = String::from_utf8_lossy(whole).into_owned();
    text.push('…');
    text
}

pub fn session_from_row(row: &Row) -> Session {
    let mut c = Columns {
        row,
        undecoded: Vec::new(),
    };
    let client_port: Option<i32> = c.get(col::CLIENT_PORT, "client_port");
    let ssl: Option<bool> = c.get(col::SSL, "ssl");
    let tls_version = c.text(col::TLS_VERSION, "version");
    let gss_encrypted: Option<bool> = c.get(col::GSS_ENCRYPTED, "gss_encrypted");
    let class = classify(client_port, ssl, tls_version.as_deref(), gss_encrypted);
    let tls = match (ssl, tls_version) {
        (Some(true), Some(version)) => Some(TlsInfo {
            version,
            cipher: c.text(col::CIPHER, "cipher").unwrap_or_default(),
            bits: c.get(col::BITS, "bits"),
            client_dn: c.text(col::CLIENT_DN, "client_dn"),
            client_serial: c.text(col::CLIENT_SERIAL, "client_serial"),
            issuer_dn: c.text(col::ISSUER_DN, "issuer_dn"),
        }),
        _ => None,
    };
    let gss = c
        .get::<bool>(col::GSS_AUTHENTICATED, "gss_authenticated")
        .map(|authenticated| GssInfo {
            authenticated,
            principal: c.text(col::GSS_PRINCIPAL, "principal"),
            encrypted: gss_encrypted.unwrap_or(false),
            credentials_delegated: c.get(col::GSS_DELEGATED, "credentials_delegated"),
        });
    let mut session = Session {
        pid: c.get(col::PID, "pid").unwrap_or_default(),
        class,
        leader_pid: c.get(col::LEADER_PID, "leader_pid"),
        user: c.text(col::USENAME, "usename"),
        database: c.text(col::DATNAME, "datname"),
        application_name: c.text(col::APPLICATION_NAME, "application_name"),
        client_addr: c.text(col::CLIENT_ADDR, "client_addr"),
        client_hostname: c.text(col::CLIENT_HOSTNAME, "client_hostname"),
        client_port,
        backend_type: c.text(col::BACKEND_TYPE, "backend_type"),
        state: c.text(col::STATE, "state"),
        backend_start: c.get(col::BACKEND_START, "backend_start"),
        xact_start: c.get(col::XACT_START, "xact_start"),
        query_start: c.get(col::QUERY_START, "query_start"),
        state_change: c.get(col::STATE_CHANGE, "state_change"),
        wait_event_type: c.text(col::WAIT_EVENT_TYPE, "wait_event_type"),
        wait_event: c.text(col::WAIT_EVENT, "wait_event"),
        query: c
            .get::<RawBytes>(col::QUERY, "query")
            .map(|q| bounded_query(&q.0, super::sql::QUERY_BYTES)),
        query_id: c.get(col::QUERY_ID, "query_id"),
        tls,
        gss,
        undecoded: Vec::new(),
        monitor: false,
        pooler: None,
    };
    session.undecoded = c.undecoded;
    session
}

/// Text columns of the meta row (setting names and values), lossily, for the same reason as sessions' text.
pub fn text_array(row: &Row, idx: usize) -> Result<Vec<String>, tokio_postgres::Error> {
    let values: Vec<LossyText> = row.try_get(idx)?;
    Ok(values.into_iter().map(|t| t.0).collect())
}

/// Settings as the monitor sees them: a setting this version has but pg_settings did not
/// return is hidden by privileges (GUC_SUPERUSER_ONLY), not absent.
pub fn settings_from(
    version_num: u32,
    names: &[String],
    values: &[String],
    require_secure_transport: Option<String>,
) -> BTreeMap<String, Setting> {
    let visible: BTreeMap<&str, &str> = names
        .iter()
        .map(String::as_str)
        .zip(values.iter().map(String::as_str))
        .collect();
    let mut settings = BTreeMap::new();
    for known in KNOWN_SETTINGS {
        let exists = (known.since..known.until).contains(&version_num);
        let value = match visible.get(known.name) {
            Some(v) => Setting::Set((*v).to_string()),
            None if exists && known.protected => Setting::Hidden,
            None => Setting::Absent,
        };
        settings.insert(known.name.to_string(), value);
    }
    settings.insert(
        REQUIRE_SECURE_TRANSPORT.to_string(),
        require_secure_transport.map_or(Setting::Absent, Setting::Set),
    );
    settings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_cut_at_the_limit_says_so_without_the_split_character() {
        assert_eq!(bounded_query(b"SELECT 1", 16), "SELECT 1");
        // 'é' is two bytes in UTF-8; the cut at 16 keeps its first only.
        let cut = "SELECT 'caf\u{e9}".as_bytes()[..12].to_vec();
        assert_eq!(bounded_query(&cut, 12), "SELECT 'caf…");
        // A LATIN1 byte is the text's own, replaced as everywhere; the end is kept.
        assert_eq!(bounded_query(b"caf\xe9 xxxxxxxx", 12), "caf\u{FFFD} xxxxxxxx…");
        // Text shorter than the limit is never marked, whatever its bytes.
        assert_eq!(bounded_query(b"caf\xe9", 12), "caf\u{FFFD}");
    }

    #[test]
    fn classification_follows_the_facts() {
        assert_eq!(classify(None, None, None, None), ConnClass::Unknown);
        assert_eq!(classify(Some(-1), Some(false), None, Some(false)), ConnClass::Local);
        assert_eq!(
            classify(Some(5000), Some(true), Some("TLSv1.3"), Some(false)),
            ConnClass::Tls13
        );
        assert_eq!(
            classify(Some(5000), Some(true), Some("TLSv1.2"), None),
            ConnClass::Tls12
        );
        assert_eq!(
            classify(Some(5000), Some(true), Some("TLSv1"), None),
            ConnClass::TlsOlder
        );
        assert_eq!(classify(Some(5000), Some(false), None, Some(true)), ConnClass::Gss);
        assert_eq!(
            classify(Some(5000), Some(false), None, Some(false)),
            ConnClass::PlainTcp
        );
        assert_eq!(classify(Some(5000), None, None, None), ConnClass::Unknown);
    }

    #[test]
    fn text_is_decoded_lossily_whatever_its_bytes() {
        let t = LossyText::from_sql(&Type::TEXT, b"SELECT 'caf\xe9'").unwrap();
        assert_eq!(t.0, "SELECT 'caf\u{FFFD}'");
        assert!(LossyText::accepts(&Type::NAME) && LossyText::accepts(&Type::VARCHAR));
        assert!(!LossyText::accepts(&Type::INT4));
    }

    #[test]
    fn missing_protected_settings_are_hidden_and_version_gated_ones_absent() {
        let names = vec!["ssl".to_string(), "ssl_library".to_string()];
        let values = vec!["on".to_string(), "OpenSSL".to_string()];
        let s = settings_from(150_018, &names, &values, None);
        assert_eq!(s["ssl"], Setting::Set("on".into()));
        assert_eq!(s["ssl_min_protocol_version"], Setting::Hidden);
        assert_eq!(s["ssl_ecdh_curve"], Setting::Hidden);
        assert_eq!(s["ssl_groups"], Setting::Absent);
        assert_eq!(s["ssl_tls13_ciphers"], Setting::Absent);
        assert_eq!(s["require_secure_transport"], Setting::Absent);
        let s18 = settings_from(180_004, &names, &values, Some("on".into()));
        assert_eq!(s18["ssl_groups"], Setting::Hidden);
        assert_eq!(s18["ssl_ecdh_curve"], Setting::Absent);
        assert_eq!(s18["require_secure_transport"], Setting::Set("on".into()));
    }
}
