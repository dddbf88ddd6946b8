//! The real binary in tmux against the real lab: what a user sees and types.

use crate::common;

use std::time::Duration;

use crate::common::tmux::Tmux;
use pgtls::lab::{SUPERUSER, SessionKind};

const WAIT: Duration = Duration::from_secs(20);

/// Whether a sessions-table row (not the alerts pane, which names applications too) mentions `needle`.
fn row(screen: &str, needle: &str) -> bool {
    screen.lines().any(|l| l.contains(needle) && l.contains("127.0.0.1:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_sort_filter_drill_down_and_quit_by_keystrokes() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let _sessions = [
        lab.open(SessionKind::Tls13, "app13", "modern-app").await.unwrap(),
        lab.open(SessionKind::Tls12, "app12", "holdout-app").await.unwrap(),
        lab.open(SessionKind::PlainTcp, "plain", "plaintext-app").await.unwrap(),
    ];
    let conninfo = format!("{} sslmode=require", lab.conninfo(SUPERUSER));
    let tmux = Tmux::start(&[&conninfo, "--interval", "0.5"], home.path(), 120, 36);

    let screen = tmux.wait_for("all three kinds of rows", WAIT, |s| {
        row(s, "modern-app") && row(s, "holdout-app") && row(s, "plaintext-app")
    });
    // The table row, not the alerts pane, which names applications too.
    let line = |screen: &str, needle: &str| {
        screen
            .lines()
            .find(|l| l.contains(needle) && l.contains("127.0.0.1:"))
            .unwrap_or("")
            .to_string()
    };
    assert!(line(&screen, "modern-app").contains("TLSv1.3"), "{screen}");
    assert!(line(&screen, "holdout-app").contains("TLSv1.2"), "{screen}");
    assert!(line(&screen, "plaintext-app").contains("no TLS"), "{screen}");
    // Default sort: worst exposure first, so the plain-text row comes before the TLS 1.2 one.
    let pos = |needle: &str| screen.find(&line(&screen, needle)).unwrap();
    assert!(pos("plaintext-app") < pos("holdout-app") && pos("holdout-app") < pos("modern-app"));

    // Sort by the next column (CIPHER), then reverse.
    tmux.keys(&["s"]);
    tmux.wait_for("CIPHER sorted ascending", WAIT, |s| {
        s.contains("CIPHER▲") || s.contains("CIPHER ▲")
    });
    tmux.keys(&["i"]);
    tmux.wait_for("CIPHER sorted descending", WAIT, |s| {
        s.contains("CIPHER▼") || s.contains("CIPHER ▼")
    });

    // Filter to the holdout, then drill into it.
    tmux.keys(&["/"]);
    tmux.type_text("holdout");
    let filtered = tmux.wait_for("the filter applied", WAIT, |s| {
        // The whole word must have arrived: after "h" alone the TLS 1.3 row still matches ("SHA").
        s.contains("/holdout") && row(s, "holdout-app") && !row(s, "plaintext-app") && !row(s, "modern-app")
    });
    assert!(filtered.contains("1 match"), "{filtered}");
    tmux.keys(&["Enter"]);
    tmux.keys(&["Enter"]);
    let detail = tmux.wait_for("the drill-down", WAIT, |s| s.contains("Would be refused"));
    assert!(detail.contains("holdout-app") && detail.contains("TLSv1.2"), "{detail}");
    tmux.keys(&["Escape"]);
    tmux.wait_for("back to the table", WAIT, |s| {
        !s.contains("Would be refused") && row(s, "holdout-app")
    });
    tmux.keys(&["Escape"]);
    tmux.wait_for("filter cleared", WAIT, |s| {
        row(s, "plaintext-app") && row(s, "modern-app")
    });

    tmux.keys(&["q"]);
    assert_eq!(tmux.exit_status(WAIT), Some(0), "pgtls exits 0 on q");
}

/// The Holdouts screen from the ledger the dashboard keeps: filter to a TLS 1.2 client, open its drill-down with its
/// version, cipher and sessions, and come back to the same row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holdouts_filter_and_drill_into_a_client_by_keystrokes() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let _sessions = [
        lab.open(SessionKind::Tls13, "app13", "modern-app").await.unwrap(),
        lab.open(SessionKind::Tls12, "app12", "holdout-app").await.unwrap(),
    ];
    let conninfo = format!("{} sslmode=require", lab.conninfo(SUPERUSER));
    let tmux = Tmux::start(&[&conninfo, "--interval", "0.5"], home.path(), 120, 36);
    tmux.wait_for("live data", WAIT, |s| row(s, "holdout-app"));

    tmux.keys(&["h"]);
    // A Holdouts row: the application with its "2×TLSv1.2" tally, which neither the sessions table nor the alerts
    // pane writes.
    let client_row = |s: &str, app: &str| s.lines().any(|l| l.contains(app) && l.contains("×TLSv1"));
    tmux.wait_for("both clients in Holdouts", WAIT, |s| {
        s.contains("SEEN AS") && client_row(s, "holdout-app") && client_row(s, "modern-app")
    });
    tmux.keys(&["/"]);
    tmux.type_text("holdout");
    tmux.wait_for("the filter applied", WAIT, |s| {
        s.contains("/holdout") && client_row(s, "holdout-app") && !client_row(s, "modern-app")
    });
    tmux.keys(&["Enter"]);
    tmux.keys(&["Enter"]);
    let drill = tmux.wait_for("the client's drill-down", WAIT, |s| {
        s.contains("Client holdout-app") && s.contains("How it connected")
    });
    assert!(drill.contains("TLSv1.2 ×"), "{drill}");
    assert!(drill.contains("Latest sessions"), "{drill}");
    assert!(drill.contains("poll"), "{drill}");
    tmux.keys(&["Escape"]);
    tmux.wait_for("back to the Holdouts table", WAIT, |s| {
        s.contains("SEEN AS") && client_row(s, "holdout-app") && !s.contains("How it connected")
    });
    tmux.keys(&["q"]);
    assert_eq!(tmux.exit_status(WAIT), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_shows_the_disconnect_then_live_data_again() {
    let mut lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let conninfo = format!("{} sslmode=require", lab.conninfo(SUPERUSER));
    let tmux = Tmux::start(&[&conninfo, "--interval", "0.5"], home.path(), 120, 36);
    tmux.wait_for("live data", WAIT, |s| {
        s.contains("TLSv1.3") && !s.contains("DISCONNECTED")
    });

    lab.stop_server().unwrap();
    let screen = tmux.wait_for("the disconnect banner", WAIT, |s| s.contains("DISCONNECTED"));
    assert!(screen.contains("TLSv1.3"), "the last data stays on screen:\n{screen}");

    lab.start_server().unwrap();
    tmux.keys(&["r"]);
    tmux.wait_for("live data again", Duration::from_secs(30), |s| {
        !s.contains("DISCONNECTED") && s.contains("TLSv1.3")
    });
    // Still responsive after the reconnect.
    tmux.keys(&["?"]);
    tmux.wait_for("help", WAIT, |s| s.contains("Sort by the next column"));
    tmux.keys(&["q"]);
    assert_eq!(tmux.exit_status(WAIT), Some(0));
}

/// The monitor's backend stops answering: within the poll timeout the data is marked stale and the banner
/// says why; the poller reconnects on a new backend and the dashboard is live again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_poll_is_shown_as_stale_then_recovers() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let conninfo = format!(
        "{} sslmode=require application_name=pgtls-stall",
        lab.conninfo(SUPERUSER)
    );
    let tmux = Tmux::start(
        &[&conninfo, "--interval", "1", "--poll-timeout", "3"],
        home.path(),
        120,
        36,
    );
    tmux.wait_for("live data", WAIT, |s| {
        s.contains("TLSv1.3") && !s.contains("DISCONNECTED")
    });
    let monitor: i32 = lab
        .admin()
        .await
        .unwrap()
        .query_one(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgtls-stall'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let pid = nix::unistd::Pid::from_raw(monitor);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let screen = tmux.wait_for("the stall banner", WAIT, |s| {
        s.contains("DISCONNECTED") && s.contains("stale")
    });
    assert!(screen.contains("did not answer the poll within 3 s"), "{screen}");
    tmux.wait_for("live again on a new backend", WAIT, |s| {
        !s.contains("DISCONNECTED") && s.contains("TLSv1.3")
    });
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    tmux.keys(&["q"]);
    assert_eq!(tmux.exit_status(WAIT), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_terminal_shows_the_sessions_compactly_and_a_tiny_one_a_note() {
    let lab = common::lab().await;
    let _session = lab.open(SessionKind::Tls12, SUPERUSER, "small-pane-app").await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let conninfo = format!("{} sslmode=require", lab.conninfo(SUPERUSER));
    let tmux = Tmux::start(&[&conninfo], home.path(), 60, 15);
    let screen = tmux.wait_for("the compact view", WAIT, |s| {
        s.contains("APPLICATION") && s.contains("small-pane-app") && s.contains("TLSv1.2")
    });
    assert!(!screen.to_lowercase().contains("too small"), "{screen}");
    tmux.keys(&["q"]);
    assert_eq!(tmux.exit_status(WAIT), Some(0));
    let tmux = Tmux::start(&[&conninfo], home.path(), 38, 8);
    tmux.wait_for("the too-small note", WAIT, |s| s.to_lowercase().contains("too small"));
    tmux.keys(&["q"]);
    assert_eq!(tmux.exit_status(WAIT), Some(0));
}

/// `kill -INT` and `kill -QUIT` end the dashboard like `q`: out of the alternate screen, echo and line editing
/// back, exit 0. Their default actions would kill pgtls with the terminal left raw in the alternate screen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_and_sigquit_restore_the_terminal() {
    use nix::sys::signal::Signal;
    let lab = common::lab().await;
    for signal in [Signal::SIGINT, Signal::SIGQUIT, Signal::SIGTERM] {
        let home = tempfile::tempdir().unwrap();
        let conninfo = format!("{} sslmode=require", lab.conninfo(SUPERUSER));
        let tmux = Tmux::start(&[&conninfo, "--interval", "0.5"], home.path(), 120, 36);
        tmux.wait_for("live data", WAIT, |s| s.contains("TLSv1.3"));
        assert!(
            tmux.alternate_screen(),
            "{signal}: the dashboard runs in the alternate screen"
        );
        tmux.signal(signal);
        assert_eq!(tmux.exit_status(WAIT), Some(0), "{signal}");
        let modes = tmux.modes_after_exit(WAIT);
        let words: Vec<&str> = modes.split_whitespace().collect();
        assert!(
            words.contains(&"echo") && words.contains(&"icanon"),
            "{signal}: {modes}"
        );
        assert!(!tmux.alternate_screen(), "{signal}: still in the alternate screen");
    }
}

