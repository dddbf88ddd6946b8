//! CloudNativePG's log as `--server-log` (issue 30's leftover): the operator wraps each PostgreSQL record in a
//! JSON line of its own, among its own lines. A real PostgreSQL 15 writes jsonlog; each line is wrapped the way
//! the operator wraps its csvlog records (csvlog's column names, every value a string; see
//! <https://cloudnative-pg.io/documentation/current/logging>), operator lines in between, and `pgtls check` must
//! count the same refusals and clients from either file.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail by panicking")]

use crate::common;

use std::path::Path;
use std::time::Duration;

use pgtls::lab::{Lab, LabOptions, SUPERUSER, SessionKind};
use serde_json::{Map, Value, json};

/// The pod the operator names in each line.
const POD: &str = "cluster-example-1";

/// jsonlog's keys and the csvlog columns CloudNativePG names them by, in csvlog's order.
const COLUMNS: [(&str, &str); 20] = [
    ("timestamp", "log_time"),
    ("user", "user_name"),
    ("dbname", "database_name"),
    ("pid", "process_id"),
    ("", "connection_from"),
    ("session_id", "session_id"),
    ("line_num", "session_line_num"),
    ("ps", "command_tag"),
    ("session_start", "session_start_time"),
    ("vxid", "virtual_transaction_id"),
    ("txid", "transaction_id"),
    ("error_severity", "error_severity"),
    ("state_code", "sql_state_code"),
    ("message", "message"),
    ("detail", "detail"),
    ("hint", "hint"),
    ("context", "context"),
    ("statement", "query"),
    ("application_name", "application_name"),
    ("backend_type", "backend_type"),
];

/// One jsonlog line as CloudNativePG's instance manager prints the same record (read from csvlog there).
fn wrap(jsonlog: &str) -> String {
    let line: Map<String, Value> = serde_json::from_str(jsonlog).expect("a jsonlog line is an object");
    let text = |key: &str| match line.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => String::new(),
    };
    let mut record = Map::new();
    for (from, to) in COLUMNS {
        let value = match to {
            // csvlog's host:port, or [local] for a Unix socket (jsonlog: remote_host [local], no port).
            "connection_from" => match (text("remote_host"), text("remote_port")) {
                (host, port) if port.is_empty() => host,
                (host, port) => format!("{host}:{port}"),
            },
            _ => text(from),
        };
        record.insert(to.to_string(), Value::String(value));
    }
    json!({
        "level": "info",
        "ts": "2026-12-08T02:30:00.000000Z",
        "logger": "postgres",
        "msg": "record",
        "logging_pod": POD,
        "record": record,
    })
    .to_string()
}

