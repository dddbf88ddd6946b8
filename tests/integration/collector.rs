//! The collector against a real PostgreSQL started by the test: sessions, own connection, privileges.

use crate::common;

use std::collections::HashMap;

use pgtls::collect::Collector;
use pgtls::lab::{SUPERUSER, SessionKind};
use pgtls::model::{ConnClass, Setting, Verification};

#[tokio::test]
async fn a_known_mix_of_sessions_appears_exactly() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let mix = [
        (SessionKind::Tls13, "app13", "tls13-a"),
        (SessionKind::Tls13, "app13", "tls13-b"),
        (SessionKind::Tls13, "app13", "tls13-c"),
        (SessionKind::Tls12, "app12", "tls12-a"),
        (SessionKind::Tls12, "app12", "tls12-b"),
        (SessionKind::PlainTcp, "plain", "plain-a"),
        (SessionKind::PlainTcp, "plain", "plain-b"),
        (SessionKind::UnixSocket, "local", "socket-a"),
    ];
    let mut open = Vec::new();
    for (kind, user, app) in mix {
        open.push((lab.open(kind, user, app).await.unwrap(), user, app));
    }
    let conninfo = format!("{} sslmode=require", lab.conninfo(SUPERUSER));
    let mut collector = Collector::connect(&common::params(&conninfo, home.path()))
        .await
        .unwrap();
    let snap = collector.poll().await.unwrap();
    let by_pid: HashMap<i32, _> = snap.sessions.iter().map(|s| (s.pid, s)).collect();

    for (session, user, app) in &open {
        let seen = by_pid
            .get(&session.pid)
            .unwrap_or_else(|| panic!("session {app} missing"));
        assert_eq!(seen.user.as_deref(), Some(*user));
        assert_eq!(seen.application_name.as_deref(), Some(*app));
        assert_eq!(seen.state.as_deref(), Some("idle"), "idle sessions are listed");
        match session.kind {
            SessionKind::Tls13 | SessionKind::Tls12 | SessionKind::Tls12Prefer => {
                let expected = if session.kind == SessionKind::Tls13 {
                    "TLSv1.3"
                } else {
                    "TLSv1.2"
                };
                let tls = seen.tls.as_ref().expect("TLS details");
                assert_eq!(tls.version, expected, "{app}");
                assert!(!tls.cipher.is_empty(), "{app} has a cipher");
                assert!(tls.bits.unwrap_or(0) >= 128, "{app} has bits");
                let class = if expected == "TLSv1.3" {
                    ConnClass::Tls13
                } else {
                    ConnClass::Tls12
                };
                assert_eq!(seen.class, class);
            }
            SessionKind::PlainTcp => {
                assert_eq!(seen.class, ConnClass::PlainTcp, "{app}");
                assert!(seen.tls.is_none());
                assert_eq!(seen.client_addr.as_deref(), Some("127.0.0.1"));
            }
            SessionKind::UnixSocket => {
                assert_eq!(seen.class, ConnClass::Local, "{app}");
                assert_eq!(seen.client_port, Some(-1));
            }
            SessionKind::ClientCert => unreachable!(),
        }
    }
    let counts = snap.class_counts();
    // The monitor's own TLS 1.3 session is listed (and marked) but not counted.
    assert_eq!(
        snap.own_session().map(|s| (s.class, s.monitor)),
        Some((ConnClass::Tls13, true))
    );
    assert_eq!(
        (
            counts.tls13,
            counts.tls12,
            counts.plain_tcp,
            counts.local,
            counts.unknown
        ),
        (3, 2, 2, 1, 0)
    );

    // The monitor's own connection: TLS 1.3 from pg_stat_ssl and ssl_is_used() from sslinfo.
    assert!(lab.sslinfo, "the lab installs sslinfo");
    let own = &snap.monitor;
    assert_eq!(own.tls.as_ref().map(|t| t.version.as_str()), Some("TLSv1.3"));
    assert_eq!(own.ssl_is_used, Some(true));
    assert_eq!(own.sources, vec!["pg_stat_ssl", "sslinfo"]);
    assert_eq!(own.sslmode, "require");
    assert_eq!(own.verification, Verification::None);
    assert_eq!(snap.server.version_num / 10_000, lab.major_version);
    assert_eq!(snap.setting("ssl"), &Setting::Set("on".into()));
    assert_eq!(
        snap.setting("ssl_min_protocol_version"),
        &Setting::Set("TLSv1.2".into())
    );
}

