//! Property tests of the readers of outside text in the root package: the three server-log line parsers (stderr,
//! csvlog, jsonlog), PgBouncer's log lines and the ledger file. Never a panic on any input; round trips where a
//! printer exists (here the printer is PostgreSQL's own line format, written by the test). Default 256 cases per
//! property; `PROPTEST_CASES=100000 cargo test --test integration log_parsers_prop::` for a long run. Failing seeds are kept in
//! proptest-regressions/ and replayed first.

use chrono::{DateTime, TimeZone, Utc};
use pgtls::analysis::ledger::{ClientKey, Entry, Journal, KeyFields, Ledger, Source};
use pgtls::logsource::{
    Authorized, ConnectionMessage, HbaRefusal, StderrPrefix, TlsSeen, parse_csv_record, parse_json_line, parse_message,
    parse_stderr_line,
};
use pgtls::model::ConnClass;
use proptest::prelude::*;

/// Pieces log lines are made of, so arbitrary input reaches past the parsers' cheap rejections.
fn log_like() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        Just("2026-11-27 17:42:50.084 UTC".to_string()),
        Just(" [22543] ".to_string()),
        Just("LOG:  ".to_string()),
        Just(",LOG,00000,\"".to_string()),
        Just("\"LOG\"".to_string()),
        Just("connection received: host=".to_string()),
        Just("connection authorized: user=".to_string()),
        Just("replication connection authorized: user=".to_string()),
        Just(" database=".to_string()),
        Just(" application_name=".to_string()),
        Just(" SSL enabled (protocol=TLSv1.3, cipher=TLS_AES_256_GCM_SHA384, bits=256)".to_string()),
        Just(" GSS (authenticated=yes, encrypted=yes, principal=a@B)".to_string()),
        Just(" port=".to_string()),
        Just("could not accept SSL connection: ".to_string()),
        Just("no pg_hba.conf entry for host \"".to_string()),
        Just("pg_hba.conf rejects replication connection for host \"".to_string()),
        Just("\", user \"".to_string()),
        Just("\", database \"".to_string()),
        Just("\", no encryption".to_string()),
        Just("FATAL:  ".to_string()),
        Just(",FATAL,28000,\"".to_string()),
        Just("HINT:  ".to_string()),
        Just("connection authenticated: identity=\"".to_string()),
        Just("\" method=cert (/etc/pg_hba.conf:".to_string()),
        Just("parameter \"ssl_min_protocol_version\" changed to \"".to_string()),
        Just("{\"timestamp\":".to_string()),
        Just("\"message\":".to_string()),
        Just("\"error_severity\":".to_string()),
        Just(",".to_string()),
        Just("\"".to_string()),
        Just("\"\"".to_string()),
        Just("\n".to_string()),
        Just("\t".to_string()),
        Just("(".to_string()),
        Just(")".to_string()),
        Just("=".to_string()),
        Just("%".to_string()),
        "[a-z0-9:.@ ]{0,8}",
        any::<char>().prop_map(|c| c.to_string()),
    ];
    prop::collection::vec(atom, 0..32).prop_map(|parts| parts.concat())
}

/// log_line_prefix escapes and padding, in any order and with any text between them.
fn prefix_like() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        "%-?[0-9]{0,3}[mtnpudahrlcsvxeiqbQ%]",
        Just("%".to_string()),
        Just(" ".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        "[a-z|@:]{0,3}",
        any::<char>().prop_map(|c| c.to_string()),
    ];
    prop::collection::vec(atom, 0..10).prop_map(|parts| parts.concat())
}

/// A name with none of the separators the server's message puts between fields (the message itself cannot tell
/// those apart, so no parser can).
fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_.@ =()'\",-]{1,16}".prop_filter("no field separator", |n| {
        !n.contains(" database=") && !n.contains(" application_name=")
    })
}

/// PostgreSQL writes application_name as printable ASCII (it replaces anything else with '?').
fn application() -> impl Strategy<Value = Option<String>> {
    proptest::option::of("[ -~]{1,24}")
}

fn tls() -> impl Strategy<Value = Option<TlsSeen>> {
    proptest::option::of(
        (
            prop_oneof![Just("TLSv1.2"), Just("TLSv1.3"), Just("TLSv1")],
            "[A-Z0-9_-]{1,30}",
            proptest::option::of(1..=512i32),
        )
            .prop_map(|(version, cipher, bits)| TlsSeen {
                version: version.to_string(),
                cipher,
                bits,
            }),
    )
}

