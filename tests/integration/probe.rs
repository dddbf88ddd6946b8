//! `pgtls probe` against the real lab, checked against `openssl s_client -starttls postgres`.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail by panicking")]

use crate::common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use pgtls::lab::certs::{CertSpec, issue};
use pgtls::lab::{Lab, LabOptions};
use serde_json::Value;

fn probe(lab_port: u16, rootcert: &Path, home: &Path) -> (Option<i32>, Value) {
    let conninfo = format!(
        "host=localhost hostaddr=127.0.0.1 port={lab_port} sslrootcert={}",
        rootcert.display()
    );
    let out = common::pgtls(&["probe", &conninfo, "--format", "json"], home);
    let json =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), json)
}

/// The server log's lines after the first `skip` connection lines.
fn log_after_connections(lab: &Lab, skip: usize) -> Vec<String> {
    let log = std::fs::read_to_string(&lab.log_file).unwrap_or_default();
    let mut seen = 0;
    log.lines()
        .skip_while(|l| {
            if l.contains("connection received") {
                seen += 1;
            }
            seen <= skip
        })
        .map(str::to_string)
        .collect()
}

fn connections_logged(lab: &Lab) -> usize {
    std::fs::read_to_string(&lab.log_file)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("connection received"))
        .count()
}

/// PEM certificates `openssl s_client -showcerts` prints, with their SHA-256 fingerprints and end dates.
fn s_client_chain(port: u16) -> Vec<(String, String)> {
    let mut child = Command::new(common::require_tool("openssl", "openssl"))
        .args(["s_client", "-starttls", "postgres", "-showcerts", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_client runs");
    drop(child.stdin.take());
    let mut text = String::new();
    child.stdout.take().unwrap().read_to_string(&mut text).unwrap();
    child.wait().unwrap();
    let mut certs = Vec::new();
    for block in text.split("-----BEGIN CERTIFICATE-----").skip(1) {
        let pem = format!(
            "-----BEGIN CERTIFICATE-----{}-----END CERTIFICATE-----\n",
            block.split("-----END CERTIFICATE-----").next().unwrap()
        );
        let mut x509 = Command::new(common::require_tool("openssl", "openssl"))
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-enddate"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        x509.stdin.take().unwrap().write_all(pem.as_bytes()).unwrap();
        let out = x509.wait_with_output().unwrap();
        let info = String::from_utf8(out.stdout).unwrap();
        let fp = info
            .lines()
            .find_map(|l| l.split_once("Fingerprint="))
            .unwrap()
            .1
            .to_string();
        let end = info
            .lines()
            .find_map(|l| l.strip_prefix("notAfter="))
            .unwrap()
            .to_string();
        certs.push((fp, end));
    }
    certs
}

#[tokio::test]
async fn chain_expiry_and_fingerprint_match_openssl_s_client_and_connections_are_counted() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let before = connections_logged(&lab);
    let (code, report) = probe(lab.port, &lab.certs.ca_cert, home.path());
    let reported = report["connections"].as_u64().expect("a count") as usize;
    // Each backend writes its own "connection received" line, possibly after the probe has gone: wait for as many
    // as the probe reports; one more already there means it reported too few.
    let made = common::wait_until(
        "connection lines in the server log",
        Duration::from_secs(10),
        async || {
            let made = connections_logged(&lab) - before;
            if made >= reported { Ok(made) } else { Err(made) }
        },
    )
    .await;
    assert_eq!(reported, made, "the probe reports every connection it makes");
    assert!(made <= 12, "few connections: {made}");
    // A cipher list this OpenSSL cannot use (3DES:RC4 under OpenSSL 3) is never tried on a connection: one was
    // opened, then dropped before the handshake, and the server logged "EOF detected".
    let aborted: Vec<String> = log_after_connections(&lab, before)
        .into_iter()
        .filter(|l| l.contains("EOF detected"))
        .collect();
    assert!(
        aborted.is_empty(),
        "connections dropped before their handshake: {aborted:?}"
    );

    let expected = s_client_chain(lab.port);
    let chain = report["chain"].as_array().unwrap();
    assert_eq!(chain.len(), expected.len());
    for (cert, (fp, end)) in chain.iter().zip(&expected) {
        assert_eq!(cert["sha256"].as_str(), Some(fp.as_str()));
        // openssl: "Nov 27 17:25:00 2027 GMT"; ours: RFC 3339. Compare as instants.
        let ours = chrono::DateTime::parse_from_rfc3339(cert["not_after"].as_str().unwrap()).unwrap();
        let theirs = chrono::NaiveDateTime::parse_from_str(end.trim_end_matches(" GMT"), "%b %e %H:%M:%S %Y").unwrap();
        assert_eq!(ours.naive_utc(), theirs);
    }
    assert_eq!(chain[0]["subject"], "O=pgtls lab, CN=localhost");
    assert_eq!(report["negotiated"]["version"], "TLSv1.3");
    assert_eq!(report["host_name_matches"], true);
    assert_eq!(report["verify_bundle"]["verified"], true);
    assert_eq!(report["verify_bundle"]["anchor"], "O=pgtls lab, CN=pgtls lab root CA");
    assert_eq!(
        report["verify_system"]["verified"], false,
        "the lab CA is not in the system store"
    );
    let accepted: Vec<(&str, bool)> = report["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_str().unwrap(), v["accepted"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        accepted,
        vec![
            ("TLSv1", false),
            ("TLSv1.1", false),
            ("TLSv1.2", true),
            ("TLSv1.3", true)
        ]
    );
    let suites = report["tls12_ciphers"].as_array().unwrap();
    assert!(suites.iter().any(|c| c["name"] == "ECDHE-RSA-AES256-GCM-SHA384"));
    // PostgreSQL's default ssl_ciphers (HIGH:MEDIUM:+3DES:!aNULL) admits suites without forward secrecy.
    assert!(suites.iter().any(|c| c["forward_secret"] == false));
    assert_eq!(code, Some(1), "weak suites are a warning");
}

#[tokio::test]
async fn accepted_versions_follow_ssl_min_protocol_version_and_ssl_off_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let tls13 = Lab::start(LabOptions {
        settings: vec![("ssl_min_protocol_version".into(), "TLSv1.3".into())],
        ..LabOptions::default()
    })
    .await
    .unwrap();
    let (_, report) = probe(tls13.port, &tls13.certs.ca_cert, home.path());
    let accepted: Vec<bool> = report["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["accepted"].as_bool().unwrap())
        .collect();
    assert_eq!(accepted, vec![false, false, false, true]);
    assert!(report["tls12_ciphers"].as_array().unwrap().is_empty());
    assert!(
        report["versions"][2]["reason"].as_str().unwrap().contains("alert"),
        "{}",
        report["versions"][2]
    );
    drop(tls13);

    let off = Lab::start(LabOptions {
        settings: vec![("ssl".into(), "off".into())],
        ..LabOptions::default()
    })
    .await
    .unwrap();
    let (code, report) = probe(off.port, &off.certs.ca_cert, home.path());
    assert_eq!(report["accepts_tls"], false);
    assert_eq!(report["connections"], 1);
    assert!(
        report["findings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("refuses TLS")
    );
    assert_eq!(code, Some(2));
}

#[tokio::test]
async fn expired_and_unknown_ca_certificates_are_critical_and_a_three_root_bundle_verifies() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let other = pgtls::lab::issue_ca("Other Root CA").unwrap();
    let other_file = home.path().join("other.crt");
    std::fs::write(&other_file, other.cert.to_pem().unwrap()).unwrap();
    let (code, report) = probe(lab.port, &other_file, home.path());
    assert_eq!(code, Some(2));
    assert_eq!(report["verify_bundle"]["verified"], false);
    assert!(
        report["findings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("does not verify"),
        "{}",
        report["findings"]
    );

    let bundle = home.path().join("bundle.crt");
    let third = pgtls::lab::issue_ca("Third Root CA").unwrap();
    let lab_ca = std::fs::read(&lab.certs.ca_cert).unwrap();
    std::fs::write(
        &bundle,
        [other.cert.to_pem().unwrap(), third.cert.to_pem().unwrap(), lab_ca].concat(),
    )
    .unwrap();
    let (_, report) = probe(lab.port, &bundle, home.path());
    assert_eq!(report["verify_bundle"]["verified"], true);
    let anchors: Vec<bool> = report["bundle"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["anchors_server"].as_bool().unwrap())
        .collect();
    assert_eq!(anchors, vec![false, false, true]);

    // Re-issue the server certificate from the lab CA, already expired, and reload.
    let ca = lab.ca().unwrap();
    let mut spec = CertSpec::server("localhost", &["localhost"], &["127.0.0.1"]);
    spec.not_before_days = -30;
    spec.not_after_days = -1;
    let expired = issue(&spec, Some(&ca)).unwrap();
    lab.use_server_certificate(&expired).await.unwrap();
    let (code, report) = probe(lab.port, &lab.certs.ca_cert, home.path());
    assert_eq!(code, Some(2));
    assert!(report["chain"][0]["days_left"].as_i64().unwrap() < 0);
    let messages = report["findings"].to_string();
    assert!(messages.contains("expired on"), "{messages}");
    // And a verifying connection names the expired certificate.
    let conninfo = format!(
        "{} sslmode=verify-full sslrootcert={}",
        lab.conninfo(pgtls::lab::SUPERUSER)
            .replace("host=127.0.0.1", "host=localhost hostaddr=127.0.0.1"),
        lab.certs.ca_cert.display()
    );
    let out = common::pgtls(&["snapshot", &conninfo], home.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("server certificate \"O=pgtls lab, CN=localhost\" expired on"),
        "{stderr}"
    );
}

#[test]
fn nothing_is_sent_after_sslrequest_before_the_answer_byte() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = [0u8; 8];
        stream.read_exact(&mut request).unwrap();
        stream.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        let mut extra = [0u8; 1];
        let early = stream.read(&mut extra);
        stream.write_all(b"N").unwrap();
        (request, early.map(|n| n > 0).unwrap_or(false))
    });
    let home = tempfile::tempdir().unwrap();
    let out = common::pgtls(
        &["probe", &format!("host=127.0.0.1 port={port}"), "--format", "json"],
        home.path(),
    );
    let (request, sent_early) = server.join().unwrap();
    assert_eq!(request, pgtls::probe::starttls::SSL_REQUEST);
    assert!(!sent_early, "the client must wait for the answer byte");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["accepts_tls"], false);
    assert_eq!(out.status.code(), Some(2));
}
