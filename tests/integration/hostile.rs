//! Hostile text never reaches a terminal, a spreadsheet or the ledger as truth (issue 13). Each test runs the
//! real binary (or the log reader) against the lab server, or a fake server, with names, certificates, error
//! messages and log lines full of escape sequences, and checks the bytes that come out.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail by panicking")]

use crate::common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;

use pgtls::lab::{Lab, LabOptions, SUPERUSER, SessionKind};
use pgtls::logsource::{LogFollower, LogFormat};

/// Every code point a terminal must never receive from outside text, as the outputs must neutralise them.
fn unsafe_char(c: char) -> bool {
    pgtls::output::safe::is_unsafe(c)
}

/// Fails with the offending character and its context when `bytes` carry any unsafe character other than `\n`.
fn assert_terminal_safe(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    if let Some((at, c)) = text.char_indices().find(|(_, c)| *c != '\n' && unsafe_char(*c)) {
        let from = text[..at].char_indices().rev().nth(40).map_or(0, |(i, _)| i);
        panic!("{what}: {c:?} reached the terminal at byte {at}: {:?}", &text[from..]);
    }
}

/// A role name, an application_name and what both carry: a colour, a window-title rewrite with a bell, a
/// carriage return, a line break with a fake Nagios line, a C1 CSI and a bidi override.
const HOSTILE_ROLE: &str = "evil\x1b[31m\r\nPGTLS OK - all good | x=1\u{9b}2J\u{202e}";
const HOSTILE_APP: &str = "\x1b]0;pwned\x07app\nline2\u{202e}";
const FORMULA_APP: &str = "=HYPERLINK(\"http://x\",\"y\")";

async fn create_role(lab: &Lab, name: &str) {
    let admin = lab.admin().await.unwrap();
    let sql: String = admin
        .query_one(
            "SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', $1::text, $2::text)",
            &[&name, &pgtls::lab::LAB_PASSWORD],
        )
        .await
        .unwrap()
        .get(0);
    admin.batch_execute(&sql).await.unwrap();
}

