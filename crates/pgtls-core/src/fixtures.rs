//! Deterministic snapshots for render tests, screenshots and benchmarks.
//!
//! These are not a fake server: the data layer is always tested against a real PostgreSQL.
//! They exist so views can be drawn the same way every time.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::model::{
    ConnClass, MonitorConnection, Privileges, SNAPSHOT_FORMAT_VERSION, ServerInfo, Session, Setting, Snapshot, TlsInfo,
    Verification,
};

/// The fixed "now" of every fixture.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 9, 30, 0)
        .single()
        .unwrap_or_default()
}

/// A bare session of the given class with plausible TLS details.
pub fn session(pid: i32, class: ConnClass) -> Session {
    let (tls, port) = match class {
        ConnClass::Tls13 => (
            Some(tls("TLSv1.3", "TLS_AES_256_GCM_SHA384")),
            Some(40_000 + pid % 20_000),
        ),
        ConnClass::Tls12 => (
            Some(tls("TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384")),
            Some(40_000 + pid % 20_000),
        ),
        ConnClass::TlsOlder => (
            Some(tls("TLSv1.1", "ECDHE-RSA-AES256-SHA")),
            Some(40_000 + pid % 20_000),
        ),
        ConnClass::PlainTcp | ConnClass::Gss => (None, Some(40_000 + pid % 20_000)),
        ConnClass::Local => (None, Some(-1)),
        ConnClass::Unknown => (None, None),
    };
    let visible = class != ConnClass::Unknown;
    Session {
        pid,
        class,
        leader_pid: None,
        user: None,
        database: None,
        application_name: None,
        client_addr: (visible && class != ConnClass::Local).then(|| format!("10.0.{}.{}", pid % 7, 10 + pid % 200)),
        client_hostname: None,
        client_port: port,
        backend_type: visible.then(|| "client backend".to_string()),
        state: visible.then(|| "idle".to_string()),
        backend_start: Some(now() - Duration::seconds(i64::from(pid % 5_000) * 7)),
        xact_start: None,
        query_start: visible.then(|| now() - Duration::seconds(3)),
        state_change: visible.then(|| now() - Duration::seconds(3)),
        wait_event_type: visible.then(|| "Client".to_string()),
        wait_event: visible.then(|| "ClientRead".to_string()),
        query: Some(if visible {
            "SELECT 1".to_string()
        } else {
            "<insufficient privilege>".to_string()
        }),
        query_id: None,
        tls,
        gss: None,
        undecoded: Vec::new(),
        monitor: false,
        pooler: None,
    }
}

fn tls(version: &str, cipher: &str) -> TlsInfo {
    TlsInfo {
        version: version.to_string(),
        cipher: cipher.to_string(),
        bits: Some(256),
        client_dn: None,
        client_serial: None,
        issuer_dn: None,
    }
}

fn named(mut s: Session, user: &str, db: &str, app: &str, state: &str, query: &str) -> Session {
    s.user = Some(user.to_string());
    s.database = Some(db.to_string());
    s.application_name = Some(app.to_string());
    if s.class != ConnClass::Unknown {
        s.state = Some(state.to_string());
        s.query = Some(query.to_string());
    }
    s
}

