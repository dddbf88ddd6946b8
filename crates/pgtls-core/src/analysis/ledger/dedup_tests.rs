//! One session seen both by the polls and in the server log is one session, whichever source sees it first; the
//! same pid later (a new backend) is another.

use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::fixtures;
use crate::logsource::{ConnectionEvent, TlsSeen};

const PID: i32 = 4200;

/// The fixture's sessions without `PID`, at `at`.
fn base(at: DateTime<Utc>) -> Snapshot {
    let mut snap = fixtures::snapshot();
    snap.taken_at = at;
    snap
}

fn payroll(start: DateTime<Utc>) -> Session {
    let mut s = fixtures::session(PID, ConnClass::Tls12);
    s.user = Some("payroll".into());
    s.database = Some("hr".into());
    s.application_name = Some("payroll-batch".into());
    s.client_addr = Some("10.0.9.9".into());
    s.backend_start = Some(start);
    s
}

fn with_payroll(at: DateTime<Utc>, start: DateTime<Utc>) -> Snapshot {
    let mut snap = base(at);
    snap.sessions.push(payroll(start));
    snap
}

/// The "connection authorized" line of the same backend: written a moment after its start.
fn logged(at: DateTime<Utc>) -> ConnectionEvent {
    ConnectionEvent {
        client_port: None,
        at,
        pid: PID,
        user: "payroll".into(),
        database: "hr".into(),
        application_name: Some("payroll-batch".into()),
        client_addr: Some("10.0.9.9".into()),
        local_socket: false,
        tls: Some(TlsSeen {
            version: "TLSv1.2".into(),
            cipher: "ECDHE-RSA-AES256-GCM-SHA384".into(),
            bits: Some(256),
        }),
        gss_encrypted: false,
        replication: false,
        hba_line: None,
    }
}

fn payroll_record(ledger: &Ledger) -> &ClientRecord {
    ledger
        .records()
        .find(|r| r.key.application == "payroll-batch")
        .expect("payroll has a record")
}

fn session_entries(entries: &[Entry]) -> usize {
    entries.iter().filter(|e| matches!(e, Entry::Session { .. })).count()
}

#[test]
fn polled_first_then_logged_counts_once() {
    let t0 = fixtures::now();
    let start = t0 - Duration::seconds(1);
    let mut ledger = Ledger::new(KeyFields::default());
    let first = ledger.observe_snapshot(&with_payroll(t0, start), true);
    // The fixture's 11 clients and payroll.
    assert_eq!(session_entries(&first), 12);
    // The poll counted it already: the log only adds itself to the client's sources, journalled for a restart.
    let seen = ledger.observe_log(&logged(start + Duration::milliseconds(300)));
    assert!(
        matches!(
            seen,
            Some(Entry::SeenBy {
                source: Source::Log,
                ..
            })
        ),
        "{seen:?}"
    );
    let later = ledger.observe_snapshot(&with_payroll(t0 + Duration::seconds(2), start), true);
    assert_eq!(session_entries(&later), 0);
    let r = payroll_record(&ledger);
    assert_eq!((r.sessions, r.count(ConnClass::Tls12), r.connected_now), (1, 1, 1));
    // Seen by both, in either order, and said so.
    assert_eq!(r.sources_label(), "poll+log");
    assert_eq!(ledger.total_sessions(), 12);
}

#[test]
fn logged_first_then_polled_counts_once_and_names_both_sources() {
    let t0 = fixtures::now();
    let mut ledger = Ledger::new(KeyFields::default());
    ledger.observe_snapshot(&base(t0), true);
    let start = t0 + Duration::seconds(1);
    let entry = ledger
        .observe_log(&logged(start + Duration::milliseconds(300)))
        .expect("new to the ledger");
    assert!(
        matches!(
            entry,
            Entry::Session {
                source: Source::Log,
                ..
            }
        ),
        "{entry:?}"
    );
    assert_eq!(payroll_record(&ledger).sources_label(), "log");

    let polled = ledger.observe_snapshot(&with_payroll(t0 + Duration::seconds(2), start), true);
    assert_eq!(session_entries(&polled), 0, "{polled:?}");
    let r = payroll_record(&ledger);
    assert_eq!((r.sessions, r.connected_now), (1, 1));
    assert_eq!(r.sources_label(), "poll+log");
    assert_eq!(ledger.total_sessions(), 12);
}

/// Pids are reused: a log line far from the polled backend's start is another connection of the same client.
#[test]
fn the_same_pid_at_another_start_is_another_session() {
    let t0 = fixtures::now();
    let start = t0 - Duration::seconds(1);

    // Logged 30 s before the polled backend began: an earlier backend with that pid.
    let mut ledger = Ledger::new(KeyFields::default());
    ledger.observe_snapshot(&base(t0 - Duration::seconds(40)), true);
    assert!(ledger.observe_log(&logged(start - Duration::seconds(30))).is_some());
    let polled = ledger.observe_snapshot(&with_payroll(t0, start), true);
    assert_eq!(session_entries(&polled), 1, "{polled:?}");
    assert_eq!(payroll_record(&ledger).sessions, 2);

    // Polled, then a line for the same pid 30 s after that backend began: it ended and a new one took the pid.
    let mut ledger = Ledger::new(KeyFields::default());
    ledger.observe_snapshot(&with_payroll(t0, start), true);
    assert!(ledger.observe_log(&logged(start + Duration::seconds(30))).is_some());
    assert_eq!(payroll_record(&ledger).sessions, 2);
}

/// The window is 10 s either way: a line 9 s after the backend's start is the same session, 11 s is not.
#[test]
fn the_same_session_window_is_ten_seconds() {
    let t0 = fixtures::now();
    let start = t0 - Duration::seconds(1);
    for (after, sessions) in [(9, 1), (11, 2)] {
        let mut ledger = Ledger::new(KeyFields::default());
        ledger.observe_snapshot(&with_payroll(t0, start), true);
        ledger.observe_log(&logged(start + Duration::seconds(after)));
        assert_eq!(payroll_record(&ledger).sessions, sessions, "{after} s after the start");
    }
}
