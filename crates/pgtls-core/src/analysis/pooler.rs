//! Sessions behind PgBouncer: which server sessions a pooler serves, and whose own TLS leg each one carries.
//!
//! pg_stat_ssl describes the pooler's connection, not the application's. A pooler's `SHOW SERVERS` names the
//! backend it holds (`remote_pid`) and its own end of the connection (`local_addr:local_port`, which the server
//! sees as `client_addr:client_port`); in session pooling its `link` is the `ptr` of the client it serves.

use std::collections::{BTreeMap, HashMap};

use crate::model::{
    ClientLeg, ConnClass, Pooler, PoolerClient, PoolerJoin, PoolerLeg, PoolerServer, PoolerTls, Session,
};

use super::change::Change;

/// Mark every session a pooler serves with [`Session::pooler`]. A session is a pooler's when its address and
/// port are one of the pooler's server connections; the backend pid must agree too before the client is named,
/// and only in session pooling. Anything short of that is [`PoolerJoin::Unknown`]: via pooler, client leg
/// unknown, never shown as the client's own TLS.
pub fn join(sessions: &mut [Session], poolers: &[Pooler]) {
    for pooler in poolers {
        let by_endpoint: HashMap<(&str, i32), &PoolerServer> = pooler
            .servers
            .iter()
            .filter_map(|s| Some(((s.local_address.as_deref()?, s.local_port?), s)))
            .collect();
        if by_endpoint.is_empty() {
            continue;
        }
        let clients: HashMap<&str, &PoolerClient> = pooler
            .clients
            .iter()
            .filter(|c| !c.ptr.is_empty())
            .map(|c| (c.ptr.as_str(), c))
            .collect();
        for s in sessions.iter_mut().filter(|s| !s.monitor && s.pooler.is_none()) {
            let (Some(addr), Some(port)) = (s.client_addr.as_deref(), s.client_port) else {
                continue;
            };
            let Some(server) = by_endpoint.get(&(addr, port)) else {
                continue;
            };
            let (join, client) = if pooler.error.is_some() || server.remote_pid != Some(s.pid) {
                (PoolerJoin::Unknown, None)
            } else if pooler.pool_mode(server.database.as_deref().unwrap_or_default()) != Some("session") {
                (PoolerJoin::Transaction, None)
            } else {
                match server.link.as_deref() {
                    None => (PoolerJoin::Idle, None),
                    Some(link) => match clients.get(link) {
                        Some(c) => (PoolerJoin::Client, Some(leg_of(c))),
                        None => (PoolerJoin::Unknown, None),
                    },
                }
            };
            s.pooler = Some(PoolerLeg {
                address: pooler.address.clone(),
                join,
                client,
            });
        }
    }
}

/// How a pooler client's own leg travels.
pub fn client_class(address: Option<&str>, tls: Option<&PoolerTls>) -> ConnClass {
    match (address, tls) {
        (_, Some(t)) => ConnClass::from_tls_version(&t.version),
        (Some("unix"), None) => ConnClass::Local,
        (Some(_), None) => ConnClass::PlainTcp,
        (None, None) => ConnClass::Unknown,
    }
}

fn leg_of(c: &PoolerClient) -> ClientLeg {
    ClientLeg {
        address: c.address.clone(),
        port: c.port,
        tls: c.tls.clone(),
        class: c.class,
        application_name: c.application_name.clone(),
        user: c.user.clone(),
    }
}

/// The setting that would refuse a client of `pooler`'s client side under `target`.
pub fn client_setting(target: Change) -> &'static str {
    match target {
        Change::MinTls13 => "client_tls_protocols",
        Change::TlsRequired => "client_tls_sslmode",
    }
}

/// "pooler 127.0.0.1:6432's client_tls_protocols": what a what-if entry names as refusing a pooled client.
pub fn refused_by_pooler(address: &str, target: Change) -> String {
    format!("pooler {address}'s {}", client_setting(target))
}

/// The server setting that refuses a direct client (or a pooler's own connection) under `target`.
pub fn refused_by_server(target: Change) -> &'static str {
    match target {
        Change::MinTls13 => "ssl_min_protocol_version",
        Change::TlsRequired => "pg_hba.conf hostssl (or require_secure_transport)",
    }
}

