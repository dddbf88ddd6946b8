//! After raising the floor, against a real server (the lab, PostgreSQL 15): the log shows who was refused, who fell
//! back to plain text, and when the change happened; pgtls's own probe, which fails handshakes on purpose, is not
//! counted.

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
    std::process::Command::new("psql")
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
    let lingering = lab
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
    let row = lingering
        .client
        .query_one(
            "SELECT version, backend_start FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("lingering session alive");
    assert_eq!(row.get::<_, String>(0), "TLSv1.2");
    assert!(row.get::<_, chrono::DateTime<chrono::Utc>>(1) < since.at);
}
