//! One admin console row at a time, as model data. Values are set by clients (application_name, user, database):
//! decoded leniently here, escaped by each output.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use chrono::{DateTime, NaiveDateTime, Utc};
use tokio_postgres::SimpleQueryRow;

use super::read::Outcome;
/// The pooler verdicts' own rule (pgtls-core), used here on each row.
pub use crate::analysis::pooler::client_class;
use crate::model::{Pooler, PoolerClient, PoolerServer, PoolerTls};

/// The `SHOW CONFIG` keys pgtls keeps: what decides each leg's TLS, and the pool mode.
pub const SETTINGS: [&str; 9] = [
    "client_tls_sslmode",
    "client_tls_protocols",
    "client_tls_ciphers",
    "server_tls_sslmode",
    "server_tls_protocols",
    "server_tls_ciphers",
    "pool_mode",
    "listen_addr",
    "listen_port",
];

/// What a value that is not UTF-8 is shown as: the simple protocol gives no access to its bytes.
pub const NOT_UTF8: &str = "\u{FFFD}";

/// Longest value kept, in characters (PgBouncer's own names stop at 64 bytes): a console that sends longer ones
/// is cut at the byte cap anyway, and what is kept of each of its rows stays small.
pub const MAX_VALUE_CHARS: usize = 256;

/// What one poll read from a console, as far as it read.
#[derive(Debug, Default)]
pub struct Answer {
    pub clients: Vec<PoolerClient>,
    pub servers: Vec<PoolerServer>,
    pub database_pool_modes: BTreeMap<String, String>,
    pub settings: BTreeMap<String, String>,
}

impl Answer {
    /// A `SHOW DATABASES` row: its pool mode, when it has one.
    pub fn add_database(&mut self, r: &SimpleQueryRow) {
        if let (Some(name), Some(mode)) = (text(r, "name"), text(r, "pool_mode")) {
            self.database_pool_modes.insert(name, mode);
        }
    }

    /// A `SHOW CONFIG` row, kept when it is one of [`SETTINGS`].
    pub fn add_setting(&mut self, r: &SimpleQueryRow) {
        if let Some(key) = text(r, "key")
            && SETTINGS.contains(&key.as_str())
        {
            let value = text(r, "value").unwrap_or_default();
            self.settings.insert(key, value);
        }
    }

    pub fn into_pooler(self, address: String, rows: u64, outcome: Outcome) -> Pooler {
        Pooler {
            address,
            error: None,
            settings: self.settings,
            database_pool_modes: self.database_pool_modes,
            clients: self.clients,
            servers: self.servers,
            answered_at: Some(Utc::now()),
            rows,
            truncated: outcome != Outcome::Complete,
        }
    }
}

/// A `SHOW CLIENTS` row. `own` is this end of pgtls's admin console connection.
pub fn client(r: &SimpleQueryRow, own: Option<SocketAddr>) -> PoolerClient {
    let address = text(r, "addr");
    let port = number(r, "port");
    let tls = text(r, "tls").and_then(|t| PoolerTls::parse(&t));
    let database = text(r, "database");
    let monitor = database.as_deref() == Some("pgbouncer")
        && own.is_some_and(|own| {
            address.as_deref() == Some(own.ip().to_string().as_str()) && port == Some(i32::from(own.port()))
        });
    PoolerClient {
        application_name: text(r, "application_name"),
        user: text(r, "user"),
        database,
        class: client_class(address.as_deref(), tls.as_ref()),
        address,
        port,
        tls,
        state: text(r, "state"),
        connect_time: time(r, "connect_time"),
        ptr: text(r, "ptr").unwrap_or_default(),
        monitor,
    }
}

/// A `SHOW SERVERS` row.
pub fn server(r: &SimpleQueryRow) -> PoolerServer {
    PoolerServer {
        user: text(r, "user"),
        database: text(r, "database"),
        address: text(r, "addr"),
        port: number(r, "port"),
        local_address: text(r, "local_addr"),
        local_port: number(r, "local_port"),
        remote_pid: number(r, "remote_pid").filter(|pid| *pid > 0),
        tls: text(r, "tls").and_then(|t| PoolerTls::parse(&t)),
        state: text(r, "state"),
        link: text(r, "link"),
    }
}

/// A text column, `None` when absent (an older PgBouncer) or empty; a value that is not UTF-8 becomes
/// [`NOT_UTF8`] rather than failing the poll.
fn text(row: &SimpleQueryRow, name: &str) -> Option<String> {
    if !row.columns().iter().any(|c| c.name() == name) {
        return None;
    }
    match row.try_get(name) {
        Ok(Some(v)) if v.chars().nth(MAX_VALUE_CHARS).is_some() => {
            let mut cut: String = v.chars().take(MAX_VALUE_CHARS - 1).collect();
            cut.push('…');
            Some(cut)
        }
        Ok(Some(v)) if !v.is_empty() => Some(v.to_string()),
        Ok(_) => None,
        Err(_) => Some(NOT_UTF8.to_string()),
    }
}

fn number(row: &SimpleQueryRow, name: &str) -> Option<i32> {
    text(row, name).and_then(|v| v.trim().parse().ok())
}

/// PgBouncer's `connect_time`: `2026-12-03 09:20:10 UTC`.
fn time(row: &SimpleQueryRow, name: &str) -> Option<DateTime<Utc>> {
    let v = text(row, name)?;
    NaiveDateTime::parse_from_str(v.trim_end_matches(" UTC"), "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ConnClass;

    #[test]
    fn tls_columns_and_classes() {
        let t = PoolerTls::parse("TLSv1.2/ECDHE-RSA-CHACHA20-POLY1305/ECDH=X25519").unwrap();
        assert_eq!(t.version, "TLSv1.2");
        assert_eq!(t.cipher, "ECDHE-RSA-CHACHA20-POLY1305");
        assert_eq!(PoolerTls::parse(""), None);
        assert_eq!(client_class(Some("127.0.0.1"), Some(&t)), ConnClass::Tls12);
        assert_eq!(client_class(Some("127.0.0.1"), None), ConnClass::PlainTcp);
        assert_eq!(client_class(Some("unix"), None), ConnClass::Local);
    }
}