/// A refused pooled client that sslmode=prefer/allow could bring back without TLS: only where the pooler's own
/// client_tls_sslmode (in `settings`, as last read) still admits plain text.
pub fn client_downgrade_rule(address: &str, settings: &BTreeMap<String, String>) -> Option<String> {
    let mode = settings.get("client_tls_sslmode")?;
    matches!(mode.as_str(), "allow" | "prefer" | "disable")
        .then(|| format!("pooler {address}: client_tls_sslmode = {mode}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::session;

    fn pooler(mode: &str) -> Pooler {
        let client = |ptr: &str, port: i32, tls: Option<&str>, app: &str| PoolerClient {
            application_name: Some(app.to_string()),
            user: Some("app".into()),
            database: Some("postgres".into()),
            address: Some("10.1.1.1".into()),
            port: Some(port),
            tls: tls.and_then(PoolerTls::parse),
            class: client_class(Some("10.1.1.1"), tls.and_then(PoolerTls::parse).as_ref()),
            state: Some("active".into()),
            connect_time: None,
            ptr: ptr.to_string(),
            monitor: false,
        };
        let server = |pid: i32, port: i32, link: Option<&str>| PoolerServer {
            user: Some("app".into()),
            database: Some("postgres".into()),
            address: Some("10.0.0.5".into()),
            port: Some(5432),
            local_address: Some("10.0.0.9".into()),
            local_port: Some(port),
            remote_pid: Some(pid),
            tls: PoolerTls::parse("TLSv1.3/TLS_AES_256_GCM_SHA384"),
            state: Some("active".into()),
            link: link.map(str::to_string),
        };
        Pooler {
            address: "pool:6432".into(),
            error: None,
            settings: BTreeMap::from([("pool_mode".to_string(), mode.to_string())]),
            database_pool_modes: BTreeMap::new(),
            clients: vec![
                client("0xa", 50001, None, "plain-app"),
                client("0xb", 50002, Some("TLSv1.2/ECDHE-RSA-AES128-GCM-SHA256"), "tls12-app"),
            ],
            servers: vec![
                server(101, 40001, Some("0xa")),
                server(102, 40002, Some("0xb")),
                server(103, 40003, None),
                server(999, 40004, Some("0xa")),
            ],
            answered_at: None,
            rows: 0,
            truncated: false,
        }
    }

    fn pooled(pid: i32, port: i32) -> Session {
        let mut s = session(pid, ConnClass::Tls13);
        s.client_addr = Some("10.0.0.9".into());
        s.client_port = Some(port);
        s
    }

    fn sessions() -> Vec<Session> {
        let mut direct = session(7, ConnClass::PlainTcp);
        direct.client_addr = Some("10.0.0.9".into());
        direct.client_port = Some(1234);
        vec![
            pooled(101, 40001),
            pooled(102, 40002),
            pooled(103, 40003),
            pooled(104, 40004),
            direct,
        ]
    }

    #[test]
    fn session_pooling_names_each_client_leg() {
        let mut s = sessions();
        join(&mut s, &[pooler("session")]);
        let plain = s[0].pooler.as_ref().unwrap();
        assert_eq!(plain.join, PoolerJoin::Client);
        let leg = plain.client.as_ref().unwrap();
        assert_eq!(leg.class, ConnClass::PlainTcp);
        assert_eq!(leg.endpoint(), "10.1.1.1:50001");
        assert_eq!(s[0].client_class(), ConnClass::PlainTcp);
        assert_eq!(s[0].class, ConnClass::Tls13, "the session's own leg stays the pooler's");
        let tls12 = s[1].pooler.as_ref().unwrap();
        assert_eq!(tls12.client.as_ref().unwrap().tls.as_ref().unwrap().version, "TLSv1.2");
        assert_eq!(s[2].pooler.as_ref().unwrap().join, PoolerJoin::Idle);
        // Its address is the pooler's, its pid is not the one the pooler holds there: never its client's TLS.
        let mismatch = s[3].pooler.as_ref().unwrap();
        assert_eq!(mismatch.join, PoolerJoin::Unknown);
        assert_eq!(mismatch.client, None);
        assert_eq!(s[3].client_class(), ConnClass::Tls13);
        assert_eq!(
            s[4].pooler, None,
            "a direct client from the same host is not the pooler's"
        );
    }

    #[test]
    fn transaction_pooling_names_no_client() {
        let mut s = sessions();
        join(&mut s, &[pooler("transaction")]);
        assert!(
            s[..3]
                .iter()
                .all(|s| s.pooler.as_ref().unwrap().join == PoolerJoin::Transaction)
        );
        assert!(s.iter().all(|s| s.pooler.as_ref().is_none_or(|p| p.client.is_none())));
        // A database's own pool mode wins over the pooler's.
        let mut p = pooler("transaction");
        p.database_pool_modes.insert("postgres".into(), "session".into());
        let mut s = sessions();
        join(&mut s, &[p]);
        assert_eq!(s[0].pooler.as_ref().unwrap().join, PoolerJoin::Client);
    }

    #[test]
    fn a_pooler_that_did_not_answer_leaves_its_sessions_unknown() {
        let mut p = pooler("session");
        p.error = Some("timeout".into());
        p.clients.clear();
        let mut s = sessions();
        join(&mut s, &[p]);
        assert!(
            s[..4]
                .iter()
                .all(|s| s.pooler.as_ref().unwrap().join == PoolerJoin::Unknown)
        );
        assert_eq!(s[4].pooler, None);
    }

    #[test]
    fn downgrades_and_the_setting_named() {
        let mut p = pooler("session");
        p.settings.insert("client_tls_protocols".into(), "secure".into());
        p.settings.insert("client_tls_sslmode".into(), "allow".into());
        assert!(
            client_downgrade_rule(&p.address, &p.settings)
                .unwrap()
                .contains("client_tls_sslmode = allow")
        );
        p.settings.insert("client_tls_protocols".into(), "tlsv1.3".into());
        p.settings.insert("client_tls_sslmode".into(), "require".into());
        assert_eq!(client_downgrade_rule(&p.address, &p.settings), None);
        assert_eq!(
            refused_by_pooler("pool:6432", Change::MinTls13),
            "pooler pool:6432's client_tls_protocols"
        );
    }
}
