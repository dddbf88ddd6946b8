//! A stalled poll is noticed: bounded in time, cancelled, and the connection given up, against the lab.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail by panicking")]

use crate::common;

use std::time::{Duration, Instant};

use pgtls::collect::{CollectError, Collector, Phase};
use pgtls::lab::SUPERUSER;
use tokio_postgres::error::SqlState;

fn signal(pid: i32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).expect("signal the backend");
}

/// The monitor's own backend stops answering (SIGSTOP): the poll ends after the poll timeout, not never; a new
/// connection works meanwhile; once the backend runs again it sees the cancel and the closed socket and goes.
#[tokio::test]
async fn a_stopped_backend_ends_the_poll_at_the_timeout_and_leaves_only_itself_behind() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let params = common::params(
        &format!("{} application_name=stall-test", lab.conninfo(SUPERUSER)),
        home.path(),
    );
    let limit = Duration::from_secs(5);
    let mut collector = Collector::connect_with(&params, limit).await.unwrap();
    collector.poll().await.expect("a first poll works");
    let stuck = collector.preflight().monitor_pid;

    signal(stuck, nix::sys::signal::Signal::SIGSTOP);
    let started = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(20), collector.poll())
        .await
        .expect("the poll is bounded");
    let waited = started.elapsed();
    match outcome {
        Err(CollectError::Stalled {
            phase: Phase::Poll,
            after,
        }) => assert_eq!(after, limit),
        other => panic!("expected a stalled poll, got {other:?}"),
    }
    assert!(waited >= limit, "not before the timeout: {waited:?}");
    assert!(collector.is_closed(), "the stalled connection is given up");
    assert!(
        pgtls::collect::CollectError::Stalled {
            phase: Phase::Poll,
            after: limit
        }
        .to_string()
        .contains("did not answer the poll within 5 s"),
    );

    // Reconnecting works while the old backend is still stopped.
    let mut fresh = Collector::connect_with(&params, limit).await.unwrap();
    let snapshot = fresh.poll().await.unwrap();
    let ours: Vec<i32> = snapshot
        .sessions
        .iter()
        .filter(|s| s.application_name.as_deref() == Some("stall-test"))
        .map(|s| s.pid)
        .collect();
    assert!(ours.contains(&stuck) && ours.len() == 2, "{ours:?}");

    // Let it run: the cancel and the closed socket end it; only the fresh session remains.
    signal(stuck, nix::sys::signal::Signal::SIGCONT);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let snapshot = fresh.poll().await.unwrap();
        let left: Vec<i32> = snapshot
            .sessions
            .iter()
            .filter(|s| s.application_name.as_deref() == Some("stall-test"))
            .map(|s| s.pid)
            .collect();
        if left == vec![fresh.preflight().monitor_pid] {
            break;
        }
        assert!(Instant::now() < deadline, "the stopped backend did not go: {left:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A lock on a catalog that pg_stat_activity joins (as VACUUM FULL takes): the session's lock_timeout ends the
/// poll with the server's own error, well before the client-side timeout.
#[tokio::test]
async fn a_catalog_lock_ends_the_poll_with_lock_timeout() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let params = common::params(&lab.conninfo(SUPERUSER), home.path());
    let limit = Duration::from_secs(6);
    let mut collector = Collector::connect_with(&params, limit).await.unwrap();
    collector.poll().await.unwrap();

    let locker = lab.admin().await.unwrap();
    locker
        .batch_execute("BEGIN; LOCK TABLE pg_catalog.pg_database IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(20), collector.poll())
        .await
        .expect("the poll is bounded");
    locker.batch_execute("ROLLBACK").await.unwrap();
    // The server gave up first: had pgtls's own poll timeout fired, the outcome would be Stalled, not the server's
    // lock_timeout error, told by its SQLSTATE (55P03) rather than its words.
    match outcome {
        Err(CollectError::Poll { code, message }) => {
            assert_eq!(code, Some(SqlState::LOCK_NOT_AVAILABLE), "{message}");
            assert!(
                message.contains("lock timeout"),
                "the user sees the server's words: {message}"
            );
        }
        other => panic!("expected the server's lock timeout, got {other:?}"),
    }
}

/// The start-up itself stalls (a lock on pg_authid, as VACUUM FULL takes, holds every login): the poller
/// reports it after connect_timeout but keeps one attempt in flight, so the server holds one backend of
/// ours, not one per retry; when the lock goes, that attempt connects.
#[tokio::test]
async fn a_stalled_login_holds_one_backend_not_one_per_retry() {
    use pgtls::collect::poller::{HistorySetup, PollerEvent, spawn};
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let params = common::params(
        &format!(
            "{} connect_timeout=2 application_name=one-attempt",
            lab.conninfo(SUPERUSER)
        ),
        home.path(),
    );
    let locker = lab.admin().await.unwrap();
    locker
        .batch_execute("BEGIN; LOCK TABLE pg_catalog.pg_authid IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let (tx, mut events) = tokio::sync::mpsc::channel(16);
    let _poller = spawn(params, None, Duration::from_secs(1), HistorySetup::none(), tx);
    let mut stalls = 0;
    let until = Instant::now() + Duration::from_secs(12);
    while Instant::now() < until {
        match tokio::time::timeout(Duration::from_secs(5), events.recv()).await {
            Ok(Some(PollerEvent::Failed { error, .. })) => {
                assert!(
                    matches!(
                        error,
                        CollectError::Stalled {
                            phase: Phase::ConnectionAttempt,
                            ..
                        }
                    ),
                    "{error}"
                );
                stalls += 1;
            }
            Ok(Some(other)) => panic!("nothing can connect yet: {other:?}"),
            _ => {}
        }
    }
    assert!(stalls >= 3, "reported each time: {stalls}");
    // Backends still in start-up (not yet in pg_stat_activity): the postmaster's children whose process title
    // says they are authenticating.
    let postmaster: i32 = std::fs::read_to_string(lab.root().join("data/postmaster.pid"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let waiting = starting_backends(postmaster);
    assert_eq!(waiting, 1, "one attempt in flight, whatever the retries");
    locker.batch_execute("ROLLBACK").await.unwrap();
    let connected = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(PollerEvent::Connected { .. }) = events.recv().await {
                return;
            }
        }
    })
    .await;
    assert!(connected.is_ok(), "the waiting attempt connects once the lock goes");
}

fn starting_backends(postmaster: i32) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<i32>().ok());
            let title = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            ppid == Some(postmaster) && String::from_utf8_lossy(&title).contains("authentication")
        })
        .count()
}
