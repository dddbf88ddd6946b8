//! pgtls against every PostgreSQL major version it supports (13 to 18), each in its own lab server.
//!
//! Binaries come from the installed PostgreSQL where it is that version (Debian's 15 here) and otherwise from
//! `pgtls::provision`'s pinned builds, fetched into pgtls's cache on first use; see `common::version_bindir`. A
//! version without binaries (offline, or no build for this platform) is skipped with a note, except under
//! `CI=true`, where it fails the test: CI must prove every version. `PGTLS_VERSIONS=13,18` runs a subset.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail by panicking")]

use crate::common;

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{BindirError, VersionBinaries};
use pgtls::collect::Collector;
use pgtls::collect::sql::KNOWN_SETTINGS;
use pgtls::lab::{CERT_USER, Lab, LabOptions, SUPERUSER, SessionKind, TLS_ONLY_USER};
use pgtls::logsource::{LogFollower, LogFormat, LogNews, Refusal};
use pgtls::model::{ConnClass, Setting, Snapshot, Verification};

/// The matrix is the provisioner's: the majors it has pinned builds of.
const VERSIONS: std::ops::RangeInclusive<u32> = pgtls::provision::pinned::MAJORS;
/// Labs started at once: each is a postmaster plus a handful of backends, and the machine has 2 cores.
const PARALLEL: usize = 2;
const PER_VERSION_TIMEOUT: Duration = Duration::from_secs(180);
const ADMIN_APP: &str = "pgtls-lab-admin";

/// libtest captures `println!`/`eprintln!` of passing tests; the matrix summary must show even without
/// `--nocapture`, since a skipped version would otherwise pass silently.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_supported_postgresql_version() {
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let selected: Option<BTreeSet<u32>> = std::env::var("PGTLS_VERSIONS")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.split(',').filter_map(|v| v.trim().parse().ok()).collect());
    let slots = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    let mut runs = Vec::new();
    let mut skipped = Vec::new();
    let mut broken = Vec::new();
    let mut not_selected = Vec::new();
    for major in VERSIONS {
        if selected.as_ref().is_some_and(|s| !s.contains(&major)) {
            not_selected.push(major);
            continue;
        }
        match common::version_bindir(major) {
            Ok(bin) => {
                let slots = Arc::clone(&slots);
                let task = tokio::spawn(async move {
                    let _slot = slots.acquire_owned().await.expect("semaphore open");
                    let started = Instant::now();
                    match tokio::time::timeout(PER_VERSION_TIMEOUT, check_version(&bin)).await {
                        Ok(note) => format!("{note}, {:.1} s", started.elapsed().as_secs_f64()),
                        Err(_) => panic!("timed out after {PER_VERSION_TIMEOUT:?}"),
                    }
                });
                runs.push((major, task));
            }
            Err(BindirError::Missing(why)) => skipped.push((major, why)),
            Err(BindirError::Broken(why)) => broken.push((major, why)),
        }
    }

    let mut ran = Vec::new();
    let mut failed = Vec::new();
    for (major, why) in broken {
        report(&format!("versions: PostgreSQL {major}: FAILED: {why}"));
        failed.push(major);
    }
    // Each version runs in its own task so one version's failed assertion does not hide the others' results.
    for (major, task) in runs {
        match task.await {
            Ok(note) => {
                report(&format!("versions: PostgreSQL {major}: ok ({note})"));
                ran.push(major);
            }
            Err(e) => {
                let why = if e.is_panic() {
                    let panic = e.into_panic();
                    panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "panicked".to_string())
                } else {
                    e.to_string()
                };
                report(&format!("versions: PostgreSQL {major}: FAILED: {why}"));
                failed.push(major);
            }
        }
    }
    for (major, why) in &skipped {
        report(&format!("versions: PostgreSQL {major}: SKIPPED: {why}"));
    }
    let list = |v: &[u32]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.iter().map(u32::to_string).collect::<Vec<_>>().join(" ")
        }
    };
    let skipped_majors: Vec<u32> = skipped.iter().map(|(m, _)| *m).collect();
    report(&format!(
        "versions: ran {}; failed {}; skipped {}{}",
        list(&ran),
        list(&failed),
        list(&skipped_majors),
        if not_selected.is_empty() {
            String::new()
        } else {
            format!("; not selected (PGTLS_VERSIONS) {}", list(&not_selected))
        }
    ));
    assert!(failed.is_empty(), "PostgreSQL {} failed (see above)", list(&failed));
    assert!(
        !in_ci || skipped.is_empty(),
        "CI=true: every version must run, but PostgreSQL {} has no binaries (see above)",
        list(&skipped_majors)
    );
    assert!(!ran.is_empty() || selected.is_some(), "no PostgreSQL version could run");
}

