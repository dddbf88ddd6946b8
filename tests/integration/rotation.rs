//! Root CA rotation (issue 18): a lab PKI with an old and a new root and ONE intermediate key certified by both
//! (two intermediate certificates, one subject and key: a cross-signed intermediate), the lab server presenting
//! the leaf with either copy. For every bundle, both sslmodes and a host name that does and does not match,
//! pgtls's verdict must be psql's actual outcome.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail by panicking")]

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use pgtls::lab::certs::{CertSpec, Issued, issue, issue_for_key};
use pgtls::lab::{LAB_PASSWORD, SUPERUSER};
use serde_json::Value;

struct Pki {
    old: Issued,
    new: Issued,
    int_old: openssl::x509::X509,
    int_new: openssl::x509::X509,
    leaf: Issued,
}

fn pki() -> Pki {
    let old = issue(&CertSpec::ca("Rotation Old Root"), None).unwrap();
    let new = issue(&CertSpec::ca("Rotation New Root"), None).unwrap();
    let int_key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let int_old = issue_for_key(&CertSpec::ca("Rotation Intermediate"), int_key.clone(), Some(&old)).unwrap();
    let int_new = issue_for_key(&CertSpec::ca("Rotation Intermediate"), int_key, Some(&new)).unwrap();
    let leaf = issue(
        &CertSpec::server("localhost", &["localhost"], &["127.0.0.1"]),
        Some(&int_old),
    )
    .unwrap();
    Pki {
        old,
        new,
        int_old: int_old.cert,
        int_new: int_new.cert,
        leaf,
    }
}

fn write_bundle(dir: &Path, name: &str, certs: &[&openssl::x509::X509]) -> PathBuf {
    let path = dir.join(name);
    let pem: Vec<u8> = certs.iter().flat_map(|c| c.to_pem().unwrap()).collect();
    std::fs::write(&path, pem).unwrap();
    path
}

