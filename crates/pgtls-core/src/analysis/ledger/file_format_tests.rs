//! The ledger file's lines did not change when the records' maps and sets became sorted vectors (issue 28):
//! `testdata/ledger-before-compact.jsonl` was written by the code before that change from [`every_field`] (the
//! lines of a compacted file: its header, then [`Ledger::compacted`]), and the code now reads it back and writes it
//! byte for byte, and writes it from the same inputs.

use chrono::Duration;

use super::*;
use crate::fixtures;
use crate::logsource::{ConnectionEvent, HbaRefusal, Refusal, RefusedAttempt, TlsSeen};

const WRITTEN_BEFORE: &str = include_str!("testdata/ledger-before-compact.jsonl");

/// The lines of a compacted file, as the journal writes them.
fn file_of(ledger: &Ledger) -> String {
    std::iter::once(Entry::Header { format: 2 })
        .chain(ledger.compacted())
        .map(|e| serde_json::to_string(&e).unwrap() + "\n")
        .collect()
}

fn ledger() -> Ledger {
    let mut ledger = Ledger::new(KeyFields::default());
    // Small enough that clients beyond it fill the others record.
    ledger.caps.identities = 24;
    ledger
}

fn event(at: DateTime<Utc>, pid: i32, app: &str, address: &str, tls: Option<(&str, &str)>) -> ConnectionEvent {
    ConnectionEvent {
        client_port: None,
        at,
        pid,
        user: "batch".into(),
        database: "shop".into(),
        application_name: Some(app.into()),
        client_addr: Some(address.into()),
        local_socket: false,
        tls: tls.map(|(version, cipher)| TlsSeen {
            version: version.into(),
            cipher: cipher.into(),
            bits: Some(256),
        }),
        gss_encrypted: false,
        replication: false,
        hba_line: None,
    }
}

fn refused(at: DateTime<Utc>, address: &str, refusal: Refusal) -> RefusedAttempt {
    RefusedAttempt {
        at,
        pid: 9000,
        client_addr: Some(address.into()),
        client_port: Some(50_000),
        local_socket: false,
        refusal,
        hint: Some("between TLSv1.3 and TLSv1.3".into()),
        detail: None,
    }
}

fn handshake(reason: &str) -> Refusal {
    Refusal::Handshake { reason: reason.into() }
}

