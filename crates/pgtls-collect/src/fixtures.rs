//! The fixtures that need the layers above the model (the poller's history, a probe report): the pure ones
//! (snapshots, sessions, settings) are `pgtls_core::fixtures` and reached through this module as before.

use chrono::Duration;

use crate::model::ConnClass;

pub use pgtls_core::fixtures::*;

/// The ledger and what-if after one poll of [`snapshot`], with a pg_hba.conf that still has a `host` line.
pub fn history() -> crate::collect::poller::History {
    use crate::analysis::ledger::{KeyFields, Ledger};
    use crate::analysis::whatif::{Change, evaluate};
    use crate::model::HbaRule;
    let mut ledger = Ledger::new(
        KeyFields::from_names(&["user".into(), "database".into(), "application".into()]).unwrap_or_default(),
    );
    ledger.observe_snapshot(&snapshot(), true);
    let rule = |line, kind: &str| HbaRule {
        line_number: line,
        kind: kind.to_string(),
        databases: vec!["all".into()],
        users: vec!["all".into()],
        address: Some("10.0.0.0/8".into()),
        auth_method: Some("scram-sha-256".into()),
    };
    let hba = Ok(vec![rule(90, "hostssl"), rule(91, "host")]);
    crate::collect::poller::History {
        clients: ledger.records().cloned().collect(),
        client_classes: crate::collect::history::client_classes(&ledger),
        detail: crate::collect::history::Detail::Full,
        whatif: [Change::MinTls13, Change::TlsRequired]
            .into_iter()
            .map(|t| evaluate(&ledger, t, &hba, chrono::Duration::hours(24)))
            .collect(),
        sources: vec![
            crate::analysis::sources::SourceNote::on(crate::sources::POLL_LIMITATION),
            crate::analysis::sources::SourceNote::on(
                "log source: file /var/log/postgresql/postgresql-15-main.log (stderr, prefix \"%m [%p] \"), from its start",
            ),
        ],
        ledger_file: Some("/var/lib/pgtls/ledger.jsonl".to_string()),
        refused: ledger.refused(),
        logged_settings: Vec::new(),
        after: Vec::new(),
        pooler_after: Vec::new(),
        trend: ledger.week(),
        status: crate::analysis::sources::HistoryStatus::default(),
        ledger_write_errors: 0,
    }
}

/// The hba rules of [`history`]: a `hostssl` line and a `host` line that still admits plain text.
fn hba_with_host() -> crate::model::HbaRules {
    let rule = |line, kind: &str| crate::model::HbaRule {
        line_number: line,
        kind: kind.to_string(),
        databases: vec!["all".into()],
        users: vec!["all".into()],
        address: Some("10.0.0.0/8".into()),
        auth_method: Some("scram-sha-256".into()),
    };
    Ok(vec![rule(90, "hostssl"), rule(91, "host")])
}

/// The history an hour after ssl_min_protocol_version went to TLSv1.3: billing-batch's address refused three times,
/// legacy-reports back in plain text through pg_hba.conf line 91, TLS 1.2 sessions (and a standby) lingering.
pub fn history_after() -> crate::collect::poller::History {
    let (ledger, snap) = ledger_after();
    let hba = hba_with_host();
    let mut history = history();
    history.clients = ledger.records().cloned().collect();
    history.client_classes = crate::collect::history::client_classes(&ledger);
    history.refused = ledger.refused();
    history.logged_settings = ledger.logged_settings().cloned().collect();
    history.after = crate::collect::history::after_of(&ledger, &snap, &hba, None);
    history.trend = ledger.week();
    history
}