#[tokio::test]
async fn client_certificate_details_are_reported() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let cert = lab.open(SessionKind::ClientCert, "ignored", "with-cert").await.unwrap();
    let conninfo = format!(
        "{} sslmode=verify-full sslrootcert={}",
        lab.conninfo(SUPERUSER),
        lab.certs.ca_cert.display()
    );
    let conninfo = conninfo.replace("host=127.0.0.1", "host=localhost hostaddr=127.0.0.1");
    let mut collector = Collector::connect(&common::params(&conninfo, home.path()))
        .await
        .unwrap();
    let snap = collector.poll().await.unwrap();
    assert_eq!(snap.monitor.verification, Verification::ChainAndHost);
    let seen = snap.sessions.iter().find(|s| s.pid == cert.pid).unwrap();
    let tls = seen.tls.as_ref().unwrap();
    assert_eq!(tls.client_dn.as_deref(), Some("/O=pgtls lab/CN=pgtls_cert"));
    assert_eq!(tls.issuer_dn.as_deref(), Some("/O=pgtls lab/CN=pgtls lab root CA"));
    assert!(
        tls.client_serial
            .as_deref()
            .is_some_and(|s| s.chars().all(|c| c.is_ascii_digit()))
    );
}

#[tokio::test]
async fn an_unprivileged_monitor_sees_unknown_sessions_and_hidden_settings_until_granted() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let others = [
        lab.open(SessionKind::Tls12, "app12", "holdout").await.unwrap(),
        lab.open(SessionKind::PlainTcp, "plain", "plaintext").await.unwrap(),
    ];
    lab.ensure_role("monitor").await.unwrap();
    let conninfo = format!("{} sslmode=require", lab.conninfo("monitor"));

    let mut collector = Collector::connect(&common::params(&conninfo, home.path()))
        .await
        .unwrap();
    assert!(!collector.preflight().privileges.read_all_stats);
    let snap = collector.poll().await.unwrap();
    for other in &others {
        let seen = snap
            .sessions
            .iter()
            .find(|s| s.pid == other.pid)
            .expect("hidden sessions are still listed");
        assert_eq!(
            seen.class,
            ConnClass::Unknown,
            "never 'no TLS' for a session we may not see"
        );
        assert!(seen.tls.is_none());
    }
    assert!(snap.sessions.iter().all(|s| s.class != ConnClass::PlainTcp));
    assert_eq!(snap.setting("ssl_min_protocol_version"), &Setting::Hidden);
    assert_eq!(snap.setting("ssl_ciphers"), &Setting::Hidden);
    assert_eq!(snap.setting("ssl"), &Setting::Set("on".into()));
    assert_eq!(
        snap.monitor.tls.as_ref().map(|t| t.version.as_str()),
        Some("TLSv1.3"),
        "own row is always visible"
    );

    lab.admin()
        .await
        .unwrap()
        .batch_execute("GRANT pg_read_all_stats, pg_read_all_settings TO monitor")
        .await
        .unwrap();
    let mut collector = Collector::connect(&common::params(&conninfo, home.path()))
        .await
        .unwrap();
    let privileges = collector.preflight().privileges;
    assert!(privileges.read_all_stats && privileges.read_all_settings && !privileges.superuser);
    let snap = collector.poll().await.unwrap();
    let class_of = |pid| snap.sessions.iter().find(|s| s.pid == pid).map(|s| s.class);
    assert_eq!(class_of(others[0].pid), Some(ConnClass::Tls12));
    assert_eq!(class_of(others[1].pid), Some(ConnClass::PlainTcp));
    assert_eq!(snap.class_counts().unknown, 0);
    assert_eq!(
        snap.setting("ssl_min_protocol_version"),
        &Setting::Set("TLSv1.2".into())
    );
    assert!(matches!(snap.setting("ssl_ciphers"), Setting::Set(_)));
}

