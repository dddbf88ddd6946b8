//! One odd row never fails the poll: a session whose text is not UTF-8 is shown, decoded lossily.

use crate::common;

use std::time::Duration;

use pgtls::lab::SUPERUSER;

/// A LATIN1 database keeps its sessions' query text in LATIN1, and pg_stat_activity hands those bytes to a
/// UTF-8 monitor unconverted. Before lossy decoding every poll failed ("error deserializing column 17") for as
/// long as the session's last query held such a byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latin1_session_with_non_utf8_query_text_is_shown() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    lab.admin()
        .await
        .unwrap()
        .batch_execute("CREATE DATABASE latin1db ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
        .await
        .unwrap();
    // The client speaks UTF-8; the server converts 'café' to LATIN1 ("caf\xe9") and shows it so.
    let conninfo = lab.conninfo(SUPERUSER).replace("dbname=postgres", "dbname=latin1db");
    let (client, connection) = tokio_postgres::connect(&format!("{conninfo} sslmode=disable"), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let running = tokio::spawn(async move {
        client
            .simple_query("SELECT 'café', pg_sleep(60) /* odd-row */")
            .await
            .map(|_| ())
    });

    let monitor = format!("{} sslmode=require", lab.conninfo(SUPERUSER));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let (json, stderr) = loop {
        let out = common::pgtls(&["snapshot", &monitor, "--format", "json"], home.path());
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "the poll failed: {stderr}");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let seen = json["sessions"].as_array().unwrap().iter().any(|s| {
            s["query"]
                .as_str()
                .is_some_and(|q| q.contains("odd-row") && q.contains("pg_sleep"))
        });
        if seen {
            break (json, stderr);
        }
        assert!(std::time::Instant::now() < deadline, "the session never showed: {json}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let session = json["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["query"]
                .as_str()
                .is_some_and(|q| q.contains("odd-row") && q.contains("pg_sleep"))
        })
        .unwrap();
    assert_eq!(session["database"], "latin1db", "{session}");
    assert_eq!(
        session["query"], "SELECT 'caf\u{FFFD}', pg_sleep(60) /* odd-row */",
        "the LATIN1 byte is replaced, the rest kept: {session}"
    );
    assert!(
        session.get("undecoded").is_none(),
        "text never counts as undecodable: {session}"
    );
    assert!(stderr.is_empty(), "{stderr}");
    running.abort();
}

/// A column that no decoder accepts (here the start time arrives as text) leaves that field empty and named in
/// `undecoded`: the session is kept, and its other fields are read as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_column_is_marked_not_fatal() {
    use pgtls::collect::{rows, sql};
    let lab = common::lab().await;
    let admin = lab.admin().await.unwrap();
    let statement = sql::poll_statement(&sql::PollShape {
        version_num: 150_000,
        sslinfo_schema: None,
    });
    // The session half of the poll, with one column of an unexpected type.
    let sessions_only = statement.split("UNION ALL").nth(1).unwrap();
    assert!(sessions_only.contains("a.backend_start,"));
    let odd = sessions_only.replace("a.backend_start,", "'not a time'::text,");
    let rows = admin.query(&odd, &[&Vec::<i32>::new()]).await.unwrap();
    assert!(!rows.is_empty());
    for row in &rows {
        let session = rows::session_from_row(row);
        assert_eq!(session.undecoded, vec!["backend_start".to_string()]);
        assert_eq!(session.backend_start, None);
        assert!(session.pid > 0 && session.backend_type.is_some(), "{session:?}");
    }
}

/// A server may keep up to a megabyte of each session's query (`track_activity_query_size`, a restart setting):
/// a poll fetches at most `QUERY_BYTES` of it, marked as cut, so a poll's size and a fleet's memory do not follow
/// the server's setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_query_text_is_fetched_cut_and_marked() {
    use pgtls::lab::{Lab, LabOptions};
    let lab = Lab::start(LabOptions {
        settings: vec![("track_activity_query_size".into(), "65536".into())],
        ..LabOptions::default()
    })
    .await
    .expect("lab");
    let home = tempfile::tempdir().unwrap();
    let conninfo = lab.conninfo(SUPERUSER);
    let (client, connection) = tokio_postgres::connect(&format!("{conninfo} sslmode=disable"), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    // 50,000 bytes of query with a two-byte character across the cut: its first byte is the limit's last.
    let limit = pgtls::collect::sql::QUERY_BYTES;
    let head = "SELECT pg_sleep(60) /* long-query ";
    let long = format!("{head}{}é{} */", "x".repeat(limit - 1 - head.len()), "y".repeat(50_000));
    let running = tokio::spawn(async move { client.simple_query(&long).await.map(|_| ()) });

    let monitor = format!("{} sslmode=require", lab.conninfo(SUPERUSER));
    let query = common::wait_until("the long query's session", Duration::from_secs(30), async || {
        let out = common::pgtls(&["snapshot", &monitor, "--format", "json"], home.path());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        json["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|s| {
                s["query"]
                    .as_str()
                    .filter(|q| q.contains("long-query"))
                    .map(str::to_string)
            })
            .ok_or("not yet")
    })
    .await;
    assert!(
        query.starts_with("SELECT pg_sleep(60) /* long-query xxx"),
        "{query:.80}"
    );
    assert!(
        query.ends_with("x…"),
        "cut and marked: ...{}",
        &query[query.len() - 20..]
    );
    assert_eq!(
        query.len(),
        limit - 1 + "…".len(),
        "the whole characters within the limit (the split 'é' left out), then the mark"
    );
    running.abort();
}
