//! The log source against a real server: short-lived sessions that polling would miss are found in
//! stderr, csvlog and jsonlog files, through rotation, and through SQL.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail by panicking")]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;
use pgtls::lab::{Lab, LabOptions, SessionKind};
use pgtls::logsource::{
    ConnectionEvent, LogFollower, LogFormat, LogSource, SqlLogReader, detect, detect_with_collector, limitations,
};
use tokio_postgres::NoTls;
use tokio_postgres::config::SslMode;

/// A session the test opened and closed, and what its log event must say.
#[derive(Debug)]
struct Expected {
    pid: i32,
    kind: SessionKind,
    user: &'static str,
    app: String,
    /// (version, cipher, bits) as pg_stat_ssl showed them while the session was open.
    tls: Option<(String, String, i32)>,
}

async fn collector_lab(destination: &str) -> Lab {
    Lab::start(LabOptions {
        settings: vec![
            ("logging_collector".into(), "on".into()),
            ("log_destination".into(), destination.into()),
        ],
        ..Default::default()
    })
    .await
    .expect("lab starts")
}

/// Three TLS 1.2 sessions, one plain TCP and one Unix-socket session, each closed right after it opened.
async fn short_sessions(lab: &Lab, tag: &str) -> Vec<Expected> {
    let mut plan: Vec<(SessionKind, &'static str, String)> = (0..3)
        .map(|i| (SessionKind::Tls12, "log_tls", format!("{tag}-tls12-{i}")))
        .collect();
    plan.push((SessionKind::PlainTcp, "log_plain", format!("{tag}-plain")));
    plan.push((SessionKind::UnixSocket, "log_local", format!("{tag}-socket")));
    let mut expected = Vec::new();
    for (kind, user, app) in plan {
        let session = lab.open(kind, user, &app).await.expect("session opens");
        let tls = if kind == SessionKind::Tls12 {
            let row = session
                .client
                .query_one(
                    "SELECT version, cipher, bits FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    &[],
                )
                .await
                .expect("pg_stat_ssl");
            Some((row.get(0), row.get(1), row.get(2)))
        } else {
            None
        };
        expected.push(Expected {
            pid: session.pid,
            kind,
            user,
            app,
            tls,
        });
        drop(session);
    }
    expected
}

/// A failing multi-line statement whose text looks like a connection line; the log repeats it.
async fn log_a_decoy(lab: &Lab) {
    let session = lab
        .open(SessionKind::PlainTcp, "log_plain", "decoy")
        .await
        .expect("session opens");
    let sql = "SELECT 'x\n2026-01-01 00:00:00.000 UTC [1] LOG:  connection authorized: user=forged database=forged\n\
               2026-01-01 00:00:00.000 UTC,,,1,,x,1,,x,,0,LOG,00000,\"connection authorized: user=forged database=f\"' \
               FROM no_such_table";
    assert!(session.execute(sql).await.is_err());
}

fn missing<'a>(events: &[ConnectionEvent], expected: &'a [Expected]) -> Vec<&'a str> {
    expected
        .iter()
        .filter(|e| {
            !events
                .iter()
                .any(|ev| ev.pid == e.pid && ev.application_name.as_deref() == Some(e.app.as_str()))
        })
        .map(|e| e.app.as_str())
        .collect()
}

