//! Turning the poll's rows into model values. Row access is kept to thin extractors; the
//! decisions (what a row means) are pure functions tested without a server.

use std::collections::BTreeMap;

use tokio_postgres::Row;

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

pub fn session_from_row(row: &Row) -> Result<Session, tokio_postgres::Error> {
    let client_port: Option<i32> = row.try_get(col::CLIENT_PORT)?;
    let ssl: Option<bool> = row.try_get(col::SSL)?;
    let tls_version: Option<String> = row.try_get(col::TLS_VERSION)?;
    let gss_encrypted: Option<bool> = row.try_get(col::GSS_ENCRYPTED)?;
    let class = classify(client_port, ssl, tls_version.as_deref(), gss_encrypted);
    let tls = match (ssl, tls_version) {
        (Some(true), Some(version)) => Some(TlsInfo {
            version,
            cipher: row.try_get::<_, Option<String>>(col::CIPHER)?.unwrap_or_default(),
            bits: row.try_get(col::BITS)?,
            client_dn: row.try_get(col::CLIENT_DN)?,
            client_serial: row.try_get(col::CLIENT_SERIAL)?,
            issuer_dn: row.try_get(col::ISSUER_DN)?,
        }),
        _ => None,
    };
    let gss = match row.try_get::<_, Option<bool>>(col::GSS_AUTHENTICATED)? {
        Some(authenticated) => Some(GssInfo {
            authenticated,
            principal: row.try_get(col::GSS_PRINCIPAL)?,
            encrypted: gss_encrypted.unwrap_or(false),
            credentials_delegated: row.try_get(col::GSS_DELEGATED)?,
        }),
        None => None,
    };
    Ok(Session {
        pid: row.try_get::<_, Option<i32>>(col::PID)?.unwrap_or_default(),
        class,
        leader_pid: row.try_get(col::LEADER_PID)?,
        user: row.try_get(col::USENAME)?,
        database: row.try_get(col::DATNAME)?,
        application_name: row.try_get(col::APPLICATION_NAME)?,
        client_addr: row.try_get(col::CLIENT_ADDR)?,
        client_hostname: row.try_get(col::CLIENT_HOSTNAME)?,
        client_port,
        backend_type: row.try_get(col::BACKEND_TYPE)?,
        state: row.try_get(col::STATE)?,
        backend_start: row.try_get(col::BACKEND_START)?,
        xact_start: row.try_get(col::XACT_START)?,
        query_start: row.try_get(col::QUERY_START)?,
        state_change: row.try_get(col::STATE_CHANGE)?,
        wait_event_type: row.try_get(col::WAIT_EVENT_TYPE)?,
        wait_event: row.try_get(col::WAIT_EVENT)?,
        query: row.try_get(col::QUERY)?,
        query_id: row.try_get(col::QUERY_ID)?,
        tls,
        gss,
    })
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