#[tokio::test]
async fn a_reload_shows_on_the_next_poll() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let conninfo = format!("{} sslmode=require", lab.conninfo(SUPERUSER));
    let mut collector = Collector::connect(&common::params(&conninfo, home.path()))
        .await
        .unwrap();
    assert_eq!(
        collector.poll().await.unwrap().setting("ssl_min_protocol_version"),
        &Setting::Set("TLSv1.2".into())
    );
    lab.set_config("ssl_min_protocol_version", "TLSv1.3").await.unwrap();
    // The reload is signalled; give the postmaster a moment to apply it.
    let mut seen = None;
    for _ in 0..50 {
        let value = collector
            .poll()
            .await
            .unwrap()
            .setting("ssl_min_protocol_version")
            .clone();
        if value == Setting::Set("TLSv1.3".into()) {
            seen = Some(value);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen, Some(Setting::Set("TLSv1.3".into())));
}

/// Own connections are known by pid, never by name: a client that calls itself "pgtls" is a client, while the
/// monitor's backend and the helpers a collector is told about (the demo's set-up sessions) are marked and counted
/// nowhere.
#[tokio::test]
async fn own_connections_are_marked_by_pid_and_a_client_named_pgtls_is_counted() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let impostor = lab.open(SessionKind::Tls13, "impostor", "pgtls").await.unwrap();
    let admin = lab.admin().await.unwrap();
    let admin_pid: i32 = admin
        .query_one("SELECT pg_catalog.pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let conninfo = format!("{} sslmode=require application_name=pgtls", lab.conninfo(SUPERUSER));
    let mut collector = Collector::connect(&common::params(&conninfo, home.path()))
        .await
        .unwrap()
        .with_helpers(Some(lab.own_pids()));
    let snap = collector.poll().await.unwrap();
    let own: Vec<i32> = snap.sessions.iter().filter(|s| s.monitor).map(|s| s.pid).collect();
    let mut expected = vec![snap.monitor.pid, admin_pid];
    expected.sort_unstable();
    assert_eq!(own, expected);
    let named_pgtls: Vec<_> = snap
        .sessions
        .iter()
        .filter(|s| s.application_name.as_deref() == Some("pgtls"))
        .map(|s| (s.pid, s.monitor))
        .collect();
    assert_eq!(named_pgtls.len(), 2, "{named_pgtls:?}");
    assert!(named_pgtls.contains(&(impostor.pid, false)));
    assert!(named_pgtls.contains(&(snap.monitor.pid, true)));
    let counts = snap.class_counts();
    assert_eq!(counts.total(), snap.sessions.len() - 2);
    assert_eq!(counts.tls13, 1, "the impostor, not the monitor");
    assert_eq!(counts.local, 0, "the admin session is the lab's own");

    // A closed helper stays own while the server still lists it, and is forgotten once it is gone.
    drop(admin);
    for _ in 0..50 {
        let snap = collector.poll().await.unwrap();
        match snap.sessions.iter().find(|s| s.pid == admin_pid) {
            Some(lingering) => assert!(lingering.monitor),
            None => break,
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let snap = collector.poll().await.unwrap();
    assert!(snap.sessions.iter().all(|s| s.pid != admin_pid));
    assert_eq!(snap.class_counts().tls13, 1);
}

/// pg_hba.conf's rules: the superuser reads them; a role without the grant is told apart by SQLSTATE (42501), so
/// the after-change view says "not permitted" with the grant to give, not a generic failure.
#[tokio::test]
async fn hba_rules_are_read_or_refused_by_kind() {
    use pgtls::model::HbaUnreadable;
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let superuser = format!("{} sslmode=require", lab.conninfo(SUPERUSER));
    let collector = Collector::connect(&common::params(&superuser, home.path()))
        .await
        .unwrap();
    let rules = collector
        .hba_rules()
        .await
        .expect("a superuser reads pg_hba_file_rules");
    assert!(
        rules.iter().any(|r| r.kind == "hostssl"),
        "the lab's pg_hba.conf has hostssl lines: {rules:?}"
    );

    lab.ensure_role("hba_reader").await.unwrap();
    let plain_role = format!("{} sslmode=require", lab.conninfo("hba_reader"));
    let collector = Collector::connect(&common::params(&plain_role, home.path()))
        .await
        .unwrap();
    let refused = collector
        .hba_rules()
        .await
        .expect_err("an ordinary role may not read pg_hba_file_rules");
    assert_eq!(refused, HbaUnreadable::NotPermitted);
    assert!(
        refused
            .to_string()
            .contains("GRANT SELECT ON pg_catalog.pg_hba_file_rules"),
        "{refused}"
    );
}