fn authorized() -> impl Strategy<Value = Authorized> {
    (name(), name(), application(), tls()).prop_map(|(user, database, application_name, tls)| Authorized {
        replication: false,
        user,
        database: Some(database),
        application_name,
        tls,
        gss_encrypted: false,
    })
}

/// The message as PostgreSQL's `connection authorized` line prints it.
fn print(a: &Authorized) -> String {
    let mut m = format!("connection authorized: user={}", a.user);
    if let Some(db) = &a.database {
        m.push_str(&format!(" database={db}"));
    }
    if let Some(app) = &a.application_name {
        m.push_str(&format!(" application_name={app}"));
    }
    if let Some(tls) = &a.tls {
        let bits = tls.bits.map_or(String::new(), |b| format!(", bits={b}"));
        m.push_str(&format!(
            " SSL enabled (protocol={}, cipher={}{bits})",
            tls.version, tls.cipher
        ));
    }
    m
}

/// A pg_hba.conf refusal; names as the server prints them (raw, inside quotes), without the separators the
/// message puts between them.
fn hba_refusal() -> impl Strategy<Value = HbaRefusal> {
    // A name of spaces only prints as nothing in the prefix's %u/%d, which then cannot agree with the message.
    let quoted = "[a-zA-Z0-9_.@=()',-][a-zA-Z0-9_.@ =()',-]{0,15}";
    (
        any::<bool>(),
        any::<bool>(),
        "[0-9a-f.:]{1,20}",
        quoted,
        quoted,
        prop_oneof![
            Just("no encryption"),
            Just("SSL encryption"),
            Just("GSS encryption"),
            Just("SSL off"),
            Just("SSL on")
        ],
    )
        .prop_map(|(rejected, replication, host, user, database, encryption)| HbaRefusal {
            rejected,
            replication,
            host,
            user,
            database: (!replication).then_some(database),
            encryption: encryption.to_string(),
        })
}

fn print_hba(h: &HbaRefusal) -> String {
    let opening = match (h.rejected, h.replication) {
        (false, false) => "no pg_hba.conf entry for host",
        (true, false) => "pg_hba.conf rejects connection for host",
        (false, true) => "no pg_hba.conf entry for replication connection from host",
        (true, true) => "pg_hba.conf rejects replication connection for host",
    };
    match &h.database {
        Some(db) => format!(
            "{opening} \"{}\", user \"{}\", database \"{db}\", {}",
            h.host, h.user, h.encryption
        ),
        None => format!("{opening} \"{}\", user \"{}\", {}", h.host, h.user, h.encryption),
    }
}

fn at() -> impl Strategy<Value = DateTime<Utc>> {
    // 2001..2100, millisecond precision, as log_line_prefix %m and csvlog/jsonlog timestamps carry.
    (978_307_200_000i64..4_102_444_800_000).prop_map(|ms| Utc.timestamp_millis_opt(ms).unwrap())
}

fn pg_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string()
}

/// csvlog quotes text fields always (doubling quotes inside) and leaves numbers and times bare.
fn csv_quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// Pieces of PgBouncer's log lines (`--pgbouncer-log`).
fn pgbouncer_like() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        Just("2026-12-03 13:29:44.172 UTC [29888] ".to_string()),
        Just("WARNING ".to_string()),
        Just("LOG ".to_string()),
        Just("C-0x5649663871c0: ".to_string()),
        Just("S-0x56496646a340: ".to_string()),
        Just("(nodb)/(nouser)@".to_string()),
        Just("127.0.0.1:38770".to_string()),
        Just("[::1]:5".to_string()),
        Just(" pooler error: SSL required".to_string()),
        Just(" closing because: SSL required (age=0s)".to_string()),
        Just(" closing because: server conn crashed? (age=0s)".to_string()),
        Just("TLS handshake error: handshake failed: error:0A000102:SSL routines::unsupported protocol".to_string()),
        Just("@".to_string()),
        Just(":".to_string()),
        "[a-z0-9:.@/ ]{0,8}",
        any::<char>().prop_map(|c| c.to_string()),
    ];
    prop::collection::vec(atom, 0..16).prop_map(|parts| parts.concat())
}