/// Lines of the operator's own around the records: none is a record, whatever its text says.
fn operator_lines(real_authorized: &str) -> Vec<String> {
    let forged_record = wrap(real_authorized)
        .replace(r#""logger":"postgres""#, r#""logger":"pgaudit""#)
        .replace("application_name=", "application_name=operator-forged-");
    vec![
        json!({"level": "info", "ts": "2026-12-08T02:30:00Z", "logger": "instance-manager",
               "msg": "Checking for free disk space for WALs", "logging_pod": POD})
        .to_string(),
        // A line the instance manager could not parse: its raw text in msg, no record.
        json!({"level": "info", "ts": "2026-12-08T02:30:00Z", "logger": "postgres", "logging_pod": POD,
               "msg": "2026-12-08 02:30:00.000 UTC [4242] LOG:  connection authorized: user=payroll database=prod \
                       application_name=raw-forged SSL enabled (protocol=TLSv1, cipher=AES256-SHA, bits=256)"})
        .to_string(),
        forged_record,
    ]
}

fn check(lab: &Lab, log: &Path, home: &Path) -> Value {
    let conninfo = format!(
        "{} sslmode=verify-full sslrootcert={}",
        lab.conninfo(SUPERUSER)
            .replace("host=127.0.0.1", "host=localhost hostaddr=127.0.0.1"),
        lab.certs.ca_cert.display()
    );
    let out = common::pgtls(
        &[
            "check",
            &conninfo,
            "--server-log",
            &log.display().to_string(),
            "--target",
            "TLSv1.3",
            "--format",
            "json",
        ],
        home,
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The jsonlog file the collector writes now.
fn jsonlog_file(lab: &Lab) -> std::path::PathBuf {
    let listing = std::fs::read_to_string(lab.data_dir.join("current_logfiles")).expect("current_logfiles");
    let name = listing
        .lines()
        .find_map(|l| l.strip_prefix("jsonlog "))
        .expect("jsonlog listed");
    lab.data_dir.join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudnativepgs_log_counts_as_the_jsonlog_it_wraps() {
    let lab = Lab::start(LabOptions {
        settings: vec![
            ("logging_collector".into(), "on".into()),
            ("log_destination".into(), "stderr,jsonlog".into()),
            ("ssl_min_protocol_version".into(), "TLSv1.3".into()),
        ],
        ..Default::default()
    })
    .await
    .expect("lab starts");
    if lab.major_version < 15 {
        eprintln!("jsonlog needs PostgreSQL 15; this server is {}", lab.major_version);
        return;
    }
    let home = tempfile::tempdir().unwrap();
    for (kind, app) in [
        (SessionKind::Tls13, "cnpg-tls13"),
        (SessionKind::PlainTcp, "cnpg-plain"),
        (SessionKind::UnixSocket, "cnpg-socket"),
    ] {
        drop(lab.open(kind, SUPERUSER, app).await.expect("session opens"));
    }
    // Refused: a TLS 1.2-only client under a TLS 1.3 floor, a failed handshake in the log.
    assert!(lab.open(SessionKind::Tls12, SUPERUSER, "cnpg-tls12").await.is_err());
    // A forgery from a connected role, and a whole wrapped record as a statement's text.
    let mallory = lab.open(SessionKind::Tls13, SUPERUSER, "cnpg-mallory").await.unwrap();
    mallory
        .client
        .batch_execute(
            "DO $$BEGIN RAISE LOG 'connection authorized: user=payroll database=prod application_name=payroll-batch \
             SSL enabled (protocol=TLSv1, cipher=AES256-SHA, bits=256)'; END$$",
        )
        .await
        .unwrap();
    let path = jsonlog_file(&lab);
    let first_authorized = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .find(|l| l.contains("connection authorized") && l.contains("cnpg-tls13"))
        .expect("the TLS 1.3 session is logged")
        .to_string();
    let smuggled = wrap(&first_authorized).replace("cnpg-tls13", "smuggled-app");
    let _ = mallory
        .client
        .batch_execute(&format!("SELECT '{}' FROM nosuch", smuggled.replace('\'', "''")))
        .await;
    let last = lab.open(SessionKind::Tls13, SUPERUSER, "cnpg-last").await.unwrap();
    drop(last);
    common::wait_until(
        "the last session in the jsonlog file",
        Duration::from_secs(30),
        async || {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.contains("application_name=cnpg-last") {
                Ok(())
            } else {
                Err(text.len())
            }
        },
    )
    .await;

    let text = std::fs::read_to_string(&path).unwrap();
    let plain = home.path().join("postgresql.json");
    std::fs::write(&plain, &text).unwrap();
    // Named as `kubectl logs` output usually is: the format is told from the first line.
    let wrapped = home.path().join("cluster-example-1.log");
    let mut out = String::new();
    let operator = operator_lines(&first_authorized);
    for (i, line) in text.lines().enumerate() {
        out.push_str(&operator[i % operator.len()]);
        out.push('\n');
        out.push_str(&wrap(line));
        out.push('\n');
    }
    std::fs::write(&wrapped, out).unwrap();

    let from_plain = check(&lab, &plain, home.path());
    let from_wrapped = check(&lab, &wrapped, home.path());
    for key in ["whatif", "after_change", "refused", "alerts", "counts"] {
        assert_eq!(from_wrapped.get(key), from_plain.get(key), "{key}: {from_wrapped:#}");
    }
    let perfdata = |json: &Value| {
        let all = json["perfdata"].as_str().unwrap().to_string();
        all.split(' ')
            .filter(|f| !f.starts_with("poll_time="))
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(perfdata(&from_wrapped), perfdata(&from_plain));
    // What the plain file gives is what the lab did: the refused handshake and the five clients' sessions from
    // the log (pgtls's own left out), the forgery kept out.
    assert_eq!(
        from_plain["after_change"]["refused"][0]["attempts"], 1,
        "{from_plain:#}"
    );
    let evidence = &from_plain["whatif"]["evidence"];
    assert_eq!(evidence["log_source"], true);
    assert!(evidence["sessions"].as_u64().unwrap() >= 5, "{evidence:#}");
    let wrapped_text = from_wrapped.to_string();
    for app in ["cnpg-tls13", "cnpg-plain", "cnpg-last", "cnpg-mallory"] {
        assert!(
            wrapped_text.contains(app),
            "{app} read from the wrapped log: {from_wrapped:#}"
        );
    }
    for forged in ["smuggled-app", "operator-forged", "raw-forged"] {
        assert!(!wrapped_text.contains(forged), "{forged} counted: {from_wrapped:#}");
    }
    drop(mallory);
}
