//! The dashboard over two lab servers (tmux): the Servers screen lists both with their sessions by TLS version,
//! Enter opens one server's own dashboard, Esc comes back, a server that stops shows DOWN.

use crate::common;

use std::time::Duration;

use crate::common::tmux::Tmux;
use pgtls::lab::{Lab, LabOptions, SUPERUSER, SessionKind};

const WAIT: Duration = Duration::from_secs(60);

/// The screen line holding `name`'s row.
fn row<'a>(screen: &'a str, name: &str) -> &'a str {
    screen.lines().find(|l| l.contains(name)).unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_screen_lists_both_labs_and_drills_into_one() {
    let (a, b) = tokio::join!(Lab::start(LabOptions::default()), Lab::start(LabOptions::default()));
    let (mut a, b) = (a.expect("lab a"), b.expect("lab b"));
    let mut open = Vec::new();
    for kind in [SessionKind::Tls12, SessionKind::PlainTcp, SessionKind::PlainTcp] {
        open.push(a.open(kind, SUPERUSER, "legacy-batch").await.expect("a session"));
    }
    for kind in [SessionKind::Tls13, SessionKind::Tls13] {
        open.push(b.open(kind, SUPERUSER, "modern-api").await.expect("b session"));
    }
    let home = tempfile::tempdir().expect("home");
    let targets = home.path().join("targets.toml");
    std::fs::write(
        &targets,
        format!(
            "[[target]]\nname = \"alpha\"\nconninfo = \"{}\"\n\n[[target]]\nname = \"bravo\"\nconninfo = \"{}\"\n",
            a.conninfo(SUPERUSER),
            b.conninfo(SUPERUSER)
        ),
    )
    .expect("targets");
    let targets = targets.display().to_string();
    let tmux = Tmux::start(&["--targets", &targets, "--interval", "0.5"], home.path(), 140, 30);

    let screen = tmux.wait_for("both servers with their sessions", WAIT, |s| {
        s.contains("Servers")
            && row(s, "alpha").contains(" up ")
            && row(s, "bravo").contains(" up ")
            && row(s, "alpha").split_whitespace().any(|w| w == "2")
    });
    // alpha: 1 TLS 1.2, 2 plain; bravo: 2 TLS 1.3 (pgtls's own connection is not counted).
    let alpha: Vec<&str> = row(&screen, "alpha").split_whitespace().collect();
    let bravo: Vec<&str> = row(&screen, "bravo").split_whitespace().collect();
    assert!(
        alpha.windows(4).any(|w| w == ["0", "1", "0", "2"]),
        "alpha TLS1.3 TLS1.2 OLDER PLAIN: {alpha:?}\n{screen}"
    );
    assert!(
        bravo.windows(4).any(|w| w == ["2", "0", "0", "0"]),
        "bravo: {bravo:?}\n{screen}"
    );
    assert!(screen.contains("2 plain-text sessions"), "{screen}");

    // Sort by PLAIN (worst first), then open the selected one: alpha.
    for _ in 0..7 {
        tmux.keys(&["s"]);
    }
    tmux.wait_for("sorted by plain", WAIT, |s| s.contains("PLAIN ▼"));
    tmux.keys(&["g", "Enter"]);
    let dashboard = tmux.wait_for("alpha's own dashboard", WAIT, |s| {
        s.contains("legacy-batch") && s.contains("Sessions") && !s.contains("CHAIN ROOT")
    });
    assert!(!dashboard.contains("modern-api"), "only alpha's sessions: {dashboard}");
    // The fleet keeps each target's history without the client records; opening the target asks for them, so
    // its Holdouts screen lists the client (a fleet-detail history would leave it empty).
    tmux.keys(&["h"]);
    tmux.wait_for("alpha's holdouts with its client", WAIT, |s| {
        s.lines()
            .any(|l| l.contains("legacy-batch") && l.contains("no TLS (TCP)") && l.contains("poll"))
            && s.contains("[Holdouts]")
    });
    tmux.keys(&["Escape"]);
    tmux.wait_for("alpha's sessions again", WAIT, |s| s.contains("[Sessions]"));
    tmux.keys(&["Escape"]);
    tmux.wait_for("back on the Servers screen", WAIT, |s| {
        s.contains("CHAIN ROOT") && s.contains("bravo")
    });

    // A server that stops is shown down; the other stays up.
    a.stop_server().expect("stop a");
    tmux.wait_for("alpha down, bravo up", WAIT, |s| {
        row(s, "alpha").contains("DOWN") && row(s, "bravo").contains(" up ")
    });
    tmux.keys(&["q"]);
    assert_eq!(tmux.exit_status(Duration::from_secs(20)), Some(0));
    drop(open);
}

#[test]
fn per_server_flags_with_several_servers_are_refused_not_ignored() {
    let home = tempfile::tempdir().expect("home");
    for (flag, value) in [
        ("--ledger", "/tmp/x.ledger"),
        ("--server-log", "/tmp/x.log"),
        ("--pgbouncer", "dbname=pgbouncer"),
        ("--pgbouncer-log", "/tmp/pgbouncer.log"),
        ("--bundle", "/tmp/roots.pem"),
    ] {
        let out = common::pgtls(&["host=a", "host=b", flag, value], home.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flag}");
        assert_eq!(err.trim().lines().count(), 1, "{flag}: {err}");
        assert!(
            err.contains(flag) && err.contains("applies to one server"),
            "{flag}: {err}"
        );
    }
}

/// The Servers screen has its own help (`?`, F1) from the key table, and a key of one server's dashboard pressed
/// there says why it does nothing instead of being silently ignored. No server needs to answer for this.
#[test]
fn the_servers_screen_has_help_and_says_why_a_key_does_nothing() {
    let home = tempfile::tempdir().expect("home");
    let tmux = Tmux::start(
        &[
            "host=127.0.0.1 port=1 connect_timeout=1",
            "host=127.0.0.1 port=2 connect_timeout=1",
        ],
        home.path(),
        120,
        30,
    );
    // The footer offers help (waited for with the table: a capture may catch a screen half drawn).
    tmux.wait_for("the Servers screen offering help", WAIT, |s| {
        s.contains("CHAIN ROOT") && s.contains("? help")
    });
    for key in ["?", "F1"] {
        tmux.keys(&[key]);
        // Keys of the Servers screen, from the key table, and where the others went.
        tmux.wait_for("the Servers help", WAIT, |s| {
            ["Help: Servers", "Sort by the next column", "Refresh now", "Enter opens"]
                .iter()
                .all(|needle| s.contains(needle))
        });
        tmux.keys(&["Escape"]);
        tmux.wait_for("the help closed", WAIT, |s| {
            !s.contains("Help: Servers") && s.contains("CHAIN ROOT")
        });
    }
    for key in ["Tab", "h", "w"] {
        tmux.keys(&[key]);
        tmux.wait_for("why the key does nothing", WAIT, |s| {
            s.contains("that key acts on one server's dashboard")
        });
        // The next key clears the word.
        tmux.keys(&["j"]);
        tmux.wait_for("the footer back", WAIT, |s| s.contains("? help"));
    }
    tmux.keys(&["q"]);
    assert_eq!(tmux.exit_status(Duration::from_secs(20)), Some(0));
}