async fn follow_until(follower: &mut LogFollower, expected: &[Expected], all: &mut Vec<ConnectionEvent>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        all.extend(follower.poll().expect("poll"));
        let missing = missing(all, expected);
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never found {missing:?} in {}",
            follower.path().display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn read_sql_until(
    reader: &mut SqlLogReader,
    client: &tokio_postgres::Client,
    expected: &[Expected],
    all: &mut Vec<ConnectionEvent>,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        all.extend(reader.poll(client).await.expect("sql poll"));
        let missing = missing(all, expected);
        if missing.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "never found {missing:?} through SQL");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every expected session appears exactly once, with what the server knew about it.
fn check(all: &[ConnectionEvent], expected: &[Expected]) {
    for e in expected {
        let hits: Vec<&ConnectionEvent> = all
            .iter()
            .filter(|ev| ev.pid == e.pid && ev.application_name.as_deref() == Some(e.app.as_str()))
            .collect();
        assert_eq!(hits.len(), 1, "{} seen {} times: {hits:#?}", e.app, hits.len());
        let ev = hits[0];
        assert_eq!(ev.user, e.user, "{}", e.app);
        assert_eq!(ev.database, "postgres", "{}", e.app);
        assert!((Utc::now() - ev.at).num_seconds().abs() < 120, "{} at {}", e.app, ev.at);
        assert!(!ev.gss_encrypted);
        match e.kind {
            SessionKind::UnixSocket => {
                assert!(ev.local_socket, "{ev:?}");
                assert_eq!(ev.client_addr, None);
                assert_eq!(ev.tls, None);
            }
            SessionKind::PlainTcp => {
                assert!(!ev.local_socket);
                assert_eq!(ev.client_addr.as_deref(), Some("127.0.0.1"));
                assert_eq!(ev.tls, None, "{ev:?}");
            }
            _ => {
                assert!(!ev.local_socket);
                assert_eq!(ev.client_addr.as_deref(), Some("127.0.0.1"));
                let tls = ev.tls.as_ref().expect("TLS seen");
                let (version, cipher, bits) = e.tls.as_ref().expect("pg_stat_ssl row");
                assert_eq!(&tls.version, version);
                assert_eq!(tls.version, "TLSv1.2");
                assert_eq!(&tls.cipher, cipher);
                assert!(!tls.cipher.is_empty());
                assert_eq!(tls.bits, Some(*bits));
            }
        }
    }
}

fn no_event_twice_and_no_forgery(all: &[ConnectionEvent]) {
    let mut seen = HashSet::new();
    for ev in all {
        assert!(
            seen.insert((ev.pid, ev.at, ev.application_name.clone())),
            "seen twice: {ev:?}"
        );
        assert!(!ev.user.contains("forged"), "a statement posed as a connection: {ev:?}");
    }
}

async fn rotate(lab: &Lab) {
    // Collector file names have one-second resolution; a rotation within the same second reuses the file.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let admin = lab.admin().await.expect("admin");
    admin.batch_execute("SELECT pg_rotate_logfile()").await.expect("rotate");
}

async fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(Instant::now() < deadline, "{} never appeared", path.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn stderr_file_finds_short_lived_sessions_and_survives_copytruncate() {
    let lab = Lab::start(LabOptions::default()).await.expect("lab starts");
    let early = lab
        .open(SessionKind::Tls12, "log_tls", "before-follow")
        .await
        .expect("session opens");
    let early_pid = early.pid;
    drop(early);

    let format = LogFormat::Stderr {
        prefix: "%m [%p] ".into(),
    };
    assert_eq!(detect_with_collector("stderr", "%m [%p] ", "off"), format);
    let mut follower = LogFollower::open(lab.log_file.clone(), format.clone(), false).expect("opens");
    let mut all = Vec::new();

    let first = short_sessions(&lab, "stderr").await;
    log_a_decoy(&lab).await;
    follow_until(&mut follower, &first, &mut all).await;
    check(&all, &first);
    assert!(
        !all.iter().any(|ev| ev.pid == early_pid),
        "a session from before the follower started was reported"
    );

    // copytruncate: the server keeps appending to the same (now empty) file.
    std::fs::copy(&lab.log_file, lab.root().join("server.log.1")).expect("copy");
    std::fs::File::options()
        .write(true)
        .open(&lab.log_file)
        .expect("open log")
        .set_len(0)
        .expect("truncate");
    let second = short_sessions(&lab, "truncated").await;
    follow_until(&mut follower, &second, &mut all).await;
    for _ in 0..3 {
        all.extend(follower.poll().expect("poll"));
    }
    check(&all, &first);
    check(&all, &second);
    no_event_twice_and_no_forgery(&all);
    assert_eq!(follower.path(), lab.log_file.as_path());

    let text = limitations(&follower.source());
    eprintln!("limitations: {text}");
    eprintln!("events: {}", all.len());
    assert!(
        text.starts_with(&format!("log source: file {}", lab.log_file.display())),
        "{text}"
    );

    // Without the collector there is no file for SQL to read, and the reader says so in one line.
    let admin = lab.admin().await.expect("admin");
    let err = SqlLogReader::new(false)
        .poll(&admin)
        .await
        .expect_err("collector is off")
        .to_string();
    eprintln!("collector off: {err}");
    assert!(err.contains("logging_collector is off"), "{err}");
    assert!(!err.contains('\n'));
}

#[tokio::test]
async fn csvlog_through_collector_rotation_and_rename() {
    let lab = collector_lab("csvlog").await;
    let admin = lab.admin().await.expect("admin");
    let settings = admin
        .query_one(
            "SELECT current_setting('log_destination'), current_setting('log_line_prefix')",
            &[],
        )
        .await
        .expect("settings");
    let format = detect(settings.get(0), settings.get(1));
    assert_eq!(format, LogFormat::Csv);

    // Following whatever current_logfiles names, through pg_rotate_logfile().
    let mut follower = LogFollower::open_current_logfiles(lab.data_dir.clone(), format.clone(), false).expect("opens");
    let first_file = follower.path().to_path_buf();
    let mut all = Vec::new();
    let first = short_sessions(&lab, "csv").await;
    log_a_decoy(&lab).await;
    follow_until(&mut follower, &first, &mut all).await;
    check(&all, &first);

    rotate(&lab).await;
    let second = short_sessions(&lab, "csv-rotated").await;
    follow_until(&mut follower, &second, &mut all).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while follower.path() == first_file {
        assert!(
            Instant::now() < deadline,
            "the follower never moved to the rotated file"
        );
        all.extend(follower.poll().expect("poll"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check(&all, &first);
    check(&all, &second);
    no_event_twice_and_no_forgery(&all);

    // A fixed file name rotated the logrotate way: rename, then have the server reopen the name.
    lab.set_config("log_filename", "pgtls-fixed.log")
        .await
        .expect("set log_filename");
    rotate(&lab).await;
    let fixed = lab.data_dir.join("log").join("pgtls-fixed.csv");
    wait_for(&fixed).await;
    let mut fixed_follower = LogFollower::open(fixed.clone(), LogFormat::Csv, false).expect("opens");
    let mut fixed_events = Vec::new();
    let before_rename = short_sessions(&lab, "fixed-a").await;
    follow_until(&mut fixed_follower, &before_rename, &mut fixed_events).await;
    std::fs::rename(&fixed, fixed.with_extension("csv.1")).expect("rename");
    let renamed = short_sessions(&lab, "fixed-b").await;
    rotate(&lab).await;
    wait_for(&fixed).await;
    let reopened = short_sessions(&lab, "fixed-c").await;
    for batch in [&before_rename, &renamed, &reopened] {
        follow_until(&mut fixed_follower, batch, &mut fixed_events).await;
    }
    for _ in 0..3 {
        fixed_events.extend(fixed_follower.poll().expect("poll"));
    }
    check(&fixed_events, &before_rename);
    check(&fixed_events, &renamed);
    check(&fixed_events, &reopened);
    no_event_twice_and_no_forgery(&fixed_events);
}

#[tokio::test]
async fn jsonlog_from_the_start_of_the_file() {
    let lab = collector_lab("stderr,jsonlog").await;
    if lab.major_version < 15 {
        eprintln!("jsonlog needs PostgreSQL 15; this server is {}", lab.major_version);
        return;
    }
    let early = short_sessions(&lab, "json-early").await;
    let format = detect("stderr,jsonlog", "%m [%p] ");
    assert_eq!(format, LogFormat::Json);
    let mut follower = LogFollower::open_current_logfiles(lab.data_dir.clone(), format, true).expect("opens");
    assert_eq!(follower.path().extension().and_then(|e| e.to_str()), Some("json"));
    let mut all = Vec::new();
    let later = short_sessions(&lab, "json-later").await;
    log_a_decoy(&lab).await;
    follow_until(&mut follower, &early, &mut all).await;
    follow_until(&mut follower, &later, &mut all).await;
    check(&all, &early);
    check(&all, &later);

    // The collector's stderr-format file beside it says the same.
    let stderr_file = current_logfile(&lab.data_dir, "stderr");
    let mut text_follower = LogFollower::open(
        stderr_file,
        LogFormat::Stderr {
            prefix: "%m [%p] ".into(),
        },
        true,
    )
    .expect("opens");
    let mut text_events = Vec::new();
    follow_until(&mut text_follower, &later, &mut text_events).await;
    check(&text_events, &later);
    no_event_twice_and_no_forgery(&all);
    no_event_twice_and_no_forgery(&text_events);
}

fn current_logfile(data_dir: &Path, key: &str) -> PathBuf {
    let listing = std::fs::read_to_string(data_dir.join("current_logfiles")).expect("current_logfiles");
    let name = listing
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
        .expect("listed");
    data_dir.join(name)
}

#[tokio::test]
async fn sql_reader_as_superuser_follows_rotation_and_refuses_others() {
    let lab = collector_lab("stderr,csvlog").await;
    let admin = lab.admin().await.expect("admin");
    let mut reader = SqlLogReader::new(false);
    let mut all = reader.poll(&admin).await.expect("first poll");
    let first_file = reader.file().expect("file known").to_string();
    assert!(first_file.ends_with(".csv"), "{first_file}");

    let first = short_sessions(&lab, "sql").await;
    log_a_decoy(&lab).await;
    read_sql_until(&mut reader, &admin, &first, &mut all).await;
    check(&all, &first);

    rotate(&lab).await;
    let second = short_sessions(&lab, "sql-rotated").await;
    read_sql_until(&mut reader, &admin, &second, &mut all).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while reader.file() == Some(first_file.as_str()) {
        assert!(Instant::now() < deadline, "the reader never moved to the rotated file");
        all.extend(reader.poll(&admin).await.expect("poll"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..3 {
        all.extend(reader.poll(&admin).await.expect("poll"));
    }
    check(&all, &first);
    check(&all, &second);
    no_event_twice_and_no_forgery(&all);
    let LogSource::Sql { file: Some(file), .. } = reader.source() else {
        panic!("not an SQL source")
    };
    assert!(limitations(&reader.source()).contains(&file));

    // A role granted only pg_current_logfile and the text reader gets the same events (and, without
    // pg_stat_file, reads through the file once to find its end).
    lab.ensure_role("log_text_reader").await.expect("role");
    admin
        .batch_execute(
            "GRANT EXECUTE ON FUNCTION pg_current_logfile(text) TO log_text_reader; \
             GRANT EXECUTE ON FUNCTION pg_read_file(text, bigint, bigint) TO log_text_reader",
        )
        .await
        .expect("grant");
    let text_client = plain_client(&lab, "log_text_reader").await;
    let mut text_reader = SqlLogReader::new(false);
    let mut text_events = text_reader.poll(&text_client).await.expect("text reader starts");
    let third = short_sessions(&lab, "sql-text").await;
    read_sql_until(&mut text_reader, &text_client, &third, &mut text_events).await;
    check(&text_events, &third);
    no_event_twice_and_no_forgery(&text_events);

    // An ordinary role may not read the server's files, and is told so in one line.
    lab.ensure_role("nobody_special").await.expect("role");
    let client = plain_client(&lab, "nobody_special").await;
    let err = SqlLogReader::new(false)
        .poll(&client)
        .await
        .expect_err("not permitted")
        .to_string();
    eprintln!("unprivileged: {err}");
    assert!(err.contains("permission denied"), "{err}");
    assert!(err.contains("nobody_special"), "{err}");
    assert!(!err.contains('\n'), "{err}");
}

async fn plain_client(lab: &Lab, role: &str) -> tokio_postgres::Client {
    let mut config: tokio_postgres::Config = lab.conninfo(role).parse().expect("conninfo");
    config.ssl_mode(SslMode::Disable);
    let (client, connection) = config.connect(NoTls).await.expect("connects");
    tokio::spawn(connection);
    client
}

/// A role without the rights to the log functions is told so in one line, the SQLSTATE deciding, not the words.
#[tokio::test]
async fn a_role_without_rights_to_the_log_is_told_which_it_needs() {
    let lab = collector_lab("stderr").await;
    lab.ensure_role("log_reader_without_rights").await.expect("role");
    let session = lab
        .open(SessionKind::PlainTcp, "log_reader_without_rights", "no-rights")
        .await
        .expect("session");
    let err = SqlLogReader::new(false)
        .poll(&session.client)
        .await
        .expect_err("an ordinary role may not call pg_current_logfile")
        .to_string();
    assert!(
        err.contains("role \"log_reader_without_rights\" may not read server log files"),
        "{err}"
    );
    assert!(!err.contains('\n'));
}