/// A ledger with every field of a record in use: polls over hours (TLS 1.3, 1.2, plain, local, a pooler's
/// clients), log lines with pg_hba.conf lines, a walsender, lines older than the polls, many addresses and made-up
/// ciphers for one client, more identities than the cap, and refused attempts (two reasons from one address, a
/// scan from another, pg_hba.conf refusals naming two users from a third).
fn every_field() -> Ledger {
    let mut ledger = ledger();
    let mut snap = fixtures::snapshot();
    for hour in 0..3 {
        for minute in [0, 20, 40] {
            let mut poll = snap.clone();
            poll.taken_at = snap.taken_at + Duration::hours(hour) + Duration::minutes(minute);
            ledger.observe_snapshot(&poll, true);
        }
    }
    snap.taken_at += Duration::hours(3);
    snap.settings.insert(
        "ssl_min_protocol_version".into(),
        crate::model::Setting::Set("TLSv1.3".into()),
    );
    ledger.observe_snapshot(&snap, true);
    let mut pooled = fixtures::snapshot_pooled();
    pooled.taken_at = snap.taken_at + Duration::minutes(5);
    ledger.observe_snapshot(&pooled, true);

    let at = pooled.taken_at;
    let mut hba = event(
        at,
        7001,
        "nightly",
        "10.9.0.1",
        Some(("TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384")),
    );
    hba.hba_line = Some(12);
    ledger.observe_log(&hba);
    // Later lines are too far from the latest poll to wait for one: one pending log session only, as the order
    // of several is not fixed.
    let at = at + Duration::minutes(5);
    hba.at = at;
    hba.pid = 7002;
    hba.hba_line = Some(3);
    hba.tls = None;
    ledger.observe_log(&hba);
    let mut standby = event(
        at,
        7003,
        "walreceiver",
        "10.9.0.2",
        Some(("TLSv1.3", "TLS_AES_256_GCM_SHA384")),
    );
    standby.replication = true;
    standby.database = String::new();
    ledger.observe_log(&standby);
    // Older than the polls, read after them: out of order in the recent sessions.
    for (i, days) in [3, 1, 2].into_iter().enumerate() {
        let old = event(
            at - Duration::days(days),
            8000 + i as i32,
            "nightly",
            "10.9.0.1",
            Some(("TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384")),
        );
        ledger.observe_log(&old);
    }
    for i in 0..40 {
        let mut e = fixtures::log_session(
            at + Duration::seconds(i),
            "pool",
            &format!("10.8.0.{i}"),
            if i % 3 == 0 { "TLSv1.2" } else { "TLSv1.3" },
        );
        if let Entry::Session { key, cipher, .. } = &mut e {
            key.address.clear();
            *cipher = Some(format!("FORGED-{i}"));
        }
        ledger.apply(&e);
    }
    for i in 0..30 {
        let version = ["TLSv1.3", "TLSv1.2", "TLSv1"][i % 3];
        ledger.apply(&fixtures::log_session(
            at + Duration::minutes(i as i64),
            &format!("app-{i}"),
            &format!("10.7.0.{i}"),
            version,
        ));
    }
    let at = at + Duration::hours(1);
    ledger.observe_refused(&refused(at, "10.6.0.1", handshake("unsupported protocol")));
    ledger.observe_refused(&refused(
        at + Duration::hours(2),
        "10.6.0.1",
        handshake("no shared cipher"),
    ));
    for ms in [0, 150, 300] {
        ledger.observe_refused(&refused(
            at + Duration::milliseconds(ms),
            "10.6.0.2",
            handshake("unsupported protocol"),
        ));
    }
    for user in ["bob", "alice"] {
        let hba = Refusal::Hba(HbaRefusal {
            rejected: false,
            replication: false,
            host: "10.6.0.3".into(),
            user: user.into(),
            database: Some("shop".into()),
            encryption: "no encryption".into(),
        });
        ledger.observe_refused(&refused(at, "10.6.0.3", hba));
    }
    ledger
}

/// `text` with every record's `connected_now` at 0: a file read back knows of no connection until the next poll.
fn none_connected(text: &str) -> String {
    const FIELD: &str = "\"connected_now\":";
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(FIELD) {
        let value = &rest[i + FIELD.len()..];
        out.push_str(&rest[..i + FIELD.len()]);
        out.push('0');
        rest = value.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out + rest
}

#[test]
fn a_file_written_before_reads_back_byte_for_byte() {
    let mut read = ledger();
    for line in WRITTEN_BEFORE.lines() {
        read.apply(&serde_json::from_str(line).unwrap());
    }
    assert!(read.others().is_some() && read.records().any(|r| r.hba_lines.len() == 2));
    assert!(
        read.records()
            .any(|r| r.addresses_not_kept > 0 && r.recent.len() == read.caps.recent)
    );
    let refused = read.refused();
    assert!(refused.iter().any(|v| v.record.reasons.len() == 2));
    assert!(refused.iter().any(|v| !v.record.scan_reasons.is_empty()));
    assert!(refused.iter().any(|v| v.record.named.len() == 2));
    assert!(WRITTEN_BEFORE.contains("\"connected_now\":3"));
    assert_eq!(file_of(&read), none_connected(WRITTEN_BEFORE));
}

#[test]
fn the_same_inputs_write_the_same_file() {
    let written = file_of(&every_field());
    if std::env::var_os("PGTLS_PRINT_LEDGER_FILE").is_some() {
        print!("{written}");
    }
    assert_eq!(written, WRITTEN_BEFORE);
}
