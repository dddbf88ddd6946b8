//! `pgtls demo --raise-after`: the demo server's minimum goes to TLSv1.3, and the story the dashboard then tells
//! is real: TLS 1.2 handshakes refused (and read from the server log into the history), the sslmode=prefer client
//! back without TLS, the TLS 1.2 sessions opened before still there.

use crate::common;

use std::time::Duration;

use pgtls::collect::poller::{self, HistorySetup, PollerCommand, PollerEvent};
use pgtls::lab::SessionKind;
use pgtls::lab::demo::{self, grant_monitor, monitor_conninfo};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raising_the_minimum_refuses_tls12_downgrades_prefer_and_leaves_open_sessions() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    grant_monitor(&lab).await.unwrap();
    let clients = demo::start(&lab).await.unwrap();
    let before: Vec<_> = clients
        .sessions
        .iter()
        .filter(|s| matches!(s.kind, SessionKind::Tls12 | SessionKind::Tls12Prefer))
        .collect();
    assert!(before.len() >= 5, "the cast has TLS 1.2 clients, one of them on prefer");

    let setup = HistorySetup {
        server_log: Some(lab.log_file.clone()),
        ..HistorySetup::none()
    };
    let (tx, mut events) = tokio::sync::mpsc::channel(16);
    let poller = poller::spawn(
        common::params(&monitor_conninfo(&lab), home.path()),
        None,
        Duration::from_millis(300),
        setup,
        tx,
    );

    demo::raise_after(&lab, Duration::from_millis(100))
        .await
        .unwrap()
        .await
        .unwrap()
        .expect("the minimum is raised");
    let admin = lab.admin().await.unwrap();
    let setting: String = admin
        .query_one("SHOW ssl_min_protocol_version", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(setting, "TLSv1.3");

    for session in &before {
        session
            .execute("SELECT 1")
            .await
            .expect("a TLS 1.2 session opened before lingers");
    }
    assert!(
        lab.open(SessionKind::Tls12, "reports", "cron-report").await.is_err(),
        "a TLS 1.2 client that requires TLS is refused"
    );
    let fallback = lab
        .open(SessionKind::Tls12Prefer, "invoicing", "invoice-sync")
        .await
        .expect("sslmode=prefer gets in");
    let ssl: bool = admin
        .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = $1", &[&fallback.pid])
        .await
        .unwrap()
        .get(0);
    assert!(!ssl, "the prefer client fell back to plain text");

    // The refusal reaches the history from the server log, as the dashboard shows it.
    poller.commands.send(PollerCommand::SendHistory(true)).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        assert!(std::time::Instant::now() < deadline, "no refusal in the history");
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            Ok(Some(PollerEvent::History(history))) => {
                let refused = history
                    .refused
                    .iter()
                    .any(|r| r.record.address.starts_with("127.0.0.1") && r.record.handshakes > 0);
                let changed = history
                    .logged_settings
                    .iter()
                    .any(|c| c.name == "ssl_min_protocol_version" && c.value.as_deref() == Some("TLSv1.3"));
                if refused && changed {
                    break;
                }
            }
            Ok(Some(PollerEvent::Polled {
                history: Some(history), ..
            })) => {
                if history.refused.iter().any(|r| r.record.handshakes > 0) {
                    break;
                }
            }
            Ok(Some(_)) => {}
            other => panic!("poller ended: {other:?}"),
        }
    }
}