/// Real psql with exactly `sslrootcert=FILE sslmode=MODE`, a clean environment and an empty home.
fn psql_connects(conninfo: &str, bundle: &Path, mode: &str, home: &Path) -> (bool, String) {
    let out = Command::new("/usr/bin/psql")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home)
        .env("PGCONNECT_TIMEOUT", "10")
        .env("PGPASSWORD", LAB_PASSWORD)
        .arg(format!("{conninfo} sslmode={mode} sslrootcert={}", bundle.display()))
        .args(["-X", "-A", "-t", "-c", "select 1"])
        .output()
        .expect("psql runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

fn probe(conninfo: &str, bundles: &[PathBuf], home: &Path) -> (Option<i32>, Value) {
    let mut args = vec![
        "probe".to_string(),
        conninfo.to_string(),
        "--format".into(),
        "json".into(),
    ];
    for b in bundles {
        args.push("--bundle".into());
        args.push(b.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = common::pgtls(&args, home);
    let json: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("probe JSON: {e}; stderr {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), json)
}

#[tokio::test]
async fn bundle_verdicts_equal_psql_for_both_chains_every_bundle_and_both_sslmodes() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = pki();
    let bundles = [
        ("old only", write_bundle(dir.path(), "old.pem", &[&p.old.cert])),
        ("new only", write_bundle(dir.path(), "new.pem", &[&p.new.cert])),
        (
            "both",
            write_bundle(dir.path(), "both.pem", &[&p.old.cert, &p.new.cert]),
        ),
        (
            "new root + its intermediate",
            write_bundle(dir.path(), "new-int.pem", &[&p.new.cert, &p.int_new]),
        ),
    ];
    let paths: Vec<PathBuf> = bundles.iter().map(|(_, p)| p.clone()).collect();
    let port = lab.clone_for_clients().port;
    let hosts = [
        (
            "matching host",
            format!("host=127.0.0.1 port={port} user={SUPERUSER} dbname=postgres"),
        ),
        (
            "host-name mismatch",
            format!("host=wrong.example hostaddr=127.0.0.1 port={port} user={SUPERUSER} dbname=postgres"),
        ),
    ];
    let chains = [
        ("leaf+intermediate(old)", &p.int_old),
        ("leaf+intermediate(new)", &p.int_new),
    ];
    let mut compared = 0;
    let mut outcomes = Vec::new();
    for (chain_name, intermediate) in chains {
        lab.use_server_chain(&p.leaf, std::slice::from_ref(intermediate))
            .await
            .unwrap();
        for (host_name, conninfo) in &hosts {
            let (code, report) = probe(conninfo, &paths, home.path());
            let verdicts = report["bundles"].as_array().expect("bundles in the JSON");
            assert_eq!(verdicts.len(), bundles.len());
            let mut any_fails = false;
            for ((bundle_name, path), verdict) in bundles.iter().zip(verdicts) {
                assert_eq!(verdict["path"], path.display().to_string());
                for (mode, key) in [("verify-full", "verifies"), ("verify-ca", "verifies_ca")] {
                    let (psql_ok, stderr) = psql_connects(conninfo, path, mode, home.path());
                    let ours = verdict[key].as_bool().expect("a verdict");
                    assert_eq!(
                        ours, psql_ok,
                        "{chain_name}, {host_name}, bundle {bundle_name}, {mode}: pgtls says {ours}, psql \
                         {psql_ok} ({stderr}); verdict {verdict:#}"
                    );
                    if !ours {
                        let why = verdict["explanation"].to_string();
                        assert!(!why.is_empty() && why != "[]", "a failure is explained: {verdict:#}");
                    }
                    outcomes.push(format!(
                        "{chain_name} | {host_name} | {bundle_name} | {mode} | {psql_ok}"
                    ));
                    compared += 1;
                }
                any_fails |= !verdict["verifies"].as_bool().unwrap_or(false);
            }
            assert_eq!(
                code == Some(2),
                any_fails,
                "exit 2 exactly when a bundle fails: {code:?}"
            );
            if chain_name.ends_with("(old)") && *host_name == "matching host" {
                let new_only = &verdicts[1];
                let why = new_only["explanation"][0].as_str().unwrap();
                assert!(
                    why.contains("intermediate \"O=pgtls lab, CN=Rotation Intermediate\" signed by \"O=pgtls lab, CN=Rotation Old Root\"")
                        && why.contains("only \"O=pgtls lab, CN=Rotation New Root\""),
                    "{why}"
                );
                let both = &verdicts[2]["roots"];
                assert_eq!(both[0]["anchors"], true, "Old Root anchors the old chain: {both:#}");
                assert_eq!(both[1]["anchors"], false, "New Root does not: {both:#}");
                assert!(both[0]["sha256"].as_str().unwrap().len() == 95);
                assert!(both[0]["not_after"].is_string());
            }
            if *host_name == "host-name mismatch" {
                // verify-ca and verify-full differ here: the bundle that verifies the chain still fails verify-full.
                assert!(
                    verdicts
                        .iter()
                        .any(|v| v["verifies_ca"] == true && v["verifies"] == false)
                );
            }
        }
    }
    assert_eq!(compared, 2 * 2 * bundles.len() * 2);
    eprintln!("{}", outcomes.join("\n"));
    // The cross-signing is what the test is about: each single-root bundle works with one chain only.
    assert!(outcomes.contains(&"leaf+intermediate(old) | matching host | new only | verify-full | false".to_string()));
    assert!(outcomes.contains(&"leaf+intermediate(new) | matching host | new only | verify-full | true".to_string()));
    assert!(outcomes.contains(&"leaf+intermediate(new) | matching host | old only | verify-ca | false".to_string()));
}

#[tokio::test]
async fn hostile_bundle_files_are_one_line_errors() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let conninfo = format!("host=127.0.0.1 port={} user={SUPERUSER}", lab.clone_for_clients().port);
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, b"\x00\x01 not a certificate \xff").unwrap();
    let key_only = dir.path().join("key.pem");
    std::fs::write(
        &key_only,
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let huge = dir.path().join("huge.pem");
    std::fs::File::create(&huge).unwrap().set_len(64 * 1024 * 1024).unwrap();
    for (path, expected) in [
        (&garbage, "not PEM text"),
        (&key_only, "holds no certificate, only \"PRIVATE KEY\""),
        (&huge, "larger than 4 MiB"),
        (&PathBuf::from("/dev/zero"), "not a regular file"),
    ] {
        let out = common::pgtls(
            &["probe", &conninfo, "--bundle", &path.display().to_string()],
            home.path(),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(expected) && stderr.contains("bundle"), "{stderr}");
    }
}

/// Probe through the dashboard's poller (which also reads `ssl_cert_file` over SQL) and wait for the report.
async fn poller_probe(
    poller: &pgtls::collect::poller::PollerHandle,
    events: &mut tokio::sync::mpsc::Receiver<pgtls::collect::poller::PollerEvent>,
) -> pgtls::probe::ProbeReport {
    use pgtls::collect::poller::{PollerCommand, PollerEvent};
    poller.commands.send(PollerCommand::Probe).expect("poller runs");
    loop {
        let event = tokio::time::timeout(std::time::Duration::from_secs(60), events.recv())
            .await
            .expect("a probe within a minute")
            .expect("poller runs");
        if let PollerEvent::Probe(result) = event {
            return *result.expect("the lab answers a probe");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_installed_without_reload_is_reported() {
    use pgtls::collect::poller::{HistorySetup, spawn};
    use pgtls::probe::ProbeTarget;
    use pgtls::probe::on_disk::OnDiskVerdict;
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let start = |user: &str| {
        let params = common::params(&lab.conninfo(user), home.path());
        let (tx, events) = tokio::sync::mpsc::channel(64);
        let mut setup = HistorySetup::none();
        setup.probe = ProbeTarget::from_params(&params, 30, false);
        (
            spawn(params, None, std::time::Duration::from_secs(3600), setup, tx),
            events,
        )
    };
    let (poller, mut events) = start(SUPERUSER);
    let report = poller_probe(&poller, &mut events).await;
    assert_eq!(
        report.on_disk.as_ref().map(|d| &d.verdict),
        Some(&OnDiskVerdict::Same),
        "{:?}",
        report.on_disk
    );

    // An operator replaces the certificate file and forgets pg_reload_conf().
    let ca = lab.ca().unwrap();
    let renewed = issue(
        &CertSpec::server("localhost", &["localhost"], &["127.0.0.1", "::1"]),
        Some(&ca),
    )
    .unwrap();
    lab.install_server_chain(&renewed, &[]).unwrap();
    let report = poller_probe(&poller, &mut events).await;
    let on_disk = report.on_disk.clone().expect("compared");
    assert!(
        matches!(on_disk.verdict, OnDiskVerdict::Differs { leaf_differs: true, .. }),
        "{on_disk:?}"
    );
    assert!(
        on_disk
            .summary()
            .starts_with("new certificate installed, server not reloaded")
    );
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.message.contains("server not reloaded"))
    );

    // After the reload the server presents the file's certificate.
    lab.reload().await.unwrap();
    let report = poller_probe(&poller, &mut events).await;
    assert_eq!(report.on_disk.map(|d| d.verdict), Some(OnDiskVerdict::Same));
    let renewed_fp = pgtls::probe::certinfo::describe(&renewed.cert, chrono::Utc::now()).sha256;
    assert_eq!(report.chain[0].sha256, renewed_fp);

    // A role that may not read the file is told so, and nothing is guessed.
    lab.ensure_role("pgtls_plain_monitor").await.unwrap();
    let (poller, mut events) = start("pgtls_plain_monitor");
    let report = poller_probe(&poller, &mut events).await;
    match report.on_disk.map(|d| d.verdict) {
        Some(OnDiskVerdict::NotCompared { reason }) => assert!(reason.contains("permission denied"), "{reason}"),
        other => panic!("expected not compared, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_judges_bundles_from_the_flag_and_the_config() {
    use common::tmux::Tmux;
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let p = pki();
    lab.use_server_chain(&p.leaf, std::slice::from_ref(&p.int_old))
        .await
        .unwrap();
    let old = write_bundle(home.path(), "old.pem", &[&p.old.cert]);
    let new = write_bundle(home.path(), "new.pem", &[&p.new.cert]);
    let conninfo = format!("{} sslmode=require", lab.conninfo(SUPERUSER));
    let config = home.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[[target]]\nconninfo = \"host=127.0.0.1\"\nbundles = [\"{}\"]\n",
            old.display()
        ),
    )
    .unwrap();
    let new_arg = new.display().to_string();
    let config_arg = config.display().to_string();
    let tmux = Tmux::start(
        &[
            &conninfo,
            "--interval",
            "0.5",
            "--config",
            &config_arg,
            "--bundle",
            &new_arg,
        ],
        home.path(),
        160,
        60,
    );
    tmux.wait_for("the dashboard", std::time::Duration::from_secs(30), |s| {
        s.contains("Sessions")
    });
    tmux.keys(&["c"]);
    tmux.keys(&["z"]);
    let screen = tmux.wait_for("the bundle verdicts", std::time::Duration::from_secs(60), |s| {
        s.contains("new.pem  verify-full ✗  verify-ca ✗") && s.contains("Bundles")
    });
    assert!(
        screen.contains("issued by O=pgtls lab, CN=Rotation Old Root"),
        "{screen}"
    );
    tmux.keys(&["End"]);
    let screen = tmux.wait_for("the config's bundle", std::time::Duration::from_secs(30), |s| {
        s.contains("old.pem  verify-full ✓  verify-ca ✓")
    });
    assert!(screen.contains("anchors alone"), "{screen}");
    tmux.keys(&["q"]);
}