/// The ledger behind [`history_after`] and the poll it ends with; pg_hba.conf as [`hba_with_host`] gives it.
pub fn ledger_after() -> (crate::analysis::ledger::Ledger, crate::model::Snapshot) {
    use crate::analysis::ledger::{ClientKey, Entry, KeyFields, Ledger, Source};
    use crate::logsource::{Refusal, RefusedAttempt, SettingChange};
    let fields = KeyFields::from_names(&["user".into(), "database".into(), "application".into()]).unwrap_or_default();
    let mut ledger = Ledger::new(fields);
    let mut before = snapshot();
    before.taken_at = now() - Duration::hours(2);
    ledger.observe_snapshot(&before, true);
    ledger.observe_setting_change(&SettingChange {
        at: now() - Duration::hours(1),
        name: "ssl_min_protocol_version".into(),
        value: Some("TLSv1.3".into()),
    });
    let handshake = |addr: &str, minutes: i64| RefusedAttempt {
        at: now() - Duration::minutes(minutes),
        pid: 5000,
        client_addr: Some(addr.into()),
        client_port: Some(50412),
        local_socket: false,
        refusal: Refusal::Handshake {
            reason: "unsupported protocol".into(),
        },
        hint: Some(
            "This may indicate that the client does not support any SSL protocol version between TLSv1.3 and TLSv1.3."
                .into(),
        ),
        detail: None,
    };
    for minutes in [40, 25, 10] {
        ledger.observe_refused(&handshake("10.0.1.141", minutes));
    }
    ledger.observe_refused(&handshake("10.0.6.77", 30));
    ledger.apply(&Entry::Session {
        at: now() - Duration::minutes(25),
        key: ClientKey::new(fields, Some("reports"), Some("dwh"), Some("legacy-reports"), None),
        class: ConnClass::PlainTcp,
        tls_version: None,
        cipher: None,
        source: Source::Log,
        address: Some("10.0.0.154".into()),
        replication: false,
        hba_line: Some(91),
        pid: None,
    });
    let snap = snapshot_after();
    ledger.observe_snapshot(&snap, true);
    (ledger, snap)
}

/// [`history`] with a week of migration behind it, hour by hour up to [`now`]: storefront on TLS 1.3 throughout
/// (busier by day), billing-batch on TLS 1.2 until two days ago and then on TLS 1.3, legacy-reports in plain text
/// until four days ago, and a handful of failed handshakes in the last hours.
pub fn history_trend() -> crate::collect::poller::History {
    use crate::analysis::ledger::{ClientKey, Entry, KeyFields, Ledger, Source};
    use crate::analysis::whatif::{Change, evaluate};
    use crate::logsource::{Refusal, RefusedAttempt};
    let fields = KeyFields::from_names(&["user".into(), "database".into(), "application".into()]).unwrap_or_default();
    let mut ledger = Ledger::new(fields);
    // The snapshot's own clients (user@database application), so each record holds its week and its live sessions.
    let session = |hours_ago: i64, app: &str, version: Option<&str>| Entry::Session {
        at: now() - Duration::hours(hours_ago) - Duration::minutes(5),
        key: ClientKey {
            user: match app {
                "billing-batch" => "billing",
                "legacy-reports" => "reports",
                _ => "web",
            }
            .into(),
            database: if app == "legacy-reports" { "dwh" } else { "shop" }.into(),
            application: app.into(),
            address: String::new(),
            pooler: None,
        },
        class: version.map_or(ConnClass::PlainTcp, ConnClass::from_tls_version),
        tls_version: version.map(str::to_string),
        cipher: None,
        source: Source::Log,
        address: Some("10.0.0.7".into()),
        replication: false,
        hba_line: None,
        pid: None,
    };
    for hours_ago in (0..168).rev() {
        let busy = if (hours_ago / 12) % 2 == 0 { 3 } else { 1 };
        for _ in 0..busy {
            ledger.apply(&session(hours_ago, "storefront", Some("TLSv1.3")));
        }
        if hours_ago % 3 == 0 {
            let version = if hours_ago >= 48 { "TLSv1.2" } else { "TLSv1.3" };
            ledger.apply(&session(hours_ago, "billing-batch", Some(version)));
        }
        if hours_ago >= 96 && hours_ago % 2 == 0 {
            ledger.apply(&session(hours_ago, "legacy-reports", None));
        }
    }
    for (i, hours_ago) in [5, 3, 3, 1].into_iter().enumerate() {
        ledger.observe_refused(&RefusedAttempt {
            at: now() - Duration::hours(hours_ago) - Duration::minutes(i as i64),
            pid: 6000 + i as i32,
            client_addr: Some("10.0.1.141".into()),
            client_port: Some(50412),
            local_socket: false,
            refusal: Refusal::Handshake {
                reason: "unsupported protocol".into(),
            },
            hint: None,
            detail: None,
        });
    }
    ledger.observe_snapshot(&snapshot(), true);
    let mut history = history();
    history.clients = ledger.records().cloned().collect();
    history.client_classes = crate::collect::history::client_classes(&ledger);
    history.whatif = [Change::MinTls13, Change::TlsRequired]
        .into_iter()
        .map(|t| evaluate(&ledger, t, &hba_with_host(), Duration::hours(24)))
        .collect();
    history.refused = ledger.refused();
    history.trend = ledger.week();
    history
}

