//! `pgtls check` against the real lab: each of its four exit codes, provoked, and the log source
//! finding short-lived clients that no poll sees.

use crate::common;

use std::time::Duration;

use pgtls::lab::{SUPERUSER, SessionKind};
use serde_json::Value;

fn verify_full(lab: &pgtls::lab::Lab, user: &str) -> String {
    format!(
        "{} sslmode=verify-full sslrootcert={}",
        lab.conninfo(user)
            .replace("host=127.0.0.1", "host=localhost hostaddr=127.0.0.1"),
        lab.certs.ca_cert.display()
    )
}

#[tokio::test]
async fn ok_warning_critical_and_unknown_each_have_their_exit_code() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let _modern = lab.open(SessionKind::Tls13, "app13", "modern-app").await.unwrap();

    let out = common::pgtls(&["check", &verify_full(&lab, SUPERUSER)], home.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.starts_with("PGTLS OK - no client would be refused by ssl_min_protocol_version = TLSv1.3"),
        "{text}"
    );
    assert!(
        text.lines().next().unwrap().contains("| tls13=1 tls12=0"),
        "perfdata on the first line, pgtls's own connection not counted: {text}"
    );

    // Unverified monitor connection: a warning.
    let unverified = format!("{} sslmode=require", lab.conninfo(SUPERUSER));
    let out = common::pgtls(&["check", &unverified], home.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.starts_with("PGTLS WARNING - pgtls does not verify the server certificate"),
        "{text}"
    );

    // A TLS 1.2 client: raising the minimum would refuse it.
    let _holdout = lab.open(SessionKind::Tls12, "billing", "billing-batch").await.unwrap();
    let out = common::pgtls(
        &["check", &verify_full(&lab, SUPERUSER), "--format", "json"],
        home.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["status"], "CRITICAL");
    assert_eq!(json["whatif"]["verdict"], "not_safe");
    assert_eq!(json["whatif"]["refused"][0]["client"]["application"], "billing-batch");
    // pg_hba.conf has `host all all 127.0.0.1/32`: a prefer client could fall back to plain text.
    assert_eq!(
        json["whatif"]["refused"][0]["downgrade"]["state"], "possible",
        "{}",
        json["whatif"]
    );

    // A role that may not see other sessions cannot answer: UNKNOWN.
    lab.ensure_role("watcher").await.unwrap();
    let out = common::pgtls(&["check", &verify_full(&lab, "watcher")], home.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.starts_with("PGTLS UNKNOWN - cannot see"), "{text}");
    assert!(text.contains("GRANT pg_read_all_stats TO watcher"));

    // Cannot connect: UNKNOWN, on stdout, one line.
    let port = pgtls::lab::server::free_port().unwrap();
    let out = common::pgtls(
        &["check", &format!("host=127.0.0.1 port={port} user=x sslmode=disable")],
        home.path(),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(text.lines().count(), 1);
    assert!(text.starts_with("PGTLS UNKNOWN - cannot connect"), "{text}");

    // The tls-required target names the plain-text client instead.
    let _plain = lab.open(SessionKind::PlainTcp, "etl", "nightly-etl").await.unwrap();
    let out = common::pgtls(
        &[
            "check",
            &verify_full(&lab, SUPERUSER),
            "--target",
            "tls-required",
            "--format",
            "json",
        ],
        home.path(),
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let refused: Vec<&str> = json["whatif"]["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["client"]["application"].as_str().unwrap())
        .collect();
    assert_eq!(refused, vec!["nightly-etl"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_tls12_clients_between_polls_are_found_through_the_log() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let handle = lab.clone_for_clients();
    // A cron-like client: connects over TLS 1.2 for a moment. Five runs end before check starts, so no poll can
    // ever see them and only the log can count them (a fixed number, however loaded the machine is); more run
    // while check watches.
    let mut before = 0;
    for _ in 0..5 {
        let s = handle.open(SessionKind::Tls12, "reports", "cron-report").await.unwrap();
        drop(s);
        before += 1;
    }
    let during = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = during.clone();
    let churn = tokio::spawn(async move {
        for _ in 0..10 {
            if let Ok(s) = handle.open(SessionKind::Tls12, "reports", "cron-report").await {
                drop(s);
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let ledger = home.path().join("ledger.jsonl");
    let args = [
        "check".to_string(),
        verify_full(&lab, SUPERUSER),
        "--watch".into(),
        "4s".into(),
        "--server-log".into(),
        lab.log_file.display().to_string(),
        "--ledger".into(),
        ledger.display().to_string(),
        "--format".into(),
        "json".into(),
    ];
    let home_dir = home.path().to_path_buf();
    // The check blocks for its watch window while the churn task keeps connecting.
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        common::pgtls(&args, &home_dir)
    })
    .await
    .unwrap();
    churn.await.unwrap();
    let json: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(out.status.code(), Some(2), "{json}");
    let refused = json["whatif"]["refused"].as_array().unwrap();
    let cron = refused
        .iter()
        .find(|r| r["client"]["application"] == "cron-report")
        .expect("cron-report found");
    assert!(cron["seen_as"][0].as_str().unwrap().ends_with("TLSv1.2"), "{cron}");
    let counted = cron["sessions"].as_u64().unwrap();
    let opened = before + during.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        (before..=opened).contains(&counted),
        "the {before} runs before check are counted, and no more than the {opened} that ran: {cron}"
    );
    assert_eq!(json["whatif"]["evidence"]["log_source"], true);
    assert!(
        json["sources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s.as_str().unwrap().contains("log source: file"))
    );

    // The ledger exports as CSV and JSON with the client in it.
    let csv_out = common::pgtls(&["ledger", &ledger.display().to_string()], home.path());
    let csv_text = String::from_utf8_lossy(&csv_out.stdout);
    assert!(
        csv_text.starts_with("user,database,application,address,worst,sessions"),
        "{csv_text}"
    );
    assert!(
        csv_text
            .lines()
            .any(|l| l.contains("cron-report") && l.contains("TLSv1.2")),
        "{csv_text}"
    );
    let json_out = common::pgtls(
        &["ledger", &ledger.display().to_string(), "--format", "json"],
        home.path(),
    );
    let clients: Value = serde_json::from_slice(&json_out.stdout).unwrap();
    assert!(
        clients
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["key"]["application"] == "cron-report" && c["sources"].to_string().contains("log"))
    );

    // The ledger file holds them too, and a second run (no watch) still names cron-report from it.
    let out = common::pgtls(
        &[
            "check",
            &verify_full(&lab, SUPERUSER),
            "--ledger",
            &ledger.display().to_string(),
        ],
        home.path(),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("cron-report"), "{text}");
}

/// A ledger another pgtls is writing: `check` says so in one line and ends UNKNOWN (3), without touching it.
#[tokio::test]
async fn a_ledger_held_by_another_writer_is_unknown_in_one_line() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let path = home.path().join("ledger.jsonl");
    let mut ledger = pgtls::analysis::ledger::Ledger::default();
    let (held, _) = pgtls::analysis::ledger::Journal::open(&path, &mut ledger).unwrap();
    let before = std::fs::read(&path).unwrap();
    let out = common::pgtls(
        &[
            "check",
            &verify_full(&lab, SUPERUSER),
            "--ledger",
            &path.display().to_string(),
        ],
        home.path(),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(
        text.starts_with("PGTLS UNKNOWN - ledger") && text.contains("in use by another pgtls"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1, "{text}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    drop(held);
    let out = common::pgtls(
        &[
            "check",
            &verify_full(&lab, SUPERUSER),
            "--ledger",
            &path.display().to_string(),
        ],
        home.path(),
    );
    assert_ne!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stdout));
}

/// A log longer than one read budget (about 10 MB, 40,000 connections of 400 clients): `check` applies it budget
/// by budget and counts every connection, and its ledger file ends the size of the clients, not of the log.
#[tokio::test]
async fn check_reads_a_log_longer_than_its_budget_to_the_end() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let log = home.path().join("long.log");
    let mut text = String::new();
    for i in 0..40_000u32 {
        let pid = 200_000 + i;
        let client = i % 400;
        text += &format!(
            "2026-11-27 17:42:50.000 UTC [{pid}] LOG:  connection received: host=10.8.{}.{} port=5\n\
             2026-11-27 17:42:50.001 UTC [{pid}] LOG:  connection authorized: user=longlog{client} database=d \
             application_name=padding-padding-padding-padding-padding-padding-padding-padding \
             SSL enabled (protocol=TLSv1.2, cipher=ECDHE-RSA-AES256-GCM-SHA384, bits=256)\n",
            client / 256,
            client % 256
        );
    }
    assert!(text.len() > 9 << 20, "{} bytes", text.len());
    std::fs::write(&log, &text).unwrap();
    let ledger = home.path().join("ledger.jsonl");
    let out = common::pgtls(
        &[
            "check",
            &verify_full(&lab, SUPERUSER),
            "--server-log",
            &log.display().to_string(),
            "--ledger",
            &ledger.display().to_string(),
            "--format",
            "json",
        ],
        home.path(),
    );
    let json: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let refused = json["whatif"]["refused"].as_array().unwrap();
    let from_log: Vec<&Value> = refused
        .iter()
        .filter(|r| r["client"]["user"].as_str().unwrap_or_default().starts_with("longlog"))
        .collect();
    assert_eq!(from_log.len(), 400, "every client of the log");
    let sessions: u64 = from_log.iter().map(|r| r["sessions"].as_u64().unwrap()).sum();
    assert_eq!(sessions, 40_000, "every connection of the log");
    // Appended lines were compacted away on the way: nowhere near one line per connection.
    let size = std::fs::metadata(&ledger).unwrap().len();
    assert!(size < 2 << 20, "ledger of {size} bytes");
}

/// pgtls's own connection is known by pid: with a client deliberately named "pgtls" (the monitor's own default
/// application_name), `check`'s perfdata counts the client and not the monitor, and `snapshot --format json`
/// agrees, flagging exactly one row `"monitor": true`.
#[tokio::test]
async fn a_client_named_pgtls_is_counted_and_the_monitor_is_not() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let impostor = lab.open(SessionKind::Tls13, "impostor", "pgtls").await.unwrap();
    let _holdout = lab.open(SessionKind::Tls12, "billing", "billing-batch").await.unwrap();
    let monitor = verify_full(&lab, SUPERUSER);

    let out = common::pgtls(&["check", &monitor], home.path());
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or_default();
    assert!(
        first.contains(
            "| tls13=1 tls12=1 tls_older=0 plain_tcp=0 gss=0 local=0 unknown=0 refused_clients=1 sessions_seen=2 "
        ),
        "{text}"
    );
    let out = common::pgtls(&["check", &monitor, "--format", "json"], home.path());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["counts"]["tls13"], 1, "{report}");
    assert_eq!(report["counts"]["tls12"], 1);
    let refused: Vec<&str> = report["whatif"]["refused"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["client"]["application"].as_str())
        .collect();
    assert_eq!(refused, ["billing-batch"]);

    let out = common::pgtls(&["snapshot", &monitor, "--format", "json"], home.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let snap: Value = serde_json::from_slice(&out.stdout).unwrap();
    let sessions = snap["sessions"].as_array().unwrap();
    assert!(
        sessions.iter().all(|s| s["monitor"].is_boolean()),
        "every row says whether it is pgtls's own"
    );
    let own: Vec<&Value> = sessions.iter().filter(|s| s["monitor"] == true).collect();
    assert_eq!(own.len(), 1, "{sessions:?}");
    assert_eq!(own[0]["pid"], snap["monitor"]["pid"]);
    assert_eq!(own[0]["application_name"], "pgtls");
    let clients_named_pgtls: Vec<&Value> = sessions
        .iter()
        .filter(|s| s["application_name"] == "pgtls" && s["monitor"] == false)
        .collect();
    assert_eq!(clients_named_pgtls.len(), 1);
    assert_eq!(clients_named_pgtls[0]["pid"], impostor.pid);
    let tls13_clients = sessions
        .iter()
        .filter(|s| s["monitor"] == false && s["class"] == "tls13")
        .count();
    assert_eq!(tls13_clients, 1, "the same count as check's perfdata");

    let out = common::pgtls(&["snapshot", &monitor], home.path());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("2 total:  1 TLSv1.3  1 TLSv1.2"), "{table}");
    let own_row = table
        .lines()
        .find(|l| l.contains("this pgtls"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(own_row.contains(&snap["monitor"]["user"].as_str().unwrap().to_string()));
}