/// Everything that matters on one version; panics on the first wrong answer. Returns a note for the summary.
async fn check_version(bin: &VersionBinaries) -> String {
    let major = bin.major;
    let lab = Lab::start(LabOptions {
        bindir: Some(bin.dir.clone()),
        ..LabOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("lab with {} starts: {e:#}", bin.dir.display()));
    assert_eq!(lab.major_version, major);
    let home = tempfile::tempdir().expect("temp home");

    let sessions = open_one_of_each(&lab).await;
    let snap = poll_as(&lab, SUPERUSER, home.path()).await;
    server_version_is_reported(&snap, bin);
    sessions_are_classified_exactly(&snap, &sessions);
    own_connection(&snap, lab.sslinfo);
    // The platform's statements run on this version (a refused one would leave it unknown, with the server's
    // words as evidence): no provider's mark, and a superuser may ALTER SYSTEM.
    assert_eq!(
        snap.platform.name,
        pgtls::model::PlatformName::SelfHosted,
        "PostgreSQL {major}: {:?}",
        snap.platform
    );
    privileged_settings(&snap, major);
    settings_known_for_this_version(&lab, major).await;
    privileges(&lab, major, &sessions, home.path()).await;
    refusals_as_this_version_words_them(&lab, major).await;

    format!(
        "{} from {} ({}), sslinfo {}",
        snap.server.version,
        bin.dir.display(),
        bin.found_by,
        if lab.sslinfo { "yes" } else { "no" }
    )
}

/// The log lines issue 15 reads, as this version writes them: a plain-text client turned away by pg_hba.conf
/// (`SSL off` on 13, `no encryption` from 14), a failed TLS 1.2 handshake after the floor is raised, and the
/// postmaster's `parameter "ssl_min_protocol_version" changed to "TLSv1.3"` on reload.
async fn refusals_as_this_version_words_them(lab: &Lab, major: u32) {
    let format = LogFormat::Stderr {
        prefix: "%m [%p] ".into(),
    };
    let mut follower = LogFollower::open(lab.log_file.clone(), format, false).expect("log opens");
    assert!(
        lab.open(SessionKind::PlainTcp, TLS_ONLY_USER, "plain-refused")
            .await
            .is_err(),
        "PostgreSQL {major}: hostnossl ... reject turns a plain client away"
    );
    lab.set_config("ssl_min_protocol_version", "TLSv1.3")
        .await
        .expect("raised");
    let deadline = Instant::now() + Duration::from_secs(10);
    while lab.open(SessionKind::Tls12, SUPERUSER, "tls12-refused").await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "PostgreSQL {major}: the floor never took effect"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut news = LogNews::default();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        follower.poll().expect("log poll");
        news.extend(follower.take_news());
        let plain = news.refused.iter().any(|r| {
            matches!(&r.refusal, Refusal::Hba(h) if h.plain() && h.rejected && h.user == TLS_ONLY_USER)
                && r.client_addr.as_deref() == Some("127.0.0.1")
        });
        let handshake = news.refused.iter().any(|r| {
            matches!(&r.refusal, Refusal::Handshake { reason } if !reason.is_empty())
                && r.client_addr.as_deref() == Some("127.0.0.1")
                && r.client_port.is_some()
        });
        let change = news
            .changes
            .iter()
            .any(|c| c.name == "ssl_min_protocol_version" && c.value.as_deref() == Some("TLSv1.3"));
        if plain && handshake && change {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "PostgreSQL {major}: refusals not all read from the log (plain {plain}, handshake {handshake}, \
             change {change}): {news:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (suspects, _) = follower.take_suspects();
    assert!(
        suspects.is_empty(),
        "PostgreSQL {major}: unparsed connection lines: {suspects:?}"
    );
}

async fn open_one_of_each(lab: &Lab) -> Vec<(pgtls::lab::LabSession, &'static str)> {
    let mix = [
        (SessionKind::Tls13, "app13", "tls13-a"),
        (SessionKind::Tls13, "app13", "tls13-b"),
        (SessionKind::Tls12, "app12", "tls12"),
        (SessionKind::PlainTcp, "plain", "plain"),
        (SessionKind::UnixSocket, "local", "socket"),
        (SessionKind::ClientCert, CERT_USER, "cert"),
    ];
    let mut open = Vec::new();
    for (kind, user, app) in mix {
        let session = lab
            .open(kind, user, app)
            .await
            .unwrap_or_else(|e| panic!("opening {kind:?}: {e:#}"));
        open.push((session, app));
    }
    open
}

async fn poll_as(lab: &Lab, user: &str, home: &Path) -> Snapshot {
    let conninfo = format!("{} sslmode=require", lab.conninfo(user));
    let mut collector = Collector::connect(&common::params(&conninfo, home))
        .await
        .unwrap_or_else(|e| panic!("collector connects as {user}: {e}"));
    collector.poll().await.unwrap_or_else(|e| panic!("poll as {user}: {e}"))
}

fn server_version_is_reported(snap: &Snapshot, bin: &VersionBinaries) {
    assert_eq!(
        snap.server.major(),
        bin.major,
        "server_version_num {}",
        snap.server.version_num
    );
    assert!(
        snap.server.version.starts_with(&bin.version),
        "server_version {:?} vs postgres --version {:?}",
        snap.server.version,
        bin.version
    );
    // Since 10, server_version_num is major * 10000 + minor.
    let minor: u32 = bin.version.split('.').nth(1).and_then(|m| m.parse().ok()).unwrap_or(0);
    assert_eq!(snap.server.version_num, bin.major * 10_000 + minor);
}

fn sessions_are_classified_exactly(snap: &Snapshot, open: &[(pgtls::lab::LabSession, &str)]) {
    let by_pid: HashMap<i32, _> = snap.sessions.iter().map(|s| (s.pid, s)).collect();
    for (session, app) in open {
        let seen = by_pid
            .get(&session.pid)
            .unwrap_or_else(|| panic!("session {app} missing"));
        assert_eq!(seen.application_name.as_deref(), Some(*app));
        assert_eq!(seen.state.as_deref(), Some("idle"), "{app}");
        let expected = match session.kind {
            SessionKind::Tls13 | SessionKind::ClientCert => ConnClass::Tls13,
            SessionKind::Tls12 | SessionKind::Tls12Prefer => ConnClass::Tls12,
            SessionKind::PlainTcp => ConnClass::PlainTcp,
            SessionKind::UnixSocket => ConnClass::Local,
        };
        assert_eq!(seen.class, expected, "{app}");
        match session.kind {
            SessionKind::Tls13 | SessionKind::Tls12 | SessionKind::Tls12Prefer | SessionKind::ClientCert => {
                let tls = seen.tls.as_ref().unwrap_or_else(|| panic!("{app}: TLS details"));
                let version = if expected == ConnClass::Tls13 {
                    "TLSv1.3"
                } else {
                    "TLSv1.2"
                };
                assert_eq!(tls.version, version, "{app}");
                assert!(!tls.cipher.is_empty(), "{app} has a cipher");
                assert!(tls.bits.unwrap_or(0) >= 128, "{app} has bits");
                assert_eq!(seen.client_addr.as_deref(), Some("127.0.0.1"), "{app}");
                if session.kind == SessionKind::ClientCert {
                    assert_eq!(tls.client_dn.as_deref(), Some("/O=pgtls lab/CN=pgtls_cert"));
                    assert_eq!(tls.issuer_dn.as_deref(), Some("/O=pgtls lab/CN=pgtls lab root CA"));
                    assert!(
                        tls.client_serial
                            .as_deref()
                            .is_some_and(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit())),
                        "serial {:?}",
                        tls.client_serial
                    );
                } else {
                    assert_eq!(tls.client_dn, None, "{app} sent no certificate");
                }
            }
            SessionKind::PlainTcp => {
                assert!(seen.tls.is_none(), "{app}");
                assert_eq!(seen.client_addr.as_deref(), Some("127.0.0.1"));
            }
            SessionKind::UnixSocket => {
                assert!(seen.tls.is_none(), "{app}");
                assert_eq!(seen.client_port, Some(-1));
            }
        }
    }
    // The lab's admin connections come and go (one per setup call), so they are left out of the count.
    let ours: Vec<_> = snap
        .sessions
        .iter()
        .filter(|s| s.application_name.as_deref() != Some(ADMIN_APP))
        .cloned()
        .collect();
    let counts = pgtls::model::ClassCounts::of(&ours);
    // Two TLS 1.3 clients and the client-certificate one; the monitor's own row is listed but never counted.
    assert_eq!(
        (
            counts.tls13,
            counts.tls12,
            counts.tls_older,
            counts.plain_tcp,
            counts.gss,
            counts.local,
            counts.unknown
        ),
        (3, 1, 0, 1, 0, 1, 0),
        "{:?}",
        ours.iter()
            .map(|s| (s.pid, &s.application_name, s.class))
            .collect::<Vec<_>>()
    );
}

fn own_connection(snap: &Snapshot, sslinfo: bool) {
    let own = &snap.monitor;
    assert_eq!(own.tls.as_ref().map(|t| t.version.as_str()), Some("TLSv1.3"));
    assert_eq!(own.sslmode, "require");
    assert_eq!(own.verification, Verification::None);
    if sslinfo {
        assert_eq!(own.ssl_is_used, Some(true));
        assert_eq!(own.sources, vec!["pg_stat_ssl", "sslinfo"]);
    } else {
        assert_eq!(own.ssl_is_used, None);
        assert_eq!(own.sources, vec!["pg_stat_ssl"]);
    }
    assert_eq!(snap.own_session().map(|s| s.class), Some(ConnClass::Tls13));
}

fn privileged_settings(snap: &Snapshot, major: u32) {
    let set = |v: &str| Setting::Set(v.to_string());
    assert_eq!(snap.setting("ssl"), &set("on"));
    assert_eq!(snap.setting("ssl_library"), &set("OpenSSL"));
    // 13 raised the default from TLSv1 (12) to TLSv1.2.
    assert_eq!(snap.setting("ssl_min_protocol_version"), &set("TLSv1.2"));
    assert_eq!(snap.setting("ssl_max_protocol_version"), &set(""));
    assert!(matches!(snap.setting("ssl_ciphers"), Setting::Set(c) if !c.is_empty()));
    if major >= 18 {
        // 18 renamed ssl_ecdh_curve to ssl_groups (the old name is only an alias) and added ssl_tls13_ciphers.
        assert!(
            matches!(snap.setting("ssl_groups"), Setting::Set(g) if g.contains("prime256v1")),
            "{:?}",
            snap.setting("ssl_groups")
        );
        assert!(matches!(snap.setting("ssl_tls13_ciphers"), Setting::Set(_)));
        assert_eq!(snap.setting("ssl_ecdh_curve"), &Setting::Absent);
    } else {
        assert_eq!(snap.setting("ssl_ecdh_curve"), &set("prime256v1"));
        assert_eq!(snap.setting("ssl_groups"), &Setting::Absent);
        assert_eq!(snap.setting("ssl_tls13_ciphers"), &Setting::Absent);
    }
    if major >= 14 {
        assert_eq!(snap.setting("ssl_crl_dir"), &set(""));
    } else {
        assert_eq!(snap.setting("ssl_crl_dir"), &Setting::Absent);
    }
}

/// The collector's table of settings and the versions that have them must match the real server: a setting it
/// thinks exists but the server lacks would be reported Hidden to an unprivileged monitor, wrongly.
async fn settings_known_for_this_version(lab: &Lab, major: u32) {
    let admin = lab.admin().await.expect("admin connects");
    let version_num: i32 = admin
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .await
        .expect("version")
        .get(0);
    let version_num = u32::try_from(version_num).expect("positive");
    let on_server: BTreeSet<String> = admin
        .query(
            "SELECT name::text FROM pg_catalog.pg_settings WHERE name LIKE 'ssl%' OR name = 'log_connections'",
            &[],
        )
        .await
        .expect("pg_settings")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let expected: BTreeSet<String> = KNOWN_SETTINGS
        .iter()
        .filter(|k| (k.since..k.until).contains(&version_num))
        .map(|k| k.name.to_string())
        // Hidden from ordinary roles and not a TLS property worth showing; pgtls does not report it.
        .chain(std::iter::once("ssl_passphrase_command".to_string()))
        .collect();
    assert_eq!(
        on_server, expected,
        "ssl% settings of PostgreSQL {major} vs KNOWN_SETTINGS"
    );
}

/// An ordinary role sees other sessions as Unknown and protected settings as Hidden. pg_read_all_stats and
/// pg_read_all_settings open them up. 13 and 14 check role membership, 15+ privileges (has_privs_of_role): a
/// NOINHERIT member is let in by 13/14 only, and the preflight must predict exactly what the server shows.
async fn privileges(lab: &Lab, major: u32, open: &[(pgtls::lab::LabSession, &str)], home: &Path) {
    let other_pids: Vec<i32> = open.iter().map(|(s, _)| s.pid).collect();
    lab.ensure_role("monitor").await.expect("role monitor");
    lab.ensure_role("member_only").await.expect("role member_only");
    let admin = lab.admin().await.expect("admin connects");
    // 16+ takes a grant's INHERIT option from the member's rolinherit at GRANT time, so NOINHERIT goes first.
    admin
        .batch_execute(
            "ALTER ROLE member_only NOINHERIT;
             GRANT pg_read_all_stats, pg_read_all_settings TO member_only",
        )
        .await
        .expect("grant to member_only");

    let unprivileged = poll_as(lab, "monitor", home).await;
    assert_hidden_view(&unprivileged, major, &other_pids, "monitor before GRANT");

    let member = poll_as(lab, "member_only", home).await;
    if major < 15 {
        assert_full_view(&member, &other_pids, "NOINHERIT member on 13/14");
    } else {
        assert_hidden_view(&member, major, &other_pids, "NOINHERIT member on 15+");
    }

    admin
        .batch_execute("GRANT pg_read_all_stats, pg_read_all_settings TO monitor")
        .await
        .expect("grant to monitor");
    let granted = poll_as(lab, "monitor", home).await;
    assert_full_view(&granted, &other_pids, "monitor after GRANT");
}

fn assert_hidden_view(snap: &Snapshot, major: u32, others: &[i32], who: &str) {
    let p = snap.privileges;
    assert!(
        !p.superuser && !p.read_all_stats && !p.read_all_settings,
        "{who}: {p:?}"
    );
    for pid in others {
        let seen = snap
            .sessions
            .iter()
            .find(|s| s.pid == *pid)
            .unwrap_or_else(|| panic!("{who}: hidden session {pid} still listed"));
        assert_eq!(
            seen.class,
            ConnClass::Unknown,
            "{who}: never 'no TLS' for a session we may not see"
        );
        assert!(seen.tls.is_none(), "{who}");
    }
    assert!(snap.sessions.iter().all(|s| s.class != ConnClass::PlainTcp), "{who}");
    assert_eq!(
        snap.monitor.tls.as_ref().map(|t| t.version.as_str()),
        Some("TLSv1.3"),
        "{who}: own row is always visible"
    );
    assert_eq!(snap.setting("ssl"), &Setting::Set("on".into()), "{who}");
    assert!(matches!(snap.setting("ssl_cert_file"), Setting::Set(_)), "{who}");
    let mut hidden = vec![
        "ssl_min_protocol_version",
        "ssl_max_protocol_version",
        "ssl_ciphers",
        "ssl_dh_params_file",
    ];
    if major >= 18 {
        hidden.extend(["ssl_groups", "ssl_tls13_ciphers"]);
        assert_eq!(snap.setting("ssl_ecdh_curve"), &Setting::Absent, "{who}");
    } else {
        hidden.push("ssl_ecdh_curve");
    }
    for name in hidden {
        assert_eq!(snap.setting(name), &Setting::Hidden, "{who}: {name}");
    }
}

fn assert_full_view(snap: &Snapshot, others: &[i32], who: &str) {
    let p = snap.privileges;
    assert!(!p.superuser && p.read_all_stats && p.read_all_settings, "{who}: {p:?}");
    for pid in others {
        let class = snap.sessions.iter().find(|s| s.pid == *pid).map(|s| s.class);
        assert!(
            class.is_some_and(|c| c != ConnClass::Unknown),
            "{who}: session {pid} is {class:?}"
        );
    }
    assert_eq!(
        snap.sessions
            .iter()
            .filter(|s| s.application_name.as_deref() != Some(ADMIN_APP))
            .filter(|s| s.class == ConnClass::Unknown)
            .count(),
        0,
        "{who}"
    );
    assert_eq!(
        snap.setting("ssl_min_protocol_version"),
        &Setting::Set("TLSv1.2".into()),
        "{who}"
    );
    assert!(matches!(snap.setting("ssl_ciphers"), Setting::Set(_)), "{who}");
}