/// Server settings as a PostgreSQL 15 server with TLS on reports them to a privileged monitor.
pub fn settings() -> BTreeMap<String, Setting> {
    let set = |v: &str| Setting::Set(v.to_string());
    [
        ("ssl", set("on")),
        ("ssl_ca_file", set("/etc/ssl/pg/root.crt")),
        ("ssl_cert_file", set("/etc/ssl/pg/server.crt")),
        ("ssl_ciphers", set("HIGH:MEDIUM:+3DES:!aNULL")),
        ("ssl_crl_dir", set("")),
        ("ssl_crl_file", set("")),
        ("ssl_dh_params_file", set("")),
        ("ssl_ecdh_curve", set("prime256v1")),
        ("ssl_groups", Setting::Absent),
        ("ssl_key_file", set("/etc/ssl/pg/server.key")),
        ("ssl_library", set("OpenSSL")),
        ("ssl_max_protocol_version", set("")),
        ("ssl_min_protocol_version", set("TLSv1.2")),
        ("ssl_passphrase_command_supports_reload", set("off")),
        ("ssl_prefer_server_ciphers", set("on")),
        ("ssl_tls13_ciphers", Setting::Absent),
        ("require_secure_transport", Setting::Absent),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// A realistic mix: TLS 1.3 apps, TLS 1.2 holdouts, plaintext clients, a local socket, the monitor.
pub fn snapshot() -> Snapshot {
    let mut sessions = vec![
        named(
            session(4101, ConnClass::Tls13),
            "pgtls",
            "postgres",
            "pgtls",
            "active",
            "SELECT … FROM pg_stat_activity",
        ),
        named(
            session(4107, ConnClass::Tls13),
            "orders",
            "shop",
            "orders-api",
            "idle",
            "COMMIT",
        ),
        named(
            session(4112, ConnClass::Tls13),
            "orders",
            "shop",
            "orders-api",
            "active",
            "SELECT * FROM orders WHERE id = $1",
        ),
        named(
            session(4118, ConnClass::Tls13),
            "web",
            "shop",
            "storefront",
            "idle",
            "SELECT 1",
        ),
        named(
            session(4125, ConnClass::Tls13),
            "web",
            "shop",
            "storefront",
            "idle in transaction",
            "UPDATE carts SET …",
        ),
        named(
            session(4131, ConnClass::Tls12),
            "billing",
            "shop",
            "billing-batch",
            "idle",
            "SELECT pg_sleep(0)",
        ),
        named(
            session(4138, ConnClass::Tls12),
            "billing",
            "shop",
            "billing-batch",
            "active",
            "INSERT INTO invoices …",
        ),
        named(
            session(4144, ConnClass::Tls12),
            "reports",
            "dwh",
            "legacy-reports",
            "idle",
            "SELECT count(*) FROM sales",
        ),
        named(
            session(4150, ConnClass::PlainTcp),
            "etl",
            "dwh",
            "nightly-etl",
            "active",
            "COPY sales FROM STDIN",
        ),
        named(
            session(4157, ConnClass::PlainTcp),
            "grafana",
            "postgres",
            "grafana",
            "idle",
            "SELECT now()",
        ),
        named(
            session(4163, ConnClass::Local),
            "postgres",
            "postgres",
            "psql",
            "idle",
            "VACUUM ANALYZE",
        ),
        named(
            session(4170, ConnClass::Unknown),
            "audit",
            "shop",
            "audit-agent",
            "",
            "",
        ),
    ];
    sessions.sort_by_key(|s| s.pid);
    let mut snap = Snapshot {
        format_version: SNAPSHOT_FORMAT_VERSION,
        taken_at: now(),
        poll_ms: 1.4,
        server: ServerInfo {
            host: "db.example.internal".to_string(),
            port: 5432,
            version_num: 150_018,
            version: "15.18".to_string(),
        },
        monitor: MonitorConnection {
            pid: 4101,
            user: "pgtls".to_string(),
            database: "postgres".to_string(),
            sslmode: "verify-full".to_string(),
            verification: Verification::ChainAndHost,
            tls: sessions.iter().find(|s| s.pid == 4101).and_then(|s| s.tls.clone()),
            ssl_is_used: Some(true),
            sources: vec!["pg_stat_ssl".to_string(), "sslinfo".to_string()],
            others: Vec::new(),
        },
        privileges: Privileges {
            superuser: false,
            read_all_stats: true,
            read_all_settings: true,
        },
        settings: settings(),
        conf_load_time: None,
        sessions,
        poolers: Vec::new(),
        platform: crate::model::Platform {
            name: crate::model::PlatformName::SelfHosted,
            evidence: vec![
                "no provider's mark; the monitor's role has ALTER SYSTEM on ssl_min_protocol_version".into(),
            ],
        },
    };
    snap.mark_own(&[]);
    snap
}

/// `n` sessions with a spread of classes, users and applications, for benchmarks.
pub fn generated(n: usize) -> Snapshot {
    let mut snap = snapshot();
    let classes = [
        ConnClass::Tls13,
        ConnClass::Tls13,
        ConnClass::Tls13,
        ConnClass::Tls12,
        ConnClass::PlainTcp,
        ConnClass::Local,
    ];
    snap.sessions = (0..n)
        .map(|i| {
            let pid = 10_000 + i32::try_from(i).unwrap_or(i32::MAX - 10_000);
            let class = classes[i % classes.len()];
            named(
                session(pid, class),
                &format!("app_user_{}", i % 37),
                &format!("db{}", i % 5),
                &format!("service-{}", i % 53),
                if i % 4 == 0 { "active" } else { "idle" },
                "SELECT id, payload FROM events WHERE created_at > now() - interval '1 minute'",
            )
        })
        .collect();
    snap
}

/// The poll after TLSv1.3 took effect (an hour before [`now`]): a standby still streams over TLS 1.2.
pub fn snapshot_after() -> Snapshot {
    let mut snap = snapshot();
    snap.settings
        .insert("ssl_min_protocol_version".into(), Setting::Set("TLSv1.3".into()));
    snap.settings
        .insert("log_connections".into(), Setting::Set("on".into()));
    snap.conf_load_time = Some(now() - Duration::hours(1));
    let mut standby = named(
        session(4160, ConnClass::Tls12),
        "replicator",
        "",
        "standby-b",
        "active",
        "",
    );
    standby.database = None;
    standby.backend_type = Some("walsender".into());
    snap.sessions.push(standby);
    snap.sessions.sort_by_key(|s| s.pid);
    snap.mark_own(&[]);
    snap
}

/// The fixture server behind a PgBouncer (`pool.example.internal:6432`, session pooling): three pooled sessions,
/// each on the pooler's TLS 1.3 leg, whose clients come in on TLS 1.3, TLS 1.2 and plain text.
pub fn snapshot_pooled() -> Snapshot {
    use crate::model::{Pooler, PoolerClient, PoolerServer, PoolerTls};
    let mut snap = snapshot();
    let pooler_addr = "10.0.9.9";
    let clients = [
        (5101, "0x1a", "checkout", Some("TLSv1.3/TLS_AES_256_GCM_SHA384"), 41001),
        (5102, "0x1b", "pos-terminal", None, 41002),
        (
            5103,
            "0x1c",
            "old-kiosk",
            Some("TLSv1.2/ECDHE-RSA-AES256-GCM-SHA384/ECDH=X25519"),
            41003,
        ),
    ];
    let mut pooler = Pooler::failed("pool.example.internal:6432".to_string(), String::new());
    pooler.error = None;
    pooler.settings = [
        ("client_tls_sslmode", "allow"),
        ("client_tls_protocols", "secure"),
        ("server_tls_sslmode", "require"),
        ("server_tls_protocols", "secure"),
        ("pool_mode", "session"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (i, (pid, ptr, app, tls, port)) in clients.into_iter().enumerate() {
        let tls = tls.and_then(PoolerTls::parse);
        let octet = 20 + i;
        pooler.clients.push(PoolerClient {
            application_name: Some(app.to_string()),
            user: Some("shop".to_string()),
            database: Some("shop".to_string()),
            address: Some(format!("10.0.4.{octet}")),
            port: Some(52000 + i as i32),
            class: crate::analysis::pooler::client_class(Some("10.0.4.1"), tls.as_ref()),
            tls: tls.clone(),
            state: Some("active".to_string()),
            connect_time: Some(now() - Duration::seconds(300)),
            ptr: ptr.to_string(),
            monitor: false,
        });
        pooler.servers.push(PoolerServer {
            user: Some("shop".to_string()),
            database: Some("shop".to_string()),
            address: Some("db.example.internal".to_string()),
            port: Some(5432),
            local_address: Some(pooler_addr.to_string()),
            local_port: Some(port),
            remote_pid: Some(pid),
            tls: PoolerTls::parse("TLSv1.3/TLS_AES_256_GCM_SHA384"),
            state: Some("active".to_string()),
            link: Some(ptr.to_string()),
        });
        let mut s = session(pid, ConnClass::Tls13);
        s.user = Some("shop".to_string());
        s.database = Some("shop".to_string());
        s.application_name = Some(app.to_string());
        s.client_addr = Some(pooler_addr.to_string());
        s.client_port = Some(port);
        snap.sessions.push(s);
    }
    snap.sessions.sort_by_key(|s| s.pid);
    crate::analysis::pooler::join(&mut snap.sessions, std::slice::from_ref(&pooler));
    snap.poolers = vec![pooler];
    snap
}

/// A TLS session from the log, for ledger tests: user `u`, database `d`, the cipher named after the version.
pub fn log_session(at: DateTime<Utc>, app: &str, address: &str, version: &str) -> crate::analysis::ledger::Entry {
    crate::analysis::ledger::Entry::Session {
        at,
        key: crate::analysis::ledger::ClientKey {
            user: "u".into(),
            database: "d".into(),
            application: app.into(),
            address: address.into(),
            pooler: None,
        },
        class: crate::model::ConnClass::from_tls_version(version),
        tls_version: Some(version.into()),
        cipher: Some(format!("cipher-of-{version}")),
        source: crate::analysis::ledger::Source::Log,
        address: Some(address.into()),
        replication: false,
        hba_line: None,
        pid: None,
    }
}