/// The demo registers its own SIGINT handler for start-up (so its server is removed); once the dashboard is up,
/// `kill -INT` must still end it, with the terminal restored.
#[test]
fn the_demo_quits_on_sigint_once_the_dashboard_is_up() {
    let home = tempfile::tempdir().unwrap();
    // Wide enough for the header to show the whole path of the file with the connection lines.
    let tmux = Tmux::start(&["demo", "--interval", "0.5"], home.path(), 300, 36);
    // While it runs the demo says how to reach its server: on J, and in a file the header names (the lines
    // printed before the dashboard are under its alternate screen). Waited for whole: a capture may be half drawn.
    let screen = tmux.wait_for("the demo dashboard naming the file", Duration::from_secs(90), |s| {
        s.contains("TLSv1.3") && s.contains("connect.txt: psql lines")
    });
    tmux.keys(&["J"]);
    tmux.wait_for("the connection lines", WAIT, |s| {
        s.contains("Connect to the demo server") && s.contains("sslmode=verify-full") && s.contains("psql -h")
    });
    tmux.keys(&["Escape"]);
    tmux.wait_for("the lines closed", WAIT, |s| !s.contains("Connect to the demo server"));
    let file = screen
        .split_whitespace()
        .find(|w| w.ends_with("connect.txt:"))
        .map(|w| w.trim_end_matches(':').to_string())
        .unwrap_or_else(|| panic!("no file named in the header:\n{screen}"));
    let text = std::fs::read_to_string(&file).expect("the file the header names");
    assert!(text.contains("psql") && text.contains("sslmode=verify-full"), "{text}");
    tmux.signal(nix::sys::signal::Signal::SIGINT);
    assert_eq!(tmux.exit_status(Duration::from_secs(30)), Some(0));
    assert!(!tmux.alternate_screen(), "still in the alternate screen");
}

/// SIGQUIT during the demo's start-up is handled like SIGINT: the half-started server is removed and the demo
/// says it was interrupted, instead of dumping core and leaving the server behind.
#[test]
fn sigquit_during_demo_start_up_is_an_interruption() {
    let home = tempfile::tempdir().unwrap();
    let tmux = Tmux::start(&["demo"], home.path(), 120, 36);
    tmux.wait_for("the demo starting", Duration::from_secs(30), |s| {
        s.contains("starting a throwaway PostgreSQL")
    });
    tmux.signal(nix::sys::signal::Signal::SIGQUIT);
    assert_eq!(tmux.exit_status(Duration::from_secs(30)), Some(1));
    tmux.wait_for("the interruption reported", WAIT, |s| s.contains("demo: interrupted"));
}
