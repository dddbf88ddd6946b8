//! `K` and `C` against the real lab: the poller signals a backend only while it still has the start time shown,
//! and the server's refusal comes back as its own message.

use crate::common;

use std::time::Duration;

use pgtls::collect::act::{SignalKind, SignalOutcome, SignalRequest};
use pgtls::collect::poller::{self, HistorySetup, PollerCommand, PollerEvent, PollerHandle};
use pgtls::lab::{SUPERUSER, SessionKind};
use pgtls::model::Snapshot;
use tokio::sync::mpsc;

async fn start(conninfo: &str, home: &std::path::Path) -> (PollerHandle, mpsc::Receiver<PollerEvent>, Snapshot) {
    let (tx, mut events) = mpsc::channel(16);
    let poller = poller::spawn(
        common::params(conninfo, home),
        None,
        Duration::from_secs(3600),
        HistorySetup::none(),
        tx,
    );
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            Ok(Some(PollerEvent::Polled { snapshot, .. })) => {
                return (poller, events, std::sync::Arc::unwrap_or_clone(snapshot));
            }
            Ok(Some(PollerEvent::Failed { error, .. })) => panic!("poller failed: {error}"),
            Ok(Some(_)) => {}
            other => panic!("no snapshot: {other:?}"),
        }
    }
}