#[tokio::test]
async fn hostile_names_are_escaped_in_every_terminal_output_and_csv_shows_formulas_as_text() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    create_role(&lab, HOSTILE_ROLE).await;
    let _s1 = lab.open(SessionKind::Tls12, HOSTILE_ROLE, HOSTILE_APP).await.unwrap();
    let _s2 = lab.open(SessionKind::Tls13, SUPERUSER, FORMULA_APP).await.unwrap();
    let conninfo = format!("{} sslmode=require", lab.conninfo(SUPERUSER));

    let out = common::pgtls(&["snapshot", &conninfo, "--format", "table"], home.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_terminal_safe("snapshot table", &out.stdout);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("evil\\x1b"),
        "the name is shown, escaped (and cut to its column):\n{table}"
    );
    assert!(
        !table.lines().any(|l| l.starts_with("PGTLS OK")),
        "a name added a line:\n{table}"
    );

    let out = common::pgtls(&["check", &conninfo, "--target", "TLSv1.3"], home.path());
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stdout));
    assert_terminal_safe("check text", &out.stdout);
    let text = String::from_utf8(out.stdout).unwrap();
    let first = text.lines().next().unwrap();
    assert!(first.starts_with("PGTLS CRITICAL - "), "{first}");
    assert_eq!(
        first.matches('|').count(),
        1,
        "the name's | must not split the perfdata: {first}"
    );
    assert!(
        first.contains("evil\\x1b[31m\\r\\nPGTLS OK - all good \\x7c x=1"),
        "{first}"
    );
    assert!(
        first.split('|').nth(1).unwrap().trim_start().starts_with("tls13="),
        "{first}"
    );
    assert!(!text.contains("NotSafe") && text.contains("not safe"), "{text}");

    let out = common::pgtls(&["snapshot", &conninfo, "--format", "csv"], home.path());
    assert!(out.status.success());
    assert_terminal_safe("snapshot csv", &out.stdout);
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    let column = |name: &str| {
        pgtls::output::csv::SESSION_COLUMNS
            .iter()
            .position(|c| *c == name)
            .unwrap()
    };
    let (user, application, port) = (column("user"), column("application_name"), column("client_port"));
    let apps: Vec<String> = reader.records().map(|r| r.unwrap()[application].to_string()).collect();
    assert!(apps.contains(&format!("'{FORMULA_APP}")), "{apps:?}");
    assert!(apps.iter().all(|a| !a.starts_with(['=', '+', '-', '@'])), "{apps:?}");

    let out = common::pgtls(&["snapshot", &conninfo, "--format", "csv", "--raw"], home.path());
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert!(
        records.iter().any(|r| &r[application] == FORMULA_APP),
        "--raw keeps the field exact"
    );
    // (PostgreSQL 15 itself turns non-ASCII and control bytes in application_name into '?'; role names it keeps.)
    assert!(
        records.iter().any(|r| &r[user] == HOSTILE_ROLE),
        "--raw keeps every byte"
    );
    // The ports of Unix sockets and other numbers stay numbers.
    assert!(records.iter().all(|r| !r[port].starts_with('\'')));

    // JSON stays exact: C0 controls are escaped by JSON itself (\u001b); C1 and bidi characters are valid JSON
    // text and are kept as they are, so the decoded value is the name, byte for byte.
    let out = common::pgtls(&["snapshot", &conninfo, "--format", "json"], home.path());
    assert!(
        !out.stdout.iter().any(|b| *b < 0x20 && *b != b'\n'),
        "no raw C0 byte in JSON"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = json["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["user"].as_str())
        .collect();
    assert!(names.contains(&HOSTILE_ROLE));
}

/// A role named like the monitor's own with a zero-width space inside: `snapshot` and `check` print the escape, so
/// the look-alike cannot pass for `monitor`.
#[tokio::test]
async fn a_look_alike_role_is_told_apart_in_snapshot_and_check() {
    const LOOKALIKE: &str = "moni\u{200b}tor";
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    create_role(&lab, LOOKALIKE).await;
    let _s = lab.open(SessionKind::Tls12, LOOKALIKE, "lookalike").await.unwrap();
    let conninfo = format!("{} sslmode=require", lab.conninfo(SUPERUSER));

    let out = common::pgtls(&["snapshot", &conninfo, "--format", "table"], home.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_terminal_safe("snapshot table", &out.stdout);
    let table = String::from_utf8(out.stdout).unwrap();
    // The user column is cut to its width, but the escape starts inside it: `moni\u{20…`, never `monitor`.
    assert!(table.contains("moni\\u{20"), "{table}");

    let out = common::pgtls(&["check", &conninfo, "--target", "TLSv1.3"], home.path());
    assert_terminal_safe("check text", &out.stdout);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.lines().next().unwrap().contains("moni\\u{200b}tor"), "{text}");
}

#[tokio::test]
async fn a_hostile_certificate_is_escaped_in_the_probe_report() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    // The lab's own server certificate, reissued with escape sequences in its subject and names, and reloaded.
    let ca = pgtls::lab::issue_ca("hostile CA \x1b[5m\x07").unwrap();
    let cn = "localhost\x1b]0;pwned\x07\u{202e}";
    let dns = ["localhost", "evil\x1b[2J.example\r\nFindings    none"];
    let server = pgtls::lab::certs::issue(
        &pgtls::lab::certs::CertSpec::server(cn, &dns, &["127.0.0.1"]),
        Some(&ca),
    )
    .unwrap();
    lab.use_server_certificate(&server).await.unwrap();

    let conninfo = format!("{} sslmode=require", lab.conninfo(SUPERUSER));
    let out = common::pgtls(&["probe", &conninfo], home.path());
    assert_terminal_safe("probe text", &out.stdout);
    assert_terminal_safe("probe stderr", &out.stderr);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("\\x1b]0;pwned\\x07"),
        "the subject is shown, escaped:\n{text}"
    );
    assert!(
        text.contains("evil\\x1b[2J.example\\r\\nFindings"),
        "the names are shown, escaped:\n{text}"
    );
    assert_eq!(
        text.matches("Findings").count(),
        2,
        "only the real Findings line starts a line:\n{text}"
    );

    // A verifying connection fails on that certificate; its error names it, escaped, on stderr.
    let out = common::pgtls(
        &[
            "snapshot",
            &format!(
                "{} sslmode=verify-full sslrootcert={}",
                lab.conninfo(SUPERUSER),
                lab.certs.ca_cert.display()
            ),
        ],
        home.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert_terminal_safe("snapshot stderr", &out.stderr);
}