proptest! {
    /// Never a panic, and never a client address that is not in the line itself.
    #[test]
    fn pgbouncer_lines_never_invent_a_client(line in pgbouncer_like()) {
        if let Some(parsed) = pgtls::logsource::pgbouncer::parse_line(&line) {
            if let Some((_, ip, port)) = &parsed.client {
                let v4 = format!("@{ip}:{port}");
                let v6 = format!("@[{ip}]:{port}");
                prop_assert!(line.contains(&v4) || line.contains(&v6), "{line:?} -> {parsed:?}");
            }
            prop_assert!(!parsed.reason.chars().any(|c| c == '\n'));
        }
    }

    #[test]
    fn pgbouncer_arbitrary_text_never_panics(line in any::<String>()) {
        let _ = pgtls::logsource::pgbouncer::parse_line(&line);
    }

    #[test]
    fn stderr_lines_never_panic(line in log_like(), prefix in prefix_like()) {
        let _ = parse_stderr_line(&line, &StderrPrefix::new(&prefix));
        let _ = parse_stderr_line(&line, &StderrPrefix::new("%m [%p] "));
        let _ = parse_stderr_line(&format!("{prefix}{line}"), &StderrPrefix::new(&prefix));
    }

    #[test]
    fn stderr_arbitrary_text_never_panics(line in any::<String>(), prefix in any::<String>()) {
        let _ = parse_stderr_line(&line, &StderrPrefix::new(&prefix));
    }

    #[test]
    fn csvlog_records_never_panic(record in log_like()) {
        let _ = parse_csv_record(&record);
        let _ = parse_csv_record(&format!("2026-11-27 17:42:50.084 UTC,\"u\",\"d\",1,\"h:1\",s,2,\"authentication\",,,0,LOG,00000,\"{record}"));
    }

    #[test]
    fn jsonlog_lines_never_panic(line in log_like()) {
        let _ = parse_json_line(&line);
        let _ = parse_json_line(&format!("{{\"timestamp\":\"2026-11-27 17:42:50.084 UTC\",\"error_severity\":\"LOG\",\"message\":\"connection {line}"));
    }

    #[test]
    fn messages_read_back_as_printed(a in authorized()) {
        let parsed = parse_message(&print(&a));
        prop_assert_eq!(parsed, Some(ConnectionMessage::Authorized(a.clone())));
    }

    #[test]
    fn stderr_lines_read_back_as_printed(a in authorized(), at in at(), pid in 1..i32::MAX) {
        let prefix = StderrPrefix::new("%m [%p] %q%u@%d ");
        let line = format!("{} [{pid}] {}@{} LOG:  {}\n", pg_time(at), a.user, a.database.as_deref().unwrap_or(""), print(&a));
        let parsed = parse_stderr_line(&line, &prefix);
        let parsed = parsed.ok_or_else(|| TestCaseError::fail(format!("not read: {line:?}")))?;
        prop_assert_eq!(parsed.at, at);
        prop_assert_eq!(parsed.pid, Some(pid));
        prop_assert_eq!(parsed.message, ConnectionMessage::Authorized(a.clone()));
    }

    #[test]
    fn csvlog_records_read_back_as_printed(a in authorized(), at in at(), pid in 1..i32::MAX) {
        let db = a.database.clone().unwrap_or_default();
        let record = format!(
            "{time},{user},{db},{pid},\"127.0.0.1:5000\",6b09c11a.580f,2,\"authentication\",{time},3/1,0,LOG,00000,{message},,,,,,,,,\"\",\"client backend\",,0\n",
            time = pg_time(at),
            user = csv_quoted(&a.user),
            db = csv_quoted(&db),
            message = csv_quoted(&print(&a)),
        );
        let parsed = parse_csv_record(&record).ok_or_else(|| TestCaseError::fail(format!("not read: {record:?}")))?;
        prop_assert_eq!(parsed.at, at);
        prop_assert_eq!(parsed.pid, Some(pid));
        prop_assert_eq!(parsed.database.as_deref(), Some(db.as_str()));
        prop_assert_eq!(parsed.writer.as_deref(), Some(a.user.as_str()));
        prop_assert_eq!(parsed.doubt, None);
        prop_assert_eq!(parsed.message, ConnectionMessage::Authorized(a.clone()));
    }

    #[test]
    fn jsonlog_lines_read_back_as_printed(a in authorized(), at in at(), pid in 1..i32::MAX) {
        let line = serde_json::json!({
            "timestamp": pg_time(at), "user": a.user, "dbname": a.database, "pid": pid,
            "remote_host": "127.0.0.1", "remote_port": 5000, "ps": "authentication", "error_severity": "LOG",
            "message": print(&a), "backend_type": "client backend",
        })
        .to_string();
        let parsed = parse_json_line(&line).ok_or_else(|| TestCaseError::fail(format!("not read: {line}")))?;
        prop_assert_eq!(parsed.at, at);
        prop_assert_eq!(parsed.pid, Some(pid));
        prop_assert_eq!(parsed.writer.as_deref(), Some(a.user.as_str()));
        prop_assert_eq!(parsed.doubt, None);
        prop_assert_eq!(parsed.message, ConnectionMessage::Authorized(a.clone()));
    }

    /// CloudNativePG's envelope around the same record (csvlog's columns, every value a string) reads as the record;
    /// under another logger, or with a statement holding the whole line, it is nothing.
    #[test]
    fn cloudnativepg_lines_read_back_as_printed(a in authorized(), at in at(), pid in 1..i32::MAX, noise in log_like()) {
        let record = serde_json::json!({
            "log_time": pg_time(at), "user_name": a.user, "database_name": a.database.clone().unwrap_or_default(),
            "process_id": pid.to_string(), "connection_from": "10.0.0.7:5000", "command_tag": "authentication",
            "error_severity": "LOG", "sql_state_code": "00000", "message": print(&a), "backend_type": "client backend",
        });
        let envelope = |logger: &str, record: serde_json::Value| serde_json::json!({
            "level": "info", "ts": "2026-11-27T17:42:50.084913Z", "logger": logger, "msg": "record",
            "logging_pod": "cluster-example-1", "record": record,
        })
        .to_string();
        let line = envelope("postgres", record.clone());
        let parsed = parse_json_line(&line).ok_or_else(|| TestCaseError::fail(format!("not read: {line}")))?;
        prop_assert_eq!(parsed.at, at);
        prop_assert_eq!(parsed.pid, Some(pid));
        prop_assert_eq!(parsed.remote_host.as_deref(), Some("10.0.0.7"));
        prop_assert_eq!(parsed.writer.as_deref(), Some(a.user.as_str()));
        prop_assert_eq!(parsed.doubt, None);
        prop_assert_eq!(parsed.message, ConnectionMessage::Authorized(a.clone()));
        prop_assert!(parse_json_line(&envelope("pgaudit", record.clone())).is_none());
        let smuggled = serde_json::json!({
            "log_time": pg_time(at), "user_name": a.user, "process_id": "1", "command_tag": "SELECT",
            "error_severity": "ERROR", "message": format!("syntax error {noise}"), "query": line,
        });
        prop_assert!(parse_json_line(&envelope("postgres", smuggled)).is_none());
        let _ = parse_json_line(&format!("{{\"logger\":\"postgres\",\"msg\":\"record\",\"record\":{{\"error_severity\":\"LOG\",\"message\":\"connection {noise}"));
    }

    #[test]
    fn refusals_read_back_as_printed_in_every_format(h in hba_refusal(), reason in "[ -~]{1,40}", at in at(), pid in 1..i32::MAX) {
        let refused = ConnectionMessage::HbaRefused(h.clone());
        prop_assert_eq!(parse_message(&print_hba(&h)), Some(refused.clone()));
        let failed = ConnectionMessage::HandshakeFailed { reason: reason.clone() };
        let failed_text = format!("could not accept SSL connection: {reason}");
        prop_assert_eq!(parse_message(&failed_text), Some(failed.clone()));

        let prefix = StderrPrefix::new("%m [%p] %q%u@%d ");
        let db = h.database.clone().unwrap_or_else(|| "[unknown]".into());
        let line = format!("{} [{pid}] {}@{db} FATAL:  {}\n", pg_time(at), h.user, print_hba(&h));
        let parsed = parse_stderr_line(&line, &prefix).ok_or_else(|| TestCaseError::fail(format!("not read: {line:?}")))?;
        prop_assert_eq!((parsed.at, parsed.pid, parsed.doubt), (at, Some(pid), None));
        prop_assert_eq!(parsed.message, refused.clone());
        let line = format!("{} [{pid}] [unknown]@[unknown] LOG:  {failed_text}\n", pg_time(at));
        let parsed = parse_stderr_line(&line, &prefix).ok_or_else(|| TestCaseError::fail(format!("not read: {line:?}")))?;
        prop_assert_eq!(parsed.message, failed.clone());
        // The same text under the other severity is not it.
        let wrong = format!("{} [{pid}] [unknown]@[unknown] FATAL:  {failed_text}\n", pg_time(at));
        prop_assert!(parse_stderr_line(&wrong, &prefix).is_none());

        let record = format!(
            "{time},{user},{db},{pid},\"10.0.0.1:5000\",s,2,\"authentication\",{time},3/1,0,FATAL,28000,{message},,,,,,,,,\"\",\"{kind}\",,0\n",
            time = pg_time(at),
            user = csv_quoted(&h.user),
            db = csv_quoted(h.database.as_deref().unwrap_or("")),
            message = csv_quoted(&print_hba(&h)),
            kind = if h.replication { "walsender" } else { "client backend" },
        );
        let parsed = parse_csv_record(&record).ok_or_else(|| TestCaseError::fail(format!("not read: {record:?}")))?;
        prop_assert_eq!((parsed.remote_port, parsed.doubt), (Some(5000), None));
        prop_assert_eq!(parsed.message, refused.clone());
        let record = format!(
            "{time},,,{pid},\"10.0.0.1:5000\",s,2,\"\",{time},,0,LOG,08P01,{message},,\"hint\",,,,,,,\"\",\"not initialized\",,0\n",
            time = pg_time(at),
            message = csv_quoted(&failed_text),
        );
        let parsed = parse_csv_record(&record).ok_or_else(|| TestCaseError::fail(format!("not read: {record:?}")))?;
        prop_assert_eq!((parsed.hint.as_deref(), parsed.doubt), (Some("hint"), None));
        prop_assert_eq!(parsed.message, failed.clone());

        let line = serde_json::json!({
            "timestamp": pg_time(at), "user": h.user, "dbname": h.database.clone().unwrap_or_default(), "pid": pid,
            "remote_host": "10.0.0.1", "remote_port": 5000, "ps": "authentication", "error_severity": "FATAL",
            "message": print_hba(&h), "backend_type": if h.replication { "walsender" } else { "client backend" },
        })
        .to_string();
        let parsed = parse_json_line(&line).ok_or_else(|| TestCaseError::fail(format!("not read: {line}")))?;
        prop_assert_eq!(parsed.doubt, None);
        prop_assert_eq!(parsed.message, refused);
        let line = serde_json::json!({
            "timestamp": pg_time(at), "pid": pid, "remote_host": "10.0.0.1", "remote_port": 5000, "ps": "",
            "error_severity": "LOG", "message": failed_text, "hint": "h", "backend_type": "not initialized",
        })
        .to_string();
        let parsed = parse_json_line(&line).ok_or_else(|| TestCaseError::fail(format!("not read: {line}")))?;
        prop_assert_eq!((parsed.hint.as_deref(), parsed.doubt), (Some("h"), None));
        prop_assert_eq!(parsed.message, failed);
    }

    #[test]
    fn ledger_files_of_any_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.jsonl");
        std::fs::write(&path, &bytes).unwrap();
        let mut ledger = Ledger::new(KeyFields::default());
        let _ = Journal::replay_read_only(&path, &mut ledger);
    }

    /// Entries as pgtls writes them (serde_json, one a line) read back, each, between lines of garbage that are
    /// skipped and named.
    #[test]
    fn ledger_entries_read_back_between_garbage(
        entries in prop::collection::vec((name(), name(), application(), at(), any::<bool>()), 1..12),
        garbage in prop::collection::vec("[^\n]{1,40}".prop_filter("not JSON, not blank (blank lines are skipped silently)", |g| {
            serde_json::from_str::<Entry>(g).is_err() && !g.bytes().all(|b| b.is_ascii_whitespace())
        }), 0..4),
    ) {
        let mut text = String::new();
        for (user, database, app, at, log) in &entries {
            let entry = Entry::Session {
                at: *at,
                key: ClientKey { user: user.clone(), database: database.clone(), application: app.clone().unwrap_or_default(), address: "10.0.0.1".into(), pooler: None },
                class: ConnClass::Tls12,
                tls_version: Some("TLSv1.2".into()),
                cipher: None,
                source: if *log { Source::Log } else { Source::Poll },
                address: Some("10.0.0.1".into()),
                replication: false,
                hba_line: None,
                pid: None,
            };
            text.push_str(&serde_json::to_string(&entry).unwrap());
            text.push('\n');
        }
        for g in &garbage {
            text.push_str(g);
            text.push('\n');
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.jsonl");
        std::fs::write(&path, &text).unwrap();
        let mut ledger = Ledger::new(KeyFields::default());
        let report = Journal::replay_read_only(&path, &mut ledger).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(report.entries, entries.len());
        prop_assert_eq!(report.skipped.len(), garbage.len());
        prop_assert_eq!(ledger.total_sessions(), entries.len() as u64);
    }
}
