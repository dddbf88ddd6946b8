//! Root CA rotation (issue 18): a lab PKI with an old and a new root and ONE intermediate key certified by both
//! (two intermediate certificates, one subject and key: a cross-signed intermediate), the lab server presenting
//! the leaf with either copy. For every bundle, both sslmodes and a host name that does and does not match,
//! pgtls's verdict must be psql's actual outcome.

mod common;

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
        .arg(format!(
            "{conninfo} sslmode={mode} sslrootcert={}",
            bundle.display()
        ))
        .args(["-X", "-A", "-t", "-c", "select 1"])
        .output()
        .expect("psql runs");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).trim().to_string())
}

fn probe(conninfo: &str, bundles: &[PathBuf], home: &Path) -> (Option<i32>, Value) {
    let mut args = vec!["probe".to_string(), conninfo.to_string(), "--format".into(), "json".into()];
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
    let bundles = vec![
        ("old only", write_bundle(dir.path(), "old.pem", &[&p.old.cert])),
        ("new only", write_bundle(dir.path(), "new.pem", &[&p.new.cert])),
        ("both", write_bundle(dir.path(), "both.pem", &[&p.old.cert, &p.new.cert])),
        (
            "new root + its intermediate",
            write_bundle(dir.path(), "new-int.pem", &[&p.new.cert, &p.int_new]),
        ),
    ];
    let paths: Vec<PathBuf> = bundles.iter().map(|(_, p)| p.clone()).collect();
    let port = lab.clone_for_clients().port;
    let hosts = [
        ("matching host", format!("host=127.0.0.1 port={port} user={SUPERUSER} dbname=postgres")),
        (
            "host-name mismatch",
            format!("host=wrong.example hostaddr=127.0.0.1 port={port} user={SUPERUSER} dbname=postgres"),
        ),
    ];
    let chains = [("leaf+intermediate(old)", &p.int_old), ("leaf+intermediate(new)", &p.int_new)];
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
                    outcomes.push(format!("{chain_name} | {host_name} | {bundle_name} | {mode} | {psql_ok}"));
                    compared += 1;
                }
                any_fails |= !verdict["verifies"].as_bool().unwrap_or(false);
            }
            assert_eq!(code == Some(2), any_fails, "exit 2 exactly when a bundle fails: {code:?}");
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
                assert!(verdicts.iter().any(|v| v["verifies_ca"] == true && v["verifies"] == false));
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
    std::fs::write(&key_only, b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").unwrap();
    let huge = dir.path().join("huge.pem");
    std::fs::File::create(&huge).unwrap().set_len(64 * 1024 * 1024).unwrap();
    for (path, expected) in [
        (&garbage, "not PEM text"),
        (&key_only, "holds no certificate, only \"PRIVATE KEY\""),
        (&huge, "larger than 4 MiB"),
        (&PathBuf::from("/dev/zero"), "not a regular file"),
    ] {
        let out = common::pgtls(&["probe", &conninfo, "--bundle", &path.display().to_string()], home.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(expected) && stderr.contains("bundle"), "{stderr}");
    }
}