/// A fake server: answers SSLRequest as told, then sends an ErrorResponse full of escape sequences.
fn fake_server(answer: Answer) -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        // One connection per sslmode attempt; serve a few, then stop.
        for _ in 0..4 {
            let Ok((mut stream, _)) = listener.accept() else { return };
            stream
                .set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            let mut first = [0u8; 8];
            if stream.read_exact(&mut first).is_err() {
                continue;
            }
            let is_ssl_request = first[4..8] == [0x04, 0xD2, 0x16, 0x2F];
            match (&answer, is_ssl_request) {
                (Answer::ErrorForSslRequest, true) => {
                    let _ = stream.write_all(&error_response());
                }
                (Answer::No, true) => {
                    let _ = stream.write_all(b"N");
                    read_message(&mut stream);
                    let _ = stream.write_all(&error_response());
                }
                (Answer::TlsThenError(acceptor), true) => {
                    let _ = stream.write_all(b"S");
                    if let Ok(mut tls) = acceptor.accept(stream) {
                        read_message(&mut tls);
                        let _ = tls.write_all(&error_response());
                        let _ = tls.shutdown();
                    }
                }
                (_, false) => {
                    // A start-up without SSLRequest: the first 8 bytes were its head; read the rest.
                    let len = u32::from_be_bytes([first[0], first[1], first[2], first[3]]) as usize;
                    let mut rest = vec![0u8; len.saturating_sub(8)];
                    let _ = stream.read_exact(&mut rest);
                    let _ = stream.write_all(&error_response());
                }
            }
        }
    });
    (port, handle)
}

enum Answer {
    ErrorForSslRequest,
    No,
    TlsThenError(openssl::ssl::SslAcceptor),
}

fn read_message(stream: &mut impl Read) {
    let mut len = [0u8; 4];
    if stream.read_exact(&mut len).is_ok() {
        let mut rest = vec![0u8; (u32::from_be_bytes(len) as usize).saturating_sub(4)];
        let _ = stream.read_exact(&mut rest);
    }
}

/// `E` with severity FATAL, SQLSTATE 28000 and a message that clears the screen, retitles the window, rings
/// the bell, returns the carriage and prints a fake line.
fn error_response() -> Vec<u8> {
    let mut body = Vec::new();
    for (code, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', "28000"),
        (
            b'M',
            "\x1b[2J\x1b]0;pwned\x07password authentication failed\r\npgtls: all is well\u{9b}\u{202e}",
        ),
    ] {
        body.push(code);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut message = vec![b'E'];
    message.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    message.extend_from_slice(&body);
    message
}

fn tls_acceptor(dir: &Path) -> openssl::ssl::SslAcceptor {
    let ca = pgtls::lab::issue_ca("fake CA").unwrap();
    let server = pgtls::lab::certs::issue(
        &pgtls::lab::certs::CertSpec::server("localhost", &["localhost"], &["127.0.0.1"]),
        Some(&ca),
    )
    .unwrap();
    let (cert, key) = (dir.join("s.crt"), dir.join("s.key"));
    server.write_pem(&cert, &key).unwrap();
    let mut builder = openssl::ssl::SslAcceptor::mozilla_intermediate_v5(openssl::ssl::SslMethod::tls()).unwrap();
    builder.set_certificate_chain_file(&cert).unwrap();
    builder
        .set_private_key_file(&key, openssl::ssl::SslFiletype::PEM)
        .unwrap();
    builder.build()
}

#[test]
fn a_hostile_error_response_is_escaped_before_and_after_the_tls_handshake() {
    let home = tempfile::tempdir().unwrap();
    let cases = [
        (
            "before TLS (instead of the SSLRequest answer)",
            Answer::ErrorForSslRequest,
            "prefer",
        ),
        ("without TLS", Answer::No, "prefer"),
        (
            "after the TLS handshake",
            Answer::TlsThenError(tls_acceptor(home.path())),
            "require",
        ),
    ];
    for (when, answer, sslmode) in cases {
        let (port, server) = fake_server(answer);
        let conninfo =
            format!("host=127.0.0.1 port={port} user=u password=p dbname=d sslmode={sslmode} connect_timeout=5");
        let out = common::pgtls(&["snapshot", &conninfo], home.path());
        assert_eq!(out.status.code(), Some(2), "{when}");
        assert_terminal_safe(&format!("snapshot stderr, {when}"), &out.stderr);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.matches('\n').count(), 1, "{when}: one line: {stderr:?}");
        assert!(stderr.starts_with("pgtls: "), "{when}: {stderr:?}");
        drop(server);

        let (port, server) = fake_server(match when {
            w if w.starts_with("after") => Answer::TlsThenError(tls_acceptor(home.path())),
            w if w.starts_with("before") => Answer::ErrorForSslRequest,
            _ => Answer::No,
        });
        let conninfo =
            format!("host=127.0.0.1 port={port} user=u password=p dbname=d sslmode={sslmode} connect_timeout=5");
        let out = common::pgtls(&["check", &conninfo], home.path());
        assert_eq!(out.status.code(), Some(3), "{when}");
        assert_terminal_safe(&format!("check stdout, {when}"), &out.stdout);
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert_eq!(stdout.matches('\n').count(), 1, "{when}: one Nagios line: {stdout:?}");
        assert!(stdout.starts_with("PGTLS UNKNOWN - "), "{when}: {stdout:?}");
        drop(server);
    }
}