/// A probe report as the lab server would give it, with fixed values so screens draw the same every time.
pub fn probe_report() -> crate::probe::ProbeReport {
    use crate::probe::certinfo::CertInfo;
    use crate::probe::scan::{CipherResult, TlsVersion, VersionResult};
    use crate::probe::verify::{BundleEntry, Verdict};
    let cert = |subject: &str, issuer: &str, days: i64, ca: bool| CertInfo {
        subject: subject.to_string(),
        issuer: issuer.to_string(),
        serial: "5A1F0C3E9B2D4471".to_string(),
        sans: if ca {
            vec![]
        } else {
            vec!["db.example.internal".to_string(), "10.0.0.5".to_string()]
        },
        key_type: "RSA".to_string(),
        key_bits: 2048,
        signature_algorithm: "sha256WithRSAEncryption".to_string(),
        not_before: now() - Duration::days(300),
        not_after: now() + Duration::days(days),
        days_left: days,
        sha256: "3B:9F:12:AA:07:5C:E1:44:90:2D:6B:C8:71:0E:FA:39:58:B2:1D:66:C0:83:4E:97:2A:F5:18:DC:63:0B:A4:7E"
            .to_string(),
        is_ca: ca,
        self_signed: false,
    };
    let root = "O=Example, CN=Example Root CA";
    let inter = "O=Example, CN=Example Issuing CA 2";
    let mut report = crate::probe::ProbeReport {
        host: "db.example.internal".to_string(),
        address: "10.0.0.5".to_string(),
        port: 5432,
        probed_at: now(),
        accepts_tls: true,
        negotiated: Some(crate::probe::Negotiated {
            version: "TLSv1.3".to_string(),
            cipher: "TLS_AES_256_GCM_SHA384".to_string(),
        }),
        chain: vec![
            cert("O=Example, CN=db.example.internal", inter, 21, false),
            cert(inter, root, 800, true),
        ],
        host_name_matches: Some(true),
        root_bundle: Some("/etc/pgtls/root-bundle.pem".to_string()),
        verify_bundle: Some(Verdict {
            against: "root file \"/etc/pgtls/root-bundle.pem\"".to_string(),
            verified: true,
            error: None,
            anchor: Some(root.to_string()),
        }),
        bundles: fixture_bundles(root, inter),
        on_disk: None,
        bundle: vec![
            BundleEntry {
                subject: "O=Old, CN=Old Root CA".into(),
                self_signed: true,
                is_ca: true,
                anchors_server: false,
                pinned_from_chain: false,
            },
            BundleEntry {
                subject: root.into(),
                self_signed: true,
                is_ca: true,
                anchors_server: true,
                pinned_from_chain: false,
            },
            BundleEntry {
                subject: inter.into(),
                self_signed: false,
                is_ca: true,
                anchors_server: false,
                pinned_from_chain: true,
            },
        ],
        verify_system: Some(Verdict {
            against: "system store".to_string(),
            verified: false,
            error: Some("unable to get local issuer certificate".to_string()),
            anchor: None,
        }),
        versions: TlsVersion::ALL
            .iter()
            .map(|v| VersionResult {
                version: *v,
                accepted: matches!(v, TlsVersion::Tls12 | TlsVersion::Tls13),
                reason: None,
                not_offered: false,
            })
            .collect(),
        tls12_ciphers: vec![
            CipherResult::of("ECDHE-RSA-AES256-GCM-SHA384"),
            CipherResult::of("AES256-GCM-SHA384"),
            CipherResult::of("ECDHE-RSA-AES256-SHA384"),
        ],
        tls12_full_scan: false,
        version_scan: String::new(),
        connections: 10,
        findings: Vec::new(),
    };
    report.findings = crate::probe::findings(&report, 30);
    crate::probe::on_disk::attach(
        &mut report,
        crate::probe::on_disk::OnDisk {
            path: "server.crt".to_string(),
            verdict: crate::probe::on_disk::OnDiskVerdict::Differs {
                leaf_differs: true,
                disk_subject: "O=Example, CN=db.example.internal".to_string(),
                disk_sha256:
                    "9C:41:0B:77:E2:5D:18:A3:6F:C0:92:4E:D1:3B:88:07:5A:E6:21:9F:4C:B0:73:D5:18:6E:A2:39:C4:0F:85:1B"
                        .to_string(),
                disk_not_after: now() + Duration::days(397),
            },
        },
    );
    report
}