async fn signalled(events: &mut mpsc::Receiver<PollerEvent>) -> (SignalRequest, SignalOutcome) {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            Ok(Some(PollerEvent::Signalled { request, outcome })) => return (request, outcome),
            Ok(Some(_)) => {}
            other => panic!("no answer to the signal: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_acts_only_on_the_backend_with_the_start_time_shown() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let victim = lab.open(SessionKind::Tls12, "app12", "victim").await.unwrap();
    let sleeper = lab.open(SessionKind::PlainTcp, "plain", "sleeper").await.unwrap();
    let conninfo = format!("{} sslmode=require", lab.conninfo(SUPERUSER));
    let (poller, mut events, snap) = start(&conninfo, home.path()).await;
    let start_of = |pid| {
        snap.sessions
            .iter()
            .find(|s| s.pid == pid)
            .and_then(|s| s.backend_start)
            .expect("the superuser sees the start time")
    };
    let shown = start_of(victim.pid);

    // A start time one microsecond off is another session that took the pid: nothing is done.
    let wrong = SignalRequest {
        kind: SignalKind::Terminate,
        pid: victim.pid,
        backend_start: shown + chrono::Duration::microseconds(1),
    };
    poller.commands.send(PollerCommand::Signal(wrong)).unwrap();
    assert_eq!(signalled(&mut events).await, (wrong, SignalOutcome::Gone));
    victim.execute("SELECT 1").await.expect("the session is untouched");

    // pgtls's own backend is never signalled, even when asked by pid and start time.
    let own = SignalRequest {
        kind: SignalKind::Terminate,
        pid: snap.monitor.pid,
        backend_start: start_of(snap.monitor.pid),
    };
    poller.commands.send(PollerCommand::Signal(own)).unwrap();
    assert_eq!(signalled(&mut events).await.1, SignalOutcome::Gone);

    // Cancel stops the query and keeps the session.
    let sleeping = {
        let client = &sleeper.client;
        client.simple_query("SELECT pg_catalog.pg_sleep(30)")
    };
    let cancel = SignalRequest {
        kind: SignalKind::Cancel,
        pid: sleeper.pid,
        backend_start: start_of(sleeper.pid),
    };
    let admin = lab.admin().await.unwrap();
    let send_cancel = async {
        // The query must be running before it can be cancelled: wait until the server says it sleeps.
        common::wait_until("the sleeper's query running", Duration::from_secs(10), async || {
            let waiting: Option<String> = admin
                .query_one(
                    "SELECT wait_event FROM pg_catalog.pg_stat_activity WHERE pid = $1",
                    &[&sleeper.pid],
                )
                .await
                .unwrap()
                .get(0);
            if waiting.as_deref() == Some("PgSleep") {
                Ok(())
            } else {
                Err(waiting)
            }
        })
        .await;
        poller.commands.send(PollerCommand::Signal(cancel)).unwrap();
        signalled(&mut events).await
    };
    let (slept, answer) = tokio::join!(sleeping, send_cancel);
    assert_eq!(answer, (cancel, SignalOutcome::Sent));
    let error = slept.expect_err("the query was cancelled");
    assert_eq!(
        error.code(),
        Some(&tokio_postgres::error::SqlState::QUERY_CANCELED),
        "{error:?}"
    );
    sleeper.execute("SELECT 1").await.expect("the session stays");

    // The right start time terminates it.
    let right = SignalRequest {
        backend_start: shown,
        ..wrong
    };
    poller.commands.send(PollerCommand::Signal(right)).unwrap();
    assert_eq!(signalled(&mut events).await, (right, SignalOutcome::Sent));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while victim.execute("SELECT 1").await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "the session is still there");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A role without pg_signal_backend is refused by the server, and the server's words come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_comes_back_with_the_servers_message() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let target = lab.open(SessionKind::Tls13, "someone", "target").await.unwrap();
    lab.ensure_role("weak_monitor").await.unwrap();
    lab.admin()
        .await
        .unwrap()
        .batch_execute("GRANT pg_read_all_stats TO weak_monitor")
        .await
        .unwrap();
    let conninfo = format!("{} sslmode=require", lab.conninfo("weak_monitor"));
    let (poller, mut events, snap) = start(&conninfo, home.path()).await;
    let shown = snap
        .sessions
        .iter()
        .find(|s| s.pid == target.pid)
        .and_then(|s| s.backend_start)
        .unwrap();
    let request = SignalRequest {
        kind: SignalKind::Terminate,
        pid: target.pid,
        backend_start: shown,
    };
    poller.commands.send(PollerCommand::Signal(request)).unwrap();
    match signalled(&mut events).await.1 {
        // 13 to 15 say "must be a member of ... pg_signal_backend", 16+ "permission denied ..." with a detail
        // naming the role.
        SignalOutcome::Refused(message) => assert!(message.contains("pg_signal_backend"), "{message}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    target.execute("SELECT 1").await.expect("the session is untouched");
}

/// Whether a sessions-table row mentions `needle`.
fn row(screen: &str, needle: &str) -> bool {
    screen.lines().any(|l| l.contains(needle) && l.contains("127.0.0.1:"))
}

/// The real binary in tmux: `K` `y` on a lab session ends it; with `--read-only` `K` only says it is off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k_then_y_in_the_dashboard_ends_the_session_and_read_only_refuses() {
    use common::tmux::Tmux;
    const WAIT: Duration = Duration::from_secs(20);
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let victim = lab.open(SessionKind::Tls12, "app12", "doomed-app").await.unwrap();
    let _other = lab.open(SessionKind::Tls13, "app13", "bystander-app").await.unwrap();
    let conninfo = format!("{} sslmode=require", lab.conninfo(SUPERUSER));

    let tmux = Tmux::start(&[&conninfo, "--interval", "0.5", "--read-only"], home.path(), 120, 36);
    tmux.wait_for("live data", WAIT, |s| row(s, "doomed-app"));
    tmux.keys(&["/"]);
    tmux.type_text("doomed");
    tmux.keys(&["Enter"]);
    tmux.keys(&["K"]);
    let screen = tmux.wait_for("the read-only refusal", WAIT, |s| s.contains("read-only"));
    assert!(!screen.contains("Terminate session"), "{screen}");
    tmux.keys(&["q"]);
    assert_eq!(tmux.exit_status(WAIT), Some(0));
    victim.execute("SELECT 1").await.expect("read-only did nothing");

    let tmux = Tmux::start(&[&conninfo, "--interval", "0.5"], home.path(), 120, 36);
    tmux.wait_for("live data", WAIT, |s| row(s, "doomed-app"));
    tmux.keys(&["/"]);
    tmux.type_text("doomed");
    tmux.keys(&["Enter"]);
    tmux.keys(&["K"]);
    let popup = tmux.wait_for("the confirmation", WAIT, |s| {
        s.contains(&format!("Terminate session {}?", victim.pid))
    });
    assert!(popup.contains("doomed-app") && popup.contains("app12"), "{popup}");
    tmux.keys(&["n"]);
    tmux.wait_for("answered no", WAIT, |s| s.contains("nothing done"));
    victim.execute("SELECT 1").await.expect("n did nothing");
    tmux.keys(&["K"]);
    tmux.wait_for("the confirmation again", WAIT, |s| s.contains("Terminate session"));
    tmux.keys(&["y"]);
    tmux.wait_for("terminated and gone", WAIT, |s| {
        s.contains(&format!("pid {} terminated", victim.pid)) && !row(s, "doomed-app")
    });
    tmux.keys(&["q"]);
    assert_eq!(tmux.exit_status(WAIT), Some(0));
    assert!(victim.execute("SELECT 1").await.is_err(), "the session is gone");
}