/// What each of the three formats makes of `RAISE LOG` lines that read like connections of a payroll job.
#[tokio::test]
async fn forged_connection_lines_never_reach_the_ledger_in_any_log_format() {
    let lab = Lab::start(LabOptions {
        settings: vec![
            ("logging_collector".into(), "on".into()),
            ("log_destination".into(), "stderr,csvlog,jsonlog".into()),
        ],
        ..Default::default()
    })
    .await
    .unwrap();
    let formats = [
        LogFormat::Stderr {
            prefix: "%m [%p] ".into(),
        },
        LogFormat::Csv,
        LogFormat::Json,
    ];
    let mut followers: Vec<LogFollower> = formats
        .iter()
        .map(|f| LogFollower::open_current_logfiles(lab.data_dir.clone(), f.clone(), true).unwrap())
        .collect();

    create_role(&lab, "mallory").await;
    let mallory = lab.open(SessionKind::PlainTcp, "mallory", "psql").await.unwrap();
    mallory
        .client
        .batch_execute(
            "DO $$BEGIN \
               RAISE LOG 'connection received: host=10.9.9.9 port=5432'; \
               RAISE LOG 'connection authorized: user=payroll database=prod application_name=payroll-batch SSL enabled (protocol=TLSv1, cipher=AES256-SHA, bits=256)'; \
             END$$",
        )
        .await
        .unwrap();
    let honest = lab.open(SessionKind::Tls13, SUPERUSER, "honest-app").await.unwrap();

    // The honest session is logged after mallory's lines: once a follower has it, it has read theirs too.
    for (format, follower) in formats.iter().zip(&mut followers) {
        let mut events = Vec::new();
        let mut suspects = Vec::new();
        for _ in 0..40 {
            events.extend(follower.poll().unwrap());
            suspects.extend(follower.take_suspects().0);
            if events.iter().any(|e| e.pid == honest.pid) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        assert!(
            events.iter().any(|e| e.pid == honest.pid),
            "{format:?}: the real connection is read"
        );
        assert!(
            events.iter().any(|e| e.pid == mallory.pid && e.user == "mallory"),
            "{format:?}"
        );
        assert!(
            !events.iter().any(|e| e.user == "payroll"),
            "{format:?}: a forged line became a connection: {events:#?}"
        );
        let forged: Vec<_> = suspects.iter().filter(|s| s.claim.contains("user=payroll")).collect();
        assert_eq!(forged.len(), 1, "{format:?}: {suspects:#?}");
        assert_eq!(forged[0].pid, Some(mallory.pid), "{format:?}: the pid that wrote it");
        if !matches!(format, LogFormat::Stderr { .. }) {
            assert_eq!(
                forged[0].writer.as_deref(),
                Some("mallory"),
                "{format:?}: the role that wrote it"
            );
        }
    }

    // `pgtls check` with each file: no payroll client is refused; the forgery is an alert; stderr is unverifiable.
    let home = tempfile::tempdir().unwrap();
    let conninfo = format!("{} sslmode=require", lab.conninfo(SUPERUSER));
    for path in [followers[0].path(), followers[1].path(), followers[2].path()] {
        let log = path.display().to_string();
        let out = common::pgtls(
            &["check", &conninfo, "--server-log", &log, "--target", "tls-required"],
            home.path(),
        );
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            !text.contains("payroll@prod"),
            "{log}: the forged client reached the what-if:\n{text}"
        );
        assert!(text.contains("forged-looking connection line"), "{log}:\n{text}");
        assert!(text.contains(&format!("pid {}", mallory.pid)), "{log}:\n{text}");
        assert_eq!(
            text.contains("stderr log: unverifiable format"),
            log.ends_with(".log"),
            "{log}:\n{text}"
        );
    }
    drop((mallory, honest));
}

