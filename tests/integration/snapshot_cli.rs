//! `pgtls snapshot` as a user runs it, against the real lab.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail by panicking")]

use crate::common;

use pgtls::lab::{LAB_PASSWORD, SUPERUSER, SessionKind};
use unicode_width::UnicodeWidthStr;

#[tokio::test]
async fn snapshot_prints_every_session_as_json_table_and_csv() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let sessions = [
        lab.open(SessionKind::Tls13, "app13", "tls13-app").await.unwrap(),
        lab.open(SessionKind::Tls12, "app12", "tls12-holdout-with-a-long-name")
            .await
            .unwrap(),
        lab.open(SessionKind::PlainTcp, "plain", "plaintext").await.unwrap(),
        lab.open(SessionKind::UnixSocket, "local", "socket").await.unwrap(),
    ];
    let conninfo = format!("{} sslmode=require", lab.conninfo(SUPERUSER));

    let out = common::pgtls(&["snapshot", &conninfo, "--format", "json"], home.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["format_version"], 1);
    let listed = json["sessions"].as_array().unwrap();
    for s in &sessions {
        let row = listed
            .iter()
            .find(|r| r["pid"] == s.pid)
            .expect("every session is listed");
        let class = match s.kind {
            SessionKind::Tls13 => "tls13",
            SessionKind::Tls12 => "tls12",
            SessionKind::PlainTcp => "plain_tcp",
            _ => "local",
        };
        assert_eq!(row["class"], class);
    }
    assert_eq!(json["monitor"]["tls"]["version"], "TLSv1.3");
    assert_eq!(
        json["settings"]["ssl"],
        serde_json::json!({"state": "set", "value": "on"})
    );

    let out = common::pgtls(&["snapshot", &conninfo, "--format", "table"], home.path());
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    for line in table.lines() {
        assert!(line.width() <= 100, "line wider than 100 columns: {line:?}");
    }
    for s in &sessions {
        let line = table
            .lines()
            .find(|l| l.split_whitespace().take(2).any(|t| t == s.pid.to_string()))
            .unwrap_or_else(|| panic!("pid {} in table:\n{table}", s.pid));
        match s.kind {
            SessionKind::Tls12 => {
                assert!(line.starts_with('~') && line.contains("TLSv1.2"), "{line}")
            }
            SessionKind::PlainTcp => {
                assert!(line.starts_with('!') && line.contains("no TLS"), "{line}")
            }
            SessionKind::UnixSocket => assert!(line.contains("[local]"), "{line}"),
            _ => assert!(line.contains("TLSv1.3"), "{line}"),
        }
    }
    assert!(table.contains("tls12-holdout…"), "long names are cut with a mark");
    assert!(!table.contains(LAB_PASSWORD));

    let out = common::pgtls(&["snapshot", &conninfo, "--format", "csv"], home.path());
    assert!(out.status.success());
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    let header = reader.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), json["sessions"].as_array().unwrap().len());
    assert!(rows.iter().all(|r| r.len() == header.len()));
    let cell = |row: &csv::StringRecord, name: &str| {
        let i = header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no CSV column {name}"));
        row[i].to_string()
    };
    let tls12 = rows
        .iter()
        .find(|r| cell(r, "pid") == sessions[1].pid.to_string())
        .unwrap();
    assert_eq!(cell(tls12, "tls_version"), "TLSv1.2");
    let pids: Vec<i32> = sessions.iter().map(|s| s.pid).collect();
    csv_is_the_json_flattened(&json, &header, &rows, &pids);
}

