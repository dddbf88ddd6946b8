//! The lab and the poller over a server's life: a port taken before start-up, a server stopped and started again.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail by panicking")]

use crate::common;

use std::time::Duration;

use pgtls::collect::poller::{self, HistorySetup, PollerCommand, PollerEvent};
use pgtls::lab::{Lab, LabOptions, SUPERUSER};
use tokio::sync::mpsc;

/// PostgreSQL cannot be given port 0, so the lab picks a free port and then starts the server on it; another process
/// may bind it in between. Held here on purpose, the lab must come up on another port.
#[tokio::test]
async fn a_taken_port_moves_the_lab_to_another() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let held = holder.local_addr().unwrap().port();
    let lab = Lab::start(LabOptions {
        port: Some(held),
        ..LabOptions::default()
    })
    .await
    .unwrap_or_else(|e| common::fail(&format!("the lab cannot start: {e:#}")));
    assert_ne!(lab.port, held);
    let admin = lab.admin().await.unwrap();
    let listening: String = admin
        .query_one("SELECT current_setting('port')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(listening, lab.port.to_string());
    let log = std::fs::read_to_string(&lab.log_file).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("could not bind") && l.contains("Address already in use")),
        "the first start-up met the held port: {log}"
    );
    drop(holder);
}

async fn next(events: &mut mpsc::Receiver<PollerEvent>) -> PollerEvent {
    match tokio::time::timeout(Duration::from_secs(30), events.recv()).await {
        Ok(Some(event)) => event,
        other => panic!("no poller event: {other:?}"),
    }
}

/// The next `Failed` event's wait, skipping nothing else: any other event here is a bug in the test's assumption.
async fn next_retry(events: &mut mpsc::Receiver<PollerEvent>) -> Duration {
    match next(events).await {
        PollerEvent::Failed { retry_in, .. } => retry_in,
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// While the server is down the wait doubles from 0.5 s to a 10 s ceiling; once it is back the poller reconnects by
/// itself and the next failure starts from 0.5 s again. `r` (RefreshNow) cuts each wait short without changing
/// the schedule, so the test does not sit through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poller_backs_off_while_the_server_is_down_and_reconnects_when_it_is_back() {
    let mut lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let params = common::params(&format!("{} sslmode=require", lab.conninfo(SUPERUSER)), home.path());
    let (tx, mut events) = mpsc::channel(16);
    // A long interval: polls run only when asked, so each event below answers one command.
    let handle = poller::spawn(params, None, Duration::from_secs(3600), HistorySetup::none(), tx);
    let send = |cmd| handle.commands.send(cmd).expect("the poller runs");
    assert!(matches!(next(&mut events).await, PollerEvent::Connected { .. }));
    assert!(matches!(next(&mut events).await, PollerEvent::Polled { .. }));

    lab.stop_server().unwrap();
    send(PollerCommand::RefreshNow);
    let mut waits = vec![next_retry(&mut events).await];
    for _ in 0..6 {
        send(PollerCommand::RefreshNow);
        waits.push(next_retry(&mut events).await);
    }
    let secs: Vec<f64> = waits.iter().map(Duration::as_secs_f64).collect();
    assert_eq!(secs, vec![0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]);

    lab.start_server().unwrap();
    send(PollerCommand::RefreshNow);
    assert!(matches!(next(&mut events).await, PollerEvent::Connected { .. }));
    match next(&mut events).await {
        PollerEvent::Polled { snapshot, .. } => assert!(!snapshot.sessions.is_empty()),
        other => panic!("expected a poll after reconnecting, got {other:?}"),
    }

    lab.stop_server().unwrap();
    send(PollerCommand::RefreshNow);
    assert_eq!(
        next_retry(&mut events).await,
        Duration::from_millis(500),
        "a connection that worked starts the schedule over"
    );
}
