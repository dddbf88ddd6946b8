//! After raising the floor, against a real server (the lab, PostgreSQL 15): the log shows who was refused, who fell
//! back to plain text, and when the change happened; pgtls's own probe, which fails handshakes on purpose, is not
//! counted.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail by panicking")]

use crate::common;

use std::time::{Duration, Instant};

use pgtls::analysis::ledger::{KeyFields, Ledger, SinceSource, floor_since};
use pgtls::collect::history::split_probe_lines;
use pgtls::lab::{Lab, LabOptions, SessionKind};
use pgtls::logsource::{ConnectionEvent, LogFollower, LogFormat, LogNews, Refusal};
use pgtls::model::ConnClass;
use pgtls::probe::{ProbeConnection, ProbeTarget};

const USER: &str = "legacy";
const APP: &str = "legacy-app";

/// libpq's `prefer` retries without TLS after a failed handshake, which tokio-postgres does not: use psql.
fn psql(lab: &Lab, sslmode: &str) -> std::process::Output {
    let conninfo = format!(
        "{} sslmode={sslmode} ssl_max_protocol_version=TLSv1.2 application_name={APP}",
        lab.conninfo(USER)
    );
    std::process::Command::new(common::require_tool("psql", "postgresql-client"))
        .args([
            conninfo.as_str(),
            "-XAtc",
            "SELECT coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)",
        ])
        .output()
        .expect("psql runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raising_the_floor_shows_refused_downgraded_and_the_change_time() {
    let lab = Lab::start(LabOptions::default()).await.expect("lab starts");
    lab.ensure_role(USER).await.expect("role");
    let format = LogFormat::Stderr {
        prefix: "%m [%p] ".into(),
    };
    let mut follower = LogFollower::open(lab.log_file.clone(), format, true).expect("log opens");

    // Before: the client connects with TLS 1.2, and one session stays open across the change (lingering).
    let before = lab.open(SessionKind::Tls12, USER, APP).await.expect("TLS 1.2 before");
    drop(before);
    let lingering_session = lab
        .open(SessionKind::Tls12, USER, "lingering")
        .await
        .expect("lingering");

    lab.set_config("ssl_min_protocol_version", "TLSv1.3")
        .await
        .expect("raised");
    // The postmaster applies the reload asynchronously.
    let deadline = Instant::now() + Duration::from_secs(10);
    while lab.open(SessionKind::Tls12, USER, "try").await.is_ok() {
        assert!(Instant::now() < deadline, "the floor never took effect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Refused (require) and downgraded (prefer falls back to plain text: pg_hba.conf has a `host` line).
    let require = psql(&lab, "require");
    assert!(
        !require.status.success(),
        "a TLS 1.2-only client with require is refused"
    );
    let prefer = psql(&lab, "prefer");
    assert!(prefer.status.success(), "{}", String::from_utf8_lossy(&prefer.stderr));
    assert_eq!(
        String::from_utf8_lossy(&prefer.stdout).trim(),
        "f",
        "prefer fell back to plain text"
    );

    // pgtls's probe during it: it tries TLS 1.0 to 1.2 on purpose, each a failed handshake in the log.
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    let target = ProbeTarget {
        host: "127.0.0.1".into(),
        hostaddr: None,
        port: lab.clone_for_clients().port,
        root_bundle: None,
        timeout: Duration::from_secs(10),
        warn_days: 30,
        full_cipher_scan: false,
        bundles: Vec::new(),
        chain_at_connect: false,
    };
    let report = tokio::task::spawn_blocking(move || pgtls::probe::run_reporting(&target, Some(tx)))
        .await
        .expect("probe task")
        .expect("probe runs");
    let mut probe = std::collections::VecDeque::new();
    while let Ok(c) = rx.try_recv() {
        probe.push_back(c);
    }
    assert_eq!(probe.len(), report.connections as usize);
    assert!(probe.iter().all(|c: &ProbeConnection| c.address == "127.0.0.1"));

    // Read the whole log until the probe's refusals are there too.
    let mut events: Vec<ConnectionEvent> = Vec::new();
    let mut news = LogNews::default();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        events.extend(follower.poll().expect("poll"));
        news.extend(follower.take_news());
        let handshakes = news
            .refused
            .iter()
            .filter(|r| matches!(r.refusal, Refusal::Handshake { .. }))
            .count();
        if handshakes >= 2 + report.versions.iter().filter(|v| !v.accepted).count() {
            break;
        }
        assert!(Instant::now() < deadline, "refusals never all logged: {news:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(follower.take_suspects().0.is_empty());

    let (from_probe, refused) = split_probe_lines(news.refused.clone(), &probe);
    assert!(from_probe >= 1, "the probe's failed handshakes were recognised");
    // The `try` loop's own refused attempt(s), require's, and prefer's first (TLS) attempt; nothing of the probe's.
    assert!(
        refused
            .iter()
            .all(|r| !probe.iter().any(|p| r.client_port == Some(p.port)))
    );
    let tls_refusals: Vec<_> = refused
        .iter()
        .filter(|r| matches!(&r.refusal, Refusal::Handshake { reason } if reason == "unsupported protocol"))
        .collect();
    assert!(tls_refusals.len() >= 3, "{refused:#?}");
    assert!(
        tls_refusals
            .iter()
            .all(|r| r.client_addr.as_deref() == Some("127.0.0.1") && r.client_port.is_some())
    );
    assert!(
        tls_refusals
            .iter()
            .all(|r| r.hint.as_deref().is_some_and(|h| h.contains("between TLSv1.3 and")))
    );

    let mut ledger = Ledger::new(KeyFields::default());
    for e in &events {
        ledger.observe_log(e);
    }
    for r in &refused {
        ledger.observe_refused(r);
    }
    for c in &news.changes {
        ledger.observe_setting_change(c);
    }
    let change = ledger
        .logged_settings()
        .find(|c| c.name == "ssl_min_protocol_version")
        .expect("the reload line was read");
    assert_eq!(change.value.as_deref(), Some("TLSv1.3"));
    let since = floor_since(
        &ledger,
        "ssl_min_protocol_version",
        "TLSv1.3",
        Some("TLSv1.3"),
        None,
        None,
    )
    .expect("the floor is in force");
    assert_eq!(since.how, SinceSource::Log);
    assert_eq!(since.at, change.at);

    // The refused address is attributed to the identities seen connecting from it before, several here.
    let views = ledger.refused();
    let local = views
        .iter()
        .find(|v| v.record.address == "127.0.0.1")
        .expect("127.0.0.1 refused");
    assert_eq!(local.record.attempts, refused.len() as u64);
    assert!(local.identities.iter().any(|k| k.user == USER && k.application == APP));
    assert!(
        local.ambiguous,
        "several identities come from 127.0.0.1: {:?}",
        local.identities
    );

    // Downgraded: the same identity with TLS 1.2 before the change and plain text after it.
    let record = ledger
        .records()
        .find(|r| r.key.user == USER && r.key.application == APP)
        .expect("legacy-app seen");
    assert!(
        record.count(ConnClass::Tls12) >= 1 && record.count(ConnClass::PlainTcp) >= 1,
        "{record:#?}"
    );
    let plain_after = record
        .usage
        .iter()
        .find(|u| u.class == ConnClass::PlainTcp)
        .expect("plain usage");
    assert!(plain_after.first_seen >= since.at);

    // The lingering session is still on TLS 1.2, started before the change.
    let row = lingering_session
        .client
        .query_one(
            "SELECT version, backend_start FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("lingering session alive");
    assert_eq!(row.get::<_, String>(0), "TLSv1.2");
    assert!(row.get::<_, chrono::DateTime<chrono::Utc>>(1) < since.at);

    // `pgtls check` tells the same story headless, from the log and a ledger file.
    let home = tempfile::tempdir().expect("home");
    let ledger_file = home.path().join("ledger.jsonl");
    let check = |target: &str| {
        let out = check_json(&lab, home.path(), &ledger_file, target);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
        (out.status.code(), json)
    };
    let (code, json) = check("TLSv1.3");
    let after = &json["after_change"];
    assert_eq!(json["target_in_force"], "yes", "{json:#}");
    assert_eq!(after["since_source"], "log", "{after:#}");
    assert_eq!(after["since"], serde_json::to_value(since.at).unwrap());
    let refused = after["refused"].as_array().expect("refused list");
    let local = refused
        .iter()
        .find(|r| r["address"] == "127.0.0.1")
        .unwrap_or_else(|| panic!("127.0.0.1 refused: {after:#}"));
    assert!(local["attempts"].as_u64().unwrap() >= 2, "{local:#}");
    assert!(
        local["identities"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["user"] == USER && k["application"] == APP),
        "{local:#}"
    );
    assert_eq!(local["ambiguous"], true);
    let downgraded = after["downgraded"].as_array().expect("downgraded list");
    let legacy = downgraded
        .iter()
        .find(|d| d["client"]["application"] == APP)
        .unwrap_or_else(|| panic!("{APP} downgraded: {after:#}"));
    assert_eq!(legacy["tls_before"]["tls_version"], "TLSv1.2");
    assert_eq!(legacy["plain_after"]["class"], "plain_tcp");
    // PostgreSQL 14+ logs which pg_hba.conf line let it in: the lab's `host all all 127.0.0.1/32` line.
    assert!(
        legacy["hba_lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().is_some_and(|l| l.contains(": host all all"))),
        "{legacy:#}"
    );
    let lingering = after["lingering"].as_array().expect("lingering list");
    assert!(
        lingering
            .iter()
            .any(|l| l["application"] == "lingering" && l["tls_version"] == "TLSv1.2"),
        "{after:#}"
    );
    assert_eq!(code, Some(2), "refused and downgraded clients are CRITICAL: {json:#}");
    assert_eq!(json["status"], "CRITICAL");
    assert!(
        json["perfdata"]
            .as_str()
            .is_some_and(|p| p.contains(&format!("refused={}", refused.len())) && p.contains("downgraded=")),
        "{json:#}"
    );

    // The dashboard shows the same three lists on its What-if screen, reading the log from its start.
    let conninfo = format!("{} sslmode=require", lab.conninfo(pgtls::lab::SUPERUSER));
    let log = lab.log_file.display().to_string();
    let tmux = common::tmux::Tmux::start(
        &[&conninfo, "--interval", "0.5", "--server-log", &log],
        home.path(),
        160,
        50,
    );
    tmux.wait_for("the dashboard", Duration::from_secs(30), |s| {
        s.contains("What-if") || s.contains("Sessions")
    });
    tmux.keys(&["w"]);
    let screen = tmux.wait_for("the after-change report", Duration::from_secs(60), |s| {
        s.contains("Since TLSv1.3 took effect")
            && s.contains("Refused (")
            && s.contains("Fell back to plain text (")
            && s.contains("Lingering (")
    });
    assert!(screen.contains("(from the server log)"), "{screen}");
    // Each list's own line: its mark, then the name (the refused address's candidates name them too).
    let line = |mark: &str, name: &str| {
        screen
            .lines()
            .find(|l| l.trim_start_matches('│').trim_start().starts_with(mark) && l.contains(name))
            .unwrap_or("")
            .to_string()
    };
    assert!(line("✖ 127.0.0.1", "").contains("attempt(s)"), "{screen}");
    assert!(
        line("✖", &format!("{APP} ({USER}@")).contains("plain text since"),
        "{screen}"
    );
    // The only lingering session is the selected one (▶), and K acts on it from this list.
    assert!(
        line("▶ ▲ pid", "lingering (legacy@").contains("TLSv1.2 since"),
        "{screen}"
    );
    tmux.keys(&["K"]);
    let popup = tmux.wait_for("the confirmation", Duration::from_secs(20), |s| {
        s.contains(&format!("Terminate session {}?", lingering_session.pid))
    });
    assert!(popup.contains("lingering") && popup.contains(USER), "{popup}");
    tmux.keys(&["y"]);
    tmux.wait_for("terminated, and gone from the list", Duration::from_secs(30), |s| {
        s.contains(&format!("pid {} terminated", lingering_session.pid))
            && s.contains("No session from before the change lingers")
    });
    assert!(
        lingering_session.execute("SELECT 1").await.is_err(),
        "the lingering session is gone"
    );
    tmux.keys(&["q"]);
    assert_eq!(tmux.exit_status(Duration::from_secs(20)), Some(0));

    // TLS required: pg_hba.conf goes hostssl-only, and a plain-text client is turned away.
    let hba_path = lab.data_dir.join("pg_hba.conf");
    let hba = std::fs::read_to_string(&hba_path).expect("pg_hba.conf");
    let strict: String = hba
        .lines()
        .filter(|l| !l.trim_start().starts_with("host "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(strict, hba, "the lab has a `host` line to remove");
    std::fs::write(&hba_path, strict).expect("pg_hba.conf written");
    lab.admin()
        .await
        .expect("admin")
        .batch_execute("SELECT pg_catalog.pg_reload_conf()")
        .await
        .expect("reloaded");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let plain = psql_plain(&lab);
        if !plain.status.success() {
            assert!(
                String::from_utf8_lossy(&plain.stderr).contains("no encryption"),
                "{}",
                String::from_utf8_lossy(&plain.stderr)
            );
            break;
        }
        assert!(Instant::now() < deadline, "pg_hba.conf never turned plain text away");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The refusal reaches the log before check reads it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (code, json) = loop {
        let (code, json) = check("tls-required");
        let plain_refused = json["after_change"]["refused"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["address"] == "127.0.0.1"));
        if plain_refused || Instant::now() >= deadline {
            break (code, json);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let after = &json["after_change"];
    assert_eq!(json["target_in_force"], "yes", "{json:#}");
    assert_eq!(after["since_source"], "reload_bound", "{after:#}");
    let local = after["refused"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["address"] == "127.0.0.1"))
        .unwrap_or_else(|| panic!("the plain client is refused: {after:#}"));
    assert!(local["reason"].as_str().unwrap().contains("no encryption"), "{local:#}");
    assert_eq!(code, Some(2), "{json:#}");
}

fn check_json(lab: &Lab, home: &std::path::Path, ledger: &std::path::Path, target: &str) -> std::process::Output {
    let conninfo = format!(
        "{} sslmode=verify-full sslrootcert={}",
        lab.conninfo(pgtls::lab::SUPERUSER)
            .replace("host=127.0.0.1", "host=localhost hostaddr=127.0.0.1"),
        lab.certs.ca_cert.display()
    );
    let bin = std::env::var_os("PGTLS_TEST_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_pgtls").into());
    let mut cmd = std::process::Command::new(bin);
    for (key, _) in std::env::vars() {
        if key.starts_with("PG") {
            cmd.env_remove(key);
        }
    }
    cmd.env("HOME", home)
        .args(["check", &conninfo, "--target", target, "--format", "json"])
        .arg("--server-log")
        .arg(&lab.log_file)
        .arg("--ledger")
        .arg(ledger)
        .output()
        .expect("pgtls runs")
}

/// A client that never tries TLS.
fn psql_plain(lab: &Lab) -> std::process::Output {
    let conninfo = format!("{} sslmode=disable application_name=plain-app", lab.conninfo(USER));
    std::process::Command::new(common::require_tool("psql", "postgresql-client"))
        .args([conninfo.as_str(), "-XAtc", "SELECT 1"])
        .output()
        .expect("psql runs")
}