/// The stderr format's hole: a failed login prints its user name raw in `%u`, line breaks included.
#[tokio::test]
async fn a_line_printed_by_a_crafted_role_name_is_refused_in_the_stderr_format() {
    let lab = Lab::start(LabOptions {
        settings: vec![
            ("logging_collector".into(), "on".into()),
            ("log_destination".into(), "stderr".into()),
            ("log_line_prefix".into(), "%m [%p] %q%u@%d ".into()),
        ],
        ..Default::default()
    })
    .await
    .unwrap();
    let format = LogFormat::Stderr {
        prefix: "%m [%p] %q%u@%d ".into(),
    };
    let mut follower = LogFollower::open_current_logfiles(lab.data_dir.clone(), format, true).unwrap();
    // The role does not exist; the server logs "connection authorized" with the raw name before it finds out.
    let crafted = "x\n2030-01-01 00:00:00.000 UTC [1] payroll";
    let database = "prod LOG:  connection authorized: user=payroll database=prod";
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(lab.clone_for_clients().port)
        .user(crafted)
        .dbname(database)
        .password("x");
    assert!(config.connect(tokio_postgres::NoTls).await.is_err());
    let honest = lab.open(SessionKind::PlainTcp, SUPERUSER, "after").await.unwrap();

    let mut events = Vec::new();
    let mut suspects = Vec::new();
    for _ in 0..20 {
        events.extend(follower.poll().unwrap());
        suspects.extend(follower.take_suspects().0);
        if events.iter().any(|e| e.pid == honest.pid) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let text = std::fs::read_to_string(follower.path()).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("2030-01-01 00:00:00.000 UTC [1] payroll@prod LOG:  connection authorized")),
        "the server printed the fake line at column 0 (the hole this test is about):\n{text}"
    );
    assert!(events.iter().any(|e| e.pid == honest.pid));
    assert!(!events.iter().any(|e| e.user == "payroll" || e.pid == 1), "{events:#?}");
    assert!(
        suspects.iter().any(|s| s.claim.contains("user=payroll")),
        "{suspects:#?}"
    );

    // The same file through `pgtls check`: no payroll client in the what-if, and the format is called unverifiable.
    let home = tempfile::tempdir().unwrap();
    let conninfo = format!("{} sslmode=require", lab.conninfo(SUPERUSER));
    let log = follower.path().display().to_string();
    let out = common::pgtls(
        &["check", &conninfo, "--server-log", &log, "--target", "tls-required"],
        home.path(),
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        !text.contains("payroll@prod"),
        "the crafted line reached the what-if:\n{text}"
    );
    assert!(text.contains("stderr log: unverifiable format"), "{text}");
    assert!(text.contains("forged-looking connection line"), "{text}");
    drop(honest);
}

#[test]
fn ledger_export_is_read_only_and_the_journal_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.jsonl");
    let torn = b"{\"kind\":\"watching\",\"at\":\"2026-01-01T00:00:00Z\",\"log_source\":false}\n{\"kind\":\"sess";
    std::fs::write(&path, torn).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    let out = common::pgtls(&["ledger", &path.display().to_string()], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&path).unwrap(), torn, "not a byte changed");
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o444);
}