/// A rotation under way: the server sends its intermediate as certified by the old root; one bundle has only the
/// new root, one has the new root with the intermediate's cross-signed copy, one the old root.
fn fixture_bundles(root: &str, inter: &str) -> Vec<crate::probe::bundles::BundleVerdict> {
    use crate::probe::bundles::{BundleRoot, BundleVerdict, PathStep};
    let g2 = "O=Example, CN=Example Root G2";
    let fp = |c: char| std::iter::repeat_n(format!("{c}{c}"), 32).collect::<Vec<_>>().join(":");
    let step = |subject: &str, issuer: &str, sha: char, from: &str| PathStep {
        subject: subject.to_string(),
        issuer: issuer.to_string(),
        sha256: fp(sha),
        from: from.to_string(),
    };
    let root_entry = |subject: &str, sha: char, anchors: bool, self_signed: bool| BundleRoot {
        subject: subject.to_string(),
        sha256: fp(sha),
        not_after: now() + Duration::days(3000),
        anchors,
        self_signed,
        expired: false,
    };
    let leaf = "O=Example, CN=db.example.internal";
    vec![
        BundleVerdict {
            path: "/etc/app/old-root.pem".to_string(),
            verifies: true,
            verifies_ca: true,
            roots: vec![root_entry(root, 'A', true, true)],
            anchor: Some(root.to_string()),
            anchor_sha256: Some(fp('A')),
            path_taken: Vec::new(),
            explanation: Vec::new(),
            error: None,
        },
        BundleVerdict {
            path: "/etc/app/new-root.pem".to_string(),
            verifies: false,
            verifies_ca: false,
            roots: vec![root_entry(g2, 'B', false, true)],
            anchor: None,
            anchor_sha256: None,
            path_taken: Vec::new(),
            explanation: vec![format!(
                "the server sends the intermediate \"{inter}\" signed by \"{root}\"; this bundle has only \"{g2}\", \
                 so no path (OpenSSL: unable to get local issuer certificate); it needs \"{root}\""
            )],
            error: None,
        },
        BundleVerdict {
            path: "/etc/app/new-root-and-ica.pem".to_string(),
            verifies: true,
            verifies_ca: true,
            roots: vec![root_entry(g2, 'B', false, true), root_entry(inter, 'C', false, false)],
            anchor: Some(g2.to_string()),
            anchor_sha256: Some(fp('B')),
            path_taken: vec![
                step(leaf, inter, 'D', "server"),
                step(inter, g2, 'C', "bundle"),
                step(g2, g2, 'B', "bundle"),
            ],
            explanation: Vec::new(),
            error: None,
        },
    ]
}