/// The CSV's columns are the JSON session fields, `tls` and `gss` flattened, then `taken_at` and `age_seconds`. The
/// two outputs come from two polls, so values are compared for the test's own sessions and the fields that stay put
/// (src/output/csv.rs compares every field of one snapshot).
fn csv_is_the_json_flattened(
    json: &serde_json::Value,
    header: &csv::StringRecord,
    rows: &[csv::StringRecord],
    pids: &[i32],
) {
    use pgtls::output::csv::{SESSION_COLUMNS, SNAPSHOT_COLUMNS, flatten};
    let expected: Vec<&str> = SESSION_COLUMNS.iter().chain(SNAPSHOT_COLUMNS.iter()).copied().collect();
    assert_eq!(header.iter().collect::<Vec<_>>(), expected);
    const CHANGING: [&str; 8] = [
        "state",
        "query",
        "query_id",
        "state_change",
        "xact_start",
        "query_start",
        "wait_event_type",
        "wait_event",
    ];
    for pid in pids {
        let session = json["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["pid"] == *pid)
            .unwrap();
        let row = rows.iter().find(|r| r[0] == pid.to_string()).unwrap();
        for (key, value) in flatten(session) {
            let Some(i) = header.iter().position(|h| h == key) else {
                // A nested object that is null as a whole (`"tls": null`) has empty columns.
                assert!(value.is_null(), "JSON field {key} has no CSV column");
                assert!(header.iter().any(|h| h.starts_with(&format!("{key}_"))), "{key}");
                continue;
            };
            if CHANGING.contains(&key.as_str()) {
                continue;
            }
            let shown = match &value {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert_eq!(row[i], shown, "{key} of pid {pid}");
        }
        let start = header.iter().position(|h| h == "backend_start").unwrap();
        assert_eq!(
            row[start],
            session["backend_start"].as_str().unwrap().to_string(),
            "same timestamp format"
        );
    }
}

#[tokio::test]
async fn a_connection_failure_is_one_line_and_exit_code_2() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let refused_port = pgtls::lab::server::free_port().unwrap();
    // A server that accepts and then says nothing: only a whole-start-up timeout ends the wait.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming().flatten() {
            held.push(stream);
        }
    });
    // A client key others may read: libpq refuses it, so do we.
    let open_key = home.path().join("open.key");
    std::fs::copy(&lab.certs.client_key, &open_key).unwrap();
    std::fs::set_permissions(&open_key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let cases = [
        (
            format!("host=127.0.0.1 port={silent_port} user=x password=hunter2 connect_timeout=2 sslmode=require"),
            "timeout expired",
        ),
        (
            format!(
                "{} sslmode=require sslcert={} sslkey={}",
                lab.conninfo(pgtls::lab::CERT_USER),
                lab.certs.client_cert.display(),
                open_key.display()
            ),
            "group or world access",
        ),
        (
            format!(
                "{} sslmode=require sslcert={}/missing.crt sslkey={}",
                lab.conninfo(pgtls::lab::CERT_USER),
                home.path().display(),
                open_key.display()
            ),
            "requires a valid client certificate",
        ),
        (
            format!("host=127.0.0.1 port={refused_port} user=x password=hunter2 sslmode=disable"),
            "connection refused",
        ),
        (
            format!(
                "host=127.0.0.1 port={} user={SUPERUSER} password=wrong-hunter2 sslmode=require",
                lab.port
            ),
            "password authentication failed",
        ),
        (
            format!(
                "{} sslmode=verify-full sslrootcert=/nonexistent/root.crt",
                lab.conninfo(SUPERUSER)
            ),
            "does not exist",
        ),
        (
            format!(
                "{} sslmode=verify-full sslrootcert={}",
                lab.conninfo(SUPERUSER),
                lab.certs.server_cert.display()
            ),
            "not trusted",
        ),
        (
            "host=no-such-host.invalid user=x sslmode=disable".to_string(),
            "could not translate host name",
        ),
    ];
    for (conninfo, expected) in cases {
        let out = common::pgtls(&["snapshot", &conninfo], home.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{conninfo}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
        assert!(
            stderr.contains(expected),
            "{conninfo}: expected {expected:?} in {stderr}"
        );
        assert!(
            !stderr.contains("hunter2") && !stderr.contains(LAB_PASSWORD),
            "no password in {stderr}"
        );
        assert!(out.stdout.is_empty());
    }
}

/// `psql` run as `pgtls` is run (same HOME, no PG* variables): who it connected as, and over what.
fn psql_says(args: &[&str], home: &std::path::Path) -> String {
    let mut cmd = std::process::Command::new(common::require_tool("psql", "postgresql-client"));
    for (key, _) in std::env::vars() {
        if key.starts_with("PG") {
            cmd.env_remove(key);
        }
    }
    let out = cmd
        .env("HOME", home)
        .args(["-X", "-A", "-t", "-c"])
        .arg("SELECT current_user || ' ' || coalesce(host(inet_client_addr()), 'socket')")
        .args(args)
        .output()
        .expect("psql runs (apt-get install postgresql-client)");
    assert!(
        out.status.success(),
        "psql {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The same as `pgtls snapshot --format json`: the monitor's user and where it connected.
fn pgtls_says(args: &[&str], home: &std::path::Path) -> String {
    let mut all = vec!["snapshot", "--format", "json"];
    all.extend_from_slice(args);
    let out = common::pgtls(&all, home);
    assert!(
        out.status.success(),
        "pgtls {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let over = if json["server"]["host"].as_str().unwrap().starts_with('/') {
        "socket"
    } else {
        "127.0.0.1"
    };
    format!("{} {over}", json["monitor"]["user"].as_str().unwrap())
}

/// psql's -h -p -U -d, alone and with a connection string, give what psql gives: the connection string wins over
/// the flags for what it names, the flags fill the rest.
#[tokio::test]
async fn psql_flags_connect_and_combine_with_a_conninfo_as_psql_does() {
    let lab = common::lab().await;
    lab.ensure_role("app13").await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let pgpass = home.path().join(".pgpass");
    std::fs::write(&pgpass, format!("*:*:*:*:{LAB_PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&pgpass, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let port = lab.port.to_string();
    let socket = lab.socket_dir.display().to_string();
    let socket_conninfo = format!("host={socket} user={SUPERUSER} dbname=postgres");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["-h", "127.0.0.1", "-p", &port, "-U", "app13", "-d", "postgres"],
            "app13 127.0.0.1",
        ),
        (
            vec![
                "--host",
                "127.0.0.1",
                "--port",
                &port,
                "--username",
                "app13",
                "postgres",
            ],
            "app13 127.0.0.1",
        ),
        // The connection string names the user: it wins over -U.
        (
            vec![
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "nobody",
                "user=app13 dbname=postgres",
            ],
            "app13 127.0.0.1",
        ),
        // ... and the host: a socket, whatever -h says.
        (
            vec!["-h", "127.0.0.1", "-p", &port, "-U", "nobody", &socket_conninfo],
            "postgres socket",
        ),
        // -d may be a connection string, with the same precedence.
        (
            vec!["-h", "127.0.0.1", "-p", &port, "-U", "nobody", "-d", &socket_conninfo],
            "postgres socket",
        ),
        // A URI without host or user leaves -h and -U in force.
        (
            vec!["-h", "127.0.0.1", "-p", &port, "-U", "app13", "postgresql:///postgres"],
            "app13 127.0.0.1",
        ),
    ];
    for (args, expected) in cases {
        assert_eq!(psql_says(&args, home.path()), expected, "psql {args:?}");
        assert_eq!(pgtls_says(&args, home.path()), expected, "pgtls {args:?}");
    }
}

#[test]
fn the_psql_flags_need_one_server_and_help_is_dash_question_mark() {
    let home = tempfile::tempdir().unwrap();
    for (args, code, says) in [
        (
            vec!["snapshot", "-h", "db1", "host=a", "host=b"],
            64,
            "-h applies to one server, but 2 connection strings name several",
        ),
        (
            vec!["-p", "5433", "-U", "x", "host=a", "host=b"],
            64,
            "-p -U apply to one server",
        ),
        (
            vec!["check", "-h", "db1", "host=a", "host=b"],
            3,
            "-h applies to one server",
        ),
        (
            vec!["probe", "-d", "x", "host=a", "host=b"],
            3,
            "-d applies to one server",
        ),
        (
            vec!["snapshot", "host=a", "host=b"],
            64,
            "pgtls connects to one server at a time",
        ),
        (
            vec!["snapshot", "-d", "shop", "host=a"],
            64,
            "-d and a CONNINFO both say where to connect",
        ),
    ] {
        let out = common::pgtls(&args, home.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty());
    }
    for args in [
        vec!["-?"],
        vec!["snapshot", "-?"],
        vec!["check", "-?"],
        vec!["demo", "-?"],
        vec!["--help"],
    ] {
        let out = common::pgtls(&args, home.path());
        let help = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(
            help.contains("-?, --help") && help.contains("Usage: pgtls"),
            "{args:?}: {help}"
        );
    }
    let out = common::pgtls(&["snapshot", "--help"], home.path());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("-h, --host <HOSTNAME>") && help.contains("-U, --username <USERNAME>"),
        "{help}"
    );
    // -h takes a value now: alone it is a usage error, not help.
    let out = common::pgtls(&["snapshot", "-h"], home.path());
    assert_eq!(out.status.code(), Some(64));
}

/// What libpq warns about on connecting (a client certificate file named but missing, so none is sent) is said once
/// on stderr by every command that connects, as psql prints libpq's warnings, and the command goes on.
#[tokio::test]
async fn connection_warnings_are_said_once_by_every_command() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let missing = home.path().join("missing.crt");
    let conninfo = format!(
        "{} sslmode=require sslcert={}",
        lab.conninfo(SUPERUSER),
        missing.display()
    );
    let warning = format!(
        "client certificate file \"{}\" does not exist; no client certificate will be sent",
        missing.display()
    );
    for args in [
        vec!["snapshot", "--format", "json", conninfo.as_str()],
        vec!["check", conninfo.as_str()],
        vec!["probe", conninfo.as_str()],
    ] {
        let out = common::pgtls(&args, home.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr.matches(&warning).count(),
            1,
            "{}: the warning once in {stderr}",
            args[0]
        );
        assert!(!out.stdout.is_empty(), "{} went on after the warning", args[0]);
        assert!(!stderr.contains(LAB_PASSWORD) && !String::from_utf8_lossy(&out.stdout).contains(LAB_PASSWORD));
    }
}
